//! `[sip]`: listeners (`sip.listen`), TLS (`[sip.tls]`), the registrar (`[sip.registrar]`),
//! trunks, DNS, timers and the rest of the SIP keys.

use super::locate::{key, Seg};
use super::secret::{check_key, Secret};
use flows::SipUri;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `sip.listen`: one address (`"127.0.0.1:5060"`, UDP) or a list of `"udp:IP:PORT"`,
/// `"tcp:IP:PORT"`, `"tls:IP:PORT"`. Kept as written; [`SipConfig::validate`] parses it, so an
/// error names the entry (`sip.listen[1]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listen {
    entries: Vec<String>,
    list: bool,
}

impl Listen {
    fn one(addr: &str) -> Self {
        Self {
            entries: vec![addr.to_owned()],
            list: false,
        }
    }

    /// The parsed addresses (after validation every entry parses).
    pub(crate) fn addrs(&self) -> Vec<sip::ListenAddr> {
        self.entries.iter().filter_map(|e| e.parse().ok()).collect()
    }

    /// The key path of entry `i`: `sip.listen`, or `sip.listen[i]` for a list.
    pub(super) fn seg(&self, i: usize) -> Vec<Seg> {
        let mut p = vec![key("sip"), key("listen")];
        if self.list {
            p.push(Seg::Index(i));
        }
        p
    }
}

impl std::fmt::Display for Listen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.entries.join(", "))
    }
}

impl<'de> Deserialize<'de> for Listen {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Listen;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an address \"[udp:|tcp:|tls:]IP:PORT\" or a list of them")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Listen, E> {
                Ok(Listen::one(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Listen, A::Error> {
                let mut entries = Vec::new();
                while let Some(e) = seq.next_element::<String>()? {
                    entries.push(e);
                }
                Ok(Listen {
                    entries,
                    list: true,
                })
            }
        }
        d.deserialize_any(V)
    }
}

/// `[sip.tls]`: the certificate and key `tls:` listeners present (PEM; both or neither), and
/// CA certificates trusted beyond the Mozilla roots when we connect to a TLS trunk (PEM).
/// Relative paths are taken from the config file's directory.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipTls {
    /// `cert`: our certificate chain, leaf first.
    pub(crate) cert: Option<PathBuf>,
    /// `key`: its private key (PKCS#8, RSA or EC).
    pub(crate) key: Option<PathBuf>,
    /// `ca`: CA certificates to trust for servers we connect to.
    pub(crate) ca: Option<PathBuf>,
}

impl SipTls {
    /// Makes relative paths relative to the config file's directory.
    pub(super) fn resolve(&mut self, dir: &Path) {
        for p in [&mut self.cert, &mut self.key, &mut self.ca]
            .into_iter()
            .flatten()
        {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Loads the files into rustls configurations.
    pub(crate) fn load(&self) -> Result<sip::TlsConfig, sip::SipError> {
        let pair = match (&self.cert, &self.key) {
            (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
            _ => None,
        };
        sip::TlsConfig::from_pem_files(pair, self.ca.as_deref())
    }
}

/// `[sip.registrar]`: where agents' softphones REGISTER (agents with `contact =
/// "registered"`, `sip_username`, `sip_password`). Used only when such an agent exists.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RegistrarSection {
    /// `realm`: the digest realm. Default `callbridge`.
    pub(crate) realm: String,
    /// `secret`: the key nonces are made with (at least 16 characters; keep it across
    /// restarts so nonces stay valid). Default: random per start (phones then re-register
    /// once after a restart).
    pub(crate) secret: Option<Secret>,
    /// `min_expires`: shorter registrations get 423. Default 60.
    pub(crate) min_expires: u32,
    /// `max_expires`: longer ones are shortened to this. At most 604800. Default 3600.
    pub(crate) max_expires: u32,
    /// `max_bindings_per_user`: devices per agent; a new one replaces the oldest. Default 5.
    pub(crate) max_bindings_per_user: usize,
    /// `allow_register_from`: networks allowed to REGISTER (403 before authentication
    /// otherwise). Default: everyone (home agents are anywhere; digest guards the door).
    pub(crate) allow_register_from: Option<Vec<String>>,
    /// `algorithms`: digest algorithms challenged with, in order (`"SHA-256"`, `"MD5"`).
    /// Default both, SHA-256 first (RFC 8760); put MD5 first for phones that answer only the
    /// first challenge and know only MD5.
    pub(crate) algorithms: Vec<String>,
}

impl Default for RegistrarSection {
    fn default() -> Self {
        Self {
            realm: "callbridge".into(),
            secret: None,
            min_expires: 60,
            max_expires: 3600,
            max_bindings_per_user: 5,
            allow_register_from: None,
            algorithms: vec!["SHA-256".into(), "MD5".into()],
        }
    }
}

impl RegistrarSection {
    fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let seg = |k: &str| vec![key("sip"), key("registrar"), key(k)];
        if self.realm.is_empty() || self.realm.contains(['"', '\r', '\n']) {
            return Err((
                seg("realm"),
                "must be non-empty, without quotes or line breaks".into(),
            ));
        }
        if let Some(s) = &self.secret {
            check_key(s.expose(), "the registrar secret", 16).map_err(|r| (seg("secret"), r))?;
        }
        if self.min_expires == 0 || self.min_expires > self.max_expires {
            return Err((
                seg("min_expires"),
                format!(
                    "{} must be at least 1 and at most max_expires ({})",
                    self.min_expires, self.max_expires
                ),
            ));
        }
        if self.max_expires > 604_800 {
            return Err((
                seg("max_expires"),
                format!("{} is outside 1..=604800 (a week)", self.max_expires),
            ));
        }
        if !(1..=100).contains(&self.max_bindings_per_user) {
            return Err((
                seg("max_bindings_per_user"),
                format!("{} is outside 1..=100", self.max_bindings_per_user),
            ));
        }
        if self.algorithms.is_empty() {
            return Err((
                seg("algorithms"),
                "name at least one of \"SHA-256\", \"MD5\"".into(),
            ));
        }
        for (i, a) in self.algorithms.iter().enumerate() {
            if !sip::digest::Algorithm::parse(a).is_supported() {
                return Err((
                    vec![
                        key("sip"),
                        key("registrar"),
                        key("algorithms"),
                        Seg::Index(i),
                    ],
                    format!("{a:?} is not \"SHA-256\" or \"MD5\""),
                ));
            }
        }
        for (i, net) in self.allow_register_from.iter().flatten().enumerate() {
            if let Err(e) = sip::guard::Network::parse(net) {
                return Err((
                    vec![
                        key("sip"),
                        key("registrar"),
                        key("allow_register_from"),
                        Seg::Index(i),
                    ],
                    e.to_string(),
                ));
            }
        }
        Ok(())
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipConfig {
    /// `listen`: where SIP is received: one address (UDP) or a list of `"udp:IP:PORT"`,
    /// `"tcp:IP:PORT"`, `"tls:IP:PORT"`. Default `127.0.0.1:5060` (UDP).
    pub(crate) listen: Listen,
    /// `tls`: see [`SipTls`].
    pub(crate) tls: SipTls,
    /// `registrar`: see [`RegistrarSection`].
    pub(crate) registrar: RegistrarSection,
    /// `trunk`: SIP URI of the carrier trunk / softswitch; E.164 numbers are called as
    /// `sip:+NUMBER@<trunk host:port>` (with the trunk's `;transport=`, or `sips:`). Default
    /// `sip:127.0.0.1:5080`.
    pub(crate) trunk: String,
    /// `dns_servers`: name servers (`"IP:PORT"`) for trunk and URI host names (RFC 3263).
    /// Default: the system's (`/etc/resolv.conf`).
    pub(crate) dns_servers: Vec<SocketAddr>,
    /// `outbound_proxy`: a SIP URI (`sip:IP:PORT[;transport=…]`, an IP address) every call
    /// through a trunk is sent to first (the carrier's SBC), with a pre-loaded `Route`; the
    /// Request-URI still names the trunk. Default none.
    pub(crate) outbound_proxy: Option<String>,
    /// `session_expires_secs`: the session-timer interval (RFC 4028) we ask for and refresh at
    /// half of; a dialog not refreshed in time is ended with BYE. 0: we ask for none (a
    /// peer's request is still honoured). At least `min_se_secs`, at most 86400. Default
    /// 1800.
    pub(crate) session_expires_secs: u64,
    /// `min_se_secs`: the shortest interval we accept (shorter requests get 422). 90..=7200.
    /// Default 90.
    pub(crate) min_se_secs: u64,
    /// `use_100rel`: `Supported: 100rel` in our INVITEs, so agents and trunks may send reliable
    /// provisional responses (early media in a 183, RFC 3262; we PRACK them). Default false.
    pub(crate) use_100rel: bool,
    /// `trunk_keepalive_secs`: OPTIONS to each trunk this often (the first at start); two
    /// unanswered in a row take it out of service until one is answered. 5 to 3600, or 0 for
    /// none (then no trunk is ever taken out). Default 30.
    pub(crate) trunk_keepalive_secs: u64,
    /// `user_agent`: the `User-Agent` / `Server` header value. Default `callbridge/<version>`.
    pub(crate) user_agent: String,
    /// `from_user`: the caller id (user part of `From`) shown to both parties. Default
    /// `callbridge`.
    pub(crate) from_user: String,
    /// `max_message_bytes`: the largest datagram read; a larger request gets `513 Message Too
    /// Large` (RFC 3261 21.5.7). 1 024 to 65 535. Default 16 384.
    pub(crate) max_message_bytes: usize,
    /// `max_header_bytes`: the largest header section (start line and headers); a larger
    /// request gets 513. 256 to `max_message_bytes`. Default 8 192.
    pub(crate) max_header_bytes: usize,
    /// `max_body_bytes`: the largest body; a larger request gets `413 Request Entity Too
    /// Large` (RFC 3261 21.4.11). At most `max_message_bytes`. Default 8 192.
    pub(crate) max_body_bytes: usize,
    /// `bad_message_limit`: bad datagrams (malformed or oversized) from one IP address within
    /// `bad_message_window_secs` after which its datagrams are dropped unanswered for
    /// `bad_message_cooldown_secs`; loopback is exempt; 0 turns this off. 0..=1000000. Default 20.
    pub(crate) bad_message_limit: u32,
    /// `bad_message_window_secs`: see `bad_message_limit`. 1..=3600. Default 10.
    pub(crate) bad_message_window_secs: u64,
    /// `bad_message_cooldown_secs`: see `bad_message_limit`. 1..=86400. Default 60.
    pub(crate) bad_message_cooldown_secs: u64,
    /// `allow_invite_from`: networks (`"10.0.0.0/8"`, `"192.0.2.7"`, `"::1/128"`) allowed to
    /// start a call; a new INVITE from elsewhere gets `403 Forbidden` before any policy.
    /// Default: loopback (`127.0.0.0/8`, `::1`) and the trunk's address, if it is an IP
    /// literal.
    pub(crate) allow_invite_from: Option<Vec<String>>,
}

impl SipConfig {
    /// The endpoint's size limits.
    pub(crate) fn limits(&self) -> sip::msg::Limits {
        sip::msg::Limits {
            max_message_bytes: self.max_message_bytes,
            max_header_bytes: self.max_header_bytes,
            max_body_bytes: self.max_body_bytes,
        }
    }

    /// The endpoint's limiter of sources of bad datagrams.
    pub(crate) fn bad_sources(&self) -> sip::guard::BadSourceLimits {
        sip::guard::BadSourceLimits {
            max_bad: self.bad_message_limit,
            window: Duration::from_secs(self.bad_message_window_secs),
            cooldown: Duration::from_secs(self.bad_message_cooldown_secs),
            ..sip::guard::BadSourceLimits::default()
        }
    }

    /// The networks allowed to send a new INVITE: `allow_invite_from`, or the default
    /// (loopback and the IP of `sip.trunk` or of every `[[trunk]]` given by `trunks`' URIs).
    /// Call after [`SipConfig::validate`].
    pub(crate) fn invite_acl(&self, trunks: &[String]) -> Vec<sip::guard::Network> {
        let parse = |s: &str| sip::guard::Network::parse(s).ok();
        match &self.allow_invite_from {
            Some(list) => list.iter().filter_map(|s| parse(s)).collect(),
            None => {
                let uris: Vec<&str> = if trunks.is_empty() {
                    vec![self.trunk.as_str()]
                } else {
                    trunks.iter().map(String::as_str).collect()
                };
                let literal = |uri: &&str| {
                    SipUri::parse(uri)
                        .ok()
                        .and_then(|u| parse(u.host.trim_start_matches('[').trim_end_matches(']')))
                };
                ["127.0.0.0/8", "::1/128"]
                    .iter()
                    .filter_map(|s| parse(s))
                    .chain(uris.iter().filter_map(literal))
                    .collect()
            }
        }
    }

    /// Checks `trunk`, `user_agent`, `from_user`, the size limits, the bad-source limiter and
    /// `allow_invite_from`.
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
        if self.listen.entries.is_empty() {
            return at(
                &[key("sip"), key("listen")],
                "at least one address is needed".into(),
            );
        }
        let mut seen = Vec::new();
        for (i, e) in self.listen.entries.iter().enumerate() {
            let l: sip::ListenAddr = match e.parse() {
                Ok(l) => l,
                Err(err) => return at(&self.listen.seg(i), err.to_string()),
            };
            if seen.contains(&l) {
                return at(&self.listen.seg(i), format!("{l} is listed twice"));
            }
            if l.transport == sip::Transport::Tls
                && (self.tls.cert.is_none() || self.tls.key.is_none())
            {
                return at(
                    &self.listen.seg(i),
                    "a tls: listener needs [sip.tls] cert and key".into(),
                );
            }
            seen.push(l);
        }
        match (&self.tls.cert, &self.tls.key) {
            (Some(_), None) => {
                return at(
                    &[key("sip"), key("tls"), key("key")],
                    "cert is set but key is not".into(),
                )
            }
            (None, Some(_)) => {
                return at(
                    &[key("sip"), key("tls"), key("cert")],
                    "key is set but cert is not".into(),
                )
            }
            _ => {}
        }
        if let Err(e) = self.tls.load() {
            let which = match (&self.tls.ca, e.to_string()) {
                (Some(ca), m) if m.contains(&ca.display().to_string()) => "ca",
                (_, m)
                    if self
                        .tls
                        .key
                        .as_ref()
                        .is_some_and(|k| m.contains(&k.display().to_string())) =>
                {
                    "key"
                }
                _ => "cert",
            };
            return at(&[key("sip"), key("tls"), key(which)], e.to_string());
        }
        if let Err(e) = SipUri::parse(&self.trunk) {
            return at(&[key("sip"), key("trunk")], e.to_string());
        }
        self.registrar.validate()?;
        if !(90..=7200).contains(&self.min_se_secs) {
            return at(
                &[key("sip"), key("min_se_secs")],
                format!(
                    "{} is outside 90..=7200 (RFC 4028: Min-SE is at least 90 s)",
                    self.min_se_secs
                ),
            );
        }
        if self.session_expires_secs != 0 && self.session_expires_secs < self.min_se_secs {
            return at(
                &[key("sip"), key("session_expires_secs")],
                format!(
                    "{} is below min_se_secs ({}); 0 asks for no session timer",
                    self.session_expires_secs, self.min_se_secs
                ),
            );
        }
        if let Some(p) = &self.outbound_proxy {
            let seg = [key("sip"), key("outbound_proxy")];
            if let Err(e) = SipUri::parse(p) {
                return at(&seg, e.to_string());
            }
            if sip::msg::uri_addr(p).is_err() {
                return at(
                    &seg,
                    format!("{p:?} must name an IP address (and port), not a host name"),
                );
            }
        }
        if self.trunk_keepalive_secs != 0 && !(5..=3600).contains(&self.trunk_keepalive_secs) {
            return at(
                &[key("sip"), key("trunk_keepalive_secs")],
                format!(
                    "{} is outside 5..=3600 (or 0: no keep-alive)",
                    self.trunk_keepalive_secs
                ),
            );
        }
        if self.user_agent.trim().is_empty() || self.user_agent.contains(['\r', '\n']) {
            return at(
                &[key("sip"), key("user_agent")],
                "must be a non-empty single line".into(),
            );
        }
        let user_ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,".contains(c);
        if self.from_user.is_empty() || !self.from_user.chars().all(user_ok) {
            return at(
                &[key("sip"), key("from_user")],
                format!("{:?} is not a valid SIP user part (letters, digits, + and -_.!~*'()&=$, allowed)", self.from_user),
            );
        }
        let message = self.max_message_bytes;
        if !(1024..=65_535).contains(&message) {
            return at(
                &[key("sip"), key("max_message_bytes")],
                format!("{message} is outside 1024..=65535 (a UDP datagram's payload)"),
            );
        }
        if !(256..=message).contains(&self.max_header_bytes) {
            return at(
                &[key("sip"), key("max_header_bytes")],
                format!(
                    "{} is outside 256..=max_message_bytes ({message})",
                    self.max_header_bytes
                ),
            );
        }
        if self.max_body_bytes > message {
            return at(
                &[key("sip"), key("max_body_bytes")],
                format!(
                    "{} is larger than max_message_bytes ({message})",
                    self.max_body_bytes
                ),
            );
        }
        for (name, v, range) in [
            (
                "bad_message_limit",
                u64::from(self.bad_message_limit),
                0..=1_000_000,
            ),
            (
                "bad_message_window_secs",
                self.bad_message_window_secs,
                1..=3600,
            ),
            (
                "bad_message_cooldown_secs",
                self.bad_message_cooldown_secs,
                1..=86_400,
            ),
            (
                "session_expires_secs",
                self.session_expires_secs,
                0..=86_400,
            ),
        ] {
            if !range.contains(&v) {
                let why = if v == 0 {
                    "must be at least 1".to_owned()
                } else {
                    format!("{v} is outside {}..={}", range.start(), range.end())
                };
                return at(&[key("sip"), key(name)], why);
            }
        }
        for (i, net) in self.allow_invite_from.iter().flatten().enumerate() {
            if let Err(e) = sip::guard::Network::parse(net) {
                return at(
                    &[key("sip"), key("allow_invite_from"), Seg::Index(i)],
                    e.to_string(),
                );
            }
        }
        Ok(())
    }
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: Listen::one("127.0.0.1:5060"),
            tls: SipTls::default(),
            registrar: RegistrarSection::default(),
            trunk: "sip:127.0.0.1:5080".into(),
            dns_servers: Vec::new(),
            outbound_proxy: None,
            session_expires_secs: 1800,
            min_se_secs: 90,
            use_100rel: false,
            trunk_keepalive_secs: 30,
            user_agent: concat!("callbridge/", env!("CARGO_PKG_VERSION")).into(),
            from_user: "callbridge".into(),
            max_message_bytes: sip::msg::Limits::default().max_message_bytes,
            max_header_bytes: sip::msg::Limits::default().max_header_bytes,
            max_body_bytes: sip::msg::Limits::default().max_body_bytes,
            bad_message_limit: sip::guard::BadSourceLimits::default().max_bad,
            bad_message_window_secs: sip::guard::BadSourceLimits::default().window.as_secs(),
            bad_message_cooldown_secs: sip::guard::BadSourceLimits::default().cooldown.as_secs(),
            allow_invite_from: None,
        }
    }
}
