//! The customers' RTP receivers: one UDP socket per customer SIPp (its SDP answer names it),
//! drained with `recvmmsg`, every datagram stamped by the kernel (`SO_TIMESTAMPNS`, the time
//! the loopback device handed it to the socket layer, so the receiver's own scheduling does not
//! count). Streams are told apart by their source (each customer leg sends from its own port).
//!
//! Pacing error: each stream's packets should leave on a 20 ms grid; its RTP timestamp (8 kHz)
//! says which slot a packet belongs to. For every packet, `arrival − slot × 125 µs` is its
//! offset; the stream's earliest offset is its ideal phase, and the deviation of each packet
//! is its offset minus that phase (≥ 0; a clock that drifts shows up as growing deviation).

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use nix::sys::socket::{
    recvmmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrIn,
};
use nix::sys::time::TimeSpec;

/// Datagrams per `recvmmsg`.
const BATCH: usize = 64;
/// Room for one datagram (the announcement's RTP is 172 bytes).
const BUF: usize = 512;

/// Recording every packet's timestamps (before it, at 0, the receivers only count streams).
pub(crate) const MEASURE: u8 = 1;
/// Leave.
pub(crate) const STOP: u8 = 2;

/// State shared with the receiver threads.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// 0 (counting streams), [`MEASURE`] or [`STOP`].
    pub(crate) phase: AtomicU8,
    /// Distinct sources seen so far, over all receivers.
    pub(crate) streams: AtomicUsize,
}

/// One stream's packets of the measuring window: (RTP timestamp, arrival ns).
type Samples = Vec<(u32, i64)>;

/// A running receiver.
pub(crate) struct Receiver {
    handle: JoinHandle<anyhow::Result<HashMap<SocketAddr, Samples>>>,
}

impl Receiver {
    /// Takes `sock` (bound by the caller: on loopback, or inside a namespace), asks for a large
    /// receive buffer and kernel timestamps, and starts its thread.
    pub(crate) fn start(sock: UdpSocket, shared: Arc<Shared>) -> anyhow::Result<Self> {
        let addr = sock.local_addr()?;
        setsockopt(&sock, sockopt::ReceiveTimestampns, &true).context("SO_TIMESTAMPNS")?;
        // Root may exceed net.core.rmem_max; otherwise take what is allowed.
        if setsockopt(&sock, sockopt::RcvBufForce, &(32 << 20)).is_err() {
            let _ = setsockopt(&sock, sockopt::RcvBuf, &(32 << 20));
        }
        sock.set_read_timeout(Some(Duration::from_millis(50)))?;
        let handle = std::thread::Builder::new()
            .name(format!("rx-{}", addr.port()))
            .spawn(move || receive(&sock, &shared))?;
        Ok(Self { handle })
    }

    /// Waits for the thread (after [`STOP`]) and returns its streams.
    pub(crate) fn join(self) -> anyhow::Result<HashMap<SocketAddr, Samples>> {
        self.handle
            .join()
            .map_err(|_| anyhow::anyhow!("receiver thread panicked"))?
    }
}

fn receive(sock: &UdpSocket, shared: &Shared) -> anyhow::Result<HashMap<SocketAddr, Samples>> {
    let fd = sock.as_raw_fd();
    let mut hdrs = MultiHeaders::<SockaddrIn>::preallocate(BATCH, Some(nix::cmsg_space!(TimeSpec)));
    let mut bufs = vec![[0u8; BUF]; BATCH];
    let mut streams: HashMap<SocketAddr, Samples> = HashMap::new();
    let mut meta = [(0usize, None::<SocketAddr>, 0i64); BATCH];
    loop {
        let phase = shared.phase.load(Ordering::Relaxed);
        if phase == STOP {
            return Ok(streams);
        }
        let got = {
            let mut it = bufs.iter_mut();
            let mut iovs: Vec<[IoSliceMut<'_>; 1]> = (0..BATCH)
                .map(|_| {
                    [IoSliceMut::new(
                        it.next().map_or(&mut [][..], |b| &mut b[..]),
                    )]
                })
                .collect();
            match recvmmsg(
                fd,
                &mut hdrs,
                iovs.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(res) => {
                    let mut k = 0;
                    for m in res {
                        let ts = m.cmsgs().ok().and_then(|mut c| {
                            c.find_map(|c| match c {
                                ControlMessageOwned::ScmTimestampns(t) => {
                                    Some(t.tv_sec() * 1_000_000_000 + t.tv_nsec())
                                }
                                _ => None,
                            })
                        });
                        let src = m.address.map(|a| SocketAddr::V4(a.into()));
                        meta[k] = (m.bytes, src, ts.unwrap_or(0));
                        k += 1;
                    }
                    k
                }
                Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => 0,
                Err(e) => return Err(e).context("recvmmsg"),
            }
        };
        for (k, &(len, src, ts)) in meta.iter().enumerate().take(got) {
            let (Some(src), true) = (src, len >= 12 && ts != 0) else {
                continue;
            };
            let b = &bufs[k];
            let rtp_ts = u32::from_be_bytes([b[4], b[5], b[6], b[7]]);
            let e = streams.entry(src).or_insert_with(|| {
                shared.streams.fetch_add(1, Ordering::Relaxed);
                Vec::new()
            });
            if phase == MEASURE {
                e.push((rtp_ts, ts));
            }
        }
    }
}

/// The pacing figures of a set of streams.
pub(crate) struct Pacing {
    /// Each packet's deviation from its stream's ideal schedule, µs.
    pub(crate) deviation_us: Histogram<u64>,
    /// |inter-arrival − 20 ms| between consecutive packets of a stream, µs.
    pub(crate) interval_err_us: Histogram<u64>,
    /// Streams with at least two packets in the window.
    pub(crate) streams: usize,
    /// Packets in the window.
    pub(crate) packets: u64,
    /// Packets missing from the streams' RTP timestamp sequences in the window.
    pub(crate) lost: u64,
}

/// Computes [`Pacing`] over `streams`.
pub(crate) fn pacing(streams: &[HashMap<SocketAddr, Samples>]) -> Pacing {
    let h = || Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds");
    let mut p = Pacing {
        deviation_us: h(),
        interval_err_us: h(),
        streams: 0,
        packets: 0,
        lost: 0,
    };
    for s in streams.iter().flat_map(HashMap::values) {
        if s.len() < 2 {
            continue;
        }
        p.streams += 1;
        p.packets += s.len() as u64;
        let base = s[0].0;
        // 8 kHz: one tick is 125 µs.
        let offs: Vec<i64> = s
            .iter()
            .map(|&(t, at)| at - i64::from(t.wrapping_sub(base)) * 125_000)
            .collect();
        let phase = offs.iter().copied().min().unwrap_or(0);
        for o in &offs {
            let _ = p
                .deviation_us
                .record(u64::try_from((o - phase) / 1000).unwrap_or(0).max(1));
        }
        for w in s.windows(2) {
            let gap = (w[1].1 - w[0].1 - 20_000_000).unsigned_abs() / 1000;
            let _ = p.interval_err_us.record(gap.max(1));
        }
        let span = u64::from(s[s.len() - 1].0.wrapping_sub(base)) / 160 + 1;
        p.lost += span.saturating_sub(s.len() as u64);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_perfect_stream_has_no_deviation_and_a_late_packet_counts() {
        let src: SocketAddr = "127.0.0.1:1000".parse().unwrap();
        let mut s: Samples = (0..50)
            .map(|k| (k * 160, i64::from(k) * 20_000_000 + 5_000_000))
            .collect();
        s[10].1 += 3_000_000;
        s.remove(20);
        let p = pacing(&[HashMap::from([(src, s)])]);
        assert_eq!(p.streams, 1);
        assert_eq!(p.lost, 1);
        assert!(p.deviation_us.value_at_quantile(0.5) <= 1);
        assert!(p.deviation_us.max() >= 2_990);
    }
}
