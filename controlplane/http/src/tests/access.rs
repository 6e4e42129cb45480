//! Credentials, CORS, the widget's business information and the status stream.

use super::*;

async fn post_with(
    app: &axum::Router,
    uri: &str,
    headers: &[(&str, &str)],
    body: Value,
) -> (StatusCode, Value, axum::http::HeaderMap) {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let res = app
        .clone()
        .oneshot(loopback(b.body(Body::from(body.to_string())).unwrap()))
        .await
        .unwrap();
    let status = res.status();
    let h = res.headers().clone();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        h,
    )
}

#[tokio::test]
async fn keys_scope_requests_and_the_widget_needs_its_origin() {
    let (app, _) = app_keyed();
    let body = json!({"business": "keyed", "customer": "+15551234567"});
    // A business with api_keys: loopback without a key is not enough.
    let (s, v, h) = post_with(&app, "/v1/call-requests", &[], body.clone()).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    assert_eq!(h[header::WWW_AUTHENTICATE], "Bearer");
    let (s, _, _) = post_with(
        &app,
        "/v1/call-requests",
        &[("authorization", "Bearer keyed-secret-0123456789")],
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, v, _) = post_with(
        &app,
        "/v1/call-requests",
        &[("authorization", "Bearer nope")],
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED, "{v}");
    // Its key is no good for another business.
    let (s, v, _) = post_with(
        &app,
        "/v1/call-requests",
        &[("authorization", "Bearer keyed-secret-0123456789")],
        json!({"business": "acme", "customer": "+15551234567"}),
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["field"], "business");
    // The widget key from the allowed origin, with CORS; from another origin, 403.
    let (s, _, h) = post_with(
        &app,
        "/v1/call-requests",
        &[
            ("x-widget-key", "wk-keyed"),
            ("origin", "https://shop.example"),
        ],
        body.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    assert_eq!(
        h[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    let (s, v, h) = post_with(
        &app,
        "/v1/call-requests",
        &[
            ("x-widget-key", "wk-keyed"),
            ("origin", "https://evil.example"),
        ],
        body,
    )
    .await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["field"], "Origin");
    assert!(h.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
}

#[tokio::test]
async fn preflight_and_widget_info() {
    let (app, _) = app_keyed();
    let pre = |origin: &'static str| {
        loopback(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/v1/call-requests")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .body(Body::empty())
                .unwrap(),
        )
    };
    let res = app
        .clone()
        .oneshot(pre("https://shop.example"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        res.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://shop.example"
    );
    assert!(res.headers()[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .contains("X-Widget-Key"));
    let res = app
        .clone()
        .oneshot(pre("https://evil.example"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let (s, v, _) = send(&app, Method::GET, "/v1/businesses/keyed/widget", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["name"], "Keyed Inc");
    assert_eq!(v["open_now"], true, "no hours: always open");
    assert_eq!(v["time_zone"], "UTC");
    let (s, _, _) = send(&app, Method::GET, "/v1/businesses/nope/widget", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _, js) = send(&app, Method::GET, "/widget.js", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        js.len() < 15 * 1024 + 2048,
        "widget.js is {} bytes",
        js.len()
    );
}

#[tokio::test]
async fn events_stream_starts_with_the_current_state() {
    let (app, _) = app();
    let (_, created) = post(
        &app,
        "/v1/call-requests",
        json!({"business": "acme", "customer": "+15551234567"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let req = loopback(
        Request::get(format!("/v1/call-requests/{id}/events"))
            .body(Body::empty())
            .unwrap(),
    );
    let res = app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let frame = tokio::time::timeout(std::time::Duration::from_secs(5), body.frame())
        .await
        .expect("a first event")
        .unwrap()
        .unwrap();
    let text = String::from_utf8(frame.into_data().unwrap().to_vec()).unwrap();
    assert!(text.starts_with("event: status\n"), "{text}");
    assert!(text.contains("\"status\":\"queued\""), "{text}");
    let (s, _, _) = send(&app, Method::GET, "/v1/call-requests/c_nope/events", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn with_keyed_businesses_loopback_needs_a_key_for_server_side_routes() {
    let (app, _) = app_keyed();
    let (s, _, _) = send(&app, Method::GET, "/v1/records", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    let (s, _) = post(
        &app,
        "/v1/bridges",
        json!({"customer": "+15551234567", "agent": "alice"}),
    )
    .await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    // A business key sees its own records only.
    let req = loopback(
        Request::get("/v1/records?business=acme")
            .header("authorization", "Bearer keyed-secret-0123456789")
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    let req = loopback(
        Request::get("/v1/records")
            .header("authorization", "Bearer keyed-secret-0123456789")
            .body(Body::empty())
            .unwrap(),
    );
    assert_eq!(
        app.clone().oneshot(req).await.unwrap().status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn metrics_are_for_the_operator_and_openmetrics_text() {
    // The lab (no keys) on loopback: the default (empty) exposition.
    let (app, _) = app();
    let res = app
        .clone()
        .oneshot(loopback(
            Request::get("/metrics").body(Body::empty()).unwrap(),
        ))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.headers()[header::CONTENT_TYPE],
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    let (_, _, text) = send(&app, Method::GET, "/metrics", None).await;
    assert_eq!(text, "# EOF\n");
    // With keys: like /v1/stats, a loopback client without the operator key is refused.
    let (app, _) = app_keyed();
    let (s, _, _) = send(&app, Method::GET, "/metrics", None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
}
