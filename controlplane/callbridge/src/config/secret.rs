//! [`Secret`]: a key or token from the file that must not leak through `Debug` or errors, and
//! the shape check shared by keys, tokens and secrets.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A secret string from the configuration (`business.api_keys`, `business.webhook_secret`,
/// `agent.token`). Held in memory as written; `Debug` prints `"***"` and no error message
/// quotes it. Read it with [`Secret::expose`] where it is compared or used to sign.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub(crate) fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself.
    #[must_use]
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self)
    }
}

/// Checks a key's shape: at least `min` characters, all visible ASCII (`!` to `~`, so no
/// spaces). `what` names it in the reason (`"an API key"`); the value is never quoted, so
/// this serves secrets too.
pub(super) fn check_key(s: &str, what: &str, min: usize) -> Result<(), String> {
    if let Some(c) = s.chars().find(|c| !c.is_ascii_graphic()) {
        let c = if c.is_ascii() {
            format!("{c:?}")
        } else {
            "a non-ASCII character".to_owned()
        };
        return Err(format!(
            "{what} may hold only visible ASCII characters (no spaces); this one holds {c}"
        ));
    }
    let n = s.len();
    if n < min {
        return Err(format!(
            "{what} needs at least {min} characters; this one has {n}"
        ));
    }
    Ok(())
}
