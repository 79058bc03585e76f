//! `vigil-agent`: runs on each host, tails log files, scrapes Prometheus endpoints and reads
//! the host's metrics, and ships everything to the Vigil backend at least once.
//!
//! The path of a line: a file source (`sources::file`) reads it, parses it (`parse`) and
//! batches it; the batch, compressed, goes into the logs disk buffer ([`buffer`]) with the file
//! positions it reaches; a [`sink::Shipper`] posts it to the backend and, once acknowledged,
//! advances the checkpoint (`checkpoint`). Metric samples take the same road through their
//! own buffer, so that a Prometheus outage behind the backend never holds logs back.
//!
//! Beside that road: [`stats`] counts, `self_metrics` serves the counts as the agent's own
//! `/metrics`, and `heartbeat` reports them to the backend, which lists the agent. With a
//! `[deploy]` section, `deploy` runs the deploy orders of the agent rollout provider: the
//! command of this configuration, for a version its pattern accepts.

pub mod buffer;
pub(crate) mod checkpoint;
pub(crate) mod clock;
pub mod config;
pub(crate) mod deploy;
pub(crate) mod error_chain;
pub mod exposition;
pub(crate) mod heartbeat;
pub(crate) mod operating_system;
pub(crate) mod parse;
pub(crate) mod self_metrics;
pub mod sink;
pub mod sources;
pub mod stats;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use vigil_proto::paths;

use crate::buffer::{Buffer, BufferError};
use crate::config::AgentConfig;
use crate::error_chain::ErrorChain;
use crate::heartbeat::Heartbeats;
use crate::self_metrics::SelfMetrics;
use crate::sink::{BuildClientError, Shipper};
use crate::sources::file::{FileSource, FileSourceError, SeenFiles};
use crate::stats::AgentStats;

/// A file not followed for this long leaves the checkpoint.
const FORGET_FILES_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long sources may take to push their last batch at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// Why the agent cannot start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("cannot create data_dir {}", .path.display())]
    CreateDataDirectory { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error(transparent)]
    HttpClient(#[from] BuildClientError),
    #[error("source {name:?}")]
    FileSource { name: String, source: FileSourceError },
    #[error("cannot start a tailer thread")]
    SpawnTailer(#[source] std::io::Error),
}

/// A started agent: its buffers are open and its file sources have opened the files that exist
/// (lines appended from now on are shipped) and follow them;
/// [`Agent::run`] ships until shutdown.
pub struct Agent {
    config: AgentConfig,
    /// The one client to the backend (shipping and heartbeats).
    client: reqwest::Client,
    tailers: Vec<std::thread::JoinHandle<()>>,
    logs: Arc<Buffer>,
    metrics: Arc<Buffer>,
    shippers: Vec<Arc<Shipper>>,
    seen: Arc<SeenFiles>,
    stats: Arc<AgentStats>,
    shutdown: CancellationToken,
}

/// Opens the buffers and starts every file source's thread.
pub fn start(config: AgentConfig, shutdown: CancellationToken) -> Result<Agent, AgentError> {
    let host = config.host();
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|source| AgentError::CreateDataDirectory { path: config.data_dir.clone(), source })?;
    let logs = Arc::new(Buffer::open(&config.data_dir.join("logs"), config.buffer.max_bytes, config.buffer.when_full)?);
    let metrics =
        Arc::new(Buffer::open(&config.data_dir.join("metrics"), config.buffer.max_bytes, config.buffer.when_full)?);
    let client = sink::http_client(&config.backend)?;
    let logs_shipper =
        Arc::new(Shipper::new(client.clone(), &config.backend, paths::LOGS, "application/x-ndjson", logs.clone()));
    let metrics_shipper = Arc::new(Shipper::new(
        client.clone(),
        &config.backend,
        paths::METRICS_WRITE,
        "application/json",
        metrics.clone(),
    ));
    let seen = Arc::new(SeenFiles::default());
    let stats = Arc::new(AgentStats::new(&config));
    let mut tailers = Vec::new();
    for (source, source_stats) in config.sources.iter().zip(&stats.files) {
        let file_source = FileSource::new(
            source.clone(),
            &host,
            config.tail.clone(),
            config.batch.clone(),
            logs.clone(),
            source_stats.clone(),
            seen.clone(),
        )
        .and_then(FileSource::start)
        .map_err(|error| AgentError::FileSource { name: source.name.clone(), source: error })?;
        let shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tail-{}", source.name))
            .spawn(move || file_source.run(&shutdown))
            .map_err(AgentError::SpawnTailer)?;
        tailers.push(thread);
    }
    tracing::info!(
        sources = config.sources.len(),
        scrape = config.scrape.len(),
        host_metrics = config.host_metrics.enabled,
        backend = %config.backend.url,
        "vigil-agent running"
    );
    let shippers = vec![logs_shipper, metrics_shipper];
    Ok(Agent { config, client, tailers, logs, metrics, shippers, seen, stats, shutdown })
}

impl Agent {
    /// What the agent counts, shared with its `/metrics` endpoint and heartbeats.
    pub fn stats(&self) -> Arc<AgentStats> {
        self.stats.clone()
    }

    /// Ships, scrapes and reports until `shutdown` is cancelled, then lets the sources push
    /// their last batch and closes the buffers.
    pub async fn run(self) {
        let Self { config, client, tailers, logs, metrics, shippers, seen, stats, shutdown } = self;
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for shipper in &shippers {
            let shipper = shipper.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(shipper.run(shutdown));
        }
        let host = config.host();
        for (scrape, scrape_stats) in config.scrape.iter().zip(&stats.scrapes) {
            match sources::scrape::Target::new(scrape.clone(), metrics.clone(), scrape_stats.clone()) {
                Ok(target) => {
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move { target.run(shutdown).await });
                }
                Err(error) => tracing::error!(target = %scrape.name, error = %ErrorChain(&error), "cannot scrape"),
            }
        }
        if config.host_metrics.enabled {
            let host_metrics =
                sources::host::HostMetrics::new(config.host_metrics.clone(), &host, metrics.clone(), stats.clone());
            let shutdown = shutdown.clone();
            tasks.spawn(async move { host_metrics.run(shutdown).await });
        }
        match deploy::Deployer::new(&config, client.clone()) {
            Ok(Some(deployer)) => {
                let shutdown = shutdown.clone();
                tasks.spawn(async move { deployer.run(shutdown).await });
            }
            Ok(None) => {}
            Err(error) => tracing::error!(error = %ErrorChain(&error), "cannot deploy"),
        }
        let self_metrics = Arc::new(SelfMetrics::new(logs.clone(), metrics.clone(), shippers.clone(), stats.clone()));
        let heartbeats =
            Heartbeats::new(&config, client, logs.clone(), metrics.clone(), shippers.clone(), stats.clone());
        {
            let listen = config.control.listen.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                // Served first: heartbeats announce where, for the backend's service discovery.
                let mut metrics_address = None;
                if !listen.is_empty() {
                    match self_metrics.serve(&listen, &host, shutdown.clone()).await {
                        Ok(address) => metrics_address = Some(address),
                        Err(error) => {
                            tracing::error!(listen = %listen, error = %ErrorChain(&error), "cannot serve /metrics")
                        }
                    }
                }
                heartbeats.run(metrics_address, shutdown).await;
            });
        }
        {
            let logs = logs.clone();
            let shutdown = shutdown.clone();
            tasks.spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(600));
                loop {
                    tokio::select! {
                        _ = tick.tick() => logs.forget_files(|fingerprint| seen.recent(fingerprint, FORGET_FILES_AFTER, started)),
                        () = shutdown.cancelled() => return,
                    }
                }
            });
        }
        shutdown.cancelled().await;
        let joined = tokio::task::spawn_blocking(move || {
            for tailer in tailers {
                let _ = tailer.join();
            }
        });
        if tokio::time::timeout(SHUTDOWN_GRACE, joined).await.is_err() {
            tracing::warn!("sources did not finish in time; their last lines are read again on the next start");
        }
        logs.close();
        metrics.close();
        while tasks.join_next().await.is_some() {}
        tracing::info!("vigil-agent stopped");
    }
}

/// Starts the agent and runs it until `shutdown` is cancelled.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> Result<(), AgentError> {
    start(config, shutdown)?.run().await;
    Ok(())
}
