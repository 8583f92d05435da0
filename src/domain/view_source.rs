//! Which databases a tenant's View integration may read. That is the operator's decision,
//! never the tenant's: a `crm` token names a URL, and erpsync reads it only when its host
//! and port (PostgreSQL, MySQL/MariaDB) or its folder (SQLite) is on the operator's list.
//! erpsync's own database is never a source, whatever the list says: a View over it would
//! hand one tenant every tenant's data.
//!
//! Every refusal reads the same ([`REFUSED`]): whether a file exists or a port answers on
//! the server is none of the tenant's business.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The one answer to a View source that is not allowed, whatever the reason.
pub const REFUSED: &str = "this database is not a View source the server's operator allows: \
    ask them to allow its host and port (--view-allow-host) or its SQLite folder \
    (--view-sqlite-dir)";

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
}
