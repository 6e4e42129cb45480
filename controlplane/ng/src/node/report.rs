//! The `query` reply (also `delete`'s): times, tags with their stream counters, totals and
//! quality estimates, in the shape rtpengine gives them (`docs/ng_control_protocol.md`), so
//! that Kamailio's `$rtpstat` and tools reading rtpengine's replies read ours.

use std::net::{IpAddr, SocketAddr};

use dp_api::LegId;

use super::{error_reply, reply, Node, Party};
use crate::bencode::Encoder;
use crate::quality;
use crate::NgError;

fn family(a: IpAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn endpoint(e: &mut Encoder, key: &str, a: SocketAddr) {
    e.str(key)
        .dict()
        .kv("family", family(a.ip()))
        .kv("address", &a.ip().to_string())
        .ki("port", i64::from(a.port()))
        .end();
}

fn counters(e: &mut Encoder, packets: u64, bytes: u64, errors: u64) {
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    e.str("stats")
        .dict()
        .ki("packets", n(packets))
        .ki("bytes", n(bytes))
        .ki("errors", n(errors))
        .end();
}

impl<R: Clone> Node<R> {
    /// The `query` reply (also `delete`'s): times, tags with their stream counters, totals
    /// and quality estimates.
    pub(super) fn stats_reply(&self, cookie: &[u8], call_id: &str) -> Vec<u8> {
        let Some(call) = self.calls.get(call_id) else {
            return error_reply(cookie, &NgError::UnknownCall(call_id.to_owned()));
        };
        let addr_of = |leg: LegId| self.media.address_of(leg);
        let parties: Vec<(&Party, LegId, Option<&str>)> = {
            let mut v = vec![(
                &call.a,
                call.legs.customer,
                call.b.as_ref().map(|b| b.tag.as_str()),
            )];
            if let Some(b) = &call.b {
                v.push((b, call.legs.agent, Some(call.a.tag.as_str())));
            }
            v
        };
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let (mut rtp_p, mut rtp_b, mut rtcp_p, mut errs) = (0u64, 0u64, 0u64, 0u64);
        for (p, _, _) in &parties {
            rtp_p += p.stats.rx_packets;
            rtp_b += p.stats.rx_bytes;
            rtcp_p += p.stats.rx_rtcp;
            errs += p.stats.drops.total();
        }
        reply(cookie, |e| {
            e.kv("result", "ok")
                .ki("created", n(call.created))
                .ki("last signal", n(call.last_signal))
                .str("tags")
                .dict();
            for (p, leg, peer) in &parties {
                e.str(&p.tag)
                    .dict()
                    .kv("tag", &p.tag)
                    .ki("created", n(p.created));
                if let Some(peer) = peer {
                    e.kv("in dialogue with", peer);
                }
                let q = quality::estimate(&p.stats);
                e.str("quality")
                    .dict()
                    .ki("MOS", i64::from(q.mos_x10))
                    .ki("jitter", i64::from(q.jitter_ms))
                    .ki("packet loss", i64::from(q.loss_percent))
                    .end();
                e.str("medias").list().dict();
                e.ki("index", 1)
                    .kv("type", "audio")
                    .kv("protocol", &p.protocol);
                e.str("streams").list();
                // RTP, then RTCP on the next port.
                for (k, (packets, bytes)) in
                    [(p.stats.rx_packets, p.stats.rx_bytes), (p.stats.rx_rtcp, 0)]
                        .into_iter()
                        .enumerate()
                {
                    e.dict().ki("local port", i64::from(leg.port()) + k as i64);
                    if let Some(a) = addr_of(*leg) {
                        e.kv("local address", &a.to_string());
                    }
                    let bump =
                        |s: SocketAddr| SocketAddr::new(s.ip(), s.port().wrapping_add(k as u16));
                    if let Some(r) = p.remote {
                        endpoint(e, "endpoint", bump(r));
                    }
                    if let Some(r) = p.advertised {
                        endpoint(e, "advertised endpoint", bump(r));
                    }
                    e.str("flags")
                        .list()
                        .str(if k == 0 { "RTP" } else { "RTCP" })
                        .end();
                    counters(
                        e,
                        packets,
                        bytes,
                        if k == 0 { p.stats.drops.total() } else { 0 },
                    );
                    e.end();
                }
                e.end(); // streams
                e.end().end(); // the media, medias
                e.end(); // the tag
            }
            e.end(); // tags
            e.str("totals").dict();
            e.str("RTP")
                .dict()
                .ki("packets", n(rtp_p))
                .ki("bytes", n(rtp_b))
                .ki("errors", n(errs))
                .end();
            e.str("RTCP")
                .dict()
                .ki("packets", n(rtcp_p))
                .ki("bytes", 0)
                .ki("errors", 0)
                .end();
            e.end();
        })
    }
}
