//! Where the server reads the time of day: one [`Clock`], chosen at startup (the system's
//! in a server, a [`ManualClock`] in tests and benches) and handed to everything that
//! stamps or compares instants — the scheduler, run retries and leases, sink backoff
//! timestamps, freshness, retention, token expiry. Durations measured for timing
//! (`Instant`) and tokio's timers are not read here.
//!
//! Imports nothing from the crate: every module may use it.

use std::fmt;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, SubsecRound, Utc};

/// A source of "now", to the microsecond both database backends store: an instant
/// answered right after it is written is the one read back later (listings page by such
/// instants).
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now, truncated to the stored precision ([`stored`]).
    fn now(&self) -> DateTime<Utc>;
}

/// The one clock a server's parts share (cheap to clone); its `now` needs no trait in
/// scope.
#[derive(Clone, Debug)]
pub struct SharedClock(Arc<dyn Clock>);

impl SharedClock {
    /// Now, by the shared clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.0.now()
    }
}

impl<C: Clock + 'static> From<Arc<C>> for SharedClock {
    fn from(clock: Arc<C>) -> Self {
        Self(clock)
    }
}

/// `at` to the microsecond: the precision both backends store.
pub fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The system's clock, shared: what a server uses unless told otherwise.
pub fn system() -> SharedClock {
    SharedClock(Arc::new(SystemClock))
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        stored(Utc::now())
    }
}

/// A clock that stands still until told to move: tests and benches set it and advance
/// it instead of waiting. Share it as `Arc<ManualClock>` (`SharedClock::from` takes it).
#[derive(Debug)]
pub struct ManualClock {
    at: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            at: Mutex::new(stored(at)),
        }
    }

    /// A clock standing at the system's now.
    pub fn at_system_now() -> Self {
        Self::new(Utc::now())
    }

    /// Moves the clock to `at` (backwards too).
    pub fn set(&self, at: DateTime<Utc>) {
        *self.lock() = stored(at);
    }

    /// Moves the clock on by `by`; returns the new now.
    pub fn advance(&self, by: chrono::Duration) -> DateTime<Utc> {
        let mut at = self.lock();
        *at = stored(*at + by);
        *at
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        // A panic while holding the lock cannot leave a half-written instant.
        self.at.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_stands_still_until_moved_and_keeps_the_stored_precision() {
        let start = DateTime::parse_from_rfc3339("2026-01-02T03:04:05.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let clock = ManualClock::new(start);
        assert_eq!(clock.now(), stored(start));
        assert_eq!(clock.now(), clock.now());
        let later = clock.advance(chrono::Duration::seconds(61));
        assert_eq!(later, stored(start) + chrono::Duration::seconds(61));
        assert_eq!(clock.now(), later);
        clock.set(start);
        assert_eq!(clock.now().timestamp_subsec_nanos() % 1000, 0);
    }

    #[test]
    fn the_system_clock_answers_the_stored_precision() {
        assert_eq!(SystemClock.now().timestamp_subsec_nanos() % 1000, 0);
    }
}
