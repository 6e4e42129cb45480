//! Offer/answer for one audio stream (RFC 3264 5, 6 and 7) with SDES-SRTP (RFC 4568).
//!
//! [`LocalSession`] is our side of one SDP session (one call leg): it writes our offers and
//! answers with a stable `o=` line whose version grows only when what we say changes
//! (RFC 3264 8), and it remembers our last offer so that [`LocalSession::read_answer`] can
//! check the answer against it.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use super::model::{Crypto, Direction, Fmtp, Media, Origin, RtpMap, SessionDescription};
use crate::error::SipError;

/// A G.711 law: the only audio codecs we negotiate (the relay converts between them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    /// G.711 µ-law, `PCMU/8000`, static payload type 0.
    Pcmu,
    /// G.711 A-law, `PCMA/8000`, static payload type 8.
    Pcma,
}

impl Encoding {
    /// The RFC 3551 static payload type.
    #[must_use]
    pub fn static_payload_type(self) -> u8 {
        match self {
            Self::Pcmu => 0,
            Self::Pcma => 8,
        }
    }

    /// The rtpmap encoding name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Pcmu => "PCMU",
            Self::Pcma => "PCMA",
        }
    }

    /// The encoding a payload type stands for in `m` (its rtpmap, or the static assignment).
    #[must_use]
    pub fn of(m: &Media, pt: u8) -> Option<Self> {
        // What `codec_name` would say, without building the string (this runs for every
        // payload type of every offer and answer).
        let Some(map) = m.rtpmap(pt) else {
            return match pt {
                0 => Some(Self::Pcmu),
                8 => Some(Self::Pcma),
                _ => None,
            };
        };
        if map.clock_rate != 8000 {
            return None;
        }
        [Self::Pcmu, Self::Pcma]
            .into_iter()
            .find(|c| map.encoding.eq_ignore_ascii_case(c.name()))
    }
}

/// The SRTP policy of a leg (`media.srtp = off|optional|required`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Srtp {
    /// Plain RTP only: an `RTP/SAVP` stream is refused (port 0); `a=crypto` on an `RTP/AVP`
    /// offer is ignored.
    #[default]
    Off,
    /// SRTP when the peer offers it (`RTP/SAVP`, or `RTP/AVP` with `a=crypto`), plain RTP
    /// otherwise. Our offers are `RTP/AVP` **with** `a=crypto`: the common "best effort SRTP"
    /// practice (a peer that does not know SDES ignores the attribute and answers plain RTP;
    /// RFC 5939 capability negotiation would be the standard way, few trunks speak it).
    Optional,
    /// SRTP or nothing: offers are `RTP/SAVP`; a stream without an acceptable `a=crypto` is
    /// refused.
    Required,
}

/// The SDES crypto suites we accept (RFC 4568 6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpSuite {
    /// `AES_CM_128_HMAC_SHA1_80`
    AesCm128HmacSha1_80,
    /// `AES_CM_128_HMAC_SHA1_32`
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// The suite for an `a=crypto` suite name, if we support it.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(Self::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(Self::AesCm128HmacSha1_32),
            _ => None,
        }
    }

    /// The suite name as written in `a=crypto`.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Self::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }
}

/// The SRTP keys both sides agreed on for the stream (RFC 4568: each side sends with its own
/// key; the answer's crypto line carries the offer's tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrtpKeys {
    /// The accepted tag.
    pub tag: u32,
    /// The accepted suite.
    pub suite: SrtpSuite,
    /// Our key-params (we encrypt with these), as written in our `a=crypto`.
    pub local: String,
    /// The peer's key-params (we decrypt with these), as written in its `a=crypto`.
    pub remote: String,
}

/// The outcome of negotiation for the audio stream: what the data plane needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Where to send RTP. Unspecified (`0.0.0.0`/`::`) on an old-style hold: send nothing
    /// there (the direction then does not send either).
    pub remote: SocketAddr,
    /// Where to send RTCP (`a=rtcp`, else RTP port + 1; `None` only for RTP port 65535).
    pub remote_rtcp: Option<SocketAddr>,
    /// The chosen codec's payload type, as the peer numbers it (send with this one).
    pub payload_type: u8,
    /// The chosen codec.
    pub encoding: Encoding,
    /// The peer's telephone-event payload type (RFC 4733), if both sides have it.
    pub telephone_event: Option<u8>,
    /// The packetisation time the peer asked to receive, in ms (20 if it did not say).
    pub ptime: u32,
    /// Our direction: what we may do (sendonly: we send, the peer does not).
    pub direction: Direction,
    /// The stream is SRTP (see [`Agreement::srtp`] for the keys).
    pub srtp: bool,
}

/// Something accepted that the caller may want to log or act on; none is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Note {
    /// The peer asked for a packetisation time other than our 20 ms. The relay does not
    /// repacketise, so the peer receives what the other leg sends.
    PtimeNotHonoured {
        /// The peer's `a=ptime`.
        requested: u32,
    },
    /// The peer offered `a=rtcp-mux`; we answered without it (RTCP on RTP port + 1).
    RtcpMuxIgnored,
    /// An `m=` line was refused (answered with port 0), and why.
    StreamRejected {
        /// Its index in the offer.
        index: usize,
        /// Why.
        reason: String,
    },
}

/// The agreed audio stream, from either side of an exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agreement {
    /// What the data plane needs.
    pub negotiated: Negotiated,
    /// The stream's index among the `m=` lines.
    pub media_index: usize,
    /// SRTP keys, when the stream is SRTP.
    pub srtp: Option<SrtpKeys>,
    /// Things accepted with a remark.
    pub notes: Vec<Note>,
}

/// Our answer to an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The SDP body to send.
    pub sdp: String,
    /// The agreed stream.
    pub agreement: Agreement,
}

/// What we want when answering an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnswerParams {
    /// Our RTP address (the relay leg's local address and even port).
    pub rtp: SocketAddr,
    /// Codec preference. The first of these the offer lists wins; empty = the offer's order.
    /// The answer lists exactly one codec (plus telephone-event).
    pub codecs: Vec<Encoding>,
    /// Whether to accept telephone-event (RFC 4733) when offered; answered with the
    /// offerer's payload type and fmtp.
    pub telephone_event: bool,
    /// Our own desired direction (sendrecv; sendonly while we hold the peer). The answer is
    /// this combined with the mirror of the offered direction (RFC 3264 6.1).
    pub direction: Direction,
    /// SRTP policy.
    pub srtp: Srtp,
    /// Our SDES key-params (`inline:<base64 30-byte key||salt>`), needed to accept SRTP.
    pub crypto_key: Option<String>,
}

impl AnswerParams {
    /// Plain RTP at `rtp`, the offer's codec order, telephone-event, sendrecv, SRTP off.
    #[must_use]
    pub fn new(rtp: SocketAddr) -> Self {
        Self {
            rtp,
            codecs: Vec::new(),
            telephone_event: true,
            direction: Direction::SendRecv,
            srtp: Srtp::Off,
            crypto_key: None,
        }
    }
}

/// What we want when offering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfferParams {
    /// Our RTP address.
    pub rtp: SocketAddr,
    /// Codecs in preference order (default PCMU, PCMA).
    pub codecs: Vec<Encoding>,
    /// telephone-event payload type (default 101), offered with `a=fmtp:<pt> 0-16`.
    pub telephone_event: Option<u8>,
    /// `a=ptime` (default 20).
    pub ptime: u32,
    /// Our direction (sendonly to hold the peer, inactive when both hold).
    pub direction: Direction,
    /// SRTP policy: `Off` → `RTP/AVP`; `Optional` → `RTP/AVP` + `a=crypto`; `Required` →
    /// `RTP/SAVP` + `a=crypto`.
    pub srtp: Srtp,
    /// Our SDES key-params; required unless `srtp` is `Off`.
    pub crypto_key: Option<String>,
}

impl OfferParams {
    /// PCMU, PCMA, telephone-event 101, ptime 20, sendrecv, plain RTP, at `rtp`.
    #[must_use]
    pub fn new(rtp: SocketAddr) -> Self {
        Self {
            rtp,
            codecs: vec![Encoding::Pcmu, Encoding::Pcma],
            telephone_event: Some(101),
            ptime: 20,
            direction: Direction::SendRecv,
            srtp: Srtp::Off,
            crypto_key: None,
        }
    }
}

/// The packetisation we send and ask for.
const OUR_PTIME: u32 = 20;
/// The crypto suite we offer.
const OFFER_SUITE: SrtpSuite = SrtpSuite::AesCm128HmacSha1_80;
/// The fmtp we offer for telephone-event (DTMF 0-9 * # A-D and flash).
const TELEPHONE_EVENT_FMTP: &str = "0-16";

/// Our side of one SDP session: a stable `o=` line and our last offer.
#[derive(Debug, Clone)]
pub struct LocalSession {
    session_id: u64,
    version: u64,
    address: IpAddr,
    /// What we last sent, rendered with version 0: compared to decide whether the version
    /// must grow.
    last_body: Option<String>,
    /// Our last offer, until its answer is read.
    pending_offer: Option<SessionDescription>,
}

impl LocalSession {
    /// A session with this id; the first SDP carries version `session_id` (any start value is
    /// allowed; this one keeps the `o=` lines of earlier releases).
    #[must_use]
    pub fn new(session_id: u64, address: IpAddr) -> Self {
        Self {
            session_id,
            version: session_id,
            address,
            last_body: None,
            pending_offer: None,
        }
    }

    /// The version of the last SDP we wrote.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Our last offer that still waits for its answer.
    #[must_use]
    pub fn pending_offer(&self) -> Option<&SessionDescription> {
        self.pending_offer.as_ref()
    }

    /// Writes an offer (initial, or a re-offer in the same session) and remembers it for
    /// [`LocalSession::read_answer`].
    ///
    /// # Errors
    /// [`SipError::Sdp`] when SRTP is asked for without a key or no codec is given.
    pub fn offer(&mut self, p: &OfferParams) -> Result<String, SipError> {
        if p.codecs.is_empty() {
            return Err(SipError::Sdp("an offer needs at least one codec".into()));
        }
        let crypto = match (p.srtp, &p.crypto_key) {
            (Srtp::Off, _) => None,
            (_, Some(key)) => Some(Crypto {
                tag: 1,
                suite: OFFER_SUITE.name().into(),
                key_params: key.clone(),
                session_params: Vec::new(),
            }),
            (_, None) => {
                return Err(SipError::Sdp(
                    "SRTP is optional or required but no local key was given".into(),
                ))
            }
        };
        let proto = if p.srtp == Srtp::Required {
            "RTP/SAVP"
        } else {
            "RTP/AVP"
        };
        let mut m = Media::new("audio", p.rtp.port(), proto, Vec::new());
        for &e in &p.codecs {
            let pt = e.static_payload_type();
            m.formats.push(pt.to_string());
            m.rtpmaps.push(rtpmap(pt, e.name(), 8000));
        }
        if let Some(te) = p.telephone_event {
            m.formats.push(te.to_string());
            m.rtpmaps.push(rtpmap(te, "telephone-event", 8000));
            m.fmtps.push(Fmtp {
                payload_type: te,
                params: TELEPHONE_EVENT_FMTP.into(),
            });
        }
        m.ptime = Some(p.ptime);
        m.direction = p.direction;
        m.crypto.extend(crypto);
        let mut desc = self.description(p.rtp.ip(), vec![m]);
        let text = self.stamp(&mut desc);
        self.pending_offer = Some(desc);
        Ok(text)
    }

    /// Answers `offer` (RFC 3264 6): one audio stream accepted, every other `m=` line answered
    /// with port 0, in the offer's order.
    ///
    /// # Errors
    /// [`SipError::SdpNotAcceptable`] (→ 488) when no audio stream is acceptable; the text
    /// says why, per stream.
    pub fn answer(
        &mut self,
        offer: &SessionDescription,
        p: &AnswerParams,
    ) -> Result<Answer, SipError> {
        let mut reasons = Vec::new();
        let mut chosen: Option<(usize, Accepted)> = None;
        for (i, m) in offer.media.iter().enumerate() {
            if chosen.is_some() || m.kind != "audio" || m.port == 0 {
                continue;
            }
            match accept(offer, m, p) {
                Ok(a) => chosen = Some((i, a)),
                Err(why) => reasons.push((i, why)),
            }
        }
        let Some((index, acc)) = chosen else {
            if reasons.is_empty() {
                return Err(SipError::SdpNotAcceptable("no enabled m=audio line".into()));
            }
            let text: Vec<String> = reasons
                .iter()
                .map(|(i, why)| format!("m=audio #{i}: {why}"))
                .collect();
            return Err(SipError::SdpNotAcceptable(text.join("; ")));
        };
        let mut notes = Vec::new();
        let mut media = Vec::with_capacity(offer.media.len());
        for (i, m) in offer.media.iter().enumerate() {
            if i == index {
                media.push(acc.media.clone());
                continue;
            }
            if m.port != 0 {
                let reason = match reasons.iter().find(|(j, _)| *j == i) {
                    Some((_, why)) => why.clone(),
                    None if m.kind == "audio" => "we use one audio stream".to_string(),
                    None => format!("we do not do {}", m.kind),
                };
                notes.push(Note::StreamRejected { index: i, reason });
            }
            media.push(Media::new(&m.kind, 0, &m.proto, m.formats.clone()));
        }
        notes.extend(acc.notes);
        let mut desc = self.description(p.rtp.ip(), media);
        let sdp = self.stamp(&mut desc);
        Ok(Answer {
            sdp,
            agreement: Agreement {
                negotiated: acc.negotiated,
                media_index: index,
                srtp: acc.srtp,
                notes,
            },
        })
    }

    /// Reads the answer to our pending offer (RFC 3264 7) and forgets the offer.
    ///
    /// # Errors
    /// [`SipError::Sdp`] when there is no pending offer, or the answer does not fit it: other
    /// `m=` count, the audio stream refused, another transport, a codec we did not offer,
    /// no common codec, or a missing/unknown crypto tag on an SRTP stream.
    pub fn read_answer(&mut self, answer: &SessionDescription) -> Result<Agreement, SipError> {
        let offer = self
            .pending_offer
            .take()
            .ok_or_else(|| SipError::Sdp("an answer without an offer".into()))?;
        read_answer(&offer, answer)
    }

    fn description(&self, ip: IpAddr, media: Vec<Media>) -> SessionDescription {
        SessionDescription {
            origin: Some(Origin {
                username: "callbridge".into(),
                session_id: self.session_id.to_string(),
                version: 0,
                address: self.address.to_string(),
            }),
            name: "callbridge".into(),
            connection: Some(ip),
            media,
        }
    }

    /// Sets the `o=` version (bumped when the body differs from the last one we sent) and
    /// renders.
    fn stamp(&mut self, desc: &mut SessionDescription) -> String {
        let body = desc.to_sdp_string();
        match &self.last_body {
            Some(last) if *last == body => {}
            Some(_) => self.version = self.version.wrapping_add(1),
            None => {}
        }
        self.last_body = Some(body);
        if let Some(o) = desc.origin.as_mut() {
            o.version = self.version;
        }
        desc.to_sdp_string()
    }
}

fn rtpmap(payload_type: u8, encoding: &str, clock_rate: u32) -> RtpMap {
    RtpMap {
        payload_type,
        encoding: encoding.into(),
        clock_rate,
    }
}

/// An audio stream we can take, and how.
struct Accepted {
    media: Media,
    negotiated: Negotiated,
    srtp: Option<SrtpKeys>,
    notes: Vec<Note>,
}

/// The first offered crypto line whose suite we support (offers list them by preference).
fn acceptable_crypto(m: &Media) -> Option<(&Crypto, SrtpSuite)> {
    m.crypto
        .iter()
        .find_map(|c| SrtpSuite::from_name(&c.suite).map(|s| (c, s)))
}

fn accept(offer: &SessionDescription, m: &Media, p: &AnswerParams) -> Result<Accepted, String> {
    let proto = m.proto.to_ascii_uppercase();
    if proto != "RTP/AVP" && proto != "RTP/SAVP" {
        return Err(format!(
            "transport {} not supported (RTP/AVP, RTP/SAVP)",
            m.proto
        ));
    }
    let savp = proto == "RTP/SAVP";
    let offered_crypto = acceptable_crypto(m);
    let use_srtp = match (savp, p.srtp, offered_crypto.is_some()) {
        (true, Srtp::Off, _) => return Err("RTP/SAVP offered but media.srtp = off".into()),
        (true, _, false) => {
            return Err(
                "RTP/SAVP without an a=crypto we support (AES_CM_128_HMAC_SHA1_80/_32)".into(),
            )
        }
        (false, Srtp::Required, false) => {
            return Err("media.srtp = required but the offer has no SRTP".into())
        }
        (false, Srtp::Off, _) => false,
        (_, _, true) => true,
        (false, Srtp::Optional, false) => false,
    };
    let srtp = match (use_srtp, &p.crypto_key, offered_crypto) {
        (true, Some(key), Some((c, suite))) => Some(SrtpKeys {
            tag: c.tag,
            suite,
            local: key.clone(),
            remote: c.key_params.clone(),
        }),
        (true, None, _) if savp || p.srtp == Srtp::Required => {
            return Err("SRTP needed but no local key was given".into())
        }
        // Best-effort SRTP (RTP/AVP + a=crypto) under `optional` without a key: plain RTP.
        _ => None,
    };
    let pt = choose_codec(m, &p.codecs).ok_or_else(|| {
        format!(
            "no common codec: offered {}, we support PCMU, PCMA",
            m.formats.join(" ")
        )
    })?;
    let encoding = Encoding::of(m, pt).unwrap_or(Encoding::Pcmu);
    let remote = offer.rtp_address(m).map_err(|e| e.to_string())?;
    let remote_rtcp = offer.rtcp_address(m).map_err(|e| e.to_string())?;
    let te = if p.telephone_event {
        m.telephone_event()
    } else {
        None
    };
    let direction = m.direction.answer().intersect(p.direction);

    let mut notes = Vec::new();
    let requested = m.ptime.unwrap_or(OUR_PTIME);
    if requested != OUR_PTIME {
        notes.push(Note::PtimeNotHonoured { requested });
    }
    if m.rtcp_mux {
        notes.push(Note::RtcpMuxIgnored);
    }

    let mut a = Media::new("audio", p.rtp.port(), &m.proto, vec![pt.to_string()]);
    a.rtpmaps.push(rtpmap(pt, encoding.name(), 8000));
    if let Some(te) = te {
        a.formats.push(te.to_string());
        a.rtpmaps.push(rtpmap(te, "telephone-event", 8000));
        if let Some(params) = m.fmtp(te) {
            a.fmtps.push(Fmtp {
                payload_type: te,
                params: params.to_string(),
            });
        }
    }
    a.ptime = Some(OUR_PTIME);
    a.direction = direction;
    if let Some(k) = &srtp {
        a.crypto.push(Crypto {
            tag: k.tag,
            suite: k.suite.name().into(),
            key_params: k.local.clone(),
            session_params: Vec::new(),
        });
    }
    Ok(Accepted {
        media: a,
        negotiated: Negotiated {
            remote,
            remote_rtcp,
            payload_type: pt,
            encoding,
            telephone_event: te,
            ptime: requested,
            direction,
            srtp: srtp.is_some(),
        },
        srtp,
        notes,
    })
}

/// The payload type of the first of `prefs` that `m` lists (with `m`'s own number), or
/// with no preference the first G.711 payload type `m` lists.
fn choose_codec(m: &Media, prefs: &[Encoding]) -> Option<u8> {
    if prefs.is_empty() {
        return m.payload_types().find(|&pt| Encoding::of(m, pt).is_some());
    }
    prefs
        .iter()
        .find_map(|&e| m.payload_types().find(|&pt| Encoding::of(m, pt) == Some(e)))
}

/// Reads `answer` as the answer to `offer` (RFC 3264 7). See [`LocalSession::read_answer`].
///
/// # Errors
/// [`SipError::Sdp`] when the answer does not fit the offer.
pub fn read_answer(
    offer: &SessionDescription,
    answer: &SessionDescription,
) -> Result<Agreement, SipError> {
    let err = |s: String| Err(SipError::Sdp(s));
    if answer.media.len() != offer.media.len() {
        return err(format!(
            "the answer has {} m= lines, the offer had {}",
            answer.media.len(),
            offer.media.len()
        ));
    }
    if offer.active_audio_index().is_none() {
        return err("our offer has no audio stream".into());
    }
    // The answerer may refuse one audio stream and take a later one (RFC 3264 6).
    let Some(index) =
        offer.media.iter().zip(&answer.media).position(|(o, a)| {
            o.kind == "audio" && o.port != 0 && a.kind == "audio" && a.port != 0
        })
    else {
        return err("the answerer refused the audio stream (port 0)".into());
    };
    let (o, a) = (&offer.media[index], &answer.media[index]);
    if !a.proto.eq_ignore_ascii_case(&o.proto) {
        return err(format!(
            "the answer's transport {} is not the offered {}",
            a.proto, o.proto
        ));
    }
    let offered: Vec<String> = o
        .payload_types()
        .filter_map(|pt| o.codec_name(pt))
        .collect();
    for pt in a.payload_types() {
        match a.codec_name(pt) {
            Some(name) if offered.contains(&name) => {}
            Some(name) => {
                return err(format!(
                    "the answer is not a subset of the offer: {name} was not offered"
                ))
            }
            None => {
                return err(format!(
                    "the answer is not a subset of the offer: payload type {pt} has no rtpmap"
                ))
            }
        }
    }
    let pt = choose_codec(a, &[]).ok_or_else(|| {
        SipError::Sdp(format!(
            "no common codec: answered {}, we support PCMU, PCMA",
            a.formats.join(" ")
        ))
    })?;
    let srtp = match o.crypto.first() {
        None => None,
        Some(_) => match a.crypto.iter().find_map(|c| {
            let ours = o
                .crypto
                .iter()
                .find(|ours| ours.tag == c.tag && ours.suite == c.suite)?;
            let suite = SrtpSuite::from_name(&c.suite)?;
            Some(SrtpKeys {
                tag: c.tag,
                suite,
                local: ours.key_params.clone(),
                remote: c.key_params.clone(),
            })
        }) {
            Some(k) => Some(k),
            None if o.is_savp() || !a.crypto.is_empty() => {
                return err("the answer has no a=crypto matching one of our tags and suites".into())
            }
            None => None,
        },
    };
    let mut notes = Vec::new();
    let ptime = a.ptime.unwrap_or(OUR_PTIME);
    if ptime != OUR_PTIME {
        notes.push(Note::PtimeNotHonoured { requested: ptime });
    }
    Ok(Agreement {
        negotiated: Negotiated {
            remote: answer.rtp_address(a)?,
            remote_rtcp: answer.rtcp_address(a)?,
            payload_type: pt,
            encoding: Encoding::of(a, pt).unwrap_or(Encoding::Pcmu),
            telephone_event: o.telephone_event().and(a.telephone_event()),
            ptime,
            direction: a.direction.answer(),
            srtp: srtp.is_some(),
        },
        media_index: index,
        srtp,
        notes,
    })
}

/// A one-line summary for logs: `PCMA/8000 pt 8 → 10.0.0.1:4000 te 101 sendrecv srtp`.
#[must_use]
pub fn summary(n: &Negotiated) -> String {
    let mut s = format!(
        "{}/8000 pt {} → {}",
        n.encoding.name(),
        n.payload_type,
        n.remote
    );
    if let Some(te) = n.telephone_event {
        let _ = write!(s, " te {te}");
    }
    let _ = write!(s, " {}", n.direction.as_attr());
    if n.srtp {
        s.push_str(" srtp");
    }
    s
}
