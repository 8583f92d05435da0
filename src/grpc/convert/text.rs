//! Every text field of every IntegrationHistory request, with the kind of its bound: the
//! one table [`crate::domain::text::check`] runs over before a request is parsed or
//! reaches a query. A new string field gets its line here. ErpIngest's fields are checked
//! by the ingestor (shared with `POST /erp/v1/{table}`, and logged); a request's
//! settings texts (name, erp_name, erp_version, business_rule) by their own rule
//! ([`crate::domain::tenant::SettingsUpdate`]); tenant ids by [`TenantId::parse`].
//!
//! [`TenantId::parse`]: crate::domain::tenant::TenantId::parse

use super::super::pb;
use crate::domain::text::{check, MAX_ID_CHARS, MAX_LONG_CHARS, MAX_SHORT_CHARS};
use crate::error::{AppError, FieldViolation, Result};

/// A request whose text fields are checked.
pub trait RequestText {
    /// Each text field's path, value and bound, in characters.
    fn fields(&self) -> Vec<(String, &str, usize)>;
}

/// INVALID_ARGUMENT naming every text field of `req` that holds a NUL or is too long.
pub fn check_text<T: RequestText>(req: &T) -> Result<()> {
    let violations: Vec<FieldViolation> = req
        .fields()
        .into_iter()
        .filter_map(|(field, value, max)| check(&field, value, max).err())
        .collect();
    if violations.is_empty() {
        Ok(())
    } else {
        Err(AppError::InvalidFields(violations))
    }
}

fn id<'a>(field: &str, value: &'a str) -> (String, &'a str, usize) {
    (field.to_owned(), value, MAX_ID_CHARS)
}

fn short<'a>(field: &str, value: &'a str) -> (String, &'a str, usize) {
    (field.to_owned(), value, MAX_SHORT_CHARS)
}

fn each<'a>(
    field: &str,
    values: &'a [String],
    max: usize,
) -> impl Iterator<Item = (String, &'a str, usize)> + 'a {
    let field = field.to_owned();
    values
        .iter()
        .enumerate()
        .map(move |(i, v)| (format!("{field}[{i}]"), v.as_str(), max))
}

/// Requests whose only text is the tenant id.
macro_rules! no_text {
    ($($t:ty),*) => {$(
        impl RequestText for $t {
            fn fields(&self) -> Vec<(String, &str, usize)> {
                Vec::new()
            }
        }
    )*};
}

no_text!(
    pb::GetOverviewRequest,
    pb::TriggerSyncRequest,
    pb::GetAbcReportRequest,
    pb::GetViewConfigRequest,
    pb::UpdateSettingsRequest
);

impl RequestText for pb::ListTablesRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![short("language", &self.language)]
    }
}

impl RequestText for pb::UpdateScheduleRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        let mut f: Vec<_> = self.timezone.iter().map(|z| short("timezone", z)).collect();
        if let Some(s) = &self.schedule {
            f.extend(each(
                "schedule.daily_times",
                &s.daily_times,
                MAX_SHORT_CHARS,
            ));
            f.push(short("schedule.cron", &s.cron));
        }
        f
    }
}

impl RequestText for pb::WatchTenantAlertsRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![id("after_cursor", &self.after_cursor)]
    }
}

impl RequestText for pb::StreamLogsRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        [
            ("run_id", &self.run_id),
            ("stage", &self.stage),
            ("table", &self.table),
        ]
        .into_iter()
        .filter_map(|(field, v)| v.as_deref().map(|v| id(field, v)))
        .collect()
    }
}

impl RequestText for pb::ExportHistoryRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        let mut f = vec![
            short("from_date", &self.from_date),
            short("to_date", &self.to_date),
        ];
        f.extend(each("tables", &self.tables, MAX_ID_CHARS));
        f
    }
}

impl RequestText for pb::ListRunsRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![short("page_token", &self.page_token)]
    }
}

impl RequestText for pb::GetRunRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![id("run_id", &self.run_id)]
    }
}

impl RequestText for pb::ListPendingDeletesRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        let mut f = vec![
            id("table", &self.table),
            short("page_token", &self.page_token),
            id("run_id", &self.run_id),
        ];
        f.extend(each("states", &self.states, MAX_ID_CHARS));
        f
    }
}

impl RequestText for pb::ResolvePendingDeletesRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        let mut f = vec![id("table", &self.table)];
        f.extend(each("ids", &self.ids, MAX_ID_CHARS));
        f
    }
}

impl RequestText for pb::ListCompaniesRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        let mut f = vec![short("page_token", &self.page_token)];
        f.extend(self.portfolio.iter().map(|p| id("portfolio", p)));
        f
    }
}

impl RequestText for pb::ResolveAbcShiftRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![id("run_id", &self.run_id)]
    }
}

impl RequestText for pb::GetCompanyHistoryRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![id("external_id", &self.external_id)]
    }
}

impl RequestText for pb::GetRecordTraceRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        vec![
            id("table", &self.table),
            id("external_id", &self.external_id),
            short("page_token", &self.page_token),
        ]
    }
}

impl RequestText for pb::SetViewConfigRequest {
    fn fields(&self) -> Vec<(String, &str, usize)> {
        let mut f: Vec<_> = self
            .url
            .iter()
            .map(|u| ("url".to_owned(), u.as_str(), MAX_LONG_CHARS))
            .collect();
        for (i, t) in self.tables.iter().enumerate() {
            let at = |name: &str| format!("tables[{i}].{name}");
            f.push((at("table"), &t.table, MAX_ID_CHARS));
            f.push((at("view"), &t.view, MAX_ID_CHARS));
            f.push((at("key_column"), &t.key_column, MAX_ID_CHARS));
            f.push((at("watermark_column"), &t.watermark_column, MAX_ID_CHARS));
            f.push((at("deleted_column"), &t.deleted_column, MAX_ID_CHARS));
            f.push((at("watermark"), &t.watermark, MAX_LONG_CHARS));
            // A key is a field name, a value a column: both ids, named by the map (the
            // key itself may be what is too long).
            for (key, column) in &t.columns {
                f.push((at("columns"), key, MAX_ID_CHARS));
                f.push((at("columns"), column, MAX_ID_CHARS));
            }
        }
        f
    }
}
