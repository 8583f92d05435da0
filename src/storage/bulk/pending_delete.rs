//! The delete guard's two set-wise statements on `pending_delete`: holding deletions with
//! what the CRM's own table has of them (an `INSERT … SELECT`), and superseding the ones
//! the ERP sent again (keyed look-ups of the waiting ids in staging, then an
//! `UPDATE … RETURNING`). The rest of the guard is in
//! [`crate::storage::pending_deletes`].

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::crm::CrmTable;
use crate::domain::crm::{DeleteState, SentAgain, DECIDED_BY_ERP, DECIDED_BY_RUN};
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::db::Db;

/// Ids per statement.
const IDS_PER_STATEMENT: usize = 2_000;

/// Holds the deletions of `ids` that `crm` has, with its name and document, decided by
/// the run `run_id`; a deletion held before is held again (any keep it had ends).
pub(crate) async fn hold_from_crm(
    db: &Db,
    crm: CrmTable,
    tenant: &TenantId,
    run_id: &str,
    ids: &[String],
    now: DateTime<Utc>,
) -> Result<()> {
    let txn = db.begin_write().await?;
    for chunk in ids.chunks(IDS_PER_STATEMENT) {
        // Pushed in the order they appear (SQLite's placeholders are positional).
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 7);
        let (tb, run, at, by, decided_run, t) = (
            p.push(crm.staged().as_str()),
            p.push(run_id),
            p.push(now),
            p.push(DECIDED_BY_RUN),
            p.push(run_id),
            p.push(tenant.as_str()),
        );
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "INSERT INTO pending_delete (tenant_id, table_name, external_id, name, document, detected_run_id, \
             detected_at, state, resolved_at, decided_by, decided_run_id, kept_hash) \
             SELECT tenant_id, {tb}, external_id, name, document, {run}, {at}, '{held}', NULL, {by}, {decided_run}, NULL \
             FROM {crm_table} WHERE tenant_id = {t} AND external_id IN ({}) \
             ON CONFLICT (tenant_id, table_name, external_id) DO UPDATE SET state = '{held}', \
             detected_run_id = excluded.detected_run_id, detected_at = excluded.detected_at, resolved_at = NULL, \
             decided_by = excluded.decided_by, decided_run_id = excluded.decided_run_id, kept_hash = NULL",
            list.join(", "),
            held = DeleteState::Held.as_str(),
            crm_table = crm.sql_name(),
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// Ends what the ERP sending a record again ends: the table's waiting (HELD or APPROVED)
/// deletions whose record is live in staging again become SUPERSEDED, decided by the ERP
/// in run `run_id`; its kept records (DISCARDED with a kept hash) live in another version
/// than the one restored are no longer kept (the discard stays their last decision).
///
/// Keyed, in a few statements of one transaction: the waiting and kept ids (a few, by
/// `pending_delete`'s key), which of them are live in staging (looked up by
/// `staged_record`'s full key), and the updates of those. One `UPDATE … WHERE EXISTS`
/// over staging left the join order to the planner, and right after an onboarding load,
/// before PostgreSQL had statistics of the new rows, it scanned the tenant's whole table
/// with `external_id` as a join filter (1 158 ms for 100 held rows over 180 000 staged;
/// 5 ms once analysed): a plan that grows with the table times the held rows. A list of
/// full keys has one plan whatever the statistics say.
pub(crate) async fn supersede_live(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    run_id: &str,
    now: DateTime<Utc>,
) -> Result<SentAgain> {
    let backend = db.backend();
    let waiting_states = format!(
        "('{}', '{}')",
        DeleteState::Held.as_str(),
        DeleteState::Approved.as_str()
    );
    let discarded = DeleteState::Discarded.as_str();
    let txn = db.begin_write().await?;
    let mut p = Params::new(backend, 2);
    let sql = format!(
        "SELECT external_id FROM pending_delete WHERE tenant_id = {} AND table_name = {} \
         AND state IN {waiting_states} ORDER BY external_id",
        p.push(tenant.as_str()),
        p.push(table.as_str()),
    );
    let waiting = external_ids(txn.query_all(p.statement(sql)).await?)?;
    let mut p = Params::new(backend, 2);
    let sql = format!(
        "SELECT external_id, kept_hash FROM pending_delete WHERE tenant_id = {} AND table_name = {} \
         AND state = '{discarded}' AND kept_hash IS NOT NULL ORDER BY external_id",
        p.push(tenant.as_str()),
        p.push(table.as_str()),
    );
    let kept: HashMap<String, i64> = txn
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| Ok((r.try_get("", "external_id")?, r.try_get("", "kept_hash")?)))
        .collect::<Result<_>>()?;
    let mut candidates: Vec<&String> = waiting.iter().chain(kept.keys()).collect();
    candidates.sort();
    let mut returned = SentAgain::default();
    for chunk in candidates.chunks(IDS_PER_STATEMENT) {
        let mut p = Params::new(backend, chunk.len() + 2);
        let (t, tb) = (p.push(tenant.as_str()), p.push(table.as_str()));
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "SELECT external_id, content_hash FROM staged_record WHERE tenant_id = {t} AND table_name = {tb} \
             AND external_id IN ({}) AND NOT deleted",
            list.join(", ")
        );
        let (mut live, mut kept_live) = (Vec::new(), Vec::new());
        for r in txn.query_all(p.statement(sql)).await? {
            let id: String = r.try_get("", "external_id")?;
            let hash: i64 = r.try_get("", "content_hash")?;
            match kept.get(&id) {
                None => live.push(id),
                // A kept record stays live in the version restored from the CRM: only
                // another version is the ERP's.
                Some(restored) if *restored != hash => kept_live.push(id),
                Some(_) => {}
            }
        }
        if !live.is_empty() {
            let mut p = Params::new(backend, live.len() + 5);
            let (at, by, run, t, tb) = (
                p.push(now),
                p.push(DECIDED_BY_ERP),
                p.push(run_id),
                p.push(tenant.as_str()),
                p.push(table.as_str()),
            );
            let list: Vec<String> = live.iter().map(|id| p.push(id.as_str())).collect();
            let sql = format!(
                "UPDATE pending_delete SET state = '{}', resolved_at = {at}, decided_by = {by}, \
                 decided_run_id = {run} WHERE tenant_id = {t} AND table_name = {tb} \
                 AND external_id IN ({}) AND state IN {waiting_states} RETURNING external_id",
                DeleteState::Superseded.as_str(),
                list.join(", "),
            );
            returned
                .superseded
                .extend(external_ids(txn.query_all(p.statement(sql)).await?)?);
        }
        if !kept_live.is_empty() {
            let mut p = Params::new(backend, kept_live.len() + 2);
            let (t, tb) = (p.push(tenant.as_str()), p.push(table.as_str()));
            let list: Vec<String> = kept_live.iter().map(|id| p.push(id.as_str())).collect();
            let sql = format!(
                "UPDATE pending_delete SET kept_hash = NULL WHERE tenant_id = {t} AND table_name = {tb} \
                 AND external_id IN ({}) AND state = '{discarded}' AND kept_hash IS NOT NULL \
                 RETURNING external_id",
                list.join(", "),
            );
            returned
                .unkept
                .extend(external_ids(txn.query_all(p.statement(sql)).await?)?);
        }
    }
    txn.commit().await?;
    returned.superseded.sort();
    returned.unkept.sort();
    Ok(returned)
}

/// The `external_id` column of `rows`.
fn external_ids(rows: Vec<sea_orm::QueryResult>) -> Result<Vec<String>> {
    rows.into_iter()
        .map(|r| r.try_get("", "external_id").map_err(Into::into))
        .collect()
}
