//! The configuration file (TOML).
//!
//! ```toml
//! [http]
//! listen = "127.0.0.1:8080"
//! [sip]
//! listen = "127.0.0.1:5060"            # UDP
//! trunk = "sip:127.0.0.1:5080"         # E.164 numbers go to sip:+NUMBER@<trunk host:port>
//! [media]
//! backend = "socket"
//! address = "127.0.0.1"
//! extra_addresses = []                 # optional: more media addresses, same ports on each
//! ports = "20000-29999"                # RTP even, RTCP odd
//! announcement = "prompts/hold.wav"    # optional; else built-in
//! [[business]]
//! id = "acme"
//! name = "ACME Corp"
//! [[agent]]
//! id = "alice"
//! contact = "sip:alice@127.0.0.1:15064"
//! businesses = ["acme"]
//! [lab]
//! endpoints = false
//! [store]
//! path = "callbridge.db"               # SQLite; relative to this file
//! ```
//!
//! With `media.backend = "dpdk"` a `[dpdk]` section is required (see [`DpdkConfig`]):
//!
//! ```toml
//! [media]
//! backend = "dpdk"
//! address = "198.18.0.1"               # owned by the DPDK port (IPv4 or IPv6)
//! [dpdk]
//! main_core = 0
//! worker_cores = [1]
//! devices = ["net_af_packet0,iface=veth0"]
//! ```
//!
//! Every section and every key not marked "required" may be left out; the defaults are those
//! documented on each field. Unknown keys are errors. Relative paths are relative to the
//! directory of the configuration file.
//!
//! Every error of [`Config::load`] displays as `FILE:LINE: KEY: reason`, e.g.
//! `callbridge.toml:12: agent[1].contact: "bob" is neither an E.164 number …`. `KEY` is a
//! dotted path; `[[business]]` and `[[agent]]` entries and array items are numbered from 0.
//! An unreadable file is reported at line 0 with the key `(file)`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::{Range, RangeInclusive};
use std::path::{Path, PathBuf};
use std::time::Duration;

use flows::{AgentId, BusinessId, SipUri, Target};
use serde::{Deserialize, Deserializer};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// `[http]`: the API and web page.
    #[serde(default)]
    pub(crate) http: HttpConfig,
    /// `[sip]`: signalling.
    #[serde(default)]
    pub(crate) sip: SipConfig,
    /// `[media]`: the data plane.
    #[serde(default)]
    pub(crate) media: MediaConfig,
    /// `[flow]`: ring times and retries.
    #[serde(default)]
    pub(crate) flow: FlowConfig,
    /// `[[business]]`: at least one is required; the first is the web page's default.
    #[serde(default)]
    pub(crate) business: Vec<BusinessConfig>,
    /// `[[agent]]`: the agents (CSRs).
    #[serde(default)]
    pub(crate) agent: Vec<AgentConfig>,
    /// `[lab]`: test helpers.
    #[serde(default)]
    pub(crate) lab: LabConfig,
    /// `[store]`: where requests, calls and records are kept.
    #[serde(default)]
    pub(crate) store: StoreConfig,
    /// `[limits]`: abuse limits on call requests.
    #[serde(default)]
    pub(crate) limits: LimitsConfig,
    /// `[dpdk]`: the DPDK backend (cores, devices, EAL). Required when `media.backend =
    /// "dpdk"`; checked whenever present. Default: absent.
    #[serde(default)]
    pub(crate) dpdk: Option<DpdkConfig>,
}

/// `[http]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct HttpConfig {
    /// `listen`: TCP address of the HTTP API and web page. Default `127.0.0.1:8080`.
    pub(crate) listen: SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
        }
    }
}

/// `[sip]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct SipConfig {
    /// `listen`: UDP address for SIP. Default `127.0.0.1:5060`.
    pub(crate) listen: SocketAddr,
    /// `trunk`: SIP URI of the carrier trunk / softswitch; E.164 numbers are called as
    /// `sip:+NUMBER@<trunk host:port>`. Default `sip:127.0.0.1:5080`.
    pub(crate) trunk: String,
    /// `user_agent`: the `User-Agent` / `Server` header value. Default `callbridge/<version>`.
    pub(crate) user_agent: String,
    /// `from_user`: the caller id (user part of `From`) shown to both parties. Default
    /// `callbridge`.
    pub(crate) from_user: String,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 5060)),
            trunk: "sip:127.0.0.1:5080".into(),
            user_agent: concat!("callbridge/", env!("CARGO_PKG_VERSION")).into(),
            from_user: "callbridge".into(),
        }
    }
}

/// `media.backend`: how the data plane does packet I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Backend {
    /// Ordinary UDP sockets (portable; the default).
    Socket,
    /// DPDK kernel bypass on dedicated cores; needs a `[dpdk]` section and a binary built with
    /// the `dpdk` cargo feature (see [`Config::check_build`]).
    Dpdk,
}

/// `dpdk.steering`: how several workers on one port get each datagram to the worker that
/// owns its UDP port (see `worker::steer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub(crate) enum SteeringKey {
    /// Flow rules where the device accepts them, software handoff for the rest (default).
    #[default]
    Auto,
    /// Flow rules required; the start fails if the device refuses them.
    Flow,
    /// No flow rules: RSS or the device's own spreading plus software handoff.
    Handoff,
}

impl SteeringKey {
    fn to_worker(self) -> worker::Steering {
        match self {
            Self::Auto => worker::Steering::Auto,
            Self::Flow => worker::Steering::Flow,
            Self::Handoff => worker::Steering::Handoff,
        }
    }
}

/// An inclusive UDP port range written `"FIRST-LAST"`: RTP on the even ports, RTCP on the
/// odd port above, so FIRST is even and LAST odd.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PortRange {
    /// First port (even).
    pub(crate) first: u16,
    /// Last port (odd).
    pub(crate) last: u16,
}

impl PortRange {
    /// Parses and checks `"FIRST-LAST"`.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub(crate) fn parse(s: &str) -> Result<Self, String> {
        let (a, b) = s.split_once('-').ok_or_else(|| {
            format!("{s:?} is not a port range; write it as \"FIRST-LAST\", e.g. \"20000-29999\"")
        })?;
        let port = |p: &str| {
            p.trim()
                .parse::<u16>()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| format!("{:?} is not a port number (1-65535)", p.trim()))
        };
        let (first, last) = (port(a)?, port(b)?);
        if first >= last {
            return Err(format!("the range {first}-{last} is empty or reversed; the first port must be below the last"));
        }
        if first % 2 != 0 {
            return Err(format!(
                "the range must start on an even port (RTP), not {first}"
            ));
        }
        if last % 2 == 0 {
            return Err(format!(
                "the range must end on an odd port (the RTCP port of the last pair), not {last}; \
                 it holds an odd number of ports"
            ));
        }
        Ok(Self { first, last })
    }

    /// The ports as a range.
    #[must_use]
    pub(crate) fn range(self) -> RangeInclusive<u16> {
        self.first..=self.last
    }

    /// How many RTP/RTCP pairs it holds.
    #[must_use]
    pub(crate) fn pairs(self) -> usize {
        usize::from(self.last - self.first) / 2 + 1
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `[media]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct MediaConfig {
    /// `backend`: `"socket"` (default) or `"dpdk"` (needs a `[dpdk]` section).
    pub(crate) backend: Backend,
    /// `address`: the relay's IP, bound and written into SDP (not `0.0.0.0`). Default
    /// `127.0.0.1`. With `backend = "dpdk"` it is the unicast address the DPDK port owns
    /// (it answers ARP and ICMP echo for it).
    pub(crate) address: IpAddr,
    /// `extra_addresses`: further media addresses after `address`, e.g. `["127.0.0.2"]`.
    /// Each carries the same `ports` again, so the legs a node holds grow with the addresses
    /// (one address holds one leg per RTP/RTCP pair). Leg address index `i` is `address` for
    /// 0 and `extra_addresses[i-1]` otherwise; legs fill the first address before the next.
    /// Each must be distinct, not unspecified, not `address`, of `address`'s family; at most
    /// `dp_api::MAX_ADDRESSES - 1` of them. With a `[dpdk]` section each must be unicast and
    /// inside `address/dpdk.prefix_len` (the port answers ARP/NDP and ping for all of them).
    /// Default none.
    pub(crate) extra_addresses: Vec<IpAddr>,
    /// `ports`: `"FIRST-LAST"`, even first, odd last. Default `"20000-29999"`.
    pub(crate) ports: PortRange,
    /// `announcement`: a WAV file (8 kHz mono) played while the agent is called; relative to
    /// the configuration file. Default: the built-in prompt. After [`Config::load`] the path
    /// is absolute (or as written when already absolute) and the file exists.
    pub(crate) announcement: Option<PathBuf>,
    /// `workers`: data-plane workers (threads / cores); the port range is split between them.
    /// Default 1. With `backend = "dpdk"` the number of workers is the number of
    /// `dpdk.worker_cores`: leave `workers` out or give that same number; after
    /// [`Config::load`] it holds that number.
    pub(crate) workers: usize,
    /// `cores`: CPU cores to pin the workers to, one per worker. Default: not pinned. Not used
    /// with `backend = "dpdk"` (use `dpdk.worker_cores`).
    pub(crate) cores: Option<Vec<usize>>,
    /// `learn_remote`: latch onto the first RTP source of each leg (symmetric RTP behind NAT).
    /// Default true.
    pub(crate) learn_remote: bool,
    /// `timeout_secs`: end a bridged call when a leg sends no RTP for this long; 0 disables.
    /// Default 30.
    pub(crate) timeout_secs: u64,
}

impl Default for MediaConfig {
    fn default() -> Self {
        Self {
            backend: Backend::Socket,
            address: IpAddr::V4(Ipv4Addr::LOCALHOST),
            extra_addresses: Vec::new(),
            ports: PortRange {
                first: 20000,
                last: 29999,
            },
            announcement: None,
            workers: 1,
            cores: None,
            learn_remote: true,
            timeout_secs: 30,
        }
    }
}

impl MediaConfig {
    /// Every media address in leg address-index order: `address`, then `extra_addresses`.
    #[must_use]
    pub(crate) fn addresses(&self) -> Vec<IpAddr> {
        std::iter::once(self.address)
            .chain(self.extra_addresses.iter().copied())
            .collect()
    }

    /// Checks `extra_addresses` against `address` (which is already known to be specified).
    fn validate_extra_addresses(&self) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: Vec<Seg>, reason: String| Err((segs, reason));
        let item = |i: usize| vec![key("media"), key("extra_addresses"), Seg::Index(i)];
        let max = dp_api::MAX_ADDRESSES - 1;
        if self.extra_addresses.len() > max {
            return at(
                vec![key("media"), key("extra_addresses")],
                format!(
                    "lists {} addresses; at most {max} (with media.address that makes the {} media addresses a \
                     node supports)",
                    self.extra_addresses.len(),
                    dp_api::MAX_ADDRESSES
                ),
            );
        }
        let family = |ip: IpAddr| if ip.is_ipv4() { "IPv4" } else { "IPv6" };
        for (i, &a) in self.extra_addresses.iter().enumerate() {
            if a.is_unspecified() {
                return at(
                    item(i),
                    format!(
                        "{a} cannot be written into SDP; give an address peers can send media to"
                    ),
                );
            }
            if a == self.address {
                return at(
                    item(i),
                    format!("{a} is media.address itself; list only the addresses after it"),
                );
            }
            if self.extra_addresses[..i].contains(&a) {
                return at(item(i), format!("{a} is listed twice"));
            }
            if a.is_ipv4() != self.address.is_ipv4() {
                return at(
                    item(i),
                    format!(
                        "{a} is {} but media.address {} is {}; all media addresses must be of one family",
                        family(a),
                        self.address,
                        family(self.address)
                    ),
                );
            }
        }
        Ok(())
    }

    /// How the flows create legs.
    #[must_use]
    pub(crate) fn policy(&self) -> flows::MediaPolicy {
        flows::MediaPolicy {
            learn_remote: self.learn_remote,
            src_mismatch: dp_api::SrcMismatch::Drop,
            media_timeout: (self.timeout_secs > 0).then(|| Duration::from_secs(self.timeout_secs)),
        }
    }
}

/// `[flow]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct FlowConfig {
    /// `customer_ring_secs`: how long the customer rings before we give up. Default 30.
    pub(crate) customer_ring_secs: u64,
    /// `agent_ring_secs`: how long an agent rings before the next one is tried. Default 20.
    pub(crate) agent_ring_secs: u64,
    /// `max_agent_attempts`: agents called per request before giving up. Default 3.
    pub(crate) max_agent_attempts: u32,
    /// `queue_timeout_secs`: how long a request waits for a free agent. Default 120.
    pub(crate) queue_timeout_secs: u64,
    /// `max_customer_attempts`: how many times one request may dial the customer, counting
    /// a call cut short by a restart (then retried). Default 3.
    pub(crate) max_customer_attempts: u32,
}

impl Default for FlowConfig {
    fn default() -> Self {
        Self {
            customer_ring_secs: 30,
            agent_ring_secs: 20,
            max_agent_attempts: 3,
            queue_timeout_secs: 120,
            max_customer_attempts: 3,
        }
    }
}

impl FlowConfig {
    /// The state machine's timers.
    #[must_use]
    pub(crate) fn timers(&self) -> flows::FlowTimers {
        flows::FlowTimers {
            customer_ring: Duration::from_secs(self.customer_ring_secs),
            agent_ring: Duration::from_secs(self.agent_ring_secs),
            max_agent_attempts: self.max_agent_attempts,
            queue_timeout: Duration::from_secs(self.queue_timeout_secs),
        }
    }
}

/// `[[business]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusinessConfig {
    /// `id` (required): `[A-Za-z0-9_.-]`, unique; used in `?business=` and API requests.
    pub(crate) id: BusinessId,
    /// `name` (required): shown on the web page.
    pub(crate) name: String,
}

/// `[[agent]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentConfig {
    /// `id` (required): unique.
    pub(crate) id: AgentId,
    /// `contact` (required): a SIP URI called directly, or an E.164 number sent to the trunk.
    pub(crate) contact: Target,
    /// `businesses`: the businesses this agent serves (ids of `[[business]]` entries). Default
    /// none: the agent is reachable only through `POST /v1/bridges`.
    #[serde(default)]
    pub(crate) businesses: Vec<BusinessId>,
}

/// `[limits]`: abuse limits on `POST /v1/call-requests` (0 turns one off). A refusal is
/// `429` with `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LimitsConfig {
    /// `per_number_per_hour`: requests to call one customer number per hour. Default 3.
    pub(crate) per_number_per_hour: u32,
    /// `per_ip_per_minute`: requests from one client address per minute (loopback is not
    /// counted). Default 10.
    pub(crate) per_ip_per_minute: u32,
    /// `per_business_per_minute`: requests for one business per minute. Default 600.
    pub(crate) per_business_per_minute: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            per_number_per_hour: 3,
            per_ip_per_minute: 10,
            per_business_per_minute: 600,
        }
    }
}

impl LimitsConfig {
    /// The rate limiter's settings.
    pub(crate) fn limits(&self) -> flows::limits::Limits {
        flows::limits::Limits {
            per_number_per_hour: self.per_number_per_hour,
            per_ip_per_minute: self.per_ip_per_minute,
            per_business_per_minute: self.per_business_per_minute,
            ..flows::limits::Limits::default()
        }
    }
}

/// `[store]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct StoreConfig {
    /// `path`: the SQLite database file (created on first run; WAL files beside it). Relative
    /// paths are relative to the configuration file's directory, or to the working directory
    /// with the built-in configuration. Default `callbridge.db`.
    pub(crate) path: PathBuf,
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            path: PathBuf::from("callbridge.db"),
        }
    }
}

/// `[lab]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LabConfig {
    /// `endpoints`: start the built-in lab SIP endpoints (test agents). Default false in a
    /// file; true only in the built-in configuration ([`Config::default`]).
    pub(crate) endpoints: bool,
}

/// `[dpdk]`: the DPDK data-plane backend, used when `media.backend = "dpdk"`.
///
/// The EAL runs its main lcore on `main_core` (keep the control plane and tokio there or on
/// other non-worker cores) and one worker per entry of `worker_cores`, each on its own
/// dedicated core. [`DpdkConfig::eal_args`] builds the EAL command line from these keys.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DpdkConfig {
    /// `main_core`: the EAL main lcore; not a worker core. Default 0.
    pub(crate) main_core: usize,
    /// `worker_cores`: one data-plane worker per core, distinct, not `main_core`, all online
    /// on this machine. Their number is the number of workers. Default `[1]`.
    pub(crate) worker_cores: Vec<usize>,
    /// `devices` (required, non-empty): DPDK devices, each a virtual device string starting
    /// `net_` (`"net_af_packet0,iface=veth0"`, `"net_null0"`, `"net_ring0"`) passed as
    /// `--vdev`, or a PCI address `DDDD:BB:DD.F` (`"0000:03:00.0"`) passed as `-a`; either
    /// may carry `,key=value` device arguments. Default none.
    pub(crate) devices: Vec<String>,
    /// `port`: the DPDK port index that carries media (ports are numbered in `devices`
    /// order). Default 0.
    pub(crate) port: u16,
    /// `prefix_len`: the on-link prefix length of `media.address` (1..=32 for IPv4, 1..=128 for
    /// IPv6). Default 24.
    pub(crate) prefix_len: u8,
    /// `gateway`: next hop for peers outside `media.address/prefix_len`; must be on-link and of
    /// `media.address`'s family.
    /// Default: none (only on-link peers are reachable).
    pub(crate) gateway: Option<IpAddr>,
    /// `no_huge`: run without hugepages (`--no-huge`; tests, virtual devices). Needs
    /// `memory_mb`. Default false.
    pub(crate) no_huge: bool,
    /// `memory_mb`: EAL memory in MB: `-m` with `no_huge`, else `--socket-mem` on
    /// `numa_node`. Required with `no_huge`; default: none (EAL allocates hugepage memory
    /// on demand).
    pub(crate) memory_mb: Option<u32>,
    /// `numa_node`: the NUMA node whose hugepages back `memory_mb` (the NIC's node). Only
    /// used with hugepages and `memory_mb`. Default 0.
    pub(crate) numa_node: usize,
    /// `mbufs`: mbufs per pool (a power of two minus one is the most efficient); at least
    /// `rx_desc + tx_desc + 2 * burst`. Default 8191.
    pub(crate) mbufs: u32,
    /// `rx_desc`: RX descriptors per queue, a power of two in 64..=4096. Default 1024.
    pub(crate) rx_desc: u16,
    /// `tx_desc`: TX descriptors per queue, a power of two in 64..=4096. Default 1024.
    pub(crate) tx_desc: u16,
    /// `burst`: packets per RX/TX burst, 1..=64. Default 32.
    pub(crate) burst: usize,
    /// `file_prefix`: EAL `--file-prefix`, unique per DPDK process on one host (letters,
    /// digits, `-`, `_`). Default `"callbridge"`.
    pub(crate) file_prefix: String,
    /// `eal_args`: extra EAL arguments appended verbatim (e.g. `["--log-level",
    /// "pmd.net.*:debug"]`); arguments the keys above already set are refused. Default none.
    pub(crate) eal_args: Vec<String>,
    /// `steering`: with several `worker_cores`, how datagrams reach the worker owning their
    /// port: `"auto"` (flow rules where the device accepts them, else software handoff;
    /// default), `"flow"` (flow rules required: the start fails if the device refuses them),
    /// `"handoff"` (no flow rules; RSS or the device's spreading plus software handoff).
    /// Ignored with one worker.
    pub(crate) steering: SteeringKey,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        Self {
            main_core: 0,
            worker_cores: vec![1],
            devices: Vec::new(),
            port: 0,
            prefix_len: 24,
            gateway: None,
            no_huge: false,
            memory_mb: None,
            numa_node: 0,
            mbufs: 8191,
            rx_desc: 1024,
            tx_desc: 1024,
            burst: 32,
            file_prefix: "callbridge".into(),
            eal_args: Vec::new(),
            steering: SteeringKey::Auto,
        }
    }
}

/// Whether `ip` can be owned by a DPDK port: unicast, not loopback, not unspecified.
fn port_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => {
            !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.is_loopback())
        }
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast() || a.is_loopback()),
    }
}

/// What a `dpdk.devices` entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DeviceKind {
    /// A virtual device (`net_…`), passed as `--vdev`.
    Vdev,
    /// A PCI device (`DDDD:BB:DD.F`), passed as `-a`.
    Pci,
}

/// Classifies a `dpdk.devices` entry.
///
/// # Errors
/// A sentence saying why it is neither a vdev string nor a PCI address.
pub(crate) fn device_kind(dev: &str) -> Result<DeviceKind, String> {
    let name = dev.split(',').next().unwrap_or("");
    if let Some(driver) = name.strip_prefix("net_") {
        if driver.is_empty()
            || !driver
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(format!("{dev:?}: {name:?} is not a virtual device name (net_ followed by letters, digits, _)"));
        }
        return Ok(DeviceKind::Vdev);
    }
    let hex = |s: &str, n: usize| s.len() == n && s.chars().all(|c| c.is_ascii_hexdigit());
    let pci = name.split_once(':').and_then(|(dom, rest)| {
        let (bus, rest) = rest.split_once(':')?;
        let (slot, func) = rest.split_once('.')?;
        (hex(dom, 4)
            && hex(bus, 2)
            && hex(slot, 2)
            && matches!(func, "0" | "1" | "2" | "3" | "4" | "5" | "6" | "7"))
        .then_some(())
    });
    if pci.is_some() {
        return Ok(DeviceKind::Pci);
    }
    Err(format!(
        "{dev:?} is neither a virtual device (\"net_null0\", \"net_af_packet0,iface=veth0\") nor a PCI address \
         DDDD:BB:DD.F (\"0000:03:00.0\"; see `scripts/bind-nic status`)"
    ))
}

/// EAL options that `[dpdk]` keys set; `dpdk.eal_args` may not repeat them.
const EAL_ARGS_FROM_KEYS: &[(&str, &str)] = &[
    ("-l", "main_core/worker_cores"),
    ("--lcores", "main_core/worker_cores"),
    ("-c", "main_core/worker_cores"),
    ("--main-lcore", "main_core"),
    ("--file-prefix", "file_prefix"),
    ("--vdev", "devices"),
    ("-a", "devices"),
    ("--allow", "devices"),
    ("--no-pci", "devices"),
    ("--no-huge", "no_huge"),
    ("-m", "memory_mb"),
    ("--socket-mem", "memory_mb"),
];

impl DpdkConfig {
    /// The data plane's DPDK settings for these keys. Workers are std threads pinned to
    /// `worker_cores` and registered with EAL (`rte_thread_register`), so EAL's `-l` lists
    /// only the main core.
    #[must_use]
    pub(crate) fn settings(&self) -> worker::DpdkSettings {
        // DPDK registers a vdev under the name before its arguments
        // (`net_af_packet0,iface=eth1` is port `net_af_packet0`).
        let port = self.devices.get(usize::from(self.port)).map_or_else(
            || self.port.to_string(),
            |d| d.split(',').next().unwrap_or_default().to_owned(),
        );
        let mut s = worker::DpdkSettings::new(self.devices.clone(), port);
        s.lcores = self.main_core.to_string();
        s.no_huge_mb = self.no_huge.then(|| self.memory_mb.unwrap_or(512));
        s.socket_mem = match (self.no_huge, self.memory_mb) {
            (false, Some(mb)) => Some(
                (0..=self.numa_node)
                    .map(|n| {
                        if n == self.numa_node {
                            mb.to_string()
                        } else {
                            "0".into()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            _ => None,
        };
        s.file_prefix = Some(self.file_prefix.clone());
        s.extra_args.clone_from(&self.eal_args);
        s.mbufs = self.mbufs;
        s.rx_desc = self.rx_desc;
        s.tx_desc = self.tx_desc;
        s.prefix_len = self.prefix_len;
        s.gateway = self.gateway;
        s.steering = self.steering.to_worker();
        s
    }

    /// The EAL argument vector (without a program name) the data plane will use: `-l MAIN`,
    /// then `--vdev DEV` / `-a PCI` per device, `--no-pci` when every device is virtual,
    /// `--no-huge -m N` (or `--socket-mem` on `numa_node` when `memory_mb` is set with
    /// hugepages), `--file-prefix P`, then `eal_args` verbatim.
    #[must_use]
    pub(crate) fn eal_args(&self) -> Vec<String> {
        self.settings().eal_args()
    }

    /// Whether `ip` is inside `address/prefix_len` (on-link); never across families.
    #[must_use]
    pub(crate) fn on_link(&self, address: IpAddr, ip: IpAddr) -> bool {
        let p = u32::from(self.prefix_len);
        match (address, ip) {
            (IpAddr::V4(a), IpAddr::V4(b)) => {
                let mask = if p == 0 {
                    0
                } else {
                    u32::MAX << (32 - p.min(32))
                };
                u32::from(a) & mask == u32::from(b) & mask
            }
            (IpAddr::V6(a), IpAddr::V6(b)) => {
                let mask = if p == 0 {
                    0
                } else {
                    u128::MAX << (128 - p.min(128))
                };
                u128::from(a) & mask == u128::from(b) & mask
            }
            _ => false,
        }
    }

    fn validate(
        &self,
        media: &MediaConfig,
        workers_given: bool,
        cpus: &CpuSet,
    ) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
        let d = |k: &str| vec![key("dpdk"), key(k)];
        let d_i = |k: &str, i: usize| vec![key("dpdk"), key(k), Seg::Index(i)];
        if !cpus.contains(self.main_core) {
            return at(
                &d("main_core"),
                format!(
                    "core {} is not online on this machine (online: {cpus})",
                    self.main_core
                ),
            );
        }
        if self.worker_cores.is_empty() {
            return at(&d("worker_cores"), "give at least one worker core".into());
        }
        for (i, &c) in self.worker_cores.iter().enumerate() {
            if c == self.main_core {
                return at(
                    &d_i("worker_cores", i),
                    format!("core {c} is the main core; workers need dedicated cores other than main_core"),
                );
            }
            if self.worker_cores[..i].contains(&c) {
                return at(
                    &d_i("worker_cores", i),
                    format!("core {c} is listed twice; one worker per core"),
                );
            }
            if !cpus.contains(c) {
                return at(
                    &d_i("worker_cores", i),
                    format!("core {c} is not online on this machine (online: {cpus})"),
                );
            }
        }
        let n = self.worker_cores.len();
        if workers_given && media.workers != n {
            return at(
                &[key("media"), key("workers")],
                format!(
                    "is {} but dpdk.worker_cores lists {n} cores; with the dpdk backend there is one worker per \
                     worker core, so leave media.workers out or set it to {n}",
                    media.workers
                ),
            );
        }
        if n > media.ports.pairs() {
            return at(
                &d("worker_cores"),
                format!(
                    "{n} workers cannot share the {} port pairs of {}",
                    media.ports.pairs(),
                    media.ports
                ),
            );
        }
        if media.cores.is_some() {
            return at(
                &[key("media"), key("cores")],
                "is not used with the dpdk backend; list the cores in dpdk.worker_cores".into(),
            );
        }
        if self.devices.is_empty() {
            return at(
                &d("devices"),
                "give at least one device, e.g. devices = [\"0000:03:00.0\"] or [\"net_af_packet0,iface=veth0\"]".into(),
            );
        }
        for (i, dev) in self.devices.iter().enumerate() {
            if let Err(e) = device_kind(dev) {
                return at(&d_i("devices", i), e);
            }
            let name = |s: &str| s.split(',').next().unwrap_or("").to_owned();
            if self.devices[..i].iter().any(|o| name(o) == name(dev)) {
                return at(
                    &d_i("devices", i),
                    format!("device {:?} is listed twice", name(dev)),
                );
            }
        }
        if usize::from(self.port) >= self.devices.len() {
            return at(
                &d("port"),
                format!(
                    "port {} does not exist: {} device(s) give ports 0..={}",
                    self.port,
                    self.devices.len(),
                    self.devices.len() - 1
                ),
            );
        }
        let addr = media.address;
        if !port_unicast(addr) {
            return at(
                &[key("media"), key("address")],
                format!("{addr} cannot be the address of a DPDK port; give a unicast address"),
            );
        }
        let max_prefix = if addr.is_ipv4() { 32 } else { 128 };
        if !(1..=max_prefix).contains(&self.prefix_len) {
            return at(
                &d("prefix_len"),
                format!(
                    "{} is not a prefix length for {} (1..={max_prefix})",
                    self.prefix_len,
                    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
                ),
            );
        }
        for (i, &x) in media.extra_addresses.iter().enumerate() {
            let item = || vec![key("media"), key("extra_addresses"), Seg::Index(i)];
            if !port_unicast(x) {
                return at(
                    &item(),
                    format!("{x} cannot be an address of a DPDK port; give a unicast address"),
                );
            }
            if x.is_ipv4() != addr.is_ipv4() {
                let fam = |a: IpAddr| if a.is_ipv4() { "IPv4" } else { "IPv6" };
                return at(
                    &item(),
                    format!(
                        "{x} is {} but media.address {addr} is {}; one DPDK port runs one family",
                        fam(x),
                        fam(addr)
                    ),
                );
            }
            if !self.on_link(addr, x) {
                return at(
                    &item(),
                    format!(
                        "{x} is outside {addr}/{}; the DPDK port owns every media address on one link, so each must \
                         be inside media.address/dpdk.prefix_len",
                        self.prefix_len
                    ),
                );
            }
            if self.gateway == Some(x) {
                return at(
                    &item(),
                    format!("{x} is dpdk.gateway; a media address cannot be the router's"),
                );
            }
        }
        if let Some(gw) = self.gateway {
            if gw.is_ipv4() != addr.is_ipv4() {
                return at(
                    &d("gateway"),
                    format!("{gw} is not of media.address's family ({addr})"),
                );
            }
            if gw == addr {
                return at(
                    &d("gateway"),
                    format!("{gw} is media.address itself; give the router's address"),
                );
            }
            if !self.on_link(addr, gw) {
                return at(
                    &d("gateway"),
                    format!("{gw} is not on-link: it is outside {addr}/{}; the gateway must be inside that network", self.prefix_len),
                );
            }
        }
        if self.no_huge && self.memory_mb.is_none() {
            return at(
                &d("no_huge"),
                "no_huge = true needs memory_mb (e.g. memory_mb = 512)".into(),
            );
        }
        if self.memory_mb == Some(0) {
            return at(&d("memory_mb"), "must be at least 1".into());
        }
        if !(1..=64).contains(&self.burst) {
            return at(
                &d("burst"),
                format!("{} is out of range 1..=64", self.burst),
            );
        }
        for (name, v) in [("rx_desc", self.rx_desc), ("tx_desc", self.tx_desc)] {
            if !v.is_power_of_two() || !(64..=4096).contains(&v) {
                return at(
                    &d(name),
                    format!("{v} is not a power of two in 64..=4096 (e.g. 512, 1024, 2048)"),
                );
            }
        }
        let per = u32::from(self.rx_desc) + u32::from(self.tx_desc) + 2 * self.burst as u32;
        let workers = self.worker_cores.len().max(1) as u32;
        let need = per * workers;
        if self.mbufs < need {
            let what = if workers == 1 {
                "rx_desc + tx_desc + 2 * burst".to_owned()
            } else {
                format!("{workers} worker cores x (rx_desc + tx_desc + 2 * burst)")
            };
            return at(
                &d("mbufs"),
                format!(
                    "{} mbufs cannot fill {what} = {need}; give at least that (e.g. {})",
                    self.mbufs,
                    (need + 1).next_power_of_two().max(8192) - 1
                ),
            );
        }
        if self.file_prefix.is_empty()
            || !self
                .file_prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return at(
                &d("file_prefix"),
                format!(
                    "{:?} must be non-empty letters, digits, - and _",
                    self.file_prefix
                ),
            );
        }
        for (i, a) in self.eal_args.iter().enumerate() {
            let flag = a.split('=').next().unwrap_or("");
            if let Some((_, k)) = EAL_ARGS_FROM_KEYS.iter().find(|(f, _)| *f == flag) {
                return at(
                    &d_i("eal_args", i),
                    format!("{flag} is set from dpdk.{k}; use that key instead"),
                );
            }
            if a.is_empty() {
                return at(&d_i("eal_args", i), "empty argument".into());
            }
        }
        Ok(())
    }
}

/// A set of CPU ids, parsed from a kernel cpulist like `0-3,8,10-11`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CpuSet(pub(crate) Vec<usize>);

impl CpuSet {
    /// Parses a kernel cpulist (`0-3,8`, `1-7:2/4` group syntax included); empty text is the
    /// empty set.
    ///
    /// # Errors
    /// The item that is not a cpu or range.
    pub(crate) fn parse(list: &str) -> Result<Self, String> {
        let mut cpus = Vec::new();
        for item in list
            .trim()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            let (range, group) = match item.split_once(':') {
                Some((r, g)) => (r, Some(g)),
                None => (item, None),
            };
            let num = |s: &str| {
                s.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{item:?} is not a cpu list item"))
            };
            let (a, b) = match range.split_once('-') {
                Some((a, b)) => (num(a)?, num(b)?),
                None => (num(range)?, num(range)?),
            };
            if a > b {
                return Err(format!("{item:?} is a reversed range"));
            }
            let (used, size) = match group.map(|g| g.split_once('/')) {
                None => (1, 1),
                Some(Some((u, s))) => (num(u)?, num(s)?.max(1)),
                Some(None) => return Err(format!("{item:?} is not a cpu list item")),
            };
            cpus.extend((a..=b).filter(|c| (c - a) % size < used));
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(Self(cpus))
    }

    /// The cores online on this machine: `/sys/devices/system/cpu/online`, else
    /// `0..available_parallelism`.
    #[must_use]
    pub(crate) fn online() -> Self {
        std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| Self::parse(&s).ok())
            .filter(|s| !s.0.is_empty())
            .unwrap_or_else(|| {
                Self((0..std::thread::available_parallelism().map_or(1, usize::from)).collect())
            })
    }

    /// Whether `cpu` is in the set.
    #[must_use]
    pub(crate) fn contains(&self, cpu: usize) -> bool {
        self.0.binary_search(&cpu).is_ok()
    }
}

impl fmt::Display for CpuSet {
    /// The compact kernel form, e.g. `0-3,8`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end += 1;
            }
            if !first {
                f.write_str(",")?;
            }
            first = false;
            if start == end {
                write!(f, "{start}")?;
            } else {
                write!(f, "{start}-{end}")?;
            }
            i += 1;
        }
        if first {
            f.write_str("(none)")?;
        }
        Ok(())
    }
}

impl Default for Config {
    /// The built-in configuration: everything on loopback, business `demo`, agents `alice`
    /// and `bob`, lab endpoints on.
    fn default() -> Self {
        let id = |s: &str| BusinessId::new(s).unwrap_or_else(|_| unreachable!("valid literal"));
        let agent = |name: &str, port: u16| AgentConfig {
            id: AgentId::new(name).unwrap_or_else(|_| unreachable!("valid literal")),
            contact: Target::Sip(format!("sip:{name}@127.0.0.1:{port}")),
            businesses: vec![id("demo")],
        };
        Self {
            http: HttpConfig::default(),
            sip: SipConfig::default(),
            media: MediaConfig::default(),
            flow: FlowConfig::default(),
            business: vec![BusinessConfig {
                id: id("demo"),
                name: "Demo Business".into(),
            }],
            agent: vec![agent("alice", 15064), agent("bob", 15066)],
            lab: LabConfig { endpoints: true },
            store: StoreConfig::default(),
            limits: LimitsConfig::default(),
            dpdk: None,
        }
    }
}

// ---- errors ------------------------------------------------------------------------------

/// What kind of problem a [`ConfigError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConfigErrorKind {
    /// The file could not be read.
    Io,
    /// Not valid TOML.
    Syntax,
    /// Valid TOML that does not fit the schema: unknown key, missing key, wrong type or an
    /// unparsable value.
    Schema,
    /// Fits the schema but makes no sense (duplicates, unknown references, missing files, …).
    Invalid,
}

/// A configuration error, displayed as `FILE:LINE: KEY: reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ConfigError {
    /// The file.
    pub(crate) file: PathBuf,
    /// 1-based line (0 when the file could not be read).
    pub(crate) line: usize,
    /// Dotted key path, e.g. `media.ports` or `agent[1].contact`.
    pub(crate) key: String,
    /// What is wrong.
    pub(crate) reason: String,
    /// The class of problem.
    pub(crate) kind: ConfigErrorKind,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.key,
            self.reason
        )
    }
}

impl std::error::Error for ConfigError {}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render_path(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    if s.is_empty() {
        "(top level)".into()
    } else {
        s
    }
}

fn key(k: &str) -> Seg {
    Seg::Key(k.to_owned())
}

// ---- loading -----------------------------------------------------------------------------

impl Config {
    /// Reads, parses and validates a configuration file.
    ///
    /// # Errors
    /// A [`ConfigError`] (`FILE:LINE: KEY: reason`) for the first problem found.
    pub(crate) fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            file: path.to_owned(),
            line: 0,
            key: "(file)".into(),
            reason: format!("cannot read the configuration file: {e}"),
            kind: ConfigErrorKind::Io,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates configuration text as if read from `file` (used for error
    /// messages and to resolve relative paths).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub(crate) fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        Self::parse_on(text, file, &CpuSet::online())
    }

    /// [`Config::parse`] checking `dpdk` cores against `cpus` instead of this machine's.
    fn parse_on(text: &str, file: &Path, cpus: &CpuSet) -> Result<Self, ConfigError> {
        let err = |offset: Option<usize>, key: String, reason: String, kind| ConfigError {
            file: file.to_owned(),
            line: offset.map_or(1, |o| line_of(text, o)),
            key,
            reason,
            kind,
        };
        let doc = match toml_edit::ImDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let off = e.span().map_or(0, |s| s.start);
                let reason = e.message().trim().replace('\n', "; ");
                return Err(err(
                    Some(off),
                    syntax_key(text, off),
                    reason,
                    ConfigErrorKind::Syntax,
                ));
            }
        };
        let mut config: Self = match toml::from_str(text) {
            Ok(c) => c,
            Err(e) => {
                let off = e.span().map(|s| s.start);
                let mut path = off
                    .and_then(|o| locate(doc.as_item(), o))
                    .unwrap_or_default();
                let msg = e.message().trim().replace('\n', "; ");
                if let Some(missing) = backticked(&msg, "missing field ") {
                    path.push(key(missing));
                }
                return Err(err(off, render_path(&path), msg, ConfigErrorKind::Schema));
            }
        };
        let dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
        let workers_given = doc.get("media").and_then(|m| m.get("workers")).is_some();
        if let Err((path, reason)) = config.validate_on(&dir, workers_given, cpus) {
            let span = span_of(doc.as_item(), &path);
            return Err(err(
                span.map(|s| s.start),
                render_path(&path),
                reason,
                ConfigErrorKind::Invalid,
            ));
        }
        Ok(config)
    }

    /// Whether this binary can run the configured backend: `Err` with a sentence when
    /// `media.backend = "dpdk"` but the binary was built without the `dpdk` cargo feature.
    /// `serve` calls this before starting the data plane.
    ///
    /// # Errors
    /// The sentence to print.
    pub(crate) fn check_build(&self) -> Result<(), String> {
        if self.media.backend == Backend::Dpdk && !cfg!(feature = "dpdk") {
            return Err("media.backend = \"dpdk\" but this callbridge was built without DPDK support; \
                        rebuild with `cargo build --release -p callbridge --features dpdk` (needs libdpdk-dev) \
                        or use backend = \"socket\""
                .into());
        }
        Ok(())
    }

    /// Semantic checks against this machine; resolves the announcement path against `dir`.
    #[cfg(test)]
    fn validate(&mut self, dir: &Path) -> Result<(), (Vec<Seg>, String)> {
        self.validate_on(dir, true, &CpuSet::online())
    }

    /// Semantic checks; resolves the announcement path against `dir`. `workers_given`: whether
    /// the file sets `media.workers`; `cpus`: the online cores. With the dpdk backend,
    /// `media.workers` becomes the number of worker cores.
    fn validate_on(
        &mut self,
        dir: &Path,
        workers_given: bool,
        cpus: &CpuSet,
    ) -> Result<(), (Vec<Seg>, String)> {
        let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
        if let Err(e) = SipUri::parse(&self.sip.trunk) {
            return at(&[key("sip"), key("trunk")], e.to_string());
        }
        if self.sip.user_agent.trim().is_empty() || self.sip.user_agent.contains(['\r', '\n']) {
            return at(
                &[key("sip"), key("user_agent")],
                "must be a non-empty single line".into(),
            );
        }
        let user_ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,".contains(c);
        if self.sip.from_user.is_empty() || !self.sip.from_user.chars().all(user_ok) {
            return at(
                &[key("sip"), key("from_user")],
                format!("{:?} is not a valid SIP user part (letters, digits, + and -_.!~*'()&=$, allowed)", self.sip.from_user),
            );
        }
        if let Some(d) = &self.dpdk {
            d.validate(&self.media, workers_given, cpus)?;
            if self.media.backend == Backend::Dpdk {
                self.media.workers = d.worker_cores.len();
            }
        } else if self.media.backend == Backend::Dpdk {
            return at(
                &[key("media"), key("backend")],
                "backend = \"dpdk\" needs a [dpdk] section (at least `devices`; see the Operators section of the README)"
                    .into(),
            );
        }
        let m = &self.media;
        if m.address.is_unspecified() {
            return at(
                &[key("media"), key("address")],
                format!(
                    "{} cannot be written into SDP; give the address peers should send media to",
                    m.address
                ),
            );
        }
        m.validate_extra_addresses()?;
        if m.workers == 0 {
            return at(&[key("media"), key("workers")], "must be at least 1".into());
        }
        if m.workers > m.ports.pairs() {
            return at(
                &[key("media"), key("workers")],
                format!(
                    "{} workers cannot share the {} port pairs of {}",
                    m.workers,
                    m.ports.pairs(),
                    m.ports
                ),
            );
        }
        if let Some(cores) = &m.cores {
            if cores.len() != m.workers {
                return at(
                    &[key("media"), key("cores")],
                    format!(
                        "lists {} cores for {} workers; give exactly one core per worker",
                        cores.len(),
                        m.workers
                    ),
                );
            }
            for (i, c) in cores.iter().enumerate() {
                if cores[..i].contains(c) {
                    return at(
                        &[key("media"), key("cores"), Seg::Index(i)],
                        format!("core {c} is listed twice"),
                    );
                }
            }
        }
        if self.store.path.as_os_str().is_empty() {
            return at(&[key("store"), key("path")], "must name a file".into());
        }
        if self.store.path.is_relative() {
            self.store.path = dir.join(&self.store.path);
        }
        if self.store.path.is_dir() {
            return at(
                &[key("store"), key("path")],
                format!(
                    "{} is a directory; name the database file",
                    self.store.path.display()
                ),
            );
        }
        if let Some(p) = &self.media.announcement {
            let full = if p.is_absolute() {
                p.clone()
            } else {
                dir.join(p)
            };
            if !full.is_file() {
                return at(
                    &[key("media"), key("announcement")],
                    format!("file not found: {} (relative paths are relative to the configuration file)", full.display()),
                );
            }
            self.media.announcement = Some(full);
        }
        let f = &self.flow;
        for (name, v) in [
            ("customer_ring_secs", f.customer_ring_secs),
            ("agent_ring_secs", f.agent_ring_secs),
            ("max_agent_attempts", u64::from(f.max_agent_attempts)),
            ("queue_timeout_secs", f.queue_timeout_secs),
            ("max_customer_attempts", u64::from(f.max_customer_attempts)),
        ] {
            if v == 0 {
                return at(&[key("flow"), key(name)], "must be at least 1".into());
            }
        }
        if self.business.is_empty() {
            return at(
                &[key("business")],
                "at least one [[business]] is required".into(),
            );
        }
        for (i, b) in self.business.iter().enumerate() {
            if self.business[..i].iter().any(|o| o.id == b.id) {
                return at(
                    &[key("business"), Seg::Index(i), key("id")],
                    format!("duplicate business id \"{}\"", b.id),
                );
            }
            if b.name.trim().is_empty() {
                return at(
                    &[key("business"), Seg::Index(i), key("name")],
                    "must not be empty".into(),
                );
            }
        }
        for (i, a) in self.agent.iter().enumerate() {
            if self.agent[..i].iter().any(|o| o.id == a.id) {
                return at(
                    &[key("agent"), Seg::Index(i), key("id")],
                    format!("duplicate agent id \"{}\"", a.id),
                );
            }
            for (j, b) in a.businesses.iter().enumerate() {
                if !self.business.iter().any(|x| &x.id == b) {
                    return at(
                        &[
                            key("agent"),
                            Seg::Index(i),
                            key("businesses"),
                            Seg::Index(j),
                        ],
                        format!("unknown business \"{b}\"; declare it in a [[business]] section"),
                    );
                }
                if a.businesses[..j].contains(b) {
                    return at(
                        &[
                            key("agent"),
                            Seg::Index(i),
                            key("businesses"),
                            Seg::Index(j),
                        ],
                        format!("business \"{b}\" is listed twice"),
                    );
                }
            }
        }
        Ok(())
    }
}

// ---- positions ---------------------------------------------------------------------------

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// `name` from a message like "missing field `name`".
fn backticked<'a>(msg: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = msg.strip_prefix(prefix)?.strip_prefix('`')?;
    rest.split_once('`').map(|(name, _)| name)
}

fn contains(span: Option<Range<usize>>, off: usize) -> bool {
    span.is_some_and(|s| s.start <= off && off < s.end.max(s.start + 1))
}

/// The path of the deepest key or value whose text holds `off`.
fn locate(item: &toml_edit::Item, off: usize) -> Option<Vec<Seg>> {
    use toml_edit::{Item, Value};
    let prefixed = |seg: Seg, mut p: Vec<Seg>| {
        p.insert(0, seg);
        p
    };
    match item {
        Item::Table(t) => {
            for (k, _) in t.iter() {
                let Some((kk, child)) = t.get_key_value(k) else {
                    continue;
                };
                if let Some(p) = locate(child, off) {
                    return Some(prefixed(key(k), p));
                }
                if contains(kk.span(), off) {
                    return Some(vec![key(k)]);
                }
            }
        }
        Item::ArrayOfTables(a) => {
            for (i, t) in a.iter().enumerate() {
                for (k, _) in t.iter() {
                    let Some((kk, child)) = t.get_key_value(k) else {
                        continue;
                    };
                    if let Some(p) = locate(child, off) {
                        return Some(vec![Seg::Index(i), key(k)].into_iter().chain(p).collect());
                    }
                    if contains(kk.span(), off) {
                        return Some(vec![Seg::Index(i), key(k)]);
                    }
                }
                if contains(t.span(), off) {
                    return Some(vec![Seg::Index(i)]);
                }
            }
        }
        Item::Value(Value::InlineTable(t)) => {
            for (k, _) in t.iter() {
                let Some((kk, child)) = t.get_key_value(k) else {
                    continue;
                };
                if let Some(p) = locate(child, off) {
                    return Some(prefixed(key(k), p));
                }
                if contains(kk.span(), off) {
                    return Some(vec![key(k)]);
                }
            }
        }
        Item::Value(Value::Array(arr)) => {
            for (i, v) in arr.iter().enumerate() {
                if contains(v.span(), off) {
                    return Some(vec![Seg::Index(i)]);
                }
            }
        }
        _ => {}
    }
    contains(item.span(), off).then(Vec::new)
}

/// The span of a key path: the last key's text (or the array item / table header). Falls
/// back to the nearest ancestor present in the text.
fn span_of(root: &toml_edit::Item, path: &[Seg]) -> Option<Range<usize>> {
    (1..=path.len())
        .rev()
        .find_map(|n| span_exact(root, &path[..n]))
}

fn span_exact(item: &toml_edit::Item, path: &[Seg]) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    let Some((seg, rest)) = path.split_first() else {
        return item.span();
    };
    match (seg, item) {
        (Seg::Key(k), Item::Table(t)) => span_key(t.get_key_value(k), rest),
        (Seg::Key(k), Item::Value(Value::InlineTable(t))) => span_key(t.get_key_value(k), rest),
        (Seg::Index(i), Item::ArrayOfTables(a)) => {
            let t = a.get(*i)?;
            match rest.split_first() {
                None => t.span(),
                Some((Seg::Key(k), tail)) => span_key(t.get_key_value(k), tail),
                Some(_) => None,
            }
        }
        (Seg::Index(i), Item::Value(Value::Array(a))) if rest.is_empty() => a.get(*i)?.span(),
        _ => None,
    }
}

fn span_key(kv: Option<(&toml_edit::Key, &toml_edit::Item)>, rest: &[Seg]) -> Option<Range<usize>> {
    let (k, child) = kv?;
    if rest.is_empty() {
        k.span().or_else(|| child.span())
    } else {
        span_exact(child, rest)
    }
}

/// A best-effort key path for a syntax error: the key on the error's line (or the table
/// header it is in), prefixed by the table it belongs to.
fn syntax_key(text: &str, off: usize) -> String {
    let line_no = line_of(text, off);
    let mut table = String::new();
    for (n, line) in text.lines().enumerate() {
        let l = line.trim();
        if n + 1 == line_no {
            if l.starts_with('[') {
                let name = l
                    .trim_start_matches('[')
                    .split(']')
                    .next()
                    .unwrap_or("")
                    .trim();
                return if name.is_empty() {
                    "(table header)".into()
                } else {
                    name.into()
                };
            }
            if let Some((k, _)) = l.split_once('=') {
                let k = k.trim().trim_matches('"');
                if !k.is_empty() && !k.contains(char::is_whitespace) {
                    return if table.is_empty() {
                        k.into()
                    } else {
                        format!("{table}.{k}")
                    };
                }
            }
            return if table.is_empty() {
                "(top level)".into()
            } else {
                table
            };
        }
        if l.starts_with('[') {
            table = l
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim()
                .to_owned();
        }
    }
    "(end of file)".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const FULL: &str = r#"[http]
listen = "127.0.0.1:8080"
[sip]
listen = "127.0.0.1:5060"            # UDP
trunk = "sip:127.0.0.1:5080"
[media]
backend = "socket"
address = "127.0.0.1"
ports = "20000-29999"
[[business]]
id = "acme"
name = "ACME Corp"
[[agent]]
id = "alice"
contact = "sip:alice@127.0.0.1:15064"
businesses = ["acme"]
[lab]
endpoints = false
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("/etc/callbridge/cb.toml"))
    }

    /// Parses `text` expecting an error and returns its display.
    fn fail(text: &str) -> String {
        match parse(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn assert_prefix(text: &str, prefix: &str) -> String {
        let e = fail(text);
        assert!(
            e.starts_with(&format!("/etc/callbridge/cb.toml:{prefix}")),
            "{e:?} should start with {prefix:?}"
        );
        e
    }

    /// `FULL` with line `n` (1-based) replaced.
    fn with_line(n: usize, line: &str) -> String {
        FULL.lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == n { line } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn the_documented_example_loads() {
        let c = parse(FULL).unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(c.sip.trunk, "sip:127.0.0.1:5080");
        assert_eq!(c.media.ports.range(), 20000..=29999);
        assert_eq!(c.media.ports.pairs(), 5000);
        assert_eq!(c.business[0].id.as_str(), "acme");
        assert_eq!(
            c.agent[0].contact,
            Target::Sip("sip:alice@127.0.0.1:15064".into())
        );
        assert!(!c.lab.endpoints);
        // Optional keys took their defaults.
        assert_eq!(c.media.workers, 1);
        assert!(c.media.learn_remote);
        assert_eq!(c.media.timeout_secs, 30);
        assert_eq!(c.sip.from_user, "callbridge");
        assert!(c.sip.user_agent.starts_with("callbridge/"));
        assert_eq!(c.flow, FlowConfig::default());
        assert_eq!(c.flow.timers(), flows::FlowTimers::default());
        assert_eq!(
            c.media.policy().media_timeout,
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn built_in_defaults() {
        let c = Config::default();
        assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
        assert_eq!(c.sip.trunk, "sip:127.0.0.1:5080");
        assert_eq!(c.media.address.to_string(), "127.0.0.1");
        assert_eq!(c.media.ports.to_string(), "20000-29999");
        assert_eq!(c.business.len(), 1);
        assert_eq!(
            (c.business[0].id.as_str(), c.business[0].name.as_str()),
            ("demo", "Demo Business")
        );
        let agents: Vec<(&str, &str)> = c
            .agent
            .iter()
            .map(|a| (a.id.as_str(), a.contact.as_str()))
            .collect();
        assert_eq!(
            agents,
            [
                ("alice", "sip:alice@127.0.0.1:15064"),
                ("bob", "sip:bob@127.0.0.1:15066")
            ]
        );
        assert!(c
            .agent
            .iter()
            .all(|a| a.businesses == [BusinessId::new("demo").unwrap()]));
        assert!(c.lab.endpoints);
        // The defaults pass validation.
        let mut c2 = c.clone();
        assert!(c2.validate(Path::new("/")).is_ok());
    }

    #[test]
    fn optional_keys_parse() {
        let text = format!(
            "{FULL}[flow]\ncustomer_ring_secs = 10\nagent_ring_secs = 5\nmax_agent_attempts = 1\nqueue_timeout_secs = 60\n"
        )
        .replace(
            "ports = \"20000-29999\"",
            "ports = \"20000-20099\"\nworkers = 2\ncores = [2, 3]\nlearn_remote = false\ntimeout_secs = 0",
        )
        .replace("trunk = \"sip:127.0.0.1:5080\"", "trunk = \"sip:127.0.0.1:5080\"\nuser_agent = \"ACME PBX\"\nfrom_user = \"+15550000000\"");
        let c = parse(&text).unwrap();
        assert_eq!(c.media.workers, 2);
        assert_eq!(c.media.cores, Some(vec![2, 3]));
        assert!(!c.media.learn_remote);
        assert_eq!(c.media.policy().media_timeout, None);
        assert_eq!(c.sip.user_agent, "ACME PBX");
        assert_eq!(c.sip.from_user, "+15550000000");
        assert_eq!(c.flow.timers().agent_ring, Duration::from_secs(5));
        assert_eq!(c.flow.max_agent_attempts, 1);
    }

    #[test]
    fn syntax_errors() {
        assert_prefix(&with_line(9, "ports = \"20000-29999"), "9: media.ports: ");
        assert_prefix(&with_line(6, "[media"), "6: media: ");
        assert_prefix(&with_line(12, "name = "), "12: business.name: ");
    }

    #[test]
    fn type_errors() {
        let e = assert_prefix(&with_line(4, "listen = 5060"), "4: sip.listen: ");
        assert!(e.contains("invalid type"), "{e}");
        assert_prefix(&with_line(18, "endpoints = \"yes\""), "18: lab.endpoints: ");
        assert_prefix(
            &with_line(16, "businesses = \"acme\""),
            "16: agent[0].businesses: ",
        );
    }

    #[test]
    fn unknown_keys() {
        let e = assert_prefix(&with_line(7, "bakend = \"socket\""), "7: media.bakend: ");
        assert!(e.contains("unknown field `bakend`"), "{e}");
        assert_prefix(&format!("{FULL}[extra]\nx = 1\n"), "19: extra: ");
        assert_prefix(
            &with_line(15, "contakt = \"sip:alice@127.0.0.1\""),
            "15: agent[0].contakt: ",
        );
    }

    #[test]
    fn missing_required_keys() {
        let e = assert_prefix(&with_line(15, ""), "13: agent[0].contact: ");
        assert!(e.contains("missing field"), "{e}");
    }

    #[test]
    fn bad_socket_addresses() {
        let e = assert_prefix(
            &with_line(2, "listen = \"localhost:8080\""),
            "2: http.listen: ",
        );
        assert!(e.contains("socket address"), "{e}");
        assert_prefix(&with_line(8, "address = \"127.0.0\""), "8: media.address: ");
        assert_prefix(&with_line(8, "address = \"0.0.0.0\""), "8: media.address: ");
    }

    // ---- media.extra_addresses ---------------------------------------------------------

    /// `FULL` with `extra_addresses = {list}` on line 9, after `media.address`.
    fn with_extra(list: &str) -> String {
        with_line(
            8,
            &format!("address = \"127.0.0.1\"\nextra_addresses = {list}"),
        )
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn extra_addresses_default_to_none() {
        let c = parse(FULL).unwrap();
        assert!(c.media.extra_addresses.is_empty());
        assert_eq!(c.media.addresses(), [ip("127.0.0.1")]);
        assert_eq!(Config::default().media.addresses(), [ip("127.0.0.1")]);
    }

    #[test]
    fn extra_addresses_load_in_order_after_the_address() {
        let c = parse(&with_extra("[\"127.0.0.2\", \"127.0.0.3\"]")).unwrap();
        assert_eq!(c.media.extra_addresses, [ip("127.0.0.2"), ip("127.0.0.3")]);
        assert_eq!(
            c.media.addresses(),
            [ip("127.0.0.1"), ip("127.0.0.2"), ip("127.0.0.3")]
        );
        // IPv6 with IPv6.
        let v6 = with_line(
            8,
            "address = \"2001:db8::1\"\nextra_addresses = [\"2001:db8::2\"]",
        );
        assert_eq!(
            parse(&v6).unwrap().media.addresses(),
            [ip("2001:db8::1"), ip("2001:db8::2")]
        );
        // The most there may be: MAX_ADDRESSES - 1.
        let most: Vec<String> = (2..=dp_api::MAX_ADDRESSES)
            .map(|i| format!("\"127.0.0.{i}\""))
            .collect();
        let c = parse(&with_extra(&format!("[{}]", most.join(", ")))).unwrap();
        assert_eq!(c.media.addresses().len(), dp_api::MAX_ADDRESSES);
    }

    #[test]
    fn extra_address_that_is_not_an_ip() {
        let e = parse(&with_extra("[\"127.0.0.2\", \"127.0.0\"]")).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Schema, "{e}");
        let s = e.to_string();
        assert!(
            s.starts_with("/etc/callbridge/cb.toml:9: media.extra_addresses[1]: "),
            "{s}"
        );
        assert!(s.contains("IP address"), "{s}");
        assert_prefix(&with_extra("\"127.0.0.2\""), "9: media.extra_addresses: ");
    }

    #[test]
    fn extra_address_unspecified() {
        let e = assert_prefix(
            &with_extra("[\"127.0.0.2\", \"0.0.0.0\"]"),
            "9: media.extra_addresses[1]: ",
        );
        assert!(e.contains("cannot be written into SDP"), "{e}");
    }

    #[test]
    fn extra_address_equal_to_the_address() {
        let e = assert_prefix(
            &with_extra("[\"127.0.0.1\"]"),
            "9: media.extra_addresses[0]: ",
        );
        assert!(e.contains("is media.address itself"), "{e}");
    }

    #[test]
    fn extra_address_listed_twice() {
        // The error names the line of the second entry.
        let e = assert_prefix(
            &with_extra("[\"127.0.0.2\",\n  \"127.0.0.3\",\n  \"127.0.0.2\"]"),
            "11: media.extra_addresses[2]: ",
        );
        assert!(e.contains("127.0.0.2 is listed twice"), "{e}");
    }

    #[test]
    fn extra_address_of_the_other_family() {
        let e = assert_prefix(&with_extra("[\"::2\"]"), "9: media.extra_addresses[0]: ");
        assert!(
            e.contains("::2 is IPv6 but media.address 127.0.0.1 is IPv4"),
            "{e}"
        );
        let v6 = with_line(8, "address = \"::1\"\nextra_addresses = [\"127.0.0.2\"]");
        let e = assert_prefix(&v6, "9: media.extra_addresses[0]: ");
        assert!(e.contains("is IPv4 but media.address ::1 is IPv6"), "{e}");
    }

    #[test]
    fn too_many_extra_addresses() {
        let all: Vec<String> = (2..=dp_api::MAX_ADDRESSES + 1)
            .map(|i| format!("\"127.0.0.{i}\""))
            .collect();
        let e = assert_prefix(
            &with_extra(&format!("[{}]", all.join(", "))),
            "9: media.extra_addresses: ",
        );
        assert!(e.contains("lists 16 addresses; at most 15"), "{e}");
    }

    #[test]
    fn bad_port_ranges() {
        let e = assert_prefix(&with_line(9, "ports = \"30000-20000\""), "9: media.ports: ");
        assert!(e.contains("reversed"), "{e}");
        let e = assert_prefix(&with_line(9, "ports = \"20000-29998\""), "9: media.ports: ");
        assert!(e.contains("odd"), "{e}");
        let e = assert_prefix(&with_line(9, "ports = \"20001-29999\""), "9: media.ports: ");
        assert!(e.contains("even"), "{e}");
        assert_prefix(&with_line(9, "ports = \"20000\""), "9: media.ports: ");
        assert_prefix(&with_line(9, "ports = \"20000-70000\""), "9: media.ports: ");
        let e = assert_prefix(
            &with_line(9, "ports = \"20000-20003\"\nworkers = 3"),
            "10: media.workers: ",
        );
        assert!(e.contains("port pairs"), "{e}");
        assert_prefix(
            &with_line(9, "ports = \"20000-20003\"\ncores = [1, 2]"),
            "10: media.cores: ",
        );
        assert_prefix(
            &with_line(9, "ports = \"20000-20003\"\nworkers = 2\ncores = [1, 1]"),
            "11: media.cores[1]: ",
        );
    }

    #[test]
    fn bad_contacts_and_trunk() {
        let e = assert_prefix(
            &with_line(15, "contact = \"alice\""),
            "15: agent[0].contact: ",
        );
        assert!(e.contains("E.164"), "{e}");
        assert_prefix(
            &with_line(15, "contact = \"+12\""),
            "15: agent[0].contact: ",
        );
        let e = assert_prefix(
            &with_line(5, "trunk = \"127.0.0.1:5080\""),
            "5: sip.trunk: ",
        );
        assert!(e.contains("sip:"), "{e}");
        assert_prefix(&with_line(11, "id = \"ac me\""), "11: business[0].id: ");
    }

    #[test]
    fn unknown_business_reference() {
        let e = assert_prefix(
            &with_line(16, "businesses = [\"acme\", \"globex\"]"),
            "16: agent[0].businesses[1]: ",
        );
        assert!(e.contains("unknown business \"globex\""), "{e}");
    }

    #[test]
    fn duplicate_ids() {
        let dup_agent = format!("{FULL}[[agent]]\nid = \"bob\"\ncontact = \"+15551234567\"\n[[agent]]\nid = \"alice\"\ncontact = \"+15551234568\"\n");
        let e = assert_prefix(&dup_agent, "23: agent[2].id: ");
        assert!(e.contains("duplicate agent id \"alice\""), "{e}");
        let dup_business = FULL.replace(
            "[[agent]]",
            "[[business]]\nid = \"acme\"\nname = \"Again\"\n[[agent]]",
        );
        assert_prefix(&dup_business, "14: business[1].id: ");
        assert_prefix(
            &FULL
                .replace("[[business]]\nid = \"acme\"\nname = \"ACME Corp\"\n", "")
                .replace("businesses = [\"acme\"]", ""),
            "1: business: ",
        );
    }

    #[test]
    fn backends() {
        let e = assert_prefix(&with_line(7, "backend = \"dpdk\""), "7: media.backend: ");
        assert!(e.contains("needs a [dpdk] section"), "{e}");
        let e = assert_prefix(&with_line(7, "backend = \"xdp\""), "7: media.backend: ");
        assert!(e.contains("unknown variant"), "{e}");
    }

    #[test]
    fn announcement_paths_are_relative_to_the_file() {
        let dir =
            std::env::temp_dir().join(format!("callbridge-config-test-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("prompts")).unwrap();
        std::fs::write(dir.join("prompts/hold.wav"), b"RIFF").unwrap();
        let file = dir.join("cb.toml");
        let text = with_line(
            9,
            "ports = \"20000-29999\"\nannouncement = \"prompts/hold.wav\"",
        );
        std::fs::write(&file, &text).unwrap();
        let c = Config::load(&file).unwrap();
        assert_eq!(c.media.announcement, Some(dir.join("prompts/hold.wav")));

        std::fs::write(&file, text.replace("hold.wav", "gone.wav")).unwrap();
        let e = Config::load(&file).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Invalid);
        let s = e.to_string();
        assert!(
            s.starts_with(&format!(
                "{}:10: media.announcement: file not found: ",
                file.display()
            )),
            "{s}"
        );
        assert!(s.contains("gone.wav"));

        let missing = dir.join("nope.toml");
        let e = Config::load(&missing).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Io);
        assert!(e
            .to_string()
            .starts_with(&format!("{}:0: (file): ", missing.display())));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn error_kinds() {
        assert_eq!(parse("[http").unwrap_err().kind, ConfigErrorKind::Syntax);
        assert_eq!(parse("x = 1").unwrap_err().kind, ConfigErrorKind::Schema);
        assert_eq!(
            parse(&with_line(7, "backend = \"dpdk\"")).unwrap_err().kind,
            ConfigErrorKind::Invalid
        );
        assert_eq!(
            parse("[[business]]\nid = \"a\"\nname = \"A\"\n").map(|c| c.agent.len()),
            Ok(0)
        );
    }

    // ---- [dpdk] ------------------------------------------------------------------------

    /// A valid dpdk configuration; line numbers below refer to it.
    const DPDK: &str = r#"[media]
backend = "dpdk"
address = "198.18.0.1"
ports = "20000-29999"
[[business]]
id = "acme"
name = "ACME Corp"
[dpdk]
main_core = 0
worker_cores = [1, 2]
devices = ["net_af_packet0,iface=veth0"]
port = 0
prefix_len = 24
gateway = "198.18.0.254"
no_huge = true
memory_mb = 512
mbufs = 8191
rx_desc = 1024
tx_desc = 1024
burst = 32
file_prefix = "callbridge"
eal_args = []
steering = "auto"
"#;

    /// Four online cores, whatever this machine has.
    fn cpus() -> CpuSet {
        CpuSet(vec![0, 1, 2, 3])
    }

    fn parse_dpdk(text: &str) -> Result<Config, ConfigError> {
        Config::parse_on(text, Path::new("/etc/callbridge/cb.toml"), &cpus())
    }

    /// `DPDK` with line `n` (1-based) replaced by `line` (which may span lines).
    fn dpdk_with(n: usize, line: &str) -> String {
        DPDK.lines()
            .enumerate()
            .map(|(i, l)| if i + 1 == n { line } else { l })
            .collect::<Vec<_>>()
            .join("\n")
    }

    fn dpdk_fail(text: &str, prefix: &str) -> String {
        let e = match parse_dpdk(text) {
            Ok(c) => panic!("expected an error, got {c:?}"),
            Err(e) => e,
        };
        assert_eq!(e.kind, ConfigErrorKind::Invalid, "{e}");
        let e = e.to_string();
        assert!(
            e.starts_with(&format!("/etc/callbridge/cb.toml:{prefix}")),
            "{e:?} should start with {prefix:?}"
        );
        e
    }

    #[test]
    fn dpdk_example_loads_and_sets_workers() {
        let c = parse_dpdk(DPDK).unwrap();
        assert_eq!(c.media.backend, Backend::Dpdk);
        let d = c.dpdk.as_ref().unwrap();
        assert_eq!(d.worker_cores, [1, 2]);
        assert_eq!(d.gateway, Some(ip("198.18.0.254")));
        // media.workers absent: one worker per worker core.
        assert_eq!(c.media.workers, 2);
        // Or given and equal.
        let c = parse_dpdk(&dpdk_with(4, "ports = \"20000-29999\"\nworkers = 2")).unwrap();
        assert_eq!(c.media.workers, 2);
    }

    #[test]
    fn dpdk_defaults() {
        let text = "[media]\nbackend = \"dpdk\"\naddress = \"10.0.0.1\"\n[[business]]\nid = \"a\"\nname = \"A\"\n[dpdk]\ndevices = [\"0000:03:00.0\"]\n";
        let c = parse_dpdk(text).unwrap();
        let d = c.dpdk.unwrap();
        assert_eq!(
            d,
            DpdkConfig {
                devices: vec!["0000:03:00.0".into()],
                ..DpdkConfig::default()
            }
        );
        assert_eq!(
            (d.main_core, d.worker_cores.as_slice(), d.port, d.prefix_len),
            (0, &[1][..], 0, 24)
        );
        assert_eq!(
            (d.mbufs, d.rx_desc, d.tx_desc, d.burst, d.no_huge),
            (8191, 1024, 1024, 32, false)
        );
        assert_eq!(
            (d.gateway, d.memory_mb, d.file_prefix.as_str()),
            (None, None, "callbridge")
        );
        assert_eq!(c.media.workers, 1);
    }

    #[test]
    fn dpdk_section_is_checked_even_with_the_socket_backend() {
        let text = dpdk_with(2, "backend = \"socket\"").replace("burst = 32", "burst = 0");
        dpdk_fail(&text, "20: dpdk.burst: ");
    }

    #[test]
    fn dpdk_cores() {
        let e = dpdk_fail(&dpdk_with(9, "main_core = 7"), "9: dpdk.main_core: ");
        assert!(e.contains("not online") && e.contains("0-3"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(10, "worker_cores = [1, 9]"),
            "10: dpdk.worker_cores[1]: ",
        );
        assert!(e.contains("not online"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(10, "worker_cores = [1, 0]"),
            "10: dpdk.worker_cores[1]: ",
        );
        assert!(e.contains("main core"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(10, "worker_cores = [2,\n 2]"),
            "11: dpdk.worker_cores[1]: ",
        );
        assert!(e.contains("twice"), "{e}");
        dpdk_fail(
            &dpdk_with(10, "worker_cores = []"),
            "10: dpdk.worker_cores: ",
        );
    }

    #[test]
    fn dpdk_workers_must_match_worker_cores() {
        let e = dpdk_fail(
            &dpdk_with(4, "ports = \"20000-29999\"\nworkers = 3"),
            "5: media.workers: ",
        );
        assert!(e.contains("leave media.workers out or set it to 2"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(4, "ports = \"20000-20001\""),
            "10: dpdk.worker_cores: ",
        );
        assert!(e.contains("port pairs"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(4, "ports = \"20000-29999\"\ncores = [1, 2]"),
            "5: media.cores: ",
        );
        assert!(e.contains("dpdk.worker_cores"), "{e}");
    }

    #[test]
    fn dpdk_devices() {
        let e = dpdk_fail(&dpdk_with(11, "devices = []"), "11: dpdk.devices: ");
        assert!(e.contains("at least one device"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(11, "devices = [\"net_null0\", \"eth0\"]"),
            "11: dpdk.devices[1]: ",
        );
        assert!(
            e.contains("neither a virtual device") && e.contains("DDDD:BB:DD.F"),
            "{e}"
        );
        dpdk_fail(
            &dpdk_with(11, "devices = [\"0000:3:00.0\"]"),
            "11: dpdk.devices[0]: ",
        );
        dpdk_fail(
            &dpdk_with(11, "devices = [\"0000:03:00.8\"]"),
            "11: dpdk.devices[0]: ",
        );
        dpdk_fail(
            &dpdk_with(11, "devices = [\"net_\"]"),
            "11: dpdk.devices[0]: ",
        );
        let e = dpdk_fail(
            &dpdk_with(11, "devices = [\"net_null0\", \"net_null0,size=64\"]"),
            "11: dpdk.devices[1]: ",
        );
        assert!(e.contains("twice"), "{e}");
        let e = dpdk_fail(&dpdk_with(12, "port = 1"), "12: dpdk.port: ");
        assert!(e.contains("does not exist"), "{e}");
        // Both kinds, with device arguments.
        let ok = dpdk_with(
            11,
            "devices = [\"0000:03:00.0\", \"0000:af:1f.7,rxq_cqe_comp_en=0\", \"net_ring0\"]",
        );
        assert!(parse_dpdk(&ok.replace("port = 0", "port = 2")).is_ok());
        assert_eq!(device_kind("0000:03:00.0"), Ok(DeviceKind::Pci));
        assert_eq!(
            device_kind("net_af_packet0,iface=veth0"),
            Ok(DeviceKind::Vdev)
        );
    }

    #[test]
    fn dpdk_addresses() {
        // IPv6: a /64 on the port, gateway of the same family.
        let v6 = dpdk_with(3, "address = \"2001:2::1\"")
            .replace("prefix_len = 24", "prefix_len = 64")
            .replace("gateway = \"198.18.0.254\"", "gateway = \"2001:2::fe\"");
        let c = parse_dpdk(&v6).unwrap();
        let s = c.dpdk.unwrap().settings();
        assert_eq!((s.prefix_len, s.gateway), (64, Some(ip("2001:2::fe"))));
        let e = dpdk_fail(
            &v6.replace("prefix_len = 64", "prefix_len = 129"),
            "13: dpdk.prefix_len: ",
        );
        assert!(e.contains("1..=128"), "{e}");
        let e = dpdk_fail(
            &v6.replace("gateway = \"2001:2::fe\"", "gateway = \"198.18.0.254\""),
            "14: dpdk.gateway: ",
        );
        assert!(e.contains("family"), "{e}");
        let e = dpdk_fail(
            &v6.replace("gateway = \"2001:2::fe\"", "gateway = \"2001:3::fe\""),
            "14: dpdk.gateway: ",
        );
        assert!(e.contains("not on-link"), "{e}");
        dpdk_fail(&dpdk_with(3, "address = \"::1\""), "3: media.address: ");
        dpdk_fail(&dpdk_with(3, "address = \"0.0.0.0\""), "3: media.address: ");
        let e = dpdk_fail(
            &dpdk_with(14, "gateway = \"198.18.1.254\""),
            "14: dpdk.gateway: ",
        );
        assert!(
            e.contains("not on-link") && e.contains("198.18.0.1/24"),
            "{e}"
        );
        dpdk_fail(
            &dpdk_with(14, "gateway = \"198.18.0.1\""),
            "14: dpdk.gateway: ",
        );
        // A wider prefix puts it on-link.
        assert!(parse_dpdk(
            &dpdk_with(14, "gateway = \"198.18.1.254\"")
                .replace("prefix_len = 24", "prefix_len = 16")
        )
        .is_ok());
        dpdk_fail(&dpdk_with(13, "prefix_len = 33"), "13: dpdk.prefix_len: ");
        dpdk_fail(&dpdk_with(13, "prefix_len = 0"), "13: dpdk.prefix_len: ");
    }

    /// `DPDK` with `extra_addresses = {list}` on line 4, after `media.address`.
    fn dpdk_extra(list: &str) -> String {
        dpdk_with(
            3,
            &format!("address = \"198.18.0.1\"\nextra_addresses = {list}"),
        )
    }

    #[test]
    fn dpdk_extra_addresses() {
        let c = parse_dpdk(&dpdk_extra("[\"198.18.0.2\", \"198.18.0.3\"]")).unwrap();
        assert_eq!(
            c.media.addresses(),
            [ip("198.18.0.1"), ip("198.18.0.2"), ip("198.18.0.3")]
        );
        let e = dpdk_fail(
            &dpdk_extra("[\"198.18.0.2\", \"2001:db8::2\"]"),
            "4: media.extra_addresses[1]: ",
        );
        assert!(e.contains("IPv6") && e.contains("IPv4"), "{e}");
        let e = dpdk_fail(
            &dpdk_extra("[\"198.18.1.2\"]"),
            "4: media.extra_addresses[0]: ",
        );
        assert!(
            e.contains("outside 198.18.0.1/24") && e.contains("media.address/dpdk.prefix_len"),
            "{e}"
        );
        // A wider prefix puts it on the link.
        assert!(parse_dpdk(
            &dpdk_extra("[\"198.18.1.2\"]").replace("prefix_len = 24", "prefix_len = 16")
        )
        .is_ok());
        let e = dpdk_fail(
            &dpdk_extra("[\"127.0.0.2\"]"),
            "4: media.extra_addresses[0]: ",
        );
        assert!(e.contains("unicast address"), "{e}");
        dpdk_fail(
            &dpdk_extra("[\"198.18.0.255\", \"255.255.255.255\"]"),
            "4: media.extra_addresses[1]: ",
        );
        let e = dpdk_fail(
            &dpdk_extra("[\"198.18.0.254\"]"),
            "4: media.extra_addresses[0]: ",
        );
        assert!(e.contains("dpdk.gateway"), "{e}");
        // The backend-independent checks apply too.
        let e = dpdk_fail(
            &dpdk_extra("[\"198.18.0.2\", \"198.18.0.2\"]"),
            "4: media.extra_addresses[1]: ",
        );
        assert!(e.contains("twice"), "{e}");
        dpdk_fail(
            &dpdk_extra("[\"198.18.0.1\"]"),
            "4: media.extra_addresses[0]: ",
        );
    }

    #[test]
    fn dpdk_memory() {
        let e = dpdk_fail(&dpdk_with(16, ""), "15: dpdk.no_huge: ");
        assert!(e.contains("needs memory_mb"), "{e}");
        dpdk_fail(&dpdk_with(16, "memory_mb = 0"), "16: dpdk.memory_mb: ");
        // With hugepages memory_mb is optional.
        assert!(
            parse_dpdk(&dpdk_with(16, "").replace("no_huge = true", "no_huge = false")).is_ok()
        );
    }

    #[test]
    fn dpdk_burst_descriptors_and_mbufs() {
        dpdk_fail(&dpdk_with(20, "burst = 0"), "20: dpdk.burst: ");
        let e = dpdk_fail(&dpdk_with(20, "burst = 65"), "20: dpdk.burst: ");
        assert!(e.contains("1..=64"), "{e}");
        let e = dpdk_fail(&dpdk_with(18, "rx_desc = 1000"), "18: dpdk.rx_desc: ");
        assert!(e.contains("power of two"), "{e}");
        dpdk_fail(&dpdk_with(19, "tx_desc = 32"), "19: dpdk.tx_desc: ");
        dpdk_fail(&dpdk_with(19, "tx_desc = 8192"), "19: dpdk.tx_desc: ");
        // Two worker cores: two queue pairs to fill.
        let e = dpdk_fail(&dpdk_with(17, "mbufs = 1000"), "17: dpdk.mbufs: ");
        assert!(e.contains("2 worker cores") && e.contains("4224"), "{e}");
        let e = dpdk_fail(
            &dpdk_with(17, "mbufs = 1000").replace("[1, 2]", "[1]"),
            "17: dpdk.mbufs: ",
        );
        assert!(e.contains("rx_desc + tx_desc + 2 * burst = 2112"), "{e}");
    }

    #[test]
    fn dpdk_steering() {
        let c = parse_dpdk(DPDK).unwrap();
        assert_eq!(c.dpdk.unwrap().settings().steering, worker::Steering::Auto);
        for (v, want) in [
            ("auto", worker::Steering::Auto),
            ("flow", worker::Steering::Flow),
            ("handoff", worker::Steering::Handoff),
        ] {
            let c = parse_dpdk(&dpdk_with(23, &format!("steering = \"{v}\""))).unwrap();
            assert_eq!(c.dpdk.unwrap().settings().steering, want);
        }
        let e = parse_dpdk(&dpdk_with(23, "steering = \"rss\"")).unwrap_err();
        assert_eq!(e.kind, ConfigErrorKind::Schema, "{e}");
        let e = e.to_string();
        assert!(
            e.starts_with("/etc/callbridge/cb.toml:23: dpdk.steering: ")
                && e.contains("`auto`, `flow`, `handoff`"),
            "{e}"
        );
    }

    #[test]
    fn dpdk_eal_keys() {
        dpdk_fail(
            &dpdk_with(21, "file_prefix = \"a/b\""),
            "21: dpdk.file_prefix: ",
        );
        dpdk_fail(
            &dpdk_with(21, "file_prefix = \"\""),
            "21: dpdk.file_prefix: ",
        );
        let e = dpdk_fail(
            &dpdk_with(22, "eal_args = [\"--log-level=8\", \"--no-huge\"]"),
            "22: dpdk.eal_args[1]: ",
        );
        assert!(e.contains("dpdk.no_huge"), "{e}");
        dpdk_fail(
            &dpdk_with(22, "eal_args = [\"-l\", \"0-3\"]"),
            "22: dpdk.eal_args[0]: ",
        );
    }

    #[test]
    fn dpdk_schema_errors() {
        let e = assert_prefix(&DPDK.replace("port = 0", "prot = 0"), "12: dpdk.prot: ");
        assert!(e.contains("unknown field"), "{e}");
        assert_prefix(
            &dpdk_with(14, "gateway = \"198.18.0\""),
            "14: dpdk.gateway: ",
        );
        assert_prefix(&dpdk_with(9, "main_core = -1"), "9: dpdk.main_core: ");
    }

    #[test]
    fn eal_args_vdevs_without_hugepages() {
        let c = parse_dpdk(&dpdk_with(
            22,
            "eal_args = [\"--log-level\", \"lib.eal:debug\"]",
        ))
        .unwrap();
        assert_eq!(
            c.dpdk.unwrap().eal_args(),
            [
                "-l",
                "0",
                "--vdev",
                "net_af_packet0,iface=veth0",
                "--no-pci",
                "--no-huge",
                "-m",
                "512",
                "--file-prefix",
                "callbridge",
                "--log-level",
                "lib.eal:debug"
            ]
        );
    }

    #[test]
    fn eal_args_pci_with_hugepages() {
        let d = DpdkConfig {
            main_core: 2,
            worker_cores: vec![4, 6],
            devices: vec!["0000:03:00.0".into(), "net_ring0".into()],
            file_prefix: "cb1".into(),
            ..DpdkConfig::default()
        };
        assert_eq!(
            d.eal_args(),
            [
                "-l",
                "2",
                "-a",
                "0000:03:00.0",
                "--vdev",
                "net_ring0",
                "--file-prefix",
                "cb1"
            ]
        );
        let d = DpdkConfig {
            memory_mb: Some(1024),
            numa_node: 1,
            ..d
        };
        assert_eq!(d.eal_args()[6..8], ["--socket-mem", "0,1024"]);
        let s = d.settings();
        assert_eq!(
            (s.port.as_str(), s.lcores.as_str(), s.no_huge_mb),
            ("0000:03:00.0", "2", None)
        );
        let d = DpdkConfig {
            devices: vec!["net_af_packet0,iface=veth0".into()],
            port: 0,
            ..d
        };
        assert_eq!(
            d.settings().port,
            "net_af_packet0",
            "a vdev's port is named without its arguments"
        );
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(
            CpuSet::parse("0-3,8,10-11\n").unwrap().0,
            [0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(CpuSet::parse("").unwrap().0, Vec::<usize>::new());
        assert_eq!(CpuSet::parse("0-7:2/4").unwrap().0, [0, 1, 4, 5]);
        assert!(CpuSet::parse("a-b").is_err());
        assert!(CpuSet::parse("3-1").is_err());
        assert_eq!(CpuSet(vec![0, 1, 2, 5, 7, 8]).to_string(), "0-2,5,7-8");
        assert_eq!(CpuSet::default().to_string(), "(none)");
        assert!(!CpuSet::online().0.is_empty());
    }

    #[test]
    fn dpdk_build_check() {
        let c = parse_dpdk(DPDK).unwrap();
        assert_eq!(c.check_build().is_ok(), cfg!(feature = "dpdk"));
        if let Err(e) = c.check_build() {
            assert!(e.contains("--features dpdk"), "{e}");
        }
        assert!(Config::default().check_build().is_ok());
    }
}
