//! Spawning and driving `callbridge serve`.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::config::Config;
use crate::http::{self, Response};
use crate::workdir::Workdir;
use crate::{read_log, POLL_INTERVAL, STARTUP_DEADLINE};

/// How long callbridge gets to exit after SIGTERM before it is SIGKILLed.
const TERM_GRACE: Duration = Duration::from_secs(10);
/// How long [`Callbridge::stop`] lets live calls drain before its second SIGTERM ends them.
const DRAIN_GRACE: Duration = Duration::from_secs(1);

/// The callbridge binary: `$CALLBRIDGE_BIN`, else `<target>/debug/callbridge`.
///
/// # Panics
/// If the file does not exist, saying how to build it.
#[must_use]
pub fn bin_path() -> PathBuf {
    let path = std::env::var_os("CALLBRIDGE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::target_dir().join("debug").join("callbridge"));
    assert!(
        path.is_file(),
        "callbridge binary not found at {} (set CALLBRIDGE_BIN or run `cargo build -p callbridge` first)",
        path.display()
    );
    path
}

/// Runs the callbridge binary with `args` to completion (for `check-config`, `--help`, ...).
///
/// # Panics
/// If the binary is missing or cannot be started.
#[must_use]
pub fn run_cli(args: &[&str]) -> Output {
    let bin = bin_path();
    Command::new(&bin)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()))
}

/// A running `callbridge serve --config FILE`, stopped when dropped.
#[derive(Debug)]
pub struct Callbridge {
    child: Option<Child>,
    pid: u32,
    http: SocketAddr,
    config: Config,
    config_path: PathBuf,
    log_path: PathBuf,
    /// Set once a panic message carried the log, so `Drop` does not print it again.
    log_shown: std::cell::Cell<bool>,
}

impl Callbridge {
    /// Writes `config` to `callbridge.toml` in `dir`, spawns the server (stdout and stderr to
    /// `callbridge.log`) and waits up to [`STARTUP_DEADLINE`] for `GET /healthz` to answer 200.
    ///
    /// # Panics
    /// If the binary is missing, exits early, or never becomes healthy (the log is in the
    /// message).
    #[must_use]
    pub fn start(dir: &Workdir, config: &Config) -> Self {
        Self::start_bin(dir, config, &bin_path())
    }

    /// [`Callbridge::start`] with the binary `bin` (e.g. [`crate::dpdk::bin_path`]).
    ///
    /// # Panics
    /// See [`Callbridge::start`].
    #[must_use]
    pub fn start_bin(dir: &Workdir, config: &Config, bin: &Path) -> Self {
        Self::start_with(dir, config, &config.render(), bin)
    }

    /// [`Callbridge::start`] with the configuration file's text given (e.g. `config.render()`
    /// with keys the harness does not model); `config` still names the addresses.
    ///
    /// # Panics
    /// See [`Callbridge::start`].
    #[must_use]
    pub fn start_text(dir: &Workdir, config: &Config, text: &str) -> Self {
        Self::start_with(dir, config, text, &bin_path())
    }

    fn start_with(dir: &Workdir, config: &Config, text: &str, bin: &Path) -> Self {
        let config_path = dir.write("callbridge.toml", text);
        let mut cmd = Command::new(bin);
        cmd.arg("serve").arg("--config").arg(&config_path);
        Self::start_command(dir, config, config_path, cmd)
    }

    /// Starts `cmd`, a full command line that runs `callbridge serve` with the configuration
    /// file `config_path` already written (e.g. the packaged unit's `ExecStart` under
    /// `setpriv`); `config` names the addresses. Output, environment and the health wait are
    /// as for [`Callbridge::start`]; [`Callbridge::stop`] signals `cmd`'s process, so `cmd`
    /// must exec callbridge (as `setpriv` and `runuser -u` do), not fork it.
    ///
    /// # Panics
    /// See [`Callbridge::start`].
    #[must_use]
    pub fn start_command(
        dir: &Workdir,
        config: &Config,
        config_path: PathBuf,
        mut cmd: Command,
    ) -> Self {
        let log_path = dir.file("callbridge.log");
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("clone log file handle");
        // callbridge reads CALLBRIDGE_LOG (tracing EnvFilter syntax); default to debug so a
        // failed test's log shows the SIP and flow decisions.
        let log_filter = std::env::var("CALLBRIDGE_LOG").unwrap_or_else(|_| "debug".into());
        let child = cmd
            .env("CALLBRIDGE_LOG", log_filter)
            .env("RUST_BACKTRACE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {cmd:?}: {e}"));
        let mut server = Self {
            pid: child.id(),
            child: Some(child),
            http: config.http,
            config: config.clone(),
            config_path,
            log_path,
            log_shown: std::cell::Cell::new(false),
        };
        server.wait_healthy(STARTUP_DEADLINE);
        server
    }

    fn wait_healthy(&mut self, deadline: Duration) {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_wait() {
                self.fail(&format!("callbridge exited during start-up with {status}"));
            }
            let last = match http::request(self.http, "GET", "/healthz", None) {
                Ok(r) if r.status == 200 => return,
                Ok(r) => format!("HTTP {} {:?}", r.status, r.body),
                Err(e) => e,
            };
            if start.elapsed() > deadline {
                self.fail(&format!(
                    "GET /healthz did not answer 200 within {deadline:?} (last: {last})"
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// The server's PID.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// The HTTP address.
    #[must_use]
    pub const fn http_addr(&self) -> SocketAddr {
        self.http
    }

    /// The config the server runs with.
    #[must_use]
    pub const fn config(&self) -> &Config {
        &self.config
    }

    /// The config file.
    #[must_use]
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The server's combined stdout/stderr so far.
    #[must_use]
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Panics with `msg` followed by the server log.
    ///
    /// # Panics
    /// Always.
    pub fn fail(&self, msg: &str) -> ! {
        self.log_shown.set(true);
        panic!(
            "{msg}\n===== callbridge log ({}) =====\n{}\n===== end of callbridge log =====",
            self.log_path.display(),
            self.log()
        )
    }

    /// Sends a request; transport errors fail the test (with the log).
    pub fn request(&self, method: &str, path: &str, body: Option<&str>) -> Response {
        http::request(self.http, method, path, body)
            .unwrap_or_else(|e| self.fail(&format!("HTTP {method} {path} failed: {e}")))
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Response {
        self.request("GET", path, None)
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Response {
        self.request("POST", path, Some(&body.to_string()))
    }

    /// `POST /v1/call-requests` with `body`; asserts 202 and a string `id`, returns the id.
    pub fn create_call_request(&self, body: &Value) -> String {
        self.created("/v1/call-requests", body)
    }

    /// `POST /v1/call-requests` for business `acme` and `customer`.
    pub fn call(&self, customer: &str) -> String {
        self.create_call_request(&json!({ "business": "acme", "customer": customer }))
    }

    /// `POST /v1/bridges {"customer","agent"}`; asserts 202, returns the id.
    pub fn create_bridge(&self, customer: &str, agent: &str) -> String {
        self.created(
            "/v1/bridges",
            &json!({ "customer": customer, "agent": agent }),
        )
    }

    fn created(&self, path: &str, body: &Value) -> String {
        let r = self.post(path, body);
        if r.status != 202 {
            self.fail(&format!(
                "POST {path} {body} answered {} {:?}, expected 202",
                r.status, r.body
            ));
        }
        let v = r.json();
        match v["id"].as_str() {
            Some(id) if !id.is_empty() => id.to_string(),
            _ => self.fail(&format!(
                "POST {path} answered 202 without a string id: {v}"
            )),
        }
    }

    /// `GET path`, asserting 200 and a JSON body.
    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        if r.status != 200 {
            self.fail(&format!(
                "GET {path} answered {} {:?}, expected 200",
                r.status, r.body
            ));
        }
        r.json()
    }

    /// `GET /v1/call-requests/{id}`.
    pub fn call_request(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/call-requests/{id}"))
    }

    /// `GET /v1/bridges/{id}`.
    pub fn bridge(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/bridges/{id}"))
    }

    /// Polls `GET path` every [`POLL_INTERVAL`] until `pred(record)` holds; returns that record.
    ///
    /// # Panics
    /// When `deadline` passes (with the last record and the log), or the server dies.
    pub fn wait_for(
        &mut self,
        path: &str,
        what: &str,
        pred: impl FnMut(&Value) -> bool,
        deadline: Duration,
    ) -> Value {
        match self.poll_until(path, what, pred, deadline) {
            Ok(v) => v,
            Err(v) => self.fail(&format!(
                "timed out after {deadline:?} waiting for {what}; last {path}: {v:#}"
            )),
        }
    }

    /// Like [`Callbridge::wait_for`], but a passed deadline is not a failure: `Err(last record)`.
    ///
    /// # Panics
    /// If the server dies or answers anything but 200 JSON.
    pub fn poll_until(
        &mut self,
        path: &str,
        what: &str,
        mut pred: impl FnMut(&Value) -> bool,
        deadline: Duration,
    ) -> Result<Value, Value> {
        let start = Instant::now();
        loop {
            let v = self.get_json(path);
            if pred(&v) {
                return Ok(v);
            }
            if let Some(status) = self.try_wait() {
                self.fail(&format!(
                    "callbridge exited with {status} while waiting for {what}; last {path}: {v:#}"
                ));
            }
            if start.elapsed() > deadline {
                return Err(v);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Waits until the call request's `status` satisfies `pred`; returns the record.
    ///
    /// # Panics
    /// See [`Callbridge::wait_for`].
    pub fn wait_for_status(
        &mut self,
        id: &str,
        pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Value {
        self.wait_for_status_at("/v1/call-requests", "call request", id, pred, deadline)
    }

    /// Waits until the bridge's `status` satisfies `pred`; returns the record.
    ///
    /// # Panics
    /// See [`Callbridge::wait_for`].
    pub fn wait_for_bridge_status(
        &mut self,
        id: &str,
        pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Value {
        self.wait_for_status_at("/v1/bridges", "bridge", id, pred, deadline)
    }

    fn wait_for_status_at(
        &mut self,
        collection: &str,
        kind: &str,
        id: &str,
        mut pred: impl FnMut(&str) -> bool,
        deadline: Duration,
    ) -> Value {
        self.wait_for(
            &format!("{collection}/{id}"),
            &format!("{kind} {id} to reach the expected status"),
            |v| pred(v["status"].as_str().unwrap_or_default()),
            deadline,
        )
    }

    /// `Some(status)` once the server process has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills the server with SIGKILL (no shutdown of any kind: a crash) and reaps it.
    /// Idempotent.
    pub fn kill_hard(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(self.pid, "KILL");
            let _ = child.wait();
        }
    }

    /// Stops the server: SIGTERM (a drain), a second SIGTERM after [`DRAIN_GRACE`] (the calls
    /// left are hung up), then SIGKILL after a grace period. Returns the exit status, or
    /// `None` if it had to be killed. Idempotent.
    pub fn stop(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(self.pid, "TERM");
        let start = Instant::now();
        let mut again = false;
        while start.elapsed() < TERM_GRACE {
            if !again && start.elapsed() > DRAIN_GRACE {
                signal(self.pid, "TERM");
                again = true;
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }
}

impl Drop for Callbridge {
    fn drop(&mut self) {
        let graceful = self.stop();
        if std::thread::panicking() && !self.log_shown.get() {
            eprintln!(
                "===== callbridge log ({}, stop: {graceful:?}) =====\n{}\n===== end of callbridge log =====",
                self.log_path.display(),
                self.log()
            );
        }
    }
}

/// Sends `SIG<sig>` to `pid` with kill(1) (the harness keeps `unsafe` out).
pub(crate) fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}
