//! Heartbeats to the backend: every `control.heartbeat_seconds` the agent reports its sources,
//! buffers and shipping; the backend registers the agent on its first one and shows it on the
//! Agents page. Reporting only: the backend sends nothing back here.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use vigil_proto::agents::{AgentHeartbeat, BufferReport};
use vigil_proto::paths;

use crate::buffer::Buffer;
use crate::config::{AgentConfig, BackendConfig};
use crate::sink::Shipper;
use crate::stats::AgentStats;

/// Sends heartbeats describing the agent's buffers (logs, then metrics), their shippers and
/// its counters.
pub(crate) struct Heartbeats {
    client: reqwest::Client,
    backend: BackendConfig,
    host: String,
    interval: Duration,
    logs: Arc<Buffer>,
    metrics: Arc<Buffer>,
    shippers: Vec<Arc<Shipper>>,
    stats: Arc<AgentStats>,
}

impl Heartbeats {
    /// `client` is the agent's client to the backend ([`crate::sink::http_client`]).
    pub(crate) fn new(
        config: &AgentConfig,
        client: reqwest::Client,
        logs: Arc<Buffer>,
        metrics: Arc<Buffer>,
        shippers: Vec<Arc<Shipper>>,
        stats: Arc<AgentStats>,
    ) -> Self {
        Self {
            client,
            backend: config.backend.clone(),
            host: config.host(),
            interval: Duration::from_secs(config.control.heartbeat_seconds),
            logs,
            metrics,
            shippers,
            stats,
        }
    }

    /// Sends a heartbeat every interval (the first at once) until `shutdown`; each announces
    /// `metrics_address`, where the agent serves its `/metrics`, for the backend's service
    /// discovery. An undelivered heartbeat is not retried: the next one follows soon.
    pub(crate) async fn run(self, metrics_address: Option<String>, shutdown: CancellationToken) {
        let url = format!("{}{}", self.backend.url.trim_end_matches('/'), paths::AGENT_HEARTBEAT);
        let mut tick = tokio::time::interval(self.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let heartbeat = self.heartbeat(metrics_address.clone());
            let sent = self.client.post(&url).bearer_auth(self.backend.token.expose()).json(&heartbeat).send().await;
            match sent {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => tracing::warn!(status = %response.status(), "heartbeat refused"),
                Err(error) => tracing::debug!(error = %error, "heartbeat not delivered"),
            }
        }
    }

    fn heartbeat(&self, metrics_address: Option<String>) -> AgentHeartbeat {
        let (logs_bytes, logs_batches) = self.logs.depth();
        let (metrics_bytes, metrics_batches) = self.metrics.depth();
        let dropped = |buffer: &Buffer| buffer.stats.dropped_records.load(Ordering::Relaxed);
        let last_error = self.shippers.iter().find_map(|shipper| {
            shipper.stats.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
        });
        AgentHeartbeat {
            host: self.host.clone(),
            os: crate::operating_system::description(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            interval_seconds: self.interval.as_secs(),
            metrics_address,
            sources: self.stats.reports(),
            buffer: BufferReport {
                logs_bytes,
                logs_batches,
                metrics_bytes,
                metrics_batches,
                max_bytes: self.logs.max_bytes(),
                dropped_records: dropped(&self.logs) + dropped(&self.metrics),
            },
            shipped_records: self.shippers.iter().map(|shipper| shipper.stats.records.load(Ordering::Relaxed)).sum(),
            last_error,
        }
    }
}
