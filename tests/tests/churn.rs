//! Churn (issue 7): rounds of many short calls through `POST /v1/bridges`, with SIPp peers that
//! answer at once and an agent that hangs up quickly, so media ports are freed and handed out
//! again while earlier legs are still being removed. Every call must complete, and the data
//! plane must report no failed command (`workers[].relay.commands_failed` of
//! `GET /v1/dataplane/stats`), no lost event, and no leg left behind.
//!
//! The peers carry no RTP of their own (their SDP names a socket of the test that only
//! swallows the announcement): the subject is the leg set-up and tear-down path, not relaying.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use serde_json::Value;

use callbridge_tests::record::{self, is_terminal};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Scenario, Sipp, SippOptions, Workdir, POLL_INTERVAL,
    SIPP_EXIT_DEADLINE,
};

/// Rounds of calls; each round waits until all its calls are over.
const ROUNDS: u32 = 4;
/// Calls per round.
const CALLS: u32 = 250;
/// Calls started per second.
const RATE: u32 = 200;
/// How long the agent talks before hanging up.
const TALK_MS: u32 = 20;
/// Media ports (RTP/RTCP pairs: half of it): room for 100 calls at once, several times what
/// this load keeps up (so `POST` never runs out of ports), few enough that ports are reused
/// hundreds of times.
const MEDIA_PORTS: u16 = 400;
/// Deadline for one round's calls to be over, counted from its last `POST`.
const ROUND_DEADLINE: Duration = Duration::from_secs(60);
/// Deadline for the data plane's counters to show every leg removed.
const STATS_DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn rounds_of_short_calls_all_complete_without_failed_commands() {
    let dir = Workdir::new("churn");
    // The peers' SDP names this socket; it swallows the announcements.
    let sink_ports = PortBlock::reserve(2);
    let sink = UdpSocket::bind(sink_ports.addr(0))
        .unwrap_or_else(|e| panic!("cannot bind {}: {e}", sink_ports.addr(0)));
    // Nothing listens here: customers are SIP URIs, agents are named per bridge.
    let nobody = PortBlock::reserve(2);
    let ports = PortBlock::reserve(2 + MEDIA_PORTS);
    let mut config = Config::new(&ports, nobody.addr(0)).agent(Agent::new(
        "alice",
        &format!("sip:alice@{}", nobody.addr(0)),
    ));
    config.media_ports = (ports.port(2), ports.last());
    let mut cb = Callbridge::start(&dir, &config);

    let mut records = Vec::new();
    let started = Instant::now();
    for round in 0..ROUNDS {
        let peer = |name: &str, scenario, hangup_ms| {
            let opts = SippOptions {
                calls: CALLS,
                hangup_ms,
                rtp_port: Some(sink_ports.port(0)),
                ..SippOptions::default()
            };
            Sipp::spawn(&dir, &format!("{name}{round}"), scenario, &opts)
        };
        let mut customer = peer("customer", Scenario::AnswerExternalMedia, 0);
        let mut agent = peer("agent", Scenario::AnswerByeExternalMedia, TALK_MS);
        let t0 = Instant::now();
        let ids = start_calls(&cb, &customer, &agent);
        let posted = t0.elapsed();
        records.extend(wait_all_final(&mut cb, ids, round));
        eprintln!(
            "round {round}: {CALLS} calls posted in {posted:?}, all over after {:?}",
            t0.elapsed()
        );
        agent.assert_passed(SIPP_EXIT_DEADLINE);
        customer.assert_passed(SIPP_EXIT_DEADLINE);
    }
    eprintln!("{} calls in {:?}", ROUNDS * CALLS, started.elapsed());
    drop(sink);

    let failed: Vec<String> = records
        .iter()
        .filter(|r| record::status(r) != "completed")
        .map(|r| {
            format!(
                "{} {}/{} {:?}",
                r["id"],
                record::status(r),
                record::reason(r).unwrap_or("-"),
                record::statuses(r)
            )
        })
        .collect();
    if !failed.is_empty() {
        cb.fail(&format!(
            "{} of {} calls did not complete; first ones:\n{}",
            failed.len(),
            records.len(),
            failed[..failed.len().min(10)].join("\n")
        ));
    }

    // Every leg removed (the counters are published periodically, so wait for it), then
    // nothing failed or was lost on the way.
    let stats = match cb.poll_until(
        "/v1/dataplane/stats",
        "every leg removed",
        |v| workers(v).iter().all(|w| w["relay"]["legs"] == 0),
        STATS_DEADLINE,
    ) {
        Ok(v) => v,
        Err(v) => cb.fail(&format!(
            "legs left in the data plane after the churn: {v:#}"
        )),
    };
    for w in workers(&stats) {
        let counters = [
            &w["relay"]["commands_failed"],
            &w["relay"]["events_dropped"],
            &w["loop"]["events_dropped"],
        ];
        if counters.iter().any(|c| c.as_u64() != Some(0)) {
            cb.fail(&format!(
                "commands_failed / events_dropped must stay 0 under churn: {stats:#}"
            ));
        }
    }
}

/// `POST /v1/bridges` for [`CALLS`] calls at [`RATE`] per second; returns the ids.
fn start_calls(cb: &Callbridge, customer: &Sipp, agent: &Sipp) -> Vec<String> {
    let start = Instant::now();
    (0..CALLS)
        .map(|i| {
            // Paced by deadline: late calls go at once, early ones wait for their slot.
            let due = start + Duration::from_secs(u64::from(i)) / RATE;
            if let Some(ahead) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(ahead);
            }
            cb.create_bridge(
                &customer.sip_uri(&format!("c{i}")),
                &agent.sip_uri(&format!("a{i}")),
            )
        })
        .collect()
}

/// Polls the bridges until every one is terminal; returns their final records.
fn wait_all_final(cb: &mut Callbridge, mut pending: Vec<String>, round: u32) -> Vec<Value> {
    let start = Instant::now();
    let mut done = Vec::with_capacity(pending.len());
    loop {
        let mut still = Vec::new();
        for id in pending {
            let r = cb.bridge(&id);
            if is_terminal(record::status(&r)) {
                done.push(r);
            } else {
                still.push((id, r));
            }
        }
        if still.is_empty() {
            return done;
        }
        if cb.try_wait().is_some() {
            cb.fail(&format!("callbridge exited during round {round}"));
        }
        if start.elapsed() > ROUND_DEADLINE {
            let (id, r) = &still[0];
            cb.fail(&format!(
                "round {round}: {} calls not over after {ROUND_DEADLINE:?}, e.g. {id}: {r:#}",
                still.len()
            ));
        }
        pending = still.into_iter().map(|(id, _)| id).collect();
        std::thread::sleep(POLL_INTERVAL);
    }
}

fn workers(stats: &Value) -> Vec<Value> {
    stats["workers"].as_array().cloned().unwrap_or_default()
}
