//! callbridge's durable store: the [`Store`] trait the service writes through, and
//! [`SqliteStore`], the embedded default, and [`PgStore`], PostgreSQL shared by several
//! control-plane nodes (claims with `SKIP LOCKED`, run leases, take-over of a dead node's work,
//! agents' presence and reservations shared through [`Store::presence_backend`]).
//!
//! ```text
//!  service ──accept / claim / status / media / sale / outbox──► dyn Store ──► SqliteStore (WAL file)
//!                                                                         └─► PgStore (PostgreSQL)
//! ```
//!
//! Contract:
//! - **Commit before promise.** [`Store::accept`] returns only after the request's row (and its
//!   idempotency record) is committed and synced (`synchronous = FULL`): a `202` sent after it
//!   survives `kill -9` and power loss.
//! - **One runner per request.** A request is executed only by the run that
//!   [`Store::claim_due`] handed it to; [`Store::recover`] at start-up takes back what an
//!   earlier run left in flight (`interrupted`) so nothing runs twice.
//! - **Times** are Unix milliseconds (`i64`, UTC) everywhere: portable SQL (`BIGINT` in
//!   PostgreSQL), no time-zone arithmetic in the store.
//! - **Statuses** are the HTTP contract's names (`queued`, `scheduled`, `calling_customer`, …,
//!   `failed` with a reason), plus `interrupted`: a call an earlier run left live, until the
//!   service decides to retry or fail it.
//! - The store holds no business rules: what is due, what to retry and when are the service's
//!   decisions, written here as values.
//!
//! The SQL is plain SQL-92 plus `ON CONFLICT` (SQLite ≥ 3.24, PostgreSQL ≥ 9.5) so the schema
//! and queries carry over to PostgreSQL. Why rusqlite rather than sqlx: the store is small and
//! synchronous by nature (one writer, short transactions); rusqlite's bundled SQLite builds
//! without a system library, and the service calls the store from tokio's blocking pool.
//! [`PgStore`] uses the `postgres` crate (synchronous, over tokio-postgres) the same way.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod error;
mod model;
mod postgres;
mod schema;
mod sqlite;

#[cfg(test)]
#[path = "../../../tests/src/postgres.rs"]
#[allow(unreachable_pub)]
mod pg_harness;
#[cfg(test)]
mod suite;

pub use error::StoreError;
pub use model::{
    Accepted, CallRecord, EventRow, IdempotencyKey, Kind, MediaSummary, NewRequest, OutboxItem,
    Page, RecordFilter, Sale, StatusChange, StoredResponse, Webhook, LIVE_STATUSES,
};
pub use postgres::{
    parse_url as parse_postgres_url, PgStore, AGENTS_CHANNEL, DEFAULT_LEASE_MS, DEFAULT_POOL_SIZE,
    NOTICES_CHANNEL, OUTBOX_LEASE_MS, PG_SCHEMA_VERSION,
};
pub use schema::SCHEMA_VERSION;
pub use sqlite::SqliteStore;

use flows::CallId;

/// How long an idempotency key is remembered (24 h).
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// What the service needs from durable storage. Every method is a short, synchronous
/// transaction; call it from a blocking thread (`tokio::task::spawn_blocking`), never from an
/// async task directly.
pub trait Store: Send + Sync + 'static {
    /// Commits a new request with its first status event (and, with `idem`, the response to
    /// replay for its key) in one transaction.
    ///
    /// Returns [`Accepted::Replay`] when `idem`'s key was used within
    /// [`IDEMPOTENCY_TTL_MS`] with the same body hash (nothing is written).
    ///
    /// # Errors
    /// [`StoreError::IdempotencyConflict`] when the key was used with a different body;
    /// [`StoreError::Duplicate`] when the id exists; [`StoreError::Db`] on failure.
    fn accept(
        &self,
        req: &NewRequest,
        idem: Option<&IdempotencyKey>,
        response: &StoredResponse,
    ) -> Result<Accepted, StoreError>;

    /// The request, its events, media summary and sale.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn get(&self, id: &CallId) -> Result<Option<CallRecord>, StoreError>;

    /// Appends a status event and updates the request's current status (and agent, when
    /// given). `due_ms` sets when the request is next due (retries, scheduling); `None`
    /// leaves it.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Db`].
    fn set_status(&self, id: &CallId, change: &StatusChange) -> Result<(), StoreError>;

    /// Hands up to `limit` requests that are waiting (`queued` or `scheduled`), due at or
    /// before `now_ms` and not claimed by `run`, to `run`, oldest due first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn claim_due(
        &self,
        run: &str,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;

    /// Gives a claimed request back (e.g. no capacity now): it is due again at `due_ms`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn unclaim(&self, id: &CallId, due_ms: i64) -> Result<(), StoreError>;

    /// At start-up: every request some earlier run left live (status in [`LIVE_STATUSES`])
    /// gets an `interrupted` event and status; every request in status `interrupted` is
    /// returned, so the service decides its fate (retry: `queued` again; or `failed`) with
    /// [`Store::set_status`] — until it does, each recovery returns it again, so a crash
    /// between the two steps loses nothing. Every waiting request claimed by an earlier run is
    /// released (due again). Requests claimed by `run` are untouched.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn recover(&self, run: &str, now_ms: i64) -> Result<Vec<CallRecord>, StoreError>;

    /// Whether other control-plane nodes work on this store too (PostgreSQL: any node may
    /// claim what this one accepted). A draining node then still accepts call requests and
    /// leaves them queued for the others; with a store of its own it refuses them. Default
    /// `false` (SQLite: one process owns the file).
    fn shared(&self) -> bool {
        false
    }

    /// Where agents' presence and reservations are shared with the other nodes, for the run
    /// `run`: PostgreSQL's `agents_state` with LISTEN/NOTIFY. `None` (the default, SQLite):
    /// the service's in-memory ACD is the only truth.
    fn presence_backend(
        &self,
        run: &str,
    ) -> Option<std::sync::Arc<dyn flows::acd::PresenceBackend>> {
        let _ = run;
        None
    }

    /// Keeps `run`'s claims alive (a shared store: their lease is extended) and answers
    /// `true` when a run whose lease expired left work behind (live calls, undecided
    /// `interrupted` requests, claimed waiting requests): the caller then runs
    /// [`Store::recover`], which takes it over. The service calls it every few seconds.
    ///
    /// The default (one process owns the store, as with SQLite): nothing to renew, `false`.
    ///
    /// # Errors
    /// [`StoreError::LeaseLost`] when another node took `run`'s work over (its lease had
    /// expired); [`StoreError::Db`].
    fn renew(&self, run: &str, now_ms: i64) -> Result<bool, StoreError> {
        let _ = (run, now_ms);
        Ok(false)
    }

    /// Requests in status `queued` per business (requests of no business are not counted),
    /// by business id: every node's, on a store several nodes share. The same requests
    /// `queue_position` counts. One aggregate query; callers cache it.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn queued_by_business(&self) -> Result<Vec<(String, usize)>, StoreError>;

    /// The earliest due time of a waiting request, to sleep until.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn next_due(&self) -> Result<Option<i64>, StoreError>;

    /// Records one leg's media summary (`role` is `customer` or `agent`), replacing the last.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn set_media(&self, id: &CallId, role: &str, media: &MediaSummary) -> Result<(), StoreError>;

    /// Records (or replaces) the sale of a request.
    ///
    /// # Errors
    /// [`StoreError::NotFound`]; [`StoreError::Db`].
    fn put_sale(&self, id: &CallId, sale: &Sale) -> Result<(), StoreError>;

    /// Requests created in `[from_ms, to_ms)`, optionally of one business, oldest first, at
    /// most `filter.limit`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn records(&self, filter: &RecordFilter) -> Result<Vec<CallRecord>, StoreError>;

    /// Earlier requests for the same customer (newest first, at most `limit`), excluding `id`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn history(
        &self,
        customer: &str,
        exclude: &CallId,
        limit: usize,
    ) -> Result<Vec<CallRecord>, StoreError>;

    /// Queues a webhook delivery (durably, for the outbox worker).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn outbox_push(&self, item: &OutboxItem) -> Result<i64, StoreError>;

    /// Undelivered outbox items due at or before `now_ms`, oldest first.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn outbox_due(&self, now_ms: i64, limit: usize) -> Result<Vec<OutboxItem>, StoreError>;

    /// Records one delivery attempt: `Ok(status)` delivered, or the error with the next
    /// attempt time (`None`: give up).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn outbox_attempt(
        &self,
        id: i64,
        at_ms: i64,
        result: Result<u16, String>,
        next_ms: Option<i64>,
    ) -> Result<(), StoreError>;

    /// Every outbox item of one request, oldest first (the delivery log).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn outbox_of(&self, id: &CallId) -> Result<Vec<OutboxItem>, StoreError>;

    /// Stores (or replaces) a directory document: a business or agent as changed through the
    /// API (`kind` is `business` or `agent`).
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn put_directory(&self, kind: &str, id: &str, doc: &str, at_ms: i64) -> Result<(), StoreError>;

    /// Every directory document: `(kind, id, doc)`, by kind and id.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn directory_docs(&self) -> Result<Vec<(String, String, String)>, StoreError>;

    /// Deletes idempotency keys older than [`IDEMPOTENCY_TTL_MS`] before `now_ms`.
    ///
    /// # Errors
    /// [`StoreError::Db`].
    fn purge_idempotency(&self, now_ms: i64) -> Result<usize, StoreError>;
}
