//! Fixtures the integration tests share, one module per concern. A test file imports
//! fixtures from here (or `crate::pki`), never from another test file (`suite_layout.rs`
//! checks it): editing one test cannot break others.
//!
//! * [`servers`]: the server under test ([`TestApp`], `spawn_app*`, replicas, servers
//!   delivering to a host CRM) and `both_backends!`.
//! * [`tenants`]: tenants and tokens, [`authed`] requests, tenant acme's [`tenants::Ctx`].
//! * [`seed`]: records to push (valid fields of every table, companies, invoices, CNPJs).
//! * [`northwind`]: the Northwind dump as an ERP's records.
//! * [`runs`]: waiting for runs, reading a run's tables, a run another replica holds.
//! * [`sinks`]: CRM sinks (gated, failing on demand, a host CRM over gRPC).
//! * [`databases`]: scratch databases, throw-away PostgreSQL and MariaDB databases, a
//!   proxy that cuts PostgreSQL away.
//! * [`views`]: the ERP databases the View reads and acme's View configuration.
//! * [`http`]: raw HTTP: POSTs, `/metrics` scrapes.
//! * [`cli`]: the `erpsync` binary, grpcurl and scripts.
//! * [`workbooks`]: ExportHistory's downloads read back.
//! * [`browser`]: a real browser over WebDriver for the web UI.
//!
//! The names almost every test uses are re-exported here.

pub mod browser;
pub mod cli;
pub mod databases;
pub mod http;
pub mod northwind;
pub mod runs;
pub mod rust_source;
pub mod seed;
pub mod servers;
pub mod sinks;
pub mod tenants;
pub mod views;
pub mod workbooks;

pub use cli::run_script;
pub use databases::{with_database, PgDatabase, PgProxy, ScratchDb, PG_ENV};
pub use http::{closed_within, get_metrics, http_post, http_post_with_head, scrape, scrape_with};
pub use servers::{
    spawn_app, spawn_app_at, spawn_app_clocked, spawn_app_full, spawn_app_with, spawn_replica,
    test_view_sources, Backend, TestApp,
};
pub use sinks::{Gate, GatedCrm};
pub use tenants::authed;
