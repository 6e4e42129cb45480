use std::net::SocketAddr;
use std::sync::Arc;

use dp_api::Clip;

use crate::CallId;

use super::*;

mod customer_first;
mod inbound;
mod names;
mod unreachable;

const CUST: &str = "leg20000.1";
const AGT: &str = "leg20002.1";

fn clip() -> Arc<Clip> {
    Arc::new(Clip {
        name: "hold".into(),
        pcmu: vec![0xff; 160],
        pcma: vec![0xd5; 160],
    })
}

fn plan(agent: AgentSource, timers: FlowTimers) -> CallPlan {
    CallPlan {
        id: CallId::new("c_1").unwrap(),
        customer: Target::parse("+15551234567").unwrap(),
        agent,
        contact_at: None,
        legs: Some(Legs {
            customer: LegId::new(20000, 1),
            agent: LegId::new(20002, 1),
        }),
        announcement: clip(),
        timers,
        media: MediaPolicy::default(),
        inbound: false,
        agent_early_media: false,
        reservation: Reservation::AgentFirst,
    }
}

fn acd_plan() -> CallPlan {
    plan(AgentSource::Acd { preferred: None }, FlowTimers::default())
}

/// Drives one machine on fake time and renders its outputs as text.
struct Harness {
    m: ClickToCall,
    now: Instant,
}

impl Harness {
    fn new(plan: CallPlan) -> (Self, Vec<String>) {
        let now = Instant::now();
        let mut h = Self {
            m: ClickToCall::new(plan, now),
            now,
        };
        let out = h.drain();
        (h, out)
    }
    fn drain(&mut self) -> Vec<String> {
        std::iter::from_fn(|| self.m.poll_output())
            .map(|o| o.to_string())
            .collect()
    }
    fn feed(&mut self, input: Input) -> Vec<String> {
        self.now += Duration::from_millis(100);
        self.m.handle(self.now, input);
        self.drain()
    }
    fn assign(&mut self, name: &str) -> Vec<String> {
        let t = Target::parse(&format!("sip:{name}@127.0.0.1:15064")).unwrap();
        self.feed(Input::AgentAssigned(AgentId::new(name).unwrap(), t))
    }
    fn customer(&mut self, ev: LegInput) -> Vec<String> {
        self.feed(Input::Customer(ev))
    }
    fn agent(&mut self, ev: LegInput) -> Vec<String> {
        self.feed(Input::Agent(ev))
    }
    fn timer(&mut self, kind: TimerKind) -> Vec<String> {
        self.feed(Input::TimerFired(kind))
    }
    fn ended(&self) -> Option<Outcome> {
        match self.m.phase() {
            Phase::Ended(o) => Some(*o),
            _ => None,
        }
    }
    /// Queued (ACD, `timers`) → agent alice → customer answers.
    fn acd_alice_answered(timers: FlowTimers) -> Self {
        let (mut h, _) = Self::new(plan(AgentSource::Acd { preferred: None }, timers));
        h.assign("alice");
        h.customer(answered(40000));
        h
    }
    /// Queued → agent alice → customer answers: now calling the agent.
    fn to_calling_agent() -> Self {
        let h = Self::acd_alice_answered(FlowTimers::default());
        assert_eq!(h.m.phase(), &Phase::CallingAgent);
        h
    }
    fn to_bridged() -> Self {
        let mut h = Self::to_calling_agent();
        h.agent(answered(40002));
        assert_eq!(h.m.phase(), &Phase::Bridged);
        h
    }
}

fn answered(port: u16) -> LegInput {
    LegInput::Answered {
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        codec: Codec::Pcmu,
    }
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| (*x).to_owned()).collect()
}

fn teardown(
    hangups: &[&str],
    timers: &[&str],
    legs: bool,
    release: Option<&str>,
    status: &str,
) -> Vec<String> {
    let mut v: Vec<String> = hangups.iter().map(|r| format!("hangup {r}")).collect();
    v.extend(timers.iter().map(|t| format!("cancel_timer {t}")));
    if legs {
        v.push(format!("remove_leg {CUST}"));
        v.push(format!("remove_leg {AGT}"));
    }
    if let Some(a) = release {
        v.push(format!("release_agent {a}"));
    }
    v.push(format!("status {status}"));
    v.push("finished".into());
    v
}

#[test]
fn happy_path_exact_output_sequence() {
    let (mut h, out) = Harness::new(acd_plan());
    assert_eq!(
        out,
        s(&[
            "request_agent",
            "set_timer QueueTimeout 120s",
            "status queued"
        ])
    );
    assert_eq!(h.m.status().as_str(), "queued");
    assert_eq!(
        h.assign("alice"),
        s(&[
            "cancel_timer QueueTimeout",
            "add_leg leg20000.1",
            "add_leg leg20002.1",
            "status calling_customer",
            "invite customer +15551234567 leg20000.1",
            "set_timer CustomerRing 30s",
        ])
    );
    assert_eq!(h.customer(LegInput::Progress), Vec::<String>::new());
    assert_eq!(
        h.customer(answered(40000)),
        s(&[
            "cancel_timer CustomerRing",
            "set_remote leg20000.1 127.0.0.1:40000 Pcmu",
            "play leg20000.1 hold looping",
            "status announcing",
            "invite agent sip:alice@127.0.0.1:15064 leg20002.1",
            "set_timer AgentRing 20s",
            "status calling_agent",
        ])
    );
    assert_eq!(h.agent(LegInput::Progress), Vec::<String>::new());
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
    assert_eq!(h.m.agent().map(AgentId::as_str), Some("alice"));
    assert_eq!(
        h.customer(LegInput::Bye),
        teardown(&["agent"], &[], true, Some("alice"), "completed")
    );
    assert_eq!(h.ended(), Some(Outcome::Completed));
    // Nothing after the end.
    assert!(h.agent(LegInput::Bye).is_empty());
    assert!(h.feed(Input::Cancel).is_empty());
}

#[test]
fn legs_are_allocated_only_when_the_customer_is_dialled() {
    let mut p = acd_plan();
    p.legs = None;
    p.contact_at = Some(Instant::now() + Duration::from_secs(3600));
    let (mut h, out) = Harness::new(p);
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(out[0].starts_with("set_timer ContactTime 3599."), "{out:?}");
    assert_eq!(out[1], "status scheduled");
    assert_eq!(h.m.legs(), None, "a scheduled call holds no ports");
    assert_eq!(
        h.timer(TimerKind::ContactTime),
        s(&[
            "request_agent",
            "set_timer QueueTimeout 120s",
            "status queued"
        ])
    );
    assert_eq!(
        h.assign("alice"),
        s(&["cancel_timer QueueTimeout", "allocate_legs"]),
        "a queued call holds no ports until it dials"
    );
    assert!(h.m.awaiting_legs());
    let legs = Legs {
        customer: LegId::new(30000, 7),
        agent: LegId::new(30002, 7),
    };
    assert_eq!(
        h.feed(Input::LegsAllocated(legs)),
        s(&[
            "add_leg leg30000.7",
            "add_leg leg30002.7",
            "status calling_customer",
            "invite customer +15551234567 leg30000.7",
            "set_timer CustomerRing 30s",
        ])
    );
    assert_eq!(h.m.legs(), Some(legs));
    // A second answer is ignored.
    assert!(h.feed(Input::LegsAllocated(legs)).is_empty());
    let end = h.feed(Input::Cancel);
    assert!(end.contains(&"remove_leg leg30000.7".to_owned()), "{end:?}");
    assert!(end.contains(&"remove_leg leg30002.7".to_owned()), "{end:?}");
}

#[test]
fn no_legs_fails_the_call_and_cancel_while_allocating_adds_none() {
    let mut p = acd_plan();
    p.legs = None;
    let (mut h, _) = Harness::new(p.clone());
    assert_eq!(
        h.assign("alice"),
        s(&["cancel_timer QueueTimeout", "allocate_legs"])
    );
    let end = h.feed(Input::NoLegs);
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::Internal)));
    assert!(!end.iter().any(|o| o.starts_with("remove_leg")), "{end:?}");
    assert!(end.contains(&"release_agent alice".to_owned()), "{end:?}");

    let (mut h, _) = Harness::new(p);
    h.assign("alice");
    let end = h.feed(Input::Cancel);
    assert_eq!(h.ended(), Some(Outcome::Cancelled));
    assert!(!end.iter().any(|o| o.starts_with("remove_leg")), "{end:?}");
    assert!(!h.m.awaiting_legs());
    // Legs arriving after the end are not taken (the orchestrator keeps and frees them).
    assert!(h
        .feed(Input::LegsAllocated(Legs {
            customer: LegId::new(30000, 1),
            agent: LegId::new(30002, 1),
        }))
        .is_empty());
    assert_eq!(h.m.legs(), None);
}

#[test]
fn the_add_leg_spec_follows_the_media_policy() {
    let (mut h, _) = Harness::new(acd_plan());
    h.m.handle(
        h.now,
        Input::AgentAssigned(
            AgentId::new("alice").unwrap(),
            Target::parse("+4930123456").unwrap(),
        ),
    );
    let specs: Vec<LegSpec> = std::iter::from_fn(|| h.m.poll_output())
        .filter_map(|o| match o {
            Output::Media(Command::AddLeg(spec)) => Some(spec),
            _ => None,
        })
        .collect();
    assert_eq!(specs.len(), 2);
    assert_eq!(specs[0].id, LegId::new(20000, 1));
    assert_eq!(specs[0].latch, dp_api::Latch::Signalled);
    assert_eq!(specs[0].remote, None);
    assert_eq!(specs[0].media_timeout, Some(Duration::from_secs(30)));
}

#[test]
fn customer_final_errors_map_to_reasons() {
    for (status, reason) in [
        (486, "customer_busy"),
        (600, "customer_busy"),
        (408, "customer_no_answer"),
        (480, "customer_no_answer"),
        (403, "customer_rejected"),
        (404, "customer_rejected"),
        (603, "customer_rejected"),
        (503, "customer_rejected"),
    ] {
        let (mut h, _) = Harness::new(acd_plan());
        h.assign("alice");
        let out = h.customer(LegInput::Rejected { status });
        assert_eq!(
            out,
            teardown(
                &[],
                &["CustomerRing"],
                true,
                Some("alice"),
                &format!("failed/{reason}")
            ),
            "{status}"
        );
        assert_eq!(h.m.status().reason().map(FailReason::as_str), Some(reason));
    }
}

#[test]
fn customer_no_answer_timer_cancels_and_fails() {
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    h.customer(LegInput::Progress);
    let out = h.timer(TimerKind::CustomerRing);
    assert_eq!(
        out,
        teardown(
            &["customer"],
            &[],
            true,
            Some("alice"),
            "failed/customer_no_answer"
        )
    );
    // SIP transaction timeout means the same.
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    assert_eq!(
        h.customer(LegInput::Timeout),
        teardown(
            &[],
            &["CustomerRing"],
            true,
            Some("alice"),
            "failed/customer_no_answer"
        )
    );
}

#[test]
fn unusable_customer_answer_is_hung_up() {
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    assert_eq!(
        h.customer(LegInput::AnswerUnusable),
        teardown(
            &["customer"],
            &["CustomerRing"],
            true,
            Some("alice"),
            "failed/internal"
        )
    );
}

#[test]
fn agent_no_answer_then_next_agent_succeeds() {
    let mut h = Harness::to_calling_agent();
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
    assert_eq!(
        h.assign("bob"),
        s(&[
            "cancel_timer QueueTimeout",
            "invite agent sip:bob@127.0.0.1:15064 leg20002.1",
            "set_timer AgentRing 20s",
            "status calling_agent",
        ])
    );
    // A rejection is the same as no answer, without a CANCEL.
    assert_eq!(
        h.agent(LegInput::Rejected { status: 486 }),
        s(&[
            "cancel_timer AgentRing",
            "release_agent bob",
            "status announcing",
            "request_agent exclude=alice,bob",
            "set_timer QueueTimeout 120s",
        ])
    );
    h.assign("carol");
    let out = h.agent(answered(40002));
    assert!(out.contains(&"agent_connected carol".to_owned()), "{out:?}");
    assert_eq!(h.m.status(), Status::Bridged);
    assert_eq!(h.m.agent_attempts(), 3);
    assert_eq!(
        h.agent(LegInput::Bye),
        teardown(&["customer"], &[], true, Some("carol"), "completed")
    );
}

#[test]
fn agent_attempts_exhausted() {
    let mut h = Harness::acd_alice_answered(FlowTimers {
        max_agent_attempts: 2,
        ..FlowTimers::default()
    });
    h.agent(LegInput::Timeout);
    h.assign("bob");
    let out = h.timer(TimerKind::AgentRing);
    let mut want = s(&["hangup agent", "release_agent bob", "hangup customer"]);
    want.extend(teardown(&[], &[], true, None, "failed/agent_no_answer"));
    assert_eq!(out, want);
}

#[test]
fn no_further_agent_after_a_failed_attempt_is_agent_no_answer() {
    let mut h = Harness::to_calling_agent();
    h.agent(LegInput::Rejected { status: 603 });
    let out = h.feed(Input::NoAgent);
    assert_eq!(
        out,
        teardown(
            &["customer"],
            &["QueueTimeout"],
            true,
            None,
            "failed/agent_no_answer"
        )
    );
}

#[test]
fn no_agent_and_queue_timeout() {
    let (mut h, _) = Harness::new(acd_plan());
    assert_eq!(
        h.feed(Input::NoAgent),
        teardown(&[], &["QueueTimeout"], false, None, "failed/no_agent")
    );
    let (mut h, _) = Harness::new(acd_plan());
    let mut want = s(&["withdraw_agent_request"]);
    want.extend(teardown(&[], &[], false, None, "failed/no_agent"));
    assert_eq!(h.timer(TimerKind::QueueTimeout), want);
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::NoAgent)));
}

#[test]
fn hang_ups_in_every_phase() {
    // Customer hangs up while we still ring it (race with our INVITE): never reached an agent.
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    assert_eq!(
        h.customer(LegInput::Bye),
        teardown(
            &[],
            &["CustomerRing"],
            true,
            Some("alice"),
            "failed/customer_hung_up"
        )
    );

    // Customer hangs up while the agent rings: the agent leg is cancelled.
    let mut h = Harness::to_calling_agent();
    assert_eq!(
        h.customer(LegInput::Bye),
        teardown(
            &["agent"],
            &["AgentRing"],
            true,
            Some("alice"),
            "failed/customer_hung_up"
        )
    );

    // Customer hangs up while we look for the next agent.
    let mut h = Harness::to_calling_agent();
    h.agent(LegInput::Rejected { status: 480 });
    let mut want = s(&["cancel_timer QueueTimeout", "withdraw_agent_request"]);
    want.extend(teardown(&[], &[], true, None, "failed/customer_hung_up"));
    assert_eq!(h.customer(LegInput::Bye), want);

    // The customer leg is lost otherwise during the announcement: same outcome.
    let mut h = Harness::to_calling_agent();
    assert_eq!(
        h.customer(LegInput::Ended).last().map(String::as_str),
        Some("finished")
    );
    assert_eq!(h.ended(), Some(Outcome::Failed(FailReason::CustomerHungUp)));

    // The agent's leg ends before answering: next agent.
    let mut h = Harness::to_calling_agent();
    let out = h.agent(LegInput::Ended);
    assert!(
        out.contains(&"request_agent exclude=alice".to_owned()),
        "{out:?}"
    );

    // Bridged: either side ends the call normally.
    let mut h = Harness::to_bridged();
    assert_eq!(
        h.customer(LegInput::Bye),
        teardown(&["agent"], &[], true, Some("alice"), "completed")
    );
    let mut h = Harness::to_bridged();
    assert_eq!(
        h.agent(LegInput::Bye),
        teardown(&["customer"], &[], true, Some("alice"), "completed")
    );
    let mut h = Harness::to_bridged();
    assert_eq!(
        h.agent(LegInput::Ended),
        teardown(&["customer"], &[], true, Some("alice"), "completed")
    );

    // Before dialling there is no leg to hang up: inputs are ignored.
    let (mut h, _) = Harness::new(acd_plan());
    assert!(h.customer(LegInput::Bye).is_empty());
    assert!(h.agent(LegInput::Bye).is_empty());
    assert_eq!(h.m.phase(), &Phase::Queued);
}

#[test]
fn media_timeout_while_bridged_hangs_up_both() {
    let mut h = Harness::to_calling_agent();
    // Before the bridge a silent customer is tolerated.
    assert!(h
        .feed(Input::Media(Event::MediaTimeout {
            leg: LegId::new(20000, 1)
        }))
        .is_empty());
    h.agent(answered(40002));
    // Not our leg.
    assert!(h
        .feed(Input::Media(Event::MediaTimeout {
            leg: LegId::new(20004, 1)
        }))
        .is_empty());
    assert_eq!(
        h.feed(Input::Media(Event::MediaTimeout {
            leg: LegId::new(20002, 1)
        })),
        teardown(
            &["customer", "agent"],
            &[],
            true,
            Some("alice"),
            "failed/media_timeout"
        )
    );
}

#[test]
fn data_plane_command_failure_is_internal() {
    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    let out = h.feed(Input::Media(Event::CommandFailed {
        leg: Some(LegId::new(20000, 1)),
        error: dp_api::CommandError::PortInUse,
    }));
    assert_eq!(
        out,
        teardown(
            &["customer"],
            &["CustomerRing"],
            true,
            Some("alice"),
            "failed/internal"
        )
    );
}

#[test]
fn cancel_in_every_phase() {
    let (mut h, _) = Harness::new(acd_plan());
    let mut want = s(&["cancel_timer QueueTimeout", "withdraw_agent_request"]);
    want.extend(teardown(&[], &[], false, None, "cancelled"));
    assert_eq!(h.feed(Input::Cancel), want);

    let (mut h, _) = Harness::new(acd_plan());
    h.assign("alice");
    assert_eq!(
        h.feed(Input::Cancel),
        teardown(
            &["customer"],
            &["CustomerRing"],
            true,
            Some("alice"),
            "cancelled"
        )
    );

    let mut h = Harness::to_calling_agent();
    assert_eq!(
        h.feed(Input::Cancel),
        teardown(
            &["customer", "agent"],
            &["AgentRing"],
            true,
            Some("alice"),
            "cancelled"
        )
    );

    let mut h = Harness::to_bridged();
    assert_eq!(
        h.feed(Input::Cancel),
        teardown(
            &["customer", "agent"],
            &[],
            true,
            Some("alice"),
            "cancelled"
        )
    );
    assert_eq!(h.ended(), Some(Outcome::Cancelled));
}

#[test]
fn scheduled_call_waits_for_its_contact_time() {
    let mut p = acd_plan();
    let now = Instant::now();
    p.contact_at = Some(now + Duration::from_secs(600));
    let mut m = ClickToCall::new(p, now);
    let out: Vec<String> = std::iter::from_fn(|| m.poll_output())
        .map(|o| o.to_string())
        .collect();
    assert_eq!(out, s(&["set_timer ContactTime 600s", "status scheduled"]));
    m.handle(now, Input::TimerFired(TimerKind::ContactTime));
    let out: Vec<String> = std::iter::from_fn(|| m.poll_output())
        .map(|o| o.to_string())
        .collect();
    assert_eq!(
        out,
        s(&[
            "request_agent",
            "set_timer QueueTimeout 120s",
            "status queued"
        ])
    );

    // A contact time in the past means now.
    let mut p = acd_plan();
    p.contact_at = Some(now);
    let m = ClickToCall::new(p, now + Duration::from_secs(1));
    assert_eq!(m.phase(), &Phase::Queued);
}

#[test]
fn preferred_agent_is_passed_to_the_acd() {
    let alice = AgentId::new("alice").unwrap();
    let (_, out) = Harness::new(plan(
        AgentSource::Acd {
            preferred: Some(alice),
        },
        FlowTimers::default(),
    ));
    assert_eq!(out[0], "request_agent preferred=alice");
}

#[test]
fn stale_and_unexpected_inputs() {
    let mut h = Harness::to_calling_agent();
    // The customer ring timer was cancelled on answer: a late firing is ignored.
    assert!(h.timer(TimerKind::CustomerRing).is_empty());
    assert!(h.timer(TimerKind::QueueTimeout).is_empty());
    // An agent we did not ask for goes straight back.
    assert_eq!(h.assign("bob"), s(&["release_agent bob"]));
    assert_eq!(h.m.status(), Status::CallingAgent);
    // Duplicate answers change nothing.
    assert!(h.customer(answered(40000)).is_empty());
}

#[test]
fn bridge_flavour_calls_the_given_agent() {
    let agent = AgentSource::Given {
        agent: None,
        target: Target::parse("sip:bob@127.0.0.1:15066").unwrap(),
    };
    let (mut h, out) = Harness::new(plan(agent.clone(), FlowTimers::default()));
    assert_eq!(
        out,
        s(&[
            "add_leg leg20000.1",
            "add_leg leg20002.1",
            "status calling_customer",
            "invite customer +15551234567 leg20000.1",
            "set_timer CustomerRing 30s",
        ])
    );
    let out = h.customer(answered(40000));
    assert_eq!(out[4], "invite agent sip:bob@127.0.0.1:15066 leg20002.1");
    assert_eq!(
        h.agent(answered(40002)),
        s(&[
            "cancel_timer AgentRing",
            "set_remote leg20002.1 127.0.0.1:40002 Pcmu",
            "bridge leg20000.1 leg20002.1",
            "status bridged",
        ])
    );
    assert_eq!(
        h.agent(LegInput::Bye),
        teardown(&["customer"], &[], true, None, "completed")
    );

    // One attempt only, and no ACD involvement.
    let (mut h, _) = Harness::new(plan(agent, FlowTimers::default()));
    h.customer(answered(40000));
    let mut want = s(&["cancel_timer AgentRing", "hangup customer"]);
    want.extend(teardown(&[], &[], true, None, "failed/agent_no_answer"));
    assert_eq!(h.agent(LegInput::Rejected { status: 486 }), want);
}

#[test]
fn bridge_flavour_scheduled_and_named_agent() {
    let now = Instant::now();
    let mut p = plan(
        AgentSource::Given {
            agent: Some(AgentId::new("alice").unwrap()),
            target: Target::parse("+4930123456").unwrap(),
        },
        FlowTimers::default(),
    );
    p.contact_at = Some(now + Duration::from_secs(5));
    let mut m = ClickToCall::new(p, now);
    assert_eq!(m.status(), Status::Scheduled);
    m.handle(now, Input::TimerFired(TimerKind::ContactTime));
    assert_eq!(m.status(), Status::CallingCustomer);
    assert_eq!(m.agent().map(AgentId::as_str), Some("alice"));
}

#[test]
fn status_names_are_the_contract() {
    let all = [
        (Status::Queued, "queued"),
        (Status::Scheduled, "scheduled"),
        (Status::CallingCustomer, "calling_customer"),
        (Status::Announcing, "announcing"),
        (Status::CallingAgent, "calling_agent"),
        (Status::Bridged, "bridged"),
        (Status::Completed, "completed"),
        (Status::Failed(FailReason::Internal), "failed"),
        (Status::Cancelled, "cancelled"),
    ];
    for (st, name) in all {
        assert_eq!(st.as_str(), name);
        assert_eq!(
            st.is_final(),
            matches!(name, "completed" | "failed" | "cancelled")
        );
    }
}
