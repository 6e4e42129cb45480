//! The agent's side (claims 10-14): who am I, presence, and the desktop's WebSocket with the
//! screen pop and live call status.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use flows::{AgentId, CallId};
use serde_json::{json, Map, Value};
use service::{Notice, Presence, ScreenPop};
use tokio::sync::broadcast;

use crate::auth::{caller, Caller};
use crate::model::{record_json, view_json};
use crate::state::service_error;
use crate::{ApiError, AppJson, AppState};

/// How often the desktop's presence is re-read (calls change it: on_call, wrap_up).
const PRESENCE_POLL: Duration = Duration::from_secs(1);

pub(crate) fn who(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    token: Option<&str>,
) -> Result<Caller, ApiError> {
    caller(
        &st.calls.directory(),
        st.operator_key.as_deref(),
        headers,
        peer,
        token,
    )
}

fn no_agent(id: &str) -> ApiError {
    ApiError::NotFound {
        field: Some("id".into()),
        message: format!("there is no agent {id:?}"),
    }
}

fn agent_id(id: &str) -> Result<AgentId, ApiError> {
    AgentId::new(id).map_err(|_| no_agent(id))
}

/// A configured agent's id, and the caller if it may act as that agent.
fn acting_agent(
    st: &AppState,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    token: Option<&str>,
    id: &str,
) -> Result<AgentId, ApiError> {
    let agent = agent_id(id)?;
    let dir = st.calls.directory();
    if dir.agent(&agent).is_none() {
        return Err(no_agent(id));
    }
    who(st, headers, peer, token)?.as_agent(&dir, &agent)?;
    Ok(agent)
}

/// `GET /v1/agent/me`: the agent a desktop token belongs to.
#[utoipa::path(
    get,
    path = "/v1/agent/me",
    tag = crate::openapi::AGENTS,
    security(("agent_token" = [])),
    responses(
        (status = 200, description = "`{\"id\", \"name\", \"presence\", \"businesses\", \"skills\"}`.", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn me(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let Caller::Agent(id) = who(&st, &headers, peer.map(|c| c.0), None)? else {
        return Err(ApiError::Unauthorized(
            "send the agent's desktop token: Authorization: Bearer <token>".into(),
        ));
    };
    let dir = st.calls.directory();
    let a = dir
        .agent(&id)
        .ok_or_else(|| ApiError::Unauthorized("unknown agent".into()))?;
    Ok(Json(json!({
        "id": a.id.as_str(),
        "name": a.name,
        "presence": st.calls.presence(&id).map(Presence::as_str),
        "businesses": a.businesses.iter().map(flows::BusinessId::as_str).collect::<Vec<_>>(),
        "skills": a.skills.iter().map(flows::Skill::as_str).collect::<Vec<_>>(),
    })))
}

fn presence_json(agent: &AgentId, p: Option<Presence>) -> Json<Value> {
    Json(json!({ "agent": agent.as_str(), "presence": p.map(Presence::as_str) }))
}

/// `GET /v1/agents/{id}/presence`.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/presence",
    tag = crate::openapi::AGENTS,
    params(("id" = String, Path, description = "The id.")),
    security(("agent_token" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "Its presence.", body = crate::openapi::Presence),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn get_presence(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let agent = acting_agent(&st, &headers, peer.map(|c| c.0), None, &id)?;
    Ok(presence_json(&agent, st.calls.presence(&agent)))
}

/// `PUT /v1/agents/{id}/presence` `{"presence": "available" | "away" | "offline"}`.
#[utoipa::path(
    put,
    path = "/v1/agents/{id}/presence",
    tag = crate::openapi::AGENTS,
    params(("id" = String, Path, description = "The id.")),
    request_body = crate::openapi::PresenceBody,
    security(("agent_token" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "Its presence now.", body = crate::openapi::Presence),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 413, description = "The body is too large.", body = crate::openapi::Error),
        (status = 415, description = "The body is not declared as JSON.", body = crate::openapi::Error),
        (status = 422, description = "Refused: a reused `Idempotency-Key` with another body, or a policy.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
        (status = 503, description = "Not available now.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn put_presence(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let agent = acting_agent(&st, &headers, peer.map(|c| c.0), None, &id)?;
    if let Some(k) = body.keys().find(|k| k.as_str() != "presence") {
        return Err(ApiError::BadRequest {
            field: Some(k.clone()),
            message: format!("unknown field {k:?}; expected presence"),
        });
    }
    let wanted = body
        .get("presence")
        .and_then(Value::as_str)
        .ok_or_else(|| ApiError::BadRequest {
            field: Some("presence".into()),
            message: "\"presence\" is required: available, away or offline".into(),
        })?;
    let p: Presence = wanted.parse().map_err(|_| ApiError::BadRequest {
        field: Some("presence".into()),
        message: format!("\"presence\" must be available, away or offline, not {wanted:?}"),
    })?;
    let svc = st.calls.clone();
    let a = agent.clone();
    let now = tokio::task::spawn_blocking(move || svc.set_presence(&a, p))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(service_error)?;
    Ok(presence_json(&agent, Some(now)))
}

/// The screen pop message (`{"type": "screen_pop", "call": {…}}`).
#[must_use]
pub(crate) fn screen_pop_json(pop: &ScreenPop) -> Value {
    let r = &pop.call;
    let view = service::RequestView {
        record: r.clone(),
        queue_position: None,
        estimated_wait_s: None,
        media: (None, None),
    };
    let mut call = view_json(&view);
    call["business_name"] = json!(pop.business_name);
    call["created"] = record_json(r)["created"].clone();
    call["history"] = Value::Array(
        pop.history
            .iter()
            .map(|h| {
                let v = record_json(h);
                json!({
                    "id": v["id"], "created": v["created"], "status": v["status"],
                    "reason": v["reason"], "agent": v["agent"], "sale": v["sale"],
                    "page": v["page"],
                })
            })
            .collect(),
    );
    json!({ "type": "screen_pop", "call": call })
}

/// `GET /v1/agents/{id}/ws?token=…`: the desktop's WebSocket. Sends `presence` on connect
/// and on every change, `screen_pop` when a call is assigned to the agent (before its phone
/// is called), then `status` for that call's changes.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}/ws",
    tag = crate::openapi::AGENTS,
    params(("id" = String, Path, description = "The id."), ("token" = Option<String>, Query, description = "The agent token (browsers cannot set headers on WebSockets).")),
    security(("agent_token" = []), ("operator_key" = [])),
    responses(
        (status = 101, description = "WebSocket: `presence`, `screen_pop`, `status` messages."),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 503, description = "Not available now.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn ws(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    upgrade: WebSocketUpgrade,
) -> Result<Response, ApiError> {
    let token = q.get("token").map(String::as_str);
    let agent = acting_agent(&st, &headers, peer.map(|c| c.0), token, &id)?;
    let rx = st
        .calls
        .subscribe()
        .ok_or_else(|| ApiError::Unavailable("live events are not available".into()))?;
    Ok(upgrade.on_upgrade(move |socket| desktop(socket, st, agent, rx)))
}

async fn send(socket: &mut WebSocket, v: &Value) -> bool {
    socket.send(Message::Text(v.to_string())).await.is_ok()
}

async fn desktop(
    mut socket: WebSocket,
    st: AppState,
    agent: AgentId,
    mut rx: broadcast::Receiver<Notice>,
) {
    let mut presence = st.calls.presence(&agent);
    if !send(
        &mut socket,
        &json!({"type": "presence", "presence": presence.map(Presence::as_str)}),
    )
    .await
    {
        return;
    }
    let mut mine: HashSet<CallId> = HashSet::new();
    let mut poll = tokio::time::interval(PRESENCE_POLL);
    loop {
        tokio::select! {
            n = rx.recv() => {
                let msg = match n {
                    Ok(Notice::ScreenPop(pop)) if pop.agent == agent => {
                        mine.insert(pop.call.request.id.clone());
                        Some(screen_pop_json(&pop))
                    }
                    Ok(Notice::Status(e)) if mine.contains(&e.id) => {
                        if matches!(e.status.as_str(), "completed" | "failed" | "cancelled") {
                            mine.remove(&e.id);
                        }
                        let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(e.at_ms) * 1_000_000)
                            .map(crate::format_time)
                            .ok();
                        Some(json!({"type": "status", "id": e.id.as_str(), "status": e.status, "reason": e.reason, "at": at}))
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => None,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                if let Some(m) = msg {
                    if !send(&mut socket, &m).await {
                        return;
                    }
                }
            }
            _ = poll.tick() => {
                let now = st.calls.presence(&agent);
                if now != presence {
                    presence = now;
                    if !send(&mut socket, &json!({"type": "presence", "presence": now.map(Presence::as_str)})).await {
                        return;
                    }
                }
            }
            m = socket.recv() => match m {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
        }
    }
}

// ---- businesses and agents (the directory) -------------------------------------------------

fn agent_view(st: &AppState, a: &service::AgentEntry) -> Value {
    let mut v = service::admin::agent_json(a);
    v["presence"] = json!(st.calls.presence(&a.id).map(Presence::as_str));
    if let Some(d) = st.calls.devices(&a.id) {
        v["devices"] = d;
    }
    v
}

/// `GET /v1/agents`: every agent (operator, lab), or a business key's own agents.
#[utoipa::path(
    get,
    path = "/v1/agents",
    tag = crate::openapi::AGENTS,
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 200, description = "Every agent (operator), or a business key's own.", body = Vec<crate::openapi::Agent>),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn list_agents(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let c = who(&st, &headers, peer.map(|c| c.0), None)?;
    let dir = st.calls.directory();
    let own = match &c {
        Caller::Business(b) => Some(b.clone()),
        _ => {
            c.server_side(&dir)?;
            None
        }
    };
    let list: Vec<Value> = dir
        .agents
        .iter()
        .filter(|a| own.as_ref().is_none_or(|b| a.businesses.contains(b)))
        .map(|a| agent_view(&st, a))
        .collect();
    Ok(Json(Value::Array(list)))
}

/// `GET /v1/agents/{id}`: the agent itself, its businesses' keys, the operator.
#[utoipa::path(
    get,
    path = "/v1/agents/{id}",
    tag = crate::openapi::AGENTS,
    params(("id" = String, Path, description = "The id.")),
    security(("agent_token" = []), ("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "The agent.", body = crate::openapi::Agent),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn get_agent(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let agent = agent_id(&id)?;
    let c = who(&st, &headers, peer.map(|c| c.0), None)?;
    let dir = st.calls.directory();
    let a = dir.agent(&agent).ok_or_else(|| no_agent(&id))?;
    let allowed = match &c {
        Caller::Business(b) => a.businesses.contains(b),
        _ => c.as_agent(&dir, &agent).is_ok() || c.server_side(&dir).is_ok(),
    };
    if !allowed {
        return Err(ApiError::Forbidden {
            field: Some("id".into()),
            message: format!("this credential cannot see agent {id}"),
        });
    }
    Ok(Json(agent_view(&st, a)))
}

/// `PUT /v1/agents/{id}` `{"name", "contact", "businesses", "skills", "wrap_up_secs"}` (any
/// subset; a new agent needs `contact`): the operator (or the lab without keys). Stored, and
/// in force at once.
#[utoipa::path(
    put,
    path = "/v1/agents/{id}",
    tag = crate::openapi::AGENTS,
    params(("id" = String, Path, description = "The id.")),
    request_body = crate::openapi::Object,
    security(("operator_key" = [])),
    responses(
        (status = 200, description = "The agent as stored, in force at once.", body = crate::openapi::Agent),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 413, description = "The body is too large.", body = crate::openapi::Error),
        (status = 415, description = "The body is not declared as JSON.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
        (status = 503, description = "Not available now.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn put_agent(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let agent = AgentId::new(id.as_str()).map_err(|e| ApiError::BadRequest {
        field: Some("id".into()),
        message: format!("the agent id is invalid: {e}"),
    })?;
    let c = who(&st, &headers, peer.map(|c| c.0), None)?;
    if !matches!(c, Caller::Operator) {
        c.server_side(&st.calls.directory())?;
        if matches!(c, Caller::Business(_)) {
            return Err(ApiError::Forbidden {
                field: None,
                message: "only the operator key changes agents".into(),
            });
        }
    }
    let svc = st.calls.clone();
    let a = tokio::task::spawn_blocking(move || svc.put_agent(&agent, &body))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(admin_error)?;
    Ok(Json(agent_view(&st, &a)))
}

/// `GET /v1/businesses/{id}`: its settings (no secrets), for its key or the operator.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}",
    tag = crate::openapi::BUSINESSES,
    params(("id" = String, Path, description = "The id.")),
    security(("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "Its settings (no secrets).", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn get_business(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let business = business_id(&id)?;
    let c = who(&st, &headers, peer.map(|c| c.0), None)?;
    let dir = st.calls.directory();
    let b = dir.business(&business).ok_or_else(|| no_business(&id))?;
    c.for_business(&dir, &business)?;
    Ok(Json(service::admin::business_json(b)))
}

/// `PUT /v1/businesses/{id}` `{"name", "time_zone", "hours", "holidays", "allowed_origins",
/// "default_country", "caller_id", "webhook_url", "reservation"}` (any subset): its key or
/// the operator.
#[utoipa::path(
    put,
    path = "/v1/businesses/{id}",
    tag = crate::openapi::BUSINESSES,
    params(("id" = String, Path, description = "The id.")),
    request_body = crate::openapi::Object,
    security(("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "Its settings as stored.", body = crate::openapi::Object),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 413, description = "The body is too large.", body = crate::openapi::Error),
        (status = 415, description = "The body is not declared as JSON.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
        (status = 503, description = "Not available now.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn put_business(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let business = business_id(&id)?;
    let c = who(&st, &headers, peer.map(|c| c.0), None)?;
    if matches!(c, Caller::Agent(_) | Caller::Widget(_)) {
        return Err(ApiError::Forbidden {
            field: None,
            message: "this credential cannot change a business".into(),
        });
    }
    c.for_business(&st.calls.directory(), &business)?;
    let svc = st.calls.clone();
    let b = tokio::task::spawn_blocking(move || svc.put_business(&business, &body))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(admin_error)?;
    Ok(Json(service::admin::business_json(&b)))
}

fn no_business(id: &str) -> ApiError {
    ApiError::NotFound {
        field: Some("id".into()),
        message: format!("there is no business {id:?}"),
    }
}

fn business_id(id: &str) -> Result<flows::BusinessId, ApiError> {
    flows::BusinessId::new(id).map_err(|_| no_business(id))
}

/// Directory changes refused by the service are 400 naming the field (bad input), not 422.
fn admin_error(e: service::ServiceError) -> ApiError {
    match e {
        service::ServiceError::Refused { field, message } => ApiError::BadRequest {
            field: Some(field.into()),
            message,
        },
        service::ServiceError::UnknownBusiness(b) => no_business(b.as_str()),
        other => service_error(other),
    }
}
