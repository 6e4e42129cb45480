//! Hugepages: reserved and free pages per size, a mounted hugetlbfs, enough for the pools.

use super::{Report, Sys, Verdict};
use crate::config::DpdkConfig;

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

pub(super) fn hugepages(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) {
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
