//! The document covers every route the router has, with its methods, and every error it
//! documents is the shared error schema; it is OpenAPI 3.1 in shape.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use flows::CallId;
use http_body_util::BodyExt;
use serde_json::Value;
use service::{Bridge, Origin, Outcome, RequestView, ServiceError, Submit};
use store::{CallRecord, RecordFilter, Sale};
use tower::ServiceExt;

use crate::{AppState, BusinessInfo, CallService};

/// A service with nothing in it: every lookup is "not found".
struct Empty(Arc<service::Directory>);

impl CallService for Empty {
    fn submit(&self, _: Submit, _: &Origin) -> Result<Outcome, ServiceError> {
        Err(ServiceError::Unavailable("test".into()))
    }
    fn bridge(&self, _: Bridge, _: &Origin) -> Result<Outcome, ServiceError> {
        Err(ServiceError::Unavailable("test".into()))
    }
    fn get(&self, _: &CallId) -> Result<Option<RequestView>, ServiceError> {
        Ok(None)
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
        self.0.clone()
    }
}

fn doc() -> Value {
    serde_json::to_value(crate::openapi()).unwrap()
}

const METHODS: [&str; 6] = ["get", "post", "put", "delete", "patch", "options"];

/// `(path, method)` of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in METHODS {
            if item.get(m).is_some() {
                out.push((path.clone(), m.to_owned()));
            }
        }
    }
    out
}

#[test]
fn the_document_is_openapi_3_1() {
    let d = doc();
    assert!(
        d["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        d["openapi"]
    );
    assert_eq!(d["info"]["title"], "callbridge");
    assert!(d["info"]["version"].is_string());
    assert!(d["paths"].as_object().is_some_and(|p| p.len() > 20));
    let schemas = d["components"]["schemas"].as_object().unwrap();
    let error = &schemas["Error"];
    assert_eq!(error["properties"]["error"]["type"], "string");
    assert_eq!(
        error["properties"]["field"]["type"],
        serde_json::json!(["string", "null"])
    );
    assert_eq!(error["required"], serde_json::json!(["error", "field"]));
    for s in ["operator_key", "business_key", "agent_token", "widget_key"] {
        assert!(
            d["components"]["securitySchemes"].get(s).is_some(),
            "no security scheme {s}"
        );
    }
    // Every operation: an operationId, at least one response; every $ref resolves.
    for (path, m) in operations(&d) {
        let op = &d["paths"][&path][&m];
        assert!(op["operationId"].is_string(), "{m} {path}: no operationId");
        assert!(
            op["responses"].as_object().is_some_and(|r| !r.is_empty()),
            "{m} {path}: no responses"
        );
        for sec in op["security"].as_array().into_iter().flatten() {
            for name in sec.as_object().unwrap().keys() {
                assert!(d["components"]["securitySchemes"].get(name).is_some());
            }
        }
    }
    let text = d.to_string();
    for r in text.split("\"$ref\":\"").skip(1) {
        let target = &r[..r.find('"').unwrap()];
        let name = target.strip_prefix("#/components/schemas/").unwrap();
        assert!(schemas.contains_key(name), "dangling $ref {target}");
    }
}

#[test]
fn every_documented_error_is_the_shared_error_schema() {
    let d = doc();
    let mut errors = 0;
    for (path, m) in operations(&d) {
        for (code, resp) in d["paths"][&path][&m]["responses"].as_object().unwrap() {
            if !(code.starts_with('4') || code.starts_with('5')) {
                continue;
            }
            // A draining process answers `/healthz` 503 `{"status": "draining"}`: a health
            // state for load balancers, not an error of the request.
            if path == "/healthz" {
                continue;
            }
            let content = resp["content"].as_object();
            // The JSON API answers every error as JSON (the CORS preflight's 403 has no body,
            // the HTML pages answer HTML).
            if path.starts_with("/v1/") && m != "options" {
                assert!(
                    content.is_some_and(|c| c.contains_key("application/json")),
                    "{m} {path} {code}: not JSON"
                );
            }
            if let Some(json) = content.and_then(|c| c.get("application/json")) {
                assert_eq!(
                    json["schema"]["$ref"], "#/components/schemas/Error",
                    "{m} {path} {code}"
                );
                errors += 1;
            }
        }
    }
    assert!(errors > 50, "only {errors} error responses documented");
    // The cancel route documents its 404 and 409.
    let del = &d["paths"]["/v1/call-requests/{id}"]["delete"]["responses"];
    assert!(del.get("404").is_some() && del.get("409").is_some());
}

/// The router is built from the same `routes!` calls as the document; this asks the router
/// itself: each documented method of each documented path reaches a handler (not the 404 /
/// 405 fallbacks), every other method is 405, and nothing is routed outside `routes!`.
#[tokio::test]
async fn every_route_is_documented_with_its_methods() {
    let d = doc();
    let state = AppState {
        calls: Arc::new(Empty(Arc::new(service::Directory {
            businesses: Vec::new(),
            agents: Vec::new(),
        }))),
        operator_key: None,
    };
    let app = crate::router(state);
    let paths = d["paths"].as_object().unwrap();
    for (path, item) in paths {
        let uri = path.replace("{id}", "x_unknown");
        for m in METHODS {
            let req = Request::builder()
                .method(Method::from_bytes(m.to_uppercase().as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::empty())
                .unwrap();
            let res = app.clone().oneshot(req).await.unwrap();
            let status = res.status();
            let body = res.into_body().collect().await.unwrap().to_bytes();
            let body = String::from_utf8_lossy(&body);
            if item.get(m).is_some() {
                assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{m} {path}: {body}");
                assert!(
                    !body.contains("there is no such route"),
                    "{m} {path} is documented but not routed"
                );
            } else {
                assert_eq!(
                    status,
                    StatusCode::METHOD_NOT_ALLOWED,
                    "{m} {path} is routed ({status}) but not documented: {body}"
                );
            }
        }
    }
    // Every route is registered with its annotation (`routes!`), never by a bare `route`.
    for (file, src) in [
        ("routes.rs", include_str!("../routes.rs")),
        ("calls.rs", include_str!("../calls.rs")),
        ("desktop.rs", include_str!("../desktop.rs")),
        ("live.rs", include_str!("../live.rs")),
    ] {
        for bare in [".route(", ".route_service(", ".nest(", ".merge("] {
            assert!(!src.contains(bare), "{file} registers a route with {bare}");
        }
    }
    // The document is served.
    let req = Request::builder()
        .uri("/openapi.json")
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let served: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(served, d);
}
