//! What every handler and the UI's services reach: the parts start-up builds, held together.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::agents::Registrations;
use crate::auth::Auth;
use crate::config::Config;
use crate::ingest::budget::IngestBudget;
use crate::prometheus::query::Prometheus;
use crate::prometheus::remote_write::RemoteWriter;
use crate::secrets::SecretBox;
use crate::store::Database;
use crate::tail::TailSlots;
use crate::telemetry::Metrics;
use vigil_logstore::LogStore;

/// What every handler can reach.
pub struct AppState {
    pub config: Config,
    pub database: Database,
    pub auth: Auth,
    /// Seals integration secrets at rest.
    pub secrets: SecretBox,
    pub log_store: Arc<dyn LogStore>,
    /// Sends samples to Prometheus.
    pub remote_writer: RemoteWriter,
    /// Answers PromQL.
    pub prometheus: Prometheus,
    /// Sends notifications (webhooks, Slack, PagerDuty, Alertmanager) and test notifications.
    pub notify_http: reqwest::Client,
    /// Calls the rollouts' CI/CD providers; follows no redirect (a login's session cookie comes
    /// with its redirect).
    pub provider_http: reqwest::Client,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server stops; long-lived connections (live tails) end with it.
    pub shutdown: CancellationToken,
    /// The open live tails, bounded per caller.
    pub tails: Arc<TailSlots>,
    /// How many new hosts each caller registered lately.
    pub agent_registrations: Registrations,
    /// The memory of ingest requests in flight.
    pub ingest_budget: IngestBudget,
    /// When this process started (Unix milliseconds).
    pub started_at_millis: i64,
}
