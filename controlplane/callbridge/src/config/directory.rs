//! `[[agent]]`, and the checks across all `[[business]]` and `[[agent]]` entries: unique ids,
//! keys and tokens, known businesses.

use std::fmt;
use std::time::Duration;

use flows::{AgentId, BusinessId, Skill, Target};
use serde::{Deserialize, Deserializer};

use super::business::BusinessConfig;
use super::locate::{key, Seg};
use super::media::{LegMedia, SrtpPolicy};
use super::secret::{check_key, Secret};

/// `[[agent]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AgentConfig {
    /// `id` (required): unique.
    pub(crate) id: AgentId,
    /// `contact` (required): a SIP URI called directly, an E.164 number sent to the trunk, or
    /// `"registered"`: the devices that REGISTER as `sip_username` ring in parallel.
    #[serde(deserialize_with = "contact")]
    pub(crate) contact: Target,
    /// `sip_username`: the digest user name the agent's softphones REGISTER with (needed with
    /// `contact = "registered"`; unique).
    #[serde(default)]
    pub(crate) sip_username: Option<String>,
    /// `sip_password`: their digest password (kept only as hashes once loaded).
    #[serde(default)]
    pub(crate) sip_password: Option<Secret>,
    /// `srtp`: SDES-SRTP on calls to the agent, `"off"` (default), `"optional"` or
    /// `"required"`; keys only cross TLS (a `sips:`/`;transport=tls` contact, or devices
    /// registered over TLS).
    #[serde(default)]
    pub(crate) srtp: SrtpPolicy,
    /// `media`: `srtp` may also be given here (`[agent.media]` / `[trunk.media]`, the
    /// `media.srtp` of the leg); when both are given they must agree.
    #[serde(default)]
    pub(crate) media: LegMedia,
    /// `businesses`: the businesses this agent serves (ids of `[[business]]` entries). Default
    /// none: the agent is reachable only through `POST /v1/bridges`. Written, it lists at
    /// least one (`businesses = []` is an error: such an agent never gets a call request).
    #[serde(default, deserialize_with = "non_empty_businesses")]
    pub(crate) businesses: Vec<BusinessId>,
    /// `token`: the agent desktop login token (`Authorization: Bearer`), at least 16 visible
    /// ASCII characters, unique across agents and business API keys. Default none: the agent
    /// cannot log in to the desktop.
    #[serde(default)]
    pub(crate) token: Option<Secret>,
    /// `name`: the display name, e.g. `"Alice Example"`. Default: the id (see
    /// [`AgentConfig::display_name`]).
    #[serde(default)]
    pub(crate) name: Option<String>,
    /// `skills`: what the agent can do, e.g. `["billing", "de"]` (skill ids, `[A-Za-z0-9_.-]`,
    /// each once). Default none.
    #[serde(default, deserialize_with = "skills")]
    pub(crate) skills: Vec<Skill>,
    /// `wrap_up_secs`: time after a call before the agent is offered the next, 0..=3600.
    /// Default 10.
    #[serde(default = "wrap_up_secs")]
    pub(crate) wrap_up_secs: u64,
}

/// `contact`: a target, or `"registered"` (completed with `sip_username` by [`validate`]).
fn contact<'de, D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
    let s = String::deserialize(d)?;
    if s.trim() == "registered" {
        return Ok(Target::Registered(String::new()));
    }
    Target::parse(&s).map_err(serde::de::Error::custom)
}

const fn wrap_up_secs() -> u64 {
    10
}

/// `skills`, each checked while it is read so that an error names its item (`skills[1]`);
/// `Skill`'s own `try_from` deserialization would name the whole list.
fn skills<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Skill>, D::Error> {
    struct Item(Skill);
    impl<'de> Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl serde::de::Visitor<'_> for V {
                type Value = Item;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a skill id")
                }
                fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Item, E> {
                    Skill::new(s).map(Item).map_err(E::custom)
                }
            }
            d.deserialize_str(V)
        }
    }
    Vec::<Item>::deserialize(d).map(|v| v.into_iter().map(|i| i.0).collect())
}

impl AgentConfig {
    /// An agent with every optional key but `businesses` at its default.
    pub(crate) fn new(id: AgentId, contact: Target, businesses: Vec<BusinessId>) -> Self {
        Self {
            id,
            contact,
            businesses,
            token: None,
            name: None,
            skills: Vec::new(),
            wrap_up_secs: wrap_up_secs(),
            sip_username: None,
            sip_password: None,
            srtp: SrtpPolicy::Off,
            media: LegMedia::default(),
        }
    }

    /// `name`, or the id when it is not given.
    #[must_use]
    pub(crate) fn display_name(&self) -> &str {
        self.name.as_deref().unwrap_or(self.id.as_str())
    }

    /// `wrap_up_secs` as a duration.
    #[must_use]
    pub(crate) fn wrap_up(&self) -> Duration {
        Duration::from_secs(self.wrap_up_secs)
    }
}

/// `businesses` when written: at least one id.
fn non_empty_businesses<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Vec<BusinessId>, D::Error> {
    let v = Vec::<BusinessId>::deserialize(d)?;
    if v.is_empty() {
        return Err(serde::de::Error::custom(
            "an agent serving no business never gets a call request; list its businesses, \
             or leave the key out for an agent reached only through POST /v1/bridges",
        ));
    }
    Ok(v)
}

/// Checks the businesses (at least one, unless the file configures a media node, unique ids, names, each one's keys, keys unique
/// across businesses) and the agents (unique ids, known businesses listed once, tokens unique
/// across agents and API keys, names, skills, wrap-up). Parses each business's opening hours.
pub(super) fn validate(
    business: &mut [BusinessConfig],
    agent: &mut [AgentConfig],
    media_node: bool,
) -> Result<(), (Vec<Seg>, String)> {
    registered(agent)?;
    let at = |segs: &[Seg], reason: String| Err((segs.to_vec(), reason));
    if business.is_empty() && !media_node {
        return at(
            &[key("business")],
            "at least one [[business]] is required".into(),
        );
    }
    for i in 0..business.len() {
        let (earlier, rest) = business.split_at_mut(i);
        let b = &mut rest[0];
        if earlier.iter().any(|o| o.id == b.id) {
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
        b.validate(i)?;
        for (j, k) in b.api_keys.iter().enumerate() {
            if let Some(o) = earlier.iter().find(|o| o.api_keys.contains(k)) {
                return at(
                    &[
                        key("business"),
                        Seg::Index(i),
                        key("api_keys"),
                        Seg::Index(j),
                    ],
                    format!(
                        "is also an API key of business \"{}\"; API keys must be unique",
                        o.id
                    ),
                );
            }
        }
        for (j, n) in b.inbound_numbers.iter().enumerate() {
            if let Some(o) = earlier.iter().find(|o| o.inbound_numbers.contains(n)) {
                return at(
                    &[
                        key("business"),
                        Seg::Index(i),
                        key("inbound_numbers"),
                        Seg::Index(j),
                    ],
                    format!("{n} is also a number of business \"{}\"", o.id),
                );
            }
        }
        if let Some(w) = &b.widget_key {
            if let Some(o) = earlier.iter().find(|o| o.widget_key.as_ref() == Some(w)) {
                return at(
                    &[key("business"), Seg::Index(i), key("widget_key")],
                    format!(
                        "{w:?} is also the widget key of business \"{}\"; widget keys must be unique",
                        o.id
                    ),
                );
            }
        }
    }
    for (i, a) in agent.iter().enumerate() {
        let here = |k: &str| vec![key("agent"), Seg::Index(i), key(k)];
        if agent[..i].iter().any(|o| o.id == a.id) {
            return at(&here("id"), format!("duplicate agent id \"{}\"", a.id));
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
        if let Some(t) = &a.token {
            check_key(t.expose(), "an agent token", 16).map_err(|r| (here("token"), r))?;
            if let Some(o) = agent[..i].iter().find(|o| o.token.as_ref() == Some(t)) {
                return at(
                    &here("token"),
                    format!(
                        "is also the token of agent \"{}\"; tokens must be unique",
                        o.id
                    ),
                );
            }
            if let Some(o) = business.iter().find(|o| o.api_keys.contains(t)) {
                return at(
                    &here("token"),
                    format!(
                        "is also an API key of business \"{}\"; a token must differ from every API key",
                        o.id
                    ),
                );
            }
        }
        if let Some(n) = &a.name {
            if n.trim().is_empty() || n.contains(['\r', '\n']) {
                return at(&here("name"), "must be a non-empty single line".into());
            }
        }
        for (j, s) in a.skills.iter().enumerate() {
            if a.skills[..j].contains(s) {
                return at(
                    &[key("agent"), Seg::Index(i), key("skills"), Seg::Index(j)],
                    format!("skill \"{s}\" is listed twice"),
                );
            }
        }
        if a.wrap_up_secs > 3600 {
            return at(
                &here("wrap_up_secs"),
                format!("{} is out of range 0..=3600", a.wrap_up_secs),
            );
        }
    }
    Ok(())
}

/// `contact = "registered"`, `sip_username`, `sip_password` and `srtp` of each agent: a
/// registered contact needs both credentials and becomes `registered:USER`; user names are
/// unique; SRTP needs TLS to the agent.
fn registered(agent: &mut [AgentConfig]) -> Result<(), (Vec<Seg>, String)> {
    for i in 0..agent.len() {
        let here = |k: &str| vec![key("agent"), Seg::Index(i), key(k)];
        let (earlier, rest) = agent.split_at_mut(i);
        let a = &mut rest[0];
        match (&a.sip_username, &a.sip_password) {
            (Some(u), Some(p)) => {
                let user_ok = |c: char| c.is_ascii_alphanumeric() || "-_.!~*'()+".contains(c);
                if u.is_empty() || !u.chars().all(user_ok) {
                    return Err((
                        here("sip_username"),
                        format!("{u:?} is not a SIP user name (letters, digits and -_.!~*'()+)"),
                    ));
                }
                if p.expose().len() < 8 {
                    return Err((
                        here("sip_password"),
                        "must have at least 8 characters".into(),
                    ));
                }
                if let Some(o) = earlier.iter().find(|o| o.sip_username.as_ref() == Some(u)) {
                    return Err((
                        here("sip_username"),
                        format!("is also the sip_username of agent \"{}\"", o.id),
                    ));
                }
            }
            (Some(_), None) => {
                return Err((
                    here("sip_password"),
                    "sip_username is set but sip_password is not".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    here("sip_username"),
                    "sip_password is set but sip_username is not".into(),
                ))
            }
            (None, None) => {}
        }
        if matches!(a.contact, Target::Registered(_)) {
            let Some(u) = &a.sip_username else {
                return Err((
                    here("contact"),
                    "contact = \"registered\" needs sip_username and sip_password".into(),
                ));
            };
            a.contact = Target::registered(u).map_err(|e| (here("sip_username"), e.to_string()))?;
        }
        if let Some(m) = a.media.srtp {
            if a.srtp != SrtpPolicy::Off && a.srtp != m {
                return Err((
                    vec![key("agent"), Seg::Index(i), key("media"), key("srtp")],
                    "disagrees with the agent's srtp; give one of them".into(),
                ));
            }
            a.srtp = m;
        }
        if a.srtp != SrtpPolicy::Off {
            if let Target::Sip(uri) = &a.contact {
                if !super::trunk::uri_is_tls(uri) {
                    return Err((here("srtp"), "SRTP keys (SDES) only cross TLS: the contact needs sips: or ;transport=tls (or contact = \"registered\" over TLS)".into()));
                }
            }
        }
    }
    Ok(())
}
