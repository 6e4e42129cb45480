//! Agent queues (automatic call distribution).
//!
//! [`Acd`] knows every agent, the businesses each serves and whether it is free. A call asks
//! for an agent with [`Acd::request`]; it gets one at once ([`Assignment::Assigned`], the
//! agent is then [`AgentState::Reserved`] for it), waits in its business's FIFO queue
//! ([`Assignment::Queued`]), or is told that waiting is pointless
//! ([`Assignment::Unavailable`]: nobody serves the business except offline or excluded
//! agents).
//!
//! Choice: the preferred agent if it is idle and serves the business, otherwise the agent that
//! has been idle longest. When an agent is freed ([`Acd::release`], [`Acd::set_online`]) it
//! goes to the oldest waiting call it may take, across all of its businesses.
//!
//! There is no wrap-up time: a released agent is idle at once. No clock is read; `now` comes in.
//! The caller (the orchestrator) owns the `Acd` and feeds its answers to the calls'
//! [`crate::ClickToCall`] machines as [`crate::Input::AgentAssigned`] /
//! [`crate::Input::NoAgent`].

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use crate::{AgentId, BusinessId, CallId, Error};

/// What an agent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Free to take a call.
    Idle,
    /// Held for a call that is ringing it (or about to).
    Reserved(CallId),
    /// Talking on a call.
    Busy(CallId),
    /// Logged out; never assigned.
    Offline,
}

/// The answer to [`Acd::request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// This agent is now reserved for the call.
    Assigned(AgentId),
    /// The call waits in its business's queue; a later [`Acd::release`] or
    /// [`Acd::set_online`] may assign it.
    Queued,
    /// No online, non-excluded agent serves the business (or the business is unknown), so
    /// queueing would never end.
    Unavailable,
}

#[derive(Debug)]
struct Agent {
    businesses: Vec<BusinessId>,
    state: AgentState,
    /// When the agent last became idle (meaningful while `Idle`).
    idle_since: Instant,
}

#[derive(Debug)]
struct Waiting {
    call: CallId,
    preferred: Option<AgentId>,
    exclude: Vec<AgentId>,
    /// Global arrival order across businesses (oldest first).
    seq: u64,
}

/// Agents, their businesses and the per-business queues of waiting calls.
#[derive(Debug, Default)]
pub struct Acd {
    agents: BTreeMap<AgentId, Agent>,
    queues: BTreeMap<BusinessId, VecDeque<Waiting>>,
    next_seq: u64,
}

impl Acd {
    /// An empty ACD.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Declares a business (calls for undeclared businesses are [`Assignment::Unavailable`]).
    /// Declaring it twice is harmless.
    pub fn add_business(&mut self, business: BusinessId) {
        self.queues.entry(business).or_default();
    }

    /// Adds an idle agent serving `businesses` (idle since `now`).
    ///
    /// # Errors
    /// [`Error::DuplicateAgent`] if the id exists, [`Error::UnknownBusiness`] if a business
    /// was not declared with [`Acd::add_business`].
    pub fn add_agent(
        &mut self,
        agent: AgentId,
        businesses: Vec<BusinessId>,
        now: Instant,
    ) -> Result<(), Error> {
        if self.agents.contains_key(&agent) {
            return Err(Error::DuplicateAgent(agent));
        }
        if let Some(b) = businesses.iter().find(|b| !self.queues.contains_key(*b)) {
            return Err(Error::UnknownBusiness(b.clone()));
        }
        self.agents.insert(
            agent,
            Agent {
                businesses,
                state: AgentState::Idle,
                idle_since: now,
            },
        );
        Ok(())
    }

    /// Asks for an agent for `call` of `business`: `preferred` if it is idle and serves the
    /// business, else the longest-idle agent serving the business that is not in `exclude`.
    /// Otherwise the call joins the end of the business's queue (a call already queued is
    /// moved to the end with the new preferences).
    pub fn request(
        &mut self,
        call: &CallId,
        business: &BusinessId,
        preferred: Option<&AgentId>,
        exclude: &[AgentId],
    ) -> Assignment {
        self.cancel(call);
        if !self.queues.contains_key(business) {
            return Assignment::Unavailable;
        }
        let eligible =
            |id: &AgentId, a: &Agent| a.businesses.contains(business) && !exclude.contains(id);
        if let Some(p) = preferred {
            if let Some(a) = self.agents.get_mut(p) {
                if a.state == AgentState::Idle && eligible(p, a) {
                    a.state = AgentState::Reserved(call.clone());
                    return Assignment::Assigned(p.clone());
                }
            }
        }
        let best = self
            .agents
            .iter()
            .filter(|(id, a)| a.state == AgentState::Idle && eligible(id, a))
            .min_by_key(|(_, a)| a.idle_since)
            .map(|(id, _)| id.clone());
        if let Some(id) = best {
            if let Some(a) = self.agents.get_mut(&id) {
                a.state = AgentState::Reserved(call.clone());
            }
            return Assignment::Assigned(id);
        }
        if !self
            .agents
            .iter()
            .any(|(id, a)| a.state != AgentState::Offline && eligible(id, a))
        {
            return Assignment::Unavailable;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(q) = self.queues.get_mut(business) {
            q.push_back(Waiting {
                call: call.clone(),
                preferred: preferred.cloned(),
                exclude: exclude.to_vec(),
                seq,
            });
        }
        Assignment::Queued
    }

    /// The reserved agent answered: `Reserved(call)` becomes `Busy(call)`. Returns false (and
    /// changes nothing) if the agent was not reserved.
    pub fn mark_busy(&mut self, agent: &AgentId) -> bool {
        match self.agents.get_mut(agent) {
            Some(a) => match &a.state {
                AgentState::Reserved(call) => {
                    a.state = AgentState::Busy(call.clone());
                    true
                }
                _ => false,
            },
            None => false,
        }
    }

    /// Frees an agent (reserved or busy; no wrap-up time) and hands it to the oldest waiting
    /// call it may take. Returns the new assignments (the agent is then reserved for that
    /// call). An offline or unknown agent stays as it is.
    pub fn release(&mut self, agent: &AgentId, now: Instant) -> Vec<(CallId, AgentId)> {
        match self.agents.get_mut(agent) {
            Some(a) if a.state != AgentState::Offline => {
                if a.state != AgentState::Idle {
                    a.state = AgentState::Idle;
                    a.idle_since = now;
                }
            }
            _ => return Vec::new(),
        }
        self.dispatch(agent).into_iter().collect()
    }

    /// Logs an agent out. A reserved or busy agent keeps its call; it goes offline when
    /// released. Returns false for an unknown agent.
    pub fn set_offline(&mut self, agent: &AgentId) -> bool {
        match self.agents.get_mut(agent) {
            Some(a) => {
                if a.state == AgentState::Idle {
                    a.state = AgentState::Offline;
                }
                true
            }
            None => false,
        }
    }

    /// Logs an agent in (idle since `now`) and hands it to the oldest waiting call it may take.
    pub fn set_online(&mut self, agent: &AgentId, now: Instant) -> Vec<(CallId, AgentId)> {
        match self.agents.get_mut(agent) {
            Some(a) if a.state == AgentState::Offline => {
                a.state = AgentState::Idle;
                a.idle_since = now;
            }
            _ => return Vec::new(),
        }
        self.dispatch(agent).into_iter().collect()
    }

    /// Removes a call from its queue. Returns whether it was queued. (Agents reserved for the
    /// call are not touched: release them with [`Acd::release`].)
    pub fn cancel(&mut self, call: &CallId) -> bool {
        for q in self.queues.values_mut() {
            if let Some(i) = q.iter().position(|w| &w.call == call) {
                q.remove(i);
                return true;
            }
        }
        false
    }

    /// An agent's state.
    #[must_use]
    pub fn state(&self, agent: &AgentId) -> Option<&AgentState> {
        self.agents.get(agent).map(|a| &a.state)
    }

    /// How many calls wait for a business.
    #[must_use]
    pub fn queue_len(&self, business: &BusinessId) -> usize {
        self.queues.get(business).map_or(0, VecDeque::len)
    }

    /// A waiting call's 0-based position in its business's queue.
    #[must_use]
    pub fn position(&self, call: &CallId) -> Option<usize> {
        self.queues
            .values()
            .find_map(|q| q.iter().position(|w| &w.call == call))
    }

    /// Gives an idle agent to the oldest waiting call that may take it.
    fn dispatch(&mut self, agent: &AgentId) -> Option<(CallId, AgentId)> {
        let a = self.agents.get(agent)?;
        if a.state != AgentState::Idle {
            return None;
        }
        let mut best: Option<(u64, &BusinessId, usize)> = None;
        for b in &a.businesses {
            let Some(q) = self.queues.get(b) else {
                continue;
            };
            if let Some((i, w)) = q
                .iter()
                .enumerate()
                .find(|(_, w)| !w.exclude.contains(agent))
            {
                let older = match best {
                    Some((seq, _, _)) => w.seq < seq,
                    None => true,
                };
                if older {
                    best = Some((w.seq, b, i));
                }
            }
        }
        let (_, b, i) = best?;
        let b = b.clone();
        let w = self.queues.get_mut(&b)?.remove(i)?;
        // `preferred` only matters when several agents are idle at request time; a freed
        // agent takes the oldest call it may serve.
        let _ = w.preferred;
        if let Some(a) = self.agents.get_mut(agent) {
            a.state = AgentState::Reserved(w.call.clone());
        }
        Some((w.call, agent.clone()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn id<T: std::str::FromStr>(s: &str) -> T
    where
        T::Err: std::fmt::Debug,
    {
        s.parse().unwrap()
    }

    fn setup(t0: Instant) -> Acd {
        let mut acd = Acd::new();
        acd.add_business(id("acme"));
        acd.add_business(id("globex"));
        acd.add_agent(id("alice"), vec![id("acme")], t0 + Duration::from_secs(2))
            .unwrap();
        acd.add_agent(
            id("bob"),
            vec![id("acme"), id("globex")],
            t0 + Duration::from_secs(1),
        )
        .unwrap();
        acd.add_agent(id("carol"), vec![id("globex")], t0).unwrap();
        acd
    }

    #[test]
    fn longest_idle_agent_serving_the_business_is_chosen() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        let c1: CallId = id("c1");
        assert_eq!(
            acd.request(&c1, &id("acme"), None, &[]),
            Assignment::Assigned(id("bob"))
        );
        assert_eq!(
            acd.state(&id("bob")),
            Some(&AgentState::Reserved(c1.clone()))
        );
        assert_eq!(
            acd.request(&id("c2"), &id("acme"), None, &[]),
            Assignment::Assigned(id("alice"))
        );
        assert_eq!(
            acd.request(&id("c3"), &id("acme"), None, &[]),
            Assignment::Queued
        );
        assert_eq!(acd.queue_len(&id("acme")), 1);
    }

    #[test]
    fn preferred_agent_wins_when_idle_and_eligible() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        let alice: AgentId = id("alice");
        assert_eq!(
            acd.request(&id("c1"), &id("acme"), Some(&alice), &[]),
            Assignment::Assigned(alice.clone())
        );
        // alice is reserved now: the next preference falls back to the longest idle.
        assert_eq!(
            acd.request(&id("c2"), &id("acme"), Some(&alice), &[]),
            Assignment::Assigned(id("bob"))
        );
        // carol does not serve acme.
        let mut acd = setup(t0);
        assert_eq!(
            acd.request(&id("c3"), &id("acme"), Some(&id("carol")), &[]),
            Assignment::Assigned(id("bob"))
        );
    }

    #[test]
    fn exclusion_and_unavailable() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        let ex = [id("bob")];
        assert_eq!(
            acd.request(&id("c1"), &id("acme"), None, &ex),
            Assignment::Assigned(id("alice"))
        );
        // Only bob and alice serve acme; alice is reserved, bob excluded: wait for alice.
        assert_eq!(
            acd.request(&id("c2"), &id("acme"), None, &ex),
            Assignment::Queued
        );
        // Excluding both: nobody could ever take it.
        let ex2 = [id("bob"), id("alice")];
        assert_eq!(
            acd.request(&id("c3"), &id("acme"), None, &ex2),
            Assignment::Unavailable
        );
        assert_eq!(
            acd.request(&id("c4"), &id("nobody"), None, &[]),
            Assignment::Unavailable
        );
        // All of globex's agents offline.
        assert!(acd.set_offline(&id("carol")));
        acd.request(&id("c5"), &id("globex"), None, &[]); // takes bob
        assert!(acd.set_offline(&id("bob"))); // bob keeps his call
        assert_eq!(acd.state(&id("bob")), Some(&AgentState::Reserved(id("c5"))));
    }

    #[test]
    fn release_hands_the_agent_to_the_oldest_waiting_call() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        let t1 = t0 + Duration::from_secs(10);
        acd.request(&id("c1"), &id("acme"), None, &[]); // bob
        acd.request(&id("c2"), &id("globex"), None, &[]); // carol
        acd.request(&id("c3"), &id("acme"), None, &[]); // alice
        assert_eq!(
            acd.request(&id("g1"), &id("globex"), None, &[]),
            Assignment::Queued
        );
        assert_eq!(
            acd.request(&id("a1"), &id("acme"), None, &[]),
            Assignment::Queued
        );
        assert_eq!(
            acd.request(&id("a2"), &id("acme"), None, &[]),
            Assignment::Queued
        );
        assert_eq!(acd.position(&id("a2")), Some(1));
        assert!(acd.mark_busy(&id("bob")));
        assert_eq!(acd.state(&id("bob")), Some(&AgentState::Busy(id("c1"))));
        // bob serves both; g1 is older than a1.
        assert_eq!(acd.release(&id("bob"), t1), vec![(id("g1"), id("bob"))]);
        assert_eq!(acd.release(&id("alice"), t1), vec![(id("a1"), id("alice"))]);
        assert!(acd.cancel(&id("a2")));
        assert!(!acd.cancel(&id("a2")));
        assert_eq!(acd.release(&id("carol"), t1), vec![]);
        assert_eq!(acd.state(&id("carol")), Some(&AgentState::Idle));
    }

    #[test]
    fn released_agent_skips_calls_that_excluded_it() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        acd.request(&id("c1"), &id("acme"), None, &[]); // bob
        acd.request(&id("c2"), &id("acme"), None, &[]); // alice
        acd.request(&id("w1"), &id("acme"), None, &[id("bob")]);
        acd.request(&id("w2"), &id("acme"), None, &[]);
        assert_eq!(acd.release(&id("bob"), t0), vec![(id("w2"), id("bob"))]);
        assert_eq!(acd.release(&id("alice"), t0), vec![(id("w1"), id("alice"))]);
    }

    #[test]
    fn longest_idle_uses_release_time() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        acd.request(&id("c1"), &id("acme"), None, &[]); // bob
        acd.request(&id("c2"), &id("acme"), None, &[]); // alice
        acd.release(&id("alice"), t0 + Duration::from_secs(5));
        acd.release(&id("bob"), t0 + Duration::from_secs(6));
        assert_eq!(
            acd.request(&id("c3"), &id("acme"), None, &[]),
            Assignment::Assigned(id("alice"))
        );
    }

    #[test]
    fn online_offline_and_errors() {
        let t0 = Instant::now();
        let mut acd = setup(t0);
        assert!(acd.set_offline(&id("carol")));
        assert_eq!(acd.state(&id("carol")), Some(&AgentState::Offline));
        acd.request(&id("c1"), &id("globex"), None, &[]); // bob
        assert_eq!(
            acd.request(&id("g1"), &id("globex"), None, &[]),
            Assignment::Queued
        );
        assert_eq!(
            acd.set_online(&id("carol"), t0),
            vec![(id("g1"), id("carol"))]
        );
        assert!(matches!(
            acd.add_agent(id("bob"), vec![], t0),
            Err(Error::DuplicateAgent(_))
        ));
        assert!(matches!(
            acd.add_agent(id("dan"), vec![id("x")], t0),
            Err(Error::UnknownBusiness(_))
        ));
        assert!(acd.mark_busy(&id("carol")));
        assert_eq!(acd.state(&id("carol")), Some(&AgentState::Busy(id("g1"))));
        assert!(!acd.mark_busy(&id("carol")), "busy is not reserved");
        assert!(!acd.mark_busy(&id("nobody")));
    }
}
