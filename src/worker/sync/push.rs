//! The push stage: companies and contacts to the CRM sink, page by page, in batches
//! under the delivery policy; orders, invoices, … are counted delivered (they feed the
//! ABC analysis from staging).

use std::sync::atomic::Ordering;

use chrono::Utc;
use serde_json::json;

use super::outcome::Outcome;
use super::{Ctx, PAGE};
use crate::domain::crm::{batch_key, CrmCompany, CrmContact, Deletion, Pending};
use crate::domain::run::{Level, Stage};
use crate::domain::tables::Table;
use crate::error::Result;
use crate::storage::{pending_deletes, staging};

/// Sends one page's upserts and deletions to the sink in batches (see
/// [`delivery`](crate::worker::delivery)), each keyed by its content; false when
/// shutdown stopped it before the end.
async fn deliver(
    ctx: &Ctx<'_>,
    table: Table,
    upserts: Vec<Pending>,
    deletes: Vec<Deletion>,
) -> Result<bool> {
    let sink = ctx.delivery.sink();
    let d = &ctx.delivery;
    let tenant = ctx.tenant.as_str();
    let mut upserts = upserts.into_iter().peekable();
    while upserts.peek().is_some() {
        if ctx.worker.runs.stopping() {
            return Ok(false);
        }
        let chunk: Vec<Pending> = upserts.by_ref().take(d.batch_size()).collect();
        let batch_len = chunk.len() as u64;
        let sent = match table {
            Table::Company => {
                let rows: Vec<CrmCompany> = chunk.into_iter().map(Pending::into_company).collect();
                let what = "UpsertCompanies";
                let key = batch_key(
                    what,
                    tenant,
                    rows.iter().map(|r| (r.external_id.as_str(), &r.version)),
                );
                d.send(Stage::Push, table, what, key, |call| {
                    sink.upsert_companies(call, rows.clone())
                })
                .await?
            }
            _ => {
                let rows: Vec<CrmContact> = chunk.into_iter().map(Pending::into_contact).collect();
                let what = "UpsertContacts";
                let key = batch_key(
                    what,
                    tenant,
                    rows.iter().map(|r| (r.external_id.as_str(), &r.version)),
                );
                d.send(Stage::Push, table, what, key, |call| {
                    sink.upsert_contacts(call, rows.clone())
                })
                .await?
            }
        };
        if sent.is_none() {
            return Ok(false);
        }
        ctx.push_progress(table, batch_len).await;
    }
    for chunk in deletes.chunks(d.batch_size()) {
        if ctx.worker.runs.stopping() {
            return Ok(false);
        }
        let what = match table {
            Table::Company => "DeleteCompanies",
            _ => "DeleteContacts",
        };
        let key = batch_key(
            what,
            tenant,
            chunk.iter().map(|r| (r.external_id.as_str(), &r.version)),
        );
        let sent = match table {
            Table::Company => {
                d.send(Stage::Push, table, what, key, |call| {
                    sink.delete_companies(call, chunk.to_vec())
                })
                .await?
            }
            _ => {
                d.send(Stage::Push, table, what, key, |call| {
                    sink.delete_contacts(call, chunk.to_vec())
                })
                .await?
            }
        };
        if sent.is_none() {
            return Ok(false);
        }
        let ids: Vec<String> = chunk.iter().map(|r| r.external_id.clone()).collect();
        pending_deletes::mark_applied(&ctx.worker.db, ctx.tenant, table, &ids, Utc::now()).await?;
        ctx.push_progress(table, chunk.len() as u64).await;
    }
    Ok(true)
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
        let mut after = String::new();
        ctx.push_progress(table, 0).await;
        loop {
            let page =
                staging::pending_page(&ctx.worker.db, ctx.tenant, table.as_str(), &after, PAGE)
                    .await?;
            let Some(last) = page.last() else { break };
            after = last.external_id.clone();
            let page_end = ctx.pushed.load(Ordering::SeqCst) + page.len() as u64;
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
            if !deliver(ctx, table, upserts, deletes).await? {
                // Stopped by shutdown mid-page: nothing of this page is marked, so the
                // next run sends it again (idempotent upserts absorb the repeat).
                ctx.interrupted = true;
                return Ok(Outcome::Pushed {
                    stopped_in: Some(table),
                });
            }
            staging::mark_delivered(&ctx.worker.db, ctx.tenant, table.as_str(), &delivered).await?;
            // Held tombstones were gone through too.
            ctx.pushed.store(page_end, Ordering::SeqCst);
            ctx.push_progress(table, 0).await;
            let c = ctx.counts(table);
            c.inserted += inserted;
            c.updated += updated;
            c.deleted += deleted;
            ctx.renew().await?;
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
