//! [`crate::Relay::handle_packets`] gives exactly what [`crate::Relay::handle_packet_at`]
//! gives packet by packet: verdicts, edited payloads, counters and events.

use super::*;
use crate::BurstPacket;

struct Pkt {
    src: SocketAddr,
    port: u16,
    payload: Vec<u8>,
    verdict: Option<Verdict>,
}

impl BurstPacket for Pkt {
    fn dst(&self) -> (u8, u16) {
        (0, self.port)
    }
    fn src(&self) -> SocketAddr {
        self.src
    }
    fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }
    fn set_verdict(&mut self, v: Verdict) {
        self.verdict = Some(v);
    }
}

/// A mix: relayed RTP both ways, a stranger, RTCP on the odd port and multiplexed, an
/// unknown port, a malformed packet, RTP toward a leg that plays an announcement, more
/// than one stage's worth.
fn mix() -> Vec<Pkt> {
    let mut v = Vec::new();
    for k in 0..50u16 {
        let (src, port, payload) = match k % 10 {
            0..=2 => (customer(), 20000, rtp(k, 160 * u32::from(k), 7, false)),
            3..=4 => (agent(), 20002, rtp(k, 160 * u32::from(k), 8, false)),
            5 => (stranger(), 20000, rtp(k, 0, 9, false)),
            6 => (customer(), 20001, rtcp_rr(7)),
            7 => (agent(), 20002, rtcp_rr(8)),
            8 => (customer(), 30000, rtp(k, 0, 7, false)),
            _ => (
                customer(),
                if k == 19 { 20004 } else { 20000 },
                vec![0x80, 0],
            ),
        };
        v.push(Pkt {
            src,
            port,
            payload,
            verdict: None,
        });
    }
    v
}

fn setup() -> Pair {
    let mut p = Pair::bridged();
    let c = LegId::new(20004, 1);
    p.cmd(Command::AddLeg(spec(c, Some(stranger()))));
    p.cmd(Command::Play {
        leg: c,
        clip: clip(100),
        looping: true,
    });
    p.events();
    p
}

#[test]
fn a_burst_is_the_same_as_its_packets_one_by_one() {
    let (mut one, mut burst) = (setup(), setup());
    let mut a = mix();
    for pk in &mut a {
        let v = one
            .relay
            .handle_packet_at(one.now, pk.src, 0, pk.port, &mut pk.payload);
        pk.verdict = Some(v);
    }
    let mut b = mix();
    let now = burst.now;
    burst.relay.handle_packets(now, &mut b);
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x.verdict, y.verdict);
        assert_eq!(x.payload, y.payload);
    }
    assert!(b
        .iter()
        .any(|p| matches!(p.verdict, Some(Verdict::Forward { .. }))));
    assert!(b
        .iter()
        .any(|p| matches!(p.verdict, Some(Verdict::Drop(_)))));
    assert_eq!(one.relay.stats(), burst.relay.stats());
    for id in [A, B, LegId::new(20004, 1)] {
        assert_eq!(one.relay.leg_stats(id), burst.relay.leg_stats(id));
    }
    assert_eq!(one.events(), burst.events());
}

#[test]
fn touching_legs_changes_nothing() {
    let (mut one, mut two) = (setup(), setup());
    two.relay
        .touch_legs([(0, 20000), (0, 20001), (0, 20002), (0, 30000), (9, 20000)].into_iter());
    let (mut a, mut b) = (mix(), mix());
    let (t1, t2) = (one.now, two.now);
    one.relay.handle_packets(t1, &mut a);
    two.relay.handle_packets(t2, &mut b);
    assert_eq!(one.relay.stats(), two.relay.stats());
    assert_eq!(one.events(), two.events());
}
