//! Bulk reads from PostgreSQL as `COPY (query) TO STDOUT` text, cut apart here: sqlx
//! decodes a result row by row (≈1 µs a row of a few columns, measured on the ABC run's
//! 800 000 rows), where COPY's text is one stream split on tabs and newlines.
//!
//! COPY takes no bind parameters, so values are written into the statement as literals
//! ([`Literal`]): integers as digits, text as an escape string (`E'…'`, backslashes and
//! quotes escaped), which reads the same whatever `standard_conforming_strings` says.

use std::borrow::Cow;
use std::ops::{Deref, DerefMut};

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
}
