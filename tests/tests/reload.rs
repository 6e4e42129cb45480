//! Reload (issue 10, "Upgrades without dropped calls"): SIGHUP or `POST /v1/admin/reload`
//! re-reads the configuration file. Agents and businesses change at once, a live call is not
//! touched, a broken file is refused with its `FILE:LINE: KEY: reason` (422) while the
//! configuration in use stays, and what only a restart can change is reported, not applied.

use std::process::{Command, Stdio};

use serde_json::{json, Value};

use callbridge_tests::scenario::{rings_then_hangs_up, Api, CUSTOMER};
use callbridge_tests::{Agent, Scenario, SippOptions, TwoPartyCall, CALL_DEADLINE};

fn has_agent(list: &Value, id: &str) -> bool {
    list.as_array()
        .is_some_and(|a| a.iter().any(|x| x["id"] == id))
}

fn business_name(list: &Value) -> String {
    list.as_array()
        .and_then(|a| a.iter().find(|b| b["id"] == "acme"))
        .and_then(|b| b["name"].as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn sighup_and_post_reload_apply_agents_and_businesses_and_refuse_a_broken_file() {
    let mut t = TwoPartyCall::builder("reload")
        .customer(
            Scenario::Answer,
            SippOptions {
                calls: 2,
                ..SippOptions::default()
            },
        )
        .agent(
            Scenario::AnswerBye,
            SippOptions {
                calls: 2,
                ..rings_then_hangs_up(500, 5000)
            },
        )
        .start();
    let path = t.cb.config_path().to_path_buf();
    let original = t.cb.config().clone();

    // A live call goes through every reload below.
    let live = t.cb.call(CUSTOMER);
    t.cb.wait_bridged(Api::CallRequests, &live);

    // Add an agent and rename the business, then SIGHUP.
    let mut changed = original
        .clone()
        .agent(Agent::new("carol", &t.agent.sip_uri("carol")));
    changed.businesses = vec![("acme".into(), "ACME Renamed".into())];
    std::fs::write(&path, changed.render()).expect("write the changed configuration");
    let pid = t.cb.pid().to_string();
    let hup = Command::new("kill")
        .args(["-HUP", &pid])
        .stdin(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(hup, "kill -HUP {pid} failed");
    t.cb.wait_for(
        "/v1/agents",
        "agent carol after SIGHUP",
        |v| has_agent(v, "carol"),
        CALL_DEADLINE,
    );
    t.cb.wait_for(
        "/v1/businesses",
        "the new business name after SIGHUP",
        |v| business_name(v) == "ACME Renamed",
        CALL_DEADLINE,
    );
    let r = t.cb.get_json(&format!("/v1/call-requests/{live}"));
    if r["status"] != "bridged" {
        t.cb.fail(&format!("the live call was touched by the reload: {r:#}"));
    }
    // Presence is kept: alice is still on the live call.
    let p = t.cb.get_json("/v1/agents/alice/presence");
    if p["presence"] != "on_call" {
        t.cb.fail(&format!(
            "alice's presence after the reload: {p}; expected on_call"
        ));
    }

    // A broken file: 422 with FILE:LINE: KEY: reason; the configuration in use stays.
    std::fs::write(
        &path,
        format!("{}\n[drain]\nmax_seconds = 0\n", changed.render()),
    )
    .expect("write the broken configuration");
    let r = t.cb.post("/v1/admin/reload", &json!({}));
    let v = r.json();
    let error = v["error"].as_str().unwrap_or_default();
    let prefix = format!("{}:", path.display());
    if r.status != 422
        || !error.starts_with(&prefix)
        || !error.contains(": drain.max_seconds: ")
        || v["field"] != "drain.max_seconds"
    {
        t.cb.fail(&format!(
            "POST /v1/admin/reload with a broken file answered {} {v}; expected 422 with \"{prefix}LINE: drain.max_seconds: …\"",
            r.status
        ));
    }
    let line: Option<usize> = error[prefix.len()..]
        .split(':')
        .next()
        .and_then(|l| l.parse().ok());
    if line.is_none_or(|l| l == 0) {
        t.cb.fail(&format!("no line number in {error:?}"));
    }
    if !has_agent(&t.cb.get_json("/v1/agents"), "carol")
        || business_name(&t.cb.get_json("/v1/businesses")) != "ACME Renamed"
    {
        t.cb.fail("a refused reload changed the configuration in use");
    }

    // What needs a restart is reported, not applied; the rest is (carol goes again).
    let mut moved = original.clone();
    moved.media_ports = (moved.media_ports.0, moved.media_ports.1 - 2);
    std::fs::write(&path, moved.render()).expect("write the configuration");
    let r = t.cb.post("/v1/admin/reload", &json!({}));
    let v = r.json();
    if r.status != 200
        || v["reloaded"] != true
        || v["businesses"] != 1
        || v["agents"] != 1
        || !v["needs_restart"]
            .as_array()
            .is_some_and(|k| k.iter().any(|x| x == "media"))
        || !v["removed_agents"]
            .as_array()
            .is_some_and(|k| k.iter().any(|x| x == "carol"))
    {
        t.cb.fail(&format!(
            "POST /v1/admin/reload answered {} {v}; expected 200 with needs_restart [\"media\"] and carol removed",
            r.status
        ));
    }
    if has_agent(&t.cb.get_json("/v1/agents"), "carol")
        || business_name(&t.cb.get_json("/v1/businesses")) != "ACME Corp"
    {
        t.cb.fail("the reload did not apply the agents and businesses");
    }

    // The live call ends as it would have, with its media; a new call works.
    let done = t.cb.wait_done(Api::CallRequests, &live);
    t.cb.expect_full_call(&done, "the call live during the reloads: ");
    let next = t.cb.call("+15557654321");
    let done = t.cb.wait_done(Api::CallRequests, &next);
    t.cb.expect_full_call(&done, "the call after the reloads: ");
    t.expect_sipps_passed();
}
