//! The `erpsync` command line: `serve`, provisioning commands that work on the database
//! directly (`migrate`, `tenant`, `token`), and client commands that call a running
//! server over gRPC (`overview`, `sync-now`, `logs`, `export`).

mod admin;
mod client;
mod progress;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, LogFormat, DEFAULT_LISTEN};
use crate::storage::DEFAULT_DATABASE_URL;
use crate::worker::delivery;

/// erpsync — runs and watches a CRM's ERP integrations.
#[derive(Debug, Parser)]
#[command(name = "erpsync", version, about)]
pub struct Cli {
    /// How log lines are written to stderr.
    #[arg(
        long,
        global = true,
        env = "ERPSYNC_LOG_FORMAT",
        value_enum,
        default_value = "human"
    )]
    pub log_format: LogFormat,
    /// Database: sqlite://PATH?mode=rwc (the embedded default) or postgres://USER@HOST/DB.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    database_url: String,
    /// The key View source URLs are sealed with at rest: 64 hex digits
    /// (`openssl rand -hex 32`). Prefer the environment or --secret-key-file to a flag.
    #[arg(
        long,
        global = true,
        env = "ERPSYNC_SECRET_KEY",
        hide_env_values = true,
        conflicts_with = "secret_key_file"
    )]
    secret_key: Option<String>,
    /// A file holding the secret key (see --secret-key).
    #[arg(long, global = true, env = "ERPSYNC_SECRET_KEY_FILE")]
    secret_key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct ServerArgs {
    /// Address of a running erpsync.
    #[arg(long, env = "ERPSYNC_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,
    /// A crm token (see `erpsync token issue`).
    #[arg(long, env = "ERPSYNC_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves gRPC on one port until SIGINT/SIGTERM; migrates the database first.
    Serve {
        /// Address to listen on.
        #[arg(long, env = "ERPSYNC_LISTEN", default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Largest accepted ingestion request (HTTP body or gRPC message), in bytes.
        #[arg(long, env = "ERPSYNC_MAX_BODY_BYTES", default_value_t = crate::ingest::DEFAULT_MAX_BODY_BYTES)]
        max_body_bytes: usize,
        /// Most records in one pushed batch.
        #[arg(long, env = "ERPSYNC_MAX_RECORDS", default_value_t = crate::ingest::DEFAULT_MAX_RECORDS)]
        max_records: usize,
        /// Logged request bodies longer than this are stored cut (marked), in bytes.
        #[arg(long, env = "ERPSYNC_REQUEST_LOG_BODY_CAP", default_value_t = crate::ingest::DEFAULT_LOG_BODY_CAP)]
        request_log_body_cap: usize,
        /// Request-log rows older than this many days are deleted (at least 7).
        #[arg(long, env = "ERPSYNC_REQUEST_LOG_RETENTION_DAYS", default_value_t = crate::config::DEFAULT_RETENTION_DAYS)]
        request_log_retention_days: u32,
        /// Seconds a StreamLogs follower waits without events before it sends a heartbeat.
        #[arg(long, env = "ERPSYNC_LOG_HEARTBEAT_SECS", default_value_t = crate::config::DEFAULT_LOG_HEARTBEAT.as_secs())]
        log_heartbeat_secs: u64,
        /// Where runs deliver: "embedded" (erpsync's own CRM tables) or the host's
        /// CrmSink service, grpc://host:port.
        #[arg(long, env = "ERPSYNC_CRM_SINK", default_value = "embedded")]
        crm_sink: String,
        /// How runs deliver to the sink and retry.
        #[command(flatten)]
        delivery: DeliveryArgs,
        /// A database server tenants may name as a View source: HOST:PORT, or HOST for
        /// any port (repeat, or comma-separated in the environment). None by default.
        #[arg(
            long = "view-allow-host",
            env = "ERPSYNC_VIEW_ALLOW_HOSTS",
            value_delimiter = ','
        )]
        view_allow_hosts: Vec<crate::domain::view_source::HostPort>,
        /// A folder whose SQLite files tenants may name as View sources (repeat, or
        /// comma-separated in the environment). None by default.
        #[arg(
            long = "view-sqlite-dir",
            env = "ERPSYNC_VIEW_SQLITE_DIRS",
            value_delimiter = ','
        )]
        view_sqlite_dirs: Vec<std::path::PathBuf>,
        /// Most connections open at once; one more is closed as soon as it is accepted.
        #[arg(long, env = "ERPSYNC_MAX_CONNECTIONS", default_value_t = crate::conn::DEFAULT_MAX_CONNECTIONS)]
        max_connections: usize,
        /// A connection with no byte either way for this many seconds is closed.
        #[arg(long, env = "ERPSYNC_IDLE_TIMEOUT_SECS", default_value_t = crate::conn::DEFAULT_IDLE_TIMEOUT.as_secs())]
        idle_timeout_secs: u64,
        /// A call must start answering within this many seconds.
        #[arg(long, env = "ERPSYNC_REQUEST_TIMEOUT_SECS", default_value_t = crate::config::DEFAULT_REQUEST_TIMEOUT.as_secs())]
        request_timeout_secs: u64,
        /// A call waits this many seconds for a PostgreSQL connection (a new one
        /// included) before it answers UNAVAILABLE / 503; the health probe as long.
        #[arg(long, env = "ERPSYNC_DATABASE_TIMEOUT_SECS", default_value_t = crate::storage::DEFAULT_DATABASE_TIMEOUT.as_secs())]
        database_timeout_secs: u64,
        /// An HTTP push's body must arrive within this many seconds (408 otherwise).
        #[arg(long, env = "ERPSYNC_BODY_TIMEOUT_SECS", default_value_t = crate::ingest::DEFAULT_BODY_TIMEOUT.as_secs())]
        body_timeout_secs: u64,
        /// Failed authentications a client address may make per second (0: no limit).
        #[arg(long, env = "ERPSYNC_FAILED_AUTH_PER_SEC", default_value_t = crate::throttle::DEFAULT_FAILED_AUTH_PER_SEC)]
        failed_auth_per_sec: u32,
        /// Log streams (StreamLogs) a tenant may hold open at once.
        #[arg(long, env = "ERPSYNC_STREAMS_PER_TENANT", default_value_t = crate::throttle::DEFAULT_STREAMS_PER_TENANT)]
        streams_per_tenant: usize,
        /// Exports (ExportHistory) a tenant may run at once.
        #[arg(long, env = "ERPSYNC_EXPORTS_PER_TENANT", default_value_t = crate::throttle::DEFAULT_EXPORTS_PER_TENANT)]
        exports_per_tenant: usize,
        /// TLS certificate chain (PEM) for gRPC and HTTP on the one port.
        #[arg(long, env = "ERPSYNC_TLS_CERT", requires = "tls_key")]
        tls_cert: Option<std::path::PathBuf>,
        /// The certificate's private key (PEM).
        #[arg(long, env = "ERPSYNC_TLS_KEY", requires = "tls_cert")]
        tls_key: Option<std::path::PathBuf>,
        /// CA (PEM) whose client certificates every connection must present (mutual TLS).
        #[arg(long, env = "ERPSYNC_TLS_CLIENT_CA", requires = "tls_cert")]
        tls_client_ca: Option<std::path::PathBuf>,
        /// Serve plaintext beyond loopback (behind a TLS-terminating proxy); logs a warning.
        #[arg(long, env = "ERPSYNC_INSECURE")]
        insecure: bool,
        /// Pushes a token may make per second, bursts of twice that (0: no limit).
        #[arg(long, env = "ERPSYNC_PUSHES_PER_SEC", default_value_t = crate::throttle::DEFAULT_PUSHES_PER_SEC)]
        pushes_per_sec: u32,
    },
    /// Applies pending database migrations and exits.
    Migrate,
    /// Creates and inspects tenants.
    Tenant {
        #[command(subcommand)]
        command: admin::TenantCommand,
    },
    /// Issues and revokes API tokens.
    Token {
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Starts a sync run of a tenant on a running server and follows it to its end.
    SyncNow {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Downloads a tenant's Histórico export (.xlsx) from a running server.
    Export {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// First day, YYYY-MM-DD in the tenant's zone.
        #[arg(long)]
        from: String,
        /// Last day (included), YYYY-MM-DD; at most 7 days after --from.
        #[arg(long)]
        to: String,
        /// An ERP table to export (repeat for several); all tables when absent.
        #[arg(long = "table")]
        tables: Vec<String>,
        /// What to export.
        #[arg(long, value_enum, default_value = "requests")]
        kind: client::ExportKindArg,
        /// The file to write (or a folder: the server's file name is used in it).
        #[arg(short = 'o', long = "output")]
        output: std::path::PathBuf,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Prints a tenant's overview from a running server.
    Overview {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Prints a tenant's log from a running server (StreamLogs); with --follow, stays
    /// open and prints new events live, resuming where it was after a dropped connection.
    Logs {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Stay open and print new events as they are written (Ctrl-C ends).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only this run's events.
        #[arg(long)]
        run: Option<String>,
        /// Only events at or above this level.
        #[arg(long, value_enum)]
        level: Option<client::LevelArg>,
        /// Only this stage's events (collect, push, abc, …).
        #[arg(long)]
        stage: Option<String>,
        /// Only events about this ERP table.
        #[arg(long)]
        table: Option<String>,
        /// Start after this cursor (as printed with --cursors) instead of the beginning.
        #[arg(long)]
        after: Option<u64>,
        /// Print each event's cursor first.
        #[arg(long)]
        cursors: bool,
        #[command(flatten)]
        server: ServerArgs,
    },
}

impl Cli {
    /// The secret key from --secret-key / ERPSYNC_SECRET_KEY or --secret-key-file.
    fn secret_key(&self) -> anyhow::Result<Option<crate::domain::secret::SecretKey>> {
        use anyhow::Context;
        let text = match (&self.secret_key, &self.secret_key_file) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("--secret-key-file {}", path.display()))?,
            (None, None) => return Ok(None),
        };
        crate::domain::secret::SecretKey::parse(&text)
            .map(Some)
            .map_err(anyhow::Error::msg)
    }

    /// Runs the parsed command.
    pub async fn run(self) -> anyhow::Result<()> {
        let secret_key = self.secret_key();
        match self.command {
            Command::Serve {
                listen,
                max_body_bytes,
                max_records,
                request_log_body_cap,
                request_log_retention_days,
                log_heartbeat_secs,
                crm_sink,
                delivery,
                view_allow_hosts,
                view_sqlite_dirs,
                max_connections,
                idle_timeout_secs,
                request_timeout_secs,
                database_timeout_secs,
                body_timeout_secs,
                failed_auth_per_sec,
                pushes_per_sec,
                streams_per_tenant,
                exports_per_tenant,
                tls_cert,
                tls_key,
                tls_client_ca,
                insecure,
            } => {
                let config = Config {
                    listen,
                    database_url: self.database_url,
                    database_timeout: Duration::from_secs(database_timeout_secs),
                    limits: crate::ingest::Limits {
                        max_body_bytes,
                        max_records,
                        log_body_cap: request_log_body_cap,
                        body_timeout: Duration::from_secs(body_timeout_secs),
                    },
                    request_log_retention_days,
                    scheduler_tick: crate::worker::scheduler::TICK,
                    run_lease: crate::worker::sync::LEASE_TTL,
                    log_heartbeat: std::time::Duration::from_secs(log_heartbeat_secs),
                    export: crate::export::ExportLimits::default(),
                    view_sources: crate::domain::view_source::SourcePolicy {
                        hosts: view_allow_hosts,
                        sqlite_dirs: view_sqlite_dirs,
                    },
                    secret_key: secret_key?,
                    conn: crate::conn::ConnLimits {
                        max_connections,
                        idle_timeout: Duration::from_secs(idle_timeout_secs),
                    },
                    request_timeout: Duration::from_secs(request_timeout_secs),
                    rate_limits: crate::throttle::RateLimits {
                        failed_auth_per_sec,
                        pushes_per_sec,
                        streams_per_tenant,
                        exports_per_tenant,
                    },
                    tls: tls_cert
                        .zip(tls_key)
                        .map(|(cert, key)| crate::conn::TlsFiles {
                            cert,
                            key,
                            client_ca: tls_client_ca,
                        }),
                    insecure,
                    delivery: delivery.policy(),
                    retries: delivery.retries(),
                };
                config.validate().map_err(anyhow::Error::msg)?;
                let app = if crm_sink == "embedded" {
                    crate::app::build(&config).await?
                } else if crm_sink.starts_with("grpc://") || crm_sink.starts_with("http://") {
                    // Checked before anything starts; built over the database once open.
                    crate::grpc::crm_sink_client::GrpcSink::check_url(&crm_sink)?;
                    let timeout = config.delivery.call_timeout;
                    crate::app::build_with_sink(&config, move |db| {
                        crate::grpc::crm_sink_client::GrpcSink::new(&crm_sink, timeout, db)
                            .map(|s| std::sync::Arc::new(s) as _)
                            .expect("the URL was checked")
                    })
                    .await?
                } else {
                    anyhow::bail!(
                        "--crm-sink must be \"embedded\" or grpc://host:port, got {crm_sink:?}"
                    );
                };
                app.run_until_stopped(crate::app::shutdown_signal()).await?;
                Ok(())
            }
            Command::Migrate => admin::migrate(&self.database_url).await,
            Command::Tenant { command } => {
                admin::tenant(command, &self.database_url, secret_key?).await
            }
            Command::Token { command } => admin::token(command, &self.database_url).await,
            Command::SyncNow { tenant, server } => {
                client::sync_now(&server.server, &server.token, &tenant).await
            }
            Command::Export {
                tenant,
                from,
                to,
                tables,
                kind,
                output,
                server,
            } => {
                client::export(
                    &server.server,
                    &server.token,
                    client::ExportArgs {
                        tenant,
                        from,
                        to,
                        tables,
                        kind,
                        output,
                    },
                )
                .await
            }
            Command::Overview { tenant, server } => {
                client::overview(&server.server, &server.token, &tenant).await
            }
            Command::Logs {
                tenant,
                follow,
                run,
                level,
                stage,
                table,
                after,
                cursors,
                server,
            } => {
                let opts = client::LogsOptions {
                    tenant,
                    follow,
                    run,
                    level,
                    stage,
                    table,
                    after,
                    cursors,
                };
                client::logs(&server.server, &server.token, opts).await
            }
        }
    }
}

/// `serve`'s delivery settings (see [`crate::worker::delivery`]).
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Records per call to the CRM sink.
    #[arg(long, env = "ERPSYNC_SINK_BATCH", default_value_t = delivery::DEFAULT_SINK_BATCH)]
    sink_batch: usize,
    /// Attempts per batch, the first included, while the sink fails transiently.
    #[arg(long, env = "ERPSYNC_SINK_ATTEMPTS", default_value_t = delivery::DEFAULT_SINK_ATTEMPTS)]
    sink_attempts: u32,
    /// Wait before a batch's second attempt, in milliseconds; doubled for each next one.
    #[arg(long, env = "ERPSYNC_SINK_BACKOFF_MS", default_value_t = delivery::DEFAULT_SINK_BACKOFF.as_millis() as u64)]
    sink_backoff_ms: u64,
    /// Longest wait between two attempts, in seconds.
    #[arg(long, env = "ERPSYNC_SINK_MAX_BACKOFF_SECS", default_value_t = delivery::DEFAULT_SINK_MAX_BACKOFF.as_secs())]
    sink_max_backoff_secs: u64,
    /// Deadline of one call to the sink, in seconds.
    #[arg(long, env = "ERPSYNC_SINK_CALL_TIMEOUT_SECS", default_value_t = delivery::DEFAULT_SINK_CALL_TIMEOUT.as_secs())]
    sink_call_timeout_secs: u64,
    /// Time a batch may spend on retries before the run fails, in seconds.
    #[arg(long, env = "ERPSYNC_SINK_BATCH_BUDGET_SECS", default_value_t = delivery::DEFAULT_SINK_BATCH_BUDGET.as_secs())]
    sink_batch_budget_secs: u64,
    /// Automatic retries of a failed run (trigger RETRY; 0: none).
    #[arg(long, env = "ERPSYNC_RUN_RETRIES", default_value_t = delivery::DEFAULT_RUN_RETRIES)]
    run_retries: u32,
    /// Wait after a failed run before its first retry, in seconds; doubled for each next.
    #[arg(long, env = "ERPSYNC_RUN_RETRY_BACKOFF_SECS", default_value_t = delivery::DEFAULT_RUN_RETRY_BACKOFF.as_secs())]
    run_retry_backoff_secs: u64,
}

impl DeliveryArgs {
    fn policy(&self) -> delivery::DeliveryPolicy {
        delivery::DeliveryPolicy {
            batch: self.sink_batch,
            attempts: self.sink_attempts,
            backoff: Duration::from_millis(self.sink_backoff_ms),
            max_backoff: Duration::from_secs(self.sink_max_backoff_secs),
            call_timeout: Duration::from_secs(self.sink_call_timeout_secs),
            batch_budget: Duration::from_secs(self.sink_batch_budget_secs),
        }
    }

    fn retries(&self) -> delivery::RunRetries {
        delivery::RunRetries {
            max: self.run_retries,
            backoff: Duration::from_secs(self.run_retry_backoff_secs),
        }
    }
}
