//! `callbridge ctl`: the operator's commands over the HTTP API (a running server's
//! `http.listen`), human-readable by default, the route's JSON with `--json`.
//!
//! | command | route |
//! |---|---|
//! | `status` | `GET /v1/admin/status` |
//! | `calls [list]` | `GET /v1/calls` |
//! | `calls show ID` | `GET /v1/call-requests/{id}` (a bridge: `GET /v1/bridges/{id}`) |
//! | `calls hangup ID` | `DELETE /v1/call-requests/{id}` |
//! | `agents [list]` | `GET /v1/agents` |
//! | `agents presence ID STATE` | `PUT /v1/agents/{id}/presence` |
//! | `drain` | `POST /v1/admin/drain` |
//! | `reload` | `POST /v1/admin/reload` |
//!
//! Exit codes: 0 done, 1 the API refused (its `error` is printed) or could not be reached,
//! 2 usage.

use std::fmt::Write as _;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

/// The server asked when `--url` is not given.
pub(crate) const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The environment variable holding the operator key.
pub(crate) const KEY_ENV: &str = "CALLBRIDGE_OPERATOR_KEY";
/// Longer than the server's wait for a hung-up call's legs (15 s).
const TIMEOUT: Duration = Duration::from_secs(30);

/// `callbridge ctl` options.
#[derive(Debug, Args)]
pub(crate) struct Ctl {
    /// The server's HTTP address.
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL, global = true)]
    url: String,
    /// The operator key (`http.operator_key`); default: $CALLBRIDGE_OPERATOR_KEY.
    #[arg(long, value_name = "KEY", global = true)]
    key: Option<String>,
    /// Print the route's JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    what: What,
}

#[derive(Debug, Subcommand)]
enum What {
    /// The server's state, version, live calls and queue (`GET /v1/admin/status`).
    Status,
    /// Live calls: list (default), show one, hang one up.
    Calls {
        #[command(subcommand)]
        cmd: Option<Calls>,
    },
    /// Agents: list (default) or set one's presence.
    Agents {
        #[command(subcommand)]
        cmd: Option<Agents>,
    },
    /// Stop taking new calls and exit once live calls have ended (`POST /v1/admin/drain`).
    Drain,
    /// Reload agents, businesses, prompts and limits from the configuration
    /// (`POST /v1/admin/reload`).
    Reload,
}

#[derive(Debug, Subcommand)]
enum Calls {
    /// Every live call.
    List,
    /// One call (any status).
    Show {
        /// The call's id (`c_…`).
        id: String,
    },
    /// Hang up a live call (or cancel a waiting request): status `cancelled`.
    Hangup {
        /// The call's id.
        id: String,
    },
}

#[derive(Debug, Subcommand)]
enum Agents {
    /// Every agent with its presence.
    List,
    /// Set an agent's presence.
    Presence {
        /// The agent's id.
        id: String,
        /// `available`, `away` or `offline`.
        state: String,
    },
}

/// Why a command failed.
enum Failure {
    /// The API answered with an error status.
    Api { status: u16, message: String },
    /// The request did not get an answer.
    Transport(String),
}

struct Client {
    http: reqwest::Client,
    base: String,
    key: Option<String>,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b.to_string());
        }
        let res = req.send().await.map_err(|e| {
            let mut why = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(s) = src {
                let _ = write!(why, ": {s}");
                src = s.source();
            }
            Failure::Transport(format!("cannot reach callbridge at {}: {why}", self.base))
        })?;
        let status = res.status().as_u16();
        let text = res
            .text()
            .await
            .map_err(|e| Failure::Transport(format!("reading the answer from {url}: {e}")))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if (200..300).contains(&status) {
            return Ok(value);
        }
        let message = match &value {
            Value::Object(m) => m
                .get("error")
                .and_then(Value::as_str)
                .map_or_else(|| value.to_string(), str::to_owned),
            Value::String(s) if !s.is_empty() => s.trim().to_owned(),
            _ => "no error message".to_owned(),
        };
        Err(Failure::Api { status, message })
    }
}

/// Runs `callbridge ctl …`.
pub(crate) fn run(ctl: Ctl) -> ExitCode {
    let key = ctl
        .key
        .clone()
        .or_else(|| std::env::var(KEY_ENV).ok())
        .filter(|k| !k.is_empty());
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(h) => h,
        Err(e) => {
            eprintln!("callbridge ctl: cannot make an HTTP client: {e}");
            return ExitCode::FAILURE;
        }
    };
    let client = Client {
        http,
        base: ctl.url.trim_end_matches('/').to_owned(),
        key,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("callbridge ctl: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(execute(&client, &ctl.what)) {
        Ok(v) => {
            if ctl.json {
                println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
            } else {
                print!("{}", human(&ctl.what, &v));
            }
            ExitCode::SUCCESS
        }
        Err(Failure::Api { status, message }) => {
            eprintln!("callbridge ctl: {message} (HTTP {status})");
            ExitCode::FAILURE
        }
        Err(Failure::Transport(m)) => {
            eprintln!("callbridge ctl: {m}");
            ExitCode::FAILURE
        }
    }
}

/// Path segments are ids: anything outside the id alphabet is percent-encoded.
fn seg(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn execute(c: &Client, what: &What) -> Result<Value, Failure> {
    use reqwest::Method;
    match what {
        What::Status => c.call(Method::GET, "/v1/admin/status", None).await,
        What::Drain => {
            c.call(Method::POST, "/v1/admin/drain", Some(json!({})))
                .await
        }
        What::Reload => {
            c.call(Method::POST, "/v1/admin/reload", Some(json!({})))
                .await
        }
        What::Calls {
            cmd: None | Some(Calls::List),
        } => c.call(Method::GET, "/v1/calls", None).await,
        What::Calls {
            cmd: Some(Calls::Show { id }),
        } => {
            match c
                .call(Method::GET, &format!("/v1/call-requests/{}", seg(id)), None)
                .await
            {
                // Bridges live under their own path.
                Err(Failure::Api { status: 404, .. }) => {
                    c.call(Method::GET, &format!("/v1/bridges/{}", seg(id)), None)
                        .await
                }
                other => other,
            }
        }
        What::Calls {
            cmd: Some(Calls::Hangup { id }),
        } => {
            c.call(
                Method::DELETE,
                &format!("/v1/call-requests/{}", seg(id)),
                None,
            )
            .await
        }
        What::Agents {
            cmd: None | Some(Agents::List),
        } => c.call(Method::GET, "/v1/agents", None).await,
        What::Agents {
            cmd: Some(Agents::Presence { id, state }),
        } => {
            c.call(
                Method::PUT,
                &format!("/v1/agents/{}/presence", seg(id)),
                Some(json!({ "presence": state })),
            )
            .await
        }
    }
}

/// A JSON value as a table cell.
fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => a.iter().map(cell).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

/// Columns padded to their widest cell.
fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut width: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<String>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&width).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(head.iter().map(|h| (*h).to_owned()).collect());
    for r in rows {
        line(r.clone());
    }
    out
}

/// `key: value` lines of an object's members (nested objects as JSON).
fn fields(v: &Value) -> String {
    let Some(m) = v.as_object() else {
        return format!("{}\n", cell(v));
    };
    let width = m.keys().map(String::len).max().unwrap_or(0);
    m.iter()
        .filter(|(k, _)| k.as_str() != "events")
        .map(|(k, v)| format!("{k:<width$}  {}\n", cell(v)))
        .collect()
}

fn since(call: &Value) -> String {
    call["events"]
        .get(0)
        .map_or_else(|| "-".into(), |e| cell(&e["at"]))
}

fn human(what: &What, v: &Value) -> String {
    let empty = Vec::new();
    let list = v.as_array().unwrap_or(&empty);
    match what {
        What::Calls {
            cmd: None | Some(Calls::List),
        } => {
            if list.is_empty() {
                return "no live calls\n".into();
            }
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|c| {
                    ["id", "status", "business", "customer", "agent"]
                        .iter()
                        .map(|k| cell(&c[*k]))
                        .chain([since(c)])
                        .collect()
                })
                .collect();
            table(
                &["ID", "STATUS", "BUSINESS", "CUSTOMER", "AGENT", "SINCE"],
                &rows,
            )
        }
        What::Calls {
            cmd: Some(Calls::Show { .. }),
        } => {
            let mut out = fields(v);
            for e in v["events"].as_array().unwrap_or(&empty) {
                let reason = e["reason"]
                    .as_str()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default();
                let _ = writeln!(out, "  {}  {}{reason}", cell(&e["at"]), cell(&e["status"]));
            }
            out
        }
        What::Calls {
            cmd: Some(Calls::Hangup { id }),
        } => {
            format!("{id}: {}\n", cell(&v["status"]))
        }
        What::Agents {
            cmd: None | Some(Agents::List),
        } => {
            let rows: Vec<Vec<String>> = list
                .iter()
                .map(|a| {
                    ["id", "name", "presence", "businesses", "contact"]
                        .iter()
                        .map(|k| cell(&a[*k]))
                        .collect()
                })
                .collect();
            table(&["ID", "NAME", "PRESENCE", "BUSINESSES", "CONTACT"], &rows)
        }
        What::Agents {
            cmd: Some(Agents::Presence { .. }),
        } => {
            format!("{}: {}\n", cell(&v["agent"]), cell(&v["presence"]))
        }
        What::Status | What::Drain | What::Reload => fields(v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_ids_are_escaped() {
        let t = table(&["ID", "STATUS"], &[vec!["c_1".into(), "bridged".into()]]);
        assert_eq!(t, "ID   STATUS\nc_1  bridged\n");
        assert_eq!(seg("c_a/b ?"), "c_a%2Fb%20%3F");
        let calls = What::Calls { cmd: None };
        assert_eq!(human(&calls, &json!([])), "no live calls\n");
        let h = human(
            &calls,
            &json!([{"id": "c_1", "status": "bridged", "business": "acme", "customer": "+1555", "agent": null, "events": [{"at": "T", "status": "queued"}]}]),
        );
        assert!(
            h.contains("c_1") && h.contains("bridged") && h.contains(" T"),
            "{h}"
        );
    }
}
