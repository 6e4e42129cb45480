//! `callbridge serve` on a PostgreSQL store (`[store] url`): one whole click-to-call (customer
//! via the trunk answers, announcement, agent answers, bridged, agent hangs up, `completed`),
//! and the record — status, every event, the media summaries — is in the test's PostgreSQL
//! (no SQLite file is created). Then two nodes on one database, one killed with a live call.

use std::time::Duration;

use callbridge_tests::postgres::Postgres;
use callbridge_tests::scenario::{rings, rings_then_hangs_up, Api, CUSTOMER};
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
    let node = |name: &str| {
        let ports = PortBlock::reserve(Config::BLOCK_LEN);
        let config = Config::new(&ports, customer.sip_addr())
            .agent(Agent::new("alice", &agent.sip_uri("alice")))
            .with_toml(&format!("[store]\nurl = \"{url}\""));
        let node_dir = Workdir::new(&format!("postgres_store_takeover_{name}"));
        let cb = Callbridge::start(&node_dir, &config);
        (ports, node_dir, cb)
    };
    let (_ports_a, _dir_a, mut a) = node("a");
    let (_ports_b, _dir_b, mut b) = node("b");

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
    let customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Answer,
        &SippOptions {
            calls: 2,
            ..rings(55_000)
        },
    );
    let agent = Sipp::spawn(&dir, "agent", Scenario::Answer, &SippOptions::default());
    let node = |name: &str| {
        let ports = PortBlock::reserve(Config::BLOCK_LEN);
        let config = Config::new(&ports, customer.sip_addr())
            .agent(Agent::new("alice", &agent.sip_uri("alice")))
            .with_toml(&format!("[store]\nurl = \"{url}\""));
        let node_dir = Workdir::new(&format!("postgres_store_drain_{name}"));
        let cb = Callbridge::start(&node_dir, &config);
        (ports, node_dir, cb)
    };
    let (_ports_a, _dir_a, mut a) = node("a");
    // A takes the first call before B exists, so it is A's.
    let first = a.call(CUSTOMER);
    a.wait_for_status(&first, |s| s == "calling_customer", CALL_DEADLINE);
    let (ports_b, _dir_b, mut b) = node("b");

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
