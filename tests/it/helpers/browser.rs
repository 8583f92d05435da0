//! A real headless Chromium for the page's tests (and the UI bench, which includes this
//! file): Debian's `chromium` driven through its `chromedriver` over WebDriver
//! (fantoccini), one browser per test with a profile and a download folder of its own,
//! everything of it killed when it is dropped.
//!
//! Without chromium or chromedriver the tests say why and skip, unless
//! ERPSYNC_TEST_BROWSER=required (CI), where a missing browser fails them.
//! The browser reaches nothing but this machine: host names other than localhost do not
//! resolve, and background networking (updates, safe browsing, …) is off.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

/// Set to `required` (CI) to fail, instead of skip, when the browser is missing.
pub const BROWSER_ENV: &str = "ERPSYNC_TEST_BROWSER";

/// The browser and its driver: Debian's packages `chromium` and `chromium-driver`.
const CHROMIUM: &str = "chromium";
const CHROMEDRIVER: &str = "chromedriver";

/// The longest a test waits for the page to reach a state (a cold start of a debug
/// server and a browser on a busy 2-core machine included). Not a timing assertion:
/// only a bound on a wait that otherwise ends as soon as the state is reached.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// How often a wait looks again.
const POLL: Duration = Duration::from_millis(50);

/// The window every screenshot is taken at (the height grows to the page's for a shot).
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 900;

/// Where screenshots go: `<target>/ui-screenshots/`, beside the build (not committed).
pub fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap_or(Path::new(env!("CARGO_TARGET_TMPDIR")))
        .join("ui-screenshots")
}

/// The path of `program` on PATH, if it is there.
fn which(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

/// None when chromium and chromedriver are both here, else what is missing.
pub fn missing() -> Option<String> {
    let absent: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .filter(|p| which(p).is_none())
        .collect();
    (!absent.is_empty()).then(|| {
        format!(
            "{} not on PATH (Debian: apt-get install chromium chromium-driver)",
            absent.join(" and ")
        )
    })
}

/// Whether a missing browser fails the test (ERPSYNC_TEST_BROWSER=required).
fn required() -> bool {
    std::env::var(BROWSER_ENV).is_ok_and(|v| v == "required")
}

/// True, after saying why, when the test `name` cannot have a browser here and skips;
/// fails it instead when the browser is required (ERPSYNC_TEST_BROWSER=required).
pub fn unavailable(name: &str) -> bool {
    let Some(why) = missing() else {
        return false;
    };
    assert!(
        !required(),
        "{BROWSER_ENV}=required but the browser is missing: {why}"
    );
    eprintln!("SKIPPED {name}: {why} (set {BROWSER_ENV}=required to fail instead)");
    true
}

/// A chromedriver process (and the chromium it starts, in its process group).
struct Driver {
    child: Child,
    port: u16,
}

impl Driver {
    /// Starts chromedriver on a free port it picks and reads which one.
    fn start() -> Result<Self, String> {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--log-level=WARNING"])
            // A zone no tenant here uses: a page that wrote times in the browser's own
            // zone instead of the tenant's would show them wrong.
            .env("TZ", "Asia/Tokyo")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            // Its own process group: chromium and its helpers join it, and one kill
            // ends them all even when the test panics before closing the session.
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot run {CHROMEDRIVER}: {e}"))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            // Read to the end so chromedriver never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').trim().parse::<u16>().ok())
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(port);
                    }
                }
            }
        });
        let mut driver = Self { child, port: 0 };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(port) => {
                driver.port = port;
                Ok(driver)
            }
            Err(_) => Err(format!(
                "{CHROMEDRIVER} did not say which port it listens on"
            )),
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium for one test.
pub struct Browser {
    client: Client,
    name: String,
    // Dropped in this order: the session, the driver (and the browser), the folders.
    driver: Driver,
    downloads: tempfile::TempDir,
    _profile: tempfile::TempDir,
    /// Every console message so far, each with whether a test looked for it (expected).
    log: std::sync::Mutex<Vec<(String, bool)>>,
}

impl Browser {
    /// A new browser for the test `name` (screenshots are named after it); None (after
    /// saying why) when chromium or chromedriver is missing and the browser is not required.
    pub async fn start(name: &str) -> Option<Self> {
        if unavailable(name) {
            return None;
        }
        // This test's screenshots of an earlier run (a failure's among them) are stale.
        if let Ok(dir) = std::fs::read_dir(screenshot_dir()) {
            let prefix = format!("{name}-");
            for entry in dir.filter_map(Result::ok) {
                let file = entry.file_name().to_string_lossy().into_owned();
                let rest = file.strip_prefix(&prefix).unwrap_or_default();
                // `<name>-<label>.png` only, not another test's `<name>-<more>-<label>.png`.
                if rest.ends_with(".png") && !rest.contains('-') {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let driver = Driver::start().unwrap_or_else(|e| panic!("{e}"));
        let profile = tempfile::tempdir().expect("temp dir");
        let downloads = tempfile::tempdir().expect("temp dir");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "args": [
                    "--headless=new",
                    // Tests run as root, where Chromium's sandbox cannot start.
                    "--no-sandbox",
                    "--disable-dev-shm-usage",
                    "--disable-gpu",
                    format!("--window-size={WIDTH},{HEIGHT}"),
                    format!("--user-data-dir={}", profile.path().display()),
                    "--lang=pt-BR",
                    "--no-first-run",
                    "--no-default-browser-check",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--disable-default-apps",
                    "--disable-extensions",
                    "--disable-breakpad",
                    "--disable-client-side-phishing-detection",
                    "--disable-domain-reliability",
                    "--metrics-recording-only",
                    "--no-pings",
                    "--disable-features=Translate,OptimizationHints,MediaRouter,InterestFeedContentSuggestions",
                    // Nothing but this machine: a page that needed the internet would fail here.
                    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                ],
                "prefs": {
                    "download.default_directory": downloads.path().display().to_string(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            }),
        );
        // The console, to find Content-Security-Policy violations.
        caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let client = ClientBuilder::new(connector)
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{}", driver.port))
            .await
            .unwrap_or_else(|e| panic!("chromedriver starts no session: {e}"));
        Some(Self {
            client,
            name: name.to_owned(),
            downloads,
            driver,
            _profile: profile,
            log: std::sync::Mutex::default(),
        })
    }

    /// The WebDriver client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` (returns when the document has loaded; the page's calls may go on).
    pub async fn goto(&self, url: &str) {
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("{}: opening {url}: {e}", self.name));
    }

    /// Runs `script` (a function body: `return …`) with `args` and answers its value.
    pub async fn js(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("{}: script failed: {e}\n{script}", self.name))
    }

    /// Waits until `script` (a function body) returns something other than null, false,
    /// 0 or "", and answers that; fails the test, with a screenshot, after [`PATIENCE`].
    pub async fn until(&self, what: &str, script: &str) -> Value {
        let start = Instant::now();
        loop {
            let v = self.js(script, vec![]).await;
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if start.elapsed() > PATIENCE {
                let shot = self.screenshot("failure").await;
                panic!(
                    "{}: waited {PATIENCE:?} for {what}; the page is in {}, its console said {:#?}",
                    self.name,
                    shot.display(),
                    self.console().await
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Waits until an element matches `css` and answers its text.
    pub async fn text(&self, css: &str) -> String {
        self.until(
            &format!("{css} to exist"),
            &format!(
                "const e = document.querySelector({}); return e ? [e.textContent] : null;",
                json!(css)
            ),
        )
        .await[0]
            .as_str()
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// The text of every element matching `css`, in document order (none: empty).
    pub async fn texts(&self, css: &str) -> Vec<String> {
        let v = self
            .js(
                &format!(
                    "return [...document.querySelectorAll({})].map(e => e.textContent.trim());",
                    json!(css)
                ),
                vec![],
            )
            .await;
        serde_json::from_value(v).unwrap_or_default()
    }

    /// Whether an element matching `css` exists and is shown (not hidden, laid out).
    pub async fn visible(&self, css: &str) -> bool {
        self.js(
            &format!(
                "const e = document.querySelector({}); \
                 return !!e && !e.closest('[hidden]') && e.getClientRects().length > 0;",
                json!(css)
            ),
            vec![],
        )
        .await
            == Value::Bool(true)
    }

    /// Waits until an element matching `css` is shown, then clicks it as a user does.
    pub async fn click(&self, css: &str) {
        self.until(
            &format!("{css} to be shown"),
            &format!(
                "const e = document.querySelector({}); \
                 return !!e && !e.closest('[hidden]') && !e.disabled && e.getClientRects().length > 0;",
                json!(css)
            ),
        )
        .await;
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: {css}: {e}", self.name));
        el.click()
            .await
            .unwrap_or_else(|e| panic!("{}: clicking {css}: {e}", self.name));
    }

    /// Replaces the value of the input `css` by typing `text` into it.
    pub async fn fill(&self, css: &str, text: &str) {
        self.until(
            &format!("{css} to be shown"),
            &format!(
                "const e = document.querySelector({}); return !!e && !e.closest('[hidden]');",
                json!(css)
            ),
        )
        .await;
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{}: {css}: {e}", self.name));
        el.clear()
            .await
            .unwrap_or_else(|e| panic!("{}: clearing {css}: {e}", self.name));
        el.send_keys(text)
            .await
            .unwrap_or_else(|e| panic!("{}: typing into {css}: {e}", self.name));
    }

    /// Shows the tab `tab` (`geral`, `historico`, `abc`) as a user does and waits for
    /// its panel.
    pub async fn open_tab(&self, tab: &str) {
        self.click(&format!("#tab-{tab}")).await;
        self.until(
            &format!("the panel of {tab}"),
            &format!(
                "return document.getElementById('tab-{tab}').getAttribute('aria-selected') === 'true' \
                 && !document.getElementById('panel-{tab}').hidden;"
            ),
        )
        .await;
    }

    /// Saves a screenshot of the whole page as `<screenshot_dir>/<test>-<label>.png`.
    pub async fn screenshot(&self, label: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot folder");
        let path = dir.join(format!("{}-{label}.png", self.name));
        // The whole page from its top: the window as tall as the document for the shot.
        let _ = self.client.execute("window.scrollTo(0, 0);", vec![]).await;
        let height = self
            .client
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .map_or(HEIGHT, |h| {
                u32::try_from(h).unwrap_or(HEIGHT).clamp(HEIGHT, 8000)
            });
        // The window's frame takes some of its height: a margin, then the top again.
        let _ = self.client.set_window_size(WIDTH, height + 200).await;
        let _ = self.client.execute("window.scrollTo(0, 0);", vec![]).await;
        let png = self.client.screenshot().await;
        let _ = self.client.set_window_size(WIDTH, HEIGHT).await;
        match png {
            Ok(png) => std::fs::write(&path, png).expect("writes the screenshot"),
            Err(e) => eprintln!("{}: no screenshot {label}: {e}", self.name),
        }
        path
    }

    /// Waits for the download named `name` to be complete in this browser's download
    /// folder and answers its bytes.
    pub async fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.path().join(name);
        let start = Instant::now();
        loop {
            // Chromium writes `<name>.crdownload` and renames it when complete.
            if path.is_file() {
                return std::fs::read(&path).expect("reads the download");
            }
            if start.elapsed() > PATIENCE {
                let found: Vec<String> = std::fs::read_dir(self.downloads.path())
                    .map(|d| {
                        d.filter_map(Result::ok)
                            .map(|e| e.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                let shot = self.screenshot("failure").await;
                panic!(
                    "{}: no download {name} after {PATIENCE:?} (the folder has {found:?}); the page is in {}",
                    self.name,
                    shot.display()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Every message of the browser console so far, as `LEVEL message`.
    pub async fn console(&self) -> Vec<String> {
        self.read_console().await;
        self.log
            .lock()
            .unwrap()
            .iter()
            .map(|(m, _)| m.clone())
            .collect()
    }

    /// Adds the console's new messages (chromedriver hands each out once) to the log.
    async fn read_console(&self) {
        let Ok(Some(session)) = self.client.session_id().await else {
            return;
        };
        let log = driver_post(
            self.driver.port,
            &format!("/session/{session}/se/log"),
            &json!({"type": "browser"}),
        )
        .await;
        let new = log["value"].as_array().cloned().unwrap_or_default();
        self.log.lock().unwrap().extend(new.iter().map(|e| {
            let m = format!(
                "{} {}",
                e["level"].as_str().unwrap_or_default(),
                e["message"].as_str().unwrap_or_default()
            );
            (m, false)
        }));
    }

    /// Waits until the console has a message containing `needle` and answers it; that
    /// message is expected ([`Browser::assert_console_clean`] passes over it).
    pub async fn console_line(&self, what: &str, needle: &str) -> String {
        let start = Instant::now();
        loop {
            self.read_console().await;
            if let Some((m, expected)) = self
                .log
                .lock()
                .unwrap()
                .iter_mut()
                .find(|(m, _)| m.contains(needle))
            {
                *expected = true;
                return m.clone();
            }
            if start.elapsed() > PATIENCE {
                panic!(
                    "{}: waited {PATIENCE:?} for {what} in the console: {:#?}",
                    self.name,
                    self.log.lock().unwrap()
                );
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Fails the test if the console reported an error a test did not expect: a
    /// Content-Security-Policy violation (a refused script, style, connection or frame),
    /// an uncaught exception, a resource that failed to load. The browser's own request
    /// for /favicon.ico, which the page does not name, is not the page's.
    pub async fn assert_console_clean(&self) {
        self.read_console().await;
        let errors: Vec<String> = self
            .log
            .lock()
            .unwrap()
            .iter()
            .filter(|(m, expected)| {
                !expected
                    && (m.starts_with("SEVERE") || m.contains("Content Security Policy"))
                    && !m.contains("/favicon.ico ")
            })
            .map(|(m, _)| m.clone())
            .collect();
        assert!(
            errors.is_empty(),
            "{}: the page's console has errors: {errors:#?}",
            self.name
        );
    }

    /// Ends the session (the browser quits), then the driver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

/// A POST of `body` (JSON) to chromedriver's `path`; its JSON answer (null on failure).
async fn driver_post(port: u16, path: &str, body: &Value) -> Value {
    use http_body_util::{BodyExt, Full};
    let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Value::Null;
    };
    let Ok((mut sender, conn)) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await
    else {
        return Value::Null;
    };
    tokio::spawn(conn);
    let req = http::Request::post(path)
        .header("host", format!("127.0.0.1:{port}"))
        .header("content-type", "application/json")
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .expect("a request");
    let Ok(res) = sender.send_request(req).await else {
        return Value::Null;
    };
    let Ok(body) = res.into_body().collect().await else {
        return Value::Null;
    };
    serde_json::from_slice(&body.to_bytes()).unwrap_or(Value::Null)
}
