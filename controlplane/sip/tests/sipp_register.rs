//! Interop with SIPp 3.6.1 (/usr/bin/sipp) as an agent's softphone: it REGISTERs with digest
//! (`[authentication]`, `tests/sipp/register.xml`) from a port of its own; then a second SIPp on
//! that port answers the call we send to its binding (`tests/sipp/uas.xml`), as a softphone
//! would. Fails, never skips, if SIPp is missing.

use std::net::UdpSocket as StdUdpSocket;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sip::digest::{Algorithm, StoredCredential};
use sip::registrar::RegistrarConfig;
use sip::sdp::build_offer;
use sip::{Endpoint, EndpointConfig, InviteRequest, LegEvent, Peer};
use tokio::process::{Child, Command};
use tokio::time::timeout;

const SIPP: &str = "/usr/bin/sipp";
const DEADLINE: Duration = Duration::from_secs(20);

fn free_udp_port() -> u16 {
    StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port p with p and p+2 currently free (SIPp uses media_port and media_port+2).
fn free_media_port() -> u16 {
    loop {
        let a = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65_000 && StdUdpSocket::bind(("127.0.0.1", p + 2)).is_ok() {
            return p;
        }
    }
}

fn log_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "callbridge-sipp-register-{name}-{}.log",
        std::process::id()
    ))
}

fn log(name: &str) -> String {
    std::fs::read_to_string(log_path(name)).unwrap_or_default()
}

fn spawn_sipp(name: &str, scenario: &str, args: &[String]) -> Child {
    assert!(
        Path::new(SIPP).exists(),
        "SIPp is required at {SIPP} for this test"
    );
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/sipp")
        .join(scenario);
    let log = std::fs::File::create(log_path(name)).unwrap();
    let child = Command::new(SIPP)
        .arg("-sf")
        .arg(scenario)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("failed to start sipp");
    // Our INVITE must find SIPp listening: to a port nobody has bound yet it would earn an
    // ICMP port unreachable, which ends the transaction at once (RFC 3261 17.1.4).
    if let Some(port) = args
        .iter()
        .position(|a| a == "-p")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok())
    {
        let until = std::time::Instant::now() + Duration::from_secs(10);
        while !udp_bound(port) {
            assert!(
                std::time::Instant::now() < until,
                "sipp did not bind UDP port {port}; log: {}",
                std::fs::read_to_string(log_path(name)).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    child
}

/// Whether a UDP socket is bound to `port` (from /proc/net/udp{,6}; no probe socket, so no
/// race with SIPp's own bind).
fn udp_bound(port: u16) -> bool {
    let hex = format!(":{port:04X}");
    ["/proc/net/udp", "/proc/net/udp6"].iter().any(|f| {
        std::fs::read_to_string(f).is_ok_and(|t| {
            t.lines()
                .skip(1)
                .filter_map(|l| l.split_whitespace().nth(1))
                .any(|local| local.ends_with(&hex))
        })
    })
}

async fn wait_exit(name: &str, child: &mut Child) -> ExitStatus {
    match timeout(Duration::from_secs(40), child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = child.start_kill();
            panic!("sipp did not exit; log: {}", log(name));
        }
    }
}

async fn next<F: std::future::Future<Output = Option<LegEvent>>>(f: F) -> Option<LegEvent> {
    timeout(DEADLINE, f)
        .await
        .expect("no leg event within the deadline")
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
