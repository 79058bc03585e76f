//! The shared test harness: [`spawn_app`] starts a backend on `127.0.0.1:0` with a fresh data
//! directory and database, and returns typed request helpers.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use vigil_backend::config::{Config, Secret};
use vigil_backend::state::AppState;
use vigil_proto::auth::{NewUser, Role, Scope, SessionInfo};
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
    let crate::server::Server { port, base: address, state, shutdown, task: server } =
        crate::server::start(config).await;
    // Unique even when a test restarts a server on the same port and data.
    static STARTS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let start = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let ingest_token = service_token(&state, &format!("ingest-{port}-{start}"), Scope::Ingest).await;
    let read_token = service_token(&state, &format!("read-{port}-{start}"), Scope::Read).await;
    TestApp {
        address,
        port,
        // Redirects are part of what is tested (pages send anonymous browsers to sign in).
        client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap(),
        state,
        ingest_token,
        read_token,
        data_dir,
        shutdown,
        server: Some(server),
        _temp: temp,
    }
}

/// Creates a service token directly through the server's state.
pub async fn service_token(state: &AppState, name: &str, scope: Scope) -> String {
    state.auth.create_token(name, Some(scope), None, None).await.expect("token created").0
}

/// The first administrator of every test server.
pub const ADMIN: &str = "admin";
pub const ADMIN_PASSWORD: &str = Config::TEST_ADMIN_PASSWORD;

/// A signed-in browser session: the cookie and the CSRF token that goes with it.
#[derive(Clone, Debug)]
pub struct TestSession {
    pub cookie: String,
    pub info: SessionInfo,
}

/// A request to `base` + `path` carrying the session's cookie and CSRF token.
pub fn session_request(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    session: &TestSession,
) -> reqwest::RequestBuilder {
    client
        .request(method, format!("{base}{path}"))
        .header("cookie", format!("vigil_session={}", session.cookie))
        .header("x-csrf-token", &session.info.csrf_token)
}

/// The value of the `vigil_session` cookie a response sets.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next()?.trim().strip_prefix("vigil_session=").map(str::to_owned))
        .next()
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

    /// Posts records, answered once they are searchable (`commit=wait_for`).
    pub async fn post_logs(&self, records: &[LogRecord]) -> reqwest::Response {
        self.client
            .post(self.url(paths::LOGS))
            .query(&[("commit", "wait_for")])
            .bearer_auth(&self.ingest_token)
            .json(records)
            .send()
            .await
            .expect("request sent")
    }

    /// Posts a raw body with the given content type (and encoding, when `Some`), answered once
    /// searchable.
    pub async fn post_raw(&self, body: Vec<u8>, content_type: &str, encoding: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url(paths::LOGS))
            .query(&[("commit", "wait_for")])
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

    /// A search page whose `total` counts every match (`track_total_hits=true` unless the
    /// parameters say otherwise): the tests' counts are exact.
    pub async fn search(&self, params: &[(&str, &str)]) -> LogPage {
        let mut params = params.to_vec();
        if !params.iter().any(|(name, _)| *name == "track_total_hits") {
            params.push(("track_total_hits", "true"));
        }
        let response = self.search_raw(&params).await;
        assert_eq!(response.status(), 200, "search failed: {}", response.text().await.unwrap_or_default());
        response.json().await.expect("a log page")
    }

    /// `POST /api/v1/metrics` with the ingest token.
    pub async fn post_metrics(&self, batch: &Value) -> reqwest::Response {
        self.client
            .post(self.url(paths::METRICS_WRITE))
            .bearer_auth(&self.ingest_token)
            .json(batch)
            .send()
            .await
            .expect("request sent")
    }

    /// `POST /api/v1/auth/login` with JSON.
    pub async fn login_raw(&self, username: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url(paths::AUTH_LOGIN))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .expect("request sent")
    }

    /// Signs in, or panics.
    pub async fn login(&self, username: &str, password: &str) -> TestSession {
        let response = self.login_raw(username, password).await;
        assert_eq!(response.status(), 200, "sign-in of {username} failed");
        let cookie = session_cookie(&response).expect("a session cookie");
        TestSession { cookie, info: response.json().await.expect("session info") }
    }

    pub async fn admin_session(&self) -> TestSession {
        self.login(ADMIN, ADMIN_PASSWORD).await
    }

    /// A request carrying the session's cookie and CSRF token.
    pub fn with_session(&self, method: reqwest::Method, path: &str, session: &TestSession) -> reqwest::RequestBuilder {
        session_request(&self.client, &self.address, method, path, session)
    }

    /// Creates a user with `role` through the API (as the administrator) and signs them in.
    pub async fn user_session(&self, username: &str, role: Role) -> TestSession {
        let admin = self.admin_session().await;
        let password = format!("{username} has a long password");
        let user = NewUser {
            username: username.to_owned(),
            display_name: String::new(),
            role,
            password: Some(password.clone()),
        };
        let response = self.with_session(reqwest::Method::POST, paths::USERS, &admin).json(&user).send().await.unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap_or_default());
        self.login(username, &password).await
    }

    /// A page of the audit log, read with an administrator's session.
    pub async fn audit(&self, admin: &TestSession, params: &[(&str, &str)]) -> vigil_proto::auth::AuditPage {
        let response = self.with_session(reqwest::Method::GET, paths::AUDIT, admin).query(params).send().await.unwrap();
        assert_eq!(response.status(), 200, "the audit log answers");
        response.json().await.expect("an audit page")
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
