//! The agent's control side: its own `/metrics` (OpenMetrics text, so Prometheus and the agent's
//! own scraper read it), and heartbeats to the backend, which registers the agent on its first
//! one and shows it on the Agents page.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;
pub use vigil_proto::agents::SourceReport;
use vigil_proto::agents::{AgentHeartbeat, BufferReport};
use vigil_proto::paths;

use crate::buffer::Buffer;
use crate::config::{AgentConfig, BackendConfig};
use crate::sink::Shipper;
use crate::sources::{ScrapeStats, SourceStats};

/// Every counter of the agent, by source.
pub struct AgentStats {
    pub file_names: Vec<String>,
    pub file_services: Vec<String>,
    pub files: Vec<Arc<SourceStats>>,
    pub scrape_names: Vec<String>,
    pub scrapes: Vec<Arc<ScrapeStats>>,
    /// Host metric samples collected.
    pub host_samples: AtomicU64,
}

impl AgentStats {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            file_names: config.sources.iter().map(|source| source.name.clone()).collect(),
            file_services: config.sources.iter().map(|source| source.service.clone()).collect(),
            files: config.sources.iter().map(|_| Arc::default()).collect(),
            scrape_names: config.scrape.iter().map(|scrape| scrape.name.clone()).collect(),
            scrapes: config.scrape.iter().map(|_| Arc::default()).collect(),
            host_samples: AtomicU64::new(0),
        }
    }

    pub fn reports(&self) -> Vec<SourceReport> {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let files = self.file_names.iter().zip(&self.file_services).zip(&self.files).map(|((name, service), stats)| {
            SourceReport {
                name: name.clone(),
                kind: "file".to_owned(),
                service: Some(service.clone()),
                records: load(&stats.records),
                bytes: load(&stats.bytes),
                errors: load(&stats.parse_errors),
                active: load(&stats.files),
                last_error: None,
            }
        });
        let scrapes = self.scrape_names.iter().zip(&self.scrapes).map(|(name, stats)| SourceReport {
            name: name.clone(),
            kind: "scrape".to_owned(),
            service: None,
            records: load(&stats.samples),
            bytes: 0,
            errors: load(&stats.failures),
            active: load(&stats.up),
            last_error: stats.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        });
        files.chain(scrapes).collect()
    }
}

/// Serves `/metrics` and sends heartbeats.
pub struct Reporter {
    client: reqwest::Client,
    backend: BackendConfig,
    host: String,
    listen: String,
    interval: Duration,
    logs: Arc<Buffer>,
    metrics: Arc<Buffer>,
    shippers: Vec<Arc<Shipper>>,
    stats: Arc<AgentStats>,
}

impl Reporter {
    /// `client` is the agent's client to the backend ([`crate::sink::http_client`]).
    pub fn new(
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
            listen: config.control.listen.clone(),
            interval: Duration::from_secs(config.control.heartbeat_seconds),
            logs,
            metrics,
            shippers,
            stats,
        }
    }

    pub async fn run(self, shutdown: CancellationToken) {
        let this = Arc::new(self);
        let mut metrics_address = None;
        if !this.listen.is_empty() {
            match this.clone().serve(shutdown.clone()).await {
                Ok(address) => metrics_address = Some(address),
                Err(error) => {
                    tracing::error!(listen = %this.listen, error = %format!("{error:#}"), "cannot serve /metrics")
                }
            }
        }
        let mut tick = tokio::time::interval(this.interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => return,
            }
            let heartbeat = this.heartbeat(metrics_address.clone());
            let url = format!("{}{}", this.backend.url.trim_end_matches('/'), paths::AGENT_HEARTBEAT);
            let sent = this.client.post(&url).bearer_auth(this.backend.token.expose()).json(&heartbeat).send().await;
            match sent {
                Ok(response) if response.status().is_success() => {}
                Ok(response) => tracing::warn!(status = %response.status(), "heartbeat refused"),
                Err(error) => tracing::debug!(error = %error, "heartbeat not delivered"),
            }
        }
    }

    /// Starts the `/metrics` endpoint; returns the address it listens on.
    async fn serve(self: Arc<Self>, shutdown: CancellationToken) -> anyhow::Result<String> {
        let listener = tokio::net::TcpListener::bind(&self.listen).await.context("cannot bind")?;
        let local = listener.local_addr()?;
        // Listening on every interface: others reach it by the host's name.
        let address =
            if local.ip().is_unspecified() { format!("{}:{}", self.host, local.port()) } else { local.to_string() };
        let this = self.clone();
        let router = axum::Router::new().route(
            paths::METRICS,
            axum::routing::get(move || {
                let this = this.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        this.exposition(),
                    )
                }
            }),
        );
        tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(shutdown.cancelled_owned()).await;
            if let Err(error) = served {
                tracing::error!(error = %error, "the /metrics endpoint stopped");
            }
        });
        tracing::info!(address = %address, "serving /metrics");
        Ok(address)
    }

    pub fn heartbeat(&self, metrics_address: Option<String>) -> AgentHeartbeat {
        let (logs_bytes, logs_batches) = self.logs.depth();
        let (metrics_bytes, metrics_batches) = self.metrics.depth();
        let dropped = |buffer: &Buffer| buffer.stats.dropped_records.load(Ordering::Relaxed);
        let last_error = self.shippers.iter().find_map(|shipper| {
            shipper.stats.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
        });
        AgentHeartbeat {
            host: self.host.clone(),
            os: os_description(),
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

    /// The agent's counters in OpenMetrics text.
    pub fn exposition(&self) -> String {
        let mut text = String::new();
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, u64)>| {
            let _ = writeln!(text, "# TYPE {name} {kind}\n# HELP {name} {help}");
            let suffix = if kind == "counter" { "_total" } else { "" };
            for (labels, value) in samples {
                let _ = writeln!(text, "{name}{suffix}{labels} {value}");
            }
        };
        let per_file =
            |read: fn(&SourceStats) -> &AtomicU64| labelled("source", &self.stats.file_names, &self.stats.files, read);
        family("vigil_agent_file_lines", "counter", "Lines read from files.", per_file(|stats| &stats.lines));
        family("vigil_agent_file_read_bytes", "counter", "Bytes read from files.", per_file(|stats| &stats.bytes));
        family(
            "vigil_agent_file_records",
            "counter",
            "Records made from file lines.",
            per_file(|stats| &stats.records),
        );
        family(
            "vigil_agent_file_truncated_lines",
            "counter",
            "Lines cut at tail.max_line_bytes.",
            per_file(|stats| &stats.truncated),
        );
        family(
            "vigil_agent_file_split_lines",
            "counter",
            "Lines split at tail.max_line_bytes.",
            per_file(|stats| &stats.split),
        );
        family(
            "vigil_agent_file_invalid_utf8_lines",
            "counter",
            "Lines with invalid UTF-8 replaced.",
            per_file(|stats| &stats.invalid_utf8),
        );
        family(
            "vigil_agent_file_parse_errors",
            "counter",
            "Lines that did not have their source's format.",
            per_file(|stats| &stats.parse_errors),
        );
        family("vigil_agent_files", "gauge", "Files followed.", per_file(|stats| &stats.files));
        let per_scrape = |read: fn(&ScrapeStats) -> &AtomicU64| {
            labelled("target", &self.stats.scrape_names, &self.stats.scrapes, read)
        };
        family("vigil_agent_scrapes", "counter", "Scrapes done.", per_scrape(|stats| &stats.scrapes));
        family("vigil_agent_scrape_failures", "counter", "Scrapes that failed.", per_scrape(|stats| &stats.failures));
        family("vigil_agent_scrape_samples", "counter", "Samples scraped.", per_scrape(|stats| &stats.samples));
        family(
            "vigil_agent_host_samples",
            "counter",
            "Host metric samples collected.",
            vec![(String::new(), load(&self.stats.host_samples))],
        );
        let per_buffer = |read: &dyn Fn(&Buffer) -> u64| -> Vec<(String, u64)> {
            [("logs", &self.logs), ("metrics", &self.metrics)]
                .into_iter()
                .map(|(name, buffer)| (format!("{{buffer=\"{name}\"}}"), read(buffer)))
                .collect()
        };
        family(
            "vigil_agent_buffer_bytes",
            "gauge",
            "Bytes waiting in the disk buffer.",
            per_buffer(&|buffer| buffer.depth().0),
        );
        family(
            "vigil_agent_buffer_batches",
            "gauge",
            "Batches waiting in the disk buffer.",
            per_buffer(&|buffer| buffer.depth().1),
        );
        family(
            "vigil_agent_buffer_dropped_records",
            "counter",
            "Records dropped by a full buffer (when_full = drop_oldest).",
            per_buffer(&|buffer| load(&buffer.stats.dropped_records)),
        );
        family(
            "vigil_agent_buffer_blocked_pushes",
            "counter",
            "Times a source waited for a full buffer.",
            per_buffer(&|buffer| load(&buffer.stats.blocked_pushes)),
        );
        let per_shipper = |read: fn(&crate::sink::ShipperStats) -> &AtomicU64| -> Vec<(String, u64)> {
            ["logs", "metrics"]
                .into_iter()
                .zip(&self.shippers)
                .map(|(name, shipper)| (format!("{{buffer=\"{name}\"}}"), load(read(&shipper.stats))))
                .collect()
        };
        family(
            "vigil_agent_shipped_batches",
            "counter",
            "Batches the backend acknowledged.",
            per_shipper(|stats| &stats.batches),
        );
        family(
            "vigil_agent_shipped_records",
            "counter",
            "Records and samples the backend acknowledged.",
            per_shipper(|stats| &stats.records),
        );
        family("vigil_agent_ship_retries", "counter", "Sends retried.", per_shipper(|stats| &stats.retries));
        family(
            "vigil_agent_rejected_records",
            "counter",
            "Records the backend refused (dropped).",
            per_shipper(|stats| &stats.rejected_records),
        );
        text.push_str("# EOF\n");
        text
    }
}

/// One sample per named item, labelled `{label="<name>"}`.
fn labelled<T>(label: &str, names: &[String], items: &[Arc<T>], read: fn(&T) -> &AtomicU64) -> Vec<(String, u64)> {
    names
        .iter()
        .zip(items)
        .map(|(name, item)| (format!("{{{label}=\"{}\"}}", escape(name)), read(item).load(Ordering::Relaxed)))
        .collect()
}

fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// `Debian GNU/Linux 13 (trixie), Linux 6.12.0`.
pub fn os_description() -> String {
    let release = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let name = release
        .lines()
        .find_map(|line| line.strip_prefix("PRETTY_NAME="))
        .map(|name| name.trim_matches('"').to_owned())
        .unwrap_or_else(|| std::env::consts::OS.to_owned());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{name}, {} {}", std::env::consts::OS, kernel.trim()).trim_end().to_owned()
}
