//! Bad input to the HTTP API answers 400 `{"error","field"}` naming the offending field;
//! unknown ids answer 404.

use serde_json::{json, Value};

use callbridge_tests::{Callbridge, Config, PortBlock, Response, Workdir};

fn start(dir: &Workdir, ports: &PortBlock, trunk: &PortBlock) -> Callbridge {
    // Nothing listens on the trunk: these tests must never get as far as calling anybody.
    Callbridge::start(dir, &Config::new(ports, trunk.addr(0)))
}

/// Asserts a 400 whose JSON names `field` and carries a non-empty `error`.
fn assert_bad_request(cb: &Callbridge, what: &str, r: &Response, field: &str) {
    if r.status != 400 {
        cb.fail(&format!(
            "{what}: expected 400, got {} {:?}",
            r.status, r.body
        ));
    }
    let v: Value = r.json();
    let error_ok = v["error"].as_str().is_some_and(|e| !e.is_empty());
    if !error_ok || v["field"] != field {
        cb.fail(&format!(
            "{what}: expected {{\"error\": <text>, \"field\": \"{field}\"}}, got {v}"
        ));
    }
}

#[test]
fn bad_input_and_unknown_ids() {
    let dir = Workdir::new("http_errors");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let trunk = PortBlock::reserve(2);
    let cb = start(&dir, &ports, &trunk);

    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "acme", "customer": "not-a-number"}),
    );
    assert_bad_request(
        &cb,
        "customer that is neither E.164 nor a SIP URI",
        &r,
        "customer",
    );

    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "acme", "customer": "+1-555-CALL-ME"}),
    );
    assert_bad_request(&cb, "customer with letters", &r, "customer");

    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "no-such-business", "customer": "+15551234567"}),
    );
    assert_bad_request(&cb, "unknown business", &r, "business");

    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "acme", "customer": "+15551234567", "contact_time": "tomorrow-ish"}),
    );
    assert_bad_request(&cb, "contact_time that is not RFC 3339", &r, "contact_time");

    let r = cb.post("/v1/call-requests", &json!({"business": "acme"}));
    assert_bad_request(&cb, "missing customer", &r, "customer");

    let r = cb.post(
        "/v1/bridges",
        &json!({"customer": "not-a-number", "agent": "sip:agent@127.0.0.1:5099"}),
    );
    assert_bad_request(&cb, "bridge with a bad customer", &r, "customer");

    let r = cb.request("POST", "/v1/call-requests", Some("{not json"));
    let has_error = r.status == 400 && r.json()["error"].as_str().is_some_and(|e| !e.is_empty());
    if !has_error {
        cb.fail(&format!(
            "malformed JSON: expected 400 with an error, got {} {:?}",
            r.status, r.body
        ));
    }

    for path in ["/v1/call-requests/no-such-id", "/v1/bridges/no-such-id"] {
        let r = cb.get(path);
        if r.status != 404 {
            cb.fail(&format!(
                "GET {path}: expected 404, got {} {:?}",
                r.status, r.body
            ));
        }
    }

    // None of the rejected requests may have left a trace: the health check still answers and
    // nothing was sent to the trunk.
    assert_eq!(cb.get("/healthz").status, 200);
}
