//! The operator's process routes (`/v1/admin/status`, `/drain`, `/reload`), `/healthz` while
//! draining, and the `503` with `Retry-After` of a call request refused while draining.

use std::sync::atomic::{AtomicBool, Ordering};

use super::*;
use crate::admin::ReloadRefusal;

/// [`FakeCalls`] that can drain and reload (a reload succeeds once, then finds a bad file).
#[derive(Default)]
struct Drainable {
    inner: FakeCalls,
    draining: AtomicBool,
    reloaded: AtomicBool,
}

impl CallService for Drainable {
    fn submit(&self, req: Submit, origin: &Origin) -> Result<Outcome, ServiceError> {
        if self.draining.load(Ordering::SeqCst) {
            return Err(ServiceError::Draining { retry_after_s: 5 });
        }
        self.inner.submit(req, origin)
    }
    fn bridge(&self, req: Bridge, origin: &Origin) -> Result<Outcome, ServiceError> {
        self.inner.bridge(req, origin)
    }
    fn get(&self, id: &CallId) -> Result<Option<RequestView>, ServiceError> {
        self.inner.get(id)
    }
    fn sale(&self, id: &CallId, sale: &Sale) -> Result<RequestView, ServiceError> {
        self.inner.sale(id, sale)
    }
    fn records(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, ServiceError> {
        self.inner.records(filter)
    }
    fn businesses(&self) -> Vec<BusinessInfo> {
        self.inner.businesses()
    }
    fn directory(&self) -> Arc<service::Directory> {
        self.inner.directory()
    }
    fn admin_status(&self) -> Option<Value> {
        let state = if self.draining() {
            "draining"
        } else {
            "serving"
        };
        Some(json!({"state": state, "live_calls": 0}))
    }
    fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }
    fn drain(&self) -> Option<Value> {
        self.draining.store(true, Ordering::SeqCst);
        Some(json!({"state": "draining", "live_calls": 0}))
    }
    fn reload(&self) -> Result<Value, ReloadRefusal> {
        if self.reloaded.swap(true, Ordering::SeqCst) {
            return Err(ReloadRefusal::invalid(
                "cb.toml:3: agent[0].contact: \"bob\" is neither an E.164 number nor a SIP URI",
                "agent[0].contact",
            ));
        }
        Ok(json!({"reloaded": true, "businesses": 2, "agents": 1}))
    }
}

#[tokio::test]
async fn without_a_process_behind_the_routes_say_so() {
    let (app, _) = app();
    let (s, v, _) = send(&app, Method::GET, "/v1/admin/status", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let (s, v) = post(&app, "/v1/admin/drain", json!({})).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    let (s, v) = post(&app, "/v1/admin/reload", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{v}");
    assert!(v["error"].is_string() && v["field"].is_null(), "{v}");
}

#[tokio::test]
async fn drain_turns_healthz_and_new_requests_away() {
    let app = router(AppState {
        calls: Arc::new(Drainable::default()),
        operator_key: None,
    });
    let (s, v, _) = send(&app, Method::GET, "/healthz", None).await;
    assert_eq!((s, v), (StatusCode::OK, json!({"status": "ok"})));
    let (s, v) = post(&app, "/v1/admin/drain", json!({})).await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v["state"], "draining");
    let (s, v, _) = send(&app, Method::GET, "/healthz", None).await;
    assert_eq!(
        (s, v),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "draining"})
        )
    );
    let (s, v, _) = send(&app, Method::GET, "/v1/admin/status", None).await;
    assert_eq!((s, &v["state"]), (StatusCode::OK, &json!("draining")));
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/call-requests")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({"business": "acme", "customer": "+15551234567"}).to_string(),
        ))
        .unwrap();
    let res = app.clone().oneshot(loopback(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()[header::RETRY_AFTER], "5");
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["reason"], "draining");
    assert_eq!(v["retry_after_s"], 5);
    assert!(v["error"].as_str().unwrap().contains("draining"), "{v}");
}

#[tokio::test]
async fn reload_answers_its_figures_or_the_files_error() {
    let app = router(AppState {
        calls: Arc::new(Drainable::default()),
        operator_key: None,
    });
    let (s, v) = post(&app, "/v1/admin/reload", json!({})).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["reloaded"], true);
    let (s, v) = post(&app, "/v1/admin/reload", json!({})).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["field"], "agent[0].contact");
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("cb.toml:3: agent[0].contact: "));
}

#[tokio::test]
async fn the_admin_routes_need_the_operator() {
    let app = router(AppState {
        calls: Arc::new(Drainable::default()),
        operator_key: Some(Arc::from("operator-key-0123456789")),
    });
    // Not from loopback: no credential, no admin.
    for (method, uri) in [
        (Method::GET, "/v1/admin/status"),
        (Method::POST, "/v1/admin/drain"),
        (Method::POST, "/v1/admin/reload"),
    ] {
        let req = Request::builder()
            .method(method.clone())
            .uri(uri)
            .body(Body::empty())
            .unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{method} {uri}");
    }
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/admin/drain")
        .header(header::AUTHORIZATION, "Bearer operator-key-0123456789")
        .body(Body::empty())
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
}
