//! The one integration-test binary: every test talks to a real server over gRPC.

mod helpers;
mod pki;

mod abc;
mod auth;
mod catalogue;
mod cli;
mod config;
mod delivery;
mod echoes;
mod erp_outage;
mod export;
mod flood;
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
mod openapi;
mod outage;
mod overview;
mod page_tokens;
mod schedule;
mod secrets;
mod sink_tls;
mod sync;
mod tls;
mod view;
mod view_sources;
