//! Startup: connect and migrate the database, bind the listener (so callers, tests
//! included, learn the port before serving), then serve until the shutdown future ends.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::config::{Config, CrmSink as CrmSinkSetting};
use crate::domain::secret::redact_url;
use crate::error::Result;
use crate::grpc;
use crate::services::Services;
use crate::storage::Db;
use crate::worker::sink::{CrmSink, EmbeddedSink};

/// A server that is bound and migrated, ready to serve.
pub struct App {
    listener: TcpListener,
    routes: Routes,
    health: grpc::health::Health,
    database_timeout: std::time::Duration,
    services: Services,
    retention_days: u32,
    scheduler_tick: std::time::Duration,
    conn_limits: crate::conn::ConnLimits,
    conn_stats: Arc<crate::conn::ConnStats>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    request_timeout: std::time::Duration,
}

/// Connects to the database, applies migrations and binds the listener; runs deliver to
/// the embedded CRM.
pub async fn build(config: &Config) -> Result<App> {
    build_with_sink(config, |db| Arc::new(EmbeddedSink::new(db))).await
}

/// Like [`build`], with runs delivering to the sink `sink` makes over the database.
pub async fn build_with_sink(
    config: &Config,
    sink: impl FnOnce(Db) -> Arc<dyn CrmSink>,
) -> Result<App> {
    config
        .validate()
        .map_err(crate::error::AppError::InvalidArgument)?;
    // Before anything is counted (the runs a dead server left are, just below).
    crate::metrics::install();
    let tls = config
        .tls
        .as_ref()
        .map(crate::conn::tls_acceptor)
        .transpose()?;
    if tls.is_none() && !config.listen.ip().is_loopback() {
        tracing::warn!(
            listen = %config.listen,
            "--insecure: serving plaintext beyond this machine; bearer tokens travel in clear"
        );
    }
    let db = Db::connect_with_timeout(&config.database_url, config.database_timeout).await?;
    db.migrate().await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let views = crate::viewdb::ViewAccess::new(
        config.view_sources.clone(),
        config.secret_key.clone(),
        &config.database_url,
        db.instance_id().await?,
    )?;
    let throttle = crate::throttle::Throttle::new(config.rate_limits);
    let logs =
        crate::logs::LogHub::new(db.clone(), crate::logs::DEFAULT_POLL, config.log_heartbeat);
    let ingestor = crate::ingest::Ingestor::new(db.clone(), config.limits);
    let sinks = crate::worker::tenant_sink::Sinks::new(
        db.clone(),
        sink(db.clone()),
        Some(Arc::new(grpc::crm_sink_client::TenantSinks::new(
            &config.crm_sink_access,
            config.delivery.call_timeout,
            EmbeddedSink::new(db.clone()),
        ))),
        config.secret_key.clone(),
    );
    let alerts = crate::alert_feed::AlertFeed::new(
        db.clone(),
        crate::alert_feed::DEFAULT_POLL,
        throttle.alert_streams.clone(),
    );
    let services = Services {
        db: db.clone(),
        tokens: crate::auth::Tokens::new(db.clone(), throttle.clone()),
        history: crate::history::History::new(db.clone(), sinks.clone()),
        tenants: crate::tenants::Tenants::new(db.clone(), Some(sinks.clone())),
        worker: crate::worker::RunWorker {
            db: db.clone(),
            sinks,
            instance: uuid::Uuid::new_v4().to_string(),
            runs: Default::default(),
            logs: logs.clone(),
            views: views.clone(),
            ingestor: ingestor.clone(),
            delivery: config.delivery,
            retries: config.retries,
            run_lease: config.run_lease,
        },
        ingestor,
        views: crate::worker::view_admin::ViewAdmin::new(db.clone(), views),
        exporter: crate::export::Exporter::new(
            db,
            config.export,
            config.request_log_retention_days,
            throttle.exports.clone(),
        ),
        alerts,
        logs,
        log_streams: throttle.streams.clone(),
    };
    // Runs a stopped process was running are interrupted (in their tenants' logs too);
    // their records stay staged and the scheduler runs them again. On SQLite one server
    // owns the file, so every lease left behind is a dead process's: they go at once. On
    // PostgreSQL other replicas may be alive, so only expired leases count.
    let now = chrono::Utc::now();
    let as_of = if services.db.backend() == sea_orm::DbBackend::Sqlite {
        now + chrono::Duration::days(3650)
    } else {
        now
    };
    crate::worker::sync::interrupt_orphans(&services.worker, now, as_of).await?;
    crate::storage::lease::clear(&services.db, as_of).await?;
    let (routes, health) = grpc::routes(services.clone(), &config.ui_frame_ancestors).await?;
    let crm_sink = services.worker.sinks.server_wide().clone();
    tracing::info!(
        listen = %listener.local_addr().context("listener address")?,
        database = %redact_url(&config.database_url),
        crm_sink = %crm_sink.destination(),
        "erpsync ready"
    );
    // A wrong sink address or certificate shows at start, not at the first run.
    tokio::spawn(async move {
        match crm_sink.probe().await {
            Ok(()) => tracing::debug!(crm_sink = %crm_sink.destination(), "the CRM sink answers"),
            Err(e) => tracing::warn!(
                error = %e,
                "the CRM sink cannot be reached now; runs will retry it"
            ),
        }
    });
    Ok(App {
        listener,
        routes,
        health,
        database_timeout: config.database_timeout,
        services,
        retention_days: config.request_log_retention_days,
        scheduler_tick: config.scheduler_tick,
        conn_limits: config.conn,
        conn_stats: Arc::default(),
        tls,
        request_timeout: config.request_timeout,
    })
}

impl App {
    /// The bound port (useful when the configuration asked for port 0).
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// Connections refused or closed by the limits so far.
    pub fn conn_stats(&self) -> Arc<crate::conn::ConnStats> {
        self.conn_stats.clone()
    }

    /// The services, for tests that call them (or the database) directly.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// Serves gRPC and HTTP/1.1 (the JSON ingestion route) on the one port until
    /// `shutdown` completes, lets in-flight calls finish, then stops the background jobs.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let retention = tokio::spawn(crate::worker::retention::run(
            self.services.db.clone(),
            self.retention_days,
            jobs_stopped.clone(),
        ));
        let checkpoint = tokio::spawn(crate::worker::checkpoint::run(
            self.services.db.clone(),
            jobs_stopped.clone(),
        ));
        let scheduler = tokio::spawn(crate::worker::scheduler::run(
            self.services.worker.clone(),
            std::sync::Arc::new(crate::worker::scheduler::SystemClock),
            self.scheduler_tick,
            jobs_stopped.clone(),
        ));
        let db = self.services.db.clone();
        let ping_within = self.database_timeout;
        let health = tokio::spawn(self.health.follow_database(
            move || {
                let db = db.clone();
                async move { db.ping(ping_within).await }
            },
            self.database_timeout,
            jobs_stopped,
        ));
        // Followed log streams and alert feeds never end by themselves: close them when
        // shutdown starts, or the server would wait for every viewer to hang up.
        let logs = self.services.logs.clone();
        let alerts = self.services.alerts.clone();
        let shutdown = async move {
            shutdown.await;
            logs.close();
            alerts.close();
        };
        let http = crate::conn::Http {
            limits: self.conn_limits,
            request_timeout: self.request_timeout,
        };
        let incoming = crate::conn::incoming(
            self.listener,
            self.conn_limits,
            self.tls,
            self.conn_stats.clone(),
        );
        crate::conn::serve(incoming, self.routes, http, self.conn_stats, shutdown).await;
        let _ = stop_jobs.send(true);
        let _ = scheduler.await;
        // Running syncs stop at their next checkpoint (a stage or page boundary) as
        // INTERRUPTED; the next run resumes from what is still staged.
        let left = self
            .services
            .worker
            .runs
            .stop(std::time::Duration::from_secs(30))
            .await;
        if left > 0 {
            tracing::warn!(
                runs = left,
                "runs still going at shutdown; they will be INTERRUPTED at the next start"
            );
        }
        let _ = retention.await;
        let _ = checkpoint.await;
        let _ = health.await;
        tracing::info!("erpsync stopped");
        Ok(())
    }
}

/// `erpsync serve`: builds the server of `config` delivering to `crm_sink` (its URL and
/// access already checked), and serves until SIGINT or SIGTERM.
pub async fn serve(config: &Config, crm_sink: CrmSinkSetting) -> Result<()> {
    let app = match crm_sink {
        CrmSinkSetting::Embedded => build(config).await?,
        CrmSinkSetting::Host(url) => {
            use crate::grpc::crm_sink_client::{GrpcSink, SinkTarget};
            let target = SinkTarget::new(&url, &config.crm_sink_access)?;
            let timeout = config.delivery.call_timeout;
            build_with_sink(config, move |db| {
                Arc::new(GrpcSink::new(target, timeout, EmbeddedSink::new(db))) as _
            })
            .await?
        }
    };
    app.run_until_stopped(shutdown_signal()).await
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight calls");
}
