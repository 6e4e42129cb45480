//! Several `callbridge serve` nodes on one shared store (PostgreSQL `store.url`), each with
//! its own ports and directory, for the tests of a cluster (take-over, drain, presence).

use crate::scenario::rings;
use crate::{Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir};

/// One control-plane node on the shared database: its ports, its directory (kept until the
/// test ends) and the running process.
pub struct Node {
    /// Its HTTP/SIP/media block (HTTP is `ports.addr(0)`).
    pub ports: PortBlock,
    /// Its scratch directory (`callbridge.log` is in it).
    pub dir: Workdir,
    /// The running process.
    pub cb: Callbridge,
}

/// Starts node `name` of test `test` on the database `url`, its trunk `customer`'s SIPp, with
/// `agents` serving business `acme`.
#[must_use]
pub fn node(test: &str, name: &str, url: &str, customer: &Sipp, agents: &[Agent]) -> Node {
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config =
        Config::new(&ports, customer.sip_addr()).with_toml(&format!("[store]\nurl = \"{url}\""));
    for a in agents {
        config = config.agent(a.clone());
    }
    let dir = Workdir::new(&format!("{test}_{name}"));
    let cb = Callbridge::start(&dir, &config);
    Node { ports, dir, cb }
}

/// The SIPp peers of the tests that hold an agent's call while it rings: the customer (the
/// trunk; both its calls ring 55 s before answering) and agent alice's phone (answers at
/// once), and alice herself.
#[must_use]
pub fn ringing_customer_and_alice(dir: &Workdir) -> (Sipp, Sipp, [Agent; 1]) {
    let customer = Sipp::spawn(
        dir,
        "customer",
        Scenario::Answer,
        &SippOptions {
            calls: 2,
            ..rings(55_000)
        },
    );
    let agent = Sipp::spawn(dir, "agent", Scenario::Answer, &SippOptions::default());
    let alice = [Agent::new("alice", &agent.sip_uri("alice"))];
    (customer, agent, alice)
}
