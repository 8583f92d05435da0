//! Background jobs. Each one waits on its next tick *or* shutdown, and finishes the batch
//! in hand before it stops.

pub mod checkpoint;
pub mod delivery;
pub mod due;
pub mod retention;
pub mod scheduler;
pub mod sink;
pub mod sync;
pub mod tenant_sink;

use std::sync::Arc;

use crate::ingest::{Ingestor, Limits};
use crate::logs::LogHub;
use crate::storage::Db;
use crate::viewdb::ViewAccess;
use delivery::{DeliveryPolicy, RunRetries};
use sink::CrmSink;

/// What sync runs need, and only that: built once at startup and cloned into every run,
/// the scheduler and the calls that start or resolve runs.
#[derive(Clone, Debug)]
pub struct RunWorker {
    /// The database.
    pub db: Db,
    /// Where runs deliver: each tenant's sink, or the server's.
    pub sinks: tenant_sink::Sinks,
    /// This process's id, as run leases name their holder.
    pub instance: String,
    /// This process's runs, for shutdown.
    pub runs: sync::Runs,
    /// The tenants' logs; a run's events are appended through it.
    pub logs: LogHub,
    /// The gate to tenants' View sources (the View collect stage reads through it).
    pub views: ViewAccess,
    /// Stages and logs what the View collect stage reads, as a push would be.
    pub ingestor: Ingestor,
    /// How runs send batches to the sink.
    pub delivery: DeliveryPolicy,
    /// How failed runs are tried again.
    pub retries: RunRetries,
    /// How long a run's lease lives unrenewed.
    pub run_lease: chrono::Duration,
}

impl RunWorker {
    /// A worker over `db` delivering to `sink` (no tenant's own), reading View sources through `views` and
    /// staging under `limits`, with the default delivery policy, retries and lease and a
    /// new instance id (`app` builds the server's from the configuration instead).
    pub fn new(db: Db, sink: Arc<dyn CrmSink>, views: ViewAccess, limits: Limits) -> Self {
        Self {
            logs: LogHub::new(
                db.clone(),
                crate::logs::DEFAULT_POLL,
                crate::storage::notify::Hearing::default(),
                crate::logs::DEFAULT_HEARTBEAT,
            ),
            ingestor: Ingestor::new(db.clone(), limits),
            sinks: tenant_sink::Sinks::new(db.clone(), sink, None, None),
            db,
            instance: uuid::Uuid::new_v4().to_string(),
            runs: sync::Runs::default(),
            views,
            delivery: DeliveryPolicy::default(),
            retries: RunRetries::default(),
            run_lease: sync::LEASE_TTL,
        }
    }
}
