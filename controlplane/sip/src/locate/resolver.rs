//! The I/O half of [`crate::locate`]: [`Locator`] answers a [`Resolution`]'s queries with
//! hickory-resolver.
//!
//! Caching: hickory-resolver keeps a response cache (size [`LocatorConfig::cache_size`]) in
//! which every positive answer lives for its TTL and every negative one (NXDOMAIN, no
//! records) for the SOA's negative TTL; `tests/locate.rs` checks that a second lookup within
//! the TTL sends no query and one after it does. We keep no cache of our own.

use std::net::SocketAddr;
use std::time::Duration;

use hickory_resolver::config::{
    ConnectionConfig, LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::TokioResolver;
use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::SipError;

use super::{
    Answer, NaptrRecord, Query, Resolution, SipTarget, SrvRecord, Target, TargetSet, Transport,
};

/// How a [`Locator`] resolves.
#[derive(Debug, Clone)]
pub struct LocatorConfig {
    /// The name servers to ask (UDP, TCP when a reply is truncated), in order. Empty: those
    /// of the system (`/etc/resolv.conf`), with its search domains and options.
    pub name_servers: Vec<SocketAddr>,
    /// The transports the UA can use, in order of preference when DNS gives none.
    pub transports: Vec<Transport>,
    /// Time allowed for one query to one server.
    pub timeout: Duration,
    /// How many times a query is sent before it fails.
    pub attempts: usize,
    /// How many answers the cache holds.
    pub cache_size: u64,
}

impl Default for LocatorConfig {
    /// The system's name servers; UDP, TCP and TLS; 2 s × 2 attempts; 1024 cached answers.
    fn default() -> Self {
        Self {
            name_servers: Vec::new(),
            transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
            timeout: Duration::from_secs(2),
            attempts: 2,
            cache_size: 1024,
        }
    }
}

/// Resolves SIP URIs to targets (RFC 3263) with a TTL-honouring cache. Cheap to share
/// (`Arc`), safe to use from many tasks at once.
pub struct Locator {
    resolver: TokioResolver,
    transports: Vec<Transport>,
}

impl std::fmt::Debug for Locator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Locator")
            .field("transports", &self.transports)
            .finish_non_exhaustive()
    }
}

impl Locator {
    /// Builds the resolver. Needs no runtime; lookups need a tokio runtime.
    ///
    /// # Errors
    /// [`SipError::Dns`] if the system configuration cannot be read (only when
    /// `name_servers` is empty) or the resolver cannot be built.
    pub fn new(config: LocatorConfig) -> Result<Self, SipError> {
        let dns = |e: NetError| SipError::Dns(e.to_string());
        let mut builder = if config.name_servers.is_empty() {
            TokioResolver::builder_tokio().map_err(dns)?
        } else {
            let servers = config
                .name_servers
                .iter()
                .map(|sa| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = sa.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = sa.port();
                    NameServerConfig::new(sa.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut b = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            );
            b.options_mut().use_hosts_file = ResolveHosts::Never;
            b
        };
        let opts = builder.options_mut();
        opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
        opts.timeout = config.timeout;
        opts.attempts = config.attempts.max(1);
        opts.cache_size = config.cache_size;
        let resolver = builder.build().map_err(dns)?;
        Ok(Self {
            resolver,
            transports: config.transports,
        })
    }

    /// Parses `uri` and resolves it: the targets to try, in order (RFC 3263).
    ///
    /// # Errors
    /// [`SipError::InvalidUri`]; [`SipError::DnsNotFound`] if DNS has no usable address;
    /// [`SipError::Dns`] if lookups failed and nothing was found.
    pub async fn locate(&self, uri: &str) -> Result<TargetSet, SipError> {
        let target = SipTarget::parse(uri)?;
        Ok(TargetSet::new(self.resolve(target).await?))
    }

    /// Resolves a parsed target (see [`Locator::locate`]).
    ///
    /// # Errors
    /// As [`Locator::locate`], without the parsing.
    pub async fn resolve(&self, target: SipTarget) -> Result<Vec<Target>, SipError> {
        let mut rng = StdRng::from_entropy();
        let mut res = Resolution::new(target, &self.transports);
        while let Some(q) = res.poll_query() {
            let a = self.answer(&q).await;
            res.handle_answer(a, &mut rng);
        }
        res.finish()
    }

    /// Answers one query: a special-use name ([`super::special_use`]: `*.invalid`,
    /// `localhost`) at once, without DNS; anything else from the cache or DNS.
    pub async fn answer(&self, query: &Query) -> Answer {
        if let Some(a) = super::special_use(query) {
            return a;
        }
        match query {
            Query::Naptr(name) => match self.resolver.lookup(fqdn(name), RecordType::NAPTR).await {
                Ok(l) => Answer::Naptr(
                    l.answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::NAPTR(n) => Some(NaptrRecord {
                                order: n.order,
                                preference: n.preference,
                                flags: String::from_utf8_lossy(&n.flags).into_owned(),
                                services: String::from_utf8_lossy(&n.services).into_owned(),
                                replacement: n.replacement.to_string(),
                            }),
                            _ => None,
                        })
                        .collect(),
                ),
                Err(e) => failure(e),
            },
            Query::Srv(name) => match self.resolver.lookup(fqdn(name), RecordType::SRV).await {
                Ok(l) => Answer::Srv(
                    l.answers()
                        .iter()
                        .filter_map(|r| match &r.data {
                            RData::SRV(s) => Some(SrvRecord {
                                priority: s.priority,
                                weight: s.weight,
                                port: s.port,
                                target: s.target.to_string(),
                            }),
                            _ => None,
                        })
                        .collect(),
                ),
                Err(e) => failure(e),
            },
            Query::Addr(name) => match self.resolver.lookup_ip(fqdn(name)).await {
                Ok(l) => Answer::Addr(l.iter().collect()),
                Err(e) => failure(e),
            },
        }
    }

    /// Drops every cached answer (e.g. after the trunk's configuration changed).
    pub fn clear_cache(&self) {
        self.resolver.clear_cache();
    }
}

/// Absolute name, so no search domain is tried.
fn fqdn(name: &str) -> String {
    format!("{}.", name.trim_end_matches('.'))
}

fn failure(e: NetError) -> Answer {
    if e.is_no_records_found() || e.is_nx_domain() {
        Answer::NotFound
    } else if e.to_string().to_ascii_lowercase().contains("timed out")
        || e.to_string().to_ascii_lowercase().contains("timeout")
    {
        Answer::TimedOut(e.to_string())
    } else {
        Answer::Failed(e.to_string())
    }
}
