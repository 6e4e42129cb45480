//! [`ServiceError`]: why the service refused or failed.

use flows::{AgentId, BusinessId, CallId};

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
