//! Rows: reading a `requests` row into a record (with its events, media and sale), an outbox
//! row into an item, and the statements several operations share.

use flows::{AgentId, BusinessId, CallId, Skill};
use postgres::{GenericClient, Row};

use crate::{
    CallRecord, EventRow, Kind, MediaSummary, NewRequest, OutboxItem, Page, Sale, StoreError,
    Webhook,
};

/// The `requests` columns, in the order [`request_row`] reads them.
pub(super) const REQUEST_COLUMNS: &str =
    "id, kind, business, customer, preferred_agent, agent_spec, \
     contact_at_ms, page_url, page_title, referrer, client_ip, created_ms, updated_ms, status, \
     reason, agent, attempts, due_ms, claimed_by, skill";

/// The `outbox` columns, in the order [`outbox_row`] reads them.
pub(super) const OUTBOX_COLUMNS: &str =
    "id, request_id, business, url, body, created_ms, due_ms, attempts, \
     delivered_ms, last_status, last_error, abandoned_ms";

fn ident<T>(
    s: String,
    what: &str,
    make: fn(String) -> Result<T, flows::Error>,
) -> Result<T, StoreError> {
    make(s.clone()).map_err(|_| StoreError::Corrupt(format!("stored {what} {s:?} is invalid")))
}

fn opt_ident<T>(
    s: Option<String>,
    what: &str,
    make: fn(String) -> Result<T, flows::Error>,
) -> Result<Option<T>, StoreError> {
    s.map(|s| ident(s, what, make)).transpose()
}

fn count(v: i32) -> u32 {
    u32::try_from(v).unwrap_or(0)
}

/// A `requests` row (columns in [`REQUEST_COLUMNS`] order) without events, media, sale.
pub(super) fn request_row(r: &Row) -> Result<CallRecord, StoreError> {
    let kind: String = r.try_get(1)?;
    let kind = Kind::parse(&kind)
        .ok_or_else(|| StoreError::Corrupt(format!("stored kind {kind:?} is invalid")))?;
    let page = r.try_get::<_, Option<String>>(7)?.map(|url| Page {
        url,
        title: r.get::<_, Option<String>>(8).unwrap_or_default(),
        referrer: r.get::<_, Option<String>>(9).unwrap_or_default(),
    });
    let status: String = r.try_get(13)?;
    Ok(CallRecord {
        request: NewRequest {
            id: ident(r.try_get(0)?, "id", CallId::new)?,
            kind,
            business: opt_ident(r.try_get(2)?, "business", BusinessId::new)?,
            customer: r.try_get(3)?,
            preferred_agent: opt_ident(r.try_get(4)?, "preferred agent", AgentId::new)?,
            agent_spec: r.try_get(5)?,
            contact_at_ms: r.try_get(6)?,
            page,
            client_ip: r.try_get(10)?,
            created_ms: r.try_get(11)?,
            status: status.clone(),
            due_ms: None,
            claimed_by: r.try_get(18)?,
            webhook: None,
            skill: opt_ident(r.try_get(19)?, "skill", Skill::new)?,
        },
        updated_ms: r.try_get(12)?,
        status,
        reason: r.try_get(14)?,
        agent: r.try_get(15)?,
        attempts: count(r.try_get(16)?),
        due_ms: r.try_get(17)?,
        events: Vec::new(),
        media: Vec::new(),
        sale: None,
    })
}

/// Fills in events, media and sale.
pub(super) fn complete(
    c: &mut impl GenericClient,
    mut rec: CallRecord,
) -> Result<CallRecord, StoreError> {
    let id = rec.request.id.as_str().to_owned();
    rec.events = c
        .query(
            "SELECT at_ms, status, reason, agent FROM events WHERE request_id = $1 ORDER BY seq",
            &[&id],
        )?
        .iter()
        .map(|r| EventRow {
            at_ms: r.get(0),
            status: r.get(1),
            reason: r.get(2),
            agent: r.get(3),
        })
        .collect();
    // The status it was accepted with is the first event.
    if let Some(first) = rec.events.first() {
        rec.request.status.clone_from(&first.status);
    }
    rec.media = c
        .query(
            "SELECT role, summary FROM media WHERE request_id = $1 ORDER BY role",
            &[&id],
        )?
        .iter()
        .map(|r| (r.get(0), MediaSummary { json: r.get(1) }))
        .collect();
    rec.sale = c
        .query_opt(
            "SELECT at_ms, outcome, amount_minor, currency, product, notes, agent \
             FROM sales WHERE request_id = $1",
            &[&id],
        )?
        .map(|r| Sale {
            at_ms: r.get(0),
            outcome: r.get(1),
            amount_minor: r.get(2),
            currency: r.get(3),
            product: r.get(4),
            notes: r.get(5),
            agent: r.get(6),
        });
    Ok(rec)
}

/// Runs `sql` (selecting [`REQUEST_COLUMNS`]) and completes every record.
pub(super) fn query_records(
    c: &mut impl GenericClient,
    sql: &str,
    args: &[&(dyn postgres::types::ToSql + Sync)],
) -> Result<Vec<CallRecord>, StoreError> {
    let rows = c.query(sql, args)?;
    let recs = rows
        .iter()
        .map(request_row)
        .collect::<Result<Vec<_>, _>>()?;
    recs.into_iter().map(|r| complete(c, r)).collect()
}

/// One request with everything known about it.
pub(super) fn get_in(
    c: &mut impl GenericClient,
    id: &str,
) -> Result<Option<CallRecord>, StoreError> {
    Ok(query_records(
        c,
        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = $1"),
        &[&id],
    )?
    .pop())
}

/// Appends a status event (the caller holds the request's row lock, so `seq` is safe).
pub(super) fn append_event(
    tx: &mut impl GenericClient,
    id: &str,
    at_ms: i64,
    status: &str,
    reason: Option<&str>,
    agent: Option<&str>,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO events (request_id, seq, at_ms, status, reason, agent) VALUES \
         ($1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE request_id = $1), $2, $3, $4, $5)",
        &[&id, &at_ms, &status, &reason, &agent],
    )?;
    Ok(())
}

/// Queues a webhook for `id` of `business`.
pub(super) fn push_webhook(
    tx: &mut impl GenericClient,
    id: &str,
    business: Option<&str>,
    at_ms: i64,
    w: &Webhook,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO outbox (request_id, business, url, body, created_ms, due_ms) \
         VALUES ($1, $2, $3, $4, $5, $5)",
        &[&id, &business.unwrap_or_default(), &w.url, &w.body, &at_ms],
    )?;
    Ok(())
}

/// An `outbox` row (columns in [`OUTBOX_COLUMNS`] order).
pub(super) fn outbox_row(r: &Row) -> Result<OutboxItem, StoreError> {
    Ok(OutboxItem {
        id: r.try_get(0)?,
        request_id: ident(r.try_get(1)?, "request id", CallId::new)?,
        business: ident(r.try_get(2)?, "business", BusinessId::new)?,
        url: r.try_get(3)?,
        body: r.try_get(4)?,
        created_ms: r.try_get(5)?,
        due_ms: r.try_get(6)?,
        attempts: count(r.try_get(7)?),
        delivered_ms: r.try_get(8)?,
        last_status: r
            .try_get::<_, Option<i32>>(9)?
            .and_then(|s| u16::try_from(s).ok()),
        last_error: r.try_get(10)?,
        abandoned_ms: r.try_get(11)?,
    })
}
