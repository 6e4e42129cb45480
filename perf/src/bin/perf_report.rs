//! `scripts/perf report` (and the last step of `scripts/perf all`): reads every scenario's
//! `perf/reports/latest/<scenario>.json` and writes one markdown report with tables and SVG
//! plots (plotters) into `perf/reports/<date>-<commit>/` (the JSON files copied beside it),
//! plus `perf/reports/latest/report.md` pointing at the same plots.
//!
//! Each scenario gets a table of its headline figures against issue 9's targets (met, missed,
//! or not measured: a missing figure is said, never hidden) and, where it has series, a plot:
//! relay-core ns/packet over legs (table and random order), relay-path loss and p99 over the
//! offered rate per relay, relay-path latency percentiles at 50k pps, cps set-up latency over
//! the offered rate, relay-dpdk Mpps per leg count beside testpmd.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use callbridge_perf::report::{commit, out_dir, workspace_root};
use serde_json::Value;

#[path = "perf_report/plot.rs"]
mod plot;
#[path = "perf_report/tables.rs"]
mod tables;

/// The scenarios in report order.
const SCENARIOS: [&str; 6] = [
    "relay-core",
    "relay-instr",
    "relay-dpdk",
    "relay-path",
    "cps",
    "announce",
];

#[derive(clap::Parser)]
#[command(about = "Markdown report with SVG plots from perf/reports/latest/*.json")]
struct Args {
    /// Where the scenario JSON files are (default: perf/reports/latest or $PERF_OUT_DIR).
    #[arg(long)]
    from: Option<PathBuf>,
    /// Where to write the report (default: perf/reports/<date>-<commit>, or `report/` under
    /// $PERF_OUT_DIR when that is set).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Accepted for symmetry with the scenarios (`scripts/perf all --quick`); no effect.
    #[arg(long)]
    quick: bool,
}

fn load(dir: &Path, scenario: &str) -> Option<Value> {
    let text = std::fs::read_to_string(dir.join(format!("{scenario}.json"))).ok()?;
    serde_json::from_str(&text).ok()
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let from = args.from.unwrap_or_else(out_dir);
    let stamp = callbridge_perf::report::now_utc()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .replace('T', "-");
    let out = args.out.unwrap_or_else(|| {
        if std::env::var_os(callbridge_perf::report::OUT_DIR_ENV).is_some() {
            // A run elsewhere (the smoke test): keep everything under that directory.
            return from.join("report");
        }
        workspace_root().join("perf/reports").join(format!(
            "{}-{}",
            &stamp[..13.min(stamp.len())],
            commit()
        ))
    });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    plot::register_font()?;

    let mut md = String::new();
    let _ = writeln!(md, "# callbridge perf report\n");
    let _ = writeln!(
        md,
        "Written by `scripts/perf report` from `{}`; every figure below is in the scenario's JSON \
         (copied here) with every run. Targets are issue 9's; the suite reports them and asserts none.\n",
        from.display()
    );
    let mut found = 0;
    let mut headlines = Vec::new();
    for s in SCENARIOS {
        let Some(doc) = load(&from, s) else {
            let _ = writeln!(
                md,
                "## {s}\n\nnot run: no `{s}.json` in {}\n",
                from.display()
            );
            continue;
        };
        found += 1;
        std::fs::write(
            out.join(format!("{s}.json")),
            serde_json::to_string_pretty(&doc)? + "\n",
        )?;
        let _ = writeln!(md, "## {s}\n");
        let _ = writeln!(md, "{}\n", tables::provenance(&doc));
        let (table, headline) = tables::scenario(s, &doc);
        md.push_str(&table);
        headlines.push(format!("{s}: {headline}"));
        for (file, title) in plot::scenario(s, &doc, &out)? {
            let _ = writeln!(md, "\n![{title}]({file})\n");
        }
        md.push('\n');
    }
    if found == 0 {
        anyhow::bail!(
            "no scenario JSON in {} (run scripts/perf all first)",
            from.display()
        );
    }
    let mut top = String::from("## Headlines\n\n");
    for h in &headlines {
        let _ = writeln!(top, "- {h}");
    }
    top.push('\n');
    let pos = md.find("## ").unwrap_or(md.len());
    md.insert_str(pos, &top);
    let report = out.join("report.md");
    std::fs::write(&report, &md).with_context(|| format!("writing {}", report.display()))?;
    // latest/report.md: the same text with the plots' paths relative to latest/.
    let rel = out
        .strip_prefix(workspace_root().join("perf/reports"))
        .map_or_else(|_| out.clone(), |p| Path::new("..").join(p));
    let latest = md.replace("](", &format!("]({}/", rel.display()));
    std::fs::create_dir_all(&from)?;
    std::fs::write(from.join("report.md"), latest)?;
    println!(
        "report: {} ({found} of {} scenarios)",
        report.display(),
        SCENARIOS.len()
    );
    Ok(())
}
