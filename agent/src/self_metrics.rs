//! The agent's own `/metrics` page: its counters in OpenMetrics text, so that Prometheus and
//! the agent's own scraper read it. Serving only; what is counted lives in [`crate::stats`],
//! the buffers and the shippers, and the address is announced by [`crate::heartbeat`].

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_util::sync::CancellationToken;
use vigil_proto::paths;

use crate::buffer::Buffer;
use crate::sink::{Shipper, ShipperStats};
use crate::stats::{AgentStats, ScrapeStats, SourceStats};

/// Why `/metrics` is not served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ServeMetricsError {
    #[error("cannot bind")]
    Bind(#[source] std::io::Error),
    #[error("cannot read the address it is bound to")]
    LocalAddress(#[source] std::io::Error),
}

/// Everything the page shows: the agent's counters, its two buffers and their shippers
/// (logs first, then metrics).
pub(crate) struct SelfMetrics {
    logs: Arc<Buffer>,
    metrics: Arc<Buffer>,
    shippers: Vec<Arc<Shipper>>,
    stats: Arc<AgentStats>,
}

impl SelfMetrics {
    pub(crate) fn new(
        logs: Arc<Buffer>,
        metrics: Arc<Buffer>,
        shippers: Vec<Arc<Shipper>>,
        stats: Arc<AgentStats>,
    ) -> Self {
        Self { logs, metrics, shippers, stats }
    }

    /// Starts the `/metrics` endpoint on `listen` until `shutdown`; returns the address others
    /// reach it at (by `host`'s name when it listens on every interface).
    pub(crate) async fn serve(
        self: Arc<Self>,
        listen: &str,
        host: &str,
        shutdown: CancellationToken,
    ) -> Result<String, ServeMetricsError> {
        let listener = tokio::net::TcpListener::bind(listen).await.map_err(ServeMetricsError::Bind)?;
        let local = listener.local_addr().map_err(ServeMetricsError::LocalAddress)?;
        // Listening on every interface: others reach it by the host's name.
        let address = if local.ip().is_unspecified() { format!("{host}:{}", local.port()) } else { local.to_string() };
        let router = axum::Router::new().route(
            paths::METRICS,
            axum::routing::get(move || {
                let this = self.clone();
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

    /// The agent's counters in OpenMetrics text.
    pub(crate) fn exposition(&self) -> String {
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
        let per_shipper = |read: fn(&ShipperStats) -> &AtomicU64| -> Vec<(String, u64)> {
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
        .map(|(name, item)| {
            (format!("{{{label}=\"{}\"}}", escape_label_value(name)), read(item).load(Ordering::Relaxed))
        })
        .collect()
}

/// A label value as the exposition formats quote it: backslash, double quote and newline
/// escaped.
fn escape_label_value(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}
