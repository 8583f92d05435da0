//! Bulk reads from PostgreSQL as `COPY (query) TO STDOUT` text, cut apart here: sqlx
//! decodes a result row by row (≈1 µs a row of a few columns, measured on the ABC run's
//! 800 000 rows), where COPY's text is one stream split on tabs and newlines.
//!
//! COPY takes no bind parameters, so values are written into the statement as literals
//! ([`Literal`]): integers as digits, text as an escape string (`E'…'`, backslashes and
//! quotes escaped), which reads the same whatever `standard_conforming_strings` says.
//!
//! Bulk writes go the other way as `COPY … FROM STDIN (FORMAT binary)` ([`copy_in`],
//! [`BinaryRows`]): the server takes integers and timestamps as they are instead of
//! parsing their text (a 200 000-row COPY of company categories: 1.42 s binary against
//! 1.77 s text in psql, three runs each).

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{PgConnection, Postgres};

use super::sqlx_error;
use crate::error::{AppError, Result};

/// A value written into a statement as a SQL literal.
pub(crate) trait Literal {
    /// The literal.
    fn literal(&self) -> String;
}

impl Literal for str {
    fn literal(&self) -> String {
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
        out
    }
}

impl Literal for String {
    fn literal(&self) -> String {
        self.as_str().literal()
    }
}

impl<T: Literal + ?Sized> Literal for &T {
    fn literal(&self) -> String {
        (**self).literal()
    }
}

macro_rules! integer_literal {
    ($($t:ty),*) => {$(
        impl Literal for $t {
            fn literal(&self) -> String {
                self.to_string()
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

/// Rows in COPY's binary format, written field by field (big-endian lengths and values;
/// text as its UTF-8 bytes, unescaped).
pub(crate) struct BinaryRows {
    buf: Vec<u8>,
}

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01 00:00:00 UTC).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

impl BinaryRows {
    fn with_capacity(bytes: usize) -> Self {
        Self {
            buf: Vec::with_capacity(bytes),
        }
    }

    /// Starts a row of `fields` fields.
    pub(crate) fn row(&mut self, fields: i16) {
        self.buf.extend_from_slice(&fields.to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    /// A text (varchar) field.
    pub(crate) fn text(&mut self, v: Option<&str>) {
        match v {
            None => self.null(),
            Some(s) => {
                // A text over 2 GiB is cut there, the stream staying whole: PostgreSQL
                // refuses any field over 1 GiB.
                let len = i32::try_from(s.len()).unwrap_or(i32::MAX);
                self.buf.extend_from_slice(&len.to_be_bytes());
                self.buf.extend_from_slice(&s.as_bytes()[..len as usize]);
            }
        }
    }

    /// A text field holding what `v` displays (dates kept as text, for instance).
    pub(crate) fn shown(&mut self, v: Option<impl std::fmt::Display>) {
        use std::io::Write;
        let Some(v) = v else {
            return self.null();
        };
        let at = self.buf.len();
        self.buf.extend_from_slice(&0i32.to_be_bytes());
        let _ = write!(self.buf, "{v}");
        let len = i32::try_from(self.buf.len() - at - 4).unwrap_or(i32::MAX);
        self.buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    }

    /// A bigint field.
    pub(crate) fn int8(&mut self, v: Option<i64>) {
        match v {
            None => self.null(),
            Some(v) => {
                self.buf.extend_from_slice(&8i32.to_be_bytes());
                self.buf.extend_from_slice(&v.to_be_bytes());
            }
        }
    }

    /// A timestamp with time zone field, to the microsecond (truncated, as sqlx binds it).
    pub(crate) fn timestamptz(&mut self, t: DateTime<Utc>) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        let micros = t.timestamp_micros() - PG_EPOCH_MICROS;
        self.buf.extend_from_slice(&micros.to_be_bytes());
    }
}

/// Rows sent per COPY message: the next piece is written here while the server stores
/// the previous one.
const ROWS_PER_SEND: usize = 2_000;

/// Streams `rows` into a table with `statement` (a `COPY … FROM STDIN (FORMAT binary)`),
/// each row written by `write_row`, in pieces of [`ROWS_PER_SEND`] rows. Nothing is sent
/// without rows. A COPY that fails midway is aborted (the connection leaves COPY mode);
/// one cancelled midway needs a [`Guarded`] connection.
pub(crate) async fn copy_in<T: Sync>(
    conn: &mut PgConnection,
    statement: &str,
    rows: &[T],
    write_row: &(dyn Fn(&mut BinaryRows, &T) + Sync),
) -> Result<()> {
    const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";
    if rows.is_empty() {
        return Ok(());
    }
    let mut copy = conn.copy_in_raw(statement).await.map_err(sqlx_error)?;
    let pieces = rows.chunks(ROWS_PER_SEND);
    let last = pieces.len() - 1;
    for (i, piece) in pieces.enumerate() {
        let mut out = BinaryRows::with_capacity(piece.len() * 256 + 32);
        if i == 0 {
            // Signature, flags (no OIDs), header extension length.
            out.buf.extend_from_slice(SIGNATURE);
            out.buf.extend_from_slice(&0i32.to_be_bytes());
            out.buf.extend_from_slice(&0i32.to_be_bytes());
        }
        for row in piece {
            write_row(&mut out, row);
        }
        if i == last {
            out.buf.extend_from_slice(&(-1i16).to_be_bytes());
        }
        if let Err(e) = copy.send(out.buf).await {
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

    #[test]
    fn literals_escape_quotes_and_backslashes() {
        assert_eq!("it's".literal(), "E'it''s'");
        assert_eq!("a\\b".literal(), "E'a\\\\b'");
        assert_eq!(42i64.literal(), "42");
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
        let Ok(url) = std::env::var("ERPSYNC_TEST_DATABASE_URL") else {
            eprintln!("skipped: ERPSYNC_TEST_DATABASE_URL is not set");
            return;
        };
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(1)
            .connect(&url)
            .await
            .unwrap();
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

    /// Binary rows read back as written: text with tabs, newlines, backslashes and
    /// non-ASCII, NULLs, bigints at their limits, timestamps before and after 2000, and
    /// more rows than one piece. Needs ERPSYNC_TEST_DATABASE_URL (a temporary table).
    #[tokio::test]
    async fn binary_rows_are_stored_as_written() {
        use sqlx::Connection;
        let Ok(url) = std::env::var("ERPSYNC_TEST_DATABASE_URL") else {
            eprintln!("skipped: ERPSYNC_TEST_DATABASE_URL is not set");
            return;
        };
        let mut conn = PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "CREATE TEMPORARY TABLE bin (t varchar(20), n bigint, at timestamptz, d varchar(10))",
        )
        .execute(&mut conn)
        .await
        .unwrap();
        type R = (Option<String>, Option<i64>, DateTime<Utc>, Option<String>);
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().to_utc();
        let mut rows: Vec<R> = vec![
            (
                Some("a\tb\nc\\d 'ç' ✓".into()),
                Some(i64::MIN),
                at("1999-12-31T23:59:59.999999Z"),
                Some("2026-12-01".into()),
            ),
            (None, None, at("2000-01-01T00:00:00Z"), None),
            (
                Some(String::new()),
                Some(i64::MAX),
                at("2026-12-01T03:04:05.123456Z"),
                None,
            ),
        ];
        rows.extend((0..2 * ROWS_PER_SEND as i64 + 5).map(|i| {
            (
                Some(format!("r{i:06}")),
                Some(i),
                at("2030-01-01T00:00:00Z"),
                None,
            )
        }));
        let write = |out: &mut BinaryRows, r: &R| {
            out.row(4);
            out.text(r.0.as_deref());
            out.int8(r.1);
            out.timestamptz(r.2);
            out.shown(r.3.as_deref());
        };
        copy_in(
            &mut conn,
            "COPY bin (t, n, at, d) FROM STDIN (FORMAT binary)",
            &rows,
            &write,
        )
        .await
        .unwrap();
        let back: Vec<R> = sqlx::query_as("SELECT t, n, at, d FROM bin")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        assert_eq!(back, rows);
        // A value the column refuses fails the COPY with the server's message, and the
        // connection answers afterwards.
        let long = vec![(Some("x".repeat(21)), None, at("2000-01-01T00:00:00Z"), None)];
        let err = copy_in(
            &mut conn,
            "COPY bin (t, n, at, d) FROM STDIN (FORMAT binary)",
            &long,
            &write,
        )
        .await
        .unwrap_err();
        assert!(format!("{err:?}").contains("too long"), "{err:?}");
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM bin")
            .fetch_one(&mut conn)
            .await
            .unwrap();
        assert_eq!(n as usize, rows.len());
    }
}
