//! The SIP connection counters of `/v1/stats` count connections, not attempts: a TCP trunk that
//! refuses the connection is one send error, and no connection opened or closed.
//!
//! ```text
//!  callbridge ──TCP──► 127.0.0.1:D (nothing listens: connection refused) → failed/customer_unreachable
//! ```
//!
//! Found while writing `dns_srv_failover.rs` (a refused SRV target showed
//! `connections_opened: 1, connections_closed: 2` after the call): the refused attempt is
//! counted as a closed connection.

use callbridge_tests::scenario::CUSTOMER;
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Api, Callbridge, Config, PortBlock, SilentAgent};

#[test]
fn a_refused_connection_is_a_send_error_and_not_a_closed_connection() {
    let dir = Workdir::new("sip_connection_counters");
    let dead = PortBlock::reserve(1);
    let agent = SilentAgent::bind();
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config =
        Config::new(&ports, dead.addr(0)).agent(Agent::new("alice", &agent.sip_uri("alice")));
    config.trunk_transport = Some("tcp");
    let mut cb = Callbridge::start(&dir, &config);

    let id = cb.call(CUSTOMER);
    let done = cb.wait_done(Api::CallRequests, &id);
    cb.expect_failed(&done, "customer_unreachable");
    agent.expect_untouched(&cb);

    let stats = cb.get_json("/v1/stats");
    let sip = &stats["sip"];
    let n = |k: &str| sip[k].as_u64().unwrap_or(u64::MAX);
    assert_eq!(n("send_errors"), 1, "the refused connect: {stats:#}");
    assert_eq!(
        (
            n("connections_opened"),
            n("connections_accepted"),
            n("connections_closed")
        ),
        (0, 0, 0),
        "no connection was ever open, so none was closed: {stats:#}"
    );
}
