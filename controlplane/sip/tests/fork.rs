//! Parallel forking (`Endpoint::invite_forked`, `invite_registered`) between real endpoints on
//! 127.0.0.1: two devices ring at once; the first to answer wins and the other is CANCELled;
//! when both decline, the best response is the outcome; our hangup before the answer CANCELs
//! both, and so does dropping the call; a user without bindings is a 480 at once.

use std::time::Duration;

use sip::sdp::{build_answer, build_offer, SessionDescription};
use sip::{Endpoint, EndpointConfig, IncomingCall, InviteRequest, LegEvent, Peer};
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

async fn endpoint() -> (Endpoint, Receiver<IncomingCall>) {
    Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap()
}

fn invite() -> InviteRequest {
    InviteRequest {
        target: "sip:unused@127.0.0.1".into(),
        from_user: "callbridge".into(),
        from_display: None,
        sdp: build_offer("127.0.0.1:40000".parse().unwrap(), 1),
        headers: vec![("X-Callbridge-Call".into(), "fork-1".into())],
        credentials: None,
    }
}

/// A device: its endpoint, its incoming calls, and its target (Contact, flow).
struct Device {
    _ep: Endpoint,
    calls: Receiver<IncomingCall>,
    target: (String, Peer),
}

async fn device(name: &str) -> Device {
    let (ep, calls) = endpoint().await;
    let addr = ep.local_addr();
    Device {
        target: (format!("sip:{name}@{addr}"), Peer::udp(addr)),
        _ep: ep,
        calls,
    }
}

async fn incoming(d: &mut Device) -> IncomingCall {
    timeout(DEADLINE, d.calls.recv())
        .await
        .expect("no incoming call")
        .expect("channel closed")
}

async fn next<F: std::future::Future<Output = Option<LegEvent>>>(f: F) -> Option<LegEvent> {
    timeout(DEADLINE, f)
        .await
        .expect("no event within the deadline")
}

fn answer_for(call: &IncomingCall) -> String {
    let offer = SessionDescription::parse(call.sdp.as_deref().unwrap()).unwrap();
    build_answer(&offer, "127.0.0.1:40002".parse().unwrap(), 2)
        .unwrap()
        .0
}

#[tokio::test]
async fn the_first_device_to_answer_wins_and_the_other_is_cancelled() {
    let (ep, _) = endpoint().await;
    let (mut a, mut b) = (device("a").await, device("b").await);
    let mut call = ep
        .invite_forked(invite(), &[a.target.clone(), b.target.clone()])
        .unwrap();
    assert_eq!(call.call_ids().len(), 2);
    let mut at_a = incoming(&mut a).await;
    let mut at_b = incoming(&mut b).await;
    assert_eq!(at_a.request_uri, a.target.0);
    assert_eq!(at_b.request_uri, b.target.0);
    at_a.ring();
    assert!(matches!(
        next(call.event()).await,
        Some(LegEvent::Progress { status: 180, .. })
    ));
    let sdp = answer_for(&at_b);
    at_b.answer(sdp);
    assert!(matches!(
        next(call.event()).await,
        Some(LegEvent::Answered { .. })
    ));
    assert_eq!(next(at_a.event()).await, Some(LegEvent::Cancelled));
    call.controller().hangup();
    assert_eq!(next(at_b.event()).await, Some(LegEvent::Bye));
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
    assert_eq!(next(call.event()).await, None);
}

#[tokio::test]
async fn when_every_device_declines_the_best_response_is_the_outcome() {
    let (ep, _) = endpoint().await;
    let (mut a, mut b) = (device("a").await, device("b").await);
    let mut call = ep
        .invite_forked(invite(), &[a.target.clone(), b.target.clone()])
        .unwrap();
    let at_a = incoming(&mut a).await;
    let at_b = incoming(&mut b).await;
    at_a.reject(486);
    at_b.reject(480);
    assert_eq!(
        next(call.event()).await,
        Some(LegEvent::Rejected {
            status: 486,
            reason: "Busy Here".into()
        })
    );
    assert_eq!(next(call.event()).await, None);
}

#[tokio::test]
async fn our_hangup_before_the_answer_cancels_every_device() {
    let (ep, _) = endpoint().await;
    let (mut a, mut b) = (device("a").await, device("b").await);
    let mut call = ep
        .invite_forked(invite(), &[a.target.clone(), b.target.clone()])
        .unwrap();
    let mut at_a = incoming(&mut a).await;
    let mut at_b = incoming(&mut b).await;
    at_a.ring();
    at_b.ring();
    assert!(matches!(
        next(call.event()).await,
        Some(LegEvent::Progress { .. })
    ));
    call.controller().hangup();
    assert_eq!(next(at_a.event()).await, Some(LegEvent::Cancelled));
    assert_eq!(next(at_b.event()).await, Some(LegEvent::Cancelled));
    loop {
        match next(call.event()).await {
            Some(LegEvent::Progress { .. }) => {}
            other => {
                assert_eq!(other, Some(LegEvent::Ended));
                break;
            }
        }
    }
    assert_eq!(next(call.event()).await, None);
}

#[tokio::test]
async fn a_user_without_bindings_is_unavailable() {
    let (ep, _) = endpoint().await;
    let mut call = ep.invite_registered("agent7", invite()).unwrap();
    assert!(call.call_ids().is_empty());
    assert_eq!(
        next(call.event()).await,
        Some(LegEvent::Rejected {
            status: 480,
            reason: "Temporarily Unavailable".into()
        })
    );
    assert_eq!(next(call.event()).await, None);
}

#[tokio::test]
async fn dropping_the_call_cancels_every_device() {
    let (ep, _) = endpoint().await;
    let (mut a, mut b) = (device("a").await, device("b").await);
    let call = ep
        .invite_forked(invite(), &[a.target.clone(), b.target.clone()])
        .unwrap();
    let mut at_a = incoming(&mut a).await;
    let mut at_b = incoming(&mut b).await;
    at_a.ring();
    at_b.ring();
    drop(call);
    assert_eq!(next(at_a.event()).await, Some(LegEvent::Cancelled));
    assert_eq!(next(at_b.event()).await, Some(LegEvent::Cancelled));
}
