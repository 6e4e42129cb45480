//! The log: tracing-subscriber writing to stderr as text or JSON (`[log]`), colours only
//! when stderr is a terminal.

use std::io::IsTerminal as _;

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber. The filter is `CALLBRIDGE_LOG` (EnvFilter syntax) when set,
/// else `log.level`.
pub(crate) fn init(cfg: &LogConfig) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("CALLBRIDGE_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::builder().parse(&cfg.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match cfg.format {
        LogFormat::Text => builder.with_ansi(std::io::stderr().is_terminal()).init(),
        // Each line: {"timestamp", "level", "fields": {"message", …}, "span": {"name": "call",
        // "id": "c_…"}, "spans": [...]} (span fields of the call on every line about it).
        LogFormat::Json => builder
            .json()
            .with_ansi(false)
            .with_current_span(true)
            .with_span_list(true)
            .init(),
    }
}
