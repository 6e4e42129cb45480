//! Preflight checks against fake sysfs/procfs trees.

use super::*;
use crate::config::DpdkConfig;
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
    assert!(r.ok(), "{r}");
    assert_eq!(r.find("config").len(), 1);
    // The socket backend's own checks follow (preflight/socket.rs).
    assert_eq!(r.find("http.listen").len(), 1);
    let mut c = Config::default();
    c.media.backend = Backend::Dpdk;
    assert!(!run_with_root(&c, Path::new("/nonexistent")).ok());
    // `run` adds the binary check for the dpdk backend.
    let r = run(&config(vdev("net_null0")), Path::new("cb.toml"));
    assert_eq!(verdict(&r, "binary") == Verdict::Ok, cfg!(feature = "dpdk"));
}
