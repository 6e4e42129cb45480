//! The voice-over-IP form: the customer is a SIP URI (`sip:cust@127.0.0.1:PORT`), reached
//! directly instead of through the trunk; otherwise the same full call as `full_call.rs`.

use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn sip_uri_customer_is_called_directly() {
    let dir = Workdir::new("sip_uri_customer");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Answer);
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &SippOptions {
            ring_ms: 1000,
            hangup_ms: 3000,
            ..SippOptions::default()
        },
    );
    // The trunk is a port nothing listens on: the customer must not be reached through it.
    let trunk = PortBlock::reserve(2);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config =
        Config::new(&ports, trunk.addr(0)).agent(Agent::new("alice", &agent.sip_uri("alice")));
    let mut cb = Callbridge::start(&dir, &config);

    let customer_uri = customer.sip_uri("cust");
    let id = cb.call(&customer_uri);
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "completed" {
        cb.fail(&format!("expected completed, got: {done:#}"));
    }
    if !passes_through(
        &done,
        &[
            "calling_customer",
            "announcing",
            "calling_agent",
            "bridged",
            "completed",
        ],
    ) {
        cb.fail(&format!(
            "unexpected status path {:?}: {done:#}",
            record::statuses(&done)
        ));
    }
    if let Err(e) = check_full_call_media(&done) {
        cb.fail(&e);
    }
    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    let ruri = format!("INVITE {customer_uri} SIP/2.0");
    assert!(
        customer.messages().contains(&ruri),
        "customer INVITE has Request-URI {ruri}"
    );
}
