//! Bridges between legs whose payload types differ ([`Command::SetPayloadTypes`],
//! [`crate::payload`]): µ-law ↔ A-law conversion, telephone-event renumbering, other payload
//! types, and the same-law bridge left untouched.

use dp_api::PayloadTypes;

use super::*;
use crate::g711;

/// The customer (A) talks PCMU with telephone-event 101, the agent (B) PCMA with 96.
const CUSTOMER_TYPES: PayloadTypes = PayloadTypes {
    codec: Codec::Pcmu,
    audio: 0,
    telephone_event: Some(101),
};
const AGENT_TYPES: PayloadTypes = PayloadTypes {
    codec: Codec::Pcma,
    audio: 8,
    telephone_event: Some(96),
};

const TO_AGENT: Verdict = Verdict::Forward {
    from_addr: 0,
    from_port: 20002,
    to: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)), 50000),
};
const TO_CUSTOMER: Verdict = Verdict::Forward {
    from_addr: 0,
    from_port: 20000,
    to: SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), 40000),
};

/// A bridged pair with these payload types on A and B.
fn typed(a: PayloadTypes, b: PayloadTypes) -> Pair {
    let mut p = Pair::bridged();
    p.cmd(Command::SetPayloadTypes { leg: A, types: a });
    p.cmd(Command::SetPayloadTypes { leg: B, types: b });
    assert_eq!(p.events(), vec![]);
    p
}

/// Every octet value once in the payload (so the whole table is checked), with two CSRCs, a
/// header extension and four octets of padding around it.
const EXT: [u8; 8] = [0x22, 0x11, 0x00, 0xff, 0x7f, 0x80, 0xd5, 0x55];

fn full(pt: u8, seq: u16, marker: bool, payload: &[u8]) -> Vec<u8> {
    let mut r = RtpRepr::simple(pt, seq, u32::from(seq) * 160, 0x5eed, payload);
    r.marker = marker;
    r.csrc_count = 2;
    r.csrcs[0] = 0x00ff_7f80;
    r.csrcs[1] = 0xd5d5_5555;
    r.extension = Some((0xbede, &EXT));
    r.padding = 4;
    let mut v = vec![0; r.buffer_len()];
    r.emit(&mut v);
    // The padding octets are arbitrary, but for the count: make them look like samples.
    let n = v.len();
    v[n - 4..n - 1].copy_from_slice(&[0xff, 0x00, 0x80]);
    v
}

fn all_codes() -> Vec<u8> {
    (0..=255).collect()
}

fn converted(from: Codec, to: Codec, payload: &[u8]) -> Vec<u8> {
    let mut p = payload.to_vec();
    g711::transcode_in_place(from, to, &mut p);
    p
}

#[test]
fn pcmu_to_pcma_and_back_convert_only_the_payload() {
    let mut p = typed(CUSTOMER_TYPES, AGENT_TYPES);
    let codes = all_codes();
    for marker in [true, false] {
        let (v, out) = p.recv(customer(), 20000, full(0, 1, marker, &codes));
        assert_eq!(v, TO_AGENT);
        let want = full(8, 1, marker, &converted(Codec::Pcmu, Codec::Pcma, &codes));
        assert_eq!(
            out, want,
            "PT 0 → 8, marker {marker}, CSRCs/extension/padding intact"
        );
        let q = RtpPacket::new_checked(&out[..]).unwrap();
        assert_eq!((q.payload_type(), q.marker()), (8, marker));
        assert_eq!(q.payload()[0xff], g711::ULAW_TO_ALAW[0xff]);

        let (v, out) = p.recv(agent(), 20002, full(8, 2, marker, &codes));
        assert_eq!(v, TO_CUSTOMER);
        let want = full(0, 2, marker, &converted(Codec::Pcma, Codec::Pcmu, &codes));
        assert_eq!(out, want, "PT 8 → 0, marker {marker}");
    }
    // Byte counts do not change (one octet a sample in both laws).
    let a = p.relay.leg_stats(A).unwrap();
    assert_eq!((a.rx_bytes, a.tx_bytes), (a.tx_bytes, a.rx_bytes));
    assert_eq!(p.relay.stats().drops.total(), 0);
}

#[test]
fn telephone_event_is_renumbered_not_converted() {
    let mut p = typed(CUSTOMER_TYPES, AGENT_TYPES);
    // RFC 4733 event 5, end bit, volume 10, duration 800: must arrive byte for byte.
    let event = [5, 0x8a, 0x03, 0x20];
    let (v, out) = p.recv(customer(), 20000, full(101, 3, true, &event));
    assert_eq!(v, TO_AGENT);
    assert_eq!(
        out,
        full(96, 3, true, &event),
        "PT 101 → 96, payload untouched"
    );
    let (v, out) = p.recv(agent(), 20002, full(96, 4, false, &event));
    assert_eq!(v, TO_CUSTOMER);
    assert_eq!(out, full(101, 4, false, &event));

    // The same number on both legs: passes as it is, though the laws differ.
    let mut p = typed(
        CUSTOMER_TYPES,
        PayloadTypes {
            telephone_event: Some(101),
            ..AGENT_TYPES
        },
    );
    let (v, out) = p.recv(customer(), 20000, full(101, 5, false, &event));
    assert_eq!((v, out), (TO_AGENT, full(101, 5, false, &event)));
}

#[test]
fn telephone_event_toward_a_leg_without_it_is_dropped_and_counted() {
    for b in [
        PayloadTypes::of(Codec::Pcma),
        PayloadTypes::of(Codec::Pcmu), // the same law, too
    ] {
        let mut p = typed(CUSTOMER_TYPES, b);
        let (v, _) = p.recv(customer(), 20000, full(101, 1, true, &[1, 0x8a, 0, 160]));
        assert_eq!(v, Verdict::Drop(DropReason::UnmappedPayloadType), "{b:?}");
        let a = p.relay.leg_stats(A).unwrap();
        assert_eq!(a.drops.get(DropReason::UnmappedPayloadType), 1);
        assert_eq!(p.relay.leg_stats(B).unwrap().tx_packets, 0);
        // Audio still goes through.
        let (v, _) = p.recv(customer(), 20000, rtp(2, 320, 0x5eed, false));
        assert_eq!(v, TO_AGENT);
    }
}

#[test]
fn other_payload_types_pass_between_equal_laws_only() {
    // Comfort noise (PT 13, RFC 3389) across laws: cannot be converted.
    let mut p = typed(CUSTOMER_TYPES, AGENT_TYPES);
    let cn = full(13, 1, false, &[0x40]);
    let (v, _) = p.recv(customer(), 20000, cn.clone());
    assert_eq!(v, Verdict::Drop(DropReason::UnmappedPayloadType));
    assert_eq!(
        p.relay.stats().drops.get(DropReason::UnmappedPayloadType),
        1
    );
    // Between equal laws whose audio numbers differ (a dynamic number for PCMU), it
    // passes, and audio is renumbered without conversion.
    let mut p = typed(
        CUSTOMER_TYPES,
        PayloadTypes {
            audio: 97,
            ..CUSTOMER_TYPES
        },
    );
    let (v, out) = p.recv(customer(), 20000, cn.clone());
    assert_eq!((v, out), (TO_AGENT, cn));
    let codes = all_codes();
    let (v, out) = p.recv(customer(), 20000, full(0, 2, true, &codes));
    assert_eq!((v, out), (TO_AGENT, full(97, 2, true, &codes)));
    let (v, out) = p.recv(agent(), 20002, full(97, 3, false, &codes));
    assert_eq!((v, out), (TO_CUSTOMER, full(0, 3, false, &codes)));
}

#[test]
fn equal_payload_types_relay_untouched() {
    let mut p = typed(CUSTOMER_TYPES, CUSTOMER_TYPES);
    assert!(p.relay.table().iter().all(|l| !l.convert));
    for pt in [0, 8, 13, 101, 127] {
        let pkt = full(pt, 1, true, &all_codes());
        let (v, out) = p.recv(customer(), 20000, pkt.clone());
        assert_eq!((v, out), (TO_AGENT, pkt));
    }
    // Legs that never got SetPayloadTypes (static numbers, no telephone-event) likewise.
    let mut p = Pair::bridged();
    assert!(p.relay.table().iter().all(|l| !l.convert));
    let pkt = full(101, 1, false, &[1, 2, 3, 4]);
    let (v, out) = p.recv(agent(), 20002, pkt.clone());
    assert_eq!((v, out), (TO_CUSTOMER, pkt));
}

#[test]
fn conversion_follows_signalling_and_bridging() {
    // Bridged PCMU legs; SetRemote moves B to PCMA: B's types become PCMA at 8, and the
    // bridge converts from the next packet on, both ways.
    let mut p = Pair::bridged();
    let codes = all_codes();
    p.cmd(Command::SetRemote {
        leg: B,
        remote: agent(),
        codec: Codec::Pcma,
    });
    assert_eq!(
        p.relay.table().get(1).unwrap().cold.types,
        PayloadTypes::of(Codec::Pcma)
    );
    assert!(p.relay.table().iter().all(|l| l.convert));
    let (v, out) = p.recv(customer(), 20000, full(0, 1, false, &codes));
    assert_eq!(v, TO_AGENT);
    assert_eq!(
        out,
        full(8, 1, false, &converted(Codec::Pcmu, Codec::Pcma, &codes))
    );

    // A SetRemote repeating the codec keeps what SetPayloadTypes said.
    p.cmd(Command::SetPayloadTypes {
        leg: B,
        types: AGENT_TYPES,
    });
    p.cmd(Command::SetRemote {
        leg: B,
        remote: agent(),
        codec: Codec::Pcma,
    });
    assert_eq!(p.relay.table().get(1).unwrap().cold.types, AGENT_TYPES);

    // Unbridged, then bridged to a PCMU leg like itself: nothing to convert.
    p.cmd(Command::Unbridge { leg: A });
    assert!(p.relay.table().iter().all(|l| !l.convert));
    let c = LegId::new(20004, 1);
    p.cmd(Command::AddLeg(spec(c, Some(addr(3, 30000)))));
    p.cmd(Command::Bridge { a: A, b: c });
    assert!(p.relay.table().iter().all(|l| !l.convert));
    // A back to B (the PCMA leg): converting again.
    p.cmd(Command::Bridge { a: B, b: A });
    let legs: Vec<_> = p.relay.table().iter().map(|l| (l.id, l.convert)).collect();
    assert_eq!(legs, [(A, true), (B, true), (c, false)]);
    // Payload types beyond seven bits are taken modulo 128.
    p.cmd(Command::SetPayloadTypes {
        leg: c,
        types: PayloadTypes {
            audio: 0x80,
            telephone_event: Some(0xe5),
            ..CUSTOMER_TYPES
        },
    });
    let t = p.relay.table().get(2).unwrap().cold.types;
    assert_eq!((t.audio, t.telephone_event), (0, Some(0x65)));
}

#[test]
fn announcements_use_the_negotiated_number() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::SetPayloadTypes {
        leg: A,
        types: PayloadTypes {
            audio: 97,
            ..AGENT_TYPES
        },
    });
    p.cmd(Command::Play {
        leg: A,
        clip: clip(1),
        looping: false,
    });
    p.run_until(Duration::ZERO);
    let (_, _, pkt) = &p.sent[0];
    let q = RtpPacket::new_checked(&pkt[..]).unwrap();
    assert_eq!(q.payload_type(), 97);
    assert_eq!(q.payload(), &clip(1).pcma[..160], "in A-law");
}

#[test]
fn converting_marks_the_payload_rewritten() {
    let mut p = typed(CUSTOMER_TYPES, AGENT_TYPES);
    let mut send = |pt: u8| {
        let mut buf = full(pt, 1, false, &[0xff; 160]);
        let len = buf.len();
        let mut d = crate::Datagram::new(&mut buf, len);
        let v = p.relay.handle_datagram(p.now, customer(), 0, 20000, &mut d);
        (v, d.payload_rewritten, d.len == len)
    };
    // Audio: bytes past the fixed header changed (a backend's kept checksum is stale).
    assert_eq!(send(0), (TO_AGENT, true, true));
    // Telephone-event: only the payload type byte of the fixed header.
    assert_eq!(send(101), (TO_AGENT, false, true));
}
