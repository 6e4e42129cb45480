//! Agents shared by the nodes ([`PresenceBackend`] on PostgreSQL): the `agents_state` table,
//! reservations as row-locked read-check-writes, and LISTEN/NOTIFY to tell the other nodes.
//!
//! ```text
//!  node A ─reserve(alice, c1)─► BEGIN; SELECT … FOR UPDATE (alice); check; UPDATE; pg_notify('callbridge_agents', 'alice'); COMMIT
//!  node B ◄── NOTIFY callbridge_agents 'alice' (at A's commit) ── LISTEN connection (thread store-pg-listen)
//!         └─► reads alice's row, applies it to its ACD mirror
//! ```
//!
//! - **One reservation.** `reserve` locks the agent's row (`FOR UPDATE`) and only then reads
//!   it, so two nodes reserving one agent are serialised on the row: the second reads what
//!   the first committed and gets `false`.
//! - **Dead nodes hold nothing.** A reservation names the run (`call_run`); once that run's
//!   lease has expired (or it was fenced) the row reads as free, and the next `reserve` fences
//!   the run (as a claim would: it can never renew; its calls are taken over).
//! - **Notifications** are sent in the same transaction as the change (PostgreSQL delivers
//!   them at commit, never for a rolled-back change). Channel `callbridge_agents` carries the
//!   agent id; `callbridge_notices` carries [`PresenceBackend::publish`]'s payloads (screen
//!   pops, call status), at most a few kB (PostgreSQL's limit is 8000 bytes).
//! - **The listener** is one connection of its own per node, on a thread of its own; when it
//!   drops, the thread reconnects (every second) and asks for a full resync; it ticks every
//!   half second so the service can poll as a fallback.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use flows::acd::{BackendError, Change, PresenceBackend, SharedAgent, Watcher};
use flows::{AgentId, CallId, Presence};
use postgres::fallible_iterator::FallibleIterator;
use postgres::{GenericClient, NoTls, Row};

use super::pool::Pool;
use crate::StoreError;

/// The channel of agents' changes (payload: the agent id).
pub const AGENTS_CHANNEL: &str = "callbridge_agents";
/// The channel of notices for the nodes' subscribers (payload: the publisher's text).
pub const NOTICES_CHANNEL: &str = "callbridge_notices";
/// How often the listener ticks ([`Change::Tick`]).
const TICK: Duration = Duration::from_millis(500);
/// How long the listener waits before connecting again.
const RECONNECT: Duration = Duration::from_secs(1);

/// SQL: the run `$r` holds nothing any more (fenced, or its lease expired before `$now`).
const DEAD_RUN: &str =
    "SELECT EXISTS (SELECT 1 FROM runs WHERE run = $1 AND (fenced_ms IS NOT NULL OR lease_until_ms < $2))";

/// Columns of a row, with whether its reservation is void (`$1` is now).
const ROW: &str = "SELECT a.agent, a.presence, a.call_id, a.call_run, a.talking, a.wrap_until_ms, \
    a.idle_since_ms, (a.call_run IS NOT NULL AND a.call_run IN (SELECT u.run FROM runs u \
    WHERE u.fenced_ms IS NOT NULL OR u.lease_until_ms < $1)) FROM agents_state a";

/// The backend of one run (node).
#[derive(Debug)]
pub(crate) struct PgAgents {
    pool: Arc<Pool>,
    run: String,
}

fn err(e: impl std::fmt::Display) -> BackendError {
    e.to_string()
}

fn db(e: postgres::Error) -> BackendError {
    StoreError::from(e).to_string()
}

impl PgAgents {
    pub(crate) fn new(pool: Arc<Pool>, run: &str) -> Self {
        Self {
            pool,
            run: run.to_owned(),
        }
    }

    fn row(&self, r: &Row) -> Option<SharedAgent> {
        let agent = AgentId::new(r.get::<_, String>(0)).ok()?;
        let presence = r.get::<_, String>(1).parse().unwrap_or(Presence::Available);
        let void: bool = r.get(7);
        let run: Option<String> = r.get(3);
        let call = r
            .get::<_, Option<String>>(2)
            .filter(|_| !void)
            .and_then(|c| CallId::new(c).ok());
        Some(SharedAgent {
            agent,
            presence,
            mine: call.is_some() && run.as_deref() == Some(self.run.as_str()),
            talking: call.is_some() && r.get::<_, bool>(4),
            call,
            wrap_until_ms: r.get(5),
            idle_since_ms: r.get(6),
        })
    }

    /// Runs `f` in a transaction, then notifies the agent's change (at commit).
    fn change<T>(
        &self,
        agent: &AgentId,
        f: impl FnOnce(&mut postgres::Transaction<'_>) -> Result<T, postgres::Error>,
    ) -> Result<T, BackendError> {
        let mut c = self.pool.get().map_err(err)?;
        let mut tx = c.transaction().map_err(db)?;
        let out = f(&mut tx).map_err(db)?;
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&AGENTS_CHANNEL, &agent.as_str()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }
}

/// Makes sure the agent has a row (available, free since `now_ms`).
fn ensure(
    tx: &mut impl GenericClient,
    agent: &AgentId,
    now_ms: i64,
) -> Result<(), postgres::Error> {
    tx.execute(
        "INSERT INTO agents_state (agent, idle_since_ms, updated_ms) VALUES ($1, $2, $2) \
         ON CONFLICT (agent) DO NOTHING",
        &[&agent.as_str(), &now_ms],
    )?;
    Ok(())
}

/// Writes the reservation, announces it and commits.
fn write_reservation(
    mut tx: postgres::Transaction<'_>,
    agent: &AgentId,
    call: &CallId,
    run: &str,
    now_ms: i64,
) -> Result<(), BackendError> {
    tx.execute(
        "UPDATE agents_state SET call_id = $2, call_run = $3, talking = FALSE, \
         reserved_ms = $4, wrap_until_ms = NULL, updated_ms = $4 WHERE agent = $1",
        &[&agent.as_str(), &call.as_str(), &run, &now_ms],
    )
    .map_err(db)?;
    tx.execute(
        "SELECT pg_notify($1, $2)",
        &[&AGENTS_CHANNEL, &agent.as_str()],
    )
    .map_err(db)?;
    tx.commit().map_err(db)
}

impl PresenceBackend for PgAgents {
    fn reserve(&self, agent: &AgentId, call: &CallId, now_ms: i64) -> Result<bool, BackendError> {
        let mut c = self.pool.get().map_err(err)?;
        let mut tx = c.transaction().map_err(db)?;
        ensure(&mut tx, agent, now_ms).map_err(db)?;
        // Locked first, read second: a node reserving at the same moment waits here, then
        // reads what we committed.
        let r = tx
            .query_one(
                "SELECT presence, call_id, call_run, wrap_until_ms FROM agents_state \
                 WHERE agent = $1 FOR UPDATE",
                &[&agent.as_str()],
            )
            .map_err(db)?;
        let presence: String = r.get(0);
        let held: Option<String> = r.get(1);
        let run: Option<String> = r.get(2);
        let wrap: Option<i64> = r.get(3);
        if presence != "available" || wrap.is_some_and(|w| w > now_ms) {
            return Ok(false);
        }
        if held.is_some() {
            // Held by this run (for this or another of its calls): this node's ACD is the
            // authority on its own reservations (it released her from the other call; the
            // release's write may still be on its way, and then matches nothing).
            let Some(run) = run.filter(|r| *r != self.run) else {
                return write_reservation(tx, agent, call, &self.run, now_ms).map(|()| true);
            };
            let dead: bool = tx.query_one(DEAD_RUN, &[&run, &now_ms]).map_err(db)?.get(0);
            if !dead {
                return Ok(false);
            }
            // Its node is gone: fenced now (as a claim fences), so it never renews.
            tx.execute(
                "UPDATE runs SET fenced_ms = $2 WHERE run = $1 AND fenced_ms IS NULL \
                 AND lease_until_ms < $2",
                &[&run, &now_ms],
            )
            .map_err(db)?;
        }
        write_reservation(tx, agent, call, &self.run, now_ms)?;
        Ok(true)
    }

    fn connected(&self, agent: &AgentId, call: &CallId, now_ms: i64) -> Result<(), BackendError> {
        self.change(agent, |tx| {
            tx.execute(
                "UPDATE agents_state SET talking = TRUE, updated_ms = $3 \
                 WHERE agent = $1 AND call_id = $2",
                &[&agent.as_str(), &call.as_str(), &now_ms],
            )
        })
        .map(drop)
    }

    fn release(
        &self,
        agent: &AgentId,
        call: &CallId,
        wrap_until_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        self.change(agent, |tx| {
            tx.execute(
                "UPDATE agents_state SET call_id = NULL, call_run = NULL, talking = FALSE, \
                 wrap_until_ms = $3::BIGINT, idle_since_ms = COALESCE($3::BIGINT, $4::BIGINT), updated_ms = $4 \
                 WHERE agent = $1 AND call_id = $2",
                &[&agent.as_str(), &call.as_str(), &wrap_until_ms, &now_ms],
            )
        })
        .map(drop)
    }

    fn no_answer(&self, agent: &AgentId, call: &CallId, now_ms: i64) -> Result<(), BackendError> {
        self.change(agent, |tx| {
            tx.execute(
                "UPDATE agents_state SET call_id = NULL, call_run = NULL, talking = FALSE, \
                 presence = CASE WHEN presence = 'offline' THEN 'offline' ELSE 'away' END, \
                 updated_ms = $3 WHERE agent = $1 AND (call_id = $2 OR call_id IS NULL)",
                &[&agent.as_str(), &call.as_str(), &now_ms],
            )
        })
        .map(drop)
    }

    fn set_presence(
        &self,
        agent: &AgentId,
        presence: Presence,
        now_ms: i64,
    ) -> Result<(), BackendError> {
        if !presence.settable() {
            return Err(format!("presence {presence} is set by calls"));
        }
        self.change(agent, |tx| {
            // Available again: free since now, wrap-up over (as the local ACD does).
            tx.execute(
                "INSERT INTO agents_state (agent, presence, idle_since_ms, updated_ms) \
                 VALUES ($1, $2, $3, $3) ON CONFLICT (agent) DO UPDATE SET \
                 presence = excluded.presence, updated_ms = excluded.updated_ms, \
                 idle_since_ms = CASE WHEN excluded.presence = 'available' \
                   AND (agents_state.presence <> 'available' OR agents_state.wrap_until_ms IS NOT NULL) \
                   THEN excluded.idle_since_ms ELSE agents_state.idle_since_ms END, \
                 wrap_until_ms = CASE WHEN excluded.presence = 'available' THEN NULL \
                   ELSE agents_state.wrap_until_ms END",
                &[&agent.as_str(), &presence.as_str(), &now_ms],
            )
        })
        .map(drop)
    }

    fn agents(&self, now_ms: i64) -> Result<Vec<SharedAgent>, BackendError> {
        let rows = self
            .pool
            .get()
            .map_err(err)?
            .query(&format!("{ROW} ORDER BY a.agent"), &[&now_ms])
            .map_err(db)?;
        Ok(rows.iter().filter_map(|r| self.row(r)).collect())
    }

    fn agent(&self, agent: &AgentId, now_ms: i64) -> Result<Option<SharedAgent>, BackendError> {
        let row = self
            .pool
            .get()
            .map_err(err)?
            .query_opt(
                &format!("{ROW} WHERE a.agent = $2"),
                &[&now_ms, &agent.as_str()],
            )
            .map_err(db)?;
        Ok(row.as_ref().and_then(|r| self.row(r)))
    }

    fn queue_position(
        &self,
        call: &CallId,
        now_ms: i64,
    ) -> Result<Option<(usize, usize)>, BackendError> {
        let _ = now_ms;
        let row = self
            .pool
            .get()
            .map_err(err)?
            .query_opt(
                "WITH me AS (SELECT id, business, created_ms FROM requests \
                 WHERE id = $1 AND status = 'queued' AND business IS NOT NULL) \
                 SELECT count(*) FILTER (WHERE (r.created_ms, r.id) < (me.created_ms, me.id)), \
                 count(*) FROM me JOIN requests r ON r.business = me.business \
                 AND r.status = 'queued' GROUP BY me.id",
                &[&call.as_str()],
            )
            .map_err(db)?;
        Ok(row.map(|r| {
            let n = |i: usize| usize::try_from(r.get::<_, i64>(i)).unwrap_or(0);
            (n(0), n(1))
        }))
    }

    fn publish(&self, payload: &str) -> Result<(), BackendError> {
        self.pool
            .get()
            .map_err(err)?
            .execute("SELECT pg_notify($1, $2)", &[&NOTICES_CHANNEL, &payload])
            .map_err(db)?;
        Ok(())
    }

    fn watch(&self, sink: Box<dyn FnMut(Change) -> bool + Send>) -> Result<Watcher, BackendError> {
        let stop = Arc::new(AtomicBool::new(false));
        let config = self.pool.config().clone();
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("store-pg-listen".into())
            .spawn(move || listen(&config, &flag, sink))
            .map_err(err)?;
        Ok(Watcher(Box::new(StopOnDrop(stop))))
    }
}

struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The listener thread: connect, LISTEN, hand every notification to `sink`, tick; on a lost
/// connection, connect again and resync.
fn listen(
    config: &postgres::Config,
    stop: &AtomicBool,
    mut sink: Box<dyn FnMut(Change) -> bool + Send>,
) {
    let mut last_tick = Instant::now();
    let mut tick = |sink: &mut Box<dyn FnMut(Change) -> bool + Send>| {
        if last_tick.elapsed() >= TICK {
            last_tick = Instant::now();
            return sink(Change::Tick);
        }
        true
    };
    while !stop.load(Ordering::Relaxed) {
        let mut c = match config.connect(NoTls) {
            Ok(c) => c,
            Err(e) => {
                if !sink(Change::Lost(format!("cannot connect: {e}"))) {
                    return;
                }
                std::thread::sleep(RECONNECT);
                if !sink(Change::Tick) {
                    return;
                }
                continue;
            }
        };
        let listening = c.batch_execute(&format!(
            "LISTEN {AGENTS_CHANNEL}; LISTEN {NOTICES_CHANNEL}"
        ));
        if listening.is_ok() && !sink(Change::Resync) {
            return;
        }
        let mut lost = listening.err().map(|e| e.to_string());
        while lost.is_none() && !stop.load(Ordering::Relaxed) {
            let next = c.notifications().timeout_iter(TICK).next();
            let go_on = match next {
                Ok(Some(n)) => {
                    let change = match n.channel() {
                        AGENTS_CHANNEL => AgentId::new(n.payload()).ok().map(Change::Agent),
                        NOTICES_CHANNEL => Some(Change::Notice(n.payload().to_owned())),
                        _ => None,
                    };
                    change.is_none_or(&mut sink) && tick(&mut sink)
                }
                Err(e) => {
                    lost = Some(e.to_string());
                    true
                }
                Ok(None) if c.is_closed() => {
                    lost = Some("connection closed".into());
                    true
                }
                Ok(None) => tick(&mut sink),
            };
            if !go_on {
                return;
            }
        }
        if let Some(why) = lost {
            if !sink(Change::Lost(why)) {
                return;
            }
        }
        // The client owns a runtime: dropped here, on this plain thread.
        drop(c);
        if !stop.load(Ordering::Relaxed) {
            std::thread::sleep(RECONNECT);
        }
    }
}
