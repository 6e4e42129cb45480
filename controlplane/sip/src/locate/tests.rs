use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use rand::rngs::StdRng;
use rand::SeedableRng;

use super::*;

const ALL: [Transport; 3] = [Transport::Udp, Transport::Tcp, Transport::Tls];

fn v4(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn t(transport: Transport, ip: IpAddr, port: u16) -> Target {
    Target {
        transport,
        addr: SocketAddr::new(ip, port),
    }
}

fn naptr(order: u16, pref: u16, flags: &str, services: &str, replacement: &str) -> NaptrRecord {
    NaptrRecord {
        order,
        preference: pref,
        flags: flags.into(),
        services: services.into(),
        replacement: replacement.into(),
    }
}

fn srv(priority: u16, weight: u16, port: u16, target: &str) -> SrvRecord {
    SrvRecord {
        priority,
        weight,
        port,
        target: target.into(),
    }
}

/// A fake DNS: answers from the map (absent → NotFound); returns the result and the queries
/// asked, in order.
fn drive(
    uri: &str,
    supported: &[Transport],
    dns: &HashMap<Query, Answer>,
) -> (Result<Vec<Target>, SipError>, Vec<Query>) {
    let mut rng = StdRng::seed_from_u64(7);
    let mut r = Resolution::new(SipTarget::parse(uri).unwrap(), supported);
    let mut asked = Vec::new();
    while let Some(q) = r.poll_query() {
        assert!(asked.len() < 50, "runaway resolution");
        asked.push(q.clone());
        r.handle_answer(dns.get(&q).cloned().unwrap_or(Answer::NotFound), &mut rng);
    }
    (r.finish(), asked)
}

fn zone() -> HashMap<Query, Answer> {
    let n = |s: &str| s.to_string();
    HashMap::from([
        (
            Query::Naptr(n("trunk.example.test")),
            Answer::Naptr(vec![
                naptr(30, 50, "s", "SIPS+D2T", "_sips._tcp.trunk.example.test."),
                naptr(10, 60, "s", "SIP+D2U", "_sip._udp.trunk.example.test."),
                naptr(10, 50, "S", "SIP+D2T", "_sip._tcp.trunk.example.test."),
                naptr(5, 50, "s", "SIP+D2S", "_sip._sctp.trunk.example.test."), // SCTP: not ours
                naptr(6, 50, "u", "E2U+sip", "!^.*$!sip:x@y!"),                 // not an SRV hop
            ]),
        ),
        (
            Query::Srv(n("_sip._tcp.trunk.example.test")),
            Answer::Srv(vec![
                srv(20, 0, 5080, "live.example.test."),
                srv(10, 0, 5070, "dead.example.test."),
            ]),
        ),
        (
            Query::Srv(n("_sip._udp.trunk.example.test")),
            Answer::Srv(vec![srv(10, 0, 5060, "live.example.test.")]),
        ),
        (
            Query::Srv(n("_sips._tcp.trunk.example.test")),
            Answer::Srv(vec![srv(10, 0, 5061, "live.example.test.")]),
        ),
        (
            Query::Addr(n("dead.example.test")),
            Answer::Addr(vec![v4(2)]),
        ),
        (
            Query::Addr(n("live.example.test")),
            Answer::Addr(vec![v4(3), IpAddr::V6(Ipv6Addr::LOCALHOST)]),
        ),
        (
            Query::Srv(n("_sip._udp.nonaptr.example.test")),
            Answer::Srv(vec![srv(10, 0, 5090, "live.example.test")]),
        ),
        (
            Query::Srv(n("_sip._tcp.nonaptr.example.test")),
            Answer::Srv(vec![srv(10, 0, 5091, "dead.example.test")]),
        ),
        (
            Query::Addr(n("plain.example.test")),
            Answer::Addr(vec![v4(4)]),
        ),
    ])
}

// --- URIs ------------------------------------------------------------------------------------

#[test]
fn parses_trunk_uris() {
    let p = |s| SipTarget::parse(s).unwrap();
    let name = |s: &str| Host::Name(s.into());
    assert_eq!(
        p("sip:trunk.example.test"),
        SipTarget {
            secure: false,
            host: name("trunk.example.test"),
            port: None,
            transport: None
        }
    );
    assert_eq!(
        p("sip:Trunk.Example.Test.;transport=TCP").transport,
        Some(Transport::Tcp)
    );
    assert_eq!(
        p("sip:Trunk.Example.Test.;transport=TCP").host,
        name("trunk.example.test")
    );
    assert_eq!(
        p("sips:trunk.example.test;transport=tcp").transport,
        Some(Transport::Tls)
    );
    assert_eq!(
        p("sip:x@trunk.example.test;transport=tls").transport,
        Some(Transport::Tls)
    );
    assert!(p("sips:trunk.example.test").secure);
    let ip = p("sip:1.2.3.4:5070");
    assert_eq!(
        (ip.host, ip.port),
        (Host::Ip("1.2.3.4".parse().unwrap()), Some(5070))
    );
    let v6 = p("<sip:+1555@[::1]:5080;user=phone?X-H=1>");
    assert_eq!(
        (v6.host, v6.port),
        (Host::Ip("::1".parse().unwrap()), Some(5080))
    );
    assert_eq!(p("sip:[::1]").port, None);
    assert_eq!(p("sip:a:b@host.test;maddr=127.0.0.9").host, Host::Ip(v4(9)));
    for bad in [
        "http://x",
        "tel:+1555",
        "sip:",
        "sip:host:port",
        "sip:host:99999",
        "sip:-bad-.test",
        "sip:a..b",
        "sips:host;transport=udp",
        "sip:host;transport=sctp",
        "sip:[::1",
        "sip:[::1]x",
        "sip:host;maddr=",
    ] {
        assert!(
            matches!(SipTarget::parse(bad), Err(SipError::InvalidUri(_))),
            "{bad}"
        );
    }
}

// --- RFC 3263 4.1/4.2 ------------------------------------------------------------------------

#[test]
fn ip_literal_needs_no_query() {
    let dns = HashMap::new();
    for (uri, want) in [
        ("sip:127.0.0.9", t(Transport::Udp, v4(9), 5060)),
        ("sip:127.0.0.9:5070", t(Transport::Udp, v4(9), 5070)),
        (
            "sip:127.0.0.9;transport=tcp",
            t(Transport::Tcp, v4(9), 5060),
        ),
        ("sips:127.0.0.9", t(Transport::Tls, v4(9), 5061)),
        (
            "sip:[::1]:5080;transport=tls",
            t(Transport::Tls, IpAddr::V6(Ipv6Addr::LOCALHOST), 5080),
        ),
    ] {
        let (r, asked) = drive(uri, &ALL, &dns);
        assert_eq!(r.unwrap(), [want], "{uri}");
        assert!(asked.is_empty(), "{uri}: {asked:?}");
    }
    // a transport the UA lacks is a clear error, not a DNS one
    let (r, _) = drive("sips:127.0.0.9", &[Transport::Udp], &dns);
    assert!(matches!(r, Err(SipError::InvalidUri(m)) if m.contains("TLS")));
}

#[test]
fn naptr_then_srv_then_addresses() {
    let (r, asked) = drive("sip:trunk.example.test", &ALL, &zone());
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(
        r.unwrap(),
        [
            t(Transport::Tcp, v4(2), 5070), // NAPTR order 10 pref 50, SRV priority 10 (the dead one)
            t(Transport::Tcp, v4(3), 5080), // … SRV priority 20
            t(Transport::Tcp, lo6, 5080),
            t(Transport::Udp, v4(3), 5060), // NAPTR order 10 pref 60
            t(Transport::Udp, lo6, 5060),
            t(Transport::Tls, v4(3), 5061), // NAPTR order 30
            t(Transport::Tls, lo6, 5061),
        ]
    );
    let s = |x: &str| x.to_string();
    assert_eq!(
        asked,
        [
            Query::Naptr(s("trunk.example.test")),
            Query::Srv(s("_sip._tcp.trunk.example.test")),
            Query::Srv(s("_sip._udp.trunk.example.test")),
            Query::Srv(s("_sips._tcp.trunk.example.test")),
            Query::Addr(s("dead.example.test")),
            Query::Addr(s("live.example.test")), // asked once, used three times
        ]
    );
}

#[test]
fn naptr_filtered_by_scheme_and_supported_transports() {
    let (r, _) = drive("sips:trunk.example.test", &ALL, &zone());
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(
        r.unwrap(),
        [t(Transport::Tls, v4(3), 5061), t(Transport::Tls, lo6, 5061)]
    );
    let (r, asked) = drive("sip:trunk.example.test", &[Transport::Udp], &zone());
    assert_eq!(
        r.unwrap(),
        [t(Transport::Udp, v4(3), 5060), t(Transport::Udp, lo6, 5060)]
    );
    assert!(!asked.contains(&Query::Srv("_sip._tcp.trunk.example.test".into())));
}

#[test]
fn no_naptr_queries_srv_per_supported_transport() {
    let (r, asked) = drive("sip:nonaptr.example.test", &ALL, &zone());
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(
        r.unwrap(),
        [
            t(Transport::Udp, v4(3), 5090),
            t(Transport::Udp, lo6, 5090),
            t(Transport::Tcp, v4(2), 5091)
        ]
    );
    let srvs: Vec<_> = asked
        .iter()
        .filter(|q| matches!(q, Query::Srv(_)))
        .collect();
    assert_eq!(srvs.len(), 3, "udp, tcp, tls: {asked:?}");
}

#[test]
fn no_srv_falls_back_to_addresses_with_default_port() {
    let (r, asked) = drive("sip:plain.example.test", &ALL, &zone());
    assert_eq!(r.unwrap(), [t(Transport::Udp, v4(4), 5060)]);
    assert_eq!(
        asked.last(),
        Some(&Query::Addr("plain.example.test".into()))
    );
    let (r, _) = drive("sips:plain.example.test", &ALL, &zone());
    assert_eq!(r.unwrap(), [t(Transport::Tls, v4(4), 5061)]);
    let (r, _) = drive("sip:plain.example.test;transport=tcp", &ALL, &zone());
    assert_eq!(r.unwrap(), [t(Transport::Tcp, v4(4), 5060)]);
    // a TCP-only UA falls back to TCP rather than to nothing
    let (r, _) = drive("sip:plain.example.test", &[Transport::Tcp], &zone());
    assert_eq!(r.unwrap(), [t(Transport::Tcp, v4(4), 5060)]);
}

#[test]
fn transport_param_skips_naptr() {
    let (r, asked) = drive("sip:trunk.example.test;transport=tcp", &ALL, &zone());
    assert_eq!(r.unwrap()[0], t(Transport::Tcp, v4(2), 5070));
    assert_eq!(asked[0], Query::Srv("_sip._tcp.trunk.example.test".into()));
}

#[test]
fn port_given_means_addresses_only() {
    let (r, asked) = drive("sip:live.example.test:5099", &ALL, &zone());
    let lo6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
    assert_eq!(
        r.unwrap(),
        [t(Transport::Udp, v4(3), 5099), t(Transport::Udp, lo6, 5099)]
    );
    assert_eq!(asked, [Query::Addr("live.example.test".into())]);
}

#[test]
fn nothing_found_and_failures_are_clear_errors() {
    let (r, _) = drive("sip:nope.example.test", &ALL, &zone());
    assert!(matches!(r, Err(SipError::DnsNotFound { name }) if name == "nope.example.test"));
    let failing: HashMap<Query, Answer> = HashMap::from([(
        Query::Naptr("x.test".into()),
        Answer::Failed("timed out".into()),
    )]);
    let (r, _) = drive("sip:x.test", &ALL, &failing);
    assert!(matches!(r, Err(SipError::Dns(m)) if m == "timed out"));
    // a failure beside a success does not hide the targets
    let mut dns = zone();
    dns.insert(
        Query::Addr("dead.example.test".into()),
        Answer::Failed("SERVFAIL".into()),
    );
    let (r, _) = drive("sip:trunk.example.test", &ALL, &dns);
    assert_eq!(r.unwrap()[0], t(Transport::Tcp, v4(3), 5080));
}

// --- RFC 2782 ----------------------------------------------------------------------------------

#[test]
fn srv_priority_then_weighted_random() {
    let records = vec![
        srv(20, 0, 1, "p20"),
        srv(10, 60, 2, "a"),
        srv(10, 30, 3, "b"),
        srv(10, 10, 4, "c"),
        srv(10, 0, 5, "."), // not available
        srv(30, 0, 6, "z."),
    ];
    let mut rng = StdRng::seed_from_u64(42);
    let mut first = HashMap::new();
    for _ in 0..10_000 {
        let o = order_srv(records.clone(), &mut rng);
        let targets: Vec<&str> = o.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets.len(), 5);
        assert_eq!(&targets[3..], ["p20", "z"], "priorities strictly ordered");
        let mut p10 = targets[..3].to_vec();
        p10.sort_unstable();
        assert_eq!(p10, ["a", "b", "c"]);
        *first.entry(targets[0].to_string()).or_insert(0u32) += 1;
    }
    // P(first) ≈ weight / total (RFC 2782's draw in 0..=total shifts it by < 1 %)
    let share = |k: &str| f64::from(first[k]) / 10_000.0;
    assert!((share("a") - 0.6).abs() < 0.03, "{first:?}");
    assert!((share("b") - 0.3).abs() < 0.03, "{first:?}");
    assert!((share("c") - 0.1).abs() < 0.03, "{first:?}");
    // same seed, same order
    let a = order_srv(records.clone(), &mut StdRng::seed_from_u64(1));
    let b = order_srv(records, &mut StdRng::seed_from_u64(1));
    assert_eq!(a, b);
    // all weights 0: every one still comes out
    let zeros = vec![srv(1, 0, 1, "x"), srv(1, 0, 2, "y")];
    assert_eq!(order_srv(zeros, &mut StdRng::seed_from_u64(3)).len(), 2);
}

#[test]
fn naptr_order_and_preference() {
    let o = order_naptr(
        &[
            naptr(20, 10, "s", "SIP+D2U", "_sip._udp.b."),
            naptr(10, 20, "s", "SIP+D2U", "_sip._udp.a."),
            naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.a."),
            naptr(10, 10, "s", "SIP+D2T", "_sip._tcp.a."), // duplicate
            naptr(1, 1, "a", "SIP+D2U", "wrong.flag."),
        ],
        &ALL,
    );
    assert_eq!(
        o,
        [
            (Transport::Tcp, "_sip._tcp.a".to_string()),
            (Transport::Udp, "_sip._udp.a".to_string()),
            (Transport::Udp, "_sip._udp.b".to_string()),
        ]
    );
}

// --- RFC 3263 4.3 ------------------------------------------------------------------------------

#[test]
fn target_set_fails_over_in_order() {
    let a = t(Transport::Tcp, v4(2), 5070);
    let b = t(Transport::Tcp, v4(3), 5080);
    let c = t(Transport::Udp, v4(3), 5060);
    let mut set = TargetSet::new(vec![a, b, c]);
    assert_eq!(set.current(), Some(a));
    assert_eq!(set.handle_failure(Failure::Transport), Some(b));
    assert!(TargetSet::fails_over_on(503));
    assert!(!TargetSet::fails_over_on(486) && !TargetSet::fails_over_on(408));
    assert_eq!(set.handle_failure(Failure::ServiceUnavailable), Some(c));
    assert_eq!(set.remaining(), [c]);
    assert_eq!(set.handle_failure(Failure::Timeout), None);
    assert_eq!(set.handle_failure(Failure::Timeout), None);
    assert!(set.remaining().is_empty());
    assert_eq!(set.targets().len(), 3);
}

/// Seeded mutations of URIs and random DNS answers: errors, never panics.
#[test]
fn mutated_uris_and_random_answers_never_panic() {
    use rand::Rng;
    let seeds = [
        "sip:trunk.example.test",
        "sips:u@[::1]:5061;transport=tcp;maddr=127.0.0.1?h=v",
        "<sip:1.2.3.4:5070;transport=udp>",
    ];
    let alphabet: &[u8] = b"[]:;@=<>?.-_0123456789abcdefsipt\xc3\xa9 ";
    let mut rng = StdRng::seed_from_u64(99);
    for case in 0..600 {
        let mut b = seeds[case % seeds.len()].as_bytes().to_vec();
        for _ in 0..rng.gen_range(1..5) {
            let pos = rng.gen_range(0..=b.len());
            match rng.gen_range(0..3) {
                0 if pos < b.len() => {
                    b.remove(pos);
                }
                1 => b.insert(pos, alphabet[rng.gen_range(0..alphabet.len())]),
                _ => b.truncate(pos),
            }
        }
        let Ok(target) = SipTarget::parse(&String::from_utf8_lossy(&b)) else {
            continue;
        };
        let mut r = Resolution::new(target, &ALL);
        let mut steps = 0;
        while r.poll_query().is_some() && steps < 20 {
            steps += 1;
            let answer = match rng.gen_range(0..5) {
                0 => Answer::Naptr(vec![naptr(
                    rng.gen(),
                    rng.gen(),
                    "s",
                    "SIP+D2U",
                    "_sip._udp.x.",
                )]),
                1 => Answer::Srv(vec![
                    srv(rng.gen(), rng.gen(), rng.gen(), "."),
                    srv(1, 0, 1, "h."),
                ]),
                2 => Answer::Addr(vec![v4(rng.gen())]),
                3 => Answer::Failed("x".into()),
                _ => Answer::NotFound,
            };
            r.handle_answer(answer, &mut rng);
        }
        let _ = r.finish();
    }
}

#[test]
fn a_timeout_ends_the_resolution_with_an_error() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut r = Resolution::new(
        SipTarget::parse("sip:trunk.example.test").unwrap(),
        &[Transport::Udp, Transport::Tcp],
    );
    assert!(matches!(r.poll_query(), Some(Query::Naptr(_))));
    r.handle_answer(Answer::TimedOut("request timed out".into()), &mut rng);
    assert_eq!(r.poll_query(), None, "no further queries after a timeout");
    assert!(matches!(r.finish(), Err(SipError::Dns(e)) if e.contains("timed out")));
}

#[test]
fn special_use_names_never_reach_dns() {
    // RFC 6761 6.4: `.invalid` is NXDOMAIN without a query; the lookup ends "not found".
    for q in [
        Query::Naptr("nobody.invalid".into()),
        Query::Srv("_sip._udp.nobody.invalid".into()),
        Query::Addr("nobody.INVALID.".into()),
        Query::Addr("invalid".into()),
    ] {
        assert_eq!(special_use(&q), Some(Answer::NotFound), "{q:?}");
    }
    let target = SipTarget::parse("sip:alice@nobody.invalid").unwrap();
    let mut r = Resolution::new(target, &[]);
    let mut rng = StdRng::seed_from_u64(1);
    while let Some(q) = r.poll_query() {
        let a = special_use(&q).expect("every query is answered locally");
        r.handle_answer(a, &mut rng);
    }
    assert!(matches!(r.finish(), Err(SipError::DnsNotFound { .. })));
    // 6.3: localhost is the loopback interface.
    assert_eq!(
        special_use(&Query::Addr("localhost".into())),
        Some(Answer::Addr(vec![v4(1), IpAddr::V6(Ipv6Addr::LOCALHOST)]))
    );
    // Ordinary names (even ones ending in the same letters) go to DNS.
    assert_eq!(special_use(&Query::Addr("notinvalid".into())), None);
    assert_eq!(special_use(&Query::Addr("trunk.example.test".into())), None);
}
