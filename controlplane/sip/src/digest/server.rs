//! The UAS/registrar half: [`Challenger`] and [`StoredCredential`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::error::SipError;

use super::parse::{push_quoted, Authorization};
use super::{ha1, response, Algorithm, Hash};

/// Why credentials were refused ([`SipError::AuthRejected`]). Data, not text: the UA maps it
/// to a reply (a fresh 401/407, with `stale=true` when [`AuthFailure::is_stale`]) and a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthFailure {
    /// The nonce is ours and for this client but has expired, or it is too old to still be
    /// tracked: re-challenge with `stale=true`.
    StaleNonce,
    /// The nonce was not issued by us for this client address (forged, or another client's).
    BadNonce,
    /// The `realm` is not ours.
    WrongRealm,
    /// The stored credential is for another user or realm than the one presented.
    UnknownUser,
    /// The client did not use `qop=auth` (we require it: without `nc` a nonce can be replayed).
    QopRequired,
    /// The `algorithm` is one we did not offer.
    UnsupportedAlgorithm,
    /// The `response` is wrong: wrong password (or, on the UAC, the same nonce challenged again).
    WrongResponse,
    /// `nc` is not greater than one already accepted with this nonce: a replay (or reordering);
    /// re-challenge with `stale=true`.
    ReplayedNonceCount,
}

impl AuthFailure {
    /// Whether the reply should be a new challenge with `stale=true`: the nonce must be renewed
    /// and the password was right or not checked. A replayed `nc` counts: its response was
    /// correct, so the sender knows the password (a legitimate client whose requests were
    /// reordered then retries with a fresh nonce instead of taking it for a wrong password).
    pub fn is_stale(self) -> bool {
        matches!(self, Self::StaleNonce | Self::ReplayedNonceCount)
    }
}

impl std::fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::StaleNonce => "stale nonce",
            Self::BadNonce => "nonce not issued to this client",
            Self::WrongRealm => "wrong realm",
            Self::UnknownUser => "unknown user",
            Self::QopRequired => "qop=auth required",
            Self::UnsupportedAlgorithm => "unsupported algorithm",
            Self::WrongResponse => "wrong response",
            Self::ReplayedNonceCount => "replayed nonce count",
        })
    }
}

/// A user's credentials as the registrar stores them: HA1 per algorithm, never the password.
/// Built once at load with [`StoredCredential::from_password`] (or from HA1 values kept in a
/// database).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredCredential {
    /// The user name clients authenticate as.
    pub username: String,
    /// The realm the HA1 values were computed for (= [`Challenger`]'s realm).
    pub realm: String,
    /// `MD5(username:realm:password)`, lower-case hex.
    pub ha1_md5: String,
    /// `SHA-256(username:realm:password)`, lower-case hex.
    pub ha1_sha256: String,
}

impl StoredCredential {
    /// Hashes a plaintext password; the caller drops the password afterwards.
    pub fn from_password(username: &str, realm: &str, password: &str) -> Self {
        Self {
            username: username.to_string(),
            realm: realm.to_string(),
            ha1_md5: ha1(Hash::Md5, username, realm, password),
            ha1_sha256: ha1(Hash::Sha256, username, realm, password),
        }
    }

    pub(super) fn ha1(&self, hash: Hash) -> &str {
        match hash {
            Hash::Md5 => &self.ha1_md5,
            Hash::Sha256 => &self.ha1_sha256,
        }
    }
}

impl std::fmt::Debug for StoredCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredCredential")
            .field("username", &self.username)
            .field("realm", &self.realm)
            .finish_non_exhaustive()
    }
}

/// What [`Challenger::verify`] accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The authenticated user.
    pub username: String,
    /// The algorithm the client used.
    pub algorithm: Algorithm,
    /// The accepted `nc`.
    pub nc: u32,
}

/// Default bound of [`Challenger`]'s map of nonces in use.
pub const DEFAULT_MAX_TRACKED_NONCES: usize = 16_384;

/// Length of the HMAC-SHA256 tag in a nonce.
const TAG_LEN: usize = 32;
/// A nonce issued up to this far in the future (clock steps) is still accepted.
const MAX_CLOCK_SKEW_SECS: u64 = 5;

/// The registrar's (or any UAS's) digest side: issues stateless nonces and verifies
/// credentials. Single owner (the UA task); memory is bounded by `max_tracked` nonces.
pub struct Challenger {
    realm: String,
    secret: Vec<u8>,
    nonce_lifetime: Duration,
    max_tracked: usize,
    /// Nonces with at least one verified request → (highest `nc` accepted, issue time).
    seen: HashMap<String, (u32, u64)>,
    /// Nonces issued at or before this time (seconds) that are not in `seen` may have been
    /// evicted, so their `nc` history is lost: they are treated as stale.
    evicted_up_to: Option<u64>,
}

impl std::fmt::Debug for Challenger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Challenger")
            .field("realm", &self.realm)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("tracked", &self.seen.len())
            .finish_non_exhaustive()
    }
}

fn unix_secs(now: SystemTime) -> u64 {
    now.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Challenger {
    /// A challenger for `realm`. `secret` keys the nonce HMAC: keep it across restarts to keep
    /// outstanding nonces valid, and at least 16 random bytes.
    pub fn new(
        realm: impl Into<String>,
        secret: impl Into<Vec<u8>>,
        nonce_lifetime: Duration,
    ) -> Self {
        Self {
            realm: realm.into(),
            secret: secret.into(),
            nonce_lifetime,
            max_tracked: DEFAULT_MAX_TRACKED_NONCES,
            seen: HashMap::new(),
            evicted_up_to: None,
        }
    }

    /// Sets how many nonces in use are remembered for `nc` replay checks (at least 1).
    pub fn with_max_tracked(mut self, max_tracked: usize) -> Self {
        self.max_tracked = max_tracked.max(1);
        self
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// How many nonces are currently tracked (≤ the bound).
    pub fn tracked_nonces(&self) -> usize {
        self.seen.len()
    }

    fn tag(&self, ts: u64, salt: u64, client_ip: IpAddr) -> Hmac<Sha256> {
        // An HMAC accepts keys of any length, so `new_from_slice` cannot fail.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            unreachable!("HMAC takes any key length")
        };
        mac.update(&ts.to_be_bytes());
        mac.update(&salt.to_be_bytes());
        mac.update(self.realm.as_bytes());
        match client_ip.to_canonical() {
            IpAddr::V4(a) => mac.update(&a.octets()),
            IpAddr::V6(a) => mac.update(&a.octets()),
        }
        mac
    }

    /// A fresh nonce for `client_ip`, issued at `now`: `ts ‖ salt ‖ HMAC(ts ‖ salt ‖ realm ‖
    /// ip)` with 64 random bits of salt, so two clients behind one address challenged in the
    /// same second (or one phone restarting) never share a nonce and its `nc` history.
    pub fn nonce(&self, now: SystemTime, client_ip: IpAddr) -> String {
        let ts = unix_secs(now);
        let salt: u64 = rand::random();
        let tag = self.tag(ts, salt, client_ip).finalize().into_bytes();
        let mut raw = [0u8; 16 + TAG_LEN];
        raw[..8].copy_from_slice(&ts.to_be_bytes());
        raw[8..16].copy_from_slice(&salt.to_be_bytes());
        raw[16..].copy_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The `WWW-Authenticate` (or `Proxy-Authenticate`) values for a 401/407: one SHA-256 and
    /// one MD5 challenge sharing a fresh nonce, SHA-256 first (RFC 8760 2.4), each with
    /// `qop="auth"`; `stale=TRUE` when answering [`AuthFailure::StaleNonce`].
    pub fn challenge(&self, now: SystemTime, client_ip: IpAddr, stale: bool) -> Vec<String> {
        self.challenge_with(now, client_ip, stale, &[Algorithm::Sha256, Algorithm::Md5])
    }

    /// [`Challenger::challenge`] offering `algorithms`, in this order (for clients that take
    /// the first challenge whatever its algorithm, e.g. SIPp 3.6.1, which knows only MD5).
    pub fn challenge_with(
        &self,
        now: SystemTime,
        client_ip: IpAddr,
        stale: bool,
        algorithms: &[Algorithm],
    ) -> Vec<String> {
        let nonce = self.nonce(now, client_ip);
        algorithms
            .iter()
            .map(|alg| {
                let mut v = String::with_capacity(160);
                v.push_str("Digest realm=");
                push_quoted(&mut v, &self.realm);
                v.push_str(", nonce=");
                push_quoted(&mut v, &nonce);
                v.push_str(", algorithm=");
                v.push_str(alg.as_str());
                v.push_str(", qop=\"auth\"");
                if stale {
                    v.push_str(", stale=TRUE");
                }
                v
            })
            .collect()
    }

    /// Decodes and authenticates a nonce: its issue time if it is ours for `client_ip`.
    fn check_nonce(&self, nonce: &str, client_ip: IpAddr) -> Option<u64> {
        let raw = URL_SAFE_NO_PAD.decode(nonce).ok()?;
        if raw.len() != 16 + TAG_LEN {
            return None;
        }
        let ts = u64::from_be_bytes(raw[..8].try_into().ok()?);
        let salt = u64::from_be_bytes(raw[8..16].try_into().ok()?);
        self.tag(ts, salt, client_ip)
            .verify_slice(&raw[16..])
            .ok()?;
        Some(ts)
    }

    /// Checks a request's credentials (`method` as on the request line; `auth` parsed from its
    /// `Authorization`/`Proxy-Authorization`) against the stored credential of the user it
    /// names, received from `client_ip` at `now`. On success the nonce's `nc` is recorded.
    ///
    /// The UA is expected to look `stored` up by `auth.username` (none → treat as
    /// [`AuthFailure::UnknownUser`] without calling this) and may compare `auth.uri` with
    /// the Request-URI.
    ///
    /// # Errors
    /// [`SipError::AuthRejected`] with the [`AuthFailure`]; on
    /// [`AuthFailure::StaleNonce`] answer with `challenge(now, ip, true)`.
    pub fn verify(
        &mut self,
        now: SystemTime,
        client_ip: IpAddr,
        method: &str,
        auth: &Authorization,
        stored: &StoredCredential,
    ) -> Result<Verified, SipError> {
        let fail = |f| Err(SipError::AuthRejected(f));
        if auth.realm != self.realm {
            return fail(AuthFailure::WrongRealm);
        }
        if stored.username != auth.username || stored.realm != self.realm {
            return fail(AuthFailure::UnknownUser);
        }
        let Ok(hash) = auth.algorithm.hash() else {
            return fail(AuthFailure::UnsupportedAlgorithm);
        };
        let Some(issued) = self.check_nonce(&auth.nonce, client_ip) else {
            return fail(AuthFailure::BadNonce);
        };
        let now_s = unix_secs(now);
        if issued > now_s.saturating_add(MAX_CLOCK_SKEW_SECS) {
            return fail(AuthFailure::BadNonce);
        }
        let expired = now_s >= issued.saturating_add(self.nonce_lifetime.as_secs());
        let forgotten =
            !self.seen.contains_key(&auth.nonce) && self.evicted_up_to.is_some_and(|e| issued <= e);
        if expired || forgotten {
            return fail(AuthFailure::StaleNonce);
        }
        let (Some(qop), Some(nc), Some(cnonce)) = (&auth.qop, auth.nc, &auth.cnonce) else {
            return fail(AuthFailure::QopRequired);
        };
        if qop != "auth" {
            return fail(AuthFailure::QopRequired);
        }
        let nc_hex = format!("{nc:08x}");
        let expected = response(
            hash,
            stored.ha1(hash),
            &auth.nonce,
            Some((&nc_hex, cnonce)),
            method,
            &auth.uri,
        );
        let got = auth.response.to_ascii_lowercase();
        if !bool::from(expected.as_bytes().ct_eq(got.as_bytes())) {
            return fail(AuthFailure::WrongResponse);
        }
        match self.seen.get_mut(&auth.nonce) {
            Some((last, _)) if nc <= *last => return fail(AuthFailure::ReplayedNonceCount),
            Some((last, _)) => *last = nc,
            None => {
                self.make_room(now_s);
                self.seen.insert(auth.nonce.clone(), (nc, issued));
            }
        }
        Ok(Verified {
            username: auth.username.clone(),
            algorithm: auth.algorithm.clone(),
            nc,
        })
    }

    /// Drops expired nonces; if the map is still full, evicts the oldest ones and remembers
    /// their issue time so that they come back as stale rather than replayable.
    fn make_room(&mut self, now_s: u64) {
        if self.seen.len() < self.max_tracked {
            return;
        }
        let life = self.nonce_lifetime.as_secs();
        self.seen
            .retain(|_, (_, issued)| now_s < issued.saturating_add(life));
        while self.seen.len() >= self.max_tracked {
            let Some((oldest, issued)) = self
                .seen
                .iter()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(k, (_, t))| (k.clone(), *t))
            else {
                break;
            };
            self.seen.remove(&oldest);
            self.evicted_up_to = Some(self.evicted_up_to.map_or(issued, |e| e.max(issued)));
        }
    }

    /// Forgets nonces that have expired at `now` (call now and then, e.g. from the UA's timer;
    /// [`Challenger::verify`] also prunes when the map is full).
    pub fn prune(&mut self, now: SystemTime) {
        let now_s = unix_secs(now);
        let life = self.nonce_lifetime.as_secs();
        self.seen
            .retain(|_, (_, issued)| now_s < issued.saturating_add(life));
    }
}
