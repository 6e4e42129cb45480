//! Reliable provisional responses (RFC 3262) against a raw UAS on 127.0.0.1: our INVITE says
//! `Supported: 100rel` when configured, a 183 with `Require: 100rel` gets a PRACK with the
//! right `RAck`, its SDP reaches the application once (not again for a retransmission), and
//! the confirmed dialog's CSeqs go on after the PRACK's. An INVITE requiring 100rel gets 420.

use std::net::SocketAddr;
use std::time::Duration;

use sip::sdp::build_offer;
use sip::{Endpoint, EndpointConfig, InviteRequest, LegEvent, Timers};
use tokio::net::UdpSocket;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

async fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65535];
    let (n, _) = timeout(DEADLINE, sock.recv_from(&mut buf))
        .await
        .expect("no datagram")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn recv_starting(sock: &UdpSocket, start: &str) -> String {
    loop {
        let t = recv_text(sock).await;
        if t.starts_with(start) {
            return t;
        }
    }
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

fn respond(req: &str, status: &str, extra: &str, body: &str) -> String {
    let to = header(req, "To");
    let to = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag=uas1")
    };
    format!(
        "SIP/2.0 {status}\r\nVia: {}\r\nFrom: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}\
Content-Length: {}\r\n\r\n{body}",
        header(req, "Via"),
        header(req, "From"),
        header(req, "Call-ID"),
        header(req, "CSeq"),
        body.len()
    )
}

async fn next(call: &mut sip::OutgoingCall) -> LegEvent {
    timeout(DEADLINE, call.event())
        .await
        .expect("no leg event")
        .expect("leg over")
}

#[tokio::test]
async fn reliable_183_gets_prack_and_its_sdp_is_reported_once() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.use_100rel = true;
    cfg.timers = Timers {
        t1: Duration::from_millis(50),
        ..Timers::default()
    };
    let (a, _a_in) = Endpoint::bind(cfg).await.unwrap();
    let uas = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let u: SocketAddr = uas.local_addr().unwrap();
    let mut call = a
        .invite(InviteRequest {
            target: format!("sip:agent@{u}"),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: build_offer("127.0.0.1:40000".parse().unwrap(), 1),
            headers: vec![],
            credentials: None,
        })
        .unwrap();
    let invite = recv_starting(&uas, "INVITE ").await;
    assert!(header(&invite, "Supported").contains("100rel"), "{invite}");
    let early_sdp =
        build_offer("127.0.0.1:40060".parse().unwrap(), 5).replace("a=sendrecv", "a=sendonly");
    let reliable = format!(
        "Contact: <sip:agent@{u}>\r\nRequire: 100rel\r\nRSeq: 7\r\nContent-Type: application/sdp\r\n"
    );
    let p183 = respond(&invite, "183 Session Progress", &reliable, &early_sdp);
    uas.send_to(p183.as_bytes(), a.local_addr()).await.unwrap();
    assert_eq!(
        next(&mut call).await,
        LegEvent::Progress {
            status: 183,
            sdp: Some(early_sdp.clone())
        }
    );
    let prack = recv_starting(&uas, "PRACK ").await;
    assert_eq!(header(&prack, "RAck"), "7 1 INVITE");
    assert_eq!(header(&prack, "CSeq"), "2 PRACK");
    assert!(header(&prack, "To").contains(";tag=uas1"), "{prack}");
    // The 183 again (as if the PRACK were lost): not reported twice, our PRACK retransmits.
    uas.send_to(p183.as_bytes(), a.local_addr()).await.unwrap();
    let again = recv_starting(&uas, "PRACK ").await;
    assert_eq!(header(&again, "CSeq"), "2 PRACK");
    uas.send_to(respond(&prack, "200 OK", "", "").as_bytes(), a.local_addr())
        .await
        .unwrap();
    let answer = build_offer("127.0.0.1:40060".parse().unwrap(), 5);
    let ok = respond(
        &invite,
        "200 OK",
        &format!("Contact: <sip:agent@{u}>\r\nContent-Type: application/sdp\r\n"),
        &answer,
    );
    uas.send_to(ok.as_bytes(), a.local_addr()).await.unwrap();
    assert_eq!(next(&mut call).await, LegEvent::Answered { sdp: answer });
    let ack = recv_starting(&uas, "ACK ").await;
    assert_eq!(header(&ack, "CSeq"), "1 ACK");
    call.controller().hangup();
    let bye = recv_starting(&uas, "BYE ").await;
    assert_eq!(header(&bye, "CSeq"), "3 BYE", "after the PRACK's 2");
    uas.send_to(respond(&bye, "200 OK", "", "").as_bytes(), a.local_addr())
        .await
        .unwrap();
    assert_eq!(next(&mut call).await, LegEvent::Ended);
    a.shutdown();
}

#[tokio::test]
async fn an_invite_requiring_100rel_gets_420() {
    let (b, _b_in) = Endpoint::bind(EndpointConfig::new("127.0.0.1:0".parse().unwrap()))
        .await
        .unwrap();
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = probe.local_addr().unwrap();
    let t = b.local_addr();
    let invite = format!(
        "INVITE sip:b@{t} SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bK100rel\r\nMax-Forwards: 70\r\n\
From: <sip:probe@{p}>;tag=p1\r\nTo: <sip:b@{t}>\r\nCall-ID: rel-1\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:probe@{p}>\r\nSupported: timer\r\nRequire: 100rel\r\nContent-Length: 0\r\n\r\n"
    );
    probe.send_to(invite.as_bytes(), t).await.unwrap();
    let r = recv_starting(&probe, "SIP/2.0 4").await;
    assert!(r.starts_with("SIP/2.0 420 Bad Extension"), "{r}");
    assert_eq!(header(&r, "Unsupported"), "100rel");
    b.shutdown();
}
