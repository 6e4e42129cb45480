//! The customer is busy (486): the call request fails with `customer_busy` and no agent is
//! ever called.

use std::net::UdpSocket;

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn busy_customer_fails_the_call_request() {
    let dir = Workdir::new("customer_busy");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::Busy);
    // The agent is a plain socket: nothing may arrive there.
    let agent_ports = PortBlock::reserve(2);
    let agent = UdpSocket::bind(agent_ports.addr(0)).unwrap();
    agent.set_nonblocking(true).unwrap();
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr()).agent(Agent::new(
        "alice",
        &format!("sip:alice@{}", agent_ports.addr(0)),
    ));
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call("+15551234567");
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "failed" || record::reason(&done) != Some("customer_busy") {
        cb.fail(&format!("expected failed/customer_busy, got: {done:#}"));
    }
    if record::statuses(&done)
        .iter()
        .any(|s| s == "bridged" || s == "calling_agent")
    {
        cb.fail(&format!(
            "a busy customer must not lead to an agent call: {done:#}"
        ));
    }
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    let mut buf = [0u8; 2048];
    if let Ok((n, from)) = agent.recv_from(&mut buf) {
        cb.fail(&format!(
            "the agent was contacted ({n} bytes from {from}): {}",
            String::from_utf8_lossy(&buf[..n])
        ));
    }
}
