//! SIP messages: parsing datagrams, building requests/responses, header accessors.
//!
//! This is the only module that touches `rsip` (rsipstack's re-export), so swapping the parser
//! later is local. What is used from rsip and what is done here by hand:
//!
//! * rsip's `parse_uri` validates Request-URIs and resolves URIs to socket addresses.
//! * Framing, the start line and header lines are parsed here, because rsip's message parser
//!   rejects extension methods (we must answer those with 405, not drop them), treats an
//!   unparseable Content-Length as 0 and does not let us enforce Content-Length framing.
//!
//! Contract: [`parse`] never panics; every accessor on a parsed message returns a value or an
//! error, never panics. A parsed message always has Via, From, To, Call-ID and a valid CSeq
//! (whose method matches a request's method), so [`HasHeaders::call_id`] etc. cannot fail on it.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rsipstack::rsip;

use crate::error::SipError;

/// A SIP method. Extension methods are kept as [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE
    Invite,
    /// ACK
    Ack,
    /// BYE
    Bye,
    /// CANCEL
    Cancel,
    /// OPTIONS
    Options,
    /// Any other token (REGISTER, INFO, extension methods …), upper-cased as received.
    Other(String),
}

impl Method {
    /// Parses a method token (case-sensitive per RFC 3261, but we accept any case).
    pub fn parse(s: &str) -> Self {
        match s {
            m if m.eq_ignore_ascii_case("INVITE") => Self::Invite,
            m if m.eq_ignore_ascii_case("ACK") => Self::Ack,
            m if m.eq_ignore_ascii_case("BYE") => Self::Bye,
            m if m.eq_ignore_ascii_case("CANCEL") => Self::Cancel,
            m if m.eq_ignore_ascii_case("OPTIONS") => Self::Options,
            m => Self::Other(m.to_string()),
        }
    }

    /// The wire token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Invite => "INVITE",
            Self::Ack => "ACK",
            Self::Bye => "BYE",
            Self::Cancel => "CANCEL",
            Self::Options => "OPTIONS",
            Self::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Header lines in wire order. Compact names are expanded on parse; lookups ignore case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    list: Vec<(String, String)>,
}

impl Headers {
    /// The value of the first header called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.list
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The values of every header line called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.list
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every comma-separated element of every `name` header line, in order
    /// (for Via, Route, Record-Route, Contact).
    pub fn get_list<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.get_all(name).flat_map(split_list)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.list.push((name.into(), value.into()));
    }

    /// Replaces the first `name` header (or appends one).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        match self
            .list
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(slot) => slot.1 = value.into(),
            None => self.push(name, value),
        }
    }

    /// Removes every `name` header.
    pub fn remove(&mut self, name: &str) {
        self.list.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    /// Iterates `(name, value)` pairs in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.list.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI as text.
    pub uri: String,
    /// Headers (Content-Length is computed on encode and not stored).
    pub headers: Headers,
    /// Body bytes, exactly Content-Length of them.
    pub body: Vec<u8>,
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Status code, 100..=699.
    pub status: u16,
    /// Reason phrase as received (may be empty).
    pub reason: String,
    /// Headers (Content-Length is computed on encode and not stored).
    pub headers: Headers,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// A parsed datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

/// The top Via of a message, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport token, e.g. `UDP`.
    pub transport: String,
    /// sent-by host (IPv6 without brackets).
    pub host: String,
    /// sent-by port, if given.
    pub port: Option<u16>,
    /// Parameters in order; valueless ones have `None`.
    pub params: Vec<(String, Option<String>)>,
}

impl Via {
    /// Parses one Via element (`SIP/2.0/UDP host:port;params`), tolerating LWS around `/`.
    ///
    /// # Errors
    /// [`SipError::InvalidHeader`] if the element is not a Via.
    pub fn parse(value: &str) -> Result<Self, SipError> {
        let bad = || SipError::InvalidHeader {
            name: "Via",
            value: value.to_string(),
        };
        let (head, params) = match value.find(';') {
            Some(i) => (&value[..i], &value[i + 1..]),
            None => (value, ""),
        };
        let slash = head.rfind('/').ok_or_else(bad)?;
        let proto: String = head[..slash]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if !proto.eq_ignore_ascii_case("SIP/2.0") {
            return Err(bad());
        }
        let mut rest = head[slash + 1..].split_whitespace();
        let transport = rest.next().ok_or_else(bad)?.to_ascii_uppercase();
        let sent_by: String = rest.collect();
        let (host, port) = split_host_port(&sent_by).ok_or_else(bad)?;
        Ok(Self {
            transport,
            host,
            port,
            params: parse_params(params),
        })
    }

    /// A parameter's value (`Some(None)` for a valueless parameter).
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// The branch parameter.
    pub fn branch(&self) -> Option<&str> {
        self.param("branch").flatten()
    }

    /// `host:port` as written (for transaction matching).
    pub fn sent_by(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }
}

impl std::fmt::Display for Via {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        for (n, v) in &self.params {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// A name-addr or addr-spec header value (From, To, Contact, Route, Record-Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name without quotes.
    pub display: Option<String>,
    /// The URI inside `<>` (or the bare addr-spec).
    pub uri: String,
    /// Header parameters after the URI.
    pub params: Vec<(String, Option<String>)>,
}

impl NameAddr {
    /// Parses a single name-addr / addr-spec.
    ///
    /// # Errors
    /// [`SipError::InvalidHeader`] (named `name`) when there is no URI.
    pub fn parse(name: &'static str, value: &str) -> Result<Self, SipError> {
        let bad = || SipError::InvalidHeader {
            name,
            value: value.to_string(),
        };
        let v = value.trim();
        // Find a '<' outside quotes.
        let mut in_quotes = false;
        let mut escaped = false;
        let mut lt = None;
        for (i, c) in v.char_indices() {
            if escaped {
                escaped = false;
                continue;
            }
            match c {
                '\\' if in_quotes => escaped = true,
                '"' => in_quotes = !in_quotes,
                '<' if !in_quotes => {
                    lt = Some(i);
                    break;
                }
                _ => {}
            }
        }
        let (display, uri, params) = if let Some(lt) = lt {
            let gt = v[lt..].find('>').map(|g| g + lt).ok_or_else(bad)?;
            let display = v[..lt].trim();
            let display = display
                .strip_prefix('"')
                .and_then(|d| d.strip_suffix('"'))
                .unwrap_or(display);
            let display =
                (!display.is_empty()).then(|| display.replace("\\\"", "\"").replace("\\\\", "\\"));
            let rest = v[gt + 1..].trim_start();
            let params = rest.strip_prefix(';').unwrap_or("");
            (
                display,
                v[lt + 1..gt].trim().to_string(),
                parse_params(params),
            )
        } else {
            match v.find(';') {
                Some(i) => (None, v[..i].trim().to_string(), parse_params(&v[i + 1..])),
                None => (None, v.to_string(), Vec::new()),
            }
        };
        if uri.is_empty() || !uri.contains(':') {
            return Err(bad());
        }
        Ok(Self {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("tag"))
            .and_then(|(_, v)| v.as_deref())
    }
}

/// Accessors shared by requests and responses.
pub trait HasHeaders {
    /// The headers.
    fn headers(&self) -> &Headers;
    /// The body.
    fn body(&self) -> &[u8];

    /// Call-ID.
    fn call_id(&self) -> &str {
        self.headers().get("Call-ID").unwrap_or("")
    }

    /// CSeq number and method.
    fn cseq(&self) -> (u32, Method) {
        self.headers()
            .get("CSeq")
            .and_then(parse_cseq)
            .unwrap_or((0, Method::Other(String::new())))
    }

    /// The top Via, parsed.
    fn top_via(&self) -> Option<Via> {
        self.headers()
            .get_list("Via")
            .next()
            .and_then(|v| Via::parse(v).ok())
    }

    /// The top Via's branch.
    fn branch(&self) -> Option<String> {
        self.top_via().and_then(|v| v.branch().map(str::to_string))
    }

    /// The From tag.
    #[allow(clippy::wrong_self_convention)]
    fn from_tag(&self) -> Option<String> {
        let v = self.headers().get("From")?;
        NameAddr::parse("From", v).ok()?.tag().map(str::to_string)
    }

    /// The To tag.
    fn to_tag(&self) -> Option<String> {
        let v = self.headers().get("To")?;
        NameAddr::parse("To", v).ok()?.tag().map(str::to_string)
    }

    /// The first Contact URI.
    fn contact_uri(&self) -> Option<String> {
        let v = self.headers().get_list("Contact").next()?;
        NameAddr::parse("Contact", v).ok().map(|n| n.uri)
    }

    /// The body as UTF-8 text, if non-empty and valid.
    fn body_text(&self) -> Option<String> {
        let b = self.body();
        if b.is_empty() {
            return None;
        }
        std::str::from_utf8(b).ok().map(str::to_string)
    }
}

impl HasHeaders for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl HasHeaders for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl Request {
    /// A request with no headers yet.
    pub fn new(method: Method, uri: impl Into<String>) -> Self {
        Self {
            method,
            uri: uri.into(),
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// Wire bytes; Content-Length is computed from the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        encode_tail(&mut s, &self.headers, &self.body)
    }

    /// Records the source address in the top Via (RFC 3261 18.2.1 `received`, RFC 3581 `rport`).
    pub fn stamp_received(&mut self, src: SocketAddr) {
        let Some((idx, first)) = self
            .headers
            .list
            .iter()
            .enumerate()
            .find(|(_, (n, _))| n.eq_ignore_ascii_case("Via"))
            .map(|(i, (_, v))| (i, v.clone()))
        else {
            return;
        };
        let elems = split_list(&first);
        let Some(top) = elems.first() else { return };
        let Ok(mut via) = Via::parse(top) else { return };
        if via.host.parse::<IpAddr>().ok() != Some(src.ip()) {
            via.params
                .retain(|(n, _)| !n.eq_ignore_ascii_case("received"));
            via.params
                .push(("received".into(), Some(src.ip().to_string())));
        }
        for p in via.params.iter_mut() {
            if p.0.eq_ignore_ascii_case("rport") {
                p.1 = Some(src.port().to_string());
            }
        }
        let mut new = via.to_string();
        for rest in &elems[1..] {
            new.push_str(", ");
            new.push_str(rest);
        }
        self.headers.list[idx].1 = new;
    }

    /// Where responses go (RFC 3261 18.2.2 for unreliable unicast, RFC 3581): the `received`
    /// address (or the sent-by IP, or `src` when sent-by is a name) and the `rport` value
    /// (or the sent-by port, or 5060).
    pub fn response_destination(&self, src: SocketAddr) -> SocketAddr {
        let Some(via) = self.top_via() else {
            return src;
        };
        let ip = via
            .param("received")
            .flatten()
            .and_then(|r| r.parse::<IpAddr>().ok())
            .or_else(|| via.host.parse::<IpAddr>().ok())
            .unwrap_or(src.ip());
        let port = via
            .param("rport")
            .flatten()
            .and_then(|p| p.parse::<u16>().ok())
            .or(via.port)
            .unwrap_or(5060);
        SocketAddr::new(ip, port)
    }
}

impl Response {
    /// A response to `req` (RFC 3261 8.2.6.2): Via lines, From, To (tag added when `to_tag` is
    /// given and To has none), Call-ID and CSeq copied; Record-Route copied for 1xx/2xx to INVITE.
    pub fn to_request(req: &Request, status: u16, to_tag: Option<&str>) -> Self {
        let mut headers = Headers::default();
        for v in req.headers.get_all("Via") {
            headers.push("Via", v);
        }
        if let Some(v) = req.headers.get("From") {
            headers.push("From", v);
        }
        if let Some(v) = req.headers.get("To") {
            let has_tag = NameAddr::parse("To", v)
                .map(|n| n.tag().is_some())
                .unwrap_or(true);
            match to_tag {
                Some(t) if !has_tag && status > 100 => headers.push("To", format!("{v};tag={t}")),
                _ => headers.push("To", v),
            }
        }
        headers.push("Call-ID", req.call_id());
        if let Some(v) = req.headers.get("CSeq") {
            headers.push("CSeq", v);
        }
        if req.method == Method::Invite && (101..300).contains(&status) {
            for v in req.headers.get_all("Record-Route") {
                headers.push("Record-Route", v);
            }
        }
        Self {
            status,
            reason: reason_phrase(status).to_string(),
            headers,
            body: Vec::new(),
        }
    }

    /// Wire bytes; Content-Length is computed from the body.
    pub fn encode(&self) -> Vec<u8> {
        let mut s = format!("SIP/2.0 {} {}\r\n", self.status, self.reason);
        encode_tail(&mut s, &self.headers, &self.body)
    }
}

fn encode_tail(s: &mut String, headers: &Headers, body: &[u8]) -> Vec<u8> {
    for (n, v) in headers.iter() {
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let _ = write!(s, "{n}: {v}\r\n");
    }
    let _ = write!(s, "Content-Length: {}\r\n\r\n", body.len());
    let mut out = s.clone().into_bytes();
    out.extend_from_slice(body);
    out
}

/// The standard reason phrase for the status codes we send.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        600 => "Busy Everywhere",
        603 => "Decline",
        _ => match status / 100 {
            1 => "Progress",
            2 => "OK",
            3 => "Redirect",
            4 => "Client Error",
            5 => "Server Error",
            _ => "Global Failure",
        },
    }
}

/// A new RFC 3261 branch (`z9hG4bK` magic cookie + 64 random bits).
pub fn new_branch() -> String {
    format!("z9hG4bK{:016x}", rand::random::<u64>())
}

/// A new From/To tag.
pub fn new_tag() -> String {
    format!("{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// A new Call-ID at `host`.
pub fn new_call_id(host: IpAddr) -> String {
    format!("{:032x}@{host}", rand::random::<u128>())
}

/// Our Via value for `local` with `branch` and an empty `rport` (RFC 3581).
pub fn via_value(local: SocketAddr, branch: &str) -> String {
    format!("SIP/2.0/UDP {local};branch={branch};rport")
}

/// Resolves a SIP URI (`sip:user@host:port;params`, with or without `<>`) to a socket address.
/// Only IP literals and `localhost` are accepted: this crate does no DNS.
///
/// # Errors
/// [`SipError::InvalidUri`].
pub fn uri_addr(uri: &str) -> Result<SocketAddr, SipError> {
    let bad = || SipError::InvalidUri(uri.to_string());
    let parsed = rsip::parse_uri(uri).map_err(|_| bad())?;
    match parsed.scheme {
        Some(rsip::Scheme::Sip) | None => {}
        _ => return Err(bad()),
    }
    let ip = match &parsed.host_with_port.host {
        rsip::Host::IpAddr(ip) => *ip,
        rsip::Host::Domain(d) if d.0.eq_ignore_ascii_case("localhost") => {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        }
        rsip::Host::Domain(_) => return Err(bad()),
    };
    let port = parsed
        .host_with_port
        .port
        .map(|p| p.value())
        .unwrap_or(5060);
    Ok(SocketAddr::new(ip, port))
}

/// Whether a URI has the `lr` parameter (loose routing).
pub fn uri_has_lr(uri: &str) -> bool {
    let no_headers = uri.split('?').next().unwrap_or("");
    no_headers.split(';').skip(1).any(|p| {
        p.trim().eq_ignore_ascii_case("lr") || p.trim().to_ascii_lowercase().starts_with("lr=")
    })
}

/// Parses a datagram into a request or response.
///
/// Enforces Content-Length framing (RFC 3261 18.3: a shorter body is an error, extra bytes are
/// discarded; without Content-Length the rest of the datagram is the body), expands compact
/// header names, unfolds continuation lines, and checks the mandatory headers.
///
/// # Errors
/// [`SipError::Malformed`], [`SipError::Truncated`], [`SipError::MissingHeader`],
/// [`SipError::InvalidHeader`].
pub fn parse(data: &[u8]) -> Result<Message, SipError> {
    let malformed = |s: &str| SipError::Malformed(s.to_string());
    // Leading CRLFs (keep-alives, RFC 3261 7.5) are skipped.
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .ok_or_else(|| malformed("empty datagram"))?;
    let data = &data[start..];
    let sep =
        find(data, b"\r\n\r\n").ok_or_else(|| malformed("no blank line after the headers"))?;
    let head = std::str::from_utf8(&data[..sep]).map_err(|_| malformed("headers are not UTF-8"))?;
    let available = &data[sep + 4..];

    let mut lines = head.split("\r\n");
    let start_line = lines.next().unwrap_or("");
    let mut headers = Headers::default();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            let Some(last) = headers.list.last_mut() else {
                return Err(malformed("continuation line before any header"));
            };
            last.1.push(' ');
            last.1.push_str(line.trim());
            continue;
        }
        let colon = line
            .find(':')
            .ok_or_else(|| SipError::Malformed(format!("header line without colon: {line:?}")))?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(SipError::Malformed(format!("bad header name {name:?}")));
        }
        headers.push(expand_compact(name), line[colon + 1..].trim());
    }
    for (_, v) in headers.list.iter_mut() {
        let t = v.trim();
        if t.len() != v.len() {
            *v = t.to_string();
        }
    }

    let body = match headers.get("Content-Length") {
        Some(cl) => {
            let declared: usize = cl.trim().parse().map_err(|_| SipError::InvalidHeader {
                name: "Content-Length",
                value: cl.to_string(),
            })?;
            if declared > available.len() {
                return Err(SipError::Truncated {
                    declared,
                    available: available.len(),
                });
            }
            available[..declared].to_vec()
        }
        None => available.to_vec(),
    };
    headers.remove("Content-Length");

    let msg = if start_line.starts_with("SIP/") {
        let mut parts = start_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        let code = parts.next().unwrap_or("");
        let reason = parts.next().unwrap_or("").trim();
        if !version.eq_ignore_ascii_case("SIP/2.0") {
            return Err(malformed("unsupported SIP version"));
        }
        let status: u16 = code
            .parse()
            .map_err(|_| SipError::Malformed(format!("bad status code {code:?}")))?;
        if !(100..700).contains(&status) || code.len() != 3 {
            return Err(SipError::Malformed(format!(
                "status code out of range: {code}"
            )));
        }
        Message::Response(Response {
            status,
            reason: reason.to_string(),
            headers,
            body,
        })
    } else {
        let (method, uri) = parse_request_line(start_line)?;
        Message::Request(Request {
            method,
            uri,
            headers,
            body,
        })
    };
    check_mandatory(&msg)?;
    Ok(msg)
}

fn parse_request_line(line: &str) -> Result<(Method, String), SipError> {
    let mut parts = line.split(' ').filter(|p| !p.is_empty());
    let (Some(m), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SipError::Malformed(format!("bad request line {line:?}")));
    };
    if !m.bytes().all(is_token_byte) {
        return Err(SipError::Malformed(format!("bad method {m:?}")));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(SipError::Malformed(format!(
            "unsupported version {version:?}"
        )));
    }
    let scheme = uri.split(':').next().unwrap_or("");
    if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
        let parsed = rsip::parse_uri(uri)
            .map_err(|e| SipError::Malformed(format!("bad Request-URI {uri:?}: {e}")))?;
        if parsed.host_with_port.host.to_string().is_empty() {
            return Err(SipError::Malformed(format!(
                "Request-URI without host: {uri:?}"
            )));
        }
    } else if scheme.is_empty()
        || scheme.len() == uri.len()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return Err(SipError::Malformed(format!("bad Request-URI {uri:?}")));
    }
    Ok((Method::parse(m), uri.to_string()))
}

fn check_mandatory(msg: &Message) -> Result<(), SipError> {
    let (h, req_method) = match msg {
        Message::Request(r) => (&r.headers, Some(&r.method)),
        Message::Response(r) => (&r.headers, None),
    };
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if matches!(h.get(name), None | Some("")) {
            return Err(SipError::MissingHeader(name));
        }
    }
    let cseq = h.get("CSeq").unwrap_or("");
    let (_, method) = parse_cseq(cseq).ok_or_else(|| SipError::InvalidHeader {
        name: "CSeq",
        value: cseq.to_string(),
    })?;
    if let Some(m) = req_method {
        if &method != m {
            return Err(SipError::InvalidHeader {
                name: "CSeq",
                value: cseq.to_string(),
            });
        }
    }
    let via = h.get_list("Via").next().unwrap_or("");
    Via::parse(via)?;
    NameAddr::parse("From", h.get("From").unwrap_or(""))?;
    NameAddr::parse("To", h.get("To").unwrap_or(""))?;
    Ok(())
}

fn parse_cseq(v: &str) -> Option<(u32, Method)> {
    let mut it = v.split_whitespace();
    let n: u32 = it.next()?.parse().ok()?;
    let m = it.next()?;
    if it.next().is_some() || n >= 1 << 31 || !m.bytes().all(is_token_byte) {
        return None;
    }
    Some((n, Method::parse(m)))
}

fn expand_compact(name: &str) -> String {
    let full = match name.to_ascii_lowercase().as_str() {
        "i" | "call-id" => "Call-ID",
        "m" | "contact" => "Contact",
        "e" | "content-encoding" => "Content-Encoding",
        "l" | "content-length" => "Content-Length",
        "c" | "content-type" => "Content-Type",
        "f" | "from" => "From",
        "s" | "subject" => "Subject",
        "k" | "supported" => "Supported",
        "t" | "to" => "To",
        "v" | "via" => "Via",
        "cseq" => "CSeq",
        _ => return name.to_string(),
    };
    full.to_string()
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Splits a header value at commas that are outside quotes and `<>`.
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut in_q, mut in_angle, mut esc, mut start) = (false, false, false, 0);
    for (i, c) in v.char_indices() {
        if esc {
            esc = false;
            continue;
        }
        match c {
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            '<' if !in_q => in_angle = true,
            '>' if !in_q => in_angle = false,
            ',' if !in_q && !in_angle => {
                out.push(v[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(v[start..].trim());
    out.retain(|s| !s.is_empty());
    out
}

fn parse_params(s: &str) -> Vec<(String, Option<String>)> {
    s.split(';')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((n, v)) => (
                n.trim().to_string(),
                Some(v.trim().trim_matches('"').to_string()),
            ),
            None => (p.to_string(), None),
        })
        .collect()
}

fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = rest[..end].to_string();
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p.parse().ok()?),
            None if after.is_empty() => None,
            None => return None,
        };
        return Some((host, port));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h.to_string(), Some(p.parse().ok()?))),
        Some(_) => Some((s.to_string(), None)), // bare IPv6
        None if s.is_empty() => None,
        None => Some((s.to_string(), None)),
    }
}

/// For a datagram that failed [`parse`] but has a parseable request line (and is not an ACK),
/// builds a `400 Bad Request` copying whatever Via/From/To/Call-ID/CSeq lines it has
/// (RFC 3261 8.2.2 / 21.4.1). The response goes back to the datagram's source.
pub fn bad_request_for(data: &[u8], why: &str, user_agent: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n').map(|l| l.trim_end_matches('\r'));
    let (method, _) = parse_request_line(lines.next()?).ok()?;
    if method == Method::Ack {
        return None;
    }
    let mut headers = Headers::default();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = expand_compact(name.trim());
        if ["Via", "From", "To", "Call-ID", "CSeq"]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(&name))
        {
            headers.push(name, value.trim());
        }
    }
    let mut reason = String::from("Bad Request");
    let clean: String = why.chars().filter(|c| !c.is_control()).take(100).collect();
    let _ = write!(reason, " ({clean})");
    headers.push("Server", user_agent);
    Some(
        Response {
            status: 400,
            reason,
            headers,
            body: Vec::new(),
        }
        .encode(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(data: &str) -> Request {
        match parse(data.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => panic!("expected a request"),
        }
    }

    const INVITE: &str = "INVITE sip:+15551234567@127.0.0.1:5080 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport\r\n\
Max-Forwards: 70\r\n\
To: <sip:+15551234567@127.0.0.1:5080>\r\n\
From: \"Alice\" <sip:alice@127.0.0.1:5070>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@127.0.0.1:5070>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn parses_a_plain_invite() {
        let r = req(INVITE);
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri, "sip:+15551234567@127.0.0.1:5080");
        assert_eq!(r.call_id(), "a84b4c76e66710@pc33.atlanta.com");
        assert_eq!(r.cseq(), (314159, Method::Invite));
        assert_eq!(r.branch().as_deref(), Some("z9hG4bK776asdhds"));
        assert_eq!(r.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(r.to_tag(), None);
        assert_eq!(r.contact_uri().as_deref(), Some("sip:alice@127.0.0.1:5070"));
        assert_eq!(r.body, b"v=0\n");
    }

    #[test]
    fn encode_then_parse_round_trips() {
        let r = req(INVITE);
        let again = req(std::str::from_utf8(&r.encode()).unwrap());
        assert_eq!(r, again);
    }

    #[test]
    fn compact_headers_are_expanded() {
        let r = req("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKc\r\n\
f: <sip:a@b>;tag=x\r\nt: sip:x@127.0.0.1\r\ni: cid\r\nCSeq: 1 OPTIONS\r\nm: <sip:a@10.0.0.1>\r\n\
c: application/sdp\r\nl: 0\r\n\r\n");
        assert_eq!(r.call_id(), "cid");
        assert_eq!(r.branch().as_deref(), Some("z9hG4bKc"));
        assert_eq!(r.from_tag().as_deref(), Some("x"));
        assert_eq!(r.headers.get("Content-Type"), Some("application/sdp"));
        assert_eq!(r.contact_uri().as_deref(), Some("sip:a@10.0.0.1"));
    }

    /// Adapted from RFC 4475 3.1.1.1 "wsinv": folded lines, odd spacing, escaped quotes.
    #[test]
    fn rfc4475_wsinv_whitespace_and_folding() {
        let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.3\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\n";
        let msg = format!(
            "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : {}\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\
\r\n{body}",
            body.len()
        );
        let r = req(&msg);
        assert_eq!(r.to_tag().as_deref(), Some("1918181833n"));
        assert_eq!(r.from_tag().as_deref(), Some("98asjd8"));
        assert_eq!(r.cseq(), (9, Method::Invite));
        assert_eq!(r.branch().as_deref(), Some("390skdjuw"));
        let vias: Vec<_> = r.headers.get_list("Via").collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(Via::parse(vias[2]).unwrap().branch(), Some("z9hG4bK30239"));
        assert_eq!(r.contact_uri().as_deref(), Some("sip:jdrosen@example.com"));
        assert_eq!(r.body, body.as_bytes());
        assert_eq!(
            r.headers.get("NewFangledHeader"),
            Some("newfangled value continued newfangled value")
        );
    }

    /// RFC 4475 3.1.1.3 "esc01": an escaped Request-URI and an unknown method (3.1.1.8-like).
    #[test]
    fn escaped_uri_and_extension_method() {
        let r = req(
            "NEWMETHOD sip:sips%3Auser%40example.com@example.net SIP/2.0\r\n\
Via: SIP/2.0/UDP host5.example.net;branch=z9hG4bK1\r\nTo: sip:j_user@example.com\r\n\
From: <sip:caller@example.org>;tag=323\r\nCall-ID: esc01.239409asdfakjkn23onasd0-3234\r\n\
CSeq: 8 NEWMETHOD\r\nContent-Length: 0\r\n\r\n",
        );
        assert_eq!(r.method, Method::Other("NEWMETHOD".into()));
        assert_eq!(r.uri, "sip:sips%3Auser%40example.com@example.net");
    }

    #[test]
    fn content_length_framing_is_enforced() {
        let short = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        assert!(matches!(
            parse(short.as_bytes()),
            Err(SipError::Truncated {
                declared: 40,
                available: 4
            })
        ));
        let extra = INVITE.replace("Content-Length: 4", "Content-Length: 2");
        assert_eq!(req(&extra).body, b"v=");
        let bad = INVITE.replace("Content-Length: 4", "Content-Length: four");
        assert!(matches!(
            parse(bad.as_bytes()),
            Err(SipError::InvalidHeader {
                name: "Content-Length",
                ..
            })
        ));
    }

    #[test]
    fn missing_mandatory_headers_and_cseq_mismatch_are_errors() {
        let no_callid = INVITE.replace("Call-ID: a84b4c76e66710@pc33.atlanta.com\r\n", "");
        assert!(matches!(
            parse(no_callid.as_bytes()),
            Err(SipError::MissingHeader("Call-ID"))
        ));
        let mismatch = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        assert!(matches!(
            parse(mismatch.as_bytes()),
            Err(SipError::InvalidHeader { name: "CSeq", .. })
        ));
        let bad_via = INVITE.replace("SIP/2.0/UDP 127.0.0.1:5070", "garbage");
        assert!(parse(bad_via.as_bytes()).is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for len in 0..600 {
            let mut buf = Vec::with_capacity(len);
            for _ in 0..len {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                buf.push((seed & 0xff) as u8);
            }
            assert!(parse(&buf).is_err());
            let _ = bad_request_for(&buf, "x", "ua");
        }
        // Every truncation of a valid message parses or errors, never panics.
        for i in 0..INVITE.len() {
            let _ = parse(&INVITE.as_bytes()[..i]);
            let _ = bad_request_for(&INVITE.as_bytes()[..i], "x", "ua");
        }
        assert!(parse(b"\xff\xfe\r\n\r\n").is_err());
        assert!(parse(b"INVITE sip: SIP/2.0\r\n\r\n").is_err());
    }

    #[test]
    fn bad_request_is_built_when_the_request_line_parses() {
        let broken = INVITE.replace("CSeq: 314159 INVITE", "CSeq: nonsense");
        let err = parse(broken.as_bytes()).unwrap_err();
        let resp = bad_request_for(broken.as_bytes(), &err.to_string(), "cb").unwrap();
        let Message::Response(r) = parse_response_lenient(&resp) else {
            panic!()
        };
        assert_eq!(r.status, 400);
        assert_eq!(r.call_id(), "a84b4c76e66710@pc33.atlanta.com");
        assert!(bad_request_for(b"\x00\x01 not sip", "x", "cb").is_none());
        assert!(bad_request_for(b"ACK sip:a@b SIP/2.0\r\n\r\n", "x", "cb").is_none());
    }

    fn parse_response_lenient(b: &[u8]) -> Message {
        // the 400 copies CSeq "nonsense", so only check the status line and Call-ID by hand
        let text = std::str::from_utf8(b).unwrap();
        assert!(text.starts_with("SIP/2.0 400 Bad Request"));
        let mut headers = Headers::default();
        for l in text.split("\r\n").skip(1).take_while(|l| !l.is_empty()) {
            let (n, v) = l.split_once(':').unwrap();
            headers.push(n, v.trim());
        }
        Message::Response(Response {
            status: 400,
            reason: String::new(),
            headers,
            body: vec![],
        })
    }

    #[test]
    fn response_copies_headers_and_adds_to_tag() {
        let r = req(INVITE);
        let resp = Response::to_request(&r, 180, Some("abc"));
        assert_eq!(resp.to_tag().as_deref(), Some("abc"));
        assert_eq!(resp.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(resp.cseq(), (314159, Method::Invite));
        let parsed = parse(&resp.encode()).unwrap();
        assert!(
            matches!(parsed, Message::Response(ref x) if x.status == 180 && x.reason == "Ringing")
        );
        let trying = Response::to_request(&r, 100, Some("abc"));
        assert_eq!(trying.to_tag(), None);
    }

    #[test]
    fn received_and_rport_are_stamped_and_used() {
        let mut r = req(INVITE);
        let src: SocketAddr = "127.0.0.2:40000".parse().unwrap();
        r.stamp_received(src);
        let via = r.top_via().unwrap();
        assert_eq!(via.param("received"), Some(Some("127.0.0.2")));
        assert_eq!(via.param("rport"), Some(Some("40000")));
        assert_eq!(r.response_destination(src), src);
        // Without rport, the sent-by port is used.
        let mut r = req(&INVITE.replace(";rport", ""));
        r.stamp_received(src);
        assert_eq!(
            r.response_destination(src),
            "127.0.0.2:5070".parse().unwrap()
        );
    }

    #[test]
    fn uri_resolution() {
        assert_eq!(
            uri_addr("sip:+15551234567@127.0.0.1:5080").unwrap(),
            "127.0.0.1:5080".parse().unwrap()
        );
        assert_eq!(
            uri_addr("<sip:bob@127.0.0.1;transport=udp>").unwrap(),
            "127.0.0.1:5060".parse().unwrap()
        );
        assert_eq!(
            uri_addr("sip:bob@[::1]:5070").unwrap(),
            "[::1]:5070".parse().unwrap()
        );
        assert!(uri_addr("sip:bob@example.com").is_err());
        assert!(uri_addr("garbage").is_err());
        assert!(uri_has_lr("sip:p1.example.com;lr"));
        assert!(!uri_has_lr("sip:p1.example.com"));
    }
}
