//! Network namespaces and veth pairs for tests that need more than loopback (the DPDK
//! backend owns a whole interface): [`VethLab`] creates them under names unique to this
//! process and deletes exactly those names when dropped, on failure too.
//!
//! Everything here runs `ip`, `ethtool` and `ss` (iproute2, ethtool) and needs root.

use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};

/// Runs `args[0]` with the rest as arguments and collects its output.
///
/// # Panics
/// If the program cannot be started at all.
#[must_use]
pub fn run(args: &[&str]) -> Output {
    Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"))
}

/// Like [`run`], but a non-zero exit panics with the command's output; returns stdout.
///
/// # Panics
/// If the command fails.
pub fn must(args: &[&str]) -> String {
    let out = run(args);
    assert!(
        out.status.success(),
        "{args:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Panics unless this process is root and `tools` are on `PATH`.
///
/// # Panics
/// Not root, or a tool is missing (the message names the packages).
pub fn require_root_and(tools: &[&str]) {
    let uid = must(&["id", "-u"]);
    assert_eq!(
        uid.trim(),
        "0",
        "this test needs root (network namespaces, veth pairs, DPDK's AF_PACKET port); \
         run it as root (CI does: .ci/run)"
    );
    for tool in tools {
        let found = run(&["sh", "-c", &format!("command -v {tool}")])
            .status
            .success();
        assert!(
            found,
            "{tool} is missing (scripts/install-test-deps installs iproute2, ethtool, iputils-ping)"
        );
    }
}

/// True when some socket in namespace `ns` has UDP `addr` bound (`ss` inside the namespace).
#[must_use]
pub fn udp_bound(ns: &str, addr: SocketAddr) -> bool {
    let filter = format!("src {addr}");
    let out = run(&[
        "ip", "netns", "exec", ns, "ss", "-H", "-u", "-a", "-n", &filter,
    ]);
    out.status.success() && !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

/// One veth pair: `host` stays in our namespace, `peer` was moved into the lab's namespace.
#[derive(Debug, Clone)]
pub struct Veth {
    /// The name in our (the host's) namespace.
    pub host: String,
    /// The name inside the namespace.
    pub peer: String,
}

/// A network namespace plus veth pairs into it, all named by the caller (names should carry the
/// PID). Dropping it deletes exactly the links and the namespace it created, in reverse order,
/// and nothing else.
#[derive(Debug)]
pub struct VethLab {
    ns: String,
    veths: Vec<Veth>,
    ns_created: bool,
}

impl VethLab {
    /// Creates the namespace `ns` with `lo` up.
    ///
    /// # Panics
    /// If `ip netns add` fails (e.g. the name exists: a previous run with the same PID left it).
    #[must_use]
    pub fn new(ns: &str) -> Self {
        let mut lab = Self {
            ns: ns.into(),
            veths: Vec::new(),
            ns_created: false,
        };
        must(&["ip", "netns", "add", ns]);
        lab.ns_created = true;
        must(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        lab
    }

    /// The namespace's name.
    #[must_use]
    pub fn ns(&self) -> &str {
        &self.ns
    }

    /// Creates the veth pair `host` ↔ `peer`, moves `peer` into the namespace and gives it
    /// `peer_cidr` (e.g. `198.18.0.2/24`); `host_cidr` (if any) goes on `host`. Both ends are
    /// brought up. Turns off transmit checksum offload on `peer`, so that what the namespace
    /// sends carries real checksums (an AF_PACKET reader on `host` sees the frames as sent).
    ///
    /// # Panics
    /// If a step fails (the pair is deleted again when the lab drops).
    pub fn add_veth(
        &mut self,
        host: &str,
        peer: &str,
        host_cidr: Option<&str>,
        peer_cidr: &str,
    ) -> &Veth {
        must(&[
            "ip", "link", "add", host, "type", "veth", "peer", "name", peer,
        ]);
        self.veths.push(Veth {
            host: host.into(),
            peer: peer.into(),
        });
        let ns = self.ns.as_str();
        must(&["ip", "link", "set", peer, "netns", ns]);
        must(&["ip", "-n", ns, "addr", "add", peer_cidr, "dev", peer]);
        must(&["ip", "-n", ns, "link", "set", peer, "up"]);
        must(&[
            "ip", "netns", "exec", ns, "ethtool", "-K", peer, "tx", "off",
        ]);
        if let Some(cidr) = host_cidr {
            must(&["ip", "addr", "add", cidr, "dev", host]);
        }
        must(&["ip", "link", "set", host, "up"]);
        self.veths.last().expect("just pushed")
    }

    /// Runs `args` inside the namespace (`ip netns exec NS …`).
    #[must_use]
    pub fn exec(&self, args: &[&str]) -> Output {
        let mut v = vec!["ip", "netns", "exec", self.ns.as_str()];
        v.extend_from_slice(args);
        run(&v)
    }
}

impl Drop for VethLab {
    fn drop(&mut self) {
        // Deleting one end of a veth pair deletes both (so would deleting the namespace);
        // delete each pair by name first, so nothing stays behind in our namespace even if
        // the namespace cannot be deleted.
        for v in self.veths.iter().rev() {
            let _ = run(&["ip", "link", "del", v.host.as_str()]);
        }
        if self.ns_created {
            let _ = run(&["ip", "netns", "del", self.ns.as_str()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_and_must_report_the_exit() {
        assert!(run(&["true"]).status.success());
        assert!(!run(&["false"]).status.success());
        assert_eq!(must(&["echo", "hi"]), "hi\n");
        let e = std::panic::catch_unwind(|| must(&["sh", "-c", "echo oops >&2; exit 3"]))
            .expect_err("must panics on failure");
        let msg = e.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("oops") && msg.contains("exit status: 3"),
            "{msg}"
        );
    }
}
