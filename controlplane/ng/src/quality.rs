//! A call quality estimate from a leg's counters, for `query`'s `quality` keys.
//!
//! The inputs are what the relay knows without decoding audio: the interarrival jitter of
//! what the party sends (RFC 3550 A.8) and the fraction lost that the party itself reports in
//! its RTCP receiver reports about what it receives from us. The MOS is the ITU-T G.107
//! E-model reduced to those two impairments (no codec or echo terms beyond G.711's, delay
//! taken as twice the jitter plus 10 ms since the relay cannot see the path's delay): an
//! estimate to rank calls and spot bad ones, not a listening test.

use dp_api::LegStats;

/// The estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    /// MOS × 10 (10..=45), as rtpengine reports it.
    pub mos_x10: u8,
    /// Jitter in milliseconds.
    pub jitter_ms: u32,
    /// Loss in percent (0..=100), from the party's receiver reports.
    pub loss_percent: u8,
}

/// Estimates a leg's quality.
#[must_use]
pub fn estimate(s: &LegStats) -> Quality {
    let jitter_ms = s.jitter_us / 1000;
    let loss = f64::from(s.peer_fraction_lost) * 100.0 / 256.0;
    let delay = f64::from(s.jitter_us) / 500.0 + 10.0;
    let id = if delay < 160.0 {
        delay / 40.0
    } else {
        (delay - 120.0) / 10.0
    };
    let r = (93.2 - id - 2.5 * loss).clamp(0.0, 100.0);
    let mos = (1.0 + 0.035 * r + 0.000_007 * r * (r - 60.0) * (100.0 - r)).clamp(1.0, 4.5);
    Quality {
        mos_x10: (mos * 10.0).round() as u8,
        jitter_ms,
        loss_percent: loss.round().clamp(0.0, 100.0) as u8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clean_leg_scores_high_and_loss_lowers_it() {
        let clean = estimate(&LegStats::default());
        assert!(clean.mos_x10 >= 43, "{clean:?}");
        assert_eq!(clean.loss_percent, 0);
        let lossy = estimate(&LegStats {
            peer_fraction_lost: 26, // ~10 %
            jitter_us: 30_000,
            ..LegStats::default()
        });
        assert!(lossy.mos_x10 < clean.mos_x10, "{lossy:?}");
        assert_eq!(lossy.loss_percent, 10);
        assert_eq!(lossy.jitter_ms, 30);
        let awful = estimate(&LegStats {
            peer_fraction_lost: 255,
            ..LegStats::default()
        });
        assert_eq!(awful.mos_x10, 10);
    }
}
