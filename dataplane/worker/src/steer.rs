//! Which worker owns a UDP port, and how to tell a NIC to deliver that port to the worker's
//! queue (pure arithmetic; the DPDK backend uses it).
//!
//! The control plane's [`dp_api::PortPlan`] splits the media port range into one contiguous
//! slice of RTP/RTCP pairs per worker. With several workers on one DPDK port, every datagram
//! must be handled by the worker owning its destination port (the leg's state lives only
//! there). Two mechanisms get it there:
//!
//! - **Flow steering** ([`Steering::Flow`]): one `rte_flow` rule per aligned block of ports
//!   ([`port_blocks`]: the slice as a minimal set of `(value, mask)` prefixes, like CIDR) sends
//!   the block to the owner's RX queue in the NIC. Devices without port masks get one rule per
//!   port when the range is small ([`MAX_EXACT_RULES`]).
//! - **Handoff** ([`Steering::Handoff`]): each worker checks the destination port of every
//!   datagram it receives ([`PortOwners::owner`], two compares and a division-free shift or a
//!   divide by a constant) and passes frames it does not own to their owner through a lock-free
//!   ring, like VPP's worker handoff. It is always on with several workers, so a misdirected
//!   datagram (RSS, kernel fanout, a rule the device lacks) is still handled by its owner.
//!
//! [`Steering::Auto`] tries flow rules and falls back to handoff alone.

use std::ops::RangeInclusive;

/// How several workers on one port get each datagram to the worker that owns its port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Steering {
    /// Flow rules where the device accepts them, handoff for the rest.
    #[default]
    Auto,
    /// Flow rules required: the start fails if the device refuses them.
    Flow,
    /// No flow rules: RSS (or the device's own spreading) plus software handoff.
    Handoff,
}

impl Steering {
    /// The config spelling (`auto`, `flow`, `handoff`).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Flow => "flow",
            Self::Handoff => "handoff",
        }
    }

    /// Parses the config spelling.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "auto" => Some(Self::Auto),
            "flow" => Some(Self::Flow),
            "handoff" => Some(Self::Handoff),
            _ => None,
        }
    }
}

/// At most this many exact-port rules are installed for a device that refuses port masks.
pub const MAX_EXACT_RULES: usize = 1024;

/// The owner of every port of a [`dp_api::PortPlan`] split, in O(1).
///
/// Slices are contiguous runs of even RTP ports; each covers its RTCP ports too (the odd port
/// after each RTP port). All slices but the last hold the same number of pairs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortOwners {
    first: u16,
    /// The last port any worker owns (the last slice's last RTCP port).
    last: u16,
    /// Pairs per slice (the last slice may hold more).
    per: u32,
    workers: u32,
}

impl PortOwners {
    /// The owners of `slices` (`slices[w]` = worker `w`'s even RTP ports, as
    /// [`dp_api::PortPlan::slice`] gives them).
    ///
    /// # Panics
    /// If `slices` is empty or not the contiguous equal split `PortPlan` makes.
    #[must_use]
    pub fn new(slices: &[RangeInclusive<u16>]) -> Self {
        assert!(!slices.is_empty(), "no slices");
        let first = *slices[0].start();
        let per = u32::from(slices[0].end() - slices[0].start()) / 2 + 1;
        for (w, s) in slices.iter().enumerate() {
            let lo = u32::from(first) + w as u32 * per * 2;
            assert_eq!(
                u32::from(*s.start()),
                lo,
                "slice {w} does not follow slice {}",
                w.saturating_sub(1)
            );
            if w + 1 < slices.len() {
                assert_eq!(
                    u32::from(*s.end()),
                    lo + (per - 1) * 2,
                    "slice {w} is not {per} pairs"
                );
            }
        }
        let last_rtp = *slices[slices.len() - 1].end();
        Self {
            first,
            last: last_rtp.saturating_add(1),
            per,
            workers: slices.len() as u32,
        }
    }

    /// The worker owning UDP port `port` (RTP or RTCP), or `None` outside every slice.
    #[inline]
    #[must_use]
    pub fn owner(&self, port: u16) -> Option<usize> {
        if port < self.first || port > self.last {
            return None;
        }
        let pair = u32::from(port - self.first) / 2;
        Some((pair / self.per).min(self.workers - 1) as usize)
    }

    /// How many workers share the ports.
    #[must_use]
    pub fn workers(&self) -> usize {
        self.workers as usize
    }

    /// Every port worker `w` owns, RTCP included (`None` for an unknown worker).
    #[must_use]
    pub fn range(&self, w: usize) -> Option<RangeInclusive<u16>> {
        let w = u32::try_from(w).ok().filter(|&w| w < self.workers)?;
        let lo = u32::from(self.first) + w * self.per * 2;
        let hi = if w + 1 == self.workers {
            u32::from(self.last)
        } else {
            lo + self.per * 2 - 1
        };
        Some(lo as u16..=hi as u16)
    }
}

/// The minimal list of `(value, mask)` prefix blocks covering exactly `lo..=hi`: a port `p`
/// is in the range iff `p & mask == value` for one block. Empty if `lo > hi`.
#[must_use]
pub fn port_blocks(lo: u16, hi: u16) -> Vec<(u16, u16)> {
    let mut out = Vec::new();
    let (mut lo, hi) = (u32::from(lo), u32::from(hi));
    while lo <= hi {
        // The largest aligned block starting at `lo` that does not pass `hi`.
        let mut size = if lo == 0 {
            1 << 16
        } else {
            1u32 << lo.trailing_zeros()
        };
        while lo + size - 1 > hi {
            size >>= 1;
        }
        out.push((lo as u16, !((size - 1) as u16)));
        lo += size;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use dp_api::PortPlan;

    fn covered(blocks: &[(u16, u16)], p: u16) -> usize {
        blocks.iter().filter(|&&(v, m)| p & m == v).count()
    }

    #[test]
    fn blocks_cover_exactly_once() {
        for (lo, hi) in [
            (20000, 29999),
            (0, 65535),
            (1, 1),
            (30000, 30001),
            (30001, 30010),
            (65534, 65535),
            (1024, 2047),
            (40000, 40003),
        ] {
            let b = port_blocks(lo, hi);
            for p in 0..=u16::MAX {
                let want = usize::from((lo..=hi).contains(&p));
                assert_eq!(covered(&b, p), want, "{lo}-{hi} port {p} blocks {b:?}");
            }
        }
        assert_eq!(port_blocks(1024, 2047), vec![(1024, 0xfc00)]);
        assert_eq!(port_blocks(0, 65535), vec![(0, 0)]);
        assert_eq!(port_blocks(40000, 40003), vec![(40000, 0xfffc)]);
        assert!(port_blocks(5, 4).is_empty());
        // A 10 000-port range needs few rules (a NIC has hundreds to thousands).
        assert!(port_blocks(20000, 29999).len() <= 16);
    }

    #[test]
    fn owners_match_the_port_plan() {
        for (range, workers) in [
            (20000..=29999, 1),
            (20000..=29999, 2),
            (20000..=29999, 3),
            (30000..=30999, 4),
            (30001..=30012, 2),
            (1024..=65535, 7),
        ] {
            let plan = PortPlan::new(range.clone(), workers).unwrap();
            let slices: Vec<_> = (0..workers).map(|w| plan.slice(w)).collect();
            let owners = PortOwners::new(&slices);
            for p in 0..=u16::MAX {
                let want = plan.worker_of_port(p).filter(|&w| {
                    let s = plan.slice(w);
                    (*s.start()..=s.end() + 1).contains(&p)
                });
                assert_eq!(owners.owner(p), want, "{range:?}/{workers} port {p}");
                if let Some(w) = want {
                    assert!(owners.range(w).unwrap().contains(&p));
                }
            }
            // Ranges are disjoint and adjacent.
            for w in 1..workers {
                assert_eq!(
                    *owners.range(w).unwrap().start(),
                    owners.range(w - 1).unwrap().end() + 1
                );
            }
            assert!(owners.range(workers).is_none());
        }
    }

    #[test]
    fn steering_spellings() {
        for s in [Steering::Auto, Steering::Flow, Steering::Handoff] {
            assert_eq!(Steering::parse(s.as_str()), Some(s));
        }
        assert_eq!(Steering::parse("rss"), None);
    }
}
