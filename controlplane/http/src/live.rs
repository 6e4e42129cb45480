//! The visitor's live side: the widget's business information, the status stream of one
//! request (Server-Sent Events), CORS for the widget's origins, and the static assets.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use flows::{BusinessId, CallId};
use futures_util::stream::{self, Stream};
use serde_json::{json, Value};
use service::{Notice, RequestView};
use time::OffsetDateTime;
use tokio::sync::broadcast;

use crate::auth::origin;
use crate::model::format_time;
use crate::{ApiError, AppState, CallService};

/// How often a waiting request's queue position is refreshed on its stream.
const QUEUE_REFRESH: Duration = Duration::from_secs(2);
/// Slots offered by the widget.
const SLOTS: usize = 24;
/// Slot spacing.
const SLOT_STEP_MINUTES: i64 = 30;

/// `Access-Control-Allow-Origin` for a request whose `Origin` one of the businesses allows
/// (the widget on a customer's page); nothing for other origins, so browsers refuse them.
pub(crate) fn cors(
    st: &AppState,
    headers: &HeaderMap,
    business: Option<&BusinessId>,
) -> Vec<(header::HeaderName, HeaderValue)> {
    let Some(o) = origin(headers) else {
        return Vec::new();
    };
    let dir = st.calls.directory();
    let allowed = dir
        .businesses
        .iter()
        .filter(|b| business.is_none_or(|id| &b.id == id))
        .any(|b| b.allowed_origins.iter().any(|a| a == o));
    match (allowed, HeaderValue::from_str(o)) {
        (true, Ok(v)) => vec![
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, v),
            (header::VARY, HeaderValue::from_static("Origin")),
        ],
        _ => Vec::new(),
    }
}

/// `OPTIONS` preflight for the widget's routes.
pub(crate) async fn preflight(State(st): State<AppState>, headers: HeaderMap) -> Response {
    let mut h = cors(&st, &headers, None);
    if h.is_empty() {
        return StatusCode::FORBIDDEN.into_response();
    }
    h.push((
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, POST, OPTIONS"),
    ));
    h.push((
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("Content-Type, X-Widget-Key, Idempotency-Key"),
    ));
    h.push((
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    ));
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().extend(h);
    res
}

/// `OPTIONS /v1/businesses/{id}/widget`: the CORS preflight ([`preflight`]).
#[utoipa::path(
    options,
    path = "/v1/businesses/{id}/widget",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    responses(
        (status = 204, description = "Allowed: `Access-Control-Allow-*` headers for an allowed `Origin`."),
        (status = 403, description = "The `Origin` is not allowed by any business (no body)."),
    )
)]
pub(crate) async fn preflight_widget(st: State<AppState>, headers: HeaderMap) -> Response {
    preflight(st, headers).await
}

/// `OPTIONS /v1/call-requests`: the CORS preflight ([`preflight`]).
#[utoipa::path(
    options,
    path = "/v1/call-requests",
    tag = crate::openapi::CALLS,
    responses(
        (status = 204, description = "Allowed: `Access-Control-Allow-*` headers for an allowed `Origin`."),
        (status = 403, description = "The `Origin` is not allowed by any business (no body)."),
    )
)]
pub(crate) async fn preflight_call_requests(st: State<AppState>, headers: HeaderMap) -> Response {
    preflight(st, headers).await
}

/// `OPTIONS /v1/call-requests/{id}/events`: the CORS preflight ([`preflight`]).
#[utoipa::path(
    options,
    path = "/v1/call-requests/{id}/events",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    responses(
        (status = 204, description = "Allowed: `Access-Control-Allow-*` headers for an allowed `Origin`."),
        (status = 403, description = "The `Origin` is not allowed by any business (no body)."),
    )
)]
pub(crate) async fn preflight_events(st: State<AppState>, headers: HeaderMap) -> Response {
    preflight(st, headers).await
}

fn ts(t: jiff::Timestamp) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(t.as_millisecond()) * 1_000_000)
        .map_or_else(|_| t.to_string(), format_time)
}

/// `GET /v1/businesses/{id}/widget`: what the widget needs to render for a business:
/// `{"id", "name", "time_zone", "default_country", "open_now", "next_opening", "slots"}`.
#[utoipa::path(
    get,
    path = "/v1/businesses/{id}/widget",
    tag = crate::openapi::BUSINESSES,
    params(("id" = String, Path, description = "The id.")),
    responses(
        (status = 200, description = "`{\"id\", \"name\", \"time_zone\", \"default_country\", \"open_now\", \"next_opening\", \"slots\"}`.", body = crate::openapi::Object),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn widget_info(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound {
        field: Some("id".into()),
        message: format!("there is no business {id:?}"),
    };
    let bid = BusinessId::new(id.as_str()).map_err(|_| not_found())?;
    let dir = st.calls.directory();
    let b = dir.business(&bid).ok_or_else(not_found)?;
    let now = jiff::Timestamp::now();
    let (open_now, next_opening, slots) = match &b.hours {
        None => (true, None, Vec::new()),
        Some(h) => {
            let mut slots = Vec::new();
            // Slot starts on the half hour, inside opening hours, over the next 7 days.
            let step = jiff::SignedDuration::from_mins(SLOT_STEP_MINUTES);
            let ms = SLOT_STEP_MINUTES * 60_000;
            let first = (now.as_millisecond() / ms + 1) * ms;
            let mut t = jiff::Timestamp::from_millisecond(first).unwrap_or(now);
            let until = now + jiff::SignedDuration::from_hours(24 * 7);
            while slots.len() < SLOTS && t < until {
                if h.is_open(t) {
                    slots.push(ts(t));
                    t += step;
                } else {
                    match h.next_opening(t) {
                        Some(o) => {
                            let ceil = (o.as_millisecond() + ms - 1) / ms * ms;
                            t = jiff::Timestamp::from_millisecond(ceil).unwrap_or(until);
                        }
                        None => break,
                    }
                }
            }
            (h.is_open(now), h.next_opening(now).map(ts), slots)
        }
    };
    let body = json!({
        "id": b.id.as_str(),
        "name": b.name,
        "time_zone": b.time_zone,
        "default_country": b.default_country,
        "open_now": open_now,
        "next_opening": if open_now { None } else { next_opening },
        "slots": slots,
    });
    let mut res = Json(body).into_response();
    res.headers_mut().extend(cors(&st, &headers, Some(&bid)));
    Ok(res)
}

/// One status message of the stream.
fn status_json(v: &RequestView) -> Value {
    let r = &v.record;
    let at = r.events.last().map_or(r.updated_ms, |e| e.at_ms);
    json!({
        "id": r.request.id.as_str(),
        "status": r.status,
        "reason": r.reason,
        "queue_position": v.queue_position,
        "estimated_wait_s": v.estimated_wait_s,
        "contact_time": r.request.contact_at_ms.and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()).map(ts),
        "agent": r.agent,
        "at": jiff::Timestamp::from_millisecond(at).ok().map(ts),
    })
}

fn is_final(status: &str) -> bool {
    matches!(status, "completed" | "failed" | "cancelled")
}

async fn current(svc: &Arc<dyn CallService>, id: &CallId) -> Option<RequestView> {
    let svc = svc.clone();
    let id = id.clone();
    tokio::task::spawn_blocking(move || svc.get(&id).ok().flatten())
        .await
        .ok()
        .flatten()
}

struct Watch {
    svc: Arc<dyn CallService>,
    id: CallId,
    rx: Option<broadcast::Receiver<Notice>>,
    last: Option<Value>,
    done: bool,
}

impl Watch {
    /// The next message worth sending, or `None` when the stream is over.
    async fn next(&mut self) -> Option<Value> {
        loop {
            if self.done {
                return None;
            }
            if self.last.is_some() {
                let changed = match self.rx.as_mut() {
                    Some(rx) => tokio::select! {
                        n = rx.recv() => match n {
                            Ok(Notice::Status(e)) => e.id == self.id,
                            Ok(_) => false,
                            // Lagged: look again; closed: poll.
                            Err(broadcast::error::RecvError::Lagged(_)) => true,
                            Err(broadcast::error::RecvError::Closed) => {
                                self.rx = None;
                                true
                            }
                        },
                        () = tokio::time::sleep(QUEUE_REFRESH) => true,
                    },
                    None => {
                        tokio::time::sleep(QUEUE_REFRESH).await;
                        true
                    }
                };
                if !changed {
                    continue;
                }
            }
            let view = current(&self.svc, &self.id).await?;
            let msg = status_json(&view);
            if is_final(&view.record.status) {
                self.done = true;
            }
            if self.last.as_ref() != Some(&msg) {
                self.last = Some(msg.clone());
                return Some(msg);
            }
        }
    }
}

/// `GET /v1/call-requests/{id}/events`: the request's status as Server-Sent Events
/// (`event: status`, data as [`status_json`]); the first message is the current state, the
/// stream ends after a final status. The id (128 random bits) is the capability: the stream
/// shows status, queue position and wait, nothing about the customer.
#[utoipa::path(
    get,
    path = "/v1/call-requests/{id}/events",
    tag = crate::openapi::CALLS,
    params(("id" = String, Path, description = "The id.")),
    responses(
        (status = 200, description = "Server-Sent Events (`event: status`) until a final status.", content_type = "text/event-stream", body = String),
        (status = 404, description = "No such id.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn events(
    State(st): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let not_found = || ApiError::NotFound {
        field: Some("id".into()),
        message: format!("there is no call request with id {id:?}"),
    };
    let call = CallId::new(id.as_str()).map_err(|_| not_found())?;
    let first = current(&st.calls, &call).await.ok_or_else(not_found)?;
    let business = first.record.request.business.clone();
    let watch = Watch {
        rx: st.calls.subscribe(),
        svc: st.calls.clone(),
        id: call,
        last: None,
        done: false,
    };
    let stream = sse_stream(watch);
    let mut res = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response();
    res.headers_mut()
        .extend(cors(&st, &headers, business.as_ref()));
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(res)
}

fn sse_stream(watch: Watch) -> impl Stream<Item = Result<Event, Infallible>> {
    stream::unfold(watch, |mut w| async move {
        let msg = w.next().await?;
        Some((
            Ok(Event::default().event("status").data(msg.to_string())),
            w,
        ))
    })
}

/// The embeddable widget (`GET /widget.js`).
pub(crate) const WIDGET_JS: &str = include_str!("../assets/widget.js");
/// The agent desktop (`GET /agent`).
pub(crate) const AGENT_HTML: &str = include_str!("../assets/agent.html");
/// The demo page (`GET /`): a shop page embedding the widget as a customer's site would.
pub(crate) const DEMO_HTML: &str = include_str!("../assets/demo.html");

/// `GET /widget.js`.
#[utoipa::path(
    get,
    path = "/widget.js",
    tag = crate::openapi::PAGES,
    responses(
        (status = 200, description = "The embeddable widget.", content_type = "text/javascript", body = String),
    )
)]
pub(crate) async fn widget_js() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        ],
        WIDGET_JS,
    )
        .into_response()
}

/// `GET /agent`.
#[utoipa::path(
    get,
    path = "/agent",
    tag = crate::openapi::PAGES,
    responses(
        (status = 200, description = "The agent desktop.", content_type = "text/html", body = String),
    )
)]
pub(crate) async fn agent_page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        AGENT_HTML,
    )
        .into_response()
}
