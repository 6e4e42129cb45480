//! SIP over TCP and TLS between real endpoints on 127.0.0.1, plus raw-stream probes: calls in
//! both directions on one connection, TLS with a CA made here (rcgen), a certificate the client
//! does not trust, a refused connection, the switch to TCP for large requests (RFC 3261 18.1.1)
//! and its fallback to UDP, keep-alive pings (RFC 5626) and broken framing.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sip::sdp::{build_answer, build_offer, SessionDescription};
use sip::{
    Endpoint, EndpointConfig, IncomingCall, InviteRequest, LegEvent, ListenAddr, TlsConfig,
    Transport,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

/// A CA and a server certificate for 127.0.0.1 signed by it.
struct Pki {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let leaf_key = KeyPair::generate().unwrap();
    let leaf_params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let leaf = leaf_params.signed_by(&leaf_key, &ca, &ca_key).unwrap();
    Pki {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
    }
}

async fn endpoint(listen: &[&str], tls: Option<TlsConfig>) -> (Endpoint, Receiver<IncomingCall>) {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.listen = listen.iter().map(|l| l.parse().unwrap()).collect();
    cfg.tls = tls;
    Endpoint::bind(cfg).await.unwrap()
}

fn listener(ep: &Endpoint, t: Transport) -> SocketAddr {
    ep.listeners()
        .iter()
        .find(|l| l.transport == t)
        .map(|l: &ListenAddr| l.addr)
        .unwrap()
}

fn invite(target: String, sdp_pad: usize) -> InviteRequest {
    let mut sdp = build_offer("127.0.0.1:40000".parse().unwrap(), 1);
    for i in 0..sdp_pad {
        sdp.push_str(&format!("a=x-pad{i}:{}\r\n", "p".repeat(60)));
    }
    InviteRequest {
        target,
        from_user: "callbridge".into(),
        from_display: None,
        sdp,
        headers: vec![],
        credentials: None,
    }
}

async fn next<F: std::future::Future<Output = Option<LegEvent>>>(f: F) -> Option<LegEvent> {
    timeout(DEADLINE, f)
        .await
        .expect("no leg event within the deadline")
}

async fn incoming(rx: &mut Receiver<IncomingCall>) -> IncomingCall {
    timeout(DEADLINE, rx.recv())
        .await
        .expect("no incoming call")
        .expect("channel closed")
}

fn answer_for(call: &IncomingCall) -> String {
    let offer = SessionDescription::parse(call.sdp.as_deref().unwrap()).unwrap();
    build_answer(&offer, "127.0.0.1:40002".parse().unwrap(), 2)
        .unwrap()
        .0
}

/// Calls `b` at `target`, b answers, then b hangs up (its BYE must come back on the same
/// connection: a UAS never dials the caller's Contact over TCP/TLS).
async fn call_answer_bye(
    a: &Endpoint,
    b_in: &mut Receiver<IncomingCall>,
    target: String,
    t: Transport,
) {
    let mut out = a.invite(invite(target, 0)).unwrap();
    let mut call = incoming(b_in).await;
    assert_eq!(call.transport, t);
    let sdp = answer_for(&call);
    call.answer(sdp);
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Answered { .. })
    ));
    call.controller().hangup();
    assert_eq!(next(out.event()).await, Some(LegEvent::Bye));
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
}

#[tokio::test]
async fn a_call_over_tcp_uses_one_connection_both_ways() {
    let (a, _a_in) = endpoint(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], None).await;
    let (b, mut b_in) = endpoint(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], None).await;
    let target = format!(
        "sip:+15551234567@{};transport=tcp",
        listener(&b, Transport::Tcp)
    );
    call_answer_bye(&a, &mut b_in, target.clone(), Transport::Tcp).await;
    // A second call reuses the connection.
    call_answer_bye(&a, &mut b_in, target, Transport::Tcp).await;
    assert_eq!(a.stats().connections_opened.load(Ordering::Relaxed), 1);
    assert_eq!(b.stats().connections_accepted.load(Ordering::Relaxed), 1);
    assert_eq!(b.stats().connections_opened.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn a_call_over_tls_verifies_the_server_certificate() {
    let pki = pki();
    let server = TlsConfig::new(Some((pki.chain.clone(), pki.key.clone_key())), vec![]).unwrap();
    let client = TlsConfig::new(None, vec![pki.ca.clone()]).unwrap();
    let (a, _a_in) = endpoint(&["udp:127.0.0.1:0"], Some(client)).await;
    let (b, mut b_in) = endpoint(&["udp:127.0.0.1:0", "tls:127.0.0.1:0"], Some(server)).await;
    let tls = listener(&b, Transport::Tls);
    call_answer_bye(
        &a,
        &mut b_in,
        format!("sip:+15551234567@{tls};transport=tls"),
        Transport::Tls,
    )
    .await;
    // sips: means TLS too.
    call_answer_bye(
        &a,
        &mut b_in,
        format!("sips:+15551234567@{tls}"),
        Transport::Tls,
    )
    .await;
    assert_eq!(a.stats().connections_opened.load(Ordering::Relaxed), 1);
    assert_eq!(a.stats().tls_failures.load(Ordering::Relaxed), 0);

    // A client that does not trust the CA gets a transport error at once, not a timeout.
    let (c, _c_in) = endpoint(
        &["udp:127.0.0.1:0"],
        Some(TlsConfig::new(None, vec![]).unwrap()),
    )
    .await;
    let mut out = c
        .invite(invite(format!("sip:+15551234567@{tls};transport=tls"), 0))
        .unwrap();
    match next(out.event()).await {
        Some(LegEvent::Unreachable { cause }) => {
            assert!(cause.contains("TLS connection"), "{cause}")
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert_eq!(c.stats().tls_failures.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn a_refused_connection_is_unreachable_at_once() {
    let (a, _a_in) = endpoint(&["udp:127.0.0.1:0"], None).await;
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut out = a
        .invite(invite(
            format!("sip:+1555@127.0.0.1:{port};transport=tcp"),
            0,
        ))
        .unwrap();
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Unreachable { .. })
    ));
}

#[tokio::test]
async fn a_large_request_goes_over_tcp_and_falls_back_to_udp() {
    // b listens on UDP and TCP on the same port: the large INVITE arrives over TCP.
    let (a, _a_in) = endpoint(&["udp:127.0.0.1:0"], None).await;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = udp.local_addr().unwrap().port();
    drop(udp);
    let (_b, mut b_in) = endpoint(
        &[
            &format!("udp:127.0.0.1:{port}"),
            &format!("tcp:127.0.0.1:{port}"),
        ],
        None,
    )
    .await;
    let mut out = a
        .invite(invite(format!("sip:+1555@127.0.0.1:{port}"), 25))
        .unwrap();
    let call = incoming(&mut b_in).await;
    assert_eq!(
        call.transport,
        Transport::Tcp,
        "a request over 1300 bytes goes over TCP"
    );
    assert!(call
        .headers
        .iter()
        .any(|(n, v)| n == "Via" && v.starts_with("SIP/2.0/TCP")));
    call.reject(486);
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Rejected { status: 486, .. })
    ));

    // c listens on UDP only: the TCP connection is refused and the INVITE goes over UDP.
    let (c, mut c_in) = endpoint(&["udp:127.0.0.1:0"], None).await;
    let mut out = a
        .invite(invite(format!("sip:+1555@{}", c.local_addr()), 25))
        .unwrap();
    let call = incoming(&mut c_in).await;
    assert_eq!(call.transport, Transport::Udp);
    assert!(call
        .headers
        .iter()
        .any(|(n, v)| n == "Via" && v.starts_with("SIP/2.0/UDP")));
    call.reject(486);
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Rejected { status: 486, .. })
    ));
}

async fn read_some(s: &mut TcpStream) -> String {
    let mut buf = vec![0u8; 4096];
    let n = timeout(DEADLINE, s.read(&mut buf))
        .await
        .expect("nothing read within the deadline")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn options_keepalive_and_broken_framing_on_a_raw_tcp_connection() {
    let (b, _b_in) = endpoint(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], None).await;
    let addr = listener(&b, Transport::Tcp);
    let mut s = TcpStream::connect(addr).await.unwrap();
    let me = s.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{addr} SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKo1\r\nMax-Forwards: 70\r\n\
From: <sip:probe@{me}>;tag=p\r\nTo: <sip:{addr}>\r\nCall-ID: o1@x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    // A message split across writes, then a ping.
    let (head, tail) = options.split_at(40);
    s.write_all(head.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    tokio::task::yield_now().await;
    s.write_all(tail.as_bytes()).await.unwrap();
    let r = read_some(&mut s).await;
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    s.write_all(b"\r\n\r\n").await.unwrap();
    assert_eq!(read_some(&mut s).await, "\r\n", "RFC 5626 pong");
    // No Content-Length on a stream: 400, then the connection is closed.
    s.write_all(
        options
            .replace("Content-Length: 0\r\n", "")
            .replace("o1@x", "o2@x")
            .as_bytes(),
    )
    .await
    .unwrap();
    let r = read_some(&mut s).await;
    assert!(r.starts_with("SIP/2.0 400"), "{r}");
    assert!(r.contains("Content-Length"), "{r}");
    let mut rest = Vec::new();
    let n = timeout(DEADLINE, s.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "closed after broken framing");
}

#[tokio::test]
async fn options_keepalive_outcomes() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.timers = sip::Timers {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(40),
        t4: Duration::from_millis(50),
    };
    let (a, _a_in) = Endpoint::bind(cfg).await.unwrap();
    let (b, _b_in) = endpoint(&["udp:127.0.0.1:0", "tcp:127.0.0.1:0"], None).await;
    for (t, addr) in [
        (Transport::Udp, b.local_addr()),
        (Transport::Tcp, listener(&b, Transport::Tcp)),
    ] {
        let out = timeout(
            DEADLINE,
            a.options(&format!("sip:{addr}"), sip::Peer::new(t, addr), None),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(out, sip::ua::Outcome::Status(200), "{t}");
    }
    // Nobody on UDP: Timer F (64·T1 = 640 ms here).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let out = timeout(
        DEADLINE,
        a.options(&format!("sip:{addr}"), sip::Peer::udp(addr), None),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out, sip::ua::Outcome::Timeout);
    // Nobody on TCP: a transport error at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let out = timeout(
        DEADLINE,
        a.options(
            &format!("sip:{addr}"),
            sip::Peer::new(Transport::Tcp, addr),
            None,
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(out, sip::ua::Outcome::TransportError);
}
