//! `callbridge media`: the binary as a media node, driven over rtpengine's ng protocol on
//! loopback the way a SIP proxy drives it (offer, answer, query, delete), with RTP both ways
//! between two RTP peers through the node's ports; SIGTERM ends it with status 0. Config
//! errors for the ng keys name the key.

use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, UdpSocket};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use callbridge_tests::ng_client::{ng, sdp, target, wait_received};
use callbridge_tests::server::{bin_path, run_cli};
use callbridge_tests::{PortBlock, RtpPeer, Workdir, MEDIA_BLOCK};
use ng::bencode::{decode, Encoder, Value};

fn offer_or_answer(cmd: &str, sdp: &str, to_tag: Option<&str>) -> Vec<u8> {
    let mut e = Encoder::default();
    e.dict()
        .kv("command", cmd)
        .kv("call-id", "bb-call-1")
        .kv("from-tag", "alice-tag")
        .kv("sdp", sdp)
        .kv("ICE", "remove")
        .str("flags")
        .list()
        .str("trust-address")
        .end()
        .str("replace")
        .list()
        .str("origin")
        .str("session-connection")
        .end()
        .kv("transport-protocol", "RTP/AVP");
    if let Some(t) = to_tag {
        e.kv("to-tag", t);
    }
    e.end();
    e.finish()
}

#[test]
fn media_node_relays_a_call_set_up_over_ng_and_exits_cleanly() {
    let block = PortBlock::reserve(MEDIA_BLOCK + 2);
    let ng_addr = block.addr(MEDIA_BLOCK);
    let dir = Workdir::new("media_node");
    let cfg = dir.write(
        "media.toml",
        &format!(
            "[media]\naddress = \"127.0.0.1\"\nports = \"{}-{}\"\nng_listen = \"{ng_addr}\"\n",
            block.port(0),
            block.port(MEDIA_BLOCK - 1)
        ),
    );
    let log = std::fs::File::create(dir.file("media.log")).unwrap();
    let mut child = Command::new(bin_path())
        .args(["media", "--config"])
        .arg(&cfg)
        .env("CALLBRIDGE_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start callbridge media");
    let pid = child.id();
    // Stopped by PID whatever happens below.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
    let guard = Kill(pid);
    // Log lines go to standard output too; the ready line comes once the listener is bound.
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut seen = Vec::new();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("callbridge media node ready") => break,
            Some(Ok(l)) => seen.push(l),
            _ => panic!(
                "callbridge media ended without its ready line: {seen:?}; log: {}",
                std::fs::read_to_string(dir.file("media.log")).unwrap_or_default()
            ),
        }
    }
    // Keep draining standard output so the node never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});

    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let pong = ng(&sock, ng_addr, "1_1", b"d7:command4:pinge");
    assert_eq!(
        decode(&pong).unwrap().get("result").and_then(Value::as_str),
        Some("pong")
    );

    let mut alice = RtpPeer::bind((Ipv4Addr::LOCALHOST, 0).into());
    let mut bob = RtpPeer::bind((Ipv4Addr::LOCALHOST, 0).into());
    let offer_raw = ng(
        &sock,
        ng_addr,
        "1_2",
        &offer_or_answer("offer", &sdp(alice.addr()), None),
    );
    let offer = decode(&offer_raw).unwrap();
    assert_eq!(
        offer.get("result").and_then(Value::as_str),
        Some("ok"),
        "{offer:?}"
    );
    let bob_sends_to = target(&offer);
    let answer_raw = ng(
        &sock,
        ng_addr,
        "1_3",
        &offer_or_answer("answer", &sdp(bob.addr()), Some("bob-tag")),
    );
    let answer = decode(&answer_raw).unwrap();
    assert_eq!(
        answer.get("result").and_then(Value::as_str),
        Some("ok"),
        "{answer:?}"
    );
    let alice_sends_to = target(&answer);
    assert_eq!(alice_sends_to.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    assert_ne!(alice_sends_to, bob_sends_to);
    assert!(
        (block.port(0)..=block.port(MEDIA_BLOCK - 1)).contains(&alice_sends_to.port()),
        "{alice_sends_to} outside the configured ports"
    );

    alice.start_sending(alice_sends_to, 0xA11CE, 50);
    bob.start_sending(bob_sends_to, 0xB0B, 50);
    wait_received(&bob, 40, "alice → bob");
    wait_received(&alice, 40, "bob → alice");

    let q_raw = ng(
        &sock,
        ng_addr,
        "1_4",
        b"d7:command5:query7:call-id9:bb-call-1e",
    );
    let q = decode(&q_raw).unwrap();
    let packets = q
        .get("totals")
        .and_then(|t| t.get("RTP"))
        .and_then(|t| t.get("packets"))
        .and_then(Value::as_int)
        .unwrap_or_else(|| panic!("no totals.RTP.packets in {q:?}"));
    assert!(packets >= 80, "query counted {packets} RTP packets: {q:?}");

    let d_raw = ng(
        &sock,
        ng_addr,
        "1_5",
        b"d7:command6:delete7:call-id9:bb-call-18:from-tag9:alice-tage",
    );
    let d = decode(&d_raw).unwrap();
    assert_eq!(d.get("result").and_then(Value::as_str), Some("ok"), "{d:?}");
    alice.stop();
    bob.stop();

    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let t0 = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "callbridge media did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    // It exited: nothing left to kill.
    std::mem::forget(guard);
    assert!(status.success(), "callbridge media exited with {status}");
}

#[test]
fn ng_keys_are_checked_and_media_needs_ng_listen() {
    let dir = Workdir::new("media_node_config");
    let open = dir.write(
        "open.toml",
        "[media]\naddress = \"127.0.0.1\"\nng_listen = \"0.0.0.0:2223\"\n",
    );
    let out = run_cli(&["check-config", open.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("media.ng_allow_from"), "{err}");

    let bad_net = dir.write(
        "badnet.toml",
        "[media]\naddress = \"127.0.0.1\"\nng_allow_from = [\"198.18.0.1/8\"]\n",
    );
    let out = run_cli(&["check-config", bad_net.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("media.ng_allow_from[0]"), "{err}");

    let none = dir.write(
        "none.toml",
        "[media]\naddress = \"127.0.0.1\"\n\n[[business]]\nid = \"b\"\nname = \"B\"\n",
    );
    let out = run_cli(&["media", "--config", none.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("media.ng_listen"), "{err}");
}
