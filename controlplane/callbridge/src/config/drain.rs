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
