//! Staleness windows as sent: the tenant's `max_time_without_success` and a table's
//! freshness limit take the same bounds and the same checks.

use chrono::Duration;

/// Shortest accepted staleness window: below it every run would look late.
pub const MIN_MAX_WITHOUT_SUCCESS: Duration = Duration::minutes(1);
/// Longest accepted staleness window.
pub const MAX_MAX_WITHOUT_SUCCESS: Duration = Duration::days(365);

/// A staleness window as sent, (seconds, nanos) of a protobuf Duration: 1 minute to 365
/// days (the tenant's STALE window and a table's freshness limit alike).
pub fn parse_window(secs: i64, nanos: i32) -> Result<Duration, String> {
    if secs < 0 || nanos < 0 || (secs == 0 && nanos == 0) {
        return Err("must be positive (e.g. 24h = 86400s)".into());
    }
    if nanos >= 1_000_000_000 {
        return Err("nanos must be below 1 000 000 000 (whole seconds go in seconds)".into());
    }
    if secs > MAX_MAX_WITHOUT_SUCCESS.num_seconds() {
        return Err("must be at most 365 days".into());
    }
    let d = Duration::seconds(secs) + Duration::nanoseconds(i64::from(nanos));
    if d < MIN_MAX_WITHOUT_SUCCESS {
        return Err("must be at least 1 minute".into());
    }
    if d > MAX_MAX_WITHOUT_SUCCESS {
        return Err("must be at most 365 days".into());
    }
    Ok(d)
}
