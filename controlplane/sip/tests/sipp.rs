//! Interop with SIPp 3.6.1 (/usr/bin/sipp) on 127.0.0.1: SIPp as UAS (our scenario
//! `tests/sipp/uas.xml`) and as UAC (its built-in `uac` scenario). Fails, never skips, if SIPp
//! is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;

use common::{free_media_port, free_udp_port, next, DEADLINE};

use sip::sdp::{build_answer, build_offer, SessionDescription};
use sip::{Endpoint, EndpointConfig, InviteRequest, LegEvent};
use tokio::process::Child;
use tokio::sync::Mutex;
use tokio::time::timeout;

/// SIPp binds media ports too; run the SIPp tests one at a time to keep port picks simple.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn log_path(name: &str) -> PathBuf {
    common::log_path("sipp", name)
}

fn spawn_sipp(name: &str, args: &[String]) -> Child {
    common::spawn_sipp(&log_path(name), args)
}

async fn wait_exit(name: &str, child: &mut Child) -> ExitStatus {
    common::wait_exit(&log_path(name), child).await
}

#[tokio::test]
async fn we_call_sipp_uas_and_hang_up() {
    let _serial = SERIAL.lock().await;
    let sipp_port = free_udp_port();
    let media_port = free_media_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas.xml");
    let mut child = spawn_sipp(
        "uas",
        &[
            "-sf".into(),
            scenario.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            sipp_port.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media_port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-nostdin".into(),
        ],
    );
    let (ep, _incoming) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let mut call = ep
        .invite(InviteRequest {
            target: format!("sip:+15551234567@127.0.0.1:{sipp_port}"),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: build_offer("127.0.0.1:40010".parse().unwrap(), 9),
            headers: vec![("X-Callbridge-Call".into(), "sipp-1".into())],
            credentials: None,
        })
        .unwrap();
    assert_eq!(
        next(call.event()).await,
        Some(LegEvent::Progress {
            status: 180,
            sdp: None
        })
    );
    let Some(LegEvent::Answered { sdp }) = next(call.event()).await else {
        panic!("expected Answered")
    };
    let neg = SessionDescription::parse(&sdp)
        .unwrap()
        .negotiated_from_answer()
        .unwrap();
    assert_eq!(
        neg.remote,
        format!("127.0.0.1:{media_port}").parse().unwrap()
    );
    assert_eq!(neg.payload_type, 0);
    call.controller().hangup();
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
    assert_eq!(next(call.event()).await, None);
    let status = wait_exit("uas", &mut child).await;
    assert!(
        status.success(),
        "sipp exited with {status}; log: {}",
        std::fs::read_to_string(log_path("uas")).unwrap_or_default()
    );
    ep.shutdown();
}

#[tokio::test]
async fn sipp_uac_calls_us_and_hangs_up() {
    let _serial = SERIAL.lock().await;
    let (ep, mut incoming) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let sipp_port = free_udp_port();
    let media_port = free_media_port();
    let mut child = spawn_sipp(
        "uac",
        &[
            "-sn".into(),
            "uac".into(),
            ep.local_addr().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            sipp_port.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media_port.to_string(),
            "-m".into(),
            "1".into(),
            "-d".into(),
            "200".into(),
            "-timeout".into(),
            "30s".into(),
            "-nostdin".into(),
        ],
    );
    let mut call = timeout(DEADLINE, incoming.recv())
        .await
        .expect("no INVITE from sipp")
        .unwrap();
    assert_eq!(
        call.source,
        format!("127.0.0.1:{sipp_port}").parse().unwrap()
    );
    let offer =
        SessionDescription::parse(call.sdp.as_deref().expect("sipp sends an offer")).unwrap();
    let (answer, neg) = build_answer(&offer, "127.0.0.1:40012".parse().unwrap(), 3).unwrap();
    assert_eq!(
        neg.remote,
        format!("127.0.0.1:{media_port}").parse().unwrap()
    );
    call.ring();
    call.answer(answer);
    assert_eq!(next(call.event()).await, Some(LegEvent::Bye));
    assert_eq!(next(call.event()).await, None);
    let status = wait_exit("uac", &mut child).await;
    assert!(
        status.success(),
        "sipp exited with {status}; log: {}",
        std::fs::read_to_string(log_path("uac")).unwrap_or_default()
    );
    ep.shutdown();
}

/// A trunk that challenges: SIPp answers our INVITE with 401 (MD5, qop=auth), checks the
/// credentials of our second INVITE (same Call-ID, CSeq 2) with its `verifyauth`, then
/// answers; our BYE ends the call. With the wrong password SIPp's check fails and its 403
/// ends the leg (one answer per challenge: no loop).
#[tokio::test]
async fn a_challenging_trunk_gets_our_digest_credentials() {
    let _serial = SERIAL.lock().await;
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_auth.xml");
    for (password, calls_ok) in [("s3cret-trunk", true), ("wrong", false)] {
        let sipp_port = free_udp_port();
        let media_port = free_media_port();
        let name = format!("uas_auth_{calls_ok}");
        let mut child = spawn_sipp(
            &name,
            &[
                "-sf".into(),
                scenario.display().to_string(),
                "-i".into(),
                "127.0.0.1".into(),
                "-p".into(),
                sipp_port.to_string(),
                "-mi".into(),
                "127.0.0.1".into(),
                "-mp".into(),
                media_port.to_string(),
                "-m".into(),
                "1".into(),
                "-timeout".into(),
                "30s".into(),
                "-nostdin".into(),
            ],
        );
        let (ep, _incoming) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
            .await
            .unwrap();
        let mut call = ep
            .invite(InviteRequest {
                target: format!("sip:+15551234567@127.0.0.1:{sipp_port}"),
                from_user: "callbridge".into(),
                from_display: None,
                sdp: build_offer("127.0.0.1:40010".parse().unwrap(), 9),
                headers: vec![],
                credentials: Some(sip::digest::Credentials {
                    username: "cbtrunk".into(),
                    password: password.into(),
                }),
            })
            .unwrap();
        if calls_ok {
            assert_eq!(
                next(call.event()).await,
                Some(LegEvent::Progress {
                    status: 180,
                    sdp: None
                })
            );
            assert!(matches!(
                next(call.event()).await,
                Some(LegEvent::Answered { .. })
            ));
            call.controller().hangup();
            assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
            let status = wait_exit(&name, &mut child).await;
            assert!(
                status.success(),
                "sipp exited with {status}; log: {}",
                std::fs::read_to_string(log_path(&name)).unwrap_or_default()
            );
        } else {
            match next(call.event()).await {
                Some(LegEvent::Rejected { status: 403, .. }) => {}
                other => panic!("wrong credentials: expected 403, got {other:?}"),
            }
            let _ = child.start_kill();
        }
        ep.shutdown();
    }
}

/// SIPp as the agent (UAS, `tests/sipp/uas_hold.xml`) puts us on hold with a re-INVITE
/// (a=sendonly) and takes us off (a=sendrecv); the application sees both offers as
/// `LegEvent::Reoffer` and answers recvonly, then sendrecv (SIPp checks the 200s' bodies).
#[tokio::test]
async fn sipp_uas_holds_and_unholds_us_by_reinvite() {
    use sip::sdp::{compare, AnswerParams, Direction, Hold, LocalSession};
    use sip::ReofferPolicy;

    let _serial = SERIAL.lock().await;
    let sipp_port = free_udp_port();
    let media_port = free_media_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_hold.xml");
    let mut child = spawn_sipp(
        "uas_hold",
        &[
            "-sf".into(),
            scenario.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            sipp_port.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media_port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-nostdin".into(),
        ],
    );
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.reoffers = ReofferPolicy::Application;
    let (ep, _incoming) = Endpoint::bind(cfg).await.unwrap();
    let rtp: std::net::SocketAddr = "127.0.0.1:40030".parse().unwrap();
    let mut session = LocalSession::new(11, rtp.ip());
    let mut call = ep
        .invite(InviteRequest {
            target: format!("sip:agent@127.0.0.1:{sipp_port}"),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: session.offer(&sip::sdp::OfferParams::new(rtp)).unwrap(),
            headers: vec![],
            credentials: None,
        })
        .unwrap();
    let answered = loop {
        match next(call.event()).await {
            Some(LegEvent::Progress { .. }) => continue,
            Some(LegEvent::Answered { sdp }) => break sdp,
            other => panic!("expected Answered, got {other:?}"),
        }
    };
    let mut previous = SessionDescription::parse(&answered).unwrap();
    session.read_answer(&previous).unwrap();
    for (hold, ours) in [
        (Hold::Started, Direction::RecvOnly),
        (Hold::Ended, Direction::SendRecv),
    ] {
        let Some(LegEvent::Reoffer { sdp }) = next(call.event()).await else {
            panic!("expected a Reoffer")
        };
        let offer = SessionDescription::parse(&sdp).unwrap();
        let change = compare(&previous, &offer).unwrap();
        assert_eq!(change.hold, Some(hold), "{sdp}");
        let answer = session.answer(&offer, &AnswerParams::new(rtp)).unwrap();
        assert_eq!(answer.agreement.negotiated.direction, ours);
        call.controller().answer_reoffer(answer.sdp);
        previous = offer;
    }
    call.controller().hangup();
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
    let status = wait_exit("uas_hold", &mut child).await;
    assert!(
        status.success(),
        "sipp exited with {status}; log: {}",
        std::fs::read_to_string(log_path("uas_hold")).unwrap_or_default()
    );
    ep.shutdown();
}

/// SIPp as the agent (UAS, `tests/sipp/uas_100rel.xml`) sends a reliable 183 with SDP (early
/// media: the agent's ringback): we PRACK it (SIPp checks `RAck: 1 1 INVITE`) and report its
/// SDP, then the 200 is ACKed and our BYE ends the call.
#[tokio::test]
async fn sipp_uas_reliable_183_is_pracked() {
    let _serial = SERIAL.lock().await;
    let sipp_port = free_udp_port();
    let media_port = free_media_port();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_100rel.xml");
    let mut child = spawn_sipp(
        "uas_100rel",
        &[
            "-sf".into(),
            scenario.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            sipp_port.to_string(),
            "-mi".into(),
            "127.0.0.1".into(),
            "-mp".into(),
            media_port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-nostdin".into(),
        ],
    );
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.use_100rel = true;
    let (ep, _incoming) = Endpoint::bind(cfg).await.unwrap();
    let mut call = ep
        .invite(InviteRequest {
            target: format!("sip:agent@127.0.0.1:{sipp_port}"),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: build_offer("127.0.0.1:40070".parse().unwrap(), 12),
            headers: vec![],
            credentials: None,
        })
        .unwrap();
    let Some(LegEvent::Progress {
        status: 183,
        sdp: Some(early),
    }) = next(call.event()).await
    else {
        panic!("expected a 183 with SDP")
    };
    let neg = SessionDescription::parse(&early)
        .unwrap()
        .negotiated_from_answer()
        .unwrap();
    assert_eq!(neg.remote.port(), media_port);
    assert!(matches!(
        next(call.event()).await,
        Some(LegEvent::Answered { .. })
    ));
    call.controller().hangup();
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
    let status = wait_exit("uas_100rel", &mut child).await;
    assert!(
        status.success(),
        "sipp exited with {status}; log: {}",
        std::fs::read_to_string(log_path("uas_100rel")).unwrap_or_default()
    );
    ep.shutdown();
}
