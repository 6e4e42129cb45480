//! One live call: a task that feeds [`ClickToCall`] and executes its outputs against the
//! B2BUA ([`CallLegs`]), the ACD and the store.
//!
//! The task is the only writer of its request's row while it runs; it owns the call's SIP
//! legs, media legs and timers, and releases all of them however the call ends.

use std::collections::HashMap;
use std::future::pending;
use std::time::{Duration, Instant};

use b2bua::{B2bEvent, CallLegs};
use dp_api::{Command, Event, LegId, LegStats};
use flows::{
    AgentId, AgentRequest, Assignment, BusinessId, CallId, ClickToCall, FailReason, Input,
    LegInput, Legs, Outcome, Output, Phase, Role, SipAction, Status, TimerKind,
};
use serde_json::Value;
use store::{CallRecord, Kind, MediaSummary, StatusChange};
use tokio::sync::mpsc;
use tracing::{debug, error, info, info_span, warn, Instrument as _};

use crate::{lock, now_ms, CallInput, Notice, Preallocated, ScreenPop, Service, HISTORY_LEN};

/// How often a live call refreshes its media counters.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// How long a finished call waits for its legs' final counters (`LegRemoved`).
const REMOVAL_WAIT: Duration = Duration::from_secs(5);
/// How often a call waiting for free media ports tries again.
const PORT_RETRY: Duration = Duration::from_millis(200);

/// Runs an inbound call (its caller's INVITE, its legs) to its end.
pub(crate) async fn run_inbound(
    svc: Service,
    rec: CallRecord,
    legs: Legs,
    call: sip::IncomingCall,
) {
    let span = info_span!("call", id = %rec.request.id);
    run_with(svc, rec, Some(legs), Some(call))
        .instrument(span)
        .await;
}

/// Runs a claimed request (or a just-accepted bridge with its legs) to its end.
///
/// Everything the call logs is inside a span `call` with its id (`call{id=c_…}`, or the JSON
/// log's `span.id`).
pub(crate) async fn run(svc: Service, rec: CallRecord, legs: Preallocated) {
    let span = info_span!("call", id = %rec.request.id);
    run_with(svc, rec, legs, None).instrument(span).await;
}

async fn run_with(
    svc: Service,
    rec: CallRecord,
    legs: Preallocated,
    incoming: Option<sip::IncomingCall>,
) {
    let id = rec.request.id.clone();
    let plan = match plan(&svc, &rec, legs) {
        Ok(p) => p,
        Err(why) => {
            error!(call = %id, cause = %why, "call failed: internal (cannot plan the request)");
            lock(&svc.inner().reserved).remove(&id);
            if let Some(b) = &rec.request.business {
                svc.stop_counting(b, &id);
            }
            svc.end_slot(&id);
            if let Some(l) = legs {
                svc.inner().b2b.media().release(l);
            }
            let mut ch = StatusChange::new(now_ms(), "failed");
            ch.reason = Some("internal".into());
            let business = rec.request.business.as_ref();
            svc.inner()
                .metrics
                .status(business, "failed", Some("internal"));
            write_status(&svc, &id, ch).await;
            return;
        }
    };
    // Admission: the scheduler took the slot of a request it claimed (scheduled, retried,
    // recovered); one started otherwise takes it now and waits for its set-up token, or
    // goes back to the store until one frees.
    match svc.inner().admission.claim(&id, Instant::now()) {
        crate::admission::Claim::Held => {}
        crate::admission::Claim::Took(wait) => {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        crate::admission::Claim::Full(o) => {
            info!(call = %id, reason = o.reason, "no capacity to dial now; waiting {} s", o.retry_after_s);
            let store = svc.inner().store.clone();
            let id2 = id.clone();
            let due = now_ms() + i64::try_from(o.retry_after_s * 1000).unwrap_or(i64::MAX);
            let _ = tokio::task::spawn_blocking(move || store.unclaim(&id2, due)).await;
            return;
        }
    }
    // Calls in progress per business: a request claimed later (scheduled, retried,
    // recovered) takes its place now, or waits.
    if let Some(b) = &rec.request.business {
        if let Err(e) = svc.start_counting(b, &id) {
            svc.end_slot(&id);
            info!(call = %id, "{e}; waiting");
            let store = svc.inner().store.clone();
            let id2 = id.clone();
            let due = now_ms() + 5_000;
            let _ = tokio::task::spawn_blocking(move || store.unclaim(&id2, due)).await;
            return;
        }
    }
    let (tx, rx) = mpsc::unbounded_channel();
    if svc.admit_live(&id, tx).is_none() {
        // Cancelled (and recorded so) between its claim and now: nothing to dial.
        info!(call = %id, "cancelled before it started");
        lock(&svc.inner().reserved).remove(&id);
        if let Some(b) = &rec.request.business {
            svc.stop_counting(b, &id);
        }
        svc.end_slot(&id);
        if let Some(l) = plan.legs {
            svc.inner().b2b.media().release(l);
        }
        return;
    }
    let dir = svc.inner().dir();
    let display = rec
        .request
        .business
        .as_ref()
        .and_then(|b| dir.business(b))
        .map(|b| b.name.clone());
    let machine = ClickToCall::new(plan, Instant::now());
    let mut call_legs = svc.inner().b2b.call(id.as_str());
    if let Some(call) = incoming {
        call_legs.incoming(Role::Customer, call);
    }
    let task = CallTask {
        record: rec.clone(),
        bridged_at: None,
        attempts: rec.attempts,
        final_change: None,
        legs: call_legs,
        svc,
        id,
        business: rec.request.business.clone(),
        display,
        machine,
        inbox: rx,
        timers: HashMap::new(),
        finished: false,
        last_status: rec.status.clone(),
        agent_label: rec.agent.clone(),
        waiting_ports: false,
        stats: HashMap::new(),
        setup: crate::metrics::SetupClock::start(),
        fault: None,
    };
    task.run().await;
}

async fn write_status(svc: &Service, id: &CallId, ch: StatusChange) {
    let store = svc.inner().store.clone();
    let id2 = id.clone();
    match tokio::task::spawn_blocking(move || store.set_status(&id2, &ch)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(call = %id, "cannot record status: {e}"),
        Err(e) => warn!(call = %id, "cannot record status: {e}"),
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => pending().await,
    }
}

struct CallTask {
    /// The request as claimed (for the screen pop).
    record: CallRecord,
    /// When the call was bridged (its handle time feeds the estimated wait).
    bridged_at: Option<Instant>,
    svc: Service,
    id: CallId,
    business: Option<BusinessId>,
    /// Shown to the customer as the caller's name.
    display: Option<String>,
    machine: ClickToCall,
    legs: CallLegs,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    timers: HashMap<TimerKind, Instant>,
    finished: bool,
    /// Customer attempts so far, this one included once it dialled.
    attempts: u32,
    /// The final status, held until the media summary is stored ([`CallTask::finish`]).
    final_change: Option<StatusChange>,
    /// The last status written (`failed/<reason>` for failures), to skip repeats.
    last_status: String,
    agent_label: Option<String>,
    /// An `AllocateLegs` found no free ports; retried every [`PORT_RETRY`].
    waiting_ports: bool,
    /// The latest counters per media leg.
    stats: HashMap<LegId, LegStats>,
    /// Set-up times and the wait for an agent, for `GET /metrics`.
    setup: crate::metrics::SetupClock,
    /// Why the input being fed may fail the call as `internal` (logged by [`CallTask::feed`]).
    fault: Option<String>,
}

impl CallTask {
    async fn run(mut self) {
        let mut stats = tokio::time::interval(STATS_PERIOD);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let stop = self.svc.inner().stop.clone();
        self.drain().await;
        while !self.finished {
            let next_timer = self.timers.values().min().copied();
            tokio::select! {
                ev = self.legs.next() => self.on_b2b(ev),
                input = self.inbox.recv() => match input {
                    Some(CallInput::Assigned(agent)) => self.assigned(agent).await,
                    Some(CallInput::Cancel) | None => self.feed(Instant::now(), Input::Cancel),
                    Some(CallInput::SipTrace) => {
                        sip::trace::watch(self.id.as_str(), &self.legs.sip_call_ids());
                    }
                },
                () = sleep_until(next_timer) => self.on_timers(),
                () = tokio::time::sleep(PORT_RETRY), if self.waiting_ports => self.allocate(),
                _ = stats.tick(), if !self.legs.routed().is_empty() => self.query_stats(),
                () = stop.cancelled(), if !stop.is_cancelled() => {
                    self.feed(Instant::now(), Input::Cancel);
                }
            }
            self.drain().await;
        }
        self.finish().await;
    }

    fn on_b2b(&mut self, ev: B2bEvent) {
        let now = Instant::now();
        let input = match ev {
            B2bEvent::Leg(Role::Customer, l) => Input::Customer(l),
            B2bEvent::Leg(Role::Agent, l) => {
                if l == LegInput::Unreachable {
                    self.agent_unreachable(now);
                }
                Input::Agent(l)
            }
            B2bEvent::Media(ev) => {
                if let Event::Stats { leg, stats } | Event::LegRemoved { leg, stats } = &ev {
                    self.stats.insert(*leg, *stats);
                    self.publish_media();
                }
                if let Event::CommandFailed { error, .. } = &ev {
                    self.fault = Some(format!("the data plane refused a command: {error}"));
                }
                Input::Media(ev)
            }
        };
        self.feed(now, input);
    }

    /// Feeds the machine. An input that fails the call as `internal` is logged here, once, at
    /// ERROR with the call id and its cause (what the site that knew it put in `fault`, else
    /// the input itself): `internal` is only for faults on our side, and each is explained.
    fn feed(&mut self, now: Instant, input: Input) {
        let internal = Phase::Ended(Outcome::Failed(FailReason::Internal));
        let before = *self.machine.phase();
        // Counters (every second) cannot fail a call: not worth describing.
        let routine = matches!(input, Input::Media(Event::Stats { .. }));
        let what = (!routine).then(|| format!("{input:?}"));
        self.machine.handle(now, input);
        let fault = self.fault.take();
        if before != internal && *self.machine.phase() == internal {
            let what = what.unwrap_or_default();
            let cause = fault.unwrap_or_else(|| format!("unexpected input in {before:?}: {what}"));
            error!(call = %self.id, cause = %cause, "call failed: internal");
        }
    }

    /// The agent's phone cannot be reached: as for an agent who let it ring out, the agent
    /// is set away (a dead phone would otherwise be offered every call) before the machine
    /// tries the next one.
    fn agent_unreachable(&mut self, now: Instant) {
        if *self.machine.phase() != Phase::CallingAgent {
            return;
        }
        if let Some(agent) = self.machine.agent().cloned() {
            warn!(call = %self.id, agent = %agent, "agent unreachable: set away");
            let handoffs = lock(&self.svc.inner().acd).no_answer(&agent, &self.id, now);
            self.svc.hand_over(handoffs);
        }
    }

    /// The ACD gave the call an agent: its desktop gets the screen pop first, then the
    /// machine goes on (the agent's phone is called only after that).
    async fn assigned(&mut self, agent: AgentId) {
        let Some(a) = self.svc.inner().dir().agent(&agent).cloned() else {
            self.feed(Instant::now(), Input::NoAgent);
            return;
        };
        self.agent_label = Some(agent.as_str().to_owned());
        let waited = self.setup.elapsed();
        self.svc
            .inner()
            .metrics
            .waited(self.business.as_ref(), waited);
        self.screen_pop(&agent).await;
        self.feed(Instant::now(), Input::AgentAssigned(agent, a.contact));
    }

    async fn screen_pop(&self, agent: &AgentId) {
        let store = self.svc.inner().store.clone();
        let id = self.id.clone();
        let customer = self.record.request.customer.clone();
        let found = tokio::task::spawn_blocking(move || {
            let call = store.get(&id)?;
            let history = store.history(&customer, &id, HISTORY_LEN)?;
            Ok::<_, store::StoreError>((call, history))
        })
        .await;
        let (call, history) = match found {
            Ok(Ok((call, history))) => (call.unwrap_or_else(|| self.record.clone()), history),
            Ok(Err(e)) => {
                warn!(call = %self.id, "screen pop without history: {e}");
                (self.record.clone(), Vec::new())
            }
            Err(e) => {
                warn!(call = %self.id, "screen pop without history: {e}");
                (self.record.clone(), Vec::new())
            }
        };
        let dir = self.svc.inner().dir();
        let business_name = self
            .business
            .as_ref()
            .and_then(|b| dir.business(b))
            .map(|b| b.name.clone());
        info!(call = %self.id, agent = %agent, "screen pop");
        let _ = self
            .svc
            .inner()
            .events
            .send(Notice::ScreenPop(Box::new(ScreenPop {
                agent: agent.clone(),
                call,
                business_name,
                history,
            })));
    }

    fn on_timers(&mut self) {
        let now = Instant::now();
        let due: Vec<TimerKind> = self
            .timers
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(k, _)| *k)
            .collect();
        for kind in due {
            self.timers.remove(&kind);
            if kind == TimerKind::AgentRing && *self.machine.phase() == Phase::CallingAgent {
                // The agent let it ring out: away until it says it is available again.
                if let Some(agent) = self.machine.agent().cloned() {
                    info!(call = %self.id, agent = %agent, "agent did not answer: set away");
                    self.svc.agent_no_answer(&agent, &self.id, now);
                }
            }
            self.feed(now, Input::TimerFired(kind));
        }
    }

    fn query_stats(&mut self) {
        for leg in self.legs.routed().to_vec() {
            let _ = self.legs.media(Command::QueryStats { leg });
        }
    }

    /// The machine asked for media legs (or is still waiting for free ports).
    fn allocate(&mut self) {
        if !self.machine.awaiting_legs() {
            self.waiting_ports = false;
            return;
        }
        match self.svc.inner().b2b.media().allocate_pair() {
            Ok(legs) => {
                self.waiting_ports = false;
                lock(&self.svc.inner().reserved).remove(&self.id);
                self.feed(Instant::now(), Input::LegsAllocated(legs));
            }
            Err(b2bua::MediaError::NoFreePort) => {
                if !self.waiting_ports {
                    info!(call = %self.id, "waiting for free media ports");
                }
                self.waiting_ports = true;
            }
            Err(e) => {
                self.fault = Some(format!("cannot allocate media legs: {e}"));
                self.waiting_ports = false;
                self.feed(Instant::now(), Input::NoLegs);
            }
        }
    }

    /// Executes every pending output of the machine.
    async fn drain(&mut self) {
        while let Some(out) = self.machine.poll_output() {
            debug!(call = %self.id, output = %out, "flow output");
            self.execute(out).await;
        }
    }

    async fn execute(&mut self, out: Output) {
        let now = Instant::now();
        match out {
            Output::Sip(SipAction::Invite { role, target, leg }) => {
                // The customer sees the business; the agent sees the customer.
                let display = match role {
                    Role::Customer => self.display.clone(),
                    Role::Agent => Some(self.machine.plan().customer.as_str().to_owned()),
                };
                // The customer sees the business's caller id.
                let dir = self.svc.inner().dir();
                let caller_id = match role {
                    Role::Customer => self
                        .business
                        .as_ref()
                        .and_then(|b| dir.business(b))
                        .and_then(|b| b.caller_id.clone()),
                    Role::Agent => None,
                };
                let business = self.business.clone();
                let srtp = match role {
                    Role::Customer => self.svc.inner().settings.customer_srtp,
                    Role::Agent => self
                        .machine
                        .agent()
                        .and_then(|a| dir.agent(a).map(|e| e.srtp))
                        .unwrap_or_default(),
                };
                if let Err(e) = self
                    .legs
                    .invite(b2bua::Dial {
                        role,
                        target: &target,
                        leg,
                        from_display: display,
                        from_user: caller_id.as_deref(),
                        business: business.as_ref().map(|b| b.as_str()),
                        srtp,
                    })
                    .await
                {
                    // Explicit: a callee that cannot be reached (its host name does not
                    // resolve) is the callee's failure; anything else is ours (`internal`).
                    let leg = match e {
                        b2bua::B2buaError::Unreachable { .. } => {
                            warn!(call = %self.id, role = role.as_str(), cause = %e, "unreachable");
                            if role == Role::Agent {
                                self.agent_unreachable(now);
                            }
                            LegInput::Unreachable
                        }
                        b2bua::B2buaError::Target { .. }
                        | b2bua::B2buaError::NoMediaAddress(_)
                        | b2bua::B2buaError::Invite { .. }
                        | b2bua::B2buaError::Media(_) => {
                            self.fault = Some(format!("cannot call the {}: {e}", role.as_str()));
                            LegInput::Ended
                        }
                    };
                    let input = match role {
                        Role::Customer => Input::Customer(leg),
                        Role::Agent => Input::Agent(leg),
                    };
                    self.feed(now, input);
                } else {
                    info!(call = %self.id, role = role.as_str(), %target, "INVITE sent");
                }
            }
            Output::Sip(SipAction::Answer { role, leg }) => {
                let input = self.legs.answer(role, leg);
                if input == LegInput::AnswerUnusable {
                    self.fault = Some(format!("cannot answer the {}'s offer", role.as_str()));
                }
                let input = match role {
                    Role::Customer => Input::Customer(input),
                    Role::Agent => Input::Agent(input),
                };
                self.feed(now, input);
            }
            Output::Sip(SipAction::Hangup { role }) => self.legs.hangup(role),
            Output::Media(cmd) => {
                let leg = cmd.leg();
                if let Err(e) = self.legs.media(cmd) {
                    self.fault = Some(format!("data-plane command failed: {e}"));
                    let error = dp_api::CommandError::Io(e.to_string());
                    self.feed(now, Input::Media(Event::CommandFailed { leg, error }));
                }
            }
            Output::Status(status) => self.status(status).await,
            Output::SetTimer { kind, after } => {
                self.timers.insert(kind, now + after);
            }
            Output::CancelTimer(kind) => {
                self.timers.remove(&kind);
            }
            Output::RequestAgent { preferred, exclude } => {
                let Some(business) = self.business.clone() else {
                    self.feed(now, Input::NoAgent);
                    return;
                };
                let req = AgentRequest {
                    call: self.id.clone(),
                    business,
                    skill: self.record.request.skill.clone(),
                    preferred,
                    exclude,
                };
                let a = self.svc.request_agent(req, now).await;
                match a {
                    Assignment::Assigned(agent) => self.assigned(agent).await,
                    Assignment::Queued => info!(call = %self.id, "waiting for a free agent"),
                    _ => self.feed(now, Input::NoAgent),
                }
            }
            Output::CheckAgents => {
                let skill = self.record.request.skill.as_ref();
                let any = self
                    .business
                    .as_ref()
                    .is_some_and(|b| lock(&self.svc.inner().acd).can_serve(b, skill, &[]));
                if !any {
                    info!(call = %self.id, "no agent on duty: the customer is not called");
                }
                self.machine.handle(now, Input::AgentsChecked(any));
            }
            Output::WithdrawAgentRequest => self.svc.withdraw_agent_request(&self.id),
            Output::AgentConnected(agent) => self.svc.agent_connected(&agent),
            Output::ReleaseAgent(agent) => self.svc.release_agent(&agent),
            Output::AllocateLegs => self.allocate(),
            Output::Finished => self.finished = true,
        }
    }

    /// Records a status change (skipping a repeat) and publishes it.
    async fn status(&mut self, status: Status) {
        let name = status.to_string();
        if name == self.last_status {
            return;
        }
        self.last_status = name;
        info!(call = %self.id, status = %status, "call status");
        self.setup.on_status(status, &self.svc.inner().metrics);
        if status == Status::Bridged {
            self.bridged_at = Some(Instant::now());
        }
        if status.is_final() {
            if let (Some(at), Some(b)) = (self.bridged_at, self.business.as_ref()) {
                let wrap = self
                    .agent_label
                    .as_ref()
                    .and_then(|a| AgentId::new(a.clone()).ok())
                    .and_then(|a| self.svc.inner().dir().agent(&a).map(|e| e.wrap_up))
                    .unwrap_or_default();
                lock(&self.svc.inner().acd).record_handle_time(b, at.elapsed() + wrap);
            }
        }
        let at = now_ms();
        if status == Status::CallingCustomer {
            self.attempts += 1;
        }
        if let Some((due, reason)) = self.retry_due(status) {
            // Not the end: the customer is called again at `due` (inside opening hours).
            info!(call = %self.id, attempts = self.attempts, reason, due, "customer will be called again");
            let mut ch = StatusChange::new(at, "scheduled");
            ch.reason = Some(reason.to_owned());
            ch.due_ms = Some(due);
            ch.unclaim = true;
            self.record_change(ch, None).await;
            self.svc.inner().wake.notify_one();
            return;
        }
        let mut ch = StatusChange::new(at, status.as_str());
        ch.reason = status.reason().map(|r| r.as_str().to_owned());
        ch.agent.clone_from(&self.agent_label);
        ch.attempt = status == Status::CallingCustomer;
        if status.is_final() {
            // Recorded by `finish` once the legs' final counters are stored, so that whoever
            // sees the final status (API, stream, webhook) sees the final media with it.
            self.final_change = Some(ch);
            return;
        }
        let agent = self.agent_label.clone();
        self.record_change(ch, agent).await;
    }

    /// Writes a status change with its webhook (one transaction), wakes the outbox, and
    /// publishes it to the live subscribers.
    async fn record_change(&self, mut ch: StatusChange, agent: Option<String>) {
        ch.webhook = self.svc.webhook_for(
            &self.record,
            &ch.status,
            ch.reason.as_deref(),
            agent.as_deref(),
            ch.at_ms,
        );
        let queued = ch.webhook.is_some();
        let (status, reason, at) = (ch.status.clone(), ch.reason.clone(), ch.at_ms);
        write_status(&self.svc, &self.id, ch).await;
        if queued {
            self.svc.inner().outbox_wake.notify_one();
        }
        self.svc
            .publish(&self.id, self.business.clone(), agent, &status, reason, at);
    }

    /// When a failed call request is to be tried again, per its business's retry policy
    /// and opening hours: `(due, reason)`.
    fn retry_due(&self, status: Status) -> Option<(i64, &'static str)> {
        let Status::Failed(reason) = status else {
            return None;
        };
        if self.record.request.kind != Kind::CallRequest {
            return None;
        }
        let dir = self.svc.inner().dir();
        let b = dir.business(self.business.as_ref()?)?;
        let always;
        let hours = match &b.hours {
            Some(h) => h,
            None => {
                always = flows::hours::OpeningHours::always_open(jiff::tz::TimeZone::UTC);
                &always
            }
        };
        let next = b
            .retry
            .next_attempt(self.attempts, reason, jiff::Timestamp::now(), hours)?;
        Some((next.as_millisecond(), reason.as_str()))
    }

    fn publish_media(&self) {
        let Some(legs) = self.machine.legs() else {
            return;
        };
        let mut live = lock(&self.svc.inner().live_media);
        let entry = live.entry(self.id.clone()).or_default();
        if let Some(s) = self.stats.get(&legs.customer) {
            entry.0 = Some(*s);
        }
        if let Some(s) = self.stats.get(&legs.agent) {
            entry.1 = Some(*s);
        }
    }

    /// After [`Output::Finished`]: wait for the workers to remove the legs (their final
    /// counters come with it), store the media summary, free the ports, forget the call.
    async fn finish(mut self) {
        let legs: Option<Legs> = self.machine.legs();
        let mut pending: Vec<LegId> = self.legs.routed().to_vec();
        let until = tokio::time::Instant::now() + REMOVAL_WAIT;
        while !pending.is_empty() {
            match tokio::time::timeout_at(until, self.legs.next_media()).await {
                Ok(Some(Event::LegRemoved { leg, stats })) => {
                    self.stats.insert(leg, stats);
                    pending.retain(|l| *l != leg);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        self.legs.close();
        let svc = self.svc.clone();
        if let Some(l) = legs {
            for (role, leg) in [("customer", l.customer), ("agent", l.agent)] {
                if let Some(s) = self.stats.get(&leg) {
                    svc.inner().metrics.leg_ended(role, s);
                }
            }
            let summaries: Vec<(&str, Value)> = [("customer", l.customer), ("agent", l.agent)]
                .into_iter()
                .filter_map(|(role, leg)| self.stats.get(&leg).map(|s| (role, media_json(s))))
                .collect();
            let store = svc.inner().store.clone();
            let id = self.id.clone();
            let rows: Vec<(String, MediaSummary)> = summaries
                .into_iter()
                .map(|(r, v)| {
                    (
                        r.to_owned(),
                        MediaSummary {
                            json: v.to_string(),
                        },
                    )
                })
                .collect();
            let _ = tokio::task::spawn_blocking(move || {
                for (role, m) in &rows {
                    if let Err(e) = store.set_media(&id, role, m) {
                        warn!(call = %id, "cannot record media summary: {e}");
                    }
                }
            })
            .await;
            if !pending.is_empty() {
                warn!(call = %self.id, ?pending, "final counters not received in time");
            }
            // Safe whatever the wait's outcome: the port plan hands a port out again only
            // once its worker has confirmed the previous leg's removal (and re-sends a lost
            // RemoveLeg itself).
            svc.inner().b2b.media().release(l);
        }
        if let Some(ch) = self.final_change.take() {
            let agent = self.agent_label.clone();
            self.record_change(ch, agent).await;
        }
        lock(&svc.inner().live_media).remove(&self.id);
        lock(&svc.inner().reserved).remove(&self.id);
        if let Some(b) = &self.business {
            svc.stop_counting(b, &self.id);
        }
        svc.end_slot(&self.id);
        lock(&svc.inner().live).remove(&self.id);
        // An agent handed to us after we finished goes back to the pool.
        while let Ok(input) = self.inbox.try_recv() {
            if let CallInput::Assigned(agent) = input {
                svc.release_agent(&agent);
            }
        }
        info!(call = %self.id, "call finished");
    }
}

mod media;
mod plan;

pub use media::{media_json, quality};
use plan::plan;

#[cfg(test)]
mod tests;
