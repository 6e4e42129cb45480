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
//! ports = "20000-29999"                # RTP even, RTCP odd
//! announcement = "prompts/hold.wav"    # optional; else built-in
//! [[business]]
//! id = "acme"
//! name = "ACME Corp"
//! [[agent]]
//! id = "alice"
//! contact = "sip:alice@127.0.0.1:15064"
//! businesses = ["acme"]
//! [lab]
//! endpoints = false
//! ```
//!
//! Every section and every key not marked "required" may be left out; the defaults are those
//! documented on each field. Unknown keys are errors. Relative paths are relative to the
//! directory of the configuration file.
//!
//! Every error of [`Config::load`] displays as `FILE:LINE: KEY: reason`, e.g.
//! `callbridge.toml:12: agent[1].contact: "bob" is neither an E.164 number …`. `KEY` is a
//! dotted path; `[[business]]` and `[[agent]]` entries and array items are numbered from 0.
//! An unreadable file is reported at line 0 with the key `(file)`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flows::{AgentId, BusinessId, SipUri, Target};
use serde::{Deserialize, Deserializer};

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
    /// `[lab]`: test helpers.
    #[serde(default)]
    pub(crate) lab: LabConfig,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// `listen`: TCP address of the HTTP API and web page. Default `127.0.0.1:8080`.
    pub(crate) listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: SocketAddr::from(([127, 0, 0, 1], 8080)) }
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipConfig {
    /// `listen`: UDP address for SIP. Default `127.0.0.1:5060`.
    pub(crate) listen: SocketAddr,
    /// `trunk`: SIP URI of the carrier trunk / softswitch; E.164 numbers are called as
    /// `sip:+NUMBER@<trunk host:port>`. Default `sip:127.0.0.1:5080`.
    pub(crate) trunk: String,
    /// `user_agent`: the `User-Agent` / `Server` header value. Default `callbridge/<version>`.
    pub(crate) user_agent: String,
    /// `from_user`: the caller id (user part of `From`) shown to both parties. Default
    /// `callbridge`.
    pub(crate) from_user: String,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            trunk: "sip:127.0.0.1:5080".into(),
            user_agent: concat!("callbridge/", env!("CARGO_PKG_VERSION")).into(),
            from_user: "callbridge".into(),
        }
    }
}

/// `media.backend`: how the data plane does packet I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// Ordinary UDP sockets (portable; the default).
    Socket,
    /// DPDK kernel bypass: recognised but not available yet, so rejected by validation.
    Dpdk,
}

/// An inclusive UDP port range written `"FIRST-LAST"`: RTP on the even ports, RTCP on the
/// odd port above, so FIRST is even and LAST odd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRange {
    /// First port (even).
    pub(crate) first: u16,
    /// Last port (odd).
    pub(crate) last: u16,
}

impl PortRange {
    /// Parses and checks `"FIRST-LAST"`.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?} is not a port range; write it as \"FIRST-LAST\", e.g. \"20000-29999\""))?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{:?} is not a port number (1-65535)", p.trim()))
        };
        let (first, last) = (port(a)?, port(b)?);
        if first >= last {
            return Err(format!("the range {first}-{last} is empty or reversed; the first port must be below the last"));
        }
        if first % 2 != 0 {
            return Err(format!("the range must start on an even port (RTP), not {first}"));
        }
        if last % 2 == 0 {
            return Err(format!(
                "the range must end on an odd port (the RTCP port of the last pair), not {last}; \
                 it holds an odd number of ports"
            ));
        }
        Ok(Self { first, last })
    }

    /// The ports as a range.
    #[must_use]
    pub(crate) fn range(self) -> RangeInclusive<u16> {
        self.first..=self.last
    }

    /// How many RTP/RTCP pairs it holds.
    #[must_use]
    pub(crate) fn pairs(self) -> usize {
        usize::from(self.last - self.first) / 2 + 1
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MediaConfig {
    /// `backend`: `"socket"` (default). `"dpdk"` is rejected until the DPDK backend ships.
    pub(crate) backend: Backend,
    /// `address`: the relay's IP, bound and written into SDP (not `0.0.0.0`). Default
    /// `127.0.0.1`.
    pub(crate) address: IpAddr,
    /// `ports`: `"FIRST-LAST"`, even first, odd last. Default `"20000-29999"`.
    pub(crate) ports: PortRange,
    /// `announcement`: a WAV file (8 kHz mono) played while the agent is called; relative to
    /// the configuration file. Default: the built-in prompt. After [`Config::load`] the path
    /// is absolute (or as written when already absolute) and the file exists.
    pub(crate) announcement: Option<PathBuf>,
    /// `workers`: data-plane workers (threads / cores); the port range is split between them.
    /// Default 1.
    pub(crate) workers: usize,
    /// `cores`: CPU cores to pin the workers to, one per worker. Default: not pinned.
    pub(crate) cores: Option<Vec<usize>>,
    /// `learn_remote`: latch onto the first RTP source of each leg (symmetric RTP behind NAT).
    /// Default true.
    pub(crate) learn_remote: bool,
    /// `timeout_secs`: end a bridged call when a leg sends no RTP for this long; 0 disables.
    /// Default 30.
    pub(crate) timeout_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Socket,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            ports: PortRange { first: 20000, last: 29999 },
            announcement: None,
            workers: 1,
            cores: None,
            learn_remote: true,
            timeout_secs: 30,
        }
    }
}

impl MediaConfig {
    /// How the flows create legs.
    #[must_use]
    pub(crate) fn policy(&self) -> flows::MediaPolicy {
        flows::MediaPolicy {
            learn_remote: self.learn_remote,
            src_mismatch: dp_api::SrcMismatch::Drop,
            media_timeout: (self.timeout_secs > 0).then(|| Duration::from_secs(self.timeout_secs)),
        }
    }
}

/// `[flow]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FlowConfig {
    /// `customer_ring_secs`: how long the customer rings before we give up. Default 30.
    pub(crate) customer_ring_secs: u64,
    /// `agent_ring_secs`: how long an agent rings before the next one is tried. Default 20.
    pub(crate) agent_ring_secs: u64,
    /// `max_agent_attempts`: agents called per request before giving up. Default 3.
    pub(crate) max_agent_attempts: u32,
    /// `queue_timeout_secs`: how long a request waits for a free agent. Default 120.
    pub(crate) queue_timeout_secs: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self { customer_ring_secs: 30, agent_ring_secs: 20, max_agent_attempts: 3, queue_timeout_secs: 120 }
    }
}

impl FlowConfig {
    /// The state machine's timers.
    #[must_use]
    pub(crate) fn timers(&self) -> flows::FlowTimers {
        flows::FlowTimers {
            customer_ring: Duration::from_secs(self.customer_ring_secs),
            agent_ring: Duration::from_secs(self.agent_ring_secs),
            max_agent_attempts: self.max_agent_attempts,
            queue_timeout: Duration::from_secs(self.queue_timeout_secs),
        }
    }
}

/// `[[business]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusinessConfig {
    /// `id` (required): `[A-Za-z0-9_.-]`, unique; used in `?business=` and API requests.
    pub(crate) id: BusinessId,
    /// `name` (required): shown on the web page.
    pub(crate) name: String,
}

/// `[[agent]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentConfig {
    /// `id` (required): unique.
    pub(crate) id: AgentId,
    /// `contact` (required): a SIP URI called directly, or an E.164 number sent to the trunk.
    pub(crate) contact: Target,
    /// `businesses`: the businesses this agent serves (ids of `[[business]]` entries). Default
    /// none: the agent is reachable only through `POST /v1/bridges`.
    #[serde(default)]
    pub(crate) businesses: Vec<BusinessId>,
}

/// `[lab]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LabConfig {
    /// `endpoints`: start the built-in lab SIP endpoints (test agents). Default false in a
    /// file; true only in the built-in configuration ([`Config::default`]).
    pub(crate) endpoints: bool,
}

impl Default for Config {
    /// The built-in configuration: everything on loopback, business `demo`, agents `alice`
    /// and `bob`, lab endpoints on.
    fn default() -> Self {
        let id = |s: &str| BusinessId::new(s).unwrap_or_else(|_| unreachable!("valid literal"));
        let agent = |name: &str, port: u16| AgentConfig {
            id: AgentId::new(name).unwrap_or_else(|_| unreachable!("valid literal")),
            contact: Target::Sip(format!("sip:{name}@127.0.0.1:{port}")),
            businesses: vec![id("demo")],
        };
        Self {
            http: HttpConfig::default(),
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            flow: FlowConfig::default(),
            business: vec![BusinessConfig { id: id("demo"), name: "Demo Business".into() }],
            agent: vec![agent("alice", 15064), agent("bob", 15066)],
            lab: LabConfig { endpoints: true },
        }
    }
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
        write!(f, "{}:{}: {}: {}", self.file.display(), self.line, self.key, self.reason)
    }
}

impl std::error::Error for ConfigError {}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        "(top level)".into()
    } else {
        s
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

// ---- loading -----------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates a configuration file.
    ///
    /// # Errors
    /// A [`ConfigError`] (`FILE:LINE: KEY: reason`) for the first problem found.
    pub(crate) fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: 0,
            key: "(file)".into(),
            reason: format!("cannot read the configuration file: {e}"),
            kind: ConfigErrorKind::Io,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text as if read from `file` (used for error
    /// messages and to resolve relative paths).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub(crate) fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
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
                return Err(err(Some(off), syntax_key(text, off), reason, ConfigErrorKind::Syntax));
            }
        };
        let mut config: Self = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let off = e.span().map(|s| s.start);
                let mut path = off.and_then(|o| locate(doc.as_item(), o)).unwrap_or_default();
                let msg = e.message().trim().replace('\n', "; ");
                if let Some(missing) = backticked(&msg, "missing field ") {
                    path.push(key(missing));
                }
                return Err(err(off, render_path(&path), msg, ConfigErrorKind::Schema));
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        if let Err((path, reason)) = config.validate(&dir) {
            let span = span_of(doc.as_item(), &path);
            return Err(err(span.map(|s| s.start), render_path(&path), reason, ConfigErrorKind::Invalid));
        }
        Ok(config)
    }

    /// Semantic checks; resolves the announcement path against `dir`.
    fn validate(&mut self, dir: &Path) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
        if let Err(e) = SipUri::parse(&self.sip.trunk) {
            return at(&[key("sip"), key("trunk")], e.to_string());
        }
        if self.sip.user_agent.trim().is_empty() || self.sip.user_agent.contains(['\r', '\n']) {
            return at(&[key("sip"), key("user_agent")], "must be a non-empty single line".into());
        }
        let user_ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,".contains(c);
        if self.sip.from_user.is_empty() || !self.sip.from_user.chars().all(user_ok) {
            return at(
                &[key("sip"), key("from_user")],
                format!("{:?} is not a valid SIP user part (letters, digits, + and -_.!~*'()&=$, allowed)", self.sip.from_user),
            );
        }
        let m = &self.media;
        if m.backend == Backend::Dpdk {
            return at(
                &[key("media"), key("backend")],
                "the \"dpdk\" backend is not available in this build yet; use backend = \"socket\"".into(),
            );
        }
        if m.address.is_unspecified() {
            return at(
                &[key("media"), key("address")],
                format!("{} cannot be written into SDP; give the address peers should send media to", m.address),
            );
        }
        if m.workers == 0 {
            return at(&[key("media"), key("workers")], "must be at least 1".into());
        }
        if m.workers > m.ports.pairs() {
            return at(
                &[key("media"), key("workers")],
                format!("{} workers cannot share the {} port pairs of {}", m.workers, m.ports.pairs(), m.ports),
            );
        }
        if let Some(cores) = &m.cores {
            if cores.len() != m.workers {
                return at(
                    &[key("media"), key("cores")],
                    format!("lists {} cores for {} workers; give exactly one core per worker", cores.len(), m.workers),
                );
            }
            for (i, c) in cores.iter().enumerate() {
                if cores[..i].contains(c) {
                    return at(&[key("media"), key("cores"), Seg::Index(i)], format!("core {c} is listed twice"));
                }
            }
        }
        if let Some(p) = &self.media.announcement {
            let full = if p.is_absolute() { p.clone() } else { dir.join(p) };
            if !full.is_file() {
                return at(
                    &[key("media"), key("announcement")],
                    format!("file not found: {} (relative paths are relative to the configuration file)", full.display()),
                );
            }
            self.media.announcement = Some(full);
        }
        let f = &self.flow;
        for (name, v) in [
            ("customer_ring_secs", f.customer_ring_secs),
            ("agent_ring_secs", f.agent_ring_secs),
            ("max_agent_attempts", u64::from(f.max_agent_attempts)),
            ("queue_timeout_secs", f.queue_timeout_secs),
        ] {
            if v == 0 {
                return at(&[key("flow"), key(name)], "must be at least 1".into());
            }
        }
        if self.business.is_empty() {
            return at(&[key("business")], "at least one [[business]] is required".into());
        }
        for (i, b) in self.business.iter().enumerate() {
            if self.business[..i].iter().any(|o| o.id == b.id) {
                return at(&[key("business"), Seg::Index(i), key("id")], format!("duplicate business id \"{}\"", b.id));
            }
            if b.name.trim().is_empty() {
                return at(&[key("business"), Seg::Index(i), key("name")], "must not be empty".into());
            }
        }
        for (i, a) in self.agent.iter().enumerate() {
            if self.agent[..i].iter().any(|o| o.id == a.id) {
                return at(&[key("agent"), Seg::Index(i), key("id")], format!("duplicate agent id \"{}\"", a.id));
            }
            for (j, b) in a.businesses.iter().enumerate() {
                if !self.business.iter().any(|x| &x.id == b) {
                    return at(
                        &[key("agent"), Seg::Index(i), key("businesses"), Seg::Index(j)],
                        format!("unknown business \"{b}\"; declare it in a [[business]] section"),
                    );
                }
                if a.businesses[..j].contains(b) {
                    return at(
                        &[key("agent"), Seg::Index(i), key("businesses"), Seg::Index(j)],
                        format!("business \"{b}\" is listed twice"),
                    );
                }
            }
        }
        Ok(())
    }
}

// ---- positions ---------------------------------------------------------------------------

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
}

/// `name` from a message like "missing field `name`".
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

fn contains(span: Option<Range<usize>>, off: usize) -> bool {
    span.is_some_and(|s| s.start <= off && off < s.end.max(s.start + 1))
}

/// The path of the deepest key or value whose text holds `off`.
fn locate(item: &toml_edit::Item, off: usize) -> Option<Vec<Seg>> {
    use toml_edit::{Item, Value};
    let prefixed = |seg: Seg, mut p: Vec<Seg>| {
        p.insert(0, seg);
        p
    };
    match item {
        Item::Table(t) => {
            for (k, _) in t.iter() {
                let Some((kk, child)) = t.get_key_value(k) else { continue };
                if let Some(p) = locate(child, off) {
                    return Some(prefixed(key(k), p));
                }
                if contains(kk.span(), off) {
                    return Some(vec![key(k)]);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                for (k, _) in t.iter() {
                    let Some((kk, child)) = t.get_key_value(k) else { continue };
                    if let Some(p) = locate(child, off) {
                        return Some(vec![Seg::Index(i), key(k)].into_iter().chain(p).collect());
                    }
                    if contains(kk.span(), off) {
                        return Some(vec![Seg::Index(i), key(k)]);
                    }
                }
                if contains(t.span(), off) {
                    return Some(vec![Seg::Index(i)]);
                }
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            for (k, _) in t.iter() {
                let Some((kk, child)) = t.get_key_value(k) else { continue };
                if let Some(p) = locate(child, off) {
                    return Some(prefixed(key(k), p));
                }
                if contains(kk.span(), off) {
                    return Some(vec![key(k)]);
                }
            }
        }
        Item::Value(Value::Array(arr)) => {
            for (i, v) in arr.iter().enumerate() {
                if contains(v.span(), off) {
                    return Some(vec![Seg::Index(i)]);
                }
            }
        }
        _ => {}
    }
    contains(item.span(), off).then(Vec::new)
}

/// The span of a key path: the last key's text (or the array item / table header). Falls
/// back to the nearest ancestor present in the text.
fn span_of(root: &toml_edit::Item, path: &[Seg]) -> Option<Range<usize>> {
    (1..=path.len()).rev().find_map(|n| span_exact(root, &path[..n]))
}

fn span_exact(item: &toml_edit::Item, path: &[Seg]) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    let Some((seg, rest)) = path.split_first() else { return item.span() };
    match (seg, item) {
        (Seg::Key(k), Item::Table(t)) => span_key(t.get_key_value(k), rest),
        (Seg::Key(k), Item::Value(Value::InlineTable(t))) => span_key(t.get_key_value(k), rest),
        (Seg::Index(i), Item::ArrayOfTables(a)) => {
            let t = a.get(*i)?;
            match rest.split_first() {
                None => t.span(),
                Some((Seg::Key(k), tail)) => span_key(t.get_key_value(k), tail),
                Some(_) => None,
            }
        }
        (Seg::Index(i), Item::Value(Value::Array(a))) if rest.is_empty() => a.get(*i)?.span(),
        _ => None,
    }
}

fn span_key(kv: Option<(&toml_edit::Key, &toml_edit::Item)>, rest: &[Seg]) -> Option<Range<usize>> {
    let (k, child) = kv?;
    if rest.is_empty() {
        k.span().or_else(|| child.span())
    } else {
        span_exact(child, rest)
    }
}

/// A best-effort key path for a syntax error: the key on the error's line (or the table
/// header it is in), prefixed by the table it belongs to.
fn syntax_key(text: &str, off: usize) -> String {
    let line_no = line_of(text, off);
    let mut table = String::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if n + 1 == line_no {
            if l.starts_with('[') {
                let name = l.trim_start_matches('[').split(']').next().unwrap_or("").trim();
                return if name.is_empty() { "(table header)".into() } else { name.into() };
            }
            if let Some((k, _)) = l.split_once('=') {
                let k = k.trim().trim_matches('"');
                if !k.is_empty() && !k.contains(char::is_whitespace) {
                    return if table.is_empty() { k.into() } else { format!("{table}.{k}") };
                }
            }
            return if table.is_empty() { "(top level)".into() } else { table };
        }
        if l.starts_with('[') {
            table = l.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_owned();
        }
    }
    "(end of file)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"[http]
listen = "127.0.0.1:8080"
[sip]
listen = "127.0.0.1:5060"            # UDP
trunk = "sip:127.0.0.1:5080"
[media]
backend = "socket"
address = "127.0.0.1"
ports = "20000-29999"
[[business]]
id = "acme"
name = "ACME Corp"
[[agent]]
id = "alice"
contact = "sip:alice@127.0.0.1:15064"
businesses = ["acme"]
[lab]
endpoints = false
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/callbridge/cb.toml"))
    }

    /// Parses `text` expecting an error and returns its display.
    fn fail(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_prefix(text: &str, prefix: &str) -> String {
        let e = fail(text);
        assert!(e.starts_with(&format!("/etc/callbridge/cb.toml:{prefix}")), "{e:?} should start with {prefix:?}");
        e
    }

    /// `FULL` with line `n` (1-based) replaced.
    fn with_line(n: usize, line: &str) -> String {
        FULL.lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == n { line } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_example_loads() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.sip.trunk, "sip:127.0.0.1:5080");
        assert_eq!(c.media.ports.range(), 20000..=29999);
        assert_eq!(c.media.ports.pairs(), 5000);
        assert_eq!(c.business[0].id.as_str(), "acme");
        assert_eq!(c.agent[0].contact, Target::Sip("sip:alice@127.0.0.1:15064".into()));
        assert!(!c.lab.endpoints);
        // Optional keys took their defaults.
        assert_eq!(c.media.workers, 1);
        assert!(c.media.learn_remote);
        assert_eq!(c.media.timeout_secs, 30);
        assert_eq!(c.sip.from_user, "callbridge");
        assert!(c.sip.user_agent.starts_with("callbridge/"));
        assert_eq!(c.flow, FlowConfig::default());
        assert_eq!(c.flow.timers(), flows::FlowTimers::default());
        assert_eq!(c.media.policy().media_timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn built_in_defaults() {
        let c = Config::default();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
        assert_eq!(c.sip.trunk, "sip:127.0.0.1:5080");
        assert_eq!(c.media.address.to_string(), "127.0.0.1");
        assert_eq!(c.media.ports.to_string(), "20000-29999");
        assert_eq!(c.business.len(), 1);
        assert_eq!((c.business[0].id.as_str(), c.business[0].name.as_str()), ("demo", "Demo Business"));
        let agents: Vec<(&str, &str)> = c.agent.iter().map(|a| (a.id.as_str(), a.contact.as_str())).collect();
        assert_eq!(agents, [("alice", "sip:alice@127.0.0.1:15064"), ("bob", "sip:bob@127.0.0.1:15066")]);
        assert!(c.agent.iter().all(|a| a.businesses == [BusinessId::new("demo").unwrap()]));
        assert!(c.lab.endpoints);
        // The defaults pass validation.
        let mut c2 = c.clone();
        assert!(c2.validate(Path::new("/")).is_ok());
    }

    #[test]
    fn optional_keys_parse() {
        let text = format!(
            "{FULL}[flow]\ncustomer_ring_secs = 10\nagent_ring_secs = 5\nmax_agent_attempts = 1\nqueue_timeout_secs = 60\n"
        )
        .replace(
            "ports = \"20000-29999\"",
            "ports = \"20000-20099\"\nworkers = 2\ncores = [2, 3]\nlearn_remote = false\ntimeout_secs = 0",
        )
        .replace("trunk = \"sip:127.0.0.1:5080\"", "trunk = \"sip:127.0.0.1:5080\"\nuser_agent = \"ACME PBX\"\nfrom_user = \"+15550000000\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.media.workers, 2);
        assert_eq!(c.media.cores, Some(vec![2, 3]));
        assert!(!c.media.learn_remote);
        assert_eq!(c.media.policy().media_timeout, None);
        assert_eq!(c.sip.user_agent, "ACME PBX");
        assert_eq!(c.sip.from_user, "+15550000000");
        assert_eq!(c.flow.timers().agent_ring, Duration::from_secs(5));
        assert_eq!(c.flow.max_agent_attempts, 1);
    }

    #[test]
    fn syntax_errors() {
        assert_prefix(&with_line(9, "ports = \"20000-29999"), "9: media.ports: ");
        assert_prefix(&with_line(6, "[media"), "6: media: ");
        assert_prefix(&with_line(12, "name = "), "12: business.name: ");
    }

    #[test]
    fn type_errors() {
        let e = assert_prefix(&with_line(4, "listen = 5060"), "4: sip.listen: ");
        assert!(e.contains("invalid type"), "{e}");
        assert_prefix(&with_line(18, "endpoints = \"yes\""), "18: lab.endpoints: ");
        assert_prefix(&with_line(16, "businesses = \"acme\""), "16: agent[0].businesses: ");
    }

    #[test]
    fn unknown_keys() {
        let e = assert_prefix(&with_line(7, "bakend = \"socket\""), "7: media.bakend: ");
        assert!(e.contains("unknown field `bakend`"), "{e}");
        assert_prefix(&format!("{FULL}[extra]\nx = 1\n"), "19: extra: ");
        assert_prefix(&with_line(15, "contakt = \"sip:alice@127.0.0.1\""), "15: agent[0].contakt: ");
    }

    #[test]
    fn missing_required_keys() {
        let e = assert_prefix(&with_line(15, ""), "13: agent[0].contact: ");
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn bad_socket_addresses() {
        let e = assert_prefix(&with_line(2, "listen = \"localhost:8080\""), "2: http.listen: ");
        assert!(e.contains("socket address"), "{e}");
        assert_prefix(&with_line(8, "address = \"127.0.0\""), "8: media.address: ");
        assert_prefix(&with_line(8, "address = \"0.0.0.0\""), "8: media.address: ");
    }

    #[test]
    fn bad_port_ranges() {
        let e = assert_prefix(&with_line(9, "ports = \"30000-20000\""), "9: media.ports: ");
        assert!(e.contains("reversed"), "{e}");
        let e = assert_prefix(&with_line(9, "ports = \"20000-29998\""), "9: media.ports: ");
        assert!(e.contains("odd"), "{e}");
        let e = assert_prefix(&with_line(9, "ports = \"20001-29999\""), "9: media.ports: ");
        assert!(e.contains("even"), "{e}");
        assert_prefix(&with_line(9, "ports = \"20000\""), "9: media.ports: ");
        assert_prefix(&with_line(9, "ports = \"20000-70000\""), "9: media.ports: ");
        let e = assert_prefix(&with_line(9, "ports = \"20000-20003\"\nworkers = 3"), "10: media.workers: ");
        assert!(e.contains("port pairs"), "{e}");
        assert_prefix(&with_line(9, "ports = \"20000-20003\"\ncores = [1, 2]"), "10: media.cores: ");
        assert_prefix(&with_line(9, "ports = \"20000-20003\"\nworkers = 2\ncores = [1, 1]"), "11: media.cores[1]: ");
    }

    #[test]
    fn bad_contacts_and_trunk() {
        let e = assert_prefix(&with_line(15, "contact = \"alice\""), "15: agent[0].contact: ");
        assert!(e.contains("E.164"), "{e}");
        assert_prefix(&with_line(15, "contact = \"+12\""), "15: agent[0].contact: ");
        let e = assert_prefix(&with_line(5, "trunk = \"127.0.0.1:5080\""), "5: sip.trunk: ");
        assert!(e.contains("sip:"), "{e}");
        assert_prefix(&with_line(11, "id = \"ac me\""), "11: business[0].id: ");
    }

    #[test]
    fn unknown_business_reference() {
        let e = assert_prefix(&with_line(16, "businesses = [\"acme\", \"globex\"]"), "16: agent[0].businesses[1]: ");
        assert!(e.contains("unknown business \"globex\""), "{e}");
    }

    #[test]
    fn duplicate_ids() {
        let dup_agent = format!("{FULL}[[agent]]\nid = \"bob\"\ncontact = \"+15551234567\"\n[[agent]]\nid = \"alice\"\ncontact = \"+15551234568\"\n");
        let e = assert_prefix(&dup_agent, "23: agent[2].id: ");
        assert!(e.contains("duplicate agent id \"alice\""), "{e}");
        let dup_business = FULL.replace("[[agent]]", "[[business]]\nid = \"acme\"\nname = \"Again\"\n[[agent]]");
        assert_prefix(&dup_business, "14: business[1].id: ");
        assert_prefix(&FULL.replace("[[business]]\nid = \"acme\"\nname = \"ACME Corp\"\n", "").replace("businesses = [\"acme\"]", ""), "1: business: ");
    }

    #[test]
    fn backends() {
        let e = assert_prefix(&with_line(7, "backend = \"dpdk\""), "7: media.backend: ");
        assert!(e.contains("not available"), "{e}");
        let e = assert_prefix(&with_line(7, "backend = \"xdp\""), "7: media.backend: ");
        assert!(e.contains("unknown variant"), "{e}");
    }

    #[test]
    fn announcement_paths_are_relative_to_the_file() {
        let dir = std::env::temp_dir().join(format!("callbridge-config-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("prompts")).unwrap();
        std::fs::write(dir.join("prompts/hold.wav"), b"RIFF").unwrap();
        let file = dir.join("cb.toml");
        let text = with_line(9, "ports = \"20000-29999\"\nannouncement = \"prompts/hold.wav\"");
        std::fs::write(&file, &text).unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.media.announcement, Some(dir.join("prompts/hold.wav")));

        std::fs::write(&file, text.replace("hold.wav", "gone.wav")).unwrap();
        let e = Config::load(&file).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        let s = e.to_string();
        assert!(s.starts_with(&format!("{}:10: media.announcement: file not found: ", file.display())), "{s}");
        assert!(s.contains("gone.wav"));

        let missing = dir.join("nope.toml");
        let e = Config::load(&missing).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Io);
        assert!(e.to_string().starts_with(&format!("{}:0: (file): ", missing.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_kinds() {
        assert_eq!(parse("[http").unwrap_err().kind, ConfigErrorKind::Syntax);
        assert_eq!(parse("x = 1").unwrap_err().kind, ConfigErrorKind::Schema);
        assert_eq!(parse(&with_line(7, "backend = \"dpdk\"")).unwrap_err().kind, ConfigErrorKind::Invalid);
        assert_eq!(parse("[[business]]\nid = \"a\"\nname = \"A\"\n").map(|c| c.agent.len()), Ok(0));
    }
}
