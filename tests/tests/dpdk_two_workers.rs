//! The whole DPDK call of `dpdk_call.rs` through `callbridge serve` with TWO DPDK workers
//! (`dpdk.worker_cores = [1, 1]` with `dpdk.allow_shared_cores = true`, so it runs on a
//! 2-core machine; `net_af_packet` with two queue pairs on a veth). The kernel's packet
//! fanout spreads the frames over both queues, so a datagram often reaches the worker that
//! does not own its port and is handed off to the owner (`worker::steer`): the multi-worker
//! path of the binary, not only of the worker crate. Needs root and a DPDK build; never skips.

use std::time::{Duration, Instant};

use callbridge_tests::dpdk::{DpdkLab, MEDIA_ADDR};
use callbridge_tests::scenario::rings_then_hangs_up;
use callbridge_tests::{Scenario, TwoPartyCall};

#[test]
fn dpdk_call_through_two_workers_sharing_a_core() {
    let lab = DpdkLab::create().workers(2);
    let mut t = TwoPartyCall::builder("dpdk_two_workers")
        .agent(Scenario::AnswerBye, rings_then_hangs_up(2000, 3000))
        .dpdk(&lab)
        .start();

    let ping = lab.ping(MEDIA_ADDR);
    if !ping.status.success() {
        t.cb.fail(&format!(
            "ping {MEDIA_ADDR} through the two-worker DPDK port failed ({}): {}",
            ping.status,
            String::from_utf8_lossy(&ping.stdout),
        ));
    }

    // Both workers busy-poll on one core here, so how many of the ring's ~100 announcement
    // packets get out on time is up to the scheduler (and to whatever else the machine runs):
    // this test asks that the announcement reached the customer through the two-worker path.
    t.expect_full_call_with_ring(10, "during a 2 s agent ring, two workers sharing a core");
    t.expect_sipps_passed();

    let stats = t.cb.get_json("/v1/dataplane/stats");
    let workers = stats["workers"].as_array().cloned().unwrap_or_default();
    if workers.len() != 2 {
        t.cb.fail(&format!(
            "GET /v1/dataplane/stats shows {} workers, expected 2: {stats:#}",
            workers.len()
        ));
    }
    let sum = |f: &dyn Fn(&serde_json::Value) -> u64| workers.iter().map(f).sum::<u64>();
    let relayed = sum(&|w| {
        w["relay"]["tx_packets"].as_u64().unwrap_or(0)
            + w["relay"]["announcement_packets"].as_u64().unwrap_or(0)
    });
    let received = sum(&|w| w["relay"]["rx_packets"].as_u64().unwrap_or(0));
    let frames = sum(&|w| w["io"]["net"]["rx_frames"].as_u64().unwrap_or(0));
    // The talk relays both ways for 3 s (~300 packets).
    if received == 0 || relayed < 50 || frames == 0 {
        t.cb.fail(&format!(
            "the two workers relayed too little (rx {received}, tx {relayed}, frames {frames}): {stats:#}"
        ));
    }
    // Whatever landed on the wrong queue was handed to its owner, never dropped.
    let handoff_drops = sum(&|w| w["io"]["handoff"]["drops"].as_u64().unwrap_or(0));
    if handoff_drops != 0 {
        t.cb.fail(&format!(
            "{handoff_drops} frames dropped in handoff: {stats:#}"
        ));
    }
    // The legs' ports are each owned by exactly one worker; none is left once the call is
    // over (removal is asynchronous: poll with a generous deadline).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let stats = t.cb.get_json("/v1/dataplane/stats");
        let legs: u64 = stats["workers"]
            .as_array()
            .map(|ws| {
                ws.iter()
                    .map(|w| w["relay"]["legs"].as_u64().unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0);
        if legs == 0 {
            break;
        }
        if Instant::now() > deadline {
            t.cb.fail(&format!("{legs} legs left 20 s after the call: {stats:#}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
