//! Migrations on fresh databases cannot fail, whatever runs beside them: many databases
//! migrated at once (a parallel test run), and several servers starting together on one
//! database (replicas, a `migrate` command beside a starting server).

use erpsync::storage::Db;
use migration::MigratorTrait;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::{Backend, ScratchDb, PG_ENV};

/// Fresh databases per round, migrated side by side.
const DATABASES: usize = 12;
/// Rounds of [`DATABASES`].
const ROUNDS: usize = 4;

/// Servers starting together on one fresh database.
const SERVERS: usize = 4;

/// The migrations recorded as applied in the database at `url`, in order.
async fn applied(url: &str) -> Vec<String> {
    let conn = sea_orm::Database::connect(url).await.expect("connects");
    let rows = conn
        .query_all(Statement::from_string(
            conn.get_database_backend(),
            "SELECT version FROM seaql_migrations ORDER BY version",
        ))
        .await
        .expect("the migrations table exists");
    rows.iter()
        .map(|r| r.try_get::<String>("", "version").unwrap())
        .collect()
}

/// Connects to `url` and migrates it as a starting server does, in a task of its own.
fn migrate(url: &str) -> tokio::task::JoinHandle<erpsync::error::Result<()>> {
    let url = url.to_owned();
    tokio::spawn(async move { Db::connect(&url).await?.migrate().await })
}

/// Every migration's name, oldest first.
fn every_migration() -> Vec<String> {
    migration::Migrator::migrations()
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

async fn fresh_databases_migrate_side_by_side_without_error(backend: Backend) {
    for round in 0..ROUNDS {
        let mut scratches = Vec::new();
        for _ in 0..DATABASES {
            match ScratchDb::create(backend).await {
                Some(s) => scratches.push(s),
                None => {
                    eprintln!("{PG_ENV} unset: PostgreSQL variant not run");
                    return;
                }
            }
        }
        let tasks: Vec<_> = scratches.iter().map(|s| migrate(&s.url)).collect();
        for (i, task) in tasks.into_iter().enumerate() {
            task.await
                .expect("the migration task ends")
                .unwrap_or_else(|e| panic!("round {round}, database {i}: migration failed: {e:?}"));
        }
        for s in &scratches {
            assert_eq!(applied(&s.url).await, every_migration());
        }
    }
}

async fn servers_starting_together_on_one_fresh_database_all_migrate_it(backend: Backend) {
    for _ in 0..ROUNDS {
        let Some(scratch) = ScratchDb::create(backend).await else {
            eprintln!("{PG_ENV} unset: PostgreSQL variant not run");
            return;
        };
        let tasks: Vec<_> = (0..SERVERS).map(|_| migrate(&scratch.url)).collect();
        for (i, task) in tasks.into_iter().enumerate() {
            task.await
                .expect("the migration task ends")
                .unwrap_or_else(|e| panic!("server {i}: migration failed: {e:?}"));
        }
        assert_eq!(applied(&scratch.url).await, every_migration());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_sqlite_databases_migrate_side_by_side_without_error() {
    fresh_databases_migrate_side_by_side_without_error(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_postgres_databases_migrate_side_by_side_without_error() {
    fresh_databases_migrate_side_by_side_without_error(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_on_one_fresh_sqlite_database_all_migrate_it() {
    servers_starting_together_on_one_fresh_database_all_migrate_it(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_on_one_fresh_postgres_database_all_migrate_it() {
    servers_starting_together_on_one_fresh_database_all_migrate_it(Backend::Postgres).await;
}

/// A migration that shipped is never edited (a database that ran it would never see the
/// change): every migration file is listed in `migrations/shipped.sha256` with the hash
/// it shipped with. A new migration adds its line:
/// `(cd migrations/src && sha256sum mYYYYMMDD_NNNNNN_name.rs) >> migrations/shipped.sha256`.
#[test]
fn shipped_migrations_are_never_edited() {
    use sha2::{Digest, Sha256};
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let manifest = std::fs::read_to_string(root.join("shipped.sha256")).unwrap();
    let shipped: std::collections::BTreeMap<&str, &str> = manifest
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hash, file) = l.split_once("  ").expect("`<sha256>  <file>` lines");
            (file, hash)
        })
        .collect();
    let mut files: Vec<String> = std::fs::read_dir(root.join("src"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.starts_with('m') && n.ends_with(".rs"))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read(root.join("src").join(file)).unwrap();
        let hash = erpsync::domain::text::hex(&Sha256::digest(&text));
        match shipped.get(file.as_str()) {
            None => panic!(
                "migration {file} is not in migrations/shipped.sha256: add its line \
                 ((cd migrations/src && sha256sum {file}) >> migrations/shipped.sha256)"
            ),
            Some(h) => assert_eq!(
                *h, hash,
                "migration {file} changed after it shipped: put the change in a new migration"
            ),
        }
    }
    assert_eq!(
        shipped.len(),
        files.len(),
        "migrations/shipped.sha256 names a file that is gone: {:?}",
        shipped
            .keys()
            .filter(|f| !files.iter().any(|x| x == *f))
            .collect::<Vec<_>>()
    );
}
