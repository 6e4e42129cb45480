//! Structured logs: with `log.format = "json"` every stderr line is one JSON object and the
//! lines about a call carry its id in the `call` span's fields; `PUT /v1/admin/sip-trace`
//! switches full SIP message logging on for one number, so that call's INVITE text appears in
//! the log (in the call's span) and another call's does not; a rule for a call already up
//! traces its dialogs from then on (its BYE); `{"off": true}` ends it.

use serde_json::{json, Value};

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::{Agent, Callbridge, Config, PortBlock, Workdir, CALL_DEADLINE};

const TRACED: &str = "+15551230001";
const UNTRACED: &str = "+15551230002";

/// Every line of the log as JSON (panics, with the line, on one that is not). The harness
/// sends stdout and stderr to one file: stdout's one line (`callbridge ready: …`, for people
/// and scripts) is not the log and is left out.
fn json_lines(cb: &Callbridge, dir: &Workdir) -> Vec<Value> {
    // The whole file (`Callbridge::log` keeps only the tail, for failure messages).
    let log = std::fs::read_to_string(dir.file("callbridge.log")).expect("the server log");
    // The server may be writing a line right now: only complete lines count.
    let complete = log.rfind('\n').map_or("", |end| &log[..end]);
    complete
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("callbridge ready: "))
        .map(|l| {
            serde_json::from_str(l)
                .unwrap_or_else(|e| cb.fail(&format!("log line is not JSON ({e}): {l}")))
        })
        .collect()
}

fn in_call_span(line: &Value, id: &str) -> bool {
    line["span"]["name"] == "call" && line["span"]["id"] == id
}

fn message(line: &Value) -> &str {
    line["fields"]["message"].as_str().unwrap_or_default()
}

fn wait_bridged_or_over(cb: &mut Callbridge, id: &str) {
    let v = cb.wait_for_status(id, |s| s == "bridged" || is_terminal(s), CALL_DEADLINE);
    if record::status(&v) != "bridged" && record::status(&v) != "completed" {
        cb.fail(&format!("call {id} did not bridge: {v:#}"));
    }
}

#[test]
fn json_log_carries_call_spans_and_sip_trace_follows_one_number() {
    let dir = Workdir::new("structured_logs");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let nobody = PortBlock::reserve(6);
    let config = Config::new(&ports, nobody.addr(0))
        .agent(Agent::new(
            "alice",
            &format!("sip:alice@{}", nobody.addr(2)),
        ))
        .agent(Agent::new("bob", &format!("sip:bob@{}", nobody.addr(4))))
        .lab_endpoints(true)
        .with_toml("[log]\nformat = \"json\"");
    let mut cb = Callbridge::start(&dir, &config);

    // Bad bodies name their field.
    let r = cb.request("PUT", "/v1/admin/sip-trace", Some(r#"{"number": "12"}"#));
    assert_eq!(r.status, 400, "{:?}", r.body);
    assert_eq!(r.json()["field"], "number");

    let r = cb.request(
        "PUT",
        "/v1/admin/sip-trace",
        Some(&json!({ "number": TRACED }).to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({ "tracing": [{ "number": TRACED }] }));

    let traced = cb.call(TRACED);
    wait_bridged_or_over(&mut cb, &traced);
    let untraced = cb.call(UNTRACED);
    wait_bridged_or_over(&mut cb, &untraced);
    let sip_of = |lines: &[Value], id: &str| -> Vec<String> {
        lines
            .iter()
            .filter(|l| in_call_span(l, id) && message(l).starts_with("SIP message\n"))
            .map(|l| message(l).to_owned())
            .collect()
    };
    let before = sip_of(&json_lines(&cb, &dir), &untraced);
    if !before.is_empty() {
        cb.fail(&format!("the untraced call's SIP was logged: {before:?}"));
    }

    // A call rule while the call is up: its dialogs already begun are traced from now on
    // (the lab agent hangs up after 10 s of talk: its BYE, our BYE to the customer).
    let r = cb.request(
        "PUT",
        "/v1/admin/sip-trace",
        Some(&json!({ "call": untraced }).to_string()),
    );
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.json(),
        json!({ "tracing": [{ "call": untraced }, { "number": TRACED }] })
    );
    let end = cb.wait_for_status(&untraced, is_terminal, CALL_DEADLINE);
    assert_eq!(record::status(&end), "completed", "{end:#}");
    let after = sip_of(&json_lines(&cb, &dir), &untraced);
    if !after.iter().any(|m| m.starts_with("SIP message\nBYE sip:")) {
        cb.fail(&format!(
            "no BYE of call {untraced} traced after its call rule was added: {after:?}"
        ));
    }

    let r = cb.request("PUT", "/v1/admin/sip-trace", Some(r#"{"off": true}"#));
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.json(), json!({ "tracing": [] }));

    let lines = json_lines(&cb, &dir);
    // The call's own lines carry its id in the span's fields (and in the span list).
    for id in [&traced, &untraced] {
        let n = lines.iter().filter(|l| in_call_span(l, id)).count();
        if n < 3 {
            cb.fail(&format!("only {n} log lines in span call{{id={id}}}"));
        }
        let listed = lines.iter().any(|l| {
            l["spans"]
                .as_array()
                .is_some_and(|s| s.iter().any(|s| s["name"] == "call" && s["id"] == *id))
        });
        assert!(listed, "no line lists the span of call {id}");
    }
    // The traced number's INVITE, in full, in its call's span; not the other call's.
    let invite = format!("INVITE sip:{TRACED}@");
    let traced_invite = lines
        .iter()
        .find(|l| message(l).contains(&invite))
        .unwrap_or_else(|| cb.fail(&format!("no traced INVITE to {TRACED} in the log")));
    assert!(
        in_call_span(traced_invite, &traced),
        "the traced INVITE is not in span call{{id={traced}}}: {traced_invite}"
    );
    assert_eq!(traced_invite["level"], "INFO");
    let text = message(traced_invite);
    for part in ["Call-ID:", "CSeq: 1 INVITE", "X-Callbridge-Call: ", "v=0"] {
        assert!(
            text.contains(part),
            "the traced INVITE lacks {part:?}: {text}"
        );
    }
    // Its dialog's responses too (matched by Call-ID).
    assert!(
        lines
            .iter()
            .any(|l| in_call_span(l, &traced) && message(l).contains("SIP/2.0 200 OK")),
        "no traced 200 OK for call {traced}"
    );
    // The untraced call's INVITE was sent before its call rule: never logged.
    if let Some(l) = lines
        .iter()
        .find(|l| message(l).contains(&format!("INVITE sip:{UNTRACED}@")))
    {
        cb.fail(&format!("the untraced call's SIP was logged: {l}"));
    }
}
