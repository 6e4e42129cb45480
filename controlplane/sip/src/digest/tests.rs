use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::parse::parse_digest_params;
use super::*;

fn creds(user: &str, pass: &str) -> Credentials {
    Credentials {
        username: user.into(),
        password: pass.into(),
    }
}

/// Extracts a parameter from a value we produced (tests only).
fn param(value: &str, name: &str) -> Option<String> {
    parse_digest_params(value, "authorization")
        .ok()?
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
}

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
}

const IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 7));
const OTHER_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 8));

// --- test vectors --------------------------------------------------------------------------

/// RFC 2617 3.5: MD5, qop=auth.
#[test]
fn rfc2617_section_3_5() {
    let ha1 = ha1(Hash::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
    assert_eq!(ha1, "939e7578ed9e3c518a452acee763bce9");
    let r = response(
        Hash::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        Some(("00000001", "0a4f113b")),
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "6629fae49393a05397450978507c4ef1");
}

/// RFC 2069 (qop absent): `H(HA1:nonce:HA2)`. RFC 2069's own printed response is known to be
/// wrong (errata), so the expectation is the same arithmetic done independently (Python
/// hashlib) on the RFC 2617 3.5 inputs.
#[test]
fn rfc2069_compatibility_response() {
    let ha1 = ha1(Hash::Md5, "Mufasa", "testrealm@host.com", "Circle Of Life");
    let r = response(
        Hash::Md5,
        &ha1,
        "dcd98b7102dd2f0e8b11d0f600bfb0c093",
        None,
        "GET",
        "/dir/index.html",
    );
    assert_eq!(r, "670fd8c2df070c60b045671b8b24ff02");
}

const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";

/// RFC 7616 3.9.1, both algorithms, through the public types: the challenge as printed in the
/// RFC parses, and a server holding only HA1 accepts the RFC's response.
#[test]
fn rfc7616_section_3_9_1() {
    for (alg, expected) in [
        ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        (
            "SHA-256",
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
        ),
    ] {
        let challenge = format!(
            "Digest\r\n realm=\"http-auth@example.org\",\r\n qop=\"auth, auth-int\",\r\n \
             algorithm={alg},\r\n nonce=\"{RFC7616_NONCE}\",\r\n opaque=\"{RFC7616_OPAQUE}\""
        );
        let c = Challenge::parse(&challenge).unwrap();
        assert_eq!(c.realm, "http-auth@example.org");
        assert_eq!(c.qop, ["auth", "auth-int"]);
        assert_eq!(c.algorithm, Algorithm::parse(alg));
        assert!(c.is_answerable());
        let hash = c.algorithm.hash().unwrap();
        let ha1 = ha1(hash, "Mufasa", &c.realm, "Circle of Life");
        let r = response(
            hash,
            &ha1,
            &c.nonce,
            Some(("00000001", RFC7616_CNONCE)),
            "GET",
            "/dir/index.html",
        );
        assert_eq!(r, expected, "{alg}");

        let stored =
            StoredCredential::from_password("Mufasa", "http-auth@example.org", "Circle of Life");
        assert_eq!(stored.ha1(hash), ha1);
        let auth = Authorization::parse(&format!(
            "Digest username=\"Mufasa\", realm=\"http-auth@example.org\", uri=\"/dir/index.html\", \
             algorithm={alg}, nonce=\"{RFC7616_NONCE}\", nc=00000001, cnonce=\"{RFC7616_CNONCE}\", \
             qop=auth, response=\"{expected}\", opaque=\"{RFC7616_OPAQUE}\""
        ))
        .unwrap();
        assert_eq!(auth.nc, Some(1));
        assert_eq!(auth.response, expected);
    }
}

/// RFC 8760 2.1/2.4: the algorithm tokens SIP registers; SHA-256 preferred over MD5, in any
/// order of the header values; `-sess` and SHA-512-256 parsed but never chosen.
#[test]
fn rfc8760_algorithms_and_preference() {
    assert_eq!(Algorithm::parse("sha-256"), Algorithm::Sha256);
    assert_eq!(Algorithm::parse("md5-SESS"), Algorithm::Md5Sess);
    assert_eq!(Algorithm::parse("SHA-256-sess"), Algorithm::Sha256Sess);
    assert_eq!(
        Algorithm::parse("SHA-512-256"),
        Algorithm::Other("SHA-512-256".into())
    );
    assert!(!Algorithm::Sha256Sess.is_supported());

    let md5 = r#"Digest realm="atlanta.example.com", nonce="n1", qop="auth", algorithm=MD5"#;
    let sha = r#"Digest realm="atlanta.example.com", nonce="n1", qop="auth", algorithm=SHA-256"#;
    let sess =
        r#"Digest realm="atlanta.example.com", nonce="n1", qop="auth", algorithm=SHA-256-sess"#;
    let s512 =
        r#"Digest realm="atlanta.example.com", nonce="n1", qop="auth", algorithm=SHA-512-256"#;
    for values in [[md5, sha, sess, s512], [s512, sess, sha, md5]] {
        let mut c = ClientAuth::new(creds("bob", "pw"));
        c.handle_challenge(ChallengeKind::Proxy, &values).unwrap();
        let h = c.authorize("INVITE", "sip:bob@biloxi.example.com");
        assert_eq!(h.len(), 1);
        assert_eq!(h[0].0, "Proxy-Authorization");
        assert_eq!(param(&h[0].1, "algorithm").as_deref(), Some("SHA-256"));
    }
    // only unsupported offers: a clear error naming the algorithm
    let mut c = ClientAuth::new(creds("bob", "pw"));
    let err = c.handle_challenge(ChallengeKind::Www, &[sess]).unwrap_err();
    assert!(
        matches!(&err, SipError::DigestUnsupported(a) if a.contains("SHA-256-sess")),
        "{err}"
    );
    let authint = r#"Digest realm="r", nonce="n", qop="auth-int""#;
    let err = c
        .handle_challenge(ChallengeKind::Www, &[authint])
        .unwrap_err();
    assert!(
        matches!(&err, SipError::DigestUnsupported(q) if q.contains("auth-int")),
        "{err}"
    );
    assert!(!c.has_session());
}

// --- client --------------------------------------------------------------------------------

#[test]
fn client_reuses_nonce_with_increasing_nc_and_restarts_on_stale() {
    let mut c = ClientAuth::with_rng(creds("trunkuser", "s3cret"), StdRng::seed_from_u64(1));
    assert!(c.authorize("INVITE", "sip:a@b").is_empty());
    let ch = r#"digest REALM="carrier" , nonce="abc",opaque="xyz",   qop="auth",algorithm=md5"#;
    c.handle_challenge(ChallengeKind::Www, &[ch]).unwrap();
    let mut cnonces = Vec::new();
    for n in 1..=3u32 {
        let h = c.authorize("INVITE", "sip:+15551234567@carrier.test");
        assert_eq!(h.len(), 1);
        let (name, v) = &h[0];
        assert_eq!(*name, "Authorization");
        assert!(
            v.starts_with("Digest username=\"trunkuser\", realm=\"carrier\", nonce=\"abc\""),
            "{v}"
        );
        assert_eq!(param(v, "nc"), Some(format!("{n:08x}")));
        assert_eq!(param(v, "qop").as_deref(), Some("auth"));
        assert_eq!(param(v, "opaque").as_deref(), Some("xyz"));
        assert_eq!(param(v, "algorithm").as_deref(), Some("MD5"));
        let cnonce = param(v, "cnonce").unwrap();
        assert!(cnonce.len() >= 16);
        cnonces.push(cnonce.clone());
        let hash = Hash::Md5;
        let expected = response(
            hash,
            &ha1(hash, "trunkuser", "carrier", "s3cret"),
            "abc",
            Some((&format!("{n:08x}"), &cnonce)),
            "INVITE",
            "sip:+15551234567@carrier.test",
        );
        assert_eq!(param(v, "response"), Some(expected));
    }
    cnonces.dedup();
    assert_eq!(cnonces.len(), 3, "a fresh cnonce per request");

    // the same nonce challenged again without stale: wrong password, no loop
    let err = c.handle_challenge(ChallengeKind::Www, &[ch]).unwrap_err();
    assert!(matches!(
        err,
        SipError::AuthRejected(AuthFailure::WrongResponse)
    ));

    // stale=true with a new nonce: start over at nc=1
    let stale = r#"Digest realm="carrier", nonce="def", qop="auth", stale=TRUE"#;
    c.handle_challenge(ChallengeKind::Www, &[stale]).unwrap();
    let h = c.authorize("BYE", "sip:x@y");
    assert_eq!(param(&h[0].1, "nonce").as_deref(), Some("def"));
    assert_eq!(param(&h[0].1, "nc").as_deref(), Some("00000001"));
    assert_eq!(param(&h[0].1, "opaque"), None);
}

#[test]
fn client_rfc2069_mode_without_qop() {
    let mut c = ClientAuth::new(creds("Mufasa", "Circle Of Life"));
    c.handle_challenge(
        ChallengeKind::Www,
        &[r#"Digest realm="testrealm@host.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093""#],
    )
    .unwrap();
    let h = c.authorize("GET", "/dir/index.html");
    let v = &h[0].1;
    assert_eq!(
        param(v, "response").as_deref(),
        Some("670fd8c2df070c60b045671b8b24ff02")
    );
    assert_eq!(param(v, "qop"), None);
    assert_eq!(param(v, "nc"), None);
    assert_eq!(param(v, "cnonce"), None);
}

#[test]
fn client_keeps_one_session_per_realm_and_kind() {
    let mut c = ClientAuth::new(creds("u", "p"));
    c.handle_challenge(
        ChallengeKind::Proxy,
        &[r#"Digest realm="proxy", nonce="1", qop="auth""#],
    )
    .unwrap();
    c.handle_challenge(
        ChallengeKind::Www,
        &[r#"Digest realm="registrar", nonce="2", qop="auth""#],
    )
    .unwrap();
    let h = c.authorize("REGISTER", "sip:example.test");
    let names: Vec<_> = h.iter().map(|(n, _)| *n).collect();
    assert_eq!(names, ["Proxy-Authorization", "Authorization"]);
    for i in 0..10 {
        c.handle_challenge(
            ChallengeKind::Www,
            &[&format!(r#"Digest realm="r{i}", nonce="n""#)],
        )
        .unwrap();
    }
    assert_eq!(c.authorize("OPTIONS", "sip:x").len(), MAX_REALMS);
    c.reset();
    assert!(!c.has_session());
}

#[test]
fn quoting_is_escaped_and_round_trips() {
    let mut c = ClientAuth::new(creds(r#"we"ird\user"#, "p"));
    c.handle_challenge(
        ChallengeKind::Www,
        &[r#"Digest realm="a \"quoted\" realm", nonce="n", qop="auth""#],
    )
    .unwrap();
    let h = c.authorize("INVITE", "sip:x@y");
    let a = Authorization::parse(&h[0].1).unwrap();
    assert_eq!(a.username, r#"we"ird\user"#);
    assert_eq!(a.realm, r#"a "quoted" realm"#);
}

// --- client ↔ server --------------------------------------------------------------------------

fn server() -> Challenger {
    Challenger::new(
        "callbridge",
        b"0123456789abcdef0123456789abcdef".to_vec(),
        Duration::from_secs(300),
    )
}

fn agent() -> StoredCredential {
    StoredCredential::from_password("agent7", "callbridge", "hunter2")
}

/// One REGISTER round trip: 401 → credentials → verified; returns the client for more.
fn round_trip(srv: &mut Challenger, prefer_md5: bool, now: SystemTime) -> ClientAuth {
    let mut c = ClientAuth::new(creds("agent7", "hunter2"));
    let mut ch = srv.challenge(now, IP, false);
    assert_eq!(ch.len(), 2);
    if prefer_md5 {
        ch.remove(0); // a server offering MD5 only
    }
    let refs: Vec<&str> = ch.iter().map(String::as_str).collect();
    c.handle_challenge(ChallengeKind::Www, &refs).unwrap();
    let h = c.authorize("REGISTER", "sip:callbridge.test");
    let auth = Authorization::parse(&h[0].1).unwrap();
    let v = srv.verify(now, IP, "REGISTER", &auth, &agent()).unwrap();
    assert_eq!(v.username, "agent7");
    assert_eq!(v.nc, 1);
    assert_eq!(
        v.algorithm,
        if prefer_md5 {
            Algorithm::Md5
        } else {
            Algorithm::Sha256
        }
    );
    c
}

#[test]
fn round_trip_both_algorithms_and_nonce_reuse() {
    for md5 in [false, true] {
        let mut srv = server();
        let mut c = round_trip(&mut srv, md5, at(0));
        // later requests reuse the nonce, no new challenge
        for n in 2..=5 {
            let h = c.authorize("REGISTER", "sip:callbridge.test");
            let auth = Authorization::parse(&h[0].1).unwrap();
            assert_eq!(
                srv.verify(at(n.into()), IP, "REGISTER", &auth, &agent())
                    .unwrap()
                    .nc,
                n
            );
        }
        assert_eq!(srv.tracked_nonces(), 1);
    }
}

fn rejected(r: Result<Verified, SipError>) -> AuthFailure {
    match r {
        Err(SipError::AuthRejected(f)) => f,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn stale_nonce_then_fresh_challenge() {
    let mut srv = server();
    let mut c = round_trip(&mut srv, false, at(0));
    let h = c.authorize("REGISTER", "sip:callbridge.test");
    let auth = Authorization::parse(&h[0].1).unwrap();
    let f = rejected(srv.verify(at(300), IP, "REGISTER", &auth, &agent()));
    assert_eq!(f, AuthFailure::StaleNonce);
    assert!(f.is_stale());
    let ch = srv.challenge(at(300), IP, true);
    assert!(ch.iter().all(|v| v.ends_with("stale=TRUE")));
    let refs: Vec<&str> = ch.iter().map(String::as_str).collect();
    c.handle_challenge(ChallengeKind::Www, &refs).unwrap();
    let h = c.authorize("REGISTER", "sip:callbridge.test");
    let auth = Authorization::parse(&h[0].1).unwrap();
    assert_eq!(
        srv.verify(at(301), IP, "REGISTER", &auth, &agent())
            .unwrap()
            .nc,
        1
    );
    // the expired one is pruned
    srv.prune(at(301));
    assert_eq!(srv.tracked_nonces(), 1);
}

#[test]
fn nonce_bound_to_client_address() {
    let mut srv = server();
    let mut c = ClientAuth::new(creds("agent7", "hunter2"));
    let ch = srv.challenge(at(0), IP, false);
    c.handle_challenge(ChallengeKind::Www, &[&ch[0]]).unwrap();
    let auth = Authorization::parse(&c.authorize("REGISTER", "sip:cb")[0].1).unwrap();
    for ip in [OTHER_IP, IpAddr::V6(Ipv6Addr::LOCALHOST)] {
        assert_eq!(
            rejected(srv.verify(at(1), ip, "REGISTER", &auth, &agent())),
            AuthFailure::BadNonce
        );
    }
    // the same client through an IPv4-mapped IPv6 socket is the same client
    let mapped = IpAddr::V6(Ipv4Addr::new(127, 0, 0, 7).to_ipv6_mapped());
    assert!(srv
        .verify(at(1), mapped, "REGISTER", &auth, &agent())
        .is_ok());
    // a forged or truncated nonce
    let mut forged = auth.clone();
    forged.nonce = srv.nonce(at(0), OTHER_IP);
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &forged, &agent())),
        AuthFailure::BadNonce
    );
    forged.nonce = "AAAA".into();
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &forged, &agent())),
        AuthFailure::BadNonce
    );
    // another server secret
    let mut other = Challenger::new(
        "callbridge",
        b"another secret".to_vec(),
        Duration::from_secs(300),
    );
    let auth2 = Authorization::parse(&c.authorize("REGISTER", "sip:cb")[0].1).unwrap();
    assert_eq!(
        rejected(other.verify(at(1), IP, "REGISTER", &auth2, &agent())),
        AuthFailure::BadNonce
    );
}

#[test]
fn nc_replay_is_rejected() {
    let mut srv = server();
    let mut c = round_trip(&mut srv, false, at(0));
    let h2 = c.authorize("REGISTER", "sip:callbridge.test");
    let h3 = c.authorize("REGISTER", "sip:callbridge.test");
    let a2 = Authorization::parse(&h2[0].1).unwrap();
    let a3 = Authorization::parse(&h3[0].1).unwrap();
    assert!(srv.verify(at(1), IP, "REGISTER", &a3, &agent()).is_ok());
    // nc=2 after nc=3, and nc=3 again: replays
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &a2, &agent())),
        AuthFailure::ReplayedNonceCount
    );
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &a3, &agent())),
        AuthFailure::ReplayedNonceCount
    );
    // the sender knew the password: re-challenge with stale=true
    assert!(AuthFailure::ReplayedNonceCount.is_stale());
    assert!(!AuthFailure::WrongResponse.is_stale() && !AuthFailure::BadNonce.is_stale());
}

#[test]
fn wrong_password_realm_user_method_and_qop() {
    let mut srv = server();
    let ch = srv.challenge(at(0), IP, false);
    let mut bad = ClientAuth::new(creds("agent7", "wrong"));
    bad.handle_challenge(ChallengeKind::Www, &[&ch[0]]).unwrap();
    let a = Authorization::parse(&bad.authorize("REGISTER", "sip:cb")[0].1).unwrap();
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &a, &agent())),
        AuthFailure::WrongResponse
    );
    assert_eq!(
        srv.tracked_nonces(),
        0,
        "failed attempts are not remembered"
    );

    let mut good = ClientAuth::new(creds("agent7", "hunter2"));
    good.handle_challenge(ChallengeKind::Www, &[&ch[1]])
        .unwrap();
    let a = Authorization::parse(&good.authorize("REGISTER", "sip:cb")[0].1).unwrap();
    // computed over another method
    assert_eq!(
        rejected(srv.verify(at(1), IP, "INVITE", &a, &agent())),
        AuthFailure::WrongResponse
    );
    let other_user = StoredCredential::from_password("agent8", "callbridge", "hunter2");
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &a, &other_user)),
        AuthFailure::UnknownUser
    );
    let mut r = a.clone();
    r.realm = "elsewhere".into();
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &r, &agent())),
        AuthFailure::WrongRealm
    );
    let mut r = a.clone();
    r.algorithm = Algorithm::Md5Sess;
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &r, &agent())),
        AuthFailure::UnsupportedAlgorithm
    );
    let mut r = a.clone();
    (r.qop, r.nc, r.cnonce) = (None, None, None);
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &r, &agent())),
        AuthFailure::QopRequired
    );
    // upper-case hex is the same response
    let mut r = a.clone();
    r.response = r.response.to_ascii_uppercase();
    assert!(srv.verify(at(1), IP, "REGISTER", &r, &agent()).is_ok());
    // a nonce from the future (beyond clock skew)
    let mut fut = ClientAuth::new(creds("agent7", "hunter2"));
    fut.handle_challenge(ChallengeKind::Www, &[&srv.challenge(at(100), IP, false)[0]])
        .unwrap();
    let a = Authorization::parse(&fut.authorize("REGISTER", "sip:cb")[0].1).unwrap();
    assert_eq!(
        rejected(srv.verify(at(1), IP, "REGISTER", &a, &agent())),
        AuthFailure::BadNonce
    );
}

#[test]
fn tracked_nonces_are_bounded_and_evicted_ones_come_back_stale() {
    let mut srv = server().with_max_tracked(3);
    let mut clients: Vec<ClientAuth> = (0..5).map(|i| round_trip(&mut srv, false, at(i))).collect();
    assert_eq!(srv.tracked_nonces(), 3);
    // the oldest (evicted) client's nonce is now stale, not replayable
    let a = Authorization::parse(&clients[0].authorize("REGISTER", "sip:callbridge.test")[0].1)
        .unwrap();
    assert_eq!(
        rejected(srv.verify(at(10), IP, "REGISTER", &a, &agent())),
        AuthFailure::StaleNonce
    );
    // the newest still works
    let a = Authorization::parse(&clients[4].authorize("REGISTER", "sip:callbridge.test")[0].1)
        .unwrap();
    assert_eq!(
        srv.verify(at(10), IP, "REGISTER", &a, &agent()).unwrap().nc,
        2
    );
}

// --- malformed input -----------------------------------------------------------------------

#[test]
fn malformed_challenges_are_errors() {
    for bad in [
        "",
        "Digest",
        "Basic realm=\"x\"",
        "Digest realm=\"x\"",                           // no nonce
        "Digest nonce=\"x\"",                           // no realm
        "Digest realm=\"x\", nonce=\"",                 // unterminated
        "Digest realm=\"x\", nonce=\"a\\",              // unterminated after escape
        "Digest realm=\"x\" nonce=\"y\"",               // missing comma
        "Digest realm, nonce=\"y\"",                    // no '='
        "Digest realm=\"x\", realm=\"y\", nonce=\"n\"", // repeated
        "Digest realm=\"x\", nonce=\"\"",               // empty nonce
        "Digest realm=, nonce=\"n\"",                   // empty value
        "Digestrealm=\"x\", nonce=\"n\"",
        "Digest =\"x\"",
        "Digest realm=\"x\", nonce=\"n\", \u{e9}=1",
    ] {
        assert!(
            matches!(Challenge::parse(bad), Err(SipError::DigestMalformed { .. })),
            "{bad:?} should be malformed"
        );
    }
    // lenient where it costs nothing: empty list elements, odd spacing, token68 nonces
    let c = Challenge::parse("  DIGEST  ,realm = x ,, nonce=abc/+= , qop=\"auth\"  ").unwrap();
    assert_eq!((c.realm.as_str(), c.nonce.as_str()), ("x", "abc/+="));
    for bad in [
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\"", // no response
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth",
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth, nc=1, cnonce=\"c\"",
        "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"u\", response=\"r\", qop=auth, nc=0000000g, cnonce=\"c\"",
    ] {
        assert!(Authorization::parse(bad).is_err(), "{bad:?}");
    }
}

/// A few hundred seeded random mutations of valid values: parsing returns, never panics, and
/// the client/server never panic on what parses.
#[test]
fn mutated_values_never_panic() {
    let mut srv = server();
    let seeds: Vec<String> = {
        let mut v = srv.challenge(at(0), IP, true);
        let mut c = ClientAuth::new(creds("agent7", "hunter2"));
        c.handle_challenge(ChallengeKind::Www, &[&v[0]]).unwrap();
        v.push(c.authorize("REGISTER", "sip:callbridge.test")[0].1.clone());
        v.push(format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm=SHA-256, \
             nonce=\"{RFC7616_NONCE}\", opaque=\"{RFC7616_OPAQUE}\""
        ));
        v
    };
    let alphabet: &[u8] = b"\"\\,= \t\r\nDigestrealmnoncq-:/\xc3\xa9\x00\xff";
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut parsed = 0;
    for case in 0..600 {
        let mut bytes = seeds[case % seeds.len()].clone().into_bytes();
        for _ in 0..rng.gen_range(1..6) {
            let pos = rng.gen_range(0..=bytes.len());
            match rng.gen_range(0..4) {
                0 if pos < bytes.len() => {
                    bytes.remove(pos);
                }
                1 => bytes.insert(pos, alphabet[rng.gen_range(0..alphabet.len())]),
                2 if pos < bytes.len() => bytes[pos] = alphabet[rng.gen_range(0..alphabet.len())],
                _ => bytes.truncate(pos),
            }
        }
        let s = String::from_utf8_lossy(&bytes);
        if let Ok(c) = Challenge::parse(&s) {
            parsed += 1;
            let mut client = ClientAuth::new(creds("u", "p"));
            if client.handle_challenge(ChallengeKind::Www, &[&s]).is_ok() {
                let _ = client.authorize("INVITE", "sip:x");
            }
            let _ = c.is_answerable();
        }
        if let Ok(a) = Authorization::parse(&s) {
            parsed += 1;
            let _ = srv.verify(at(1), IP, "REGISTER", &a, &agent());
        }
    }
    assert!(
        parsed > 50,
        "the mutations should not all be rejected ({parsed})"
    );
}
