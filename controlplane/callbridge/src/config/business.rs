//! `[[business]]`: a business whose visitors are called back, and its terms: credentials and
//! widget origins, time zone and opening hours, webhook, caller id, customer numbers, retries
//! and limits.

use std::time::Duration;

use flows::hours::OpeningHours;
use flows::numbers::NumberPolicy;
use flows::retry::RetryPolicy;
use flows::BusinessId;
use serde::Deserialize;

use super::locate::{key, Seg};
use super::secret::{check_key, Secret};
use super::service::LimitsConfig;

/// `[[business]]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BusinessConfig {
    /// `id` (required): `[A-Za-z0-9_.-]`, unique; used in `?business=` and API requests.
    pub(crate) id: BusinessId,
    /// `name` (required): shown on the web page.
    pub(crate) name: String,
    /// `api_keys`: secret keys for server-side requests (`Authorization: Bearer <key>`), each
    /// at least 16 visible ASCII characters, unique across all businesses and agent tokens.
    /// Default none: only loopback clients may act for this business without a key.
    #[serde(default)]
    pub(crate) api_keys: Vec<Secret>,
    /// `widget_key`: the public key the embeddable widget sends (`X-Widget-Key`), at least 8
    /// visible ASCII characters, unique across businesses. Default none (no widget).
    #[serde(default)]
    pub(crate) widget_key: Option<String>,
    /// `allowed_origins`: the origins whose pages may use the widget, each
    /// `scheme://host[:port]` as browsers send it in `Origin` (`http` or `https`, lower case,
    /// no path, no default port), e.g. `["https://shop.example"]`. Default none.
    #[serde(default)]
    pub(crate) allowed_origins: Vec<String>,
    /// `time_zone`: the IANA time zone of `hours` and `holidays`, e.g. `"Europe/Berlin"`.
    /// Default `"UTC"`.
    #[serde(default = "utc")]
    pub(crate) time_zone: String,
    /// `hours`: weekly opening hours, e.g. `["mon-fri 09:00-17:30", "sat 10:00-14:00",
    /// "sun closed"]` (see `flows::hours`). Default none: always open.
    #[serde(default)]
    pub(crate) hours: Vec<String>,
    /// `holidays`: closed dates `YYYY-MM-DD` in `time_zone`, e.g. `["2026-12-25"]`. Default
    /// none.
    #[serde(default)]
    pub(crate) holidays: Vec<String>,
    /// `hours` and `holidays` in `time_zone`, parsed by [`crate::config::Config::load`];
    /// `None` when neither is given (always open), and before validation. Not a key.
    #[serde(skip)]
    pub(crate) opening_hours: Option<OpeningHours>,
    /// `webhook_url`: where status changes are POSTed, an `http://` or `https://` URL.
    /// Default none (no webhook).
    #[serde(default)]
    pub(crate) webhook_url: Option<String>,
    /// `webhook_secret`: the key the webhook's requests are signed with, at least 16 visible
    /// ASCII characters; required with `webhook_url`, refused without it. Default none.
    #[serde(default)]
    pub(crate) webhook_secret: Option<Secret>,
    /// `caller_id`: the caller id the customer sees, an E.164 number (`"+15550100"`) or a SIP
    /// user part. Default none: `sip.from_user`.
    #[serde(default)]
    pub(crate) caller_id: Option<String>,
    /// `inbound_numbers`: the business's own numbers (E.164, e.g. `["+15550001000"]`): an
    /// INVITE from a trunk to one of them is answered and joins the business's queue (the
    /// caller hears the announcement). Unique across businesses. Default none.
    #[serde(default)]
    pub(crate) inbound_numbers: Vec<String>,
    /// `agent_early_media`: the customer hears the agent's side as soon as it sends early
    /// media (its ringback in a 183 with SDP) instead of the announcement. Default false.
    #[serde(default)]
    pub(crate) agent_early_media: bool,
    /// `reservation`: `"agent_first"` (default) reserves an agent, then calls the customer;
    /// `"customer_first"` calls the customer first and reserves an agent only once the
    /// customer answered (the announcement covers the wait, at most
    /// `flow.queue_timeout_secs`, then `failed/no_agent`).
    #[serde(default)]
    pub(crate) reservation: ReservationConfig,
    /// `announcement`: the message this business's customers hear while an agent is called,
    /// an 8 kHz mono WAV (PCM16, µ-law or A-law), relative to the configuration file. Default
    /// none: `media.announcement` (or the built-in prompt).
    #[serde(default)]
    pub(crate) announcement: Option<std::path::PathBuf>,
    /// `default_country`: the ISO 3166 alpha-2 region (`"US"`, `"DE"`) that reads national
    /// numbers typed into the widget (no `+`). Default none: numbers need their country code.
    #[serde(default)]
    pub(crate) default_country: Option<String>,
    /// `preferred_wait_secs`: how long a call waits for its preferred agent while that agent
    /// is busy before any agent may take it, 0..=3600. Default 30.
    #[serde(default = "preferred_wait_secs")]
    pub(crate) preferred_wait_secs: u64,
    /// `[business.retry]`: when a busy or unanswered customer is called again.
    #[serde(default)]
    pub(crate) retry: RetryConfig,
    /// `[business.limits]`: this business's caps and its overrides of `[limits]`.
    #[serde(default)]
    pub(crate) limits: BusinessLimitsConfig,
    /// `[business.number_policy]`: which customer numbers may be called. Default: any
    /// country; premium-rate and other special-service numbers are always refused.
    #[serde(default)]
    pub(crate) number_policy: NumberPolicyConfig,
}

/// `business.reservation`: when the agent is reserved (see [`flows::Reservation`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReservationConfig {
    /// `agent_first`
    #[default]
    AgentFirst,
    /// `customer_first`
    CustomerFirst,
}

impl From<ReservationConfig> for flows::Reservation {
    fn from(r: ReservationConfig) -> Self {
        match r {
            ReservationConfig::AgentFirst => Self::AgentFirst,
            ReservationConfig::CustomerFirst => Self::CustomerFirst,
        }
    }
}

fn utc() -> String {
    "UTC".into()
}

const fn preferred_wait_secs() -> u64 {
    30
}

/// `[business.retry]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RetryConfig {
    /// `attempts`: customer attempts in total, the first included, 1..=10 (1: never
    /// retry). Default 3.
    pub(crate) attempts: u32,
    /// `spacing_secs`: from the end of one attempt to the next (moved to the next opening
    /// when outside `hours`), 1..=86400. Default 300.
    pub(crate) spacing_secs: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            attempts: 3,
            spacing_secs: 300,
        }
    }
}

impl RetryConfig {
    /// The retry policy (busy and no answer are retried).
    #[must_use]
    pub(crate) fn policy(&self) -> RetryPolicy {
        RetryPolicy {
            attempts: self.attempts,
            spacing: Duration::from_secs(self.spacing_secs),
            ..RetryPolicy::default()
        }
    }
}

/// `[business.limits]`: 0 turns a limit off; the rate limits are 0..=1000000.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct BusinessLimitsConfig {
    /// `max_concurrent_calls`: calls of this business in progress at once. 0..=100000.
    /// Default 50.
    pub(crate) max_concurrent_calls: u32,
    /// `per_number_per_hour`: overrides `limits.per_number_per_hour` for this business.
    /// Default: that value.
    pub(crate) per_number_per_hour: Option<u32>,
    /// `per_business_per_minute`: overrides `limits.per_business_per_minute` for this
    /// business. Default: that value.
    pub(crate) per_business_per_minute: Option<u32>,
}

impl Default for BusinessLimitsConfig {
    fn default() -> Self {
        Self {
            max_concurrent_calls: 50,
            per_number_per_hour: None,
            per_business_per_minute: None,
        }
    }
}

/// `[business.number_policy]`
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct NumberPolicyConfig {
    /// `allowed_country_codes`: country calling codes that may be called, e.g. `[1, 44]`
    /// (1..=999, each once). Default none: any.
    pub(crate) allowed_country_codes: Vec<u16>,
}

impl NumberPolicyConfig {
    /// The number policy: these country codes, the default refused number types.
    #[must_use]
    pub(crate) fn policy(&self) -> NumberPolicy {
        NumberPolicy {
            allowed_country_codes: self.allowed_country_codes.clone(),
            ..NumberPolicy::default()
        }
    }
}

impl BusinessConfig {
    /// A business with every optional key at its default.
    pub(crate) fn new(id: BusinessId, name: impl Into<String>) -> Self {
        Self {
            id,
            name: name.into(),
            api_keys: Vec::new(),
            widget_key: None,
            allowed_origins: Vec::new(),
            time_zone: utc(),
            hours: Vec::new(),
            holidays: Vec::new(),
            opening_hours: None,
            webhook_url: None,
            webhook_secret: None,
            caller_id: None,
            inbound_numbers: Vec::new(),
            agent_early_media: false,
            reservation: ReservationConfig::AgentFirst,
            announcement: None,
            default_country: None,
            preferred_wait_secs: preferred_wait_secs(),
            retry: RetryConfig::default(),
            limits: BusinessLimitsConfig::default(),
            number_policy: NumberPolicyConfig::default(),
        }
    }

    /// `preferred_wait_secs` as a duration.
    #[must_use]
    pub(crate) fn preferred_wait(&self) -> Duration {
        Duration::from_secs(self.preferred_wait_secs)
    }

    /// The rate limits for this business: `[limits]` with this business's overrides and
    /// `max_concurrent_calls`.
    #[must_use]
    pub(crate) fn rate_limits(&self, global: &LimitsConfig) -> flows::limits::Limits {
        let mut l = global.limits();
        l.max_concurrent_calls = self.limits.max_concurrent_calls;
        if let Some(n) = self.limits.per_number_per_hour {
            l.per_number_per_hour = n;
        }
        if let Some(n) = self.limits.per_business_per_minute {
            l.per_business_per_minute = n;
        }
        l
    }

    /// The webhook: its URL and signing secret, when configured.
    #[must_use]
    pub(crate) fn webhook(&self) -> Option<(&str, &Secret)> {
        self.webhook_url
            .as_deref()
            .zip(self.webhook_secret.as_ref())
    }

    /// Checks the optional keys of `business[i]` and parses its opening hours into
    /// `opening_hours`.
    /// Resolves `announcement` against `dir` and checks that it is a usable WAV file (so
    /// that `check-config` finds what `serve` would refuse).
    pub(super) fn resolve_announcement(
        &mut self,
        dir: &std::path::Path,
        i: usize,
    ) -> Result<(), (Vec<Seg>, String)> {
        let Some(p) = &self.announcement else {
            return Ok(());
        };
        let at = vec![key("business"), Seg::Index(i), key("announcement")];
        let full = if p.is_absolute() {
            p.clone()
        } else {
            dir.join(p)
        };
        let bytes = std::fs::read(&full).map_err(|e| {
            (
                at.clone(),
                format!(
                    "cannot read {}: {e} (relative paths are relative to the configuration file)",
                    full.display()
                ),
            )
        })?;
        dp_api::Clip::from_wav(&bytes, full.display().to_string())
            .map_err(|e| (at, format!("{}: {e}", full.display())))?;
        self.announcement = Some(full);
        Ok(())
    }

    pub(super) fn validate(&mut self, i: usize) -> Result<(), (Vec<Seg>, String)> {
        let here = |k: &str| vec![key("business"), Seg::Index(i), key(k)];
        let item = |k: &str, j: usize| vec![key("business"), Seg::Index(i), key(k), Seg::Index(j)];
        let sub = |t: &str, k: &str| vec![key("business"), Seg::Index(i), key(t), key(k)];
        for (j, k) in self.api_keys.iter().enumerate() {
            check_key(k.expose(), "an API key", 16).map_err(|r| (item("api_keys", j), r))?;
            if self.api_keys[..j].contains(k) {
                return Err((item("api_keys", j), "is listed twice".into()));
            }
        }
        if let Some(w) = &self.widget_key {
            check_key(w, "a widget key", 8).map_err(|r| (here("widget_key"), r))?;
        }
        for (j, o) in self.allowed_origins.iter().enumerate() {
            check_origin(o).map_err(|r| (item("allowed_origins", j), r))?;
            if self.allowed_origins[..j].contains(o) {
                return Err((item("allowed_origins", j), format!("{o:?} is listed twice")));
            }
        }
        self.opening_hours = self.parse_hours(&here, &item)?;
        if let Some(u) = &self.webhook_url {
            check_url(u).map_err(|r| (here("webhook_url"), r))?;
        }
        match (&self.webhook_url, &self.webhook_secret) {
            (Some(_), None) => {
                return Err((
                    here("webhook_url"),
                    "needs webhook_secret (at least 16 characters) to sign what is sent".into(),
                ))
            }
            (None, Some(_)) => {
                return Err((
                    here("webhook_secret"),
                    "has no use without webhook_url".into(),
                ))
            }
            (Some(_), Some(s)) => check_key(s.expose(), "a webhook secret", 16)
                .map_err(|r| (here("webhook_secret"), r))?,
            (None, None) => {}
        }
        for (j, n) in self.inbound_numbers.iter().enumerate() {
            let seg = || {
                vec![
                    key("business"),
                    Seg::Index(i),
                    key("inbound_numbers"),
                    Seg::Index(j),
                ]
            };
            if !matches!(flows::Target::parse(n), Ok(flows::Target::Tel(_))) {
                return Err((
                    seg(),
                    format!("{n:?} is not an E.164 number (+ then 8 to 15 digits)"),
                ));
            }
            if self.inbound_numbers[..j].contains(n) {
                return Err((seg(), format!("{n} is listed twice")));
            }
        }
        if let Some(c) = &self.caller_id {
            check_caller_id(c).map_err(|r| (here("caller_id"), r))?;
        }
        if let Some(c) = &self.default_country {
            check_region(c).map_err(|r| (here("default_country"), r))?;
        }
        if self.preferred_wait_secs > 3600 {
            return Err((
                here("preferred_wait_secs"),
                format!("{} is out of range 0..=3600", self.preferred_wait_secs),
            ));
        }
        if !(1..=10).contains(&self.retry.attempts) {
            return Err((
                sub("retry", "attempts"),
                format!("{} is out of range 1..=10", self.retry.attempts),
            ));
        }
        if !(1..=86_400).contains(&self.retry.spacing_secs) {
            return Err((
                sub("retry", "spacing_secs"),
                format!("{} is out of range 1..=86400", self.retry.spacing_secs),
            ));
        }
        let l = &self.limits;
        for (name, v, max) in [
            (
                "max_concurrent_calls",
                Some(l.max_concurrent_calls),
                100_000,
            ),
            (
                "per_number_per_hour",
                l.per_number_per_hour,
                super::service::MAX_RATE,
            ),
            (
                "per_business_per_minute",
                l.per_business_per_minute,
                super::service::MAX_RATE,
            ),
        ] {
            if let Some(v) = v.map(u64::from).filter(|&v| v > max) {
                return Err((sub("limits", name), format!("{v} is outside 0..={max}")));
            }
        }
        let codes = &self.number_policy.allowed_country_codes;
        for (j, &c) in codes.iter().enumerate() {
            let at = || {
                vec![
                    key("business"),
                    Seg::Index(i),
                    key("number_policy"),
                    key("allowed_country_codes"),
                    Seg::Index(j),
                ]
            };
            if !(1..=999).contains(&c) {
                return Err((at(), format!("{c} is not a country calling code (1..=999)")));
            }
            if codes[..j].contains(&c) {
                return Err((at(), format!("{c} is listed twice")));
            }
        }
        Ok(())
    }

    /// `time_zone`, then each `hours` and `holidays` entry, then all of them together.
    fn parse_hours(
        &self,
        here: &dyn Fn(&str) -> Vec<Seg>,
        item: &dyn Fn(&str, usize) -> Vec<Seg>,
    ) -> Result<Option<OpeningHours>, (Vec<Seg>, String)> {
        const NONE: &[&str] = &[];
        let reason = |e: flows::Error| match e {
            flows::Error::BadHours { reason, .. } => reason,
            e => e.to_string(),
        };
        // The time zone alone: parsing no hours checks it with `jiff::tz::TimeZone::get`.
        if OpeningHours::parse(&self.time_zone, NONE, NONE).is_err() {
            return Err((
                here("time_zone"),
                format!(
                    "unknown time zone {:?} (use a tz database name like \"Europe/Berlin\" or \"UTC\")",
                    self.time_zone
                ),
            ));
        }
        for (j, h) in self.hours.iter().enumerate() {
            OpeningHours::parse("UTC", &[h], NONE).map_err(|e| (item("hours", j), reason(e)))?;
        }
        for (j, h) in self.holidays.iter().enumerate() {
            OpeningHours::parse("UTC", NONE, &[h]).map_err(|e| (item("holidays", j), reason(e)))?;
        }
        if self.hours.is_empty() && self.holidays.is_empty() {
            return Ok(None);
        }
        OpeningHours::parse(&self.time_zone, &self.hours, &self.holidays)
            .map(Some)
            .map_err(|e| (here("hours"), reason(e)))
    }
}

/// `scheme://host[:port]` exactly as a browser sends it in `Origin`.
fn check_origin(o: &str) -> Result<(), String> {
    let not = |why: &str| Err(format!("{o:?} is not an origin: {why}"));
    let Some((scheme, rest)) = o.split_once("://") else {
        return not("write it as scheme://host[:port], e.g. \"https://shop.example\"");
    };
    let default_port = match scheme {
        "https" => "443",
        "http" => "80",
        _ => return not("the scheme must be http or https (lower case)"),
    };
    if rest.contains(['/', '?', '#']) {
        return not("an origin has no path, query or fragment (not even a trailing /)");
    }
    if rest.contains('@') {
        return not("an origin has no user name");
    }
    let (host, port) =
        split_host_port(rest).map_err(|why| format!("{o:?} is not an origin: {why}"))?;
    check_host(host).map_err(|why| format!("{o:?} is not an origin: {why}"))?;
    if host.chars().any(|c| c.is_ascii_uppercase()) {
        return not("write the host in lower case, as browsers send it");
    }
    if port == Some(default_port) {
        return not(&format!(
            "browsers leave out the default port {default_port}; write {scheme}://{host}"
        ));
    }
    Ok(())
}

/// An `http://` or `https://` URL with a host: `scheme://host[:port][/path][?query]`.
fn check_url(u: &str) -> Result<(), String> {
    let not = |why: &str| Err(format!("{u:?} is not an http or https URL: {why}"));
    let Some((scheme, rest)) = u.split_once("://") else {
        return not("write it like \"https://crm.example/hook\"");
    };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return not("the scheme must be http or https");
    }
    if let Some(c) = u.chars().find(|c| !c.is_ascii_graphic()) {
        return not(&format!("it contains {c:?}; percent-encode it"));
    }
    if u.contains('#') {
        return not("a fragment (#…) is never sent");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    if authority.contains('@') {
        return not("put no credentials in the URL; the requests are signed with webhook_secret");
    }
    let (host, _) = split_host_port(authority)
        .map_err(|why| format!("{u:?} is not an http or https URL: {why}"))?;
    check_host(host).map_err(|why| format!("{u:?} is not an http or https URL: {why}"))
}

/// `host[:port]` or `[v6][:port]`; the port, if any, is 1..=65535.
fn split_host_port(s: &str) -> Result<(&str, Option<&str>), String> {
    let (host, port) = if s.starts_with('[') {
        match s.split_once(']') {
            Some((h, "")) => (&s[..=h.len()], None),
            Some((h, p)) => match p.strip_prefix(':') {
                Some(p) => (&s[..=h.len()], Some(p)),
                None => return Err("unexpected text after the IPv6 address".into()),
            },
            None => return Err("unclosed '[' in the host".into()),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if let Some(p) = port {
        if p.parse::<u16>().map_or(true, |n| n == 0) || p.starts_with(['+', '0']) {
            return Err(format!("{p:?} is not a port (1..=65535)"));
        }
    }
    Ok((host, port))
}

/// A DNS name, an IPv4 address or a bracketed IPv6 address.
fn check_host(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6
            .parse::<std::net::Ipv6Addr>()
            .map(drop)
            .map_err(|_| format!("{v6:?} is not an IPv6 address"));
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!("{host:?} is not a host name or IP address"));
    }
    Ok(())
}

/// An E.164 number (`+` and 8 to 15 digits) or a SIP user part.
fn check_caller_id(c: &str) -> Result<(), String> {
    if c.starts_with('+') {
        return flows::Target::parse(c).map(drop).map_err(|e| e.to_string());
    }
    let user_ok = |ch: char| ch.is_ascii_alphanumeric() || "-_.!~*'()&=$,".contains(ch);
    if c.is_empty() || !c.chars().all(user_ok) {
        return Err(format!(
            "{c:?} is neither an E.164 number (\"+15550100\") nor a SIP user part (letters, digits and -_.!~*'()&=$,)"
        ));
    }
    Ok(())
}

/// An ISO 3166 alpha-2 code the phone number metadata knows.
fn check_region(r: &str) -> Result<(), String> {
    if r.len() != 2 || !r.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(format!(
            "{r:?} is not an ISO 3166 alpha-2 region code; write two capital letters like \"US\" or \"DE\""
        ));
    }
    // The number policy reads the region before anything else about the number, so an unknown
    // region is the only `UnknownRegion` refusal a well-formed probe can get.
    match NumberPolicy::default().check("+15550100", Some(r)) {
        Err(flows::numbers::NumberRefusal::UnknownRegion(_)) => Err(format!(
            "{r:?} is not a region the phone number metadata knows (ISO 3166 alpha-2, like \"US\" or \"DE\")"
        )),
        _ => Ok(()),
    }
}
