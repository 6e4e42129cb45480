//! Size limits on the real UDP listener: a datagram or header section over its limit gets
//! `513 Message Too Large`, a body over its limit `413 Request Entity Too Large`, answered to
//! the source before the message is parsed; a datagram larger than the receive buffer (64 KiB
//! sent, 16 KiB read) is cut but still recognised; the endpoint then still answers OPTIONS.

use std::time::Duration;

use sip::msg::Limits;
use sip::{Endpoint, EndpointConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(2);

fn options(
    target: std::net::SocketAddr,
    me: std::net::SocketAddr,
    branch: &str,
    extra: &str,
    body: &str,
) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\nTo: <sip:{target}>\r\nFrom: <sip:probe@{me}>;tag=p\r\nCall-ID: limits-{branch}\r\n\
CSeq: 1 OPTIONS\r\n{extra}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

async fn ask(sock: &UdpSocket, ep: &Endpoint, msg: &str) -> String {
    sock.send_to(msg.as_bytes(), ep.local_addr()).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let (n, _) = timeout(WAIT, sock.recv_from(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn oversized_requests_get_513_or_413_and_the_endpoint_goes_on() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.limits = Limits {
        max_message_bytes: 4096,
        max_header_bytes: 2048,
        max_body_bytes: 512,
    };
    let (ep, _calls) = Endpoint::bind(cfg).await.unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    let t = ep.local_addr();

    let cases = [
        (
            options(
                t,
                me,
                "hdr",
                &format!("X-Big: {}\r\n", "h".repeat(3000)),
                "",
            ),
            "SIP/2.0 513 Message Too Large\r\n",
        ),
        (
            options(
                t,
                me,
                "body",
                "Content-Type: text/plain\r\n",
                &"b".repeat(600),
            ),
            "SIP/2.0 413 Request Entity Too Large\r\n",
        ),
        (
            options(
                t,
                me,
                "msg",
                "Content-Type: text/plain\r\n",
                &"m".repeat(5000),
            ),
            "SIP/2.0 513 Message Too Large\r\n",
        ),
        (
            options(
                t,
                me,
                "cut",
                "Content-Type: text/plain\r\n",
                &"c".repeat(60_000),
            ),
            "SIP/2.0 513 Message Too Large\r\n",
        ),
    ];
    for (i, (msg, want)) in cases.iter().enumerate() {
        let got = ask(&sock, &ep, msg).await;
        assert!(got.starts_with(want), "case {i}: {got}");
        assert!(got.contains("\r\nCSeq: 1 OPTIONS\r\n"), "case {i}: {got}");
    }
    assert_eq!(ep.oversized_count(), 4);
    assert_eq!(ep.malformed_counts(), (0, 0));
    let ok = ask(&sock, &ep, &options(t, me, "fine", "", "")).await;
    assert!(ok.starts_with("SIP/2.0 200 OK\r\n"), "{ok}");
}
