//! `callbridge preflight`: is this host ready for the configured DPDK data plane?
//!
//! Reads sysfs and procfs (never writes) and prints one line per check: `ok`, `WARN` (works,
//! but latency or throughput will suffer) or `FAIL` (the data plane will not start, or will
//! not receive packets), each with a plain sentence saying what is wrong and how to fix it.
//! The checks, in order:
//!
//! - the binary: built with the `dpdk` feature ([`run`] only);
//! - the EAL arguments the configuration produces (informational);
//! - cores: main and worker cores online; worker cores in `isolcpus`
//!   (`/sys/devices/system/cpu/isolated` or `/proc/cmdline`), `nohz_full`
//!   (`/sys/devices/system/cpu/nohz_full` or the command line) and `rcu_nocbs`;
//! - hugepages: reserved and free pages per size, a mounted hugetlbfs (or "not needed" with
//!   `no_huge`);
//! - each device: a PCI NIC's presence, driver (vfio-pci, uio, a bifurcated mlx driver, or a
//!   kernel driver that must be unbound), and for vfio the IOMMU groups, `/dev/vfio/vfio`
//!   and the `vfio_pci` module; an `net_af_packet` vdev's interface exists and is up;
//! - NUMA: the worker cores' nodes against the NICs' nodes;
//! - the CPU frequency governor of the worker cores.
//!
//! Every path is read below an injectable root ([`run_with_root`]) so tests build a fake tree.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Backend, Config, CpuSet, DeviceKind, DpdkConfig};

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Ready.
    Ok,
    /// Works, but not as well as it should (latency, jitter, throughput).
    Warn,
    /// The data plane will not start or will not see packets.
    Fail,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Self::Ok => "ok",
            Self::Warn => "WARN",
            Self::Fail => "FAIL",
        })
    }
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Check {
    /// The verdict.
    pub(crate) verdict: Verdict,
    /// What was checked, e.g. `isolcpus` or `device 0000:03:00.0`.
    pub(crate) topic: String,
    /// What was found and, unless ok, how to fix it.
    pub(crate) message: String,
}

/// The result of a preflight run: one [`Check`] per line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Report {
    /// The configuration file checked, when known.
    pub(crate) config: Option<PathBuf>,
    /// The checks, in the order they ran.
    pub(crate) checks: Vec<Check>,
}

impl Report {
    /// True when no check failed (warnings allowed). The `preflight` command exits non-zero
    /// otherwise.
    #[must_use]
    pub(crate) fn ok(&self) -> bool {
        self.checks.iter().all(|c| c.verdict != Verdict::Fail)
    }

    /// The checks about `topic` (exact match).
    #[cfg(test)]
    #[must_use]
    pub(crate) fn find(&self, topic: &str) -> Vec<&Check> {
        self.checks.iter().filter(|c| c.topic == topic).collect()
    }

    fn push(&mut self, verdict: Verdict, topic: impl Into<String>, message: impl Into<String>) {
        self.checks.push(Check {
            verdict,
            topic: topic.into(),
            message: message.into(),
        });
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(c) = &self.config {
            writeln!(f, "preflight for {}", c.display())?;
        }
        for c in &self.checks {
            writeln!(f, "{:<4}  {}: {}", c.verdict, c.topic, c.message)?;
        }
        let count = |v| self.checks.iter().filter(|c| c.verdict == v).count();
        write!(
            f,
            "{}: {} ok, {} warning(s), {} failure(s)",
            if self.ok() { "ready" } else { "NOT READY" },
            count(Verdict::Ok),
            count(Verdict::Warn),
            count(Verdict::Fail)
        )
    }
}

/// Checks this host (root `/`) for `cfg`, read from `cfg_path`; adds the binary check (built
/// with the `dpdk` feature) to [`run_with_root`].
#[must_use]
pub(crate) fn run(cfg: &Config, cfg_path: &Path) -> Report {
    let mut report = Report {
        config: Some(cfg_path.to_owned()),
        checks: Vec::new(),
    };
    if cfg.media.backend == Backend::Dpdk {
        match cfg.check_build() {
            Ok(()) => report.push(
                Verdict::Ok,
                "binary",
                "built with DPDK support (feature `dpdk`)",
            ),
            Err(e) => report.push(Verdict::Fail, "binary", e),
        }
    }
    report
        .checks
        .extend(run_with_root(cfg, Path::new("/")).checks);
    report
}

/// Checks the host whose `/sys`, `/proc` and `/dev` are below `root` for `cfg`.
#[must_use]
pub(crate) fn run_with_root(cfg: &Config, root: &Path) -> Report {
    let mut r = Report::default();
    let Some(d) = &cfg.dpdk else {
        if cfg.media.backend == Backend::Dpdk {
            r.push(
                Verdict::Fail,
                "config",
                "media.backend = \"dpdk\" but there is no [dpdk] section",
            );
        } else {
            r.push(
                Verdict::Ok,
                "config",
                "media.backend = \"socket\": no DPDK host preparation is needed",
            );
        }
        return r;
    };
    if cfg.media.backend != Backend::Dpdk {
        r.push(
            Verdict::Warn,
            "config",
            "a [dpdk] section is present but media.backend is \"socket\"; set backend = \"dpdk\" to use it",
        );
    }
    let sys = Sys { root };
    r.push(
        Verdict::Ok,
        "eal",
        format!("EAL arguments: {}", d.eal_args().join(" ")),
    );
    cores(&mut r, &sys, d);
    hugepages(&mut r, &sys, d);
    let nic_nodes = devices(&mut r, &sys, d);
    numa(&mut r, &sys, d, &nic_nodes);
    governor(&mut r, &sys, d);
    r
}

/// Reads below the root.
struct Sys<'a> {
    root: &'a Path,
}

impl Sys<'_> {
    fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    fn read(&self, abs: &str) -> Option<String> {
        std::fs::read_to_string(self.path(abs))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }

    fn cpus(&self, abs: &str) -> Option<CpuSet> {
        self.read(abs).and_then(|s| CpuSet::parse(&s).ok())
    }

    /// The names in a directory, sorted; empty when missing.
    fn list(&self, abs: &str) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.path(abs))
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// `key=value` (or bare `key`) from the kernel command line: `Some("")` for a bare flag.
    fn cmdline(&self, key: &str) -> Option<String> {
        let line = self.read("/proc/cmdline")?;
        line.split_whitespace()
            .rev()
            .find_map(|tok| match tok.split_once('=') {
                Some((k, v)) if k == key => Some(v.to_owned()),
                None if tok == key => Some(String::new()),
                _ => None,
            })
    }

    /// The cpus named by a cpulist kernel parameter, skipping flag words (`isolcpus=nohz,domain,1-3`).
    fn cmdline_cpus(&self, key: &str) -> Option<CpuSet> {
        let v = self.cmdline(key)?;
        let items: Vec<&str> = v
            .split(',')
            .filter(|s| s.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        CpuSet::parse(&items.join(",")).ok()
    }
}

fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn cores(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) {
    let workers = &d.worker_cores;
    if d.allow_shared_cores {
        r.push(
            Verdict::Fail,
            "shared_cores",
            "dpdk.allow_shared_cores = true lets busy-polling workers share cores (tests and labs only: \
             they take turns at the scheduler's pace, adding milliseconds of latency); in production give \
             each worker its own core in dpdk.worker_cores, other than main_core, and remove the key",
        );
    }
    match sys.cpus("/sys/devices/system/cpu/online") {
        Some(online) => {
            let offline: Vec<usize> = std::iter::once(d.main_core)
                .chain(workers.iter().copied())
                .filter(|&c| !online.contains(c))
                .collect();
            if offline.is_empty() {
                r.push(
                    Verdict::Ok,
                    "cores",
                    format!(
                        "main core {} and worker cores {} are online",
                        d.main_core,
                        list(workers)
                    ),
                );
            } else {
                r.push(
                    Verdict::Fail,
                    "cores",
                    format!(
                        "core(s) {} are not online (online: {online}); choose cores from the online list",
                        list(&offline)
                    ),
                );
            }
        }
        None => r.push(
            Verdict::Warn,
            "cores",
            "cannot read /sys/devices/system/cpu/online; core ids not checked",
        ),
    }

    let all = |set: Option<CpuSet>| set.unwrap_or_default();
    let missing = |set: &CpuSet| {
        workers
            .iter()
            .copied()
            .filter(|&c| !set.contains(c))
            .collect::<Vec<_>>()
    };
    let w = list(workers);
    let fix = format!(
        "add `isolcpus={w} nohz_full={w} rcu_nocbs={w}` to the kernel command line \
         (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub) and reboot"
    );
    let fix_one = |arg: &str| {
        format!("add `{arg}={w}` to the kernel command line (as in the isolcpus line) and reboot")
    };

    let mut isolated = all(sys.cpus("/sys/devices/system/cpu/isolated"));
    isolated.0.extend(all(sys.cmdline_cpus("isolcpus")).0);
    isolated.0.sort_unstable();
    isolated.0.dedup();
    let not = missing(&isolated);
    if not.is_empty() {
        let main = if isolated.contains(d.main_core) {
            " (the main core is isolated too, which is fine)"
        } else {
            ""
        };
        r.push(
            Verdict::Ok,
            "isolcpus",
            format!(
                "worker cores {} are isolated from the scheduler{main}",
                list(workers)
            ),
        );
    } else {
        r.push(
            Verdict::Warn,
            "isolcpus",
            format!(
                "worker core(s) {} are not isolated: other tasks and interrupts share them and add jitter; {fix}",
                list(&not)
            ),
        );
    }

    let mut nohz = all(sys.cpus("/sys/devices/system/cpu/nohz_full"));
    nohz.0.extend(all(sys.cmdline_cpus("nohz_full")).0);
    nohz.0.sort_unstable();
    let not = missing(&nohz);
    if not.is_empty() {
        r.push(
            Verdict::Ok,
            "nohz_full",
            format!(
                "worker cores {} run without the periodic scheduler tick",
                list(workers)
            ),
        );
    } else {
        r.push(
            Verdict::Warn,
            "nohz_full",
            format!(
                "worker core(s) {} are not in nohz_full: the scheduler tick interrupts them; {}",
                list(&not),
                fix_one("nohz_full")
            ),
        );
    }

    let rcu = match sys.cmdline("rcu_nocbs") {
        Some(v) if v.is_empty() => Some(CpuSet(
            (0..=workers.iter().copied().max().unwrap_or(0)).collect(),
        )),
        Some(_) => sys.cmdline_cpus("rcu_nocbs"),
        None => None,
    };
    let not = missing(&all(rcu));
    if not.is_empty() {
        r.push(
            Verdict::Ok,
            "rcu_nocbs",
            format!(
                "RCU callbacks are offloaded from worker cores {}",
                list(workers)
            ),
        );
    } else {
        r.push(
            Verdict::Warn,
            "rcu_nocbs",
            format!(
                "worker core(s) {} run RCU callbacks, which steal cycles; {}",
                list(&not),
                fix_one("rcu_nocbs")
            ),
        );
    }
}

/// Hugepage sizes in kB with (reserved, free) pages, from `hugepages-<N>kB` directories.
fn hugepage_pools(sys: &Sys<'_>, dir: &str) -> Vec<(u64, u64, u64)> {
    sys.list(dir)
        .iter()
        .filter_map(|name| {
            let kb: u64 = name
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse()
                .ok()?;
            let n = |f: &str| {
                sys.read(&format!("{dir}/{name}/{f}"))
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0)
            };
            Some((kb, n("nr_hugepages"), n("free_hugepages")))
        })
        .collect()
}

fn size(kb: u64) -> String {
    if kb >= 1 << 20 {
        format!("{}G", kb >> 20)
    } else {
        format!("{}M", kb >> 10)
    }
}

fn hugepages(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) {
    if d.no_huge {
        r.push(
            Verdict::Ok,
            "hugepages",
            format!("not needed: no_huge = true runs the EAL on {} MB of ordinary memory (fine for tests and virtual devices, slower for line rate)", d.memory_mb.unwrap_or(512)),
        );
        return;
    }
    let pools = hugepage_pools(sys, "/sys/kernel/mm/hugepages");
    let reserved_mb: u64 = pools.iter().map(|&(kb, nr, _)| kb * nr / 1024).sum();
    let free_mb: u64 = pools.iter().map(|&(kb, _, free)| kb * free / 1024).sum();
    let detail = pools
        .iter()
        .filter(|p| p.1 > 0)
        .map(|&(kb, nr, free)| format!("{} pages: {nr} reserved, {free} free", size(kb)))
        .collect::<Vec<_>>()
        .join("; ");
    // Each pool needs its mbufs (about 2.5 KB each with headroom and header) plus EAL overhead.
    let estimate = (u64::from(d.mbufs) * 5 / 2 * d.worker_cores.len() as u64).div_ceil(1024) + 64;
    let need = d.memory_mb.map_or(estimate, u64::from);
    let setup = format!(
        "run `sudo scripts/hugepages setup --memory {}M --node {}`",
        need.max(1024),
        d.numa_node
    );
    if reserved_mb == 0 {
        r.push(
            Verdict::Fail,
            "hugepages",
            format!("no hugepages are reserved; {setup} (or set dpdk.no_huge = true for tests)"),
        );
    } else if free_mb < need {
        r.push(
            Verdict::Fail,
            "hugepages",
            format!("{free_mb} MB of hugepages free ({detail}) but about {need} MB are needed; {setup}, or stop the process holding them"),
        );
    } else {
        r.push(
            Verdict::Ok,
            "hugepages",
            format!(
                "{free_mb} MB free of {reserved_mb} MB reserved ({detail}); about {need} MB needed"
            ),
        );
    }
    if d.memory_mb.is_some() && reserved_mb > 0 {
        let node_dir = format!("/sys/devices/system/node/node{}/hugepages", d.numa_node);
        let node_free: u64 = hugepage_pools(sys, &node_dir)
            .iter()
            .map(|&(kb, _, free)| kb * free / 1024)
            .sum();
        if sys.exists(&node_dir) && node_free < need {
            r.push(
                Verdict::Fail,
                "hugepages",
                format!(
                    "dpdk.numa_node {} has only {node_free} MB of hugepages free but memory_mb = {need}; {setup}",
                    d.numa_node
                ),
            );
        }
    }
    let mounts = sys.read("/proc/mounts").unwrap_or_default();
    let mounted: Vec<&str> = mounts
        .lines()
        .filter_map(|l| {
            l.split_whitespace()
                .collect::<Vec<_>>()
                .get(1..3)
                .map(|f| (f[0], f[1]))
        })
        .filter(|(_, t)| *t == "hugetlbfs")
        .map(|(m, _)| m)
        .collect();
    if mounted.is_empty() {
        r.push(Verdict::Fail, "hugetlbfs", "no hugetlbfs is mounted, so DPDK cannot map hugepages; run `sudo scripts/hugepages setup` (it mounts /dev/hugepages)");
    } else {
        r.push(
            Verdict::Ok,
            "hugetlbfs",
            format!("mounted on {}", mounted.join(", ")),
        );
    }
}

/// Checks each device; returns the NUMA node of each PCI device that reports one.
fn devices(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) -> Vec<(String, usize)> {
    let mut nodes = Vec::new();
    let mut needs_vfio = false;
    for dev in &d.devices {
        let name = dev.split(',').next().unwrap_or("");
        let topic = format!("device {name}");
        if crate::config::device_kind(dev) == Ok(DeviceKind::Pci) {
            let base = format!("/sys/bus/pci/devices/{name}");
            if !sys.exists(&base) {
                r.push(
                    Verdict::Fail,
                    topic,
                    format!("no PCI device {name} on this host; list the NICs with `scripts/bind-nic status` and fix dpdk.devices"),
                );
                continue;
            }
            if let Some(n) = sys
                .read(&format!("{base}/numa_node"))
                .and_then(|s| s.parse::<i64>().ok())
            {
                if let Ok(n) = usize::try_from(n) {
                    nodes.push((name.to_owned(), n));
                }
            }
            let driver = std::fs::read_link(sys.path(&format!("{base}/driver")))
                .ok()
                .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
            match driver.as_deref() {
                Some("vfio-pci") => {
                    needs_vfio = true;
                    r.push(Verdict::Ok, topic, "bound to vfio-pci");
                }
                Some(drv @ ("uio_pci_generic" | "igb_uio")) => r.push(
                    Verdict::Warn,
                    topic,
                    format!(
                        "bound to {drv}, which works but gives the device unrestricted DMA; prefer vfio-pci: \
                         `sudo scripts/bind-nic bind {name} --driver vfio-pci`"
                    ),
                ),
                Some(drv @ ("mlx5_core" | "mlx4_core")) => r.push(
                    Verdict::Ok,
                    topic,
                    format!("bound to {drv}: a bifurcated driver, DPDK uses it without rebinding (needs rdma-core)"),
                ),
                Some(drv) => {
                    needs_vfio = true;
                    r.push(
                        Verdict::Fail,
                        topic,
                        format!(
                            "bound to the kernel driver {drv}, so DPDK cannot use it; bind it with \
                             `sudo scripts/bind-nic bind {name}` (vfio-pci; undo with `scripts/bind-nic unbind {name} --driver {drv}`)"
                        ),
                    );
                }
                None => {
                    needs_vfio = true;
                    r.push(
                        Verdict::Fail,
                        topic,
                        format!("bound to no driver; bind it with `sudo scripts/bind-nic bind {name}` (vfio-pci)"),
                    );
                }
            }
        } else if name.starts_with("net_af_packet") {
            let iface = dev
                .split(',')
                .skip(1)
                .find_map(|kv| kv.strip_prefix("iface="));
            let Some(iface) = iface else {
                r.push(
                    Verdict::Fail,
                    topic,
                    format!("{dev:?} names no interface; write it as \"{name},iface=IFACE\""),
                );
                continue;
            };
            let base = format!("/sys/class/net/{iface}");
            if !sys.exists(&base) {
                r.push(
                    Verdict::Fail,
                    topic,
                    format!("interface {iface} does not exist; create it (e.g. `ip link add {iface} type veth peer name {iface}p`) or fix dpdk.devices"),
                );
                continue;
            }
            let flags = sys
                .read(&format!("{base}/flags"))
                .and_then(|s| u32::from_str_radix(s.trim_start_matches("0x"), 16).ok());
            let up = match flags {
                Some(f) => f & 1 == 1,
                None => sys
                    .read(&format!("{base}/operstate"))
                    .is_some_and(|s| s == "up" || s == "unknown"),
            };
            if up {
                r.push(
                    Verdict::Ok,
                    topic,
                    format!("interface {iface} exists and is up"),
                );
            } else {
                r.push(
                    Verdict::Fail,
                    topic,
                    format!(
                        "interface {iface} is down; bring it up with `sudo ip link set {iface} up`"
                    ),
                );
            }
        } else if name.starts_with("net_null") || name.starts_with("net_ring") {
            r.push(Verdict::Ok, topic, "virtual device; nothing to prepare");
        } else {
            r.push(
                Verdict::Ok,
                topic,
                "virtual device; not checked by preflight (see its DPDK driver guide)",
            );
        }
    }
    if needs_vfio {
        vfio(r, sys);
    }
    nodes
}

fn vfio(r: &mut Report, sys: &Sys<'_>) {
    let noiommu = sys
        .read("/sys/module/vfio/parameters/enable_unsafe_noiommu_mode")
        .is_some_and(|s| s == "Y" || s == "1");
    if !sys.list("/sys/kernel/iommu_groups").is_empty() {
        r.push(
            Verdict::Ok,
            "iommu",
            "the IOMMU is on (/sys/kernel/iommu_groups is populated)",
        );
    } else if noiommu {
        r.push(
            Verdict::Warn,
            "iommu",
            "no IOMMU groups; vfio runs in unsafe no-IOMMU mode (no DMA protection); enable the IOMMU for production",
        );
    } else {
        r.push(
            Verdict::Fail,
            "iommu",
            "no IOMMU groups, so vfio-pci cannot take the NIC; enable VT-d/AMD-Vi in the firmware and add \
             `intel_iommu=on iommu=pt` (Intel) or `amd_iommu=on iommu=pt` (AMD) to the kernel command line, then reboot",
        );
    }
    if sys.exists("/sys/module/vfio_pci") {
        r.push(Verdict::Ok, "vfio-pci", "the vfio_pci module is loaded");
    } else {
        r.push(
            Verdict::Fail,
            "vfio-pci",
            "the vfio_pci module is not loaded; run `sudo modprobe vfio-pci` (scripts/bind-nic bind does it)",
        );
    }
    if sys.exists("/dev/vfio/vfio") {
        r.push(Verdict::Ok, "/dev/vfio/vfio", "present");
    } else {
        r.push(
            Verdict::Fail,
            "/dev/vfio/vfio",
            "missing; load the module with `sudo modprobe vfio-pci`",
        );
    }
}

/// The NUMA node of a cpu, from its `nodeN` entry.
fn cpu_node(sys: &Sys<'_>, cpu: usize) -> Option<usize> {
    sys.list(&format!("/sys/devices/system/cpu/cpu{cpu}"))
        .iter()
        .find_map(|n| n.strip_prefix("node")?.parse().ok())
}

fn numa(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig, nic_nodes: &[(String, usize)]) {
    if nic_nodes.is_empty() {
        r.push(
            Verdict::Ok,
            "numa",
            "no PCI NIC reports a NUMA node (virtual devices or a single-node host); nothing to match",
        );
        return;
    }
    let mut bad = Vec::new();
    for &(ref nic, node) in nic_nodes {
        for &c in &d.worker_cores {
            if let Some(cn) = cpu_node(sys, c) {
                if cn != node {
                    bad.push(format!(
                        "worker core {c} is on node {cn} but {nic} is on node {node}"
                    ));
                }
            }
        }
        if !d.no_huge && d.memory_mb.is_some() && d.numa_node != node {
            bad.push(format!(
                "dpdk.numa_node = {} but {nic} is on node {node} (set numa_node = {node})",
                d.numa_node
            ));
        }
    }
    if bad.is_empty() {
        let nodes: Vec<String> = nic_nodes
            .iter()
            .map(|(n, node)| format!("{n} on node {node}"))
            .collect();
        r.push(
            Verdict::Ok,
            "numa",
            format!(
                "worker cores share the NICs' NUMA node ({})",
                nodes.join(", ")
            ),
        );
    } else {
        r.push(
            Verdict::Warn,
            "numa",
            format!(
                "{}; every packet then crosses the socket interconnect: pick worker cores on the NIC's node \
                 (`lscpu -e=CPU,NODE`) or move the NIC",
                bad.join("; ")
            ),
        );
    }
}

fn governor(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) {
    let mut slow = Vec::new();
    let mut seen = false;
    for &c in &d.worker_cores {
        if let Some(g) = sys.read(&format!(
            "/sys/devices/system/cpu/cpu{c}/cpufreq/scaling_governor"
        )) {
            seen = true;
            if g != "performance" {
                slow.push(format!("core {c} uses {g}"));
            }
        }
    }
    if !seen {
        r.push(
            Verdict::Ok,
            "governor",
            "no cpufreq control exposed for the worker cores (fixed frequency or a VM)",
        );
    } else if slow.is_empty() {
        r.push(
            Verdict::Ok,
            "governor",
            "worker cores use the performance governor",
        );
    } else {
        r.push(
            Verdict::Warn,
            "governor",
            format!(
                "{}: the clock drops while the loop polls and latency rises; run `sudo cpupower -c {} frequency-set -g performance`",
                slow.join(", "),
                list(&d.worker_cores)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::MediaConfig;
    use std::fs;

    /// A fake `/` in a temp dir, removed on drop.
    struct Tree(PathBuf);

    impl Tree {
        /// Two cpus per test: 4 online cores, cores 0-1 on node 0 and 2-3 on node 1.
        fn new(name: &str) -> Self {
            let dir = std::env::temp_dir().join(format!(
                "callbridge-preflight-{}-{name}",
                std::process::id()
            ));
            let _ = fs::remove_dir_all(&dir);
            let t = Self(dir);
            t.write("sys/devices/system/cpu/online", "0-3\n");
            t.write("sys/devices/system/cpu/isolated", "\n");
            t.write("proc/cmdline", "BOOT_IMAGE=/vmlinuz root=/dev/sda1 quiet\n");
            t.write("proc/mounts", "proc /proc proc rw 0 0\n");
            for c in 0..4 {
                t.mkdir(&format!("sys/devices/system/cpu/cpu{c}/node{}", c / 2));
            }
            t.mkdir("sys/kernel/mm/hugepages/hugepages-2048kB");
            t.write(
                "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
                "0\n",
            );
            t.write(
                "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
                "0\n",
            );
            t
        }

        fn write(&self, rel: &str, text: &str) {
            let p = self.0.join(rel);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }

        fn mkdir(&self, rel: &str) {
            fs::create_dir_all(self.0.join(rel)).unwrap();
        }

        /// A PCI NIC on `node` bound to `driver` (None: unbound).
        fn nic(&self, addr: &str, node: i32, driver: Option<&str>) {
            let base = format!("sys/bus/pci/devices/{addr}");
            self.write(&format!("{base}/numa_node"), &format!("{node}\n"));
            if let Some(drv) = driver {
                let target = self.0.join(format!("sys/bus/pci/drivers/{drv}"));
                fs::create_dir_all(&target).unwrap();
                std::os::unix::fs::symlink(target, self.0.join(format!("{base}/driver"))).unwrap();
            }
        }

        fn run(&self, d: DpdkConfig) -> Report {
            run_with_root(&config(d), &self.0)
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn config(d: DpdkConfig) -> Config {
        Config {
            media: MediaConfig {
                backend: Backend::Dpdk,
                address: [198, 18, 0, 1].into(),
                ..MediaConfig::default()
            },
            dpdk: Some(d),
            ..Config::default()
        }
    }

    fn vdev(dev: &str) -> DpdkConfig {
        DpdkConfig {
            devices: vec![dev.into()],
            no_huge: true,
            memory_mb: Some(256),
            ..DpdkConfig::default()
        }
    }

    fn pci(addr: &str) -> DpdkConfig {
        DpdkConfig {
            worker_cores: vec![1],
            devices: vec![addr.into()],
            ..DpdkConfig::default()
        }
    }

    /// The single check about `topic`.
    fn one<'a>(r: &'a Report, topic: &str) -> &'a Check {
        let v = r.find(topic);
        assert_eq!(v.len(), 1, "expected one {topic:?} check in\n{r}");
        v[0]
    }

    fn verdict(r: &Report, topic: &str) -> Verdict {
        one(r, topic).verdict
    }

    #[test]
    fn isolated_worker_cores() {
        let t = Tree::new("isolated");
        let r = t.run(vdev("net_null0"));
        assert_eq!(verdict(&r, "cores"), Verdict::Ok);
        for topic in ["isolcpus", "nohz_full", "rcu_nocbs"] {
            let c = one(&r, topic);
            assert_eq!(c.verdict, Verdict::Warn, "{topic}");
            assert!(c.message.contains(&format!("{topic}=1")), "{}", c.message);
        }
        // Isolated through the kernel command line (with isolcpus flags) and sysfs.
        t.write(
            "proc/cmdline",
            "quiet isolcpus=managed_irq,domain,1-3 rcu_nocbs=1-3\n",
        );
        t.write("sys/devices/system/cpu/nohz_full", "1-3\n");
        let r = t.run(vdev("net_null0"));
        for topic in ["isolcpus", "nohz_full", "rcu_nocbs"] {
            assert_eq!(verdict(&r, topic), Verdict::Ok, "{topic}: {r}");
        }
        // Only some worker cores isolated: the message names the others.
        t.write("proc/cmdline", "quiet\n");
        t.write("sys/devices/system/cpu/isolated", "1\n");
        let r = t.run(DpdkConfig {
            worker_cores: vec![1, 3],
            ..vdev("net_null0")
        });
        let c = one(&r, "isolcpus");
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(
            c.message.starts_with("worker core(s) 3 are not isolated"),
            "{}",
            c.message
        );
        // Bare rcu_nocbs offloads every cpu.
        t.write("proc/cmdline", "rcu_nocbs\n");
        assert_eq!(verdict(&t.run(vdev("net_null0")), "rcu_nocbs"), Verdict::Ok);
    }

    #[test]
    fn shared_cores_are_refused_for_production() {
        let t = Tree::new("shared");
        let r = t.run(vdev("net_null0"));
        assert!(r.find("shared_cores").is_empty(), "{r}");
        let r = t.run(DpdkConfig {
            worker_cores: vec![1, 1],
            allow_shared_cores: true,
            ..vdev("net_null0")
        });
        let c = one(&r, "shared_cores");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.message.contains("tests and labs only"), "{}", c.message);
    }

    #[test]
    fn offline_cores_fail() {
        let t = Tree::new("offline");
        t.write("sys/devices/system/cpu/online", "0-1\n");
        let r = t.run(DpdkConfig {
            worker_cores: vec![1, 3],
            ..vdev("net_null0")
        });
        let c = one(&r, "cores");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.message.contains("core(s) 3 are not online (online: 0-1)"),
            "{}",
            c.message
        );
        assert!(!r.ok());
    }

    #[test]
    fn hugepages_none_some_and_not_needed() {
        let t = Tree::new("hugepages");
        let c = one(&t.run(vdev("net_null0")), "hugepages").clone();
        assert_eq!(c.verdict, Verdict::Ok);
        assert!(c.message.starts_with("not needed"), "{}", c.message);

        let r = t.run(pci("0000:03:00.0"));
        let c = one(&r, "hugepages");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.message.contains("no hugepages are reserved")
                && c.message.contains("scripts/hugepages setup"),
            "{}",
            c.message
        );
        assert_eq!(verdict(&r, "hugetlbfs"), Verdict::Fail);

        t.write(
            "sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages",
            "512\n",
        );
        t.write(
            "sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages",
            "500\n",
        );
        t.write(
            "proc/mounts",
            "proc /proc proc rw 0 0\nhugetlbfs /dev/hugepages hugetlbfs rw,relatime,pagesize=2M 0 0\n",
        );
        let r = t.run(pci("0000:03:00.0"));
        let c = one(&r, "hugepages");
        assert_eq!(c.verdict, Verdict::Ok, "{}", c.message);
        assert!(
            c.message
                .starts_with("1000 MB free of 1024 MB reserved (2M pages: 512 reserved, 500 free)"),
            "{}",
            c.message
        );
        assert_eq!(one(&r, "hugetlbfs").message, "mounted on /dev/hugepages");

        // Asking for more than is free.
        let r = t.run(DpdkConfig {
            memory_mb: Some(2048),
            ..pci("0000:03:00.0")
        });
        let c = one(&r, "hugepages");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.message.contains("2048 MB are needed"), "{}", c.message);
    }

    #[test]
    fn pci_driver_not_vfio() {
        let t = Tree::new("driver");
        t.nic("0000:03:00.0", 0, Some("ixgbe"));
        let r = t.run(pci("0000:03:00.0"));
        let c = one(&r, "device 0000:03:00.0");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.message.contains("kernel driver ixgbe")
                && c.message.contains("scripts/bind-nic bind 0000:03:00.0"),
            "{}",
            c.message
        );
        // vfio prerequisites are checked because the NIC must go to vfio-pci.
        assert_eq!(verdict(&r, "iommu"), Verdict::Fail);
        assert_eq!(verdict(&r, "vfio-pci"), Verdict::Fail);
        assert_eq!(verdict(&r, "/dev/vfio/vfio"), Verdict::Fail);
        assert!(!r.ok());

        let t = Tree::new("driver-vfio");
        t.nic("0000:03:00.0", 0, Some("vfio-pci"));
        t.mkdir("sys/kernel/iommu_groups/17");
        t.mkdir("sys/module/vfio_pci");
        t.write("dev/vfio/vfio", "");
        let r = t.run(pci("0000:03:00.0"));
        for topic in ["device 0000:03:00.0", "iommu", "vfio-pci", "/dev/vfio/vfio"] {
            assert_eq!(verdict(&r, topic), Verdict::Ok, "{topic}: {r}");
        }

        let t = Tree::new("driver-other");
        t.nic("0000:03:00.0", 0, Some("uio_pci_generic"));
        t.nic("0000:04:00.0", 0, None);
        t.nic("0000:05:00.0", 0, Some("mlx5_core"));
        let r = t.run(DpdkConfig {
            devices: vec![
                "0000:03:00.0".into(),
                "0000:04:00.0".into(),
                "0000:05:00.0".into(),
                "0000:06:00.0".into(),
            ],
            ..pci("0000:03:00.0")
        });
        assert_eq!(verdict(&r, "device 0000:03:00.0"), Verdict::Warn);
        assert!(one(&r, "device 0000:04:00.0")
            .message
            .starts_with("bound to no driver"));
        assert_eq!(verdict(&r, "device 0000:05:00.0"), Verdict::Ok);
        let c = one(&r, "device 0000:06:00.0");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.message.starts_with("no PCI device 0000:06:00.0"),
            "{}",
            c.message
        );
    }

    #[test]
    fn numa_mismatch() {
        let t = Tree::new("numa");
        t.nic("0000:03:00.0", 0, Some("vfio-pci"));
        let r = t.run(DpdkConfig {
            worker_cores: vec![1, 2],
            ..pci("0000:03:00.0")
        });
        let c = one(&r, "numa");
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(
            c.message
                .starts_with("worker core 2 is on node 1 but 0000:03:00.0 is on node 0"),
            "{}",
            c.message
        );

        let r = t.run(DpdkConfig {
            worker_cores: vec![1],
            ..pci("0000:03:00.0")
        });
        assert_eq!(verdict(&r, "numa"), Verdict::Ok);

        // memory_mb's node must be the NIC's too.
        let r = t.run(DpdkConfig {
            worker_cores: vec![1],
            memory_mb: Some(512),
            numa_node: 1,
            ..pci("0000:03:00.0")
        });
        assert!(one(&r, "numa").message.contains("set numa_node = 0"));

        // A NIC reporting no node (-1) and virtual devices have nothing to match.
        let t = Tree::new("numa-none");
        t.nic("0000:03:00.0", -1, Some("vfio-pci"));
        assert_eq!(
            verdict(
                &t.run(DpdkConfig {
                    worker_cores: vec![2],
                    ..pci("0000:03:00.0")
                }),
                "numa"
            ),
            Verdict::Ok
        );
        assert_eq!(verdict(&t.run(vdev("net_null0")), "numa"), Verdict::Ok);
    }

    #[test]
    fn af_packet_interface() {
        let t = Tree::new("iface");
        let r = t.run(vdev("net_af_packet0,iface=veth0"));
        let c = one(&r, "device net_af_packet0");
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(
            c.message.starts_with("interface veth0 does not exist"),
            "{}",
            c.message
        );

        t.write("sys/class/net/veth0/flags", "0x1002\n");
        let c = one(
            &t.run(vdev("net_af_packet0,iface=veth0")),
            "device net_af_packet0",
        )
        .clone();
        assert_eq!(c.verdict, Verdict::Fail);
        assert!(c.message.contains("ip link set veth0 up"), "{}", c.message);

        t.write("sys/class/net/veth0/flags", "0x1003\n");
        let r = t.run(vdev("net_af_packet0,iface=veth0"));
        assert_eq!(verdict(&r, "device net_af_packet0"), Verdict::Ok);
        // No vfio checks for virtual devices.
        assert!(r.find("iommu").is_empty());

        assert_eq!(
            verdict(&t.run(vdev("net_af_packet0")), "device net_af_packet0"),
            Verdict::Fail
        );
        assert_eq!(
            verdict(&t.run(vdev("net_ring0")), "device net_ring0"),
            Verdict::Ok
        );
    }

    #[test]
    fn cpu_governor() {
        let t = Tree::new("governor");
        assert_eq!(verdict(&t.run(vdev("net_null0")), "governor"), Verdict::Ok);
        t.write(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "powersave\n",
        );
        let c = one(&t.run(vdev("net_null0")), "governor").clone();
        assert_eq!(c.verdict, Verdict::Warn);
        assert!(
            c.message.starts_with("core 1 uses powersave") && c.message.contains("-g performance"),
            "{}",
            c.message
        );
        t.write(
            "sys/devices/system/cpu/cpu1/cpufreq/scaling_governor",
            "performance\n",
        );
        assert_eq!(verdict(&t.run(vdev("net_null0")), "governor"), Verdict::Ok);
    }

    #[test]
    fn report_display_and_exit_status() {
        let t = Tree::new("display");
        t.write("proc/cmdline", "isolcpus=1 nohz_full=1 rcu_nocbs=1\n");
        let mut r = t.run(vdev("net_null0"));
        assert!(r.ok(), "{r}");
        r.config = Some("/etc/callbridge.toml".into());
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "preflight for /etc/callbridge.toml");
        assert!(
            lines[1].starts_with("ok    eal: EAL arguments: -l 0 --vdev net_null0 --no-pci "),
            "{}",
            lines[1]
        );
        assert!(
            lines.contains(&"ok    device net_null0: virtual device; nothing to prepare"),
            "{text}"
        );
        assert!(lines.last().unwrap().starts_with("ready: "), "{text}");

        let r = t.run(vdev("net_af_packet0,iface=nope"));
        assert!(!r.ok());
        let text = r.to_string();
        assert!(
            text.contains("\nFAIL  device net_af_packet0: interface nope does not exist"),
            "{text}"
        );
        assert!(
            text.ends_with("failure(s)") && text.contains("NOT READY: "),
            "{text}"
        );
    }

    #[test]
    fn socket_backend_and_missing_section() {
        let r = run_with_root(&Config::default(), Path::new("/nonexistent"));
        assert!(r.ok());
        assert_eq!(r.checks.len(), 1);
        let mut c = Config::default();
        c.media.backend = Backend::Dpdk;
        assert!(!run_with_root(&c, Path::new("/nonexistent")).ok());
        // `run` adds the binary check for the dpdk backend.
        let r = run(&config(vdev("net_null0")), Path::new("cb.toml"));
        assert_eq!(verdict(&r, "binary") == Verdict::Ok, cfg!(feature = "dpdk"));
    }
}
