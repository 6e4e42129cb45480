//! Issue 11 §4 across the test topology (`scripts/topology`, root only): PostgreSQL in host
//! `pg` listening on its address, two `callbridge serve` nodes in `cp1` and `cp2` (HTTP, SIP
//! and media each on its own host's address, `store.url` naming `pg`), the SIPp customer in
//! `sipc` and the SIPp agents in `sipa`. The test process stays in the root namespace, which
//! the script puts on the bridge (`.1` of the topology's /24): it POSTs to both nodes' HTTP
//! addresses directly, and the harness's health waits work unchanged. The root namespace is
//! not loopback to the nodes, so business `acme` has an API key and every request carries it,
//! and the per-address rate limit is off (the whole burst comes from that one address).
//!
//! A burst of call requests is spread over both nodes and `cp1` is killed (`kill -9`) in the
//! middle. Every accepted request ends (`completed`, or `failed/interrupted` for a call cp1
//! had on the line when it died: the test business allows one attempt) and none is dialled
//! twice: the customer's SIPp in `sipc` sees at most one INVITE per request
//! (`X-Callbridge-Call`), exactly one for each completed request.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use callbridge_tests::netns::run;
use callbridge_tests::postgres::Postgres;
use callbridge_tests::scenario::rings_then_hangs_up;
use callbridge_tests::server::bin_path;
use callbridge_tests::sipp_log::invites_for;
use callbridge_tests::topology::{api_with_key, Topology, HOSTS};
use callbridge_tests::{
    Agent, Callbridge, Config, PortBlock, Response, Scenario, Sipp, SippOptions, Workdir,
    POLL_INTERVAL,
};
use serde_json::Value;

/// Business `acme`'s API key (clients off loopback need one).
const KEY: &str = "topology-key-0123456789abcdef";

/// One API request with the key.
fn api(cb: &Callbridge, method: &str, path: &str, body: Option<&Value>) -> Response {
    api_with_key(cb, KEY, method, path, body)
}

/// Waits until call request `id` has ended (`completed` or `failed`); returns its record.
fn wait_ended(cb: &Callbridge, id: &str, deadline: Duration) -> Value {
    let t0 = std::time::Instant::now();
    loop {
        let r = api(cb, "GET", &format!("/v1/call-requests/{id}"), None);
        if r.status == 200 {
            let v = r.json();
            if matches!(v["status"].as_str(), Some("completed" | "failed")) {
                return v;
            }
        }
        if t0.elapsed() > deadline {
            cb.fail(&format!(
                "{id} did not end within {deadline:?}: {} {}",
                r.status, r.body
            ));
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Names in the root namespace and the namespace list that carry `prefix`.
fn leftovers(prefix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for args in [
        &["ip", "netns", "list"][..],
        &["ip", "-o", "link", "show"][..],
    ] {
        let out = String::from_utf8_lossy(&run(args).stdout).into_owned();
        found.extend(
            out.lines()
                .filter(|l| l.contains(&format!("{prefix}-")))
                .map(str::to_owned),
        );
    }
    found
}

#[test]
fn the_topology_comes_up_reachable_and_goes_down_without_a_trace() {
    let prefix;
    {
        let topo = Topology::up();
        prefix = topo.prefix().to_owned();
        // Every host answers from the root namespace and from another host.
        for h in HOSTS {
            let addr = topo.addr(h).to_string();
            let ping = run(&["ping", "-c", "1", "-W", "5", &addr]);
            assert!(ping.status.success(), "root → {h} ({addr}): {ping:?}");
            let from = topo.exec("sipc", &["ping", "-c", "1", "-W", "5", &addr]);
            assert!(from.contains("1 received"), "sipc → {h}: {from}");
            assert!(
                topo.exec(h, &["ip", "-o", "addr", "show", "lo"])
                    .contains("127.0.0.1"),
                "{h}: loopback up"
            );
        }
        assert!(!leftovers(&prefix).is_empty());
    }
    assert_eq!(leftovers(&prefix), Vec::<String>::new(), "down left these");
}

/// One control-plane node in host `host`: its config, directory and process.
struct Node {
    _dir: Workdir,
    cb: Callbridge,
}

fn node(topo: &Topology, host: &str, url: &str, customer: &Sipp, agents: &[Agent]) -> Node {
    let ip = IpAddr::V4(topo.addr(host));
    // The block gives port numbers only; the addresses are the host's.
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let mut config = Config::new(&ports, customer.sip_addr())
        .with_toml(&format!("[store]\nurl = \"{url}\""))
        .business_toml("acme", &format!("api_keys = [\"{KEY}\"]"))
        // The whole burst comes from one address (the root namespace's), not loopback.
        .with_toml("[limits]\nper_ip_per_minute = 0");
    config.http = SocketAddr::new(ip, ports.port(0));
    config.sip = SocketAddr::new(ip, ports.port(1));
    config.media_address = ip;
    for a in agents {
        config = config.agent(a.clone());
    }
    let dir = Workdir::new(&format!("topology_burst_{host}"));
    let path = dir.write("callbridge.toml", &config.render());
    let mut cmd = topo.command(host, bin_path());
    cmd.arg("serve").arg("--config").arg(&path);
    let cb = Callbridge::start_command(&dir, &config, path, cmd);
    Node { _dir: dir, cb }
}

#[test]
fn a_burst_over_two_nodes_across_the_topology_with_one_killed_dials_every_request_once() {
    const REQUESTS: usize = 16;
    let topo = Topology::up();
    let pg = Postgres::start_in_netns(topo.ns("pg"), topo.addr("pg"));
    let url = pg.fresh_database();
    assert!(url.contains(&topo.addr("pg").to_string()), "{url}");

    let dir = Workdir::new("topology_burst");
    let in_host = |host: &str, calls: u32, base: SippOptions| SippOptions {
        calls,
        netns: Some(topo.ns(host).to_owned()),
        sip_ip: Some(topo.addr(host)),
        ..base
    };
    // The customer answers at once; each agent call hangs up 1.5 s after answering.
    let mut customer = Sipp::spawn(
        &dir,
        "customer",
        Scenario::Answer,
        &in_host("sipc", 1000, SippOptions::default()),
    );
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &in_host("sipa", 1000, rings_then_hangs_up(0, 1500)),
    );
    let agents: Vec<Agent> = (0..8)
        .map(|i| Agent::new(&format!("ag{i}"), &agent.sip_uri(&format!("ag{i}"))))
        .collect();
    let mut n1 = node(&topo, "cp1", &url, &customer, &agents);
    let mut n2 = node(&topo, "cp2", &url, &customer, &agents);
    let (a, b) = (&mut n1.cb, &mut n2.cb);
    assert_eq!(a.http_addr().ip(), IpAddr::V4(topo.addr("cp1")));

    // The burst, alternating nodes; cp1 dies half-way.
    let mut ids = Vec::new();
    let mut on_a = 0;
    for k in 0..REQUESTS {
        if k == REQUESTS / 2 {
            a.kill_hard();
        }
        let via_a = k % 2 == 0 && k < REQUESTS / 2;
        let via = if via_a { &a } else { &b };
        // One number per request (a number may be asked for only so often). A node that
        // cannot carry more now answers 503 (admission): not accepted, nothing to check.
        let r = api(
            via,
            "POST",
            "/v1/call-requests",
            Some(&serde_json::json!({"business": "acme", "customer": format!("+1555123{k:04}")})),
        );
        match r.status {
            202 => {
                let v: serde_json::Value = serde_json::from_str(&r.body).expect("JSON");
                ids.push(v["id"].as_str().expect("id").to_owned());
                on_a += usize::from(via_a);
            }
            503 => {}
            other => panic!("POST /v1/call-requests answered {other}: {}", r.body),
        }
    }

    // Every request ends, as cp2 sees it (cp1's lease runs out after 15 s).
    let mut completed = Vec::new();
    for id in &ids {
        let done = wait_ended(b, id, Duration::from_secs(90));
        match (done["status"].as_str(), done["reason"].as_str()) {
            (Some("completed"), _) => completed.push(id.clone()),
            (Some("failed"), Some("interrupted")) => {}
            other => panic!("{id} ended {other:?}: {done:#}\n{}", b.log()),
        }
    }
    assert!(
        ids.len() >= REQUESTS / 2 && completed.len() >= REQUESTS / 4,
        "{} of {REQUESTS} accepted, {} completed",
        ids.len(),
        completed.len()
    );

    // At most one INVITE per request; exactly one for each completed one.
    let log = customer.messages();
    let invites = |id: &str| invites_for(&log, id);
    let mut interrupted_dialled = 0;
    for id in &ids {
        let n = invites(id);
        assert!(n <= 1, "{id} was dialled {n} times\n{}", customer.report());
        if completed.contains(id) {
            assert_eq!(n, 1, "{id} completed without one INVITE at the customer");
        } else {
            interrupted_dialled += n;
        }
    }
    // cp2's INVITEs came from its own address, across the bridge.
    let via = format!("Via: SIP/2.0/UDP {}:", topo.addr("cp2"));
    assert!(log.contains(&via), "no INVITE via cp2 ({via})");
    eprintln!(
        "topology burst: {} of {REQUESTS} accepted ({on_a} by cp1), {} completed, {} failed/interrupted \
         (cp1's calls on the line; {interrupted_dialled} of them had reached the customer)",
        ids.len(),
        completed.len(),
        ids.len() - completed.len()
    );
    let status = b.stop();
    assert!(status.is_some_and(|s| s.success()), "{}", b.log());
    customer.kill();
}
