//! `erpsync serve`'s settings from the environment: a bad value stops the binary before
//! anything starts, naming the flag and the variable; secrets in the environment stay out
//! of `--help`. (The rules themselves are unit-tested in `config.rs` and `cli`.)

use std::process::Command;

/// `erpsync ARGS…` with only `env` set of erpsync's variables.
fn erpsync_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_erpsync"));
    for (name, _) in std::env::vars() {
        if name.starts_with("ERPSYNC_") || name == "DATABASE_URL" {
            command.env_remove(name);
        }
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("runs the erpsync binary");
    // Every call here should end at once; one that starts a server instead must not hang
    // the suite.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().expect("waits for erpsync").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("erpsync {args:?} was still running after 30 s instead of stopping");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.wait_with_output().expect("reads erpsync's output")
}

#[test]
fn a_bad_value_in_the_environment_stops_serve_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("never.db");
    let db = format!("sqlite://{}?mode=rwc", file.display());
    for (name, value, said) in [
        (
            "ERPSYNC_SINK_BATCH",
            "0",
            "--sink-batch (ERPSYNC_SINK_BATCH): must be positive, got 0",
        ),
        (
            "ERPSYNC_REQUEST_LOG_RETENTION_DAYS",
            "3",
            "--request-log-retention-days (ERPSYNC_REQUEST_LOG_RETENTION_DAYS): must be at least 7",
        ),
        (
            "ERPSYNC_SINK_BACKOFF_MS",
            "20000",
            "--sink-max-backoff-secs (ERPSYNC_SINK_MAX_BACKOFF_SECS): must be at least --sink-backoff-ms",
        ),
    ] {
        let out = erpsync_with_env(
            &["serve", "--listen", "127.0.0.1:0"],
            &[("DATABASE_URL", &db), (name, value)],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}={value} was accepted");
        assert!(stderr.contains(said), "{name}={value}: {stderr}");
        assert!(!file.exists(), "{name}={value}: the database was opened");
    }
}

#[test]
fn secrets_in_the_environment_are_not_echoed_by_help() {
    let key = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    let out = erpsync_with_env(
        &["serve", "--help"],
        &[
            ("DATABASE_URL", "postgres://erp:hunter2@db/erpsync"),
            ("ERPSYNC_SECRET_KEY", key),
            ("ERPSYNC_SINK_ATTEMPTS", "7"),
        ],
    );
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("ERPSYNC_SECRET_KEY"), "{help}");
    assert!(help.contains("DATABASE_URL"), "{help}");
    assert!(!help.contains("hunter2"), "{help}");
    assert!(!help.contains(key), "{help}");
    // Other settings show the value they were given.
    assert!(help.contains("ERPSYNC_SINK_ATTEMPTS=7"), "{help}");
}

/// `erpsync serve` on every address with `ERPSYNC_INSECURE=value` and a sink that cannot
/// work: the error says which check stopped it (the plaintext refusal when the value reads
/// as off, the sink's when it reads as on), so no server is left running.
fn insecure_reads_as(value: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("never.db").display()
    );
    let out = erpsync_with_env(
        &["serve", "--listen", "0.0.0.0:0"],
        &[
            ("DATABASE_URL", &db),
            ("ERPSYNC_INSECURE", value),
            ("ERPSYNC_SINK_BATCH", "0"),
        ],
    );
    assert!(!out.status.success(), "ERPSYNC_INSECURE={value} started");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn boolean_settings_accept_1_0_true_false_yes_no_in_any_case() {
    for on in ["1", "true", "TRUE", "yes", "Yes"] {
        let said = insecure_reads_as(on);
        assert!(
            said.contains("--sink-batch (ERPSYNC_SINK_BATCH): must be positive"),
            "ERPSYNC_INSECURE={on}: {said}"
        );
    }
    for off in ["0", "false", "False", "no", "NO"] {
        let said = insecure_reads_as(off);
        assert!(
            said.contains("refusing to serve plaintext"),
            "ERPSYNC_INSECURE={off}: {said}"
        );
    }
    let said = insecure_reads_as("maybe");
    assert!(
        said.contains("--insecure")
            && said.contains("expected 1, true or yes (on) or 0, false or no (off), got \"maybe\""),
        "{said}"
    );
}
