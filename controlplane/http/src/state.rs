//! [`AppState`] and the [`CallService`] trait the HTTP layer calls.

use std::sync::Arc;

use flows::{AgentId, CallId};
use service::{
    Bridge, Directory, Notice, Origin, Outcome, Presence, RequestView, ServiceError, Submit,
};
use store::{CallRecord, RecordFilter, Sale};
use tokio::sync::broadcast;

use crate::model::BusinessInfo;
use crate::ApiError;

/// The API error for a service refusal; `agent_field` is not needed: the service names it.
pub(crate) fn service_error(e: ServiceError) -> ApiError {
    match e {
        ServiceError::UnknownBusiness(b) => ApiError::BadRequest {
            field: Some("business".into()),
            message: format!("there is no business \"{b}\""),
        },
        ServiceError::UnknownAgent { field, agent } => ApiError::BadRequest {
            field: Some(field.into()),
            message: format!("there is no agent \"{agent}\""),
        },
        ServiceError::NotFound(id) => ApiError::NotFound {
            field: Some("id".into()),
            message: format!("there is no request with id {:?}", id.as_str()),
        },
        ServiceError::IdempotencyConflict(key) => ApiError::Unprocessable {
            field: Some("Idempotency-Key".into()),
            message: format!(
                "the Idempotency-Key {key:?} was already used with a different request body; use a new key for a new request"
            ),
        },
        ServiceError::Limited {
            retry_after_s,
            which,
            message,
        } => ApiError::TooManyRequests {
            retry_after_s,
            limit: which.to_owned(),
            message,
        },
        ServiceError::Refused { field, message } => ApiError::Unprocessable {
            field: Some(field.into()),
            message,
        },
        ServiceError::Unavailable(m) => ApiError::Unavailable(m),
        ServiceError::Overloaded {
            reason,
            retry_after_s,
            message,
        } => ApiError::Overloaded {
            reason: reason.to_owned(),
            retry_after_s,
            message,
        },
        e @ ServiceError::Draining { retry_after_s } => ApiError::Draining {
            retry_after_s,
            message: e.to_string(),
        },
        other => ApiError::Internal(other.to_string()),
    }
}

/// What the HTTP layer needs from the rest of callbridge: the service
/// ([`service::Service`] implements it) or a test double. The methods do blocking store
/// I/O: handlers call them on tokio's blocking pool.
pub trait CallService: Send + Sync + 'static {
    /// Accepts a click-to-call request; returns after it is committed.
    ///
    /// # Errors
    /// [`ServiceError`] when the request cannot be taken.
    fn submit(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError>;
    /// Accepts a bridge (dialled at once).
    ///
    /// # Errors
    /// [`ServiceError`] when the request cannot be taken.
    fn bridge(&self, req: Bridge, origin: &Origin) -> Result<Outcome, ServiceError>;
    /// A request by id (either kind).
    ///
    /// # Errors
    /// [`ServiceError::Internal`] when the store fails.
    fn get(&self, id: &CallId) -> Result<Option<RequestView>, ServiceError>;
    /// Records a request's sale.
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; store failures.
    fn sale(&self, id: &CallId, sale: &Sale) -> Result<RequestView, ServiceError>;
    /// Records created in a range.
    ///
    /// # Errors
    /// Store failures.
    fn records(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, ServiceError>;
    /// The configured businesses, in configuration order (the first is the page's default).
    fn businesses(&self) -> Vec<BusinessInfo>;
    /// Per-worker data-plane counters (`GET /v1/dataplane/stats`): `{"workers": [{"relay",
    /// "loop", "io"}]}`; `None` when there is no data plane to ask (503).
    fn dataplane_stats(&self) -> Option<serde_json::Value> {
        None
    }
    /// Service figures for the operator (`GET /v1/stats`): refusals by kind, live calls,
    /// queues, presence.
    fn stats(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    /// `GET /metrics`: `(content type, exposition text)` for Prometheus; by default an
    /// empty OpenMetrics exposition.
    fn metrics(&self) -> (&'static str, String) {
        (
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            "# EOF\n".to_owned(),
        )
    }
    /// A request's webhook deliveries (the delivery log).
    ///
    /// # Errors
    /// Store failures.
    fn deliveries(&self, _id: &CallId) -> Result<Vec<store::OutboxItem>, ServiceError> {
        Ok(Vec::new())
    }
    /// Businesses and agents with their keys and tokens (for authentication): a snapshot.
    fn directory(&self) -> Arc<Directory>;
    /// Creates or changes an agent (`PUT /v1/agents/{id}`).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] naming the field.
    fn put_agent(
        &self,
        _id: &AgentId,
        _doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<service::AgentEntry, ServiceError> {
        Err(ServiceError::Unavailable(
            "changing agents is not available".into(),
        ))
    }
    /// Changes a business (`PUT /v1/businesses/{id}`).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] naming the field.
    fn put_business(
        &self,
        _id: &flows::BusinessId,
        _doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<service::BusinessEntry, ServiceError> {
        Err(ServiceError::Unavailable(
            "changing businesses is not available".into(),
        ))
    }
    /// The process's state for the operator (`GET /v1/admin/status`); `None`: not available
    /// (503).
    fn admin_status(&self) -> Option<serde_json::Value> {
        None
    }
    /// Whether the process drains (`GET /healthz` answers `503 {"status":"draining"}`).
    fn draining(&self) -> bool {
        false
    }
    /// Starts draining (idempotent, `POST /v1/admin/drain`): `{"state":"draining",
    /// "live_calls":N}`; `None`: not available (503).
    fn drain(&self) -> Option<serde_json::Value> {
        None
    }
    /// Re-reads the configuration file (`POST /v1/admin/reload`). Blocking (file and store
    /// I/O).
    ///
    /// # Errors
    /// [`crate::admin::ReloadRefusal`]: 409 without a file, 422 for a bad one (the old
    /// configuration stays).
    fn reload(&self) -> Result<serde_json::Value, crate::admin::ReloadRefusal> {
        Err(crate::admin::ReloadRefusal::no_file(
            "reloading is not available",
        ))
    }
    /// A SIP trace rule names live call `id`: let it hand over its dialogs already begun
    /// (`PUT /v1/admin/sip-trace`). Default: nothing.
    fn sip_trace(&self, _id: &CallId) {}
    /// Status changes and screen pops as they happen (`None`: no live events).
    fn subscribe(&self) -> Option<broadcast::Receiver<Notice>> {
        None
    }
    /// An agent's presence.
    fn presence(&self, _agent: &AgentId) -> Option<Presence> {
        None
    }
    /// The registered devices of an agent with `contact = "registered"` (`None`: other agents).
    fn devices(&self, _agent: &AgentId) -> Option<serde_json::Value> {
        None
    }
    /// Cancels a request or hangs up a live call (`DELETE /v1/call-requests/{id}`).
    ///
    /// # Errors
    /// [`ServiceError::NotFound`]; store failures.
    fn cancel(&self, _id: &CallId) -> Result<service::Cancelled, ServiceError> {
        Err(ServiceError::Unavailable(
            "cancelling calls is not available".into(),
        ))
    }
    /// The ids of the live calls (`GET /v1/calls`).
    fn live_ids(&self) -> Vec<CallId> {
        Vec::new()
    }
    /// Sets an agent's presence (`available`, `away`, `offline`).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] for `on_call`/`wrap_up`.
    fn set_presence(&self, _agent: &AgentId, _p: Presence) -> Result<Presence, ServiceError> {
        Err(ServiceError::Unavailable(
            "presence is not available".into(),
        ))
    }
}

impl CallService for service::Service {
    fn submit(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError> {
        self.accept(req, origin)
    }
    fn bridge(&self, req: Bridge, origin: &Origin) -> Result<Outcome, ServiceError> {
        Self::bridge(self, req, origin)
    }
    fn get(&self, id: &CallId) -> Result<Option<RequestView>, ServiceError> {
        Self::get(self, id)
    }
    fn sale(&self, id: &CallId, sale: &Sale) -> Result<RequestView, ServiceError> {
        Self::sale(self, id, sale)
    }
    fn records(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, ServiceError> {
        Self::records(self, filter)
    }
    fn directory(&self) -> Arc<Directory> {
        Self::directory(self)
    }
    fn put_agent(
        &self,
        id: &AgentId,
        doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<service::AgentEntry, ServiceError> {
        Self::put_agent(self, id, doc)
    }
    fn put_business(
        &self,
        id: &flows::BusinessId,
        doc: &serde_json::Map<String, serde_json::Value>,
    ) -> Result<service::BusinessEntry, ServiceError> {
        Self::put_business(self, id, doc)
    }
    fn deliveries(&self, id: &CallId) -> Result<Vec<store::OutboxItem>, ServiceError> {
        Self::deliveries(self, id)
    }
    fn stats(&self) -> serde_json::Value {
        Self::stats(self)
    }
    fn subscribe(&self) -> Option<broadcast::Receiver<Notice>> {
        Some(Self::subscribe(self))
    }
    fn presence(&self, agent: &AgentId) -> Option<Presence> {
        Self::presence(self, agent)
    }
    fn devices(&self, agent: &AgentId) -> Option<serde_json::Value> {
        Self::devices(self, agent)
    }
    fn set_presence(&self, agent: &AgentId, p: Presence) -> Result<Presence, ServiceError> {
        Self::set_presence(self, agent, p)
    }
    fn cancel(&self, id: &CallId) -> Result<service::Cancelled, ServiceError> {
        Self::cancel(self, id)
    }
    fn live_ids(&self) -> Vec<CallId> {
        Self::live_ids(self)
    }
    fn businesses(&self) -> Vec<BusinessInfo> {
        Self::directory(self)
            .businesses
            .iter()
            .map(|b| BusinessInfo {
                id: b.id.clone(),
                name: b.name.clone(),
            })
            .collect()
    }
}

/// Shared state of every route (cheap to clone).
#[derive(Clone)]
pub struct AppState {
    /// The calls.
    pub calls: Arc<dyn CallService>,
    /// `http.operator_key`: the key that may do everything (`None`: no operator key).
    pub operator_key: Option<Arc<str>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}
