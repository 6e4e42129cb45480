//! `callbridge serve` on a PostgreSQL store (`[store] url`): one whole click-to-call (customer
//! via the trunk answers, announcement, agent answers, bridged, agent hangs up, `completed`),
//! and the record — status, every event, the media summaries — is in the test's PostgreSQL
//! (no SQLite file is created). Then two nodes on one database, one killed with a live call.

use std::time::Duration;

use callbridge_tests::postgres::Postgres;
use callbridge_tests::scenario::{rings, rings_then_hangs_up, Api, CUSTOMER};
use callbridge_tests::sipp_log::invites_for;
use callbridge_tests::store_nodes::{node, ringing_customer_and_alice};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn a_whole_call_is_recorded_in_postgresql() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();

    let dir = Workdir::new("postgres_store");
    let mut customer = Sipp::spawn(&dir, "customer", Scenario::Answer, &SippOptions::default());
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(2000, 3000),
    );
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")))
        .with_toml(&format!("[store]\nurl = \"{url}\""));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, " (PostgreSQL store)");
    agent.assert_passed(SIPP_EXIT_DEADLINE);
    customer.assert_passed(SIPP_EXIT_DEADLINE);

    // The record is in PostgreSQL.
    let q = |sql: &str| pg.psql(&db, sql);
    assert_eq!(
        q(&format!("SELECT status FROM requests WHERE id = '{id}'")),
        "completed",
        "{}",
        cb.log()
    );
    let events = q(&format!(
        "SELECT string_agg(status, ',' ORDER BY seq) FROM events WHERE request_id = '{id}'"
    ));
    assert_eq!(
        events, "queued,calling_customer,announcing,calling_agent,bridged,completed",
        "events in PostgreSQL"
    );
    assert_eq!(
        q(&format!(
            "SELECT count(*) FROM media WHERE request_id = '{id}'"
        )),
        "2",
        "both legs' media summaries"
    );
    // This run holds a lease.
    assert_eq!(q("SELECT count(*) FROM runs WHERE fenced_ms IS NULL"), "1");
    assert!(
        !dir.path().join("callbridge.db").exists(),
        "no SQLite file beside the config"
    );
    // A clean exit: the store's connections close without a panic at shutdown.
    let status = cb.stop();
    assert!(
        status.is_some_and(|s| s.success()) && !cb.log().contains("panicked"),
        "callbridge did not exit cleanly ({status:?}):\n{}",
        cb.log()
    );
}

/// Two nodes on one database: the call request accepted by node A is dialled by A only (B,
/// running alongside, never takes it while A's lease lives); A is killed (`kill -9`) while the
/// customer rings; B notices A's expired lease (15 s lease, renewed every 5 s) and takes the
/// call over: `interrupted`, then, the test business allowing one attempt, `failed` with reason
/// `interrupted`, as after a restart.
#[test]
fn a_dead_nodes_live_call_is_taken_over_by_the_other_node() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();

    let dir = Workdir::new("postgres_store_takeover");
    let customer = Sipp::spawn(&dir, "customer", Scenario::Answer, &rings(55_000));
    let agent = Sipp::spawn(&dir, "agent", Scenario::Answer, &SippOptions::default());
    let alice = [Agent::new("alice", &agent.sip_uri("alice"))];
    let mut na = node("postgres_store_takeover", "a", &url, &customer, &alice);
    let mut nb = node("postgres_store_takeover", "b", &url, &customer, &alice);
    let (a, b) = (&mut na.cb, &mut nb.cb);

    let id = a.call(CUSTOMER);
    a.wait_for_status(&id, |s| s == "calling_customer", CALL_DEADLINE);
    // Both nodes read the same record; two live runs hold leases.
    b.wait_for_status(&id, |s| s == "calling_customer", CALL_DEADLINE);
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM runs WHERE fenced_ms IS NULL"),
        "2"
    );
    a.kill_hard();

    let done = b.wait_for_status(&id, |s| s == "failed", Duration::from_secs(60));
    assert_eq!(done["reason"], "interrupted", "{done:#}\n{}", b.log());
    let statuses: Vec<&str> = done["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(
        statuses,
        ["queued", "calling_customer", "interrupted", "failed"],
        "dialled once, by A; taken over once, by B: {done:#}"
    );
    assert!(
        b.log()
            .contains("took over the work of a control-plane node"),
        "{}",
        b.log()
    );
    assert_eq!(
        pg.psql(&db, "SELECT count(*) FROM runs WHERE fenced_ms IS NOT NULL"),
        "1",
        "A's run is fenced"
    );
    let status = b.stop();
    assert!(status.is_some_and(|s| s.success()), "{}", b.log());
}

/// Issue 10's drain on a shared store: node A drains (`POST /v1/admin/drain`) while it holds a
/// live call (so it does not exit yet); a call request sent to A is still accepted (`202`,
/// committed `queued`: the store is shared), A dials nothing new, and node B dials it. A bridge
/// (dialled at once by whoever takes it) is refused by the draining A with `503`.
#[test]
fn a_draining_node_on_a_shared_store_queues_requests_for_the_other_node() {
    let pg = Postgres::start();
    let url = pg.fresh_database();

    let dir = Workdir::new("postgres_store_drain");
    // Every customer call rings a long time: A's first call stays live while A drains.
    let (customer, _agent, alice) = ringing_customer_and_alice(&dir);
    let mut na = node("postgres_store_drain", "a", &url, &customer, &alice);
    let a = &mut na.cb;
    // A takes the first call before B exists, so it is A's.
    let first = a.call(CUSTOMER);
    a.wait_for_status(&first, |s| s == "calling_customer", CALL_DEADLINE);
    let mut nb = node("postgres_store_drain", "b", &url, &customer, &alice);
    let (ports_b, b) = (&nb.ports, &mut nb.cb);

    let r = a.request("POST", "/v1/admin/drain", None);
    assert_eq!(r.status, 202, "{}", r.body);
    let bridge = a.post(
        "/v1/bridges",
        &serde_json::json!({"customer": CUSTOMER, "agent": "alice"}),
    );
    assert_eq!(
        bridge.status, 503,
        "a draining node dials nothing: {}",
        bridge.body
    );

    let second = a.call(CUSTOMER);
    let v = a.call_request(&second);
    assert_eq!(v["status"], "queued", "{v:#}");
    // B dials it; A never does.
    let on_b = b.wait_for_status(
        &second,
        |s| s == "calling_customer",
        Duration::from_secs(60),
    );
    assert_eq!(on_b["status"], "calling_customer", "{on_b:#}");
    // The INVITE for it names a media port of B's block: B dialled it, not A.
    let media = customer
        .received_sdp_audio_with("INVITE", &format!("X-Callbridge-Call: {second}"))
        .unwrap_or_else(|| {
            panic!(
                "no INVITE for {second} at the customer\n{}",
                customer.report()
            )
        });
    let b_block = ports_b.port(0)..=ports_b.port(Config::BLOCK_LEN - 1);
    assert!(
        b_block.contains(&media.port()),
        "the INVITE for {second} offers media port {} outside B's ports {b_block:?}: A dialled it",
        media.port()
    );
    let a_status = a.stop();
    let b_status = b.stop();
    assert!(a_status.is_some_and(|s| s.success()), "{}", a.log());
    assert!(b_status.is_some_and(|s| s.success()), "{}", b.log());
}

/// Issue 11 §4: a burst of call requests spread over two control-plane nodes on one
/// PostgreSQL, node A killed (`kill -9`) in the middle. Every accepted request ends
/// (`completed`, or `failed/interrupted` for a call A had on the line when it died: the test
/// business allows one attempt), and no request is ever dialled twice: the customer's SIPp sees
/// at most one INVITE per request (`X-Callbridge-Call`), exactly one for every completed one.
#[test]
fn a_burst_over_two_nodes_with_one_killed_dials_every_request_at_most_once() {
    const REQUESTS: usize = 16;
    let pg = Postgres::start();
    let url = pg.fresh_database();

    let dir = Workdir::new("postgres_store_burst");
    // The customer answers at once; each agent call hangs up 1.5 s after answering.
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Answer,
        &SippOptions {
            calls: 1000,
            ..SippOptions::default()
        },
    );
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &SippOptions {
            calls: 1000,
            ..rings_then_hangs_up(0, 1500)
        },
    );
    let agents: Vec<Agent> = (0..8)
        .map(|i| Agent::new(&format!("ag{i}"), &agent.sip_uri(&format!("ag{i}"))))
        .collect();
    let mut na = node("postgres_store_burst", "a", &url, &customer, &agents);
    let mut nb = node("postgres_store_burst", "b", &url, &customer, &agents);
    let (a, b) = (&mut na.cb, &mut nb.cb);

    // The burst, alternating nodes; A dies half-way.
    let mut ids = Vec::new();
    for k in 0..REQUESTS {
        if k == REQUESTS / 2 {
            a.kill_hard();
        }
        let via = if k % 2 == 0 && k < REQUESTS / 2 {
            &a
        } else {
            &b
        };
        // One number per request (a number may be asked for only so often). A node that
        // cannot carry more now answers 503 (admission): not accepted, nothing to check.
        let r = via.post(
            "/v1/call-requests",
            &serde_json::json!({"business": "acme", "customer": format!("+1555123{k:04}")}),
        );
        match r.status {
            202 => {
                let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
                ids.push(v["id"].as_str().expect("id").to_owned());
            }
            503 => {}
            other => panic!("POST /v1/call-requests answered {other}: {}", r.body),
        }
    }

    // Every request ends, as B sees it (A's lease runs out after 15 s).
    let mut completed = Vec::new();
    for id in &ids {
        let done = b.wait_for_status(
            id,
            |s| s == "completed" || s == "failed",
            Duration::from_secs(90),
        );
        match (done["status"].as_str(), done["reason"].as_str()) {
            (Some("completed"), _) => completed.push(id.clone()),
            (Some("failed"), Some("interrupted")) => {}
            other => panic!("{id} ended {other:?}: {done:#}\n{}", b.log()),
        }
    }
    assert!(
        ids.len() >= REQUESTS / 2 && completed.len() >= REQUESTS / 4,
        "{} of {REQUESTS} accepted, {} completed",
        ids.len(),
        completed.len()
    );

    eprintln!(
        "burst: {} of {REQUESTS} accepted, {} completed, {} failed/interrupted (A's calls on the line)",
        ids.len(),
        completed.len(),
        ids.len() - completed.len()
    );
    // At most one INVITE per request; exactly one for each completed one.
    let log = customer.messages();
    let invites = |id: &str| invites_for(&log, id);
    for id in &ids {
        let n = invites(id);
        assert!(n <= 1, "{id} was dialled {n} times");
        if completed.contains(id) {
            assert_eq!(n, 1, "{id} completed without one INVITE at the customer");
        }
    }
    let status = b.stop();
    assert!(status.is_some_and(|s| s.success()), "{}", b.log());
    customer.kill();
}
