//! Sans-IO SIP transactions over an unreliable transport (RFC 3261 §17, with RFC 6026's
//! Accepted state).
//!
//! Each transaction is a value driven by the caller: `handle_*(now, …)` feeds input,
//! `handle_timeout(now)` fires due timers, `poll_transmit` / `poll_event` drain output and
//! `poll_timeout` says when to call `handle_timeout` next. No clock is read here.
//!
//! * [`ClientTransaction`] (INVITE: Timers A, B, D; non-INVITE: E, F, K). The ACK for a non-2xx
//!   final response is generated here with the INVITE's branch (17.1.1.3). After a 2xx the INVITE
//!   client transaction stays in *Accepted* for 64·T1 and hands every retransmitted 2xx up, so
//!   the dialog layer can re-send its ACK (13.2.2.4).
//! * [`ServerTransaction`] (INVITE: provisional/final retransmission on request retransmission,
//!   Timers G, H, I and L; non-INVITE: J). 2xx retransmission is *not* done here: per 13.3.1.4 it
//!   is the UAS core's job (see `dialog::Uas2xxRetransmitter`).
//!
//! Matching (17.1.3, 17.2.3) is by [`TransactionKey`]: top Via branch + CSeq method (ACK maps
//! to INVITE), plus sent-by for server transactions.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::msg::{HasHeaders, Method, Request, Response};
use crate::peer::Peer;

/// RFC 3261 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (500 ms).
    pub t1: Duration,
    /// Maximum retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Maximum time a message stays in the network (5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// 64·T1: Timers B, F, H, J, L, M.
    pub fn t64(&self) -> Duration {
        self.t1 * 64
    }

    /// Timer D: at least 32 s for UDP.
    pub fn d(&self) -> Duration {
        self.t64().max(Duration::from_secs(32))
    }
}

/// A message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination: transport and address (for TCP/TLS, the connection to use or open).
    pub dest: Peer,
    /// Encoded SIP message.
    pub payload: Vec<u8>,
}

/// Identifies a transaction (RFC 3261 17.1.3 / 17.2.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TransactionKey {
    /// Top Via branch (or a synthetic RFC 2543 key when the branch lacks the magic cookie).
    pub branch: String,
    /// CSeq method, with ACK mapped to INVITE.
    pub method: Method,
    /// Top Via sent-by for server transactions; empty for client transactions.
    pub sent_by: String,
}

impl TransactionKey {
    fn norm(m: Method) -> Method {
        if m == Method::Ack {
            Method::Invite
        } else {
            m
        }
    }

    /// The key of a client transaction we created with `branch` for `method`.
    pub fn client(branch: &str, method: Method) -> Self {
        Self {
            branch: branch.to_string(),
            method: Self::norm(method),
            sent_by: String::new(),
        }
    }

    /// The client transaction a response belongs to.
    pub fn for_response(resp: &Response) -> Option<Self> {
        let branch = resp.branch()?;
        Some(Self::client(&branch, resp.cseq().1))
    }

    /// The server transaction a request belongs to (an ACK maps to its INVITE's transaction).
    pub fn for_request(req: &Request) -> Option<Self> {
        let via = req.top_via()?;
        let method = Self::norm(req.method.clone());
        let branch = match via.branch() {
            Some(b) if b.starts_with("z9hG4bK") => b.to_string(),
            // RFC 2543 peer: 17.2.3's fallback, approximated by dialog-ish identifiers.
            _ => format!(
                "rfc2543:{}:{}:{}:{}",
                req.call_id(),
                req.from_tag().unwrap_or_default(),
                req.cseq().0,
                via
            ),
        };
        Some(Self {
            branch,
            method,
            sent_by: via.sent_by(),
        })
    }
}

/// What a client transaction reports to its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A 1xx response.
    Provisional(Response),
    /// A final response. For INVITE, a 2xx may be reported again (retransmission); a non-2xx
    /// has already been ACKed by the transaction.
    Final(Response),
    /// Timer B / F fired without a final response.
    Timeout,
    /// The transport could not deliver the request (ICMP unreachable, connection refused,
    /// reset, TLS handshake failed; 17.1.4): the TU treats it as a 503. `cause` says what the
    /// transport saw, for logs.
    TransportError {
        /// What failed, e.g. `ICMP port unreachable from 192.0.2.7:5060`.
        cause: String,
    },
}

/// Client transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// INVITE sent, nothing heard (INVITE "Calling", non-INVITE "Trying").
    Calling,
    /// A provisional response arrived.
    Proceeding,
    /// A non-2xx final arrived (INVITE) or any final (non-INVITE); absorbing retransmissions.
    Completed,
    /// INVITE got a 2xx (RFC 6026); passing retransmitted 2xx up.
    Accepted,
    /// Done; the owner can drop it.
    Terminated,
}

/// A client transaction (INVITE or non-INVITE).
#[derive(Debug)]
pub struct ClientTransaction {
    key: TransactionKey,
    invite: bool,
    state: ClientState,
    request: Request,
    encoded: Vec<u8>,
    dest: Peer,
    timers: Timers,
    retransmit_at: Option<Instant>,
    interval: Duration,
    timeout_at: Option<Instant>,
    terminate_at: Option<Instant>,
    ack: Option<Vec<u8>>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ClientEvent>,
}

impl ClientTransaction {
    /// Starts a transaction: the request is queued for transmission at once.
    /// The request must carry a top Via with a branch (the key is built from it).
    pub fn new(now: Instant, request: Request, dest: Peer, timers: Timers) -> Self {
        let invite = request.method == Method::Invite;
        let key = TransactionKey::client(
            &request.branch().unwrap_or_default(),
            request.method.clone(),
        );
        let encoded = request.encode();
        let mut transmits = VecDeque::new();
        transmits.push_back(Transmit {
            dest,
            payload: encoded.clone(),
        });
        Self {
            key,
            invite,
            state: ClientState::Calling,
            request,
            encoded,
            dest,
            timers,
            // Timers A and E only on an unreliable transport (17.1.1.2, 17.1.2.2).
            retransmit_at: (!dest.transport.is_reliable()).then(|| now + timers.t1),
            interval: timers.t1,
            timeout_at: Some(now + timers.t64()),
            terminate_at: None,
            ack: None,
            transmits,
            events: VecDeque::new(),
        }
    }

    /// The matching key.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// The request this transaction sends.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where the request goes.
    pub fn dest(&self) -> Peer {
        self.dest
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Whether the owner can drop this transaction.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }

    /// Feeds a response that matched [`Self::key`].
    pub fn handle_response(&mut self, now: Instant, resp: Response) {
        let status = resp.status;
        match (self.invite, self.state) {
            (_, ClientState::Calling | ClientState::Proceeding) if status < 200 => {
                self.state = ClientState::Proceeding;
                if self.invite {
                    // Timer A and B apply only in Calling.
                    self.retransmit_at = None;
                    self.timeout_at = None;
                } else {
                    self.interval = self.timers.t2;
                }
                self.events.push_back(ClientEvent::Provisional(resp));
            }
            (true, ClientState::Calling | ClientState::Proceeding) if status < 300 => {
                self.state = ClientState::Accepted;
                self.stop_retransmit();
                self.terminate_at = Some(now + self.timers.t64()); // Timer M
                self.events.push_back(ClientEvent::Final(resp));
            }
            (true, ClientState::Calling | ClientState::Proceeding) => {
                let ack = self.ack_for(&resp).encode();
                self.transmits.push_back(Transmit {
                    dest: self.dest,
                    payload: ack.clone(),
                });
                self.ack = Some(ack);
                self.state = ClientState::Completed;
                self.stop_retransmit();
                self.terminate_at = Some(now + self.wait(self.timers.d())); // Timer D
                self.events.push_back(ClientEvent::Final(resp));
            }
            (true, ClientState::Accepted) if (200..300).contains(&status) => {
                self.events.push_back(ClientEvent::Final(resp));
            }
            (true, ClientState::Completed) if status >= 300 => {
                if let Some(ack) = &self.ack {
                    self.transmits.push_back(Transmit {
                        dest: self.dest,
                        payload: ack.clone(),
                    });
                }
            }
            (false, ClientState::Calling | ClientState::Proceeding) => {
                self.state = ClientState::Completed;
                self.stop_retransmit();
                self.terminate_at = Some(now + self.wait(self.timers.t4)); // Timer K
                self.events.push_back(ClientEvent::Final(resp));
            }
            _ => {} // absorbed
        }
    }

    /// A wait for retransmissions still in the network (Timers D, K): 0 on a reliable
    /// transport (17.1.1.2, 17.1.2.2).
    fn wait(&self, d: Duration) -> Duration {
        if self.dest.transport.is_reliable() {
            Duration::ZERO
        } else {
            d
        }
    }

    /// A transport error sending the request (17.1.4: the connection could not be opened, or
    /// an ICMP error came back for one of its datagrams): while no final response has arrived,
    /// the transaction goes straight to Terminated (no more retransmissions, no Timer B/F)
    /// and the TU is told ([`ClientEvent::TransportError`]), which it treats as a 503. Once a
    /// final response arrived it is ignored (the request was delivered; an error about an ACK
    /// or a late retransmission changes nothing).
    pub fn handle_transport_error(&mut self, cause: &str) {
        if matches!(self.state, ClientState::Calling | ClientState::Proceeding) {
            self.state = ClientState::Terminated;
            self.retransmit_at = None;
            self.timeout_at = None;
            self.terminate_at = None;
            self.transmits.clear();
            self.events.push_back(ClientEvent::TransportError {
                cause: cause.to_owned(),
            });
        }
    }

    fn stop_retransmit(&mut self) {
        self.retransmit_at = None;
        self.timeout_at = None;
    }

    /// The ACK for a non-2xx final response (RFC 3261 17.1.1.3).
    fn ack_for(&self, resp: &Response) -> Request {
        let orig = &self.request;
        let mut ack = Request::new(Method::Ack, orig.uri.clone());
        if let Some(v) = orig.headers.get_list("Via").next() {
            ack.headers.push("Via", v);
        }
        ack.headers.push("Max-Forwards", "70");
        if let Some(v) = orig.headers.get("From") {
            ack.headers.push("From", v);
        }
        if let Some(v) = resp.headers.get("To") {
            ack.headers.push("To", v);
        }
        ack.headers.push("Call-ID", orig.call_id());
        ack.headers.push("CSeq", format!("{} ACK", orig.cseq().0));
        for r in orig.headers.get_all("Route") {
            ack.headers.push("Route", r);
        }
        ack
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        // A retransmission due before the timeout is still sent (late wake-ups keep counts exact).
        let retransmit_first = match (self.retransmit_at, self.timeout_at) {
            (Some(r), Some(t)) => r < t,
            _ => true,
        };
        if self.timeout_at.is_some_and(|t| t <= now)
            && !(retransmit_first && self.retransmit_at.is_some_and(|r| r <= now))
        {
            self.state = ClientState::Terminated;
            self.retransmit_at = None;
            self.timeout_at = None;
            self.events.push_back(ClientEvent::Timeout);
            return;
        }
        if let Some(at) = self.retransmit_at.filter(|&t| t <= now) {
            self.transmits.push_back(Transmit {
                dest: self.dest,
                payload: self.encoded.clone(),
            });
            if self.invite {
                self.interval *= 2; // Timer A doubles without bound
            } else if self.state == ClientState::Calling {
                self.interval = (self.interval * 2).min(self.timers.t2); // Timer E
            } else {
                self.interval = self.timers.t2;
            }
            self.retransmit_at = Some(at + self.interval);
        }
        if self.terminate_at.is_some_and(|t| t <= now) {
            self.state = ClientState::Terminated;
            self.terminate_at = None;
        }
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the TU.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.terminate_at]
            .into_iter()
            .flatten()
            .min()
    }
}

/// What a server transaction reports to its TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// The ACK for our non-2xx final response arrived.
    AckReceived,
    /// Timer H: no ACK for our non-2xx final response.
    Timeout,
}

/// Server transaction state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Request received, nothing sent by the TU yet (non-INVITE "Trying"; INVITE starts in
    /// Proceeding because 100 Trying is sent at once).
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// A final (INVITE: non-2xx) response was sent; retransmitting it on request retransmission.
    Completed,
    /// INVITE: the ACK for our non-2xx arrived (Timer I running).
    Confirmed,
    /// INVITE: a 2xx was sent (RFC 6026); request retransmissions are absorbed.
    Accepted,
    /// Done.
    Terminated,
}

/// A server transaction (INVITE or non-INVITE).
#[derive(Debug)]
pub struct ServerTransaction {
    key: TransactionKey,
    invite: bool,
    state: ServerState,
    request: Request,
    dest: Peer,
    timers: Timers,
    last_response: Option<Vec<u8>>,
    final_status: Option<u16>,
    retransmit_at: Option<Instant>,
    interval: Duration,
    timeout_at: Option<Instant>,
    terminate_at: Option<Instant>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
}

impl ServerTransaction {
    /// Creates the transaction for a new request. `dest` is where responses go
    /// ([`Request::response_destination`]). An INVITE transaction sends `100 Trying` at once
    /// (17.2.1), with `server` as the Server header.
    pub fn new(_now: Instant, request: Request, dest: Peer, timers: Timers, server: &str) -> Self {
        let invite = request.method == Method::Invite;
        let key = TransactionKey::for_request(&request)
            .unwrap_or_else(|| TransactionKey::client("", request.method.clone()));
        let mut tx = Self {
            key,
            invite,
            state: ServerState::Trying,
            request,
            dest,
            timers,
            last_response: None,
            final_status: None,
            retransmit_at: None,
            interval: timers.t1,
            timeout_at: None,
            terminate_at: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        };
        if invite {
            let mut trying = Response::to_request(&tx.request, 100, None);
            trying.headers.push("Server", server);
            let bytes = trying.encode();
            tx.transmits.push_back(Transmit {
                dest,
                payload: bytes.clone(),
            });
            tx.last_response = Some(bytes);
            tx.state = ServerState::Proceeding;
        }
        tx
    }

    /// The matching key.
    pub fn key(&self) -> &TransactionKey {
        &self.key
    }

    /// The request that created this transaction.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// Where responses go.
    pub fn dest(&self) -> Peer {
        self.dest
    }

    /// Current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// The final status sent, if any.
    pub fn final_status(&self) -> Option<u16> {
        self.final_status
    }

    /// Whether the owner can drop this transaction.
    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }

    /// Feeds a request that matched [`Self::key`]: a retransmission, or the ACK of a non-2xx.
    pub fn handle_request(&mut self, now: Instant, req: &Request) {
        if req.method == Method::Ack {
            if self.invite && self.state == ServerState::Completed {
                self.state = ServerState::Confirmed;
                self.retransmit_at = None;
                self.timeout_at = None;
                // Timer I: 0 on a reliable transport (17.2.1).
                self.terminate_at = Some(
                    now + if self.dest.transport.is_reliable() {
                        Duration::ZERO
                    } else {
                        self.timers.t4
                    },
                );
                self.events.push_back(ServerEvent::AckReceived);
            }
            return;
        }
        match self.state {
            ServerState::Proceeding | ServerState::Completed => {
                if let Some(r) = &self.last_response {
                    self.transmits.push_back(Transmit {
                        dest: self.dest,
                        payload: r.clone(),
                    });
                }
            }
            _ => {} // Trying (nothing to resend), Confirmed, Accepted: absorb
        }
    }

    /// Sends a response from the TU. Returns false (and sends nothing) when the transaction
    /// can no longer send one (a final response was already sent).
    pub fn send_response(&mut self, now: Instant, resp: &Response) -> bool {
        if !matches!(self.state, ServerState::Trying | ServerState::Proceeding) {
            return false;
        }
        let bytes = resp.encode();
        self.transmits.push_back(Transmit {
            dest: self.dest,
            payload: bytes.clone(),
        });
        let status = resp.status;
        if status < 200 {
            self.state = ServerState::Proceeding;
            self.last_response = Some(bytes);
            return true;
        }
        self.final_status = Some(status);
        if self.invite && status < 300 {
            self.state = ServerState::Accepted;
            self.terminate_at = Some(now + self.timers.t64()); // Timer L
        } else if self.invite {
            self.state = ServerState::Completed;
            self.last_response = Some(bytes);
            self.interval = self.timers.t1;
            // Timer G only on an unreliable transport (17.2.1).
            self.retransmit_at = (!self.dest.transport.is_reliable()).then(|| now + self.interval);
            self.timeout_at = Some(now + self.timers.t64()); // Timer H
        } else {
            self.state = ServerState::Completed;
            self.last_response = Some(bytes);
            // Timer J: 0 on a reliable transport (17.2.2).
            self.terminate_at = Some(
                now + if self.dest.transport.is_reliable() {
                    Duration::ZERO
                } else {
                    self.timers.t64()
                },
            );
        }
        true
    }

    /// Fires due timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timeout_at.is_some_and(|t| t <= now) {
            self.state = ServerState::Terminated;
            self.retransmit_at = None;
            self.timeout_at = None;
            self.events.push_back(ServerEvent::Timeout);
            return;
        }
        if let Some(at) = self.retransmit_at.filter(|&t| t <= now) {
            if let Some(r) = &self.last_response {
                self.transmits.push_back(Transmit {
                    dest: self.dest,
                    payload: r.clone(),
                });
            }
            self.interval = (self.interval * 2).min(self.timers.t2);
            self.retransmit_at = Some(at + self.interval);
        }
        if self.terminate_at.is_some_and(|t| t <= now) {
            self.state = ServerState::Terminated;
            self.terminate_at = None;
        }
    }

    /// Next datagram to send.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event for the TU.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    /// When [`Self::handle_timeout`] must next be called.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.retransmit_at, self.timeout_at, self.terminate_at]
            .into_iter()
            .flatten()
            .min()
    }
}

#[cfg(test)]
mod tests;
