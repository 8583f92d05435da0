//! UpdateSchedule: next runs in the tenant's zone, and every rejection.

use chrono::{DateTime, Datelike, Duration, TimeZone, Timelike, Utc, Weekday};
use erpsync::domain::token::Role;
use erpsync::grpc::pb::{GetOverviewRequest, Overview, Schedule, UpdateScheduleRequest};
use tonic::Code;

use crate::both_backends;
use crate::helpers::{authed, TestApp};

both_backends!(
    schedule_at_midnight_gives_the_next_sao_paulo_midnight_in_utc,
    cron_schedule_runs_in_the_tenants_own_zone,
    inactive_or_unscheduled_tenant_has_no_next_run,
    every_invalid_schedule_is_rejected_and_changes_nothing,
);

fn at(ts: &prost_types::Timestamp) -> DateTime<Utc> {
    Utc.timestamp_opt(ts.seconds, ts.nanos as u32).unwrap()
}

fn daily(times: &[&str]) -> Option<Schedule> {
    Some(Schedule {
        daily_times: times.iter().map(|t| (*t).to_owned()).collect(),
        cron: String::new(),
    })
}

fn cron(expr: &str) -> Option<Schedule> {
    Some(Schedule {
        daily_times: vec![],
        cron: expr.into(),
    })
}

async fn schedule_at_midnight_gives_the_next_sao_paulo_midnight_in_utc(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let before = Utc::now();
    let o = app
        .history()
        .await
        .update_schedule(authed(
            UpdateScheduleRequest {
                tenant_id: "acme".into(),
                schedule: daily(&["00:00"]),
                timezone: Some("America/Sao_Paulo".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(o.scheduled, "saving a time turns the schedule on");
    let next = at(o.next_run_at.as_ref().expect("a next run"));
    // São Paulo is UTC-3 all year since 2019: local midnight is 03:00 UTC.
    assert_eq!((next.hour(), next.minute(), next.second()), (3, 0, 0));
    assert!(
        next > before && next <= before + Duration::hours(24),
        "{next} is the next one"
    );
    assert!(
        o.next_run_local.ends_with("T00:00:00-03:00"),
        "{}",
        o.next_run_local
    );
}

async fn cron_schedule_runs_in_the_tenants_own_zone(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let o = app
        .history()
        .await
        .update_schedule(authed(
            UpdateScheduleRequest {
                tenant_id: "acme".into(),
                schedule: cron("30 8 * * MON-FRI"),
                timezone: Some("Europe/Berlin".into()),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(o.timezone, "Europe/Berlin");
    assert_eq!(o.schedule.as_ref().unwrap().cron, "30 8 * * MON-FRI");
    let next = at(o.next_run_at.as_ref().unwrap()).with_timezone(&chrono_tz::Europe::Berlin);
    assert_eq!((next.hour(), next.minute()), (8, 30));
    assert!(!matches!(next.weekday(), Weekday::Sat | Weekday::Sun));
    assert!(next.with_timezone(&Utc) > Utc::now());
}

async fn inactive_or_unscheduled_tenant_has_no_next_run(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let mut client = app.history().await;
    let update = |active, scheduled| UpdateScheduleRequest {
        tenant_id: "acme".into(),
        schedule: daily(&["06:00", "18:00"]),
        active,
        scheduled,
        ..Default::default()
    };
    let o = client
        .update_schedule(authed(update(Some(false), None), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(!o.active);
    assert_eq!(o.next_run_at, None);
    assert_eq!(o.health(), erpsync::grpc::pb::Health::Inactive);
    let o = client
        .update_schedule(authed(update(Some(true), Some(false)), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(o.active && !o.scheduled);
    assert_eq!(o.next_run_at, None);
    let o = client
        .update_schedule(authed(update(None, Some(true)), &token))
        .await
        .unwrap()
        .into_inner();
    assert!(o.next_run_at.is_some());
    assert_eq!(o.schedule.unwrap().daily_times, ["06:00", "18:00"]);
}

async fn every_invalid_schedule_is_rejected_and_changes_nothing(app: TestApp) {
    let acme = app.create_tenant("acme").await;
    let token = app.token(Role::Crm, &[&acme]).await;
    let mut client = app.history().await;
    // A known, non-default state to compare against.
    client
        .update_schedule(authed(
            UpdateScheduleRequest {
                tenant_id: "acme".into(),
                schedule: daily(&["01:15"]),
                ..Default::default()
            },
            &token,
        ))
        .await
        .unwrap();
    let get = || {
        authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &token,
        )
    };
    let before: Overview = client.get_overview(get()).await.unwrap().into_inner();

    let dur = |seconds| Some(prost_types::Duration { seconds, nanos: 0 });
    let base = || UpdateScheduleRequest {
        tenant_id: "acme".into(),
        ..Default::default()
    };
    let cases: Vec<(&str, UpdateScheduleRequest, &str, &str)> = vec![
        (
            "hour 25",
            UpdateScheduleRequest {
                schedule: daily(&["25:00"]),
                ..base()
            },
            "schedule.daily_times[0]",
            "\"25:00\"",
        ),
        (
            "minute 60",
            UpdateScheduleRequest {
                schedule: daily(&["12:00", "12:60"]),
                ..base()
            },
            "schedule.daily_times[1]",
            "\"12:60\"",
        ),
        (
            "one digit",
            UpdateScheduleRequest {
                schedule: daily(&["7:00"]),
                ..base()
            },
            "schedule.daily_times[0]",
            "HH:MM",
        ),
        (
            "garbage",
            UpdateScheduleRequest {
                schedule: daily(&["noon"]),
                ..base()
            },
            "schedule.daily_times[0]",
            "\"noon\"",
        ),
        (
            "empty schedule",
            UpdateScheduleRequest {
                schedule: daily(&[]),
                ..base()
            },
            "schedule",
            "daily_times",
        ),
        (
            "both set",
            UpdateScheduleRequest {
                schedule: Some(Schedule {
                    daily_times: vec!["00:00".into()],
                    cron: "0 0 * * *".into(),
                }),
                ..base()
            },
            "schedule",
            "not both",
        ),
        (
            "cron never fires",
            UpdateScheduleRequest {
                schedule: cron("0 0 30 2 *"),
                ..base()
            },
            "schedule.cron",
            "never",
        ),
        (
            "cron field count",
            UpdateScheduleRequest {
                schedule: cron("0 0 * *"),
                ..base()
            },
            "schedule.cron",
            "5 fields",
        ),
        (
            "cron out of range",
            UpdateScheduleRequest {
                schedule: cron("0 24 * * *"),
                ..base()
            },
            "schedule.cron",
            "24",
        ),
        (
            "unknown zone",
            UpdateScheduleRequest {
                timezone: Some("America/Atlantis".into()),
                ..base()
            },
            "timezone",
            "America/Atlantis",
        ),
        (
            "empty zone",
            UpdateScheduleRequest {
                timezone: Some(String::new()),
                ..base()
            },
            "timezone",
            "IANA",
        ),
        (
            "zero window",
            UpdateScheduleRequest {
                max_time_without_success: dur(0),
                ..base()
            },
            "max_time_without_success",
            "positive",
        ),
        (
            "negative window",
            UpdateScheduleRequest {
                max_time_without_success: dur(-3600),
                ..base()
            },
            "max_time_without_success",
            "positive",
        ),
        (
            "window too short",
            UpdateScheduleRequest {
                max_time_without_success: dur(30),
                ..base()
            },
            "max_time_without_success",
            "1 minute",
        ),
        (
            "good schedule with a bad zone",
            UpdateScheduleRequest {
                schedule: daily(&["09:00"]),
                timezone: Some("Nowhere".into()),
                active: Some(false),
                ..base()
            },
            "timezone",
            "Nowhere",
        ),
    ];
    for (case, req, field, needle) in cases {
        let err = client
            .update_schedule(authed(req, &token))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{case}");
        let details = tonic_types::StatusExt::get_details_bad_request(&err)
            .unwrap_or_else(|| panic!("{case}: BadRequest details"));
        assert_eq!(details.field_violations.len(), 1, "{case}: {details:?}");
        assert_eq!(details.field_violations[0].field, field, "{case}");
        assert!(
            details.field_violations[0].description.contains(needle),
            "{case}: {:?} should mention {needle:?}",
            details.field_violations[0].description
        );
        assert!(
            err.message().contains(field),
            "{case}: message {:?} names the field",
            err.message()
        );
        let after = client.get_overview(get()).await.unwrap().into_inner();
        assert_eq!(after, before, "{case}: nothing changed");
    }
}
