//! The one integration-test binary: every test talks to a real server over gRPC.

mod helpers;

mod abc;
mod auth;
mod cli;
mod config;
mod delivery;
mod erp_outage;
mod export;
mod grpcurl;
mod host_outage;
mod hostile_input;
mod ingest;
mod ingest_props;
mod isolation;
mod lease;
mod limits;
mod logs;
mod masking;
mod migrate;
mod northwind;
mod outage;
mod overview;
mod page_tokens;
mod schedule;
mod secrets;
mod sync;
mod tls;
mod view;
mod view_sources;
