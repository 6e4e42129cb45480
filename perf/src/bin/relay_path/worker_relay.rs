//! `relay_path relay`: callbridge's real worker as the relay, run (by the orchestrator) in
//! the relay namespace with `N` bridged leg pairs added through `dp_api` commands.
//!
//! - `--backend socket`: [`worker::Dataplane::start`] with [`worker::Backend::Socket`], the code
//!   `callbridge serve` runs (one worker pinned to `--core`); CPU per packet comes from this
//!   process's CPU time (`/proc/self/task/*/schedstat`, ns) over packets relayed.
//!   `--backend socket_raw_tx`: the same with the socket backend's raw IPv4 sender on (the
//!   whole burst in one `sendmmsg`); `socket_ring`: raw sender and the `AF_PACKET` receive
//!   ring (no system call per received packet); `socket_ring_coalesce`: both and wake
//!   coalescing ([`COALESCE`]); `socket_coalesce`: plain sockets and wake coalescing. Each
//!   is a [`worker::SocketOptions`] set, as `media.socket_*` keys set them.
//! - `--backend af_packet|af_xdp`: one [`worker::dpdk_io::DpdkIo`] on `net_af_packet0` or
//!   `net_af_xdp0` (`iface=` the relay-side veth), port set up as the data plane's DPDK start
//!   does, the real [`worker::Worker`] pass loop pinned to `--core`, busy-polling; CPU per
//!   packet comes from busy-pass accounting: TSC time of the passes that received or sent
//!   anything, over packets relayed.
//!
//! Protocol on stdio: after set-up one line `READY {"ports":[...]}` (each call's A-leg RTP
//! port); then each `stats` line on stdin is answered with `STATS {json}`; `quit` or end of
//! input stops the relay.

use std::io::{BufRead, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use dp_api::{Codec, Command, DpError, Latch, LegId, LegSpec, SrcMismatch};
use serde_json::{json, Value};
use worker::{Backend, Dataplane, DataplaneConfig, SocketOptions};

/// The relay's first RTP port; leg pairs take consecutive even ports from here.
pub(crate) const FIRST_PORT: u16 = 10000;
/// The relay's last port.
pub(crate) const LAST_PORT: u16 = 60999;

/// The wake-coalescing bound of the `*_coalesce` socket relays.
pub(crate) const COALESCE: Duration = Duration::from_micros(100);

/// The socket backend's options a socket relay name stands for (`None`: not a socket relay).
#[must_use]
pub(crate) fn socket_options(name: &str) -> Option<SocketOptions> {
    let (raw_tx, rx_ring, coalesce) = match name {
        "socket" => (false, false, false),
        "socket_raw_tx" => (true, false, false),
        "socket_ring" => (true, true, false),
        "socket_ring_coalesce" => (true, true, true),
        "socket_coalesce" => (false, false, true),
        _ => return None,
    };
    Some(SocketOptions {
        raw_tx,
        rx_ring,
        coalesce: if coalesce { COALESCE } else { Duration::ZERO },
    })
}

/// The sub-command's arguments.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct RelayArgs {
    /// socket, socket_raw_tx, socket_ring, socket_ring_coalesce, socket_coalesce, af_packet
    /// or af_xdp.
    #[arg(long)]
    pub(crate) backend: String,
    /// The relay-side veth (DPDK backends).
    #[arg(long, default_value = "")]
    pub(crate) iface: String,
    /// Our address.
    #[arg(long)]
    pub(crate) addr: Ipv4Addr,
    /// Where both legs of every call send (the generator's socket).
    #[arg(long)]
    pub(crate) peer: SocketAddr,
    /// Bridged calls (leg pairs).
    #[arg(long)]
    pub(crate) calls: usize,
    /// The worker's core.
    #[arg(long)]
    pub(crate) core: usize,
    /// Worker burst size.
    #[arg(long, default_value_t = 32)]
    pub(crate) burst: usize,
}

fn spec(id: LegId, remote: SocketAddr) -> LegSpec {
    LegSpec {
        id,
        remote: Some(remote),
        latch: Latch::Off,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcma,
        media_timeout: None,
    }
}

/// CPU time (ns) of every thread of process `pid` (`/proc/<pid>/task/*/schedstat`, first
/// field: time on CPU). `self` for this process.
#[must_use]
pub(crate) fn cpu_ns(pid: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Runs the sub-command until `quit` or end of input.
///
/// # Errors
/// Set-up failures (printed by `main`, non-zero exit).
pub(crate) fn run(a: &RelayArgs) -> anyhow::Result<()> {
    if a.calls == 0 || a.calls * 4 > usize::from(LAST_PORT - FIRST_PORT) {
        bail!(
            "{} calls do not fit ports {FIRST_PORT}..={LAST_PORT}",
            a.calls
        );
    }
    // The main thread only waits on stdin (stats between trials): keep it off the worker's
    // core and at normal priority, so that at SCHED_FIFO it never competes with the worker
    // (same priority, same core: it would never run) nor preempts the generator.
    let others: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .filter(|&c| c != a.core)
        .collect();
    if let Some(&c) = others.first() {
        core_affinity::set_for_current(core_affinity::CoreId { id: c });
    }

    match a.backend.as_str() {
        b if socket_options(b).is_some() => run_socket(a),
        #[cfg(feature = "dpdk")]
        "af_packet" | "af_xdp" => dpdk_relay::run(a),
        b => bail!(
            "unknown backend {b:?} (socket, socket_raw_tx, socket_ring, socket_ring_coalesce, \
             socket_coalesce, af_packet, af_xdp)"
        ),
    }
}

/// Serves the stdio protocol; `stats()` gives the counters. Called once the worker runs:
/// the main thread drops to SCHED_OTHER first (threads it spawned keep their priority).
fn serve(ports: &[u16], mut stats: impl FnMut() -> Value) -> anyhow::Result<()> {
    let me = nix::unistd::gettid().to_string();
    let _ = std::process::Command::new("chrt")
        .args(["-o", "-p", "0", &me])
        .status();
    let mut out = std::io::stdout().lock();
    writeln!(out, "READY {}", json!({ "ports": ports }))?;
    out.flush()?;
    for line in std::io::stdin().lock().lines() {
        match line?.trim() {
            "stats" => {
                writeln!(out, "STATS {}", stats())?;
                out.flush()?;
            }
            "quit" => break,
            _ => {}
        }
    }
    Ok(())
}

fn run_socket(a: &RelayArgs) -> anyhow::Result<()> {
    let mut cfg = DataplaneConfig::new(IpAddr::V4(a.addr), FIRST_PORT..=LAST_PORT);
    cfg.cores = Some(vec![a.core]);
    cfg.burst = a.burst;
    cfg.backend = Backend::Socket;
    // `socket`: the backend as `callbridge serve` builds it by default (each leg's own
    // socket, packets grouped by socket per burst); the others with the opt-in options on,
    // built the same way (`Dataplane::start`: an option that cannot be turned on fails).
    cfg.socket = socket_options(&a.backend).unwrap_or_default();
    let (dp, handle) = Dataplane::start(cfg).context("starting the socket data plane")?;
    let send = |cmd: Command| -> anyhow::Result<()> {
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            match handle.send(cmd.clone()) {
                Ok(()) => return Ok(()),
                Err(DpError::QueueFull(_)) if Instant::now() < end => {
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => bail!("dp_api command: {e}"),
            }
        }
    };
    let mut ports = Vec::with_capacity(a.calls);
    for _ in 0..a.calls {
        let la = handle.plan.allocate().context("allocating a leg")?;
        let lb = handle.plan.allocate().context("allocating a leg")?;
        send(Command::AddLeg(spec(la, a.peer)))?;
        send(Command::AddLeg(spec(lb, a.peer)))?;
        send(Command::Bridge { a: la, b: lb })?;
        ports.push(la.port());
        while handle.events().try_recv().is_ok() {}
    }
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        while handle.events().try_recv().is_ok() {}
        let legs = dp.stats()[0].relay.legs;
        if legs == 2 * a.calls {
            break;
        }
        if Instant::now() > end {
            bail!("only {legs} of {} legs up after 60 s", 2 * a.calls);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Events (none expected on this path) must not fill the queue.
    let events = handle.events().clone();
    std::thread::spawn(move || while events.recv().is_ok() {});
    serve(&ports, || {
        let s = dp.stats()[0];
        json!({
            "relayed": s.relay.tx_packets,
            "received": s.relay.rx_packets,
            "drops": s.relay.drops.total(),
            "tx_refused": s.lp.tx_refused,
            "tx_bursts": s.lp.tx_bursts,
            "tx_burst_packets": s.lp.tx_burst_packets,
            "rx_bursts": s.lp.rx_bursts,
            "rx_burst_packets": s.lp.rx_burst_packets,
            "cpu_ns": cpu_ns("self"),
            "idle_waits": s.lp.idle_waits,
            "backend_drops": s.io.backend_drops,
            "ring_overflows": s.io.port.imissed,
        })
    })?;
    drop(handle);
    dp.shutdown();
    Ok(())
}

#[cfg(feature = "dpdk")]
mod dpdk_relay {
    use super::*;
    use dpdk::port::TxOffloads;
    use dpdk::{lcore, Mempool, Port, PortConf};
    use relay::{Relay, RelayConfig};
    use wire::ethernet::Address;
    use worker::dpdk_io::{init_eal, port_by_name, DpdkIo};
    use worker::netstack::{NetConfig, TxOffload};
    use worker::{DpdkSettings, PacketIo, Worker};

    /// Counters the worker thread publishes (relaxed) for the stdio thread.
    #[derive(Default)]
    struct Shared {
        busy_tsc: AtomicU64,
        relayed: AtomicU64,
        received: AtomicU64,
        drops: AtomicU64,
        passes: AtomicU64,
        busy_passes: AtomicU64,
        legs: AtomicU64,
    }

    pub(super) fn run(a: &RelayArgs) -> anyhow::Result<()> {
        let dev = if a.backend == "af_xdp" {
            format!("net_af_xdp0,iface={},start_queue=0,queue_count=1", a.iface)
        } else {
            format!("net_af_packet0,iface={},qpairs=1", a.iface)
        };
        let name = if a.backend == "af_xdp" {
            "net_af_xdp0"
        } else {
            "net_af_packet0"
        };
        let mut s = DpdkSettings::new(vec![dev], name);
        s.lcores = a.core.to_string();
        // The scenario's PID: it removes `cbpathw<its pid>` when the relay stops.
        s.file_prefix = Some(format!("cbpathw{}", nix::unistd::getppid()));
        s.extra_args = vec!["--log-level".into(), "*:warning".into()];
        init_eal(&s.eal_args()).map_err(|e| anyhow::anyhow!("{e}"))?;
        let port_id = port_by_name(name).map_err(|e| anyhow::anyhow!("{e}"))?;
        let socket = port_id.socket_id().map_err(|e| anyhow::anyhow!("{e}"))?;
        let pool = Mempool::new("cbpathpool", 16383, 256, Mempool::DEFAULT_DATA_ROOM, socket)
            .map_err(|e| anyhow::anyhow!("mempool: {e}"))?;
        let conf = PortConf {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            offloads: TxOffloads {
                ipv4_cksum: true,
                udp_cksum: true,
            },
            rss: false,
        };
        let mut port =
            Port::configure(port_id, conf, &pool).map_err(|e| anyhow::anyhow!("port: {e}"))?;
        let mac = port.mac_addr().map_err(|e| anyhow::anyhow!("{e}"))?;
        let enabled = port.tx_offloads();
        let rx_offloads = port.rx_offloads();
        let offload = TxOffload {
            ipv4_checksum: enabled.ipv4_cksum,
            udp_checksum: enabled.udp_cksum,
        };
        let rxq = port.rx_queue(0).map_err(|e| anyhow::anyhow!("{e}"))?;
        let txq = port.tx_queue(0).map_err(|e| anyhow::anyhow!("{e}"))?;
        port.start()
            .map_err(|e| anyhow::anyhow!("port start: {e}"))?;
        let port = Arc::new(port);
        let net = NetConfig {
            mac: Address(mac.0),
            ip: a.addr,
            prefix_len: 24,
            gateway: None,
        };
        let shared = Arc::new(Shared::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (cmd_tx, cmd_rx) = crossbeam_channel::bounded(1 << 16);
        let (ev_tx, ev_rx) = crossbeam_channel::bounded(1 << 16);
        let ports: Vec<u16> = (0..a.calls).map(|c| FIRST_PORT + 4 * c as u16).collect();
        let (sh, st, wpool, wport) = (shared.clone(), stop.clone(), pool.clone(), port.clone());
        let (core, burst, calls) = (a.core, a.burst, a.calls);
        let worker = std::thread::Builder::new()
            .name("cb-worker-0".into())
            .spawn(move || -> anyhow::Result<()> {
                if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                    bail!("could not pin the worker to core {core}");
                }
                let reg = lcore::register_thread().map_err(|e| anyhow::anyhow!("{e}"))?;
                let io = DpdkIo::new(
                    rxq,
                    txq,
                    wpool,
                    net,
                    offload,
                    FIRST_PORT..=LAST_PORT,
                    Some(wport),
                )
                .with_rx_offloads(rx_offloads)
                .with_registration(reg);
                let relay = Relay::new(RelayConfig::new(FIRST_PORT..=LAST_PORT, 1 << 16));
                let mut w = Worker::new(0, io, relay, cmd_rx, ev_tx, burst, st.clone());
                // The commands arrive through the worker's queue, as from the control plane;
                // drain them before traffic starts.
                let end = Instant::now() + Duration::from_secs(60);
                while w.relay().stats().legs < 2 * calls && Instant::now() < end {
                    w.pass_with(None, |io: &DpdkIo| io.now());
                }
                sh.legs
                    .store(w.relay().stats().legs as u64, Ordering::Relaxed);
                let mut n = 0u64;
                while !st.load(Ordering::Relaxed) {
                    let t0 = lcore::rdtsc();
                    let p = w.pass_with(None, |io: &DpdkIo| io.now());
                    n += 1;
                    if p.rx > 0 || p.tx > 0 {
                        sh.busy_tsc
                            .fetch_add(lcore::rdtsc() - t0, Ordering::Relaxed);
                        sh.busy_passes.fetch_add(1, Ordering::Relaxed);
                    }
                    if n.is_multiple_of(256) {
                        let r = w.relay().stats();
                        sh.relayed.store(r.tx_packets, Ordering::Relaxed);
                        sh.received.store(r.rx_packets, Ordering::Relaxed);
                        sh.drops.store(r.drops.total(), Ordering::Relaxed);
                        sh.passes.store(n, Ordering::Relaxed);
                    }
                }
                w.close_all();
                Ok(())
            })?;
        for &port in &ports {
            let la = LegId::at(0, port, 1);
            let lb = LegId::at(0, port + 2, 1);
            for cmd in [
                Command::AddLeg(spec(la, a.peer)),
                Command::AddLeg(spec(lb, a.peer)),
                Command::Bridge { a: la, b: lb },
            ] {
                cmd_tx.send(cmd).context("worker gone")?;
            }
        }
        let end = Instant::now() + Duration::from_secs(60);
        while shared.legs.load(Ordering::Relaxed) < 2 * a.calls as u64 {
            if Instant::now() > end || worker.is_finished() {
                stop.store(true, Ordering::Relaxed);
                bail!("the DPDK worker did not bring up {} legs", 2 * a.calls);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        std::thread::spawn(move || while ev_rx.recv().is_ok() {});
        let hz = lcore::tsc_hz().max(1) as f64;
        let res = serve(&ports, || {
            let busy = shared.busy_tsc.load(Ordering::Relaxed);
            json!({
                "relayed": shared.relayed.load(Ordering::Relaxed),
                "received": shared.received.load(Ordering::Relaxed),
                "drops": shared.drops.load(Ordering::Relaxed),
                "passes": shared.passes.load(Ordering::Relaxed),
                "busy_passes": shared.busy_passes.load(Ordering::Relaxed),
                "busy_ns": (busy as f64 * 1e9 / hz) as u64,
                "cpu_ns": cpu_ns("self"),
                "mac": mac.to_string(),
            })
        });
        stop.store(true, Ordering::Relaxed);
        drop(cmd_tx);
        match worker.join() {
            Ok(r) => r?,
            Err(_) => bail!("the DPDK worker panicked"),
        }
        res
    }
}
