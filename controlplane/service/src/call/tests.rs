//! Unit tests of `call`.

use super::*;

#[test]
fn e_model_estimates() {
    let mut s = LegStats {
        rx_packets: 100,
        ..LegStats::default()
    };
    // Clean line: no loss reported yet, no jitter: R ≈ 92.2, MOS ≈ 4.4.
    let (loss, r, mos) = quality(&s).unwrap();
    assert_eq!(loss, None);
    assert!((r - 92.2).abs() < 0.1, "{r}");
    assert!((4.3..=4.5).contains(&mos), "{mos}");
    // 10% loss reported by the peer: Ie,eff = 95 × 10.16 / (10.16 + 25.1) ≈ 27.4, so
    // R ≈ 93.2 − 0.96 − 27.4 ≈ 64.9 and MOS ≈ 3.35.
    s.peer_reports = 3;
    s.peer_fraction_lost = 26;
    let (loss, r, mos) = quality(&s).unwrap();
    assert_eq!(loss, Some(10.16));
    assert!((r - 64.9).abs() < 0.1, "{r}");
    assert!((mos - 3.35).abs() < 0.02, "{mos}");
    // Nothing received: no estimate.
    assert!(quality(&LegStats::default()).is_none());
    let v = media_json(&s);
    assert_eq!(v["loss_pct"], 10.16);
    assert_eq!(v["rtcp_reports"], 3);
}
