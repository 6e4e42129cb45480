//! Nothing accepted is lost: a burst of 500 call requests over HTTP, `kill -9` of callbridge
//! once a seeded, random number (30..230) of them have been answered `202`, then a restart on the same
//! store. Every request that got a `202` exists after the restart, proceeds to a final status,
//! and none ran twice: a request dials its customer again only after an `interrupted` event
//! (a call cut short by the kill), and `GET /v1/records` lists each id once.
//!
//! The calls are real: callbridge's lab endpoints answer the customers (trunk) and the two
//! agents, so at the moment of the kill some calls are ringing, announcing or bridged.
//!
//! Also here: `Idempotency-Key` across the restart (same key and body: the first response;
//! another body: 422).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbridge_tests::http::request_with_headers;
use callbridge_tests::record::is_terminal;
use callbridge_tests::{Agent, Callbridge, Config, PortBlock, Workdir};
use serde_json::{json, Value};

const REQUESTS: usize = 500;
const CLIENTS: usize = 8;
/// Seeds for the moment of the kill (the number of 202s received before it).
const SEEDS: [u64; 3] = [7, 1_234, 99_991];
/// How long every accepted request may take to reach a final status after the restart.
const SETTLE_DEADLINE: Duration = Duration::from_secs(150);

/// A small deterministic generator (xorshift), so a seed names one kill moment.
fn kill_after(seed: u64) -> usize {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    30 + usize::try_from(x % 200).unwrap_or(0)
}

/// 998 media ports: 499 legs, room for 249 calls being dialled or waiting to be (admission
/// refuses the rest of the burst with 503, which is not a loss).
fn config(ports: &PortBlock, lab: &PortBlock, media: &PortBlock) -> Config {
    let mut c = Config::new(ports, lab.addr(0));
    c.media_ports = (media.first(), media.last());
    // The burst is the point: no cap on calls in progress (the default is 50).
    c.business_toml("acme", "[business.limits]\nmax_concurrent_calls = 0")
        .agent(Agent::new("alice", &format!("sip:alice@{}", lab.addr(2))))
        .agent(Agent::new("bob", &format!("sip:bob@{}", lab.addr(4))))
        .lab_endpoints(true)
        // Short waits so that the queue drains quickly after the restart.
        .with_toml("[flow]\nqueue_timeout_secs = 3\ncustomer_ring_secs = 10\nagent_ring_secs = 10")
}

#[test]
fn kill_9_during_a_burst_loses_and_duplicates_nothing() {
    for seed in SEEDS {
        run_seed(seed);
    }
}

fn run_seed(seed: u64) {
    let dir = Workdir::new(&format!("durability-{seed}"));
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let lab = PortBlock::reserve(6);
    let media = PortBlock::reserve(998);
    let config = config(&ports, &lab, &media);
    let mut cb = Callbridge::start(&dir, &config);
    let http = cb.http_addr();
    let kill_at = kill_after(seed);

    // The burst: CLIENTS threads, each posting its share; every 202's id is kept.
    let accepted: Arc<Mutex<Vec<String>>> = Arc::default();
    let next = Arc::new(AtomicUsize::new(0));
    let reached = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(AtomicBool::new(false));
    let refused = Arc::new(AtomicUsize::new(0));
    // Transport errors before the kill (none expected): counted, the last one kept, so that
    // a burst that stalls says how.
    let errors: Arc<Mutex<(usize, String)>> = Arc::default();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (accepted, next, reached, killed, refused, errors) = (
            accepted.clone(),
            next.clone(),
            reached.clone(),
            killed.clone(),
            refused.clone(),
            errors.clone(),
        );
        clients.push(std::thread::spawn(move || loop {
            let n = next.fetch_add(1, Ordering::SeqCst);
            if n >= REQUESTS || killed.load(Ordering::SeqCst) {
                return;
            }
            let body = json!({
                "business": "acme",
                "customer": format!("+1555{:07}", n),
                "page": {"url": format!("https://shop.example/p/{n}"), "title": "Shop"},
            })
            .to_string();
            match request_with_headers(http, "POST", "/v1/call-requests", &[], Some(&body)) {
                Ok(r) if r.status == 202 => {
                    let id = r.json()["id"].as_str().unwrap_or_default().to_owned();
                    let mut a = accepted.lock().unwrap();
                    a.push(id);
                    if a.len() >= kill_at {
                        reached.store(true, Ordering::SeqCst);
                    }
                }
                // 503 (admission) and 429 (limits) are clear refusals, not losses.
                Ok(r) if r.status == 503 || r.status == 429 => {
                    refused.fetch_add(1, Ordering::SeqCst);
                }
                Ok(r) => panic!("POST {n}: unexpected {} {}", r.status, r.body),
                // Cut off by the kill: no promise was made.
                Err(e) => {
                    if !killed.load(Ordering::SeqCst) {
                        let mut er = errors.lock().unwrap();
                        er.0 += 1;
                        er.1 = format!("POST {n}: {e}");
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    while !reached.load(Ordering::SeqCst) && start.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        reached.load(Ordering::SeqCst),
        "seed {seed}: only {} of {kill_at} requests were accepted within 120 s ({} refused; \
         transport errors before the kill: {:?})",
        accepted.lock().unwrap().len(),
        refused.load(Ordering::SeqCst),
        errors.lock().unwrap()
    );
    cb.kill_hard();
    killed.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().expect("client thread");
    }
    let first_log = cb.log();
    dir.write("callbridge-before-kill.log", &first_log);
    let accepted: Vec<String> = accepted.lock().unwrap().clone();
    let unique: BTreeSet<&String> = accepted.iter().collect();
    assert_eq!(
        unique.len(),
        accepted.len(),
        "seed {seed}: an id was handed out twice"
    );
    eprintln!(
        "seed {seed}: killed after {} accepted (target {kill_at}), {} refused (503/429)",
        accepted.len(),
        refused.load(Ordering::SeqCst)
    );

    // Restart on the same store.
    drop(cb);
    let cb = Callbridge::start(&dir, &config);

    // Every accepted request exists and reaches a final status.
    let until = Instant::now() + SETTLE_DEADLINE;
    let mut finals: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        for id in &accepted {
            if finals.contains_key(id) {
                continue;
            }
            let r = cb.get(&format!("/v1/call-requests/{id}"));
            if r.status != 200 {
                cb.fail(&format!(
                    "seed {seed}: accepted request {id} is gone after the restart: {} {}",
                    r.status, r.body
                ));
            }
            let v = r.json();
            if is_terminal(v["status"].as_str().unwrap_or_default()) {
                finals.insert(id.clone(), v);
            }
        }
        if finals.len() == accepted.len() {
            break;
        }
        if Instant::now() > until {
            let stuck: Vec<&String> = accepted
                .iter()
                .filter(|i| !finals.contains_key(*i))
                .take(5)
                .collect();
            cb.fail(&format!(
                "seed {seed}: {} of {} accepted requests did not reach a final status within {SETTLE_DEADLINE:?}, e.g. {stuck:?}",
                accepted.len() - finals.len(),
                accepted.len()
            ));
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    // None ran twice: a new dial only after an interruption; the page survived.
    let mut interrupted = 0;
    for (id, v) in &finals {
        let events: Vec<&str> = v["events"]
            .as_array()
            .map(|e| e.iter().filter_map(|e| e["status"].as_str()).collect())
            .unwrap_or_default();
        let dials = events.iter().filter(|s| **s == "calling_customer").count();
        let cuts = events.iter().filter(|s| **s == "interrupted").count();
        interrupted += cuts;
        if dials > 1 + cuts {
            cb.fail(&format!(
                "seed {seed}: {id} dialled {dials} times with {cuts} interruptions: {v:#}"
            ));
        }
        if events.first() != Some(&"queued") {
            cb.fail(&format!("seed {seed}: {id} does not start queued: {v:#}"));
        }
        if !v["page"]["url"]
            .as_str()
            .is_some_and(|u| u.starts_with("https://shop.example/p/"))
        {
            cb.fail(&format!("seed {seed}: {id} lost its page: {v:#}"));
        }
    }
    let records = cb.get("/v1/records?business=acme&limit=10000").json();
    let listed: Vec<&str> = records
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_str()).collect())
        .unwrap_or_default();
    let listed_set: BTreeSet<&str> = listed.iter().copied().collect();
    assert_eq!(
        listed.len(),
        listed_set.len(),
        "seed {seed}: a record is listed twice"
    );
    for id in &accepted {
        assert!(
            listed_set.contains(id.as_str()),
            "seed {seed}: {id} missing from /v1/records"
        );
    }
    eprintln!(
        "seed {seed}: all {} accepted requests final after the restart ({interrupted} calls were interrupted)",
        accepted.len()
    );
}

#[test]
fn idempotency_key_survives_a_restart() {
    let dir = Workdir::new("idempotency");
    let ports = PortBlock::reserve(Config::BLOCK_LEN);
    let lab = PortBlock::reserve(6);
    let media = PortBlock::reserve(40);
    let config = config(&ports, &lab, &media);
    let mut cb = Callbridge::start(&dir, &config);
    let body = json!({"business": "acme", "customer": "+15550001234"}).to_string();
    let post = |cb: &Callbridge, key: &str, body: &str| {
        request_with_headers(
            cb.http_addr(),
            "POST",
            "/v1/call-requests",
            &[("Idempotency-Key", key)],
            Some(body),
        )
        .expect("POST")
    };
    let first = post(&cb, "order-17", &body);
    assert_eq!(first.status, 202, "{}", first.body);
    let id = first.json()["id"].as_str().unwrap().to_owned();
    let again = post(&cb, "order-17", &body);
    assert_eq!(again.status, 202);
    assert_eq!(
        again.json()["id"],
        id.as_str(),
        "the same key and body replay the first answer"
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    cb.kill_hard();
    drop(cb);
    let cb = Callbridge::start(&dir, &config);
    let after = post(&cb, "order-17", &body);
    assert_eq!(after.status, 202);
    assert_eq!(
        after.json()["id"],
        id.as_str(),
        "the key outlives a kill -9"
    );
    let other = post(
        &cb,
        "order-17",
        &json!({"business": "acme", "customer": "+15550009999"}).to_string(),
    );
    assert_eq!(other.status, 422, "{}", other.body);
    assert_eq!(other.json()["field"], "Idempotency-Key");
    let fresh = post(&cb, "order-18", &body);
    assert_eq!(fresh.status, 202);
    assert_ne!(fresh.json()["id"], id.as_str());
}
