//! Black-box test harness for the `callbridge` binary.
//!
//! Every test builds its own little lab on loopback and tears it down again:
//!
//! ```text
//!  test ──HTTP (tiny client)──► callbridge serve ──SIP/RTP──► SIPp UAS (customer, via the "trunk")
//!                                                 └─SIP/RTP──► SIPp UAS (agent, via its SIP URI)
//! ```
//!
//! - [`ports`] hands out loopback ports; every test gets its own HTTP/SIP/media block so the
//!   tests of one binary can run in parallel.
//! - [`Workdir`] is the test's scratch directory (config, logs, SIPp traces); it is removed when
//!   the test passes and kept (path printed) when it fails.
//! - [`Config`] renders a callbridge TOML config; [`Callbridge`] spawns `callbridge serve`, waits
//!   for `/healthz`, and talks HTTP/JSON to it; [`Sipp`] spawns `/usr/bin/sipp` with one of the
//!   scenarios in `tests/sipp/`.
//! - [`inject`]: a [`inject::Sprayer`] that sprays marked RTP/RTCP at a media port range from
//!   another loopback address (the "RTP Bleed" attacker) and records what comes back.
//! - [`impair`]: an in-process UDP impairment proxy ([`impair::Proxy`]: seeded loss, delay,
//!   jitter, reordering, duplication, counters per direction) to put between SIPp and
//!   callbridge (the kernels here have no netem).
//! - [`record`] reads call-request records (`events`, `media` counters).
//! - [`baresip`]: baresip 1.0 as a headless softphone (registers over TLS, auto-answers, SRTP,
//!   records what it hears); [`certs`] makes the CA and server certificate for TLS;
//!   [`audio`] reads WAV recordings and pcap captures and finds one's frames in the other.
//! - [`scenario`]: the shared call flows: [`TwoPartyCall`] (SIPp customer + SIPp agent +
//!   callbridge) and the record checks every call test makes (`wait_bridged`, `wait_done`,
//!   `expect_full_call`, `expect_failed`, …).
//! - [`dns`]: a DNS server of the test's own ([`dns::DnsServer`], hickory-server, in-memory
//!   zone) that logs every query, for `sip.dns_servers` (RFC 3263 trunk resolution).
//! - [`tls`]: a throw-away PKI ([`tls::Pki`]), `stunnel4` as the TLS terminator in front of a
//!   TCP SIPp ([`tls::Stunnel`]), and a rustls client ([`tls::request_over_tls`]).
//! - [`kamailio`]: Kamailio with its `rtpengine` module as a SIP proxy, and the media node it
//!   drives over rtpengine's ng protocol: `callbridge media` or rtpengine itself.
//! - [`postgres`]: a PostgreSQL 15 server of the test's own ([`postgres::Postgres`]: `initdb`
//!   in a temporary directory, `pg_ctl` on a loopback port, stopped on drop) for `store.url`;
//!   the store crate's unit tests include the same file.
//! - [`ng_client`]: rtpengine's ng protocol as a proxy speaks it (resent with the same cookie),
//!   and the SDP and reply helpers of the `callbridge media` tests.
//! - [`store_nodes`]: several `callbridge serve` nodes on one PostgreSQL store.
//! - [`netns`] and [`dpdk`]: a network namespace with veth pairs for the DPDK backend, whose
//!   media address belongs to an interface DPDK drives (root only; see `tests/dpdk_call.rs`).
//!
//! - [`topology`]: the scaling-out topology (`scripts/topology`: namespaces `cp1`, `cp2`, `pg`,
//!   `mn1`, `mn2`, `sipc`, `sipa` on one bridge in 198.18.0.0/15, the test reaching them from
//!   the root namespace), torn down on drop; [`topology::NsChild`] runs a process inside a host.
//! - [`sipp_log`]: SIPp's message trace read as it grows ([`sipp_log::MessageTail`]), and the
//!   INFO that makes [`Scenario::AnswerReanchorExternalMedia`] hang up.
//! - [`rtp_many`]: one socket (bound inside a namespace) sending many paced RTP streams and
//!   capturing every datagram it receives (time, source, SSRC, sequence), for tests of many calls.
//!
//! Invariants: nothing here sleeps a fixed time to wait for something; every wait polls for an
//! event (a bound port, a status, an exit) against a generous deadline and panics with the logs
//! when the deadline passes. Every child process is killed by its PID when its owner is dropped
//! (callbridge gets SIGTERM, then SIGKILL).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod audio;
pub mod baresip;
pub mod browser;
pub mod certs;
pub mod config;
pub mod dns;
pub mod dpdk;
pub mod http;
pub mod impair;
pub mod inject;
pub mod kamailio;
pub mod netns;
pub mod ng_client;
pub mod ports;
pub mod postgres;
pub mod record;
pub mod rtp;
pub mod rtp_many;
pub mod scenario;
pub mod server;
pub mod sipp;
pub mod sipp_log;
pub mod site;
pub mod store_nodes;
pub mod tls;
pub mod topology;
pub mod workdir;

pub use config::{Agent, Config, Dpdk, Flow};
pub use http::Response;
pub use ports::{PortBlock, MEDIA_BLOCK};
pub use rtp::RtpPeer;
pub use scenario::{Api, CustomerOnlyCall, SilentAgent, TwoPartyCall};
pub use server::Callbridge;
pub use sipp::{Scenario, Sipp, SippOptions};
pub use workdir::Workdir;

use std::path::PathBuf;
use std::time::Duration;

/// Deadline for "the server is up" and similar start-up waits.
pub const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
/// Deadline for a call to reach a given state (covers ringing, announcement and a bridged call).
pub const CALL_DEADLINE: Duration = Duration::from_secs(45);
/// Deadline for a SIPp instance to finish its scenario once the call is over.
pub const SIPP_EXIT_DEADLINE: Duration = Duration::from_secs(75);
/// How often pollers look again.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The workspace root (the parent of this crate's directory).
#[must_use]
pub fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map_or_else(|| manifest.clone(), std::path::Path::to_path_buf)
}

/// The target directory: `$CARGO_TARGET_DIR` or `<workspace>/target`.
#[must_use]
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// Reads a file for a failure message; never fails (an unreadable file says so).
#[must_use]
pub fn read_log(path: &std::path::Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            // Keep failure messages readable: the tail is what matters.
            const MAX: usize = 64 * 1024;
            if text.len() > MAX {
                let mut cut = text.len() - MAX;
                while !text.is_char_boundary(cut) {
                    cut += 1;
                }
                format!("[... {cut} bytes cut ...]\n{}", &text[cut..])
            } else {
                text.into_owned()
            }
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}
