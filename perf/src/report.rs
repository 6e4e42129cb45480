//! The one JSON shape every scenario writes: `perf/reports/latest/<scenario>.json` with
//! `scenario`, `commit`, `machine`, `date`, `quick`, `parameters`, `runs` (every run, as
//! measured) and the scenario's headline keys (medians; the names issue 9 fixes as
//! contracts), plus the last line each benchmark prints: `<scenario>: <headline>`.
//!
//! ```no_run
//! use callbridge_perf::report::Report;
//! let mut r = Report::new("relay-core", serde_json::json!({"packets": 1_000_000}));
//! r.run(serde_json::json!({"legs": 1000, "ns_per_packet": 25.0}));
//! r.set("bytes_per_leg", 192);
//! r.finish("25 ns/packet at 1k legs").unwrap();
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use serde_json::{json, Map, Value};

/// The environment variable that moves the output directory (default
/// `<workspace>/perf/reports/latest`).
pub const OUT_DIR_ENV: &str = "PERF_OUT_DIR";

/// One scenario's report, filled as it runs and written once at the end.
#[derive(Debug)]
pub struct Report {
    scenario: String,
    parameters: Value,
    runs: Vec<Value>,
    keys: Map<String, Value>,
    quick: bool,
}

impl Report {
    /// A report for `scenario` (the name `scripts/perf` takes) run with `parameters`.
    #[must_use]
    pub fn new(scenario: &str, parameters: Value) -> Self {
        Self {
            scenario: scenario.to_owned(),
            parameters,
            runs: Vec::new(),
            keys: Map::new(),
            quick: std::env::var_os("PERF_QUICK").is_some_and(|v| v == "1"),
        }
    }

    /// Marks the report as a `--quick` (smoke) run: small, not for quoting.
    pub fn quick(&mut self, quick: bool) -> &mut Self {
        self.quick = quick;
        self
    }

    /// Appends one run (one trial, one leg count, one relay: whatever the scenario repeats).
    pub fn run(&mut self, run: Value) -> &mut Self {
        self.runs.push(run);
        self
    }

    /// Sets one top-level key (a headline figure; `null` where it could not be measured).
    pub fn set(&mut self, key: &str, value: impl Into<Value>) -> &mut Self {
        self.keys.insert(key.to_owned(), value.into());
        self
    }

    /// The runs so far.
    #[must_use]
    pub fn runs(&self) -> &[Value] {
        &self.runs
    }

    /// The whole document as written.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let mut doc = Map::new();
        doc.insert("scenario".into(), json!(self.scenario));
        doc.insert("commit".into(), json!(commit()));
        doc.insert("machine".into(), machine());
        doc.insert("date".into(), json!(now_utc()));
        doc.insert("quick".into(), json!(self.quick));
        doc.insert("parameters".into(), self.parameters.clone());
        for (k, v) in &self.keys {
            doc.insert(k.clone(), v.clone());
        }
        doc.insert("runs".into(), Value::Array(self.runs.clone()));
        Value::Object(doc)
    }

    /// Writes `<out dir>/<scenario>.json` and prints the last line `<scenario>: <headline>`.
    ///
    /// # Errors
    /// If the file cannot be written.
    pub fn finish(&self, headline: &str) -> anyhow::Result<PathBuf> {
        let path = self.write_to(&out_dir())?;
        println!("{}: {headline}", self.scenario);
        Ok(path)
    }

    /// Writes `<dir>/<scenario>.json` (creating `dir`).
    ///
    /// # Errors
    /// If the directory or file cannot be written.
    pub fn write_to(&self, dir: &Path) -> anyhow::Result<PathBuf> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(format!("{}.json", self.scenario));
        let text = serde_json::to_string_pretty(&self.to_json())? + "\n";
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

/// The directory reports go to: `$PERF_OUT_DIR`, else `perf/reports/latest` under the
/// workspace root.
#[must_use]
pub fn out_dir() -> PathBuf {
    if let Some(d) = std::env::var_os(OUT_DIR_ENV) {
        return PathBuf::from(d);
    }
    workspace_root().join("perf/reports/latest")
}

/// The workspace root (this crate's parent directory at build time).
#[must_use]
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The commit measured: `git rev-parse --short HEAD` of the workspace, with `-dirty` when the
/// work tree differs from it; `$PERF_COMMIT` overrides (for runs outside a checkout).
#[must_use]
pub fn commit() -> String {
    if let Ok(c) = std::env::var("PERF_COMMIT") {
        return c;
    }
    let root = workspace_root();
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(&root)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let Some(head) = git(&["rev-parse", "--short", "HEAD"]) else {
        return "unknown".into();
    };
    match git(&["status", "--porcelain", "--untracked-files=no"]) {
        Some(s) if !s.is_empty() => format!("{head}-dirty"),
        _ => head,
    }
}

/// What the figures were measured on: CPU model, logical cores, the cores this process may
/// use, memory, kernel, load average at the time.
#[must_use]
pub fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split(':').nth(1))
        })
        .map_or_else(|| "unknown".to_owned(), |m| m.trim().to_owned());
    let cores = std::thread::available_parallelism().map_or(0, std::num::NonZero::get);
    let logical = cpuinfo
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|r| r.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let load = std::fs::read_to_string("/proc/loadavg").map_or_else(
        |_| String::new(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    );
    let hypervisor = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.contains(" hypervisor"));
    json!({
        "cpu": model,
        "logical_cores": logical,
        "usable_cores": cores,
        "memory_bytes": mem_kib * 1024,
        "kernel": kernel,
        "virtualized": hypervisor,
        "loadavg": load,
    })
}

/// Now as `YYYY-MM-DDTHH:MM:SSZ`.
#[must_use]
pub fn now_utc() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(i64::try_from(days).unwrap_or(0));
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// The median of `xs` (mean of the middle two for an even count); `None` when empty or any is
/// NaN.
#[must_use]
pub fn median(xs: &[f64]) -> Option<f64> {
    if xs.is_empty() || xs.iter().any(|x| x.is_nan()) {
        return None;
    }
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[1.0, f64::NAN]), None);
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(20_793), (2026, 12, 6));
    }

    #[test]
    fn report_has_contract_keys_and_runs() {
        let dir = std::env::temp_dir().join(format!("perf-report-test-{}", std::process::id()));
        let mut r = Report::new("relay-core", json!({"packets": 10}));
        r.run(json!({"legs": 1000})).set("bytes_per_leg", 192);
        let path = r.write_to(&dir).unwrap();
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for k in [
            "scenario",
            "commit",
            "machine",
            "date",
            "parameters",
            "runs",
            "bytes_per_leg",
        ] {
            assert!(doc.get(k).is_some(), "missing {k}");
        }
        assert_eq!(doc["runs"][0]["legs"], 1000);
        assert!(doc["machine"]["logical_cores"].as_u64().unwrap() >= 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
