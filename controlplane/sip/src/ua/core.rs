//! The core task: the one tokio task that owns every transaction, dialog and leg (the
//! [`Endpoint`](super::Endpoint) handle that starts it and talks to it is in `endpoint`). It
//! sleeps until the earliest sans-IO deadline, the next datagram or the next command, then
//! dispatches: responses to client transactions (`uac`), new requests to server transactions
//! and the UAS side (`uas`), commands to either.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

use super::endpoint::{Inner, SharedRegistrar};
use super::reinvite::{self, Offers, ReofferPolicy};
use super::session_timer::SessionTimerConfig;
use super::{allow, inspect, IncomingCall, LegEvent};
use crate::dialog::{Dialog, Uas2xxEvent, Uas2xxRetransmitter};
use crate::digest::{ChallengeKind, ClientAuth, Credentials};
use crate::error::SipError;
use crate::guard::Network;
use crate::msg::{self, HasHeaders, Message, Method, Request, Response};
use crate::peer::{ListenAddr, Peer, Transport};
use crate::transaction::{ClientTransaction, ServerTransaction, Timers, TransactionKey, Transmit};
use crate::transport::{self, Inbound, TransportStats};

/// Leg id inside one endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct LegId(pub(super) u64);

#[derive(Debug)]
pub(super) enum Cmd {
    Invite {
        leg: LegId,
        request: Request,
        dest: Peer,
        events: mpsc::UnboundedSender<LegEvent>,
        credentials: Option<Credentials>,
    },
    Hangup(LegId),
    Ring(LegId),
    Answer(LegId, String),
    /// A final error response; a `503` carries the `Retry-After` seconds given (else the
    /// default).
    Reject(LegId, u16, Option<u32>),
    /// Our re-offer: a re-INVITE, or an UPDATE when `true`.
    Reoffer(LegId, String, bool),
    AnswerReoffer(LegId, String),
    RejectReoffer(LegId, u16),
    /// An out-of-dialog non-INVITE request (OPTIONS keep-alive, …) and where its outcome goes.
    Request {
        request: Request,
        dest: Peer,
        outcome: tokio::sync::oneshot::Sender<super::request::Outcome>,
    },
}

/// Our address for messages over `transport` to `dest`: the first listener of that transport
/// and `dest`'s address family, else the first of that family (a TCP or TLS connection may be
/// opened without a listener of its own), else the first listener.
pub(super) fn local_for(
    locals: &[ListenAddr],
    transport: Transport,
    dest: SocketAddr,
) -> SocketAddr {
    let family = |l: &&ListenAddr| l.addr.is_ipv4() == dest.is_ipv4();
    locals
        .iter()
        .filter(family)
        .find(|l| l.transport == transport)
        .or_else(|| locals.iter().find(family))
        .or(locals.first())
        .map_or(SocketAddr::from(([127, 0, 0, 1], 5060)), |l| l.addr)
}

/// A Contact value for `user` in a dialog with `peer` (`;transport=` for TCP and TLS).
pub(super) fn contact_value(locals: &[ListenAddr], user: &str, peer: Peer) -> String {
    let a = local_for(locals, peer.transport, peer.addr);
    match peer.transport {
        Transport::Udp => format!("<sip:{user}@{a}>"),
        t => format!("<sip:{user}@{a};transport={}>", t.param()),
    }
}

/// What a timer-heap entry refers to. Entries are checked lazily: a popped entry whose owner's
/// `poll_timeout` is no longer due is ignored (each drive pushes the current deadline).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerRef {
    Client(TxKeyOrd),
    Server(TxKeyOrd),
    Leg(u64),
}

/// [`TransactionKey`] with an arbitrary but total order, for the heap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TxKeyOrd(TransactionKey);

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
pub(super) enum Role {
    Invite,
    Cancel,
    Bye,
    /// An out-of-dialog request of the application ([`Endpoint::request`](super::Endpoint::request)).
    Request,
    /// Our re-INVITE or UPDATE in a confirmed dialog (`reinvite`).
    Reoffer,
    /// Our PRACK for a reliable provisional response (`early`).
    Prack,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    /// UAC: INVITE sent. UAS: INVITE received, not answered.
    Initial,
    /// UAC: a provisional arrived.
    Early,
    /// Dialog confirmed (UAS: 2xx sent; ACK may still be outstanding, see `retrans`).
    Confirmed,
    /// Our BYE is in flight.
    Terminating,
}

pub(super) struct Leg {
    pub(super) uac: bool,
    pub(super) events: mpsc::UnboundedSender<LegEvent>,
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) state: LegState,
    pub(super) invite: Request,
    pub(super) invite_key: TransactionKey,
    /// UAC: where the INVITE went. UAS: where responses go (for TCP/TLS, the connection the
    /// INVITE came on, also used for our in-dialog requests: the peer may be behind NAT).
    pub(super) dest: Peer,
    pub(super) dialog: Option<Dialog>,
    pub(super) hangup: bool,
    pub(super) cancel_sent: bool,
    pub(super) ack: Option<Transmit>,
    pub(super) retrans: Option<Uas2xxRetransmitter>,
    pub(super) bye_pending: bool,
    /// The SDP we last sent (our offer, or our answer); re-used to answer session refreshes.
    pub(super) local_sdp: Vec<u8>,
    /// UAC: the credentials to answer a 401/407 with, and how many challenges were answered
    /// (at most [`MAX_AUTH_ROUNDS`] per leg, so wrong credentials cannot loop).
    pub(super) credentials: Option<Credentials>,
    pub(super) auth_rounds: u8,
    /// Offer/answer in the confirmed dialog: re-INVITE, UPDATE, session timer (`reinvite`).
    pub(super) offers: Offers,
    /// UAC: the early dialog of the last reliable provisional response (`early`).
    pub(super) early: Option<super::early::EarlyDialog>,
}

/// Most 401/407 challenges answered per leg (one, plus one `stale=true` renewal).
pub(super) const MAX_AUTH_ROUNDS: u8 = 2;

/// Takes the challenges of a 401 (`WWW-Authenticate`) or 407 (`Proxy-Authenticate`) into the
/// digest session for (`creds`' user, `dest`), creating it on first use, and returns the
/// session to authorize the retried request with.
///
/// # Errors
/// What [`ClientAuth::handle_challenge`] refuses (wrong credentials, nothing answerable).
pub(super) fn take_challenge<'a>(
    auth: &'a mut HashMap<(String, Peer), ClientAuth>,
    creds: &Credentials,
    dest: Peer,
    resp: &Response,
) -> Result<&'a mut ClientAuth, SipError> {
    let (kind, header) = if resp.status == 407 {
        (ChallengeKind::Proxy, "Proxy-Authenticate")
    } else {
        (ChallengeKind::Www, "WWW-Authenticate")
    };
    let values: Vec<&str> = resp.headers.get_all(header).collect();
    let session = auth
        .entry((creds.username.clone(), dest))
        .or_insert_with(|| ClientAuth::new(creds.clone()));
    session.handle_challenge(kind, &values)?;
    Ok(session)
}

impl Leg {
    pub(super) fn emit(&self, ev: LegEvent) {
        debug!(call_id = %self.call_id, ?ev, "leg event");
        let _ = self.events.send(ev);
    }
}

pub(super) struct Core {
    pub(super) local: SocketAddr,
    pub(super) locals: Vec<ListenAddr>,
    pub(super) ua: String,
    pub(super) timers: Timers,
    pub(super) allow_invite_from: Option<Vec<Network>>,
    pub(super) allow_register_from: Option<Vec<Network>>,
    pub(super) registrar: Option<SharedRegistrar>,
    pub(super) reoffers: ReofferPolicy,
    pub(super) session_cfg: SessionTimerConfig,
    pub(super) use_100rel: bool,
    pub(super) out: transport::Sender,
    pub(super) incoming: mpsc::Sender<IncomingCall>,
    pub(super) cmd: mpsc::UnboundedSender<Cmd>,
    pub(super) clients: HashMap<TransactionKey, (ClientTransaction, Option<LegId>, Role)>,
    /// Client transactions moved from UDP to TCP because of their size (RFC 3261 18.1.1), with
    /// the UDP peer to fall back to when the TCP connection cannot be opened.
    pub(super) switched: HashMap<TransactionKey, Peer>,
    /// Digest sessions with servers that challenged us, by (user name, destination): the
    /// nonce is reused for later requests to the same place ([`crate::digest::ClientAuth`]).
    pub(super) auth: HashMap<(String, Peer), ClientAuth>,
    /// Where the outcome of each [`Role::Request`] transaction goes.
    pub(super) requests:
        HashMap<TransactionKey, tokio::sync::oneshot::Sender<super::request::Outcome>>,
    pub(super) servers: HashMap<TransactionKey, (ServerTransaction, Option<LegId>)>,
    pub(super) legs: HashMap<LegId, Leg>,
    pub(super) by_dialog: HashMap<(String, String), LegId>,
    pub(super) timers_heap: BinaryHeap<Reverse<(Instant, TimerRef)>>,
    pub(super) stats: Arc<TransportStats>,
    pub(super) inner: std::sync::Weak<Inner>,
}

impl Core {
    pub(super) async fn run(
        mut self,
        mut inbound: mpsc::Receiver<Inbound>,
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
                    Some(Inbound::Message(src, m)) => self.handle_message(Instant::now(), src, m),
                    Some(Inbound::SendFailed { peer, cause }) => {
                        self.send_failed(Instant::now(), peer, &cause);
                    }
                    Some(Inbound::Unreachable { peer, request, cause }) => {
                        self.unreachable(Instant::now(), peer, request, &cause);
                    }
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

    pub(super) fn schedule(&mut self, at: Option<Instant>, r: TimerRef) {
        if let Some(at) = at {
            self.timers_heap.push(Reverse((at, r)));
        }
    }

    pub(super) fn send(&self, t: Transmit) {
        self.out.send(t);
    }

    pub(super) fn remove_leg(&mut self, id: LegId) {
        if let Some(leg) = self.legs.remove(&id) {
            self.by_dialog.remove(&(leg.call_id, leg.local_tag));
        }
    }

    /// A Via for a new request to `dest` (its transport, our address for it, a new branch).
    pub(super) fn via(&self, dest: Peer) -> String {
        let local = local_for(&self.locals, dest.transport, dest.addr);
        msg::via_value_for(dest.transport, local, &msg::new_branch())
    }

    /// Our Contact for a dialog with `peer`.
    pub(super) fn contact(&self, user: &str, peer: Peer) -> String {
        contact_value(&self.locals, user, peer)
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
                        let n = self.drive_client(now, &k);
                        self.count_retransmissions(n);
                    }
                }
                TimerRef::Server(TxKeyOrd(k)) => {
                    let Some((t, _)) = self.servers.get_mut(&k) else {
                        continue;
                    };
                    if due(t.poll_timeout()) {
                        t.handle_timeout(now);
                        let n = self.drive_server(&k);
                        self.count_retransmissions(n);
                    }
                }
                TimerRef::Leg(id) => self.leg_timer(now, LegId(id)),
            }
        }
    }

    fn leg_timer(&mut self, now: Instant, id: LegId) {
        self.offers_timer(now, id);
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
        self.count_retransmissions(transmits.len());
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

    /// Sends what the client transaction has to send and hands its events to the TU;
    /// returns how many messages it sent.
    pub(super) fn drive_client(&mut self, now: Instant, key: &TransactionKey) -> usize {
        let Some((t, leg, role)) = self.clients.get_mut(key) else {
            return 0;
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
            self.switched.remove(key);
        } else {
            let next = t.poll_timeout();
            self.schedule(next, TimerRef::Client(TxKeyOrd(key.clone())));
        }
        let sent = transmits.len();
        for x in transmits {
            self.send(x);
        }
        if role == Role::Request {
            for e in events {
                self.request_event(key, e);
            }
        } else if let Some(leg) = leg {
            for e in events {
                self.client_event(now, leg, role, e);
            }
        }
        sent
    }

    /// Counts messages sent again (for `GET /metrics`).
    fn count_retransmissions(&self, n: usize) {
        if n > 0 {
            self.stats
                .retransmissions_sent
                .fetch_add(n as u64, Ordering::Relaxed);
        }
    }

    /// Sends what the server transaction has to send; returns how many messages it sent.
    pub(super) fn drive_server(&mut self, key: &TransactionKey) -> usize {
        let Some((t, _)) = self.servers.get_mut(key) else {
            return 0;
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
        let sent = transmits.len();
        for x in transmits {
            self.send(x);
        }
        sent
    }

    pub(super) fn start_client(
        &mut self,
        now: Instant,
        mut req: Request,
        mut dest: Peer,
        leg: Option<LegId>,
        role: Role,
    ) {
        // RFC 3261 18.1.1: a request over 1300 bytes (the path MTU is unknown) that would go
        // over UDP goes over TCP instead, its top Via saying so; if the connection cannot be
        // opened, it is sent over UDP after all (see `send_failed`).
        let udp = dest;
        let switch = dest.transport == Transport::Udp
            && req.method != Method::Ack
            && req.encode().len() > UDP_MTU_LIMIT
            && set_top_via_transport(&mut req, Transport::Tcp);
        if switch {
            dest.transport = Transport::Tcp;
            debug!(%dest, "request over 1300 bytes: sent over TCP (RFC 3261 18.1.1)");
        }
        let t = ClientTransaction::new(now, req, dest, self.timers);
        self.stats
            .client_transactions
            .fetch_add(1, Ordering::Relaxed);
        let key = t.key().clone();
        if switch {
            self.switched.insert(key.clone(), udp);
        }
        self.clients.insert(key.clone(), (t, leg, role));
        self.drive_client(now, &key);
    }

    /// Sends a response through the server transaction `key`.
    pub(super) fn respond(
        &mut self,
        now: Instant,
        key: &TransactionKey,
        mut resp: Response,
    ) -> bool {
        resp.headers.push("Server", self.ua.clone());
        let Some((t, _)) = self.servers.get_mut(key) else {
            return false;
        };
        let ok = t.send_response(now, &resp);
        self.drive_server(key);
        ok
    }

    /// Sends BYE in the leg's dialog. `owned`: the BYE's outcome ends the leg with `Ended`.
    pub(super) fn send_bye(&mut self, now: Instant, id: LegId, owned: bool) {
        let ua = self.ua.clone();
        let Some(dest) = self.in_dialog_destination(id) else {
            return;
        };
        let via = self.via(dest);
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let mut bye = dialog.new_request(Method::Bye, via);
        bye.headers.push("User-Agent", ua);
        if let Some(c) = &leg.credentials {
            // A server that challenged the INVITE expects credentials on the BYE too.
            if let Some(auth) = self.auth.get_mut(&(c.username.clone(), leg.dest)) {
                for (n, v) in auth.authorize("BYE", &bye.uri) {
                    bye.headers.push(n, v);
                }
            }
        }
        leg.state = LegState::Terminating;
        self.start_client(now, bye, dest, owned.then_some(id), Role::Bye);
    }

    /// Where the leg's in-dialog requests go. Over UDP: the first route or the remote target
    /// (RFC 3261 12.2.1.1), with the transport it names. Over TCP/TLS, a UAS leg reuses the
    /// connection its INVITE came on (the caller may be behind NAT, RFC 5626 style); a UAC leg
    /// goes to the remote target over the transport it names, else the leg's.
    pub(super) fn in_dialog_destination(&self, id: LegId) -> Option<Peer> {
        let leg = self.legs.get(&id)?;
        let dialog = leg.dialog.as_ref()?;
        if !leg.uac && leg.dest.transport.is_reliable() {
            return Some(leg.dest);
        }
        let Ok(addr) = dialog.destination() else {
            return Some(leg.dest);
        };
        let transport = dialog.transport().unwrap_or(leg.dest.transport);
        Some(Peer::new(transport, addr))
    }

    // ---- commands ------------------------------------------------------------------------------

    fn handle_cmd(&mut self, now: Instant, cmd: Cmd) {
        match cmd {
            Cmd::Invite {
                leg,
                request,
                dest,
                events,
                credentials,
            } => self.start_outgoing(now, leg, request, dest, events, credentials),
            Cmd::Hangup(id) => self.hangup(now, id),
            Cmd::Ring(id) => self.ring(now, id),
            Cmd::Answer(id, sdp) => self.answer(now, id, sdp),
            Cmd::Reject(id, status, retry) => self.reject(now, id, status, retry),
            Cmd::Reoffer(id, sdp, update) => self.start_reoffer(now, id, sdp, update),
            Cmd::AnswerReoffer(id, sdp) => self.answer_reoffer(now, id, sdp),
            Cmd::RejectReoffer(id, status) => self.reject_reoffer(now, id, status),
            Cmd::Request {
                request,
                dest,
                outcome,
            } => self.start_request(now, request, dest, outcome),
        }
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

    fn handle_message(&mut self, now: Instant, src: Peer, m: Message) {
        match m {
            Message::Response(resp) => self.handle_response(now, resp),
            Message::Request(req) => self.handle_request(now, src, req),
        }
    }

    fn handle_request(&mut self, now: Instant, src: Peer, req: Request) {
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
            self.stats
                .retransmissions_received
                .fetch_add(1, Ordering::Relaxed);
            let n = self.drive_server(&key);
            self.count_retransmissions(n);
            return;
        }
        // 18.2.2: over TCP/TLS the response goes back on the request's connection.
        let dest = if src.transport.is_reliable() {
            src
        } else {
            Peer::udp(req.response_destination(src.addr))
        };
        let t = ServerTransaction::new(now, req.clone(), dest, self.timers, &self.ua);
        self.stats
            .server_transactions
            .fetch_add(1, Ordering::Relaxed);
        self.servers.insert(key.clone(), (t, None));
        self.drive_server(&key);
        // RFC 3261 8.2: method, URI scheme, Require, body — before dialogs, legs or policy.
        if let Some(r) = inspect::inspect(&req, self.registrar.is_some()) {
            self.respond(now, &key, r);
            return;
        }
        // The ACL: only listed networks may start a call (in-dialog requests are not judged).
        if req.method == Method::Invite
            && req.to_tag().is_none()
            && self
                .allow_invite_from
                .as_ref()
                .is_some_and(|nets| !nets.iter().any(|n| n.contains(src.addr.ip())))
        {
            self.stats.forbidden_invites.fetch_add(1, Ordering::Relaxed);
            debug!(%src, "INVITE from outside allow_invite_from: 403");
            self.respond(
                now,
                &key,
                Response::to_request(&req, 403, Some(&msg::new_tag())),
            );
            return;
        }
        let dialog_key = (req.call_id().to_string(), req.to_tag().unwrap_or_default());
        match req.method {
            Method::Invite if req.to_tag().is_none() => self.new_incoming(now, src, key, req),
            Method::Invite => match self.by_dialog.get(&dialog_key).copied() {
                Some(id) => self.incoming_reoffer(now, id, key, req),
                None => {
                    self.respond(now, &key, Response::to_request(&req, 481, None));
                }
            },
            ref m if reinvite::is_update(m) => match self.by_dialog.get(&dialog_key).copied() {
                Some(id) if req.to_tag().is_some() => self.incoming_reoffer(now, id, key, req),
                _ => {
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
            Method::Register => self.incoming_register(now, src, key, &req),
            Method::Options => {
                let mut r = Response::to_request(&req, 200, Some(&msg::new_tag()));
                r.headers.push("Allow", allow(self.registrar.is_some()));
                r.headers.push("Accept", "application/sdp");
                self.respond(now, &key, r);
            }
            _ => {
                let mut r = Response::to_request(&req, 405, Some(&msg::new_tag()));
                r.headers.push("Allow", allow(self.registrar.is_some()));
                self.respond(now, &key, r);
            }
        }
    }
}

/// RFC 3261 18.1.1: requests larger than this (the path MTU being unknown) go over TCP.
const UDP_MTU_LIMIT: usize = 1300;

/// Rewrites the transport of a request's top Via (`SIP/2.0/UDP` → `SIP/2.0/TCP`). Returns
/// false (and changes nothing) when there is no top Via to rewrite.
pub(super) fn set_top_via_transport(req: &mut Request, transport: Transport) -> bool {
    let Some(top) = req.headers.get_list("Via").next() else {
        return false;
    };
    let Some(rest) = top.trim_start().strip_prefix("SIP/2.0/") else {
        return false;
    };
    let Some(space) = rest.find(|c: char| c.is_ascii_whitespace()) else {
        return false;
    };
    let new = format!("SIP/2.0/{transport}{}", &rest[space..]);
    req.headers.replace_first_list_value("Via", &new)
}
