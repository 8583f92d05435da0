//! The delete guard's two set-wise statements on `pending_delete`: holding deletions with
//! what the CRM's own table has of them (an `INSERT … SELECT`), and superseding the ones
//! the ERP sent again (an `UPDATE … RETURNING` over staging). The rest of the guard is in
//! [`crate::storage::pending_deletes`].

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use super::crm::CrmTable;
use crate::domain::crm::DeleteState;
use crate::domain::tables::Table;
use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::bulk::Params;
use crate::storage::Db;

/// Ids per statement.
const IDS_PER_STATEMENT: usize = 2_000;

/// Holds the deletions of `ids` that `crm` has, with its name and document; a deletion
/// held before is held again.
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
        let mut p = Params::new(txn.get_database_backend(), chunk.len() + 5);
        let (tb, run, at, t) = (
            p.push(crm.staged().as_str()),
            p.push(run_id),
            p.push(now),
            p.push(tenant.as_str()),
        );
        let list: Vec<String> = chunk.iter().map(|id| p.push(id.as_str())).collect();
        let sql = format!(
            "INSERT INTO pending_delete (tenant_id, table_name, external_id, name, document, detected_run_id, \
             detected_at, state, resolved_at) SELECT tenant_id, {tb}, external_id, name, document, {run}, {at}, \
             '{held}', NULL FROM {crm_table} WHERE tenant_id = {t} AND external_id IN ({}) \
             ON CONFLICT (tenant_id, table_name, external_id) DO UPDATE SET state = '{held}', \
             detected_run_id = excluded.detected_run_id, detected_at = excluded.detected_at, resolved_at = NULL",
            list.join(", "),
            held = DeleteState::Held.as_str(),
            crm_table = crm.sql_name(),
        );
        txn.execute(p.statement(sql)).await?;
    }
    txn.commit().await
}

/// Marks SUPERSEDED the table's waiting (HELD or APPROVED) deletions whose record is live
/// in staging again; returns their external ids.
pub(crate) async fn supersede_live(
    db: &Db,
    tenant: &TenantId,
    table: Table,
    now: DateTime<Utc>,
) -> Result<Vec<String>> {
    let mut p = Params::new(db.backend(), 3);
    let sql = format!(
        "UPDATE pending_delete SET state = '{superseded}', resolved_at = {} WHERE tenant_id = {} \
         AND table_name = {} AND state IN ('{held}', '{approved}') AND EXISTS (SELECT 1 FROM staged_record s \
         WHERE s.tenant_id = pending_delete.tenant_id AND s.table_name = pending_delete.table_name \
         AND s.external_id = pending_delete.external_id AND NOT s.deleted) RETURNING external_id",
        p.push(now),
        p.push(tenant.as_str()),
        p.push(table.as_str()),
        superseded = DeleteState::Superseded.as_str(),
        held = DeleteState::Held.as_str(),
        approved = DeleteState::Approved.as_str(),
    );
    let txn = db.begin_write().await?;
    let ids = txn
        .query_all(p.statement(sql))
        .await?
        .into_iter()
        .map(|r| r.try_get("", "external_id").map_err(Into::into))
        .collect::<Result<Vec<String>>>()?;
    txn.commit().await?;
    Ok(ids)
}
