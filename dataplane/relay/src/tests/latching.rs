//! Latching that resists RTP bleed (issue 8): a third party spraying a leg's port neither
//! takes its stream nor gets media relayed from it, before the remote is signalled, after
//! it, inside or outside a NAT leg's window; an established latch moves only by SetRemote;
//! RTCP follows the same remote; every refused packet is counted.

use std::net::SocketAddr;
use std::time::Duration;

use dp_api::{Command, DropReason, Event, Latch, SrcMismatch};

use super::{addr, agent, customer, rtcp_rr, rtp, set_remote, spec, stranger, Pair, A, B, MS};
use crate::Verdict;

const NAT_WINDOW: Duration = Duration::from_secs(2);
const NAT: Latch = Latch::Nat { window: NAT_WINDOW };

/// Where the customer's NAT really sends from: another IP than its SDP said.
fn natted() -> SocketAddr {
    addr(7, 61000)
}

/// Another port of the customer's signalled IP.
fn other_port() -> SocketAddr {
    addr(1, 40002)
}

/// Leg A (customer) with `latch` and `remote`, bridged to leg B (agent at its signalled
/// address, latch off); events drained.
fn bridged(latch: Latch, remote: Option<SocketAddr>) -> Pair {
    let mut p = Pair::new();
    let mut s = spec(A, remote);
    s.latch = latch;
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    p.events();
    p
}

/// Forwarded from leg B's port to the agent.
fn to_agent() -> Verdict {
    Verdict::Forward {
        from_addr: 0,
        from_port: 20002,
        to: agent(),
    }
}

/// Where RTP relayed toward leg A goes now (the agent sends one packet).
fn a_remote(p: &mut Pair) -> Option<SocketAddr> {
    match p.recv(agent(), 20002, rtp(1, 0, 0xa9e7, false)).0 {
        Verdict::Forward { to, .. } => Some(to),
        Verdict::Drop(_) => None,
    }
}

/// `n` packets of one well-formed stream (SSRC `ssrc`, sequence numbers from `seq`) from
/// `src` to leg A's RTP port, each `step` apart; their verdicts.
fn stream(
    p: &mut Pair,
    src: SocketAddr,
    ssrc: u32,
    seq: u16,
    n: u16,
    step: Duration,
) -> Vec<Verdict> {
    (0..n)
        .map(|k| {
            let s = seq.wrapping_add(k);
            let v = p
                .recv(src, 20000, rtp(s, 160 * u32::from(s), ssrc, false))
                .0;
            p.now += step;
            v
        })
        .collect()
}

fn refused(vs: &[Verdict]) -> bool {
    vs.iter()
        .all(|v| *v == Verdict::Drop(DropReason::SrcMismatch))
}

fn src_mismatch_drops(p: &Pair) -> (u64, u64) {
    (
        p.relay
            .leg_stats(A)
            .unwrap()
            .drops
            .get(DropReason::SrcMismatch),
        p.relay.stats().drops.get(DropReason::SrcMismatch),
    )
}

#[test]
fn spray_before_the_remote_is_signalled_latches_nothing() {
    for latch in [Latch::Off, Latch::Signalled, NAT] {
        let mut p = bridged(latch, None);
        // A well-formed stream from a stranger, and from where the customer will be.
        let vs = stream(&mut p, stranger(), 0xbad, 1, 10, 20 * MS);
        assert!(refused(&vs), "{latch:?}: {vs:?}");
        let vs = stream(&mut p, customer(), 0xc0c0, 1, 3, 20 * MS);
        assert!(
            refused(&vs),
            "{latch:?}: no remote, nothing accepted: {vs:?}"
        );
        assert!(p.events().is_empty(), "{latch:?}: nothing learned");
        assert_eq!(
            a_remote(&mut p),
            None,
            "{latch:?}: nothing relayed toward A"
        );
        assert_eq!(
            src_mismatch_drops(&p),
            (13, 13),
            "{latch:?}: every refusal counted"
        );
        // Signalling decides; once the customer's first packet established the latch, the
        // stranger cannot take the stream (a NAT leg's window is the subject of other tests).
        set_remote(&mut p, A, customer());
        assert_eq!(
            p.recv(customer(), 20000, rtp(4, 640, 0xc0c0, false)).0,
            to_agent()
        );
        let vs = stream(&mut p, stranger(), 0xbad, 11, 10, 20 * MS);
        assert!(refused(&vs), "{latch:?}: {vs:?}");
        assert!(p.events().is_empty(), "{latch:?}");
        assert_eq!(a_remote(&mut p), Some(customer()), "{latch:?}");
        assert_eq!(src_mismatch_drops(&p), (23, 23), "{latch:?}");
    }
}

#[test]
fn signalled_learns_only_the_signalled_ip() {
    let mut p = bridged(Latch::Signalled, Some(customer()));
    // A stranger with a perfect stream, inside any window: refused.
    let vs = stream(&mut p, stranger(), 0xbad, 1, 20, 20 * MS);
    assert!(refused(&vs), "{vs:?}");
    let vs = stream(&mut p, natted(), 0xc0c0, 1, 5, 20 * MS);
    assert!(
        refused(&vs),
        "another IP is not learned without Latch::Nat: {vs:?}"
    );
    assert_eq!(a_remote(&mut p), Some(customer()));
    // Another port of the signalled IP: learned at once.
    assert_eq!(
        p.recv(other_port(), 20000, rtp(6, 960, 0xc0c0, false)).0,
        to_agent()
    );
    assert_eq!(
        p.events(),
        vec![Event::RemoteLearned {
            leg: A,
            remote: other_port()
        }]
    );
    assert_eq!(a_remote(&mut p), Some(other_port()));
    assert_eq!(src_mismatch_drops(&p), (25, 25));
}

#[test]
fn off_accepts_only_the_signalled_address() {
    let mut p = bridged(Latch::Off, Some(customer()));
    let vs = stream(&mut p, other_port(), 0xc0c0, 1, 5, 20 * MS);
    assert!(refused(&vs), "{vs:?}");
    assert_eq!(
        p.recv(customer(), 20000, rtp(6, 960, 0xc0c0, false)).0,
        to_agent()
    );
    assert!(p.events().is_empty());
    assert_eq!(a_remote(&mut p), Some(customer()));
}

#[test]
fn nat_learns_a_consistent_source_within_the_window() {
    let mut p = bridged(NAT, Some(customer()));
    p.now += 500 * MS;
    // The first packet is on probation (refused), the second in sequence latches.
    let vs = stream(&mut p, natted(), 0xc0c0, 100, 3, 20 * MS);
    assert_eq!(
        vs,
        [
            Verdict::Drop(DropReason::SrcMismatch),
            to_agent(),
            to_agent()
        ]
    );
    assert_eq!(
        p.events(),
        vec![Event::RemoteLearned {
            leg: A,
            remote: natted()
        }]
    );
    assert_eq!(a_remote(&mut p), Some(natted()));
    assert_eq!(src_mismatch_drops(&p), (1, 1));
}

#[test]
fn nat_window_expires_and_signalling_reopens_it() {
    let mut p = bridged(NAT, Some(customer()));
    p.now = p.t0 + NAT_WINDOW;
    let vs = stream(&mut p, natted(), 0xc0c0, 1, 10, 20 * MS);
    assert!(refused(&vs), "window closed: {vs:?}");
    assert!(p.events().is_empty());
    // The signalled IP is still learnable after the window (it is signalled).
    assert_eq!(
        p.recv(other_port(), 20000, rtp(1, 0, 0xc0c0, false)).0,
        to_agent()
    );
    assert_eq!(p.events().len(), 1);
    // A re-INVITE re-signals: the window opens again from now.
    set_remote(&mut p, A, customer());
    let vs = stream(&mut p, natted(), 0xc0c0, 20, 2, 20 * MS);
    assert_eq!(vs, [Verdict::Drop(DropReason::SrcMismatch), to_agent()]);
    assert_eq!(a_remote(&mut p), Some(natted()));
}

#[test]
fn nat_probation_wants_one_ssrc_and_consecutive_sequence_numbers() {
    let mut p = bridged(NAT, Some(customer()));
    // Sequence numbers that jump, repeat or go back.
    for seqs in [[1u16, 3, 5, 7], [9, 9, 9, 9], [20, 19, 18, 17]] {
        for s in seqs {
            let v = p.recv(natted(), 20000, rtp(s, 0, 0xbad, false)).0;
            assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch), "{seqs:?}");
        }
    }
    // Consecutive numbers but a new SSRC each time.
    for k in 0..4u16 {
        let v = p
            .recv(natted(), 20000, rtp(30 + k, 0, 0xbad + u32::from(k), false))
            .0;
        assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    }
    // Two sprayers taking turns: neither gets two in a row.
    for k in 0..4u16 {
        for src in [natted(), stranger()] {
            let v = p.recv(src, 20000, rtp(40 + k, 0, 0xbad, false)).0;
            assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch), "{src}");
        }
    }
    assert!(p.events().is_empty());
    assert_eq!(a_remote(&mut p), Some(customer()));
    assert_eq!(src_mismatch_drops(&p), (24, 24));
    // The sequence wraps: 65535 then 0 is consecutive.
    let vs = stream(&mut p, natted(), 0xc0c0, u16::MAX, 2, 20 * MS);
    assert_eq!(vs, [Verdict::Drop(DropReason::SrcMismatch), to_agent()]);
}

#[test]
fn an_established_latch_never_moves_without_signalling() {
    for latch in [Latch::Off, Latch::Signalled, NAT] {
        // Established by the signalled address itself.
        let mut p = bridged(latch, Some(customer()));
        assert_eq!(
            p.recv(customer(), 20000, rtp(1, 0, 0xc0c0, false)).0,
            to_agent()
        );
        for src in [other_port(), natted(), stranger()] {
            let vs = stream(&mut p, src, 0xbad, 1, 5, 20 * MS);
            assert!(refused(&vs), "{latch:?} {src}: {vs:?}");
        }
        assert!(p.events().is_empty(), "{latch:?}");
        assert_eq!(a_remote(&mut p), Some(customer()), "{latch:?}");
        assert_eq!(src_mismatch_drops(&p), (15, 15), "{latch:?}");
        // Re-signalled: learning starts again.
        set_remote(&mut p, A, customer());
        let v = p.recv(other_port(), 20000, rtp(2, 160, 0xc0c0, false)).0;
        let moved = latch != Latch::Off;
        assert_eq!(v == to_agent(), moved, "{latch:?}");
        assert_eq!(
            a_remote(&mut p),
            Some(if moved { other_port() } else { customer() }),
            "{latch:?}"
        );
    }
    // Established by learning: the learned address is kept, the signalled one refused.
    let mut p = bridged(NAT, Some(customer()));
    stream(&mut p, natted(), 0xc0c0, 1, 2, 20 * MS);
    assert_eq!(p.events().len(), 1);
    for src in [customer(), other_port(), addr(8, 61000)] {
        let vs = stream(&mut p, src, 0xc0c0, 3, 5, 20 * MS);
        assert!(refused(&vs), "{src}: {vs:?}");
    }
    assert!(p.events().is_empty());
    assert_eq!(a_remote(&mut p), Some(natted()));
}

#[test]
fn foreign_sources_are_reported_once_and_never_latch_under_report_and_ignore() {
    let mut p = Pair::new();
    let mut s = spec(A, Some(customer()));
    s.latch = NAT;
    s.src_mismatch = SrcMismatch::Report;
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    p.events();
    p.recv(customer(), 20000, rtp(1, 0, 0xc0c0, false));
    stream(&mut p, stranger(), 0xbad, 1, 5, 20 * MS);
    assert_eq!(
        p.events(),
        vec![Event::SrcMismatch {
            leg: A,
            from: stranger()
        }]
    );
    // Ignore: foreign packets are relayed, but the latch stays where signalling put it.
    let mut p = Pair::new();
    let mut s = spec(A, Some(customer()));
    s.latch = NAT;
    s.src_mismatch = SrcMismatch::Ignore;
    p.cmd(Command::AddLeg(s));
    p.cmd(Command::AddLeg(spec(B, Some(agent()))));
    p.cmd(Command::Bridge { a: A, b: B });
    p.events();
    p.recv(customer(), 20000, rtp(1, 0, 0xc0c0, false));
    let vs = stream(&mut p, stranger(), 0xbad, 1, 5, 20 * MS);
    assert!(vs.iter().all(|v| *v == to_agent()), "{vs:?}");
    assert!(p.events().is_empty());
    assert_eq!(a_remote(&mut p), Some(customer()));
}

#[test]
fn rtcp_follows_the_rtp_remote_and_never_latches() {
    let rtcp_to_agent = Verdict::Forward {
        from_addr: 0,
        from_port: 20003,
        to: SocketAddr::new(agent().ip(), agent().port() + 1),
    };
    let refused_rtcp = Verdict::Drop(DropReason::SrcMismatch);
    // No remote yet: refused, on the odd port and multiplexed.
    let mut p = bridged(NAT, None);
    assert_eq!(p.recv(customer(), 20001, rtcp_rr(0xc0c0)).0, refused_rtcp);
    assert_eq!(p.recv(customer(), 20000, rtcp_rr(0xc0c0)).0, refused_rtcp);
    set_remote(&mut p, A, customer());
    // From the signalled IP (any port): accepted; from a stranger or the NAT: refused.
    assert_eq!(
        p.recv(other_port(), 20001, rtcp_rr(0xc0c0)).0,
        rtcp_to_agent
    );
    for src in [stranger(), natted()] {
        assert_eq!(p.recv(src, 20001, rtcp_rr(0xbad)).0, refused_rtcp, "{src}");
        assert_eq!(p.recv(src, 20000, rtcp_rr(0xbad)).0, refused_rtcp, "{src}");
    }
    // RTCP from the NAT twice does not latch (and is no probation for RTP).
    assert!(p.events().is_empty());
    assert_eq!(a_remote(&mut p), Some(customer()));
    // Once RTP latched onto the NAT, its RTCP is accepted, the signalled IP's refused.
    stream(&mut p, natted(), 0xc0c0, 1, 2, 20 * MS);
    assert_eq!(
        p.recv(addr(7, 61001), 20001, rtcp_rr(0xc0c0)).0,
        rtcp_to_agent
    );
    assert_eq!(p.recv(customer(), 20001, rtcp_rr(0xc0c0)).0, refused_rtcp);
    let st = p.relay.leg_stats(A).unwrap();
    assert_eq!(st.drops.get(DropReason::SrcMismatch), 2 + 4 + 1 + 1);
}
