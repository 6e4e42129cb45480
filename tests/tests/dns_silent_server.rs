//! A trunk named by host whose name server never answers: the call fails after one lookup's
//! timeout, it does not sit through every lookup's.
//!
//! ```text
//!  callbridge ──UDP──► 127.0.0.1:N (a socket of the test that reads nothing, answers nothing)
//! ```
//!
//! `sip.dns_servers` names only that socket. The first RFC 3263 lookup of `sip:trunk.test`
//! (NAPTR) times out (about 6 s with the resolver's 2 s timeout); the same servers will not
//! answer the SRV and address lookups either, so the call request must end `failed` (reason
//! `customer_unreachable`: no trunk resolves, issue 12) within [`BOUND`], with nothing sent
//! anywhere.
//!
//! **Fails on main**: the lookups run one after the other, each timing out (NAPTR, SRV
//! `_sip._udp`, `_sip._tcp`, `_sips._tcp`, then A/AAAA): the call request sits about 30 s.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use callbridge_tests::scenario::CUSTOMER;
use callbridge_tests::workdir::Workdir;
use callbridge_tests::{Agent, Api, Callbridge, Config, PortBlock, SilentAgent};

/// One lookup's timeout (observed: 3 tries × 2 s) plus slack.
const BOUND: Duration = Duration::from_secs(12);

#[test]
fn a_silent_name_server_fails_the_call_within_one_lookup() {
    let dir = Workdir::new("dns_silent_server");
    let silent = UdpSocket::bind("127.0.0.1:0").expect("bind the silent name server");
    let agent = SilentAgent::bind();
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let nowhere = PortBlock::reserve(1);
    let mut config =
        Config::new(&ports, nowhere.addr(0)).agent(Agent::new("alice", &agent.sip_uri("alice")));
    config.trunk_tables = vec!["uri = \"sip:trunk.test\"\npriority = 1".into()];
    config.sip_extra = format!("dns_servers = [\"{}\"]", silent.local_addr().unwrap());
    let mut cb = Callbridge::start(&dir, &config);

    let start = Instant::now();
    let id = cb.call(CUSTOMER);
    let done = cb.wait_done(Api::CallRequests, &id);
    let took = start.elapsed();
    eprintln!("failed after {took:?}");
    cb.expect_failed(&done, "customer_unreachable");
    agent.expect_untouched(&cb);
    if took > BOUND {
        cb.fail(&format!(
            "the call request took {took:?} (more than {BOUND:?}) to fail on a silent name server: {done:#}"
        ));
    }
}
