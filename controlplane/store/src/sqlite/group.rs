//! Group commit: the writes that wait for the writer while another commit runs are committed
//! together, in one transaction (one fsync of the WAL), each in its own savepoint so one that
//! fails (a duplicate, an idempotency conflict, an unknown request) fails alone. Every caller
//! is answered only after the commit: nothing is reported written before it is durable.
//!
//! Accepts, status changes and media summaries share the queue: under load a call's status
//! changes (five or six per call) and its two media summaries would otherwise each pay a
//! transaction and an fsync of their own.

use std::sync::mpsc;
use std::sync::{MutexGuard, PoisonError};

use flows::CallId;
use rusqlite::{params, Connection, OptionalExtension};

use super::rows::{append_event, push_webhook};
use super::{accept_one, lock, SqliteStore};
use crate::{
    Accepted, IdempotencyKey, MediaSummary, NewRequest, StatusChange, StoreError, StoredResponse,
};

/// A write waiting for the next group commit, with where its result goes.
#[derive(Debug)]
pub(super) enum Job {
    /// [`crate::Store::accept`].
    Accept {
        req: Box<NewRequest>,
        idem: Option<IdempotencyKey>,
        response: StoredResponse,
        done: mpsc::Sender<Result<Accepted, StoreError>>,
    },
    /// [`crate::Store::set_status`].
    Status {
        id: CallId,
        ch: StatusChange,
        done: mpsc::Sender<Result<(), StoreError>>,
    },
    /// [`crate::Store::set_media`].
    Media {
        id: CallId,
        role: String,
        media: MediaSummary,
        done: mpsc::Sender<Result<(), StoreError>>,
    },
}

/// The outcome of one job inside a batch, before the commit.
enum Done {
    Accept(Result<Accepted, StoreError>),
    Unit(Result<(), StoreError>),
}

impl Done {
    const fn is_ok(&self) -> bool {
        match self {
            Self::Accept(r) => r.is_ok(),
            Self::Unit(r) => r.is_ok(),
        }
    }
}

impl Job {
    /// Runs the job's statements on `tx` (a transaction or a savepoint).
    fn run(&self, tx: &Connection) -> Done {
        match self {
            Self::Accept {
                req,
                idem,
                response,
                ..
            } => Done::Accept(accept_one(tx, req, idem.as_ref(), response)),
            Self::Status { id, ch, .. } => Done::Unit(status_one(tx, id, ch)),
            Self::Media {
                id, role, media, ..
            } => Done::Unit(media_one(tx, id, role, media)),
        }
    }

    /// Answers the caller.
    fn answer(self, done: Done) {
        match (self, done) {
            (Self::Accept { done, .. }, Done::Accept(r)) => {
                let _ = done.send(r);
            }
            (Self::Status { done, .. } | Self::Media { done, .. }, Done::Unit(r)) => {
                let _ = done.send(r);
            }
            // A job's result always has its own kind (`run`); answer with an error anyway.
            (job, _) => job.fail(&StoreError::Db("internal: mismatched result".into())),
        }
    }

    /// Answers the caller with `e` (the commit failed).
    fn fail(self, e: &StoreError) {
        let err = || StoreError::Db(format!("commit failed: {e}"));
        match self {
            Self::Accept { done, .. } => {
                let _ = done.send(Err(err()));
            }
            Self::Status { done, .. } | Self::Media { done, .. } => {
                let _ = done.send(Err(err()));
            }
        }
    }
}

/// One status change: the row, its event, its webhook.
fn status_one(tx: &Connection, id: &CallId, ch: &StatusChange) -> Result<(), StoreError> {
    let n = tx
        .prepare_cached(
            "UPDATE requests SET status = ?2, reason = ?3, agent = COALESCE(?4, agent), \
             due_ms = COALESCE(?5, due_ms), attempts = attempts + ?6, updated_ms = ?7, \
             claimed_by = CASE WHEN ?8 THEN NULL ELSE claimed_by END WHERE id = ?1",
        )?
        .execute(params![
            id.as_str(),
            ch.status,
            ch.reason,
            ch.agent,
            ch.due_ms,
            i64::from(ch.attempt),
            ch.at_ms,
            ch.unclaim,
        ])?;
    if n == 0 {
        return Err(StoreError::NotFound(id.as_str().to_owned()));
    }
    append_event(
        tx,
        id.as_str(),
        ch.at_ms,
        &ch.status,
        ch.reason.as_deref(),
        ch.agent.as_deref(),
    )?;
    if let Some(w) = &ch.webhook {
        let business: Option<String> = tx
            .prepare_cached("SELECT business FROM requests WHERE id = ?1")?
            .query_row(params![id.as_str()], |r| r.get(0))
            .optional()?
            .flatten();
        push_webhook(tx, id.as_str(), business.as_deref(), ch.at_ms, w)?;
    }
    Ok(())
}

/// One leg's media summary (replacing an earlier one).
fn media_one(
    tx: &Connection,
    id: &CallId,
    role: &str,
    media: &MediaSummary,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO media (request_id, role, summary) VALUES (?1, ?2, ?3) \
         ON CONFLICT (request_id, role) DO UPDATE SET summary = excluded.summary",
    )?
    .execute(params![id.as_str(), role, media.json])?;
    Ok(())
}

fn lock_pending(m: &std::sync::Mutex<Vec<Job>>) -> MutexGuard<'_, Vec<Job>> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Commits every waiting job in one transaction (one fsync). A lone job runs in the
/// transaction itself (rolled back if it fails); several run each in a savepoint. Results are
/// sent only after the commit; if the commit fails, every job fails.
fn commit_batch(c: &mut Connection, jobs: Vec<Job>) {
    let run = |c: &mut Connection, jobs: &[Job]| -> Result<Vec<Done>, StoreError> {
        let mut tx = c.transaction()?;
        if let [job] = jobs {
            let r = job.run(&tx);
            if r.is_ok() {
                tx.commit()?;
            }
            // Dropping an uncommitted transaction rolls it back.
            return Ok(vec![r]);
        }
        let mut results = Vec::with_capacity(jobs.len());
        for job in jobs {
            let sp = tx.savepoint()?;
            let r = job.run(&sp);
            if r.is_ok() {
                sp.commit()?;
            }
            // Dropping an uncommitted savepoint rolls it back.
            results.push(r);
        }
        tx.commit()?;
        Ok(results)
    };
    match run(c, &jobs) {
        Ok(results) => {
            for (job, r) in jobs.into_iter().zip(results) {
                job.answer(r);
            }
        }
        Err(e) => {
            for job in jobs {
                job.fail(&e);
            }
        }
    }
}

impl SqliteStore {
    /// Queues the job `make(done)` and waits for its result: whoever gets the writer first
    /// commits everything queued so far (group commit), so a caller is either the leader of
    /// a batch or answered by one.
    pub(super) fn group_commit<T>(
        &self,
        make: impl FnOnce(mpsc::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (done, result) = mpsc::channel();
        lock_pending(&self.pending).push(make(done));
        loop {
            if let Ok(r) = result.try_recv() {
                return r;
            }
            let mut c = lock(&self.writer);
            // The leader before us may have committed ours while we waited for the lock.
            if let Ok(r) = result.try_recv() {
                return r;
            }
            let jobs = std::mem::take(&mut *lock_pending(&self.pending));
            if jobs.is_empty() {
                continue;
            }
            commit_batch(&mut c, jobs);
        }
    }
}
