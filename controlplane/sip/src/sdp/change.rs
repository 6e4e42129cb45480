//! What a re-offer (re-INVITE or UPDATE, RFC 3264 8) changes relative to the peer's previous
//! description, as a small summary the B2BUA can act on.

use std::net::SocketAddr;

use super::model::{Direction, SessionDescription};
use super::negotiate::Encoding;
use crate::error::SipError;

/// How the peer's hold state moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// The peer stopped wanting our media: sendonly or inactive (or `c=0.0.0.0`) where it
    /// was sendrecv or recvonly before (RFC 3264 8.4).
    Started,
    /// The peer wants our media again.
    Ended,
}

/// The difference between the peer's previous and new description of the audio stream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Change {
    /// The `o=` version did not change: RFC 3264 8 says the SDP is then the same (a session
    /// refresh); the other fields are computed anyway.
    pub same_version: bool,
    /// The peer's new direction (its own view: sendonly = it only sends), when it changed.
    /// Pass it to the other leg as our direction there; the relay's direction for this leg is
    /// its mirror ([`Direction::answer`]).
    pub direction: Option<Direction>,
    /// Hold started or ended.
    pub hold: Option<Hold>,
    /// The new RTP address, when address or port changed (not reported for a move to the
    /// old-style hold address 0.0.0.0): the relay must be told, and re-latches.
    pub remote: Option<SocketAddr>,
    /// The new first G.711 codec, when it changed.
    pub encoding: Option<Encoding>,
    /// The new telephone-event payload type (`Some(None)`: dropped), when it changed.
    pub telephone_event: Option<Option<u8>>,
    /// The peer's `a=crypto` lines changed (a re-key, or SRTP switched on or off).
    pub crypto: bool,
    /// The audio stream is now disabled (port 0) or gone.
    pub audio_disabled: bool,
}

impl Change {
    /// Nothing the B2BUA or the relay needs to act on.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.direction.is_none()
            && self.hold.is_none()
            && self.remote.is_none()
            && self.encoding.is_none()
            && self.telephone_event.is_none()
            && !self.crypto
            && !self.audio_disabled
    }
}

/// Compares the peer's new description with its previous one.
///
/// # Errors
/// [`SipError::Sdp`] when the previous description had no active audio stream or the new
/// one has no address for it.
pub fn compare(
    previous: &SessionDescription,
    new: &SessionDescription,
) -> Result<Change, SipError> {
    let mut c = Change {
        same_version: match (&previous.origin, &new.origin) {
            (Some(a), Some(b)) => a.session_id == b.session_id && a.version == b.version,
            _ => false,
        },
        ..Change::default()
    };
    let index = previous
        .active_audio_index()
        .ok_or_else(|| SipError::Sdp("the previous description has no active audio".into()))?;
    let old = &previous.media[index];
    let Some(now) = new
        .media
        .get(index)
        .filter(|m| m.kind == "audio" && m.port != 0)
    else {
        c.audio_disabled = true;
        return Ok(c);
    };
    if now.direction != old.direction {
        c.direction = Some(now.direction);
    }
    c.hold = match (old.direction.receives(), now.direction.receives()) {
        (true, false) => Some(Hold::Started),
        (false, true) => Some(Hold::Ended),
        _ => None,
    };
    let new_rtp = new.rtp_address(now)?;
    let old_rtp = previous.rtp_address(old)?;
    if new_rtp != old_rtp && !new_rtp.ip().is_unspecified() {
        c.remote = Some(new_rtp);
    }
    let first = |m: &super::model::Media| m.payload_types().find_map(|pt| Encoding::of(m, pt));
    if first(now) != first(old) {
        c.encoding = first(now);
    }
    if now.telephone_event() != old.telephone_event() {
        c.telephone_event = Some(now.telephone_event());
    }
    c.crypto = now.crypto != old.crypto || now.is_savp() != old.is_savp();
    Ok(c)
}
