//! The fast lane ([`crate::Relay::lane`]) taken first, the full path for what it declines,
//! gives exactly what the full path alone gives, over legs in every state the lane must
//! notice: verdicts, edited payloads, counters and events.

use std::net::SocketAddrV6;

use super::*;

/// Two relays driven alike: `lane` offers every packet to the fast lane first, `full`
/// takes the full path only.
struct Twins {
    lane: Pair,
    full: Pair,
    /// Packets the fast lane took.
    taken: usize,
}

impl Twins {
    fn new(setup: impl Fn(&mut Pair)) -> Self {
        let (mut lane, mut full) = (Pair::new(), Pair::new());
        setup(&mut lane);
        setup(&mut full);
        assert_eq!(lane.events(), full.events());
        Self {
            lane,
            full,
            taken: 0,
        }
    }

    fn cmd(&mut self, c: &Command) {
        self.lane.cmd(c.clone());
        self.full.cmd(c.clone());
    }

    fn advance(&mut self, by: Duration) {
        let at = self.lane.now - self.lane.t0 + by;
        self.lane.run_until(at);
        self.full.run_until(at);
    }

    /// One packet from `src` to our `port`, both ways; their results must agree.
    fn recv(&mut self, src: SocketAddr, port: u16, bytes: &[u8]) -> Verdict {
        let mut a = bytes.to_vec();
        let now = self.lane.now;
        let fast = match src {
            SocketAddr::V4(s4) => self.lane.relay.lane(now).forward_v4(0, port, s4, &a),
            SocketAddr::V6(_) => None,
        };
        let va = match fast {
            Some(f) => {
                self.taken += 1;
                Verdict::Forward {
                    from_addr: f.from_addr,
                    from_port: f.from_port,
                    to: SocketAddr::V4(f.to()),
                }
            }
            None => self.lane.relay.handle_packet_at(now, src, 0, port, &mut a),
        };
        let mut b = bytes.to_vec();
        let vb = self
            .full
            .relay
            .handle_packet_at(self.full.now, src, 0, port, &mut b);
        assert_eq!(va, vb, "verdict of a packet from {src} to port {port}");
        assert_eq!(a, b, "payload of a packet from {src} to port {port}");
        va
    }

    /// Everything observable is the same.
    fn check(&mut self) {
        assert_eq!(self.lane.relay.stats(), self.full.relay.stats());
        for port in (20000..=20010).step_by(2) {
            let id = LegId::new(port, 1);
            assert_eq!(self.lane.relay.leg_stats(id), self.full.relay.leg_stats(id));
        }
        assert_eq!(self.lane.events(), self.full.events());
        let rel = |p: &Pair| {
            p.sent
                .iter()
                .map(|(t, x, b)| (*t - p.t0, *x, b.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(rel(&self.lane), rel(&self.full));
    }
}

fn bridged(p: &mut Pair) {
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
}

/// A call's worth of RTP both ways (`n` packets each way, 20 ms apart).
fn talk(t: &mut Twins, first_seq: u16, n: u16) {
    for k in first_seq..first_seq + n {
        let ts = 160 * u32::from(k);
        t.recv(customer(), 20000, &rtp(k, ts, 0xc0c0, false));
        t.recv(agent(), 20002, &rtp(k, ts + 7, 0xa9e7, false));
        t.advance(20 * MS);
    }
}

#[test]
fn plain_bridged_legs_take_the_lane_after_latching() {
    let mut t = Twins::new(bridged);
    talk(&mut t, 1, 20);
    // The first packet of each leg latches on the full path; the rest take the lane.
    assert_eq!(t.taken, 38);
    t.check();
}

#[test]
fn what_the_lane_must_decline() {
    let mut t = Twins::new(bridged);
    talk(&mut t, 1, 3);
    let before = t.taken;
    // Not the plain fixed header: CSRC, padding, extension; a short packet; version 1.
    let mut csrc = rtp(10, 1600, 0xc0c0, false);
    csrc[0] = 0x81;
    csrc.splice(12..12, [0, 0, 0, 1]);
    t.recv(customer(), 20000, &csrc);
    let mut pad = rtp(11, 1760, 0xc0c0, false);
    pad[0] = 0xa0;
    *pad.last_mut().unwrap() = 4;
    t.recv(customer(), 20000, &pad);
    let mut bad_pad = rtp(12, 1920, 0xc0c0, false);
    bad_pad[0] = 0xa0;
    *bad_pad.last_mut().unwrap() = 255;
    t.recv(customer(), 20000, &bad_pad);
    t.recv(customer(), 20000, &[0x80, 0, 0, 1]);
    let mut v1 = rtp(13, 2080, 0xc0c0, false);
    v1[0] = 0x40;
    t.recv(customer(), 20000, &v1);
    // RTCP multiplexed on the RTP port, and on the RTCP port.
    t.recv(customer(), 20000, &rtcp_rr(0xc0c0));
    t.recv(customer(), 20001, &rtcp_rr(0xc0c0));
    // A stranger, the remote's other port, an unknown port.
    t.recv(stranger(), 20000, &rtp(14, 2240, 0x5555, false));
    t.recv(addr(1, 40002), 20000, &rtp(15, 2400, 0xc0c0, false));
    t.recv(customer(), 20008, &rtp(16, 2560, 0xc0c0, false));
    assert_eq!(t.taken, before, "the lane took a packet it must decline");
    talk(&mut t, 20, 2);
    assert_eq!(t.taken, before + 4);
    t.check();
}

#[test]
fn state_changes_send_packets_to_the_full_path() {
    let mut t = Twins::new(bridged);
    talk(&mut t, 1, 3);
    // A new remote: unlatched until its first packet.
    t.cmd(&Command::SetRemote {
        leg: A,
        remote: addr(3, 40000),
        codec: Codec::Pcmu,
    });
    t.recv(addr(3, 40000), 20000, &rtp(4, 640, 0xc0c1, false));
    t.recv(addr(3, 40000), 20000, &rtp(5, 800, 0xc0c1, false));
    // An announcement toward A: what B sends is not relayed; when it stops, the next
    // packet toward A carries the marker (full path), then the lane again.
    t.cmd(&Command::Play {
        leg: A,
        clip: clip(5),
        looping: false,
    });
    for k in 6..9 {
        t.recv(agent(), 20002, &rtp(k, 160 * u32::from(k), 0xa9e7, false));
        t.advance(20 * MS);
    }
    t.cmd(&Command::StopPlay { leg: A });
    t.advance(20 * MS);
    for k in 9..12 {
        t.recv(agent(), 20002, &rtp(k, 160 * u32::from(k), 0xa9e7, false));
    }
    // Payload types that differ: every packet toward the PCMA leg is converted.
    t.cmd(&Command::SetRemote {
        leg: B,
        remote: agent(),
        codec: Codec::Pcma,
    });
    t.recv(agent(), 20002, &rtp(12, 1920, 0xa9e7, false));
    for k in 13..16 {
        t.recv(
            addr(3, 40000),
            20000,
            &rtp(k, 160 * u32::from(k), 0xc0c1, false),
        );
    }
    // Unbridged: nothing is relayed.
    t.cmd(&Command::Unbridge { leg: A });
    t.recv(addr(3, 40000), 20000, &rtp(16, 2560, 0xc0c1, false));
    t.check();
    assert!(t.taken > 0);
}

#[test]
fn media_clock_starts_on_the_full_path_then_the_lane_keeps_it() {
    let mut t = Twins::new(|p| {
        let mut a = spec(A, Some(customer()));
        a.media_timeout = Some(Duration::from_millis(200));
        let mut b = spec(B, Some(agent()));
        b.media_timeout = Some(Duration::from_millis(200));
        p.cmd(Command::AddLeg(a));
        p.cmd(Command::AddLeg(b));
        p.cmd(Command::Bridge { a: A, b: B });
    });
    talk(&mut t, 1, 10);
    // Silence: the media timeout fires the same way on both, then media comes back.
    t.advance(Duration::from_millis(500));
    talk(&mut t, 20, 5);
    t.check();
    assert!(t.taken >= 20);
}

#[test]
fn ipv6_remotes_take_the_full_path() {
    let c6 = SocketAddr::V6(SocketAddrV6::new(
        "2001:db8::1".parse().unwrap(),
        40000,
        0,
        0,
    ));
    let mut t = Twins::new(|p| {
        p.cmd(Command::AddLeg(spec(A, Some(c6))));
        p.cmd(Command::AddLeg(spec(B, Some(agent()))));
        p.cmd(Command::Bridge { a: A, b: B });
    });
    for k in 1..5 {
        t.recv(c6, 20000, &rtp(k, 160 * u32::from(k), 1, false));
        t.recv(agent(), 20002, &rtp(k, 160 * u32::from(k), 2, false));
    }
    // Nothing toward the IPv6 leg or from it takes the (IPv4) lane.
    assert_eq!(t.taken, 0);
    t.check();
}
