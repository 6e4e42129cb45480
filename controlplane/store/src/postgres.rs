//! [`PgStore`]: the [`Store`] in a PostgreSQL database that several control-plane nodes share.
//!
//! ```text
//!  node A (run-a) ─┐                    ┌─ runs: run-a lease_until 12:00:15, run-b …
//!  node B (run-b) ─┼── pool ──► PostgreSQL ┤ requests: claimed_by = run id (queued → dialled)
//!  node C (run-c) ─┘                    └─ outbox: due_ms pushed ahead while being delivered
//! ```
//!
//! - **Claims.** Due requests are claimed with `SELECT … FOR UPDATE SKIP LOCKED`: two nodes
//!   claiming at once lock disjoint rows, so a request is handed to one run only.
//! - **Leases.** A claim is `claimed_by` = the run id; the run's lease lives in `runs`
//!   (`lease_until_ms`), one row per run rather than per request, so renewing costs one row
//!   however many calls the run has. Every claim and [`Store::renew`] extends it by the lease
//!   (default [`DEFAULT_LEASE_MS`]).
//! - **Take-over.** When a run's lease has expired (its node died: `kill -9`, power, network),
//!   the next node to claim or recover *fences* it (`fenced_ms`: it may never renew or claim
//!   again; a node that was only stalled gets [`StoreError::LeaseLost`]), puts its live calls
//!   in `interrupted` for the service's retry policy (as [`Store::recover`] does at a restart),
//!   and its claimed-but-waiting requests become claimable. [`Store::renew`] answers `true`
//!   when there is such work, so the service calls [`Store::recover`].
//! - **Agents.** `agents_state` holds each agent's presence and reservation for every node
//!   (see `agents`: row-locked reservations, LISTEN/NOTIFY on [`AGENTS_CHANNEL`] and
//!   [`NOTICES_CHANNEL`]), handed to the service by [`Store::presence_backend`].
//! - **Outbox.** [`Store::outbox_due`] claims with `SKIP LOCKED` too and moves the items'
//!   `due_ms` [`OUTBOX_LEASE_MS`] ahead (a visibility timeout): no other node sends them
//!   meanwhile; if the node dies they are due again then (delivery is at least once, as with
//!   SQLite).
//! - **Idempotency** keys are a primary key `(scope, key)`: two nodes accepting the same key at
//!   once meet on the constraint (`ON CONFLICT DO NOTHING`, the loser replays), never on a
//!   read-then-write.
//! - **Time** is the callers' Unix milliseconds, as in SQLite: the nodes' clocks must agree
//!   (NTP) to well within the lease.
//!
//! Every method is one short transaction on a pooled connection (see `pool`); commits are
//! durable with PostgreSQL's defaults (`synchronous_commit = on`).

use std::ops::DerefMut;
use std::sync::Arc;
use std::time::Duration;

use flows::{AgentId, BusinessId, CallId, Skill};
use postgres::{Config, GenericClient};

use crate::{
    Accepted, CallRecord, IdempotencyKey, MediaSummary, NewRequest, OutboxItem, RecordFilter, Sale,
    StatusChange, Store, StoreError, StoredResponse, IDEMPOTENCY_TTL_MS, LIVE_STATUSES,
};

mod agents;
mod lease;
mod pool;
mod rows;
mod schema;

pub use agents::{AGENTS_CHANNEL, NOTICES_CHANNEL};
pub use schema::PG_SCHEMA_VERSION;

use pool::Pool;
use rows::{
    append_event, get_in, outbox_row, push_webhook, query_records, OUTBOX_COLUMNS, REQUEST_COLUMNS,
};

/// How long a run's claims last without renewal (15 s): a dead node's calls are taken over
/// this long after its last renewal at the latest.
pub const DEFAULT_LEASE_MS: i64 = 15_000;

/// How long an outbox item being delivered stays invisible to other nodes (60 s, well over
/// the webhook client's timeout).
pub const OUTBOX_LEASE_MS: i64 = 60_000;

/// Connections per node (the service calls the store from tokio's blocking pool).
pub const DEFAULT_POOL_SIZE: usize = 8;

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        // The server's own message (with its detail) rather than "db error".
        match e.as_db_error() {
            Some(db) => Self::Db(format!("{}: {}", db.code().code(), db)),
            None => Self::Db(e.to_string()),
        }
    }
}

/// The PostgreSQL store. See the module docs.
#[derive(Debug)]
pub struct PgStore {
    pool: Arc<Pool>,
    lease_ms: i64,
}

/// Parses and checks a `postgres://` URL (user, host, port, database), as `store.url` gives it.
///
/// # Errors
/// Why it is not one.
pub fn parse_url(url: &str) -> Result<Config, String> {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
        return Err(format!(
            "{url:?} is not a PostgreSQL URL (postgres://USER@HOST:PORT/DATABASE)"
        ));
    }
    let mut c: Config = url.parse().map_err(|e| format!("{url:?}: {e}"))?;
    if c.get_hosts().is_empty() {
        return Err(format!("{url:?} names no host"));
    }
    if c.get_user().is_none() {
        return Err(format!("{url:?} names no user"));
    }
    if c.get_connect_timeout().is_none() {
        c.connect_timeout(Duration::from_secs(5));
    }
    if c.get_application_name().is_none() {
        c.application_name("callbridge");
    }
    Ok(c)
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://USER[:PASSWORD]@HOST:PORT/DB`) and
    /// migrates it to [`PG_SCHEMA_VERSION`], with the default lease and pool size.
    ///
    /// # Errors
    /// [`StoreError::Db`] when the URL is bad, the server unreachable or a migration fails;
    /// [`StoreError::SchemaTooNew`].
    pub fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with(url, DEFAULT_LEASE_MS, DEFAULT_POOL_SIZE)
    }

    /// [`PgStore::open`] with a lease of `lease_ms` and at most `pool` connections.
    ///
    /// # Errors
    /// As [`PgStore::open`].
    pub fn open_with(url: &str, lease_ms: i64, pool: usize) -> Result<Self, StoreError> {
        let config = parse_url(url).map_err(StoreError::Db)?;
        let s = Self {
            pool: Arc::new(Pool::new(config, pool)),
            lease_ms: lease_ms.max(1),
        };
        schema::migrate(s.pool.get()?.deref_mut())?;
        Ok(s)
    }

    /// The lease of this handle's claims.
    #[must_use]
    pub const fn lease_ms(&self) -> i64 {
        self.lease_ms
    }

    /// The schema version of the database.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        schema::current(self.pool.get()?.deref_mut())
    }
}

/// One request's insert (and its idempotency record), in `tx`.
fn accept_in(
    tx: &mut impl GenericClient,
    req: &NewRequest,
    idem: Option<&IdempotencyKey>,
    response: &StoredResponse,
) -> Result<Accepted, StoreError> {
    let id = req.id.as_str();
    if let Some(k) = idem {
        tx.execute(
            "DELETE FROM idempotency WHERE scope = $1 AND key = $2 AND created_ms <= $3",
            &[&k.scope, &k.key, &(k.at_ms - IDEMPOTENCY_TTL_MS)],
        )?;
        // The constraint decides between two nodes accepting the same key at once: the
        // second waits for the first's commit, then inserts nothing and replays.
        let status = i32::from(response.status);
        let n = tx.execute(
            "INSERT INTO idempotency (scope, key, body_hash, status, body, request_id, created_ms) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (scope, key) DO NOTHING",
            &[&k.scope, &k.key, &k.body_hash, &status, &response.body, &id, &k.at_ms],
        )?;
        if n == 0 {
            let seen = tx
                .query_opt(
                    "SELECT body_hash, status, body, request_id FROM idempotency \
                     WHERE scope = $1 AND key = $2",
                    &[&k.scope, &k.key],
                )?
                .ok_or_else(|| StoreError::Db("idempotency key vanished; retry".into()))?;
            let hash: String = seen.get(0);
            if hash != k.body_hash {
                return Err(StoreError::IdempotencyConflict(k.key.clone()));
            }
            let first: String = seen.get(3);
            let status = u16::try_from(seen.get::<_, i32>(1))
                .map_err(|_| StoreError::Corrupt("stored HTTP status".into()))?;
            return Ok(Accepted::Replay {
                response: StoredResponse {
                    status,
                    body: seen.get(2),
                },
                id: CallId::new(first.clone()).map_err(|_| StoreError::Corrupt(first))?,
            });
        }
    }
    let page = req.page.as_ref();
    let n = tx.execute(
        &format!(
            "INSERT INTO requests ({REQUEST_COLUMNS}) VALUES \
             ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13, NULL, NULL, 0, $14, $15, $16) \
             ON CONFLICT (id) DO NOTHING"
        ),
        &[
            &id,
            &req.kind.as_str(),
            &req.business.as_ref().map(BusinessId::as_str),
            &req.customer,
            &req.preferred_agent.as_ref().map(AgentId::as_str),
            &req.agent_spec,
            &req.contact_at_ms,
            &page.map(|p| p.url.as_str()),
            &page.map(|p| p.title.as_str()),
            &page.map(|p| p.referrer.as_str()),
            &req.client_ip,
            &req.created_ms,
            &req.status,
            &req.due_ms,
            &req.claimed_by,
            &req.skill.as_ref().map(Skill::as_str),
        ],
    )?;
    if n == 0 {
        return Err(StoreError::Duplicate(id.to_owned()));
    }
    append_event(tx, id, req.created_ms, &req.status, None, None)?;
    if let Some(w) = &req.webhook {
        let business = req.business.as_ref().map(BusinessId::as_str);
        push_webhook(tx, id, business, req.created_ms, w)?;
    }
    Ok(Accepted::New)
}

fn limit_of(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

impl Store for PgStore {
    fn shared(&self) -> bool {
        true
    }

    fn presence_backend(&self, run: &str) -> Option<Arc<dyn flows::acd::PresenceBackend>> {
        Some(Arc::new(agents::PgAgents::new(self.pool.clone(), run)))
    }

    fn accept(
        &self,
        req: &NewRequest,
        idem: Option<&IdempotencyKey>,
        response: &StoredResponse,
    ) -> Result<Accepted, StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        let r = accept_in(&mut tx, req, idem, response)?;
        if r == Accepted::New {
            tx.commit()?;
        }
        Ok(r)
    }

    fn get(&self, id: &CallId) -> Result<Option<CallRecord>, StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.build_transaction().read_only(true).start()?;
        get_in(&mut tx, id.as_str())
    }

    fn set_status(&self, id: &CallId, ch: &StatusChange) -> Result<(), StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        let row = tx.query_opt(
            "UPDATE requests SET status = $2, reason = $3, agent = COALESCE($4, agent), \
             due_ms = COALESCE($5, due_ms), attempts = attempts + $6, updated_ms = $7, \
             claimed_by = CASE WHEN $8 THEN NULL ELSE claimed_by END WHERE id = $1 \
             RETURNING business",
            &[
                &id.as_str(),
                &ch.status,
                &ch.reason,
                &ch.agent,
                &ch.due_ms,
                &i32::from(ch.attempt),
                &ch.at_ms,
                &ch.unclaim,
            ],
        )?;
        let Some(row) = row else {
            return Err(StoreError::NotFound(id.as_str().to_owned()));
        };
        append_event(
            &mut tx,
            id.as_str(),
            ch.at_ms,
            &ch.status,
            ch.reason.as_deref(),
            ch.agent.as_deref(),
        )?;
        if let Some(w) = &ch.webhook {
            let business: Option<String> = row.get(0);
            push_webhook(&mut tx, id.as_str(), business.as_deref(), ch.at_ms, w)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn claim_due(
        &self,
        run: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        lease::claim_due(self, run, now_ms, limit_of(limit))
    }

    fn unclaim(&self, id: &CallId, due_ms: i64) -> Result<(), StoreError> {
        self.pool.get()?.execute(
            "UPDATE requests SET claimed_by = NULL, due_ms = $2 WHERE id = $1",
            &[&id.as_str(), &due_ms],
        )?;
        Ok(())
    }

    fn recover(&self, run: &str, now_ms: i64) -> Result<Vec<CallRecord>, StoreError> {
        lease::recover(self, run, now_ms)
    }

    fn renew(&self, run: &str, now_ms: i64) -> Result<bool, StoreError> {
        lease::renew(self, run, now_ms)
    }

    fn queued_by_business(&self) -> Result<Vec<(String, usize)>, StoreError> {
        // The partial index `requests_waiting` holds exactly these rows.
        let rows = self.pool.get()?.query(
            "SELECT business, count(*) FROM requests WHERE status = 'queued' \
             AND business IS NOT NULL GROUP BY business ORDER BY business",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let n: i64 = r.get(1);
                (r.get(0), usize::try_from(n).unwrap_or(0))
            })
            .collect())
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(self
            .pool
            .get()?
            .query_one(
                "SELECT MIN(due_ms) FROM requests WHERE status IN ('queued', 'scheduled') \
                 AND claimed_by IS NULL",
                &[],
            )?
            .get(0))
    }

    fn set_media(&self, id: &CallId, role: &str, media: &MediaSummary) -> Result<(), StoreError> {
        self.pool.get()?.execute(
            "INSERT INTO media (request_id, role, summary) VALUES ($1, $2, $3) \
             ON CONFLICT (request_id, role) DO UPDATE SET summary = excluded.summary",
            &[&id.as_str(), &role, &media.json],
        )?;
        Ok(())
    }

    fn put_sale(&self, id: &CallId, s: &Sale) -> Result<(), StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.transaction()?;
        if tx
            .query_opt("SELECT 1 FROM requests WHERE id = $1", &[&id.as_str()])?
            .is_none()
        {
            return Err(StoreError::NotFound(id.as_str().to_owned()));
        }
        tx.execute(
            "INSERT INTO sales (request_id, at_ms, outcome, amount_minor, currency, product, notes, agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (request_id) DO UPDATE SET \
             at_ms = excluded.at_ms, outcome = excluded.outcome, amount_minor = excluded.amount_minor, \
             currency = excluded.currency, product = excluded.product, notes = excluded.notes, \
             agent = excluded.agent",
            &[
                &id.as_str(),
                &s.at_ms,
                &s.outcome,
                &s.amount_minor,
                &s.currency,
                &s.product,
                &s.notes,
                &s.agent,
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    fn records(&self, f: &RecordFilter) -> Result<Vec<CallRecord>, StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.build_transaction().read_only(true).start()?;
        let business = f.business.as_ref().map(BusinessId::as_str);
        query_records(
            &mut tx,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests WHERE created_ms >= $1 AND created_ms < $2 \
                 AND ($3::TEXT IS NULL OR business = $3) ORDER BY created_ms, id LIMIT $4"
            ),
            &[&f.from_ms, &f.to_ms, &business, &limit_of(f.limit)],
        )
    }

    fn history(
        &self,
        customer: &str,
        exclude: &CallId,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut c = self.pool.get()?;
        let mut tx = c.build_transaction().read_only(true).start()?;
        query_records(
            &mut tx,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests WHERE customer = $1 AND id <> $2 \
                 ORDER BY created_ms DESC LIMIT $3"
            ),
            &[&customer, &exclude.as_str(), &limit_of(limit)],
        )
    }

    fn outbox_push(&self, item: &OutboxItem) -> Result<i64, StoreError> {
        Ok(self
            .pool
            .get()?
            .query_one(
                "INSERT INTO outbox (request_id, business, url, body, created_ms, due_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
                &[
                    &item.request_id.as_str(),
                    &item.business.as_str(),
                    &item.url,
                    &item.body,
                    &item.created_ms,
                    &item.due_ms,
                ],
            )?
            .get(0))
    }

    fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let cols = OUTBOX_COLUMNS
            .split(", ")
            .map(|c| {
                if c == "due_ms" {
                    "picked.due_ms".to_owned()
                } else {
                    format!("o.{c}")
                }
            })
            .collect::<Vec<_>>()
            .join(", ");
        let rows = self.pool.get()?.query(
            &format!(
                "WITH picked AS (SELECT id, due_ms FROM outbox WHERE delivered_ms IS NULL \
                 AND abandoned_ms IS NULL AND due_ms <= $1 ORDER BY due_ms, id LIMIT $2 \
                 FOR UPDATE SKIP LOCKED) \
                 UPDATE outbox o SET due_ms = $3 FROM picked WHERE o.id = picked.id RETURNING {cols}"
            ),
            &[&now_ms, &limit_of(limit), &now_ms.saturating_add(OUTBOX_LEASE_MS)],
        )?;
        let mut items = rows.iter().map(outbox_row).collect::<Result<Vec<_>, _>>()?;
        items.sort_by_key(|i| (i.due_ms, i.id));
        Ok(items)
    }

    fn outbox_attempt(
        &self,
        id: i64,
        at_ms: i64,
        result: Result<u16, String>,
        next_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let mut c = self.pool.get()?;
        match result {
            Ok(status) => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, delivered_ms = $2, last_status = $3, \
                 last_error = NULL WHERE id = $1",
                &[&id, &at_ms, &i32::from(status)],
            )?,
            Err(error) => c.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = $2, \
                 due_ms = COALESCE($3, due_ms), \
                 abandoned_ms = CASE WHEN $3::BIGINT IS NULL THEN $4::BIGINT ELSE NULL END WHERE id = $1",
                &[&id, &error, &next_ms, &at_ms],
            )?,
        };
        Ok(())
    }

    fn outbox_of(&self, id: &CallId) -> Result<Vec<OutboxItem>, StoreError> {
        self.pool
            .get()?
            .query(
                &format!("SELECT {OUTBOX_COLUMNS} FROM outbox WHERE request_id = $1 ORDER BY id"),
                &[&id.as_str()],
            )?
            .iter()
            .map(outbox_row)
            .collect()
    }

    fn put_directory(&self, kind: &str, id: &str, doc: &str, at_ms: i64) -> Result<(), StoreError> {
        self.pool.get()?.execute(
            "INSERT INTO directory (kind, id, doc, updated_ms) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, updated_ms = excluded.updated_ms",
            &[&kind, &id, &doc, &at_ms],
        )?;
        Ok(())
    }

    fn directory_docs(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        Ok(self
            .pool
            .get()?
            .query("SELECT kind, id, doc FROM directory ORDER BY kind, id", &[])?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
    }

    fn purge_idempotency(&self, now_ms: i64) -> Result<usize, StoreError> {
        let n = self.pool.get()?.execute(
            "DELETE FROM idempotency WHERE created_ms <= $1",
            &[&(now_ms - IDEMPOTENCY_TTL_MS)],
        )?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

/// The live statuses as a SQL array parameter.
fn live() -> Vec<&'static str> {
    LIVE_STATUSES.to_vec()
}

#[cfg(test)]
mod tests;
