//! SIP over TLS with real peers. Debian's SIPp has no TLS, so a real TLS terminator (stunnel)
//! stands in front of a TCP SIPp; its certificate (IP SAN 127.0.0.1) comes from a CA the test
//! generates:
//!
//! ```text
//!  callbridge ──TLS──► stunnel 127.0.0.1:P ──TCP──► SIPp -t t1 (customer: 401 digest, then answer)
//!      [sip.tls] ca = the test CA; [[trunk]] uri = "sip:127.0.0.1:P;transport=tls", cbtrunk/s3cret-trunk
//! ```
//!
//! * The whole call (challenged INVITE, ACKs, BYE) crosses TLS: SIPp's Contact names stunnel
//!   with `transport=tls`; every connection callbridge opened is one stunnel forwarded.
//! * A trunk whose certificate chains to a CA callbridge does not trust: the call fails at once
//!   (TLS handshake failure is a transport error: `customer_unreachable`), it does not hang.
//! * A `sips:trunk.test` trunk found through DNS (no NAPTR; SRV `_sips._tcp.trunk.test` →
//!   `tls.trunk.test`): the certificate must name the URI's domain `trunk.test` (RFC 5922
//!   4.1; the SRV target is not trusted DNS data) — a call completes when it does, and fails at
//!   once when it names only the SRV target.
//! * Two SRV targets for `sips:trunk.test`, the first with a certificate from an untrusted CA:
//!   the failed handshake moves the call to the second at once.
//! * A `tls:` listener with `[sip.tls] cert/key` answers OPTIONS 200, as do the `udp:` and
//!   `tcp:` listeners beside it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use callbridge_tests::dns::{DnsServer, Rr};
use callbridge_tests::record;
use callbridge_tests::scenario::{expect_request, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::tls::{request_over_tls, Pki, Stunnel};
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{
    Agent, Api, Callbridge, Config, PortBlock, Scenario, SilentAgent, Sipp, SippOptions,
};

/// How soon a call whose only trunk refuses the TLS handshake must have failed: a transport
/// error is immediate, a transaction timeout (Timer B) would take 32 s.
const QUICK: Duration = Duration::from_secs(8);

/// The TLS trunk with the test's digest credentials.
fn tls_trunk(addr: SocketAddr) -> String {
    format!(
        "uri = \"sip:{addr};transport=tls\"\npriority = 1\nusername = \"cbtrunk\"\npassword = \"s3cret-trunk\""
    )
}

fn sip_tls_table(keys: &[(&str, &std::path::Path)]) -> String {
    let mut s = String::from("[sip.tls]\n");
    for (k, p) in keys {
        s.push_str(&format!("{k} = \"{}\"\n", p.display()));
    }
    s
}

#[test]
fn a_challenged_call_to_a_tls_trunk_crosses_tls_end_to_end() {
    let dir = Workdir::new("sip_tls");
    let pki = Pki::generate(&dir, "trunk");
    let tls_port = PortBlock::reserve(1);
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerAuthViaTls,
        &SippOptions {
            tcp: true,
            tls_host: Some(tls_port.addr(0).to_string()),
            ..SippOptions::default()
        },
    );
    let stunnel = Stunnel::start(&dir, "stunnel", &pki, tls_port, customer.sip_addr());
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(1000, 2000),
    );

    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, stunnel.addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .with_toml(&sip_tls_table(&[("ca", &pki.ca)]));
    config.trunk_tables = vec![tls_trunk(stunnel.addr())];
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "through the TLS trunk: ");

    let mut customer = customer;
    let mut agent = agent;
    agent.assert_passed(Duration::from_secs(30));
    customer.assert_passed(Duration::from_secs(30));

    let log = customer.messages();
    assert_eq!(
        log.matches("INVITE sip:+").count(),
        2,
        "one INVITE without and one with credentials:\n{log}"
    );
    assert!(
        log.contains(&format!(
            "INVITE sip:+15551234567@{};transport=tls SIP/2.0",
            stunnel.addr()
        )),
        "the Request-URI names the TLS trunk:\n{log}"
    );
    assert!(
        log.contains("Authorization: Digest username=\"cbtrunk\""),
        "{log}"
    );
    expect_request(&customer, "ACK", "the ACKs (of the 401 and of the 200)");
    expect_request(
        &customer,
        "BYE",
        "the customer hung up on after the agent left",
    );
    // Every message SIPp exchanged carries callbridge's Via, which names the transport each
    // request was sent over: TLS for all of them.
    assert!(log.contains("Via: SIP/2.0/TLS "), "{log}");
    assert!(
        !log.contains("Via: SIP/2.0/TCP") && !log.contains("Via: SIP/2.0/UDP"),
        "a request reached the customer otherwise than over TLS:\n{log}"
    );
    // And no connection went around stunnel: callbridge opened exactly the connections
    // stunnel forwarded (the agent is UDP), and no handshake failed.
    let stats = cb.get_json("/v1/stats");
    let opened = stats["sip"]["connections_opened"].as_u64().unwrap_or(0);
    let forwarded = stunnel.forwarded() as u64;
    eprintln!("callbridge opened {opened} connection(s), stunnel forwarded {forwarded}");
    if opened == 0 || opened != forwarded {
        stunnel.fail(&format!(
            "callbridge opened {opened} connections, stunnel forwarded {forwarded}: {stats:#}"
        ));
    }
    assert_eq!(stats["sip"]["tls_failures"], 0, "{stats:#}");
}

#[test]
fn a_tls_trunk_with_an_untrusted_certificate_fails_the_call_at_once() {
    let dir = Workdir::new("sip_tls_untrusted");
    let pki = Pki::generate(&dir, "trunk");
    let other = Pki::generate(&dir, "other");
    // The handshake never completes, so stunnel never connects on: to a port nobody uses.
    let nowhere = PortBlock::reserve(1);
    let stunnel = Stunnel::start(
        &dir,
        "stunnel",
        &pki,
        PortBlock::reserve(1),
        nowhere.addr(0),
    );
    let agent = SilentAgent::bind();

    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, stunnel.addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .with_toml(&sip_tls_table(&[("ca", &other.ca)]));
    config.trunk_tables = vec![tls_trunk(stunnel.addr())];
    let mut cb = Callbridge::start(&dir, &config);

    let start = Instant::now();
    let id = cb.call(CUSTOMER);
    let done = cb.wait_done(Api::CallRequests, &id);
    let took = start.elapsed();
    cb.expect_failed(&done, "customer_unreachable");
    cb.expect_never(
        &done,
        &["announcing", "calling_agent", "bridged"],
        "the customer was never reached",
    );
    if took > QUICK {
        cb.fail(&format!(
            "the failed handshake took {took:?} to fail the call (a transport error is immediate): {done:#}"
        ));
    }
    eprintln!("failed after {took:?}: {:?}", record::reason(&done));
    let stats = cb.get_json("/v1/stats");
    assert!(
        stats["sip"]["tls_failures"].as_u64() >= Some(1),
        "the handshake failure is counted: {stats:#}"
    );
    // rustls refused the chain (alert unknown_ca), so stunnel never connected on.
    let tunnel_log = stunnel.log();
    if stunnel.forwarded() != 0 || !tunnel_log.contains("unknown ca") {
        stunnel.fail("expected one handshake refused with alert unknown ca, nothing forwarded");
    }
    agent.expect_untouched(&cb);
}

/// The zone for `sips:trunk.test`: no NAPTR, SRV `_sips._tcp.trunk.test.` → `tls.trunk.test.`
/// at `tls`'s port, `tls.trunk.test.` A 127.0.0.1.
fn sips_zone(tls: SocketAddr) -> DnsServer {
    sips_zone_with(&[(10, tls, "tls.trunk.test.")])
}

/// Like [`sips_zone`] with several SRV targets `(priority, address, target name)` (each target
/// name gets an A record 127.0.0.1).
fn sips_zone_with(targets: &[(u16, SocketAddr, &str)]) -> DnsServer {
    let mut records = Vec::new();
    for &(priority, addr, target) in targets {
        records.push((
            "_sips._tcp.trunk.test.",
            Rr::Srv {
                priority,
                weight: 0,
                port: addr.port(),
                target: target.into(),
            },
        ));
        records.push((target, Rr::A(std::net::Ipv4Addr::LOCALHOST)));
    }
    DnsServer::start("trunk.test.", &records)
}

fn sips_trunk_config(
    ports: &PortBlock,
    stunnel: &Stunnel,
    dns: &DnsServer,
    ca: &std::path::Path,
    agent: &str,
) -> Config {
    let mut config = Config::new(ports, stunnel.addr())
        .agent(Agent::new("alice", agent))
        .with_toml(&sip_tls_table(&[("ca", ca)]));
    config.trunk_tables = vec![
        "uri = \"sips:trunk.test\"\npriority = 1\nusername = \"cbtrunk\"\npassword = \"s3cret-trunk\"".into(),
    ];
    config.sip_extra = format!("dns_servers = [\"{}\"]", dns.addr());
    config
}

#[test]
fn a_sips_trunk_found_through_srv_is_verified_against_the_uri_domain() {
    let dir = Workdir::new("sip_tls_sips_srv");
    // The URI's domain only: neither the SRV target nor the address.
    let pki = Pki::generate_for(&dir, "trunk", &["trunk.test"]);
    let tls_port = PortBlock::reserve(1);
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerAuthViaTls,
        &SippOptions {
            tcp: true,
            tls_host: Some(tls_port.addr(0).to_string()),
            ..SippOptions::default()
        },
    );
    let stunnel = Stunnel::start(&dir, "stunnel", &pki, tls_port, customer.sip_addr());
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(1000, 2000),
    );
    let dns = sips_zone(stunnel.addr());
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = sips_trunk_config(&ports, &stunnel, &dns, &pki.ca, &agent.sip_uri("alice"));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "through sips:trunk.test: ");
    let mut customer = customer;
    let mut agent = agent;
    agent.assert_passed(Duration::from_secs(30));
    customer.assert_passed(Duration::from_secs(30));

    let asked = dns.queries();
    assert!(
        dns.was_asked("_sips._tcp.trunk.test.", "SRV") && dns.was_asked("tls.trunk.test.", "A"),
        "SRV _sips._tcp then A of its target: {asked:?}"
    );
    let log = customer.messages();
    assert!(
        log.contains("INVITE sips:+15551234567@trunk.test SIP/2.0"),
        "the Request-URI keeps the trunk's sips: domain:\n{log}"
    );
    assert!(
        log.contains("Authorization: Digest username=\"cbtrunk\""),
        "{log}"
    );
    assert!(
        !log.contains("Via: SIP/2.0/TCP") && !log.contains("Via: SIP/2.0/UDP"),
        "a request reached the customer otherwise than over TLS:\n{log}"
    );
    expect_request(&customer, "BYE", "the BYE, over TLS");
    let stats = cb.get_json("/v1/stats");
    assert_eq!(stats["sip"]["tls_failures"], 0, "{stats:#}");
}

#[test]
fn a_certificate_naming_only_the_srv_target_is_refused() {
    let dir = Workdir::new("sip_tls_srv_target_name");
    let pki = Pki::generate_for(&dir, "trunk", &["tls.trunk.test"]);
    let nowhere = PortBlock::reserve(1);
    let stunnel = Stunnel::start(
        &dir,
        "stunnel",
        &pki,
        PortBlock::reserve(1),
        nowhere.addr(0),
    );
    let agent = SilentAgent::bind();
    let dns = sips_zone(stunnel.addr());
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = sips_trunk_config(&ports, &stunnel, &dns, &pki.ca, &agent.sip_uri("alice"));
    let mut cb = Callbridge::start(&dir, &config);

    let start = Instant::now();
    let id = cb.call(CUSTOMER);
    let done = cb.wait_done(Api::CallRequests, &id);
    let took = start.elapsed();
    cb.expect_failed(&done, "customer_unreachable");
    if took > QUICK {
        cb.fail(&format!(
            "the refused certificate took {took:?} to fail the call: {done:#}"
        ));
    }
    assert!(
        dns.was_asked("_sips._tcp.trunk.test.", "SRV"),
        "{:?}",
        dns.queries()
    );
    // Refused for the name it was checked against: the URI's domain.
    if !cb.log().lines().any(|l| {
        l.contains("TLS handshake with")
            && l.contains("\"trunk.test\"")
            && l.contains("not valid for name")
    }) {
        cb.fail("no handshake refused for the name trunk.test in the log");
    }
    let stats = cb.get_json("/v1/stats");
    assert!(
        stats["sip"]["tls_failures"].as_u64() >= Some(1),
        "the handshake failure is counted: {stats:#}"
    );
    if stunnel.forwarded() != 0 {
        stunnel.fail("a connection was forwarded: the certificate was accepted");
    }
    agent.expect_untouched(&cb);
}

#[test]
fn a_failed_tls_handshake_fails_over_to_the_next_srv_target() {
    let dir = Workdir::new("sip_tls_srv_failover");
    // Priority 10: a certificate from a CA callbridge does not trust; priority 20: the good one.
    let bad = Pki::generate_for(&dir, "bad", &["trunk.test"]);
    let good = Pki::generate_for(&dir, "good", &["trunk.test"]);
    let nowhere = PortBlock::reserve(1);
    let bad_tunnel = Stunnel::start(
        &dir,
        "stunnel_bad",
        &bad,
        PortBlock::reserve(1),
        nowhere.addr(0),
    );
    let tls_port = PortBlock::reserve(1);
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerAuthViaTls,
        &SippOptions {
            tcp: true,
            tls_host: Some(tls_port.addr(0).to_string()),
            ..SippOptions::default()
        },
    );
    let good_tunnel = Stunnel::start(&dir, "stunnel_good", &good, tls_port, customer.sip_addr());
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(1000, 2000),
    );
    let dns = sips_zone_with(&[
        (10, bad_tunnel.addr(), "bad.trunk.test."),
        (20, good_tunnel.addr(), "good.trunk.test."),
    ]);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = sips_trunk_config(
        &ports,
        &good_tunnel,
        &dns,
        &good.ca,
        &agent.sip_uri("alice"),
    );
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "through the second SRV target: ");
    let mut customer = customer;
    let mut agent = agent;
    agent.assert_passed(Duration::from_secs(30));
    customer.assert_passed(Duration::from_secs(30));

    // The bad target was tried first: its handshake failed, nothing crossed it.
    let stats = cb.get_json("/v1/stats");
    assert_eq!(stats["sip"]["tls_failures"], 1, "{stats:#}");
    let trunk = &stats["trunks"][0];
    assert_eq!(
        (trunk["calls"].as_u64(), trunk["failovers"].as_u64()),
        (Some(2), Some(1)),
        "two INVITEs on the trunk, the second after the handshake failed: {stats:#}"
    );
    if bad_tunnel.forwarded() != 0 || !bad_tunnel.log().contains("unknown ca") {
        bad_tunnel.fail("expected its handshake refused (alert unknown ca), nothing forwarded");
    }
    if good_tunnel.forwarded() == 0 {
        good_tunnel.fail("nothing forwarded to the customer");
    }
    let log = customer.messages();
    assert!(
        !log.contains("Via: SIP/2.0/TCP") && !log.contains("Via: SIP/2.0/UDP"),
        "a request reached the customer otherwise than over TLS:\n{log}"
    );
}

fn options(via_transport: &str, me: SocketAddr, to: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/{via_transport} {me};branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

#[test]
fn options_is_answered_200_on_every_listener_tls_included() {
    let dir = Workdir::new("sip_tls_listener");
    let pki = Pki::generate(&dir, "callbridge");
    let listeners = PortBlock::reserve(2);
    let (tcp, tls) = (listeners.addr(0), listeners.addr(1));
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let nowhere = PortBlock::reserve(1);
    let mut config = Config::new(&ports, nowhere.addr(0))
        .with_toml(&sip_tls_table(&[("cert", &pki.cert), ("key", &pki.key)]));
    config.sip_extra_listen = vec![format!("tcp:{tcp}"), format!("tls:{tls}")];
    let cb = Callbridge::start(&dir, &config);
    let udp_addr = cb.config().sip;

    let mut buf = [0u8; 4096];
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = udp.local_addr().unwrap();
    udp.send_to(options("UDP", me, udp_addr, "opt-udp").as_bytes(), udp_addr)
        .unwrap();
    let (n, _) = udp
        .recv_from(&mut buf)
        .unwrap_or_else(|e| cb.fail(&format!("no answer to OPTIONS over UDP: {e}")));
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("SIP/2.0 200"), "OPTIONS over UDP: {r}");

    let mut conn = TcpStream::connect(tcp).expect("callbridge's TCP listener");
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let me = conn.local_addr().unwrap();
    conn.write_all(options("TCP", me, tcp, "opt-tcp").as_bytes())
        .unwrap();
    let n = conn
        .read(&mut buf)
        .unwrap_or_else(|e| cb.fail(&format!("no answer to OPTIONS over TCP: {e}")));
    let r = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(r.starts_with("SIP/2.0 200"), "OPTIONS over TCP: {r}");

    // The client verifies callbridge's certificate (IP SAN 127.0.0.1) against the test CA.
    let r = request_over_tls(tls, &pki.ca, |me| options("TLS", me, tls, "opt-tls"))
        .unwrap_or_else(|e| cb.fail(&format!("OPTIONS over TLS: {e}")));
    assert!(r.starts_with("SIP/2.0 200"), "OPTIONS over TLS: {r}");
    assert!(r.contains("Via: SIP/2.0/TLS "), "the Via is echoed: {r}");
    assert!(r.contains("CSeq: 1 OPTIONS"), "{r}");

    let stats = cb.get_json("/v1/stats");
    assert!(
        stats["sip"]["connections_accepted"].as_u64() >= Some(2),
        "the TCP and TLS connections were accepted: {stats:#}"
    );
    assert_eq!(stats["sip"]["tls_failures"], 0, "{stats:#}");
}
