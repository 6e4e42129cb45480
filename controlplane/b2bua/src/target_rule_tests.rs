//! One rule for target URIs: what `flows` accepts (at submit, in the configuration) is what
//! the dialler dials, and nothing else. `sip_target` reads a URI with `flows::SipUri::parse`
//! and only maps its parts, so a second opinion (sip's `SipTarget::parse`, rsip) can no longer
//! refuse a host name that a call request was accepted with.

use std::time::{Duration, Instant};

use super::*;

/// (URI, accepted): the cases the two layers used to disagree on are marked.
const CASES: &[(&str, bool)] = &[
    ("sip:alice@127.0.0.1:5070", true),
    ("sip:127.0.0.1", true),
    ("sip:alice@[::1]:5070;transport=tcp", true),
    ("sips:alice@[2001:db8::7]", true),
    // Host names: flows accepted them, and without a resolver sip refused them ("no DNS").
    ("sips:alice@pbx.example.test", true),
    ("sip:pbx.example.test:5080;transport=udp", true),
    ("sip:alice@Host-Name.Example.TEST;transport=tls", true),
    ("sip:alice@localhost", true),
    ("sip:alice@nobody.invalid", true),
    // Refused by the one rule (sip alone would have taken some of these).
    ("sip:alice@host_name.example", false),
    ("sip:alice@127.0.0.1;maddr=10.0.0.1", false),
    ("sip:alice@127.0.0.1;lr", false),
    ("sip:alice@127.0.0.1?subject=x", false),
    ("sips:alice@127.0.0.1;transport=udp", false),
    ("sip:alice@127.0.0.1:0", false),
    ("sip:alice@127.0.0.1:99999", false),
    ("sip:alice@-bad.example", false),
    ("sip:alice@pbx.example.", false),
    ("sip:alice@[::1", false),
    ("sip:@127.0.0.1", false),
    ("<sip:alice@127.0.0.1>", false),
    ("tel:+15551234567", false),
];

#[test]
fn flows_and_the_dialler_accept_the_same_targets() {
    for &(uri, ok) in CASES {
        assert_eq!(flows::Target::parse(uri).is_ok(), ok, "flows: {uri}");
        assert_eq!(sip_target(uri).is_ok(), ok, "dialler: {uri}");
        if ok {
            // And they mean the same as sip's own reading of the URI (host, port,
            // transport, sips), so nothing is dialled differently from what was accepted.
            let ours = sip_target(uri).unwrap();
            let sips = sip::locate::SipTarget::parse(uri).unwrap();
            assert_eq!(ours, sips, "{uri}");
        }
    }
}

#[test]
fn an_ip_literal_needs_no_resolver_and_a_name_needs_one() {
    let t = sip_target("sip:alice@127.0.0.1:5070").unwrap();
    let targets = sip::locate::Resolution::new(t, &[]).finish().unwrap();
    assert_eq!(
        targets,
        [sip::locate::Target {
            transport: sip::Transport::Udp,
            addr: "127.0.0.1:5070".parse().unwrap(),
        }]
    );
    let t = sip_target("sip:alice@pbx.example.test").unwrap();
    assert!(matches!(t.host, sip::locate::Host::Name(ref n) if n == "pbx.example.test"));
}

#[tokio::test]
async fn an_invalid_name_is_not_found_without_asking_dns() {
    // A name server that would never answer (the discard port): any query would take the
    // full timeout. `.invalid` (RFC 6761) is answered locally, at once.
    let locator = sip::locate::Locator::new(sip::locate::LocatorConfig {
        name_servers: vec!["127.0.0.1:9".parse().unwrap()],
        timeout: Duration::from_secs(5),
        attempts: 1,
        ..sip::locate::LocatorConfig::default()
    })
    .unwrap();
    let started = Instant::now();
    let r = locator
        .resolve(sip_target("sip:alice@nobody.invalid").unwrap())
        .await;
    assert!(matches!(r, Err(sip::SipError::DnsNotFound { .. })), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1));
}
