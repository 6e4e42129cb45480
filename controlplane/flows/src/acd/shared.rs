//! Agents shared by several control-plane nodes: the [`PresenceBackend`] contract and how a
//! node's [`Acd`] mirrors the shared state ([`Acd::apply_shared`]).
//!
//! ```text
//!  node A: Acd (its waiting calls + a mirror of every agent) ─reserve/release/presence─► backend ◄─ node B
//!                      ▲ apply_shared(row)  ◄── change notices (LISTEN/NOTIFY) + periodic resync ──┘
//! ```
//!
//! With one node (SQLite) there is no backend: the [`Acd`] alone is the truth, as always. With a
//! shared store each node keeps its own waiting calls in its `Acd` and a *mirror* of every
//! agent; the backend (PostgreSQL's `agents_state`) decides who gets an agent:
//!
//! - A hand-off the local `Acd` makes (agent idle in the mirror) is only a proposal: the node
//!   then asks [`PresenceBackend::reserve`], a row-locked conditional update, and only a `true`
//!   gives the agent to the call. On `false` the node applies the agent's row (reserved by
//!   another node, away…) and asks again for the call.
//! - Every change (presence, reservation, talk, release, no answer) is written to the backend
//!   and announced; other nodes apply the agent's row to their mirror
//!   ([`Acd::apply_shared`]), which may hand the agent to one of their waiting calls (again a
//!   proposal, confirmed by `reserve`).
//! - A reservation names the node's run; a run whose lease expired (`kill -9`) holds nothing:
//!   the backend reports its agents free ([`SharedAgent::call`] is `None`).
//!
//! Times in rows are Unix milliseconds (nodes' clocks agree, NTP); the mirror turns them into
//! [`Instant`]s of its own clock.

use std::time::{Duration, Instant};

use super::{Acd, AgentState};
use crate::{AgentId, CallId, Presence};

/// One agent as the shared backend knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedAgent {
    /// The agent.
    pub agent: AgentId,
    /// What the agent asked for through the API: `available`, `away` or `offline` (an agent
    /// on a call that asked for `away` goes away when the call is released).
    pub presence: Presence,
    /// The call it is reserved for or talking on, if a live node holds it (a dead node's
    /// reservation is reported as `None`).
    pub call: Option<CallId>,
    /// Whether the reservation is held by this node's run.
    pub mine: bool,
    /// Talking on `call` (else ringing for it, or about to).
    pub talking: bool,
    /// The end of its wrap-up, Unix ms, if it is in one.
    pub wrap_until_ms: Option<i64>,
    /// When it last became free, Unix ms (orders the longest-idle choice across nodes).
    pub idle_since_ms: i64,
}

/// A backend error: its message (the service logs it and carries on with what it knows).
pub type BackendError = String;

/// What the shared store announces ([`PresenceBackend::watch`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// This agent's row changed: read it ([`PresenceBackend::agent`]) and apply it.
    Agent(AgentId),
    /// A message for the nodes' subscribers (screen pop, status of a call), as published
    /// with [`PresenceBackend::publish`] by another node.
    Notice(String),
    /// The listening connection was (re)established: changes may have been missed, read
    /// everything ([`PresenceBackend::agents`]).
    Resync,
    /// The listening connection was lost (why); it is being re-established. Until then
    /// changes arrive only through polling.
    Lost(String),
    /// Nothing happened for a while (about every half second): a chance to poll.
    Tick,
}

/// Stops a [`PresenceBackend::watch`] when dropped.
pub struct Watcher(pub Box<dyn Send + Sync>);

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watcher")
    }
}

/// Agents' presence and reservations kept where several nodes see them (see the module docs).
/// Every method is short, blocking I/O: call it from a blocking thread.
pub trait PresenceBackend: Send + Sync + std::fmt::Debug {
    /// Reserves `agent` for `call` if it is available, not in wrap-up at `now_ms` and not
    /// held by a live node's call (row-locked: two nodes never both get `true`).
    ///
    /// # Errors
    /// The backend's failure (then the agent is not reserved).
    fn reserve(&self, agent: &AgentId, call: &CallId, now_ms: i64) -> Result<bool, BackendError>;

    /// The agent answered `call`.
    ///
    /// # Errors
    /// The backend's failure.
    fn connected(&self, agent: &AgentId, call: &CallId, now_ms: i64) -> Result<(), BackendError>;

    /// Frees the agent from `call` (a no-op if it is not held for `call`), in wrap-up until
    /// `wrap_until_ms` if given.
    ///
    /// # Errors
    /// The backend's failure.
    fn release(
        &self,
        agent: &AgentId,
        call: &CallId,
        wrap_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(), BackendError>;

    /// The agent let `call` ring out: freed from it and set away (offline stays offline).
    ///
    /// # Errors
    /// The backend's failure.
    fn no_answer(&self, agent: &AgentId, call: &CallId, now_ms: i64) -> Result<(), BackendError>;

    /// Sets the presence the agent asked for (`available`, `away`, `offline`).
    ///
    /// # Errors
    /// The backend's failure.
    fn set_presence(
        &self,
        agent: &AgentId,
        presence: Presence,
        now_ms: i64,
    ) -> Result<(), BackendError>;

    /// Every agent with a row, as of `now_ms`.
    ///
    /// # Errors
    /// The backend's failure.
    fn agents(&self, now_ms: i64) -> Result<Vec<SharedAgent>, BackendError>;

    /// One agent's row, as of `now_ms`.
    ///
    /// # Errors
    /// The backend's failure.
    fn agent(&self, agent: &AgentId, now_ms: i64) -> Result<Option<SharedAgent>, BackendError>;

    /// The 0-based position of waiting request `call` among its business's waiting requests
    /// on every node (`queued`, due, oldest first), with the queue's length; `None` when it
    /// does not wait.
    ///
    /// # Errors
    /// The backend's failure.
    fn queue_position(
        &self,
        call: &CallId,
        now_ms: i64,
    ) -> Result<Option<(usize, usize)>, BackendError>;

    /// Announces `payload` (at most a few kB) to every node's [`Change::Notice`].
    ///
    /// # Errors
    /// The backend's failure.
    fn publish(&self, payload: &str) -> Result<(), BackendError>;

    /// Starts listening for changes on a thread of its own: `sink` gets every [`Change`]
    /// until it returns `false` or the [`Watcher`] is dropped. A lost connection is
    /// re-established (then [`Change::Resync`]).
    ///
    /// # Errors
    /// When the thread cannot be started.
    fn watch(&self, sink: Box<dyn FnMut(Change) -> bool + Send>) -> Result<Watcher, BackendError>;
}

/// `at_ms` (Unix ms) on the local clock, knowing that `now_ms` is `now`.
fn instant_of(at_ms: i64, now: Instant, now_ms: i64) -> Instant {
    let delta = Duration::from_millis(at_ms.abs_diff(now_ms));
    if at_ms >= now_ms {
        now.checked_add(delta).unwrap_or(now)
    } else {
        now.checked_sub(delta).unwrap_or(now)
    }
}

impl Acd {
    /// Brings the mirror of `row.agent` in line with the shared row (written by any node)
    /// and returns the hand-offs this made possible (proposals: confirm each with
    /// [`PresenceBackend::reserve`]). `now` is `now_ms` on the local clock; `is_local` tells
    /// whether a call runs on this node.
    ///
    /// - A reservation of this node's (the row says `mine`, or the local state holds a local
    ///   call the row does not show yet) is the local state's business: only the presence
    ///   asked for meanwhile (away/offline after the call) is taken.
    /// - Another node's call: the agent is reserved or busy with it here too.
    /// - No call: the presence asked for; `available` in wrap-up until its end, else idle
    ///   since the row's time.
    ///
    /// An agent this node does not know is ignored.
    pub fn apply_shared(
        &mut self,
        row: &SharedAgent,
        now: Instant,
        now_ms: i64,
        is_local: &dyn Fn(&CallId) -> bool,
    ) -> Vec<(CallId, AgentId)> {
        let Some(a) = self.agents.get_mut(&row.agent) else {
            return Vec::new();
        };
        let after_call = match row.presence {
            Presence::Available | Presence::OnCall | Presence::WrapUp => None,
            p => Some(p),
        };
        let local_call = match &a.state {
            AgentState::Reserved(c) | AgentState::Busy(c) => is_local(c),
            _ => false,
        };
        if row.mine || local_call {
            a.after_call = after_call;
            return Vec::new();
        }
        if let Some(call) = &row.call {
            a.state = if row.talking {
                AgentState::Busy(call.clone())
            } else {
                AgentState::Reserved(call.clone())
            };
            a.after_call = after_call;
            return Vec::new();
        }
        a.after_call = None;
        a.state = match row.presence {
            Presence::Away => AgentState::Away,
            Presence::Offline => AgentState::Offline,
            _ => match row.wrap_until_ms {
                Some(end) if end > now_ms => AgentState::WrapUp {
                    until: instant_of(end, now, now_ms),
                },
                _ => {
                    a.idle_since = instant_of(row.idle_since_ms.min(now_ms), now, now_ms);
                    AgentState::Idle
                }
            },
        };
        self.hand_off(Some(now))
    }

    /// The call an agent is reserved for or talking on, if any.
    #[must_use]
    pub fn call_of(&self, agent: &AgentId) -> Option<&CallId> {
        match self.state(agent)? {
            AgentState::Reserved(c) | AgentState::Busy(c) => Some(c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acd::Assignment;
    use crate::AgentRequest;

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().unwrap()
    }

    fn row(agent: &str, presence: Presence, call: Option<&str>) -> SharedAgent {
        SharedAgent {
            agent: id(agent),
            presence,
            call: call.map(id),
            mine: false,
            talking: false,
            wrap_until_ms: None,
            idle_since_ms: 1_000,
        }
    }

    fn acd(t0: Instant) -> Acd {
        let mut acd = Acd::new();
        acd.add_business(id("acme"));
        acd.add_agent(id("alice"), vec![id("acme")], t0).unwrap();
        acd
    }

    const NOBODY: &dyn Fn(&CallId) -> bool = &|_| false;

    #[test]
    fn another_nodes_reservation_makes_the_agent_busy_here() {
        let t0 = Instant::now();
        let mut acd = acd(t0);
        let h = acd.apply_shared(
            &row("alice", Presence::Available, Some("far")),
            t0,
            5_000,
            NOBODY,
        );
        assert!(h.is_empty());
        assert_eq!(
            acd.state(&id("alice")),
            Some(&AgentState::Reserved(id("far")))
        );
        // A call here now waits for her.
        let req = AgentRequest::new(id("c1"), id("acme"));
        assert_eq!(acd.request_agent(req, t0), Assignment::Queued);
        // She talks on the far call, then is released there: handed to c1 here.
        let mut talking = row("alice", Presence::Available, Some("far"));
        talking.talking = true;
        acd.apply_shared(&talking, t0, 5_000, NOBODY);
        assert_eq!(acd.state(&id("alice")), Some(&AgentState::Busy(id("far"))));
        let h = acd.apply_shared(&row("alice", Presence::Available, None), t0, 5_000, NOBODY);
        assert_eq!(h, vec![(id("c1"), id("alice"))]);
        assert_eq!(
            acd.state(&id("alice")),
            Some(&AgentState::Reserved(id("c1")))
        );
    }

    #[test]
    fn presence_away_elsewhere_queues_calls_here() {
        let t0 = Instant::now();
        let mut acd = acd(t0);
        acd.apply_shared(&row("alice", Presence::Away, None), t0, 5_000, NOBODY);
        assert_eq!(acd.presence(&id("alice")), Some(Presence::Away));
        let req = AgentRequest::new(id("c1"), id("acme"));
        assert_eq!(acd.request_agent(req, t0), Assignment::Queued);
        assert_eq!(
            acd.estimated_wait(&id("acme"), 0),
            None,
            "nobody works for acme"
        );
        let h = acd.apply_shared(&row("alice", Presence::Available, None), t0, 5_000, NOBODY);
        assert_eq!(h, vec![(id("c1"), id("alice"))]);
    }

    #[test]
    fn a_local_reservation_not_yet_written_is_kept() {
        let t0 = Instant::now();
        let mut acd = acd(t0);
        let req = AgentRequest::new(id("c1"), id("acme"));
        assert_eq!(
            acd.request_agent(req, t0),
            Assignment::Assigned(id("alice"))
        );
        // The row does not show c1 yet (the reservation is being written); she asked to go
        // away meanwhile: away after the call, the call kept.
        let local: &dyn Fn(&CallId) -> bool = &|c| c.as_str() == "c1";
        acd.apply_shared(&row("alice", Presence::Away, None), t0, 5_000, local);
        assert_eq!(
            acd.state(&id("alice")),
            Some(&AgentState::Reserved(id("c1")))
        );
        acd.release(&id("alice"), t0);
        assert_eq!(acd.presence(&id("alice")), Some(Presence::Away));
    }

    #[test]
    fn wrap_up_and_idle_times_come_from_the_row() {
        let t0 = Instant::now();
        let mut acd = acd(t0);
        let mut r = row("alice", Presence::Available, None);
        r.wrap_until_ms = Some(7_000);
        acd.apply_shared(&r, t0, 5_000, NOBODY);
        let until = t0 + Duration::from_secs(2);
        assert_eq!(acd.state(&id("alice")), Some(&AgentState::WrapUp { until }));
        assert_eq!(acd.poll_timeout(), Some(until));
        acd.tick(until);
        assert_eq!(acd.presence(&id("alice")), Some(Presence::Available));
        // Unknown agents are ignored.
        assert!(acd
            .apply_shared(&row("zed", Presence::Away, None), t0, 5_000, NOBODY)
            .is_empty());
    }

    #[test]
    fn instants_follow_the_wall_clock_offset() {
        let t0 = Instant::now() + Duration::from_secs(10);
        assert_eq!(instant_of(6_000, t0, 5_000), t0 + Duration::from_secs(1));
        assert_eq!(instant_of(4_000, t0, 5_000), t0 - Duration::from_secs(1));
    }
}
