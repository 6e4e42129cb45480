//! Spawning SIPp (3.6.x) with the scenarios in `tests/sipp/`.
//!
//! Each [`Sipp`] runs exactly one call (`-m 1`) on its own loopback ports and writes its
//! traces into the test's [`Workdir`]: `<name>_messages.log` (every SIP message),
//! `<name>_errors.log` (unexpected messages), `<name>_screen.log` (final statistics) and
//! `<name>.out` (stdout/stderr). [`Sipp::assert_passed`] checks the exit code (0 = the scenario
//! ran to its end) and puts all of those into the panic message otherwise.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use crate::ports::{udp_in_use, PortBlock};
use crate::workdir::Workdir;
use crate::{read_log, STARTUP_DEADLINE};

/// Where the harness expects SIPp.
pub const SIPP_BIN: &str = "/usr/bin/sipp";
/// The PCMA (payload type 8) RTP capture the answering scenarios play.
pub const G711A_PCAP: &str = "/usr/share/sip-tester/g711a.pcap";
/// SIPp's own global timeout; it fails (`-timeout_error`) if the scenario is not done by then.
pub const SIPP_TIMEOUT_SECS: u32 = 60;

/// The scenarios in `tests/sipp/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// `uas_answer.xml`: 180, wait `ring_ms`, 200 with PCMA SDP, play RTP, wait for BYE.
    Answer,
    /// `uas_answer_bye.xml`: like [`Scenario::Answer`] but sends BYE `hangup_ms` after the ACK.
    AnswerBye,
    /// `uas_answer_bye_long_rtp.xml`: like [`Scenario::AnswerBye`], but talks 13 s plus
    /// `hangup_ms` (at most 6500), its RTP flowing until the BYE.
    AnswerByeLongRtp,
    /// `uas_answer_external_media.xml`: like [`Scenario::Answer`], but the SDP answer names
    /// `rtp_port` (a test-owned socket) and SIPp plays nothing.
    AnswerExternalMedia,
    /// `uas_answer_bye_external_media.xml`: like [`Scenario::AnswerBye`], media as in
    /// [`Scenario::AnswerExternalMedia`].
    AnswerByeExternalMedia,
    /// `uas_answer_bye_external_media_pcmu.xml`: like [`Scenario::AnswerByeExternalMedia`]
    /// answering PCMU (0) and telephone-event 101 instead of PCMA.
    AnswerByeExternalMediaPcmu,
    /// `uas_answer_reinvite_external_media.xml`: like [`Scenario::AnswerExternalMedia`], and
    /// accepts one re-INVITE (any SDP; answered with the same media) before the BYE.
    AnswerReinviteExternalMedia,
    /// `uas_answer_reinvite_bye_external_media.xml`: like
    /// [`Scenario::AnswerByeExternalMedia`], accepting one re-INVITE first; `hangup_ms` runs
    /// from the re-INVITE's ACK.
    AnswerReinviteByeExternalMedia,
    /// `uas_answer_reanchor_external_media.xml`: for many calls, media as in
    /// [`Scenario::AnswerExternalMedia`] (one `rtp_port` for all), any number of re-INVITEs
    /// accepted; the call ends with callbridge's BYE, or with SIPp's BYE once the test sends
    /// an INFO into the dialog ([`crate::sipp_log::send_hangup_info`]).
    AnswerReanchorExternalMedia,
    /// `uas_answer_via_proxy.xml`: like [`Scenario::AnswerExternalMedia`] without the 180,
    /// behind an impairment proxy (`proxy_addr` in every Contact), the ACK optional, 8 s of
    /// time-wait.
    AnswerViaProxy,
    /// `uas_answer_bye_via_proxy.xml`: like [`Scenario::AnswerByeExternalMedia`] without the
    /// 180, behind an impairment proxy (`proxy_addr` in Contact and in the BYE's Via), the BYE
    /// retransmitted.
    AnswerByeViaProxy,
    /// `uas_busy.xml`: 486 Busy Here.
    Busy,
    /// `uas_unavailable.xml`: 503 Service Unavailable (a trunk out of service).
    Unavailable,
    /// `uas_early_media_answer_bye.xml`: a 183 with SDP naming `rtp_port` (early media),
    /// 200 after `ring_ms`, BYE `hangup_ms` after the ACK.
    EarlyMediaAnswerBye,
    /// `uas_answer_held.xml`: answers PCMA, then accepts a re-INVITE that must say
    /// `a=sendonly` (held) and one that must say `a=sendrecv` (resumed), then the BYE.
    AnswerHeld,
    /// `uas_hold_bye.xml`: answers PCMU, puts the call on hold (re-INVITE `a=sendonly`),
    /// resumes it 1.5 s later (`a=sendrecv`), checking each 200, and hangs up 1 s after.
    HoldResumeBye,
    /// `uac_register.xml`: a softphone that REGISTERs (Expires 300) as `alice7`, answers the
    /// 401 with digest MD5 (password `hunter2-long`), and expects 200.
    Register,
    /// `uas_answer_auth.xml`: a trunk that challenges the INVITE (401, digest MD5 qop=auth,
    /// user `cbtrunk`, password `s3cret-trunk`, checked by SIPp), then like
    /// [`Scenario::Answer`].
    AnswerAuth,
    /// `uas_answer_auth_via_tls.xml`: [`Scenario::AnswerAuth`] behind a TLS terminator
    /// (`tls_host`, see [`crate::tls::Stunnel`]; SIPp runs `-t t1`): every Contact is
    /// `sip:sipp@<tls_host>;transport=tls`, so in-dialog requests cross TLS too.
    AnswerAuthViaTls,
    /// `uas_noanswer.xml`: 180, then requires a CANCEL (200 to it, 487 to the INVITE).
    NoAnswer,
    /// `uas_hangup_early.xml`: answers at once, sends BYE ~1 s after the ACK.
    HangupEarly,
    /// `selftest/uac_wait_bye.xml`: a UAC that calls and waits for the callee's BYE.
    SelftestUacWaitBye,
    /// `selftest/uac_cancel.xml`: a UAC that CANCELs after `-d` ms (or accepts a 486).
    SelftestUacCancel,
    /// `uac_wait_bye_record_route.xml`: [`Scenario::SelftestUacWaitBye`] behind a
    /// record-routing proxy (the ACK carries the route set).
    UacWaitByeRecordRoute,
    /// SIPp's built-in `uac` (`-sn uac`): INVITE, ACK, pause `-d` ms, BYE.
    BuiltinUac,
}

impl Scenario {
    /// The scenario file, relative to `tests/sipp/`.
    #[must_use]
    pub const fn file(self) -> &'static str {
        match self {
            Self::Answer => "uas_answer.xml",
            Self::AnswerBye => "uas_answer_bye.xml",
            Self::AnswerByeLongRtp => "uas_answer_bye_long_rtp.xml",
            Self::AnswerExternalMedia => "uas_answer_external_media.xml",
            Self::AnswerByeExternalMedia => "uas_answer_bye_external_media.xml",
            Self::AnswerByeExternalMediaPcmu => "uas_answer_bye_external_media_pcmu.xml",
            Self::AnswerReinviteExternalMedia => "uas_answer_reinvite_external_media.xml",
            Self::AnswerReinviteByeExternalMedia => "uas_answer_reinvite_bye_external_media.xml",
            Self::AnswerReanchorExternalMedia => "uas_answer_reanchor_external_media.xml",
            Self::AnswerViaProxy => "uas_answer_via_proxy.xml",
            Self::AnswerByeViaProxy => "uas_answer_bye_via_proxy.xml",
            Self::Busy => "uas_busy.xml",
            Self::Unavailable => "uas_unavailable.xml",
            Self::AnswerHeld => "uas_answer_held.xml",
            Self::EarlyMediaAnswerBye => "uas_early_media_answer_bye.xml",
            Self::HoldResumeBye => "uas_hold_bye.xml",
            Self::Register => "uac_register.xml",
            Self::AnswerAuth => "uas_answer_auth.xml",
            Self::AnswerAuthViaTls => "uas_answer_auth_via_tls.xml",
            Self::NoAnswer => "uas_noanswer.xml",
            Self::HangupEarly => "uas_hangup_early.xml",
            Self::SelftestUacWaitBye => "selftest/uac_wait_bye.xml",
            Self::SelftestUacCancel => "selftest/uac_cancel.xml",
            Self::UacWaitByeRecordRoute => "uac_wait_bye_record_route.xml",
            Self::BuiltinUac => "uac (built-in)",
        }
    }

    /// The global variables the scenario declares (SIPp refuses `-set` of any other).
    #[must_use]
    pub const fn globals(self) -> &'static [&'static str] {
        match self {
            Self::Answer | Self::AnswerAuth => &["ring_ms"],
            Self::AnswerBye | Self::AnswerByeLongRtp => &["ring_ms", "hangup_ms"],
            Self::AnswerExternalMedia
            | Self::AnswerReinviteExternalMedia
            | Self::AnswerReanchorExternalMedia => &["ring_ms", "rtp_port"],
            Self::AnswerByeExternalMedia
            | Self::AnswerReinviteByeExternalMedia
            | Self::AnswerByeExternalMediaPcmu
            | Self::EarlyMediaAnswerBye => &["ring_ms", "hangup_ms", "rtp_port"],
            Self::AnswerViaProxy => &["ring_ms", "rtp_port", "proxy_addr"],
            Self::AnswerAuthViaTls => &["ring_ms", "tls_host"],
            Self::AnswerByeViaProxy => &["ring_ms", "hangup_ms", "rtp_port", "proxy_addr"],
            Self::SelftestUacWaitBye | Self::UacWaitByeRecordRoute => &["rtp_port"],
            _ => &[],
        }
    }

    /// The absolute path of the scenario file.
    #[must_use]
    pub fn path(self) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("sipp")
            .join(self.file())
    }

    const fn is_uac(self) -> bool {
        matches!(
            self,
            Self::SelftestUacWaitBye
                | Self::UacWaitByeRecordRoute
                | Self::SelftestUacCancel
                | Self::BuiltinUac
                | Self::Register
        )
    }
}

/// Knobs for one SIPp run.
#[derive(Debug, Clone, Default)]
pub struct SippOptions {
    /// `-set ring_ms`: delay between 180 and 200 ([`Scenario::Answer`], [`Scenario::AnswerBye`]).
    pub ring_ms: u32,
    /// `-set hangup_ms`: delay between ACK and our BYE ([`Scenario::AnswerBye`]).
    pub hangup_ms: u32,
    /// `-d`: duration of plain `<pause/>`s ([`Scenario::SelftestUacCancel`]).
    pub pause_ms: u32,
    /// `-m`: calls to handle before exiting (0 is taken as 1).
    pub calls: u32,
    /// `-rtp_echo`: echo RTP received on the media port back to its sender.
    pub rtp_echo: bool,
    /// The peer to call (UAC scenarios only).
    pub remote: Option<SocketAddr>,
    /// `-set rtp_port`: the RTP port the SDP advertises in the `*ExternalMedia` scenarios and
    /// the self-test UAC's offer (default: SIPp's own media port).
    pub rtp_port: Option<u16>,
    /// `-i`: the SIP address (default 127.0.0.1).
    pub sip_ip: Option<Ipv4Addr>,
    /// `-mi`: the media address, in the SDP and the source of the played RTP (default: the
    /// SIP address).
    pub media_ip: Option<Ipv4Addr>,
    /// `-s`: the user part of the Request-URI a UAC scenario calls (e.g. a business's
    /// number, `+15550001000`).
    pub service: Option<String>,
    /// `-p`: this SIP port instead of a fresh one (e.g. the port an earlier SIPp registered
    /// from, so that calls to that registration reach this one).
    pub sip_port: Option<u16>,
    /// `-t t1`: SIP over TCP, one connection (SIPp listens on TCP instead of UDP; its Contact
    /// says `transport=TCP`).
    pub tcp: bool,
    /// `-set proxy_addr`: the impairment proxy the `*ViaProxy` scenarios name in Contact (and
    /// Via), so in-dialog requests cross it too.
    pub proxy: Option<SocketAddr>,
    /// `-set tls_host`: where the TLS terminator in front of SIPp is reached (`IP:PORT`, or a
    /// host name callbridge resolves), named in every Contact of
    /// [`Scenario::AnswerAuthViaTls`], so in-dialog requests cross TLS too.
    pub tls_host: Option<String>,
    /// `-max_retrans`: UDP retransmissions before a call fails (SIPp's default: 5 for INVITE
    /// transactions, 7 for others).
    pub max_retrans: Option<u32>,
    /// `-timeout`: SIPp's global timeout (default [`SIPP_TIMEOUT_SECS`]); for runs of many calls.
    pub timeout_secs: Option<u32>,
    /// Run inside this network namespace (`ip netns exec NS sipp …`; `ip` execs SIPp in place,
    /// so the child's PID is SIPp's). The addresses must exist in that namespace.
    pub netns: Option<String>,
}

/// A running SIPp; killed (SIGKILL) when dropped if still running.
#[derive(Debug)]
pub struct Sipp {
    name: String,
    scenario: Scenario,
    sip_ip: IpAddr,
    sip_port: u16,
    tcp: bool,
    netns: Option<String>,
    child: Option<Child>,
    pid: u32,
    status: Option<ExitStatus>,
    ports: PortBlock,
    out_path: PathBuf,
    messages_path: PathBuf,
    errors_path: PathBuf,
    screen_path: PathBuf,
    /// Set once a panic message carried the report, so `Drop` does not print it again.
    report_shown: std::cell::Cell<bool>,
}

/// Panics unless SIPp and its audio capture are installed.
///
/// # Panics
/// If `/usr/bin/sipp` or the g711a capture is missing.
pub fn require_sipp() {
    assert!(
        Path::new(SIPP_BIN).is_file(),
        "{SIPP_BIN} not found: apt-get install sip-tester (or run scripts/test, which installs it)"
    );
    assert!(
        Path::new(G711A_PCAP).is_file(),
        "{G711A_PCAP} not found: apt-get install sip-tester"
    );
}

impl Sipp {
    /// A UAS running `scenario` with default options (answer at once).
    #[must_use]
    pub fn uas(dir: &Workdir, name: &str, scenario: Scenario) -> Self {
        Self::spawn(dir, name, scenario, &SippOptions::default())
    }

    /// Spawns SIPp for `scenario` on fresh loopback ports and waits until its SIP port is bound.
    ///
    /// # Panics
    /// If SIPp is missing, exits at once, or does not bind its port within the start-up
    /// deadline; or a UAC scenario has no `remote`.
    #[must_use]
    pub fn spawn(dir: &Workdir, name: &str, scenario: Scenario, opts: &SippOptions) -> Self {
        require_sipp();
        // [0] SIP, [2] RTP (even), [3] RTCP, [4]/[5] what SIPp's echo uses for video.
        let ports = PortBlock::reserve(6);
        let sip_port = opts.sip_port.unwrap_or_else(|| ports.port(0));
        let out_path = dir.file(&format!("{name}.out"));
        let messages_path = dir.file(&format!("{name}_messages.log"));
        let errors_path = dir.file(&format!("{name}_errors.log"));
        let screen_path = dir.file(&format!("{name}_screen.log"));
        let out = File::create(&out_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", out_path.display()));
        let out2 = out.try_clone().expect("clone SIPp output handle");

        let sip_ip = opts.sip_ip.unwrap_or(Ipv4Addr::LOCALHOST);
        let media_ip = opts.media_ip.unwrap_or(sip_ip);
        let mut cmd = match &opts.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, SIPP_BIN]);
                c
            }
            None => Command::new(SIPP_BIN),
        };
        if scenario.is_uac() {
            let remote = opts
                .remote
                .unwrap_or_else(|| panic!("{name}: UAC scenario needs remote"));
            cmd.arg(remote.to_string());
        }
        if scenario == Scenario::BuiltinUac {
            cmd.args(["-sn", "uac"]);
        } else {
            cmd.arg("-sf").arg(scenario.path());
        }
        cmd.args(["-i", &sip_ip.to_string(), "-bind_local"])
            .args(["-p", &sip_port.to_string()])
            .args(["-mi", &media_ip.to_string()])
            .args(["-mp", &ports.port(2).to_string()])
            .args(["-m", &opts.calls.max(1).to_string()])
            .args([
                "-timeout",
                &format!("{}s", opts.timeout_secs.unwrap_or(SIPP_TIMEOUT_SECS)),
                "-timeout_error",
            ])
            .args(["-d", &opts.pause_ms.to_string()])
            .arg("-aa")
            .arg("-nostdin")
            .arg("-trace_msg")
            .arg("-message_file")
            .arg(&messages_path)
            .arg("-trace_err")
            .arg("-error_file")
            .arg(&errors_path)
            .arg("-trace_screen")
            .arg("-screen_file")
            .arg(&screen_path)
            .current_dir(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(out2));
        for var in scenario.globals() {
            let value = match *var {
                "ring_ms" => opts.ring_ms.to_string(),
                "hangup_ms" => opts.hangup_ms.to_string(),
                "rtp_port" => opts.rtp_port.unwrap_or_else(|| ports.port(2)).to_string(),
                "proxy_addr" => opts
                    .proxy
                    .unwrap_or_else(|| panic!("{name}: {} needs a proxy", scenario.file()))
                    .to_string(),
                "tls_host" => opts
                    .tls_host
                    .clone()
                    .unwrap_or_else(|| panic!("{name}: {} needs tls_host", scenario.file())),
                other => unreachable!("scenario global {other} has no option"),
            };
            cmd.args(["-set", var, &value]);
        }
        if let Some(n) = opts.max_retrans {
            cmd.args(["-max_retrans", &n.to_string()]);
        }
        if opts.rtp_echo {
            cmd.arg("-rtp_echo");
        }
        if opts.tcp {
            cmd.args(["-t", "t1"]);
        }
        if let Some(service) = &opts.service {
            cmd.args(["-s", service]);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {SIPP_BIN}: {e}"));
        let mut sipp = Self {
            name: name.to_string(),
            scenario,
            sip_ip: IpAddr::V4(sip_ip),
            sip_port,
            tcp: opts.tcp,
            netns: opts.netns.clone(),
            pid: child.id(),
            child: Some(child),
            status: None,
            ports,
            out_path,
            messages_path,
            errors_path,
            screen_path,
            report_shown: std::cell::Cell::new(false),
        };
        if !scenario.is_uac() {
            sipp.wait_bound();
        }
        sipp
    }

    /// True once SIPp's SIP port is bound: probed on loopback, or with `ss` inside the
    /// namespace.
    fn sip_bound(&self) -> bool {
        match &self.netns {
            None if self.tcp => crate::ports::tcp_listening(self.sip_port),
            None => udp_in_use(self.sip_port),
            Some(ns) => crate::netns::udp_bound(ns, self.sip_addr()),
        }
    }

    fn wait_bound(&mut self) {
        let start = Instant::now();
        while !self.sip_bound() {
            if let Some(status) = self.try_wait() {
                self.fail(&format!("exited with {status} before binding its SIP port"));
            }
            if start.elapsed() > STARTUP_DEADLINE {
                self.fail(&format!(
                    "did not bind {} {} within {STARTUP_DEADLINE:?}",
                    if self.tcp { "TCP" } else { "UDP" },
                    self.sip_addr()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The SIPp SIP address (UDP).
    #[must_use]
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.sip_ip, self.sip_port)
    }

    /// `sip:<user>@<SIP address>:<sip port>`.
    #[must_use]
    pub fn sip_uri(&self, user: &str) -> String {
        let params = if self.tcp { ";transport=tcp" } else { "" };
        format!("sip:{user}@{}{params}", self.sip_addr())
    }

    /// Whether SIPp speaks SIP over TCP ([`SippOptions::tcp`]).
    #[must_use]
    pub const fn is_tcp(&self) -> bool {
        self.tcp
    }

    /// SIPp's RTP port.
    #[must_use]
    pub fn media_port(&self) -> u16 {
        self.ports.port(2)
    }

    /// The process id.
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// `Some(status)` once SIPp has exited.
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

    /// Waits up to `deadline` for SIPp to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        loop {
            if let Some(s) = self.try_wait() {
                return Some(s);
            }
            if start.elapsed() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for SIPp to exit and asserts exit code 0 (every scenario step happened).
    ///
    /// # Panics
    /// On a non-zero exit or when SIPp is still running after `deadline`; the message holds
    /// SIPp's traces.
    pub fn assert_passed(&mut self, deadline: Duration) {
        match self.wait_exit(deadline) {
            Some(s) if s.success() => {}
            Some(s) => self.fail(&format!("exited with {s} ({})", explain(s.code()))),
            None => self.fail(&format!("still running after {deadline:?}")),
        }
    }

    /// The file SIPp traces every SIP message into (for [`crate::sipp_log::MessageTail`]).
    #[must_use]
    pub fn messages_path(&self) -> &Path {
        &self.messages_path
    }

    /// All SIP messages SIPp sent and received so far.
    #[must_use]
    pub fn messages(&self) -> String {
        read_log(&self.messages_path)
    }

    /// True when SIPp received a request `method` (e.g. "CANCEL").
    #[must_use]
    pub fn received_request(&self, method: &str) -> bool {
        let log = self.messages();
        let mut lines = log.lines();
        while let Some(line) = lines.next() {
            if line.contains("message received") {
                let first = lines
                    .by_ref()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or_default();
                if first.starts_with(&format!("{method} ")) {
                    return true;
                }
            }
        }
        false
    }

    /// The audio address of the SDP in the first request `method` SIPp received (for an
    /// INVITE from callbridge: the relay's address for this leg).
    #[must_use]
    pub fn received_sdp_audio(&self, method: &str) -> Option<SocketAddr> {
        self.received_sdp_audio_with(method, "")
    }

    /// The audio address of the SDP in the first request `method` SIPp received whose text
    /// contains `needle` (e.g. `X-Callbridge-Call: <id>`, to pick one call's INVITE).
    #[must_use]
    pub fn received_sdp_audio_with(&self, method: &str, needle: &str) -> Option<SocketAddr> {
        let log = self.messages();
        let mut blocks = log.split("message received").skip(1);
        blocks.find_map(|b| {
            // One message runs up to SIPp's next "-----... <timestamp>" separator.
            let msg: Vec<&str> = b
                .lines()
                .skip(1)
                .take_while(|l| !l.starts_with("-----"))
                .collect();
            let first = msg.iter().find(|l| !l.trim().is_empty())?;
            let text = msg.join("\n");
            if first.starts_with(&format!("{method} ")) && text.contains(needle) {
                sdp_audio_addr(&text)
            } else {
                None
            }
        })
    }

    /// Everything SIPp wrote, for failure messages.
    #[must_use]
    pub fn report(&self) -> String {
        format!(
            "===== SIPp {name} ({scenario}, SIP {sip}, RTP {rtp}) =====\n\
             --- stdout/stderr ({out}) ---\n{o}\n--- errors ({err}) ---\n{e}\n\
             --- screen ({scr}) ---\n{s}\n--- messages ({msg}) ---\n{m}\n===== end of SIPp {name} =====",
            name = self.name,
            scenario = self.scenario.file(),
            sip = self.sip_addr(),
            rtp = self.media_port(),
            out = self.out_path.display(),
            o = tail(&read_log(&self.out_path), 4000),
            err = self.errors_path.display(),
            e = read_optional(&self.errors_path),
            scr = self.screen_path.display(),
            s = read_log(&self.screen_path),
            msg = self.messages_path.display(),
            m = self.messages(),
        )
    }

    /// Panics with `msg` and SIPp's traces.
    ///
    /// # Panics
    /// Always.
    pub fn fail(&self, msg: &str) -> ! {
        self.report_shown.set(true);
        panic!("SIPp {}: {msg}\n{}", self.name, self.report())
    }

    /// Kills SIPp (SIGKILL) if it is still running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            if self.status.is_none() {
                let _ = child.kill();
                self.status = child.wait().ok();
            }
        }
    }
}

impl Drop for Sipp {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() && !self.report_shown.get() {
            eprintln!("{}", self.report());
        }
    }
}

/// The `c=` address and `m=audio` port of an SDP body (session- or media-level `c=`).
#[must_use]
pub fn sdp_audio_addr(text: &str) -> Option<SocketAddr> {
    let mut ip = None;
    let mut port = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("c=IN IP4 ") {
            // A media-level c= after m=audio wins; the session-level one is the default.
            if port.is_none() || ip.is_none() {
                ip = rest
                    .split_whitespace()
                    .next()
                    .and_then(|a| a.split('/').next())
                    .map(str::to_string);
            } else {
                ip = rest.split_whitespace().next().map(str::to_string);
            }
        } else if let Some(rest) = line.strip_prefix("m=audio ") {
            port = rest
                .split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok());
        } else if line.starts_with("m=") && port.is_some() {
            break;
        }
    }
    format!("{}:{}", ip?, port?).parse().ok()
}

/// SIPp's exit codes (from `sipp -h`).
#[must_use]
pub fn explain(code: Option<i32>) -> &'static str {
    match code {
        Some(0) => "all calls were successful",
        Some(1) => "at least one call failed",
        Some(97) => "exit on internal command",
        Some(99) => "normal exit without calls processed",
        Some(254) => "fatal error binding a socket (-2)",
        Some(255) => "fatal error (-1), e.g. the -timeout_error global timeout",
        Some(_) => "unknown exit code",
        None => "killed by a signal",
    }
}

/// Like [`read_log`], but a file SIPp never created (nothing to report) reads as "(none)".
fn read_optional(path: &Path) -> String {
    if path.exists() {
        read_log(path)
    } else {
        "(none)".into()
    }
}

fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut cut = s.len() - max;
    while !s.is_char_boundary(cut) {
        cut += 1;
    }
    &s[cut..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_audio_address() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
                   m=audio 20002 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n";
        assert_eq!(
            sdp_audio_addr(sdp),
            Some("127.0.0.1:20002".parse().unwrap())
        );
        let media_level = "c=IN IP4 10.0.0.1\nm=audio 4000 RTP/AVP 0\nc=IN IP4 127.0.0.2\nm=video 5000 RTP/AVP 96\nc=IN IP4 10.9.9.9\n";
        assert_eq!(
            sdp_audio_addr(media_level),
            Some("127.0.0.2:4000".parse().unwrap())
        );
        assert_eq!(sdp_audio_addr("m=audio 4000 RTP/AVP 0\n"), None);
    }
}
