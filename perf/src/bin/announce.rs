//! `scripts/perf announce [--quick]`: how many customers can hear the announcement at once
//! with its 20 ms pacing intact (issue 9, scenario 6).
//!
//! Driven the real way: `POST /v1/bridges` with customers played by SIPp (they answer at once;
//! their SDP answer names one of this benchmark's UDP receivers) and agents played by SIPp
//! phones that ring and never answer, so every customer leg plays the looping announcement while
//! its agent rings (`flow.agent_ring_secs` is set far beyond the run). N rises in bounded steps
//! (a fresh callbridge and fresh SIPps each); once all N streams arrive, every packet of a
//! `--window-secs` window is stamped by the kernel (`SO_TIMESTAMPNS`) and its deviation from
//! its stream's ideal 20 ms schedule goes into an hdrhistogram (see `announce/rx.rs`). The
//! largest N whose p99 is under 1 ms is `max_streams_p99_under_1ms`, an object per backend:
//! `{"socket": N, "dpdk": M}`.
//!
//! Backends (`--backends socket,dpdk`, both by default): `socket` keeps everything on loopback;
//! `dpdk` gives callbridge's media address to a DPDK port (`net_af_packet` on a veth pair) and
//! binds the receivers beyond it, in a network namespace this run creates (see `announce/lab.rs`;
//! needs root and a callbridge built with `--features dpdk`). SIP stays on loopback for both;
//! the customers' SDP names the receivers' address either way (`rtp_ip`). On the DPDK backend
//! the worker busy-polls its core, so callbridge's CPU share there says nothing about load.

#![forbid(unsafe_code)]

#[path = "announce/lab.rs"]
mod lab;
#[path = "announce/rx.rs"]
mod rx;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use callbridge_perf::harness::{self, send_paced, Callbridge, CbConfig, Sipp, Workdir};
use callbridge_perf::report::Report;
use clap::Parser;
use serde_json::{json, Value};

/// Control (HTTP, SIP, SIPp, the receivers) and media addresses of this scenario.
const CONTROL: Ipv4Addr = Ipv4Addr::new(127, 0, 30, 1);
const MEDIA: [Ipv4Addr; 3] = [
    Ipv4Addr::new(127, 0, 30, 11),
    Ipv4Addr::new(127, 0, 30, 12),
    Ipv4Addr::new(127, 0, 30, 13),
];
/// The pacing bar.
const BAR_US: u64 = 1000;

#[derive(Parser, Debug)]
#[command(
    about = "customers hearing the announcement at once: the largest N with pacing p99 < 1 ms"
)]
struct Args {
    /// Small and fast (a smoke test; figures not for quoting).
    #[arg(long)]
    quick: bool,
    /// The callbridge binary (default $PERF_BIN_DIR/callbridge, else target/release/callbridge).
    #[arg(long)]
    callbridge: Option<PathBuf>,
    /// Simultaneous announcement streams to try, rising; stops after the first over the bar.
    #[arg(long, value_delimiter = ',')]
    streams: Option<Vec<usize>>,
    /// Seconds of packets measured per step, once all streams are up.
    #[arg(long)]
    window_secs: Option<f64>,
    /// Set-up rate of the calls (calls/s).
    #[arg(long)]
    rate: Option<f64>,
    /// Stop the ramp after a step whose pacing p99 reaches this (µs).
    #[arg(long, default_value_t = 5000)]
    stop_us: u64,
    /// SIPp processes per role (one receiver per customer SIPp).
    #[arg(long, default_value_t = 2)]
    sipp_per_role: usize,
    /// The data-plane backends to measure, in order (`socket`, `dpdk`).
    #[arg(long, value_delimiter = ',', default_values_t = [Backend::Socket, Backend::Dpdk])]
    backends: Vec<Backend>,
}

/// A data-plane backend under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Backend {
    /// UDP sockets on loopback.
    Socket,
    /// DPDK (`net_af_packet`) on a veth pair, receivers in a namespace.
    Dpdk,
}

impl Backend {
    const fn name(self) -> &'static str {
        match self {
            Self::Socket => "socket",
            Self::Dpdk => "dpdk",
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What one backend's ramp found.
#[derive(Debug, Default)]
struct Ramp {
    best: Option<usize>,
    best_2ms: Option<usize>,
    stop_note: Option<String>,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("announce: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = harness::callbridge_bin(args.callbridge.as_deref())?;
    harness::require_sipp()?;
    for f in ["uas_answer_rtp_port_wait_bye.xml", "uas_ring.xml"] {
        let p = harness::sipp_scenario(f);
        anyhow::ensure!(p.is_file(), "SIPp scenario {} is missing", p.display());
    }
    let nofile = harness::raise_fd_limit(1 << 20)?;
    let q = args.quick;
    let ns = args.streams.clone().unwrap_or_else(|| {
        if q {
            vec![20, 50]
        } else {
            vec![10, 100, 250, 500, 1000, 2000, 4000]
        }
    });
    let window = Duration::from_secs_f64(args.window_secs.unwrap_or(if q { 2.0 } else { 5.0 }));
    let rate = args.rate.unwrap_or(if q { 100.0 } else { 250.0 });
    let mut report = Report::new(
        "announce",
        json!({"streams": ns, "window_secs": window.as_secs_f64(), "rate": rate, "sipp_per_role": args.sipp_per_role,
               "nofile": nofile, "callbridge": bin.display().to_string(), "bar_us": BAR_US,
               "clock": "SO_TIMESTAMPNS (kernel receive time on loopback), 1 µs histogram resolution",
               "pacing_error": "per packet: arrival − (its stream's earliest arrival − slot × 20 ms by RTP timestamp)"}),
    );
    report.quick(q);
    let work = Workdir::new("announce")?;
    let mut ramps = Vec::new();
    for &backend in &args.backends {
        // The DPDK lab lives for the whole ramp (one namespace, one veth pair); each step
        // starts a fresh callbridge on it.
        let lab = match backend {
            Backend::Socket => None,
            Backend::Dpdk => {
                anyhow::ensure!(
                    nix::unistd::geteuid().is_root(),
                    "announce: the dpdk backend needs root (a network namespace, a veth pair, DPDK's AF_PACKET port); \
                     run as root or pass --backends socket"
                );
                Some(lab::Lab::create().context("creating the DPDK announce lab")?)
            }
        };
        let ramp = ramp(
            &args,
            &bin,
            &work,
            backend,
            lab.as_ref(),
            &ns,
            rate,
            window,
            &mut report,
        )?;
        ramps.push((backend, ramp));
    }
    let per = |f: fn(&Ramp) -> Option<usize>| -> Value {
        let mut m = serde_json::Map::new();
        for b in [Backend::Socket, Backend::Dpdk] {
            let v = ramps.iter().find(|(k, _)| *k == b).and_then(|(_, r)| f(r));
            m.insert(b.name().into(), json!(v));
        }
        Value::Object(m)
    };
    let limits: serde_json::Map<String, Value> = ramps
        .iter()
        .map(|(b, r)| (b.name().to_owned(), json!(r.stop_note)))
        .collect();
    report
        .set("max_streams_p99_under_2ms", per(|r| r.best_2ms))
        .set("max_streams_p99_under_1ms", per(|r| r.best))
        .set(
            "backends",
            json!(args.backends.iter().map(|b| b.name()).collect::<Vec<_>>()),
        )
        .set("limit", Value::Object(limits))
        .set("loadavg_end", harness::loadavg());
    let headline = ramps
        .iter()
        .map(|(b, r)| {
            let one = r.best.map_or_else(|| "none".to_owned(), |n| n.to_string());
            let two = r
                .best_2ms
                .map_or_else(|| "none".to_owned(), |n| n.to_string());
            let tail = r
                .stop_note
                .as_ref()
                .map_or(String::new(), |s| format!(", ramp stopped: {s}"));
            format!("{b} {one} streams with pacing p99 < 1 ms [p99 < 2 ms: {two}{tail}]")
        })
        .collect::<Vec<_>>()
        .join("; ");
    report.finish(&headline)?;
    Ok(())
}

/// One backend's ramp: rising N until a step misses streams or its p99 passes `--stop-us`.
#[allow(clippy::too_many_arguments)]
fn ramp(
    args: &Args,
    bin: &Path,
    work: &Workdir,
    backend: Backend,
    lab: Option<&lab::Lab>,
    ns: &[usize],
    rate: f64,
    window: Duration,
    report: &mut Report,
) -> anyhow::Result<Ramp> {
    let mut r = Ramp::default();
    for &n in ns {
        let run = step(
            bin,
            &work.path().join(format!("{backend}-n{n}")),
            n,
            rate,
            window,
            args.sipp_per_role,
            lab,
        )?;
        eprintln!(
            "announce: {backend}: {n} streams: {} seen, pacing p50 {} / p99 {} / max {} µs, lost {}, callbridge CPU {:.0} %",
            run["streams_seen"], run["deviation_us"]["p50"], run["deviation_us"]["p99"], run["deviation_us"]["max"],
            run["lost"], run["callbridge_cpu_pct"].as_f64().unwrap_or(0.0)
        );
        let ok = run["under_bar"].as_bool().unwrap_or(false);
        let p99 = run["deviation_us"]["p99"].as_u64();
        let note = run["short"].as_str().map(str::to_owned);
        report.run(run);
        if ok {
            r.best = Some(n);
        }
        if p99.is_some_and(|v| v < 2 * BAR_US) && note.is_none() {
            r.best_2ms = Some(n);
        }
        // Past the bar the ramp goes on (to show how pacing degrades with N) until the streams
        // do not all arrive or p99 passes --stop-us.
        if let Some(note) = note {
            r.stop_note = Some(note);
            break;
        }
        if p99.is_none_or(|v| v >= args.stop_us) {
            r.stop_note = Some(format!("pacing p99 {} µs at {n} streams", p99.unwrap_or(0)));
            break;
        }
    }
    Ok(r)
}

/// One step: `n` customers hearing the announcement, `window` of their packets measured.
fn step(
    bin: &Path,
    dir: &Path,
    n: usize,
    rate: f64,
    window: Duration,
    sipps: usize,
    lab: Option<&lab::Lab>,
) -> anyhow::Result<Value> {
    std::fs::create_dir_all(dir)?;
    // Where the receivers listen (the customers' SDP names it) and where the relay sends from.
    let (rx_ip, media) = match lab {
        None => (CONTROL, MEDIA.to_vec()),
        Some(_) => (lab::PEER, vec![lab::MEDIA]),
    };
    let shared = Arc::new(rx::Shared::default());
    let mut receivers = Vec::new();
    let mut customers = Vec::new();
    let mut agents = Vec::new();
    for k in 0..sipps {
        let k16 = u16::try_from(k)?;
        let rx_addr = SocketAddr::new(rx_ip.into(), 7000 + k16);
        let sock = match lab {
            None => std::net::UdpSocket::bind(rx_addr)
                .with_context(|| format!("binding the receiver {rx_addr}"))?,
            Some(lab) => lab.bind_udp(rx_addr)?,
        };
        receivers.push(rx::Receiver::start(sock, shared.clone())?);
        customers.push(Sipp::uas(
            dir,
            &format!("customer{k}"),
            "uas_answer_rtp_port_wait_bye.xml",
            SocketAddr::new(CONTROL.into(), 5100 + k16),
            6100 + 10 * k16,
            &[
                ("rtp_ip", rx_ip.to_string()),
                ("rtp_port", rx_addr.port().to_string()),
            ],
        )?);
        agents.push(Sipp::uas(
            dir,
            &format!("agent{k}"),
            "uas_ring.xml",
            SocketAddr::new(CONTROL.into(), 5200 + k16),
            6500 + 10 * k16,
            &[],
        )?);
    }
    let config = CbConfig {
        http: SocketAddr::new(CONTROL.into(), 8080),
        sip: SocketAddr::new(CONTROL.into(), 5060),
        media,
        ports: (10_000, 31_999),
        agents: Vec::new(),
        agent_ring_secs: 3600,
        store: None,
        dpdk: lab.map(lab::Lab::dpdk_table),
    };
    let result = (|| -> anyhow::Result<Value> {
        let mut cb = Callbridge::start(bin, dir, &config)?;
        let load0 = harness::loadavg();
        let ramp = Duration::from_secs_f64(n as f64 / rate);
        let sent = send_paced(
            cb.http(),
            "/v1/bridges",
            n,
            rate,
            4,
            ramp * 2 + Duration::from_secs(10),
            |i| {
                let k = i % sipps;
                json!({"customer": customers[k].uri(&format!("c{i}")), "agent": agents[k].uri(&format!("a{i}"))}).to_string()
            },
        );
        // Every stream up (or the deadline), then one more second for the last ones to settle.
        let t0 = Instant::now();
        while shared.streams.load(Ordering::Relaxed) < sent.accepted.len()
            && t0.elapsed() < Duration::from_secs(20) + ramp
        {
            cb.check_alive()?;
            std::thread::sleep(Duration::from_millis(100));
        }
        std::thread::sleep(Duration::from_secs(1));
        let seen = shared.streams.load(Ordering::Relaxed);
        let cpu0 = harness::cpu_time(cb.pid()).unwrap_or_default();
        let w0 = Instant::now();
        shared.phase.store(rx::MEASURE, Ordering::Relaxed);
        std::thread::sleep(window);
        shared.phase.store(rx::STOP, Ordering::Relaxed);
        let cpu = harness::cpu_time(cb.pid())
            .unwrap_or_default()
            .saturating_sub(cpu0);
        let cpu_pct = 100.0 * cpu.as_secs_f64() / w0.elapsed().as_secs_f64();
        let rss = harness::rss_bytes(cb.pid()).ok();
        cb.check_alive()?;
        Ok(
            json!({"n": n, "accepted": sent.accepted.len(), "refused": sent.refused.len(),
                  "first_refusal": sent.refused.first().map(|r| r.1.clone()), "streams_seen": seen,
                  "callbridge_cpu_pct": (cpu_pct * 10.0).round() / 10.0, "rss_bytes": rss, "loadavg": load0,
                  "cpu_pressure_avg10": harness::cpu_pressure()}),
        )
    })();
    // Stop the receivers whatever happened, then judge.
    shared.phase.store(rx::STOP, Ordering::Relaxed);
    let streams: Vec<_> = receivers
        .into_iter()
        .map(rx::Receiver::join)
        .collect::<anyhow::Result<_>>()?;
    let mut run = result?;
    let p = rx::pacing(&streams);
    let q = |h: &hdrhistogram::Histogram<u64>| {
        if h.is_empty() {
            json!(null)
        } else {
            json!({"p50": h.value_at_quantile(0.5), "p99": h.value_at_quantile(0.99), "p999": h.value_at_quantile(0.999), "max": h.max()})
        }
    };
    let p99 = (!p.deviation_us.is_empty()).then(|| p.deviation_us.value_at_quantile(0.99));
    let seen = run["streams_seen"].as_u64().unwrap_or(0);
    let short = (p.streams < n).then(|| {
        format!(
            "{} of {n} streams arrived in the window (seen before it: {seen})",
            p.streams
        )
    });
    let obj = run.as_object_mut().expect("object");
    obj.insert(
        "backend".into(),
        json!(if lab.is_some() { "dpdk" } else { "socket" }),
    );
    obj.insert("streams_measured".into(), json!(p.streams));
    obj.insert("packets".into(), json!(p.packets));
    obj.insert("lost".into(), json!(p.lost));
    obj.insert("deviation_us".into(), q(&p.deviation_us));
    obj.insert("interval_error_us".into(), q(&p.interval_err_us));
    obj.insert(
        "under_bar".into(),
        json!(short.is_none() && p99.is_some_and(|v| v < BAR_US)),
    );
    obj.insert("short".into(), json!(short));
    Ok(run)
}
