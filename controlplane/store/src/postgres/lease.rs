//! Claims, leases and take-over: what makes several nodes on one database safe.
//!
//! A request's owner is `requests.claimed_by` (a run id); the run is alive while its row in
//! `runs` has `lease_until_ms >= now` and no `fenced_ms`. A run whose lease expired is fenced
//! by the first node that notices (claiming or recovering), in the same transaction that takes
//! its work, so that it can never renew and go on as if nothing happened.

use postgres::{GenericClient, Transaction};

use super::rows::{append_event, query_records, REQUEST_COLUMNS};
use super::{live, PgStore};
use crate::{CallRecord, StoreError};

/// SQL: the request `r`'s claim is void: unclaimed, or claimed by a fenced run. Used after
/// [`fence_expired`] in the same transaction, so every run whose lease expired is fenced.
///
/// Why a semi-join on fenced runs and not "no live run holds it" (`NOT EXISTS` a live lease):
/// when a row locked with `FOR UPDATE` was changed by a transaction that committed meanwhile,
/// PostgreSQL re-checks the conditions on the new version but joins it with the *same* rows of
/// the other tables as before (EvalPlanQual). An anti-join that matched no run for the old
/// version (`claimed_by` NULL) then matches none for the new one either, and a request another
/// node had just claimed looked unclaimed: the concurrency test caught two nodes claiming the
/// same request. With a semi-join the re-check can only err towards "still claimed".
const VOID_CLAIM: &str =
    "(r.claimed_by IS NULL OR r.claimed_by IN (SELECT u.run FROM runs u WHERE u.fenced_ms IS NOT NULL))";

/// Registers or extends `run`'s lease to `now_ms + lease`.
///
/// # Errors
/// [`StoreError::LeaseLost`] when another node fenced the run (its lease had expired).
fn hold(
    c: &mut impl GenericClient,
    run: &str,
    now_ms: i64,
    lease_ms: i64,
) -> Result<(), StoreError> {
    let row = c.query_opt(
        "INSERT INTO runs (run, started_ms, lease_until_ms) VALUES ($1, $2, $3) \
         ON CONFLICT (run) DO UPDATE SET \
         lease_until_ms = GREATEST(runs.lease_until_ms, excluded.lease_until_ms) \
         WHERE runs.fenced_ms IS NULL RETURNING run",
        &[&run, &now_ms, &now_ms.saturating_add(lease_ms)],
    )?;
    if row.is_none() {
        return Err(StoreError::LeaseLost(run.to_owned()));
    }
    Ok(())
}

/// Waiting requests claimed by fenced runs (claimed, not yet dialled, when their node died):
/// unclaimed, due again for anyone.
fn release_waiting(tx: &mut Transaction<'_>) -> Result<u64, StoreError> {
    Ok(tx.execute(
        "UPDATE requests SET claimed_by = NULL WHERE status IN ('queued', 'scheduled') \
         AND claimed_by IN (SELECT u.run FROM runs u WHERE u.fenced_ms IS NOT NULL)",
        &[],
    )?)
}

/// Fences every other run whose lease has expired (their work is about to be taken).
fn fence_expired(tx: &mut Transaction<'_>, run: &str, now_ms: i64) -> Result<u64, StoreError> {
    Ok(tx.execute(
        "UPDATE runs SET fenced_ms = $2 WHERE run <> $1 AND fenced_ms IS NULL \
         AND lease_until_ms < $2",
        &[&run, &now_ms],
    )?)
}

pub(super) fn claim_due(
    s: &PgStore,
    run: &str,
    now_ms: i64,
    limit: i64,
) -> Result<Vec<CallRecord>, StoreError> {
    let mut c = s.pool.get()?;
    let mut tx = c.transaction()?;
    hold(&mut tx, run, now_ms, s.lease_ms)?;
    fence_expired(&mut tx, run, now_ms)?;
    release_waiting(&mut tx)?;
    // Rows another node is claiming right now are locked: skipped, not waited for. The only
    // condition on another row is the due time, so the re-check of a row claimed meanwhile
    // (see VOID_CLAIM) sees its `claimed_by` and drops it.
    let ids: Vec<String> = tx
        .query(
            "WITH picked AS (SELECT r.id FROM requests r \
             WHERE r.status IN ('queued', 'scheduled') AND r.due_ms IS NOT NULL \
             AND r.due_ms <= $2 AND r.claimed_by IS NULL \
             ORDER BY r.due_ms, r.created_ms LIMIT $3 FOR UPDATE OF r SKIP LOCKED) \
             UPDATE requests q SET claimed_by = $1 FROM picked WHERE q.id = picked.id \
             RETURNING q.id",
            &[&run, &now_ms, &limit],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let out = if ids.is_empty() {
        Vec::new()
    } else {
        query_records(
            &mut tx,
            &format!(
                "SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ANY($1) \
                 ORDER BY due_ms, created_ms"
            ),
            &[&ids],
        )?
    };
    tx.commit()?;
    Ok(out)
}

pub(super) fn recover(s: &PgStore, run: &str, now_ms: i64) -> Result<Vec<CallRecord>, StoreError> {
    let mut c = s.pool.get()?;
    let mut tx = c.transaction()?;
    hold(&mut tx, run, now_ms, s.lease_ms)?;
    fence_expired(&mut tx, run, now_ms)?;
    // Live calls of dead runs: interrupted, and ours to decide (another node recovering at
    // the same moment skips the rows we lock).
    let dead: Vec<String> = tx
        .query(
            &format!(
                "SELECT r.id FROM requests r WHERE r.status = ANY($2) \
                 AND r.claimed_by IS DISTINCT FROM $1 AND {VOID_CLAIM} \
                 ORDER BY r.created_ms FOR UPDATE SKIP LOCKED"
            ),
            &[&run, &live()],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    for id in &dead {
        append_event(&mut tx, id, now_ms, "interrupted", None, None)?;
        tx.execute(
            "UPDATE requests SET status = 'interrupted', claimed_by = $1, updated_ms = $3 \
             WHERE id = $2",
            &[&run, id, &now_ms],
        )?;
    }
    // Every interrupted request whose fate is undecided (ours, or left by a run that died
    // before deciding): ours now.
    let undecided: Vec<String> = tx
        .query(
            &format!(
                "SELECT r.id FROM requests r WHERE r.status = 'interrupted' \
                 AND (r.claimed_by = $1 OR {VOID_CLAIM}) ORDER BY r.created_ms FOR UPDATE SKIP LOCKED"
            ),
            &[&run],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    tx.execute(
        "UPDATE requests SET claimed_by = $1 WHERE id = ANY($2)",
        &[&run, &undecided],
    )?;
    let out = query_records(
        &mut tx,
        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ANY($1) ORDER BY created_ms"),
        &[&undecided],
    )?;
    release_waiting(&mut tx)?;
    tx.commit()?;
    Ok(out)
}

pub(super) fn renew(s: &PgStore, run: &str, now_ms: i64) -> Result<bool, StoreError> {
    let mut c = s.pool.get()?;
    let mut tx = c.transaction()?;
    hold(&mut tx, run, now_ms, s.lease_ms)?;
    let orphans: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM requests r WHERE \
             ((r.status = ANY($3) OR r.status = 'interrupted') AND r.claimed_by IS NULL) \
             OR ((r.status = ANY($3) OR r.status IN ('interrupted', 'queued', 'scheduled')) \
              AND r.claimed_by IN (SELECT u.run FROM runs u WHERE u.run <> $1 \
              AND (u.fenced_ms IS NOT NULL OR u.lease_until_ms < $2))))",
            &[&run, &now_ms, &live()],
        )?
        .get(0);
    tx.commit()?;
    Ok(orphans)
}
