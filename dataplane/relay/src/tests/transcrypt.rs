//! SRTP legs ([`Command::SetSrtp`]): transcrypting between an SRTP leg and a plain leg,
//! SRTCP, authentication before latching, replay, announcements, and plain legs untouched.
//!
//! The peers hold real libsrtp sessions (the `srtp` crate): the customer's phone encrypts
//! with its key (`CUSTOMER_KEY`, our leg's `recv`) and decrypts with ours (`RELAY_KEY`, the
//! leg's `send`).

use ::srtp::{MasterKey, Session, Suite};
use dp_api::{SrtpKey, SrtpKeys};

use super::*;
use crate::{Datagram, TRAILER_ROOM};

const SUITE: Suite = Suite::AesCm128HmacSha1_80;

fn key(byte: u8) -> MasterKey {
    MasterKey::new([byte; MasterKey::LEN])
}

/// What the customer's phone sends with, and what the relay sends to it with.
fn customer_key() -> MasterKey {
    key(0xc1)
}
fn relay_key() -> MasterKey {
    key(0x5e)
}

fn keys(recv: MasterKey, send: MasterKey) -> SrtpKeys {
    SrtpKeys {
        recv: SrtpKey {
            suite: SUITE,
            key: recv,
        },
        send: SrtpKey {
            suite: SUITE,
            key: send,
        },
    }
}

/// The customer's phone: it protects what it sends and unprotects what it receives.
struct Phone {
    tx: Session,
    rx: Session,
}

impl Phone {
    fn customer() -> Self {
        Self {
            tx: Session::outbound(SUITE, &customer_key()).unwrap(),
            rx: Session::inbound(SUITE, &relay_key()).unwrap(),
        }
    }
    fn protect(&mut self, plain: &[u8], rtcp: bool) -> Vec<u8> {
        let mut b = plain.to_vec();
        b.resize(plain.len() + TRAILER_ROOM, 0);
        let n = if rtcp {
            self.tx.protect_rtcp(&mut b, plain.len())
        } else {
            self.tx.protect_rtp(&mut b, plain.len())
        };
        b.truncate(n.unwrap());
        b
    }
    fn unprotect(&mut self, secret: &[u8], rtcp: bool) -> Result<Vec<u8>, ::srtp::Error> {
        let mut b = secret.to_vec();
        let n = if rtcp {
            self.rx.unprotect_rtcp(&mut b, secret.len())?
        } else {
            self.rx.unprotect_rtp(&mut b, secret.len())?
        };
        b.truncate(n);
        Ok(b)
    }
}

/// A bridged pair whose customer leg (A) is an SRTP leg.
fn srtp_bridged() -> Pair {
    let mut p = Pair::bridged();
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    assert_eq!(p.events(), vec![]);
    p
}

impl Pair {
    /// A packet arrives in a buffer with room after it (as the backends give it).
    fn datagram(&mut self, src: SocketAddr, dst_port: u16, bytes: &[u8]) -> (Verdict, Vec<u8>) {
        let mut buf = bytes.to_vec();
        buf.resize(bytes.len() + TRAILER_ROOM, 0);
        let mut d = Datagram::new(&mut buf, bytes.len());
        let v = self
            .relay
            .handle_datagram(self.now, src, 0, dst_port, &mut d);
        let (len, transcrypted) = (d.len, d.payload_rewritten);
        // Transcrypted exactly when an SRTP leg was involved and the packet went through
        // libsrtp (checked by the callers' expectations on the bytes).
        if !transcrypted {
            assert!(len == bytes.len(), "no SRTP, no length change");
        }
        buf.truncate(len);
        (v, buf)
    }

    fn drops(&self, leg: LegId, reason: DropReason) -> u64 {
        self.relay.leg_stats(leg).unwrap().drops.get(reason)
    }
}

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

#[test]
fn srtp_leg_to_plain_leg_comes_out_plain_and_identical() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    for seq in 100..110 {
        let plain = rtp(seq, u32::from(seq) * 160, 0xc0c0, false);
        let secret = phone.protect(&plain, false);
        assert_eq!(secret.len(), plain.len() + 10);
        let (v, out) = p.datagram(customer(), 20000, &secret);
        assert_eq!(v, TO_AGENT);
        assert_eq!(out, plain, "header and payload as the phone sent them");
    }
    let a = p.relay.leg_stats(A).unwrap();
    assert_eq!(
        (a.rx_packets, a.rx_bytes),
        (10, 10 * 182),
        "received as SRTP"
    );
    let b = p.relay.leg_stats(B).unwrap();
    assert_eq!((b.tx_packets, b.tx_bytes), (10, 10 * 172), "sent as RTP");
}

#[test]
fn plain_leg_to_srtp_leg_comes_out_decryptable() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    for seq in 7..17 {
        let plain = rtp(seq, u32::from(seq) * 160, 0xa9e7, false);
        let (v, out) = p.datagram(agent(), 20002, &plain);
        assert_eq!(v, TO_CUSTOMER);
        assert_eq!(out.len(), plain.len() + 10);
        assert_ne!(out[12..plain.len()], plain[12..], "encrypted");
        assert_eq!(phone.unprotect(&out, false).unwrap(), plain);
    }
    assert_eq!(p.relay.leg_stats(A).unwrap().tx_bytes, 10 * 182);
}

#[test]
fn srtcp_is_transcrypted_both_ways() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    // Customer → agent: SRTCP in, RTCP out to the agent's RTCP port.
    let rr = rtcp_rr(0xc0c0);
    let secret = phone.protect(&rr, true);
    assert_eq!(secret.len(), rr.len() + 14);
    let (v, out) = p.datagram(addr(1, 40001), 20001, &secret);
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20003,
            to: addr(2, 50001)
        }
    );
    assert_eq!(out, rr);
    // Agent → customer: RTCP in, SRTCP out.
    let rr = rtcp_rr(0xa9e7);
    let (v, out) = p.datagram(addr(2, 50001), 20003, &rr);
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20001,
            to: addr(1, 40001)
        }
    );
    assert_eq!(phone.unprotect(&out, true).unwrap(), rr);
    // SRTCP multiplexed on the RTP port (RFC 5761) too.
    let secret = phone.protect(&rtcp_rr(0xc0c0), true);
    let (v, out) = p.datagram(customer(), 20000, &secret);
    assert_eq!(v, TO_AGENT);
    assert_eq!(out, rtcp_rr(0xc0c0));
    // And plain RTCP multiplexed toward the SRTP leg leaves as SRTCP on its RTP port.
    let (v, out) = p.datagram(agent(), 20002, &rtcp_rr(0xa9e7));
    assert_eq!(v, TO_CUSTOMER);
    assert_eq!(phone.unprotect(&out, true).unwrap(), rtcp_rr(0xa9e7));
    // A tampered SRTCP packet and a replayed one are dropped and counted.
    let mut bad = phone.protect(&rtcp_rr(0xc0c0), true);
    let (v, _) = p.datagram(customer(), 20001, &bad);
    assert_eq!(v, TO_AGENT.with_port(20003, addr(2, 50001)));
    let (v, _) = p.datagram(customer(), 20001, &bad);
    assert_eq!(v, Verdict::Drop(DropReason::SrtpReplay));
    bad[9] ^= 1;
    let (v, _) = p.datagram(customer(), 20001, &bad);
    assert_eq!(v, Verdict::Drop(DropReason::SrtpAuth));
    // Plain RTCP on an SRTP leg is not authentic (and too short to be SRTCP if tiny).
    let mut rr_block = vec![0x81, 201, 0, 7, 0, 0, 0xc0, 0xc0];
    rr_block.extend_from_slice(&[0x11; 24]);
    let (v, _) = p.datagram(customer(), 20001, &rr_block);
    assert_eq!(v, Verdict::Drop(DropReason::SrtpAuth));
    let (v, _) = p.datagram(customer(), 20001, &rtcp_rr(0xc0c0));
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    assert_eq!(p.drops(A, DropReason::SrtpAuth), 2);
    assert_eq!(p.drops(A, DropReason::SrtpReplay), 1);
}

impl Verdict {
    fn with_port(self, port: u16, to: SocketAddr) -> Self {
        match self {
            Self::Forward { from_addr, .. } => Self::Forward {
                from_addr,
                from_port: port,
                to,
            },
            v => v,
        }
    }
}

#[test]
fn tampered_packets_are_dropped_counted_and_never_latch() {
    let mut p = Pair::new();
    let mut a = spec(A, Some(customer()));
    a.latch = Latch::Signalled;
    p.cmd(Command::AddLeg(a));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    p.events();
    let mut phone = Phone::customer();
    // From another port of the customer's IP, which a Signalled leg would latch onto.
    let nat = addr(1, 41234);
    let mut bad = phone.protect(&rtp(1, 160, 0xc0c0, false), false);
    bad[20] ^= 0x40;
    let (v, _) = p.datagram(nat, 20000, &bad);
    assert_eq!(v, Verdict::Drop(DropReason::SrtpAuth));
    // Plain RTP (no tag) is not authentic either, whatever its source.
    let (v, _) = p.datagram(nat, 20000, &rtp(2, 320, 0xc0c0, false));
    assert_eq!(v, Verdict::Drop(DropReason::SrtpAuth));
    let (v, _) = p.datagram(stranger(), 20000, &rtp(3, 480, 0xc0c0, false));
    assert_eq!(v, Verdict::Drop(DropReason::SrtpAuth));
    assert_eq!(p.events(), vec![], "nothing learned, nothing reported");
    let leg = p
        .relay
        .table()
        .get(p.relay.table().find(A).unwrap())
        .unwrap();
    assert!(!leg.latched);
    assert_eq!(leg.remote(), Some(customer()));
    assert_eq!(p.drops(A, DropReason::SrtpAuth), 3);
    assert_eq!(p.relay.stats().drops.get(DropReason::SrtpAuth), 3);
    // The next authentic packet from that port latches and is relayed.
    let good = phone.protect(&rtp(4, 640, 0xc0c0, false), false);
    let (v, out) = p.datagram(nat, 20000, &good);
    assert_eq!(v, TO_AGENT);
    assert_eq!(out, rtp(4, 640, 0xc0c0, false));
    assert_eq!(
        p.events(),
        vec![Event::RemoteLearned {
            leg: A,
            remote: nat
        }]
    );
}

#[test]
fn replays_are_dropped_and_counted() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    let first = phone.protect(&rtp(1, 160, 0xc0c0, false), false);
    assert_eq!(p.datagram(customer(), 20000, &first).0, TO_AGENT);
    assert_eq!(
        p.datagram(customer(), 20000, &first).0,
        Verdict::Drop(DropReason::SrtpReplay)
    );
    // Far ahead, then one older than the window.
    let late = phone.protect(&rtp(2, 320, 0xc0c0, false), false);
    let ahead = phone.protect(&rtp(300, 300 * 160, 0xc0c0, false), false);
    assert_eq!(p.datagram(customer(), 20000, &ahead).0, TO_AGENT);
    assert_eq!(
        p.datagram(customer(), 20000, &late).0,
        Verdict::Drop(DropReason::SrtpReplay)
    );
    assert_eq!(p.drops(A, DropReason::SrtpReplay), 2);
    // Re-sending the same keys keeps the replay state; new keys start afresh.
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    assert_eq!(
        p.datagram(customer(), 20000, &first).0,
        Verdict::Drop(DropReason::SrtpReplay)
    );
    assert_eq!(p.events(), vec![]);
}

#[test]
fn padded_srtp_packets_are_checked_after_decryption() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    // RTP with the padding bit and 4 padding bytes (count in the last byte). Encrypted, the
    // last byte on the wire is the tag's; the relay must not read it as the count.
    for seq in 1..40u16 {
        let mut plain = rtp(seq, u32::from(seq) * 160, 0xc0c0, false);
        plain[0] |= 0x20;
        plain.extend_from_slice(&[0, 0, 0, 4]);
        let secret = phone.protect(&plain, false);
        let (v, out) = p.datagram(customer(), 20000, &secret);
        assert_eq!((v, out), (TO_AGENT, plain));
    }
    // A bad padding count inside an authentic packet is malformed.
    let mut plain = rtp(50, 8000, 0xc0c0, false);
    plain[0] |= 0x20;
    let n = plain.len();
    plain[n - 1] = 255;
    let (v, _) = p.datagram(customer(), 20000, &phone.protect(&plain, false));
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
}

#[test]
fn announcements_to_an_srtp_leg_are_encrypted() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    p.cmd(Command::Play {
        leg: A,
        clip: clip(5),
        looping: false,
    });
    p.run_until(200 * MS);
    assert_eq!(p.sent.len(), 5);
    let mut phone = Phone::customer();
    let mut last_seq = None;
    for (_, t, bytes) in &p.sent {
        assert_eq!(t.len, crate::announce::PACKET_LEN + 10);
        assert_eq!((t.from_port, t.to), (20000, customer()));
        let plain = phone
            .unprotect(bytes, false)
            .expect("decrypts with the leg's send key");
        assert_eq!(plain.len(), crate::announce::PACKET_LEN);
        let r = RtpPacket::new_checked(&plain[..]).unwrap();
        assert_eq!(r.payload_type(), 0);
        if let Some(s) = last_seq {
            assert_eq!(r.sequence_number(), u16::wrapping_add(s, 1));
        }
        last_seq = Some(r.sequence_number());
    }
    let a = p.relay.leg_stats(A).unwrap();
    assert_eq!((a.announcement_packets, a.tx_bytes), (5, 5 * 182));
}

#[test]
fn an_announcement_without_room_is_dropped_and_counted() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    p.cmd(Command::Play {
        leg: A,
        clip: clip(3),
        looping: false,
    });
    let mut buf = [0u8; crate::announce::PACKET_LEN + 9];
    assert_eq!(p.relay.poll_transmit(p.now, &mut buf), None);
    assert_eq!(p.drops(A, DropReason::SrtpNoRoom), 1);
    assert_eq!(p.relay.leg_stats(A).unwrap().tx_packets, 0);
    // The playback goes on.
    p.run_until(100 * MS);
    assert_eq!(p.sent.len(), 2);
}

#[test]
fn no_room_and_the_fixed_length_entry_point_are_counted_drops() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    // Toward the SRTP leg with no room after the payload.
    let plain = rtp(1, 160, 0xa9e7, false);
    let mut exact = plain.clone();
    let len = exact.len();
    let v = p.relay.handle_datagram(
        p.now,
        agent(),
        0,
        20002,
        &mut Datagram::new(&mut exact, len),
    );
    assert_eq!(v, Verdict::Drop(DropReason::SrtpNoRoom));
    assert_eq!(p.drops(B, DropReason::SrtpNoRoom), 1);
    assert_eq!(p.relay.leg_stats(A).unwrap().tx_packets, 0);
    // handle_packet cannot change the length: SRTP both ways is refused, counted.
    let (v, _) = p.recv(agent(), 20002, rtp(2, 320, 0xa9e7, false));
    assert_eq!(v, Verdict::Drop(DropReason::SrtpNoRoom));
    let secret = phone.protect(&rtp(1, 160, 0xc0c0, false), false);
    let (v, _) = p.recv(customer(), 20000, secret.clone());
    assert_eq!(v, Verdict::Drop(DropReason::SrtpNoRoom));
    // The packet was not consumed: through handle_datagram it still goes through.
    assert_eq!(p.datagram(customer(), 20000, &secret).0, TO_AGENT);
    // Too short to be RTP at all: malformed.
    assert_eq!(
        p.datagram(customer(), 20000, &[0x80, 0, 0]).0,
        Verdict::Drop(DropReason::Malformed)
    );
    // A valid RTP header without room for a tag: not authentic.
    let fresh = phone.protect(&rtp(2, 320, 0xc0c0, false), false);
    assert_eq!(
        p.datagram(customer(), 20000, &fresh[..14]).0,
        Verdict::Drop(DropReason::SrtpAuth)
    );
}

#[test]
fn two_srtp_legs_transcrypt_from_one_key_to_the_other() {
    let mut p = srtp_bridged();
    p.cmd(Command::SetSrtp {
        leg: B,
        keys: Some(keys(key(0xa1), key(0xa2))),
    });
    let mut agent_phone = Phone {
        tx: Session::outbound(SUITE, &key(0xa1)).unwrap(),
        rx: Session::inbound(SUITE, &key(0xa2)).unwrap(),
    };
    let mut customer_phone = Phone::customer();
    let plain = rtp(5, 800, 0xc0c0, true);
    let (v, out) = p.datagram(customer(), 20000, &customer_phone.protect(&plain, false));
    assert_eq!(v, TO_AGENT);
    assert_eq!(agent_phone.unprotect(&out, false).unwrap(), plain);
    let plain = rtp(9, 1440, 0xa9e7, false);
    let (v, out) = p.datagram(agent(), 20002, &agent_phone.protect(&plain, false));
    assert_eq!(v, TO_CUSTOMER);
    assert_eq!(customer_phone.unprotect(&out, false).unwrap(), plain);
}

#[test]
fn plain_legs_keep_todays_path_and_srtp_can_be_turned_off() {
    let mut p = Pair::bridged();
    let plain = rtp(1, 160, 0xc0c0, false);
    let (v, out) = p.datagram(customer(), 20000, &plain);
    assert_eq!((v, out), (TO_AGENT, plain.clone()), "length unchanged");
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    assert_eq!(
        p.datagram(customer(), 20000, &rtp(2, 320, 0xc0c0, false)).0,
        Verdict::Drop(DropReason::SrtpAuth)
    );
    p.cmd(Command::SetSrtp { leg: A, keys: None });
    let plain = rtp(3, 480, 0xc0c0, false);
    assert_eq!(p.datagram(customer(), 20000, &plain), (TO_AGENT, plain));
    // A removed leg's port comes back plain.
    p.cmd(Command::SetSrtp {
        leg: A,
        keys: Some(keys(customer_key(), relay_key())),
    });
    p.cmd(Command::RemoveLeg { leg: A });
    let a2 = LegId::new(20000, 2);
    p.cmd(Command::AddLeg(spec(a2, Some(customer()))));
    p.cmd(Command::Bridge { a: a2, b: B });
    let plain = rtp(4, 640, 0xc0c0, false);
    assert_eq!(p.datagram(customer(), 20000, &plain), (TO_AGENT, plain));
    // SetSrtp on an unknown leg fails like any command.
    p.events();
    p.cmd(Command::SetSrtp { leg: A, keys: None });
    assert_eq!(
        p.events(),
        vec![Event::CommandFailed {
            leg: Some(A),
            error: CommandError::UnknownLeg
        }]
    );
}

#[test]
fn transcrypted_is_reported_only_when_libsrtp_touched_the_packet() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    let run = |p: &mut Pair, src: SocketAddr, port: u16, bytes: &[u8]| {
        let mut buf = bytes.to_vec();
        buf.resize(bytes.len() + TRAILER_ROOM, 0);
        let mut d = Datagram::new(&mut buf, bytes.len());
        let v = p.relay.handle_datagram(p.now, src, 0, port, &mut d);
        (v, d.payload_rewritten)
    };
    let secret = phone.protect(&rtp(1, 160, 0xc0c0, false), false);
    assert_eq!(run(&mut p, customer(), 20000, &secret), (TO_AGENT, true));
    assert_eq!(
        run(&mut p, agent(), 20002, &rtp(1, 160, 0xa9e7, false)),
        (TO_CUSTOMER, true)
    );
    p.cmd(Command::SetSrtp { leg: A, keys: None });
    assert_eq!(
        run(&mut p, customer(), 20000, &rtp(2, 320, 0xc0c0, false)),
        (TO_AGENT, false)
    );
}

#[test]
fn the_switch_marker_survives_a_packet_that_could_not_be_encrypted() {
    let mut p = srtp_bridged();
    let mut phone = Phone::customer();
    p.cmd(Command::Play {
        leg: A,
        clip: clip(50),
        looping: true,
    });
    p.cmd(Command::StopPlay { leg: A });
    // No room: dropped, and the marker waits for the next packet toward the customer.
    let mut exact = rtp(1, 160, 0xa9e7, false);
    let len = exact.len();
    let v = p.relay.handle_datagram(
        p.now,
        agent(),
        0,
        20002,
        &mut Datagram::new(&mut exact, len),
    );
    assert_eq!(v, Verdict::Drop(DropReason::SrtpNoRoom));
    let (v, out) = p.datagram(agent(), 20002, &rtp(2, 320, 0xa9e7, false));
    assert_eq!(v, TO_CUSTOMER);
    let plain = phone.unprotect(&out, false).unwrap();
    assert!(RtpPacket::new_checked(&plain[..]).unwrap().marker());
    let (_, out) = p.datagram(agent(), 20002, &rtp(3, 480, 0xa9e7, false));
    let plain = phone.unprotect(&out, false).unwrap();
    assert!(!RtpPacket::new_checked(&plain[..]).unwrap().marker());
}

/// An SRTP PCMU leg bridged to a plain PCMA leg: decrypted on the way in, converted, then
/// encrypted on the way out (the conversion sees plain payloads only, and the
/// authentication tag covers the converted packet).
#[test]
fn srtp_and_law_conversion_combine_in_order() {
    use crate::g711;
    use dp_api::PayloadTypes;
    let mut p = srtp_bridged();
    p.cmd(Command::SetPayloadTypes {
        leg: A,
        types: PayloadTypes {
            telephone_event: Some(101),
            ..PayloadTypes::of(Codec::Pcmu)
        },
    });
    p.cmd(Command::SetPayloadTypes {
        leg: B,
        types: PayloadTypes {
            telephone_event: Some(96),
            ..PayloadTypes::of(Codec::Pcma)
        },
    });
    let mut phone = Phone::customer();
    let codes: Vec<u8> = (0..=255).collect();
    let packet = |pt: u8, seq: u16, marker: bool, payload: &[u8]| {
        let mut r = RtpRepr::simple(pt, seq, u32::from(seq) * 160, 0xc0c0, payload);
        r.marker = marker;
        let mut v = vec![0; r.buffer_len()];
        r.emit(&mut v);
        v
    };
    let mut alaw = codes.clone();
    g711::ulaw_to_alaw_in_place(&mut alaw);
    let mut ulaw = codes.clone();
    g711::alaw_to_ulaw_in_place(&mut ulaw);

    for seq in 1..4 {
        let secret = phone.protect(&packet(0, seq, seq == 1, &codes), false);
        let (v, out) = p.datagram(customer(), 20000, &secret);
        assert_eq!(v, TO_AGENT);
        assert_eq!(out, packet(8, seq, seq == 1, &alaw), "plain A-law, PT 8");

        let (v, out) = p.datagram(agent(), 20002, &packet(8, seq, seq == 2, &codes));
        assert_eq!(v, TO_CUSTOMER);
        assert_eq!(
            phone.unprotect(&out, false).unwrap(),
            packet(0, seq, seq == 2, &ulaw),
            "the phone decrypts µ-law, PT 0"
        );
    }
    // DTMF both ways: renumbered inside the encryption, never converted.
    let event = [9, 0x8a, 0x01, 0x40];
    let secret = phone.protect(&packet(101, 10, true, &event), false);
    let (v, out) = p.datagram(customer(), 20000, &secret);
    assert_eq!((v, out), (TO_AGENT, packet(96, 10, true, &event)));
    let (v, out) = p.datagram(agent(), 20002, &packet(96, 10, false, &event));
    assert_eq!(v, TO_CUSTOMER);
    assert_eq!(
        phone.unprotect(&out, false).unwrap(),
        packet(101, 10, false, &event)
    );
    // Comfort noise from the SRTP leg cannot be converted: dropped after decryption.
    let secret = phone.protect(&packet(13, 11, false, &[0x40]), false);
    let (v, _) = p.datagram(customer(), 20000, &secret);
    assert_eq!(v, Verdict::Drop(DropReason::UnmappedPayloadType));
    assert_eq!(p.drops(A, DropReason::UnmappedPayloadType), 1);
    assert_eq!(p.drops(A, DropReason::SrtpAuth), 0);
}
