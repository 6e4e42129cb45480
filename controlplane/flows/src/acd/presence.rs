//! An agent's presence: the five names of the HTTP contract and how [`AgentState`] maps to
//! them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::AgentState;
use crate::Error;

/// What an agent's status page and the API show, and what the API may set.
///
/// `on_call` and `wrap_up` follow the agent's calls ([`super::Acd::release`],
/// [`super::Acd::tick`]); the API may set only `available`, `away` and `offline`
/// ([`super::Acd::set_presence`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Presence {
    /// Free; calls are handed to the agent.
    Available,
    /// Ringing for a call, or talking on one.
    OnCall,
    /// Finishing the notes of the last call; available again when the wrap-up time is over.
    WrapUp,
    /// Logged in but not taking calls (a break, or a missed call: [`super::Acd::no_answer`]).
    Away,
    /// Logged out.
    Offline,
}

impl Presence {
    /// The contract name: `available`, `on_call`, `wrap_up`, `away` or `offline`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Available => "available",
            Self::OnCall => "on_call",
            Self::WrapUp => "wrap_up",
            Self::Away => "away",
            Self::Offline => "offline",
        }
    }

    /// Whether [`super::Acd::set_presence`] accepts it (`available`, `away`, `offline`).
    #[must_use]
    pub const fn settable(self) -> bool {
        matches!(self, Self::Available | Self::Away | Self::Offline)
    }
}

impl fmt::Display for Presence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Presence {
    type Err = Error;

    /// Parses a contract name.
    ///
    /// # Errors
    /// [`Error::BadPresence`] for anything else.
    fn from_str(s: &str) -> Result<Self, Error> {
        [
            Self::Available,
            Self::OnCall,
            Self::WrapUp,
            Self::Away,
            Self::Offline,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
        .ok_or_else(|| Error::BadPresence(s.to_owned()))
    }
}

impl AgentState {
    /// The presence this state shows.
    #[must_use]
    pub const fn presence(&self) -> Presence {
        match self {
            Self::Idle => Presence::Available,
            Self::Reserved(_) | Self::Busy(_) => Presence::OnCall,
            Self::WrapUp { .. } => Presence::WrapUp,
            Self::Away => Presence::Away,
            Self::Offline => Presence::Offline,
        }
    }
}
