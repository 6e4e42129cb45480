//! The server side: [`IncomingCall`], and the core's handling of a new INVITE, ringing,
//! answering (2xx retransmitted until the ACK), rejecting, and incoming CANCEL. Offers in the
//! confirmed dialog are `reinvite`'s.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::core::{Cmd, Core, Leg, LegId, LegState, TimerRef};
use super::reinvite::{lists_tag, too_small, uas_session, Offers};
use super::session_timer::UasDecision;
use super::{LegController, LegEvent, ALLOW};
use crate::dialog::{Dialog, Uas2xxRetransmitter};
use crate::msg::{self, HasHeaders, Method, Request, Response};
use crate::peer::{Peer, Transport};
use crate::transaction::TransactionKey;

/// An incoming INVITE, delivered by [`Endpoint::bind`](super::Endpoint::bind)'s receiver.
/// `100 Trying` was already sent.
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
    /// The transport it came over.
    pub transport: Transport,
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
        let _ = self.ctl.cmd.send(Cmd::Reject(self.ctl.leg, status, None));
    }

    /// Like [`IncomingCall::reject`], with the `Retry-After` seconds a `503` carries (at
    /// least 1; other statuses carry none). `reject` gives a `503` a default of 5 s.
    pub fn reject_retry_after(&self, status: u16, retry_after_s: u32) {
        let _ = self
            .ctl
            .cmd
            .send(Cmd::Reject(self.ctl.leg, status, Some(retry_after_s)));
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
        let _ = self.ctl.cmd.send(Cmd::Reject(self.ctl.leg, 480, None));
    }
}

/// The `Retry-After` (seconds) of a `503` to an INVITE when the rejecter gives none.
const REJECT_RETRY_AFTER_S: u32 = 5;

/// The `Retry-After` seconds of a `503`: those given (at least 1), else the default.
fn retry_after_value(given: Option<u32>) -> u32 {
    given.map_or(REJECT_RETRY_AFTER_S, |s| s.max(1))
}

impl Core {
    /// `Cmd::Ring`: 180 Ringing, while the incoming INVITE is unanswered.
    pub(super) fn ring(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self
            .legs
            .get(&id)
            .filter(|l| !l.uac && l.state == LegState::Initial)
        else {
            return;
        };
        let mut r = Response::to_request(&leg.invite, 180, Some(&leg.local_tag));
        r.headers
            .push("Contact", self.contact("callbridge", leg.dest));
        let key = leg.invite_key.clone();
        self.respond(now, &key, r);
    }

    /// `Cmd::Reject`: a final error response to the unanswered INVITE (500 for a status
    /// outside 300..=699; a 503 carries `Retry-After`: `retry_after_s`, at least 1, else
    /// the default); the leg ends.
    pub(super) fn reject(
        &mut self,
        now: Instant,
        id: LegId,
        status: u16,
        retry_after_s: Option<u32>,
    ) {
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
        let mut r = Response::to_request(&leg.invite, status, Some(&leg.local_tag));
        if status == 503 {
            // No capacity, or draining for a restart: the caller may try again (RFC 3261 21.5.4).
            r.headers
                .push("Retry-After", retry_after_value(retry_after_s).to_string());
        }
        let key = leg.invite_key.clone();
        self.respond(now, &key, r);
        self.remove_leg(id);
    }

    pub(super) fn answer(&mut self, now: Instant, id: LegId, sdp: String) {
        let Some(peer) = self.legs.get(&id).map(|l| l.dest) else {
            return;
        };
        let contact = self.contact("callbridge", peer);
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
        // RFC 4028 9: the session timer agreed when the INVITE arrived.
        r.headers.push("Supported", "timer");
        if let Some((value, require)) = leg.offers.pending_session.take() {
            r.headers.push("Session-Expires", value.to_header());
            if require {
                r.headers.push("Require", "timer");
            }
            leg.offers.session_refreshed(now, Some(value), false);
        }
        leg.offers.remote_sdp = leg.invite.body.clone();
        leg.offers.peer_allows_update = lists_tag(&leg.invite, "Allow", "UPDATE");
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
        self.schedule_offers(id);
    }

    pub(super) fn ack_2xx(&mut self, now: Instant, req: &Request) {
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
        self.ack_answer(id, req);
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.bye_pending {
            leg.bye_pending = false;
            self.send_bye(now, id, true);
        }
    }

    pub(super) fn new_incoming(
        &mut self,
        _now: Instant,
        src: Peer,
        key: TransactionKey,
        req: Request,
    ) {
        let now = _now;
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        let session = match uas_session(&self.session_cfg, &req) {
            UasDecision::TooSmall { min_se } => {
                debug!("INVITE asks for a session interval below our Min-SE: 422");
                let r = too_small(&req, min_se, Some(&msg::new_tag()));
                self.respond(now, &key, r);
                return;
            }
            UasDecision::Use { value, require } => Some((value, require)),
            UasDecision::None => None,
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
            source: src.addr,
            transport: src.transport,
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
            credentials: None,
            auth_rounds: 0,
            offers: Offers::with_session(session),
            early: None,
        };
        self.by_dialog.insert((leg.call_id.clone(), local_tag), id);
        self.legs.insert(id, leg);
    }

    pub(super) fn incoming_cancel(&mut self, now: Instant, key: TransactionKey, req: Request) {
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

#[cfg(test)]
mod tests {
    use super::{retry_after_value, REJECT_RETRY_AFTER_S};

    #[test]
    fn a_503_carries_the_given_retry_after_else_the_default() {
        assert_eq!(retry_after_value(None), REJECT_RETRY_AFTER_S);
        assert_eq!(retry_after_value(Some(7)), 7);
        assert_eq!(
            retry_after_value(Some(0)),
            1,
            "never 0: that would invite a storm"
        );
    }
}
