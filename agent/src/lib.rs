//! `vigil-agent`: runs on each host, tails log files and ships their new lines to the Vigil
//! backend in batches, retrying until the backend has acknowledged them.
//!
//! Not yet here (see the agent issue): checkpoints across restarts, a disk buffer, parsing,
//! Prometheus scraping and host metrics.

pub mod config;
pub mod level;
pub mod sink;
pub mod sources;

use anyhow::Context;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::AgentConfig;
use crate::sink::HttpSink;
use crate::sources::file::FileSource;

/// Lines read but not yet batched; a full channel makes the tailers wait (backpressure).
const CHANNEL_RECORDS: usize = 8192;

/// Runs the agent until `shutdown` is cancelled: one tailer thread per file source, one sink.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (sender, receiver) = mpsc::channel(CHANNEL_RECORDS);
    let host = config.host();
    let mut tailers = Vec::new();
    for source in &config.sources {
        let file_source = FileSource::new(source.clone(), host.clone(), config.tail.clone())
            .with_context(|| format!("source {:?}", source.name))?;
        let sender = sender.clone();
        let shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tail-{}", source.name))
            .spawn(move || file_source.run(&sender, &shutdown))
            .context("cannot start a tailer thread")?;
        tailers.push(thread);
    }
    drop(sender);
    let sink = HttpSink::new(&config.backend, config.batch.clone())?;
    tracing::info!(sources = config.sources.len(), backend = %config.backend.url, "vigil-agent running");
    sink.run(receiver, shutdown.clone()).await;
    for tailer in tailers {
        let _ = tokio::task::spawn_blocking(move || tailer.join()).await;
    }
    tracing::info!("vigil-agent stopped");
    Ok(())
}
