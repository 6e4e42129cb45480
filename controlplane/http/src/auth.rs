//! Who is calling the API, and what they may do.
//!
//! | credential | how | may |
//! |---|---|---|
//! | operator key | `Authorization: Bearer <http.operator_key>` | everything, every business |
//! | business API key | `Authorization: Bearer <business.api_keys[i]>` | its business's requests, records, sales; bridges |
//! | agent token | `Authorization: Bearer <agent.token>` (WebSocket: `?token=`) | its presence, desktop, sales of its businesses' calls |
//! | widget key | `X-Widget-Key: <business.widget_key>` from an allowed `Origin` (or this server's own pages) | create call requests for that business |
//! | nothing, from loopback | — | a business that has no `api_keys` (the lab and tests) |
//!
//! Anything else is `401` (no or unknown credential) or `403` (a valid credential for
//! something else). Keys are compared in constant time.

use std::net::SocketAddr;

use axum::http::HeaderMap;
use flows::{AgentId, BusinessId};
use service::{secret_eq, Directory};

use crate::ApiError;

/// The credential a request carried, resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    /// The operator key.
    Operator,
    /// A business's secret API key.
    Business(BusinessId),
    /// An agent's desktop token.
    Agent(AgentId),
    /// The widget key of a business, from one of its allowed origins.
    Widget(BusinessId),
    /// No credential, from a loopback address.
    Loopback,
    /// No credential, from elsewhere.
    Anonymous,
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::Unauthorized(message.into())
}

fn forbidden(field: Option<&str>, message: String) -> ApiError {
    ApiError::Forbidden {
        field: field.map(str::to_owned),
        message,
    }
}

/// The `Origin` header, if any.
#[must_use]
pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
}

/// Resolves the request's credential (bearer first, then widget key).
///
/// # Errors
/// `401` for an unknown bearer key or widget key; `403` for a widget key from an origin the
/// business does not allow.
pub fn caller(
    dir: &Directory,
    operator_key: Option<&str>,
    headers: &HeaderMap,
    peer: Option<SocketAddr>,
    token_param: Option<&str>,
) -> Result<Caller, ApiError> {
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .or(token_param);
    if let Some(key) = bearer {
        if operator_key.is_some_and(|k| secret_eq(k, key)) {
            return Ok(Caller::Operator);
        }
        if let Some(b) = dir.business_by_key(key) {
            return Ok(Caller::Business(b.id.clone()));
        }
        if let Some(a) = dir.agent_by_token(key) {
            return Ok(Caller::Agent(a.id.clone()));
        }
        return Err(unauthorized("the bearer key is not valid"));
    }
    if let Some(w) = headers.get("x-widget-key").and_then(|v| v.to_str().ok()) {
        let Some(b) = dir
            .businesses
            .iter()
            .find(|b| b.widget_key.as_deref().is_some_and(|k| secret_eq(k, w)))
        else {
            return Err(unauthorized("the widget key is not valid"));
        };
        // Its allowed origins, and this server's own pages (the demo page at `/`).
        let own = |o: &str| {
            headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .is_some_and(|h| o == format!("http://{h}") || o == format!("https://{h}"))
        };
        let allowed =
            origin(headers).is_some_and(|o| b.allowed_origins.iter().any(|a| a == o) || own(o));
        if !allowed {
            return Err(forbidden(
                Some("Origin"),
                format!(
                    "the widget of {} may only be used from its allowed origins, not {:?}",
                    b.id,
                    origin(headers).unwrap_or("(none)")
                ),
            ));
        }
        return Ok(Caller::Widget(b.id.clone()));
    }
    Ok(if peer.is_some_and(|p| p.ip().is_loopback()) {
        Caller::Loopback
    } else {
        Caller::Anonymous
    })
}

impl Caller {
    /// May act for `business` (create, read its requests and records, record sales).
    ///
    /// # Errors
    /// `401` / `403` saying why.
    pub fn for_business(&self, dir: &Directory, business: &BusinessId) -> Result<(), ApiError> {
        match self {
            Self::Operator => Ok(()),
            Self::Business(b) | Self::Widget(b) if b == business => Ok(()),
            Self::Agent(a) => match dir.agent(a) {
                Some(e) if e.businesses.contains(business) => Ok(()),
                _ => Err(forbidden(
                    Some("business"),
                    format!("agent {a} does not serve business {business}"),
                )),
            },
            Self::Business(_) | Self::Widget(_) => Err(forbidden(
                Some("business"),
                format!("this key is not valid for business {business}"),
            )),
            Self::Loopback => match dir.business(business) {
                Some(b) if b.api_keys.is_empty() => Ok(()),
                Some(_) => Err(unauthorized(
                    "this business requires an API key: send Authorization: Bearer <key>",
                )),
                // Unknown businesses are reported by the service with their field.
                None => Ok(()),
            },
            Self::Anonymous => Err(unauthorized(
                "send Authorization: Bearer <key> (or use the widget with its key from an allowed origin)",
            )),
        }
    }

    /// May act across businesses (bridges, the data-plane counters): the operator, a
    /// business key, or loopback when no business has API keys.
    ///
    /// # Errors
    /// `401` / `403`.
    pub fn server_side(&self, dir: &Directory) -> Result<(), ApiError> {
        match self {
            Self::Operator | Self::Business(_) => Ok(()),
            Self::Loopback if dir.businesses.iter().all(|b| b.api_keys.is_empty()) => Ok(()),
            Self::Agent(_) | Self::Widget(_) => Err(forbidden(
                None,
                "this credential cannot use this route".into(),
            )),
            _ => Err(unauthorized("send Authorization: Bearer <key>")),
        }
    }

    /// May act as `agent` (presence, desktop).
    ///
    /// # Errors
    /// `401` / `403`.
    pub fn as_agent(&self, dir: &Directory, agent: &AgentId) -> Result<(), ApiError> {
        match self {
            Self::Operator => Ok(()),
            Self::Agent(a) if a == agent => Ok(()),
            Self::Loopback if dir.agent(agent).is_some_and(|a| a.token.is_none()) => Ok(()),
            Self::Agent(_) | Self::Business(_) | Self::Widget(_) => Err(forbidden(
                Some("id"),
                format!("this credential is not agent {agent}'s"),
            )),
            _ => Err(unauthorized("send Authorization: Bearer <agent token>")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use service::{AgentEntry, BusinessEntry};

    fn dir() -> Directory {
        let acme = BusinessId::new("acme").unwrap();
        let mut a = BusinessEntry::new(acme.clone(), "ACME");
        a.api_keys = vec!["acme-key-0123456789".into()];
        a.widget_key = Some("wk-acme-1".into());
        a.allowed_origins = vec!["https://shop.example".into()];
        let lab = BusinessEntry::new(BusinessId::new("lab").unwrap(), "Lab");
        let mut alice = AgentEntry::new(
            AgentId::new("alice").unwrap(),
            flows::Target::parse("sip:alice@127.0.0.1:5070").unwrap(),
            vec![acme],
        );
        alice.token = Some("alice-token-0123456789".into());
        Directory {
            businesses: vec![a, lab],
            agents: vec![alice],
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    const LOOP: Option<SocketAddr> = Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
        1,
    ));
    const FAR: Option<SocketAddr> = Some(SocketAddr::new(
        std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 18, 0, 9)),
        1,
    ));

    #[test]
    fn credentials_resolve_and_scope() {
        let d = dir();
        let acme = BusinessId::new("acme").unwrap();
        let lab = BusinessId::new("lab").unwrap();
        let op = Some("operator-key-0123456789");
        let c = |h: &HeaderMap, p| caller(&d, op, h, p, None);
        let bearer = |k: &str| headers(&[("authorization", &format!("Bearer {k}"))]);

        assert_eq!(
            c(&bearer("operator-key-0123456789"), FAR).unwrap(),
            Caller::Operator
        );
        let biz = c(&bearer("acme-key-0123456789"), FAR).unwrap();
        assert_eq!(biz, Caller::Business(acme.clone()));
        assert!(biz.for_business(&d, &acme).is_ok());
        assert_eq!(
            biz.for_business(&d, &lab).unwrap_err().status().as_u16(),
            403
        );
        assert_eq!(
            c(&bearer("wrong"), LOOP).unwrap_err().status().as_u16(),
            401
        );

        // Loopback without a key: only for businesses without api_keys.
        let lb = c(&HeaderMap::new(), LOOP).unwrap();
        assert!(lb.for_business(&d, &lab).is_ok());
        assert_eq!(
            lb.for_business(&d, &acme).unwrap_err().status().as_u16(),
            401
        );
        assert_eq!(lb.server_side(&d).unwrap_err().status().as_u16(), 401);
        let anon = c(&HeaderMap::new(), FAR).unwrap();
        assert_eq!(
            anon.for_business(&d, &lab).unwrap_err().status().as_u16(),
            401
        );

        // The widget key works only from an allowed origin.
        let w = headers(&[
            ("x-widget-key", "wk-acme-1"),
            ("origin", "https://shop.example"),
        ]);
        assert_eq!(c(&w, FAR).unwrap(), Caller::Widget(acme.clone()));
        let evil = headers(&[
            ("x-widget-key", "wk-acme-1"),
            ("origin", "https://evil.example"),
        ]);
        assert_eq!(c(&evil, FAR).unwrap_err().status().as_u16(), 403);
        let none = headers(&[("x-widget-key", "wk-acme-1")]);
        assert_eq!(c(&none, FAR).unwrap_err().status().as_u16(), 403);
        // This server's own pages (the demo page) may use it too.
        let own = headers(&[
            ("x-widget-key", "wk-acme-1"),
            ("origin", "http://cb.example:8080"),
            ("host", "cb.example:8080"),
        ]);
        assert_eq!(c(&own, FAR).unwrap(), Caller::Widget(acme.clone()));

        // Agent tokens act as that agent only, also through ?token=.
        let alice = AgentId::new("alice").unwrap();
        let ag = caller(
            &d,
            op,
            &HeaderMap::new(),
            FAR,
            Some("alice-token-0123456789"),
        )
        .unwrap();
        assert_eq!(ag, Caller::Agent(alice.clone()));
        assert!(ag.as_agent(&d, &alice).is_ok());
        assert!(ag.for_business(&d, &acme).is_ok());
        assert_eq!(
            ag.for_business(&d, &lab).unwrap_err().status().as_u16(),
            403
        );
        assert_eq!(lb.as_agent(&d, &alice).unwrap_err().status().as_u16(), 401);
    }
}
