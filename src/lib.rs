//! erpsync: a gRPC sidecar that runs and watches a CRM's ERP integrations.
//!
//! Module map:
//! * [`domain`] — the rules in plain Rust: tenants, schedules, tokens, runs, the table catalog.
//! * [`storage`] — the database (SQLite or PostgreSQL): connection, migrations, queries
//!   (one file or folder per table group); the few bulk reads and writes through sqlx
//!   in `storage::bulk` (PostgreSQL's COPY in its text format).
//! * [`overview`] — the "Informações Gerais" view of a tenant, assembled from storage.
//! * [`ingest`] — the push handler gRPC and [`http`] share: judge, stage, log.
//! * [`viewdb`] — reading an ERP's SQL views (the View integration type), behind the
//!   gate of which sources a tenant may name.
//! * [`worker`] — background jobs: the sync run and its stages (the ABC analysis among
//!   them), delivery to the CRM sink with its retry policy (`worker::delivery`), the
//!   scheduler (slots, retries of failed runs, runs whose server died), request-log
//!   retention, WAL checkpoints.
//! * [`export`] — the Histórico .xlsx export, built while read and streamed in chunks.
//! * [`auth`] — bearer tokens and per-tenant authorization, shared by gRPC and HTTP.
//! * [`grpc`] — the transport: services, auth, health (following the database) and
//!   reflection; prost types stop here.
//! * [`conn`] — accepted connections: how many at once, how long silent; [`throttle`] —
//!   rate limits on failed authentications and pushes.
//! * [`state`] — what handlers and jobs share, built once at startup.
//! * [`app`] — binds the listener and serves until told to stop; [`cli`] — the subcommands
//!   (with progress on the terminal for `sync-now` and `export`).
//!
//! Safe code only, which the compiler enforces: no FFI, no hand-written wire encoding.

#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod cli;
pub mod config;
pub mod conn;
pub mod domain;
pub mod edge;
pub mod error;
pub mod export;
pub mod grpc;
pub mod history;
pub mod http;
pub mod ingest;
pub mod logs;
pub mod overview;
pub mod services;
pub mod storage;
pub mod throttle;
pub mod viewdb;
pub mod worker;
