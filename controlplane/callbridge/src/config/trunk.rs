//! `[[trunk]]`: carrier trunks with priorities, digest credentials, caller ids and the
//! businesses they carry, beside the single `sip.trunk` (used when no `[[trunk]]` is given);
//! and the resolver settings `sip.dns_servers`, `sip.trunk_keepalive_secs`.

use serde::Deserialize;

use flows::SipUri;

use super::business::BusinessConfig;
use super::locate::{key, Seg};
use super::media::{LegMedia, SrtpPolicy};
use super::secret::Secret;
use super::sip_section::SipConfig;

/// One `[[trunk]]` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TrunkConfig {
    /// `uri`: `sip:HOST[:PORT][;transport=udp|tcp|tls]` or `sips:…`; a host name is resolved
    /// per RFC 3263 (NAPTR, SRV, A/AAAA).
    pub(crate) uri: String,
    /// `priority`: lower is tried first. Default 0.
    #[serde(default)]
    pub(crate) priority: u32,
    /// `username`: digest user name for the trunk's 401/407 challenges (with `password`).
    #[serde(default)]
    pub(crate) username: Option<String>,
    /// `password`: digest password (with `username`).
    #[serde(default)]
    pub(crate) password: Option<Secret>,
    /// `caller_id`: From user and P-Asserted-Identity when the business sets none.
    #[serde(default)]
    pub(crate) caller_id: Option<String>,
    /// `businesses`: the businesses it carries. Default: all.
    #[serde(default)]
    pub(crate) businesses: Option<Vec<String>>,
    /// `srtp`: SDES-SRTP on its calls, `"off"` (default), `"optional"` or `"required"`; keys
    /// only cross TLS, so anything but `"off"` needs `sips:` or `;transport=tls`.
    #[serde(default)]
    pub(crate) srtp: SrtpPolicy,
    /// `media`: `srtp` may also be given here (`[agent.media]` / `[trunk.media]`, the
    /// `media.srtp` of the leg); when both are given they must agree.
    #[serde(default)]
    pub(crate) media: LegMedia,
}

fn at<T>(segs: Vec<Seg>, reason: impl Into<String>) -> Result<T, (Vec<Seg>, String)> {
    Err((segs, reason.into()))
}

/// Checks the `[[trunk]]` tables against each other, `sip.trunk` and the businesses.
pub(super) fn validate(
    trunks: &mut [TrunkConfig],
    sip: &SipConfig,
    businesses: &[BusinessConfig],
) -> Result<(), (Vec<Seg>, String)> {
    let seg = |i: usize, k: &str| vec![key("trunk"), Seg::Index(i), key(k)];
    if !trunks.is_empty() && sip.trunk != SipConfig::default().trunk {
        return at(
            vec![key("sip"), key("trunk")],
            "set either sip.trunk or [[trunk]] tables, not both",
        );
    }
    for t in trunks.iter_mut() {
        if let Some(m) = t.media.srtp {
            if t.srtp == SrtpPolicy::Off || t.srtp == m {
                t.srtp = m;
            }
        }
    }
    for (i, t) in trunks.iter().enumerate() {
        if t.media.srtp.is_some_and(|m| m != t.srtp) {
            return at(
                seg(i, "srtp"),
                "disagrees with the trunk's media.srtp; give one of them",
            );
        }
        if let Err(e) = SipUri::parse(&t.uri) {
            return at(seg(i, "uri"), e.to_string());
        }
        if trunks[..i].iter().any(|o| o.uri == t.uri) {
            return at(seg(i, "uri"), format!("{} is listed twice", t.uri));
        }
        match (&t.username, &t.password) {
            (Some(u), Some(_)) if u.is_empty() || u.contains(['"', '\r', '\n']) => {
                return at(
                    seg(i, "username"),
                    "must be non-empty, without quotes or line breaks",
                );
            }
            (Some(_), None) => {
                return at(seg(i, "password"), "username is set but password is not")
            }
            (None, Some(_)) => {
                return at(seg(i, "username"), "password is set but username is not")
            }
            _ => {}
        }
        if let Some(c) = &t.caller_id {
            let ok = |ch: char| ch.is_ascii_alphanumeric() || "+-_.".contains(ch);
            if c.is_empty() || !c.chars().all(ok) {
                return at(
                    seg(i, "caller_id"),
                    format!("{c:?} is not a SIP user part (digits, letters, + - _ .)"),
                );
            }
        }
        if t.srtp != SrtpPolicy::Off && !uri_is_tls(&t.uri) {
            return at(
                seg(i, "srtp"),
                "SRTP keys (SDES) only cross TLS: the uri needs sips: or ;transport=tls",
            );
        }
        for (j, b) in t.businesses.iter().flatten().enumerate() {
            if !businesses.iter().any(|x| x.id.as_str() == b) {
                return at(
                    vec![
                        key("trunk"),
                        Seg::Index(i),
                        key("businesses"),
                        Seg::Index(j),
                    ],
                    format!("no business {b:?} is configured"),
                );
            }
        }
    }
    Ok(())
}

/// Whether a SIP URI is reached over TLS (`sips:` or `;transport=tls`).
pub(crate) fn uri_is_tls(uri: &str) -> bool {
    SipUri::parse(uri).is_ok_and(|u| u.secure || u.transport == Some("tls"))
}

/// The trunks to dial through: the `[[trunk]]` tables, or `sip.trunk` alone.
pub(crate) fn specs(trunks: &[TrunkConfig], sip: &SipConfig) -> Vec<b2bua::TrunkSpec> {
    if trunks.is_empty() {
        return vec![b2bua::TrunkSpec {
            name: "sip.trunk".into(),
            uri: sip.trunk.clone(),
            priority: 0,
            credentials: None,
            caller_id: None,
            businesses: None,
            srtp: sip::sdp::Srtp::Off,
        }];
    }
    trunks
        .iter()
        .enumerate()
        .map(|(i, t)| b2bua::TrunkSpec {
            name: format!("trunk[{i}]"),
            uri: t.uri.clone(),
            priority: t.priority,
            credentials: match (&t.username, &t.password) {
                (Some(u), Some(p)) => Some(sip::digest::Credentials {
                    username: u.clone(),
                    password: p.expose().to_owned(),
                }),
                _ => None,
            },
            caller_id: t.caller_id.clone(),
            businesses: t.businesses.clone(),
            srtp: t.srtp.policy(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::Config;

    const BUSINESS: &str = "[[business]]\nid = \"acme\"\nname = \"ACME\"\n";

    fn parse(text: &str) -> Result<Config, String> {
        Config::parse(&format!("{BUSINESS}{text}"), Path::new("/etc/cb.toml"))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn trunk_tables_become_specs_in_order_with_credentials() {
        let c = parse(
            "[[trunk]]\nuri = \"sip:192.0.2.1;transport=tcp\"\npriority = 2\n\
             [[trunk]]\nuri = \"sips:gw.example.net\"\nusername = \"u\"\npassword = \"p\"\ncaller_id = \"+15550001\"\nbusinesses = [\"acme\"]\n",
        )
        .unwrap();
        let specs = super::specs(&c.trunk, &c.sip);
        assert_eq!(specs.len(), 2);
        assert_eq!((specs[0].name.as_str(), specs[0].priority), ("trunk[0]", 2));
        assert_eq!(
            specs[1].credentials.as_ref().map(|c| c.username.as_str()),
            Some("u")
        );
        assert_eq!(
            specs[1].businesses.as_deref(),
            Some(&["acme".to_string()][..])
        );
        // Without tables, sip.trunk is the one trunk.
        let c = parse("").unwrap();
        let specs = super::specs(&c.trunk, &c.sip);
        assert_eq!(
            (specs.len(), specs[0].uri.as_str()),
            (1, "sip:127.0.0.1:5080")
        );
        // Every literal trunk address may send INVITEs by default.
        let c =
            parse("[[trunk]]\nuri = \"sip:192.0.2.1\"\n[[trunk]]\nuri = \"sip:192.0.2.2:5070\"\n")
                .unwrap();
        let uris: Vec<String> = c.trunk.iter().map(|t| t.uri.clone()).collect();
        let acl: Vec<String> = c
            .sip
            .invite_acl(&uris)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(
            acl.contains(&"192.0.2.1/32".to_string()) && acl.contains(&"192.0.2.2/32".to_string()),
            "{acl:?}"
        );
    }

    #[test]
    fn bad_trunks_name_the_table_and_key() {
        for (text, want) in [
            (
                "[[trunk]]\nuri = \"http://x\"\n",
                "/etc/cb.toml:5: trunk[0].uri: ",
            ),
            (
                "[[trunk]]\nuri = \"sip:192.0.2.1\"\nusername = \"u\"\n",
                "/etc/cb.toml:4: trunk[0].password: username is set but password is not",
            ),
            (
                "[[trunk]]\nuri = \"sip:192.0.2.1\"\nbusinesses = [\"nope\"]\n",
                "/etc/cb.toml:6: trunk[0].businesses[0]: no business \"nope\"",
            ),
            (
                "[[trunk]]\nuri = \"sip:192.0.2.1\"\n[[trunk]]\nuri = \"sip:192.0.2.1\"\n",
                "/etc/cb.toml:7: trunk[1].uri: sip:192.0.2.1 is listed twice",
            ),
            (
                "[sip]\ntrunk = \"sip:192.0.2.9\"\n[[trunk]]\nuri = \"sip:192.0.2.1\"\n",
                "/etc/cb.toml:5: sip.trunk: set either",
            ),
            (
                "[[trunk]]\nuri = \"sip:192.0.2.1\"\ncaller_id = \"a b\"\n",
                "/etc/cb.toml:6: trunk[0].caller_id: ",
            ),
            (
                "[sip]\ntrunk_keepalive_secs = 2\n",
                "/etc/cb.toml:5: sip.trunk_keepalive_secs: 2 is outside 5..=3600",
            ),
        ] {
            let e = parse(text).unwrap_err();
            assert!(
                e.starts_with(want),
                "{text:?}:\n{e}\nshould start with\n{want}"
            );
        }
    }
}
