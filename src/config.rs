//! Server configuration: the defaults here, overridden by flags and environment
//! (`ERPSYNC_LISTEN`, `DATABASE_URL`, `ERPSYNC_LOG_FORMAT`), read in `cli`.

use std::net::SocketAddr;

use crate::storage::DEFAULT_DATABASE_URL;

/// Where the server listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Readable lines.
    Human,
    /// One JSON object a line.
    Json,
}

/// What `erpsync serve` needs.
#[derive(Debug, Clone)]
pub struct Config {
    /// gRPC (and, later, HTTP) address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
        }
    }
}
