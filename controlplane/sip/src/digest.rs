//! HTTP Digest authentication for SIP (RFC 3261 22, RFC 2617, RFC 7616, RFC 8760), sans-IO.
//!
//! Two halves, neither doing I/O nor reading a clock (`now` comes in):
//!
//! * **UAC** ([`ClientAuth`]): one per trunk. [`ClientAuth::handle_challenge`] takes the
//!   `WWW-Authenticate` (401) or `Proxy-Authenticate` (407) values of a response, picks the
//!   strongest challenge per realm (SHA-256 before MD5, RFC 8760 2.4) and starts a session;
//!   [`ClientAuth::authorize`] then gives the `Authorization`/`Proxy-Authorization` headers for
//!   this *and every later* request: the nonce is reused with `nc` counting up (00000001,
//!   00000002, …), so later requests need no new challenge round trip. A new challenge
//!   (`stale=true`, or the server's new nonce) starts the realm's session over. `qop` absent
//!   in the challenge gives the RFC 2069 response `H(HA1:nonce:HA2)` without `nc`/`cnonce`.
//! * **UAS/registrar** ([`Challenger`]): stateless nonces
//!   `base64url(timestamp ‖ salt ‖ HMAC-SHA256(secret, timestamp ‖ salt ‖ realm ‖ client IP))`
//!   (64 random bits of salt: no two challenges share a nonce), bound to the client address
//!   and expiring after `nonce_lifetime`; [`Challenger::verify`] checks an
//!   [`Authorization`] against a [`StoredCredential`] (HA1 values only — the password is
//!   hashed once at load and not kept), compares responses in constant time and rejects a
//!   `nc` that does not grow per nonce. Only successfully verified nonces are remembered (a
//!   bounded map, pruned on expiry), so a flood of challenges costs no memory.
//!
//! Contract: every parser here returns an error for bad input, never panics. Parameter names
//! and the scheme are case-insensitive, values keep their case except `algorithm`, `qop` and
//! `stale`, which are compared case-insensitively. `-sess` algorithms and `SHA-512-256` are
//! parsed and refused ([`SipError::DigestUnsupported`]); `qop=auth-int` is never chosen.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use sip::digest::{Authorization, ChallengeKind, Challenger, ClientAuth, Credentials, StoredCredential};
//!
//! // registrar side, at load: hash the agent's password, keep only the HA1 values
//! let stored = StoredCredential::from_password("agent7", "callbridge", "hunter2");
//! let mut registrar = Challenger::new("callbridge", *b"16+ random bytes", Duration::from_secs(300));
//! let (now, ip) = (SystemTime::now(), "127.0.0.1".parse().unwrap());
//!
//! // REGISTER without credentials → 401 with these WWW-Authenticate values
//! let challenges = registrar.challenge(now, ip, false);
//!
//! // softphone side
//! let mut uac = ClientAuth::new(Credentials { username: "agent7".into(), password: "hunter2".into() });
//! let values: Vec<&str> = challenges.iter().map(String::as_str).collect();
//! uac.handle_challenge(ChallengeKind::Www, &values)?;
//! let headers = uac.authorize("REGISTER", "sip:callbridge.example");
//! assert_eq!(headers[0].0, "Authorization");
//!
//! // registrar: parse, look the user up, verify
//! let auth = Authorization::parse(&headers[0].1)?;
//! assert_eq!(auth.username, stored.username);
//! let ok = registrar.verify(now, ip, "REGISTER", &auth, &stored)?;
//! assert_eq!((ok.username.as_str(), ok.nc), ("agent7", 1));
//! # Ok::<(), sip::SipError>(())
//! ```

use std::fmt::Write as _;

use md5::Md5;
use sha2::{Digest as _, Sha256};

use crate::error::SipError;

mod client;
mod parse;
mod server;
#[cfg(test)]
mod tests;

pub use self::client::{ClientAuth, Credentials, MAX_REALMS};
pub use self::parse::{Authorization, Challenge, ChallengeKind};
pub use self::server::{
    AuthFailure, Challenger, StoredCredential, Verified, DEFAULT_MAX_TRACKED_NONCES,
};

/// A digest algorithm token (RFC 7616 3.3; RFC 8760 2.1 registers the SIP uses).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (the default when the parameter is absent).
    Md5,
    /// `MD5-sess`: parsed, not supported.
    Md5Sess,
    /// `SHA-256` (RFC 8760).
    Sha256,
    /// `SHA-256-sess`: parsed, not supported.
    Sha256Sess,
    /// Any other token (e.g. `SHA-512-256`), as received: not supported.
    Other(String),
}

impl Algorithm {
    /// Parses an algorithm token, case-insensitively.
    pub fn parse(token: &str) -> Self {
        match token {
            t if t.eq_ignore_ascii_case("MD5") => Self::Md5,
            t if t.eq_ignore_ascii_case("MD5-sess") => Self::Md5Sess,
            t if t.eq_ignore_ascii_case("SHA-256") => Self::Sha256,
            t if t.eq_ignore_ascii_case("SHA-256-sess") => Self::Sha256Sess,
            t => Self::Other(t.to_string()),
        }
    }

    /// The wire token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Other(t) => t,
        }
    }

    /// Whether we can compute responses with it (`MD5`, `SHA-256`).
    pub fn is_supported(&self) -> bool {
        matches!(self, Self::Md5 | Self::Sha256)
    }

    /// Preference when several challenges are offered: higher is better, `None` if unsupported.
    fn rank(&self) -> Option<u8> {
        match self {
            Self::Sha256 => Some(2),
            Self::Md5 => Some(1),
            _ => None,
        }
    }

    fn hash(&self) -> Result<Hash, SipError> {
        match self {
            Self::Md5 => Ok(Hash::Md5),
            Self::Sha256 => Ok(Hash::Sha256),
            other => Err(SipError::DigestUnsupported(format!(
                "algorithm {}",
                other.as_str()
            ))),
        }
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The hash behind a supported algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hash {
    Md5,
    Sha256,
}

impl Hash {
    /// Lower-case hex of `H(parts joined by ':')`.
    fn hex(self, parts: &[&[u8]]) -> String {
        fn run<D: sha2::Digest>(mut d: D, parts: &[&[u8]]) -> String {
            for (i, p) in parts.iter().enumerate() {
                if i > 0 {
                    d.update(b":");
                }
                d.update(p);
            }
            let out = d.finalize();
            let mut s = String::with_capacity(out.len() * 2);
            for b in out.iter() {
                let _ = write!(s, "{b:02x}");
            }
            s
        }
        match self {
            Self::Md5 => run(Md5::new(), parts),
            Self::Sha256 => run(Sha256::new(), parts),
        }
    }
}

/// `HA1 = H(username:realm:password)` (RFC 7616 3.4.2), lower-case hex.
fn ha1(hash: Hash, username: &str, realm: &str, password: &str) -> String {
    hash.hex(&[username.as_bytes(), realm.as_bytes(), password.as_bytes()])
}

/// The `response` value (RFC 7616 3.4.1; RFC 2069 when `qop` is `None`). `qop_nc_cnonce` is
/// `(nc as 8 hex digits, cnonce)` for `qop=auth`.
fn response(
    hash: Hash,
    ha1: &str,
    nonce: &str,
    qop_nc_cnonce: Option<(&str, &str)>,
    method: &str,
    uri: &str,
) -> String {
    let ha2 = hash.hex(&[method.as_bytes(), uri.as_bytes()]);
    match qop_nc_cnonce {
        Some((nc, cnonce)) => hash.hex(&[
            ha1.as_bytes(),
            nonce.as_bytes(),
            nc.as_bytes(),
            cnonce.as_bytes(),
            b"auth",
            ha2.as_bytes(),
        ]),
        None => hash.hex(&[ha1.as_bytes(), nonce.as_bytes(), ha2.as_bytes()]),
    }
}
