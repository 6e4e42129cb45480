//! Agents shared with the other control-plane nodes (a shared store: PostgreSQL).
//!
//! ```text
//!  call task ─RequestAgent─► local Acd (proposal) ─► backend.reserve (row lock) ─true─► Assigned
//!                                                                          └false─► mirror the row, ask again
//!  listener thread ◄─ NOTIFY callbridge_agents 'alice' ── another node's change
//!        └─► backend.agent(alice) ─► Acd::apply_shared ─► hand-offs ─► confirm each with reserve
//!  local notices (screen pop, status of a call with an agent) ─► NOTIFY callbridge_notices ─► other nodes re-publish them
//! ```
//!
//! Each node keeps its own waiting calls in its [`Acd`](flows::Acd) and a mirror of every
//! agent. A hand-off is only a proposal until [`PresenceBackend::reserve`] says yes; the mirror
//! follows the shared rows through LISTEN/NOTIFY (well under a second) and a full resync every
//! [`RESYNC`] (the fallback for a lost LISTEN connection, and what frees a dead node's agents
//! once its lease has expired: no notification announces a death). With one node (SQLite)
//! none of this runs: [`SharedAcd`] is absent and the ACD alone decides, as before.

use std::collections::{HashMap, VecDeque};

use flows::acd::{Change, PresenceBackend, Watcher};
use flows::{AgentRequest, Assignment};

use crate::*;

/// How often every agent's row is read again (the polling fallback).
pub(crate) const RESYNC: Duration = Duration::from_secs(2);
/// How many agents a call tries, one after another, when reservations are refused.
const TRIES: usize = 4;
/// Notices from other nodes remembered, so that they are not sent back out.
const ECHOES: usize = 1024;

/// The shared state of the service (see the module docs).
pub(crate) struct SharedAcd {
    pub(crate) backend: Arc<dyn PresenceBackend>,
    /// Agent requests of this node's calls that wait in its ACD, to ask again when a
    /// hand-off is refused by the backend.
    pending: Mutex<HashMap<CallId, AgentRequest>>,
    /// Notices re-published from other nodes (`(call, kind)`), not to be forwarded again.
    echoes: Mutex<VecDeque<(CallId, String)>>,
    /// Agents the mirror shows on another node's call (copied from their rows): a call of
    /// that id running here later (a call taken over from a dead node, retried) is not
    /// mistaken for this node's own reservation.
    remote: Mutex<HashMap<AgentId, CallId>>,
    watcher: Mutex<Option<Watcher>>,
    last_sync: Mutex<Instant>,
}

impl SharedAcd {
    /// The shared state over `store`'s backend for run `run`, if the store is shared.
    pub(crate) fn of(store: &dyn Store, run: &str) -> Option<Self> {
        Some(Self {
            backend: store.presence_backend(run)?,
            pending: Mutex::default(),
            echoes: Mutex::default(),
            remote: Mutex::default(),
            watcher: Mutex::default(),
            last_sync: Mutex::new(Instant::now()),
        })
    }
}

/// `instant` as Unix ms, knowing that `now` is `now_ms`.
fn ms_of(instant: Instant, now: Instant, now_ms: i64) -> i64 {
    let d = i64::try_from(instant.saturating_duration_since(now).as_millis()).unwrap_or(i64::MAX);
    now_ms.saturating_add(d)
}

impl Service {
    fn shared(&self) -> Option<&SharedAcd> {
        self.inner.shared.as_ref()
    }

    /// Starts the sharing: the mirror of every agent's row, the listener, the forwarding of
    /// local notices. A no-op with a store of this node's own.
    pub(crate) async fn start_shared_acd(&self) -> Result<(), ServiceError> {
        let Some(sh) = self.shared() else {
            return Ok(());
        };
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.resync())
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let s = self.clone();
        let watcher = sh
            .backend
            .watch(Box::new(move |change| s.on_change(change)))
            .map_err(ServiceError::Internal)?;
        *lock(&sh.watcher) = Some(watcher);
        let s = self.clone();
        tokio::spawn(async move { s.forward_notices().await });
        info!("agents shared through the store (LISTEN/NOTIFY, resync every {RESYNC:?})");
        Ok(())
    }

    /// One change from the listener thread (blocking is fine here). `false` stops it.
    fn on_change(&self, change: Change) -> bool {
        let Some(sh) = self.shared() else {
            return false;
        };
        match change {
            Change::Agent(agent) => match sh.backend.agent(&agent, now_ms()) {
                Ok(Some(row)) => {
                    let handoffs = self.apply_rows(&[row]);
                    self.confirm(handoffs);
                }
                Ok(None) => {}
                Err(e) => warn!(agent = %agent, "cannot read the agent's shared state: {e}"),
            },
            Change::Notice(payload) => self.on_notice(&payload),
            Change::Resync => self.resync(),
            Change::Lost(why) => {
                warn!("the store's LISTEN connection was lost ({why}); polling every {RESYNC:?} until it is back");
            }
            Change::Tick => {
                if lock(&sh.last_sync).elapsed() >= RESYNC {
                    self.resync();
                }
            }
        }
        !self.inner.stop.is_cancelled()
    }

    /// Reads every agent's row and applies it (blocking).
    fn resync(&self) {
        let Some(sh) = self.shared() else {
            return;
        };
        *lock(&sh.last_sync) = Instant::now();
        match sh.backend.agents(now_ms()) {
            Ok(rows) => {
                let handoffs = self.apply_rows(&rows);
                self.confirm(handoffs);
            }
            Err(e) => warn!("cannot read the agents' shared state: {e}"),
        }
    }

    fn apply_rows(&self, rows: &[flows::acd::SharedAgent]) -> Vec<(CallId, AgentId)> {
        let Some(sh) = self.shared() else {
            return Vec::new();
        };
        let (now, now_ms) = (Instant::now(), now_ms());
        let mut acd = lock(&self.inner.acd);
        let mut remote = lock(&sh.remote);
        let mut out = Vec::new();
        for r in rows {
            let copied = remote.get(&r.agent).cloned();
            let local =
                |c: &CallId| copied.as_ref() != Some(c) && lock(&self.inner.live).contains_key(c);
            out.extend(acd.apply_shared(r, now, now_ms, &local));
            Self::note_remote(&mut remote, r);
        }
        out
    }

    /// Remembers whether the mirror now shows `row`'s agent on another node's call.
    fn note_remote(remote: &mut HashMap<AgentId, CallId>, row: &flows::acd::SharedAgent) {
        match &row.call {
            Some(c) if !row.mine => {
                remote.insert(row.agent.clone(), c.clone());
            }
            _ => {
                remote.remove(&row.agent);
            }
        }
    }

    /// Makes the mirror of `agent` what the backend says, whatever this node thought (after a
    /// refused reservation); returns the hand-offs that follow.
    fn refresh(&self, sh: &SharedAcd, agent: &AgentId) -> Vec<(CallId, AgentId)> {
        let now_ms = now_ms();
        match sh.backend.agent(agent, now_ms) {
            Ok(Some(mut row)) => {
                let mut acd = lock(&self.inner.acd);
                Self::note_remote(&mut lock(&sh.remote), &row);
                row.mine = false;
                let nobody = |_: &CallId| false;
                acd.apply_shared(&row, Instant::now(), now_ms, &nobody)
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                warn!(agent = %agent, "cannot read the agent's shared state: {e}");
                Vec::new()
            }
        }
    }

    /// Asks for an agent for a call (the call task's `RequestAgent`): the local ACD proposes,
    /// the backend confirms (a shared store), else the ACD alone decides.
    pub(crate) async fn request_agent(&self, req: AgentRequest, now: Instant) -> Assignment {
        let first = lock(&self.inner.acd).request_agent(req.clone(), now);
        if self.shared().is_none() {
            return first;
        }
        let s = self.clone();
        tokio::task::spawn_blocking(move || s.confirm_request(req, first))
            .await
            .unwrap_or(Assignment::Queued)
    }

    /// The shared side of [`Service::request_agent`] (blocking).
    fn confirm_request(&self, req: AgentRequest, mut answer: Assignment) -> Assignment {
        let Some(sh) = self.shared() else {
            return answer;
        };
        let mut later = Vec::new();
        let mut confirmed = false;
        for _ in 0..TRIES {
            let Assignment::Assigned(agent) = &answer else {
                break;
            };
            match sh.backend.reserve(agent, &req.call, now_ms()) {
                Ok(true) => {
                    lock(&sh.remote).remove(agent);
                    confirmed = true;
                    break;
                }
                Ok(false) => {
                    info!(call = %req.call, agent = %agent, "agent taken on another node: asking again");
                    later.extend(self.refresh(sh, agent));
                    answer = lock(&self.inner.acd).request_agent(req.clone(), Instant::now());
                }
                Err(e) => {
                    // The store is unreachable: this node decides alone until it is back.
                    warn!(call = %req.call, agent = %agent, "cannot reserve the agent in the store: {e}");
                    confirmed = true;
                    break;
                }
            }
        }
        match answer {
            Assignment::Assigned(_) if confirmed => {
                lock(&sh.pending).remove(&req.call);
            }
            Assignment::Assigned(agent) => {
                // Still unconfirmed after every try: confirmed (or not) like a hand-off, and
                // the answer comes through the call's inbox.
                later.push((req.call.clone(), agent));
                lock(&sh.pending).insert(req.call.clone(), req);
                answer = Assignment::Queued;
            }
            Assignment::Queued => {
                lock(&sh.pending).insert(req.call.clone(), req);
            }
            Assignment::Unavailable => {
                lock(&sh.pending).remove(&req.call);
            }
        }
        self.confirm(later);
        answer
    }

    /// Confirms the local ACD's hand-offs with the backend and delivers the confirmed ones;
    /// a refused one mirrors the agent's row and asks again for the call (blocking).
    pub(crate) fn confirm(&self, mut work: Vec<(CallId, AgentId)>) {
        let Some(sh) = self.shared() else {
            self.deliver_handoffs(work);
            return;
        };
        let mut rounds = 0;
        while !work.is_empty() && rounds < 16 * TRIES {
            rounds += 1;
            let mut next = Vec::new();
            for (call, agent) in std::mem::take(&mut work) {
                let ok = match sh.backend.reserve(&agent, &call, now_ms()) {
                    Ok(ok) => ok,
                    Err(e) => {
                        warn!(call = %call, agent = %agent, "cannot reserve the agent in the store: {e}");
                        true
                    }
                };
                if ok {
                    lock(&sh.remote).remove(&agent);
                    lock(&sh.pending).remove(&call);
                    self.deliver_handoffs(vec![(call, agent)]);
                    continue;
                }
                info!(call = %call, agent = %agent, "agent taken on another node: asking again");
                next.extend(self.refresh(sh, &agent));
                let req = lock(&sh.pending).get(&call).cloned();
                let Some(req) = req else { continue };
                match lock(&self.inner.acd).request_agent(req, Instant::now()) {
                    Assignment::Assigned(other) => next.push((call, other)),
                    Assignment::Queued => {}
                    Assignment::Unavailable => {
                        lock(&sh.pending).remove(&call);
                    }
                }
            }
            work = next;
        }
    }

    /// The call task withdrew its request (`WithdrawAgentRequest`).
    pub(crate) fn withdraw_agent_request(&self, call: &CallId) {
        lock(&self.inner.acd).cancel(call);
        if let Some(sh) = self.shared() {
            lock(&sh.pending).remove(call);
        }
    }

    /// The agent answered (`AgentConnected`).
    pub(crate) fn agent_connected(&self, agent: &AgentId) {
        let call = {
            let mut acd = lock(&self.inner.acd);
            acd.mark_busy(agent);
            acd.call_of(agent).cloned()
        };
        let sh = self
            .shared()
            .filter(|sh| lock(&sh.remote).get(agent) != call.as_ref());
        if let (Some(sh), Some(call)) = (sh, call) {
            let (backend, agent) = (sh.backend.clone(), agent.clone());
            self.inner.rt.spawn_blocking(move || {
                if let Err(e) = backend.connected(&agent, &call, now_ms()) {
                    warn!(agent = %agent, "cannot record the agent's call in the store: {e}");
                }
            });
        }
    }

    /// The agent let `call` ring out: away (here and in the store), then hand-offs.
    pub(crate) fn agent_no_answer(&self, agent: &AgentId, call: &CallId, now: Instant) {
        let handoffs = lock(&self.inner.acd).no_answer(agent, call, now);
        let Some(sh) = self.shared() else {
            self.hand_over(handoffs);
            return;
        };
        let (backend, agent, call, s) = (
            sh.backend.clone(),
            agent.clone(),
            call.clone(),
            self.clone(),
        );
        self.inner.rt.spawn_blocking(move || {
            if let Err(e) = backend.no_answer(&agent, &call, now_ms()) {
                warn!(agent = %agent, "cannot record the missed call in the store: {e}");
            }
            s.confirm(handoffs);
        });
    }

    /// [`Service::release_agent`] with a shared store: the local release, then the store's
    /// (wrap-up end in Unix ms), then the hand-offs, in that order on a blocking thread (a
    /// hand-off of the agent to another call is refused until the store has released her).
    pub(crate) fn release_shared(&self, sh: &SharedAcd, agent: &AgentId) {
        let now = Instant::now();
        let (call, handoffs, wrap) = {
            let mut acd = lock(&self.inner.acd);
            let call = acd.call_of(agent).cloned();
            if call.is_some() && lock(&sh.remote).get(agent) == call.as_ref() {
                // The mirror shows her on another node's call (this node's reservation was
                // taken over): nothing of ours to release, here or in the store.
                return;
            }
            let handoffs = acd.release(agent, now);
            let wrap = match acd.state(agent) {
                Some(flows::AgentState::WrapUp { until }) => Some(*until),
                _ => None,
            };
            (call, handoffs, wrap)
        };
        let (backend, agent, s) = (sh.backend.clone(), agent.clone(), self.clone());
        self.inner.rt.spawn_blocking(move || {
            if let Some(call) = call {
                let now_ms = now_ms();
                let wrap_ms = wrap.map(|w| ms_of(w, now, now_ms));
                if let Err(e) = backend.release(&agent, &call, wrap_ms, now_ms) {
                    warn!(agent = %agent, "cannot release the agent in the store: {e}");
                }
            }
            s.confirm(handoffs);
        });
    }

    /// Writes a presence set through the API to the store (blocking).
    pub(crate) fn share_presence(&self, agent: &AgentId, presence: Presence) {
        if let Some(sh) = self.shared() {
            if let Err(e) = sh.backend.set_presence(agent, presence, now_ms()) {
                warn!(agent = %agent, "cannot share the presence: {e}");
            }
        }
    }

    /// The 1-based queue position and estimated wait (s) of a queued request: across every
    /// node with a shared store (waiting requests in the store, agents of the mirror), else
    /// this node's ACD. Blocking.
    pub(crate) fn queue_view(&self, record: &CallRecord) -> (Option<usize>, Option<u64>) {
        if record.status != "queued" {
            return (None, None);
        }
        let id = &record.request.id;
        let position = match self.shared() {
            Some(sh) => match sh.backend.queue_position(id, now_ms()) {
                Ok(p) => p.map(|(ahead, _)| ahead),
                Err(e) => {
                    warn!(call = %id, "cannot read the queue position: {e}");
                    lock(&self.inner.acd).position(id)
                }
            },
            None => lock(&self.inner.acd).position(id),
        };
        let position = position.map(|p| p + 1);
        // As before the store was shared: the 1-based position is what the estimate is
        // given (see `Acd::estimated_wait`).
        let wait = match (position, record.request.business.as_ref()) {
            (Some(p), Some(b)) => lock(&self.inner.acd)
                .estimated_wait(b, p)
                .map(|d| d.as_secs()),
            _ => None,
        };
        (position, wait)
    }

    /// Sends this node's screen pops and the status of its calls with an agent to the other
    /// nodes (whose desktops may be the agent's).
    async fn forward_notices(self) {
        let Some(sh) = self.shared() else {
            return;
        };
        let mut rx = self.inner.events.subscribe();
        loop {
            let n = tokio::select! {
                n = rx.recv() => n,
                () = self.inner.stop.cancelled() => return,
            };
            let payload = match n {
                Ok(Notice::ScreenPop(p)) => {
                    if self.is_echo(&p.call.request.id, "pop") {
                        continue;
                    }
                    serde_json::json!({
                        "k": "pop", "run": self.inner.run,
                        "agent": p.agent.as_str(), "call": p.call.request.id.as_str(),
                    })
                }
                Ok(Notice::Status(e)) if e.agent.is_some() => {
                    if self.is_echo(&e.id, &e.status) {
                        continue;
                    }
                    serde_json::json!({
                        "k": "status", "run": self.inner.run, "call": e.id.as_str(),
                        "business": e.business.as_ref().map(BusinessId::as_str),
                        "agent": e.agent, "status": e.status, "reason": e.reason, "at_ms": e.at_ms,
                    })
                }
                Ok(Notice::Status(_)) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return,
            };
            let backend = sh.backend.clone();
            let _ = tokio::task::spawn_blocking(move || {
                if let Err(e) = backend.publish(&payload.to_string()) {
                    warn!("cannot tell the other nodes: {e}");
                }
            })
            .await;
        }
    }

    fn is_echo(&self, call: &CallId, kind: &str) -> bool {
        self.shared().is_some_and(|sh| {
            let mut e = lock(&sh.echoes);
            match e.iter().position(|(c, k)| c == call && k == kind) {
                Some(i) => {
                    e.remove(i);
                    true
                }
                None => false,
            }
        })
    }

    fn remember_echo(&self, call: &CallId, kind: &str) {
        if let Some(sh) = self.shared() {
            let mut e = lock(&sh.echoes);
            if e.len() >= ECHOES {
                e.pop_front();
            }
            e.push_back((call.clone(), kind.to_owned()));
        }
    }

    /// Another node's notice: re-published here for this node's subscribers (its desktops).
    fn on_notice(&self, payload: &str) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(payload) else {
            return;
        };
        if v["run"].as_str() == Some(self.inner.run.as_str()) {
            return;
        }
        let Some(call) = v["call"].as_str().and_then(|c| CallId::new(c).ok()) else {
            return;
        };
        // Only the forwarder listens: no desktop here to tell.
        if self.inner.events.receiver_count() <= 1 {
            return;
        }
        match v["k"].as_str() {
            Some("pop") => {
                let Some(agent) = v["agent"].as_str().and_then(|a| AgentId::new(a).ok()) else {
                    return;
                };
                let store = &self.inner.store;
                let record = match store.get(&call) {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        warn!(call = %call, "no screen pop for another node's call: {e}");
                        return;
                    }
                };
                let history = store
                    .history(&record.request.customer, &call, HISTORY_LEN)
                    .unwrap_or_default();
                let business_name = record
                    .request
                    .business
                    .as_ref()
                    .and_then(|b| self.inner.dir().business(b).map(|b| b.name.clone()));
                info!(call = %call, agent = %agent, "screen pop from another node");
                self.remember_echo(&call, "pop");
                let _ = self
                    .inner
                    .events
                    .send(Notice::ScreenPop(Box::new(ScreenPop {
                        agent,
                        call: record,
                        business_name,
                        history,
                    })));
            }
            Some("status") => {
                let Some(status) = v["status"].as_str() else {
                    return;
                };
                self.remember_echo(&call, status);
                let _ = self.inner.events.send(Notice::Status(CallEvent {
                    id: call,
                    business: v["business"].as_str().and_then(|b| BusinessId::new(b).ok()),
                    agent: v["agent"].as_str().map(str::to_owned),
                    status: status.to_owned(),
                    reason: v["reason"].as_str().map(str::to_owned),
                    at_ms: v["at_ms"].as_i64().unwrap_or_else(now_ms),
                }));
            }
            _ => {}
        }
    }
}
