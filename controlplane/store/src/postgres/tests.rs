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
