//! The client side of INVITE: [`Endpoint::invite`], [`OutgoingCall`], and the core's handling
//! of the INVITE's responses (provisional, 2xx with its ACK, failures), CANCEL and
//! retransmitted 2xx.

use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::core::{
    contact_value, local_for, set_top_via_transport, take_challenge, Cmd, Core, Leg, LegId,
    LegState, Role, MAX_AUTH_ROUNDS,
};
use super::reinvite::{lists_tag, session_in_2xx};
use super::session_timer::parse_min_se;
use super::{Endpoint, InviteRequest, LegController, LegEvent, ALLOW};
use crate::dialog::Dialog;
use crate::digest::Credentials;
use crate::error::SipError;
use crate::msg::{self, HasHeaders, Method, Request, Response};
use crate::peer::{Peer, Transport};
use crate::transaction::{ClientEvent, ClientTransaction, TransactionKey, Transmit};

impl Endpoint {
    /// Sends an INVITE now.
    ///
    /// # Errors
    /// [`SipError::InvalidUri`] if the target is not a `sip:` URI with an IP-literal host;
    /// [`SipError::Shutdown`] after [`Self::shutdown`].
    pub fn invite(&self, req: InviteRequest) -> Result<OutgoingCall, SipError> {
        let addr = msg::uri_addr(&req.target)?;
        let transport = msg::uri_transport(&req.target).unwrap_or(Transport::Udp);
        self.invite_to(req, Peer::new(transport, addr), None)
    }

    /// Sends an INVITE for `req.target` to `dest`, which need not be the target's own address
    /// (an outbound proxy, or a server found through DNS, [`crate::locate`]). `tls_name` is the
    /// host name a TLS server's certificate must carry (default: `dest`'s IP address).
    ///
    /// # Errors
    /// [`SipError::Shutdown`] after [`Self::shutdown`].
    pub fn invite_to(
        &self,
        req: InviteRequest,
        dest: Peer,
        tls_name: Option<String>,
    ) -> Result<OutgoingCall, SipError> {
        if self.inner.cancel.is_cancelled() {
            return Err(SipError::Shutdown);
        }
        if let Some(name) = tls_name {
            self.inner.out.tls_name(dest.addr, name);
        }
        let local = local_for(&self.inner.locals, dest.transport, dest.addr);
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
        r.headers.push(
            "Via",
            msg::via_value_for(dest.transport, local, &msg::new_branch()),
        );
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
        r.headers.push(
            "Contact",
            contact_value(&self.inner.locals, &req.from_user, dest),
        );
        r.headers.push("User-Agent", self.inner.user_agent.clone());
        r.headers.push("Allow", ALLOW);
        for (n, v) in &req.headers {
            r.headers.push(n.clone(), v.clone());
        }
        if !req.sdp.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = req.sdp.clone().into_bytes();
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
                credentials: req.credentials,
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

impl Core {
    /// `Cmd::Invite`: a new outgoing leg; its INVITE client transaction starts now.
    pub(super) fn start_outgoing(
        &mut self,
        now: Instant,
        leg: LegId,
        mut request: Request,
        dest: Peer,
        events: mpsc::UnboundedSender<LegEvent>,
        credentials: Option<Credentials>,
    ) {
        // RFC 4028 7.1: we support session timers, and ask for one when configured.
        request.headers.push(
            "Supported",
            if self.use_100rel {
                "timer, 100rel"
            } else {
                "timer"
            },
        );
        if let Some(interval) = self.session_cfg.session_expires {
            let interval = interval.max(self.session_cfg.min_se);
            request
                .headers
                .push("Session-Expires", interval.as_secs().to_string());
            request
                .headers
                .push("Min-SE", self.session_cfg.min_se.as_secs().to_string());
        }
        if let Some(c) = &credentials {
            // A session from an earlier challenge: answer it before being asked (nonce reuse).
            if let Some(auth) = self.auth.get_mut(&(c.username.clone(), dest)) {
                for (n, v) in auth.authorize("INVITE", &request.uri) {
                    request.headers.push(n, v);
                }
            }
        }
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
            credentials,
            auth_rounds: 0,
            offers: Default::default(),
            early: None,
        };
        self.by_dialog
            .insert((l.call_id.clone(), l.local_tag.clone()), leg);
        self.legs.insert(leg, l);
        self.start_client(now, request, dest, Some(leg), Role::Invite);
    }

    /// A response: to its client transaction, or (a 2xx retransmitted after the INVITE
    /// transaction ended) re-ACKed from the dialog.
    pub(super) fn handle_response(&mut self, now: Instant, resp: Response) {
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
                return;
            }
        }
        self.stats.stray_responses.fetch_add(1, Ordering::Relaxed);
        debug!(status = resp.status, call_id = %resp.call_id(), "stray response dropped");
    }

    pub(super) fn client_event(&mut self, now: Instant, id: LegId, role: Role, ev: ClientEvent) {
        if role == Role::Reoffer {
            self.reoffer_event(now, id, ev);
            return;
        }
        if let (Role::Invite, ClientEvent::Provisional(resp)) = (role, &ev) {
            if self.reliable_provisional(now, id, resp) {
                return; // a retransmission (RFC 3262 4), already PRACKed
            }
        }
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
                let mut dialog = match Dialog::uac_from_2xx(&leg.invite, &resp) {
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
                if let Some(early) = leg.early.take() {
                    early.continue_in(&mut dialog);
                }
                let dest = Peer::new(
                    dialog.transport().unwrap_or(leg.dest.transport),
                    dialog.destination().unwrap_or(leg.dest.addr),
                );
                let local = local_for(&self.locals, dest.transport, dest.addr);
                let via = msg::via_value_for(dest.transport, local, &msg::new_branch());
                let mut ack = dialog.ack_for_2xx(leg.invite.cseq().0, via);
                ack.headers.push("User-Agent", self.ua.clone());
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
                leg.offers.remote_sdp = resp.body.clone();
                leg.offers.peer_allows_update = lists_tag(&resp, "Allow", "UPDATE");
                leg.offers
                    .session_refreshed(now, session_in_2xx(&resp), true);
                if leg.hangup {
                    self.send_bye(now, id, true);
                } else {
                    leg.state = LegState::Confirmed;
                    leg.emit(LegEvent::Answered {
                        sdp: resp.body_text().unwrap_or_default(),
                    });
                    self.schedule_offers(id);
                }
            }
            (Role::Invite, ClientEvent::Final(resp))
                if matches!(resp.status, 401 | 407)
                    && !leg.hangup
                    && leg.credentials.is_some()
                    && leg.auth_rounds < MAX_AUTH_ROUNDS =>
            {
                self.answer_challenge(now, id, &resp);
            }
            (Role::Invite, ClientEvent::Final(resp))
                if resp.status == 422 && !leg.hangup && !leg.offers.min_se_retried =>
            {
                self.retry_with_min_se(now, id, &resp);
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
            (Role::Invite, ClientEvent::TransportError { cause }) => {
                // 17.1.4: a 503 for the TU, reported as its own event so that an unreachable
                // peer is not mistaken for one that answered 503.
                if leg.hangup {
                    leg.emit(LegEvent::Ended);
                } else {
                    leg.emit(LegEvent::Unreachable { cause });
                }
                self.remove_leg(id);
            }
            (Role::Cancel, ClientEvent::Timeout | ClientEvent::TransportError { .. }) => {
                // 9.1: no final response to the INVITE within 64*T1 of the CANCEL: give up.
                if leg.dialog.is_none() {
                    leg.emit(LegEvent::Ended);
                    self.remove_leg(id);
                }
            }
            (Role::Cancel, _) => {} // the INVITE's 487 drives the leg
            (Role::Request | Role::Reoffer, _) => {} // `request_event`, `reoffer_event`
            (Role::Prack, _) => {}  // a failed PRACK: the INVITE's own outcome decides
            (Role::Bye, ClientEvent::Provisional(_)) => {}
            (
                Role::Bye,
                ClientEvent::Final(_) | ClientEvent::Timeout | ClientEvent::TransportError { .. },
            ) => {
                leg.emit(LegEvent::Ended);
                self.remove_leg(id);
            }
        }
    }

    /// A 401/407 to our INVITE (already ACKed by its transaction): takes the challenge into
    /// the digest session for (user, destination) and sends the INVITE again with credentials
    /// — same Call-ID and From tag, CSeq + 1, a new branch (RFC 3261 22.2). A challenge that
    /// cannot be answered (wrong credentials: the same nonce again, no usable algorithm) ends
    /// the leg with the 401/407.
    fn answer_challenge(&mut self, now: Instant, id: LegId, resp: &Response) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(creds) = leg.credentials.clone() else {
            return;
        };
        let auth = match take_challenge(&mut self.auth, &creds, leg.dest, resp) {
            Ok(a) => a,
            Err(e) => {
                warn!(status = resp.status, error = %e, "cannot answer the digest challenge");
                leg.emit(LegEvent::Rejected {
                    status: resp.status,
                    reason: format!("{} ({e})", resp.reason),
                });
                self.remove_leg(id);
                return;
            }
        };
        leg.auth_rounds += 1;
        let mut req = leg.invite.clone();
        req.headers.remove("Authorization");
        req.headers.remove("Proxy-Authorization");
        let cseq = req.cseq().0.saturating_add(1);
        req.headers.set("CSeq", format!("{cseq} INVITE"));
        let local = local_for(&self.locals, leg.dest.transport, leg.dest.addr);
        let branch = msg::new_branch();
        req.headers.replace_first_list_value(
            "Via",
            &msg::via_value_for(leg.dest.transport, local, &branch),
        );
        for (n, v) in auth.authorize("INVITE", &req.uri) {
            req.headers.push(n, v);
        }
        debug!(status = resp.status, "answering the digest challenge");
        leg.invite_key = TransactionKey::client(&branch, Method::Invite);
        leg.invite = req.clone();
        leg.state = LegState::Initial;
        let dest = leg.dest;
        self.start_client(now, req, dest, Some(id), Role::Invite);
    }

    /// A 422 to our INVITE (RFC 4028 7.4): sent again, once, asking for the peer's `Min-SE`
    /// (CSeq + 1, a new branch, credentials from the digest session if any).
    fn retry_with_min_se(&mut self, now: Instant, id: LegId, resp: &Response) {
        let min_se = resp.headers.get("Min-SE").and_then(parse_min_se);
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(min_se) = min_se else {
            leg.emit(LegEvent::Rejected {
                status: resp.status,
                reason: resp.reason.clone(),
            });
            self.remove_leg(id);
            return;
        };
        leg.offers.min_se_retried = true;
        let mut req = leg.invite.clone();
        req.headers.remove("Authorization");
        req.headers.remove("Proxy-Authorization");
        req.headers
            .set("Session-Expires", min_se.as_secs().to_string());
        req.headers.set("Min-SE", min_se.as_secs().to_string());
        let cseq = req.cseq().0.saturating_add(1);
        req.headers.set("CSeq", format!("{cseq} INVITE"));
        let local = local_for(&self.locals, leg.dest.transport, leg.dest.addr);
        let branch = msg::new_branch();
        req.headers.replace_first_list_value(
            "Via",
            &msg::via_value_for(leg.dest.transport, local, &branch),
        );
        if let Some(c) = &leg.credentials {
            if let Some(auth) = self.auth.get_mut(&(c.username.clone(), leg.dest)) {
                for (n, v) in auth.authorize("INVITE", &req.uri) {
                    req.headers.push(n, v);
                }
            }
        }
        debug!(
            min_se = min_se.as_secs(),
            "422: INVITE sent again with the peer's Min-SE"
        );
        leg.invite_key = TransactionKey::client(&branch, Method::Invite);
        leg.invite = req.clone();
        leg.state = LegState::Initial;
        let dest = leg.dest;
        self.start_client(now, req, dest, Some(id), Role::Invite);
    }

    /// A peer could not be reached over TCP/TLS (or a UDP send had no socket): requests moved
    /// to TCP for their size go over UDP after all; other client transactions to the peer end
    /// with a transport error (17.1.4), which their TU treats as a 503.
    pub(super) fn send_failed(&mut self, now: Instant, peer: Peer, cause: &str) {
        self.registrar_flow_failed(peer);
        let keys: Vec<TransactionKey> = self
            .clients
            .iter()
            .filter(|(_, (t, _, _))| t.dest() == peer && !t.is_terminated())
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            if let Some(udp) = self.switched.remove(&key) {
                if let Some((t, leg, role)) = self.clients.remove(&key) {
                    let mut req = t.request().clone();
                    set_top_via_transport(&mut req, Transport::Udp);
                    debug!(dest = %udp, "TCP failed for a large request: sending it over UDP");
                    let t = ClientTransaction::new(now, req, udp, self.timers);
                    self.clients.insert(key.clone(), (t, leg, role));
                    self.drive_client(now, &key);
                }
                continue;
            }
            if let Some((t, _, _)) = self.clients.get_mut(&key) {
                t.handle_transport_error(cause);
            }
            self.drive_client(now, &key);
        }
    }

    /// An ICMP error (or a local send error) for a UDP request to `peer` (17.1.4): the client
    /// transaction the quoted request names (method and branch) fails with a transport error;
    /// without a branch, every client transaction to `peer` does. Registrations are kept (a
    /// UDP binding is not a flow that broke).
    pub(super) fn unreachable(
        &mut self,
        now: Instant,
        peer: Peer,
        request: Option<(Method, Option<String>)>,
        cause: &str,
    ) {
        let key = match request {
            Some((method, Some(branch))) => Some(TransactionKey::client(&branch, method)),
            _ => None,
        };
        let keys: Vec<TransactionKey> = match key {
            Some(k) => self
                .clients
                .contains_key(&k)
                .then_some(k)
                .into_iter()
                .collect(),
            None => self
                .clients
                .iter()
                .filter(|(_, (t, _, _))| t.dest() == peer && !t.is_terminated())
                .map(|(k, _)| k.clone())
                .collect(),
        };
        if keys.is_empty() {
            debug!(%peer, cause, "ICMP error for no pending request");
        }
        for key in keys {
            if let Some((t, _, _)) = self.clients.get_mut(&key) {
                debug!(%peer, cause, method = %t.request().method.as_str(), "transport error");
                t.handle_transport_error(cause);
            }
            self.drive_client(now, &key);
        }
    }

    pub(super) fn send_cancel(&mut self, now: Instant, id: LegId) {
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
}
