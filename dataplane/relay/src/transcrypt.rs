//! SRTP legs: the side table of their libsrtp sessions, and the per-packet transforms.
//!
//! A leg with [`dp_api::Command::SetSrtp`] keys owns two [`srtp::Session`]s: `recv`
//! (inbound, the peer's key) and `send` (outbound, our key). They live in an `SrtpTable`
//! beside the [`crate::LegTable`], indexed by the same slot and boxed, so the leg table's
//! three cache lines stay as they are; the leg's hot line carries only the flag
//! [`crate::leg::Leg::srtp`], which mirrors whether the slot here is occupied. A plain leg
//! therefore costs one flag test per packet and nothing else.
//!
//! Sessions are created and dropped only by commands (SetSrtp, RemoveLeg, AddLeg on a reused
//! slot); the per-packet calls transform the buffer in place and allocate nothing (see the
//! `srtp` crate for libsrtp's one allocation per new SSRC).

use dp_api::{CommandError, DropReason, LegId, SrtpKeys};
use srtp::{Error, Session};

/// The most bytes protecting a packet appends (an SRTCP trailer): the room a backend leaves
/// after every received payload and generated packet, so that relaying toward an SRTP leg
/// never needs to copy ([`DropReason::SrtpNoRoom`] otherwise).
pub const TRAILER_ROOM: usize = srtp::MAX_TRAILER;

/// The two sessions of one SRTP leg.
#[derive(Debug)]
struct SrtpLeg {
    /// The leg the sessions belong to (the slot's generation check).
    id: LegId,
    /// The keys the sessions were made from (zeroed on drop), so that a SetSrtp repeating
    /// them keeps the sessions and their rollover and replay state: a fresh outbound session
    /// would restart its rollover counter and could encrypt a packet index twice.
    keys: SrtpKeys,
    /// Decrypts what the peer sends.
    recv: Session,
    /// Encrypts what we send to the peer.
    send: Session,
}

/// The SRTP sessions of a worker's legs, indexed like the [`crate::LegTable`]. Owned by the
/// relay; the slot vector is allocated once and never grows.
#[derive(Debug)]
pub(crate) struct SrtpTable {
    slots: Vec<Option<Box<SrtpLeg>>>,
}

impl SrtpTable {
    /// One empty slot per leg-table slot.
    pub(crate) fn new(capacity: usize) -> Self {
        let mut slots = Vec::with_capacity(capacity);
        slots.resize_with(capacity, || None);
        Self { slots }
    }

    /// Sets, replaces or (with `None`) removes a leg's sessions; the same keys again keep
    /// the sessions as they are. On error the slot is unchanged.
    pub(crate) fn set(
        &mut self,
        idx: usize,
        id: LegId,
        keys: Option<SrtpKeys>,
    ) -> Result<(), CommandError> {
        let Some(slot) = self.slots.get_mut(idx) else {
            return Err(CommandError::UnknownLeg);
        };
        *slot = match keys {
            None => None,
            Some(k) if matches!(slot, Some(s) if s.id == id && s.keys == k) => return Ok(()),
            Some(k) => Some(Box::new(SrtpLeg {
                id,
                recv: Session::inbound(k.recv.suite, &k.recv.key).map_err(CommandError::Srtp)?,
                send: Session::outbound(k.send.suite, &k.send.key).map_err(CommandError::Srtp)?,
                keys: k,
            })),
        };
        Ok(())
    }

    /// Drops a slot's sessions.
    pub(crate) fn clear(&mut self, idx: usize) {
        if let Some(s) = self.slots.get_mut(idx) {
            *s = None;
        }
    }

    #[inline]
    fn get(&mut self, idx: usize) -> Result<&mut SrtpLeg, DropReason> {
        match self.slots.get_mut(idx) {
            Some(Some(s)) => Ok(s),
            // The leg's flag says SRTP but the sessions are gone: refuse rather than send
            // plain text.
            _ => Err(DropReason::SrtpFailed),
        }
    }

    /// Unprotects an SRTP (`rtcp = false`) or SRTCP packet `buf[..len]` received on slot
    /// `idx`, in place; returns the plain length.
    #[inline]
    pub(crate) fn unprotect(
        &mut self,
        idx: usize,
        rtcp: bool,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, DropReason> {
        let s = self.get(idx)?;
        let r = if rtcp {
            s.recv.unprotect_rtcp(buf, len)
        } else {
            s.recv.unprotect_rtp(buf, len)
        };
        r.map_err(|e| match e {
            Error::ReplayFail | Error::ReplayOld => DropReason::SrtpReplay,
            // Shorter than a header, or CSRC/extension lengths past the end.
            Error::BadParam => DropReason::Malformed,
            _ => DropReason::SrtpAuth,
        })
    }

    /// Protects the RTP (`rtcp = false`) or RTCP packet `buf[..len]` about to be sent to
    /// slot `idx`'s peer, in place; returns the SRTP/SRTCP length.
    #[inline]
    pub(crate) fn protect(
        &mut self,
        idx: usize,
        rtcp: bool,
        buf: &mut [u8],
        len: usize,
    ) -> Result<usize, DropReason> {
        let s = self.get(idx)?;
        let r = if rtcp {
            s.send.protect_rtcp(buf, len)
        } else {
            s.send.protect_rtp(buf, len)
        };
        r.map_err(|e| match e {
            Error::NoRoom => DropReason::SrtpNoRoom,
            Error::ReplayFail | Error::ReplayOld => DropReason::SrtpReplay,
            _ => DropReason::SrtpFailed,
        })
    }
}
