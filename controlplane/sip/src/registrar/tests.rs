//! RFC 3261 10.3 cases on fake time: each test drives a softphone (a [`ClientAuth`] and
//! hand-written REGISTERs) against a [`Registrar`].

use std::time::{Duration, Instant, SystemTime};

use super::headers::{http_date, percent_decode, uri_key};
use super::*;
use crate::digest::{ChallengeKind, ClientAuth, Credentials};
use crate::msg::{parse, Message};
use crate::peer::Transport;

const REALM: &str = "callbridge";
const SECRET: &[u8; 16] = b"0123456789abcdef";

fn config() -> RegistrarConfig {
    RegistrarConfig::new(
        REALM,
        SECRET.to_vec(),
        vec![
            StoredCredential::from_password("agent7", REALM, "hunter2"),
            StoredCredential::from_password("agent8", REALM, "swordfish"),
        ],
    )
}

fn peer(s: &str) -> Peer {
    Peer::udp(s.parse().unwrap())
}

/// Fake clocks: `at(s)` is `s` seconds after the test's start on both.
struct Clock {
    t0: Instant,
    w0: SystemTime,
}

impl Clock {
    fn new() -> Self {
        Self {
            t0: Instant::now(),
            w0: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        }
    }
    fn at(&self, s: u64) -> (Instant, SystemTime) {
        let d = Duration::from_secs(s);
        (self.t0 + d, self.w0 + d)
    }
    fn t(&self, s: u64) -> Instant {
        self.at(s).0
    }
}

/// A softphone: its AOR user, digest client, Call-ID and CSeq.
struct Phone {
    user: String,
    auth: ClientAuth,
    call_id: String,
    cseq: u32,
    source: Peer,
}

impl Phone {
    fn new(user: &str, password: &str, source: &str) -> Self {
        Self {
            user: user.into(),
            auth: ClientAuth::new(Credentials {
                username: user.into(),
                password: password.into(),
            }),
            call_id: format!("{user}-reg@10.0.0.7"),
            cseq: 0,
            source: peer(source),
        }
    }

    /// A REGISTER with these extra header lines (Contact, Expires, …), authorized if the
    /// phone has a digest session.
    fn request(&mut self, extra: &str) -> Request {
        self.cseq += 1;
        let mut auth = String::new();
        if self.auth.has_session() {
            for (n, v) in self.auth.authorize("REGISTER", "sip:callbridge.test") {
                auth.push_str(&format!("{n}: {v}\r\n"));
            }
        }
        let text = format!(
            "REGISTER sip:callbridge.test SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.7:5060;branch=z9hG4bK{}{};rport\r\nMax-Forwards: 70\r\n\
From: <sip:{u}@callbridge.test>;tag=p1\r\nTo: <sip:{u}@callbridge.test>\r\n\
Call-ID: {}\r\nCSeq: {} REGISTER\r\nUser-Agent: TestPhone/1.0\r\n{extra}{auth}Content-Length: 0\r\n\r\n",
            self.user,
            self.cseq,
            self.call_id,
            self.cseq,
            u = self.user,
        );
        match parse(text.as_bytes()).unwrap() {
            Message::Request(r) => r,
            Message::Response(_) => unreachable!(),
        }
    }

    /// Sends `extra` at `t`, answering one 401 if it comes; returns the final answer.
    fn register(&mut self, reg: &mut Registrar, t: (Instant, SystemTime), extra: &str) -> Response {
        let r = reg.handle_register(t.0, t.1, self.source, &self.request(extra));
        if r.status != 401 {
            return r;
        }
        let values: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
        self.auth
            .handle_challenge(ChallengeKind::Www, &values)
            .unwrap();
        reg.handle_register(t.0, t.1, self.source, &self.request(extra))
    }
}

fn contacts(r: &Response) -> Vec<String> {
    r.headers.get_list("Contact").map(str::to_string).collect()
}

#[test]
fn register_without_credentials_is_challenged_then_bound() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut phone = Phone::new("agent7", "hunter2", "192.0.2.7:40123");
    let r = reg.handle_register(
        clock.at(0).0,
        clock.at(0).1,
        phone.source,
        &phone.request("Contact: <sip:agent7@10.0.0.7:5060>\r\n"),
    );
    assert_eq!(r.status, 401);
    let ch: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
    assert_eq!(ch.len(), 2);
    assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
    assert!(!ch[0].contains("stale"));
    assert!(r.to_tag().is_some());
    assert_eq!(reg.binding_count(), 0, "a challenge creates no binding");

    let r = phone.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:agent7@10.0.0.7:5060>\r\n",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(
        contacts(&r),
        ["<sip:agent7@10.0.0.7:5060>;expires=3600".to_string()]
    );
    assert_eq!(r.headers.get("Date"), Some("Fri, 15 Jan 2027 08:00:00 GMT"));
    let b = reg.bindings("agent7", clock.t(1));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, "sip:agent7@10.0.0.7:5060");
    assert_eq!(b[0].flow, phone.source);
    assert_eq!(b[0].expires_at, clock.t(3600));
    assert_eq!(b[0].user_agent.as_deref(), Some("TestPhone/1.0"));
    assert!(reg.bindings("agent8", clock.t(1)).is_empty());
    assert_eq!(reg.stats().ok, 1);
    assert_eq!(reg.stats().challenged, 2);
}

#[test]
fn the_configured_algorithms_are_challenged_in_order() {
    let clock = Clock::new();
    let mut cfg = config();
    cfg.algorithms = vec![Algorithm::Md5];
    let mut reg = Registrar::new(cfg).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let t = clock.at(0);
    let r = reg.handle_register(t.0, t.1, p.source, &p.request(""));
    let ch: Vec<&str> = r.headers.get_all("WWW-Authenticate").collect();
    assert_eq!(ch.len(), 1);
    assert!(ch[0].contains("algorithm=MD5"));
    assert_eq!(
        p.register(&mut reg, t, "Contact: <sip:a@10.0.0.7>\r\n")
            .status,
        200
    );
}

#[test]
fn wrong_password_unknown_user_and_foreign_aor_are_refused() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let contact = "Contact: <sip:x@10.0.0.9>\r\n";
    // a wrong password: challenged again, not stale
    let mut bad = Phone::new("agent7", "wrong", "192.0.2.9:5060");
    let r = bad.register(&mut reg, clock.at(0), contact);
    assert_eq!(r.status, 401);
    assert!(!r.headers.get("WWW-Authenticate").unwrap().contains("stale"));
    // an unknown user: challenged, never 404 (no user enumeration), and no state
    let mut nobody = Phone::new("mallory", "x", "192.0.2.9:5060");
    let r = nobody.register(&mut reg, clock.at(0), contact);
    assert_eq!(r.status, 401);
    assert_eq!(reg.challenger.tracked_nonces(), 0);
    // agent8 authenticates but registers agent7's AOR: 403; an unknown AOR: 404
    let mut a8 = Phone::new("agent8", "swordfish", "192.0.2.8:5060");
    a8.user = "agent7".into();
    a8.auth = ClientAuth::new(Credentials {
        username: "agent8".into(),
        password: "swordfish".into(),
    });
    assert_eq!(a8.register(&mut reg, clock.at(0), contact).status, 403);
    a8.user = "ghost".into();
    assert_eq!(a8.register(&mut reg, clock.at(0), contact).status, 404);
    assert_eq!(reg.binding_count(), 0);
}

#[test]
fn expiry_comes_from_the_param_then_the_header_then_the_default_and_is_clamped() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let r = p.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:a@10.0.0.7>;expires=120, <sip:b@10.0.0.7>\r\nExpires: 300\r\n",
    );
    assert_eq!(r.status, 200);
    let mut c = contacts(&r);
    c.sort();
    assert_eq!(
        c,
        [
            "<sip:a@10.0.0.7>;expires=120",
            "<sip:b@10.0.0.7>;expires=300"
        ]
    );
    let r = p.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:c@10.0.0.7>;expires=99999\r\n",
    );
    assert!(contacts(&r).contains(&"<sip:c@10.0.0.7>;expires=3600".to_string()));
    let r = p.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:d@10.0.0.7>;expires=junk\r\n",
    );
    assert!(contacts(&r).contains(&"<sip:d@10.0.0.7>;expires=3600".to_string()));
    // a is gone after 120 s; the rest count down
    assert_eq!(reg.bindings("agent7", clock.t(119)).len(), 4);
    let left = reg.bindings("agent7", clock.t(120));
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|b| b.contact != "sip:a@10.0.0.7"));
    let r = p.register(&mut reg, clock.at(200), "");
    assert_eq!(r.status, 200, "a query");
    let mut c = contacts(&r);
    c.sort();
    assert_eq!(
        c,
        [
            "<sip:b@10.0.0.7>;expires=100",
            "<sip:c@10.0.0.7>;expires=3400",
            "<sip:d@10.0.0.7>;expires=3400"
        ]
    );
    // prune forgets them for good
    let g = reg.generation();
    reg.prune(clock.at(3600).0, clock.at(3600).1);
    assert_eq!(reg.binding_count(), 0);
    assert!(reg.generation() > g);
}

#[test]
fn bindings_over_tcp_or_tls_expire_before_their_idle_connection_closes() {
    let clock = Clock::new();
    let mut cfg = config();
    cfg.max_stream_expires = Some(900);
    let mut reg = Registrar::new(cfg).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    p.source = Peer::new(Transport::Tls, "192.0.2.7:50001".parse().unwrap());
    let r = p.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:a@10.0.0.7;transport=tls>\r\n",
    );
    assert_eq!(
        contacts(&r),
        ["<sip:a@10.0.0.7;transport=tls>;expires=900".to_string()]
    );
    p.source = peer("192.0.2.7:5060");
    let r = p.register(
        &mut reg,
        clock.at(1),
        "Contact: <sip:a@10.0.0.7>;expires=3000\r\n",
    );
    assert!(contacts(&r).contains(&"<sip:a@10.0.0.7>;expires=3000".to_string()));
}

#[test]
fn too_brief_an_interval_gets_423_with_min_expires_and_changes_nothing() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let r = p.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:a@10.0.0.7>, <sip:b@10.0.0.7>;expires=30\r\n",
    );
    assert_eq!((r.status, r.reason.as_str()), (423, "Interval Too Brief"));
    assert_eq!(r.headers.get("Min-Expires"), Some("60"));
    assert_eq!(reg.binding_count(), 0, "all or nothing");
    // zero is not "too brief": it removes
    let r = p.register(
        &mut reg,
        clock.at(0),
        "Contact: <sip:a@10.0.0.7>;expires=0\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn star_removes_every_binding_but_only_alone_and_with_expires_0() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let t = clock.at(0);
    p.register(
        &mut reg,
        t,
        "Contact: <sip:a@10.0.0.7>, <sip:b@10.0.0.7>\r\n",
    );
    assert_eq!(reg.binding_count(), 2);
    for bad in ["Contact: *\r\n", "Contact: *\r\nExpires: 10\r\n"] {
        assert_eq!(p.register(&mut reg, t, bad).status, 400, "{bad}");
    }
    // `*` with another Contact (on its own line: in one line the parser refuses it)
    let mut r = p.request("Contact: *\r\nContact: <sip:a@10.0.0.7>\r\nExpires: 0\r\n");
    assert_eq!(reg.handle_register(t.0, t.1, p.source, &r).status, 400);
    r = p.request("Contact: *\r\nExpires: junk\r\n");
    assert_eq!(reg.handle_register(t.0, t.1, p.source, &r).status, 400);
    for bad in ["<tel:+15551234567>", "<sip:a@10.0.0.7?Subject=x>"] {
        let r = p.register(&mut reg, t, &format!("Contact: {bad}\r\n"));
        assert_eq!(
            (r.status, r.reason.as_str()),
            (400, "Bad Request - malformed Contact"),
            "{bad}"
        );
    }
    assert_eq!(reg.binding_count(), 2, "nothing changed");
    let g = reg.generation();
    let r = p.register(&mut reg, t, "Contact: *\r\nExpires: 0\r\n");
    assert_eq!(r.status, 200);
    assert!(contacts(&r).is_empty());
    assert_eq!(reg.binding_count(), 0);
    assert!(reg.generation() > g);
}

#[test]
fn a_contact_registered_from_a_new_source_moves_rather_than_duplicates() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:40000");
    let t = clock.at(0);
    p.register(
        &mut reg,
        t,
        "Contact: <sip:agent7@10.0.0.7:5060;transport=udp>\r\n",
    );
    let g = reg.generation();
    // NAT rebinding: same Contact, another public port (the nonce is bound to the IP)
    p.source = peer("192.0.2.7:40999");
    let r = p.register(
        &mut reg,
        clock.at(10),
        "Contact: <SIP:agent7@10.0.0.7:5060;Transport=UDP;ob>\r\n",
    );
    assert_eq!(r.status, 200);
    let b = reg.bindings("agent7", clock.t(10));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].flow, peer("192.0.2.7:40999"));
    assert_eq!(b[0].registered_at, clock.t(10));
    assert!(reg.generation() > g);
    // a plain refresh from the same flow does not bump the generation
    let g = reg.generation();
    let same = "Contact: <SIP:agent7@10.0.0.7:5060;Transport=UDP;ob>\r\n";
    assert_eq!(p.register(&mut reg, clock.at(20), same).status, 200);
    assert_eq!(reg.generation(), g);
    // another source address (new IP): challenged (nonce bound to the client), then moved, and
    // over TCP the flow is the connection
    p.source = Peer::new(Transport::Tcp, "198.51.100.4:51515".parse().unwrap());
    let r = p.register(
        &mut reg,
        clock.at(30),
        "Contact: <sip:agent7@10.0.0.7:5060;transport=udp>\r\n",
    );
    assert_eq!(r.status, 200);
    let b = reg.bindings("agent7", clock.t(30));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].flow, p.source);
}

#[test]
fn the_instance_id_identifies_a_binding_across_contact_changes() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let inst = "+sip.instance=\"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>\"";
    let r = p.register(
        &mut reg,
        clock.at(0),
        &format!("Contact: <sip:agent7@10.0.0.7:5060>;{inst}\r\n"),
    );
    assert_eq!(
        contacts(&r),
        [format!("<sip:agent7@10.0.0.7:5060>;{inst};expires=3600")]
    );
    p.source = peer("192.0.2.7:6000");
    let r = p.register(
        &mut reg,
        clock.at(5),
        &format!("Contact: <sip:agent7@10.1.1.1:6000>;{inst}\r\n"),
    );
    assert_eq!(contacts(&r).len(), 1);
    let b = reg.bindings("agent7", clock.t(5));
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].contact, "sip:agent7@10.1.1.1:6000");
    assert_eq!(
        b[0].instance.as_deref(),
        Some("<urn:uuid:00000000-0000-1000-8000-000A95A0E128>")
    );
}

#[test]
fn the_same_call_id_with_a_cseq_not_higher_fails_with_500() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let t = clock.at(0);
    assert_eq!(
        p.register(&mut reg, t, "Contact: <sip:a@10.0.0.7>\r\n")
            .status,
        200
    );
    let cseq = p.cseq;
    // a late (reordered) REGISTER of the same registration, with a fresh nc
    p.cseq = cseq - 1;
    let r = p.register(&mut reg, t, "Contact: <sip:a@10.0.0.7>;expires=0\r\n");
    assert_eq!(r.status, 500);
    assert_eq!(reg.bindings("agent7", clock.t(0)).len(), 1, "not removed");
    // another Call-ID (e.g. another device or a restart) may update it at any CSeq
    p.call_id = "other".into();
    p.cseq = 0;
    let r = p.register(&mut reg, t, "Contact: <sip:a@10.0.0.7>;expires=0\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(reg.binding_count(), 0);
}

#[test]
fn a_replayed_nonce_count_is_rechallenged_as_stale() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let t = clock.at(0);
    assert_eq!(
        p.register(&mut reg, t, "Contact: <sip:a@10.0.0.7>\r\n")
            .status,
        200
    );
    let replay = p.request("Contact: <sip:evil@203.0.113.66>\r\n");
    assert_eq!(reg.handle_register(t.0, t.1, p.source, &replay).status, 200);
    // the same bytes again (same nc): an attacker on the path replaying them
    let r = reg.handle_register(t.0, t.1, p.source, &replay);
    assert_eq!(r.status, 401);
    assert!(r
        .headers
        .get("WWW-Authenticate")
        .unwrap()
        .contains("stale=TRUE"));
    // an expired nonce: stale too
    let later = clock.at(301);
    let r = reg.handle_register(later.0, later.1, p.source, &p.request(""));
    assert_eq!(r.status, 401);
    assert!(r
        .headers
        .get("WWW-Authenticate")
        .unwrap()
        .contains("stale=TRUE"));
    // a nonce issued to another address is not honoured
    let mut q = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    q.register(&mut reg, t, "");
    q.source = peer("203.0.113.66:5060");
    let r = reg.handle_register(t.0, t.1, q.source, &q.request(""));
    assert_eq!(r.status, 401);
}

#[test]
fn a_digest_uri_other_than_the_request_uri_and_malformed_credentials_get_400() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let t = clock.at(0);
    p.register(&mut reg, t, "");
    let mut r = p.request("Contact: <sip:a@10.0.0.7>\r\n");
    r.uri = "sip:elsewhere.test".into();
    assert_eq!(reg.handle_register(t.0, t.1, p.source, &r).status, 400);
    let mut r = p.request("");
    r.headers.set("Authorization", "Digest username=\"agent7\"");
    let resp = reg.handle_register(t.0, t.1, p.source, &r);
    assert_eq!(
        (resp.status, resp.reason.as_str()),
        (400, "Bad Request - malformed Authorization")
    );
    // credentials for another realm are not ours: challenged
    let mut r = p.request("");
    r.headers.remove("Authorization");
    r.headers.push(
        "Authorization",
        "Digest username=\"agent7\", realm=\"other\", nonce=\"n\", uri=\"sip:callbridge.test\", response=\"00\"",
    );
    assert_eq!(reg.handle_register(t.0, t.1, p.source, &r).status, 401);
}

#[test]
fn the_per_user_bound_evicts_the_least_recently_registered_binding() {
    let clock = Clock::new();
    let mut cfg = config();
    cfg.max_bindings_per_user = 2;
    let mut reg = Registrar::new(cfg).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    for (i, c) in ["a", "b", "c"].iter().enumerate() {
        let r = p.register(
            &mut reg,
            clock.at(i as u64),
            &format!("Contact: <sip:{c}@10.0.0.7>\r\n"),
        );
        assert_eq!(r.status, 200);
    }
    let b: Vec<String> = reg
        .bindings("agent7", clock.t(3))
        .into_iter()
        .map(|b| b.contact)
        .collect();
    assert_eq!(b, ["sip:b@10.0.0.7", "sip:c@10.0.0.7"]);
    assert_eq!(reg.stats().evicted, 1);
    // one request with more contacts than the bound: 403, nothing changes
    let r = p.register(
        &mut reg,
        clock.at(4),
        "Contact: <sip:x@10.0.0.7>, <sip:y@10.0.0.7>, <sip:z@10.0.0.7>\r\n",
    );
    assert_eq!(r.status, 403);
    assert_eq!(reg.binding_count(), 2);
}

#[test]
fn the_global_bound_refuses_new_bindings_with_503_until_some_expire() {
    let clock = Clock::new();
    let mut cfg = config();
    cfg.max_bindings = 2;
    let mut reg = Registrar::new(cfg).unwrap();
    let mut a7 = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let mut a8 = Phone::new("agent8", "swordfish", "192.0.2.8:5060");
    let t = clock.at(0);
    a7.register(
        &mut reg,
        t,
        "Contact: <sip:a@10.0.0.7>;expires=60, <sip:b@10.0.0.7>\r\n",
    );
    let r = a8.register(&mut reg, t, "Contact: <sip:c@10.0.0.8>\r\n");
    assert_eq!(r.status, 503);
    assert_eq!(r.headers.get("Retry-After"), Some("60"));
    // refreshing what exists is fine at the bound
    assert_eq!(
        a7.register(&mut reg, t, "Contact: <sip:b@10.0.0.7>\r\n")
            .status,
        200
    );
    // once one expired, there is room
    let r = a8.register(&mut reg, clock.at(61), "Contact: <sip:c@10.0.0.8>\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(reg.binding_count(), 2);
}

#[test]
fn bad_configurations_are_refused() {
    let mut c = config();
    c.secret = b"short".to_vec();
    assert!(Registrar::new(c)
        .unwrap_err()
        .to_string()
        .contains("16 bytes"));
    let mut c = config();
    c.users
        .push(StoredCredential::from_password("x", "other-realm", "p"));
    assert!(Registrar::new(c).unwrap_err().to_string().contains("realm"));
    let mut c = config();
    c.users.push(c.users[0].clone());
    assert!(Registrar::new(c).unwrap_err().to_string().contains("twice"));
    let mut c = config();
    c.min_expires = 7200;
    assert!(Registrar::new(c).is_err());
    let mut c = config();
    c.algorithms = vec![Algorithm::Md5Sess];
    assert!(Registrar::new(c)
        .unwrap_err()
        .to_string()
        .contains("algorithms"));
    assert!(!format!("{:?}", config()).contains("0123456789abcdef"));
}

#[test]
fn helpers_format_dates_and_compare_uris() {
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
    assert_eq!(http_date(t), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(
        http_date(SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400)),
        "Tue, 29 Feb 2000 00:00:00 GMT"
    );
    assert_eq!(
        uri_key("SIP:Alice@Example.COM:5060;transport=TCP;lr"),
        uri_key("sip:Alice@example.com:5060;lr=x;transport=tcp")
    );
    assert_ne!(
        uri_key("sip:alice@example.com"),
        uri_key("sip:Alice@example.com")
    );
    assert_ne!(
        uri_key("sip:a@example.com"),
        uri_key("sip:a@example.com:5060")
    );
    assert_ne!(
        uri_key("sip:a@example.com;transport=tcp"),
        uri_key("sip:a@example.com")
    );
    assert_eq!(percent_decode("agent%37").as_deref(), Some("agent7"));
    assert_eq!(percent_decode("bad%zz"), None);
}

#[test]
fn a_failed_connection_takes_its_bindings_but_udp_flows_stay() {
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut tcp = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    tcp.source = Peer::new(Transport::Tcp, "192.0.2.7:50001".parse().unwrap());
    let mut udp = Phone::new("agent8", "swordfish", "192.0.2.8:5060");
    let t = clock.at(0);
    tcp.register(&mut reg, t, "Contact: <sip:a@10.0.0.7;transport=tcp>\r\n");
    udp.register(&mut reg, t, "Contact: <sip:b@10.0.0.8>\r\n");
    let g = reg.generation();
    assert_eq!(reg.remove_flow(udp.source), 0);
    assert_eq!(reg.remove_flow(tcp.source), 1);
    assert!(reg.bindings("agent7", clock.t(0)).is_empty());
    assert_eq!(reg.bindings("agent8", clock.t(0)).len(), 1);
    assert_eq!((reg.binding_count(), reg.generation()), (1, g + 1));
}

#[test]
fn mutated_registers_never_panic_and_never_bind_without_credentials() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let clock = Clock::new();
    let mut reg = Registrar::new(config()).unwrap();
    let mut p = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let t = clock.at(0);
    p.register(&mut reg, t, "");
    let mut anon = Phone::new("agent7", "hunter2", "192.0.2.7:5060");
    let seeds: Vec<String> = [
        "Contact: <sip:a@10.0.0.7;transport=tcp>;expires=120;+sip.instance=\"<urn:x>\"\r\n\
Contact: \"A\" <sip:b@10.0.0.7>;q=0.5\r\nExpires: 300\r\n",
        "Contact: *\r\nExpires: 0\r\n",
    ]
    .iter()
    .map(|extra| String::from_utf8(anon.request(extra).encode()).unwrap())
    .collect();
    let alphabet = b"*,;=<>\"@:%0 \r\n\tsipSIPexpires+instance";
    let mut rng = StdRng::seed_from_u64(0x2e9);
    let (mut parsed, mut ok) = (0, 0);
    for case in 0..3000 {
        let mut bytes = seeds[case % seeds.len()].clone().into_bytes();
        for _ in 0..rng.gen_range(1..4) {
            let i = rng.gen_range(0..bytes.len());
            match rng.gen_range(0..3) {
                0 => bytes[i] = alphabet[rng.gen_range(0..alphabet.len())],
                1 => {
                    bytes.remove(i);
                }
                _ => bytes.insert(i, alphabet[rng.gen_range(0..alphabet.len())]),
            }
        }
        let Ok(Message::Request(mut r)) = parse(&bytes) else {
            continue;
        };
        parsed += 1;
        // without credentials nothing may bind
        let before = reg.binding_count();
        let resp = reg.handle_register(t.0, t.1, p.source, &r);
        assert_eq!(resp.status, 401, "{}", String::from_utf8_lossy(&bytes));
        assert_eq!(reg.binding_count(), before);
        // with fresh credentials (over the mutated Request-URI) any answer but a panic
        for (n, v) in p.auth.authorize("REGISTER", &r.uri.clone()) {
            r.headers.push(n, v);
        }
        let resp = reg.handle_register(t.0, t.1, p.source, &r);
        assert!((200..700).contains(&resp.status));
        ok += usize::from(resp.status == 200);
        assert!(reg.binding_count() <= reg.config().max_bindings_per_user);
    }
    assert!(parsed > 500 && ok > 100, "{parsed} parsed, {ok} accepted");
}
