//! Replicas under faults: three `erpsync serve` processes on one PostgreSQL database, as a
//! host runs them behind its load balancer. Twenty tenants run every minute and deliver
//! to one host CRM sink, slow enough that runs are in flight when a replica dies; every
//! replica has log followers. A replica holding runs is killed with SIGKILL (and the
//! survivors' LISTEN connections are cut), another is stopped with SIGTERM. The whole history is then checked against the database and the
//! host: no two runs of a tenant overlapped, every minute's slot ran exactly once, the
//! killed replica's runs were taken over, the host got every record and never the same
//! record version under two idempotency keys, and every follower saw its tenant's events
//! in cursor order with no gap or repeat (a follower whose replica died resumes on
//! another from its last cursor, as a host's client does).
//!
//! PostgreSQL only (replicas share a server database); it waits for real schedule slots
//! (cron has minutes), so it lasts about four minutes.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use erpsync::grpc::pb::{
    self, admin_client::AdminClient, integration_history_client::IntegrationHistoryClient,
};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio_stream::StreamExt;

use crate::helpers::cli::{issue_token, ok, wait_ready, CLI_SECRET_KEY};
use crate::helpers::seed::valid_fields;
use crate::helpers::sinks::start_host;
use crate::helpers::{authed, http_post, Backend, ScratchDb};

const TENANTS: usize = 20;
const RECORDS: usize = 12;
/// How long a run's lease lives unrenewed here: the killed replica's runs are taken over
/// this long after its last renewal.
const LEASE_SECS: &str = "6";

/// One `erpsync serve` process.
struct Replica {
    child: Child,
    port: u16,
    /// The name its run leases carry.
    instance: String,
}

impl Replica {
    fn start(db_url: &str, sink: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_erpsync"))
            .args(["serve", "--log-format", "json", "--listen", "127.0.0.1:0"])
            .args(["--crm-sink", sink, "--sink-batch", "4"])
            .args(["--run-lease-secs", LEASE_SECS])
            .env("DATABASE_URL", db_url)
            .env("ERPSYNC_SECRET_KEY", CLI_SECRET_KEY)
            .env_remove("ERPSYNC_LISTEN")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("runs erpsync serve");
        let (port, instance) = wait_ready(&mut child);
        Self {
            child,
            port,
            instance,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A run as the database holds it.
#[derive(Debug, Clone)]
struct RunRow {
    tenant: String,
    id: String,
    status: String,
    trigger: String,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

/// A `sync_run` row as read: tenant, id, status, trigger, started, finished.
type RunTuple = (
    String,
    String,
    String,
    String,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

async fn runs(db: &mut PgConnection) -> Vec<RunRow> {
    let rows: Vec<RunTuple> = sqlx::query_as(
        "SELECT tenant_id, id, status, \"trigger\", started_at, finished_at FROM sync_run \
             ORDER BY tenant_id, started_at",
    )
    .fetch_all(db)
    .await
    .unwrap();
    rows.into_iter()
        .map(
            |(tenant, id, status, trigger, started_at, finished_at)| RunRow {
                tenant,
                id,
                status,
                trigger,
                started_at,
                finished_at,
            },
        )
        .collect()
}

/// The runs in progress with the replica holding each: (tenant, run id, holder).
async fn leases(db: &mut PgConnection) -> Vec<(String, String, String)> {
    sqlx::query_as(
        "SELECT l.tenant_id, l.run_id, l.holder FROM sync_lease l \
         JOIN sync_run r ON r.id = l.run_id WHERE r.status = 'RUNNING'",
    )
    .fetch_all(db)
    .await
    .unwrap()
}

/// A tenant's event cursors, oldest first.
async fn cursors(db: &mut PgConnection, tenant: &str) -> Vec<i64> {
    sqlx::query_scalar("SELECT \"cursor\" FROM sync_event WHERE tenant_id = $1 ORDER BY \"cursor\"")
        .bind(tenant)
        .fetch_all(db)
        .await
        .unwrap()
}

/// Evaluates `$check` (an `Option`, awaited inside) every 50 ms until it is Some, for at
/// most `$within`; the value inside.
macro_rules! wait_until {
    ($what:expr, $within:expr, $check:expr) => {{
        let within: Duration = $within;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(v) = $check {
                break v;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "waited {within:?} for {}",
                $what
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }};
}

/// A log follower of one tenant, on one replica until it is gone, then on the next one,
/// resuming after the last cursor it got; every cursor it received, in order.
fn follow(tenant: String, token: String, replicas: Vec<String>) -> Arc<Mutex<Vec<u64>>> {
    let got = Arc::new(Mutex::new(Vec::new()));
    let seen = got.clone();
    tokio::spawn(async move {
        let mut after: Option<u64> = None;
        for url in replicas.iter().cycle() {
            let Ok(mut client) = IntegrationHistoryClient::connect(url.clone()).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let request = pb::StreamLogsRequest {
                tenant_id: tenant.clone(),
                after_cursor: Some(after.unwrap_or(0)),
                follow: true,
                ..Default::default()
            };
            let Ok(stream) = client.stream_logs(authed(request, &token)).await else {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let mut stream = stream.into_inner();
            while let Some(Ok(event)) = stream.next().await {
                if event.heartbeat {
                    continue;
                }
                after = Some(event.cursor);
                seen.lock().unwrap().push(event.cursor);
            }
        }
    });
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_replicas_run_every_slot_once_through_a_kill_and_a_drain() {
    let Some(scratch) = ScratchDb::create(Backend::Postgres).await else {
        eprintln!("skipped: set ERPSYNC_TEST_DATABASE_URL to run the replicas' fault harness");
        return;
    };
    let db_url = scratch.url.clone();
    let admin_token = issue_token(&db_url, &["--role", "admin"]);
    let (host, host_port) = start_host().await;
    // Slow enough that a run is in flight for a few seconds: 12 records in batches of 4.
    host.delay_ms
        .store(700, std::sync::atomic::Ordering::SeqCst);
    let sink = format!("grpc://127.0.0.1:{host_port}");
    let mut replicas: Vec<Replica> = (0..3).map(|_| Replica::start(&db_url, &sink)).collect();
    let urls: Vec<String> = replicas.iter().map(Replica::url).collect();

    // Provisioned as a host does it, through the Admin service of any replica.
    let mut admin = AdminClient::connect(urls[0].clone()).await.unwrap();
    let tenants: Vec<String> = (0..TENANTS).map(|i| format!("t{i:02}")).collect();
    for t in &tenants {
        admin
            .create_tenant(authed(
                pb::CreateTenantRequest {
                    tenant_id: t.clone(),
                    name: format!("Tenant {t}"),
                    timezone: "UTC".into(),
                    ..Default::default()
                },
                &admin_token,
            ))
            .await
            .unwrap();
    }
    let issue = |role: pb::TokenRole, tenant_ids: Vec<String>, all_tenants: bool| {
        let mut admin = admin.clone();
        let admin_token = admin_token.clone();
        async move {
            admin
                .issue_token(authed(
                    pb::IssueTokenRequest {
                        role: role as i32,
                        tenant_ids,
                        all_tenants,
                        ..Default::default()
                    },
                    &admin_token,
                ))
                .await
                .unwrap()
                .into_inner()
                .secret
        }
    };
    let crm = issue(pb::TokenRole::Crm, vec![], true).await;
    let mut erps = Vec::new();
    for (i, t) in tenants.iter().enumerate() {
        let erp = issue(pb::TokenRole::Erp, vec![t.clone()], false).await;
        erps.push(erp.clone());
        let records: Vec<serde_json::Value> = (0..RECORDS)
            .map(|r| json!({"external_id": format!("{t}-c{r:02}"), "fields": valid_fields("company")}))
            .collect();
        let body = json!({ "records": records }).to_string();
        let port = replicas[i % replicas.len()].port;
        let (status, answer) =
            http_post(port, "/erp/v1/company", Some(&erp), body.as_bytes()).await;
        assert_eq!(status, 200, "{answer}");
    }

    // Followers of three tenants on every replica, from the start of their logs.
    let followed = &tenants[..3];
    let mut followers = Vec::new();
    for (r, _) in urls.iter().enumerate() {
        for t in followed {
            // Its own replica first, then the others in turn.
            let order: Vec<String> = (0..urls.len())
                .map(|k| urls[(r + k) % urls.len()].clone())
                .collect();
            followers.push((t.clone(), follow(t.clone(), crm.clone(), order)));
        }
    }

    // Every tenant every minute, on whichever replica is free.
    let mut history = IntegrationHistoryClient::connect(urls[1].clone())
        .await
        .unwrap();
    for t in &tenants {
        history
            .update_schedule(authed(
                pb::UpdateScheduleRequest {
                    tenant_id: t.clone(),
                    schedule: Some(pb::Schedule {
                        cron: "* * * * *".into(),
                        ..Default::default()
                    }),
                    scheduled: Some(true),
                    ..Default::default()
                },
                &crm,
            ))
            .await
            .unwrap();
    }
    let scheduled_at = Utc::now();

    let mut pg = PgConnection::connect(&db_url).await.unwrap();
    // The first slot's runs are in flight: kill the replica holding the most of them,
    // once the host is answering calls (mid-run).
    let (victim, held) = wait_until!("runs in flight on a replica", Duration::from_secs(100), {
        let leases = leases(&mut pg).await;
        let calls = host.sent.lock().unwrap().len();
        replicas
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let runs: Vec<String> = leases
                    .iter()
                    .filter(|(_, _, holder)| *holder == r.instance)
                    .map(|(_, run, _)| run.clone())
                    .collect();
                (i, runs)
            })
            .max_by_key(|(_, runs)| runs.len())
            .filter(|(_, runs)| !runs.is_empty() && calls > 0)
    });
    replicas[victim].child.kill().unwrap(); // SIGKILL
    replicas[victim].child.wait().unwrap();
    // The survivors lose their LISTEN connections too: their followers go on by polling,
    // then by notification again once they listen anew, missing nothing.
    let cut: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE application_name LIKE 'erpsync-listen %' AND datname = current_database()",
    )
    .fetch_all(&mut pg)
    .await
    .unwrap();
    assert!(
        !cut.is_empty(),
        "the survivors listen for each other's events"
    );

    // Its runs are taken over by the survivors: INTERRUPTED, then retried to success.
    wait_until!(
        "the killed replica's runs taken over",
        Duration::from_secs(60),
        {
            let all = runs(&mut pg).await;
            held.iter()
                .all(|id| {
                    let Some(dead) = all.iter().find(|r| &r.id == id) else {
                        return false;
                    };
                    dead.status == "INTERRUPTED"
                        && all.iter().any(|r| {
                            r.tenant == dead.tenant
                                && r.started_at > dead.started_at
                                && r.status == "SUCCESS"
                        })
                })
                .then_some(())
        }
    );

    // Two more minutes' slots pass on the two survivors.
    let minute = chrono::Duration::minutes(1);
    let first_slot = scheduled_at.duration_trunc(minute).unwrap() + minute;
    let last_slot = first_slot + minute * 2;
    wait_until!("two more slots run everywhere", Duration::from_secs(200), {
        let all = runs(&mut pg).await;
        tenants
            .iter()
            .all(|t| {
                all.iter().any(|r| {
                    &r.tenant == t
                        && r.trigger == "SCHEDULE"
                        && r.started_at >= last_slot
                        && r.status == "SUCCESS"
                })
            })
            .then_some(())
    });

    // A survivor gets SIGTERM while it runs five tenants' runs: it drains (lets them
    // finish), then exits 0.
    let drained = (victim + 1) % replicas.len();
    let mut on_drained = IntegrationHistoryClient::connect(replicas[drained].url())
        .await
        .unwrap();
    let calls_before = host.sent.lock().unwrap().len();
    let mut manual = Vec::new();
    for (t, erp) in tenants.iter().zip(&erps).skip(5).take(5) {
        let records: Vec<serde_json::Value> = (0..RECORDS)
            .map(|r| {
                let mut fields = valid_fields("company");
                fields["city"] = json!("Londrina");
                json!({"external_id": format!("{t}-c{r:02}"), "fields": fields})
            })
            .collect();
        let body = json!({ "records": records }).to_string();
        let (status, answer) = http_post(
            replicas[drained].port,
            "/erp/v1/company",
            Some(erp),
            body.as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        let started = on_drained
            .trigger_sync(authed(
                pb::TriggerSyncRequest {
                    tenant_id: t.clone(),
                },
                &crm,
            ))
            .await
            .unwrap()
            .into_inner();
        manual.push(started.run.unwrap().run_id);
    }
    wait_until!(
        "the host to answer a call of the drained replica",
        Duration::from_secs(30),
        { (host.sent.lock().unwrap().len() > calls_before).then_some(()) }
    );
    let pid = replicas[drained].child.id().to_string();
    ok(Command::new("kill").args(["-TERM", &pid]).output().unwrap());
    let status = wait_until!("the drained replica to exit", Duration::from_secs(60), {
        replicas[drained].child.try_wait().unwrap()
    });
    assert!(status.success(), "a drained replica exits 0: {status:?}");

    let all = runs(&mut pg).await;
    for id in &manual {
        let run = all.iter().find(|r| &r.id == id).unwrap();
        assert_eq!(
            run.status, "SUCCESS",
            "a drained replica finishes its runs: {run:?}"
        );
    }
    assert!(
        all.iter().all(|r| r.status != "RUNNING"),
        "nothing is left running: {all:#?}"
    );

    // No two runs of a tenant overlapped.
    for t in &tenants {
        let mine: Vec<&RunRow> = all.iter().filter(|r| &r.tenant == t).collect();
        for pair in mine.windows(2) {
            let ended = pair[0].finished_at.expect("every run ended");
            assert!(
                ended <= pair[1].started_at,
                "{t}: runs overlap: {:?} and {:?}",
                pair[0],
                pair[1]
            );
        }
    }

    // Every slot from the first to the last ran exactly once per tenant.
    for t in &tenants {
        let mut slots: BTreeMap<DateTime<Utc>, Vec<&RunRow>> = BTreeMap::new();
        for r in all
            .iter()
            .filter(|r| &r.tenant == t && r.trigger == "SCHEDULE")
        {
            slots
                .entry(r.started_at.duration_trunc(minute).unwrap())
                .or_default()
                .push(r);
        }
        let mut slot = first_slot;
        while slot <= last_slot {
            let got = slots.get(&slot).map_or(0, Vec::len);
            assert_eq!(got, 1, "{t}: slot {slot} ran {got} times: {slots:#?}");
            slot += minute;
        }
        assert!(
            slots.values().all(|runs| runs.len() == 1),
            "{t}: a slot ran twice: {slots:#?}"
        );
    }

    // The host got every record, never one record version under two keys, and a key
    // always with the same content (a resend is the same call, which the host's
    // idempotency absorbs).
    let sent = host.sent.lock().unwrap().clone();
    let upserted: BTreeSet<&str> = sent
        .iter()
        .filter(|s| s.method == "UpsertCompanies")
        .flat_map(|s| s.records.iter().map(|(id, _)| id.as_str()))
        .collect();
    assert_eq!(
        upserted.len(),
        TENANTS * RECORDS,
        "every record reached the host"
    );
    let mut keys_per_version: BTreeMap<(&str, &str, &str), BTreeSet<&str>> = BTreeMap::new();
    let mut content_per_key: BTreeMap<&str, &Vec<(String, pb::RecordVersion)>> = BTreeMap::new();
    for call in &sent {
        for (id, version) in &call.records {
            keys_per_version
                .entry((&call.method, id, &version.content_hash))
                .or_default()
                .insert(&call.key);
        }
        let first = content_per_key.entry(&call.key).or_insert(&call.records);
        assert_eq!(
            *first, &call.records,
            "key {} came with two contents",
            call.key
        );
    }
    for (version, keys) in keys_per_version {
        assert_eq!(
            keys.len(),
            1,
            "{version:?} was sent under several keys: {keys:?}"
        );
    }

    // Every follower saw its tenant's log in cursor order, with no gap or repeat.
    for t in followed {
        let truth: Vec<u64> = cursors(&mut pg, t)
            .await
            .into_iter()
            .map(|c| u64::try_from(c).unwrap())
            .collect();
        for (_, got) in followers.iter().filter(|(ft, _)| ft == t) {
            let got = wait_until!("a follower to catch up", Duration::from_secs(30), {
                let got = got.lock().unwrap().clone();
                (got.len() >= truth.len()).then_some(got)
            });
            assert_eq!(got, truth, "a follower of {t}");
        }
    }
    drop(replicas);
}
