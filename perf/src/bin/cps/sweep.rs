//! The concurrency sweep: N calls set up through `POST /v1/bridges` and held together, the
//! resident memory of callbridge before and at N simultaneous bridged calls (and at N/2, for
//! the marginal cost of a call without the one-time growth of the first calls).

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use callbridge_perf::harness::{self, rss_bytes, Http};
use serde_json::{json, Value};

use crate::load::{Api, Outcome, Phase, Rig, MEDIA_LEGS};

/// What one sweep point measured.
pub(crate) struct Point {
    /// The run's JSON.
    pub(crate) json: Value,
    /// Simultaneously bridged calls at the RSS sample.
    pub(crate) bridged: usize,
    /// (RSS at the sample − RSS before) ÷ bridged, bytes.
    pub(crate) rss_per_call: Option<f64>,
    /// Why the point fell short of `n`, if it did.
    pub(crate) short: Option<String>,
}

/// Sets up `n` calls at `rate`/s, held `n / rate + settle` seconds by the customers, samples
/// callbridge's RSS once all are live (or just before the first customer hangs up), then reads
/// every call back and counts those bridged at the sample's instant (from the API's `bridged`
/// and `completed` events).
pub(crate) fn point(
    rig: &Rig<'_>,
    dir: &Path,
    n: usize,
    rate: f64,
    settle: Duration,
) -> anyhow::Result<Point> {
    if 2 * n > MEDIA_LEGS {
        anyhow::bail!(
            "{n} calls need {} legs; the media port range holds {MEDIA_LEGS}",
            2 * n
        );
    }
    let ramp = Duration::from_secs_f64(n as f64 / rate);
    let hold = ramp + settle;
    let hold_ms = u64::try_from(hold.as_millis())?;
    let (sipps, senders) = (rig.sipps, rig.sweep_senders);
    let mut phase = Phase::start(
        rig.bin,
        dir.join(format!("sweep-{n}")),
        Api::Bridges,
        sipps,
        hold_ms,
        0,
        rig.store(&format!("sweep-{n}")),
    )?;
    std::thread::sleep(Duration::from_millis(1000));
    let rss_before = rss_bytes(phase.cb.pid())?;
    let t0 = Instant::now();
    // The sample: once `n` calls are live, or 1 s before the first customer hangs up.
    let sample_by = hold.saturating_sub(Duration::from_millis(1000));
    let (sent, sample) = std::thread::scope(|s| {
        let ph = &phase;
        let sender = s.spawn(move || ph.send(n, rate, senders, ramp * 2 + Duration::from_secs(10)));
        let mut http = Http::new(ph.cb.http());
        let mut max_live = 0;
        let mut mid = None;
        let now_ms = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
        };
        let sample = loop {
            std::thread::sleep(Duration::from_millis(100));
            let live = ph.live(&mut http).unwrap_or(0);
            max_live = max_live.max(live);
            let done = sender.is_finished();
            if mid.is_none() && live >= n as u64 / 2 {
                mid = Some((rss_bytes(ph.cb.pid()).unwrap_or(0), now_ms()));
            }
            if (done && live >= n as u64) || t0.elapsed() >= sample_by {
                let rss = rss_bytes(ph.cb.pid()).unwrap_or(0);
                break (rss, now_ms(), live, max_live, t0.elapsed(), mid);
            }
        };
        (sender.join().unwrap_or_default(), sample)
    });
    let (rss_at, at_ms, live_at, max_live, sampled_after, mid) = sample;
    let idle = phase.wait_idle(hold + Duration::from_secs(60))?;
    let records = phase.collect(&sent.accepted, 8)?;
    let o = Outcome::of(&records, sent.refused.len());
    let bridged = o.bridged_at(at_ms);
    let per_call =
        (bridged > 0).then(|| (rss_at.saturating_sub(rss_before)) as f64 / bridged as f64);
    // The marginal cost: RSS growth from half the calls to all of them ÷ the calls added.
    let marginal = mid.and_then(|(rss_mid, mid_ms)| {
        let added = bridged
            .checked_sub(o.bridged_at(mid_ms))
            .filter(|a| *a > 0)?;
        Some(rss_at.saturating_sub(rss_mid) as f64 / added as f64)
    });
    let short = (bridged < n).then(|| {
        let mut why = format!("{bridged} of {n} calls bridged at the sample");
        if let Some((_, e)) = sent.refused.first() {
            why.push_str(&format!(
                "; {} requests refused, first: {e}",
                sent.refused.len()
            ));
        }
        if o.failed() > 0 {
            why.push_str(&format!("; failures {:?}", o.failures));
        }
        if !idle {
            why.push_str("; calls still live after the deadline");
        }
        why
    });
    let json = json!({
        "phase": "concurrency", "api": "bridges", "calls": n, "rate": rate,
        "hold_ms": hold_ms, "sipp_per_role": sipps, "senders": senders,
        "loadavg": harness::loadavg(), "cpu_pressure_avg10": harness::cpu_pressure(),
        "bridged_at_sample": bridged, "live_at_sample": live_at, "max_live": max_live,
        "sampled_after_s": sampled_after.as_secs_f64(),
        "rss_before_bytes": rss_before, "rss_at_sample_bytes": rss_at,
        "rss_bytes_per_call": per_call.map(f64::round),
        "rss_bytes_per_call_marginal": marginal.map(f64::round),
        "completed": o.completed, "failed": o.failed(), "failures": o.failures,
        "setup_ms": o.setup_json(), "all_ended": idle, "short": short,
    });
    drop(phase);
    Ok(Point {
        json,
        bridged,
        rss_per_call: per_call,
        short,
    })
}
