//! Offers in a confirmed dialog between two real endpoints on 127.0.0.1 (issue 8): hold and
//! unhold by re-INVITE and UPDATE in both directions, glare (491), session timers (RFC 4028)
//! refreshed and expiring, and a raw peer asking for a too-small session interval (422).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip::sdp::{
    compare, AnswerParams, Direction, Hold, LocalSession, OfferParams, SessionDescription,
};
use sip::{
    Endpoint, EndpointConfig, IncomingCall, InviteRequest, LegController, LegEvent, OutgoingCall,
    ReofferPolicy, SessionTimerConfig, Timers,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::Receiver;
use tokio::time::timeout;

const DEADLINE: Duration = Duration::from_secs(10);

fn fast() -> Timers {
    Timers {
        t1: Duration::from_millis(10),
        t2: Duration::from_millis(80),
        t4: Duration::from_millis(100),
    }
}

async fn endpoint(session: SessionTimerConfig) -> (Endpoint, Receiver<IncomingCall>) {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.timers = fast();
    cfg.reoffers = ReofferPolicy::Application;
    cfg.session_timer = session;
    Endpoint::bind(cfg).await.unwrap()
}

fn no_timer() -> SessionTimerConfig {
    SessionTimerConfig {
        session_expires: None,
        ..SessionTimerConfig::default()
    }
}

async fn next<F: std::future::Future<Output = Option<LegEvent>>>(f: F) -> LegEvent {
    timeout(DEADLINE, f)
        .await
        .expect("no leg event within the deadline")
        .expect("leg over")
}

/// One side of the test call: its SDP session and RTP address, as a B2BUA leg keeps them.
struct Side {
    session: LocalSession,
    rtp: SocketAddr,
}

impl Side {
    fn new(id: u64, rtp: &str) -> Self {
        let rtp: SocketAddr = rtp.parse().unwrap();
        Self {
            session: LocalSession::new(id, rtp.ip()),
            rtp,
        }
    }

    fn offer(&mut self, direction: Direction) -> String {
        let mut p = OfferParams::new(self.rtp);
        p.direction = direction;
        self.session.offer(&p).unwrap()
    }

    fn answer(&mut self, offer: &str) -> String {
        let offer = SessionDescription::parse(offer).unwrap();
        self.session
            .answer(&offer, &AnswerParams::new(self.rtp))
            .unwrap()
            .sdp
    }
}

fn direction(sdp: &str) -> Direction {
    SessionDescription::parse(sdp)
        .unwrap()
        .audio()
        .unwrap()
        .direction
}

/// A call from `a` to `b`, answered; returns both legs and both sides' SDP state.
async fn call(
    a: &Endpoint,
    b_in: &mut Receiver<IncomingCall>,
    b: &Endpoint,
) -> (OutgoingCall, IncomingCall, Side, Side) {
    let mut sa = Side::new(1, "127.0.0.1:40000");
    let mut sb = Side::new(2, "127.0.0.1:40002");
    let mut out = a
        .invite(InviteRequest {
            target: format!("sip:agent@{}", b.local_addr()),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: sa.offer(Direction::SendRecv),
            headers: vec![],
            credentials: None,
        })
        .unwrap();
    let inc = timeout(DEADLINE, b_in.recv()).await.unwrap().unwrap();
    let answer = sb.answer(inc.sdp.as_deref().unwrap());
    inc.answer(answer.clone());
    let LegEvent::Answered { sdp } = next(out.event()).await else {
        panic!("expected Answered")
    };
    sa.session
        .read_answer(&SessionDescription::parse(&sdp).unwrap())
        .unwrap();
    (out, inc, sa, sb)
}

/// Either kind of leg, for helpers that work from both ends.
trait Leg {
    fn ev(&mut self) -> impl std::future::Future<Output = Option<LegEvent>> + '_;
    fn ctl(&self) -> LegController;
}

impl Leg for OutgoingCall {
    fn ev(&mut self) -> impl std::future::Future<Output = Option<LegEvent>> + '_ {
        self.event()
    }
    fn ctl(&self) -> LegController {
        self.controller()
    }
}

impl Leg for IncomingCall {
    fn ev(&mut self) -> impl std::future::Future<Output = Option<LegEvent>> + '_ {
        self.event()
    }
    fn ctl(&self) -> LegController {
        self.controller()
    }
}

/// `from` puts `to` on hold (sendonly) and takes it off (sendrecv); `to` answers each offer
/// through the application (recvonly, then sendrecv), and both see the directions and the
/// hold change ([`compare`]).
async fn hold_and_unhold(
    from: &mut impl Leg,
    from_side: &mut Side,
    to: &mut impl Leg,
    to_side: &mut Side,
    update: bool,
) {
    let mut previous: Option<String> = None;
    for (ours, theirs, hold) in [
        (Direction::SendOnly, Direction::RecvOnly, Hold::Started),
        (Direction::SendRecv, Direction::SendRecv, Hold::Ended),
    ] {
        let offer = from_side.offer(ours);
        if update {
            from.ctl().update(offer.clone());
        } else {
            from.ctl().reoffer(offer.clone());
        }
        let LegEvent::Reoffer { sdp } = next(to.ev()).await else {
            panic!("expected Reoffer")
        };
        assert_eq!(sdp, offer);
        if let Some(p) = &previous {
            let change = compare(
                &SessionDescription::parse(p).unwrap(),
                &SessionDescription::parse(&sdp).unwrap(),
            )
            .unwrap();
            assert_eq!(change.hold, Some(hold));
        }
        previous = Some(sdp.clone());
        to.ctl().answer_reoffer(to_side.answer(&sdp));
        let LegEvent::ReofferAnswered { sdp: answer } = next(from.ev()).await else {
            panic!("expected ReofferAnswered")
        };
        assert_eq!(direction(&answer), theirs);
    }
}

#[tokio::test]
async fn caller_holds_and_unholds_by_reinvite_and_update() {
    let (a, _a_in) = endpoint(no_timer()).await;
    let (b, mut b_in) = endpoint(no_timer()).await;
    let (mut out, mut inc, mut sa, mut sb) = call(&a, &mut b_in, &b).await;
    for update in [false, true] {
        hold_and_unhold(&mut out, &mut sa, &mut inc, &mut sb, update).await;
    }
    out.controller().hangup();
    assert_eq!(next(out.event()).await, LegEvent::Ended);
    assert_eq!(next(inc.event()).await, LegEvent::Bye);
    a.shutdown();
    b.shutdown();
}

#[tokio::test]
async fn callee_holds_and_unholds_by_reinvite_and_update() {
    let (a, _a_in) = endpoint(no_timer()).await;
    let (b, mut b_in) = endpoint(no_timer()).await;
    let (mut out, mut inc, mut sa, mut sb) = call(&a, &mut b_in, &b).await;
    for update in [false, true] {
        hold_and_unhold(&mut inc, &mut sb, &mut out, &mut sa, update).await;
    }
    // A refused offer leaves the session as it was.
    inc.controller().reoffer(sb.offer(Direction::Inactive));
    assert!(matches!(next(out.event()).await, LegEvent::Reoffer { .. }));
    out.controller().reject_reoffer(488);
    assert_eq!(
        next(inc.event()).await,
        LegEvent::ReofferRejected { status: 488 }
    );
    inc.controller().hangup();
    assert_eq!(next(inc.event()).await, LegEvent::Ended);
    assert_eq!(next(out.event()).await, LegEvent::Bye);
    a.shutdown();
    b.shutdown();
}

/// Both sides re-offer at once: whether or not the re-INVITEs cross (glare, 491 and retries,
/// see `glare_with_a_raw_peer` for the rules), both offers end up answered.
#[tokio::test]
async fn crossing_offers_both_end_up_answered() {
    let (a, _a_in) = endpoint(no_timer()).await;
    let (b, mut b_in) = endpoint(no_timer()).await;
    let (mut out, mut inc, mut sa, mut sb) = call(&a, &mut b_in, &b).await;
    let (ca, cb) = (out.controller(), inc.controller());
    ca.reoffer(sa.offer(Direction::SendOnly));
    cb.reoffer(sb.offer(Direction::SendOnly));
    let (mut a_answered, mut b_answered) = (false, false);
    while !a_answered || !b_answered {
        tokio::select! {
            ev = next(out.event()) => match ev {
                LegEvent::Reoffer { sdp } => ca.answer_reoffer(sa.answer(&sdp)),
                LegEvent::ReofferAnswered { .. } => a_answered = true,
                other => panic!("caller: {other:?}"),
            },
            ev = next(inc.event()) => match ev {
                LegEvent::Reoffer { sdp } => cb.answer_reoffer(sb.answer(&sdp)),
                LegEvent::ReofferAnswered { .. } => b_answered = true,
                other => panic!("callee: {other:?}"),
            },
        }
    }
    ca.hangup();
    assert_eq!(next(out.event()).await, LegEvent::Ended);
    a.shutdown();
    b.shutdown();
}

fn header<'a>(text: &'a str, name: &str) -> &'a str {
    text.split("\r\n")
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A response from the raw peer to `req`, with `extra` lines (each ending in CRLF) and `body`.
fn respond(req: &str, status: &str, to_tag: &str, extra: &str, body: &str) -> String {
    let to = header(req, "To");
    let to = if to.contains(";tag=") {
        to.to_string()
    } else {
        format!("{to};tag={to_tag}")
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

/// Receives until a request or response whose first line starts with `start`.
async fn recv_starting(sock: &UdpSocket, start: &str) -> String {
    loop {
        let t = recv_text(sock).await;
        if t.starts_with(start) {
            return t;
        }
    }
}

/// RFC 3261 14.1/14.2 against a raw peer: while our re-INVITE is pending, the peer's
/// re-INVITE gets 491; our re-INVITE refused with 491 is sent again after 2.1–4 s (we own the
/// Call-ID), with a higher CSeq, and its 2xx is ACKed and reported.
#[tokio::test]
async fn glare_with_a_raw_peer() {
    let (a, _a_in) = endpoint(no_timer()).await;
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = probe.local_addr().unwrap();
    let mut sa = Side::new(1, "127.0.0.1:40000");
    let mut out = a
        .invite(InviteRequest {
            target: format!("sip:agent@{p}"),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: sa.offer(Direction::SendRecv),
            headers: vec![],
            credentials: None,
        })
        .unwrap();
    let invite = recv_starting(&probe, "INVITE ").await;
    let answer = Side::new(9, "127.0.0.1:40040").answer(invite.split("\r\n\r\n").nth(1).unwrap());
    let contact = format!("Contact: <sip:agent@{p}>\r\nContent-Type: application/sdp\r\n");
    let ok = respond(&invite, "200 OK", "pt", &contact, &answer);
    probe.send_to(ok.as_bytes(), a.local_addr()).await.unwrap();
    assert!(matches!(next(out.event()).await, LegEvent::Answered { .. }));
    let _ack = recv_starting(&probe, "ACK ").await;

    // Ours goes out; theirs crosses it and gets 491.
    out.controller().reoffer(sa.offer(Direction::SendOnly));
    let ours = recv_starting(&probe, "INVITE ").await;
    assert_eq!(header(&ours, "CSeq"), "2 INVITE");
    let theirs = format!(
        "INVITE {} SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bKtheirs\r\nMax-Forwards: 70\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContact: <sip:agent@{p}>\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{answer}",
        header(&ours, "Contact").trim_matches(|c| c == '<' || c == '>'),
        header(&ours, "To"),
        header(&ours, "From"),
        header(&ours, "Call-ID"),
        answer.len()
    );
    probe
        .send_to(theirs.as_bytes(), a.local_addr())
        .await
        .unwrap();
    let refused = recv_starting(&probe, "SIP/2.0 491").await;
    assert_eq!(header(&refused, "CSeq"), "1 INVITE");
    let ack = format!(
        "ACK {} SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bKtheirs\r\nMax-Forwards: 70\r\n\
From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        header(&ours, "Contact").trim_matches(|c| c == '<' || c == '>'),
        header(&ours, "To"),
        header(&refused, "To"),
        header(&ours, "Call-ID"),
    );
    probe.send_to(ack.as_bytes(), a.local_addr()).await.unwrap();

    // We refuse theirs' twin: ours waits 2.1-4 s, then comes again.
    let pending = respond(&ours, "491 Request Pending", "pt", "", "");
    probe
        .send_to(pending.as_bytes(), a.local_addr())
        .await
        .unwrap();
    let t491 = Instant::now();
    let again = recv_starting(&probe, "INVITE ").await;
    let waited = t491.elapsed();
    assert!(
        waited >= Duration::from_millis(2000) && waited <= Duration::from_millis(4300),
        "{waited:?}"
    );
    assert_eq!(header(&again, "CSeq"), "3 INVITE");
    let held = Side::new(9, "127.0.0.1:40040").answer(again.split("\r\n\r\n").nth(1).unwrap());
    let ok = respond(&again, "200 OK", "pt", &contact, &held);
    probe.send_to(ok.as_bytes(), a.local_addr()).await.unwrap();
    let LegEvent::ReofferAnswered { sdp } = next(out.event()).await else {
        panic!("expected ReofferAnswered")
    };
    assert_eq!(direction(&sdp), Direction::RecvOnly);
    let ack = recv_starting(&probe, "ACK ").await;
    assert_eq!(header(&ack, "CSeq"), "3 ACK");
    a.shutdown();
}

fn short_timers(expires: u64) -> SessionTimerConfig {
    SessionTimerConfig {
        session_expires: Some(Duration::from_secs(expires)),
        min_se: Duration::from_secs(1),
        refresh_with_update: true,
    }
}

/// The caller asks for a 2 s session; the callee lets it refresh (refresher=uac): refreshes
/// at half the interval (UPDATE without body, or a re-INVITE with our unchanged SDP) keep the
/// call up well past 2 s, with nothing for the applications to do.
async fn refreshes_keep_the_call_up(refresh_with_update: bool) {
    let mut cfg = short_timers(2);
    cfg.refresh_with_update = refresh_with_update;
    let (a, _a_in) = endpoint(cfg).await;
    let (b, mut b_in) = endpoint(short_timers(2)).await;
    let (mut out, mut inc, _sa, _sb) = call(&a, &mut b_in, &b).await;
    // Without refreshes the callee would have sent BYE after ~1.4 s.
    assert!(timeout(Duration::from_millis(4500), out.event())
        .await
        .is_err());
    assert!(timeout(Duration::from_millis(10), inc.event())
        .await
        .is_err());
    out.controller().hangup();
    assert_eq!(next(out.event()).await, LegEvent::Ended);
    assert_eq!(next(inc.event()).await, LegEvent::Bye);
}

#[tokio::test]
async fn session_timer_refreshes_by_update_keep_the_call_up() {
    refreshes_keep_the_call_up(true).await;
}

#[tokio::test]
async fn session_timer_refreshes_by_reinvite_keep_the_call_up() {
    refreshes_keep_the_call_up(false).await;
}

/// The caller (the refresher) disappears: the callee's session expires, it reports
/// `SessionExpired` and ends the dialog with BYE (which nobody answers any more).
#[tokio::test]
async fn session_expires_without_refresh() {
    let (a, _a_in) = endpoint(short_timers(3)).await;
    let (b, mut b_in) = endpoint(short_timers(3)).await;
    let (out, mut inc, _sa, _sb) = call(&a, &mut b_in, &b).await;
    let t0 = Instant::now();
    a.shutdown();
    drop(out);
    assert_eq!(next(inc.event()).await, LegEvent::SessionExpired);
    // 3 s - 3/3 s after the last refresh (the answer)
    assert!(
        t0.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(next(inc.event()).await, LegEvent::Ended);
}

async fn recv_text(sock: &UdpSocket) -> String {
    let mut buf = vec![0u8; 65535];
    let (n, _) = timeout(DEADLINE, sock.recv_from(&mut buf))
        .await
        .expect("no datagram")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// RFC 4028 6: an INVITE asking for less than our Min-SE gets 422 with our Min-SE, before the
/// application sees a call; one asking for enough is answered with the interval and refresher.
#[tokio::test]
async fn too_small_session_interval_gets_422() {
    let mut cfg = EndpointConfig::new("127.0.0.1:0".parse().unwrap());
    cfg.session_timer.min_se = Duration::from_secs(90);
    let (b, mut b_in) = Endpoint::bind(cfg).await.unwrap();
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = probe.local_addr().unwrap();
    let target = b.local_addr();
    let invite = |se: u32, branch: &str| {
        format!(
            "INVITE sip:b@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: <sip:b@{target}>\r\nCall-ID: se-{branch}\r\n\
CSeq: 1 INVITE\r\nContact: <sip:probe@{local}>\r\nSupported: timer\r\nSession-Expires: {se}\r\n\
Content-Length: 0\r\n\r\n"
        )
    };
    probe
        .send_to(invite(30, "small").as_bytes(), target)
        .await
        .unwrap();
    let _trying = recv_text(&probe).await;
    let r = recv_text(&probe).await;
    assert!(
        r.starts_with("SIP/2.0 422 Session Interval Too Small"),
        "{r}"
    );
    assert!(r.contains("\r\nMin-SE: 90\r\n"), "{r}");
    assert!(timeout(Duration::from_millis(100), b_in.recv())
        .await
        .is_err());
    probe
        .send_to(invite(120, "ok").as_bytes(), target)
        .await
        .unwrap();
    let call = timeout(DEADLINE, b_in.recv()).await.unwrap().unwrap();
    call.answer(String::new());
    let mut r = recv_text(&probe).await;
    while r.starts_with("SIP/2.0 100") {
        r = recv_text(&probe).await;
    }
    assert!(r.starts_with("SIP/2.0 200"), "{r}");
    assert!(
        r.contains("\r\nSession-Expires: 120;refresher=uac\r\n"),
        "{r}"
    );
    assert!(r.contains("\r\nRequire: timer\r\n"), "{r}");
    b.shutdown();
}

/// An offerless re-INVITE from a raw caller: we offer our current SDP in the 2xx (retransmitted
/// until the ACK), and the answer in its ACK is reported as `ReofferAnswered`.
#[tokio::test]
async fn offerless_reinvite_gets_our_offer_and_the_ack_answers_it() {
    let (b, mut b_in) = endpoint(no_timer()).await;
    let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let p = probe.local_addr().unwrap();
    let target = b.local_addr();
    let mut sp = Side::new(7, "127.0.0.1:40050");
    let offer = sp.offer(Direction::SendRecv);
    let request = |method: &str, cseq: u32, branch: &str, to_tag: &str, body: &str| {
        let ct = if body.is_empty() {
            ""
        } else {
            "Content-Type: application/sdp\r\n"
        };
        format!(
            "{method} sip:b@{target} SIP/2.0\r\nVia: SIP/2.0/UDP {p};branch=z9hG4bK{branch}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{p}>;tag=p1\r\nTo: <sip:b@{target}>{to_tag}\r\n\
Call-ID: offerless-1\r\nCSeq: {cseq} {method}\r\nContact: <sip:probe@{p}>\r\n{ct}\
Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    probe
        .send_to(request("INVITE", 1, "i1", "", &offer).as_bytes(), target)
        .await
        .unwrap();
    let mut inc = timeout(DEADLINE, b_in.recv()).await.unwrap().unwrap();
    let mut sb = Side::new(8, "127.0.0.1:40052");
    let answer = sb.answer(inc.sdp.as_deref().unwrap());
    inc.answer(answer.clone());
    let ok = recv_starting(&probe, "SIP/2.0 200").await;
    let tag = header(&ok, "To").split(";tag=").nth(1).unwrap().to_string();
    let to_tag = format!(";tag={tag}");
    probe
        .send_to(request("ACK", 1, "a1", &to_tag, "").as_bytes(), target)
        .await
        .unwrap();
    probe
        .send_to(request("INVITE", 2, "i2", &to_tag, "").as_bytes(), target)
        .await
        .unwrap();
    let ok = recv_starting(&probe, "SIP/2.0 200").await;
    assert_eq!(header(&ok, "CSeq"), "2 INVITE");
    let ours = ok.split("\r\n\r\n").nth(1).unwrap();
    assert_eq!(ours, answer, "our current SDP, offered again");
    let held = sp.offer(Direction::SendOnly);
    probe
        .send_to(request("ACK", 2, "a2", &to_tag, &held).as_bytes(), target)
        .await
        .unwrap();
    assert_eq!(
        next(inc.event()).await,
        LegEvent::ReofferAnswered { sdp: held }
    );
    b.shutdown();
}

/// RFC 4028 7.4: a 422 to our INVITE makes us ask again, once, for the peer's Min-SE.
#[tokio::test]
async fn our_invite_refused_with_422_asks_again_for_min_se() {
    let (a, _a_in) = endpoint(short_timers(30)).await;
    let uas = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let u = uas.local_addr().unwrap();
    let mut sa = Side::new(1, "127.0.0.1:40000");
    let mut out = a
        .invite(InviteRequest {
            target: format!("sip:agent@{u}"),
            from_user: "callbridge".into(),
            from_display: None,
            sdp: sa.offer(Direction::SendRecv),
            headers: vec![],
            credentials: None,
        })
        .unwrap();
    let first = recv_starting(&uas, "INVITE ").await;
    assert_eq!(header(&first, "Session-Expires"), "30");
    assert_eq!(header(&first, "Supported"), "timer");
    let refused = respond(
        &first,
        "422 Session Interval Too Small",
        "pt",
        "Min-SE: 120\r\n",
        "",
    );
    uas.send_to(refused.as_bytes(), a.local_addr())
        .await
        .unwrap();
    let second = recv_starting(&uas, "INVITE ").await;
    assert_eq!(header(&second, "Session-Expires"), "120");
    assert_eq!(header(&second, "CSeq"), "2 INVITE");
    let answer = Side::new(9, "127.0.0.1:40040").answer(second.split("\r\n\r\n").nth(1).unwrap());
    let extra = format!(
        "Contact: <sip:agent@{u}>\r\nRequire: timer\r\nSession-Expires: 120;refresher=uac\r\n\
Content-Type: application/sdp\r\n"
    );
    let ok = respond(&second, "200 OK", "pt", &extra, &answer);
    uas.send_to(ok.as_bytes(), a.local_addr()).await.unwrap();
    assert!(matches!(next(out.event()).await, LegEvent::Answered { .. }));
    a.shutdown();
}
