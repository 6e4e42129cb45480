//! The callback form cannot make the carrier ring anyone: a customer number asked for more
//! than `limits.per_number_per_hour` times in an hour gets `429` with `Retry-After` (and the
//! refused requests do not count); a premium-rate number gets `422` naming `customer`; a
//! skill no agent has gets `422` naming `skill`; every refusal shows in `GET /v1/stats`.

use callbridge_tests::{Callbridge, Config, PortBlock, Workdir};
use serde_json::json;

#[test]
fn per_number_limit_and_premium_numbers() {
    let dir = Workdir::new("abuse_limits");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    // Nothing listens on the trunk; the requests fail later (no agent), which is irrelevant.
    let trunk = PortBlock::reserve(2);
    let config = Config::new(&ports, trunk.addr(0)).with_toml("[limits]\nper_number_per_hour = 2");
    let cb = Callbridge::start(&dir, &config);
    let ask = |customer: &str| {
        cb.post(
            "/v1/call-requests",
            &json!({"business": "acme", "customer": customer}),
        )
    };
    for i in 0..2 {
        let r = ask("+15550001111");
        if r.status != 202 {
            cb.fail(&format!(
                "request {i} for a fresh number: {} {}",
                r.status, r.body
            ));
        }
    }
    for i in 0..2 {
        let r = ask("+15550001111");
        if r.status != 429 {
            cb.fail(&format!(
                "request {} past the limit: expected 429, got {} {}",
                i + 3,
                r.status,
                r.body
            ));
        }
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                cb.fail(&format!("429 without a numeric Retry-After: {:?}", r.body))
            });
        assert!(
            (3500..=3600).contains(&retry),
            "Retry-After {retry} should be about an hour"
        );
        assert_eq!(r.json()["limit"], "per_number", "{}", r.body);
    }
    // Another number is not affected.
    assert_eq!(ask("+15550002222").status, 202);
    // A skill no agent has is refused naming the field.
    let r = cb.post(
        "/v1/call-requests",
        &json!({"business": "acme", "customer": "+15550003333", "skill": "klingon"}),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(r.json()["field"], "skill");
    for premium in ["+19002345678", "+449012345678"] {
        let r = ask(premium);
        if r.status != 422 || r.json()["field"] != "customer" {
            cb.fail(&format!(
                "premium {premium}: expected 422 naming customer, got {} {}",
                r.status, r.body
            ));
        }
    }
    // Every refusal is counted and visible on the operator's stats.
    let stats = cb.get_json("/v1/stats");
    assert_eq!(stats["refused"]["per_number"], 2, "{stats:#}");
    assert_eq!(stats["refused"]["number_policy"], 2, "{stats:#}");
    assert_eq!(stats["refused"]["policy"], 1, "{stats:#}");
}
