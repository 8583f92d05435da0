//! PostgreSQL's LISTEN/NOTIFY between replicas: the channels appends notify in their
//! transaction ([`LOG_CHANNEL`] by `events::append`, [`ALERT_CHANNEL`] by the alert
//! feed's appends), and [`Listener`], one connection of its own that hears them.
//!
//! A notification only says "this tenant's log grew": the tables stay the truth, and
//! whoever hears one reads from its cursor. PostgreSQL delivers a notification after its
//! transaction committed, so the read finds the rows; a notification sent while nobody
//! listened is lost, which is why a listener that (re)connects is followed by a read of
//! everything from the cursors (see `crate::wakeup`).

use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

use crate::domain::secret::redact_url;
use crate::domain::tenant::TenantId;
use crate::error::Result;

/// Notified, with the tenant id as payload, by every commit that appends to `sync_event`.
pub const LOG_CHANNEL: &str = "erpsync_sync_event";
/// Notified, with the tenant id as payload, by every commit that appends to `alert_event`.
pub const ALERT_CHANNEL: &str = "erpsync_alert_event";

/// What a notification says grew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// The tenant's log (`sync_event`).
    Log(TenantId),
    /// The alert feed (`alert_event`).
    Alert,
}

/// A connection listening on [`LOG_CHANNEL`] and [`ALERT_CHANNEL`].
pub struct Listener {
    inner: PgListener,
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener").finish_non_exhaustive()
    }
}

impl Listener {
    /// Opens a connection to `url` named `application_name` (so an operator sees it in
    /// `pg_stat_activity`), waiting at most `timeout` for it, and listens on both
    /// channels: once this returns, every later commit that appends is heard.
    pub async fn connect(url: &str, application_name: &str, timeout: Duration) -> Result<Self> {
        let opts = PgConnectOptions::from_str(url)
            .with_context(|| format!("invalid PostgreSQL URL {:?}", redact_url(url)))?
            .application_name(application_name);
        // A pool of one, never reaped: the listener holds its connection for its whole
        // life. A lost connection is not reopened by sqlx (see `next`): the caller
        // connects again, with its backoff and its log line.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .min_connections(0)
            .acquire_timeout(timeout)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_lazy_with(opts);
        let mut inner = PgListener::connect_with(&pool).await?;
        inner.eager_reconnect(false);
        inner.listen_all([LOG_CHANNEL, ALERT_CHANNEL]).await?;
        Ok(Self { inner })
    }

    /// The next notification; `Ok(None)` when the connection was lost (notifications sent
    /// since may be lost: connect again, then read from the cursors). Cancel-safe: a
    /// notification is never half taken.
    pub async fn next(&mut self) -> Result<Option<Heard>> {
        loop {
            let Some(n) = self.inner.try_recv().await? else {
                return Ok(None);
            };
            match n.channel() {
                LOG_CHANNEL => match TenantId::parse(n.payload()) {
                    Ok(tenant) => return Ok(Some(Heard::Log(tenant))),
                    // Only erpsync notifies this channel, with tenant ids; anything else
                    // wakes nobody.
                    Err(_) => {
                        tracing::debug!(payload = %n.payload(), "ignoring a log notification")
                    }
                },
                ALERT_CHANNEL => return Ok(Some(Heard::Alert)),
                other => tracing::debug!(channel = %other, "ignoring a notification"),
            }
        }
    }

    /// Checks that the connection still answers (a connection cut without a word —
    /// a network partition, a NAT that forgot it — would otherwise be waited on forever).
    pub async fn ping(&mut self) -> Result<()> {
        super::bulk::backend::ping_listener(&mut self.inner).await
    }
}

/// Whether this process hears other replicas' appends (its listener is connected and
/// listening); cheap to clone. Never true on SQLite.
#[derive(Debug, Clone, Default)]
pub struct Hearing(Arc<AtomicBool>);

impl Hearing {
    /// Whether the listener is up now.
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }

    /// Completes after `poll` while nobody hears other replicas' appends, never while the
    /// listener does (it wakes everyone when it goes down): what a tail or watcher waits
    /// on beside its wake-up.
    pub async fn poll(&self, poll: Duration) {
        if self.is_up() {
            std::future::pending::<()>().await;
        } else {
            tokio::time::sleep(poll).await;
        }
    }

    /// Says whether the listener is up (the listener's own call).
    pub(crate) fn set(&self, up: bool) {
        self.0.store(up, Ordering::SeqCst);
        crate::metrics::log_listener_up(up);
    }
}
