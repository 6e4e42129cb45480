//! What the end-to-end scenarios (`cps`, `announce`) share: finding and starting the
//! callbridge binary on a rendered configuration, starting SIPp peers from `perf/sipp/`, a small
//! keep-alive HTTP/1.1 client for the API, resident memory and CPU time from `/proc`, the
//! process's file-descriptor limit, and the API's event timestamps.
//!
//! Every process is started by this module and stopped by its PID when its guard is dropped
//! (SIGTERM, then SIGKILL after a grace period), also when a scenario fails half-way. Every
//! address is on loopback.

use std::fmt::Write as _;
use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use serde_json::Value;

mod http;
pub use http::{send_paced, Http, Sent};

/// Where SIPp is expected (Debian's `sip-tester`).
pub const SIPP_BIN: &str = "/usr/bin/sipp";

/// How long callbridge gets to answer `GET /healthz` after it is started.
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// How long a process gets to exit after SIGTERM before SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);

/// A scratch directory for one scenario's files (configs, logs, the store), removed when
/// dropped unless `PERF_KEEP=1`.
#[derive(Debug)]
pub struct Workdir {
    path: PathBuf,
}

impl Workdir {
    /// A fresh `<tmp>/callbridge-perf-<name>-<pid>`.
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        Self::new_in(&std::env::temp_dir(), name)
    }

    /// A fresh `<parent>/callbridge-perf-<name>-<pid>` (e.g. on `/dev/shm`).
    ///
    /// # Errors
    /// If the directory cannot be created.
    pub fn new_in(parent: &Path, name: &str) -> anyhow::Result<Self> {
        let path = parent.join(format!("callbridge-perf-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Self { path })
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A fresh sub-directory `name` (emptied if it exists).
    ///
    /// # Errors
    /// If it cannot be created.
    pub fn sub(&self, name: &str) -> anyhow::Result<PathBuf> {
        let p = self.path.join(name);
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).with_context(|| format!("creating {}", p.display()))?;
        Ok(p)
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        if std::env::var_os("PERF_KEEP").is_some_and(|v| v == "1") {
            eprintln!("perf: keeping {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// The callbridge binary: `explicit` (`--callbridge PATH`), else `$PERF_BIN_DIR/callbridge`
/// (set by `scripts/perf`), else `<workspace>/target/release/callbridge`.
///
/// # Errors
/// If the file is not there, saying how to build it.
pub fn callbridge_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    let path = match (explicit, std::env::var_os("PERF_BIN_DIR")) {
        (Some(p), _) => p.to_path_buf(),
        (None, Some(d)) => PathBuf::from(d).join("callbridge"),
        (None, None) => crate::report::workspace_root().join("target/release/callbridge"),
    };
    if !path.is_file() {
        bail!(
            "the callbridge binary is missing at {} (build it with `scripts/perf cps` or `scripts/perf announce`, which run \
             `cargo build --profile bench -p callbridge`, or pass --callbridge PATH)",
            path.display()
        );
    }
    Ok(path)
}

/// Fails unless SIPp is installed.
///
/// # Errors
/// If [`SIPP_BIN`] is missing.
pub fn require_sipp() -> anyhow::Result<()> {
    if !Path::new(SIPP_BIN).is_file() {
        bail!(
            "{SIPP_BIN} not found: apt-get install sip-tester (or run scripts/install-test-deps)"
        );
    }
    Ok(())
}

/// A SIPp scenario file of `perf/sipp/`.
#[must_use]
pub fn sipp_scenario(file: &str) -> PathBuf {
    crate::report::workspace_root().join("perf/sipp").join(file)
}

/// Raises this process's open-file limit (soft and hard) to `want` or as far as allowed;
/// children (callbridge, SIPp) inherit it. Returns the soft limit in force.
///
/// # Errors
/// If the limit cannot be read.
pub fn raise_fd_limit(want: u64) -> anyhow::Result<u64> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).context("getrlimit(RLIMIT_NOFILE)")?;
    if soft >= want {
        return Ok(soft);
    }
    // As root the hard limit may be raised up to fs.nr_open; otherwise only up to hard.
    if setrlimit(Resource::RLIMIT_NOFILE, want, want.max(hard)).is_ok() {
        return Ok(want);
    }
    let to = hard.min(want);
    let _ = setrlimit(Resource::RLIMIT_NOFILE, to, hard);
    Ok(getrlimit(Resource::RLIMIT_NOFILE).map_or(soft, |(s, _)| s))
}

/// A child process stopped by its PID when dropped (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Proc {
    name: String,
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr to `log`.
    ///
    /// # Errors
    /// If the log cannot be created or the program cannot be started.
    pub fn spawn(name: &str, mut cmd: Command, log: PathBuf) -> anyhow::Result<Self> {
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .with_context(|| format!("starting {name} ({cmd:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            pid: child.id(),
            child: Some(child),
            log,
        })
    }

    /// The PID.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(description)` once the process has exited.
    pub fn exited(&mut self) -> Option<String> {
        let c = self.child.as_mut()?;
        match c.try_wait() {
            Ok(Some(s)) => Some(s.to_string()),
            _ => None,
        }
    }

    /// The last `max` bytes of the process's output.
    #[must_use]
    pub fn log_tail(&self, max: usize) -> String {
        let text = std::fs::read(&self.log).unwrap_or_default();
        let from = text.len().saturating_sub(max);
        String::from_utf8_lossy(&text[from..]).into_owned()
    }

    /// Stops the process (SIGTERM, SIGKILL after [`TERM_GRACE`]) and reaps it. Idempotent.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        // callbridge drains on the first SIGTERM (live calls run to their end); a second one
        // a moment later ends the calls left at once, which is what a benchmark's end wants.
        signal(self.pid, "TERM");
        let start = Instant::now();
        let mut again = true;
        while start.elapsed() < TERM_GRACE {
            if matches!(child.try_wait(), Ok(Some(_))) {
                return;
            }
            if again && start.elapsed() > Duration::from_millis(500) {
                signal(self.pid, "TERM");
                again = false;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        eprintln!("perf: {} (pid {}) needed SIGKILL", self.name, self.pid);
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Sends `SIG<sig>` to `pid` with kill(1) (this crate keeps `unsafe` out).
fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// What a scenario's callbridge configuration holds (the rest stays at its defaults).
#[derive(Debug, Clone)]
pub struct CbConfig {
    /// `http.listen`.
    pub http: SocketAddr,
    /// `sip.listen` (UDP).
    pub sip: SocketAddr,
    /// `media.address` then `media.extra_addresses`.
    pub media: Vec<Ipv4Addr>,
    /// `media.ports`, inclusive.
    pub ports: (u16, u16),
    /// `[[agent]]` (id, contact) of business `acme`, `wrap_up_secs = 0`.
    pub agents: Vec<(String, String)>,
    /// `flow.agent_ring_secs`.
    pub agent_ring_secs: u32,
    /// `store.path` (the SQLite file; `None`: `callbridge.db` beside the config).
    pub store: Option<PathBuf>,
    /// The `[dpdk]` table's text: `Some` makes `media.backend = "dpdk"` (the media address is
    /// then the DPDK port's, not a kernel address); `None`: the socket backend.
    pub dpdk: Option<String>,
}

impl CbConfig {
    /// The TOML text: no rate limits and no set-up pacing, no media timeout (the SIPp peers send no RTP), one
    /// business `acme` without keys (loopback clients need none), one attempt per request.
    #[must_use]
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[http]\nlisten = \"{}\"\n", self.http);
        // No E.164 customers here: the trunk is a port nobody answers on.
        let _ = writeln!(
            s,
            "[sip]\nlisten = \"{}\"\ntrunk = \"sip:{}:9\"\ntrunk_keepalive_secs = 0\n",
            self.sip,
            self.sip.ip()
        );
        let extra: Vec<String> = self.media[1..].iter().map(|a| format!("\"{a}\"")).collect();
        let _ = writeln!(
            s,
            "[media]\nbackend = \"{}\"\naddress = \"{}\"\nextra_addresses = [{}]\nports = \"{}-{}\"\ntimeout_secs = 0\n",
            if self.dpdk.is_some() { "dpdk" } else { "socket" },
            self.media[0],
            extra.join(", "),
            self.ports.0,
            self.ports.1
        );
        let _ = writeln!(
            s,
            "[flow]\ncustomer_ring_secs = 30\nagent_ring_secs = {}\nmax_agent_attempts = 1\nqueue_timeout_secs = 120\n",
            self.agent_ring_secs
        );
        let store = self
            .store
            .as_ref()
            .map_or_else(|| "callbridge.db".into(), |p| p.display().to_string());
        let _ = writeln!(s, "[store]\npath = \"{store}\"\n");
        // No set-up pacing either (issue 12's admission): the scenarios measure what the
        // process sustains; `max_calls` stays at its default, what the media ports and the
        // open-file limit carry.
        s.push_str("[limits]\nper_number_per_hour = 0\nper_ip_per_minute = 0\nper_business_per_minute = 0\nmax_setups_per_second = 0\n\n");
        s.push_str(
            "[[business]]\nid = \"acme\"\nname = \"ACME Corp\"\n[business.retry]\nattempts = 1\n",
        );
        s.push_str("[business.limits]\nmax_concurrent_calls = 0\n\n");
        for (id, contact) in &self.agents {
            let _ = writeln!(
                s,
                "[[agent]]\nid = \"{id}\"\ncontact = \"{contact}\"\nbusinesses = [\"acme\"]\nwrap_up_secs = 0\n"
            );
        }
        s.push_str("[lab]\nendpoints = false\n");
        if let Some(d) = &self.dpdk {
            let _ = writeln!(s, "\n[dpdk]\n{}", d.trim_end());
        }
        s
    }
}

/// A running `callbridge serve`, stopped when dropped.
#[derive(Debug)]
pub struct Callbridge {
    proc: Proc,
    http: SocketAddr,
}

impl Callbridge {
    /// Writes `config` to `dir/callbridge.toml`, starts `bin` there (log level `warn`, output to
    /// `dir/callbridge.log`) and waits for `GET /healthz`.
    ///
    /// # Errors
    /// If it cannot be started, exits, or never becomes healthy (with its log's tail).
    pub fn start(bin: &Path, dir: &Path, config: &CbConfig) -> anyhow::Result<Self> {
        let cfg = dir.join("callbridge.toml");
        std::fs::write(&cfg, config.render())
            .with_context(|| format!("writing {}", cfg.display()))?;
        let mut cmd = Command::new(bin);
        cmd.arg("serve")
            .arg("--config")
            .arg(&cfg)
            .current_dir(dir)
            .env(
                "CALLBRIDGE_LOG",
                std::env::var("CALLBRIDGE_LOG").unwrap_or_else(|_| "warn".into()),
            );
        let mut cb = Self {
            proc: Proc::spawn("callbridge", cmd, dir.join("callbridge.log"))?,
            http: config.http,
        };
        let start = Instant::now();
        loop {
            if let Some(s) = cb.proc.exited() {
                bail!(
                    "callbridge exited during start-up ({s}):\n{}",
                    cb.proc.log_tail(4000)
                );
            }
            if let Ok((200, _)) = Http::new(cb.http).request("GET", "/healthz", None) {
                return Ok(cb);
            }
            if start.elapsed() > STARTUP_DEADLINE {
                bail!(
                    "callbridge did not answer /healthz within {STARTUP_DEADLINE:?}:\n{}",
                    cb.proc.log_tail(4000)
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The PID.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// The HTTP address.
    #[must_use]
    pub const fn http(&self) -> SocketAddr {
        self.http
    }

    /// Fails (with the log's tail) if the process has exited.
    ///
    /// # Errors
    /// When it has.
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.proc.exited() {
            bail!("callbridge exited ({s}):\n{}", self.proc.log_tail(4000));
        }
        Ok(())
    }

    /// The last `max` bytes of its log.
    #[must_use]
    pub fn log_tail(&self, max: usize) -> String {
        self.proc.log_tail(max)
    }
}

/// One SIPp UAS on `ip:port`, stopped when dropped.
#[derive(Debug)]
pub struct Sipp {
    proc: Proc,
    addr: SocketAddr,
}

impl Sipp {
    /// Starts SIPp with `perf/sipp/<scenario>` on `ip:port` (media port `media_port`), with
    /// `-set NAME VALUE` for each of `vars`, and waits until its SIP port is bound. No message
    /// trace (it would cost more than the calls); errors go to `<dir>/<name>_errors.log`.
    ///
    /// # Errors
    /// If SIPp is missing, cannot start, exits, or does not bind within 10 s.
    pub fn uas(
        dir: &Path,
        name: &str,
        scenario: &str,
        addr: SocketAddr,
        media_port: u16,
        vars: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        require_sipp()?;
        let file = sipp_scenario(scenario);
        if !file.is_file() {
            bail!("SIPp scenario {} is missing", file.display());
        }
        let ip = addr.ip().to_string();
        let mut cmd = Command::new(SIPP_BIN);
        cmd.arg("-sf")
            .arg(&file)
            .args(["-i", &ip, "-bind_local", "-p", &addr.port().to_string()])
            .args(["-mi", &ip, "-mp", &media_port.to_string()])
            .args(["-buff_size", "4194304", "-nostdin", "-aa"])
            .args(["-trace_err", "-error_file"])
            .arg(dir.join(format!("{name}_errors.log")))
            .current_dir(dir);
        for (k, v) in vars {
            cmd.args(["-set", k, v]);
        }
        let mut s = Self {
            proc: Proc::spawn(name, cmd, dir.join(format!("{name}.out")))?,
            addr,
        };
        let start = Instant::now();
        while UdpSocket::bind(addr).is_ok() {
            if let Some(st) = s.proc.exited() {
                bail!(
                    "SIPp {name} exited before binding {addr} ({st}):\n{}",
                    s.proc.log_tail(3000)
                );
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!(
                    "SIPp {name} did not bind {addr} within 10 s:\n{}",
                    s.proc.log_tail(3000)
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(s)
    }

    /// `sip:<user>@<ip>:<port>`.
    #[must_use]
    pub fn uri(&self, user: &str) -> String {
        format!("sip:{user}@{}", self.addr)
    }

    /// Fails if SIPp has exited.
    ///
    /// # Errors
    /// When it has (with its output's tail).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(s) = self.proc.exited() {
            bail!(
                "SIPp {} exited ({s}):\n{}",
                self.addr,
                self.proc.log_tail(3000)
            );
        }
        Ok(())
    }
}

/// The resident set size of `pid` in bytes (`VmRSS` of `/proc/<pid>/status`).
///
/// # Errors
/// If the file cannot be read or has no `VmRSS`.
pub fn rss_bytes(pid: u32) -> anyhow::Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .context("no VmRSS")
}

/// User plus system CPU time of `pid` (all threads) so far, from `/proc/<pid>/stat`, assuming
/// the usual 100 clock ticks per second.
///
/// # Errors
/// If the file cannot be read or parsed.
pub fn cpu_time(pid: u32) -> anyhow::Result<Duration> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let rest = text.rsplit_once(')').map(|(_, r)| r).context("bad stat")?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the command: state is field 3; utime 14, stime 15 (1-based over the whole line).
    let ticks = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .context("bad stat field")
    };
    Ok(Duration::from_millis((ticks(14)? + ticks(15)?) * 10))
}

/// Milliseconds since the Unix epoch of an RFC 3339 UTC time as the API writes it
/// (`2026-11-29T04:24:35.874Z`, fraction optional).
#[must_use]
pub fn parse_ms(s: &str) -> Option<i64> {
    let s = s.strip_suffix('Z')?;
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, frac) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|x| x.parse::<i64>().ok());
    let (hh, mm, ss) = (t.next()??, t.next()??, t.next()??);
    let frac3: String = frac.chars().chain("000".chars()).take(3).collect();
    let ms: i64 = frac3.parse().ok()?;
    Some((days_from_civil(y, m, day) * 86_400 + hh * 3600 + mm * 60 + ss) * 1000 + ms)
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
const fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The time (ms since the epoch) of the first event of `call` (its acceptance, committed before
/// the `202`) and of the first event with `status`.
#[must_use]
pub fn event_times(call: &Value, status: &str) -> (Option<i64>, Option<i64>) {
    let events = call["events"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let first = events.first().and_then(|e| parse_ms(e["at"].as_str()?));
    let at = events
        .iter()
        .find(|e| e["status"] == status)
        .and_then(|e| parse_ms(e["at"].as_str()?));
    (first, at)
}

/// A loopback address `127.<b>.<c>.<d>`.
#[must_use]
pub const fn lo(b: u8, c: u8, d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, b, c, d))
}

/// `/proc/pressure/cpu` "some avg10" now: the share of the last 10 s in which a runnable task
/// waited for a CPU (other work on a shared machine), percent; `None` where PSI is off.
#[must_use]
pub fn cpu_pressure() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/pressure/cpu").ok()?;
    let some = text.lines().find(|l| l.starts_with("some"))?;
    some.split_whitespace()
        .find_map(|f| f.strip_prefix("avg10=")?.parse().ok())
}

/// The 1-minute load average now.
#[must_use]
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| String::new(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_api_times() {
        assert_eq!(parse_ms("1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(parse_ms("2026-12-06T00:00:00Z"), Some(20_793 * 86_400_000));
        assert_eq!(
            parse_ms("2026-12-06T00:00:00.123456Z"),
            Some(20_793 * 86_400_000 + 123)
        );
        assert_eq!(parse_ms("nonsense"), None);
    }

    #[test]
    fn config_has_no_limits_and_the_agents() {
        let c = CbConfig {
            http: "127.0.20.1:8080".parse().unwrap(),
            sip: "127.0.20.1:5060".parse().unwrap(),
            media: vec![Ipv4Addr::new(127, 0, 20, 11), Ipv4Addr::new(127, 0, 20, 12)],
            ports: (10_000, 10_099),
            agents: vec![("a0".into(), "sip:a0@127.0.20.1:5100".into())],
            agent_ring_secs: 20,
            store: None,
            dpdk: None,
        }
        .render();
        assert!(c.contains("extra_addresses = [\"127.0.20.12\"]"), "{c}");
        assert!(c.contains("per_business_per_minute = 0"));
        assert!(c.contains("max_setups_per_second = 0"));
        assert!(c.contains("id = \"a0\""));
        assert!(c.contains("backend = \"socket\""), "{c}");
        assert!(!c.contains("[dpdk]"), "{c}");
    }
}
