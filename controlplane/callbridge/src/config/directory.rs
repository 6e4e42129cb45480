//! `[[business]]` and `[[agent]]`: who is called back, and by whom.

use flows::{AgentId, BusinessId, Target};
use serde::Deserialize;

use super::locate::{key, Seg};

/// `[[business]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusinessConfig {
    /// `id` (required): `[A-Za-z0-9_.-]`, unique; used in `?business=` and API requests.
    pub(crate) id: BusinessId,
    /// `name` (required): shown on the web page.
    pub(crate) name: String,
}

/// `[[agent]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentConfig {
    /// `id` (required): unique.
    pub(crate) id: AgentId,
    /// `contact` (required): a SIP URI called directly, or an E.164 number sent to the trunk.
    pub(crate) contact: Target,
    /// `businesses`: the businesses this agent serves (ids of `[[business]]` entries). Default
    /// none: the agent is reachable only through `POST /v1/bridges`.
    #[serde(default)]
    pub(crate) businesses: Vec<BusinessId>,
}

/// Checks the businesses (at least one, unique ids, names) and the agents (unique ids, known
/// businesses, each listed once).
pub(super) fn validate(
    business: &[BusinessConfig],
    agent: &[AgentConfig],
) -> Result<(), (Vec<Seg>, String)> {
    let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
    if business.is_empty() {
        return at(
            &[key("business")],
            "at least one [[business]] is required".into(),
        );
    }
    for (i, b) in business.iter().enumerate() {
        if business[..i].iter().any(|o| o.id == b.id) {
            return at(
                &[key("business"), Seg::Index(i), key("id")],
                format!("duplicate business id \"{}\"", b.id),
            );
        }
        if b.name.trim().is_empty() {
            return at(
                &[key("business"), Seg::Index(i), key("name")],
                "must not be empty".into(),
            );
        }
    }
    for (i, a) in agent.iter().enumerate() {
        if agent[..i].iter().any(|o| o.id == a.id) {
            return at(
                &[key("agent"), Seg::Index(i), key("id")],
                format!("duplicate agent id \"{}\"", a.id),
            );
        }
        for (j, b) in a.businesses.iter().enumerate() {
            let item = [
                key("agent"),
                Seg::Index(i),
                key("businesses"),
                Seg::Index(j),
            ];
            if !business.iter().any(|x| &x.id == b) {
                return at(
                    &item,
                    format!("unknown business \"{b}\"; declare it in a [[business]] section"),
                );
            }
            if a.businesses[..j].contains(b) {
                return at(&item, format!("business \"{b}\" is listed twice"));
            }
        }
    }
    Ok(())
}
