//! A registrar and its location service (RFC 3261 10.3), sans-IO: agents' softphones REGISTER
//! here with per-agent digest credentials; the application asks for an agent's current
//! [`Binding`]s and calls each one on its *flow*.
//!
//! [`Registrar::handle_register`] takes the time (`now` for expiry, `wall_now` for nonces and
//! the `Date` header), the observed source of the request ([`Peer`]: transport and address, i.e.
//! the connection for TCP/TLS) and the request, and returns the response. It does no I/O; the UA
//! core sends the response through the REGISTER's server transaction.
//!
//! Steps, in RFC 3261 10.3 order (step 2, `Require`, and the ACL of source networks are the
//! UA's, before this is called):
//! 1. Request-URI: any host is ours (one node, one domain; the AOR is the user name).
//! 3. Authentication ([`Challenger`], nonces bound to the client IP and expiring): no usable
//!    `Authorization`, an unknown user name or failed credentials → `401` with a SHA-256 and an
//!    MD5 challenge (`stale=TRUE` for an expired nonce or a replayed `nc`); a malformed
//!    `Authorization` for our realm, or one whose `uri` is not the Request-URI → `400`.
//! 4. and 5. The To AOR `sip:USER@…`: no user part → `404`; a user other than the
//!    authenticated one → `403` if it is configured, `404` if not (only authenticated agents
//!    learn which users exist).
//! 6. Contacts: `*` only alone and with `Expires: 0` (else `400`); a malformed Contact, or one
//!    that is not a `sip:`/`sips:` URI without headers (it becomes a Request-URI) → `400`.
//!    Per contact, the expiry is its `expires` parameter, else the `Expires` header, else
//!    [`RegistrarConfig::default_expires`] (a malformed value counts as absent); a non-zero
//!    value below [`RegistrarConfig::min_expires`] fails the whole request with
//!    `423 Interval Too Brief` and `Min-Expires`; values above `max_expires` (over TCP/TLS:
//!    `max_stream_expires`, so the client refreshes before its idle connection is closed) are
//!    clamped.
//! 7. Per binding: a binding with the request's Call-ID and a CSeq not lower than the
//!    request's aborts the whole request with `500` (10.3 step 7 "the request fails"; a
//!    retransmission never gets here, the server transaction absorbs it). Updates are atomic:
//!    all of them or none. Expiry 0 removes the binding.
//! 8. `200 OK` lists every current binding (`Contact: <uri>;…;expires=N`) and `Date`.
//!
//! Binding identity: the `+sip.instance` Contact parameter when present (RFC 5626/5627: a
//! device that changed address is the same device), else the Contact URI compared as RFC 3261
//! 19.1.4 does for the parts that matter here (scheme and host case-insensitive, user and port
//! exact, the `transport`, `user`, `ttl`, `method` and `maddr` parameters, others ignored).
//! Re-registering a binding from another source moves it: its flow is replaced, never
//! duplicated.
//!
//! NAT (RFC 3581, RFC 5626 in spirit): every binding keeps the [`Peer`] its REGISTER came from
//! ([`Binding::flow`]); requests to the binding go there (for TCP/TLS, on that connection),
//! with the Contact URI as their Request-URI. A TCP/TLS flow that fails (the UA could not send
//! on it) takes its bindings with it ([`Registrar::remove_flow`], RFC 5626 4.4.1); the softphone
//! re-registers on a new connection.
//!
//! Bounds: state exists only for configured users (an unknown user never creates any, and the
//! challenger remembers only verified nonces). Each user has at most
//! [`RegistrarConfig::max_bindings_per_user`] bindings: a new one beyond that evicts the user's
//! least recently registered binding (a softphone that restarts on a new port without
//! unregistering must not lock its agent out until the old binding expires); a single REGISTER
//! with more contacts than that gets `403`. All users together hold at most
//! [`RegistrarConfig::max_bindings`]; a new binding beyond that (after pruning expired ones)
//! gets `503` with `Retry-After`.
//!
//! ```
//! use std::time::{Duration, Instant, SystemTime};
//! use sip::digest::{ChallengeKind, ClientAuth, Credentials, StoredCredential};
//! use sip::msg::{parse, HasHeaders, Message};
//! use sip::registrar::{Registrar, RegistrarConfig};
//! use sip::Peer;
//!
//! let users = vec![StoredCredential::from_password("agent7", "callbridge", "hunter2")];
//! let mut reg = Registrar::new(RegistrarConfig::new("callbridge", *b"16+ random bytes", users))?;
//! let (now, wall) = (Instant::now(), SystemTime::now());
//! let phone = Peer::udp("192.0.2.7:40123".parse().unwrap());
//! let register = |auth: &str| {
//!     let text = format!("REGISTER sip:callbridge SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK1;rport\r\n\
//!         From: <sip:agent7@callbridge>;tag=1\r\nTo: <sip:agent7@callbridge>\r\nCall-ID: r1\r\n\
//!         CSeq: {} REGISTER\r\nContact: <sip:agent7@10.0.0.7:5060>\r\n{auth}Content-Length: 0\r\n\r\n",
//!         if auth.is_empty() { 1 } else { 2 });
//!     match parse(text.as_bytes()).unwrap() { Message::Request(r) => r, _ => unreachable!() }
//! };
//! let challenge = reg.handle_register(now, wall, phone, &register(""));
//! assert_eq!(challenge.status, 401);
//! let mut uac = ClientAuth::new(Credentials { username: "agent7".into(), password: "hunter2".into() });
//! uac.handle_challenge(ChallengeKind::Www, &challenge.headers.get_all("WWW-Authenticate").collect::<Vec<_>>())?;
//! let (name, value) = uac.authorize("REGISTER", "sip:callbridge").remove(0);
//! let ok = reg.handle_register(now, wall, phone, &register(&format!("{name}: {value}\r\n")));
//! assert_eq!(ok.status, 200);
//! let b = &reg.bindings("agent7", now)[0];
//! assert_eq!((b.contact.as_str(), b.flow), ("sip:agent7@10.0.0.7:5060", phone));
//! assert_eq!(b.expires_at, now + Duration::from_secs(3600));
//! # Ok::<(), sip::SipError>(())
//! ```

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use crate::digest::{Algorithm, Authorization, Challenger, StoredCredential};
use crate::error::SipError;
use crate::msg::{self, HasHeaders, NameAddr, Request, Response};
use crate::peer::Peer;

mod headers;
#[cfg(test)]
mod tests;

use self::headers::{aor_user, http_date, is_sip_uri, uri_key};

/// The registrar's settings. Read-only once the [`Registrar`] is built.
#[derive(Clone)]
pub struct RegistrarConfig {
    /// The digest realm (also the realm of every [`StoredCredential`]).
    pub realm: String,
    /// Key of the nonce HMAC: at least 16 random bytes; keep it across restarts to keep
    /// outstanding nonces valid.
    pub secret: Vec<u8>,
    /// The users allowed to register, hashed at load ([`StoredCredential::from_password`]).
    pub users: Vec<StoredCredential>,
    /// Shortest non-zero expiry accepted, seconds (default 60; shorter → `423`).
    pub min_expires: u32,
    /// Longest expiry granted, seconds (default 3600; longer requests are clamped).
    pub max_expires: u32,
    /// Expiry when the request names none, seconds (default 3600, clamped to the bounds).
    pub default_expires: u32,
    /// Longest expiry granted to a binding over TCP or TLS, seconds: its connection must stay
    /// open until the client refreshes, and an idle connection a client opened is closed after
    /// [`crate::StreamLimits::idle_timeout`]. `None` (the default): the endpoint sets it to that
    /// timeout ([`crate::Endpoint::bind`]); a standalone registrar uses `max_expires`.
    pub max_stream_expires: Option<u32>,
    /// Most bindings per user (default 5; a new one beyond evicts the least recently
    /// registered).
    pub max_bindings_per_user: usize,
    /// Most bindings of all users together (default 10 000; a new one beyond gets `503`).
    pub max_bindings: usize,
    /// How long a nonce is valid (default 300 s).
    pub nonce_lifetime: Duration,
    /// The digest algorithms challenged with, in this order (default SHA-256 then MD5, RFC
    /// 8760 2.4). Clients that answer the first challenge whatever its algorithm and know only
    /// MD5 (SIPp 3.6.1, some older softphones) need `[Md5]` or MD5 first.
    pub algorithms: Vec<Algorithm>,
}

impl std::fmt::Debug for RegistrarConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistrarConfig")
            .field("realm", &self.realm)
            .field("users", &self.users)
            .field("min_expires", &self.min_expires)
            .field("max_expires", &self.max_expires)
            .field("default_expires", &self.default_expires)
            .field("max_stream_expires", &self.max_stream_expires)
            .field("max_bindings_per_user", &self.max_bindings_per_user)
            .field("max_bindings", &self.max_bindings)
            .field("nonce_lifetime", &self.nonce_lifetime)
            .field("algorithms", &self.algorithms)
            .finish_non_exhaustive()
    }
}

impl RegistrarConfig {
    /// The defaults for `realm`, `secret` and `users`.
    pub fn new(
        realm: impl Into<String>,
        secret: impl Into<Vec<u8>>,
        users: Vec<StoredCredential>,
    ) -> Self {
        Self {
            realm: realm.into(),
            secret: secret.into(),
            users,
            min_expires: 60,
            max_expires: 3600,
            default_expires: 3600,
            max_stream_expires: None,
            max_bindings_per_user: 5,
            max_bindings: 10_000,
            nonce_lifetime: Duration::from_secs(300),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
        }
    }
}

/// One registered contact of a user, as the application sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI (the Request-URI of requests to the device).
    pub contact: String,
    /// Where requests to the device go: the transport and source address its REGISTER came
    /// from (for TCP/TLS, that connection). Changes when the device re-registers from
    /// elsewhere.
    pub flow: Peer,
    /// When the binding expires unless refreshed.
    pub expires_at: Instant,
    /// When the REGISTER that last created or refreshed the binding arrived.
    pub registered_at: Instant,
    /// The `User-Agent` of that REGISTER.
    pub user_agent: Option<String>,
    /// The `+sip.instance` Contact parameter (RFC 5626), which then identifies the binding.
    pub instance: Option<String>,
}

/// Counts of REGISTER outcomes since the registrar was built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistrarStats {
    /// Answered `200`.
    pub ok: u64,
    /// Answered `401` (no, unknown or failed credentials).
    pub challenged: u64,
    /// Answered `403` or `404` after authentication.
    pub forbidden: u64,
    /// Answered `400`, `423`, `500` or `503`.
    pub rejected: u64,
    /// Bindings evicted to make room (per-user bound).
    pub evicted: u64,
}

/// A binding and what the registrar keeps to judge later REGISTERs for it.
#[derive(Debug, Clone)]
struct Entry {
    /// Identity: `+sip.instance`, else the normalised Contact URI.
    key: String,
    binding: Binding,
    /// The Contact header parameters other than `expires`, echoed in the 200.
    params: String,
    call_id: String,
    cseq: u32,
}

#[derive(Debug)]
struct User {
    credential: StoredCredential,
    entries: Vec<Entry>,
}

/// The location service. Single owner (the UA core, behind a mutex the application's queries
/// share); memory is bounded by the configured users and [`RegistrarConfig::max_bindings`].
#[derive(Debug)]
pub struct Registrar {
    cfg: RegistrarConfig,
    challenger: Challenger,
    /// Configured users by name; the only place bindings live.
    users: HashMap<String, User>,
    /// Bindings of all users (expired ones included until pruned).
    total: usize,
    generation: u64,
    last_prune: Option<Instant>,
    stats: RegistrarStats,
}

/// How often [`Registrar::handle_register`] prunes every user's expired bindings.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

/// What the Contacts of a request ask for (step 6).
enum Contacts {
    /// `Contact: *` with `Expires: 0`: remove every binding of the user.
    RemoveAll,
    /// Each Contact in order (none: a query).
    List(Vec<Wanted>),
}

/// What one Contact of a request asks for.
struct Wanted {
    key: String,
    uri: String,
    params: String,
    instance: Option<String>,
    expires: u32,
}

impl Registrar {
    /// Builds a registrar.
    ///
    /// # Errors
    /// [`SipError::InvalidConfig`] when the secret is shorter than 16 bytes, a credential is
    /// for another realm, a user name repeats, or the expiry bounds are inconsistent
    /// (`min_expires` ≤ `max_expires`, both non-zero, and at least one binding per user).
    pub fn new(cfg: RegistrarConfig) -> Result<Self, SipError> {
        let bad = |why: String| Err(SipError::InvalidConfig(format!("registrar: {why}")));
        if cfg.secret.len() < 16 {
            return bad("the nonce secret must be at least 16 bytes".into());
        }
        let max = cfg
            .max_stream_expires
            .map_or(cfg.max_expires, |m| m.min(cfg.max_expires));
        if cfg.min_expires == 0 || cfg.min_expires > max {
            return bad(format!(
                "min_expires ({}) must be 1..=max_expires ({}) and max_stream_expires ({:?})",
                cfg.min_expires, cfg.max_expires, cfg.max_stream_expires
            ));
        }
        if cfg.algorithms.is_empty() || !cfg.algorithms.iter().all(Algorithm::is_supported) {
            return bad(format!(
                "algorithms {:?} must be MD5 and/or SHA-256",
                cfg.algorithms
            ));
        }
        if cfg.max_bindings_per_user == 0 || cfg.max_bindings == 0 {
            return bad("max_bindings_per_user and max_bindings must be at least 1".into());
        }
        let mut users = HashMap::with_capacity(cfg.users.len());
        for c in &cfg.users {
            if c.realm != cfg.realm {
                return bad(format!(
                    "user {:?} was hashed for realm {:?}, not {:?}",
                    c.username, c.realm, cfg.realm
                ));
            }
            let user = User {
                credential: c.clone(),
                entries: Vec::new(),
            };
            if users.insert(c.username.clone(), user).is_some() {
                return bad(format!("user {:?} is configured twice", c.username));
            }
        }
        let challenger = Challenger::new(cfg.realm.clone(), cfg.secret.clone(), cfg.nonce_lifetime);
        Ok(Self {
            cfg,
            challenger,
            users,
            total: 0,
            generation: 0,
            last_prune: None,
            stats: RegistrarStats::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrarConfig {
        &self.cfg
    }

    /// Counts of outcomes so far.
    pub fn stats(&self) -> RegistrarStats {
        self.stats
    }

    /// Grows whenever a binding is added, moved (new flow or Contact URI) or removed
    /// (unregistered, evicted, or found expired by [`Registrar::prune`]); a plain refresh does
    /// not change it. Cheap: poll it to notice changes.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// `user`'s unexpired bindings at `now`, least recently registered first. Empty for
    /// unknown users.
    pub fn bindings(&self, user: &str, now: Instant) -> Vec<Binding> {
        let Some(u) = self.users.get(user) else {
            return Vec::new();
        };
        let mut out: Vec<Binding> = u
            .entries
            .iter()
            .filter(|e| e.binding.expires_at > now)
            .map(|e| e.binding.clone())
            .collect();
        out.sort_by_key(|b| b.registered_at);
        out
    }

    /// How many bindings are held (expired ones not yet pruned included).
    pub fn binding_count(&self) -> usize {
        self.total
    }

    /// Forgets bindings and nonces that have expired.
    pub fn prune(&mut self, now: Instant, wall_now: SystemTime) {
        self.last_prune = Some(now);
        self.challenger.prune(wall_now);
        self.prune_bindings(now);
    }

    fn prune_bindings(&mut self, now: Instant) {
        let mut removed = 0;
        for u in self.users.values_mut() {
            let before = u.entries.len();
            u.entries.retain(|e| e.binding.expires_at > now);
            removed += before - u.entries.len();
        }
        if removed > 0 {
            self.total -= removed;
            self.generation += 1;
        }
    }

    /// Removes every binding whose flow is `flow`, a TCP or TLS connection that failed (it
    /// closed, and could not be reopened towards the client's ephemeral port), as RFC 5626 4.4.1
    /// asks; returns how many. UDP flows are never removed here (a UDP send failure is ours,
    /// not the flow's).
    pub fn remove_flow(&mut self, flow: Peer) -> usize {
        if !flow.transport.is_reliable() {
            return 0;
        }
        let mut removed = 0;
        for u in self.users.values_mut() {
            let before = u.entries.len();
            u.entries.retain(|e| e.binding.flow != flow);
            removed += before - u.entries.len();
        }
        if removed > 0 {
            self.total -= removed;
            self.generation += 1;
        }
        removed
    }

    /// Answers a REGISTER received from `source` (see the module docs for the steps).
    pub fn handle_register(
        &mut self,
        now: Instant,
        wall_now: SystemTime,
        source: Peer,
        req: &Request,
    ) -> Response {
        if self
            .last_prune
            .is_none_or(|t| now.saturating_duration_since(t) >= PRUNE_EVERY)
        {
            self.prune(now, wall_now);
        }
        let resp = self.register(now, wall_now, source, req);
        match resp.status {
            200 => self.stats.ok += 1,
            401 => self.stats.challenged += 1,
            403 | 404 => self.stats.forbidden += 1,
            _ => self.stats.rejected += 1,
        }
        resp
    }

    fn register(
        &mut self,
        now: Instant,
        wall_now: SystemTime,
        source: Peer,
        req: &Request,
    ) -> Response {
        // 3. authentication
        let user = match self.authenticate(wall_now, source.addr.ip(), req) {
            Ok(user) => user,
            Err(resp) => return resp,
        };
        // 4. and 5. the address-of-record
        let Some(aor) = aor_user(req) else {
            return reply(req, 404, None);
        };
        if aor != user {
            let status = if self.users.contains_key(&aor) {
                403
            } else {
                404
            };
            return reply(req, status, None);
        }
        // 6. the Contacts
        let contacts = match self.wanted(req, source) {
            Ok(c) => c,
            Err(resp) => return *resp,
        };
        // 7. the bindings, all or nothing
        match self.apply(now, source, req, &user, contacts) {
            Ok(()) => {}
            Err(resp) => return *resp,
        }
        // 8. the current bindings
        let mut r = reply(req, 200, None);
        if let Some(u) = self.users.get(&user) {
            for e in u.entries.iter().filter(|e| e.binding.expires_at > now) {
                let left = e.binding.expires_at.saturating_duration_since(now);
                // round up: a binding with 0.4 s left is still there
                let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
                r.headers.push(
                    "Contact",
                    format!("<{}>{};expires={secs}", e.binding.contact, e.params),
                );
            }
        }
        r.headers.push("Date", http_date(wall_now));
        r
    }

    /// The authenticated user name, or the response refusing the request.
    fn authenticate(
        &mut self,
        wall_now: SystemTime,
        ip: IpAddr,
        req: &Request,
    ) -> Result<String, Response> {
        let mut ours = None;
        for value in req.headers.get_all("Authorization") {
            match Authorization::parse(value) {
                Ok(a) if a.realm == self.cfg.realm => {
                    ours = Some(a);
                    break;
                }
                Ok(_) => {} // another realm's credentials: not for us
                // a fixed reason: nothing of the request is echoed
                Err(_) => {
                    return Err(reply(
                        req,
                        400,
                        Some("Bad Request - malformed Authorization".into()),
                    ))
                }
            }
        }
        let challenge = |this: &Self, stale: bool| {
            let mut r = reply(req, 401, None);
            for c in this
                .challenger
                .challenge_with(wall_now, ip, stale, &this.cfg.algorithms)
            {
                r.headers.push("WWW-Authenticate", c);
            }
            r
        };
        let Some(auth) = ours else {
            return Err(challenge(self, false));
        };
        if !auth.uri.trim().eq_ignore_ascii_case(req.uri.trim()) {
            return Err(reply(
                req,
                400,
                Some("Bad Request - digest uri is not the Request-URI".into()),
            ));
        }
        let Some(user) = self.users.get(&auth.username) else {
            return Err(challenge(self, false));
        };
        match self
            .challenger
            .verify(wall_now, ip, "REGISTER", &auth, &user.credential)
        {
            Ok(v) => Ok(v.username),
            Err(SipError::AuthRejected(f)) => Err(challenge(self, f.is_stale())),
            Err(_) => Err(challenge(self, false)),
        }
    }

    /// Step 6: what each Contact asks for.
    fn wanted(&self, req: &Request, source: Peer) -> Result<Contacts, Box<Response>> {
        let max = match self.cfg.max_stream_expires {
            Some(m) if source.transport.is_reliable() => m.min(self.cfg.max_expires),
            _ => self.cfg.max_expires,
        };
        let contacts: Vec<&str> = req.headers.get_list("Contact").collect();
        let header = req
            .headers
            .get("Expires")
            .and_then(|v| v.trim().parse::<u64>().ok());
        if contacts.iter().any(|c| c.trim() == "*") {
            if contacts.len() != 1 || header != Some(0) {
                return Err(Box::new(reply(
                    req,
                    400,
                    Some("Bad Request - Contact * needs Expires: 0 and no other Contact".into()),
                )));
            }
            return Ok(Contacts::RemoveAll);
        }
        let mut out = Vec::with_capacity(contacts.len());
        for c in contacts {
            // The Contact becomes the Request-URI of calls: a SIP URI without headers.
            let na = match NameAddr::parse("Contact", c) {
                Ok(na) if is_sip_uri(&na.uri) && !na.uri.contains('?') => na,
                _ => {
                    return Err(Box::new(reply(
                        req,
                        400,
                        Some("Bad Request - malformed Contact".into()),
                    )))
                }
            };
            let param = |name: &str| {
                na.params
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.as_deref())
            };
            let requested = param("expires")
                .flatten()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .or(header);
            let expires = match requested {
                Some(0) => 0,
                Some(e) if e < u64::from(self.cfg.min_expires) => {
                    let mut r = reply(req, 423, Some("Interval Too Brief".into()));
                    r.headers
                        .push("Min-Expires", self.cfg.min_expires.to_string());
                    return Err(Box::new(r));
                }
                Some(e) => e.min(u64::from(max)) as u32,
                None => self.cfg.default_expires.clamp(self.cfg.min_expires, max),
            };
            let instance = param("+sip.instance").flatten().map(str::to_string);
            let mut params = String::new();
            for (n, v) in na
                .params
                .iter()
                .filter(|(n, _)| !n.eq_ignore_ascii_case("expires"))
            {
                params.push(';');
                params.push_str(n);
                if let Some(v) = v {
                    params.push('=');
                    // quote what is not a token (the instance URN's `<…>`)
                    if v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~:".contains(&b))
                    {
                        params.push_str(v);
                    } else {
                        params.push('"');
                        params.push_str(v);
                        params.push('"');
                    }
                }
            }
            out.push(Wanted {
                key: instance
                    .as_ref()
                    .map_or_else(|| uri_key(&na.uri), |i| format!("instance {i}")),
                uri: na.uri,
                params,
                instance,
                expires,
            });
        }
        Ok(Contacts::List(out))
    }

    /// Step 7: applies every Contact of the request to `user`'s bindings, or none.
    fn apply(
        &mut self,
        now: Instant,
        source: Peer,
        req: &Request,
        user: &str,
        contacts: Contacts,
    ) -> Result<(), Box<Response>> {
        let call_id = req.call_id().to_string();
        let (cseq, _) = req.cseq();
        let user_agent = req.headers.get("User-Agent").map(str::to_string);
        let Some(u) = self.users.get(user) else {
            return Err(Box::new(reply(req, 404, None)));
        };
        let mut entries: Vec<Entry> = u
            .entries
            .iter()
            .filter(|e| e.binding.expires_at > now)
            .cloned()
            .collect();
        let expired = u.entries.len() - entries.len();
        let wanted = match contacts {
            Contacts::List(w) => w,
            Contacts::RemoveAll => entries
                .iter()
                .map(|e| Wanted {
                    key: e.key.clone(),
                    uri: e.binding.contact.clone(),
                    params: String::new(),
                    instance: None,
                    expires: 0,
                })
                .collect(),
        };
        if wanted.len() > self.cfg.max_bindings_per_user {
            return Err(Box::new(reply(
                req,
                403,
                Some(format!(
                    "Forbidden - at most {} contacts",
                    self.cfg.max_bindings_per_user
                )),
            )));
        }
        let out_of_order = || {
            Box::new(reply(
                req,
                500,
                Some("Server Internal Error - CSeq not higher than the binding's".into()),
            ))
        };
        let mut changed = false;
        let mut touched: Vec<String> = Vec::new();
        for w in wanted {
            let first_time = !touched.contains(&w.key);
            let pos = entries.iter().position(|e| e.key == w.key);
            if let Some(i) = pos {
                let e = &entries[i];
                if first_time && e.call_id == call_id && cseq <= e.cseq {
                    return Err(out_of_order());
                }
            }
            touched.push(w.key.clone());
            match (pos, w.expires) {
                (Some(i), 0) => {
                    entries.remove(i);
                    changed = true;
                }
                (None, 0) => {}
                (Some(i), e) => {
                    let en = &mut entries[i];
                    changed |= en.binding.flow != source || en.binding.contact != w.uri;
                    en.binding.contact = w.uri;
                    en.binding.flow = source;
                    en.binding.expires_at = now + Duration::from_secs(e.into());
                    en.binding.registered_at = now;
                    en.binding.user_agent.clone_from(&user_agent);
                    en.binding.instance = w.instance;
                    en.params = w.params;
                    en.call_id.clone_from(&call_id);
                    en.cseq = cseq;
                }
                (None, e) => {
                    entries.push(Entry {
                        key: w.key,
                        binding: Binding {
                            contact: w.uri,
                            flow: source,
                            expires_at: now + Duration::from_secs(e.into()),
                            registered_at: now,
                            user_agent: user_agent.clone(),
                            instance: w.instance,
                        },
                        params: w.params,
                        call_id: call_id.clone(),
                        cseq,
                    });
                    changed = true;
                }
            }
        }
        // The per-user bound: evict the least recently registered bindings not in this request.
        let mut evicted = 0;
        while entries.len() > self.cfg.max_bindings_per_user {
            let Some(i) = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| !touched.contains(&e.key))
                .min_by_key(|(_, e)| e.binding.registered_at)
                .map(|(i, _)| i)
            else {
                break;
            };
            entries.remove(i);
            evicted += 1;
            changed = true;
        }
        // The global bound, when this request adds live bindings.
        let others = |this: &Self| this.total - this.users.get(user).map_or(0, |u| u.entries.len());
        if entries.len() > u.entries.len() - expired
            && others(self) + entries.len() > self.cfg.max_bindings
        {
            self.prune_bindings(now);
            if others(self) + entries.len() > self.cfg.max_bindings {
                let mut r = reply(
                    req,
                    503,
                    Some("Service Unavailable - registrar full".into()),
                );
                r.headers.push("Retry-After", "60");
                return Err(Box::new(r));
            }
        }
        // commit
        let Some(u) = self.users.get_mut(user) else {
            return Err(Box::new(reply(req, 404, None)));
        };
        self.total = self.total - u.entries.len() + entries.len();
        u.entries = entries;
        self.stats.evicted += evicted;
        if changed || expired > 0 {
            self.generation += 1;
        }
        Ok(())
    }
}

/// A response to `req` with a To tag and, when given, another reason phrase.
fn reply(req: &Request, status: u16, reason: Option<String>) -> Response {
    let mut r = Response::to_request(req, status, Some(&msg::new_tag()));
    if let Some(reason) = reason {
        r.reason = reason;
    }
    r
}
