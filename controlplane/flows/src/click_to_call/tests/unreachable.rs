//! Unreachable legs (a transport error or a host name that does not resolve): the call
//! fails at once with its own reason; an unreachable agent counts as one who did not answer.

use super::*;

#[test]
fn an_unreachable_customer_fails_at_once_without_ringing_out() {
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    assert_eq!(h.m.phase(), &Phase::CallingCustomer);
    // Before the ring timer: no CANCEL (the INVITE transaction is already over).
    let out = h.customer(LegInput::Unreachable);
    assert_eq!(
        out,
        teardown(
            &[],
            &["CustomerRing"],
            true,
            Some("alice"),
            "failed/customer_unreachable"
        )
    );
    assert_eq!(
        h.ended(),
        Some(Outcome::Failed(FailReason::CustomerUnreachable))
    );
    // The ring timer firing later changes nothing.
    assert!(h.timer(TimerKind::CustomerRing).is_empty());
}

#[test]
fn an_unreachable_agent_is_skipped_like_one_who_did_not_answer() {
    let mut h = Harness::to_calling_agent();
    // No CANCEL to a peer that cannot be reached; the next agent is asked for.
    assert_eq!(
        h.agent(LegInput::Unreachable),
        s(&[
            "cancel_timer AgentRing",
            "release_agent alice",
            "status announcing",
            "request_agent exclude=alice",
            "set_timer QueueTimeout 120s",
        ])
    );
    h.assign("bob");
    let out = h.agent(answered(40002));
    assert!(out.contains(&"agent_connected bob".to_owned()), "{out:?}");
    assert_eq!(h.m.status(), Status::Bridged);
}

#[test]
fn the_last_agent_unreachable_fails_agent_unreachable() {
    // Attempts used up on an unreachable agent.
    let mut h = Harness::acd_alice_answered(FlowTimers {
        max_agent_attempts: 1,
        ..FlowTimers::default()
    });
    let out = h.agent(LegInput::Unreachable);
    let mut want = s(&[
        "cancel_timer AgentRing",
        "release_agent alice",
        "hangup customer",
    ]);
    want.extend(teardown(&[], &[], true, None, "failed/agent_unreachable"));
    assert_eq!(out, want);

    // No further agent after an unreachable one.
    let mut h = Harness::to_calling_agent();
    h.agent(LegInput::Unreachable);
    let out = h.feed(Input::NoAgent);
    assert_eq!(
        out,
        teardown(
            &["customer"],
            &["QueueTimeout"],
            true,
            None,
            "failed/agent_unreachable"
        )
    );

    // An unreachable agent, then one who rings out: the last failure names the call's.
    let mut h = Harness::to_calling_agent();
    h.agent(LegInput::Unreachable);
    h.assign("bob");
    h.timer(TimerKind::AgentRing);
    let out = h.feed(Input::NoAgent);
    assert!(
        out.contains(&"status failed/agent_no_answer".to_owned()),
        "{out:?}"
    );
}

#[test]
fn a_given_agent_unreachable_fails_agent_unreachable() {
    // POST /v1/bridges: one attempt, no ACD.
    let agent = AgentSource::Given {
        agent: None,
        target: Target::parse("sip:desk@127.0.0.1:15064").unwrap(),
    };
    let (mut h, _) = Harness::new(plan(agent, FlowTimers::default()));
    h.customer(answered(40000));
    assert_eq!(h.m.phase(), &Phase::CallingAgent);
    h.agent(LegInput::Unreachable);
    assert_eq!(
        h.ended(),
        Some(Outcome::Failed(FailReason::AgentUnreachable))
    );
}
