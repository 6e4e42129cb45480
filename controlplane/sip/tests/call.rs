//! Two real endpoints on 127.0.0.1 calling each other, plus raw-socket probes.

use std::net::SocketAddr;
use std::time::Duration;

use sip::sdp::{build_answer, build_offer, SessionDescription};
use sip::{Endpoint, EndpointConfig, IncomingCall, InviteRequest, LegEvent, Timers};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

async fn endpoint(timers: Timers) -> (Endpoint, Receiver<IncomingCall>) {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.timers = timers;
    Endpoint::bind(cfg).await.unwrap()
}

fn invite_to(addr: SocketAddr) -> InviteRequest {
    InviteRequest {
        target: format!("sip:+15551234567@{addr}"),
        from_user: "callbridge".into(),
        from_display: Some("Call \"Bridge\"".into()),
        sdp: build_offer("127.0.0.1:40000".parse().unwrap(), 1),
        headers: vec![("X-Callbridge-Call".into(), "c-42".into())],
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

#[tokio::test]
async fn b_rings_and_answers_then_a_hangs_up() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    let mut call = incoming(&mut b_in).await;
    assert_eq!(call.call_id, out.call_id());
    assert_eq!(call.source, a.local_addr());
    assert!(call
        .headers
        .iter()
        .any(|(n, v)| n == "X-Callbridge-Call" && v == "c-42"));
    assert!(
        call.from.contains("\"Call \\\"Bridge\\\"\""),
        "{}",
        call.from
    );
    assert_eq!(
        call.request_uri,
        format!("sip:+15551234567@{}", b.local_addr())
    );
    call.ring();
    assert_eq!(
        next(out.event()).await,
        Some(LegEvent::Progress {
            status: 180,
            sdp: None
        })
    );
    let sdp = answer_for(&call);
    call.answer(sdp.clone());
    assert_eq!(next(out.event()).await, Some(LegEvent::Answered { sdp }));
    let offer = SessionDescription::parse(call.sdp.as_deref().unwrap()).unwrap();
    assert_eq!(offer.audio().unwrap().port, 40000, "B got A's offer");
    out.controller().hangup();
    out.controller().hangup(); // idempotent
    assert_eq!(next(call.event()).await, Some(LegEvent::Bye));
    assert_eq!(next(out.event()).await, Some(LegEvent::Ended));
    assert_eq!(next(out.event()).await, None);
    assert_eq!(next(call.event()).await, None);
}

#[tokio::test]
async fn b_rejects_busy() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    let mut call = incoming(&mut b_in).await;
    call.reject(486);
    assert_eq!(
        next(out.event()).await,
        Some(LegEvent::Rejected {
            status: 486,
            reason: "Busy Here".into()
        })
    );
    assert_eq!(next(out.event()).await, None);
    assert_eq!(next(call.event()).await, None);
}

/// A hangs up while B rings: CANCEL → B sees Cancelled; A sees Ended once the 487 is ACKed.
#[tokio::test]
async fn a_cancels_while_b_rings() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    let mut call = incoming(&mut b_in).await;
    call.ring();
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Progress { status: 180, .. })
    ));
    out.controller().hangup();
    assert_eq!(next(call.event()).await, Some(LegEvent::Cancelled));
    assert_eq!(next(out.event()).await, Some(LegEvent::Ended));
    assert_eq!(next(out.event()).await, None);
    assert_eq!(next(call.event()).await, None);
    // Answering after the CANCEL does nothing.
    call.answer(String::new());
}

/// Hangup before any provisional: remembered, CANCEL sent once the 100 Trying arrives.
#[tokio::test]
async fn hangup_before_any_provisional_cancels_after_the_first_1xx() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    out.controller().hangup();
    let mut call = incoming(&mut b_in).await;
    assert_eq!(next(call.event()).await, Some(LegEvent::Cancelled));
    assert_eq!(next(out.event()).await, Some(LegEvent::Ended));
    assert_eq!(next(out.event()).await, None);
}

#[tokio::test]
async fn b_hangs_up() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    let mut call = incoming(&mut b_in).await;
    let sdp = answer_for(&call);
    call.answer(sdp.clone());
    assert_eq!(next(out.event()).await, Some(LegEvent::Answered { sdp }));
    call.controller().hangup();
    assert_eq!(next(out.event()).await, Some(LegEvent::Bye));
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
    assert_eq!(next(out.event()).await, None);
    assert_eq!(next(call.event()).await, None);
}

/// B answers and hangs up at once: the BYE waits for the ACK (RFC 3261 15.1.1).
#[tokio::test]
async fn b_answers_and_hangs_up_immediately() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    let mut call = incoming(&mut b_in).await;
    call.answer(answer_for(&call));
    call.controller().hangup();
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Answered { .. })
    ));
    assert_eq!(next(out.event()).await, Some(LegEvent::Bye));
    assert_eq!(next(call.event()).await, Some(LegEvent::Ended));
}

fn fast() -> Timers {
    Timers {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(80),
        t4: Duration::from_millis(100),
    }
}

async fn recv_text(sock: &UdpSocket) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65535];
    let (n, from) = timeout(DEADLINE, sock.recv_from(&mut buf))
        .await
        .expect("no datagram")
        .unwrap();
    (String::from_utf8_lossy(&buf[..n]).into_owned(), from)
}

#[tokio::test]
async fn silent_peer_times_out_after_timer_b() {
    let (a, _a_in) = endpoint(fast()).await;
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut out = a.invite(invite_to(silent.local_addr().unwrap())).unwrap();
    assert_eq!(next(out.event()).await, Some(LegEvent::Timeout));
    // 1 + 6 retransmissions (T1 doubling) before Timer B = 64*T1.
    let mut count = 0;
    let mut buf = vec![0u8; 65535];
    while let Ok(Ok((n, _))) = timeout(Duration::from_millis(200), silent.recv_from(&mut buf)).await
    {
        assert!(buf[..n].starts_with(b"INVITE "));
        count += 1;
    }
    assert_eq!(count, 7);
    // The counters behind GET /metrics: one transaction, 7 INVITEs of which 6 resent.
    let s = a.stats();
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n(&s.client_transactions), 1);
    assert_eq!(n(&s.retransmissions_sent), 6);
    let invite = sip::transport::METHODS
        .iter()
        .position(|m| *m == "INVITE")
        .unwrap();
    assert_eq!(
        s.messages.messages(sip::transport::Direction::Tx, invite),
        7
    );
}

fn raw_request(
    method: &str,
    to_tag: Option<&str>,
    local: SocketAddr,
    target: SocketAddr,
) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:b@{target}>;tag={t}"),
        None => format!("<sip:b@{target}>"),
    };
    format!(
        "{method} sip:b@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{method}{n};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: {to}\r\nCall-ID: probe-{method}-{n}\r\n\
CSeq: 1 {method}\r\nContact: <sip:probe@{local}>\r\nContent-Length: 0\r\n\r\n",
        n = rand_suffix()
    )
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test]
async fn out_of_dialog_requests_get_the_right_answers() {
    let (b, _b_in) = endpoint(Timers::default()).await;
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = probe.local_addr().unwrap();
    let target = b.local_addr();
    for (method, to_tag, expect) in [
        ("OPTIONS", None, "SIP/2.0 200 OK"),
        ("REGISTER", None, "SIP/2.0 405 Method Not Allowed"),
        ("FROBNICATE", None, "SIP/2.0 405 Method Not Allowed"),
        ("BYE", Some("nope"), "SIP/2.0 481 "),
        ("CANCEL", None, "SIP/2.0 481 "),
        ("UPDATE", None, "SIP/2.0 481 "),
        ("UPDATE", Some("nope"), "SIP/2.0 481 "),
    ] {
        probe
            .send_to(
                raw_request(method, to_tag, local, target).as_bytes(),
                target,
            )
            .await
            .unwrap();
        let (text, from) = recv_text(&probe).await;
        assert_eq!(from, target);
        assert!(text.starts_with(expect), "{method}: {text}");
        if expect.contains("200") || expect.contains("405") {
            assert!(
                text.contains("Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE\r\n"),
                "{text}"
            );
        }
        assert!(text.contains(&format!(";rport={}", local.port())), "{text}");
    }
    // A malformed request with a good request line gets 400.
    let broken =
        raw_request("OPTIONS", None, local, target).replace("CSeq: 1 OPTIONS", "CSeq: one OPTIONS");
    probe.send_to(broken.as_bytes(), target).await.unwrap();
    let (text, _) = recv_text(&probe).await;
    assert!(text.starts_with("SIP/2.0 400 Bad Request"), "{text}");
    // Garbage is dropped and counted.
    probe.send_to(b"\x00\x01\x02 hello", target).await.unwrap();
    probe
        .send_to(
            raw_request("OPTIONS", None, local, target).as_bytes(),
            target,
        )
        .await
        .unwrap();
    let (text, _) = recv_text(&probe).await;
    assert!(
        text.starts_with("SIP/2.0 200"),
        "the garbage got no answer: {text}"
    );
    assert_eq!(b.malformed_counts(), (1, 1));
}

/// We answer, the caller never ACKs: the 200 is retransmitted, then we send BYE and report Timeout.
#[tokio::test]
async fn no_ack_for_our_2xx_times_out_with_bye() {
    let (b, mut b_in) = endpoint(fast()).await;
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = probe.local_addr().unwrap();
    let invite = raw_request("INVITE", None, local, b.local_addr());
    probe
        .send_to(invite.as_bytes(), b.local_addr())
        .await
        .unwrap();
    let (trying, _) = recv_text(&probe).await;
    assert!(trying.starts_with("SIP/2.0 100 Trying"), "{trying}");
    let mut call = incoming(&mut b_in).await;
    call.answer(String::new());
    assert_eq!(next(call.event()).await, Some(LegEvent::Timeout));
    let mut oks = 0;
    loop {
        let (text, _) = recv_text(&probe).await;
        if text.starts_with("SIP/2.0 200") {
            oks += 1;
        } else {
            assert!(text.starts_with("BYE sip:probe@"), "{text}");
            break;
        }
    }
    assert!(oks >= 5, "200 OK sent {oks} times");
    // The counters behind GET /metrics: the resent 2xx, the 100 and the 200s by class.
    let s = b.stats();
    let n = |c: &std::sync::atomic::AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(n(&s.server_transactions), 1);
    assert!(n(&s.retransmissions_sent) >= oks - 1, "{s:?}");
    let tx = sip::transport::Direction::Tx;
    assert_eq!(s.messages.responses(tx, 0), 1, "one 100 Trying");
    assert!(s.messages.responses(tx, 1) >= oks, "{s:?}");
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A raw UAC calls us, we answer; it refreshes the session with a re-INVITE (as RFC 4028
/// session timers do) and gets our unchanged SDP back; then it hangs up.
#[tokio::test]
async fn reinvite_refresh_is_answered_with_the_same_sdp() {
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = probe.local_addr().unwrap();
    let target = b.local_addr();
    let offer = build_offer("127.0.0.1:40020".parse().unwrap(), 5);
    let invite = raw_request("INVITE", None, local, target).replace(
        "Content-Length: 0\r\n\r\n",
        &format!(
            "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{offer}",
            offer.len()
        ),
    );
    probe.send_to(invite.as_bytes(), target).await.unwrap();
    let mut call = incoming(&mut b_in).await;
    let answer = answer_for(&call);
    call.answer(answer.clone());
    let ok = loop {
        let (text, _) = recv_text(&probe).await;
        if text.starts_with("SIP/2.0 200") {
            break text;
        }
    };
    assert!(ok.ends_with(&answer));
    let to = header(&ok, "To").to_string();
    let call_id = header(&ok, "Call-ID").to_string();
    let dialog_req = |method: &str, cseq: u32, branch: &str, body: &str| {
        let ct = if body.is_empty() {
            String::new()
        } else {
            "Content-Type: application/sdp\r\n".to_string()
        };
        format!(
            "{method} sip:callbridge@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch};rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\n\
Contact: <sip:probe@{local}>\r\n{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    probe
        .send_to(dialog_req("ACK", 1, "ack1", "").as_bytes(), target)
        .await
        .unwrap();
    probe
        .send_to(dialog_req("INVITE", 2, "reinv", &offer).as_bytes(), target)
        .await
        .unwrap();
    let ok2 = loop {
        let (text, _) = recv_text(&probe).await;
        if text.starts_with("SIP/2.0 200") && header(&text, "CSeq") == "2 INVITE" {
            break text;
        }
    };
    assert!(ok2.ends_with(&answer), "same SDP, same o= version: {ok2}");
    probe
        .send_to(dialog_req("ACK", 2, "ack2", "").as_bytes(), target)
        .await
        .unwrap();
    // An out-of-order re-INVITE is refused.
    probe
        .send_to(dialog_req("INVITE", 1, "old", &offer).as_bytes(), target)
        .await
        .unwrap();
    let refused = loop {
        let (text, _) = recv_text(&probe).await;
        if header(&text, "CSeq") == "1 INVITE" && !text.starts_with("SIP/2.0 100") {
            break text;
        }
    };
    assert!(refused.starts_with("SIP/2.0 500"), "{refused}");
    probe
        .send_to(dialog_req("BYE", 3, "bye", "").as_bytes(), target)
        .await
        .unwrap();
    assert_eq!(next(call.event()).await, Some(LegEvent::Bye));
    let bye_ok = loop {
        let (text, _) = recv_text(&probe).await;
        if header(&text, "CSeq") == "3 BYE" {
            break text;
        }
    };
    assert!(bye_ok.starts_with("SIP/2.0 200"), "{bye_ok}");
}

/// An IncomingCall dropped without answer or reject is rejected with 480.
#[tokio::test]
async fn dropped_incoming_call_is_rejected() {
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    drop(incoming(&mut b_in).await);
    assert_eq!(
        next(out.event()).await,
        Some(LegEvent::Rejected {
            status: 480,
            reason: "Temporarily Unavailable".into()
        })
    );
}

/// A free UDP port on 127.0.0.1 where nothing listens (bound, noted, closed).
fn dead_udp_port() -> SocketAddr {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[tokio::test]
async fn an_icmp_port_unreachable_ends_the_invite_at_once() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("sip=debug")
        .with_test_writer()
        .try_init();
    // Timer B would take 32 s; the ICMP error (IP_RECVERR, the error queue) ends it at once.
    let (a, _a_in) = endpoint(Timers::default()).await;
    let dead = dead_udp_port();
    let started = std::time::Instant::now();
    let mut out = a.invite(invite_to(dead)).unwrap();
    match next(out.event()).await {
        Some(LegEvent::Unreachable { cause }) => {
            assert!(cause.contains("port unreachable"), "{cause}");
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    // Only that transaction failed: a live peer is still reached through the same socket
    // (the socket's pending error does not eat the next datagram).
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut out = a.invite(invite_to(b.local_addr())).unwrap();
    let call = incoming(&mut b_in).await;
    call.reject(486);
    assert!(matches!(
        next(out.event()).await,
        Some(LegEvent::Rejected { status: 486, .. })
    ));
}

#[tokio::test]
async fn an_icmp_error_fails_only_the_transaction_it_quotes() {
    // Two INVITEs: one to a dead port, one to a live peer that never answers. The ICMP error
    // ends the first; the second is untouched (it still rings).
    let (a, _a_in) = endpoint(Timers::default()).await;
    let (b, mut b_in) = endpoint(Timers::default()).await;
    let mut live = a.invite(invite_to(b.local_addr())).unwrap();
    let _call = incoming(&mut b_in).await;
    let mut dead = a.invite(invite_to(dead_udp_port())).unwrap();
    assert!(matches!(
        next(dead.event()).await,
        Some(LegEvent::Unreachable { .. })
    ));
    let quiet = timeout(Duration::from_millis(300), live.event()).await;
    assert!(
        !matches!(quiet, Ok(Some(LegEvent::Unreachable { .. }))),
        "{quiet:?}"
    );
}
