//! Devices: a PCI NIC's presence, driver and VFIO set-up; a vdev's interface.

use super::{Report, Sys, Verdict};
use crate::config::{DeviceKind, DpdkConfig};

/// Checks each device; returns the NUMA node of each PCI device that reports one.
pub(super) fn devices(r: &mut Report, sys: &Sys<'_>, d: &DpdkConfig) -> Vec<(String, usize)> {
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
