//! The checksums a datagram keeps on its way through: the tail sum verified on receive and
//! reused on transmit, and what the device's receive checksum verdicts let us skip.

use super::*;

#[test]
fn encap_reuses_the_verified_tail_sum() {
    let (mut s, now) = stack();
    teach(&mut s, now, PEER_IP, PEER_MAC);
    // Payload lengths around SUM_SKIP, odd and even.
    for len in [0usize, 1, 11, 12, 13, 160, 171, 172] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
        let mut f = udp_frame(40000, 30000, &payload);
        let (r, tail) = match s.handle_frame(now, &mut f) {
            Ingress::Udp {
                payload, tail_sum, ..
            } => (payload, tail_sum.expect("verified in software")),
            other => panic!("unexpected {other:?}"),
        };
        // Re-encapsulate the received payload in place, with the RTP marker bit flipped
        // (what the relay may change) when the payload is long enough to have it.
        let mut buf = f[r.start - HEADROOM..r.end].to_vec();
        if len >= 2 {
            buf[HEADROOM + 1] ^= 0x80;
        }
        let expect = buf[HEADROOM..].to_vec();
        let dst = SocketAddrV4::new(PEER_IP, 5004);
        let out = s.encap_with(now, dst, 30000, &mut buf, TxOffload::default(), Some(tail));
        assert!(matches!(out, Encap::Ready { .. }), "len {len}");
        parse_back(&buf, dst, 30000, &expect, PEER_MAC);
        // Same bytes as a full computation.
        let mut full = buf.clone();
        UdpPacket::new_unchecked(&mut full[34..]).fill_checksum(OUR_IP, PEER_IP);
        assert_eq!(buf, full, "len {len}");
    }
}

#[test]
fn offloaded_good_checksum_yields_the_tail_sum_in_constant_time() {
    let (mut s, now) = stack();
    teach(&mut s, now, PEER_IP, PEER_MAC);
    let good = RxOffload {
        udp_checksum_good: true,
        ipv4_checksum_good: true,
        tail_sum_unused: false,
    };
    for len in [0usize, 1, 11, 12, 13, 160, 171, 172] {
        // Payloads whose sums exercise the carries: all 0xff, all 0, and a ramp.
        for fill in [None, Some(0xffu8), Some(0)] {
            let payload: Vec<u8> = (0..len)
                .map(|i| fill.unwrap_or((i * 37 + 5) as u8))
                .collect();
            let mut f = udp_frame(40000, 30000, &payload);
            let mut sw = f.clone();
            let soft = match s.handle_frame(now, &mut sw) {
                Ingress::Udp { tail_sum, .. } => tail_sum.expect("verified in software"),
                other => panic!("unexpected {other:?}"),
            };
            let (r, derived) = match s.handle_frame_with(now, &mut f, good) {
                Ingress::Udp {
                    payload, tail_sum, ..
                } => (payload, tail_sum.expect("derived from the checksum field")),
                other => panic!("unexpected {other:?}"),
            };
            // Equal as one's-complement numbers (0 and 0xffff are both zero).
            assert_eq!(
                checksum::combine(&[derived]) % 0xffff,
                checksum::combine(&[soft]) % 0xffff,
                "len {len} fill {fill:?}"
            );
            let mut buf = f[r.start - HEADROOM..r.end].to_vec();
            if len >= 2 {
                buf[HEADROOM + 1] ^= 0x80;
            }
            let expect = buf[HEADROOM..].to_vec();
            let dst = SocketAddrV4::new(PEER_IP, 5004);
            let out = s.encap_with(
                now,
                dst,
                30000,
                &mut buf,
                TxOffload::default(),
                Some(derived),
            );
            assert!(matches!(out, Encap::Ready { .. }), "len {len}");
            parse_back(&buf, dst, 30000, &expect, PEER_MAC);
            let mut full = buf.clone();
            UdpPacket::new_unchecked(&mut full[34..]).fill_checksum(OUR_IP, PEER_IP);
            assert_eq!(buf, full, "len {len} fill {fill:?}");
        }
    }
}

#[test]
fn offloaded_good_ip_checksum_is_trusted() {
    let (mut s, now) = stack();
    let mut f = udp_frame(1, 2, b"x");
    f[24] ^= 0x01; // IPv4 header checksum
    assert_eq!(
        s.handle_frame(now, &mut f.clone()),
        Ingress::Drop(L2Drop::BadIpChecksum)
    );
    let good = RxOffload {
        ipv4_checksum_good: true,
        ..RxOffload::default()
    };
    assert!(matches!(
        s.handle_frame_with(now, &mut f, good),
        Ingress::Udp { .. }
    ));
}
