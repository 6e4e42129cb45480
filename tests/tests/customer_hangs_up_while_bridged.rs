//! The customer hangs up while bridged: the agent gets BYE and the call request ends
//! `completed` (the mirror image of `full_call.rs`, where the agent hangs up).

use callbridge_tests::record::{self, check_full_call_media, is_terminal};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn customer_bye_while_bridged_completes_the_call() {
    let dir = Workdir::new("customer_hangs_up_while_bridged");
    // The agent answers after 1 s; the customer hangs up 4 s after answering, i.e. ~3 s into
    // the bridged call.
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::AnswerBye,
        &SippOptions {
            ring_ms: 0,
            hangup_ms: 4000,
            ..SippOptions::default()
        },
    );
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::Answer,
        &SippOptions {
            ring_ms: 1000,
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
    if let Err(e) = check_full_call_media(&done) {
        cb.fail(&e);
    }
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    agent.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(
        agent.received_request("BYE"),
        "the agent got BYE after the customer left"
    );
}
