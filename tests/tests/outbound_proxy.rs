//! `sip.outbound_proxy`: calls through the trunk go to the proxy first, with a pre-loaded
//! `Route: <proxy;lr>`, while the Request-URI still names the trunk. The proxy is our
//! impairment proxy without impairment (it forwards every datagram to the customer SIPp, whose
//! Contact names the proxy so in-dialog requests cross it too); the agent is reached directly.

use callbridge_tests::impair::{Impairment, ProxySocket};
use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions};

#[test]
fn trunk_calls_go_through_the_outbound_proxy() {
    let dir = Workdir::new("outbound_proxy");
    let sink = PortBlock::reserve(2);
    let proxy = ProxySocket::bind();
    let proxy_addr = proxy.local_addr();
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerViaProxy,
        &SippOptions {
            rtp_port: Some(sink.port(0)),
            proxy: Some(proxy_addr),
            ..SippOptions::default()
        },
    );
    let proxy = proxy.start(
        customer.sip_addr(),
        None,
        Impairment::NONE,
        Impairment::NONE,
        1,
    );
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(500, 2000),
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    // The trunk is the customer SIPp itself; the proxy sits in front of it.
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")));
    let text = config.render().replacen(
        "[sip]\n",
        &format!("[sip]\noutbound_proxy = \"sip:{proxy_addr}\"\n"),
        1,
    );
    let mut cb = Callbridge::start_text(&dir, &config, &text);
    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    assert_eq!(done["status"], "completed", "{done:#}");
    agent.assert_passed(std::time::Duration::from_secs(30));
    customer.assert_passed(std::time::Duration::from_secs(30));
    let log = customer.messages();
    assert!(
        log.contains(&format!("INVITE sip:{CUSTOMER}@{}", customer.sip_addr())),
        "the Request-URI names the trunk:\n{log}"
    );
    assert!(
        log.contains(&format!("Route: <sip:{proxy_addr};lr>")),
        "a pre-loaded Route names the proxy:\n{log}"
    );
    let c = proxy.counters();
    assert!(
        c.to_upstream.sent >= 2 && c.to_downstream.sent >= 2,
        "the INVITE and its answers crossed the proxy: {c:?}"
    );
    assert!(
        !agent.messages().contains("Route:"),
        "the agent (a SIP URI) is reached directly"
    );
}
