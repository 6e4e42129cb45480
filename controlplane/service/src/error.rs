//! [`ServiceError`]: why the service refused or failed.

use flows::{AgentId, BusinessId, CallId};

use crate::admission::Overload;

/// Why the service refused a (syntactically valid) request, or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The business is not configured (field `business`).
    #[error("there is no business \"{0}\"")]
    UnknownBusiness(BusinessId),
    /// The agent is not configured.
    #[error("there is no agent \"{agent}\"")]
    UnknownAgent {
        /// The request field naming it.
        field: &'static str,
        /// The agent.
        agent: AgentId,
    },
    /// No such request.
    #[error("there is no request with id {0:?}")]
    NotFound(CallId),
    /// The `Idempotency-Key` was used with another body (422).
    #[error("the Idempotency-Key {0:?} was already used with a different request body")]
    IdempotencyConflict(String),
    /// A rate limit refused the request (429 with `Retry-After`).
    #[error("{message}")]
    Limited {
        /// Seconds until the same request would be let through.
        retry_after_s: u64,
        /// Which limit (`per_number`, `per_ip`, `per_business`).
        which: &'static str,
        /// A human sentence.
        message: String,
    },
    /// Well-formed but refused by policy, e.g. a premium-rate number (422).
    #[error("{message}")]
    Refused {
        /// The request field.
        field: &'static str,
        /// A human sentence.
        message: String,
    },
    /// Cannot take calls now, e.g. out of media ports (503).
    #[error("{0}")]
    Unavailable(String),
    /// Cannot be carried now (503 with `Retry-After`): `reason` names the limit that is
    /// short (`max_calls`, `descriptors`, `media_ports`, `max_setups_per_second`).
    #[error("{message}")]
    Overloaded {
        /// The limit that is short.
        reason: &'static str,
        /// Seconds until a retry may be carried.
        retry_after_s: u64,
        /// A human sentence.
        message: String,
    },
    /// This process drains (an upgrade): it takes no new calls (503 with `Retry-After`).
    #[error(
        "callbridge is draining for a restart and takes no new calls; retry in {retry_after_s} s"
    )]
    Draining {
        /// Seconds until a retry may succeed (elsewhere or in the next process).
        retry_after_s: u64,
    },
    /// Failed on our side (500).
    #[error("{0}")]
    Internal(String),
}

impl From<store::StoreError> for ServiceError {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::IdempotencyConflict(k) => Self::IdempotencyConflict(k),
            other => Self::Internal(format!("store: {other}")),
        }
    }
}

impl ServiceError {
    /// The refusal for an [`Overload`], with a sentence saying what is short.
    #[must_use]
    pub fn overloaded(o: &Overload) -> Self {
        let what = match o.reason {
            "max_calls" => "as many calls in progress as limits.max_calls allows",
            "descriptors" => "as many calls in progress as its open-file limit carries",
            "media_ports" => "no free media port",
            "max_setups_per_second" => {
                "as many call set-ups this second as limits.max_setups_per_second allows"
            }
            _ => "no capacity",
        };
        Self::Overloaded {
            reason: o.reason,
            retry_after_s: o.retry_after_s,
            message: format!(
                "cannot take calls now: callbridge has {what} ({}); retry in {} s",
                o.reason, o.retry_after_s
            ),
        }
    }
}
