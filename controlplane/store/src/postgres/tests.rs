//! The behavioural suite on PostgreSQL, and what only a shared database has: two nodes
//! claiming at once, leases and take-over, idempotency across nodes, migrations.
//!
//! One server per test process (the harness in `tests/src/postgres.rs`, included by `#[path]`
//! in lib.rs so the black-box tests use the same file), one fresh database per test.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, OnceLock};

use super::*;
use crate::pg_harness::Postgres;
use crate::suite::{behaviour_tests, id, req, resp};
use flows::Presence;

fn server() -> &'static Postgres {
    static SERVER: OnceLock<Postgres> = OnceLock::new();
    SERVER.get_or_init(Postgres::start)
}

/// A store on a fresh database (the guard is its URL, for a second handle), with a 50 ms
/// lease: the suite's times are synthetic, and its `recover` test expects the claims of the
/// run it calls "old" (10 ms) to have expired by 100 ms, as a restart's would.
fn store() -> (String, PgStore) {
    let url = server().fresh_database();
    let s = PgStore::open_with(&url, 50, 4).unwrap();
    (url, s)
}

behaviour_tests!(store);

#[test]
fn migrations_reach_the_newest_version_and_are_idempotent() {
    let (url, s) = store();
    assert_eq!(s.schema_version().unwrap(), PG_SCHEMA_VERSION);
    s.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    drop(s);
    let again = PgStore::open(&url).unwrap();
    assert!(again.get(&id(1)).unwrap().is_some());
    // A newer schema is refused.
    again
        .pool
        .get()
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", &[])
        .unwrap();
    assert!(matches!(
        PgStore::open(&url),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn bad_urls_are_refused_with_a_reason() {
    assert!(parse_url("mysql://x@h/db").is_err());
    assert!(parse_url("postgres://127.0.0.1:5432/db")
        .unwrap_err()
        .contains("no user"));
    assert!(parse_url("postgres://u@127.0.0.1:notaport/db").is_err());
    assert!(parse_url("postgres://u@127.0.0.1:5432/db").is_ok());
}

#[test]
fn nodes_starting_together_migrate_once() {
    let url = server().fresh_database();
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let url = url.clone();
            std::thread::spawn(move || PgStore::open(&url).map(|s| s.schema_version().unwrap()))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap().unwrap(), PG_SCHEMA_VERSION);
    }
}

#[test]
fn one_idempotency_key_accepted_on_two_nodes_at_once_creates_one_request() {
    let (url, a) = store();
    let b = PgStore::open(&url).unwrap();
    let nodes = [Arc::new(a), Arc::new(b)];
    let barrier = Arc::new(Barrier::new(8));
    let handles: Vec<_> = (0..8u128)
        .map(|n| {
            let s = nodes[usize::try_from(n % 2).unwrap()].clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                let key = IdempotencyKey {
                    scope: "acme".into(),
                    key: "same".into(),
                    body_hash: "h".into(),
                    at_ms: 10,
                };
                barrier.wait();
                s.accept(&req(100 + n, "queued", Some(0)), Some(&key), &resp(100 + n))
                    .unwrap()
            })
        })
        .collect();
    let results: Vec<Accepted> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let new = results.iter().filter(|r| **r == Accepted::New).count();
    assert_eq!(new, 1, "{results:?}");
    let all = nodes[0]
        .records(&RecordFilter {
            business: None,
            from_ms: 0,
            to_ms: i64::MAX,
            limit: 100,
        })
        .unwrap();
    assert_eq!(all.len(), 1);
    for r in &results {
        if let Accepted::Replay { id, .. } = r {
            assert_eq!(*id, all[0].request.id);
        }
    }
}

/// Claims until nothing is left, from `threads` threads sharing `s`, as `run` at `now`.
fn claim_all(
    s: &Arc<PgStore>,
    run: &str,
    now: i64,
    threads: usize,
) -> Vec<std::thread::JoinHandle<Vec<CallId>>> {
    (0..threads)
        .map(|_| {
            let s = s.clone();
            let run = run.to_owned();
            std::thread::spawn(move || {
                let mut got = Vec::new();
                loop {
                    let batch = s.claim_due(&run, now, 7).unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    got.extend(batch.into_iter().map(|r| r.request.id));
                }
            })
        })
        .collect()
}

#[test]
fn two_nodes_claim_each_request_once_and_take_over_a_dead_nodes_work_once() {
    const LEASE: i64 = 1_000;
    let url = server().fresh_database();
    let a = Arc::new(PgStore::open_with(&url, LEASE, 4).unwrap());
    let b = Arc::new(PgStore::open_with(&url, LEASE, 4).unwrap());
    for n in 0..200u128 {
        a.accept(&req(n, "queued", Some(0)), None, &resp(n))
            .unwrap();
    }
    // Both nodes start (recover registers their runs), then claim from 4 threads each.
    let t0 = 10_000;
    assert!(a.recover("run-a", t0).unwrap().is_empty());
    assert!(b.recover("run-b", t0).unwrap().is_empty());
    let mut handles = claim_all(&a, "run-a", t0, 4);
    handles.extend(claim_all(&b, "run-b", t0, 4));
    let per_thread: Vec<Vec<CallId>> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut owner: HashMap<CallId, usize> = HashMap::new();
    for (t, ids) in per_thread.iter().enumerate() {
        for id in ids {
            if let Some(prev) = owner.insert(id.clone(), t) {
                panic!("{id} claimed twice: threads {prev} and {t}");
            }
        }
    }
    assert_eq!(owner.len(), 200, "every request claimed");
    let of_a: Vec<CallId> = per_thread[..4].iter().flatten().cloned().collect();
    let of_b: Vec<CallId> = per_thread[4..].iter().flatten().cloned().collect();
    assert!(
        !of_a.is_empty() && !of_b.is_empty(),
        "both nodes claimed: a {} b {}",
        of_a.len(),
        of_b.len()
    );

    // Node A dials half of its claims (live), finishes a quarter, leaves the rest claimed
    // and queued; then it dies: no more renewals.
    let t1 = t0 + 100;
    let mut live = Vec::new();
    let mut waiting = Vec::new();
    for (i, id) in of_a.iter().enumerate() {
        match i % 4 {
            0 | 1 => {
                let mut ch = StatusChange::new(t1, "calling_customer");
                ch.attempt = true;
                a.set_status(id, &ch).unwrap();
                live.push(id.clone());
            }
            2 => a
                .set_status(id, &StatusChange::new(t1, "completed"))
                .unwrap(),
            _ => waiting.push(id.clone()),
        }
    }
    // While A's lease lasts, B takes nothing of A's, even when it asks.
    let t2 = t0 + LEASE / 2;
    assert!(
        !b.renew("run-b", t2).unwrap(),
        "A is alive: nothing to take over"
    );
    assert!(b.recover("run-b", t2).unwrap().is_empty());
    assert!(b.claim_due("run-b", t2, 1_000).unwrap().is_empty());
    // A's lease expires: B's renewal notices, B's recovery takes A's live calls (interrupted,
    // for the retry policy) and frees A's claimed waiting requests, which B then claims.
    let t3 = t0 + 100 + LEASE + 1;
    assert!(
        b.renew("run-b", t3).unwrap(),
        "A's lease expired with work left"
    );
    let interrupted = b.recover("run-b", t3).unwrap();
    let mut got: Vec<CallId> = interrupted.iter().map(|r| r.request.id.clone()).collect();
    got.sort();
    live.sort();
    assert_eq!(got, live, "every live call of A interrupted, once");
    for r in &interrupted {
        assert_eq!(r.status, "interrupted");
        assert_eq!(r.attempts, 1);
    }
    // The service's decision (retry): queued and unclaimed again, due now.
    for r in &interrupted {
        let mut ch = StatusChange::new(t3, "queued");
        ch.due_ms = Some(t3);
        ch.unclaim = true;
        b.set_status(&r.request.id, &ch).unwrap();
    }
    let mut retaken: Vec<CallId> = claim_all(&b, "run-b", t3, 3)
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    retaken.sort();
    let mut expected: Vec<CallId> = live.iter().chain(&waiting).cloned().collect();
    expected.sort();
    assert_eq!(
        retaken, expected,
        "A's unfinished requests, each taken over once"
    );
    // Nothing more to take, and A, back from the dead, is fenced.
    assert!(!b.renew("run-b", t3 + 10).unwrap());
    assert!(b.recover("run-b", t3 + 10).unwrap().is_empty());
    assert!(matches!(
        a.renew("run-a", t3 + 20),
        Err(StoreError::LeaseLost(_))
    ));
    assert!(matches!(
        a.claim_due("run-a", t3 + 20, 10),
        Err(StoreError::LeaseLost(_))
    ));
    let names: Vec<String> = b
        .get(&live[0])
        .unwrap()
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        names,
        ["queued", "calling_customer", "interrupted", "queued"]
    );
}

#[test]
fn two_nodes_never_deliver_the_same_webhook_at_once() {
    let (url, a) = store();
    let b = PgStore::open(&url).unwrap();
    a.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    for n in 0..20 {
        a.outbox_push(&OutboxItem {
            id: 0,
            request_id: id(1),
            business: BusinessId::new("acme").unwrap(),
            url: "http://127.0.0.1:9/h".into(),
            body: format!("{n}"),
            created_ms: 10,
            due_ms: 10,
            attempts: 0,
            delivered_ms: None,
            last_status: None,
            last_error: None,
            abandoned_ms: None,
        })
        .unwrap();
    }
    let (a, b) = (Arc::new(a), Arc::new(b));
    let handles: Vec<_> = [a.clone(), b.clone(), a, b.clone()]
        .into_iter()
        .map(|s| std::thread::spawn(move || s.outbox_due(100, 3).unwrap()))
        .collect();
    let mut ids: Vec<i64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .map(|i| i.id)
        .collect();
    let n = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), n, "an item handed out twice");
    assert_eq!(n, 12);
    // A node that died mid-delivery: its items are due again after the outbox lease.
    assert_eq!(
        b.outbox_due(100 + OUTBOX_LEASE_MS - 1, 100).unwrap().len(),
        8
    );
    assert_eq!(b.outbox_due(100 + OUTBOX_LEASE_MS, 100).unwrap().len(), 12);
}

// ---- agents shared by the nodes (agents_state, LISTEN/NOTIFY) ---------------------------

fn agent(s: &str) -> flows::AgentId {
    flows::AgentId::new(s).unwrap()
}

/// Two nodes reserving one agent at once, many times over: exactly one gets her each time;
/// her release frees her for the next round.
#[test]
fn two_nodes_never_both_reserve_one_agent() {
    let (url, a) = store();
    let b = PgStore::open_with(&url, 60_000, 4).unwrap();
    let t0 = 1_000_000;
    // Both runs hold live leases (as a started service's do).
    a.recover("run-a", t0).unwrap();
    b.recover("run-b", t0).unwrap();
    let (pa, pb) = (
        a.presence_backend("run-a").unwrap(),
        b.presence_backend("run-b").unwrap(),
    );
    let alice = agent("alice");
    for round in 0..20 {
        let barrier = Arc::new(Barrier::new(2));
        let go = |p: Arc<dyn flows::acd::PresenceBackend>, call: String| {
            let (barrier, alice) = (barrier.clone(), alice.clone());
            std::thread::spawn(move || {
                barrier.wait();
                p.reserve(&alice, &CallId::new(call).unwrap(), t0 + 1)
                    .unwrap()
            })
        };
        let ha = go(pa.clone(), format!("a{round}"));
        let hb = go(pb.clone(), format!("b{round}"));
        let (ga, gb) = (ha.join().unwrap(), hb.join().unwrap());
        assert!(
            ga ^ gb,
            "round {round}: exactly one node reserves her ({ga}, {gb})"
        );
        let row = pa.agent(&alice, t0 + 1).unwrap().unwrap();
        let winner = if ga {
            format!("a{round}")
        } else {
            format!("b{round}")
        };
        assert_eq!(row.call.as_ref().map(CallId::as_str), Some(winner.as_str()));
        assert_eq!(row.mine, ga, "A's view says whose reservation it is");
        // The loser's release of a call she is not on changes nothing; the winner's frees her.
        let (w, l) = if ga { (&pa, &pb) } else { (&pb, &pa) };
        l.release(
            &alice,
            &CallId::new(format!("x{round}")).unwrap(),
            None,
            t0 + 2,
        )
        .unwrap();
        assert!(pa.agent(&alice, t0 + 2).unwrap().unwrap().call.is_some());
        w.release(&alice, &CallId::new(winner).unwrap(), None, t0 + 2)
            .unwrap();
        assert!(pa.agent(&alice, t0 + 2).unwrap().unwrap().call.is_none());
    }
}

/// Presence, talk, wrap-up and no answer as every node reads them; a dead run's reservation
/// is void after its lease, and the next reservation fences that run.
#[test]
fn agent_rows_follow_presence_calls_and_leases() {
    let (url, a) = store();
    let b = PgStore::open_with(&url, 60_000, 4).unwrap();
    let t0 = 2_000_000;
    a.recover("run-a", t0).unwrap(); // 50 ms lease: dead after t0 + 50
    b.recover("run-b", t0).unwrap();
    let (pa, pb) = (
        a.presence_backend("run-a").unwrap(),
        b.presence_backend("run-b").unwrap(),
    );
    let alice = agent("alice");
    let c = |s: &str| CallId::new(s).unwrap();
    pb.set_presence(&alice, Presence::Away, t0).unwrap();
    assert!(
        !pa.reserve(&alice, &c("c1"), t0).unwrap(),
        "away: not reservable"
    );
    pb.set_presence(&alice, Presence::Available, t0 + 1)
        .unwrap();
    let row = pa.agent(&alice, t0 + 1).unwrap().unwrap();
    assert_eq!(
        (row.presence, row.idle_since_ms),
        (Presence::Available, t0 + 1)
    );
    assert!(pa.reserve(&alice, &c("c1"), t0 + 2).unwrap());
    assert!(
        pa.reserve(&alice, &c("c1"), t0 + 2).unwrap(),
        "again for the same call: still hers"
    );
    assert!(!pb.reserve(&alice, &c("c2"), t0 + 2).unwrap());
    pa.connected(&alice, &c("c1"), t0 + 3).unwrap();
    assert!(pb.agent(&alice, t0 + 3).unwrap().unwrap().talking);
    // Released into a wrap-up: not reservable until its end.
    pa.release(&alice, &c("c1"), Some(t0 + 20), t0 + 10)
        .unwrap();
    assert!(!pb.reserve(&alice, &c("c2"), t0 + 15).unwrap());
    assert!(pb.reserve(&alice, &c("c2"), t0 + 20).unwrap());
    // No answer: away, free.
    pb.no_answer(&alice, &c("c2"), t0 + 30).unwrap();
    let row = pa.agent(&alice, t0 + 30).unwrap().unwrap();
    assert_eq!((row.presence, row.call), (Presence::Away, None));
    // A reserves her, then A dies: after A's lease her row reads free, and B's reservation
    // fences A's run.
    pb.set_presence(&alice, Presence::Available, t0 + 31)
        .unwrap();
    assert!(pa.reserve(&alice, &c("c3"), t0 + 32).unwrap());
    assert!(
        !pb.reserve(&alice, &c("c4"), t0 + 40).unwrap(),
        "A's lease lives"
    );
    let late = t0 + 1_000;
    assert_eq!(
        pb.agent(&alice, late).unwrap().unwrap().call,
        None,
        "void: A is dead"
    );
    assert_eq!(pb.agents(late).unwrap().len(), 1);
    assert!(pb.reserve(&alice, &c("c4"), late).unwrap());
    assert!(matches!(
        a.renew("run-a", late),
        Err(StoreError::LeaseLost(_))
    ));
}

/// A change on one node reaches the other's LISTEN connection as the agent's id, and a
/// published notice as its payload.
#[test]
fn changes_are_notified_to_the_other_nodes() {
    let (url, a) = store();
    let b = PgStore::open_with(&url, 60_000, 4).unwrap();
    let (pa, pb) = (
        a.presence_backend("run-a").unwrap(),
        b.presence_backend("run-b").unwrap(),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    let watcher = pb
        .watch(Box::new(move |ch| {
            if !matches!(ch, flows::acd::Change::Tick) {
                let _ = tx.send(ch);
            }
            true
        }))
        .unwrap();
    let wait = Duration::from_secs(10);
    assert_eq!(rx.recv_timeout(wait).unwrap(), flows::acd::Change::Resync);
    pa.set_presence(&agent("bob"), Presence::Away, 1).unwrap();
    assert_eq!(
        rx.recv_timeout(wait).unwrap(),
        flows::acd::Change::Agent(agent("bob"))
    );
    pa.publish("{\"k\":\"pop\"}").unwrap();
    assert_eq!(
        rx.recv_timeout(wait).unwrap(),
        flows::acd::Change::Notice("{\"k\":\"pop\"}".into())
    );
    drop(watcher);
}

/// A waiting request's place among its business's waiting requests on every node, oldest
/// first; requests that do not wait have none.
#[test]
fn queue_positions_count_every_nodes_waiting_requests() {
    let (url, a) = store();
    let b = PgStore::open_with(&url, 60_000, 4).unwrap();
    for n in 1..=3 {
        let s = if n == 2 { &b } else { &a };
        s.accept(&req(n, "queued", Some(0)), None, &resp(n))
            .unwrap();
    }
    a.accept(&req(4, "scheduled", Some(9_999)), None, &resp(4))
        .unwrap();
    let p = b.presence_backend("run-b").unwrap();
    assert_eq!(p.queue_position(&id(1), 0).unwrap(), Some((0, 3)));
    assert_eq!(p.queue_position(&id(3), 0).unwrap(), Some((2, 3)));
    assert_eq!(p.queue_position(&id(4), 0).unwrap(), None, "scheduled");
    // The first leaves the queue (dialled): the others move up.
    a.set_status(&id(1), &StatusChange::new(2_000, "calling_customer"))
        .unwrap();
    assert_eq!(p.queue_position(&id(3), 0).unwrap(), Some((1, 2)));
}

/// The queued requests of every node, per business, as any node reads them.
#[test]
fn queued_counts_are_every_nodes() {
    let (url, a) = store();
    let b = PgStore::open_with(&url, 60_000, 4).unwrap();
    a.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    b.accept(&req(2, "queued", Some(0)), None, &resp(2))
        .unwrap();
    assert_eq!(b.queued_by_business().unwrap(), [("acme".to_owned(), 2)]);
    assert_eq!(a.queued_by_business().unwrap(), [("acme".to_owned(), 2)]);
}
