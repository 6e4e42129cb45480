//! SIP messages: parsing datagrams, building requests/responses, header accessors.
//!
//! This is the only module that touches `rsip` (rsipstack's re-export), so swapping the parser
//! later is local. What is used from rsip and what is done here by hand:
//!
//! * rsip's `parse_uri` validates Request-URIs and resolves URIs to socket addresses
//!   (in `header`, the only file that calls it).
//! * Framing, the start line and header lines are parsed here, because rsip's message parser
//!   rejects extension methods (we must answer those with 405, not drop them), treats an
//!   unparseable Content-Length as 0 and does not let us enforce Content-Length framing.
//!
//! Contract: [`parse`] never panics; every accessor on a parsed message returns a value or an
//! error, never panics. A parsed message always has Via, From, To, Call-ID and a valid CSeq
//! (whose method matches a request's method), so [`HasHeaders::call_id`] etc. cannot fail on it.
//! It is also strict where RFC 4475 calls a message invalid: a Request-Line of exactly three
//! single-SP-separated parts, SIP/2.0 only
//! ([`SipError::UnsupportedVersion`](crate::error::SipError::UnsupportedVersion) otherwise), a
//! SIP Request-URI without headers, at most one Call-ID/From/To/CSeq/Max-Forwards/
//! Content-Length/Content-Type, Max-Forwards 0..=255, every Via element and parameter
//! well-formed (and a branch that is more than the magic cookie), From/To/Contact with balanced
//! quotes, token display names, no LWS inside `<>` and no `?` or `,` in a bare addr-spec. What
//! a message *means* (unknown schemes, Require, bodies) is the UA's to judge, not the parser's.

use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};

use crate::peer::Transport;

mod header;
mod parse;

pub use self::header::{split_list, uri_addr, uri_has_lr, uri_transport, NameAddr, Via};
pub use self::parse::{check_size, parse, reject_malformed, Limits};

use self::header::{has_scheme, is_token_byte, split_host_port, split_list_raw};

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
    /// REGISTER (answered by the registrar when one is configured, else 405).
    Register,
    /// Any other token (INFO, MESSAGE, extension methods …), as received.
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
            m if m.eq_ignore_ascii_case("REGISTER") => Self::Register,
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
            Self::Register => "REGISTER",
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

    /// Replaces the first comma-separated element of the first `name` header line with
    /// `value`, keeping the line's other elements (for a top Via). False when there is none.
    pub fn replace_first_list_value(&mut self, name: &str, value: &str) -> bool {
        let Some(slot) = self
            .list
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        else {
            return false;
        };
        let elems = split_list(&slot.1);
        let mut new = value.to_string();
        for rest in elems.iter().skip(1) {
            new.push_str(", ");
            new.push_str(rest);
        }
        slot.1 = new;
        true
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

    /// Where responses go (RFC 3261 18.2.2 for unreliable unicast, RFC 3581): when the top
    /// Via's sent-by is the source IP, that IP and the `rport` value (or the sent-by port, or
    /// 5060). When the sent-by names another host or a name (we do no DNS), its port belongs to
    /// that host, so the response goes back to `src` as RFC 3581 would (RFC 4475's messages all
    /// carry such Vias).
    pub fn response_destination(&self, src: SocketAddr) -> SocketAddr {
        let Some(via) = self.top_via() else {
            return src;
        };
        if via.host.parse::<IpAddr>().ok() != Some(src.ip()) {
            return src;
        }
        let ip = src.ip();
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
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        483 => "Too Many Hops",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "Version Not Supported",
        513 => "Message Too Large",
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
    via_value_for(Transport::Udp, local, branch)
}

/// A Via header value for a request we send over `transport` from `local`.
pub fn via_value_for(transport: Transport, local: SocketAddr, branch: &str) -> String {
    format!("SIP/2.0/{transport} {local};branch={branch};rport")
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

#[cfg(test)]
mod tests;
