//! Rows: the column lists, reading a row into a record or an outbox item, and the small
//! statements the store's operations share (get, append an event, queue a webhook, query).

use flows::{AgentId, BusinessId, CallId, Skill};
use rusqlite::{params, Connection, OptionalExtension, Row};

use crate::{
    CallRecord, EventRow, Kind, MediaSummary, NewRequest, OutboxItem, Page, Sale, StoreError,
    Webhook, LIVE_STATUSES,
};

pub(super) const REQUEST_COLUMNS: &str =
    "id, kind, business, customer, preferred_agent, agent_spec, \
     contact_at_ms, page_url, page_title, referrer, client_ip, created_ms, updated_ms, status, \
     reason, agent, attempts, due_ms, claimed_by, skill";

pub(super) fn corrupt(what: &str, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        0,
        rusqlite::types::Type::Text,
        format!("stored {what} {value:?} is invalid").into(),
    )
}

pub(super) fn id_col<T>(
    r: &Row<'_>,
    i: usize,
    what: &str,
    make: fn(String) -> Result<T, flows::Error>,
) -> rusqlite::Result<T> {
    let s: String = r.get(i)?;
    make(s.clone()).map_err(|_| corrupt(what, &s))
}

pub(super) fn opt_id_col<T>(
    r: &Row<'_>,
    i: usize,
    what: &str,
    make: fn(String) -> Result<T, flows::Error>,
) -> rusqlite::Result<Option<T>> {
    match r.get::<_, Option<String>>(i)? {
        None => Ok(None),
        Some(s) => make(s.clone()).map(Some).map_err(|_| corrupt(what, &s)),
    }
}

/// A `requests` row (columns in [`REQUEST_COLUMNS`] order) without events, media, sale.
pub(super) fn request_row(r: &Row<'_>) -> rusqlite::Result<CallRecord> {
    let kind: String = r.get(1)?;
    let kind = Kind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?;
    let page_url: Option<String> = r.get(7)?;
    let page = page_url.map(|url| -> rusqlite::Result<Page> {
        Ok(Page {
            url,
            title: r.get::<_, Option<String>>(8)?.unwrap_or_default(),
            referrer: r.get::<_, Option<String>>(9)?.unwrap_or_default(),
        })
    });
    let status: String = r.get(13)?;
    let claimed_by: Option<String> = r.get(18)?;
    Ok(CallRecord {
        request: NewRequest {
            id: id_col(r, 0, "id", CallId::new)?,
            kind,
            business: opt_id_col(r, 2, "business", BusinessId::new)?,
            customer: r.get(3)?,
            preferred_agent: opt_id_col(r, 4, "preferred agent", AgentId::new)?,
            agent_spec: r.get(5)?,
            contact_at_ms: r.get(6)?,
            page: page.transpose()?,
            client_ip: r.get(10)?,
            created_ms: r.get(11)?,
            status: status.clone(),
            due_ms: None,
            claimed_by,
            webhook: None,
            skill: opt_id_col(r, 19, "skill", Skill::new)?,
        },
        updated_ms: r.get(12)?,
        status,
        reason: r.get(14)?,
        agent: r.get(15)?,
        attempts: r.get(16)?,
        due_ms: r.get(17)?,
        events: Vec::new(),
        media: Vec::new(),
        sale: None,
    })
}

/// Fills in events, media and sale.
pub(super) fn complete(c: &Connection, mut rec: CallRecord) -> Result<CallRecord, StoreError> {
    let id = rec.request.id.as_str().to_owned();
    let mut st = c.prepare_cached(
        "SELECT at_ms, status, reason, agent FROM events WHERE request_id = ?1 ORDER BY seq",
    )?;
    rec.events = st
        .query_map(params![id], |r| {
            Ok(EventRow {
                at_ms: r.get(0)?,
                status: r.get(1)?,
                reason: r.get(2)?,
                agent: r.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    // The status it was accepted with is the first event.
    if let Some(first) = rec.events.first() {
        rec.request.status.clone_from(&first.status);
    }
    let mut st =
        c.prepare_cached("SELECT role, summary FROM media WHERE request_id = ?1 ORDER BY role")?;
    rec.media = st
        .query_map(params![id], |r| {
            Ok((r.get::<_, String>(0)?, MediaSummary { json: r.get(1)? }))
        })?
        .collect::<Result<_, _>>()?;
    rec.sale = c
        .prepare_cached(
            "SELECT at_ms, outcome, amount_minor, currency, product, notes, agent \
             FROM sales WHERE request_id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok(Sale {
                at_ms: r.get(0)?,
                outcome: r.get(1)?,
                amount_minor: r.get(2)?,
                currency: r.get(3)?,
                product: r.get(4)?,
                notes: r.get(5)?,
                agent: r.get(6)?,
            })
        })
        .optional()?;
    Ok(rec)
}

pub(super) fn get_in(c: &Connection, id: &str) -> Result<Option<CallRecord>, StoreError> {
    let row = c
        .prepare_cached(&format!(
            "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"
        ))?
        .query_row(params![id], request_row)
        .optional()?;
    row.map(|r| complete(c, r)).transpose()
}

pub(super) fn append_event(
    tx: &Connection,
    id: &str,
    at_ms: i64,
    status: &str,
    reason: Option<&str>,
    agent: Option<&str>,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO events (request_id, seq, at_ms, status, reason, agent) \
         VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE request_id = ?1), ?2, ?3, ?4, ?5)",
    )?
    .execute(params![id, at_ms, status, reason, agent])?;
    Ok(())
}

/// Queues a webhook for `id` of `business` in the transaction.
pub(super) fn push_webhook(
    tx: &Connection,
    id: &str,
    business: Option<&str>,
    at_ms: i64,
    w: &Webhook,
) -> Result<(), StoreError> {
    tx.prepare_cached(
        "INSERT INTO outbox (request_id, business, url, body, created_ms, due_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        id,
        business.unwrap_or_default(),
        w.url,
        w.body,
        at_ms
    ])?;
    Ok(())
}

pub(super) fn query_records(
    c: &Connection,
    sql: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<CallRecord>, StoreError> {
    let rows: Vec<CallRecord> = c
        .prepare_cached(sql)?
        .query_map(args, request_row)?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(|r| complete(c, r)).collect()
}

pub(super) fn outbox_row(r: &Row<'_>) -> rusqlite::Result<OutboxItem> {
    Ok(OutboxItem {
        id: r.get(0)?,
        request_id: id_col(r, 1, "request id", CallId::new)?,
        business: id_col(r, 2, "business", BusinessId::new)?,
        url: r.get(3)?,
        body: r.get(4)?,
        created_ms: r.get(5)?,
        due_ms: r.get(6)?,
        attempts: r.get(7)?,
        delivered_ms: r.get(8)?,
        last_status: r.get(9)?,
        last_error: r.get(10)?,
        abandoned_ms: r.get(11)?,
    })
}

pub(super) const OUTBOX_COLUMNS: &str =
    "id, request_id, business, url, body, created_ms, due_ms, attempts, \
     delivered_ms, last_status, last_error, abandoned_ms";

/// A placeholder list `?1, ?2, …` for the live statuses, starting at `?first`.
pub(super) fn live_placeholders(first: usize) -> String {
    (0..LIVE_STATUSES.len())
        .map(|i| format!("?{}", first + i))
        .collect::<Vec<_>>()
        .join(", ")
}
