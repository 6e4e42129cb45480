//! The UAC half: [`ClientAuth`], one per trunk.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::error::SipError;

use super::parse::{push_quoted, Challenge, ChallengeKind};
use super::{ha1, response, Algorithm, AuthFailure, Hash};

/// A trunk's digest credentials, as configured. Owned by the trunk's [`ClientAuth`].
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The authentication user name.
    pub username: String,
    /// The password (kept: a UAC must compute HA1 for whatever realm challenges it).
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"…")
            .finish()
    }
}

/// How many realms one [`ClientAuth`] remembers (a trunk has one or two: its proxy and its
/// registrar). When a new one comes, the least recently challenged is forgotten.
pub const MAX_REALMS: usize = 4;

/// One realm's session: the nonce and the last `nc` sent with it.
#[derive(Debug, Clone)]
struct Session {
    kind: ChallengeKind,
    realm: String,
    nonce: String,
    opaque: Option<String>,
    algorithm: Algorithm,
    hash: Hash,
    /// `qop=auth` in use (else RFC 2069).
    qop_auth: bool,
    /// HA1 for this realm, computed once per challenge.
    ha1: String,
    /// The last `nc` sent; 0 before the first request.
    nc: u32,
}

/// The UAC's digest state for one trunk: sessions per realm, driven by challenges and asked
/// for headers before each request. Sans-IO, single owner (the trunk's UA task).
#[derive(Debug)]
pub struct ClientAuth {
    credentials: Credentials,
    /// At most [`MAX_REALMS`], most recently challenged last.
    sessions: Vec<Session>,
    /// CSPRNG for `cnonce` (ChaCha, seeded from the OS in [`ClientAuth::new`]).
    rng: StdRng,
}

impl ClientAuth {
    /// A client with no session yet; `cnonce`s come from a ChaCha CSPRNG seeded by the OS.
    pub fn new(credentials: Credentials) -> Self {
        Self::with_rng(credentials, StdRng::from_entropy())
    }

    /// As [`ClientAuth::new`] with a given RNG (tests: a seeded one, for fixed `cnonce`s).
    pub fn with_rng(credentials: Credentials, rng: StdRng) -> Self {
        Self {
            credentials,
            sessions: Vec::new(),
            rng,
        }
    }

    /// Takes the challenges of a 401 (`kind` [`ChallengeKind::Www`]) or 407
    /// ([`ChallengeKind::Proxy`]): for each realm, the answerable challenge with the best
    /// algorithm (SHA-256, then MD5) replaces that realm's session, so `nc` starts over at 1.
    ///
    /// # Errors
    /// * [`SipError::AuthRejected`] with [`AuthFailure::WrongResponse`] if a realm challenges
    ///   again, without `stale=true`, the very nonce we already answered: the credentials are
    ///   wrong and retrying would loop. (The UA should also retry a request at most once per
    ///   challenge that is not stale.)
    /// * [`SipError::DigestUnsupported`] if no challenge is answerable (all `-sess`,
    ///   `SHA-512-256`, `auth-int` only, …); [`SipError::DigestMalformed`] if none parses.
    ///   Unparseable or unanswerable values beside an answerable one are skipped.
    pub fn handle_challenge(
        &mut self,
        kind: ChallengeKind,
        values: &[&str],
    ) -> Result<(), SipError> {
        let mut first_err = None;
        let mut best: Vec<Challenge> = Vec::new();
        for v in values {
            let c = match Challenge::parse(v) {
                Ok(c) if c.is_answerable() => c,
                Ok(c) => {
                    let what = if c.algorithm.is_supported() {
                        format!("qop {:?}", c.qop.join(","))
                    } else {
                        format!("algorithm {}", c.algorithm)
                    };
                    first_err.get_or_insert(SipError::DigestUnsupported(what));
                    continue;
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                    continue;
                }
            };
            match best.iter_mut().find(|b| b.realm == c.realm) {
                Some(b) if c.algorithm.rank() > b.algorithm.rank() => *b = c,
                Some(_) => {}
                None => best.push(c),
            }
        }
        if best.is_empty() {
            return Err(first_err.unwrap_or(SipError::DigestMalformed {
                header: "challenge",
                reason: "no challenge",
            }));
        }
        for c in best {
            let old = self
                .sessions
                .iter()
                .position(|s| s.kind == kind && s.realm == c.realm);
            if let Some(i) = old {
                let s = self.sessions.remove(i);
                if !c.stale && s.nc > 0 && s.nonce == c.nonce {
                    return Err(SipError::AuthRejected(AuthFailure::WrongResponse));
                }
            }
            let hash = c.algorithm.hash()?;
            if self.sessions.len() >= MAX_REALMS {
                self.sessions.remove(0);
            }
            let ha1 = ha1(
                hash,
                &self.credentials.username,
                &c.realm,
                &self.credentials.password,
            );
            self.sessions.push(Session {
                kind,
                qop_auth: c.offers_auth(),
                realm: c.realm,
                nonce: c.nonce,
                opaque: c.opaque,
                algorithm: c.algorithm,
                hash,
                ha1,
                nc: 0,
            });
        }
        Ok(())
    }

    /// Whether any realm has a session (so requests go out with credentials).
    pub fn has_session(&self) -> bool {
        !self.sessions.is_empty()
    }

    /// Forgets every session (e.g. after the trunk's credentials change).
    pub fn reset(&mut self) {
        self.sessions.clear();
    }

    /// The headers to put on the next request (`method`, Request-URI `uri`): one
    /// `(header name, value)` per realm with a session, each with its `nc` incremented and a
    /// fresh `cnonce`. Empty before the first challenge. A CANCEL must carry the same headers
    /// as the request it cancels, and an ACK for a non-2xx none: the UA copies or skips.
    pub fn authorize(&mut self, method: &str, uri: &str) -> Vec<(&'static str, String)> {
        let mut out = Vec::with_capacity(self.sessions.len());
        for s in &mut self.sessions {
            s.nc = s.nc.wrapping_add(1).max(1);
            let mut cnonce_bytes = [0u8; 16];
            self.rng.fill_bytes(&mut cnonce_bytes);
            let cnonce = URL_SAFE_NO_PAD.encode(cnonce_bytes);
            out.push((
                s.kind.authorization_header(),
                authorization_value(s, &self.credentials.username, method, uri, &cnonce),
            ));
        }
        out
    }
}

/// Formats the credentials for one session (its `nc` already advanced).
fn authorization_value(
    s: &Session,
    username: &str,
    method: &str,
    uri: &str,
    cnonce: &str,
) -> String {
    let nc = format!("{:08x}", s.nc);
    let qop = s.qop_auth.then_some((nc.as_str(), cnonce));
    let resp = response(s.hash, &s.ha1, &s.nonce, qop, method, uri);
    let mut v = String::with_capacity(256);
    v.push_str("Digest username=");
    push_quoted(&mut v, username);
    v.push_str(", realm=");
    push_quoted(&mut v, &s.realm);
    v.push_str(", nonce=");
    push_quoted(&mut v, &s.nonce);
    v.push_str(", uri=");
    push_quoted(&mut v, uri);
    v.push_str(", response=");
    push_quoted(&mut v, &resp);
    v.push_str(", algorithm=");
    v.push_str(s.algorithm.as_str());
    if s.qop_auth {
        v.push_str(", cnonce=");
        push_quoted(&mut v, cnonce);
    }
    if let Some(o) = &s.opaque {
        v.push_str(", opaque=");
        push_quoted(&mut v, o);
    }
    if s.qop_auth {
        v.push_str(", qop=auth, nc=");
        v.push_str(&nc);
    }
    v
}
