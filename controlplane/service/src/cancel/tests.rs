//! Cancelling waiting requests on a real service (SQLite store, a SIP endpoint on loopback,
//! a media plane that has no ports: nothing here may be dialled).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use b2bua::{Media, MediaError};
use dp_api::{Command, Event, LegId};
use flows::{BusinessId, CallId, Legs, Target};
use store::{CallRecord, StatusChange, Store};
use tokio::sync::mpsc::UnboundedSender;
use tokio_util::sync::CancellationToken;

use crate::{BusinessEntry, Cancelled, Directory, Origin, Outcome, Service, Settings, Submit};

/// A media plane without ports: a call that got this far would fail `internal`, never dial.
struct NoMedia;

impl Media for NoMedia {
    fn allocate_pair(&self) -> Result<Legs, MediaError> {
        Err(MediaError::NoFreePort)
    }
    fn release(&self, _legs: Legs) {}
    fn free_pairs(&self) -> usize {
        100
    }
    fn send(&self, _cmd: Command) -> Result<(), MediaError> {
        Ok(())
    }
    fn address_of(&self, _leg: LegId) -> Option<std::net::IpAddr> {
        None
    }
    fn route(&self, _leg: LegId, _to: UnboundedSender<Event>) {}
    fn unroute(&self, _leg: LegId) {}
}

async fn service(dir: &tempfile::TempDir) -> (Service, Arc<dyn Store>, CancellationToken) {
    let (endpoint, _incoming) = sip::Endpoint::bind(sip::EndpointConfig::new(SocketAddr::from((
        Ipv4Addr::LOCALHOST,
        0,
    ))))
    .await
    .unwrap();
    let b2b = b2bua::B2bua::new(
        endpoint,
        Arc::new(NoMedia),
        b2bua::Settings {
            trunks: Arc::new(b2bua::Trunks::new(Vec::new(), None).unwrap()),
            locator: None,
            from_user: "callbridge".into(),
            outbound_proxy: None,
        },
    );
    let store: Arc<dyn Store> =
        Arc::new(store::SqliteStore::open(dir.path().join("cb.db")).unwrap());
    let acme = BusinessEntry::new(BusinessId::new("acme").unwrap(), "ACME");
    let directory = Directory {
        businesses: vec![acme],
        agents: Vec::new(),
    };
    let settings = Settings {
        timers: flows::FlowTimers::default(),
        media: flows::MediaPolicy::default(),
        announcement: Arc::new(dp_api::Clip::builtin_prompt()),
        max_attempts: 1,
        preferred_wait: std::time::Duration::from_secs(30),
        limits: flows::limits::Limits::default(),
        customer_srtp: sip::sdp::Srtp::Off,
        admission: crate::AdmissionSettings::default(),
    };
    let stop = CancellationToken::new();
    let svc = Service::start(store.clone(), b2b, directory, settings, stop.clone())
        .await
        .unwrap();
    (svc, store, stop)
}

fn submit(contact_at_ms: Option<i64>) -> Submit {
    Submit {
        business: BusinessId::new("acme").unwrap(),
        customer: Target::parse("+15551234567").unwrap(),
        contact_at_ms,
        page: None,
        preferred_agent: None,
        skill: None,
    }
}

fn created(out: Outcome) -> CallRecord {
    match out {
        Outcome::Created(rec) => *rec,
        Outcome::Replay(r) => panic!("unexpected replay: {r:?}"),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.unwrap()
}

/// Waits (bounded) until the service has no live call and the scheduler had its chance.
async fn settle(svc: &Service) {
    for _ in 0..100 {
        if svc.live_calls() == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_request_is_cancelled_at_once_and_never_dialled() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, store, stop) = service(&dir).await;
    let at = crate::now_ms() + 3_600_000;
    let s = svc.clone();
    let rec = created(
        blocking(move || s.accept(submit(Some(at)), &Origin::default()))
            .await
            .unwrap(),
    );
    assert_eq!(rec.status, "scheduled");
    let id = rec.request.id.clone();
    let mut events = svc.subscribe();

    let s = svc.clone();
    let i = id.clone();
    let got = blocking(move || s.cancel(&i)).await.unwrap();
    let Cancelled::Stored(v) = got else {
        panic!("expected the stored cancellation, got {got:?}")
    };
    assert_eq!(v.record.status, "cancelled");
    let statuses: Vec<&str> = v.record.events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["scheduled", "cancelled"]);
    // Subscribers (SSE, desktop, webhooks) hear of it like any other change.
    match events.recv().await.unwrap() {
        crate::Notice::Status(e) => {
            assert_eq!((e.id, e.status.as_str()), (id.clone(), "cancelled"))
        }
        other => panic!("unexpected notice {other:?}"),
    }
    // Due or not, a cancelled row is never claimed (the scheduler never dials it).
    let far = at + 86_400_000;
    assert!(blocking(move || store.claim_due("another-run", far, 10))
        .await
        .unwrap()
        .is_empty());
    // A second cancel: already ended.
    let s = svc.clone();
    let i = id.clone();
    assert!(matches!(
        blocking(move || s.cancel(&i)).await.unwrap(),
        Cancelled::AlreadyEnded(_)
    ));
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_request_is_cancelled_at_once_and_never_dialled() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, store, stop) = service(&dir).await;
    // A queued row the scheduler would claim in an hour (as after a retry's back-off).
    let s = svc.clone();
    let rec = created(
        blocking(move || {
            s.accept(
                submit(Some(crate::now_ms() + 3_600_000)),
                &Origin::default(),
            )
        })
        .await
        .unwrap(),
    );
    let id = rec.request.id.clone();
    let (st, i) = (store.clone(), id.clone());
    blocking(move || {
        let mut ch = StatusChange::new(crate::now_ms(), "queued");
        ch.due_ms = Some(crate::now_ms() + 3_600_000);
        st.set_status(&i, &ch)
    })
    .await
    .unwrap();

    let s = svc.clone();
    let i = id.clone();
    let Cancelled::Stored(v) = blocking(move || s.cancel(&i)).await.unwrap() else {
        panic!("expected the stored cancellation")
    };
    assert_eq!(v.record.status, "cancelled");
    assert!(v.queue_position.is_none());
    let (st, i) = (store.clone(), id.clone());
    let now = crate::now_ms() + 7_200_000;
    assert!(blocking(move || st.claim_due("another-run", now, 10))
        .await
        .unwrap()
        .is_empty());
    settle(&svc).await;
    assert_eq!(svc.live_calls(), 0);
    let rec = blocking(move || store.get(&i)).await.unwrap().unwrap();
    assert_eq!(rec.status, "cancelled", "{rec:?}");
    assert_eq!(rec.attempts, 0, "never dialled: {rec:?}");
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_claimed_before_its_cancel_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let (svc, _store, stop) = service(&dir).await;
    let s = svc.clone();
    let rec = created(
        blocking(move || {
            s.accept(
                submit(Some(crate::now_ms() + 3_600_000)),
                &Origin::default(),
            )
        })
        .await
        .unwrap(),
    );
    let id = rec.request.id.clone();
    let s = svc.clone();
    let i = id.clone();
    blocking(move || s.cancel(&i)).await.unwrap();
    // The task the scheduler would have started for it a moment before is refused.
    let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
    assert!(svc.admit_live(&id, tx).is_none());
    assert_eq!(svc.live_calls(), 0);
    // Unknown ids are NotFound.
    let s = svc.clone();
    let unknown = CallId::new("c_unknown").unwrap();
    assert!(matches!(
        blocking(move || s.cancel(&unknown)).await,
        Err(crate::ServiceError::NotFound(_))
    ));
    stop.cancel();
}
