//! The gate in front of every View source, passed when a URL is stored and again before
//! every connection (a run, a check): a URL a tenant names must be a source the operator
//! granted that tenant ([`Grant`]) and still on the operator's server-wide list
//! ([`SourcePolicy`]); on MySQL/MariaDB every view must lie in the URL's database (a
//! qualified name could reach another database on the server, `mysql.user` among them);
//! no URL, whoever names it, may reach erpsync's own database. The own database is
//! recognized by address before connecting (the same file, or the same database on a
//! server reached by any of its names) and, after connecting, by the random id of its
//! `erpsync_instance` row, which catches names the first check cannot know (another
//! address of the same machine, a link).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use sqlx::mysql::MySqlConnectOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::erp::ErpDb;
use crate::domain::secret::SecretKey;
use crate::domain::secret::{scrub, url_secrets};
use crate::domain::view::{Backend, ViewConfig};
pub use crate::domain::view_source::Naming;
use crate::domain::view_source::{Grant, SourceAddr, SourcePolicy, REFUSED};
use crate::error::AppError;

/// How long resolving a host name may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

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

    /// Checks a configuration before it is stored: PERMISSION_DENIED with one message for
    /// every refusal of a tenant's (not granted to it, off the list, erpsync's own
    /// database, a file that does not exist, a MySQL view outside the URL's database), so
    /// that nothing about what exists is told. `grants` are the tenant's.
    pub async fn admit(
        &self,
        cfg: &ViewConfig,
        naming: Naming,
        grants: &[Grant],
    ) -> Result<(), AppError> {
        source_addr(&cfg.url).map_err(AppError::InvalidArgument)?;
        self.gate(cfg, naming, grants)
            .await
            .map_err(AppError::PermissionDenied)
    }

    /// Whether `url` can be stored: one with a password needs a key to be sealed with.
    pub fn sealable(&self, url: &str) -> Result<(), AppError> {
        if self.inner.key.is_none() && !url_secrets(url).is_empty() {
            return Err(AppError::FailedPrecondition(
                "this server has no ERPSYNC_SECRET_KEY, so it cannot store a View URL's \
                 password sealed: the operator sets the key (see README, Configuration)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// Connects read-only to a stored View source after the same gate as [`Self::admit`]
    /// (a grant revoked or a list narrowed since the URL was stored counts now), then
    /// refuses erpsync's own database however the URL names it (a link, a copy).
    pub async fn connect(
        &self,
        cfg: &ViewConfig,
        naming: Naming,
        grants: &[Grant],
    ) -> Result<ErpDb, String> {
        self.gate(cfg, naming, grants).await?;
        let mut erp = ErpDb::connect(&cfg.url).await?;
        if erp.erpsync_instance().await.as_deref() == Some(self.inner.own_instance.as_str()) {
            erp.close().await;
            return Err(REFUSED.into());
        }
        Ok(erp)
    }

    /// The grant an operator makes of `url` for a tenant (its credentials, if any, are
    /// not part of it): one database on a server, or one existing SQLite file, inside the
    /// server-wide list and not erpsync's own database. Every error says why.
    pub async fn grant_of(&self, url: &str) -> anyhow::Result<Grant> {
        let addr = self.canonical(url)?;
        let Some(grant) = Grant::of(Backend::of_url(url).map_err(anyhow::Error::msg)?, &addr)
        else {
            bail!(
                "a grant names one database: postgres://HOST[:PORT]/DATABASE, \
                 mysql://HOST[:PORT]/DATABASE or a SQLite file (a host alone would let \
                 the tenant read every database on it; a Unix socket is never a source)"
            );
        };
        if !grant.within(&self.inner.policy) {
            bail!(
                "{grant} is outside the server-wide list of View sources: allow its host \
                 and port (--view-allow-host) or its SQLite folder (--view-sqlite-dir) first"
            );
        }
        if self.is_own(&addr).await {
            bail!("{grant} is erpsync's own database, which is never a View source");
        }
        Ok(grant)
    }

    /// The grant `url` names, for revoking it: a file's path canonical when it still
    /// exists, as spelled otherwise.
    pub fn grant_named(&self, url: &str) -> anyhow::Result<Grant> {
        let backend = Backend::of_url(url).map_err(anyhow::Error::msg)?;
        let addr = match source_addr(url).map_err(anyhow::Error::msg)? {
            SourceAddr::File(path) => SourceAddr::File(path.canonicalize().unwrap_or(path)),
            other => other,
        };
        Grant::of(backend, &addr).ok_or_else(|| anyhow::anyhow!("{url:?} names no grant"))
    }

    /// Where `url` points, a file's path canonical (it must exist).
    fn canonical(&self, url: &str) -> anyhow::Result<SourceAddr> {
        Ok(match source_addr(url).map_err(anyhow::Error::msg)? {
            SourceAddr::File(path) => SourceAddr::File(
                path.canonicalize()
                    .with_context(|| format!("the SQLite file {}", path.display()))?,
            ),
            other => other,
        })
    }

    /// The gate: Err is the refusal's message, [`REFUSED`] for every refusal of a
    /// tenant's.
    async fn gate(&self, cfg: &ViewConfig, naming: Naming, grants: &[Grant]) -> Result<(), String> {
        let backend = Backend::of_url(&cfg.url)?;
        let addr = source_addr(&cfg.url)?;
        if naming == Naming::Tenant && !self.granted(backend, &cfg.url, grants) {
            return Err(REFUSED.into());
        }
        if let Some(outside) = outside_database(backend, &addr, cfg) {
            return Err(match naming {
                Naming::Tenant => REFUSED.into(),
                Naming::Operator => format!(
                    "the view {outside} is not in the URL's database: on MySQL/MariaDB a \
                     View reads only the database its URL names"
                ),
            });
        }
        if self.is_own(&addr).await {
            return Err(REFUSED.into());
        }
        Ok(())
    }

    /// Whether `url` is a source in `grants` that the server-wide list still allows.
    fn granted(&self, backend: Backend, url: &str, grants: &[Grant]) -> bool {
        let Ok(addr) = self.canonical(url) else {
            return false;
        };
        Grant::of(backend, &addr)
            .is_some_and(|g| g.within(&self.inner.policy) && grants.contains(&g))
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

/// On MySQL/MariaDB, a view of `cfg` named `schema.view` with another schema than the
/// URL's database (a schema is a database there); None when every view is inside.
fn outside_database<'c>(
    backend: Backend,
    addr: &SourceAddr,
    cfg: &'c ViewConfig,
) -> Option<&'c str> {
    let (Backend::MySql, SourceAddr::Server { database, .. }) = (backend, addr) else {
        return None;
    };
    cfg.tables.iter().map(|t| t.view.as_str()).find(|view| {
        view.split_once('.')
            .is_some_and(|(schema, _)| schema != database)
    })
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
