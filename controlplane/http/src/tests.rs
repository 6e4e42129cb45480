//! Route tests with `oneshot` and an in-memory [`CallService`] test double.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use flows::{AgentId, BusinessId, CallId, Target};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use service::{Bridge, BridgeAgent, Origin, Outcome, RequestView, Submit};
use store::{CallRecord, EventRow, Kind, NewRequest, RecordFilter, Sale};
use time::OffsetDateTime;
use tower::ServiceExt;

use crate::*;

/// Test double: keeps requests in a map, remembers the last requests.
struct FakeCalls {
    dir: service::Directory,
    views: Mutex<HashMap<String, RequestView>>,
    last_request: Mutex<Option<Submit>>,
    last_bridge: Mutex<Option<Bridge>>,
    next: Mutex<u128>,
}

impl Default for FakeCalls {
    fn default() -> Self {
        let b =
            |id: &str, name: &str| service::BusinessEntry::new(BusinessId::new(id).unwrap(), name);
        Self {
            dir: service::Directory {
                businesses: vec![b("acme", "ACME <Corp> & Sons"), b("globex", "Globex")],
                agents: vec![service::AgentEntry::new(
                    AgentId::new("alice").unwrap(),
                    Target::parse("sip:alice@127.0.0.1:15064").unwrap(),
                    vec![BusinessId::new("acme").unwrap()],
                )],
            },
            views: Mutex::default(),
            last_request: Mutex::default(),
            last_bridge: Mutex::default(),
            next: Mutex::default(),
        }
    }
}

const T0: i64 = 1_764_388_800_000; // 2025-11-29T04:00:00Z

fn record(id: CallId, kind: Kind, status: &str) -> CallRecord {
    CallRecord {
        request: NewRequest {
            id,
            kind,
            business: None,
            customer: String::new(),
            preferred_agent: None,
            agent_spec: None,
            contact_at_ms: None,
            page: None,
            client_ip: None,
            created_ms: T0,
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
        updated_ms: T0,
        events: vec![EventRow {
            at_ms: T0,
            status: status.into(),
            reason: None,
            agent: None,
        }],
        media: vec![],
        sale: None,
    }
}

impl FakeCalls {
    fn new_id(&self) -> CallId {
        let mut n = self.next.lock().unwrap();
        *n += 1;
        CallId::from_random(*n)
    }
    fn insert(&self, record: CallRecord) {
        let view = RequestView {
            record,
            queue_position: None,
            estimated_wait_s: None,
            media: (None, None),
        };
        self.insert_view(view);
    }
    fn insert_view(&self, view: RequestView) {
        self.views
            .lock()
            .unwrap()
            .insert(view.record.request.id.to_string(), view);
    }
}

fn at(s: &str) -> OffsetDateTime {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).unwrap()
}

impl CallService for FakeCalls {
    fn submit(&self, req: Submit, _origin: &Origin) -> Result<Outcome, ServiceError> {
        if !["acme", "globex", "keyed"].contains(&req.business.as_str()) {
            return Err(ServiceError::UnknownBusiness(req.business));
        }
        if let Some(a) = &req.preferred_agent {
            if a.as_str() != "alice" {
                return Err(ServiceError::UnknownAgent {
                    field: "preferred_agent",
                    agent: a.clone(),
                });
            }
        }
        let status = if req.contact_at_ms.is_some() {
            "scheduled"
        } else {
            "queued"
        };
        let mut rec = record(self.new_id(), Kind::CallRequest, status);
        rec.request.business = Some(req.business.clone());
        rec.request.customer = req.customer.as_str().to_owned();
        self.insert(rec.clone());
        *self.last_request.lock().unwrap() = Some(req);
        Ok(Outcome::Created(Box::new(rec)))
    }

    fn bridge(&self, req: Bridge, _origin: &Origin) -> Result<Outcome, ServiceError> {
        let agent = match &req.agent {
            BridgeAgent::Id(a) if a.as_str() != "alice" => {
                return Err(ServiceError::UnknownAgent {
                    field: "agent",
                    agent: a.clone(),
                })
            }
            BridgeAgent::Id(a) => a.to_string(),
            BridgeAgent::Target(t) => t.to_string(),
        };
        let mut rec = record(self.new_id(), Kind::Bridge, "calling_customer");
        rec.request.customer = req.customer.as_str().to_owned();
        rec.request.agent_spec = Some(agent);
        self.insert(rec.clone());
        *self.last_bridge.lock().unwrap() = Some(req);
        Ok(Outcome::Created(Box::new(rec)))
    }

    fn get(&self, id: &CallId) -> Result<Option<RequestView>, ServiceError> {
        Ok(self.views.lock().unwrap().get(id.as_str()).cloned())
    }

    fn sale(&self, id: &CallId, sale: &Sale) -> Result<RequestView, ServiceError> {
        let mut views = self.views.lock().unwrap();
        let v = views
            .get_mut(id.as_str())
            .ok_or_else(|| ServiceError::NotFound(id.clone()))?;
        v.record.sale = Some(sale.clone());
        Ok(v.clone())
    }

    fn records(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, ServiceError> {
        let mut out: Vec<CallRecord> = self
            .views
            .lock()
            .unwrap()
            .values()
            .map(|v| v.record.clone())
            .filter(|r| {
                r.request.created_ms >= filter.from_ms
                    && r.request.created_ms < filter.to_ms
                    && (filter.business.is_none() || r.request.business == filter.business)
            })
            .collect();
        out.sort_by(|a, b| a.request.id.cmp(&b.request.id));
        Ok(out)
    }

    fn directory(&self) -> Arc<service::Directory> {
        Arc::new(self.dir.clone())
    }

    fn businesses(&self) -> Vec<BusinessInfo> {
        vec![
            BusinessInfo {
                id: BusinessId::new("acme").unwrap(),
                name: "ACME <Corp> & Sons".into(),
            },
            BusinessInfo {
                id: BusinessId::new("globex").unwrap(),
                name: "Globex".into(),
            },
        ]
    }
}

/// A business with API keys and a widget key (then loopback alone no longer suffices for
/// server-side routes).
fn app_keyed() -> (axum::Router, Arc<FakeCalls>) {
    let mut fake = FakeCalls::default();
    let mut k = service::BusinessEntry::new(BusinessId::new("keyed").unwrap(), "Keyed Inc");
    k.api_keys = vec!["keyed-secret-0123456789".into()];
    k.widget_key = Some("wk-keyed".into());
    k.allowed_origins = vec!["https://shop.example".into()];
    fake.dir.businesses.push(k);
    let fake = Arc::new(fake);
    (
        router(AppState {
            calls: fake.clone(),
            operator_key: None,
        }),
        fake,
    )
}

fn app() -> (axum::Router, Arc<FakeCalls>) {
    let fake = Arc::new(FakeCalls::default());
    (
        router(AppState {
            calls: fake.clone(),
            operator_key: None,
        }),
        fake,
    )
}

/// Requests come from a loopback client (as the lab's and the tests' do).
fn loopback(mut req: Request<Body>) -> Request<Body> {
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
            [127, 0, 0, 1],
            40_000,
        ))));
    req
}

async fn send(
    app: &axum::Router,
    method: Method,
    uri: &str,
    body: Option<&str>,
) -> (StatusCode, Value, String) {
    let mut b = Request::builder().method(method).uri(uri);
    if body.is_some() {
        b = b.header(header::CONTENT_TYPE, "application/json");
    }
    let req = b
        .body(body.map_or_else(Body::empty, |s| Body::from(s.to_owned())))
        .unwrap();
    let res = app.clone().oneshot(loopback(req)).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, text)
}

async fn post(app: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    let (s, v, _) = send(app, Method::POST, uri, Some(&body.to_string())).await;
    (s, v)
}

#[tokio::test]
async fn healthz_is_ok() {
    let (app, _) = app();
    let (s, v, _) = send(&app, Method::GET, "/healthz", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v, json!({"status": "ok"}));
}

#[tokio::test]
async fn dataplane_stats_without_a_data_plane_is_unavailable() {
    let (app, _) = app();
    let (s, v, _) = send(&app, Method::GET, "/v1/dataplane/stats", None).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        v["error"]
            .as_str()
            .is_some_and(|e| e.contains("data-plane statistics")),
        "{v}"
    );
}

#[tokio::test]
async fn call_request_is_accepted_and_validated_into_types() {
    let (app, fake) = app();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/call-requests")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({
                "business": "acme",
                "customer": "+15551234567",
                "page": {"url": "https://acme.example/pricing", "title": "Pricing"},
                "preferred_agent": "alice"
            })
            .to_string(),
        ))
        .unwrap();
    let res = app.clone().oneshot(loopback(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let loc = res.headers()[header::LOCATION].to_str().unwrap().to_owned();
    let body: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(body, json!({"id": id, "status": "queued"}));
    assert_eq!(loc, format!("/v1/call-requests/{id}"));
    let got = fake.last_request.lock().unwrap().clone().unwrap();
    assert_eq!(got.business.as_str(), "acme");
    assert_eq!(got.customer, Target::Tel("+15551234567".into()));
    assert_eq!(
        got.page,
        Some(store::Page {
            url: "https://acme.example/pricing".into(),
            title: "Pricing".into(),
            referrer: String::new(),
        })
    );
    assert_eq!(got.preferred_agent, Some(AgentId::new("alice").unwrap()));
    assert_eq!(got.contact_at_ms, None);
}

#[tokio::test]
async fn contact_time_makes_it_scheduled_and_sip_customers_work() {
    let (app, fake) = app();
    let (s, v) = post(
        &app,
        "/v1/call-requests",
        json!({"business": "globex", "customer": "sip:bob@127.0.0.1:15062", "contact_time": "2026-11-29T15:30:00+01:00"}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(v["status"], "scheduled");
    let got = fake.last_request.lock().unwrap().clone().unwrap();
    assert_eq!(
        got.contact_at_ms,
        Some(i64::try_from(at("2026-11-29T14:30:00Z").unix_timestamp_nanos() / 1_000_000).unwrap())
    );
    assert_eq!(got.customer, Target::Sip("sip:bob@127.0.0.1:15062".into()));
    // null optional fields are the same as absent ones
    let (s, _) = post(
        &app,
        "/v1/call-requests",
        json!({"business": "acme", "customer": "+15551234567", "contact_time": null, "page": null, "preferred_agent": null}),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn every_call_request_validation_error_names_its_field() {
    let (app, _) = app();
    let long = "x".repeat(model::MAX_URL_LEN + 1);
    let cases = [
        (json!({"customer": "+15551234567"}), "business", "required"),
        (
            json!({"business": "ac me", "customer": "+15551234567"}),
            "business",
            "invalid",
        ),
        (
            json!({"business": 5, "customer": "+15551234567"}),
            "business",
            "string",
        ),
        (
            json!({"business": "nope", "customer": "+15551234567"}),
            "business",
            "no business",
        ),
        (json!({"business": "acme"}), "customer", "required"),
        (
            json!({"business": "acme", "customer": "555-1234"}),
            "customer",
            "E.164",
        ),
        (
            json!({"business": "acme", "customer": "+1555"}),
            "customer",
            "8 to 15 digits",
        ),
        (
            json!({"business": "acme", "customer": "sip:@x"}),
            "customer",
            "SIP URI",
        ),
        (
            json!({"business": "acme", "customer": 15551234567u64}),
            "customer",
            "string",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "contact_time": "tomorrow"}),
            "contact_time",
            "RFC 3339",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "page": "x"}),
            "page",
            "object",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "page": {"url": long}}),
            "page.url",
            "longer",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "page": {"title": 1}}),
            "page.title",
            "string",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "page": {"referer": "x"}}),
            "page.referer",
            "unknown field",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "preferred_agent": "a b"}),
            "preferred_agent",
            "invalid",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "preferred_agent": "zed"}),
            "preferred_agent",
            "no agent",
        ),
        (
            json!({"business": "acme", "customer": "+15551234567", "colour": "red"}),
            "colour",
            "unknown field \"colour\"",
        ),
    ];
    for (body, field, words) in cases {
        let (s, v) = post(&app, "/v1/call-requests", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["field"], field, "{body} -> {v}");
        let msg = v["error"].as_str().unwrap();
        assert!(
            msg.contains(words),
            "{body}: {msg:?} should mention {words:?}"
        );
    }
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type() {
    let (app, _) = app();
    let (s, v, _) = send(
        &app,
        Method::POST,
        "/v1/call-requests",
        Some("{\"business\": "),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], Value::Null);
    assert!(
        v["error"].as_str().unwrap().contains("not valid JSON"),
        "{v}"
    );
    let (s, v, _) = send(&app, Method::POST, "/v1/call-requests", Some("[1, 2]")).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["field"], Value::Null);
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/call-requests")
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from("{}"))
        .unwrap();
    let res = app.clone().oneshot(loopback(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert!(v["error"].as_str().unwrap().contains("application/json"));
    assert_eq!(v["field"], Value::Null);
}

#[tokio::test]
async fn get_call_request_shows_the_whole_document() {
    let (app, fake) = app();
    let mut stats = dp_api::LegStats {
        rx_packets: 10,
        rx_bytes: 1720,
        announcement_packets: 4,
        ..Default::default()
    };
    stats.drops.add(dp_api::DropReason::SrcMismatch);
    let mut rec = record(CallId::new("c_42").unwrap(), Kind::CallRequest, "queued");
    rec.request.business = Some(BusinessId::new("acme").unwrap());
    rec.request.customer = "+15551234567".into();
    rec.request.page = Some(store::Page {
        url: "https://acme.example/pricing".into(),
        title: "Pricing".into(),
        referrer: "https://search.example/".into(),
    });
    rec.status = "failed".into();
    rec.reason = Some("customer_busy".into());
    rec.agent = Some("alice".into());
    rec.events = vec![
        EventRow {
            at_ms: T0 + 500,
            status: "queued".into(),
            reason: None,
            agent: None,
        },
        EventRow {
            at_ms: T0 + 1000,
            status: "failed".into(),
            reason: Some("customer_busy".into()),
            agent: None,
        },
    ];
    rec.sale = Some(Sale {
        at_ms: T0 + 2000,
        outcome: "sale".into(),
        amount_minor: Some(4990),
        currency: Some("EUR".into()),
        product: Some("Gold".into()),
        notes: None,
        agent: Some("alice".into()),
    });
    fake.insert_view(RequestView {
        record: rec,
        queue_position: None,
        estimated_wait_s: None,
        media: (Some(service::media_json(&stats)), None),
    });
    let (s, v, _) = send(&app, Method::GET, "/v1/call-requests/c_42", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["id"], "c_42");
    assert_eq!(v["status"], "failed");
    assert_eq!(v["reason"], "customer_busy");
    assert_eq!(v["business"], "acme");
    assert_eq!(v["customer"], "+15551234567");
    assert_eq!(v["agent"], "alice");
    assert_eq!(
        v["events"],
        json!([
            {"at": "2025-11-29T04:00:00.500Z", "status": "queued"},
            {"at": "2025-11-29T04:00:01.000Z", "status": "failed", "reason": "customer_busy"}
        ])
    );
    let c = &v["media"]["customer"];
    for key in [
        "rx_packets",
        "rx_bytes",
        "tx_packets",
        "tx_bytes",
        "rx_rtcp",
        "tx_rtcp",
        "announcement_packets",
        "jitter_us",
    ] {
        assert!(c[key].is_u64(), "{key} in {c}");
    }
    assert_eq!(c["rx_bytes"], 1720);
    assert_eq!(c["drops"]["src_mismatch"], 1);
    assert_eq!(v["media"]["agent"], Value::Null);
    assert_eq!(v["page"]["referrer"], "https://search.example/");
    assert_eq!(v["sale"]["amount"], "49.90");
    assert_eq!(v["sale"]["currency"], "EUR");

    // A fresh call: nulls until known.
    let (_, created) = post(
        &app,
        "/v1/call-requests",
        json!({"business": "acme", "customer": "+15551234567"}),
    )
    .await;
    let (s, v, _) = send(
        &app,
        Method::GET,
        &format!("/v1/call-requests/{}", created["id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "queued");
    assert_eq!(v["reason"], Value::Null);
    assert_eq!(v["agent"], Value::Null);
    assert_eq!(v["media"], Value::Null);
}

#[tokio::test]
async fn unknown_ids_are_404_naming_the_id() {
    let (app, _) = app();
    for uri in ["/v1/call-requests/c_nope", "/v1/bridges/c_nope"] {
        let (s, v, _) = send(&app, Method::GET, uri, None).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
        assert_eq!(v["field"], "id");
        assert!(v["error"].as_str().unwrap().contains("c_nope"));
    }
    // A bridge is not a call request and vice versa.
    let (_, b) = post(
        &app,
        "/v1/bridges",
        json!({"customer": "+15551234567", "agent": "alice"}),
    )
    .await;
    let id = b["id"].as_str().unwrap();
    let (s, _, _) = send(&app, Method::GET, &format!("/v1/call-requests/{id}"), None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, v, _) = send(&app, Method::GET, &format!("/v1/bridges/{id}"), None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["status"], "calling_customer");
    assert_eq!(v["agent"], "alice");
    assert_eq!(v["business"], Value::Null);
}

#[tokio::test]
async fn bridges_take_an_agent_id_uri_or_number() {
    let (app, fake) = app();
    for (agent, want) in [
        ("alice", BridgeAgent::Id(AgentId::new("alice").unwrap())),
        (
            "sip:carol@127.0.0.1:15068",
            BridgeAgent::Target(Target::Sip("sip:carol@127.0.0.1:15068".into())),
        ),
        (
            "+4930123456",
            BridgeAgent::Target(Target::Tel("+4930123456".into())),
        ),
    ] {
        let (s, v) = post(
            &app,
            "/v1/bridges",
            json!({"customer": "+15551234567", "agent": agent}),
        )
        .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{agent}: {v}");
        assert_eq!(v["status"], "calling_customer");
        assert!(v["id"].is_string());
        assert_eq!(
            fake.last_bridge.lock().unwrap().clone().unwrap().agent,
            want
        );
    }
    let cases = [
        (json!({"agent": "alice"}), "customer"),
        (json!({"customer": "bob", "agent": "alice"}), "customer"),
        (json!({"customer": "+15551234567"}), "agent"),
        (
            json!({"customer": "+15551234567", "agent": "sip:"}),
            "agent",
        ),
        (json!({"customer": "+15551234567", "agent": "+12"}), "agent"),
        (
            json!({"customer": "+15551234567", "agent": "not an id"}),
            "agent",
        ),
        (json!({"customer": "+15551234567", "agent": "zed"}), "agent"),
        (
            json!({"customer": "+15551234567", "agent": "alice", "business": "acme"}),
            "business",
        ),
    ];
    for (body, field) in cases {
        let (s, v) = post(&app, "/v1/bridges", body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(v["field"], field, "{body} -> {v}");
        assert!(!v["error"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn wrong_method_is_405_and_unknown_route_404() {
    let (app, _) = app();
    for (m, uri) in [
        (Method::GET, "/v1/call-requests"),
        (Method::PATCH, "/v1/call-requests/c_1"),
        (Method::POST, "/healthz"),
        (Method::PUT, "/v1/bridges"),
    ] {
        let (s, v, _) = send(&app, m.clone(), uri, None).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m} {uri}");
        assert_eq!(v["error"], "method not allowed");
    }
    let (s, v, _) = send(&app, Method::GET, "/v2/nothing", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["field"], Value::Null);
}

#[tokio::test]
async fn businesses_are_listed() {
    let (app, _) = app();
    let (s, v, _) = send(&app, Method::GET, "/v1/businesses", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        v,
        json!([{"id": "acme", "name": "ACME <Corp> & Sons"}, {"id": "globex", "name": "Globex"}])
    );
}

#[tokio::test]
async fn the_page_is_served_for_the_chosen_business() {
    let (app, _) = app();
    let res = app
        .clone()
        .oneshot(loopback(Request::get("/page").body(Body::empty()).unwrap()))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(res.headers()[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let html =
        String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
    for needle in [
        "id=\"phone\"",
        "id=\"call-button\"",
        "id=\"status\"",
        "id=\"when\"",
        "data-business=\"acme\"",
        "ACME &lt;Corp&gt; &amp; Sons",
        ">Call me<",
        "/v1/call-requests",
        "location.href",
        "document.title",
        "500",
        "aria-live=\"polite\"",
        "<label for=\"phone\"",
    ] {
        assert!(html.contains(needle), "page lacks {needle}");
    }
    assert!(!html.contains("<script src"), "no external assets");
    assert!(
        !html.contains("<link rel=\"stylesheet"),
        "no external assets"
    );
    assert!(
        html.contains("<link rel=\"icon\" href=\"data:,\">"),
        "an inline (empty) icon: no /favicon.ico 404"
    );
    assert!(!html.contains("{{"), "template fully filled");

    let (s, _, html) = send(&app, Method::GET, "/page?business=globex", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(html.contains("data-business=\"globex\"") && html.contains("<h1>Globex</h1>"));

    let (s, _, html) = send(&app, Method::GET, "/page?business=nope", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(html.contains("nope"));
}

mod access;
mod admin;
mod records;
