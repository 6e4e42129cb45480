//! Tests of the whole configuration: the example, defaults, errors and their positions,
//! `[media]`, `[[business]]` and `[[agent]]` ids and references. The other keys of
//! `[[business]]` and `[[agent]]` are tested in `tests/business.rs` and `tests/agent.rs`,
//! `[dpdk]` in `tests/dpdk.rs`.

use std::net::IpAddr;
use std::time::Duration;

use super::*;

mod agent;
mod business;
mod dpdk;
mod nodes;
mod store;

const FULL: &str = r#"[http]
listen = "127.0.0.1:8080"
[sip]
listen = "127.0.0.1:5060"            # UDP
trunk = "sip:127.0.0.1:5080"
[media]
backend = "socket"
address = "127.0.0.1"
ports = "20000-29999"
[[business]]
id = "acme"
name = "ACME Corp"
[[agent]]
id = "alice"
contact = "sip:alice@127.0.0.1:15064"
businesses = ["acme"]
[lab]
endpoints = false
"#;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new("/etc/callbridge/cb.toml"))
}

/// Parses `text` expecting an error and returns its display.
fn fail(text: &str) -> String {
    match parse(text) {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_prefix(text: &str, prefix: &str) -> String {
    let e = fail(text);
    assert!(
        e.starts_with(&format!("/etc/callbridge/cb.toml:{prefix}")),
        "{e:?} should start with {prefix:?}"
    );
    e
}

/// `FULL` with line `n` (1-based) replaced.
fn with_line(n: usize, line: &str) -> String {
    FULL.lines()
        .enumerate()
        .map(|(i, l)| if i + 1 == n { line } else { l })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_documented_example_loads() {
    let c = parse(FULL).unwrap();
    assert_eq!(c.http.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.sip.trunk, "sip:127.0.0.1:5080");
    assert_eq!(c.media.ports.range(), 20000..=29999);
    assert_eq!(c.media.ports.pairs(), 5000);
    assert_eq!(c.business[0].id.as_str(), "acme");
    assert_eq!(
        c.agent[0].contact,
        Target::Sip("sip:alice@127.0.0.1:15064".into())
    );
    assert!(!c.lab.endpoints);
    // Optional keys took their defaults.
    assert_eq!(c.media.workers, 1);
    assert!(c.media.learn_remote);
    assert_eq!(c.media.timeout_secs, 30);
    assert_eq!(c.sip.from_user, "callbridge");
    assert!(c.sip.user_agent.starts_with("callbridge/"));
    assert_eq!(c.flow, FlowConfig::default());
    assert_eq!(c.flow.timers(), flows::FlowTimers::default());
    assert_eq!(
        c.media.policy().media_timeout,
        Some(Duration::from_secs(30))
    );
}

#[test]
fn built_in_defaults() {
    let c = Config::default();
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
    assert_eq!(c.sip.trunk, "sip:127.0.0.1:5080");
    assert_eq!(c.media.address.to_string(), "127.0.0.1");
    assert_eq!(c.media.ports.to_string(), "20000-29999");
    assert_eq!(c.business.len(), 1);
    assert_eq!(
        (c.business[0].id.as_str(), c.business[0].name.as_str()),
        ("demo", "Demo Business")
    );
    let agents: Vec<(&str, &str)> = c
        .agent
        .iter()
        .map(|a| (a.id.as_str(), a.contact.as_str()))
        .collect();
    assert_eq!(
        agents,
        [
            ("alice", "sip:alice@127.0.0.1:15064"),
            ("bob", "sip:bob@127.0.0.1:15066")
        ]
    );
    assert!(c
        .agent
        .iter()
        .all(|a| a.businesses == [BusinessId::new("demo").unwrap()]));
    assert!(c.lab.endpoints);
    // The defaults pass validation.
    let mut c2 = c.clone();
    assert!(c2.validate(Path::new("/")).is_ok());
}

#[test]
fn optional_keys_parse() {
    let text = format!(
        "{FULL}[flow]\ncustomer_ring_secs = 10\nagent_ring_secs = 5\nmax_agent_attempts = 1\nqueue_timeout_secs = 60\n"
    )
    .replace(
        "ports = \"20000-29999\"",
        "ports = \"20000-20099\"\nworkers = 2\ncores = [2, 3]\nlearn_remote = false\ntimeout_secs = 0",
    )
    .replace("trunk = \"sip:127.0.0.1:5080\"", "trunk = \"sip:127.0.0.1:5080\"\nuser_agent = \"ACME PBX\"\nfrom_user = \"+15550000000\"");
    let c = parse(&text).unwrap();
    assert_eq!(c.media.workers, 2);
    assert_eq!(c.media.cores, Some(vec![2, 3]));
    assert!(!c.media.learn_remote);
    assert_eq!(c.media.policy().media_timeout, None);
    assert_eq!(c.sip.user_agent, "ACME PBX");
    assert_eq!(c.sip.from_user, "+15550000000");
    assert_eq!(c.flow.timers().agent_ring, Duration::from_secs(5));
    assert_eq!(c.flow.max_agent_attempts, 1);
}

#[test]
fn syntax_errors() {
    assert_prefix(&with_line(9, "ports = \"20000-29999"), "9: media.ports: ");
    assert_prefix(&with_line(6, "[media"), "6: media: ");
    assert_prefix(&with_line(12, "name = "), "12: business.name: ");
}

#[test]
fn type_errors() {
    let e = assert_prefix(&with_line(4, "listen = 5060"), "4: sip.listen: ");
    assert!(e.contains("invalid type"), "{e}");
    assert_prefix(&with_line(18, "endpoints = \"yes\""), "18: lab.endpoints: ");
    assert_prefix(
        &with_line(16, "businesses = \"acme\""),
        "16: agent[0].businesses: ",
    );
}

#[test]
fn unknown_keys() {
    let e = assert_prefix(&with_line(7, "bakend = \"socket\""), "7: media.bakend: ");
    assert!(e.contains("unknown field `bakend`"), "{e}");
    assert_prefix(&format!("{FULL}[extra]\nx = 1\n"), "19: extra: ");
    assert_prefix(
        &with_line(15, "contakt = \"sip:alice@127.0.0.1\""),
        "15: agent[0].contakt: ",
    );
}

#[test]
fn missing_required_keys() {
    let e = assert_prefix(&with_line(15, ""), "13: agent[0].contact: ");
    assert!(e.contains("missing field"), "{e}");
}

#[test]
fn bad_socket_addresses() {
    let e = assert_prefix(
        &with_line(2, "listen = \"localhost:8080\""),
        "2: http.listen: ",
    );
    assert!(e.contains("hostnames are not accepted here"), "{e}");
    assert_prefix(&with_line(8, "address = \"127.0.0\""), "8: media.address: ");
    assert_prefix(&with_line(8, "address = \"0.0.0.0\""), "8: media.address: ");
}

// ---- media.extra_addresses ---------------------------------------------------------

/// `FULL` with `extra_addresses = {list}` on line 9, after `media.address`.
fn with_extra(list: &str) -> String {
    with_line(
        8,
        &format!("address = \"127.0.0.1\"\nextra_addresses = {list}"),
    )
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn extra_addresses_default_to_none() {
    let c = parse(FULL).unwrap();
    assert!(c.media.extra_addresses.is_empty());
    assert_eq!(c.media.addresses(), [ip("127.0.0.1")]);
    assert_eq!(Config::default().media.addresses(), [ip("127.0.0.1")]);
}

#[test]
fn extra_addresses_load_in_order_after_the_address() {
    let c = parse(&with_extra("[\"127.0.0.2\", \"127.0.0.3\"]")).unwrap();
    assert_eq!(c.media.extra_addresses, [ip("127.0.0.2"), ip("127.0.0.3")]);
    assert_eq!(
        c.media.addresses(),
        [ip("127.0.0.1"), ip("127.0.0.2"), ip("127.0.0.3")]
    );
    // IPv6 with IPv6.
    let v6 = with_line(
        8,
        "address = \"2001:db8::1\"\nextra_addresses = [\"2001:db8::2\"]",
    );
    assert_eq!(
        parse(&v6).unwrap().media.addresses(),
        [ip("2001:db8::1"), ip("2001:db8::2")]
    );
    // The most there may be: MAX_ADDRESSES - 1.
    let most: Vec<String> = (2..=dp_api::MAX_ADDRESSES)
        .map(|i| format!("\"127.0.0.{i}\""))
        .collect();
    let c = parse(&with_extra(&format!("[{}]", most.join(", ")))).unwrap();
    assert_eq!(c.media.addresses().len(), dp_api::MAX_ADDRESSES);
}

#[test]
fn extra_address_that_is_not_an_ip() {
    let e = parse(&with_extra("[\"127.0.0.2\", \"127.0.0\"]")).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Schema, "{e}");
    let s = e.to_string();
    assert!(
        s.starts_with("/etc/callbridge/cb.toml:9: media.extra_addresses[1]: "),
        "{s}"
    );
    assert!(s.contains("IP address"), "{s}");
    assert_prefix(&with_extra("\"127.0.0.2\""), "9: media.extra_addresses: ");
}

#[test]
fn extra_address_unspecified() {
    let e = assert_prefix(
        &with_extra("[\"127.0.0.2\", \"0.0.0.0\"]"),
        "9: media.extra_addresses[1]: ",
    );
    assert!(e.contains("cannot be written into SDP"), "{e}");
}

#[test]
fn extra_address_equal_to_the_address() {
    let e = assert_prefix(
        &with_extra("[\"127.0.0.1\"]"),
        "9: media.extra_addresses[0]: ",
    );
    assert!(e.contains("is media.address itself"), "{e}");
}

#[test]
fn extra_address_listed_twice() {
    // The error names the line of the second entry.
    let e = assert_prefix(
        &with_extra("[\"127.0.0.2\",\n  \"127.0.0.3\",\n  \"127.0.0.2\"]"),
        "11: media.extra_addresses[2]: ",
    );
    assert!(e.contains("127.0.0.2 is listed twice"), "{e}");
}

#[test]
fn extra_address_of_the_other_family() {
    let e = assert_prefix(&with_extra("[\"::2\"]"), "9: media.extra_addresses[0]: ");
    assert!(
        e.contains("::2 is IPv6 but media.address 127.0.0.1 is IPv4"),
        "{e}"
    );
    let v6 = with_line(8, "address = \"::1\"\nextra_addresses = [\"127.0.0.2\"]");
    let e = assert_prefix(&v6, "9: media.extra_addresses[0]: ");
    assert!(e.contains("is IPv4 but media.address ::1 is IPv6"), "{e}");
}

#[test]
fn too_many_extra_addresses() {
    let all: Vec<String> = (2..=dp_api::MAX_ADDRESSES + 1)
        .map(|i| format!("\"127.0.0.{i}\""))
        .collect();
    let e = assert_prefix(
        &with_extra(&format!("[{}]", all.join(", "))),
        "9: media.extra_addresses: ",
    );
    let (n, most) = (dp_api::MAX_ADDRESSES, dp_api::MAX_ADDRESSES - 1);
    assert!(
        e.contains(&format!("lists {n} addresses; at most {most}")),
        "{e}"
    );
}

#[test]
fn bad_port_ranges() {
    let e = assert_prefix(&with_line(9, "ports = \"30000-20000\""), "9: media.ports: ");
    assert!(e.contains("reversed"), "{e}");
    let e = assert_prefix(&with_line(9, "ports = \"20000-29998\""), "9: media.ports: ");
    assert!(e.contains("odd"), "{e}");
    let e = assert_prefix(&with_line(9, "ports = \"20001-29999\""), "9: media.ports: ");
    assert!(e.contains("even"), "{e}");
    assert_prefix(&with_line(9, "ports = \"20000\""), "9: media.ports: ");
    assert_prefix(&with_line(9, "ports = \"20000-70000\""), "9: media.ports: ");
    let e = assert_prefix(
        &with_line(9, "ports = \"20000-20003\"\nworkers = 3"),
        "10: media.workers: ",
    );
    assert!(e.contains("port pairs"), "{e}");
    assert_prefix(
        &with_line(9, "ports = \"20000-20003\"\ncores = [1, 2]"),
        "10: media.cores: ",
    );
    assert_prefix(
        &with_line(9, "ports = \"20000-20003\"\nworkers = 2\ncores = [1, 1]"),
        "11: media.cores[1]: ",
    );
}

#[test]
fn bad_contacts_and_trunk() {
    let e = assert_prefix(
        &with_line(15, "contact = \"alice\""),
        "15: agent[0].contact: ",
    );
    assert!(e.contains("E.164"), "{e}");
    assert_prefix(
        &with_line(15, "contact = \"+12\""),
        "15: agent[0].contact: ",
    );
    let e = assert_prefix(
        &with_line(5, "trunk = \"127.0.0.1:5080\""),
        "5: sip.trunk: ",
    );
    assert!(e.contains("sip:"), "{e}");
    assert_prefix(&with_line(11, "id = \"ac me\""), "11: business[0].id: ");
}

#[test]
fn unknown_business_reference() {
    let e = assert_prefix(
        &with_line(16, "businesses = [\"acme\", \"globex\"]"),
        "16: agent[0].businesses[1]: ",
    );
    assert!(e.contains("unknown business \"globex\""), "{e}");
}

#[test]
fn duplicate_ids() {
    let dup_agent = format!("{FULL}[[agent]]\nid = \"bob\"\ncontact = \"+15551234567\"\n[[agent]]\nid = \"alice\"\ncontact = \"+15551234568\"\n");
    let e = assert_prefix(&dup_agent, "23: agent[2].id: ");
    assert!(e.contains("duplicate agent id \"alice\""), "{e}");
    let dup_business = FULL.replace(
        "[[agent]]",
        "[[business]]\nid = \"acme\"\nname = \"Again\"\n[[agent]]",
    );
    assert_prefix(&dup_business, "14: business[1].id: ");
    assert_prefix(
        &FULL
            .replace("[[business]]\nid = \"acme\"\nname = \"ACME Corp\"\n", "")
            .replace("businesses = [\"acme\"]", ""),
        "1: business: ",
    );
}

#[test]
fn backends() {
    let e = assert_prefix(&with_line(7, "backend = \"dpdk\""), "7: media.backend: ");
    assert!(e.contains("needs a [dpdk] section"), "{e}");
    let e = assert_prefix(&with_line(7, "backend = \"xdp\""), "7: media.backend: ");
    assert!(e.contains("unknown variant"), "{e}");
}

#[test]
fn announcement_paths_are_relative_to_the_file() {
    let dir = std::env::temp_dir().join(format!("callbridge-config-test-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("prompts")).unwrap();
    std::fs::write(dir.join("prompts/hold.wav"), b"RIFF").unwrap();
    let file = dir.join("cb.toml");
    let text = with_line(
        9,
        "ports = \"20000-29999\"\nannouncement = \"prompts/hold.wav\"",
    );
    std::fs::write(&file, &text).unwrap();
    let c = Config::load(&file).unwrap();
    assert_eq!(c.media.announcement, Some(dir.join("prompts/hold.wav")));

    std::fs::write(&file, text.replace("hold.wav", "gone.wav")).unwrap();
    let e = Config::load(&file).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Invalid);
    let s = e.to_string();
    assert!(
        s.starts_with(&format!(
            "{}:10: media.announcement: file not found: ",
            file.display()
        )),
        "{s}"
    );
    assert!(s.contains("gone.wav"));

    let missing = dir.join("nope.toml");
    let e = Config::load(&missing).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Io);
    assert!(e
        .to_string()
        .starts_with(&format!("{}:0: (file): ", missing.display())));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn error_kinds() {
    assert_eq!(parse("[http").unwrap_err().kind, ConfigErrorKind::Syntax);
    assert_eq!(parse("x = 1").unwrap_err().kind, ConfigErrorKind::Schema);
    assert_eq!(
        parse(&with_line(7, "backend = \"dpdk\"")).unwrap_err().kind,
        ConfigErrorKind::Invalid
    );
    assert_eq!(
        parse("[[business]]\nid = \"a\"\nname = \"A\"\n").map(|c| c.agent.len()),
        Ok(0)
    );
}
