//! `callbridge preflight`: is this host ready for the configured data plane?
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
//! For the socket backend instead: every address bindable (media, `sip.listen`,
//! `http.listen`), a sample of the media ports free and the range outside the kernel's
//! ephemeral ports (`/proc/sys/net/ipv4/ip_local_port_range`, WARN), the file-descriptor budget
//! (`/proc/self/limits`' hard limit, which `serve` raises the soft one to, against 4 sockets a
//! call plus fixed use and a margin, see `config::budget`: WARN when it carries fewer calls than
//! `media.ports` holds, FAIL when not even one), and `media.cores` online.
//!
//! With `media.nodes` (serve drives media nodes over ng) the only checks are that each node
//! answers an ng `ping`.
//!
//! Every path is read below an injectable root ([`run_with_root`]) so tests build a fake tree.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::config::{Backend, Config, CpuSet};

mod cores;
mod devices;
mod hugepages;
mod nodes;
mod socket;

use cores::{cores, governor, numa};
use devices::devices;
use hugepages::hugepages;

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
    if !cfg.media.nodes.is_empty() {
        // `serve` drives media nodes: no local data plane to check, only the nodes.
        nodes::nodes(&mut report, cfg);
        return report;
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
            socket::socket(&mut r, &Sys { root }, cfg);
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
pub(super) struct Sys<'a> {
    root: &'a Path,
}

impl Sys<'_> {
    pub(super) fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    pub(super) fn read(&self, abs: &str) -> Option<String> {
        std::fs::read_to_string(self.path(abs))
            .ok()
            .map(|s| s.trim().to_owned())
    }

    pub(super) fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }

    pub(super) fn cpus(&self, abs: &str) -> Option<CpuSet> {
        self.read(abs).and_then(|s| CpuSet::parse(&s).ok())
    }

    /// The names in a directory, sorted; empty when missing.
    pub(super) fn list(&self, abs: &str) -> Vec<String> {
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
    pub(super) fn cmdline(&self, key: &str) -> Option<String> {
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
    pub(super) fn cmdline_cpus(&self, key: &str) -> Option<CpuSet> {
        let v = self.cmdline(key)?;
        let items: Vec<&str> = v
            .split(',')
            .filter(|s| s.starts_with(|c: char| c.is_ascii_digit()))
            .collect();
        CpuSet::parse(&items.join(",")).ok()
    }
}

pub(super) fn list(cpus: &[usize]) -> String {
    cpus.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests;
