//! One measured pass: packets handed to the relay in bursts, the clock read once per burst.

use std::time::{Duration, Instant};

use anyhow::ensure;
use relay::{BurstPacket, Relay, Verdict};

use crate::setup::Packet;

/// How packets reach the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `handle_packet_at`, one call per packet.
    PerPacket,
    /// `handle_packets`, one call per burst (its first stage prefetches the burst's legs).
    Burst,
    /// `Relay::lane`, one `Lane::forward_v4` per packet, the full path for what it declines:
    /// the DPDK worker's way.
    Lane,
}

impl Api {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::PerPacket => "handle_packet_at",
            Self::Burst => "handle_packets",
            Self::Lane => "lane",
        }
    }
}

/// What a pass did.
pub(crate) struct Pass {
    pub(crate) packets: u64,
    /// Wall-clock time.
    pub(crate) elapsed: Duration,
    /// The thread's time on a CPU (`/proc/thread-self/schedstat`), if readable: on a
    /// shared machine the wall clock also counts the time other processes held the core.
    pub(crate) on_cpu: Option<Duration>,
}

/// This thread's time on a CPU so far (the first field of `/proc/thread-self/schedstat`,
/// nanoseconds). Reads into a stack buffer: no allocation.
pub(crate) fn on_cpu() -> Option<Duration> {
    use std::io::Read;
    let mut f = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
    let mut buf = [0u8; 128];
    let n = f.read(&mut buf).ok()?;
    let text = std::str::from_utf8(&buf[..n]).ok()?;
    let ns: u64 = text.split_ascii_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(ns))
}

/// Feeds `packets` packets (rounded up to whole bursts) from `pk`, in memory order and
/// round-robin, and checks that every one was forwarded (by the relay's counters, so that
/// the loop itself does no extra work per packet).
pub(crate) fn run(
    relay: &mut Relay,
    pk: &mut [Packet],
    packets: u64,
    burst: usize,
    api: Api,
) -> anyhow::Result<Pass> {
    let n = pk.len();
    let tx0 = relay.stats().tx_packets;
    let mut i = 0;
    let mut done = 0u64;
    let cpu0 = on_cpu();
    let start = Instant::now();
    while done < packets {
        let now = Instant::now();
        let mut left = burst;
        while left > 0 {
            let k = left.min(n - i);
            let chunk = &mut pk[i..i + k];
            match api {
                Api::Burst => relay.handle_packets(now, chunk),
                Api::Lane => relay.handle_packets_lane(now, chunk),
                Api::PerPacket => {
                    for p in chunk {
                        let v = relay.handle_packet_at(now, p.src, p.addr, p.port, &mut p.payload);
                        std::hint::black_box(v);
                    }
                }
            }
            left -= k;
            i += k;
            if i == n {
                i = 0;
            }
        }
        done += burst as u64;
    }
    let elapsed = start.elapsed();
    let cpu = on_cpu().zip(cpu0).map(|(b, a)| b.saturating_sub(a));
    let forwarded = relay.stats().tx_packets - tx0;
    ensure!(forwarded == done, "only {forwarded} of {done} forwarded");
    Ok(Pass {
        packets: done,
        elapsed,
        on_cpu: cpu,
    })
}

/// The lane's burst loop, as a method of the relay so that callgrind's
/// `--toggle-collect='*Relay*handle_packet*'` counts it as the relay's own.
pub(crate) trait LaneBurst {
    fn handle_packets_lane(&mut self, now: Instant, chunk: &mut [Packet]);
}

impl LaneBurst for Relay {
    #[inline(never)]
    fn handle_packets_lane(&mut self, now: Instant, chunk: &mut [Packet]) {
        let mut declined = [u8::MAX; 64];
        let mut n = 0;
        let mut lane = self.lane(now);
        for (i, p) in chunk.iter().enumerate() {
            let fwd = match p.src {
                std::net::SocketAddr::V4(s) => lane.forward_v4(p.addr, p.port, s, &p.payload),
                std::net::SocketAddr::V6(_) => None,
            };
            match fwd {
                Some(f) => {
                    std::hint::black_box(f);
                }
                None if n < declined.len() => {
                    declined[n] = i as u8;
                    n += 1;
                }
                None => {}
            }
        }
        drop(lane);
        for &i in &declined[..n] {
            let p = &mut chunk[usize::from(i)];
            let v = self.handle_packet_at(now, p.src, p.addr, p.port, &mut p.payload);
            std::hint::black_box(v);
        }
    }
}

impl BurstPacket for Packet {
    fn dst(&self) -> (u8, u16) {
        (self.addr, self.port)
    }
    fn src(&self) -> std::net::SocketAddr {
        self.src
    }
    fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.payload
    }
    fn set_verdict(&mut self, v: Verdict) {
        std::hint::black_box(v);
    }
}

/// The fast-path leg table's memory: every slot's hot line and counters.
pub(crate) fn fast_path_bytes(relay: &Relay) -> usize {
    relay.table().fast_path_bytes()
}

/// The size of the per-leg struct the fast path reads.
pub(crate) fn hot_struct_bytes() -> usize {
    std::mem::size_of::<relay::leg::Leg>()
}
