//! The media node's call table: ng commands in, data-plane commands out, replies back.
//!
//! Each call (one `call-id`) has two legs on one worker, one facing each party:
//! - leg **a** faces the party whose tag is the call's `from-tag` (the caller), leg **b** the
//!   other (the callee, `to-tag`);
//! - an SDP from a party sets its own leg's remote (where that party receives), and the
//!   body is rewritten to name the *other* party's leg, which is where the other party must
//!   send: `offer` (the caller's SDP) → remote of a, body names b; `answer` (the callee's)
//!   → remote of b, body names a, and the legs are bridged. Re-offers from either side
//!   (re-INVITEs, hold) work the same way by tag.
//!
//! `query` and `delete` need the workers' counters, which come back as events: the node sends
//! `QueryStats`/`RemoveLeg` for both legs and the reply waits ([`Handled::Pending`]) until
//! both answers arrived ([`Node::on_event`]) or [`QUERY_WAIT`] passed ([`Node::expire`]; then
//! it carries the counters last seen). Ports are released only once both legs' removals are
//! confirmed, as the control plane does. The node never blocks: it is driven by one task.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use b2bua::Media;
use dp_api::{Codec, Command, Event, Latch, LegId, LegSpec, LegStats, SrcMismatch};
use flows::Legs;
use tokio::sync::mpsc::UnboundedSender;

use crate::bencode::Encoder;
use crate::request::{CommandKind, Request};
use crate::sdp::{self, Rewrite};
use crate::NgError;

mod drain;
mod ext;
mod report;

pub use drain::{DrainHandle, DRAINING_REASON};

/// How long a `query` or `delete` reply waits for the workers' counters.
pub const QUERY_WAIT: Duration = Duration::from_millis(250);
/// `list`'s default and largest number of call-ids.
pub const LIST_DEFAULT: usize = 32;

/// How the node's legs latch (`SetRemote` re-arms it on every re-offer).
#[derive(Debug, Clone, Copy)]
pub struct NodeSettings {
    /// Latching of every leg: by default only the signalled IP (any port), the safe choice;
    /// `Latch::Nat` for parties behind NAT.
    pub latch: Latch,
    /// An answered call whose leg receives no RTP for this long is deleted (`None`: never).
    pub media_timeout: Option<Duration>,
}

impl Default for NodeSettings {
    fn default() -> Self {
        Self {
            latch: Latch::Signalled,
            media_timeout: None,
        }
    }
}

/// One party's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

#[derive(Debug)]
struct Party {
    tag: String,
    created: u64,
    /// Where the party receives (from its SDP), if known.
    remote: Option<SocketAddr>,
    /// What its SDP advertised.
    advertised: Option<SocketAddr>,
    protocol: String,
    stats: LegStats,
}

#[derive(Debug)]
struct Call {
    created: u64,
    last_signal: u64,
    legs: Legs,
    a: Party,
    b: Option<Party>,
    bridged: bool,
}

impl Call {
    fn leg(&self, s: Side) -> LegId {
        match s {
            Side::A => self.legs.customer,
            Side::B => self.legs.agent,
        }
    }

    fn side_of(&self, tag: &str) -> Option<Side> {
        if self.a.tag == tag {
            Some(Side::A)
        } else if self.b.as_ref().is_some_and(|b| b.tag == tag) {
            Some(Side::B)
        } else {
            None
        }
    }
}

/// A reply waiting for counters.
#[derive(Debug)]
struct Waiting<R> {
    to: R,
    cookie: Vec<u8>,
    deadline: Instant,
    call_id: String,
    /// Legs whose answer is still due.
    due: Vec<LegId>,
    kind: CommandKind,
}

/// What [`Node::handle`] did with a request.
#[derive(Debug, PartialEq, Eq)]
pub enum Handled {
    /// The reply (cookie included), to send and cache.
    Reply(Vec<u8>),
    /// The reply comes later from [`Node::on_event`] or [`Node::expire`].
    Pending,
}

/// The node's running totals (`statistics`).
#[derive(Debug, Default, Clone, Copy)]
struct Totals {
    managed: u64,
    rejected: u64,
    offers: u64,
    answers: u64,
    deletes: u64,
    errors: u64,
    timeouts: u64,
}

/// The call table of a media node; `R` says where a pending reply goes (a UDP peer, a TCP
/// connection).
pub struct Node<R> {
    media: Arc<dyn Media>,
    events: UnboundedSender<Event>,
    settings: NodeSettings,
    calls: HashMap<String, Call>,
    /// Which call each live leg belongs to.
    by_leg: HashMap<LegId, String>,
    /// Legs whose removal is confirmed, per removed call's pair (released when both are).
    removing: Vec<(Legs, u8)>,
    waiting: Vec<Waiting<R>>,
    totals: Totals,
    drain: DrainHandle,
    /// callbridge's extension commands ([`crate::ext`]).
    ext: ext::ExtState,
}

impl<R> std::fmt::Debug for Node<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Node")
            .field("calls", &self.calls.len())
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

fn reply(cookie: &[u8], body: impl FnOnce(&mut Encoder)) -> Vec<u8> {
    let mut prefix = cookie.to_vec();
    prefix.push(b' ');
    let mut e = Encoder::with_prefix(&prefix);
    e.dict();
    body(&mut e);
    e.end();
    e.finish()
}

/// The error reply for `err`.
#[must_use]
pub fn error_reply(cookie: &[u8], err: &NgError) -> Vec<u8> {
    reply(cookie, |e| {
        e.kv("result", "error").kv("error-reason", &err.to_string());
    })
}

impl<R: Clone> Node<R> {
    /// A node over `media`; every leg's events must reach [`Self::on_event`] (the node
    /// routes them to `events`).
    #[must_use]
    pub fn new(
        media: Arc<dyn Media>,
        events: UnboundedSender<Event>,
        settings: NodeSettings,
    ) -> Self {
        Self {
            media,
            events,
            settings,
            calls: HashMap::new(),
            by_leg: HashMap::new(),
            removing: Vec::new(),
            waiting: Vec::new(),
            totals: Totals::default(),
            drain: DrainHandle::default(),
            ext: ext::ExtState::default(),
        }
    }

    /// Live calls.
    #[must_use]
    pub fn calls(&self) -> usize {
        self.calls.len()
    }

    /// Handles one request (`dict` is the part after the cookie); `unix` is the wall clock in
    /// seconds (for `created`/`last signal`), `now` the monotonic clock (for waits).
    pub fn handle(
        &mut self,
        now: Instant,
        unix: u64,
        cookie: &[u8],
        dict: &[u8],
        from: R,
    ) -> Handled {
        if let Some(h) = self.drain_check(cookie, dict) {
            return h;
        }
        if let Some(h) = self.ext_handle(now, cookie, dict) {
            return h;
        }
        let result =
            Request::parse(dict).and_then(|req| self.dispatch(now, unix, cookie, &req, from));
        match result {
            Ok(h) => h,
            Err(e) => {
                self.totals.errors += 1;
                tracing::debug!(error = %e, "ng request refused");
                Handled::Reply(error_reply(cookie, &e))
            }
        }
    }

    fn dispatch(
        &mut self,
        now: Instant,
        unix: u64,
        cookie: &[u8],
        req: &Request<'_>,
        from: R,
    ) -> Result<Handled, NgError> {
        match req.command {
            CommandKind::Ping => Ok(Handled::Reply(reply(cookie, |e| {
                e.kv("result", "pong");
            }))),
            CommandKind::Offer => self.offer(unix, cookie, req).map(Handled::Reply),
            CommandKind::Answer => self.answer(unix, cookie, req).map(Handled::Reply),
            CommandKind::Delete => self.delete(now, cookie, req, from),
            CommandKind::Query => self.query(now, cookie, req, from),
            CommandKind::List => Ok(Handled::Reply(self.list(cookie, req))),
            CommandKind::Statistics => Ok(Handled::Reply(self.statistics(cookie))),
        }
    }

    /// Where the party that sent `req`'s SDP receives: the SDP's address, or with the
    /// `SIP-source-address` flag the `received-from` address (same port).
    fn target(
        req: &Request<'_>,
        sdp_text: &str,
    ) -> Result<(Option<SocketAddr>, Option<SocketAddr>), NgError> {
        let t = sdp::audio_target(sdp_text)?;
        let remote = match (t.rtp, req.received_from) {
            (Some(a), Some(src)) if req.sip_source_address => Some(SocketAddr::new(src, a.port())),
            (r, _) => r,
        };
        Ok((remote, t.rtp))
    }

    fn rewrite_for(
        &self,
        req: &Request<'_>,
        sdp_text: &str,
        leg: LegId,
    ) -> Result<String, NgError> {
        let address = self
            .media
            .address_of(leg)
            .ok_or_else(|| NgError::Internal("no media address for the leg".into()))?;
        sdp::rewrite(
            sdp_text,
            &Rewrite {
                address,
                port: leg.port(),
                replace_origin: req.replace_origin,
                transport_protocol: req.transport_protocol,
            },
        )
    }

    fn send(&self, cmd: Command) -> Result<(), NgError> {
        self.media
            .send(cmd)
            .map_err(|e| NgError::Internal(e.to_string()))
    }

    /// Asks the workers to remove both legs of a pair (both asked even if one request fails)
    /// and tracks the pair until both removals are confirmed ([`Self::removed`] then
    /// releases the ports).
    fn remove_legs(&mut self, legs: Legs) -> Result<(), NgError> {
        let a = self.send(Command::RemoveLeg { leg: legs.customer });
        let b = self.send(Command::RemoveLeg { leg: legs.agent });
        self.removing.push((legs, 0));
        a.and(b)
    }

    fn set_remote(&self, leg: LegId, remote: Option<SocketAddr>) -> Result<(), NgError> {
        if let Some(remote) = remote {
            self.send(Command::SetRemote {
                leg,
                remote,
                codec: Codec::Pcmu,
            })?;
        }
        Ok(())
    }

    fn sdp_reply(cookie: &[u8], sdp_out: &str) -> Vec<u8> {
        reply(cookie, |e| {
            e.kv("result", "ok").kv("sdp", sdp_out);
        })
    }

    fn offer(&mut self, unix: u64, cookie: &[u8], req: &Request<'_>) -> Result<Vec<u8>, NgError> {
        let call_id = req.need_call_id()?;
        let tag = req.need_from_tag()?;
        let sdp_in = req.need_sdp()?;
        let (remote, advertised) = Self::target(req, sdp_in)?;
        let protocol = req.transport_protocol.unwrap_or("RTP/AVP").to_owned();
        self.totals.offers += 1;
        if let Some(call) = self.calls.get(call_id) {
            // A re-offer: from the caller (its tag) or from the callee (a re-INVITE the
            // other way, whose from-tag is the callee's).
            let side = call.side_of(tag).unwrap_or(Side::A);
            let (own, other) = match side {
                Side::A => (call.leg(Side::A), call.leg(Side::B)),
                Side::B => (call.leg(Side::B), call.leg(Side::A)),
            };
            self.set_remote(own, remote)?;
            let out = self.rewrite_for(req, sdp_in, other)?;
            let call = self.calls.get_mut(call_id).expect("present");
            call.last_signal = unix;
            let p = match side {
                Side::A => &mut call.a,
                Side::B => call.b.as_mut().expect("side B known"),
            };
            p.remote = remote.or(p.remote);
            p.advertised = advertised;
            return Ok(Self::sdp_reply(cookie, &out));
        }
        let legs = self.media.allocate_pair().map_err(|e| {
            self.totals.rejected += 1;
            NgError::Capacity(e.to_string())
        })?;
        let spec = |id: LegId, remote: Option<SocketAddr>| {
            Command::AddLeg(LegSpec {
                id,
                remote,
                latch: self.settings.latch,
                src_mismatch: SrcMismatch::Drop,
                codec: Codec::Pcmu,
                media_timeout: self.settings.media_timeout,
            })
        };
        for leg in [legs.customer, legs.agent] {
            self.media.route(leg, self.events.clone());
        }
        let added = self
            .send(spec(legs.customer, remote))
            .and_then(|()| self.send(spec(legs.agent, None)));
        let out = added.and_then(|()| self.rewrite_for(req, sdp_in, legs.agent));
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                // Undo: whatever was added is removed, and the ports come back once the
                // workers confirm.
                let _ = self.remove_legs(legs);
                self.totals.rejected += 1;
                return Err(e);
            }
        };
        self.totals.managed += 1;
        self.by_leg.insert(legs.customer, call_id.to_owned());
        self.by_leg.insert(legs.agent, call_id.to_owned());
        self.calls.insert(
            call_id.to_owned(),
            Call {
                created: unix,
                last_signal: unix,
                legs,
                a: Party {
                    tag: tag.to_owned(),
                    created: unix,
                    remote,
                    advertised,
                    protocol,
                    stats: LegStats::default(),
                },
                b: None,
                bridged: false,
            },
        );
        tracing::debug!(call_id, from_tag = tag, ?legs, "ng offer: legs added");
        Ok(Self::sdp_reply(cookie, &out))
    }

    fn answer(&mut self, unix: u64, cookie: &[u8], req: &Request<'_>) -> Result<Vec<u8>, NgError> {
        let call_id = req.need_call_id()?;
        let from_tag = req.need_from_tag()?;
        let sdp_in = req.need_sdp()?;
        let to_tag = req.to_tag.unwrap_or("");
        let (remote, advertised) = Self::target(req, sdp_in)?;
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| NgError::UnknownCall(call_id.to_owned()))?;
        // The answer's SDP is the to-tag party's: the callee, unless this answers a
        // re-INVITE the callee sent (then from-tag is the callee's and the caller answers).
        let answerer = match call.side_of(from_tag) {
            Some(Side::B) => Side::A,
            _ => Side::B,
        };
        let (own, other) = match answerer {
            Side::A => (call.leg(Side::A), call.leg(Side::B)),
            Side::B => (call.leg(Side::B), call.leg(Side::A)),
        };
        let bridged = call.bridged;
        self.set_remote(own, remote)?;
        let out = self.rewrite_for(req, sdp_in, other)?;
        if !bridged {
            self.send(Command::Bridge {
                a: call.leg(Side::A),
                b: call.leg(Side::B),
            })?;
        }
        self.totals.answers += 1;
        let protocol = req.transport_protocol.unwrap_or("RTP/AVP").to_owned();
        let call = self.calls.get_mut(call_id).expect("present");
        call.bridged = true;
        call.last_signal = unix;
        match answerer {
            Side::A => {
                call.a.remote = remote.or(call.a.remote);
                call.a.advertised = advertised;
            }
            Side::B => match &mut call.b {
                Some(b) => {
                    b.remote = remote.or(b.remote);
                    b.advertised = advertised;
                    if !to_tag.is_empty() {
                        to_tag.clone_into(&mut b.tag);
                    }
                }
                None => {
                    call.b = Some(Party {
                        tag: to_tag.to_owned(),
                        created: unix,
                        remote,
                        advertised,
                        protocol,
                        stats: LegStats::default(),
                    });
                }
            },
        }
        Ok(Self::sdp_reply(cookie, &out))
    }

    fn delete(
        &mut self,
        now: Instant,
        cookie: &[u8],
        req: &Request<'_>,
        from: R,
    ) -> Result<Handled, NgError> {
        let call_id = req.need_call_id()?;
        let Some(call) = self.calls.get(call_id) else {
            if req.fatal {
                return Err(NgError::UnknownCall(call_id.to_owned()));
            }
            return Ok(Handled::Reply(reply(cookie, |e| {
                e.kv("result", "ok")
                    .kv("warning", &format!("unknown call-id {call_id}"));
            })));
        };
        if let Some(t) = req.from_tag {
            if !t.is_empty() && call.side_of(t).is_none() {
                if req.fatal {
                    return Err(NgError::UnknownCall(format!("{call_id} (from-tag {t})")));
                }
                return Ok(Handled::Reply(reply(cookie, |e| {
                    e.kv("result", "ok").kv(
                        "warning",
                        &format!("unknown from-tag {t} in call {call_id}"),
                    );
                })));
            }
        }
        let legs = call.legs;
        self.remove_legs(legs)?;
        self.totals.deletes += 1;
        self.waiting.push(Waiting {
            to: from,
            cookie: cookie.to_vec(),
            deadline: now + QUERY_WAIT,
            call_id: call_id.to_owned(),
            due: vec![legs.customer, legs.agent],
            kind: CommandKind::Delete,
        });
        Ok(Handled::Pending)
    }

    fn query(
        &mut self,
        now: Instant,
        cookie: &[u8],
        req: &Request<'_>,
        from: R,
    ) -> Result<Handled, NgError> {
        let call_id = req.need_call_id()?;
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| NgError::UnknownCall(call_id.to_owned()))?;
        let legs = call.legs;
        self.send(Command::QueryStats { leg: legs.customer })?;
        self.send(Command::QueryStats { leg: legs.agent })?;
        self.waiting.push(Waiting {
            to: from,
            cookie: cookie.to_vec(),
            deadline: now + QUERY_WAIT,
            call_id: call_id.to_owned(),
            due: vec![legs.customer, legs.agent],
            kind: CommandKind::Query,
        });
        Ok(Handled::Pending)
    }

    fn list(&self, cookie: &[u8], req: &Request<'_>) -> Vec<u8> {
        let limit = req
            .limit
            .and_then(|l| usize::try_from(l).ok())
            .filter(|&l| l > 0)
            .unwrap_or(LIST_DEFAULT);
        let mut ids: Vec<&String> = self.calls.keys().collect();
        ids.sort();
        reply(cookie, |e| {
            e.kv("result", "ok").str("calls").list();
            for id in ids.into_iter().take(limit) {
                e.str(id);
            }
            e.end();
        })
    }

    fn statistics(&self, cookie: &[u8]) -> Vec<u8> {
        let t = self.totals;
        let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        let live = self.calls.len() as u64;
        reply(cookie, |e| {
            e.kv("result", "ok").str("statistics").dict();
            e.str("currentstatistics")
                .dict()
                .ki("sessionsown", n(live))
                .ki("sessionsforeign", 0)
                .ki("sessionstotal", n(live))
                .ki("freeports", n(self.media.free_pairs() as u64 * 2))
                .end();
            e.str("totalstatistics")
                .dict()
                .ki("managedsessions", n(t.managed))
                .ki("rejectedsessions", n(t.rejected))
                .ki("offers", n(t.offers))
                .ki("answers", n(t.answers))
                .ki("deletes", n(t.deletes))
                .ki("errors", n(t.errors))
                .ki("timeoutsessions", n(t.timeouts))
                .end();
            e.end();
        })
    }

    /// Takes one data-plane event for the node's legs; returns the replies it completed.
    pub fn on_event(&mut self, ev: &Event) -> Vec<(R, Vec<u8>)> {
        if self.ext_event(ev) {
            return Vec::new();
        }
        match ev {
            Event::Stats { leg, stats } => {
                self.note_stats(*leg, stats);
                self.settle(*leg, false)
            }
            Event::LegRemoved { leg, stats } => {
                self.note_stats(*leg, stats);
                let done = self.settle(*leg, true);
                self.removed(*leg);
                done
            }
            Event::CommandFailed {
                leg: Some(leg),
                error,
            } => {
                tracing::warn!(?leg, ?error, "ng node: a data-plane command failed");
                // A leg that cannot answer counts as answered, with what is known.
                self.settle(*leg, false)
            }
            Event::MediaTimeout { leg } => {
                self.reap(*leg);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// A leg of an answered call went silent for [`NodeSettings::media_timeout`]: the
    /// proxy lost the call (no BYE will come, or it died), so the node ends it and frees its
    /// ports, as rtpengine's `timeout` does. An unanswered call is left alone (a long ring
    /// sends no media).
    fn reap(&mut self, leg: LegId) {
        let Some(id) = self.by_leg.get(&leg).cloned() else {
            return;
        };
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        if !call.bridged {
            return;
        }
        let legs = call.legs;
        tracing::info!(call_id = %id, ?leg, "ng node: no media on an answered call; the call is deleted");
        let _ = self.remove_legs(legs);
        self.totals.timeouts += 1;
        self.forget(&id);
    }

    fn note_stats(&mut self, leg: LegId, stats: &LegStats) {
        let Some(call) = self.by_leg.get(&leg).and_then(|id| self.calls.get_mut(id)) else {
            return;
        };
        if leg == call.legs.customer {
            call.a.stats = *stats;
        } else if let Some(b) = &mut call.b {
            b.stats = *stats;
        }
    }

    /// Marks `leg` answered in the waits; completes those with nothing left due.
    fn settle(&mut self, leg: LegId, _removed: bool) -> Vec<(R, Vec<u8>)> {
        for w in &mut self.waiting {
            w.due.retain(|l| *l != leg);
        }
        self.complete(|w| w.due.is_empty())
    }

    /// Replies of the waits past their deadline, with the counters last seen.
    pub fn expire(&mut self, now: Instant) -> Vec<(R, Vec<u8>)> {
        self.complete(|w| now >= w.deadline)
    }

    /// The earliest deadline of a waiting reply.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.waiting.iter().map(|w| w.deadline).min()
    }

    fn complete(&mut self, done: impl Fn(&Waiting<R>) -> bool) -> Vec<(R, Vec<u8>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < self.waiting.len() {
            if done(&self.waiting[i]) {
                let w = self.waiting.swap_remove(i);
                let body = self.stats_reply(&w.cookie, &w.call_id);
                if w.kind == CommandKind::Delete {
                    self.forget(&w.call_id);
                }
                out.push((w.to, body));
            } else {
                i += 1;
            }
        }
        out
    }

    fn forget(&mut self, call_id: &str) {
        if let Some(call) = self.calls.remove(call_id) {
            self.by_leg.remove(&call.legs.customer);
            self.by_leg.remove(&call.legs.agent);
        }
    }

    /// A leg's removal is confirmed: once both of a pair are, its ports are released.
    fn removed(&mut self, leg: LegId) {
        self.media.unroute(leg);
        if let Some(i) = self
            .removing
            .iter()
            .position(|(l, _)| l.customer == leg || l.agent == leg)
        {
            self.removing[i].1 += 1;
            if self.removing[i].1 == 2 {
                let (legs, _) = self.removing.swap_remove(i);
                self.media.release(legs);
            }
        }
    }
}
