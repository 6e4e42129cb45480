//! The DPDK backend's lab for the announce scenario: callbridge's media address on a DPDK port,
//! its customers' receivers beyond it in a network namespace this run creates.
//!
//! ```text
//!   host namespace                                       namespace cbann<pid>
//!   callbridge ── DPDK net_af_packet ── anh<pid> ═══ anp<pid> 198.18.40.2/24  (the receivers)
//!     media.address 198.18.40.1 (no kernel address on anh<pid>: DPDK owns the link)
//!   callbridge ── SIP, HTTP on loopback ── SIPp customers and agents, this benchmark
//! ```
//!
//! SIP stays on loopback: the customers' SDP answers name the receivers' address in the
//! namespace (`rtp_ip`), so the announcement leaves through DPDK (ARP resolved by callbridge's
//! netstack against the namespace's kernel) and arrives on a kernel socket that stamps it, as
//! on the socket backend. Transmit checksum offload is off on the namespace's end; nothing but
//! 198.18.40.0/24 is used. Dropping the lab deletes the namespace (and with it the veth pair)
//! and the EAL runtime directory of its file prefix.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context as _};
use nix::sched::{setns, CloneFlags};

/// The DPDK port's address (callbridge's `media.address`).
pub(crate) const MEDIA: Ipv4Addr = Ipv4Addr::new(198, 18, 40, 1);
/// The receivers' address, in the namespace.
pub(crate) const PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 40, 2);

/// The namespace and veth pair of one run.
#[derive(Debug)]
pub(crate) struct Lab {
    ns: String,
    host_dev: String,
    file_prefix: String,
}

impl Lab {
    /// Creates the namespace and the veth pair (see the module docs).
    ///
    /// # Errors
    /// Not root, `ip`/`ethtool`/`sysctl` missing, or a step fails (what was made is removed).
    pub(crate) fn create() -> anyhow::Result<Self> {
        let pid = std::process::id();
        let lab = Self {
            ns: format!("cbann{pid}"),
            host_dev: format!("anh{pid}"),
            file_prefix: format!("cbann{pid}"),
        };
        sh(&["ip", "netns", "add", &lab.ns])
            .context("the DPDK announce lab needs root and iproute2")?;
        // From here on, Drop removes the namespace (and the pair once its end is inside).
        let peer_dev = format!("anp{pid}");
        sh(&[
            "ip",
            "link",
            "add",
            &lab.host_dev,
            "type",
            "veth",
            "peer",
            "name",
            &peer_dev,
        ])?;
        if let Err(e) = sh(&["ip", "link", "set", &peer_dev, "netns", &lab.ns]) {
            let _ = sh(&["ip", "link", "del", &lab.host_dev]);
            return Err(e);
        }
        // Our end carries no address and no IPv6: the kernel sends nothing into DPDK's port.
        sh(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", lab.host_dev),
        ])?;
        sh(&["ip", "link", "set", &lab.host_dev, "up"])?;
        lab.exec(&["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"])?;
        lab.exec(&["ip", "link", "set", "lo", "up"])?;
        lab.exec(&["ip", "addr", "add", &format!("{PEER}/24"), "dev", &peer_dev])?;
        lab.exec(&["ip", "link", "set", &peer_dev, "up"])?;
        lab.exec(&["ethtool", "-K", &peer_dev, "tx", "off"])?;
        Ok(lab)
    }

    /// The `[dpdk]` table: `net_af_packet` on our end of the pair (one queue pair), EAL main core
    /// 0 and one worker on core 1, no hugepages, this run's file prefix.
    pub(crate) fn dpdk_table(&self) -> String {
        format!(
            "devices = [\"net_af_packet0,iface={},qpairs=1\"]\nmain_core = 0\nworker_cores = [1]\n\
             prefix_len = 24\nno_huge = true\nmemory_mb = 512\nfile_prefix = \"{}\"\n",
            self.host_dev, self.file_prefix
        )
    }

    /// Binds a UDP socket on `addr` inside the namespace: a short-lived thread enters it
    /// (`setns` changes only the calling thread) and creates the socket there; the socket stays
    /// in that namespace whichever thread uses it.
    pub(crate) fn bind_udp(&self, addr: SocketAddr) -> anyhow::Result<UdpSocket> {
        let path = PathBuf::from(format!("/var/run/netns/{}", self.ns));
        std::thread::spawn(move || -> anyhow::Result<UdpSocket> {
            let f = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
            setns(&f, CloneFlags::CLONE_NEWNET).context("setns into the announce lab")?;
            UdpSocket::bind(addr).with_context(|| format!("binding {addr} in the namespace"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the namespace thread panicked"))?
    }

    fn exec(&self, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["ip", "netns", "exec", &self.ns];
        a.extend_from_slice(args);
        sh(&a)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        // The pair goes with the namespace; in case its end never moved in:
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_dev])
            .stderr(std::process::Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(PathBuf::from("/var/run/dpdk").join(&self.file_prefix));
    }
}

/// Runs a command, failing loudly with its stderr.
fn sh(args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("running {args:?} (is it installed?)"))?;
    if !out.status.success() {
        bail!(
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
