//! The configuration file (TOML).
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:8080"
//! [sip]
//! listen = "127.0.0.1:5060"            # UDP
//! trunk = "sip:127.0.0.1:5080"         # E.164 numbers go to sip:+NUMBER@<trunk host:port>
//! [media]
//! backend = "socket"
//! address = "127.0.0.1"
//! extra_addresses = []                 # optional: more media addresses, same ports on each
//! ports = "20000-29999"                # RTP even, RTCP odd
//! announcement = "prompts/hold.wav"    # optional; else built-in
//! cores = [1]                          # optional: pin the workers (cores this host has)
//! allow_missing_cores = false          # true: `serve` starts although a core is missing
//! [[business]]
//! id = "acme"
//! name = "ACME Corp"
//! api_keys = ["k-acme-0123456789abcdef"]   # optional: secret server-side keys (>= 16 chars)
//! widget_key = "w-acme-42"                 # optional: the widget's public key (>= 8 chars)
//! allowed_origins = ["https://shop.example"]  # pages that may use the widget
//! time_zone = "Europe/Berlin"              # IANA; default "UTC"
//! hours = ["mon-fri 09:00-17:30", "sat 10:00-14:00"]  # default: always open
//! holidays = ["2026-12-25"]
//! webhook_url = "https://crm.example/hook" # optional; needs webhook_secret
//! webhook_secret = "s-acme-0123456789abcdef"
//! caller_id = "+15550100"                  # default: sip.from_user
//! default_country = "US"                   # reads national numbers typed into the widget
//! preferred_wait_secs = 30
//! reservation = "agent_first"              # or "customer_first" (agent reserved after the answer)
//! [business.retry]
//! attempts = 3                             # 1..=10, the first call included
//! spacing_secs = 300
//! [business.limits]
//! max_concurrent_calls = 50                # optional overrides of [limits] too:
//! per_number_per_hour = 3                  # per_number_per_hour, per_business_per_minute
//! [business.number_policy]
//! allowed_country_codes = [1, 44]          # default: any
//! [[agent]]
//! id = "alice"
//! contact = "sip:alice@127.0.0.1:15064"
//! businesses = ["acme"]
//! token = "t-alice-0123456789abcdef"       # optional: agent desktop login (>= 16 chars)
//! name = "Alice Example"                   # default: the id
//! skills = ["billing", "de"]
//! wrap_up_secs = 10                        # 0..=3600
//! [lab]
//! endpoints = false
//! [drain]
//! max_seconds = 3600                   # live calls may go on this long after SIGTERM
//! [store]
//! path = "callbridge.db"               # SQLite; relative to this file
//! [log]
//! format = "text"                      # or "json": one object per line
//! level = "info"                       # a tracing filter; CALLBRIDGE_LOG overrides it
//! ```
//!
//! With `media.backend = "dpdk"` a `[dpdk]` section is required (see [`DpdkConfig`]):
//!
//! ```toml
//! [media]
//! backend = "dpdk"
//! address = "198.18.0.1"               # owned by the DPDK port (IPv4 or IPv6)
//! [dpdk]
//! main_core = 0
//! worker_cores = [1]
//! devices = ["net_af_packet0,iface=veth0"]
//! ```
//!
//! Keys, tokens and secrets are kept in memory as written; [`Secret`] keeps them out of `Debug`
//! output and no error message quotes them.
//!
//! Every section and every key not marked "required" may be left out; the defaults are those
//! documented on each field. Unknown keys are errors. Relative paths are relative to the
//! directory of the configuration file.
//!
//! Every error of [`Config::load`] displays as `FILE:LINE: KEY: reason`, e.g.
//! `callbridge.toml:12: agent[1].contact: "bob" is neither an E.164 number …`. `KEY` is a
//! dotted path; `[[business]]` and `[[agent]]` entries and array items are numbered from 0.
//! An unreadable file is reported at line 0 with the key `(file)`.
//!
//! [`Config::load`] also checks the file against this host (`host.rs`): local addresses, the
//! port layout, `media.cores`, the DPDK build; [`Config::parse`] checks the port layout only.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use flows::{AgentId, BusinessId, Target};
use serde::Deserialize;

pub(crate) mod budget;
mod business;
mod directory;
mod dpdk;
mod drain;
mod host;
mod locate;
mod log;
mod media;
mod secret;
mod service;
mod sip_section;
#[cfg(test)]
mod tests;
mod trunk;

pub(crate) use business::BusinessConfig;
pub(crate) use directory::AgentConfig;
pub(crate) use dpdk::{device_kind, CpuSet, DeviceKind, DpdkConfig};
pub(crate) use drain::DrainConfig;
pub(crate) use host::bindable;
pub(crate) use log::{parse_filter, LogConfig, LogFormat};
pub(crate) use media::{Backend, MediaConfig};
pub(crate) use secret::Secret;
pub(crate) use service::{FlowConfig, HttpConfig, LabConfig, LimitsConfig, StoreConfig};
pub(crate) use sip_section::SipConfig;
pub(crate) use trunk::{specs as trunk_specs, TrunkConfig};

use locate::{backticked, key, line_of, locate, render_path, span_of, syntax_key, Seg};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// `[http]`: the API and web page.
    #[serde(default)]
    pub(crate) http: HttpConfig,
    /// `[sip]`: signalling.
    #[serde(default)]
    pub(crate) sip: SipConfig,
    /// `[media]`: the data plane.
    #[serde(default)]
    pub(crate) media: MediaConfig,
    /// `[flow]`: ring times and retries.
    #[serde(default)]
    pub(crate) flow: FlowConfig,
    /// `[[business]]`: at least one is required; the first is the web page's default.
    #[serde(default)]
    pub(crate) business: Vec<BusinessConfig>,
    /// `[[agent]]`: the agents (CSRs).
    #[serde(default)]
    pub(crate) agent: Vec<AgentConfig>,
    /// `[[trunk]]`: carrier trunks (see [`trunk::TrunkConfig`]); none: `sip.trunk` alone.
    #[serde(default)]
    pub(crate) trunk: Vec<TrunkConfig>,
    /// `[lab]`: test helpers.
    #[serde(default)]
    pub(crate) lab: LabConfig,
    /// `[store]`: where requests, calls and records are kept.
    #[serde(default)]
    pub(crate) store: StoreConfig,
    /// `[limits]`: abuse limits on call requests.
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    /// `[dpdk]`: the DPDK backend (cores, devices, EAL). Required when `media.backend =
    /// "dpdk"`; checked whenever present. Default: absent.
    #[serde(default)]
    pub(crate) dpdk: Option<DpdkConfig>,
    /// `[drain]`: how long live calls may go on once the process drains.
    #[serde(default)]
    pub(crate) drain: DrainConfig,
    /// `[log]`: format (`"text"` or `"json"`) and level.
    #[serde(default)]
    pub(crate) log: LogConfig,
}

impl Default for Config {
    /// The built-in configuration: everything on loopback; business `demo` (UTC, always
    /// open, no API keys, so loopback clients need none); agents `alice` ("Alice") and `bob`
    /// ("Bob") with random desktop tokens ([`demo_tokens`]); lab endpoints on.
    fn default() -> Self {
        let id = |s: &str| BusinessId::new(s).unwrap_or_else(|_| unreachable!("valid literal"));
        let [alice_token, bob_token] = demo_tokens();
        let agent = |name: &str, display: &str, token: &str, port: u16| AgentConfig {
            token: Some(Secret::new(token)),
            name: Some(display.into()),
            ..AgentConfig::new(
                AgentId::new(name).unwrap_or_else(|_| unreachable!("valid literal")),
                Target::Sip(format!("sip:{name}@127.0.0.1:{port}")),
                vec![id("demo")],
            )
        };
        Self {
            http: HttpConfig::default(),
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            flow: FlowConfig::default(),
            business: vec![BusinessConfig::new(id("demo"), "Demo Business")],
            agent: vec![
                agent("alice", "Alice", alice_token, 15064),
                agent("bob", "Bob", bob_token, 15066),
            ],
            trunk: Vec::new(),
            lab: LabConfig { endpoints: true },
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            dpdk: None,
            drain: DrainConfig::default(),
            log: LogConfig::default(),
        }
    }
}

/// The desktop tokens of the built-in agents `alice` and `bob`: 24 random alphanumeric
/// characters each, made once per process (every [`Config::default`] in a process has the
/// same ones).
pub(crate) fn demo_tokens() -> &'static [String; 2] {
    use rand::distributions::{Alphanumeric, DistString};
    static TOKENS: OnceLock<[String; 2]> = OnceLock::new();
    TOKENS.get_or_init(|| {
        std::array::from_fn(|_| Alphanumeric.sample_string(&mut rand::thread_rng(), 24))
    })
}

// ---- errors ------------------------------------------------------------------------------

/// What kind of problem a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// Valid TOML that does not fit the schema: unknown key, missing key, wrong type or an
    /// unparsable value.
    Schema,
    /// Fits the schema but makes no sense (duplicates, unknown references, missing files, …).
    Invalid,
}

/// A configuration error, displayed as `FILE:LINE: KEY: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The file.
    pub(crate) file: PathBuf,
    /// 1-based line (0 when the file could not be read).
    pub(crate) line: usize,
    /// Dotted key path, e.g. `media.ports` or `agent[1].contact`.
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) reason: String,
    /// The class of problem.
    pub(crate) kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.key,
            self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// A [`ConfigError`] at `path` (its line found in `text`; line 1 when the key is not written).
fn error_at(
    text: &str,
    file: &Path,
    path: &[Seg],
    reason: String,
    kind: ConfigErrorKind,
) -> ConfigError {
    let doc = toml_edit::ImDocument::parse(text).ok();
    let span = doc.as_ref().and_then(|d| span_of(d.as_item(), path));
    ConfigError {
        file: file.to_owned(),
        line: span.map_or(1, |s| line_of(text, s.start)),
        key: render_path(path),
        reason,
        kind,
    }
}

// ---- loading -----------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates a configuration file. Besides the file's own checks, the checks against this host (see `host.rs`): addresses
    /// that are not local, `backend = "dpdk"` on a build without DPDK, and `media.cores` that
    /// do not exist (refused unless `media.allow_missing_cores = true`).
    ///
    /// # Errors
    /// A [`ConfigError`] (`FILE:LINE: KEY: reason`) for the first problem found.
    pub(crate) fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let (config, warnings) = Self::load_checked(path)?;
        // A missing core stops `serve` (unless allowed); the descriptor budget's warning
        // only bounds the calls (logged at start).
        match warnings
            .into_iter()
            .find(|w| w.key.starts_with("media.cores"))
        {
            Some(w) if !config.media.allow_missing_cores => Err(w),
            _ => Ok(config),
        }
    }

    /// [`Config::load`] for `check-config` and `preflight`: what works only in part (cores
    /// that do not exist) comes back as warnings, `FILE:LINE: KEY: reason` each, instead of
    /// an error.
    ///
    /// # Errors
    /// As [`Config::load`].
    pub(crate) fn load_checked(
        path: impl AsRef<Path>,
    ) -> Result<(Self, Vec<ConfigError>), ConfigError> {
        let path = path.as_ref();
        let text = Self::read(path)?;
        let config = Self::parse(&text, path)?;
        let at = |(segs, reason): (Vec<Seg>, String)| {
            error_at(&text, path, &segs, reason, ConfigErrorKind::Invalid)
        };
        let mut warnings =
            host::check_host(&config, &CpuSet::online(), &host::bindable).map_err(at)?;
        // The open-file limit against the media ports and max_calls (`serve` raises the soft
        // limit to the hard one, so the hard one is judged).
        if let Some((_, hard)) = budget::nofile() {
            warnings.extend(budget::check(&config, hard).map_err(at)?);
        }
        Ok((config, warnings.into_iter().map(at).collect()))
    }

    /// The file's text.
    fn read(path: &Path) -> Result<String, ConfigError> {
        std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: 0,
            key: "(file)".into(),
            reason: format!("cannot read the configuration file: {e}"),
            kind: ConfigErrorKind::Io,
        })
    }

    /// Parses and validates configuration text as if read from `file` (used for error
    /// messages and to resolve relative paths).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub(crate) fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        Self::parse_on(text, file, &CpuSet::online())
    }

    /// [`Config::parse`] checking `dpdk` cores against `cpus` instead of this machine's.
    fn parse_on(text: &str, file: &Path, cpus: &CpuSet) -> Result<Self, ConfigError> {
        let err = |offset: Option<usize>, key: String, reason: String, kind| ConfigError {
            file: file.to_owned(),
            line: offset.map_or(1, |o| line_of(text, o)),
            key,
            reason,
            kind,
        };
        let doc = match toml_edit::ImDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let off = e.span().map_or(0, |s| s.start);
                let reason = e.message().trim().replace('\n', "; ");
                return Err(err(
                    Some(off),
                    syntax_key(text, off),
                    reason,
                    ConfigErrorKind::Syntax,
                ));
            }
        };
        let mut config: Self = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let off = e.span().map(|s| s.start);
                let mut path = off
                    .and_then(|o| locate(doc.as_item(), o))
                    .unwrap_or_default();
                let msg = e.message().trim().replace('\n', "; ");
                if let Some(missing) = backticked(&msg, "missing field ") {
                    path.push(key(missing));
                }
                return Err(err(off, render_path(&path), msg, ConfigErrorKind::Schema));
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let workers_given = doc.get("media").and_then(|m| m.get("workers")).is_some();
        if let Err((path, reason)) = config.validate_on(&dir, workers_given, cpus) {
            let span = span_of(doc.as_item(), &path);
            return Err(err(
                span.map(|s| s.start),
                render_path(&path),
                reason,
                ConfigErrorKind::Invalid,
            ));
        }
        Ok(config)
    }

    /// Whether this binary can run the configured backend: `Err` with a sentence when
    /// `media.backend = "dpdk"` but the binary was built without the `dpdk` cargo feature.
    /// `serve` calls this before starting the data plane.
    ///
    /// # Errors
    /// The sentence to print.
    pub(crate) fn check_build(&self) -> Result<(), String> {
        if self.media.backend == Backend::Dpdk && !cfg!(feature = "dpdk") {
            return Err("media.backend = \"dpdk\" but this callbridge was built without DPDK support; \
                        rebuild with `cargo build --release -p callbridge --features dpdk` (needs libdpdk-dev) \
                        or use backend = \"socket\""
                .into());
        }
        Ok(())
    }

    /// Semantic checks against this machine; resolves the announcement path against `dir`.
    #[cfg(test)]
    fn validate(&mut self, dir: &Path) -> Result<(), (Vec<Seg>, String)> {
        self.validate_on(dir, true, &CpuSet::online())
    }

    /// Semantic checks; resolves the announcement path against `dir`. `workers_given`: whether
    /// the file sets `media.workers`; `cpus`: the online cores. With the dpdk backend,
    /// `media.workers` becomes the number of worker cores.
    fn validate_on(
        &mut self,
        dir: &Path,
        workers_given: bool,
        cpus: &CpuSet,
    ) -> Result<(), (Vec<Seg>, String)> {
        self.http.validate()?;
        self.log.validate()?;
        self.sip.tls.resolve(dir);
        self.sip.validate()?;
        trunk::validate(&mut self.trunk, &self.sip, &self.business)?;
        if let Some(d) = &self.dpdk {
            d.validate(&self.media, workers_given, cpus)?;
            if self.media.backend == Backend::Dpdk {
                self.media.workers = d.worker_cores.len();
            }
        } else if self.media.backend == Backend::Dpdk {
            return Err((
                vec![key("media"), key("backend")],
                "backend = \"dpdk\" needs a [dpdk] section (at least `devices`; see the Operators section of the README)"
                    .into(),
            ));
        }
        self.media.validate()?;
        host::check_ports(self)?;
        self.store.resolve(dir)?;
        self.media.resolve_announcement(dir)?;
        self.flow.validate()?;
        self.limits.validate()?;
        self.limits
            .check_ports(budget::port_calls(self), &self.media.ports.to_string())?;
        self.drain.validate()?;
        // A media node's file (`media.ng_listen`) needs no businesses; `serve` refuses to run
        // without one (see `main`).
        let media_node = self.media.ng_listen.is_some();
        directory::validate(&mut self.business, &mut self.agent, media_node)?;
        for (i, b) in self.business.iter_mut().enumerate() {
            b.resolve_announcement(dir, i)?;
        }
        Ok(())
    }
}
