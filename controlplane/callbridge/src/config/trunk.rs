//! `[[trunk]]`: carrier trunks with priorities, digest credentials, caller ids and the
//! businesses they carry, beside the single `sip.trunk` (used when no `[[trunk]]` is given);
//! and the resolver settings `sip.dns_servers`, `sip.trunk_keepalive_secs`.

use serde::Deserialize;

use flows::SipUri;

use super::business::BusinessConfig;
use super::locate::{key, Seg};
use super::secret::Secret;
use super::service::SipConfig;

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
}

fn at<T>(segs: Vec<Seg>, reason: impl Into<String>) -> Result<T, (Vec<Seg>, String)> {
    Err((segs, reason.into()))
}

/// Checks the `[[trunk]]` tables against each other, `sip.trunk` and the businesses.
pub(super) fn validate(
    trunks: &[TrunkConfig],
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
    for (i, t) in trunks.iter().enumerate() {
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
        })
        .collect()
}
