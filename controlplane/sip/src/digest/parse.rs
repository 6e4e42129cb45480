//! Parsing and writing `Digest k=v, k="v", …` values: challenges and credentials.

use crate::error::SipError;

use super::Algorithm;

/// RFC 7230 tchar.
fn is_tchar(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&c)
}

/// Splits `Digest <auth-params>` into lower-cased names and unquoted values. Rejects another
/// scheme, a repeated parameter, an unterminated quoted string and stray characters.
pub(super) fn parse_digest_params(
    value: &str,
    header: &'static str,
) -> Result<Vec<(String, String)>, SipError> {
    let bad = |reason| SipError::DigestMalformed { header, reason };
    let s = value.trim_matches(|c: char| c == ' ' || c == '\t');
    let b = s.as_bytes();
    let scheme_end = b.iter().position(|&c| !is_tchar(c)).unwrap_or(b.len());
    if scheme_end == 0 {
        return Err(bad("no auth scheme"));
    }
    if !s[..scheme_end].eq_ignore_ascii_case("Digest") {
        return Err(bad("auth scheme is not Digest"));
    }
    let mut i = scheme_end;
    if i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
        return Err(bad("no whitespace after the scheme"));
    }
    let ws = |i: &mut usize| {
        while *i < b.len() && matches!(b[*i], b' ' | b'\t' | b'\r' | b'\n') {
            *i += 1;
        }
    };
    let mut params: Vec<(String, String)> = Vec::new();
    loop {
        // separators: any run of whitespace and commas (RFC 7230 7 "#rule" allows empty elements)
        while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\r' | b'\n' | b',') {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && is_tchar(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(bad("expected a parameter name"));
        }
        let name = s[start..i].to_ascii_lowercase();
        ws(&mut i);
        if i >= b.len() || b[i] != b'=' {
            return Err(bad("parameter without '='"));
        }
        i += 1;
        ws(&mut i);
        let val = if i < b.len() && b[i] == b'"' {
            i += 1;
            let mut out = Vec::new();
            loop {
                match b.get(i) {
                    None => return Err(bad("unterminated quoted string")),
                    Some(b'"') => {
                        i += 1;
                        break;
                    }
                    Some(b'\\') => {
                        let Some(&c) = b.get(i + 1) else {
                            return Err(bad("unterminated quoted string"));
                        };
                        out.push(c);
                        i += 2;
                    }
                    Some(&c) => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            // `s` is a str and we split only at ASCII bytes, so this is valid UTF-8.
            String::from_utf8(out).map_err(|_| bad("invalid UTF-8 in a quoted string"))?
        } else {
            // a token, leniently: also token68 characters ('/', '=', …) some servers send
            let vs = i;
            while i < b.len() && b[i].is_ascii_graphic() && !matches!(b[i], b',' | b'"' | b'\\') {
                i += 1;
            }
            if i == vs {
                return Err(bad("empty parameter value"));
            }
            s[vs..i].to_string()
        };
        if params.iter().any(|(n, _)| *n == name) {
            return Err(bad("repeated parameter"));
        }
        params.push((name, val));
        ws(&mut i);
        if i < b.len() && b[i] != b',' {
            return Err(bad("expected ',' between parameters"));
        }
    }
    Ok(params)
}

fn take(params: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let pos = params.iter().position(|(n, _)| n == name)?;
    Some(params.swap_remove(pos).1)
}

/// Writes `value` as a quoted-string (RFC 3261 25.1), escaping `"` and `\`.
pub(super) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// Which pair of headers a challenge came in and its answer goes out in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// 401: `WWW-Authenticate` → `Authorization` (a registrar or UAS).
    Www,
    /// 407: `Proxy-Authenticate` → `Proxy-Authorization` (a proxy, e.g. the trunk's SBC).
    Proxy,
}

impl ChallengeKind {
    /// The header that carries the answer.
    pub fn authorization_header(self) -> &'static str {
        match self {
            Self::Www => "Authorization",
            Self::Proxy => "Proxy-Authorization",
        }
    }

    /// The header that carries the challenge.
    pub fn challenge_header(self) -> &'static str {
        match self {
            Self::Www => "WWW-Authenticate",
            Self::Proxy => "Proxy-Authenticate",
        }
    }
}

/// A parsed `WWW-Authenticate`/`Proxy-Authenticate` digest challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `realm` (required).
    pub realm: String,
    /// `nonce` (required).
    pub nonce: String,
    /// `opaque`, echoed unchanged.
    pub opaque: Option<String>,
    /// `algorithm` (absent means MD5).
    pub algorithm: Algorithm,
    /// `qop` options, lower-cased (`["auth", "auth-int"]`); empty means RFC 2069 mode.
    pub qop: Vec<String>,
    /// `stale=true`: the previous credentials were right, only the nonce expired.
    pub stale: bool,
}

impl Challenge {
    /// Parses one challenge value.
    ///
    /// # Errors
    /// [`SipError::DigestMalformed`] if it is not `Digest` with well-formed parameters, a
    /// `realm` and a `nonce`. An unknown algorithm is not an error here (see
    /// [`Algorithm::is_supported`]).
    pub fn parse(value: &str) -> Result<Self, SipError> {
        const H: &str = "challenge";
        let mut p = parse_digest_params(value, H)?;
        let realm = take(&mut p, "realm").ok_or(SipError::DigestMalformed {
            header: H,
            reason: "no realm",
        })?;
        let nonce = take(&mut p, "nonce").ok_or(SipError::DigestMalformed {
            header: H,
            reason: "no nonce",
        })?;
        if nonce.is_empty() {
            return Err(SipError::DigestMalformed {
                header: H,
                reason: "empty nonce",
            });
        }
        let algorithm = take(&mut p, "algorithm").map_or(Algorithm::Md5, |a| Algorithm::parse(&a));
        let qop = take(&mut p, "qop")
            .map(|q| {
                q.split(',')
                    .map(|o| o.trim().to_ascii_lowercase())
                    .filter(|o| !o.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        let stale = take(&mut p, "stale").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        Ok(Self {
            realm,
            nonce,
            opaque: take(&mut p, "opaque"),
            algorithm,
            qop,
            stale,
        })
    }

    /// Whether we can answer it: a supported algorithm, and `qop` either absent (RFC 2069) or
    /// offering `auth`.
    pub fn is_answerable(&self) -> bool {
        self.algorithm.is_supported() && (self.qop.is_empty() || self.offers_auth())
    }

    pub(super) fn offers_auth(&self) -> bool {
        self.qop.iter().any(|q| q == "auth")
    }
}

/// A parsed `Authorization`/`Proxy-Authorization` digest value (what a UAS receives).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, as issued by the server.
    pub nonce: String,
    /// `uri` (the Request-URI the client computed over).
    pub uri: String,
    /// `response`, as received (hex; compared case-insensitively).
    pub response: String,
    /// `algorithm` (absent means MD5).
    pub algorithm: Algorithm,
    /// `cnonce`, present with `qop`.
    pub cnonce: Option<String>,
    /// `opaque`, echoed.
    pub opaque: Option<String>,
    /// `qop`, lower-cased, if the client used one.
    pub qop: Option<String>,
    /// `nc` decoded from its 8 hex digits, present with `qop`.
    pub nc: Option<u32>,
}

impl Authorization {
    /// Parses one credentials value.
    ///
    /// # Errors
    /// [`SipError::DigestMalformed`] if it is not `Digest` with well-formed parameters, if
    /// `username`, `realm`, `nonce`, `uri` or `response` is missing, if `nc` is not 8 hex
    /// digits, or if `qop` is present without `nc` and `cnonce`.
    pub fn parse(value: &str) -> Result<Self, SipError> {
        const H: &str = "authorization";
        let miss = |reason| SipError::DigestMalformed { header: H, reason };
        let mut p = parse_digest_params(value, H)?;
        let username = take(&mut p, "username").ok_or(miss("no username"))?;
        let realm = take(&mut p, "realm").ok_or(miss("no realm"))?;
        let nonce = take(&mut p, "nonce").ok_or(miss("no nonce"))?;
        let uri = take(&mut p, "uri").ok_or(miss("no uri"))?;
        let response = take(&mut p, "response").ok_or(miss("no response"))?;
        let algorithm = take(&mut p, "algorithm").map_or(Algorithm::Md5, |a| Algorithm::parse(&a));
        let qop = take(&mut p, "qop").map(|q| q.to_ascii_lowercase());
        let nc = match take(&mut p, "nc") {
            Some(nc) if nc.len() == 8 && nc.bytes().all(|c| c.is_ascii_hexdigit()) => {
                Some(u32::from_str_radix(&nc, 16).map_err(|_| miss("nc is not 8 hex digits"))?)
            }
            Some(_) => return Err(miss("nc is not 8 hex digits")),
            None => None,
        };
        let cnonce = take(&mut p, "cnonce");
        if qop.is_some() && (nc.is_none() || cnonce.is_none()) {
            return Err(miss("qop without nc and cnonce"));
        }
        Ok(Self {
            username,
            realm,
            nonce,
            uri,
            response,
            algorithm,
            cnonce,
            opaque: take(&mut p, "opaque"),
            qop,
            nc,
        })
    }
}
