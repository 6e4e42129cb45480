//! Transports: UDP sockets, TCP and TLS listeners, and the connections we open or accept.
//!
//! ```text
//!  core ──Dispatch::Send(Transmit)──▶ dispatcher ──▶ UDP socket (by the destination's family)
//!                                        │          ──▶ connection writer (by (transport, peer))
//!                                        │               └ none open: connect (TLS: handshake) first
//!  core ◀──Inbound::Message(peer, msg)── UDP receive tasks, connection readers
//!  core ◀──Inbound::SendFailed(peer)──── a connection that could not be opened or written
//!  core ◀──Inbound::Unreachable(…)─────── an ICMP error for one of our UDP datagrams
//! ```
//!
//! Transport errors (RFC 3261 17.1.4) reach the core either way: a TCP/TLS connection that
//! cannot be opened fails every transaction waiting on it, and an ICMP port/host/network
//! unreachable for a datagram (read from the UDP socket's error queue, `transport/icmp.rs`)
//! fails the client transaction whose request it quotes.
//!
//! Every received message passes the same gate ([`Gate::admit`]): the source's bad-message
//! limiter ([`crate::guard`]), the size limits (513/413), the parser (400/505); malformed
//! responses and garbage are dropped and counted. Nothing here panics on input.
//!
//! Streams (RFC 3261 18.3) are framed by `Content-Length`, which must be present; a stream
//! that breaks framing (no or bad Content-Length, a header section or body over the limits)
//! is answered once if it was a request and then closed, since the next message's start can
//! no longer be found. Keep-alives follow RFC 5626 3.5.1: a `CRLF CRLF` ping is answered with
//! a `CRLF` pong; connections we opened send a ping after `keepalive` of silence and are closed
//! when nothing comes back within `keepalive_timeout`; connections accepted from clients are
//! closed after `idle_timeout` without a byte. A header section that does not complete within
//! `message_timeout` closes the connection (slow senders cannot hold it open).
//!
//! Connections are found by `(transport, remote address)`: a response goes back on the
//! connection its request came in on (18.2.2), and a request to a client that registered over
//! TCP or TLS reuses that client's connection (NAT). The dispatcher is the only owner of the
//! connection table; connection tasks tell it when they open and close, on the same channel the
//! core sends on, so a response can never overtake its connection's registration.
//!
//! This file holds the hub: `start`, the gate, the statistics, the UDP receive tasks and the
//! dispatcher; the stream connections (accept, connect, framing, one connection's task) are in
//! `transport/stream.rs`.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::error::SipError;
use crate::guard::{BadSourceLimiter, BadSourceLimits};
use crate::msg::{self, Message};
use crate::peer::{ListenAddr, Peer, Transport};
use crate::tls::TlsConfig;
use crate::transaction::Transmit;

mod counters;
mod icmp;
mod stream;

pub use counters::{Direction, MessageCounters, CLASSES, METHODS};
use stream::{accept_loop, connect, ConnCtx};

/// Transport counters, shared with [`crate::ua::Endpoint`].
#[derive(Debug, Default)]
pub struct TransportStats {
    /// Messages that parsed as SIP.
    pub received: AtomicU64,
    /// Malformed requests answered with 400 or 505.
    pub bad_requests: AtomicU64,
    /// Messages over a size limit (requests answered with 513 or 413, the rest dropped).
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
    /// Messages the OS refused to send, or that had no connection to go on.
    pub send_errors: AtomicU64,
    /// TCP and TLS connections opened by us.
    pub connections_opened: AtomicU64,
    /// TCP and TLS connections accepted from peers.
    pub connections_accepted: AtomicU64,
    /// Connections closed (by either side, on error, idle or broken framing).
    pub connections_closed: AtomicU64,
    /// Connections refused because `max_connections` were open.
    pub connections_refused: AtomicU64,
    /// TLS handshakes that failed (either direction).
    pub tls_failures: AtomicU64,
    /// RFC 5626 keep-alive pings answered.
    pub keepalive_pongs: AtomicU64,
    /// Messages received (parsed) and sent, by method and response class.
    pub messages: MessageCounters,
    /// Client transactions started (requests we sent, ACK for 2xx aside).
    pub client_transactions: AtomicU64,
    /// Server transactions started (new requests received, ACK aside).
    pub server_transactions: AtomicU64,
    /// Messages we sent again: requests on Timer A/E, final responses on Timer G or a
    /// retransmitted request, 2xx until the ACK.
    pub retransmissions_sent: AtomicU64,
    /// Retransmitted requests received (absorbed by their server transaction).
    pub retransmissions_received: AtomicU64,
}

/// Settings for stream connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamLimits {
    /// Most TCP/TLS connections open at once (both directions); beyond it, new ones are
    /// refused (accepted and closed at once; ours fail as a transport error).
    pub max_connections: usize,
    /// Silence after which a connection we opened sends a `CRLF CRLF` ping.
    pub keepalive: Duration,
    /// How long a ping may go unanswered before the connection is closed.
    pub keepalive_timeout: Duration,
    /// Silence after which a connection a client opened is closed.
    pub idle_timeout: Duration,
    /// Longest time to connect, or to finish a TLS handshake.
    pub connect_timeout: Duration,
    /// Longest time a started message may take to arrive completely.
    pub message_timeout: Duration,
}

impl Default for StreamLimits {
    fn default() -> Self {
        Self {
            max_connections: 1024,
            keepalive: Duration::from_secs(30),
            keepalive_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(900),
            connect_timeout: Duration::from_secs(10),
            message_timeout: Duration::from_secs(32),
        }
    }
}

/// What the transport hands the core.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A parsed message and where it came from (requests already stamped with
    /// `received`/`rport`).
    Message(Peer, Message),
    /// Messages to this peer could not be delivered: the connection could not be opened, was
    /// refused, or broke while writing.
    SendFailed {
        /// The peer.
        peer: Peer,
        /// What failed, for logs.
        cause: String,
    },
    /// An ICMP error came back for a request we sent over UDP to `peer`.
    Unreachable {
        /// Where the datagram went.
        peer: Peer,
        /// The quoted request's method and top Via branch (`None` when the quote was cut
        /// before it): the client transaction to fail. Without a branch, every client
        /// transaction to `peer` fails.
        request: Option<(crate::msg::Method, Option<String>)>,
        /// What happened, e.g. `ICMP port unreachable from 127.0.0.1`.
        cause: String,
    },
}

/// What the dispatcher hears: the core's transmits and the connections' lifecycle.
#[derive(Debug)]
pub(crate) enum Dispatch {
    /// Send a message.
    Send(Transmit),
    /// The name to verify a TLS server's certificate against, for connections opened to
    /// `addr` from now on (the URI's host name; an IP address by default).
    TlsName(SocketAddr, String),
    /// A connection is open (accepted, or ours after connect and handshake).
    Opened {
        peer: Peer,
        id: u64,
        tx: mpsc::Sender<Vec<u8>>,
    },
    /// A connection closed.
    Closed { peer: Peer, id: u64 },
}

/// The core's handle for sending.
#[derive(Debug, Clone)]
pub(crate) struct Sender(mpsc::UnboundedSender<Dispatch>);

impl Sender {
    pub(crate) fn send(&self, t: Transmit) {
        let _ = self.0.send(Dispatch::Send(t));
    }

    pub(crate) fn tls_name(&self, addr: SocketAddr, name: String) {
        let _ = self.0.send(Dispatch::TlsName(addr, name));
    }
}

/// Everything [`start`] needs.
#[derive(Debug, Clone)]
pub(crate) struct TransportConfig {
    pub(crate) listen: Vec<ListenAddr>,
    pub(crate) user_agent: String,
    pub(crate) limits: msg::Limits,
    pub(crate) bad_sources: BadSourceLimits,
    pub(crate) streams: StreamLimits,
    pub(crate) tls: Option<TlsConfig>,
}

fn first_line(b: &[u8]) -> String {
    let end = b
        .iter()
        .position(|&c| c == b'\r' || c == b'\n')
        .unwrap_or(b.len())
        .min(200);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// The checks every received message passes, shared by all receive tasks.
struct Gate {
    limiter: Mutex<BadSourceLimiter>,
    limits: msg::Limits,
    user_agent: String,
    stats: Arc<TransportStats>,
}

/// What to do with a received message.
enum Admit {
    Deliver(Message),
    /// Answer this (400/505/513/413) to the source; for streams, then close.
    Reply(Vec<u8>),
    Drop,
}

impl Gate {
    fn limiter(&self) -> std::sync::MutexGuard<'_, BadSourceLimiter> {
        // A panic while holding the lock cannot leave the limiter inconsistent (plain counters).
        self.limiter
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn accepts(&self, now: Instant, ip: IpAddr) -> bool {
        if self.limiter().accepts(now, ip) {
            true
        } else {
            self.stats.rate_limited.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    fn bad(&self, now: Instant, src: SocketAddr) {
        if self.limiter().handle_bad(now, src.ip()) {
            warn!(source = %src.ip(), "too many bad SIP messages; ignoring the source for a while");
        }
    }

    /// Size limits, then the parser. `data` is one datagram or one framed stream message.
    fn admit(&self, now: Instant, src: Peer, data: &[u8]) -> Admit {
        let stats = &self.stats;
        if let Err(e) = msg::check_size(data, &self.limits) {
            stats.too_large.fetch_add(1, Ordering::Relaxed);
            self.bad(now, src.addr);
            debug!(%src, error = %e, "oversized message");
            return match msg::reject_malformed(data, &e, &self.user_agent) {
                Some(p) => Admit::Reply(p),
                None => Admit::Drop,
            };
        }
        match msg::parse(data) {
            Ok(mut m) => {
                stats.received.fetch_add(1, Ordering::Relaxed);
                stats.messages.count(Direction::Rx, data);
                debug!(%src, line = %first_line(data), "sip rx");
                crate::trace::observe("rx", src, data);
                if let Message::Request(r) = &mut m {
                    r.stamp_received(src.addr);
                }
                Admit::Deliver(m)
            }
            Err(e) => {
                self.bad(now, src.addr);
                match msg::reject_malformed(data, &e, &self.user_agent) {
                    Some(payload) => {
                        stats.bad_requests.fetch_add(1, Ordering::Relaxed);
                        debug!(%src, error = %e, "malformed request, answering 400/505");
                        Admit::Reply(payload)
                    }
                    // RFC 3261 / RFC 4475 3.1.2.5, 3.1.2.19: a malformed response is dropped.
                    None if data.trim_ascii_start().starts_with(b"SIP/") => {
                        stats.invalid_responses.fetch_add(1, Ordering::Relaxed);
                        debug!(%src, error = %e, "malformed response dropped");
                        Admit::Drop
                    }
                    None => {
                        stats.dropped.fetch_add(1, Ordering::Relaxed);
                        debug!(%src, error = %e, "malformed message dropped");
                        Admit::Drop
                    }
                }
            }
        }
    }
}

/// Binds every listener (so that errors surface now, naming the address) and spawns the
/// receive, accept and dispatch tasks on the current runtime. Returns the bound addresses (port
/// 0 resolved), the core's inbound receiver and its sender. The tasks stop when `cancel` fires.
pub(crate) async fn start(
    cfg: TransportConfig,
    cancel: CancellationToken,
    stats: Arc<TransportStats>,
) -> Result<(Vec<ListenAddr>, mpsc::Receiver<Inbound>, Sender), SipError> {
    let io = |addr: SocketAddr| move |error| SipError::Io { addr, error };
    let mut udp = Vec::new();
    let mut streams = Vec::new();
    let mut bound = Vec::new();
    for l in &cfg.listen {
        match l.transport {
            Transport::Udp => {
                let s = UdpSocket::bind(l.addr).await.map_err(io(l.addr))?;
                let addr = s.local_addr().map_err(io(l.addr))?;
                if let Err(e) = icmp::enable(&s) {
                    warn!(listener = %addr, error = %e, "cannot read ICMP errors (IP_RECVERR): unreachable peers will time out instead");
                }
                bound.push(ListenAddr::udp(addr));
                udp.push(Arc::new(s));
            }
            Transport::Tcp | Transport::Tls => {
                if l.transport == Transport::Tls
                    && cfg.tls.as_ref().and_then(|t| t.server.as_ref()).is_none()
                {
                    return Err(SipError::Tls(format!(
                        "listener {l} needs a certificate and key ([sip.tls] cert, key)"
                    )));
                }
                let s = TcpListener::bind(l.addr).await.map_err(io(l.addr))?;
                let addr = s.local_addr().map_err(io(l.addr))?;
                bound.push(ListenAddr {
                    transport: l.transport,
                    addr,
                });
                streams.push((l.transport, s));
            }
        }
    }
    let gate = Arc::new(Gate {
        limiter: Mutex::new(BadSourceLimiter::new(cfg.bad_sources)),
        limits: cfg.limits,
        user_agent: cfg.user_agent.clone(),
        stats: stats.clone(),
    });
    let (in_tx, in_rx) = mpsc::channel(1024);
    let (d_tx, d_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(ConnCtx {
        gate: gate.clone(),
        inbound: in_tx.clone(),
        dispatch: d_tx.clone(),
        limits: cfg.streams,
        stats: stats.clone(),
        cancel: cancel.clone(),
        next_id: AtomicU64::new(1),
        open: AtomicU64::new(0),
        max_header: cfg.limits.max_header_bytes,
        max_body: cfg.limits.max_body_bytes,
    });
    for s in &udp {
        tokio::spawn(udp_receive(
            s.clone(),
            gate.clone(),
            in_tx.clone(),
            d_tx.clone(),
            cfg.limits.max_message_bytes,
            cancel.clone(),
        ));
    }
    for (transport, listener) in streams {
        let acceptor = match transport {
            Transport::Tls => cfg
                .tls
                .as_ref()
                .and_then(|t| t.server.clone())
                .map(tokio_rustls::TlsAcceptor::from),
            _ => None,
        };
        tokio::spawn(accept_loop(transport, listener, acceptor, ctx.clone()));
    }
    let dispatcher = Dispatcher {
        udp,
        conns: HashMap::new(),
        tls_names: HashMap::new(),
        tls_client: cfg
            .tls
            .as_ref()
            .map(|t| tokio_rustls::TlsConnector::from(t.client.clone())),
        ctx,
    };
    tokio::spawn(dispatcher.run(d_rx));
    for b in &bound {
        info!(listener = %b, "SIP listening");
    }
    Ok((bound, in_rx, Sender(d_tx)))
}

async fn udp_receive(
    socket: Arc<UdpSocket>,
    gate: Arc<Gate>,
    inbound: mpsc::Sender<Inbound>,
    dispatch: mpsc::UnboundedSender<Dispatch>,
    max_message_bytes: usize,
    cancel: CancellationToken,
) {
    // One byte more than the limit, so that a larger datagram shows (cut) as too large.
    let mut buf = vec![0u8; max_message_bytes.saturating_add(1).min(65_536)];
    loop {
        let (n, src) = tokio::select! {
            _ = cancel.cancelled() => break,
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(error = %e, "sip recv error");
                    // The socket's pending error, set by an ICMP error whose details wait in
                    // the error queue: read the queue now. The error-queue readiness below
                    // may not fire for it (observed: several ICMP errors sat in the queue
                    // until a later one woke the branch, so an unreachable peer was seen
                    // seconds late), and the queue is what names the transaction.
                    if icmp::is_stale_icmp(&e) && drain_error_queue(&socket, &inbound).await.is_err() {
                        break;
                    }
                    continue;
                }
            },
            r = socket.async_io(Interest::ERROR, || icmp::recv_error(&socket)) => {
                match r {
                    Ok(err) => {
                        if icmp_error(err, &inbound).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => debug!(error = %e, "sip error queue"),
                }
                continue;
            }
        };
        let now = Instant::now();
        if !gate.accepts(now, src.ip()) {
            continue;
        }
        let peer = Peer::udp(src);
        match gate.admit(now, peer, &buf[..n]) {
            Admit::Deliver(m) => {
                if inbound.send(Inbound::Message(peer, m)).await.is_err() {
                    break;
                }
            }
            Admit::Reply(payload) => {
                let _ = dispatch.send(Dispatch::Send(Transmit {
                    dest: peer,
                    payload,
                }));
            }
            Admit::Drop => {}
        }
    }
}

/// Reads every entry of `socket`'s error queue now (without waiting) and hands each to the
/// core. `Err` when the core is gone.
async fn drain_error_queue(socket: &UdpSocket, inbound: &mpsc::Sender<Inbound>) -> Result<(), ()> {
    // Bounded: a queue refilled as fast as it is read cannot hold the loop.
    for _ in 0..64 {
        match icmp::recv_error(socket) {
            Ok(err) => icmp_error(err, inbound).await?,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
            Err(e) => {
                debug!(error = %e, "sip error queue");
                break;
            }
        }
    }
    Ok(())
}

/// Hands an ICMP error about one of our datagrams to the core (requests only; one about a
/// response or an ACK has no transaction to fail). `Err` when the core is gone.
async fn icmp_error(err: icmp::IcmpError, inbound: &mpsc::Sender<Inbound>) -> Result<(), ()> {
    let Some(dest) = err.dest else {
        debug!(cause = %err.cause, "ICMP error without a destination");
        return Ok(());
    };
    let request = icmp::quoted_request(&err.quoted);
    debug!(%dest, cause = %err.cause, ?request, "ICMP error for a SIP datagram");
    if !err.unreachable {
        return Ok(());
    }
    let quoted_response = request.is_none() && err.quoted.starts_with(b"SIP/");
    if quoted_response {
        return Ok(());
    }
    let msg = Inbound::Unreachable {
        peer: Peer::udp(dest),
        request,
        cause: err.cause,
    };
    inbound.send(msg).await.map_err(|_| ())
}

struct Conn {
    id: u64,
    tx: mpsc::Sender<Vec<u8>>,
}

struct Dispatcher {
    udp: Vec<Arc<UdpSocket>>,
    conns: HashMap<Peer, Conn>,
    tls_names: HashMap<SocketAddr, String>,
    tls_client: Option<tokio_rustls::TlsConnector>,
    ctx: Arc<ConnCtx>,
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Dispatch>) {
        loop {
            let d = tokio::select! {
                _ = self.ctx.cancel.cancelled() => break,
                d = rx.recv() => match d { Some(d) => d, None => break },
            };
            match d {
                Dispatch::Send(t) => self.send(t).await,
                Dispatch::TlsName(addr, name) => {
                    self.tls_names.insert(addr, name);
                }
                Dispatch::Opened { peer, id, tx } => {
                    // A newer connection from the same address replaces an older one.
                    self.conns.insert(peer, Conn { id, tx });
                }
                Dispatch::Closed { peer, id } => {
                    if self.conns.get(&peer).is_some_and(|c| c.id == id) {
                        self.conns.remove(&peer);
                    }
                }
            }
        }
    }

    /// The UDP socket to send to `dest` from: the first of its family whose address is
    /// loopback exactly when `dest` is, else the first of its family.
    fn udp_for(&self, dest: SocketAddr) -> Option<&Arc<UdpSocket>> {
        let family =
            |s: &&Arc<UdpSocket>| s.local_addr().is_ok_and(|a| a.is_ipv4() == dest.is_ipv4());
        let same_scope = |s: &&Arc<UdpSocket>| {
            s.local_addr().is_ok_and(|a| {
                a.ip().is_unspecified() || a.ip().is_loopback() == dest.ip().is_loopback()
            })
        };
        self.udp
            .iter()
            .filter(family)
            .find(same_scope)
            .or_else(|| self.udp.iter().find(family))
    }

    async fn send(&mut self, t: Transmit) {
        let stats = &self.ctx.stats;
        stats.messages.count(Direction::Tx, &t.payload);
        crate::trace::observe("tx", t.dest, &t.payload);
        match t.dest.transport {
            Transport::Udp => {
                let Some(sock) = self.udp_for(t.dest.addr) else {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(dest = %t.dest, "no UDP listener of the destination's address family");
                    let _ = self.ctx.inbound.try_send(Inbound::SendFailed {
                        peer: t.dest,
                        cause: format!("no UDP listener of {}'s address family", t.dest.addr),
                    });
                    return;
                };
                debug!(dest = %t.dest, line = %first_line(&t.payload), "sip tx");
                let mut sent = sock.send_to(&t.payload, t.dest.addr).await;
                for _ in 0..3 {
                    if !sent.as_ref().is_err_and(icmp::is_stale_icmp) {
                        break;
                    }
                    // The socket's pending error from an earlier ICMP error (any peer's):
                    // this datagram was not sent. Reporting the error cleared it (another
                    // queued ICMP error may set it again: a few tries).
                    sent = sock.send_to(&t.payload, t.dest.addr).await;
                }
                if let Err(e) = sent {
                    stats.send_errors.fetch_add(1, Ordering::Relaxed);
                    warn!(dest = %t.dest, error = %e, "sip send failed");
                    // About this datagram (no route, …): its transaction fails now (17.1.4).
                    if let Some(request) = icmp::quoted_request(&t.payload) {
                        let _ = self.ctx.inbound.try_send(Inbound::Unreachable {
                            peer: t.dest,
                            request: Some(request),
                            cause: format!("sending to {} failed: {e}", t.dest.addr),
                        });
                    }
                }
            }
            Transport::Tcp | Transport::Tls => {
                if let Some(c) = self.conns.get(&t.dest) {
                    match c.tx.try_send(t.payload) {
                        Ok(()) => return,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            stats.send_errors.fetch_add(1, Ordering::Relaxed);
                            warn!(dest = %t.dest, "SIP connection's send queue is full");
                            let _ = self.ctx.inbound.try_send(Inbound::SendFailed {
                                peer: t.dest,
                                cause: format!("the connection to {}'s send queue is full", t.dest),
                            });
                            return;
                        }
                        Err(mpsc::error::TrySendError::Closed(p)) => {
                            // Closing: open a new one below (ours) with this message.
                            self.conns.remove(&t.dest);
                            self.open(t.dest, p);
                            return;
                        }
                    }
                }
                self.open(t.dest, t.payload);
            }
        }
    }

    /// Starts a connection to `dest` with `first` queued on it.
    fn open(&mut self, dest: Peer, first: Vec<u8>) {
        let tls = if dest.transport == Transport::Tls {
            let Some(connector) = self.tls_client.clone() else {
                self.ctx.stats.send_errors.fetch_add(1, Ordering::Relaxed);
                let _ = self.ctx.inbound.try_send(Inbound::SendFailed {
                    peer: dest,
                    cause: "no TLS client configuration ([sip.tls])".into(),
                });
                return;
            };
            let name = self
                .tls_names
                .get(&dest.addr)
                .and_then(|n| ServerName::try_from(n.clone()).ok())
                .unwrap_or_else(|| ServerName::IpAddress(dest.addr.ip().into()));
            Some((connector, name))
        } else {
            None
        };
        let id = self.ctx.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(256);
        let _ = tx.try_send(first);
        self.conns.insert(dest, Conn { id, tx });
        tokio::spawn(connect(dest, id, rx, tls, self.ctx.clone()));
    }
}
