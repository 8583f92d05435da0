//! `scripts/demo`, the Northwind demo a person opens the /ui/ page on, run end to end
//! against a real `erpsync serve` (SQLite) with the built CLI: the tenant ends with its
//! companies in the CRM, an ABC report, held deletions behind a DELETES_HELD alert, and
//! the page's address printed. Run again it reuses the tenant; with --fresh it starts
//! over; with no server it says to start one. Needs only python3 and its standard
//! library, so it never skips.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use erpsync::grpc::pb::{
    self, integration_history_client::IntegrationHistoryClient, GetAbcReportRequest,
    GetOverviewRequest, ListCompaniesRequest, ListPendingDeletesRequest,
};
use tonic::transport::Channel;

use crate::helpers::authed;
use crate::helpers::cli::serve_with;

/// The longest one run of the script may take (it takes a few seconds).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

/// Northwind's customers, and the European ones the script sends as deleted.
const CUSTOMERS: usize = 91;
const EUROPEAN: usize = 54;

/// `erpsync serve`, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `scripts/demo` against the server on `port` and the database `db`, from `cwd`;
/// its output (stdout, then stderr) when it exits 0, else the test fails with it.
fn run_demo(port: u16, db: &str, cwd: &Path, extra: &[&str]) -> String {
    let (success, output) = try_demo(port, db, cwd, extra);
    assert!(success, "scripts/demo failed:\n{output}");
    output
}

/// Runs `scripts/demo` as [`run_demo`] does; whether it exited 0, and its output.
fn try_demo(port: u16, db: &str, cwd: &Path, extra: &[&str]) -> (bool, String) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/demo");
    let mut command = Command::new("python3");
    for (name, _) in std::env::vars() {
        if name.starts_with("ERPSYNC_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    command
        .arg(&script)
        .args(["--server", &format!("http://127.0.0.1:{port}")])
        .args(["--erpsync", env!("CARGO_BIN_EXE_erpsync")])
        .args(["--database-url", db])
        .args(extra)
        .current_dir(cwd);
    crate::helpers::run_script(command, "scripts/demo", SCRIPT_TIMEOUT)
}

/// The crm token the script printed for pasting, after checking it printed the page's
/// address with it.
fn printed_token(output: &str, port: u16) -> String {
    let token = output
        .lines()
        .find_map(|l| l.trim().strip_prefix("token:"))
        .map(|t| t.trim().to_owned())
        .unwrap_or_else(|| panic!("no token printed:\n{output}"));
    assert!(token.starts_with("esk_"), "{output}");
    let url = format!("http://127.0.0.1:{port}/ui/#tenant=northwind&token={token}");
    assert!(
        output.contains(&url),
        "the page's address, {url}:\n{output}"
    );
    token
}

/// The page's data for the tenant: the overview (scheduled at local midnight when
/// grpcurl is installed, as in CI; a
/// DELETES_HELD alert, its last two runs SUCCESS then PARTIAL), every company in the CRM
/// with a class or none, an ABC report with the three classes, and the European
/// customers' companies and contacts held. When the script `reported` the ERP's counts
/// (it does when grpcurl is installed, as in CI), the last run shows them.
async fn check_the_page_data(
    history: &mut IntegrationHistoryClient<Channel>,
    token: &str,
    output: &str,
) {
    let tenant = || "northwind".to_owned();
    let overview = history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: tenant(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (overview.erp_name.as_str(), overview.deployment_status()),
        ("Northwind ERP", pb::DeploymentStatus::Completed)
    );
    assert!(!overview.business_rule.is_empty());
    if output.contains("scheduled: daily at 00:00") {
        assert!(overview.scheduled, "{overview:?}");
        assert!(
            overview.next_run_local.ends_with("T00:00:00-03:00"),
            "{overview:?}"
        );
    } else {
        assert!(output.contains("not scheduled"), "{output}");
    }
    assert!(
        overview
            .open_alerts
            .iter()
            .any(|a| a.kind() == pb::AlertKind::DeletesHeld),
        "{:?}",
        overview.open_alerts
    );
    let statuses: Vec<pb::RunStatus> = overview
        .recent_runs
        .iter()
        .take(2)
        .map(|r| r.status())
        .collect();
    assert_eq!(
        statuses,
        [pb::RunStatus::Partial, pb::RunStatus::Success],
        "{:?}",
        overview.recent_runs
    );

    let erp_counts: BTreeMap<&str, Option<u64>> = overview
        .tables
        .iter()
        .map(|t| (t.table.as_str(), t.erp_count))
        .collect();
    if output.contains("ERP counts reported") {
        let left = (CUSTOMERS - EUROPEAN) as u64;
        assert_eq!(
            [
                erp_counts["company"],
                erp_counts["contact"],
                erp_counts["order"]
            ],
            [Some(left), Some(left), Some(830)],
            "{:?}",
            overview.tables
        );
    } else {
        assert!(output.contains("ERP counts not reported"), "{output}");
    }

    let companies = history
        .list_companies(authed(
            ListCompaniesRequest {
                tenant_id: tenant(),
                page_size: 1000,
                ..Default::default()
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(companies.companies.len(), CUSTOMERS);
    assert!(companies.next_page_token.is_empty());

    let report = history
        .get_abc_report(authed(
            GetAbcReportRequest {
                tenant_id: tenant(),
            },
            token,
        ))
        .await
        .unwrap()
        .into_inner();
    let classes: BTreeMap<pb::AbcClass, u64> = report
        .classes
        .iter()
        .map(|c| (c.abc_class(), c.companies))
        .collect();
    for class in [pb::AbcClass::A, pb::AbcClass::B, pb::AbcClass::C] {
        assert!(classes.get(&class).is_some_and(|n| *n > 0), "{report:?}");
    }
    assert_eq!(
        classes.values().sum::<u64>() + report.companies_without_class,
        CUSTOMERS as u64,
        "{report:?}"
    );
    assert_eq!(report.basis, "invoice");
    assert!(report.curve.len() > 2, "{report:?}");

    for table in ["company", "contact"] {
        let held = history
            .list_pending_deletes(authed(
                ListPendingDeletesRequest {
                    tenant_id: tenant(),
                    table: table.into(),
                    page_size: 1000,
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap()
            .into_inner()
            .pending_deletes;
        let states: Vec<&str> = held.iter().map(|d| d.state.as_str()).collect();
        assert_eq!(states, ["HELD"; EUROPEAN], "{table}: {held:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_script_fills_a_fresh_server_with_what_the_page_shows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
    let (child, port) = serve_with(&db, &[]);
    let _server = Server(child);
    let mut history = IntegrationHistoryClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let demo = |extra: &'static [&'static str]| {
        let (db, cwd) = (db.clone(), dir.path().to_owned());
        tokio::task::spawn_blocking(move || run_demo(port, &db, &cwd, extra))
    };

    let first = demo(&[]).await.unwrap();
    assert!(first.contains("tenant northwind created"), "{first}");
    assert!(
        first.contains("6096 records accepted and 6 rejected"),
        "every Northwind record, and the bad ones rejected:\n{first}"
    );
    assert!(
        first.contains("holding 54 company deletions, 54 contact deletions"),
        "{first}"
    );
    let token = printed_token(&first, port);
    check_the_page_data(&mut history, &token, &first).await;

    // Again: the tenant is reused, its deletions end SUPERSEDED by the new push and the
    // second run holds them again.
    let again = demo(&[]).await.unwrap();
    assert!(again.contains("already exists: reusing it"), "{again}");
    check_the_page_data(&mut history, &printed_token(&again, port), &again).await;

    // --fresh: the tenant and its tokens are gone, then made again.
    let fresh = demo(&["--fresh"]).await.unwrap();
    assert!(
        fresh.contains("tenant northwind deleted") && fresh.contains("tenant northwind created"),
        "{fresh}"
    );
    let gone = history
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "northwind".into(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::Unauthenticated, "{gone:?}");
    check_the_page_data(&mut history, &printed_token(&fresh, port), &fresh).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_script_says_to_start_the_server_when_none_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("demo.db").display());
    // A port nothing listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cwd = dir.path().to_owned();
    let (success, output) = tokio::task::spawn_blocking(move || try_demo(port, &db, &cwd, &[]))
        .await
        .unwrap();
    assert!(!success, "{output}");
    assert!(
        output.contains(&format!("no erpsync answers at http://127.0.0.1:{port}"))
            && output.contains("cargo run -- serve"),
        "{output}"
    );
    assert!(
        !dir.path().join("demo.db").exists(),
        "nothing made before the server answered"
    );
}
