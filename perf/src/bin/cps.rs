//! `scripts/perf cps [--quick]`: call set-ups per second through the HTTP API (issue 9,
//! scenario 5).
//!
//! SIPp UAS processes play the customers (answer at once, hold the call `--hold-ms`, then BYE)
//! and the agents (answer at once, wait for the BYE callbridge sends on), several of each on
//! distinct loopback ports (one SIPp saturates near 1 000-1 250 calls/s). callbridge runs the
//! socket backend on loopback with a media range of 33 000 legs (three media addresses) and an
//! open-file limit raised for its four sockets per call. For each API (`POST /v1/bridges`, and
//! `POST /v1/call-requests` with one agent per call in flight) the rate rises in bounded steps
//! (`--step-secs` of calls each; a fresh callbridge and fresh SIPps per step; a step with a
//! failure is run `--retries` more times) until a step has a failed call: the highest rate a
//! step without failures *achieved* (accepted requests ÷ the time to send them) is
//! `max_cps_zero_failures` (the bridges API; the call-request API's is
//! `max_cps_zero_failures_call_requests`).
//!
//! Set-up latency is request accepted → bridged from the API's own event timestamps (the first
//! event is written in the same commit as the `202`; the `bridged` event when the agent's 200
//! has been answered and the legs bridged), millisecond resolution, read back with
//! `GET /v1/bridges/{id}` after each step. The concurrency sweep holds N calls at once
//! (1k, 2.5k, 5k, 10k; capped by the open-file limit, 4 sockets per call, when it cannot be
//! raised) and divides callbridge's RSS growth (from `/proc/<pid>/status`, before the first call
//! and once all are live) by the calls bridged at that instant.

#![forbid(unsafe_code)]

#[path = "cps/load.rs"]
mod load;
#[path = "cps/sweep.rs"]
mod sweep;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use callbridge_perf::harness::{self, Workdir};
use callbridge_perf::report::Report;
use clap::Parser;
use serde_json::json;

use load::{Api, Outcome, Phase, Rig};

/// Descriptors kept for everything but the calls' sockets (SIP, HTTP, the store, epoll…).
const FD_RESERVE: u64 = 1500;

/// The target of issue 9: set-ups per second with 0 failures on 2 cores.
const TARGET_CPS: f64 = 1000.0;

#[derive(Parser, Debug)]
#[command(about = "call set-ups per second through the HTTP API, with SIPp customers and agents")]
struct Args {
    /// Small and fast (a smoke test; figures not for quoting).
    #[arg(long)]
    quick: bool,
    /// The callbridge binary (default $PERF_BIN_DIR/callbridge, else target/release/callbridge).
    #[arg(long)]
    callbridge: Option<PathBuf>,
    /// Set-up rates to try, rising (calls/s); stops after the first step with a failure.
    #[arg(long, value_delimiter = ',')]
    rates: Option<Vec<u32>>,
    /// Seconds of calls per rate step.
    #[arg(long)]
    step_secs: Option<f64>,
    /// How long customers hold each call before hanging up (ms).
    #[arg(long)]
    hold_ms: Option<u64>,
    /// Simultaneous calls of the concurrency sweep.
    #[arg(long, value_delimiter = ',')]
    sweep: Option<Vec<usize>>,
    /// Set-up rate of the sweep (calls/s).
    #[arg(long)]
    sweep_rate: Option<f64>,
    /// SIPp processes per role (customers, agents).
    #[arg(long, default_value_t = 2)]
    sipp_per_role: usize,
    /// HTTP connections sending requests (each waits for its 202, which follows the store's
    /// commit: enough of them that the client is not the limit; with 64, a 202 taking 100 ms
    /// under load capped the rate sent near 640/s).
    #[arg(long, default_value_t = 256)]
    senders: usize,
    /// The APIs to measure: bridges, call-requests.
    #[arg(long, value_delimiter = ',', default_value = "bridges,call-requests")]
    apis: Vec<String>,
    /// Runs of a rate step with a failed call before the ramp stops.
    #[arg(long, default_value_t = 1)]
    retries: u32,
    /// Put callbridge's store (SQLite, one fsync per commit) in this directory, e.g. /dev/shm
    /// to take the disk out of the set-up path; default: the work directory under $TMPDIR.
    #[arg(long)]
    store_dir: Option<PathBuf>,
    /// Leave out the concurrency sweep.
    #[arg(long)]
    no_sweep: bool,
}

fn main() {
    if let Err(e) = run() {
        eprintln!("cps: error: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> anyhow::Result<()> {
    let args = Args::parse();
    let bin = harness::callbridge_bin(args.callbridge.as_deref())?;
    harness::require_sipp()?;
    load::require_scenarios()?;
    let nofile = harness::raise_fd_limit(1 << 20)?;
    let q = args.quick;
    let rates = args.rates.clone().unwrap_or_else(|| {
        if q {
            vec![20, 50]
        } else {
            vec![100, 200, 400, 600, 800, 1000, 1200, 1500, 2000]
        }
    });
    let step_secs = args.step_secs.unwrap_or(if q { 2.0 } else { 4.0 });
    let hold_ms = args.hold_ms.unwrap_or(if q { 500 } else { 2000 });
    let sweep_ns = args.sweep.clone().unwrap_or_else(|| {
        if q {
            vec![50, 200]
        } else {
            vec![1000, 2500, 5000, 10_000]
        }
    });
    let sweep_rate = args.sweep_rate.unwrap_or(if q { 200.0 } else { 500.0 });
    let settle = Duration::from_secs(if q { 2 } else { 6 });
    let apis: Vec<Api> = args
        .apis
        .iter()
        .map(|a| match a.as_str() {
            "bridges" => Ok(Api::Bridges),
            "call-requests" => Ok(Api::CallRequests),
            o => anyhow::bail!("unknown API {o:?} (bridges, call-requests)"),
        })
        .collect::<anyhow::Result<_>>()?;
    let mut report = Report::new(
        "cps",
        json!({"rates": rates, "step_secs": step_secs, "hold_ms": hold_ms, "sweep": sweep_ns,
               "sweep_rate": sweep_rate, "sipp_per_role": args.sipp_per_role, "senders": args.senders,
               "apis": args.apis, "backend": "socket", "retries": args.retries,
               "store_dir": args.store_dir.as_ref().map(|d| d.display().to_string()), "nofile": nofile, "callbridge": bin.display().to_string(),
               "setup_latency": "API event timestamps: first event (committed with the 202) to the bridged event; 1 ms resolution"}),
    );
    report.quick(q);
    let work = Workdir::new("cps")?;
    let store_work = args
        .store_dir
        .as_deref()
        .map(|d| Workdir::new_in(d, "cps-store"))
        .transpose()?;
    let rig = Rig {
        bin: &bin,
        sipps: args.sipp_per_role,
        senders: args.senders,
        sweep_senders: args.senders.min(16),
        store_dir: store_work.as_ref().map(Workdir::path),
    };

    let mut best: Vec<(Api, Option<u32>, Option<u64>)> = Vec::new();
    for &api in &apis {
        let mut max_ok = None;
        let mut p99 = None;
        for &rate in &rates {
            let mut failed = 0;
            let mut run = json!(null);
            // A step with a failure is run once more (the machine is shared): the rate counts
            // only if a run of it had none.
            for attempt in 0..=args.retries {
                let dir = work.path().join(format!("{}-{rate}-{attempt}", api.name()));
                run = step(&rig, dir, api, rate, step_secs, hold_ms)?;
                run["attempt"] = json!(attempt);
                failed = run["failed"].as_u64().unwrap_or(1);
                if failed == 0 || attempt == args.retries {
                    break;
                }
                eprintln!(
                    "cps: {} {rate}/s: {failed} failed {}, once more",
                    api.name(),
                    run["failures"]
                );
                report.run(run.clone());
            }
            eprintln!(
                "cps: {} {rate}/s: {} calls, sent at {:.0}/s, {} completed, {failed} failed {}, set-up {}",
                api.name(), run["calls"], run["sent_rate"].as_f64().unwrap_or(0.0), run["completed"], run["failures"], run["setup_ms"]
            );
            report.run(run.clone());
            if failed > 0 {
                break;
            }
            // The rate the step achieved (requests accepted ÷ time to send them), not the one
            // asked for: on a loaded machine the two part.
            let achieved = run["sent_rate"]
                .as_f64()
                .unwrap_or(0.0)
                .min(f64::from(rate))
                .round() as u32;
            if max_ok.is_none_or(|m| achieved > m) {
                max_ok = Some(achieved);
                p99 = run["setup_ms"]["p99"].as_u64();
            }
        }
        best.push((api, max_ok, p99));
    }

    let mut per_call = None;
    let mut reached = 0;
    let mut short_note = None;
    if !args.no_sweep {
        // The socket backend holds 4 sockets per call (RTP and RTCP of two legs): past the
        // open-file limit a leg cannot be opened and its call fails (`internal`). A limit that
        // cannot be raised (no CAP_SYS_RESOURCE) caps the sweep; the capped point still runs.
        let fd_cap = usize::try_from(nofile.saturating_sub(FD_RESERVE) / 4).unwrap_or(usize::MAX)
            / 100
            * 100;
        for &want in &sweep_ns {
            let n = want.min(fd_cap);
            if n < want {
                let why = format!(
                    "{want} simultaneous calls need {} sockets; the open-file limit is {nofile} and could not be raised (setrlimit: no CAP_SYS_RESOURCE here), so this point runs {n} calls",
                    4 * want
                );
                eprintln!("cps: {why}");
                short_note = Some(why);
            }
            let p = sweep::point(&rig, work.path(), n, sweep_rate, settle)
                .with_context(|| format!("concurrency sweep at {n} calls"))?;
            eprintln!(
                "cps: sweep {n}: {} bridged at once, {} B RSS/call{}",
                p.bridged,
                p.rss_per_call.map_or("-".into(), |b| format!("{b:.0}")),
                p.short
                    .as_ref()
                    .map_or(String::new(), |s| format!(" (short: {s})"))
            );
            report.run(p.json.clone());
            if p.bridged > reached {
                reached = p.bridged;
                per_call = p.rss_per_call;
            }
            if let Some(s) = p.short {
                short_note = Some(format!("stopped at {n}: {s}"));
                break;
            }
            if n < want {
                break;
            }
        }
    }

    let pick = |a: Api| best.iter().find(|b| b.0 == a).copied();
    let bridges = pick(Api::Bridges);
    let requests = pick(Api::CallRequests);
    let headline_api = bridges.or(requests);
    let max_cps = headline_api.and_then(|b| b.1);
    let p99 = headline_api.and_then(|b| b.2);
    report
        .set("max_cps_zero_failures", max_cps)
        .set(
            "max_cps_zero_failures_api",
            headline_api.map(|b| b.0.name()),
        )
        .set(
            "max_cps_zero_failures_call_requests",
            requests.and_then(|b| b.1),
        )
        .set("setup_p99_ms", p99)
        .set("setup_p99_ms_call_requests", requests.and_then(|b| b.2))
        .set("rss_bytes_per_call", per_call.map(f64::round))
        .set("max_simultaneous_bridged", reached)
        .set("concurrency_note", short_note.clone())
        .set(
            "targets",
            json!({"max_cps_zero_failures": TARGET_CPS, "cores": 2}),
        )
        .set("loadavg_end", harness::loadavg());
    let fmt = |v: Option<u32>| v.map_or("no rate".into(), |v| v.to_string());
    let mut headline = format!(
        "{} set-ups/s with 0 failures (target >= {TARGET_CPS:.0}){}, set-up p99 {} ms, {} RSS per call",
        fmt(max_cps),
        requests.filter(|_| bridges.is_some()).map_or(String::new(), |r| format!(" [call requests: {}]", fmt(r.1))),
        p99.map_or("-".into(), |v| v.to_string()),
        per_call.map_or("- KB".into(), |b| format!("{:.0} KB", b / 1024.0)),
    );
    if let Some(s) = short_note {
        headline.push_str(&format!(" ({reached} simultaneous calls at most: {s})"));
    }
    report.finish(&headline)?;
    Ok(())
}

/// One rate step: a fresh phase, `rate × step_secs` calls at `rate`/s, every call read back.
fn step(
    rig: &Rig<'_>,
    dir: PathBuf,
    api: Api,
    rate: u32,
    step_secs: f64,
    hold_ms: u64,
) -> anyhow::Result<serde_json::Value> {
    let n = ((f64::from(rate) * step_secs).round() as usize).max(10);
    // One agent per call that may be in flight at once (hold + set-up), with a margin.
    let agents = match api {
        Api::Bridges => 0,
        Api::CallRequests => (f64::from(rate) * (hold_ms as f64 / 1000.0 + 3.0)) as usize + 20,
    };
    let tag = dir
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    let mut phase = Phase::start(
        rig.bin,
        dir,
        api,
        rig.sipps,
        hold_ms,
        agents.min(n + 20),
        rig.store(&tag),
    )?;
    let load0 = harness::loadavg();
    let psi0 = harness::cpu_pressure();
    let cpu0 = harness::cpu_time(phase.cb.pid()).unwrap_or_default();
    let max_time = Duration::from_secs_f64(step_secs * 3.0 + 10.0);
    let sent = phase.send(n, f64::from(rate), rig.senders, max_time);
    let idle = phase.wait_idle(Duration::from_millis(hold_ms) + Duration::from_secs(40))?;
    let cpu = harness::cpu_time(phase.cb.pid())
        .unwrap_or_default()
        .saturating_sub(cpu0);
    let records = phase.collect(&sent.accepted, 8)?;
    let mut o = Outcome::of(&records, sent.refused.len());
    if !idle {
        o.failures.insert("still_live_after_deadline".into(), 1);
    }
    let sent_rate = if sent.last.is_zero() {
        0.0
    } else {
        sent.accepted.len() as f64 / sent.last.as_secs_f64()
    };
    let a = &sent.accept_us;
    Ok(json!({
        "phase": "rate", "api": api.name(), "rate": rate, "calls": n, "agents": agents.min(n + 20),
        "sent_rate": (sent_rate * 10.0).round() / 10.0, "send_secs": sent.last.as_secs_f64(),
        "accepted": sent.accepted.len(), "refused": sent.refused.len(),
        "first_refusal": sent.refused.first().map(|r| r.1.clone()),
        "completed": o.completed, "failed": o.failed(), "failures": o.failures,
        "setup_ms": o.setup_json(),
        "accept_us": if a.is_empty() { json!(null) } else { json!({"p50": a.value_at_quantile(0.5), "p99": a.value_at_quantile(0.99), "max": a.max()}) },
        "callbridge_cpu_s": cpu.as_secs_f64(),
        // The whole life of a call (set-up, hold, both BYEs, the store's writes), averaged.
        "callbridge_cpu_ms_per_call": (o.completed > 0).then(|| (cpu.as_secs_f64() * 1e5 / o.completed as f64).round() / 100.0),
        "loadavg": load0,
        "cpu_pressure_avg10": psi0,
    }))
}
