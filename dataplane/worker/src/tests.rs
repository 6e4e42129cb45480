//! The loop over `MemIo` on fake time, `Dataplane::start_with` on threads, and the real
//! `SocketIo` on 127.0.0.1.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, Receiver, Sender};
use dp_api::{
    Clip, Codec, Command, CommandError, DropReason, Event, Latch, LegId, LegSpec, SrcMismatch,
};
use relay::{Relay, RelayConfig};
use wire::rtp::{RtpPacket, RtpRepr};

use crate::{Dataplane, DataplaneConfig, MemIo, MemPacket, MemPeer, Worker};

mod g711;
mod reuse;
mod transcrypt;

const A: LegId = LegId::new(20000, 1);
const B: LegId = LegId::new(20002, 1);
const DEADLINE: Duration = Duration::from_secs(10);

fn customer() -> SocketAddr {
    "10.0.0.1:40000".parse().unwrap()
}
fn agent() -> SocketAddr {
    "10.0.0.2:50000".parse().unwrap()
}

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

fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let payload = [0xd5u8; 160];
    let r = RtpRepr::simple(8, seq, u32::from(seq) * 160, ssrc, &payload);
    let mut v = vec![0; r.buffer_len()];
    r.emit(&mut v);
    v
}

struct Rig {
    worker: Worker<MemIo>,
    peer: MemPeer,
    cmd: Sender<Command>,
    events: Receiver<Event>,
    t0: Instant,
}

impl Rig {
    fn new(event_queue: usize) -> Self {
        let (io, peer) = MemIo::new();
        let (cmd, cmd_rx) = bounded(64);
        let (ev_tx, events) = bounded(event_queue);
        let relay = Relay::new(RelayConfig::new(20000..=20010, 64));
        let worker = Worker::new(
            0,
            io,
            relay,
            cmd_rx,
            ev_tx,
            8,
            Arc::new(AtomicBool::new(false)),
        );
        Self {
            worker,
            peer,
            cmd,
            events,
            t0: Instant::now(),
        }
    }

    fn pass_at(&mut self, ms: u64) -> crate::Pass {
        let now = self.t0 + Duration::from_millis(ms);
        self.worker.pass(None, move || now)
    }

    fn events(&self) -> Vec<Event> {
        self.events.try_iter().collect()
    }

    fn sent(&self) -> Vec<MemPacket> {
        self.peer.sent.try_iter().collect()
    }

    fn inject(&self, port: u16, from: SocketAddr, data: Vec<u8>) {
        self.peer
            .inject
            .send(MemPacket {
                local_port: port,
                local_addr: 0,
                peer: from,
                data,
            })
            .unwrap();
    }
}

#[test]
fn mem_loop_relays_both_ways_and_reports() {
    let mut r = Rig::new(64);
    r.cmd
        .send(Command::AddLeg(spec(A, Some(customer()))))
        .unwrap();
    r.cmd.send(Command::AddLeg(spec(B, Some(agent())))).unwrap();
    r.cmd.send(Command::Bridge { a: A, b: B }).unwrap();
    let p = r.pass_at(0);
    assert_eq!((p.rx, p.tx, p.commands), (0, 0, 3));
    assert_eq!(
        r.events(),
        vec![Event::LegAdded { leg: A }, Event::LegAdded { leg: B }]
    );
    assert_eq!(r.peer.port_changes(), vec![(20000, true), (20002, true)]);

    // A burst larger than the worker's burst size (8) in both directions.
    for k in 0..10 {
        r.inject(20000, customer(), rtp(k, 0xc0c0));
        r.inject(20002, agent(), rtp(k, 0xa9e7));
    }
    r.inject(20004, customer(), rtp(99, 1)); // no leg there
    let mut got = Vec::new();
    for i in 0..5 {
        r.pass_at(1 + i);
        got.extend(r.sent());
    }
    assert_eq!(got.len(), 20);
    let to_agent: Vec<_> = got.iter().filter(|p| p.peer == agent()).collect();
    assert_eq!(to_agent.len(), 10);
    for (k, p) in to_agent.iter().enumerate() {
        assert_eq!(p.local_port, 20002);
        assert_eq!(p.data, rtp(k as u16, 0xc0c0), "in order, untouched");
    }
    assert!(got
        .iter()
        .filter(|p| p.peer == customer())
        .all(|p| p.local_port == 20000));
    let s = r.worker.relay().stats();
    assert_eq!((s.rx_packets, s.tx_packets), (21, 20));
    assert_eq!(s.drops.get(DropReason::UnknownPort), 1);

    r.cmd.send(Command::QueryStats { leg: A }).unwrap();
    r.cmd.send(Command::RemoveLeg { leg: B }).unwrap();
    r.pass_at(10);
    let evs = r.events();
    assert!(
        matches!(&evs[0], Event::Stats { leg, stats } if *leg == A && stats.rx_packets == 10 && stats.tx_packets == 10)
    );
    assert!(
        matches!(&evs[1], Event::LegRemoved { leg, stats } if *leg == B && stats.rx_packets == 10)
    );
    assert_eq!(r.peer.port_changes(), vec![(20002, false)]);
}

#[test]
fn mem_loop_announces_on_fake_time() {
    let mut r = Rig::new(64);
    r.cmd
        .send(Command::AddLeg(spec(A, Some(customer()))))
        .unwrap();
    r.cmd
        .send(Command::Play {
            leg: A,
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        })
        .unwrap();
    for ms in (0..=990).step_by(10) {
        r.pass_at(ms);
    }
    let sent = r.sent();
    assert_eq!(sent.len(), 50, "one packet per 20 ms over 0..=990 ms");
    let first = RtpPacket::new_checked(&sent[0].data[..]).unwrap();
    assert!(first.marker());
    for (k, p) in sent.iter().enumerate() {
        assert_eq!(
            (p.local_port, p.peer, p.data.len()),
            (20000, customer(), 172)
        );
        let r = RtpPacket::new_checked(&p.data[..]).unwrap();
        assert_eq!(
            r.sequence_number(),
            first.sequence_number().wrapping_add(k as u16)
        );
    }
}

#[test]
fn mem_loop_command_failures() {
    let mut r = Rig::new(64);
    r.peer.fail_open(20002);
    r.cmd.send(Command::AddLeg(spec(A, None))).unwrap();
    r.cmd
        .send(Command::AddLeg(spec(LegId::new(20000, 2), None)))
        .unwrap();
    r.cmd.send(Command::AddLeg(spec(B, None))).unwrap();
    r.cmd
        .send(Command::AddLeg(spec(LegId::new(30000, 1), None)))
        .unwrap();
    r.pass_at(0);
    let evs = r.events();
    assert_eq!(evs[0], Event::LegAdded { leg: A });
    assert_eq!(
        evs[1],
        Event::CommandFailed {
            leg: Some(LegId::new(20000, 2)),
            error: CommandError::PortInUse
        }
    );
    assert!(
        matches!(&evs[2], Event::CommandFailed { leg: Some(B), error: CommandError::Io(m) } if m.contains("20002"))
    );
    assert_eq!(
        evs[3],
        Event::CommandFailed {
            leg: Some(LegId::new(30000, 1)),
            error: CommandError::PortOutOfRange
        }
    );
    assert_eq!(
        r.peer.port_changes(),
        vec![(20000, true)],
        "no socket opened for refused legs"
    );
    assert!(r.worker.relay().leg_stats(B).is_none());
}

#[test]
fn mem_loop_counts_tx_refusals_and_event_overflow() {
    let mut r = Rig::new(1);
    r.cmd
        .send(Command::AddLeg(spec(A, Some(customer()))))
        .unwrap();
    r.cmd.send(Command::AddLeg(spec(B, Some(agent())))).unwrap();
    r.cmd.send(Command::Bridge { a: A, b: B }).unwrap();
    r.pass_at(0);
    assert_eq!(r.events().len(), 1);
    assert_eq!(r.worker.stats().events_dropped, 1);
    r.peer.limit_tx(Some(1));
    for k in 0..3 {
        r.inject(20000, customer(), rtp(k, 1));
    }
    let p = r.pass_at(1);
    assert_eq!((p.rx, p.tx), (3, 1));
    let st = r.worker.stats();
    assert_eq!(st.tx_refused, 2);
    // One receive burst of 3 (not full), one transmit burst of 3 (2 refused).
    assert_eq!(
        (st.rx_bursts, st.rx_burst_packets, st.rx_full_bursts),
        (1, 3, 0)
    );
    assert_eq!((st.tx_bursts, st.tx_burst_packets), (1, 3));
    let b = r.worker.relay().leg_stats(B).unwrap();
    assert_eq!((b.tx_packets, b.drops.get(DropReason::TxFull)), (1, 2));
}

#[test]
fn mem_loop_publishes_stats_every_period() {
    let mut r = Rig::new(64);
    let shared = Arc::new(crate::SharedStats::default());
    let worker = std::mem::replace(&mut r.worker, Rig::new(1).worker);
    r.worker = worker.with_shared_stats(shared.clone());
    r.cmd.send(Command::AddLeg(spec(A, None))).unwrap();
    r.pass_at(0);
    assert_eq!(shared.load().relay.legs, 1, "first pass publishes");
    r.inject(20000, customer(), rtp(1, 1));
    r.pass_at(99);
    assert_eq!(
        shared.load().relay.rx_packets,
        0,
        "not yet: within the period"
    );
    r.pass_at(100);
    let s = shared.load();
    assert_eq!(
        (
            s.relay.rx_packets,
            s.relay.drops.get(DropReason::SrcMismatch)
        ),
        (1, 1)
    );
    assert_eq!((s.lp.passes, s.lp.commands, s.lp.events_sent), (3, 1, 1));
}

#[test]
fn mem_loop_stops_on_shutdown_and_closes_ports() {
    let mut r = Rig::new(64);
    r.cmd.send(Command::AddLeg(spec(A, None))).unwrap();
    r.cmd.send(Command::Shutdown).unwrap();
    r.worker.run(); // returns because of the Shutdown command
    assert!(r.worker.stopping());
    assert_eq!(r.peer.port_changes(), vec![(20000, true), (20000, false)]);
}

#[test]
fn dataplane_start_with_memio_routes_commands_and_joins() {
    let (peers_tx, peers_rx) = bounded(4);
    let cfg = DataplaneConfig {
        workers: 2,
        ..DataplaneConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 20000..=20007)
    };
    let (dp, handle) = Dataplane::start_with(cfg, move |w, ports| {
        let (io, peer) = MemIo::new();
        peers_tx.send((w, ports, peer)).unwrap();
        Ok(io)
    })
    .unwrap();
    assert_eq!(dp.workers(), 2);
    let mut peers: Vec<(usize, std::ops::RangeInclusive<u16>, MemPeer)> =
        peers_rx.try_iter().collect();
    peers.sort_by_key(|p| p.0);
    assert_eq!(peers[0].1, 20000..=20002);
    assert_eq!(peers[1].1, 20004..=20006);
    let a = handle.plan.allocate_on(1).unwrap();
    let b = handle.plan.allocate_on(1).unwrap();
    handle
        .send(Command::AddLeg(spec(a, Some(customer()))))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(b, Some(agent()))))
        .unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    for _ in 0..2 {
        let ev = handle.events().recv_timeout(DEADLINE).unwrap();
        assert!(matches!(ev, Event::LegAdded { .. }), "{ev:?}");
    }
    let w1 = &peers[1].2;
    w1.inject
        .send(MemPacket {
            local_port: a.port(),
            local_addr: 0,
            peer: customer(),
            data: rtp(1, 1),
        })
        .unwrap();
    let out = w1.sent.recv_timeout(DEADLINE).unwrap();
    assert_eq!((out.local_port, out.peer), (b.port(), agent()));
    assert!(peers[0].2.sent.try_recv().is_err(), "worker 0 saw nothing");
    // Counters are published within about 100 ms.
    let end = Instant::now() + DEADLINE;
    while dp.stats()[1].relay.tx_packets == 0 {
        assert!(Instant::now() < end, "stats never published");
        std::thread::yield_now();
    }
    let fin = dp.shutdown();
    assert_eq!(fin.len(), 2);
    assert_eq!(
        (
            fin[1].relay.legs,
            fin[1].relay.rx_packets,
            fin[1].relay.tx_packets
        ),
        (2, 1, 1)
    );
    // AddLeg ×2 and Bridge, plus Shutdown unless the flag stopped the worker first.
    assert!((3..=4).contains(&fin[1].lp.commands), "{:?}", fin[1].lp);
    assert_eq!(fin[0].relay.rx_packets, 0);
    assert!(
        handle.send(Command::QueryStats { leg: a }).is_err(),
        "workers are gone"
    );
}

#[test]
fn dataplane_start_rejects_bad_config() {
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let bad = |cfg: DataplaneConfig| Dataplane::start(cfg).unwrap_err().to_string();
    assert!(bad(DataplaneConfig {
        burst: 0,
        ..DataplaneConfig::new(ip, 20000..=20003)
    })
    .contains("burst"));
    assert!(bad(DataplaneConfig {
        workers: 3,
        ..DataplaneConfig::new(ip, 20000..=20003)
    })
    .contains("port"));
    assert!(bad(DataplaneConfig {
        workers: 2,
        cores: Some(vec![0]),
        ..DataplaneConfig::new(ip, 20000..=20007)
    })
    .contains("cores"));
    let e = Dataplane::start_with(
        DataplaneConfig::new(ip, 20000..=20003),
        |_, _| -> std::io::Result<MemIo> { Err(std::io::Error::other("no backend")) },
    )
    .unwrap_err();
    assert!(e.to_string().contains("no backend"), "{e}");
}

/// Binds two consecutive loopback ports (RTP, RTCP) for a fake phone.
fn phone() -> (UdpSocket, UdpSocket) {
    phone_at(IpAddr::V4(Ipv4Addr::LOCALHOST))
}

/// An RTP socket on an even port of `ip` and the RTCP socket above it.
fn phone_at(ip: IpAddr) -> (UdpSocket, UdpSocket) {
    for _ in 0..100 {
        let rtp = UdpSocket::bind((ip, 0)).unwrap();
        let port = rtp.local_addr().unwrap().port();
        if port % 2 == 1 || port == u16::MAX {
            continue;
        }
        if let Ok(rtcp) = UdpSocket::bind((ip, port + 1)) {
            for s in [&rtp, &rtcp] {
                s.set_read_timeout(Some(Duration::from_millis(200)))
                    .unwrap();
            }
            return (rtp, rtcp);
        }
    }
    panic!("no free port pair on 127.0.0.1");
}

/// Receives until a datagram arrives or the deadline passes.
fn recv(s: &UdpSocket, deadline: Duration) -> Option<(Vec<u8>, SocketAddr)> {
    let end = Instant::now() + deadline;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((n, from)) = s.recv_from(&mut buf) {
            return Some((buf[..n].to_vec(), from));
        }
    }
    None
}

fn wait_event(handle: &dp_api::DataplaneHandle, pred: impl Fn(&Event) -> bool) -> Event {
    let end = Instant::now() + DEADLINE;
    loop {
        let left = end.saturating_duration_since(Instant::now());
        let ev = handle
            .events()
            .recv_timeout(left)
            .expect("event before the deadline");
        if pred(&ev) {
            return ev;
        }
    }
}

#[test]
fn socket_io_relays_announces_and_shuts_down_on_loopback() {
    // A port range unlikely to collide with other tests running on this machine.
    let base = 32000 + (std::process::id() % 500) as u16 * 40;
    let cfg = DataplaneConfig::new(IpAddr::V4(Ipv4Addr::LOCALHOST), base..=base + 39);
    let (dp, handle) = Dataplane::start(cfg).unwrap();
    let (cust_rtp, cust_rtcp) = phone();
    let (agent_rtp, agent_rtcp) = phone();
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate_on(0).unwrap();
    let relay_addr = |port: u16| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);

    handle.send(Command::AddLeg(spec(a, None))).unwrap();
    handle.send(Command::AddLeg(spec(b, None))).unwrap();
    wait_event(&handle, |e| *e == Event::LegAdded { leg: a });
    wait_event(&handle, |e| *e == Event::LegAdded { leg: b });

    // The customer hears the announcement once its address is known.
    handle
        .send(Command::Play {
            leg: a,
            clip: Arc::new(Clip::builtin_prompt()),
            looping: true,
        })
        .unwrap();
    handle
        .send(Command::SetRemote {
            leg: a,
            remote: cust_rtp.local_addr().unwrap(),
            codec: Codec::Pcma,
        })
        .unwrap();
    let (first, from) = recv(&cust_rtp, DEADLINE).expect("announcement arrives");
    assert_eq!(from, relay_addr(a.port()));
    let p = RtpPacket::new_checked(&first[..]).unwrap();
    assert_eq!((p.payload_type(), first.len()), (8, 172));
    let start = Instant::now();
    let mut count = 0;
    while start.elapsed() < Duration::from_secs(1) {
        if let Some((d, _)) = recv(&cust_rtp, Duration::from_millis(100)) {
            assert_eq!(d.len(), 172);
            count += 1;
        }
    }
    assert!(
        (25..=60).contains(&count),
        "about 50 packets/s, got {count}"
    );

    // The agent answers: switch to the bridge.
    handle
        .send(Command::SetRemote {
            leg: b,
            remote: agent_rtp.local_addr().unwrap(),
            codec: Codec::Pcma,
        })
        .unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    handle.send(Command::QueryStats { leg: b }).unwrap();
    wait_event(&handle, |e| matches!(e, Event::Stats { .. }));
    // Drain the announcement packets still in flight.
    while recv(&cust_rtp, Duration::from_millis(100)).is_some() {}

    agent_rtp
        .send_to(&rtp(7, 0xa9e7), relay_addr(b.port()))
        .unwrap();
    let (d, from) = recv(&cust_rtp, DEADLINE).expect("agent → customer");
    assert_eq!(from, relay_addr(a.port()));
    let p = RtpPacket::new_checked(&d[..]).unwrap();
    assert!(p.marker(), "first packet after the switch is marked");
    assert_eq!((p.ssrc(), p.sequence_number()), (0xa9e7, 7));

    cust_rtp
        .send_to(&rtp(1, 0xc0c0), relay_addr(a.port()))
        .unwrap();
    let (d, from) = recv(&agent_rtp, DEADLINE).expect("customer → agent");
    assert_eq!(from, relay_addr(b.port()));
    assert_eq!(d, rtp(1, 0xc0c0));

    // RTCP: from the customer's RTCP port to the agent's, via the odd relay ports.
    let rr = [0x80, 201, 0, 1, 0, 0, 0xc0, 0xc0];
    cust_rtcp.send_to(&rr, relay_addr(a.port() + 1)).unwrap();
    let (d, from) = recv(&agent_rtcp, DEADLINE).expect("RTCP customer → agent");
    assert_eq!((d.as_slice(), from), (&rr[..], relay_addr(b.port() + 1)));

    handle.send(Command::RemoveLeg { leg: a }).unwrap();
    let ev = wait_event(&handle, |e| matches!(e, Event::LegRemoved { .. }));
    let Event::LegRemoved { stats, .. } = ev else {
        unreachable!()
    };
    assert!(
        stats.announcement_packets >= 25 && stats.rx_packets == 1 && stats.rx_rtcp == 1,
        "{stats:?}"
    );

    dp.shutdown();
    // The worker closed its sockets: the ports can be bound again.
    UdpSocket::bind(relay_addr(b.port())).expect("port released at shutdown");
    UdpSocket::bind(relay_addr(a.port())).expect("port released at RemoveLeg");
}

/// CPU time (clock ticks) used so far by this process's threads whose name starts with
/// `cb-worker`.
fn worker_cpu_ticks() -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if !comm.starts_with("cb-worker") {
            continue;
        }
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        // Fields after the parenthesised name: state is field 3, utime 14, stime 15.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 12 {
            total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
        }
    }
    total
}

#[test]
fn idle_socket_worker_does_not_spin() {
    let base = 52000 + (std::process::id() % 500) as u16 * 8;
    let (dp, handle) = Dataplane::start(DataplaneConfig::new(
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        base..=base + 7,
    ))
    .unwrap();
    let leg = handle.plan.allocate().unwrap();
    handle.send(Command::AddLeg(spec(leg, None))).unwrap();
    wait_event(&handle, |e| *e == Event::LegAdded { leg });
    let before = worker_cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = worker_cpu_ticks() - before;
    // A spinning worker burns ~100 ticks per second (USER_HZ = 100); an idle one sleeps in
    // epoll_wait for 2 ms at a time. Other tests' workers run in this process too, so the
    // bound is loose.
    assert!(used < 40, "idle workers used {used} ticks in 1 s");
    // Commands are still picked up promptly while idle.
    let t = Instant::now();
    handle.send(Command::QueryStats { leg }).unwrap();
    wait_event(&handle, |e| matches!(e, Event::Stats { .. }));
    assert!(t.elapsed() < Duration::from_secs(2));
    dp.shutdown();
}

/// IPv6 media on the socket backend: legs on `::1`, peers on `::1`, RTP and RTCP relayed both
/// ways from the right relay ports, a foreign IPv6 source dropped, and latching onto an IPv6
/// source.
#[test]
fn socket_io_relays_over_ipv6_loopback() {
    let lo6 = IpAddr::V6(std::net::Ipv6Addr::LOCALHOST);
    let base = 36000 + (std::process::id() % 500) as u16 * 40;
    let cfg = DataplaneConfig::new(lo6, base..=base + 39);
    let (dp, handle) = Dataplane::start(cfg).unwrap();
    let (cust_rtp, cust_rtcp) = phone_at(lo6);
    let (agent_rtp, agent_rtcp) = phone_at(lo6);
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate_on(0).unwrap();
    let relay_addr = |port: u16| SocketAddr::new(lo6, port);
    // The customer's address is signalled; the agent's SDP names another port of its IP,
    // and the leg learns the port it really sends from with its first packet.
    handle
        .send(Command::AddLeg(spec(
            a,
            Some(cust_rtp.local_addr().unwrap()),
        )))
        .unwrap();
    handle
        .send(Command::AddLeg(LegSpec {
            latch: Latch::Signalled,
            ..spec(b, Some(SocketAddr::new(lo6, 9)))
        }))
        .unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    wait_event(&handle, |e| *e == Event::LegAdded { leg: a });
    wait_event(&handle, |e| *e == Event::LegAdded { leg: b });

    agent_rtp
        .send_to(&rtp(7, 0xa9e7), relay_addr(b.port()))
        .unwrap();
    let (d, from) = recv(&cust_rtp, DEADLINE).expect("agent → customer over IPv6");
    assert_eq!((d, from), (rtp(7, 0xa9e7), relay_addr(a.port())));
    wait_event(&handle, |e| {
        *e == Event::RemoteLearned {
            leg: b,
            remote: agent_rtp.local_addr().unwrap(),
        }
    });
    cust_rtp
        .send_to(&rtp(1, 0xc0c0), relay_addr(a.port()))
        .unwrap();
    let (d, from) = recv(&agent_rtp, DEADLINE).expect("customer → agent over IPv6");
    assert_eq!((d, from), (rtp(1, 0xc0c0), relay_addr(b.port())));
    let rr = [0x80, 201, 0, 1, 0, 0, 0xc0, 0xc0];
    cust_rtcp.send_to(&rr, relay_addr(a.port() + 1)).unwrap();
    let (d, from) = recv(&agent_rtcp, DEADLINE).expect("RTCP over IPv6");
    assert_eq!((d.as_slice(), from), (&rr[..], relay_addr(b.port() + 1)));
    // A stranger on ::1 sending to the customer's leg is dropped, not relayed.
    let stranger = UdpSocket::bind((lo6, 0)).unwrap();
    stranger
        .send_to(&rtp(9, 0x5555), relay_addr(a.port()))
        .unwrap();
    assert!(recv(&agent_rtp, Duration::from_millis(300)).is_none());
    let fin = dp.shutdown();
    let s = &fin[0];
    assert_eq!(s.relay.rx_packets, 4, "{s:#?}");
    assert_eq!(s.relay.drops.get(DropReason::SrcMismatch), 1, "{s:#?}");
}

#[test]
fn start_up_errors_name_their_cause_once() {
    use std::error::Error as _;
    let e = crate::WorkerError::Backend {
        worker: 1,
        error: std::io::Error::new(std::io::ErrorKind::AddrInUse, "Address already in use"),
    };
    assert_eq!(e.to_string(), "worker 1 backend: Address already in use");
    assert!(e.source().is_none());
    let e = crate::WorkerError::Spawn {
        worker: 0,
        error: std::io::Error::other("no threads"),
    };
    assert_eq!(e.to_string(), "could not spawn worker 0: no threads");
    assert!(e.source().is_none());
}
