//! The live side of tenants' logs, which StreamLogs serves.
//!
//! The log itself is the `sync_event` table: every event has a cursor the database
//! assigns, and within a tenant events commit in cursor order (see
//! [`events::append`]), so "the events after cursor N" is exact, also across restarts.
//!
//! Live delivery: one *tail* task per tenant that has viewers reads the new events from
//! the database when an append in this process wakes it, or another replica's append
//! (heard through PostgreSQL's LISTEN/NOTIFY, see [`crate::wakeup`]), and broadcasts
//! them; while no listener hears other processes (SQLite, or PostgreSQL while the listen
//! connection is down) it also reads every `poll` interval. A viewer first subscribes, then
//! reads its backlog from the database, then takes the broadcast, skipping what it has
//! already sent; so nothing is missed or sent twice. The broadcast never waits for a
//! viewer: one that falls more than [`BUFFER`] events behind is told it lagged and reads
//! the gap from the database by cursor, then goes on live. The tail ends when its last
//! viewer goes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, mpsc, watch, Notify};

use crate::domain::run::LogEvent;
use crate::domain::tenant::TenantId;
use crate::error::{AppError, Result};
use crate::storage::events::{self, Filter, NewEvent};
use crate::storage::notify::Hearing;
use crate::storage::Db;

/// Events a viewer may fall behind the live tail before it reads from the database.
pub const BUFFER: usize = 1024;

/// Events read from the database at a time (backlog, catch-up, tail).
const PAGE: u64 = 500;

/// What a viewer receives.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An event of the log.
    Event(LogEvent),
    /// Nothing new: the stream is alive, and the viewer has seen everything up to this
    /// cursor (resuming after it misses nothing).
    Heartbeat(u64),
}

/// Where a viewer starts and what it wants.
#[derive(Debug, Clone)]
pub struct Request {
    /// Whose log.
    pub tenant: TenantId,
    /// Events after this cursor (`None`: from `since`, or from the beginning).
    pub after: Option<u64>,
    /// With `after` unset: events written at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Which events.
    pub filter: Filter,
    /// Stay open after the backlog and deliver new events live.
    pub follow: bool,
}

struct Tail {
    tx: broadcast::Sender<Arc<LogEvent>>,
    wake: Arc<Notify>,
}

/// How often a tail looks for other processes' events by default, while no listener hears
/// them.
pub const DEFAULT_POLL: Duration = Duration::from_secs(1);
/// How long a StreamLogs viewer waits without events for a heartbeat by default: under
/// the idle timeouts of common proxies.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);

/// The tails of the tenants that have live viewers; cheap to clone.
#[derive(Clone)]
pub struct LogHub {
    db: Db,
    tails: Arc<Mutex<HashMap<TenantId, Tail>>>,
    poll: Duration,
    hearing: Hearing,
    heartbeat: Duration,
    closing: watch::Sender<bool>,
}

impl std::fmt::Debug for LogHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogHub")
            .field("poll", &self.poll)
            .field("heartbeat", &self.heartbeat)
            .finish_non_exhaustive()
    }
}

impl LogHub {
    /// A hub over the logs kept in `db`, whose tails also look for other processes'
    /// events every `poll` while `hearing` says no listener hears them, and whose viewers
    /// get a heartbeat after `heartbeat` without events.
    pub fn new(db: Db, poll: Duration, hearing: Hearing, heartbeat: Duration) -> Self {
        Self {
            db,
            tails: Arc::default(),
            poll,
            hearing,
            heartbeat,
            closing: watch::channel(false).0,
        }
    }

    fn tails(&self) -> std::sync::MutexGuard<'_, HashMap<TenantId, Tail>> {
        // The map stays consistent whatever panicked while holding it.
        self.tails.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes an event to the tenant's log and wakes its live viewers; returns its cursor.
    pub async fn append(&self, e: NewEvent<'_>, at: DateTime<Utc>) -> Result<u64> {
        let tenant = e.tenant;
        let cursor = events::append(&self.db, e, at).await?;
        // At once, without waiting for the notification to come back from PostgreSQL.
        self.wake(tenant);
        Ok(cursor)
    }

    /// [`append`](Self::append) for a run's own events: a run goes on when its log cannot
    /// be written, so a failure is only reported on stderr.
    pub async fn append_or_report(&self, e: NewEvent<'_>, at: DateTime<Utc>) {
        let run = e.run_id.unwrap_or("-").to_owned();
        if let Err(err) = self.append(e, at).await {
            tracing::error!(error = ?anyhow::Error::from(err), run = %run, "cannot write a run event");
        }
    }

    /// Wakes the tenant's tail, if it has one, to read what was appended after its cursor
    /// (another replica appended).
    pub fn wake(&self, tenant: &TenantId) {
        if let Some(t) = self.tails().get(tenant) {
            t.wake.notify_one();
        }
    }

    /// Wakes every tail to read from its cursor (appends may have gone unheard, or the
    /// poll interval changed).
    pub fn wake_all(&self) {
        for t in self.tails().values() {
            t.wake.notify_one();
        }
    }

    /// Ends every viewer's stream with UNAVAILABLE and a retry hint ([`AppError::Draining`]):
    /// the replica drains, and open streams would hold its shutdown up. A viewer resumes
    /// on another replica after the last cursor it received (an event's or a heartbeat's).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    /// How many StreamLogs streams are being served.
    pub fn open_streams(&self) -> usize {
        self.closing.receiver_count()
    }

    /// How many live viewers the tenant has (subscriptions not yet released).
    pub fn viewers(&self, tenant: &TenantId) -> usize {
        self.tails()
            .get(tenant)
            .map_or(0, |t| t.tx.receiver_count())
    }

    async fn subscribe(&self, db: &Db, tenant: &TenantId) -> Result<Subscription> {
        if let Some(s) = self.existing(tenant) {
            return Ok(s);
        }
        // Read before the tail exists: everything up to `last` is committed, so a viewer
        // that reads its backlog after subscribing finds it in the database.
        let last = events::last_cursor(db, tenant).await?;
        let mut tails = self.tails();
        if let Some(t) = tails.get(tenant) {
            return Ok(Subscription {
                rx: t.tx.subscribe(),
                wake: t.wake.clone(),
            });
        }
        let (tx, rx) = broadcast::channel(BUFFER);
        let wake = Arc::new(Notify::new());
        tails.insert(
            tenant.clone(),
            Tail {
                tx: tx.clone(),
                wake: wake.clone(),
            },
        );
        tokio::spawn(
            self.clone()
                .tail(db.clone(), tenant.clone(), tx, wake.clone(), last),
        );
        Ok(Subscription { rx, wake })
    }

    fn existing(&self, tenant: &TenantId) -> Option<Subscription> {
        self.tails().get(tenant).map(|t| Subscription {
            rx: t.tx.subscribe(),
            wake: t.wake.clone(),
        })
    }

    /// The tenant's tail: reads what was appended after `last` and broadcasts it, until
    /// no viewer is left.
    async fn tail(
        self,
        db: Db,
        tenant: TenantId,
        tx: broadcast::Sender<Arc<LogEvent>>,
        wake: Arc<Notify>,
        mut last: u64,
    ) {
        let all = Filter::default();
        loop {
            loop {
                match events::page(&db, &tenant, last, &all, PAGE).await {
                    Ok(page) => {
                        let full = page.len() as u64 == PAGE;
                        for e in page {
                            last = e.cursor;
                            // No receiver left is not an error: checked below.
                            let _ = tx.send(Arc::new(e));
                        }
                        if !full {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(tenant = %tenant, error = %e, "log tail cannot read events; retrying");
                        break;
                    }
                }
            }
            if tx.receiver_count() == 0 {
                let mut tails = self.tails();
                // Under the lock: no viewer can subscribe between the check and the removal.
                if tx.receiver_count() == 0 {
                    tails.remove(&tenant);
                    return;
                }
            }
            // A wake-up arriving while the tail read is kept (`notify_one` stores it), so
            // what was appended meanwhile is read next.
            tokio::select! {
                () = wake.notified() => {}
                () = self.hearing.poll(self.poll) => {}
            }
        }
    }

    /// Serves one viewer: its backlog, then (with `follow`) live events and heartbeats,
    /// into `out`, until the backlog ends (without `follow`), the viewer goes (`out`
    /// closed) or the server closes the hub (a follower's stream then ends UNAVAILABLE
    /// with a retry hint). Errors end the stream with the error.
    pub async fn serve(&self, req: Request, out: mpsc::Sender<Result<Item>>) {
        let _counted = crate::metrics::LogFollower::counted();
        if let Err(e) = self.serve_inner(&self.db, req, &out).await {
            let _ = out.send(Err(e)).await;
        }
    }

    async fn serve_inner(
        &self,
        db: &Db,
        req: Request,
        out: &mpsc::Sender<Result<Item>>,
    ) -> Result<()> {
        let closing = closed(self.closing.subscribe());
        tokio::pin!(closing);
        // Subscribe before reading the backlog: what the tail broadcasts from now on is
        // caught live, what it broadcast before is in the database.
        let mut sub = match req.follow {
            true => Some(self.subscribe(db, &req.tenant).await?),
            false => None,
        };
        let mut after = match (req.after, req.since) {
            (Some(after), _) => after,
            (None, Some(since)) => events::cursor_before(db, &req.tenant, since).await?,
            (None, None) => 0,
        };
        if !catch_up(db, &req, &mut after, out).await? {
            return Ok(());
        }
        let Some(sub) = sub.as_mut() else {
            return Ok(());
        };
        let mut beat = tokio::time::Instant::now() + self.heartbeat;
        loop {
            tokio::select! {
                () = out.closed() => return Ok(()),
                () = &mut closing => return Err(AppError::Draining),
                () = tokio::time::sleep_until(beat) => {
                    if out.send(Ok(Item::Heartbeat(after))).await.is_err() {
                        return Ok(());
                    }
                    beat = tokio::time::Instant::now() + self.heartbeat;
                }
                got = sub.rx.recv() => match got {
                    Ok(e) if e.cursor > after => {
                        after = e.cursor;
                        if req.filter.matches(&e) {
                            if out.send(Ok(Item::Event((*e).clone()))).await.is_err() {
                                return Ok(());
                            }
                            beat = tokio::time::Instant::now() + self.heartbeat;
                        }
                    }
                    Ok(_) => {}
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        if !catch_up(db, &req, &mut after, out).await? {
                            return Ok(());
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }
}

/// Completes when the hub closes.
async fn closed(mut closing: watch::Receiver<bool>) {
    let _ = closing.wait_for(|c| *c).await.map(|_| ());
}

/// A viewer's place on a tail. Dropping it wakes the tail, which ends when it was the
/// last viewer.
struct Subscription {
    rx: broadcast::Receiver<Arc<LogEvent>>,
    wake: Arc<Notify>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.wake.notify_one();
    }
}

/// Sends the matching events after `after` from the database, page by page, until none
/// is left; false when the viewer went.
async fn catch_up(
    db: &Db,
    req: &Request,
    after: &mut u64,
    out: &mpsc::Sender<Result<Item>>,
) -> Result<bool> {
    loop {
        let page = events::page(db, &req.tenant, *after, &req.filter, PAGE).await?;
        let full = page.len() as u64 == PAGE;
        for e in page {
            *after = e.cursor;
            if out.send(Ok(Item::Event(e))).await.is_err() {
                return Ok(false);
            }
        }
        if !full {
            return Ok(true);
        }
    }
}
