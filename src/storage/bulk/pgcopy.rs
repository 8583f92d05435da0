//! PostgreSQL's COPY through sqlx (`copy_out_raw`, `copy_in_raw`), in the text format.
//!
//! Bulk reads are `COPY (query) TO STDOUT`, cut apart here ([`fetch`]): one stream split
//! on tabs and newlines instead of a result decoded row by row. COPY takes no bind
//! parameters, so the query's values are written into it as literals, every one through
//! [`Literal`]: integers as digits, text as an escape string (`E'…'`).
//!
//! Bulk writes are `COPY … FROM STDIN` ([`copy_in`]), every field written by [`TextRows`]
//! through one escaper of COPY's text format.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};

use crate::error::{AppError, Result};
use crate::storage::db::sqlx_error;

/// A value written into a statement as a SQL literal: the one way a value enters a
/// statement that takes no bind parameters. Implemented for integers and text only.
pub(crate) trait Literal {
    /// The literal, or an error for a value no literal can hold.
    fn literal(&self) -> Result<String>;
}

/// Text as an escape string: `E'…'` with each backslash and quote doubled, so nothing in
/// it escapes anything and it reads the same whatever `standard_conforming_strings`
/// says. NUL is refused: PostgreSQL's text cannot hold it, and the protocol would end the
/// statement's text there.
impl Literal for str {
    fn literal(&self) -> Result<String> {
        if self.contains('\0') {
            return Err(AppError::Internal(anyhow::anyhow!(
                "a text with a NUL character cannot be written as a literal"
            )));
        }
        let mut out = String::with_capacity(self.len() + 3);
        out.push_str("E'");
        for ch in self.chars() {
            match ch {
                '\\' => out.push_str("\\\\"),
                '\'' => out.push_str("''"),
                c => out.push(c),
            }
        }
        out.push('\'');
        Ok(out)
    }
}

impl Literal for String {
    fn literal(&self) -> Result<String> {
        self.as_str().literal()
    }
}

impl<T: Literal + ?Sized> Literal for &T {
    fn literal(&self) -> Result<String> {
        (**self).literal()
    }
}

macro_rules! integer_literal {
    ($($t:ty),*) => {$(
        impl Literal for $t {
            fn literal(&self) -> Result<String> {
                Ok(self.to_string())
            }
        }
    )*};
}
integer_literal!(i32, i64);

/// One field of a COPY row: None for `\N`.
pub(crate) trait Field: Sized {
    /// The value of `raw` (unescaped text).
    fn parse(raw: Option<Cow<'_, str>>) -> std::result::Result<Self, String>;
}

impl Field for String {
    fn parse(raw: Option<Cow<'_, str>>) -> std::result::Result<Self, String> {
        raw.map(Cow::into_owned)
            .ok_or_else(|| "NULL in a NOT NULL column".to_owned())
    }
}

macro_rules! integer_field {
    ($($t:ty),*) => {$(
        impl Field for $t {
            fn parse(raw: Option<Cow<'_, str>>) -> std::result::Result<Self, String> {
                let raw = raw.ok_or_else(|| "NULL in a NOT NULL column".to_owned())?;
                raw.parse().map_err(|e| format!("{raw:?} is no integer: {e}"))
            }
        }
    )*};
}
integer_field!(i32, i64);

impl<T: Field> Field for Option<T> {
    fn parse(raw: Option<Cow<'_, str>>) -> std::result::Result<Self, String> {
        match raw {
            None => Ok(None),
            some => T::parse(some).map(Some),
        }
    }
}

/// A row of a COPY stream as a tuple of fields.
pub(crate) trait Row: Sized {
    /// The row whose fields (escaped, as COPY wrote them) are `fields`.
    fn parse(fields: &mut dyn Iterator<Item = &str>) -> std::result::Result<Self, String>;
}

/// A field as COPY's text format writes it: `\N` is NULL, backslash escapes the rest.
fn unescape(raw: &str) -> Option<Cow<'_, str>> {
    if raw == "\\N" {
        return None;
    }
    if !raw.contains('\\') {
        return Some(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        i += 1;
        if b != b'\\' || i == bytes.len() {
            out.push(b);
            continue;
        }
        let e = bytes[i];
        i += 1;
        match e {
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            b'v' => out.push(0x0b),
            b'0'..=b'7' => {
                let mut v = u32::from(e - b'0');
                for _ in 0..2 {
                    match bytes.get(i) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            i += 1;
                        }
                        _ => break,
                    }
                }
                out.push(v as u8);
            }
            b'x' => {
                let mut v = 0u32;
                let mut digits = 0;
                while digits < 2 {
                    match bytes.get(i).and_then(|d| (*d as char).to_digit(16)) {
                        Some(d) => {
                            v = v * 16 + d;
                            i += 1;
                            digits += 1;
                        }
                        None => break,
                    }
                }
                out.push(v as u8);
            }
            other => out.push(other),
        }
    }
    Some(Cow::Owned(String::from_utf8_lossy(&out).into_owned()))
}

macro_rules! tuple_row {
    ($($t:ident),+) => {
        impl<$($t: Field),+> Row for ($($t,)+) {
            fn parse(fields: &mut dyn Iterator<Item = &str>) -> std::result::Result<Self, String> {
                Ok(($(
                    $t::parse(unescape(fields.next().ok_or_else(|| "a row has too few fields".to_owned())?))?,
                )+))
            }
        }
    };
}
tuple_row!(A);
tuple_row!(A, B);
tuple_row!(A, B, C);
tuple_row!(A, B, C, D);
tuple_row!(A, B, C, D, E);
tuple_row!(A, B, C, D, E, F, G, H);

/// A pooled connection that goes back to the pool only when the work on it finished
/// ([`Guarded::finish`]). Dropped before that — the work failed, or its future was
/// cancelled, as `try_join!` cancels a sibling when one side fails — it is closed
/// instead: a COPY stopped midway leaves it mid-protocol, and sqlx does not bring it
/// back (the next query on it would read the rest of the COPY and fail).
pub(crate) struct Guarded {
    conn: PoolConnection<Postgres>,
    done: bool,
}

impl Guarded {
    pub(crate) async fn acquire(pool: &sqlx::PgPool) -> Result<Self> {
        let conn = pool.acquire().await.map_err(sqlx_error)?;
        Ok(Self { conn, done: false })
    }

    /// The work finished: the connection is fit to be reused.
    pub(crate) fn finish(mut self) {
        self.done = true;
    }
}

impl Deref for Guarded {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for Guarded {
    fn deref_mut(&mut self) -> &mut PgConnection {
        &mut self.conn
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if !self.done {
            self.conn.close_on_drop();
        }
    }
}

/// Rows in COPY's text format: fields separated by tabs, rows ended by newlines, NULL as
/// `\N`, and every value written through [`escape_copy_text`].
pub(crate) struct TextRows {
    buf: String,
    /// Fields written in the current row.
    fields: usize,
    /// Where [`TextRows::shown`] renders a value before it is escaped.
    scratch: String,
}

/// Writes `value` as a field of COPY's text format: a backslash, newline, carriage
/// return or tab in it is escaped with a backslash, everything else is itself (so a
/// value reading `\N` is not NULL, and no value ends the data as `\.` would).
fn escape_copy_text(out: &mut String, value: &str) {
    let mut rest = value;
    while let Some(at) = rest.find(['\\', '\n', '\r', '\t']) {
        out.push_str(&rest[..at]);
        out.push_str(match rest.as_bytes()[at] {
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => "\\t",
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

impl TextRows {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: String::with_capacity(bytes),
            fields: 0,
            scratch: String::new(),
        }
    }

    /// Starts a field: after the row's first, a tab.
    fn field(&mut self) {
        if self.fields > 0 {
            self.buf.push('\t');
        }
        self.fields += 1;
    }

    /// Ends the row.
    fn end_row(&mut self) {
        self.buf.push('\n');
        self.fields = 0;
    }

    /// A text field (None: NULL).
    pub(crate) fn text(&mut self, v: Option<&str>) {
        self.field();
        match v {
            None => self.buf.push_str("\\N"),
            Some(s) => escape_copy_text(&mut self.buf, s),
        }
    }

    /// A field holding what `v` displays (integers, dates; None: NULL).
    pub(crate) fn shown(&mut self, v: Option<impl std::fmt::Display>) {
        use std::fmt::Write;
        let Some(v) = v else {
            return self.text(None);
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let _ = write!(scratch, "{v}");
        self.text(Some(&scratch));
        self.scratch = scratch;
    }

    /// A timestamp with time zone field, to the microsecond (truncated, as sqlx binds it).
    pub(crate) fn timestamptz(&mut self, t: DateTime<Utc>) {
        self.shown(Some(t.format("%Y-%m-%d %H:%M:%S%.6f+00")));
    }
}

/// Rows sent per COPY message: the next piece is written here while the server stores
/// the previous one.
const ROWS_PER_SEND: usize = 2_000;

/// Streams `rows` into a table with `statement` (a `COPY … FROM STDIN`, text format),
/// each row's fields written by `write_row`, in pieces of [`ROWS_PER_SEND`] rows, through
/// sqlx's `copy_in_raw`. Nothing is sent without rows. A COPY that fails midway is
/// aborted (the connection leaves COPY mode); one cancelled midway needs a [`Guarded`]
/// connection.
pub(crate) async fn copy_in<T: Sync>(
    conn: &mut PgConnection,
    statement: &str,
    rows: &[T],
    write_row: &(dyn Fn(&mut TextRows, &T) + Sync),
) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(statement).await.map_err(sqlx_error)?;
    for piece in rows.chunks(ROWS_PER_SEND) {
        let mut out = TextRows::with_capacity(piece.len() * 192);
        for row in piece {
            write_row(&mut out, row);
            out.end_row();
        }
        if let Err(e) = copy.send(out.buf.into_bytes()).await {
            // The connection must leave COPY mode before it is used again.
            let _ = copy.abort("erpsync: sending the rows failed").await;
            return Err(sqlx_error(e));
        }
    }
    copy.finish().await.map_err(sqlx_error)?;
    Ok(())
}

/// Every row of `query` (its values written in as literals), on a [`Guarded`]
/// connection.
pub(crate) async fn fetch<T: Row>(pool: &sqlx::PgPool, query: &str) -> Result<Vec<T>> {
    let mut conn = Guarded::acquire(pool).await?;
    let rows = copy_rows(&mut conn, query).await?;
    conn.finish();
    Ok(rows)
}

async fn copy_rows<T: Row>(conn: &mut PgConnection, query: &str) -> Result<Vec<T>> {
    let statement = format!("COPY ({query}) TO STDOUT");
    let mut stream = conn.copy_out_raw(&statement).await.map_err(sqlx_error)?;
    let mut out = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let bad = |e: String| AppError::Internal(anyhow::anyhow!("a COPY row does not decode: {e}"));
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(sqlx_error)?;
        pending.extend_from_slice(&chunk);
        let Some(end) = pending.iter().rposition(|b| *b == b'\n') else {
            continue;
        };
        let text =
            std::str::from_utf8(&pending[..end]).map_err(|e| bad(format!("not UTF-8: {e}")))?;
        for line in text.split('\n') {
            out.push(T::parse(&mut line.split('\t')).map_err(bad)?);
        }
        pending.drain(..=end);
    }
    if !pending.is_empty() {
        return Err(bad("the stream ended inside a row".into()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pool of one connection to the test PostgreSQL (ERPSYNC_TEST_DATABASE_URL; tests
    /// using it create nothing there); None, with a note, when none is configured.
    async fn one_connection_pool() -> Option<sqlx::PgPool> {
        let Ok(url) = std::env::var("ERPSYNC_TEST_DATABASE_URL") else {
            eprintln!("skipped: ERPSYNC_TEST_DATABASE_URL is not set");
            return None;
        };
        Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&url)
                .await
                .unwrap(),
        )
    }

    #[test]
    fn fields_unescape_as_copy_wrote_them() {
        assert_eq!(unescape("\\N"), None);
        assert_eq!(unescape("plain").as_deref(), Some("plain"));
        assert_eq!(
            unescape("a\\tb\\nc\\\\d\\re\\\\N").as_deref(),
            Some("a\tb\nc\\d\re\\N")
        );
        assert_eq!(unescape("\\101\\x42").as_deref(), Some("AB"));
    }

    /// Strings a value may hold that try to get out of a literal or a COPY field.
    fn hostile() -> Vec<String> {
        let mut out: Vec<String> = [
            "",
            "plain",
            "it's",
            "''",
            "'",
            "\\",
            "\\\\",
            "a\\b",
            "\\'",
            "\\''",
            "'\\",
            "'); DROP TABLE x; --",
            "x'; DROP TABLE x; --",
            "E'\\x41'",
            "\\x41\\101\\u0041\\U00000041",
            "$$; SELECT 1; $$",
            "$tag$ $tag$",
            "U&'\\0041'",
            "\\N",
            "\\.",
            "a\tb\nc\rd\\e",
            "\n\\.\n",
            "--",
            "/* comment",
            "Açaí & Cia «x» 東京 🦀 \u{200b}\u{feff}\u{7f}\u{1}\u{8}\u{b}\u{c}",
        ]
        .map(str::to_owned)
        .into();
        out.push("'\\".repeat(40_000));
        out.push("ç".repeat(100_000));
        out
    }

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!("it's".literal().unwrap(), "E'it''s'");
        assert_eq!("a\\b".literal().unwrap(), "E'a\\\\b'");
        assert_eq!(
            "'); DROP TABLE x; --".literal().unwrap(),
            "E'''); DROP TABLE x; --'"
        );
        assert_eq!("\\'".literal().unwrap(), "E'\\\\'''");
        assert_eq!(42i64.literal().unwrap(), "42");
        assert_eq!((-7i32).literal().unwrap(), "-7");
        assert!("a\0b".literal().is_err());
        // Inside the quotes every quote and every backslash comes in pairs: the literal
        // ends at its last character and nowhere before, and escapes nothing.
        for s in hostile() {
            let lit = s.literal().unwrap();
            assert!(lit.starts_with("E'") && lit.ends_with('\''));
            let inner = &lit[2..lit.len() - 1];
            assert!(!inner.replace("''", "").contains('\''), "{s:?}");
            assert!(!inner.replace("\\\\", "").contains('\\'), "{s:?}");
        }
    }

    #[test]
    fn copy_text_fields_escape_what_copy_reads_specially() {
        let field = |v: Option<&str>| {
            let mut rows = TextRows::with_capacity(0);
            rows.text(v);
            rows.buf
        };
        assert_eq!(field(None), "\\N");
        assert_eq!(field(Some("\\N")), "\\\\N");
        assert_eq!(field(Some("\\.")), "\\\\.");
        assert_eq!(field(Some("a\tb\nc\rd\\e")), "a\\tb\\nc\\rd\\\\e");
        assert_eq!(field(Some("'; DROP")), "'; DROP");
        // No field holds a separator, and the reader's unescape reads each back unchanged.
        for s in hostile() {
            let f = field(Some(&s));
            assert!(!f.contains(['\t', '\n', '\r']), "{s:?}");
            assert_eq!(unescape(&f).as_deref(), Some(s.as_str()));
        }
        let mut rows = TextRows::with_capacity(0);
        rows.text(Some("a"));
        rows.shown(Some(-42i64));
        rows.shown(None::<i64>);
        rows.timestamptz(
            DateTime::parse_from_rfc3339("2026-12-04T01:02:03.123456789Z")
                .unwrap()
                .to_utc(),
        );
        rows.end_row();
        rows.text(Some("b"));
        rows.end_row();
        assert_eq!(rows.buf, "a\t-42\t\\N\t2026-12-04 01:02:03.123456+00\nb\n");
    }

    /// Every hostile string, written as a literal, reads back unchanged from PostgreSQL
    /// (`SELECT <literal>`, as a result and through COPY's text), whatever
    /// `standard_conforming_strings` says. Needs ERPSYNC_TEST_DATABASE_URL; it creates
    /// nothing there.
    #[tokio::test]
    async fn literals_read_back_unchanged_from_postgres() {
        let Some(pool) = one_connection_pool().await else {
            return;
        };
        for standard_strings in ["on", "off"] {
            sqlx::query(&format!(
                "SET standard_conforming_strings = {standard_strings}"
            ))
            .execute(&pool)
            .await
            .unwrap();
            for s in hostile() {
                let sql = format!("SELECT {}", s.literal().unwrap());
                let (back,): (String,) = sqlx::query_as(&sql).fetch_one(&pool).await.unwrap();
                assert_eq!(back, s, "{sql:.80}");
                let rows: Vec<(String,)> = fetch(&pool, &sql).await.unwrap();
                assert_eq!(rows, vec![(s.clone(),)], "{sql:.80}");
            }
        }
        for n in [i64::MIN, -1, 0, i64::MAX] {
            let sql = format!("SELECT CAST({} AS bigint)", n.literal().unwrap());
            let (back,): (i64,) = sqlx::query_as(&sql).fetch_one(&pool).await.unwrap();
            assert_eq!(back, n);
        }
    }

    #[test]
    fn rows_parse_into_tuples() {
        let row: (String, Option<i64>, i32) =
            Row::parse(&mut "id\\t1\t\\N\t-3".split('\t')).unwrap();
        assert_eq!(row, ("id\t1".to_owned(), None, -3));
        let short: std::result::Result<(String, i32), _> = Row::parse(&mut "x".split('\t'));
        assert!(short.is_err());
        let not_null: std::result::Result<(String, i32), _> = Row::parse(&mut "\\N\t1".split('\t'));
        assert!(not_null.is_err());
    }

    /// A COPY whose future is dropped midway (a `try_join!` sibling failed, or a
    /// timeout) does not leave its connection in the pool: the next queries on a
    /// one-connection pool answer. Needs ERPSYNC_TEST_DATABASE_URL (`.ci/run` sets it);
    /// it creates nothing there.
    #[tokio::test]
    async fn a_copy_cancelled_midway_does_not_poison_the_pool() {
        let Some(pool) = one_connection_pool().await else {
            return;
        };
        // 20 000 rows (more than the server's send buffer), then a wait at the last.
        let slow = "SELECT x, CASE WHEN x = 20000 THEN pg_sleep(3)::text END \
                    FROM generate_series(1, 20000) x";
        let cancelled = tokio::time::timeout(
            std::time::Duration::from_millis(300),
            fetch::<(i64, Option<String>)>(&pool, slow),
        )
        .await;
        assert!(cancelled.is_err(), "the COPY should still be waiting");
        for n in 1..=3i64 {
            let rows: Vec<(i64,)> = fetch(&pool, &format!("SELECT {n}")).await.unwrap();
            assert_eq!(rows, vec![(n,)]);
            let (one,): (i64,) = sqlx::query_as(&format!("SELECT {n}::bigint"))
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(one, n);
        }
    }

    /// Text rows read back as written: hostile text (tabs, newlines, carriage returns,
    /// backslashes, `\N`, `\.`, quotes, non-ASCII, very long), NULLs, bigints at their
    /// limits, timestamps before and after 2000, and more rows than one piece. Needs
    /// ERPSYNC_TEST_DATABASE_URL (a temporary table).
    #[tokio::test]
    async fn text_rows_are_stored_as_written() {
        use sqlx::Connection;
        let Ok(url) = std::env::var("ERPSYNC_TEST_DATABASE_URL") else {
            eprintln!("skipped: ERPSYNC_TEST_DATABASE_URL is not set");
            return;
        };
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TEMPORARY TABLE txt (i bigint, t text, n bigint, at timestamptz, d varchar(10))",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        type R = (
            i64,
            Option<String>,
            Option<i64>,
            DateTime<Utc>,
            Option<String>,
        );
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let mut rows: Vec<R> = vec![
            (
                0,
                Some("a\tb\nc\\d 'ç' ✓\r".into()),
                Some(i64::MIN),
                at("1999-12-31T23:59:59.999999Z"),
                Some("2026-12-01".into()),
            ),
            (1, None, None, at("2000-01-01T00:00:00Z"), None),
            (
                2,
                Some(String::new()),
                Some(i64::MAX),
                at("2026-12-01T03:04:05.123456Z"),
                None,
            ),
        ];
        let next = rows.len() as i64;
        rows.extend(hostile().into_iter().zip(next..).map(|(s, i)| {
            (
                i,
                Some(s),
                Some(-i),
                at("1970-01-01T00:00:00Z"),
                Some("\\N".into()),
            )
        }));
        let next = rows.len() as i64;
        rows.extend((next..next + 2 * ROWS_PER_SEND as i64 + 5).map(|i| {
            (
                i,
                Some(format!("r{i:06}")),
                Some(i),
                at("2030-01-01T00:00:00Z"),
                None,
            )
        }));
        let write = |out: &mut TextRows, r: &R| {
            out.shown(Some(r.0));
            out.text(r.1.as_deref());
            out.shown(r.2);
            out.timestamptz(r.3);
            out.text(r.4.as_deref());
        };
        let copy = "COPY txt (i, t, n, at, d) FROM STDIN";
        copy_in(&mut conn, copy, &rows, &write).await.unwrap();
        let back: Vec<R> = sqlx::query_as("SELECT i, t, n, at, d FROM txt ORDER BY i")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(back, rows);
        // A value the column refuses fails the COPY with the server's message, and the
        // connection answers afterwards.
        let long = vec![(
            -1,
            None,
            None,
            at("2000-01-01T00:00:00Z"),
            Some("x".repeat(11)),
        )];
        let err = copy_in(&mut conn, copy, &long, &write).await.unwrap_err();
        assert!(format!("{err:?}").contains("too long"), "{err:?}");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM txt")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n as usize, rows.len());
    }
}
