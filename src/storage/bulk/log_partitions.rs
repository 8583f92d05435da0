//! The request log's daily partitions on PostgreSQL (migration 000021): one partition per
//! UTC day, `request_log_pYYYYMMDD`, and `request_log_default` for rows whose day has none.
//! The server creates the coming days ahead ([`ensure_ahead`]) and retention drops the days
//! wholly older than its window ([`drop_older_than`]), taking their rows off the tenants'
//! usage: a day goes in a few catalog changes instead of hundreds of batched deletes.
//! SQLite has no partitions: every function here does nothing there.
//!
//! Replicas run all of this at once; one advisory lock ([`LOCK`]) serializes the changes,
//! and each re-reads the catalog under it, so a day made or dropped by another replica is
//! skipped. DDL waits at most [`LOCK_TIMEOUT`] for the table: a long transaction on the
//! request log makes this tick fail (logged) rather than stall ingestion queued behind it.

use chrono::{DateTime, Days, NaiveDate, Utc};
use sea_orm::{ConnectionTrait, DbBackend, Statement};

use crate::error::Result;
use crate::storage::db::Db;

/// Days after today whose partitions exist beforehand: retention ticks hourly, so a few
/// missed ticks still find tomorrow's partition made.
pub const AHEAD_DAYS: u64 = 3;

/// The advisory lock of partition changes: "rlogpart" as a big-endian integer.
const LOCK: i64 = 0x726c_6f67_7061_7274;

/// How long a partition change waits for a lock before giving up until the next tick.
const LOCK_TIMEOUT: &str = "3s";

/// The partition that catches rows whose day has no partition of its own.
pub const DEFAULT_PARTITION: &str = "request_log_default";

const PREFIX: &str = "request_log_p";

/// The name of `day`'s partition.
pub fn partition_name(day: NaiveDate) -> String {
    format!("{PREFIX}{}", day.format("%Y%m%d"))
}

/// The day a partition's name stands for; None for any other table.
fn day_of(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix(PREFIX)?;
    if digits.len() != 8 {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// The first instant of `day` (UTC), as a PostgreSQL literal.
fn bound(day: NaiveDate) -> String {
    format!("{} 00:00:00+00", day.format("%Y-%m-%d"))
}

/// Whether the request log is partitioned here (PostgreSQL).
pub fn partitioned(db: &Db) -> bool {
    db.backend() == DbBackend::Postgres
}

fn stmt(sql: impl Into<String>) -> Statement {
    Statement::from_string(DbBackend::Postgres, sql)
}

/// Takes the partition lock for the transaction, with the DDL's lock timeout.
async fn lock(conn: &impl ConnectionTrait) -> Result<()> {
    conn.execute(stmt(format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")))
        .await?;
    conn.execute(stmt(format!("SELECT pg_advisory_xact_lock({LOCK})")))
        .await?;
    Ok(())
}

/// Whether a table of this name exists in the current schema (attached or not). Read from
/// `pg_class` with the statement's own snapshot, not through the catalog cache
/// (`to_regclass`): after waiting for the lock, the cache may still remember the name as
/// missing although the replica that held the lock has made and committed it.
async fn table_exists(conn: &impl ConnectionTrait, name: &str) -> Result<bool> {
    let row = conn
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE c.relname = $1 AND n.nspname = current_schema()) AS found",
            [name.into()],
        ))
        .await?;
    Ok(match row {
        Some(r) => r.try_get("", "found")?,
        None => false,
    })
}

/// The days that have a partition attached now, oldest first.
pub async fn days(db: &Db) -> Result<Vec<NaiveDate>> {
    if !partitioned(db) {
        return Ok(Vec::new());
    }
    attached_days(db.conn()).await
}

async fn attached_days(conn: &impl ConnectionTrait) -> Result<Vec<NaiveDate>> {
    let rows = conn
        .query_all(stmt(
            "SELECT CAST(c.relname AS TEXT) AS name FROM pg_inherits i \
             JOIN pg_class c ON c.oid = i.inhrelid \
             WHERE i.inhparent = CAST('request_log' AS regclass)",
        ))
        .await?;
    let mut days = Vec::new();
    for r in rows {
        let name: String = r.try_get("", "name")?;
        days.extend(day_of(&name));
    }
    days.sort_unstable();
    Ok(days)
}

/// Creates the partitions of `today` and the [`AHEAD_DAYS`] after it that are missing;
/// returns how many it made.
pub async fn ensure_ahead(db: &Db, today: NaiveDate) -> Result<u32> {
    let mut made = 0;
    for ahead in 0..=AHEAD_DAYS {
        let Some(day) = today.checked_add_days(Days::new(ahead)) else {
            break;
        };
        if ensure_day(db, day).await? {
            made += 1;
        }
    }
    Ok(made)
}

/// Creates `day`'s partition unless it exists; true when this call made it. Rows of that
/// day already in the default partition (written while it had none) move into it in the
/// same transaction: PostgreSQL refuses a partition whose rows the default still holds.
pub async fn ensure_day(db: &Db, day: NaiveDate) -> Result<bool> {
    if !partitioned(db) {
        return Ok(false);
    }
    let name = partition_name(day);
    // Most ticks find every day made: no lock, no transaction.
    if table_exists(db.conn(), &name).await? {
        return Ok(false);
    }
    let Some(next) = day.checked_add_days(Days::new(1)) else {
        return Ok(false);
    };
    let (from, to) = (bound(day), bound(next));
    let txn = db.begin_write().await?;
    lock(&*txn).await?;
    // Another replica may have made it while this one waited for the lock.
    if table_exists(&*txn, &name).await? {
        return Ok(false);
    }
    let range = format!("received_at >= '{from}' AND received_at < '{to}'");
    let stranded = txn
        .query_one(stmt(format!(
            "SELECT EXISTS (SELECT 1 FROM {DEFAULT_PARTITION} WHERE {range}) AS stranded"
        )))
        .await?
        .map(|r| r.try_get::<bool>("", "stranded"))
        .transpose()?
        .unwrap_or(false);
    if stranded {
        txn.execute(stmt(format!(
            "CREATE TEMPORARY TABLE request_log_moving ON COMMIT DROP AS \
             WITH moved AS (DELETE FROM {DEFAULT_PARTITION} WHERE {range} RETURNING *) \
             SELECT * FROM moved"
        )))
        .await?;
    }
    txn.execute(stmt(format!(
        "CREATE TABLE \"{name}\" PARTITION OF request_log FOR VALUES FROM ('{from}') TO ('{to}')"
    )))
    .await?;
    if stranded {
        // Moved, not added: the tenants' usage already counts these rows.
        txn.execute(stmt(
            "INSERT INTO request_log SELECT * FROM request_log_moving",
        ))
        .await?;
    }
    txn.commit().await?;
    Ok(true)
}

/// What [`drop_older_than`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Day partitions dropped.
    pub partitions: u32,
    /// Rows they held.
    pub rows: u64,
}

/// Drops every day partition whose whole day is before `cutoff`, taking its rows off
/// their tenants' usage. Rows before `cutoff` in the day that straddles it, and in the
/// default partition, are left to the batched delete.
///
/// Each day goes in two transactions: the first detaches it (a catalog change, brief, but
/// it waits for the writes under way on the request log); the second counts the detached
/// table's rows per tenant, drops it and subtracts the counts from `tenant_usage`, all or
/// nothing (`finish` says why in that order: the bench found the other one deadlocking).
/// Counting and subtracting while attached would deadlock with ingestion: a push
/// holds its tenant's usage row while it waits to write the log, and the drop would hold
/// the log while it waits for that row. A detached table no writer reaches. Between the
/// two, usage counts rows already gone for a moment; a table left detached by a crash is
/// finished by the next call.
pub async fn drop_older_than(db: &Db, cutoff: DateTime<Utc>) -> Result<Dropped> {
    let mut dropped = Dropped::default();
    if !partitioned(db) {
        return Ok(dropped);
    }
    let old = |day: &NaiveDate| {
        day.checked_add_days(Days::new(1))
            .and_then(|next| next.and_hms_opt(0, 0, 0))
            .is_some_and(|end| end.and_utc() <= cutoff)
    };
    for day in attached_days(db.conn()).await?.iter().filter(|d| old(d)) {
        detach(db, *day).await?;
    }
    for name in detached(db).await? {
        if let Some(rows) = finish(db, &name).await? {
            dropped.partitions += 1;
            dropped.rows += rows;
        }
    }
    Ok(dropped)
}

/// Detaches `day`'s partition unless another replica did.
async fn detach(db: &Db, day: NaiveDate) -> Result<()> {
    let txn = db.begin_write().await?;
    lock(&*txn).await?;
    if !attached_days(&*txn).await?.contains(&day) {
        return Ok(());
    }
    txn.execute(stmt(format!(
        "ALTER TABLE request_log DETACH PARTITION \"{}\"",
        partition_name(day)
    )))
    .await?;
    txn.commit().await
}

/// Day tables that are no partition of the request log: detached, not yet dropped.
async fn detached(db: &Db) -> Result<Vec<String>> {
    let rows = db
        .conn()
        .query_all(stmt(format!(
            "SELECT CAST(relname AS TEXT) AS name FROM pg_class \
             WHERE relnamespace = CAST(current_schema() AS regnamespace) AND relkind = 'r' \
             AND NOT relispartition AND relname LIKE '{}%' ORDER BY relname",
            PREFIX.replace('_', "\\_")
        )))
        .await?;
    let mut names = Vec::new();
    for r in rows {
        let name: String = r.try_get("", "name")?;
        if day_of(&name).is_some() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Drops detached day table `name` and takes its rows off their tenants' usage, in one
/// transaction; the rows it held, or None when another replica got there first.
async fn finish(db: &Db, name: &str) -> Result<Option<u64>> {
    let txn = db.begin_write().await?;
    lock(&*txn).await?;
    let still_detached = txn
        .query_one(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT NOT relispartition AS detached FROM pg_class \
             WHERE oid = to_regclass($1)",
            [name.into()],
        ))
        .await?
        .map(|r| r.try_get::<bool>("", "detached"))
        .transpose()?
        .unwrap_or(false);
    if !still_detached {
        return Ok(None);
    }
    // Counted first, from the rows themselves (no writer reaches a detached table): the
    // scan is the slow part, and the drop after it locks `tenant` (the table's foreign
    // key goes with it). Only then are the counters touched: a writer holding a usage row
    // already holds its lock on `tenant`, so once the drop has that lock no writer holds
    // a usage row, and the update cannot wait on one that waits on this transaction.
    txn.execute(stmt(format!(
        "CREATE TEMPORARY TABLE request_log_gone ON COMMIT DROP AS \
         SELECT tenant_id, count(*) AS n, CAST(sum(size_bytes) AS BIGINT) AS bytes \
         FROM \"{name}\" GROUP BY tenant_id"
    )))
    .await?;
    txn.execute(stmt(format!("DROP TABLE \"{name}\""))).await?;
    let counted = txn
        .query_all(stmt(
            "UPDATE tenant_usage u SET request_log_rows = u.request_log_rows - g.n, \
             request_log_bytes = u.request_log_bytes - g.bytes \
             FROM request_log_gone g WHERE u.tenant_id = g.tenant_id RETURNING g.n AS n",
        ))
        .await?;
    let mut rows = 0u64;
    for r in counted {
        rows += u64::try_from(r.try_get::<i64>("", "n")?).unwrap_or(0);
    }
    txn.commit().await?;
    Ok(Some(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_name_reads_back_as_its_day() {
        let day = NaiveDate::from_ymd_opt(2026, 12, 7).unwrap_or_default();
        assert_eq!(partition_name(day), "request_log_p20261207");
        assert_eq!(day_of(&partition_name(day)), Some(day));
        assert_eq!(day_of(DEFAULT_PARTITION), None);
        assert_eq!(day_of("request_log_p2026120"), None);
    }

    #[test]
    fn a_bound_is_midnight_utc() {
        let day = NaiveDate::from_ymd_opt(2026, 1, 31).unwrap_or_default();
        assert_eq!(bound(day), "2026-01-31 00:00:00+00");
    }
}
