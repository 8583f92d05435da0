//! The push stage: companies and contacts to the CRM sink, page by page, in batches
//! under the delivery policy; orders, invoices, … are counted delivered (they feed the
//! ABC analysis from staging).
//!
//! The calls go to the sink one at a time, in order. What follows a batch's
//! acknowledgement — erpsync's record of what a host CRM accepted, the deletions marked
//! applied, a page's versions marked delivered, the progress shown, the lease renewed —
//! is done in that order while the next batch's call is in flight (see [`Lane`]):
//! nothing is recorded or marked before the CRM acknowledged it, and a failure of either
//! ends the stage once both are done.

use std::collections::HashSet;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use futures_util::future::BoxFuture;
use serde_json::json;

use super::ctx::{Ctx, PAGE};
use super::outcome::Outcome;
use crate::domain::crm::{batch_key, CrmCompany, CrmContact, Deletion, Pending, RecordVersion};
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::domain::trail::{NewTrail, TrailKind};
use crate::error::Result;
use crate::storage::{pending_deletes, staging, trail};
use crate::worker::sink::{CrmSink, SinkAck, SinkCall};

/// The bookkeeping of acknowledged batches, one step after the other, each started after
/// the one before ended; [`Lane::beside`] runs a sink call while it goes on, so at most
/// one call and one step run at a time.
#[derive(Default)]
struct Lane<'a> {
    pending: Option<BoxFuture<'a, Result<()>>>,
}

impl<'a> Lane<'a> {
    /// Queues `step` after what is pending.
    fn then(&mut self, step: impl Future<Output = Result<()>> + Send + 'a) {
        self.pending = Some(match self.pending.take() {
            Some(before) => Box::pin(async move {
                before.await?;
                step.await
            }),
            None => Box::pin(step),
        });
    }

    /// Waits for what is pending.
    async fn finish(&mut self) -> Result<()> {
        match self.pending.take() {
            Some(steps) => steps.await,
            None => Ok(()),
        }
    }

    /// `call`'s outcome, the pending steps done meanwhile; a failure of either once both
    /// ended (the call's first).
    async fn beside<T>(&mut self, call: impl Future<Output = Result<T>>) -> Result<T> {
        let (sent, done) = tokio::join!(call, self.finish());
        let sent = sent?;
        done?;
        Ok(sent)
    }
}

/// One call's records.
enum Batch {
    Companies(Vec<CrmCompany>),
    Contacts(Vec<CrmContact>),
    DeleteCompanies(Vec<Deletion>),
    DeleteContacts(Vec<Deletion>),
}

impl Batch {
    /// The sink's method, as the log and the idempotency key name it.
    fn method(&self) -> &'static str {
        match self {
            Self::Companies(_) => "UpsertCompanies",
            Self::Contacts(_) => "UpsertContacts",
            Self::DeleteCompanies(_) => "DeleteCompanies",
            Self::DeleteContacts(_) => "DeleteContacts",
        }
    }

    fn len(&self) -> usize {
        match self {
            Self::Companies(r) => r.len(),
            Self::Contacts(r) => r.len(),
            Self::DeleteCompanies(d) | Self::DeleteContacts(d) => d.len(),
        }
    }

    /// The batch's idempotency key (see [`batch_key`]).
    fn key(&self, tenant: &str) -> String {
        let ids: Box<dyn Iterator<Item = (&str, &RecordVersion)>> = match self {
            Self::Companies(r) => Box::new(r.iter().map(|c| (c.external_id.as_str(), &c.version))),
            Self::Contacts(r) => Box::new(r.iter().map(|c| (c.external_id.as_str(), &c.version))),
            Self::DeleteCompanies(d) | Self::DeleteContacts(d) => {
                Box::new(d.iter().map(|d| (d.external_id.as_str(), &d.version)))
            }
        };
        batch_key(self.method(), tenant, ids)
    }

    /// Sends the batch to `sink`.
    fn send<'s>(&'s self, sink: &'s dyn CrmSink, call: SinkCall) -> BoxFuture<'s, Result<SinkAck>> {
        match self {
            Self::Companies(r) => sink.upsert_companies(call, r),
            Self::Contacts(r) => sink.upsert_contacts(call, r),
            Self::DeleteCompanies(d) => sink.delete_companies(call, d),
            Self::DeleteContacts(d) => sink.delete_contacts(call, d),
        }
    }

    /// Each record's trail event for the CRM's acknowledgement `ack` of the batch sent
    /// with `key`: delivered (upserts) or deleted, with the sink's answer and the key.
    async fn trail(&self, ctx: &Ctx<'_>, table: Table, key: &str, ack: &SinkAck) -> Result<()> {
        let answer = match ack.total {
            Some(total) => format!("{} acknowledged; the CRM holds {total}", self.method()),
            None => format!("{} acknowledged", self.method()),
        };
        let versions: Vec<(&str, &RecordVersion, TrailKind)> = match self {
            Self::Companies(r) => r
                .iter()
                .map(|c| (c.external_id.as_str(), &c.version, TrailKind::Delivered))
                .collect(),
            Self::Contacts(r) => r
                .iter()
                .map(|c| (c.external_id.as_str(), &c.version, TrailKind::Delivered))
                .collect(),
            Self::DeleteCompanies(d) | Self::DeleteContacts(d) => d
                .iter()
                .map(|d| (d.external_id.as_str(), &d.version, TrailKind::Deleted))
                .collect(),
        };
        let events: Vec<NewTrail<'_>> = versions
            .into_iter()
            .map(|(id, version, kind)| NewTrail {
                detail: Some(&answer),
                content_hash: Some(version.content_hash),
                idempotency_key: Some(key),
                ..NewTrail::new(id, kind)
            })
            .collect();
        trail::by_run(
            &ctx.worker.db,
            ctx.tenant,
            table,
            (ctx.run_id.as_str(), Stage::Push.as_str()),
            ctx.worker.clock().now(),
            &events,
        )
        .await
    }

    /// What follows the CRM's acknowledgement of the batch sent with `key`: erpsync's
    /// record of it for a host CRM ([`CrmSink::record`]), deletions marked applied.
    async fn acknowledged(self, ctx: &Ctx<'_>, table: Table, key: String) -> Result<()> {
        if let Some(record) = ctx.delivery.sink().record() {
            let call = SinkCall {
                tenant: ctx.tenant.clone(),
                run_id: ctx.run_id.clone(),
                idempotency_key: key,
            };
            self.send(record, call).await?;
        }
        if let Self::DeleteCompanies(d) | Self::DeleteContacts(d) = self {
            let ids: Vec<String> = d.into_iter().map(|r| r.external_id).collect();
            pending_deletes::mark_applied(
                &ctx.worker.db,
                ctx.tenant,
                table,
                &ids,
                &ctx.run_id,
                ctx.worker.clock().now(),
            )
            .await?;
        }
        Ok(())
    }
}

/// A table's records delivered so far, counted as their pages are marked delivered.
#[derive(Default)]
struct Tally {
    inserted: AtomicU64,
    updated: AtomicU64,
    deleted: AtomicU64,
}

/// Sends `batch` (after the batches before it, see [`Lane`]) under the delivery policy
/// and queues what follows its acknowledgement; false when shutdown stopped it first.
async fn send<'b>(
    ctx: &'b Ctx<'_>,
    table: Table,
    batch: Batch,
    lane: &mut Lane<'b>,
) -> Result<bool> {
    if ctx.worker.runs.stopping() {
        return Ok(false);
    }
    let key = batch.key(ctx.tenant.as_str());
    let sink = ctx.delivery.sink();
    let sent = lane
        .beside(
            ctx.delivery
                .send(Stage::Push, table, batch.method(), key.clone(), |call| {
                    batch.send(sink, call)
                }),
        )
        .await?;
    let Some(ack) = sent else {
        return Ok(false);
    };
    lane.then(async move {
        let n = batch.len() as u64;
        batch.trail(ctx, table, &key, &ack).await?;
        batch.acknowledged(ctx, table, key).await?;
        ctx.push_progress(table, n).await;
        Ok(())
    });
    Ok(true)
}

/// Sends one page's upserts and deletions to the sink in batches (see
/// [`delivery`](crate::worker::delivery)), each keyed by its content; false when
/// shutdown stopped it before the end.
async fn deliver<'b>(
    ctx: &'b Ctx<'_>,
    table: Table,
    upserts: Vec<Pending>,
    deletes: Vec<Deletion>,
    lane: &mut Lane<'b>,
) -> Result<bool> {
    let size = ctx.delivery.batch_size();
    let mut upserts = upserts.into_iter().peekable();
    while upserts.peek().is_some() {
        let chunk = upserts.by_ref().take(size);
        let batch = match table {
            Table::Company => Batch::Companies(chunk.map(Pending::into_company).collect()),
            _ => Batch::Contacts(chunk.map(Pending::into_contact).collect()),
        };
        if !send(ctx, table, batch, lane).await? {
            return Ok(false);
        }
    }
    let mut deletes = deletes.into_iter().peekable();
    while deletes.peek().is_some() {
        let chunk = deletes.by_ref().take(size).collect();
        let batch = match table {
            Table::Company => Batch::DeleteCompanies(chunk),
            _ => Batch::DeleteContacts(chunk),
        };
        if !send(ctx, table, batch, lane).await? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Pushes `table`'s pending records page by page, except the deletions `held`, counting
/// them in `tally`; false when shutdown stopped it before the end. What the CRM
/// acknowledged is recorded before it returns, whatever happened after.
async fn push_table(
    ctx: &Ctx<'_>,
    table: Table,
    held: &HashSet<String>,
    tally: &Tally,
) -> Result<bool> {
    let mut lane = Lane::default();
    let pushed = push_pages(ctx, table, held, tally, &mut lane).await;
    let done = lane.finish().await;
    let pushed = pushed?;
    done?;
    Ok(pushed)
}

async fn push_pages<'b>(
    ctx: &'b Ctx<'_>,
    table: Table,
    held: &HashSet<String>,
    tally: &'b Tally,
    lane: &mut Lane<'b>,
) -> Result<bool> {
    let mut after = String::new();
    let mut page_end = ctx.pushed.load(Ordering::SeqCst);
    loop {
        let page =
            staging::pending_page(&ctx.worker.db, ctx.tenant, table.as_str(), &after, PAGE).await?;
        let Some(last) = page.last() else {
            return Ok(true);
        };
        after = last.external_id.clone();
        page_end += page.len() as u64;
        let mut delivered = Vec::with_capacity(page.len());
        let (mut upserts, mut deletes) = (Vec::new(), Vec::new());
        let (mut inserted, mut updated) = (0, 0);
        for rec in page {
            if rec.deleted {
                if !held.contains(&rec.external_id) {
                    delivered.push((rec.external_id.clone(), rec.version.content_hash));
                    deletes.push(Deletion {
                        external_id: rec.external_id,
                        version: rec.version,
                    });
                }
                continue;
            }
            if rec.delivered_before {
                updated += 1
            } else {
                inserted += 1
            }
            delivered.push((rec.external_id.clone(), rec.version.content_hash));
            upserts.push(rec);
        }
        let deleted = deletes.len() as u64;
        if !deliver(ctx, table, upserts, deletes, lane).await? {
            // Stopped by shutdown mid-page: nothing of this page is marked, so the
            // next run sends it again (idempotent upserts absorb the repeat).
            return Ok(false);
        }
        // Every batch of the page was acknowledged.
        lane.then(async move {
            staging::mark_delivered(&ctx.worker.db, ctx.tenant, table.as_str(), &delivered).await?;
            // Held tombstones were gone through too.
            ctx.pushed.store(page_end, Ordering::SeqCst);
            ctx.push_progress(table, 0).await;
            tally.inserted.fetch_add(inserted, Ordering::SeqCst);
            tally.updated.fetch_add(updated, Ordering::SeqCst);
            tally.deleted.fetch_add(deleted, Ordering::SeqCst);
            ctx.renew().await
        });
    }
}

pub(super) async fn push(ctx: &mut Ctx<'_>) -> Result<Outcome> {
    for table in Table::ALL {
        // Orders, invoices, … are not sent to the CRM: they feed the ABC analysis from
        // staging; delivering them means counting them once.
        if !table.is_crm() {
            staging::mark_all_delivered(&ctx.worker.db, ctx.tenant, table.as_str()).await?;
            continue;
        }
        let held = ctx.held.remove(&table).unwrap_or_default();
        ctx.push_progress(table, 0).await;
        let tally = Tally::default();
        let pushed = push_table(ctx, table, &held, &tally).await;
        let c = ctx.counts(table);
        c.inserted += tally.inserted.into_inner();
        c.updated += tally.updated.into_inner();
        c.deleted += tally.deleted.into_inner();
        if !pushed? {
            ctx.interrupted = true;
            return Ok(Outcome::Pushed {
                stopped_in: Some(table),
            });
        }
        if let Some(c) = ctx.tables.get(&table).cloned() {
            if c.inserted + c.updated + c.deleted > 0 {
                ctx.event(
                    Level::Info,
                    Stage::Push,
                    Some(table.as_str()),
                    format!(
                        "delivered: {} new, {} updated, {} deleted",
                        c.inserted, c.updated, c.deleted
                    ),
                    json!({"inserted": c.inserted, "updated": c.updated, "deleted": c.deleted}),
                )
                .await;
            }
        }
    }
    ctx.pushed_all = true;
    Ok(Outcome::Pushed { stopped_in: None })
}
