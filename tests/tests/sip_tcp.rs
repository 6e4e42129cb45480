//! SIP over TCP with real peers: callbridge listens on `sip.listen = ["udp:…", "tcp:…"]`, the
//! trunk is `sip:…;transport=tcp` and the agent's contact `…;transport=tcp`, both SIPps run
//! `-t t1`. The whole call (announcement, bridge, BYE) crosses TCP connections callbridge
//! opened, and OPTIONS is answered 200 on both listeners.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use callbridge_tests::scenario::{expect_request, rings_then_hangs_up};
use callbridge_tests::{Scenario, SippOptions, TwoPartyCall};

fn options(via_transport: &str, me: SocketAddr, to: SocketAddr, call_id: &str) -> String {
    format!(
        "OPTIONS sip:{to} SIP/2.0\r\nVia: SIP/2.0/{via_transport} {me};branch=z9hG4bK{call_id}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{me}>;tag=p1\r\nTo: <sip:{to}>\r\nCall-ID: {call_id}\r\n\
CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
}

fn options_answered_on_udp_and_tcp(sip: SocketAddr) {
    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    udp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = udp.local_addr().unwrap();
    udp.send_to(options("UDP", me, sip, "opt-udp").as_bytes(), sip)
        .unwrap();
    let mut buf = [0u8; 4096];
    let (n, _) = udp
        .recv_from(&mut buf)
        .expect("no answer to OPTIONS over UDP");
    let r = String::from_utf8_lossy(&buf[..n]);
    assert!(r.starts_with("SIP/2.0 200"), "OPTIONS over UDP: {r}");

    let mut tcp = TcpStream::connect(sip).expect("callbridge's TCP listener");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let me = tcp.local_addr().unwrap();
    tcp.write_all(options("TCP", me, sip, "opt-tcp").as_bytes())
        .unwrap();
    let n = tcp.read(&mut buf).expect("no answer to OPTIONS over TCP");
    let r = String::from_utf8_lossy(&buf[..n]);
    assert!(r.starts_with("SIP/2.0 200"), "OPTIONS over TCP: {r}");
    assert!(r.contains("SIP/2.0/TCP"), "the Via is echoed: {r}");
}

#[test]
fn a_whole_call_over_tcp_to_the_trunk_and_the_agent() {
    let tcp = |o: SippOptions| SippOptions { tcp: true, ..o };
    let mut t = TwoPartyCall::builder("sip_tcp")
        .customer(Scenario::Answer, tcp(SippOptions::default()))
        .agent(Scenario::AnswerBye, tcp(rings_then_hangs_up(2000, 3000)))
        .start();

    options_answered_on_udp_and_tcp(t.cb.config().sip);
    t.expect_full_call_with_two_second_ring();
    t.expect_sipps_passed();
    for (who, sipp) in [("customer", &t.customer), ("agent", &t.agent)] {
        let log = sipp.messages();
        assert!(
            log.contains("INVITE sip:") && log.contains("Via: SIP/2.0/TCP"),
            "the {who}'s INVITE came over TCP:\n{log}"
        );
        assert!(
            !log.contains("Via: SIP/2.0/UDP"),
            "nothing reached the {who} over UDP:\n{log}"
        );
    }
    expect_request(
        &t.customer,
        "BYE",
        "the customer hung up on over TCP after the agent left",
    );
}
