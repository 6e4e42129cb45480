//! Several click-to-call requests at once: each gets its own agent, its own relay legs and its
//! own announcement, and all complete with RTP both ways. One SIPp plays every customer (behind
//! the trunk), another every agent (one SIP URI per agent, same SIPp).

use callbridge_tests::scenario::rings_then_hangs_up;
use callbridge_tests::{Api, Scenario, SippOptions, TwoPartyCall};

const CALLS: u32 = 5;

#[test]
fn five_calls_at_once_all_complete() {
    let mut t = TwoPartyCall::builder("concurrent_calls")
        .customer(
            Scenario::Answer,
            SippOptions {
                calls: CALLS,
                ..SippOptions::default()
            },
        )
        .agent(
            Scenario::AnswerBye,
            SippOptions {
                calls: CALLS,
                ..rings_then_hangs_up(1000, 2500)
            },
        )
        .agent_ids((0..CALLS).map(|i| format!("agent{i}")))
        .start();

    let ids: Vec<String> = (0..CALLS)
        .map(|i| t.cb.call(&format!("+1555000{i:04}")))
        .collect();
    let mut assigned = Vec::new();
    for id in &ids {
        let done = t.cb.wait_done(Api::CallRequests, id);
        t.cb.expect_full_call(&done, &format!("call {id}: "));
        assigned.push(done["agent"].as_str().unwrap_or_default().to_string());
    }
    let mut distinct = assigned.clone();
    distinct.sort();
    distinct.dedup();
    if distinct.len() != CALLS as usize {
        t.cb.fail(&format!(
            "{CALLS} simultaneous calls need {CALLS} different agents, got {assigned:?}"
        ));
    }
    t.expect_sipps_passed();
}
