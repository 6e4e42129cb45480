//! Who may cancel, and how the service's answers map to statuses.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flows::{AgentId, BusinessId, CallId, Target};
use http_body_util::BodyExt;
use serde_json::Value;
use service::{Bridge, Cancelled, Origin, Outcome, RequestView, ServiceError, Submit};
use store::{CallRecord, EventRow, Kind, NewRequest, RecordFilter, Sale};
use tower::ServiceExt;

use crate::{router, AppState, BusinessInfo, CallService};

/// One call `c_…1` of business `acme` in status `status`; `cancel` records `cancelled`.
struct OneCall {
    dir: Arc<service::Directory>,
    view: Mutex<RequestView>,
}

fn id() -> CallId {
    CallId::from_random(1)
}

impl OneCall {
    fn new(status: &str) -> Self {
        let acme = BusinessId::new("acme").unwrap();
        let mut b = service::BusinessEntry::new(acme.clone(), "ACME");
        b.widget_key = Some("wk-acme-1".into());
        b.api_keys = vec!["acme-key-0123456789".into()];
        b.allowed_origins = vec!["https://shop.example".into()];
        let mut alice = service::AgentEntry::new(
            AgentId::new("alice").unwrap(),
            Target::parse("sip:alice@127.0.0.1:5070").unwrap(),
            vec![acme.clone()],
        );
        alice.token = Some("alice-token-0123456789".into());
        let record = CallRecord {
            request: NewRequest {
                id: id(),
                kind: Kind::CallRequest,
                business: Some(acme),
                customer: "+15551234567".into(),
                preferred_agent: None,
                agent_spec: None,
                contact_at_ms: None,
                page: None,
                client_ip: None,
                created_ms: 0,
                status: status.into(),
                due_ms: None,
                claimed_by: None,
                webhook: None,
                skill: None,
            },
            status: status.into(),
            reason: None,
            agent: None,
            attempts: 0,
            due_ms: None,
            updated_ms: 0,
            events: vec![EventRow {
                at_ms: 0,
                status: status.into(),
                reason: None,
                agent: None,
            }],
            media: Vec::new(),
            sale: None,
        };
        Self {
            dir: Arc::new(service::Directory {
                businesses: vec![b],
                agents: vec![alice],
            }),
            view: Mutex::new(RequestView {
                record,
                queue_position: None,
                estimated_wait_s: None,
                media: (None, None),
            }),
        }
    }
}

impl CallService for OneCall {
    fn submit(&self, _: Submit, _: &Origin) -> Result<Outcome, ServiceError> {
        Err(ServiceError::Unavailable("test".into()))
    }
    fn bridge(&self, _: Bridge, _: &Origin) -> Result<Outcome, ServiceError> {
        Err(ServiceError::Unavailable("test".into()))
    }
    fn get(&self, id: &CallId) -> Result<Option<RequestView>, ServiceError> {
        let v = self.view.lock().unwrap().clone();
        Ok((v.record.request.id == *id).then_some(v))
    }
    fn sale(&self, id: &CallId, _: &Sale) -> Result<RequestView, ServiceError> {
        Err(ServiceError::NotFound(id.clone()))
    }
    fn records(&self, _: &RecordFilter) -> Result<Vec<CallRecord>, ServiceError> {
        Ok(Vec::new())
    }
    fn businesses(&self) -> Vec<BusinessInfo> {
        Vec::new()
    }
    fn directory(&self) -> Arc<service::Directory> {
        self.dir.clone()
    }
    fn cancel(&self, _: &CallId) -> Result<Cancelled, ServiceError> {
        let mut v = self.view.lock().unwrap();
        if matches!(
            v.record.status.as_str(),
            "completed" | "failed" | "cancelled"
        ) {
            return Ok(Cancelled::AlreadyEnded(Box::new(v.clone())));
        }
        v.record.status = "cancelled".into();
        Ok(Cancelled::Stored(Box::new(v.clone())))
    }
    fn live_ids(&self) -> Vec<CallId> {
        vec![id()]
    }
}

async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let mut req = req.body(Body::empty()).unwrap();
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40_000,
        ))));
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn cancel_answers_the_call_then_409_and_refuses_widgets_and_agents() {
    let app = router(AppState {
        calls: Arc::new(OneCall::new("queued")),
        operator_key: Some("operator-key-0123456789".into()),
    });
    let path = format!("/v1/call-requests/{}", id());
    let widget = [
        ("x-widget-key", "wk-acme-1"),
        ("origin", "https://shop.example"),
    ];
    let agent = [("authorization", "Bearer alice-token-0123456789")];
    let operator = [("authorization", "Bearer operator-key-0123456789")];
    for h in [&widget[..], &agent[..]] {
        let (s, v) = send(&app, Method::DELETE, &path, h).await;
        assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    }
    let (s, v) = send(&app, Method::DELETE, &path, &[]).await;
    assert_eq!(
        s,
        StatusCode::UNAUTHORIZED,
        "loopback without a key, a keyed server: {v}"
    );

    let (s, v) = send(&app, Method::GET, "/v1/calls", &operator).await;
    assert_eq!(
        (s, v[0]["id"].as_str()),
        (StatusCode::OK, Some(id().as_str()))
    );

    // Its business's key (the operator's works as well).
    let business = [("authorization", "Bearer acme-key-0123456789")];
    let (s, v) = send(&app, Method::DELETE, &path, &business).await;
    assert_eq!(
        (s, v["status"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{v}"
    );
    let (s, v) = send(&app, Method::DELETE, &path, &operator).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(
        v,
        serde_json::json!({"error": "call already ended", "field": "id"})
    );
    let (s, v) = send(&app, Method::DELETE, "/v1/call-requests/c_nope", &operator).await;
    assert_eq!(
        (s, v["field"].as_str()),
        (StatusCode::NOT_FOUND, Some("id")),
        "{v}"
    );
    // Agents and widgets do not see the live calls.
    let (s, _) = send(&app, Method::GET, "/v1/calls", &agent).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
}
