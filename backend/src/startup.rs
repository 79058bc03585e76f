//! Assembly of the server: [`Application::build`] opens the stores and binds the listener,
//! [`router`] wires every route, [`Application::run_until_stopped`] serves until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::middleware::from_fn_with_state;
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use vigil_frontend::services::Services;
use vigil_proto::paths;

use crate::auth::{Access, ApiRouter, Auth, Policy, server_function_access};
use crate::http::authorize::authorize;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::{Config, TlsFiles};
use crate::prometheus::query::{Prometheus, QueryLimits};
use crate::prometheus::remote_write::{RemoteWriteConfig, RemoteWriter};
use crate::routes;
use crate::secrets::SecretBox;
use crate::state::AppState;
use crate::store::Database;
use crate::telemetry::{Metrics, track_http};
use crate::ui::BackendServices;
use vigil_logstore::{Retention, TantivyLogStore, WriterOptions};

pub struct Application {
    listener: TcpListener,
    /// The certificate being served, when HTTPS.
    tls: Option<RustlsConfig>,
    state: Arc<AppState>,
    shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot create the data directory {0}")]
    DataDir(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot seed the services")]
    Services(#[from] crate::rollouts::RolloutError),
    #[error("cannot open the log store")]
    LogStore(#[from] vigil_logstore::LogStoreError),
    #[error("cannot load the secrets key")]
    Secrets(#[from] crate::secrets::SecretsError),
    #[error("cannot create the first administrator")]
    InitialAdmin(#[from] crate::auth::InitialAdminError),
    #[error("cannot set up the metrics client")]
    MetricsHttp(#[source] reqwest::Error),
    #[error("cannot set up the metrics client")]
    Prometheus(#[from] crate::prometheus::query::ClientError),
    #[error("cannot set up single sign-on")]
    Oidc(#[from] crate::auth::oidc::OidcError),
    #[error("cannot load the TLS certificate {0} or its key")]
    Tls(String, #[source] std::io::Error),
    #[error("cannot listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        create_private_dir(&config.data_dir)
            .map_err(|error| BuildError::DataDir(config.data_dir.display().to_string(), error))?;
        let metrics = Metrics::new();
        let database = Database::connect(config.database_url.expose(), config.database_max_connections).await?;
        let secrets = match &config.secrets_key {
            crate::config::SecretsKey::Inline(key) => SecretBox::from_base64(key.expose())?,
            crate::config::SecretsKey::File(path) => SecretBox::from_key_file(path)?,
        };
        let tls = match &config.tls {
            Some(files) => Some(
                RustlsConfig::from_pem_file(&files.cert_file, &files.key_file)
                    .await
                    .map_err(|error| BuildError::Tls(files.cert_file.display().to_string(), error))?,
            ),
            None => None,
        };
        let service_names: Vec<String> = config.services.iter().map(|service| service.name.clone()).collect();
        crate::rollouts::seed(&database, &service_names).await?;
        let auth = Auth::new(database.clone(), config.auth.clone(), tls.is_some())?;
        if let Some(password) = auth.ensure_initial_admin().await? {
            // Printed once, on standard error and not through tracing, so that it reaches the
            // operator and no log collector.
            eprintln!(
                "vigil: created the administrator {:?} with the password {password}\n\
                 vigil: it is shown this once; sign in and change it under Account",
                config.auth.initial_admin_username
            );
        }
        let log_store = TantivyLogStore::open(
            &config.data_dir.join("logs"),
            WriterOptions {
                memory_bytes: config.logs.writer_memory_bytes,
                queue_batches: config.logs.writer_queue_batches,
                queue_wait: std::time::Duration::from_secs(config.logs.ingest_wait_seconds),
                commit_interval: std::time::Duration::from_millis(config.logs.commit_interval_ms),
                commit_idle: std::time::Duration::from_millis(config.logs.commit_idle_ms),
                merge_factor: config.logs.merge_factor,
                indexing_threads: config.logs.indexing_threads,
                retention: Retention {
                    days: config.logs.retention_days,
                    days_by_service: config.logs.retention_days_by_service.clone(),
                },
            },
            metrics.log_store(),
        )?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|error| BuildError::Bind(config.listen, error))?;
        let shutdown = CancellationToken::new();
        let metrics_config = &config.metrics;
        let http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .build()
            .map_err(BuildError::MetricsHttp)?;
        let remote_writer = RemoteWriter::start(
            RemoteWriteConfig {
                url: metrics_config.remote_write_url(),
                timeout: std::time::Duration::from_secs(metrics_config.write_timeout_seconds),
                deadline: std::time::Duration::from_secs(metrics_config.write_deadline_seconds),
                queue_batches: metrics_config.write_queue_batches,
                max_samples_per_request: metrics_config.max_samples_per_write,
            },
            http.clone(),
            metrics.clone(),
            shutdown.clone(),
        );
        let query_http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(metrics_config.query_timeout_seconds + 5))
            .build()
            .map_err(BuildError::MetricsHttp)?;
        let prometheus = Prometheus::new(
            query_http,
            &metrics_config.prometheus_url,
            QueryLimits {
                timeout: std::time::Duration::from_secs(metrics_config.query_timeout_seconds),
                max_series: metrics_config.max_series,
                max_points_per_series: metrics_config.max_points_per_series,
            },
        )?;
        let notify_http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .user_agent(concat!("Vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::MetricsHttp)?;
        let provider_http = reqwest::Client::builder()
            .connect_timeout(std::time::Duration::from_secs(5))
            .timeout(std::time::Duration::from_secs(15))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Vigil/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildError::MetricsHttp)?;
        let config_logs = config.logs.clone();
        let ingest_budget = crate::ingest::budget::IngestBudget::new(
            config_logs.ingest_memory_bytes,
            std::time::Duration::from_secs(config_logs.ingest_wait_seconds),
        )
        .with_metrics(metrics.ingest_memory_bytes.clone(), metrics.ingest_waits.clone());
        let state = Arc::new(AppState {
            config,
            database,
            auth,
            secrets,
            log_store: Arc::new(log_store),
            remote_writer,
            prometheus,
            notify_http,
            provider_http,
            metrics,
            shutdown: shutdown.clone(),
            tails: Arc::default(),
            agent_registrations: crate::agents::Registrations::default(),
            ingest_budget,
            started_at_millis: crate::store::now_millis(),
        });
        Ok(Self { listener, tls, state, shutdown })
    }

    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|address| address.port()).unwrap_or_default()
    }

    pub fn state(&self) -> Arc<AppState> {
        self.state.clone()
    }

    /// Cancelling this token stops the server gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves until `shutdown_token` is cancelled or `signal` completes, then lets requests in
    /// flight finish (within the configured grace period) and closes the stores.
    pub async fn run_until_stopped(self, signal: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        let state = self.state.clone();
        let shutdown = self.shutdown.clone();
        let grace = state.config.shutdown_grace;
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                tokio::select! {
                    () = signal => shutdown.cancel(),
                    () = shutdown.cancelled() => {}
                }
            }
        });
        tokio::spawn(apply_retention_periodically(state.clone()));
        tokio::spawn(tidy_sign_ins_periodically(state.clone()));
        let address = self.listener.local_addr()?;
        let holder = format!("{}:{}", hostname(), address.port());
        let alerting = state.config.alerts.evaluate.then(|| tokio::spawn(run_alerting(state.clone(), holder.clone())));
        let callback_base = match state.config.rollouts.external_url.as_str() {
            "" => format!("{}://{address}", if self.tls.is_some() { "https" } else { "http" }),
            configured => configured.to_owned(),
        };
        let rolling =
            state.config.rollouts.run.then(|| tokio::spawn(run_rollouts(state.clone(), holder, callback_base)));
        let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let served = match (self.tls, &state.config.tls) {
            (Some(tls), Some(files)) => {
                tracing::info!(address = %address, "vigil listening (https)");
                tokio::spawn(reload_certificate_on_hangup(tls.clone(), files.clone(), shutdown.clone()));
                let handle = axum_server::Handle::new();
                tokio::spawn({
                    let (handle, shutdown) = (handle.clone(), shutdown.clone());
                    async move {
                        shutdown.cancelled().await;
                        handle.graceful_shutdown(Some(grace));
                    }
                });
                axum_server::from_tcp_rustls(self.listener.into_std()?, tls)?.handle(handle).serve(app).await
            }
            _ => {
                tracing::info!(address = %address, "vigil listening (http)");
                let server = axum::serve(self.listener, app).with_graceful_shutdown({
                    let shutdown = shutdown.clone();
                    async move { shutdown.cancelled().await }
                });
                tokio::select! {
                    result = server => result,
                    () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                        tracing::warn!(grace_seconds = grace.as_secs(), "requests still running after the grace period, stopping anyway");
                        Ok(())
                    }
                }
            }
        };
        shutdown.cancel();
        if let Some(alerting) = alerting
            && let Err(error) = alerting.await
        {
            tracing::error!(error = %error, "the alert evaluator failed");
        }
        if let Some(rolling) = rolling
            && let Err(error) = rolling.await
        {
            tracing::error!(error = %error, "the rollout runner failed");
        }
        state.log_store.close().await;
        state.auth.failures().flush(&state.database, true).await;
        state.database.close().await;
        tracing::info!("vigil stopped");
        served
    }
}

/// The alert evaluator and the notification sender, until shutdown; the lease they share
/// leaves them idle on every node but one.
async fn run_alerting(state: Arc<AppState>, holder: String) {
    use crate::alerts::{evaluator, notifier};
    let coordination = Arc::new(evaluator::Coordination::default());
    let config = &state.config.alerts;
    let evaluation = evaluator::run(
        evaluator::Parts {
            database: &state.database,
            prometheus: &state.prometheus,
            log_store: state.log_store.as_ref(),
            config,
            metrics: &state.metrics,
        },
        &holder,
        coordination.clone(),
        state.shutdown.clone(),
    );
    let sending = notifier::run(
        notifier::Parts {
            database: &state.database,
            secrets: &state.secrets,
            http: &state.notify_http,
            config,
            metrics: &state.metrics,
        },
        coordination,
        state.shutdown.clone(),
    );
    tokio::join!(evaluation, sending);
}

/// The rollout runner, until shutdown; its lease leaves it idle on every node but one.
async fn run_rollouts(state: Arc<AppState>, holder: String, callback_base: String) {
    use crate::rollouts::runner;
    let parts = runner::Parts {
        database: &state.database,
        secrets: &state.secrets,
        prometheus: &state.prometheus,
        log_store: state.log_store.as_ref(),
        http: &state.provider_http,
        config: &state.config.rollouts,
        callback_base: &callback_base,
        polled: runner::PollTimes::default(),
    };
    runner::run(parts, &holder, state.shutdown.clone()).await;
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|name| name.trim().to_owned()).unwrap_or_default()
}

/// Creates the data directory, readable by its owner only, unless it exists (an existing
/// directory keeps the mode its operator gave it).
fn create_private_dir(directory: &std::path::Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if directory.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(directory)
}

/// Reloads the certificate and key from their files on every SIGHUP; a pair that does not load
/// is logged and the one being served stays.
async fn reload_certificate_on_hangup(tls: RustlsConfig, files: TlsFiles, shutdown: CancellationToken) {
    let Ok(mut hangups) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; the certificate will not be reloaded");
        return;
    };
    loop {
        tokio::select! {
            received = hangups.recv() => if received.is_none() { return },
            () = shutdown.cancelled() => return,
        }
        match tls.reload_from_pem_file(&files.cert_file, &files.key_file).await {
            Ok(()) => tracing::info!(cert = %files.cert_file.display(), "tls certificate reloaded"),
            Err(error) => tracing::error!(
                cert = %files.cert_file.display(),
                error = %error,
                "cannot reload the tls certificate, still serving the previous one"
            ),
        }
    }
}

/// Applies log retention at start and then every `logs.retention_check_seconds`, until
/// shutdown.
async fn apply_retention_periodically(state: Arc<AppState>) {
    let logs = &state.config.logs;
    if logs.retention_days == 0 && logs.retention_days_by_service.is_empty() {
        return;
    }
    let mut interval = tokio::time::interval(std::time::Duration::from_secs(logs.retention_check_seconds));
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        let Ok(now) = vigil_proto::Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()) else {
            continue;
        };
        match state.log_store.apply_retention(now).await {
            Ok(0) => {}
            Ok(dropped) => tracing::info!(partitions = dropped, "retention applied"),
            Err(error) => tracing::warn!(error = %crate::telemetry::error_chain(&error), "retention failed"),
        }
    }
}

/// How often ended windows of repeated sign-in failures are written to the audit log.
const FAILURE_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How often expired sessions are deleted (at start, then this often).
const SESSION_PURGE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(600);

/// Sign-in housekeeping until shutdown: repeated failures whose window ended go to the audit
/// log as one entry each; expired and idle sessions are deleted.
async fn tidy_sign_ins_periodically(state: Arc<AppState>) {
    let mut interval = tokio::time::interval(FAILURE_FLUSH_INTERVAL);
    let mut last_purge: Option<std::time::Instant> = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            () = state.shutdown.cancelled() => return,
        }
        state.auth.failures().flush(&state.database, false).await;
        if last_purge.is_none_or(|at| at.elapsed() >= SESSION_PURGE_INTERVAL) {
            last_purge = Some(std::time::Instant::now());
            match state.auth.purge_expired_sessions().await {
                Ok(0) => {}
                Ok(purged) => tracing::info!(sessions = purged, "expired sessions deleted"),
                Err(error) => {
                    tracing::warn!(error = %crate::telemetry::error_chain(&error), "cannot delete expired sessions")
                }
            }
        }
    }
}

/// The API's routes, each with its access.
fn api_routes() -> ApiRouter<Arc<AppState>> {
    use routes::{
        account, admin, agents, alertmanager, alerts, dashboards, elasticsearch, health, integrations, logs, loki,
        metrics, otlp, rollouts, sso,
    };
    ApiRouter::new()
        .get(paths::HEALTHZ, Access::Public, health::healthz)
        .get(paths::READYZ, Access::Public, health::readyz)
        .get(paths::METRICS, Access::Public, health::metrics)
        // ingest
        .post(paths::LOGS, Access::Ingest, logs::ingest)
        .post(paths::ELASTICSEARCH_BULK, Access::Ingest, elasticsearch::bulk)
        .put(paths::ELASTICSEARCH_BULK, Access::Ingest, elasticsearch::bulk)
        .post(paths::ELASTICSEARCH_BULK_SLASH, Access::Ingest, elasticsearch::bulk)
        .put(paths::ELASTICSEARCH_BULK_SLASH, Access::Ingest, elasticsearch::bulk)
        .post(paths::ELASTICSEARCH_INDEX_BULK, Access::Ingest, elasticsearch::index_bulk)
        .put(paths::ELASTICSEARCH_INDEX_BULK, Access::Ingest, elasticsearch::index_bulk)
        .post(paths::ELASTICSEARCH_INDEX_BULK_SLASH, Access::Ingest, elasticsearch::index_bulk)
        .put(paths::ELASTICSEARCH_INDEX_BULK_SLASH, Access::Ingest, elasticsearch::index_bulk)
        .get(paths::ELASTICSEARCH_LICENSE, Access::Ingest, elasticsearch::license)
        .get(paths::ELASTICSEARCH_CLUSTER_HEALTH, Access::Ingest, elasticsearch::cluster_health)
        .post(paths::OTLP_LOGS, Access::Ingest, otlp::export)
        .post(paths::LOKI_PUSH, Access::Ingest, loki::push)
        .post(paths::METRICS_WRITE, Access::Ingest, metrics::write)
        .post(paths::AGENT_HEARTBEAT, Access::Ingest, agents::heartbeat)
        // an agent's deploy orders, for the caller its host is bound to
        .get(paths::AGENT_DEPLOYS, Access::Ingest, agents::deploy_orders)
        .post(paths::AGENT_DEPLOY, Access::Ingest, agents::deploy_report)
        // reads
        .get(paths::LOGS_SEARCH, Access::Read, logs::search)
        .get(paths::LOGS_HISTOGRAM, Access::Read, logs::histogram)
        .get(paths::LOGS_FIELDS, Access::Read, logs::fields)
        .get(paths::LOGS_CONTEXT, Access::Read, logs::context)
        .get(paths::LOGS_TAIL, Access::Read, logs::tail)
        .get(paths::METRICS_QUERY, Access::Read, metrics::query)
        .get(paths::METRICS_QUERY_RANGE, Access::Read, metrics::query_range)
        .get(paths::METRICS_LABELS, Access::Read, metrics::labels)
        .get(paths::METRICS_LABEL_VALUES, Access::Read, metrics::label_values)
        .get(paths::METRICS_SERIES, Access::Read, metrics::series)
        .get(paths::SD_TARGETS, Access::Read, metrics::sd_targets)
        .get(paths::AGENTS, Access::Read, agents::list)
        // dashboards: everyone reads them, deployers and administrators change them
        .get(paths::DASHBOARDS, Access::Read, dashboards::list)
        .post(paths::DASHBOARDS, Access::Deploy, dashboards::create)
        .post(paths::DASHBOARDS_IMPORT, Access::Deploy, dashboards::import)
        .get(paths::DASHBOARD, Access::Read, dashboards::get_one)
        .put(paths::DASHBOARD, Access::Deploy, dashboards::update)
        .delete(paths::DASHBOARD, Access::Deploy, dashboards::delete)
        .post(paths::DASHBOARD_DUPLICATE, Access::Deploy, dashboards::duplicate)
        .get(paths::DASHBOARD_EXPORT, Access::Read, dashboards::export)
        .get(paths::BUILTIN_DASHBOARDS, Access::Read, dashboards::builtin_list)
        .get(paths::BUILTIN_HOSTS, Access::Read, dashboards::builtin_hosts)
        .get(paths::BUILTIN_SERVICE, Access::Read, dashboards::builtin_service)
        .get(paths::UI_TAIL, Access::Read, logs::tail)
        // alerts: everyone reads them, deployers and administrators write rules and acknowledge
        .get(paths::ALERT_RULES, Access::Read, alerts::rules)
        .post(paths::ALERT_RULES, Access::Deploy, alerts::create_rule)
        .post(paths::ALERT_RULES_PREVIEW, Access::Read, alerts::preview_rule)
        .post(paths::ALERT_RULES_IMPORT, Access::Deploy, alerts::import_rules)
        .get(paths::ALERT_RULE, Access::Read, alerts::rule)
        .put(paths::ALERT_RULE, Access::Deploy, alerts::update_rule)
        .delete(paths::ALERT_RULE, Access::Deploy, alerts::delete_rule)
        .get(paths::ALERTS, Access::Read, alerts::list)
        .get(paths::ALERT_ANNOTATIONS, Access::Read, alerts::annotations)
        .get(paths::ALERT, Access::Read, alerts::detail)
        .post(paths::ALERT_ACKNOWLEDGE, Access::Deploy, alerts::acknowledge)
        .post(paths::CHANNEL_TEST, Access::Deploy, alerts::test_channel)
        .get(paths::SILENCES, Access::Read, alerts::silences)
        .post(paths::SILENCES, Access::Deploy, alerts::create_silence)
        .post(paths::SILENCE_PREVIEW, Access::Read, alerts::preview_silence)
        .get(paths::SILENCE, Access::Read, alerts::silence)
        .delete(paths::SILENCE, Access::Deploy, alerts::expire_silence)
        // rollouts: everyone reads them; deployers and administrators start, approve, abort
        // and roll back; administrators edit services (their environments name credentials,
        // approval rules and freeze windows, which deployers must not lift for themselves);
        // a CI's callback is public and believed only when signed
        .get(paths::SERVICES, Access::Read, rollouts::services)
        .post(paths::SERVICES, Access::Admin, rollouts::create_service)
        .get(paths::SERVICE, Access::Read, rollouts::service)
        .put(paths::SERVICE, Access::Admin, rollouts::update_service)
        .post(paths::SERVICE_ROLLBACK, Access::Deploy, rollouts::roll_back)
        .get(paths::ROLLOUTS, Access::Read, rollouts::list)
        .post(paths::ROLLOUTS, Access::Deploy, rollouts::start)
        .get(paths::DEPLOY_ANNOTATIONS, Access::Read, rollouts::annotations)
        .get(paths::ROLLOUT, Access::Read, rollouts::detail)
        .post(paths::ROLLOUT_APPROVE, Access::Deploy, rollouts::approve)
        .post(paths::ROLLOUT_ABORT, Access::Deploy, rollouts::abort)
        .post(paths::ROLLOUT_CALLBACK, Access::Public, rollouts::callback)
        // alerts from Prometheus and Alertmanager, and `amtool`
        .post(paths::ALERTMANAGER_WEBHOOK, Access::Ingest, alertmanager::alertmanager_webhook)
        .post(paths::AM_ALERTS, Access::Ingest, alertmanager::post_alerts)
        .get(paths::AM_ALERTS, Access::Read, alertmanager::get_alerts)
        .get(paths::AM_ALERT_GROUPS, Access::Read, alertmanager::get_groups)
        .get(paths::AM_SILENCES, Access::Read, alertmanager::get_silences)
        .post(paths::AM_SILENCES, Access::Deploy, alertmanager::post_silence)
        .get(paths::AM_SILENCE, Access::Read, alertmanager::get_silence)
        .delete(paths::AM_SILENCE, Access::Deploy, alertmanager::delete_silence)
        .get(paths::AM_STATUS, Access::Read, alertmanager::status)
        .get(paths::AM_RECEIVERS, Access::Read, alertmanager::receivers)
        // sign-in and the user's own account
        .post(paths::AUTH_LOGIN, Access::Public, account::login)
        .post(paths::AUTH_LOGOUT, Access::Public, account::logout)
        .get(paths::AUTH_OIDC_LOGIN, Access::Public, sso::begin)
        .get(paths::AUTH_OIDC_CALLBACK, Access::Public, sso::callback)
        .get(paths::AUTH_SESSION, Access::Account, account::session)
        .post(paths::AUTH_PASSWORD, Access::Account, account::change_password)
        .get(paths::AUTH_TOKENS, Access::Account, account::my_tokens)
        .post(paths::AUTH_TOKENS, Access::Account, account::create_my_token)
        .delete(paths::AUTH_TOKEN, Access::Account, account::revoke_my_token)
        // administration
        .get(paths::USERS, Access::Admin, admin::users)
        .post(paths::USERS, Access::Admin, admin::create_user)
        .get(paths::USER, Access::Admin, admin::user)
        .patch(paths::USER, Access::Admin, admin::update_user)
        .get(paths::TOKENS, Access::Admin, admin::tokens)
        .post(paths::TOKENS, Access::Admin, admin::create_service_token)
        .delete(paths::TOKEN, Access::Admin, admin::revoke_token)
        .get(paths::AUDIT, Access::Admin, admin::audit_log)
        .get(paths::INTEGRATIONS, Access::Admin, integrations::list)
        .post(paths::INTEGRATIONS, Access::Admin, integrations::create)
        .get(paths::INTEGRATION, Access::Admin, integrations::get_one)
        .put(paths::INTEGRATION, Access::Admin, integrations::update)
        .delete(paths::INTEGRATION, Access::Admin, integrations::delete)
}

/// Every route of the backend and the access table that guards them.
pub fn router(state: Arc<AppState>) -> Router {
    router_with_policy(state).0
}

/// The router, and the [`Policy`] its authorization middleware applies: the API's routes,
/// the UI's pages and server functions, and the static files.
pub fn router_with_policy(state: Arc<AppState>) -> (Router, Arc<Policy>) {
    let (api, mut policy) = api_routes().into_parts();
    let api = api.with_state(state.clone());

    let ui = &state.config.ui;
    let assets = Arc::new(routes::assets::Assets::load(&ui.site_root.join(&ui.pkg_dir), &ui.output_name));
    let leptos_options = LeptosOptions::builder()
        // The pages link the bundle under a name that holds its hash (see `routes::assets`).
        .output_name(assets.bundle_name())
        .site_root(ui.site_root.display().to_string())
        .site_pkg_dir(ui.pkg_dir.as_str())
        .build();
    let services = Services(Arc::new(BackendServices::new(state.clone())));
    let routes = generate_route_list(vigil_frontend::App);
    for listing in &routes {
        let access = if listing.path() == paths::LOGIN_PAGE { Access::Public } else { Access::Page };
        for method in listing.methods() {
            let method = match method {
                leptos_router::Method::Get => Method::GET,
                leptos_router::Method::Post => Method::POST,
                leptos_router::Method::Put => Method::PUT,
                leptos_router::Method::Delete => Method::DELETE,
                leptos_router::Method::Patch => Method::PATCH,
            };
            policy.insert(method, listing.path(), access);
        }
    }
    for (path, method) in leptos::server_fn::axum::server_fn_paths() {
        // A server function outside the access prefixes gets no entry and is refused.
        if let Some(access) = server_function_access(path) {
            policy.insert(method, path, access);
        }
    }
    let static_files = format!("/{}/{{*file}}", ui.pkg_dir);
    policy.insert(Method::GET, static_files.clone(), Access::Public);
    let policy = Arc::new(policy);

    let static_router: Router =
        Router::new().route(&static_files, axum::routing::get(routes::assets::serve)).with_state(assets);
    let not_found_page = leptos_axum::render_app_to_stream_with_context(
        {
            let services = services.clone();
            move || provide_context(services.clone())
        },
        {
            let leptos_options = leptos_options.clone();
            move || vigil_frontend::shell(leptos_options.clone())
        },
    );
    let pages: Router = Router::new()
        .leptos_routes_with_context(&leptos_options, routes, move || provide_context(services.clone()), {
            let leptos_options = leptos_options.clone();
            move || vigil_frontend::shell(leptos_options.clone())
        })
        .with_state(leptos_options);

    let router = api
        .merge(pages)
        .merge(static_router)
        // Browsers get a page inside the layout; API clients the JSON error.
        .fallback(move |request: axum::extract::Request| {
            let not_found_page = not_found_page.clone();
            async move {
                if routes::wants_html(&request) {
                    let mut page = not_found_page(request).await;
                    *page.status_mut() = axum::http::StatusCode::NOT_FOUND;
                    page
                } else {
                    routes::fallback(request.method().clone(), request.uri().clone()).await
                }
            }
        })
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn(routes::server_function_status))
        .layer(from_fn_with_state((state.clone(), policy.clone()), authorize))
        .layer(axum::middleware::from_fn(routes::elasticsearch::root_info))
        .layer(axum::middleware::from_fn(routes::security_headers))
        .layer(from_fn_with_state(state.metrics.clone(), track_http))
        .layer(tower_http::trace::TraceLayer::new_for_http());
    (router, policy)
}
