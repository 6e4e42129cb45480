//! G.711 law conversion cost in the relay core: one bridge, one direction, no I/O.
//!
//! Two plain legs bridged; packets from the customer (leg A) are relayed to the agent (leg B).
//! `--mode same-law`: both legs PCMA at 8 with telephone-event 101 (equal payload types: the
//! path every bridge took before conversion existed). `--mode renumber`: the same law, B numbers
//! it 97 (the payload type byte is rewritten, no conversion). `--mode convert`: A is PCMU at 0,
//! B PCMA at 8, so every 160-byte payload goes through `g711::ULAW_TO_ALAW`. Each packet goes
//! through one `#[inline(never)]` function, `relay_one`, so callgrind can count instructions
//! per packet deterministically:
//!
//! ```text
//! CARGO_PROFILE_BENCH_LTO=fat CARGO_PROFILE_BENCH_CODEGEN_UNITS=1 CARGO_PROFILE_BENCH_DEBUG=1 \
//!     cargo build --profile bench -p callbridge-perf --bin relay_g711
//! valgrind --tool=callgrind --toggle-collect='relay_g711::relay_one' \
//!     target/release/relay_g711 --mode convert --packets 20000
//! ```
//! then divide the collected `Ir` by `--packets`. Without valgrind it also prints ns/packet.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::ensure;
use clap::{Parser, ValueEnum};
use dp_api::{Codec, Command, Latch, LegId, LegSpec, PayloadTypes, SrcMismatch};
use relay::{Datagram, Relay, RelayConfig, Verdict};
use wire::rtp::RtpRepr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Equal payload types on both legs (PCMA 8, telephone-event 101).
    SameLaw,
    /// PCMA on both legs, numbered 8 on A and 97 on B.
    Renumber,
    /// PCMU 0 on A, PCMA 8 on B: every payload converted.
    Convert,
}

#[derive(Parser, Debug)]
#[command(about = "Relay-core cost of G.711 µ-law ↔ A-law conversion (no I/O)")]
struct Args {
    /// What the two legs negotiated.
    #[arg(long, value_enum, default_value_t = Mode::Convert)]
    mode: Mode,
    /// Packets relayed (each a distinct 172-byte RTP packet, 160 bytes of G.711).
    #[arg(long, default_value_t = 20_000)]
    packets: u16,
}

const A: LegId = LegId::new(20000, 1);
const B: LegId = LegId::new(20002, 1);

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 40000)
}

/// One packet through the relay: the unit callgrind counts.
#[inline(never)]
fn relay_one(relay: &mut Relay, now: Instant, d: &mut Datagram<'_>) -> Verdict {
    relay.handle_datagram(now, addr(1), 0, A.port(), d)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let t0 = Instant::now();
    let mut relay = Relay::new(RelayConfig::new(20000..=20003, 64));
    let pcma = PayloadTypes {
        telephone_event: Some(101),
        ..PayloadTypes::of(Codec::Pcma)
    };
    let (a, b) = match args.mode {
        Mode::SameLaw => (pcma, pcma),
        Mode::Renumber => (pcma, PayloadTypes { audio: 97, ..pcma }),
        Mode::Convert => (
            PayloadTypes {
                telephone_event: Some(101),
                ..PayloadTypes::of(Codec::Pcmu)
            },
            pcma,
        ),
    };
    for (id, last, types) in [(A, 1, a), (B, 2, b)] {
        relay.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id,
                remote: Some(addr(last)),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: types.codec,
                media_timeout: None,
            }),
        );
        relay.handle_command(t0, Command::SetPayloadTypes { leg: id, types });
    }
    relay.handle_command(t0, Command::Bridge { a: A, b: B });
    while let Some(ev) = relay.poll_event() {
        ensure!(
            matches!(ev, dp_api::Event::LegAdded { .. }),
            "set-up failed: {ev:?}"
        );
    }
    let n = usize::from(args.packets);
    let mut bufs = Vec::with_capacity(n);
    for seq in 0..args.packets {
        let mut b = [0u8; 172];
        // A ramp of codes, so the table lookups are not all one entry.
        let payload: [u8; 160] = std::array::from_fn(|i| (i as u8).wrapping_add(seq as u8));
        RtpRepr::simple(a.audio, seq, 160 * u32::from(seq), 0xc0c0, &payload).emit(&mut b);
        bufs.push(b);
    }
    let start = Instant::now();
    let mut forwarded = 0usize;
    let mut rewritten = 0usize;
    for b in &mut bufs {
        let mut d = Datagram::new(b, 172);
        if let Verdict::Forward { .. } = relay_one(&mut relay, t0, &mut d) {
            forwarded += 1;
            rewritten += usize::from(d.payload_rewritten);
        }
        black_box(&d);
    }
    let el = start.elapsed();
    ensure!(
        forwarded == n,
        "only {forwarded} of {n} forwarded: {:?}",
        relay.stats()
    );
    ensure!(
        bufs.iter().all(|p| p[1] & 0x7f == b.audio),
        "payload type not {}",
        b.audio
    );
    println!(
        "relay-g711: mode {:?}, {n} packets, {rewritten} payloads converted, {:.0} ns/packet",
        args.mode,
        el.as_nanos() as f64 / n as f64
    );
    Ok(())
}
