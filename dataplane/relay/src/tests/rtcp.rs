//! RTCP: relayed to the peer's RTCP port, source-checked, and the peer's reception reports
//! read into the leg's counters.

use super::*;

#[test]
fn rtcp_relays_to_peer_rtcp_port() {
    let mut p = Pair::bridged();
    let rr = rtcp_rr(0xc0c0);
    // From the customer's IP, any port (NAT-friendly choice).
    let (v, out) = p.recv(addr(1, 12345), 20001, rr.clone());
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20003,
            to: addr(2, 50001)
        }
    );
    assert_eq!(out, rr);
    let (v, _) = p.recv(addr(2, 50001), 20003, rtcp_rr(0xa9e7));
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20001,
            to: addr(1, 40001)
        }
    );
    // Another IP is foreign.
    let (v, _) = p.recv(stranger(), 20001, rr.clone());
    assert_eq!(v, Verdict::Drop(DropReason::SrcMismatch));
    // Malformed compound (length says two words, one present).
    let (v, _) = p.recv(customer(), 20001, vec![0x80, 201, 0, 2, 0, 0, 0, 1]);
    assert_eq!(v, Verdict::Drop(DropReason::Malformed));
    // RTCP multiplexed on the RTP port goes to the peer's RTP port.
    let (v, _) = p.recv(customer(), 20000, rr);
    assert_eq!(
        v,
        Verdict::Forward {
            from_addr: 0,
            from_port: 20002,
            to: agent()
        }
    );
    let a = p.relay.leg_stats(A).unwrap();
    let b = p.relay.leg_stats(B).unwrap();
    assert_eq!(
        (a.rx_rtcp, a.rx_packets, b.tx_rtcp, a.tx_rtcp),
        (4, 0, 2, 1)
    );
}

#[test]
fn peer_reception_reports_show_in_stats() {
    let mut p = Pair::bridged();
    assert_eq!(p.relay.leg_stats(A).unwrap().peer_reports, 0);
    // The customer's RR about our stream: 10% (26/256) lost, 7 cumulative.
    let mut rr = vec![0x81, 201, 0, 7];
    rr.extend_from_slice(&0xc0c0_u32.to_be_bytes());
    rr.extend_from_slice(&0x1234_5678_u32.to_be_bytes());
    rr.extend_from_slice(&[26, 0, 0, 7]);
    rr.extend_from_slice(&[0; 16]);
    let (v, _) = p.recv(addr(1, 12345), 20001, rr);
    assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
    let st = p.relay.leg_stats(A).unwrap();
    assert_eq!(
        (
            st.peer_reports,
            st.peer_fraction_lost,
            st.peer_cumulative_lost
        ),
        (1, 26, 7)
    );
    // An RR without blocks changes nothing but the RTCP count.
    p.recv(addr(1, 12345), 20001, rtcp_rr(0xc0c0));
    assert_eq!(p.relay.leg_stats(A).unwrap().peer_reports, 1);
}
