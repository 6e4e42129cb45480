//! The service sections: `[http]`, `[flow]`, `[limits]`, `[store]` and `[lab]` (`[sip]` is in
//! `sip_section.rs`).

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::locate::{key, Seg};
use super::secret::{check_key, Secret};

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// `listen`: TCP address of the HTTP API and web page (an IP address, not a host
    /// name). Default `127.0.0.1:8080`.
    #[serde(deserialize_with = "super::host::socket_addr")]
    pub(crate) listen: SocketAddr,
    /// `operator_key`: the carrier's key for every business and route
    /// (`Authorization: Bearer <key>`; at least 16 visible ASCII characters). Default none.
    pub(crate) operator_key: Option<Secret>,
}

impl HttpConfig {
    /// Checks `operator_key`'s shape.
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        if let Some(k) = &self.operator_key {
            check_key(k.expose(), "the operator key", 16)
                .map_err(|r| (vec![key("http"), key("operator_key")], r))?;
        }
        Ok(())
    }
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            operator_key: None,
        }
    }
}

/// `[flow]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FlowConfig {
    /// `customer_ring_secs`: how long the customer rings before we give up. 1..=600. Default 30.
    pub(crate) customer_ring_secs: u64,
    /// `agent_ring_secs`: how long an agent rings before the next one is tried. 1..=3600.
    /// Default 20.
    pub(crate) agent_ring_secs: u64,
    /// `max_agent_attempts`: agents called per request before giving up. 1..=100. Default 3.
    pub(crate) max_agent_attempts: u32,
    /// `queue_timeout_secs`: how long a request waits for a free agent. 1..=86400. Default
    /// 120.
    pub(crate) queue_timeout_secs: u64,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            customer_ring_secs: 30,
            agent_ring_secs: 20,
            max_agent_attempts: 3,
            queue_timeout_secs: 120,
        }
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

    /// Checks every count and duration against its range (see [`FLOW_RANGES`]).
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let values = [
            self.customer_ring_secs,
            self.agent_ring_secs,
            u64::from(self.max_agent_attempts),
            self.queue_timeout_secs,
        ];
        for ((name, range), v) in FLOW_RANGES.iter().zip(values) {
            in_range(&["flow", name], v, range)?;
        }
        Ok(())
    }
}

/// `[flow]`'s keys and their ranges.
const FLOW_RANGES: [(&str, RangeInclusive<u64>); 4] = [
    ("customer_ring_secs", 1..=600),
    ("agent_ring_secs", 1..=3600),
    ("max_agent_attempts", 1..=100),
    ("queue_timeout_secs", 1..=86_400),
];

/// The largest rate limit accepted (`[limits]`, `[business.limits]`): 0..=this.
pub(super) const MAX_RATE: u64 = 1_000_000;

/// `Err` at `path` unless `v` is inside `range`: "V is outside A..=B".
pub(super) fn in_range(
    path: &[&str],
    v: u64,
    range: &RangeInclusive<u64>,
) -> Result<(), (Vec<Seg>, String)> {
    if range.contains(&v) {
        return Ok(());
    }
    Err((
        path.iter().map(|k| key(k)).collect(),
        format!("{v} is outside {}..={}", range.start(), range.end()),
    ))
}

/// `[limits]`: abuse limits on `POST /v1/call-requests` (0 turns one off; each 0..=1000000). A refusal is
/// `429` with `Retry-After`. And admission, process-wide: `max_calls`, `max_setups_per_second`
/// (a refusal is `503` with `Retry-After`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    /// `per_number_per_hour`: requests to call one customer number per hour. Default 3.
    pub(crate) per_number_per_hour: u32,
    /// `per_ip_per_minute`: requests from one client address per minute (loopback is not
    /// counted). Default 10.
    pub(crate) per_ip_per_minute: u32,
    /// `per_business_per_minute`: requests for one business per minute. Default 600.
    pub(crate) per_business_per_minute: u32,
    /// `max_schedule_days`: how far ahead a request's `contact_time` may be, in days
    /// (1..=365). Default 30.
    pub(crate) max_schedule_days: u32,
    /// `max_calls`: live calls of this process at most (1..=1000000). Default: as many as
    /// the media ports and the open-file limit carry (the smaller); more than they carry is
    /// an error.
    pub(crate) max_calls: Option<u32>,
    /// `max_setups_per_second`: call set-ups started per second, process-wide (0..=100000;
    /// 0: no limit). Default [`DEFAULT_SETUPS_PER_SECOND`].
    pub(crate) max_setups_per_second: u32,
}

/// The default `limits.max_setups_per_second`: what the socket backend sets up on a 2-core
/// host with bounded set-up latency (README, `[limits]`; perf/RESULTS.md, issue 12).
pub(crate) const DEFAULT_SETUPS_PER_SECOND: u32 = 400;

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_number_per_hour: 3,
            per_ip_per_minute: 10,
            per_business_per_minute: 600,
            max_schedule_days: 30,
            max_calls: None,
            max_setups_per_second: DEFAULT_SETUPS_PER_SECOND,
        }
    }
}

impl LimitsConfig {
    /// Checks each limit against 0..=[`MAX_RATE`].
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        for (name, v) in [
            ("per_number_per_hour", self.per_number_per_hour),
            ("per_ip_per_minute", self.per_ip_per_minute),
            ("per_business_per_minute", self.per_business_per_minute),
        ] {
            in_range(&["limits", name], u64::from(v), &(0..=MAX_RATE))?;
        }
        in_range(
            &["limits", "max_schedule_days"],
            u64::from(self.max_schedule_days),
            &(1..=365),
        )?;
        if let Some(m) = self.max_calls {
            in_range(&["limits", "max_calls"], u64::from(m), &(1..=MAX_RATE))?;
        }
        in_range(
            &["limits", "max_setups_per_second"],
            u64::from(self.max_setups_per_second),
            &(0..=100_000),
        )?;
        Ok(())
    }

    /// `Err` when an explicit `max_calls` asks for more calls than `port_calls` (what the
    /// media port range holds) can carry.
    pub(super) fn check_ports(
        &self,
        port_calls: usize,
        ports: &str,
    ) -> Result<(), (Vec<Seg>, String)> {
        match self.max_calls {
            Some(m) if m as usize > port_calls => Err((
                vec![key("limits"), key("max_calls")],
                format!(
                    "{m} is more calls than media.ports {ports} holds ({port_calls}: two legs a call, an RTP/RTCP pair a leg, on each media address); lower it or widen the range"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// The admission settings: `max_calls`, the descriptor budget `descriptor_calls`
    /// (refined once `serve` is up), the calls the ports hold, `max_setups_per_second`.
    pub(crate) fn admission(
        &self,
        descriptor_calls: Option<usize>,
        port_calls: usize,
    ) -> service::AdmissionSettings {
        service::AdmissionSettings {
            max_calls: self.max_calls.map(|m| m as usize),
            descriptor_calls,
            port_calls: Some(port_calls),
            max_setups_per_second: self.max_setups_per_second,
        }
    }

    /// The rate limiter's settings.
    pub(crate) fn limits(&self) -> flows::limits::Limits {
        flows::limits::Limits {
            per_number_per_hour: self.per_number_per_hour,
            per_ip_per_minute: self.per_ip_per_minute,
            per_business_per_minute: self.per_business_per_minute,
            max_schedule_days: self.max_schedule_days,
            ..flows::limits::Limits::default()
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreConfig {
    /// `path` as written (`None`: not given).
    #[serde(rename = "path")]
    path_given: Option<PathBuf>,
    /// The SQLite database file (created on first run; WAL files beside it): `path`, made
    /// absolute by [`StoreConfig::resolve`]. Relative paths are relative to the configuration
    /// file's directory, or to the working directory with the built-in configuration. Default
    /// `callbridge.db`.
    #[serde(skip)]
    pub(crate) path: PathBuf,
    /// `url`: a PostgreSQL database shared by several control-plane nodes
    /// (`postgres://USER[:PASSWORD]@HOST:PORT/DB`) instead of the SQLite file; exclusive with
    /// `path`. Default: absent (SQLite).
    pub(crate) url: Option<String>,
}

impl StoreConfig {
    /// Makes `path` absolute (relative to `dir`) and checks that it can name a file; checks
    /// `url` and that not both are given.
    pub(super) fn resolve(&mut self, dir: &Path) -> Result<(), (Vec<Seg>, String)> {
        if let Some(url) = &self.url {
            let at = |reason: String| Err((vec![key("store"), key("url")], reason));
            if self.path_given.is_some() {
                return at("`url` (PostgreSQL) and `path` (SQLite) are exclusive; give one".into());
            }
            return match store::parse_postgres_url(url) {
                Ok(_) => Ok(()),
                Err(e) => at(e),
            };
        }
        let at = |reason: String| Err((vec![key("store"), key("path")], reason));
        self.path = self
            .path_given
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STORE_PATH));
        if self.path.as_os_str().is_empty() {
            return at("must name a file".into());
        }
        if self.path.is_relative() {
            self.path = dir.join(&self.path);
        }
        if self.path.is_dir() {
            return at(format!(
                "{} is a directory; name the database file",
                self.path.display()
            ));
        }
        Ok(())
    }
}

/// `store.path`'s default.
const DEFAULT_STORE_PATH: &str = "callbridge.db";

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path_given: None,
            path: PathBuf::from(DEFAULT_STORE_PATH),
            url: None,
        }
    }
}

/// `[lab]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LabConfig {
    /// `endpoints`: start the built-in lab SIP endpoints (test agents). Default false in a
    /// file; true only in the built-in configuration ([`Config::default`](super::Config::default)).
    pub(crate) endpoints: bool,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    const BASE: &str = "[sip]\nlisten = \"127.0.0.1:5060\"\n";
    const BUSINESS: &str = "[[business]]\nid = \"acme\"\nname = \"ACME\"\n";

    fn parse(extra: &str) -> Result<Config, String> {
        Config::parse(
            &format!("{BASE}{extra}{BUSINESS}"),
            Path::new("/etc/cb.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn size_limits_default_to_the_sip_crates() {
        let c = parse("").unwrap();
        assert_eq!(c.sip.limits(), sip::msg::Limits::default());
        let c = parse("max_message_bytes = 4096\nmax_header_bytes = 2048\nmax_body_bytes = 0\n")
            .unwrap();
        assert_eq!(
            c.sip.limits(),
            sip::msg::Limits {
                max_message_bytes: 4096,
                max_header_bytes: 2048,
                max_body_bytes: 0
            }
        );
    }

    #[test]
    fn the_bad_source_limiter_defaults_to_the_sip_crates_and_takes_its_keys() {
        let c = parse("").unwrap();
        assert_eq!(c.sip.bad_sources(), sip::guard::BadSourceLimits::default());
        let c = parse(
            "bad_message_limit = 0\nbad_message_window_secs = 5\nbad_message_cooldown_secs = 7\n",
        )
        .unwrap();
        let b = c.sip.bad_sources();
        assert_eq!(
            (b.max_bad, b.window.as_secs(), b.cooldown.as_secs()),
            (0, 5, 7)
        );
        let e = parse("bad_message_cooldown_secs = 0\n").unwrap_err();
        assert!(
            e.starts_with("/etc/cb.toml:3: sip.bad_message_cooldown_secs: must be at least 1"),
            "{e}"
        );
    }

    #[test]
    fn invites_are_allowed_from_loopback_and_the_trunk_unless_listed() {
        let show = |c: &Config| {
            c.sip
                .invite_acl(&[])
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
        };
        let c = parse("trunk = \"sip:192.0.2.10:5060\"\n").unwrap();
        assert_eq!(show(&c), ["127.0.0.0/8", "::1/128", "192.0.2.10/32"]);
        let c = parse("trunk = \"sip:[2001:db8::1]:5060\"\n").unwrap();
        assert_eq!(show(&c), ["127.0.0.0/8", "::1/128", "2001:db8::1/128"]);
        let c = parse("allow_invite_from = [\"10.0.0.0/8\", \"192.0.2.7\"]\n").unwrap();
        assert_eq!(show(&c), ["10.0.0.0/8", "192.0.2.7/32"]);
        let c = parse("allow_invite_from = []\n").unwrap();
        assert!(show(&c).is_empty());
        let e =
            parse("allow_invite_from = [\n  \"10.0.0.0/8\",\n  \"10.0.0.1/8\",\n]\n").unwrap_err();
        assert!(
            e.starts_with("/etc/cb.toml:5: sip.allow_invite_from[1]: invalid network \"10.0.0.1/8\": host bits"),
            "{e}"
        );
    }

    fn parse_sip(extra: &str) -> Result<Config, String> {
        Config::parse(
            &format!("[sip]\n{extra}{BUSINESS}"),
            Path::new("/etc/cb.toml"),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn listen_takes_one_address_or_a_list_of_transports() {
        let c = parse("").unwrap();
        assert_eq!(
            c.sip.listen.addrs(),
            [sip::ListenAddr::udp("127.0.0.1:5060".parse().unwrap())]
        );
        let c = parse_sip(
            "listen = [\"udp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\", \"tcp:[::1]:5070\"]\n",
        )
        .unwrap();
        let shown: Vec<String> = c
            .sip
            .listen
            .addrs()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            shown,
            ["udp:127.0.0.1:5060", "tcp:127.0.0.1:5060", "tcp:[::1]:5070"]
        );
        for (extra, want) in [
            ("listen = \"localhost:5060\"\n", "/etc/cb.toml:2: sip.listen: \"localhost:5060\" is not [udp:|tcp:|tls:]IP:PORT (an IP address, not a host name"),
            ("listen = [\n  \"udp:127.0.0.1:5060\",\n  \"sctp:127.0.0.1:5060\",\n]\n", "/etc/cb.toml:4: sip.listen[1]: \"sctp:127.0.0.1:5060\" is not"),
            ("listen = [\"tcp:127.0.0.1:5060\", \"tcp:127.0.0.1:5060\"]\n", "/etc/cb.toml:2: sip.listen[1]: tcp:127.0.0.1:5060 is listed twice"),
            ("listen = []\n", "/etc/cb.toml:2: sip.listen: at least one address"),
            ("session_expires_secs = 60\n", "/etc/cb.toml:2: sip.session_expires_secs: 60 is below min_se_secs (90)"),
            ("min_se_secs = 30\n", "/etc/cb.toml:2: sip.min_se_secs: 30 is outside 90..=7200"),
            ("outbound_proxy = \"sip:sbc.example.net\"\n", "/etc/cb.toml:2: sip.outbound_proxy: \"sip:sbc.example.net\" must name an IP address"),
            ("listen = [\"tls:127.0.0.1:5061\"]\n", "/etc/cb.toml:2: sip.listen[0]: a tls: listener needs [sip.tls] cert and key"),
            ("[sip.tls]\ncert = \"/nonexistent/cert.pem\"\n", "/etc/cb.toml:2: sip.tls.key: cert is set but key is not"),
            ("[sip.tls]\ncert = \"/nonexistent/c.pem\"\nkey = \"/nonexistent/k.pem\"\n", "/etc/cb.toml:3: sip.tls.cert: TLS: /nonexistent/c.pem: "),
            ("[sip.tls]\nca = \"ca.pem\"\n", "/etc/cb.toml:3: sip.tls.ca: TLS: /etc/ca.pem: "),
        ] {
            let e = parse_sip(extra).unwrap_err();
            assert!(e.starts_with(want), "{extra:?}:\n{e}\nshould start with\n{want}");
        }
    }

    #[test]
    fn bad_size_limits_name_file_line_and_key() {
        for (extra, want) in [
            ("max_message_bytes = 100\n", "/etc/cb.toml:3: sip.max_message_bytes: 100 is outside 1024..=65535"),
            ("max_message_bytes = 70000\n", "/etc/cb.toml:3: sip.max_message_bytes: 70000 is outside"),
            ("max_header_bytes = 20000\n", "/etc/cb.toml:3: sip.max_header_bytes: 20000 is outside 256..=max_message_bytes (16384)"),
            ("max_message_bytes = 2048\nmax_header_bytes = 1024\nmax_body_bytes = 4096\n", "/etc/cb.toml:5: sip.max_body_bytes: 4096 is larger than max_message_bytes (2048)"),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.starts_with(want), "{extra}: {e}");
        }
        let e = parse("max_body_bytes = -1\n").unwrap_err();
        assert!(e.starts_with("/etc/cb.toml:3: "), "{e}");
    }
}
