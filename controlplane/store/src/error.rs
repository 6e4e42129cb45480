//! [`StoreError`]: the store's one error enum.

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database failed (I/O, corruption, locked beyond the busy timeout, …).
    #[error("database error: {0}")]
    Db(String),
    /// The database file is from a newer callbridge.
    #[error("the store's schema version {found} is newer than this callbridge's ({supported}); upgrade callbridge or use another store.path or store.url")]
    SchemaTooNew {
        /// The version in the file.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// No request with that id.
    #[error("there is no request with id {0}")]
    NotFound(String),
    /// A request with that id exists already.
    #[error("a request with id {0} exists already")]
    Duplicate(String),
    /// The idempotency key was used with a different request body.
    #[error("the Idempotency-Key {0:?} was already used with a different request body")]
    IdempotencyConflict(String),
    /// Another node took this run's work over: its lease had expired (the node stalled
    /// longer than the lease). The run may not claim or renew any more.
    #[error("run {0}'s lease expired and another node took its work over")]
    LeaseLost(String),
    /// A stored value could not be read back (written by something else).
    #[error("stored value unreadable: {0}")]
    Corrupt(String),
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Db(e.to_string())
    }
}
