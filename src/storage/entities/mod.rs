//! sea-orm entities, one per table, each with the reusable queries its callers share (a
//! table written only in bulk, `purchase_span`, has its entity for `storage::purge`
//! alone). They never leave `storage/`.

pub mod abc_held;
pub mod abc_report;
pub mod alert;
pub mod alert_event;
pub mod api_token;
pub mod api_token_tenant;
pub mod category_change;
pub mod company_category;
pub mod crm_company;
pub mod crm_contact;
pub mod erp_count;
pub mod erpsync_instance;
pub mod pending_delete;
pub mod purchase_span;
pub mod record_trail;
pub mod request_log;
pub mod run_stage;
pub mod run_table;
pub mod schedule_claim;
pub mod staged_record;
pub mod sync_event;
pub mod sync_lease;
pub mod sync_run;
pub mod table_freshness;
pub mod tenant;
pub mod tenant_due;
pub mod tenant_sink;
pub mod tenant_usage;
pub mod view_config;
pub mod view_grant;
pub mod view_watermark;

use sea_orm::sea_query::{Asterisk, Expr};
use sea_orm::{ConnectionTrait, DbErr, EntityTrait, QuerySelect, Select};

/// How many rows `query` selects: one `COUNT(*)`, read as 64 bits (sea-orm's own
/// `count` wraps the query in a subquery and reads 32 bits on SQLite).
pub async fn count<E: EntityTrait>(
    query: Select<E>,
    conn: &impl ConnectionTrait,
) -> Result<u64, DbErr> {
    let n: Option<i64> = query
        .select_only()
        .column_as(Expr::col(Asterisk).count(), "n")
        .into_tuple()
        .one(conn)
        .await?;
    Ok(n.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}
