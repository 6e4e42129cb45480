//! Relay-core throughput and per-packet latency, no I/O.
//!
//! Builds one [`relay::Relay`] with N bridged legs (N/2 bridges), pre-builds one 172-byte
//! RTP packet (12-byte header + 160 bytes of G.711) per leg, and feeds them round-robin to
//! `handle_packet` in bursts, reading the clock once per burst as the worker does. Reports
//! packets/s on one core, ns/packet, and a per-packet latency histogram (each call timed
//! individually; the timer's own overhead is printed alongside).
//!
//! Legs that do not fit the ports above `--first-port` on one media address spread over
//! further addresses (leg `i` on address `i / per_address`), as a media node with
//! `media.extra_addresses` does: `--legs 100000` uses four addresses from port 1024.
//!
//! ```text
//! cargo run --release -p callbridge-perf --bin relay_core -- --legs 1000 --legs 10000
//! ```
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context};
use clap::Parser;
use dp_api::{Codec, Command, Latch, LegId, LegSpec, SrcMismatch};
use hdrhistogram::Histogram;
use relay::{Relay, RelayConfig, Verdict};
use wire::rtp::RtpRepr;

#[derive(Parser, Debug)]
#[command(about = "Relay core packets/s and per-packet latency (no I/O)")]
struct Args {
    /// Bridged leg counts to measure (even; each run uses a fresh relay).
    #[arg(long = "legs", default_values_t = [1000usize, 10000])]
    legs: Vec<usize>,
    /// Packets per run.
    #[arg(long, default_value_t = 20_000_000)]
    packets: u64,
    /// Packets per burst (the clock is read once per burst).
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// First RTP port.
    #[arg(long, default_value_t = 10000)]
    first_port: u16,
    /// Feed the legs in a fixed pseudo-random order instead of leg by leg: real traffic
    /// reaches a large leg table in no particular order, while the in-order sweep lets the
    /// hardware prefetcher stream the table (and each bridged peer is the next leg).
    #[arg(long)]
    shuffled: bool,
}

struct Setup {
    relay: Relay,
    /// Per leg: (source address, destination address index, destination port, packet).
    packets: Vec<(SocketAddr, u8, u16, [u8; 172])>,
}

fn setup(legs: usize, first_port: u16) -> anyhow::Result<Setup> {
    ensure!(
        legs >= 2 && legs & 1 == 0,
        "legs must be even and at least 2"
    );
    let first_port = first_port + first_port % 2;
    let per_addr = (65536 - usize::from(first_port)) / 2;
    let addresses = legs.div_ceil(per_addr);
    ensure!(
        per_addr > 0 && addresses <= dp_api::MAX_ADDRESSES,
        "{legs} legs do not fit {} media addresses above port {first_port}",
        dp_api::MAX_ADDRESSES
    );
    let last = u32::from(first_port) + 2 * legs.min(per_addr) as u32 - 1;
    let mut cfg = RelayConfig::new(first_port..=last as u16, 1024);
    cfg.addresses = addresses;
    let mut relay = Relay::new(cfg);
    let t0 = Instant::now();
    let mut packets = Vec::with_capacity(legs);
    let payload = [0xd5u8; 160];
    for i in 0..legs {
        let (addr, port) = ((i / per_addr) as u8, first_port + 2 * (i % per_addr) as u16);
        let id = LegId::at(addr, port, 1);
        let remote = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8)),
            40000,
        );
        relay.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id,
                remote: Some(remote),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcma,
                media_timeout: Some(Duration::from_secs(30)),
            }),
        );
        if i % 2 == 1 {
            relay.handle_command(
                t0,
                Command::Bridge {
                    a: LegId::at(
                        ((i - 1) / per_addr) as u8,
                        first_port + 2 * ((i - 1) % per_addr) as u16,
                        1,
                    ),
                    b: id,
                },
            );
        }
        let mut pkt = [0u8; 172];
        RtpRepr::simple(
            8,
            i as u16,
            160 * i as u32,
            0x1000_0000 + i as u32,
            &payload,
        )
        .emit(&mut pkt);
        packets.push((remote, addr, port, pkt));
    }
    while let Some(ev) = relay.poll_event() {
        ensure!(
            matches!(ev, dp_api::Event::LegAdded { .. }),
            "set-up failed: {ev:?}"
        );
    }
    Ok(Setup { relay, packets })
}

/// Throughput: no per-packet timing.
fn throughput(s: &mut Setup, packets: u64, burst: usize) -> anyhow::Result<(f64, f64)> {
    let n = s.packets.len();
    let mut i = 0;
    let mut forwarded = 0u64;
    let start = Instant::now();
    let mut done = 0u64;
    while done < packets {
        let now = Instant::now();
        for _ in 0..burst {
            let (src, addr, port, pkt) = &mut s.packets[i];
            if let Verdict::Forward { .. } = s.relay.handle_packet_at(now, *src, *addr, *port, pkt)
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
    let el = start.elapsed();
    ensure!(forwarded == done, "only {forwarded} of {done} forwarded");
    let pps = done as f64 / el.as_secs_f64();
    Ok((pps, el.as_nanos() as f64 / done as f64))
}

/// Latency: every call timed.
fn latency(s: &mut Setup, packets: u64, burst: usize) -> anyhow::Result<Histogram<u64>> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).context("histogram")?;
    let n = s.packets.len();
    let mut i = 0;
    let mut done = 0u64;
    while done < packets {
        let now = Instant::now();
        for _ in 0..burst {
            let (src, addr, port, pkt) = &mut s.packets[i];
            let t = Instant::now();
            let v = s.relay.handle_packet_at(now, *src, *addr, *port, pkt);
            let ns = t.elapsed().as_nanos() as u64;
            black_box(v);
            h.saturating_record(ns.max(1));
            i += 1;
            if i == n {
                i = 0;
            }
        }
        done += burst as u64;
    }
    Ok(h)
}

fn timer_overhead() -> u64 {
    let mut best = u64::MAX;
    for _ in 0..100_000 {
        let t = Instant::now();
        let ns = black_box(t).elapsed().as_nanos() as u64;
        best = best.min(ns);
    }
    best
}

fn print_metric(label: &str, h: &Histogram<u64>) {
    println!(
        "{label:<12} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8}",
        h.mean(),
        h.min(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.max()
    );
}

/// Fisher–Yates with a fixed xorshift seed: the same order on every run.
fn shuffle<T>(v: &mut [T]) {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    for i in (1..v.len()).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.burst >= 1, "burst must be at least 1");
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!(
        "relay_core: one core, no I/O, 172-byte RTP, burst {}, {} packets per run, legs {}, commit {}",
        args.burst,
        args.packets,
        if args.shuffled { "shuffled" } else { "in order" },
        commit.trim()
    );
    println!(
        "timer overhead (min Instant::now→elapsed): {} ns, included in latencies below",
        timer_overhead()
    );
    for &legs in &args.legs {
        let mut s = setup(legs, args.first_port)?;
        if args.shuffled {
            shuffle(&mut s.packets);
        }
        // Warm up caches and branch predictors.
        throughput(&mut s, (legs as u64 * 4).max(100_000), args.burst)?;
        let (pps, ns) = throughput(&mut s, args.packets, args.burst)?;
        let h = latency(&mut s, args.packets / 4, args.burst)?;
        println!();
        println!(
            "{legs} bridged legs: {:.2} Mpps per core, {ns:.1} ns/packet",
            pps / 1e6
        );
        println!(
            "{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "ns/packet", "AVG", "P0", "P50", "P90", "P99", "P100"
        );
        print_metric("handle_pkt", &h);
        let st = s.relay.stats();
        ensure!(st.drops.total() == 0, "unexpected drops: {:?}", st.drops);
    }
    Ok(())
}
