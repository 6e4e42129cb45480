//! `PUT /v1/admin/sip-trace`: SIP message logging switched on at run time for one call or one
//! number ([`sip::trace`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::Json;
use serde_json::{json, Map, Value};
use sip::trace::Rule;

use crate::desktop::who;
use crate::{ApiError, AppJson, AppState};

/// `PUT /v1/admin/sip-trace` with `{"call": "c_…"}`, `{"number": "+4930…"}` or `{"off": true}`:
/// adds a rule (rules add up) or removes them all. Answers `200 {"tracing": [{"call": …} |
/// {"number": …}, …]}`, the rules now in force. While a rule matches a call, every SIP message
/// of its dialogs is logged in full at INFO in the call's span.
///
/// Errors: 400 (`field` names the key) for a body that is not exactly one of the three
/// shapes, an empty call id or a number that is not `+` and 3 to 20 digits; 401/403 as
/// `GET /v1/stats` (the operator key, or a loopback client in a configuration without keys).
#[utoipa::path(
    put,
    path = "/v1/admin/sip-trace",
    tag = crate::openapi::OPERATOR,
    security(("operator_key" = [])),
    request_body(content = crate::openapi::Object, description = "Exactly one of `{\"call\": \"c_…\"}`, `{\"number\": \"+4930…\"}` (a `+` and 3 to 20 digits) or `{\"off\": true}`."),
    responses(
        (status = 200, description = "`{\"tracing\": [{\"call\": …} | {\"number\": …}, …]}`: the rules now in force; the SIP messages of matching calls' dialogs are logged in full at INFO in the call's span.", body = crate::openapi::Object),
        (status = 400, description = "Not exactly one of the three shapes, an empty call id, or a malformed number (`field` names the key).", body = crate::openapi::Error),
        (status = 401, description = "No credential, or an unknown one.", body = crate::openapi::Error),
        (status = 403, description = "A valid credential for something else.", body = crate::openapi::Error),
    )
)]
pub(crate) async fn put_sip_trace(
    State(st): State<AppState>,
    peer: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
    AppJson(body): AppJson<Map<String, Value>>,
) -> Result<Json<Value>, ApiError> {
    who(&st, &headers, peer.map(|c| c.0), None)?.server_side(&st.calls.directory())?;
    match parse(&body)? {
        Some(rule) => {
            tracing::info!(?rule, "SIP trace on");
            let call = match &rule {
                Rule::Call(id) => flows::CallId::new(id.clone()).ok(),
                Rule::Number(_) => None,
            };
            sip::trace::add(rule);
            // A live call hands over the dialogs it already began.
            if let Some(id) = call {
                st.calls.sip_trace(&id);
            }
        }
        None => {
            tracing::info!("SIP trace off");
            sip::trace::clear();
        }
    }
    Ok(Json(json!({ "tracing": rules_json() })))
}

/// The rules in force as JSON objects.
fn rules_json() -> Vec<Value> {
    sip::trace::rules()
        .into_iter()
        .map(|r| match r {
            Rule::Call(c) => json!({ "call": c }),
            Rule::Number(n) => json!({ "number": n }),
        })
        .collect()
}

fn bad(field: &str, message: &str) -> ApiError {
    ApiError::BadRequest {
        field: Some(field.into()),
        message: message.into(),
    }
}

/// `Some(rule)` to add, `None` for off.
fn parse(body: &Map<String, Value>) -> Result<Option<Rule>, ApiError> {
    const SHAPE: &str =
        "give exactly one of {\"call\": \"c_…\"}, {\"number\": \"+4930…\"} or {\"off\": true}";
    if body.len() != 1 {
        let field = body.keys().nth(1).map_or("call", String::as_str);
        return Err(bad(field, SHAPE));
    }
    let (k, v) = body.iter().next().ok_or_else(|| bad("call", SHAPE))?;
    match k.as_str() {
        "off" => match v {
            Value::Bool(true) => Ok(None),
            _ => Err(bad("off", "off must be true")),
        },
        "call" => match v.as_str() {
            Some(id) if !id.is_empty() && id.len() <= 64 && id.is_ascii() => {
                Ok(Some(Rule::Call(id.into())))
            }
            _ => Err(bad("call", "call must be a call id such as \"c_…\"")),
        },
        "number" => match v.as_str() {
            Some(n)
                if n.starts_with('+')
                    && (3..=20).contains(&(n.len() - 1))
                    && n[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                Ok(Some(Rule::Number(n.into())))
            }
            _ => Err(bad(
                "number",
                "number must be an E.164 number: + and 3 to 20 digits",
            )),
        },
        other => Err(bad(other, SHAPE)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn bodies_parse_or_name_their_field() {
        assert_eq!(
            parse(&body(json!({"call": "c_1"}))).unwrap(),
            Some(Rule::Call("c_1".into()))
        );
        assert_eq!(
            parse(&body(json!({"number": "+4930123"}))).unwrap(),
            Some(Rule::Number("+4930123".into()))
        );
        assert_eq!(parse(&body(json!({"off": true}))).unwrap(), None);
        for (b, field) in [
            (json!({"number": "4930"}), "number"),
            (json!({"number": "+49a0"}), "number"),
            (json!({"call": ""}), "call"),
            (json!({"off": false}), "off"),
            (json!({"who": 1}), "who"),
            (json!({}), "call"),
        ] {
            let e = parse(&body(b.clone())).unwrap_err();
            assert_eq!(e.field(), Some(field), "{b}");
        }
    }
}
