//! Agent queues (automatic call distribution).
//!
//! [`Acd`] knows every agent: the businesses it serves, its [`Skill`]s, its wrap-up time and
//! its state ([`AgentState`], shown as a [`Presence`]). A call asks for an agent with
//! [`Acd::request_agent`] (or the older [`Acd::request`]); it gets one at once
//! ([`Assignment::Assigned`], the agent is then [`AgentState::Reserved`] for it), waits in its
//! business's FIFO queue ([`Assignment::Queued`]), or is told that waiting is pointless
//! ([`Assignment::Unavailable`]: no agent that is not offline serves the business with the
//! skill, leaving out excluded ones).
//!
//! Rules:
//!
//! - **Choice**: an agent qualifies for a call when it serves the business, has the required
//!   skill (if any) and is not excluded. The preferred agent takes the call if it is available
//!   and qualifies; otherwise the qualifying agent available the longest does.
//! - **Preferred wait**: with [`Acd::request_agent`], a call whose preferred agent qualifies
//!   but is on a call or in wrap-up is held for it up to [`AcdSettings::preferred_wait`] even
//!   if others are free. When that agent becomes available it takes the call (before older
//!   calls); when the wait expires, [`Acd::tick`] hands the call to anyone qualifying. The hold
//!   ends early if the preferred agent goes away or offline. ([`Acd::request`] never holds.)
//! - **Hand-off**: an agent that becomes available takes the oldest waiting call it qualifies
//!   for, across its businesses (a call held for it first).
//! - **Wrap-up**: [`Acd::release`] after a call the agent talked on puts it in
//!   [`AgentState::WrapUp`] for its [`AgentProfile::wrap_up`] time (0 by default: available
//!   at once); [`Acd::tick`] makes it available when the time is over, as of that end time.
//! - **Presence** from the API ([`Acd::set_presence`]): `available`, `away`, `offline`. An agent
//!   asked to go away or offline while on a call does so when the call is released (no
//!   wrap-up). An agent that does not answer a ringing call can be set away
//!   ([`Acd::no_answer`]).
//! - **Estimated wait** ([`Acd::estimated_wait`]): the mean of the business's last
//!   [`AcdSettings::history_len`] handle times ([`Acd::record_handle_time`];
//!   [`AcdSettings::default_handle_time`] with none) times the calls up to and including this
//!   one, divided by the agents working for the business (available, on a call or in wrap-up).
//!
//! Invariant: after a method that takes `now`, no available agent qualifies for a waiting
//! call. The methods without `now` ([`Acd::request`], [`Acd::mark_busy`], [`Acd::cancel`],
//! [`Acd::set_offline`]) cannot break it except by ending a hold early, which the next
//! [`Acd::tick`] resolves. Time never passes inside: call [`Acd::tick`] at
//! [`Acd::poll_timeout`] (the next wrap-up end or hold expiry). Methods that may hand calls to
//! agents return those hand-offs as `(call, agent)`; the agent is then reserved for the call.
//!
//! The caller (the orchestrator) owns the `Acd` and feeds its answers to the calls'
//! [`crate::ClickToCall`] machines as [`crate::Input::AgentAssigned`] /
//! [`crate::Input::NoAgent`].

mod estimate;
mod presence;
mod shared;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

pub use presence::Presence;
pub use shared::{BackendError, Change, PresenceBackend, SharedAgent, Watcher};

use crate::{AgentId, BusinessId, CallId, Error, Skill};
use estimate::HandleTimes;

/// What an agent is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentState {
    /// Free to take a call.
    Idle,
    /// Held for a call that is ringing it (or about to).
    Reserved(CallId),
    /// Talking on a call.
    Busy(CallId),
    /// After a call, until `until` ([`Acd::tick`] makes it idle).
    WrapUp {
        /// When the wrap-up time is over.
        until: Instant,
    },
    /// Logged in but not taking calls.
    Away,
    /// Logged out; never assigned.
    Offline,
}

/// The answer to [`Acd::request`] and [`Acd::request_agent`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Assignment {
    /// This agent is now reserved for the call.
    Assigned(AgentId),
    /// The call waits in its business's queue; a later hand-off (from [`Acd::release`],
    /// [`Acd::tick`], [`Acd::set_presence`], …) may assign it.
    Queued,
    /// No agent that is not offline and not excluded serves the business with the required
    /// skill (or the business is unknown), so queueing would never end.
    Unavailable,
}

/// An agent's set-up (configuration).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentProfile {
    /// The businesses it takes calls for (each declared with [`Acd::add_business`]).
    pub businesses: Vec<BusinessId>,
    /// What it can do; a call requiring a skill goes only to agents that have it.
    pub skills: Vec<Skill>,
    /// Time after each call it talked on before it takes the next (default 0).
    pub wrap_up: Duration,
}

/// A call's request for an agent ([`Acd::request_agent`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRequest {
    /// The call.
    pub call: CallId,
    /// Its business.
    pub business: BusinessId,
    /// A skill the agent must have.
    pub skill: Option<Skill>,
    /// The agent wanted (e.g. the customer's usual contact), waited for up to
    /// [`AcdSettings::preferred_wait`].
    pub preferred: Option<AgentId>,
    /// Agents not to give it (e.g. the ones that did not answer it already).
    pub exclude: Vec<AgentId>,
}

impl AgentRequest {
    /// A request with no skill, preference or exclusion.
    #[must_use]
    pub fn new(call: CallId, business: BusinessId) -> Self {
        Self {
            call,
            business,
            skill: None,
            preferred: None,
            exclude: Vec::new(),
        }
    }
}

/// ACD-wide settings (configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AcdSettings {
    /// How long a call waits for its busy preferred agent before anyone may take it
    /// (default 30 s; 0: never wait).
    pub preferred_wait: Duration,
    /// How many recent handle times per business feed the estimated wait (default 50).
    pub history_len: usize,
    /// The handle time assumed before any was recorded (default 3 minutes).
    pub default_handle_time: Duration,
}

impl Default for AcdSettings {
    fn default() -> Self {
        Self {
            preferred_wait: Duration::from_secs(30),
            history_len: 50,
            default_handle_time: Duration::from_secs(180),
        }
    }
}

#[derive(Debug)]
struct Agent {
    businesses: Vec<BusinessId>,
    skills: Vec<Skill>,
    wrap_up: Duration,
    state: AgentState,
    /// When the agent last became idle (meaningful while `Idle`).
    idle_since: Instant,
    /// `Away` or `Offline` asked for while on a call; applied when the call is released.
    after_call: Option<Presence>,
}

impl Agent {
    /// Serves `business` with `skill` and is not in `exclude`.
    fn qualifies(
        &self,
        id: &AgentId,
        business: &BusinessId,
        skill: Option<&Skill>,
        exclude: &[AgentId],
    ) -> bool {
        self.businesses.contains(business)
            && skill.is_none_or(|s| self.skills.contains(s))
            && !exclude.contains(id)
    }

    /// On a call or in wrap-up, and staying logged in: it will be available by itself.
    fn coming_back(&self) -> bool {
        self.after_call.is_none()
            && matches!(
                self.state,
                AgentState::Reserved(_) | AgentState::Busy(_) | AgentState::WrapUp { .. }
            )
    }

    /// Available, or reserved, busy, in wrap-up: working for its businesses.
    fn working(&self) -> bool {
        !matches!(self.state, AgentState::Away | AgentState::Offline)
    }
}

/// Idle agents [`Acd::hand_off`] finds one by one before it sorts the rest.
const LAZY_STEPS: usize = 4;

#[derive(Debug)]
struct Waiting {
    call: CallId,
    skill: Option<Skill>,
    exclude: Vec<AgentId>,
    /// Only this agent may take the call until then (a preferred-agent wait).
    hold_for: Option<(AgentId, Instant)>,
    /// Global arrival order across businesses (oldest first).
    seq: u64,
}

/// Agents, their businesses and the per-business queues of waiting calls.
#[derive(Debug)]
pub struct Acd {
    settings: AcdSettings,
    agents: BTreeMap<AgentId, Agent>,
    queues: BTreeMap<BusinessId, VecDeque<Waiting>>,
    handle_times: BTreeMap<BusinessId, HandleTimes>,
    next_seq: u64,
}

impl Default for Acd {
    fn default() -> Self {
        Self::new()
    }
}

impl Acd {
    /// An empty ACD with default [`AcdSettings`].
    #[must_use]
    pub fn new() -> Self {
        Self::with_settings(AcdSettings::default())
    }

    /// An empty ACD.
    #[must_use]
    pub fn with_settings(settings: AcdSettings) -> Self {
        Self {
            settings,
            agents: BTreeMap::new(),
            queues: BTreeMap::new(),
            handle_times: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// The settings.
    #[must_use]
    pub fn settings(&self) -> &AcdSettings {
        &self.settings
    }

    /// Declares a business (calls for undeclared businesses are [`Assignment::Unavailable`]).
    /// Declaring it twice is harmless.
    pub fn add_business(&mut self, business: BusinessId) {
        self.queues.entry(business.clone()).or_default();
        self.handle_times.entry(business).or_default();
    }

    /// Adds an idle agent serving `businesses`, with no skills and no wrap-up time (idle since
    /// `now`).
    ///
    /// # Errors
    /// As [`Acd::add_agent_with`].
    pub fn add_agent(
        &mut self,
        agent: AgentId,
        businesses: Vec<BusinessId>,
        now: Instant,
    ) -> Result<(), Error> {
        let profile = AgentProfile {
            businesses,
            ..AgentProfile::default()
        };
        self.add_agent_with(agent, profile, now)
    }

    /// Adds an idle agent (idle since `now`). Calls already waiting are not handed to it
    /// until the next hand-off ([`Acd::tick`]).
    ///
    /// # Errors
    /// [`Error::DuplicateAgent`] if the id exists, [`Error::UnknownBusiness`] if a business
    /// was not declared with [`Acd::add_business`].
    pub fn add_agent_with(
        &mut self,
        agent: AgentId,
        profile: AgentProfile,
        now: Instant,
    ) -> Result<(), Error> {
        if self.agents.contains_key(&agent) {
            return Err(Error::DuplicateAgent(agent));
        }
        if let Some(b) = profile
            .businesses
            .iter()
            .find(|b| !self.queues.contains_key(*b))
        {
            return Err(Error::UnknownBusiness(b.clone()));
        }
        self.agents.insert(
            agent,
            Agent {
                businesses: profile.businesses,
                skills: profile.skills,
                wrap_up: profile.wrap_up,
                state: AgentState::Idle,
                idle_since: now,
                after_call: None,
            },
        );
        Ok(())
    }

    /// Changes an agent's businesses, skills and wrap-up time (from the API); its state and
    /// its current call are kept. Waiting calls it now qualifies for may be handed to it:
    /// returns those hand-offs.
    ///
    /// # Errors
    /// [`Error::UnknownAgent`]; [`Error::UnknownBusiness`] for a business not declared.
    pub fn update_agent(
        &mut self,
        agent: &AgentId,
        profile: AgentProfile,
        now: Instant,
    ) -> Result<Vec<(CallId, AgentId)>, Error> {
        if let Some(b) = profile
            .businesses
            .iter()
            .find(|b| !self.queues.contains_key(*b))
        {
            return Err(Error::UnknownBusiness(b.clone()));
        }
        let a = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| Error::UnknownAgent(agent.clone()))?;
        a.businesses = profile.businesses;
        a.skills = profile.skills;
        a.wrap_up = profile.wrap_up;
        Ok(self.hand_off(Some(now)))
    }

    /// Asks for an agent for `call` of `business`: `preferred` if it is idle and serves the
    /// business, else the longest-idle agent serving the business that is not in `exclude`.
    /// Otherwise the call joins the end of the business's queue (a call already queued is
    /// moved to the end with the new preferences). Never waits for `preferred` and requires
    /// no skill: see [`Acd::request_agent`] for those.
    pub fn request(
        &mut self,
        call: &CallId,
        business: &BusinessId,
        preferred: Option<&AgentId>,
        exclude: &[AgentId],
    ) -> Assignment {
        let req = AgentRequest {
            call: call.clone(),
            business: business.clone(),
            skill: None,
            preferred: preferred.cloned(),
            exclude: exclude.to_vec(),
        };
        self.request_inner(req, None)
    }

    /// Asks for an agent by the rules of the module docs (skill, preferred agent waited for
    /// up to [`AcdSettings::preferred_wait`] from `now`, longest idle). A call already queued
    /// is moved to the end with the new request.
    pub fn request_agent(&mut self, req: AgentRequest, now: Instant) -> Assignment {
        let hold_until = match self.settings.preferred_wait {
            Duration::ZERO => None,
            wait => now.checked_add(wait),
        };
        self.request_inner(req, hold_until)
    }

    fn request_inner(&mut self, req: AgentRequest, hold_until: Option<Instant>) -> Assignment {
        self.cancel(&req.call);
        if !self.queues.contains_key(&req.business) {
            return Assignment::Unavailable;
        }
        let qualifies = |id: &AgentId, a: &Agent| {
            a.qualifies(id, &req.business, req.skill.as_ref(), &req.exclude)
        };
        let mut hold_for = None;
        if let Some(p) = &req.preferred {
            if let Some(a) = self.agents.get(p).filter(|a| qualifies(p, a)) {
                if a.state == AgentState::Idle {
                    self.reserve(p, &req.call);
                    return Assignment::Assigned(p.clone());
                }
                if a.coming_back() {
                    hold_for = hold_until.map(|until| (p.clone(), until));
                }
            }
        }
        if hold_for.is_none() {
            let best = self
                .agents
                .iter()
                .filter(|(id, a)| a.state == AgentState::Idle && qualifies(id, a))
                .min_by_key(|(_, a)| a.idle_since)
                .map(|(id, _)| id.clone());
            if let Some(id) = best {
                self.reserve(&id, &req.call);
                return Assignment::Assigned(id);
            }
            if !self.can_serve(&req.business, req.skill.as_ref(), &req.exclude) {
                return Assignment::Unavailable;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(q) = self.queues.get_mut(&req.business) {
            q.push_back(Waiting {
                call: req.call,
                skill: req.skill,
                exclude: req.exclude,
                hold_for,
                seq,
            });
        }
        Assignment::Queued
    }

    /// Whether an agent that is not offline serves `business` with `skill` (leaving out
    /// `exclude`), i.e. whether a request could ever be assigned rather than be
    /// [`Assignment::Unavailable`]. Reserves nothing (a customer-first call asks before
    /// dialling the customer).
    #[must_use]
    pub fn can_serve(&self, business: &BusinessId, skill: Option<&Skill>, ex: &[AgentId]) -> bool {
        self.queues.contains_key(business)
            && self.agents.iter().any(|(id, a)| {
                a.state != AgentState::Offline && a.qualifies(id, business, skill, ex)
            })
    }

    fn reserve(&mut self, agent: &AgentId, call: &CallId) {
        if let Some(a) = self.agents.get_mut(agent) {
            a.state = AgentState::Reserved(call.clone());
        }
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

    /// Frees an agent from its call at `now`: after talking ([`AgentState::Busy`]) it goes
    /// into wrap-up for its wrap-up time, if any; a reserved agent (the call never reached
    /// it) is idle at once; an agent asked to go away or offline meanwhile does so now. Then
    /// hands available agents to waiting calls and returns those hand-offs. An agent in any
    /// other state stays as it is.
    pub fn release(&mut self, agent: &AgentId, now: Instant) -> Vec<(CallId, AgentId)> {
        let Some(a) = self.agents.get_mut(agent) else {
            return Vec::new();
        };
        let talked = match a.state {
            AgentState::Busy(_) => true,
            AgentState::Reserved(_) => false,
            _ => return self.hand_off(Some(now)),
        };
        a.state = match a.after_call.take() {
            Some(Presence::Offline) => AgentState::Offline,
            Some(_) => AgentState::Away,
            None if talked && !a.wrap_up.is_zero() => match now.checked_add(a.wrap_up) {
                Some(until) => AgentState::WrapUp { until },
                None => AgentState::Idle,
            },
            None => AgentState::Idle,
        };
        a.idle_since = now;
        self.hand_off(Some(now))
    }

    /// The agent did not answer `call` within the ring timeout: if it is still reserved for
    /// that call (or already idle), it is set [`AgentState::Away`] until it says it is
    /// available again (offline if it had asked for that). Calls held for it are then free
    /// for others; returns the hand-offs. An agent reserved for another call, talking, in
    /// wrap-up, away or offline is left as it is. Call it instead of [`Acd::release`], then
    /// request another agent for the call.
    pub fn no_answer(
        &mut self,
        agent: &AgentId,
        call: &CallId,
        now: Instant,
    ) -> Vec<(CallId, AgentId)> {
        let Some(a) = self.agents.get_mut(agent) else {
            return Vec::new();
        };
        match &a.state {
            AgentState::Reserved(c) if c == call => {}
            AgentState::Idle => {}
            _ => return Vec::new(),
        }
        a.state = match a.after_call.take() {
            Some(Presence::Offline) => AgentState::Offline,
            _ => AgentState::Away,
        };
        self.hand_off(Some(now))
    }

    /// Sets an agent's presence from the API: `available` (from away, offline or wrap-up:
    /// idle since `now`; on a call: cancels a pending away/offline), `away` or `offline` (at
    /// once, or when the call it is on is released). Returns the hand-offs this made possible.
    ///
    /// # Errors
    /// [`Error::PresenceNotSettable`] for `on_call` and `wrap_up` (set by calls only),
    /// [`Error::UnknownAgent`].
    pub fn set_presence(
        &mut self,
        agent: &AgentId,
        presence: Presence,
        now: Instant,
    ) -> Result<Vec<(CallId, AgentId)>, Error> {
        if !presence.settable() {
            return Err(Error::PresenceNotSettable(presence));
        }
        let a = self
            .agents
            .get_mut(agent)
            .ok_or_else(|| Error::UnknownAgent(agent.clone()))?;
        let on_call = matches!(a.state, AgentState::Reserved(_) | AgentState::Busy(_));
        match presence {
            Presence::Available if on_call => a.after_call = None,
            Presence::Available => {
                if a.state != AgentState::Idle {
                    a.state = AgentState::Idle;
                    a.idle_since = now;
                }
            }
            _ if on_call => a.after_call = Some(presence),
            Presence::Offline => a.state = AgentState::Offline,
            _ => a.state = AgentState::Away,
        }
        Ok(self.hand_off(Some(now)))
    }

    /// Logs an agent out (as [`Acd::set_presence`] `offline`, without hand-offs: prefer that).
    /// A reserved or busy agent keeps its call; it goes offline when released. Returns false
    /// for an unknown agent.
    pub fn set_offline(&mut self, agent: &AgentId) -> bool {
        match self.agents.get_mut(agent) {
            Some(a) => {
                if matches!(a.state, AgentState::Reserved(_) | AgentState::Busy(_)) {
                    a.after_call = Some(Presence::Offline);
                } else {
                    a.state = AgentState::Offline;
                }
                true
            }
            None => false,
        }
    }

    /// Logs an offline agent in (idle since `now`) and returns the hand-offs (an agent in any
    /// other state is left as it is; [`Acd::set_presence`] also brings back away agents).
    pub fn set_online(&mut self, agent: &AgentId, now: Instant) -> Vec<(CallId, AgentId)> {
        match self.agents.get_mut(agent) {
            Some(a) if a.state == AgentState::Offline => {
                a.state = AgentState::Idle;
                a.idle_since = now;
            }
            _ => return Vec::new(),
        }
        self.hand_off(Some(now))
    }

    /// Lets time pass up to `now`: wrap-ups that are over become idle (as of their end) and
    /// expired preferred-agent waits end; then available agents are handed to waiting calls.
    /// Returns those hand-offs.
    pub fn tick(&mut self, now: Instant) -> Vec<(CallId, AgentId)> {
        for a in self.agents.values_mut() {
            if let AgentState::WrapUp { until } = a.state {
                if until <= now {
                    a.state = AgentState::Idle;
                    a.idle_since = until;
                }
            }
        }
        for q in self.queues.values_mut() {
            for w in q.iter_mut() {
                if w.hold_for.as_ref().is_some_and(|(_, until)| *until <= now) {
                    w.hold_for = None;
                }
            }
        }
        self.hand_off(Some(now))
    }

    /// When [`Acd::tick`] next has something to do (a wrap-up ending, a preferred wait
    /// expiring), if ever.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        let wrap_ups = self.agents.values().filter_map(|a| match a.state {
            AgentState::WrapUp { until } => Some(until),
            _ => None,
        });
        let holds = self
            .queues
            .values()
            .flatten()
            .filter_map(|w| w.hold_for.as_ref())
            .filter(|hold| self.hold_active(hold, None))
            .map(|(_, until)| *until);
        wrap_ups.chain(holds).min()
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

    /// An agent's presence.
    #[must_use]
    pub fn presence(&self, agent: &AgentId) -> Option<Presence> {
        self.agents.get(agent).map(|a| a.state.presence())
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

    /// Remembers how long one call of `business` took, talk plus wrap-up (the last
    /// [`AcdSettings::history_len`] are kept). Ignored for an undeclared business.
    pub fn record_handle_time(&mut self, business: &BusinessId, handled: Duration) {
        if let Some(h) = self.handle_times.get_mut(business) {
            h.record(handled, self.settings.history_len);
        }
    }

    /// The estimated wait of the call at 0-based queue `position` of `business` (see the
    /// module docs). `None` for an undeclared business or when no agent is working for it.
    #[must_use]
    pub fn estimated_wait(&self, business: &BusinessId, position: usize) -> Option<Duration> {
        let history = self.handle_times.get(business)?;
        let agents = self
            .agents
            .values()
            .filter(|a| a.working() && a.businesses.contains(business))
            .count();
        let agents = u32::try_from(agents).unwrap_or(u32::MAX);
        if agents == 0 {
            return None;
        }
        let mean = history.mean(self.settings.default_handle_time);
        Some(estimate::wait(mean, position, agents))
    }

    /// Whether a hold still keeps others from a call: its time has not passed (at `now`; any
    /// time when `None`) and its agent is coming back by itself.
    fn hold_active(&self, (agent, until): &(AgentId, Instant), now: Option<Instant>) -> bool {
        now.is_none_or(|n| n < *until) && self.agents.get(agent).is_some_and(Agent::coming_back)
    }

    /// Hands every idle agent, longest idle first, to the call it should take.
    ///
    /// Usually one call waits and the first agent takes it, while thousands may be idle: the
    /// next agent is found by a scan (no copy, no sort) for the first [`LAZY_STEPS`] agents,
    /// and only if calls still wait after them are the rest sorted. It stops once no call
    /// waits ([`Acd::dispatch`] would find nothing for anyone). The order, and so the result,
    /// is that of sorting every idle agent by `(idle_since, id)`: a dispatch changes no other
    /// agent's state.
    fn hand_off(&mut self, now: Option<Instant>) -> Vec<(CallId, AgentId)> {
        let mut out = Vec::new();
        let mut after: Option<(Instant, AgentId)> = None;
        for _ in 0..LAZY_STEPS {
            if self.nobody_waits() {
                return out;
            }
            let next = self
                .idle_after(after.as_ref())
                .min()
                .map(|(t, id)| (t, id.clone()));
            let Some((t, id)) = next else {
                return out;
            };
            out.extend(self.dispatch(&id, now));
            after = Some((t, id));
        }
        if self.nobody_waits() {
            return out;
        }
        let mut idle: Vec<(Instant, AgentId)> = self
            .idle_after(after.as_ref())
            .map(|(t, id)| (t, id.clone()))
            .collect();
        idle.sort();
        out.extend(
            idle.into_iter()
                .filter_map(|(_, id)| self.dispatch(&id, now)),
        );
        out
    }

    /// No call waits in any queue.
    fn nobody_waits(&self) -> bool {
        self.queues.values().all(VecDeque::is_empty)
    }

    /// Idle agents as `(idle_since, id)`, those after `after` in that order only.
    fn idle_after<'a>(
        &'a self,
        after: Option<&'a (Instant, AgentId)>,
    ) -> impl Iterator<Item = (Instant, &'a AgentId)> + 'a {
        self.agents
            .iter()
            .filter(|(_, a)| a.state == AgentState::Idle)
            .map(|(id, a)| (a.idle_since, id))
            .filter(move |k| after.is_none_or(|(t, i)| *k > (*t, i)))
    }

    /// Gives an idle agent the oldest waiting call held for it, else the oldest waiting call it
    /// qualifies for.
    fn dispatch(&mut self, agent: &AgentId, now: Option<Instant>) -> Option<(CallId, AgentId)> {
        let a = self.agents.get(agent)?;
        if a.state != AgentState::Idle {
            return None;
        }
        // (held for this agent, arrival) ordering: held first, then oldest.
        let mut best: Option<(bool, u64, &BusinessId, usize)> = None;
        for b in &a.businesses {
            let Some(q) = self.queues.get(b) else {
                continue;
            };
            for (i, w) in q.iter().enumerate() {
                let mine = w.hold_for.as_ref().is_some_and(|(p, _)| p == agent);
                let allowed = match &w.hold_for {
                    Some(hold) => mine || !self.hold_active(hold, now),
                    None => true,
                };
                if !allowed || !a.qualifies(agent, b, w.skill.as_ref(), &w.exclude) {
                    continue;
                }
                let better = best.is_none_or(|(bm, bs, _, _)| (mine, bs) > (bm, w.seq));
                if better {
                    best = Some((mine, w.seq, b, i));
                }
            }
        }
        let (_, _, b, i) = best?;
        let b = b.clone();
        let w = self.queues.get_mut(&b)?.remove(i)?;
        self.reserve(agent, &w.call);
        Some((w.call, agent.clone()))
    }
}
