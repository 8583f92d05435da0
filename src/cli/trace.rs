//! `erpsync trace --tenant T --table company --id C1`: one record's story for a person,
//! from GetRecordTrace (every page), newest first, in the tenant's local time; coloured
//! like `erpsync logs` (rejections red, held deletions yellow) when [`crate::colour`]
//! allows it on stdout.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::client::{authorized, channel};
use crate::grpc::pb::{
    integration_history_client::IntegrationHistoryClient, AbcClass, CategoryChange,
    GetOverviewRequest, GetRecordTraceRequest, Lifecycle, RecordTrace, TraceEvent, TraceEventKind,
};

/// Events asked for per page.
const PAGE: u32 = 500;

/// What `erpsync trace` shows.
#[derive(Debug, Clone)]
pub struct TraceArgs {
    /// The tenant.
    pub tenant: String,
    /// The record's ERP table.
    pub table: String,
    /// The record's external id.
    pub id: String,
}

/// Prints the record's story (see the module's doc).
pub async fn trace(server: &str, token: &str, args: TraceArgs) -> anyhow::Result<()> {
    let colour = crate::colour::enabled(crate::colour::Stream::Stdout);
    let mut client = IntegrationHistoryClient::new(channel(server).await?);
    let status = |s: tonic::Status| anyhow::anyhow!("{:?}: {}", s.code(), s.message());
    let overview = client
        .get_overview(authorized(
            GetOverviewRequest {
                tenant_id: args.tenant.clone(),
            },
            token,
        )?)
        .await
        .map_err(status)?
        .into_inner();
    let tz: Tz = overview.timezone.parse().unwrap_or(chrono_tz::UTC);
    let mut first: Option<RecordTrace> = None;
    let mut events = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .get_record_trace(authorized(
                GetRecordTraceRequest {
                    tenant_id: args.tenant.clone(),
                    table: args.table.clone(),
                    external_id: args.id.clone(),
                    page_size: PAGE,
                    page_token: page_token.clone(),
                },
                token,
            )?)
            .await
            .map_err(status)?
            .into_inner();
        events.extend(page.events.iter().cloned());
        page_token = page.next_page_token.clone();
        first.get_or_insert(page);
        if page_token.is_empty() {
            break;
        }
    }
    let trace = first.context("no answer")?;
    let text = render(&trace, &events, tz, colour);
    let mut out = std::io::stdout();
    // stdout closed (`| head`): stop quietly.
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    Ok(())
}

/// One line of the story: when, and what (with its colour).
struct Line {
    at: Option<DateTime<Utc>>,
    text: String,
    paint: Paint,
}

#[derive(Clone, Copy)]
enum Paint {
    Plain,
    Red,
    Yellow,
    Green,
}

fn instant(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    let t = t?;
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

fn local(at: Option<DateTime<Utc>>, tz: Tz) -> String {
    at.map(|t| {
        t.with_timezone(&tz)
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string()
    })
    .unwrap_or_else(|| "-".repeat(23))
}

fn compact(v: &prost_types::Value) -> String {
    serde_json::to_string(&json(v)).unwrap_or_default()
}

fn json(v: &prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match &v.kind {
        Some(Kind::StringValue(s)) => s.clone().into(),
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(*n)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        Some(Kind::BoolValue(b)) => (*b).into(),
        Some(Kind::ListValue(l)) => l.values.iter().map(json).collect(),
        Some(Kind::StructValue(s)) => fields(s),
        Some(Kind::NullValue(_)) | None => serde_json::Value::Null,
    }
}

fn fields(s: &prost_types::Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), json(v))).collect())
}

fn short(hash: &str) -> &str {
    hash.get(..8).unwrap_or(hash)
}

fn event_line(e: &TraceEvent) -> Line {
    let kind = TraceEventKind::try_from(e.kind).unwrap_or(TraceEventKind::Unspecified);
    let index = e.index.map(|i| format!(" record #{i}")).unwrap_or_default();
    let transport = if e.transport.is_empty() {
        "no longer logged".to_owned()
    } else {
        e.transport.clone()
    };
    let record = e
        .record
        .as_ref()
        .map(|r| format!("\n{:24}  sent: {}", "", compact(r)))
        .unwrap_or_default();
    let (text, paint) = match kind {
        TraceEventKind::Accepted => (
            format!(
                "ACCEPTED   request {} ({transport}){index}: staged version {}{record}",
                e.request_id,
                short(&e.content_hash)
            ),
            Paint::Plain,
        ),
        TraceEventKind::Rejected => {
            let field = if e.field.is_empty() {
                "record"
            } else {
                e.field.as_str()
            };
            (
                format!(
                    "REJECTED   request {} ({transport}){index}: {field}: {}{record}",
                    e.request_id, e.reason
                ),
                Paint::Red,
            )
        }
        TraceEventKind::Held => (
            format!("HELD       run {} {}: {}", e.run_id, e.stage, e.reason),
            Paint::Yellow,
        ),
        TraceEventKind::Delivered | TraceEventKind::Deleted => (
            format!(
                "{:<10} run {} {}: version {}, sink answered \"{}\", key {}",
                if kind == TraceEventKind::Deleted {
                    "DELETED"
                } else {
                    "DELIVERED"
                },
                e.run_id,
                e.stage,
                short(&e.content_hash),
                e.sink_answer,
                e.idempotency_key
            ),
            Paint::Green,
        ),
        TraceEventKind::Unspecified => (format!("{kind:?}"), Paint::Plain),
    };
    Line {
        at: instant(e.at.as_ref()),
        text,
        paint,
    }
}

fn class(c: i32) -> String {
    match AbcClass::try_from(c) {
        Ok(AbcClass::Unspecified) | Err(_) => "none".into(),
        Ok(a) => a.as_str_name().trim_start_matches("ABC_CLASS_").to_owned(),
    }
}

fn lifecycle(l: i32) -> String {
    match Lifecycle::try_from(l) {
        Ok(Lifecycle::Unspecified) | Err(_) => "none".into(),
        Ok(x) => x.as_str_name().trim_start_matches("LIFECYCLE_").to_owned(),
    }
}

/// What a category change was computed from, as its line ends: ", revenue 1234.50, rank
/// 3, 80.00 % before it" (as much as the change keeps; nothing for older changes).
fn standing(c: &CategoryChange) -> String {
    let mut out = String::new();
    if !c.revenue.is_empty() {
        out.push_str(&format!(", revenue {}", c.revenue));
    }
    if let Some(rank) = c.rank {
        out.push_str(&format!(", rank {rank}"));
    }
    if !c.cumulative_share_before.is_empty() {
        out.push_str(&format!(", {} % before it", c.cumulative_share_before));
    }
    out
}

fn category_line(c: &CategoryChange) -> Line {
    Line {
        at: instant(c.changed_at.as_ref()),
        text: format!(
            "CATEGORY   run {}: ABC {} -> {}, lifecycle {} -> {}{}",
            c.run_id,
            class(c.abc_from),
            class(c.abc_to),
            lifecycle(c.lifecycle_from),
            lifecycle(c.lifecycle_to),
            standing(c)
        ),
        paint: Paint::Plain,
    }
}

fn painted(text: &str, paint: Paint, colour: bool) -> String {
    match (colour, paint) {
        (true, Paint::Red) => format!("\x1b[31m{text}\x1b[0m"),
        (true, Paint::Yellow) => format!("\x1b[33m{text}\x1b[0m"),
        (true, Paint::Green) => format!("\x1b[32m{text}\x1b[0m"),
        _ => text.to_owned(),
    }
}

/// The story as text: the record now (staged, in the CRM, its categories), then every
/// event and category change, newest first; ends with a newline.
fn render(t: &RecordTrace, events: &[TraceEvent], tz: Tz, colour: bool) -> String {
    let mut out = format!("{} {}\n", t.table, t.external_id);
    match &t.staged {
        Some(s) => {
            let state = if s.deleted {
                "deleted by the ERP"
            } else {
                "live"
            };
            let delivered = if s.delivered {
                "delivered"
            } else {
                "waiting for the next run"
            };
            out.push_str(&format!(
                "  staged:   version {} ({state}, {delivered}), staged {} by request {}\n",
                short(&s.content_hash),
                local(instant(s.staged_at.as_ref()), tz),
                s.request_id
            ));
            if let Some(f) = &s.fields {
                out.push_str(&format!("            {}\n", fields(f)));
            }
        }
        None => out.push_str("  staged:   nothing (never accepted)\n"),
    }
    if let Some(c) = &t.crm {
        match (&c.fields, c.present) {
            (Some(f), true) => out.push_str(&format!(
                "  CRM ({}): since {}\n            {}\n",
                c.sink,
                local(instant(c.updated_at.as_ref()), tz),
                fields(f)
            )),
            _ => out.push_str(&format!("  CRM ({}): does not hold it\n", c.sink)),
        }
    }
    if let Some(c) = &t.company {
        out.push_str(&format!(
            "  category: ABC {}, lifecycle {}, revenue {}, portfolio {}\n",
            class(c.abc_class),
            lifecycle(c.lifecycle),
            c.revenue,
            c.portfolio
        ));
    }
    let mut lines: Vec<Line> = events.iter().map(event_line).collect();
    lines.extend(t.category_changes.iter().map(category_line));
    // Newest first; events of one instant keep the server's order.
    lines.sort_by_key(|l| std::cmp::Reverse(l.at));
    out.push_str(&format!(
        "history, newest first ({} entries):\n",
        lines.len()
    ));
    for l in &lines {
        let text = format!("{} {}", local(l.at, tz), l.text);
        out.push_str(&painted(&text, l.paint, colour));
        out.push('\n');
    }
    out
}
