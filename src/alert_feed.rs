//! The alert feed, which Admin.WatchAlerts (every tenant, or the listed ones) and
//! IntegrationHistory.WatchAlerts (one tenant) serve.
//!
//! The feed itself is the `alert_event` table: every alert opened or resolved appends an
//! event in the same transaction, and events commit in cursor order (see
//! [`alert_events`]), so "the events after cursor N" is exact, also across restarts and
//! replicas.
//!
//! Each watcher follows the table on its own: it sends the events after its cursor, page
//! by page, then waits until an alert is raised or resolved in this process (the
//! database handle's signal, [`Db::alert_events_watch`], which it subscribed to before
//! reading; on PostgreSQL the process's listener also raises it when another replica
//! appended, see [`crate::wakeup`]) or, while no listener hears other replicas, until
//! [`DEFAULT_POLL`] has passed — the fallback that finds the events other processes
//! wrote — and reads again after the last cursor it sent. Every read starts after the
//! last event sent, so nothing is missed or sent twice. Alerts are rare and watchers few
//! (bounded per token), so a read per watcher per wake-up costs little.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit};
use tokio_stream::Stream;

use crate::domain::alert::{AlertCursor, AlertEvent};
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::notify::Hearing;
use crate::storage::{alert_events, tenants, Db};
use crate::throttle::TenantSlots;

/// How often a watcher reads the feed without being woken while no listener hears other
/// replicas: the latency of events another process writes then.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);

/// Events read from the database at a time.
const PAGE: u64 = 200;

/// Events a watcher's stream holds before the watcher waits for its client to read.
const BUFFER: usize = 64;

/// Whose alerts a watcher wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tenants {
    /// Every tenant's, present and future.
    All,
    /// Only these tenants' (at least one).
    Only(Vec<TenantId>),
}

/// The alert feed's watchers; cheap to clone.
#[derive(Clone, Debug)]
pub struct AlertFeed {
    db: Db,
    poll: Duration,
    hearing: Hearing,
    slots: TenantSlots,
    closing: watch::Sender<bool>,
}

impl AlertFeed {
    /// A feed over `db` whose watchers also read it every `poll` (for other processes'
    /// events) while `hearing` says no listener hears them, each counted in `slots`
    /// against its token.
    pub fn new(db: Db, poll: Duration, hearing: Hearing, slots: TenantSlots) -> Self {
        Self {
            db,
            poll,
            hearing,
            slots,
            closing: watch::channel(false).0,
        }
    }

    /// Ends every watcher's stream with UNAVAILABLE and a retry hint
    /// ([`AppError::Draining`]): the replica drains, and open streams would hold its
    /// shutdown up. A watcher resumes on another replica after the last cursor it
    /// received.
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// How many WatchAlerts streams are being served.
    pub fn open_streams(&self) -> usize {
        self.closing.receiver_count()
    }

    /// Opens a watch for the token `token_id` on `tenants`' events after `after_cursor`
    /// (empty: from the first event kept): INVALID_ARGUMENT naming `after_cursor` when it
    /// is not a cursor, NOT_FOUND for an unknown tenant, RESOURCE_EXHAUSTED when the token
    /// holds its most feeds already. The stream goes on until the client leaves or the
    /// feed closes (the replica drains: UNAVAILABLE with a retry hint); a database failure
    /// ends it with the error.
    pub async fn watch(
        &self,
        token_id: &str,
        tenants: Tenants,
        after_cursor: &str,
    ) -> Result<Feed> {
        let after = AlertCursor::parse(after_cursor)
            .map_err(|violation| AppError::InvalidFields(vec![violation]))?;
        let only = match tenants {
            Tenants::All => None,
            Tenants::Only(list) => Some(self.existing(list).await?),
        };
        let slot = self.slots.take_as(token_id, &format!("token {token_id}"))?;
        let (tx, rx) = mpsc::channel(BUFFER);
        let watcher = Watcher {
            db: self.db.clone(),
            poll: self.poll,
            hearing: self.hearing.clone(),
            tenants: only,
            after,
            out: tx,
        };
        tokio::spawn(watcher.run(self.closing.subscribe()));
        Ok(Feed { rx, _slot: slot })
    }

    /// `list` without repeats, each tenant checked to exist.
    async fn existing(&self, mut list: Vec<TenantId>) -> Result<Vec<TenantId>> {
        list.sort();
        list.dedup();
        for t in &list {
            tenants::require(&self.db, t).await?;
        }
        Ok(list)
    }
}

/// One watcher's events, oldest first; holds the watcher's slot until dropped.
#[derive(Debug)]
pub struct Feed {
    rx: mpsc::Receiver<Result<AlertEvent>>,
    _slot: OwnedSemaphorePermit,
}

impl Stream for Feed {
    type Item = Result<AlertEvent>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The task behind one [`Feed`].
struct Watcher {
    db: Db,
    poll: Duration,
    hearing: Hearing,
    tenants: Option<Vec<TenantId>>,
    after: AlertCursor,
    out: mpsc::Sender<Result<AlertEvent>>,
}

impl Watcher {
    /// Follows the feed until the client leaves or the feed closes (`closing`); an error
    /// ends the stream with it.
    async fn run(mut self, mut closing: watch::Receiver<bool>) {
        let end = match self.follow(&mut closing).await {
            Err(e) => Some(e),
            // Closed by the drain, not left by the client: told to go elsewhere.
            Ok(()) if *closing.borrow() => Some(AppError::Draining),
            Ok(()) => None,
        };
        if let Some(e) = end {
            let _ = self.out.send(Err(e)).await;
        }
    }

    async fn follow(&mut self, closing: &mut watch::Receiver<bool>) -> Result<()> {
        // Subscribed before the first read: an append committed after a read wakes the
        // wait that follows it.
        let mut appended = self.db.alert_events_watch();
        loop {
            appended.borrow_and_update();
            if !self.send_new(closing).await? {
                return Ok(());
            }
            tokio::select! {
                () = self.out.closed() => return Ok(()),
                () = closed(closing) => return Ok(()),
                // The sender lives as long as the database handle: never an error here.
                _ = appended.changed() => {}
                () = self.hearing.poll(self.poll) => {}
            }
        }
    }

    /// Sends every event after the last one sent, page by page; false when the client
    /// left or the feed closed.
    async fn send_new(&mut self, closing: &mut watch::Receiver<bool>) -> Result<bool> {
        loop {
            let page =
                alert_events::page(&self.db, self.tenants.as_deref(), self.after, PAGE).await?;
            let full = page.len() as u64 == PAGE;
            for e in page {
                let cursor = e.cursor;
                tokio::select! {
                    sent = self.out.send(Ok(e)) => if sent.is_err() {
                        return Ok(false);
                    },
                    () = closed(closing) => return Ok(false),
                }
                self.after = cursor;
            }
            if !full {
                return Ok(true);
            }
        }
    }
}

/// Completes when the feed closes.
async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await.map(|_| ());
}
