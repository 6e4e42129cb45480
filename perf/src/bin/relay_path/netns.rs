//! The path: two network namespaces this run creates (generator side, relay side; names carry
//! the `cbpath` prefix and our PID) joined by one veth pair on 198.18.0.0/24, transmit
//! checksum offload off on both ends (`ethtool -K DEV tx off`). [`Path`]'s `Drop` removes
//! both namespaces (and so the veth pair) and kills every child process it was told of.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;

use anyhow::{bail, Context as _};

/// The generator's address (in the generator namespace).
pub(crate) const GEN_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The relay's address (on the relay-side veth end, or owned by a DPDK port there).
pub(crate) const RELAY_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);

/// The priority of the generator thread and of every relay process (the same for both):
/// `Some(p)`: SCHED_FIFO priority `p`; `None`: SCHED_OTHER at nice -20. Set once by `main`.
pub(crate) static FIFO: std::sync::OnceLock<Option<u8>> = std::sync::OnceLock::new();

/// The command prefix that runs a program at the scenario's priority.
pub(crate) fn priority_prefix() -> Vec<String> {
    match FIFO.get().copied().flatten() {
        Some(p) => vec!["chrt".into(), "-f".into(), p.to_string()],
        None => vec!["nice".into(), "-n".into(), "-20".into()],
    }
}

/// Gives thread (or process) `tid` the scenario's priority.
///
/// # Errors
/// If `chrt`/`renice` fail.
pub(crate) fn set_priority(tid: &str) -> anyhow::Result<()> {
    match FIFO.get().copied().flatten() {
        Some(p) => sh(&["chrt", "-f", "-p", &p.to_string(), tid]).map(drop),
        None => sh(&["renice", "-n", "-20", "-p", tid]).map(drop),
    }
}

/// What to remove if the run is interrupted: namespaces and child PIDs.
static LEFTOVERS: Mutex<(Vec<String>, Vec<u32>)> = Mutex::new((Vec::new(), Vec::new()));

/// Kills every tracked child (by PID) and deletes the namespaces (and so the veth pair).
/// Idempotent; called by [`Path`]'s `Drop` and by the signal thread of `main`.
pub(crate) fn clean_up() {
    let (nss, pids) = match LEFTOVERS.lock() {
        Ok(mut g) => (std::mem::take(&mut g.0), std::mem::take(&mut g.1)),
        Err(_) => return,
    };
    for pid in pids {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .stderr(Stdio::null())
            .status();
    }
    if !nss.is_empty() {
        // Let the killed relays close their sockets and XDP programs first.
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    for ns in nss {
        let _ = Command::new("ip")
            .args(["netns", "del", &ns])
            .stderr(Stdio::null())
            .status();
    }
    let _ = std::fs::read_dir("/var/run/dpdk").map(|d| {
        for e in d.filter_map(Result::ok) {
            let name = e.file_name().to_string_lossy().into_owned();
            let me = std::process::id().to_string();
            if name.starts_with("cbpath") && name.ends_with(&me) {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    });
}

/// Runs a command, failing loudly with its stderr.
pub(crate) fn sh(args: &[&str]) -> anyhow::Result<String> {
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

/// The namespaces and veth pair of one run.
#[derive(Debug)]
pub(crate) struct Path {
    /// The generator's namespace.
    pub(crate) gen_ns: String,
    /// The relay's namespace.
    pub(crate) relay_ns: String,
    /// The generator-side veth end.
    pub(crate) gen_dev: String,
    /// The relay-side veth end.
    pub(crate) relay_dev: String,
    /// The relay-side end's MAC.
    pub(crate) relay_mac: String,
    /// The generator-side end's MAC.
    pub(crate) gen_mac: String,
}

impl Path {
    /// Creates both namespaces and the veth pair.
    ///
    /// # Errors
    /// If `ip`/`ethtool` are missing or fail (everything made so far is removed).
    pub(crate) fn create() -> anyhow::Result<Self> {
        let pid = std::process::id();
        let mut p = Self {
            gen_ns: format!("cbpath-g{pid}"),
            relay_ns: format!("cbpath-r{pid}"),
            gen_dev: format!("pthg{pid}"),
            relay_dev: format!("pthr{pid}"),
            relay_mac: String::new(),
            gen_mac: String::new(),
        };
        for ns in [&p.gen_ns, &p.relay_ns] {
            sh(&["ip", "netns", "add", ns])?;
            if let Ok(mut g) = LEFTOVERS.lock() {
                g.0.push(ns.clone());
            }
        }
        sh(&[
            "ip",
            "link",
            "add",
            &p.gen_dev,
            "type",
            "veth",
            "peer",
            "name",
            &p.relay_dev,
        ])?;
        sh(&["ip", "link", "set", &p.gen_dev, "netns", &p.gen_ns])?;
        sh(&["ip", "link", "set", &p.relay_dev, "netns", &p.relay_ns])?;
        for (ns, dev) in [(&p.gen_ns, &p.gen_dev), (&p.relay_ns, &p.relay_dev)] {
            p.exec(
                ns,
                &["sysctl", "-q", "-w", "net.ipv6.conf.all.disable_ipv6=1"],
            )?;
            p.exec(ns, &["ip", "link", "set", "lo", "up"])?;
            p.exec(ns, &["ip", "link", "set", dev, "up"])?;
            p.exec(ns, &["ethtool", "-K", dev, "tx", "off"])?;
        }
        p.exec(
            &p.gen_ns,
            &[
                "ip",
                "addr",
                "add",
                &format!("{GEN_IP}/24"),
                "dev",
                &p.gen_dev,
            ],
        )?;
        p.relay_mac = p.mac(&p.relay_ns, &p.relay_dev)?;
        p.gen_mac = p.mac(&p.gen_ns, &p.gen_dev)?;
        // A static neighbour: testpmd answers no ARP; the relays all keep the veth's MAC.
        p.exec(
            &p.gen_ns,
            &[
                "ip",
                "neigh",
                "replace",
                &RELAY_IP.to_string(),
                "lladdr",
                &p.relay_mac,
                "dev",
                &p.gen_dev,
                "nud",
                "permanent",
            ],
        )?;
        Ok(p)
    }

    fn mac(&self, ns: &str, dev: &str) -> anyhow::Result<String> {
        Ok(self
            .exec(ns, &["cat", &format!("/sys/class/net/{dev}/address")])?
            .trim()
            .to_owned())
    }

    /// Runs `args` in namespace `ns`.
    ///
    /// # Errors
    /// See [`sh`].
    pub(crate) fn exec(&self, ns: &str, args: &[&str]) -> anyhow::Result<String> {
        let mut a = vec!["ip", "netns", "exec", ns];
        a.extend_from_slice(args);
        sh(&a)
    }

    /// The generator namespace's file (for `setns`).
    #[must_use]
    pub(crate) fn gen_ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.gen_ns))
    }

    /// The relay namespace's file (for `setns`).
    #[must_use]
    pub(crate) fn relay_ns_path(&self) -> PathBuf {
        PathBuf::from(format!("/var/run/netns/{}", self.relay_ns))
    }

    /// Gives the relay side the kernel address (socket relays) or takes it away (DPDK
    /// relays own the address themselves; the kernel must not answer for it).
    ///
    /// # Errors
    /// See [`sh`].
    pub(crate) fn kernel_relay_address(&self, on: bool) -> anyhow::Result<()> {
        let cidr = format!("{RELAY_IP}/24");
        if on {
            self.exec(
                &self.relay_ns,
                &["ip", "addr", "replace", &cidr, "dev", &self.relay_dev],
            )?;
            self.exec(
                &self.relay_ns,
                &[
                    "ip",
                    "neigh",
                    "replace",
                    &GEN_IP.to_string(),
                    "lladdr",
                    &self.gen_mac,
                    "dev",
                    &self.relay_dev,
                    "nud",
                    "permanent",
                ],
            )?;
        } else {
            self.exec(
                &self.relay_ns,
                &["ip", "addr", "flush", "dev", &self.relay_dev],
            )?;
        }
        Ok(())
    }

    /// A command run in the relay namespace (`ip netns exec`, which execs in place: the
    /// child's PID is the program's).
    #[must_use]
    pub(crate) fn relay_command(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.relay_ns]);
        c.args(priority_prefix());
        c.arg(program);
        c.stdin(Stdio::piped());
        c
    }

    /// Remembers a child to kill if the run ends early.
    pub(crate) fn track(&self, child: &Child) {
        if let Ok(mut g) = LEFTOVERS.lock() {
            g.1.push(child.id());
        }
    }

    /// Forgets a child that has been reaped.
    pub(crate) fn untrack(&self, pid: u32) {
        if let Ok(mut g) = LEFTOVERS.lock() {
            g.1.retain(|&p| p != pid);
        }
    }
}

impl Drop for Path {
    fn drop(&mut self) {
        clean_up();
    }
}
