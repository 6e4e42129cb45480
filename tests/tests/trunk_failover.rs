//! Several trunks with priorities, failover and digest authentication, with real peers:
//!
//! * `trunk[0]`, priority 1: a TCP port nothing listens on (connection refused: a transport
//!   error, treated as 503);
//! * `trunk[1]`, priority 2: SIPp answering every INVITE `503 Service Unavailable`;
//! * `trunk[2]`, priority 3: SIPp that challenges with 401 (digest MD5, qop=auth), checks our
//!   credentials with its `verifyauth`, then answers and plays audio — the customer.
//!
//! The call must reach the customer through `trunk[2]` with the business's caller id in From
//! and P-Asserted-Identity, bridge to the agent and complete; `/v1/stats` shows each trunk's
//! calls and failovers.

use callbridge_tests::scenario::{expect_request, rings_then_hangs_up, CUSTOMER};
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp};

#[test]
fn a_call_fails_over_past_a_dead_and_a_503_trunk_to_one_that_challenges() {
    let dir = Workdir::new("trunk_failover");
    let unavailable = Sipp::uas(&dir, "trunk503", Scenario::Unavailable);
    let customer = Sipp::uas(&dir, "customer", Scenario::AnswerAuth);
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(1000, 2000),
    );
    let dead = PortBlock::reserve(1);

    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new("alice", &agent.sip_uri("alice")));
    config.trunk_tables = vec![
        format!("uri = \"sip:{};transport=tcp\"\npriority = 1", dead.addr(0)),
        format!("uri = \"sip:{}\"\npriority = 2", unavailable.sip_addr()),
        format!(
            "uri = \"sip:{}\"\npriority = 3\nusername = \"cbtrunk\"\npassword = \"s3cret-trunk\"\ncaller_id = \"+15550001111\"",
            customer.sip_addr()
        ),
    ];
    config
        .business_extra
        .push(("acme".into(), "caller_id = \"+15557654321\"".into()));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "through the third trunk: ");

    let mut customer = customer;
    let mut agent = agent;
    let mut unavailable = unavailable;
    agent.assert_passed(std::time::Duration::from_secs(30));
    customer.assert_passed(std::time::Duration::from_secs(30));
    unavailable.assert_passed(std::time::Duration::from_secs(30));
    assert!(
        unavailable.received_request("INVITE"),
        "the 503 trunk was tried first"
    );
    let log = customer.messages();
    assert_eq!(
        log.matches("\nINVITE sip:+").count() + usize::from(log.starts_with("INVITE sip:+")),
        2,
        "one INVITE without and one with credentials:\n{log}"
    );
    assert!(
        log.contains("Authorization: Digest username=\"cbtrunk\""),
        "{log}"
    );
    assert!(
        log.contains("P-Asserted-Identity: <sip:+15557654321@"),
        "the business's caller id is asserted:\n{log}"
    );
    assert!(
        log.lines()
            .any(|l| l.starts_with("From: ") && l.contains("<sip:+15557654321@")),
        "the business's caller id is the From user:\n{log}"
    );
    expect_request(
        &customer,
        "BYE",
        "the customer hung up on after the agent left",
    );

    let stats = cb.get_json("/v1/stats");
    let trunks = stats["trunks"]
        .as_array()
        .unwrap_or_else(|| cb.fail(&format!("no trunks in /v1/stats: {stats:#}")));
    let calls: Vec<u64> = trunks
        .iter()
        .map(|t| t["calls"].as_u64().unwrap_or(0))
        .collect();
    let failovers: Vec<u64> = trunks
        .iter()
        .map(|t| t["failovers"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(calls, [1, 1, 1], "{stats:#}");
    assert_eq!(failovers, [0, 1, 1], "{stats:#}");
}
