//! The services between the transports (gRPC, HTTP, the CLI) and storage: small handles,
//! each holding only what it uses, built once at startup (`app`) and handed to the
//! transports. None of the services imports this module: it only gathers them.

use crate::alert_feed::AlertFeed;
use crate::auth::Tokens;
use crate::export::Exporter;
use crate::history::History;
use crate::ingest::Ingestor;
use crate::logs::LogHub;
use crate::storage::Db;
use crate::tenants::Tenants;
use crate::throttle::TenantSlots;
use crate::view_admin::ViewAdmin;
use crate::worker::RunWorker;

/// Every service handle; cheap to clone.
#[derive(Clone, Debug)]
pub struct Services {
    /// The database, for the background jobs that own their queries (retention, WAL
    /// checkpoints, the health probe) and for tests.
    pub db: Db,
    /// Who callers are (the edge's authentication) and their push rate.
    pub tokens: Tokens,
    /// Judges, stages and logs what ERPs send.
    pub ingestor: Ingestor,
    /// The "Dados ERP" page's reads and settings.
    pub history: History,
    /// Provisioning: tenants created, changed, read and listed.
    pub tenants: Tenants,
    /// Starts, runs and resolves sync runs.
    pub worker: RunWorker,
    /// Tenants' View configurations.
    pub views: ViewAdmin,
    /// The Histórico workbook.
    pub exporter: Exporter,
    /// Tenants' logs, live.
    pub logs: LogHub,
    /// Open log streams per tenant.
    pub log_streams: TenantSlots,
    /// Alerts opened and resolved, live.
    pub alerts: AlertFeed,
}
