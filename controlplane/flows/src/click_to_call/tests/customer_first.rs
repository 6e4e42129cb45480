//! The customer-first order: no agent is reserved before the customer answered.

use super::*;

fn cf_plan() -> CallPlan {
    let mut p = acd_plan();
    p.reservation = Reservation::CustomerFirst;
    p
}

/// Customer first, the agents checked and the customer dialled.
fn to_calling_customer() -> Harness {
    let (mut h, out) = Harness::new(cf_plan());
    assert_eq!(out, s(&["check_agents", "status queued"]));
    assert_eq!(h.m.status(), Status::Queued);
    assert_eq!(
        h.feed(Input::AgentsChecked(true)),
        s(&[
            "add_leg leg20000.1",
            "add_leg leg20002.1",
            "status calling_customer",
            "invite customer +15551234567 leg20000.1",
            "set_timer CustomerRing 30s",
        ])
    );
    h
}

fn reserves_nothing(out: &[String]) {
    assert!(
        !out.iter()
            .any(|o| o.starts_with("request_agent") || o.starts_with("release_agent")),
        "{out:?}"
    );
}

#[test]
fn the_default_is_agent_first() {
    assert_eq!(Reservation::default(), Reservation::AgentFirst);
    for r in [Reservation::AgentFirst, Reservation::CustomerFirst] {
        assert_eq!(Reservation::parse(r.as_str()), Some(r));
    }
    assert_eq!(Reservation::parse("customer-first"), None);
}

#[test]
fn the_answered_customer_hears_the_announcement_while_an_agent_is_reserved() {
    let mut h = to_calling_customer();
    assert!(h.customer(LegInput::Progress).is_empty());
    assert_eq!(
        h.customer(answered(40000)),
        s(&[
            "cancel_timer CustomerRing",
            "set_remote leg20000.1 127.0.0.1:40000 Pcmu",
            "play leg20000.1 hold looping",
            "status announcing",
            "request_agent",
            "set_timer QueueTimeout 120s",
        ])
    );
    assert_eq!(
        h.assign("alice"),
        s(&[
            "cancel_timer QueueTimeout",
            "invite agent sip:alice@127.0.0.1:15064 leg20002.1",
            "set_timer AgentRing 20s",
            "status calling_agent",
        ])
    );
    assert_eq!(
        h.agent(answered(40002)),
        s(&[
            "cancel_timer AgentRing",
            "set_remote leg20002.1 127.0.0.1:40002 Pcmu",
            "bridge leg20000.1 leg20002.1",
            "agent_connected alice",
            "status bridged",
        ])
    );
    assert_eq!(
        h.customer(LegInput::Bye),
        teardown(&["agent"], &[], true, Some("alice"), "completed")
    );
}

#[test]
fn a_customer_who_does_not_answer_never_reserved_an_agent() {
    // Our ring timer.
    let mut h = to_calling_customer();
    let out = h.timer(TimerKind::CustomerRing);
    assert_eq!(
        out,
        teardown(&["customer"], &[], true, None, "failed/customer_no_answer")
    );
    reserves_nothing(&out);
    // 480, busy, a hang-up while ringing, the transaction timeout: the same, nothing reserved.
    for (ev, status) in [
        (
            LegInput::Rejected { status: 480 },
            "failed/customer_no_answer",
        ),
        (LegInput::Rejected { status: 486 }, "failed/customer_busy"),
        (LegInput::Timeout, "failed/customer_no_answer"),
    ] {
        let mut h = to_calling_customer();
        let out = h.customer(ev);
        assert_eq!(out, teardown(&[], &["CustomerRing"], true, None, status));
        reserves_nothing(&out);
    }
    // Cancelled while ringing.
    let mut h = to_calling_customer();
    let out = h.feed(Input::Cancel);
    assert_eq!(
        out,
        teardown(&["customer"], &["CustomerRing"], true, None, "cancelled")
    );
}

#[test]
fn nobody_is_called_when_no_agent_is_on_duty() {
    let (mut h, _) = Harness::new(cf_plan());
    assert_eq!(
        h.feed(Input::AgentsChecked(false)),
        teardown(&[], &[], false, None, "failed/no_agent")
    );
    // A late or repeated answer does nothing.
    assert!(h.feed(Input::AgentsChecked(true)).is_empty());
    // Cancelled while checking: nothing was asked of the ACD, nothing to withdraw.
    let (mut h, _) = Harness::new(cf_plan());
    assert_eq!(
        h.feed(Input::Cancel),
        teardown(&[], &[], false, None, "cancelled")
    );
    assert!(h.feed(Input::AgentsChecked(true)).is_empty());
}

#[test]
fn no_agent_within_the_queue_timeout_ends_the_hold_with_no_agent() {
    let mut h = to_calling_customer();
    h.customer(answered(40000));
    assert_eq!(h.m.phase(), &Phase::Announcing);
    let mut want = s(&["hangup customer", "withdraw_agent_request"]);
    want.extend(teardown(&[], &[], true, None, "failed/no_agent"));
    assert_eq!(h.timer(TimerKind::QueueTimeout), want);
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::NoAgent)));
    // The ACD gives up at once (every agent went offline meanwhile): the same.
    let mut h = to_calling_customer();
    h.customer(answered(40000));
    assert_eq!(
        h.feed(Input::NoAgent),
        teardown(
            &["customer"],
            &["QueueTimeout"],
            true,
            None,
            "failed/no_agent"
        )
    );
}

#[test]
fn an_agent_who_does_not_answer_is_replaced_while_the_customer_holds() {
    let mut h = to_calling_customer();
    h.customer(answered(40000));
    h.assign("alice");
    assert_eq!(
        h.timer(TimerKind::AgentRing),
        s(&[
            "hangup agent",
            "release_agent alice",
            "status announcing",
            "request_agent exclude=alice",
            "set_timer QueueTimeout 120s",
        ])
    );
    // The customer is still up and on the announcement: nothing was sent to its leg.
    assert_eq!(h.m.phase(), &Phase::Announcing);
    h.assign("bob");
    let out = h.agent(answered(40002));
    assert!(out.contains(&"agent_connected bob".to_owned()), "{out:?}");
    assert_eq!(h.m.status(), Status::Bridged);
    assert_eq!(h.m.agent_attempts(), 2);
}

#[test]
fn the_customer_hanging_up_on_hold_leaves_the_queue() {
    let mut h = to_calling_customer();
    h.customer(answered(40000));
    let mut want = s(&["cancel_timer QueueTimeout", "withdraw_agent_request"]);
    want.extend(teardown(&[], &[], true, None, "failed/customer_hung_up"));
    assert_eq!(h.customer(LegInput::Bye), want);
}

#[test]
fn inbound_calls_and_given_agents_ignore_the_order() {
    let mut p = cf_plan();
    p.inbound = true;
    let (_, out) = Harness::new(p);
    assert_eq!(out[0], "request_agent");
    let t = Target::parse("sip:alice@127.0.0.1:15064").unwrap();
    let mut p = cf_plan();
    p.agent = AgentSource::Given {
        agent: None,
        target: t,
    };
    let (_, out) = Harness::new(p);
    assert!(out.contains(&"invite customer +15551234567 leg20000.1".to_owned()));
}
