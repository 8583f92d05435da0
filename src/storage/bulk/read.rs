//! The bulk-read machinery: keyset pages of up to [`PAGE`] rows read through sqlx
//! directly ([`fetch_all!`](fetch_all) for plain results, [`fetch_packed!`](fetch_packed)
//! for packed pages), and the [`Reader`] an operation holds for all its pages. Callers
//! write their SQL against a placeholder function ([`Ph`]) and hand the values over
//! separately: on PostgreSQL's COPY, which takes no parameters, only [`Literal`] writes
//! them in.
//!
//! [`Literal`]: super::pgcopy::Literal

use sea_orm::DbBackend;

use crate::error::Result;
use crate::storage::db::{sqlx_error, Db, Pool};

/// Runs `$sql` (built by `$build` from a placeholder function: `?` on SQLite, `$N` on
/// PostgreSQL) with `$binds` and maps every row with `$map`, through sqlx directly: for a
/// few hundred thousand rows sea-orm's `QueryResult` costs several times the query.
macro_rules! fetch_all {
    ($db:expr, $build:expr, [$($bind:expr),*], |$row:ident| $map:expr) => {{
        match $db.pool() {
            $crate::storage::db::Pool::Sqlite(pool) => {
                let sql: String = $build(&|_: usize| "?".to_owned());
                let rows = sqlx::query(&sql)$(.bind($bind))*.fetch_all(pool).await.map_err($crate::storage::db::sqlx_error)?;
                rows.iter().map(|$row| $map).collect::<$crate::error::Result<Vec<_>>>()
            }
            $crate::storage::db::Pool::Postgres(pool) => {
                let sql: String = $build(&|n: usize| format!("${n}"));
                let rows = sqlx::query(&sql)$(.bind($bind))*.fetch_all(pool).await.map_err($crate::storage::db::sqlx_error)?;
                rows.iter().map(|$row| $map).collect::<$crate::error::Result<Vec<_>>>()
            }
        }
    }};
}
pub(crate) use fetch_all;

/// Reads a keyset page whose `$columns` columns are aliased `c0`, `c1`, … and ordered by
/// `c0` into `Vec<T>`, T a tuple of the columns.
///
/// On SQLite the database packs the page into one JSON array of arrays, decoded here:
/// sqlx hands SQLite rows over one at a time through its worker thread, which for pages
/// of 20 000 small rows cost several times the query itself. PostgreSQL streams the page
/// as `COPY … TO STDOUT` text (see [`super::pgcopy`]), its values written in as literals.
macro_rules! fetch_packed {
    ($reader:expr, $build:expr, $columns:expr, [$($bind:expr),*]) => {{
        match $reader {
            $crate::storage::bulk::read::Reader::Sqlite(conn) => {
                let columns = (0..$columns).map(|i| format!("c{i}")).collect::<Vec<_>>().join(", ");
                let inner: String = $build(&|_: usize| "?".to_owned());
                let sql = format!("SELECT json_group_array(json_array({columns})) FROM ({inner})");
                let packed: String = sqlx::query_scalar(&sql)$(.bind($bind))*
                    .fetch_one(&mut **conn)
                    .await
                    .map_err($crate::storage::db::sqlx_error)?;
                serde_json::from_str(&packed).map_err(|e| {
                    $crate::error::AppError::Internal(anyhow::anyhow!("a packed page does not decode: {e}"))
                })
            }
            $crate::storage::bulk::read::Reader::Pg(pool) => {
                use $crate::storage::bulk::pgcopy::Literal;
                let literals: Vec<String> = vec![$($bind.literal()?),*];
                let sql: String = $build(&|n: usize| literals[n - 1].clone());
                $crate::storage::bulk::pgcopy::fetch(pool, &sql).await
            }
        }
    }};
}
pub(crate) use fetch_packed;

/// Where an operation's bulk reads run: on SQLite one connection held for all its pages
/// (each pooled connection keeps a page cache of its own, and reading through all of them
/// fills them all); on PostgreSQL the pool (each COPY on a connection of its own).
pub(crate) enum Reader {
    /// SQLite: one connection for every page.
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    /// PostgreSQL: the pool.
    Pg(sqlx::PgPool),
}

impl Reader {
    /// The reader of `db`'s backend.
    pub(crate) async fn new(db: &Db) -> Result<Self> {
        Ok(match db.pool() {
            Pool::Sqlite(pool) => Reader::Sqlite(pool.acquire().await.map_err(sqlx_error)?),
            Pool::Postgres(pool) => Reader::Pg(pool.clone()),
        })
    }
}

/// The keyset cursor after a packed page: its last key in the database's order (SQLite
/// compares text bytewise, so the greatest; PostgreSQL's collation ordered the page).
pub(crate) fn last_key<'a>(db: &Db, keys: impl Iterator<Item = &'a str>) -> String {
    match db.backend() {
        DbBackend::Sqlite => keys.max().unwrap_or_default().to_owned(),
        _ => keys.last().unwrap_or_default().to_owned(),
    }
}

/// Column `i` of a row, on either backend.
pub(crate) fn col<'r, R, T>(row: &'r R, i: usize) -> Result<T>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    usize: sqlx::ColumnIndex<R>,
{
    row.try_get(i).map_err(sqlx_error)
}

/// A placeholder function: `ph(n)` is the n-th (from 1) bound value's place in a
/// statement (`?` or `$n`, or on PostgreSQL's COPY the value itself as a literal).
pub(crate) type Ph<'a> = &'a dyn Fn(usize) -> String;

/// Rows a bulk read fetches at a time (keyset pages): bounded memory, few round trips.
pub(crate) const PAGE: usize = 20_000;
