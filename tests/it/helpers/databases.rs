//! Databases tests own: erpsync's own (an empty [`ScratchDb`], a throw-away
//! [`PgDatabase`]), a [`PgProxy`] that can cut PostgreSQL away, MariaDB databases
//! ([`DropMysql`]), and the env vars naming the test servers.

use std::str::FromStr;

use erpsync::domain::tenant::TenantId;
use erpsync::storage::Db;
use erpsync::tenants::Tenants;
use sqlx::{postgres::PgConnectOptions, ConnectOptions, Connection, Executor};
use tokio::sync::oneshot;

use super::servers::Backend;
use super::tenants::new_tenant;

/// The env var naming an admin URL of a PostgreSQL server tests may create databases on.
pub const PG_ENV: &str = "ERPSYNC_TEST_DATABASE_URL";

/// An empty database (no migrations applied), removed when dropped; None for
/// PostgreSQL when no test server is configured.
pub struct ScratchDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<PgDatabase>,
}

impl ScratchDb {
    /// An empty database on `backend`; None for PostgreSQL when no test server is configured.
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
    /// A migrated database on `backend` holding tenant "acme" (created as
    /// `erpsync tenant create` does), for tests that call storage directly; None for
    /// PostgreSQL when no test server is configured.
    pub async fn with_tenant(backend: Backend) -> Option<(Self, Db, TenantId)> {
        let scratch = Self::create(backend).await?;
        let db = Db::connect(&scratch.url).await.unwrap();
        db.migrate().await.unwrap();
        let tenant = Tenants::new(db.clone(), None, erpsync::clock::system())
            .create(new_tenant("acme", "Acme"))
            .await
            .unwrap()
            .id;
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

/// A throw-away PostgreSQL database, dropped with the test.
pub struct PgDatabase {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl PgDatabase {
    /// Creates a database named by a UUID on the server of `admin`.
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

    /// Drops the database (forcing its connections closed), from a thread of its own.
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
pub fn with_database(url: &str, name: &str) -> String {
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

/// The env var naming a MariaDB/MySQL server tests may create databases on.
pub const MYSQL_ENV: &str = "ERPSYNC_TEST_MYSQL_URL";

/// A MariaDB database `name` on the server of `admin`, dropped with the test.
pub(crate) struct DropMysql {
    pub(crate) admin: String,
    pub(crate) name: String,
}

impl Drop for DropMysql {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                if let Ok(mut c) = sqlx::mysql::MySqlConnection::connect(&admin).await {
                    let _ = c
                        .execute(format!("DROP DATABASE IF EXISTS `{name}`").as_str())
                        .await;
                }
            });
        })
        .join();
    }
}
