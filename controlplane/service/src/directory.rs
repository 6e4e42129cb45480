//! [`Directory`]: the businesses and agents this process serves (from the configuration).

use std::time::Duration;

use flows::hours::OpeningHours;
use flows::limits::Limits;
use flows::numbers::NumberPolicy;
use flows::retry::RetryPolicy;
use flows::{AgentId, BusinessId, Skill, Target};

/// A business whose visitors are called back.
#[derive(Debug, Clone)]
pub struct BusinessEntry {
    /// Its id.
    pub id: BusinessId,
    /// Its display name (shown to the customer as the caller's name).
    pub name: String,
    /// Secret keys for server-side requests (`Authorization: Bearer`). None: only loopback
    /// clients may call the API for it without a key (lab and tests).
    pub api_keys: Vec<String>,
    /// The public key the embeddable widget sends (`X-Widget-Key`).
    pub widget_key: Option<String>,
    /// Origins (`scheme://host[:port]`) whose pages may use the widget.
    pub allowed_origins: Vec<String>,
    /// IANA time zone name (`UTC` by default).
    pub time_zone: String,
    /// Opening hours in that time zone (`None`: always open).
    pub hours: Option<OpeningHours>,
    /// ISO 3166 region for national numbers typed into the widget.
    pub default_country: Option<String>,
    /// Where status changes are POSTed, and the HMAC secret they are signed with.
    pub webhook: Option<(String, String)>,
    /// When a customer who was busy or did not answer is called again.
    pub retry: RetryPolicy,
    /// Which numbers may be called back.
    pub numbers: NumberPolicy,
    /// This business's rate limits (`None`: the service's defaults).
    pub limits: Option<Limits>,
    /// The caller id presented to the customer (user part of From; `None`: `sip.from_user`).
    pub caller_id: Option<String>,
    /// Its inbound numbers (E.164): a trunk's INVITE to one of them joins its queue.
    pub numbers_inbound: Vec<String>,
    /// The agent's early media (its ringback, a 183 with SDP) replaces the announcement.
    pub agent_early_media: bool,
    /// Agent first (the default) or customer first: whether an agent is reserved before or
    /// after the customer answered (`reservation`).
    pub reservation: flows::Reservation,
    /// The weekly hours as configured (shown by the API; `hours` is their parsed form).
    pub hours_spec: Vec<String>,
    /// The holidays as configured.
    pub holidays_spec: Vec<String>,
    /// The webhook secret even while no URL is set (so the API can set the URL).
    pub webhook_secret: Option<String>,
    /// The announcement its customers hear (`None`: the service's default).
    pub announcement: Option<std::sync::Arc<dp_api::Clip>>,
}

impl BusinessEntry {
    /// A business with no keys, origins, hours or webhook (always open, UTC).
    #[must_use]
    pub fn new(id: BusinessId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            api_keys: Vec::new(),
            widget_key: None,
            allowed_origins: Vec::new(),
            time_zone: "UTC".into(),
            hours: None,
            default_country: None,
            webhook: None,
            retry: RetryPolicy::default(),
            numbers: NumberPolicy::default(),
            limits: None,
            caller_id: None,
            numbers_inbound: Vec::new(),
            agent_early_media: false,
            reservation: flows::Reservation::AgentFirst,
            hours_spec: Vec::new(),
            holidays_spec: Vec::new(),
            webhook_secret: None,
            announcement: None,
        }
    }
}

/// An agent (CSR).
#[derive(Debug, Clone)]
pub struct AgentEntry {
    /// Its id.
    pub id: AgentId,
    /// Display name.
    pub name: String,
    /// Where it is called.
    pub contact: Target,
    /// The businesses it serves.
    pub businesses: Vec<BusinessId>,
    /// What it can do.
    pub skills: Vec<Skill>,
    /// Time after a call before it takes the next.
    pub wrap_up: Duration,
    /// The agent desktop login token (`None`: cannot log in).
    pub token: Option<String>,
    /// SDES-SRTP on calls to it (offered only over TLS).
    pub srtp: sip::sdp::Srtp,
}

impl AgentEntry {
    /// An agent named after its id, with no skills, wrap-up or token.
    #[must_use]
    pub fn new(id: AgentId, contact: Target, businesses: Vec<BusinessId>) -> Self {
        Self {
            name: id.as_str().to_owned(),
            id,
            contact,
            businesses,
            skills: Vec::new(),
            wrap_up: Duration::ZERO,
            token: None,
            srtp: sip::sdp::Srtp::Off,
        }
    }
}

/// Businesses (in configuration order: the first is the page's default) and agents.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    /// The businesses.
    pub businesses: Vec<BusinessEntry>,
    /// The agents.
    pub agents: Vec<AgentEntry>,
}

/// Compares two secrets in time independent of where they differ.
#[must_use]
pub fn secret_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Directory {
    /// A business by id.
    #[must_use]
    pub fn business(&self, id: &BusinessId) -> Option<&BusinessEntry> {
        self.businesses.iter().find(|b| &b.id == id)
    }

    /// An agent by id.
    #[must_use]
    pub fn agent(&self, id: &AgentId) -> Option<&AgentEntry> {
        self.agents.iter().find(|a| &a.id == id)
    }

    /// The agent whose desktop token this is.
    #[must_use]
    pub fn agent_by_token(&self, token: &str) -> Option<&AgentEntry> {
        self.agents
            .iter()
            .find(|a| a.token.as_deref().is_some_and(|t| secret_eq(t, token)))
    }

    /// The business whose secret API key this is.
    #[must_use]
    pub fn business_by_key(&self, key: &str) -> Option<&BusinessEntry> {
        self.businesses
            .iter()
            .find(|b| b.api_keys.iter().any(|k| secret_eq(k, key)))
    }

    /// How many agents serve a business.
    #[must_use]
    pub fn agents_of(&self, business: &BusinessId) -> usize {
        self.agents
            .iter()
            .filter(|a| a.businesses.contains(business))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_compare_whole() {
        assert!(secret_eq("abcdef", "abcdef"));
        assert!(!secret_eq("abcdef", "abcdeg"));
        assert!(!secret_eq("abc", "abcdef"));
        assert!(!secret_eq("", "x"));
    }

    #[test]
    fn lookups_by_token_and_key() {
        let b = BusinessId::new("acme").unwrap();
        let mut biz = BusinessEntry::new(b.clone(), "ACME");
        biz.api_keys = vec!["k-0123456789abcdef".into()];
        let mut a = AgentEntry::new(
            AgentId::new("alice").unwrap(),
            Target::parse("sip:alice@127.0.0.1:5070").unwrap(),
            vec![b],
        );
        a.token = Some("t-0123456789abcdef".into());
        let d = Directory {
            businesses: vec![biz],
            agents: vec![a],
        };
        assert_eq!(
            d.agent_by_token("t-0123456789abcdef").unwrap().id.as_str(),
            "alice"
        );
        assert!(d.agent_by_token("t-0123456789abcdeX").is_none());
        assert_eq!(
            d.business_by_key("k-0123456789abcdef").unwrap().id.as_str(),
            "acme"
        );
        assert!(d.business_by_key("nope").is_none());
    }
}
