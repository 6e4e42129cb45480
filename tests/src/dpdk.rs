//! The lab for black-box tests of the DPDK backend (`media.backend = "dpdk"`).
//!
//! ```text
//!   host namespace                                   namespace cbe2e<pid>
//!   callbridge ── DPDK net_af_packet ── cbdA<pid> ═══ cbdAp<pid> 198.18.0.2/24  (RTP: SIPp -mi)
//!     media.address 198.18.0.1 (no kernel IP on cbdA<pid>: DPDK owns it)
//!   callbridge ── kernel UDP ── cbdB<pid> 198.18.1.1 ═══ cbdBp<pid> 198.18.1.2/24 (SIP: SIPp -i)
//!   test ── HTTP 127.0.0.1 ── callbridge
//! ```
//!
//! [`DpdkLab::create`] builds this (needs root, `ip`, `ethtool`, `ping`, `ss`); dropping it
//! deletes exactly the two veth pairs, the namespace and the EAL runtime directory of its
//! `file_prefix`. Only addresses in 198.18.0.0/15 (benchmarking, RFC 2544) are used.
//!
//! The callbridge binary must be built with `--features dpdk`: [`bin_path`] picks it and
//! [`require_dpdk_build`] fails with the build command when it is not.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::{Config, Dpdk};
use crate::netns::{require_root_and, Veth, VethLab};
use crate::sipp::SippOptions;
use crate::workdir::Workdir;

/// `media.address`: owned by DPDK on the host end of the media veth pair.
pub const MEDIA_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The namespace's address on the media veth pair (SIPp's `-mi`).
pub const MEDIA_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The host's (kernel) address on the SIP veth pair (`sip.listen`).
pub const SIP_ADDR: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 1);
/// The namespace's address on the SIP veth pair (SIPp's `-i`).
pub const SIP_PEER: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 2);
/// EAL memory without hugepages (`dpdk.memory_mb` with `no_huge = true`).
pub const MEMORY_MB: u32 = 512;
/// The build command for a binary that can run these tests.
pub const BUILD_COMMAND: &str = "cargo build -p callbridge --features dpdk";

/// One lab per process: the names carry only the PID.
static CREATED: AtomicBool = AtomicBool::new(false);

/// The callbridge binary for DPDK tests: `$CALLBRIDGE_DPDK_BIN`, else the one
/// [`crate::server::bin_path`] picks (`$CALLBRIDGE_BIN`, else `<target>/debug/callbridge`;
/// `scripts/test` builds that with `--features callbridge/dpdk`).
///
/// # Panics
/// If the file does not exist.
#[must_use]
pub fn bin_path() -> PathBuf {
    match std::env::var_os("CALLBRIDGE_DPDK_BIN") {
        Some(p) => {
            let p = PathBuf::from(p);
            assert!(
                p.is_file(),
                "CALLBRIDGE_DPDK_BIN={} does not exist (build it with `{BUILD_COMMAND}`)",
                p.display()
            );
            p
        }
        None => crate::server::bin_path(),
    }
}

/// Asks `bin preflight` about `config` (written to `dpdk-preflight.toml` in `dir`) and panics,
/// with the build command, unless the binary reports that it was built with DPDK support.
/// Other preflight findings (isolated cores, hugepages, …) do not matter for a veth lab.
///
/// # Panics
/// If the binary lacks the `dpdk` feature or preflight cannot judge it.
pub fn require_dpdk_build(bin: &Path, dir: &Workdir, config: &Config) {
    let path = dir.write("dpdk-preflight.toml", &config.render());
    let out = Command::new(bin)
        .arg("preflight")
        .arg("--config")
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("built with DPDK support"),
        "{} was built without DPDK support (or preflight could not tell): build it with \
         `{BUILD_COMMAND}` (needs libdpdk-dev: scripts/install-test-deps), or point \
         CALLBRIDGE_DPDK_BIN at such a binary. `preflight` said ({}):\n{text}",
        bin.display(),
        out.status
    );
}

/// The two veth pairs and the namespace of [`DpdkLab::create`] (see the module docs).
#[derive(Debug)]
pub struct DpdkLab {
    lab: VethLab,
    media: Veth,
    sip: Veth,
    file_prefix: String,
    workers: usize,
}

impl DpdkLab {
    /// Creates the namespace `cbe2e<pid>`, the media pair `cbdA<pid>` ↔ `cbdAp<pid>`
    /// (198.18.0.2/24 inside, nothing on our end) and the SIP pair `cbdB<pid>` (198.18.1.1/24)
    /// ↔ `cbdBp<pid>` (198.18.1.2/24).
    ///
    /// # Panics
    /// Not root, a tool is missing, a step fails, or a second lab in this process.
    #[must_use]
    pub fn create() -> Self {
        require_root_and(&["ip", "ethtool", "ping", "ss"]);
        assert!(
            !CREATED.swap(true, Ordering::SeqCst),
            "one DpdkLab per test process (its names carry only the PID)"
        );
        let pid = std::process::id();
        let mut lab = VethLab::new(&format!("cbe2e{pid}"));
        let media = lab
            .add_veth(
                &format!("cbdA{pid}"),
                &format!("cbdAp{pid}"),
                None,
                &format!("{MEDIA_PEER}/24"),
            )
            .clone();
        // Our end carries no address, so the kernel has no business sending on it; without
        // IPv6 it does not even send router solicitations into DPDK's port.
        let _ = crate::netns::run(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{}.disable_ipv6=1", media.host),
        ]);
        let sip = lab
            .add_veth(
                &format!("cbdB{pid}"),
                &format!("cbdBp{pid}"),
                Some(&format!("{SIP_ADDR}/24")),
                &format!("{SIP_PEER}/24"),
            )
            .clone();
        Self {
            lab,
            media,
            sip,
            file_prefix: format!("cbe2e{pid}"),
            workers: 1,
        }
    }

    /// Runs `n` DPDK workers instead of one: the device gets `n` queue pairs (the kernel's
    /// packet fanout spreads frames over them, so most datagrams reach a worker that does not
    /// own their port and are handed off), and all `n` workers share core 1
    /// (`dpdk.allow_shared_cores`), so the multi-worker path runs on a 2-core machine.
    #[must_use]
    pub const fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// The namespace's name.
    #[must_use]
    pub fn ns(&self) -> &str {
        self.lab.ns()
    }

    /// The media veth pair (host end driven by DPDK).
    #[must_use]
    pub const fn media(&self) -> &Veth {
        &self.media
    }

    /// The SIP veth pair.
    #[must_use]
    pub const fn sip(&self) -> &Veth {
        &self.sip
    }

    /// The `[dpdk]` table for callbridge: `net_af_packet0,iface=cbdA<pid>`, main core 0,
    /// worker core 1, no hugepages with [`MEMORY_MB`], file prefix `cbe2e<pid>`.
    #[must_use]
    pub fn dpdk_config(&self) -> Dpdk {
        let mut device = format!("net_af_packet0,iface={}", self.media.host);
        if self.workers > 1 {
            device.push_str(&format!(",qpairs={}", self.workers));
        }
        let mut d = Dpdk::new(&device, &self.file_prefix);
        d.no_huge = true;
        d.memory_mb = Some(MEMORY_MB);
        if self.workers > 1 {
            d.worker_cores = vec![1; self.workers];
            d.allow_shared_cores = true;
        }
        d
    }

    /// `base` with the DPDK backend on [`MEDIA_ADDR`] and `sip.listen` on [`SIP_ADDR`] (same
    /// port as `base`).
    #[must_use]
    pub fn callbridge_config(&self, base: Config) -> Config {
        let mut c = base.dpdk(MEDIA_ADDR, self.dpdk_config());
        c.sip.set_ip(IpAddr::V4(SIP_ADDR));
        c
    }

    /// SIPp options for a peer in the namespace: SIP on [`SIP_PEER`], media on [`MEDIA_PEER`].
    #[must_use]
    pub fn sipp_options(&self, base: SippOptions) -> SippOptions {
        SippOptions {
            sip_ip: Some(SIP_PEER),
            media_ip: Some(MEDIA_PEER),
            netns: Some(self.ns().into()),
            ..base
        }
    }

    /// Runs `args` inside the namespace.
    #[must_use]
    pub fn exec(&self, args: &[&str]) -> Output {
        self.lab.exec(args)
    }

    /// `ping -c 3 -W 5 addr` from the namespace.
    #[must_use]
    pub fn ping(&self, addr: Ipv4Addr) -> Output {
        self.exec(&["ping", "-c", "3", "-W", "5", &addr.to_string()])
    }

    /// The MAC address of our (DPDK's) end of the media pair.
    #[must_use]
    pub fn media_mac(&self) -> String {
        std::fs::read_to_string(format!("/sys/class/net/{}/address", self.media.host))
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|e| format!("<cannot read the MAC of {}: {e}>", self.media.host))
    }

    /// The EAL runtime directory of this lab's `file_prefix` (root's: `/var/run/dpdk/<prefix>`).
    #[must_use]
    pub fn eal_runtime_dir(&self) -> PathBuf {
        Path::new("/var/run/dpdk").join(&self.file_prefix)
    }
}

impl Drop for DpdkLab {
    fn drop(&mut self) {
        // The veth pairs and the namespace go with `self.lab`; the EAL leaves its runtime
        // directory (config, fbarray files) behind.
        let _ = std::fs::remove_dir_all(self.eal_runtime_dir());
    }
}
