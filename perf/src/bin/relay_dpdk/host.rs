//! The relay process (`relay_dpdk --role relay`): the host side of the memif link.
//!
//! EAL on one core with the memif device as a client (`role=client`), one RX/TX queue pair,
//! no offloads (memif offers none: IPv4 and UDP checksums are verified and computed in
//! software, as on any device without offload). The real [`Worker`] loop runs over
//! [`DpdkIo`] on a thread pinned to the relay core; the main thread adds the legs through the
//! worker's command queue (dp_api `AddLeg` and `Bridge`, as the control plane does), then
//! prints on stdout (from the worker thread itself), every 10 ms, the TSC ticks the worker spent in passes that received
//! frames and the frames those passes received, then the same for the passes longer than
//! 100 us, i.e. preempted (`stats BUSY PKTS LONG_BUSY LONG_PKTS`). It stops when its stdin
//! closes (the orchestrator is done or gone), printing the worker's counters (`final {json}`).
//!
//! Protocol on stdout: `ready LEGS TSC_HZ`, then `stats ...` lines, then `final {...}`.

use std::io::{BufRead, Write};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use callbridge_perf::dpdkgen::{self as g, GW, GW_MAC, US};
use dp_api::{Codec, Command, Latch, LegSpec, SrcMismatch};
use dpdk::lcore;
use relay::{Relay, RelayConfig};
use serde_json::json;
use wire::ethernet::Address;
use worker::dpdk_io::DpdkIo;
use worker::netstack::{NetConfig, TxOffload};
use worker::{PacketIo, SharedStats, Worker};

use crate::{pin, Args};

/// Runs the relay process to the end (stdin closed).
pub(crate) fn main(args: &Args) -> anyhow::Result<()> {
    let socket = args.socket.as_deref().context("--socket")?;
    let legs = args.legs.first().copied().context("--legs")?;
    ensure!(
        (2..=g::MAX_LEGS).contains(&legs) && legs % 2 == 0,
        "legs must be even, 2..={}",
        g::MAX_LEGS
    );
    let prefix = args.file_prefix.clone().context("--file-prefix")?;
    crate::with_memif_eal(args.relay_core, "client", socket, prefix, || {
        run(args, legs)
    })
}

fn run(args: &Args, legs: usize) -> anyhow::Result<()> {
    let crate::MemifPort {
        pool,
        mut port,
        rxq,
        txq,
    } = crate::memif_port("cbrelay", 8191)?;
    let our_mac = Address(port.mac_addr().context("MAC")?.0);
    ensure!(
        our_mac == g::RELAY_MAC,
        "memif MAC {our_mac} is not the one asked for"
    );
    port.start().context("start memif")?;
    let tx_off = port.tx_offloads();
    let rx_off = port.rx_offloads();
    // The memif handshake runs on EAL's interrupt thread: let it finish before the worker
    // busy-polls (under --fifo the worker would otherwise starve it).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !port.link().is_ok_and(|l| l.up) {
        if Instant::now() > deadline {
            bail!("memif link did not come up within 30 s (is the generator listening?)");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let port = Arc::new(port);

    let addresses = g::addresses_for(legs);
    let extra: Vec<IpAddr> = (1..addresses)
        .map(|a| IpAddr::V4(g::addr_ip(a as u8)))
        .collect();
    let net = NetConfig {
        mac: our_mac,
        ip: US,
        prefix_len: 24,
        gateway: Some(GW),
    };
    let offload = TxOffload {
        ipv4_checksum: tx_off.ipv4_cksum,
        udp_checksum: tx_off.udp_cksum,
    };
    let last = g::last_port(legs);
    let stop = Arc::new(AtomicBool::new(false));
    let shared = Arc::new(SharedStats::default());
    let ready = Arc::new(AtomicBool::new(false));
    let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(1024);
    let (ev_tx, ev_rx) = crossbeam_channel::bounded(1 << 16);
    let (w_stop, w_stop2, w_shared, w_ready) =
        (stop.clone(), stop.clone(), shared.clone(), ready.clone());
    let fifo = args.fifo;
    let (core, burst) = (args.relay_core, args.burst);
    let w_port = port.clone();
    let worker = std::thread::Builder::new()
        .name("cb-relay-worker".into())
        .spawn(move || -> anyhow::Result<()> {
            pin(core, "relay worker");
            let reg = lcore::register_thread().context("register worker thread")?;
            let mut io = DpdkIo::new(
                rxq,
                txq,
                pool,
                net,
                offload,
                g::FIRST_PORT..=last,
                Some(w_port),
            )
            .with_extra_addresses(&extra)
            .with_rx_offloads(rx_off)
            .with_registration(reg);
            let t0 = io.clock().now();
            // The gateway as a static neighbour (no ARP on the measured path).
            io.insert_neighbour(t0, IpAddr::V4(GW), GW_MAC);
            let mut cfg = RelayConfig::new(g::FIRST_PORT..=last, 1 << 17);
            cfg.seed = 7;
            cfg.addresses = addresses;
            let mut w = Worker::new(0, io, Relay::new(cfg), cmd_rx, ev_tx, burst, w_stop)
                .with_shared_stats(w_shared);
            // `Worker::run`'s loop with TSC accounting of the passes that received frames.
            // Passes longer than 100 us were preempted (a 32-frame pass takes a few us):
            // they are also counted apart, so that the capacity can be read without the
            // time other processes held the core.
            let long = lcore::tsc_hz() / 10_000;
            let (mut b, mut p, mut passes) = (0u64, 0u64, 0u32);
            let (mut lb, mut lp) = (0u64, 0u64);
            let print_every = lcore::tsc_hz() / 100;
            let mut last_print = lcore::rdtsc();
            crate::sched_fifo(fifo, fifo);
            while !w.stopping() {
                let t = lcore::rdtsc();
                let pass = w.pass_with(None, DpdkIo::now);
                if pass.rx > 0 {
                    let dt = lcore::rdtsc() - t;
                    b += dt;
                    p += pass.rx as u64;
                    if dt > long {
                        lb += dt;
                        lp += pass.rx as u64;
                    }
                }
                passes = passes.wrapping_add(1);
                // Every 10 ms, once the main thread said `ready`, the counters go out from
                // here (under --fifo no other thread of ours may get this core or the other).
                if passes & 0xff == 0 && w_ready.load(Ordering::Relaxed) {
                    let now = lcore::rdtsc();
                    if now.wrapping_sub(last_print) > print_every {
                        last_print = now;
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "stats {b} {p} {lb} {lp}")
                            .and_then(|()| out.flush())
                            .is_err()
                        {
                            // The orchestrator is gone.
                            w_stop2.store(true, Ordering::Relaxed);
                        }
                    }
                }
            }
            crate::sched_fifo(None, fifo);
            w.close_all();
            Ok(())
        })
        .context("spawn worker")?;

    // Stop when stdin closes.
    let stdin_closed = stop.clone();
    std::thread::spawn(move || {
        let mut line = String::new();
        while std::io::stdin()
            .lock()
            .read_line(&mut line)
            .is_ok_and(|n| n > 0)
        {
            line.clear();
        }
        stdin_closed.store(true, Ordering::Relaxed);
    });

    let added = add_legs(legs, &cmd_tx, &ev_rx, &shared, &stop);
    let mut out = std::io::stdout().lock();
    match added {
        Ok(()) => {
            writeln!(out, "ready {legs} {}", lcore::tsc_hz())?;
            out.flush()?;
            drop(out);
            ready.store(true, Ordering::Relaxed);
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
                while ev_rx.try_recv().is_ok() {}
            }
            out = std::io::stdout().lock();
        }
        Err(e) => {
            stop.store(true, Ordering::Relaxed);
            let _ = worker.join();
            return Err(e);
        }
    }
    worker
        .join()
        .map_err(|_| anyhow::anyhow!("relay worker panicked"))??;
    drop(cmd_tx);
    let s = shared.load();
    let fin = json!({
        "relay_rx": s.relay.rx_packets,
        "relay_tx": s.relay.tx_packets,
        "relay_drops": s.relay.drops.total(),
        "l2_drops": s.io.net.dropped_total(),
        "arp_pending": s.io.net.arp_pending,
        "tx_refused": s.lp.tx_refused,
        "backend_drops": s.io.backend_drops,
        "port_imissed": s.io.port.imissed,
        "port_rx_nombuf": s.io.port.rx_nombuf,
        "port_oerrors": s.io.port.oerrors,
        "rx_bursts": s.lp.rx_bursts,
        "rx_burst_packets": s.lp.rx_burst_packets,
        "rx_full_bursts": s.lp.rx_full_bursts,
    });
    let _ = writeln!(out, "final {fin}");
    let _ = out.flush();
    Ok(())
}

/// Adds `legs` legs bridged in pairs through the worker's command queue and waits until the
/// worker reports them all.
fn add_legs(
    legs: usize,
    cmd: &crossbeam_channel::Sender<Command>,
    ev: &crossbeam_channel::Receiver<dp_api::Event>,
    shared: &SharedStats,
    stop: &AtomicBool,
) -> anyhow::Result<()> {
    for i in 0..legs {
        let id = g::leg_id(i);
        let spec = LegSpec {
            id,
            remote: Some(g::remote(i)),
            latch: Latch::Off,
            src_mismatch: SrcMismatch::Drop,
            codec: Codec::Pcma,
            media_timeout: Some(Duration::from_secs(600)),
        };
        cmd.send(Command::AddLeg(spec)).context("worker gone")?;
        if i % 2 == 1 {
            cmd.send(Command::Bridge {
                a: g::leg_id(i - 1),
                b: id,
            })
            .context("worker gone")?;
        }
        while ev.try_recv().is_ok() {}
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        while ev.try_recv().is_ok() {}
        let s = shared.load();
        if s.relay.legs == legs && cmd.is_empty() {
            return Ok(());
        }
        if s.relay.commands_failed > 0 {
            bail!("{} leg commands failed", s.relay.commands_failed);
        }
        if stop.load(Ordering::Relaxed) || Instant::now() > deadline {
            bail!("only {} of {legs} legs up", s.relay.legs);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
