//! The processes of one trial and their clean-up: the generator, the forwarder (our relay or
//! dpdk-testpmd), their stdout read line by line on threads, and a guard that kills what is
//! still running (by PID) and removes the memif socket and the EAL runtime directories, also
//! on error.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use crossbeam_channel::{Receiver, RecvTimeoutError};

/// A child process with its stdout lines on a channel.
pub(crate) struct Proc {
    /// What it is (for messages).
    pub(crate) name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Its stdout, line by line (closed when it exits).
    pub(crate) lines: Receiver<String>,
    /// Its stderr, kept in a file for error messages.
    stderr: PathBuf,
    /// Its EAL `--file-prefix` (runtime directory removed on drop).
    prefix: String,
}

impl Proc {
    /// Starts `cmd` (stdin and stdout piped, stderr to `stderr`), with EAL file prefix
    /// `prefix`.
    pub(crate) fn spawn(
        name: &str,
        mut cmd: Command,
        stderr: PathBuf,
        prefix: &str,
    ) -> anyhow::Result<Self> {
        let err = std::fs::File::create(&stderr)
            .with_context(|| format!("creating {}", stderr.display()))?;
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        let stdout = child.stdout.take().context("stdout")?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::spawn(move || {
            for l in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Ok(Self {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines: rx,
            stderr,
            prefix: prefix.to_owned(),
        })
    }

    /// Its PID.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to its stdin.
    pub(crate) fn say(&mut self, line: &str) -> anyhow::Result<()> {
        let s = self.stdin.as_mut().context("stdin closed")?;
        writeln!(s, "{line}")
            .and_then(|()| s.flush())
            .with_context(|| format!("{} is gone{}", self.name, self.tail()))
    }

    /// Closes its stdin (our relay then stops).
    pub(crate) fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next stdout line starting with `word`, skipping others passed to `other`.
    pub(crate) fn expect(
        &mut self,
        word: &str,
        timeout: Duration,
        mut other: impl FnMut(&str),
    ) -> anyhow::Result<String> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.split_whitespace().next() == Some(word) => return Ok(l),
                Ok(l) => other(&l),
                Err(RecvTimeoutError::Timeout) => {
                    bail!(
                        "{} did not print '{word}' within {timeout:?}{}",
                        self.name,
                        self.tail()
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let st = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                    bail!(
                        "{} exited ({st}) before printing '{word}'{}",
                        self.name,
                        self.tail()
                    )
                }
            }
        }
    }

    /// Its next stdout line.
    pub(crate) fn next_line(&mut self, timeout: Duration) -> anyhow::Result<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(l) => Ok(l),
            Err(RecvTimeoutError::Timeout) => {
                bail!(
                    "{} printed nothing for {timeout:?}{}",
                    self.name,
                    self.tail()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let st = self.child.wait().map(|s| s.to_string()).unwrap_or_default();
                bail!("{} exited ({st}){}", self.name, self.tail())
            }
        }
    }

    /// Sends SIGINT (testpmd then prints its stats and exits cleanly).
    pub(crate) fn interrupt(&self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.pid().to_string()])
            .status();
    }

    /// Waits up to `timeout` for it to exit, then kills it (by PID).
    pub(crate) fn finish(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let end = Instant::now() + timeout;
        while Instant::now() < end {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }

    /// The last lines of its stderr, for error messages.
    pub(crate) fn tail(&self) -> String {
        let s = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        let from = lines.len().saturating_sub(15);
        if lines.is_empty() {
            String::new()
        } else {
            format!("; its stderr ends:\n{}", lines[from..].join("\n"))
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stdin = None;
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(Path::new("/var/run/dpdk").join(&self.prefix));
    }
}

/// The scenario's temporary directory (memif sockets, stderr logs), removed on drop.
pub(crate) struct TempDir(pub(crate) PathBuf);

impl TempDir {
    /// Creates `/tmp/cb-relay-dpdk-<pid>`.
    pub(crate) fn new() -> anyhow::Result<Self> {
        let d = std::env::temp_dir().join(format!("cb-relay-dpdk-{}", std::process::id()));
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        Ok(Self(d))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Fails loudly unless `dpdk-testpmd` and the memif PMD are installed.
pub(crate) fn check_prerequisites(testpmd: &str) -> anyhow::Result<()> {
    if !Path::new(testpmd).is_file() {
        bail!("{testpmd} is missing (Debian: apt-get install dpdk); relay-dpdk compares with it");
    }
    let libdir = Command::new("pkg-config")
        .args(["--variable=libdir", "libdpdk"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/usr/lib/x86_64-linux-gnu".into());
    let mut dirs = vec![PathBuf::from(&libdir)];
    if let Ok(rd) = std::fs::read_dir(Path::new(&libdir).join("dpdk")) {
        dirs.extend(rd.filter_map(Result::ok).map(|e| e.path()));
    }
    let found = dirs.iter().any(|d| {
        std::fs::read_dir(d).is_ok_and(|rd| {
            rd.filter_map(Result::ok).any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("librte_net_memif.so")
            })
        })
    });
    if !found {
        bail!(
            "the memif PMD (librte_net_memif.so) is not installed under {libdir} (Debian: \
             apt-get install librte-net-memif23, part of dpdk)"
        );
    }
    Ok(())
}
