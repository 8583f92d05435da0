//! PostgreSQL: `request_log` becomes a table partitioned by range of `received_at`, one
//! partition per UTC day (`request_log_pYYYYMMDD`) and a default one
//! (`request_log_default`) for rows whose day has none yet, so retention drops a whole
//! day instead of deleting its rows 5 000 at a time (BENCHMARKS.md, "Request-log
//! retention"). The server creates the days ahead and drops the old ones
//! (`storage::log_partitions`); this migration moves the rows already stored.
//!
//! The primary key becomes (id, received_at): a partitioned table's unique keys must hold
//! its partition key. Ids are random UUIDs, unique on their own; the key's index still
//! leads with `id`, so a lookup by id alone probes each partition's index, never a heap.
//!
//! SQLite keeps its table as it is (it has no partitioning; retention deletes in batches).

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// The new table takes the old one's columns in their order (`LIKE`), so rows copy
/// with `SELECT *`. Days holding rows get partitions, from the oldest (at most 90 days
/// back: older rows go to the default partition and retention deletes them in batches),
/// and so do today and the three days ahead; keys, the tenant's foreign key and the
/// indexes are made after the copy, once, on the parent (each partition gets its own).
const UP: &str = r#"
ALTER TABLE request_log RENAME TO request_log_unpartitioned;
CREATE TABLE request_log (LIKE request_log_unpartitioned INCLUDING DEFAULTS)
    PARTITION BY RANGE (received_at);
CREATE TABLE request_log_default PARTITION OF request_log DEFAULT;
DO $$
DECLARE
    today date := (now() AT TIME ZONE 'UTC')::date;
    first date;
    d date;
BEGIN
    SELECT greatest(coalesce(min(received_at AT TIME ZONE 'UTC')::date, today), today - 90)
        INTO first FROM request_log_unpartitioned;
    first := least(first, today);
    d := first;
    WHILE d <= today + 3 LOOP
        IF d >= today OR EXISTS (SELECT 1 FROM request_log_unpartitioned
            WHERE received_at >= d::timestamp AT TIME ZONE 'UTC'
            AND received_at < (d + 1)::timestamp AT TIME ZONE 'UTC') THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF request_log FOR VALUES FROM (%L) TO (%L)',
                'request_log_p' || to_char(d, 'YYYYMMDD'),
                to_char(d, 'YYYY-MM-DD') || ' 00:00:00+00',
                to_char(d + 1, 'YYYY-MM-DD') || ' 00:00:00+00');
        END IF;
        d := d + 1;
    END LOOP;
END $$;
INSERT INTO request_log SELECT * FROM request_log_unpartitioned;
DROP TABLE request_log_unpartitioned;
ALTER TABLE request_log ADD CONSTRAINT request_log_pkey PRIMARY KEY (id, received_at);
ALTER TABLE request_log ADD CONSTRAINT fk_request_log_tenant
    FOREIGN KEY (tenant_id) REFERENCES tenant (id) ON DELETE CASCADE;
CREATE INDEX ix_request_log_tenant_received ON request_log (tenant_id, received_at);
CREATE INDEX ix_request_log_received ON request_log (received_at);
"#;

/// Back to one plain table, keyed by id alone.
const DOWN: &str = r#"
ALTER TABLE request_log RENAME TO request_log_partitioned;
CREATE TABLE request_log (LIKE request_log_partitioned INCLUDING DEFAULTS);
INSERT INTO request_log SELECT * FROM request_log_partitioned;
DROP TABLE request_log_partitioned CASCADE;
DO $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT c.relname FROM pg_class c
        WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind = 'r'
        AND (c.relname LIKE 'request\_log\_p%' OR c.relname = 'request_log_default')
    LOOP
        EXECUTE format('DROP TABLE %I', t);
    END LOOP;
END $$;
ALTER TABLE request_log ADD CONSTRAINT request_log_pkey PRIMARY KEY (id);
ALTER TABLE request_log ADD CONSTRAINT fk_request_log_tenant
    FOREIGN KEY (tenant_id) REFERENCES tenant (id) ON DELETE CASCADE;
CREATE INDEX ix_request_log_tenant_received ON request_log (tenant_id, received_at);
CREATE INDEX ix_request_log_received ON request_log (received_at);
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(UP).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        manager.get_connection().execute_unprepared(DOWN).await?;
        Ok(())
    }
}
