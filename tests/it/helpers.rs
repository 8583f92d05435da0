//! spawn_app: the real server on a free port over a fresh database (a temp SQLite file,
//! or a throw-away PostgreSQL database when ERPSYNC_TEST_DATABASE_URL is set).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use chrono::Utc;
use erpsync::app;
use erpsync::config::Config;
use erpsync::domain::secret::SecretKey;
use erpsync::domain::tenant::{Tenant, TenantId};
use erpsync::domain::token::{Grant, NewToken, Role, TenantScope};
use erpsync::domain::view_source::SourcePolicy;
use erpsync::grpc::pb::{
    erp_ingest_client::ErpIngestClient, integration_history_client::IntegrationHistoryClient,
};
use erpsync::services::Services;
use erpsync::storage::{tenants, tokens, Db};
use erpsync::worker::sink::{CrmSink, EmbeddedSink, SinkAck, SinkCall};
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection};
use tokio::sync::{oneshot, Notify};
use tonic::{metadata::MetadataValue, transport::Channel, Request};

/// The env var naming an admin URL of a PostgreSQL server tests may create databases on.
pub const PG_ENV: &str = "ERPSYNC_TEST_DATABASE_URL";

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
    clock: Arc<erpsync::clock::ManualClock>,
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
        of.state.worker.clock.clone(),
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
    let hosts = [PG_ENV, crate::view::MYSQL_ENV]
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

    /// Creates a tenant with the product defaults.
    pub async fn create_tenant(&self, id: &str) -> TenantId {
        let id = TenantId::parse(id).unwrap();
        let t = Tenant::new(id.clone(), format!("Tenant {id}"), Utc::now());
        tenants::insert(&self.state.db, &t).await.unwrap();
        id
    }

    /// Grants `tenant` the View source `url` names, as `erpsync tenant grant-view-source`
    /// does, within this server's list (the test sources: [`test_view_sources`]).
    pub async fn grant_view_source(&self, tenant: &str, url: &str) {
        let id = TenantId::parse(tenant).unwrap();
        self.state
            .views
            .grant(&id, url)
            .await
            .unwrap_or_else(|e| panic!("granting {url} to {tenant}: {e:?}"));
    }

    /// Issues a token of `role` for `tenants` (empty: every tenant) and returns the secret.
    pub async fn token(&self, role: Role, tenants: &[&TenantId]) -> String {
        let new = NewToken::generate().unwrap();
        let scope = if tenants.is_empty() {
            TenantScope::All
        } else {
            TenantScope::Listed(tenants.iter().map(|t| (*t).clone()).collect())
        };
        let grant = Grant {
            token_id: new.id.clone(),
            role,
            scope,
        };
        tokens::insert(&self.state.db, &new, &grant, None, Utc::now())
            .await
            .unwrap();
        new.secret
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
            self.state.worker.clock.clone(),
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

/// An empty database (no migrations applied), removed when dropped; None for
/// PostgreSQL when no test server is configured.
pub struct ScratchDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

impl ScratchDb {
    pub async fn create(backend: Backend) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("scratch.db").display()
                );
                Some(Self {
                    url,
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let admin = std::env::var(PG_ENV).ok().filter(|v| !v.is_empty())?;
                let pg = PgDatabase::create(&admin).await;
                Some(Self {
                    url: pg.url.clone(),
                    _dir: None,
                    pg: Some(pg),
                })
            }
        }
    }
}

impl ScratchDb {
    /// A migrated database on `backend` holding tenant "acme", for tests that call
    /// storage directly; None for PostgreSQL when no test server is configured.
    pub async fn with_tenant(backend: Backend) -> Option<(Self, Db, TenantId)> {
        let scratch = Self::create(backend).await?;
        let db = Db::connect(&scratch.url).await.unwrap();
        db.migrate().await.unwrap();
        let tenant = TenantId::parse("acme").unwrap();
        tenants::insert(&db, &Tenant::new(tenant.clone(), "Acme".into(), Utc::now()))
            .await
            .unwrap();
        Some((scratch, db, tenant))
    }
}

impl Drop for ScratchDb {
    fn drop(&mut self) {
        if let Some(pg) = self.pg.take() {
            pg.drop_blocking();
        }
    }
}

/// `msg` with `authorization: Bearer <token>`.
pub fn authed<T>(msg: T, token: &str) -> Request<T> {
    let mut req = Request::new(msg);
    let v: MetadataValue<_> = format!("Bearer {token}").parse().unwrap();
    req.metadata_mut().insert("authorization", v);
    req
}

/// A throw-away PostgreSQL database, dropped with the test.
pub(crate) struct PgDatabase {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    pub(crate) async fn create(admin: &str) -> Self {
        let name = format!("erpsync_test_{}", uuid::Uuid::new_v4().simple());
        let opts = PgConnectOptions::from_str(admin).expect("valid ERPSYNC_TEST_DATABASE_URL");
        let mut conn = opts
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{PG_ENV} is set but PostgreSQL is unreachable: {e}"));
        sqlx::query(&format!("CREATE DATABASE \"{name}\""))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let url = with_database(admin, &name);
        Self {
            admin: admin.to_owned(),
            name,
            url,
        }
    }

    pub(crate) fn drop_blocking(self) {
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async {
                if let Ok(mut conn) = PgConnectOptions::from_str(&self.admin)
                    .unwrap()
                    .connect()
                    .await
                {
                    let _ = sqlx::query(&format!(
                        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
                        self.name
                    ))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// `url` pointing at database `name` instead of its own.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{server}/{name}{query}")
}

/// A raw HTTP/1.1 POST (what an ERP's middleware sends); returns status and body.
pub async fn http_post(port: u16, path: &str, token: Option<&str>, body: &[u8]) -> (u16, String) {
    let (status, _, body) = http_post_with_head(port, path, token, body).await;
    (status, body)
}

/// Like [`http_post`], with the answer's head (status line and headers) in between.
pub async fn http_post_with_head(
    port: u16,
    path: &str,
    token: Option<&str>,
    body: &[u8],
) -> (u16, String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n{auth}\r\n",
        body.len()
    );
    let (mut reader, mut writer) = stream.split();
    let send = async {
        // The server may answer (413) before reading a large body: a failed write is fine.
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(body).await;
    };
    let mut raw = Vec::new();
    let receive = reader.read_to_end(&mut raw);
    let ((), read) = tokio::join!(send, receive);
    // A server that drops the connection unanswered (a TLS port meeting plaintext) may
    // reset it rather than close it, depending on what it had left unread: no answer.
    if let Err(e) = read {
        assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}");
    }
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .map(|(h, b)| (h.to_owned(), b.to_owned()))
        .unwrap_or_default();
    (status, head, body)
}

/// A TCP forwarder a test owns between a server under test and the test PostgreSQL: it
/// can cut the database away ([`PgProxy::sever`]) and bring it back
/// ([`PgProxy::restore`]) without touching the shared PostgreSQL server.
pub struct PgProxy {
    addr: std::net::SocketAddr,
    upstream: std::net::SocketAddr,
    forwarding: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

impl PgProxy {
    /// Forwards 127.0.0.1:<a free port> to the server of `admin_url`.
    pub async fn start(admin_url: &str) -> Self {
        let rest = admin_url.split_once("://").map_or(admin_url, |(_, r)| r);
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let host_port = if host_port.contains(':') {
            host_port.to_owned()
        } else {
            format!("{host_port}:5432")
        };
        let upstream = tokio::net::lookup_host(&host_port)
            .await
            .expect("the test PostgreSQL's host resolves")
            .next()
            .expect("an address");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("proxy binds");
        let addr = listener.local_addr().expect("proxy address");
        let mut proxy = Self {
            addr,
            upstream,
            forwarding: None,
        };
        proxy.forward(listener);
        proxy
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// `url` (of the test PostgreSQL) going through the proxy instead.
    pub fn route(&self, url: &str) -> String {
        let (scheme, rest) = url.split_once("://").expect("a URL");
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, tail) = rest.split_at(end);
        let user = authority
            .rsplit_once('@')
            .map(|(u, _)| format!("{u}@"))
            .unwrap_or_default();
        format!("{scheme}://{user}{}{tail}", self.addr)
    }

    /// Drops every live connection and refuses new ones (the port is closed), as a
    /// PostgreSQL that went down does. Returns once both are done.
    pub async fn sever(&mut self) {
        if let Some((stop, task)) = self.forwarding.take() {
            let _ = stop.send(());
            task.await.expect("the forwarder stops");
        }
    }

    /// Listens again on the same port and forwards new connections.
    pub async fn restore(&mut self) {
        assert!(self.forwarding.is_none(), "the proxy is already forwarding");
        let mut tries = 0;
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if tries < 250 => {
                    tries += 1;
                    eprintln!("proxy port {} not free yet: {e}", self.addr);
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("the proxy cannot listen on {} again: {e}", self.addr),
            }
        };
        self.forward(listener);
    }

    fn forward(&mut self, listener: tokio::net::TcpListener) {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let upstream = self.upstream;
        let task = tokio::spawn(async move {
            let mut live = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    accepted = listener.accept() => {
                        let Ok((mut client, _)) = accepted else { continue };
                        live.spawn(async move {
                            if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                            }
                        });
                    }
                    Some(_) = live.join_next(), if !live.is_empty() => {}
                }
            }
            // Aborts every forwarding task and waits until their sockets are closed; the
            // listener closes when this task returns.
            live.shutdown().await;
        });
        self.forwarding = Some((stop, task));
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        if let Some((stop, _)) = self.forwarding.take() {
            let _ = stop.send(());
        }
    }
}

/// Whether the server closes `stream` (EOF or reset) within `bound`.
pub async fn closed_within(stream: &mut tokio::net::TcpStream, bound: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(bound, stream.read(&mut buf)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// The embedded CRM, holding a run at its first companies' and its first contacts'
/// delivery until the test opens each gate: the run is RUNNING while the test looks.
#[derive(Debug)]
pub struct GatedCrm {
    pub inner: EmbeddedSink,
    pub companies: Gate,
    pub contacts: Gate,
}

/// One hold of [`GatedCrm`]: `reached` is notified when the run arrives, `open` lets it
/// pass (once: later calls pass at once).
#[derive(Debug, Default, Clone)]
pub struct Gate {
    pub reached: Arc<Notify>,
    pub open: Arc<Notify>,
    passed: Arc<AtomicBool>,
}

impl Gate {
    pub async fn hold(&self) {
        if !self.passed.swap(true, Ordering::SeqCst) {
            self.reached.notify_one();
            self.open.notified().await;
        }
    }
}

#[tonic::async_trait]
impl CrmSink for GatedCrm {
    async fn upsert_companies(
        &self,
        call: SinkCall,
        rows: &[erpsync::domain::crm::CrmCompany],
    ) -> erpsync::error::Result<SinkAck> {
        self.companies.hold().await;
        self.inner.upsert_companies(call, rows).await
    }
    async fn upsert_contacts(
        &self,
        call: SinkCall,
        rows: &[erpsync::domain::crm::CrmContact],
    ) -> erpsync::error::Result<SinkAck> {
        self.contacts.hold().await;
        self.inner.upsert_contacts(call, rows).await
    }
    async fn delete_companies(
        &self,
        call: SinkCall,
        ids: &[erpsync::domain::crm::Deletion],
    ) -> erpsync::error::Result<SinkAck> {
        self.inner.delete_companies(call, ids).await
    }
    async fn delete_contacts(
        &self,
        call: SinkCall,
        ids: &[erpsync::domain::crm::Deletion],
    ) -> erpsync::error::Result<SinkAck> {
        self.inner.delete_contacts(call, ids).await
    }
    async fn apply_categories(
        &self,
        call: SinkCall,
        rows: Vec<erpsync::domain::abc::Category>,
    ) -> erpsync::error::Result<SinkAck> {
        self.inner.apply_categories(call, rows).await
    }
    async fn count_records(
        &self,
        tenant: &erpsync::domain::tenant::TenantId,
    ) -> erpsync::error::Result<Option<erpsync::worker::sink::CrmCounts>> {
        self.inner.count_records(tenant).await
    }
    fn is_embedded(&self) -> bool {
        self.inner.is_embedded()
    }
    fn reads_stored_categories(&self) -> bool {
        self.inner.reads_stored_categories()
    }
    fn destination(&self) -> String {
        "gated embedded CRM".into()
    }
}

/// Runs `command` (an external script the tests drive) with its output captured; whether
/// it exited 0, and its stdout then stderr. Killed, failing the test, after `timeout`.
pub fn run_script(
    mut command: std::process::Command,
    what: &str,
    timeout: std::time::Duration,
) -> (bool, String) {
    use std::process::Stdio;
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id().to_string();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let Ok(out) = done_rx.recv_timeout(timeout) else {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        panic!("{what} was still running after {timeout:?}");
    };
    let out = out.unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), output)
}

/// `GET /metrics` with `authorization` when given: the answer's head and body.
pub async fn get_metrics(port: u16, authorization: Option<&str>) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let auth = authorization.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    let request =
        format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    (head.to_owned(), body.to_owned())
}

/// One scrape: each sample line's series (name and labels, as written) and value.
pub async fn scrape(port: u16) -> (String, std::collections::BTreeMap<String, f64>) {
    scrape_with(port, None).await
}

pub async fn scrape_with(
    port: u16,
    authorization: Option<&str>,
) -> (String, std::collections::BTreeMap<String, f64>) {
    let (head, body) = get_metrics(port, authorization).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let samples = body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse().ok()?))
        })
        .collect();
    (body, samples)
}
