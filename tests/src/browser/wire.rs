//! The WebDriver wire: one HTTP/1.1 request per command on its own `TcpStream`, the answer's
//! `value` or a [`WebDriverError`].

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::Value;

use super::COMMAND_TIMEOUT;
use crate::http::{parse_response, Response};

/// A failed WebDriver command.
#[derive(Debug, Clone)]
pub struct WebDriverError {
    /// `METHOD /path` of the command.
    pub command: String,
    /// The HTTP status (0 when there was no response at all).
    pub status: u16,
    /// The W3C error code (`no such element`, ...) or a transport error kind.
    pub error: String,
    /// The message.
    pub message: String,
}

impl std::fmt::Display for WebDriverError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebDriver {} failed: HTTP {} {}: {}",
            self.command, self.status, self.error, self.message
        )
    }
}

impl std::error::Error for WebDriverError {}

/// Sends one WebDriver command to `addr` and returns the response's `value`.
///
/// # Errors
/// Transport errors (status 0), non-2xx answers (with the W3C `error` and `message`), and
/// answers that are not JSON.
pub fn command(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, WebDriverError> {
    let cmd = format!("{method} {path}");
    let transport = |error: &str, message: String| WebDriverError {
        command: cmd.clone(),
        status: 0,
        error: error.into(),
        message,
    };
    let body = body.map(Value::to_string);
    let response = send(addr, method, path, body.as_deref(), COMMAND_TIMEOUT)
        .map_err(|e| transport("transport", e))?;
    let v: Value = serde_json::from_str(&response.body).map_err(|e| {
        transport(
            "not json",
            format!("HTTP {} body {:?}: {e}", response.status, response.body),
        )
    })?;
    if (200..300).contains(&response.status) {
        return Ok(v.get("value").cloned().unwrap_or(Value::Null));
    }
    Err(WebDriverError {
        command: cmd.clone(),
        status: response.status,
        error: v["value"]["error"]
            .as_str()
            .unwrap_or("unknown error")
            .to_string(),
        message: v["value"]["message"]
            .as_str()
            .map_or_else(|| v.to_string(), str::to_string),
    })
}

/// One HTTP/1.1 request; reads until the `Content-Length` body is complete or the peer closes.
fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    timeout: Duration,
) -> Result<Response, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    let body = body.unwrap_or_default();
    // chromedriver only accepts Host headers naming a local address.
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(req.as_bytes())
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::with_capacity(4096);
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = stream.read(&mut buf).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if complete(&raw) {
            break;
        }
    }
    parse_response(&raw)
}

/// True when `raw` holds the headers and a `Content-Length` body in full.
pub(super) fn complete(raw: &[u8]) -> bool {
    let Some(split) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    head.lines()
        .filter_map(|l| l.strip_prefix("content-length:"))
        .find_map(|v| v.trim().parse::<usize>().ok())
        .is_some_and(|len| raw.len() >= split + 4 + len)
}
