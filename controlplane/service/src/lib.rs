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

mod accept;
pub mod admin;
mod admission;
mod agents;
mod call;
mod cancel;
mod directory;
mod drain;
mod error;
mod inbound;
mod metrics;

pub use inbound::InboundRefusal;
mod schedule;
mod shared_acd;
mod stats;
pub mod webhooks;

pub use admission::{AdmissionSettings, Overload, SetupBucket};
pub use call::{media_json, quality};
pub use cancel::Cancelled;
pub use directory::{secret_eq, AgentEntry, BusinessEntry, Directory};
pub use drain::{ReloadSummary, DRAIN_RETRY_AFTER_S};
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
/// How often the run's claims are renewed in a shared store (a third of PostgreSQL's
/// default 15 s lease: two renewals may fail before the lease runs out).
const LEASE_RENEWAL: Duration = Duration::from_secs(5);
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
    /// SDES-SRTP for customers called by SIP URI (`media.srtp`); agents have their own and
    /// trunks theirs. Keys are only offered over TLS.
    pub customer_srtp: sip::sdp::Srtp,
    /// Process-wide admission: `limits.max_calls`, the descriptor budget,
    /// `limits.max_setups_per_second`.
    pub admission: AdmissionSettings,
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

/// The latest raw counters of a live call's two legs (customer, agent).
pub(crate) type LiveCounters = (Option<dp_api::LegStats>, Option<dp_api::LegStats>);

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
    /// A SIP trace rule for this call was added: hand its dialogs to [`sip::trace::watch`].
    SipTrace,
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
    /// Slots and set-up tokens ([`admission`]).
    pub(crate) admission: admission::Admission,
    /// Refused call requests by kind.
    pub(crate) refusals: Refusals,
    /// Every node's queued requests, read from a shared store at most once a second.
    pub(crate) cluster_queue: stats::ClusterQueue,
    /// Status changes, set-up times, waits and media quality for `GET /metrics`.
    pub(crate) metrics: metrics::CallMetrics,
    pub(crate) store: Arc<dyn Store>,
    pub(crate) b2b: B2bua,
    /// Businesses and agents: the configuration with the API's changes over it. Replaced
    /// whole on a change (readers keep the snapshot they took).
    pub(crate) dir: std::sync::RwLock<Arc<Directory>>,
    /// Serializes directory changes (read, change, store, swap).
    pub(crate) dir_writer: Mutex<()>,
    pub(crate) settings: Settings,
    pub(crate) acd: Mutex<Acd>,
    /// Agents shared with the other nodes (a shared store), else `None`.
    pub(crate) shared: Option<shared_acd::SharedAcd>,
    /// Rate limits and calls in progress, one limiter per business (its own limits).
    /// A reload adds limiters and changes their limits ([`Inner::limiter`]).
    pub(crate) limiters:
        std::sync::RwLock<HashMap<BusinessId, Arc<Mutex<flows::limits::RateLimiter>>>>,
    /// Whether the process drains ([`Service::start_drain`]).
    pub(crate) drain: drain::DrainState,
    /// Requests counted in their business's calls in progress (accepted to be dialled now,
    /// or running); the count ends when the call does.
    pub(crate) in_progress: Mutex<std::collections::HashSet<CallId>>,
    /// This process's run id: the claims it holds.
    pub(crate) run: String,
    /// Live calls only (bounded by [`MAX_LIVE_CALLS`]).
    pub(crate) live: Mutex<HashMap<CallId, mpsc::UnboundedSender<CallInput>>>,
    /// Requests cancelled while not live, so that a task claimed a moment before does not
    /// dial them (locked after `live`; see `cancel.rs`).
    pub(crate) cancelled: Mutex<HashMap<CallId, Instant>>,
    /// Requests accepted to be dialled now that have no media legs yet: admission counts
    /// them against the free ports, so a `202` is never followed by a failure for lack of
    /// ports. Removed when the call gets its legs or ends.
    pub(crate) reserved: Mutex<std::collections::HashSet<CallId>>,
    /// The latest media counters of live calls (customer, agent); stored when they end.
    /// Kept raw: they change every second per leg and are read rarely, so they are turned
    /// into JSON ([`call::media_json`]) only when read.
    pub(crate) live_media: Mutex<HashMap<CallId, LiveCounters>>,
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
                (
                    b.id.clone(),
                    Arc::new(Mutex::new(flows::limits::RateLimiter::new(l))),
                )
            })
            .collect();
        let (events, _) = broadcast::channel(1024);
        let shared = shared_acd::SharedAcd::of(store.as_ref(), &run);
        let inner = Arc::new(Inner {
            admission: admission::Admission::new(&settings.admission, Instant::now()),
            refusals: Refusals::default(),
            cluster_queue: stats::ClusterQueue::default(),
            metrics: metrics::CallMetrics::default(),
            store,
            b2b,
            dir: std::sync::RwLock::new(Arc::new(dir)),
            dir_writer: Mutex::new(()),
            settings,
            limiters: std::sync::RwLock::new(limiters),
            drain: drain::DrainState::default(),
            in_progress: Mutex::default(),
            acd: Mutex::new(acd),
            shared,
            run,
            live: Mutex::default(),
            cancelled: Mutex::default(),
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
        svc.start_shared_acd().await?;
        let s = svc.clone();
        tokio::spawn(async move { s.scheduler().await });
        let s = svc.clone();
        tokio::spawn(async move { s.acd_clock().await });
        let s = svc.clone();
        tokio::spawn(async move { s.deliver_webhooks().await });
        let s = svc.clone();
        tokio::spawn(async move { s.keep_lease().await });
        Ok(svc)
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

    /// Live calls now (dialled or waiting for an agent in this process).
    #[must_use]
    pub fn live_calls(&self) -> usize {
        lock(&self.inner.live).len()
    }

    /// Sets the calls the descriptor budget carries, measured once the process is up
    /// (`None`: unbounded, e.g. the DPDK backend).
    pub fn set_descriptor_budget(&self, calls: Option<usize>) {
        self.inner.admission.set_descriptor_calls(calls);
    }

    /// The slot limit in force and the name of the one that binds (`max_calls` or
    /// `descriptors`; `usize::MAX` when neither bounds).
    #[must_use]
    pub fn call_limit(&self) -> (usize, &'static str) {
        self.inner.admission.limit()
    }

    /// Ends call `id`'s admission slot (no-op if it holds none); wakes the scheduler if it
    /// waits for one.
    pub(crate) fn end_slot(&self, id: &CallId) {
        if self.inner.admission.release(id, Instant::now()) {
            self.inner.wake.notify_one();
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
        let (queue_position, estimated_wait_s) = self.queue_view(&record);
        let parse = |role: &str| {
            record
                .media_of(role)
                .and_then(|m| serde_json::from_str::<serde_json::Value>(&m.json).ok())
        };
        let stored = (parse("customer"), parse("agent"));
        let media = if stored.0.is_some() || stored.1.is_some() {
            stored
        } else {
            let live = lock(&self.inner.live_media).get(id).copied();
            live.map(|(c, a)| (c.as_ref().map(media_json), a.as_ref().map(media_json)))
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

    /// Tells live call `id` that a SIP trace rule names it, so that it hands over its dialogs
    /// already begun ([`sip::trace::watch`]); false when no such call is live.
    pub fn sip_trace(&self, id: &CallId) -> bool {
        lock(&self.inner.live)
            .get(id)
            .is_some_and(|i| i.send(CallInput::SipTrace).is_ok())
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
        self.inner
            .metrics
            .status(business.as_ref(), status, reason.as_deref());
        let _ = self.inner.events.send(Notice::Status(CallEvent {
            id: id.clone(),
            business,
            agent,
            status: status.to_owned(),
            reason,
            at_ms,
        }));
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }
}

/// Media legs a bridge took at accept time, or `None`.
pub(crate) type Preallocated = Option<Legs>;
