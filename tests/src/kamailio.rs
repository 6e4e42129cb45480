//! Kamailio (Debian's `kamailio`, with its `rtpengine` module) as the SIP proxy in front of a
//! media node, and the media nodes it drives over rtpengine's ng protocol: `callbridge media`
//! or rtpengine itself, so that one test runs against both.
//!
//! ```text
//!  SIPp UAC ──SIP──► Kamailio (record_route, rtpengine_manage()) ──SIP──► SIPp UAS
//!                        │ ng (UDP, loopback)
//!                        ▼
//!                  media node: callbridge media | rtpengine ◄──RTP──► the test's RTP peers
//! ```
//!
//! Everything on 127.0.0.1, on ports from [`PortBlock`]s. Processes are stopped by PID when
//! their owners are dropped; each writes its log into the test's [`Workdir`].

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ports::{udp_in_use, PortBlock};
use crate::workdir::Workdir;
use crate::{read_log, STARTUP_DEADLINE};

/// The Kamailio binary (Debian package `kamailio`).
pub const KAMAILIO_BIN: &str = "/usr/sbin/kamailio";
/// The rtpengine binary (Debian package `rtpengine-daemon`).
pub const RTPENGINE_BIN: &str = "/usr/bin/rtpengine";
/// The flags of every `rtpengine_manage()` call, as carriers write them.
pub const MANAGE_FLAGS: &str =
    "trust-address replace-origin replace-session-connection ICE=remove RTP/AVP";

/// A child process killed (SIGTERM, then SIGKILL) by its PID when dropped.
#[derive(Debug)]
struct Proc {
    child: Option<Child>,
    pid: u32,
    log: PathBuf,
}

impl Proc {
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Sends SIGTERM and waits for the exit (SIGKILL after 10 s).
    fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let t0 = Instant::now();
        loop {
            if let Ok(Some(s)) = child.try_wait() {
                return Some(s);
            }
            if t0.elapsed() > Duration::from_secs(10) {
                let _ = child.kill();
                return child.wait().ok();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Which media node a test drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// `callbridge media`.
    Callbridge,
    /// rtpengine, userspace, without a config file.
    Rtpengine,
}

/// A running media node with its ng address.
#[derive(Debug)]
pub struct MediaNode {
    proc: Proc,
    ng: SocketAddr,
    ports: PortBlock,
    kind: NodeKind,
}

/// Ports of a node's media range.
const NODE_PORTS: u16 = 40;

impl MediaNode {
    /// Starts a node of `kind` on 127.0.0.1 and waits until it answers an ng `ping`.
    ///
    /// # Panics
    /// If it cannot start or does not answer within [`STARTUP_DEADLINE`] (with its log).
    #[must_use]
    pub fn start(dir: &Workdir, kind: NodeKind) -> Self {
        let ports = PortBlock::reserve(NODE_PORTS + 2);
        let ng = ports.addr(NODE_PORTS);
        let (first, last) = (ports.port(0), ports.port(NODE_PORTS - 1));
        let (name, mut cmd) = match kind {
            NodeKind::Callbridge => {
                let cfg = dir.write(
                    "media-node.toml",
                    &format!(
                        "[media]\naddress = \"127.0.0.1\"\nports = \"{first}-{last}\"\nng_listen = \"{ng}\"\n"
                    ),
                );
                let mut c = Command::new(crate::server::bin_path());
                c.args(["media", "--config"]).arg(cfg);
                c.env("CALLBRIDGE_LOG", "debug");
                ("callbridge-media", c)
            }
            NodeKind::Rtpengine => {
                assert!(
                    Path::new(RTPENGINE_BIN).is_file(),
                    "{RTPENGINE_BIN} not found: apt-get install rtpengine-daemon (scripts/install-test-deps)"
                );
                let mut c = Command::new(RTPENGINE_BIN);
                c.args([
                    "--config-file=none",
                    "--foreground",
                    "--log-stderr",
                    "--log-level=6",
                    "--table=-1",
                    "--interface=127.0.0.1",
                    &format!("--listen-ng={ng}"),
                    &format!("--port-min={first}"),
                    &format!("--port-max={last}"),
                    "--num-threads=1",
                    "--delete-delay=0",
                ]);
                ("rtpengine", c)
            }
        };
        let log = dir.file(&format!("{name}.log"));
        let out = File::create(&log).expect("node log");
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let mut node = Self {
            proc: Proc {
                pid: child.id(),
                child: Some(child),
                log,
            },
            ng,
            ports,
            kind,
        };
        let t0 = Instant::now();
        let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("ng client");
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let mut buf = [0u8; 256];
        loop {
            if let Some(s) = node.proc.exited() {
                panic!("{name} exited ({s}) during start-up:\n{}", node.log());
            }
            let _ = sock.send_to(b"start_1 d7:command4:pinge", ng);
            if let Ok((n, _)) = sock.recv_from(&mut buf) {
                if buf[..n].windows(4).any(|w| w == b"pong") {
                    return node;
                }
            }
            assert!(
                t0.elapsed() < STARTUP_DEADLINE,
                "{name} did not answer ng ping on {ng}:\n{}",
                node.log()
            );
        }
    }

    /// The ng address (UDP).
    #[must_use]
    pub const fn ng(&self) -> SocketAddr {
        self.ng
    }

    /// Which node this is.
    #[must_use]
    pub const fn kind(&self) -> NodeKind {
        self.kind
    }

    /// Whether `port` is in the node's media range.
    #[must_use]
    pub fn owns_port(&self, port: u16) -> bool {
        (self.ports.port(0)..=self.ports.port(NODE_PORTS - 1)).contains(&port)
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        read_log(&self.proc.log)
    }

    /// SIGTERM, and the exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        self.proc.stop()
    }
}

/// A running Kamailio proxying every INVITE to `uas`, with `rtpengine_manage()` on the
/// INVITE, the replies with SDP, the ACK with SDP and the BYE (which also logs `$rtpstat`:
/// the media node's counters, from an ng `query`, as the line `CB-RTPSTAT <value>`).
#[derive(Debug)]
pub struct Kamailio {
    proc: Proc,
    addr: SocketAddr,
    _ports: PortBlock,
}

impl Kamailio {
    /// Starts Kamailio on a loopback port with the `rtpengine` module pointed at `ng`,
    /// relaying to `uas`; waits until its SIP port is bound and it logged that it is ready.
    ///
    /// # Panics
    /// If Kamailio is missing, exits, or does not come up within [`STARTUP_DEADLINE`].
    #[must_use]
    pub fn start(dir: &Workdir, ng: SocketAddr, uas: SocketAddr) -> Self {
        assert!(
            Path::new(KAMAILIO_BIN).is_file(),
            "{KAMAILIO_BIN} not found: apt-get install kamailio (scripts/install-test-deps)"
        );
        let ports = PortBlock::reserve(2);
        let addr = ports.addr(0);
        let cfg = dir.write("kamailio.cfg", &config(addr, ng, uas));
        let run = dir.path().join("kamailio-run");
        std::fs::create_dir_all(&run).expect("kamailio runtime dir");
        let log = dir.file("kamailio.log");
        let out = File::create(&log).expect("kamailio log");
        let child = Command::new(KAMAILIO_BIN)
            .args(["-f"])
            .arg(&cfg)
            .args(["-DD", "-E", "-m", "64", "-M", "8", "-Y"])
            .arg(&run)
            .arg("-P")
            .arg(run.join("kamailio.pid"))
            .arg("-w")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out.try_clone().expect("clone")))
            .stderr(Stdio::from(out))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {KAMAILIO_BIN}: {e}"));
        let mut k = Self {
            proc: Proc {
                pid: child.id(),
                child: Some(child),
                log,
            },
            addr,
            _ports: ports,
        };
        let t0 = Instant::now();
        while !udp_in_use(addr.port()) {
            if let Some(s) = k.proc.exited() {
                panic!("kamailio exited ({s}) during start-up:\n{}", k.log());
            }
            assert!(
                t0.elapsed() < STARTUP_DEADLINE,
                "kamailio did not bind {addr}:\n{}",
                k.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        k
    }

    /// Its SIP address (UDP).
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        read_log(&self.proc.log)
    }

    /// The `$rtpstat` values logged (one per BYE), once at least one is there or the
    /// deadline passed.
    #[must_use]
    pub fn rtpstats(&self, deadline: Duration) -> Vec<String> {
        let t0 = Instant::now();
        loop {
            let found: Vec<String> = BufReader::new(self.log().as_bytes())
                .lines()
                .map_while(Result::ok)
                .filter_map(|l| {
                    l.split_once("CB-RTPSTAT ")
                        .map(|(_, v)| v.trim().to_owned())
                })
                .collect();
            if !found.is_empty() || t0.elapsed() > deadline {
                return found;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The proxy's configuration: stateful, record-routing, one media node.
fn config(listen: SocketAddr, ng: SocketAddr, uas: SocketAddr) -> String {
    format!(
        r#"#!KAMAILIO
# callbridge tests: a record-routing proxy with rtpengine_manage() in front of one media node.
debug=2
log_stderror=yes
memdbg=5
memlog=5
children=2
dns=no
rev_dns=no
auto_aliases=no
listen=udp:{listen}

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "xlog.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "maxfwd.so"
loadmodule "rtpengine.so"

modparam("rr", "enable_full_lr", 1)
modparam("rtpengine", "rtpengine_sock", "udp:{ng}")
modparam("rtpengine", "rtpengine_tout_ms", 2000)

request_route {{
    if (!mf_process_maxfwd_header("10")) {{
        sl_send_reply("483", "Too Many Hops");
        exit;
    }}
    if (has_totag()) {{
        if (loose_route()) {{
            if (is_method("BYE")) {{
                xlog("L_NOTICE", "CB-RTPSTAT $rtpstat\n");
                rtpengine_manage();
            }} else if (is_method("ACK") && has_body("application/sdp")) {{
                rtpengine_manage("{MANAGE_FLAGS}");
            }}
            route(RELAY);
        }}
        if (is_method("ACK") && t_check_trans()) {{
            route(RELAY);
        }}
        exit;
    }}
    if (is_method("INVITE")) {{
        record_route();
        rtpengine_manage("{MANAGE_FLAGS}");
        t_on_reply("MANAGE");
        $du = "sip:{uas}";
    }}
    route(RELAY);
}}

route[RELAY] {{
    if (!t_relay()) {{
        sl_reply_error();
    }}
    exit;
}}

onreply_route[MANAGE] {{
    if (has_body("application/sdp")) {{
        rtpengine_manage("{MANAGE_FLAGS}");
    }}
}}
"#
    )
}
