//! Businesses and agents through the API: the configuration is the initial source, changes
//! made with `PUT` are checked field by field, in force at once, and survive a restart (they
//! are kept in the store), as is presence set through the API. Secrets never show; keys
//! scope who may see and change what.

use callbridge_tests::http::request_with_headers;
use callbridge_tests::{Agent, Callbridge, Config, PortBlock, Response, Workdir};
use serde_json::{json, Value};

const OPERATOR: &str = "operator-key-0123456789";
const ACME_KEY: &str = "acme-key-0123456789ab";

fn call(
    cb: &Callbridge,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Response {
    let auth = key.map(|k| format!("Bearer {k}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    let body = body.map(|b| b.to_string());
    request_with_headers(cb.http_addr(), method, path, &headers, body.as_deref()).expect("HTTP")
}

#[test]
fn changes_are_checked_applied_and_kept_across_a_restart() {
    let dir = Workdir::new("directory_api");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let nobody = PortBlock::reserve(2);
    let config = Config::new(&ports, nobody.addr(0))
        .agent(Agent::new(
            "alice",
            &format!("sip:alice@{}", nobody.addr(1)),
        ))
        .business_toml("acme", &format!("api_keys = [\"{ACME_KEY}\"]"));
    let text = config.render().replacen(
        "[http]\n",
        &format!("[http]\noperator_key = \"{OPERATOR}\"\n"),
        1,
    );
    let cb = Callbridge::start_text(&dir, &config, &text);

    // Reading: the business's key sees its business (no secrets), anonymous loopback does not.
    let r = call(&cb, "GET", "/v1/businesses/acme", Some(ACME_KEY), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["api_keys"], 1, "a count, never the keys");
    assert!(!r.body.contains(ACME_KEY));
    assert_eq!(
        call(&cb, "GET", "/v1/businesses/acme", None, None).status,
        401
    );
    assert_eq!(call(&cb, "GET", "/v1/agents", None, None).status, 401);

    // Bad changes name their field.
    for (body, field) in [
        (json!({"hours": ["someday 9-5"]}), "hours"),
        (
            json!({"allowed_origins": ["https://shop.example/path"]}),
            "allowed_origins",
        ),
        (json!({"colour": "red"}), "body"),
    ] {
        let r = call(
            &cb,
            "PUT",
            "/v1/businesses/acme",
            Some(ACME_KEY),
            Some(body.clone()),
        );
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert_eq!(r.json()["field"], field, "{body}: {}", r.body);
    }
    let r = call(
        &cb,
        "PUT",
        "/v1/agents/carol",
        Some(OPERATOR),
        Some(json!({"name": "Carol"})),
    );
    assert_eq!(
        (r.status, r.json()["field"].clone()),
        (400, json!("contact")),
        "{}",
        r.body
    );
    // A business key cannot change agents.
    let r = call(
        &cb,
        "PUT",
        "/v1/agents/alice",
        Some(ACME_KEY),
        Some(json!({"name": "A"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);

    // Good changes are in force at once.
    let r = call(
        &cb,
        "PUT",
        "/v1/businesses/acme",
        Some(ACME_KEY),
        Some(
            json!({"name": "ACME Europe", "time_zone": "Europe/Berlin", "hours": ["mon-sun 00:00-24:00"], "allowed_origins": ["https://shop.example"]}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["time_zone"], "Europe/Berlin");
    let r = call(
        &cb,
        "PUT",
        "/v1/agents/carol",
        Some(OPERATOR),
        Some(
            json!({"name": "Carol", "contact": "+4930123456", "businesses": ["acme"], "skills": ["de"], "wrap_up_secs": 5}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["presence"], "available");
    let listed = call(&cb, "GET", "/v1/agents", Some(ACME_KEY), None).json();
    let ids: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["alice", "carol"]);
    let widget = call(&cb, "GET", "/v1/businesses/acme/widget", None, None).json();
    assert_eq!(widget["name"], "ACME Europe");
    assert_eq!(widget["time_zone"], "Europe/Berlin");

    // Presence set through the API is kept too.
    let r = call(
        &cb,
        "PUT",
        "/v1/agents/carol/presence",
        Some(OPERATOR),
        Some(json!({"presence": "away"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // A restart on the same store keeps them.
    drop(cb);
    let cb = Callbridge::start_text(&dir, &config, &text);
    let b = call(&cb, "GET", "/v1/businesses/acme", Some(OPERATOR), None).json();
    assert_eq!(
        (b["name"].clone(), b["allowed_origins"].clone()),
        (json!("ACME Europe"), json!(["https://shop.example"])),
        "{b:#}"
    );
    let carol = call(&cb, "GET", "/v1/agents/carol", Some(OPERATOR), None).json();
    assert_eq!(carol["skills"], json!(["de"]), "{carol:#}");
    assert_eq!(carol["wrap_up_secs"], 5);
    assert_eq!(carol["presence"], "away", "{carol:#}");
    let alice = call(&cb, "GET", "/v1/agents/alice", Some(OPERATOR), None).json();
    assert_eq!(alice["presence"], "available", "{alice:#}");
}
