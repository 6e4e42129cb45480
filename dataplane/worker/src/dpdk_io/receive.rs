//! The receive loop of [`DpdkIo`]: frames for other workers handed off, replies queued,
//! the relay's fast lane relayed and sent from here, the rest classified into the worker's
//! burst for the full path.

use dpdk::RxCksum;
use relay::Relay;

use super::DpdkBuf;
use super::DpdkIo;
use crate::io::{Burst, LaneOut, MAX_BURST};
use crate::netstack::{Ingress, LaneFrame, RxOffload};

impl DpdkIo {
    /// Receives a burst: frames for other workers handed off, replies queued, the fast
    /// lane's datagrams relayed and sent (with `relay`), the rest into `rx`. Returns how
    /// many it left in `rx`, and what the lane did.
    pub(super) fn receive(
        &mut self,
        rx: &mut Burst<DpdkBuf>,
        relay: Option<&mut Relay>,
    ) -> (usize, LaneOut) {
        let now = self.clock.now();
        self.now = now;
        self.housekeeping(now);
        if self.carry.is_empty() {
            self.rxq.rx_burst(&mut self.rxb);
            if let Some(sh) = self.share.as_mut() {
                sh.handoff_in += sh.inbox.dequeue_burst(&mut self.rxb) as u64;
            }
        } else {
            std::mem::swap(&mut self.rxb, &mut self.carry);
        }
        if self.share.is_some() {
            self.exchange_news(now);
        }
        if self.rxb.is_empty() {
            rx.set_len(0);
            return (0, LaneOut::default());
        }
        // Start every frame's header line on its way into the cache before the first is
        // parsed (l2fwd's prefetch step).
        for m in self.rxb.iter() {
            m.prefetch();
        }
        let mut relay = relay;
        let mut lane = relay.as_deref_mut().map(|r| r.lane(now));
        // A table too large for the caches: the burst's legs asked for (then their peers)
        // before the first frame is handled, so that their misses overlap (see
        // `relay::PREFETCH_FROM_LEGS`).
        if let Some(l) = lane.as_ref().filter(|l| l.prefetch_pays()) {
            // Each frame's destination read once (stack array), then the legs asked for,
            // then their peers.
            let mut dst = [None; MAX_BURST];
            for (d, m) in dst.iter_mut().zip(self.rxb.iter()) {
                *d = self.net.v4().and_then(|n| n.lane_dst(m.data()));
                if let Some((a, p)) = *d {
                    l.prefetch(a, p);
                }
            }
            for &(a, p) in dst.iter().take(self.rxb.len()).flatten() {
                l.prefetch_peer(a, p);
            }
        }
        let (trust_l4, trust_ip) = (self.rx_offload.udp_cksum, self.rx_offload.ipv4_cksum);
        let tail_sum_unused = self.offload.udp_checksum && self.net.is_v4();
        let cap = rx.capacity();
        let slots = rx.slots_mut();
        let mut k = 0;
        let net = &mut self.net;
        let carry = &mut self.carry;
        let ctl = &mut self.ctl;
        let drops = &mut self.backend_drops;
        let mut share = self.share.as_mut();
        let offload = self.offload;
        let cksum = net.is_v4() && (offload.ipv4_checksum || offload.udp_checksum);
        let lane_txb = &mut self.lane_txb;
        let mut need_arp = false;
        let mut taken = 0;
        let mut ready = 0u64;
        self.rxb.drain_into(|mut m| {
            if let Some(sh) = share.as_deref_mut() {
                let owner = net.peek_port(m.data()).and_then(|p| sh.owners.owner(p));
                if let Some(w) = owner.filter(|&w| w != sh.me) {
                    if let Err(m) = sh.staged[w].push(m) {
                        drop(m);
                        sh.handoff_drops += 1;
                    }
                    return;
                }
            }
            let rx_off = RxOffload {
                udp_checksum_good: trust_l4 && m.rx_l4_cksum() == RxCksum::Good,
                ipv4_checksum_good: trust_ip && m.rx_ip_cksum() == RxCksum::Good,
                tail_sum_unused,
            };
            if let Some(lane) = lane.as_mut() {
                let frame = m.data_mut();
                let frame_len = frame.len();
                let lf = match net.v4_mut() {
                    Some(n) => n.lane_frame(now, frame, rx_off, offload, lane),
                    None => LaneFrame::Declined,
                };
                match lf {
                    LaneFrame::Declined => {}
                    LaneFrame::Ready { len } => {
                        taken += 1;
                        ready += 1;
                        // Ethernet padding after the datagram is not sent on.
                        if frame_len > len && m.trim(frame_len - len).is_none() {
                            *drops += 1;
                            return;
                        }
                        if cksum {
                            m.set_tx_offload(
                                offload.ipv4_checksum,
                                offload.udp_checksum,
                                wire::ethernet::HEADER_LEN as u16,
                                wire::ipv4::HEADER_LEN as u16,
                            );
                        }
                        // Never full: one receive brings at most MAX_BURST frames.
                        if lane_txb.push(m).is_err() {
                            *drops += 1;
                        }
                        return;
                    }
                    LaneFrame::Unsent { need_arp: arp } => {
                        taken += 1;
                        need_arp |= arp;
                        return;
                    }
                }
            }
            if k == cap {
                if let Err(m) = carry.push(m) {
                    drop(m);
                    *drops += 1;
                }
                return;
            }
            let frame = m.data_mut();
            let frame_len = frame.len();
            match net.handle_frame(now, frame, rx_off) {
                Ingress::Udp {
                    src,
                    dst_port,
                    dst_addr,
                    payload,
                    tail_sum,
                } => {
                    let len = payload.len();
                    // The payload, and room for an SRTP trailer after it inside the mbuf:
                    // the relay may encrypt in place for an SRTP leg. The slot keeps the
                    // payload length; `tx_burst` trims the data to the length sent.
                    if !m.narrow(payload.start, len, relay::TRAILER_ROOM) {
                        *drops += 1;
                        return;
                    }
                    let s = &mut slots[k];
                    s.buf.mbuf = Some(m);
                    s.buf.tail_sum = tail_sum.map(|t| (len, t));
                    s.len = len;
                    s.peer = src;
                    s.local_port = dst_port;
                    s.local_addr = dst_addr;
                    k += 1;
                }
                Ingress::Reply { len } => {
                    let extra = frame_len - len;
                    if extra > 0 && m.trim(extra).is_none() {
                        *drops += 1;
                        return;
                    }
                    if ctl.push(m).is_err() {
                        *drops += 1;
                    }
                }
                Ingress::Consumed | Ingress::Drop(_) => {}
            }
        });
        rx.set_len(k);
        drop(lane);
        if let Some(n) = self.net.v4_mut() {
            n.count_lane(ready);
        }
        let mut out = LaneOut {
            taken,
            ..LaneOut::default()
        };
        if !self.lane_txb.is_empty() {
            out.sent = self.txq.tx_burst(&mut self.lane_txb);
            out.refused = self.lane_txb.len();
            if let Some(relay) = relay {
                for m in self.lane_txb.iter() {
                    if let Some((addr, port, len)) =
                        self.net.v4().and_then(|n| n.lane_source(m.data()))
                    {
                        relay.handle_tx_refused_at(addr, port, len);
                    }
                }
            }
            self.lane_txb.clear();
        }
        if need_arp {
            self.send_arp_requests(now);
        }
        if let Some(sh) = self.share.as_mut() {
            sh.flush();
        }
        self.flush_ctl();
        (k, out)
    }
}
