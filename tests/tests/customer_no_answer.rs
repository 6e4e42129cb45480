//! The customer's phone rings past `customer_ring_secs`: the customer leg is CANCELled, no
//! agent is called, and the call request ends `failed/customer_no_answer`.

use std::net::UdpSocket;

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::{
    Agent, Callbridge, Config, Flow, PortBlock, Scenario, Sipp, Workdir, CALL_DEADLINE,
    SIPP_EXIT_DEADLINE,
};

#[test]
fn unanswered_customer_is_cancelled() {
    let dir = Workdir::new("customer_no_answer");
    let mut customer = Sipp::uas(&dir, "customer", Scenario::NoAnswer);
    let agent_ports = PortBlock::reserve(2);
    let agent = UdpSocket::bind(agent_ports.addr(0)).unwrap();
    agent.set_nonblocking(true).unwrap();
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let config = Config::new(&ports, customer.sip_addr())
        .agent(Agent::new(
            "alice",
            &format!("sip:alice@{}", agent_ports.addr(0)),
        ))
        .flow(Flow {
            customer_ring_secs: 2,
            agent_ring_secs: 20,
            max_agent_attempts: 3,
        });
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call("+15551234567");
    let done = cb.wait_for_status(&id, is_terminal, CALL_DEADLINE);
    eprintln!("final record: {done:#}");
    if record::status(&done) != "failed" || record::reason(&done) != Some("customer_no_answer") {
        cb.fail(&format!(
            "expected failed/customer_no_answer, got: {done:#}"
        ));
    }
    customer.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(
        customer.received_request("CANCEL"),
        "the customer leg was CANCELled"
    );
    let mut buf = [0u8; 2048];
    if let Ok((n, from)) = agent.recv_from(&mut buf) {
        cb.fail(&format!("the agent was contacted ({n} bytes from {from})"));
    }
}
