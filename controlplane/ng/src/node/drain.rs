//! Graceful drain of a media node: no new calls, the live ones go on until they end.
//!
//! A drain starts with the callbridge extension command `drain` (rtpengine has none; the
//! listener takes it only from `media.ng_allow_from`, like every command) or from outside the
//! node through a [`DrainHandle`] (`callbridge media` on SIGTERM). While draining:
//! - an `offer` for a call-id the node does not have is refused: with `supports ["load
//!   limit"]` in the offer (Kamailio's `rtpengine` module sends it) the reply is
//!   `result: load limit`, which makes Kamailio try its next node, as for an overloaded
//!   rtpengine; otherwise `result: error`. Both carry `error-reason` (and `message`) `media
//!   node draining`;
//! - `cb-allocate` (serve's pools, callbridge's extension) is refused with the same reason;
//!   serve then gives back the pairs it holds in advance and allocates elsewhere;
//! - every command about a known call-id (`offer` re-offers, `answer`, `delete`, `query`) and
//!   `ping`, `list`, `statistics` are answered as usual: `ping` keeps saying `pong`, so the
//!   proxy keeps the node enabled and sends the live calls' answers and deletes here.
//!
//! The node publishes its live-call count into the handle after every step
//! ([`Node::publish_drain_state`]), so the process can exit once the count is 0.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use super::{reply, Handled, Node};
use crate::bencode::{self, Value};

/// The `error-reason` of an offer refused while draining.
pub const DRAINING_REASON: &str = "media node draining";

#[derive(Debug, Default)]
struct Shared {
    draining: AtomicBool,
    calls: AtomicUsize,
}

/// A node's drain state, shared with whoever starts or watches the drain (cheap to clone).
#[derive(Debug, Clone, Default)]
pub struct DrainHandle(Arc<Shared>);

impl DrainHandle {
    /// Starts the drain (idempotent); true when this call started it.
    pub fn start(&self) -> bool {
        !self.0.draining.swap(true, Ordering::SeqCst)
    }

    /// Whether the node drains.
    #[must_use]
    pub fn is_draining(&self) -> bool {
        self.0.draining.load(Ordering::SeqCst)
    }

    /// The node's live calls as last published (after its last step).
    #[must_use]
    pub fn calls(&self) -> usize {
        self.0.calls.load(Ordering::SeqCst)
    }
}

/// What a drain check needs from a request, read from the raw dictionary (so the `drain`
/// extension never reaches the rtpengine command parser).
struct Peek<'a> {
    command: Option<&'a str>,
    call_id: Option<&'a str>,
    load_limit: bool,
}

fn peek(dict: &[u8]) -> Option<Peek<'_>> {
    let v = bencode::decode(dict).ok()?;
    let text = |k: &str| v.get(k).and_then(Value::as_str);
    let load_limit = v
        .get("supports")
        .and_then(Value::as_list)
        .is_some_and(|l| l.iter().any(|s| s.as_str() == Some("load limit")));
    Some(Peek {
        command: text("command"),
        call_id: text("call-id"),
        load_limit,
    })
}

impl<R: Clone> Node<R> {
    /// The handle of this node's drain state.
    #[must_use]
    pub fn drain_handle(&self) -> DrainHandle {
        self.drain.clone()
    }

    /// Stores the live-call count in the drain handle (ng calls and the pairs extension
    /// controllers hold); the listener calls it after every message, event and expiry.
    pub fn publish_drain_state(&self) {
        self.drain
            .0
            .calls
            .store(self.calls.len() + self.ext_pairs(), Ordering::SeqCst);
    }

    /// Answers `drain`, and refuses offers of new calls while draining; `None` lets the
    /// request through to the usual commands.
    pub(super) fn drain_check(&mut self, cookie: &[u8], dict: &[u8]) -> Option<Handled> {
        // Not draining: only a `drain` command concerns us, and its key and value are
        // adjacent in bencode whatever the key order; skip the second decoding otherwise.
        const DRAIN_COMMAND: &[u8] = b"7:command5:drain";
        if !self.drain.is_draining()
            && !dict
                .windows(DRAIN_COMMAND.len())
                .any(|w| w == DRAIN_COMMAND)
        {
            return None;
        }
        let p = peek(dict)?;
        match p.command? {
            "drain" => {
                if self.drain.start() {
                    tracing::info!(
                        calls = self.calls.len(),
                        "ng drain: no new calls from now on; the live ones go on"
                    );
                }
                let calls = i64::try_from(self.calls.len()).unwrap_or(i64::MAX);
                Some(Handled::Reply(reply(cookie, |e| {
                    e.kv("result", "ok")
                        .kv("draining", "yes")
                        .ki("calls", calls);
                })))
            }
            "offer" if self.drain.is_draining() => {
                let known = p.call_id.is_some_and(|c| self.calls.contains_key(c));
                if known {
                    return None;
                }
                self.totals.rejected += 1;
                tracing::debug!(call_id = ?p.call_id, "ng offer of a new call refused: draining");
                let result = if p.load_limit { "load limit" } else { "error" };
                Some(Handled::Reply(reply(cookie, |e| {
                    e.kv("result", result)
                        .kv("error-reason", DRAINING_REASON)
                        .kv("message", DRAINING_REASON);
                })))
            }
            // serve's pools (callbridge's extension): no new pairs either; its `NgMedia`
            // then gives back the pairs it holds in advance.
            "cb-allocate" if self.drain.is_draining() => {
                self.totals.rejected += 1;
                Some(Handled::Reply(reply(cookie, |e| {
                    e.kv("result", "error")
                        .kv("error-reason", DRAINING_REASON)
                        .kv("message", DRAINING_REASON);
                })))
            }
            _ => None,
        }
    }
}
