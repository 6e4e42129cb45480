//! Ethernet ports: [`Port::configure`] → [`Port::start`], and per-lcore [`RxQueue`] /
//! [`TxQueue`] handles for the burst loop.
//!
//! Invariants:
//! - One live [`Port`] per port id (a second `configure` fails with
//!   [`DpdkError::PortInUse`] until the first `Port` and its queue handles are gone).
//! - At most one handle per queue: `rte_eth_rx_burst`/`tx_burst` are not thread-safe on one
//!   queue. Handles are `Send`; give each worker its own queue pair.
//! - [`Port::stop`] refuses while queue handles exist, so no worker polls a stopping port.
//!   Dropping the `Port` and all its handles stops the port (it is not closed, so it can be
//!   configured again).
//! - The port keeps its mempool (RX refills from it) and EAL alive.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use dpdk_sys as sys;

use crate::eal::{self, EalGuard};
use crate::error::{c_str_to_string, to_c_string, DpdkError, ToResult};
use crate::lcore::SocketId;
use crate::mbuf::Burst;
use crate::mempool::Mempool;

/// Ports that have a live [`Port`].
static CLAIMED: [AtomicBool; sys::RTE_MAX_ETHPORTS as usize] =
    [const { AtomicBool::new(false) }; sys::RTE_MAX_ETHPORTS as usize];

/// An ethdev port id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortId(pub u16);

impl fmt::Display for PortId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "port{}", self.0)
    }
}

impl PortId {
    /// The device's capabilities (works before configuration).
    ///
    /// # Errors
    /// `NoDevice` for an unknown port; `EalNotInitialized`.
    pub fn dev_info(self) -> Result<DevInfo, DpdkError> {
        eal::guard()?;
        let mut info = sys::rte_eth_dev_info::default();
        // SAFETY: EAL is initialised; info is a valid out pointer; unknown ports give -ENODEV.
        unsafe { sys::rte_eth_dev_info_get(self.0, &mut info) }
            .to_result("rte_eth_dev_info_get")?;
        // SAFETY: driver_name is NULL or a static string owned by the driver.
        let driver_name = unsafe { c_str_to_string(info.driver_name) };
        let tx = info.tx_offload_capa;
        Ok(DevInfo {
            driver_name,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            min_rx_bufsize: info.min_rx_bufsize,
            max_rx_pktlen: info.max_rx_pktlen,
            rx_offload_capa: info.rx_offload_capa,
            tx_offload_capa: tx,
            flow_type_rss_offloads: info.flow_type_rss_offloads,
            tx_ipv4_cksum: tx & u64::from(sys::_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM) != 0,
            tx_udp_cksum: tx & u64::from(sys::_RTE_ETH_TX_OFFLOAD_UDP_CKSUM) != 0,
        })
    }

    /// The device name (`net_null0`, `0000:03:00.0`, …).
    ///
    /// # Errors
    /// `NoDevice` for an unknown port; `EalNotInitialized`.
    pub fn name(self) -> Result<String, DpdkError> {
        eal::guard()?;
        let mut buf = [0 as std::ffi::c_char; sys::RTE_ETH_NAME_MAX_LEN as usize];
        // SAFETY: buf has RTE_ETH_NAME_MAX_LEN bytes as the function requires; it writes a
        // NUL-terminated name.
        unsafe { sys::rte_eth_dev_get_name_by_port(self.0, buf.as_mut_ptr()) }
            .to_result("rte_eth_dev_get_name_by_port")?;
        // SAFETY: NUL-terminated on success (the buffer is zeroed and the name fits).
        Ok(unsafe { c_str_to_string(buf.as_ptr()) })
    }

    /// The port's MAC address.
    ///
    /// # Errors
    /// `NoDevice` for an unknown port; `EalNotInitialized`.
    pub fn mac_addr(self) -> Result<MacAddr, DpdkError> {
        eal::guard()?;
        let mut addr = sys::rte_ether_addr::default();
        // SAFETY: valid out pointer.
        unsafe { sys::rte_eth_macaddr_get(self.0, &mut addr) }.to_result("rte_eth_macaddr_get")?;
        Ok(MacAddr(addr.addr_bytes))
    }

    /// The NUMA node the NIC is attached to ([`SocketId::ANY`] if unknown, e.g. virtual
    /// devices). Create the port's mempool there and run its workers on cores of that node.
    ///
    /// # Errors
    /// `NoDevice` for an unknown port (DPDK reports it through `rte_errno`); `EalNotInitialized`.
    pub fn socket_id(self) -> Result<SocketId, DpdkError> {
        eal::guard()?;
        // SAFETY: EAL is initialised; clear rte_errno so a -1 can be told apart.
        unsafe { sys::_rte_set_errno(0) };
        // SAFETY: any port id is accepted; unknown ones return -1 with rte_errno = EINVAL.
        let id = unsafe { sys::rte_eth_dev_socket_id(self.0) };
        if id < 0 && crate::error::rte_errno() != 0 {
            return Err(DpdkError::from_rte_errno("rte_eth_dev_socket_id"));
        }
        Ok(SocketId(id))
    }
}

/// What a device can do (`rte_eth_dev_info`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevInfo {
    /// The PMD's name, e.g. `net_null`, `net_ring`, `net_ice`.
    pub driver_name: String,
    /// Most RX queues the device supports.
    pub max_rx_queues: u16,
    /// Most TX queues the device supports.
    pub max_tx_queues: u16,
    /// Smallest RX buffer the device accepts.
    pub min_rx_bufsize: u32,
    /// Largest frame the device receives.
    pub max_rx_pktlen: u32,
    /// `RTE_ETH_RX_OFFLOAD_*` capability bits.
    pub rx_offload_capa: u64,
    /// `RTE_ETH_TX_OFFLOAD_*` capability bits.
    pub tx_offload_capa: u64,
    /// `RTE_ETH_RSS_*` bits: the packet types the device can spread by RSS hash (0: no RSS).
    pub flow_type_rss_offloads: u64,
    /// The device can fill IPv4 header checksums on transmit.
    pub tx_ipv4_cksum: bool,
    /// The device can fill UDP checksums on transmit.
    pub tx_udp_cksum: bool,
}

/// Checksum offloads to request; each is enabled only if the device offers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxOffloads {
    /// IPv4 header checksum on transmit.
    pub ipv4_cksum: bool,
    /// UDP checksum on transmit.
    pub udp_cksum: bool,
}

/// Receive checksum offloads enabled on a port. [`Port::configure`] enables each one the device
/// offers (checking costs the device nothing we notice, and saves a software pass over every
/// datagram); the verdict is in each mbuf's offload flags ([`crate::Mbuf::rx_l4_cksum`],
/// [`crate::Mbuf::rx_ip_cksum`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxOffloads {
    /// IPv4 header checksum checked on receive.
    pub ipv4_cksum: bool,
    /// UDP checksum checked on receive.
    pub udp_cksum: bool,
}

/// How to configure a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortConf {
    /// RX queues (one per worker, steered by flow rules or RSS).
    pub rx_queues: u16,
    /// TX queues (one per worker).
    pub tx_queues: u16,
    /// Descriptors per RX queue (adjusted to the device's limits).
    pub rx_desc: u16,
    /// Descriptors per TX queue (adjusted to the device's limits).
    pub tx_desc: u16,
    /// Checksum offloads wanted; masked by the device's capabilities.
    pub offloads: TxOffloads,
    /// Spread received packets over the RX queues by RSS (hash of IP addresses and UDP
    /// ports) when `rx_queues > 1`, as far as the device can hash them; see
    /// [`Port::rss_enabled`] for what was enabled. Flow rules ([`Port::flow_create`]) take
    /// precedence over RSS on the packets they match.
    pub rss: bool,
}

impl Default for PortConf {
    /// One RX and one TX queue, 1024 descriptors each, both checksum offloads requested, no
    /// RSS.
    fn default() -> Self {
        Self {
            rx_queues: 1,
            tx_queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            offloads: TxOffloads {
                ipv4_cksum: true,
                udp_cksum: true,
            },
            rss: false,
        }
    }
}

/// Basic port counters (`rte_eth_stats`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortStats {
    /// Packets received.
    pub ipackets: u64,
    /// Packets sent.
    pub opackets: u64,
    /// Bytes received.
    pub ibytes: u64,
    /// Bytes sent.
    pub obytes: u64,
    /// Packets dropped by the NIC because RX queues were full (workers too slow).
    pub imissed: u64,
    /// Receive errors.
    pub ierrors: u64,
    /// Transmit errors.
    pub oerrors: u64,
    /// RX mbuf allocation failures (mempool too small).
    pub rx_nombuf: u64,
}

/// Link state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Link {
    /// Link is up.
    pub up: bool,
    /// Speed in Mbit/s (0 if unknown).
    pub speed_mbps: u32,
    /// Full duplex.
    pub full_duplex: bool,
    /// Autonegotiated.
    pub autoneg: bool,
}

/// An Ethernet MAC address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

/// The state a [`Port`], its queue handles and its flow rules share.
pub(crate) struct PortInner {
    id: u16,
    rx_taken: Box<[AtomicBool]>,
    tx_taken: Box<[AtomicBool]>,
    started: AtomicBool,
    tx_offloads: TxOffloads,
    rx_offloads: RxOffloads,
    rss_hf: u64,
    _pool: Mempool,
    _eal: Arc<EalGuard>,
}

impl PortInner {
    /// The port id.
    pub(crate) fn id(&self) -> u16 {
        self.id
    }

    fn queues_in_use(&self) -> bool {
        self.rx_taken
            .iter()
            .chain(self.tx_taken.iter())
            .any(|t| t.load(Ordering::Acquire))
    }

    fn stop(&self) -> Result<(), DpdkError> {
        if self.started.swap(false, Ordering::AcqRel) {
            // SAFETY: no queue handle exists (checked by callers / Drop runs after the last
            // handle), so no thread is in rx/tx_burst on this port.
            unsafe { sys::rte_eth_dev_stop(self.id) }.to_result("rte_eth_dev_stop")?;
        }
        Ok(())
    }
}

impl Drop for PortInner {
    fn drop(&mut self) {
        // Every queue handle holds an Arc to us, so none exists now.
        if let Err(e) = self.stop() {
            eprintln!("callbridge-dpdk: port {}: {e}", self.id);
        }
        CLAIMED[usize::from(self.id)].store(false, Ordering::Release);
    }
}

/// A configured Ethernet port. Owned by the control thread; workers get [`RxQueue`] /
/// [`TxQueue`] handles.
pub struct Port {
    inner: Arc<PortInner>,
}

impl fmt::Debug for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Port")
            .field("id", &self.inner.id)
            .field("rx_queues", &self.inner.rx_taken.len())
            .field("tx_queues", &self.inner.tx_taken.len())
            .field("started", &self.is_started())
            .field("tx_offloads", &self.inner.tx_offloads)
            .field("rss_enabled", &self.rss_enabled())
            .finish()
    }
}

impl Port {
    /// The port of a device by name (`"net_null0"`, `"0000:03:00.0"`).
    ///
    /// # Errors
    /// `NoDevice` if there is none; `InvalidInput` for a NUL byte; `EalNotInitialized`.
    pub fn by_name(name: &str) -> Result<PortId, DpdkError> {
        eal::guard()?;
        let c_name = to_c_string("device name", name)?;
        let mut id = 0u16;
        // SAFETY: valid C string and out pointer.
        unsafe { sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut id) }
            .to_result("rte_eth_dev_get_port_by_name")?;
        Ok(PortId(id))
    }

    /// Number of usable ports.
    ///
    /// # Errors
    /// `EalNotInitialized`.
    pub fn count() -> Result<u16, DpdkError> {
        eal::guard()?;
        // SAFETY: EAL is initialised.
        Ok(unsafe { sys::rte_eth_dev_count_avail() })
    }

    /// Configures `port` with `conf`'s queues, RX buffers from `pool`, and the requested
    /// checksum offloads that the device offers. The port is not started.
    ///
    /// # Errors
    /// `PortInUse` if a live `Port` owns it; `InvalidInput` for 0 queues or more than the
    /// device supports; `NoDevice`; or the failing `rte_eth_*` call's error.
    pub fn configure(port: PortId, conf: PortConf, pool: &Mempool) -> Result<Self, DpdkError> {
        let eal = eal::guard()?;
        let info = port.dev_info()?;
        let check = |what: &'static str, n: u16, max: u16| {
            if n == 0 || n > max {
                Err(DpdkError::invalid(
                    what,
                    format!("{n} not in 1..={max} for {port}"),
                ))
            } else {
                Ok(())
            }
        };
        check("rx_queues", conf.rx_queues, info.max_rx_queues)?;
        check("tx_queues", conf.tx_queues, info.max_tx_queues)?;
        // dev_info succeeded, so port.0 < RTE_MAX_ETHPORTS; checked again rather than indexed.
        let claim = CLAIMED
            .get(usize::from(port.0))
            .ok_or_else(|| DpdkError::invalid("port", format!("{port} >= RTE_MAX_ETHPORTS")))?;
        if claim.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::PortInUse { port: port.0 });
        }
        // From here on, dropping `inner` (on error too) releases the claim.
        let tx_offloads = TxOffloads {
            ipv4_cksum: conf.offloads.ipv4_cksum && info.tx_ipv4_cksum,
            udp_cksum: conf.offloads.udp_cksum && info.tx_udp_cksum,
        };
        let rx_capa = info.rx_offload_capa;
        let rx_offloads = RxOffloads {
            ipv4_cksum: rx_capa & u64::from(sys::_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM) != 0,
            udp_cksum: rx_capa & u64::from(sys::_RTE_ETH_RX_OFFLOAD_UDP_CKSUM) != 0,
        };
        let rss_hf = rss_hash_functions(conf, info.flow_type_rss_offloads);
        let inner = Arc::new(PortInner {
            id: port.0,
            rx_taken: (0..conf.rx_queues)
                .map(|_| AtomicBool::new(false))
                .collect(),
            tx_taken: (0..conf.tx_queues)
                .map(|_| AtomicBool::new(false))
                .collect(),
            started: AtomicBool::new(false),
            tx_offloads,
            rx_offloads,
            rss_hf,
            _pool: pool.clone(),
            _eal: eal,
        });

        let mut eth_conf = sys::rte_eth_conf::default();
        if tx_offloads.ipv4_cksum {
            eth_conf.txmode.offloads |= u64::from(sys::_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM);
        }
        if tx_offloads.udp_cksum {
            eth_conf.txmode.offloads |= u64::from(sys::_RTE_ETH_TX_OFFLOAD_UDP_CKSUM);
        }
        if rx_offloads.ipv4_cksum {
            eth_conf.rxmode.offloads |= u64::from(sys::_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM);
        }
        if rx_offloads.udp_cksum {
            eth_conf.rxmode.offloads |= u64::from(sys::_RTE_ETH_RX_OFFLOAD_UDP_CKSUM);
        }
        if rss_hf != 0 {
            eth_conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            // rss_key stays NULL: the device's default key.
            eth_conf.rx_adv_conf.rss_conf.rss_hf = rss_hf;
        }
        // SAFETY: we hold the port's claim, so no other Port uses it and no queue handle
        // exists; eth_conf is a valid, zero-initialised configuration.
        unsafe { sys::rte_eth_dev_configure(port.0, conf.rx_queues, conf.tx_queues, &eth_conf) }
            .to_result("rte_eth_dev_configure")?;
        let (mut nb_rx, mut nb_tx) = (conf.rx_desc, conf.tx_desc);
        // SAFETY: valid out pointers; the port is configured.
        unsafe { sys::rte_eth_dev_adjust_nb_rx_tx_desc(port.0, &mut nb_rx, &mut nb_tx) }
            .to_result("rte_eth_dev_adjust_nb_rx_tx_desc")?;
        let socket = port.socket_id()?;
        // SOCKET_ID_ANY is passed as the unsigned value DPDK expects.
        let socket = socket.raw() as u32;
        for q in 0..conf.rx_queues {
            // SAFETY: q < configured RX queues; NULL rx_conf selects the driver default; the
            // pool outlives the port's use of it (inner holds a clone).
            unsafe {
                sys::rte_eth_rx_queue_setup(
                    port.0,
                    q,
                    nb_rx,
                    socket,
                    std::ptr::null(),
                    pool.as_ptr(),
                )
            }
            .to_result("rte_eth_rx_queue_setup")?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: q < configured TX queues; NULL tx_conf selects the driver default, which
            // inherits the port-level TX offloads set above.
            unsafe { sys::rte_eth_tx_queue_setup(port.0, q, nb_tx, socket, std::ptr::null()) }
                .to_result("rte_eth_tx_queue_setup")?;
        }
        Ok(Self { inner })
    }

    /// This port's id.
    #[must_use]
    pub fn id(&self) -> PortId {
        PortId(self.inner.id)
    }

    /// Starts the port (`rte_eth_dev_start`). Idempotent.
    ///
    /// # Errors
    /// The driver's start failure.
    pub fn start(&mut self) -> Result<(), DpdkError> {
        if self.inner.started.load(Ordering::Acquire) {
            return Ok(());
        }
        // SAFETY: configured port; &mut self serialises start/stop.
        unsafe { sys::rte_eth_dev_start(self.inner.id) }.to_result("rte_eth_dev_start")?;
        self.inner.started.store(true, Ordering::Release);
        Ok(())
    }

    /// Stops the port (`rte_eth_dev_stop`). Idempotent.
    ///
    /// # Errors
    /// [`DpdkError::QueuesInUse`] while any [`RxQueue`]/[`TxQueue`] handle exists (drop the
    /// workers' handles first); or the driver's failure.
    pub fn stop(&mut self) -> Result<(), DpdkError> {
        if self.inner.queues_in_use() {
            return Err(DpdkError::QueuesInUse {
                port: self.inner.id,
            });
        }
        self.inner.stop()
    }

    /// Whether the port is started.
    #[must_use]
    pub fn is_started(&self) -> bool {
        self.inner.started.load(Ordering::Acquire)
    }

    /// The checksum offloads actually enabled (requested ∩ offered); only set
    /// [`crate::Mbuf::set_tx_offload`] flags that are enabled here, and compute the rest in
    /// software.
    #[must_use]
    pub fn tx_offloads(&self) -> TxOffloads {
        self.inner.tx_offloads
    }

    /// The receive checksum offloads enabled (every one the device offers).
    #[must_use]
    pub fn rx_offloads(&self) -> RxOffloads {
        self.inner.rx_offloads
    }

    /// Whether RSS spreads received packets over the RX queues: [`PortConf::rss`] was set,
    /// there is more than one RX queue and the device can hash IP or UDP packets (af_packet
    /// cannot: the kernel's fanout spreads there instead).
    #[must_use]
    pub fn rss_enabled(&self) -> bool {
        self.inner.rss_hf != 0
    }

    /// The state shared with queue handles and flow rules.
    pub(crate) fn inner(&self) -> &Arc<PortInner> {
        &self.inner
    }

    /// The handle for RX queue `queue`; one per queue at a time.
    ///
    /// # Errors
    /// `InvalidInput` if `queue` was not configured; `QueueInUse` if a handle exists.
    pub fn rx_queue(&self, queue: u16) -> Result<RxQueue, DpdkError> {
        take(&self.inner.rx_taken, self.inner.id, queue)?;
        Ok(RxQueue {
            port: Arc::clone(&self.inner),
            queue,
        })
    }

    /// The handle for TX queue `queue`; one per queue at a time.
    ///
    /// # Errors
    /// `InvalidInput` if `queue` was not configured; `QueueInUse` if a handle exists.
    pub fn tx_queue(&self, queue: u16) -> Result<TxQueue, DpdkError> {
        take(&self.inner.tx_taken, self.inner.id, queue)?;
        Ok(TxQueue {
            port: Arc::clone(&self.inner),
            queue,
        })
    }

    /// See [`PortId::mac_addr`].
    ///
    /// # Errors
    /// As there.
    pub fn mac_addr(&self) -> Result<MacAddr, DpdkError> {
        self.id().mac_addr()
    }

    /// See [`PortId::dev_info`].
    ///
    /// # Errors
    /// As there.
    pub fn dev_info(&self) -> Result<DevInfo, DpdkError> {
        self.id().dev_info()
    }

    /// See [`PortId::socket_id`].
    ///
    /// # Errors
    /// As there.
    pub fn socket_id(&self) -> Result<SocketId, DpdkError> {
        self.id().socket_id()
    }

    /// The port's counters.
    ///
    /// # Errors
    /// The driver's failure.
    pub fn stats(&self) -> Result<PortStats, DpdkError> {
        let mut s = sys::rte_eth_stats::default();
        // SAFETY: valid out pointer; stats_get is safe concurrently with bursts.
        unsafe { sys::rte_eth_stats_get(self.inner.id, &mut s) }.to_result("rte_eth_stats_get")?;
        Ok(PortStats {
            ipackets: s.ipackets,
            opackets: s.opackets,
            ibytes: s.ibytes,
            obytes: s.obytes,
            imissed: s.imissed,
            ierrors: s.ierrors,
            oerrors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        })
    }

    /// Zeroes the port's counters.
    ///
    /// # Errors
    /// The driver's failure.
    pub fn reset_stats(&self) -> Result<(), DpdkError> {
        // SAFETY: configured port.
        unsafe { sys::rte_eth_stats_reset(self.inner.id) }.to_result("rte_eth_stats_reset")?;
        Ok(())
    }

    /// Turns promiscuous mode on or off.
    ///
    /// # Errors
    /// `NotSupported` if the driver cannot; the driver's failure.
    pub fn promiscuous(&self, on: bool) -> Result<(), DpdkError> {
        // SAFETY: configured port.
        let rc = unsafe {
            if on {
                sys::rte_eth_promiscuous_enable(self.inner.id)
            } else {
                sys::rte_eth_promiscuous_disable(self.inner.id)
            }
        };
        rc.to_result("rte_eth_promiscuous_enable/disable")?;
        Ok(())
    }

    /// Whether promiscuous mode is on.
    #[must_use]
    pub fn is_promiscuous(&self) -> bool {
        // SAFETY: configured port; returns 1, 0 or -1 (invalid port).
        unsafe { sys::rte_eth_promiscuous_get(self.inner.id) == 1 }
    }

    /// The link state, without waiting (`rte_eth_link_get_nowait`).
    ///
    /// # Errors
    /// The driver's failure.
    pub fn link(&self) -> Result<Link, DpdkError> {
        let mut l = sys::rte_eth_link::default();
        // SAFETY: valid out pointer.
        unsafe { sys::rte_eth_link_get_nowait(self.inner.id, &mut l) }
            .to_result("rte_eth_link_get_nowait")?;
        Ok(Link {
            up: u32::from(l.link_status()) == sys::RTE_ETH_LINK_UP,
            speed_mbps: if l.link_speed == u32::MAX {
                0
            } else {
                l.link_speed
            },
            full_duplex: u32::from(l.link_duplex()) == sys::RTE_ETH_LINK_FULL_DUPLEX,
            autoneg: u32::from(l.link_autoneg()) == sys::RTE_ETH_LINK_AUTONEG,
        })
    }
}

/// The RSS hash functions to enable (`rss_conf.rss_hf`): IP and UDP as far as the device
/// offers them (`offered`, its `flow_type_rss_offloads`) when `conf` asks for RSS over more
/// than one RX queue; 0 (RSS off, `mq_mode` NONE) otherwise.
fn rss_hash_functions(conf: PortConf, offered: u64) -> u64 {
    if !conf.rss || conf.rx_queues < 2 {
        return 0;
    }
    (u64::from(sys::_RTE_ETH_RSS_IP) | u64::from(sys::_RTE_ETH_RSS_UDP)) & offered
}

fn take(flags: &[AtomicBool], port: u16, queue: u16) -> Result<(), DpdkError> {
    let flag = flags.get(usize::from(queue)).ok_or_else(|| {
        DpdkError::invalid(
            "queue",
            format!("port {port} has {} such queues, not {queue}", flags.len()),
        )
    })?;
    if flag.swap(true, Ordering::AcqRel) {
        return Err(DpdkError::QueueInUse { port, queue });
    }
    Ok(())
}

/// The one handle to an RX queue; `Send`, owned by one worker.
pub struct RxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RxQueue(port {}, queue {})", self.port.id, self.queue)
    }
}

impl RxQueue {
    /// Receives into the free tail of `burst` (`rte_eth_rx_burst`, up to
    /// `capacity - len` packets) and returns how many arrived. Allocates nothing; returns 0
    /// while the port is not started.
    #[inline]
    pub fn rx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (ptr, room) = burst.free_tail();
        // Before start DPDK's dummy burst function would log an error with a stack dump on
        // every call; a relaxed load per burst is cheaper than that.
        if room == 0 || !self.port.started.load(Ordering::Relaxed) {
            return 0;
        }
        // SAFETY: we hold the only handle to this queue (&mut self), so no other thread is in
        // rx_burst on it; ptr points to `room` writable pointer slots (all None/NULL, so none
        // is overwritten while owned); the driver writes `n <= room` owned mbufs.
        let n = unsafe { sys::_rte_eth_rx_burst(self.port.id, self.queue, ptr, room) };
        let n = usize::from(n.min(room));
        // SAFETY: the driver filled exactly n slots after len with valid, exclusively owned
        // mbufs.
        unsafe { burst.commit(n) };
        n
    }

    /// The port id.
    #[must_use]
    pub fn port_id(&self) -> PortId {
        PortId(self.port.id)
    }

    /// The queue id.
    #[must_use]
    pub fn queue_id(&self) -> u16 {
        self.queue
    }
}

impl Drop for RxQueue {
    fn drop(&mut self) {
        self.port.rx_taken[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

/// The one handle to a TX queue; `Send`, owned by one worker.
pub struct TxQueue {
    port: Arc<PortInner>,
    queue: u16,
}

impl fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TxQueue(port {}, queue {})", self.port.id, self.queue)
    }
}

impl TxQueue {
    /// Hands the burst's mbufs to the driver (`rte_eth_tx_burst`) and returns how many it
    /// took. Those leave the burst (the driver frees them after sending); the ones it refused
    /// (queue full) stay in `burst`, moved to the front, for the caller to retry or free
    /// (`burst.clear()`). Allocates and frees nothing. While the port is not started it takes
    /// nothing and returns 0.
    #[inline]
    pub fn tx_burst<const N: usize>(&mut self, burst: &mut Burst<N>) -> usize {
        let (ptr, len) = burst.used();
        if len == 0 || !self.port.started.load(Ordering::Relaxed) {
            return 0;
        }
        // SAFETY: we hold the only handle to this queue (&mut self); ptr points to `len` valid
        // owned mbufs; the driver takes ownership of the first n it returns.
        let n = unsafe { sys::_rte_eth_tx_burst(self.port.id, self.queue, ptr, len) };
        let n = usize::from(n.min(len));
        // SAFETY: the first n mbufs now belong to the driver.
        unsafe { burst.consume_front(n) };
        n
    }

    /// The port id.
    #[must_use]
    pub fn port_id(&self) -> PortId {
        PortId(self.port.id)
    }

    /// The queue id.
    #[must_use]
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// The checksum offloads enabled on this port (see [`Port::tx_offloads`]).
    #[must_use]
    pub fn tx_offloads(&self) -> TxOffloads {
        self.port.tx_offloads
    }
}

impl Drop for TxQueue {
    fn drop(&mut self) {
        self.port.tx_taken[usize::from(self.queue)].store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_hashes_ip_and_udp_as_far_as_offered() {
        let ip = u64::from(sys::_RTE_ETH_RSS_IP);
        let udp = u64::from(sys::_RTE_ETH_RSS_UDP);
        assert_ne!(ip, 0);
        assert_ne!(udp, 0);
        assert_eq!(ip & udp, 0, "disjoint bit sets");
        let conf = PortConf {
            rx_queues: 4,
            rss: true,
            ..PortConf::default()
        };
        assert_eq!(rss_hash_functions(conf, u64::MAX), ip | udp);
        // Only what the device offers (TCP bits and the like are never asked for).
        let ipv4_only = 1 << 2; // RTE_ETH_RSS_IPV4
        assert_eq!(rss_hash_functions(conf, ipv4_only | 1 << 4), ipv4_only);
        // A device without RSS (af_packet): off.
        assert_eq!(rss_hash_functions(conf, 0), 0);
        // Not asked for, or one queue: off.
        assert_eq!(
            rss_hash_functions(PortConf { rss: false, ..conf }, u64::MAX),
            0
        );
        assert_eq!(
            rss_hash_functions(
                PortConf {
                    rx_queues: 1,
                    ..conf
                },
                u64::MAX
            ),
            0
        );
        assert!(!PortConf::default().rss);
    }
}
