//! Changes to businesses and agents through the API (`PUT /v1/businesses/{id}`,
//! `PUT /v1/agents/{id}`): validated, stored as a JSON document in the store (applied over the
//! configuration at every start), and swapped into the live directory and the ACD at once.
//! The configuration file stays the initial source; secrets (API keys, widget key, webhook
//! secret, agent tokens) are not changed through the API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flows::hours::OpeningHours;
use flows::{AgentId, AgentProfile, BusinessId, Skill, Target};
use serde_json::{json, Map, Value};
use tracing::{info, warn};

use crate::{lock, now_ms, AgentEntry, BusinessEntry, Directory, Service, ServiceError};

/// The longest wrap-up time accepted.
const MAX_WRAP_UP_SECS: u64 = 3600;

fn refused(field: &'static str, message: impl Into<String>) -> ServiceError {
    ServiceError::Refused {
        field,
        message: message.into(),
    }
}

fn strings(v: &Value, field: &'static str) -> Result<Vec<String>, ServiceError> {
    v.as_array()
        .ok_or_else(|| refused(field, format!("\"{field}\" must be an array of strings")))?
        .iter()
        .map(|x| {
            x.as_str()
                .map(str::to_owned)
                .ok_or_else(|| refused(field, format!("\"{field}\" must be an array of strings")))
        })
        .collect()
}

fn string(v: &Value, field: &'static str) -> Result<Option<String>, ServiceError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        _ => Err(refused(
            field,
            format!("\"{field}\" must be a string or null"),
        )),
    }
}

fn reject_unknown(doc: &Map<String, Value>, allowed: &[&str]) -> Result<(), ServiceError> {
    match doc.keys().find(|k| !allowed.contains(&k.as_str())) {
        Some(k) => Err(ServiceError::Refused {
            field: "body",
            message: format!(
                "unknown field {k:?}; expected one of: {}",
                allowed.join(", ")
            ),
        }),
        None => Ok(()),
    }
}

/// The fields `PUT /v1/agents/{id}` takes.
pub const AGENT_FIELDS: [&str; 5] = ["name", "contact", "businesses", "skills", "wrap_up_secs"];
/// The fields `PUT /v1/businesses/{id}` takes.
pub const BUSINESS_FIELDS: [&str; 9] = [
    "name",
    "time_zone",
    "hours",
    "holidays",
    "allowed_origins",
    "default_country",
    "caller_id",
    "webhook_url",
    "reservation",
];

/// An agent as the API shows it (no token).
#[must_use]
pub fn agent_json(a: &AgentEntry) -> Value {
    json!({
        "id": a.id.as_str(),
        "name": a.name,
        "contact": a.contact.as_str(),
        "businesses": a.businesses.iter().map(BusinessId::as_str).collect::<Vec<_>>(),
        "skills": a.skills.iter().map(Skill::as_str).collect::<Vec<_>>(),
        "wrap_up_secs": a.wrap_up.as_secs(),
        "desktop": a.token.is_some(),
    })
}

/// A business as the API shows it (no secrets: whether they are set).
#[must_use]
pub fn business_json(b: &BusinessEntry) -> Value {
    json!({
        "id": b.id.as_str(),
        "name": b.name,
        "time_zone": b.time_zone,
        "hours": b.hours_spec,
        "holidays": b.holidays_spec,
        "allowed_origins": b.allowed_origins,
        "default_country": b.default_country,
        "caller_id": b.caller_id,
        "webhook_url": b.webhook.as_ref().map(|(u, _)| u),
        "api_keys": b.api_keys.len(),
        "widget_key": b.widget_key.is_some(),
        "retry": {"attempts": b.retry.attempts, "spacing_secs": b.retry.spacing.as_secs()},
        "reservation": b.reservation.as_str(),
    })
}

/// Applies an agent document to `dir` (creating the agent when new).
fn apply_agent(
    dir: &mut Directory,
    id: &AgentId,
    doc: &Map<String, Value>,
) -> Result<AgentEntry, ServiceError> {
    reject_unknown(doc, &AGENT_FIELDS)?;
    let existing = dir.agent(id).cloned();
    let mut a = match existing {
        Some(a) => a,
        None => {
            let contact = doc.get("contact").and_then(Value::as_str).ok_or_else(|| {
                refused(
                    "contact",
                    "a new agent needs \"contact\" (a SIP URI or an E.164 number)",
                )
            })?;
            let contact = Target::parse(contact)
                .map_err(|e| refused("contact", format!("\"contact\" is invalid: {e}")))?;
            AgentEntry::new(id.clone(), contact, Vec::new())
        }
    };
    for (k, v) in doc {
        match k.as_str() {
            "name" => {
                let n = string(v, "name")?.unwrap_or_else(|| id.as_str().to_owned());
                if n.trim().is_empty() || n.len() > 200 {
                    return Err(refused("name", "\"name\" must be 1 to 200 characters"));
                }
                a.name = n;
            }
            "contact" => {
                let c = v
                    .as_str()
                    .ok_or_else(|| refused("contact", "\"contact\" must be a string"))?;
                a.contact = Target::parse(c)
                    .map_err(|e| refused("contact", format!("\"contact\" is invalid: {e}")))?;
            }
            "businesses" => {
                let mut bs = Vec::new();
                for s in strings(v, "businesses")? {
                    let b = BusinessId::new(s.as_str())
                        .map_err(|e| refused("businesses", e.to_string()))?;
                    if dir.business(&b).is_none() {
                        return Err(refused(
                            "businesses",
                            format!("there is no business \"{b}\""),
                        ));
                    }
                    if !bs.contains(&b) {
                        bs.push(b);
                    }
                }
                a.businesses = bs;
            }
            "skills" => {
                a.skills = strings(v, "skills")?
                    .into_iter()
                    .map(|s| Skill::new(s).map_err(|e| refused("skills", e.to_string())))
                    .collect::<Result<_, _>>()?;
            }
            "wrap_up_secs" => {
                let secs = v
                    .as_u64()
                    .filter(|s| *s <= MAX_WRAP_UP_SECS)
                    .ok_or_else(|| {
                        refused(
                            "wrap_up_secs",
                            format!("\"wrap_up_secs\" must be 0 to {MAX_WRAP_UP_SECS}"),
                        )
                    })?;
                a.wrap_up = Duration::from_secs(secs);
            }
            _ => {}
        }
    }
    match dir.agents.iter_mut().find(|x| &x.id == id) {
        Some(slot) => *slot = a.clone(),
        None => dir.agents.push(a.clone()),
    }
    Ok(a)
}

/// Applies a business document to `dir` (the business must exist: businesses come from the
/// configuration).
fn apply_business(
    dir: &mut Directory,
    id: &BusinessId,
    doc: &Map<String, Value>,
) -> Result<BusinessEntry, ServiceError> {
    reject_unknown(doc, &BUSINESS_FIELDS)?;
    let mut b = dir
        .business(id)
        .cloned()
        .ok_or_else(|| ServiceError::UnknownBusiness(id.clone()))?;
    let mut hours_changed = false;
    for (k, v) in doc {
        match k.as_str() {
            "name" => {
                let n = string(v, "name")?.unwrap_or_default();
                if n.trim().is_empty() || n.len() > 200 {
                    return Err(refused("name", "\"name\" must be 1 to 200 characters"));
                }
                b.name = n;
            }
            "time_zone" => {
                b.time_zone = string(v, "time_zone")?.unwrap_or_else(|| "UTC".into());
                hours_changed = true;
            }
            "hours" => {
                b.hours_spec = strings(v, "hours")?;
                hours_changed = true;
            }
            "holidays" => {
                b.holidays_spec = strings(v, "holidays")?;
                hours_changed = true;
            }
            "allowed_origins" => {
                let origins = strings(v, "allowed_origins")?;
                for o in &origins {
                    let ok = (o.starts_with("http://") || o.starts_with("https://"))
                        && !o
                            .split_once("://")
                            .is_some_and(|(_, rest)| rest.is_empty() || rest.contains('/'));
                    if !ok {
                        return Err(refused("allowed_origins", format!("{o:?} is not an origin like https://shop.example (scheme and host, no path)")));
                    }
                }
                b.allowed_origins = origins;
            }
            "default_country" => {
                let c = string(v, "default_country")?;
                if let Some(c) = &c {
                    if c.len() != 2 || !c.bytes().all(|x| x.is_ascii_uppercase()) {
                        return Err(refused(
                            "default_country",
                            "\"default_country\" must be an ISO 3166 alpha-2 code such as US",
                        ));
                    }
                }
                b.default_country = c;
            }
            "caller_id" => b.caller_id = string(v, "caller_id")?,
            "reservation" => {
                let r = v.as_str().and_then(flows::Reservation::parse);
                b.reservation = r.ok_or_else(|| {
                    refused(
                        "reservation",
                        "\"reservation\" must be \"agent_first\" or \"customer_first\"",
                    )
                })?;
            }
            "webhook_url" => match string(v, "webhook_url")? {
                None => b.webhook = None,
                Some(url) => {
                    if !(url.starts_with("http://") || url.starts_with("https://")) {
                        return Err(refused(
                            "webhook_url",
                            "\"webhook_url\" must be an http or https URL",
                        ));
                    }
                    let Some((_, secret)) = b
                        .webhook
                        .clone()
                        .or_else(|| b.webhook_secret.clone().map(|s| (String::new(), s)))
                    else {
                        return Err(refused("webhook_url", "set webhook_secret in the configuration first: webhooks are always signed"));
                    };
                    b.webhook = Some((url, secret));
                }
            },
            _ => {}
        }
    }
    if hours_changed {
        b.hours = if b.hours_spec.is_empty() && b.holidays_spec.is_empty() && b.time_zone == "UTC" {
            None
        } else {
            Some(
                OpeningHours::parse(&b.time_zone, &b.hours_spec, &b.holidays_spec)
                    .map_err(|e| refused("hours", e.to_string()))?,
            )
        };
    }
    if let Some(slot) = dir.businesses.iter_mut().find(|x| x.id == b.id) {
        *slot = b.clone();
    }
    Ok(b)
}

impl Service {
    /// Applies the documents stored by earlier `PUT`s over the configured directory (at
    /// start); a document that no longer fits the configuration is skipped with a warning.
    pub(crate) fn apply_stored_directory(dir: &mut Directory, docs: Vec<(String, String, String)>) {
        for (kind, id, doc) in docs {
            let Ok(Value::Object(doc)) = serde_json::from_str::<Value>(&doc) else {
                warn!(
                    kind,
                    id, "stored directory document is not a JSON object; skipped"
                );
                continue;
            };
            let applied = match kind.as_str() {
                "agent" => AgentId::new(id.as_str())
                    .map_err(|e| refused("id", e.to_string()))
                    .and_then(|a| apply_agent(dir, &a, &doc).map(|_| ())),
                "business" => BusinessId::new(id.as_str())
                    .map_err(|e| refused("id", e.to_string()))
                    .and_then(|b| apply_business(dir, &b, &doc).map(|_| ())),
                _ => Ok(()),
            };
            if let Err(e) = applied {
                warn!(kind, id, "stored directory change no longer applies: {e}");
            }
        }
    }

    /// `PUT /v1/agents/{id}`: creates or changes an agent. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] naming the field; store failures.
    pub fn put_agent(
        &self,
        id: &AgentId,
        doc: &Map<String, Value>,
    ) -> Result<AgentEntry, ServiceError> {
        let i = self.inner();
        // One writer at a time: read, change, store, swap.
        let _w = lock(&i.dir_writer);
        let mut dir = (*i.dir()).clone();
        let existed = dir.agent(id).is_some();
        let a = apply_agent(&mut dir, id, doc)?;
        let stored = merge_doc(i.store.directory_docs()?, "agent", id.as_str(), doc);
        i.store
            .put_directory("agent", id.as_str(), &stored, now_ms())?;
        let profile = AgentProfile {
            businesses: a.businesses.clone(),
            skills: a.skills.clone(),
            wrap_up: a.wrap_up,
        };
        let handoffs = {
            let mut acd = lock(&i.acd);
            let now = Instant::now();
            if existed {
                acd.update_agent(id, profile, now)
            } else {
                acd.add_agent_with(id.clone(), profile, now)
                    .map(|()| Vec::new())
            }
            .map_err(|e| ServiceError::Internal(e.to_string()))?
        };
        *i.dir
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(dir);
        info!(agent = %id, created = !existed, "agent changed through the API");
        self.hand_over(handoffs);
        Ok(a)
    }

    /// `PUT /v1/businesses/{id}`: changes a business. Blocking (store I/O).
    ///
    /// # Errors
    /// [`ServiceError::Refused`] naming the field; [`ServiceError::UnknownBusiness`]; store
    /// failures.
    pub fn put_business(
        &self,
        id: &BusinessId,
        doc: &Map<String, Value>,
    ) -> Result<BusinessEntry, ServiceError> {
        let i = self.inner();
        let _w = lock(&i.dir_writer);
        let mut dir = (*i.dir()).clone();
        let b = apply_business(&mut dir, id, doc)?;
        let stored = merge_doc(i.store.directory_docs()?, "business", id.as_str(), doc);
        i.store
            .put_directory("business", id.as_str(), &stored, now_ms())?;
        *i.dir
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(dir);
        info!(business = %id, "business changed through the API");
        Ok(b)
    }
}

/// The stored document of `kind`/`id` with `doc`'s fields over it (later changes win).
fn merge_doc(
    docs: Vec<(String, String, String)>,
    kind: &str,
    id: &str,
    doc: &Map<String, Value>,
) -> String {
    let mut merged = docs
        .into_iter()
        .find(|(k, i, _)| k == kind && i == id)
        .and_then(|(_, _, d)| match serde_json::from_str::<Value>(&d) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        })
        .unwrap_or_default();
    for (k, v) in doc {
        merged.insert(k.clone(), v.clone());
    }
    Value::Object(merged).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> Directory {
        let acme = BusinessId::new("acme").unwrap();
        Directory {
            businesses: vec![BusinessEntry::new(acme.clone(), "ACME")],
            agents: vec![AgentEntry::new(
                AgentId::new("alice").unwrap(),
                Target::parse("sip:alice@127.0.0.1:5070").unwrap(),
                vec![acme],
            )],
        }
    }

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn agents_are_changed_and_created_with_checked_fields() {
        let mut d = dir();
        let alice = AgentId::new("alice").unwrap();
        let a = apply_agent(
            &mut d,
            &alice,
            &obj(json!({"name": "Alice A.", "skills": ["de"], "wrap_up_secs": 15})),
        )
        .unwrap();
        assert_eq!(
            (a.name.as_str(), a.wrap_up.as_secs(), a.skills.len()),
            ("Alice A.", 15, 1)
        );
        assert_eq!(d.agent(&alice).unwrap().name, "Alice A.");
        let carol = AgentId::new("carol").unwrap();
        let e = apply_agent(&mut d, &carol, &obj(json!({"name": "Carol"}))).unwrap_err();
        assert!(
            matches!(
                e,
                ServiceError::Refused {
                    field: "contact",
                    ..
                }
            ),
            "{e:?}"
        );
        apply_agent(
            &mut d,
            &carol,
            &obj(json!({"contact": "+4930123456", "businesses": ["acme"]})),
        )
        .unwrap();
        assert_eq!(d.agents.len(), 2);
        for (doc, field) in [
            (json!({"businesses": ["nope"]}), "businesses"),
            (json!({"wrap_up_secs": 99999}), "wrap_up_secs"),
            (json!({"contact": "bob"}), "contact"),
            (json!({"colour": "red"}), "body"),
            (json!({"skills": ["a b"]}), "skills"),
        ] {
            let e = apply_agent(&mut d, &alice, &obj(doc.clone())).unwrap_err();
            assert!(
                matches!(e, ServiceError::Refused { field: f, .. } if f == field),
                "{doc} -> {e:?}"
            );
        }
    }

    #[test]
    fn businesses_change_hours_and_origins() {
        let mut d = dir();
        let acme = BusinessId::new("acme").unwrap();
        let b = apply_business(
            &mut d,
            &acme,
            &obj(json!({"time_zone": "Europe/Berlin", "hours": ["mon-fri 09:00-17:00"], "allowed_origins": ["https://shop.example"]})),
        )
        .unwrap();
        assert!(b.hours.is_some());
        assert_eq!(b.allowed_origins, ["https://shop.example"]);
        for (doc, field) in [
            (json!({"hours": ["someday 9-5"]}), "hours"),
            (json!({"time_zone": "Mars/Base"}), "hours"),
            (
                json!({"allowed_origins": ["https://shop.example/path"]}),
                "allowed_origins",
            ),
            (json!({"default_country": "usa"}), "default_country"),
            (
                json!({"webhook_url": "https://crm.example/h"}),
                "webhook_url",
            ),
        ] {
            let e = apply_business(&mut d, &acme, &obj(doc.clone())).unwrap_err();
            assert!(
                matches!(e, ServiceError::Refused { field: f, .. } if f == field),
                "{doc} -> {e:?}"
            );
        }
        assert_eq!(business_json(&b)["reservation"], "agent_first");
        let b = apply_business(
            &mut d,
            &acme,
            &obj(json!({"reservation": "customer_first"})),
        );
        assert_eq!(b.unwrap().reservation, flows::Reservation::CustomerFirst);
        assert_eq!(
            business_json(d.business(&acme).unwrap())["reservation"],
            "customer_first"
        );
        for bad in [json!("customer-first"), json!(null), json!(1)] {
            let e = apply_business(&mut d, &acme, &obj(json!({ "reservation": bad })));
            assert!(
                matches!(
                    e,
                    Err(ServiceError::Refused {
                        field: "reservation",
                        ..
                    })
                ),
                "{e:?}"
            );
        }
        assert!(matches!(
            apply_business(&mut d, &BusinessId::new("zzz").unwrap(), &Map::new()),
            Err(ServiceError::UnknownBusiness(_))
        ));
    }

    #[test]
    fn stored_documents_merge_later_fields_over_earlier() {
        let docs = vec![(
            "agent".into(),
            "alice".into(),
            "{\"name\":\"A\",\"skills\":[\"x\"]}".into(),
        )];
        let m = merge_doc(docs, "agent", "alice", &obj(json!({"name": "B"})));
        let v: Value = serde_json::from_str(&m).unwrap();
        assert_eq!(v, json!({"name": "B", "skills": ["x"]}));
    }
}
