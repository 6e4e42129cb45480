//! An agent whose softphone registers: `contact = "registered"`, `sip_username`,
//! `sip_password`. SIPp registers as the softphone (401 digest challenge, MD5 first as
//! `[sip.registrar] algorithms` asks, then 200); a SIPp answering on that same port then takes
//! the call callbridge sends to the registration's binding (its observed source), and the call
//! completes. Before any registration, a call for that agent cannot reach it.

use std::time::Duration;

use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Api, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions};

#[test]
fn a_registered_softphone_takes_the_agents_call() {
    let dir = Workdir::new("registered_agent");
    let customer = Sipp::uas(&dir, "customer", Scenario::Answer);
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, customer.sip_addr()).agent(
        Agent::new("alice", "registered")
            .with_toml("sip_username = \"alice7\"\nsip_password = \"hunter2-long\""),
    );
    config.extra.push_str(
        "[sip.registrar]\nrealm = \"callbridge.test\"\nsecret = \"0123456789abcdef0123\"\nalgorithms = [\"MD5\", \"SHA-256\"]\n",
    );
    let mut cb = Callbridge::start(&dir, &config);

    // The softphone registers (SIPp as UAC, exits once the 200 arrived).
    let mut reg = Sipp::spawn(
        &dir,
        "register",
        Scenario::Register,
        &SippOptions {
            remote: Some(cb.config().sip),
            ..SippOptions::default()
        },
    );
    reg.assert_passed(Duration::from_secs(30));
    let port = reg.sip_addr().port();
    let log = reg.messages();
    assert!(log.contains("SIP/2.0 401"), "challenged first:\n{log}");
    assert!(
        log.contains("Expires: 300") || log.contains("expires=300"),
        "the 200 lists the binding:\n{log}"
    );
    drop(reg);
    // The API shows the registered device and where calls to it go.
    let a = cb.get_json("/v1/agents/alice");
    let devices = a["devices"].as_array().cloned().unwrap_or_default();
    assert_eq!(devices.len(), 1, "{a:#}");
    assert_eq!(devices[0]["via"], format!("udp:127.0.0.1:{port}"), "{a:#}");
    assert!(
        devices[0]["expires_in_secs"]
            .as_u64()
            .is_some_and(|s| s > 200 && s <= 300),
        "{a:#}"
    );

    // The same port now answers calls, as the registered phone.
    let mut agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &SippOptions {
            sip_port: Some(port),
            ..rings_then_hangs_up(1000, 2000)
        },
    );
    let id = cb.call(CUSTOMER);
    cb.wait_bridged(Api::CallRequests, &id);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_full_call(&done, "to the registered phone: ");
    agent.assert_passed(Duration::from_secs(30));
    let mut customer = customer;
    customer.assert_passed(Duration::from_secs(30));
    assert!(agent.received_request("INVITE"));
}
