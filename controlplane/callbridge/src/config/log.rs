//! `[log]`: the log's format and level.

use serde::Deserialize;

use super::locate::{key, Seg};

/// How log lines are written (to stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// Human-readable lines (tracing's default format); colours only on a terminal.
    #[default]
    Text,
    /// One JSON object per line (tracing-subscriber's JSON formatter): `timestamp`, `level`,
    /// `fields`, `span` (the innermost, e.g. `{"name": "call", "id": "c_…"}`) and `spans`.
    Json,
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct LogConfig {
    /// `format`: `"text"` (default) or `"json"`.
    pub(crate) format: LogFormat,
    /// `level`: a tracing filter (`"info"`, `"debug"`, `"info,sip=debug"`, …). Default
    /// `"info"`. The environment variable `CALLBRIDGE_LOG` overrides it.
    pub(crate) level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".into(),
        }
    }
}

impl LogConfig {
    /// Checks that `level` is a filter tracing understands (see [`parse_filter`]).
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        parse_filter(&self.level)
            .map(drop)
            .map_err(|e| (vec![key("log"), key("level")], e))
    }
}

/// The levels a filter directive may name.
const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];

/// Parses a log filter (`[log] level`, `CALLBRIDGE_LOG`): comma-separated directives, each a
/// level (`info`) or `TARGET=LEVEL` (`sip=debug`). Stricter than tracing's own syntax, where a
/// bare word such as `bogus` is a target enabled at every level, which silently drops every
/// other log line.
///
/// # Errors
/// A sentence naming the bad directive.
pub(crate) fn parse_filter(s: &str) -> Result<tracing_subscriber::EnvFilter, String> {
    let help = "use error, warn, info, debug or trace, or TARGET=LEVEL, e.g. \"info,sip=debug\"";
    if s.trim().is_empty() {
        return Err(format!("must name a level: {help}"));
    }
    for d in s.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let bare = !d.contains(['=', '[']);
        if bare && !LEVELS.iter().any(|l| l.eq_ignore_ascii_case(d)) {
            return Err(format!(
                "{s:?} is not a log filter: {d:?} is not a level; {help}"
            ));
        }
    }
    tracing_subscriber::EnvFilter::builder()
        .parse(s)
        .map_err(|e| format!("{s:?} is not a log filter ({e}); {help}"))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;
    use super::LogFormat;

    const BASE: &str =
        "[sip]\nlisten = \"127.0.0.1:5060\"\n[[business]]\nid = \"acme\"\nname = \"ACME\"\n";

    fn parse(log: &str) -> Result<Config, String> {
        Config::parse(&format!("{BASE}[log]\n{log}"), Path::new("/etc/cb.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_are_text_and_info() {
        let c = parse("").unwrap();
        assert_eq!(c.log.format, LogFormat::Text);
        assert_eq!(c.log.level, "info");
    }

    #[test]
    fn json_and_filters_parse() {
        let c = parse("format = \"json\"\nlevel = \"info,sip=debug\"\n").unwrap();
        assert_eq!(c.log.format, LogFormat::Json);
        assert_eq!(c.log.level, "info,sip=debug");
    }

    #[test]
    fn bad_values_name_file_line_and_key() {
        let e = parse("format = \"xml\"\n").unwrap_err();
        assert!(e.starts_with("/etc/cb.toml:7: log.format: "), "{e}");
        let e = parse("level = \"info,=[\"\n").unwrap_err();
        assert!(e.starts_with("/etc/cb.toml:7: log.level: "), "{e}");
        let e = parse("level = \"\"\n").unwrap_err();
        assert!(e.starts_with("/etc/cb.toml:7: log.level: "), "{e}");
        let e = parse("level = \"bogus\"\n").unwrap_err();
        assert!(
            e.starts_with("/etc/cb.toml:7: log.level: \"bogus\" is not a log filter"),
            "{e}"
        );
        let e = parse("level = \"info,bogus\"\n").unwrap_err();
        assert!(e.contains("\"bogus\" is not a level"), "{e}");
        assert!(parse("level = \"WARN,sip=debug,callbridge[call]=trace\"\n").is_ok());
        let e = parse("colour = true\n").unwrap_err();
        assert!(e.starts_with("/etc/cb.toml:7: log.colour: "), "{e}");
    }
}
