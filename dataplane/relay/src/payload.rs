//! Payload-type mapping between two bridged legs: G.711 µ-law ↔ A-law conversion and
//! RFC 4733 telephone-event renumbering, per packet, in place.
//!
//! Each leg has its negotiated [`PayloadTypes`] (codec, its payload type number,
//! telephone-event's number). When the two legs of a bridge agree (the usual case) the relay
//! never comes here: [`crate::leg::Leg::convert`] is `false` and packets relay untouched.
//! Otherwise [`map_packet`] edits each RTP packet relayed from leg A to leg B:
//!
//! | A's packet                       | laws equal                 | laws differ                         |
//! |----------------------------------|----------------------------|-------------------------------------|
//! | A's audio PT                     | PT → B's audio PT          | payload converted, PT → B's audio   |
//! | A's telephone-event PT, B has one| PT → B's telephone-event PT| the same (DTMF is never converted)  |
//! | A's telephone-event PT, B has none | dropped                  | dropped                             |
//! | any other PT (CN 13, …)          | unchanged                  | dropped                             |
//!
//! Drops are [`DropReason::UnmappedPayloadType`], counted on A. Telephone-event toward a
//! leg that negotiated none is dropped rather than passed on: B never agreed to that number,
//! and it may mean something else to B (RFC 3264 lets each side number dynamic types), so
//! B could play DTMF events as audio. Another payload type can pass unchanged only when the
//! laws match; across laws the relay cannot know how to convert it.
//!
//! Only the payload type bits (7) of byte 1 and the payload between the header (fixed
//! header, CSRCs, extension) and the padding change; the marker bit, SSRC, sequence number,
//! timestamp, CSRCs, extension and padding stay as they are, and the length never changes
//! (a G.711 octet is one sample in both laws). The relay does this after decrypting what an
//! SRTP leg sent and before encrypting for an SRTP peer.

use dp_api::{DropReason, PayloadTypes};
use wire::rtp::RtpPacket;

use crate::g711;

/// Maps one RTP packet that arrived on a leg with payload types `from` for a leg with
/// payload types `to` (see the module docs). `pkt` must have passed
/// [`RtpPacket::check_len`]. Returns whether the payload past the header changed (a law
/// conversion), as opposed to at most the payload type byte.
///
/// # Errors
/// [`DropReason::UnmappedPayloadType`]: the packet has no counterpart on `to`; drop it.
#[inline]
pub fn map_packet(
    from: &PayloadTypes,
    to: &PayloadTypes,
    pkt: &mut [u8],
) -> Result<bool, DropReason> {
    let mut p = RtpPacket::new_unchecked(&mut *pkt);
    let pt = p.payload_type();
    if pt == from.audio {
        p.set_payload_type(to.audio);
        if from.codec == to.codec {
            return Ok(false);
        }
        let range = p.payload_range();
        g711::transcode_in_place(from.codec, to.codec, &mut pkt[range]);
        return Ok(true);
    }
    if Some(pt) == from.telephone_event {
        let Some(te) = to.telephone_event else {
            return Err(DropReason::UnmappedPayloadType);
        };
        p.set_payload_type(te);
        return Ok(false);
    }
    if from.codec == to.codec {
        Ok(false)
    } else {
        Err(DropReason::UnmappedPayloadType)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_api::Codec;

    const PCMU: PayloadTypes = PayloadTypes {
        codec: Codec::Pcmu,
        audio: 0,
        telephone_event: Some(101),
    };
    const PCMA: PayloadTypes = PayloadTypes {
        codec: Codec::Pcma,
        audio: 8,
        telephone_event: Some(96),
    };

    /// V=2, P, X, CC=1, M, PT; seq 0x1234, ts, SSRC, one CSRC, a one-word extension,
    /// four payload octets, then three octets of padding (count 3).
    fn packet(pt: u8) -> Vec<u8> {
        let mut v = vec![0b1011_0001, 0x80 | pt, 0x12, 0x34];
        v.extend_from_slice(&[0, 0, 0x03, 0x20, 0xde, 0xad, 0xbe, 0xef]);
        v.extend_from_slice(&[0xc5, 0xc5, 0xc5, 0xc5]); // CSRC
        v.extend_from_slice(&[0xbe, 0xde, 0, 1, 0xff, 0xff, 0x7f, 0x00]); // extension
        v.extend_from_slice(&[0xff, 0x7f, 0x80, 0x00]); // payload
        v.extend_from_slice(&[0xff, 0x7f, 3]); // padding
        v
    }

    const PAYLOAD: std::ops::Range<usize> = 24..28;

    #[test]
    fn audio_is_converted_between_header_and_padding() {
        let mut p = packet(0);
        assert_eq!(
            RtpPacket::new_checked(&p[..]).unwrap().payload_range(),
            PAYLOAD
        );
        assert_eq!(map_packet(&PCMU, &PCMA, &mut p), Ok(true));
        let mut want = packet(8);
        g711::ulaw_to_alaw_in_place(&mut want[PAYLOAD]);
        assert_eq!(
            p, want,
            "PT 8 with the marker, payload converted, the rest intact"
        );
        assert_eq!(&p[PAYLOAD], &[0xd5, 0x55, 0xaa, 0x2a]);

        let mut p = packet(8);
        assert_eq!(map_packet(&PCMA, &PCMU, &mut p), Ok(true));
        let mut want = packet(0);
        g711::alaw_to_ulaw_in_place(&mut want[PAYLOAD]);
        assert_eq!(p, want);
    }

    #[test]
    fn telephone_event_is_renumbered_never_converted() {
        let mut p = packet(101);
        assert_eq!(map_packet(&PCMU, &PCMA, &mut p), Ok(false));
        assert_eq!(p, packet(96));
        // Without telephone-event on the peer: dropped.
        let none = PayloadTypes::of(Codec::Pcma);
        let mut p = packet(101);
        assert_eq!(
            map_packet(&PCMU, &none, &mut p),
            Err(DropReason::UnmappedPayloadType)
        );
        // Same number on both sides and the same law: only the audio number differs.
        let dynamic = PayloadTypes {
            audio: 97,
            ..PayloadTypes {
                telephone_event: Some(101),
                ..PayloadTypes::of(Codec::Pcmu)
            }
        };
        let mut p = packet(101);
        assert_eq!(map_packet(&PCMU, &dynamic, &mut p), Ok(false));
        assert_eq!(p, packet(101));
        let mut p = packet(0);
        assert_eq!(map_packet(&PCMU, &dynamic, &mut p), Ok(false));
        assert_eq!(p, packet(97), "same law: renumbered, not converted");
    }

    #[test]
    fn other_payload_types_pass_only_between_equal_laws() {
        let pcmu_97 = PayloadTypes { audio: 97, ..PCMU };
        let mut p = packet(13);
        assert_eq!(map_packet(&PCMU, &pcmu_97, &mut p), Ok(false));
        assert_eq!(p, packet(13));
        assert_eq!(
            map_packet(&PCMU, &PCMA, &mut p),
            Err(DropReason::UnmappedPayloadType)
        );
        assert_eq!(p, packet(13), "a dropped packet is not edited");
    }

    #[test]
    fn unchanged_relay_needs_equal_types() {
        assert!(PCMU.relays_unchanged_to(&PCMU));
        assert!(!PCMU.relays_unchanged_to(&PCMA));
        let plain = PayloadTypes::of(Codec::Pcmu);
        // Without telephone-event we never send one: nothing to map.
        assert!(plain.relays_unchanged_to(&PCMU));
        assert!(!PCMU.relays_unchanged_to(&plain));
        assert!(!PCMU.relays_unchanged_to(&PayloadTypes { audio: 97, ..PCMU }));
    }

    #[test]
    fn empty_payload_and_padding_only() {
        // Header only, then a padding-only packet: nothing to convert, PT still mapped.
        let mut p = vec![0x80, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(map_packet(&PCMU, &PCMA, &mut p), Ok(true));
        assert_eq!(p[1], 8);
        let mut p = vec![0xa0, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4];
        assert_eq!(map_packet(&PCMU, &PCMA, &mut p), Ok(true));
        assert_eq!(p, [0xa0, 0x08, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4]);
    }
}
