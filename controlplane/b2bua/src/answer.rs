//! SDP answers on a call's legs: an inbound caller's offer answered, the answers to our
//! offers read (SRTP keys and payload types given to the relay), and re-offers (hold, resume,
//! a moved address) answered and passed on to the other leg.

use std::net::SocketAddr;

use dp_api::{Codec, Command, LegId};
use flows::{LegInput, Role};
use sip::sdp::{AnswerParams, LocalSession, OfferParams, SessionDescription, Srtp};
use sip::{IncomingCall, InviteRequest, SipError};
use srtp::CryptoAttr;
use tracing::{info, warn};

use crate::dial::key_params;
use crate::*;

impl CallLegs {
    /// Takes a caller's INVITE as the `role` leg (inbound call): its events (CANCEL, BYE)
    /// come through [`CallLegs::next`]; [`CallLegs::answer`] answers it.
    pub fn incoming(&mut self, role: Role, call: IncomingCall) {
        let offer = call
            .sdp
            .as_deref()
            .and_then(|s| SessionDescription::parse(s).ok());
        let req = InviteRequest {
            target: call.request_uri.clone(),
            from_user: String::new(),
            from_display: None,
            sdp: call.sdp.clone().unwrap_or_default(),
            headers: Vec::new(),
            credentials: None,
        };
        call.ring();
        let sip = SipCall::In(call);
        let ctl = sip.controller();
        let leg = Leg {
            call: sip,
            ctl,
            req,
            hop: None,
            rest: Vec::new(),
            number: None,
            media: LegId(0),
            rtp: SocketAddr::from(([0, 0, 0, 0], 0)),
            remote: offer.clone(),
            offer,
            crypto: None,
            session: None,
            srtp: Srtp::Off,
        };
        match role {
            Role::Customer => self.customer = Some(leg),
            Role::Agent => self.agent = Some(leg),
        }
    }

    /// Answers the `role` leg's incoming INVITE with media leg `leg`: PCMU or PCMA (the
    /// caller's preference) and telephone-event from its offer, plain RTP (a trunk's calls
    /// reach us over whatever transport; SDES is not answered). Returns what the machine
    /// needs; an offer we cannot use is refused with 488 and reported unusable.
    pub fn answer(&mut self, role: Role, leg: LegId) -> LegInput {
        let rtp = self.b2b.media.rtp_of(leg);
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(l) = slot.as_mut() else {
            return LegInput::Ended;
        };
        let SipCall::In(call) = &l.call else {
            return LegInput::AnswerUnusable;
        };
        let (Some(rtp), Some(offer)) = (rtp, l.offer.clone()) else {
            call.reject(488);
            return LegInput::AnswerUnusable;
        };
        let mut session = LocalSession::new(u64::from(leg.0), rtp.ip());
        match session.answer(&offer, &AnswerParams::new(rtp)) {
            Ok(a) => {
                call.answer(a.sdp);
                l.media = leg;
                l.rtp = rtp;
                l.session = Some(session);
                let n = a.agreement.negotiated;
                self.set_payload_types(leg, &n);
                LegInput::Answered {
                    remote: n.remote,
                    codec: codec_of(n.encoding),
                }
            }
            Err(e) => {
                warn!(call = %self.call, "cannot answer the caller's offer: {e}");
                call.reject(488);
                LegInput::AnswerUnusable
            }
        }
    }

    /// The peer of `role` sent a new offer (re-INVITE or UPDATE): answered from the leg's own
    /// session (the direction mirrored, the SRTP key kept), the relay told a new address
    /// (which re-latches), and a direction change (hold, unhold) passed on to the other leg as
    /// our re-offer there. An offer we cannot use gets 488 and changes nothing.
    pub(crate) fn reoffered(&mut self, role: Role, sdp: &str) {
        let other = match role {
            Role::Customer => Role::Agent,
            Role::Agent => Role::Customer,
        };
        let call = self.call.clone();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(x) = slot.as_mut() else {
            return;
        };
        let Some(ctl) = x.ctl.dialog().cloned() else {
            return;
        };
        let offer = match SessionDescription::parse(sdp) {
            Ok(o) => o,
            Err(e) => {
                warn!(call = %call, role = role.as_str(), "unusable re-offer: {e}");
                ctl.reject_reoffer(488);
                return;
            }
        };
        let change = x
            .remote
            .as_ref()
            .and_then(|r| sip::sdp::compare(r, &offer).ok());
        let mut params = AnswerParams::new(x.rtp);
        if let Some(c) = &x.crypto {
            params.srtp = x.srtp;
            params.crypto_key = key_params(c);
        }
        let Some(session) = x.session.as_mut() else {
            ctl.reject_reoffer(488);
            return;
        };
        let answer = match session.answer(&offer, &params) {
            Ok(a) => a,
            Err(e) => {
                warn!(call = %call, role = role.as_str(), "cannot answer the re-offer: {e}");
                ctl.reject_reoffer(488);
                return;
            }
        };
        ctl.answer_reoffer(answer.sdp);
        x.remote = Some(offer);
        let media = x.media;
        let n = answer.agreement.negotiated;
        let Some(change) = change else {
            return;
        };
        info!(call = %call, role = role.as_str(), hold = ?change.hold, direction = ?change.direction, remote = ?change.remote, "re-offer");
        if let Some(remote) = change.remote {
            let _ = self.media(Command::SetRemote {
                leg: media,
                remote,
                codec: codec_of(n.encoding),
            });
        }
        if let Some(d) = change.direction {
            let oslot = match other {
                Role::Customer => &mut self.customer,
                Role::Agent => &mut self.agent,
            };
            let Some(y) = oslot.as_mut() else {
                return;
            };
            let Some(yctl) = y.ctl.dialog().cloned() else {
                return;
            };
            let mut p = OfferParams::new(y.rtp);
            p.direction = d;
            if let Some(c) = &y.crypto {
                p.srtp = y.srtp;
                p.crypto_key = key_params(c);
            }
            let Some(ysession) = y.session.as_mut() else {
                return;
            };
            match ysession.offer(&p) {
                Ok(sdp) => yctl.reoffer(sdp),
                Err(e) => warn!(call = %call, "cannot re-offer to the other leg: {e}"),
            }
        }
    }

    /// Our re-offer to `role` was answered: the peer's new SDP is kept, and a new address
    /// given to the relay.
    pub(crate) fn reoffer_answered(&mut self, role: Role, sdp: &str) {
        let call = self.call.clone();
        let slot = match role {
            Role::Customer => &mut self.customer,
            Role::Agent => &mut self.agent,
        };
        let Some(y) = slot.as_mut() else {
            return;
        };
        let Ok(answer) = SessionDescription::parse(sdp) else {
            warn!(call = %call, role = role.as_str(), "unusable answer to our re-offer");
            return;
        };
        let agreement = y.session.as_mut().and_then(|s| s.read_answer(&answer).ok());
        let change = y
            .remote
            .as_ref()
            .and_then(|r| sip::sdp::compare(r, &answer).ok());
        y.remote = Some(answer);
        let media = y.media;
        if let (Some(a), Some(remote)) = (agreement, change.and_then(|c| c.remote)) {
            let _ = self.media(Command::SetRemote {
                leg: media,
                remote,
                codec: codec_of(a.negotiated.encoding),
            });
        }
    }

    /// A leg's 2xx: reads its SDP answer against our offer; when the stream is SRTP, gives
    /// the media leg its keys (the peer's to decrypt, ours to encrypt) before anything flows.
    /// An answer without SRTP where the leg requires it, or one that does not fit the offer,
    /// is unusable.
    pub(crate) fn answered(&mut self, role: Role, sdp: &str) -> LegInput {
        let slot = match role {
            Role::Customer => &self.customer,
            Role::Agent => &self.agent,
        };
        let Some(leg) = slot.as_ref() else {
            return answer_input(sdp);
        };
        let Some(offer) = &leg.offer else {
            return answer_input(sdp);
        };
        let policy = leg.hop.as_ref().map_or(Srtp::Off, |h| h.srtp);
        let parsed = SessionDescription::parse(sdp);
        let agreement = match parsed
            .as_ref()
            .map_err(|e| SipError::Sdp(e.to_string()))
            .and_then(|a| sip::sdp::read_answer(offer, a))
        {
            Ok(a) => a,
            Err(e) => {
                warn!(call = %self.call, role = role.as_str(), "unusable SDP answer: {e}");
                return LegInput::AnswerUnusable;
            }
        };
        let media = leg.media;
        if let Some(l) = match role {
            Role::Customer => self.customer.as_mut(),
            Role::Agent => self.agent.as_mut(),
        } {
            if let (Some(s), Ok(a)) = (l.session.as_mut(), &parsed) {
                // Closes the session's pending offer (the one just answered).
                let _ = s.read_answer(a);
            }
            l.remote = parsed.ok();
        }
        let slot = match role {
            Role::Customer => &self.customer,
            Role::Agent => &self.agent,
        };
        let Some(leg) = slot.as_ref() else {
            return LegInput::Ended;
        };
        let ours = leg.crypto.clone();
        match (&agreement.srtp, ours) {
            (Some(keys), Some(ours)) => {
                let line = format!("{} {} {}", keys.tag, keys.suite.name(), keys.remote);
                let theirs = match CryptoAttr::parse(&line) {
                    Ok(c) => c,
                    Err(e) => {
                        warn!(call = %self.call, role = role.as_str(), "unusable a=crypto in the answer: {e}");
                        return LegInput::AnswerUnusable;
                    }
                };
                let cmd = Command::SetSrtp {
                    leg: media,
                    keys: Some(dp_api::SrtpKeys {
                        recv: (&theirs).into(),
                        send: (&ours).into(),
                    }),
                };
                if let Err(e) = self.media(cmd) {
                    warn!(call = %self.call, "cannot set SRTP keys: {e}");
                    return LegInput::AnswerUnusable;
                }
                debug!(call = %self.call, role = role.as_str(), "SRTP negotiated");
            }
            (None, _) if policy == Srtp::Required => {
                warn!(call = %self.call, role = role.as_str(), "SRTP required but the answer is plain RTP");
                return LegInput::AnswerUnusable;
            }
            _ => {}
        }
        let n = agreement.negotiated;
        let codec = codec_of(n.encoding);
        self.set_payload_types(media, &n);
        // The media leg moved to another node while this party rang: re-offer it now.
        if let Some(leg) = self.moved_since_offer(role) {
            self.moved(leg);
        }
        LegInput::Answered {
            remote: n.remote,
            codec,
        }
    }

    /// Tells the media leg the payload types its peer agreed to (the audio law and number,
    /// telephone-event's number), so the relay converts µ-law ↔ A-law and renumbers DTMF
    /// between legs that differ. Sent before the machine's `SetRemote` of the same codec,
    /// which keeps them.
    pub(crate) fn set_payload_types(&mut self, leg: LegId, n: &sip::sdp::Negotiated) {
        let cmd = Command::SetPayloadTypes {
            leg,
            types: dp_api::PayloadTypes {
                codec: codec_of(n.encoding),
                audio: n.payload_type,
                telephone_event: n.telephone_event,
            },
        };
        if let Err(e) = self.media(cmd) {
            warn!(call = %self.call, "cannot set the payload types: {e}");
        }
    }
}

/// The data plane's codec for an SDP encoding.
pub(crate) fn codec_of(e: sip::sdp::Encoding) -> Codec {
    match e {
        sip::sdp::Encoding::Pcmu => Codec::Pcmu,
        sip::sdp::Encoding::Pcma => Codec::Pcma,
    }
}
