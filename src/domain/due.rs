//! When a tenant is next due for the scheduler: the one rule behind the stored, indexed
//! `tenant_due.due_at`, so a tick reads only the tenants that have something to do. A
//! tenant is due at the earliest of its next schedule slot (in its timezone), the retry of
//! its last run when that failed or was interrupted, the instant its STALE alert
//! would open (last success + `max_time_without_success`), and the earliest instant one
//! of its tables goes past its freshness limit ([`super::freshness::next_stale`]).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::run::{RunStatus, RunSummary, RunTrigger, HANDED_OVER_CAUSE};
use super::tenant::Tenant;

/// How far back a tick looks for a slot: a few ticks, so a slow tick or a short pause
/// misses nothing, while a server that was down for hours does not replay old slots.
pub const CATCH_UP: chrono::Duration = chrono::Duration::seconds(30);

/// How failed runs are tried again (trigger RETRY).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunRetries {
    /// Automatic retries after a failure (0: none); a run started otherwise resets them.
    pub max: u32,
    /// Wait after the failed run before the first retry; doubled for each next one.
    pub backoff: Duration,
}

/// Default [`RunRetries::max`].
pub const DEFAULT_RUN_RETRIES: u32 = 3;
/// Default [`RunRetries::backoff`].
pub const DEFAULT_RUN_RETRY_BACKOFF: Duration = Duration::from_secs(60);

impl Default for RunRetries {
    fn default() -> Self {
        Self {
            max: DEFAULT_RUN_RETRIES,
            backoff: DEFAULT_RUN_RETRY_BACKOFF,
        }
    }
}

impl RunRetries {
    /// How long after a failed run the next retry waits, when `done` retries followed the
    /// last run started otherwise; None when none is left.
    pub fn next(&self, done: u32) -> Option<Duration> {
        (done < self.max).then(|| self.backoff.saturating_mul(1u32 << done.min(20)))
    }

    /// When the tenant's newest run (of `recent`, newest first) is to be retried, and
    /// its id: when it FAILED, after its backoff; when it was INTERRUPTED (its server
    /// died or handed it over), at once; while retries are left (each retry that ended
    /// badly again counts one, unless a draining replica handed it over). None when the newest run is running or went well, or retries are used up.
    pub fn retry_at(&self, recent: &[RunSummary]) -> Option<(DateTime<Utc>, String)> {
        let ended_badly =
            |r: &RunSummary| matches!(r.status, RunStatus::Failed | RunStatus::Interrupted);
        let last = recent.first().filter(|r| ended_badly(r))?;
        // A retry handed over by a draining replica did not fail: a rollout that stops
        // replicas one after the other must not use the tenant's retries up.
        let done = recent
            .iter()
            .take_while(|r| r.trigger == RunTrigger::Retry && ended_badly(r))
            .filter(|r| r.error.as_deref() != Some(HANDED_OVER_CAUSE))
            .count();
        let wait = self.next(u32::try_from(done).unwrap_or(u32::MAX))?;
        let wait = match last.status {
            RunStatus::Interrupted => chrono::Duration::zero(),
            _ => chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::MAX),
        };
        let ended = last.finished_at.unwrap_or(last.started_at);
        let at = ended
            .checked_add_signed(wait)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Some((at, last.id.clone()))
    }

    /// The run to retry at `now` (see [`RunRetries::retry_at`]), once its instant came.
    pub fn due(&self, recent: &[RunSummary], now: DateTime<Utc>) -> Option<String> {
        self.retry_at(recent)
            .and_then(|(at, id)| (now >= at).then_some(id))
    }
}

/// What a tenant's due instant depends on besides its settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DueState {
    /// The last schedule slot claimed (by any replica).
    pub last_slot: Option<DateTime<Utc>>,
    /// When the last run is to be retried ([`RunRetries::retry_at`]), if it is.
    pub retry_at: Option<DateTime<Utc>>,
    /// When the newest successful (or partial) run finished.
    pub last_success: Option<DateTime<Utc>>,
    /// The earliest instant a table without an open STALE_TABLE alert goes past its
    /// freshness limit ([`super::freshness::next_stale`]).
    pub table_stale_at: Option<DateTime<Utc>>,
}

/// Why the due instant is computed again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// The scheduler has just looked at the tenant at this instant: whatever was due up
    /// to it is done (slot claimed, STALE checked, retry started).
    Looked(DateTime<Utc>),
    /// Something changed at this instant (settings, a run): whatever is due already is
    /// due now, and a slot within [`CATCH_UP`] still counts, as a tick would see it.
    Changed(DateTime<Utc>),
}

/// When the scheduler must next look at `tenant`; None when nothing will ever be due
/// until something changes (an inactive tenant, or one neither scheduled, retrying nor
/// watching a table's freshness). Table freshness counts whether or not the tenant is
/// scheduled: an ERP pushes on its own.
pub fn next_due(tenant: &Tenant, state: &DueState, moment: Moment) -> Option<DateTime<Utc>> {
    if !tenant.active {
        return None;
    }
    // Components at or before `done` were handled by the look that computes this.
    let (done, slot_from) = match moment {
        Moment::Looked(now) => (Some(now), now),
        Moment::Changed(now) => (None, now - CATCH_UP),
    };
    let pending = |at: DateTime<Utc>| done.is_none_or(|d| at > d);
    let mut due: Option<DateTime<Utc>> = [state.retry_at, state.table_stale_at]
        .into_iter()
        .flatten()
        .filter(|at| pending(*at))
        .min();
    if tenant.scheduled {
        let from = state.last_slot.map_or(slot_from, |s| s.max(slot_from));
        let slot = tenant.schedule.next_after(from, tenant.timezone);
        let since = state.last_success.unwrap_or(tenant.created_at);
        let stale = since
            .checked_add_signed(tenant.max_time_without_success)
            .filter(|at| pending(*at));
        for at in [slot, stale].into_iter().flatten() {
            due = Some(due.map_or(at, |d| d.min(at)));
        }
    }
    due
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::domain::schedule::{DailyTime, Schedule};
    use crate::domain::tenant::TenantId;

    fn run(id: &str, status: RunStatus, trigger: RunTrigger, ended: DateTime<Utc>) -> RunSummary {
        RunSummary {
            id: id.into(),
            status,
            trigger,
            started_at: ended - chrono::Duration::seconds(5),
            finished_at: Some(ended),
            error: None,
        }
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap()
    }

    /// Scheduled daily at 08:00 in UTC, created on Dec 1st at 00:00, 24 h window.
    fn tenant() -> Tenant {
        let mut t = Tenant::new(TenantId::parse("t").unwrap(), "T".into(), at(1, 0, 0));
        t.timezone = chrono_tz::UTC;
        t.scheduled = true;
        t.schedule = Schedule::daily(vec![DailyTime::new(8, 0).unwrap()]).unwrap();
        t
    }

    #[test]
    fn failed_runs_are_retried_after_a_growing_backoff_a_bounded_number_of_times() {
        let r = RunRetries::default();
        let t0 = Utc::now();
        let min = chrono::Duration::minutes;
        let failed = run("m", RunStatus::Failed, RunTrigger::Manual, t0);
        let one = std::slice::from_ref(&failed);
        assert_eq!(r.due(one, t0 + min(1) - chrono::Duration::seconds(1)), None);
        assert_eq!(r.due(one, t0 + min(1)), Some("m".into()));
        assert_eq!(r.retry_at(one), Some((t0 + min(1), "m".into())));
        let r1 = run("r1", RunStatus::Failed, RunTrigger::Retry, t0 + min(2));
        assert_eq!(r.due(&[r1.clone(), failed.clone()], t0 + min(3)), None);
        assert_eq!(
            r.due(&[r1.clone(), failed.clone()], t0 + min(4)),
            Some("r1".into())
        );
        let r2 = run("r2", RunStatus::Failed, RunTrigger::Retry, t0 + min(5));
        let r3 = run("r3", RunStatus::Failed, RunTrigger::Retry, t0 + min(10));
        assert_eq!(
            r.due(&[r2.clone(), r1.clone(), failed.clone()], t0 + min(9)),
            Some("r2".into())
        );
        assert_eq!(
            r.due(&[r3, r2, r1, failed], t0 + min(600)),
            None,
            "three retries, then none"
        );
    }

    #[test]
    fn interrupted_runs_are_retried_at_once_and_good_runs_never() {
        let r = RunRetries::default();
        let t0 = Utc::now();
        let gone = run("i", RunStatus::Interrupted, RunTrigger::Schedule, t0);
        assert_eq!(r.due(&[gone], t0), Some("i".into()));
        for status in [RunStatus::Success, RunStatus::Partial, RunStatus::Running] {
            let ok = run("s", status, RunTrigger::Manual, t0);
            assert_eq!(r.due(&[ok], t0 + chrono::Duration::days(1)), None);
        }
        let failed = run("f", RunStatus::Failed, RunTrigger::Manual, t0);
        assert_eq!(
            RunRetries { max: 0, ..r }.due(&[failed], t0 + chrono::Duration::days(1)),
            None
        );
        assert_eq!(r.due(&[], t0), None);
    }

    #[test]
    fn retries_handed_over_by_draining_replicas_use_no_retry_up() {
        let r = RunRetries::default();
        let t0 = Utc::now();
        let handed = |id: &str, trigger| RunSummary {
            error: Some(HANDED_OVER_CAUSE.into()),
            ..run(id, RunStatus::Interrupted, trigger, t0)
        };
        let recent: Vec<RunSummary> = (0..5)
            .map(|i| handed(&format!("r{i}"), RunTrigger::Retry))
            .chain([handed("s", RunTrigger::Schedule)])
            .collect();
        assert_eq!(
            r.due(&recent, t0),
            Some("r0".into()),
            "a rollout of five replicas"
        );
        let crashed = |id: &str| run(id, RunStatus::Interrupted, RunTrigger::Retry, t0);
        let crashes = [
            crashed("c2"),
            crashed("c1"),
            crashed("c0"),
            handed("s", RunTrigger::Schedule),
        ];
        assert_eq!(
            r.due(&crashes, t0),
            None,
            "a run that kills its server is not retried forever"
        );
    }

    #[test]
    fn a_scheduled_tenant_is_due_at_its_next_slot_in_its_timezone() {
        let mut t = tenant();
        let s = DueState {
            last_success: Some(at(7, 7, 0)),
            ..DueState::default()
        };
        assert_eq!(
            next_due(&t, &s, Moment::Changed(at(7, 7, 0))),
            Some(at(7, 8, 0))
        );
        // 08:00 in São Paulo (UTC-3) is 11:00 UTC.
        t.timezone = chrono_tz::America::Sao_Paulo;
        assert_eq!(
            next_due(&t, &s, Moment::Changed(at(7, 7, 0))),
            Some(at(7, 11, 0))
        );
        t.schedule = Schedule::daily(vec![DailyTime::new(6, 30).unwrap()]).unwrap();
        assert_eq!(
            next_due(&t, &s, Moment::Changed(at(7, 7, 0))),
            Some(at(7, 9, 30))
        );
    }

    #[test]
    fn a_claimed_slot_is_never_due_again_and_a_look_moves_past_its_instant() {
        let t = tenant();
        let s = DueState {
            last_slot: Some(at(7, 8, 0)),
            last_success: Some(at(7, 8, 1)),
            ..DueState::default()
        };
        let tomorrow = Some(at(8, 8, 0));
        assert_eq!(next_due(&t, &s, Moment::Changed(at(7, 8, 0))), tomorrow);
        assert_eq!(next_due(&t, &s, Moment::Looked(at(7, 8, 0))), tomorrow);
        // Unclaimed, a slot a few seconds ago is due at once after a change (a tick would
        // still take it), but not after a look (the look took it or let it go).
        let unclaimed = DueState {
            last_slot: None,
            ..s
        };
        let now = at(7, 8, 0) + chrono::Duration::seconds(10);
        assert_eq!(
            next_due(&t, &unclaimed, Moment::Changed(now)),
            Some(at(7, 8, 0))
        );
        assert_eq!(next_due(&t, &unclaimed, Moment::Looked(now)), tomorrow);
    }

    #[test]
    fn a_retry_and_the_stale_alert_make_a_tenant_due_earlier_than_its_slot() {
        let t = tenant();
        let retry = DueState {
            retry_at: Some(at(7, 3, 0)),
            last_success: Some(at(7, 0, 0)),
            ..DueState::default()
        };
        assert_eq!(
            next_due(&t, &retry, Moment::Changed(at(7, 2, 0))),
            Some(at(7, 3, 0))
        );
        // The look that started the retry is past it.
        assert_eq!(
            next_due(&t, &retry, Moment::Looked(at(7, 3, 0))),
            Some(at(7, 8, 0))
        );
        let mut slow = tenant();
        slow.schedule = Schedule::cron("0 0 1 * *").unwrap();
        let quiet = DueState {
            last_success: Some(at(6, 12, 0)),
            ..DueState::default()
        };
        assert_eq!(
            next_due(&slow, &quiet, Moment::Changed(at(7, 2, 0))),
            Some(at(7, 12, 0))
        );
        // Past the window with the alert checked, the month's first is next.
        assert_eq!(
            next_due(&slow, &quiet, Moment::Looked(at(7, 12, 0))),
            Some(Utc.with_ymd_and_hms(2027, 1, 1, 0, 0, 0).unwrap())
        );
        // Already stale when the window shrinks: due now, for the next tick to check.
        assert_eq!(
            next_due(&slow, &quiet, Moment::Changed(at(8, 0, 0))),
            Some(at(7, 12, 0))
        );
    }

    #[test]
    fn a_table_going_stale_makes_a_tenant_due_scheduled_or_not() {
        let mut t = tenant();
        let s = DueState {
            last_success: Some(at(7, 7, 0)),
            table_stale_at: Some(at(7, 7, 30)),
            ..DueState::default()
        };
        assert_eq!(
            next_due(&t, &s, Moment::Changed(at(7, 7, 0))),
            Some(at(7, 7, 30))
        );
        // The look at that instant opened its alert (or found data): the slot is next.
        assert_eq!(
            next_due(&t, &s, Moment::Looked(at(7, 7, 30))),
            Some(at(7, 8, 0))
        );
        t.scheduled = false;
        assert_eq!(
            next_due(&t, &s, Moment::Changed(at(7, 7, 0))),
            Some(at(7, 7, 30))
        );
        assert_eq!(next_due(&t, &s, Moment::Looked(at(7, 7, 30))), None);
        t.active = false;
        assert_eq!(next_due(&t, &s, Moment::Changed(at(7, 7, 0))), None);
    }

    #[test]
    fn an_inactive_tenant_is_never_due_and_an_unscheduled_one_only_for_retries() {
        let mut t = tenant();
        let s = DueState {
            retry_at: Some(at(7, 3, 0)),
            ..DueState::default()
        };
        t.scheduled = false;
        assert_eq!(
            next_due(&t, &s, Moment::Changed(at(7, 2, 0))),
            Some(at(7, 3, 0))
        );
        assert_eq!(
            next_due(&t, &DueState::default(), Moment::Changed(at(7, 2, 0))),
            None
        );
        t.active = false;
        assert_eq!(next_due(&t, &s, Moment::Changed(at(7, 2, 0))), None);
    }
}
