//! Live calls (`GET /v1/calls`), cancelling a request or hanging up a call
//! (`DELETE /v1/call-requests/{id}`), and the API description (`GET /openapi.json`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use flows::CallId;
use serde_json::Value;
use service::{Cancelled, RequestView};

use crate::auth::Caller;
use crate::desktop::who;
use crate::model::view_json;
use crate::openapi::{Call, Error, CALLS, PAGES};
use crate::routes::blocking;
use crate::{ApiError, AppState};

/// How long `DELETE` waits for a live call's legs to be hung up and its status recorded.
const HANGUP_WAIT: Duration = Duration::from_secs(15);
/// How often it looks.
const HANGUP_POLL: Duration = Duration::from_millis(50);

/// The document served at `/openapi.json`, serialized once when the router is built.
#[derive(Debug, Clone)]
pub(crate) struct OpenApiJson(pub(crate) Arc<str>);

fn no_call(id: &str) -> ApiError {
    ApiError::NotFound {
        field: Some("id".into()),
        message: format!("there is no call with id {id:?}"),
    }
}

async fn view(st: &AppState, id: &CallId) -> Result<Option<RequestView>, ApiError> {
    let svc = st.calls.clone();
    let id = id.clone();
    blocking(move || svc.get(&id)).await
}

/// The call's business key or the operator (the lab without keys); not agents or widgets.
fn authorise(st: &AppState, who: &Caller, v: &RequestView) -> Result<(), ApiError> {
    let dir = st.calls.directory();
    if matches!(who, Caller::Agent(_) | Caller::Widget(_)) {
        return Err(ApiError::Forbidden {
            field: None,
            message: "only the business's API key or the operator key may cancel calls".into(),
        });
    }
    match &v.record.request.business {
        Some(b) => who.for_business(&dir, b),
        None => who.server_side(&dir),
    }
}

/// `DELETE /v1/call-requests/{id}`: cancels a waiting request at once (the scheduler never
/// dials it), or hangs up a live call (CANCEL to a ringing leg, BYE to an answered one) and
/// answers once it is recorded `cancelled`. Any kind of call (call request, inbound call,
/// bridge) is accepted by its id.
#[utoipa::path(
    delete,
    path = "/v1/call-requests/{id}",
    tag = CALLS,
    params(("id" = String, Path, description = "The call's id (`c_…`).")),
    security(("business_key" = []), ("operator_key" = [])),
    responses(
        (status = 200, description = "The call after cancelling: status `cancelled`.", body = Call),
        (status = 401, description = "No or an unknown key.", body = Error),
        (status = 403, description = "A key of another business.", body = Error),
        (status = 404, description = "No such call.", body = Error),
        (status = 409, description = "The call already ended (`call already ended`).", body = Error),
        (status = 500, description = "The store failed.", body = Error),
        (status = 503, description = "The legs were not hung up in time.", body = Error),
    )
)]
pub(crate) async fn cancel_call(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    let call = CallId::new(id.as_str()).map_err(|_| no_call(&id))?;
    let v = view(&st, &call).await?.ok_or_else(|| no_call(&id))?;
    authorise(&st, &who, &v)?;
    let svc = st.calls.clone();
    let c = call.clone();
    let ended = || ApiError::Conflict {
        field: Some("id".into()),
        message: "call already ended".into(),
    };
    match blocking(move || svc.cancel(&c)).await? {
        Cancelled::Stored(v) => Ok(Json(view_json(&v))),
        Cancelled::AlreadyEnded(_) => Err(ended()),
        Cancelled::Signalled => {
            let until = tokio::time::Instant::now() + HANGUP_WAIT;
            loop {
                let now = view(&st, &call).await?.ok_or_else(|| no_call(&id))?;
                if matches!(
                    now.record.status.as_str(),
                    "completed" | "failed" | "cancelled"
                ) {
                    return Ok(Json(view_json(&now)));
                }
                if tokio::time::Instant::now() >= until {
                    return Err(ApiError::Unavailable(format!(
                        "call {id} was told to hang up but is still {}",
                        now.record.status
                    )));
                }
                tokio::time::sleep(HANGUP_POLL).await;
            }
        }
    }
}

/// `GET /v1/calls`: every live call of this process (dialled, or waiting for an agent), as
/// `GET /v1/call-requests/{id}` shows it; a business key sees its own calls only.
#[utoipa::path(
    get,
    path = "/v1/calls",
    tag = CALLS,
    security(("operator_key" = []), ("business_key" = [])),
    responses(
        (status = 200, description = "The live calls, oldest id first.", body = Vec<Call>),
        (status = 401, description = "No or an unknown key.", body = Error),
        (status = 403, description = "An agent token or widget key.", body = Error),
        (status = 500, description = "The store failed.", body = Error),
    )
)]
pub(crate) async fn list_calls(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let who = who(&st, &headers, peer.map(|c| c.0), None)?;
    who.server_side(&st.calls.directory())?;
    let own = match &who {
        Caller::Business(b) => Some(b.clone()),
        _ => None,
    };
    let mut out = Vec::new();
    for id in st.calls.live_ids() {
        let Some(v) = view(&st, &id).await? else {
            continue;
        };
        if own.is_some() && v.record.request.business != own {
            continue;
        }
        out.push(view_json(&v));
    }
    Ok(Json(Value::Array(out)))
}

/// `GET /openapi.json`: this document (OpenAPI 3.1).
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = PAGES,
    responses((status = 200, description = "The OpenAPI 3.1 description of every route.", content_type = "application/json", body = crate::openapi::Object))
)]
pub(crate) async fn openapi_json(Extension(doc): Extension<OpenApiJson>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests;
