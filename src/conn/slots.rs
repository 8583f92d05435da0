//! Connection slots: at most so many connections open at once, and at most so many from
//! one client address, so that one address cannot take every slot. A connection past
//! either cap is refused as soon as it is accepted; refusals are counted and logged at
//! most once per [`REFUSAL_LOG_EVERY`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// How often, at most, refused connections are logged (with how many since the last line).
pub const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(10);

/// Connections refused or closed by the limits since the server started.
#[derive(Debug, Default)]
pub struct ConnStats {
    refused_at_cap: AtomicU64,
    refused_per_address: AtomicU64,
    closed_not_admitted: AtomicU64,
    closed_idle: AtomicU64,
    handshakes_timed_out: AtomicU64,
}

/// A copy of [`ConnStats`]' counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCounts {
    /// Refused: the server had its most connections open.
    pub refused_at_cap: u64,
    /// Refused: the client address had its most connections open.
    pub refused_per_address: u64,
    /// Closed: no call passed the edge within the first-call deadline.
    pub closed_not_admitted: u64,
    /// Closed: no call open for the idle timeout.
    pub closed_idle: u64,
    /// Closed: the TLS handshake did not finish in time.
    pub handshakes_timed_out: u64,
}

impl ConnStats {
    /// The counts now.
    pub fn counts(&self) -> ConnCounts {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        ConnCounts {
            refused_at_cap: get(&self.refused_at_cap),
            refused_per_address: get(&self.refused_per_address),
            closed_not_admitted: get(&self.closed_not_admitted),
            closed_idle: get(&self.closed_idle),
            handshakes_timed_out: get(&self.handshakes_timed_out),
        }
    }

    pub(super) fn closed(&self, why: super::activity::Expiry) {
        let counter = match why {
            super::activity::Expiry::NotAdmitted => &self.closed_not_admitted,
            super::activity::Expiry::Idle => &self.closed_idle,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub(super) fn handshake_timed_out(&self) {
        self.handshakes_timed_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    AtCap,
    PerAddress,
}

/// The slots of one listener.
pub(super) struct Slots {
    global: Arc<Semaphore>,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
    max_per_address: usize,
}

/// One open connection's slot, given back when dropped.
pub(super) struct Slot {
    _global: OwnedSemaphorePermit,
    address: IpAddr,
    per_address: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl Slots {
    pub(super) fn new(max_connections: usize, max_per_address: usize) -> Self {
        Self {
            global: Arc::new(Semaphore::new(max_connections)),
            per_address: Arc::default(),
            max_per_address: max_per_address.min(max_connections),
        }
    }

    /// A slot for a connection from `address`, if both caps allow one.
    pub(super) fn take(&self, address: IpAddr) -> Result<Slot, Refusal> {
        let global = self
            .global
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::AtCap)?;
        let mut open = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let count = open.entry(address).or_default();
        if *count >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *count += 1;
        Ok(Slot {
            _global: global,
            address,
            per_address: self.per_address.clone(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self
            .per_address
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

/// Counts refusals, and says when to log them: at the first, then at most once per
/// [`REFUSAL_LOG_EVERY`] with the counts since the last line.
pub(super) struct RefusalLog {
    stats: Arc<ConnStats>,
    last_line: Option<Instant>,
    at_cap: u64,
    per_address: u64,
}

impl RefusalLog {
    pub(super) fn new(stats: Arc<ConnStats>) -> Self {
        Self {
            stats,
            last_line: None,
            at_cap: 0,
            per_address: 0,
        }
    }

    /// Counts `refusal`; the counts to log now (at the cap, per address), if it is time.
    pub(super) fn note(&mut self, refusal: Refusal) -> Option<(u64, u64)> {
        match refusal {
            Refusal::AtCap => {
                self.at_cap += 1;
                self.stats.refused_at_cap.fetch_add(1, Ordering::Relaxed);
            }
            Refusal::PerAddress => {
                self.per_address += 1;
                self.stats
                    .refused_per_address
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
        let now = Instant::now();
        if self
            .last_line
            .is_some_and(|at| now.duration_since(at) < REFUSAL_LOG_EVERY)
        {
            return None;
        }
        self.last_line = Some(now);
        Some((
            std::mem::take(&mut self.at_cap),
            std::mem::take(&mut self.per_address),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_cannot_take_every_slot_and_slots_come_back() {
        let slots = Slots::new(10, 3);
        let held: Vec<_> = (0..3).map(|_| slots.take(ip(2)).unwrap()).collect();
        assert_eq!(slots.take(ip(2)).err(), Some(Refusal::PerAddress));
        // Another address still gets one.
        let other = slots.take(ip(1)).unwrap();
        drop(held);
        assert!(slots.take(ip(2)).is_ok());
        drop(other);
        assert!(slots.per_address.lock().unwrap().len() <= 1);
    }

    #[test]
    fn the_global_cap_holds_across_addresses() {
        let slots = Slots::new(2, 2);
        let _a = slots.take(ip(1)).unwrap();
        let _b = slots.take(ip(2)).unwrap();
        assert_eq!(slots.take(ip(3)).err(), Some(Refusal::AtCap));
    }

    #[tokio::test(start_paused = true)]
    async fn refusals_are_all_counted_and_logged_at_most_once_per_interval() {
        let stats = Arc::new(ConnStats::default());
        let mut log = RefusalLog::new(stats.clone());
        let lines: Vec<_> = (0..15_000)
            .filter_map(|_| log.note(Refusal::PerAddress))
            .collect();
        assert_eq!(lines, vec![(0, 1)]);
        tokio::time::advance(REFUSAL_LOG_EVERY).await;
        assert_eq!(log.note(Refusal::AtCap), Some((1, 14_999)));
        let counts = stats.counts();
        assert_eq!(
            (counts.refused_at_cap, counts.refused_per_address),
            (1, 15_000)
        );
    }
}
