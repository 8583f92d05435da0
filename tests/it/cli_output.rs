//! What the `erpsync` binary writes, as a script or a log collector receives it: no ANSI
//! escape in a file or a pipe (with or without `NO_COLOR`), every output ending with a
//! newline, and the overview's reconciliation table.

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use erpsync::grpc::pb::{
    erp_ingest_client::ErpIngestClient, integration_history_client::IntegrationHistoryClient,
    GetOverviewRequest, ReportCountsRequest, RunTable,
};

use crate::helpers::authed;
use crate::helpers::cli::{erpsync, issue_token, ok, serve_with, CLI_SECRET_KEY};

const ESC: char = '\u{1b}';

/// `erpsync serve` with its log (the default, human format) written to a file, with
/// `NO_COLOR=1` or without it: the file's text once the server is ready.
fn serve_log_to_file(no_color: bool) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("log.db").display());
    let log_path = dir.path().join("serve.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_erpsync"));
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("DATABASE_URL", &db)
        .env("ERPSYNC_SECRET_KEY", CLI_SECRET_KEY)
        .env_remove("ERPSYNC_LOG_FORMAT")
        .env_remove("ERPSYNC_LISTEN")
        .stdout(Stdio::null())
        .stderr(log);
    if no_color {
        command.env("NO_COLOR", "1");
    } else {
        command.env_remove("NO_COLOR");
    }
    let mut child = command.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut text = String::new();
    while !text.contains("erpsync ready") {
        assert!(Instant::now() < deadline, "no ready line:\n{text}");
        std::thread::sleep(Duration::from_millis(25));
        text.clear();
        std::fs::File::open(&log_path)
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    text
}

#[test]
fn serve_log_written_to_a_file_has_no_ansi_escapes_with_or_without_no_color() {
    for no_color in [false, true] {
        let log = serve_log_to_file(no_color);
        assert!(log.contains(" INFO "), "the human format: {log}");
        assert!(
            !log.contains(ESC),
            "ANSI escapes in the log file (NO_COLOR set: {no_color}):\n{log:?}"
        );
    }
}

/// `erpsync serve`'s log on a terminal (a pseudo-terminal made by util-linux `script`),
/// with `NO_COLOR=1` or without it, up to its ready line; None without `script`.
fn serve_log_on_a_terminal(no_color: bool) -> Option<String> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("tty.db").display());
    // The shell prints its pid, then becomes the server: the test stops it by that pid.
    let inner = format!(
        "echo pid=$$; exec '{}' serve --listen 127.0.0.1:0",
        env!("CARGO_BIN_EXE_erpsync")
    );
    let mut command = Command::new("script");
    command
        .args(["-qec", &inner, "/dev/null"])
        .env("DATABASE_URL", &db)
        .env_remove("ERPSYNC_LOG_FORMAT")
        .env_remove("ERPSYNC_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if no_color {
        command.env("NO_COLOR", "1");
    } else {
        command.env_remove("NO_COLOR");
    }
    let Ok(mut child) = command.spawn() else {
        eprintln!("no `script` (util-linux): the terminal case is not checked");
        return None;
    };
    let mut text = String::new();
    let mut pid = None;
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        if let Some(p) = line.trim().strip_prefix("pid=") {
            pid = Some(p.to_owned());
        }
        text.push_str(&line);
        text.push('\n');
        if line.contains("erpsync ready") {
            break;
        }
    }
    let pid = pid.expect("the shell printed its pid");
    Command::new("kill").args(["-INT", &pid]).status().unwrap();
    let _ = child.wait();
    Some(text)
}

#[test]
fn serve_log_on_a_terminal_is_coloured_unless_no_color() {
    let Some(coloured) = serve_log_on_a_terminal(false) else {
        return;
    };
    assert!(
        coloured.contains(ESC),
        "a terminal gets colours:\n{coloured}"
    );
    let plain = serve_log_on_a_terminal(true).unwrap();
    assert!(plain.contains("erpsync ready"), "{plain}");
    assert!(!plain.contains(ESC), "NO_COLOR=1 on a terminal:\n{plain:?}");
}

/// The tenant's zone's date today, as `erpsync export` takes it.
fn today_in_sao_paulo() -> String {
    chrono::Utc::now()
        .with_timezone(&chrono_tz::America::Sao_Paulo)
        .format("%Y-%m-%d")
        .to_string()
}

/// `erpsync ARGS` on `db` in a blocking task (a client command needs the server's runtime
/// free).
async fn run(db: &str, args: Vec<String>) -> std::process::Output {
    let db = db.to_owned();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        erpsync(&db, &args)
    })
    .await
    .unwrap()
}

/// Asserts that what `args` wrote on stdout and stderr ends with a newline and holds no
/// ANSI escape.
fn assert_plain_lines(args: &[String], out: &std::process::Output) {
    for (stream, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let text = String::from_utf8_lossy(bytes);
        assert!(
            text.is_empty() || text.ends_with('\n'),
            "`erpsync {}` {stream} ends without a newline: {text:?}",
            args.join(" ")
        );
        assert!(
            !text.contains(ESC),
            "`erpsync {}` {stream} holds ANSI escapes: {text:?}",
            args.join(" ")
        );
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|a| (*a).to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_printing_subcommand_ends_with_a_newline_and_no_escape() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("out.db").display());
    let (mut server, port) = serve_with(&db, &[]);
    let url = format!("http://127.0.0.1:{port}");
    let view_file = dir.path().join("view.json");
    std::fs::write(
        &view_file,
        r#"{"tables": [{"table": "company", "view": "v_clientes", "key": "id",
            "columns": {"name": "razao_social", "document": "cnpj"}}]}"#,
    )
    .unwrap();
    let view_file = view_file.display().to_string();
    let out_dir = dir.path().display().to_string();
    let today = today_in_sao_paulo();

    let provisioning: Vec<Vec<String>> = [
        &["migrate"][..],
        &["tenant", "create", "--id", "acme", "--name", "ACME Ltda"],
        &["tenant", "create", "--id", "viewco", "--name", "View Co"],
        &["tenant", "update", "--id", "acme", "--erp-name", "Protheus"],
        &["tenant", "show", "acme"],
        &["tenant", "list"],
        &[
            "tenant",
            "set-view",
            "--id",
            "viewco",
            "--url",
            "postgres://leitor:secret@erp-db/erp",
            "--config",
            view_file.as_str(),
        ],
        &["tenant", "show-view", "viewco"],
        &["tenant", "show-view", "acme"],
        &[
            "tenant",
            "grant-view-source",
            "--id",
            "acme",
            "--url",
            "postgres://erp-db:5432/erp",
            "--view-allow-host",
            "erp-db:5432",
        ],
        &["tenant", "list-view-sources", "acme"],
        &[
            "tenant",
            "revoke-view-source",
            "--id",
            "acme",
            "--url",
            "postgres://erp-db:5432/erp",
        ],
        &["tenant", "list-view-sources", "acme"],
        &["tenant", "clear-view", "viewco"],
        &["tenant", "export", "--id", "acme"],
        &["token", "list"],
    ]
    .iter()
    .map(|a| strings(a))
    .collect();
    for args in provisioning {
        let out = run(&db, args.clone()).await;
        assert!(
            out.status.success(),
            "`erpsync {}` failed: {out:?}",
            args.join(" ")
        );
        assert_plain_lines(&args, &out);
    }

    let crm = issue_token(&db, &["--role", "crm", "--tenant", "acme"]);
    let erp = issue_token(&db, &["--role", "erp", "--tenant", "acme"]);
    let admin = issue_token(&db, &["--role", "admin"]);
    let issued = ok(erpsync(
        &db,
        &["token", "issue", "--role", "crm", "--tenant", "acme"],
    ));
    assert!(issued.ends_with('\n'), "{issued:?}");
    let spare_id = issued
        .lines()
        .find_map(|l| l.strip_prefix("token_id: "))
        .unwrap()
        .to_owned();

    let body = serde_json::json!({"records": [
        {"external_id": "C1", "fields": {"name": "ACME", "document": "11.222.333/0001-81"}},
        {"external_id": "C2", "fields": {"name": "Sem CNPJ"}}]});
    let (status, _) = crate::helpers::http_post(
        port,
        "/erp/v1/company",
        Some(&erp),
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(status, 200);

    let client = |args: &[&str], token: &str| {
        let mut all = strings(args);
        all.extend(strings(&["--server", &url, "--token", token]));
        all
    };
    let served: Vec<Vec<String>> = vec![
        client(&["overview", "--tenant", "acme"], &crm),
        client(&["sync-now", "--tenant", "acme"], &crm),
        client(&["overview", "--tenant", "acme"], &crm),
        client(&["logs", "--tenant", "acme"], &crm),
        client(&["logs", "--tenant", "acme", "--cursors"], &crm),
        client(
            &[
                "export",
                "--tenant",
                "acme",
                "--from",
                today.as_str(),
                "--to",
                today.as_str(),
                "-o",
                out_dir.as_str(),
            ],
            &crm,
        ),
        client(&["tenant", "show", "acme"], &admin),
        client(&["tenant", "list"], &admin),
        client(&["token", "list"], &admin),
        client(&["token", "revoke", spare_id.as_str()], &admin),
        client(&["tenant", "delete", "--id", "viewco"], &admin),
        strings(&["tenant", "delete", "--id", "ghost"]),
    ];
    for args in served {
        let out = run(&db, args.clone()).await;
        assert!(
            out.status.success(),
            "`erpsync {}` failed: {out:?}",
            args.join(" ")
        );
        assert!(
            !out.stdout.is_empty(),
            "`erpsync {}` printed nothing",
            args.join(" ")
        );
        assert_plain_lines(&args, &out);
    }

    // A failure's message too.
    let args = strings(&["tenant", "show", "ghost"]);
    let out = run(&db, args.clone()).await;
    assert!(!out.status.success());
    assert!(!out.stderr.is_empty());
    assert_plain_lines(&args, &out);

    let _ = server.kill();
    let _ = server.wait();
}

/// The overview's reconciliation rows as the CLI printed them: each table's cells.
fn printed_rows(printed: &str) -> Vec<Vec<String>> {
    printed
        .lines()
        .skip_while(|l| !l.starts_with("reconciliation:"))
        .skip(1)
        .map(|l| l.split_whitespace().map(str::to_owned).collect())
        .collect()
}

/// A RunTable as the CLI prints it ("-": no count).
fn expected_row(t: &RunTable) -> Vec<String> {
    let crm = if t.crm_counted_at.is_some() || t.crm_count > 0 {
        t.crm_count.to_string()
    } else {
        "-".into()
    };
    vec![
        t.table.clone(),
        t.erp_count.map_or("-".into(), |n| n.to_string()),
        t.staged_count.to_string(),
        crm,
        t.received.to_string(),
        t.inserted.to_string(),
        t.updated.to_string(),
        t.deleted.to_string(),
        t.held.to_string(),
        t.rejected.to_string(),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overview_prints_the_reconciliation_table_of_the_last_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}?mode=rwc", dir.path().join("rec.db").display());
    ok(erpsync(
        &db,
        &["tenant", "create", "--id", "acme", "--name", "ACME"],
    ));
    let crm = issue_token(&db, &["--role", "crm", "--tenant", "acme"]);
    let erp = issue_token(&db, &["--role", "erp", "--tenant", "acme"]);
    let (mut server, port) = serve_with(&db, &[]);
    let url = format!("http://127.0.0.1:{port}");
    let overview = || {
        run(
            &db,
            strings(&[
                "overview", "--tenant", "acme", "--server", &url, "--token", &crm,
            ]),
        )
    };

    let before = String::from_utf8(overview().await.stdout).unwrap();
    assert!(
        before.ends_with("reconciliation:    none yet (no finished run)\n"),
        "{before}"
    );

    let companies = serde_json::json!({"records": [
        {"external_id": "C1", "fields": {"name": "ACME", "document": "11.222.333/0001-81"}},
        {"external_id": "C2", "fields": {"name": "Beta", "document": "11.444.777/0001-61"}},
        {"external_id": "C3", "fields": {"name": "Sem CNPJ"}}]});
    let invoices = serde_json::json!({"records": [
        {"external_id": "N1", "fields": {"company_id": "C1", "issued_at": "2026-11-02", "total": "1500,00"}}]});
    for (table, body) in [("company", companies), ("invoice", invoices)] {
        let (status, answer) = crate::helpers::http_post(
            port,
            &format!("/erp/v1/{table}"),
            Some(&erp),
            body.to_string().as_bytes(),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    let mut ingest = ErpIngestClient::connect(url.clone()).await.unwrap();
    ingest
        .report_counts(authed(
            ReportCountsRequest {
                tenant_id: "acme".into(),
                counts: [("company".to_owned(), 3)].into(),
            },
            &erp,
        ))
        .await
        .unwrap();
    ok(run(
        &db,
        strings(&[
            "sync-now", "--tenant", "acme", "--server", &url, "--token", &crm,
        ]),
    )
    .await);

    let printed = String::from_utf8(overview().await.stdout).unwrap();
    let o = IntegrationHistoryClient::connect(url.clone())
        .await
        .unwrap()
        .get_overview(authed(
            GetOverviewRequest {
                tenant_id: "acme".into(),
            },
            &crm,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!o.tables.is_empty());
    let rows = printed_rows(&printed);
    let header = strings(&[
        "table", "erp", "staged", "crm", "received", "inserted", "updated", "deleted", "held",
        "rejected",
    ]);
    assert_eq!(rows[0], header, "{printed}");
    let expected: Vec<Vec<String>> = o.tables.iter().map(expected_row).collect();
    assert_eq!(rows[1..], expected[..], "{printed}");

    // What the run did, read off the table.
    let company = rows.iter().find(|r| r[0] == "company").unwrap();
    assert_eq!(company[1], "3", "the ERP's reported count: {printed}");
    assert_eq!(company[2], "2", "staged: {printed}");
    assert_eq!(company[3], "2", "in the CRM: {printed}");
    let invoice = rows.iter().find(|r| r[0] == "invoice").unwrap();
    assert_eq!(
        (invoice[1].as_str(), invoice[3].as_str()),
        ("-", "-"),
        "{printed}"
    );

    // Aligned: every line of the table as long as the header, numbers right-aligned.
    let table: Vec<&str> = printed
        .lines()
        .skip_while(|l| !l.starts_with("reconciliation:"))
        .skip(1)
        .collect();
    let width = table[0].chars().count();
    assert!(
        table.iter().all(|l| l.chars().count() == width),
        "{printed}"
    );
    assert!(printed.ends_with('\n'));

    let _ = server.kill();
    let _ = server.wait();
}
