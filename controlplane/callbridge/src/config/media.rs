//! `[media]`: the data plane's backend, addresses and ports.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::locate::{key, Seg};

/// `media.backend`: how the data plane does packet I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// Ordinary UDP sockets (portable; the default).
    Socket,
    /// DPDK kernel bypass on dedicated cores; needs a `[dpdk]` section and a binary built with
    /// the `dpdk` cargo feature (see [`Config::check_build`](super::Config::check_build)).
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
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!("{s:?} is not a port range; write it as \"FIRST-LAST\", e.g. \"20000-29999\"")
        })?;
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
            return Err(format!(
                "the range must start on an even port (RTP), not {first}"
            ));
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

/// The longest `media.nat_window_ms` accepted.
const MAX_NAT_WINDOW_MS: u64 = 10_000;

/// `[media]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MediaConfig {
    /// `backend`: `"socket"` (default) or `"dpdk"` (needs a `[dpdk]` section).
    pub(crate) backend: Backend,
    /// `address`: the relay's IP, bound and written into SDP (not `0.0.0.0`). Default
    /// `127.0.0.1`. With `backend = "dpdk"` it is the unicast address the DPDK port owns
    /// (it answers ARP and ICMP echo for it).
    #[serde(deserialize_with = "super::host::ip_addr")]
    pub(crate) address: IpAddr,
    /// `extra_addresses`: further media addresses after `address`, e.g. `["127.0.0.2"]`.
    /// Each carries the same `ports` again, so the legs a node holds grow with the addresses
    /// (one address holds one leg per RTP/RTCP pair). Leg address index `i` is `address` for
    /// 0 and `extra_addresses[i-1]` otherwise; legs fill the first address before the next.
    /// Each must be distinct, not unspecified, not `address`, of `address`'s family; at most
    /// `dp_api::MAX_ADDRESSES - 1` of them. With a `[dpdk]` section each must be unicast and
    /// inside `address/dpdk.prefix_len` (the port answers ARP/NDP and ping for all of them).
    /// Default none.
    #[serde(deserialize_with = "super::host::ip_addrs")]
    pub(crate) extra_addresses: Vec<IpAddr>,
    /// `ports`: `"FIRST-LAST"`, even first, odd last. Default `"20000-29999"`.
    pub(crate) ports: PortRange,
    /// `announcement`: a WAV file (8 kHz mono) played while the agent is called; relative to
    /// the configuration file. Default: the built-in prompt. After [`Config::load`](super::Config::load) the path
    /// is absolute (or as written when already absolute) and the file exists.
    pub(crate) announcement: Option<PathBuf>,
    /// `workers`: data-plane workers (threads / cores); the port range is split between them.
    /// Default 1. With `backend = "dpdk"` the number of workers is the number of
    /// `dpdk.worker_cores`: leave `workers` out or give that same number; after
    /// [`Config::load`](super::Config::load) it holds that number.
    pub(crate) workers: usize,
    /// `cores`: CPU cores to pin the workers to, one per worker. Default: not pinned. Not used
    /// with `backend = "dpdk"` (use `dpdk.worker_cores`).
    pub(crate) cores: Option<Vec<usize>>,
    /// `allow_missing_cores`: `serve` starts even when `cores` names a core this host does not
    /// have (that worker runs unpinned); without it `serve` refuses, and `check-config` only
    /// warns. Default false.
    pub(crate) allow_missing_cores: bool,
    /// `learn_remote`: let each leg learn where its peer really sends RTP from, but only from
    /// the IP its SDP names (any port; `dp_api::Latch::Signalled`), never from another
    /// address, and never once the first packet was accepted (only a new SDP moves it). False:
    /// only the exact SDP address and port (`Latch::Off`). Default true.
    pub(crate) learn_remote: bool,
    /// `nat_window_ms`: peers are behind address-rewriting NATs: for this long after a leg's
    /// SDP address is known, it may also learn a source at another IP once that source sent
    /// `dp_api::LATCH_PROBATION` consecutive packets of one SSRC (`Latch::Nat`). Needs
    /// `learn_remote`; at most 10000. Default 0 (no learning from other IPs).
    pub(crate) nat_window_ms: u64,
    /// `timeout_secs`: end a bridged call when a leg sends no RTP for this long; 0 disables.
    /// 0..=3600. Default 30.
    pub(crate) timeout_secs: u64,
    /// `srtp`: SDES-SRTP (RFC 4568) for customers called by SIP URI: `"off"` (default),
    /// `"optional"` (offered, plain RTP accepted) or `"required"` (SRTP or no call). Keys are
    /// only offered over TLS (`sips:` or `;transport=tls`). Agents and trunks have their own
    /// `srtp` key.
    pub(crate) srtp: SrtpPolicy,
    /// `socket_raw_tx`: the socket backend sends IPv4 media through one raw socket, a burst
    /// per system call. Needs `CAP_NET_RAW` (the start fails without it). Default false.
    pub(crate) socket_raw_tx: bool,
    /// `socket_rx_ring`: the socket backend receives IPv4 media through an `AF_PACKET` ring
    /// per worker, no system call per packet (IPv6 and datagrams over 432 bytes stay on the
    /// sockets; the ring sees packets before netfilter's INPUT chain). Needs `CAP_NET_RAW`
    /// (the start fails without it). Default false.
    pub(crate) socket_rx_ring: bool,
    /// `socket_coalesce_us`: after a wait that brought a few packets, a socket worker sleeps
    /// up to this long before the next, then takes what arrived in one pass (fewer wake-ups,
    /// up to this much more latency). 0 (default) disables; at most 1000.
    pub(crate) socket_coalesce_us: u64,
    /// `ng_listen`: where `callbridge media` takes rtpengine's ng protocol (UDP, and TCP on
    /// the same port), e.g. `"127.0.0.1:2223"`: an address of this host. Required by
    /// `callbridge media`; not used by `serve`. Default none.
    #[serde(deserialize_with = "super::host::opt_socket_addr")]
    pub(crate) ng_listen: Option<SocketAddr>,
    /// `ng_allow_from`: networks (`"198.18.0.0/15"`, `"127.0.0.1"`) whose ng commands are
    /// taken; anything else is dropped unanswered (the ng protocol has no authentication,
    /// and a command hands media ports to whoever sends it). Default loopback only.
    pub(crate) ng_allow_from: Vec<String>,
    /// `drain_max_secs`: how long a draining `callbridge media` (SIGTERM, or the ng `drain`
    /// command) lets its live calls go on before it exits anyway. 1..=86400; default 3600
    /// (as `drain.max_seconds` for `serve`).
    pub(crate) drain_max_secs: u64,
    /// `nodes`: `serve` drives these media nodes (`callbridge media`) over ng instead of a
    /// data plane of its own, e.g. `["udp:198.18.0.2:2223", "udp:198.18.0.3:2223"]` (`udp:`
    /// may be left out; IP literals only; at most `dp_api::MAX_ADDRESSES`). When given,
    /// `serve` starts no local data plane, and `backend`, `address`, `extra_addresses`,
    /// `ports`, `workers`, `cores` and the `socket_*` keys are not used by it (each node has
    /// its own). Default none: the in-process data plane.
    pub(crate) nodes: Vec<String>,
    /// `node_timeout_ms`: the hard bound on one ng command to a media node, retransmissions
    /// included; a node that does not answer within it is marked dead at once. 50..=5000.
    /// Default 400.
    pub(crate) node_timeout_ms: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Socket,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            extra_addresses: Vec::new(),
            ports: PortRange {
                first: 20000,
                last: 29999,
            },
            announcement: None,
            workers: 1,
            cores: None,
            allow_missing_cores: false,
            learn_remote: true,
            nat_window_ms: 0,
            timeout_secs: 30,
            srtp: SrtpPolicy::Off,
            socket_raw_tx: false,
            socket_rx_ring: false,
            socket_coalesce_us: 0,
            ng_listen: None,
            ng_allow_from: vec!["127.0.0.0/8".into(), "::1".into()],
            drain_max_secs: 3600,
            nodes: Vec::new(),
            node_timeout_ms: 400,
        }
    }
}

/// A leg's SDES-SRTP policy in the configuration (`"off"`, `"optional"`, `"required"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SrtpPolicy {
    /// Plain RTP.
    #[default]
    Off,
    /// SRTP when the peer takes it (over TLS).
    Optional,
    /// SRTP or no call (and the peer must be reached over TLS).
    Required,
}

impl SrtpPolicy {
    /// The SDP layer's policy.
    pub(crate) fn policy(self) -> sip::sdp::Srtp {
        match self {
            Self::Off => sip::sdp::Srtp::Off,
            Self::Optional => sip::sdp::Srtp::Optional,
            Self::Required => sip::sdp::Srtp::Required,
        }
    }
}

impl MediaConfig {
    /// Every media address in leg address-index order: `address`, then `extra_addresses`.
    #[must_use]
    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        std::iter::once(self.address)
            .chain(self.extra_addresses.iter().copied())
            .collect()
    }

    /// Checks `address`, `extra_addresses`, `workers` and `cores`.
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
        if self.address.is_unspecified() {
            return at(
                &[key("media"), key("address")],
                format!(
                    "{} cannot be written into SDP; give the address peers should send media to",
                    self.address
                ),
            );
        }
        self.validate_extra_addresses()?;
        if self.nat_window_ms > 0 && !self.learn_remote {
            return at(
                &[key("media"), key("nat_window_ms")],
                "needs learn_remote = true (with learn_remote = false no leg learns any source)"
                    .into(),
            );
        }
        if self.nat_window_ms > MAX_NAT_WINDOW_MS {
            return at(
                &[key("media"), key("nat_window_ms")],
                format!(
                    "{} ms is too long: while the window is open anyone reaching the port can take \
                     the stream; at most {MAX_NAT_WINDOW_MS}",
                    self.nat_window_ms
                ),
            );
        }
        if !(1..=super::drain::MAX_DRAIN_SECONDS).contains(&self.drain_max_secs) {
            return at(
                &[key("media"), key("drain_max_secs")],
                format!(
                    "must be 1 to {} seconds (got {})",
                    super::drain::MAX_DRAIN_SECONDS,
                    self.drain_max_secs
                ),
            );
        }
        if self.timeout_secs > 3600 {
            return at(
                &[key("media"), key("timeout_secs")],
                format!(
                    "{} is outside 0..=3600 (0: no media timeout)",
                    self.timeout_secs
                ),
            );
        }
        let max_us = worker::socket_io::MAX_COALESCE.as_micros();
        if u128::from(self.socket_coalesce_us) > max_us {
            return at(
                &[key("media"), key("socket_coalesce_us")],
                format!(
                    "{} µs is too long (it is added to media latency); at most {max_us}",
                    self.socket_coalesce_us
                ),
            );
        }
        if self.backend == Backend::Dpdk {
            let set = [
                ("socket_raw_tx", self.socket_raw_tx),
                ("socket_rx_ring", self.socket_rx_ring),
                ("socket_coalesce_us", self.socket_coalesce_us > 0),
            ];
            if let Some((k, _)) = set.iter().find(|(_, on)| *on) {
                return at(
                    &[key("media"), key(k)],
                    "is an option of the socket backend; the dpdk backend does not use it".into(),
                );
            }
        }
        self.validate_ng()?;
        self.validate_nodes()?;
        if self.workers == 0 {
            return at(&[key("media"), key("workers")], "must be at least 1".into());
        }
        if self.workers > self.ports.pairs() {
            return at(
                &[key("media"), key("workers")],
                format!(
                    "{} workers cannot share the {} port pairs of {}",
                    self.workers,
                    self.ports.pairs(),
                    self.ports
                ),
            );
        }
        if let Some(cores) = &self.cores {
            if cores.len() != self.workers {
                return at(
                    &[key("media"), key("cores")],
                    format!(
                        "lists {} cores for {} workers; give exactly one core per worker",
                        cores.len(),
                        self.workers
                    ),
                );
            }
            for (i, c) in cores.iter().enumerate() {
                if cores[..i].contains(c) {
                    return at(
                        &[key("media"), key("cores"), Seg::Index(i)],
                        format!("core {c} is listed twice"),
                    );
                }
            }
        }
        Ok(())
    }

    /// The ng control networks (`ng_allow_from`, checked by [`Self::validate`]).
    pub(crate) fn ng_networks(&self) -> Vec<sip::guard::Network> {
        self.ng_allow_from
            .iter()
            .filter_map(|n| sip::guard::Network::parse(n).ok())
            .collect()
    }

    /// The media nodes' ng addresses (`nodes`, checked by [`Self::validate`]).
    pub(crate) fn node_addrs(&self) -> Vec<SocketAddr> {
        self.nodes
            .iter()
            .filter_map(|n| parse_node(n).ok())
            .collect()
    }

    /// Checks `nodes` and `node_timeout_ms`.
    fn validate_nodes(&self) -> Result<(), (Vec<Seg>, String)> {
        if self.nodes.len() > dp_api::MAX_ADDRESSES {
            return Err((
                vec![key("media"), key("nodes")],
                format!(
                    "{} media nodes; at most {}",
                    self.nodes.len(),
                    dp_api::MAX_ADDRESSES
                ),
            ));
        }
        let mut seen = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let at = vec![key("media"), key("nodes"), Seg::Index(i)];
            let a = parse_node(n).map_err(|e| (at.clone(), e))?;
            if seen.contains(&a) {
                return Err((at, format!("{a} is listed twice")));
            }
            seen.push(a);
        }
        if !(50..=5000).contains(&self.node_timeout_ms) {
            return Err((
                vec![key("media"), key("node_timeout_ms")],
                format!(
                    "{} is outside 50..=5000 (milliseconds a media node has to answer)",
                    self.node_timeout_ms
                ),
            ));
        }
        Ok(())
    }

    /// Checks `ng_allow_from`, and that `ng_listen` can be reached by someone it allows.
    fn validate_ng(&self) -> Result<(), (Vec<Seg>, String)> {
        for (i, n) in self.ng_allow_from.iter().enumerate() {
            if let Err(e) = sip::guard::Network::parse(n) {
                return Err((
                    vec![key("media"), key("ng_allow_from"), Seg::Index(i)],
                    format!(
                        "{n:?} is not an address or network ({e}); write e.g. \"198.18.0.0/15\""
                    ),
                ));
            }
        }
        if let Some(l) = self.ng_listen {
            let nets = self.ng_networks();
            let only_loopback = nets.iter().all(sip::guard::Network::is_loopback);
            if !l.ip().is_loopback() && only_loopback {
                return Err((
                    vec![key("media"), key("ng_allow_from")],
                    format!(
                        "media.ng_listen {l} is reachable from other hosts, but only loopback clients may send \
                         commands; list your SIP proxies' networks, e.g. ng_allow_from = [\"198.18.0.0/15\"]"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Makes `announcement` absolute (relative to `dir`) and checks that the file exists.
    pub(super) fn resolve_announcement(&mut self, dir: &Path) -> Result<(), (Vec<Seg>, String)> {
        if let Some(p) = &self.announcement {
            let full = if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            };
            if !full.is_file() {
                return Err((
                    vec![key("media"), key("announcement")],
                    format!("file not found: {} (relative paths are relative to the configuration file)", full.display()),
                ));
            }
            self.announcement = Some(full);
        }
        Ok(())
    }

    /// Checks `extra_addresses` against `address` (which is already known to be specified).
    fn validate_extra_addresses(&self) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: Vec<Seg>, reason: String| Err((segs, reason));
        let item = |i: usize| vec![key("media"), key("extra_addresses"), Seg::Index(i)];
        let max = dp_api::MAX_ADDRESSES - 1;
        if self.extra_addresses.len() > max {
            return at(
                vec![key("media"), key("extra_addresses")],
                format!(
                    "lists {} addresses; at most {max} (with media.address that makes the {} media addresses a \
                     node supports)",
                    self.extra_addresses.len(),
                    dp_api::MAX_ADDRESSES
                ),
            );
        }
        let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        for (i, &a) in self.extra_addresses.iter().enumerate() {
            if a.is_unspecified() {
                return at(
                    item(i),
                    format!(
                        "{a} cannot be written into SDP; give an address peers can send media to"
                    ),
                );
            }
            if a == self.address {
                return at(
                    item(i),
                    format!("{a} is media.address itself; list only the addresses after it"),
                );
            }
            if self.extra_addresses[..i].contains(&a) {
                return at(item(i), format!("{a} is listed twice"));
            }
            if a.is_ipv4() != self.address.is_ipv4() {
                return at(
                    item(i),
                    format!(
                        "{a} is {} but media.address {} is {}; all media addresses must be of one family",
                        family(a),
                        self.address,
                        family(self.address)
                    ),
                );
            }
        }
        Ok(())
    }

    /// The socket backend's options (`socket_*`).
    #[must_use]
    pub(crate) fn socket_options(&self) -> worker::SocketOptions {
        worker::SocketOptions {
            raw_tx: self.socket_raw_tx,
            rx_ring: self.socket_rx_ring,
            coalesce: Duration::from_micros(self.socket_coalesce_us),
        }
    }

    /// How the flows create legs.
    #[must_use]
    pub(crate) fn policy(&self) -> flows::MediaPolicy {
        flows::MediaPolicy {
            latch: match (self.learn_remote, self.nat_window_ms) {
                (false, _) => dp_api::Latch::Off,
                (true, 0) => dp_api::Latch::Signalled,
                (true, ms) => dp_api::Latch::Nat {
                    window: Duration::from_millis(ms),
                },
            },
            src_mismatch: dp_api::SrcMismatch::Drop,
            media_timeout: (self.timeout_secs > 0).then(|| Duration::from_secs(self.timeout_secs)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learn_remote_and_nat_window_choose_the_latch() {
        let latch = |learn_remote, nat_window_ms| {
            MediaConfig {
                learn_remote,
                nat_window_ms,
                ..MediaConfig::default()
            }
            .policy()
            .latch
        };
        assert_eq!(
            MediaConfig::default().policy().latch,
            dp_api::Latch::Signalled
        );
        assert_eq!(latch(false, 0), dp_api::Latch::Off);
        assert_eq!(
            latch(true, 1500),
            dp_api::Latch::Nat {
                window: Duration::from_millis(1500)
            }
        );
    }

    #[test]
    fn nat_window_needs_learn_remote_and_stays_short() {
        let check = |learn_remote, nat_window_ms| {
            MediaConfig {
                learn_remote,
                nat_window_ms,
                ..MediaConfig::default()
            }
            .validate()
            .map_err(|(_, reason)| reason)
        };
        assert!(check(true, 10_000).is_ok());
        assert!(check(false, 0).is_ok());
        assert!(check(false, 500)
            .unwrap_err()
            .contains("needs learn_remote"));
        assert!(check(true, 10_001).unwrap_err().contains("too long"));
    }

    #[test]
    fn socket_options_are_off_by_default_and_checked() {
        assert_eq!(
            MediaConfig::default().socket_options(),
            worker::SocketOptions::default()
        );
        let m = MediaConfig {
            socket_raw_tx: true,
            socket_rx_ring: true,
            socket_coalesce_us: 100,
            ..MediaConfig::default()
        };
        assert!(m.validate().is_ok());
        let o = m.socket_options();
        assert!(o.raw_tx && o.rx_ring);
        assert_eq!(o.coalesce, Duration::from_micros(100));
        let too_long = MediaConfig {
            socket_coalesce_us: 1001,
            ..MediaConfig::default()
        };
        let (at, why) = too_long.validate().unwrap_err();
        assert_eq!(at, vec![key("media"), key("socket_coalesce_us")]);
        assert!(why.contains("at most 1000"), "{why}");
        let dpdk = MediaConfig {
            backend: Backend::Dpdk,
            socket_rx_ring: true,
            ..MediaConfig::default()
        };
        let (at, _) = dpdk.validate().unwrap_err();
        assert_eq!(at, vec![key("media"), key("socket_rx_ring")]);
    }
}

/// `media` inside an `[[agent]]` or `[[trunk]]` table (`[agent.media] srtp = "required"`, or
/// `media = { srtp = "required" }`): the leg's media settings; the same as its `srtp` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LegMedia {
    /// `srtp`: see [`SrtpPolicy`].
    #[serde(default)]
    pub(crate) srtp: Option<SrtpPolicy>,
}

/// One `media.nodes` entry: `"udp:IP:PORT"` or `"IP:PORT"` (`[v6]:PORT` for IPv6).
///
/// # Errors
/// A sentence saying what is wrong.
pub(crate) fn parse_node(s: &str) -> Result<SocketAddr, String> {
    let rest = match s.split_once(':') {
        Some(("udp", rest)) => rest,
        Some(("tcp", _)) => {
            return Err(format!(
                "{s:?}: serve speaks ng to media nodes over UDP only; write \"udp:IP:PORT\""
            ))
        }
        _ => s,
    };
    let a: SocketAddr = rest.parse().map_err(|_| {
        format!("{s:?} is not a media node address; write \"udp:IP:PORT\", e.g. \"udp:198.18.0.2:2223\" (IP literals only)")
    })?;
    if a.ip().is_unspecified() || a.port() == 0 {
        return Err(format!(
            "{s:?}: give the node's own address and its ng port"
        ));
    }
    Ok(a)
}
