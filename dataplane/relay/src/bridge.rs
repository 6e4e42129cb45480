//! Bridges: two legs relaying to each other.
//!
//! A bridge is just the pair of `peer` slot indices in the two legs (no separate object to
//! keep in sync). A leg bridged to itself echoes, which is handy for loopback tests.
//! Bridging stops any announcement on either leg — "the switch" — and arms the marker bit
//! for the first packet relayed toward a leg whose announcement stopped.
//!
//! Each leg's [`Leg::convert`] says whether what its peer sends needs payload-type mapping
//! on the way to it ([`crate::payload`]); [`link`], [`unlink`] and
//! [`refresh_conversion`] (after a leg's payload types change) keep it true to both legs'
//! types, so the per-packet path reads one flag of the receiving leg.

use crate::leg::Leg;
use crate::table::LegTable;

/// Stops a leg's announcement, if any. Returns whether one was playing. The next RTP packet
/// relayed toward the leg carries the marker bit, because its receiver now sees a new SSRC.
pub fn stop_playback(leg: &mut Leg) -> bool {
    if leg.set_playback(None).is_some() {
        leg.mark_next = true;
        true
    } else {
        false
    }
}

/// Unlinks the leg in slot `idx` from its peer, if bridged.
pub fn unlink(table: &mut LegTable, idx: usize) {
    let Some(peer) = table.get_mut(idx).and_then(|l| {
        l.convert = false;
        l.peer.take()
    }) else {
        return;
    };
    if let Some(p) = table.get_mut(peer as usize) {
        if p.peer.is_some_and(|q| q as usize == idx) {
            p.peer = None;
            p.convert = false;
        }
    }
}

/// Recomputes [`Leg::convert`] of the leg in slot `idx` and of its bridged peer, after
/// either's payload types changed (or they were just linked).
pub fn refresh_conversion(table: &mut LegTable, idx: usize) {
    let Some((peer, types)) = table.get(idx).map(|l| (l.peer, l.cold.types)) else {
        return;
    };
    let peer_types = peer.and_then(|p| table.get(p as usize).map(|l| (p, l.cold.types)));
    let Some((peer, peer_types)) = peer_types else {
        if let Some(l) = table.get_mut(idx) {
            l.convert = false;
        }
        return;
    };
    if let Some(l) = table.get_mut(idx) {
        l.convert = !peer_types.relays_unchanged_to(&types);
    }
    if let Some(p) = table.get_mut(peer as usize) {
        p.convert = !types.relays_unchanged_to(&peer_types);
    }
}

/// A slot index as stored in [`Leg::peer`] (tables hold at most 32 768 slots).
fn slot(idx: usize) -> u32 {
    u32::try_from(idx).expect("slot index fits u32")
}

/// Bridges slots `a` and `b` (which must hold legs), unlinking earlier partners first and
/// stopping announcements on both.
pub fn link(table: &mut LegTable, a: usize, b: usize) {
    unlink(table, a);
    unlink(table, b);
    for idx in [a, b] {
        if let Some(l) = table.get_mut(idx) {
            stop_playback(l);
        }
    }
    if let Some(l) = table.get_mut(a) {
        l.peer = Some(slot(b));
    }
    if let Some(l) = table.get_mut(b) {
        l.peer = Some(slot(a));
    }
    refresh_conversion(table, a);
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_api::{Codec, Latch, LegId, LegSpec, SrcMismatch};

    fn leg(port: u16) -> Leg {
        Leg::new(
            &LegSpec {
                id: LegId::new(port, 1),
                remote: None,
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcmu,
                media_timeout: None,
            },
            port.into(),
            std::time::Instant::now(),
        )
    }

    #[test]
    fn relink_unlinks_old_partners() {
        let mut t = LegTable::new(&(20000..=20005));
        for p in [20000, 20002, 20004] {
            t.insert(leg(p)).unwrap();
        }
        link(&mut t, 0, 1);
        assert_eq!(t.get(0).unwrap().peer, Some(1));
        assert_eq!(t.get(1).unwrap().peer, Some(0));
        link(&mut t, 1, 2);
        assert_eq!(t.get(0).unwrap().peer, None);
        assert_eq!(t.get(1).unwrap().peer, Some(2));
        assert_eq!(t.get(2).unwrap().peer, Some(1));
        unlink(&mut t, 2);
        assert!(t.iter().all(|l| l.peer.is_none()));
        link(&mut t, 0, 0);
        assert_eq!(t.get(0).unwrap().peer, Some(0));
        unlink(&mut t, 0);
        assert_eq!(t.get(0).unwrap().peer, None);
    }
}
