//! The OpenAPI 3.1 document served at `GET /openapi.json`.
//!
//! Every route is registered through `utoipa_axum::routes!` in [`crate::routes::router`]: the
//! handler's `#[utoipa::path]` annotation and its axum route come from the same macro call, so a
//! route cannot exist without its description. The schemas below describe the JSON the
//! handlers build (they are documentation only: the handlers write `serde_json::Value`s).
#![allow(dead_code)] // the schema types are read by utoipa's derive, never built

use serde_json::Value;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

/// Tag of the click-to-call API.
pub(crate) const CALLS: &str = "calls";
/// Tag of agents, presence and the desktop.
pub(crate) const AGENTS: &str = "agents";
/// Tag of businesses and their settings.
pub(crate) const BUSINESSES: &str = "businesses";
/// Tag of the operator's routes.
pub(crate) const OPERATOR: &str = "operator";
/// Tag of the web pages and scripts.
pub(crate) const PAGES: &str = "pages";

/// Every error: a human sentence and the field (or header) it is about.
#[derive(ToSchema)]
#[schema(example = json!({"error": "there is no call request with id \"c_x\"", "field": "id"}))]
pub(crate) struct Error {
    /// What is wrong and how to fix it.
    error: String,
    /// The offending field, header or parameter; `null` when the request as a whole is.
    #[schema(required = true)]
    field: Option<String>,
}

/// `202` to a new call request or bridge (`Location` names it).
#[derive(ToSchema)]
pub(crate) struct Accepted {
    /// The request's id (`c_…`).
    id: String,
    /// Its first status: `queued`, `scheduled` (call requests) or `calling_customer`
    /// (bridges).
    status: String,
}

/// One status change of a call.
#[derive(ToSchema)]
pub(crate) struct StatusEvent {
    /// RFC 3339 time.
    at: String,
    /// `queued`, `scheduled`, `calling_customer`, `announcing`, `calling_agent`, `bridged`,
    /// `completed`, `failed`, `cancelled` (or `interrupted` after a restart).
    status: String,
    /// The failure reason, for `failed`.
    reason: Option<String>,
}

/// A call (call request, inbound call or bridge) as it is now.
#[derive(ToSchema)]
pub(crate) struct Call {
    /// `c_…`.
    id: String,
    /// The current status (see [`StatusEvent`]).
    status: String,
    /// The failure reason (`customer_busy`, `customer_no_answer`, `no_agent`, …).
    reason: Option<String>,
    /// The business (`null` for bridges).
    business: Option<String>,
    /// E.164 number or SIP URI of the customer.
    customer: String,
    /// The agent serving it, once known.
    agent: Option<String>,
    /// Every status change, oldest first.
    events: Vec<StatusEvent>,
    /// Media counters `{"customer": {…}, "agent": {…}}` (live while the call runs).
    media: Option<Value>,
    /// The page the visitor was on: `{"url", "title", "referrer"}`.
    page: Option<Value>,
    /// Requested contact time (RFC 3339).
    contact_time: Option<String>,
    /// 1-based position in the queue while waiting for an agent.
    queue_position: Option<u64>,
    /// Estimated wait for an agent, seconds.
    estimated_wait_s: Option<u64>,
    /// Customer attempts made.
    attempts: u32,
    /// The skill asked for.
    skill: Option<String>,
    /// The sale recorded after the call.
    sale: Option<Value>,
}

/// A record (`GET /v1/records`): the call plus every phase's time and duration.
#[derive(ToSchema)]
pub(crate) struct Record {
    /// `c_…`.
    id: String,
    /// `call_request`, `bridge` or `inbound`.
    kind: String,
    /// The final (or current) status.
    status: String,
    /// RFC 3339 times of each phase.
    created: String,
    /// When the customer was dialled.
    dialled: Option<String>,
    /// When the customer answered.
    answered: Option<String>,
    /// When customer and agent were bridged.
    bridged: Option<String>,
    /// When the call ended.
    ended: Option<String>,
    /// Customer ring time, seconds.
    ring_s: Option<f64>,
    /// Customer's wait for an agent, seconds.
    wait_s: Option<f64>,
    /// Talk time, seconds.
    talk_s: Option<f64>,
}

/// `POST /v1/call-requests`.
#[derive(ToSchema)]
pub(crate) struct CallRequestBody {
    /// The business's id.
    business: String,
    /// E.164 number (`+4930…`) or SIP URI of the visitor.
    customer: String,
    /// Call no earlier than this (RFC 3339); default now (within opening hours).
    contact_time: Option<String>,
    /// The page the visitor is on: `{"url", "title", "referrer"}`.
    page: Option<Value>,
    /// An agent id the visitor asked for.
    preferred_agent: Option<String>,
    /// A skill the agent must have.
    skill: Option<String>,
}

/// `POST /v1/bridges`.
#[derive(ToSchema)]
pub(crate) struct BridgeBody {
    /// E.164 number or SIP URI, called first.
    customer: String,
    /// A configured agent's id, a SIP URI or an E.164 number, called second.
    agent: String,
}

/// `POST /v1/call-requests/{id}/sale`.
#[derive(ToSchema)]
pub(crate) struct SaleBody {
    /// `sale`, `no_sale`, `follow_up` or `not_interested`.
    outcome: String,
    /// Amount as a decimal string, with `currency`.
    amount: Option<String>,
    /// ISO 4217 code.
    currency: Option<String>,
    /// What was sold.
    product: Option<String>,
    /// Free text.
    notes: Option<String>,
    /// Who recorded it (default: the agent whose token is used).
    agent: Option<String>,
}

/// `PUT /v1/agents/{id}/presence`.
#[derive(ToSchema)]
pub(crate) struct PresenceBody {
    /// `available`, `away` or `offline`.
    presence: String,
}

/// An agent's presence.
#[derive(ToSchema)]
pub(crate) struct Presence {
    /// The agent's id.
    agent: String,
    /// `available`, `away`, `offline`, `on_call`, `wrap_up`.
    presence: Option<String>,
}

/// An agent.
#[derive(ToSchema)]
pub(crate) struct Agent {
    /// Its id.
    id: String,
    /// Display name.
    name: Option<String>,
    /// Its SIP contact (or `registered`).
    contact: String,
    /// The businesses it serves.
    businesses: Vec<String>,
    /// Its skills.
    skills: Vec<String>,
    /// Its presence now.
    presence: Option<String>,
    /// Registered devices (agents with `contact = "registered"`).
    devices: Option<Value>,
}

/// A business in the list.
#[derive(ToSchema)]
pub(crate) struct BusinessSummary {
    /// Its id.
    id: String,
    /// Its display name.
    name: String,
}

/// `{"status": "ok"}`.
#[derive(ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    status: String,
}

/// A JSON object (its members are listed in the operation's description).
#[derive(ToSchema)]
#[schema(value_type = Object)]
pub(crate) struct Object(Value);

/// Bearer and header credentials (see `auth.rs`).
struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        let bearer = |what: &str| {
            let mut h = Http::new(HttpAuthScheme::Bearer);
            h.description = Some(what.into());
            SecurityScheme::Http(h)
        };
        c.add_security_scheme(
            "operator_key",
            bearer("`http.operator_key`: everything, every business."),
        );
        c.add_security_scheme(
            "business_key",
            bearer(
                "One of `business.api_keys`: that business's requests, records, sales; bridges.",
            ),
        );
        c.add_security_scheme(
            "agent_token",
            bearer("`agent.token`: its presence, desktop and sales (WebSocket: `?token=`)."),
        );
        c.add_security_scheme(
            "widget_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Widget-Key",
                "`business.widget_key`, from one of the business's `allowed_origins` (or this server's own pages): creates call requests for it.",
            ))),
        );
    }
}

/// The document's fixed parts; the paths come from the router.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "callbridge",
        description = "Click-to-call: call requests, bridges, records, agents and the operator's routes. \
Errors are always `{\"error\": \"…\", \"field\": … | null}` (schema `Error`). Without any key, \
loopback clients may use businesses that have no `api_keys` (the lab).",
        license(name = "MIT OR Apache-2.0"),
    ),
    components(schemas(Error)),
    modifiers(&Security),
    tags(
        (name = "calls", description = "Call requests, bridges, live calls and records"),
        (name = "agents", description = "Agents, presence and the desktop"),
        (name = "businesses", description = "Businesses and their widget"),
        (name = "operator", description = "Operator figures"),
        (name = "pages", description = "Web pages and scripts"),
    )
)]
pub(crate) struct ApiDoc;

#[cfg(test)]
mod tests;
