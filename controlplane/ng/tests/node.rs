//! The ng listener over a real data plane (the socket backend on loopback): offer, answer,
//! RTP both ways through the node's ports, query's counters, retransmissions answered from
//! the cache, TCP framing, delete releasing the ports, and errors for bad input.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::{start_node, Lab, DEADLINE};
use ng::bencode::{decode, Encoder, Value};
use ng::NodeSettings;

const MEDIA: Ipv4Addr = Ipv4Addr::new(127, 0, 77, 1);
fn start(ports: std::ops::RangeInclusive<u16>) -> Lab {
    start_with(ports, NodeSettings::default())
}

fn start_with(ports: std::ops::RangeInclusive<u16>, settings: NodeSettings) -> Lab {
    start_node(MEDIA, ports, settings)
}

fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

/// Sends `cookie body` and returns the reply's dictionary bytes (cookie checked).
fn call(s: &UdpSocket, to: SocketAddr, cookie: &str, body: &[u8]) -> Vec<u8> {
    let mut msg = format!("{cookie} ").into_bytes();
    msg.extend_from_slice(body);
    s.send_to(&msg, to).unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = s.recv_from(&mut buf).expect("a reply");
    let reply = &buf[..n];
    let prefix = format!("{cookie} ");
    assert!(
        reply.starts_with(prefix.as_bytes()),
        "{}",
        String::from_utf8_lossy(reply)
    );
    reply[prefix.len()..].to_vec()
}

fn text<'a>(v: &'a Value<'_>, k: &str) -> &'a str {
    v.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("no {k} in {v:?}"))
}

fn sdp(ip: Ipv4Addr, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 101\r\n\
         a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=ice-ufrag:x\r\na=sendrecv\r\n"
    )
}

fn offer_answer(cmd: &str, call_id: &str, body_sdp: &str, to_tag: Option<&str>) -> Vec<u8> {
    let mut e = Encoder::default();
    e.dict()
        .kv("command", cmd)
        .kv("call-id", call_id)
        .kv("from-tag", "caller-tag")
        .kv("sdp", body_sdp)
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
        .kv("transport-protocol", "RTP/AVP")
        .str("received-from")
        .list()
        .str("IP4")
        .str("127.0.0.1")
        .end();
    if let Some(t) = to_tag {
        e.kv("to-tag", t);
    }
    e.end();
    e.finish()
}

fn audio_target(s: &str) -> SocketAddr {
    let port: u16 = s
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|r| r.split(' ').next())
        .and_then(|p| p.parse().ok())
        .expect("m=audio port");
    let ip: IpAddr = s
        .lines()
        .find_map(|l| l.strip_prefix("c=IN IP4 "))
        .and_then(|a| a.trim().parse().ok())
        .expect("c= address");
    SocketAddr::new(ip, port)
}

fn rtp(seq: u16) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x22, 0x33, 0x44];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// Sends RTP from `from` to `to` until `rx` receives one, within the deadline.
fn expect_relayed(from: &UdpSocket, to: SocketAddr, rx: &UdpSocket) -> usize {
    rx.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let t0 = Instant::now();
    let mut seq = 0;
    let mut buf = [0u8; 2048];
    loop {
        seq += 1;
        from.send_to(&rtp(seq), to).unwrap();
        if let Ok((n, _)) = rx.recv_from(&mut buf) {
            return n;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "no RTP relayed to {:?}",
            rx.local_addr()
        );
    }
}

#[test]
fn offer_answer_relay_query_delete_over_udp() {
    let lab = start(42_000..=42_099);
    let c = client();
    // The two parties' RTP sockets (on loopback, as their SDP says).
    let alice = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bob = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a_port = alice.local_addr().unwrap().port();
    let b_port = bob.local_addr().unwrap().port();

    let pong = call(&c, lab.ng, "p_1", b"d7:command4:pinge");
    assert_eq!(text(&decode(&pong).unwrap(), "result"), "pong");

    let offer = offer_answer("offer", "call-1", &sdp(Ipv4Addr::LOCALHOST, a_port), None);
    let r = call(&c, lab.ng, "o_1", &offer);
    let v = decode(&r).unwrap();
    assert_eq!(text(&v, "result"), "ok", "{v:?}");
    let for_bob = text(&v, "sdp").to_owned();
    assert!(!for_bob.contains("ice-ufrag"), "{for_bob}");
    assert!(
        for_bob.contains(&format!("o=- 1 1 IN IP4 {MEDIA}")),
        "{for_bob}"
    );
    let bob_sends_to = audio_target(&for_bob);
    assert_eq!(bob_sends_to.ip(), IpAddr::V4(MEDIA));

    // The same cookie again: the same reply, no second call.
    let again = call(&c, lab.ng, "o_1", &offer);
    assert_eq!(again, r);

    let answer = offer_answer(
        "answer",
        "call-1",
        &sdp(Ipv4Addr::LOCALHOST, b_port),
        Some("callee-tag"),
    );
    let v2 = call(&c, lab.ng, "a_1", &answer);
    let v2 = decode(&v2).unwrap();
    assert_eq!(text(&v2, "result"), "ok", "{v2:?}");
    let alice_sends_to = audio_target(text(&v2, "sdp"));
    assert_eq!(alice_sends_to.ip(), IpAddr::V4(MEDIA));
    assert_ne!(alice_sends_to, bob_sends_to);

    // RTP both ways through the node.
    assert_eq!(expect_relayed(&alice, alice_sends_to, &bob), 172);
    assert_eq!(expect_relayed(&bob, bob_sends_to, &alice), 172);

    let q = call(&c, lab.ng, "q_1", b"d7:command5:query7:call-id6:call-1e");
    let q = decode(&q).unwrap();
    assert_eq!(text(&q, "result"), "ok", "{q:?}");
    let rtp_packets = q
        .get("totals")
        .and_then(|t| t.get("RTP"))
        .and_then(|t| t.get("packets"))
        .and_then(Value::as_int)
        .unwrap();
    assert!(rtp_packets >= 2, "{q:?}");
    let tags = q.get("tags").unwrap();
    for t in ["caller-tag", "callee-tag"] {
        let tag = tags.get(t).unwrap_or_else(|| panic!("tag {t} in {q:?}"));
        assert!(tag.get("quality").and_then(|x| x.get("MOS")).is_some());
        assert!(tag.get("medias").is_some());
    }

    let l = call(&c, lab.ng, "l_1", b"d7:command4:liste");
    let l = decode(&l).unwrap();
    assert_eq!(
        l.get("calls").and_then(Value::as_list).map(<[_]>::len),
        Some(1)
    );

    let d = call(
        &c,
        lab.ng,
        "d_1",
        b"d7:command6:delete7:call-id6:call-18:from-tag10:caller-tage",
    );
    let d = decode(&d).unwrap();
    assert_eq!(text(&d, "result"), "ok", "{d:?}");
    assert!(d.get("totals").is_some(), "{d:?}");
    let l_raw = call(&c, lab.ng, "l_2", b"d7:command4:liste");
    let l = decode(&l_raw).unwrap();
    assert_eq!(
        l.get("calls").and_then(Value::as_list).map(<[_]>::len),
        Some(0)
    );
    // Deleting again: a warning, not an error (unless fatal).
    let d2_raw = call(&c, lab.ng, "d_2", b"d7:command6:delete7:call-id6:call-1e");
    let d2 = decode(&d2_raw).unwrap();
    assert_eq!(text(&d2, "result"), "ok");
    assert!(d2.get("warning").is_some());
    let d3_raw = call(
        &c,
        lab.ng,
        "d_3",
        b"d7:command6:delete7:call-id6:call-15:flagsl5:fatalee",
    );
    let d3 = decode(&d3_raw).unwrap();
    assert_eq!(text(&d3, "result"), "error");

    // The node's totals.
    let s_raw = call(&c, lab.ng, "s_1", b"d7:command10:statisticse");
    let s = decode(&s_raw).unwrap();
    let managed = s
        .get("statistics")
        .and_then(|x| x.get("totalstatistics"))
        .and_then(|x| x.get("managedsessions"))
        .and_then(Value::as_int);
    assert_eq!(managed, Some(1), "{s:?}");
}

#[test]
fn bad_input_gets_an_error_reason_and_the_node_keeps_serving() {
    let lab = start(42_100..=42_199);
    let c = client();
    for (cookie, body, reason) in [
        ("e1", &b"d7:command5:bogusde"[..], "malformed bencode"),
        ("e2", b"d7:command5:boguse", "unknown command"),
        ("e3", b"le", "malformed message"),
        ("e4", b"d7:command5:offere", "missing key: call-id"),
        (
            "e5",
            b"d7:command5:offer7:call-id1:x8:from-tag1:a3:sdp3:v=0e",
            "bad SDP",
        ),
        (
            "e6",
            b"d7:command6:answer7:call-id2:zz8:from-tag1:a3:sdp3:v=0e",
            "bad SDP",
        ),
        ("e7", b"d7:command5:query7:call-id2:zze", "Unknown call-id"),
    ] {
        let r_raw = call(&c, lab.ng, cookie, body);
        let r = decode(&r_raw).unwrap();
        assert_eq!(text(&r, "result"), "error", "{cookie}: {r:?}");
        assert!(
            text(&r, "error-reason").contains(reason),
            "{cookie}: {:?} lacks {reason:?}",
            text(&r, "error-reason")
        );
    }
    // No cookie: no reply possible; the node still answers the next one.
    c.send_to(b"garbage", lab.ng).unwrap();
    let pong_raw = call(&c, lab.ng, "p", b"d7:command4:pinge");
    let pong = decode(&pong_raw).unwrap();
    assert_eq!(text(&pong, "result"), "pong");
}

#[test]
fn tcp_carries_several_messages_and_split_ones() {
    use std::io::{Read, Write};
    let lab = start(42_200..=42_299);
    let mut s = std::net::TcpStream::connect(lab.ng).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    // Two messages in one write, then one split over two writes.
    s.write_all(b"t1 d7:command4:pinget2 d7:command10:statisticse")
        .unwrap();
    s.write_all(b"t3 d7:comm").unwrap();
    s.flush().unwrap();
    std::thread::sleep(Duration::from_millis(50));
    s.write_all(b"and4:pinge").unwrap();
    let mut got = Vec::new();
    let t0 = Instant::now();
    while !String::from_utf8_lossy(&got).contains("t3 d6:result4:ponge") {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "connection closed: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
        assert!(t0.elapsed() < DEADLINE);
    }
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("t1 d6:result4:ponge"), "{text}");
    assert!(text.contains("t2 d6:result2:ok"), "{text}");
    assert!(text.contains("t3 d6:result4:ponge"), "{text}");
}

#[test]
fn an_answered_call_gone_silent_is_reaped_and_its_ports_freed() {
    let lab = start_with(
        42_300..=42_303,
        NodeSettings {
            media_timeout: Some(Duration::from_millis(400)),
            ..NodeSettings::default()
        },
    );
    let c = client();
    let alice = UdpSocket::bind("127.0.0.1:0").unwrap();
    let bob = UdpSocket::bind("127.0.0.1:0").unwrap();
    let a_port = alice.local_addr().unwrap().port();
    let b_port = bob.local_addr().unwrap().port();
    // An offer that is never answered is not reaped (ringing sends no media).
    let o = offer_answer("offer", "ringing", &sdp(Ipv4Addr::LOCALHOST, a_port), None);
    let o_raw = call(&c, lab.ng, "r_1", &o);
    assert_eq!(text(&decode(&o_raw).unwrap(), "result"), "ok");
    // The range holds two port pairs: one call. A second offer is refused for ports.
    let o2 = offer_answer("offer", "second", &sdp(Ipv4Addr::LOCALHOST, a_port), None);
    let o2_raw = call(&c, lab.ng, "r_2", &o2);
    let v = decode(&o2_raw).unwrap();
    assert_eq!(text(&v, "result"), "error");
    assert!(
        text(&v, "error-reason").contains("Ran out of ports"),
        "{v:?}"
    );
    // Absence can only be shown by waiting: over twice the timeout, then still there.
    std::thread::sleep(Duration::from_millis(900));
    let l_raw = call(&c, lab.ng, "r_3", b"d7:command4:liste");
    let l = decode(&l_raw).unwrap();
    assert_eq!(
        l.get("calls").and_then(Value::as_list).map(<[_]>::len),
        Some(1)
    );
    // Answered, then silent: reaped, and the ports come back.
    let a = offer_answer(
        "answer",
        "ringing",
        &sdp(Ipv4Addr::LOCALHOST, b_port),
        Some("t"),
    );
    let a_raw = call(&c, lab.ng, "r_4", &a);
    let v = decode(&a_raw).unwrap();
    let alice_sends_to = audio_target(text(&v, "sdp"));
    assert_eq!(expect_relayed(&alice, alice_sends_to, &bob), 172);
    let t0 = Instant::now();
    let mut k = 0;
    loop {
        k += 1;
        let raw = call(&c, lab.ng, &format!("r_l{k}"), b"d7:command4:liste");
        let l = decode(&raw).unwrap();
        if l.get("calls").and_then(Value::as_list).map(<[_]>::len) == Some(0) {
            break;
        }
        assert!(t0.elapsed() < DEADLINE, "the silent call was never reaped");
        std::thread::sleep(Duration::from_millis(50));
    }
    // Its ports are free again once the worker confirmed: a new call gets them.
    let t0 = Instant::now();
    loop {
        k += 1;
        let raw = call(
            &c,
            lab.ng,
            &format!("r_o{k}"),
            &offer_answer(
                "offer",
                &format!("next{k}"),
                &sdp(Ipv4Addr::LOCALHOST, a_port),
                None,
            ),
        );
        if text(&decode(&raw).unwrap(), "result") == "ok" {
            break;
        }
        assert!(
            t0.elapsed() < DEADLINE,
            "the reaped call's ports never came back"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let s_raw = call(&c, lab.ng, "r_s", b"d7:command10:statisticse");
    let s = decode(&s_raw).unwrap();
    let reaped = s
        .get("statistics")
        .and_then(|x| x.get("totalstatistics"))
        .and_then(|x| x.get("timeoutsessions"))
        .and_then(Value::as_int);
    assert_eq!(reaped, Some(1), "{s:?}");
}
