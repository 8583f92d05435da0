//! Startup: connect and migrate the database, bind the listener (so callers, tests
//! included, learn the port before serving), then serve until stopped.
//!
//! Stopping is a drain: the first SIGTERM (or Ctrl-C, or [`Stopper::stop`]) turns health
//! NOT_SERVING, stops the scheduler, refuses new runs and ends open log and alert streams
//! (UNAVAILABLE with a retry hint), while other calls are still served; the replica's runs
//! may finish. When none is left, at the drain deadline (`--drain-secs`) or at a second
//! SIGTERM, the drain ends: runs still going are handed over (INTERRUPTED, their leases
//! released, so another replica retries them at its next tick), the listener closes,
//! in-flight calls finish, and the process exits.

use std::future::Future;
use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::clock::SharedClock;
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
    history_retention: crate::domain::retention::Defaults,
    scheduler_tick: std::time::Duration,
    conn_limits: crate::conn::ConnLimits,
    conn_stats: Arc<crate::conn::ConnStats>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    request_timeout: std::time::Duration,
    drain: std::time::Duration,
    stopper: Stopper,
    listen: Option<Listen>,
}

/// What the process's LISTEN connection needs (PostgreSQL only).
struct Listen {
    url: String,
    hearing: crate::storage::notify::Hearing,
}

/// Asks a running server to drain, then to end its drain: what SIGTERM does, for callers
/// that hold the server (tests, embedders). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Stopper(Arc<tokio::sync::watch::Sender<u32>>);

impl Stopper {
    fn new() -> Self {
        Self(Arc::new(tokio::sync::watch::channel(0).0))
    }

    /// The first call starts the drain; the next one ends it at once.
    pub fn stop(&self) {
        self.0.send_modify(|n| *n = n.saturating_add(1));
    }

    /// Completes once `stop` has been called `n` times.
    async fn stopped(&self, n: u32) {
        let mut calls = self.0.subscribe();
        // The sender lives in `self`: the wait ends only by the count.
        let _ = calls.wait_for(|c| *c >= n).await;
    }
}

/// How long the runs a drain aborts have to let go before they are handed over all the
/// same (an aborted task ends at its next await, at once in practice).
const ABORT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

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
    build_with(config, sink, crate::clock::system()).await
}

/// Like [`build_with_sink`], every part of the server reading the time from `clock`
/// (tests and benches pass a [`crate::clock::ManualClock`] to move it at will).
pub async fn build_with(
    config: &Config,
    sink: impl FnOnce(Db) -> Arc<dyn CrmSink>,
    clock: SharedClock,
) -> Result<App> {
    config
        .validate()
        .map_err(crate::error::AppError::InvalidArgument)?;
    // Before anything is counted (the runs a dead server left are, just below).
    crate::metrics::install();
    crate::metrics::draining(false);
    if config.metrics_tenant_label {
        // Process-wide, as the recorder is; a server never turns it off for another.
        crate::metrics::label_tenants(true);
    }
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
    // One flag for the log tails and the alert watchers: whether the process's listener
    // hears other replicas' appends (set by `wakeup::listen`, PostgreSQL only).
    let hearing = crate::storage::notify::Hearing::default();
    let logs = crate::logs::LogHub::new(
        db.clone(),
        config.feed_poll,
        hearing.clone(),
        config.log_heartbeat,
    );
    let ingestor = crate::ingest::Ingestor::new(db.clone(), config.limits, clock.clone());
    let sinks = crate::worker::tenant_sink::Sinks::new(
        db.clone(),
        sink(db.clone()),
        Some(Arc::new(grpc::crm_sink_client::TenantSinks::new(
            &config.crm_sink_access,
            config.delivery.call_timeout,
            EmbeddedSink::new(db.clone()),
        ))),
        config.secret_key.clone(),
        clock.clone(),
    );
    let alerts = crate::alert_feed::AlertFeed::new(
        db.clone(),
        config.feed_poll,
        hearing.clone(),
        throttle.alert_streams.clone(),
    );
    // On PostgreSQL other replicas append too: one connection of the process's own
    // listens for their notifications (started with the server, see `run_until_stopped`).
    let listen = (db.backend() == sea_orm::DbBackend::Postgres).then(|| Listen {
        url: config.database_url.clone(),
        hearing,
    });
    let services = Services {
        db: db.clone(),
        tokens: crate::auth::Tokens::new(db.clone(), throttle.clone(), clock.clone()),
        history: crate::history::History::new(db.clone(), sinks.clone(), clock.clone()),
        tenants: crate::tenants::Tenants::new(db.clone(), Some(sinks.clone()), clock.clone()),
        worker: crate::worker::RunWorker::new(crate::worker::Parts {
            db: db.clone(),
            sinks,
            logs: logs.clone(),
            views: views.clone(),
            ingestor: ingestor.clone(),
            delivery: config.delivery,
            retries: config.retries,
            run_lease: config.run_lease,
            clock: clock.clone(),
        }),
        ingestor,
        views: crate::view_admin::ViewAdmin::new(db.clone(), views, clock.clone()),
        exporter: crate::export::Exporter::new(
            db,
            config.export,
            config.request_log_retention_days,
            throttle.exports.clone(),
            clock.clone(),
        ),
        alerts,
        logs,
        log_streams: throttle.streams.clone(),
    };
    // Runs a stopped process was running are interrupted (in their tenants' logs too);
    // their records stay staged and the scheduler runs them again. On SQLite one server
    // owns the file, so every lease left behind is a dead process's: they go at once. On
    // PostgreSQL other replicas may be alive, so only expired leases count.
    let now = clock.now();
    let as_of = if services.db.backend() == sea_orm::DbBackend::Sqlite {
        now + chrono::Duration::days(3650)
    } else {
        now
    };
    crate::worker::sync::interrupt_orphans(&services.worker, now, as_of).await?;
    crate::storage::lease::clear(&services.db, as_of).await?;
    let (routes, health) = grpc::routes(
        services.clone(),
        &config.ui_frame_ancestors,
        config.metrics_token.clone(),
    )
    .await?;
    let crm_sink = services.worker.sinks().server_wide().clone();
    tracing::info!(
        listen = %listener.local_addr().context("listener address")?,
        database = %redact_url(&config.database_url),
        crm_sink = %crm_sink.destination(),
        // The name this replica's run leases carry (sync_lease.holder).
        instance = %services.worker.instance(),
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
        history_retention: config.history_retention,
        scheduler_tick: config.scheduler_tick,
        conn_limits: config.conn,
        conn_stats: Arc::default(),
        tls,
        request_timeout: config.request_timeout,
        listen,
        drain: config.drain,
        stopper: Stopper::new(),
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

    /// What stops this server: the first [`Stopper::stop`] starts the drain, the next
    /// ends it.
    pub fn stopper(&self) -> Stopper {
        self.stopper.clone()
    }

    /// Serves gRPC and HTTP/1.1 (the JSON ingestion route) on the one port until
    /// stopped, then drains (see the module's documentation): the drain starts when
    /// `shutdown` completes or at the first [`Stopper::stop`], and ends when this
    /// replica's runs are done, at the drain deadline, or at the next `stop`. Then the
    /// listener closes, in-flight calls finish and the background jobs stop.
    pub async fn run_until_stopped(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let (stop_jobs, jobs_stopped) = tokio::sync::watch::channel(false);
        let retention = tokio::spawn(crate::worker::retention::run(
            self.services.db.clone(),
            self.retention_days,
            self.history_retention,
            self.services.worker.clock().clone(),
            jobs_stopped.clone(),
        ));
        let checkpoint = tokio::spawn(crate::worker::checkpoint::run(
            self.services.db.clone(),
            jobs_stopped.clone(),
        ));
        // The scheduler and the health probe stop when the drain starts, the others when
        // the server stops.
        let (stop_scheduler, scheduler_stopped) = tokio::sync::watch::channel(false);
        let scheduler = tokio::spawn(crate::worker::scheduler::run(
            self.services.worker.clone(),
            self.scheduler_tick,
            scheduler_stopped,
        ));
        let listener = self.listen.map(|l| {
            tokio::spawn(crate::wakeup::listen(
                l.url,
                listener_name(self.services.worker.instance()),
                self.database_timeout,
                crate::wakeup::Wakes {
                    logs: self.services.logs.clone(),
                    db: self.services.db.clone(),
                    hearing: l.hearing,
                },
                jobs_stopped.clone(),
            ))
        });
        let db = self.services.db.clone();
        let (stop_probe, probe_stopped) = tokio::sync::watch::channel(false);
        let ping_within = self.database_timeout;
        let probe = tokio::spawn(self.health.clone().follow_database(
            move || {
                let db = db.clone();
                async move { db.ping(ping_within).await }
            },
            self.database_timeout,
            probe_stopped,
        ));
        let drain = Drain {
            health: self.health,
            worker: self.services.worker.clone(),
            logs: self.services.logs.clone(),
            alerts: self.services.alerts.clone(),
            deadline: self.drain,
            stopper: self.stopper,
        };
        let drained = async move {
            tokio::select! {
                () = drain.stopper.stopped(1) => {}
                // Counted as the first stop: the next one ends the drain.
                () = shutdown => drain.stopper.stop(),
            }
            let deadline = tokio::time::Instant::now() + drain.deadline;
            drain.start().await;
            let _ = stop_probe.send(true);
            let _ = stop_scheduler.send(true);
            drain.end(deadline).await;
            // A tick in progress finished meanwhile, or does now: the runs it tried to
            // start were refused.
            let _ = scheduler.await;
            let _ = probe.await;
            drain.health.close().await;
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
        crate::conn::serve(incoming, self.routes, http, self.conn_stats, drained).await;
        // A trigger that got past the drain's check just before it started may have
        // started a run after the hand-over: it goes the same way.
        let worker = &self.services.worker;
        if worker.runs().active() > 0 {
            let aborted = worker.runs().abort(ABORT_GRACE).await;
            crate::worker::sync::hand_over(worker, &aborted).await;
        }
        let _ = stop_jobs.send(true);
        let _ = retention.await;
        let _ = checkpoint.await;
        if let Some(listener) = listener {
            let _ = listener.await;
        }
        tracing::info!("erpsync stopped");
        Ok(())
    }
}

/// The `application_name` of the process's LISTEN connection: erpsync's, and the
/// instance's, so an operator (or a test) tells one replica's listener from another's
/// in `pg_stat_activity`.
pub fn listener_name(instance: &str) -> String {
    format!("erpsync-listen {instance}")
}

/// What a drain touches.
struct Drain {
    health: grpc::health::Health,
    worker: crate::worker::RunWorker,
    logs: crate::logs::LogHub,
    alerts: crate::alert_feed::AlertFeed,
    deadline: std::time::Duration,
    stopper: Stopper,
}

impl Drain {
    /// Takes this replica out of service: no new calls from a load balancer, no new
    /// runs, no open streams (their clients resume on another replica).
    async fn start(&self) {
        crate::metrics::draining(true);
        self.worker.runs().drain();
        self.health.drain().await;
        let streams = self.logs.open_streams() + self.alerts.open_streams();
        // Followed log streams and alert feeds never end by themselves: they would hold
        // the shutdown up.
        self.logs.close();
        self.alerts.close();
        tracing::info!(
            runs = self.worker.runs().active(),
            streams,
            drain_secs = self.deadline.as_secs(),
            "drain started: health NOT_SERVING, no new runs, streams closed with a retry hint; \
             other calls are served until the runs end"
        );
    }

    /// Waits for this replica's runs, at most until `deadline` or the next stop, then
    /// hands over the ones still going.
    async fn end(&self, deadline: tokio::time::Instant) {
        let why = tokio::select! {
            biased;
            () = self.worker.runs().idle() => None,
            () = self.stopper.stopped(2) => Some("a second signal"),
            () = tokio::time::sleep_until(deadline) => Some("the drain deadline"),
        };
        match why {
            None => tracing::info!("drain finished: no run left"),
            Some(why) => {
                let runs = self.worker.runs().active();
                tracing::warn!(
                    runs,
                    "drain ended by {why}: handing the runs still going over"
                );
                let aborted = self.worker.runs().abort(ABORT_GRACE).await;
                let handed = crate::worker::sync::hand_over(&self.worker, &aborted).await;
                tracing::info!(
                    handed_over = handed,
                    "drain finished: runs handed over; another replica retries them"
                );
            }
        }
    }
}

/// `erpsync serve`: builds the server of `config` delivering to `crm_sink` (its URL and
/// access already checked), and serves until SIGINT or SIGTERM (the first drains, the
/// second ends the drain).
pub async fn serve(config: &Config, crm_sink: CrmSinkSetting) -> Result<()> {
    // Listened to before the server says it is ready: a SIGTERM that follows at once is a
    // drain, not the default action's kill.
    let signals = Signals::listen();
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
    tokio::spawn(signals.forward(app.stopper()));
    app.run_until_stopped(std::future::pending()).await
}

/// SIGTERM and SIGINT (Ctrl-C): each one a [`Stopper::stop`].
struct Signals {
    #[cfg(unix)]
    streams: Option<(tokio::signal::unix::Signal, tokio::signal::unix::Signal)>,
}

impl Signals {
    /// Starts listening (the default action, ending the process, no longer applies).
    fn listen() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let streams = match (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) {
                (Ok(term), Ok(int)) => Some((term, int)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM and SIGINT");
                    None
                }
            };
            Self { streams }
        }
        #[cfg(not(unix))]
        Self {}
    }

    /// Calls `stopper` at every signal: the first starts the drain, the second ends it.
    async fn forward(self, stopper: Stopper) {
        #[cfg(unix)]
        {
            let Some((mut term, mut int)) = self.streams else {
                return;
            };
            let mut received = 0u32;
            loop {
                let name = tokio::select! {
                    Some(()) = term.recv() => "SIGTERM",
                    Some(()) = int.recv() => "SIGINT",
                    else => return,
                };
                received = received.saturating_add(1);
                if received == 1 {
                    tracing::info!(signal = name, "shutdown requested: draining");
                } else {
                    tracing::info!(signal = name, "shutdown requested again: ending the drain");
                }
                stopper.stop();
            }
        }
        #[cfg(not(unix))]
        loop {
            if let Err(e) = tokio::signal::ctrl_c().await {
                tracing::error!(error = %e, "cannot listen for Ctrl-C");
                return;
            }
            tracing::info!("shutdown requested");
            stopper.stop();
        }
    }
}
