//! callbridge flows: the click-to-call state machine and the agent queues. Pure logic.
//!
//! ```text
//!  http_api ──CallRequest──► orchestrator (bin) ──Input──► ClickToCall ──Output──► orchestrator
//!                                 │   ▲                                                │
//!                                 ▼   │ AgentAssigned / NoAgent                        ├─► sip (INVITE, CANCEL, BYE)
//!                                 Acd ┘                                                └─► dp_api::Command
//! ```
//!
//! Contract: nothing here does I/O, spawns, awaits or reads a clock. Time comes in as `now`
//! and timers go out as [`Output::SetTimer`]; tests drive the machines on fake time.
//!
//! - [`ids`]: [`CallId`], [`AgentId`], [`BusinessId`], [`Skill`], [`Target`] (E.164 number or
//!   SIP URI).
//! - [`click_to_call`]: [`ClickToCall`], one per call, for both the queued click-to-call
//!   flavour and the "bridge this customer and this agent now" flavour ([`AgentSource`]).
//! - [`acd`]: [`Acd`], agents (skills, presence, wrap-up), businesses and FIFO queues with
//!   preferred-agent waits and estimated waiting times.
//! - [`limits`]: [`limits::RateLimiter`], per-number / per-IP / per-business sliding-window
//!   limits and the per-business cap on calls in progress.
//! - [`numbers`]: [`numbers::NumberPolicy`], which customer numbers a business may have
//!   called (libphonenumber metadata: no premium-rate and similar), normalized to E.164.
//! - [`hours`]: [`hours::OpeningHours`], a business's weekly hours and holidays in its time
//!   zone (jiff, bundled tz database): open now?, next opening/closing, scheduling.
//! - [`retry`]: [`retry::RetryPolicy`], when a busy / unanswered (or interrupted) customer is
//!   called again, inside opening hours.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod acd;
pub mod click_to_call;
pub mod hours;
pub mod ids;
pub mod limits;
pub mod numbers;
pub mod retry;

pub use acd::{Acd, AcdSettings, AgentProfile, AgentRequest, AgentState, Assignment, Presence};
pub use click_to_call::{
    AgentSource, CallPlan, ClickToCall, FailReason, FlowTimers, Input, LegInput, Legs, MediaPolicy,
    Outcome, Output, Phase, Reservation, Role, SipAction, Status, TimerKind,
};
pub use ids::{AgentId, BusinessId, CallId, SipUri, Skill, Target};

/// Everything that can go wrong in this crate: bad input text (ids, targets, opening hours,
/// presence names) and ACD mistakes. (Rate-limit and number-policy refusals are answers, not
/// errors: [`limits::Limited`], [`numbers::NumberRefusal`].)
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An id is empty, too long or has characters outside `[A-Za-z0-9_.-]`.
    #[error("invalid {kind}: {reason}")]
    BadId {
        /// Which kind of id.
        kind: &'static str,
        /// Why.
        reason: String,
    },
    /// A `+…` string is not an E.164 number.
    #[error("{number:?} is not an E.164 number: {reason}")]
    BadNumber {
        /// The input.
        number: String,
        /// Why.
        reason: String,
    },
    /// A `sip:` string is not a usable SIP URI.
    #[error("{uri:?} is not a valid SIP URI: {reason}")]
    BadSipUri {
        /// The input.
        uri: String,
        /// Why.
        reason: String,
    },
    /// Neither `+…` nor `sip:…`.
    #[error("{input:?} is neither an E.164 number (like +15551234567) nor a SIP URI (like sip:bob@example.com)")]
    BadTarget {
        /// The input.
        input: String,
    },
    /// An agent id was added twice.
    #[error("agent {0} already exists")]
    DuplicateAgent(AgentId),
    /// An opening-hours setting (weekly entry, holiday or time zone) is not understood.
    #[error("opening hours: {entry:?}: {reason}")]
    BadHours {
        /// The entry as written.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Not a presence name (`available`, `on_call`, `wrap_up`, `away`, `offline`).
    #[error("{0:?} is not a presence (available, on_call, wrap_up, away or offline)")]
    BadPresence(String),
    /// `on_call` and `wrap_up` follow calls; the API cannot set them.
    #[error("presence {0} is set by calls, not by request (use available, away or offline)")]
    PresenceNotSettable(acd::Presence),
    /// No agent has this id.
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// An agent serves a business that was not declared.
    #[error("unknown business {0}")]
    UnknownBusiness(BusinessId),
}
