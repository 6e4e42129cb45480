//! The orchestrator: executes each call's [`flows::ClickToCall`] outputs against the real SIP
//! endpoint, the data plane and the agent queues, and keeps the [`CallView`]s the HTTP API shows.
//!
//! ```text
//!  http_api ──submit/bridge──► Calls ──spawn──► one tokio task per call ("run_call")
//!                                 │                 │  ClickToCall::handle(now, Input)
//!                                 │                 │  ClickToCall::poll_output() ─► sip::Endpoint / DataplaneHandle / Acd
//!  data-plane events ─► forwarder thread ─► per-leg route ─► the owning call's inbox
//!  Acd::release hand-offs ───────────────────────────────────► the waiting call's inbox
//! ```
//!
//! Ownership: a call's task owns its state machine, its SIP legs and its timers. What is shared
//! (the views, the ACD, the routing tables) sits behind short `std::sync::Mutex`es that are never
//! held across an `.await`.

use std::collections::HashMap;
use std::future::pending;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dp_api::{Clip, Codec, Command, DataplaneHandle, DpError, Event, LegId};
use flows::{
    Acd, AgentId, AgentSource, Assignment, BusinessId, CallId, CallPlan, ClickToCall, FlowTimers,
    Input, LegInput, MediaPolicy, Output, Role, SipAction, Target, TimerKind,
};
use http_api::{
    AgentRef, BridgeRequest, BusinessInfo, CallKind, CallRequest, CallService, CallView, LegMedia,
    MediaView, ServiceError, StatusEvent,
};
use sip::{Endpoint, InviteRequest, LegController, LegEvent, OutgoingCall};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// How often a live call refreshes its media counters.
const STATS_PERIOD: Duration = Duration::from_secs(1);
/// How long a finished call waits for the data plane's final counters.
const FINAL_STATS_WAIT: Duration = Duration::from_secs(2);

/// What the orchestrator needs from the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// Where E.164 numbers are sent (`sip:host:port`).
    pub(crate) trunk: String,
    /// The user part of our From.
    pub(crate) from_user: String,
    /// The relay's media addresses, indexed by [`LegId::addr`]: each leg's own address is
    /// written into its SDP.
    pub(crate) media_ips: Vec<IpAddr>,
    /// Ring times and limits.
    pub(crate) timers: FlowTimers,
    /// Leg creation policy.
    pub(crate) media: MediaPolicy,
    /// Businesses in configuration order.
    pub(crate) businesses: Vec<(BusinessId, String)>,
    /// Agents and where to call them.
    pub(crate) agents: Vec<(AgentId, Target, Vec<BusinessId>)>,
}

/// Something for a call's task from outside the task.
#[derive(Debug)]
enum CallInput {
    /// A data-plane event about one of its legs.
    Media(Event),
    /// The ACD handed it an agent.
    Assigned(AgentId),
    /// Hang everything up (shutdown).
    Cancel,
}

type Inbox = mpsc::UnboundedSender<CallInput>;

/// The call service behind the HTTP API.
pub(crate) struct Calls {
    settings: Settings,
    sip: Endpoint,
    dp: Arc<DataplaneHandle>,
    announcement: Arc<Clip>,
    acd: Mutex<Acd>,
    /// Every call's view, by id (kept after the call ends).
    views: Mutex<HashMap<String, CallView>>,
    inboxes: Mutex<HashMap<CallId, Inbox>>,
    /// Routes data-plane events to the call owning the leg. Shared with the forwarder thread.
    legs: Arc<Mutex<HashMap<LegId, Inbox>>>,
    stop: CancellationToken,
}

impl std::fmt::Debug for Calls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Calls")
            .field("sip", &self.sip)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section here leaves the data consistent, so a poisoned lock is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Calls {
    /// Builds the service and starts the thread that forwards data-plane events into tokio.
    ///
    /// # Errors
    /// When the agents or businesses are inconsistent (the config check normally catches it).
    pub(crate) fn start(
        settings: Settings,
        sip: Endpoint,
        dp: Arc<DataplaneHandle>,
        announcement: Arc<Clip>,
        stop: CancellationToken,
    ) -> anyhow::Result<Arc<Self>> {
        let mut acd = Acd::new();
        let now = Instant::now();
        for (b, _) in &settings.businesses {
            acd.add_business(b.clone());
        }
        for (a, _, businesses) in &settings.agents {
            acd.add_agent(a.clone(), businesses.clone(), now)?;
        }
        let legs: Arc<Mutex<HashMap<LegId, Inbox>>> = Arc::default();
        let events = dp.events().clone();
        let routes = legs.clone();
        std::thread::Builder::new()
            .name("dp-events".into())
            .spawn(move || {
                // Ends when every worker has dropped its sender (data plane shut down).
                while let Ok(ev) = events.recv() {
                    let Some(leg) = ev.leg() else { continue };
                    let route = lock(&routes).get(&leg).cloned();
                    match route {
                        Some(inbox) => {
                            let _ = inbox.send(CallInput::Media(ev));
                        }
                        None => debug!(?ev, "data-plane event for a leg no call owns"),
                    }
                }
            })?;
        Ok(Arc::new(Self {
            settings,
            sip,
            dp,
            announcement,
            acd: Mutex::new(acd),
            views: Mutex::default(),
            inboxes: Mutex::default(),
            legs,
            stop,
        }))
    }

    /// Cancels every live call and waits (bounded) until they have finished.
    pub(crate) async fn shutdown(&self, deadline: Duration) {
        let inboxes: Vec<Inbox> = lock(&self.inboxes).values().cloned().collect();
        for i in &inboxes {
            let _ = i.send(CallInput::Cancel);
        }
        let until = tokio::time::Instant::now() + deadline;
        while !lock(&self.inboxes).is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn agent_target(&self, agent: &AgentId) -> Option<Target> {
        self.settings
            .agents
            .iter()
            .find(|(a, _, _)| a == agent)
            .map(|(_, t, _)| t.clone())
    }

    fn business_name(&self, b: &BusinessId) -> Option<&str> {
        self.settings
            .businesses
            .iter()
            .find(|(id, _)| id == b)
            .map(|(_, n)| n.as_str())
    }

    /// Allocates the call's two legs on one worker.
    fn allocate_legs(&self) -> Result<(LegId, LegId), ServiceError> {
        let plan = &self.dp.plan;
        let unavailable =
            |e: DpError| ServiceError::Unavailable(format!("cannot take calls now: {e}"));
        let a = plan.allocate().map_err(unavailable)?;
        let w = plan.worker_of_port(a.port()).unwrap_or(0);
        match plan.allocate_on(w) {
            Ok(b) => Ok((a, b)),
            Err(e) => {
                plan.release(a);
                Err(unavailable(e))
            }
        }
    }

    fn start_call(
        self: &Arc<Self>,
        kind: CallKind,
        business: Option<BusinessId>,
        customer: Target,
        agent: AgentSource,
        contact_at: Option<OffsetDateTime>,
        display: Option<String>,
    ) -> Result<CallView, ServiceError> {
        let (customer_leg, agent_leg) = self.allocate_legs()?;
        let id = CallId::from_random(rand::random::<u128>());
        let now = Instant::now();
        let contact_at = contact_at.and_then(|t| {
            let delta = t - OffsetDateTime::now_utc();
            (delta.is_positive()).then(|| now + Duration::try_from(delta).unwrap_or_default())
        });
        let agent_label = match &agent {
            AgentSource::Given { agent: Some(a), .. } => Some(a.as_str().to_owned()),
            AgentSource::Given {
                agent: None,
                target,
            } => Some(target.as_str().to_owned()),
            AgentSource::Acd { .. } => None,
        };
        let plan = CallPlan {
            id: id.clone(),
            customer: customer.clone(),
            agent,
            contact_at,
            customer_leg,
            agent_leg,
            announcement: self.announcement.clone(),
            timers: self.settings.timers,
            media: self.settings.media,
        };
        let machine = ClickToCall::new(plan, now);
        let status = machine.status();
        let view = CallView {
            id: id.clone(),
            kind,
            status,
            business: business.clone(),
            customer,
            agent: agent_label,
            events: vec![StatusEvent {
                at: OffsetDateTime::now_utc(),
                status,
            }],
            media: None,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&self.views).insert(id.as_str().to_owned(), view.clone());
        lock(&self.inboxes).insert(id.clone(), tx.clone());
        info!(call = %id, status = %status, "call accepted");
        let task = CallTask {
            calls: self.clone(),
            id,
            business,
            display,
            machine,
            inbox: rx,
            inbox_tx: tx,
            customer: None,
            agent: None,
            timers: HashMap::new(),
            legs_added: Vec::new(),
            finished: false,
        };
        tokio::spawn(task.run());
        Ok(view)
    }

    fn update_view(&self, id: &CallId, f: impl FnOnce(&mut CallView)) {
        if let Some(v) = lock(&self.views).get_mut(id.as_str()) {
            f(v);
        }
    }

    /// Hands freed agents to waiting calls; an agent whose call is already gone is released
    /// again, until nobody waits.
    fn release_agent(&self, agent: &AgentId) {
        let mut todo = vec![agent.clone()];
        while let Some(a) = todo.pop() {
            let handoffs = lock(&self.acd).release(&a, Instant::now());
            for (call, agent) in handoffs {
                let inbox = lock(&self.inboxes).get(&call).cloned();
                match inbox.map(|i| i.send(CallInput::Assigned(agent.clone()))) {
                    Some(Ok(())) => {}
                    _ => todo.push(agent),
                }
            }
        }
    }
}

/// The [`CallService`] the HTTP API holds: a handle on the shared [`Calls`].
#[derive(Clone)]
pub(crate) struct CallsApi {
    /// The calls.
    pub(crate) calls: Arc<Calls>,
    /// The data plane, for its per-worker counters.
    pub(crate) dataplane: Arc<worker::Dataplane>,
}

impl std::fmt::Debug for CallsApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallsApi")
            .field("calls", &self.calls)
            .finish_non_exhaustive()
    }
}

impl CallService for CallsApi {
    fn submit(&self, req: CallRequest) -> Result<CallView, ServiceError> {
        let calls = &self.calls;
        let Some(name) = calls.business_name(&req.business).map(str::to_owned) else {
            return Err(ServiceError::UnknownBusiness(req.business));
        };
        if let Some(p) = &req.preferred_agent {
            if calls.agent_target(p).is_none() {
                return Err(ServiceError::UnknownAgent(p.clone()));
            }
        }
        calls.start_call(
            CallKind::CallRequest,
            Some(req.business),
            req.customer,
            AgentSource::Acd {
                preferred: req.preferred_agent,
            },
            req.contact_time,
            Some(name),
        )
    }

    fn bridge(&self, req: BridgeRequest) -> Result<CallView, ServiceError> {
        let calls = &self.calls;
        let agent = match req.agent {
            AgentRef::Id(a) => {
                let target = calls
                    .agent_target(&a)
                    .ok_or_else(|| ServiceError::UnknownAgent(a.clone()))?;
                AgentSource::Given {
                    agent: Some(a),
                    target,
                }
            }
            AgentRef::Target(target) => AgentSource::Given {
                agent: None,
                target,
            },
        };
        calls.start_call(CallKind::Bridge, None, req.customer, agent, None, None)
    }

    fn get(&self, id: &str) -> Option<CallView> {
        lock(&self.calls.views).get(id).cloned()
    }

    fn dataplane_stats(&self) -> Option<serde_json::Value> {
        Some(crate::dpstats::to_json(&self.dataplane.stats()))
    }

    fn businesses(&self) -> Vec<BusinessInfo> {
        self.calls
            .settings
            .businesses
            .iter()
            .map(|(id, name)| BusinessInfo {
                id: id.clone(),
                name: name.clone(),
            })
            .collect()
    }
}

/// One SIP leg owned by a call task.
struct Leg {
    call: OutgoingCall,
    ctl: LegController,
}

/// The task that runs one call.
struct CallTask {
    calls: Arc<Calls>,
    id: CallId,
    business: Option<BusinessId>,
    /// Shown to the customer as the caller's display name.
    display: Option<String>,
    machine: ClickToCall,
    inbox: mpsc::UnboundedReceiver<CallInput>,
    inbox_tx: Inbox,
    customer: Option<Leg>,
    agent: Option<Leg>,
    timers: HashMap<TimerKind, Instant>,
    legs_added: Vec<LegId>,
    finished: bool,
}

async fn next_event(leg: &mut Option<Leg>) -> Option<LegEvent> {
    match leg {
        Some(l) => l.call.event().await,
        None => pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => pending().await,
    }
}

impl CallTask {
    async fn run(mut self) {
        let mut stats = tokio::time::interval(STATS_PERIOD);
        stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        self.drain();
        while !self.finished {
            let next_timer = self.timers.values().min().copied();
            tokio::select! {
                ev = next_event(&mut self.customer) => self.on_leg(Role::Customer, ev),
                ev = next_event(&mut self.agent) => self.on_leg(Role::Agent, ev),
                input = self.inbox.recv() => match input {
                    Some(i) => self.on_input(i),
                    None => break,
                },
                () = sleep_until(next_timer) => self.on_timers(),
                _ = stats.tick(), if !self.legs_added.is_empty() => self.query_stats(),
                () = self.calls.stop.cancelled(), if !self.calls.stop.is_cancelled() => {
                    self.machine.handle(Instant::now(), Input::Cancel);
                }
            }
            self.drain();
        }
        self.finish().await;
    }

    fn on_leg(&mut self, role: Role, ev: Option<LegEvent>) {
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(ev) = ev else {
            // The SIP leg is over without a final event we did not already pass on.
            *slot = None;
            return;
        };
        debug!(call = %self.id, role = role.as_str(), ?ev, "sip leg event");
        let input = match ev {
            LegEvent::Progress { .. } => LegInput::Progress,
            LegEvent::Answered { sdp } => answer_input(&sdp),
            LegEvent::Rejected { status, .. } => LegInput::Rejected { status },
            LegEvent::Timeout => LegInput::Timeout,
            LegEvent::Bye => LegInput::Bye,
            _ => LegInput::Ended,
        };
        let input = match role {
            Role::Customer => Input::Customer(input),
            Role::Agent => Input::Agent(input),
        };
        self.machine.handle(Instant::now(), input);
    }

    fn on_input(&mut self, input: CallInput) {
        match input {
            CallInput::Media(ev) => {
                match &ev {
                    Event::Stats { leg, stats } | Event::LegRemoved { leg, stats } => {
                        self.record_stats(*leg, stats)
                    }
                    _ => {}
                }
                self.machine.handle(Instant::now(), Input::Media(ev));
            }
            CallInput::Assigned(agent) => self.assigned(agent),
            CallInput::Cancel => self.machine.handle(Instant::now(), Input::Cancel),
        }
    }

    fn assigned(&mut self, agent: AgentId) {
        if let Some(target) = self.calls.agent_target(&agent) {
            let label = agent.as_str().to_owned();
            self.calls.update_view(&self.id, |v| v.agent = Some(label));
            self.machine
                .handle(Instant::now(), Input::AgentAssigned(agent, target));
        } else {
            self.machine.handle(Instant::now(), Input::NoAgent);
        }
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
            self.machine.handle(now, Input::TimerFired(kind));
        }
    }

    fn query_stats(&self) {
        for leg in &self.legs_added {
            let _ = self.calls.dp.send(Command::QueryStats { leg: *leg });
        }
    }

    fn record_stats(&self, leg: LegId, stats: &dp_api::LegStats) {
        let plan = self.machine.plan();
        let media = LegMedia::from(stats);
        let is_customer = leg == plan.customer_leg;
        self.calls.update_view(&self.id, |v| {
            let m = v.media.get_or_insert_with(MediaView::default);
            if is_customer {
                m.customer = Some(media);
            } else {
                m.agent = Some(media);
            }
        });
    }

    /// Executes every pending output of the machine.
    fn drain(&mut self) {
        while let Some(out) = self.machine.poll_output() {
            debug!(call = %self.id, output = %out, "flow output");
            self.execute(out);
        }
    }

    fn execute(&mut self, out: Output) {
        let now = Instant::now();
        match out {
            Output::Sip(SipAction::Invite { role, target, leg }) => self.invite(role, &target, leg),
            Output::Sip(SipAction::Hangup { role }) => {
                let slot = match role {
                    Role::Customer => self.customer.take(),
                    Role::Agent => self.agent.take(),
                };
                if let Some(leg) = slot {
                    leg.ctl.hangup();
                    // The machine is done with this dialog; let the SIP layer finish it (CANCEL,
                    // 487, ACK or BYE) without its late events reaching the machine.
                    let id = self.id.clone();
                    tokio::spawn(async move {
                        let mut call = leg.call;
                        while let Some(ev) = call.event().await {
                            debug!(call = %id, role = role.as_str(), ?ev, "sip event after hangup");
                        }
                    });
                }
            }
            Output::Media(cmd) => self.media(cmd),
            Output::Status(status) => {
                info!(call = %self.id, status = %status, "call status");
                self.calls.update_view(&self.id, |v| {
                    v.status = status;
                    // The view was created with the machine's first status already in it.
                    if v.events.last().map(|e| e.status) != Some(status) {
                        v.events.push(StatusEvent {
                            at: OffsetDateTime::now_utc(),
                            status,
                        });
                    }
                });
            }
            Output::SetTimer { kind, after } => {
                self.timers.insert(kind, now + after);
            }
            Output::CancelTimer(kind) => {
                self.timers.remove(&kind);
            }
            Output::RequestAgent { preferred, exclude } => {
                let Some(business) = self.business.clone() else {
                    self.machine.handle(now, Input::NoAgent);
                    return;
                };
                let a = lock(&self.calls.acd).request(
                    &self.id,
                    &business,
                    preferred.as_ref(),
                    &exclude,
                );
                match a {
                    Assignment::Assigned(agent) => self.assigned(agent),
                    Assignment::Queued => info!(call = %self.id, "waiting for a free agent"),
                    _ => self.machine.handle(now, Input::NoAgent),
                }
            }
            Output::WithdrawAgentRequest => {
                lock(&self.calls.acd).cancel(&self.id);
            }
            Output::AgentConnected(agent) => {
                lock(&self.calls.acd).mark_busy(&agent);
            }
            Output::ReleaseAgent(agent) => self.calls.release_agent(&agent),
            Output::Finished => self.finished = true,
        }
    }

    fn invite(&mut self, role: Role, target: &Target, leg: LegId) {
        let now = Instant::now();
        let fail = |machine: &mut ClickToCall| {
            let input = match role {
                Role::Customer => Input::Customer(LegInput::Ended),
                Role::Agent => Input::Agent(LegInput::Ended),
            };
            machine.handle(now, input);
        };
        let uri = match target.request_uri(&self.calls.settings.trunk) {
            Ok(u) => u,
            Err(e) => {
                warn!(call = %self.id, %target, "cannot call: {e}");
                fail(&mut self.machine);
                return;
            }
        };
        let Some(&ip) = self.calls.settings.media_ips.get(usize::from(leg.addr())) else {
            warn!(
                call = %self.id,
                %leg,
                addresses = self.calls.settings.media_ips.len(),
                "cannot call: the leg's media address index is not configured"
            );
            fail(&mut self.machine);
            return;
        };
        let rtp = SocketAddr::new(ip, leg.port());
        let sdp = sip::sdp::build_offer(rtp, u64::from(leg.0));
        // The customer sees the business; the agent sees the customer (screen pop comes with
        // the agent desktop).
        let from_display = match role {
            Role::Customer => self.display.clone(),
            Role::Agent => Some(self.machine.plan().customer.as_str().to_owned()),
        };
        let req = InviteRequest {
            target: uri.clone(),
            from_user: self.calls.settings.from_user.clone(),
            from_display,
            sdp,
            headers: vec![("X-Callbridge-Call".into(), self.id.as_str().to_owned())],
        };
        match self.calls.sip.invite(req) {
            Ok(call) => {
                info!(call = %self.id, role = role.as_str(), %uri, "INVITE sent");
                let ctl = call.controller();
                let l = Some(Leg { call, ctl });
                match role {
                    Role::Customer => self.customer = l,
                    Role::Agent => self.agent = l,
                }
            }
            Err(e) => {
                warn!(call = %self.id, %uri, "INVITE failed: {e}");
                fail(&mut self.machine);
            }
        }
    }

    fn media(&mut self, cmd: Command) {
        if let Command::AddLeg(spec) = &cmd {
            lock(&self.calls.legs).insert(spec.id, self.inbox_tx.clone());
            self.legs_added.push(spec.id);
        }
        let leg = cmd.leg();
        if let Err(e) = self.calls.dp.send(cmd) {
            warn!(call = %self.id, "data-plane command failed: {e}");
            let error = dp_api::CommandError::Io(e.to_string());
            self.machine.handle(
                Instant::now(),
                Input::Media(Event::CommandFailed { leg, error }),
            );
        }
    }

    /// After [`Output::Finished`]: collect the final counters, free the ports, forget the call.
    async fn finish(mut self) {
        let plan = self.machine.plan().clone();
        let mut pending: Vec<LegId> = self.legs_added.clone();
        let until = tokio::time::Instant::now() + FINAL_STATS_WAIT;
        while !pending.is_empty() {
            let msg = tokio::time::timeout_at(until, self.inbox.recv()).await;
            match msg {
                Ok(Some(CallInput::Media(Event::LegRemoved { leg, stats }))) => {
                    self.record_stats(leg, &stats);
                    pending.retain(|l| *l != leg);
                }
                Ok(Some(CallInput::Assigned(agent))) => self.calls.release_agent(&agent),
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        {
            let mut legs = lock(&self.calls.legs);
            for leg in &self.legs_added {
                legs.remove(leg);
            }
        }
        // RemoveLeg was queued before this release, so a later AddLeg on the same port reaches
        // the worker after it.
        self.calls.dp.plan.release(plan.customer_leg);
        self.calls.dp.plan.release(plan.agent_leg);
        lock(&self.calls.inboxes).remove(&self.id);
        // An agent handed to us after we finished goes back to the pool.
        while let Ok(input) = self.inbox.try_recv() {
            if let CallInput::Assigned(agent) = input {
                self.calls.release_agent(&agent);
            }
        }
        info!(call = %self.id, "call finished");
    }
}

/// Turns an SDP answer into the machine's input.
fn answer_input(sdp: &str) -> LegInput {
    let negotiated =
        sip::sdp::SessionDescription::parse(sdp).and_then(|s| s.negotiated_from_answer());
    match negotiated {
        Ok(n) => match Codec::from_payload_type(n.payload_type) {
            Some(codec) => LegInput::Answered {
                remote: n.remote,
                codec,
            },
            None => LegInput::AnswerUnusable,
        },
        Err(e) => {
            warn!("unusable SDP answer: {e}");
            LegInput::AnswerUnusable
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdp_answer_maps_to_machine_input() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 40000 RTP/AVP 8 101\r\na=rtpmap:8 PCMA/8000\r\n";
        assert_eq!(
            answer_input(sdp),
            LegInput::Answered {
                remote: "127.0.0.1:40000".parse().unwrap(),
                codec: Codec::Pcma
            }
        );
        assert_eq!(answer_input("garbage"), LegInput::AnswerUnusable);
        let g722 = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                    m=audio 40000 RTP/AVP 9\r\n";
        assert_eq!(answer_input(g722), LegInput::AnswerUnusable);
    }
}
