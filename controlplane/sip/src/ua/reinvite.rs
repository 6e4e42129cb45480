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
//!
//! This file holds the shared state ([`Offers`]), the session-timer helpers for the INVITE
//! sides and the leg timer's offer part; the peer's offers are handled in `reinvite/incoming.rs`,
//! ours (and glare) in `reinvite/outgoing.rs`.

use std::time::{Duration, Instant};

use tracing::warn;

use super::core::{Core, LegId, LegState, TimerRef};
use super::session_timer::{
    negotiate_uas, Refresher, SessionAction, SessionExpires, SessionTimer, SessionTimerConfig,
    UasDecision,
};
use super::LegEvent;
use crate::msg::{HasHeaders, Method, Request, Response};
use crate::transaction::{TransactionKey, Transmit};

mod incoming;
mod outgoing;

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
