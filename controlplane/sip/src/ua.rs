//! The user-agent API the rest of callbridge uses: [`Endpoint`], [`OutgoingCall`],
//! [`IncomingCall`], [`LegController`], [`LegEvent`].
//!
//! One tokio task (the *core*) owns every transaction, dialog and leg; handles talk to it over
//! an unbounded command channel, and each leg reports over its own event channel. The core
//! sleeps until the earliest sans-IO deadline (`poll_timeout`) or the next datagram/command.
//!
//! Leg lifecycle and events:
//! * outgoing: `Progress*` → `Answered` → (`Bye` | `Ended` after our hangup); or `Rejected`,
//!   `Timeout`. A hangup before the answer yields `Ended` once the CANCEL completed (the 487 was
//!   ACKed), or once the late 2xx was ACKed and BYEd. After the last event, `event()` is `None`.
//! * incoming: `Cancelled` | `Bye` | `Ended` (our hangup finished) | `Timeout` (no ACK for our
//!   2xx; we sent BYE). After `reject()` no event follows; `event()` returns `None`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::dialog::{Dialog, Uas2xxEvent, Uas2xxRetransmitter};
use crate::error::SipError;
use crate::msg::{self, HasHeaders, Message, Method, NameAddr, Request, Response};
use crate::transaction::{
    ClientEvent, ClientTransaction, ServerTransaction, Timers, TransactionKey, Transmit,
};
use crate::transport::{self, TransportStats};

const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS";

/// Endpoint configuration.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Local UDP address to bind (port 0 picks one). An unspecified IP (0.0.0.0) is advertised
    /// in Via/Contact as 127.0.0.1.
    pub listen: SocketAddr,
    /// User-Agent / Server header value.
    pub user_agent: String,
    /// T1, T2, T4.
    pub timers: Timers,
}

impl EndpointConfig {
    /// Config with RFC timers and the default user agent.
    pub fn new(listen: SocketAddr) -> Self {
        Self {
            listen,
            user_agent: format!("callbridge/{}", env!("CARGO_PKG_VERSION")),
            timers: Timers::default(),
        }
    }
}

/// What to call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteRequest {
    /// Request-URI, e.g. `sip:+15551234567@127.0.0.1:5080` (host must be an IP literal or localhost).
    pub target: String,
    /// User part of our From/Contact.
    pub from_user: String,
    /// Display name of our From.
    pub from_display: Option<String>,
    /// SDP offer (empty for no body).
    pub sdp: String,
    /// Extra headers, e.g. `("X-Callbridge-Call", id)`.
    pub headers: Vec<(String, String)>,
}

/// Something that happened on a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LegEvent {
    /// A 1xx other than 100 (180, 183), with its SDP if any.
    Progress {
        /// Status code.
        status: u16,
        /// Early-media SDP.
        sdp: Option<String>,
    },
    /// A 2xx arrived and was ACKed.
    Answered {
        /// The answer SDP (empty if the 2xx had no body).
        sdp: String,
    },
    /// A non-2xx final response (already ACKed by the transaction).
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No final response (Timer B) on an outgoing leg, or no ACK for our 2xx on an incoming leg.
    Timeout,
    /// The caller CANCELled our unanswered incoming call.
    Cancelled,
    /// The remote sent BYE (we answered 200).
    Bye,
    /// Our hangup finished.
    Ended,
}

/// Leg id inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct LegId(u64);

#[derive(Debug)]
enum Cmd {
    Invite {
        leg: LegId,
        request: Request,
        dest: SocketAddr,
        events: mpsc::UnboundedSender<LegEvent>,
    },
    Hangup(LegId),
    Ring(LegId),
    Answer(LegId, String),
    Reject(LegId, u16),
}

struct Inner {
    local: SocketAddr,
    user_agent: String,
    cmd: mpsc::UnboundedSender<Cmd>,
    cancel: CancellationToken,
    stats: Arc<TransportStats>,
    next_leg: std::sync::atomic::AtomicU64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// A SIP endpoint on one UDP socket. Cheap to clone. Dropping the last clone shuts it down
/// (like [`Endpoint::shutdown`]), so keep one alive while calls are up.
#[derive(Clone)]
pub struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local", &self.inner.local)
            .finish()
    }
}

impl Endpoint {
    /// Binds UDP and spawns the transport and core tasks on the current tokio runtime.
    /// Incoming calls arrive on the returned receiver (capacity 64; when it is full or dropped,
    /// new INVITEs get 486/480).
    ///
    /// # Errors
    /// [`SipError::Io`] if the socket cannot be bound.
    pub async fn bind(
        cfg: EndpointConfig,
    ) -> Result<(Self, mpsc::Receiver<IncomingCall>), SipError> {
        let socket = UdpSocket::bind(cfg.listen)
            .await
            .map_err(|source| SipError::Io {
                addr: cfg.listen,
                source,
            })?;
        let mut local = socket.local_addr().map_err(|source| SipError::Io {
            addr: cfg.listen,
            source,
        })?;
        if local.ip().is_unspecified() {
            local.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        let cancel = CancellationToken::new();
        let stats = Arc::new(TransportStats::default());
        let (inbound, out) = transport::spawn(
            Arc::new(socket),
            cancel.child_token(),
            cfg.user_agent.clone(),
            stats.clone(),
        );
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::channel(64);
        let inner = Arc::new(Inner {
            local,
            user_agent: cfg.user_agent.clone(),
            cmd: cmd_tx.clone(),
            cancel: cancel.clone(),
            stats,
            next_leg: std::sync::atomic::AtomicU64::new(1),
        });
        let core = Core {
            local,
            ua: cfg.user_agent,
            timers: cfg.timers,
            out,
            incoming: incoming_tx,
            cmd: cmd_tx,
            clients: HashMap::new(),
            servers: HashMap::new(),
            legs: HashMap::new(),
            by_dialog: HashMap::new(),
            timers_heap: BinaryHeap::new(),
            inner: Arc::downgrade(&inner),
        };
        tokio::spawn(core.run(inbound, cmd_rx, cancel));
        info!(%local, "SIP endpoint bound");
        Ok((Self { inner }, incoming_rx))
    }

    /// The bound address (as advertised in Via/Contact).
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local
    }

    /// Malformed datagrams seen so far: `(answered with 400, dropped)`.
    pub fn malformed_counts(&self) -> (u64, u64) {
        let s = &self.inner.stats;
        (
            s.bad_requests.load(Ordering::Relaxed),
            s.dropped.load(Ordering::Relaxed),
        )
    }

    /// Sends an INVITE now.
    ///
    /// # Errors
    /// [`SipError::InvalidUri`] if the target is not a `sip:` URI with an IP-literal host;
    /// [`SipError::Shutdown`] after [`Self::shutdown`].
    pub fn invite(&self, req: InviteRequest) -> Result<OutgoingCall, SipError> {
        let dest = msg::uri_addr(&req.target)?;
        if self.inner.cancel.is_cancelled() {
            return Err(SipError::Shutdown);
        }
        let local = self.inner.local;
        let call_id = msg::new_call_id(local.ip());
        let tag = msg::new_tag();
        let target = req
            .target
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_string();
        let me = format!("sip:{}@{}", req.from_user, local);
        let mut r = Request::new(Method::Invite, target.clone());
        r.headers
            .push("Via", msg::via_value(local, &msg::new_branch()));
        r.headers.push("Max-Forwards", "70");
        let from = match &req.from_display {
            Some(d) => format!(
                "\"{}\" <{me}>;tag={tag}",
                d.replace('\\', "\\\\").replace('"', "\\\"")
            ),
            None => format!("<{me}>;tag={tag}"),
        };
        r.headers.push("From", from);
        r.headers.push("To", format!("<{target}>"));
        r.headers.push("Call-ID", call_id.clone());
        r.headers.push("CSeq", "1 INVITE");
        r.headers.push("Contact", format!("<{me}>"));
        r.headers.push("User-Agent", self.inner.user_agent.clone());
        r.headers.push("Allow", ALLOW);
        for (n, v) in req.headers {
            r.headers.push(n, v);
        }
        if !req.sdp.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = req.sdp.into_bytes();
        }
        let leg = LegId(self.inner.next_leg.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        self.inner
            .cmd
            .send(Cmd::Invite {
                leg,
                request: r,
                dest,
                events: tx,
            })
            .map_err(|_| SipError::Shutdown)?;
        Ok(OutgoingCall {
            call_id,
            events: rx,
            ctl: LegController {
                leg,
                cmd: self.inner.cmd.clone(),
            },
        })
    }

    /// Stops the transport and core tasks. Legs are dropped without signalling; their
    /// `event()` returns `None`.
    pub fn shutdown(&self) {
        self.inner.cancel.cancel();
    }
}

/// An outgoing leg.
#[derive(Debug)]
pub struct OutgoingCall {
    call_id: String,
    events: mpsc::UnboundedReceiver<LegEvent>,
    ctl: LegController,
}

impl OutgoingCall {
    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The next event; `None` once the leg is fully over.
    pub async fn event(&mut self) -> Option<LegEvent> {
        self.events.recv().await
    }

    /// A handle for hanging up from elsewhere.
    pub fn controller(&self) -> LegController {
        self.ctl.clone()
    }
}

/// Hangs up a leg from anywhere. Clone + Send.
#[derive(Debug, Clone)]
pub struct LegController {
    leg: LegId,
    cmd: mpsc::UnboundedSender<Cmd>,
}

impl LegController {
    /// Ends the leg, idempotently. Outgoing: before any provisional, remembered and a CANCEL
    /// sent once a 1xx arrives (RFC 3261 9.1), or ACK+BYE if a 2xx arrives; early: CANCEL;
    /// confirmed: BYE. Incoming: unanswered → 603 Decline; answered → BYE (after the ACK).
    /// Ends with [`LegEvent::Ended`].
    pub fn hangup(&self) {
        let _ = self.cmd.send(Cmd::Hangup(self.leg));
    }
}

/// An incoming INVITE, delivered by [`Endpoint::bind`]'s receiver. `100 Trying` was already sent.
#[derive(Debug)]
pub struct IncomingCall {
    /// Call-ID.
    pub call_id: String,
    /// From header value.
    pub from: String,
    /// To header value (without our tag).
    pub to: String,
    /// Request-URI.
    pub request_uri: String,
    /// Where the INVITE came from.
    pub source: SocketAddr,
    /// The SDP offer, if any.
    pub sdp: Option<String>,
    /// All headers of the INVITE, in order (e.g. to read `X-` headers).
    pub headers: Vec<(String, String)>,
    events: mpsc::UnboundedReceiver<LegEvent>,
    ctl: LegController,
}

impl IncomingCall {
    /// Sends 180 Ringing.
    pub fn ring(&self) {
        let _ = self.ctl.cmd.send(Cmd::Ring(self.ctl.leg));
    }

    /// Sends 200 OK with `sdp`, retransmitted until the ACK arrives.
    pub fn answer(&self, sdp: String) {
        let _ = self.ctl.cmd.send(Cmd::Answer(self.ctl.leg, sdp));
    }

    /// Sends a final error response (e.g. 486, 603). A status outside 300..=699 becomes 500.
    pub fn reject(&self, status: u16) {
        let _ = self.ctl.cmd.send(Cmd::Reject(self.ctl.leg, status));
    }

    /// The next event; `None` once the leg is over.
    pub async fn event(&mut self) -> Option<LegEvent> {
        self.events.recv().await
    }

    /// A handle for hanging up (BYE) from elsewhere.
    pub fn controller(&self) -> LegController {
        self.ctl.clone()
    }
}

impl Drop for IncomingCall {
    /// An incoming call dropped before `answer`/`reject` is rejected with 480 so the INVITE
    /// transaction does not linger (after an answer or reject this does nothing).
    fn drop(&mut self) {
        let _ = self.ctl.cmd.send(Cmd::Reject(self.ctl.leg, 480));
    }
}

/// What a timer-heap entry refers to. Entries are checked lazily: a popped entry whose owner's
/// `poll_timeout` is no longer due is ignored (each drive pushes the current deadline).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Client(TxKeyOrd),
    Server(TxKeyOrd),
    Leg(u64),
}

/// [`TransactionKey`] with an arbitrary but total order, for the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TxKeyOrd(TransactionKey);

impl PartialOrd for TxKeyOrd {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for TxKeyOrd {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (&self.0.branch, self.0.method.as_str(), &self.0.sent_by).cmp(&(
            &other.0.branch,
            other.0.method.as_str(),
            &other.0.sent_by,
        ))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Invite,
    Cancel,
    Bye,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// UAC: INVITE sent. UAS: INVITE received, not answered.
    Initial,
    /// UAC: a provisional arrived.
    Early,
    /// Dialog confirmed (UAS: 2xx sent; ACK may still be outstanding, see `retrans`).
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

struct Leg {
    uac: bool,
    events: mpsc::UnboundedSender<LegEvent>,
    call_id: String,
    local_tag: String,
    state: LegState,
    invite: Request,
    invite_key: TransactionKey,
    /// UAC: where the INVITE went. UAS: where responses go.
    dest: SocketAddr,
    dialog: Option<Dialog>,
    hangup: bool,
    cancel_sent: bool,
    ack: Option<Transmit>,
    retrans: Option<Uas2xxRetransmitter>,
    bye_pending: bool,
    /// The SDP we last sent (our offer, or our answer); re-used to answer session refreshes.
    local_sdp: Vec<u8>,
}

impl Leg {
    fn emit(&self, ev: LegEvent) {
        debug!(call_id = %self.call_id, ?ev, "leg event");
        let _ = self.events.send(ev);
    }
}

struct Core {
    local: SocketAddr,
    ua: String,
    timers: Timers,
    out: mpsc::UnboundedSender<Transmit>,
    incoming: mpsc::Sender<IncomingCall>,
    cmd: mpsc::UnboundedSender<Cmd>,
    clients: HashMap<TransactionKey, (ClientTransaction, Option<LegId>, Role)>,
    servers: HashMap<TransactionKey, (ServerTransaction, Option<LegId>)>,
    legs: HashMap<LegId, Leg>,
    by_dialog: HashMap<(String, String), LegId>,
    timers_heap: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    inner: std::sync::Weak<Inner>,
}

impl Core {
    async fn run(
        mut self,
        mut inbound: mpsc::Receiver<(SocketAddr, Message)>,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        cancel: CancellationToken,
    ) {
        loop {
            let deadline = self.next_deadline();
            let sleep = async move {
                match deadline {
                    Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                m = inbound.recv() => match m {
                    Some((src, m)) => self.handle_message(Instant::now(), src, m),
                    None => break,
                },
                Some(c) = cmds.recv() => self.handle_cmd(Instant::now(), c),
                _ = sleep => self.handle_timers(Instant::now()),
            }
        }
        debug!(local = %self.local, "SIP core stopped");
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.timers_heap.peek().map(|Reverse((at, _))| *at)
    }

    fn schedule(&mut self, at: Option<Instant>, r: TimerRef) {
        if let Some(at) = at {
            self.timers_heap.push(Reverse((at, r)));
        }
    }

    fn send(&self, t: Transmit) {
        let _ = self.out.send(t);
    }

    fn remove_leg(&mut self, id: LegId) {
        if let Some(leg) = self.legs.remove(&id) {
            self.by_dialog.remove(&(leg.call_id, leg.local_tag));
        }
    }

    fn via(&self) -> String {
        msg::via_value(self.local, &msg::new_branch())
    }

    fn contact(&self, user: &str) -> String {
        format!("<sip:{user}@{}>", self.local)
    }

    // ---- timers -------------------------------------------------------------------------

    fn handle_timers(&mut self, now: Instant) {
        while let Some(Reverse((at, _))) = self.timers_heap.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, r))) = self.timers_heap.pop() else {
                break;
            };
            let due = |t: Option<Instant>| t.is_some_and(|t| t <= now);
            match r {
                TimerRef::Client(TxKeyOrd(k)) => {
                    let Some((t, _, _)) = self.clients.get_mut(&k) else {
                        continue;
                    };
                    if due(t.poll_timeout()) {
                        t.handle_timeout(now);
                        self.drive_client(now, &k);
                    }
                }
                TimerRef::Server(TxKeyOrd(k)) => {
                    let Some((t, _)) = self.servers.get_mut(&k) else {
                        continue;
                    };
                    if due(t.poll_timeout()) {
                        t.handle_timeout(now);
                        self.drive_server(&k);
                    }
                }
                TimerRef::Leg(id) => self.leg_timer(now, LegId(id)),
            }
        }
    }

    fn leg_timer(&mut self, now: Instant, id: LegId) {
        let mut transmits = Vec::new();
        let mut no_ack = false;
        let Some(r) = self.legs.get_mut(&id).and_then(|l| l.retrans.as_mut()) else {
            return;
        };
        if matches!(r.poll_timeout(), Some(t) if t > now) || r.poll_timeout().is_none() {
            return;
        }
        r.handle_timeout(now);
        while let Some(t) = r.poll_transmit() {
            transmits.push(t);
        }
        while let Some(Uas2xxEvent::NoAck) = r.poll_event() {
            no_ack = true;
        }
        let next = r.poll_timeout();
        self.schedule(next, TimerRef::Leg(id.0));
        for t in transmits {
            self.send(t);
        }
        if no_ack {
            warn!("no ACK for our 2xx within 64*T1; sending BYE");
            if let Some(leg) = self.legs.get(&id) {
                leg.emit(LegEvent::Timeout);
            }
            self.send_bye(now, id, false);
            self.remove_leg(id);
        }
    }

    // ---- transaction plumbing -------------------------------------------------------------

    fn drive_client(&mut self, now: Instant, key: &TransactionKey) {
        let Some((t, leg, role)) = self.clients.get_mut(key) else {
            return;
        };
        let (leg, role) = (*leg, *role);
        let mut transmits = Vec::new();
        while let Some(x) = t.poll_transmit() {
            transmits.push(x);
        }
        let mut events = Vec::new();
        while let Some(e) = t.poll_event() {
            events.push(e);
        }
        if t.is_terminated() {
            self.clients.remove(key);
        } else {
            let next = t.poll_timeout();
            self.schedule(next, TimerRef::Client(TxKeyOrd(key.clone())));
        }
        for x in transmits {
            self.send(x);
        }
        if let Some(leg) = leg {
            for e in events {
                self.client_event(now, leg, role, e);
            }
        }
    }

    fn drive_server(&mut self, key: &TransactionKey) {
        let Some((t, _)) = self.servers.get_mut(key) else {
            return;
        };
        let mut transmits = Vec::new();
        while let Some(x) = t.poll_transmit() {
            transmits.push(x);
        }
        while t.poll_event().is_some() {} // AckReceived / Timeout: nothing for the TU to do
        if t.is_terminated() {
            self.servers.remove(key);
        } else {
            let next = t.poll_timeout();
            self.schedule(next, TimerRef::Server(TxKeyOrd(key.clone())));
        }
        for x in transmits {
            self.send(x);
        }
    }

    fn start_client(
        &mut self,
        now: Instant,
        req: Request,
        dest: SocketAddr,
        leg: Option<LegId>,
        role: Role,
    ) {
        let t = ClientTransaction::new(now, req, dest, self.timers);
        let key = t.key().clone();
        self.clients.insert(key.clone(), (t, leg, role));
        self.drive_client(now, &key);
    }

    /// Sends a response through the server transaction `key`.
    fn respond(&mut self, now: Instant, key: &TransactionKey, mut resp: Response) -> bool {
        resp.headers.push("Server", self.ua.clone());
        let Some((t, _)) = self.servers.get_mut(key) else {
            return false;
        };
        let ok = t.send_response(now, &resp);
        self.drive_server(key);
        ok
    }

    // ---- client side events -----------------------------------------------------------------

    fn client_event(&mut self, now: Instant, id: LegId, role: Role, ev: ClientEvent) {
        let Some(leg) = self.legs.get_mut(&id) else {
            // Leg gone: a late 2xx to our INVITE still deserves nothing more than the ACK we
            // already sent (the leg keeps it while it lives).
            return;
        };
        match (role, ev) {
            (Role::Invite, ClientEvent::Provisional(resp)) => {
                if leg.hangup && !leg.cancel_sent {
                    leg.state = LegState::Early;
                    self.send_cancel(now, id);
                } else if resp.status > 100 && !leg.hangup {
                    leg.state = LegState::Early;
                    leg.emit(LegEvent::Progress {
                        status: resp.status,
                        sdp: resp.body_text(),
                    });
                } else {
                    leg.state = LegState::Early;
                }
            }
            (Role::Invite, ClientEvent::Final(resp)) if resp.status < 300 => {
                if let Some(ack) = &leg.ack {
                    // A retransmitted 2xx (same dialog): re-send our ACK (13.2.2.4).
                    let same =
                        leg.dialog.as_ref().map(|d| d.id().remote_tag.clone()) == resp.to_tag();
                    if same {
                        let ack = ack.clone();
                        self.send(ack);
                    } else {
                        debug!("2xx from another fork ignored");
                    }
                    return;
                }
                let dialog = match Dialog::uac_from_2xx(&leg.invite, &resp) {
                    Ok(d) => d,
                    Err(e) => {
                        warn!(error = %e, "unusable 2xx");
                        leg.emit(LegEvent::Rejected {
                            status: 502,
                            reason: format!("unusable 2xx: {e}"),
                        });
                        self.remove_leg(id);
                        return;
                    }
                };
                let mut ack = dialog.ack_for_2xx(
                    leg.invite.cseq().0,
                    msg::via_value(self.local, &msg::new_branch()),
                );
                ack.headers.push("User-Agent", self.ua.clone());
                let dest = dialog.destination().unwrap_or(leg.dest);
                let t = Transmit {
                    dest,
                    payload: ack.encode(),
                };
                leg.ack = Some(t.clone());
                leg.dialog = Some(dialog);
                self.send(t);
                let Some(leg) = self.legs.get_mut(&id) else {
                    return;
                };
                if leg.hangup {
                    self.send_bye(now, id, true);
                } else {
                    leg.state = LegState::Confirmed;
                    leg.emit(LegEvent::Answered {
                        sdp: resp.body_text().unwrap_or_default(),
                    });
                }
            }
            (Role::Invite, ClientEvent::Final(resp)) => {
                if leg.hangup {
                    leg.emit(LegEvent::Ended);
                } else {
                    leg.emit(LegEvent::Rejected {
                        status: resp.status,
                        reason: resp.reason.clone(),
                    });
                }
                self.remove_leg(id);
            }
            (Role::Invite, ClientEvent::Timeout) => {
                leg.emit(if leg.hangup {
                    LegEvent::Ended
                } else {
                    LegEvent::Timeout
                });
                self.remove_leg(id);
            }
            (Role::Cancel, ClientEvent::Timeout) => {
                // 9.1: no final response to the INVITE within 64*T1 of the CANCEL: give up.
                if leg.dialog.is_none() {
                    leg.emit(LegEvent::Ended);
                    self.remove_leg(id);
                }
            }
            (Role::Cancel, _) => {} // the INVITE's 487 drives the leg
            (Role::Bye, ClientEvent::Provisional(_)) => {}
            (Role::Bye, ClientEvent::Final(_) | ClientEvent::Timeout) => {
                leg.emit(LegEvent::Ended);
                self.remove_leg(id);
            }
        }
    }

    fn send_cancel(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.cancel_sent = true;
        let inv = &leg.invite;
        let mut c = Request::new(Method::Cancel, inv.uri.clone());
        if let Some(v) = inv.headers.get_list("Via").next() {
            c.headers.push("Via", v);
        }
        c.headers.push("Max-Forwards", "70");
        for h in ["From", "To", "Call-ID"] {
            if let Some(v) = inv.headers.get(h) {
                c.headers.push(h, v);
            }
        }
        c.headers.push("CSeq", format!("{} CANCEL", inv.cseq().0));
        for r in inv.headers.get_all("Route") {
            c.headers.push("Route", r);
        }
        c.headers.push("User-Agent", self.ua.clone());
        let dest = leg.dest;
        self.start_client(now, c, dest, Some(id), Role::Cancel);
    }

    /// Sends BYE in the leg's dialog. `owned`: the BYE's outcome ends the leg with `Ended`.
    fn send_bye(&mut self, now: Instant, id: LegId, owned: bool) {
        let via = self.via();
        let ua = self.ua.clone();
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let mut bye = dialog.new_request(Method::Bye, via);
        bye.headers.push("User-Agent", ua);
        let dest = dialog.destination().unwrap_or(leg.dest);
        leg.state = LegState::Terminating;
        self.start_client(now, bye, dest, owned.then_some(id), Role::Bye);
    }

    // ---- commands ------------------------------------------------------------------------------

    fn handle_cmd(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::Invite {
                leg,
                request,
                dest,
                events,
            } => {
                let l = Leg {
                    uac: true,
                    events,
                    call_id: request.call_id().to_string(),
                    local_tag: request.from_tag().unwrap_or_default(),
                    state: LegState::Initial,
                    invite_key: TransactionKey::client(
                        &request.branch().unwrap_or_default(),
                        Method::Invite,
                    ),
                    invite: request.clone(),
                    dest,
                    dialog: None,
                    hangup: false,
                    cancel_sent: false,
                    ack: None,
                    retrans: None,
                    bye_pending: false,
                    local_sdp: request.body.clone(),
                };
                self.by_dialog
                    .insert((l.call_id.clone(), l.local_tag.clone()), leg);
                self.legs.insert(leg, l);
                self.start_client(now, request, dest, Some(leg), Role::Invite);
            }
            Cmd::Hangup(id) => self.hangup(now, id),
            Cmd::Ring(id) => {
                let Some(leg) = self
                    .legs
                    .get(&id)
                    .filter(|l| !l.uac && l.state == LegState::Initial)
                else {
                    return;
                };
                let mut r = Response::to_request(&leg.invite, 180, Some(&leg.local_tag));
                r.headers.push("Contact", self.contact("callbridge"));
                let key = leg.invite_key.clone();
                self.respond(now, &key, r);
            }
            Cmd::Answer(id, sdp) => self.answer(now, id, sdp),
            Cmd::Reject(id, status) => {
                let Some(leg) = self
                    .legs
                    .get(&id)
                    .filter(|l| !l.uac && l.state == LegState::Initial)
                else {
                    return;
                };
                let status = if (300..700).contains(&status) {
                    status
                } else {
                    500
                };
                let r = Response::to_request(&leg.invite, status, Some(&leg.local_tag));
                let key = leg.invite_key.clone();
                self.respond(now, &key, r);
                self.remove_leg(id);
            }
        }
    }

    fn answer(&mut self, now: Instant, id: LegId, sdp: String) {
        let contact = self.contact("callbridge");
        let Some(leg) = self
            .legs
            .get_mut(&id)
            .filter(|l| !l.uac && l.state == LegState::Initial)
        else {
            return;
        };
        let dialog = match Dialog::uas_from_invite(&leg.invite, &leg.local_tag, &contact) {
            Ok(d) => d,
            Err(e) => {
                warn!(error = %e, "cannot answer");
                return;
            }
        };
        let mut r = Response::to_request(&leg.invite, 200, Some(&leg.local_tag));
        r.headers.push("Contact", contact);
        r.headers.push("Allow", ALLOW);
        if !sdp.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = sdp.into_bytes();
        }
        leg.local_sdp = r.body.clone();
        r.headers.push("Server", self.ua.clone());
        let payload = r.encode();
        let retrans = Uas2xxRetransmitter::new(now, payload, leg.dest, self.timers);
        let next = retrans.poll_timeout();
        leg.retrans = Some(retrans);
        leg.dialog = Some(dialog);
        leg.state = LegState::Confirmed;
        let key = leg.invite_key.clone();
        self.schedule(next, TimerRef::Leg(id.0));
        if let Some((t, _)) = self.servers.get_mut(&key) {
            t.send_response(now, &r);
        }
        self.drive_server(&key);
    }

    fn hangup(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.hangup || leg.state == LegState::Terminating {
            return;
        }
        leg.hangup = true;
        match (leg.uac, leg.state) {
            (true, LegState::Initial) => {} // CANCEL once a provisional arrives (9.1)
            (true, LegState::Early) => self.send_cancel(now, id),
            (true, _) => self.send_bye(now, id, true),
            (false, LegState::Initial) => {
                let r = Response::to_request(&leg.invite, 603, Some(&leg.local_tag));
                let key = leg.invite_key.clone();
                leg.emit(LegEvent::Ended);
                self.respond(now, &key, r);
                self.remove_leg(id);
            }
            (false, _) => {
                if leg
                    .retrans
                    .as_ref()
                    .is_some_and(Uas2xxRetransmitter::is_active)
                {
                    leg.bye_pending = true; // 15.1.1: no BYE before the ACK
                } else {
                    self.send_bye(now, id, true);
                }
            }
        }
    }

    // ---- incoming messages -------------------------------------------------------------------

    fn handle_message(&mut self, now: Instant, src: SocketAddr, m: Message) {
        match m {
            Message::Response(resp) => {
                let Some(key) = TransactionKey::for_response(&resp) else {
                    return;
                };
                if let Some((t, _, _)) = self.clients.get_mut(&key) {
                    t.handle_response(now, resp);
                    self.drive_client(now, &key);
                    return;
                }
                // A 2xx retransmitted after the INVITE transaction ended: re-ACK from the dialog.
                if resp.cseq().1 == Method::Invite && (200..300).contains(&resp.status) {
                    let k = (
                        resp.call_id().to_string(),
                        resp.from_tag().unwrap_or_default(),
                    );
                    if let Some(ack) = self
                        .by_dialog
                        .get(&k)
                        .and_then(|id| self.legs.get(id))
                        .and_then(|l| l.ack.clone())
                    {
                        self.send(ack);
                    }
                }
            }
            Message::Request(req) => self.handle_request(now, src, req),
        }
    }

    fn handle_request(&mut self, now: Instant, src: SocketAddr, req: Request) {
        let Some(key) = TransactionKey::for_request(&req) else {
            return;
        };
        if req.method == Method::Ack {
            if let Some((t, _)) = self.servers.get_mut(&key) {
                if t.final_status().is_some_and(|s| s >= 300) {
                    t.handle_request(now, &req);
                    self.drive_server(&key);
                    return;
                }
            }
            self.ack_2xx(now, &req);
            return;
        }
        if let Some((t, _)) = self.servers.get_mut(&key) {
            t.handle_request(now, &req);
            self.drive_server(&key);
            return;
        }
        let dest = req.response_destination(src);
        let t = ServerTransaction::new(now, req.clone(), dest, self.timers, &self.ua);
        self.servers.insert(key.clone(), (t, None));
        self.drive_server(&key);
        let dialog_key = (req.call_id().to_string(), req.to_tag().unwrap_or_default());
        match req.method {
            Method::Invite if req.to_tag().is_none() => self.new_incoming(now, src, key, req),
            Method::Invite => match self.by_dialog.get(&dialog_key).copied() {
                Some(id) => self.reinvite(now, id, key, req),
                None => {
                    self.respond(now, &key, Response::to_request(&req, 481, None));
                }
            },
            Method::Bye => {
                let Some(id) = self.by_dialog.get(&dialog_key).copied() else {
                    self.respond(now, &key, Response::to_request(&req, 481, None));
                    return;
                };
                let in_order = match self.legs.get_mut(&id).and_then(|l| l.dialog.as_mut()) {
                    Some(d) => d.handle_remote_cseq(&req),
                    None => true,
                };
                if !in_order {
                    self.respond(now, &key, Response::to_request(&req, 500, None));
                    return;
                }
                self.respond(now, &key, Response::to_request(&req, 200, None));
                if let Some(leg) = self.legs.get(&id) {
                    leg.emit(LegEvent::Bye);
                }
                self.remove_leg(id);
            }
            Method::Cancel => self.incoming_cancel(now, key, req),
            Method::Options => {
                let mut r = Response::to_request(&req, 200, Some(&msg::new_tag()));
                r.headers.push("Allow", ALLOW);
                r.headers.push("Accept", "application/sdp");
                self.respond(now, &key, r);
            }
            _ => {
                let mut r = Response::to_request(&req, 405, Some(&msg::new_tag()));
                r.headers.push("Allow", ALLOW);
                self.respond(now, &key, r);
            }
        }
    }

    /// A re-INVITE in a confirmed dialog (typically a session-timer refresh, RFC 4028): answered
    /// 200 with the SDP we last sent, unchanged (same o= version, RFC 3264 8), and that 2xx is
    /// retransmitted until its ACK like the first one. Media changes in the peer's offer are not
    /// propagated (there is no event for them yet); they are logged.
    fn reinvite(&mut self, now: Instant, id: LegId, key: TransactionKey, req: Request) {
        let contact = self.contact("callbridge");
        let ua = self.ua.clone();
        let timers = self.timers;
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let busy = leg.state != LegState::Confirmed
            || leg
                .retrans
                .as_ref()
                .is_some_and(Uas2xxRetransmitter::is_active);
        let in_order = leg
            .dialog
            .as_mut()
            .is_some_and(|d| d.handle_remote_cseq(&req));
        if busy || !in_order {
            // 14.2: an INVITE while one is pending, or out of order, gets 500 with Retry-After.
            let mut r = Response::to_request(&req, 500, None);
            r.headers.push("Retry-After", "1");
            self.respond(now, &key, r);
            return;
        }
        if !req.body.is_empty() && req.body != leg.invite.body {
            info!(call_id = %leg.call_id, "re-INVITE offer answered with the unchanged session; media changes ignored");
        }
        let mut r = Response::to_request(&req, 200, None);
        r.headers.push("Contact", contact);
        r.headers.push("Allow", ALLOW);
        if !leg.local_sdp.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = leg.local_sdp.clone();
        }
        r.headers.push("Server", ua);
        let dest = self.servers.get(&key).map_or(leg.dest, |(t, _)| t.dest());
        let retrans = Uas2xxRetransmitter::new(now, r.encode(), dest, timers);
        let next = retrans.poll_timeout();
        leg.retrans = Some(retrans);
        if let Some((t, owner)) = self.servers.get_mut(&key) {
            *owner = Some(id);
            t.send_response(now, &r);
        }
        self.drive_server(&key);
        self.schedule(next, TimerRef::Leg(id.0));
    }

    fn ack_2xx(&mut self, now: Instant, req: &Request) {
        let k = (req.call_id().to_string(), req.to_tag().unwrap_or_default());
        let Some(id) = self.by_dialog.get(&k).copied() else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if let Some(r) = leg.retrans.as_mut() {
            r.handle_ack();
        }
        if leg.bye_pending {
            leg.bye_pending = false;
            self.send_bye(now, id, true);
        }
    }

    fn new_incoming(&mut self, _now: Instant, src: SocketAddr, key: TransactionKey, req: Request) {
        let now = _now;
        if req.contact_uri().is_none() || req.from_tag().is_none() {
            let mut r = Response::to_request(&req, 400, Some(&msg::new_tag()));
            r.reason = "Bad Request (missing Contact or From tag)".into();
            self.respond(now, &key, r);
            return;
        }
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let id = LegId(inner.next_leg.fetch_add(1, Ordering::Relaxed));
        let local_tag = msg::new_tag();
        let (tx, rx) = mpsc::unbounded_channel();
        let dest = self.servers.get(&key).map_or(src, |(t, _)| t.dest());
        let call = IncomingCall {
            call_id: req.call_id().to_string(),
            from: req.headers.get("From").unwrap_or("").to_string(),
            to: req.headers.get("To").unwrap_or("").to_string(),
            request_uri: req.uri.clone(),
            source: src,
            sdp: req.body_text(),
            headers: req
                .headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            events: rx,
            ctl: LegController {
                leg: id,
                cmd: self.cmd.clone(),
            },
        };
        if let Err(e) = self.incoming.try_send(call) {
            let status = match e {
                mpsc::error::TrySendError::Full(_) => 486,
                mpsc::error::TrySendError::Closed(_) => 480,
            };
            warn!(status, "incoming call not accepted by the application");
            self.respond(
                now,
                &key,
                Response::to_request(&req, status, Some(&local_tag)),
            );
            return;
        }
        if let Some((_, owner)) = self.servers.get_mut(&key) {
            *owner = Some(id);
        }
        let leg = Leg {
            uac: false,
            events: tx,
            call_id: req.call_id().to_string(),
            local_tag: local_tag.clone(),
            state: LegState::Initial,
            invite_key: key,
            invite: req,
            dest,
            dialog: None,
            hangup: false,
            cancel_sent: false,
            ack: None,
            retrans: None,
            bye_pending: false,
            local_sdp: Vec::new(),
        };
        self.by_dialog.insert((leg.call_id.clone(), local_tag), id);
        self.legs.insert(id, leg);
    }

    fn incoming_cancel(&mut self, now: Instant, key: TransactionKey, req: Request) {
        let invite_key = TransactionKey {
            method: Method::Invite,
            ..key.clone()
        };
        let Some((t, owner)) = self.servers.get(&invite_key) else {
            self.respond(now, &key, Response::to_request(&req, 481, None));
            return;
        };
        let owner = *owner;
        let pending = t.final_status().is_none();
        let inv = t.request().clone();
        // 9.2: the CANCEL's response carries the To tag the INVITE's responses use.
        let tag = owner
            .and_then(|id| self.legs.get(&id))
            .map(|l| l.local_tag.clone())
            .unwrap_or_else(msg::new_tag);
        self.respond(now, &key, Response::to_request(&req, 200, Some(&tag)));
        if !pending {
            return;
        }
        self.respond(
            now,
            &invite_key,
            Response::to_request(&inv, 487, Some(&tag)),
        );
        if let Some(id) = owner {
            if let Some(leg) = self.legs.get(&id) {
                leg.emit(LegEvent::Cancelled);
            }
            self.remove_leg(id);
        }
    }
}

/// Reads the display-less URI of a From/To value (helper for applications).
///
/// # Errors
/// [`SipError::InvalidHeader`].
pub fn header_uri(value: &str) -> Result<String, SipError> {
    NameAddr::parse("From", value).map(|n| n.uri)
}
