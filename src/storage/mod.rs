//! The database: connection, migrations, and the queries of every table, one file or
//! folder per table group; callers get and give domain types. Two ways in: the common
//! path through a sea-orm entity per table and its reusable queries (`entities`, which
//! never leave storage), and `bulk`, the only SQL written by hand (the large reads and
//! writes, PostgreSQL's COPY, a backend's own functions).
//!
//! Below both stands a ground floor: the connection (`db`), the entities, and how a civil
//! date and a request body are kept (`days`, `request_body`). `bulk` refers to nothing
//! in storage but itself and that floor, so the table modules use it and never the
//! other way round (tests/it/layout.rs checks).

pub mod abc;
pub mod alert_events;
pub mod alerts;
mod bulk;
pub mod crm;
pub mod days;
mod db;
pub mod due;
mod entities;
pub mod erp_counts;
pub mod events;
pub mod freshness;
pub mod instance;
pub mod lease;
pub mod notify;
pub use bulk::log_partitions;
pub mod pending_deletes;
pub mod purge;
mod request_body;
pub mod request_log;
pub mod retention;
pub mod runs;
pub(crate) mod spans;
pub mod staging;
pub mod tenant_sinks;
pub mod tenants;
pub mod tokens;
pub mod trail;
pub mod usage;
pub mod view_grants;
pub mod views;

pub use db::{
    Db, HeldConnection, WriteTxn, DEFAULT_DATABASE_TIMEOUT, DEFAULT_DATABASE_URL,
    RESERVED_CONNECTIONS,
};
