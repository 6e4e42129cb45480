//! DNS SRV failover from a dead target to a live one (RFC 3263, RFC 2782), with a real name
//! server and real peers:
//!
//! ```text
//!  callbridge ──UDP──► DnsServer (trunk.test.)   NAPTR trunk.test.          → SIP+D2T _sip._tcp.trunk.test.
//!      │                                          SRV  _sip._tcp.trunk.test. → 10 dead.trunk.test.:D
//!      │                                                                    → 20 live.trunk.test.:L
//!      │                                          A    dead.trunk.test., live.trunk.test. → 127.0.0.1
//!      ├──TCP──► 127.0.0.1:D  nothing listens: connection refused (a transport error)
//!      └──TCP──► 127.0.0.1:L  SIPp -t t1, the customer: answers, plays audio
//! ```
//!
//! The trunk is `sip:trunk.test` and `sip.dns_servers` names the test's server only. The call
//! must go NAPTR → SRV → A, try the priority-10 target first (one refused connection, one
//! failover counted on the trunk), reach the customer through the priority-20 target over TCP,
//! bridge to the agent and complete.

use std::net::Ipv4Addr;

use callbridge_tests::dns::{DnsServer, Rr};
use callbridge_tests::scenario::{expect_request, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions};

#[test]
fn a_call_fails_over_from_a_dead_srv_target_to_a_live_one() {
    let dir = Workdir::new("dns_srv_failover");
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Answer,
        &SippOptions {
            tcp: true,
            ..SippOptions::default()
        },
    );
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(1000, 2000),
    );
    // Reserved and never bound: connecting to it is refused.
    let dead = PortBlock::reserve(1);
    let live = customer.sip_addr();
    let srv = |priority, port, target: &str| Rr::Srv {
        priority,
        weight: 0,
        port,
        target: target.into(),
    };
    let dns = DnsServer::start(
        "trunk.test.",
        &[
            (
                "trunk.test.",
                Rr::Naptr {
                    order: 10,
                    preference: 50,
                    services: "SIP+D2T".into(),
                    replacement: "_sip._tcp.trunk.test.".into(),
                },
            ),
            (
                "_sip._tcp.trunk.test.",
                srv(20, live.port(), "live.trunk.test."),
            ),
            (
                "_sip._tcp.trunk.test.",
                srv(10, dead.port(0), "dead.trunk.test."),
            ),
            ("dead.trunk.test.", Rr::A(Ipv4Addr::LOCALHOST)),
            ("live.trunk.test.", Rr::A(Ipv4Addr::LOCALHOST)),
        ],
    );

    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, live).agent(Agent::new("alice", &agent.sip_uri("alice")));
    config.trunk_tables = vec!["uri = \"sip:trunk.test\"\npriority = 1".into()];
    config.sip_extra = format!("dns_servers = [\"{}\"]", dns.addr());
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "through the live SRV target: ");

    let mut customer = customer;
    let mut agent = agent;
    agent.assert_passed(std::time::Duration::from_secs(30));
    customer.assert_passed(std::time::Duration::from_secs(30));

    // What callbridge asked the name server: the RFC 3263 chain, nothing else needed.
    let asked = dns.queries();
    for (name, rtype) in [
        ("trunk.test.", "NAPTR"),
        ("_sip._tcp.trunk.test.", "SRV"),
        ("dead.trunk.test.", "A"),
        ("live.trunk.test.", "A"),
    ] {
        if !dns.was_asked(name, rtype) {
            cb.fail(&format!("no {rtype} query for {name}; queries: {asked:?}"));
        }
    }

    // The dead target was tried first: its connection was refused (a send error, no connection
    // opened), the call failed over to the live one (the only connection opened), and the trunk
    // counts two INVITEs, the second a failover.
    let stats = cb.get_json("/v1/stats");
    assert_eq!(
        (
            stats["sip"]["send_errors"].as_u64(),
            stats["sip"]["connections_opened"].as_u64()
        ),
        (Some(1), Some(1)),
        "one refused connection (the dead target), one opened (the live one): {stats:#}"
    );
    let trunk = &stats["trunks"][0];
    assert_eq!(
        (trunk["calls"].as_u64(), trunk["failovers"].as_u64()),
        (Some(2), Some(1)),
        "two INVITEs on the trunk, the second after the dead target failed: {stats:#}"
    );
    let log = cb.log();
    let dead_peer = format!("tcp:{}", dead.addr(0));
    let live_peer = format!("tcp:{live}");
    let refused = log.lines().position(|l| {
        l.contains("SIP connection failed") && l.contains(&dead_peer) && l.contains("refused")
    });
    let failover = log
        .lines()
        .position(|l| l.contains("failing over to the next hop") && l.contains(&live_peer));
    match (refused, failover) {
        (Some(r), Some(f)) if r < f => {}
        _ => cb.fail(&format!(
            "expected {dead_peer} refused, then a failover to {live_peer} (log lines {refused:?}, {failover:?})"
        )),
    }

    let msgs = customer.messages();
    assert_eq!(
        msgs.matches("INVITE sip:+").count(),
        1,
        "the customer got one INVITE:\n{msgs}"
    );
    assert!(
        msgs.contains("INVITE sip:+15551234567@trunk.test") && msgs.contains("Via: SIP/2.0/TCP"),
        "the INVITE names the trunk's host and came over TCP:\n{msgs}"
    );
    expect_request(
        &customer,
        "BYE",
        "the customer hung up on over TCP after the agent left",
    );
}
