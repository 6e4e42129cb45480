//! `callbridge serve` on a PostgreSQL store (`[store] url`): one whole click-to-call (customer
//! via the trunk answers, announcement, agent answers, bridged, agent hangs up, `completed`),
//! and the record — status, every event, the media summaries — is in the test's PostgreSQL
//! (no SQLite file is created).

use callbridge_tests::postgres::Postgres;
use callbridge_tests::scenario::{rings_then_hangs_up, Api, CUSTOMER};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, SIPP_EXIT_DEADLINE,
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
