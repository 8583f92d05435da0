//! The gate in front of every View source: a URL a tenant names must be on the
//! operator's list ([`SourcePolicy`]); no URL, whoever names it, may reach erpsync's own
//! database. The own database is recognized by address before connecting (the same file,
//! or the same database on a server reached by any of its names) and, after connecting,
//! by the random id of its `erpsync_instance` row, which catches names the first check
//! cannot know (another address of the same machine, a link).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::ErpDb;
use crate::domain::secret::SecretKey;
use crate::domain::secret::{scrub, url_secrets};
use crate::domain::view::Backend;
use crate::domain::view_source::{SourceAddr, SourcePolicy, REFUSED};
use crate::error::AppError;

/// How long resolving a host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who names a View source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// A tenant, through the API (a `crm` token): only sources on the operator's list.
    Tenant,
    /// The operator, through `erpsync tenant set-view` on the database itself.
    Operator,
}

/// What erpsync needs to reach tenants' View sources safely; built once at startup,
/// cheap to clone.
#[derive(Debug, Clone)]
pub struct ViewAccess {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    policy: SourcePolicy,
    key: Option<SecretKey>,
    own: SourceAddr,
    own_instance: String,
}

impl ViewAccess {
    /// The operator's `policy` (its SQLite folders must exist), the key that seals stored
    /// URLs, and erpsync's own database: its URL and [`crate::storage::Db::instance_id`].
    pub fn new(
        mut policy: SourcePolicy,
        key: Option<SecretKey>,
        own_url: &str,
        own_instance: String,
    ) -> anyhow::Result<Self> {
        for dir in &mut policy.sqlite_dirs {
            *dir = dir
                .canonicalize()
                .with_context(|| format!("--view-sqlite-dir {}", dir.display()))?;
        }
        let own = source_addr(own_url).map_err(anyhow::Error::msg)?;
        Ok(Self {
            inner: Arc::new(Inner {
                policy,
                key,
                own,
                own_instance,
            }),
        })
    }

    /// The key stored View URLs are sealed with, if the operator set one.
    pub fn key(&self) -> Option<&SecretKey> {
        self.inner.key.as_ref()
    }

    /// Checks a URL before it is stored: PERMISSION_DENIED with one message for every
    /// refusal (off the list, erpsync's own database, a file that does not exist).
    /// A URL with a password needs a key to be sealed with.
    pub async fn admit(&self, url: &str, naming: Naming) -> Result<(), AppError> {
        let addr = source_addr(url).map_err(AppError::InvalidArgument)?;
        let listed = naming == Naming::Operator || self.listed(&addr);
        if !listed || self.is_own(&addr).await {
            return Err(AppError::PermissionDenied(REFUSED.into()));
        }
        if self.inner.key.is_none() && !url_secrets(url).is_empty() {
            return Err(AppError::FailedPrecondition(
                "this server has no ERPSYNC_SECRET_KEY, so it cannot store a View URL's \
                 password sealed: the operator sets the key (see README, Configuration)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Connects read-only to a stored View source; refuses erpsync's own database however
    /// the URL names it (a configuration stored before this check, or by a link).
    pub async fn connect(&self, url: &str) -> Result<ErpDb, String> {
        let addr = source_addr(url)?;
        if self.is_own(&addr).await {
            return Err(REFUSED.into());
        }
        let mut erp = ErpDb::connect(url).await?;
        if erp.erpsync_instance().await.as_deref() == Some(self.inner.own_instance.as_str()) {
            erp.close().await;
            return Err(REFUSED.into());
        }
        Ok(erp)
    }

    /// Whether the operator's list has `addr`.
    fn listed(&self, addr: &SourceAddr) -> bool {
        let policy = &self.inner.policy;
        match addr {
            SourceAddr::Server { host, port, .. } => policy.admits_server(host, *port),
            SourceAddr::Socket(_) => false,
            SourceAddr::File(path) => path
                .canonicalize()
                .is_ok_and(|canonical| policy.admits_file(&canonical)),
        }
    }

    /// Whether `addr` is erpsync's own database.
    async fn is_own(&self, addr: &SourceAddr) -> bool {
        match (addr, &self.inner.own) {
            (SourceAddr::File(path), SourceAddr::File(own)) => same_file(path, own),
            (
                SourceAddr::Server {
                    host,
                    port,
                    database,
                },
                SourceAddr::Server {
                    host: own_host,
                    port: own_port,
                    database: own_database,
                },
            ) => {
                port == own_port
                    && database == own_database
                    && same_host(host, own_host, *port).await
            }
            _ => false,
        }
    }
}

/// Where `url` points, as its driver would connect (parsed by the driver itself, so a
/// parameter such as `?host=` counts as it would).
fn source_addr(url: &str) -> Result<SourceAddr, String> {
    let fail = |e: sqlx::Error| scrub(&e.to_string(), url);
    match Backend::of_url(url)? {
        Backend::Postgres => {
            let o = PgConnectOptions::from_str(url).map_err(fail)?;
            if o.get_options().is_some() {
                return Err("a View URL may not set PostgreSQL's `options` parameter".into());
            }
            Ok(match o.get_socket() {
                Some(socket) => SourceAddr::Socket(socket.clone()),
                None => SourceAddr::Server {
                    host: o.get_host().to_ascii_lowercase(),
                    port: o.get_port(),
                    database: o.get_database().unwrap_or(o.get_username()).to_owned(),
                },
            })
        }
        Backend::MySql => {
            let url = match url.split_once("://") {
                Some((_, rest)) => format!("mysql://{rest}"),
                None => url.to_owned(),
            };
            let o = MySqlConnectOptions::from_str(&url).map_err(fail)?;
            Ok(match o.get_socket() {
                Some(socket) => SourceAddr::Socket(socket.clone()),
                None => SourceAddr::Server {
                    host: o.get_host().to_ascii_lowercase(),
                    port: o.get_port(),
                    database: o.get_database().unwrap_or_default().to_owned(),
                },
            })
        }
        Backend::Sqlite => {
            let o = SqliteConnectOptions::from_str(url).map_err(fail)?;
            Ok(SourceAddr::File(o.get_filename().to_path_buf()))
        }
    }
}

/// Whether two paths name one file (links and `..` resolved; on Unix, the same inode,
/// which also catches hard links).
fn same_file(a: &Path, b: &Path) -> bool {
    let (Ok(a), Ok(b)) = (a.canonicalize(), b.canonicalize()) else {
        return false;
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if let (Ok(ma), Ok(mb)) = (a.metadata(), b.metadata()) {
            return ma.dev() == mb.dev() && ma.ino() == mb.ino();
        }
    }
    a == b
}

/// Whether two host names reach the same server: spelled alike, resolving to a common
/// address, or both naming this machine (loopback or unspecified addresses only).
async fn same_host(a: &str, b: &str, port: u16) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let (a, b) = (addresses(a, port).await, addresses(b, port).await);
    let this_machine = |ips: &BTreeSet<IpAddr>| {
        !ips.is_empty() && ips.iter().all(|ip| ip.is_loopback() || ip.is_unspecified())
    };
    !a.is_disjoint(&b) || (this_machine(&a) && this_machine(&b))
}

/// The addresses `host` resolves to; none when it does not resolve in time.
async fn addresses(host: &str, port: u16) -> BTreeSet<IpAddr> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => addrs.map(|a| a.ip()).collect(),
        _ => BTreeSet::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_read_as_the_driver_reads_them() {
        assert_eq!(
            source_addr("postgres://u:p@DB.example.com:6543/erp").unwrap(),
            SourceAddr::Server {
                host: "db.example.com".into(),
                port: 6543,
                database: "erp".into()
            }
        );
        // A query parameter moves the host: the driver's reading counts, not the text's.
        assert_eq!(
            source_addr("postgres://u@allowed.example.com/erp?host=10.0.0.9&port=5433").unwrap(),
            SourceAddr::Server {
                host: "10.0.0.9".into(),
                port: 5433,
                database: "erp".into()
            }
        );
        assert!(matches!(
            source_addr("postgres://u@h/erp?host=/var/run/postgresql").unwrap(),
            SourceAddr::Socket(_)
        ));
        assert!(source_addr("postgres://u@h/erp?options=-c%20search_path%3Dx").is_err());
        assert_eq!(
            source_addr("mariadb://root@127.0.0.1:3306/erp").unwrap(),
            SourceAddr::Server {
                host: "127.0.0.1".into(),
                port: 3306,
                database: "erp".into()
            }
        );
        assert_eq!(
            source_addr("sqlite:///srv/erp/a.db?mode=ro").unwrap(),
            SourceAddr::File("/srv/erp/a.db".into())
        );
    }

    #[tokio::test]
    async fn loopback_names_are_one_machine() {
        assert!(same_host("127.0.0.1", "localhost", 5432).await);
        assert!(same_host("127.0.0.1", "127.0.0.2", 5432).await);
        assert!(same_host("LOCALHOST", "localhost", 5432).await);
        assert!(!same_host("127.0.0.1", "192.0.2.1", 5432).await);
    }
}
