//! The log: tracing-subscriber writing to stderr as text or JSON (`[log]`), colours only
//! when stderr is a terminal.

use std::io::IsTerminal as _;

use crate::config::{parse_filter, LogConfig, LogFormat};

/// The filter: `CALLBRIDGE_LOG` when set, else `log.level` (both checked by
/// [`parse_filter`]).
///
/// # Errors
/// A sentence naming `CALLBRIDGE_LOG` when it is set but not a filter.
pub(crate) fn filter(
    env: Option<std::ffi::OsString>,
    cfg: &LogConfig,
) -> Result<tracing_subscriber::EnvFilter, String> {
    match env {
        Some(v) => {
            let v = v
                .into_string()
                .map_err(|v| format!("CALLBRIDGE_LOG={v:?} is not UTF-8"))?;
            parse_filter(&v).map_err(|e| format!("CALLBRIDGE_LOG: {e}"))
        }
        None => parse_filter(&cfg.level).map_err(|e| format!("log.level: {e}")),
    }
}

/// Installs the global subscriber. The filter is `CALLBRIDGE_LOG` when set, else `log.level`.
///
/// # Errors
/// An invalid filter (see [`filter`]): the caller prints it and exits.
pub(crate) fn init(cfg: &LogConfig) -> Result<(), String> {
    let filter = filter(std::env::var_os("CALLBRIDGE_LOG"), cfg)?;
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
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_callbridge_log_is_an_error_naming_it() {
        let cfg = LogConfig::default();
        assert!(filter(None, &cfg).is_ok());
        assert!(filter(Some("debug,sip=trace".into()), &cfg).is_ok());
        let e = filter(Some("bogus".into()), &cfg).unwrap_err();
        assert!(
            e.starts_with("CALLBRIDGE_LOG: \"bogus\" is not a log filter"),
            "{e}"
        );
        let e = filter(Some("info,=[".into()), &cfg).unwrap_err();
        assert!(e.starts_with("CALLBRIDGE_LOG: "), "{e}");
    }
}
