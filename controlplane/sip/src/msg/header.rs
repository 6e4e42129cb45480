//! Header values and their grammar: the typed [`Via`] and [`NameAddr`] (From, To, Contact,
//! Route) with their strict readers, SIP URIs ([`uri_addr`], [`uri_transport`], [`uri_has_lr`];
//! the only place rsip is called), and the comma-list and parameter splitters the parser shares.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use rsipstack::rsip;

use crate::error::SipError;
use crate::peer::Transport;

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
pub(super) fn has_scheme(uri: &str) -> bool {
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

pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

/// Splits a header value at commas that are outside quotes and `<>`.
pub fn split_list(v: &str) -> Vec<&str> {
    let mut out = split_list_raw(v);
    out.retain(|s| !s.is_empty());
    out
}

/// [`split_list`] keeping empty elements.
pub(super) fn split_list_raw(v: &str) -> Vec<&str> {
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

pub(super) fn split_host_port(s: &str) -> Option<(String, Option<u16>)> {
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
