//! Which CRM a tenant's runs deliver to: its own sink when the admin set one
//! (`Admin.SetTenantSink`), else the server's `--crm-sink`, else the embedded CRM. A
//! tenant's sink secret is sealed at rest with the operator's key (bound to the tenant,
//! see [`crate::domain::secret`]) and opened only to be sent as `authorization: Bearer`;
//! it never appears in logs, errors, answers or `Debug` output.

use std::sync::Arc;

use crate::clock::SharedClock;

use crate::domain::abc::Category;
use crate::domain::crm::{CrmCompany, CrmContact, Deletion};
use crate::domain::secret::SecretKey;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, FieldViolation, Result};
use crate::storage::tenant_sinks::{self, StoredSink};
use crate::storage::{tenants, Db};
use crate::worker::sink::{CrmCounts, CrmSink, SinkAck, SinkCall};

/// How the embedded CRM is named where a sink's address is shown.
pub const EMBEDDED: &str = "embedded";
/// The longest secret a tenant's sink may have.
const MAX_SECRET_BYTES: usize = 4096;
/// The longest address a tenant's sink may have.
const MAX_ADDRESS_BYTES: usize = 2048;

/// Opens host sinks at addresses the admin names (the gRPC client, with the server's
/// TLS settings); implemented by the transport.
pub trait SinkConnector: Send + Sync + std::fmt::Debug {
    /// Why `address` cannot be a sink (a message for a person), if it cannot.
    fn check(&self, address: &str) -> std::result::Result<(), String>;
    /// A sink at `address` sending `secret` on every call.
    fn connect(&self, address: &str, secret: Option<&str>) -> Result<Arc<dyn CrmSink>>;
}

/// A tenant's own sink, as the admin sees it: never its secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSinkView {
    /// The tenant.
    pub tenant: TenantId,
    /// Its sink's address; None when it delivers to the server's sink.
    pub address: Option<String>,
    /// Whether a secret is stored.
    pub has_secret: bool,
}

/// The sinks runs deliver to: the server's and the tenants' own.
#[derive(Clone, Debug)]
pub struct Sinks {
    db: Db,
    server_wide: Arc<dyn CrmSink>,
    connector: Option<Arc<dyn SinkConnector>>,
    key: Option<SecretKey>,
    /// Stamps a tenant's sink change.
    clock: SharedClock,
}

impl Sinks {
    /// Tenants deliver to `server_wide` unless they have a sink of their own, opened by
    /// `connector` (None: this process cannot open one, and such a tenant's runs fail)
    /// with its secret opened by `key`; `clock` stamps changes.
    pub fn new(
        db: Db,
        server_wide: Arc<dyn CrmSink>,
        connector: Option<Arc<dyn SinkConnector>>,
        key: Option<SecretKey>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            server_wide,
            connector,
            key,
            clock,
        }
    }

    /// The server's sink (`--crm-sink`, or the embedded CRM).
    pub fn server_wide(&self) -> &Arc<dyn CrmSink> {
        &self.server_wide
    }

    /// Where `tenant`'s runs deliver now. A tenant's sink that cannot be opened (its
    /// secret sealed with another key, the database unreachable, …) is a sink that
    /// refuses every call with why, so the run that needs it fails saying so.
    pub async fn of(&self, tenant: &TenantId) -> Arc<dyn CrmSink> {
        let stored = match tenant_sinks::get(&self.db, tenant).await {
            Ok(None) => return self.server_wide.clone(),
            Ok(Some(stored)) => stored,
            Err(e) => {
                return Arc::new(Unusable {
                    address: "(unknown)".into(),
                    why: format!("cannot read which sink the tenant has: {e}"),
                })
            }
        };
        match self.open(tenant, &stored) {
            Ok(sink) => sink,
            Err(e) => Arc::new(Unusable {
                address: stored.address,
                why: e.to_string(),
            }),
        }
    }

    /// The one name of the sink `tenant` delivers to, for a person: its own sink's
    /// address, else the server's (its URL without a password), else "embedded"; never
    /// a secret.
    pub async fn name(&self, tenant: &TenantId) -> Result<String> {
        Ok(match tenant_sinks::get(&self.db, tenant).await? {
            Some(stored) => stored.address,
            None => address_of(self.server_wide.as_ref()),
        })
    }

    /// Sets `tenant`'s own sink: `address` checked as `--crm-sink` is (grpc://,
    /// grpcs:// or https://, nothing else in it), `secret` (empty: none) sealed.
    /// INVALID_ARGUMENT naming the field, FAILED_PRECONDITION for a secret without a
    /// key to seal it, NOT_FOUND for an unknown tenant; nothing is stored then.
    pub async fn set(
        &self,
        tenant: &TenantId,
        address: &str,
        secret: &str,
    ) -> Result<TenantSinkView> {
        let mut violations = Vec::new();
        if let Err(why) = self.check_address(address) {
            violations.push(FieldViolation::new("address", why));
        }
        if let Err(why) = check_secret(secret) {
            violations.push(FieldViolation::new("secret", why));
        }
        if !violations.is_empty() {
            return Err(AppError::InvalidFields(violations));
        }
        tenants::require(&self.db, tenant).await?;
        let sealed_secret = match (secret.is_empty(), &self.key) {
            (true, _) => None,
            (false, Some(key)) => Some(key.seal(secret, &owner(tenant))),
            (false, None) => {
                return Err(AppError::FailedPrecondition(
                    "this server has no ERPSYNC_SECRET_KEY, so it cannot store a sink's \
                     secret sealed: the operator sets the key (see README, Configuration)"
                        .into(),
                ))
            }
        };
        let stored = StoredSink {
            address: address.to_owned(),
            sealed_secret,
        };
        tenant_sinks::set(&self.db, tenant, &stored, self.clock.now()).await?;
        tracing::info!(tenant = %tenant, address = %stored.address, has_secret = stored.sealed_secret.is_some(), "tenant sink set");
        Ok(view(tenant, Some(&stored)))
    }

    /// Removes `tenant`'s own sink: its runs deliver to the server's again. NOT_FOUND
    /// for an unknown tenant.
    pub async fn clear(&self, tenant: &TenantId) -> Result<TenantSinkView> {
        tenants::require(&self.db, tenant).await?;
        if tenant_sinks::clear(&self.db, tenant).await? {
            tracing::info!(tenant = %tenant, "tenant sink cleared");
        }
        Ok(view(tenant, None))
    }

    fn check_address(&self, address: &str) -> std::result::Result<(), String> {
        check_address(address)?;
        match &self.connector {
            Some(c) => c.check(address),
            None => Ok(()),
        }
    }

    fn open(&self, tenant: &TenantId, stored: &StoredSink) -> Result<Arc<dyn CrmSink>> {
        let connector = self.connector.as_ref().ok_or_else(|| {
            AppError::FailedPrecondition("this process cannot reach a tenant's own sink".into())
        })?;
        let secret = match &stored.sealed_secret {
            None => None,
            Some(sealed) => {
                let key = self.key.as_ref().ok_or_else(|| {
                    AppError::FailedPrecondition(
                        "its secret is sealed: the server needs the ERPSYNC_SECRET_KEY it was \
                         sealed with"
                            .into(),
                    )
                })?;
                Some(
                    key.open(sealed, &owner(tenant))
                        .map_err(|e| AppError::FailedPrecondition(format!("its secret: {e}")))?,
                )
            }
        };
        connector.connect(&stored.address, secret.as_deref())
    }
}

/// A sink's address for a person: "embedded" for the embedded CRM.
fn address_of(sink: &dyn CrmSink) -> String {
    if sink.is_embedded() {
        EMBEDDED.to_owned()
    } else {
        sink.destination()
    }
}

/// What a tenant's sink secret is sealed for: the tenant, and this purpose (a sealed
/// View URL copied here does not open).
fn owner(tenant: &TenantId) -> String {
    format!("{tenant}/crm-sink")
}

fn view(tenant: &TenantId, stored: Option<&StoredSink>) -> TenantSinkView {
    TenantSinkView {
        tenant: tenant.clone(),
        address: stored.map(|s| s.address.clone()),
        has_secret: stored.is_some_and(|s| s.sealed_secret.is_some()),
    }
}

/// A tenant sink's address: `grpc://`, `grpcs://` or `https://` and host:port, nothing
/// else (no user or password, path, query or spaces).
fn check_address(address: &str) -> std::result::Result<(), String> {
    let rest = ["grpc://", "grpcs://", "https://"]
        .iter()
        .find_map(|scheme| address.strip_prefix(scheme))
        .ok_or_else(|| {
            format!(
                "must be grpc://HOST:PORT, grpcs://HOST:PORT or https://HOST:PORT, got {:?}",
                crate::domain::text::excerpt(&crate::domain::secret::redact_url(address))
            )
        })?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if address.len() > MAX_ADDRESS_BYTES {
        return Err(format!("at most {MAX_ADDRESS_BYTES} bytes"));
    }
    if authority.is_empty()
        || !authority
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
    {
        return Err(
            "must be a scheme and HOST:PORT only (no user, password, path, query or spaces)".into(),
        );
    }
    Ok(())
}

/// A tenant sink's secret: empty (none), or printable ASCII without spaces, as an
/// `authorization` header carries it, at most [`MAX_SECRET_BYTES`]. The value is never
/// shown.
fn check_secret(secret: &str) -> std::result::Result<(), String> {
    if secret.len() > MAX_SECRET_BYTES {
        return Err(format!(
            "at most {MAX_SECRET_BYTES} bytes, got {} (the value is not shown)",
            secret.len()
        ));
    }
    if !secret.is_empty() && !crate::domain::secret::header_safe(secret) {
        return Err(
            "printable ASCII characters only: no spaces, NUL or other control characters \
             (the value is not shown)"
                .into(),
        );
    }
    Ok(())
}

/// A tenant's sink that cannot be opened: every call fails with why (not retried).
#[derive(Debug)]
struct Unusable {
    address: String,
    why: String,
}

impl Unusable {
    fn refuse<T>(&self) -> Result<T> {
        Err(AppError::Sink {
            status: format!(
                "the tenant's sink {} cannot be used: {}",
                self.address, self.why
            ),
            transient: false,
        })
    }
}

#[tonic::async_trait]
impl CrmSink for Unusable {
    async fn upsert_companies(&self, _: SinkCall, _: &[CrmCompany]) -> Result<SinkAck> {
        self.refuse()
    }
    async fn upsert_contacts(&self, _: SinkCall, _: &[CrmContact]) -> Result<SinkAck> {
        self.refuse()
    }
    async fn delete_companies(&self, _: SinkCall, _: &[Deletion]) -> Result<SinkAck> {
        self.refuse()
    }
    async fn delete_contacts(&self, _: SinkCall, _: &[Deletion]) -> Result<SinkAck> {
        self.refuse()
    }
    async fn apply_categories(&self, _: SinkCall, _: Vec<Category>) -> Result<SinkAck> {
        self.refuse()
    }
    async fn count_records(&self, _: &TenantId) -> Result<Option<CrmCounts>> {
        self.refuse()
    }
    fn destination(&self) -> String {
        self.address.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_sink_address_is_a_scheme_and_host_port_only() {
        for ok in [
            "grpc://crm:50052",
            "grpcs://crm.example.com:443",
            "https://crm.example.com",
            "grpc://[::1]:50052/",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            "crm:50052",
            "http://crm:50052",
            "postgres://crm:5432",
            "grpc://",
            "grpc://user:pw@crm:50052",
            "grpc://crm:50052/path",
            "grpc://crm:50052?x=1",
            "grpc://crm :50052",
        ] {
            let err = check_address(bad).unwrap_err();
            assert!(!err.contains("pw@"), "{err}");
        }
    }

    #[test]
    fn a_secret_is_printable_ascii_within_4_kib_and_never_shown() {
        assert_eq!(check_secret(""), Ok(()));
        assert_eq!(check_secret(&"s".repeat(MAX_SECRET_BYTES)), Ok(()));
        for bad in [
            "s".repeat(MAX_SECRET_BYTES + 1),
            "nul\0inside".into(),
            "has space".into(),
            "ñandu".into(),
        ] {
            let err = check_secret(&bad).unwrap_err();
            assert!(!err.contains(bad.as_str()), "{err}");
        }
    }
}
