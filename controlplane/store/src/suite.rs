//! The behavioural suite every [`Store`] must pass: each function takes a fresh, empty store;
//! [`behaviour_tests!`] makes one `#[test]` per function for a backend's factory (SQLite in
//! `sqlite/tests.rs`, PostgreSQL in `postgres/tests.rs`).

use flows::{BusinessId, CallId};

use crate::{
    Accepted, IdempotencyKey, Kind, MediaSummary, NewRequest, OutboxItem, Page, RecordFilter, Sale,
    StatusChange, Store, StoreError, StoredResponse, Webhook, IDEMPOTENCY_TTL_MS,
};

/// One `#[test]` per suite function, each on a store from `$factory()` (which returns a guard
/// to keep alive and the store).
macro_rules! behaviour_tests {
    ($factory:path) => {
        behaviour_tests!($factory;
            accept_then_get_round_trips_everything,
            idempotency_replays_same_body_and_refuses_another,
            claim_due_hands_each_request_to_one_run_in_due_order,
            status_changes_append_events_and_update_the_row,
            recover_interrupts_live_calls_of_other_runs_and_frees_their_claims,
            media_sale_records_and_history,
            outbox_delivers_retries_and_gives_up,
            webhooks_are_queued_with_their_status_change,
            directory_documents_replace_and_list,
            queued_requests_are_counted_per_business,
        );
    };
    ($factory:path; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                let (_guard, s) = $factory();
                crate::suite::$name(&s);
            }
        )*
    };
}
pub(crate) use behaviour_tests;

pub(crate) fn id(n: u128) -> CallId {
    CallId::from_random(n)
}

pub(crate) fn req(n: u128, status: &str, due: Option<i64>) -> NewRequest {
    NewRequest {
        id: id(n),
        kind: Kind::CallRequest,
        business: Some(BusinessId::new("acme").unwrap()),
        customer: "+15550001".into(),
        preferred_agent: None,
        agent_spec: None,
        contact_at_ms: None,
        page: Some(Page {
            url: "https://shop.example/p?x=1".into(),
            title: "Shop".into(),
            referrer: "https://search.example/".into(),
        }),
        client_ip: Some("127.0.0.1".into()),
        created_ms: 1_000 + i64::try_from(n).unwrap(),
        status: status.into(),
        due_ms: due,
        claimed_by: None,
        webhook: None,
        skill: Some(flows::Skill::new("billing").unwrap()),
    }
}

pub(crate) fn resp(n: u128) -> StoredResponse {
    StoredResponse {
        status: 202,
        body: format!("{{\"id\":\"{}\"}}", id(n)),
    }
}

pub(crate) fn accept_then_get_round_trips_everything(s: &dyn Store) {
    let r = req(1, "queued", Some(1_001));
    assert_eq!(s.accept(&r, None, &resp(1)).unwrap(), Accepted::New);
    let got = s.get(&id(1)).unwrap().unwrap();
    assert_eq!(got.request.page, r.page);
    assert_eq!(got.request.client_ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        got.request.skill.as_ref().map(flows::Skill::as_str),
        Some("billing")
    );
    assert_eq!(got.status, "queued");
    assert_eq!(got.due_ms, Some(1_001));
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].status, "queued");
    assert!(s.get(&id(2)).unwrap().is_none());
    assert!(matches!(
        s.accept(&r, None, &resp(1)),
        Err(StoreError::Duplicate(_))
    ));
}

pub(crate) fn idempotency_replays_same_body_and_refuses_another(s: &dyn Store) {
    let key = |hash: &str, at| IdempotencyKey {
        scope: "acme".into(),
        key: "k-1".into(),
        body_hash: hash.into(),
        at_ms: at,
    };
    assert_eq!(
        s.accept(&req(1, "queued", Some(0)), Some(&key("h1", 10)), &resp(1))
            .unwrap(),
        Accepted::New
    );
    // Same key, same body: the first response, for the first id; nothing new written.
    match s
        .accept(&req(2, "queued", Some(0)), Some(&key("h1", 20)), &resp(2))
        .unwrap()
    {
        Accepted::Replay {
            response,
            id: first,
        } => {
            assert_eq!(response, resp(1));
            assert_eq!(first, id(1));
        }
        other => panic!("expected a replay, got {other:?}"),
    }
    assert!(s.get(&id(2)).unwrap().is_none());
    // Same key, other body: conflict.
    assert!(matches!(
        s.accept(&req(3, "queued", Some(0)), Some(&key("h2", 30)), &resp(3)),
        Err(StoreError::IdempotencyConflict(k)) if k == "k-1"
    ));
    // Another scope may use the same key.
    let other = IdempotencyKey {
        scope: "globex".into(),
        ..key("h2", 40)
    };
    assert_eq!(
        s.accept(&req(4, "queued", Some(0)), Some(&other), &resp(4))
            .unwrap(),
        Accepted::New
    );
    // After 24 h the key is free again.
    let later = 10 + IDEMPOTENCY_TTL_MS;
    assert_eq!(
        s.accept(
            &req(5, "queued", Some(0)),
            Some(&key("h9", later)),
            &resp(5)
        )
        .unwrap(),
        Accepted::New
    );
    assert_eq!(
        s.purge_idempotency(later + IDEMPOTENCY_TTL_MS + 1).unwrap(),
        2
    );
}

pub(crate) fn claim_due_hands_each_request_to_one_run_in_due_order(s: &dyn Store) {
    s.accept(&req(1, "scheduled", Some(500)), None, &resp(1))
        .unwrap();
    s.accept(&req(2, "queued", Some(100)), None, &resp(2))
        .unwrap();
    s.accept(&req(3, "scheduled", Some(9_000)), None, &resp(3))
        .unwrap();
    assert_eq!(s.next_due().unwrap(), Some(100));
    let got: Vec<CallId> = s
        .claim_due("run-a", 1_000, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.request.id)
        .collect();
    assert_eq!(got, vec![id(2), id(1)]);
    // Claimed: not handed out again to the same run, and no longer the next due.
    assert!(s.claim_due("run-a", 1_000, 10).unwrap().is_empty());
    assert_eq!(s.next_due().unwrap(), Some(9_000));
    // Given back with a new due time.
    s.unclaim(&id(2), 2_000).unwrap();
    assert!(s.claim_due("run-a", 1_999, 10).unwrap().is_empty());
    assert_eq!(s.claim_due("run-a", 2_000, 10).unwrap().len(), 1);
}

pub(crate) fn status_changes_append_events_and_update_the_row(s: &dyn Store) {
    s.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    let mut ch = StatusChange::new(2_000, "calling_customer");
    ch.agent = Some("alice".into());
    ch.attempt = true;
    s.set_status(&id(1), &ch).unwrap();
    let mut f = StatusChange::new(3_000, "failed");
    f.reason = Some("customer_busy".into());
    s.set_status(&id(1), &f).unwrap();
    let r = s.get(&id(1)).unwrap().unwrap();
    assert_eq!(r.status, "failed");
    assert_eq!(r.reason.as_deref(), Some("customer_busy"));
    assert_eq!(
        r.agent.as_deref(),
        Some("alice"),
        "agent kept when not given"
    );
    assert_eq!(r.attempts, 1);
    let names: Vec<&str> = r.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(names, ["queued", "calling_customer", "failed"]);
    assert_eq!(r.updated_ms, 3_000);
    assert!(matches!(
        s.set_status(&id(9), &f),
        Err(StoreError::NotFound(_))
    ));
}

pub(crate) fn recover_interrupts_live_calls_of_other_runs_and_frees_their_claims(s: &dyn Store) {
    s.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    s.accept(&req(2, "queued", Some(0)), None, &resp(2))
        .unwrap();
    s.accept(&req(3, "queued", Some(0)), None, &resp(3))
        .unwrap();
    assert_eq!(s.claim_due("old", 10, 10).unwrap().len(), 3);
    s.set_status(&id(1), &StatusChange::new(20, "bridged"))
        .unwrap();
    s.set_status(&id(3), &StatusChange::new(20, "completed"))
        .unwrap();
    // Request 2 stayed queued but claimed by the dead run.
    let interrupted = s.recover("new", 100).unwrap();
    assert_eq!(interrupted.len(), 1);
    assert_eq!(interrupted[0].request.id, id(1));
    assert_eq!(interrupted[0].events.last().unwrap().status, "interrupted");
    let claimed: Vec<CallId> = s
        .claim_due("new", 100, 10)
        .unwrap()
        .into_iter()
        .map(|r| r.request.id)
        .collect();
    assert_eq!(
        claimed,
        vec![id(2)],
        "the queued request is due again; completed is not"
    );
    assert_eq!(s.get(&id(1)).unwrap().unwrap().status, "interrupted");
    // Until the service decides, a recovery returns it again (a crash in between loses nothing).
    assert_eq!(s.recover("new", 150).unwrap().len(), 1);
    let mut retry = StatusChange::new(160, "queued");
    retry.due_ms = Some(160);
    s.set_status(&id(1), &retry).unwrap();
    assert!(s.recover("new", 200).unwrap().is_empty());
    let names: Vec<String> = s
        .get(&id(1))
        .unwrap()
        .unwrap()
        .events
        .into_iter()
        .map(|e| e.status)
        .collect();
    assert_eq!(
        names,
        ["queued", "bridged", "interrupted", "queued"],
        "one interrupted event only"
    );
}

pub(crate) fn media_sale_records_and_history(s: &dyn Store) {
    s.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    s.accept(&req(2, "queued", Some(0)), None, &resp(2))
        .unwrap();
    let mut other = req(3, "queued", Some(0));
    other.business = Some(BusinessId::new("globex").unwrap());
    other.customer = "+15559999".into();
    s.accept(&other, None, &resp(3)).unwrap();
    s.set_media(
        &id(1),
        "customer",
        &MediaSummary {
            json: "{\"rx_packets\":1}".into(),
        },
    )
    .unwrap();
    s.set_media(
        &id(1),
        "customer",
        &MediaSummary {
            json: "{\"rx_packets\":2}".into(),
        },
    )
    .unwrap();
    let sale = Sale {
        at_ms: 5,
        outcome: "sale".into(),
        amount_minor: Some(12_345),
        currency: Some("EUR".into()),
        product: Some("Gold plan".into()),
        notes: None,
        agent: Some("alice".into()),
    };
    s.put_sale(&id(1), &sale).unwrap();
    assert!(matches!(
        s.put_sale(&id(9), &sale),
        Err(StoreError::NotFound(_))
    ));
    let r = s.get(&id(1)).unwrap().unwrap();
    assert_eq!(r.media_of("customer").unwrap().json, "{\"rx_packets\":2}");
    assert_eq!(r.sale.as_ref(), Some(&sale));

    let all = s
        .records(&RecordFilter {
            business: None,
            from_ms: 0,
            to_ms: i64::MAX,
            limit: 100,
        })
        .unwrap();
    assert_eq!(all.len(), 3);
    let acme = s
        .records(&RecordFilter {
            business: Some(BusinessId::new("acme").unwrap()),
            from_ms: 1_002,
            to_ms: 2_000,
            limit: 100,
        })
        .unwrap();
    assert_eq!(acme.len(), 1, "created_ms 1002 only: {acme:?}");
    let h = s.history("+15550001", &id(2), 10).unwrap();
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].request.id, id(1));
}

pub(crate) fn outbox_delivers_retries_and_gives_up(s: &dyn Store) {
    s.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    let item = |body: &str| OutboxItem {
        id: 0,
        request_id: id(1),
        business: BusinessId::new("acme").unwrap(),
        url: "http://127.0.0.1:9/hook".into(),
        body: body.into(),
        created_ms: 10,
        due_ms: 10,
        attempts: 0,
        delivered_ms: None,
        last_status: None,
        last_error: None,
        abandoned_ms: None,
    };
    let a = s.outbox_push(&item("a")).unwrap();
    let b = s.outbox_push(&item("b")).unwrap();
    assert_eq!(s.outbox_due(10, 10).unwrap().len(), 2);
    assert!(s.outbox_due(9, 10).unwrap().is_empty());
    s.outbox_attempt(a, 11, Ok(204), None).unwrap();
    s.outbox_attempt(b, 11, Err("connection refused".into()), Some(50))
        .unwrap();
    assert!(s.outbox_due(49, 10).unwrap().is_empty());
    assert_eq!(s.outbox_due(50, 10).unwrap()[0].attempts, 1);
    s.outbox_attempt(b, 51, Err("500".into()), None).unwrap();
    assert!(s.outbox_due(i64::MAX, 10).unwrap().is_empty());
    let log = s.outbox_of(&id(1)).unwrap();
    assert_eq!(log[0].delivered_ms, Some(11));
    assert_eq!(log[0].last_status, Some(204));
    assert_eq!(log[1].abandoned_ms, Some(51));
    assert_eq!(log[1].attempts, 2);
    assert_eq!(log[1].last_error.as_deref(), Some("500"));
}

pub(crate) fn webhooks_are_queued_with_their_status_change(s: &dyn Store) {
    let mut r = req(1, "queued", Some(0));
    r.webhook = Some(Webhook {
        url: "http://127.0.0.1:9/h".into(),
        body: "{\"status\":\"queued\"}".into(),
    });
    s.accept(&r, None, &resp(1)).unwrap();
    let mut ch = StatusChange::new(50, "calling_customer");
    ch.webhook = Some(Webhook {
        url: "http://127.0.0.1:9/h".into(),
        body: "{\"status\":\"calling_customer\"}".into(),
    });
    s.set_status(&id(1), &ch).unwrap();
    let log = s.outbox_of(&id(1)).unwrap();
    assert_eq!(log.len(), 2);
    assert_eq!(log[0].business.as_str(), "acme");
    assert_eq!(log[0].due_ms, 1_001);
    assert_eq!(log[1].body, "{\"status\":\"calling_customer\"}");
    assert_eq!(log[1].due_ms, 50);
    assert_eq!(s.outbox_due(60, 10).unwrap().len(), 1);
}

pub(crate) fn directory_documents_replace_and_list(s: &dyn Store) {
    s.put_directory("agent", "alice", "{\"name\":\"A\"}", 1)
        .unwrap();
    s.put_directory("agent", "alice", "{\"name\":\"Alice\"}", 2)
        .unwrap();
    s.put_directory("business", "acme", "{}", 3).unwrap();
    assert_eq!(
        s.directory_docs().unwrap(),
        vec![
            (
                "agent".into(),
                "alice".into(),
                "{\"name\":\"Alice\"}".into()
            ),
            ("business".into(), "acme".into(), "{}".into()),
        ]
    );
}

pub(crate) fn queued_requests_are_counted_per_business(s: &dyn Store) {
    assert!(s.queued_by_business().unwrap().is_empty());
    let other = |n: u128, business: Option<&str>| NewRequest {
        business: business.map(|b| BusinessId::new(b).unwrap()),
        ..req(n, "queued", Some(0))
    };
    s.accept(&req(1, "queued", Some(0)), None, &resp(1))
        .unwrap();
    s.accept(&req(2, "queued", Some(0)), None, &resp(2))
        .unwrap();
    s.accept(&req(3, "scheduled", Some(9_999)), None, &resp(3))
        .unwrap();
    s.accept(&other(4, Some("zeta")), None, &resp(4)).unwrap();
    s.accept(&other(5, None), None, &resp(5)).unwrap();
    assert_eq!(
        s.queued_by_business().unwrap(),
        [("acme".to_owned(), 2), ("zeta".to_owned(), 1)],
        "scheduled and business-less requests are not counted"
    );
    // Claimed requests still wait (for an agent); dialled ones do not.
    s.claim_due("run-a", 10, 10).unwrap();
    s.set_status(&id(1), &StatusChange::new(2_000, "calling_customer"))
        .unwrap();
    s.set_status(&id(4), &StatusChange::new(2_000, "failed"))
        .unwrap();
    assert_eq!(s.queued_by_business().unwrap(), [("acme".to_owned(), 1)]);
}
