//! SDP (RFC 4566) and audio offer/answer (RFC 3264) with SDES-SRTP (RFC 4568). Sans-IO: text
//! in, text and decisions out.
//!
//! ```text
//!   model     SessionDescription::parse / to_sdp_string; Media, Crypto, Rtcp, Origin, Direction
//!   negotiate LocalSession (our o= line, version bumps only on change)
//!               .offer(&OfferParams)            → our offer text          (RFC 3264 5)
//!               .answer(&offer, &AnswerParams)  → Answer { sdp, agreement } (RFC 3264 6)
//!               .read_answer(&answer)           → Agreement               (RFC 3264 7)
//!   change    compare(previous_remote, new_remote) → Change { hold, remote, … } (RFC 3264 8)
//! ```
//!
//! # What we negotiate
//! One audio stream per leg: PCMU (0) or PCMA (8), whichever the caller's preference list
//! picks among what the offer lists (the relay converts µ-law ↔ A-law between legs on
//! different laws, `relay::g711`), plus telephone-event (RFC 4733) with the offerer's payload
//! type and fmtp — DTMF passes through the relay untouched. The answer lists exactly one codec
//! (plus telephone-event), so both directions use the same one. Every other `m=` line,
//! including a second audio stream, is answered with port 0, keeping count and order.
//! We send 20 ms packets and ask for 20 ms (`a=ptime:20`); another requested ptime is
//! accepted with a [`Note`], since the relay does not repacketise. `a=rtcp` (RFC 3605) is
//! honoured, `a=rtcp-mux` noted and not answered. Old-style hold (`c=0.0.0.0`, RFC 3264
//! 8.4) reads as sendonly (or inactive).
//!
//! # SRTP ([`Srtp`], `media.srtp`)
//! | offer                        | `off`         | `optional`                | `required`                |
//! |------------------------------|---------------|---------------------------|---------------------------|
//! | `RTP/SAVP` + our suite       | port 0        | `RTP/SAVP` + our crypto   | `RTP/SAVP` + our crypto   |
//! | `RTP/SAVP`, no usable crypto | port 0        | port 0                    | port 0                    |
//! | `RTP/AVP` + our suite        | plain RTP     | `RTP/AVP` + our crypto    | `RTP/AVP` + our crypto    |
//! | `RTP/AVP`                    | plain RTP     | plain RTP                 | port 0                    |
//!
//! "Our suite" is `AES_CM_128_HMAC_SHA1_80` or `_32`; the answer's crypto line has the
//! offer's tag and suite and our key-params ([`AnswerParams::crypto_key`]). Keys are strings
//! here; decoding them and running SRTP is the media layer's job.
//!
//! # Use, on one leg of the B2BUA
//! ```
//! use sip::sdp::{compare, AnswerParams, Direction, Hold, LocalSession, SessionDescription, Srtp};
//! # fn main() -> Result<(), sip::SipError> {
//! let rtp: std::net::SocketAddr = "198.51.100.7:30000".parse().unwrap(); // relay leg
//! let mut leg = LocalSession::new(42, rtp.ip()); // one per leg, kept for the dialog
//! let mut params = AnswerParams::new(rtp);
//! params.srtp = Srtp::Optional; // media.srtp
//! params.crypto_key = Some("inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj".into());
//!
//! // INVITE with an offer → 200 OK with our answer (or 488 on SipError::SdpNotAcceptable).
//! let offer = SessionDescription::parse(
//!     "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
//!      m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n",
//! )?;
//! let answer = leg.answer(&offer, &params)?;
//! let n = answer.agreement.negotiated; // → dp_api::Command::SetRemote, codec, DTMF PT
//! assert_eq!((n.payload_type, n.telephone_event), (8, Some(101)));
//!
//! // re-INVITE putting us on hold: tell the other leg and the relay, answer recvonly.
//! let reoffer = SessionDescription::parse(
//!     "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n\
//!      m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendonly\r\n",
//! )?;
//! let change = compare(&offer, &reoffer)?;
//! assert_eq!(change.hold, Some(Hold::Started));
//! let answer = leg.answer(&reoffer, &params)?;
//! assert_eq!(answer.agreement.negotiated.direction, Direction::RecvOnly);
//! assert!(answer.sdp.contains("o=callbridge 42 43 "));
//! # Ok(()) }
//! ```
//!
//! # Errors
//! [`SessionDescription::parse`] fails with [`SipError::Sdp`] (answer `400`);
//! [`LocalSession::answer`] with [`SipError::SdpNotAcceptable`] when no stream is acceptable
//! (answer `488 Not Acceptable Here`), its text giving the reason per stream.
//!
//! # Why not the `sdp-types` crate
//! It is a complete RFC 8866 parser/serializer, but offer/answer — the part that matters —
//! would still be ours, and its typed attributes do not cover everything we read (`a=crypto`
//! lives in the separate `ezk-sdp-types`, `a=rtcp` address forms vary). Our parser is a few
//! hundred lines, never panics on mutated input (tests below), keeps the errors in
//! [`SipError`], and adds no dependency tree to the SIP crate.

mod change;
mod model;
mod negotiate;

#[cfg(test)]
mod rfc4317_tests;
#[cfg(test)]
mod tests;

use std::net::SocketAddr;

pub use change::{compare, Change, Hold};
pub use model::{Crypto, Direction, Fmtp, Media, Origin, Rtcp, RtpMap, SessionDescription};
pub use negotiate::{
    read_answer, summary, Agreement, Answer, AnswerParams, Encoding, LocalSession, Negotiated,
    Note, OfferParams, Srtp, SrtpKeys, SrtpSuite,
};

use crate::error::SipError;

impl SessionDescription {
    /// Reads an answer without our offer at hand: the first audio stream's address, the
    /// first G.711 codec it lists, telephone-event, ptime and our direction. Prefer
    /// [`LocalSession::read_answer`], which also checks the answer against the offer.
    ///
    /// # Errors
    /// [`SipError::Sdp`] when there is no audio, no address, or no G.711 codec.
    pub fn negotiated_from_answer(&self) -> Result<Negotiated, SipError> {
        let m = self.audio()?;
        let remote = self.rtp_address(m)?;
        let (payload_type, encoding) = m
            .payload_types()
            .find_map(|pt| Encoding::of(m, pt).map(|e| (pt, e)))
            .ok_or_else(|| {
                SipError::Sdp(format!(
                    "no common codec: offered {:?}, we support PCMU, PCMA",
                    m.formats
                ))
            })?;
        Ok(Negotiated {
            remote,
            remote_rtcp: self.rtcp_address(m)?,
            payload_type,
            encoding,
            telephone_event: m.telephone_event(),
            ptime: m.ptime.unwrap_or(20),
            direction: m.direction.answer(),
            srtp: !m.crypto.is_empty(),
        })
    }
}

/// Our default offer, in a fresh session: PCMU 0, PCMA 8, telephone-event 101, ptime 20,
/// sendrecv, plain RTP. A leg that re-offers keeps a [`LocalSession`] instead.
#[must_use]
pub fn build_offer(rtp: SocketAddr, session_id: u64) -> String {
    // Cannot fail: the default parameters have codecs and no SRTP.
    LocalSession::new(session_id, rtp.ip())
        .offer(&OfferParams::new(rtp))
        .unwrap_or_default()
}

/// Our answer to `offer`, in a fresh session, with our RTP at `rtp`: the first offered
/// G.711 codec, telephone-event if offered, sendrecv, plain RTP ([`AnswerParams::new`]).
///
/// # Errors
/// [`SipError::SdpNotAcceptable`] when the offer has no usable audio stream.
pub fn build_answer(
    offer: &SessionDescription,
    rtp: SocketAddr,
    session_id: u64,
) -> Result<(String, Negotiated), SipError> {
    let a = LocalSession::new(session_id, rtp.ip()).answer(offer, &AnswerParams::new(rtp))?;
    Ok((a.sdp, a.agreement.negotiated))
}
