//! Inbound calls (the customer called us) and the agent's early media.

use std::net::SocketAddr;

use super::*;

#[test]
fn an_inbound_call_is_answered_announced_and_queued_for_an_agent() {
    let mut p = acd_plan();
    p.inbound = true;
    p.legs = None;
    let (mut h, out) = Harness::new(p);
    assert_eq!(
        out,
        s(&[
            "request_agent",
            "set_timer QueueTimeout 120s",
            "status queued",
            "allocate_legs",
        ])
    );
    let legs = Legs {
        customer: LegId::new(20000, 1),
        agent: LegId::new(20002, 1),
    };
    assert_eq!(
        h.feed(Input::LegsAllocated(legs)),
        s(&[
            "add_leg leg20000.1",
            "add_leg leg20002.1",
            "answer customer leg20000.1"
        ])
    );
    // The answer negotiated the caller's offer: announcement while it waits for an agent.
    assert_eq!(
        h.customer(answered(40000)),
        s(&[
            "set_remote leg20000.1 127.0.0.1:40000 Pcmu",
            "play leg20000.1 hold looping",
            "status announcing",
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
    assert!(h
        .agent(answered(40002))
        .contains(&"status bridged".to_string()));
    assert_eq!(
        h.agent(LegInput::Bye),
        teardown(&["customer"], &[], true, Some("alice"), "completed")
    );
}

#[test]
fn an_inbound_caller_who_waits_too_long_is_hung_up_and_one_who_leaves_is_counted() {
    let mut p = acd_plan();
    p.inbound = true;
    let (mut h, _) = Harness::new(p.clone());
    h.customer(answered(40000));
    let out = h.timer(TimerKind::QueueTimeout);
    assert_eq!(out[0], "hangup customer");
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::NoAgent)));
    // Hanging up before being answered (CANCEL) or while announced.
    let (mut h, _) = Harness::new(p.clone());
    h.customer(LegInput::Bye);
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::CustomerHungUp)));
    let (mut h, _) = Harness::new(p);
    h.customer(answered(40000));
    h.customer(LegInput::Bye);
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::CustomerHungUp)));
}

#[test]
fn the_agents_early_media_replaces_the_announcement_when_asked() {
    let mut p = acd_plan();
    p.agent_early_media = true;
    let (mut h, _) = Harness::new(p);
    h.assign("alice");
    h.customer(answered(40000));
    let early = LegInput::EarlyMedia {
        remote: SocketAddr::from(([127, 0, 0, 1], 40002)),
        codec: Codec::Pcmu,
    };
    assert_eq!(
        h.agent(early),
        s(&[
            "set_remote leg20002.1 127.0.0.1:40002 Pcmu",
            "bridge leg20000.1 leg20002.1",
        ])
    );
    // A second 183: the address again, no second bridge.
    assert_eq!(
        h.agent(early),
        s(&["set_remote leg20002.1 127.0.0.1:40002 Pcmu"])
    );
    // The agent gives up: back to the announcement, then the next agent.
    let out = h.agent(LegInput::Rejected { status: 480 });
    assert_eq!(
        &out[1..3],
        &s(&["unbridge leg20000.1", "play leg20000.1 hold looping"])[..],
        "{out:?}"
    );
    // The next agent answers without early media: bridged once.
    h.assign("bob");
    let out = h.agent(answered(40004));
    assert!(
        out.contains(&"bridge leg20000.1 leg20002.1".to_string()),
        "{out:?}"
    );
    assert_eq!(h.m.status().as_str(), "bridged");
}

#[test]
fn early_media_is_ignored_unless_the_business_asks() {
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    h.customer(answered(40000));
    let early = LegInput::EarlyMedia {
        remote: SocketAddr::from(([127, 0, 0, 1], 40002)),
        codec: Codec::Pcmu,
    };
    assert!(h.agent(early).is_empty());
    let out = h.agent(answered(40002));
    assert!(out.contains(&"bridge leg20000.1 leg20002.1".to_string()));
}
