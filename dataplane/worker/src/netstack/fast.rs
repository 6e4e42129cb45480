//! The per-packet fast paths of [`Netstack`]: the usual received frame (Ethernet to our MAC,
//! IPv4 without options to one of our addresses, unfragmented UDP carrying at least an RTP
//! fixed header) parsed from one fixed-size view of its first bytes, and the headers of a
//! datagram we send written into one fixed-size view. Fixed sizes let the compiler drop the
//! bounds checks and unroll the header sums ([`checksum::sum_fixed`]). Any frame the fast
//! path does not recognise, or finds wrong (a bad checksum, a short buffer), goes through the
//! general path, which classifies it and counts the reason: the verdicts are the same.

use std::net::{Ipv4Addr, SocketAddrV4};
#[cfg(any(feature = "dpdk", test))]
use std::time::Instant;

#[cfg(any(feature = "dpdk", test))]
use relay::Lane;

use wire::checksum;
use wire::ethernet;
use wire::ipv4::{self, protocol};
use wire::udp;

use super::{addr_sum, Ingress, Netstack, RxOffload, TxOffload, HEADROOM, SUM_SKIP, TEMPLATE_LEN};

/// What [`Netstack::lane_frame`] did with a received frame.
#[cfg(any(feature = "dpdk", test))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LaneFrame {
    /// Not for the fast lane: take the full path (nothing was counted or changed).
    Declined,
    /// Relayed: send the frame's first `len` bytes (trim the rest).
    Ready { len: usize },
    /// Relayed (and counted so) but not sent: no route, or the next hop's MAC is not known
    /// yet (`need_arp`: a request is queued), counted as the full path counts them.
    Unsent { need_arp: bool },
}

/// Ethernet + IPv4 (no options) + UDP + the RTP fixed header: what the fast path reads.
const FAST_LEN: usize = HEADROOM + SUM_SKIP;
const L3: usize = ethernet::HEADER_LEN;
const L4: usize = L3 + ipv4::HEADER_LEN;

impl Netstack {
    /// The usual UDP datagram for us, or `None` for the general path (which also counts
    /// what is wrong with it). Counts `rx_frames` and `rx_udp` when it delivers.
    #[inline(always)]
    pub(super) fn rx_udp_fast(&mut self, frame: &[u8], rx: RxOffload) -> Option<Ingress> {
        let udp = self.rx_udp_parse::<true>(frame, rx)?;
        self.stats.rx_frames += 1;
        self.stats.rx_udp += 1;
        Some(udp)
    }

    #[cfg(any(feature = "dpdk", test))]
    /// The relay's fast lane for a received frame ([`relay::Lane`]): the usual UDP datagram
    /// for us ([`Self::rx_udp_fast`]'s checks) that the lane takes is turned into the frame
    /// to send in place — the payload stays where it is, the headers are rewritten from our
    /// template as [`Self::encap_from`] writes them, checksums included (the UDP one from the
    /// received payload's sum, or left to the device with `tx`). Anything else is
    /// [`LaneFrame::Declined`], with nothing counted or changed, for the full path.
    #[inline(always)]
    pub(crate) fn lane_frame(
        &mut self,
        now: Instant,
        frame: &mut [u8],
        rx: RxOffload,
        tx: TxOffload,
        lane: &mut Lane<'_>,
    ) -> LaneFrame {
        let Some(Ingress::Udp {
            src,
            dst_port,
            dst_addr,
            payload,
            ..
        }) = self.rx_udp_parse::<false>(frame, rx)
        else {
            return LaneFrame::Declined;
        };
        let Some(rtp) = frame.get(payload.clone()) else {
            return LaneFrame::Declined;
        };
        let Some(f) = lane.forward_v4(dst_addr, dst_port, src, rtp) else {
            return LaneFrame::Declined;
        };
        // Counted here when not sent; a sent frame's `rx_frames`, `rx_udp` and `tx_udp` are
        // counted once per burst ([`Self::count_lane`]).
        // From here as `encap_from` for the datagram the frame holds (`rx_udp_parse` takes
        // IPv4 without options only: the payload starts at HEADROOM and stays there).
        let si = usize::from(f.from_addr);
        if si >= self.tx_src.len() {
            self.count_unsent();
            self.stats.too_big += 1;
            return LaneFrame::Unsent { need_arp: false };
        }
        let Some(next_hop) = self.next_hop(Ipv4Addr::from(f.to_ip.to_ne_bytes())) else {
            self.count_unsent();
            self.stats.no_route += 1;
            return LaneFrame::Unsent { need_arp: false };
        };
        let Some(mac) = self.resolve(now, next_hop) else {
            self.count_unsent();
            self.stats.arp_pending += 1;
            return LaneFrame::Unsent { need_arp: true };
        };
        let t = &self.tx_src[si];
        let Some(h) = frame.first_chunk_mut::<HEADROOM>() else {
            return LaneFrame::Unsent { need_arp: false };
        };
        let total_len = u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]);
        let udp_len = u32::from(u16::from_be_bytes([h[L4 + 4], h[L4 + 5]]));
        let dst_ip = f.to_ip.to_ne_bytes();
        // The address's two big-endian words (one byte swap on a little-endian host).
        let be = u32::from_be_bytes(dst_ip);
        let dst_sum = (be >> 16) + (be & 0xffff);
        let p = f.from_port.to_be_bytes();
        let q = f.to_port.to_be_bytes();
        let ports = [p[0], p[1], q[0], q[1]];
        // The UDP checksum, before the headers it covers are overwritten.
        let old_c = [h[L4 + 6], h[L4 + 7]];
        let udp_c = if tx.udp_checksum {
            // The device finishes it from the pseudo-header's sum.
            let ph = t.addr_sum + dst_sum + u32::from(protocol::UDP) + udp_len;
            Some(checksum::fold(ph).to_be_bytes())
        } else if old_c == [0, 0] {
            // Sent without a checksum, it leaves without one.
            None
        } else {
            // RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'), over the fields that change: the
            // addresses and ports, each 32-bit piece read little-endian as `sum_le` reads
            // (a one's-complement sum does not depend on byte order, RFC 1071 §2(B)).
            let le = |b: [u8; 4]| u64::from(u32::from_le_bytes(b));
            let at = |i: usize| [h[i], h[i + 1], h[i + 2], h[i + 3]];
            let old = (le(at(L3 + 12)) ^ 0xffff_ffff)
                + (le(at(L3 + 16)) ^ 0xffff_ffff)
                + (le(at(L4)) ^ 0xffff_ffff);
            // The ports' bytes read little-endian: each big-endian port byte-swapped.
            let new_ports =
                u64::from(f.from_port.swap_bytes()) | u64::from(f.to_port.swap_bytes()) << 16;
            let new = u64::from(t.addr_le) + le(dst_ip) + new_ports;
            let acc = u64::from(!u16::from_le_bytes(old_c)) + old + new;
            // Below 2^35: 35 → 16 bits in four fixed steps.
            let mut f = (acc >> 32) + (acc & 0xffff_ffff);
            f = (f & 0xffff) + (f >> 16);
            f = (f & 0xffff) + (f >> 16);
            f = (f & 0xffff) + (f >> 16);
            Some(
                match !(f as u16) {
                    0 => 0xffff,
                    c => c,
                }
                .to_le_bytes(),
            )
        };
        // Ethernet and IPv4 from our template, as `write_headers` writes them.
        let (eth_ip, u) = h.split_at_mut(TEMPLATE_LEN);
        let Ok(eth_ip) = <&mut [u8; TEMPLATE_LEN]>::try_from(eth_ip) else {
            return LaneFrame::Unsent { need_arp: false };
        };
        *eth_ip = t.template;
        eth_ip[..6].copy_from_slice(&mac.0);
        eth_ip[L3 + 2..L3 + 4].copy_from_slice(&total_len.to_be_bytes());
        eth_ip[L3 + 16..L3 + 20].copy_from_slice(&dst_ip);
        if !tx.ipv4_checksum {
            // Each part is below 2^17: their sum folds in 32 bits.
            let c = !checksum::fold(t.ip_sum + u32::from(total_len) + dst_sum);
            eth_ip[L3 + 10..L3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        u[0..4].copy_from_slice(&ports);
        if let Some(c) = udp_c {
            u[6..8].copy_from_slice(&c);
        }
        LaneFrame::Ready { len: payload.end }
    }

    #[cfg(feature = "dpdk")]
    /// Counts `n` frames [`Self::lane_frame`] made ready to send (once per burst: received,
    /// UDP for us, UDP sent).
    pub(crate) fn count_lane(&mut self, n: u64) {
        self.stats.rx_frames += n;
        self.stats.rx_udp += n;
        self.stats.tx_udp += n;
    }

    #[cfg(any(feature = "dpdk", test))]
    /// Counts a frame the lane relayed but could not send (received, UDP for us).
    #[cold]
    fn count_unsent(&mut self) {
        self.stats.rx_frames += 1;
        self.stats.rx_udp += 1;
    }

    #[cfg(feature = "dpdk")]
    /// The media address (an index) and UDP port a received frame is for, if it is IPv4
    /// without options carrying UDP to one of our addresses: for asking the relay's cache
    /// before the burst is handled ([`relay::Lane::prefetch`]). Nothing is checked beyond.
    #[inline(always)]
    pub(crate) fn lane_dst(&self, frame: &[u8]) -> Option<(u8, u16)> {
        let h: &[u8; HEADROOM] = frame.first_chunk()?;
        if h[12..14] != [0x08, 0x00] || h[L3] != 0x45 || h[L3 + 9] != protocol::UDP {
            return None;
        }
        let dst = Ipv4Addr::new(h[L3 + 16], h[L3 + 17], h[L3 + 18], h[L3 + 19]);
        Some((
            self.addr_index(dst)?,
            u16::from_be_bytes([h[L4 + 2], h[L4 + 3]]),
        ))
    }

    #[cfg(feature = "dpdk")]
    /// Who sends a frame [`Self::lane_frame`] built (the TX queue refused it): our address
    /// (an index), port and the payload's length, for the relay's count.
    pub(crate) fn lane_source(&self, frame: &[u8]) -> Option<(u8, u16, usize)> {
        let h: &[u8; HEADROOM] = frame.first_chunk()?;
        let src = Ipv4Addr::new(h[L3 + 12], h[L3 + 13], h[L3 + 14], h[L3 + 15]);
        let port = u16::from_be_bytes([h[L4], h[L4 + 1]]);
        let udp_len = usize::from(u16::from_be_bytes([h[L4 + 4], h[L4 + 5]]));
        Some((
            self.addr_index(src)?,
            port,
            udp_len.checked_sub(udp::HEADER_LEN)?,
        ))
    }

    /// [`Self::rx_udp_fast`] without counting.
    ///
    /// With `TAIL` (the full path) the UDP checksum check keeps the payload's sum after its
    /// first [`SUM_SKIP`] bytes for the transmit side ([`Ingress::Udp::tail_sum`]); without
    /// (the fast lane, which updates the checksum incrementally instead) it is one sum over
    /// the pseudo-header's addresses and the whole datagram.
    #[inline(always)]
    fn rx_udp_parse<const TAIL: bool>(&self, frame: &[u8], rx: RxOffload) -> Option<Ingress> {
        let h: &[u8; FAST_LEN] = frame.first_chunk()?;
        // Ethernet to our MAC, IPv4; version 4 with a 20-byte header; UDP; not a fragment.
        // Our MAC as one 4-byte and one 2-byte compare, the EtherType with the latter.
        let mac = &self.cfg.mac.0;
        if h[..4] != mac[..4]
            || [h[4], h[5], h[12], h[13]] != [mac[4], mac[5], 0x08, 0x00]
            || h[L3] != 0x45
            || h[L3 + 9] != protocol::UDP
            || (h[L3 + 6] & 0x3f) | h[L3 + 7] != 0
        {
            return None;
        }
        let tl = usize::from(u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]));
        let udp_len = usize::from(u16::from_be_bytes([h[L4 + 4], h[L4 + 5]]));
        if L3 + tl > frame.len()
            || udp_len < udp::HEADER_LEN + SUM_SKIP
            || udp_len > tl.wrapping_sub(ipv4::HEADER_LEN)
        {
            return None;
        }
        let dst = Ipv4Addr::new(h[L3 + 16], h[L3 + 17], h[L3 + 18], h[L3 + 19]);
        let dst_addr = self.addr_index(dst)?;
        let ip_hdr: &[u8; ipv4::HEADER_LEN] = h[L3..].first_chunk()?;
        if !rx.ipv4_checksum_good && !checksum::sums_to_zero(checksum::sum_fixed_le(ip_hdr)) {
            return None;
        }
        let src = Ipv4Addr::new(h[L3 + 12], h[L3 + 13], h[L3 + 14], h[L3 + 15]);
        let sport = u16::from_be_bytes([h[L4], h[L4 + 1]]);
        let dport = u16::from_be_bytes([h[L4 + 2], h[L4 + 3]]);
        let mut tail_sum = None;
        if !TAIL {
            if h[L4 + 6] | h[L4 + 7] != 0 && !rx.udp_checksum_good {
                // Source and destination address, then the UDP header and payload: one run
                // of bytes; the pseudo-header's protocol and length added after.
                // All read little-endian, as `sum_le` reads: the protocol's word and the
                // length as they lie in the header.
                let s = checksum::sum_le(frame.get(L3 + 12..L4 + udp_len)?)
                    + u64::from(u16::from_le_bytes([0, protocol::UDP]))
                    + u64::from(u16::from_le_bytes([h[L4 + 4], h[L4 + 5]]));
                if !checksum::sums_to_zero(s) {
                    return None;
                }
            }
        } else if h[L4 + 6] | h[L4 + 7] != 0 && !(rx.udp_checksum_good && rx.tail_sum_unused) {
            // As the general path: pseudo-header + UDP header + RTP fixed header, then the
            // rest of the payload (summed, or derived when the device verified it).
            let ph = addr_sum(src)
                + self.tx_src[usize::from(dst_addr)].addr_sum
                + u32::from(protocol::UDP)
                + udp_len as u32;
            let head_bytes: &[u8; udp::HEADER_LEN + SUM_SKIP] = h[L4..].first_chunk()?;
            let head = ph + checksum::sum_fixed(head_bytes);
            if rx.udp_checksum_good {
                tail_sum = Some(u32::from(!checksum::fold(head)));
            } else {
                let tail = checksum::sum(frame.get(FAST_LEN..L4 + udp_len)?);
                // head < 2^20 and tail <= 0xffff: one 32-bit fold suffices.
                if !checksum::fold(head + tail) != 0 {
                    return None;
                }
                tail_sum = Some(tail);
            }
        }
        Some(Ingress::Udp {
            src: SocketAddrV4::new(src, sport),
            dst_port: dport,
            dst_addr,
            payload: L4 + udp::HEADER_LEN..L4 + udp_len,
            tail_sum,
        })
    }

    /// Writes the Ethernet, IPv4 and UDP headers into `hdr` from our address `si` (checked by
    /// the caller) to `dst` via `mac`, for a payload of `payload` (its first [`SUM_SKIP`]
    /// bytes summed afresh, the rest from `tail_sum` when given).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_headers(
        &self,
        hdr: &mut [u8; HEADROOM],
        si: usize,
        mac: [u8; 6],
        dst: SocketAddrV4,
        src_port: u16,
        payload: &[u8],
        offload: TxOffload,
        tail_sum: Option<u32>,
    ) {
        let udp_len = udp::HEADER_LEN + payload.len();
        let total_len = (ipv4::HEADER_LEN + udp_len) as u16;
        let dst_ip = dst.ip().octets();
        let dst_sum = addr_sum(*dst.ip());
        let src = &self.tx_src[si];
        let (t, ip_sum, src_sum) = (&src.template, src.ip_sum, src.addr_sum);
        let (eth_ip, u) = hdr.split_at_mut(TEMPLATE_LEN);
        let eth_ip: &mut [u8; TEMPLATE_LEN] = match eth_ip.try_into() {
            Ok(a) => a,
            Err(_) => return,
        };
        *eth_ip = *t;
        eth_ip[..6].copy_from_slice(&mac);
        eth_ip[L3 + 2..L3 + 4].copy_from_slice(&total_len.to_be_bytes());
        eth_ip[L3 + 16..L3 + 20].copy_from_slice(&dst_ip);
        if !offload.ipv4_checksum {
            // Each part is below 2^17: their sum folds in 32 bits.
            let c = !checksum::fold(ip_sum + u32::from(total_len) + dst_sum);
            eth_ip[L3 + 10..L3 + 12].copy_from_slice(&c.to_be_bytes());
        }
        let u: &mut [u8; udp::HEADER_LEN] = match u.try_into() {
            Ok(a) => a,
            Err(_) => return,
        };
        // RFC 768 pseudo-header: source, destination, protocol, UDP length.
        let ph = src_sum + dst_sum + u32::from(protocol::UDP) + udp_len as u32;
        let c = if offload.udp_checksum {
            checksum::fold(ph)
        } else {
            let hdr_sum = u32::from(src_port) + u32::from(dst.port()) + udp_len as u32;
            let c = match (tail_sum, payload.first_chunk::<SUM_SKIP>()) {
                // ph < 2^19, hdr_sum < 2^18, the sums <= 0xffff: a 32-bit fold suffices.
                (Some(tail), Some(head)) => {
                    !checksum::fold(ph + hdr_sum + checksum::sum_fixed(head) + tail)
                }
                _ => super::udp_checksum(ph, src_port, dst.port(), udp_len, payload, tail_sum),
            };
            if c == 0 {
                0xffff
            } else {
                c
            }
        };
        u[0..2].copy_from_slice(&src_port.to_be_bytes());
        u[2..4].copy_from_slice(&dst.port().to_be_bytes());
        u[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        u[6..8].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{stack, udp_frame};
    use super::super::L2Drop;
    use super::*;

    #[test]
    fn the_fast_path_agrees_with_the_general_path() {
        let (mut s, now) = stack();
        let good = RxOffload {
            udp_checksum_good: true,
            ipv4_checksum_good: true,
            tail_sum_unused: false,
        };
        for len in [12usize, 13, 100, 160, 171, 172] {
            let payload: Vec<u8> = (0..len).map(|i| (i * 31 + 7) as u8).collect();
            let f = udp_frame(40000, 30000, &payload);
            for rx in [RxOffload::default(), good] {
                let fast = s.rx_udp_fast(&f, rx).expect("the usual datagram");
                let general = s.handle_ipv4(&mut f.clone(), rx);
                assert_eq!(fast, general, "len {len} {rx:?}");
            }
            // The device fills the UDP checksum on transmit: nothing derived.
            let unused = RxOffload {
                tail_sum_unused: true,
                ..good
            };
            assert!(matches!(
                s.rx_udp_fast(&f, unused),
                Some(Ingress::Udp { tail_sum: None, .. })
            ));
            // A bad checksum is left to the general path, which drops and counts it.
            let mut bad = f.clone();
            bad[HEADROOM + 5] ^= 0x10;
            assert_eq!(s.rx_udp_fast(&bad, RxOffload::default()), None);
            assert_eq!(
                s.handle_frame(now, &mut bad),
                Ingress::Drop(L2Drop::BadUdpChecksum)
            );
        }
        // Shorter than an RTP header, or IPv4 options: the general path.
        let f = udp_frame(40000, 30000, &[1, 2, 3]);
        assert_eq!(s.rx_udp_fast(&f, RxOffload::default()), None);
        assert!(matches!(
            s.handle_frame(now, &mut f.clone()),
            Ingress::Udp { .. }
        ));
    }
}
