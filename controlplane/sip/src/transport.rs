//! UDP transport: a receive task (recv → [`msg::parse`] → the core) and a send task (a queue of
//! [`Transmit`]s). Each datagram is first held against the size limits ([`msg::check_size`]:
//! a request too large gets `513` or `413`, answered to its source before it is parsed), then
//! parsed; a source that keeps sending bad datagrams is ignored for a while
//! ([`crate::guard`]); malformed requests get `400 Bad Request - <fault>` or `505` (see
//! [`msg::reject_malformed`]); malformed or oversized responses and other garbage are dropped
//! and counted. Nothing here panics on input.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use crate::guard::{BadSourceLimiter, BadSourceLimits};
use crate::msg::{self, Message};
use crate::transaction::Transmit;

/// Transport counters, shared with [`crate::ua::Endpoint`].
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Datagrams that parsed as SIP.
    pub received: AtomicU64,
    /// Malformed requests answered with 400 or 505.
    pub bad_requests: AtomicU64,
    /// Datagrams over a size limit (requests answered with 513 or 413, the rest dropped).
    pub too_large: AtomicU64,
    /// Datagrams dropped unread because their source is cooling down ([`BadSourceLimiter`]).
    pub rate_limited: AtomicU64,
    /// New INVITEs from outside `allow_invite_from`, answered 403 by the core.
    pub forbidden_invites: AtomicU64,
    /// Malformed datagrams that are not responses, dropped silently.
    pub dropped: AtomicU64,
    /// Malformed responses (bad status code, scalar overflow, …), dropped.
    pub invalid_responses: AtomicU64,
    /// Well-formed responses matching no transaction or dialog, dropped by the core.
    pub stray_responses: AtomicU64,
    /// Datagrams the OS refused to send.
    pub send_errors: AtomicU64,
}

fn first_line(b: &[u8]) -> String {
    let end = b
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(b.len())
        .min(200);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Records a bad datagram from `src`, logging when it starts the source's cooldown.
fn bad_source(limiter: &mut BadSourceLimiter, now: Instant, src: SocketAddr) {
    if limiter.handle_bad(now, src.ip()) {
        warn!(source = %src.ip(), "too many bad SIP datagrams; ignoring the source for a while");
    }
}

/// Spawns the receive and send tasks on the current runtime. Parsed messages (requests already
/// stamped with `received`/`rport`) go to the returned receiver; transmits are queued on the
/// returned sender. Both tasks stop when `cancel` fires.
pub(crate) fn spawn(
    socket: Arc<UdpSocket>,
    cancel: CancellationToken,
    user_agent: String,
    limits: msg::Limits,
    bad_sources: BadSourceLimits,
    stats: Arc<TransportStats>,
) -> (
    mpsc::Receiver<(SocketAddr, Message)>,
    mpsc::UnboundedSender<Transmit>,
) {
    let (in_tx, in_rx) = mpsc::channel(1024);
    let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Transmit>();

    let send_sock = socket.clone();
    let send_cancel = cancel.clone();
    let send_stats = stats.clone();
    tokio::spawn(async move {
        loop {
            let t = tokio::select! {
                _ = send_cancel.cancelled() => break,
                t = out_rx.recv() => match t { Some(t) => t, None => break },
            };
            debug!(dest = %t.dest, line = %first_line(&t.payload), "sip tx");
            if let Err(e) = send_sock.send_to(&t.payload, t.dest).await {
                send_stats.send_errors.fetch_add(1, Ordering::Relaxed);
                warn!(dest = %t.dest, error = %e, "sip send failed");
            }
        }
    });

    let reply_tx = out_tx.clone();
    tokio::spawn(async move {
        let mut limiter = BadSourceLimiter::new(bad_sources);
        // One byte more than the limit, so that a larger datagram shows (cut) as too large.
        let mut buf = vec![0u8; limits.max_message_bytes.saturating_add(1).min(65_536)];
        loop {
            let (n, src) = tokio::select! {
                _ = cancel.cancelled() => break,
                r = socket.recv_from(&mut buf) => match r {
                    Ok(x) => x,
                    Err(e) => {
                        // e.g. ECONNREFUSED from an earlier ICMP port unreachable: keep going.
                        debug!(error = %e, "sip recv error");
                        continue;
                    }
                },
            };
            let data = &buf[..n];
            let now = Instant::now();
            if !limiter.accepts(now, src.ip()) {
                stats.rate_limited.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            if let Err(e) = msg::check_size(data, &limits) {
                stats.too_large.fetch_add(1, Ordering::Relaxed);
                bad_source(&mut limiter, now, src);
                debug!(%src, error = %e, "oversized datagram");
                if let Some(payload) = msg::reject_malformed(data, &e, &user_agent) {
                    let _ = reply_tx.send(Transmit { dest: src, payload });
                }
                continue;
            }
            match msg::parse(data) {
                Ok(mut m) => {
                    stats.received.fetch_add(1, Ordering::Relaxed);
                    debug!(%src, line = %first_line(data), "sip rx");
                    if let Message::Request(r) = &mut m {
                        r.stamp_received(src);
                    }
                    if in_tx.send((src, m)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    bad_source(&mut limiter, now, src);
                    match msg::reject_malformed(data, &e, &user_agent) {
                        Some(payload) => {
                            stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                            debug!(%src, error = %e, "malformed request, answering 400/505");
                            let _ = reply_tx.send(Transmit { dest: src, payload });
                        }
                        // RFC 3261 / RFC 4475 3.1.2.5, 3.1.2.19: a malformed response is dropped.
                        None if data.trim_ascii_start().starts_with(b"SIP/") => {
                            stats.invalid_responses.fetch_add(1, Ordering::Relaxed);
                            debug!(%src, error = %e, "malformed response dropped");
                        }
                        None => {
                            stats.dropped.fetch_add(1, Ordering::Relaxed);
                            debug!(%src, error = %e, "malformed datagram dropped");
                        }
                    }
                }
            }
        }
    });
    (in_rx, out_tx)
}
