//! What the veth tests share: running commands, and a veth pair with its far end in a network
//! namespace of the test's own (198.18.0.2/24), deleted on drop.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::{Command as Proc, Output};

use std::time::{Duration, Instant};

use dp_api::{Codec, DataplaneHandle, Event, LegId, LegSpec, SrcMismatch};

/// A leg that accepts media only from `remote` (no learning), PCMU, no media timeout.
pub(crate) fn spec(id: LegId, remote: SocketAddr) -> LegSpec {
    LegSpec {
        id,
        remote: Some(remote),
        learn_remote: false,
        src_mismatch: SrcMismatch::Drop,
        codec: Codec::Pcmu,
        media_timeout: None,
    }
}

pub(crate) fn run(args: &[&str]) -> Output {
    Proc::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("could not run {args:?}: {e}"))
}

pub(crate) fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The veth pair and namespace of this run; dropping it deletes exactly them.
pub(crate) struct Net {
    pub(crate) ours: String,
    pub(crate) theirs: String,
    pub(crate) ns: String,
}

impl Net {
    pub(crate) fn create() -> Self {
        let pid = std::process::id();
        let net = Self {
            ours: format!("cbv0p{pid}"),
            theirs: format!("cbv1p{pid}"),
            ns: format!("cbns{pid}"),
        };
        let (a, b, ns) = (net.ours.as_str(), net.theirs.as_str(), net.ns.as_str());
        must(&["ip", "netns", "add", ns]);
        must(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
        must(&["ip", "link", "set", b, "netns", ns]);
        must(&["ip", "-n", ns, "addr", "add", "198.18.0.2/24", "dev", b]);
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        must(&["ip", "-n", ns, "link", "set", b, "up"]);
        // The kernel would leave UDP checksums to "hardware" on a veth; we receive them
        // through AF_PACKET, so have them computed.
        must(&["ip", "netns", "exec", ns, "ethtool", "-K", b, "tx", "off"]);
        must(&["ip", "link", "set", a, "up"]);
        net
    }

    /// IPv6 on the link: the far end gets `far` (e.g. `2001:2::2/64`) with `nodad`, so it is
    /// usable at once, after IPv6 is enabled on it. On our end the kernel's IPv6 is disabled:
    /// like for IPv4 it owns no address there (not even a link-local one), so it neither sends
    /// its own NDP/MLD/router solicitations through the link nor reacts (e.g. by forwarding)
    /// to what is meant for the DPDK side. Both settings go away with the link.
    pub(crate) fn add_ipv6(&self, far: &str) {
        let (ours, theirs) = (self.ours.as_str(), self.theirs.as_str());
        must(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{ours}.disable_ipv6=1"),
        ]);
        let enable = format!("net.ipv6.conf.{theirs}.disable_ipv6=0");
        must(&[
            "ip", "netns", "exec", &self.ns, "sysctl", "-q", "-w", &enable,
        ]);
        must(&[
            "ip", "-n", &self.ns, "addr", "add", far, "dev", theirs, "nodad",
        ]);
    }

    pub(crate) fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", self.ns.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = run(&["ip", "link", "del", self.ours.as_str()]);
        let _ = run(&["ip", "netns", "del", self.ns.as_str()]);
        if let Some(dir) = callbridge_worker::dpdk_io::eal_runtime_dir() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Fails loudly (never skips) unless the kernel has IPv6 (on top of
/// [`require_root_and_tools`]).
pub(crate) fn require_ipv6() {
    require_root_and_tools();
    assert!(
        std::path::Path::new("/proc/sys/net/ipv6").exists(),
        "this test needs a kernel with IPv6 (no /proc/sys/net/ipv6)"
    );
    let found = run(&["sh", "-c", "command -v sysctl"]).status.success();
    assert!(found, "sysctl is missing (package procps)");
}

/// Fails loudly (never skips) unless the test runs as root with the tools it needs.
pub(crate) fn require_root_and_tools() {
    let uid = must(&["id", "-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "this test needs root (network namespaces, veth, AF_PACKET)"
    );
    for tool in ["ip", "ethtool", "ping"] {
        let found = run(&["sh", "-c", &format!("command -v {tool}")])
            .status
            .success();
        assert!(
            found,
            "{tool} is missing (packages iproute2, ethtool, iputils-ping)"
        );
    }
}

/// Waits (up to 20 s) for `n` `LegAdded` events; any other event fails the test.
pub(crate) fn wait_legs_added(handle: &DataplaneHandle, n: usize) {
    let end = Instant::now() + Duration::from_secs(20);
    let mut added = 0;
    while added < n {
        let ev = handle
            .events()
            .recv_timeout(end.saturating_duration_since(Instant::now()))
            .expect("LegAdded events");
        match ev {
            Event::LegAdded { .. } => added += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// From the namespace: `ping` (with `flags`, e.g. `-6`) our address `us` three times, then
/// check the kernel's neighbour entry for it holds our port's MAC. `stats` is printed on
/// failure.
pub(crate) fn ping_and_check_neighbour(
    net: &Net,
    flags: &[&str],
    us: &str,
    stats: &dyn std::fmt::Debug,
) {
    let mut ping = vec!["ping"];
    ping.extend_from_slice(flags);
    ping.extend_from_slice(&["-c", "3", "-W", "5", us]);
    let out = net.exec(&ping);
    assert!(
        out.status.success(),
        "{ping:?} failed: {}{}\n{stats:#?}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let mut show = vec!["ip"];
    show.extend_from_slice(flags);
    show.extend_from_slice(&["neigh", "show", us]);
    let neigh = net.exec(&show);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    let our_mac =
        std::fs::read_to_string(format!("/sys/class/net/{}/address", net.ours)).expect("our MAC");
    assert!(
        neigh.contains(our_mac.trim()),
        "neighbour entry {neigh:?} lacks our MAC {our_mac}"
    );
}
