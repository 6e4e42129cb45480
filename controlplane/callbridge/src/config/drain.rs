//! `[drain]`: how a draining process (SIGTERM, `POST /v1/admin/drain`) lets its live calls end.

use serde::Deserialize;

use super::locate::{key, Seg};

/// The longest `drain.max_seconds` accepted (one day).
pub(crate) const MAX_DRAIN_SECONDS: u64 = 86_400;

/// `[drain]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct DrainConfig {
    /// `max_seconds`: how long live calls may go on after a drain starts; those still up then
    /// are hung up (BYE) and the process exits. 1..=86400; default 3600.
    pub(crate) max_seconds: u64,
}

impl Default for DrainConfig {
    fn default() -> Self {
        Self { max_seconds: 3600 }
    }
}

impl DrainConfig {
    /// Checks the range of `max_seconds`.
    pub(super) fn validate(&self) -> Result<(), (Vec<Seg>, String)> {
        if !(1..=MAX_DRAIN_SECONDS).contains(&self.max_seconds) {
            return Err((
                vec![key("drain"), key("max_seconds")],
                format!(
                    "must be 1 to {MAX_DRAIN_SECONDS} seconds (got {})",
                    self.max_seconds
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::Config;

    const BASE: &str = "[[business]]\nid = \"a\"\nname = \"A\"\n";

    #[test]
    fn max_seconds_defaults_and_is_bounded() {
        let c = Config::parse(BASE, Path::new("cb.toml")).unwrap();
        assert_eq!(c.drain.max_seconds, 3600);
        let c = Config::parse(
            &format!("{BASE}[drain]\nmax_seconds = 30\n"),
            Path::new("cb.toml"),
        )
        .unwrap();
        assert_eq!(c.drain.max_seconds, 30);
        for v in ["0", "86401"] {
            let e = Config::parse(
                &format!("{BASE}[drain]\nmax_seconds = {v}\n"),
                Path::new("cb.toml"),
            )
            .unwrap_err()
            .to_string();
            assert!(
                e.starts_with("cb.toml:5: drain.max_seconds: must be 1 to 86400 seconds"),
                "{e}"
            );
        }
        let e = Config::parse(&format!("{BASE}[drain]\nmax = 3\n"), Path::new("cb.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("cb.toml:5: drain.max: unknown field"), "{e}");
    }
}
