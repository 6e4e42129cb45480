//! The three tasks per node behind [`NgMedia`]: commands (in order, batched), the event
//! poll (also the liveness probe) and the pool refill.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use dp_api::{CommandError, Event};
use tokio::sync::mpsc::UnboundedReceiver;

use super::{lock, Job, NgMedia};
use crate::bencode::{decode, Encoder, Value};
use crate::client::Client;
use crate::ext;

/// Most commands in one `cb-leg`.
const BATCH: usize = 64;

/// Starts the node's tasks; they end when the [`NgMedia`] is dropped.
pub(super) async fn spawn(
    media: NgMedia,
    node: usize,
    jobs: UnboundedReceiver<Job>,
) -> std::io::Result<()> {
    let addr = media.inner.nodes[node].addr;
    let client = Arc::new(Client::connect(addr, media.inner.cfg.client).await?);
    let weak = Arc::downgrade(&media.inner);
    tokio::spawn(commands(weak.clone(), client.clone(), node, jobs));
    tokio::spawn(poll(weak.clone(), client.clone(), node));
    tokio::spawn(refill(weak, client, node));
    Ok(())
}

type Weak = std::sync::Weak<super::Inner>;

fn upgrade(w: &Weak) -> Option<NgMedia> {
    w.upgrade().map(|inner| NgMedia { inner })
}

fn base(e: &mut Encoder, command: &str, controller: &str) {
    e.dict().kv("command", command).kv("controller", controller);
}

/// The reply's dictionary when `result` is `ok`; an error text otherwise.
fn ok(reply: &[u8]) -> Result<Value<'_>, String> {
    let v = decode(reply).map_err(|e| e.to_string())?;
    match v.get("result").and_then(Value::as_str) {
        Some("ok") => Ok(v),
        _ => Err(v
            .get("error-reason")
            .and_then(Value::as_str)
            .unwrap_or("no result")
            .to_owned()),
    }
}

async fn commands(w: Weak, client: Arc<Client>, node: usize, mut jobs: UnboundedReceiver<Job>) {
    while let Some(first) = jobs.recv().await {
        let Some(media) = upgrade(&w) else { return };
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match jobs.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let slot = &media.inner.nodes[node];
        if !slot.healthy.load(Ordering::Acquire) {
            // Its calls were told at its death; nothing queued for it matters any more.
            continue;
        }
        let controller = &media.inner.cfg.controller;
        let mut cmds = Vec::new();
        let mut releases = Vec::new();
        for j in batch {
            match j {
                Job::Cmd(c) => cmds.push(c),
                Job::Release(a) => releases.push(a),
            }
        }
        if !cmds.is_empty() {
            let mut e = Encoder::default();
            base(&mut e, ext::LEG, controller);
            e.str("cmds").list();
            let mut sent = Vec::new();
            for c in &cmds {
                if ext::encode_command(&mut e, c).is_some() {
                    sent.push(c.leg());
                }
            }
            e.end().end();
            let reply = client.request(&e.finish()).await;
            if reply.is_ok() {
                media.inner.answered(node);
            }
            match reply {
                Ok(r) => match ok(&r) {
                    Ok(v) => {
                        for f in v.get("failed").and_then(Value::as_list).unwrap_or(&[]) {
                            let i = f.get("index").and_then(Value::as_int).unwrap_or(-1);
                            let why = f.get("error").and_then(Value::as_str).unwrap_or("refused");
                            let leg = usize::try_from(i)
                                .ok()
                                .and_then(|i| sent.get(i).copied().flatten());
                            tracing::warn!(node = %client.server(), ?leg, why, "media node refused a command");
                            if let Some(leg) = leg {
                                media.deliver(
                                    node,
                                    Event::CommandFailed {
                                        leg: Some(leg),
                                        error: CommandError::Io(why.to_owned()),
                                    },
                                );
                            }
                        }
                    }
                    Err(why) => {
                        tracing::warn!(node = %client.server(), why, "media node refused cb-leg")
                    }
                },
                Err(e) => {
                    media.node_dead(node, &e.to_string());
                    continue;
                }
            }
        }
        if !releases.is_empty() {
            let mut e = Encoder::default();
            base(&mut e, ext::RELEASE, controller);
            e.str("pairs").list();
            for a in releases {
                e.list().int(i64::from(a.0)).end();
            }
            e.end().end();
            if let Err(e) = client.request(&e.finish()).await {
                media.node_dead(node, &e.to_string());
            }
        }
    }
}

async fn poll(w: Weak, client: Arc<Client>, node: usize) {
    let mut instance: Option<String> = None;
    let mut since: u64 = 0;
    loop {
        let Some(media) = upgrade(&w) else { return };
        let slot = &media.inner.nodes[node];
        let pause = if slot.healthy.load(Ordering::Acquire) {
            media.inner.cfg.poll_interval
        } else {
            media.inner.cfg.ping_interval
        };
        let mut e = Encoder::default();
        base(&mut e, ext::EVENTS, &media.inner.cfg.controller);
        e.ki("since", i64::try_from(since).unwrap_or(i64::MAX))
            .end();
        let msg = e.finish();
        drop(media);
        let reply = client.request(&msg).await;
        let Some(media) = upgrade(&w) else { return };
        let slot = &media.inner.nodes[node];
        if reply.is_ok() {
            media.inner.answered(node);
        }
        match reply {
            Err(e) => media.node_dead(node, &e.to_string()),
            Ok(r) => match ok(&r) {
                Err(why) => tracing::warn!(node = %slot.addr, why, "media node refused cb-events"),
                Ok(v) => {
                    let inst = v.get("instance").and_then(Value::as_str).unwrap_or("");
                    if instance.as_deref().is_some_and(|i| i != inst) {
                        media.node_dead(node, "the node restarted (new instance)");
                        // Its old legs died with it.
                        lock(&slot.orphans).clear();
                        since = 0;
                    }
                    if instance.as_deref() != Some(inst) {
                        instance = Some(inst.to_owned());
                        // A restarted node's sequence starts again; this reply was for the old one.
                        if since != 0 {
                            since = 0;
                            continue;
                        }
                    }
                    if let Some(f) = v.get("free").and_then(Value::as_int) {
                        slot.free
                            .store(usize::try_from(f).unwrap_or(0), Ordering::Relaxed);
                    }
                    if v.get("draining").and_then(Value::as_str) == Some("yes") {
                        give_back_pool(slot);
                    }
                    let lost = v.get("lost").and_then(Value::as_int).unwrap_or(0);
                    if lost > 0 {
                        tracing::warn!(node = %slot.addr, lost, "media-node events lost (the node's buffer overflowed)");
                    }
                    let events = v.get("events").and_then(Value::as_list).unwrap_or(&[]);
                    let full = events.len() >= ext::MAX_EVENTS;
                    for ev in events {
                        match ext::decode_event(ev) {
                            Ok(ev) => media.deliver(node, ev),
                            Err(e) => {
                                tracing::warn!(node = %slot.addr, error = %e, "unreadable media-node event")
                            }
                        }
                    }
                    if let Some(n) = v.get("next").and_then(Value::as_int) {
                        since = u64::try_from(n).unwrap_or(since);
                    }
                    if !slot.healthy.swap(true, Ordering::AcqRel) {
                        tracing::info!(node = %slot.addr, "media node healthy");
                        // Pairs moved away while it seemed dead are given back.
                        for a in std::mem::take(&mut *lock(&slot.orphans)) {
                            let _ = slot.jobs.send(Job::Release(a));
                        }
                        slot.refill.notify_one();
                    }
                    if full {
                        // More are waiting: ask again at once.
                        continue;
                    }
                }
            },
        }
        drop(media);
        tokio::time::sleep(pause).await;
    }
}

/// A draining node waits for every pair we hold: gives back those held in advance (the
/// calls on it go on until they end; the node refuses new `cb-allocate`s meanwhile).
fn give_back_pool(slot: &super::NodeSlot) {
    let pooled: Vec<_> = lock(&slot.pool).drain(..).collect();
    if !pooled.is_empty() {
        tracing::info!(node = %slot.addr, pairs = pooled.len(), "media node draining: pairs held in advance given back");
    }
    for p in pooled {
        let _ = slot.jobs.send(Job::Release(p.a));
    }
}

async fn refill(w: Weak, client: Arc<Client>, node: usize) {
    loop {
        let Some(media) = upgrade(&w) else { return };
        let slot = &media.inner.nodes[node];
        // The pool, plus one pair for each of a dead node's calls still waiting to move.
        let want = (media.inner.cfg.pool + media.pending_len())
            .saturating_sub(lock(&slot.pool).len())
            .min(usize::try_from(ext::MAX_ALLOCATE).unwrap_or(1));
        if want == 0 || !slot.healthy.load(Ordering::Acquire) {
            let inner = media.inner.clone();
            drop(media);
            let notified = inner.nodes[node].refill.notified();
            // Woken by an allocation or a revival; the tick also covers a missed wake-up.
            let _ = tokio::time::timeout(Duration::from_millis(200), notified).await;
            continue;
        }
        let epoch = slot.epoch.load(Ordering::Acquire);
        let mut e = Encoder::default();
        base(&mut e, ext::ALLOCATE, &media.inner.cfg.controller);
        e.ki("count", i64::try_from(want).unwrap_or(1)).end();
        let msg = e.finish();
        drop(media);
        let reply = client.request(&msg).await;
        let Some(media) = upgrade(&w) else { return };
        let slot = &media.inner.nodes[node];
        match reply {
            Err(e) => {
                media.node_dead(node, &e.to_string());
            }
            Ok(r) => match ok(&r).and_then(|v| {
                if let Some(f) = v.get("free").and_then(Value::as_int) {
                    slot.free
                        .store(usize::try_from(f).unwrap_or(0), Ordering::Relaxed);
                }
                ext::decode_pairs(&v).map_err(|e| e.to_string())
            }) {
                Ok(pairs) => {
                    if slot.epoch.load(Ordering::Acquire) == epoch {
                        lock(&slot.pool).extend(pairs);
                        media.reanchor_pending();
                    }
                    continue;
                }
                Err(why) if why == crate::node::DRAINING_REASON => give_back_pool(slot),
                Err(why) => {
                    tracing::debug!(node = %slot.addr, why, "media node gave no pairs");
                }
            },
        }
        drop(media);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
