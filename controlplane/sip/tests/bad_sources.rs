//! A source that keeps sending bad datagrams is ignored for a while (`sip::guard`), on the
//! real UDP listener: with the limit at 5 and loopback not exempt, five malformed requests
//! from 127.0.0.1 get five 400s, then even a valid OPTIONS from that address is dropped
//! unanswered and counted, while another address (127.0.0.2) is still answered 200.
//! Cooldown expiry is tested on fake time in `guard`'s unit tests.

use std::net::SocketAddr;
use std::time::Duration;

use sip::guard::BadSourceLimits;
use sip::{Endpoint, EndpointConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(2);

fn options(target: SocketAddr, me: SocketAddr, branch: &str) -> String {
    format!(
        "OPTIONS sip:{target} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\nTo: <sip:{target}>\r\nFrom: <sip:probe@{me}>;tag=p\r\nCall-ID: bad-{branch}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

async fn answer(sock: &UdpSocket, wait: Duration) -> Option<String> {
    let mut buf = vec![0u8; 65_535];
    let (n, _) = timeout(wait, sock.recv_from(&mut buf)).await.ok()?.ok()?;
    Some(String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[tokio::test]
async fn a_source_of_bad_datagrams_is_ignored_while_others_are_answered() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.bad_sources = BadSourceLimits {
        max_bad: 5,
        exempt_loopback: false,
        ..BadSourceLimits::default()
    };
    let (ep, _calls) = Endpoint::bind(cfg).await.unwrap();
    let t = ep.local_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = sock.local_addr().unwrap();
    for i in 0..5 {
        let bad = options(t, me, &format!("bad{i}")).replace("CSeq: 1 OPTIONS", "CSeq: x OPTIONS");
        sock.send_to(bad.as_bytes(), t).await.unwrap();
        let got = answer(&sock, WAIT)
            .await
            .expect("the first five are answered");
        assert!(got.starts_with("SIP/2.0 400 Bad Request - "), "{i}: {got}");
    }
    sock.send_to(options(t, me, "ok1").as_bytes(), t)
        .await
        .unwrap();
    assert_eq!(answer(&sock, Duration::from_millis(300)).await, None);
    assert_eq!(ep.rate_limited_count(), 1);
    assert_eq!(ep.malformed_counts(), (5, 0));

    let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let me2 = other.local_addr().unwrap();
    other
        .send_to(options(t, me2, "ok2").as_bytes(), t)
        .await
        .unwrap();
    let got = answer(&other, WAIT)
        .await
        .expect("another source is answered");
    assert!(got.starts_with("SIP/2.0 200 OK\r\n"), "{got}");
}
