//! Offers from the peer: a re-INVITE or UPDATE arriving in a confirmed dialog (491/500 while
//! busy, 422 on a too-small session interval, refreshes answered unchanged), its answer by the
//! application or by us ([`ReofferPolicy`]), its rejection, and the answer in the ACK to an
//! offerless re-INVITE.

use std::time::Instant;

use tracing::{debug, info, warn};

use super::{
    push_session_headers, too_small, uas_session, IncomingOffer, ReofferPolicy,
    APPLICATION_ANSWER_TIMEOUT,
};
use crate::dialog::Uas2xxRetransmitter;
use crate::msg::{HasHeaders, Method, Request, Response};
use crate::sdp::{compare, SessionDescription};
use crate::transaction::TransactionKey;
use crate::ua::core::{Core, LegId, LegState, TimerRef};
use crate::ua::session_timer::UasDecision;
use crate::ua::{LegEvent, ALLOW};

impl Core {
    /// A re-INVITE or UPDATE in a dialog of leg `id`.
    pub(in crate::ua) fn incoming_reoffer(
        &mut self,
        now: Instant,
        id: LegId,
        key: TransactionKey,
        req: Request,
    ) {
        let invite = req.method == Method::Invite;
        let policy = self.reoffers;
        let session = uas_session(&self.session_cfg, &req);
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let in_order = leg
            .dialog
            .as_mut()
            .is_some_and(|d| d.handle_remote_cseq(&req));
        let has_offer = !req.body.is_empty();
        let theirs_pending = leg.offers.incoming.is_some()
            || leg.offers.offer_in_2xx
            || (invite
                && leg
                    .retrans
                    .as_ref()
                    .is_some_and(Uas2xxRetransmitter::is_active));
        let ours_in_flight = leg
            .offers
            .outgoing
            .as_ref()
            .is_some_and(|o| o.waiting.is_none());
        let status = if !in_order || leg.state != LegState::Confirmed || leg.hangup {
            Some(500)
        } else if ours_in_flight && (invite || has_offer) {
            Some(491)
        } else if theirs_pending && (invite || has_offer) {
            Some(500)
        } else {
            None
        };
        if let Some(status) = status {
            debug!(call_id = %leg.call_id, status, "re-offer refused (dialog busy or out of order)");
            let mut r = Response::to_request(&req, status, None);
            if status == 491 {
                r.reason = "Request Pending".into();
            } else {
                r.headers
                    .push("Retry-After", (rand::random::<u8>() % 10).to_string());
            }
            self.respond(now, &key, r);
            return;
        }
        if let UasDecision::TooSmall { min_se } = session {
            self.respond(now, &key, too_small(&req, min_se, None));
            return;
        }
        if let Some((_, owner)) = self.servers.get_mut(&key) {
            *owner = Some(id);
        }
        if !has_offer {
            // UPDATE without body: a session refresh. re-INVITE without body: we offer.
            let sdp = if invite {
                leg.local_sdp.clone()
            } else {
                Vec::new()
            };
            leg.offers.offer_in_2xx = invite && !sdp.is_empty();
            self.answer_incoming(now, id, key, req, sdp, session);
            return;
        }
        let text = String::from_utf8_lossy(&req.body).into_owned();
        let Ok(offer) = SessionDescription::parse(&text) else {
            let mut r = Response::to_request(&req, 400, None);
            r.reason = "Bad Request - SDP".into();
            self.respond(now, &key, r);
            return;
        };
        let previous = std::str::from_utf8(&leg.offers.remote_sdp)
            .ok()
            .and_then(|s| SessionDescription::parse(s).ok());
        let refresh = req.body == leg.offers.remote_sdp
            || previous
                .as_ref()
                .and_then(|p| compare(p, &offer).ok())
                .is_some_and(|c| c.same_version || c.is_empty());
        if refresh || policy == ReofferPolicy::AnswerUnchanged {
            if !refresh {
                info!(call_id = %leg.call_id, "re-offer answered with the unchanged session (ReofferPolicy::AnswerUnchanged)");
            }
            let sdp = leg.local_sdp.clone();
            self.answer_incoming(now, id, key, req, sdp, session);
            return;
        }
        leg.offers.incoming = Some(IncomingOffer {
            key,
            req,
            session,
            deadline: now + APPLICATION_ANSWER_TIMEOUT,
        });
        leg.emit(LegEvent::Reoffer { sdp: text });
        self.schedule_offers(id);
    }

    /// Sends the 2xx to the peer's re-INVITE or UPDATE with `sdp` (our answer, or our offer
    /// for an offerless re-INVITE); a re-INVITE's 2xx is retransmitted until its ACK.
    pub(super) fn answer_incoming(
        &mut self,
        now: Instant,
        id: LegId,
        key: TransactionKey,
        req: Request,
        sdp: Vec<u8>,
        session: UasDecision,
    ) {
        let Some(peer) = self.legs.get(&id).map(|l| l.dest) else {
            return;
        };
        let contact = self.contact("callbridge", peer);
        let ua = self.ua.clone();
        let timers = self.timers;
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let mut r = Response::to_request(&req, 200, None);
        r.headers.push("Contact", contact);
        r.headers.push("Allow", ALLOW);
        push_session_headers(&mut r, session);
        if !sdp.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = sdp;
            leg.local_sdp = r.body.clone();
        }
        if !req.body.is_empty() {
            leg.offers.remote_sdp = req.body.clone();
        }
        if let Some(c) = req.contact_uri() {
            if let Some(d) = leg.dialog.as_mut() {
                d.refresh_target(c); // 12.2.2: a target refresh request
            }
        }
        let value = match session {
            UasDecision::Use { value, .. } => Some(value),
            _ => None,
        };
        leg.offers.session_refreshed(now, value, false);
        if req.method == Method::Invite {
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
        } else {
            self.respond(now, &key, r);
        }
        self.schedule_offers(id);
    }

    /// `Cmd::AnswerReoffer`.
    pub(in crate::ua) fn answer_reoffer(&mut self, now: Instant, id: LegId, sdp: String) {
        let Some(i) = self
            .legs
            .get_mut(&id)
            .and_then(|l| l.offers.incoming.take())
        else {
            debug!("answer_reoffer without a pending offer: ignored");
            return;
        };
        self.answer_incoming(now, id, i.key, i.req, sdp.into_bytes(), i.session);
    }

    /// `Cmd::RejectReoffer`.
    pub(in crate::ua) fn reject_reoffer(&mut self, now: Instant, id: LegId, status: u16) {
        let Some(i) = self
            .legs
            .get_mut(&id)
            .and_then(|l| l.offers.incoming.take())
        else {
            debug!("reject_reoffer without a pending offer: ignored");
            return;
        };
        let status = if (300..700).contains(&status) {
            status
        } else {
            488
        };
        let r = Response::to_request(&i.req, status, None);
        self.respond(now, &i.key, r);
        self.schedule_offers(id);
    }

    /// The ACK to the 2xx of a re-INVITE we offered in: its body is the answer.
    pub(in crate::ua) fn ack_answer(&mut self, id: LegId, req: &Request) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if !std::mem::take(&mut leg.offers.offer_in_2xx) {
            // The answer to our offer in the 2xx to an offerless first INVITE.
            if leg.offers.remote_sdp.is_empty() {
                leg.offers.remote_sdp = req.body.clone();
            }
            return;
        }
        if req.body.is_empty() {
            warn!(call_id = %leg.call_id, "ACK without the answer to our offer in the 2xx");
            return;
        }
        leg.offers.remote_sdp = req.body.clone();
        // Only an application that takes part in offers hears of it (one that does not may
        // take an unknown event for the end of the leg).
        if self.reoffers == ReofferPolicy::Application {
            leg.emit(LegEvent::ReofferAnswered {
                sdp: req.body_text().unwrap_or_default(),
            });
        }
    }
}
