//! The `erpsync` command line: `serve`, provisioning commands that work on the database
//! directly (`migrate`, `tenant`, `token`; the tenant and token ones also through a
//! running server's Admin service with `--server`), and client commands that call a
//! running server over gRPC (`overview`, `sync-now`, `logs`, `export`, `deletes`).

mod admin;
mod client;
mod deletes;
mod progress;
mod reconciliation;
mod remote;
mod trace;

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use self::client::ServerArgs;
use crate::config::{self as cfg, setting, Config, CrmSink, LogFormat};
use crate::worker::delivery;

/// erpsync — runs and watches a CRM's ERP integrations.
#[derive(Debug, Parser)]
#[command(name = "erpsync", version, about)]
pub struct Cli {
    /// How log lines are written to stderr.
    #[arg(
        long = setting::LOG_FORMAT.flag,
        env = setting::LOG_FORMAT.env,
        global = true,
        value_enum,
        default_value_t = cfg::DEFAULT_LOG_FORMAT
    )]
    pub log_format: LogFormat,
    /// Database: sqlite://PATH?mode=rwc (embedded) or postgres://USER@HOST/DB. Its value
    /// from the environment is not shown: it may hold a password.
    #[arg(
        long = setting::DATABASE_URL.flag,
        env = setting::DATABASE_URL.env,
        hide_env_values = true,
        global = true,
        default_value = cfg::DEFAULT_DATABASE_URL
    )]
    database_url: String,
    /// The key View source URLs are sealed with at rest: 64 hex digits
    /// (`openssl rand -hex 32`). Prefer the environment or --secret-key-file to a flag.
    #[arg(
        long = setting::SECRET_KEY.flag,
        env = setting::SECRET_KEY.env,
        hide_env_values = true,
        global = true,
        conflicts_with = "secret_key_file"
    )]
    secret_key: Option<String>,
    /// A file holding the secret key (see --secret-key).
    #[arg(
        long = setting::SECRET_KEY_FILE.flag,
        env = setting::SECRET_KEY_FILE.env,
        global = true
    )]
    secret_key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves gRPC on one port until SIGINT/SIGTERM; migrates the database first.
    Serve(Box<ServeArgs>),
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
    /// Lists and resolves the deletions the delete guard held, on a running server.
    Deletes {
        #[command(subcommand)]
        command: deletes::DeletesCommand,
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
    /// Prints one record's story from a running server (GetRecordTrace), newest first:
    /// the requests that carried it, accepted or rejected, the runs that held, delivered
    /// or deleted it, what is staged and in the CRM now, and a company's categories.
    Trace {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The record's ERP table (company, contact, invoice, …).
        #[arg(long)]
        table: String,
        /// The record's external id.
        #[arg(long)]
        id: String,
        #[command(flatten)]
        server: ServerArgs,
    },
}

/// `erpsync serve`'s flags; each also read from its environment variable
/// ([`crate::config::setting`]), defaults from [`crate::config`].
#[derive(Debug, Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long = setting::LISTEN.flag, env = setting::LISTEN.env, default_value = cfg::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Largest accepted ingestion request (HTTP body or gRPC message), in bytes.
    #[arg(long = setting::MAX_BODY_BYTES.flag, env = setting::MAX_BODY_BYTES.env, default_value_t = cfg::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Most records in one pushed batch.
    #[arg(long = setting::MAX_RECORDS.flag, env = setting::MAX_RECORDS.env, default_value_t = cfg::DEFAULT_MAX_RECORDS)]
    max_records: usize,
    /// Most pushes in flight at once (batches read and held in memory; more wait a moment,
    /// then are answered busy); 0: the database pool less the connections kept for runs.
    #[arg(long = setting::MAX_INGEST_IN_FLIGHT.flag, env = setting::MAX_INGEST_IN_FLIGHT.env, default_value_t = cfg::DEFAULT_MAX_INGEST_IN_FLIGHT)]
    max_ingest_in_flight: usize,
    /// Logged request bodies longer than this are stored cut (marked), in bytes.
    #[arg(long = setting::REQUEST_LOG_BODY_CAP.flag, env = setting::REQUEST_LOG_BODY_CAP.env, default_value_t = cfg::DEFAULT_LOG_BODY_CAP)]
    request_log_body_cap: usize,
    /// Request-log rows older than this many days are deleted; never fewer days than the
    /// Histórico export covers.
    #[arg(long = setting::REQUEST_LOG_RETENTION_DAYS.flag, env = setting::REQUEST_LOG_RETENTION_DAYS.env, default_value_t = cfg::DEFAULT_RETENTION_DAYS)]
    request_log_retention_days: u32,
    /// Days a tenant's runs are kept with their stages, tables and events (unless the
    /// tenant's run_history_days says otherwise); its newest 30 runs are always kept.
    #[arg(long = setting::RUN_HISTORY_DAYS.flag, env = setting::RUN_HISTORY_DAYS.env, default_value_t = cfg::DEFAULT_RUN_HISTORY_DAYS)]
    run_history_days: u32,
    /// Days a tenant's ABC reports and category changes are kept (unless the tenant's
    /// abc_history_days says otherwise); the report in force and each company's latest
    /// change are always kept.
    #[arg(long = setting::ABC_HISTORY_DAYS.flag, env = setting::ABC_HISTORY_DAYS.env, default_value_t = cfg::DEFAULT_ABC_HISTORY_DAYS)]
    abc_history_days: u32,
    /// Seconds a StreamLogs follower waits without events before it sends a heartbeat.
    #[arg(long = setting::LOG_HEARTBEAT_SECS.flag, env = setting::LOG_HEARTBEAT_SECS.env, default_value_t = cfg::DEFAULT_LOG_HEARTBEAT.as_secs())]
    log_heartbeat_secs: u64,
    /// Where runs deliver: "embedded" (erpsync's own CRM tables) or the host's
    /// CrmSink service, grpc://host:port in clear or grpcs://host:port over TLS.
    #[arg(long = setting::CRM_SINK.flag, env = setting::CRM_SINK.env, default_value_t = cfg::DEFAULT_CRM_SINK)]
    crm_sink: CrmSink,
    /// CA (PEM) that signs a grpcs:// sink's certificate (default: the system's roots).
    #[arg(long = setting::CRM_SINK_CA.flag, env = setting::CRM_SINK_CA.env)]
    crm_sink_ca: Option<std::path::PathBuf>,
    /// erpsync's client certificate (PEM) for a grpcs:// sink that asks for one.
    #[arg(long = setting::CRM_SINK_CERT.flag, env = setting::CRM_SINK_CERT.env, requires = "crm_sink_key")]
    crm_sink_cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long = setting::CRM_SINK_KEY.flag, env = setting::CRM_SINK_KEY.env, requires = "crm_sink_cert")]
    crm_sink_key: Option<std::path::PathBuf>,
    /// Secret sent to the sink as `authorization: Bearer …` on every call, so the host
    /// knows its erpsync (prefer the variable or the file: arguments show in `ps`).
    #[arg(
        long = setting::CRM_SINK_TOKEN.flag,
        env = setting::CRM_SINK_TOKEN.env,
        hide_env_values = true,
        conflicts_with = "crm_sink_token_file"
    )]
    crm_sink_token: Option<String>,
    /// A file holding the sink's secret (surrounding whitespace ignored).
    #[arg(long = setting::CRM_SINK_TOKEN_FILE.flag, env = setting::CRM_SINK_TOKEN_FILE.env)]
    crm_sink_token_file: Option<std::path::PathBuf>,
    /// How runs deliver to the sink and retry.
    #[command(flatten)]
    delivery: DeliveryArgs,
    /// A database server tenants may name as a View source: HOST:PORT, or HOST for
    /// any port (repeat, or comma-separated in the environment). None by default.
    #[arg(
        long = setting::VIEW_ALLOW_HOST.flag,
        env = setting::VIEW_ALLOW_HOST.env,
        value_delimiter = ','
    )]
    view_allow_hosts: Vec<crate::domain::view_source::HostPort>,
    /// A folder whose SQLite files tenants may name as View sources (repeat, or
    /// comma-separated in the environment). None by default.
    #[arg(
        long = setting::VIEW_SQLITE_DIR.flag,
        env = setting::VIEW_SQLITE_DIR.env,
        value_delimiter = ','
    )]
    view_sqlite_dirs: Vec<std::path::PathBuf>,
    /// Most connections open at once; one more is closed as soon as it is accepted.
    #[arg(long = setting::MAX_CONNECTIONS.flag, env = setting::MAX_CONNECTIONS.env, default_value_t = cfg::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// Most connections open at once from one client address; one more is closed as
    /// soon as it is accepted.
    #[arg(long = setting::MAX_PER_ADDRESS.flag, env = setting::MAX_PER_ADDRESS.env, default_value_t = cfg::DEFAULT_MAX_PER_ADDRESS)]
    max_connections_per_address: usize,
    /// A connection none of whose calls passed authentication (or asked health or
    /// reflection) within this many seconds is closed.
    #[arg(long = setting::FIRST_CALL_TIMEOUT_SECS.flag, env = setting::FIRST_CALL_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_FIRST_CALL_TIMEOUT.as_secs())]
    first_call_timeout_secs: u64,
    /// A TLS handshake must finish within this many seconds.
    #[arg(long = setting::HANDSHAKE_TIMEOUT_SECS.flag, env = setting::HANDSHAKE_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_HANDSHAKE_TIMEOUT.as_secs())]
    tls_handshake_timeout_secs: u64,
    /// A connection with no call open, or no byte either way, for this many seconds is
    /// closed (HTTP/2: GOAWAY, whatever pings it answers); longer than
    /// --request-timeout-secs.
    #[arg(long = setting::IDLE_TIMEOUT_SECS.flag, env = setting::IDLE_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_IDLE_TIMEOUT.as_secs())]
    idle_timeout_secs: u64,
    /// A call must start answering within this many seconds.
    #[arg(long = setting::REQUEST_TIMEOUT_SECS.flag, env = setting::REQUEST_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_REQUEST_TIMEOUT.as_secs())]
    request_timeout_secs: u64,
    /// On SIGTERM (or Ctrl-C) the replica drains: health NOT_SERVING, no new runs, streams
    /// closed with a retry hint; its runs get this many seconds to finish, then are
    /// handed over to another replica (0: at once). A second SIGTERM ends the drain.
    #[arg(long = setting::DRAIN_SECS.flag, env = setting::DRAIN_SECS.env, default_value_t = cfg::DEFAULT_DRAIN.as_secs())]
    drain_secs: u64,
    /// A call waits this many seconds for a PostgreSQL connection (a new one
    /// included) before it answers UNAVAILABLE / 503; the health probe as long.
    #[arg(long = setting::DATABASE_TIMEOUT_SECS.flag, env = setting::DATABASE_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_DATABASE_TIMEOUT.as_secs())]
    database_timeout_secs: u64,
    /// An HTTP push's body must arrive within this many seconds (408 otherwise);
    /// shorter than --request-timeout-secs.
    #[arg(long = setting::BODY_TIMEOUT_SECS.flag, env = setting::BODY_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_BODY_TIMEOUT.as_secs())]
    body_timeout_secs: u64,
    /// Failed authentications a client address (an IPv6 /64) may make per second, bursts
    /// of twice that; past them its calls are refused before any token is looked up (0:
    /// no limit).
    #[arg(long = setting::FAILED_AUTH_PER_SEC.flag, env = setting::FAILED_AUTH_PER_SEC.env, default_value_t = cfg::DEFAULT_FAILED_AUTH_PER_SEC)]
    failed_auth_per_sec: u32,
    /// Failed authentications the whole server takes per second from all addresses,
    /// bursts of twice that; past them every call is refused until it refills (0: off).
    #[arg(long = setting::FAILED_AUTH_GLOBAL_PER_SEC.flag, env = setting::FAILED_AUTH_GLOBAL_PER_SEC.env, default_value_t = cfg::DEFAULT_FAILED_AUTH_GLOBAL_PER_SEC)]
    failed_auth_global_per_sec: u32,
    /// Pushes a token may make per second, bursts of twice that (0: no limit).
    #[arg(long = setting::PUSHES_PER_SEC.flag, env = setting::PUSHES_PER_SEC.env, default_value_t = cfg::DEFAULT_PUSHES_PER_SEC)]
    pushes_per_sec: u32,
    /// Log streams (StreamLogs) a tenant may hold open at once.
    #[arg(long = setting::STREAMS_PER_TENANT.flag, env = setting::STREAMS_PER_TENANT.env, default_value_t = cfg::DEFAULT_STREAMS_PER_TENANT)]
    streams_per_tenant: usize,
    /// Exports (ExportHistory) a tenant may run at once.
    #[arg(long = setting::EXPORTS_PER_TENANT.flag, env = setting::EXPORTS_PER_TENANT.env, default_value_t = cfg::DEFAULT_EXPORTS_PER_TENANT)]
    exports_per_tenant: usize,
    /// Alert feeds (WatchAlerts) a token may hold open at once.
    #[arg(long = setting::ALERT_STREAMS_PER_CALLER.flag, env = setting::ALERT_STREAMS_PER_CALLER.env, default_value_t = cfg::DEFAULT_ALERT_STREAMS_PER_CALLER)]
    alert_streams_per_caller: usize,
    /// Which pages may frame the `/ui/` page: Content-Security-Policy `frame-ancestors`
    /// sources separated by spaces ('self', https://crm.example.com, or 'none').
    #[arg(long = setting::UI_FRAME_ANCESTORS.flag, env = setting::UI_FRAME_ANCESTORS.env, default_value = cfg::DEFAULT_UI_FRAME_ANCESTORS)]
    ui_frame_ancestors: String,
    /// A bearer token `GET /metrics` requires (at least 16 characters); open without.
    #[arg(long = setting::METRICS_TOKEN.flag, env = setting::METRICS_TOKEN.env, hide_env_values = true)]
    metrics_token: Option<String>,
    /// Add a `tenant` label to the per-tenant metrics (runs, records, request-log bytes,
    /// alerts): one series per tenant, for servers with few tenants.
    #[arg(long = setting::METRICS_TENANT_LABEL.flag, env = setting::METRICS_TENANT_LABEL.env, value_parser = cfg::parse_bool)]
    metrics_tenant_label: bool,
    /// TLS certificate chain (PEM) for gRPC and HTTP on the one port.
    #[arg(long = setting::TLS_CERT.flag, env = setting::TLS_CERT.env, requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The certificate's private key (PEM).
    #[arg(long = setting::TLS_KEY.flag, env = setting::TLS_KEY.env, requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// CA (PEM) whose client certificates every connection must present (mutual TLS).
    #[arg(long = setting::TLS_CLIENT_CA.flag, env = setting::TLS_CLIENT_CA.env, requires = "tls_cert")]
    tls_client_ca: Option<std::path::PathBuf>,
    /// Serve plaintext beyond loopback (behind a TLS-terminating proxy); logs a warning.
    #[arg(long = setting::INSECURE.flag, env = setting::INSECURE.env, value_parser = cfg::parse_bool)]
    insecure: bool,
}

impl ServeArgs {
    /// The configuration these flags make, with the global settings, and where runs
    /// deliver; checked by [`Config::validate`].
    fn config(
        self,
        database_url: String,
        secret_key: Option<crate::domain::secret::SecretKey>,
    ) -> anyhow::Result<(Config, CrmSink)> {
        let token = match (self.crm_sink_token, &self.crm_sink_token_file) {
            (Some(token), _) => Some(token),
            (None, Some(path)) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        anyhow::anyhow!("{}: {}: {e}", setting::CRM_SINK_TOKEN_FILE, path.display())
                    })?
                    .trim()
                    .to_owned(),
            ),
            (None, None) => None,
        };
        let config = Config {
            listen: self.listen,
            database_url,
            database_timeout: Duration::from_secs(self.database_timeout_secs),
            limits: crate::ingest::Limits {
                max_body_bytes: self.max_body_bytes,
                max_records: self.max_records,
                log_body_cap: self.request_log_body_cap,
                body_timeout: Duration::from_secs(self.body_timeout_secs),
                max_in_flight: self.max_ingest_in_flight,
            },
            request_log_retention_days: self.request_log_retention_days,
            history_retention: crate::domain::retention::Defaults {
                run_history_days: self.run_history_days,
                abc_history_days: self.abc_history_days,
            },
            log_heartbeat: Duration::from_secs(self.log_heartbeat_secs),
            view_sources: crate::domain::view_source::SourcePolicy {
                hosts: self.view_allow_hosts,
                sqlite_dirs: self.view_sqlite_dirs,
            },
            secret_key,
            conn: crate::conn::ConnLimits {
                max_connections: self.max_connections,
                max_per_address: self.max_connections_per_address,
                idle_timeout: Duration::from_secs(self.idle_timeout_secs),
                first_call_timeout: Duration::from_secs(self.first_call_timeout_secs),
                handshake_timeout: Duration::from_secs(self.tls_handshake_timeout_secs),
            },
            request_timeout: Duration::from_secs(self.request_timeout_secs),
            drain: Duration::from_secs(self.drain_secs),
            rate_limits: crate::throttle::RateLimits {
                failed_auth_per_sec: self.failed_auth_per_sec,
                failed_auth_global_per_sec: self.failed_auth_global_per_sec,
                pushes_per_sec: self.pushes_per_sec,
                streams_per_tenant: self.streams_per_tenant,
                exports_per_tenant: self.exports_per_tenant,
                alert_streams_per_caller: self.alert_streams_per_caller,
            },
            tls: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| crate::conn::TlsFiles {
                    cert,
                    key,
                    client_ca: self.tls_client_ca,
                }),
            insecure: self.insecure,
            delivery: self.delivery.policy(),
            crm_sink_access: cfg::SinkAccess {
                ca: self.crm_sink_ca,
                identity: self.crm_sink_cert.zip(self.crm_sink_key),
                token,
            },
            retries: self.delivery.retries(),
            // Out of range (then refused by validation) when too long for a duration.
            run_lease: i64::try_from(self.delivery.run_lease_secs)
                .ok()
                .and_then(chrono::Duration::try_seconds)
                .unwrap_or(chrono::Duration::MAX),
            ui_frame_ancestors: self.ui_frame_ancestors,
            metrics_token: self.metrics_token,
            metrics_tenant_label: self.metrics_tenant_label,
            // No flags: the scheduler's tick, the feeds' poll fallback and the export's
            // limits.
            ..Config::default()
        };
        Ok((config, self.crm_sink))
    }
}

/// What the command line asks for.
pub enum Task {
    /// Serve with this configuration, delivering to this CRM sink.
    Serve(Box<crate::config::Config>, CrmSink),
    /// Another command.
    Command(Box<Cli>),
}

impl Cli {
    /// The secret key from --secret-key / ERPSYNC_SECRET_KEY or --secret-key-file.
    fn secret_key(&self) -> anyhow::Result<Option<crate::domain::secret::SecretKey>> {
        let (text, from) = match (&self.secret_key, &self.secret_key_file) {
            (Some(text), _) => (text.clone(), setting::SECRET_KEY),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("{}: {}: {e}", setting::SECRET_KEY_FILE, path.display())
                })?;
                (text, setting::SECRET_KEY_FILE)
            }
            (None, None) => return Ok(None),
        };
        crate::domain::secret::SecretKey::parse(&text)
            .map(Some)
            .map_err(|e| anyhow::anyhow!("{from}: {e}"))
    }

    /// What the command line asks for: the server (which the binary starts, see
    /// [`crate::app::serve`]), or another command, which [`Cli::run`] carries out.
    pub fn task(self) -> anyhow::Result<Task> {
        let secret_key = self.secret_key();
        match self.command {
            Command::Serve(args) => {
                let (config, crm_sink) = args.config(self.database_url, secret_key?)?;
                config.validate().map_err(anyhow::Error::msg)?;
                if let CrmSink::Host(url) = &crm_sink {
                    // Checked (its files read) before anything starts; built over the
                    // database once open.
                    crate::grpc::crm_sink_client::SinkTarget::new(url, &config.crm_sink_access)?;
                }
                Ok(Task::Serve(Box::new(config), crm_sink))
            }
            command => Ok(Task::Command(Box::new(Self { command, ..self }))),
        }
    }

    /// Runs a command other than `serve`.
    pub async fn run(self) -> anyhow::Result<()> {
        let secret_key = self.secret_key();
        match self.command {
            Command::Serve(_) => anyhow::bail!("serve is started by the binary (Cli::task)"),
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
            Command::Deletes { command } => deletes::run(command).await,
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
            Command::Trace {
                tenant,
                table,
                id,
                server,
            } => {
                let args = trace::TraceArgs { tenant, table, id };
                trace::trace(&server.server, &server.token, args).await
            }
        }
    }
}

/// `serve`'s delivery settings (see [`crate::worker::delivery`]).
#[derive(Debug, Clone, Args)]
pub struct DeliveryArgs {
    /// Records per call to the CRM sink.
    #[arg(long = setting::SINK_BATCH.flag, env = setting::SINK_BATCH.env, default_value_t = cfg::DEFAULT_SINK_BATCH)]
    sink_batch: usize,
    /// Most attempts per batch, the first included, while the sink fails transiently (0:
    /// as many as --sink-batch-budget-secs allows).
    #[arg(long = setting::SINK_ATTEMPTS.flag, env = setting::SINK_ATTEMPTS.env, default_value_t = cfg::DEFAULT_SINK_ATTEMPTS)]
    sink_attempts: u32,
    /// Wait before a batch's second attempt, in milliseconds; doubled for each next one.
    #[arg(long = setting::SINK_BACKOFF_MS.flag, env = setting::SINK_BACKOFF_MS.env, default_value_t = cfg::DEFAULT_SINK_BACKOFF.as_millis() as u64)]
    sink_backoff_ms: u64,
    /// Longest wait between two attempts, in seconds; at least --sink-backoff-ms.
    #[arg(long = setting::SINK_MAX_BACKOFF_SECS.flag, env = setting::SINK_MAX_BACKOFF_SECS.env, default_value_t = cfg::DEFAULT_SINK_MAX_BACKOFF.as_secs())]
    sink_max_backoff_secs: u64,
    /// Deadline of one call to the sink, in seconds.
    #[arg(long = setting::SINK_CALL_TIMEOUT_SECS.flag, env = setting::SINK_CALL_TIMEOUT_SECS.env, default_value_t = cfg::DEFAULT_SINK_CALL_TIMEOUT.as_secs())]
    sink_call_timeout_secs: u64,
    /// Time a batch is retried for while the sink fails transiently, in seconds: its last
    /// attempt starts within it; then the run fails.
    #[arg(long = setting::SINK_BATCH_BUDGET_SECS.flag, env = setting::SINK_BATCH_BUDGET_SECS.env, default_value_t = cfg::DEFAULT_SINK_BATCH_BUDGET.as_secs())]
    sink_batch_budget_secs: u64,
    /// Automatic retries of a failed run (trigger RETRY; 0: none).
    #[arg(long = setting::RUN_RETRIES.flag, env = setting::RUN_RETRIES.env, default_value_t = cfg::DEFAULT_RUN_RETRIES)]
    run_retries: u32,
    /// Wait after a failed run before its first retry, in seconds; doubled for each next.
    #[arg(long = setting::RUN_RETRY_BACKOFF_SECS.flag, env = setting::RUN_RETRY_BACKOFF_SECS.env, default_value_t = cfg::DEFAULT_RUN_RETRY_BACKOFF.as_secs())]
    run_retry_backoff_secs: u64,
    /// How long a run's lease lives unrenewed, in seconds: a run whose server died
    /// (crashed, killed, cut off from the database) is marked INTERRUPTED and started
    /// again by another replica's scheduler within it; from 1 to 86400.
    #[arg(long = setting::RUN_LEASE_SECS.flag, env = setting::RUN_LEASE_SECS.env, default_value_t = crate::worker::LEASE_TTL.num_seconds().unsigned_abs())]
    run_lease_secs: u64,
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

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    /// The command line, blind to the environment (tests run side by side; none sets
    /// the process environment, and the runner's own must not leak in).
    fn command() -> clap::Command {
        Cli::command()
            .mut_args(|a| a.env(None::<&str>))
            .mut_subcommand("serve", |s| s.mut_args(|a| a.env(None::<&str>)))
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let matches = command().try_get_matches_from(args)?;
        Cli::from_arg_matches(&matches)
    }

    /// The configuration `erpsync serve ARGS…` makes, and where it delivers.
    fn serve(args: &[&str]) -> (Config, CrmSink) {
        let argv: Vec<&str> = ["erpsync", "serve"].iter().chain(args).copied().collect();
        let cli = parse(&argv).expect("parses");
        match cli.command {
            Command::Serve(serve) => serve.config(cli.database_url, None).expect("reads"),
            other => panic!("not serve: {other:?}"),
        }
    }

    /// `serve`'s arguments and the global ones it reads, as clap declares them.
    fn serve_args() -> Vec<clap::Arg> {
        let mut cli = Cli::command();
        cli.build();
        let serve = cli.find_subcommand("serve").expect("serve").clone();
        serve
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .cloned()
            .collect()
    }

    #[test]
    fn every_yes_no_setting_reads_1_0_true_false_yes_no() {
        let switches: Vec<clap::Arg> = serve_args()
            .into_iter()
            .filter(|a| matches!(a.get_action(), clap::ArgAction::SetTrue))
            .collect();
        assert!(!switches.is_empty());
        for arg in switches {
            // The switch's own value parser (what reads its environment variable), fed a
            // value on the command line.
            let id = arg.get_id().clone();
            let flag = format!("--{}", arg.get_long().unwrap());
            let cmd = clap::Command::new("t").arg(arg.action(clap::ArgAction::Set).num_args(1));
            let read = |text: &str| {
                cmd.clone()
                    .try_get_matches_from(["t", flag.as_str(), text])
                    .map(|m| *m.get_one::<bool>(id.as_str()).unwrap())
            };
            for (text, value) in [("1", true), ("YES", true), ("true", true), ("0", false)] {
                assert_eq!(read(text).ok(), Some(value), "{flag} {text}");
            }
            assert!(read("maybe").is_err(), "{flag} maybe");
        }
        assert!(serve(&["--insecure"]).0.insecure);
        assert!(!serve(&[]).0.insecure);
    }

    #[test]
    fn serve_without_flags_makes_the_default_configuration() {
        let (config, sink) = serve(&[]);
        assert_eq!(format!("{config:?}"), format!("{:?}", Config::default()));
        assert_eq!(sink, cfg::DEFAULT_CRM_SINK);
        assert_eq!(config.validate(), Ok(()));
        let cli = parse(&["erpsync", "serve"]).unwrap();
        assert_eq!(cli.log_format, cfg::DEFAULT_LOG_FORMAT);
    }

    #[test]
    fn flags_set_every_part_of_the_configuration() {
        let (config, sink) = serve(&[
            "--listen=0.0.0.0:7000",
            "--max-body-bytes=2048",
            "--sink-attempts=2",
            "--sink-backoff-ms=250",
            "--run-retries=0",
            "--request-log-retention-days=8",
            "--view-allow-host=erp:5432",
            "--view-allow-host=db",
            "--crm-sink=grpc://crm:50052",
            "--insecure",
        ]);
        assert_eq!(config.listen, "0.0.0.0:7000".parse().unwrap());
        assert_eq!(config.limits.max_body_bytes, 2048);
        assert_eq!(config.delivery.attempts, 2);
        assert_eq!(config.delivery.backoff, Duration::from_millis(250));
        assert_eq!(config.retries.max, 0);
        assert_eq!(config.request_log_retention_days, 8);
        assert_eq!(config.view_sources.hosts.len(), 2);
        assert!(config.insecure);
        assert_eq!(sink, CrmSink::Host("grpc://crm:50052".into()));
    }

    #[test]
    fn a_crm_sink_that_is_no_url_is_refused_at_parse() {
        let err = parse(&["erpsync", "serve", "--crm-sink", "crm:50052"]).unwrap_err();
        assert!(
            err.to_string().contains("--crm-sink (ERPSYNC_CRM_SINK)"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_value_is_refused_naming_the_flag_and_its_variable() {
        let (config, _) = serve(&["--sink-batch=0"]);
        assert_eq!(
            config.validate().unwrap_err(),
            "--sink-batch (ERPSYNC_SINK_BATCH): must be positive, got 0"
        );
        let (config, _) = serve(&["--sink-attempts=0"]);
        assert_eq!(config.validate(), Ok(()), "0 attempts: only the budget");
        let (config, _) = serve(&["--idle-timeout-secs=60", "--request-timeout-secs=60"]);
        assert!(config
            .validate()
            .unwrap_err()
            .starts_with("--idle-timeout-secs (ERPSYNC_IDLE_TIMEOUT_SECS): "));
    }

    #[test]
    fn every_serve_setting_is_read_from_its_environment_variable() {
        let declared: Vec<(String, String)> = serve_args()
            .iter()
            .map(|a| {
                let flag = a.get_long().expect("a long flag").to_owned();
                let env = a
                    .get_env()
                    .unwrap_or_else(|| panic!("--{flag} has no environment variable"))
                    .to_string_lossy()
                    .into_owned();
                (flag, env)
            })
            .collect();
        for (flag, env) in &declared {
            assert!(
                env.starts_with("ERPSYNC_") || env == "DATABASE_URL",
                "--{flag} reads {env}"
            );
        }
        for kept in [
            ("listen", "ERPSYNC_LISTEN"),
            ("database-url", "DATABASE_URL"),
            ("log-format", "ERPSYNC_LOG_FORMAT"),
            ("secret-key", "ERPSYNC_SECRET_KEY"),
        ] {
            assert!(
                declared.contains(&(kept.0.to_owned(), kept.1.to_owned())),
                "{kept:?}"
            );
        }
    }

    #[test]
    fn secrets_from_the_environment_are_not_shown_in_help() {
        for arg in serve_args() {
            let flag = arg.get_long().unwrap();
            if matches!(flag, "secret-key" | "database-url") {
                assert!(arg.is_hide_env_values_set(), "--{flag} shows its value");
            }
        }
    }

    /// The README's configuration table: (flag cell, environment cell, default cell) per
    /// row.
    fn readme_rows() -> Vec<(String, String, String)> {
        let readme = include_str!("../../README.md");
        let section = readme
            .split("\n## Configuration\n")
            .nth(1)
            .expect("a Configuration section");
        let section = section.split("\n## ").next().unwrap();
        section
            .lines()
            .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
            .map(|l| {
                let cells: Vec<String> = l
                    .replace("\\|", "\u{0}")
                    .split('|')
                    .map(|c| c.trim().replace('\u{0}', "|"))
                    .collect();
                assert!(cells.len() >= 5, "a row of four cells: {l}");
                (cells[2].clone(), cells[3].clone(), cells[4].clone())
            })
            .collect()
    }

    /// Whether `cell` names `--flag` (and not a longer flag that starts with it).
    fn names_flag(cell: &str, flag: &str) -> bool {
        let needle = format!("--{flag}");
        cell.match_indices(&needle).any(|(i, _)| {
            !cell[i + needle.len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '-')
        })
    }

    #[test]
    fn the_readme_lists_every_serve_setting_with_the_code_default() {
        let rows = readme_rows();
        for arg in serve_args() {
            let flag = arg.get_long().unwrap();
            let env = arg.get_env().unwrap().to_string_lossy().into_owned();
            let row = rows
                .iter()
                .find(|(flags, _, _)| names_flag(flags, flag))
                .unwrap_or_else(|| panic!("README's configuration table has no --{flag}"));
            let (_, envs, default) = row;
            assert!(
                envs.contains(&format!("`{env}`")),
                "README: --{flag} is read from {env}, the table says {envs}"
            );
            let defaults: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let expected = match (arg.get_action(), defaults.as_slice()) {
                (clap::ArgAction::SetTrue, _) => "off".to_owned(),
                (_, []) => "none".to_owned(),
                (_, [one]) => format!("`{one}`"),
                (_, many) => panic!("--{flag} has several defaults: {many:?}"),
            };
            assert!(
                default.starts_with(&expected),
                "README: --{flag} defaults to {expected}, the table says {default}"
            );
        }
    }
}
