//! The connection to erpsync's database: the handle every query goes through ([`Db`]),
//! its pool and write transactions, and how sqlx's errors are sorted. On the ground floor of
//! `storage` with the entities (the only other storage module it refers to), so `bulk`
//! and the table modules both stand on it. Its one maintenance statement,
//! [`Db::checkpoint`], is SQL by hand and lives with the others in `bulk::backend`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::{str::FromStr, sync::Arc, time::Duration};

use anyhow::Context;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, EntityTrait,
    SqlxPostgresConnector, SqlxSqliteConnector, TransactionTrait,
};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use super::entities;
use crate::domain::secret::redact_url;
use crate::error::Result;

/// The embedded default: a SQLite file under ./data, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/erpsync.db?mode=rwc";

/// Default for how long a PostgreSQL query waits for a pooled connection, opening a new
/// one included (sqlx opens connections within the same deadline: it is also the connect
/// timeout). Past it the call answers UNAVAILABLE: while the server is down, callers hear
/// so in seconds instead of waiting with every other call.
pub const DEFAULT_DATABASE_TIMEOUT: Duration = Duration::from_secs(3);

/// A handle on erpsync's database (SQLite or PostgreSQL); cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
    /// SQLite has one writer at a time, and a transaction that read before it writes
    /// fails (SQLITE_BUSY_SNAPSHOT, not retried) when another writer committed in
    /// between. Taking this lock before a write transaction queues writers in-process
    /// instead; PostgreSQL needs no such lock.
    sqlite_writer: Option<Arc<Mutex<()>>>,
    /// Counts the commits that appended to the alert feed through this handle (or a
    /// clone): wakes the feed's followers in this process at once (see
    /// [`Db::alert_events_watch`]).
    alert_events: Arc<watch::Sender<u64>>,
    /// The health probe's own connection, outside the pool: a pool full of busy
    /// connections does not make the database look down (None for an in-memory SQLite
    /// database, whose every connection would be another database).
    probe: Option<ProbePool>,
    /// Whether the last probe got an answer (true until one fails).
    answers: Arc<AtomicBool>,
}

/// A one-connection pool for the health probe.
#[derive(Clone, Debug)]
enum ProbePool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

/// Connections of the pool kept from ingestion by default: runs, their log events, the
/// scheduler, log followers and the API find a connection while pushes saturate theirs
/// (see [`Db::ingest_share`]).
pub const RESERVED_CONNECTIONS: u32 = 2;

/// Holds one pooled connection until dropped (see [`Db::hold_connection`]).
pub struct HeldConnection {
    _conn: sea_orm::DatabaseTransaction,
}

/// A write transaction; on SQLite it holds the writer lock until it ends.
pub struct WriteTxn {
    txn: DatabaseTransaction,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl WriteTxn {
    /// Commits.
    pub async fn commit(self) -> Result<()> {
        self.txn.commit().await?;
        Ok(())
    }
}

impl std::ops::Deref for WriteTxn {
    type Target = DatabaseTransaction;

    fn deref(&self) -> &Self::Target {
        &self.txn
    }
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`); creates a SQLite file's folder.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with_timeout(url, DEFAULT_DATABASE_TIMEOUT).await
    }

    /// Like [`Db::connect`], PostgreSQL connections waited for at most `timeout` (see
    /// [`DEFAULT_DATABASE_TIMEOUT`]). SQLite keeps sqlx's own: its file does not go away.
    pub async fn connect_with_timeout(url: &str, timeout: Duration) -> Result<Self> {
        let (conn, probe) = if url.starts_with("sqlite:") {
            connect_sqlite(url, timeout).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            connect_postgres(url, timeout).await?
        } else {
            return Err(anyhow::anyhow!(
                "unsupported database URL {:?}: use sqlite://PATH?mode=rwc or postgres://USER@HOST/DB",
                redact_url(url)
            )
            .into());
        };
        let sqlite_writer =
            (conn.get_database_backend() == DbBackend::Sqlite).then(|| Arc::new(Mutex::new(())));
        Ok(Self {
            conn,
            sqlite_writer,
            alert_events: Arc::new(watch::channel(0).0),
            probe,
            answers: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Begins a transaction that will write.
    pub async fn begin_write(&self) -> Result<WriteTxn> {
        let writer = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        Ok(WriteTxn {
            txn: self.conn.begin().await?,
            _writer: writer,
        })
    }

    /// Applies every pending migration (see [`migration::up`]: one transaction on one
    /// connection, serialized with other servers migrating the same database).
    pub async fn migrate(&self) -> Result<()> {
        migration::up(&self.conn, None).await?;
        Ok(())
    }

    /// This database's random id (`erpsync_instance`), made when it was created: a View
    /// source holding the same id is this database under another name.
    pub async fn instance_id(&self) -> Result<String> {
        let row = entities::erpsync_instance::Entity::find()
            .one(&self.conn)
            .await?
            .ok_or_else(|| anyhow::anyhow!("erpsync_instance is empty"))?;
        Ok(row.id)
    }

    /// Whether the database answers: the probe's own connection (outside the pool, so a
    /// pool whose every connection is busy does not fail it), pinged within `timeout`.
    /// The outcome is kept for [`PoolVerdict`](crate::error::PoolVerdict): a pool timeout
    /// while the probe answers is busy, not down.
    pub async fn ping(&self, timeout: Duration) -> Result<()> {
        use sqlx::Connection;
        let ping = async {
            let answered = match &self.probe {
                Some(ProbePool::Postgres(p)) => p.acquire().await?.ping().await,
                Some(ProbePool::Sqlite(p)) => p.acquire().await?.ping().await,
                None => return self.conn.ping().await.map_err(crate::error::AppError::from),
            };
            answered.map_err(crate::error::AppError::from)
        };
        let outcome = match tokio::time::timeout(timeout, ping).await {
            Ok(answer) => answer,
            Err(_) => Err(anyhow::anyhow!(
                "the database did not answer a ping within {} ms",
                timeout.as_millis()
            )
            .into()),
        };
        self.answers.store(outcome.is_ok(), Ordering::Relaxed);
        outcome
    }

    /// The most connections the pool opens.
    pub fn max_connections(&self) -> u32 {
        match self.pool() {
            Pool::Sqlite(p) => p.options().get_max_connections(),
            Pool::Postgres(p) => p.options().get_max_connections(),
        }
    }

    /// The pushes ingestion may have in flight by default: the pool less
    /// [`RESERVED_CONNECTIONS`] (at least one). A push holds at most one connection at a
    /// time, so ingestion never takes the connections runs and log events need; on SQLite
    /// it also bounds how many pushes queue for the one writer ahead of a run's write.
    pub fn ingest_share(&self) -> usize {
        self.max_connections()
            .saturating_sub(RESERVED_CONNECTIONS)
            .max(1) as usize
    }

    /// Takes one connection out of the pool and holds it until the guard is dropped (an
    /// open read transaction): how the tests fill the pool, as saturating work would.
    pub async fn hold_connection(&self) -> Result<HeldConnection> {
        Ok(HeldConnection {
            _conn: self.conn.begin().await?,
        })
    }

    /// The sea-orm connection, for the query modules.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// The sqlx pool under the connection, for bulk reads where sea-orm's per-row cost
    /// shows (a few hundred thousand rows).
    pub(crate) fn pool(&self) -> Pool<'_> {
        match self.backend() {
            DbBackend::Sqlite => Pool::Sqlite(self.conn.get_sqlite_connection_pool()),
            _ => Pool::Postgres(self.conn.get_postgres_connection_pool()),
        }
    }

    /// Changes after every commit that appended to the alert feed through this handle or a
    /// clone of it, and when the process's listener hears of another replica's append
    /// (without one, appends by other processes do not show: read the feed now and then).
    pub fn alert_events_watch(&self) -> watch::Receiver<u64> {
        self.alert_events.subscribe()
    }

    /// Tells [`alert_events_watch`](Self::alert_events_watch)'s receivers that the feed
    /// grew; called after the commit, and when another replica's append was heard (or
    /// may have been missed: see `crate::wakeup`).
    pub(crate) fn alert_events_appended(&self) {
        self.alert_events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The pool's connections now: open, and of them idle (for the metrics).
    pub fn pool_use(&self) -> crate::metrics::PoolUse {
        let (size, idle) = match self.pool() {
            Pool::Sqlite(p) => (p.size(), p.num_idle()),
            Pool::Postgres(p) => (p.size(), p.num_idle()),
        };
        crate::metrics::PoolUse {
            size,
            idle: u32::try_from(idle).unwrap_or(u32::MAX),
        }
    }

    /// SQLite or PostgreSQL.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }
}

/// THE rule of `error::PoolVerdict`: a pool timeout is busy when the pool is at its
/// maximum (sqlx's size counts connections open and being opened) and the probe's last
/// ping, on a connection of its own, was answered.
impl crate::error::PoolVerdict for Db {
    fn busy(&self) -> bool {
        let full = match self.pool() {
            Pool::Sqlite(p) => p.size() >= p.options().get_max_connections(),
            Pool::Postgres(p) => p.size() >= p.options().get_max_connections(),
        };
        full && self.answers.load(Ordering::Relaxed)
    }
}

/// An error of a query run through sqlx directly (see [`Db::pool`]), sorted like
/// sea-orm's (an outage is UNAVAILABLE).
pub(crate) fn sqlx_error(e: sqlx::Error) -> crate::error::AppError {
    crate::error::AppError::from(e)
}

/// A backend's sqlx pool.
pub(crate) enum Pool<'a> {
    /// SQLite.
    Sqlite(&'a sqlx::SqlitePool),
    /// PostgreSQL.
    Postgres(&'a sqlx::PgPool),
}

async fn connect_sqlite(
    url: &str,
    timeout: Duration,
) -> Result<(DatabaseConnection, Option<ProbePool>)> {
    let opts = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid SQLite URL {url:?}"))?
        // WAL lets readers go on while the writer writes; NORMAL is durable across
        // application crashes, which is what a sidecar needs.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        // 16 MiB of page cache a connection keeps the hot index pages of staging and
        // the request log in memory during bulk ingestion.
        .pragma("cache_size", "-16384")
        // Checkpoints are run by a background job (worker::checkpoint) instead of by
        // whichever write happens to cross the threshold: a push never pays for one.
        // SQLite still checkpoints when the last connection closes.
        .pragma("wal_autocheckpoint", "0")
        .foreign_keys(true);
    let file = opts.get_filename().to_path_buf();
    let in_memory = file.as_os_str() == ":memory:" || url.contains("mode=memory");
    if !in_memory {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the database folder {}", dir.display()))?;
        }
    }
    // Turning a new file to WAL takes an exclusive lock that SQLite does not wait for:
    // a second server opening the same new file at that moment is told "database is
    // locked" at once. It waits a moment and tries again.
    let mut attempt = 0;
    let pool = loop {
        let opened = SqlitePoolOptions::new()
            // Every in-memory connection would be its own database.
            .max_connections(if in_memory { 1 } else { 4 })
            .acquire_timeout(timeout)
            .connect_with(opts.clone())
            .await;
        match opened {
            Err(e) if is_busy(&e) && attempt < OPEN_ATTEMPTS => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(20 * attempt)).await;
            }
            other => {
                break other
                    .with_context(|| format!("cannot open SQLite database {}", file.display()))?
            }
        }
    };
    let probe = (!in_memory).then(|| {
        ProbePool::Sqlite(
            SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(timeout)
                .connect_lazy_with(opts),
        )
    });
    Ok((SqlxSqliteConnector::from_sqlx_sqlite_pool(pool), probe))
}

/// How often opening a SQLite file is tried while another connection locks it.
const OPEN_ATTEMPTS: u64 = 20;

/// Whether SQLite answered SQLITE_BUSY ("database is locked"), in any of its variants.
fn is_busy(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

async fn connect_postgres(
    url: &str,
    timeout: Duration,
) -> Result<(DatabaseConnection, Option<ProbePool>)> {
    let opts = PgConnectOptions::from_str(url)
        .with_context(|| format!("invalid PostgreSQL URL {:?}", redact_url(url)))?
        // Prepared statements are cached per connection; a generic plan made while a
        // tenant's tables were small (sequential scans) would be kept as they grow to
        // millions of rows. Planning each execution with its values avoids that trap.
        .options([("plan_cache_mode", "force_custom_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(timeout)
        .connect_with(opts.clone())
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact_url(url)))?;
    let probe = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(timeout)
        .connect_lazy_with(opts);
    Ok((
        SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
        Some(ProbePool::Postgres(probe)),
    ))
}
