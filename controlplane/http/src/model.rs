//! The API's request and view types, and the validation that turns JSON into requests.
//!
//! Requests are validated field by field from a JSON object so that every error names its
//! field (`page.url` for nested ones); unknown fields are rejected by name.

use std::collections::BTreeMap;

use flows::{AgentId, BusinessId, CallId, Status, Target};
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

/// One status change of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusEvent {
    /// When (rendered as RFC 3339 UTC with milliseconds).
    pub at: OffsetDateTime,
    /// The new status.
    pub status: Status,
}

/// Media counters of one leg as shown by the API (from [`dp_api::LegStats`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LegMedia {
    /// RTP packets received from the peer.
    pub rx_packets: u64,
    /// RTP bytes received.
    pub rx_bytes: u64,
    /// RTP packets sent to the peer.
    pub tx_packets: u64,
    /// RTP bytes sent.
    pub tx_bytes: u64,
    /// RTCP packets received.
    pub rx_rtcp: u64,
    /// RTCP packets sent.
    pub tx_rtcp: u64,
    /// Announcement packets sent (part of `tx_packets`).
    pub announcement_packets: u64,
    /// Last interarrival jitter, microseconds.
    pub jitter_us: u32,
    /// Drops by reason name (every reason, zero included).
    pub drops: BTreeMap<&'static str, u64>,
}

impl From<&dp_api::LegStats> for LegMedia {
    fn from(s: &dp_api::LegStats) -> Self {
        Self {
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            rx_rtcp: s.rx_rtcp,
            tx_rtcp: s.tx_rtcp,
            announcement_packets: s.announcement_packets,
            jitter_us: s.jitter_us,
            drops: dp_api::DropReason::ALL
                .iter()
                .map(|r| (r.as_str(), s.drops.get(*r)))
                .collect(),
        }
    }
}

impl LegMedia {
    fn to_json(&self) -> Value {
        json!({
            "rx_packets": self.rx_packets,
            "rx_bytes": self.rx_bytes,
            "tx_packets": self.tx_packets,
            "tx_bytes": self.tx_bytes,
            "rx_rtcp": self.rx_rtcp,
            "tx_rtcp": self.tx_rtcp,
            "announcement_packets": self.announcement_packets,
            "jitter_us": self.jitter_us,
            "drops": self.drops,
        })
    }
}

/// Media counters of both legs; each is `None` until known.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MediaView {
    /// The customer's leg.
    pub customer: Option<LegMedia>,
    /// The agent's leg.
    pub agent: Option<LegMedia>,
}

/// What the API shows of a call ([`CallView::to_json`] is the contract).
#[derive(Debug, Clone, PartialEq)]
pub struct CallView {
    /// The call's id.
    pub id: CallId,
    /// Which resource it belongs to.
    pub kind: CallKind,
    /// The current status (with its failure reason).
    pub status: Status,
    /// The business (click-to-call requests).
    pub business: Option<BusinessId>,
    /// The customer.
    pub customer: Target,
    /// The agent: its id, or for bridges to a bare target that target; `None` until known.
    pub agent: Option<String>,
    /// Every status change, oldest first.
    pub events: Vec<StatusEvent>,
    /// Media counters, `None` until known.
    pub media: Option<MediaView>,
}

impl CallView {
    /// The JSON document of `GET /v1/call-requests/{id}` and `GET /v1/bridges/{id}`:
    /// `{"id", "status", "reason", "business", "customer", "agent", "events": [{"at",
    /// "status"}], "media": {"customer", "agent"}}`, unknown values as `null`.
    #[must_use]
    pub fn to_json(&self) -> Value {
        let events: Vec<Value> = self
            .events
            .iter()
            .map(|e| json!({ "at": format_time(e.at), "status": e.status.as_str() }))
            .collect();
        let media = self.media.as_ref().map(|m| {
            json!({
                "customer": m.customer.as_ref().map(LegMedia::to_json),
                "agent": m.agent.as_ref().map(LegMedia::to_json),
            })
        });
        json!({
            "id": self.id.as_str(),
            "status": self.status.as_str(),
            "reason": self.status.reason().map(flows::FailReason::as_str),
            "business": self.business.as_ref().map(BusinessId::as_str),
            "customer": self.customer.as_str(),
            "agent": self.agent,
            "events": events,
            "media": media,
        })
    }
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
    pub const FIELDS: [&'static str; 5] = [
        "business",
        "customer",
        "contact_time",
        "page",
        "preferred_agent",
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
                reject_unknown(p, &["url", "title"], "page.")?;
                let url = opt_str(p, "url", "page.url")?.unwrap_or_default();
                let title = opt_str(p, "title", "page.title")?.unwrap_or_default();
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
                })
            }
            Some(_) => {
                return Err(bad(
                    "page",
                    "\"page\" must be an object like {\"url\": \"…\", \"title\": \"…\"}",
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
        Ok(Self {
            business,
            customer,
            contact_time,
            page,
            preferred_agent,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_has_milliseconds_and_z() {
        let t = OffsetDateTime::parse("2026-11-29T05:13:33.12+01:00", &Rfc3339).unwrap();
        assert_eq!(format_time(t), "2026-11-29T04:13:33.120Z");
    }

    #[test]
    fn leg_media_from_stats() {
        let mut s = dp_api::LegStats {
            rx_packets: 3,
            jitter_us: 7,
            ..Default::default()
        };
        s.drops.add(dp_api::DropReason::SrcMismatch);
        let m = LegMedia::from(&s);
        assert_eq!(m.rx_packets, 3);
        assert_eq!(m.drops["src_mismatch"], 1);
        assert_eq!(m.drops.len(), dp_api::DropReason::COUNT);
        assert_eq!(m.to_json()["drops"]["tx_full"], 0);
    }
}
