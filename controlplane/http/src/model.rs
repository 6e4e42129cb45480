//! The API's request and view types, and the validation that turns JSON into requests.
//!
//! Requests are validated field by field from a JSON object so that every error names its
//! field (`page.url` for nested ones); unknown fields are rejected by name.

use flows::{AgentId, BusinessId, Target};
use serde_json::{json, Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::ApiError;

/// The longest page URL accepted in a call request.
pub const MAX_URL_LEN: usize = 2048;
/// The longest page title accepted in a call request.
pub const MAX_TITLE_LEN: usize = 512;

/// Information about the web page the visitor was on (claim 5/18).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PageInfo {
    /// `location.href`, at most [`MAX_URL_LEN`] characters.
    pub url: String,
    /// `document.title`, at most [`MAX_TITLE_LEN`] characters.
    pub title: String,
    /// `document.referrer`, at most [`MAX_URL_LEN`] characters (empty: none).
    pub referrer: String,
}

/// A validated `POST /v1/call-requests`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRequest {
    /// Which business the visitor wants to talk to (existence is checked by the service).
    pub business: BusinessId,
    /// Where to call the visitor.
    pub customer: Target,
    /// Call no earlier than this (`None`: now). A time in the past means now.
    pub contact_time: Option<OffsetDateTime>,
    /// The page the request came from.
    pub page: Option<PageInfo>,
    /// The agent the visitor asked for (existence is checked by the service).
    pub preferred_agent: Option<AgentId>,
    /// A skill the agent must have (that some agent has it is checked by the service).
    pub skill: Option<flows::Skill>,
}

/// The agent of a `POST /v1/bridges`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentRef {
    /// A configured agent, called at its contact.
    Id(AgentId),
    /// A SIP URI or E.164 number, called as is.
    Target(Target),
}

/// A validated `POST /v1/bridges`: "bridge this customer and this agent now, no queue".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BridgeRequest {
    /// Where to call the customer (first).
    pub customer: Target,
    /// Whom to call second.
    pub agent: AgentRef,
}

/// Which resource a call was created through (a call is only visible under its own path).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// `POST /v1/call-requests`.
    CallRequest,
    /// `POST /v1/bridges`.
    Bridge,
}

impl CallKind {
    /// The store's kind.
    #[must_use]
    pub fn matches(self, k: store::Kind) -> bool {
        matches!(
            (self, k),
            (
                Self::CallRequest,
                store::Kind::CallRequest | store::Kind::Inbound
            ) | (Self::Bridge, store::Kind::Bridge)
        )
    }
}

fn time_ms(ms: i64) -> Value {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_or(Value::Null, |t| Value::String(format_time(t)))
}

fn page_json(p: Option<&store::Page>) -> Value {
    p.map_or(
        Value::Null,
        |p| json!({ "url": p.url, "title": p.title, "referrer": p.referrer }),
    )
}

fn sale_json(s: Option<&store::Sale>) -> Value {
    s.map_or(Value::Null, |s| {
        json!({
            "at": time_ms(s.at_ms),
            "outcome": s.outcome,
            "amount": s.amount_minor.map(|m| format!("{}.{:02}", m / 100, (m % 100).abs())),
            "currency": s.currency,
            "product": s.product,
            "notes": s.notes,
            "agent": s.agent,
        })
    })
}

/// The JSON document of `GET /v1/call-requests/{id}` and `GET /v1/bridges/{id}`:
/// `{"id", "status", "reason", "business", "customer", "agent", "events": [{"at", "status"}],
/// "media": {"customer", "agent"}, "page": {"url", "title", "referrer"}, "contact_time",
/// "queue_position", "estimated_wait_s", "attempts", "sale"}`, unknown values as `null`.
/// Events carry `reason` when failed; an `interrupted` event marks a restart mid-call.
#[must_use]
pub fn view_json(v: &service::RequestView) -> Value {
    let r = &v.record;
    let events: Vec<Value> = r
        .events
        .iter()
        .map(|e| {
            let mut ev = json!({ "at": time_ms(e.at_ms), "status": e.status });
            if let Some(reason) = &e.reason {
                ev["reason"] = json!(reason);
            }
            ev
        })
        .collect();
    let media = match &v.media {
        (None, None) => Value::Null,
        (c, a) => json!({ "customer": c, "agent": a }),
    };
    json!({
        "id": r.request.id.as_str(),
        "status": r.status,
        "reason": r.reason,
        "business": r.request.business.as_ref().map(BusinessId::as_str),
        "customer": r.request.customer,
        "agent": r.agent.clone().or_else(|| r.request.agent_spec.clone()),
        "events": events,
        "media": media,
        "page": page_json(r.request.page.as_ref()),
        "contact_time": r.request.contact_at_ms.map(time_ms),
        "queue_position": v.queue_position,
        "estimated_wait_s": v.estimated_wait_s,
        "attempts": r.attempts,
        "skill": r.request.skill.as_ref().map(flows::Skill::as_str),
        "sale": sale_json(r.sale.as_ref()),
    })
}

/// The figures of one phase of a record: the first time each status was reached.
fn first_at(r: &store::CallRecord, status: &str) -> Option<i64> {
    r.events
        .iter()
        .find(|e| e.status == status)
        .map(|e| e.at_ms)
}

/// A record for `GET /v1/records`: the view plus every phase's time and the durations
/// (`ring_s` customer dialled → answered, `wait_s` answered → agent bridged, `talk_s`
/// bridged → end).
#[must_use]
pub fn record_json(r: &store::CallRecord) -> Value {
    let parse = |role: &str| {
        r.media_of(role)
            .and_then(|m| serde_json::from_str::<Value>(&m.json).ok())
    };
    let view = service::RequestView {
        record: r.clone(),
        queue_position: None,
        estimated_wait_s: None,
        media: (parse("customer"), parse("agent")),
    };
    let mut v = view_json(&view);
    let dialled = first_at(r, "calling_customer");
    let answered = first_at(r, "announcing");
    let bridged = first_at(r, "bridged");
    let ended = r
        .events
        .iter()
        .rev()
        .find(|e| matches!(e.status.as_str(), "completed" | "failed" | "cancelled"))
        .map(|e| e.at_ms);
    let secs = |a: Option<i64>, b: Option<i64>| match (a, b) {
        (Some(a), Some(b)) if b >= a => json!((b - a) as f64 / 1000.0),
        _ => Value::Null,
    };
    v["created"] = time_ms(r.request.created_ms);
    v["dialled"] = dialled.map_or(Value::Null, time_ms);
    v["answered"] = answered.map_or(Value::Null, time_ms);
    v["bridged"] = bridged.map_or(Value::Null, time_ms);
    v["ended"] = ended.map_or(Value::Null, time_ms);
    v["ring_s"] = secs(dialled, answered);
    v["wait_s"] = secs(answered, bridged);
    v["talk_s"] = secs(bridged, ended);
    v["kind"] = json!(r.request.kind.as_str());
    v
}

/// The columns of `GET /v1/records?format=csv`, in order.
pub const CSV_COLUMNS: [&str; 32] = [
    "id",
    "kind",
    "business",
    "customer",
    "agent",
    "status",
    "reason",
    "attempts",
    "created",
    "dialled",
    "answered",
    "bridged",
    "ended",
    "ring_s",
    "wait_s",
    "talk_s",
    "page_url",
    "customer_rx_packets",
    "customer_tx_packets",
    "customer_jitter_us",
    "customer_loss_pct",
    "customer_mos",
    "agent_rx_packets",
    "agent_tx_packets",
    "agent_loss_pct",
    "agent_mos",
    "sale_outcome",
    "sale_amount",
    "sale_currency",
    "sale_product",
    "sale_notes",
    "sale_agent",
];

fn csv_field(v: &Value) -> String {
    let s = match v {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s
    }
}

/// Records as CSV (RFC 4180: CRLF line ends, header row [`CSV_COLUMNS`]).
#[must_use]
pub fn records_csv(records: &[store::CallRecord]) -> String {
    let mut out = CSV_COLUMNS.join(",");
    out.push_str("\r\n");
    for r in records {
        let v = record_json(r);
        let cols = [
            v["id"].clone(),
            v["kind"].clone(),
            v["business"].clone(),
            v["customer"].clone(),
            v["agent"].clone(),
            v["status"].clone(),
            v["reason"].clone(),
            v["attempts"].clone(),
            v["created"].clone(),
            v["dialled"].clone(),
            v["answered"].clone(),
            v["bridged"].clone(),
            v["ended"].clone(),
            v["ring_s"].clone(),
            v["wait_s"].clone(),
            v["talk_s"].clone(),
            v["page"]["url"].clone(),
            v["media"]["customer"]["rx_packets"].clone(),
            v["media"]["customer"]["tx_packets"].clone(),
            v["media"]["customer"]["jitter_us"].clone(),
            v["media"]["customer"]["loss_pct"].clone(),
            v["media"]["customer"]["mos"].clone(),
            v["media"]["agent"]["rx_packets"].clone(),
            v["media"]["agent"]["tx_packets"].clone(),
            v["media"]["agent"]["loss_pct"].clone(),
            v["media"]["agent"]["mos"].clone(),
            v["sale"]["outcome"].clone(),
            v["sale"]["amount"].clone(),
            v["sale"]["currency"].clone(),
            v["sale"]["product"].clone(),
            v["sale"]["notes"].clone(),
            v["sale"]["agent"].clone(),
        ];
        let line: Vec<String> = cols.iter().map(csv_field).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

/// A business, for the page's business selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessInfo {
    /// Its id (`?business=` on the page).
    pub id: BusinessId,
    /// Its display name.
    pub name: String,
}

/// Formats a time as RFC 3339 in UTC with milliseconds, e.g. `2026-11-29T04:13:33.120Z`.
#[must_use]
pub fn format_time(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

// ---- validation --------------------------------------------------------------------------

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadRequest {
        field: Some(field.to_owned()),
        message: message.into(),
    }
}

fn reject_unknown(
    map: &Map<String, Value>,
    allowed: &[&str],
    prefix: &str,
) -> Result<(), ApiError> {
    match map.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(bad(
            &format!("{prefix}{k}"),
            format!(
                "unknown field \"{prefix}{k}\"; expected one of: {}",
                allowed.join(", ")
            ),
        )),
        None => Ok(()),
    }
}

/// A string field; `null` counts as absent.
fn opt_str<'a>(
    map: &'a Map<String, Value>,
    key: &str,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    match map.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad(field, format!("\"{field}\" must be a string"))),
    }
}

fn req_str<'a>(map: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    opt_str(map, key, key)?.ok_or_else(|| bad(key, format!("\"{key}\" is required")))
}

fn target(field: &str, s: &str) -> Result<Target, ApiError> {
    Target::parse(s).map_err(|e| bad(field, format!("\"{field}\" is invalid: {e}")))
}

impl CallRequest {
    /// The accepted top-level fields.
    pub const FIELDS: [&'static str; 6] = [
        "business",
        "customer",
        "contact_time",
        "page",
        "preferred_agent",
        "skill",
    ];

    /// Validates a request body.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming the first offending field.
    pub fn from_json(map: &Map<String, Value>) -> Result<Self, ApiError> {
        reject_unknown(map, &Self::FIELDS, "")?;
        let business = BusinessId::new(req_str(map, "business")?)
            .map_err(|e| bad("business", format!("\"business\" is invalid: {e}")))?;
        let customer = target("customer", req_str(map, "customer")?)?;
        let contact_time = match opt_str(map, "contact_time", "contact_time")? {
            None | Some("") => None,
            Some(s) => Some(OffsetDateTime::parse(s, &Rfc3339).map_err(|_| {
                bad(
                    "contact_time",
                    format!("\"contact_time\" must be an RFC 3339 date-time such as 2026-11-29T15:30:00Z, not {s:?}"),
                )
            })?),
        };
        let page = match map.get("page") {
            None | Some(Value::Null) => None,
            Some(Value::Object(p)) => {
                reject_unknown(p, &["url", "title", "referrer"], "page.")?;
                let url = opt_str(p, "url", "page.url")?.unwrap_or_default();
                let title = opt_str(p, "title", "page.title")?.unwrap_or_default();
                let referrer = opt_str(p, "referrer", "page.referrer")?.unwrap_or_default();
                if referrer.chars().count() > MAX_URL_LEN {
                    return Err(bad(
                        "page.referrer",
                        format!("\"page.referrer\" is longer than {MAX_URL_LEN} characters"),
                    ));
                }
                if url.chars().count() > MAX_URL_LEN {
                    return Err(bad(
                        "page.url",
                        format!("\"page.url\" is longer than {MAX_URL_LEN} characters"),
                    ));
                }
                if title.chars().count() > MAX_TITLE_LEN {
                    return Err(bad(
                        "page.title",
                        format!("\"page.title\" is longer than {MAX_TITLE_LEN} characters"),
                    ));
                }
                Some(PageInfo {
                    url: url.to_owned(),
                    title: title.to_owned(),
                    referrer: referrer.to_owned(),
                })
            }
            Some(_) => {
                return Err(bad(
                    "page",
                    "\"page\" must be an object like {\"url\": \"…\", \"title\": \"…\", \"referrer\": \"…\"}",
                ))
            }
        };
        let preferred_agent = match opt_str(map, "preferred_agent", "preferred_agent")? {
            None | Some("") => None,
            Some(s) => Some(AgentId::new(s).map_err(|e| {
                bad(
                    "preferred_agent",
                    format!("\"preferred_agent\" is invalid: {e}"),
                )
            })?),
        };
        let skill = match opt_str(map, "skill", "skill")? {
            None | Some("") => None,
            Some(s) => Some(
                flows::Skill::new(s)
                    .map_err(|e| bad("skill", format!("\"skill\" is invalid: {e}")))?,
            ),
        };
        Ok(Self {
            business,
            customer,
            contact_time,
            page,
            preferred_agent,
            skill,
        })
    }
}

impl BridgeRequest {
    /// The accepted fields.
    pub const FIELDS: [&'static str; 2] = ["customer", "agent"];

    /// Validates a request body. `agent` is a SIP URI (`sip:…`), an E.164 number (`+…`), or
    /// else an agent id.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming the first offending field.
    pub fn from_json(map: &Map<String, Value>) -> Result<Self, ApiError> {
        reject_unknown(map, &Self::FIELDS, "")?;
        let customer = target("customer", req_str(map, "customer")?)?;
        let a = req_str(map, "agent")?.trim();
        let agent = if a.starts_with("sip:") || a.starts_with('+') {
            AgentRef::Target(target("agent", a)?)
        } else {
            AgentRef::Id(AgentId::new(a).map_err(|e| {
                bad(
                    "agent",
                    format!("\"agent\" must be an agent id, a SIP URI or an E.164 number: {e}"),
                )
            })?)
        };
        Ok(Self { customer, agent })
    }
}

/// The sale outcomes accepted in `POST /v1/call-requests/{id}/sale`.
pub const SALE_OUTCOMES: [&str; 4] = ["sale", "no_sale", "follow_up", "not_interested"];

/// A validated `POST /v1/call-requests/{id}/sale` (claim 13): `{"outcome", "amount",
/// "currency", "product", "notes", "agent"}`; `amount` is a decimal number or string with at
/// most two decimals, and needs `currency` (ISO 4217, three capital letters).
pub struct SaleRequest;

impl SaleRequest {
    /// The accepted fields.
    pub const FIELDS: [&'static str; 6] =
        ["outcome", "amount", "currency", "product", "notes", "agent"];

    /// Validates a sale body recorded at `at_ms`.
    ///
    /// # Errors
    /// [`ApiError::BadRequest`] naming the first offending field.
    pub fn from_json(map: &Map<String, Value>, at_ms: i64) -> Result<store::Sale, ApiError> {
        reject_unknown(map, &Self::FIELDS, "")?;
        let outcome = req_str(map, "outcome")?;
        if !SALE_OUTCOMES.contains(&outcome) {
            return Err(bad(
                "outcome",
                format!(
                    "\"outcome\" must be one of {}, not {outcome:?}",
                    SALE_OUTCOMES.join(", ")
                ),
            ));
        }
        let amount_minor = match map.get("amount") {
            None | Some(Value::Null) => None,
            Some(Value::Number(n)) => Some(parse_amount(&n.to_string())?),
            Some(Value::String(s)) => Some(parse_amount(s)?),
            Some(_) => return Err(bad("amount", "\"amount\" must be a number such as 49.90")),
        };
        let currency = opt_str(map, "currency", "currency")?.map(str::to_owned);
        if let Some(c) = &currency {
            if c.len() != 3 || !c.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(
                    "currency",
                    format!("\"currency\" must be an ISO 4217 code such as EUR, not {c:?}"),
                ));
            }
        }
        if amount_minor.is_some() && currency.is_none() {
            return Err(bad("currency", "\"currency\" is required with \"amount\""));
        }
        let text = |key: &str, max: usize| -> Result<Option<String>, ApiError> {
            match opt_str(map, key, key)? {
                Some(s) if s.chars().count() > max => Err(bad(
                    key,
                    format!("\"{key}\" is longer than {max} characters"),
                )),
                Some(s) if !s.is_empty() => Ok(Some(s.to_owned())),
                _ => Ok(None),
            }
        };
        Ok(store::Sale {
            at_ms,
            outcome: outcome.to_owned(),
            amount_minor,
            currency,
            product: text("product", 200)?,
            notes: text("notes", 4000)?,
            agent: text("agent", 64)?,
        })
    }
}

/// `"49.9"` → 4990 minor units; at most two decimals, not negative, below 10^13.
fn parse_amount(s: &str) -> Result<i64, ApiError> {
    let err = || {
        bad("amount", format!("\"amount\" must be a non-negative amount with at most two decimals, such as 49.90, not {s:?}"))
    };
    let (whole, frac) = s.trim().split_once('.').unwrap_or((s.trim(), ""));
    if whole.is_empty() || whole.len() > 11 || frac.len() > 2 {
        return Err(err());
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let w: i64 = whole.parse().map_err(|_| err())?;
    let f: i64 = format!("{frac:0<2}").parse().map_err(|_| err())?;
    Ok(w * 100 + f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_has_milliseconds_and_z() {
        let t = OffsetDateTime::parse("2026-11-29T05:13:33.12+01:00", &Rfc3339).unwrap();
        assert_eq!(format_time(t), "2026-11-29T04:13:33.120Z");
    }

    #[test]
    fn amounts_parse_to_minor_units() {
        assert_eq!(parse_amount("49.9").unwrap(), 4990);
        assert_eq!(parse_amount("49.90").unwrap(), 4990);
        assert_eq!(parse_amount("7").unwrap(), 700);
        for bad in ["-1", "1.234", "", ".5", "1e3", "12345678901234"] {
            assert!(parse_amount(bad).is_err(), "{bad}");
        }
    }
}
