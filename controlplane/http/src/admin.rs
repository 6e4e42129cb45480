//! The operator's process routes: `GET /v1/admin/status`, `POST /v1/admin/drain`,
//! `POST /v1/admin/reload`. Authorised like `GET /v1/stats` (the operator key, or a loopback
//! client when no business has API keys); draining and reloading are refused to business keys.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::desktop::who;
use crate::{ApiError, AppState};

/// Why a reload was refused: `409` (no configuration file) or `422` (a bad one: `error` is
/// `FILE:LINE: KEY: reason`, `field` the key). The old configuration stays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReloadRefusal {
    /// 409 or 422.
    pub status: u16,
    /// The sentence.
    pub error: String,
    /// The configuration key at fault.
    pub field: Option<String>,
}

impl ReloadRefusal {
    /// 409: there is no file to re-read.
    #[must_use]
    pub fn no_file(message: impl Into<String>) -> Self {
        Self {
            status: 409,
            error: message.into(),
            field: None,
        }
    }

    /// 422: the file is invalid.
    #[must_use]
    pub fn invalid(message: impl Into<String>, field: impl Into<String>) -> Self {
        Self {
            status: 422,
            error: message.into(),
            field: Some(field.into()),
        }
    }
}

impl IntoResponse for ReloadRefusal {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::CONFLICT);
        (
            status,
            Json(json!({ "error": self.error, "field": self.field })),
        )
            .into_response()
    }
}

/// The operator (or the lab's loopback client); `act`: also refuse business keys.
fn operator(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    act: bool,
) -> Result<(), ApiError> {
    let caller = who(st, headers, peer, None)?;
    caller.server_side(&st.calls.directory())?;
    if act && matches!(caller, Caller::Business(_)) {
        return Err(ApiError::Forbidden {
            field: None,
            message: "only the operator key may drain or reload callbridge".into(),
        });
    }
    Ok(())
}

/// `GET /v1/admin/status` → `200 {"state": "serving"|"draining", "version", "pid",
/// "uptime_secs", "live_calls", "queued_requests", "queued_requests_cluster"?, "backend",
/// "workers"}`. Errors: 401/403;
/// 503 when the process cannot say.
#[utoipa::path(
    get,
    path = "/v1/admin/status",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "`state` (`serving` or `draining`), `version`, `pid`, `uptime_secs`, `live_calls`, `queued_requests` (this process's queue), `backend`, `workers`; on a shared store `queued_requests_cluster` (requests queued in the store on every node); while draining also `draining_secs` and `drain_max_seconds`.", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "Not the operator.", body = crate::openapi::Error),
        (status = 503, description = "The process cannot say.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn status(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    operator(&st, &headers, peer.map(|c| c.0), false)?;
    st.calls
        .admin_status()
        .map(Json)
        .ok_or_else(|| ApiError::Unavailable("the process status is not available".into()))
}

/// `POST /v1/admin/drain` → `202 {"state": "draining", "live_calls": N}` (idempotent): no new
/// calls are taken, live ones finish, then the process exits. Errors: 401/403; 503 when this
/// process cannot drain.
#[utoipa::path(
    post,
    path = "/v1/admin/drain",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = [])),
    responses(
        (status = 202, description = "`{\"state\": \"draining\", \"live_calls\": N}`: no new calls; live ones finish (up to `drain.max_seconds`), then the process exits 0. Idempotent.", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "Not the operator (business keys may not drain the process).", body = crate::openapi::Error),
        (status = 503, description = "This process cannot drain.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn drain(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    operator(&st, &headers, peer.map(|c| c.0), true)?;
    let body = st
        .calls
        .drain()
        .ok_or_else(|| ApiError::Unavailable("this process cannot drain".into()))?;
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// `POST /v1/admin/reload` → `200 {"reloaded": true, "businesses": N, "agents": N,
/// "needs_restart": [...]}`: agents, businesses, prompts and limits re-read from the
/// configuration file. Errors: 401/403; 409 without a file (built-in configuration); 422
/// `{"error": "FILE:LINE: KEY: reason", "field": "KEY"}` with the old configuration kept.
#[utoipa::path(
    post,
    path = "/v1/admin/reload",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "`{\"reloaded\": true, \"businesses\": N, \"agents\": N, \"needs_restart\": [KEY, …]}`: agents, businesses, prompts and limits applied; live calls untouched.", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "Not the operator.", body = crate::openapi::Error),
        (status = 409, description = "Running on the built-in configuration: no file to re-read.", body = crate::openapi::Error),
        (status = 422, description = "The file is refused: `error` is `FILE:LINE: KEY: reason`, `field` the key; the old configuration stays.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn reload(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    operator(&st, &headers, peer.map(|c| c.0), true)?;
    let calls = st.calls.clone();
    let r = tokio::task::spawn_blocking(move || calls.reload())
        .await
        .map_err(|e| ApiError::Internal(format!("reload task failed: {e}")))?;
    Ok(match r {
        Ok(body) => Json(body).into_response(),
        Err(refusal) => refusal.into_response(),
    })
}

/// `GET /healthz` → `200 {"status":"ok"}`, or `503 {"status":"draining"}` while the process
/// drains (a load balancer sends no new traffic).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = crate::openapi::OPERATOR,
    responses(
        (status = 200, description = "Serving: `{\"status\": \"ok\"}`.", body = crate::openapi::Health),
        (status = 503, description = "Draining: `{\"status\": \"draining\"}` (a load balancer sends no new traffic).", body = crate::openapi::Health),
    )
)]
pub(crate) async fn healthz(State(st): State<AppState>) -> Response {
    if st.calls.draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "draining" })),
        )
            .into_response()
    } else {
        Json(json!({ "status": "ok" })).into_response()
    }
}
