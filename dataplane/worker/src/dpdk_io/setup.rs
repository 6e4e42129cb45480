//! Port setup and EAL configuration: EAL initialised once per process, the mbuf pool, the
//! port's queues and offloads, flow rules or handoff rings for several workers, and
//! [`start`], which builds one [`DpdkIo`] per worker thread.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use dp_api::{DataplaneHandle, PortPlan};
use dpdk::port::TxOffloads;
use dpdk::{lcore, Eal, FlowRule, Mempool, Port, PortConf, PortId, SocketId};
use wire::ethernet::Address;

use super::flow::install_flow_rules;
use super::{fail, DpdkIo, Share, HANDOFF_RING};
use crate::l3::L3;
use crate::netstack::{NetConfig, TxOffload};
use crate::netstack6::NetConfig6;
use crate::steer::{PortOwners, Steering};
use crate::{Dataplane, DataplaneConfig, DpdkSettings, WorkerError};

/// The DPDK objects a running data plane keeps: the flow rules (destroyed first), the port
/// (stopped when it and its queue handles are gone, i.e. after the workers) and the mbuf pool.
#[derive(Debug)]
pub(crate) struct Resources {
    _rules: Vec<FlowRule>,
    _port: Arc<Port>,
    _pool: Mempool,
}

/// The process's EAL, initialised once by [`init_eal`] and never cleaned up (DPDK cannot
/// initialise twice in one process).
static EAL: Mutex<Option<Eal>> = Mutex::new(None);
/// Distinguishes the pools of successive starts.
static POOLS: AtomicU32 = AtomicU32::new(0);

/// Initialises EAL with `args` unless this process already did (then `args` are ignored and
/// `Ok(false)` is returned). EAL pins the calling thread to its main lcore; the caller's
/// previous CPU affinity is restored afterwards, so threads it spawns later are not all
/// squeezed onto that core.
///
/// # Errors
/// [`WorkerError::Dpdk`] with EAL's reason.
pub fn init_eal(args: &[String]) -> Result<bool, WorkerError> {
    let mut g = EAL.lock().unwrap_or_else(PoisonError::into_inner);
    if g.is_some() {
        return Ok(false);
    }
    let me = nix::unistd::Pid::from_raw(0);
    let saved = nix::sched::sched_getaffinity(me).ok();
    let eal = Eal::init(args).map_err(|e| fail("EAL init", e))?;
    if let Some(set) = saved {
        if let Err(e) = nix::sched::sched_setaffinity(me, &set) {
            tracing::warn!(error = %e, "could not restore CPU affinity after EAL init");
        }
    }
    *g = Some(eal);
    Ok(true)
}

/// EAL's runtime directory (`/var/run/dpdk/<file-prefix>` for root), if EAL is initialised.
/// EAL leaves it behind; tests remove theirs.
#[must_use]
pub fn eal_runtime_dir() -> Option<std::path::PathBuf> {
    EAL.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .as_ref()
        .map(Eal::runtime_dir)
}

/// Resolves a port given by index or device name.
///
/// # Errors
/// [`WorkerError::Dpdk`] if there is no such port.
pub fn port_by_name(port: &str) -> Result<PortId, WorkerError> {
    match port.parse::<u16>() {
        Ok(n) => Ok(PortId(n)),
        Err(_) => Port::by_name(port).map_err(|e| fail(&format!("port {port:?}"), e)),
    }
}

/// The L3 configuration every worker starts from.
#[derive(Debug, Clone, Copy)]
enum NetCfg {
    V4(NetConfig),
    V6(NetConfig6),
}

/// Starts the data plane on the DPDK backend (see [`Backend::Dpdk`]).
pub(crate) fn start(
    cfg: DataplaneConfig,
    s: &DpdkSettings,
) -> Result<(Dataplane, DataplaneHandle), WorkerError> {
    if cfg.workers == 0 {
        return Err(WorkerError::Config("no workers".into()));
    }
    let v6 = cfg.address.is_ipv6();
    let extra = cfg.extra_addresses.clone();
    if let Some(a) = extra.iter().find(|a| a.is_ipv6() != v6) {
        return Err(WorkerError::Config(format!(
            "media address {a} is not of the same family as {}: one DPDK port runs one family",
            cfg.address
        )));
    }
    let max_prefix = if v6 { 128 } else { 32 };
    if s.prefix_len > max_prefix {
        return Err(WorkerError::Config(format!(
            "prefix length {} > {max_prefix}",
            s.prefix_len
        )));
    }
    if let Some(gw) = s.gateway.filter(|g| g.is_ipv6() != v6) {
        return Err(WorkerError::Config(format!(
            "gateway {gw} is not of the media address's family ({})",
            cfg.address
        )));
    }
    init_eal(&s.eal_args())?;
    let port_id = port_by_name(&s.port)?;
    let socket = port_id
        .socket_id()
        .map_err(|e| fail(&format!("port {port_id}"), e))?;
    let name = format!("cbpool{}", POOLS.fetch_add(1, Ordering::Relaxed));
    let pool = Mempool::new(
        &name,
        s.mbufs,
        s.mbuf_cache,
        Mempool::DEFAULT_DATA_ROOM,
        socket,
    )
    .map_err(|e| fail("mempool", e))?;
    let workers = u16::try_from(cfg.workers).map_err(|_| fail("workers", "too many"))?;
    let conf = PortConf {
        rx_queues: workers,
        tx_queues: workers,
        rx_desc: s.rx_desc,
        tx_desc: s.tx_desc,
        offloads: TxOffloads {
            ipv4_cksum: s.checksum_offload,
            udp_cksum: s.checksum_offload,
        },
        // Spread what flow rules do not steer; handoff gets each datagram to its owner.
        rss: workers > 1,
    };
    let mut port = Port::configure(port_id, conf, &pool).map_err(|e| fail("port configure", e))?;
    if s.promiscuous {
        port.promiscuous(true)
            .map_err(|e| fail("promiscuous mode", e))?;
    }
    let mac = port.mac_addr().map_err(|e| fail("port MAC", e))?;
    let enabled = port.tx_offloads();
    let rx_offloads = port.rx_offloads();
    let offload = TxOffload {
        ipv4_checksum: enabled.ipv4_cksum,
        udp_checksum: enabled.udp_cksum,
    };
    let mut queues = Vec::with_capacity(cfg.workers);
    for q in 0..workers {
        let rxq = port.rx_queue(q).map_err(|e| fail("rx queue", e))?;
        let txq = port.tx_queue(q).map_err(|e| fail("tx queue", e))?;
        queues.push(Some((rxq, txq)));
    }
    port.start().map_err(|e| fail("port start", e))?;
    let plan = PortPlan::new(cfg.ports.clone(), cfg.workers)?;
    let slices: Vec<_> = (0..cfg.workers).map(|w| plan.slice(w)).collect();
    let owners = PortOwners::new(&slices);
    let mut rules = Vec::new();
    let mut shares: Vec<Option<Share>> = Vec::new();
    if cfg.workers > 1 {
        let ips: Vec<Ipv4Addr> = std::iter::once(cfg.address)
            .chain(extra.iter().copied())
            .filter_map(|a| match a {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
            .collect();
        if v6 && s.steering == Steering::Flow {
            return Err(fail(
                "flow steering (dpdk.steering = \"flow\")",
                "steering rules are built for IPv4 media addresses only; use \"auto\" or \"handoff\" with IPv6",
            ));
        }
        if s.steering != Steering::Handoff && !v6 {
            if let Some(r) = install_flow_rules(&port, &ips, &owners, s.steering)? {
                rules = r;
            }
        }
        shares = Share::for_workers(owners, &name, HANDOFF_RING, socket)
            .map_err(|e| fail("handoff rings", e))?
            .into_iter()
            .map(Some)
            .collect();
    }
    let port = Arc::new(port);
    tracing::info!(
        port = %port_id, %mac, ?offload, ?rx_offloads, socket = %socket,
        workers = cfg.workers, rss = port.rss_enabled(), flow_rules = rules.len(),
        "DPDK port started"
    );
    let net = match (cfg.address, s.gateway) {
        (IpAddr::V4(ip), gw) => NetCfg::V4(NetConfig {
            mac: Address(mac.0),
            ip,
            prefix_len: s.prefix_len,
            gateway: gw.and_then(|g| match g {
                IpAddr::V4(g) => Some(g),
                IpAddr::V6(_) => None,
            }),
        }),
        (IpAddr::V6(ip), gw) => NetCfg::V6(NetConfig6 {
            mac: Address(mac.0),
            ip,
            prefix_len: s.prefix_len,
            gateway: gw.and_then(|g| match g {
                IpAddr::V6(g) => Some(g),
                IpAddr::V4(_) => None,
            }),
        }),
    };
    let queues = Mutex::new(queues);
    let shares = Mutex::new(shares);
    let (wpool, wport) = (pool.clone(), port.clone());
    let (mut dp, handle) = Dataplane::start_with(cfg, move |w, ports| {
        let (rxq, txq) = queues
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(w)
            .and_then(Option::take)
            .ok_or_else(|| io::Error::other(format!("no DPDK queue for worker {w}")))?;
        let reg = lcore::register_thread().map_err(|e| io::Error::other(e.to_string()))?;
        let here = lcore::socket_id();
        if here != SocketId::ANY && socket != SocketId::ANY && here != socket {
            tracing::warn!(
                worker = w,
                core_node = %here,
                port_node = %socket,
                "worker core and DPDK port are on different NUMA nodes"
            );
        }
        let stats = (w == 0).then(|| wport.clone());
        let share = shares
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_mut(w)
            .and_then(Option::take);
        let l3: L3 = match net {
            NetCfg::V4(c) => c.into(),
            NetCfg::V6(c) => c.into(),
        };
        let io = DpdkIo::new(rxq, txq, wpool.clone(), l3, offload, ports, stats)
            .with_extra_addresses(&extra)
            .with_rx_offloads(rx_offloads)
            .with_registration(reg);
        Ok(match share {
            Some(sh) => io.with_share(sh),
            None => io,
        })
    })?;
    dp.dpdk = Some(Resources {
        _rules: rules,
        _port: port,
        _pool: pool,
    });
    Ok((dp, handle))
}
