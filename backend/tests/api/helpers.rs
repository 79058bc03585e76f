//! The shared test harness: [`spawn_app`] starts a backend on `127.0.0.1:0` with a fresh data
//! directory and database, and returns typed request helpers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use vigil_backend::auth::{Scope, create_token};
use vigil_backend::config::{Config, Secret};
use vigil_backend::startup::{AppState, Application};
use vigil_proto::{LogPage, LogRecord, paths};

use crate::postgres::TestPostgres;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub state: Arc<AppState>,
    /// Ingest-scoped and read-scoped tokens created for the test.
    pub ingest_token: String,
    pub read_token: String,
    pub data_dir: PathBuf,
    shutdown: CancellationToken,
    server: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    _temp: Option<TempDir>,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// The workspace's built site (`cargo xtask build`). Found at run time, not compile time: one
/// build of the tests may serve several checkouts that share a target directory.
pub fn site_root() -> PathBuf {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run through cargo");
    Path::new(&manifest_dir).join("../target/site")
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Db::Sqlite, |_| {}).await
}

/// Starts a backend on its own temporary data directory and database; `configure` may change
/// the configuration first.
pub async fn spawn_app_with(db: Db, configure: impl FnOnce(&mut Config)) -> TestApp {
    let temp = tempfile::tempdir().expect("temp dir");
    let mut config = Config::for_tests(temp.path());
    config.ui.site_root = site_root();
    if db == Db::Postgres {
        config.database_url = Secret::new(TestPostgres::shared().create_database().await);
    }
    configure(&mut config);
    let data_dir = temp.path().to_owned();
    start(config, data_dir, Some(temp)).await
}

/// Starts a backend on an existing data directory (to test restarts).
pub async fn restart_app(data_dir: &Path) -> TestApp {
    restart_app_with(data_dir, |_| {}).await
}

/// The same, with a changed configuration.
pub async fn restart_app_with(data_dir: &Path, configure: impl FnOnce(&mut Config)) -> TestApp {
    let mut config = Config::for_tests(data_dir);
    config.ui.site_root = site_root();
    configure(&mut config);
    start(config, data_dir.to_owned(), None).await
}

async fn start(config: Config, data_dir: PathBuf, temp: Option<TempDir>) -> TestApp {
    let application = Application::build(config).await.expect("application builds");
    let port = application.port();
    let state = application.state();
    let shutdown = application.shutdown_token();
    let server = tokio::spawn(application.run_until_stopped(std::future::pending()));
    let ingest_token = create_token(&state.database, &format!("ingest-{port}"), Scope::Ingest).await.unwrap().0;
    let read_token = create_token(&state.database, &format!("read-{port}"), Scope::Read).await.unwrap().0;
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::new(),
        state,
        ingest_token,
        read_token,
        data_dir,
        shutdown,
        server: Some(server),
        _temp: temp,
    }
}

/// A record at `timestamp` (RFC 3339).
pub fn record(timestamp: &str, service: &str, level: &str, message: &str) -> LogRecord {
    serde_json::from_value(serde_json::json!({
        "timestamp": timestamp, "service": service, "host": "host-a", "level": level, "message": message,
    }))
    .unwrap()
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn post_logs(&self, records: &[LogRecord]) -> reqwest::Response {
        self.client
            .post(self.url(paths::LOGS))
            .bearer_auth(&self.ingest_token)
            .json(records)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts a raw body with the given content type (and encoding, when `Some`).
    pub async fn post_raw(&self, body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(paths::LOGS))
            .bearer_auth(&self.ingest_token)
            .header("content-type", content_type)
            .body(body);
        if let Some(encoding) = encoding {
            request = request.header("content-encoding", encoding);
        }
        request.send().await.expect("request sent")
    }

    /// A GET of `path` with the read token.
    pub async fn read(&self, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(&self.read_token).query(params).send().await.expect("request sent")
    }

    pub async fn search_raw(&self, params: &[(&str, &str)]) -> reqwest::Response {
        self.read(paths::LOGS_SEARCH, params).await
    }

    pub async fn search(&self, params: &[(&str, &str)]) -> LogPage {
        let response = self.search_raw(params).await;
        assert_eq!(response.status(), 200, "search failed: {}", response.text().await.unwrap_or_default());
        response.json().await.expect("a log page")
    }

    /// Stops the server gracefully, waits for it, and hands over its data directory.
    pub async fn stop_keeping_data(mut self) -> TempDir {
        self.shutdown.cancel();
        if let Some(server) = self.server.take() {
            server.await.expect("server task").expect("server ran");
        }
        self._temp.take().expect("an app started by spawn_app owns its data directory")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// Asserts a JSON error answer: status, `code`, and a message containing `needle`.
pub async fn assert_error(response: reqwest::Response, status: u16, code: &str, needle: &str) -> Value {
    assert_eq!(response.status(), status);
    let body: Value = response.json().await.expect("a JSON error body");
    assert_eq!(body["code"], code, "{body}");
    let message = body["message"].as_str().expect("a message");
    assert!(message.contains(needle), "message {message:?} does not contain {needle:?}");
    body
}

/// Polls `probe` every 50 ms until it yields a value, or panics after `seconds`.
pub async fn eventually<T, F, Fut>(seconds: u64, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out after {seconds} s waiting for {what}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
