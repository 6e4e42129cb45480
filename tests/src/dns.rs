//! A DNS server of the test's own on loopback: hickory-server with an in-memory zone, on its own
//! thread and tokio runtime, logging every query it receives (name and type) so a test can say
//! what callbridge asked (RFC 3263: NAPTR, SRV, A/AAAA).
//!
//! ```text
//!  callbridge (sip.dns_servers = ["127.0.0.1:PORT"]) ──UDP──► DnsServer (zone from Rr records)
//! ```
//!
//! The test's records are plain values ([`Rr`]), so no test names a hickory type. Every record
//! has a TTL of [`TTL`] seconds; names absent from the zone get NXDOMAIN, absent types NOERROR
//! with the zone's SOA. The server stops (and its socket closes) when dropped.

use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::rr::rdata::{A, NAPTR, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;

/// TTL of every record, and the SOA's negative TTL.
pub const TTL: u32 = 2;

/// One record's data (its owner name is given beside it, fully qualified: `"x.test."`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rr {
    /// An IPv4 address.
    A(Ipv4Addr),
    /// RFC 2782: priority (lower first), weight, port, target host.
    Srv {
        /// Lower is tried first.
        priority: u16,
        /// Among equal priorities.
        weight: u16,
        /// The target's port.
        port: u16,
        /// The target's host name.
        target: String,
    },
    /// RFC 3403 / RFC 3263 4.1: order, preference, flags `"s"`, `services` (`"SIP+D2T"`),
    /// `replacement` (the SRV name).
    Naptr {
        /// Lower first.
        order: u16,
        /// Among equal orders.
        preference: u16,
        /// E.g. `"SIP+D2T"`.
        services: String,
        /// The SRV name, e.g. `"_sip._tcp.trunk.test."`.
        replacement: String,
    },
}

/// A query the server received: the name as asked (fully qualified, lower case as sent) and
/// its type (`"SRV"`, `"A"`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// E.g. `"_sip._tcp.trunk.test."`.
    pub name: String,
    /// E.g. `"SRV"`.
    pub rtype: String,
}

type Log = Arc<Mutex<Vec<Query>>>;

struct Logging {
    catalog: Catalog,
    log: Log,
}

#[async_trait::async_trait]
impl RequestHandler for Logging {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let q = Query {
                name: info.query.name().to_string(),
                rtype: info.query.query_type().to_string(),
            };
            self.log.lock().unwrap_or_else(|p| p.into_inner()).push(q);
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap_or_else(|e| panic!("bad DNS name {s:?}: {e}"))
}

fn rdata(rr: &Rr) -> RData {
    match rr {
        Rr::A(ip) => RData::A(A(*ip)),
        Rr::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(*priority, *weight, *port, name(target))),
        Rr::Naptr {
            order,
            preference,
            services,
            replacement,
        } => RData::NAPTR(NAPTR::new(
            *order,
            *preference,
            b"s".to_vec().into_boxed_slice(),
            services.as_bytes().to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name(replacement),
        )),
    }
}

/// The DNS server; stopped when dropped.
#[derive(Debug)]
pub struct DnsServer {
    addr: SocketAddr,
    log: Log,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Serves the zone `origin` (`"trunk.test."`, with an SOA) holding `records` (owner name,
    /// data) on an ephemeral UDP port of 127.0.0.1.
    ///
    /// # Panics
    /// If a name does not parse, a record is refused by the zone, or the socket or runtime
    /// cannot be set up.
    #[must_use]
    pub fn start(origin: &str, records: &[(&str, Rr)]) -> Self {
        let origin = name(origin);
        let mut zone = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name(&format!("ns.{origin}")),
            name(&format!("admin.{origin}")),
            1,
            60,
            60,
            600,
            TTL,
        );
        let mut add = |owner: &Name, data: RData| {
            assert!(
                zone.upsert_mut(Record::from_rdata(owner.clone(), TTL, data), 1),
                "the zone refused a record for {owner}"
            );
        };
        add(&origin, RData::SOA(soa));
        for (owner, rr) in records {
            add(&name(owner), rdata(rr));
        }
        let mut catalog = Catalog::new();
        catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);

        let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind the DNS socket");
        socket
            .set_nonblocking(true)
            .expect("non-blocking DNS socket");
        let addr = socket.local_addr().expect("the DNS socket's address");
        let log: Log = Arc::default();
        let handler = Logging {
            catalog,
            log: log.clone(),
        };
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime for the DNS server");
        let thread = std::thread::Builder::new()
            .name(format!("dns {addr}"))
            .spawn(move || {
                runtime.block_on(async move {
                    let mut server = Server::new(handler);
                    let socket =
                        tokio::net::UdpSocket::from_std(socket).expect("register the DNS socket");
                    server.register_socket(socket);
                    let _ = stopped.await;
                    let _ = server.shutdown_gracefully().await;
                });
            })
            .expect("spawn the DNS server thread");
        Self {
            addr,
            log,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Where it listens (UDP).
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Every query received so far, in order.
    #[must_use]
    pub fn queries(&self) -> Vec<Query> {
        self.log.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether a query for `name` (fully qualified, any case) of type `rtype` arrived.
    #[must_use]
    pub fn was_asked(&self, name: &str, rtype: &str) -> bool {
        self.queries()
            .iter()
            .any(|q| q.name.eq_ignore_ascii_case(name) && q.rtype == rtype)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
