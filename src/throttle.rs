//! Rate limits at the edge: failed authentications per client address (a token guesser
//! gets a few tries a second, then RESOURCE_EXHAUSTED / 429 with a retry hint) and
//! pushes per token (one ERP cannot flood the server) — keyed GCRA limiters from
//! `governor`, whose idle keys are forgotten so memory stays bounded — and the long calls
//! a tenant may hold open at once (log streams, exports).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::tenant::TenantId;
use crate::error::AppError;

/// Default failed authentications a client address may make per second.
pub const DEFAULT_FAILED_AUTH_PER_SEC: u32 = 20;
/// Default pushes a token may make per second (bursts of twice that).
pub const DEFAULT_PUSHES_PER_SEC: u32 = 50;
/// Default log streams (StreamLogs) a tenant may hold open at once.
pub const DEFAULT_STREAMS_PER_TENANT: usize = 256;
/// Default exports (ExportHistory) a tenant may run at once.
pub const DEFAULT_EXPORTS_PER_TENANT: usize = 4;
/// Keys a limiter holds before it forgets the idle ones.
const MAX_KEYS: usize = 50_000;

/// Rate-limit settings; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed authentications per client address per second.
    pub failed_auth_per_sec: u32,
    /// Pushes (gRPC Push and HTTP POST) per token per second.
    pub pushes_per_sec: u32,
    /// Log streams a tenant may hold open at once.
    pub streams_per_tenant: usize,
    /// Exports a tenant may run at once.
    pub exports_per_tenant: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            failed_auth_per_sec: DEFAULT_FAILED_AUTH_PER_SEC,
            pushes_per_sec: DEFAULT_PUSHES_PER_SEC,
            streams_per_tenant: DEFAULT_STREAMS_PER_TENANT,
            exports_per_tenant: DEFAULT_EXPORTS_PER_TENANT,
        }
    }
}

/// The server's limiters; cheap to clone.
#[derive(Debug, Clone)]
pub struct Throttle {
    failed_auth: Option<Arc<Limiter<IpAddr>>>,
    pushes: Option<Arc<Limiter<String>>>,
    /// Open log streams per tenant.
    pub streams: TenantSlots,
    /// Running exports per tenant.
    pub exports: TenantSlots,
}

impl Throttle {
    /// Limiters for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            failed_auth: Limiter::new(limits.failed_auth_per_sec).map(Arc::new),
            pushes: Limiter::new(limits.pushes_per_sec).map(Arc::new),
            streams: TenantSlots::new(limits.streams_per_tenant, "log streams"),
            exports: TenantSlots::new(limits.exports_per_tenant, "exports"),
        }
    }

    /// Counts a failed authentication from `peer`; past the limit, the answer becomes
    /// RESOURCE_EXHAUSTED instead of UNAUTHENTICATED (`err`).
    pub fn failed_auth(&self, peer: Option<IpAddr>, err: AppError) -> AppError {
        match (&self.failed_auth, peer) {
            (Some(limiter), Some(ip)) => match limiter.check(&ip) {
                Ok(()) => err,
                Err(wait) => AppError::RateLimited {
                    message: format!(
                        "too many failed authentications from this address: retry in {} ms",
                        wait.as_millis().max(1)
                    ),
                    retry_after: wait,
                },
            },
            _ => err,
        }
    }

    /// Counts a push by the token `token_id`.
    pub fn push(&self, token_id: &str) -> Result<(), AppError> {
        let Some(limiter) = &self.pushes else {
            return Ok(());
        };
        limiter
            .check(&token_id.to_owned())
            .map_err(|wait| AppError::RateLimited {
                message: format!(
                    "token {token_id} is over its push rate limit: retry in {} ms",
                    wait.as_millis().max(1)
                ),
                retry_after: wait,
            })
    }
}

/// At most a number of one kind of long call open per tenant.
#[derive(Debug, Clone)]
pub struct TenantSlots {
    max: usize,
    what: &'static str,
    open: Arc<Mutex<HashMap<TenantId, Arc<Semaphore>>>>,
}

impl TenantSlots {
    fn new(max: usize, what: &'static str) -> Self {
        Self {
            max,
            what,
            open: Default::default(),
        }
    }

    /// A slot for one more call of `tenant`, held until the permit is dropped (when the
    /// call's stream ends or its client leaves).
    pub fn take(&self, tenant: &TenantId) -> Result<OwnedSemaphorePermit, AppError> {
        let slots = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(tenant.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone();
        slots
            .try_acquire_owned()
            .map_err(|_| AppError::RateLimited {
                message: format!(
                    "tenant {tenant} has {} {} open, the most allowed: close one first",
                    self.max, self.what
                ),
                retry_after: Duration::from_secs(1),
            })
    }
}

/// One keyed limiter: `per_sec` a second, bursts of twice that.
#[derive(Debug)]
struct Limiter<K: Hash + Eq + Clone> {
    inner: DefaultKeyedRateLimiter<K>,
    clock: DefaultClock,
}

impl<K: Hash + Eq + Clone> Limiter<K> {
    fn new(per_sec: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_sec)?;
        let burst = NonZeroU32::new(per_sec.saturating_mul(2)).unwrap_or(rate);
        Some(Self {
            inner: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// Ok, or how long `key` must wait.
    fn check(&self, key: &K) -> Result<(), Duration> {
        if self.inner.len() > MAX_KEYS {
            self.inner.retain_recent();
            self.inner.shrink_to_fit();
        }
        self.inner
            .check_key(key)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_guesser_is_slowed_after_its_burst_and_others_are_not() {
        let t = Throttle::new(RateLimits {
            failed_auth_per_sec: 5,
            pushes_per_sec: 0,
            ..RateLimits::default()
        });
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let bad = || AppError::Unauthenticated("invalid token".into());
        let answers: Vec<u16> = (0..20)
            .map(|_| t.failed_auth(Some(guesser), bad()).http_status())
            .collect();
        assert!(answers[..10].iter().all(|s| *s == 401), "{answers:?}");
        assert!(answers[10..].iter().all(|s| *s == 429), "{answers:?}");
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(t.failed_auth(Some(other), bad()).http_status(), 401);
        // Pushes unlimited when set to 0.
        assert!((0..1000).all(|_| t.push("tok_a").is_ok()));
    }

    #[test]
    fn a_tenants_slots_come_back_when_their_calls_end() {
        let t = Throttle::new(RateLimits {
            exports_per_tenant: 2,
            ..RateLimits::default()
        });
        let acme = TenantId::parse("acme").unwrap();
        let a = t.exports.take(&acme).unwrap();
        let _b = t.exports.take(&acme).unwrap();
        assert_eq!(t.exports.take(&acme).unwrap_err().http_status(), 429);
        assert!(t.exports.take(&TenantId::parse("globex").unwrap()).is_ok());
        drop(a);
        assert!(t.exports.take(&acme).is_ok());
    }
}
