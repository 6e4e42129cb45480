//! Announcements: pacing by deadline with exact counts and RTP continuity, loops and ends,
//! a second play continuing the stream, resync instead of bursting after a stall, waiting
//! for a remote, the switch to the bridge (marker bit once), independent legs, and following
//! a learned remote.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use dp_api::{Clip, Codec, Command, DropReason, Event, Latch, LegId};
use wire::rtp::RtpPacket;

use super::{addr, agent, clip, customer, rtp, set_remote, spec, Pair, A, B, MS};
use crate::Verdict;

fn rtp_of(bytes: &[u8]) -> RtpPacket<&[u8]> {
    RtpPacket::new_checked(bytes).unwrap()
}

#[test]
fn announcement_pacing_exact_count_and_continuity() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::Play {
        leg: A,
        clip: Arc::new(Clip::builtin_prompt()),
        looping: true,
    });
    p.run_until(Duration::from_millis(1000));
    // Deadlines at 0, 20, …, 1000 ms inclusive.
    assert_eq!(p.sent.len(), 51);
    let first = rtp_of(&p.sent[0].2);
    assert!(first.marker());
    for (k, (at, t, bytes)) in p.sent.iter().enumerate() {
        assert_eq!(*at, p.t0 + 20 * MS * k as u32, "sent on its deadline");
        assert_eq!((t.from_port, t.to, t.len), (20000, customer(), 172));
        let r = rtp_of(bytes);
        assert_eq!(
            (r.version(), r.payload_type(), r.ssrc()),
            (2, 0, first.ssrc())
        );
        assert_eq!(r.marker(), k == 0);
        assert_eq!(
            r.sequence_number(),
            first.sequence_number().wrapping_add(k as u16)
        );
        assert_eq!(
            r.timestamp(),
            first.timestamp().wrapping_add(160 * k as u32)
        );
        assert_eq!(
            r.payload(),
            &Clip::builtin_prompt().pcmu[k * 160..(k + 1) * 160]
        );
    }
    let st = p.relay.leg_stats(A).unwrap();
    assert_eq!(
        (st.announcement_packets, st.tx_packets, st.tx_bytes),
        (51, 51, 51 * 172)
    );
    assert_eq!(p.relay.stats().announcement_packets, 51);
    assert_eq!(p.relay.poll_timeout(), Some(p.t0 + 1020 * MS));
    // PCMA legs get A-law and payload type 8.
    p.cmd(Command::SetRemote {
        leg: A,
        remote: customer(),
        codec: Codec::Pcma,
    });
    p.sent.clear();
    p.run_until(Duration::from_millis(1020));
    let r = rtp_of(&p.sent[0].2);
    assert_eq!(r.payload_type(), 8);
    assert_eq!(
        r.payload(),
        &Clip::builtin_prompt().pcma[51 * 160..52 * 160]
    );
}

#[test]
fn announcement_loops_and_finishes() {
    let c = clip(3);
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::Play {
        leg: A,
        clip: c.clone(),
        looping: true,
    });
    p.run_until(Duration::from_millis(120));
    assert_eq!(p.sent.len(), 7);
    let first = rtp_of(&p.sent[0].2);
    for (k, (_, _, b)) in p.sent.iter().enumerate() {
        let r = rtp_of(b);
        let f = k % 3;
        assert_eq!(
            r.payload(),
            &c.pcmu[f * 160..(f + 1) * 160],
            "packet {k} plays frame {f}"
        );
        assert_eq!(
            r.sequence_number(),
            first.sequence_number().wrapping_add(k as u16)
        );
        assert_eq!(
            r.timestamp(),
            first.timestamp().wrapping_add(160 * k as u32)
        );
        assert_eq!(r.marker(), k == 0, "no marker at the loop point");
    }
    assert!(p
        .events()
        .iter()
        .all(|e| !matches!(e, Event::PlayDone { .. })));

    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.events();
    p.cmd(Command::Play {
        leg: A,
        clip: c,
        looping: false,
    });
    p.run_until(Duration::from_secs(1));
    assert_eq!(p.sent.len(), 3);
    assert_eq!(p.events(), vec![Event::PlayDone { leg: A }]);
    assert_eq!(p.relay.poll_timeout(), None);
    // An empty clip is done at once.
    p.cmd(Command::Play {
        leg: A,
        clip: Arc::new(Clip::from_linear("empty", &[])),
        looping: true,
    });
    assert_eq!(p.events(), vec![Event::PlayDone { leg: A }]);
}

#[test]
fn second_play_continues_the_stream() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::Play {
        leg: A,
        clip: clip(2),
        looping: false,
    });
    p.run_until(Duration::from_millis(100));
    // Pause of 100 ms after the last packet (sent at 20 ms), then play again.
    p.jump_to(Duration::from_millis(120));
    p.cmd(Command::Play {
        leg: A,
        clip: clip(1),
        looping: false,
    });
    p.run_until(Duration::from_millis(200));
    assert_eq!(p.sent.len(), 3);
    let (a, b, c) = (
        rtp_of(&p.sent[0].2),
        rtp_of(&p.sent[1].2),
        rtp_of(&p.sent[2].2),
    );
    assert_eq!(c.ssrc(), a.ssrc());
    assert!(c.marker());
    assert_eq!(c.sequence_number(), b.sequence_number().wrapping_add(1));
    assert_eq!(
        c.timestamp(),
        b.timestamp().wrapping_add(100 * 8),
        "timestamp follows the wall clock"
    );
}

#[test]
fn announcement_resyncs_instead_of_bursting() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::Play {
        leg: A,
        clip: Arc::new(Clip::builtin_prompt()),
        looping: true,
    });
    p.run_until(Duration::ZERO);
    assert_eq!(p.sent.len(), 1);
    // 40 ms late (within the 60 ms slack): catch up, two packets back to back.
    p.jump_to(Duration::from_millis(60));
    assert_eq!(p.sent.len(), 4, "deadlines 20, 40 and 60 are all due");
    // Stalled for 500 ms: one packet, not 25.
    p.jump_to(Duration::from_millis(560));
    assert_eq!(p.sent.len(), 5);
    let (prev, late) = (rtp_of(&p.sent[3].2), rtp_of(&p.sent[4].2));
    assert_eq!(
        late.sequence_number(),
        prev.sequence_number().wrapping_add(1),
        "no gap in seq"
    );
    assert_eq!(
        late.timestamp(),
        prev.timestamp().wrapping_add(160 + 480 / 20 * 160),
        "ts follows time"
    );
    assert!(!late.marker());
    assert_eq!(p.relay.stats().announcement_resyncs, 1);
    assert_eq!(
        p.relay.poll_timeout(),
        Some(p.t0 + 580 * MS),
        "paced from now on"
    );
    p.run_until(Duration::from_millis(640));
    assert_eq!(p.sent.len(), 9, "580, 600, 620, 640");
}

#[test]
fn announcement_waits_for_a_remote() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, None)));
    p.cmd(Command::Play {
        leg: A,
        clip: clip(10),
        looping: true,
    });
    p.run_until(Duration::from_millis(500));
    assert!(p.sent.is_empty());
    assert_eq!(p.relay.poll_timeout(), None);
    p.cmd(Command::SetRemote {
        leg: A,
        remote: customer(),
        codec: Codec::Pcmu,
    });
    p.run_until(Duration::from_millis(540));
    assert_eq!(p.sent.len(), 3);
    assert_eq!(p.sent[0].0, p.t0 + 500 * MS);
    assert!(rtp_of(&p.sent[0].2).marker());
}

#[test]
fn switch_to_bridge_sets_marker_once() {
    let mut p = Pair::new();
    p.cmd(Command::AddLeg(spec(A, Some(customer()))));
    p.cmd(Command::Play {
        leg: A,
        clip: Arc::new(Clip::builtin_prompt()),
        looping: true,
    });
    p.run_until(Duration::from_millis(100));
    assert_eq!(p.sent.len(), 6);
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    // The agent answered: switch.
    p.cmd(Command::Bridge { a: A, b: B });
    p.run_until(Duration::from_millis(200));
    assert_eq!(p.sent.len(), 6, "the announcement stopped");
    assert_eq!(p.relay.poll_timeout(), None);
    let (v, out) = p.recv(agent(), 20002, rtp(500, 9000, 0xa9e7, false));
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20000,
            to: customer()
        }
    );
    let r = rtp_of(&out);
    assert!(
        r.marker(),
        "first packet after the switch carries the marker"
    );
    assert_eq!(
        (r.sequence_number(), r.timestamp(), r.ssrc()),
        (500, 9000, 0xa9e7),
        "otherwise untouched"
    );
    let (_, out) = p.recv(agent(), 20002, rtp(501, 9160, 0xa9e7, false));
    assert!(!rtp_of(&out).marker());
    // Toward the agent (who never heard an announcement) nothing is marked.
    let (_, out) = p.recv(customer(), 20000, rtp(1, 0, 0xc0c0, false));
    assert!(!rtp_of(&out).marker());
    assert!(
        p.events()
            .iter()
            .all(|e| !matches!(e, Event::PlayDone { .. })),
        "a switch is not PlayDone"
    );
}

#[test]
fn play_on_a_bridged_leg_takes_over_then_stop_marks() {
    let mut p = Pair::bridged();
    p.cmd(Command::Play {
        leg: A,
        clip: clip(5),
        looping: true,
    });
    p.run_until(Duration::ZERO);
    assert_eq!(p.sent.len(), 1);
    let (v, _) = p.recv(agent(), 20002, rtp(1, 0, 2, false));
    assert_eq!(
        v,
        Verdict::Drop(DropReason::NotBridged),
        "A hears the announcement"
    );
    p.cmd(Command::StopPlay { leg: A });
    let (_, out) = p.recv(agent(), 20002, rtp(2, 160, 2, false));
    assert!(rtp_of(&out).marker());
}

#[test]
fn many_legs_announce_independently() {
    let mut p = Pair::new();
    let c = clip(50);
    for k in 0..6u16 {
        let id = LegId::new(20000 + 2 * k, 1);
        p.cmd(Command::AddLeg(spec(id, Some(addr(k as u8 + 1, 40000)))));
        p.now = p.t0 + MS * u32::from(k); // staggered starts
        p.cmd(Command::Play {
            leg: id,
            clip: c.clone(),
            looping: false,
        });
    }
    p.run_until(Duration::from_millis(205));
    // Leg k started at k ms: deadlines k, k+20, …, ≤ 205.
    for k in 0..6u16 {
        let n = p
            .sent
            .iter()
            .filter(|(_, t, _)| t.from_port == 20000 + 2 * k)
            .count();
        assert_eq!(n, 11, "leg {k}");
    }
    let ssrcs: std::collections::HashSet<u32> =
        p.sent.iter().map(|(_, _, b)| rtp_of(b).ssrc()).collect();
    assert_eq!(ssrcs.len(), 6, "every leg has its own SSRC");
}

#[test]
fn announcement_follows_the_learned_remote() {
    let mut p = Pair::new();
    let mut s = spec(A, None);
    s.latch = Latch::Nat {
        window: Duration::from_secs(2),
    };
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::Play {
        leg: A,
        clip: clip(10),
        looping: true,
    });
    p.run_until(Duration::from_millis(100));
    // Nothing latches before the remote is signalled, so nothing is sent yet.
    let natted = addr(7, 61000);
    p.recv(natted, 20000, rtp(1, 0, 1, false));
    p.recv(natted, 20000, rtp(2, 160, 1, false));
    p.run_until(Duration::from_millis(120));
    assert!(p.sent.is_empty(), "no remote yet");
    set_remote(&mut p, A, customer());
    p.run_until(Duration::from_millis(140));
    assert_eq!(p.sent.len(), 2, "{:?}", p.sent);
    assert_eq!(p.sent[0].0, p.t0 + 120 * MS);
    // The NAT's address passes probation: the announcement follows it.
    p.recv(natted, 20000, rtp(3, 320, 1, false));
    p.recv(natted, 20000, rtp(4, 480, 1, false));
    p.run_until(Duration::from_millis(180));
    let to: Vec<SocketAddr> = p.sent.iter().map(|(_, t, _)| t.to).collect();
    assert_eq!(to, [customer(), customer(), natted, natted]);
}
