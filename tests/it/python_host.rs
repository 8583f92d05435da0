//! The Python host example (`examples/python-host/`) run against a real `erpsync serve`,
//! on SQLite and (with ERPSYNC_TEST_DATABASE_URL) PostgreSQL: stubs generated from
//! `proto/` into a temporary folder, then the example's every step, which must exit 0.
//!
//! The example provisions through Admin (tenant, tokens and the tenant's own sink over
//! gRPC); only its bootstrap admin token is made with the `erpsync` CLI.
//! The only skip: python3 without grpcio, grpcio-tools and googleapis-common-protos
//! (`scripts/test` installs them; `.ci/run` requires them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use crate::helpers::cli::{erpsync, ok, serve_with};
use crate::helpers::{Backend, PgDatabase, PG_ENV};

/// The longest the example may take (its own waits are shorter: a run 180 s, an event 60 s).
const EXAMPLE_TIMEOUT: Duration = Duration::from_secs(600);

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/python-host")
}

/// None when python3 can import what the example needs, else why not.
fn python_missing() -> Option<String> {
    match Command::new("python3")
        .args(["-c", "import grpc, grpc_tools, google.rpc"])
        .output()
    {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(String::from_utf8_lossy(&out.stderr).trim().to_owned()),
        Err(e) => Some(format!("cannot run python3: {e}")),
    }
}

/// True (and says why) when the example cannot run on this machine.
fn skipped() -> bool {
    let Some(why) = python_missing() else {
        return false;
    };
    eprintln!(
        "SKIPPED: the Python host example needs python3 with grpcio, grpcio-tools and \
         googleapis-common-protos (pip install -r examples/python-host/requirements.txt): {why}"
    );
    true
}

/// A database for one run: a temp SQLite file, or a throw-away PostgreSQL database.
struct Database {
    url: String,
    _dir: tempfile::TempDir,
    pg: Option<PgDatabase>,
}

impl Database {
    /// None for PostgreSQL when no test server is configured.
    async fn create(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().expect("temp dir");
        let (url, pg) = match backend {
            Backend::Sqlite => (
                format!("sqlite://{}?mode=rwc", dir.path().join("host.db").display()),
                None,
            ),
            Backend::Postgres => {
                let admin = std::env::var(PG_ENV).ok().filter(|v| !v.is_empty())?;
                let pg = PgDatabase::create(&admin).await;
                (pg.url.clone(), Some(pg))
            }
        };
        Some(Self { url, _dir: dir, pg })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        if let Some(pg) = self.pg.take() {
            pg.drop_blocking();
        }
    }
}

/// `erpsync serve`, stopped when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The secret a token issue printed alone on its last line.
fn issue(db: &str, args: &[&str]) -> String {
    let printed = ok(erpsync(db, &[&["token", "issue"], args].concat()));
    printed.lines().last().unwrap_or_default().to_owned()
}

/// Generates the stubs into a temporary folder, then runs the example with `args` and
/// `envs`; answers whether it exited 0, and its output (stdout, then stderr).
fn run_example(args: &[String], envs: &[(&str, &str)]) -> (bool, String) {
    let stubs = tempfile::tempdir().expect("temp dir");
    let generated = Command::new("python3")
        .arg(example_dir().join("stubs.py"))
        .arg(stubs.path())
        .env(
            "ERPSYNC_PROTO_DIR",
            Path::new(env!("CARGO_MANIFEST_DIR")).join("proto"),
        )
        .output()
        .expect("runs python3");
    assert!(
        generated.status.success(),
        "generating the stubs failed:\n{}{}",
        String::from_utf8_lossy(&generated.stdout),
        String::from_utf8_lossy(&generated.stderr)
    );

    let mut command = Command::new("python3");
    for (name, _) in std::env::vars() {
        if name.starts_with("ERPSYNC_") {
            command.env_remove(name);
        }
    }
    command
        .arg("-u")
        .arg(example_dir().join("host_example.py"))
        .args(args)
        .envs(envs.iter().copied())
        .env("ERPSYNC_STUBS_DIR", stubs.path())
        // Nothing written into the repository's tree.
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(example_dir());
    crate::helpers::run_script(command, "the Python host example", EXAMPLE_TIMEOUT)
}

/// Fails the test, with the example's output, unless it passed every step.
fn passed((success, output): (bool, String)) {
    assert!(
        success && output.contains("\nOK: "),
        "the Python host example failed:\n{output}"
    );
    println!("{output}");
}

/// Provisioning through Admin: only a bootstrap admin token is made with the CLI.
async fn through_admin(backend: Backend) {
    if skipped() {
        return;
    }
    let Some(db) = Database::create(backend).await else {
        eprintln!("{PG_ENV} unset: PostgreSQL variant not run");
        return;
    };
    let admin = issue(&db.url, &["--role", "admin"]);
    let (child, port) = serve_with(&db.url, &[]);
    let _server = Server(child);
    let args = [format!("--address=127.0.0.1:{port}")];
    let run =
        tokio::task::spawn_blocking(move || run_example(&args, &[("ERPSYNC_ADMIN_TOKEN", &admin)]))
            .await
            .expect("the example's run");
    passed(run);
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_host_example_provisions_through_admin() {
        through_admin(Backend::Sqlite).await;
    }
}

mod postgres {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn python_host_example_provisions_through_admin() {
        through_admin(Backend::Postgres).await;
    }
}
