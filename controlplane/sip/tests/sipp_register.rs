//! Interop with SIPp 3.6.1 (/usr/bin/sipp) as an agent's softphone: it REGISTERs with digest
//! (`[authentication]`, `tests/sipp/register.xml`) from a port of its own; then a second SIPp on
//! that port answers the call we send to its binding (`tests/sipp/uas.xml`), as a softphone
//! would. Fails, never skips, if SIPp is missing.

mod common;

use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use common::{free_media_port, free_udp_port, next};

use sip::digest::{Algorithm, StoredCredential};
use sip::registrar::RegistrarConfig;
use sip::sdp::build_offer;
use sip::{Endpoint, EndpointConfig, InviteRequest, LegEvent, Peer};
use tokio::process::Child;

fn log_path(name: &str) -> PathBuf {
    common::log_path("sipp-register", name)
}

fn log(name: &str) -> String {
    std::fs::read_to_string(log_path(name)).unwrap_or_default()
}

/// SIPp with `tests/sipp/<scenario>` and `args`.
fn spawn_sipp(name: &str, scenario: &str, args: &[String]) -> Child {
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let mut all = vec!["-sf".to_owned(), scenario.display().to_string()];
    all.extend_from_slice(args);
    common::spawn_sipp(&log_path(name), &all)
}

async fn wait_exit(name: &str, child: &mut Child) -> ExitStatus {
    common::wait_exit(&log_path(name), child).await
}

#[tokio::test]
async fn sipp_registers_with_digest_and_is_called_at_its_binding() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.registrar = Some(RegistrarConfig::new(
        "callbridge",
        b"a test secret, 16+ bytes".to_vec(),
        vec![StoredCredential::from_password(
            "agent7",
            "callbridge",
            "hunter2",
        )],
    ));
    // SIPp answers the first challenge and knows only MD5 (RFC 8760 clients pick SHA-256).
    if let Some(r) = cfg.registrar.as_mut() {
        r.algorithms = vec![Algorithm::Md5];
    }
    let (ep, _incoming) = Endpoint::bind(cfg).await.unwrap();
    let phone_port = free_udp_port();
    let common = |port: u16| -> Vec<String> {
        vec![
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-m".into(),
            "1".into(),
            "-timeout".into(),
            "30s".into(),
            "-nostdin".into(),
        ]
    };
    let mut args = vec![ep.local_addr().to_string()];
    args.extend(common(phone_port));
    let mut reg = spawn_sipp("reg", "register.xml", &args);
    let status = wait_exit("reg", &mut reg).await;
    assert!(
        status.success(),
        "sipp exited with {status}; log: {}",
        log("reg")
    );
    let stats = ep.registrar_stats().unwrap();
    assert_eq!((stats.challenged, stats.ok), (1, 1), "{stats:?}");

    let bindings = ep.bindings("agent7");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let b = &bindings[0];
    let phone = Peer::udp(format!("127.0.0.1:{phone_port}").parse().unwrap());
    assert_eq!(b.flow, phone);
    assert_eq!(b.contact, format!("sip:agent7@127.0.0.1:{phone_port}"));
    assert_eq!(b.user_agent.as_deref(), Some("SIPp"));
    let left = b.expires_at.saturating_duration_since(Instant::now());
    assert!(
        left > Duration::from_secs(290) && left <= Duration::from_secs(300),
        "{left:?}"
    );

    // The softphone answers on the port it registered from.
    let media_port = free_media_port();
    let mut args = common(phone_port);
    args.extend([
        "-mi".into(),
        "127.0.0.1".into(),
        "-mp".into(),
        media_port.to_string(),
    ]);
    let mut uas = spawn_sipp("uas", "uas.xml", &args);
    let mut call = ep
        .invite_to(
            InviteRequest {
                target: b.contact.clone(),
                from_user: "callbridge".into(),
                from_display: None,
                sdp: build_offer("127.0.0.1:40020".parse().unwrap(), 9),
                headers: vec![],
                credentials: None,
            },
            b.flow,
            None,
        )
        .unwrap();
    loop {
        match next(call.event()).await {
            Some(LegEvent::Progress { .. }) => {}
            Some(LegEvent::Answered { .. }) => break,
            other => panic!("expected the answer, got {other:?}; log: {}", log("uas")),
        }
    }
    call.controller().hangup();
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
    let status = wait_exit("uas", &mut uas).await;
    assert!(
        status.success(),
        "sipp exited with {status}; log: {}",
        log("uas")
    );
    ep.shutdown();
}
