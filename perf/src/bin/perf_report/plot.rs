//! The report's SVG plots, drawn with plotters from the scenarios' `runs`.
//!
//! The runs are read by key, trying the names the scenarios write (e.g. a relay-path trial's
//! `offered_pps`, `loss_percent`, `p99_us`); a plot whose series are all empty is left out
//! and the report says so rather than drawing an empty frame.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;
use serde_json::Value;

/// The font plotters lays text out with (Debian's fonts-dejavu-core, which
/// scripts/install-test-deps installs).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

/// Registers [`FONT`] as plotters' sans-serif.
///
/// # Errors
/// The font file is missing or unreadable.
pub(crate) fn register_font() -> anyhow::Result<()> {
    let bytes = std::fs::read(FONT)
        .with_context(|| format!("reading {FONT} (Debian package fonts-dejavu-core)"))?;
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
        .map_err(|_| anyhow::anyhow!("{FONT} is not a font plotters can use"))?;
    Ok(())
}

/// One named series of (x, y) points.
type Series = BTreeMap<String, Vec<(f64, f64)>>;

/// The value at `path` (keys joined by `.`, e.g. `setup_ms.p99`).
fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// The first of `keys` (paths, see [`at`]) that `v` has as a number.
fn pick(v: &Value, keys: &[&str]) -> Option<f64> {
    keys.iter().find_map(|k| at(v, k).and_then(Value::as_f64))
}

/// The first of `keys` that `v` has as a string.
fn pick_str(v: &Value, keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
}

/// Groups `runs` by `group` (a string key; one series when none) into (x, y) points.
fn series(runs: &[Value], group: &[&str], x: &[&str], y: &[&str]) -> Series {
    let mut s = Series::new();
    for r in runs {
        let (Some(xv), Some(yv)) = (pick(r, x), pick(r, y)) else {
            continue;
        };
        let name = pick_str(r, group).unwrap_or_else(|| "all".into());
        s.entry(name).or_default().push((xv, yv));
    }
    for pts in s.values_mut() {
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    s.retain(|_, p| !p.is_empty());
    s
}

struct Axes<'a> {
    title: &'a str,
    x: &'a str,
    y: &'a str,
    log_x: bool,
    log_y: bool,
}

/// Draws `s` as lines with points into `path`.
fn line_chart(path: &Path, s: &Series, axes: &Axes<'_>) -> anyhow::Result<()> {
    let pts = s.values().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if axes.log_x {
        x0 = x0.max(1e-3) / 1.5;
        x1 *= 1.5;
    } else {
        let pad = ((x1 - x0) * 0.05).max(1e-9);
        x0 -= pad;
        x1 += pad;
    }
    if axes.log_y {
        y0 = y0.max(1e-3) / 1.5;
        y1 = y1.max(y0 * 2.0) * 1.5;
    } else {
        y0 = y0.min(0.0);
        y1 = if y1 > y0 { y1 * 1.1 } else { y0 + 1.0 };
    }
    let root = SVGBackend::new(path, (860, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let mut b = ChartBuilder::on(&root);
    b.caption(axes.title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(44)
        .y_label_area_size(70);
    let colours = [&BLUE, &RED, &GREEN, &MAGENTA, &CYAN, &BLACK, &YELLOW];
    macro_rules! draw {
        ($chart:expr) => {{
            let mut chart = $chart;
            chart
                .configure_mesh()
                .x_desc(axes.x)
                .y_desc(axes.y)
                .draw()
                .map_err(err)?;
            for (i, (name, pts)) in s.iter().enumerate() {
                let c = colours[i % colours.len()];
                chart
                    .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                    .map_err(err)?
                    .label(name.as_str())
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, c.filled())))
                    .map_err(err)?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .draw()
                .map_err(err)?;
        }};
    }
    match (axes.log_x, axes.log_y) {
        (false, false) => draw!(b.build_cartesian_2d(x0..x1, y0..y1).map_err(err)?),
        (true, false) => draw!(b
            .build_cartesian_2d((x0..x1).log_scale(), y0..y1)
            .map_err(err)?),
        (false, true) => draw!(b
            .build_cartesian_2d(x0..x1, (y0..y1).log_scale())
            .map_err(err)?),
        (true, true) => {
            draw!(b
                .build_cartesian_2d((x0..x1).log_scale(), (y0..y1).log_scale())
                .map_err(err)?)
        }
    }
    root.present().map_err(err)?;
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow::anyhow!("plotting: {e:?}")
}

/// Draws the plots of `scenario` into `out`; returns (file name, title) of each drawn.
///
/// # Errors
/// A plot cannot be written.
pub(crate) fn scenario(
    scenario: &str,
    doc: &Value,
    out: &Path,
) -> anyhow::Result<Vec<(String, String)>> {
    let runs: Vec<Value> = doc["runs"].as_array().cloned().unwrap_or_default();
    let mut drawn = Vec::new();
    let mut plot = |file: &str, s: &Series, axes: Axes<'_>| -> anyhow::Result<()> {
        if s.is_empty() {
            return Ok(());
        }
        line_chart(&out.join(file), s, &axes)?;
        drawn.push((file.to_owned(), axes.title.to_owned()));
        Ok(())
    };
    match scenario {
        "relay-core" => {
            let mut s = Series::new();
            for order in ["table", "random"] {
                if let Some(m) = doc["ns_per_packet"][order].as_object() {
                    let mut pts: Vec<(f64, f64)> = m
                        .iter()
                        .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_f64()?)))
                        .collect();
                    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                    if !pts.is_empty() {
                        s.insert(format!("{order} order"), pts);
                    }
                }
            }
            plot(
                "relay-core-ns.svg",
                &s,
                Axes {
                    title: "relay core: ns per packet over legs",
                    x: "legs",
                    y: "ns/packet",
                    log_x: true,
                    log_y: false,
                },
            )?;
        }
        "relay-dpdk" => {
            let s = series(
                &runs,
                &["relay", "forwarder", "name"],
                &["legs"],
                &["mpps_per_core", "mpps_median", "mpps"],
            );
            plot(
                "relay-dpdk-mpps.svg",
                &s,
                Axes {
                    title: "relay-dpdk over memif: Mpps per core",
                    x: "legs",
                    y: "Mpps",
                    log_x: true,
                    log_y: false,
                },
            )?;
        }
        "relay-path" => {
            let trials: Vec<Value> = runs
                .iter()
                .flat_map(|r| match r.get("trials").and_then(Value::as_array) {
                    Some(ts) => ts
                        .iter()
                        .map(|t| {
                            let mut t = t.clone();
                            if let (Some(o), Some(name)) =
                                (t.as_object_mut(), r.get("name").or(r.get("relay")))
                            {
                                o.entry("relay").or_insert(name.clone());
                            }
                            t
                        })
                        .collect::<Vec<_>>(),
                    None => vec![r.clone()],
                })
                .collect();
            let rate = ["rate_pps", "offered_pps", "sent_pps"];
            let loss = series(
                &trials,
                &["relay", "name"],
                &rate,
                &["loss_pct", "loss_percent"],
            );
            plot(
                "relay-path-loss.svg",
                &loss,
                Axes {
                    title: "relay-path: loss over offered rate",
                    x: "offered packets/s",
                    y: "loss %",
                    log_x: false,
                    log_y: false,
                },
            )?;
            let p99 = series(&trials, &["relay", "name"], &rate, &["p99_us"]);
            plot(
                "relay-path-p99.svg",
                &p99,
                Axes {
                    title: "relay-path: p99 latency over offered rate",
                    x: "offered packets/s",
                    y: "p99 µs",
                    log_x: false,
                    log_y: true,
                },
            )?;
            // Percentiles at 50k pps, one line per relay over (50, 99, 99.9).
            let mut pct = Series::new();
            for r in doc["relays"].as_array().into_iter().flatten() {
                let name = r["name"].as_str().unwrap_or("?").to_owned();
                let pts: Vec<(f64, f64)> = [
                    (50.0, "p50_us_at_50k"),
                    (99.0, "p99_us_at_50k"),
                    (99.9, "p999_us_at_50k"),
                ]
                .iter()
                .filter_map(|&(x, k)| Some((x, r.get(k)?.as_f64()?)))
                .collect();
                if !pts.is_empty() {
                    pct.insert(name, pts);
                }
            }
            plot(
                "relay-path-percentiles.svg",
                &pct,
                Axes {
                    title: "relay-path: latency percentiles at 50k pps",
                    x: "percentile",
                    y: "µs",
                    log_x: false,
                    log_y: true,
                },
            )?;
        }
        "cps" => {
            let rate = ["sent_rate", "rate", "offered_cps"];
            let mut s = series(
                &runs,
                &["api", "path"],
                &rate,
                &["setup_ms.p99", "setup_p99_ms"],
            );
            for (name, pts) in series(
                &runs,
                &["api", "path"],
                &rate,
                &["setup_ms.p50", "setup_p50_ms"],
            ) {
                s.insert(format!("{name} p50"), pts);
            }
            plot(
                "cps-latency.svg",
                &s,
                Axes {
                    title: "cps: set-up latency over the offered rate",
                    x: "offered set-ups/s",
                    y: "ms",
                    log_x: false,
                    log_y: true,
                },
            )?;
            let rss = series(
                &runs,
                &["api", "path"],
                &["bridged", "concurrent_calls", "n", "calls"],
                &["rss_bytes_per_call"],
            );
            plot(
                "cps-rss.svg",
                &rss,
                Axes {
                    title: "cps: resident memory per bridged call",
                    x: "simultaneous calls",
                    y: "bytes/call",
                    log_x: true,
                    log_y: false,
                },
            )?;
        }
        "announce" => {
            let s = series(
                &runs,
                &["backend"],
                &["n", "streams"],
                &["deviation_us.p99", "pacing_p99_us"],
            );
            plot(
                "announce-pacing.svg",
                &s,
                Axes {
                    title: "announce: pacing error p99 over streams",
                    x: "streams",
                    y: "p99 µs",
                    log_x: true,
                    log_y: true,
                },
            )?;
        }
        _ => {}
    }
    Ok(drawn)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn series_groups_and_sorts() {
        let runs = vec![
            json!({"relay": "a", "offered_pps": 2.0, "loss_percent": 0.5}),
            json!({"relay": "a", "offered_pps": 1.0, "loss_percent": 0.0}),
            json!({"relay": "b", "rate_pps": 1.0, "loss_pct": 1.0}),
            json!({"relay": "c"}),
        ];
        let s = series(
            &runs,
            &["relay"],
            &["offered_pps", "rate_pps"],
            &["loss_percent", "loss_pct"],
        );
        assert_eq!(s["a"], vec![(1.0, 0.0), (2.0, 0.5)]);
        assert_eq!(s["b"], vec![(1.0, 1.0)]);
        assert!(!s.contains_key("c"));
    }

    #[test]
    fn draws_an_svg() {
        register_font().unwrap();
        let dir = std::env::temp_dir().join(format!("perf-plot-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let doc = json!({"ns_per_packet": {"table": {"1000": 20.0, "10000": 25.0}, "random": {"1000": 22.0, "10000": 40.0}}, "runs": []});
        let drawn = scenario("relay-core", &doc, &dir).unwrap();
        assert_eq!(drawn.len(), 1);
        let svg = std::fs::read_to_string(dir.join(&drawn[0].0)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("random order"),
            "{}",
            &svg[..200.min(svg.len())]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
