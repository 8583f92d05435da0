//! The database: connection, migrations, and the queries of every table. sea-orm
//! entities stay in here; callers get and give domain types.

pub mod alerts;
mod entities;
pub mod request_log;
pub mod runs;
pub mod staging;
pub mod tenants;
pub mod tokens;
pub mod usage;

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, SqlxPostgresConnector, SqlxSqliteConnector,
};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::error::Result;

/// The embedded default: a SQLite file under ./data, created on first start.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://data/erpsync.db?mode=rwc";

/// A handle on erpsync's database (SQLite or PostgreSQL); cheap to clone.
#[derive(Clone, Debug)]
pub struct Db {
    conn: DatabaseConnection,
}

impl Db {
    /// Connects to `url` (`sqlite://…` or `postgres://…`); creates a SQLite file's folder.
    pub async fn connect(url: &str) -> Result<Self> {
        let conn = if url.starts_with("sqlite:") {
            connect_sqlite(url).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            connect_postgres(url).await?
        } else {
            return Err(anyhow::anyhow!(
                "unsupported database URL {:?}: use sqlite://PATH?mode=rwc or postgres://USER@HOST/DB",
                redact(url)
            )
            .into());
        };
        Ok(Self { conn })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        Migrator::up(&self.conn, None).await?;
        Ok(())
    }

    /// The sea-orm connection, for the query modules.
    pub(crate) fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// SQLite or PostgreSQL.
    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }
}

async fn connect_sqlite(url: &str) -> Result<DatabaseConnection> {
    let opts = SqliteConnectOptions::from_str(url)
        .with_context(|| format!("invalid SQLite URL {url:?}"))?
        // WAL lets readers go on while the writer writes; NORMAL is durable across
        // application crashes, which is what a sidecar needs.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let file = opts.get_filename().to_path_buf();
    let in_memory = file.as_os_str() == ":memory:" || url.contains("mode=memory");
    if !in_memory {
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create the database folder {}", dir.display()))?;
        }
    }
    let pool = SqlitePoolOptions::new()
        // Every in-memory connection would be its own database.
        .max_connections(if in_memory { 1 } else { 4 })
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot open SQLite database {}", file.display()))?;
    Ok(SqlxSqliteConnector::from_sqlx_sqlite_pool(pool))
}

async fn connect_postgres(url: &str) -> Result<DatabaseConnection> {
    let opts = PgConnectOptions::from_str(url)
        .with_context(|| format!("invalid PostgreSQL URL {:?}", redact(url)))?;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(opts)
        .await
        .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
    Ok(SqlxPostgresConnector::from_sqlx_postgres_pool(pool))
}

/// A database URL with its password replaced, fit for logs and messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let userinfo = &url[scheme_end + 3..at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &userinfo[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn redact_hides_only_the_password() {
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://data/x.db"), "sqlite://data/x.db");
    }
}
