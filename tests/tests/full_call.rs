//! The whole click-to-call: customer (via the trunk) answers, hears the announcement while the
//! agent rings for ~2 s, the agent answers, both are bridged with RTP both ways through the
//! relay, the agent hangs up, the customer gets BYE and the call request ends `completed`.

use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn full_call_announces_then_bridges_then_completes() {
    let dir = Workdir::new("full_call");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Answer);
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        // Ring 2 s (the customer hears the announcement meanwhile), talk 3 s, hang up.
        &SippOptions {
            ring_ms: 2000,
            hangup_ms: 3000,
            ..SippOptions::default()
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call("+15551234567");
    let bridged = cb.wait_for_status(&id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    if record::status(&bridged) != "bridged" {
        cb.fail(&format!("call request never bridged: {bridged:#}"));
    }
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "completed" {
        cb.fail(&format!("expected completed, got: {done:#}"));
    }
    let path = [
        "calling_customer",
        "announcing",
        "calling_agent",
        "bridged",
        "completed",
    ];
    if !passes_through(&done, &path) {
        cb.fail(&format!(
            "events {:?} do not pass through {path:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    assert_eq!(done["business"], "acme", "{done:#}");
    if let Err(e) = check_full_call_media(&done) {
        cb.fail(&e);
    }
    // The agent rang for 2 s while the customer listened: at 20 ms per packet that is ~100
    // announcement packets; demand at least one second's worth.
    let ann = record::media(&done, "customer", "announcement_packets");
    if ann < 50 {
        cb.fail(&format!(
            "only {ann} announcement packets during a 2 s agent ring: {done:#}"
        ));
    }

    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    // E.164 customers go to the trunk as sip:+NUMBER@host:port.
    let ruri = format!("INVITE sip:+15551234567@{} SIP/2.0", customer.sip_addr());
    assert!(
        customer.messages().contains(&ruri),
        "customer INVITE has Request-URI {ruri}"
    );
    assert!(
        customer.received_request("BYE"),
        "the customer was hung up on after the agent left"
    );
}
