//! [`AppState`] and the [`CallService`] trait the HTTP layer calls.

use std::sync::Arc;

use flows::{AgentId, BusinessId};

use crate::model::{BridgeRequest, BusinessInfo, CallRequest, CallView};
use crate::ApiError;

/// Why the service refused a (syntactically valid) request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The business is not configured (400, field `business`).
    #[error("unknown business {0}")]
    UnknownBusiness(BusinessId),
    /// The agent is not configured (400, field `preferred_agent` or `agent`).
    #[error("unknown agent {0}")]
    UnknownAgent(AgentId),
    /// Another problem with one field (400).
    #[error("{message}")]
    Invalid {
        /// The JSON field.
        field: &'static str,
        /// A human sentence.
        message: String,
    },
    /// Cannot take calls now, e.g. out of media ports (503).
    #[error("{0}")]
    Unavailable(String),
    /// Failed on our side (500).
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    /// The API error, naming `agent_field` for an unknown agent.
    pub(crate) fn into_api(self, agent_field: &str) -> ApiError {
        match self {
            Self::UnknownBusiness(b) => ApiError::BadRequest {
                field: Some("business".into()),
                message: format!("there is no business \"{b}\""),
            },
            Self::UnknownAgent(a) => ApiError::BadRequest {
                field: Some(agent_field.into()),
                message: format!("there is no agent \"{a}\""),
            },
            Self::Invalid { field, message } => ApiError::BadRequest {
                field: Some(field.into()),
                message,
            },
            Self::Unavailable(m) => ApiError::Unavailable(m),
            Self::Internal(m) => ApiError::Internal(m),
        }
    }
}

/// What the HTTP layer needs from the rest of callbridge. Implemented by the orchestrator;
/// every method is quick and never blocks on the network.
pub trait CallService: Send + Sync + 'static {
    /// Starts a click-to-call request (already validated field by field). Returns the new
    /// call's view (status `queued` or `scheduled`).
    ///
    /// # Errors
    /// [`ServiceError`] when the request cannot be taken.
    fn submit(&self, req: CallRequest) -> Result<CallView, ServiceError>;
    /// Starts a bridge: call the customer, then the agent, no queue.
    ///
    /// # Errors
    /// [`ServiceError`] when the request cannot be taken.
    fn bridge(&self, req: BridgeRequest) -> Result<CallView, ServiceError>;
    /// A call by id (either kind).
    fn get(&self, id: &str) -> Option<CallView>;
    /// The configured businesses, in configuration order (the first is the page's default).
    fn businesses(&self) -> Vec<BusinessInfo>;
    /// Per-worker data-plane counters (`GET /v1/dataplane/stats`): `{"workers": [{"relay",
    /// "loop", "io"}]}`; `None` when there is no data plane to ask (503).
    fn dataplane_stats(&self) -> Option<serde_json::Value> {
        None
    }
}

/// Shared state of every route (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The calls.
    pub calls: Arc<dyn CallService>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
