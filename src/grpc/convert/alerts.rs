//! The alert feed (WatchAlerts of Admin and IntegrationHistory): which tenants a request
//! names, and the events it streams.

use tokio_stream::{Stream, StreamExt};
use tonic::Status;

use super::super::pb;
use super::tenant::alert;
use super::values::{tenant_ids, timestamp};
use crate::alert_feed::{Feed, Tenants};
use crate::domain::alert::{AlertEvent, AlertEventKind};
use crate::error::{AppError, Result};

/// The tenants of Admin.WatchAlerts' `tenant_ids`: every tenant when empty;
/// INVALID_ARGUMENT naming each id that is not one.
pub fn watched_tenants(ids: &[String]) -> Result<Tenants> {
    if ids.is_empty() {
        return Ok(Tenants::All);
    }
    let mut violations = Vec::new();
    let tenants = tenant_ids(ids, &mut violations);
    if violations.is_empty() {
        Ok(Tenants::Only(tenants))
    } else {
        Err(AppError::InvalidFields(violations))
    }
}

/// A feed as the stream of AlertEvent messages a WatchAlerts answers.
pub fn alert_events(feed: Feed) -> impl Stream<Item = Result<pb::AlertEvent, Status>> {
    feed.map(|e| e.map(alert_event).map_err(Status::from))
}

fn alert_event(e: AlertEvent) -> pb::AlertEvent {
    pb::AlertEvent {
        cursor: e.cursor.encode(),
        tenant_id: e.tenant.as_str().to_owned(),
        kind: match e.kind {
            AlertEventKind::Opened => pb::AlertEventKind::Opened,
            AlertEventKind::Resolved => pb::AlertEventKind::Resolved,
            AlertEventKind::Restated => pb::AlertEventKind::Restated,
        } as i32,
        alert: Some(alert(e.alert)),
        at: Some(timestamp(e.at)),
    }
}
