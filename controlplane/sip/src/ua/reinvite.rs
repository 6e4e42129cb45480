//! Offers inside a confirmed dialog (RFC 3264 8): re-INVITE (RFC 3261 14) and UPDATE (RFC 3311)
//! in both directions, glare (491), and the session timer (RFC 4028) that rides on them.
//!
//! Per leg, [`Offers`] holds the offer/answer state besides the dialog: the peer's last SDP,
//! an incoming offer waiting for the application, our outgoing offer (waiting or in flight)
//! plus one queued behind it, and the running [`SessionTimer`]. Rules, with their sources:
//!
//! * one offer at a time per dialog: an incoming re-INVITE or offer-carrying UPDATE while ours
//!   is in flight gets `491` (14.2; RFC 3311 5.2); while the peer's previous offer is still
//!   unanswered (or its 2xx not ACKed) it gets `500` with `Retry-After` (14.2);
//! * our offer meeting a `491` is sent again after 2.1–4 s if we own the Call-ID (we sent the
//!   dialog's INVITE), 0–2 s otherwise (14.1); our offer waits while the peer's is pending;
//! * a re-offer whose `o=` version is unchanged (a session refresh, [`crate::sdp::compare`])
//!   is answered with our unchanged SDP; a changed one by [`ReofferPolicy`];
//! * an offerless re-INVITE is answered by offering our current SDP in the 2xx; the answer in
//!   the ACK is reported as [`LegEvent::ReofferAnswered`] (with [`ReofferPolicy::Application`]);
//! * the refresher refreshes at half the session interval (UPDATE without body when the peer
//!   allows UPDATE and [`SessionTimerConfig::refresh_with_update`], else a re-INVITE with our
//!   unchanged SDP); without a refresh the dialog ends with BYE ([`LegEvent::SessionExpired`]).

use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::core::{Core, LegId, LegState, TimerRef, MAX_AUTH_ROUNDS};
use super::session_timer::{
    negotiate_uas, parse_min_se, Refresher, SessionAction, SessionExpires, SessionTimer,
    SessionTimerConfig, UasDecision,
};
use super::{LegEvent, ALLOW};
use crate::dialog::Uas2xxRetransmitter;
use crate::digest::{ChallengeKind, ClientAuth};
use crate::msg::{HasHeaders, Method, Request, Response};
use crate::sdp::{compare, SessionDescription};
use crate::transaction::{ClientEvent, TransactionKey, Transmit};

/// What a changed offer in a re-INVITE or UPDATE becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ReofferPolicy {
    /// Answered at once with the SDP we last sent, unchanged (callbridge before issue 8: the
    /// other leg and the relay never hear of hold or a new address).
    #[default]
    AnswerUnchanged,
    /// Reported as [`LegEvent::Reoffer`]; the application answers with
    /// [`super::LegController::answer_reoffer`] or [`super::LegController::reject_reoffer`].
    /// Without either within 10 s (below the peer's Timer B), it is answered unchanged.
    Application,
}

/// How long an offer waits for the application before being answered unchanged (below the
/// peer's Timer B of 32 s).
const APPLICATION_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long our offer waits before looking again when the dialog is busy with the peer's.
const BUSY_RETRY: Duration = Duration::from_millis(200);

/// RFC 3261 14.1: how long our offer refused with 491 waits, from a random number: 2.1–4 s
/// in units of 10 ms if we own the Call-ID (we sent the dialog's INVITE), 0–2 s otherwise.
fn glare_wait(owns_call_id: bool, random: u32) -> Duration {
    let tens = if owns_call_id {
        210 + random % 191
    } else {
        random % 201
    };
    Duration::from_millis(u64::from(tens) * 10)
}

pub(super) fn is_update(m: &Method) -> bool {
    matches!(m, Method::Other(s) if s.eq_ignore_ascii_case("UPDATE"))
}

fn update_method() -> Method {
    Method::Other("UPDATE".into())
}

/// Whether a `Supported` or `Require` header of `h` lists `tag`.
pub(super) fn lists_tag(h: &impl HasHeaders, name: &str, tag: &str) -> bool {
    h.headers()
        .get_list(name)
        .any(|t| t.trim().eq_ignore_ascii_case(tag))
}

/// The offer/answer state of one leg's dialog (owned by the core task, next to the dialog).
#[derive(Debug, Default)]
pub(super) struct Offers {
    /// The peer's last SDP (its offer or answer): what a new offer is compared with.
    pub(super) remote_sdp: Vec<u8>,
    /// Whether the peer's `Allow` lists UPDATE (for session refreshes).
    pub(super) peer_allows_update: bool,
    /// The session timer agreed for the first INVITE, to be started when the dialog is.
    pub(super) pending_session: Option<(SessionExpires, bool)>,
    /// UAC: our INVITE was sent again after a 422 (RFC 4028 7.4; once).
    pub(super) min_se_retried: bool,
    /// The peer's offer waiting for the application.
    incoming: Option<IncomingOffer>,
    /// Our offer, waiting for the dialog to be free or in flight.
    outgoing: Option<OutgoingOffer>,
    /// The application's next offer, sent after the one in flight (the last one asked wins).
    queued: Option<(Vec<u8>, bool)>,
    /// We offered in the 2xx to an offerless re-INVITE: the answer comes in its ACK.
    offer_in_2xx: bool,
    /// The ACK of our last re-INVITE's 2xx (its CSeq number), re-sent to 2xx retransmissions.
    ack: Option<(u32, Transmit)>,
    /// The running session timer.
    session: Option<SessionTimer>,
}

#[derive(Debug)]
struct IncomingOffer {
    key: TransactionKey,
    req: Request,
    session: UasDecision,
    deadline: Instant,
}

#[derive(Debug)]
struct OutgoingOffer {
    sdp: Vec<u8>,
    update: bool,
    /// A session refresh of ours (not reported to the application).
    refresh: bool,
    /// `Some(at)`: waiting until `at`; `None`: in flight as `request`.
    waiting: Option<Instant>,
    request: Option<Request>,
    auth_rounds: u8,
    /// The interval to ask for after a 422 (RFC 4028 7.4).
    min_se: Option<Duration>,
}

impl Offers {
    /// A UAS leg's state, with the session timer agreed on its INVITE.
    pub(super) fn with_session(session: Option<(SessionExpires, bool)>) -> Self {
        Self {
            pending_session: session,
            ..Self::default()
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.incoming.as_ref().map(|i| i.deadline),
            self.outgoing.as_ref().and_then(|o| o.waiting),
            self.session.as_ref().map(SessionTimer::poll_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Starts, restarts or stops the session timer after a successful (re-)INVITE or UPDATE.
    pub(super) fn session_refreshed(
        &mut self,
        now: Instant,
        value: Option<SessionExpires>,
        we_are_uac: bool,
    ) {
        self.session = value.map(|v| {
            let we_refresh = match v.refresher {
                Some(Refresher::Uac) => we_are_uac,
                Some(Refresher::Uas) => !we_are_uac,
                None => we_are_uac,
            };
            match self.session.take() {
                Some(mut t) => {
                    t.handle_refreshed(now, v.interval, we_refresh);
                    t
                }
                None => SessionTimer::new(now, v.interval, we_refresh),
            }
        });
    }
}

/// The 2xx headers for a session-timer decision.
fn push_session_headers(r: &mut Response, d: UasDecision) {
    r.headers.push("Supported", "timer");
    if let UasDecision::Use { value, require } = d {
        r.headers.push("Session-Expires", value.to_header());
        if require {
            r.headers.push("Require", "timer");
        }
    }
}

/// The session timer a request asks for, judged by us as its UAS.
pub(super) fn uas_session(cfg: &SessionTimerConfig, req: &Request) -> UasDecision {
    let requested = req
        .headers
        .get("Session-Expires")
        .and_then(SessionExpires::parse);
    let supports = lists_tag(req, "Supported", "timer") || lists_tag(req, "Require", "timer");
    negotiate_uas(cfg, requested, supports)
}

/// `422 Session Interval Too Small` (RFC 4028 6) for `req`.
pub(super) fn too_small(req: &Request, min_se: Duration, to_tag: Option<&str>) -> Response {
    let mut r = Response::to_request(req, 422, to_tag);
    r.reason = "Session Interval Too Small".into();
    r.headers.push("Min-SE", min_se.as_secs().to_string());
    r
}

/// The session timer in a 2xx to our request (as its UAC).
pub(super) fn session_in_2xx(resp: &Response) -> Option<SessionExpires> {
    resp.headers
        .get("Session-Expires")
        .and_then(SessionExpires::parse)
}

impl Core {
    /// A re-INVITE or UPDATE in a dialog of leg `id`.
    pub(super) fn incoming_reoffer(
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
    fn answer_incoming(
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
    pub(super) fn answer_reoffer(&mut self, now: Instant, id: LegId, sdp: String) {
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
    pub(super) fn reject_reoffer(&mut self, now: Instant, id: LegId, status: u16) {
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
    pub(super) fn ack_answer(&mut self, id: LegId, req: &Request) {
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

    /// `Cmd::Reoffer`: our new offer, by re-INVITE or (`update`) UPDATE.
    pub(super) fn start_reoffer(&mut self, now: Instant, id: LegId, sdp: String, update: bool) {
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
    fn send_offer(&mut self, now: Instant, id: LegId) {
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
        self.start_client(now, r, dest, Some(id), super::core::Role::Reoffer);
    }

    /// An event of our re-INVITE or UPDATE client transaction.
    pub(super) fn reoffer_event(&mut self, now: Instant, id: LegId, ev: ClientEvent) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let resp = match ev {
            ClientEvent::Provisional(_) => return,
            ClientEvent::Final(resp) => resp,
            ClientEvent::Timeout | ClientEvent::TransportError => {
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
                let (kind, header) = if resp.status == 407 {
                    (ChallengeKind::Proxy, "Proxy-Authenticate")
                } else {
                    (ChallengeKind::Www, "WWW-Authenticate")
                };
                let values: Vec<&str> = resp.headers.get_all(header).collect();
                let auth = self
                    .auth
                    .entry((creds.username.clone(), leg.dest))
                    .or_insert_with(|| ClientAuth::new(creds));
                if let Err(e) = auth.handle_challenge(kind, &values) {
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

    /// Schedules the leg timer for the offers' next deadline.
    pub(super) fn schedule_offers(&mut self, id: LegId) {
        let next = self.legs.get(&id).and_then(|l| l.offers.poll_timeout());
        self.schedule(next, TimerRef::Leg(id.0));
    }

    /// The leg timer's offer part: the application's answer overdue, our waiting offer, the
    /// session timer.
    pub(super) fn offers_timer(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if let Some(i) = leg.offers.incoming.take_if(|i| i.deadline <= now) {
            warn!(call_id = %leg.call_id, "the application did not answer the re-offer: answered unchanged");
            let sdp = leg.local_sdp.clone();
            self.answer_incoming(now, id, i.key, i.req, sdp, i.session);
        }
        if self
            .legs
            .get(&id)
            .and_then(|l| l.offers.outgoing.as_ref())
            .and_then(|o| o.waiting)
            .is_some_and(|at| at <= now)
        {
            self.send_offer(now, id);
        }
        let refresh_with_update = self.session_cfg.refresh_with_update;
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let action = leg
            .offers
            .session
            .as_mut()
            .and_then(|s| s.handle_timeout(now));
        if leg.state != LegState::Confirmed || leg.hangup {
            // Our BYE is on its way: nothing to refresh or expire any more.
            leg.offers.session = None;
            return;
        }
        match action {
            Some(SessionAction::Expire) => {
                warn!(call_id = %leg.call_id, "session timer expired without refresh: BYE (RFC 4028 10)");
                leg.offers.session = None;
                leg.emit(LegEvent::SessionExpired);
                leg.hangup = true;
                self.send_bye(now, id, true);
                return;
            }
            Some(SessionAction::Refresh) if leg.offers.outgoing.is_none() => {
                let update = refresh_with_update && leg.offers.peer_allows_update;
                leg.offers.outgoing = Some(OutgoingOffer {
                    sdp: if update {
                        Vec::new()
                    } else {
                        leg.local_sdp.clone()
                    },
                    update,
                    refresh: true,
                    waiting: Some(now),
                    request: None,
                    auth_rounds: 0,
                    min_se: None,
                });
                self.send_offer(now, id);
            }
            _ => {}
        }
        self.schedule_offers(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glare_waits_follow_rfc3261_14_1() {
        let ms = |d: Duration| d.as_millis();
        assert_eq!(ms(glare_wait(true, 0)), 2100);
        assert_eq!(ms(glare_wait(true, 190)), 4000);
        assert_eq!(ms(glare_wait(true, 191)), 2100);
        assert_eq!(ms(glare_wait(false, 0)), 0);
        assert_eq!(ms(glare_wait(false, 200)), 2000);
        for r in [1u32, 77, 4_000_000_000, u32::MAX] {
            assert!((2100..=4000).contains(&ms(glare_wait(true, r))));
            assert!(ms(glare_wait(false, r)) <= 2000);
            assert_eq!(ms(glare_wait(false, r)) % 10, 0);
        }
    }

    #[test]
    fn offers_poll_the_earliest_deadline() {
        let t0 = Instant::now();
        let mut o = Offers::default();
        assert_eq!(o.poll_timeout(), None);
        o.session_refreshed(
            t0,
            Some(SessionExpires {
                interval: Duration::from_secs(90),
                refresher: Some(Refresher::Uac),
            }),
            true,
        );
        assert_eq!(o.poll_timeout(), Some(t0 + Duration::from_secs(45)));
        // As the UAS of a request naming the UAC as refresher, we only watch for expiry.
        o.session_refreshed(
            t0,
            Some(SessionExpires {
                interval: Duration::from_secs(90),
                refresher: Some(Refresher::Uac),
            }),
            false,
        );
        assert_eq!(o.poll_timeout(), Some(t0 + Duration::from_secs(60)));
        o.session_refreshed(t0, None, false);
        assert_eq!(o.poll_timeout(), None);
    }
}
