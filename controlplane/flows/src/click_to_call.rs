//! The click-to-call state machine: one [`ClickToCall`] drives one call.
//!
//! ```text
//!  Scheduled ─contact time─► Queued ─AgentAssigned─► CallingCustomer ─answer─► Announcing ─► CallingAgent ─answer─► Bridged
//!      (agent given up front: straight to CallingCustomer)               ▲                     │ no answer / reject
//!                                                                        └── RequestAgent ◄────┘ (up to max_agent_attempts)
//!  any phase ──► Ended(Completed | Failed(reason) | Cancelled)
//! ```
//!
//! That is the agent-first order ([`Reservation::AgentFirst`], the default). Customer first
//! ([`Reservation::CustomerFirst`], see `customer_first.rs`) calls the customer before any
//! agent is reserved:
//!
//! ```text
//!  Queued ─CheckAgents: some agent on duty─► CallingCustomer ─answer─► Announcing ─RequestAgent … AgentAssigned─► CallingAgent ─► Bridged
//! ```
//!
//! (an agent no-answer goes back to Announcing and requests the next agent, as above).
//!
//! Sans-IO: the machine reads no clock, opens no socket and never blocks. The orchestrator
//! feeds it [`Input`]s with the current `now` through [`ClickToCall::handle`] and executes what
//! [`ClickToCall::poll_output`] returns, in order:
//!
//! - [`Output::Sip`]: [`SipAction::Invite`] a leg, or [`SipAction::Hangup`] it. Hangup means
//!   CANCEL while the INVITE is unanswered and BYE once it was answered; the machine treats
//!   the leg as gone at once, so the orchestrator must not forward later inputs from that
//!   dialog (e.g. the 487 that answers a CANCEL), or they would be taken for the next attempt.
//! - [`Output::AllocateLegs`]: the customer is about to be dialled and the call has no media
//!   legs yet ([`CallPlan::legs`] is `None`): the orchestrator allocates a pair on one worker
//!   and answers [`Input::LegsAllocated`] (at once, or later when ports free up), or
//!   [`Input::NoLegs`] to give up (`failed/internal`). Ports are thus held only from dialling
//!   to the end: a queued or scheduled call holds none.
//! - [`Output::Media`]: a [`dp_api::Command`] for the data plane. Both legs are added (with
//!   [`dp_api::Command::AddLeg`]) just before the customer is called, and removed when the call
//!   ends; a call that ends before dialling (queued, scheduled) never touches the data plane.
//!   The leg ids are allocated by the orchestrator (up front in [`CallPlan::legs`], or on
//!   [`Output::AllocateLegs`]), which releases them (e.g. `PortPlan::release`) after
//!   [`Output::Finished`]; [`ClickToCall::legs`] tells which.
//! - [`Output::Status`]: a status change to record, with its reason when failed.
//! - [`Output::SetTimer`] / [`Output::CancelTimer`]: one timer per [`TimerKind`]; setting a
//!   kind again replaces it. The orchestrator answers with [`Input::TimerFired`]; a stale
//!   firing (cancelled or replaced timer) is ignored.
//! - [`Output::RequestAgent`] / [`Output::WithdrawAgentRequest`] / [`Output::AgentConnected`]
//!   / [`Output::ReleaseAgent`]: calls on [`crate::Acd`] (`request`, `cancel`, `mark_busy`,
//!   `release`). The ACD's answer comes back as [`Input::AgentAssigned`] or [`Input::NoAgent`].
//! - [`Output::Finished`]: last output; nothing more will happen, the machine can be dropped.
//!   (If the ACD hands an agent to a call that has finished, the orchestrator must release
//!   that agent itself; [`Output::WithdrawAgentRequest`] makes this impossible with
//!   [`crate::Acd`].)
//!
//! Endings:
//!
//! | event | outcome |
//! |---|---|
//! | customer 486 / 600 | `failed/customer_busy` |
//! | customer 408 / 480, transaction timeout, or our ring timer (then CANCEL) | `failed/customer_no_answer` |
//! | customer other 3xx–6xx | `failed/customer_rejected` |
//! | customer unreachable (transport error: ICMP unreachable, connection refused; host name that does not resolve), at once | `failed/customer_unreachable` |
//! | customer BYE before being bridged (announcement, calling the agent; the agent leg is CANCELled / BYEd) | `failed/customer_hung_up` (the customer never reached an agent) |
//! | customer answer with unusable SDP, data-plane command failure, leg lost while ringing | `failed/internal` |
//! | no agent before dialling (`NoAgent`, or the queue timer); customer first: no agent on duty (`AgentsChecked(false)`), or none reserved within the queue timer while the customer holds (then hung up) | `failed/no_agent` |
//! | agents did not answer / rejected, `max_agent_attempts` times, or no further agent (the customer is hung up) | `failed/agent_no_answer` |
//! | the same, when the last agent called was unreachable (an unreachable agent counts as one that did not answer: the next is tried) | `failed/agent_unreachable` |
//! | media timeout on a leg while bridged (both hung up) | `failed/media_timeout` |
//! | either side BYE while bridged (the other is hung up) | `completed` |
//! | [`Input::Cancel`] (everything hung up) | `cancelled` |
//!
//! Media timeouts are acted on only while bridged: before that, the customer may legitimately
//! send no RTP while listening to the announcement.
//!
//! Every ending hangs up the legs still up, cancels running timers, withdraws a pending agent
//! request, removes both media legs (if they were added), releases a held agent, and then
//! emits the final [`Output::Status`] and [`Output::Finished`].

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use dp_api::{Codec, Command, Event, LegId, LegSpec};

use crate::{AgentId, Target};

mod customer_first;
mod model;

pub use self::model::*;

/// Signalling state of one leg, as far as the machine cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// Not called, or gone.
    Idle,
    /// INVITE sent, no final answer.
    Ringing,
    /// Answered.
    Up,
}

/// One call's state machine (see the module docs for the contract).
#[derive(Debug)]
pub struct ClickToCall {
    plan: CallPlan,
    phase: Phase,
    out: VecDeque<Output>,
    /// The agent being called or talking (with where to call it).
    agent: Option<(Option<AgentId>, Target)>,
    /// True when `agent` came from the ACD and must be released.
    agent_held: bool,
    /// Agents tried so far (ACD source).
    tried: Vec<AgentId>,
    /// Agent INVITEs sent so far.
    attempts: u32,
    customer: LegState,
    agent_leg: LegState,
    legs_added: bool,
    /// The media legs, once known.
    legs: Option<Legs>,
    /// An `AllocateLegs` awaits its answer.
    allocating: bool,
    /// A `RequestAgent` awaits its answer.
    requesting: bool,
    /// Timers currently running.
    timers: Vec<TimerKind>,
    /// The legs are bridged on the agent's early media (before its answer).
    early_bridged: bool,
    /// A `CheckAgents` awaits its answer (customer first).
    checking: bool,
    /// How the last agent attempt failed (`agent_no_answer` or `agent_unreachable`): the
    /// reason when no further agent takes the call.
    agent_failure: FailReason,
}

impl ClickToCall {
    /// Starts a call: scheduled if `plan.contact_at` is after `now`, else it asks the ACD for
    /// an agent (or, with an agent given up front, calls the customer at once). The first
    /// outputs are ready to poll.
    #[must_use]
    pub fn new(plan: CallPlan, now: Instant) -> Self {
        let legs = plan.legs;
        let mut m = Self {
            plan,
            phase: Phase::Queued,
            out: VecDeque::new(),
            agent: None,
            agent_held: false,
            tried: Vec::new(),
            attempts: 0,
            customer: LegState::Idle,
            agent_leg: LegState::Idle,
            legs_added: false,
            legs: None,
            allocating: false,
            requesting: false,
            timers: Vec::new(),
            early_bridged: false,
            checking: false,
            agent_failure: FailReason::AgentNoAnswer,
        };
        m.legs = legs;
        match m.plan.contact_at {
            Some(at) if at > now => {
                m.set_timer(TimerKind::ContactTime, at.saturating_duration_since(now));
                m.set_phase(Phase::Scheduled);
            }
            _ => m.start(),
        }
        m
    }

    /// Feeds one input. Inputs that make no sense in the current phase (late or duplicate
    /// events, anything after the end) are ignored.
    pub fn handle(&mut self, _now: Instant, input: Input) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        match input {
            Input::AgentAssigned(agent, target) => self.on_agent_assigned(agent, target),
            Input::NoAgent => {
                if self.requesting {
                    self.requesting = false;
                    self.no_agent();
                }
            }
            Input::Customer(ev) => self.on_customer(ev),
            Input::Agent(ev) => self.on_agent(ev),
            Input::Media(ev) => self.on_media(&ev),
            Input::TimerFired(kind) => self.on_timer(kind),
            Input::LegsAllocated(legs) => {
                if self.allocating {
                    self.allocating = false;
                    self.legs = Some(legs);
                    if self.plan.inbound {
                        self.answer_customer();
                    } else {
                        self.dial_customer();
                    }
                }
            }
            Input::NoLegs => {
                if self.allocating {
                    self.allocating = false;
                    self.end(Outcome::Failed(FailReason::Internal));
                }
            }
            Input::AgentsChecked(any) => self.on_agents_checked(any),
            Input::Cancel => self.end(Outcome::Cancelled),
        }
    }

    /// The next thing to do, in order.
    #[must_use]
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Where the call is.
    #[must_use]
    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    /// The outward status of the current phase.
    #[must_use]
    pub fn status(&self) -> Status {
        Status::of(self.phase)
    }

    /// The plan the call was started with.
    #[must_use]
    pub fn plan(&self) -> &CallPlan {
        &self.plan
    }

    /// The current agent's id, if it has one (an agent given as a bare target has none).
    #[must_use]
    pub fn agent(&self) -> Option<&AgentId> {
        self.agent.as_ref().and_then(|(id, _)| id.as_ref())
    }

    /// The call's media legs, once allocated (the orchestrator releases them after
    /// [`Output::Finished`]).
    #[must_use]
    pub fn legs(&self) -> Option<Legs> {
        self.legs
    }

    /// True while an [`Output::AllocateLegs`] awaits its answer.
    #[must_use]
    pub fn awaiting_legs(&self) -> bool {
        self.allocating
    }

    /// How many agent INVITEs were sent.
    #[must_use]
    pub fn agent_attempts(&self) -> u32 {
        self.attempts
    }

    // ---- transitions -------------------------------------------------------------------

    fn start(&mut self) {
        if self.plan.inbound {
            // The customer is on the line: queue for an agent and answer meanwhile.
            self.customer = LegState::Ringing;
            self.request_agent();
            self.set_phase(Phase::Queued);
            self.answer_customer();
            return;
        }
        match self.plan.agent.clone() {
            AgentSource::Acd { .. } if self.plan.reservation == Reservation::CustomerFirst => {
                self.check_agents();
            }
            AgentSource::Acd { .. } => {
                self.request_agent();
                self.set_phase(Phase::Queued);
            }
            AgentSource::Given { agent, target } => {
                self.agent = Some((agent, target));
                self.dial_customer();
            }
        }
    }

    fn request_agent(&mut self) {
        let preferred = match &self.plan.agent {
            AgentSource::Acd { preferred } => preferred.clone(),
            AgentSource::Given { .. } => None,
        };
        self.requesting = true;
        self.emit(Output::RequestAgent {
            preferred,
            exclude: self.tried.clone(),
        });
        self.set_timer(TimerKind::QueueTimeout, self.plan.timers.queue_timeout);
    }

    fn on_agent_assigned(&mut self, agent: AgentId, target: Target) {
        if !self.requesting {
            // Not asked for (or asked by someone else): give it straight back.
            self.emit(Output::ReleaseAgent(agent));
            return;
        }
        self.requesting = false;
        self.cancel_timer(TimerKind::QueueTimeout);
        self.tried.push(agent.clone());
        self.agent = Some((Some(agent), target));
        self.agent_held = true;
        if self.customer == LegState::Up {
            self.dial_agent();
        } else if self.plan.inbound {
            // Answered any moment now; the answer dials the agent.
        } else {
            self.dial_customer();
        }
    }

    /// Inbound: adds the media legs and answers the customer's INVITE with them (asking
    /// for legs first when there are none).
    fn answer_customer(&mut self) {
        let Some(legs) = self.legs else {
            if !self.allocating {
                self.allocating = true;
                self.emit(Output::AllocateLegs);
            }
            return;
        };
        self.add_legs(legs);
        self.emit(Output::Sip(SipAction::Answer {
            role: Role::Customer,
            leg: legs.customer,
        }));
    }

    fn add_legs(&mut self, legs: Legs) {
        if !self.legs_added {
            self.legs_added = true;
            for leg in [legs.customer, legs.agent] {
                let m = self.plan.media;
                self.emit(Output::Media(Command::AddLeg(LegSpec {
                    id: leg,
                    remote: None,
                    latch: m.latch,
                    src_mismatch: m.src_mismatch,
                    codec: Codec::Pcmu,
                    media_timeout: m.media_timeout,
                })));
            }
        }
    }

    fn dial_customer(&mut self) {
        let Some(legs) = self.legs else {
            if !self.allocating {
                self.allocating = true;
                self.emit(Output::AllocateLegs);
            }
            return;
        };
        self.add_legs(legs);
        // The status first: the call task records it (durably) before it sends the INVITE,
        // so a process that dies after dialling leaves `calling_customer` in the store (a
        // live call: interrupted, retried per policy), never `queued` (which another node
        // would dial again).
        self.set_phase(Phase::CallingCustomer);
        self.emit(Output::Sip(SipAction::Invite {
            role: Role::Customer,
            target: self.plan.customer.clone(),
            leg: legs.customer,
        }));
        self.customer = LegState::Ringing;
        self.set_timer(TimerKind::CustomerRing, self.plan.timers.customer_ring);
    }

    fn dial_agent(&mut self) {
        let (Some((_, target)), Some(legs)) = (self.agent.clone(), self.legs) else {
            self.end(Outcome::Failed(FailReason::Internal));
            return;
        };
        self.attempts += 1;
        self.agent_failure = FailReason::AgentNoAnswer;
        self.emit(Output::Sip(SipAction::Invite {
            role: Role::Agent,
            target,
            leg: legs.agent,
        }));
        self.agent_leg = LegState::Ringing;
        self.set_timer(TimerKind::AgentRing, self.plan.timers.agent_ring);
        self.set_phase(Phase::CallingAgent);
    }

    fn on_customer(&mut self, ev: LegInput) {
        match (self.customer, ev) {
            (LegState::Ringing, LegInput::Progress | LegInput::EarlyMedia { .. })
            | (LegState::Idle, _) => {}
            (LegState::Ringing, LegInput::Answered { remote, codec }) => {
                self.cancel_timer(TimerKind::CustomerRing);
                self.customer = LegState::Up;
                let Some(Legs { customer: leg, .. }) = self.legs else {
                    self.end(Outcome::Failed(FailReason::Internal));
                    return;
                };
                self.emit(Output::Media(Command::SetRemote { leg, remote, codec }));
                self.emit(Output::Media(Command::Play {
                    leg,
                    clip: self.plan.announcement.clone(),
                    looping: true,
                }));
                self.set_phase(Phase::Announcing);
                if self.agent.is_some() {
                    self.dial_agent();
                } else if !self.requesting {
                    self.request_agent();
                }
            }
            (LegState::Ringing, LegInput::AnswerUnusable) => {
                self.end(Outcome::Failed(FailReason::Internal));
            }
            (LegState::Ringing, LegInput::Rejected { status }) => {
                self.customer = LegState::Idle;
                self.end(Outcome::Failed(FailReason::from_customer_status(status)));
            }
            (LegState::Ringing, LegInput::Timeout) => {
                self.customer = LegState::Idle;
                self.end(Outcome::Failed(FailReason::CustomerNoAnswer));
            }
            (LegState::Ringing, LegInput::Unreachable) => {
                self.customer = LegState::Idle;
                self.end(Outcome::Failed(FailReason::CustomerUnreachable));
            }
            (LegState::Ringing, LegInput::Bye) => {
                self.customer = LegState::Idle;
                self.end(Outcome::Failed(FailReason::CustomerHungUp));
            }
            (LegState::Ringing, LegInput::Ended) => {
                self.customer = LegState::Idle;
                self.end(Outcome::Failed(FailReason::Internal));
            }
            (LegState::Up, LegInput::Bye | LegInput::Ended) => {
                self.customer = LegState::Idle;
                if self.phase == Phase::Bridged {
                    self.end(Outcome::Completed);
                } else {
                    self.end(Outcome::Failed(FailReason::CustomerHungUp));
                }
            }
            (LegState::Up, _) => {}
        }
    }

    fn on_agent(&mut self, ev: LegInput) {
        match (self.agent_leg, ev) {
            (LegState::Ringing, LegInput::Progress) | (LegState::Idle, _) => {}
            (LegState::Ringing, LegInput::EarlyMedia { remote, codec }) => {
                let Some(Legs {
                    customer: a,
                    agent: b,
                }) = self.legs
                else {
                    return;
                };
                if !self.plan.agent_early_media || self.customer != LegState::Up {
                    return;
                }
                self.emit(Output::Media(Command::SetRemote {
                    leg: b,
                    remote,
                    codec,
                }));
                if !self.early_bridged {
                    self.early_bridged = true;
                    // The bridge stops the announcement: the customer hears the agent's side.
                    self.emit(Output::Media(Command::Bridge { a, b }));
                }
            }
            (LegState::Ringing, LegInput::Answered { remote, codec }) => {
                self.cancel_timer(TimerKind::AgentRing);
                self.agent_leg = LegState::Up;
                let Some(Legs {
                    customer: a,
                    agent: b,
                }) = self.legs
                else {
                    self.end(Outcome::Failed(FailReason::Internal));
                    return;
                };
                self.emit(Output::Media(Command::SetRemote {
                    leg: b,
                    remote,
                    codec,
                }));
                if !self.early_bridged {
                    self.emit(Output::Media(Command::Bridge { a, b }));
                }
                self.early_bridged = false;
                if self.agent_held {
                    if let Some(id) = self.agent().cloned() {
                        self.emit(Output::AgentConnected(id));
                    }
                }
                self.set_phase(Phase::Bridged);
            }
            (LegState::Ringing, LegInput::AnswerUnusable) => self.agent_failed(true),
            (LegState::Ringing, LegInput::Unreachable) => {
                // As an agent who did not answer (the next is tried), under its own name.
                self.agent_leg = LegState::Idle;
                self.agent_failure = FailReason::AgentUnreachable;
                self.agent_failed(false);
            }
            (
                LegState::Ringing,
                LegInput::Rejected { .. } | LegInput::Timeout | LegInput::Bye | LegInput::Ended,
            ) => {
                self.agent_leg = LegState::Idle;
                self.agent_failed(false);
            }
            (LegState::Up, LegInput::Bye | LegInput::Ended) => {
                self.agent_leg = LegState::Idle;
                self.end(Outcome::Completed);
            }
            (LegState::Up, _) => {}
        }
    }

    /// The current agent did not take the call: try the next one or give up.
    fn agent_failed(&mut self, hang_up: bool) {
        self.cancel_timer(TimerKind::AgentRing);
        if std::mem::take(&mut self.early_bridged) {
            // The agent's early media ended with its attempt: back to the announcement.
            if let Some(legs) = self.legs {
                self.emit(Output::Media(Command::Unbridge { leg: legs.customer }));
                self.emit(Output::Media(Command::Play {
                    leg: legs.customer,
                    clip: self.plan.announcement.clone(),
                    looping: true,
                }));
            }
        }
        if hang_up && self.agent_leg != LegState::Idle {
            self.emit(Output::Sip(SipAction::Hangup { role: Role::Agent }));
        }
        self.agent_leg = LegState::Idle;
        self.release_agent();
        let retry = matches!(self.plan.agent, AgentSource::Acd { .. })
            && self.attempts < self.plan.timers.max_agent_attempts.max(1);
        if retry {
            self.set_phase(Phase::Announcing);
            self.request_agent();
        } else {
            self.end(Outcome::Failed(self.agent_failure));
        }
    }

    fn no_agent(&mut self) {
        let reason = if self.attempts > 0 {
            self.agent_failure
        } else {
            FailReason::NoAgent
        };
        self.end(Outcome::Failed(reason));
    }

    fn on_media(&mut self, ev: &Event) {
        let legs = self.legs;
        let ours = |l: LegId| legs.is_some_and(|p| l == p.customer || l == p.agent);
        match ev {
            Event::MediaTimeout { leg } if ours(*leg) && self.phase == Phase::Bridged => {
                self.end(Outcome::Failed(FailReason::MediaTimeout));
            }
            Event::CommandFailed { leg: Some(leg), .. } if ours(*leg) => {
                self.end(Outcome::Failed(FailReason::Internal));
            }
            _ => {}
        }
    }

    fn on_timer(&mut self, kind: TimerKind) {
        let Some(i) = self.timers.iter().position(|&k| k == kind) else {
            return;
        };
        self.timers.swap_remove(i);
        match kind {
            TimerKind::ContactTime => {
                if self.phase == Phase::Scheduled {
                    self.start();
                }
            }
            TimerKind::QueueTimeout => {
                if self.requesting {
                    self.no_agent();
                }
            }
            TimerKind::CustomerRing => {
                if self.customer == LegState::Ringing {
                    self.end(Outcome::Failed(FailReason::CustomerNoAnswer));
                }
            }
            TimerKind::AgentRing => {
                if self.agent_leg == LegState::Ringing {
                    self.agent_failed(true);
                }
            }
        }
    }

    /// Tears everything down and records the outcome.
    fn end(&mut self, outcome: Outcome) {
        if matches!(self.phase, Phase::Ended(_)) {
            return;
        }
        for role in [Role::Customer, Role::Agent] {
            let st = match role {
                Role::Customer => &mut self.customer,
                Role::Agent => &mut self.agent_leg,
            };
            if *st != LegState::Idle {
                *st = LegState::Idle;
                self.out.push_back(Output::Sip(SipAction::Hangup { role }));
            }
        }
        for kind in std::mem::take(&mut self.timers) {
            self.emit(Output::CancelTimer(kind));
        }
        if self.requesting {
            self.requesting = false;
            self.emit(Output::WithdrawAgentRequest);
        }
        self.allocating = false;
        self.checking = false;
        if let (true, Some(legs)) = (self.legs_added, self.legs) {
            self.emit(Output::Media(Command::RemoveLeg { leg: legs.customer }));
            self.emit(Output::Media(Command::RemoveLeg { leg: legs.agent }));
        }
        self.release_agent();
        self.set_phase(Phase::Ended(outcome));
        self.emit(Output::Finished);
    }

    fn release_agent(&mut self) {
        if self.agent_held {
            self.agent_held = false;
            if let Some((Some(id), _)) = self.agent.take() {
                self.emit(Output::ReleaseAgent(id));
            }
        }
    }

    // ---- helpers -----------------------------------------------------------------------

    fn emit(&mut self, o: Output) {
        self.out.push_back(o);
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        self.emit(Output::Status(Status::of(phase)));
    }

    fn set_timer(&mut self, kind: TimerKind, after: Duration) {
        if !self.timers.contains(&kind) {
            self.timers.push(kind);
        }
        self.emit(Output::SetTimer { kind, after });
    }

    fn cancel_timer(&mut self, kind: TimerKind) {
        if let Some(i) = self.timers.iter().position(|&k| k == kind) {
            self.timers.swap_remove(i);
            self.emit(Output::CancelTimer(kind));
        }
    }
}

#[cfg(test)]
mod tests;
