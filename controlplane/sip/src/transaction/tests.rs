//! Unit tests of `transaction`: client and server transactions driven on fake time (timers,
//! retransmissions, RFC 6026 Accepted), plus transaction matching.

use super::*;
use crate::msg::{self, Message};

fn invite() -> Request {
    parse_req(
        "INVITE sip:b@127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKabc;rport\r\n\
Max-Forwards: 70\r\nFrom: <sip:a@127.0.0.1>;tag=aa\r\nTo: <sip:b@127.0.0.1:5080>\r\nCall-ID: c1\r\n\
CSeq: 1 INVITE\r\nRoute: <sip:127.0.0.9;lr>\r\nContent-Length: 0\r\n\r\n",
    )
}

fn options() -> Request {
    let mut r = invite();
    r.method = Method::Options;
    r.headers.set("CSeq", "2 OPTIONS");
    r
}

fn parse_req(s: &str) -> Request {
    match msg::parse(s.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

fn resp(req: &Request, status: u16) -> Response {
    Response::to_request(req, status, Some("bb"))
}

fn dest() -> Peer {
    Peer::udp("127.0.0.1:5080".parse().unwrap())
}

fn tcp() -> Peer {
    Peer::new(
        crate::peer::Transport::Tcp,
        "127.0.0.1:5080".parse().unwrap(),
    )
}

/// Runs timers until `end`, returning the instants (ms from start) at which something was sent.
fn run_client(tx: &mut ClientTransaction, t0: Instant, end: Duration) -> Vec<u128> {
    let mut sent = Vec::new();
    while tx.poll_transmit().is_some() {
        sent.push(0);
    }
    while let Some(at) = tx.poll_timeout() {
        if at > t0 + end {
            break;
        }
        tx.handle_timeout(at);
        while tx.poll_transmit().is_some() {
            sent.push((at - t0).as_millis());
        }
    }
    sent
}

#[test]
fn invite_timer_a_doubles_until_timer_b() {
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, invite(), dest(), Timers::default());
    let sent = run_client(&mut tx, t0, Duration::from_secs(40));
    assert_eq!(sent, vec![0, 500, 1500, 3500, 7500, 15500, 31500]);
    assert_eq!(tx.poll_event(), Some(ClientEvent::Timeout));
    assert!(tx.is_terminated());
    assert_eq!(tx.poll_timeout(), None);
}

#[test]
fn provisional_stops_invite_retransmission() {
    let t0 = Instant::now();
    let req = invite();
    let mut tx = ClientTransaction::new(t0, req.clone(), dest(), Timers::default());
    let _ = tx.poll_transmit();
    tx.handle_timeout(t0 + Duration::from_millis(500));
    assert!(tx.poll_transmit().is_some());
    tx.handle_response(t0 + Duration::from_millis(600), resp(&req, 180));
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Provisional(r)) if r.status == 180));
    assert_eq!(tx.poll_timeout(), None, "no timers in Proceeding");
    assert_eq!(tx.state(), ClientState::Proceeding);
}

#[test]
fn non_2xx_is_acked_with_the_same_branch_and_absorbed() {
    let t0 = Instant::now();
    let req = invite();
    let mut tx = ClientTransaction::new(t0, req.clone(), dest(), Timers::default());
    let _ = tx.poll_transmit();
    let busy = resp(&req, 486);
    tx.handle_response(t0, busy.clone());
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(r)) if r.status == 486));
    let ack = tx.poll_transmit().unwrap();
    let Message::Request(ack) = msg::parse(&ack.payload).unwrap() else {
        panic!()
    };
    assert_eq!(ack.method, Method::Ack);
    assert_eq!(ack.uri, req.uri);
    assert_eq!(ack.branch().as_deref(), Some("z9hG4bKabc"));
    assert_eq!(ack.cseq(), (1, Method::Ack));
    assert_eq!(ack.to_tag().as_deref(), Some("bb"));
    assert_eq!(ack.headers.get("Route"), Some("<sip:127.0.0.9;lr>"));
    // A retransmitted 486 is ACKed again, not reported again.
    tx.handle_response(t0 + Duration::from_secs(1), busy);
    assert!(tx.poll_transmit().is_some());
    assert_eq!(tx.poll_event(), None);
    // Timer D (32 s) ends it.
    tx.handle_timeout(t0 + Duration::from_secs(31));
    assert!(!tx.is_terminated());
    tx.handle_timeout(t0 + Duration::from_secs(32));
    assert!(tx.is_terminated());
}

#[test]
fn retransmitted_2xx_is_passed_up_in_accepted() {
    let t0 = Instant::now();
    let req = invite();
    let mut tx = ClientTransaction::new(t0, req.clone(), dest(), Timers::default());
    let _ = tx.poll_transmit();
    tx.handle_response(t0, resp(&req, 200));
    tx.handle_response(t0 + Duration::from_millis(500), resp(&req, 200));
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(r)) if r.status == 200));
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(r)) if r.status == 200));
    assert_eq!(tx.poll_transmit(), None, "the 2xx ACK is the dialog's job");
    tx.handle_timeout(t0 + Duration::from_secs(32));
    assert!(tx.is_terminated());
}

#[test]
fn non_invite_timer_e_caps_at_t2_until_timer_f() {
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, options(), dest(), Timers::default());
    let sent = run_client(&mut tx, t0, Duration::from_secs(40));
    assert_eq!(
        sent,
        vec![0, 500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(tx.poll_event(), Some(ClientEvent::Timeout));
}

#[test]
fn non_invite_final_then_timer_k() {
    let t0 = Instant::now();
    let req = options();
    let mut tx = ClientTransaction::new(t0, req.clone(), dest(), Timers::default());
    let _ = tx.poll_transmit();
    tx.handle_response(t0, resp(&req, 200));
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Final(_))));
    tx.handle_response(t0, resp(&req, 200));
    assert_eq!(tx.poll_event(), None, "retransmission absorbed");
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(5)));
    tx.handle_timeout(t0 + Duration::from_secs(5));
    assert!(tx.is_terminated());
}

#[test]
fn invite_server_sends_trying_and_resends_on_retransmission() {
    let t0 = Instant::now();
    let req = invite();
    let mut tx = ServerTransaction::new(t0, req.clone(), dest(), Timers::default(), "cb");
    let trying = tx.poll_transmit().unwrap();
    assert!(trying.payload.starts_with(b"SIP/2.0 100 Trying"));
    tx.handle_request(t0, &req);
    assert!(tx
        .poll_transmit()
        .unwrap()
        .payload
        .starts_with(b"SIP/2.0 100"));
    assert!(tx.send_response(t0, &resp(&req, 180)));
    let _ = tx.poll_transmit();
    tx.handle_request(t0, &req);
    assert!(tx
        .poll_transmit()
        .unwrap()
        .payload
        .starts_with(b"SIP/2.0 180"));
    assert!(tx.send_response(t0, &resp(&req, 200)));
    let _ = tx.poll_transmit();
    assert_eq!(tx.state(), ServerState::Accepted);
    tx.handle_request(t0, &req);
    assert_eq!(
        tx.poll_transmit(),
        None,
        "retransmitted INVITE absorbed after 2xx"
    );
    assert!(!tx.send_response(t0, &resp(&req, 486)));
    tx.handle_timeout(t0 + Duration::from_secs(32));
    assert!(tx.is_terminated());
}

#[test]
fn invite_server_timer_g_until_ack() {
    let t0 = Instant::now();
    let req = invite();
    let mut tx = ServerTransaction::new(t0, req.clone(), dest(), Timers::default(), "cb");
    let _ = tx.poll_transmit();
    assert!(tx.send_response(t0, &resp(&req, 486)));
    let mut sent = vec![];
    while tx.poll_transmit().is_some() {
        sent.push(0);
    }
    while let Some(at) = tx.poll_timeout() {
        if at > t0 + Duration::from_millis(12000) {
            break;
        }
        tx.handle_timeout(at);
        while tx.poll_transmit().is_some() {
            sent.push((at - t0).as_millis());
        }
    }
    assert_eq!(sent, vec![0, 500, 1500, 3500, 7500, 11500]);
    let mut ack = req.clone();
    ack.method = Method::Ack;
    ack.headers.set("CSeq", "1 ACK");
    tx.handle_request(t0 + Duration::from_secs(12), &ack);
    assert_eq!(tx.poll_event(), Some(ServerEvent::AckReceived));
    assert_eq!(tx.state(), ServerState::Confirmed);
    tx.handle_timeout(t0 + Duration::from_secs(17));
    assert!(tx.is_terminated());
}

#[test]
fn invite_server_timer_h_without_ack() {
    let t0 = Instant::now();
    let req = invite();
    let mut tx = ServerTransaction::new(t0, req.clone(), dest(), Timers::default(), "cb");
    assert!(tx.send_response(t0, &resp(&req, 603)));
    let mut last = t0;
    while let Some(at) = tx.poll_timeout() {
        tx.handle_timeout(at);
        last = at;
    }
    assert_eq!(last - t0, Duration::from_secs(32));
    assert_eq!(tx.poll_event(), Some(ServerEvent::Timeout));
}

#[test]
fn non_invite_server_resends_final_until_timer_j() {
    let t0 = Instant::now();
    let req = options();
    let mut tx = ServerTransaction::new(t0, req.clone(), dest(), Timers::default(), "cb");
    assert_eq!(tx.poll_transmit(), None, "no 100 for non-INVITE");
    tx.handle_request(t0, &req);
    assert_eq!(tx.poll_transmit(), None, "Trying absorbs");
    assert!(tx.send_response(t0, &resp(&req, 200)));
    let first = tx.poll_transmit().unwrap();
    tx.handle_request(t0 + Duration::from_secs(1), &req);
    assert_eq!(tx.poll_transmit(), Some(first));
    assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_secs(32)));
    tx.handle_timeout(t0 + Duration::from_secs(32));
    assert!(tx.is_terminated());
}

#[test]
fn keys_match_per_rfc_17() {
    let req = invite();
    let r = resp(&req, 200);
    assert_eq!(
        TransactionKey::for_response(&r),
        Some(TransactionKey::client("z9hG4bKabc", Method::Invite))
    );
    let mut ack = req.clone();
    ack.method = Method::Ack;
    ack.headers.set("CSeq", "1 ACK");
    assert_eq!(
        TransactionKey::for_request(&ack),
        TransactionKey::for_request(&req)
    );
    let mut cancel = req.clone();
    cancel.method = Method::Cancel;
    cancel.headers.set("CSeq", "1 CANCEL");
    assert_ne!(
        TransactionKey::for_request(&cancel),
        TransactionKey::for_request(&req)
    );
}

#[test]
fn reliable_transports_retransmit_nothing_and_wait_for_nothing() {
    // 17.1.1.2: no Timer A over TCP; Timer B still bounds the wait; Timer D is 0.
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, invite(), tcp(), Timers::default());
    let sent = run_client(&mut tx, t0, Duration::from_secs(40));
    assert_eq!(sent, vec![0], "one INVITE, no retransmission");
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Timeout)));

    let mut tx = ClientTransaction::new(t0, invite(), tcp(), Timers::default());
    while tx.poll_transmit().is_some() {}
    tx.handle_response(t0, resp(&invite(), 486));
    assert_eq!(tx.poll_timeout(), Some(t0), "Timer D is 0 over TCP");
    tx.handle_timeout(t0);
    assert!(tx.is_terminated());

    // Non-INVITE: no Timer E; Timer K is 0.
    let mut tx = ClientTransaction::new(t0, options(), tcp(), Timers::default());
    while tx.poll_transmit().is_some() {}
    assert_eq!(tx.poll_timeout(), Some(t0 + Timers::default().t64()));
    tx.handle_response(t0, resp(&options(), 200));
    tx.handle_timeout(t0);
    assert!(tx.is_terminated());

    // Server INVITE: no Timer G; Timer I is 0 after the ACK.
    let req = invite();
    let mut st = ServerTransaction::new(t0, req.clone(), tcp(), Timers::default(), "cb");
    while st.poll_transmit().is_some() {}
    assert!(st.send_response(t0, &resp(&req, 486)));
    while st.poll_transmit().is_some() {}
    assert_eq!(
        st.poll_timeout(),
        Some(t0 + Timers::default().t64()),
        "only Timer H"
    );
    let mut ack = req.clone();
    ack.method = Method::Ack;
    ack.headers.set("CSeq", "1 ACK");
    st.handle_request(t0, &ack);
    st.handle_timeout(t0);
    assert!(st.is_terminated());
}

#[test]
fn a_transport_error_ends_the_transaction_and_tells_the_tu() {
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, invite(), tcp(), Timers::default());
    tx.handle_transport_error("connection refused");
    assert!(tx.is_terminated());
    assert_eq!(
        tx.poll_event(),
        Some(ClientEvent::TransportError {
            cause: "connection refused".into()
        })
    );
    // Once answered, a later connection error changes nothing.
    let mut tx = ClientTransaction::new(t0, options(), tcp(), Timers::default());
    tx.handle_response(t0, resp(&options(), 200));
    while tx.poll_event().is_some() {}
    tx.handle_transport_error("reset");
    assert_eq!(tx.poll_event(), None);
}

#[test]
fn an_icmp_error_on_udp_stops_retransmissions_at_once() {
    // 17.1.4 over UDP: the INVITE went out, an ICMP port unreachable came back. The
    // transaction terminates now, not after Timer B, and sends nothing more.
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, invite(), dest(), Timers::default());
    assert!(tx.poll_transmit().is_some());
    tx.handle_transport_error("ICMP port unreachable");
    assert_eq!(tx.state(), ClientState::Terminated);
    assert_eq!(tx.poll_timeout(), None, "no Timer A, B or D left");
    tx.handle_timeout(t0 + Duration::from_secs(40));
    assert_eq!(tx.poll_transmit(), None);
    assert!(matches!(
        tx.poll_event(),
        Some(ClientEvent::TransportError { cause }) if cause == "ICMP port unreachable"
    ));
    assert_eq!(
        tx.poll_event(),
        None,
        "no Timeout after the transport error"
    );
    // A second error (another quoted retransmission) is not reported twice.
    tx.handle_transport_error("ICMP port unreachable");
    assert_eq!(tx.poll_event(), None);
}

#[test]
fn a_transport_error_while_proceeding_also_ends_an_invite() {
    // A 180 came, then the peer's host became unreachable (e.g. our CANCEL's ICMP): the
    // INVITE transaction is Terminated and the TU hears of it once.
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, invite(), dest(), Timers::default());
    tx.handle_response(t0, resp(&invite(), 180));
    assert!(matches!(tx.poll_event(), Some(ClientEvent::Provisional(_))));
    tx.handle_transport_error("ICMP host unreachable");
    assert!(tx.is_terminated());
    assert!(matches!(
        tx.poll_event(),
        Some(ClientEvent::TransportError { .. })
    ));
}

#[test]
fn a_transport_error_after_a_non_2xx_is_ignored() {
    // Completed (the 486 was ACKed): an ICMP error about the ACK changes nothing; Timer D
    // still runs.
    let t0 = Instant::now();
    let mut tx = ClientTransaction::new(t0, invite(), dest(), Timers::default());
    tx.handle_response(t0, resp(&invite(), 486));
    while tx.poll_event().is_some() {}
    tx.handle_transport_error("ICMP port unreachable");
    assert_eq!(tx.state(), ClientState::Completed);
    assert_eq!(tx.poll_event(), None);
    assert!(tx.poll_timeout().is_some());
}
