//! Rate limits at the edge: failed authentications per client address and, optionally,
//! on the whole server (a token guesser gets a few tries a second; past them every call
//! from its address — a correct token's too — is refused before any token is looked up,
//! RESOURCE_EXHAUSTED / 429 with a retry hint), pushes per token (one ERP cannot flood
//! the server; a keyed GCRA limiter from `governor`), and the long calls a tenant may hold
//! open at once (log streams, exports). Keyed limiters forget idle keys, so memory stays
//! bounded. An IPv6 client is counted by its /64 network, which one host usually holds
//! whole.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::domain::tenant::TenantId;
use crate::error::AppError;

/// Default failed authentications a client address may make per second (bursts of twice
/// that).
pub const DEFAULT_FAILED_AUTH_PER_SEC: u32 = 20;
/// Default failed authentications the whole server takes per second, from every address
/// together (bursts of twice that); 0: no such budget. Off by default: once spent, it
/// refuses everyone's calls, correct tokens' included, until it refills.
pub const DEFAULT_FAILED_AUTH_GLOBAL_PER_SEC: u32 = 0;
/// Default pushes a token may make per second (bursts of twice that).
pub const DEFAULT_PUSHES_PER_SEC: u32 = 50;
/// Default log streams (StreamLogs) a tenant may hold open at once.
pub const DEFAULT_STREAMS_PER_TENANT: usize = 256;
/// Default exports (ExportHistory) a tenant may run at once.
pub const DEFAULT_EXPORTS_PER_TENANT: usize = 4;
/// Default alert feeds (WatchAlerts, both services) a token may hold open at once.
pub const DEFAULT_ALERT_STREAMS_PER_CALLER: usize = 16;
/// Keys a limiter holds before it forgets the idle ones.
const MAX_KEYS: usize = 50_000;

/// Rate-limit settings; 0 turns a limit off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimits {
    /// Failed authentications per client address per second.
    pub failed_auth_per_sec: u32,
    /// Failed authentications per second on the whole server.
    pub failed_auth_global_per_sec: u32,
    /// Pushes (gRPC Push and HTTP POST) per token per second.
    pub pushes_per_sec: u32,
    /// Log streams a tenant may hold open at once.
    pub streams_per_tenant: usize,
    /// Exports a tenant may run at once.
    pub exports_per_tenant: usize,
    /// Alert feeds a token may hold open at once.
    pub alert_streams_per_caller: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        Self {
            failed_auth_per_sec: DEFAULT_FAILED_AUTH_PER_SEC,
            failed_auth_global_per_sec: DEFAULT_FAILED_AUTH_GLOBAL_PER_SEC,
            pushes_per_sec: DEFAULT_PUSHES_PER_SEC,
            streams_per_tenant: DEFAULT_STREAMS_PER_TENANT,
            exports_per_tenant: DEFAULT_EXPORTS_PER_TENANT,
            alert_streams_per_caller: DEFAULT_ALERT_STREAMS_PER_CALLER,
        }
    }
}

/// The server's limiters; cheap to clone.
#[derive(Debug, Clone)]
pub struct Throttle {
    failed_auth: Option<Arc<FailureBudget<IpAddr>>>,
    failed_auth_global: Option<Arc<FailureBudget<()>>>,
    pushes: Option<Arc<Limiter<String>>>,
    /// Open log streams per tenant.
    pub streams: TenantSlots,
    /// Running exports per tenant.
    pub exports: TenantSlots,
    /// Open alert feeds per token.
    pub alert_streams: TenantSlots,
}

impl Throttle {
    /// Limiters for `limits`.
    pub fn new(limits: RateLimits) -> Self {
        Self {
            failed_auth: FailureBudget::new(limits.failed_auth_per_sec).map(Arc::new),
            failed_auth_global: FailureBudget::new(limits.failed_auth_global_per_sec).map(Arc::new),
            pushes: Limiter::new(limits.pushes_per_sec).map(Arc::new),
            streams: TenantSlots::new(limits.streams_per_tenant, "log streams"),
            exports: TenantSlots::new(limits.exports_per_tenant, "exports"),
            alert_streams: TenantSlots::new(limits.alert_streams_per_caller, "alert streams"),
        }
    }

    /// Whether a call from `peer` may be authenticated at all: RESOURCE_EXHAUSTED, before
    /// any token is looked up, while the address (or the whole server) has spent its
    /// failed authentications — whatever token the call carries.
    pub fn admit_auth(&self, peer: Option<IpAddr>) -> Result<(), AppError> {
        let refused = |wait: Duration, whose: &str| AppError::RateLimited {
            message: format!(
                "too many failed authentications {whose}: retry in {} ms",
                wait.as_millis().max(1)
            ),
            retry_after: wait,
        };
        let now = Instant::now();
        if let (Some(budget), Some(ip)) = (&self.failed_auth, peer) {
            budget
                .admit(&client(ip), now)
                .map_err(|wait| refused(wait, "from this address"))?;
        }
        if let Some(budget) = &self.failed_auth_global {
            budget
                .admit(&(), now)
                .map_err(|wait| refused(wait, "on this server"))?;
        }
        Ok(())
    }

    /// Counts a failed authentication from `peer` (against its address and the server).
    pub fn failed_auth(&self, peer: Option<IpAddr>) {
        let now = Instant::now();
        if let (Some(budget), Some(ip)) = (&self.failed_auth, peer) {
            budget.spend(client(ip), now);
        }
        if let Some(budget) = &self.failed_auth_global {
            budget.spend((), now);
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

/// At most a number of one kind of long call open per tenant (or per caller: see
/// [`TenantSlots::take_as`]).
#[derive(Debug, Clone)]
pub struct TenantSlots {
    max: usize,
    what: &'static str,
    open: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl TenantSlots {
    /// At most `max` calls open per key; `what` names them in a refusal ("log streams").
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
        self.take_as(tenant.as_str(), &format!("tenant {tenant}"))
    }

    /// A slot for one more call counted against `key` (a token id, …), which `whose`
    /// names in the refusal ("token tok_…"); held until the permit is dropped.
    pub fn take_as(&self, key: &str, whose: &str) -> Result<OwnedSemaphorePermit, AppError> {
        let slots = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
            .clone();
        slots
            .try_acquire_owned()
            .map_err(|_| AppError::RateLimited {
                message: format!(
                    "{whose} has {} {} open, the most allowed: close one first",
                    self.max, self.what
                ),
                retry_after: Duration::from_secs(1),
            })
    }
}

/// How long a push waits for one of ingestion's slots before it is answered busy: long
/// enough to ride out a burst, short enough that a client hears back well within its
/// deadline and retries instead of holding a connection.
pub const INGEST_ADMISSION_WAIT: Duration = Duration::from_secs(1);

/// Ingestion's work in flight, bounded: a push (gRPC or HTTP) holds a slot from before
/// its body is read until its answer, so decoded batches in memory stay at most the
/// slots times the body limit, and pushes hold at most that many database connections.
/// A push that gets no slot within [`INGEST_ADMISSION_WAIT`] is answered
/// [`AppError::Busy`] (RESOURCE_EXHAUSTED / 429 with a retry hint). Cheap to clone.
#[derive(Debug, Clone)]
pub struct IngestSlots {
    slots: Arc<Semaphore>,
    max: usize,
    wait: Duration,
}

/// One of ingestion's slots, held until dropped (counted in `erpsync_ingest_in_flight`).
#[derive(Debug)]
pub struct IngestSlot {
    _permit: OwnedSemaphorePermit,
    _counted: crate::metrics::IngestInFlight,
}

impl IngestSlots {
    /// `max` slots (at least one), each waited for at most `wait`.
    pub fn new(max: usize, wait: Duration) -> Self {
        let max = max.max(1);
        Self {
            slots: Arc::new(Semaphore::new(max)),
            max,
            wait,
        }
    }

    /// How many slots there are.
    pub fn max(&self) -> usize {
        self.max
    }

    /// How many are taken now.
    pub fn in_flight(&self) -> usize {
        self.max - self.slots.available_permits()
    }

    /// A slot, waited for in arrival order (the semaphore is fair) at most the wait.
    pub async fn admit(&self) -> Result<IngestSlot, AppError> {
        let taken = tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await;
        match taken {
            Ok(Ok(permit)) => Ok(IngestSlot {
                _permit: permit,
                _counted: crate::metrics::IngestInFlight::counted(),
            }),
            // Timed out (the semaphore is never closed).
            _ => {
                crate::metrics::ingest_busy();
                Err(AppError::Busy(format!(
                    "{} batches are being ingested, the most at once",
                    self.max
                )))
            }
        }
    }
}

/// Who a failed authentication is counted against: the address, or an IPv6 address's
/// /64 network (a single host commonly holds a whole /64, so counting its addresses one by
/// one would give it billions of budgets).
fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.to_ipv4_mapped().is_none() => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        IpAddr::V6(v6) => IpAddr::V4(v6.to_ipv4_mapped().expect("checked above")),
        v4 => v4,
    }
}

/// A budget of failures per key, `per_sec` a second with bursts of twice that (GCRA: each
/// failure pushes the key's "theoretical arrival time" one interval further; a key is
/// refused while that time is more than a burst ahead of now). Unlike a limiter, asking
/// whether a key may proceed ([`FailureBudget::admit`]) spends nothing: only failures do.
#[derive(Debug)]
struct FailureBudget<K: Hash + Eq + Clone> {
    /// Time one failure costs.
    interval: Duration,
    /// How far ahead of now a key's time may run before it is refused.
    tolerance: Duration,
    ahead: Mutex<HashMap<K, Instant>>,
}

impl<K: Hash + Eq + Clone> FailureBudget<K> {
    fn new(per_sec: u32) -> Option<Self> {
        let per_sec = NonZeroU32::new(per_sec)?;
        let interval = Duration::from_secs(1) / per_sec.get();
        let burst = per_sec.get().saturating_mul(2);
        Some(Self {
            interval,
            tolerance: interval * (burst - 1),
            ahead: Mutex::new(HashMap::new()),
        })
    }

    /// Ok while `key` has failures left at `now`; else how long it must wait.
    fn admit(&self, key: &K, now: Instant) -> Result<(), Duration> {
        let ahead = self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match ahead.get(key) {
            Some(&at) if at > now + self.tolerance => Err(at - self.tolerance - now),
            _ => Ok(()),
        }
    }

    /// Spends one of `key`'s failures at `now`.
    fn spend(&self, key: K, now: Instant) {
        let mut ahead = self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ahead.len() > MAX_KEYS {
            // Keys whose time is past have their whole budget again: forgetting them
            // changes nothing.
            ahead.retain(|_, at| *at > now);
            ahead.shrink_to_fit();
        }
        let at = ahead.entry(key).or_insert(now);
        *at = (*at).max(now) + self.interval;
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

    /// One call from `peer` whose token is wrong: the status it is answered with.
    fn guess(t: &Throttle, peer: IpAddr) -> u16 {
        match t.admit_auth(Some(peer)) {
            Err(err) => err.http_status(),
            Ok(()) => {
                t.failed_auth(Some(peer));
                401
            }
        }
    }

    #[test]
    fn a_guesser_is_refused_before_lookup_after_its_burst_and_others_are_not() {
        let t = Throttle::new(RateLimits {
            failed_auth_per_sec: 5,
            pushes_per_sec: 0,
            ..RateLimits::default()
        });
        let guesser: IpAddr = "192.0.2.1".parse().unwrap();
        let answers: Vec<u16> = (0..20).map(|_| guess(&t, guesser)).collect();
        assert!(answers[..10].iter().all(|s| *s == 401), "{answers:?}");
        assert!(answers[10..].iter().all(|s| *s == 429), "{answers:?}");
        // Refused whatever the token: admission comes before any lookup.
        let err = t.admit_auth(Some(guesser)).unwrap_err();
        assert_eq!(err.http_status(), 429);
        assert!(
            err.to_string()
                .contains("too many failed authentications from this address"),
            "{err}"
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(guess(&t, other), 401);
        // Pushes unlimited when set to 0.
        assert!((0..1000).all(|_| t.push("tok_a").is_ok()));
    }

    #[test]
    fn an_ipv6_guesser_is_counted_by_its_64_network() {
        let t = Throttle::new(RateLimits {
            failed_auth_per_sec: 5,
            ..RateLimits::default()
        });
        let answers: Vec<u16> = (0..11u16)
            .map(|i| {
                guess(
                    &t,
                    IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, i, i, i, i)),
                )
            })
            .collect();
        assert_eq!(answers[10], 429, "{answers:?}");
        let elsewhere = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 2, 0, 0, 0, 1));
        assert_eq!(guess(&t, elsewhere), 401);
        // An IPv4 client seen through an IPv6 socket is its IPv4 address.
        let mapped: IpAddr = "::ffff:192.0.2.9".parse().unwrap();
        assert_eq!(client(mapped), "192.0.2.9".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn the_global_budget_stops_guessing_from_many_addresses() {
        let t = Throttle::new(RateLimits {
            failed_auth_per_sec: 5,
            failed_auth_global_per_sec: 4,
            ..RateLimits::default()
        });
        let answers: Vec<u16> = (0..9u8)
            .map(|i| guess(&t, IpAddr::from([192, 0, 2, i])))
            .collect();
        assert!(answers[..8].iter().all(|s| *s == 401), "{answers:?}");
        assert_eq!(answers[8], 429);
        let err = t
            .admit_auth(Some("198.51.100.1".parse().unwrap()))
            .unwrap_err();
        assert!(err.to_string().contains("on this server"), "{err}");
        // Off by default.
        let t = Throttle::new(RateLimits::default());
        assert!((0..40u8).all(|i| guess(&t, IpAddr::from([192, 0, 2, i])) == 401));
    }

    #[test]
    fn a_budget_refills_with_time_and_forgets_idle_keys() {
        let b = FailureBudget::<u32>::new(10).unwrap();
        let start = Instant::now();
        for _ in 0..20 {
            assert!(b.admit(&1, start).is_ok());
            b.spend(1, start);
        }
        let wait = b.admit(&1, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        assert!(b.admit(&1, start + wait).is_ok());
        for key in 0..=MAX_KEYS as u32 + 1 {
            b.spend(key, start);
        }
        b.spend(0, start + Duration::from_secs(60));
        assert!(b.ahead.lock().unwrap().len() <= 2);
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
