//! Server configuration, in one place: every `erpsync serve` setting's flag and
//! environment variable ([`setting`]) and its default (the `DEFAULT_*` consts here,
//! re-exported from the module that uses the value), the [`Config`] they make, and
//! [`Config::validate`], which checks the values together before anything starts. The
//! CLI (`cli`) declares its flags from these; the README's configuration table is
//! checked against them by a test.

use std::fmt;
use std::net::SocketAddr;

use crate::conn::{ConnLimits, TlsFiles};
use crate::domain::secret::SecretKey;
use crate::domain::view_source::SourcePolicy;
use crate::export::ExportLimits;
use crate::ingest::Limits;
use crate::throttle::RateLimits;

pub use crate::conn::{
    DEFAULT_FIRST_CALL_TIMEOUT, DEFAULT_HANDSHAKE_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_PER_ADDRESS,
};
pub use crate::ingest::{
    DEFAULT_BODY_TIMEOUT, DEFAULT_LOG_BODY_CAP, DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_INGEST_IN_FLIGHT, DEFAULT_MAX_RECORDS,
};
pub use crate::storage::{DEFAULT_DATABASE_TIMEOUT, DEFAULT_DATABASE_URL};
pub use crate::throttle::{
    DEFAULT_ALERT_STREAMS_PER_CALLER, DEFAULT_EXPORTS_PER_TENANT,
    DEFAULT_FAILED_AUTH_GLOBAL_PER_SEC, DEFAULT_FAILED_AUTH_PER_SEC, DEFAULT_PUSHES_PER_SEC,
    DEFAULT_STREAMS_PER_TENANT,
};
pub use crate::worker::delivery::{
    DEFAULT_RUN_RETRIES, DEFAULT_RUN_RETRY_BACKOFF, DEFAULT_SINK_ATTEMPTS, DEFAULT_SINK_BACKOFF,
    DEFAULT_SINK_BATCH, DEFAULT_SINK_BATCH_BUDGET, DEFAULT_SINK_CALL_TIMEOUT,
    DEFAULT_SINK_MAX_BACKOFF,
};

pub use crate::domain::retention::{DEFAULT_ABC_HISTORY_DAYS, DEFAULT_RUN_HISTORY_DAYS};
pub use crate::ui::DEFAULT_UI_FRAME_ANCESTORS;

/// Where the server listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:50051";

/// Default log format: readable lines.
pub const DEFAULT_LOG_FORMAT: LogFormat = LogFormat::Human;

/// Default [`CrmSink`]: erpsync's own CRM tables.
pub const DEFAULT_CRM_SINK: CrmSink = CrmSink::Embedded;

/// A setting as the operator names it: the long flag and the environment variable that
/// stands in for it. The CLI declares its flags from these, so an error that names a
/// setting names what the operator actually typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The long flag, without its dashes.
    pub flag: &'static str,
    /// The environment variable read when the flag is not given.
    pub env: &'static str,
}

impl fmt::Display for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "--{} ({})", self.flag, self.env)
    }
}

/// Every setting of `erpsync serve` (and the global ones it reads), by flag and
/// environment variable.
pub mod setting {
    use super::Setting;

    const fn s(flag: &'static str, env: &'static str) -> Setting {
        Setting { flag, env }
    }

    /// `--log-format`.
    pub const LOG_FORMAT: Setting = s("log-format", "ERPSYNC_LOG_FORMAT");
    /// `--database-url`.
    pub const DATABASE_URL: Setting = s("database-url", "DATABASE_URL");
    /// `--secret-key`.
    pub const SECRET_KEY: Setting = s("secret-key", "ERPSYNC_SECRET_KEY");
    /// `--secret-key-file`.
    pub const SECRET_KEY_FILE: Setting = s("secret-key-file", "ERPSYNC_SECRET_KEY_FILE");
    /// `serve --listen`.
    pub const LISTEN: Setting = s("listen", "ERPSYNC_LISTEN");
    /// `serve --max-body-bytes`.
    pub const MAX_BODY_BYTES: Setting = s("max-body-bytes", "ERPSYNC_MAX_BODY_BYTES");
    /// `serve --max-records`.
    pub const MAX_RECORDS: Setting = s("max-records", "ERPSYNC_MAX_RECORDS");
    /// `--max-ingest-in-flight`.
    pub const MAX_INGEST_IN_FLIGHT: Setting =
        s("max-ingest-in-flight", "ERPSYNC_MAX_INGEST_IN_FLIGHT");
    /// `serve --request-log-body-cap`.
    pub const REQUEST_LOG_BODY_CAP: Setting =
        s("request-log-body-cap", "ERPSYNC_REQUEST_LOG_BODY_CAP");
    /// `serve --request-log-retention-days`.
    pub const REQUEST_LOG_RETENTION_DAYS: Setting = s(
        "request-log-retention-days",
        "ERPSYNC_REQUEST_LOG_RETENTION_DAYS",
    );
    /// `serve --run-history-days`.
    pub const RUN_HISTORY_DAYS: Setting = s("run-history-days", "ERPSYNC_RUN_HISTORY_DAYS");
    /// `serve --abc-history-days`.
    pub const ABC_HISTORY_DAYS: Setting = s("abc-history-days", "ERPSYNC_ABC_HISTORY_DAYS");
    /// `serve --log-heartbeat-secs`.
    pub const LOG_HEARTBEAT_SECS: Setting = s("log-heartbeat-secs", "ERPSYNC_LOG_HEARTBEAT_SECS");
    /// `serve --crm-sink`.
    pub const CRM_SINK: Setting = s("crm-sink", "ERPSYNC_CRM_SINK");
    /// `serve --sink-batch`.
    pub const SINK_BATCH: Setting = s("sink-batch", "ERPSYNC_SINK_BATCH");
    /// `serve --sink-attempts`.
    pub const SINK_ATTEMPTS: Setting = s("sink-attempts", "ERPSYNC_SINK_ATTEMPTS");
    /// `serve --sink-backoff-ms`.
    pub const SINK_BACKOFF_MS: Setting = s("sink-backoff-ms", "ERPSYNC_SINK_BACKOFF_MS");
    /// `serve --sink-max-backoff-secs`.
    pub const SINK_MAX_BACKOFF_SECS: Setting =
        s("sink-max-backoff-secs", "ERPSYNC_SINK_MAX_BACKOFF_SECS");
    /// `serve --sink-call-timeout-secs`.
    pub const SINK_CALL_TIMEOUT_SECS: Setting =
        s("sink-call-timeout-secs", "ERPSYNC_SINK_CALL_TIMEOUT_SECS");
    /// `serve --sink-batch-budget-secs`.
    pub const SINK_BATCH_BUDGET_SECS: Setting =
        s("sink-batch-budget-secs", "ERPSYNC_SINK_BATCH_BUDGET_SECS");
    /// `serve --run-retries`.
    pub const RUN_RETRIES: Setting = s("run-retries", "ERPSYNC_RUN_RETRIES");
    /// `serve --run-retry-backoff-secs`.
    pub const RUN_RETRY_BACKOFF_SECS: Setting =
        s("run-retry-backoff-secs", "ERPSYNC_RUN_RETRY_BACKOFF_SECS");
    /// `serve --run-lease-secs`.
    pub const RUN_LEASE_SECS: Setting = s("run-lease-secs", "ERPSYNC_RUN_LEASE_SECS");
    /// `serve --view-allow-host` (comma-separated in the environment).
    pub const VIEW_ALLOW_HOST: Setting = s("view-allow-host", "ERPSYNC_VIEW_ALLOW_HOSTS");
    /// `serve --view-sqlite-dir` (comma-separated in the environment).
    pub const VIEW_SQLITE_DIR: Setting = s("view-sqlite-dir", "ERPSYNC_VIEW_SQLITE_DIRS");
    /// `serve --max-connections`.
    pub const MAX_CONNECTIONS: Setting = s("max-connections", "ERPSYNC_MAX_CONNECTIONS");
    /// `serve --max-connections-per-address`.
    pub const MAX_PER_ADDRESS: Setting = s(
        "max-connections-per-address",
        "ERPSYNC_MAX_CONNECTIONS_PER_ADDRESS",
    );
    /// `serve --first-call-timeout-secs`.
    pub const FIRST_CALL_TIMEOUT_SECS: Setting =
        s("first-call-timeout-secs", "ERPSYNC_FIRST_CALL_TIMEOUT_SECS");
    /// `serve --tls-handshake-timeout-secs`.
    pub const HANDSHAKE_TIMEOUT_SECS: Setting = s(
        "tls-handshake-timeout-secs",
        "ERPSYNC_TLS_HANDSHAKE_TIMEOUT_SECS",
    );
    /// `serve --idle-timeout-secs`.
    pub const IDLE_TIMEOUT_SECS: Setting = s("idle-timeout-secs", "ERPSYNC_IDLE_TIMEOUT_SECS");
    /// `serve --request-timeout-secs`.
    pub const REQUEST_TIMEOUT_SECS: Setting =
        s("request-timeout-secs", "ERPSYNC_REQUEST_TIMEOUT_SECS");
    /// `serve --drain-secs`.
    pub const DRAIN_SECS: Setting = s("drain-secs", "ERPSYNC_DRAIN_SECS");
    /// `serve --database-timeout-secs`.
    pub const DATABASE_TIMEOUT_SECS: Setting =
        s("database-timeout-secs", "ERPSYNC_DATABASE_TIMEOUT_SECS");
    /// `serve --body-timeout-secs`.
    pub const BODY_TIMEOUT_SECS: Setting = s("body-timeout-secs", "ERPSYNC_BODY_TIMEOUT_SECS");
    /// `serve --failed-auth-per-sec`.
    pub const FAILED_AUTH_PER_SEC: Setting =
        s("failed-auth-per-sec", "ERPSYNC_FAILED_AUTH_PER_SEC");
    /// `serve --failed-auth-global-per-sec`.
    pub const FAILED_AUTH_GLOBAL_PER_SEC: Setting = s(
        "failed-auth-global-per-sec",
        "ERPSYNC_FAILED_AUTH_GLOBAL_PER_SEC",
    );
    /// `serve --pushes-per-sec`.
    pub const PUSHES_PER_SEC: Setting = s("pushes-per-sec", "ERPSYNC_PUSHES_PER_SEC");
    /// `serve --streams-per-tenant`.
    pub const STREAMS_PER_TENANT: Setting = s("streams-per-tenant", "ERPSYNC_STREAMS_PER_TENANT");
    /// `serve --exports-per-tenant`.
    pub const EXPORTS_PER_TENANT: Setting = s("exports-per-tenant", "ERPSYNC_EXPORTS_PER_TENANT");
    /// `serve --alert-streams-per-caller`.
    pub const ALERT_STREAMS_PER_CALLER: Setting = s(
        "alert-streams-per-caller",
        "ERPSYNC_ALERT_STREAMS_PER_CALLER",
    );
    /// `serve --tls-cert`.
    pub const TLS_CERT: Setting = s("tls-cert", "ERPSYNC_TLS_CERT");
    /// `serve --tls-key`.
    pub const TLS_KEY: Setting = s("tls-key", "ERPSYNC_TLS_KEY");
    /// `serve --tls-client-ca`.
    pub const TLS_CLIENT_CA: Setting = s("tls-client-ca", "ERPSYNC_TLS_CLIENT_CA");
    /// `serve --insecure`.
    pub const INSECURE: Setting = s("insecure", "ERPSYNC_INSECURE");
    /// `serve --ui-frame-ancestors`.
    pub const UI_FRAME_ANCESTORS: Setting = s("ui-frame-ancestors", "ERPSYNC_UI_FRAME_ANCESTORS");
    /// `serve --metrics-tenant-label`.
    pub const METRICS_TENANT_LABEL: Setting =
        s("metrics-tenant-label", "ERPSYNC_METRICS_TENANT_LABEL");
    /// `serve --metrics-token`.
    pub const METRICS_TOKEN: Setting = s("metrics-token", "ERPSYNC_METRICS_TOKEN");
    /// `serve --crm-sink-ca`.
    pub const CRM_SINK_CA: Setting = s("crm-sink-ca", "ERPSYNC_CRM_SINK_CA");
    /// `serve --crm-sink-cert`.
    pub const CRM_SINK_CERT: Setting = s("crm-sink-cert", "ERPSYNC_CRM_SINK_CERT");
    /// `serve --crm-sink-key`.
    pub const CRM_SINK_KEY: Setting = s("crm-sink-key", "ERPSYNC_CRM_SINK_KEY");
    /// `serve --crm-sink-token`.
    pub const CRM_SINK_TOKEN: Setting = s("crm-sink-token", "ERPSYNC_CRM_SINK_TOKEN");
    /// `serve --crm-sink-token-file`.
    pub const CRM_SINK_TOKEN_FILE: Setting =
        s("crm-sink-token-file", "ERPSYNC_CRM_SINK_TOKEN_FILE");
}

/// A yes/no setting's value as the operator may write it, in any case: `1`, `true`, `yes`
/// or `0`, `false`, `no` (environment variables are often set to `1`). The CLI parses
/// every boolean setting with this; anything else is refused naming what is accepted.
pub fn parse_bool(text: &str) -> Result<bool, String> {
    const YES: [&str; 3] = ["1", "true", "yes"];
    const NO: [&str; 3] = ["0", "false", "no"];
    let t = text.trim();
    if YES.iter().any(|y| t.eq_ignore_ascii_case(y)) {
        Ok(true)
    } else if NO.iter().any(|n| t.eq_ignore_ascii_case(n)) {
        Ok(false)
    } else {
        Err(format!(
            "expected 1, true or yes (on) or 0, false or no (off), got {text:?}"
        ))
    }
}

/// Where runs deliver their records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CrmSink {
    /// erpsync's own CRM tables.
    Embedded,
    /// The host's CrmSink service at this URL: `grpc://host:port` (or `http://`) in
    /// clear, `grpcs://host:port` (or `https://`) over TLS.
    Host(String),
}

/// How erpsync reaches a host's CrmSink and proves who it is: for a `grpcs://` sink, the
/// CA to trust (the system's roots without one) and erpsync's client certificate; for
/// any host sink, the secret sent as `authorization: Bearer …` on every call.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SinkAccess {
    /// CA certificates (PEM) that sign the sink's certificate.
    pub ca: Option<std::path::PathBuf>,
    /// erpsync's client certificate chain (PEM) and its key, for a sink that asks.
    pub identity: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// The secret the host checks on every call.
    pub token: Option<String>,
}

impl fmt::Debug for SinkAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SinkAccess")
            .field("ca", &self.ca)
            .field("identity", &self.identity)
            .field("token", &self.token.as_ref().map(|_| "***"))
            .finish()
    }
}

impl std::str::FromStr for CrmSink {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        if s == "embedded" {
            Ok(Self::Embedded)
        } else if ["grpc://", "http://", "grpcs://", "https://"]
            .iter()
            .any(|scheme| s.starts_with(scheme))
        {
            Ok(Self::Host(s.to_owned()))
        } else {
            Err(format!(
                "{}: must be \"embedded\", grpc://host:port or grpcs://host:port, got {s:?}",
                setting::CRM_SINK
            ))
        }
    }
}

impl fmt::Display for CrmSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Embedded => f.write_str("embedded"),
            Self::Host(url) => f.write_str(url),
        }
    }
}

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
    /// Request-log rows older than this many days are deleted (at least
    /// [`MIN_RETENTION_DAYS`]).
    pub request_log_retention_days: u32,
    /// How long runs and ABC history are kept unless a tenant says otherwise.
    pub history_retention: crate::domain::retention::Defaults,
    /// How often the scheduler looks for due runs.
    pub scheduler_tick: std::time::Duration,
    /// How long a StreamLogs follower waits without events before it sends a heartbeat
    /// (keeps idle streams alive through proxies).
    pub log_heartbeat: std::time::Duration,
    /// How often StreamLogs tails and alert watchers read for other processes' events
    /// while no LISTEN connection hears them (always on SQLite; on PostgreSQL only while
    /// the listener is down). No flag: tests lengthen it to prove the notifications.
    pub feed_poll: std::time::Duration,
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
    /// How long a drain (the first SIGTERM) lets this replica's runs finish before it
    /// hands them over to another replica; zero stops at once.
    pub drain: std::time::Duration,
    /// Failed authentications per address and on the server, pushes per token.
    pub rate_limits: RateLimits,
    /// TLS on the listener; None serves plaintext.
    pub tls: Option<TlsFiles>,
    /// Plaintext beyond loopback is refused unless this is set (a TLS-terminating proxy
    /// in front, say).
    pub insecure: bool,
    /// How runs send batches to the CRM sink.
    pub delivery: crate::worker::delivery::DeliveryPolicy,
    /// How erpsync reaches a host sink (TLS, its secret); unused by the embedded one.
    pub crm_sink_access: SinkAccess,
    /// How failed runs are tried again.
    pub retries: crate::worker::delivery::RunRetries,
    /// Which pages may frame the `/ui/` page (its Content-Security-Policy's
    /// `frame-ancestors` sources).
    pub ui_frame_ancestors: String,
    /// The bearer token `GET /metrics` requires; None: open, as health is.
    pub metrics_token: Option<String>,
    /// Per-tenant series carry a `tenant` label (one series per tenant: few tenants only).
    pub metrics_tenant_label: bool,
    /// How long a run's lease lives unrenewed (`serve --run-lease-secs`): a run whose
    /// server died is marked INTERRUPTED and started again by another replica after it
    /// ([`crate::worker::LEASE_TTL`] by default).
    pub run_lease: chrono::Duration,
}

/// Longest [`Config::run_lease`]: a day.
pub const MAX_RUN_LEASE: chrono::Duration = chrono::Duration::days(1);

/// Default [`Config::request_timeout`].
pub const DEFAULT_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Default [`Config::drain`]: Kubernetes' default grace period (30 s) with room for the
/// hand-over and the exit is 25 s; a run that needs longer is handed over, not lost.
pub const DEFAULT_DRAIN: std::time::Duration = std::time::Duration::from_secs(25);
/// The longest [`Config::drain`]: a replica that drains for longer holds up a rollout
/// for nothing, since its runs are handed over anyway.
pub const MAX_DRAIN: std::time::Duration = std::time::Duration::from_secs(3600);

pub use crate::logs::DEFAULT_HEARTBEAT as DEFAULT_LOG_HEARTBEAT;

/// Retention can never go below a week: the Histórico export covers the last 7 days.
pub const MIN_RETENTION_DAYS: u32 = 7;
/// Default request-log retention, in days.
pub const DEFAULT_RETENTION_DAYS: u32 = 30;

/// The smallest logged-body cap: room for a body's start and the cut marker.
pub const MIN_LOG_BODY_CAP: usize = 1024;

/// `setting` has a bad value: the message that says so, naming the flag and its
/// environment variable.
fn bad(setting: Setting, problem: impl fmt::Display) -> String {
    format!("{setting}: {problem}")
}

impl Config {
    /// Checks the settings together, before anything starts: every rule on a setting's
    /// value lives here, and the error names the flag and the environment variable.
    pub fn validate(&self) -> Result<(), String> {
        use setting as s;
        let secs = |d: std::time::Duration| format!("{} s", d.as_secs_f64());
        let positive = |setting: Setting, zero: bool| {
            if zero {
                Err(bad(setting, "must be positive, got 0"))
            } else {
                Ok(())
            }
        };
        if self.tls.is_none() && !self.insecure && !self.listen.ip().is_loopback() {
            return Err(bad(
                s::LISTEN,
                format_args!(
                    "refusing to serve plaintext on {}: bearer tokens would travel in clear. \
                     Give {} and {}, or {} when a TLS proxy stands in front",
                    self.listen,
                    s::TLS_CERT,
                    s::TLS_KEY,
                    s::INSECURE
                ),
            ));
        }
        positive(s::MAX_BODY_BYTES, self.limits.max_body_bytes == 0)?;
        positive(s::MAX_RECORDS, self.limits.max_records == 0)?;
        if self.limits.log_body_cap < MIN_LOG_BODY_CAP {
            return Err(bad(
                s::REQUEST_LOG_BODY_CAP,
                format_args!(
                    "must be at least {MIN_LOG_BODY_CAP} bytes, got {}",
                    self.limits.log_body_cap
                ),
            ));
        }
        if self.request_log_retention_days < MIN_RETENTION_DAYS {
            return Err(bad(
                s::REQUEST_LOG_RETENTION_DAYS,
                format_args!(
                    "must be at least {MIN_RETENTION_DAYS} (the Histórico export covers the \
                     last {MIN_RETENTION_DAYS} days), got {}",
                    self.request_log_retention_days
                ),
            ));
        }
        for (setting, days) in [
            (s::RUN_HISTORY_DAYS, self.history_retention.run_history_days),
            (s::ABC_HISTORY_DAYS, self.history_retention.abc_history_days),
        ] {
            if !crate::domain::retention::valid_default(days) {
                return Err(bad(
                    setting,
                    format_args!(
                        "must be from {} to {} days, got {days}",
                        crate::domain::retention::MIN_DAYS,
                        crate::domain::retention::MAX_DAYS
                    ),
                ));
            }
        }
        positive(s::LOG_HEARTBEAT_SECS, self.log_heartbeat.is_zero())?;
        positive(s::MAX_CONNECTIONS, self.conn.max_connections == 0)?;
        positive(s::MAX_PER_ADDRESS, self.conn.max_per_address == 0)?;
        positive(
            s::FIRST_CALL_TIMEOUT_SECS,
            self.conn.first_call_timeout.is_zero(),
        )?;
        positive(
            s::HANDSHAKE_TIMEOUT_SECS,
            self.conn.handshake_timeout.is_zero(),
        )?;
        positive(s::REQUEST_TIMEOUT_SECS, self.request_timeout.is_zero())?;
        // A call that is still working sends nothing for a while: the connection must
        // not be closed as silent before the call's own deadline.
        if self.conn.idle_timeout <= self.request_timeout {
            return Err(bad(
                s::IDLE_TIMEOUT_SECS,
                format_args!(
                    "must be longer than {}, which is {}; got {}",
                    s::REQUEST_TIMEOUT_SECS,
                    secs(self.request_timeout),
                    secs(self.conn.idle_timeout)
                ),
            ));
        }
        positive(s::BODY_TIMEOUT_SECS, self.limits.body_timeout.is_zero())?;
        // An HTTP body that arrives too slowly is answered 408 by the route itself,
        // before the server's own deadline cuts the call.
        if self.limits.body_timeout >= self.request_timeout {
            return Err(bad(
                s::BODY_TIMEOUT_SECS,
                format_args!(
                    "must be shorter than {}, which is {}; got {}",
                    s::REQUEST_TIMEOUT_SECS,
                    secs(self.request_timeout),
                    secs(self.limits.body_timeout)
                ),
            ));
        }
        positive(s::DATABASE_TIMEOUT_SECS, self.database_timeout.is_zero())?;
        if self.drain > MAX_DRAIN {
            return Err(bad(
                s::DRAIN_SECS,
                format_args!(
                    "must be at most {} (runs still going then are handed over anyway), got {}",
                    secs(MAX_DRAIN),
                    secs(self.drain)
                ),
            ));
        }
        positive(
            s::STREAMS_PER_TENANT,
            self.rate_limits.streams_per_tenant == 0,
        )?;
        positive(
            s::EXPORTS_PER_TENANT,
            self.rate_limits.exports_per_tenant == 0,
        )?;
        positive(
            s::ALERT_STREAMS_PER_CALLER,
            self.rate_limits.alert_streams_per_caller == 0,
        )?;
        let d = &self.delivery;
        positive(s::SINK_BATCH, d.batch == 0)?;
        // Without a wait, a failing sink is called again at once, every attempt.
        positive(s::SINK_BACKOFF_MS, d.backoff.is_zero())?;
        if d.max_backoff < d.backoff {
            return Err(bad(
                s::SINK_MAX_BACKOFF_SECS,
                format_args!(
                    "must be at least {}, which is {}; got {}",
                    s::SINK_BACKOFF_MS,
                    secs(d.backoff),
                    secs(d.max_backoff)
                ),
            ));
        }
        positive(s::SINK_CALL_TIMEOUT_SECS, d.call_timeout.is_zero())?;
        positive(s::SINK_BATCH_BUDGET_SECS, d.batch_budget.is_zero())?;
        if self.retries.max > 0 && self.retries.backoff.is_zero() {
            return Err(bad(
                s::RUN_RETRY_BACKOFF_SECS,
                format_args!("must be positive while {} is not 0, got 0", s::RUN_RETRIES),
            ));
        }
        if let Some(problem) = crate::ui::frame_ancestors_problem(&self.ui_frame_ancestors) {
            return Err(bad(s::UI_FRAME_ANCESTORS, problem));
        }
        if let Some(token) = &self.metrics_token {
            if token.len() < 16 || !crate::domain::secret::header_safe(token) {
                return Err(bad(
                    s::METRICS_TOKEN,
                    "must be at least 16 visible ASCII characters (no spaces)",
                ));
            }
        }
        // A lease beyond a day would leave a dead replica's tenant stuck for longer than
        // any schedule waits.
        if self.run_lease < chrono::Duration::seconds(1) || self.run_lease > MAX_RUN_LEASE {
            return Err(bad(
                s::RUN_LEASE_SECS,
                format_args!(
                    "must be from 1 to {} seconds, got {} ms",
                    MAX_RUN_LEASE.num_seconds(),
                    self.run_lease.num_milliseconds()
                ),
            ));
        }
        // No flag; tests shorten it.
        if self.scheduler_tick.is_zero() {
            return Err("the scheduler tick must be positive".into());
        }
        if self.feed_poll.is_zero() {
            return Err("the feed poll interval must be positive".into());
        }
        self.export.validate()
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: DEFAULT_LISTEN.parse().expect("the default address parses"),
            database_url: DEFAULT_DATABASE_URL.to_owned(),
            database_timeout: DEFAULT_DATABASE_TIMEOUT,
            limits: Limits::default(),
            request_log_retention_days: DEFAULT_RETENTION_DAYS,
            history_retention: crate::domain::retention::Defaults::default(),
            scheduler_tick: crate::worker::scheduler::TICK,
            log_heartbeat: DEFAULT_LOG_HEARTBEAT,
            feed_poll: crate::logs::DEFAULT_POLL,
            export: ExportLimits::default(),
            view_sources: SourcePolicy::default(),
            secret_key: None,
            conn: ConnLimits::default(),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            drain: DEFAULT_DRAIN,
            rate_limits: RateLimits::default(),
            tls: None,
            insecure: false,
            delivery: Default::default(),
            crm_sink_access: SinkAccess::default(),
            retries: Default::default(),
            ui_frame_ancestors: DEFAULT_UI_FRAME_ANCESTORS.to_owned(),
            metrics_token: None,
            metrics_tenant_label: false,
            run_lease: crate::worker::LEASE_TTL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// The error `validate` answers for the default configuration changed by `tune`.
    fn refused(tune: impl FnOnce(&mut Config)) -> String {
        let mut config = Config::default();
        tune(&mut config);
        config.validate().expect_err("a bad value is refused")
    }

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(Config::default().validate(), Ok(()));
    }

    #[test]
    fn every_bad_value_is_refused_naming_its_flag_and_variable() {
        type Tune = Box<dyn FnOnce(&mut Config)>;
        let cases: Vec<(Setting, Tune)> = vec![
            (
                setting::LISTEN,
                Box::new(|c| c.listen = "0.0.0.0:50051".parse().unwrap()),
            ),
            (
                setting::MAX_BODY_BYTES,
                Box::new(|c| c.limits.max_body_bytes = 0),
            ),
            (setting::MAX_RECORDS, Box::new(|c| c.limits.max_records = 0)),
            (
                setting::REQUEST_LOG_BODY_CAP,
                Box::new(|c| c.limits.log_body_cap = MIN_LOG_BODY_CAP - 1),
            ),
            (
                setting::REQUEST_LOG_RETENTION_DAYS,
                Box::new(|c| c.request_log_retention_days = MIN_RETENTION_DAYS - 1),
            ),
            (
                setting::RUN_HISTORY_DAYS,
                Box::new(|c| c.history_retention.run_history_days = 6),
            ),
            (
                setting::ABC_HISTORY_DAYS,
                Box::new(|c| c.history_retention.abc_history_days = 3651),
            ),
            (
                setting::LOG_HEARTBEAT_SECS,
                Box::new(|c| c.log_heartbeat = Duration::ZERO),
            ),
            (
                setting::MAX_CONNECTIONS,
                Box::new(|c| c.conn.max_connections = 0),
            ),
            (
                setting::MAX_PER_ADDRESS,
                Box::new(|c| c.conn.max_per_address = 0),
            ),
            (
                setting::FIRST_CALL_TIMEOUT_SECS,
                Box::new(|c| c.conn.first_call_timeout = Duration::ZERO),
            ),
            (
                setting::HANDSHAKE_TIMEOUT_SECS,
                Box::new(|c| c.conn.handshake_timeout = Duration::ZERO),
            ),
            (
                setting::REQUEST_TIMEOUT_SECS,
                Box::new(|c| c.request_timeout = Duration::ZERO),
            ),
            (
                setting::IDLE_TIMEOUT_SECS,
                Box::new(|c| c.conn.idle_timeout = c.request_timeout),
            ),
            (
                setting::BODY_TIMEOUT_SECS,
                Box::new(|c| c.limits.body_timeout = Duration::ZERO),
            ),
            (
                setting::BODY_TIMEOUT_SECS,
                Box::new(|c| c.limits.body_timeout = c.request_timeout),
            ),
            (
                setting::DATABASE_TIMEOUT_SECS,
                Box::new(|c| c.database_timeout = Duration::ZERO),
            ),
            (
                setting::DRAIN_SECS,
                Box::new(|c| c.drain = MAX_DRAIN + Duration::from_secs(1)),
            ),
            (
                setting::STREAMS_PER_TENANT,
                Box::new(|c| c.rate_limits.streams_per_tenant = 0),
            ),
            (
                setting::EXPORTS_PER_TENANT,
                Box::new(|c| c.rate_limits.exports_per_tenant = 0),
            ),
            (
                setting::ALERT_STREAMS_PER_CALLER,
                Box::new(|c| c.rate_limits.alert_streams_per_caller = 0),
            ),
            (setting::SINK_BATCH, Box::new(|c| c.delivery.batch = 0)),
            (
                setting::SINK_BACKOFF_MS,
                Box::new(|c| c.delivery.backoff = Duration::ZERO),
            ),
            (
                setting::SINK_MAX_BACKOFF_SECS,
                Box::new(|c| c.delivery.max_backoff = c.delivery.backoff / 2),
            ),
            (
                setting::SINK_CALL_TIMEOUT_SECS,
                Box::new(|c| c.delivery.call_timeout = Duration::ZERO),
            ),
            (
                setting::SINK_BATCH_BUDGET_SECS,
                Box::new(|c| c.delivery.batch_budget = Duration::ZERO),
            ),
            (
                setting::RUN_RETRY_BACKOFF_SECS,
                Box::new(|c| c.retries.backoff = Duration::ZERO),
            ),
            (
                setting::UI_FRAME_ANCESTORS,
                Box::new(|c| c.ui_frame_ancestors = "'self'; script-src *".into()),
            ),
            (
                setting::METRICS_TOKEN,
                Box::new(|c| c.metrics_token = Some("short".into())),
            ),
            (
                setting::METRICS_TOKEN,
                Box::new(|c| c.metrics_token = Some("a token with spaces in it".into())),
            ),
            (
                setting::RUN_LEASE_SECS,
                Box::new(|c| c.run_lease = chrono::Duration::zero()),
            ),
        ];
        for (setting, tune) in cases {
            let err = refused(tune);
            let named = format!("--{} ({}): ", setting.flag, setting.env);
            assert!(err.starts_with(&named), "{err:?} does not start {named:?}");
        }
    }

    #[test]
    fn errors_say_what_was_given_and_what_is_allowed() {
        assert_eq!(
            refused(|c| c.request_log_retention_days = 3),
            "--request-log-retention-days (ERPSYNC_REQUEST_LOG_RETENTION_DAYS): must be at \
             least 7 (the Histórico export covers the last 7 days), got 3"
        );
        assert_eq!(
            refused(|c| {
                c.delivery.backoff = Duration::from_secs(20);
                c.delivery.max_backoff = Duration::from_secs(15);
            }),
            "--sink-max-backoff-secs (ERPSYNC_SINK_MAX_BACKOFF_SECS): must be at least \
             --sink-backoff-ms (ERPSYNC_SINK_BACKOFF_MS), which is 20 s; got 15 s"
        );
        assert_eq!(
            refused(|c| c.delivery.batch = 0),
            "--sink-batch (ERPSYNC_SINK_BATCH): must be positive, got 0"
        );
        let plaintext = refused(|c| c.listen = "0.0.0.0:50051".parse().unwrap());
        assert!(
            plaintext.contains("--insecure (ERPSYNC_INSECURE)"),
            "{plaintext}"
        );
    }

    #[test]
    fn settings_that_switch_a_check_off_are_accepted() {
        let mut config = Config {
            listen: "0.0.0.0:50051".parse().unwrap(),
            insecure: true,
            ..Config::default()
        };
        config.retries.max = 0;
        config.retries.backoff = Duration::ZERO;
        config.rate_limits.failed_auth_per_sec = 0;
        config.rate_limits.failed_auth_global_per_sec = 0;
        config.rate_limits.pushes_per_sec = 0;
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn booleans_are_1_0_true_false_yes_no_in_any_case() {
        for yes in ["1", "true", "TRUE", "True", "yes", "YES", "Yes", " 1 "] {
            assert_eq!(parse_bool(yes), Ok(true), "{yes:?}");
        }
        for no in ["0", "false", "FALSE", "False", "no", "NO", "No"] {
            assert_eq!(parse_bool(no), Ok(false), "{no:?}");
        }
        for other in ["maybe", "", "2", "on", "off", "y", "n", "t", "f", "-1"] {
            assert_eq!(
                parse_bool(other),
                Err(format!(
                    "expected 1, true or yes (on) or 0, false or no (off), got {other:?}"
                )),
                "{other:?}"
            );
        }
    }

    #[test]
    fn a_crm_sink_is_embedded_or_a_grpc_url() {
        assert_eq!("embedded".parse(), Ok(CrmSink::Embedded));
        assert_eq!(
            "grpc://crm:50052".parse(),
            Ok(CrmSink::Host("grpc://crm:50052".into()))
        );
        assert_eq!(DEFAULT_CRM_SINK.to_string().parse(), Ok(DEFAULT_CRM_SINK));
        let err = "crm:50052".parse::<CrmSink>().unwrap_err();
        assert!(err.starts_with("--crm-sink (ERPSYNC_CRM_SINK): "), "{err}");
    }
}
