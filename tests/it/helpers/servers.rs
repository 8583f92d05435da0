//! The server under test: [`spawn_app`] and its variants start the real erpsync on
//! 127.0.0.1:0 over a fresh database (a temp SQLite file, or a throw-away PostgreSQL
//! database when ERPSYNC_TEST_DATABASE_URL is set); [`both_backends!`](crate::both_backends)
//! runs a test body on each backend.

use std::time::Duration;

use erpsync::app;
use erpsync::config::Config;
use erpsync::domain::secret::SecretKey;
use erpsync::domain::view_source::SourcePolicy;
use erpsync::grpc::pb::{
    erp_ingest_client::ErpIngestClient, integration_history_client::IntegrationHistoryClient,
};
use erpsync::services::Services;
use erpsync::worker::sink::EmbeddedSink;
use tokio::sync::oneshot;
use tonic::transport::Channel;

use super::databases::{PgDatabase, MYSQL_ENV, PG_ENV};
use super::tenants::authed;

/// Which database a test runs on.
#[derive(Debug, Clone, Copy)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub port: u16,
    pub backend: Backend,
    pub state: Services,
    /// Connections the server refused or closed for its limits.
    pub conn: std::sync::Arc<erpsync::conn::ConnStats>,
    /// What SIGTERM does: the first `stop` drains the server, the next ends the drain.
    pub stopper: app::Stopper,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
    pg_cleanup: Option<PgDatabase>,
}

/// Runs a test body on both backends: `both_backends!(fn_a, fn_b);` makes
/// `sqlite::fn_a`, `postgres::fn_a`, … Each body is `async fn(TestApp)`. Two other forms:
/// `both_backends!(tuned: fn_a => |c| …, …)` serves each body a server whose
/// configuration the closure adjusts (the closure sees the test file's items), and
/// `both_backends!(backend: fn_a, …)` hands each body the [`Backend`] to start its own
/// servers on (`async fn(Backend)`). The PostgreSQL variants return at once when
/// ERPSYNC_TEST_DATABASE_URL is unset.
#[macro_export]
macro_rules! both_backends {
    (tuned: $($name:ident => $tune:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app_with($crate::helpers::Backend::Sqlite, $tune)
                        .await
                        .expect("sqlite is always available");
                    super::$name(app).await;
                }
            )*
            #[allow(unused_imports)]
            use super::*;
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app_with($crate::helpers::Backend::Postgres, $tune).await else {
                        eprintln!("{} unset: PostgreSQL variant not run", $crate::helpers::PG_ENV);
                        return;
                    };
                    super::$name(app).await;
                }
            )*
            #[allow(unused_imports)]
            use super::*;
        }
    };
    (backend: $($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::helpers::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if std::env::var($crate::helpers::PG_ENV).is_err() {
                        eprintln!("{} unset: PostgreSQL variant not run", $crate::helpers::PG_ENV);
                        return;
                    }
                    super::$name($crate::helpers::Backend::Postgres).await;
                }
            )*
        }
    };
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let app = $crate::helpers::spawn_app($crate::helpers::Backend::Sqlite)
                        .await
                        .expect("sqlite is always available");
                    super::$name(app).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(app) = $crate::helpers::spawn_app($crate::helpers::Backend::Postgres).await else {
                        eprintln!("{} unset: PostgreSQL variant not run", $crate::helpers::PG_ENV);
                        return;
                    };
                    super::$name(app).await;
                }
            )*
        }
    };
}

/// Starts the server on 127.0.0.1:0 over a fresh database; None for PostgreSQL when
/// no test server is configured.
pub async fn spawn_app(backend: Backend) -> Option<TestApp> {
    spawn_app_with(backend, |_| {}).await
}

/// Like [`spawn_app`], with the configuration adjusted by `tune` (small limits, …).
pub async fn spawn_app_with(backend: Backend, tune: impl FnOnce(&mut Config)) -> Option<TestApp> {
    spawn_app_full(backend, tune, |db| {
        std::sync::Arc::new(erpsync::worker::sink::EmbeddedSink::new(db))
    })
    .await
}

/// Like [`spawn_app_with`], with runs delivering to the sink `sink` makes.
pub async fn spawn_app_full(
    backend: Backend,
    tune: impl FnOnce(&mut Config),
    sink: impl FnOnce(erpsync::storage::Db) -> std::sync::Arc<dyn erpsync::worker::sink::CrmSink>,
) -> Option<TestApp> {
    spawn_app_at(backend, tune, sink, erpsync::clock::system()).await
}

/// Like [`spawn_app_with`] on a server reading the time from `clock` (a
/// [`erpsync::clock::ManualClock`] the test moves instead of waiting); its replicas and
/// restarts read the same clock.
pub async fn spawn_app_clocked(
    backend: Backend,
    tune: impl FnOnce(&mut Config),
    clock: std::sync::Arc<erpsync::clock::ManualClock>,
) -> Option<TestApp> {
    spawn_app_at(
        backend,
        tune,
        |db| std::sync::Arc::new(erpsync::worker::sink::EmbeddedSink::new(db)),
        clock.into(),
    )
    .await
}

/// Like [`spawn_app_full`], reading the time from `clock`.
pub async fn spawn_app_at(
    backend: Backend,
    tune: impl FnOnce(&mut Config),
    sink: impl FnOnce(erpsync::storage::Db) -> std::sync::Arc<dyn erpsync::worker::sink::CrmSink>,
    clock: erpsync::clock::SharedClock,
) -> Option<TestApp> {
    let dir = tempfile::tempdir().expect("temp dir");
    let (database_url, pg_cleanup) = match backend {
        Backend::Sqlite => (
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("erpsync.db").display()
            ),
            None,
        ),
        Backend::Postgres => {
            let admin = std::env::var(PG_ENV).ok().filter(|v| !v.is_empty())?;
            let pg = PgDatabase::create(&admin).await;
            (pg.url.clone(), Some(pg))
        }
    };
    let mut config = Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        database_url: database_url.clone(),
        view_sources: test_view_sources(),
        secret_key: Some(SecretKey::generate()),
        ..Config::default()
    };
    tune(&mut config);
    Some(serve_config(backend, config, sink, clock, dir, pg_cleanup).await)
}

/// Another replica on `of`'s database (the embedded CRM sink), its configuration
/// adjusted by `tune`; the database stays `of`'s to drop.
pub async fn spawn_replica(of: &TestApp, tune: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = of.config.clone();
    config.listen = "127.0.0.1:0".parse().unwrap();
    tune(&mut config);
    let dir = tempfile::tempdir().expect("temp dir");
    serve_config(
        of.backend,
        config,
        |db| std::sync::Arc::new(erpsync::worker::sink::EmbeddedSink::new(db)),
        of.state.worker.clock().clone(),
        dir,
        None,
    )
    .await
}

async fn serve_config(
    backend: Backend,
    config: Config,
    sink: impl FnOnce(erpsync::storage::Db) -> std::sync::Arc<dyn erpsync::worker::sink::CrmSink>,
    clock: erpsync::clock::SharedClock,
    dir: tempfile::TempDir,
    pg_cleanup: Option<PgDatabase>,
) -> TestApp {
    let app = app::build_with(&config, sink, clock)
        .await
        .expect("server builds");
    let (port, state, conn) = (app.port(), app.services().clone(), app.conn_stats());
    let stopper = app.stopper();
    let (stop, stopped) = serve(app);
    TestApp {
        port,
        backend,
        state,
        conn,
        stopper,
        config,
        stop: Some(stop),
        stopped: Some(stopped),
        _dir: dir,
        pg_cleanup,
    }
}

/// The View sources tests read, as an operator would allow them: SQLite files in the
/// temporary folder (where every test's own database lives too: the own-database rule
/// must hold all the same), the test PostgreSQL and MariaDB servers, and 127.0.0.1:1,
/// where nothing listens (an unreachable source).
pub fn test_view_sources() -> SourcePolicy {
    let unreachable = "127.0.0.1:1".parse().unwrap();
    let hosts = [PG_ENV, MYSQL_ENV]
        .into_iter()
        .filter_map(|var| std::env::var(var).ok().filter(|v| !v.is_empty()))
        .filter_map(|url| {
            let rest = url.split_once("://")?.1;
            let authority = rest.split('/').next()?;
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            host_port.parse().ok()
        })
        .chain([unreachable])
        .collect();
    SourcePolicy {
        hosts,
        sqlite_dirs: vec![std::env::temp_dir()],
    }
}

fn serve(app: app::App) -> (oneshot::Sender<()>, tokio::task::JoinHandle<()>) {
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run_until_stopped(async {
            let _ = stopped.await;
        })
        .await
        .expect("the server stops cleanly");
    });
    (stop, task)
}

impl TestApp {
    /// erpsync's own database.
    pub fn database_url(&self) -> &str {
        &self.config.database_url
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .expect("connects to the test server")
    }

    /// A client of IntegrationHistory.
    pub async fn history(&self) -> IntegrationHistoryClient<Channel> {
        IntegrationHistoryClient::new(self.channel().await)
    }

    /// A client of ErpIngest.
    pub async fn ingest(&self) -> ErpIngestClient<Channel> {
        ErpIngestClient::new(self.channel().await)
    }

    /// A client of grpc.health.v1.Health.
    pub async fn health(&self) -> tonic_health::pb::health_client::HealthClient<Channel> {
        tonic_health::pb::health_client::HealthClient::new(self.channel().await)
    }

    /// Whether GetOverview of `tenant` with `token` succeeds, on a connection of its own.
    pub async fn overview_ok(&self, tenant: &str, token: &str) -> bool {
        self.history()
            .await
            .get_overview(authed(
                erpsync::grpc::pb::GetOverviewRequest {
                    tenant_id: tenant.into(),
                },
                token,
            ))
            .await
            .is_ok()
    }
    /// Stops the server.
    pub fn stop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }

    /// Waits until the server has stopped (after its drain).
    pub async fn stopped(&mut self) {
        if let Some(task) = self.stopped.take() {
            task.await.expect("the server task ends");
        }
    }

    /// Stops the server, waits until it has stopped, and starts a new one over the same
    /// database (embedded CRM sink) on a new port.
    pub async fn restart(&mut self) {
        self.stop();
        if let Some(task) = self.stopped.take() {
            task.await.expect("the server task ends");
        }
        let mut config = self.config.clone();
        config.listen = "127.0.0.1:0".parse().unwrap();
        let app = app::build_with(
            &config,
            |db| std::sync::Arc::new(erpsync::worker::sink::EmbeddedSink::new(db)),
            self.state.worker.clock().clone(),
        )
        .await
        .expect("server builds again");
        self.port = app.port();
        self.state = app.services().clone();
        self.conn = app.conn_stats();
        self.stopper = app.stopper();
        let (stop, stopped) = serve(app);
        self.stop = Some(stop);
        self.stopped = Some(stopped);
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
        if let Some(pg) = self.pg_cleanup.take() {
            pg.drop_blocking();
        }
    }
}

/// A server delivering to the host CrmSink at `url` in batches of 2, trying each batch
/// twice 10 ms apart, its configuration adjusted by `tune`.
pub(crate) async fn app_with_host_sink_and(
    backend: Backend,
    url: String,
    tune: impl FnOnce(&mut erpsync::config::Config),
) -> TestApp {
    use erpsync::grpc::crm_sink_client::SinkTarget;
    let target = SinkTarget::new(&url, &Default::default()).unwrap();
    app_with_sink_target(backend, target, tune).await
}

/// A server delivering to the host CrmSink `target` in batches of 2, trying each batch
/// twice 10 ms apart.
pub(crate) async fn app_with_sink_target(
    backend: Backend,
    target: erpsync::grpc::crm_sink_client::SinkTarget,
    tune: impl FnOnce(&mut erpsync::config::Config),
) -> TestApp {
    use erpsync::grpc::crm_sink_client::GrpcSink;
    use erpsync::worker::delivery::DeliveryPolicy;
    let delivery = DeliveryPolicy {
        batch: 2,
        call_timeout: Duration::from_secs(2),
        attempts: 2,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(10),
        ..DeliveryPolicy::default()
    };
    spawn_app_full(
        backend,
        |c| {
            c.delivery = delivery;
            tune(c);
        },
        move |db| {
            std::sync::Arc::new(GrpcSink::new(
                target,
                delivery.call_timeout,
                EmbeddedSink::new(db),
            ))
        },
    )
    .await
    .unwrap()
}
