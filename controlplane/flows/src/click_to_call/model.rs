//! The machine's vocabulary: which leg ([`Role`]), how a call ends ([`Outcome`],
//! [`FailReason`]), where it is ([`Phase`], [`Status`]), what it is started with ([`CallPlan`],
//! [`FlowTimers`], [`MediaPolicy`], [`AgentSource`], [`Legs`]), what it reacts to ([`Input`],
//! [`LegInput`]) and what it asks for ([`Output`], [`SipAction`], [`TimerKind`]).

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dp_api::{Clip, Codec, Command, Event, Latch, LegId, SrcMismatch};

use crate::{AgentId, CallId, Target};

/// Which leg of the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The visitor who asked to be called back (called first).
    Customer,
    /// The agent (CSR), called while the customer hears the announcement.
    Agent,
}

impl Role {
    /// `"customer"` or `"agent"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Agent => "agent",
        }
    }
}

/// Why a call failed. The names ([`FailReason::as_str`]) are part of the HTTP contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailReason {
    /// The customer's line was busy (486, 600).
    CustomerBusy,
    /// The customer did not answer (408, 480, timeout, our ring timer).
    CustomerNoAnswer,
    /// The customer's side refused the call (any other final error response).
    CustomerRejected,
    /// The customer hung up before reaching an agent.
    CustomerHungUp,
    /// The customer's address could not be reached at all, before any answer: ICMP
    /// unreachable, a connection refused, a host name that does not resolve (a transport
    /// error, RFC 3261 17.1.4). Known at once, without ringing out the ring time.
    CustomerUnreachable,
    /// No agent could be found.
    NoAgent,
    /// Agents were called but none answered.
    AgentNoAnswer,
    /// The last agent called could not be reached at all (as for the customer), and no
    /// other agent was tried after it.
    AgentUnreachable,
    /// A bridged leg stopped sending media.
    MediaTimeout,
    /// Something on our side failed.
    Internal,
}

impl FailReason {
    /// Every reason, in [`FailReason::as_str`]'s order: the one list the README, the module
    /// docs and the status page's texts are checked against (`click_to_call/names.rs`).
    pub const ALL: [Self; 10] = [
        Self::CustomerBusy,
        Self::CustomerNoAnswer,
        Self::CustomerRejected,
        Self::CustomerHungUp,
        Self::CustomerUnreachable,
        Self::NoAgent,
        Self::AgentNoAnswer,
        Self::AgentUnreachable,
        Self::MediaTimeout,
        Self::Internal,
    ];

    /// The contract name, e.g. `"customer_busy"`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::CustomerBusy => "customer_busy",
            Self::CustomerNoAnswer => "customer_no_answer",
            Self::CustomerRejected => "customer_rejected",
            Self::CustomerHungUp => "customer_hung_up",
            Self::CustomerUnreachable => "customer_unreachable",
            Self::NoAgent => "no_agent",
            Self::AgentNoAnswer => "agent_no_answer",
            Self::AgentUnreachable => "agent_unreachable",
            Self::MediaTimeout => "media_timeout",
            Self::Internal => "internal",
        }
    }

    /// Maps the customer's final SIP error status: 486/600 busy, 408/480 no answer, anything
    /// else rejected.
    #[must_use]
    pub const fn from_customer_status(status: u16) -> Self {
        match status {
            486 | 600 => Self::CustomerBusy,
            408 | 480 => Self::CustomerNoAnswer,
            _ => Self::CustomerRejected,
        }
    }
}

/// How an ended call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The customer talked to an agent and one side hung up.
    Completed,
    /// The call failed.
    Failed(FailReason),
    /// Cancelled through the API.
    Cancelled,
}

/// Where a call is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Waiting for the ACD to assign an agent.
    Queued,
    /// Waiting for the requested contact time.
    Scheduled,
    /// Ringing the customer (agent first: an agent is reserved; customer first: none yet).
    CallingCustomer,
    /// The customer hears the announcement; the next agent is being looked for.
    Announcing,
    /// The customer hears the announcement while the agent rings.
    CallingAgent,
    /// Customer and agent talk.
    Bridged,
    /// Over.
    Ended(Outcome),
}

/// An outward status (the HTTP contract): [`Status::as_str`] gives its name and
/// [`Status::reason`] the failure reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// `queued`
    Queued,
    /// `scheduled`
    Scheduled,
    /// `calling_customer`
    CallingCustomer,
    /// `announcing`
    Announcing,
    /// `calling_agent`
    CallingAgent,
    /// `bridged`
    Bridged,
    /// `completed`
    Completed,
    /// `failed`, with its reason.
    Failed(FailReason),
    /// `cancelled`
    Cancelled,
}

impl Status {
    /// The contract name, e.g. `"calling_customer"` (`"failed"` for every failure).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Scheduled => "scheduled",
            Self::CallingCustomer => "calling_customer",
            Self::Announcing => "announcing",
            Self::CallingAgent => "calling_agent",
            Self::Bridged => "bridged",
            Self::Completed => "completed",
            Self::Failed(_) => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    /// The failure reason, for `failed`.
    #[must_use]
    pub const fn reason(self) -> Option<FailReason> {
        match self {
            Self::Failed(r) => Some(r),
            _ => None,
        }
    }

    /// True for `completed`, `failed` and `cancelled`.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed(_) | Self::Cancelled)
    }

    /// The status a phase shows.
    #[must_use]
    pub const fn of(phase: Phase) -> Self {
        match phase {
            Phase::Queued => Self::Queued,
            Phase::Scheduled => Self::Scheduled,
            Phase::CallingCustomer => Self::CallingCustomer,
            Phase::Announcing => Self::Announcing,
            Phase::CallingAgent => Self::CallingAgent,
            Phase::Bridged => Self::Bridged,
            Phase::Ended(Outcome::Completed) => Self::Completed,
            Phase::Ended(Outcome::Failed(r)) => Self::Failed(r),
            Phase::Ended(Outcome::Cancelled) => Self::Cancelled,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Failed(r) => write!(f, "failed/{}", r.as_str()),
            s => f.write_str(s.as_str()),
        }
    }
}

/// The machine's timers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimerKind {
    /// The requested contact time has come.
    ContactTime,
    /// Waited too long for an agent.
    QueueTimeout,
    /// The customer did not answer in time.
    CustomerRing,
    /// The agent did not answer in time.
    AgentRing,
}

/// Durations and limits for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowTimers {
    /// How long the customer may ring before we CANCEL (default 30 s).
    pub customer_ring: Duration,
    /// How long an agent may ring before we CANCEL and try the next (default 20 s).
    pub agent_ring: Duration,
    /// How many agents to call before giving up (default 3; 0 is treated as 1).
    pub max_agent_attempts: u32,
    /// How long to wait for a free agent, each time one is requested (default 120 s).
    pub queue_timeout: Duration,
}

impl Default for FlowTimers {
    fn default() -> Self {
        Self {
            customer_ring: Duration::from_secs(30),
            agent_ring: Duration::from_secs(20),
            max_agent_attempts: 3,
            queue_timeout: Duration::from_secs(120),
        }
    }
}

/// How the call's media legs are created (copied into each [`LegSpec`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaPolicy {
    /// How legs learn where their peer really sends from; default [`Latch::Signalled`] (any
    /// port of the IP in the peer's SDP, never another address: see [`Latch`]).
    pub latch: Latch,
    /// What to do with packets from other sources; default [`SrcMismatch::Drop`].
    pub src_mismatch: SrcMismatch,
    /// Report a media timeout after this long without RTP; default 30 s.
    pub media_timeout: Option<Duration>,
}

impl Default for MediaPolicy {
    fn default() -> Self {
        Self {
            latch: Latch::Signalled,
            src_mismatch: SrcMismatch::Drop,
            media_timeout: Some(Duration::from_secs(30)),
        }
    }
}

/// Where the agent comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentSource {
    /// Ask the ACD ([`Output::RequestAgent`]); retry other agents up to
    /// [`FlowTimers::max_agent_attempts`].
    Acd {
        /// The agent the visitor asked for, if any.
        preferred: Option<AgentId>,
    },
    /// The agent is given up front (`POST /v1/bridges`): no ACD outputs, one attempt.
    Given {
        /// The agent's id when the request named one (informational).
        agent: Option<AgentId>,
        /// Where to call the agent.
        target: Target,
    },
}

/// In which order a call request (outbound, agent from the ACD) reserves the agent and calls
/// the customer; per business (`reservation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Reservation {
    /// `agent_first` (the default): an agent is reserved, then the customer is called, then
    /// the agent. No customer is called back unless an agent is waiting for them, and the wait
    /// on the announcement is only the agent's ring time; but each agent stays reserved
    /// while the customer's phone rings (up to the customer ring time), even for a customer
    /// who never answers.
    #[default]
    AgentFirst,
    /// `customer_first`: the customer is called with no agent reserved (only checked that an
    /// agent serving the business is logged in, [`Output::CheckAgents`]); once the customer
    /// answered, the announcement covers the wait while the ACD reserves an agent (up to
    /// [`FlowTimers::queue_timeout`], then `failed/no_agent`). A customer who does not answer
    /// never held an agent.
    CustomerFirst,
}

impl Reservation {
    /// `"agent_first"` or `"customer_first"` (configuration and API name).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::AgentFirst => "agent_first",
            Self::CustomerFirst => "customer_first",
        }
    }

    /// The order named `name` ([`Reservation::as_str`]), if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        [Self::AgentFirst, Self::CustomerFirst]
            .into_iter()
            .find(|r| r.as_str() == name)
    }
}

/// Everything one call needs; read-only after [`ClickToCall::new`].
#[derive(Debug, Clone)]
pub struct CallPlan {
    /// The call.
    pub id: CallId,
    /// Where to call the customer.
    pub customer: Target,
    /// Where the agent comes from.
    pub agent: AgentSource,
    /// Call the customer no earlier than this (`None`: now).
    pub contact_at: Option<Instant>,
    /// The media legs when allocated up front (`None`: asked for with
    /// [`Output::AllocateLegs`] when the customer is dialled).
    pub legs: Option<Legs>,
    /// Played, looping, to the customer while the agent is called.
    pub announcement: Arc<Clip>,
    /// Ring times and limits.
    pub timers: FlowTimers,
    /// How legs are created.
    pub media: MediaPolicy,
    /// The customer called us (an INVITE from a trunk to the business's number): the machine
    /// asks the ACD for an agent at once, answers the customer ([`SipAction::Answer`]) as
    /// soon as it has media legs, and plays the announcement while the customer waits.
    pub inbound: bool,
    /// Early media from the agent's side (a 183 with SDP) is bridged to the customer, who then
    /// hears the agent's ringback instead of the announcement (`agent_early_media`).
    pub agent_early_media: bool,
    /// Agent first or customer first (outbound calls with [`AgentSource::Acd`]; inbound
    /// callers and given agents ignore it).
    pub reservation: Reservation,
}

/// A call's two media legs, on one worker so that they can be bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Legs {
    /// The customer's media leg.
    pub customer: LegId,
    /// The agent's media leg.
    pub agent: LegId,
}

/// What the orchestrator learned about one SIP leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegInput {
    /// 1xx: it rings.
    Progress,
    /// 1xx with an SDP answer (183 Session Progress): early media, e.g. the agent's own
    /// ringback tone, can flow.
    EarlyMedia {
        /// The peer's RTP address from the SDP.
        remote: std::net::SocketAddr,
        /// The codec it chose.
        codec: Codec,
    },
    /// 2xx with a usable SDP answer.
    Answered {
        /// The peer's RTP address from the SDP.
        remote: std::net::SocketAddr,
        /// The codec it chose.
        codec: Codec,
    },
    /// 2xx whose SDP we cannot use (no common codec, no address). The dialog is up: the
    /// machine asks to hang it up.
    AnswerUnusable,
    /// A final error response (3xx–6xx).
    Rejected {
        /// The status code.
        status: u16,
    },
    /// The INVITE transaction timed out (no final response).
    Timeout,
    /// The peer could not be reached at all: a transport error before any final response
    /// (ICMP unreachable, connection refused) or a host name that does not resolve.
    Unreachable,
    /// The peer hung up (BYE) an answered leg.
    Bye,
    /// The leg's dialog ended for another reason we did not ask for (a broken dialog, 481,
    /// a failure on our side, …).
    Ended,
}

/// Everything the machine reacts to.
#[derive(Debug, Clone)]
pub enum Input {
    /// The ACD reserved this agent for the call (answer to [`Output::RequestAgent`]).
    AgentAssigned(AgentId, Target),
    /// The ACD has no agent and never will for this request ([`crate::Assignment::Unavailable`]).
    NoAgent,
    /// About the customer's leg.
    Customer(LegInput),
    /// About the current agent's leg.
    Agent(LegInput),
    /// A data-plane event about one of the call's legs (others are ignored).
    Media(Event),
    /// A timer set with [`Output::SetTimer`] expired.
    TimerFired(TimerKind),
    /// The media legs asked for with [`Output::AllocateLegs`].
    LegsAllocated(Legs),
    /// No media legs can be had: the call fails (`failed/internal`).
    NoLegs,
    /// The answer to [`Output::CheckAgents`]: whether an agent that is not offline serves
    /// the call's business (with its skill), i.e. whether waiting for one could end.
    AgentsChecked(bool),
    /// Cancel the call (API).
    Cancel,
}

/// A SIP instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipAction {
    /// Send an INVITE offering the leg's local media port.
    Invite {
        /// Which leg.
        role: Role,
        /// Whom to call.
        target: Target,
        /// The media leg to offer in SDP.
        leg: LegId,
    },
    /// Answer the leg's incoming INVITE with the leg's local media (inbound calls); the
    /// orchestrator answers [`Input::Customer`] with what the offer negotiated
    /// ([`LegInput::Answered`] or [`LegInput::AnswerUnusable`]).
    Answer {
        /// Which leg.
        role: Role,
        /// The media leg to answer with.
        leg: LegId,
    },
    /// End the leg: CANCEL if unanswered, BYE if answered.
    Hangup {
        /// Which leg.
        role: Role,
    },
}

/// One thing for the orchestrator to do (see the module docs).
#[derive(Debug, Clone)]
pub enum Output {
    /// Signal.
    Sip(SipAction),
    /// Command the data plane.
    Media(Command),
    /// Record a status change.
    Status(Status),
    /// Start (or restart) a timer.
    SetTimer {
        /// Which.
        kind: TimerKind,
        /// From now.
        after: Duration,
    },
    /// Stop a timer.
    CancelTimer(TimerKind),
    /// Ask the ACD for an agent (`Acd::request`), preferring `preferred`, excluding agents
    /// already tried.
    RequestAgent {
        /// The visitor's preferred agent.
        preferred: Option<AgentId>,
        /// Agents already tried for this call.
        exclude: Vec<AgentId>,
    },
    /// Customer first, before dialling: ask whether any agent could take the call
    /// (`Acd::can_serve`: one that is not offline serves the business with the skill),
    /// reserving none; answer [`Input::AgentsChecked`].
    CheckAgents,
    /// Leave the ACD queue (`Acd::cancel`).
    WithdrawAgentRequest,
    /// The reserved agent answered (`Acd::mark_busy`).
    AgentConnected(AgentId),
    /// The agent is free again (`Acd::release`, no wrap-up time).
    ReleaseAgent(AgentId),
    /// Allocate the call's media legs and answer [`Input::LegsAllocated`] or
    /// [`Input::NoLegs`].
    AllocateLegs,
    /// The machine is done; legs removed, agent released.
    Finished,
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sip(SipAction::Invite { role, target, leg }) => {
                write!(f, "invite {} {target} {leg}", role.as_str())
            }
            Self::Sip(SipAction::Answer { role, leg }) => {
                write!(f, "answer {} {leg}", role.as_str())
            }
            Self::Sip(SipAction::Hangup { role }) => write!(f, "hangup {}", role.as_str()),
            Self::Media(Command::AddLeg(spec)) => write!(f, "add_leg {}", spec.id),
            Self::Media(Command::SetRemote { leg, remote, codec }) => {
                write!(f, "set_remote {leg} {remote} {codec:?}")
            }
            Self::Media(Command::Play { leg, clip, looping }) => {
                write!(
                    f,
                    "play {leg} {}{}",
                    clip.name,
                    if *looping { " looping" } else { "" }
                )
            }
            Self::Media(Command::Bridge { a, b }) => write!(f, "bridge {a} {b}"),
            Self::Media(Command::Unbridge { leg }) => write!(f, "unbridge {leg}"),
            Self::Media(Command::RemoveLeg { leg }) => write!(f, "remove_leg {leg}"),
            Self::Media(c) => write!(f, "media {c:?}"),
            Self::Status(s) => write!(f, "status {s}"),
            Self::SetTimer { kind, after } => {
                write!(f, "set_timer {kind:?} {}s", after.as_secs_f64())
            }
            Self::CancelTimer(kind) => write!(f, "cancel_timer {kind:?}"),
            Self::RequestAgent { preferred, exclude } => {
                write!(f, "request_agent")?;
                if let Some(p) = preferred {
                    write!(f, " preferred={p}")?;
                }
                if !exclude.is_empty() {
                    let ex: Vec<&str> = exclude.iter().map(AgentId::as_str).collect();
                    write!(f, " exclude={}", ex.join(","))?;
                }
                Ok(())
            }
            Self::CheckAgents => write!(f, "check_agents"),
            Self::WithdrawAgentRequest => write!(f, "withdraw_agent_request"),
            Self::AgentConnected(a) => write!(f, "agent_connected {a}"),
            Self::ReleaseAgent(a) => write!(f, "release_agent {a}"),
            Self::AllocateLegs => write!(f, "allocate_legs"),
            Self::Finished => write!(f, "finished"),
        }
    }
}
