//! SRTP transcrypting cost in the relay core: one bridge, one direction, no I/O.
//!
//! Two legs bridged; packets from the customer (leg A) are relayed to the agent (leg B).
//! `--mode plain`: both legs plain (today's path). `--mode srtp-to-plain`: A is an SRTP leg,
//! its packets are SRTP made by a peer-side libsrtp session beforehand (distinct sequence
//! numbers, so none is a replay), and come out plain. `--mode plain-to-srtp`: B is an SRTP
//! leg, plain packets from A come out encrypted. Every packet goes through one
//! `#[inline(never)]` function, `relay_one`, so callgrind can count instructions per packet
//! deterministically:
//!
//! ```text
//! cargo build --release -p callbridge-perf --bin relay_srtp
//! valgrind --tool=callgrind --toggle-collect='relay_srtp::relay_one' \
//!     target/release/relay_srtp --mode srtp-to-plain --packets 20000
//! ```
//! then divide the collected `Ir` by `--packets`. Without valgrind it also prints ns/packet.
#![forbid(unsafe_code)]

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use anyhow::{ensure, Context};
use clap::{Parser, ValueEnum};
use dp_api::{Codec, Command, Latch, LegId, LegSpec, SrcMismatch, SrtpKey, SrtpKeys};
use relay::{Datagram, Relay, RelayConfig, Verdict, TRAILER_ROOM};
use srtp::{MasterKey, Session, Suite};
use wire::rtp::RtpRepr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Mode {
    /// Both legs plain.
    Plain,
    /// SRTP in on A, plain out on B.
    SrtpToPlain,
    /// Plain in on A, SRTP out on B.
    PlainToSrtp,
}

#[derive(Parser, Debug)]
#[command(about = "Relay-core cost of SRTP transcrypting (no I/O)")]
struct Args {
    /// Which legs are SRTP.
    #[arg(long, value_enum, default_value_t = Mode::SrtpToPlain)]
    mode: Mode,
    /// Packets relayed (each a distinct 172-byte RTP packet, 160 bytes of G.711).
    #[arg(long, default_value_t = 20_000)]
    packets: u16,
}

const A: LegId = LegId::new(20000, 1);
const B: LegId = LegId::new(20002, 1);
const SUITE: Suite = Suite::AesCm128HmacSha1_80;

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 40000)
}

fn keys(recv: u8, send: u8) -> Option<SrtpKeys> {
    Some(SrtpKeys {
        recv: SrtpKey {
            suite: SUITE,
            key: MasterKey::new([recv; MasterKey::LEN]),
        },
        send: SrtpKey {
            suite: SUITE,
            key: MasterKey::new([send; MasterKey::LEN]),
        },
    })
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
    for (id, last) in [(A, 1), (B, 2)] {
        relay.handle_command(
            t0,
            Command::AddLeg(LegSpec {
                id,
                remote: Some(addr(last)),
                latch: Latch::Off,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcma,
                media_timeout: None,
            }),
        );
    }
    relay.handle_command(t0, Command::Bridge { a: A, b: B });
    match args.mode {
        Mode::Plain => {}
        Mode::SrtpToPlain => relay.handle_command(
            t0,
            Command::SetSrtp {
                leg: A,
                keys: keys(1, 2),
            },
        ),
        Mode::PlainToSrtp => relay.handle_command(
            t0,
            Command::SetSrtp {
                leg: B,
                keys: keys(3, 4),
            },
        ),
    }
    while let Some(ev) = relay.poll_event() {
        ensure!(
            matches!(ev, dp_api::Event::LegAdded { .. }),
            "set-up failed: {ev:?}"
        );
    }
    // The customer's phone, for SRTP in.
    let mut phone =
        Session::outbound(SUITE, &MasterKey::new([1; MasterKey::LEN])).context("peer session")?;
    let n = usize::from(args.packets);
    let mut bufs = Vec::with_capacity(n);
    for seq in 0..args.packets {
        let mut b = [0u8; 172 + TRAILER_ROOM];
        RtpRepr::simple(8, seq, 160 * u32::from(seq), 0xc0c0, &[0xd5; 160]).emit(&mut b);
        let len = if args.mode == Mode::SrtpToPlain {
            phone.protect_rtp(&mut b, 172).context("protect")?
        } else {
            172
        };
        bufs.push((b, len));
    }
    let start = Instant::now();
    let mut forwarded = 0usize;
    let mut bytes_out = 0usize;
    for (b, len) in &mut bufs {
        let mut d = Datagram::new(b, *len);
        if let Verdict::Forward { .. } = relay_one(&mut relay, t0, &mut d) {
            forwarded += 1;
            bytes_out += d.len;
        }
        black_box(&d);
    }
    let el = start.elapsed();
    ensure!(
        forwarded == n,
        "only {forwarded} of {n} forwarded: {:?}",
        relay.stats()
    );
    println!(
        "relay-srtp: mode {:?}, {n} packets, {} bytes out each, {:.0} ns/packet",
        args.mode,
        bytes_out / n.max(1),
        el.as_nanos() as f64 / n as f64
    );
    Ok(())
}
