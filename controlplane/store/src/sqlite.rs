//! [`SqliteStore`]: the [`Store`] in one SQLite file (WAL, `synchronous = FULL`).
//!
//! One connection writes (behind a mutex: SQLite has one writer anyway) and one reads, so
//! `GET`s are not queued behind a commit's fsync; WAL lets the reader see the last commit.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use flows::{AgentId, BusinessId, CallId, Skill};
use rusqlite::{params, Connection, OptionalExtension};

use crate::schema::{MIGRATIONS, SCHEMA_VERSION};
use crate::{
    Accepted, CallRecord, IdempotencyKey, MediaSummary, NewRequest, OutboxItem, RecordFilter, Sale,
    StatusChange, Store, StoreError, StoredResponse, IDEMPOTENCY_TTL_MS, LIVE_STATUSES,
};

mod group;
mod rows;

use group::Job;

use rows::{
    append_event, get_in, live_placeholders, outbox_row, push_webhook, query_records,
    OUTBOX_COLUMNS, REQUEST_COLUMNS,
};

/// How long a statement waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQLite store. See the module docs.
#[derive(Debug)]
pub struct SqliteStore {
    path: PathBuf,
    writer: Mutex<Connection>,
    /// Writes waiting for the next group commit.
    pending: Mutex<Vec<Job>>,
    /// Stops the checkpoint thread when the store is dropped.
    stop: Arc<AtomicBool>,
    reader: Mutex<Connection>,
}

fn lock(m: &Mutex<Connection>) -> MutexGuard<'_, Connection> {
    // A panic inside a transaction rolls it back when the Transaction drops: the connection
    // stays usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn connect(path: &Path) -> Result<Connection, StoreError> {
    let c = Connection::open(path)
        .map_err(|e| StoreError::Db(format!("cannot open {}: {e}", path.display())))?;
    c.busy_timeout(BUSY_TIMEOUT)?;
    c.pragma_update(None, "journal_mode", "WAL")?;
    c.pragma_update(None, "synchronous", "FULL")?;
    c.pragma_update(None, "foreign_keys", "ON")?;
    Ok(c)
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and migrates it to
    /// [`SCHEMA_VERSION`].
    ///
    /// # Errors
    /// [`StoreError::Db`] when the file cannot be opened or migrated;
    /// [`StoreError::SchemaTooNew`] when it comes from a newer callbridge.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, false)
    }

    /// [`SqliteStore::open`], choosing where WAL checkpoints run: `false` (the default)
    /// leaves them to SQLite, inside whichever commit crosses 1 000 WAL pages; `true` runs
    /// them on a thread of their own every 500 ms. Measured side by side
    /// (`scripts/perf store-accept --rounds 3`, perf/RESULTS.md) the background checkpoint
    /// made every commit slower (the WAL keeps growing, so each fsync also writes the file's
    /// new size), so it is not the default.
    ///
    /// # Errors
    /// As [`SqliteStore::open`].
    pub fn open_with(
        path: impl AsRef<Path>,
        background_checkpoint: bool,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let mut writer = connect(&path)?;
        migrate(&mut writer)?;
        let reader = connect(&path)?;
        let stop = Arc::new(AtomicBool::new(false));
        if background_checkpoint {
            // Checkpoints on their own connection and thread, not inside a request's commit.
            writer.pragma_update(None, "wal_autocheckpoint", 0)?;
            let checkpointer = connect(&path)?;
            let flag = stop.clone();
            std::thread::Builder::new()
                .name("store-checkpoint".into())
                .spawn(move || checkpoints(&checkpointer, &flag))
                .map_err(|e| StoreError::Db(format!("cannot start the checkpoint thread: {e}")))?;
        }
        Ok(Self {
            path,
            writer: Mutex::new(writer),
            pending: Mutex::default(),
            reader: Mutex::new(reader),
            stop,
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        version(&lock(&self.reader))
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// How often the WAL is checkpointed into the database file.
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(500);

/// Copies committed WAL frames into the database file every [`CHECKPOINT_PERIOD`] (PASSIVE:
/// never waits for the writer), so that no request's commit pays for a checkpoint; the WAL
/// is truncated when the store is dropped. Ends when `stop` is set.
fn checkpoints(c: &Connection, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(CHECKPOINT_PERIOD);
        // Errors (busy) are retried next period; a failure here loses nothing: the WAL keeps
        // every commit until a checkpoint succeeds.
        let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
    let _ = c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

fn version(c: &Connection) -> Result<i64, StoreError> {
    Ok(c.query_row("SELECT version FROM schema_version", [], |r| r.get(0))?)
}

/// Runs the migrations the file lacks, each in its own transaction.
fn migrate(c: &mut Connection) -> Result<(), StoreError> {
    c.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")?;
    let tx = c.transaction()?;
    let have: Option<i64> = tx
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .optional()?;
    if have.is_none() {
        tx.execute("INSERT INTO schema_version (version) VALUES (0)", [])?;
    }
    tx.commit()?;
    loop {
        let tx = c.transaction()?;
        let v = version(&tx)?;
        if v > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: v,
                supported: SCHEMA_VERSION,
            });
        }
        if v == SCHEMA_VERSION {
            return Ok(());
        }
        let step =
            usize::try_from(v).map_err(|_| StoreError::Corrupt(format!("schema version {v}")))?;
        tx.execute_batch(MIGRATIONS[step])
            .map_err(|e| StoreError::Db(format!("migration to version {}: {e}", v + 1)))?;
        tx.execute("UPDATE schema_version SET version = ?1", params![v + 1])?;
        tx.commit()?;
    }
}

/// One request's insert (and its idempotency record) inside a batch's transaction.
fn accept_one(
    tx: &Connection,
    req: &NewRequest,
    idem: Option<&IdempotencyKey>,
    response: &StoredResponse,
) -> Result<Accepted, StoreError> {
    if let Some(k) = idem {
        let seen: Option<(String, u16, String, String, i64)> = tx
            .prepare_cached(
                "SELECT body_hash, status, body, request_id, created_ms FROM idempotency \
                 WHERE scope = ?1 AND key = ?2",
            )?
            .query_row(params![k.scope, k.key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
            })
            .optional()?;
        if let Some((hash, status, body, id, created)) = seen {
            if k.at_ms - created < IDEMPOTENCY_TTL_MS {
                if hash != k.body_hash {
                    return Err(StoreError::IdempotencyConflict(k.key.clone()));
                }
                let id = CallId::new(id.clone()).map_err(|_| StoreError::Corrupt(id))?;
                return Ok(Accepted::Replay {
                    response: StoredResponse { status, body },
                    id,
                });
            }
            tx.execute(
                "DELETE FROM idempotency WHERE scope = ?1 AND key = ?2",
                params![k.scope, k.key],
            )?;
        }
    }
    let id = req.id.as_str();
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM requests WHERE id = ?1", params![id], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_some() {
        return Err(StoreError::Duplicate(id.to_owned()));
    }
    let page = req.page.as_ref();
    tx.prepare_cached(&format!(
        "INSERT INTO requests ({REQUEST_COLUMNS}) VALUES \
         (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?12, ?13, NULL, NULL, 0, ?14, ?15, ?16)"
    ))?
    .execute(params![
        id,
        req.kind.as_str(),
        req.business.as_ref().map(BusinessId::as_str),
        req.customer,
        req.preferred_agent.as_ref().map(AgentId::as_str),
        req.agent_spec,
        req.contact_at_ms,
        page.map(|p| p.url.as_str()),
        page.map(|p| p.title.as_str()),
        page.map(|p| p.referrer.as_str()),
        req.client_ip,
        req.created_ms,
        req.status,
        req.due_ms,
        req.claimed_by,
        req.skill.as_ref().map(Skill::as_str),
    ])?;
    append_event(tx, id, req.created_ms, &req.status, None, None)?;
    if let Some(w) = &req.webhook {
        let business = req.business.as_ref().map(BusinessId::as_str);
        push_webhook(tx, id, business, req.created_ms, w)?;
    }
    if let Some(k) = idem {
        tx.prepare_cached(
            "INSERT INTO idempotency (scope, key, body_hash, status, body, request_id, created_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![
            k.scope,
            k.key,
            k.body_hash,
            response.status,
            response.body,
            id,
            k.at_ms
        ])?;
    }
    Ok(Accepted::New)
}

impl Store for SqliteStore {
    fn accept(
        &self,
        req: &NewRequest,
        idem: Option<&IdempotencyKey>,
        response: &StoredResponse,
    ) -> Result<Accepted, StoreError> {
        self.group_commit(|done| Job::Accept {
            req: Box::new(req.clone()),
            idem: idem.cloned(),
            response: response.clone(),
            done,
        })
    }

    fn get(&self, id: &CallId) -> Result<Option<CallRecord>, StoreError> {
        get_in(&lock(&self.reader), id.as_str())
    }

    fn set_status(&self, id: &CallId, ch: &StatusChange) -> Result<(), StoreError> {
        self.group_commit(|done| Job::Status {
            id: id.clone(),
            ch: ch.clone(),
            done,
        })
    }

    fn claim_due(
        &self,
        run: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let mut c = lock(&self.writer);
        let tx = c.transaction()?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let ids: Vec<String> = tx
            .prepare_cached(
                "SELECT id FROM requests WHERE status IN ('queued', 'scheduled') \
                 AND due_ms IS NOT NULL AND due_ms <= ?1 \
                 AND (claimed_by IS NULL OR claimed_by <> ?2) ORDER BY due_ms, created_ms LIMIT ?3",
            )?
            .query_map(params![now_ms, run, limit], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(ids.len());
        for id in &ids {
            tx.prepare_cached("UPDATE requests SET claimed_by = ?2 WHERE id = ?1")?
                .execute(params![id, run])?;
            if let Some(r) = get_in(&tx, id)? {
                out.push(r);
            }
        }
        tx.commit()?;
        Ok(out)
    }

    fn unclaim(&self, id: &CallId, due_ms: i64) -> Result<(), StoreError> {
        lock(&self.writer)
            .prepare_cached("UPDATE requests SET claimed_by = NULL, due_ms = ?2 WHERE id = ?1")?
            .execute(params![id.as_str(), due_ms])?;
        Ok(())
    }

    fn recover(&self, run: &str, now_ms: i64) -> Result<Vec<CallRecord>, StoreError> {
        let mut c = lock(&self.writer);
        let tx = c.transaction()?;
        let sql = format!(
            "SELECT id FROM requests WHERE status IN ({}) AND (claimed_by IS NULL OR claimed_by <> ?1)",
            live_placeholders(2)
        );
        let mut args: Vec<&dyn rusqlite::ToSql> = vec![&run];
        for s in &LIVE_STATUSES {
            args.push(s);
        }
        let ids: Vec<String> = tx
            .prepare(&sql)?
            .query_map(args.as_slice(), |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in &ids {
            append_event(&tx, id, now_ms, "interrupted", None, None)?;
            tx.execute(
                "UPDATE requests SET status = 'interrupted', claimed_by = NULL, updated_ms = ?2 \
                 WHERE id = ?1",
                params![id, now_ms],
            )?;
        }
        // Also those an earlier recovery marked but whose fate was never decided.
        let out = query_records(
            &tx,
            &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE status = 'interrupted' ORDER BY created_ms"),
            &[],
        )?;
        tx.execute(
            "UPDATE requests SET claimed_by = NULL WHERE status IN ('queued', 'scheduled') \
             AND claimed_by IS NOT NULL AND claimed_by <> ?1",
            params![run],
        )?;
        tx.commit()?;
        Ok(out)
    }

    fn queued_by_business(&self) -> Result<Vec<(String, usize)>, StoreError> {
        let db = lock(&self.reader);
        let mut q = db.prepare_cached(
            "SELECT business, COUNT(*) FROM requests WHERE status = 'queued' \
             AND business IS NOT NULL GROUP BY business ORDER BY business",
        )?;
        let rows = q.query_map([], |r| {
            let n: i64 = r.get(1)?;
            Ok((r.get(0)?, usize::try_from(n).unwrap_or(0)))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn next_due(&self) -> Result<Option<i64>, StoreError> {
        Ok(lock(&self.reader).query_row(
            "SELECT MIN(due_ms) FROM requests WHERE status IN ('queued', 'scheduled') \
             AND claimed_by IS NULL",
            [],
            |r| r.get(0),
        )?)
    }

    fn set_media(&self, id: &CallId, role: &str, media: &MediaSummary) -> Result<(), StoreError> {
        self.group_commit(|done| Job::Media {
            id: id.clone(),
            role: role.to_owned(),
            media: media.clone(),
            done,
        })
    }

    fn put_sale(&self, id: &CallId, s: &Sale) -> Result<(), StoreError> {
        let c = lock(&self.writer);
        let exists: Option<i64> = c
            .query_row(
                "SELECT 1 FROM requests WHERE id = ?1",
                params![id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::NotFound(id.as_str().to_owned()));
        }
        c.prepare_cached(
            "INSERT INTO sales (request_id, at_ms, outcome, amount_minor, currency, product, notes, agent) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT (request_id) DO UPDATE SET \
             at_ms = excluded.at_ms, outcome = excluded.outcome, amount_minor = excluded.amount_minor, \
             currency = excluded.currency, product = excluded.product, notes = excluded.notes, \
             agent = excluded.agent",
        )?
        .execute(params![
            id.as_str(),
            s.at_ms,
            s.outcome,
            s.amount_minor,
            s.currency,
            s.product,
            s.notes,
            s.agent
        ])?;
        Ok(())
    }

    fn records(&self, f: &RecordFilter) -> Result<Vec<CallRecord>, StoreError> {
        let c = lock(&self.reader);
        let limit = i64::try_from(f.limit).unwrap_or(i64::MAX);
        let business = f.business.as_ref().map(BusinessId::as_str);
        query_records(
            &c,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests WHERE created_ms >= ?1 AND created_ms < ?2 \
                 AND (?3 IS NULL OR business = ?3) ORDER BY created_ms, id LIMIT ?4"
            ),
            &[&f.from_ms, &f.to_ms, &business, &limit],
        )
    }

    fn history(
        &self,
        customer: &str,
        exclude: &CallId,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError> {
        let c = lock(&self.reader);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        query_records(
            &c,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests WHERE customer = ?1 AND id <> ?2 \
                 ORDER BY created_ms DESC LIMIT ?3"
            ),
            &[&customer, &exclude.as_str(), &limit],
        )
    }

    fn outbox_push(&self, item: &OutboxItem) -> Result<i64, StoreError> {
        let c = lock(&self.writer);
        c.prepare_cached(
            "INSERT INTO outbox (request_id, business, url, body, created_ms, due_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )?
        .execute(params![
            item.request_id.as_str(),
            item.business.as_str(),
            item.url,
            item.body,
            item.created_ms,
            item.due_ms
        ])?;
        Ok(c.last_insert_rowid())
    }

    fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let c = lock(&self.reader);
        let items = c
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE delivered_ms IS NULL \
                 AND abandoned_ms IS NULL AND due_ms <= ?1 ORDER BY due_ms, id LIMIT ?2"
            ))?
            .query_map(params![now_ms, limit], outbox_row)?
            .collect::<Result<_, _>>()?;
        Ok(items)
    }

    fn outbox_attempt(
        &self,
        id: i64,
        at_ms: i64,
        result: Result<u16, String>,
        next_ms: Option<i64>,
    ) -> Result<(), StoreError> {
        let c = lock(&self.writer);
        match result {
            Ok(status) => c
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, delivered_ms = ?2, last_status = ?3, \
                     last_error = NULL WHERE id = ?1",
                )?
                .execute(params![id, at_ms, status])?,
            Err(error) => c
                .prepare_cached(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = ?2, \
                     due_ms = COALESCE(?3, due_ms), abandoned_ms = CASE WHEN ?3 IS NULL THEN ?4 ELSE NULL END \
                     WHERE id = ?1",
                )?
                .execute(params![id, error, next_ms, at_ms])?,
        };
        Ok(())
    }

    fn outbox_of(&self, id: &CallId) -> Result<Vec<OutboxItem>, StoreError> {
        let c = lock(&self.reader);
        let items = c
            .prepare_cached(&format!(
                "SELECT {OUTBOX_COLUMNS} FROM outbox WHERE request_id = ?1 ORDER BY id"
            ))?
            .query_map(params![id.as_str()], outbox_row)?
            .collect::<Result<_, _>>()?;
        Ok(items)
    }

    fn put_directory(&self, kind: &str, id: &str, doc: &str, at_ms: i64) -> Result<(), StoreError> {
        lock(&self.writer)
            .prepare_cached(
                "INSERT INTO directory (kind, id, doc, updated_ms) VALUES (?1, ?2, ?3, ?4) \
                 ON CONFLICT (kind, id) DO UPDATE SET doc = excluded.doc, updated_ms = excluded.updated_ms",
            )?
            .execute(params![kind, id, doc, at_ms])?;
        Ok(())
    }

    fn directory_docs(&self) -> Result<Vec<(String, String, String)>, StoreError> {
        let c = lock(&self.reader);
        let rows = c
            .prepare_cached("SELECT kind, id, doc FROM directory ORDER BY kind, id")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        Ok(rows)
    }

    fn purge_idempotency(&self, now_ms: i64) -> Result<usize, StoreError> {
        Ok(lock(&self.writer).execute(
            "DELETE FROM idempotency WHERE created_ms <= ?1",
            params![now_ms - IDEMPOTENCY_TTL_MS],
        )?)
    }
}

#[cfg(test)]
mod tests;
