//! Every metric the backend exports about itself, by name, in one place.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    /// The route pattern, never the raw path, so that cardinality stays bounded.
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_request_duration: Family<RouteLabels, Histogram>,
    pub log_batches_rejected: Counter,
    /// The log store's own: records made durable, commits, their time, write-ahead log syncs.
    log_store: vigil_logstore::StoreMetrics,
    /// Bytes the ingest requests in flight hold (see `ingest::budget`).
    pub ingest_memory_bytes: Gauge,
    /// Times an ingest request waited for room.
    pub ingest_waits: Counter,
    pub remote_write_samples_sent: Counter,
    pub remote_write_samples_failed: Counter,
    pub remote_write_samples_dropped: Counter,
    /// Rule evaluations, those that failed, how late each started after its slot, how long each took.
    pub alert_evaluations: Counter,
    pub alert_evaluation_failures: Counter,
    pub alert_evaluation_lag: Histogram,
    pub alert_evaluation_duration: Histogram,
    /// Notifications delivered, and attempts that failed.
    pub alert_notifications_sent: Counter,
    pub alert_notification_failures: Counter,
}

impl Metrics {
    /// The log store's handles, sharing their values with these.
    pub fn log_store(&self) -> vigil_logstore::StoreMetrics {
        self.log_store.clone()
    }

    pub fn new() -> Arc<Self> {
        let mut registry = Registry::with_prefix("vigil");
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered", http_requests.clone());
        let http_request_duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request",
            http_request_duration.clone(),
        );
        let log_store = vigil_logstore::StoreMetrics::unregistered();
        registry.register("log_records_ingested", "Log records made durable", log_store.records_ingested.clone());
        let log_batches_rejected = Counter::default();
        registry.register(
            "log_batches_rejected",
            "Ingest batches refused as invalid or over a limit",
            log_batches_rejected.clone(),
        );
        registry.register("log_commits", "Commits of the log index", log_store.commits.clone());
        registry.register(
            "log_commit_duration_seconds",
            "Time to commit the log index",
            log_store.commit_duration.clone(),
        );
        registry.register(
            "log_wal_sync_duration_seconds",
            "Time to write and sync a group of batches to the write-ahead log",
            log_store.wal_sync_duration.clone(),
        );
        let ingest_memory_bytes = Gauge::default();
        registry.register(
            "ingest_memory_bytes",
            "Memory held by ingest requests in flight, within logs.ingest_memory_bytes",
            ingest_memory_bytes.clone(),
        );
        let ingest_waits = Counter::default();
        registry.register("ingest_waits", "Times an ingest request waited for room", ingest_waits.clone());
        let remote_write_samples_sent = Counter::default();
        registry.register(
            "remote_write_samples_sent",
            "Samples the remote-write receiver accepted",
            remote_write_samples_sent.clone(),
        );
        let remote_write_samples_failed = Counter::default();
        registry.register(
            "remote_write_samples_failed",
            "Samples the receiver refused or did not accept in time (the sender was told)",
            remote_write_samples_failed.clone(),
        );
        let remote_write_samples_dropped = Counter::default();
        registry.register(
            "remote_write_samples_dropped",
            "Samples refused at ingest because too many batches were waiting for the receiver",
            remote_write_samples_dropped.clone(),
        );
        let alert_evaluations = Counter::default();
        registry.register("alert_rule_evaluations", "Alert rule evaluations", alert_evaluations.clone());
        let alert_evaluation_failures = Counter::default();
        registry.register(
            "alert_rule_evaluation_failures",
            "Alert rule evaluations whose query failed",
            alert_evaluation_failures.clone(),
        );
        let alert_evaluation_lag = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "alert_rule_evaluation_lag_seconds",
            "How late an evaluation started after its slot",
            alert_evaluation_lag.clone(),
        );
        let alert_evaluation_duration = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "alert_rule_evaluation_duration_seconds",
            "Time to evaluate a rule and write what changed",
            alert_evaluation_duration.clone(),
        );
        let alert_notifications_sent = Counter::default();
        registry.register(
            "alert_notifications_sent",
            "Notifications a channel accepted",
            alert_notifications_sent.clone(),
        );
        let alert_notification_failures = Counter::default();
        registry.register(
            "alert_notification_failures",
            "Notification attempts that failed (retried or given up)",
            alert_notification_failures.clone(),
        );
        Arc::new(Self {
            registry,
            http_requests,
            http_request_duration,
            log_batches_rejected,
            log_store,
            ingest_memory_bytes,
            ingest_waits,
            remote_write_samples_sent,
            remote_write_samples_failed,
            remote_write_samples_dropped,
            alert_evaluations,
            alert_evaluation_failures,
            alert_evaluation_lag,
            alert_evaluation_duration,
            alert_notifications_sent,
            alert_notification_failures,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Middleware counting and timing every request by route pattern.
pub async fn track_http(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().as_str().to_owned();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    let response = next.run(request).await;
    metrics
        .http_requests
        .get_or_create(&HttpLabels { method, route: route.clone(), status: response.status().as_u16() })
        .inc();
    metrics.http_request_duration.get_or_create(&RouteLabels { route }).observe(started.elapsed().as_secs_f64());
    response
}
