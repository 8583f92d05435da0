//! Cross-replica wake-ups: how a StreamLogs tail or an alert watcher in this process
//! learns that another replica appended.
//!
//! On PostgreSQL every append notifies a channel in its transaction
//! ([`crate::storage::notify`]); each process runs one [`listen`] task on a connection of its
//! own, which wakes the tail of the tenant it hears about (or every alert watcher).
//! A wake-up only means "read from your cursor": the tables stay the truth, and a
//! reader reads every event after the last one it sent, in cursor order, so a
//! wake-up too many costs a read and one too few cannot happen while the listener hears.
//! Notifications sent while nobody listens are lost, so:
//!
//! * when the listener (re)connects, after its LISTEN took effect, it wakes every tail
//!   and watcher: what committed before is read by cursor, what commits after is heard;
//! * while it is down, [`Hearing`] says so and tails and watchers read every poll
//!   interval (the behaviour without a listener), so nothing stalls;
//! * a connection that dies without a word is found by a ping every [`PING`] of silence.
//!
//! While the listener is up nothing polls. SQLite has no listener: one process owns the
//! file, its own appends wake its tails directly, and the poll stays as it was (for
//! writes by another process on the same file, such as the CLI's).

use std::time::Duration;

use tokio::sync::watch;

use crate::logs::LogHub;
use crate::storage::notify::{Heard, Hearing, Listener};
use crate::storage::Db;

/// Silence after which the listener checks that its connection still answers.
pub const PING: Duration = Duration::from_secs(30);

/// First wait before connecting again after a failure; doubled up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(200);
/// Longest wait between connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A connection that lasted this long was healthy: the next loss starts the backoff over.
const STABLE: Duration = Duration::from_secs(60);

/// What the listener wakes: the log tails, the alert watchers (through the database
/// handle's signal), and the flag they read their poll interval from.
#[derive(Debug, Clone)]
pub struct Wakes {
    /// The tails of the tenants' logs.
    pub logs: LogHub,
    /// The handle whose alert signal wakes the alert feed's watchers.
    pub db: Db,
    /// Set while the listener hears.
    pub hearing: Hearing,
}

impl Wakes {
    fn everyone(&self) {
        self.logs.wake_all();
        self.db.alert_events_appended();
    }
}

/// Listens on PostgreSQL at `url` as `application_name` until `stop` turns true, waking
/// `wakes`; reconnects with a backoff when the connection fails or is lost. `timeout`
/// bounds a connection attempt and a ping.
pub async fn listen(
    url: String,
    application_name: String,
    timeout: Duration,
    wakes: Wakes,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut lost_before = false;
    loop {
        let connected = tokio::select! {
            () = stopped(&mut stop) => break,
            c = Listener::connect(&url, &application_name, timeout) => c,
        };
        match connected {
            Ok(mut listener) => {
                wakes.hearing.set(true);
                // Appends committed while nobody listened were not heard: read them now.
                wakes.everyone();
                if lost_before {
                    crate::metrics::log_listener_reconnected();
                    tracing::info!(application_name = %application_name, "listening again for other replicas' log events");
                } else {
                    tracing::debug!(application_name = %application_name, "listening for other replicas' log events");
                }
                let since = tokio::time::Instant::now();
                let why = tokio::select! {
                    () = stopped(&mut stop) => None,
                    why = hear(&mut listener, &wakes, timeout) => Some(why),
                };
                wakes.hearing.set(false);
                // Until the next LISTEN, tails and watchers poll: wake them so that they
                // stop waiting for a notification that may never come.
                wakes.everyone();
                let Some(why) = why else { break };
                lost_before = true;
                if since.elapsed() >= STABLE {
                    backoff = MIN_BACKOFF;
                }
                tracing::warn!(error = %why, retry_in = ?backoff, "lost the connection listening for other replicas' log events; followers poll until it is back");
            }
            Err(e) => {
                tracing::warn!(error = %e, retry_in = ?backoff, "cannot listen for other replicas' log events; followers poll until it works");
            }
        }
        tokio::select! {
            () = stopped(&mut stop) => break,
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
    wakes.hearing.set(false);
}

/// Wakes what `listener` hears about until its connection fails; returns why.
async fn hear(listener: &mut Listener, wakes: &Wakes, timeout: Duration) -> String {
    loop {
        let heard = tokio::select! {
            heard = listener.next() => heard,
            () = tokio::time::sleep(PING) => {
                match tokio::time::timeout(timeout, listener.ping()).await {
                    Ok(Ok(())) => continue,
                    Ok(Err(e)) => return format!("ping failed: {e}"),
                    Err(_) => return format!("ping unanswered after {timeout:?}"),
                }
            }
        };
        match heard {
            Ok(Some(Heard::Log(tenant))) => wakes.logs.wake(&tenant),
            Ok(Some(Heard::Alert)) => wakes.db.alert_events_appended(),
            Ok(None) => return "connection closed".to_owned(),
            Err(e) => return e.to_string(),
        }
    }
}

/// Completes when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
