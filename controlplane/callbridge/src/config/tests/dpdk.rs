//! `[dpdk]`: cores, devices, addresses, memory, descriptors, EAL arguments, [`CpuSet`].

use super::*;

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
fn dpdk_shared_cores_only_when_asked() {
    let e = dpdk_fail(
        &dpdk_with(10, "worker_cores = [1, 1]"),
        "10: dpdk.worker_cores[1]: ",
    );
    assert!(e.contains("allow_shared_cores"), "{e}");
    for cores in ["[1, 1]", "[0, 1]"] {
        let text = dpdk_with(
            10,
            &format!("worker_cores = {cores}\nallow_shared_cores = true"),
        );
        let c = parse_dpdk(&text).unwrap_or_else(|e| panic!("{cores}: {e}"));
        let d = c.dpdk.as_ref().expect("dpdk");
        assert!(d.allow_shared_cores);
        assert_eq!(d.worker_cores.len(), 2);
        assert_eq!(c.media.workers, 2);
    }
    // Still only online cores.
    let text = dpdk_with(10, "worker_cores = [1, 9]\nallow_shared_cores = true");
    let e = dpdk_fail(&text, "10: dpdk.worker_cores[1]: ");
    assert!(e.contains("not online"), "{e}");
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
        &dpdk_with(14, "gateway = \"198.18.1.254\"").replace("prefix_len = 24", "prefix_len = 16")
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
    assert!(parse_dpdk(&dpdk_with(16, "").replace("no_huge = true", "no_huge = false")).is_ok());
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
