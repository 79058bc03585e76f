//! Typed, layered configuration: defaults, then a TOML file, then `VIGIL_SECTION__KEY`
//! environment variables. The raw layers are parsed into [`RawConfig`] and validated into
//! [`Config`], the only form the rest of the backend sees.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use vigil_proto::auth::Role;

/// A value that must never be printed: its `Debug` is `[redacted]` and it has no `Display`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("[redacted]")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration")]
    Load(#[from] Box<figment::Error>),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawConfig {
    pub server: RawServer,
    pub storage: RawStorage,
    pub logs: LogsConfig,
    pub ui: UiConfig,
    pub auth: AuthConfig,
    pub secrets: RawSecrets,
    pub metrics: MetricsConfig,
    pub alerts: AlertsConfig,
    pub rollouts: RolloutsConfig,
    /// The services Vigil knows of (`[[services]]`).
    pub services: Vec<ServiceConfig>,
    pub telemetry: RawTelemetry,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawServer {
    pub listen: String,
    pub shutdown_grace_seconds: u64,
    /// PEM certificate chain; with `tls_key_file`, Vigil serves HTTPS (reloaded on SIGHUP).
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".to_owned(),
            shutdown_grace_seconds: 10,
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// The certificate and key Vigil serves HTTPS with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawStorage {
    pub data_dir: PathBuf,
    /// `sqlite://...` or `postgres://...`; a SQLite file under `data_dir` when absent.
    pub database_url: Option<Secret>,
    pub database_max_connections: u32,
}

impl Default for RawStorage {
    fn default() -> Self {
        Self { data_dir: PathBuf::from("vigil-data"), database_url: None, database_max_connections: 8 }
    }
}

/// Bounds of log ingest and the log writer (section `[logs]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogsConfig {
    /// Largest request body accepted, as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after decompression.
    pub max_decompressed_bytes: usize,
    pub max_batch_records: usize,
    pub max_message_bytes: usize,
    /// How far in the future a record's timestamp may lie, against the server's clock.
    pub max_future_seconds: u64,
    /// How old a record may be, in days (0: any age), as Loki's `reject_old_samples_max_age`.
    pub max_age_days: u32,
    /// Memory of the tantivy indexing buffer.
    pub writer_memory_bytes: usize,
    /// Batches waiting for the writer (each holds its records; see `ingest_memory_bytes`).
    pub writer_queue_batches: usize,
    /// Memory of ingest requests in flight (their bodies, decoded bodies, records and log
    /// encodings, until the writer took them): requests wait for room beyond it.
    pub ingest_memory_bytes: usize,
    /// How long a request waits for room (in the memory bound or the writer's queue) before
    /// it is answered 429.
    pub ingest_wait_seconds: u64,
    /// The longest an acknowledged record waits to be searchable under sustained ingest (when
    /// ingest pauses, the index commits at once). Longer: fewer, larger segments.
    pub commit_interval_ms: u64,
    /// A writer queue quiet for this long commits at once, so that sporadic records are
    /// searchable right away.
    pub commit_idle_ms: u64,
    /// How many segments of about the same size the index merges at once (tantivy's default
    /// 8; Quickwit's `merge_factor`): more, less merging while ingesting and more segments to
    /// search.
    pub merge_factor: usize,
    /// Threads that index log records (tantivy's indexing threads of the partition being
    /// written): by default one per core, up to 4. Each takes at least 16 MiB of
    /// `writer_memory_bytes`, which bounds them too.
    pub indexing_threads: usize,
    /// How often a quiet live tail sends a heartbeat frame.
    pub tail_heartbeat_seconds: u64,
    /// Days records are kept; 0 keeps them forever. Whole days go at once.
    pub retention_days: u32,
    /// Services kept longer or shorter than `retention_days` (their records are stored in
    /// partitions of their own, so that dropping them is deleting directories).
    pub retention_days_by_service: std::collections::BTreeMap<String, u32>,
    /// How often retention is applied.
    pub retention_check_seconds: u64,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 16 << 20,
            max_decompressed_bytes: 64 << 20,
            max_batch_records: 100_000,
            max_message_bytes: 256 << 10,
            max_future_seconds: 600,
            max_age_days: 7,
            writer_memory_bytes: 64 << 20,
            writer_queue_batches: 64,
            ingest_memory_bytes: 256 << 20,
            ingest_wait_seconds: 60,
            commit_interval_ms: 500,
            commit_idle_ms: 20,
            merge_factor: 8,
            indexing_threads: std::thread::available_parallelism().map_or(1, |cores| cores.get().min(4)),
            tail_heartbeat_seconds: 15,
            retention_days: 0,
            retention_days_by_service: std::collections::BTreeMap::new(),
            retention_check_seconds: 3600,
        }
    }
}

/// A service of the application (`[[services]]`): its name, and where Prometheus may scrape
/// it (listed by the HTTP service-discovery endpoint).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    pub name: String,
    /// `host:port` of each instance's metrics endpoint.
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default = "default_metrics_path")]
    pub metrics_path: String,
    #[serde(default = "default_scheme")]
    pub scheme: String,
    /// Extra labels of every series scraped from it.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Its Service dashboard: the label that tells its series apart, its request counter
    /// (with a status label) and its request-duration histogram (without `_bucket`).
    #[serde(default = "default_match_label")]
    pub match_label: String,
    #[serde(default = "default_requests_metric")]
    pub requests_metric: String,
    #[serde(default = "default_status_label")]
    pub status_label: String,
    #[serde(default = "default_duration_metric")]
    pub duration_metric: String,
}

impl ServiceConfig {
    /// A service with no targets and the default metric names.
    pub fn named(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            targets: Vec::new(),
            metrics_path: default_metrics_path(),
            scheme: default_scheme(),
            labels: std::collections::BTreeMap::new(),
            match_label: default_match_label(),
            requests_metric: default_requests_metric(),
            status_label: default_status_label(),
            duration_metric: default_duration_metric(),
        }
    }
}

fn default_match_label() -> String {
    "service".to_owned()
}

fn default_requests_metric() -> String {
    "http_requests_total".to_owned()
}

fn default_status_label() -> String {
    "code".to_owned()
}

fn default_duration_metric() -> String {
    "http_request_duration_seconds".to_owned()
}

fn default_metrics_path() -> String {
    "/metrics".to_owned()
}

fn default_scheme() -> String {
    "http".to_owned()
}

/// The alert evaluator and notifications (section `[alerts]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// Whether this node takes part in evaluating rules and sending notifications (one node at
    /// a time does, holding a lease in the database).
    pub evaluate: bool,
    /// The address people reach Vigil at, for the links in notifications; the listen address
    /// when empty.
    pub external_url: String,
    /// How often due rules and waiting notifications are looked at.
    pub tick_millis: u64,
    /// How long the evaluator's lease lasts without renewal (another node takes over after).
    pub lease_seconds: u64,
    /// Attempts per notification before it is given up (with backoff between them).
    pub max_delivery_attempts: u32,
    /// The first retry's delay; each next one doubles, up to 5 minutes.
    pub retry_base_millis: u64,
    /// Rules evaluated at once.
    pub max_concurrent_evaluations: usize,
    /// How long an alert received from Prometheus stays firing without being sent again (when
    /// it carries no `endsAt`), as Alertmanager's `resolve_timeout`.
    pub resolve_timeout_seconds: u64,
    /// Where alerts go that do not name their channels (those from Prometheus, and rules
    /// without `channels`): the first route whose matchers all hold, and the following ones
    /// while a matching route says `continue`.
    pub routes: Vec<AlertRouteConfig>,
}

/// One route of `[[alerts.routes]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRouteConfig {
    /// Alertmanager matchers (`severity="critical"`, `service=~"pay.*"`); none matches every alert.
    #[serde(default)]
    pub matchers: Vec<String>,
    /// Notification channels (integrations, by name).
    pub channels: Vec<String>,
    /// Whether the routes after this one are tried too when it matched.
    #[serde(default, rename = "continue")]
    pub continue_matching: bool,
    /// Labels whose values make a group: the notifications of a group go out together, one
    /// message per channel. `[]` puts every alert of the route in one group; when absent
    /// (or `["..."]`) each alert is told on its own, at once (unlike Alertmanager, whose
    /// routes group everything when `group_by` is absent).
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    /// How long a group's first notification waits for others of its group (30 s).
    #[serde(default = "default_group_wait")]
    pub group_wait_seconds: u64,
    /// The least time between two messages of one group (5 min); changes meanwhile wait.
    #[serde(default = "default_group_interval")]
    pub group_interval_seconds: u64,
}

impl AlertRouteConfig {
    /// The labels it groups by, if it groups.
    pub fn grouping(&self) -> Option<&[String]> {
        self.group_by.as_deref().filter(|labels| !labels.iter().any(|label| label == "..."))
    }
}

fn default_group_wait() -> u64 {
    30
}

fn default_group_interval() -> u64 {
    300
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            evaluate: true,
            external_url: String::new(),
            tick_millis: 250,
            lease_seconds: 15,
            max_delivery_attempts: 10,
            retry_base_millis: 1000,
            max_concurrent_evaluations: 32,
            resolve_timeout_seconds: 300,
            routes: Vec::new(),
        }
    }
}

/// The rollout runner (section `[rollouts]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RolloutsConfig {
    /// Whether this node takes part in running rollouts (one node at a time does, holding a
    /// lease in the database).
    pub run: bool,
    /// Vigil's address as CI systems reach it, for the callback URL of the generic webhook;
    /// the address the server listens on when empty.
    pub external_url: String,
    /// How often the rollouts in progress are moved on (runs polled, gates due evaluated).
    pub tick_millis: u64,
    /// How long the runner's lease lasts without renewal (another node takes over after).
    pub lease_seconds: u64,
    /// Rollouts moved on at once.
    pub max_concurrent_rollouts: usize,
    /// How long a provider's run may take from its trigger: longer, it is cancelled at the
    /// provider and the rollout fails (a CI that never calls back does not hold the service's
    /// rollouts forever).
    pub run_timeout_seconds: u64,
}

impl Default for RolloutsConfig {
    fn default() -> Self {
        Self {
            run: true,
            external_url: String::new(),
            tick_millis: 500,
            lease_seconds: 15,
            max_concurrent_rollouts: 16,
            run_timeout_seconds: 3600,
        }
    }
}

/// Prometheus, where samples go and PromQL is answered (section `[metrics]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// The Prometheus HTTP API that answers PromQL.
    pub prometheus_url: String,
    /// The remote-write receiver; `<prometheus_url>/api/v1/write` when absent.
    pub remote_write_url: Option<String>,
    pub query_timeout_seconds: u64,
    /// Series per PromQL answer, and points per series.
    pub max_series: usize,
    pub max_points_per_series: usize,
    /// Bounds of one `POST /api/v1/metrics`.
    pub max_body_bytes: usize,
    pub max_batch_series: usize,
    pub max_batch_samples: usize,
    /// Batches waiting for the receiver before ingest answers 429.
    pub write_queue_batches: usize,
    /// How long a batch may wait for the receiver, retries included, before ingest answers 503.
    pub write_deadline_seconds: u64,
    pub write_timeout_seconds: u64,
    /// Samples per remote-write request (batches waiting together are sent together).
    pub max_samples_per_write: usize,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            prometheus_url: "http://127.0.0.1:9090".to_owned(),
            remote_write_url: None,
            query_timeout_seconds: 30,
            max_series: 500,
            max_points_per_series: 11_000,
            max_body_bytes: 16 << 20,
            max_batch_series: 20_000,
            max_batch_samples: 200_000,
            write_queue_batches: 64,
            write_deadline_seconds: 20,
            write_timeout_seconds: 10,
            max_samples_per_write: 50_000,
        }
    }
}

impl MetricsConfig {
    pub fn remote_write_url(&self) -> String {
        self.remote_write_url
            .clone()
            .unwrap_or_else(|| format!("{}/api/v1/write", self.prometheus_url.trim_end_matches('/')))
    }
}

/// Users, sessions and sign-in (section `[auth]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// A session ends after this long without a request.
    pub session_idle_minutes: u64,
    /// A session ends this long after sign-in, however active.
    pub session_lifetime_hours: u64,
    /// Marks the session cookie `Secure`. On by itself when Vigil serves TLS; turn it on when a
    /// proxy terminates TLS in front of Vigil.
    pub secure_cookies: bool,
    /// The administrator created on the first start, when there are no users.
    pub initial_admin_username: String,
    /// Its password. When absent a random one is generated and printed once on standard error.
    pub initial_admin_password: Option<Secret>,
    /// Failed sign-ins of one account (or from one address, times four) within
    /// `login_lockout_seconds` before further attempts are refused for that long.
    pub login_max_failures: u32,
    pub login_lockout_seconds: u64,
    pub min_password_length: usize,
    /// Single sign-on with OpenID Connect (section `[auth.oidc]`); off when absent.
    pub oidc: Option<OidcConfig>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            session_idle_minutes: 720,
            session_lifetime_hours: 168,
            secure_cookies: false,
            initial_admin_username: "admin".to_owned(),
            initial_admin_password: None,
            login_max_failures: 5,
            login_lockout_seconds: 900,
            min_password_length: 12,
            oidc: None,
        }
    }
}

/// Section `[auth.oidc]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer_url: String,
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<Secret>,
    /// This server's callback as registered at the provider:
    /// `https://vigil.example.com/api/v1/auth/oidc/callback`.
    pub redirect_url: String,
    #[serde(default = "default_scopes")]
    pub scopes: Vec<String>,
    /// The claim holding the user's groups.
    #[serde(default = "default_groups_claim")]
    pub groups_claim: String,
    /// The claim the Vigil user name comes from (then `email`, then `sub`).
    #[serde(default = "default_username_claim")]
    pub username_claim: String,
    #[serde(default)]
    pub admin_groups: Vec<String>,
    #[serde(default)]
    pub deployer_groups: Vec<String>,
    #[serde(default)]
    pub viewer_groups: Vec<String>,
    /// The role of users in none of the groups above; when absent they are refused.
    #[serde(default)]
    pub default_role: Option<Role>,
    /// Creates a Vigil user at the first sign-in; otherwise an administrator creates them.
    #[serde(default = "default_true")]
    pub auto_create_users: bool,
    /// The sign-in button's text.
    #[serde(default = "default_label")]
    pub label: String,
}

fn default_scopes() -> Vec<String> {
    ["openid", "profile", "email"].map(str::to_owned).to_vec()
}

fn default_groups_claim() -> String {
    "groups".to_owned()
}

fn default_username_claim() -> String {
    "preferred_username".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_label() -> String {
    "Sign in with single sign-on".to_owned()
}

impl OidcConfig {
    pub fn validate(&self) -> Result<(), ConfigError> {
        url::Url::parse(&self.issuer_url)
            .map_err(|error| ConfigError::Invalid(format!("auth.oidc.issuer_url: {error}")))?;
        url::Url::parse(&self.redirect_url)
            .map_err(|error| ConfigError::Invalid(format!("auth.oidc.redirect_url: {error}")))?;
        if self.client_id.is_empty() {
            return Err(ConfigError::Invalid("auth.oidc.client_id must not be empty".to_owned()));
        }
        if !self.scopes.iter().any(|scope| scope == "openid") {
            return Err(ConfigError::Invalid("auth.oidc.scopes must include openid".to_owned()));
        }
        Ok(())
    }
}

/// The key that seals integration secrets (section `[secrets]`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawSecrets {
    /// 32 bytes, base64. Takes precedence over `key_file`.
    pub key: Option<Secret>,
    /// A file holding the key in base64; created with a random key when missing.
    /// Default: `<data_dir>/secrets.key`.
    pub key_file: Option<PathBuf>,
}

/// Where the secrets key comes from.
#[derive(Debug, Clone)]
pub enum SecretsKey {
    Inline(Secret),
    File(PathBuf),
}

/// Where the built site is (section `[ui]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UiConfig {
    /// The folder `cargo xtask build` writes the site to.
    pub site_root: PathBuf,
    pub pkg_dir: String,
    pub output_name: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self { site_root: PathBuf::from("target/site"), pkg_dir: "pkg".to_owned(), output_name: "vigil".to_owned() }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTelemetry {
    /// A `tracing` filter such as `info` or `vigil_backend=debug,info`.
    pub filter: String,
    pub format: LogFormat,
}

impl Default for RawTelemetry {
    fn default() -> Self {
        Self { filter: "info".to_owned(), format: LogFormat::Text }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// HTTPS when set, HTTP otherwise.
    pub tls: Option<TlsFiles>,
    pub shutdown_grace: std::time::Duration,
    pub data_dir: PathBuf,
    pub database_url: Secret,
    pub database_max_connections: u32,
    pub logs: LogsConfig,
    pub ui: UiConfig,
    pub auth: AuthConfig,
    pub secrets_key: SecretsKey,
    pub metrics: MetricsConfig,
    pub alerts: AlertsConfig,
    pub rollouts: RolloutsConfig,
    pub services: Vec<ServiceConfig>,
    pub telemetry_filter: String,
    pub telemetry_format: LogFormat,
}

impl Config {
    /// Reads the layers: defaults, the TOML file when given, then the environment.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!("configuration file {} does not exist", file.display())));
            }
            figment = figment.merge(Toml::file(file));
        }
        // Only `VIGIL_SECTION__KEY` variables are configuration; `VIGIL_FOO` is left alone.
        figment = figment.merge(Env::prefixed("VIGIL_").filter(|key| key.as_str().contains("__")).split("__"));
        let raw: RawConfig = figment.extract().map_err(Box::new)?;
        raw.validate()
    }

    /// The password of the first administrator in [`Config::for_tests`].
    pub const TEST_ADMIN_PASSWORD: &str = "correct horse battery staple";

    /// The configuration tests start from: everything under `data_dir`, a free port on loopback.
    pub fn for_tests(data_dir: &Path) -> Self {
        let raw = RawConfig {
            server: RawServer { listen: "127.0.0.1:0".to_owned(), ..RawServer::default() },
            storage: RawStorage { data_dir: data_dir.to_owned(), ..RawStorage::default() },
            // Tests write records of fixed days, whatever the day they run.
            logs: LogsConfig { max_age_days: 0, ..LogsConfig::default() },
            auth: AuthConfig {
                initial_admin_password: Some(Secret::new(Self::TEST_ADMIN_PASSWORD)),
                ..AuthConfig::default()
            },
            ..RawConfig::default()
        };
        raw.validate().expect("the test configuration is valid")
    }
}

impl RawConfig {
    pub fn validate(self) -> Result<Config, ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(message));
        let listen: SocketAddr = match self.server.listen.parse() {
            Ok(address) => address,
            Err(_) => {
                return invalid(format!(
                    "server.listen {:?} is not an address such as 127.0.0.1:8080",
                    self.server.listen
                ));
            }
        };
        let tls = match (self.server.tls_cert_file, self.server.tls_key_file) {
            (Some(cert_file), Some(key_file)) => Some(TlsFiles { cert_file, key_file }),
            (None, None) => None,
            _ => {
                return invalid(
                    "server.tls_cert_file and server.tls_key_file go together: set both or neither".to_owned(),
                );
            }
        };
        let database_url = match self.storage.database_url {
            Some(url) => url,
            None => Secret::new(format!("sqlite://{}", self.storage.data_dir.join("vigil.db").display())),
        };
        let url = database_url.expose();
        if !(url.starts_with("sqlite:") || url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return invalid("storage.database_url must start with sqlite:, postgres:// or postgresql://".to_owned());
        }
        if self.storage.database_max_connections == 0 {
            return invalid("storage.database_max_connections must be at least 1".to_owned());
        }
        let logs = self.logs;
        for (name, value) in [
            ("logs.max_body_bytes", logs.max_body_bytes),
            ("logs.max_decompressed_bytes", logs.max_decompressed_bytes),
            ("logs.max_batch_records", logs.max_batch_records),
            ("logs.max_message_bytes", logs.max_message_bytes),
            ("logs.writer_queue_batches", logs.writer_queue_batches),
            ("logs.commit_interval_ms", logs.commit_interval_ms as usize),
            ("logs.commit_idle_ms", logs.commit_idle_ms as usize),
            ("logs.tail_heartbeat_seconds", logs.tail_heartbeat_seconds as usize),
            ("logs.retention_check_seconds", logs.retention_check_seconds as usize),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be greater than 0"));
            }
        }
        for service in logs.retention_days_by_service.keys() {
            let valid = vigil_proto::names::is_service_name(service) && !service.starts_with(['.', '_']);
            if !valid {
                return invalid(format!(
                    "logs.retention_days_by_service: {service:?} is not a service name of letters, digits, '-', '_' and '.'"
                ));
            }
        }
        if logs.merge_factor < 2 {
            return invalid("logs.merge_factor must be at least 2".to_owned());
        }
        if !(1..=8).contains(&logs.indexing_threads) {
            return invalid(format!("logs.indexing_threads: {} must be between 1 and 8", logs.indexing_threads));
        }

        if logs.ingest_memory_bytes < logs.max_body_bytes {
            return invalid("logs.ingest_memory_bytes must be at least logs.max_body_bytes".to_owned());
        }
        if logs.max_decompressed_bytes < logs.max_body_bytes {
            return invalid("logs.max_decompressed_bytes must be at least logs.max_body_bytes".to_owned());
        }
        if logs.writer_memory_bytes < 15 << 20 {
            return invalid("logs.writer_memory_bytes must be at least 15 MiB (15728640)".to_owned());
        }
        if self.ui.output_name.is_empty() || self.ui.pkg_dir.is_empty() {
            return invalid("ui.output_name and ui.pkg_dir must not be empty".to_owned());
        }
        let auth = self.auth;
        if auth.session_idle_minutes == 0 || auth.session_lifetime_hours == 0 {
            return invalid(
                "auth.session_idle_minutes and auth.session_lifetime_hours must be greater than 0".to_owned(),
            );
        }
        if auth.login_max_failures == 0 || auth.login_lockout_seconds == 0 {
            return invalid("auth.login_max_failures and auth.login_lockout_seconds must be greater than 0".to_owned());
        }
        if auth.min_password_length < 8 {
            return invalid("auth.min_password_length must be at least 8".to_owned());
        }
        if vigil_proto::names::UserName::parse(&auth.initial_admin_username).is_err() {
            return invalid(format!(
                "auth.initial_admin_username {:?} is not a user name of 1 to 64 letters, digits, '-', '_', '.' and '@'",
                auth.initial_admin_username
            ));
        }
        if let Some(password) = &auth.initial_admin_password
            && password.expose().chars().count() < auth.min_password_length
        {
            return invalid(format!(
                "auth.initial_admin_password must be at least auth.min_password_length ({}) characters",
                auth.min_password_length
            ));
        }
        if let Some(oidc) = &auth.oidc {
            oidc.validate()?;
        }
        let secrets_key = match (self.secrets.key, self.secrets.key_file) {
            (Some(key), _) => SecretsKey::Inline(key),
            (None, Some(file)) => SecretsKey::File(file),
            (None, None) => SecretsKey::File(self.storage.data_dir.join("secrets.key")),
        };
        let metrics = self.metrics;
        let mut alerts = self.alerts;
        if alerts.tick_millis == 0 || alerts.lease_seconds == 0 || alerts.max_delivery_attempts == 0 {
            return invalid(
                "alerts.tick_millis, lease_seconds and max_delivery_attempts must be greater than 0".to_owned(),
            );
        }
        if alerts.max_concurrent_evaluations == 0 {
            return invalid("alerts.max_concurrent_evaluations must be greater than 0".to_owned());
        }
        for route in &alerts.routes {
            for matcher in &route.matchers {
                if let Err(error) = matcher.parse::<vigil_proto::alerts::Matcher>() {
                    return invalid(format!("alerts.routes: {error}"));
                }
            }
            for label in route.group_by.iter().flatten() {
                if label != "..." && !vigil_proto::metrics::is_label_name(label) {
                    return invalid(format!("alerts.routes: group_by {label:?} is not a label name"));
                }
            }
            if route.grouping().is_some() && route.group_interval_seconds == 0 {
                return invalid("alerts.routes: group_interval_seconds must be greater than 0".to_owned());
            }
        }
        if alerts.external_url.is_empty() {
            let scheme = if tls.is_some() { "https" } else { "http" };
            alerts.external_url = format!("{scheme}://{listen}");
        }
        alerts.external_url = alerts.external_url.trim_end_matches('/').to_owned();
        let mut rollouts = self.rollouts;
        if rollouts.tick_millis == 0 || rollouts.lease_seconds == 0 || rollouts.max_concurrent_rollouts == 0 {
            return invalid(
                "rollouts.tick_millis, lease_seconds and max_concurrent_rollouts must be greater than 0".to_owned(),
            );
        }
        rollouts.external_url = rollouts.external_url.trim_end_matches('/').to_owned();
        let url = &rollouts.external_url;
        if !(url.is_empty() || url.starts_with("http://") || url.starts_with("https://")) {
            return invalid(format!(
                "rollouts.external_url {:?} must be an http:// or https:// URL",
                rollouts.external_url
            ));
        }
        for (name, url) in [
            ("metrics.prometheus_url", Some(&metrics.prometheus_url)),
            ("metrics.remote_write_url", metrics.remote_write_url.as_ref()),
        ] {
            if let Some(url) = url
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                return invalid(format!("{name} {url:?} must be an http:// or https:// URL"));
            }
        }
        for (name, value) in [
            ("metrics.query_timeout_seconds", metrics.query_timeout_seconds as usize),
            ("metrics.max_series", metrics.max_series),
            ("metrics.max_points_per_series", metrics.max_points_per_series),
            ("metrics.max_body_bytes", metrics.max_body_bytes),
            ("metrics.max_batch_series", metrics.max_batch_series),
            ("metrics.max_batch_samples", metrics.max_batch_samples),
            ("metrics.write_queue_batches", metrics.write_queue_batches),
            ("metrics.write_deadline_seconds", metrics.write_deadline_seconds as usize),
            ("metrics.write_timeout_seconds", metrics.write_timeout_seconds as usize),
            ("metrics.max_samples_per_write", metrics.max_samples_per_write),
        ] {
            if value == 0 {
                return invalid(format!("{name} must be greater than 0"));
            }
        }
        let mut names = std::collections::BTreeSet::new();
        for service in &self.services {
            let valid = vigil_proto::names::is_service_name(&service.name);
            if !valid {
                return invalid(format!(
                    "services: {:?} is not a name of letters, digits, '-', '_' and '.'",
                    service.name
                ));
            }
            if !names.insert(service.name.clone()) {
                return invalid(format!("services: {:?} is listed twice", service.name));
            }
            if let Some(target) = service.targets.iter().find(|target| target.is_empty() || target.contains('/')) {
                return invalid(format!("services.{}: target {target:?} must be host:port", service.name));
            }
            if !service.metrics_path.starts_with('/') || !matches!(service.scheme.as_str(), "http" | "https") {
                return invalid(format!(
                    "services.{}: metrics_path must start with / and scheme be http or https",
                    service.name
                ));
            }
            let names_ok = [&service.match_label, &service.status_label]
                .iter()
                .all(|label| vigil_proto::metrics::is_label_name(label))
                && [&service.requests_metric, &service.duration_metric]
                    .iter()
                    .all(|name| vigil_proto::metrics::is_metric_name(name));
            if !names_ok {
                return invalid(format!(
                    "services.{}: a metric or label name is not valid in Prometheus",
                    service.name
                ));
            }
            if let Some(label) = service.labels.keys().find(|label| !vigil_proto::metrics::is_label_name(label)) {
                return invalid(format!("services.{}: {label:?} is not a Prometheus label name", service.name));
            }
        }
        if tracing_subscriber::EnvFilter::try_new(&self.telemetry.filter).is_err() {
            return invalid(format!("telemetry.filter {:?} is not a tracing filter", self.telemetry.filter));
        }
        Ok(Config {
            listen,
            tls,
            shutdown_grace: std::time::Duration::from_secs(self.server.shutdown_grace_seconds),
            data_dir: self.storage.data_dir,
            database_url,
            database_max_connections: self.storage.database_max_connections,
            logs,
            ui: self.ui,
            auth,
            secrets_key,
            metrics,
            alerts,
            rollouts,
            services: self.services,
            telemetry_filter: self.telemetry.filter,
            telemetry_format: self.telemetry.format,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = Figment::new().merge(Toml::string(toml)).extract().map_err(Box::new)?;
        raw.validate()
    }

    #[test]
    fn defaults_are_valid() {
        let config = parse("").unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:8080");
        assert!(config.database_url.expose().starts_with("sqlite://vigil-data"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(matches!(parse("[server]\nlisen = \"x\""), Err(ConfigError::Load(_))));
        assert!(matches!(parse("[server]\nlisten = \"nowhere\""), Err(ConfigError::Invalid(_))));
        assert!(matches!(parse("[storage]\ndatabase_url = \"mysql://x\""), Err(ConfigError::Invalid(_))));
        assert!(matches!(parse("[logs]\nmax_body_bytes = 0"), Err(ConfigError::Invalid(_))));
    }

    #[test]
    fn the_example_file_is_valid_and_holds_the_defaults() {
        let example = parse(include_str!("../../config/vigil.example.toml")).unwrap();
        let defaults = parse("").unwrap();
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn secrets_never_print() {
        let config = parse("[storage]\ndatabase_url = \"postgres://vigil:hunter2@db/vigil\"").unwrap();
        let printed = format!("{config:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("[redacted]"));
    }
}
