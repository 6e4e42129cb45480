//! A small keep-alive HTTP/1.1 client for callbridge's API, and requests sent open-loop at a
//! fixed rate from several connections.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use hdrhistogram::Histogram;
use serde_json::Value;

/// A keep-alive HTTP/1.1 client for one server (reconnects once when the connection dropped).
#[derive(Debug)]
pub struct Http {
    addr: SocketAddr,
    conn: Option<BufReader<TcpStream>>,
}

impl Http {
    /// A client for `addr` (connects on first use).
    #[must_use]
    pub const fn new(addr: SocketAddr) -> Self {
        Self { addr, conn: None }
    }

    /// Sends one request (JSON body if any) and reads the response: `(status, body)`.
    ///
    /// # Errors
    /// Connection, I/O or framing errors.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        let fresh = self.conn.is_none();
        match self.try_request(method, path, body) {
            Ok(r) => Ok(r),
            Err(e) if !fresh && method == "GET" => {
                self.conn = None;
                self.try_request(method, path, body).context(e)
            }
            Err(e) => {
                self.conn = None;
                Err(e)
            }
        }
    }

    /// `GET path` answered 200 with JSON.
    ///
    /// # Errors
    /// Any other answer, or a transport error.
    pub fn get_json(&mut self, path: &str) -> anyhow::Result<Value> {
        let (status, body) = self.request("GET", path, None)?;
        if status != 200 {
            bail!("GET {path}: HTTP {status} {body}");
        }
        serde_json::from_str(&body).with_context(|| format!("GET {path}: not JSON: {body}"))
    }

    fn try_request(
        &mut self,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> anyhow::Result<(u16, String)> {
        if self.conn.is_none() {
            let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(Duration::from_secs(30)))?;
            self.conn = Some(BufReader::new(s));
        }
        let Some(conn) = self.conn.as_mut() else {
            bail!("no connection")
        };
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {}\r\n", self.addr);
        if let Some(b) = body {
            let _ = write!(
                req,
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                b.len()
            );
        } else {
            req.push_str("\r\n");
        }
        conn.get_mut().write_all(req.as_bytes())?;
        let mut line = String::new();
        if conn.read_line(&mut line)? == 0 {
            bail!("connection closed");
        }
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {line:?}"))?;
        let (mut len, mut chunked, mut close) = (None, false, false);
        loop {
            line.clear();
            conn.read_line(&mut line)?;
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                let (k, v) = (k.trim().to_ascii_lowercase(), v.trim());
                match k.as_str() {
                    "content-length" => len = v.parse::<usize>().ok(),
                    "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
                    "connection" => close = v.eq_ignore_ascii_case("close"),
                    _ => {}
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            loop {
                line.clear();
                conn.read_line(&mut line)?;
                let n = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)?;
                if n == 0 {
                    line.clear();
                    conn.read_line(&mut line)?;
                    break;
                }
                let at = body.len();
                body.resize(at + n, 0);
                conn.read_exact(&mut body[at..])?;
                line.clear();
                conn.read_line(&mut line)?;
            }
        } else if let Some(n) = len {
            body.resize(n, 0);
            conn.read_exact(&mut body)?;
        }
        if close {
            self.conn = None;
        }
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// What [`send_paced`] did.
#[derive(Debug)]
pub struct Sent {
    /// (request index, id) of every `202`.
    pub accepted: Vec<(usize, String)>,
    /// (request index, why) of every request not accepted.
    pub refused: Vec<(usize, String)>,
    /// Request → `202` round trips (client side), µs.
    pub accept_us: Histogram<u64>,
    /// When the last request was answered, from the start.
    pub last: Duration,
}

impl Default for Sent {
    fn default() -> Self {
        Self {
            accepted: Vec::new(),
            refused: Vec::new(),
            accept_us: Histogram::new_with_bounds(1, 120_000_000, 3).expect("histogram bounds"),
            last: Duration::ZERO,
        }
    }
}

/// Sends `n` `POST path` requests (body `body(i)`) at `rate` per second, open loop, from
/// `senders` keep-alive connections: request `i` is due `i / rate` s after the start; a sender
/// that falls behind sends at once, and after `max_time` sends nothing more (those count as
/// refused). Only a `202` with an `id` is accepted.
pub fn send_paced<F>(
    addr: SocketAddr,
    path: &str,
    n: usize,
    rate: f64,
    senders: usize,
    max_time: Duration,
    body: F,
) -> Sent
where
    F: Fn(usize) -> String + Sync,
{
    let t0 = Instant::now();
    let body = &body;
    let per: Vec<Sent> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..senders.max(1))
            .map(|j| {
                s.spawn(move || {
                    let mut http = Http::new(addr);
                    let mut out = Sent::default();
                    for i in (j..n).step_by(senders.max(1)) {
                        let due = t0 + Duration::from_secs_f64(i as f64 / rate);
                        if let Some(wait) = due.checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        if t0.elapsed() > max_time {
                            out.refused
                                .push((i, "not sent: the time bound passed".into()));
                            continue;
                        }
                        let b = body(i);
                        let sent_at = Instant::now();
                        match http.request("POST", path, Some(&b)) {
                            Ok((202, r)) => {
                                let id = serde_json::from_str::<Value>(&r)
                                    .ok()
                                    .and_then(|v| v["id"].as_str().map(str::to_owned));
                                match id {
                                    Some(id) => out.accepted.push((i, id)),
                                    None => {
                                        out.refused.push((i, format!("202 without an id: {r}")))
                                    }
                                }
                                let us = u64::try_from(sent_at.elapsed().as_micros())
                                    .unwrap_or(u64::MAX);
                                let _ = out.accept_us.record(us.max(1));
                            }
                            Ok((st, r)) => out.refused.push((i, format!("HTTP {st}: {r}"))),
                            Err(e) => out.refused.push((i, format!("{e:#}"))),
                        }
                        out.last = out.last.max(t0.elapsed());
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let mut all = Sent::default();
    for p in per {
        all.accepted.extend(p.accepted);
        all.refused.extend(p.refused);
        let _ = all.accept_us.add(&p.accept_us);
        all.last = all.last.max(p.last);
    }
    all.accepted.sort_unstable();
    all
}
