use super::*;
use crate::suite::{behaviour_tests, id, req, resp};

fn store() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(dir.path().join("cb.db")).unwrap();
    (dir, s)
}

behaviour_tests!(store);

#[test]
fn a_new_file_has_the_newest_schema() {
    let (_d, s) = store();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
}

#[test]
fn data_survives_reopening_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cb.db");
    {
        let s = SqliteStore::open(&path).unwrap();
        s.accept(&req(1, "queued", Some(0)), None, &resp(1))
            .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
    assert!(s.get(&id(1)).unwrap().is_some());
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cb.db");
    drop(SqliteStore::open(&path).unwrap());
    let c = Connection::open(&path).unwrap();
    c.execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    drop(c);
    assert!(matches!(
        SqliteStore::open(&path),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
}

#[test]
fn a_version_1_file_is_migrated_to_version_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cb.db");
    {
        // A file as the first schema left it, with a request in it.
        let c = Connection::open(&path).unwrap();
        c.execute_batch("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);")
            .unwrap();
        c.execute_batch(crate::schema::MIGRATIONS[0]).unwrap();
        c.execute(
            "INSERT INTO requests (id, kind, customer, created_ms, updated_ms, status) VALUES ('c_1', 'call_request', '+1555', 1, 1, 'queued')",
            [],
        )
        .unwrap();
    }
    let s = SqliteStore::open(&path).unwrap();
    assert_eq!(s.schema_version().unwrap(), 2);
    assert!(s.get(&CallId::new("c_1").unwrap()).unwrap().is_some());
    s.put_directory("agent", "bob", "{}", 1).unwrap();
}

#[test]
fn concurrent_accepts_are_group_committed_and_each_answered() {
    let (_d, s) = store();
    let s = std::sync::Arc::new(s);
    // Eight threads, each 100 requests, plus one idempotency key all threads use at once with
    // the same body: exactly one of those is new, the others replay it.
    let handles: Vec<_> = (0..8u128)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                let key = IdempotencyKey {
                    scope: "acme".into(),
                    key: "same".into(),
                    body_hash: "h".into(),
                    at_ms: 1,
                };
                let shared = s
                    .accept(
                        &req(10_000 + t, "queued", Some(0)),
                        Some(&key),
                        &resp(10_000 + t),
                    )
                    .unwrap();
                for i in 0..100u128 {
                    let n = 1 + t * 1000 + i;
                    assert_eq!(
                        s.accept(&req(n, "queued", Some(0)), None, &resp(n))
                            .unwrap(),
                        Accepted::New
                    );
                }
                // A duplicate id fails alone, without failing its batch.
                let dup = s.accept(&req(1 + t * 1000, "queued", Some(0)), None, &resp(1));
                assert!(matches!(dup, Err(StoreError::Duplicate(_))), "{dup:?}");
                shared
            })
        })
        .collect();
    let shared: Vec<Accepted> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(
        shared.iter().filter(|a| **a == Accepted::New).count(),
        1,
        "{shared:?}"
    );
    let first = shared
        .iter()
        .find_map(|a| match a {
            Accepted::Replay { id, .. } => Some(id.clone()),
            Accepted::New => None,
        })
        .unwrap();
    assert!(shared.iter().all(|a| match a {
        Accepted::Replay { id, .. } => *id == first,
        Accepted::New => true,
    }));
    let all = s
        .records(&RecordFilter {
            business: None,
            from_ms: 0,
            to_ms: i64::MAX,
            limit: 10_000,
        })
        .unwrap();
    assert_eq!(
        all.len(),
        8 * 100 + 1,
        "every accept committed once, the shared key once"
    );
}

#[test]
fn the_checkpoint_thread_moves_commits_into_the_database_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cb.db");
    let s = SqliteStore::open_with(&path, true).unwrap();
    let before = std::fs::metadata(&path).unwrap().len();
    for n in 1..=300 {
        s.accept(&req(n, "queued", Some(0)), None, &resp(n))
            .unwrap();
    }
    // Commits land in the WAL; the checkpoint thread (not a request) copies them over.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&path).unwrap().len() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint within 20 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    drop(s);
    // Dropping the store truncates the WAL once nobody reads: all data is in the main file.
    let s = SqliteStore::open(&path).unwrap();
    assert!(s.get(&id(300)).unwrap().is_some());
}

#[test]
fn concurrent_status_changes_and_media_are_group_committed_each_alone() {
    let (_d, s) = store();
    let s = std::sync::Arc::new(s);
    for n in 1..=80u128 {
        s.accept(&req(n, "queued", Some(0)), None, &resp(n))
            .unwrap();
    }
    // Eight threads, ten calls each: three status changes and a media summary per call, and
    // one change to an unknown request that fails alone, without failing its batch.
    let handles: Vec<_> = (0..8u128)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for n in (1 + t * 10)..=(10 + t * 10) {
                    for (at, status) in [(2_000, "calling_customer"), (3_000, "bridged")] {
                        s.set_status(&id(n), &StatusChange::new(at, status))
                            .unwrap();
                    }
                    let missing = s.set_status(&id(1_000 + n), &StatusChange::new(1, "failed"));
                    assert!(
                        matches!(missing, Err(StoreError::NotFound(_))),
                        "{missing:?}"
                    );
                    let m = MediaSummary {
                        json: format!("{{\"n\":{n}}}"),
                    };
                    s.set_media(&id(n), "customer", &m).unwrap();
                    s.set_status(&id(n), &StatusChange::new(4_000, "completed"))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for n in 1..=80u128 {
        let r = s.get(&id(n)).unwrap().unwrap();
        let names: Vec<&str> = r.events.iter().map(|e| e.status.as_str()).collect();
        assert_eq!(
            names,
            ["queued", "calling_customer", "bridged", "completed"]
        );
        assert_eq!(r.status, "completed");
        assert_eq!(
            r.media_of("customer").map(|m| m.json.as_str()),
            Some(format!("{{\"n\":{n}}}").as_str())
        );
    }
}
