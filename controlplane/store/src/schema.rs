//! The schema and its migrations. Version `n` is reached by running `MIGRATIONS[n-1]`; each
//! runs once, in its own transaction, and bumps `schema_version`. Never edit a shipped
//! migration: add the next one.

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: i64 = 2;

/// Migration `i` takes the schema from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: [&str; 2] = [
    // v1: requests, their events, media, sales, idempotency keys, the webhook outbox.
    "
    CREATE TABLE requests (
        id              TEXT PRIMARY KEY,
        kind            TEXT NOT NULL,
        business        TEXT,
        customer        TEXT NOT NULL,
        preferred_agent TEXT,
        agent_spec      TEXT,
        contact_at_ms   BIGINT,
        page_url        TEXT,
        page_title      TEXT,
        referrer        TEXT,
        client_ip       TEXT,
        created_ms      BIGINT NOT NULL,
        updated_ms      BIGINT NOT NULL,
        status          TEXT NOT NULL,
        reason          TEXT,
        agent           TEXT,
        attempts        INTEGER NOT NULL DEFAULT 0,
        due_ms          BIGINT,
        claimed_by      TEXT,
        skill           TEXT
    );
    CREATE INDEX requests_due ON requests (status, due_ms);
    CREATE INDEX requests_created ON requests (created_ms);
    CREATE INDEX requests_customer ON requests (customer, created_ms);
    CREATE TABLE events (
        request_id TEXT NOT NULL REFERENCES requests (id),
        seq        INTEGER NOT NULL,
        at_ms      BIGINT NOT NULL,
        status     TEXT NOT NULL,
        reason     TEXT,
        agent      TEXT,
        PRIMARY KEY (request_id, seq)
    );
    CREATE TABLE media (
        request_id TEXT NOT NULL REFERENCES requests (id),
        role       TEXT NOT NULL,
        summary    TEXT NOT NULL,
        PRIMARY KEY (request_id, role)
    );
    CREATE TABLE sales (
        request_id   TEXT PRIMARY KEY REFERENCES requests (id),
        at_ms        BIGINT NOT NULL,
        outcome      TEXT NOT NULL,
        amount_minor BIGINT,
        currency     TEXT,
        product      TEXT,
        notes        TEXT,
        agent        TEXT
    );
    CREATE TABLE idempotency (
        scope      TEXT NOT NULL,
        key        TEXT NOT NULL,
        body_hash  TEXT NOT NULL,
        status     INTEGER NOT NULL,
        body       TEXT NOT NULL,
        request_id TEXT NOT NULL,
        created_ms BIGINT NOT NULL,
        PRIMARY KEY (scope, key)
    );
    CREATE TABLE outbox (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        request_id   TEXT NOT NULL,
        business     TEXT NOT NULL,
        url          TEXT NOT NULL,
        body         TEXT NOT NULL,
        created_ms   BIGINT NOT NULL,
        due_ms       BIGINT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        delivered_ms BIGINT,
        last_status  INTEGER,
        last_error   TEXT,
        abandoned_ms BIGINT
    );
    CREATE INDEX outbox_due ON outbox (delivered_ms, abandoned_ms, due_ms);
    CREATE INDEX outbox_request ON outbox (request_id);
    ",
    // v2: changes to businesses and agents made through the API (JSON documents applied over
    // the configuration at start).
    "
    CREATE TABLE directory (
        kind       TEXT NOT NULL,
        id         TEXT NOT NULL,
        doc        TEXT NOT NULL,
        updated_ms BIGINT NOT NULL,
        PRIMARY KEY (kind, id)
    );
    ",
];
