//! RFC 3263 lookups against a DNS server of our own on loopback (hickory-server with an
//! in-memory zone `example.test.`), counting the queries it receives.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::proto::rr::rdata::{A, AAAA, NAPTR, SOA, SRV};
use hickory_server::proto::rr::{LowerName, Name, RData, Record, RecordType};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use hickory_server::Server;
use sip::locate::{Locator, LocatorConfig, Target, Transport};
use sip::SipError;

/// TTL of every record, and the SOA's negative TTL.
const TTL: u32 = 2;

/// The queries the server received, as `(name, type)`.
type Log = Arc<Mutex<Vec<(String, RecordType)>>>;

struct Counting {
    catalog: Catalog,
    log: Log,
}

#[async_trait::async_trait]
impl RequestHandler for Counting {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        response_handle: R,
    ) -> ResponseInfo {
        if let Ok(info) = request.request_info() {
            let q = (info.query.name().to_string(), info.query.query_type());
            self.log.lock().unwrap().push(q);
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}

fn name(s: &str) -> Name {
    Name::from_str(s).unwrap()
}

fn zone() -> InMemoryZoneHandler<TokioRuntimeProvider> {
    let origin = name("example.test.");
    let mut z = InMemoryZoneHandler::empty(origin.clone(), ZoneType::Primary, AxfrPolicy::Deny);
    let mut add = |owner: &str, data: RData| {
        assert!(z.upsert_mut(Record::from_rdata(name(owner), TTL, data), 1));
    };
    let soa = SOA::new(
        name("ns.example.test."),
        name("admin.example.test."),
        1,
        60,
        60,
        600,
        TTL,
    );
    add("example.test.", RData::SOA(soa));
    let naptr = |order, pref, services: &str, repl: &str| {
        RData::NAPTR(NAPTR::new(
            order,
            pref,
            b"s".to_vec().into_boxed_slice(),
            services.as_bytes().to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name(repl),
        ))
    };
    add(
        "trunk.example.test.",
        naptr(10, 50, "SIP+D2T", "_sip._tcp.trunk.example.test."),
    );
    add(
        "trunk.example.test.",
        naptr(20, 50, "SIP+D2U", "_sip._udp.trunk.example.test."),
    );
    add(
        "trunk.example.test.",
        naptr(5, 50, "SIP+D2S", "_sip._sctp.trunk.example.test."),
    );
    let srv = |p, w, port, t: &str| RData::SRV(SRV::new(p, w, port, name(t)));
    add(
        "_sip._tcp.trunk.example.test.",
        srv(10, 0, 5070, "dead.example.test."),
    );
    add(
        "_sip._tcp.trunk.example.test.",
        srv(20, 0, 5080, "live.example.test."),
    );
    add(
        "_sip._udp.trunk.example.test.",
        srv(10, 0, 5060, "live.example.test."),
    );
    add(
        "dead.example.test.",
        RData::A(A(Ipv4Addr::new(127, 0, 0, 2))),
    );
    add(
        "live.example.test.",
        RData::A(A(Ipv4Addr::new(127, 0, 0, 3))),
    );
    add("live.example.test.", RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)));
    add(
        "_sip._udp.nonaptr.example.test.",
        srv(10, 0, 5090, "live.example.test."),
    );
    add(
        "plain.example.test.",
        RData::A(A(Ipv4Addr::new(127, 0, 0, 4))),
    );
    z
}

/// Starts the server on an ephemeral loopback port; it stops when the returned `Server` drops.
async fn dns_server() -> (Server<Counting>, SocketAddr, Log) {
    let mut catalog = Catalog::new();
    catalog.upsert(
        LowerName::new(&name("example.test.")),
        vec![Arc::new(zone())],
    );
    let log: Log = Arc::default();
    let mut server = Server::new(Counting {
        catalog,
        log: log.clone(),
    });
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    server.register_socket(socket);
    (server, addr, log)
}

fn locator(ns: SocketAddr) -> Locator {
    Locator::new(LocatorConfig {
        name_servers: vec![ns],
        timeout: Duration::from_secs(1),
        ..LocatorConfig::default()
    })
    .unwrap()
}

fn t(transport: Transport, ip: &str, port: u16) -> Target {
    Target {
        transport,
        addr: SocketAddr::new(ip.parse::<IpAddr>().unwrap(), port),
    }
}

fn queries(log: &Log) -> Vec<(String, RecordType)> {
    log.lock().unwrap().clone()
}

#[tokio::test]
async fn naptr_srv_a_ordering_and_failover() {
    let (_server, ns, log) = dns_server().await;
    let loc = locator(ns);
    let mut set = loc.locate("sip:trunk.example.test").await.unwrap();
    assert_eq!(
        set.targets(),
        [
            t(Transport::Tcp, "127.0.0.2", 5070), // SIP+D2T (order 10), SRV priority 10: the dead one
            t(Transport::Tcp, "127.0.0.3", 5080), // SRV priority 20
            t(Transport::Tcp, "::1", 5080),
            t(Transport::Udp, "127.0.0.3", 5060), // SIP+D2U (order 20)
            t(Transport::Udp, "::1", 5060),
        ]
    );
    // the dead target fails (say, connection refused): the next one is the live one
    assert_eq!(
        set.handle_failure(sip::locate::Failure::Transport),
        Some(t(Transport::Tcp, "127.0.0.3", 5080))
    );
    let q = queries(&log);
    assert!(
        q.contains(&("trunk.example.test.".into(), RecordType::NAPTR)),
        "{q:?}"
    );
    assert!(
        q.contains(&("_sip._tcp.trunk.example.test.".into(), RecordType::SRV)),
        "{q:?}"
    );
    assert!(
        !q.iter().any(|(n, _)| n.contains("sctp")),
        "unsupported NAPTR service followed: {q:?}"
    );
}

#[tokio::test]
async fn no_naptr_srv_then_plain_addresses() {
    let (_server, ns, _log) = dns_server().await;
    let loc = locator(ns);
    let set = loc.locate("sip:nonaptr.example.test").await.unwrap();
    assert_eq!(
        set.targets(),
        [
            t(Transport::Udp, "127.0.0.3", 5090),
            t(Transport::Udp, "::1", 5090)
        ]
    );
    let set = loc.locate("sip:plain.example.test").await.unwrap();
    assert_eq!(set.targets(), [t(Transport::Udp, "127.0.0.4", 5060)]);
    let set = loc.locate("sips:plain.example.test").await.unwrap();
    assert_eq!(set.targets(), [t(Transport::Tls, "127.0.0.4", 5061)]);
}

#[tokio::test]
async fn port_given_queries_addresses_only_and_ip_literal_none() {
    let (_server, ns, log) = dns_server().await;
    let loc = locator(ns);
    let set = loc
        .locate("sip:live.example.test:5099;transport=tcp")
        .await
        .unwrap();
    assert_eq!(
        set.targets(),
        [
            t(Transport::Tcp, "127.0.0.3", 5099),
            t(Transport::Tcp, "::1", 5099)
        ]
    );
    let types: Vec<RecordType> = queries(&log).into_iter().map(|(_, t)| t).collect();
    assert!(
        types
            .iter()
            .all(|t| matches!(t, RecordType::A | RecordType::AAAA)),
        "{types:?}"
    );
    let before = queries(&log).len();
    let set = loc.locate("sip:127.0.0.9:5070").await.unwrap();
    assert_eq!(set.targets(), [t(Transport::Udp, "127.0.0.9", 5070)]);
    assert_eq!(queries(&log).len(), before, "an IP literal needs no DNS");
}

#[tokio::test]
async fn nxdomain_is_a_clear_error() {
    let (_server, ns, _log) = dns_server().await;
    let err = locator(ns)
        .locate("sip:nope.example.test")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, SipError::DnsNotFound { name } if name == "nope.example.test"),
        "{err:?}"
    );
}

#[tokio::test]
async fn no_server_is_a_dns_error() {
    // a bound socket nobody answers on: every query times out
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let loc = Locator::new(LocatorConfig {
        name_servers: vec![silent.local_addr().unwrap()],
        timeout: Duration::from_millis(200),
        attempts: 1,
        ..LocatorConfig::default()
    })
    .unwrap();
    let err = loc.locate("sip:plain.example.test").await.unwrap_err();
    assert!(matches!(err, SipError::Dns(_)), "{err:?}");
}

/// The resolver's cache honours the TTL: a second lookup within it sends nothing, one after it
/// asks again.
#[tokio::test]
async fn answers_are_cached_for_their_ttl() {
    let (_server, ns, log) = dns_server().await;
    let loc = locator(ns);
    let want = [t(Transport::Udp, "127.0.0.4", 5060)];
    let first = Instant::now();
    assert_eq!(
        loc.locate("sip:plain.example.test")
            .await
            .unwrap()
            .targets(),
        want
    );
    let asked = queries(&log).len();
    assert!(asked >= 4, "NAPTR, 3 × SRV, A/AAAA: {:?}", queries(&log));
    // within the TTL (the whole lookup took far less than TTL seconds): no query
    assert!(
        first.elapsed() < Duration::from_millis(1500),
        "lookup too slow to test the cache"
    );
    assert_eq!(
        loc.locate("sip:plain.example.test")
            .await
            .unwrap()
            .targets(),
        want
    );
    assert_eq!(
        queries(&log).len(),
        asked,
        "second lookup within the TTL went to the server"
    );
    // after the TTL: asked again. Poll on a deadline rather than sleeping a fixed time.
    let deadline = first + Duration::from_secs(u64::from(TTL) + 4);
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            loc.locate("sip:plain.example.test")
                .await
                .unwrap()
                .targets(),
            want
        );
        if queries(&log).len() > asked {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new query {:?} after the TTL",
            first.elapsed()
        );
    }
    assert!(
        first.elapsed() >= Duration::from_millis(u64::from(TTL) * 1000 - 100),
        "re-queried after {:?}, before the TTL of {TTL} s",
        first.elapsed()
    );
}

/// The UA builds its `Locator` at start-up, before or outside its runtime, and spawns lookups.
#[test]
fn built_outside_a_runtime_and_lookups_are_send() {
    let loc = locator("127.0.0.1:53".parse().unwrap());
    fn assert_send<T: Send>(_: &T) {}
    let fut = loc.locate("sip:127.0.0.1");
    assert_send(&fut);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let set = rt.block_on(fut).unwrap();
    assert_eq!(set.current(), Some(t(Transport::Udp, "127.0.0.1", 5060)));
}
