//! The SIPp scenarios in `tests/sipp/` played against SIPp itself (no callbridge needed): each
//! UAS scenario must run to its end against a matching UAC, and the answering scenarios must
//! send PCMA RTP to the address of the offer. This keeps the scenarios honest while the binary
//! changes.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use callbridge_tests::{PortBlock, Scenario, Sipp, SippOptions, Workdir, SIPP_EXIT_DEADLINE};

fn uac(dir: &Workdir, scenario: Scenario, uas: &Sipp, opts: SippOptions) -> Sipp {
    Sipp::spawn(
        dir,
        "uac",
        scenario,
        &SippOptions {
            remote: Some(uas.sip_addr()),
            ..opts
        },
    )
}

/// Receives on `sock` until `want` RTP packets with payload type 8 came from `from_port`.
fn expect_pcma(sock: &UdpSocket, from_port: u16, want: usize) -> usize {
    sock.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = [0u8; 2048];
    let mut got = 0;
    while got < want && Instant::now() < deadline {
        if let Ok((n, src)) = sock.recv_from(&mut buf) {
            // RTP version 2, payload type 8 (PCMA), from SIPp's media port.
            if n >= 12 && buf[0] >> 6 == 2 && buf[1] & 0x7f == 8 && src.port() == from_port {
                got += 1;
            }
        }
    }
    got
}

#[test]
fn answer_bye_plays_pcma_to_the_offer_and_hangs_up() {
    let dir = Workdir::new("sipp_answer_bye");
    let uas = Sipp::spawn(
        &dir,
        "uas",
        Scenario::AnswerBye,
        &SippOptions {
            ring_ms: 200,
            hangup_ms: 2000,
            ..SippOptions::default()
        },
    );
    let rtp = PortBlock::reserve(2);
    let sock = UdpSocket::bind(rtp.addr(0)).unwrap();
    let mut uas = uas;
    let mut uac = uac(
        &dir,
        Scenario::SelftestUacWaitBye,
        &uas,
        SippOptions {
            rtp_port: Some(rtp.port(0)),
            ..SippOptions::default()
        },
    );
    let got = expect_pcma(&sock, uas.media_port(), 20);
    assert_eq!(got, 20, "PCMA RTP from the UAS media port");
    uac.assert_passed(SIPP_EXIT_DEADLINE);
    uas.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(uac.received_request("BYE"), "the UAS hung up");
}

#[test]
fn answer_waits_for_bye() {
    let dir = Workdir::new("sipp_answer");
    let mut uas = Sipp::spawn(
        &dir,
        "uas",
        Scenario::Answer,
        &SippOptions {
            ring_ms: 500,
            ..SippOptions::default()
        },
    );
    let mut uac = uac(
        &dir,
        Scenario::BuiltinUac,
        &uas,
        SippOptions {
            pause_ms: 1000,
            ..SippOptions::default()
        },
    );
    uac.assert_passed(SIPP_EXIT_DEADLINE);
    uas.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(uas.received_request("BYE"));
}

#[test]
fn hangup_early_sends_bye() {
    let dir = Workdir::new("sipp_hangup_early");
    let mut uas = Sipp::uas(&dir, "uas", Scenario::HangupEarly);
    let mut uac = uac(
        &dir,
        Scenario::SelftestUacWaitBye,
        &uas,
        SippOptions::default(),
    );
    uac.assert_passed(SIPP_EXIT_DEADLINE);
    uas.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(uac.received_request("BYE"));
}

#[test]
fn noanswer_requires_cancel() {
    let dir = Workdir::new("sipp_noanswer");
    let mut uas = Sipp::uas(&dir, "uas", Scenario::NoAnswer);
    let mut uac = uac(
        &dir,
        Scenario::SelftestUacCancel,
        &uas,
        SippOptions {
            pause_ms: 500,
            ..SippOptions::default()
        },
    );
    uac.assert_passed(SIPP_EXIT_DEADLINE);
    uas.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(uas.received_request("CANCEL"));
    assert!(uac.messages().contains("SIP/2.0 487 Request Terminated"));
}

#[test]
fn busy_answers_486() {
    let dir = Workdir::new("sipp_busy");
    let mut uas = Sipp::uas(&dir, "uas", Scenario::Busy);
    let mut uac = uac(
        &dir,
        Scenario::SelftestUacCancel,
        &uas,
        SippOptions::default(),
    );
    uac.assert_passed(SIPP_EXIT_DEADLINE);
    uas.assert_passed(SIPP_EXIT_DEADLINE);
    assert!(uac.messages().contains("SIP/2.0 486 Busy Here"));
    assert!(uas.received_request("ACK"));
}

#[test]
fn noanswer_fails_without_cancel() {
    // The negative case: a UAC that answers nothing and sends no CANCEL leaves the UAS waiting;
    // killing it must not count as a pass (exit status is not success).
    let dir = Workdir::new("sipp_noanswer_negative");
    let mut uas = Sipp::uas(&dir, "uas", Scenario::NoAnswer);
    let mut uac = uac(
        &dir,
        Scenario::SelftestUacWaitBye,
        &uas,
        SippOptions::default(),
    );
    // The UAS got the INVITE and rang; it is now waiting for a CANCEL that never comes.
    let start = Instant::now();
    while !uas.messages().contains("SIP/2.0 180 Ringing") {
        assert!(start.elapsed() < Duration::from_secs(20), "UAS never rang");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(uas.try_wait().is_none(), "UAS must still wait for CANCEL");
    uas.kill();
    uac.kill();
    assert!(!uas.try_wait().is_some_and(|s| s.success()));
}
