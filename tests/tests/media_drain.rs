//! Graceful drain of `callbridge media` (issue 11 §3): after SIGTERM (or the ng `drain`
//! command) the node takes no new call — an `offer` of a new call-id is refused, with `result:
//! load limit` when the offer says `supports ["load limit"]` (Kamailio then tries its next
//! node) and `result: error` otherwise, `error-reason` saying the node drains — while the live
//! call goes on (RTP relayed both ways, `query` answered, `ping` still `pong`); the `delete` of
//! the last call ends the process with status 0. A second SIGTERM exits at once, and
//! `media.drain_max_secs` bounds the wait. The same drain runs once more with the node on host
//! `mn1` of the test topology (root only), driven from the root namespace across the bridge.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callbridge_tests::ng_client::{self, ng, sdp, wait_received};
use callbridge_tests::server::bin_path;
use callbridge_tests::topology::{NsChild, Topology};
use callbridge_tests::{PortBlock, RtpPeer, Workdir, CALL_DEADLINE, MEDIA_BLOCK};
use ng::bencode::{decode, Encoder, Value};

/// How long a drained node may take to exit once it may (generous: a loaded machine).
const EXIT_DEADLINE: Duration = Duration::from_secs(30);

/// A running `callbridge media`, SIGKILLed by its PID when dropped if still running.
struct MediaNode {
    child: NsChild,
    ng: SocketAddr,
    /// The address the test's sockets bind to reach it (loopback, or the root namespace's
    /// address on the topology's bridge).
    peer_ip: IpAddr,
    lines: Arc<Mutex<Vec<String>>>,
    dir: Workdir,
}

impl MediaNode {
    fn start(name: &str, extra: &str) -> Self {
        Self::start_on(name, extra, None)
    }

    /// On loopback, or on host `host` of `topo` (its address, ng taken from 198.18.0.0/15).
    fn start_on(name: &str, extra: &str, on: Option<(&Topology, &str)>) -> Self {
        let block = PortBlock::reserve(MEDIA_BLOCK + 2);
        let ip = on.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |(t, h)| {
            IpAddr::V4(t.addr(h))
        });
        let ng = SocketAddr::new(ip, block.port(MEDIA_BLOCK));
        let allow = if on.is_some() {
            "ng_allow_from = [\"198.18.0.0/15\"]\n"
        } else {
            ""
        };
        let dir = Workdir::new(name);
        let cfg = dir.write(
            "media.toml",
            &format!(
                "[media]\naddress = \"{ip}\"\nports = \"{}-{}\"\nng_listen = \"{ng}\"\n{allow}{extra}\n",
                block.port(0),
                block.port(MEDIA_BLOCK - 1)
            ),
        );
        let log = std::fs::File::create(dir.file("media.log")).unwrap();
        let mut cmd = match on {
            Some((t, h)) => t.command(h, bin_path()),
            None => Command::new(bin_path()),
        };
        cmd.args(["media", "--config"])
            .arg(&cfg)
            .env("CALLBRIDGE_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log);
        let mut child = NsChild::spawn(cmd);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.take_stdout().unwrap();
        let l2 = Arc::clone(&lines);
        // Keeps reading standard output (the node never blocks on a full pipe).
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                l2.lock().unwrap().push(l);
            }
        });
        let node = Self {
            child,
            ng,
            peer_ip: on.map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |(t, _)| {
                IpAddr::V4(t.root_addr())
            }),
            lines,
            dir,
        };
        node.wait_line("callbridge media node ready");
        node
    }

    fn log(&self) -> String {
        format!(
            "stdout: {:?}\nlog: {}",
            self.lines.lock().unwrap(),
            std::fs::read_to_string(self.dir.file("media.log")).unwrap_or_default()
        )
    }

    fn wait_line(&self, what: &str) {
        let t0 = Instant::now();
        while !self.lines.lock().unwrap().iter().any(|l| l.contains(what)) {
            assert!(
                t0.elapsed() < CALL_DEADLINE,
                "no line {what:?} from callbridge media\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, sig: &str) {
        self.child.signal(sig);
    }

    fn running(&mut self) -> bool {
        self.child.try_wait().is_none()
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let t0 = Instant::now();
        loop {
            if let Some(s) = self.child.try_wait() {
                return s;
            }
            assert!(
                t0.elapsed() < within,
                "callbridge media did not exit within {within:?}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// An offer or answer as Kamailio's `rtpengine_manage()` sends it (`supports ["load limit"]`
/// when `load_limit`).
fn command(cmd: &str, call_id: &str, sdp: &str, to_tag: Option<&str>, load_limit: bool) -> Vec<u8> {
    let mut e = Encoder::default();
    e.dict();
    if load_limit {
        e.str("supports").list().str("load limit").end();
    }
    e.kv("command", cmd)
        .kv("call-id", call_id)
        .kv("from-tag", "alice-tag")
        .kv("sdp", sdp)
        .kv("ICE", "remove")
        .str("flags")
        .list()
        .str("trust-address")
        .end()
        .kv("transport-protocol", "RTP/AVP");
    if let Some(t) = to_tag {
        e.kv("to-tag", t);
    }
    e.end();
    e.finish()
}

fn result(raw: &[u8]) -> (String, String) {
    let v = decode(raw).unwrap();
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    (s("result"), s("error-reason"))
}

fn target(raw: &[u8]) -> SocketAddr {
    ng_client::target(&decode(raw).unwrap())
}

/// A call `call_id` set up through `node` (offer, answer), RTP flowing both ways.
struct LiveCall {
    alice: RtpPeer,
    bob: RtpPeer,
}

fn live_call(sock: &UdpSocket, node: &MediaNode, call_id: &str) -> LiveCall {
    // On loopback, or in the root namespace's address on the topology's bridge.
    let mut alice = RtpPeer::bind(SocketAddr::new(node.peer_ip, 0));
    let mut bob = RtpPeer::bind(SocketAddr::new(node.peer_ip, 0));
    let offer = ng(
        sock,
        node.ng,
        &format!("{call_id}_o"),
        &command("offer", call_id, &sdp(alice.addr()), None, true),
    );
    assert_eq!(result(&offer).0, "ok", "{}", node.log());
    let answer = ng(
        sock,
        node.ng,
        &format!("{call_id}_a"),
        &command("answer", call_id, &sdp(bob.addr()), Some("bob-tag"), true),
    );
    assert_eq!(result(&answer).0, "ok", "{}", node.log());
    alice.start_sending(target(&answer), 0xA11CE, 3000);
    bob.start_sending(target(&offer), 0xB0B, 3000);
    wait_received(&bob, 20, "alice → bob");
    wait_received(&alice, 20, "bob → alice");
    LiveCall { alice, bob }
}

/// A new call's offer is refused, both ways Kamailio may ask.
fn new_offers_are_refused(sock: &UdpSocket, node: &MediaNode, tag: &str) {
    let at: SocketAddr = (Ipv4Addr::LOCALHOST, 40_000).into();
    let (res, reason) = result(&ng(
        sock,
        node.ng,
        &format!("{tag}_ll"),
        &command("offer", &format!("{tag}-new-1"), &sdp(at), None, true),
    ));
    assert_eq!(
        (res.as_str(), reason.as_str()),
        ("load limit", "media node draining"),
        "a new call's offer with supports [load limit] while draining\n{}",
        node.log()
    );
    let (res, reason) = result(&ng(
        sock,
        node.ng,
        &format!("{tag}_err"),
        &command("offer", &format!("{tag}-new-2"), &sdp(at), None, false),
    ));
    assert_eq!(
        (res.as_str(), reason.as_str()),
        ("error", "media node draining"),
        "a new call's offer without load-limit support while draining\n{}",
        node.log()
    );
}

#[test]
fn sigterm_drains_the_live_call_then_the_node_exits_0() {
    let mut node = MediaNode::start("media_drain", "drain_max_secs = 600");
    let sock = UdpSocket::bind(SocketAddr::new(node.peer_ip, 0)).unwrap();
    let mut call = live_call(&sock, &node, "drain-1");

    node.signal("-TERM");
    node.wait_line("callbridge media node draining: 1 live calls");
    new_offers_are_refused(&sock, &node, "t1");
    // ping still answers pong: the proxy keeps the node for the live call's commands.
    let (res, _) = result(&ng(&sock, node.ng, "t1_ping", b"d7:command4:pinge"));
    assert_eq!(res, "pong");
    // The live call goes on: RTP relayed both ways after the drain started; a re-offer of
    // the known call-id and a query are answered.
    let (a0, b0) = (call.alice.received().len(), call.bob.received().len());
    wait_received(&call.bob, b0 + 40, "alice → bob while draining");
    wait_received(&call.alice, a0 + 40, "bob → alice while draining");
    let reoffer = ng(
        &sock,
        node.ng,
        "t1_reoffer",
        &command("offer", "drain-1", &sdp(call.alice.addr()), None, true),
    );
    assert_eq!(result(&reoffer).0, "ok", "re-offer of the live call");
    let q = ng(
        &sock,
        node.ng,
        "t1_q",
        b"d7:command5:query7:call-id7:drain-1e",
    );
    assert_eq!(result(&q).0, "ok", "query of the live call");
    assert!(node.running(), "exited with a live call\n{}", node.log());

    let d = ng(
        &sock,
        node.ng,
        "t1_del",
        b"d7:command6:delete7:call-id7:drain-18:from-tag9:alice-tage",
    );
    assert_eq!(result(&d).0, "ok", "delete");
    call.alice.stop();
    call.bob.stop();
    let status = node.wait_exit(EXIT_DEADLINE);
    assert!(status.success(), "exited {status}\n{}", node.log());
    assert!(
        node.log().contains("media node drained: no live call left"),
        "{}",
        node.log()
    );
}

#[test]
fn the_ng_drain_command_drains_and_a_signal_then_exits_at_once() {
    let mut node = MediaNode::start("media_drain_ng", "drain_max_secs = 600");
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut call = live_call(&sock, &node, "drain-2");

    let raw = ng(&sock, node.ng, "t2_drain", b"d7:command5:draine");
    let v = decode(&raw).unwrap();
    assert_eq!(v.get("result").and_then(Value::as_str), Some("ok"), "{v:?}");
    assert_eq!(v.get("calls").and_then(Value::as_int), Some(1), "{v:?}");
    node.wait_line("callbridge media node draining: 1 live calls");
    new_offers_are_refused(&sock, &node, "t2");
    let b0 = call.bob.received().len();
    wait_received(&call.bob, b0 + 20, "alice → bob while draining");
    assert!(node.running(), "exited with a live call\n{}", node.log());

    // The drain is under way: one signal ends it now, the call still up.
    node.signal("-TERM");
    let status = node.wait_exit(EXIT_DEADLINE);
    assert!(status.success(), "exited {status}\n{}", node.log());
    assert!(node.log().contains("exiting now"), "{}", node.log());
    call.alice.stop();
    call.bob.stop();
}

#[test]
fn drain_max_secs_bounds_the_drain() {
    let mut node = MediaNode::start("media_drain_max", "drain_max_secs = 2");
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let mut call = live_call(&sock, &node, "drain-3");
    let t0 = Instant::now();
    node.signal("-TERM");
    let status = node.wait_exit(EXIT_DEADLINE);
    assert!(status.success(), "exited {status}\n{}", node.log());
    assert!(
        t0.elapsed() >= Duration::from_millis(1500),
        "exited after {:?}, before drain_max_secs with a live call\n{}",
        t0.elapsed(),
        node.log()
    );
    assert!(
        node.log().contains("media.drain_max_secs passed"),
        "{}",
        node.log()
    );
    call.alice.stop();
    call.bob.stop();
}

#[test]
fn drain_max_secs_is_checked() {
    let dir = Workdir::new("media_drain_config");
    for bad in ["0", "86401"] {
        let cfg = dir.write(
            &format!("bad{bad}.toml"),
            &format!("[media]\naddress = \"127.0.0.1\"\ndrain_max_secs = {bad}\n"),
        );
        let out = callbridge_tests::server::run_cli(&["check-config", cfg.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains("media.drain_max_secs: must be 1 to 86400 seconds"),
            "{err}"
        );
    }
}

#[test]
fn a_media_node_on_its_own_host_drains_across_the_topology() {
    let topo = Topology::up();
    let mut node = MediaNode::start_on(
        "media_drain_topology",
        "drain_max_secs = 600",
        Some((&topo, "mn1")),
    );
    assert_eq!(node.ng.ip(), IpAddr::V4(topo.addr("mn1")));
    let sock = UdpSocket::bind(SocketAddr::new(node.peer_ip, 0)).unwrap();
    let mut call = live_call(&sock, &node, "drain-topo");

    node.signal("-TERM");
    node.wait_line("callbridge media node draining: 1 live calls");
    new_offers_are_refused(&sock, &node, "t5");
    let (a0, b0) = (call.alice.received().len(), call.bob.received().len());
    wait_received(&call.bob, b0 + 40, "alice → bob while draining");
    wait_received(&call.alice, a0 + 40, "bob → alice while draining");
    assert!(node.running(), "exited with a live call\n{}", node.log());
    let d = ng(
        &sock,
        node.ng,
        "t5_del",
        b"d7:command6:delete7:call-id10:drain-topo8:from-tag9:alice-tage",
    );
    assert_eq!(result(&d).0, "ok", "delete");
    call.alice.stop();
    call.bob.stop();
    let status = node.wait_exit(EXIT_DEADLINE);
    assert!(status.success(), "exited {status}\n{}", node.log());
}
