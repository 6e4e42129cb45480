//! What the veth tests share: running commands, and a veth pair with its far end in a network
//! namespace of the test's own (198.18.0.2/24), deleted on drop.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::process::{Command as Proc, Output};

use std::time::{Duration, Instant};

use callbridge_worker::{Dataplane, DpdkSettings};
use dp_api::{Codec, Command, DataplaneHandle, Event, Latch, LegId, LegSpec, SrcMismatch};

/// A leg that accepts media only from `remote` (no learning), PCMU, no media timeout.
pub(crate) fn spec(id: LegId, remote: SocketAddr) -> LegSpec {
    LegSpec {
        id,
        remote: Some(remote),
        latch: Latch::Off,
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

/// DPDK on our end of the veth through `net_af_packet0` (`qpairs` queue pairs), no
/// hugepages, small rings: what the veth tests run on.
pub(crate) fn af_packet_settings(
    net: &Net,
    qpairs: u16,
    mbufs: u32,
    prefix_len: u8,
) -> DpdkSettings {
    let dev = if qpairs > 1 {
        format!("net_af_packet0,iface={},qpairs={qpairs}", net.ours)
    } else {
        format!("net_af_packet0,iface={}", net.ours)
    };
    let mut s = DpdkSettings::new(vec![dev], "net_af_packet0");
    s.no_huge_mb = Some(256);
    s.mbufs = mbufs;
    s.rx_desc = 256;
    s.tx_desc = 256;
    s.prefix_len = prefix_len;
    s.extra_args = vec!["--log-level".into(), "lib.eal:warning".into()];
    s
}

/// Two RTP peers in the namespace on `peer`:40000 and :40002 (IPv4 or IPv6) sending `n`
/// packets each to our legs on `us` and counting what comes back, from which address (an
/// IPv6 `recvfrom` gives a 4-tuple; host and port are compared). Prints one line.
const PEERS_PY: &str = r#"
import socket, sys, time, select
peer, us, pa, pb, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
fam = socket.AF_INET6 if ":" in peer else socket.AF_INET
s1 = socket.socket(fam, socket.SOCK_DGRAM); s1.bind((peer, 40000))
s2 = socket.socket(fam, socket.SOCK_DGRAM); s2.bind((peer, 40002))
def rtp(seq, ssrc):
    return bytes([0x80, 0]) + seq.to_bytes(2, "big") + (seq * 160).to_bytes(4, "big") + ssrc.to_bytes(4, "big") + b"\xd5" * 160
got = {s1: 0, s2: 0}
bad = 0
want_from = {s1: (us, pa), s2: (us, pb)}
def drain(timeout):
    global bad
    r, _, _ = select.select([s1, s2], [], [], timeout)
    for s in r:
        data, src = s.recvfrom(2048)
        if src[:2] == want_from[s] and len(data) == 172 and data[0] >> 6 == 2:
            got[s] += 1
        else:
            bad += 1
            print("bad datagram from %r: %d bytes" % (src, len(data)), file=sys.stderr)
for i in range(n):
    s1.sendto(rtp(i, 0x1111), (us, pa))
    s2.sendto(rtp(i, 0x2222), (us, pb))
    drain(0.005)
end = time.time() + 10
while (got[s1] < n or got[s2] < n) and time.time() < end:
    drain(0.1)
print("a_to_b=%d b_to_a=%d bad=%d" % (got[s2], got[s1], bad))
"#;

/// Two legs bridged to peers on `peer`:40000 and :40002 in the namespace; every one of `n`
/// RTP packets each peer sends to its leg on `us` must come back to the other peer from the
/// other leg's address and port.
pub(crate) fn relay_between_two_peers(
    net: &Net,
    dp: &Dataplane,
    handle: &DataplaneHandle,
    us: IpAddr,
    peer: IpAddr,
    n: u32,
) {
    let a = handle.plan.allocate().unwrap();
    let b = handle.plan.allocate().unwrap();
    handle
        .send(Command::AddLeg(spec(a, SocketAddr::new(peer, 40000))))
        .unwrap();
    handle
        .send(Command::AddLeg(spec(b, SocketAddr::new(peer, 40002))))
        .unwrap();
    handle.send(Command::Bridge { a, b }).unwrap();
    wait_legs_added(handle, 2);
    let out = net.exec(&[
        "/usr/bin/python3",
        "-c",
        PEERS_PY,
        &peer.to_string(),
        &us.to_string(),
        &a.port().to_string(),
        &b.port().to_string(),
        &n.to_string(),
    ]);
    let report = String::from_utf8_lossy(&out.stdout).into_owned();
    let errors = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "RTP peers failed: {report}{errors}");
    assert_eq!(
        report.trim(),
        format!("a_to_b={n} b_to_a={n} bad=0"),
        "{errors}\n{:#?}",
        dp.stats()
    );
}
