//! SIP message tracing, switched on at run time for one call or one number
//! (`PUT /v1/admin/sip-trace`).
//!
//! While no rule is set, the transport's check is one relaxed atomic load per message. With
//! rules, each message's head is looked at: a dialog is traced from the first message that
//! carries a traced call id (our INVITEs' `X-Callbridge-Call` header) or a traced number in its
//! start line, `From`, `To` or `P-Asserted-Identity`; its Call-ID is then remembered, so every
//! later message of that dialog (responses, ACK, BYE, re-INVITEs) is traced too. A traced
//! message is logged at INFO in full, inside a `call` span with the call's id (the same span
//! name and field the call's own task logs under), or `number:+…` when no call id is known
//! (an inbound call's first INVITE).
//!
//! A call rule set while the call is already up reaches the dialogs it began earlier through
//! [`watch`]: the call's task hands over their Call-IDs.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use crate::Peer;

/// What to trace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    /// One call: its id (`c_…`), as in `X-Callbridge-Call`.
    Call(String),
    /// Every call to or from a number (`+4930…`, as written in SIP URIs).
    Number(String),
}

/// At most this many traced dialogs are remembered (until tracing is switched off).
const MAX_DIALOGS: usize = 4096;

#[derive(Default)]
struct Rules {
    rules: BTreeSet<Rule>,
    /// Call-ID → the span label (a call id or `number:+…`).
    dialogs: HashMap<String, String>,
}

static ACTIVE: AtomicBool = AtomicBool::new(false);
static RULES: RwLock<Option<Rules>> = RwLock::new(None);

fn with_rules<T>(f: impl FnOnce(&mut Rules) -> T) -> T {
    let mut g = RULES.write().unwrap_or_else(PoisonError::into_inner);
    let r = g.get_or_insert_with(Rules::default);
    let out = f(r);
    ACTIVE.store(!r.rules.is_empty(), Ordering::Release);
    out
}

/// Adds a rule (idempotent); returns the rules now in force.
pub fn add(rule: Rule) -> Vec<Rule> {
    with_rules(|r| {
        r.rules.insert(rule);
        r.rules.iter().cloned().collect()
    })
}

/// Removes every rule and forgets the traced dialogs.
pub fn clear() {
    with_rules(|r| {
        r.rules.clear();
        r.dialogs.clear();
    });
}

/// Traces the dialogs `call_ids` (already begun) as call `call`'s, when a [`Rule::Call`] for
/// `call` is in force; nothing otherwise. The call's task calls it when a rule for it is added.
pub fn watch(call: &str, call_ids: &[String]) {
    if !ACTIVE.load(Ordering::Acquire) {
        return;
    }
    with_rules(|r| {
        if !r.rules.contains(&Rule::Call(call.to_owned())) {
            return;
        }
        for cid in call_ids {
            if r.dialogs.len() < MAX_DIALOGS {
                r.dialogs.insert(cid.clone(), call.to_owned());
            }
        }
    });
}

/// The rules in force.
pub fn rules() -> Vec<Rule> {
    if !ACTIVE.load(Ordering::Acquire) {
        return Vec::new();
    }
    let g = RULES.read().unwrap_or_else(PoisonError::into_inner);
    g.as_ref()
        .map(|r| r.rules.iter().cloned().collect())
        .unwrap_or_default()
}

/// Called by the transport for every message sent (`"tx"`) or received and parsed (`"rx"`).
pub(crate) fn observe(direction: &'static str, peer: Peer, data: &[u8]) {
    if !ACTIVE.load(Ordering::Relaxed) {
        return;
    }
    if let Some(label) = traced(data) {
        let text = String::from_utf8_lossy(data);
        let span = tracing::info_span!("call", id = %label);
        let _in = span.enter();
        tracing::info!(direction, peer = %peer, "SIP message\n{}", text.trim_end());
    }
}

/// The span label when `data` belongs to a traced dialog (remembering new ones).
fn traced(data: &[u8]) -> Option<String> {
    let head = head_of(data);
    let call_id = header(head, &["call-id", "i"]);
    if let Some(cid) = call_id {
        let g = RULES.read().unwrap_or_else(PoisonError::into_inner);
        if let Some(label) = g.as_ref().and_then(|r| r.dialogs.get(cid)) {
            return Some(label.clone());
        }
    }
    let ours = header(head, &["x-callbridge-call"]);
    let label = {
        let g = RULES.read().unwrap_or_else(PoisonError::into_inner);
        let rules = &g.as_ref()?.rules;
        rules.iter().find_map(|rule| match rule {
            Rule::Call(id) => (ours == Some(id.as_str())).then(|| id.clone()),
            Rule::Number(n) => names_number(head, n)
                .then(|| ours.map_or_else(|| format!("number:{n}"), str::to_owned)),
        })?
    };
    if let Some(cid) = call_id {
        with_rules(|r| {
            if r.dialogs.len() < MAX_DIALOGS {
                r.dialogs.insert(cid.to_owned(), label.clone());
            }
        });
    }
    Some(label)
}

/// The message's start line and headers (up to the blank line), as text.
fn head_of(data: &[u8]) -> &str {
    let end = data
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(data.len());
    let head = &data[..end];
    std::str::from_utf8(head)
        .unwrap_or_else(|e| std::str::from_utf8(&head[..e.valid_up_to()]).unwrap_or_default())
}

/// The first header named one of `names` (lower case; compact forms included), trimmed.
fn header<'a>(head: &'a str, names: &[&str]) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        let name = name.trim();
        names
            .iter()
            .any(|n| name.eq_ignore_ascii_case(n))
            .then(|| value.trim())
    })
}

/// Whether the start line or an identity header names `number` (not followed by a digit:
/// `+4930` does not match `+49301`).
fn names_number(head: &str, number: &str) -> bool {
    let mut lines = head.lines();
    let start = lines.next().unwrap_or_default();
    let identity = |line: &&str| {
        line.split_once(':').is_some_and(|(n, _)| {
            ["from", "f", "to", "t", "p-asserted-identity"]
                .iter()
                .any(|h| n.trim().eq_ignore_ascii_case(h))
        })
    };
    std::iter::once(start)
        .chain(lines.filter(identity))
        .any(|line| {
            line.match_indices(number).any(|(i, m)| {
                !line[i + m.len()..]
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_digit())
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:+15551234567@127.0.0.1:5080 SIP/2.0\r\n\
        Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1\r\n\
        From: <sip:callbridge@127.0.0.1:5060>;tag=1\r\n\
        To: <sip:+15551234567@127.0.0.1:5080>\r\n\
        Call-ID: abc@127.0.0.1\r\n\
        CSeq: 1 INVITE\r\n\
        X-Callbridge-Call: c_42\r\n\
        Content-Length: 0\r\n\r\n";
    const BYE: &str = "BYE sip:x@127.0.0.1 SIP/2.0\r\ni: abc@127.0.0.1\r\n\r\n";

    // One test: the rules are process-wide.
    #[test]
    fn rules_match_numbers_calls_and_remember_dialogs() {
        assert!(names_number(head_of(INVITE.as_bytes()), "+15551234567"));
        assert!(!names_number(head_of(INVITE.as_bytes()), "+1555123456"));
        assert_eq!(header(INVITE, &["call-id", "i"]), Some("abc@127.0.0.1"));

        clear();
        assert_eq!(traced(INVITE.as_bytes()), None);
        assert!(rules().is_empty());

        add(Rule::Number("+15551234567".into()));
        assert_eq!(traced(INVITE.as_bytes()).as_deref(), Some("c_42"));
        // The dialog's later messages, by Call-ID (compact form).
        assert_eq!(traced(BYE.as_bytes()).as_deref(), Some("c_42"));
        clear();
        assert_eq!(traced(BYE.as_bytes()), None);

        // A dialog already begun, handed over by its call.
        watch("c_7", &["x@y".into()]);
        add(Rule::Call("c_7".into()));
        let bye7 = BYE.replace("abc@127.0.0.1", "x@y");
        assert_eq!(traced(bye7.as_bytes()), None);
        watch("c_7", &["x@y".into()]);
        assert_eq!(traced(bye7.as_bytes()).as_deref(), Some("c_7"));
        clear();

        add(Rule::Call("c_41".into()));
        assert_eq!(traced(INVITE.as_bytes()), None);
        assert_eq!(add(Rule::Call("c_42".into())).len(), 2);
        assert_eq!(traced(INVITE.as_bytes()).as_deref(), Some("c_42"));
        clear();
    }
}
