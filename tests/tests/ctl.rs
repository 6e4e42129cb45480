//! `callbridge ctl` against a started server: calls (empty, then one live call, shown, hung
//! up), agents and presence, and its errors (an unknown call: exit 1 with the API's message;
//! an unreachable URL: exit 1 naming it).

use std::process::Output;

use callbridge_tests::record;
use callbridge_tests::scenario::{expect_request, CUSTOMER};
use callbridge_tests::server::run_cli;
use callbridge_tests::{Api, Callbridge, TwoPartyCall};
use serde_json::Value;

fn ctl(cb: &Callbridge, args: &[&str]) -> Output {
    let url = format!("http://{}", cb.http_addr());
    let mut all = vec!["ctl", "--url", url.as_str()];
    all.extend_from_slice(args);
    run_cli(&all)
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Runs `ctl ARGS`, asserts exit 0, returns stdout.
fn ok(cb: &Callbridge, args: &[&str]) -> String {
    let o = ctl(cb, args);
    let (out, err) = text(&o);
    if !o.status.success() {
        cb.fail(&format!("ctl {args:?} exited {}: {out} {err}", o.status));
    }
    out
}

fn json(cb: &Callbridge, args: &[&str]) -> Value {
    let out = ok(cb, args);
    serde_json::from_str(&out)
        .unwrap_or_else(|e| cb.fail(&format!("ctl {args:?}: not JSON ({e}): {out}")))
}

#[test]
fn ctl_lists_shows_and_hangs_up_calls_and_sets_presence() {
    let mut t = TwoPartyCall::builder("ctl").start();
    let cb = &t.cb;

    assert_eq!(json(cb, &["calls", "--json"]), serde_json::json!([]));
    assert!(ok(cb, &["calls"]).contains("no live calls"));

    let agents = ok(cb, &["agents"]);
    assert!(
        agents.starts_with("ID") && agents.contains("alice"),
        "{agents}"
    );
    let list = json(cb, &["agents", "--json"]);
    assert!(
        list.as_array()
            .is_some_and(|a| a.iter().any(|x| x["id"] == "alice")),
        "{list}"
    );

    let set = ok(cb, &["agents", "presence", "alice", "away"]);
    assert_eq!(set.trim(), "alice: away");
    assert_eq!(cb.get_json("/v1/agents/alice/presence")["presence"], "away");
    let back = json(cb, &["agents", "presence", "alice", "available", "--json"]);
    assert_eq!(back["presence"], "available");
    // A bad state: the API's message, exit 1.
    let bad = ctl(cb, &["agents", "presence", "alice", "sleeping"]);
    let (_, err) = text(&bad);
    assert_eq!(bad.status.code(), Some(1), "{err}");
    assert!(
        err.contains("\"presence\" must be available, away or offline"),
        "{err}"
    );

    let id = t.cb.call(CUSTOMER);
    t.cb.wait_bridged(Api::CallRequests, &id);
    let cb = &t.cb;
    let live = json(cb, &["calls", "list", "--json"]);
    let ids: Vec<&str> = live
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, [id.as_str()], "{live:#}");
    let table = ok(cb, &["calls"]);
    assert!(table.contains(&id) && table.contains("bridged"), "{table}");
    let shown = ok(cb, &["calls", "show", &id]);
    assert!(
        shown.contains("bridged") && shown.contains(CUSTOMER),
        "{shown}"
    );

    let hung = ok(cb, &["calls", "hangup", &id]);
    assert_eq!(hung.trim(), format!("{id}: cancelled"));
    assert_eq!(record::status(&cb.call_request(&id)), "cancelled");
    t.expect_sipps_passed();
    expect_request(&t.customer, "BYE", "hung up by ctl");
    expect_request(&t.agent, "BYE", "hung up by ctl");

    let cb = &t.cb;
    // An ended call: 409 with the API's message.
    let again = ctl(cb, &["calls", "hangup", &id]);
    let (_, err) = text(&again);
    assert_eq!(again.status.code(), Some(1), "{err}");
    assert!(
        err.contains("call already ended") && err.contains("409"),
        "{err}"
    );
    // An unknown call: 404 with the API's message.
    let unknown = ctl(cb, &["calls", "hangup", "c_nosuchcall"]);
    let (_, err) = text(&unknown);
    assert_eq!(unknown.status.code(), Some(1), "{err}");
    assert!(
        err.contains("there is no call with id \"c_nosuchcall\""),
        "{err}"
    );
    // Usage errors are 2.
    assert_eq!(ctl(cb, &["calls", "frobnicate"]).status.code(), Some(2));
}

#[test]
fn ctl_names_an_unreachable_url() {
    // Port 1 on loopback: nothing listens there.
    let o = run_cli(&["ctl", "--url", "http://127.0.0.1:1", "calls"]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out} {err}");
    assert!(
        err.contains("cannot reach callbridge at http://127.0.0.1:1"),
        "{err}"
    );
}
