//! Draining and reloading: what the service does for an upgrade without dropped calls.
//!
//! - **Drain** ([`Service::start_drain`]): from then on this process dials nothing new. Call
//!   requests and bridges are refused with [`ServiceError::Draining`] (HTTP `503` with
//!   `Retry-After`) — call requests only when the store is this process's own: on a shared
//!   store (`store::Store::shared`, PostgreSQL) they are still committed as `queued`, for
//!   another node to dial — inbound INVITEs get `503`, and the scheduler claims no more due requests:
//!   queued and scheduled rows stay in the store, unclaimed, for the next process. Live calls
//!   go on to their natural end; the process decides when to stop waiting
//!   ([`Service::shutdown`] ends those left).
//! - **Reload** ([`Service::reload_directory`]): a new directory from the configuration file
//!   (businesses, agents, announcements, limits) replaces the old one; live calls keep what
//!   they started with, agents keep their presence, and an agent that is no longer configured
//!   finishes its call but is offered no new one.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::*;

/// Seconds a refused client is told to wait (`Retry-After`) while this process drains: by
/// then a load balancer has moved it to another process, or the new one has started.
pub const DRAIN_RETRY_AFTER_S: u64 = 5;

/// Whether the process drains, and since when.
#[derive(Debug)]
pub(crate) struct DrainState {
    draining: AtomicBool,
    since: Mutex<Option<Instant>>,
    changed: tokio::sync::watch::Sender<bool>,
}

impl Default for DrainState {
    fn default() -> Self {
        Self {
            draining: AtomicBool::new(false),
            since: Mutex::new(None),
            changed: tokio::sync::watch::channel(false).0,
        }
    }
}

/// What [`Service::reload_directory`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReloadSummary {
    /// Businesses configured now.
    pub businesses: usize,
    /// Agents configured now.
    pub agents: usize,
    /// Agents that were configured before and are not now (they finish a call they are on).
    pub removed_agents: Vec<AgentId>,
}

impl Service {
    /// Starts draining (idempotent): returns `true` the first time.
    pub fn start_drain(&self) -> bool {
        let d = &self.inner.drain;
        if d.draining.swap(true, Ordering::SeqCst) {
            return false;
        }
        *lock(&d.since) = Some(Instant::now());
        d.changed.send_replace(true);
        // The scheduler looks again (and claims nothing more).
        self.inner.wake.notify_one();
        info!(
            live_calls = self.live_calls(),
            "draining: no new calls are dialled by this process; live calls go on"
        );
        true
    }

    /// Whether this process drains.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.inner.drain.draining.load(Ordering::SeqCst)
    }

    /// How long this process has drained (`None`: it serves).
    #[must_use]
    pub fn draining_for(&self) -> Option<Duration> {
        lock(&self.inner.drain.since).map(|t| t.elapsed())
    }

    /// Resolves once a drain has started (at once when it has).
    pub async fn drain_started(&self) {
        let mut rx = self.inner.drain.changed.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }

    /// Calls waiting for an agent in this process's queues, all businesses.
    #[must_use]
    pub fn queued_requests(&self) -> usize {
        let acd = lock(&self.inner.acd);
        self.inner
            .dir()
            .businesses
            .iter()
            .map(|b| acd.queue_len(&b.id))
            .sum()
    }

    /// [`ServiceError::Draining`] while draining (counted as a `draining` refusal).
    pub(crate) fn refuse_if_draining(&self) -> Result<(), ServiceError> {
        if self.is_draining() {
            self.inner.refusals.add("draining");
            return Err(ServiceError::Draining {
                retry_after_s: DRAIN_RETRY_AFTER_S,
            });
        }
        Ok(())
    }

    /// Replaces the directory with `dir` from a re-read configuration, with the changes made
    /// through the API applied over it (as at start). Live calls are untouched; agents keep
    /// their presence; a removed agent finishes its call and is offered no other. Blocking
    /// (store I/O).
    ///
    /// # Errors
    /// The store's failure; the old directory stays.
    pub fn reload_directory(&self, mut dir: Directory) -> Result<ReloadSummary, ServiceError> {
        let i = self.inner();
        let _w = lock(&i.dir_writer);
        let docs = i.store.directory_docs()?;
        Self::apply_stored_directory(&mut dir, docs);
        let old = i.dir();
        let removed_agents: Vec<AgentId> = old
            .agents
            .iter()
            .filter(|a| dir.agent(&a.id).is_none())
            .map(|a| a.id.clone())
            .collect();
        let now = Instant::now();
        let mut handoffs = Vec::new();
        {
            let mut acd = lock(&i.acd);
            for b in &dir.businesses {
                acd.add_business(b.id.clone());
            }
            for a in &dir.agents {
                let profile = AgentProfile {
                    businesses: a.businesses.clone(),
                    skills: a.skills.clone(),
                    wrap_up: a.wrap_up,
                };
                // Known agents (also ones removed earlier and now back) keep their state.
                let r = if acd.presence(&a.id).is_some() {
                    acd.update_agent(&a.id, profile, now)
                } else {
                    acd.add_agent_with(a.id.clone(), profile, now)
                        .map(|()| Vec::new())
                };
                handoffs.extend(r.map_err(|e| ServiceError::Internal(e.to_string()))?);
            }
            for a in &removed_agents {
                // Serving no business: never chosen again; a call it is on goes on.
                let r = acd.update_agent(a, AgentProfile::default(), now);
                handoffs.extend(r.map_err(|e| ServiceError::Internal(e.to_string()))?);
            }
        }
        {
            let mut limiters = i
                .limiters
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for b in &dir.businesses {
                let l = b
                    .limits
                    .clone()
                    .unwrap_or_else(|| i.settings.limits.clone());
                match limiters.get(&b.id) {
                    // The counts (calls in progress, windows) are kept.
                    Some(existing) => lock(existing).set_limits(l),
                    None => {
                        limiters.insert(
                            b.id.clone(),
                            Arc::new(Mutex::new(flows::limits::RateLimiter::new(l))),
                        );
                    }
                }
            }
        }
        let summary = ReloadSummary {
            businesses: dir.businesses.len(),
            agents: dir.agents.len(),
            removed_agents,
        };
        *i.dir
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(dir);
        self.hand_over(handoffs);
        Ok(summary)
    }
}

impl Inner {
    /// The rate limiter of a business (`None`: not configured).
    pub(crate) fn limiter(
        &self,
        business: &BusinessId,
    ) -> Option<Arc<Mutex<flows::limits::RateLimiter>>> {
        self.limiters
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(business)
            .cloned()
    }
}
