//! The bytes of every row a tenant owns, measured by the database: one sum of the text
//! lengths of every column over the tenant's own row and its token grants, plus the
//! counters the tables that grow keep (`tenant_usage`). See [`crate::storage::usage`].
//!
//! Runs and alerts grow with history, so their share is a counter too, kept current by
//! measuring the rows a write changes (before and after, in its transaction, with the
//! same expression) instead of every row at each overview.

use std::collections::HashMap;

use sea_orm::{ConnectionTrait, Statement, Value};

use crate::domain::tenant::TenantId;
use crate::error::Result;
use crate::storage::db::Db;

/// Tenant-owned tables: (table, the column naming the tenant, the columns measured).
const OWNED: &[(&str, &str, &[&str])] = &[
    (
        "tenant",
        "id",
        &[
            "id",
            "name",
            "timezone",
            "erp_name",
            "erp_version",
            "integration_type",
            "deployment_status",
            "business_rule",
            "active",
            "scheduled",
            "schedule_daily",
            "schedule_cron",
            "max_without_success_secs",
            "created_at",
            "updated_at",
            "strict_fields",
            "delete_guard_percent",
            "delete_guard_min_rows",
            "abc_settings",
            "abc_history_days",
            "run_history_days",
        ],
    ),
    ("api_token_tenant", "tenant_id", &["token_id", "tenant_id"]),
];

/// Tenant-owned tables that grow with history, their share counted in `tenant_usage`:
/// (which, table, the columns measured). Their rows are keyed by `id`. Every column is
/// measured but `sync_run.progress`: a RUNNING run's progress, rewritten at every stage
/// without a measure around it and cleared when the run ends; measured, the run's end
/// would take off the counter bytes that were never added to it.
const COUNTED: &[(Counted, &str, &[&str])] = &[
    (
        Counted::Runs,
        "sync_run",
        &[
            "id",
            "tenant_id",
            "status",
            "trigger",
            "started_at",
            "finished_at",
            "duration_ms",
            "error",
        ],
    ),
    (
        Counted::Alerts,
        "alert",
        &[
            "id",
            "tenant_id",
            "kind",
            "message",
            "run_id",
            "opened_at",
            "resolved_at",
        ],
    ),
];

/// A table whose share of a tenant's size `tenant_usage` counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Counted {
    /// `sync_run` (`tenant_usage.run_bytes`).
    Runs,
    /// `alert` (`tenant_usage.alert_bytes`).
    Alerts,
}

/// The sum of the text lengths of `columns`, as one SQL expression.
fn row_bytes(columns: &[&str]) -> String {
    columns
        .iter()
        .map(|c| format!("COALESCE(LENGTH(CAST(\"{c}\" AS TEXT)), 0)"))
        .collect::<Vec<_>>()
        .join(" + ")
}

/// The bytes of the `which` rows with these ids, by tenant, measured as
/// [`tenant_db_size`] counts them. Call it before and after a write in the write's
/// transaction; the difference is what the tenant's counter moves by.
pub(crate) async fn measure(
    conn: &impl ConnectionTrait,
    which: Counted,
    ids: &[&str],
) -> Result<HashMap<String, i64>> {
    let Some((_, table, columns)) = COUNTED.iter().find(|(w, _, _)| *w == which) else {
        return Ok(HashMap::new());
    };
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let marks: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT tenant_id, CAST(COALESCE(SUM({}), 0) AS BIGINT) AS bytes FROM \"{table}\" \
         WHERE id IN ({}) GROUP BY tenant_id",
        row_bytes(columns),
        marks.join(", ")
    );
    let values: Vec<Value> = ids.iter().map(|id| (*id).into()).collect();
    let stmt = Statement::from_sql_and_values(conn.get_database_backend(), sql, values);
    let mut out = HashMap::new();
    for row in conn.query_all(stmt).await? {
        let tenant: String = row.try_get("", "tenant_id")?;
        let bytes: i64 = row.try_get("", "bytes")?;
        out.insert(tenant, bytes);
    }
    Ok(out)
}

/// The bytes of every row the tenant owns, each measured now (runs and alerts too): what
/// the counters must add up to. A check for tests and audits; it scans the tenant's runs
/// and alerts, so the overview uses [`tenant_db_size`].
pub async fn tenant_db_size_measured(db: &Db, tenant: &TenantId) -> Result<u64> {
    let counted: Vec<String> = COUNTED
        .iter()
        .map(|(_, table, columns)| {
            format!(
                "(SELECT COALESCE(SUM({}), 0) FROM \"{table}\" WHERE tenant_id = $1)",
                row_bytes(columns)
            )
        })
        .collect();
    let big = "(SELECT COALESCE(SUM(staged_bytes + request_log_bytes), 0) FROM tenant_usage \
               WHERE tenant_id = $1)";
    size(db, tenant, &format!("{} + {big}", counted.join(" + "))).await
}

/// The bytes of every row the tenant owns.
///
/// Hand-written: one sum of the text lengths of every column over several tables, built
/// from `OWNED`; as sea-query expressions it would read far worse than the SQL it makes.
/// Only the table and column names above go into its text; the tenant is a parameter.
pub async fn tenant_db_size(db: &Db, tenant: &TenantId) -> Result<u64> {
    let counted =
        "(SELECT COALESCE(SUM(staged_bytes + request_log_bytes + run_bytes + alert_bytes), 0) \
                   FROM tenant_usage WHERE tenant_id = $1)";
    size(db, tenant, counted).await
}

/// The tenant's own rows (`OWNED`), measured, plus `more` (SQL with the tenant as `$1`).
async fn size(db: &Db, tenant: &TenantId, more: &str) -> Result<u64> {
    let parts: Vec<String> = OWNED
        .iter()
        .map(|(table, key, columns)| {
            format!(
                "(SELECT COALESCE(SUM({}), 0) FROM \"{table}\" WHERE \"{key}\" = $1)",
                row_bytes(columns)
            )
        })
        .collect();
    let sql = format!(
        "SELECT CAST({} + {more} AS BIGINT) AS bytes",
        parts.join(" + ")
    );
    let stmt = Statement::from_sql_and_values(db.backend(), sql, [tenant.as_str().into()]);
    let row = db.conn().query_one(stmt).await?;
    let bytes: i64 = match row {
        Some(row) => row.try_get("", "bytes")?,
        None => 0,
    };
    Ok(u64::try_from(bytes).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    use sqlx::{Connection, Executor};

    use super::{COUNTED, OWNED};
    use crate::storage::db::Db;

    /// The env var naming an admin URL of a PostgreSQL server the tests may create
    /// databases on (as the integration tests read it).
    const PG_ENV: &str = "ERPSYNC_TEST_DATABASE_URL";

    /// Columns the lists leave out on purpose (see `COUNTED`): (table, columns).
    const NOT_MEASURED: &[(&str, &[&str])] = &[("sync_run", &["progress"])];

    /// Every table a list above measures, with its list.
    fn measured() -> Vec<(&'static str, &'static [&'static str])> {
        let owned = OWNED.iter().map(|(table, _, columns)| (*table, *columns));
        let counted = COUNTED.iter().map(|(_, table, columns)| (*table, *columns));
        owned.chain(counted).collect()
    }

    /// The columns `table` has, as the backend's own catalogue lists them.
    async fn columns(db: &Db, table: &str) -> BTreeSet<String> {
        let stmt = match db.backend() {
            DbBackend::Sqlite => Statement::from_sql_and_values(
                DbBackend::Sqlite,
                "SELECT name FROM pragma_table_info(?)",
                [table.into()],
            ),
            backend => Statement::from_sql_and_values(
                backend,
                "SELECT column_name AS name FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND table_name = $1",
                [table.into()],
            ),
        };
        let rows = db
            .conn()
            .query_all(stmt)
            .await
            .expect("the catalogue reads");
        rows.iter()
            .map(|row| row.try_get::<String>("", "name").expect("a column name"))
            .collect()
    }

    /// Migrates `db` and compares each list with its table's columns.
    async fn lists_match_the_migrated_schema(db: &Db) {
        db.migrate().await.expect("the migrations run");
        let mut wrong = Vec::new();
        for (table, listed) in measured() {
            let real = columns(db, table).await;
            let left_out = NOT_MEASURED
                .iter()
                .filter(|(t, _)| *t == table)
                .flat_map(|(_, columns)| columns.iter());
            let listed: BTreeSet<String> = listed
                .iter()
                .chain(left_out)
                .map(|c| (*c).to_owned())
                .collect();
            let unmeasured: Vec<&String> = real.difference(&listed).collect();
            let unknown: Vec<&String> = listed.difference(&real).collect();
            if real.is_empty() {
                wrong.push(format!("{table}: no such table"));
            } else if !unmeasured.is_empty() || !unknown.is_empty() {
                wrong.push(format!(
                    "{table}: columns not measured {unmeasured:?}; listed but not columns {unknown:?}"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "storage/bulk/usage.rs's column lists differ from the migrated schema ({:?}):\n{}",
            db.backend(),
            wrong.join("\n")
        );
    }

    #[tokio::test]
    async fn the_measured_columns_are_the_migrated_columns_on_sqlite() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("usage.db").display()
        );
        let db = Db::connect(&url).await.expect("SQLite opens");
        lists_match_the_migrated_schema(&db).await;
    }

    #[tokio::test]
    async fn the_measured_columns_are_the_migrated_columns_on_postgresql() {
        let Ok(admin) = std::env::var(PG_ENV) else {
            return;
        };
        let name = format!("erpsync_usage_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{PG_ENV} is set but PostgreSQL is unreachable: {e}"));
        conn.execute(format!("CREATE DATABASE \"{name}\"").as_str())
            .await
            .expect("a throw-away database");
        let (server, query) = match admin.split_once('?') {
            Some((base, q)) => (base, format!("?{q}")),
            None => (admin.as_str(), String::new()),
        };
        let authority = server.find("://").map_or(0, |i| i + 3);
        let server = match server[authority..].find('/') {
            Some(slash) => &server[..authority + slash],
            None => server,
        };
        let db = Db::connect(&format!("{server}/{name}{query}"))
            .await
            .expect("the throw-away database opens");
        let checked = tokio::spawn({
            let db = db.clone();
            async move { lists_match_the_migrated_schema(&db).await }
        })
        .await;
        drop(db);
        let _ = conn
            .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
            .await;
        if let Err(e) = checked {
            std::panic::resume_unwind(e.into_panic());
        }
    }
}
