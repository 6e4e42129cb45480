//! Our offers: a re-INVITE or UPDATE we start (the application's, or a session refresh), its
//! responses (2xx and its ACK, 491 glare and the wait before the retry, 401/407, 422, failure)
//! and the queued offer sent after it.

use std::time::Instant;

use tracing::{debug, warn};

use super::{glare_wait, session_in_2xx, update_method, OutgoingOffer, BUSY_RETRY};
use crate::dialog::Uas2xxRetransmitter;

use crate::msg::{HasHeaders, Method};
use crate::transaction::{ClientEvent, Transmit};
use crate::ua::core::{take_challenge, Core, LegId, LegState, Role, MAX_AUTH_ROUNDS};
use crate::ua::session_timer::{parse_min_se, Refresher, SessionExpires};
use crate::ua::{LegEvent, ALLOW};

impl Core {
    /// `Cmd::Reoffer`: our new offer, by re-INVITE or (`update`) UPDATE.
    pub(in crate::ua) fn start_reoffer(
        &mut self,
        now: Instant,
        id: LegId,
        sdp: String,
        update: bool,
    ) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.state != LegState::Confirmed || leg.hangup {
            leg.emit(LegEvent::ReofferRejected { status: 481 });
            return;
        }
        // No offerless re-INVITEs of ours (we could not answer the 2xx's offer in the ACK):
        // an empty offer means our last SDP again, a session refresh.
        let sdp = if sdp.is_empty() && !update {
            leg.local_sdp.clone()
        } else {
            sdp.into_bytes()
        };
        if leg.offers.outgoing.as_ref().is_some_and(|o| !o.refresh) {
            leg.offers.queued = Some((sdp, update));
            return;
        }
        if leg.offers.outgoing.is_some() {
            // A session refresh is in flight: ours follows it (and refreshes too).
            leg.offers.queued = Some((sdp, update));
            return;
        }
        leg.offers.outgoing = Some(OutgoingOffer {
            sdp,
            update,
            refresh: false,
            waiting: Some(now),
            request: None,
            auth_rounds: 0,
            min_se: None,
        });
        self.send_offer(now, id);
    }

    /// Sends our waiting offer if its time came and the dialog is free (else waits on).
    pub(super) fn send_offer(&mut self, now: Instant, id: LegId) {
        let Some(dest) = self.in_dialog_destination(id) else {
            return;
        };
        let via = self.via(dest);
        let ua = self.ua.clone();
        let min_se = self.session_cfg.min_se;
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let busy = leg.offers.incoming.is_some()
            || leg.offers.offer_in_2xx
            || leg
                .retrans
                .as_ref()
                .is_some_and(Uas2xxRetransmitter::is_active);
        let session = leg.offers.session.clone();
        let Some(o) = leg.offers.outgoing.as_mut() else {
            return;
        };
        match o.waiting {
            Some(at) if at <= now => {}
            _ => return,
        }
        if busy {
            o.waiting = Some(now + BUSY_RETRY);
            self.schedule_offers(id);
            return;
        }
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let method = if o.update {
            update_method()
        } else {
            Method::Invite
        };
        let mut r = dialog.new_request(method.clone(), via);
        r.headers.push("User-Agent", ua);
        r.headers.push("Allow", ALLOW);
        r.headers.push("Supported", "timer");
        if let Some(s) = &session {
            // Keep the roles (RFC 4028 9): as this request's UAC, "uac" if we refresh.
            let interval = o.min_se.map_or(s.interval(), |m| m.max(s.interval()));
            let v = SessionExpires {
                interval,
                refresher: Some(if s.we_refresh() {
                    Refresher::Uac
                } else {
                    Refresher::Uas
                }),
            };
            r.headers.push("Session-Expires", v.to_header());
            r.headers
                .push("Min-SE", o.min_se.unwrap_or(min_se).as_secs().to_string());
        }
        if !o.sdp.is_empty() {
            r.headers.push("Content-Type", "application/sdp");
            r.body = o.sdp.clone();
        }
        if let Some(c) = &leg.credentials {
            if let Some(auth) = self.auth.get_mut(&(c.username.clone(), leg.dest)) {
                for (n, v) in auth.authorize(method.as_str(), &r.uri) {
                    r.headers.push(n, v);
                }
            }
        }
        o.waiting = None;
        o.request = Some(r.clone());
        debug!(call_id = %leg.call_id, %method, refresh = o.refresh, "sending our re-offer");
        self.start_client(now, r, dest, Some(id), Role::Reoffer);
    }

    /// An event of our re-INVITE or UPDATE client transaction.
    pub(in crate::ua) fn reoffer_event(&mut self, now: Instant, id: LegId, ev: ClientEvent) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let resp = match ev {
            ClientEvent::Provisional(_) => return,
            ClientEvent::Final(resp) => resp,
            ClientEvent::Timeout | ClientEvent::TransportError { .. } => {
                let status = if matches!(ev, ClientEvent::Timeout) {
                    408
                } else {
                    503
                };
                if let Some(o) = leg.offers.outgoing.take() {
                    if o.waiting.is_none() {
                        if !o.refresh {
                            leg.emit(LegEvent::ReofferRejected { status });
                        }
                        // 12.2.1.2: no response to an in-dialog request ends the dialog.
                        self.send_bye(now, id, true);
                        return;
                    }
                    leg.offers.outgoing = Some(o);
                }
                return;
            }
        };
        let cseq = resp.cseq().0;
        if (200..300).contains(&resp.status) {
            if let Some((n, ack)) = &leg.offers.ack {
                if *n == cseq {
                    let ack = ack.clone();
                    self.send(ack); // a retransmitted 2xx to our re-INVITE (13.2.2.4)
                    return;
                }
            }
        }
        let current = leg
            .offers
            .outgoing
            .as_ref()
            .and_then(|o| o.request.as_ref())
            .is_some_and(|r| r.cseq().0 == cseq);
        if !current {
            return;
        }
        let Some(mut o) = leg.offers.outgoing.take() else {
            return;
        };
        let invite = !o.update;
        match resp.status {
            200..=299 => {
                if invite {
                    // 13.2.2.4: the ACK for the 2xx, our own (not the transaction's).
                    if let Some(dest) = self.in_dialog_destination(id) {
                        let via = self.via(dest);
                        let ua = self.ua.clone();
                        let ack = self
                            .legs
                            .get(&id)
                            .and_then(|l| l.dialog.as_ref())
                            .map(|d| d.ack_for_2xx(cseq, via));
                        if let Some(mut ack) = ack {
                            ack.headers.push("User-Agent", ua);
                            let t = Transmit {
                                dest,
                                payload: ack.encode(),
                            };
                            if let Some(l) = self.legs.get_mut(&id) {
                                l.offers.ack = Some((cseq, t.clone()));
                            }
                            self.send(t);
                        }
                    }
                }
                let Some(leg) = self.legs.get_mut(&id) else {
                    return;
                };
                if !o.sdp.is_empty() {
                    leg.local_sdp = o.sdp.clone();
                }
                if !resp.body.is_empty() {
                    leg.offers.remote_sdp = resp.body.clone();
                }
                if let (Some(c), Some(d)) = (resp.contact_uri(), leg.dialog.as_mut()) {
                    d.refresh_target(c);
                }
                leg.offers
                    .session_refreshed(now, session_in_2xx(&resp), true);
                if !o.refresh && !leg.hangup {
                    leg.emit(LegEvent::ReofferAnswered {
                        sdp: resp.body_text().unwrap_or_default(),
                    });
                }
                self.next_offer(now, id);
            }
            491 => {
                let wait = glare_wait(leg.uac, rand::random());
                debug!(call_id = %leg.call_id, ?wait, "491 glare: our offer waits");
                o.waiting = Some(now + wait);
                o.request = None;
                leg.offers.outgoing = Some(o);
                self.schedule_offers(id);
            }
            401 | 407 if o.auth_rounds < MAX_AUTH_ROUNDS && leg.credentials.is_some() => {
                let Some(creds) = leg.credentials.clone() else {
                    return;
                };
                if let Err(e) = take_challenge(&mut self.auth, &creds, leg.dest, &resp) {
                    warn!(error = %e, "cannot answer the re-offer's digest challenge");
                    if !o.refresh {
                        leg.emit(LegEvent::ReofferRejected {
                            status: resp.status,
                        });
                    }
                    self.next_offer(now, id);
                    return;
                }
                o.auth_rounds += 1;
                o.waiting = Some(now);
                o.request = None;
                leg.offers.outgoing = Some(o);
                self.send_offer(now, id);
            }
            422 if o.min_se.is_none() => {
                // RFC 4028 7.4: ask again with at least the peer's Min-SE.
                o.min_se = resp.headers.get("Min-SE").and_then(parse_min_se);
                if o.min_se.is_none() {
                    if !o.refresh {
                        leg.emit(LegEvent::ReofferRejected { status: 422 });
                    }
                    self.next_offer(now, id);
                    return;
                }
                o.waiting = Some(now);
                o.request = None;
                leg.offers.outgoing = Some(o);
                self.send_offer(now, id);
            }
            status => {
                if !o.refresh {
                    leg.emit(LegEvent::ReofferRejected { status });
                }
                if matches!(status, 408 | 481) {
                    // 12.2.1.2: the dialog is gone.
                    self.send_bye(now, id, true);
                    return;
                }
                self.next_offer(now, id);
            }
        }
    }

    /// Starts the queued offer, if any.
    fn next_offer(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.offers.outgoing.is_some() {
            return;
        }
        if let Some((sdp, update)) = leg.offers.queued.take() {
            leg.offers.outgoing = Some(OutgoingOffer {
                sdp,
                update,
                refresh: false,
                waiting: Some(now),
                request: None,
                auth_rounds: 0,
                min_se: None,
            });
            self.send_offer(now, id);
        }
        self.schedule_offers(id);
    }
}
