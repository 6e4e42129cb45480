//! The one safe layer over DPDK (`dpdk-sys`): EAL, mempools, mbufs, ports with per-lcore
//! queues, lcores and the TSC, flow steering ([`flow`]) and mbuf handoff rings ([`ring`]).
//! This is the only crate of callbridge with hand-written `unsafe`.
//!
//! # For operators: the EAL arguments that matter
//!
//! The data plane passes an EAL argument list to [`Eal::init`] (build one with [`EalArgs`]):
//!
//! | argument | what it does |
//! |---|---|
//! | `-l 2-5` / `-l 2,4,6` | the cores EAL runs threads on. With std-thread workers (the default, see [`lcore`]) list only the main core; workers pin themselves and register. With [`lcore::launch`] list every worker core too |
//! | `--main-lcore 2` | which of them runs `main` (default: the first in `-l`) |
//! | `-a 0000:03:00.0` | allow-list a PCI NIC (bound to vfio-pci); repeat per NIC. Without `-a`, EAL probes every bound NIC |
//! | `--no-pci` | probe no PCI devices at all (tests, virtual devices only) |
//! | `--vdev net_null0` / `--vdev net_ring0` / `--vdev net_af_packet0,iface=eth1` | create a virtual device (tests, or AF_PACKET on a kernel interface) |
//! | `--socket-mem 1024,1024` | hugepage memory (MB) to reserve per NUMA node; keep mempools on the NIC's node |
//! | `--no-huge -m 256` | run without hugepages on 256 MB of ordinary memory (tests, labs; not for production rates) |
//! | `--file-prefix cb1` | name of the runtime files under `/var/run/dpdk/`; must be unique per concurrently running DPDK process |
//! | `-d /path/librte_net_x.so` | load an extra driver plugin (the system driver directory is loaded automatically, see `dpdk-sys`) |
//! | `--log-level lib.eal:debug` | DPDK log verbosity |
//!
//! # The shape of a worker
//!
//! ```text
//!  Eal::init ─► Mempool::new (on port_id.socket_id()) ─► Port::configure ─► port.start()
//!  per worker thread, pinned to its core: let _reg = lcore::register_thread()?;
//!    let (mut rx, mut tx) = (port.rx_queue(q)?, port.tx_queue(q)?);   // moved into the thread
//!    let mut burst = Burst::<32>::new();                                // once, reused
//!    loop { let now = lcore::rdtsc();
//!           rx.rx_burst(&mut burst);
//!           burst.retain(|m| { /* edit m.data_mut() in place; set_tx_offload if
//!                                  port.tx_offloads() allows; false = drop */ true });
//!           tx.tx_burst(&mut burst);
//!           burst.clear(); /* frees what TX refused */ }
//!  shutdown: drop the queue handles (join the workers), then port.stop(), then drop all.
//! ```
//!
//! Workers should be **std threads pinned to cores that then call [`lcore::register_thread`]**,
//! or closures run on EAL lcores with [`lcore::launch`]; see [`lcore`] for how to choose. A
//! thread unknown to EAL has lcore id `LCORE_ID_ANY`, and DPDK then bypasses the per-lcore
//! mempool cache: correct, but every alloc/free hits the shared ring.
//!
//! # Several workers on one port
//!
//! One RX/TX queue pair per worker. Datagrams reach the worker that owns their UDP port by,
//! in order of preference: NIC flow rules ([`Port::flow_create`] with a [`UdpSteer`]); RSS
//! ([`PortConf::rss`], [`Port::rss_enabled`]) spreading what no rule matches; and, for
//! whatever lands on the wrong worker, a handoff ring per worker ([`mbuf_ring`]: any worker
//! enqueues with a cloned [`RingProducer`], the owner dequeues with its [`RingConsumer`]).
//!
//! # Ownership and lifetimes (the invariants that make this safe)
//!
//! - [`Eal`] is initialised at most once per process; a second [`Eal::init`] is an error.
//!   `rte_eal_cleanup` runs when the last of [`Eal`], every [`Mempool`] and every [`Port`] is
//!   gone (they share one reference-counted guard).
//! - [`Mbuf`] owns one mbuf and frees it on drop. A [`Mempool`] dropped while any of its mbufs
//!   is still out (in an [`Mbuf`], a [`Burst`] or a NIC ring) is leaked rather than freed, and
//!   then so is the EAL guard: memory those mbufs point into is never unmapped.
//! - A [`Port`] owns the port between `configure` and drop (a second `configure` of the same
//!   port fails). Each RX/TX queue has at most one handle ([`RxQueue`], [`TxQueue`]): DPDK's
//!   burst functions are not thread-safe per queue. `stop` refuses while queue handles exist.
//! - A [`FlowRule`] keeps its port's state alive and destroys the rule on drop, before the
//!   port can be stopped by the last handle's drop.
//! - An mbuf ring keeps EAL alive until its last handle is gone, then frees the mbufs still in
//!   it and the ring.
//! - Every FFI return code goes through one trait (`ToResult`) into a [`DpdkError`].
#![deny(missing_docs)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod eal;
pub mod error;
pub mod flow;
pub mod lcore;
pub mod mbuf;
pub mod mempool;
pub mod port;
pub mod ring;

pub use eal::{Eal, EalArgs};
pub use error::DpdkError;
pub use flow::{FlowRule, UdpSteer};
pub use lcore::{SocketId, ThreadRegistration};
pub use mbuf::{prefetch0, Burst, Mbuf, RxCksum};
pub use mempool::Mempool;
pub use port::{
    DevInfo, Link, MacAddr, Port, PortConf, PortId, PortStats, RxOffloads, RxQueue, TxOffloads,
    TxQueue,
};
pub use ring::{mbuf_ring, RingConsumer, RingProducer};

/// Raw bindings, re-exported for the rare case the safe API lacks something; using them needs
/// `unsafe`, which every other callbridge crate forbids.
pub use dpdk_sys as sys;
