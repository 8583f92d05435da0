//! Background jobs. Each one waits on its next tick *or* shutdown, and finishes the batch
//! in hand before it stops.

pub mod checkpoint;
pub mod delivery;
mod delivery_policy;
pub mod due;
pub mod retention;
pub mod scheduler;
pub mod sink;
pub mod sync;
pub mod tenant_sink;

use std::sync::Arc;

use crate::clock::SharedClock;
use crate::ingest::{Ingestor, Limits};
use crate::logs::LogHub;
use crate::storage::Db;
use crate::viewdb::ViewAccess;
use delivery_policy::{DeliveryPolicy, RunRetries};
use sink::CrmSink;

/// How long a lease lives without renewal by default; a crashed holder frees the tenant
/// after it.
pub const LEASE_TTL: chrono::Duration = chrono::Duration::seconds(60);
/// What sync runs need, and only that: built once at startup and cloned into every run,
/// the scheduler and the calls that start or resolve runs. Its parts are read by the
/// worker's own modules; others get the few accessors below.
#[derive(Clone, Debug)]
pub struct RunWorker {
    /// The database.
    db: Db,
    /// Where runs deliver: each tenant's sink, or the server's.
    sinks: tenant_sink::Sinks,
    /// This process's id, as run leases name their holder.
    instance: String,
    /// This process's runs, for shutdown.
    runs: sync::registry::Runs,
    /// The tenants' logs; a run's events are appended through it.
    logs: LogHub,
    /// The gate to tenants' View sources (the View collect stage reads through it).
    views: ViewAccess,
    /// Stages and logs what the View collect stage reads, as a push would be.
    ingestor: Ingestor,
    /// How runs send batches to the sink.
    delivery: DeliveryPolicy,
    /// How failed runs are tried again.
    retries: RunRetries,
    /// How long a run's lease lives unrenewed.
    run_lease: chrono::Duration,
    /// Where runs, their leases and retries and the scheduler read the time.
    clock: SharedClock,
}

/// What a [`RunWorker`] is built from: `app` makes them from the configuration, tests and
/// benches take [`Parts::with_defaults`].
#[derive(Clone, Debug)]
pub struct Parts {
    /// The database.
    pub db: Db,
    /// Where runs deliver: each tenant's sink, or the server's.
    pub sinks: tenant_sink::Sinks,
    /// The tenants' logs; a run's events are appended through it.
    pub logs: LogHub,
    /// The gate to tenants' View sources.
    pub views: ViewAccess,
    /// Stages and logs what the View collect stage reads.
    pub ingestor: Ingestor,
    /// How runs send batches to the sink.
    pub delivery: DeliveryPolicy,
    /// How failed runs are tried again.
    pub retries: RunRetries,
    /// How long a run's lease lives unrenewed.
    pub run_lease: chrono::Duration,
    /// Where runs, their leases and retries and the scheduler read the time.
    pub clock: SharedClock,
}

impl Parts {
    /// The parts of a worker over `db` delivering to `sink` (no tenant's own), reading
    /// View sources through `views` and staging under `limits`, with its own log hub and
    /// the default delivery policy, retries and lease, reading the time from `clock`.
    pub fn with_defaults(
        db: Db,
        sink: Arc<dyn CrmSink>,
        views: ViewAccess,
        limits: Limits,
        clock: SharedClock,
    ) -> Self {
        Self {
            logs: LogHub::new(
                db.clone(),
                crate::logs::DEFAULT_POLL,
                crate::storage::notify::Hearing::default(),
                crate::logs::DEFAULT_HEARTBEAT,
            ),
            ingestor: Ingestor::new(db.clone(), limits, clock.clone()),
            sinks: tenant_sink::Sinks::new(db.clone(), sink, None, None, clock.clone()),
            db,
            views,
            delivery: DeliveryPolicy::default(),
            retries: RunRetries::default(),
            run_lease: LEASE_TTL,
            clock,
        }
    }
}

impl RunWorker {
    /// A worker made of `parts`, with a new instance id and no runs yet.
    pub fn new(parts: Parts) -> Self {
        let Parts {
            db,
            sinks,
            logs,
            views,
            ingestor,
            delivery,
            retries,
            run_lease,
            clock,
        } = parts;
        Self {
            db,
            sinks,
            instance: uuid::Uuid::new_v4().to_string(),
            runs: sync::registry::Runs::default(),
            logs,
            views,
            ingestor,
            delivery,
            retries,
            run_lease,
            clock,
        }
    }

    /// Where runs deliver: each tenant's sink, or the server's.
    pub fn sinks(&self) -> &tenant_sink::Sinks {
        &self.sinks
    }

    /// This process's id, as run leases name their holder.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// This process's runs: how many are active, draining and aborting them at shutdown.
    pub fn runs(&self) -> &sync::registry::Runs {
        &self.runs
    }

    /// The gate to tenants' View sources (and the key their URLs are sealed with).
    pub fn views(&self) -> &ViewAccess {
        &self.views
    }

    /// How failed runs are tried again.
    pub fn retries(&self) -> &RunRetries {
        &self.retries
    }

    /// How long a run's lease lives unrenewed.
    pub fn run_lease(&self) -> chrono::Duration {
        self.run_lease
    }

    /// Where this worker reads the time.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}
