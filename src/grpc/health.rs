//! `grpc.health.v1.Health`: SERVING while the database answers, NOT_SERVING while it does
//! not, for the server ("") and each service alike — every call needs the database, so a
//! load balancer or orchestrator should send none while it is away. The probe pings on a
//! connection of its own (`Db::ping`), never one of the pool's: a replica whose pool is
//! full is busy, not down, and stays SERVING (busy calls answer RESOURCE_EXHAUSTED).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;

use crate::error::Result;

/// How often the database is pinged.
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// The statuses the health service reports; cheap to clone.
#[derive(Clone)]
pub struct Health {
    reporter: HealthReporter,
    services: Vec<&'static str>,
}

impl Health {
    /// Statuses kept by `reporter` for the server and `services`.
    pub(super) fn new(reporter: HealthReporter, services: Vec<&'static str>) -> Self {
        Self { reporter, services }
    }

    /// Sets the server's and every service's status.
    pub(super) async fn set(&self, status: ServingStatus) {
        for name in std::iter::once("").chain(self.services.iter().copied()) {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// Pings the database through `ping` every [`PROBE_EVERY`] until shutdown; a ping
    /// that fails or takes longer than `timeout` turns every status NOT_SERVING, the next
    /// one that answers SERVING.
    pub async fn follow_database<P, F>(
        self,
        ping: P,
        timeout: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) where
        P: Fn() -> F,
        F: Future<Output = Result<()>>,
    {
        let mut serving = true;
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                () = tokio::time::sleep(PROBE_EVERY) => {}
            }
            if *shutdown.borrow() {
                break;
            }
            let failure = match tokio::time::timeout(timeout, ping()).await {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.run_message()),
                Err(_) => Some(format!("no answer within {} ms", timeout.as_millis())),
            };
            match failure {
                Some(why) if serving => {
                    tracing::warn!(error = %why, "the database does not answer: health NOT_SERVING");
                    self.set(ServingStatus::NotServing).await;
                    serving = false;
                }
                None if !serving => {
                    tracing::info!("the database answers again: health SERVING");
                    self.set(ServingStatus::Serving).await;
                    serving = true;
                }
                _ => {}
            }
        }
    }
}
