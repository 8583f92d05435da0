//! erpsync: a gRPC sidecar that runs and watches a CRM's ERP integrations.
//!
//! Module map. Dependencies flow one way: the transports (`grpc`, `http`, `cli`, behind
//! `edge`) call the services, the services call `storage` and `domain`, `storage` returns
//! `domain` types; only the binary reaches `app`.
//!
//! Transports:
//! * [`grpc`] — IntegrationHistory, ErpIngest and Admin (authorize, convert, delegate), health
//!   (following the database), reflection, the guard that answers requests that are not
//!   gRPC or do not decode, the gRPC CRM sink client (TLS, its secret); prost types stop
//!   here.
//! * [`http`] — `POST /erp/v1/{table}` and the JSON error shape.
//! * [`edge`] — authentication of every call on the port, once, before its handler: the
//!   caller's grant goes on the request, and its connection is admitted (see [`conn`]).
//! * [`ui`] — the "Dados ERP" reference page at `/ui/` (files built into the binary, its
//!   Content-Security-Policy); it calls IntegrationHistory over gRPC-Web like any client.
//! * [`cli`] — the subcommands (operator commands on the database, or through Admin with
//!   `--server`; client commands over gRPC with progress on the terminal: `deletes` lists
//!   and decides held deletions).
//!
//! Services (small handles, each holding only what it uses; gathered in [`services`]):
//! * [`auth`] — tokens: who a caller is, per-tenant authorization, push rates; issuing,
//!   listing and revoking them.
//! * [`ingest`] — judges, stages and logs what ERPs send (pushes and View pages), warns of
//!   unknown fields (or rejects them for a strict tenant), and keeps each table's last
//!   accepted instant (`storage::freshness`).
//! * [`history`] — what the "Dados ERP" page reads and the settings it writes; [`overview`]
//!   assembles its "Informações Gerais" and the tenant listing's health (health and its
//!   reason by the one rule of `domain::tenant::HealthInputs`).
//! * [`tenants`] — provisioning: creating, changing, reading and listing tenants (the
//!   operator's commands and Admin alike).
//! * [`paging`] — listings' pages and their signed tokens, for the services that page.
//! * [`view_admin`] — a tenant's View configuration read, set and checked against the ERP
//!   database, and its sources' grants.
//! * [`worker`] — sync runs (one file per stage, the ABC analysis and categorization
//!   included; `worker::sync::ctx` is what a stage works with; `worker::sync::progress` keeps a run's
//!   progress in memory and writes it at most every 250 ms; the delete guard keeps
//!   discarded records in the CRM and DELETES_HELD's count current), delivery to the CRM sink with its retry
//!   policy (each tenant's own sink, else the server's: `worker::tenant_sink`), the
//!   scheduler (it reads only the tenants due: `worker::due` keeps their due instant, the
//!   rule is `domain::due`; it also opens STALE_TABLE for tables past their freshness
//!   limit), retention (the request log's days, runs'
//!   and ABC history: `domain::retention` says what is always kept) and WAL checkpoints.
//! * [`export`] — the Histórico .xlsx export, built while read and streamed in chunks.
//! * [`logs`] — tenants' logs, live (StreamLogs); [`wakeup`] wakes their followers and the
//!   alert feed's when another replica writes (PostgreSQL's LISTEN, on a connection of its
//!   own).
//! * [`purge`] — removing a tenant with every row of it, and exporting its data.
//! * [`alert_feed`] — alerts opened and resolved, live (WatchAlerts of Admin and
//!   IntegrationHistory).
//! * [`viewdb`] — reading an ERP's SQL views, behind the gate of which sources a tenant may
//!   name.
//!
//! Below them:
//! * [`storage`] — the database (SQLite or PostgreSQL): connection (`storage::db`),
//!   migrations, queries (one file or folder per table group), two ways in: a sea-orm
//!   entity per table with its reusable queries (`storage::entities`) for the common path,
//!   and `storage::bulk`, the only hand-written SQL (the large reads and writes,
//!   PostgreSQL's COPY in its text format, a backend's own functions); a test keeps SQL
//!   text out of the rest. `bulk` stands below the table modules: it uses only the
//!   connection, `days`, `entities` and `request_body` (a test holds it).
//! * [`domain`] — the rules in plain Rust: tenants, schedules, tokens, runs, the table
//!   catalog (`domain::tables`: every field with its kind, required flag and pt-BR/English
//!   description — the one schema validation, ListTables, the OpenAPI document and the
//!   host guide read; `domain::field_names` suggests a field for an unknown one,
//!   `domain::language` picks the catalogue's language), records, per-table freshness
//!   (`domain::freshness`), the ABC analysis.
//! * [`error`] — the one error type and its gRPC and HTTP statuses.
//!
//! Around them: [`clock`] (where everything reads the time of day: one clock from startup,
//! the system's in a server, a `ManualClock` in tests), [`colour`] (whether a stream gets ANSI escapes: a terminal, and no
//! `NO_COLOR`; the server's log, `erpsync logs` and the progress bars ask it), [`metrics`] (every series the operator scrapes at `GET /metrics`, named
//! once), [`config`] (every setting's default, flag, variable and check),
//! [`conn`] (accepted connections: how many, how many per client address, how long
//! without a call; each served over HTTP/1.1 or HTTP/2), [`throttle`] (rate limits),
//! [`app`] (startup: builds the services, binds the listener, serves until stopped, then
//! drains: health NOT_SERVING, no new runs, runs finished or handed over to another
//! replica).
//!
//! No two files import each other, nor do more in a circle (`tests/it/source_layout.rs`).
//!
//! Safe code only, which the compiler enforces: no FFI, no hand-written wire encoding.

#![forbid(unsafe_code)]

pub mod alert_feed;
pub mod app;
pub mod auth;
pub mod cli;
pub mod clock;
pub mod colour;
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
pub mod metrics;
pub mod overview;
pub mod paging;
pub mod purge;
pub mod services;
pub mod storage;
pub mod tenants;
pub mod throttle;
pub mod ui;
pub mod view_admin;
pub mod viewdb;
pub mod wakeup;
pub mod worker;
