//! Cores: online, isolated from the scheduler and its tick, RCU callbacks offloaded, shared
//! (labs only); the NUMA node of each worker core against the NICs'; the frequency governor.

use super::{list, Report, Sys, Verdict};
use crate::config::{CpuSet, DpdkConfig};

pub(super) fn cores(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) {
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

/// The NUMA node of a cpu, from its `nodeN` entry.
fn cpu_node(sys: &Sys<'_>, cpu: usize) -> Option<usize> {
    sys.list(&format!("/sys/devices/system/cpu/cpu{cpu}"))
        .iter()
        .find_map(|n| n.strip_prefix("node")?.parse().ok())
}

pub(super) fn numa(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig, nic_nodes: &[(String, usize)]) {
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

pub(super) fn governor(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) {
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
