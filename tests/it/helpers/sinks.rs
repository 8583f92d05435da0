//! CRM sinks runs deliver to: the embedded CRM held at gates ([`GatedCrm`]) or failing on
//! demand ([`FlakySink`]), and a host CRM served over gRPC ([`HostCrm`], [`start_host`]).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use erpsync::grpc::pb;
use erpsync::worker::sink::{CrmSink, EmbeddedSink, SinkAck, SinkCall};
use tokio::sync::Notify;

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
    /// Holds the first caller until the test opens the gate; later callers pass.
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

/// The embedded CRM, failing while `down` is set (a CRM that is down).
#[derive(Debug)]
pub(crate) struct FlakySink {
    pub(crate) inner: erpsync::worker::sink::EmbeddedSink,
    pub(crate) down: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

#[tonic::async_trait]
impl erpsync::worker::sink::CrmSink for FlakySink {
    fn destination(&self) -> String {
        "a test sink that fails on demand".to_owned()
    }

    async fn upsert_companies(
        &self,
        call: SinkCall,
        rows: &[erpsync::domain::crm::CrmCompany],
    ) -> erpsync::error::Result<SinkAck> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(anyhow::anyhow!("CRM unavailable: connection refused").into());
        }
        self.inner.upsert_companies(call, rows).await
    }
    async fn upsert_contacts(
        &self,
        call: SinkCall,
        rows: &[erpsync::domain::crm::CrmContact],
    ) -> erpsync::error::Result<SinkAck> {
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
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(anyhow::anyhow!("CRM unavailable: connection refused").into());
        }
        self.inner.apply_categories(call, rows).await
    }
    async fn count_records(
        &self,
        tenant: &erpsync::domain::tenant::TenantId,
    ) -> erpsync::error::Result<Option<erpsync::worker::sink::CrmCounts>> {
        if self.down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(anyhow::anyhow!("CRM unavailable: connection refused").into());
        }
        self.inner.count_records(tenant).await
    }
}

/// A host CRM: records every call; answers UNAVAILABLE while `failing` is set; takes
/// `delay_ms` per call; holds the companies and contacts it was sent (beside
/// `host_only` of its own) and reports its total with every answer.
#[derive(Default)]
pub(crate) struct HostCrm {
    pub(crate) calls: std::sync::Mutex<Vec<(String, String, Vec<String>)>>,
    /// Every ApplyCategories entry received, in order.
    pub(crate) categories: std::sync::Mutex<Vec<pb::CompanyCategory>>,
    pub(crate) failing: std::sync::atomic::AtomicBool,
    pub(crate) delay_ms: std::sync::atomic::AtomicU64,
    /// Per table ("company", "contact"), the external ids it holds.
    pub(crate) held: std::sync::Mutex<
        std::collections::BTreeMap<&'static str, std::collections::BTreeSet<String>>,
    >,
    /// Records the host has that erpsync never sent.
    pub(crate) host_only: std::sync::atomic::AtomicU64,
    /// The idempotency key of every call answered, in order.
    pub(crate) keys: std::sync::Mutex<Vec<String>>,
    /// Every call answered, in order, with its key and each record's version.
    pub(crate) sent: std::sync::Mutex<Vec<Sent>>,
    /// When set, how many more upserts and deletes are answered before the host goes
    /// down (`failing`).
    pub(crate) answers_left: std::sync::Mutex<Option<u64>>,
    /// CountRecords answers UNIMPLEMENTED (a host that does not count on demand).
    pub(crate) no_count: std::sync::atomic::AtomicBool,
    /// How many CountRecords calls it answered with its counts.
    pub(crate) counted: std::sync::atomic::AtomicU64,
}

/// One call a host answered: the method, its idempotency key and each record's external
/// id and version.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Sent {
    pub(crate) method: String,
    pub(crate) key: String,
    pub(crate) records: Vec<(String, pb::RecordVersion)>,
}

/// What a host checks of every call: a key of 32 hex digits and a version of 16 hex
/// digits on every record (one per record): INVALID_ARGUMENT otherwise, which fails the
/// run.
fn checked(
    key: &str,
    ids: Vec<String>,
    versions: Vec<Option<pb::RecordVersion>>,
) -> Result<Vec<(String, pb::RecordVersion)>, tonic::Status> {
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    if !hex(key, 32) {
        return Err(tonic::Status::invalid_argument(format!(
            "idempotency_key {key:?} is not 32 hex digits"
        )));
    }
    if ids.len() != versions.len() {
        return Err(tonic::Status::invalid_argument(format!(
            "{} records, {} versions",
            ids.len(),
            versions.len()
        )));
    }
    ids.into_iter()
        .zip(versions)
        .map(|(id, v)| match v {
            Some(v) if hex(&v.content_hash, 16) => Ok((id, v)),
            other => Err(tonic::Status::invalid_argument(format!(
                "{id}: no version: {other:?}"
            ))),
        })
        .collect()
}

impl HostCrm {
    /// Waits (5 s at most) until a run's first call has reached the host.
    pub(crate) async fn wait_for_a_call(&self) {
        for _ in 0..500 {
            if !self.calls.lock().unwrap().is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("no call reached the host in 5 s");
    }
}

#[derive(Clone)]
pub(crate) struct HostCrmService(pub(crate) std::sync::Arc<HostCrm>);

impl HostCrmService {
    async fn record(
        &self,
        method: &str,
        tenant: &str,
        key: String,
        records: Vec<(String, pb::RecordVersion)>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        let delay = self.0.delay_ms.load(std::sync::atomic::Ordering::SeqCst);
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        {
            let mut left = self.0.answers_left.lock().unwrap();
            match left.as_mut() {
                Some(0) => self
                    .0
                    .failing
                    .store(true, std::sync::atomic::Ordering::SeqCst),
                Some(n) => *n -= 1,
                None => {}
            }
        }
        if self.0.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("maintenance"));
        }
        let ids: Vec<String> = records.iter().map(|(id, _)| id.clone()).collect();
        let applied = ids.len() as u64;
        let table = if method.ends_with("Companies") {
            "company"
        } else {
            "contact"
        };
        let total = {
            let mut held = self.0.held.lock().unwrap();
            let set = held.entry(table).or_default();
            for id in &ids {
                if method.starts_with("Delete") {
                    set.remove(id);
                } else {
                    set.insert(id.clone());
                }
            }
            set.len() as u64 + self.0.host_only.load(std::sync::atomic::Ordering::SeqCst)
        };
        self.0.keys.lock().unwrap().push(key.clone());
        self.0.sent.lock().unwrap().push(Sent {
            method: method.to_owned(),
            key,
            records,
        });
        self.0
            .calls
            .lock()
            .unwrap()
            .push((method.to_owned(), tenant.to_owned(), ids));
        Ok(tonic::Response::new(pb::SinkResponse {
            applied,
            total: Some(total),
        }))
    }
}

#[tonic::async_trait]
impl pb::crm_sink_server::CrmSink for HostCrmService {
    async fn upsert_companies(
        &self,
        r: tonic::Request<pb::UpsertCompaniesRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        let r = r.into_inner();
        assert!(r.companies.iter().all(|c| c.name == "ACME Ltda"
            && c.document == "11222333000181"
            && c.fields.is_some()));
        let (ids, versions) = r
            .companies
            .into_iter()
            .map(|c| (c.external_id, c.version))
            .unzip();
        let records = checked(&r.idempotency_key, ids, versions)?;
        self.record("UpsertCompanies", &r.tenant_id, r.idempotency_key, records)
            .await
    }
    async fn delete_companies(
        &self,
        r: tonic::Request<pb::DeleteRecordsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        let r = r.into_inner();
        let versions = r.versions.into_iter().map(Some).collect();
        let records = checked(&r.idempotency_key, r.external_ids, versions)?;
        self.record("DeleteCompanies", &r.tenant_id, r.idempotency_key, records)
            .await
    }
    async fn upsert_contacts(
        &self,
        r: tonic::Request<pb::UpsertContactsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        let r = r.into_inner();
        let (ids, versions) = r
            .contacts
            .into_iter()
            .map(|c| (c.external_id, c.version))
            .unzip();
        let records = checked(&r.idempotency_key, ids, versions)?;
        self.record("UpsertContacts", &r.tenant_id, r.idempotency_key, records)
            .await
    }
    async fn delete_contacts(
        &self,
        r: tonic::Request<pb::DeleteRecordsRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        let r = r.into_inner();
        let versions = r.versions.into_iter().map(Some).collect();
        let records = checked(&r.idempotency_key, r.external_ids, versions)?;
        self.record("DeleteContacts", &r.tenant_id, r.idempotency_key, records)
            .await
    }
    async fn apply_categories(
        &self,
        r: tonic::Request<pb::ApplyCategoriesRequest>,
    ) -> Result<tonic::Response<pb::SinkResponse>, tonic::Status> {
        if self.0.failing.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(tonic::Status::unavailable("maintenance"));
        }
        let r = r.into_inner();
        let (ids, versions) = r
            .categories
            .iter()
            .map(|c| (c.external_id.clone(), c.version.clone()))
            .unzip();
        let records = checked(&r.idempotency_key, ids, versions)?;
        let applied = r.categories.len() as u64;
        self.0.categories.lock().unwrap().extend(r.categories);
        self.0.sent.lock().unwrap().push(Sent {
            method: "ApplyCategories".into(),
            key: r.idempotency_key,
            records,
        });
        Ok(tonic::Response::new(pb::SinkResponse {
            applied,
            total: None,
        }))
    }
    /// What it holds (beside `host_only` of its own in each table), unless `no_count`.
    async fn count_records(
        &self,
        _r: tonic::Request<pb::CountRecordsRequest>,
    ) -> Result<tonic::Response<pb::CountRecordsResponse>, tonic::Status> {
        use std::sync::atomic::Ordering::SeqCst;
        if self.0.no_count.load(SeqCst) {
            return Err(tonic::Status::unimplemented(
                "CountRecords is not implemented",
            ));
        }
        if self.0.failing.load(SeqCst) {
            return Err(tonic::Status::unavailable("maintenance"));
        }
        let extra = self.0.host_only.load(SeqCst);
        let held = self.0.held.lock().unwrap();
        let n = |t: &str| held.get(t).map_or(0, |s| s.len() as u64) + extra;
        self.0.counted.fetch_add(1, SeqCst);
        Ok(tonic::Response::new(pb::CountRecordsResponse {
            companies: n("company"),
            contacts: n("contact"),
        }))
    }
}

/// A [`HostCrm`] served over gRPC on 127.0.0.1: the host and its port.
pub(crate) async fn start_host() -> (std::sync::Arc<HostCrm>, u16) {
    let host = std::sync::Arc::new(HostCrm::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(pb::crm_sink_server::CrmSinkServer::new(HostCrmService(
                host.clone(),
            )))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (host, port)
}
