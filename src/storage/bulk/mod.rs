//! The only SQL written by hand in storage: the large reads and writes where it earns its
//! keep, and the few statements sea-orm's query builder cannot say. Everything else goes
//! through the entities (`storage::entities`) and their queries; a test below fails when
//! SQL text appears anywhere else in storage.
//!
//! Ingestion stages a batch (and its purchase spans) and a sync fills the embedded CRM in
//! statements of 2 000–2 500 rows (multi-row `INSERT … ON CONFLICT`, `RETURNING` on
//! SQLite, `INSERT … SELECT`, row values), and marks what it delivered the same way. A
//! tenant's ABC run reads a few hundred thousand rows (revenue sums, companies with their
//! stored categories) and writes as many (categories, their history, a held
//! classification); an export reads up to a million request-log rows. At that size
//! sea-orm's per-row cost and SQLite's per-row hand-over dominate, so these run here:
//! reads in keyset pages (packed into one value on SQLite; PostgreSQL's text
//! `COPY … TO STDOUT` for the ABC reads), writes as multi-row statements on SQLite and
//! text `COPY … FROM STDIN` or `UNNEST` over arrays on PostgreSQL. Values are bound as
//! parameters ([`Params`]); where PostgreSQL's COPY takes none, they go through one
//! escaper ([`pgcopy::Literal`]).
//!
//! * [`read`] — the keyset-page machinery: [`read::Reader`], `fetch_all!`,
//!   `fetch_packed!`; the statements bring their SQL, never inlined values.
//! * [`abc`] — the ABC run's reads: stored categories, staged companies with their
//!   categories and fields, revenue sums and purchase spans, as typed rows (the rules
//!   that use them stay in `storage::abc`).
//! * [`write`] — the ABC bulk writers, one way per backend.
//! * [`request_log`] — the Histórico export's keyset pages of the request log.
//! * [`staging`] — a staged batch's insert of new records, read of stored versions and
//!   guarded upsert (`staged_record`), multi-row.
//! * [`delivery`] — marking the versions a sync delivered, a multi-row update matching
//!   each record's hash (`staged_record`).
//! * [`crm`] — the embedded CRM's multi-row upserts and deletes (`crm_company`,
//!   `crm_contact`).
//! * [`spans`] — `purchase_span`'s widening upsert and `INSERT … SELECT MIN/MAX`
//!   recompute, on staging's write path.
//! * [`pending_delete`] — the delete guard's set-wise statements: holding deletions with
//!   the CRM's name and document (`INSERT … SELECT`), superseding the ones live again.
//! * [`usage`] — the bytes a tenant's rows take, one sum over every table it owns.
//! * [`log_partitions`] — the request log's daily partitions on PostgreSQL: made ahead,
//!   dropped when old with their rows taken off `tenant_usage`.
//! * [`backend`] — a backend's own functions: PostgreSQL's advisory locks and
//!   notifications, SQLite's WAL checkpoint.
//! * [`pgcopy`] — PostgreSQL's COPY in its text format, and [`pgcopy::Literal`], the one
//!   escaper through which a value is written into a statement (COPY takes no
//!   parameters), tested with hostile strings.

pub(crate) mod abc;
pub(crate) mod backend;
pub(crate) mod crm;
pub(crate) mod delivery;
pub mod log_partitions;
pub(crate) mod pending_delete;
pub(crate) mod pgcopy;
pub(crate) mod read;
pub(crate) mod request_log;
pub(crate) mod spans;
pub(crate) mod staging;
pub(crate) mod trail;
pub(crate) mod usage;
pub(crate) mod write;

use sea_orm::DbBackend;

/// Bind values of a raw statement with their placeholders: `?` on SQLite, `$N` on
/// PostgreSQL. SQLite resolves a named `$N` by walking its parameter list, which makes a
/// statement with thousands of them quadratic; anonymous `?` are bound by position.
pub(crate) struct Params {
    backend: DbBackend,
    values: Vec<sea_orm::Value>,
}

impl Params {
    /// No values yet.
    pub(crate) fn new(backend: DbBackend, capacity: usize) -> Self {
        Self {
            backend,
            values: Vec::with_capacity(capacity),
        }
    }

    /// Adds a value; returns its placeholder.
    pub(crate) fn push(&mut self, v: impl Into<sea_orm::Value>) -> String {
        self.values.push(v.into());
        match self.backend {
            DbBackend::Sqlite => "?".to_owned(),
            _ => format!("${}", self.values.len()),
        }
    }

    /// The statement `sql` over these values.
    pub(crate) fn statement(self, sql: String) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(self.backend, sql, self.values)
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// What marks SQL written by hand: statements from text, the placeholder builder, the
    /// keyset readers, and SQL keywords opening a string.
    const SQL_TEXT: &[&str] = &[
        "Statement::",
        "Params::new",
        "fetch_all!(",
        "fetch_packed!(",
        "execute_unprepared",
        "\"SELECT ",
        "\"INSERT ",
        "\"UPDATE ",
        "\"DELETE ",
        "\"PRAGMA ",
    ];

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/storage is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    /// The storage rule: the common path goes through the sea-orm entities and their
    /// query builder; hand-written SQL is written here, in `storage/bulk/`, and nowhere
    /// else in storage.
    #[test]
    fn sql_is_written_by_hand_only_in_bulk() {
        let storage = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/storage");
        let mut files = Vec::new();
        rust_files(&storage, &mut files);
        assert!(
            files.len() > 20,
            "found only {} files under {storage:?}",
            files.len()
        );
        let mut found = Vec::new();
        for file in files
            .iter()
            .filter(|f| !f.starts_with(storage.join("bulk")))
        {
            let text = std::fs::read_to_string(file).expect("a source file is readable");
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if SQL_TEXT.iter().any(|m| code.contains(m)) {
                    let shown = file.strip_prefix(&storage).unwrap_or(file);
                    found.push(format!("storage/{}:{}: {code}", shown.display(), n + 1));
                }
            }
        }
        assert!(
            found.is_empty(),
            "hand-written SQL outside storage/bulk/:\n{}",
            found.join("\n")
        );
    }
}
