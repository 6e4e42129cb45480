//! The ACL of networks allowed to start a call (`EndpointConfig::allow_invite_from`), on the
//! real UDP listener: with only 127.0.0.2/32 allowed, an INVITE from 127.0.0.1 gets 403 and
//! never reaches the application, while OPTIONS from there still gets 200; an INVITE from
//! 127.0.0.2 becomes an `IncomingCall`. A malformed INVITE from outside the ACL still gets its
//! 400 (syntax comes first, RFC 3261 8.2).

use std::net::SocketAddr;
use std::time::Duration;

use sip::guard::Network;
use sip::{Endpoint, EndpointConfig};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(2);

fn request(method: &str, target: SocketAddr, me: SocketAddr, branch: &str) -> String {
    format!(
        "{method} sip:+15551234567@{target} SIP/2.0\r\n\
Via: SIP/2.0/UDP {me};branch=z9hG4bK{branch};rport\r\nMax-Forwards: 70\r\n\
To: <sip:+15551234567@{target}>\r\nFrom: <sip:alice@{me}>;tag=a\r\nCall-ID: acl-{branch}\r\n\
CSeq: 1 {method}\r\nContact: <sip:alice@{me}>\r\nContent-Length: 0\r\n\r\n"
    )
}

/// The next final response (1xx skipped).
async fn final_status(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65_535];
    loop {
        let (n, _) = timeout(WAIT, sock.recv_from(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        let t = String::from_utf8_lossy(&buf[..n]).into_owned();
        if !t.starts_with("SIP/2.0 1") {
            return t.lines().next().unwrap_or("").to_string();
        }
    }
}

#[tokio::test]
async fn invites_from_outside_the_acl_get_403_before_the_application() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.allow_invite_from = Some(vec![Network::parse("127.0.0.2/32").unwrap()]);
    let (ep, mut calls) = Endpoint::bind(cfg).await.unwrap();
    let t = ep.local_addr();

    let outside = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let me = outside.local_addr().unwrap();
    outside
        .send_to(request("INVITE", t, me, "out").as_bytes(), t)
        .await
        .unwrap();
    assert_eq!(final_status(&outside).await, "SIP/2.0 403 Forbidden");
    assert!(calls.try_recv().is_err(), "the application saw the call");
    assert_eq!(ep.forbidden_invite_count(), 1);
    outside
        .send_to(request("OPTIONS", t, me, "opt").as_bytes(), t)
        .await
        .unwrap();
    assert_eq!(final_status(&outside).await, "SIP/2.0 200 OK");
    let bad = request("INVITE", t, me, "bad").replace("CSeq: 1 INVITE", "CSeq: 1 BYE");
    outside.send_to(bad.as_bytes(), t).await.unwrap();
    assert!(final_status(&outside)
        .await
        .starts_with("SIP/2.0 400 Bad Request - "));

    let inside = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    let me2 = inside.local_addr().unwrap();
    inside
        .send_to(request("INVITE", t, me2, "in").as_bytes(), t)
        .await
        .unwrap();
    let call = timeout(WAIT, calls.recv())
        .await
        .expect("a call")
        .expect("a call");
    assert_eq!(call.call_id, "acl-in");
    call.reject(486);
    assert_eq!(final_status(&inside).await, "SIP/2.0 486 Busy Here");
    assert_eq!(ep.forbidden_invite_count(), 1);
}
