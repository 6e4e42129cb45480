//! Lab endpoints: small SIP phones inside the process for demos and tests.
//!
//! They are ordinary SIP user agents built on [`sip::Endpoint`] (the same transaction and dialog
//! code the B2BUA uses), bound to loopback addresses taken from the configuration: the trunk
//! address (answers any number: "the customer") and each agent contact on loopback. They answer
//! with an SDP of their own, send a G.711 tone as real RTP every 20 ms to the address in the
//! B2BUA's SDP, count what they receive, and hang up after a talk time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

/// How a lab phone behaves.
#[derive(Debug, Clone)]
pub(crate) struct LabPhone {
    /// A name for logs ("trunk", "alice").
    pub(crate) name: String,
    /// Where it listens for SIP.
    pub(crate) sip: SocketAddr,
    /// Rings this long before answering.
    pub(crate) ring: Duration,
    /// Hangs up this long after answering.
    pub(crate) talk: Duration,
    /// Tone frequency it sends, in Hz.
    pub(crate) tone_hz: f32,
}

/// RTP counters of one lab phone, across calls.
#[derive(Debug, Default)]
pub(crate) struct LabCounters {
    /// RTP packets received.
    pub(crate) rx: AtomicU64,
    /// RTP packets sent.
    pub(crate) tx: AtomicU64,
}

/// Starts a lab phone; it runs until `stop` is cancelled.
pub(crate) async fn start(
    phone: LabPhone,
    stop: CancellationToken,
) -> anyhow::Result<Arc<LabCounters>> {
    let mut cfg = sip::EndpointConfig::new(phone.sip);
    cfg.user_agent = format!("callbridge-lab/{}", env!("CARGO_PKG_VERSION"));
    let (endpoint, mut incoming) = sip::Endpoint::bind(cfg)
        .await
        .with_context(|| format!("lab endpoint {} on {}", phone.name, phone.sip))?;
    let counters = Arc::new(LabCounters::default());
    info!(name = %phone.name, sip = %endpoint.local_addr(), "lab endpoint ready");
    let c = counters.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => break,
                call = incoming.recv() => {
                    let Some(call) = call else { break };
                    tokio::spawn(answer(phone.clone(), call, c.clone(), stop.child_token()));
                }
            }
        }
        endpoint.shutdown();
    });
    Ok(counters)
}

/// Rings, answers, talks (tone out, count in), hangs up.
async fn answer(
    phone: LabPhone,
    mut call: sip::IncomingCall,
    counters: Arc<LabCounters>,
    stop: CancellationToken,
) {
    let Some(offer) = call.sdp.clone() else {
        warn!(name = %phone.name, "INVITE without SDP offer; rejecting");
        call.reject(488);
        return;
    };
    let offer = match sip::sdp::SessionDescription::parse(&offer) {
        Ok(o) => o,
        Err(e) => {
            warn!(name = %phone.name, "bad SDP offer: {e}");
            call.reject(488);
            return;
        }
    };
    let rtp = match UdpSocket::bind(SocketAddr::new(phone.sip.ip(), 0)).await {
        Ok(s) => s,
        Err(e) => {
            warn!(name = %phone.name, "no RTP socket: {e}");
            call.reject(500);
            return;
        }
    };
    let Ok(local) = rtp.local_addr() else {
        return call.reject(500);
    };
    let (sdp, negotiated) = match sip::sdp::build_answer(&offer, local, u64::from(local.port())) {
        Ok(a) => a,
        Err(e) => {
            warn!(name = %phone.name, "no common codec: {e}");
            call.reject(488);
            return;
        }
    };
    let Some(codec) = dp_api::Codec::from_payload_type(negotiated.payload_type) else {
        call.reject(488);
        return;
    };
    info!(name = %phone.name, from = %call.from, "lab endpoint ringing");
    call.ring();
    tokio::select! {
        () = tokio::time::sleep(phone.ring) => {}
        ev = call.event() => {
            info!(name = %phone.name, ?ev, "caller gave up while ringing");
            return;
        }
        () = stop.cancelled() => return call.reject(480),
    }
    call.answer(sdp);
    info!(name = %phone.name, remote_rtp = %negotiated.remote, "lab endpoint answered");
    let talk = tokio::time::sleep(phone.talk);
    tokio::pin!(talk);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut tone = Tone::new(phone.tone_hz, codec, u32::from(local.port()));
    let mut buf = [0u8; 1500];
    loop {
        tokio::select! {
            _ = tick.tick() => {
                let pkt = tone.next_packet();
                if rtp.send_to(pkt, negotiated.remote).await.is_ok() {
                    counters.tx.fetch_add(1, Ordering::Relaxed);
                }
            }
            r = rtp.recv_from(&mut buf) => {
                if matches!(r, Ok((n, _)) if n >= 12 && buf[0] >> 6 == 2) {
                    counters.rx.fetch_add(1, Ordering::Relaxed);
                }
            }
            ev = call.event() => {
                info!(name = %phone.name, ?ev, rx = counters.rx.load(Ordering::Relaxed), "lab call ended by the other side");
                return;
            }
            () = &mut talk => break,
            () = stop.cancelled() => break,
        }
    }
    info!(name = %phone.name, rx = counters.rx.load(Ordering::Relaxed), "lab endpoint hanging up");
    call.controller().hangup();
    // Let the SIP layer finish the BYE.
    while let Some(ev) = call.event().await {
        if matches!(
            ev,
            sip::LegEvent::Ended | sip::LegEvent::Bye | sip::LegEvent::Timeout
        ) {
            break;
        }
    }
}

/// A G.711 sine tone as an RTP stream.
struct Tone {
    codec: dp_api::Codec,
    phase: f32,
    step: f32,
    seq: u16,
    ts: u32,
    ssrc: u32,
    first: bool,
    pkt: [u8; 12 + 160],
}

impl Tone {
    fn new(hz: f32, codec: dp_api::Codec, ssrc: u32) -> Self {
        Self {
            codec,
            phase: 0.0,
            step: std::f32::consts::TAU * hz / 8000.0,
            seq: 1,
            ts: 0,
            ssrc: 0x1ab0_0000 ^ ssrc,
            first: true,
            pkt: [0; 172],
        }
    }

    fn next_packet(&mut self) -> &[u8] {
        let mut p = wire::rtp::RtpPacket::new_unchecked(&mut self.pkt[..]);
        p.set_first_byte(false, false, 0);
        p.set_marker(self.first);
        p.set_payload_type(self.codec.payload_type());
        p.set_sequence_number(self.seq);
        p.set_timestamp(self.ts);
        p.set_ssrc(self.ssrc);
        self.first = false;
        for b in &mut self.pkt[12..] {
            let s = (self.phase.sin() * 8000.0) as i16;
            self.phase = (self.phase + self.step) % std::f32::consts::TAU;
            *b = match self.codec {
                dp_api::Codec::Pcmu => dp_api::linear_to_ulaw(s),
                dp_api::Codec::Pcma => dp_api::linear_to_alaw(s),
            };
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
        &self.pkt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tone_packets_are_well_formed_rtp() {
        let mut t = Tone::new(440.0, dp_api::Codec::Pcmu, 7);
        let p1 = t.next_packet().to_vec();
        let p2 = t.next_packet().to_vec();
        assert_eq!(p1.len(), 172);
        assert_eq!(p1[0] >> 6, 2);
        assert_eq!(p1[1], 0x80, "marker on the first packet, PT 0");
        assert_eq!(p2[1], 0x00);
        assert_eq!(u16::from_be_bytes([p2[2], p2[3]]), 2);
        assert_eq!(u32::from_be_bytes([p2[4], p2[5], p2[6], p2[7]]), 160);
        assert!(p1[12..].iter().any(|&b| b != 0xff), "a tone, not silence");
    }
}
