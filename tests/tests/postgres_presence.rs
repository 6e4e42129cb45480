//! Issue 11 §2: agents shared by two `callbridge serve` nodes on one PostgreSQL
//! (`agents_state`, LISTEN/NOTIFY, a resync poll).
//!
//! ```text
//!  desktop (WebSocket) ─► node B ─┐                 ┌─ customer SIPp (the trunk)
//!  PUT presence ────────► node B ─┼─ PostgreSQL ────┤
//!  POST call-requests ──► node A ─┘  agents_state   └─ alice's SIPp phone
//! ```
//!
//! 1. Alice goes away through B: A sees it at once. A request POSTed to A waits in the queue
//!    of whichever node claimed it (either may). Her desktop connects to the *other* node and
//!    she becomes available there: the runner gives her the call (customer, announcement, her
//!    phone, bridged, completed), and the desktop's stream on the other node gets the screen pop
//!    and the call's status.
//! 2. A holds alice's reservation (the customer rings; B started after A claimed the request)
//!    and is killed (`kill -9`): B queues a new request for her until A's lease (15 s) has
//!    expired, then gives it to her; A's request is failed as interrupted, dialled once.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use callbridge_tests::postgres::Postgres;
use callbridge_tests::scenario::{rings_then_hangs_up, CUSTOMER};
use callbridge_tests::sipp_log::invites_for;
use callbridge_tests::store_nodes::{node, ringing_customer_and_alice};
use callbridge_tests::{Agent, Callbridge, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE};
use serde_json::Value;

/// How long a change on one node may take to show on the other (LISTEN/NOTIFY; the poll
/// every 2 s is the fallback): generous for a loaded machine.
const PROPAGATION: Duration = Duration::from_secs(10);

/// An agent desktop's WebSocket (`GET /v1/agents/{id}/ws`, loopback: no token): a thread
/// reads its text messages into a channel. Just enough of RFC 6455 for a client that only
/// listens (server frames are unmasked; the connection closes with the test).
struct Desktop {
    rx: mpsc::Receiver<Value>,
    seen: Vec<Value>,
}

impl Desktop {
    fn connect(http: SocketAddr, agent: &str) -> Self {
        let mut s = TcpStream::connect(http).expect("connect to the HTTP listener");
        write!(
            s,
            "GET /v1/agents/{agent}/ws HTTP/1.1\r\nHost: {http}\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Sec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).expect("the upgrade answer");
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head).into_owned();
        assert!(head.starts_with("HTTP/1.1 101"), "no WebSocket: {head}");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut text = Vec::new();
            loop {
                let mut h = [0u8; 2];
                if s.read_exact(&mut h).is_err() {
                    return;
                }
                let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
                let len = match h[1] & 0x7f {
                    126 => {
                        let mut l = [0u8; 2];
                        s.read_exact(&mut l).unwrap();
                        u64::from(u16::from_be_bytes(l))
                    }
                    127 => {
                        let mut l = [0u8; 8];
                        s.read_exact(&mut l).unwrap();
                        u64::from_be_bytes(l)
                    }
                    n => u64::from(n),
                };
                let mut payload = vec![0u8; usize::try_from(len).unwrap()];
                if s.read_exact(&mut payload).is_err() {
                    return;
                }
                match opcode {
                    0x8 => return,
                    0x1 | 0x0 => {
                        text.extend_from_slice(&payload);
                        if fin {
                            let v = serde_json::from_slice(&text).expect("a JSON message");
                            text.clear();
                            if tx.send(v).is_err() {
                                return;
                            }
                        }
                    }
                    _ => {}
                }
            }
        });
        Self {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a message that satisfies `pred`; panics with what came instead.
    fn wait(&mut self, what: &str, mut pred: impl FnMut(&Value) -> bool) -> Value {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return v.clone();
        }
        let until = Instant::now() + CALL_DEADLINE;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => break,
            }
        }
        panic!("the desktop never got {what}; it got {:#?}", self.seen);
    }
}

fn presence(cb: &Callbridge, agent: &str) -> String {
    cb.get_json(&format!("/v1/agents/{agent}/presence"))["presence"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn set_presence(cb: &Callbridge, agent: &str, p: &str) {
    let r = cb.request(
        "PUT",
        &format!("/v1/agents/{agent}/presence"),
        Some(&format!("{{\"presence\": \"{p}\"}}")),
    );
    assert_eq!(r.status, 200, "PUT presence {p}: {}", r.body);
}

/// Waits until `cb` shows `agent` with presence `want`; returns how long it took.
fn wait_presence(cb: &Callbridge, agent: &str, want: &str) -> Duration {
    let start = Instant::now();
    loop {
        let now = presence(cb, agent);
        if now == want {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < PROPAGATION,
            "{agent} is still {now:?} on this node, not {want:?}, after {PROPAGATION:?}\n{}",
            cb.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The whole log of a node (`Callbridge::log` keeps only the tail, and PostgreSQL's DEBUG
/// lines fill it fast).
fn whole_log(log: &std::path::Path) -> String {
    String::from_utf8_lossy(&std::fs::read(log).unwrap_or_default()).into_owned()
}

/// Waits until the log at `log` has a line with every one of `needles`.
fn wait_log(log: &std::path::Path, needles: &[&str], deadline: Duration) {
    let start = Instant::now();
    while !whole_log(log)
        .lines()
        .any(|l| needles.iter().all(|n| l.contains(n)))
    {
        if start.elapsed() > deadline {
            let log = whole_log(log);
            let about: Vec<&str> = log
                .lines()
                .filter(|l| needles.iter().skip(1).all(|n| l.contains(n)))
                .collect();
            panic!(
                "no log line with {needles:?} within {deadline:?}; lines with the rest:\n{}",
                about.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn presence_set_on_one_node_routes_calls_accepted_by_the_other_and_pops_its_desktop() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let test = "postgres_presence";

    let dir = Workdir::new(test);
    let customer = Sipp::spawn(&dir, "customer", Scenario::Answer, &SippOptions::default());
    let agent = Sipp::spawn(
        &dir,
        "agent",
        Scenario::AnswerBye,
        &rings_then_hangs_up(500, 1500),
    );
    let alice = [Agent::new("alice", &agent.sip_uri("alice"))];
    let mut nodes = [
        node(test, "a", &url, &customer, &alice),
        node(test, "b", &url, &customer, &alice),
    ];
    let logs: Vec<_> = nodes
        .iter()
        .map(|n| n.dir.path().join("callbridge.log"))
        .collect();

    // Alice goes away through B, and A sees it at once.
    set_presence(&nodes[1].cb, "alice", "away");
    let away_ms = wait_presence(&nodes[0].cb, "alice", "away").as_millis();

    // A request POSTed to A waits for her, dialling nobody, in the ACD of whichever node
    // claimed it (the runner `r`); every node tells the same queue position.
    let id = nodes[0].cb.call(CUSTOMER);
    let start = Instant::now();
    let r = loop {
        let mine = |i: usize| {
            whole_log(&logs[i])
                .lines()
                .any(|l| l.contains("waiting for a free agent") && l.contains(&id))
        };
        if let Some(i) = (0..2).find(|&i| mine(i)) {
            break i;
        }
        assert!(start.elapsed() < CALL_DEADLINE, "no node queued {id}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = 1 - r;
    for n in &nodes {
        let v = n.cb.call_request(&id);
        assert_eq!(v["status"], "queued", "{v:#}");
        assert_eq!(v["queue_position"], 1, "{v:#}");
    }
    // Only the runner's own queue holds it; the other node counts it cluster-wide (issue 11).
    for (i, own) in [(r, 1), (o, 0)] {
        let what = "every node's queued requests";
        nodes[i].cb.wait_for(
            "/v1/admin/status",
            what,
            |v| v["queued_requests"] == own && v["queued_requests_cluster"] == 1,
            CALL_DEADLINE,
        );
        let metrics = nodes[i].cb.get("/metrics").body;
        let line = "callbridge_queue_length_cluster{business=\"acme\"} 1";
        assert!(metrics.contains(line), "{line} in {metrics}");
        let stats = nodes[i].cb.get_json("/v1/stats");
        assert_eq!(
            stats["businesses"]["acme"]["queued_cluster"], 1,
            "{stats:#}"
        );
    }
    assert!(
        !customer.received_request("INVITE"),
        "the customer was dialled while alice was away"
    );

    // Her desktop is on the other node `o`, and she becomes available there: the runner gives
    // her the call; `o`'s desktop gets the screen pop and the call's status.
    let mut desk = Desktop::connect(nodes[o].ports.addr(0), "alice");
    desk.wait("her presence", |v| {
        v["type"] == "presence" && v["presence"] == "away"
    });
    let back = Instant::now();
    set_presence(&nodes[o].cb, "alice", "available");
    let pop = desk.wait("the screen pop", |v| {
        v["type"] == "screen_pop" && v["call"]["id"] == id.as_str()
    });
    let pop_ms = back.elapsed().as_millis();
    assert_eq!(pop["call"]["business"], "acme", "{pop:#}");
    let done = nodes[r].cb.wait_for_status(
        &id,
        |s| s == "completed" || s == "failed",
        CALL_DEADLINE * 2,
    );
    assert_eq!(
        done["status"],
        "completed",
        "{done:#}\n{}",
        nodes[r].cb.log()
    );
    assert_eq!(done["agent"], "alice", "{done:#}");
    desk.wait("the call's status", |v| {
        v["type"] == "status" && v["id"] == id.as_str() && v["status"] == "bridged"
    });
    assert!(
        whole_log(&logs[o]).contains("screen pop from another node"),
        "the desktop's node built the pop itself"
    );
    // She is free again everywhere, and the row says so.
    for n in &nodes {
        wait_presence(&n.cb, "alice", "available");
    }
    assert_eq!(
        pg.psql(
            &db,
            "SELECT presence || ',' || COALESCE(call_id, '-') FROM agents_state WHERE agent = 'alice'"
        ),
        "available,-"
    );
    eprintln!(
        "presence propagation: away set on B seen on A after {away_ms} ms; the call ran on {}, \
         the screen pop reached the desktop on {} {pop_ms} ms after she became available there",
        ["A", "B"][r],
        ["A", "B"][o]
    );
    for n in &mut nodes {
        let st = n.cb.stop();
        assert!(st.is_some_and(|s| s.success()), "{}", n.cb.log());
    }
}

#[test]
fn a_killed_nodes_reservation_frees_the_agent_after_its_lease() {
    let pg = Postgres::start();
    let url = pg.fresh_database();
    let db = url.rsplit('/').next().unwrap().to_owned();
    let test = "postgres_presence_kill";

    let dir = Workdir::new(test);
    // The customer rings a long time: A's call holds alice's reservation while it rings.
    let (customer, _agent, alice) = ringing_customer_and_alice(&dir);
    // A takes the first request before B exists, so that the call (and alice) is A's.
    let mut na = node(test, "a", &url, &customer, &alice);
    let first = na.cb.call(CUSTOMER);
    na.cb
        .wait_for_status(&first, |s| s == "calling_customer", CALL_DEADLINE);
    let mut nb = node(test, "b", &url, &customer, &alice);
    let b_log = nb.dir.path().join("callbridge.log");
    let (a, b) = (&mut na.cb, &mut nb.cb);
    let held = pg.psql(
        &db,
        "SELECT call_id || ',' || call_run FROM agents_state WHERE agent = 'alice'",
    );
    assert!(
        held.starts_with(&format!("{first},run-")),
        "A's call holds alice: {held:?}"
    );
    // B's mirror shows her on A's call.
    wait_presence(b, "alice", "on_call");
    a.kill_hard();
    let killed = Instant::now();

    // B queues a new request: she is A's until A's lease (15 s) runs out.
    let second = b.call(CUSTOMER);
    wait_log(
        &b_log,
        &["waiting for a free agent", &second],
        CALL_DEADLINE,
    );
    let v = b.call_request(&second);
    assert_eq!(v["status"], "queued", "{v:#}");
    // Then B's poll finds her free (A's lease expired) and gives her the new request.
    let about = |needle: &str| {
        whole_log(&b_log)
            .lines()
            .filter(|l| l.contains(needle) && !l.contains("DEBUG"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let on_b = b.wait_for_status(&second, |s| s != "queued", Duration::from_secs(60));
    let freed_s = killed.elapsed().as_secs_f64();
    let statuses: Vec<&str> = on_b["events"]
        .as_array()
        .map(|e| e.iter().filter_map(|e| e["status"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        on_b["agent"] == "alice" && statuses.contains(&"calling_customer"),
        "{on_b:#}\nB about it:\n{}\nB about alice:\n{}",
        about(&second),
        about("alice")
    );
    assert!(
        freed_s > 5.0,
        "alice was given away {freed_s:.1} s after the kill, before A's lease could expire"
    );
    // A's request: taken over by B, failed as interrupted (one attempt allowed), never dialled
    // again.
    let gone = b.wait_for_status(
        &first,
        |s| s == "failed" || s == "completed",
        Duration::from_secs(60),
    );
    assert_eq!(
        gone["reason"],
        "interrupted",
        "{gone:#}\nB about it:\n{}",
        about(&first)
    );
    // A's request is never dialled twice (B fails it as interrupted: one attempt allowed).
    let invites = invites_for(&customer.messages(), &first);
    assert!(
        invites <= 1,
        "{first} was dialled {invites} times; B about it:\n{}",
        about(&first)
    );
    eprintln!(
        "a killed node's reservation: alice given to B's request {freed_s:.1} s after kill -9 (lease 15 s)"
    );
    let status = b.stop();
    assert!(status.is_some_and(|s| s.success()), "{}", b.log());
}
