//! An SRTP leg bridged to a plain leg on the real socket backend (UDP on 127.0.0.1), with
//! real libsrtp sessions on the customer's phone.

use ::srtp::{MasterKey, Session, Suite};
use dp_api::{SrtpKey, SrtpKeys};

use super::*;

const SUITE: Suite = Suite::AesCm128HmacSha1_80;

/// The customer's phone's sessions: it sends with `phone_key`, hears the relay's `relay_key`.
struct Crypto {
    tx: Session,
    rx: Session,
}

impl Crypto {
    fn protect(&mut self, plain: &[u8], rtcp: bool) -> Vec<u8> {
        let mut b = plain.to_vec();
        b.resize(plain.len() + ::srtp::MAX_TRAILER, 0);
        let n = if rtcp {
            self.tx.protect_rtcp(&mut b, plain.len())
        } else {
            self.tx.protect_rtp(&mut b, plain.len())
        }
        .unwrap();
        b.truncate(n);
        b
    }
    fn unprotect(&mut self, mut b: Vec<u8>, rtcp: bool) -> Vec<u8> {
        let len = b.len();
        let n = if rtcp {
            self.rx.unprotect_rtcp(&mut b, len)
        } else {
            self.rx.unprotect_rtp(&mut b, len)
        }
        .expect("decrypts with the leg's send key");
        b.truncate(n);
        b
    }
}

fn stats(handle: &dp_api::DataplaneHandle, leg: LegId) -> dp_api::LegStats {
    handle.send(Command::QueryStats { leg }).unwrap();
    match wait_event(
        handle,
        |e| matches!(e, Event::Stats { leg: l, .. } if *l == leg),
    ) {
        Event::Stats { stats, .. } => stats,
        _ => unreachable!(),
    }
}

#[test]
fn socket_io_transcrypts_between_an_srtp_leg_and_a_plain_leg() {
    // Below the ephemeral range and away from the other loopback tests' blocks.
    let base = 12000 + (std::process::id() % 500) as u16 * 40;
    let cfg = DataplaneConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base..=base + 39);
    let (dp, handle) = Dataplane::start(cfg).unwrap();
    let (cust_rtp, cust_rtcp) = phone();
    let (agent_rtp, agent_rtcp) = phone();
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate_on(0).unwrap();
    let relay_addr = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    let phone_key = MasterKey::generate().unwrap();
    let relay_key = MasterKey::generate().unwrap();
    let mut phone = Crypto {
        tx: Session::outbound(SUITE, &phone_key).unwrap(),
        rx: Session::inbound(SUITE, &relay_key).unwrap(),
    };
    handle
        .send(Command::AddLeg(spec(
            a,
            Some(cust_rtp.local_addr().unwrap()),
        )))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(
            b,
            Some(agent_rtp.local_addr().unwrap()),
        )))
        .unwrap();
    handle
        .send(Command::SetSrtp {
            leg: a,
            keys: Some(SrtpKeys {
                recv: SrtpKey {
                    suite: SUITE,
                    key: phone_key,
                },
                send: SrtpKey {
                    suite: SUITE,
                    key: relay_key,
                },
            }),
        })
        .unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    // Commands are handled in order: once this is answered, the bridge is up.
    stats(&handle, b);

    // Customer → agent: SRTP in, the phone's RTP out, byte for byte. A tampered packet sent
    // first never arrives.
    let mut tampered = phone.protect(&rtp(1, 0xc0c0), false);
    tampered[30] ^= 0x10;
    cust_rtp.send_to(&tampered, relay_addr(a.port())).unwrap();
    let secret = phone.protect(&rtp(2, 0xc0c0), false);
    cust_rtp.send_to(&secret, relay_addr(a.port())).unwrap();
    let (d, from) = recv(&agent_rtp, DEADLINE).expect("customer → agent");
    assert_eq!((d, from), (rtp(2, 0xc0c0), relay_addr(b.port())));
    // The same packet again is a replay.
    cust_rtp.send_to(&secret, relay_addr(a.port())).unwrap();

    // Agent → customer: RTP in, SRTP out that the phone decrypts.
    agent_rtp
        .send_to(&rtp(7, 0xa9e7), relay_addr(b.port()))
        .unwrap();
    let (d, from) = recv(&cust_rtp, DEADLINE).expect("agent → customer");
    assert_eq!(from, relay_addr(a.port()));
    assert_eq!(d.len(), rtp(7, 0xa9e7).len() + 10);
    assert_eq!(phone.unprotect(d, false), rtp(7, 0xa9e7));

    // SRTCP both ways.
    let rr = [0x80, 201, 0, 1, 0, 0, 0xc0, 0xc0];
    cust_rtcp
        .send_to(&phone.protect(&rr, true), relay_addr(a.port() + 1))
        .unwrap();
    let (d, from) = recv(&agent_rtcp, DEADLINE).expect("RTCP customer → agent");
    assert_eq!((d.as_slice(), from), (&rr[..], relay_addr(b.port() + 1)));
    let rr = [0x80, 201, 0, 1, 0, 0, 0xa9, 0xe7];
    agent_rtcp.send_to(&rr, relay_addr(b.port() + 1)).unwrap();
    let (d, from) = recv(&cust_rtcp, DEADLINE).expect("RTCP agent → customer");
    assert_eq!(from, relay_addr(a.port() + 1));
    assert_eq!(phone.unprotect(d, true), rr);

    let s = stats(&handle, a);
    assert_eq!(s.drops.get(DropReason::SrtpAuth), 1, "{s:?}");
    assert_eq!(s.drops.get(DropReason::SrtpReplay), 1, "{s:?}");
    assert_eq!(
        (s.rx_packets, s.tx_packets, s.rx_rtcp, s.tx_rtcp),
        (3, 1, 1, 1)
    );
    assert!(
        recv(&agent_rtp, Duration::from_millis(50)).is_none(),
        "neither the tampered packet nor the replay was relayed"
    );
    dp.shutdown();
}
