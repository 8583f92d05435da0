//! Which databases a tenant's View integration may read. That is the operator's decision,
//! never the tenant's, and it is made per tenant: a `crm` token names a URL, and erpsync
//! reads it only when the operator granted that very source to that tenant ([`Grant`]: a
//! database on a server, by host, port and name, or a SQLite file) and the server-wide
//! list ([`SourcePolicy`]) still allows it: the list bounds what may be granted, a grant
//! binds a source to one tenant. A source granted to tenant B is refused to tenant C.
//! erpsync's own database is never a source, whatever the list says: a View over it would
//! hand one tenant every tenant's data.
//!
//! Every refusal reads the same ([`REFUSED`]): whether a file exists, a port answers or
//! another tenant was granted a source is none of the tenant's business.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::view::Backend;

/// The one answer to a View source that is not allowed, whatever the reason.
pub const REFUSED: &str = "this database is not a View source the server's operator allows: \
    ask them to allow its host and port (--view-allow-host) or its SQLite folder \
    (--view-sqlite-dir)";

/// Who named a View source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// A tenant, through the API (a `crm` token): only sources granted to it, within the
    /// operator's list.
    Tenant,
    /// The operator, through `erpsync tenant set-view` on the database itself: no list
    /// applies (erpsync's own database is still refused).
    Operator,
}

impl Naming {
    /// As stored: `tenant` or `operator`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Operator => "operator",
        }
    }

    /// The stored spelling read back; anything unknown counts as the tenant's (checked).
    pub fn parse(s: &str) -> Self {
        match s {
            "operator" => Self::Operator,
            _ => Self::Tenant,
        }
    }
}

/// A View source the operator granted one tenant: a database on a server, or a SQLite
/// file. Built only from a parsed URL (see `viewdb::ViewAccess::grant_of`) or read back
/// from storage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// One database on one server, host spelled as the URL spells it (lower-case).
    Server {
        /// PostgreSQL or MySQL/MariaDB.
        backend: GrantBackend,
        /// Host name or address, lower-case, IPv6 without brackets.
        host: String,
        /// TCP port, as the driver reads the URL (its default when the URL has none).
        port: u16,
        /// The database; never empty.
        database: String,
    },
    /// One SQLite file, its canonical path (links and `..` resolved when granted).
    File(PathBuf),
}

/// The server kinds a grant names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum GrantBackend {
    /// `postgres://`.
    Postgres,
    /// `mysql://` or `mariadb://`.
    MySql,
}

impl Grant {
    /// `postgres`, `mysql` or `sqlite`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Server {
                backend: GrantBackend::Postgres,
                ..
            } => "postgres",
            Self::Server {
                backend: GrantBackend::MySql,
                ..
            } => "mysql",
            Self::File(_) => "sqlite",
        }
    }

    /// The grant of `addr`, a source of `backend` (a file's path canonical): None for a
    /// Unix socket, which is never a source, or a server URL without a database (a host
    /// alone would let a tenant read every database on it).
    pub fn of(backend: Backend, addr: &SourceAddr) -> Option<Self> {
        match (backend, addr) {
            (
                Backend::Postgres | Backend::MySql,
                SourceAddr::Server {
                    host,
                    port,
                    database,
                },
            ) if !database.is_empty() => Some(Self::Server {
                backend: if backend == Backend::Postgres {
                    GrantBackend::Postgres
                } else {
                    GrantBackend::MySql
                },
                host: host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase(),
                port: *port,
                database: database.clone(),
            }),
            (Backend::Sqlite, SourceAddr::File(path)) => Some(Self::File(path.clone())),
            _ => None,
        }
    }

    /// Whether the server-wide list still allows this grant.
    pub fn within(&self, policy: &SourcePolicy) -> bool {
        match self {
            Self::Server { host, port, .. } => policy.admits_server(host, *port),
            Self::File(path) => policy.admits_file(path),
        }
    }
}

impl fmt::Display for Grant {
    /// `postgres://host:5432/erp_b`, `mysql://[::1]:3306/erp_b`, `sqlite:///srv/erp/b.db`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Server {
                host,
                port,
                database,
                ..
            } => {
                let host = HostPort {
                    host: host.clone(),
                    port: Some(*port),
                };
                write!(f, "{}://{host}/{database}", self.kind())
            }
            Self::File(path) => write!(f, "sqlite://{}", path.display()),
        }
    }
}

/// Where a View URL points, as its driver would connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceAddr {
    /// A database server, by host name or address and port, and the database on it.
    Server {
        /// Host name or address, lower-case, IPv6 without brackets.
        host: String,
        /// TCP port.
        port: u16,
        /// Database name.
        database: String,
    },
    /// A Unix socket: never a View source (it reaches servers on this machine).
    Socket(PathBuf),
    /// A SQLite file, as the URL spells its path.
    File(PathBuf),
}

/// A host (name or address) with an optional port, as the operator allows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    host: String,
    port: Option<u16>,
}

impl FromStr for HostPort {
    type Err = String;

    /// `erp.example.com`, `erp.example.com:5432`, `10.0.0.5:3306`, `[::1]:5432`.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        let bad = || {
            format!("{s:?} is not HOST or HOST:PORT (an IPv6 address goes in brackets: [::1]:5432)")
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(bad)?;
            match after {
                "" => (host, None),
                _ => (host, Some(after.strip_prefix(':').ok_or_else(bad)?)),
            }
        } else {
            match s.split_once(':') {
                Some((h, p)) if !p.contains(':') => (h, Some(p)),
                Some(_) => return Err(bad()),
                None => (s, None),
            }
        };
        let ok_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':'));
        if !ok_host {
            return Err(bad());
        }
        let port = match port {
            None => None,
            Some(p) => Some(p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?),
        };
        Ok(Self {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.host.contains(':'), self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (_, None) => f.write_str(&self.host),
        }
    }
}

/// The operator's list of View sources. Empty (the default): no tenant may configure a
/// View integration through the API.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// Database servers a View may read; a host without a port allows every port.
    pub hosts: Vec<HostPort>,
    /// Folders whose SQLite files (and their subfolders') a View may read, canonical.
    pub sqlite_dirs: Vec<PathBuf>,
}

impl SourcePolicy {
    /// Whether the server at `host:port` is on the list (names compared as spelled, in
    /// any case: an address the list does not spell is refused, even if it is the same
    /// machine).
    pub fn admits_server(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.hosts
            .iter()
            .any(|h| h.host.eq_ignore_ascii_case(host) && h.port.is_none_or(|p| p == port))
    }

    /// Whether the file at `canonical` (symbolic links and `..` resolved) lies in one of
    /// the allowed folders.
    pub fn admits_file(&self, canonical: &Path) -> bool {
        self.sqlite_dirs.iter().any(|d| canonical.starts_with(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(hosts: &[&str], dirs: &[&str]) -> SourcePolicy {
        SourcePolicy {
            hosts: hosts.iter().map(|h| h.parse().unwrap()).collect(),
            sqlite_dirs: dirs.iter().map(PathBuf::from).collect(),
        }
    }

    #[test]
    fn hosts_parse_with_and_without_ports() {
        for (text, shown) in [
            ("erp.example.com", "erp.example.com"),
            ("ERP.example.com:5432", "erp.example.com:5432"),
            ("10.0.0.5:3306", "10.0.0.5:3306"),
            ("[::1]:5432", "[::1]:5432"),
            ("[::1]", "::1"),
        ] {
            assert_eq!(text.parse::<HostPort>().unwrap().to_string(), shown);
        }
        for bad in [
            "",
            ":5432",
            "h:0",
            "h:99999",
            "h:x",
            "::1:5432",
            "[::1]5432",
            "a b",
            "h/x",
        ] {
            assert!(bad.parse::<HostPort>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn only_listed_hosts_and_ports_are_admitted() {
        let p = policy(&["erp.example.com:5432", "10.0.0.5", "[::1]:3306"], &[]);
        assert!(p.admits_server("ERP.example.com", 5432));
        assert!(!p.admits_server("erp.example.com", 5433));
        assert!(p.admits_server("10.0.0.5", 1));
        assert!(p.admits_server("[::1]", 3306));
        assert!(!p.admits_server("127.0.0.1", 5432));
        assert!(!SourcePolicy::default().admits_server("erp.example.com", 5432));
    }

    #[test]
    fn only_files_inside_allowed_folders_are_admitted() {
        let p = policy(&[], &["/srv/erp"]);
        assert!(p.admits_file(Path::new("/srv/erp/a.db")));
        assert!(p.admits_file(Path::new("/srv/erp/sub/a.db")));
        assert!(!p.admits_file(Path::new("/srv/erpx/a.db")));
        assert!(!p.admits_file(Path::new("/etc/shadow")));
    }

    fn server(host: &str, port: u16, database: &str) -> SourceAddr {
        SourceAddr::Server {
            host: host.into(),
            port,
            database: database.into(),
        }
    }

    #[test]
    fn a_grant_names_one_database_or_one_file() {
        let pg = Grant::of(Backend::Postgres, &server("db.example.com", 5432, "erp_b")).unwrap();
        assert_eq!(pg.to_string(), "postgres://db.example.com:5432/erp_b");
        let my = Grant::of(Backend::MySql, &server("::1", 3306, "erp_b")).unwrap();
        assert_eq!(my.to_string(), "mysql://[::1]:3306/erp_b");
        let file = Grant::of(Backend::Sqlite, &SourceAddr::File("/srv/erp/b.db".into())).unwrap();
        assert_eq!(file.to_string(), "sqlite:///srv/erp/b.db");
        // A host alone, or a socket, is no grant.
        assert_eq!(Grant::of(Backend::MySql, &server("h", 3306, "")), None);
        assert_eq!(
            Grant::of(Backend::Postgres, &SourceAddr::Socket("/run/pg".into())),
            None
        );
        // The same place through another driver is another grant.
        assert_ne!(
            Grant::of(Backend::MySql, &server("db.example.com", 5432, "erp_b")),
            Some(pg)
        );
    }

    #[test]
    fn the_server_wide_list_bounds_grants() {
        let p = policy(&["db.example.com:5432"], &["/srv/erp"]);
        let grant = |host, port| Grant::of(Backend::Postgres, &server(host, port, "erp")).unwrap();
        assert!(grant("db.example.com", 5432).within(&p));
        assert!(!grant("db.example.com", 5433).within(&p));
        assert!(!grant("other.example.com", 5432).within(&p));
        assert!(Grant::File("/srv/erp/b.db".into()).within(&p));
        assert!(!Grant::File("/srv/other/b.db".into()).within(&p));
    }

    #[test]
    fn namings_read_back_and_unknown_ones_are_the_tenants() {
        for n in [Naming::Tenant, Naming::Operator] {
            assert_eq!(Naming::parse(n.as_str()), n);
        }
        assert_eq!(Naming::parse(""), Naming::Tenant);
    }
}
