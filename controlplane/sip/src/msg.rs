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
//! It is also strict where RFC 4475 calls a message invalid: a Request-Line of exactly three
//! single-SP-separated parts, SIP/2.0 only ([`SipError::UnsupportedVersion`] otherwise), a SIP
//! Request-URI without headers, at most one Call-ID/From/To/CSeq/Max-Forwards/Content-Length/
//! Content-Type, Max-Forwards 0..=255, every Via element and parameter well-formed (and a branch
//! that is more than the magic cookie), From/To/Contact with balanced quotes, token display
//! names, no LWS inside `<>` and no `?` or `,` in a bare addr-spec. What a message *means*
//! (unknown schemes, Require, bodies) is the UA's to judge, not the parser's.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rsipstack::rsip;

use crate::error::SipError;
use crate::peer::Transport;

mod parse;

pub use self::parse::{check_size, parse, reject_malformed, Limits};

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
        if !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
        {
            return Err(bad());
        }
        let params = if value.contains(';') {
            parse_params_strict(params).ok_or_else(bad)?
        } else {
            Vec::new()
        };
        // RFC 4475 3.2.1: a bare magic cookie claims RFC 3261 but carries no identifier.
        if params.iter().any(|(n, v)| {
            n.eq_ignore_ascii_case("branch")
                && v.as_deref()
                    .is_none_or(|b| b.eq_ignore_ascii_case("z9hG4bK"))
        }) {
            return Err(bad());
        }
        Ok(Self {
            transport,
            host,
            port,
            params,
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
        let (display, uri, rest) = if let Some(quoted) = v.strip_prefix('"') {
            // quoted-string display name (RFC 4475 3.1.2.6: it must be terminated)
            let mut escaped = false;
            let mut close = None;
            for (i, c) in quoted.char_indices() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' => escaped = true,
                    '"' => {
                        close = Some(i);
                        break;
                    }
                    _ => {}
                }
            }
            let close = close.ok_or_else(bad)?;
            let after = quoted[close + 1..].trim_start();
            let inner = after.strip_prefix('<').ok_or_else(bad)?;
            let gt = inner.find('>').ok_or_else(bad)?;
            let display = quoted[..close].replace("\\\"", "\"").replace("\\\\", "\\");
            (Some(display), &inner[..gt], &inner[gt + 1..])
        } else if let Some(lt) = v.find('<') {
            // unquoted display name: tokens separated by LWS (RFC 4475 3.1.2.15)
            let display = v[..lt].trim();
            if !display
                .bytes()
                .all(|b| is_token_byte(b) || b == b' ' || b == b'\t')
            {
                return Err(bad());
            }
            let gt = v[lt..].find('>').map(|g| g + lt).ok_or_else(bad)?;
            let display = (!display.is_empty()).then(|| display.to_string());
            (display, &v[lt + 1..gt], &v[gt + 1..])
        } else {
            // addr-spec: a URI with a comma, question mark or semicolon must be in <> (RFC 3261
            // 20, RFC 4475 3.1.2.13); a semicolon starts the header parameters.
            let end = v.find(';').unwrap_or(v.len());
            let uri = v[..end].trim_end();
            if uri.contains(['?', ',', '"', '>']) {
                return Err(bad());
            }
            (None, uri, &v[end..])
        };
        // No LWS inside an addr-spec (RFC 4475 3.1.2.14).
        if uri.is_empty() || uri.contains(char::is_whitespace) || !has_scheme(uri) {
            return Err(bad());
        }
        let rest = rest.trim_start();
        let params = if rest.is_empty() {
            Vec::new()
        } else {
            let p = rest.strip_prefix(';').ok_or_else(bad)?;
            parse_params_strict(p).ok_or_else(bad)?
        };
        Ok(Self {
            display,
            uri: uri.to_string(),
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

/// The transport a URI names: its `transport=` parameter (udp, tcp, tls), or TLS for `sips:`.
/// `None` when it names none (or one we do not speak).
pub fn uri_transport(uri: &str) -> Option<Transport> {
    let uri = uri.trim().trim_start_matches('<').trim_end_matches('>');
    let no_headers = uri.split('?').next().unwrap_or("");
    let param = no_headers.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("transport")
            .then(|| Transport::parse(v.trim()).ok())
            .flatten()
    });
    if param.is_some() {
        return param;
    }
    no_headers
        .get(..5)
        .is_some_and(|s| s.eq_ignore_ascii_case("sips:"))
        .then_some(Transport::Tls)
}

/// Resolves a SIP URI (`sip:user@host:port;params`, with or without `<>`) to a socket address
/// (default port 5060, or 5061 for `sips:` or `;transport=tls`). Only IP literals and
/// `localhost` are accepted here; host names go through [`crate::locate`].
///
/// # Errors
/// [`SipError::InvalidUri`].
pub fn uri_addr(uri: &str) -> Result<SocketAddr, SipError> {
    let bad = || SipError::InvalidUri(uri.to_string());
    let parsed = rsip::parse_uri(uri).map_err(|_| bad())?;
    match parsed.scheme {
        Some(rsip::Scheme::Sip | rsip::Scheme::Sips) | None => {}
        _ => return Err(bad()),
    }
    let default_port = uri_transport(uri).unwrap_or(Transport::Udp).default_port();
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
        .unwrap_or(default_port);
    Ok(SocketAddr::new(ip, port))
}

/// Whether a URI has the `lr` parameter (loose routing).
pub fn uri_has_lr(uri: &str) -> bool {
    let no_headers = uri.split('?').next().unwrap_or("");
    no_headers.split(';').skip(1).any(|p| {
        p.trim().eq_ignore_ascii_case("lr") || p.trim().to_ascii_lowercase().starts_with("lr=")
    })
}

/// `scheme ":" …` with an RFC 3986 scheme.
fn has_scheme(uri: &str) -> bool {
    match uri.split_once(':') {
        Some((scheme, rest)) => {
            !rest.is_empty()
                && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
                && scheme
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        }
        None => false,
    }
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

/// Splits a header value at commas that are outside quotes and `<>`.
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = split_list_raw(v);
    out.retain(|s| !s.is_empty());
    out
}

/// [`split_list`] keeping empty elements.
fn split_list_raw(v: &str) -> Vec<&str> {
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
    out
}

/// Strict `*(SEMI generic-param)` after the first `;`: every parameter has a token name and,
/// after `=`, a token, host or quoted-string value (RFC 3261 25.1). `None` when any is malformed.
fn parse_params_strict(s: &str) -> Option<Vec<(String, Option<String>)>> {
    let mut out = Vec::new();
    let (mut in_q, mut esc, mut start) = (false, false, 0);
    let mut pieces = Vec::new();
    for (i, c) in s.char_indices() {
        match c {
            _ if esc => esc = false,
            '\\' if in_q => esc = true,
            '"' => in_q = !in_q,
            ';' if !in_q => {
                pieces.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if in_q {
        return None;
    }
    pieces.push(&s[start..]);
    for p in pieces {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (p.trim(), None),
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return None;
        }
        let value = match value {
            None => None,
            Some(v) if v.len() >= 2 && v.starts_with('"') && v.ends_with('"') => {
                Some(v[1..v.len() - 1].to_string())
            }
            Some(v)
                if !v.is_empty() && v.bytes().all(|b| is_token_byte(b) || b":[]".contains(&b)) =>
            {
                Some(v.to_string())
            }
            Some(_) => return None,
        };
        out.push((name.to_string(), value));
    }
    Some(out)
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

#[cfg(test)]
mod tests;
