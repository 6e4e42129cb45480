//! [`NgMedia`]: a [`b2bua::Media`] whose data plane is one or more media nodes
//! (`callbridge media`), driven over ng with callbridge's extension commands ([`crate::ext`]).
//!
//! The [`b2bua::Media`] trait is synchronous and the B2BUA calls it from its tasks, so
//! nothing here waits on the network in a call's path:
//! - [`Media::allocate_pair`] takes a pair from a small per-node pool that a background task
//!   keeps filled (`cb-allocate`), from the least-loaded healthy node;
//! - [`Media::send`] queues the command for the node's command task, which sends queued
//!   commands in order, batched (`cb-leg`);
//! - events come back by polling (`cb-events`, every [`NgMediaConfig::poll_interval`] while
//!   the node is healthy, every [`NgMediaConfig::ping_interval`] while it is dead: the poll is
//!   the liveness probe) and are routed to the call's sender as [`b2bua::InProcessMedia`] does;
//! - a node that has not answered for [`NgMediaConfig::stale_after`] gives no new pairs while
//!   a fresher node has some, even before its timeout marks it dead.
//!
//! Leg ids: the B2BUA sees local ids `LegId::at(node index, node's port, node's generation)`
//! (so `leg.port()` is the node's port, written into SDP, and [`Media::address_of`] the
//! node's address); a table maps them to the node's own ids.
//!
//! A node that does not answer a request within [`crate::client::ClientConfig::timeout`] is
//! marked dead at once: its pool is dropped, no new pair comes from it, and every pair of
//! legs there is re-anchored ([`reanchor`]): a pair from another healthy node's pool takes
//! its place under the same local ids, gets everything the B2BUA had told the old legs
//! (replayed from a shadow of the commands), and each leg's call gets [`Event::Moved`] so the
//! B2BUA re-offers the new address to its party. Pairs beyond what the other nodes hold
//! pooled wait (their legs idle) until a node's refill task has allocated one for each (one
//! `cb-allocate` round trip, up to [`crate::ext::MAX_ALLOCATE`] pairs at a time): a dead node
//! with more live calls than the pools loses none. A pair that cannot be moved (no other
//! healthy node) gets [`Event::CommandFailed`] instead, and its call ends. Polls continue; a
//! node that answers again is healthy again, and a changed `instance` (a restarted node) is
//! treated as a death first.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use b2bua::{Media, MediaError};
use dp_api::{Command, CommandError, Event, LegId, LegSpec, LegStats};
use flows::Legs;
use tokio::sync::mpsc::{self, UnboundedSender};
use tokio::sync::Notify;

use crate::client::ClientConfig;
use crate::ext::Pair;

mod reanchor;
mod tasks;

use reanchor::Shadow;

/// How `serve` reaches its media nodes.
#[derive(Debug, Clone)]
pub struct NgMediaConfig {
    /// The nodes' ng addresses (UDP), at most [`dp_api::MAX_ADDRESSES`].
    pub nodes: Vec<SocketAddr>,
    /// Per-request timeout and retransmission interval.
    pub client: ClientConfig,
    /// How often an idle node is polled (its liveness probe).
    pub ping_interval: Duration,
    /// How often a healthy node is polled for events.
    pub poll_interval: Duration,
    /// A node silent this long is passed over for new pairs while another has some.
    pub stale_after: Duration,
    /// Pairs kept allocated in advance per node (a dead node's calls beyond what the others
    /// hold are moved as soon as they allocate more).
    pub pool: usize,
    /// This controller's name on the nodes (unique per process).
    pub controller: String,
}

impl NgMediaConfig {
    /// Defaults for `nodes`: 400 ms timeout, 80 ms retransmission, 250 ms ping, 20 ms poll,
    /// 8 pairs per node, a controller name from the host's process id and the clock.
    #[must_use]
    pub fn new(nodes: Vec<SocketAddr>) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            nodes,
            client: ClientConfig::default(),
            ping_interval: Duration::from_millis(250),
            poll_interval: Duration::from_millis(20),
            stale_after: Duration::from_millis(100),
            pool: 8,
            controller: format!("serve-{:x}-{nanos:x}", std::process::id()),
        }
    }
}

/// What the command task of a node does next.
#[derive(Debug)]
enum Job {
    /// A data-plane command, with the node's leg ids.
    Cmd(Command),
    /// Give a pair back (its first leg, the node's id).
    Release(LegId),
}

/// One node as the controller sees it.
#[derive(Debug)]
struct NodeSlot {
    addr: SocketAddr,
    healthy: AtomicBool,
    /// Bumped at every death: pairs allocated before it are not pooled.
    epoch: AtomicU64,
    /// Pairs the node reports free (beyond our pool).
    free: AtomicUsize,
    /// Pairs handed to calls and not yet released.
    live: AtomicUsize,
    /// When the node last answered (ms since [`Inner::t0`]).
    last_ok: AtomicU64,
    pool: Mutex<VecDeque<Pair>>,
    /// Pairs moved away while the node was thought dead (their first legs): released there
    /// if it answers again as the same instance.
    orphans: Mutex<Vec<LegId>>,
    jobs: UnboundedSender<Job>,
    refill: Notify,
}

#[derive(Debug, Clone, Copy)]
struct LegEntry {
    node: usize,
    remote: LegId,
    address: IpAddr,
    /// The pair's first leg on the node (what `cb-release` names).
    first: LegId,
}

#[derive(Debug, Default)]
struct Table {
    legs: HashMap<LegId, LegEntry>,
    by_remote: HashMap<(usize, LegId), LegId>,
    routes: HashMap<LegId, UnboundedSender<Event>>,
    /// What each leg was told, to re-create it elsewhere.
    shadow: HashMap<LegId, Shadow>,
}

#[derive(Debug)]
struct Inner {
    cfg: NgMediaConfig,
    nodes: Vec<NodeSlot>,
    table: Mutex<Table>,
    /// Pairs of dead nodes waiting for a pair on another node (the dead node's index and
    /// the pair's local ids, the first leg first): more calls than the survivors had pooled.
    pending: Mutex<Vec<(usize, [LegId; 2])>>,
    t0: std::time::Instant,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.t0.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The node answered just now.
    fn answered(&self, node: usize) {
        self.nodes[node]
            .last_ok
            .store(self.now_ms(), Ordering::Release);
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every critical section leaves its state consistent.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The media nodes behind a [`b2bua::Media`] (see the module documentation).
#[derive(Debug, Clone)]
pub struct NgMedia {
    inner: Arc<Inner>,
}

/// One node's state, for logs and status pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    /// Its ng address.
    pub addr: SocketAddr,
    /// Answering.
    pub healthy: bool,
    /// Pairs of ours in calls.
    pub live: usize,
    /// Pairs allocated in advance.
    pub pooled: usize,
    /// Pairs the node reports free.
    pub free: usize,
}

impl NgMedia {
    /// Binds one client per node and starts the node tasks (inside a tokio runtime); waits
    /// up to about one timeout for the first pools, so that the first calls find pairs.
    ///
    /// # Errors
    /// No node, too many nodes, or a socket that cannot be bound.
    pub async fn start(cfg: NgMediaConfig) -> std::io::Result<Self> {
        if cfg.nodes.is_empty() || cfg.nodes.len() > dp_api::MAX_ADDRESSES {
            return Err(std::io::Error::other(format!(
                "media.nodes: between 1 and {} nodes, not {}",
                dp_api::MAX_ADDRESSES,
                cfg.nodes.len()
            )));
        }
        let mut receivers = Vec::new();
        let mut nodes = Vec::new();
        for &addr in &cfg.nodes {
            let (tx, rx) = mpsc::unbounded_channel();
            receivers.push(rx);
            nodes.push(NodeSlot {
                addr,
                // Healthy once it answers.
                healthy: AtomicBool::new(false),
                epoch: AtomicU64::new(0),
                free: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                last_ok: AtomicU64::new(0),
                pool: Mutex::new(VecDeque::new()),
                orphans: Mutex::new(Vec::new()),
                jobs: tx,
                refill: Notify::new(),
            });
        }
        let me = Self {
            inner: Arc::new(Inner {
                cfg,
                nodes,
                table: Mutex::default(),
                pending: Mutex::default(),
                t0: std::time::Instant::now(),
            }),
        };
        for (i, rx) in receivers.into_iter().enumerate() {
            tasks::spawn(me.clone(), i, rx).await?;
        }
        let wait = me.inner.cfg.client.timeout * 2;
        let t0 = tokio::time::Instant::now();
        while t0.elapsed() < wait && me.inner.nodes.iter().any(|n| lock(&n.pool).is_empty()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(me)
    }

    /// Every node's state.
    #[must_use]
    pub fn status(&self) -> Vec<NodeStatus> {
        self.inner
            .nodes
            .iter()
            .map(|n| NodeStatus {
                addr: n.addr,
                healthy: n.healthy.load(Ordering::Acquire),
                live: n.live.load(Ordering::Relaxed),
                pooled: lock(&n.pool).len(),
                free: n.free.load(Ordering::Relaxed),
            })
            .collect()
    }

    fn local_id(node: usize, remote: LegId) -> LegId {
        // Node indexes are below MAX_ADDRESSES (checked at start).
        LegId::at(
            u8::try_from(node).unwrap_or(0),
            remote.port(),
            remote.generation(),
        )
    }

    /// The node's leg for a local one.
    fn entry(&self, leg: LegId) -> Option<LegEntry> {
        lock(&self.inner.table).legs.get(&leg).copied()
    }

    /// Delivers an event (with the node's leg id) to the call owning the leg.
    fn deliver(&self, node: usize, ev: Event) {
        let t = lock(&self.inner.table);
        let Some(remote) = ev.leg() else { return };
        let Some(&local) = t.by_remote.get(&(node, remote)) else {
            tracing::debug!(?ev, "media-node event for a leg no call owns");
            return;
        };
        let Some(to) = t.routes.get(&local).cloned() else {
            return;
        };
        drop(t);
        if matches!(ev, Event::PlayDone { .. }) {
            if let Some(s) = lock(&self.inner.table).shadow.get_mut(&local) {
                s.playing = None;
            }
        }
        let _ = to.send(map_event(ev, local));
    }

    /// Marks a node dead (once): no pairs come from it, its legs' calls are told.
    fn node_dead(&self, node: usize, why: &str) {
        let slot = &self.inner.nodes[node];
        slot.epoch.fetch_add(1, Ordering::AcqRel);
        lock(&slot.pool).clear();
        if !slot.healthy.swap(false, Ordering::AcqRel) {
            return;
        }
        let (moved, waiting, mut lost) = self.reanchor_all(node);
        // Pairs waiting to move whose last possible target this was.
        lost.extend(self.fail_pending_without_target());
        let t = lock(&self.inner.table);
        let routed: Vec<(LegId, UnboundedSender<Event>)> = lost
            .iter()
            .filter_map(|l| Some((*l, t.routes.get(l)?.clone())))
            .collect();
        drop(t);
        tracing::warn!(node = %slot.addr, %why, moved_pairs = moved, waiting_pairs = waiting, lost_legs = lost.len(), "media node marked dead: no new legs there; its pairs re-anchored on other nodes");
        for (leg, to) in routed {
            let _ = to.send(Event::CommandFailed {
                leg: Some(leg),
                error: CommandError::Io(format!("media node {} unreachable", slot.addr)),
            });
        }
    }
}

/// `ev` with its leg replaced by `leg`.
fn map_event(ev: Event, leg: LegId) -> Event {
    match ev {
        Event::LegAdded { .. } => Event::LegAdded { leg },
        Event::CommandFailed { error, .. } => Event::CommandFailed {
            leg: Some(leg),
            error,
        },
        Event::RemoteLearned { remote, .. } => Event::RemoteLearned { leg, remote },
        Event::SrcMismatch { from, .. } => Event::SrcMismatch { leg, from },
        Event::MediaTimeout { .. } => Event::MediaTimeout { leg },
        Event::PlayDone { .. } => Event::PlayDone { leg },
        Event::Stats { stats, .. } => Event::Stats { leg, stats },
        Event::LegRemoved { stats, .. } => Event::LegRemoved { leg, stats },
        Event::Moved { .. } => Event::Moved { leg },
    }
}

/// `cmd` with every leg id mapped by `f` (`None` when one has no mapping).
fn map_command(cmd: Command, f: impl Fn(LegId) -> Option<LegId>) -> Option<Command> {
    Some(match cmd {
        Command::AddLeg(spec) => Command::AddLeg(LegSpec {
            id: f(spec.id)?,
            ..spec
        }),
        Command::SetRemote { leg, remote, codec } => Command::SetRemote {
            leg: f(leg)?,
            remote,
            codec,
        },
        Command::SetPayloadTypes { leg, types } => Command::SetPayloadTypes {
            leg: f(leg)?,
            types,
        },
        Command::SetSrtp { leg, keys } => Command::SetSrtp { leg: f(leg)?, keys },
        Command::Bridge { a, b } => Command::Bridge { a: f(a)?, b: f(b)? },
        Command::Unbridge { leg } => Command::Unbridge { leg: f(leg)? },
        Command::Play { leg, clip, looping } => Command::Play {
            leg: f(leg)?,
            clip,
            looping,
        },
        Command::StopPlay { leg } => Command::StopPlay { leg: f(leg)? },
        Command::QueryStats { leg } => Command::QueryStats { leg: f(leg)? },
        Command::RemoveLeg { leg } => Command::RemoveLeg { leg: f(leg)? },
        Command::Shutdown => return None,
    })
}

impl Media for NgMedia {
    fn allocate_pair(&self) -> Result<Legs, MediaError> {
        loop {
            let Some(i) = self.pick(None) else {
                return Err(MediaError::NoFreePort);
            };
            let slot = &self.inner.nodes[i];
            let Some(pair) = lock(&slot.pool).pop_front() else {
                continue;
            };
            slot.refill.notify_one();
            let (a, b) = (Self::local_id(i, pair.a), Self::local_id(i, pair.b));
            let mut t = lock(&self.inner.table);
            if t.legs.contains_key(&a) || t.legs.contains_key(&b) {
                // Two node addresses with the same port and generation: give it back.
                drop(t);
                let _ = slot.jobs.send(Job::Release(pair.a));
                continue;
            }
            for (local, remote) in [(a, pair.a), (b, pair.b)] {
                t.legs.insert(
                    local,
                    LegEntry {
                        node: i,
                        remote,
                        address: pair.address,
                        first: pair.a,
                    },
                );
                t.by_remote.insert((i, remote), local);
            }
            slot.live.fetch_add(1, Ordering::Relaxed);
            return Ok(Legs {
                customer: a,
                agent: b,
            });
        }
    }

    fn release(&self, legs: Legs) {
        let mut t = lock(&self.inner.table);
        let mut first = None;
        for l in [legs.customer, legs.agent] {
            if let Some(e) = t.legs.remove(&l) {
                t.by_remote.remove(&(e.node, e.remote));
                first = Some((e.node, e.first));
            }
            t.routes.remove(&l);
            t.shadow.remove(&l);
        }
        drop(t);
        if let Some((node, a)) = first {
            let slot = &self.inner.nodes[node];
            slot.live.fetch_sub(1, Ordering::Relaxed);
            if slot.healthy.load(Ordering::Acquire) {
                let _ = slot.jobs.send(Job::Release(a));
            }
        }
    }

    fn free_pairs(&self) -> usize {
        self.inner
            .nodes
            .iter()
            .filter(|n| n.healthy.load(Ordering::Acquire))
            .map(|n| lock(&n.pool).len() + n.free.load(Ordering::Relaxed))
            .sum()
    }

    fn send(&self, cmd: Command) -> Result<(), MediaError> {
        let Some(leg) = cmd.leg() else {
            return Err(MediaError::Command("not a leg command".into()));
        };
        let e = self
            .entry(leg)
            .ok_or_else(|| MediaError::Command(format!("unknown leg {leg}")))?;
        let slot = &self.inner.nodes[e.node];
        // Noted first: a pair waiting to be re-anchored is re-created as it stands then.
        reanchor::note(&mut lock(&self.inner.table).shadow, &cmd);
        if !slot.healthy.load(Ordering::Acquire) {
            // The node is gone (its calls moved, waiting to, or told); a removal completes
            // at once so that the call's end does not wait for counters that cannot come.
            if let Command::RemoveLeg { leg } = cmd {
                let to = lock(&self.inner.table).routes.get(&leg).cloned();
                if let Some(to) = to {
                    let _ = to.send(Event::LegRemoved {
                        leg,
                        stats: LegStats::default(),
                    });
                }
            }
            return Ok(());
        }
        let t = lock(&self.inner.table);
        let mapped = map_command(cmd, |l| {
            t.legs
                .get(&l)
                .filter(|x| x.node == e.node)
                .map(|x| x.remote)
        })
        .ok_or_else(|| MediaError::Command("legs on different media nodes".into()))?;
        drop(t);
        slot.jobs
            .send(Job::Cmd(mapped))
            .map_err(|_| MediaError::Command("media node task stopped".into()))
    }

    fn address_of(&self, leg: LegId) -> Option<IpAddr> {
        self.entry(leg).map(|e| e.address)
    }

    fn rtp_of(&self, leg: LegId) -> Option<SocketAddr> {
        // The node's port: after a re-anchoring no longer `leg.port()`.
        self.entry(leg)
            .map(|e| SocketAddr::new(e.address, e.remote.port()))
    }

    fn route(&self, leg: LegId, to: UnboundedSender<Event>) {
        lock(&self.inner.table).routes.insert(leg, to);
    }

    fn unroute(&self, leg: LegId) {
        lock(&self.inner.table).routes.remove(&leg);
    }
}
