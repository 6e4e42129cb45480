//! `[dpdk]`: the DPDK backend's cores, devices, memory and EAL arguments, and [`CpuSet`].

use std::fmt;
use std::net::IpAddr;

use serde::Deserialize;

use super::locate::{key, Seg};
use super::media::MediaConfig;

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
    pub(super) fn to_worker(self) -> worker::Steering {
        match self {
            Self::Auto => worker::Steering::Auto,
            Self::Flow => worker::Steering::Flow,
            Self::Handoff => worker::Steering::Handoff,
        }
    }
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
    /// `allow_shared_cores`: let workers share a core with each other or with `main_core`
    /// (`worker_cores = [1, 1]` runs two workers on core 1), so several workers can run on a
    /// machine with fewer dedicated cores: for tests and labs only. Busy-polling workers that
    /// share a core take turns at the scheduler's pace (milliseconds of added latency), so
    /// `callbridge preflight` refuses it for production. Default false.
    pub(crate) allow_shared_cores: bool,
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
            allow_shared_cores: false,
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

    /// Checks the section against `[media]`: `workers_given` says whether the file sets
    /// `media.workers`; `cpus` are the online cores.
    pub(super) fn validate(
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
            if c == self.main_core && !self.allow_shared_cores {
                return at(
                    &d_i("worker_cores", i),
                    format!(
                        "core {c} is the main core; workers need dedicated cores other than main_core \
                         (dpdk.allow_shared_cores = true lets them share, for tests and labs only)"
                    ),
                );
            }
            if self.worker_cores[..i].contains(&c) && !self.allow_shared_cores {
                return at(
                    &d_i("worker_cores", i),
                    format!(
                        "core {c} is listed twice; one worker per core \
                         (dpdk.allow_shared_cores = true lets workers share a core, for tests and labs only)"
                    ),
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
