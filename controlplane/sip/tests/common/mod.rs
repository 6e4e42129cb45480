//! What the SIPp interop tests (`sipp.rs`, `sipp_register.rs`) share: free ports, starting
//! `/usr/bin/sipp` (and waiting until it has bound its SIP port), waiting for its exit, and
//! the deadline on one leg event. Each test file names its own log files.

use std::future::Future;
use std::net::UdpSocket as StdUdpSocket;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use sip::LegEvent;
use tokio::process::{Child, Command};
use tokio::time::timeout;

pub(crate) const SIPP: &str = "/usr/bin/sipp";
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) fn free_udp_port() -> u16 {
    StdUdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A port p with p and p+2 currently free (SIPp uses media_port and media_port+2).
pub(crate) fn free_media_port() -> u16 {
    loop {
        let a = StdUdpSocket::bind("127.0.0.1:0").unwrap();
        let p = a.local_addr().unwrap().port();
        if p < 65_000 && StdUdpSocket::bind(("127.0.0.1", p + 2)).is_ok() {
            return p;
        }
    }
}

/// `callbridge-{prefix}-{name}-{pid}.log` in the temporary directory.
pub(crate) fn log_path(prefix: &str, name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "callbridge-{prefix}-{name}-{}.log",
        std::process::id()
    ))
}

fn read_log(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Starts SIPp with `args`, its standard error to `log`, and returns once it has bound the
/// UDP port given with `-p` (if any).
pub(crate) fn spawn_sipp(log: &Path, args: &[String]) -> Child {
    assert!(
        Path::new(SIPP).exists(),
        "SIPp is required at {SIPP} for this test"
    );
    let file = std::fs::File::create(log).unwrap();
    let child = Command::new(SIPP)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .kill_on_drop(true)
        .spawn()
        .expect("failed to start sipp");
    // Our first INVITE must find SIPp listening: a datagram to a port nobody has bound yet
    // is answered by an ICMP port unreachable, which ends the transaction at once (RFC 3261
    // 17.1.4; no Timer A retransmission would reach SIPp later).
    if let Some(port) = args
        .iter()
        .position(|a| a == "-p")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok())
    {
        let until = Instant::now() + Duration::from_secs(10);
        while !udp_bound(port) {
            assert!(
                Instant::now() < until,
                "sipp did not bind UDP port {port}; log: {}",
                read_log(log)
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

/// Waits (40 s at most) for SIPp to exit; kills it and panics with `log` otherwise.
pub(crate) async fn wait_exit(log: &Path, child: &mut Child) -> ExitStatus {
    match timeout(Duration::from_secs(40), child.wait()).await {
        Ok(status) => status.unwrap(),
        Err(_) => {
            let _ = child.start_kill();
            panic!("sipp did not exit; log: {}", read_log(log));
        }
    }
}

/// The next leg event, within [`DEADLINE`].
pub(crate) async fn next<F: Future<Output = Option<LegEvent>>>(f: F) -> Option<LegEvent> {
    timeout(DEADLINE, f)
        .await
        .expect("no leg event within the deadline")
}
