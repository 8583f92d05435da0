//! The host CRM's `erpsync.v1.CrmSink` as a run's destination (`serve --crm-sink
//! grpc://host:port`, or `grpcs://host:port` over TLS with the system's roots or
//! `--crm-sink-ca`, and erpsync's certificate when the host asks): one call per batch
//! with its idempotency key, a deadline and, with `--crm-sink-token`, the secret the host
//! checks (`authorization: Bearer …`, never logged); the run retries transient failures
//! (see `worker::delivery`). What the host acknowledged is
//! also written to erpsync's own CRM tables (by the push stage, through
//! [`CrmSink::record`]), so the delete guard weighs deletions against what the CRM holds
//! and a held deletion shows the CRM's name and document.

use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::Code;

use super::convert::{json_struct, record_version as version};
use super::pb::{self, crm_sink_client::CrmSinkClient};
use crate::config::{setting, SinkAccess};
use crate::domain::abc::Category;
use crate::domain::crm::{CrmCompany, CrmContact, Deletion};
use crate::domain::run::CrmCountSource;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::worker::sink::{CrmCounts, CrmSink, EmbeddedSink, SinkAck, SinkCall};

/// A client of the host's CrmSink.
#[derive(Clone)]
pub struct GrpcSink {
    client: CrmSinkClient<InterceptedService<Channel, Bearer>>,
    endpoint: Endpoint,
    url: String,
    /// erpsync's record of what the host accepted: the embedded CRM.
    mirror: EmbeddedSink,
}

impl std::fmt::Debug for GrpcSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrpcSink").field("url", &self.url).finish()
    }
}

/// How long connecting to the sink (TLS handshake included) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the host's sink is and how it is reached, checked: the URL read, the TLS files
/// read and parsed, the secret fit for a header. Checked before the server starts.
#[derive(Clone)]
pub struct SinkTarget {
    endpoint: Endpoint,
    bearer: Bearer,
    /// The URL, any password in it masked.
    url: String,
}

impl SinkTarget {
    /// The sink at `url` (`grpc://`/`http://` in clear, `grpcs://`/`https://` over TLS),
    /// reached as `access` says.
    pub fn new(url: &str, access: &SinkAccess) -> Result<Self> {
        Ok(Self {
            endpoint: endpoint(url, access, Some(&setting::CRM_SINK))?
                .connect_timeout(CONNECT_TIMEOUT),
            bearer: Bearer::new(access)?,
            url: crate::domain::secret::redact_url(url),
        })
    }
}

impl GrpcSink {
    /// A sink for `target` whose calls end after `call_timeout`; connects on first use,
    /// so a host that is down at start only fails (and retries) the runs that need it
    /// ([`CrmSink::probe`] tells at start).
    pub fn new(target: SinkTarget, call_timeout: Duration, mirror: EmbeddedSink) -> Self {
        let endpoint = target.endpoint.timeout(call_timeout);
        Self {
            client: CrmSinkClient::with_interceptor(endpoint.connect_lazy(), target.bearer),
            endpoint,
            url: target.url,
            mirror,
        }
    }

    /// A refusal of the host's as an error naming the sink (never its secret).
    fn refused(&self, status: &tonic::Status) -> AppError {
        AppError::Sink {
            status: format!(
                "{} answered {:?}: {}",
                self.url,
                status.code(),
                crate::domain::text::excerpt(status.message())
            ),
            transient: transient(status.code()),
        }
    }

    /// The host's answer as a delivery outcome: a transient failure (down, slow, busy)
    /// is retried by the run, any other is not.
    fn outcome(
        &self,
        answer: std::result::Result<tonic::Response<pb::SinkResponse>, tonic::Status>,
    ) -> Result<SinkAck> {
        match answer {
            Ok(r) => Ok(SinkAck {
                total: r.into_inner().total,
            }),
            Err(status) => Err(self.refused(&status)),
        }
    }
}

/// Opens the sinks the admin sets for tenants (`Admin.SetTenantSink`) with the server's
/// TLS settings (`--crm-sink-ca`, `--crm-sink-cert`/`--crm-sink-key`; a `grpc://` sink
/// in clear uses none) and each tenant's secret; one connection per address, shared by
/// the tenants that name it.
pub struct TenantSinks {
    access: SinkAccess,
    call_timeout: Duration,
    mirror: EmbeddedSink,
    /// Per address, its endpoint and channel.
    channels: std::sync::Mutex<std::collections::HashMap<String, (Endpoint, Channel)>>,
}

impl std::fmt::Debug for TenantSinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantSinks")
            .field("access", &self.access)
            .finish_non_exhaustive()
    }
}

impl TenantSinks {
    /// Sinks reached as `access` says (its token is the server-wide sink's and is not
    /// sent to these), whose calls end after `call_timeout`, mirrored into `mirror`.
    pub fn new(access: &SinkAccess, call_timeout: Duration, mirror: EmbeddedSink) -> Self {
        Self {
            access: SinkAccess {
                token: None,
                ..access.clone()
            },
            call_timeout,
            mirror,
            channels: Default::default(),
        }
    }

    /// The endpoint of `address`: TLS settings only for a TLS address; a problem with it
    /// names it as `named`, when given.
    fn endpoint(&self, address: &str, named: Option<&dyn std::fmt::Display>) -> Result<Endpoint> {
        let access = if is_tls(address) {
            self.access.clone()
        } else {
            SinkAccess::default()
        };
        Ok(endpoint(address, &access, named)?
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(self.call_timeout))
    }
}

impl crate::worker::tenant_sink::SinkConnector for TenantSinks {
    fn check(&self, address: &str) -> std::result::Result<(), String> {
        self.endpoint(address, None)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn connect(&self, address: &str, secret: Option<&str>) -> Result<std::sync::Arc<dyn CrmSink>> {
        let bearer = Bearer::of(secret, &"the tenant's sink secret")?;
        let (endpoint, channel) = {
            let mut channels = self
                .channels
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            match channels.get(address) {
                Some(known) => known.clone(),
                None => {
                    let endpoint = self.endpoint(address, Some(&"address"))?;
                    let channel = endpoint.connect_lazy();
                    channels.insert(address.to_owned(), (endpoint.clone(), channel.clone()));
                    (endpoint, channel)
                }
            }
        };
        Ok(std::sync::Arc::new(GrpcSink {
            client: CrmSinkClient::with_interceptor(channel, bearer),
            endpoint,
            url: crate::domain::secret::redact_url(address),
            mirror: self.mirror.clone(),
        }))
    }
}

/// The secret sent on every call, if any.
#[derive(Clone)]
struct Bearer(Option<MetadataValue<Ascii>>);

impl Bearer {
    fn new(access: &SinkAccess) -> Result<Self> {
        Self::of(access.token.as_deref(), &setting::CRM_SINK_TOKEN)
    }

    /// The header carrying `token`, if any; a token unfit for it is refused naming
    /// `named`, never showing the token.
    fn of(token: Option<&str>, named: &dyn std::fmt::Display) -> Result<Self> {
        let Some(token) = token else {
            return Ok(Self(None));
        };
        let refused = || {
            AppError::InvalidArgument(format!(
                "{named}: the sink's secret must be one or more printable ASCII characters, no \
                 spaces (the value is not shown)"
            ))
        };
        if !crate::domain::secret::header_safe(token) {
            return Err(refused());
        }
        let mut value =
            MetadataValue::try_from(format!("Bearer {token}")).map_err(|_| refused())?;
        value.set_sensitive(true);
        Ok(Self(Some(value)))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            req.metadata_mut().insert("authorization", value.clone());
        }
        Ok(req)
    }
}

/// Whether `url` is a TLS sink's: `grpcs://` or `https://`.
fn is_tls(url: &str) -> bool {
    url.starts_with("grpcs://") || url.starts_with("https://")
}

/// The endpoint of `url`: in clear for `grpc://` (`http://`), over TLS for `grpcs://`
/// (`https://`) with `access`'s CA (the system's roots without one) and certificate;
/// a problem with `url` names it as `named`, when given.
fn endpoint(
    url: &str,
    access: &SinkAccess,
    named: Option<&dyn std::fmt::Display>,
) -> Result<Endpoint> {
    let bad = |problem: String| {
        AppError::InvalidArgument(match named {
            Some(named) => format!("{named}: {problem}"),
            None => problem,
        })
    };
    let tls = is_tls(url);
    let http = match (url.strip_prefix("grpc://"), url.strip_prefix("grpcs://")) {
        (Some(rest), _) => format!("http://{rest}"),
        (_, Some(rest)) => format!("https://{rest}"),
        _ => url.to_owned(),
    };
    let endpoint =
        Endpoint::from_shared(http).map_err(|e| bad(format!("{url:?} is not a URL: {e}")))?;
    if !tls {
        if access.ca.is_some() || access.identity.is_some() {
            return Err(bad(format!(
                "{} and {} apply to a TLS sink (grpcs://); {url:?} is in clear",
                setting::CRM_SINK_CA,
                setting::CRM_SINK_CERT
            )));
        }
        return Ok(endpoint);
    }
    let read = |setting: crate::config::Setting, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            AppError::InvalidArgument(format!("{setting}: cannot read {}: {e}", path.display()))
        })
    };
    let mut config = match &access.ca {
        Some(ca) => ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(setting::CRM_SINK_CA, ca)?)),
        None => ClientTlsConfig::new().with_native_roots(),
    };
    if let Some((cert, key)) = &access.identity {
        config = config.identity(Identity::from_pem(
            read(setting::CRM_SINK_CERT, cert)?,
            read(setting::CRM_SINK_KEY, key)?,
        ));
    }
    endpoint
        .tls_config(config)
        .map_err(|e| bad(format!("TLS for {url:?}: {}", error_chain(&e))))
}

/// An error and its causes, for a person ("transport error" alone says nothing).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    std::iter::successors(Some(e), |e| e.source())
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable
            | Code::DeadlineExceeded
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
            | Code::Cancelled
    )
}

#[tonic::async_trait]
impl CrmSink for GrpcSink {
    fn destination(&self) -> String {
        self.url.clone()
    }

    async fn probe(&self) -> Result<()> {
        match self.endpoint.connect().await {
            Ok(_) => Ok(()),
            Err(e) => Err(AppError::Sink {
                status: format!("{} cannot be reached: {}", self.url, error_chain(&e)),
                transient: true,
            }),
        }
    }

    async fn count_records(&self, tenant: &TenantId) -> Result<Option<CrmCounts>> {
        let req = pb::CountRecordsRequest {
            tenant_id: tenant.to_string(),
        };
        match self.client.clone().count_records(req).await {
            Ok(r) => {
                let r = r.into_inner();
                Ok(Some(CrmCounts {
                    companies: r.companies,
                    contacts: r.contacts,
                    source: CrmCountSource::HostCount,
                }))
            }
            Err(status) if status.code() == Code::Unimplemented => Ok(None),
            Err(status) => Err(self.refused(&status)),
        }
    }

    async fn upsert_companies(&self, call: SinkCall, rows: &[CrmCompany]) -> Result<SinkAck> {
        let req = pb::UpsertCompaniesRequest {
            tenant_id: call.tenant.to_string(),
            run_id: call.run_id,
            idempotency_key: call.idempotency_key,
            companies: rows
                .iter()
                .map(|c| pb::CrmCompany {
                    external_id: c.external_id.clone(),
                    name: c.name.clone(),
                    document: c.document.clone(),
                    seller_id: c.seller_id.clone(),
                    city: c.city.clone(),
                    state: c.state.clone(),
                    email: c.email.clone(),
                    phone: c.phone.clone(),
                    version: version(&c.version),
                    fields: Some(json_struct(&c.fields)),
                })
                .collect(),
        };
        self.outcome(self.client.clone().upsert_companies(req).await)
    }

    async fn upsert_contacts(&self, call: SinkCall, rows: &[CrmContact]) -> Result<SinkAck> {
        let req = pb::UpsertContactsRequest {
            tenant_id: call.tenant.to_string(),
            run_id: call.run_id,
            idempotency_key: call.idempotency_key,
            contacts: rows
                .iter()
                .map(|c| pb::CrmContact {
                    external_id: c.external_id.clone(),
                    name: c.name.clone(),
                    document: c.document.clone(),
                    company_id: c.company_id.clone(),
                    email: c.email.clone(),
                    phone: c.phone.clone(),
                    version: version(&c.version),
                    fields: Some(json_struct(&c.fields)),
                })
                .collect(),
        };
        self.outcome(self.client.clone().upsert_contacts(req).await)
    }

    async fn delete_companies(&self, call: SinkCall, ids: &[Deletion]) -> Result<SinkAck> {
        let req = delete_request(call, ids);
        self.outcome(self.client.clone().delete_companies(req).await)
    }

    async fn delete_contacts(&self, call: SinkCall, ids: &[Deletion]) -> Result<SinkAck> {
        let req = delete_request(call, ids);
        self.outcome(self.client.clone().delete_contacts(req).await)
    }

    fn record(&self) -> Option<&EmbeddedSink> {
        Some(&self.mirror)
    }

    async fn apply_categories(&self, call: SinkCall, rows: Vec<Category>) -> Result<SinkAck> {
        let req = pb::ApplyCategoriesRequest {
            tenant_id: call.tenant.to_string(),
            run_id: call.run_id.clone(),
            idempotency_key: call.idempotency_key.clone(),
            categories: rows
                .into_iter()
                .map(super::convert::company_category)
                .collect(),
        };
        self.outcome(self.client.clone().apply_categories(req).await)
    }
}

fn delete_request(call: SinkCall, ids: &[Deletion]) -> pb::DeleteRecordsRequest {
    pb::DeleteRecordsRequest {
        tenant_id: call.tenant.to_string(),
        run_id: call.run_id,
        idempotency_key: call.idempotency_key,
        external_ids: ids.iter().map(|d| d.external_id.clone()).collect(),
        versions: ids.iter().filter_map(|d| version(&d.version)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str, access: &SinkAccess) -> std::result::Result<SinkTarget, String> {
        SinkTarget::new(url, access).map_err(|e| e.to_string())
    }

    #[test]
    fn tls_options_go_with_a_tls_sink_only() {
        let access = SinkAccess {
            ca: Some("/nonexistent/ca.pem".into()),
            ..SinkAccess::default()
        };
        let err = target("grpc://crm:50052", &access).err().unwrap();
        assert!(
            err.contains("--crm-sink-ca") && err.contains("in clear"),
            "{err}"
        );
        let err = target("grpcs://crm:50052", &access).err().unwrap();
        assert!(
            err.contains("--crm-sink-ca") && err.contains("/nonexistent/ca.pem"),
            "{err}"
        );
        assert!(target("grpcs://crm:50052", &SinkAccess::default()).is_ok());
        assert!(target("https://crm:50052", &SinkAccess::default()).is_ok());
    }

    #[tokio::test]
    async fn a_tenant_sinks_secret_is_not_in_its_debug_output_nor_its_errors() {
        use crate::worker::tenant_sink::SinkConnector;
        let db = crate::storage::Db::connect("sqlite::memory:")
            .await
            .unwrap();
        let sinks = TenantSinks::new(
            &SinkAccess {
                token: Some("the-servers-s3cret".into()),
                ..SinkAccess::default()
            },
            Duration::from_secs(1),
            EmbeddedSink::new(db),
        );
        let sink = sinks
            .connect("grpc://127.0.0.1:1", Some("tenant-s3cret"))
            .unwrap();
        let shown = format!("{sink:?} {sinks:?} {}", sink.destination());
        assert!(!shown.contains("s3cret"), "{shown}");
        // One channel per address, whoever names it.
        sinks.connect("grpc://127.0.0.1:1", None).unwrap();
        assert_eq!(sinks.channels.lock().unwrap().len(), 1);
        let err = sinks
            .connect("grpc://127.0.0.1:1", Some("bad s3cret"))
            .err()
            .unwrap()
            .to_string();
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn a_secret_that_cannot_travel_in_a_header_is_refused_without_being_shown() {
        for bad in ["", "has space", "ñandu", "line\nbreak"] {
            let access = SinkAccess {
                token: Some(bad.to_owned()),
                ..SinkAccess::default()
            };
            let err = target("grpc://crm:50052", &access).err().unwrap();
            assert!(err.contains("--crm-sink-token"), "{err}");
            assert!(bad.is_empty() || !err.contains(bad), "{err}");
        }
        let access = SinkAccess {
            token: Some("s3cret".into()),
            ..SinkAccess::default()
        };
        assert!(target("grpc://crm:50052", &access).is_ok());
        assert!(!format!("{access:?}").contains("s3cret"));
    }
}
