//! The node side of callbridge's ng extension ([`crate::ext`]): pairs allocated to a
//! controller (`serve`), its data-plane commands passed to the workers, and its legs' events
//! kept for it to poll. The legs live in the same port plan as Kamailio's calls.

use std::collections::{HashMap, VecDeque};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dp_api::{Command, Event, LegId};
use flows::Legs;

use super::{reply, Handled, Node};
use crate::bencode::{self, Encoder, Value};
use crate::ext::{self, Prompts};
use crate::NgError;

/// One controller's legs and events.
#[derive(Debug)]
struct Controller {
    last_seen: Instant,
    /// Pairs by their first leg.
    pairs: HashMap<LegId, Legs>,
    /// Events not yet acknowledged, with their sequence numbers.
    events: VecDeque<(u64, Event)>,
    /// The last sequence number given.
    seq: u64,
    /// Events dropped because the buffer was full (sequence numbers up to this).
    dropped_upto: u64,
}

impl Controller {
    fn new(now: Instant) -> Self {
        Self {
            last_seen: now,
            pairs: HashMap::new(),
            events: VecDeque::new(),
            seq: 0,
            dropped_upto: 0,
        }
    }
}

/// The extension's state inside a [`Node`].
#[derive(Debug)]
pub(super) struct ExtState {
    /// Changes with every start of the node.
    instance: String,
    prompts: Prompts,
    controllers: HashMap<String, Controller>,
    owner: HashMap<LegId, String>,
}

impl Default for ExtState {
    fn default() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            instance: format!("{:x}-{:x}", nanos, std::process::id()),
            prompts: Prompts::default(),
            controllers: HashMap::new(),
            owner: HashMap::new(),
        }
    }
}

/// The command's name if `dict` is an extension command (cheap test first).
fn ext_command<'a>(v: &Value<'a>) -> Option<&'a str> {
    v.get("command")
        .and_then(Value::as_str)
        .filter(|c| c.starts_with("cb-"))
}

impl<R: Clone> Node<R> {
    /// The prompts extension `Play` commands name (the node's `media.announcement` and the
    /// built-in prompt by default).
    pub fn set_prompts(&mut self, prompts: Prompts) {
        self.ext.prompts = prompts;
    }

    /// This run's instance id (extension replies carry it).
    #[must_use]
    pub fn instance(&self) -> &str {
        &self.ext.instance
    }

    /// Leg pairs held by extension controllers (`serve`'s calls and pools): live work a
    /// drain must wait for, beside [`Node::calls`].
    #[must_use]
    pub fn ext_pairs(&self) -> usize {
        self.ext.controllers.values().map(|c| c.pairs.len()).sum()
    }

    /// An extension command's reply, or `None` when `dict` is not one.
    pub(super) fn ext_handle(
        &mut self,
        now: Instant,
        cookie: &[u8],
        dict: &[u8],
    ) -> Option<Handled> {
        if !dict.windows(3).any(|w| w == b"cb-") {
            return None;
        }
        let v = bencode::decode(dict).ok()?;
        let command = ext_command(&v)?;
        self.ext_sweep(now);
        let controller = match v.get("controller").and_then(Value::as_str) {
            Some(c) if !c.is_empty() && c.len() <= 128 => c.to_owned(),
            _ => {
                return Some(Handled::Reply(super::error_reply(
                    cookie,
                    &NgError::Missing("controller"),
                )))
            }
        };
        let result = match command {
            ext::ALLOCATE => self.ext_allocate(now, cookie, &controller, &v),
            ext::LEG => self.ext_leg(now, cookie, &controller, &v),
            ext::RELEASE => Ok(self.ext_release(now, cookie, &controller, &v)),
            ext::EVENTS => Ok(self.ext_events(now, cookie, &controller, &v)),
            other => Err(NgError::UnknownCommand(other.to_owned())),
        };
        Some(Handled::Reply(result.unwrap_or_else(|e| {
            self.totals.errors += 1;
            super::error_reply(cookie, &e)
        })))
    }

    /// Takes an event for an extension leg (kept for its controller); `false` when the leg
    /// is not one.
    pub(super) fn ext_event(&mut self, ev: &Event) -> bool {
        let Some(leg) = ev.leg() else { return false };
        let Some(owner) = self.ext.owner.get(&leg) else {
            return false;
        };
        if let Some(c) = self.ext.controllers.get_mut(owner) {
            c.seq += 1;
            c.events.push_back((c.seq, ev.clone()));
            while c.events.len() > ext::MAX_BUFFERED {
                if let Some((s, _)) = c.events.pop_front() {
                    c.dropped_upto = s;
                }
            }
        }
        true
    }

    /// Controllers silent for [`ext::LEASE`] lose their legs.
    fn ext_sweep(&mut self, now: Instant) {
        let gone: Vec<String> = self
            .ext
            .controllers
            .iter()
            .filter(|(_, c)| now.duration_since(c.last_seen) > ext::LEASE)
            .map(|(k, _)| k.clone())
            .collect();
        for k in gone {
            if let Some(c) = self.ext.controllers.remove(&k) {
                tracing::warn!(controller = %k, pairs = c.pairs.len(), "ng controller silent beyond its lease: its legs are removed");
                for legs in c.pairs.into_values() {
                    self.ext_free(legs);
                }
            }
        }
    }

    fn ext_free(&mut self, legs: Legs) {
        for l in [legs.customer, legs.agent] {
            self.ext.owner.remove(&l);
            self.media.unroute(l);
        }
        // The port plan removes legs still on a worker and frees the pair once they are.
        self.media.release(legs);
    }

    fn controller(&mut self, now: Instant, id: &str) -> &mut Controller {
        let c = self
            .ext
            .controllers
            .entry(id.to_owned())
            .or_insert_with(|| Controller::new(now));
        c.last_seen = now;
        c
    }

    fn ext_allocate(
        &mut self,
        now: Instant,
        cookie: &[u8],
        controller: &str,
        v: &Value<'_>,
    ) -> Result<Vec<u8>, NgError> {
        let count = v
            .get("count")
            .and_then(Value::as_int)
            .unwrap_or(1)
            .clamp(1, ext::MAX_ALLOCATE);
        self.controller(now, controller);
        let mut got = Vec::new();
        for _ in 0..count {
            match self.media.allocate_pair() {
                Ok(legs) => got.push(legs),
                Err(e) if got.is_empty() => {
                    self.totals.rejected += 1;
                    return Err(NgError::Capacity(e.to_string()));
                }
                Err(_) => break,
            }
        }
        let mut out = Vec::new();
        for legs in got {
            let Some(address) = self.media.address_of(legs.customer) else {
                self.media.release(legs);
                continue;
            };
            for l in [legs.customer, legs.agent] {
                self.media.route(l, self.events.clone());
                self.ext.owner.insert(l, controller.to_owned());
            }
            self.controller(now, controller)
                .pairs
                .insert(legs.customer, legs);
            out.push((legs, address));
        }
        let instance = self.ext.instance.clone();
        let free = self.media.free_pairs();
        Ok(reply(cookie, |e| {
            e.kv("result", "ok").kv("instance", &instance);
            e.ki("free", i64::try_from(free).unwrap_or(i64::MAX));
            e.str("pairs").list();
            for (legs, address) in &out {
                e.dict()
                    .ki("a", i64::from(legs.customer.0))
                    .ki("b", i64::from(legs.agent.0))
                    .kv("address", &address.to_string())
                    .end();
            }
            e.end();
        }))
    }

    fn ext_leg(
        &mut self,
        now: Instant,
        cookie: &[u8],
        controller: &str,
        v: &Value<'_>,
    ) -> Result<Vec<u8>, NgError> {
        let cmds = v
            .get("cmds")
            .and_then(Value::as_list)
            .ok_or(NgError::Missing("cmds"))?;
        self.controller(now, controller);
        let mut failed: Vec<(usize, String)> = Vec::new();
        for (i, c) in cmds.iter().enumerate() {
            let prompts = &self.ext.prompts;
            let cmd = match ext::decode_command(c, &|n| prompts.get(n)) {
                Ok(cmd) => cmd,
                Err(e) => {
                    failed.push((i, e.to_string()));
                    continue;
                }
            };
            let mut legs = vec![cmd.leg()];
            if let Command::Bridge { b, .. } = &cmd {
                legs.push(Some(*b));
            }
            let owned = legs.iter().all(|l| {
                l.and_then(|l| self.ext.owner.get(&l))
                    .is_some_and(|o| o == controller)
            });
            if !owned {
                failed.push((i, "leg not allocated to this controller".into()));
                continue;
            }
            if let Err(e) = self.media.send(cmd) {
                failed.push((i, e.to_string()));
            }
        }
        Ok(reply(cookie, |e| {
            e.kv("result", "ok").str("failed").list();
            for (i, why) in &failed {
                e.dict()
                    .ki("index", i64::try_from(*i).unwrap_or(i64::MAX))
                    .kv("error", why)
                    .end();
            }
            e.end();
        }))
    }

    fn ext_release(
        &mut self,
        now: Instant,
        cookie: &[u8],
        controller: &str,
        v: &Value<'_>,
    ) -> Vec<u8> {
        let mut released = 0i64;
        let pairs: Vec<LegId> = v
            .get("pairs")
            .and_then(Value::as_list)
            .unwrap_or(&[])
            .iter()
            .filter_map(|p| p.as_list()?.first()?.as_int())
            .filter_map(|a| u32::try_from(a).ok().map(LegId))
            .collect();
        for a in pairs {
            if let Some(legs) = self.controller(now, controller).pairs.remove(&a) {
                self.ext_free(legs);
                released += 1;
            }
        }
        reply(cookie, |e| {
            e.kv("result", "ok").ki("released", released);
        })
    }

    fn ext_events(
        &mut self,
        now: Instant,
        cookie: &[u8],
        controller: &str,
        v: &Value<'_>,
    ) -> Vec<u8> {
        let since = v
            .get("since")
            .and_then(Value::as_int)
            .and_then(|n| u64::try_from(n).ok())
            .unwrap_or(0);
        let instance = self.ext.instance.clone();
        let free = i64::try_from(self.media.free_pairs()).unwrap_or(i64::MAX);
        let draining = if self.drain.is_draining() {
            "yes"
        } else {
            "no"
        };
        let c = self.controller(now, controller);
        // Acknowledged events go.
        while c.events.front().is_some_and(|(s, _)| *s <= since) {
            c.events.pop_front();
        }
        let lost = c.dropped_upto.saturating_sub(since);
        let mut e = Encoder::with_prefix(&[cookie, b" "].concat());
        e.dict()
            .kv("result", "ok")
            .kv("instance", &instance)
            .ki("free", free)
            .ki("lost", i64::try_from(lost).unwrap_or(i64::MAX))
            // A draining node: the controller gives back the pairs it holds in advance.
            .kv("draining", draining)
            .str("events")
            .list();
        let mut last = since.max(c.dropped_upto);
        for (s, ev) in c.events.iter().take(ext::MAX_EVENTS) {
            ext::encode_event(&mut e, ev);
            last = *s;
        }
        e.end();
        // `next`: what to send as `since` next time (everything up to it is in this reply).
        e.ki("next", i64::try_from(last).unwrap_or(i64::MAX));
        e.end();
        e.finish()
    }
}
