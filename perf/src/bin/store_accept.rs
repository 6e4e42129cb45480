//! How fast the durable store accepts call requests: the commit that must finish before every
//! `202` (`Store::accept`: one SQLite transaction, WAL, `synchronous = FULL`, so one fsync),
//! sequentially and from several threads at once (the HTTP layer calls it from tokio's
//! blocking pool), and how fast the scheduler claims what is due.
//!
//! ```text
//! scripts/perf store-accept [--requests 2000] [--threads 1 --threads 4] [--dir /var/lib/callbridge]
//! ```
//!
//! The database is a real file in `--dir` (default: a fresh directory under the system temp
//! dir), so the figures are the disk's fsync latency as much as ours: run it on the disk the
//! store will live on. Prints accepts per second and the latency of one accept (AVG, P0,
//! P50, P90, P99, P100 in microseconds, hdrhistogram), then claims per second.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use flows::{BusinessId, CallId};
use hdrhistogram::Histogram;
use store::{Kind, NewRequest, Page, SqliteStore, Store, StoredResponse};

#[derive(Debug, Parser)]
#[command(about = "Durable store: accepts per second and commit latency")]
struct Args {
    /// Requests accepted per run.
    #[arg(long, default_value_t = 2000)]
    requests: usize,
    /// Concurrent accepting threads (repeat for several runs).
    #[arg(long = "threads", default_values_t = [1usize, 4])]
    threads: Vec<usize>,
    /// Directory for the database files (default: a new temp directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Rounds: each runs every thread count with background checkpoints (the default) and
    /// with SQLite's automatic checkpoints inside commits, alternately, for a side-by-side
    /// comparison on the same disk in the same minutes.
    #[arg(long, default_value_t = 1)]
    rounds: usize,
}

fn request(n: u128, now_ms: i64) -> NewRequest {
    NewRequest {
        id: CallId::from_random(n),
        kind: Kind::CallRequest,
        business: BusinessId::new("acme").ok(),
        customer: format!("+1555{:07}", n % 10_000_000),
        preferred_agent: None,
        agent_spec: None,
        contact_at_ms: None,
        page: Some(Page {
            url: format!("https://shop.example/p/{n}"),
            title: "Shop".into(),
            referrer: String::new(),
        }),
        client_ip: Some("198.18.0.9".into()),
        created_ms: now_ms,
        status: "queued".into(),
        due_ms: Some(now_ms),
        claimed_by: None,
        webhook: None,
        skill: None,
    }
}

fn print_metric(label: &str, h: &Histogram<u64>) {
    println!(
        "{label:<14} {:>8.1} {:>8} {:>8} {:>8} {:>8} {:>8}",
        h.mean(),
        h.min(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.max()
    );
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let base = match &args.dir {
        Some(d) => d.clone(),
        None => std::env::temp_dir().join(format!("callbridge-store-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&base)?;
    println!(
        "store-accept: {} requests per run, SQLite WAL synchronous=FULL, files in {}",
        args.requests,
        base.display()
    );
    println!(
        "{:<14} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "µs/accept", "AVG", "P0", "P50", "P90", "P99", "P100"
    );
    let mut next: u128 = 1;
    let runs: Vec<(usize, bool)> = (0..args.rounds.max(1))
        .flat_map(|_| {
            args.threads
                .iter()
                .flat_map(|&t| [(t, true), (t, false)])
                .collect::<Vec<_>>()
        })
        .collect();
    for (threads, background) in runs {
        let label = if background { "bg-ckpt" } else { "auto-ckpt" };
        let path = base.join(format!("bench-{threads}-{label}.db"));
        for ext in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(format!("{}{ext}", path.display()));
        }
        let store = Arc::new(SqliteStore::open_with(&path, background)?);
        let per = args.requests / threads.max(1);
        let start = Instant::now();
        let handles: Vec<_> = (0..threads.max(1))
            .map(|t| {
                let store = store.clone();
                let first = next + (t * per) as u128;
                std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
                    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    let resp = StoredResponse {
                        status: 202,
                        body: "{}".into(),
                    };
                    for i in 0..per {
                        let r = request(first + i as u128, 1_765_000_000_000);
                        let t0 = Instant::now();
                        store.accept(&r, None, &resp)?;
                        h.record(t0.elapsed().as_micros().max(1) as u64)?;
                    }
                    Ok(h)
                })
            })
            .collect();
        let mut all = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
        for h in handles {
            let h = h
                .join()
                .map_err(|_| anyhow::anyhow!("an accepting thread panicked"))??;
            all.add(&h)?;
        }
        let secs = start.elapsed().as_secs_f64();
        next += (per * threads.max(1)) as u128;
        print_metric(&format!("{threads}t {label}"), &all);
        println!(
            "  {threads} thread(s), {label}: {:.0} accepts/s ({} in {:.2} s)",
            all.len() as f64 / secs,
            all.len(),
            secs
        );
        // The scheduler's side: claim everything that is due, in batches of 64.
        let start = Instant::now();
        let mut claimed = 0;
        loop {
            let got = store.claim_due("bench-run", 1_765_000_000_000, 64)?;
            if got.is_empty() {
                break;
            }
            claimed += got.len();
        }
        println!(
            "  claims: {:.0} requests/s ({claimed} in {:.2} s, batches of 64)",
            claimed as f64 / start.elapsed().as_secs_f64(),
            start.elapsed().as_secs_f64()
        );
    }
    if args.dir.is_none() {
        let _ = std::fs::remove_dir_all(&base);
    }
    Ok(())
}
