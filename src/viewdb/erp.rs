//! One read-only connection to an ERP's database, the catalog of a view's columns, and
//! pages of its rows read by keyset.

use std::str::FromStr;
use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection, Row};

use crate::domain::secret::scrub;
use crate::domain::view::{Backend, Category};

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long one page query may take.
const QUERY_TIMEOUT: Duration = Duration::from_secs(300);

/// One column of a view, as the database's catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// Its name, spelled as the catalog spells it.
    pub name: String,
    /// The declared type ("integer", "varchar", "" for an untyped SQLite expression).
    pub declared: String,
    /// PostgreSQL only: the type's qualified name, to cast cursor values back to it.
    pub cast_to: String,
    /// What it holds.
    pub category: Category,
}

pub use crate::domain::view::{Cursor, Param};

enum Conn {
    Pg(PgConnection),
    My(MySqlConnection),
    Lite(SqliteConnection),
}

/// A read-only connection to an ERP's database.
pub struct ErpDb {
    backend: Backend,
    conn: Conn,
    url: String,
}

impl ErpDb {
    /// Connects read-only (PostgreSQL: `default_transaction_read_only`; MySQL: a
    /// read-only session; SQLite: the file opened read-only). Only [`ViewAccess`](super::ViewAccess) calls
    /// it, after its checks.
    pub(super) async fn connect(url: &str) -> Result<Self, String> {
        let backend = Backend::of_url(url)?;
        let fail = |e: sqlx::Error| scrub(&e.to_string(), url);
        let connect = async {
            let conn = match backend {
                Backend::Postgres => {
                    let opts = PgConnectOptions::from_str(url)
                        .map_err(fail)?
                        .options([
                            ("default_transaction_read_only", "on"),
                            ("DateStyle", "ISO"),
                            ("TimeZone", "UTC"),
                            ("application_name", "erpsync-view"),
                        ])
                        .disable_statement_logging();
                    Conn::Pg(opts.connect().await.map_err(fail)?)
                }
                Backend::MySql => {
                    let url = match url.split_once("://") {
                        Some((_, rest)) => format!("mysql://{rest}"),
                        None => url.to_owned(),
                    };
                    let opts = MySqlConnectOptions::from_str(&url)
                        .map_err(fail)?
                        .timezone(Some("+00:00".to_owned()))
                        .disable_statement_logging();
                    let mut c = opts.connect().await.map_err(fail)?;
                    sqlx::query("SET SESSION TRANSACTION READ ONLY")
                        .execute(&mut c)
                        .await
                        .map_err(fail)?;
                    Conn::My(c)
                }
                Backend::Sqlite => {
                    let opts = SqliteConnectOptions::from_str(url)
                        .map_err(fail)?
                        .read_only(true)
                        .create_if_missing(false)
                        .disable_statement_logging();
                    Conn::Lite(opts.connect().await.map_err(fail)?)
                }
            };
            Ok::<_, String>(conn)
        };
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()))??;
        Ok(Self {
            backend,
            conn,
            url: url.to_owned(),
        })
    }

    /// The database kind.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The columns of `view` (or `schema.view`), in order; empty when there is no such
    /// view (or the connection's user cannot see it).
    pub async fn columns(&mut self, view: &str) -> Result<Vec<Column>, String> {
        let (schema, name) = match view.split_once('.') {
            Some((s, n)) => (Some(s.to_owned()), n.to_owned()),
            None => (None, view.to_owned()),
        };
        let backend = self.backend;
        let rows: Vec<(String, String, String)> = match &mut self.conn {
            Conn::Pg(c) => sqlx::query_as(
                "SELECT column_name::text, data_type::text, \
                 (quote_ident(udt_schema) || '.' || quote_ident(udt_name))::text \
                 FROM information_schema.columns \
                 WHERE table_schema = COALESCE($1, current_schema()) AND table_name = $2 \
                 ORDER BY ordinal_position",
            )
            .bind(schema)
            .bind(name)
            .fetch_all(c)
            .await
            .map_err(|e| scrub(&e.to_string(), &self.url))?,
            Conn::My(c) => sqlx::query_as(
                "SELECT CAST(COLUMN_NAME AS CHAR), CAST(DATA_TYPE AS CHAR), '' \
                 FROM information_schema.COLUMNS \
                 WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
                 ORDER BY ORDINAL_POSITION",
            )
            .bind(schema)
            .bind(name)
            .fetch_all(c)
            .await
            .map_err(|e| scrub(&e.to_string(), &self.url))?,
            Conn::Lite(c) => {
                let sql = if schema.is_some() {
                    "SELECT name, type, '' FROM pragma_table_info(?2, ?1) ORDER BY cid"
                } else {
                    "SELECT name, type, '' FROM pragma_table_info(?2) ORDER BY cid"
                };
                sqlx::query_as(sql)
                    .bind(schema)
                    .bind(name)
                    .fetch_all(c)
                    .await
                    .map_err(|e| scrub(&e.to_string(), &self.url))?
            }
        };
        Ok(rows
            .into_iter()
            .map(|(name, declared, cast_to)| Column {
                category: Category::of(backend, &declared),
                name,
                declared,
                cast_to,
            })
            .collect())
    }

    /// Starts a read-only transaction, so the pages of one view are read from one
    /// snapshot where the database offers it (PostgreSQL: repeatable read).
    pub async fn begin(&mut self) -> Result<(), String> {
        let sql = match self.backend {
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
            Backend::MySql => "START TRANSACTION READ ONLY",
            Backend::Sqlite => "BEGIN",
        };
        self.execute(sql).await
    }

    /// Ends the transaction [`begin`](Self::begin) started.
    pub async fn end(&mut self) -> Result<(), String> {
        self.execute("COMMIT").await
    }

    async fn execute(&mut self, sql: &str) -> Result<(), String> {
        let r = match &mut self.conn {
            Conn::Pg(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
            Conn::My(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
            Conn::Lite(c) => sqlx::query(sql).execute(c).await.map(|_| ()),
        };
        r.map_err(|e| scrub(&e.to_string(), &self.url))
    }

    /// Runs a page query whose every result column is text (or NULL).
    pub async fn rows(
        &mut self,
        sql: &str,
        params: &[Param],
    ) -> Result<Vec<Vec<Option<String>>>, String> {
        let url = self.url.clone();
        let fail = move |e: sqlx::Error| scrub(&e.to_string(), &url);
        // The same binding and fetching for each driver's own types.
        macro_rules! fetch {
            ($conn:expr, $texts:ident) => {{
                let mut q = sqlx::query(sql);
                for p in params {
                    q = match p {
                        Param::Text(s) => q.bind(s.clone()),
                        Param::Int(i) => q.bind(*i),
                        Param::Real(f) => q.bind(*f),
                    };
                }
                let rows = q.fetch_all($conn).await.map_err(&fail)?;
                $texts(&rows).map_err(&fail)
            }};
        }
        let read = async {
            match &mut self.conn {
                Conn::Pg(c) => fetch!(c, pg_texts),
                Conn::My(c) => fetch!(c, my_texts),
                Conn::Lite(c) => fetch!(c, lite_texts),
            }
        };
        tokio::time::timeout(QUERY_TIMEOUT, read)
            .await
            .map_err(|_| format!("no answer within {} s", QUERY_TIMEOUT.as_secs()))?
    }

    /// The id of the erpsync database this is, if it is one (see [`ViewAccess`](super::ViewAccess)).
    pub(super) async fn erpsync_instance(&mut self) -> Option<String> {
        const SQL: &str = "SELECT id FROM erpsync_instance";
        let read = async {
            match &mut self.conn {
                Conn::Pg(c) => sqlx::query_scalar(SQL).fetch_optional(c).await,
                Conn::My(c) => sqlx::query_scalar(SQL).fetch_optional(c).await,
                Conn::Lite(c) => sqlx::query_scalar(SQL).fetch_optional(c).await,
            }
        };
        tokio::time::timeout(CONNECT_TIMEOUT, read)
            .await
            .ok()
            .and_then(Result::ok)
            .flatten()
    }

    /// Closes the connection.
    pub async fn close(self) {
        let _ = match self.conn {
            Conn::Pg(c) => c.close().await,
            Conn::My(c) => c.close().await,
            Conn::Lite(c) => c.close().await,
        };
    }
}

/// Every column of every row as text: one concrete function per driver (a generic one
/// over `sqlx::Row` makes the run's future lose `Send` to higher-ranked bounds).
macro_rules! texts_fn {
    ($name:ident, $row:ty) => {
        fn $name(rows: &[$row]) -> Result<Vec<Vec<Option<String>>>, sqlx::Error> {
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.try_get::<Option<String>, _>(i))
                        .collect()
                })
                .collect()
        }
    };
}
texts_fn!(pg_texts, sqlx::postgres::PgRow);
texts_fn!(my_texts, sqlx::mysql::MySqlRow);
texts_fn!(lite_texts, sqlx::sqlite::SqliteRow);

/// Which result column holds what, in a page query built by [`PageQuery::new`].
#[derive(Debug, Clone)]
pub struct PageQuery {
    backend: Backend,
    select: String,
    from: String,
    key: Column,
    watermark: Option<Column>,
    incremental: bool,
    limit: u32,
    /// How many mapped value columns follow the fixed ones.
    pub values: usize,
    /// Whether a deleted-flag column comes last.
    pub has_deleted: bool,
}

/// One row of a page, split by role.
#[derive(Debug, Clone, PartialEq)]
pub struct PageRow {
    /// The key as text (NULL keys come back as None and are rejected).
    pub key: Option<String>,
    /// The key's cursor parameter (typed on SQLite).
    pub key_param: Option<Param>,
    /// The watermark as compared (its plain text) and as a value (`updated_at`).
    pub watermark: Option<(String, String)>,
    /// The mapped columns' values, in the order given to [`PageQuery::new`].
    pub values: Vec<Option<String>>,
    /// The deleted flag's value.
    pub deleted: Option<String>,
}

/// What a page query reads.
#[derive(Debug, Clone)]
pub struct PageSpec<'a> {
    /// The database kind.
    pub backend: Backend,
    /// The view, optionally `schema.view`.
    pub view: &'a str,
    /// The key column.
    pub key: Column,
    /// The watermark column, if any.
    pub watermark: Option<Column>,
    /// Read in watermark order from a cursor (else in key order).
    pub incremental: bool,
    /// The mapped columns.
    pub values: &'a [Column],
    /// The deleted-flag column, if any.
    pub deleted: Option<&'a Column>,
    /// Rows per page.
    pub limit: u32,
}

impl PageQuery {
    /// A query reading the key, the optional watermark, the values and the optional
    /// deleted flag; incremental reads go in watermark order, others in key order.
    pub fn new(spec: PageSpec<'_>) -> Self {
        let PageSpec {
            backend,
            view,
            key,
            watermark,
            incremental,
            values,
            deleted,
            limit,
        } = spec;
        let mut cols = vec![text_expr(backend, &key, false)];
        cols.push(match backend {
            Backend::Sqlite => format!("typeof({})", backend.quote(&key.name)),
            _ => "NULL".to_owned(),
        });
        match &watermark {
            Some(w) => {
                cols.push(text_expr(backend, w, false));
                cols.push(text_expr(backend, w, true));
            }
            None => cols.extend(["NULL".to_owned(), "NULL".to_owned()]),
        }
        cols.extend(values.iter().map(|c| text_expr(backend, c, true)));
        if let Some(d) = deleted {
            cols.push(text_expr(backend, d, true));
        }
        Self {
            backend,
            select: cols.join(", "),
            from: backend.quote(view),
            key,
            watermark,
            incremental,
            limit,
            values: values.len(),
            has_deleted: deleted.is_some(),
        }
    }

    /// The SQL and parameters of the page after `after` (the first page when None;
    /// `after.watermark` set to resume an incremental read).
    pub fn sql(&self, after: Option<&Cursor>) -> (String, Vec<Param>) {
        let b = self.backend;
        let k = b.quote(&self.key.name);
        let mut params = Vec::new();
        let mut conds = Vec::new();
        let order = match (&self.watermark, self.incremental) {
            (Some(w), true) => {
                let wq = b.quote(&w.name);
                conds.push(format!("{wq} IS NOT NULL"));
                if let Some(c) = after {
                    match &c.watermark {
                        Some(wm) => {
                            let p1 = self.placeholder(&mut params, Param::Text(wm.clone()), w);
                            let p2 = self.placeholder(&mut params, Param::Text(wm.clone()), w);
                            let p3 = self.placeholder(&mut params, c.key.clone(), &self.key);
                            conds.push(format!("({wq} > {p1} OR ({wq} = {p2} AND {k} > {p3}))"));
                        }
                        None => {
                            let p = self.placeholder(&mut params, c.key.clone(), &self.key);
                            conds.push(format!("{k} > {p}"));
                        }
                    }
                }
                format!("{wq}, {k}")
            }
            _ => {
                if let Some(c) = after {
                    let p = self.placeholder(&mut params, c.key.clone(), &self.key);
                    conds.push(format!("{k} > {p}"));
                }
                k.clone()
            }
        };
        conds.push(format!("{k} IS NOT NULL"));
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {order} LIMIT {}",
            self.select,
            self.from,
            conds.join(" AND "),
            self.limit
        );
        (sql, params)
    }

    fn placeholder(&self, params: &mut Vec<Param>, p: Param, col: &Column) -> String {
        params.push(p);
        let n = params.len();
        match self.backend {
            Backend::Postgres if col.cast_to.is_empty() => format!("${n}"),
            Backend::Postgres => format!("CAST(${n} AS {})", col.cast_to),
            Backend::MySql => "?".to_owned(),
            Backend::Sqlite => format!("?{n}"),
        }
    }

    /// Splits a result row by role.
    pub fn split(&self, mut row: Vec<Option<String>>) -> PageRow {
        let deleted = if self.has_deleted {
            row.pop().flatten()
        } else {
            None
        };
        let values = row.split_off(4);
        let mut fixed = row.into_iter();
        let key = fixed.next().flatten();
        let kind = fixed.next().flatten();
        let wm_raw = fixed.next().flatten();
        let wm_value = fixed.next().flatten();
        let key_param = key.as_ref().map(|k| match (self.backend, kind.as_deref()) {
            (Backend::Sqlite, Some("integer")) => {
                k.parse().map_or(Param::Text(k.clone()), Param::Int)
            }
            (Backend::Sqlite, Some("real")) => {
                k.parse().map_or(Param::Text(k.clone()), Param::Real)
            }
            _ => Param::Text(k.clone()),
        });
        PageRow {
            key,
            key_param,
            watermark: wm_raw.zip(wm_value),
            values,
            deleted,
        }
    }

    /// How many rows a full page has.
    pub fn limit(&self) -> u32 {
        self.limit
    }
}

/// The expression reading `col` as text. `as_value`: the text handed to validation (a
/// MySQL TIMESTAMP, read in UTC, gets its zone); otherwise the plain text compared
/// with cursors.
fn text_expr(backend: Backend, col: &Column, as_value: bool) -> String {
    let q = backend.quote(&col.name);
    match backend {
        Backend::Postgres => format!("CAST({q} AS text)"),
        Backend::MySql if as_value && col.category == Category::TimestampTz => {
            format!("CONCAT(CAST({q} AS CHAR), 'Z')")
        }
        Backend::MySql => format!("CAST({q} AS CHAR)"),
        Backend::Sqlite => format!("CAST({q} AS TEXT)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn col(name: &str, category: Category, cast_to: &str) -> Column {
        Column {
            name: name.into(),
            declared: String::new(),
            cast_to: cast_to.into(),
            category,
        }
    }

    #[test]
    fn full_reads_go_by_key_and_incremental_by_watermark_then_key() {
        let key = col("id", Category::Integer, "pg_catalog.int4");
        let wm = col("changed", Category::TimestampTz, "pg_catalog.timestamptz");
        let values = [col("name", Category::Text, "pg_catalog.text")];
        let spec = |backend, watermark, incremental| PageSpec {
            backend,
            view: "erp.v",
            key: key.clone(),
            watermark,
            incremental,
            values: &values,
            deleted: None,
            limit: 50,
        };
        let q = PageQuery::new(spec(Backend::Postgres, None, false));
        let (sql, p) = q.sql(None);
        assert_eq!(
            sql,
            "SELECT CAST(\"id\" AS text), NULL, NULL, NULL, CAST(\"name\" AS text) FROM \"erp\".\"v\" \
             WHERE \"id\" IS NOT NULL ORDER BY \"id\" LIMIT 50"
        );
        assert!(p.is_empty());
        let after = Cursor {
            watermark: None,
            key: Param::Text("7".into()),
        };
        let (sql, p) = q.sql(Some(&after));
        assert!(
            sql.contains("WHERE \"id\" > CAST($1 AS pg_catalog.int4) AND"),
            "{sql}"
        );
        assert_eq!(p, [Param::Text("7".into())]);

        let q = PageQuery::new(spec(Backend::MySql, Some(wm), true));
        let after = Cursor {
            watermark: Some("2026-01-01 00:00:00".into()),
            key: Param::Text("7".into()),
        };
        let (sql, p) = q.sql(Some(&after));
        assert!(
            sql.contains("(`changed` > ? OR (`changed` = ? AND `id` > ?))")
                && sql.ends_with("ORDER BY `changed`, `id` LIMIT 50"),
            "{sql}"
        );
        assert!(
            sql.contains("CONCAT(CAST(`changed` AS CHAR), 'Z')"),
            "{sql}"
        );
        assert_eq!(p.len(), 3);
    }

    #[test]
    fn sqlite_keys_keep_their_storage_class() {
        let key = col("id", Category::Untyped, "");
        let q = PageQuery::new(PageSpec {
            backend: Backend::Sqlite,
            view: "v",
            key,
            watermark: None,
            incremental: false,
            values: &[],
            deleted: None,
            limit: 10,
        });
        let row = q.split(vec![Some("12".into()), Some("integer".into()), None, None]);
        assert_eq!(row.key_param, Some(Param::Int(12)));
        let row = q.split(vec![Some("A12".into()), Some("text".into()), None, None]);
        assert_eq!(row.key_param, Some(Param::Text("A12".into())));
    }
}
