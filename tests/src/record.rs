//! Reading call-request and bridge records (`GET /v1/call-requests/{id}`, `/v1/bridges/{id}`).
//!
//! ```json
//! {"id","status","business","customer","agent","reason","events":[{"at","status"}],
//!  "media":{"customer":{"rx_packets","tx_packets","announcement_packets",...},"agent":{...}}}
//! ```

use serde_json::Value;

/// Terminal statuses.
pub const TERMINAL: [&str; 3] = ["completed", "failed", "cancelled"];

/// True for `completed`, `failed` and `cancelled`.
#[must_use]
pub fn is_terminal(status: &str) -> bool {
    TERMINAL.contains(&status)
}

/// The record's `status`.
#[must_use]
pub fn status(record: &Value) -> &str {
    record["status"].as_str().unwrap_or_default()
}

/// The record's `reason` (`None` when null or absent).
#[must_use]
pub fn reason(record: &Value) -> Option<&str> {
    record["reason"].as_str()
}

/// The statuses listed in `events`, in order.
#[must_use]
pub fn statuses(record: &Value) -> Vec<String> {
    record["events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .filter_map(|e| e["status"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// True when `expected` occurs in `events` in this order (other statuses may sit between).
#[must_use]
pub fn passes_through(record: &Value, expected: &[&str]) -> bool {
    let seen = statuses(record);
    let mut it = seen.iter();
    expected.iter().all(|want| it.any(|s| s == want))
}

/// `media.<party>.<counter>` as a number (0 when absent, so a `>` assertion fails visibly).
#[must_use]
pub fn media(record: &Value, party: &str, counter: &str) -> u64 {
    record["media"][party][counter].as_u64().unwrap_or(0)
}

/// A one-line summary of the media counters, for assertion messages.
#[must_use]
pub fn media_summary(record: &Value) -> String {
    let mut out = String::new();
    for party in ["customer", "agent"] {
        out.push_str(&format!(
            "{party}: rx {} tx {} ann {} rx_rtcp {} tx_rtcp {}; ",
            media(record, party, "rx_packets"),
            media(record, party, "tx_packets"),
            media(record, party, "announcement_packets"),
            media(record, party, "rx_rtcp"),
            media(record, party, "tx_rtcp"),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "id": "c1", "status": "completed", "reason": null,
            "events": [
                {"at": "t0", "status": "queued"},
                {"at": "t1", "status": "calling_customer"},
                {"at": "t2", "status": "announcing"},
                {"at": "t3", "status": "calling_agent"},
                {"at": "t4", "status": "bridged"},
                {"at": "t5", "status": "completed"}
            ],
            "media": {"customer": {"rx_packets": 10, "tx_packets": 30, "announcement_packets": 20},
                      "agent": {"rx_packets": 5, "tx_packets": 7}}
        })
    }

    #[test]
    fn reads_events_and_media() {
        let r = sample();
        assert_eq!(status(&r), "completed");
        assert_eq!(reason(&r), None);
        assert!(passes_through(
            &r,
            &[
                "calling_customer",
                "announcing",
                "calling_agent",
                "bridged",
                "completed"
            ]
        ));
        assert!(!passes_through(&r, &["bridged", "announcing"]));
        assert!(!passes_through(&r, &["failed"]));
        assert_eq!(media(&r, "customer", "announcement_packets"), 20);
        assert_eq!(media(&r, "agent", "jitter_us"), 0);
        assert!(media_summary(&r).contains("customer: rx 10 tx 30 ann 20"));
        assert!(is_terminal("failed") && !is_terminal("bridged"));
    }
}

/// Checks the media counters of a finished full call (announcement, then RTP both ways):
/// `customer.announcement_packets > 0`, `customer.rx_packets > 0`, `agent.rx_packets > 0`,
/// `agent.tx_packets > 0` and `customer.tx_packets > customer.announcement_packets`.
///
/// # Errors
/// Names every counter that is off, with a summary of all counters.
pub fn check_full_call_media(record: &Value) -> Result<(), String> {
    let ann = media(record, "customer", "announcement_packets");
    let mut bad = Vec::new();
    if ann == 0 {
        bad.push(
            "media.customer.announcement_packets == 0 (no announcement reached the customer)"
                .to_string(),
        );
    }
    if media(record, "customer", "rx_packets") == 0 {
        bad.push("media.customer.rx_packets == 0 (the relay got no RTP from the customer)".into());
    }
    if media(record, "agent", "rx_packets") == 0 {
        bad.push("media.agent.rx_packets == 0 (the relay got no RTP from the agent)".into());
    }
    if media(record, "agent", "tx_packets") == 0 {
        bad.push("media.agent.tx_packets == 0 (no customer RTP was relayed to the agent)".into());
    }
    let ctx = media(record, "customer", "tx_packets");
    if ctx <= ann {
        bad.push(format!(
            "media.customer.tx_packets {ctx} <= announcement_packets {ann} (no agent RTP was relayed to the customer)"
        ));
    }
    if bad.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\ncounters: {}\nrecord: {record:#}",
            bad.join("\n"),
            media_summary(record)
        ))
    }
}

#[cfg(test)]
mod media_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn full_call_media_check() {
        let good = json!({"media": {
            "customer": {"rx_packets": 100, "tx_packets": 250, "announcement_packets": 100},
            "agent": {"rx_packets": 150, "tx_packets": 80}}});
        assert!(check_full_call_media(&good).is_ok());
        let only_announcement = json!({"media": {
            "customer": {"rx_packets": 100, "tx_packets": 100, "announcement_packets": 100},
            "agent": {"rx_packets": 0, "tx_packets": 0}}});
        let err = check_full_call_media(&only_announcement).unwrap_err();
        assert!(err.contains("agent.rx_packets == 0"));
        assert!(err.contains("agent.tx_packets == 0"));
        assert!(err.contains("customer.tx_packets 100 <= announcement_packets 100"));
        assert!(check_full_call_media(&json!({})).is_err());
    }
}
