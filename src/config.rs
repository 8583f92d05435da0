//! Server configuration: the defaults here, overridden by flags and environment
//! (`ERPSYNC_LISTEN`, `DATABASE_URL`, `ERPSYNC_LOG_FORMAT`), read in `cli`.

use std::net::SocketAddr;

use crate::conn::{ConnLimits, TlsFiles};
use crate::domain::secret::SecretKey;
use crate::domain::view_source::SourcePolicy;
use crate::export::ExportLimits;
use crate::ingest::Limits;
use crate::storage::DEFAULT_DATABASE_URL;
use crate::throttle::RateLimits;

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
    /// How long a call waits for a PostgreSQL connection (a new one included) before it
    /// answers UNAVAILABLE; also how long the health probe waits for the database.
    pub database_timeout: std::time::Duration,
    /// Ingestion limits (body size, records per batch, logged body cap).
    pub limits: Limits,
    /// Request-log rows older than this many days are deleted (at least 7).
    pub request_log_retention_days: u32,
    /// How often the scheduler looks for due runs.
    pub scheduler_tick: std::time::Duration,
    /// How long a StreamLogs follower waits without events before it sends a heartbeat
    /// (keeps idle streams alive through proxies).
    pub log_heartbeat: std::time::Duration,
    /// Sheet and cell limits of the Excel export (Excel's own by default).
    pub export: ExportLimits,
    /// Which databases tenants may name as View sources (none by default).
    pub view_sources: SourcePolicy,
    /// The key View source URLs are sealed with at rest; without one, URLs that carry a
    /// password are refused.
    pub secret_key: Option<SecretKey>,
    /// How many connections may be open, and how long one may stay silent.
    pub conn: ConnLimits,
    /// How long a call may take to start answering.
    pub request_timeout: std::time::Duration,
    /// Failed authentications per address and pushes per token.
    pub rate_limits: RateLimits,
    /// TLS on the listener; None serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Plaintext beyond loopback is refused unless this is set (a TLS-terminating proxy
    /// in front, say).
    pub insecure: bool,
    /// How runs send batches to the CRM sink.
    pub delivery: crate::worker::delivery::DeliveryPolicy,
    /// How failed runs are tried again.
    pub retries: crate::worker::delivery::RunRetries,
    /// How long a run's lease lives unrenewed: a run whose server died is taken for
    /// dead after it ([`crate::worker::sync::LEASE_TTL`]; no flag, tests shorten it).
    pub run_lease: chrono::Duration,
}

/// Default [`Config::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Default StreamLogs heartbeat interval: under the idle timeouts of common proxies.
pub const DEFAULT_LOG_HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// Retention can never go below a week: the Histórico export covers the last 7 days.
pub const MIN_RETENTION_DAYS: u32 = 7;
/// Default request-log retention.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

impl Config {
    /// Checks the settings that cannot be checked by their types alone.
    pub fn validate(&self) -> Result<(), String> {
        if self.request_log_retention_days < MIN_RETENTION_DAYS {
            return Err(format!(
                "--request-log-retention-days must be at least {MIN_RETENTION_DAYS} (the Histórico export covers 7 days), got {}",
                self.request_log_retention_days
            ));
        }
        if self.limits.max_body_bytes == 0 || self.limits.max_records == 0 {
            return Err("--max-body-bytes and --max-records must be positive".into());
        }
        if self.tls.is_none() && !self.insecure && !self.listen.ip().is_loopback() {
            return Err(format!(
                "refusing to serve plaintext on {}: bearer tokens would travel in clear. Give \
                 --tls-cert and --tls-key, or --insecure when a TLS proxy stands in front",
                self.listen
            ));
        }
        if self.rate_limits.streams_per_tenant == 0 || self.rate_limits.exports_per_tenant == 0 {
            return Err("--streams-per-tenant and --exports-per-tenant must be positive".into());
        }
        if self.conn.max_connections == 0 {
            return Err("--max-connections must be positive".into());
        }
        if self.limits.body_timeout.is_zero() || self.limits.body_timeout >= self.request_timeout {
            // An HTTP body that arrives too slowly is answered 408 by the route itself,
            // before the server's own deadline cuts the call.
            return Err(format!(
                "--body-timeout-secs must be positive and shorter than --request-timeout-secs ({} s)",
                self.request_timeout.as_secs()
            ));
        }
        // A call that is still working sends nothing for a while: the connection must
        // not be closed as silent before the call's own deadline.
        if self.conn.idle_timeout <= self.request_timeout {
            return Err(format!(
                "--idle-timeout-secs ({} s) must be longer than --request-timeout-secs ({} s)",
                self.conn.idle_timeout.as_secs(),
                self.request_timeout.as_secs()
            ));
        }
        if self.database_timeout.is_zero() {
            return Err("--database-timeout-secs must be positive".into());
        }
        if self.log_heartbeat.is_zero() {
            return Err("--log-heartbeat-secs must be positive".into());
        }
        if self.limits.log_body_cap < 1024 {
            return Err("--request-log-body-cap must be at least 1024 bytes".into());
        }
        self.delivery.validate()?;
        if self.run_lease < chrono::Duration::seconds(1) {
            return Err("the run lease must last at least a second".into());
        }
        self.export.validate()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_timeout: crate::storage::DEFAULT_DATABASE_TIMEOUT,
            limits: Limits::default(),
            request_log_retention_days: DEFAULT_RETENTION_DAYS,
            scheduler_tick: crate::worker::scheduler::TICK,
            log_heartbeat: DEFAULT_LOG_HEARTBEAT,
            export: ExportLimits::default(),
            view_sources: SourcePolicy::default(),
            secret_key: None,
            conn: ConnLimits::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            rate_limits: RateLimits::default(),
            tls: None,
            insecure: false,
            delivery: Default::default(),
            retries: Default::default(),
            run_lease: crate::worker::sync::LEASE_TTL,
        }
    }
}
