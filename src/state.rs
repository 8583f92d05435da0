//! What request handlers and background jobs share: the database, the sink, limits and
//! policies, built once at startup (`app`) and cloned cheaply into each of them.

use std::sync::Arc;

use crate::ingest::Limits;
use crate::storage::Db;
use crate::worker::sink::CrmSink;

/// What every request handler shares; cheap to clone.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Ingestion limits.
    pub limits: Limits,
    /// Where runs deliver.
    pub sink: Arc<dyn CrmSink>,
    /// This process's id, as run leases name their holder.
    pub instance: String,
    /// This process's runs, for shutdown.
    pub runs: crate::worker::sync::Runs,
    /// The live tails of tenants' logs (StreamLogs); events are appended through it.
    pub logs: crate::logs::LogHub,
    /// Sheet and cell limits of the Excel export.
    pub export: crate::export::ExportLimits,
    /// Days the request log keeps (the export's oldest day).
    pub retention_days: u32,
    /// The gate to tenants' View sources, with the key their URLs are sealed with.
    pub views: crate::viewdb::ViewAccess,
    /// Rate limits on failed authentications and pushes.
    pub throttle: crate::throttle::Throttle,
    /// How runs send batches to the sink.
    pub delivery: crate::worker::delivery::DeliveryPolicy,
    /// How failed runs are tried again.
    pub retries: crate::worker::delivery::RunRetries,
    /// How long a run's lease lives unrenewed.
    pub run_lease: chrono::Duration,
}
