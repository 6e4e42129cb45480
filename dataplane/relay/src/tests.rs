//! Sans-IO scenarios: a [`Pair`] harness drives the relay and fake peers on fake time.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dp_api::{
    Clip, Codec, Command, CommandError, DropReason, Event, Latch, LegId, LegSpec, SrcMismatch,
};
use wire::rtp::{RtpPacket, RtpRepr};

use crate::{Relay, RelayConfig, Transmit, Verdict};

mod announce;
mod burst;
mod convert;
mod generations;
mod lane;
mod latching;
mod rtcp;
mod transcrypt;

const MS: Duration = Duration::from_millis(1);

fn addr(last: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
}

/// The customer's phone, the agent's phone and a stranger.
fn customer() -> SocketAddr {
    addr(1, 40000)
}
fn agent() -> SocketAddr {
    addr(2, 50000)
}
fn stranger() -> SocketAddr {
    addr(9, 6666)
}

const A: LegId = LegId::new(20000, 1);
const B: LegId = LegId::new(20002, 1);

fn spec(id: LegId, remote: Option<SocketAddr>) -> LegSpec {
    LegSpec {
        id,
        remote,
        latch: Latch::Off,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    }
}

/// Signals `remote` for `leg` (PCMU).
fn set_remote(p: &mut Pair, leg: LegId, remote: SocketAddr) {
    p.cmd(Command::SetRemote {
        leg,
        remote,
        codec: Codec::Pcmu,
    });
}

fn rtp(seq: u16, ts: u32, ssrc: u32, marker: bool) -> Vec<u8> {
    let payload = [0x55u8; 160];
    let mut r = RtpRepr::simple(0, seq, ts, ssrc, &payload);
    r.marker = marker;
    let mut v = vec![0; r.buffer_len()];
    r.emit(&mut v);
    v
}

/// An RTCP receiver report with no report blocks.
fn rtcp_rr(ssrc: u32) -> Vec<u8> {
    let mut v = vec![0x80, 201, 0, 1];
    v.extend_from_slice(&ssrc.to_be_bytes());
    v
}

fn clip(frames: usize) -> Arc<Clip> {
    let lin: Vec<i16> = (0..frames * 160)
        .map(|i| (((i / 160) % 30) as i16 + 1) * 1000)
        .collect();
    Arc::new(Clip::from_linear("test", &lin))
}

/// The relay plus a fake clock; captures what it transmits.
struct Pair {
    relay: Relay,
    t0: Instant,
    now: Instant,
    sent: Vec<(Instant, Transmit, Vec<u8>)>,
}

impl Pair {
    fn new() -> Self {
        Self::with_events(64)
    }

    fn with_events(cap: usize) -> Self {
        let t0 = Instant::now();
        Self {
            relay: Relay::new(RelayConfig::new(20000..=20011, cap)),
            t0,
            now: t0,
            sent: Vec::new(),
        }
    }

    fn cmd(&mut self, c: Command) {
        self.relay.handle_command(self.now, c);
    }

    fn bridged() -> Self {
        let mut p = Self::new();
        p.cmd(Command::AddLeg(spec(A, Some(customer()))));
        p.cmd(Command::AddLeg(spec(B, Some(agent()))));
        p.cmd(Command::Bridge { a: A, b: B });
        p.events();
        p
    }

    /// A packet from `src` arrives on our `dst_port`.
    fn recv(&mut self, src: SocketAddr, dst_port: u16, mut bytes: Vec<u8>) -> (Verdict, Vec<u8>) {
        let v = self
            .relay
            .handle_packet(self.now, src, dst_port, &mut bytes);
        (v, bytes)
    }

    /// Advances fake time to `t0 + at`, waking at every deadline the relay asks for, like a
    /// worker would, and capturing announcement packets.
    fn run_until(&mut self, at: Duration) {
        let end = self.t0 + at;
        loop {
            self.pump();
            match self.relay.poll_timeout() {
                Some(t) if t <= end && t > self.now => self.now = t,
                Some(t) if t <= self.now => unreachable!("pump leaves nothing due"),
                _ => break,
            }
        }
        self.now = end;
        self.pump();
    }

    /// Jumps the clock without waking in between (a stalled worker).
    fn jump_to(&mut self, at: Duration) {
        self.now = self.t0 + at;
        self.pump();
    }

    fn pump(&mut self) {
        self.relay.handle_timeout(self.now);
        let mut buf = [0u8; 1500];
        while let Some(t) = self.relay.poll_transmit(self.now, &mut buf) {
            self.sent.push((self.now, t, buf[..t.len].to_vec()));
        }
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.relay.poll_event()).collect()
    }
}

#[test]
fn bridge_relays_both_ways_untouched() {
    let mut p = Pair::bridged();
    let pkt = rtp(100, 1000, 0xc0c0, false);
    let (v, out) = p.recv(customer(), 20000, pkt.clone());
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20002,
            to: agent()
        }
    );
    assert_eq!(out, pkt, "transparent relay");
    let pkt = rtp(7, 77, 0xa9e7, true);
    let (v, out) = p.recv(agent(), 20002, pkt.clone());
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20000,
            to: customer()
        }
    );
    assert_eq!(out, pkt);
    let a = p.relay.leg_stats(A).unwrap();
    assert_eq!(
        (a.rx_packets, a.rx_bytes, a.tx_packets, a.tx_bytes),
        (1, 172, 1, 172)
    );
    let s = p.relay.stats();
    assert_eq!((s.rx_packets, s.tx_packets, s.legs), (2, 2, 2));
}

#[test]
fn latching_learns_first_source_once() {
    let mut p = Pair::new();
    let mut s = spec(A, Some(customer()));
    s.latch = Latch::Signalled;
    s.src_mismatch = SrcMismatch::Report;
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    assert_eq!(
        p.events(),
        vec![Event::LegAdded { leg: A }, Event::LegAdded { leg: B }]
    );
    // The customer's NAT keeps its IP but not its port: media comes from another port of
    // the signalled IP.
    let natted = addr(1, 61000);
    let (v, _) = p.recv(natted, 20000, rtp(1, 0, 1, false));
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20002,
            to: agent()
        }
    );
    assert_eq!(
        p.events(),
        vec![Event::RemoteLearned {
            leg: A,
            remote: natted
        }]
    );
    // Relayed media toward A now goes to the learned address.
    let (v, _) = p.recv(agent(), 20002, rtp(1, 0, 2, false));
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20000,
            to: natted
        }
    );
    // The SDP address is now foreign; learning happened once.
    let (v, _) = p.recv(customer(), 20000, rtp(2, 160, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    let (v, _) = p.recv(natted, 20000, rtp(3, 320, 1, false));
    assert!(matches!(v, Verdict::Forward { .. }));
    assert_eq!(
        p.events(),
        vec![Event::SrcMismatch {
            leg: A,
            from: customer()
        }]
    );
}

#[test]
fn accepted_from_the_signalled_remote_then_foreign_sources() {
    let mut p = Pair::new();
    let mut s = spec(A, None);
    s.latch = Latch::Signalled;
    p.cmd(Command::AddLeg(s));
    p.events();
    set_remote(&mut p, A, customer());
    let (v, _) = p.recv(customer(), 20000, rtp(1, 0, 1, false));
    assert_eq!(
        v,
        Verdict::Drop(DropReason::NotBridged),
        "accepted but not bridged"
    );
    assert!(p.events().is_empty(), "the signalled address is not news");
    let (v, _) = p.recv(stranger(), 20000, rtp(2, 160, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    assert!(p.events().is_empty(), "SrcMismatch::Drop does not report");
    let st = p.relay.leg_stats(A).unwrap();
    assert_eq!(st.drops.get(DropReason::SrcMismatch), 1);
    assert_eq!(st.drops.get(DropReason::NotBridged), 1);
    assert_eq!(st.rx_packets, 2, "rx counts accepted or not");
}

#[test]
fn foreign_source_policies() {
    let mut p = Pair::bridged();
    // Drop (the default in `spec`): dropped and counted, no event.
    let (v, _) = p.recv(stranger(), 20000, rtp(1, 0, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    assert!(p.events().is_empty());

    // Report: dropped, counted, reported once per leg.
    let mut p = Pair::new();
    let mut s = spec(A, Some(customer()));
    s.src_mismatch = SrcMismatch::Report;
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    p.events();
    for _ in 0..3 {
        let (v, _) = p.recv(stranger(), 20000, rtp(1, 0, 1, false));
        assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    }
    assert_eq!(
        p.events(),
        vec![Event::SrcMismatch {
            leg: A,
            from: stranger()
        }]
    );
    assert_eq!(
        p.relay
            .leg_stats(A)
            .unwrap()
            .drops
            .get(DropReason::SrcMismatch),
        3
    );
    assert_eq!(p.relay.stats().drops.get(DropReason::SrcMismatch), 3);

    // Ignore: relayed as if from the remote.
    let mut p = Pair::new();
    let mut s = spec(A, Some(customer()));
    s.src_mismatch = SrcMismatch::Ignore;
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    let (v, _) = p.recv(stranger(), 20000, rtp(1, 0, 1, false));
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20002,
            to: agent()
        }
    );
}

#[test]
fn malformed_rtp_and_unknown_ports() {
    let mut p = Pair::bridged();
    let (v, _) = p.recv(customer(), 20000, vec![0x80, 0, 0]);
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    let mut v1 = rtp(1, 0, 1, false);
    v1[0] = 0x40; // version 1
    let (v, _) = p.recv(customer(), 20000, v1);
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    assert_eq!(
        p.relay
            .leg_stats(A)
            .unwrap()
            .drops
            .get(DropReason::Malformed),
        2
    );
    for port in [20004, 20005, 19999, 20012, 9] {
        let (v, _) = p.recv(customer(), port, rtp(1, 0, 1, false));
        assert_eq!(v, Verdict::Drop(DropReason::UnknownPort), "port {port}");
    }
    assert_eq!(p.relay.stats().drops.get(DropReason::UnknownPort), 5);
}

#[test]
fn not_bridged_and_peer_without_remote() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::AddLeg(spec(B, None)));
    let (v, _) = p.recv(customer(), 20000, rtp(1, 0, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::NotBridged));
    p.cmd(Command::Bridge { a: A, b: B });
    let (v, _) = p.recv(customer(), 20000, rtp(2, 160, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::PeerNoRemote));
    p.cmd(Command::SetRemote {
        leg: B,
        remote: agent(),
        codec: Codec::Pcma,
    });
    let (v, _) = p.recv(customer(), 20000, rtp(3, 320, 1, false));
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20002,
            to: agent()
        }
    );
    p.cmd(Command::Unbridge { leg: B });
    let (v, _) = p.recv(customer(), 20000, rtp(4, 480, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::NotBridged));
    let st = p.relay.leg_stats(A).unwrap();
    assert_eq!(st.drops.get(DropReason::NotBridged), 2);
    assert_eq!(st.drops.get(DropReason::PeerNoRemote), 1);
}

#[test]
fn media_timeout_once_per_silence() {
    let mut p = Pair::new();
    let mut s = spec(A, Some(customer()));
    s.media_timeout = Some(Duration::from_secs(2));
    p.cmd(Command::AddLeg(s));
    p.events();
    p.run_until(Duration::from_millis(1999));
    assert!(p.events().is_empty());
    // Media at 1.5 s would have pushed the deadline; here the clock started at AddLeg.
    p.run_until(Duration::from_millis(2000));
    assert_eq!(p.events(), vec![Event::MediaTimeout { leg: A }]);
    p.run_until(Duration::from_secs(10));
    assert!(p.events().is_empty(), "once");
    assert_eq!(p.relay.poll_timeout(), None);
    // Media resumes at 10 s and stops: reported again 2 s after the last packet.
    p.recv(customer(), 20000, rtp(1, 0, 1, false));
    p.run_until(Duration::from_millis(11_000));
    p.recv(customer(), 20000, rtp(2, 160, 1, false));
    p.run_until(Duration::from_millis(12_999));
    assert!(p.events().is_empty());
    p.run_until(Duration::from_millis(13_000));
    assert_eq!(p.events(), vec![Event::MediaTimeout { leg: A }]);
}

#[test]
fn media_clock_waits_for_the_remote() {
    let mut p = Pair::new();
    let mut s = spec(A, None);
    s.latch = Latch::Nat {
        window: Duration::from_secs(2),
    };
    s.media_timeout = Some(Duration::from_secs(1));
    p.cmd(Command::AddLeg(s));
    p.run_until(Duration::from_secs(5));
    assert_eq!(
        p.events(),
        vec![Event::LegAdded { leg: A }],
        "no clock before the remote"
    );
    // Packets before the remote is signalled are refused: they start no clock.
    for k in 0..3u16 {
        let (v, _) = p.recv(customer(), 20000, rtp(k, 0, 1, false));
        assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    }
    p.run_until(Duration::from_secs(7));
    assert!(p.events().is_empty());
    set_remote(&mut p, A, customer());
    p.run_until(Duration::from_millis(7999));
    assert!(p.events().is_empty());
    p.run_until(Duration::from_secs(8));
    assert_eq!(p.events(), vec![Event::MediaTimeout { leg: A }]);
}

#[test]
fn remove_leg_reports_final_stats() {
    let mut p = Pair::bridged();
    for k in 0..5u16 {
        p.now = p.t0 + 20 * MS * u32::from(k);
        p.recv(customer(), 20000, rtp(k, 160 * u32::from(k), 1, false));
    }
    p.recv(stranger(), 20000, rtp(9, 0, 1, false));
    p.cmd(Command::QueryStats { leg: A });
    let evs = p.events();
    let Event::Stats { leg, stats } = evs[0].clone() else {
        panic!("{evs:?}")
    };
    assert_eq!(leg, A);
    p.cmd(Command::RemoveLeg { leg: A });
    let evs = p.events();
    assert_eq!(evs, vec![Event::LegRemoved { leg: A, stats }]);
    assert_eq!((stats.rx_packets, stats.rx_bytes), (6, 6 * 172));
    assert_eq!(stats.drops.get(DropReason::SrcMismatch), 1);
    assert_eq!(stats.jitter_us, 0);
    assert_eq!(p.relay.leg_stats(B).unwrap().tx_packets, 5);
    // Gone: its port is unknown, B is unbridged, a second remove fails.
    let (v, _) = p.recv(customer(), 20000, rtp(6, 960, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::UnknownPort));
    let (v, _) = p.recv(agent(), 20002, rtp(6, 960, 1, false));
    assert_eq!(v, Verdict::Drop(DropReason::NotBridged));
    p.cmd(Command::RemoveLeg { leg: A });
    assert_eq!(
        p.events(),
        vec![Event::CommandFailed {
            leg: Some(A),
            error: CommandError::UnknownLeg
        }]
    );
    assert_eq!(p.relay.stats().legs, 1);
}

#[test]
fn jitter_shows_in_stats() {
    let mut p = Pair::bridged();
    p.recv(customer(), 20000, rtp(0, 0, 1, false));
    p.now = p.t0 + 25 * MS; // 5 ms late
    p.recv(customer(), 20000, rtp(1, 160, 1, false));
    let st = p.relay.leg_stats(A).unwrap();
    assert_eq!((st.jitter_us, st.max_jitter_us), (312, 312));
}

#[test]
fn command_errors() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, None)));
    p.cmd(Command::AddLeg(spec(LegId::new(20000, 2), None)));
    p.cmd(Command::AddLeg(spec(LegId::new(30000, 1), None)));
    p.cmd(Command::Bridge {
        a: A,
        b: LegId::new(30000, 1),
    });
    p.cmd(Command::Bridge { a: A, b: B });
    p.cmd(Command::SetRemote {
        leg: LegId::new(20000, 2),
        remote: customer(),
        codec: Codec::Pcmu,
    });
    p.cmd(Command::Shutdown);
    let f = |leg, error| Event::CommandFailed {
        leg: Some(leg),
        error,
    };
    assert_eq!(
        p.events(),
        vec![
            Event::LegAdded { leg: A },
            f(LegId::new(20000, 2), CommandError::PortInUse),
            f(LegId::new(30000, 1), CommandError::PortOutOfRange),
            f(A, CommandError::CrossWorker),
            f(A, CommandError::UnknownLeg),
            f(LegId::new(20000, 2), CommandError::UnknownLeg),
        ]
    );
    assert_eq!(p.relay.stats().commands_failed, 5);
}

#[test]
fn event_ring_is_bounded_and_counts_overflow() {
    let mut p = Pair::with_events(2);
    p.cmd(Command::AddLeg(spec(A, None)));
    p.cmd(Command::QueryStats { leg: A });
    p.cmd(Command::QueryStats { leg: A });
    p.cmd(Command::QueryStats { leg: A });
    assert_eq!(p.events().len(), 2);
    assert_eq!(p.relay.stats().events_dropped, 2);
}

#[test]
fn tx_refusal_is_counted_on_the_sending_leg() {
    let mut p = Pair::bridged();
    let (v, out) = p.recv(customer(), 20000, rtp(1, 0, 1, false));
    let Verdict::Forward { from_port, .. } = v else {
        panic!()
    };
    p.relay.handle_tx_refused(from_port, out.len());
    let b = p.relay.leg_stats(B).unwrap();
    assert_eq!((b.tx_packets, b.drops.get(DropReason::TxFull)), (0, 1));
    assert_eq!(p.relay.stats().drops.get(DropReason::TxFull), 1);
    assert_eq!(p.relay.stats().tx_packets, 0);
}

#[test]
fn random_packets_never_panic_and_are_all_accounted_for() {
    let mut p = Pair::bridged();
    let mut s = spec(LegId::new(20004, 1), None);
    s.latch = Latch::Nat {
        window: Duration::from_secs(10),
    };
    s.src_mismatch = SrcMismatch::Report;
    s.media_timeout = Some(Duration::from_millis(50));
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::Play {
        leg: LegId::new(20004, 1),
        clip: clip(3),
        looping: true,
    });
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let sources = [customer(), agent(), stranger(), addr(1, 1), addr(2, 50001)];
    let mut forwarded = 0u64;
    for k in 0..50_000u32 {
        let len = (next() % 200) as usize;
        let mut data: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        if k % 2 == 0 && len > 1 {
            data[0] = 0x80 | (data[0] & 0x3f);
        }
        if k % 5 == 0 && len >= 12 {
            data = rtp(k as u16, k, 7, false);
        }
        let port = 19998 + (next() % 16) as u16;
        let src = sources[(next() % sources.len() as u64) as usize];
        p.now = p.t0 + MS * k;
        if let (Verdict::Forward { .. }, _) = p.recv(src, port, data) {
            forwarded += 1;
        }
        if k % 7 == 0 {
            p.pump();
        }
    }
    let st = p.relay.stats();
    assert_eq!(st.rx_packets, 50_000);
    assert_eq!(
        st.drops.total() + forwarded,
        st.rx_packets,
        "every packet forwarded or counted"
    );
    assert!(forwarded > 0 && st.drops.get(DropReason::Malformed) > 0);
}

/// Legs on different media addresses of one worker: the same port on two addresses is two
/// legs, a bridge may join legs on different addresses, and everything sent says which
/// address it leaves from.
#[test]
fn legs_on_several_addresses() {
    let t0 = Instant::now();
    let mut cfg = RelayConfig::new(20000..=20003, 16);
    cfg.addresses = 3;
    let mut r = Relay::new(cfg);
    let a = LegId::at(0, 20000, 1);
    let b = LegId::at(2, 20000, 1); // same port, another address
    let c = LegId::at(1, 20002, 1);
    for (leg, remote) in [(a, customer()), (b, agent()), (c, stranger())] {
        r.handle_command(t0, Command::AddLeg(spec(leg, Some(remote))));
    }
    let added: Vec<_> = std::iter::from_fn(|| r.poll_event()).collect();
    assert_eq!(added.len(), 3, "{added:?}");
    assert!(
        added.iter().all(|e| matches!(e, Event::LegAdded { .. })),
        "{added:?}"
    );
    // An address the worker does not have.
    let d = LegId::at(3, 20000, 1);
    r.handle_command(t0, Command::AddLeg(spec(d, None)));
    assert_eq!(
        r.poll_event(),
        Some(Event::CommandFailed {
            leg: Some(d),
            error: CommandError::PortOutOfRange
        })
    );
    r.handle_command(t0, Command::Bridge { a, b });
    assert_eq!(r.poll_event(), None, "bridged");
    let mut pkt = rtp(1, 160, 0x1111, false);
    assert_eq!(
        r.handle_packet_at(t0, customer(), 0, 20000, &mut pkt),
        Verdict::Forward {
            from_addr: 2,
            from_port: 20000,
            to: agent()
        }
    );
    let mut pkt = rtp(1, 160, 0x2222, false);
    assert_eq!(
        r.handle_packet_at(t0, agent(), 2, 20000, &mut pkt),
        Verdict::Forward {
            from_addr: 0,
            from_port: 20000,
            to: customer()
        }
    );
    // RTCP on the odd port leaves from the peer's odd port on the peer's address.
    let mut rr = rtcp_rr(0x2222);
    assert_eq!(
        r.handle_packet_at(t0, addr(2, 50001), 2, 20001, &mut rr),
        Verdict::Forward {
            from_addr: 0,
            from_port: 20001,
            to: addr(1, 40001)
        }
    );
    // The agent's stream sent to the customer's address-0 port is a foreign source there.
    let mut pkt = rtp(2, 320, 0x2222, false);
    assert_eq!(
        r.handle_packet_at(t0, agent(), 0, 20000, &mut pkt),
        Verdict::Drop(DropReason::SrcMismatch)
    );
    // Address 1's leg is not bridged; address 1, port 20000 has no leg.
    let mut pkt = rtp(1, 160, 0x3333, false);
    assert_eq!(
        r.handle_packet_at(t0, stranger(), 1, 20002, &mut pkt),
        Verdict::Drop(DropReason::NotBridged)
    );
    assert_eq!(
        r.handle_packet_at(t0, stranger(), 1, 20000, &mut pkt),
        Verdict::Drop(DropReason::UnknownPort)
    );
    assert_eq!(
        r.handle_packet_at(t0, stranger(), 7, 20000, &mut pkt),
        Verdict::Drop(DropReason::UnknownPort)
    );
    // Announcements leave from the playing leg's address.
    r.handle_command(
        t0,
        Command::Play {
            leg: c,
            clip: clip(2),
            looping: false,
        },
    );
    let mut buf = [0u8; 256];
    let t = r
        .poll_transmit(t0, &mut buf)
        .expect("first announcement packet");
    assert_eq!((t.from_addr, t.from_port, t.to), (1, 20002, stranger()));
    // A refused transmit is charged to the leg on the right address.
    r.handle_tx_refused_at(1, 20002, t.len);
    assert_eq!(r.leg_stats(c).unwrap().drops.get(DropReason::TxFull), 1);
    assert_eq!(r.leg_stats(a).unwrap().drops.get(DropReason::TxFull), 0);
}
