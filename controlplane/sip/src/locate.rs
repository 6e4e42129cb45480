//! Locating SIP servers (RFC 3263, client side): from a trunk URI to an ordered list of
//! `(transport, address)` targets, and failover along it.
//!
//! ```text
//!   SipTarget::parse("sip:trunk.example.test")          pure
//!        │
//!   Resolution  ── poll_query() → Query::{Naptr, Srv, Addr}(name) ──►  Locator (hickory-resolver,
//!               ◄─ handle_answer(query, Answer, rng) ──────────────   TTL-honouring cache; I/O)
//!        │ finish()
//!   Vec<Target>  →  TargetSet: current() / handle_failure() (RFC 3263 4.3)   pure
//! ```
//!
//! [`Resolution`] is sans-IO: it never touches the network or a clock, so every ordering rule
//! is unit-tested with fixed records and a seeded RNG. The rules (RFC 3263 4.1, 4.2):
//!
//! * IP literal: that address; port from the URI, else 5060 (5061 for TLS); transport from
//!   `transport=`, else UDP for `sip:`, TLS for `sips:`. No query.
//! * Port given (or `transport=` given): transport as above; with a port, A/AAAA only; without,
//!   SRV for that transport, then A/AAAA of each SRV target; no SRV → A/AAAA, default port.
//! * Neither: NAPTR. Records with flag `S` and a service we support (`SIP+D2U`, `SIP+D2T`,
//!   `SIPS+D2T`; only `SIPS+D2T` for a `sips:` URI) in (order, preference) order, each
//!   followed by its SRV. No usable NAPTR → SRV queries for the supported transports in
//!   order (`_sip._udp`, `_sip._tcp`, `_sips._tcp`; only `_sips._tcp` for `sips:`). No SRV at
//!   all → A/AAAA with the default port and UDP (`sip:`) / TLS (`sips:`).
//! * SRV records: by priority, RFC 2782 weighted random order within a priority; a target
//!   of `.` means "not here" and is skipped. Each SRV target's addresses are expanded in the
//!   order DNS gave them (A before AAAA in [`Locator`]); duplicates are dropped.
//!
//! An `maddr` URI parameter replaces the host (RFC 3263 4).
//!
//! Failover (RFC 3263 4.3, [`TargetSet`]): after a transport error, a transaction timeout or a
//! 503 the UA sends the request again, as a new client transaction, to the next target. The
//! list runs through every transport DNS offered, most preferred first.
//!
//! ```no_run
//! use sip::locate::{Failure, Locator, LocatorConfig};
//! # async fn demo() -> Result<(), sip::SipError> {
//! let locator = Locator::new(LocatorConfig::default())?; // /etc/resolv.conf; keep one per process
//! let mut targets = locator.locate("sip:trunk.example.test").await?;
//! while let Some(target) = targets.current() {
//!     // send via target.transport to target.addr; on a transport error, Timer B or a 503:
//!     # let failed = true;
//!     if failed { targets.handle_failure(Failure::Timeout); } else { break; }
//! }
//! # Ok(()) }
//! ```

use std::net::{IpAddr, SocketAddr};

use rand::Rng;

use crate::error::SipError;

mod resolver;
#[cfg(test)]
mod tests;

pub use self::resolver::{Locator, LocatorConfig};

pub use crate::peer::Transport;

/// One place to send a request to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// How.
    pub transport: Transport,
    /// Where.
    pub addr: SocketAddr,
}

/// The host part of a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// An IPv4 or IPv6 literal.
    Ip(IpAddr),
    /// A domain name, lower-cased, without a trailing dot.
    Name(String),
}

/// What RFC 3263 needs from a SIP URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTarget {
    /// `sips:` (TLS required).
    pub secure: bool,
    /// The host, or the `maddr` parameter if present.
    pub host: Host,
    /// The explicit port, if any.
    pub port: Option<u16>,
    /// The `transport=` parameter, if any (`tls`, or `tcp` on a `sips:` URI, give TLS).
    pub transport: Option<Transport>,
}

impl SipTarget {
    /// Parses `sip:[user[:pw]@]host[:port][;params][?headers]` (or `sips:`, optionally in
    /// `<>`). `transport=udp|tcp|tls` and `maddr=` are honoured, other parameters ignored.
    ///
    /// # Errors
    /// [`SipError::InvalidUri`] for another scheme, a bad host or port, an unknown transport, or
    /// `transport=udp` on a `sips:` URI.
    pub fn parse(uri: &str) -> Result<Self, SipError> {
        let bad = || SipError::InvalidUri(uri.to_string());
        let s = uri.trim();
        let s = s
            .strip_prefix('<')
            .and_then(|s| s.strip_suffix('>'))
            .unwrap_or(s);
        let (scheme, rest) = s.split_once(':').ok_or_else(bad)?;
        let secure = if scheme.eq_ignore_ascii_case("sips") {
            true
        } else if scheme.eq_ignore_ascii_case("sip") {
            false
        } else {
            return Err(bad());
        };
        let rest = rest.split('?').next().unwrap_or("");
        let mut parts = rest.split(';');
        let hostport = parts.next().unwrap_or("");
        let hostport = hostport.rsplit_once('@').map_or(hostport, |(_, h)| h);
        let (host, port) = split_host_port(hostport).ok_or_else(bad)?;
        let mut host = parse_host(host).ok_or_else(bad)?;
        let mut transport = None;
        for p in parts {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            let name = name.trim();
            let value = value.trim();
            if name.eq_ignore_ascii_case("transport") {
                transport = Some(match value.to_ascii_lowercase().as_str() {
                    "udp" if !secure => Transport::Udp,
                    "tcp" if secure => Transport::Tls,
                    "tcp" => Transport::Tcp,
                    "tls" => Transport::Tls,
                    _ => return Err(bad()),
                });
            } else if name.eq_ignore_ascii_case("maddr") {
                host = parse_host(value).ok_or_else(bad)?;
            }
        }
        Ok(Self {
            secure,
            host,
            port,
            transport,
        })
    }

    /// The transport when it does not come from DNS: the parameter, else UDP (`sip:`) or TLS
    /// (`sips:`) (RFC 3263 4.1).
    fn default_transport(&self) -> Transport {
        self.transport.unwrap_or(if self.secure {
            Transport::Tls
        } else {
            Transport::Udp
        })
    }
}

/// `host[:port]` with `[v6]` brackets. `None` if the port is not a number.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(r) = s.strip_prefix('[') {
        let (h, after) = r.split_once(']')?;
        return match after {
            "" => Some((h, None)),
            p => Some((h, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

/// An IP literal, or a syntactically valid domain name (RFC 3261 25.1 hostname).
fn parse_host(h: &str) -> Option<Host> {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    let name = h.strip_suffix('.').unwrap_or(h);
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    ok.then(|| Host::Name(name.to_ascii_lowercase()))
}

/// A NAPTR record, as far as RFC 3263 uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NaptrRecord {
    /// Lower first.
    pub order: u16,
    /// Lower first, within an order.
    pub preference: u16,
    /// `S` for SIP.
    pub flags: String,
    /// `SIP+D2U`, `SIP+D2T`, `SIPS+D2T`, …
    pub services: String,
    /// The SRV owner name to query next.
    pub replacement: String,
}

/// An SRV record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower first.
    pub priority: u16,
    /// Relative weight within a priority (RFC 2782).
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host to look up (`.` = the service is not available here).
    pub target: String,
}

/// A DNS question the [`Resolution`] needs answered. Names are fully qualified, without the
/// trailing dot.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Query {
    /// NAPTR records of the name.
    Naptr(String),
    /// SRV records of the name.
    Srv(String),
    /// A and AAAA records of the name.
    Addr(String),
}

/// The answer to a [`Query`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// NAPTR records (possibly none).
    Naptr(Vec<NaptrRecord>),
    /// SRV records (possibly none).
    Srv(Vec<SrvRecord>),
    /// Addresses (possibly none).
    Addr(Vec<IpAddr>),
    /// NXDOMAIN or no records of the type.
    NotFound,
    /// The lookup failed (SERVFAIL, refused, …); treated as no records, and reported if
    /// nothing is found.
    Failed(String),
    /// The name servers did not answer in time: the resolution ends here with an error (the
    /// next queries would only wait as long again while a call waits).
    TimedOut(String),
}

/// Where a [`Resolution`] is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    /// Waiting for the NAPTR answer.
    Naptr,
    /// SRV queries, one per `(transport, owner)`, in order.
    Srv {
        owners: Vec<(Transport, String)>,
        next: usize,
    },
    /// Address queries for `hops` `(transport, host, port)`, in order; `next` indexes `hops`.
    Addr {
        hops: Vec<(Transport, String, u16)>,
        next: usize,
    },
    /// Finished.
    Done,
}

/// One RFC 3263 lookup, sans-IO: ask [`Resolution::poll_query`] what to look up, feed the
/// answer to [`Resolution::handle_answer`], repeat until it returns `None`, then
/// [`Resolution::finish`]. Queries are asked one at a time, in the order the targets come out.
#[derive(Debug)]
pub struct Resolution {
    target: SipTarget,
    /// The transports the UA can use, in order of preference when DNS gives no order.
    supported: Vec<Transport>,
    phase: Phase,
    /// A/AAAA answers for hop hosts already asked, so a host shared by SRV records is asked once.
    addrs: Vec<(String, Vec<IpAddr>)>,
    /// `(transport, host, port)` from the SRV answers so far, in order.
    pending_hops: Vec<(Transport, String, u16)>,
    targets: Vec<Target>,
    /// Set when the URI demands a transport the UA does not support.
    unsupported: Option<Transport>,
    first_error: Option<String>,
}

impl Resolution {
    /// Starts a lookup of `target` for a UA that supports `supported` transports (a transport
    /// not in it is never returned; if it is empty, all three are assumed).
    pub fn new(target: SipTarget, supported: &[Transport]) -> Self {
        let mut supported: Vec<Transport> = if supported.is_empty() {
            vec![Transport::Udp, Transport::Tcp, Transport::Tls]
        } else {
            supported.to_vec()
        };
        if target.secure {
            supported.retain(|t| *t == Transport::Tls);
        }
        let mut r = Self {
            supported,
            phase: Phase::Done,
            addrs: Vec::new(),
            pending_hops: Vec::new(),
            targets: Vec::new(),
            unsupported: None,
            first_error: None,
            target,
        };
        let fixed = r.target.default_transport();
        let explicit = r.target.transport.is_some()
            || r.target.port.is_some()
            || r.target.secure
            || matches!(r.target.host, Host::Ip(_));
        if explicit && !r.supported.contains(&fixed) {
            r.unsupported = Some(fixed);
            return r;
        }
        r.phase = match (&r.target.host, r.target.port, r.target.transport) {
            (Host::Ip(ip), port, _) => {
                let port = port.unwrap_or(fixed.default_port());
                r.targets.push(Target {
                    transport: fixed,
                    addr: SocketAddr::new(*ip, port),
                });
                Phase::Done
            }
            (Host::Name(name), Some(port), _) => Phase::Addr {
                hops: vec![(fixed, name.clone(), port)],
                next: 0,
            },
            (Host::Name(name), None, Some(t)) => Phase::Srv {
                owners: vec![(t, format!("{}.{name}", t.srv_prefix()))],
                next: 0,
            },
            (Host::Name(_), None, None) => Phase::Naptr,
        };
        r
    }

    fn name(&self) -> &str {
        match &self.target.host {
            Host::Name(n) => n,
            Host::Ip(_) => "",
        }
    }

    /// The next question, or `None` when the lookup is complete.
    #[must_use]
    pub fn poll_query(&self) -> Option<Query> {
        match &self.phase {
            Phase::Naptr => Some(Query::Naptr(self.name().to_string())),
            Phase::Srv { owners, next, .. } => {
                owners.get(*next).map(|(_, o)| Query::Srv(o.clone()))
            }
            Phase::Addr { hops, next } => hops.get(*next).map(|(_, h, _)| Query::Addr(h.clone())),
            Phase::Done => None,
        }
    }

    /// Takes the answer to the query [`Resolution::poll_query`] returned. `rng` orders SRV
    /// records of equal priority by weight. An answer of the wrong kind counts as none.
    pub fn handle_answer<R: Rng + ?Sized>(&mut self, answer: Answer, rng: &mut R) {
        let answer = match answer {
            Answer::Failed(e) => {
                self.first_error.get_or_insert(e);
                Answer::NotFound
            }
            Answer::TimedOut(e) => {
                self.first_error.get_or_insert(e);
                // Targets found so far stay usable.
                self.phase = Phase::Done;
                return;
            }
            a => a,
        };
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        self.phase = match phase {
            Phase::Naptr => {
                let records = match answer {
                    Answer::Naptr(r) => r,
                    _ => Vec::new(),
                };
                let owners = order_naptr(&records, &self.supported);
                if owners.is_empty() {
                    let name = self.name().to_string();
                    let owners = self
                        .supported
                        .iter()
                        .map(|t| (*t, format!("{}.{name}", t.srv_prefix())))
                        .collect();
                    Phase::Srv { owners, next: 0 }
                } else {
                    Phase::Srv { owners, next: 0 }
                }
            }
            Phase::Srv { owners, next } => {
                let records = match answer {
                    Answer::Srv(r) => r,
                    _ => Vec::new(),
                };
                if let Some((t, _)) = owners.get(next) {
                    let t = *t;
                    self.pending_hops.extend(
                        order_srv(records, rng)
                            .into_iter()
                            .map(|s| (t, s.target, s.port)),
                    );
                }
                if next + 1 < owners.len() {
                    Phase::Srv {
                        owners,
                        next: next + 1,
                    }
                } else {
                    let mut hops = std::mem::take(&mut self.pending_hops);
                    if hops.is_empty() {
                        // RFC 3263 4.1/4.2: no SRV records → A/AAAA with the default port, over
                        // UDP (sip:) or TLS (sips:), or else the first transport we support
                        let t = self.target.default_transport();
                        let t = if self.supported.contains(&t) {
                            Some(t)
                        } else {
                            self.supported.first().copied()
                        };
                        if let Some(t) = t {
                            hops.push((t, self.name().to_string(), t.default_port()));
                        }
                    }
                    Phase::Addr { hops, next: 0 }
                }
            }
            Phase::Addr { hops, next } => {
                let ips = match answer {
                    Answer::Addr(a) => a,
                    _ => Vec::new(),
                };
                if let Some((_, host, _)) = hops.get(next) {
                    if !self.addrs.iter().any(|(h, _)| h == host) {
                        self.addrs.push((host.clone(), ips));
                    }
                }
                // expand this hop and any following hops whose host is already known
                let mut next = next;
                while let Some((t, h, port)) = hops.get(next) {
                    let Some((_, ips)) = self.addrs.iter().find(|(k, _)| k == h) else {
                        break;
                    };
                    for ip in ips {
                        let tgt = Target {
                            transport: *t,
                            addr: SocketAddr::new(*ip, *port),
                        };
                        if !self.targets.contains(&tgt) {
                            self.targets.push(tgt);
                        }
                    }
                    next += 1;
                }
                if next < hops.len() {
                    Phase::Addr { hops, next }
                } else {
                    Phase::Done
                }
            }
            Phase::Done => Phase::Done,
        };
    }

    /// The ordered targets.
    ///
    /// # Errors
    /// [`SipError::DnsNotFound`] if DNS led to no address; [`SipError::Dns`] if it led nowhere
    /// and a lookup failed (the first failure's text).
    pub fn finish(self) -> Result<Vec<Target>, SipError> {
        if !self.targets.is_empty() {
            return Ok(self.targets);
        }
        if let Some(t) = self.unsupported {
            return Err(SipError::InvalidUri(format!(
                "{:?}: transport {t} is not supported here",
                self.target.host
            )));
        }
        match (self.first_error, &self.target.host) {
            (Some(e), _) => Err(SipError::Dns(e)),
            (None, Host::Name(n)) => Err(SipError::DnsNotFound { name: n.clone() }),
            (None, Host::Ip(ip)) => Err(SipError::DnsNotFound {
                name: ip.to_string(),
            }),
        }
    }
}

/// RFC 6761 special-use names, answered without asking DNS (section 6.3, 6.4: resolvers
/// "SHOULD" recognise them): anything under `invalid` does not exist (NXDOMAIN, no query ever
/// leaves the host), and `localhost` with its subdomains is the loopback interface. `None`:
/// an ordinary name, to be looked up.
#[must_use]
pub fn special_use(query: &Query) -> Option<Answer> {
    let name = match query {
        Query::Naptr(n) | Query::Srv(n) | Query::Addr(n) => n.trim_end_matches('.'),
    };
    let name = name.to_ascii_lowercase();
    let under = |tld: &str| name == tld || name.ends_with(&format!(".{tld}"));
    if under("invalid") {
        return Some(Answer::NotFound);
    }
    if under("localhost") {
        return Some(match query {
            Query::Addr(_) => Answer::Addr(vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]),
            Query::Naptr(_) | Query::Srv(_) => Answer::NotFound,
        });
    }
    None
}

/// RFC 3263 4.1: the NAPTR records we can use (flag `S`, a supported service), by order then
/// preference, as `(transport, SRV owner name)`. The sort is stable, so equal keys keep DNS
/// order.
pub fn order_naptr(records: &[NaptrRecord], supported: &[Transport]) -> Vec<(Transport, String)> {
    let mut usable: Vec<&NaptrRecord> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s"))
        .filter(|r| {
            Transport::from_naptr_service(&r.services).is_some_and(|t| supported.contains(&t))
        })
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    let mut out: Vec<(Transport, String)> = Vec::new();
    for r in usable {
        let Some(t) = Transport::from_naptr_service(&r.services) else {
            continue;
        };
        let owner = r.replacement.trim_end_matches('.').to_ascii_lowercase();
        if !owner.is_empty() && !out.iter().any(|(ot, o)| *ot == t && *o == owner) {
            out.push((t, owner));
        }
    }
    out
}

/// RFC 2782: by priority (lower first); within a priority, a weighted random order (the
/// chance to come next is proportional to the weight; weight-0 records come last unless all
/// are 0). Records whose target is `.` are dropped. Target names lose their trailing dot.
pub fn order_srv<R: Rng + ?Sized>(mut records: Vec<SrvRecord>, rng: &mut R) -> Vec<SrvRecord> {
    records.retain(|r| !r.target.trim_end_matches('.').is_empty());
    for r in &mut records {
        r.target = r.target.trim_end_matches('.').to_ascii_lowercase();
    }
    records.sort_by_key(|r| r.priority);
    let mut out = Vec::with_capacity(records.len());
    let mut rest = records.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let (group, tail) = rest.split_at(same);
        // RFC 2782 puts weight-0 records first in the list and then draws a running sum in
        // 0..=total, which gives them a small chance; we follow it exactly.
        let mut pool: Vec<&SrvRecord> = group.iter().filter(|r| r.weight == 0).collect();
        pool.extend(group.iter().filter(|r| r.weight > 0));
        while !pool.is_empty() {
            let total: u32 = pool.iter().map(|r| u32::from(r.weight)).sum();
            let pick = rng.gen_range(0..=total);
            let mut sum = 0;
            let idx = pool
                .iter()
                .position(|r| {
                    sum += u32::from(r.weight);
                    sum >= pick
                })
                .unwrap_or(pool.len() - 1);
            out.push(pool.remove(idx).clone());
        }
        rest = tail;
    }
    out
}

/// Why the UA gives up on a target (RFC 3263 4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The transport reported an error (ICMP unreachable, connection refused/reset, TLS failure).
    Transport,
    /// The client transaction timed out (Timer B/F; a 408 generated locally).
    Timeout,
    /// A `503 Service Unavailable` response.
    ServiceUnavailable,
}

/// The targets of one request, in order, with the one in use. Owned by the UA for one
/// request (and its retries); a new request to the same URI starts a new set (cheap: the
/// DNS answers are cached), a request within a dialog goes to the dialog's remote target.
#[derive(Debug, Clone)]
pub struct TargetSet {
    targets: Vec<Target>,
    current: usize,
}

impl TargetSet {
    /// A set starting at the first target.
    pub fn new(targets: Vec<Target>) -> Self {
        Self {
            targets,
            current: 0,
        }
    }

    /// The target to send to now; `None` once all have failed.
    pub fn current(&self) -> Option<Target> {
        self.targets.get(self.current).copied()
    }

    /// Records that the current target failed and returns the next one to try (with a new
    /// transaction: new branch, same Call-ID/CSeq handling as the UA does for a retry), or
    /// `None` if none is left: then the request fails with the last response or error.
    pub fn handle_failure(&mut self, failure: Failure) -> Option<Target> {
        let _ = failure; // every RFC 3263 4.3 failure moves on the same way
        if self.current < self.targets.len() {
            self.current += 1;
        }
        self.current()
    }

    /// Whether a final response with this status means "try the next target" (only 503,
    /// RFC 3263 4.3; any other response ends the search).
    pub fn fails_over_on(status: u16) -> bool {
        status == 503
    }

    /// Targets not yet tried, the current one included.
    pub fn remaining(&self) -> &[Target] {
        self.targets.get(self.current..).unwrap_or(&[])
    }

    /// All targets, in order.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }
}

impl From<Target> for crate::peer::Peer {
    fn from(t: Target) -> Self {
        Self::new(t.transport, t.addr)
    }
}
