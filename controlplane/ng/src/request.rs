//! One ng request: `<cookie> <bencoded dictionary>`, read into a typed [`Request`].
//!
//! Only what a media node acts on is typed; other keys are ignored, as rtpengine ignores
//! keys it does not know. Flags arrive either as the `flags` list or as keys of their own
//! (Kamailio's module sends `replace`, `ICE`, `transport-protocol`, `direction` as keys);
//! both spellings of a flag (`trust-address` and `trust address`) are accepted.

use std::net::IpAddr;

use crate::bencode::{self, Value};
use crate::NgError;

/// Longest cookie accepted (Kamailio's are `<pid>_<counter>`).
pub const MAX_COOKIE: usize = 64;

/// The commands a media node answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    /// `ping` → `pong`.
    Ping,
    /// `offer`: the caller's SDP, rewritten for the callee.
    Offer,
    /// `answer`: the callee's SDP, rewritten for the caller; the legs are bridged.
    Answer,
    /// `delete`: the call (or one party's side) ends.
    Delete,
    /// `query`: one call's counters.
    Query,
    /// `list`: the call-ids.
    List,
    /// `statistics`: the node's totals.
    Statistics,
}

impl CommandKind {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "ping" => Self::Ping,
            "offer" => Self::Offer,
            "answer" => Self::Answer,
            "delete" => Self::Delete,
            "query" => Self::Query,
            "list" => Self::List,
            "statistics" => Self::Statistics,
            _ => return None,
        })
    }

    /// The command's name on the wire.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Ping => "ping",
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::Delete => "delete",
            Self::Query => "query",
            Self::List => "list",
            Self::Statistics => "statistics",
        }
    }
}

/// What the `ICE` key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ice {
    /// Not given (or `default`, `optional`…): ICE attributes are still removed, since this
    /// node is no ICE agent and must not leave candidates that bypass it.
    #[default]
    Default,
    /// `remove`: strip every ICE attribute.
    Remove,
}

/// A request, borrowing its strings from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The command.
    pub command: CommandKind,
    /// `call-id`.
    pub call_id: Option<&'a str>,
    /// `from-tag`.
    pub from_tag: Option<&'a str>,
    /// `to-tag`.
    pub to_tag: Option<&'a str>,
    /// `via-branch`.
    pub via_branch: Option<&'a str>,
    /// `sdp`.
    pub sdp: Option<&'a str>,
    /// `received-from`: the SIP message's source address.
    pub received_from: Option<IpAddr>,
    /// The `trust-address` flag: use the SDP's addresses (the default here, as in current
    /// rtpengine); `SIP-source-address` asks for `received-from` instead.
    pub sip_source_address: bool,
    /// `replace` has `origin`: rewrite the `o=` line's address.
    pub replace_origin: bool,
    /// `replace` has `session-connection`: rewrite the session-level `c=` line.
    pub replace_session_connection: bool,
    /// `ICE`.
    pub ice: Ice,
    /// `transport-protocol` (e.g. `RTP/AVP`): written into the rewritten `m=` lines.
    pub transport_protocol: Option<&'a str>,
    /// `list`'s `limit` (default 32).
    pub limit: Option<i64>,
    /// `delete`'s `fatal` flag: an unknown call is an error rather than a warning.
    pub fatal: bool,
}

/// Splits a datagram into its cookie and the rest (the dictionary's bytes).
///
/// # Errors
/// [`NgError::Malformed`] when there is no cookie or it is too long.
pub fn split_cookie(msg: &[u8]) -> Result<(&[u8], &[u8]), NgError> {
    let sp = msg
        .iter()
        .position(|&b| b == b' ')
        .ok_or_else(|| NgError::Malformed("no space after the cookie".into()))?;
    if sp == 0 || sp > MAX_COOKIE {
        return Err(NgError::Malformed(format!(
            "cookie must be 1 to {MAX_COOKIE} bytes"
        )));
    }
    Ok((&msg[..sp], &msg[sp + 1..]))
}

fn strings<'a>(v: Option<&Value<'a>>) -> Vec<&'a str> {
    match v {
        Some(Value::List(l)) => l.iter().filter_map(Value::as_str).collect(),
        Some(v) => v.as_str().into_iter().collect(),
        None => Vec::new(),
    }
}

/// Normalises a flag's spelling: `trust address`, `trust-address`, `Trust-Address` → `trust-address`.
fn norm(flag: &str) -> String {
    flag.trim().to_ascii_lowercase().replace([' ', '_'], "-")
}

impl<'a> Request<'a> {
    /// Reads the dictionary part of a message.
    ///
    /// # Errors
    /// [`NgError::Bencode`] for bad bencode, [`NgError::Malformed`] when it is not a
    /// dictionary or has no `command`, [`NgError::UnknownCommand`] for a command this node
    /// does not implement.
    pub fn parse(dict: &'a [u8]) -> Result<Self, NgError> {
        let v = bencode::decode(dict)?;
        if !matches!(v, Value::Dict(_)) {
            return Err(NgError::Malformed("the message is not a dictionary".into()));
        }
        let command = v
            .get("command")
            .and_then(Value::as_str)
            .ok_or_else(|| NgError::Malformed("no command".into()))?;
        let command = CommandKind::parse(command)
            .ok_or_else(|| NgError::UnknownCommand(command.chars().take(40).collect()))?;
        let text = |k: &str| v.get(k).and_then(Value::as_str);
        let mut flags: Vec<String> = strings(v.get("flags")).into_iter().map(norm).collect();
        let replace: Vec<String> = strings(v.get("replace")).into_iter().map(norm).collect();
        flags.extend(replace.iter().map(|r| format!("replace-{r}")));
        let has = |f: &str| flags.iter().any(|x| x == f);
        let received_from = match v.get("received-from").and_then(Value::as_list) {
            Some([_, addr, ..]) => addr.as_str().and_then(|a| a.trim().parse().ok()),
            _ => None,
        };
        let ice = match text("ICE").map(norm).as_deref() {
            Some("remove") => Ice::Remove,
            _ if has("ice-remove") => Ice::Remove,
            _ => Ice::Default,
        };
        Ok(Self {
            command,
            call_id: text("call-id"),
            from_tag: text("from-tag"),
            to_tag: text("to-tag"),
            via_branch: text("via-branch"),
            sdp: text("sdp"),
            received_from,
            sip_source_address: has("sip-source-address") && !has("trust-address"),
            replace_origin: has("replace-origin"),
            replace_session_connection: has("replace-session-connection"),
            ice,
            transport_protocol: text("transport-protocol"),
            limit: v.get("limit").and_then(Value::as_int),
            fatal: has("fatal"),
        })
    }

    /// `call-id`, required by every command but ping, list and statistics.
    ///
    /// # Errors
    /// [`NgError::Missing`].
    pub fn need_call_id(&self) -> Result<&'a str, NgError> {
        self.call_id
            .filter(|s| !s.is_empty())
            .ok_or(NgError::Missing("call-id"))
    }

    /// `from-tag`, required by offer, answer and delete.
    ///
    /// # Errors
    /// [`NgError::Missing`].
    pub fn need_from_tag(&self) -> Result<&'a str, NgError> {
        self.from_tag
            .filter(|s| !s.is_empty())
            .ok_or(NgError::Missing("from-tag"))
    }

    /// `sdp`, required by offer and answer.
    ///
    /// # Errors
    /// [`NgError::Missing`].
    pub fn need_sdp(&self) -> Result<&'a str, NgError> {
        self.sdp.ok_or(NgError::Missing("sdp"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_kamailio_sends_with_rtpengine_manage() {
        let msg = b"5323_1 d8:supportsl10:load limite3:sdp5:v=0\r\n3:ICE6:remove5:flagsl13:trust-addresse7:replacel6:origin18:session-connectione18:transport-protocol7:RTP/AVP7:call-id4:c-1213:received-froml3:IP49:127.0.0.5e8:from-tag2:ft7:command5:offere";
        let (cookie, dict) = split_cookie(msg).unwrap();
        assert_eq!(cookie, b"5323_1");
        let r = Request::parse(dict).unwrap();
        assert_eq!(r.command, CommandKind::Offer);
        assert_eq!(r.call_id, Some("c-12"));
        assert_eq!(r.from_tag, Some("ft"));
        assert_eq!(r.to_tag, None);
        assert_eq!(r.sdp, Some("v=0\r\n"));
        assert_eq!(r.received_from, Some("127.0.0.5".parse().unwrap()));
        assert!(r.replace_origin && r.replace_session_connection);
        assert_eq!(r.ice, Ice::Remove);
        assert_eq!(r.transport_protocol, Some("RTP/AVP"));
        assert!(!r.sip_source_address);
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(matches!(
            split_cookie(b"nospace"),
            Err(NgError::Malformed(_))
        ));
        assert!(matches!(
            split_cookie(b" d7:command4:pinge"),
            Err(NgError::Malformed(_))
        ));
        assert!(matches!(Request::parse(b"le"), Err(NgError::Malformed(_))));
        assert!(matches!(Request::parse(b"de"), Err(NgError::Malformed(_))));
        assert!(matches!(
            Request::parse(b"d7:command4:bogue"),
            Err(NgError::UnknownCommand(c)) if c == "bogu"
        ));
        assert!(matches!(
            Request::parse(b"d7:command"),
            Err(NgError::Bencode(_))
        ));
        let r = Request::parse(b"d7:command5:offere").unwrap();
        assert!(matches!(r.need_call_id(), Err(NgError::Missing("call-id"))));
        assert!(matches!(r.need_sdp(), Err(NgError::Missing("sdp"))));
    }

    #[test]
    fn flags_in_either_spelling() {
        let r = Request::parse(b"d7:command5:offer5:flagsl18:SIP source address5:fatalee").unwrap();
        assert!(r.sip_source_address);
        assert!(r.fatal);
    }
}
