//! What a connection has done with its slot: whether it was admitted (made a call that
//! passed the edge, or asked health or reflection), how many calls it has open, and since
//! when it has had none. The server closes a connection that does nothing useful with
//! its slot, whatever bytes (keep-alive pings) it exchanges.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// The deadlines a connection is held to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Deadlines {
    /// Admitted within this long after it was accepted, or closed.
    pub first_call: Duration,
    /// No call open for this long: closed.
    pub idle: Duration,
}

/// Why a connection is closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Expiry {
    /// No call passed the edge within the first-call deadline.
    NotAdmitted,
    /// No call open for the idle timeout.
    Idle,
}

impl Expiry {
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Self::NotAdmitted => "no admitted call in time",
            Self::Idle => "no call open for the idle timeout",
        }
    }
}

/// A connection's activity, shared by the connection's task and its calls (it travels on
/// each request, so the edge can admit the connection).
#[derive(Debug, Clone)]
pub struct Activity(Arc<Mutex<State>>);

#[derive(Debug)]
struct State {
    accepted: Instant,
    admitted: bool,
    open_calls: usize,
    /// When the last call ended (the acceptance, before any).
    quiet_since: Instant,
}

impl Activity {
    pub(super) fn new() -> Self {
        let now = Instant::now();
        Self(Arc::new(Mutex::new(State {
            accepted: now,
            admitted: false,
            open_calls: 0,
            quiet_since: now,
        })))
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The connection made a call a client with a purpose makes: it keeps its slot past
    /// the first-call deadline.
    pub fn admit(&self) {
        self.with(|s| s.admitted = true);
    }

    /// A call starts; it is open until the returned guard is dropped (with the answer's
    /// body, for a stream).
    pub(super) fn call_opened(&self) -> OpenCall {
        self.with(|s| s.open_calls += 1);
        OpenCall(self.clone())
    }

    /// When the connection is due to close, and why; None while a call is open on an
    /// admitted connection (or on one still being admitted).
    fn next_expiry(&self, deadlines: Deadlines) -> Option<(Instant, Expiry)> {
        self.with(|s| {
            if s.open_calls > 0 {
                None
            } else if !s.admitted {
                Some((s.accepted + deadlines.first_call, Expiry::NotAdmitted))
            } else {
                Some((s.quiet_since + deadlines.idle, Expiry::Idle))
            }
        })
    }

    /// Completes when the connection has outlived its deadlines.
    pub(super) async fn expired(&self, deadlines: Deadlines) -> Expiry {
        loop {
            match self.next_expiry(deadlines) {
                Some((at, why)) if at <= Instant::now() => return why,
                Some((at, _)) => tokio::time::sleep_until(at).await,
                // Checked again later: a call's end does not wake this (it is rare
                // enough to poll for, and the deadlines are seconds).
                None => tokio::time::sleep(deadlines.first_call.min(deadlines.idle)).await,
            }
        }
    }
}

/// A call in progress on a connection.
#[derive(Debug)]
pub(super) struct OpenCall(Activity);

impl Drop for OpenCall {
    fn drop(&mut self) {
        self.0.with(|s| {
            s.open_calls -= 1;
            if s.open_calls == 0 {
                s.quiet_since = Instant::now();
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEADLINES: Deadlines = Deadlines {
        first_call: Duration::from_secs(5),
        idle: Duration::from_secs(180),
    };

    #[tokio::test(start_paused = true)]
    async fn a_connection_never_admitted_expires_at_the_first_call_deadline() {
        let activity = Activity::new();
        let start = Instant::now();
        assert_eq!(activity.expired(DEADLINES).await, Expiry::NotAdmitted);
        assert_eq!(start.elapsed(), DEADLINES.first_call);
    }

    #[tokio::test(start_paused = true)]
    async fn an_admitted_connection_expires_after_the_idle_timeout_since_its_last_call() {
        let activity = Activity::new();
        activity.admit();
        let call = activity.call_opened();
        tokio::time::sleep(Duration::from_secs(600)).await;
        drop(call);
        let ended = Instant::now();
        assert_eq!(activity.expired(DEADLINES).await, Expiry::Idle);
        assert_eq!(ended.elapsed(), DEADLINES.idle);
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_call_holds_the_connection_until_it_ends() {
        let activity = Activity::new();
        let call = activity.call_opened();
        let watcher = tokio::spawn({
            let activity = activity.clone();
            async move { activity.expired(DEADLINES).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!watcher.is_finished(), "expired while a call was open");
        // The call is still being authenticated when it ends: never admitted.
        drop(call);
        assert_eq!(watcher.await.unwrap(), Expiry::NotAdmitted);
    }
}
