//! The routes. Handlers validate, call the [`CallService`](crate::CallService) and map its
//! answers to responses; they hold no state of their own.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

use crate::model::{BridgeRequest, CallKind, CallRequest, CallView};
use crate::{page, ApiError, AppJson, AppState};

/// Builds the API. Tests call it with `tower::ServiceExt::oneshot`, no server needed.
///
/// | route | answer |
/// |---|---|
/// | `GET /` | the click-to-call page; `?business=ID`, default the first business |
/// | `GET /healthz` | `{"status":"ok"}` |
/// | `GET /v1/businesses` | `[{"id","name"}]` |
/// | `POST /v1/call-requests` | `202 {"id","status"}` |
/// | `GET /v1/call-requests/{id}` | the call ([`CallView::to_json`]) |
/// | `POST /v1/bridges` | `202 {"id","status"}` |
/// | `GET /v1/bridges/{id}` | the bridge ([`CallView::to_json`]) |
///
/// Errors are `{"error": "…", "field": …}` with 400 / 404 / 405 / 415 / 413 / 500 / 503.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(web_page))
        .route("/healthz", get(healthz))
        .route("/v1/businesses", get(businesses))
        .route("/v1/call-requests", post(create_call_request))
        .route("/v1/call-requests/:id", get(get_call_request))
        .route("/v1/bridges", post(create_bridge))
        .route("/v1/bridges/:id", get(get_bridge))
        .route("/v1/dataplane/stats", get(dataplane_stats))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn dataplane_stats(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    st.calls
        .dataplane_stats()
        .map(Json)
        .ok_or_else(|| ApiError::Unavailable("data-plane statistics are not available".into()))
}

async fn businesses(State(st): State<AppState>) -> Json<Value> {
    let list: Vec<Value> = st
        .calls
        .businesses()
        .iter()
        .map(|b| json!({ "id": b.id.as_str(), "name": b.name }))
        .collect();
    Json(Value::Array(list))
}

fn created(path: &str, view: &CallView) -> Response {
    let location = format!("{path}/{}", view.id);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        Json(json!({ "id": view.id.as_str(), "status": view.status.as_str() })),
    )
        .into_response()
}

async fn create_call_request(
    State(st): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let req = CallRequest::from_json(&body)?;
    let view = st
        .calls
        .submit(req)
        .map_err(|e| e.into_api("preferred_agent"))?;
    Ok(created("/v1/call-requests", &view))
}

async fn create_bridge(
    State(st): State<AppState>,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Response, ApiError> {
    let req = BridgeRequest::from_json(&body)?;
    let view = st.calls.bridge(req).map_err(|e| e.into_api("agent"))?;
    Ok(created("/v1/bridges", &view))
}

fn lookup(st: &AppState, id: &str, kind: CallKind) -> Result<Json<Value>, ApiError> {
    match st.calls.get(id) {
        Some(view) if view.kind == kind => Ok(Json(view.to_json())),
        _ => {
            let what = match kind {
                CallKind::CallRequest => "call request",
                CallKind::Bridge => "bridge",
            };
            Err(ApiError::NotFound {
                field: Some("id".into()),
                message: format!("there is no {what} with id {id:?}"),
            })
        }
    }
}

async fn get_call_request(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    lookup(&st, &id, CallKind::CallRequest)
}

async fn get_bridge(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    lookup(&st, &id, CallKind::Bridge)
}

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

async fn not_found() -> ApiError {
    ApiError::NotFound {
        field: None,
        message: "there is no such route".into(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError::MethodNotAllowed
}
