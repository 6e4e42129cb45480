//! The scaling-out test topology (issue 11 §4): `scripts/topology up` makes network namespaces
//! acting as hosts on one bridge — `cp1`, `cp2` (control-plane nodes), `pg` (PostgreSQL),
//! `mn1`, `mn2` (media nodes), `sipc` (SIPp customers), `sipa` (SIPp agents) — in a /24 of
//! 198.18.0.0/15 of its own, and gives this (the root) namespace the subnet's `.1` on the
//! bridge, so the test talks HTTP, SIP and ng to every host directly. [`Topology`] runs the
//! script under a prefix unique to this process and runs `down` when dropped (and a watchdog
//! runs it if the test process dies without dropping it). [`NsChild`] is a process started
//! inside a host (`ip netns exec`, which execs the program in place: the child's PID is the
//! program's), SIGKILLed by that PID when dropped.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::netns::{must, require_root_and, run};

/// The hosts `scripts/topology` creates.
pub const HOSTS: [&str; 7] = ["cp1", "cp2", "pg", "mn1", "mn2", "sipc", "sipa"];

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// `scripts/topology` in this checkout.
#[must_use]
pub fn script() -> PathBuf {
    crate::workspace_root().join("scripts").join("topology")
}

/// A topology that is up; `down` when dropped.
#[derive(Debug)]
pub struct Topology {
    prefix: String,
    subnet: String,
    root_addr: Ipv4Addr,
    hosts: BTreeMap<String, (String, Ipv4Addr)>,
    watchdog: Option<Child>,
}

impl Topology {
    /// Brings a topology up under a prefix unique to this process (`t<pid><n>`, hex).
    ///
    /// # Panics
    /// Not root, `ip` missing, or the script fails (its output is in the message).
    #[must_use]
    pub fn up() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        Self::up_with_prefix(&format!("t{:x}{n:x}", std::process::id()))
    }

    /// Brings a topology up under `prefix` (see `scripts/topology`: at most 10 characters).
    ///
    /// # Panics
    /// See [`Topology::up`].
    #[must_use]
    pub fn up_with_prefix(prefix: &str) -> Self {
        require_root_and(&["ip"]);
        let script = script();
        let out = run(&[
            script.to_str().expect("UTF-8 path"),
            "up",
            "--prefix",
            prefix,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut topo = Self {
            prefix: prefix.to_owned(),
            subnet: String::new(),
            root_addr: Ipv4Addr::UNSPECIFIED,
            hosts: BTreeMap::new(),
            watchdog: None,
        };
        // From here on, dropping `topo` runs `down` (also when the checks below fail).
        assert!(
            out.status.success(),
            "scripts/topology up --prefix {prefix} failed ({}): {text}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        topo.watchdog = Some(spawn_watchdog(prefix));
        for line in text.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key {
                "subnet" => value.clone_into(&mut topo.subnet),
                "root_addr" => topo.root_addr = value.parse().expect("root_addr"),
                k if k.starts_with("host_") => {
                    let (ns, addr) = value.split_once(' ').expect("host_X=NS ADDR");
                    topo.hosts.insert(
                        k["host_".len()..].to_owned(),
                        (ns.to_owned(), addr.parse().expect("host address")),
                    );
                }
                _ => {}
            }
        }
        for h in HOSTS {
            assert!(topo.hosts.contains_key(h), "host {h} missing in: {text}");
        }
        topo
    }

    /// The prefix every name carries.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The subnet's first three octets (`198.19.N`).
    #[must_use]
    pub fn subnet(&self) -> &str {
        &self.subnet
    }

    /// This (the root) namespace's address on the bridge.
    #[must_use]
    pub const fn root_addr(&self) -> Ipv4Addr {
        self.root_addr
    }

    /// Host `host`'s namespace.
    ///
    /// # Panics
    /// If there is no such host.
    #[must_use]
    pub fn ns(&self, host: &str) -> &str {
        &self
            .hosts
            .get(host)
            .unwrap_or_else(|| panic!("no host {host}"))
            .0
    }

    /// Host `host`'s address.
    ///
    /// # Panics
    /// If there is no such host.
    #[must_use]
    pub fn addr(&self, host: &str) -> Ipv4Addr {
        self.hosts
            .get(host)
            .unwrap_or_else(|| panic!("no host {host}"))
            .1
    }

    /// A command running `program` inside host `host` (`ip netns exec NS program`); add
    /// arguments, environment and output, then [`NsChild::spawn`] it.
    #[must_use]
    pub fn command(&self, host: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", self.ns(host)]).arg(program);
        c
    }

    /// Runs `args` inside host `host` to completion; returns stdout, panics on failure.
    ///
    /// # Panics
    /// If the command fails.
    pub fn exec(&self, host: &str, args: &[&str]) -> String {
        let mut v = vec!["ip", "netns", "exec", self.ns(host)];
        v.extend_from_slice(args);
        must(&v)
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let script = script();
        let out = Command::new(&script)
            .args(["down", "--prefix", &self.prefix])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {}
            Ok(o) => eprintln!(
                "scripts/topology down --prefix {} failed: {}{}",
                self.prefix,
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("cannot run {}: {e}", script.display()),
        }
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

/// A shell that runs `scripts/topology down` once this process is gone (a `kill -9` of the
/// test, a panic while unwinding is off).
fn spawn_watchdog(prefix: &str) -> Child {
    let script = format!(
        "while kill -0 {pid} 2>/dev/null; do sleep 1; done; \"$1\" down --prefix \"$2\" >/dev/null 2>&1",
        pid = std::process::id()
    );
    Command::new("sh")
        .args(["-c", &script, "topology-watchdog"])
        .arg(self::script())
        .arg(prefix)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting the topology watchdog")
}

/// A process inside a host of the topology, SIGKILLed by its PID when dropped if still
/// running.
#[derive(Debug)]
pub struct NsChild {
    child: Child,
    pid: u32,
}

impl NsChild {
    /// Spawns `cmd` (from [`Topology::command`]).
    ///
    /// # Panics
    /// If it cannot be started.
    #[must_use]
    pub fn spawn(mut cmd: Command) -> Self {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        Self {
            pid: child.id(),
            child,
        }
    }

    /// The PID (the program's: `ip netns exec` execs it in place).
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// The child's standard output, if it was piped and not taken yet.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Sends `signal` (e.g. `"-TERM"`) by PID.
    pub fn signal(&self, signal: &str) {
        let _ = Command::new("kill")
            .args([signal, &self.pid.to_string()])
            .status();
    }

    /// The exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `deadline` for the exit.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if t0.elapsed() > deadline {
                return None;
            }
            std::thread::sleep(crate::POLL_INTERVAL);
        }
    }
}

impl Drop for NsChild {
    fn drop(&mut self) {
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One API request to `cb` carrying `Authorization: Bearer {key}` (the test process reaches
/// the nodes from the root namespace, not loopback, so business `acme` wants its key); fails
/// the test with `cb`'s log when the request itself fails.
pub fn api_with_key(
    cb: &crate::Callbridge,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&serde_json::Value>,
) -> crate::Response {
    let body = body.map(serde_json::Value::to_string);
    let auth = format!("Bearer {key}");
    crate::http::request_with_headers(
        cb.http_addr(),
        method,
        path,
        &[("Authorization", auth.as_str())],
        body.as_deref(),
    )
    .unwrap_or_else(|e| cb.fail(&format!("{method} {path}: {e}")))
}
