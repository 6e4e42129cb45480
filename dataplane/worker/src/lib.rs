//! callbridge's data-plane workers: one thread per (optionally pinned) core, each running
//! the [`lcore`] loop over a [`PacketIo`] backend and its own [`relay::Relay`].
//!
//! ```text
//!  DataplaneHandle ──Command (bounded, one queue per worker)──► Worker i (thread, core cores[i])
//!        ▲                                                        loop { rx_burst ► relay ► tx_burst ► timers }
//!        └──────────────Event (one bounded queue, try_send)───────┘   over SocketIo | MemIo | DpdkIo
//! ```
//!
//! - [`Dataplane::start`] splits the port range with [`PortPlan`], starts one worker per
//!   slice on the backend [`DataplaneConfig::backend`] names and returns the control plane's
//!   [`DataplaneHandle`]. [`Dataplane::start_with`] takes any backend factory (tests use
//!   [`mem_io::MemIo`]).
//! - The socket backend sleeps in epoll when idle (at most [`lcore::MAX_IDLE_WAIT`], so
//!   commands are picked up promptly).
//! - The DPDK backend (`dpdk_io`, cargo feature `dpdk`, [`Backend::Dpdk`]) busy-polls one
//!   RX/TX queue pair of a DPDK port and owns L2/L3 there through the sans-IO [`netstack`]
//!   (ARP, ICMP echo, IPv4/UDP checks and encapsulation). Without the feature nothing of
//!   DPDK is built or linked.
//! - Each worker owns its state; nothing is shared between workers except the shutdown flag
//!   and the channels, plus, with the control plane's [`PortPlan`], the
//!   [`dp_api::RetiredLegs`] each worker marks when a leg is gone (on commands, never per
//!   packet): a port is handed out again only after that.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::io as stdio;
use std::net::IpAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crossbeam_channel::bounded;
use dp_api::{Command, DataplaneHandle, DpError, PortPlan, WorkerLink};
use relay::{Relay, RelayConfig};

#[cfg(feature = "dpdk")]
pub mod dpdk_io;
pub mod io;
pub mod l3;
pub mod lcore;
pub mod mem_io;
mod neighbour;
pub mod netstack;
pub mod netstack6;
pub mod socket_io;
pub mod stats;
pub mod steer;

pub use io::{Burst, LaneOut, Packet, PacketIo, BUF_LEN, MAX_BURST, MIN_TX_ROOM};
pub use lcore::{LoopStats, Pass, Worker};
pub use mem_io::{MemIo, MemPacket, MemPeer};
pub use netstack::{L2Drop, NetConfig, NetStats, Netstack};
pub use socket_io::SocketIo;
pub use stats::{IoStats, PortCounters, SharedStats, WorkerSnapshot};
pub use steer::Steering;

/// How to run the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// The IP to bind media sockets on (media address index 0).
    pub address: IpAddr,
    /// Further media addresses carrying the same port range (index 1, 2, …): each multiplies
    /// the legs the data plane can hold (one address holds one leg per RTP/RTCP port pair).
    /// With the DPDK backend they must be IPv4 and on the port's link.
    pub extra_addresses: Vec<IpAddr>,
    /// The whole media port range (RTP even, RTCP odd), split between workers.
    pub ports: RangeInclusive<u16>,
    /// How many workers (threads).
    pub workers: usize,
    /// Pin worker `i` to core `cores[i]`; `None` = no pinning.
    pub cores: Option<Vec<usize>>,
    /// RX/TX burst size (1..=[`MAX_BURST`]).
    pub burst: usize,
    /// Capacity of each worker's command queue.
    pub command_queue: usize,
    /// Capacity of the shared event queue (and of each relay's event ring).
    pub event_queue: usize,
    /// The packet backend.
    pub backend: Backend,
    /// Opt-in features of the socket backend (all off by default; ignored by DPDK).
    pub socket: SocketOptions,
}

/// Opt-in features of the socket backend ([`SocketIo`]); the default is all off. The first two
/// need `CAP_NET_RAW`: without it [`Dataplane::start`] fails (naming the option), it does not
/// fall back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SocketOptions {
    /// `socket_raw_tx`: IPv4 packets leave through one raw socket, a burst per `sendmmsg`
    /// ([`SocketIo::try_raw_tx`]).
    pub raw_tx: bool,
    /// `socket_rx_ring`: IPv4 packets arrive through an `AF_PACKET` receive ring per worker,
    /// no system call per packet ([`SocketIo::with_rx_ring`]).
    pub rx_ring: bool,
    /// `socket_coalesce`: after a wait that brought a few packets, sleep up to this long
    /// before the next (zero: off; at most [`socket_io::MAX_COALESCE`];
    /// [`SocketIo::with_coalesce`]).
    pub coalesce: Duration,
}

impl SocketOptions {
    /// A backend for `addresses` and `ports` with these options.
    ///
    /// # Errors
    /// If the backend cannot be created, or an option needing `CAP_NET_RAW` cannot be
    /// turned on (the error names it).
    pub fn build(
        self,
        addresses: Vec<IpAddr>,
        ports: RangeInclusive<u16>,
    ) -> stdio::Result<SocketIo> {
        let named = |key: &str, e: stdio::Error| {
            stdio::Error::new(
                e.kind(),
                format!("{key}: {e} (it needs CAP_NET_RAW; turn it off or grant the capability)"),
            )
        };
        let mut io = SocketIo::with_addresses(addresses, ports)?;
        if self.raw_tx {
            io = io.try_raw_tx().map_err(|e| named("socket_raw_tx", e))?;
        }
        if self.rx_ring {
            io = io
                .with_rx_ring(true)
                .map_err(|e| named("socket_rx_ring", e))?;
        }
        Ok(io.with_coalesce(self.coalesce))
    }
}

/// Which packet backend the workers use. Chosen once, at start.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Backend {
    /// Kernel UDP sockets bound on `address` ([`SocketIo`]).
    #[default]
    Socket,
    /// Kernel bypass: DPDK queues of one port, our own L2/L3 ([`netstack`]) answering ARP
    /// and ping for `address` (which must be IPv4). Needs the `dpdk` cargo feature; without
    /// it, [`Dataplane::start`] fails with [`WorkerError::Dpdk`].
    Dpdk(DpdkSettings),
}

/// How to run the DPDK backend: EAL arguments, the port, mempool and queue sizes, and the
/// IPv4 link configuration (our address is [`DataplaneConfig::address`]).
///
/// EAL is initialised once per process, by the first [`Dataplane::start`] with this backend;
/// later starts reuse it and ignore the EAL fields (their devices must already exist).
///
/// With several workers, each gets its own RX/TX queue pair of the port; datagrams reach the
/// worker owning their port by flow rules and/or software handoff ([`Steering`], [`steer`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkSettings {
    /// `-l`: the lcores EAL may use; its first is the main lcore (the starting thread's
    /// affinity is restored after EAL init). Workers are std threads pinned by
    /// [`DataplaneConfig::cores`] and registered with EAL (`rte_thread_register`).
    pub lcores: String,
    /// Devices: virtual device specs (`net_null0`, `net_ring0`,
    /// `net_af_packet0,iface=eth1`) become `--vdev`, anything else (PCI addresses such as
    /// `0000:03:00.0`) `-a`. Without any PCI address, `--no-pci` is passed.
    pub devices: Vec<String>,
    /// `Some(mb)`: `--no-huge -m mb` (tests, labs; not for production rates). `None`:
    /// hugepages.
    pub no_huge_mb: Option<u32>,
    /// `--socket-mem` (hugepage MB per NUMA node), with hugepages only.
    pub socket_mem: Option<String>,
    /// `--file-prefix`, unique per concurrently running DPDK process; `None` = `cb<pid>`.
    pub file_prefix: Option<String>,
    /// Further raw EAL arguments (e.g. `--log-level`, `-d` driver paths).
    pub extra_args: Vec<String>,
    /// The port: a device name (`net_null0`, `net_af_packet0`, `0000:03:00.0`) or an index.
    pub port: String,
    /// Mbufs in the data plane's pool (one pool, created before the workers start).
    pub mbufs: u32,
    /// Per-lcore mempool cache size.
    pub mbuf_cache: u32,
    /// RX descriptors per queue.
    pub rx_desc: u16,
    /// TX descriptors per queue.
    pub tx_desc: u16,
    /// The on-link prefix length of our address.
    pub prefix_len: u8,
    /// The gateway for off-link peers (`None`: on-link peers only), of the media address's
    /// family.
    pub gateway: Option<IpAddr>,
    /// Ask the device for IPv4/UDP checksum offload on transmit (used where offered).
    pub checksum_offload: bool,
    /// Put the port in promiscuous mode (not needed: frames are filtered by our MAC).
    pub promiscuous: bool,
    /// How datagrams reach their worker when several workers share the port.
    pub steering: Steering,
}

impl DpdkSettings {
    /// Settings for `port` among `devices`, with lab-friendly defaults: lcore 0, no
    /// hugepages (512 MB), 16383 mbufs (cache 256), 1024 descriptors, a /24, no gateway,
    /// checksum offload requested.
    #[must_use]
    pub fn new(devices: Vec<String>, port: impl Into<String>) -> Self {
        Self {
            lcores: "0".into(),
            devices,
            no_huge_mb: Some(512),
            socket_mem: None,
            file_prefix: None,
            extra_args: Vec::new(),
            port: port.into(),
            mbufs: 16383,
            mbuf_cache: 256,
            rx_desc: 1024,
            tx_desc: 1024,
            prefix_len: 24,
            gateway: None,
            checksum_offload: true,
            promiscuous: false,
            steering: Steering::Auto,
        }
    }

    /// The EAL argument list these settings give.
    #[must_use]
    pub fn eal_args(&self) -> Vec<String> {
        let mut a = vec!["-l".to_string(), self.lcores.clone()];
        let mut pci = false;
        for d in &self.devices {
            if d.starts_with("net_") || d.starts_with("eth_") {
                a.extend(["--vdev".to_string(), d.clone()]);
            } else {
                pci = true;
                a.extend(["-a".to_string(), d.clone()]);
            }
        }
        if !pci {
            a.push("--no-pci".into());
        }
        match self.no_huge_mb {
            Some(mb) => a.extend(["--no-huge".into(), "-m".into(), mb.to_string()]),
            None => {
                if let Some(sm) = &self.socket_mem {
                    a.extend(["--socket-mem".into(), sm.clone()]);
                }
            }
        }
        let prefix = self
            .file_prefix
            .clone()
            .unwrap_or_else(|| format!("cb{}", std::process::id()));
        a.extend(["--file-prefix".into(), prefix]);
        a.extend(self.extra_args.iter().cloned());
        a
    }
}

impl DataplaneConfig {
    /// Every media address: `address`, then `extra_addresses` (index = [`dp_api::LegId::addr`]).
    #[must_use]
    pub fn addresses(&self) -> Vec<IpAddr> {
        std::iter::once(self.address)
            .chain(self.extra_addresses.iter().copied())
            .collect()
    }

    /// A config for one unpinned worker on `address` with sensible queue sizes.
    #[must_use]
    pub fn new(address: IpAddr, ports: RangeInclusive<u16>) -> Self {
        Self {
            address,
            extra_addresses: Vec::new(),
            ports,
            workers: 1,
            cores: None,
            burst: 32,
            command_queue: 1024,
            event_queue: 4096,
            backend: Backend::Socket,
            socket: SocketOptions::default(),
        }
    }
}

/// Why the data plane could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkerError {
    /// The port range cannot be split between the workers. (The causes below are part of
    /// the message, not `source()`s: a chain formatter such as anyhow's `{:#}` would print
    /// them twice in one line.)
    #[error("port plan: {0}")]
    PortPlan(DpError),
    /// A config value is out of range.
    #[error("bad data-plane config: {0}")]
    Config(String),
    /// A worker thread could not be spawned.
    #[error("could not spawn worker {worker}: {error}")]
    Spawn {
        /// The worker index.
        worker: usize,
        /// The OS error.
        error: stdio::Error,
    },
    /// A worker's I/O backend could not be created.
    #[error("worker {worker} backend: {error}")]
    Backend {
        /// The worker index.
        worker: usize,
        /// The error.
        error: stdio::Error,
    },
    /// A worker thread died before reporting ready.
    #[error("worker {0} died during start-up")]
    Died(usize),
    /// The DPDK backend could not start (or this build lacks the `dpdk` feature).
    #[error("DPDK backend: {0}")]
    Dpdk(String),
}

impl From<DpError> for WorkerError {
    fn from(e: DpError) -> Self {
        Self::PortPlan(e)
    }
}

/// The running data plane: worker threads and their shutdown flag.
#[derive(Debug)]
pub struct Dataplane {
    threads: Vec<JoinHandle<()>>,
    commands: Vec<crossbeam_channel::Sender<Command>>,
    stats: Vec<Arc<SharedStats>>,
    shutdown: Arc<AtomicBool>,
    /// The DPDK port and pool, released after the workers have stopped.
    #[cfg(feature = "dpdk")]
    dpdk: Option<dpdk_io::Resources>,
}

impl Dataplane {
    /// Starts `cfg.workers` workers on the backend `cfg.backend` names.
    ///
    /// # Errors
    /// See [`WorkerError`].
    pub fn start(cfg: DataplaneConfig) -> Result<(Self, DataplaneHandle), WorkerError> {
        match cfg.backend.clone() {
            Backend::Socket => {
                let (addresses, options) = (cfg.addresses(), cfg.socket);
                Self::start_with(cfg, move |_, ports| options.build(addresses.clone(), ports))
            }
            #[cfg(feature = "dpdk")]
            Backend::Dpdk(settings) => dpdk_io::start(cfg, &settings),
            #[cfg(not(feature = "dpdk"))]
            Backend::Dpdk(_) => Err(WorkerError::Dpdk(
                "this build has no DPDK support (cargo feature `dpdk` of callbridge-worker)".into(),
            )),
        }
    }

    /// Starts workers on the backend `make_io(worker_index, rtp_ports)` builds. The factory
    /// runs on each worker's own thread (backends need not be `Send`).
    ///
    /// # Errors
    /// See [`WorkerError`]; on error every worker already started is stopped.
    pub fn start_with<Io, F>(
        cfg: DataplaneConfig,
        make_io: F,
    ) -> Result<(Self, DataplaneHandle), WorkerError>
    where
        Io: PacketIo + 'static,
        F: Fn(usize, RangeInclusive<u16>) -> stdio::Result<Io> + Send + Sync + 'static,
    {
        if cfg.burst == 0 || cfg.burst > MAX_BURST {
            return Err(WorkerError::Config(format!(
                "burst {} not in 1..={MAX_BURST}",
                cfg.burst
            )));
        }
        if cfg.command_queue == 0 || cfg.event_queue == 0 {
            return Err(WorkerError::Config(
                "queue capacities must be at least 1".into(),
            ));
        }
        if let Some(cores) = &cfg.cores {
            if cores.len() < cfg.workers {
                return Err(WorkerError::Config(format!(
                    "{} workers but only {} cores listed",
                    cfg.workers,
                    cores.len()
                )));
            }
        }
        let addresses = cfg.addresses().len();
        if addresses > dp_api::MAX_ADDRESSES {
            return Err(WorkerError::Config(format!(
                "{addresses} media addresses; at most {}",
                dp_api::MAX_ADDRESSES
            )));
        }
        let plan = PortPlan::with_addresses(cfg.ports.clone(), cfg.workers, addresses)
            .map_err(WorkerError::PortPlan)?;
        let (ev_tx, ev_rx) = bounded(cfg.event_queue);
        let shutdown = Arc::new(AtomicBool::new(false));
        let make_io = Arc::new(make_io);
        let entropy = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut dp = Self {
            threads: Vec::new(),
            commands: Vec::new(),
            stats: Vec::new(),
            shutdown: shutdown.clone(),
            #[cfg(feature = "dpdk")]
            dpdk: None,
        };
        let mut links = Vec::with_capacity(cfg.workers);
        for w in 0..cfg.workers {
            let (cmd_tx, cmd_rx) = bounded(cfg.command_queue);
            let (ready_tx, ready_rx) = bounded::<stdio::Result<()>>(1);
            let slice = plan.slice(w);
            let core = cfg.cores.as_ref().map(|c| c[w]);
            let relay_cfg = RelayConfig {
                ports: slice.clone(),
                event_capacity: cfg.event_queue,
                seed: relay::seed_from(entropy ^ (w as u64).rotate_left(32)),
                addresses,
            };
            let (ev_tx, flag, make_io, burst) =
                (ev_tx.clone(), shutdown.clone(), make_io.clone(), cfg.burst);
            let retired = plan.retired();
            let shared = Arc::new(SharedStats::default());
            dp.stats.push(shared.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("cb-worker-{w}"))
                .spawn(move || {
                    if let Some(id) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id }) {
                            tracing::warn!(
                                worker = w,
                                core = id,
                                "could not pin worker to core; running unpinned"
                            );
                        }
                    }
                    let io = match make_io(w, slice) {
                        Ok(io) => io,
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let mut worker =
                        Worker::new(w, io, Relay::new(relay_cfg), cmd_rx, ev_tx, burst, flag)
                            .with_shared_stats(shared)
                            .with_retired(retired);
                    let _ = ready_tx.send(Ok(()));
                    tracing::debug!(worker = w, "worker running");
                    worker.run();
                    tracing::debug!(worker = w, stats = ?worker.stats(), "worker stopped");
                });
            let handle = match spawned {
                Ok(h) => h,
                Err(source) => {
                    dp.stop();
                    return Err(WorkerError::Spawn {
                        worker: w,
                        error: source,
                    });
                }
            };
            dp.threads.push(handle);
            dp.commands.push(cmd_tx.clone());
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(source)) => {
                    dp.stop();
                    return Err(WorkerError::Backend {
                        worker: w,
                        error: source,
                    });
                }
                Err(_) => {
                    dp.stop();
                    return Err(WorkerError::Died(w));
                }
            }
            links.push(WorkerLink { commands: cmd_tx });
        }
        Ok((dp, DataplaneHandle::new(plan, links, ev_rx)))
    }

    /// Every worker's counters as last published (at most [`stats::PUBLISH_PERIOD`] old;
    /// final values once the workers have stopped). Index = worker.
    #[must_use]
    pub fn stats(&self) -> Vec<WorkerSnapshot> {
        self.stats.iter().map(|s| s.load()).collect()
    }

    /// How many workers run.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.threads.len()
    }

    /// Sends `Shutdown` to every worker, raises the flag and joins the threads. Returns each
    /// worker's final counters.
    pub fn shutdown(mut self) -> Vec<WorkerSnapshot> {
        self.stop();
        self.stats()
    }

    fn stop(&mut self) {
        for c in &self.commands {
            let _ = c.try_send(Command::Shutdown);
        }
        self.shutdown.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                tracing::error!("a data-plane worker panicked");
            }
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests;
