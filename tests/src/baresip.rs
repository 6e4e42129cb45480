//! baresip 1.0 (Debian `baresip-core`) as a headless softphone: one account that registers
//! (digest) over TLS, auto-answers, does SDES-SRTP, sends a tone from a WAV file and records
//! what it hears to WAV.
//!
//! ```text
//!  <workdir>/<name>/config     module_path, modules, addresses (all 127.0.0.1), audio
//!  <workdir>/<name>/accounts   <sip:USER@127.0.0.1;transport=tls>;auth_pass=…;outbound=…;…
//!  <workdir>/<name>/tone.wav   what it says (1 kHz, 8 kHz mono: aufile needs the codec rate)
//!  <workdir>/<name>/rec/       dump-<time>-dec.wav (heard), dump-<time>-enc.wav (said)
//!  <workdir>/<name>.log        its stdout/stderr: `-v` info and `-s` SIP trace
//! ```
//!
//! Why this configuration (baresip 1.0.0, libre 1.1):
//! - No UI module (`stdio` wants a terminal; `-d` would fork away from the PID we kill):
//!   `answermode=auto` answers without one, in the UA core.
//! - Audio: no player module, so nothing touches a sound card; the receive path still decodes
//!   and runs the filters. `sndfile` is the filter that writes both directions to WAV (1.0's
//!   `aufile` is a source only); `aufile` is the source (a fixed-rate WAV, no device).
//! - Network: `net_interface 127.0.0.1` (the address put in Contact and SDP), `sip_listen
//!   127.0.0.1:P` (UDP and TCP on P, TLS on P+1), `rtp_ports` from our block, `dns_server
//!   127.0.0.1:53` so not even a stray lookup leaves loopback; no STUN/TURN/ICE modules.
//!   Two sockets cannot be kept on 127.0.0.1 in 1.0: the RTP/RTCP pair of a call (`stream.c`
//!   binds media to every interface, inside `rtp_ports`) and libre's DNS client (wildcard,
//!   unconnected UDP, sends only to `dns_server`).
//! - TLS: `sip_cafile` is loaded, but 1.0 never asks libre to verify the server
//!   (`sip_verify_server` came later), so this client accepts any certificate.
//! - Digest: libre 1.1 fails a 401 carrying any challenge that is not MD5 (`ENOSYS`, even
//!   next to an MD5 one), so the registrar must challenge MD5 only (`algorithms = ["MD5"]`).
//!
//! [`Baresip`] kills the process by its PID when dropped and prints the log if the test is
//! failing.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::audio::{self, Wav};
use crate::ports::PortBlock;
use crate::workdir::Workdir;
use crate::{read_log, POLL_INTERVAL};

/// Where the harness expects baresip.
pub const BARESIP_BIN: &str = "/usr/bin/baresip";
/// Its modules (Debian's layout).
pub const MODULE_PATH: &str = "/usr/lib/baresip/modules";
/// RTP ports given to one baresip (it picks pairs at random inside).
const RTP_PORTS: u16 = 20;

/// The one account baresip registers.
#[derive(Debug, Clone)]
pub struct Account {
    /// The SIP user name (and digest user name).
    pub user: String,
    /// The digest password.
    pub password: String,
    /// The registrar's TLS listener (REGISTER and calls go there, `outbound=`).
    pub registrar: SocketAddr,
    /// The CA certificate to load (`sip_cafile`).
    pub ca: PathBuf,
    /// `mediaenc`: `srtp-mand` (SDES, RTP/SAVP required), `srtp` (optional), or empty (none).
    pub mediaenc: String,
    /// `audio_codecs` (e.g. `pcma`).
    pub audio_codecs: String,
}

/// A running baresip; killed (SIGKILL, by PID) when dropped.
#[derive(Debug)]
pub struct Baresip {
    name: String,
    child: Option<Child>,
    pid: u32,
    status: Option<ExitStatus>,
    config_dir: PathBuf,
    rec_dir: PathBuf,
    log_path: PathBuf,
    sip_port: u16,
    rtp_ports: std::ops::RangeInclusive<u16>,
    _ports: PortBlock,
    /// Set once a panic message carried the log, so `Drop` does not print it again.
    log_shown: std::cell::Cell<bool>,
}

/// Panics unless baresip and the modules the harness loads are installed.
///
/// # Panics
/// If something is missing, naming the package.
pub fn require_baresip() {
    assert!(
        Path::new(BARESIP_BIN).is_file(),
        "{BARESIP_BIN} not found: apt-get install baresip-core (or run scripts/install-test-deps)"
    );
    for m in MODULES.iter().chain(TMP_MODULES) {
        let p = Path::new(MODULE_PATH).join(m);
        assert!(
            p.is_file(),
            "{} not found: apt-get install baresip-core",
            p.display()
        );
    }
}

/// Modules loaded for good (codec, SRTP, audio source, recorder).
const MODULES: &[&str] = &["g711.so", "srtp.so", "aufile.so", "sndfile.so"];
/// Modules loaded to read the configuration, then unloaded.
const TMP_MODULES: &[&str] = &["account.so"];

impl Baresip {
    /// Writes the configuration for `account` under `<dir>/<name>/` and starts baresip
    /// (`baresip -4 -v -s -f <dir>/<name>`); it registers at once.
    ///
    /// # Panics
    /// If baresip is missing or cannot be started, or a file cannot be written.
    #[must_use]
    pub fn spawn(dir: &Workdir, name: &str, account: &Account) -> Self {
        require_baresip();
        // [0] SIP (UDP, TCP), [1] SIP TLS (baresip takes P+1), [2..] RTP/RTCP.
        let ports = PortBlock::reserve(2 + RTP_PORTS);
        let config_dir = dir.file(name);
        let rec_dir = config_dir.join("rec");
        std::fs::create_dir_all(&rec_dir)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", rec_dir.display()));
        let tone = config_dir.join("tone.wav");
        // Longer than any call of a test: at its end aufile reports an error to the call.
        audio::write_wav(&tone, 8000, &audio::tone(8000, 1000.0, 8000.0, 60))
            .unwrap_or_else(|e| panic!("cannot write the tone: {e}"));

        let modules: String = MODULES
            .iter()
            .map(|m| format!("module\t\t\t{m}\n"))
            .chain(TMP_MODULES.iter().map(|m| format!("module_tmp\t\t{m}\n")))
            .collect();
        let config = format!(
            "# written by callbridge-tests (src/baresip.rs)\n\
             poll_method\t\tepoll\n\
             sip_listen\t\t127.0.0.1:{sip}\n\
             sip_cafile\t\t{ca}\n\
             net_interface\t\t127.0.0.1\n\
             dns_server\t\t127.0.0.1:53\n\
             call_local_timeout\t120\n\
             call_max_calls\t\t1\n\
             audio_buffer\t\t20-160\n\
             audio_source\t\taufile,{tone}\n\
             ausrc_format\t\ts16\n\
             auplay_format\t\ts16\n\
             auenc_format\t\ts16\n\
             audec_format\t\ts16\n\
             rtp_ports\t\t{rtp_lo}-{rtp_hi}\n\
             rtcp_mux\t\tno\n\
             jitter_buffer_delay\t1-10\n\
             module_path\t\t{MODULE_PATH}\n\
             {modules}\
             snd_path\t\t{rec}\n",
            sip = ports.port(0),
            ca = account.ca.display(),
            tone = tone.display(),
            rtp_lo = ports.port(2),
            rtp_hi = ports.port(2 + RTP_PORTS - 1),
            rec = rec_dir.display(),
        );
        write(&config_dir.join("config"), &config);
        let mediaenc = if account.mediaenc.is_empty() {
            String::new()
        } else {
            format!(";mediaenc={}", account.mediaenc)
        };
        let accounts = format!(
            "<sip:{user}@127.0.0.1;transport=tls>;auth_pass={pass};\
             outbound=\"sip:{reg};transport=tls\";answermode=auto;regint=60;\
             audio_codecs={codecs}{mediaenc}\n",
            user = account.user,
            pass = account.password,
            reg = account.registrar,
            codecs = account.audio_codecs,
        );
        write(&config_dir.join("accounts"), &accounts);

        let log_path = dir.file(&format!("{name}.log"));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log2 = log.try_clone().expect("clone log handle");
        let child = Command::new(BARESIP_BIN)
            .args(["-4", "-v", "-s", "-f"])
            .arg(&config_dir)
            .current_dir(&config_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {BARESIP_BIN}: {e}"));
        Self {
            name: name.into(),
            pid: child.id(),
            child: Some(child),
            status: None,
            config_dir,
            rec_dir,
            log_path,
            sip_port: ports.port(0),
            rtp_ports: ports.port(2)..=ports.port(2 + RTP_PORTS - 1),
            _ports: ports,
            log_shown: std::cell::Cell::new(false),
        }
    }

    /// The process id.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// Its SIP port (UDP and TCP; TLS is one above).
    #[must_use]
    pub const fn sip_port(&self) -> u16 {
        self.sip_port
    }

    /// Its `rtp_ports`: where its RTP/RTCP sockets are (bound to every interface: baresip 1.0
    /// listens for media on all of them whatever `net_interface` says).
    #[must_use]
    pub fn rtp_ports(&self) -> std::ops::RangeInclusive<u16> {
        self.rtp_ports.clone()
    }

    /// The configuration directory (`-f`).
    #[must_use]
    pub fn config_dir(&self) -> &Path {
        &self.config_dir
    }

    /// Its output so far, colour codes removed.
    #[must_use]
    pub fn log(&self) -> String {
        strip_ansi(&read_log(&self.log_path))
    }

    /// `Some(status)` once baresip has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(s)) = child.try_wait() {
                    self.status = Some(s);
                }
            }
        }
        self.status
    }

    /// Panics with `msg` and the log.
    ///
    /// # Panics
    /// Always.
    pub fn fail(&self, msg: &str) -> ! {
        self.log_shown.set(true);
        panic!(
            "baresip {}: {msg}\n===== baresip log ({}) =====\n{}\n===== end of baresip log =====",
            self.name,
            self.log_path.display(),
            self.log()
        )
    }

    /// The recording of what it heard (`dec`) or said (`enc`) in its last call, once there is
    /// one.
    #[must_use]
    pub fn recording(&self, kind: &str) -> Option<PathBuf> {
        let suffix = format!("-{kind}.wav");
        let mut found: Vec<PathBuf> = std::fs::read_dir(&self.rec_dir)
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("dump-") && n.ends_with(&suffix))
            })
            .collect();
        found.sort();
        found.pop()
    }

    /// Waits until the recording `kind` is complete (the call ended and the file was closed:
    /// its header sizes match the file) and returns it.
    ///
    /// # Panics
    /// When `deadline` passes first or baresip exits, with the log.
    pub fn wait_recording_closed(&mut self, kind: &str, deadline: Duration) -> Wav {
        let start = Instant::now();
        let mut last = String::from("no recording yet");
        loop {
            if let Some(p) = self.recording(kind) {
                match audio::read_wav(&p) {
                    Ok(w) if w.finalized => return w,
                    Ok(w) => {
                        last = format!("{}: {} samples, not closed", p.display(), w.samples.len())
                    }
                    Err(e) => last = e,
                }
            }
            if let Some(s) = self.try_wait() {
                self.fail(&format!(
                    "exited with {s} while its call was recorded ({last})"
                ));
            }
            if start.elapsed() > deadline {
                self.fail(&format!(
                    "the {kind} recording was not closed within {deadline:?}: {last}"
                ));
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }

    /// Its sockets as `ss` lists them: `(netid, local, peer)`.
    #[must_use]
    pub fn sockets(&self) -> Vec<(String, String, String)> {
        let out = Command::new("ss")
            .args(["-H", "-t", "-u", "-a", "-n", "-p"])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run ss: {e}"));
        let needle = format!("pid={},", self.pid);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(&needle))
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // Netid State Recv-Q Send-Q Local Peer Process
                (f.len() >= 6).then(|| (f[0].to_string(), f[4].to_string(), f[5].to_string()))
            })
            .collect()
    }

    /// Kills baresip (SIGKILL, by PID) if it is still running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.status.is_none() {
                let _ = child.kill();
                self.status = child.wait().ok();
            }
        }
    }
}

impl Drop for Baresip {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && !self.log_shown.get() {
            eprintln!(
                "===== baresip {} log ({}) =====\n{}\n===== end of baresip log =====",
                self.name,
                self.log_path.display(),
                self.log()
            );
        }
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
}

/// `text` without ANSI colour sequences (`ESC [ … letter`), as baresip and callbridge's
/// tracing write them even into files.
#[must_use]
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.clone().next() == Some('[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::strip_ansi;

    #[test]
    fn strips_colour_codes() {
        assert_eq!(
            strip_ansi(
                "\u{1b}[2m2026\u{1b}[0m \u{1b}[34mDEBUG\u{1b}[0m status\u{1b}[2m=\u{1b}[0m200"
            ),
            "2026 DEBUG status=200"
        );
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
