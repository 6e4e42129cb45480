//! `dpdk-testpmd` io forwarding on `net_null`, the historical reference.

use std::io::{BufRead, BufReader};
use std::process::{Command as Proc, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};

use crate::Args;

pub(crate) fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return 0.0;
    }
    s[s.len() / 2]
}

/// Runs testpmd io forwarding on two net_null ports with one forwarding core; returns the
/// median of its per-second forwarded packets (Rx-pps of both ports summed), in Mpps.
pub(crate) fn testpmd(args: &Args) -> anyhow::Result<f64> {
    let prefix = format!("cbtpmd{}", std::process::id());
    let cores = format!("{},{}", args.generator_core, args.worker_core);
    let mut child = Proc::new(&args.testpmd)
        .args([
            "-l",
            &cores,
            "--no-huge",
            "-m",
            "512",
            "--no-pci",
            "--vdev",
            "net_null0",
            "--vdev",
            "net_null1",
            "--file-prefix",
            &prefix,
            "--log-level",
            "lib.eal:warning",
            "--",
            "--forward-mode=io",
            "--stats-period",
            "1",
            "--nb-cores=1",
            "--burst=32",
            "--total-num-mbufs=16384",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", args.testpmd))?;
    let stdout = child.stdout.take().context("testpmd stdout")?;
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink = lines.clone();
    let reader = std::thread::spawn(move || {
        for l in BufReader::new(stdout).lines().map_while(Result::ok) {
            sink.lock().expect("lines").push(l);
        }
    });
    std::thread::sleep(Duration::from_secs(args.testpmd_seconds));
    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let lines = lines.lock().expect("lines");
    let pps: Vec<u64> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("Rx-pps:"))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    if pps.len() < 6 {
        bail!(
            "testpmd printed too few stats ({} Rx-pps lines); its output:\n{}",
            pps.len(),
            lines.join("\n")
        );
    }
    // Two ports per period; drop the first two periods (start-up).
    let per_period: Vec<f64> = pps
        .chunks_exact(2)
        .skip(2)
        .map(|c| (c[0] + c[1]) as f64 / 1e6)
        .collect();
    Ok(median(&per_period))
}
