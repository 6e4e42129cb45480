//! The routes. Handlers validate, call the [`CallService`](crate::CallService) and map its
//! answers to responses; they hold no state of their own.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use flows::{BusinessId, CallId};
use service::{Bridge, BridgeAgent, Origin, Outcome, RequestView, ServiceError, Submit};
use sha2::{Digest, Sha256};
use store::{Page, RecordFilter};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::auth::Caller;
use crate::desktop::who;
use crate::model::{
    record_json, records_csv, view_json, AgentRef, BridgeRequest, CallKind, CallRequest,
    SaleRequest,
};
use crate::openapi::ApiDoc;
use crate::state::service_error;
use crate::{calls, desktop, live, page, ApiError, AppJson, AppState};

/// The routes with their OpenAPI descriptions: each `routes!` registers handlers and their
/// `#[utoipa::path]` together, so every route is in the document (`GET /openapi.json`).
///
/// POSTs take an `Idempotency-Key` header: the same key and body within 24 h get the
/// original response again (header `Idempotent-Replayed: true`); the same key with another
/// body is 422. Errors are `{"error": "…", "field": …}`.
fn api() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(demo_page))
        .routes(routes!(web_page))
        .routes(routes!(live::widget_js))
        .routes(routes!(live::agent_page))
        .routes(routes!(calls::openapi_json))
        .routes(routes!(crate::admin::healthz))
        .routes(routes!(businesses))
        .routes(routes!(live::widget_info, live::preflight_widget))
        .routes(routes!(create_call_request, live::preflight_call_requests))
        .routes(routes!(get_call_request, calls::cancel_call))
        .routes(routes!(live::events, live::preflight_events))
        .routes(routes!(post_sale))
        .routes(routes!(deliveries))
        .routes(routes!(records))
        .routes(routes!(calls::list_calls))
        .routes(routes!(desktop::me))
        .routes(routes!(desktop::list_agents))
        .routes(routes!(desktop::get_agent, desktop::put_agent))
        .routes(routes!(desktop::get_business, desktop::put_business))
        .routes(routes!(desktop::get_presence, desktop::put_presence))
        .routes(routes!(desktop::ws))
        .routes(routes!(create_bridge))
        .routes(routes!(get_bridge))
        .routes(routes!(dataplane_stats))
        .routes(routes!(service_stats))
        .routes(routes!(metrics))
        .routes(routes!(crate::admin::status))
        .routes(routes!(crate::admin::drain))
        .routes(routes!(crate::admin::reload))
        .routes(routes!(crate::sip_trace::put_sip_trace))
}

/// The OpenAPI 3.1 document of every route (`GET /openapi.json` serves it).
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().into_openapi()
}

/// Builds the API. Tests call it with `tower::ServiceExt::oneshot`, no server needed. The
/// routes and what they answer: [`openapi`] (served at `GET /openapi.json`).
pub fn router(state: AppState) -> Router {
    let (routes, doc) = api().split_for_parts();
    let json = doc
        .to_json()
        .unwrap_or_else(|e| format!(r#"{{"error": "the API description failed: {e}"}}"#));
    routes
        .fallback(no_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(Extension(calls::OpenApiJson(json.into())))
        .with_state(state)
}

/// `GET /metrics`: the Prometheus figures (OpenMetrics text; see the README's Metrics
/// section). Authorised like `GET /v1/stats` (operator key, or the lab without keys): 401/403
/// otherwise.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 200, description = "Every metric family in the OpenMetrics text format (Prometheus scrapes it).", content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
    )
)]
async fn metrics(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    who(&st, &headers, peer.map(|c| c.0), None)?.server_side(&st.calls.directory())?;
    let (content_type, text) = st.calls.metrics();
    Ok(([(header::CONTENT_TYPE, content_type)], text).into_response())
}

/// `GET /v1/stats`: refused call requests by kind, live calls, queue lengths and calls in
/// progress per business, agents' presence (operator; or the lab without keys).
#[utoipa::path(
    get,
    path = "/v1/stats",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 200, description = "Refusals by kind, live calls, queues, calls in progress per business, presence.", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
    )
)]
async fn service_stats(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    who(&st, &headers, peer.map(|c| c.0), None)?.server_side(&st.calls.directory())?;
    Ok(Json(st.calls.stats()))
}

#[utoipa::path(
    get,
    path = "/v1/dataplane/stats",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 200, description = "Per-worker counters `{\"workers\": [{\"relay\", \"loop\", \"io\"}]}`.", body = crate::openapi::Object),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 503, description = "Not available now.", body = crate::openapi::Error),
    )
)]
async fn dataplane_stats(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    who(&st, &headers, peer.map(|c| c.0), None)?.server_side(&st.calls.directory())?;
    st.calls
        .dataplane_stats()
        .map(Json)
        .ok_or_else(|| ApiError::Unavailable("data-plane statistics are not available".into()))
}

#[utoipa::path(
    get,
    path = "/v1/businesses",
    tag = crate::openapi::BUSINESSES,
    responses(
        (status = 200, description = "Every business, in configuration order.", body = Vec<crate::openapi::BusinessSummary>),
    )
)]
async fn businesses(State(st): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = st
        .calls
        .businesses()
        .iter()
        .map(|b| json!({ "id": b.id.as_str(), "name": b.name }))
        .collect();
    Json(Value::Array(list))
}

/// Runs a blocking service call on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ServiceError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::Internal(format!("service task failed: {e}")))?
        .map_err(service_error)
}

/// The longest `Idempotency-Key` accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// JSON with object keys sorted at every level, so that the same body hashes the same
/// whatever the key order it was sent in.
pub(crate) fn canonical(v: &Value) -> String {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            let inner: Vec<String> = keys
                .iter()
                .map(|k| format!("{}:{}", Value::String((*k).clone()), canonical(&m[*k])))
                .collect();
            format!("{{{}}}", inner.join(","))
        }
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// Where the request came from: the client address and its `Idempotency-Key` with the
/// body's hash.
fn origin(
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    body: &Map<String, Value>,
) -> Result<Origin, ApiError> {
    let idempotency = match headers.get("idempotency-key") {
        None => None,
        Some(v) => {
            let key = v
                .to_str()
                .ok()
                .filter(|k| {
                    !k.is_empty()
                        && k.len() <= MAX_IDEMPOTENCY_KEY
                        && k.bytes().all(|b| b.is_ascii_graphic())
                })
                .ok_or_else(|| ApiError::BadRequest {
                    field: Some("Idempotency-Key".into()),
                    message: format!(
                        "the Idempotency-Key header must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"
                    ),
                })?;
            let digest = Sha256::digest(canonical(&Value::Object(body.clone())).as_bytes());
            let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
            Some((key.to_owned(), hash))
        }
    };
    Ok(Origin {
        client_ip: peer.map(|p| p.ip().to_string()),
        idempotency,
    })
}

fn respond(path: &str, out: Outcome) -> Response {
    match out {
        Outcome::Created(rec) => {
            let location = format!("{path}/{}", rec.request.id);
            (
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(json!({ "id": rec.request.id.as_str(), "status": rec.status })),
            )
                .into_response()
        }
        Outcome::Replay(r) => {
            let status = StatusCode::from_u16(r.status).unwrap_or(StatusCode::ACCEPTED);
            let body: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
            let location = body["id"]
                .as_str()
                .map(|id| format!("{path}/{id}"))
                .unwrap_or_default();
            (
                status,
                [
                    (header::LOCATION, location),
                    (
                        header::HeaderName::from_static("idempotent-replayed"),
                        "true".into(),
                    ),
                ],
                Json(body),
            )
                .into_response()
        }
    }
}

fn unix_ms(t: OffsetDateTime) -> i64 {
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[utoipa::path(
    post,
    path = "/v1/call-requests",
    tag = crate::openapi::CALLS,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body within 24 h.")),
    request_body = crate::openapi::CallRequestBody,
    security(("widget_key" = []), ("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 202, description = "Committed; `Location` names it.", body = crate::openapi::Accepted, headers(("Location" = String, description = "/v1/call-requests/{id}"))),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 413, description = "The body is too large.", body = crate::openapi::Error),
        (status = 415, description = "The body is not declared as JSON.", body = crate::openapi::Error),
        (status = 422, description = "Refused: a reused `Idempotency-Key` with another body, or a policy.", body = crate::openapi::Error),
        (status = 429, description = "A rate limit; see `Retry-After`, `limit`, `retry_after_s`.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
        (status = 503, description = "Cannot be carried now (overload or draining): see `Retry-After`, `reason` (`max_calls`, `descriptors`, `media_ports`, `max_setups_per_second`, `draining`), `retry_after_s`.", body = crate::openapi::Error),
    )
)]
async fn create_call_request(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let peer = peer.map(|c| c.0);
    let cors = live::cors(&st, &headers, None);
    let result = async {
        let who = who(&st, &headers, peer, None)?;
        let req = CallRequest::from_json(&body)?;
        who.for_business(&st.calls.directory(), &req.business)?;
        submit_request(&st, req, &headers, peer, &body).await
    }
    .await;
    let mut res = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    res.headers_mut().extend(cors);
    Ok(res)
}

async fn submit_request(
    st: &AppState,
    req: CallRequest,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    body: &Map<String, Value>,
) -> Result<Response, ApiError> {
    let origin = origin(headers, peer, body)?;
    let submit = Submit {
        business: req.business,
        customer: req.customer,
        contact_at_ms: req.contact_time.map(unix_ms),
        page: req.page.map(|p| Page {
            url: p.url,
            title: p.title,
            referrer: p.referrer,
        }),
        preferred_agent: req.preferred_agent,
        skill: req.skill,
    };
    let svc = st.calls.clone();
    let out = blocking(move || svc.submit(submit, &origin)).await?;
    Ok(respond("/v1/call-requests", out))
}

#[utoipa::path(
    post,
    path = "/v1/bridges",
    tag = crate::openapi::CALLS,
    params(("Idempotency-Key" = Option<String>, Header, description = "Replays the first answer for the same key and body within 24 h.")),
    request_body = crate::openapi::BridgeBody,
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 202, description = "Committed and dialled; `Location` names it.", body = crate::openapi::Accepted, headers(("Location" = String, description = "/v1/bridges/{id}"))),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 413, description = "The body is too large.", body = crate::openapi::Error),
        (status = 415, description = "The body is not declared as JSON.", body = crate::openapi::Error),
        (status = 422, description = "Refused: a reused `Idempotency-Key` with another body, or a policy.", body = crate::openapi::Error),
        (status = 429, description = "A rate limit; see `Retry-After`, `limit`, `retry_after_s`.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
        (status = 503, description = "Cannot be carried now (overload or draining): see `Retry-After`, `reason` (`max_calls`, `descriptors`, `media_ports`, `max_setups_per_second`, `draining`), `retry_after_s`.", body = crate::openapi::Error),
    )
)]
async fn create_bridge(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let peer = peer.map(|c| c.0);
    who(&st, &headers, peer, None)?.server_side(&st.calls.directory())?;
    let req = BridgeRequest::from_json(&body)?;
    let origin = origin(&headers, peer, &body)?;
    let bridge = Bridge {
        customer: req.customer,
        agent: match req.agent {
            AgentRef::Id(a) => BridgeAgent::Id(a),
            AgentRef::Target(t) => BridgeAgent::Target(t),
        },
    };
    let svc = st.calls.clone();
    let out = blocking(move || svc.bridge(bridge, &origin)).await?;
    Ok(respond("/v1/bridges", out))
}

fn not_found(kind: CallKind, id: &str) -> ApiError {
    let what = match kind {
        CallKind::CallRequest => "call request",
        CallKind::Bridge => "bridge",
    };
    ApiError::NotFound {
        field: Some("id".into()),
        message: format!("there is no {what} with id {id:?}"),
    }
}

async fn lookup(
    st: &AppState,
    who: &Caller,
    id: &str,
    kind: CallKind,
) -> Result<RequestView, ApiError> {
    let Ok(call) = CallId::new(id) else {
        return Err(not_found(kind, id));
    };
    let svc = st.calls.clone();
    let v = match blocking(move || svc.get(&call)).await? {
        Some(v) if kind.matches(v.record.request.kind) => v,
        _ => return Err(not_found(kind, id)),
    };
    match &v.record.request.business {
        Some(b) => who.for_business(&st.calls.directory(), b)?,
        None => who.server_side(&st.calls.directory())?,
    }
    Ok(v)
}

#[utoipa::path(
    get,
    path = "/v1/call-requests/{id}",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    security(("business_key" = []), ("operator_key" = []), ("agent_token" = []), ("widget_key" = [])),
    responses(
        (status = 200, description = "The call request (or inbound call).", body = crate::openapi::Call),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
    )
)]
async fn get_call_request(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    let v = lookup(&st, &who, &id, CallKind::CallRequest).await?;
    Ok(Json(view_json(&v)))
}

#[utoipa::path(
    get,
    path = "/v1/bridges/{id}",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 200, description = "The bridge.", body = crate::openapi::Call),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
    )
)]
async fn get_bridge(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    let v = lookup(&st, &who, &id, CallKind::Bridge).await?;
    Ok(Json(view_json(&v)))
}

#[utoipa::path(
    post,
    path = "/v1/call-requests/{id}/sale",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    request_body = crate::openapi::SaleBody,
    security(("agent_token" = []), ("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "The call with its sale.", body = crate::openapi::Call),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 413, description = "The body is too large.", body = crate::openapi::Error),
        (status = 415, description = "The body is not declared as JSON.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
    )
)]
async fn post_sale(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    let view = lookup(&st, &who, &id, CallKind::CallRequest).await?;
    let mut sale = SaleRequest::from_json(&body, unix_ms(OffsetDateTime::now_utc()))?;
    if let (Caller::Agent(a), None) = (&who, &sale.agent) {
        sale.agent = Some(a.as_str().to_owned());
    }
    let svc = st.calls.clone();
    let call = view.record.request.id.clone();
    let v = blocking(move || svc.sale(&call, &sale)).await?;
    Ok(Json(view_json(&v)))
}

/// `GET /v1/call-requests/{id}/webhooks`: the request's webhook deliveries, oldest first.
#[utoipa::path(
    get,
    path = "/v1/call-requests/{id}/webhooks",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    security(("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "Webhook deliveries, oldest first: `delivery`, `url`, `body`, `created`, `attempts`, `next_attempt`, `delivered`, `abandoned`, `last_status`, `last_error`.", body = Vec<crate::openapi::Object>),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
    )
)]
async fn deliveries(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    let view = lookup(&st, &who, &id, CallKind::CallRequest).await?;
    let svc = st.calls.clone();
    let call = view.record.request.id.clone();
    let items = blocking(move || svc.deliveries(&call)).await?;
    let ms = |m: i64| {
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(m) * 1_000_000)
            .map(crate::format_time)
            .ok()
    };
    Ok(Json(Value::Array(
        items
            .iter()
            .map(|i| {
                json!({
                    "delivery": i.id,
                    "url": i.url,
                    "body": serde_json::from_str::<Value>(&i.body).unwrap_or(Value::Null),
                    "created": ms(i.created_ms),
                    "attempts": i.attempts,
                    "next_attempt": (i.delivered_ms.is_none() && i.abandoned_ms.is_none()).then(|| ms(i.due_ms)).flatten(),
                    "delivered": i.delivered_ms.and_then(ms),
                    "abandoned": i.abandoned_ms.and_then(ms),
                    "last_status": i.last_status,
                    "last_error": i.last_error,
                })
            })
            .collect(),
    )))
}

/// The most records one `GET /v1/records` returns.
const MAX_RECORDS: usize = 10_000;

#[utoipa::path(
    get,
    path = "/v1/records",
    tag = crate::openapi::CALLS,
    params(("business" = Option<String>, Query, description = "One business (a business key: its own, the default)."), ("from" = Option<String>, Query, description = "RFC 3339; default a day ago."), ("to" = Option<String>, Query, description = "RFC 3339; default now."), ("format" = Option<String>, Query, description = "`json` (default) or `csv`."), ("limit" = Option<u32>, Query, description = "1 to 10000; default 1000.")),
    security(("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "Records created in the range, as JSON or (`format=csv`) CSV.", content((Vec<crate::openapi::Record> = "application/json"), (String = "text/csv"))),
        (status = 400, description = "Invalid input; `field` names it.", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
        (status = 500, description = "Something failed on our side.", body = crate::openapi::Error),
    )
)]
async fn records(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    let known = ["business", "from", "to", "format", "limit"];
    if let Some(k) = q.keys().find(|k| !known.contains(&k.as_str())) {
        return Err(ApiError::BadRequest {
            field: Some(k.clone()),
            message: format!(
                "unknown query parameter {k:?}; expected one of: {}",
                known.join(", ")
            ),
        });
    }
    let time = |name: &str, default: OffsetDateTime| -> Result<i64, ApiError> {
        match q.get(name).map(String::as_str) {
            None | Some("") => Ok(unix_ms(default)),
            Some(s) => OffsetDateTime::parse(s, &Rfc3339).map(unix_ms).map_err(|_| {
                ApiError::BadRequest {
                    field: Some(name.into()),
                    message: format!("\"{name}\" must be an RFC 3339 date-time such as 2026-12-01T00:00:00Z, not {s:?}"),
                }
            }),
        }
    };
    let now = OffsetDateTime::now_utc();
    let from_ms = time("from", now - time::Duration::days(1))?;
    let to_ms = time("to", now + time::Duration::minutes(1))?;
    let business = match q.get("business").map(String::as_str) {
        None | Some("") => None,
        Some(b) => Some(BusinessId::new(b).map_err(|e| ApiError::BadRequest {
            field: Some("business".into()),
            message: format!("\"business\" is invalid: {e}"),
        })?),
    };
    let limit = match q.get("limit") {
        None => 1000,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_RECORDS).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                field: Some("limit".into()),
                message: format!("\"limit\" must be a number from 1 to {MAX_RECORDS}"),
            })?,
    };
    let csv = match q.get("format").map(String::as_str) {
        None | Some("json" | "") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::BadRequest {
                field: Some("format".into()),
                message: format!("\"format\" must be json or csv, not {other:?}"),
            })
        }
    };
    // A business key sees its own records only; all of them need the operator (or the lab).
    let business = match (&who, business) {
        (Caller::Business(own), None) => Some(own.clone()),
        (_, Some(b)) => {
            who.for_business(&st.calls.directory(), &b)?;
            Some(b)
        }
        (_, None) => {
            who.server_side(&st.calls.directory())?;
            None
        }
    };
    let filter = RecordFilter {
        business,
        from_ms,
        to_ms,
        limit,
    };
    let svc = st.calls.clone();
    let recs = blocking(move || svc.records(&filter)).await?;
    if csv {
        Ok((
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            records_csv(&recs),
        )
            .into_response())
    } else {
        Ok(Json(Value::Array(recs.iter().map(record_json).collect())).into_response())
    }
}

/// `GET /`: the demo shop page embedding the widget for the first business, as a customer's
/// site would.
#[utoipa::path(
    get,
    path = "/",
    tag = crate::openapi::PAGES,
    responses(
        (status = 200, description = "The demo shop page embedding the widget of the first business.", content_type = "text/html", body = String),
        (status = 503, description = "No business configured.", content_type = "text/html", body = String),
    )
)]
async fn demo_page(State(st): State<AppState>) -> Response {
    let dir = st.calls.directory();
    let Some(b) = dir.businesses.first() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Html(page::message(
                "No business configured",
                "This server has no business to call for.",
            )),
        )
            .into_response();
    };
    let html = live::DEMO_HTML
        .replace("{{BUSINESS}}", &page::escape_html(b.id.as_str()))
        .replace(
            "{{WIDGET_KEY}}",
            &page::escape_html(b.widget_key.as_deref().unwrap_or_default()),
        );
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

#[utoipa::path(
    get,
    path = "/page",
    tag = crate::openapi::PAGES,
    params(("business" = Option<String>, Query, description = "Default: the first business.")),
    responses(
        (status = 200, description = "The click-to-call page.", content_type = "text/html", body = String),
        (status = 404, description = "Unknown business.", content_type = "text/html", body = String),
        (status = 503, description = "No business configured.", content_type = "text/html", body = String),
    )
)]
async fn web_page(
    State(st): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let all = st.calls.businesses();
    let chosen = match q.get("business") {
        Some(id) => all.iter().find(|b| b.id.as_str() == id),
        None => all.first(),
    };
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    match (chosen, q.get("business")) {
        (Some(b), _) => (no_store, Html(page::render(b, &all))).into_response(),
        (None, Some(id)) => (
            StatusCode::NOT_FOUND,
            no_store,
            Html(page::message(
                "Unknown business",
                &format!("There is no business \"{id}\" here."),
            )),
        )
            .into_response(),
        (None, None) => (
            StatusCode::SERVICE_UNAVAILABLE,
            no_store,
            Html(page::message(
                "No business configured",
                "This server has no business to call for.",
            )),
        )
            .into_response(),
    }
}

async fn no_route() -> ApiError {
    ApiError::NotFound {
        field: None,
        message: "there is no such route".into(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
