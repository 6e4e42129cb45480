//! The ACD and several click-to-call machines wired together the way the orchestrator does
//! it, on fake time: agent outputs go to the [`Acd`], its answers come back as inputs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use callbridge_flows as flows;
use dp_api::{Clip, Codec, LegId};
use flows::{
    Acd, AgentId, AgentSource, AgentState, Assignment, BusinessId, CallId, CallPlan, ClickToCall,
    FlowTimers, Input, LegInput, MediaPolicy, Output, Phase, Status, Target,
};

/// A minimal orchestrator: owns the ACD and the machines, records statuses and invites.
struct World {
    acd: Acd,
    calls: BTreeMap<CallId, ClickToCall>,
    business: BusinessId,
    statuses: Vec<(CallId, Status)>,
    invites: Vec<(CallId, String)>,
    now: Instant,
    /// The order the next calls are started with.
    reservation: flows::Reservation,
}

fn id<T: std::str::FromStr>(s: &str) -> T
where
    T::Err: std::fmt::Debug,
{
    s.parse().unwrap()
}

fn contact(agent: &AgentId) -> Target {
    Target::parse(&format!("sip:{agent}@127.0.0.1:15064")).unwrap()
}

impl World {
    fn new(agents: &[&str]) -> Self {
        let now = Instant::now();
        let mut acd = Acd::new();
        let business: BusinessId = id("acme");
        acd.add_business(business.clone());
        for a in agents {
            acd.add_agent(id(a), vec![business.clone()], now).unwrap();
        }
        Self {
            acd,
            calls: BTreeMap::new(),
            business,
            statuses: vec![],
            invites: vec![],
            now,
            reservation: flows::Reservation::AgentFirst,
        }
    }

    fn start(&mut self, call: &str, port: u16) {
        let plan = CallPlan {
            id: id(call),
            customer: Target::parse("+15551234567").unwrap(),
            agent: AgentSource::Acd { preferred: None },
            contact_at: None,
            legs: Some(flows::Legs {
                customer: LegId::new(port, 1),
                agent: LegId::new(port + 2, 1),
            }),
            announcement: Arc::new(Clip {
                name: "hold".into(),
                pcmu: vec![0xff; 160],
                pcma: vec![0xd5; 160],
            }),
            timers: FlowTimers::default(),
            media: MediaPolicy::default(),
            inbound: false,
            agent_early_media: false,
            reservation: self.reservation,
        };
        self.calls
            .insert(id(call), ClickToCall::new(plan, self.now));
        self.pump(&id(call));
    }

    fn input(&mut self, call: &str, input: Input) {
        self.now += Duration::from_millis(10);
        let call: CallId = id(call);
        if let Some(m) = self.calls.get_mut(&call) {
            m.handle(self.now, input);
        }
        self.pump(&call);
    }

    /// Executes a machine's outputs; ACD answers are fed back (possibly to other calls).
    fn pump(&mut self, call: &CallId) {
        let mut work = vec![call.clone()];
        while let Some(c) = work.pop() {
            let mut feed = Vec::new();
            let Some(m) = self.calls.get_mut(&c) else {
                continue;
            };
            while let Some(o) = m.poll_output() {
                match o {
                    Output::Status(s) => self.statuses.push((c.clone(), s)),
                    Output::Sip(flows::SipAction::Invite { target, .. }) => {
                        self.invites.push((c.clone(), target.to_string()))
                    }
                    Output::RequestAgent { preferred, exclude } => {
                        match self
                            .acd
                            .request(&c, &self.business, preferred.as_ref(), &exclude)
                        {
                            Assignment::Assigned(a) => {
                                feed.push((c.clone(), Input::AgentAssigned(a.clone(), contact(&a))))
                            }
                            Assignment::Queued => {}
                            Assignment::Unavailable => feed.push((c.clone(), Input::NoAgent)),
                        }
                    }
                    Output::CheckAgents => {
                        let any = self.acd.can_serve(&self.business, None, &[]);
                        feed.push((c.clone(), Input::AgentsChecked(any)));
                    }
                    Output::WithdrawAgentRequest => {
                        self.acd.cancel(&c);
                    }
                    Output::AgentConnected(a) => assert!(self.acd.mark_busy(&a)),
                    Output::ReleaseAgent(a) => {
                        for (other, agent) in self.acd.release(&a, self.now) {
                            let t = contact(&agent);
                            feed.push((other, Input::AgentAssigned(agent, t)));
                        }
                    }
                    _ => {}
                }
            }
            for (target, input) in feed {
                if let Some(m) = self.calls.get_mut(&target) {
                    m.handle(self.now, input);
                }
                work.push(target);
            }
        }
    }

    fn phase(&self, call: &str) -> Phase {
        *self.calls[&id::<CallId>(call)].phase()
    }
}

fn answered(port: u16) -> Input {
    Input::Customer(LegInput::Answered {
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        codec: Codec::Pcmu,
    })
}

fn agent_answered(port: u16) -> Input {
    Input::Agent(LegInput::Answered {
        remote: SocketAddr::from(([127, 0, 0, 1], port)),
        codec: Codec::Pcma,
    })
}

#[test]
fn a_queued_call_gets_the_agent_when_the_first_call_ends() {
    let mut w = World::new(&["alice"]);
    w.start("c1", 20000);
    w.start("c2", 20004);
    assert_eq!(w.phase("c1"), Phase::CallingCustomer);
    assert_eq!(w.phase("c2"), Phase::Queued);
    assert_eq!(w.acd.position(&id("c2")), Some(0));

    w.input("c1", answered(40000));
    w.input("c1", agent_answered(40002));
    assert_eq!(w.phase("c1"), Phase::Bridged);
    assert_eq!(w.acd.state(&id("alice")), Some(&AgentState::Busy(id("c1"))));

    // The customer hangs up: alice is released and handed to c2, which dials its customer.
    w.input("c1", Input::Customer(LegInput::Bye));
    assert_eq!(w.phase("c1"), Phase::Ended(flows::Outcome::Completed));
    assert_eq!(w.phase("c2"), Phase::CallingCustomer);
    assert_eq!(
        w.acd.state(&id("alice")),
        Some(&AgentState::Reserved(id("c2")))
    );
    w.input("c2", answered(40004));
    w.input("c2", agent_answered(40006));
    assert_eq!(w.phase("c2"), Phase::Bridged);
    let c2: Vec<&str> = w
        .statuses
        .iter()
        .filter(|(c, _)| c.as_str() == "c2")
        .map(|(_, s)| s.as_str())
        .collect();
    assert_eq!(
        c2,
        [
            "queued",
            "calling_customer",
            "announcing",
            "calling_agent",
            "bridged"
        ]
    );
}

#[test]
fn an_agent_that_does_not_answer_is_skipped_and_freed() {
    let mut w = World::new(&["alice", "bob"]);
    w.start("c1", 20000);
    w.input("c1", answered(40000));
    let first = w.invites.last().unwrap().1.clone();
    w.input("c1", Input::Agent(LegInput::Rejected { status: 480 }));
    let second = w.invites.last().unwrap().1.clone();
    assert_ne!(first, second, "the next agent is another one");
    assert_eq!(w.phase("c1"), Phase::CallingAgent);
    // The one that did not answer is idle again.
    let idle = ["alice", "bob"]
        .iter()
        .filter(|a| w.acd.state(&id(a)) == Some(&AgentState::Idle))
        .count();
    assert_eq!(idle, 1);
    // Both tried and failed: nobody left who was not tried, so the call fails at once.
    w.input("c1", Input::Agent(LegInput::Timeout));
    assert_eq!(
        w.phase("c1"),
        Phase::Ended(flows::Outcome::Failed(flows::FailReason::AgentNoAnswer))
    );
    assert!(["alice", "bob"]
        .iter()
        .all(|a| w.acd.state(&id(a)) == Some(&AgentState::Idle)));
}

#[test]
fn a_business_without_agents_fails_with_no_agent() {
    let mut w = World::new(&[]);
    w.start("c1", 20000);
    assert_eq!(
        w.phase("c1"),
        Phase::Ended(flows::Outcome::Failed(flows::FailReason::NoAgent))
    );
    let last = w.statuses.last().unwrap().1;
    assert_eq!(
        (last.as_str(), last.reason().map(flows::FailReason::as_str)),
        ("failed", Some("no_agent"))
    );
}

#[test]
fn cancelling_a_queued_call_leaves_the_queue() {
    let mut w = World::new(&["alice"]);
    w.start("c1", 20000);
    w.start("c2", 20004);
    w.input("c2", Input::Cancel);
    assert_eq!(w.acd.queue_len(&id("acme")), 0);
    assert_eq!(w.phase("c2"), Phase::Ended(flows::Outcome::Cancelled));
    // When c1 ends, alice goes idle instead of to the cancelled call.
    w.input("c1", Input::Cancel);
    assert_eq!(w.acd.state(&id("alice")), Some(&AgentState::Idle));
}

#[test]
fn customer_first_calls_that_ring_out_never_hold_the_only_agent() {
    let mut w = World::new(&["alice"]);
    w.reservation = flows::Reservation::CustomerFirst;
    // Two junk requests ring; alice stays idle.
    w.start("junk1", 20000);
    w.start("junk2", 20004);
    w.start("visitor", 20008);
    for c in ["junk1", "junk2", "visitor"] {
        assert_eq!(w.phase(c), Phase::CallingCustomer, "{c}");
    }
    assert_eq!(w.acd.state(&id("alice")), Some(&AgentState::Idle));
    // The visitor answers: alice is reserved for it and called, then bridged.
    w.input("visitor", answered(40008));
    assert_eq!(w.phase("visitor"), Phase::CallingAgent);
    w.input("visitor", agent_answered(40010));
    assert_eq!(w.phase("visitor"), Phase::Bridged);
    // The junk ones ring out: nothing to release, alice stays on the visitor's call.
    for c in ["junk1", "junk2"] {
        w.input(c, Input::TimerFired(flows::TimerKind::CustomerRing));
        assert_eq!(
            w.phase(c),
            Phase::Ended(flows::Outcome::Failed(flows::FailReason::CustomerNoAnswer))
        );
    }
    assert_eq!(
        w.acd.state(&id("alice")),
        Some(&AgentState::Busy(id("visitor")))
    );

    // A second customer who answers while alice talks holds on the announcement in the
    // queue, and gets her when the visitor hangs up.
    w.start("second", 20012);
    w.input("second", answered(40012));
    assert_eq!(w.phase("second"), Phase::Announcing);
    assert_eq!(w.acd.position(&id("second")), Some(0));
    w.input("visitor", Input::Customer(LegInput::Bye));
    assert_eq!(w.phase("second"), Phase::CallingAgent);

    // Agent first, the same junk request holds alice while it rings: the visitor queues.
    let mut w = World::new(&["alice"]);
    w.start("junk1", 20000);
    w.start("visitor", 20004);
    assert_eq!(w.phase("visitor"), Phase::Queued);
    assert_eq!(
        w.acd.state(&id("alice")),
        Some(&AgentState::Reserved(id("junk1")))
    );
}

#[test]
fn customer_first_calls_nobody_when_no_agent_is_on_duty() {
    let mut w = World::new(&["alice"]);
    w.reservation = flows::Reservation::CustomerFirst;
    assert!(w.acd.set_offline(&id("alice")));
    w.start("c1", 20000);
    assert_eq!(
        w.phase("c1"),
        Phase::Ended(flows::Outcome::Failed(flows::FailReason::NoAgent))
    );
    assert!(w.invites.is_empty());
}
