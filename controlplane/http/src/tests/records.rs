//! Sales, records (JSON and CSV) and `Idempotency-Key` handling.

use super::*;

#[tokio::test]
async fn sale_is_validated_and_recorded() {
    let (app, _) = app();
    let (_, created) = post(
        &app,
        "/v1/call-requests",
        json!({"business": "acme", "customer": "+15551234567"}),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let uri = format!("/v1/call-requests/{id}/sale");
    for (body, field) in [
        (json!({}), "outcome"),
        (json!({"outcome": "maybe"}), "outcome"),
        (json!({"outcome": "sale", "amount": 10}), "currency"),
        (
            json!({"outcome": "sale", "amount": -1, "currency": "EUR"}),
            "amount",
        ),
        (
            json!({"outcome": "sale", "amount": "1.234", "currency": "EUR"}),
            "amount",
        ),
        (
            json!({"outcome": "sale", "amount": 1, "currency": "euro"}),
            "currency",
        ),
        (json!({"outcome": "sale", "colour": "red"}), "colour"),
    ] {
        let (s, v) = post(&app, &uri, body.clone()).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{body} -> {v}");
        assert_eq!(v["field"], field, "{body} -> {v}");
    }
    let (s, v) = post(
        &app,
        &uri,
        json!({"outcome": "sale", "amount": 49.9, "currency": "EUR", "product": "Gold plan", "agent": "alice"}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["sale"]["outcome"], "sale");
    assert_eq!(v["sale"]["amount"], "49.90");
    assert_eq!(v["sale"]["product"], "Gold plan");
    let (s, v) = post(
        &app,
        "/v1/call-requests/c_nope/sale",
        json!({"outcome": "sale"}),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["field"], "id");
}

#[tokio::test]
async fn records_as_json_and_csv_with_checked_parameters() {
    let (app, fake) = app();
    let mut rec = record(CallId::new("c_7").unwrap(), Kind::CallRequest, "queued");
    rec.request.business = Some(BusinessId::new("acme").unwrap());
    rec.request.customer = "+15551234567".into();
    rec.request.page = Some(store::Page {
        url: "https://acme.example/a,b".into(),
        title: "T".into(),
        referrer: String::new(),
    });
    rec.events.push(EventRow {
        at_ms: T0 + 1_000,
        status: "calling_customer".into(),
        reason: None,
        agent: None,
    });
    rec.events.push(EventRow {
        at_ms: T0 + 3_000,
        status: "announcing".into(),
        reason: None,
        agent: None,
    });
    rec.events.push(EventRow {
        at_ms: T0 + 4_500,
        status: "bridged".into(),
        reason: None,
        agent: None,
    });
    rec.events.push(EventRow {
        at_ms: T0 + 64_500,
        status: "completed".into(),
        reason: None,
        agent: None,
    });
    rec.status = "completed".into();
    fake.insert(rec);
    let (s, v, _) = send(
        &app,
        Method::GET,
        "/v1/records?business=acme&from=2025-11-29T00:00:00Z&to=2025-11-30T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let r = &v[0];
    assert_eq!(r["id"], "c_7");
    assert_eq!(r["ring_s"], 2.0);
    assert_eq!(r["wait_s"], 1.5);
    assert_eq!(r["talk_s"], 60.0);
    assert_eq!(r["bridged"], "2025-11-29T04:00:04.500Z");
    let (s, _, text) = send(
        &app,
        Method::GET,
        "/v1/records?from=2025-11-29T00:00:00Z&format=csv",
        None,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let mut lines = text.split("\r\n");
    assert_eq!(lines.next().unwrap(), CSV_COLUMNS.join(","));
    let row = lines.next().unwrap();
    assert!(
        row.starts_with("c_7,call_request,acme,+15551234567,"),
        "{row}"
    );
    assert!(
        row.contains("\"https://acme.example/a,b\""),
        "quoted: {row}"
    );
    for (q, field) in [
        ("from=yesterday", "from"),
        ("format=xml", "format"),
        ("limit=0", "limit"),
        ("colour=red", "colour"),
        ("business=a%20b", "business"),
    ] {
        let (s, v, _) = send(&app, Method::GET, &format!("/v1/records?{q}"), None).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{q}");
        assert_eq!(v["field"], field, "{q}: {v}");
    }
}

#[tokio::test]
async fn idempotency_key_must_be_sane() {
    let (app, _) = app();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/v1/call-requests")
        .header(header::CONTENT_TYPE, "application/json")
        .header("Idempotency-Key", "has space")
        .body(Body::from(
            json!({"business": "acme", "customer": "+15551234567"}).to_string(),
        ))
        .unwrap();
    let res = app.clone().oneshot(loopback(req)).await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let v: Value =
        serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(v["field"], "Idempotency-Key");
}

#[test]
fn canonical_json_ignores_key_order() {
    let a = json!({"b": 1, "a": {"y": [1, {"q": 2, "p": 3}], "x": null}});
    let b = json!({"a": {"x": null, "y": [1, {"p": 3, "q": 2}]}, "b": 1});
    assert_eq!(crate::routes::canonical(&a), crate::routes::canonical(&b));
    assert_ne!(
        crate::routes::canonical(&a),
        crate::routes::canonical(&json!({"b": 2}))
    );
}
