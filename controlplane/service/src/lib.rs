//! callbridge's service layer: the one owner of a call request's life.
//!
//! ```text
//!  http_api ──accept / bridge / get / sale / records──► Service ──commit──► dyn Store
//!                                                         │ scheduler task: claim_due ─► spawn one call task
//!  call task: ClickToCall (flows) ─outputs─► CallLegs (b2bua: SIP + media) · Acd · Store · events
//! ```
//!
//! Rules (see `shared/design/control-plane.md`):
//! - **Commit, then promise**: [`Service::accept`] returns only after the request is in the
//!   store; the HTTP `202` follows.
//! - **Resources follow the call**: a waiting request (queued or scheduled) is a row, not a
//!   task; the scheduler claims it when due, and its media ports are allocated only when the
//!   customer is dialled ([`flows::Output::AllocateLegs`]) and released by the one task that
//!   owns the call, however it ends. Only live calls are in memory.
//! - **One writer per state**: a request's row is written by whoever holds its claim (the call
//!   task while it runs); the HTTP views read the store.
//! - **Restart**: [`Service::start`] recovers what an earlier run left live: each is recorded
//!   `interrupted`, then retried (queued again) while its attempts allow, else failed with
//!   reason `interrupted`. Queued and scheduled requests simply become due again.
//!
//! Blocking: the methods called by the HTTP layer ([`Service::accept`], [`Service::get`], …)
//! do synchronous store I/O; call them from a blocking thread (`spawn_blocking`).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod admin;
mod call;
mod directory;
mod error;
pub mod webhooks;

pub use call::{media_json, quality};
pub use directory::{secret_eq, AgentEntry, BusinessEntry, Directory};
pub use error::ServiceError;
pub use flows::Presence;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use b2bua::B2bua;
use dp_api::Clip;
use flows::{
    Acd, AcdSettings, AgentId, AgentProfile, BusinessId, CallId, FlowTimers, Legs, MediaPolicy,
    Target,
};
use store::{
    Accepted, CallRecord, IdempotencyKey, Kind, NewRequest, Page, RecordFilter, Sale, StatusChange,
    Store, StoredResponse,
};
use tokio::sync::{broadcast, mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// Requests the scheduler claims per pass.
const CLAIM_BATCH: usize = 64;
/// The scheduler looks at the store at least this often (other nodes, clock changes).
const SCHEDULER_IDLE: Duration = Duration::from_secs(1);
/// Live calls this process runs at most; more wait in the store.
pub const MAX_LIVE_CALLS: usize = 20_000;

/// Current Unix time in milliseconds.
#[must_use]
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What the service needs from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Ring times and limits of the state machine.
    pub timers: FlowTimers,
    /// How media legs are created.
    pub media: MediaPolicy,
    /// Played to the customer while an agent is called.
    pub announcement: Arc<Clip>,
    /// Customer attempts per request, counting attempts cut short by a restart (default 3).
    pub max_attempts: u32,
    /// How long a call waits for its busy preferred agent (default 30 s).
    pub preferred_wait: Duration,
    /// Rate limits on call requests.
    pub limits: flows::limits::Limits,
}

/// A validated click-to-call request (`POST /v1/call-requests`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submit {
    /// The business.
    pub business: BusinessId,
    /// Where to call the visitor.
    pub customer: Target,
    /// Call no earlier than this (Unix ms).
    pub contact_at_ms: Option<i64>,
    /// The page the visitor was on.
    pub page: Option<Page>,
    /// The agent the visitor asked for.
    pub preferred_agent: Option<AgentId>,
    /// A skill the agent must have (e.g. a language).
    pub skill: Option<flows::Skill>,
}

/// The agent of a bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BridgeAgent {
    /// A configured agent.
    Id(AgentId),
    /// A bare SIP URI or E.164 number.
    Target(Target),
}

/// A validated `POST /v1/bridges`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bridge {
    /// Called first.
    pub customer: Target,
    /// Called second.
    pub agent: BridgeAgent,
}

/// Where a request came from, for idempotency and limits.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origin {
    /// The client's IP address.
    pub client_ip: Option<String>,
    /// `Idempotency-Key` and the hash of the body it came with.
    pub idempotency: Option<(String, String)>,
}

/// What [`Service::accept`] / [`Service::bridge`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed: the request as stored.
    Created(Box<CallRecord>),
    /// A repeated idempotency key with the same body: the first response.
    Replay(StoredResponse),
}

/// A request with what only the live process knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestView {
    /// The stored request.
    pub record: CallRecord,
    /// 1-based position in its business's queue while waiting for an agent.
    pub queue_position: Option<usize>,
    /// Estimated wait for an agent, seconds, while queued.
    pub estimated_wait_s: Option<u64>,
    /// Media counters (customer, agent): the stored summary once the call ended, the live
    /// counters while it runs.
    pub media: LiveMedia,
}

/// Media counters of a call's two legs as JSON objects, each `None` until known.
pub type LiveMedia = (Option<serde_json::Value>, Option<serde_json::Value>);

/// What subscribers (widget SSE, agent desktop WebSocket, webhooks) are told.
#[derive(Debug, Clone)]
pub enum Notice {
    /// A request's status changed.
    Status(CallEvent),
    /// A call was assigned to an agent: shown on its desktop before its phone is called
    /// (claims 10-12).
    ScreenPop(Box<ScreenPop>),
}

/// What the agent's desktop shows when a call is assigned to it.
#[derive(Debug, Clone)]
pub struct ScreenPop {
    /// The agent.
    pub agent: AgentId,
    /// The request as stored.
    pub call: CallRecord,
    /// The business's display name.
    pub business_name: Option<String>,
    /// The customer's earlier requests, newest first (at most [`HISTORY_LEN`]).
    pub history: Vec<CallRecord>,
}

/// Earlier requests shown in a screen pop.
pub const HISTORY_LEN: usize = 10;

/// A status change, published to subscribers (widget SSE, agent desktop, webhooks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// The request.
    pub id: CallId,
    /// Its business.
    pub business: Option<BusinessId>,
    /// The agent, once known.
    pub agent: Option<String>,
    /// The status name.
    pub status: String,
    /// The failure reason.
    pub reason: Option<String>,
    /// When (Unix ms).
    pub at_ms: i64,
}

/// Messages to a live call's task.
#[derive(Debug)]
pub(crate) enum CallInput {
    /// The ACD handed it an agent.
    Assigned(AgentId),
    /// Cancel (API or shutdown).
    Cancel,
}

/// Refusals of call requests, counted by kind (`GET /v1/stats`).
#[derive(Debug, Default)]
pub struct Refusals {
    counts: Mutex<std::collections::BTreeMap<&'static str, u64>>,
}

impl Refusals {
    /// Counts one refusal of `kind`.
    pub fn add(&self, kind: &'static str) {
        *lock(&self.counts).entry(kind).or_default() += 1;
    }

    /// Every kind with its count.
    #[must_use]
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        lock(&self.counts).iter().map(|(k, v)| (*k, *v)).collect()
    }
}

pub(crate) struct Inner {
    /// Refused call requests by kind.
    pub(crate) refusals: Refusals,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) b2b: B2bua,
    /// Businesses and agents: the configuration with the API's changes over it. Replaced
    /// whole on a change (readers keep the snapshot they took).
    pub(crate) dir: std::sync::RwLock<Arc<Directory>>,
    /// Serializes directory changes (read, change, store, swap).
    pub(crate) dir_writer: Mutex<()>,
    pub(crate) settings: Settings,
    pub(crate) acd: Mutex<Acd>,
    /// Rate limits and calls in progress, one limiter per business (its own limits).
    pub(crate) limiters: HashMap<BusinessId, Mutex<flows::limits::RateLimiter>>,
    /// Requests counted in their business's calls in progress (accepted to be dialled now,
    /// or running); the count ends when the call does.
    pub(crate) in_progress: Mutex<std::collections::HashSet<CallId>>,
    /// This process's run id: the claims it holds.
    pub(crate) run: String,
    /// Live calls only (bounded by [`MAX_LIVE_CALLS`]).
    pub(crate) live: Mutex<HashMap<CallId, mpsc::UnboundedSender<CallInput>>>,
    /// Requests accepted to be dialled now that have no media legs yet: admission counts
    /// them against the free ports, so a `202` is never followed by a failure for lack of
    /// ports. Removed when the call gets its legs or ends.
    pub(crate) reserved: Mutex<std::collections::HashSet<CallId>>,
    /// The latest media counters of live calls (customer, agent); stored when they end.
    pub(crate) live_media: Mutex<HashMap<CallId, LiveMedia>>,
    pub(crate) wake: Notify,
    /// Wakes the webhook delivery task (something was queued).
    pub(crate) outbox_wake: Notify,
    pub(crate) events: broadcast::Sender<Notice>,
    pub(crate) stop: CancellationToken,
    pub(crate) rt: tokio::runtime::Handle,
}

impl Inner {
    /// The current directory (a snapshot: cheap, never blocks for long).
    pub(crate) fn dir(&self) -> Arc<Directory> {
        self.dir
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its data consistent, so a poisoned lock is usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The service (cheap to clone).
#[derive(Clone)]
pub struct Service {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("run", &self.inner.run)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Recovers what an earlier run left, then starts the scheduler. Call inside a tokio
    /// runtime.
    ///
    /// # Errors
    /// When the directory is inconsistent or the store fails.
    pub async fn start(
        store: Arc<dyn Store>,
        b2b: B2bua,
        mut dir: Directory,
        settings: Settings,
        stop: CancellationToken,
    ) -> Result<Self, ServiceError> {
        // Changes made through the API earlier, over the configuration.
        let st = store.clone();
        let docs = tokio::task::spawn_blocking(move || st.directory_docs())
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        // Presence set through the API last time (an agent who went away stays away).
        let presences: Vec<(AgentId, Presence)> = docs
            .iter()
            .filter(|(kind, _, _)| kind == "presence")
            .filter_map(|(_, id, doc)| {
                let p = serde_json::from_str::<serde_json::Value>(doc).ok()?;
                Some((
                    AgentId::new(id.as_str()).ok()?,
                    p["presence"].as_str()?.parse().ok()?,
                ))
            })
            .collect();
        Self::apply_stored_directory(&mut dir, docs);
        let mut acd = Acd::with_settings(AcdSettings {
            preferred_wait: settings.preferred_wait,
            ..AcdSettings::default()
        });
        let now = Instant::now();
        for b in &dir.businesses {
            acd.add_business(b.id.clone());
        }
        for a in &dir.agents {
            let profile = AgentProfile {
                businesses: a.businesses.clone(),
                skills: a.skills.clone(),
                wrap_up: a.wrap_up,
            };
            acd.add_agent_with(a.id.clone(), profile, now)
                .map_err(|e| ServiceError::Internal(e.to_string()))?;
        }
        for (agent, p) in presences {
            // No call is waiting yet: no hand-offs to deliver.
            let _ = acd.set_presence(&agent, p, now);
        }
        let run = format!("run-{:016x}", rand::random::<u64>());
        let limits = settings.limits.clone();
        let limiters = dir
            .businesses
            .iter()
            .map(|b| {
                let l = b.limits.clone().unwrap_or_else(|| limits.clone());
                (b.id.clone(), Mutex::new(flows::limits::RateLimiter::new(l)))
            })
            .collect();
        let (events, _) = broadcast::channel(1024);
        let inner = Arc::new(Inner {
            refusals: Refusals::default(),
            store,
            b2b,
            dir: std::sync::RwLock::new(Arc::new(dir)),
            dir_writer: Mutex::new(()),
            settings,
            limiters,
            in_progress: Mutex::default(),
            acd: Mutex::new(acd),
            run,
            live: Mutex::default(),
            live_media: Mutex::default(),
            reserved: Mutex::default(),
            wake: Notify::new(),
            outbox_wake: Notify::new(),
            events,
            stop,
            rt: tokio::runtime::Handle::current(),
        });
        let svc = Self { inner };
        let s = svc.clone();
        tokio::task::spawn_blocking(move || s.recover())
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        let s = svc.clone();
        tokio::spawn(async move { s.scheduler().await });
        let s = svc.clone();
        tokio::spawn(async move { s.acd_clock().await });
        let s = svc.clone();
        tokio::spawn(async move { s.deliver_webhooks().await });
        Ok(svc)
    }

    /// Decides the fate of every request an earlier run left live.
    fn recover(&self) -> Result<(), ServiceError> {
        let i = &self.inner;
        let now = now_ms();
        let interrupted = i.store.recover(&i.run, now)?;
        for rec in interrupted {
            // The business's retry policy decides (the interrupted attempt counts).
            let dir = i.dir();
            let max = rec
                .request
                .business
                .as_ref()
                .and_then(|b| dir.business(b))
                .map_or(i.settings.max_attempts, |b| b.retry.attempts);
            let retry = rec.request.kind == Kind::CallRequest && rec.attempts < max.max(1);
            let ch = if retry {
                let mut ch = StatusChange::new(now, "queued");
                ch.due_ms = Some(now);
                ch.unclaim = true;
                ch
            } else {
                let mut ch = StatusChange::new(now, "failed");
                ch.reason = Some("interrupted".into());
                ch
            };
            info!(call = %rec.request.id, attempts = rec.attempts, retry, "call interrupted by a restart");
            let mut ch = ch;
            ch.webhook = self.webhook_for(&rec, &ch.status, ch.reason.as_deref(), None, now);
            i.store.set_status(&rec.request.id, &ch)?;
        }
        Ok(())
    }

    /// The run id of this process (claims in the store carry it).
    #[must_use]
    pub fn run_id(&self) -> &str {
        &self.inner.run
    }

    /// The configured businesses and agents.
    #[must_use]
    pub fn directory(&self) -> Arc<Directory> {
        self.inner.dir()
    }

    /// Subscribes to status changes and screen pops.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        self.inner.events.subscribe()
    }

    /// An agent's presence.
    #[must_use]
    pub fn presence(&self, agent: &AgentId) -> Option<Presence> {
        lock(&self.inner.acd).presence(agent)
    }

    /// Sets an agent's presence from the API (`available`, `away`, `offline`); waiting
    /// calls are handed to it at once when it becomes available. Kept in the store, so a
    /// restart keeps it. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] for `on_call` / `wrap_up`; [`ServiceError::UnknownAgent`].
    pub fn set_presence(
        &self,
        agent: &AgentId,
        presence: Presence,
    ) -> Result<Presence, ServiceError> {
        let handoffs = lock(&self.inner.acd)
            .set_presence(agent, presence, Instant::now())
            .map_err(|e| match e {
                flows::Error::PresenceNotSettable(p) => ServiceError::Refused {
                    field: "presence",
                    message: format!(
                        "\"{p}\" is set by calls, not by the agent; use available, away or offline"
                    ),
                },
                _ => ServiceError::UnknownAgent {
                    field: "id",
                    agent: agent.clone(),
                },
            })?;
        info!(agent = %agent, %presence, "presence set");
        // Kept across restarts (best effort: the presence is in force either way).
        let doc = serde_json::json!({ "presence": presence.as_str() }).to_string();
        if let Err(e) = self
            .inner
            .store
            .put_directory("presence", agent.as_str(), &doc, now_ms())
        {
            warn!(agent = %agent, "cannot store the presence: {e}");
        }
        self.hand_over(handoffs);
        Ok(self.presence(agent).unwrap_or(presence))
    }

    /// Ends wrap-ups and preferred-agent waits as time passes (the ACD reads no clock).
    async fn acd_clock(self) {
        loop {
            let next = lock(&self.inner.acd).poll_timeout();
            let wait = next.map_or(Duration::from_secs(1), |at| {
                at.saturating_duration_since(Instant::now())
                    .min(Duration::from_secs(1))
            });
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = self.inner.stop.cancelled() => return,
            }
            let handoffs = lock(&self.inner.acd).tick(Instant::now());
            self.hand_over(handoffs);
        }
    }

    /// Delivers the ACD's hand-offs to the waiting calls; an agent whose call is gone is
    /// released again.
    pub(crate) fn hand_over(&self, handoffs: Vec<(CallId, AgentId)>) {
        for (call, agent) in handoffs {
            let inbox = lock(&self.inner.live).get(&call).cloned();
            if !matches!(
                inbox.map(|i| i.send(CallInput::Assigned(agent.clone()))),
                Some(Ok(()))
            ) {
                self.release_agent(&agent);
            }
        }
    }

    /// Live calls now (dialled or waiting for an agent in this process).
    #[must_use]
    pub fn live_calls(&self) -> usize {
        lock(&self.inner.live).len()
    }

    /// Accepts a click-to-call request: validated against the directory, committed, then
    /// due for the scheduler. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError`] naming the field, or the store's failure.
    pub fn accept(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError> {
        let out = self.accept_inner(req, origin);
        if let Err(e) = &out {
            self.count_refusal(e);
        }
        out
    }

    /// Counts a refusal by kind (`per_number`, `premium` …); failures on our side are not
    /// refusals.
    pub fn count_refusal(&self, e: &ServiceError) {
        let kind = match e {
            ServiceError::Limited { which, .. } => which,
            ServiceError::Refused {
                field: "customer", ..
            } => "number_policy",
            ServiceError::Refused { .. } => "policy",
            ServiceError::Unavailable(_) => "no_capacity",
            ServiceError::UnknownBusiness(_) | ServiceError::UnknownAgent { .. } => "unknown",
            ServiceError::IdempotencyConflict(_) => "idempotency_conflict",
            _ => return,
        };
        self.inner.refusals.add(kind);
    }

    /// Refused call requests by kind, live calls and queue lengths per business.
    #[must_use]
    pub fn stats(&self) -> serde_json::Value {
        let acd = lock(&self.inner.acd);
        let businesses: serde_json::Map<String, serde_json::Value> = self
            .inner
            .dir()
            .businesses
            .iter()
            .map(|b| {
                let in_progress = self
                    .inner
                    .limiters
                    .get(&b.id)
                    .map_or(0, |l| lock(l).active_calls(&b.id));
                (
                    b.id.as_str().to_owned(),
                    serde_json::json!({
                        "queued": acd.queue_len(&b.id),
                        "in_progress": in_progress,
                    }),
                )
            })
            .collect();
        let agents: serde_json::Map<String, serde_json::Value> = self
            .inner
            .dir()
            .agents
            .iter()
            .map(|a| {
                (
                    a.id.as_str().to_owned(),
                    serde_json::json!(acd.presence(&a.id).map(Presence::as_str)),
                )
            })
            .collect();
        let refused: serde_json::Map<String, serde_json::Value> = self
            .inner
            .refusals
            .snapshot()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), serde_json::json!(v)))
            .collect();
        serde_json::json!({
            "live_calls": lock(&self.inner.live).len(),
            "refused": refused,
            "businesses": businesses,
            "agents": agents,
        })
    }

    fn accept_inner(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError> {
        let i = &self.inner;
        if i.dir().business(&req.business).is_none() {
            return Err(ServiceError::UnknownBusiness(req.business));
        }
        if let Some(skill) = &req.skill {
            let served = i
                .dir()
                .agents
                .iter()
                .any(|a| a.businesses.contains(&req.business) && a.skills.contains(skill));
            if !served {
                return Err(ServiceError::Refused {
                    field: "skill",
                    message: format!("no agent of {} has the skill \"{skill}\"", req.business),
                });
            }
        }
        if let Some(a) = &req.preferred_agent {
            if i.dir().agent(a).is_none() {
                return Err(ServiceError::UnknownAgent {
                    field: "preferred_agent",
                    agent: a.clone(),
                });
            }
        }
        self.check_number(&req.business, &req.customer)?;
        self.check_limits(&req, origin)?;
        let now = now_ms();
        // Inside opening hours only: a time (or "now") outside them moves to the next
        // opening, and the visitor sees `scheduled` with that time.
        let dir = i.dir();
        let business = dir.business(&req.business);
        let wanted = req.contact_at_ms.unwrap_or(now).max(now);
        let contact_at_ms = match business.and_then(|b| b.hours.as_ref()) {
            None => req.contact_at_ms,
            Some(h) => {
                let at = jiff::Timestamp::from_millisecond(wanted)
                    .map_err(|e| ServiceError::Internal(e.to_string()))?;
                match h.schedule(at) {
                    Some(s) if s.moved => Some(s.at.as_millisecond()),
                    Some(_) => req.contact_at_ms,
                    None => {
                        return Err(ServiceError::Refused {
                            field: "contact_time",
                            message: format!(
                                "{} takes no calls: it has no opening hours",
                                req.business
                            ),
                        })
                    }
                }
            }
        };
        let req = Submit {
            contact_at_ms,
            ..req
        };
        let scheduled = req.contact_at_ms.is_some_and(|t| t > now);
        let id = CallId::from_random(rand::random::<u128>());
        if !scheduled {
            // Admission: a call to be dialled now needs a port pair that no other accepted,
            // not yet dialled call is counting on.
            let mut reserved = lock(&i.reserved);
            if i.b2b.media().free_pairs() <= reserved.len() {
                return Err(ServiceError::Unavailable(
                    "cannot take calls now: no free media port; try again shortly".into(),
                ));
            }
            reserved.insert(id.clone());
            drop(reserved);
            // Calls in progress per business: counted from now until the call ends.
            if let Err(e) = self.start_counting(&req.business, &id) {
                lock(&i.reserved).remove(&id);
                return Err(e);
            }
        }
        let (status, due) = if scheduled {
            ("scheduled", req.contact_at_ms.unwrap_or(now))
        } else {
            ("queued", now)
        };
        let new = NewRequest {
            id,
            kind: Kind::CallRequest,
            business: Some(req.business.clone()),
            customer: req.customer.as_str().to_owned(),
            preferred_agent: req.preferred_agent,
            agent_spec: None,
            contact_at_ms: req.contact_at_ms,
            page: req.page,
            skill: req.skill,
            client_ip: origin.client_ip.clone(),
            created_ms: now,
            status: status.into(),
            due_ms: Some(due),
            claimed_by: None,
            webhook: None,
        };
        let new = self.with_first_webhook(new);
        let out = self.commit(&new, origin, req.business.as_str());
        if !matches!(out, Ok(Outcome::Created(_))) {
            lock(&i.reserved).remove(&new.id);
            self.stop_counting(&req.business, &new.id);
        }
        let out = out?;
        if matches!(out, Outcome::Created(_)) {
            self.publish(&new.id, new.business.clone(), None, status, None, now);
            i.wake.notify_one();
        }
        Ok(out)
    }

    /// Accepts a bridge: media legs allocated now (it is dialled at once), committed, then
    /// started. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::Unavailable`] without free media ports; others as
    /// [`Service::accept`].
    pub fn bridge(&self, req: Bridge, origin: &Origin) -> Result<Outcome, ServiceError> {
        let i = &self.inner;
        let agent_spec = match &req.agent {
            BridgeAgent::Id(a) => {
                if i.dir().agent(a).is_none() {
                    return Err(ServiceError::UnknownAgent {
                        field: "agent",
                        agent: a.clone(),
                    });
                }
                a.as_str().to_owned()
            }
            BridgeAgent::Target(t) => t.as_str().to_owned(),
        };
        let legs = i
            .b2b
            .media()
            .allocate_pair()
            .map_err(|e| ServiceError::Unavailable(format!("cannot take calls now: {e}")))?;
        let now = now_ms();
        let new = NewRequest {
            id: CallId::from_random(rand::random::<u128>()),
            kind: Kind::Bridge,
            business: None,
            customer: req.customer.as_str().to_owned(),
            preferred_agent: None,
            agent_spec: Some(agent_spec),
            skill: None,
            contact_at_ms: None,
            page: None,
            client_ip: origin.client_ip.clone(),
            created_ms: now,
            status: "calling_customer".into(),
            due_ms: None,
            claimed_by: Some(i.run.clone()),
            webhook: None,
        };
        let out = match self.commit(&new, origin, "bridges") {
            Ok(o) => o,
            Err(e) => {
                i.b2b.media().release(legs);
                return Err(e);
            }
        };
        match &out {
            Outcome::Created(rec) => {
                self.publish(&new.id, None, None, "calling_customer", None, now);
                let rec = (**rec).clone();
                let s = self.clone();
                i.rt.spawn(async move { call::run(s, rec, Some(legs)).await });
            }
            Outcome::Replay(_) => i.b2b.media().release(legs),
        }
        Ok(out)
    }

    /// The number policy: premium-rate and special-service numbers are refused. Numbers the
    /// numbering plan does not know (test and lab ranges such as +1 555) pass: the carrier's
    /// trunk is the authority on them.
    fn check_number(&self, business: &BusinessId, customer: &Target) -> Result<(), ServiceError> {
        let Target::Tel(tel) = customer else {
            return Ok(());
        };
        let dir = self.inner.dir();
        let Some(b) = dir.business(business) else {
            return Ok(());
        };
        match b.numbers.check(tel, b.default_country.as_deref()) {
            Ok(_) | Err(flows::numbers::NumberRefusal::Invalid) => Ok(()),
            Err(why) => Err(ServiceError::Refused {
                field: "customer",
                message: format!("\"customer\" {tel} is refused: {why}"),
            }),
        }
    }

    /// Rate limits per customer number, per client address (not loopback: the lab, or a
    /// proxy in front) and per business; a refused request counts against none.
    fn check_limits(&self, req: &Submit, origin: &Origin) -> Result<(), ServiceError> {
        use flows::limits::LimitKey;
        let mut keys = vec![
            LimitKey::Number(req.customer.as_str().to_owned()),
            LimitKey::Business(req.business.clone()),
        ];
        if let Some(ip) = origin
            .client_ip
            .as_deref()
            .and_then(|s| s.parse::<std::net::IpAddr>().ok())
            .filter(|ip| !ip.is_loopback())
        {
            keys.push(LimitKey::Ip(ip));
        }
        let Some(limiter) = self.inner.limiters.get(&req.business) else {
            return Ok(());
        };
        let mut limiter = lock(limiter);
        let now = Instant::now();
        limiter.purge(now);
        limiter.try_acquire(&keys, now).map_err(|l| {
            let retry_after_s =
                l.retry_after.as_secs() + u64::from(l.retry_after.subsec_nanos() > 0);
            let message = match l.which {
                flows::limits::LimitKind::PerNumber => format!(
                    "{} was asked to be called too often; try again in {retry_after_s} s",
                    req.customer
                ),
                flows::limits::LimitKind::PerIp => {
                    format!("too many requests from this address; try again in {retry_after_s} s")
                }
                flows::limits::LimitKind::ConcurrentCalls => format!(
                    "{} has as many calls in progress as it may; try again in {retry_after_s} s",
                    req.business
                ),
                _ => format!(
                    "too many requests for business {}; try again in {retry_after_s} s",
                    req.business
                ),
            };
            ServiceError::Limited {
                retry_after_s,
                which: l.which.as_str(),
                message,
            }
        })
    }

    /// Counts `call` in `business`'s calls in progress (once).
    ///
    /// # Errors
    /// [`ServiceError::Limited`] when the business is at its maximum.
    pub(crate) fn start_counting(
        &self,
        business: &BusinessId,
        call: &CallId,
    ) -> Result<(), ServiceError> {
        let Some(limiter) = self.inner.limiters.get(business) else {
            return Ok(());
        };
        if lock(&self.inner.in_progress).contains(call) {
            return Ok(());
        }
        lock(limiter)
            .start_call(business)
            .map_err(|l| ServiceError::Limited {
                retry_after_s: l.retry_after.as_secs().max(1),
                which: l.which.as_str(),
                message: format!(
                    "{business} has as many calls in progress as it may; try again in {} s",
                    l.retry_after.as_secs().max(1)
                ),
            })?;
        lock(&self.inner.in_progress).insert(call.clone());
        Ok(())
    }

    /// Ends what [`Service::start_counting`] counted (no-op if it did not).
    pub(crate) fn stop_counting(&self, business: &BusinessId, call: &CallId) {
        if lock(&self.inner.in_progress).remove(call) {
            if let Some(l) = self.inner.limiters.get(business) {
                lock(l).end_call(business);
            }
        }
    }

    /// Attaches the webhook of the request's first status, when its business has one.
    fn with_first_webhook(&self, mut new: NewRequest) -> NewRequest {
        let rec = CallRecord {
            request: new.clone(),
            status: new.status.clone(),
            reason: None,
            agent: None,
            attempts: 0,
            due_ms: new.due_ms,
            updated_ms: new.created_ms,
            events: Vec::new(),
            media: Vec::new(),
            sale: None,
        };
        new.webhook = self.webhook_for(&rec, &new.status, None, None, new.created_ms);
        new
    }

    fn commit(
        &self,
        new: &NewRequest,
        origin: &Origin,
        scope: &str,
    ) -> Result<Outcome, ServiceError> {
        let body = format!("{{\"id\":\"{}\",\"status\":\"{}\"}}", new.id, new.status);
        let response = StoredResponse { status: 202, body };
        let idem = origin
            .idempotency
            .as_ref()
            .map(|(key, hash)| IdempotencyKey {
                scope: scope.to_owned(),
                key: key.clone(),
                body_hash: hash.clone(),
                at_ms: new.created_ms,
            });
        match self.inner.store.accept(new, idem.as_ref(), &response)? {
            Accepted::New => {
                if new.webhook.is_some() {
                    self.inner.outbox_wake.notify_one();
                }
                let rec = self.inner.store.get(&new.id)?.ok_or_else(|| {
                    ServiceError::Internal("the committed request vanished".into())
                })?;
                info!(call = %new.id, kind = new.kind.as_str(), status = %new.status, "request accepted");
                Ok(Outcome::Created(Box::new(rec)))
            }
            Accepted::Replay { response, .. } => Ok(Outcome::Replay(response)),
        }
    }

    /// A request with its live figures. Blocking (store I/O).
    ///
    /// # Errors
    /// The store's failure.
    pub fn get(&self, id: &CallId) -> Result<Option<RequestView>, ServiceError> {
        let Some(record) = self.inner.store.get(id)? else {
            return Ok(None);
        };
        let position = (record.status == "queued")
            .then(|| lock(&self.inner.acd).position(id))
            .flatten();
        let queue_position = position.map(|p| p + 1);
        let estimated_wait_s = match (queue_position, record.request.business.as_ref()) {
            (Some(p), Some(b)) => lock(&self.inner.acd)
                .estimated_wait(b, p)
                .map(|d| d.as_secs()),
            _ => None,
        };
        let parse = |role: &str| {
            record
                .media_of(role)
                .and_then(|m| serde_json::from_str::<serde_json::Value>(&m.json).ok())
        };
        let stored = (parse("customer"), parse("agent"));
        let media = if stored.0.is_some() || stored.1.is_some() {
            stored
        } else {
            lock(&self.inner.live_media)
                .get(id)
                .cloned()
                .unwrap_or_default()
        };
        Ok(Some(RequestView {
            record,
            queue_position,
            estimated_wait_s,
            media,
        }))
    }

    /// Records the sale of a request (after its call). Blocking.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; the store's failure.
    pub fn sale(&self, id: &CallId, sale: &Sale) -> Result<RequestView, ServiceError> {
        match self.inner.store.put_sale(id, sale) {
            Err(store::StoreError::NotFound(_)) => return Err(ServiceError::NotFound(id.clone())),
            r => r?,
        }
        self.get(id)?
            .ok_or_else(|| ServiceError::NotFound(id.clone()))
    }

    /// The webhook deliveries of a request, oldest first (the delivery log). Blocking.
    ///
    /// # Errors
    /// The store's failure.
    pub fn deliveries(&self, id: &CallId) -> Result<Vec<store::OutboxItem>, ServiceError> {
        Ok(self.inner.store.outbox_of(id)?)
    }

    /// Records created in a time range. Blocking.
    ///
    /// # Errors
    /// The store's failure.
    pub fn records(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, ServiceError> {
        Ok(self.inner.store.records(filter)?)
    }

    /// Cancels every live call and waits (bounded) until they have finished.
    pub async fn shutdown(&self, deadline: Duration) {
        let inboxes: Vec<_> = lock(&self.inner.live).values().cloned().collect();
        for i in &inboxes {
            let _ = i.send(CallInput::Cancel);
        }
        let until = tokio::time::Instant::now() + deadline;
        while !lock(&self.inner.live).is_empty() && tokio::time::Instant::now() < until {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub(crate) fn publish(
        &self,
        id: &CallId,
        business: Option<BusinessId>,
        agent: Option<String>,
        status: &str,
        reason: Option<String>,
        at_ms: i64,
    ) {
        let _ = self.inner.events.send(Notice::Status(CallEvent {
            id: id.clone(),
            business,
            agent,
            status: status.to_owned(),
            reason,
            at_ms,
        }));
    }

    /// Claims due requests and starts their calls, for ever (until stop).
    async fn scheduler(self) {
        let i = self.inner.clone();
        loop {
            if i.stop.is_cancelled() {
                return;
            }
            let room = MAX_LIVE_CALLS
                .saturating_sub(lock(&i.live).len())
                .min(CLAIM_BATCH);
            let mut claimed = 0;
            if room > 0 {
                let store = i.store.clone();
                let run = i.run.clone();
                let got =
                    tokio::task::spawn_blocking(move || store.claim_due(&run, now_ms(), room))
                        .await;
                match got {
                    Ok(Ok(recs)) => {
                        claimed = recs.len();
                        for rec in recs {
                            let s = self.clone();
                            tokio::spawn(async move { call::run(s, rec, None).await });
                        }
                    }
                    Ok(Err(e)) => warn!("scheduler: cannot claim due requests: {e}"),
                    Err(e) => warn!("scheduler: {e}"),
                }
            }
            if claimed == room && room > 0 {
                // More may be due: go round again at once.
                tokio::task::yield_now().await;
                continue;
            }
            let store = i.store.clone();
            let next = tokio::task::spawn_blocking(move || store.next_due())
                .await
                .ok()
                .and_then(Result::ok)
                .flatten();
            let wait = next.map_or(SCHEDULER_IDLE, |due| {
                Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0))
                    .min(SCHEDULER_IDLE)
            });
            tokio::select! {
                () = i.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
                () = i.stop.cancelled() => return,
            }
        }
    }

    /// Frees an agent from its call and hands freed agents to waiting calls.
    pub(crate) fn release_agent(&self, agent: &AgentId) {
        let handoffs = lock(&self.inner.acd).release(agent, Instant::now());
        self.hand_over(handoffs);
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// Media legs a bridge took at accept time, or `None`.
pub(crate) type Preallocated = Option<Legs>;
