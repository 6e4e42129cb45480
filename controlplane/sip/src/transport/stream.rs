//! Stream connections (TCP, TLS): the accept loop, opening a connection ([`connect`]), one
//! connection's task ([`run_connection`]: framing, keep-alives, idle and message timeouts) and
//! the `Content-Length` framing itself ([`frame`], RFC 3261 18.3).
//!
//! The dispatcher in the parent module owns the connection table; the tasks here tell it when
//! a connection opens and closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::{first_line, Admit, Dispatch, Gate, Inbound, StreamLimits, TransportStats};
use crate::error::SipError;
use crate::msg;
use crate::peer::{Peer, Transport};

/// What connection tasks share.
pub(super) struct ConnCtx {
    pub(super) gate: Arc<Gate>,
    pub(super) inbound: mpsc::Sender<Inbound>,
    pub(super) dispatch: mpsc::UnboundedSender<Dispatch>,
    pub(super) limits: StreamLimits,
    pub(super) stats: Arc<TransportStats>,
    pub(super) cancel: CancellationToken,
    pub(super) next_id: AtomicU64,
    pub(super) open: AtomicU64,
    pub(super) max_header: usize,
    pub(super) max_body: usize,
}

impl ConnCtx {
    /// Takes a connection slot, or says the limit is reached.
    fn reserve(&self) -> bool {
        let max = self.limits.max_connections as u64;
        let taken = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok();
        if !taken {
            self.stats
                .connections_refused
                .fetch_add(1, Ordering::Relaxed);
        }
        taken
    }

    fn release(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.stats
            .connections_closed
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Gives a slot back for a connection that never opened (refused, timed out): not a
    /// closed connection.
    fn unreserve(&self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(super) async fn accept_loop(
    transport: Transport,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ctx: Arc<ConnCtx>,
) {
    loop {
        let (stream, remote) = tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and the like: back off a little instead of spinning.
                    warn!(error = %e, "SIP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        if !ctx.gate.accepts(Instant::now(), remote.ip()) || !ctx.reserve() {
            drop(stream);
            continue;
        }
        ctx.stats
            .connections_accepted
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let peer = Peer::new(transport, remote);
        let ctx = ctx.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => run_connection(stream, peer, false, ctx.clone(), None).await,
                Some(acceptor) => {
                    let hs =
                        tokio::time::timeout(ctx.limits.connect_timeout, acceptor.accept(stream))
                            .await;
                    match hs {
                        Ok(Ok(s)) => run_connection(s, peer, false, ctx.clone(), None).await,
                        Ok(Err(e)) => {
                            ctx.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                            debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => {
                            ctx.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                            debug!(%peer, "TLS handshake timed out");
                        }
                    }
                }
            }
            ctx.release();
        });
    }
}

/// Opens a connection to `peer` and runs it; `rx` holds what was queued meanwhile. Reports
/// [`Inbound::SendFailed`] when it cannot be opened.
pub(super) async fn connect(
    peer: Peer,
    id: u64,
    rx: mpsc::Receiver<Vec<u8>>,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    ctx: Arc<ConnCtx>,
) {
    let fail = |why: String| {
        let ctx = ctx.clone();
        async move {
            ctx.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            warn!(%peer, error = %why, "SIP connection failed");
            let _ = ctx.dispatch.send(Dispatch::Closed { peer, id });
            let cause = format!(
                "{} connection to {} failed: {why}",
                peer.transport, peer.addr
            );
            let _ = ctx.inbound.send(Inbound::SendFailed { peer, cause }).await;
        }
    };
    if !ctx.reserve() {
        fail("too many connections open (sip.max_connections)".into()).await;
        return;
    }
    let timeout = ctx.limits.connect_timeout;
    let stream = match tokio::time::timeout(timeout, TcpStream::connect(peer.addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            ctx.unreserve();
            fail(format!("connect: {e}")).await;
            return;
        }
        Err(_) => {
            ctx.unreserve();
            fail(format!("connect: no answer within {timeout:?}")).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    ctx.stats.connections_opened.fetch_add(1, Ordering::Relaxed);
    match tls {
        None => run_connection(stream, peer, true, ctx.clone(), Some((id, rx))).await,
        Some((connector, name)) => {
            match tokio::time::timeout(timeout, connector.connect(name.clone(), stream)).await {
                Ok(Ok(s)) => run_connection(s, peer, true, ctx.clone(), Some((id, rx))).await,
                Ok(Err(e)) => {
                    ctx.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    ctx.release();
                    fail(format!("TLS handshake with {name:?}: {e}")).await;
                    return;
                }
                Err(_) => {
                    ctx.stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    ctx.release();
                    fail(format!("TLS handshake: no answer within {timeout:?}")).await;
                    return;
                }
            }
        }
    }
    ctx.release();
}

/// Where a stream's framing stands after the bytes read so far.
#[derive(Debug, PartialEq, Eq)]
enum Frame {
    /// Need more bytes.
    More,
    /// `CRLF CRLF`: a keep-alive ping (RFC 5626 3.5.1); consume 4 bytes and answer `CRLF`.
    Ping,
    /// A lone `CRLF` (a pong, or stray line ends between messages); consume 2 bytes.
    Crlf,
    /// A whole message of this many bytes is at the front.
    Message(usize),
    /// Framing is broken; the text says why (the stream must be closed).
    Broken(String),
}

/// Finds the next frame at the front of `buf` (RFC 3261 18.3). Pure, for tests.
fn frame(buf: &[u8], max_header: usize, max_body: usize) -> Frame {
    if buf.starts_with(b"\r\n\r\n") {
        return Frame::Ping;
    }
    if let Some(rest) = buf.strip_prefix(b"\r\n") {
        // A pong or a stray line end, unless it may still grow into a ping.
        return if rest.is_empty() || rest == b"\r" {
            Frame::More
        } else {
            Frame::Crlf
        };
    }
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if buf.len() > max_header {
            Frame::Broken(format!("header section over {max_header} bytes"))
        } else {
            Frame::More
        };
    };
    if end + 4 > max_header.saturating_add(4) {
        return Frame::Broken(format!("header section over {max_header} bytes"));
    }
    let head = &buf[..end];
    let mut length = None;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            let v = std::str::from_utf8(line[colon + 1..].trim_ascii()).unwrap_or("");
            match v.parse::<usize>() {
                Ok(n) if length.is_none_or(|l| l == n) => length = Some(n),
                Ok(_) => return Frame::Broken("conflicting Content-Length values".into()),
                Err(_) => return Frame::Broken(format!("malformed Content-Length {v:?}")),
            }
        }
    }
    let Some(len) = length else {
        return Frame::Broken("missing Content-Length (required on a stream)".into());
    };
    if len > max_body {
        return Frame::Broken(format!("body of {len} bytes over {max_body}"));
    }
    let total = end + 4 + len;
    if buf.len() < total {
        Frame::More
    } else {
        Frame::Message(total)
    }
}

/// Runs one open connection until it closes: registers it with the dispatcher (accepted
/// connections; ours bring their queue `mine`), reads and frames, writes what is queued, keeps
/// it alive or closes it when idle.
async fn run_connection<S>(
    stream: S,
    peer: Peer,
    ours: bool,
    ctx: Arc<ConnCtx>,
    mine: Option<(u64, mpsc::Receiver<Vec<u8>>)>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (id, mut rx) = match mine {
        Some(x) => x,
        None => {
            let id = ctx.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::channel(256);
            let _ = ctx.dispatch.send(Dispatch::Opened { peer, id, tx });
            (id, rx)
        }
    };
    debug!(%peer, ours, "SIP connection open");
    let (mut rd, mut wr) = tokio::io::split(stream);
    let limits = ctx.limits;
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 * 1024];
    let mut last_rx = tokio::time::Instant::now();
    let mut ping_sent: Option<tokio::time::Instant> = None;
    let mut message_started: Option<tokio::time::Instant> = None;
    let mut failed_send = false;
    'conn: loop {
        // The next deadline: keep-alive ping, its timeout, idle close, or a slow message.
        let idle_deadline = if ours {
            match ping_sent {
                Some(at) => at + limits.keepalive_timeout,
                None => last_rx + limits.keepalive,
            }
        } else {
            last_rx + limits.idle_timeout
        };
        let deadline = match message_started {
            Some(at) => idle_deadline.min(at + limits.message_timeout),
            None => idle_deadline,
        };
        tokio::select! {
            _ = ctx.cancel.cancelled() => break,
            out = rx.recv() => match out {
                Some(bytes) => {
                    if let Err(e) = wr.write_all(&bytes).await {
                        debug!(%peer, error = %e, "SIP connection write failed");
                        failed_send = true;
                        break;
                    }
                    debug!(%peer, line = %first_line(&bytes), "sip tx");
                }
                None => break,
            },
            r = rd.read(&mut chunk) => {
                let n = match r {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        debug!(%peer, error = %e, "SIP connection read failed");
                        break;
                    }
                };
                last_rx = tokio::time::Instant::now();
                ping_sent = None;
                buf.extend_from_slice(&chunk[..n]);
                loop {
                    match frame(&buf, ctx.max_header, ctx.max_body) {
                        Frame::More => {
                            message_started = (!buf.is_empty()).then(|| message_started.unwrap_or(last_rx));
                            break;
                        }
                        Frame::Ping => {
                            buf.drain(..4);
                            ctx.stats.keepalive_pongs.fetch_add(1, Ordering::Relaxed);
                            if wr.write_all(b"\r\n").await.is_err() {
                                break 'conn;
                            }
                        }
                        Frame::Crlf => {
                            buf.drain(..2);
                        }
                        Frame::Message(n) => {
                            message_started = None;
                            let now = Instant::now();
                            match ctx.gate.admit(now, peer, &buf[..n]) {
                                Admit::Deliver(m) => {
                                    if ctx.inbound.send(Inbound::Message(peer, m)).await.is_err() {
                                        break 'conn;
                                    }
                                }
                                Admit::Reply(p) => {
                                    let _ = wr.write_all(&p).await;
                                }
                                Admit::Drop => {}
                            }
                            buf.drain(..n);
                        }
                        Frame::Broken(why) => {
                            debug!(%peer, %why, "SIP stream framing broken; closing");
                            ctx.gate.bad(Instant::now(), peer.addr);
                            let err = SipError::Malformed(why);
                            if let Some(p) = msg::reject_malformed(&buf, &err, &ctx.gate.user_agent) {
                                ctx.stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                                let _ = wr.write_all(&p).await;
                            } else {
                                ctx.stats.dropped.fetch_add(1, Ordering::Relaxed);
                            }
                            break 'conn;
                        }
                    }
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                let now = tokio::time::Instant::now();
                if message_started.is_some_and(|at| now >= at + limits.message_timeout) {
                    debug!(%peer, "SIP message not completed in time; closing");
                    break;
                }
                if !ours {
                    debug!(%peer, "SIP connection idle; closing");
                    break;
                }
                if ping_sent.is_some() {
                    debug!(%peer, "SIP keep-alive unanswered; closing");
                    break;
                }
                if wr.write_all(b"\r\n\r\n").await.is_err() {
                    break;
                }
                ping_sent = Some(now);
            },
        }
    }
    let _ = wr.shutdown().await;
    let _ = ctx.dispatch.send(Dispatch::Closed { peer, id });
    // Whatever was still queued for this connection is lost: tell the core.
    rx.close();
    if failed_send || rx.recv().await.is_some() {
        let cause = format!("{} connection to {} broke", peer.transport, peer.addr);
        let _ = ctx.inbound.send(Inbound::SendFailed { peer, cause }).await;
    }
    debug!(%peer, "SIP connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabc";

    #[test]
    fn frames_are_cut_by_content_length() {
        assert_eq!(frame(MSG, 8192, 8192), Frame::Message(MSG.len()));
        assert_eq!(frame(&MSG[..MSG.len() - 1], 8192, 8192), Frame::More);
        assert_eq!(frame(&MSG[..10], 8192, 8192), Frame::More);
        let mut two = MSG.to_vec();
        two.extend_from_slice(MSG);
        assert_eq!(frame(&two, 8192, 8192), Frame::Message(MSG.len()));
        let compact = b"OPTIONS sip:a@b SIP/2.0\r\nl: 0\r\n\r\n";
        assert_eq!(frame(compact, 8192, 8192), Frame::Message(compact.len()));
    }

    #[test]
    fn keepalives_are_recognised() {
        assert_eq!(frame(b"\r\n\r\n", 8192, 8192), Frame::Ping);
        assert_eq!(
            frame(b"\r\n", 8192, 8192),
            Frame::More,
            "may be half a ping"
        );
        assert_eq!(frame(b"\r\nOPTI", 8192, 8192), Frame::Crlf);
        assert_eq!(frame(b"\r\n\r", 8192, 8192), Frame::More);
        assert_eq!(frame(b"", 8192, 8192), Frame::More);
    }

    #[test]
    fn broken_framing_is_named() {
        let no_len = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert!(
            matches!(frame(no_len, 8192, 8192), Frame::Broken(w) if w.contains("missing Content-Length"))
        );
        let bad = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x1\r\n\r\n";
        assert!(matches!(frame(bad, 8192, 8192), Frame::Broken(w) if w.contains("malformed")));
        let two = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert!(matches!(frame(two, 8192, 8192), Frame::Broken(w) if w.contains("conflicting")));
        assert!(matches!(frame(MSG, 8192, 2), Frame::Broken(w) if w.contains("body of 3")));
        let long = vec![b'a'; 300];
        assert!(
            matches!(frame(&long, 256, 8192), Frame::Broken(w) if w.contains("header section"))
        );
    }
}
