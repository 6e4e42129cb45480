//! `[[agent]]`: token, name, skills, wrap-up; and the built-in agents. Lines refer to `FULL`
//! with `keys` inserted from line 17 on.

use super::*;

/// `FULL` with `keys` (which may span lines) after alice's `businesses`, from line 17 on.
fn agent(keys: &str) -> String {
    with_line(16, &format!("businesses = [\"acme\"]\n{keys}"))
}

/// A second agent `bob` (its `[[agent]]` on line 17) with `keys` from line 19 on.
fn bob(keys: &str) -> String {
    agent(&format!(
        "[[agent]]\nid = \"bob\"\n{keys}\ncontact = \"+15551234567\""
    ))
}

fn alice(text: &str) -> AgentConfig {
    parse(text).unwrap().agent.remove(0)
}

fn invalid(text: &str, prefix: &str) -> String {
    let e = parse(text).unwrap_err();
    assert_eq!(e.kind, ConfigErrorKind::Invalid, "{e}");
    let e = e.to_string();
    assert!(
        e.starts_with(&format!("/etc/callbridge/cb.toml:{prefix}")),
        "{e:?} should start with {prefix:?}"
    );
    e
}

#[test]
fn every_agent_key_has_a_safe_default() {
    let a = alice(FULL);
    assert_eq!(a.token, None, "no desktop login");
    assert_eq!(a.name, None);
    assert_eq!(a.display_name(), "alice");
    assert!(a.skills.is_empty());
    assert_eq!(a.wrap_up(), Duration::from_secs(10));
    assert_eq!(
        a,
        AgentConfig::new(
            AgentId::new("alice").unwrap(),
            Target::Sip("sip:alice@127.0.0.1:15064".into()),
            vec![BusinessId::new("acme").unwrap()]
        )
    );
}

#[test]
fn every_agent_key_is_read() {
    let a = alice(&agent(
        "token = \"t-alice-0123456789abcdef\"\nname = \"Alice Example\"\nskills = [\"billing\", \"de\"]\nwrap_up_secs = 0",
    ));
    assert_eq!(
        a.token.as_ref().map(Secret::expose),
        Some("t-alice-0123456789abcdef")
    );
    assert_eq!(a.display_name(), "Alice Example");
    let skills: Vec<&str> = a.skills.iter().map(flows::Skill::as_str).collect();
    assert_eq!(skills, ["billing", "de"]);
    assert_eq!(a.wrap_up(), Duration::ZERO);
    let debug = format!("{a:?}");
    assert!(
        !debug.contains("0123456789abcdef") && debug.contains("token: Some(\"***\")"),
        "{debug}"
    );
}

#[test]
fn token() {
    let e = invalid(&agent("token = \"t-alice\""), "17: agent[0].token: ");
    assert!(
        e.ends_with("an agent token needs at least 16 characters; this one has 7"),
        "{e}"
    );
    assert!(!e.contains("t-alice\""), "the token is never quoted: {e}");
    let e = invalid(
        &agent("token = \"t-alice 0123456789abcdef\""),
        "17: agent[0].token: ",
    );
    assert!(e.contains("only visible ASCII"), "{e}");
    let e = invalid(
        &bob("token = \"t-0123456789abcdef\"").replace(
            "businesses = [\"acme\"]\n",
            "businesses = [\"acme\"]\ntoken = \"t-0123456789abcdef\"\n",
        ),
        "20: agent[1].token: ",
    );
    assert!(
        e.ends_with("is also the token of agent \"alice\"; tokens must be unique"),
        "{e}"
    );
    let e = invalid(
        &agent("token = \"k-acme-0123456789abcdef\"").replace(
            "name = \"ACME Corp\"\n",
            "name = \"ACME Corp\"\napi_keys = [\"k-acme-0123456789abcdef\"]\n",
        ),
        "18: agent[0].token: ",
    );
    assert!(e.contains("is also an API key of business \"acme\""), "{e}");
    assert!(!e.contains("0123456789abcdef"), "{e}");
}

#[test]
fn name() {
    assert_eq!(alice(&agent("name = \"Alice\"")).display_name(), "Alice");
    invalid(
        &agent("name = \" \""),
        "17: agent[0].name: must be a non-empty single line",
    );
    invalid(&agent("name = \"Alice\\nExample\""), "17: agent[0].name: ");
}

#[test]
fn skills() {
    let e = assert_prefix(
        &agent("skills = [\"billing\", \"de en\"]"),
        "17: agent[0].skills[1]: ",
    );
    assert!(e.contains("invalid skill"), "{e}");
    invalid(
        &agent("skills = [\"billing\",\n  \"billing\"]"),
        "18: agent[0].skills[1]: skill \"billing\" is listed twice",
    );
}

#[test]
fn wrap_up_secs() {
    assert_eq!(
        alice(&agent("wrap_up_secs = 3600")).wrap_up(),
        Duration::from_secs(3600)
    );
    invalid(
        &agent("wrap_up_secs = 3601"),
        "17: agent[0].wrap_up_secs: 3601 is out of range 0..=3600",
    );
    assert_prefix(&agent("wrap_up_secs = 1.5"), "17: agent[0].wrap_up_secs: ");
}

#[test]
fn built_in_agents_and_business() {
    let c = Config::default();
    let b = &c.business[0];
    assert_eq!((b.time_zone.as_str(), &b.opening_hours), ("UTC", &None));
    assert!(b.api_keys.is_empty(), "loopback clients need no key");
    let names: Vec<&str> = c.agent.iter().map(AgentConfig::display_name).collect();
    assert_eq!(names, ["Alice", "Bob"]);
    let tokens: Vec<&str> = c
        .agent
        .iter()
        .map(|a| a.token.as_ref().unwrap().expose())
        .collect();
    for t in &tokens {
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.chars().all(|c| c.is_ascii_alphanumeric()), "{t}");
    }
    assert_ne!(tokens[0], tokens[1]);
    assert_eq!(
        tokens,
        demo_tokens().iter().map(String::as_str).collect::<Vec<_>>(),
        "made once per process"
    );
    assert_eq!(Config::default(), c);
    assert!(!format!("{c:?}").contains(tokens[0]));
}

#[test]
fn registered_contacts_take_sip_credentials() {
    let a = alice(&with_line(
        15,
        "contact = \"registered\"\nsip_username = \"alice7\"\nsip_password = \"hunter2-long\"",
    ));
    assert_eq!(a.contact.registered_user(), Some("alice7"));
    assert!(
        !format!("{a:?}").contains("hunter2"),
        "the password never shows"
    );
    invalid(
        &with_line(15, "contact = \"registered\""),
        "15: agent[0].contact: contact = \"registered\" needs sip_username and sip_password",
    );
    invalid(
        &agent("sip_username = \"alice7\""),
        "13: agent[0].sip_password: sip_username is set but sip_password is not",
    );
    invalid(
        &agent("sip_username = \"alice7\"\nsip_password = \"short\""),
        "18: agent[0].sip_password: must have at least 8 characters",
    );
    invalid(
        &agent("srtp = \"required\""),
        "17: agent[0].srtp: SRTP keys (SDES) only cross TLS",
    );
    let a = alice(&with_line(
        15,
        "contact = \"sips:alice@127.0.0.1:15065\"\nsrtp = \"optional\"",
    ));
    assert_eq!(a.srtp.policy(), sip::sdp::Srtp::Optional);
    // The same as the agent's media.srtp.
    let a = alice(&with_line(
        15,
        "contact = \"sips:alice@127.0.0.1:15065\"\nmedia = { srtp = \"required\" }",
    ));
    assert_eq!(a.srtp.policy(), sip::sdp::Srtp::Required);
}
