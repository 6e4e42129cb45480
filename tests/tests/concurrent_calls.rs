//! Several click-to-call requests at once: each gets its own agent, its own relay legs and its
//! own announcement, and all complete with RTP both ways. One SIPp plays every customer (behind
//! the trunk), another every agent (one SIP URI per agent, same SIPp).

use callbridge_tests::record::{self, check_full_call_media, is_terminal, passes_through};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

const CALLS: u32 = 5;

#[test]
fn five_calls_at_once_all_complete() {
    let dir = Workdir::new("concurrent_calls");
    let mut customers = Sipp::spawn(
        &dir,
        "customers",
        Scenario::Answer,
        &SippOptions {
            calls: CALLS,
            ..SippOptions::default()
        },
    );
    let mut agents = Sipp::spawn(
        &dir,
        "agents",
        Scenario::AnswerBye,
        &SippOptions {
            calls: CALLS,
            ring_ms: 1000,
            hangup_ms: 2500,
            ..SippOptions::default()
        },
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, customers.sip_addr());
    for i in 0..CALLS {
        let id = format!("agent{i}");
        config = config.agent(Agent::new(&id, &agents.sip_uri(&id)));
    }
    let mut cb = Callbridge::start(&dir, &config);

    let ids: Vec<String> = (0..CALLS)
        .map(|i| cb.call(&format!("+1555000{i:04}")))
        .collect();
    let mut assigned = Vec::new();
    for id in &ids {
        let done = cb.wait_for_status(id, is_terminal, CALL_DEADLINE);
        if record::status(&done) != "completed" {
            cb.fail(&format!("call {id}: expected completed, got: {done:#}"));
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
                "call {id}: status path {:?}: {done:#}",
                record::statuses(&done)
            ));
        }
        if let Err(e) = check_full_call_media(&done) {
            cb.fail(&format!("call {id}: {e}"));
        }
        assigned.push(done["agent"].as_str().unwrap_or_default().to_string());
    }
    let mut distinct = assigned.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != CALLS as usize {
        cb.fail(&format!(
            "{CALLS} simultaneous calls need {CALLS} different agents, got {assigned:?}"
        ));
    }
    agents.assert_passed(SIPP_EXIT_DEADLINE);
    customers.assert_passed(SIPP_EXIT_DEADLINE);
}
