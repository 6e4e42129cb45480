//! Carrier trunks: where calls to E.164 numbers go, in which order, and which of them are up.
//!
//! Each trunk has a SIP URI (`sip:gw.example.net;transport=tls`, `sip:192.0.2.7:5080`), a
//! priority (lower first), optional digest credentials, an optional caller id and an optional
//! list of the businesses it serves. For a call, [`Trunks::hops`] lists every place to try, in
//! order: trunks that are up by priority (ties in configuration order), each expanded into its
//! RFC 3263 targets ([`sip::locate`]: NAPTR/SRV/A/AAAA with failover between them), then the
//! trunks marked down, as a last resort (an OPTIONS-deaf trunk still gets calls). The call
//! moves to the next hop on 503, 408, a timeout or a transport error
//! ([`crate::CallLegs`]).
//!
//! Health: a keep-alive task sends OPTIONS to each trunk every `keepalive` and takes a trunk
//! out after [`DOWN_AFTER`] unanswered ones in a row (no response at all within Timer F, or a
//! transport error — any response, even a 403 or 407, shows it alive), back in on the first
//! answer. A call whose INVITE to a trunk times out or cannot be sent marks it down at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sip::digest::Credentials;
use sip::locate::{Host, Locator, SipTarget};
use sip::{Endpoint, Peer};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Unanswered keep-alives in a row after which a trunk is taken out.
pub const DOWN_AFTER: u32 = 2;

/// One configured trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSpec {
    /// A name for logs and stats (`trunk[0]`, or `sip.trunk`).
    pub name: String,
    /// The SIP URI (`sip:` or `sips:`, host, port, `;transport=`).
    pub uri: String,
    /// Lower goes first.
    pub priority: u32,
    /// Digest credentials for its 401/407 challenges.
    pub credentials: Option<Credentials>,
    /// The caller id (From user, P-Asserted-Identity) when the business sets none.
    pub caller_id: Option<String>,
    /// The businesses it carries; `None`: all.
    pub businesses: Option<Vec<String>>,
    /// SDES-SRTP on its calls (offered only over TLS: keys never cross the network in clear).
    pub srtp: sip::sdp::Srtp,
}

#[derive(Debug)]
struct Trunk {
    spec: TrunkSpec,
    /// Parsed once: scheme, host, port, transport.
    target: SipTarget,
    up: AtomicBool,
    missed: AtomicU32,
    calls: AtomicU64,
    failovers: AtomicU64,
}

/// One place to send a call's INVITE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hop {
    /// Index of the trunk in configuration order.
    pub trunk: usize,
    /// The trunk's name.
    pub trunk_name: String,
    /// `host[:port][;transport=…]` of the trunk URI, for the Request-URI `sip:+NUMBER@…`.
    pub authority: String,
    /// `sips` or `sip`.
    pub scheme: &'static str,
    /// The resolved destination.
    pub dest: Peer,
    /// The host name a TLS certificate must carry, when the URI names a host.
    pub tls_name: Option<String>,
    /// Credentials for its challenges.
    pub credentials: Option<Credentials>,
    /// The trunk's caller id.
    pub caller_id: Option<String>,
    /// SRTP policy for the leg (the trunk's, or the callee's for a SIP URI).
    pub srtp: sip::sdp::Srtp,
}

/// A trunk's state, for stats.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct TrunkStatus {
    /// Its name.
    pub name: String,
    /// Its URI.
    pub uri: String,
    /// Its priority.
    pub priority: u32,
    /// Whether it is in service.
    pub up: bool,
    /// INVITEs sent to it.
    pub calls: u64,
    /// Calls that moved on from it to another hop.
    pub failovers: u64,
}

/// The trunks, their health and a resolver. Shared (`Arc`).
pub struct Trunks {
    trunks: Vec<Trunk>,
    locator: Option<Arc<Locator>>,
    /// Whether a keep-alive task watches the trunks (only then may a call take one out: the
    /// keep-alive is what brings it back).
    monitored: AtomicBool,
}

impl std::fmt::Debug for Trunks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trunks")
            .field("trunks", &self.trunks)
            .finish_non_exhaustive()
    }
}

/// Why trunks cannot be set up.
#[derive(Debug, thiserror::Error)]
#[error("{name}: {reason}")]
pub struct TrunkError {
    /// The trunk.
    pub name: String,
    /// Why.
    pub reason: String,
}

impl Trunks {
    /// Trunks from their specs. `locator`: resolves host names (`None`: only IP literals and
    /// `localhost` work, and a trunk naming a host is never reachable).
    ///
    /// # Errors
    /// [`TrunkError`] when a URI does not parse.
    pub fn new(specs: Vec<TrunkSpec>, locator: Option<Arc<Locator>>) -> Result<Self, TrunkError> {
        let trunks = specs
            .into_iter()
            .map(|spec| {
                let target = SipTarget::parse(&spec.uri).map_err(|e| TrunkError {
                    name: spec.name.clone(),
                    reason: e.to_string(),
                })?;
                Ok(Trunk {
                    spec,
                    target,
                    up: AtomicBool::new(true),
                    missed: AtomicU32::new(0),
                    calls: AtomicU64::new(0),
                    failovers: AtomicU64::new(0),
                })
            })
            .collect::<Result<Vec<_>, TrunkError>>()?;
        Ok(Self {
            trunks,
            locator,
            monitored: AtomicBool::new(false),
        })
    }

    /// Every trunk's state.
    #[must_use]
    pub fn status(&self) -> Vec<TrunkStatus> {
        self.trunks
            .iter()
            .map(|t| TrunkStatus {
                name: t.spec.name.clone(),
                uri: t.spec.uri.clone(),
                priority: t.spec.priority,
                up: t.up.load(Ordering::Relaxed),
                calls: t.calls.load(Ordering::Relaxed),
                failovers: t.failovers.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Whether trunk `i` is in service.
    #[must_use]
    pub fn is_up(&self, i: usize) -> bool {
        self.trunks
            .get(i)
            .is_some_and(|t| t.up.load(Ordering::Relaxed))
    }

    /// The trunks' addresses that are IP literals (for the default INVITE ACL).
    #[must_use]
    pub fn literal_addresses(&self) -> Vec<std::net::IpAddr> {
        self.trunks
            .iter()
            .filter_map(|t| match t.target.host {
                Host::Ip(ip) => Some(ip),
                Host::Name(_) => None,
            })
            .collect()
    }

    fn set_up(&self, i: usize, up: bool, why: &str) {
        let Some(t) = self.trunks.get(i) else {
            return;
        };
        if t.up.swap(up, Ordering::Relaxed) != up {
            if up {
                info!(trunk = %t.spec.name, "trunk back in service ({why})");
            } else {
                warn!(trunk = %t.spec.name, "trunk taken out of service ({why})");
            }
        }
    }

    /// A call's INVITE to trunk `i` timed out or could not be sent: out of service until a
    /// keep-alive is answered.
    pub fn mark_unreachable(&self, i: usize) {
        if self.monitored.load(Ordering::Relaxed) {
            self.set_up(i, false, "a call's INVITE got no answer");
        }
    }

    /// Counts an INVITE sent to trunk `i`, and whether it came after another hop failed.
    pub fn count_call(&self, i: usize, failover: bool) {
        if let Some(t) = self.trunks.get(i) {
            t.calls.fetch_add(1, Ordering::Relaxed);
            if failover {
                t.failovers.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Resolves a trunk's URI to its targets (none when it cannot be resolved).
    async fn targets(&self, t: &Trunk) -> Vec<Peer> {
        if let Host::Ip(ip) = t.target.host {
            let transport = t.target.transport.unwrap_or(if t.target.secure {
                sip::Transport::Tls
            } else {
                sip::Transport::Udp
            });
            let port = t.target.port.unwrap_or_else(|| transport.default_port());
            return vec![Peer::new(transport, SocketAddr::new(ip, port))];
        }
        let Some(locator) = &self.locator else {
            warn!(trunk = %t.spec.name, "no DNS resolver: cannot reach a trunk named by host");
            return Vec::new();
        };
        match locator.locate(&t.spec.uri).await {
            Ok(set) => set.targets().iter().map(|&x| Peer::from(x)).collect(),
            Err(e) => {
                warn!(trunk = %t.spec.name, error = %e, "cannot resolve the trunk");
                Vec::new()
            }
        }
    }

    /// Whether any trunk serves `business` (resolvable or not).
    #[must_use]
    pub fn serves(&self, business: Option<&str>) -> bool {
        self.trunks
            .iter()
            .any(|t| match (&t.spec.businesses, business) {
                (None, _) => true,
                (Some(list), Some(b)) => list.iter().any(|x| x == b),
                (Some(_), None) => false,
            })
    }

    /// Where a call of `business` to a number may go, in order (see the module docs).
    pub async fn hops(&self, business: Option<&str>) -> Vec<Hop> {
        let serves = |t: &Trunk| match (&t.spec.businesses, business) {
            (None, _) => true,
            (Some(list), Some(b)) => list.iter().any(|x| x == b),
            (Some(_), None) => false,
        };
        let mut order: Vec<usize> = (0..self.trunks.len())
            .filter(|&i| serves(&self.trunks[i]))
            .collect();
        // Up before down, then priority; the sort is stable, so ties keep config order.
        order.sort_by_key(|&i| {
            let t = &self.trunks[i];
            (!t.up.load(Ordering::Relaxed), t.spec.priority)
        });
        let mut hops = Vec::new();
        for i in order {
            let t = &self.trunks[i];
            let tls_name = match &t.target.host {
                Host::Name(n) => Some(n.clone()),
                Host::Ip(_) => None,
            };
            let sip = flows::SipUri::parse(&t.spec.uri).ok();
            let (authority, scheme) = match &sip {
                Some(u) => (
                    format!("{}{}", u.host_port(), u.params()),
                    if u.secure { "sips" } else { "sip" },
                ),
                None => continue,
            };
            for dest in self.targets(t).await {
                hops.push(Hop {
                    trunk: i,
                    trunk_name: t.spec.name.clone(),
                    authority: authority.clone(),
                    scheme,
                    dest,
                    tls_name: tls_name.clone(),
                    credentials: t.spec.credentials.clone(),
                    caller_id: t.spec.caller_id.clone(),
                    srtp: t.spec.srtp,
                });
            }
        }
        hops
    }

    /// Sends OPTIONS to every trunk every `every` until `stop`, taking trunks out and back in
    /// (see the module docs). One task; trunks are probed one after the other.
    pub fn spawn_keepalive(
        self: &Arc<Self>,
        sip: Endpoint,
        every: Duration,
        stop: CancellationToken,
    ) {
        self.monitored.store(true, Ordering::Relaxed);
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                for i in 0..this.trunks.len() {
                    let t = &this.trunks[i];
                    let targets = this.targets(t).await;
                    let Some(&dest) = targets.first() else {
                        this.miss(i, "its host does not resolve");
                        continue;
                    };
                    let tls_name = match &t.target.host {
                        Host::Name(n) => Some(n.clone()),
                        Host::Ip(_) => None,
                    };
                    let uri = t.spec.uri.clone();
                    let outcome = tokio::select! {
                        () = stop.cancelled() => return,
                        o = sip.options(&uri, dest, tls_name) => o,
                    };
                    match outcome {
                        Ok(o) if o.answered() => {
                            t.missed.store(0, Ordering::Relaxed);
                            this.set_up(i, true, "OPTIONS answered");
                        }
                        Ok(o) => this.miss(i, &format!("OPTIONS: {o:?}")),
                        Err(_) => return,
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
            }
        });
    }

    fn miss(&self, i: usize, why: &str) {
        let Some(t) = self.trunks.get(i) else {
            return;
        };
        if t.missed.fetch_add(1, Ordering::Relaxed) + 1 >= DOWN_AFTER {
            self.set_up(i, false, why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, uri: &str, priority: u32, businesses: Option<&[&str]>) -> TrunkSpec {
        TrunkSpec {
            name: name.into(),
            uri: uri.into(),
            priority,
            credentials: None,
            caller_id: None,
            businesses: businesses.map(|b| b.iter().map(|s| (*s).to_string()).collect()),
            srtp: sip::sdp::Srtp::Off,
        }
    }

    #[tokio::test]
    async fn hops_go_by_health_then_priority_and_respect_businesses() {
        let t = Trunks::new(
            vec![
                spec("a", "sip:127.0.0.1:5081", 10, None),
                spec("b", "sip:127.0.0.2:5082;transport=tcp", 5, None),
                spec("c", "sips:127.0.0.3", 5, Some(&["beta"])),
            ],
            None,
        )
        .unwrap();
        let names = |h: &[Hop]| h.iter().map(|h| h.trunk_name.clone()).collect::<Vec<_>>();
        let h = t.hops(Some("acme")).await;
        assert_eq!(names(&h), ["b", "a"]);
        assert_eq!(
            h[0].dest,
            Peer::new(sip::Transport::Tcp, "127.0.0.2:5082".parse().unwrap())
        );
        assert_eq!(h[0].authority, "127.0.0.2:5082;transport=tcp");
        assert_eq!(names(&t.hops(Some("beta")).await), ["b", "c", "a"]);
        let c = &t.hops(Some("beta")).await[1];
        assert_eq!(
            (c.scheme, c.dest.transport, c.dest.addr.port()),
            ("sips", sip::Transport::Tls, 5061)
        );
        t.mark_unreachable(1);
        assert!(
            t.is_up(1),
            "without a keep-alive nothing would bring it back"
        );
        t.monitored.store(true, Ordering::Relaxed);
        t.mark_unreachable(1);
        assert!(!t.is_up(1));
        assert_eq!(
            names(&t.hops(Some("acme")).await),
            ["a", "b"],
            "a down trunk goes last"
        );
        assert_eq!(t.literal_addresses().len(), 3);
        // A host name without a resolver yields no hop.
        let t = Trunks::new(vec![spec("d", "sip:gw.example.test", 0, None)], None).unwrap();
        assert!(t.hops(None).await.is_empty());
        assert!(Trunks::new(vec![spec("e", "http://x", 0, None)], None).is_err());
    }
}
