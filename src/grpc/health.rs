//! `grpc.health.v1.Health`: SERVING while the database answers, NOT_SERVING while it does
//! not, for the server ("") and each service alike — every call needs the database, so a
//! load balancer or orchestrator should send none while it is away. The probe pings on a
//! connection of its own (`Db::ping`), never one of the pool's: a replica whose pool is
//! full is busy, not down, and stays SERVING (busy calls answer RESOURCE_EXHAUSTED). A
//! draining replica (SIGTERM) is NOT_SERVING for good, whatever the database says.

use std::future::Future;
use std::sync::Arc;
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
    /// Set by [`Health::drain`]. Held while a status is set, so the database probe cannot
    /// turn a draining replica SERVING again between its check and its write.
    draining: Arc<tokio::sync::Mutex<bool>>,
}

impl Health {
    /// Statuses kept by `reporter` for the server and `services`.
    pub(super) fn new(reporter: HealthReporter, services: Vec<&'static str>) -> Self {
        Self {
            reporter,
            services,
            draining: Arc::default(),
        }
    }

    /// Sets the server's and every service's status, unless the replica drains.
    pub(super) async fn set(&self, status: ServingStatus) {
        let draining = self.draining.lock().await;
        if !*draining {
            self.set_all(status).await;
        }
    }

    async fn set_all(&self, status: ServingStatus) {
        for name in std::iter::once("").chain(self.services.iter().copied()) {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// The replica drains: the server and every service NOT_SERVING from now on, so a
    /// load balancer sends no new calls.
    pub async fn drain(&self) {
        let mut draining = self.draining.lock().await;
        *draining = true;
        self.set_all(ServingStatus::NotServing).await;
    }

    /// The drain ended: every status is removed, which ends the Watch streams (a client's
    /// own health checking would hold the server's last connections open otherwise);
    /// Check answers NOT_FOUND until the listener closes.
    pub async fn close(&self) {
        let _draining = self.draining.lock().await;
        let mut reporter = self.reporter.clone();
        for name in std::iter::once("").chain(self.services.iter().copied()) {
            reporter.clear_service_status(name).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_health::pb::health_server::Health as _;
    use tonic_health::pb::HealthCheckRequest;

    async fn status(service: &tonic_health::server::HealthService, name: &str) -> i32 {
        service
            .check(tonic::Request::new(HealthCheckRequest {
                service: name.into(),
            }))
            .await
            .map(|r| r.into_inner().status)
            .unwrap_or(-1)
    }

    /// Once draining, every status is NOT_SERVING and a database that answers again does
    /// not turn it back; closing ends the statuses (Check: NOT_FOUND).
    #[tokio::test]
    async fn a_draining_replica_stays_not_serving_whatever_the_database_says() {
        let (reporter, _server) = tonic_health::server::health_reporter();
        let service = tonic_health::server::HealthService::from_health_reporter(reporter.clone());
        let health = Health::new(reporter, vec!["erpsync.v1.Admin"]);
        health.set(ServingStatus::Serving).await;
        let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
        let not_serving = tonic_health::pb::health_check_response::ServingStatus::NotServing as i32;
        assert_eq!(status(&service, "erpsync.v1.Admin").await, serving);
        health.drain().await;
        health.set(ServingStatus::Serving).await;
        for name in ["", "erpsync.v1.Admin"] {
            assert_eq!(status(&service, name).await, not_serving, "{name:?}");
        }
        health.close().await;
        assert_eq!(status(&service, "").await, -1);
    }
}
