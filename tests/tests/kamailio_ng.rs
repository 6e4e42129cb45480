//! Kamailio 5.6 (Debian's, with its `rtpengine` module and `rtpengine_manage()`) as the proxy
//! between two SIPp endpoints, driving a media node over rtpengine's ng protocol: each side's
//! SDP names the node, RTP flows both ways through it, the BYE produces a `delete`, and
//! `$rtpstat` reads the node's counters. The same test runs against `callbridge media` and
//! against rtpengine itself, so the node is held to what Kamailio expects of rtpengine.

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use callbridge_tests::kamailio::{Kamailio, MediaNode, NodeKind};
use callbridge_tests::{RtpPeer, Scenario, Sipp, SippOptions, Workdir, CALL_DEADLINE};

/// Polls `f` until it gives a value, or fails with `what` and the logs.
fn wait_for<T>(what: &str, logs: &dyn Fn() -> String, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(
            t0.elapsed() < CALL_DEADLINE,
            "{what} within {CALL_DEADLINE:?}\n{}",
            logs()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The node's live call-ids (ng `list`).
fn list_calls(ng: SocketAddr) -> Option<usize> {
    let sock = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).ok()?;
    sock.set_read_timeout(Some(Duration::from_millis(500)))
        .ok()?;
    let cookie = format!("list_{}", std::process::id());
    sock.send_to(format!("{cookie} d7:command4:liste").as_bytes(), ng)
        .ok()?;
    let mut buf = vec![0u8; 65_535];
    let (n, _) = sock.recv_from(&mut buf).ok()?;
    let body = buf[..n].strip_prefix(format!("{cookie} ").as_bytes())?;
    let v = ng::bencode::decode(body).ok()?;
    v.get("calls")
        .and_then(ng::bencode::Value::as_list)
        .map(<[_]>::len)
}

/// The first `N packets` figure in `$rtpstat`'s text.
fn packets_in(rtpstat: &str) -> Option<u64> {
    let words: Vec<&str> = rtpstat
        .split(|c: char| c.is_whitespace() || c == ',')
        .collect();
    words
        .windows(2)
        .find(|w| w[1].starts_with("packets"))
        .and_then(|w| w[0].parse().ok())
}

fn call_through_kamailio(kind: NodeKind) {
    let dir = Workdir::new(&format!("kamailio_ng_{kind:?}").to_lowercase());
    let mut node = MediaNode::start(&dir, kind);
    let mut alice = RtpPeer::bind((Ipv4Addr::LOCALHOST, 0).into()).with_payload_type(0);
    let mut bob = RtpPeer::bind((Ipv4Addr::LOCALHOST, 0).into()).with_payload_type(8);
    // The callee answers at once and hangs up 4 s after the ACK; its SDP names bob.
    let mut callee = Sipp::spawn(
        &dir,
        "callee",
        Scenario::AnswerByeExternalMedia,
        &SippOptions {
            ring_ms: 0,
            hangup_ms: 4000,
            rtp_port: Some(bob.addr().port()),
            ..SippOptions::default()
        },
    );
    let kam = Kamailio::start(&dir, node.ng(), callee.sip_addr());
    // The caller's offer names alice; it waits for the callee's BYE.
    let mut caller = Sipp::spawn(
        &dir,
        "caller",
        Scenario::UacWaitByeRecordRoute,
        &SippOptions {
            remote: Some(kam.addr()),
            rtp_port: Some(alice.addr().port()),
            ..SippOptions::default()
        },
    );
    let logs = || {
        format!(
            "--- kamailio ---\n{}\n--- node ---\n{}\n{}\n{}",
            kam.log(),
            node.log(),
            caller.report(),
            callee.report()
        )
    };

    // The offer the callee got names the node, not alice.
    let bob_sends_to = wait_for("the callee's INVITE with SDP", &logs, || {
        callee.received_sdp_audio("INVITE")
    });
    assert!(
        node.owns_port(bob_sends_to.port()) && bob_sends_to.port() != alice.addr().port(),
        "the callee was told to send to {bob_sends_to}, not to the node\n{}",
        logs()
    );
    // The answer the caller got names the node, not bob.
    let alice_sends_to = wait_for("the caller's 200 OK with SDP", &logs, || {
        caller.received_sdp_audio_with("SIP/2.0", "200 OK")
    });
    assert!(
        node.owns_port(alice_sends_to.port()) && alice_sends_to != bob_sends_to,
        "the caller was told to send to {alice_sends_to}, not to the node's other leg\n{}",
        logs()
    );

    // RTP both ways through the node.
    alice.start_sending(alice_sends_to, 0xA11CE, 150);
    bob.start_sending(bob_sends_to, 0xB0B, 150);
    wait_for("20 of alice's packets at bob", &logs, || {
        (bob.received().len() >= 20).then_some(())
    });
    wait_for("20 of bob's packets at alice", &logs, || {
        (alice.received().len() >= 20).then_some(())
    });
    for (who, peer, ssrc) in [("bob", &bob, 0xA11CEu32), ("alice", &alice, 0xB0B)] {
        let got = peer.received();
        assert!(
            got.iter().all(|r| r.data.len() >= 12
                && u32::from_be_bytes([r.data[8], r.data[9], r.data[10], r.data[11]]) == ssrc),
            "{who} received packets that are not the other side's stream"
        );
        assert!(
            got.iter().all(|r| r.from.port()
                == if who == "bob" {
                    bob_sends_to.port()
                } else {
                    alice_sends_to.port()
                }),
            "{who} received media from a port other than the node's leg it was told about"
        );
    }

    let logs = || {
        format!(
            "--- kamailio ---\n{}\n--- node ---\n{}",
            kam.log(),
            node.log()
        )
    };
    // The callee hangs up through Kamailio: both scenarios pass.
    callee.assert_passed(CALL_DEADLINE);
    caller.assert_passed(CALL_DEADLINE);
    alice.stop();
    bob.stop();

    // $rtpstat (an ng query before the delete) carried the node's counters.
    let stats = kam.rtpstats(CALL_DEADLINE);
    let first = stats
        .first()
        .unwrap_or_else(|| panic!("no $rtpstat logged\n{}", logs()));
    let packets = packets_in(first).unwrap_or(0);
    assert!(
        packets > 0,
        "$rtpstat = {first:?}: no RTP counted\n{}",
        logs()
    );
    eprintln!("{kind:?}: $rtpstat = {first}");

    // The BYE's delete removed the call.
    wait_for("the node to have no call after the BYE", &logs, || {
        (list_calls(node.ng()) == Some(0)).then_some(())
    });
    if kind == NodeKind::Callbridge {
        let status = node.stop().expect("callbridge media status");
        assert!(
            status.success(),
            "callbridge media exited with {status}\n{}",
            node.log()
        );
    }
}

#[test]
fn kamailio_drives_callbridge_media_over_ng() {
    call_through_kamailio(NodeKind::Callbridge);
}

#[test]
fn kamailio_drives_rtpengine_over_ng_the_reference() {
    call_through_kamailio(NodeKind::Rtpengine);
}
