//! The few large reads and writes, and the only place storage goes past sea-orm's query
//! builder (SQL text, or sqlx directly).
//!
//! Ingestion stages a batch (and its purchase spans) and a sync reads delivery pages,
//! marks them and fills the embedded CRM in statements of 2 000–2 500 rows, hand-tuned
//! (multi-row `INSERT … ON CONFLICT`, `RETURNING` on SQLite, `INSERT … SELECT`,
//! PostgreSQL's advisory lock): the builder cannot say them or would cost on these hot
//! paths. A tenant's ABC run reads a few hundred thousand rows (revenue sums, companies with
//! their stored categories) and writes as many (categories, their history, a held
//! classification); an export reads up to a million request-log rows. At that size
//! sea-orm's per-row cost and SQLite's per-row hand-over dominate, so these run here:
//! reads in keyset pages (packed into one value on SQLite; PostgreSQL's text
//! `COPY … TO STDOUT` for the ABC reads), writes as multi-row statements on SQLite and
//! text `COPY … FROM STDIN` or `UNNEST` over arrays on PostgreSQL. Everything else in
//! storage goes through sea-orm.
//!
//! * [`read`] — the keyset-page machinery: [`read::Reader`], `fetch_all!`,
//!   `fetch_packed!`; the callers (`storage::abc`) bring the SQL, never inlined values.
//! * [`write`] — the ABC bulk writers, one way per backend.
//! * [`request_log`] — the Histórico export's keyset pages of the request log.
//! * [`staging`] — a staged batch's insert of new records, read of stored versions and
//!   guarded upsert (`staged_record`), multi-row.
//! * [`delivery`] — the sync's pages of versions waiting for delivery and marking them
//!   delivered (`staged_record`).
//! * [`crm`] — the embedded CRM's multi-row upserts and deletes (`crm_company`,
//!   `crm_contact`).
//! * [`spans`] — `purchase_span`'s advisory lock (PostgreSQL), widening upsert and
//!   `INSERT … SELECT MIN/MAX` recompute, on staging's write path.
//! * [`pgcopy`] — PostgreSQL's COPY in its text format, and [`pgcopy::Literal`], the one
//!   escaper through which a value is written into a statement (COPY takes no
//!   parameters), tested with hostile strings.

pub(crate) mod crm;
pub(crate) mod delivery;
pub(crate) mod pgcopy;
pub(crate) mod read;
pub(crate) mod request_log;
pub(crate) mod spans;
pub(crate) mod staging;
pub(crate) mod write;
