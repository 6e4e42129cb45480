//! `query`'s `quality` keys from a leg's counters, in the units rtpengine reports: MOS × 10,
//! jitter in milliseconds, loss in percent.
//!
//! The estimate itself is the one the control plane stores with every call
//! ([`dp_api::LegStats::quality`]: the ITU-T G.107 E-model simplified for G.711, from the
//! largest jitter seen and the loss the party reports in its RTCP receiver reports), so a call
//! reads the same through ng as in callbridge's own records.

use dp_api::LegStats;

/// The estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    /// MOS × 10 (10..=45); 0 when the leg received no RTP (nothing to judge).
    pub mos_x10: u8,
    /// Jitter in milliseconds (the current RFC 3550 estimate).
    pub jitter_ms: u32,
    /// Loss in percent (0..=100), from the party's receiver reports (0 without any).
    pub loss_percent: u8,
}

/// Estimates a leg's quality.
#[must_use]
pub fn estimate(s: &LegStats) -> Quality {
    let (loss, mos) = s
        .quality()
        .map_or((0.0, 0.0), |(loss, _r, mos)| (loss.unwrap_or(0.0), mos));
    Quality {
        mos_x10: (mos * 10.0).round().clamp(0.0, 45.0) as u8,
        jitter_ms: s.jitter_us / 1000,
        loss_percent: loss.round().clamp(0.0, 100.0) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_leg_scores_high_and_loss_lowers_it() {
        assert_eq!(
            estimate(&LegStats::default()).mos_x10,
            0,
            "nothing received"
        );
        let clean = estimate(&LegStats {
            rx_packets: 100,
            ..LegStats::default()
        });
        assert!(clean.mos_x10 >= 43, "{clean:?}");
        assert_eq!(clean.loss_percent, 0);
        let lossy = estimate(&LegStats {
            rx_packets: 100,
            peer_reports: 2,
            peer_fraction_lost: 26, // ~10 %
            jitter_us: 30_000,
            max_jitter_us: 30_000,
            ..LegStats::default()
        });
        assert!(lossy.mos_x10 < clean.mos_x10, "{lossy:?}");
        assert_eq!(lossy.loss_percent, 10);
        assert_eq!(lossy.jitter_ms, 30);
    }
}
