//! Reading datagrams: [`parse`] (framing, start line, header lines, the mandatory and
//! single-valued headers, RFC 4475's syntax faults) and [`reject_malformed`] (the 400/505 a
//! request that fails it gets). Value types and their strict readers (`Via::parse`,
//! `NameAddr::parse`) live in the parent module.

use super::{
    expand_compact, has_scheme, is_token_byte, parse_cseq, split_host_port, split_list_raw,
    Headers, Message, Method, NameAddr, Request, Response, Via,
};
use crate::error::SipError;

/// Size limits on received messages, checked before anything else reads them.
///
/// RFC 3261 names two answers: `413 Request Entity Too Large` (21.4.11) when the *body* is
/// larger than the server is willing to process, and `513 Message Too Large` (21.5.7) when
/// the *message* is. So a datagram or header section over its limit gets 513, a body over its
/// limit 413 (responses over a limit are dropped and counted). RFC 3261 18.1.1 expects a UDP
/// message to fit the path MTU unless it is known to be larger; 16 KiB leaves room for large
/// SDP offers without letting one sender make us parse 64 KiB per datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest datagram we read (start line, headers and body). Default 16 384.
    pub max_message_bytes: usize,
    /// The largest header section (start line and header lines, up to the blank line).
    /// Default 8 192.
    pub max_header_bytes: usize,
    /// The largest body (the bytes after the blank line). Default 8 192.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16_384,
            max_header_bytes: 8_192,
            max_body_bytes: 8_192,
        }
    }
}

/// Checks a received datagram against `limits` before it is parsed: first its length
/// ([`SipError::MessageTooLarge`] `"message"`), then the header section, measured up to the
/// blank line or, if there is none within the limit, at least the limit
/// ([`SipError::MessageTooLarge`] `"header section"`), then the bytes after the blank line
/// ([`SipError::BodyTooLarge`]). A datagram longer than the receive buffer arrives cut to
/// `max_message_bytes + 1` bytes, which is enough to see that it is too large.
///
/// # Errors
/// [`SipError::MessageTooLarge`], [`SipError::BodyTooLarge`].
pub fn check_size(data: &[u8], limits: &Limits) -> Result<(), SipError> {
    if data.len() > limits.max_message_bytes {
        return Err(SipError::MessageTooLarge {
            part: "message",
            size: data.len(),
            limit: limits.max_message_bytes,
        });
    }
    let start = data
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(data.len());
    let data = &data[start..];
    let window = &data[..data.len().min(limits.max_header_bytes.saturating_add(4))];
    match find(window, b"\r\n\r\n") {
        Some(sep) if sep <= limits.max_header_bytes => {
            let body = data.len() - sep - 4;
            if body > limits.max_body_bytes {
                return Err(SipError::BodyTooLarge {
                    size: body,
                    limit: limits.max_body_bytes,
                });
            }
            Ok(())
        }
        // No blank line within the limit: either the header section is too long, or the
        // datagram is shorter than the limit and has no blank line (parse says so).
        _ if data.len() > limits.max_header_bytes => Err(SipError::MessageTooLarge {
            part: "header section",
            size: data.len().min(limits.max_header_bytes + 1),
            limit: limits.max_header_bytes,
        }),
        _ => Ok(()),
    }
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
    // The start line first: a request of another SIP version is answered 505 whatever its
    // headers look like (RFC 4475 3.1.2.16).
    let start = if start_line.starts_with("SIP/") {
        StartLine::Status(parse_status_line(start_line)?)
    } else {
        let (method, uri) = parse_request_line(start_line)?;
        StartLine::Request(method, uri)
    };
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
            .ok_or_else(|| malformed("header line without colon"))?;
        let name = line[..colon].trim_end_matches([' ', '\t']);
        if name.is_empty() || !name.bytes().all(is_token_byte) {
            return Err(malformed("bad header name"));
        }
        headers.push(expand_compact(name), line[colon + 1..].trim());
    }
    for (_, v) in headers.list.iter_mut() {
        let t = v.trim();
        if t.len() != v.len() {
            *v = t.to_string();
        }
    }
    for name in SINGLE_VALUED {
        if headers.get_all(name).nth(1).is_some() {
            return Err(SipError::DuplicateHeader(name));
        }
    }

    let body = match headers.get("Content-Length") {
        Some(cl) => {
            let invalid = || SipError::InvalidHeader {
                name: "Content-Length",
                value: cl.to_string(),
            };
            if cl.is_empty() || !cl.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            let declared: usize = cl.parse().map_err(|_| invalid())?;
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

    let msg = match start {
        StartLine::Status((status, reason)) => Message::Response(Response {
            status,
            reason,
            headers,
            body,
        }),
        StartLine::Request(method, uri) => Message::Request(Request {
            method,
            uri,
            headers,
            body,
        }),
    };
    check_mandatory(&msg)?;
    Ok(msg)
}

/// Headers that may appear at most once (RFC 3261 7.3.1 / 20; RFC 4475 3.3.8, 3.3.9).
const SINGLE_VALUED: [&str; 7] = [
    "Call-ID",
    "From",
    "To",
    "CSeq",
    "Max-Forwards",
    "Content-Length",
    "Content-Type",
];

enum StartLine {
    Status((u16, String)),
    Request(Method, String),
}

fn parse_status_line(line: &str) -> Result<(u16, String), SipError> {
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or("");
    let code = parts.next().unwrap_or("");
    let reason = parts.next().unwrap_or("").trim();
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Err(SipError::UnsupportedVersion(
            version.chars().take(16).collect(),
        ));
    }
    // RFC 4475 3.1.2.19: a code outside 100..=699 is dropped.
    let status: u16 = code
        .parse()
        .map_err(|_| SipError::Malformed("malformed status code".into()))?;
    if !(100..700).contains(&status) || code.len() != 3 {
        return Err(SipError::Malformed("status code out of range".into()));
    }
    Ok((status, reason.to_string()))
}

/// `Method SP Request-URI SP SIP-Version`, exactly one SP apart, nothing after (RFC 3261
/// 25.1; RFC 4475 3.1.2.7–3.1.2.11 are rejected).
fn parse_request_line(line: &str) -> Result<(Method, String), SipError> {
    let malformed = |s: &str| SipError::Malformed(s.to_string());
    let words: Vec<&str> = line.split_whitespace().collect();
    let [m, .., version] = words[..] else {
        return Err(malformed("malformed Request-Line"));
    };
    if words.len() < 3 {
        return Err(malformed("malformed Request-Line"));
    }
    if !m.bytes().all(is_token_byte) {
        return Err(malformed("malformed method"));
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        if version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"))
        {
            return Err(SipError::UnsupportedVersion(
                version.chars().take(16).collect(),
            ));
        }
        return Err(malformed("malformed Request-Line"));
    }
    if words.len() != 3 || line != words.join(" ") {
        return Err(malformed("whitespace in the Request-Line"));
    }
    let uri = words[1];
    check_request_uri(uri)?;
    Ok((Method::parse(m), uri.to_string()))
}

/// A Request-URI is `scheme:rest`; a SIP or SIPS one has a host and no headers (RFC 3261
/// 19.1.1, RFC 4475 3.1.2.11). Other schemes are left to the UA (416, RFC 4475 3.3.2).
fn check_request_uri(uri: &str) -> Result<(), SipError> {
    let malformed = |s: &str| Err(SipError::Malformed(s.to_string()));
    if !has_scheme(uri) || uri.contains(['<', '>', '"']) {
        return malformed("malformed Request-URI");
    }
    let (scheme, rest) = uri.split_once(':').unwrap_or(("", ""));
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return Ok(());
    }
    // The user part cannot hold an unescaped '@', so the host follows the first one.
    let after_user = rest.split_once('@').map_or(rest, |(_, h)| h);
    let host_end = after_user.find([';', '?']).unwrap_or(after_user.len());
    if after_user[host_end..].contains('?') {
        return malformed("headers in the Request-URI");
    }
    match split_host_port(&after_user[..host_end]) {
        Some((host, _))
            if host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b)) =>
        {
            Ok(())
        }
        _ => malformed("malformed Request-URI host"),
    }
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
    if let Some(mf) = h.get("Max-Forwards") {
        let ok = !mf.is_empty()
            && mf.bytes().all(|b| b.is_ascii_digit())
            && mf.parse::<u32>().is_ok_and(|n| n <= 255);
        if !ok {
            return Err(SipError::InvalidHeader {
                name: "Max-Forwards",
                value: mf.to_string(),
            });
        }
    }
    // Every Via value, not only the top one (RFC 4475 3.1.2.1: no empty elements or params).
    for line in h.get_all("Via") {
        let elems = split_list_raw(line);
        if elems.iter().any(|e| e.is_empty()) {
            return Err(SipError::InvalidHeader {
                name: "Via",
                value: line.to_string(),
            });
        }
        for e in elems {
            Via::parse(e)?;
        }
    }
    NameAddr::parse("From", h.get("From").unwrap_or(""))?;
    NameAddr::parse("To", h.get("To").unwrap_or(""))?;
    for line in h.get_all("Contact") {
        let elems = split_list_raw(line);
        for e in &elems {
            if !(*e == "*" && elems.len() == 1) {
                NameAddr::parse("Contact", e)?;
            }
        }
    }
    Ok(())
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// For a datagram that failed [`check_size`] or [`parse`] and starts like a request (a method
/// token first, a `SIP/` version last; not ACK), builds the answer RFC 3261 names: `513
/// Message Too Large` (21.5.7) for [`SipError::MessageTooLarge`], `413 Request Entity Too
/// Large` (21.4.11) for [`SipError::BodyTooLarge`], `505 Version Not Supported` for another
/// SIP version, else `400 Bad Request - <fault>` (8.2, 21.4.1). It copies whatever
/// Via/From/To/Call-ID/CSeq lines the datagram has and goes back to the datagram's source.
/// `None` (drop) for anything else, including every malformed response.
pub fn reject_malformed(data: &[u8], err: &SipError, user_agent: &str) -> Option<Vec<u8>> {
    let text = String::from_utf8_lossy(data);
    let mut lines = text
        .trim_start_matches(['\r', '\n'])
        .split('\n')
        .map(|l| l.trim_end_matches('\r'));
    let first = lines.next()?;
    let mut words = first.split_whitespace();
    let method = words.next()?;
    let version = words.last()?;
    if !method.bytes().all(is_token_byte)
        || !version.get(..4)?.eq_ignore_ascii_case("SIP/")
        || Method::parse(method) == Method::Ack
    {
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
    let (status, reason) = match err {
        SipError::UnsupportedVersion(_) => (505, "Version Not Supported".to_string()),
        SipError::MessageTooLarge { .. } => (513, "Message Too Large".to_string()),
        SipError::BodyTooLarge { .. } => (413, "Request Entity Too Large".to_string()),
        other => {
            let fault: String = other
                .fault()
                .chars()
                .filter(|c| !c.is_control())
                .take(100)
                .collect();
            (400, format!("Bad Request - {fault}"))
        }
    };
    headers.push("Server", user_agent);
    Some(
        Response {
            status,
            reason,
            headers,
            body: Vec::new(),
        }
        .encode(),
    )
}
