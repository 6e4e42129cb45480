//! Starting and stopping the relays under test, each in the relay namespace pinned to the
//! relay core: callbridge's worker (this binary's `relay` sub-command: socket, af_packet,
//! af_xdp), rtpengine (userspace, no config file, calls through ng) and `dpdk-testpmd`
//! (5tswap, port topology loop). Each gives the generator its targets and the CPU figures
//! the scenario divides by the packets relayed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use callbridge_perf::ng::{audio_sdp, sdp_audio_addr, NgClient};
use serde_json::Value;

use crate::netns::{Path, GEN_IP, RELAY_IP};
use crate::worker_relay::{cpu_ns, socket_options, FIRST_PORT};

/// Whether `name` is callbridge's worker (this binary's `relay` sub-command).
fn is_worker(name: &str) -> bool {
    matches!(name, "af_packet" | "af_xdp") || socket_options(name).is_some()
}

/// Every relay this scenario knows, in the order it runs them.
pub(crate) const ALL: [&str; 9] = [
    "af_xdp",
    "af_packet",
    "socket",
    "socket_raw_tx",
    "socket_ring",
    "socket_ring_coalesce",
    "socket_coalesce",
    "rtpengine",
    "testpmd",
];

/// The generator's port (both legs of every call point at it).
pub(crate) const GEN_PORT: u16 = 20000;

/// The ng control port rtpengine listens on (loopback of the relay namespace).
const NG_PORT: u16 = 22222;

/// Whether `name` is restarted (and its calls re-created) for every trial.
#[must_use]
pub(crate) fn restart_per_trial(name: &str) -> bool {
    matches!(name, "rtpengine" | "testpmd")
}

/// CPU counters of a relay at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Cpu {
    /// Nanoseconds of CPU (process time; for busy-polling callbridge: busy passes).
    pub(crate) ns: u64,
    /// Packets the relay says it relayed (`None`: use the generator's count).
    pub(crate) relayed: Option<u64>,
    /// callbridge's loop counters (`STATS` line), for the per-trial deltas.
    pub(crate) counters: Option<Value>,
}

/// A running relay.
#[derive(Debug)]
pub(crate) struct Running {
    /// Which.
    pub(crate) name: String,
    /// Each call's address to send to.
    pub(crate) targets: Arc<Vec<SocketAddrV4>>,
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: Option<BufReader<ChildStdout>>,
    /// How the CPU figure is measured.
    pub(crate) cpu_method: &'static str,
}

impl Running {
    /// The relay's CPU counters now.
    ///
    /// # Errors
    /// If the relay died or answered garbage.
    pub(crate) fn cpu(&mut self) -> anyhow::Result<Cpu> {
        if let Some(st) = self.child.try_wait()? {
            bail!("{} exited ({st})", self.name);
        }
        match (
            self.stdin.as_mut(),
            self.stdout.as_mut(),
            self.name.as_str(),
        ) {
            (Some(i), Some(o), n) if is_worker(n) => {
                writeln!(i, "stats")?;
                i.flush()?;
                let line = read_tagged(o, "STATS ", Duration::from_secs(10))?;
                let v: Value = serde_json::from_str(&line)?;
                let ns = if self.name.starts_with("socket") {
                    v["cpu_ns"].as_u64()
                } else {
                    v["busy_ns"].as_u64()
                };
                Ok(Cpu {
                    ns: ns.unwrap_or(0),
                    relayed: v["relayed"].as_u64(),
                    counters: Some(v),
                })
            }
            _ => Ok(Cpu {
                ns: cpu_ns(&self.child.id().to_string()),
                relayed: None,
                counters: None,
            }),
        }
    }

    /// Stops the relay (politely, then by PID) and returns what it printed last (testpmd's
    /// statistics).
    pub(crate) fn stop(mut self, path: &Path) -> String {
        if let Some(mut i) = self.stdin.take() {
            let _ = i.write_all(if self.name == "testpmd" {
                b"\n"
            } else {
                b"quit\n"
            });
            let _ = i.flush();
        }
        let end = Instant::now() + Duration::from_secs(10);
        let pid = self.child.id();
        while Instant::now() < end {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            if self.name == "rtpengine" {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        path.untrack(pid);
        let mut rest = String::new();
        if let Some(mut o) = self.stdout.take() {
            let _ = o.read_to_string(&mut rest);
        }
        // EAL's runtime directory (the relay's --file-prefix).
        let prefix = match self.name.as_str() {
            "af_xdp" | "af_packet" => Some(format!("cbpathw{}", std::process::id())),
            "testpmd" => Some(format!("cbpathpmd{}", std::process::id())),
            _ => None,
        };
        if let Some(p) = prefix {
            let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{p}"));
        }
        if matches!(self.name.as_str(), "af_xdp" | "testpmd") {
            // Never leave an XDP program behind on the veth.
            let _ = path.exec(
                &path.relay_ns,
                &["ip", "link", "set", "dev", &path.relay_dev, "xdp", "off"],
            );
        }
        rest
    }
}

/// Reads lines until one starts with `tag`; returns the rest of it.
fn read_tagged(
    o: &mut BufReader<ChildStdout>,
    tag: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let end = Instant::now() + timeout;
    let mut line = String::new();
    while Instant::now() < end {
        line.clear();
        if o.read_line(&mut line)? == 0 {
            bail!("relay closed its output before {tag:?}");
        }
        if let Some(rest) = line.strip_prefix(tag) {
            return Ok(rest.trim().to_owned());
        }
    }
    bail!("no {tag:?} line in {timeout:?}")
}

/// Starts relay `name` for `calls` calls.
///
/// # Errors
/// A relay that cannot start is an error (never a silent skip).
pub(crate) fn start(
    name: &str,
    path: &Path,
    calls: usize,
    relay_core: usize,
    gen_core: usize,
) -> anyhow::Result<Running> {
    let kernel = name == "rtpengine" || socket_options(name).is_some();
    if kernel {
        // Four sockets per call (RTP and RTCP of two legs), callbridge's and rtpengine's alike.
        let need = 4 * calls as u64 + 256;
        let (soft, hard) =
            nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)?;
        if soft < need {
            bail!(
                "{name} needs {need} open files for {calls} calls (4 sockets per call); \
                 RLIMIT_NOFILE is {soft} (hard {hard}) and could not be raised"
            );
        }
    }
    path.kernel_relay_address(kernel)?;
    let peer = SocketAddr::from((GEN_IP, GEN_PORT));
    match name {
        n if is_worker(n) => {
            let exe = std::env::current_exe()?;
            let mut c = path.relay_command(&exe.to_string_lossy());
            c.args([
                "relay",
                "--backend",
                name,
                "--iface",
                &path.relay_dev,
                "--addr",
                &RELAY_IP.to_string(),
                "--peer",
                &peer.to_string(),
                "--calls",
                &calls.to_string(),
                "--core",
                &relay_core.to_string(),
            ]);
            c.stdout(Stdio::piped());
            let mut child = c.spawn().context("starting relay_path relay")?;
            path.track(&child);
            let mut out = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
            let ready = read_tagged(&mut out, "READY ", Duration::from_secs(120))
                .with_context(|| format!("callbridge {name} relay did not start"))?;
            let v: Value = serde_json::from_str(&ready)?;
            let ports: Vec<SocketAddrV4> = v["ports"]
                .as_array()
                .ok_or_else(|| anyhow!("READY without ports"))?
                .iter()
                .filter_map(Value::as_u64)
                .map(|p| SocketAddrV4::new(RELAY_IP, p as u16))
                .collect();
            if ports.len() != calls {
                bail!("relay announced {} ports for {calls} calls", ports.len());
            }
            Ok(Running {
                name: name.into(),
                targets: Arc::new(ports),
                stdin: child.stdin.take(),
                stdout: Some(out),
                child,
                cpu_method: if name.starts_with("socket") {
                    "process CPU time (schedstat) / packets relayed"
                } else {
                    "busy-pass TSC time / packets relayed"
                },
            })
        }
        "rtpengine" => start_rtpengine(path, calls, relay_core),
        "testpmd" => start_testpmd(path, calls, relay_core, gen_core),
        _ => bail!("unknown relay {name:?} (one of {ALL:?})"),
    }
}

fn start_rtpengine(path: &Path, calls: usize, core: usize) -> anyhow::Result<Running> {
    let mut c = path.relay_command("taskset");
    c.args([
        "-c",
        &core.to_string(),
        "rtpengine",
        "--config-file=none",
        "--foreground",
        "--log-stderr",
        "--log-level=3",
        "--table=-1",
        &format!("--interface={RELAY_IP}"),
        &format!("--listen-ng=127.0.0.1:{NG_PORT}"),
        &format!("--port-min={FIRST_PORT}"),
        "--port-max=60999",
        "--num-threads=1",
        "--timeout=600",
        "--delete-delay=0",
    ]);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = c
        .spawn()
        .context("starting rtpengine (package rtpengine-daemon; scripts/install-test-deps)")?;
    path.track(&child);
    let ns = path.relay_ns_path();
    // The ng client has to live in the relay namespace (rtpengine listens on its loopback).
    let setup = std::thread::spawn(move || -> anyhow::Result<Vec<SocketAddrV4>> {
        let f = std::fs::File::open(&ns)?;
        nix::sched::setns(&f, nix::sched::CloneFlags::CLONE_NEWNET)?;
        let ng = NgClient::connect(SocketAddr::from(([127, 0, 0, 1], NG_PORT)))?;
        let end = Instant::now() + Duration::from_secs(10);
        while let Err(e) = ng.ping() {
            if Instant::now() > end {
                return Err(e.context("rtpengine does not answer ng ping"));
            }
        }
        let gen = SocketAddr::from((GEN_IP, GEN_PORT));
        let mut targets = Vec::with_capacity(calls);
        for i in 0..calls {
            let id = format!("cbpath-{i}");
            let to_b = ng.offer(&id, "a", &audio_sdp(gen, 2 * i as u64))?;
            let b_side = sdp_audio_addr(&to_b)?;
            if b_side.ip() != std::net::IpAddr::V4(RELAY_IP) {
                bail!("rtpengine offered {b_side}, not on {RELAY_IP}");
            }
            let to_a = ng.answer(&id, "a", "b", &audio_sdp(gen, 2 * i as u64 + 1))?;
            match sdp_audio_addr(&to_a)? {
                SocketAddr::V4(a) if *a.ip() == RELAY_IP => targets.push(a),
                other => bail!("rtpengine answered {other}, not on {RELAY_IP}"),
            }
        }
        Ok(targets)
    });
    let targets = match setup.join() {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            let _ = child.kill();
            let mut err = String::new();
            if let Some(mut s) = child.stderr.take() {
                let _ = child.wait();
                let _ = s.read_to_string(&mut err);
            }
            path.untrack(child.id());
            let tail: Vec<&str> = err.lines().rev().take(5).collect();
            return Err(e.context(format!("rtpengine set-up; its last lines: {tail:?}")));
        }
        Err(_) => bail!("the ng thread panicked"),
    };
    // rtpengine's log goes nowhere from here on (a full pipe must not stall it).
    if let Some(mut s) = child.stderr.take() {
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while matches!(s.read(&mut sink), Ok(n) if n > 0) {}
        });
    }
    Ok(Running {
        name: "rtpengine".into(),
        targets: Arc::new(targets),
        stdin: None,
        stdout: None,
        child,
        cpu_method: "process CPU time (schedstat, all threads) / packets received back",
    })
}

fn start_testpmd(
    path: &Path,
    calls: usize,
    core: usize,
    gen_core: usize,
) -> anyhow::Result<Running> {
    let prefix = format!("cbpathpmd{}", std::process::id());
    // Line-buffered: testpmd's "Press enter to exit" must reach us while it runs.
    let mut c = path.relay_command("stdbuf");
    c.args([
        "-oL",
        "dpdk-testpmd",
        "-l",
        &format!("{},{}", core.min(gen_core), core.max(gen_core)),
        "--main-lcore",
        &gen_core.to_string(),
        "--no-huge",
        "-m",
        "512",
        "--no-pci",
        "--file-prefix",
        &prefix,
        "--log-level",
        "*:warning",
        "--vdev",
        &format!(
            "net_af_xdp0,iface={},start_queue=0,queue_count=1",
            path.relay_dev
        ),
        "--",
        "--forward-mode=5tswap",
        "--port-topology=loop",
        "--nb-cores=1",
        "--rxq=1",
        "--txq=1",
        "--record-core-cycles",
        "--total-num-mbufs=16384",
        "--no-lsc-interrupt",
    ]);
    c.stdout(Stdio::piped()).stderr(Stdio::null());
    let mut child = c
        .spawn()
        .context("starting dpdk-testpmd (package dpdk-dev)")?;
    path.track(&child);
    let mut out = BufReader::new(child.stdout.take().ok_or_else(|| anyhow!("no stdout"))?);
    if let Err(e) = read_tagged(&mut out, "Press enter to exit", Duration::from_secs(60)) {
        let _ = child.kill();
        let _ = child.wait();
        path.untrack(child.id());
        return Err(e.context("dpdk-testpmd 5tswap on net_af_xdp did not start"));
    }
    let targets = (0..calls)
        .map(|c| SocketAddrV4::new(RELAY_IP, FIRST_PORT + 4 * c as u16))
        .collect();
    Ok(Running {
        name: "testpmd".into(),
        targets: Arc::new(targets),
        stdin: child.stdin.take(),
        stdout: Some(out),
        child,
        cpu_method: "testpmd --record-core-cycles: forwarding core's busy cycles / packets",
    })
}

/// testpmd's "CPU cycles/packet=X" from its final statistics.
#[must_use]
pub(crate) fn testpmd_cycles_per_packet(out: &str) -> Option<f64> {
    out.lines().rev().find_map(|l| {
        let i = l.find("CPU cycles/packet=")?;
        l[i + "CPU cycles/packet=".len()..]
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    })
}

/// TSC ticks per ns, from the CPU's nominal clock (`/proc/cpuinfo`; constant TSC assumed).
#[must_use]
pub(crate) fn cpu_ghz() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let mhz: f64 = s
        .lines()
        .find(|l| l.starts_with("cpu MHz"))?
        .split(':')
        .nth(1)?
        .trim()
        .parse()
        .ok()?;
    Some(mhz / 1000.0)
}
