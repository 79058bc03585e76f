//! Assembly of the server: [`Application::build`] opens the stores and binds the listener,
//! [`router`] wires every route, [`Application::run_until_stopped`] serves until shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{get, post};
use leptos::prelude::*;
use leptos_axum::{LeptosRoutes, generate_route_list};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::services::ServeDir;
use vigil_frontend::services::Services;
use vigil_proto::paths;

use crate::auth::{Scope, require_scope};
use crate::config::Config;
use crate::logs::{LogStore, TantivyLogStore};
use crate::routes;
use crate::store::Database;
use crate::telemetry::{Metrics, track_http};
use crate::ui::BackendServices;

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub database: Database,
    pub log_store: Arc<dyn LogStore>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server stops; long-lived connections (live tails) end with it.
    pub shutdown: CancellationToken,
}

pub struct Application {
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("cannot create the data directory {0}")]
    DataDir(String, #[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot open the log store")]
    LogStore(#[from] crate::logs::LogStoreError),
    #[error("cannot listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
}

impl Application {
    pub async fn build(config: Config) -> Result<Self, BuildError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|error| BuildError::DataDir(config.data_dir.display().to_string(), error))?;
        let metrics = Metrics::new();
        let database = Database::connect(config.database_url.expose(), config.database_max_connections).await?;
        let log_store = TantivyLogStore::open(
            &config.data_dir.join("logs"),
            config.logs.writer_memory_bytes,
            config.logs.writer_queue_batches,
            config.logs.retention(),
            metrics.clone(),
        )?;
        let listener =
            TcpListener::bind(config.listen).await.map_err(|error| BuildError::Bind(config.listen, error))?;
        let shutdown = CancellationToken::new();
        let state = Arc::new(AppState {
            config,
            database,
            log_store: Arc::new(log_store),
            metrics,
            shutdown: shutdown.clone(),
        });
        Ok(Self { listener, state, shutdown })
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
        let address = self.listener.local_addr()?;
        let app = router(state.clone());
        tracing::info!(address = %address, "vigil listening");
        let server = axum::serve(self.listener, app).with_graceful_shutdown({
            let shutdown = shutdown.clone();
            async move { shutdown.cancelled().await }
        });
        let served = tokio::select! {
            result = server => result,
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!(grace_seconds = grace.as_secs(), "requests still running after the grace period, stopping anyway");
                Ok(())
            }
        };
        state.log_store.close().await;
        state.database.close().await;
        tracing::info!("vigil stopped");
        served
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
            Err(error) => tracing::warn!(error = %crate::error::error_chain(&error), "retention failed"),
        }
    }
}

/// Every route of the backend.
pub fn router(state: Arc<AppState>) -> Router {
    let ingest = Router::new()
        .route(paths::LOGS, post(routes::logs::ingest))
        .route(paths::ELASTICSEARCH_BULK, post(routes::elasticsearch::bulk))
        .route(paths::ELASTICSEARCH_INDEX_BULK, post(routes::elasticsearch::index_bulk))
        .route(paths::OTLP_LOGS, post(routes::otlp::export))
        .route(paths::LOKI_PUSH, post(routes::loki::push))
        .route_layer(from_fn_with_state((state.clone(), Scope::Ingest), require_scope));
    let read = Router::new()
        .route(paths::LOGS_SEARCH, get(routes::logs::search))
        .route(paths::LOGS_HISTOGRAM, get(routes::logs::histogram))
        .route(paths::LOGS_FIELDS, get(routes::logs::fields))
        .route(paths::LOGS_CONTEXT, get(routes::logs::context))
        .route(paths::LOGS_TAIL, get(routes::logs::tail))
        .route_layer(from_fn_with_state((state.clone(), Scope::Read), require_scope));
    let api = Router::new()
        .route(paths::HEALTHZ, get(routes::health::healthz))
        .route(paths::READYZ, get(routes::health::readyz))
        .route(paths::METRICS, get(routes::health::metrics))
        // The UI's routes are not authenticated until users and sessions exist, like its
        // server functions.
        .route(paths::UI_TAIL, get(routes::logs::tail))
        .merge(ingest)
        .merge(read)
        .with_state(state.clone());

    let ui = &state.config.ui;
    let leptos_options = LeptosOptions::builder()
        .output_name(ui.output_name.as_str())
        .site_root(ui.site_root.display().to_string())
        .site_pkg_dir(ui.pkg_dir.as_str())
        .build();
    let services = Services(Arc::new(BackendServices::new(state.clone())));
    let routes = generate_route_list(vigil_frontend::App);
    let pkg = ServeDir::new(ui.site_root.join(&ui.pkg_dir));
    let pages: Router = Router::new()
        .leptos_routes_with_context(&leptos_options, routes, move || provide_context(services.clone()), {
            let leptos_options = leptos_options.clone();
            move || vigil_frontend::shell(leptos_options.clone())
        })
        .with_state(leptos_options);

    api.merge(pages)
        .nest_service(&format!("/{}", ui.pkg_dir), pkg)
        .fallback(routes::fallback)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::middleware::from_fn(routes::elasticsearch::root_info))
        .layer(from_fn_with_state(state.metrics.clone(), track_http))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}
