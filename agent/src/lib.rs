//! `vigil-agent`: runs on each host, tails log files and ships their new lines to the Vigil
//! backend in batches, retrying until the backend has acknowledged them.
//!
//! Not yet here (see the agent issue): checkpoints across restarts, a disk buffer, parsing,
//! Prometheus scraping and host metrics.

pub mod config;
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

/// A started agent: its sources have opened the files that exist (so that lines appended from
/// now on are shipped) and its tailer threads run; [`Agent::run`] ships until shutdown.
pub struct Agent {
    tailers: Vec<std::thread::JoinHandle<()>>,
    receiver: mpsc::Receiver<vigil_proto::LogRecord>,
    sink: HttpSink,
    shutdown: CancellationToken,
}

/// Opens every source and starts its tailer thread.
pub fn start(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<Agent> {
    let (sender, receiver) = mpsc::channel(CHANNEL_RECORDS);
    let host = config.host();
    let sink = HttpSink::new(&config.backend, config.batch.clone())?;
    let mut tailers = Vec::new();
    for source in &config.sources {
        let started = FileSource::new(source.clone(), host.clone(), config.tail.clone())
            .with_context(|| format!("source {:?}", source.name))?
            .start();
        let sender = sender.clone();
        let shutdown = shutdown.clone();
        let thread = std::thread::Builder::new()
            .name(format!("tail-{}", source.name))
            .spawn(move || started.run(&sender, &shutdown))
            .context("cannot start a tailer thread")?;
        tailers.push(thread);
    }
    tracing::info!(sources = config.sources.len(), backend = %config.backend.url, "vigil-agent running");
    Ok(Agent { tailers, receiver, sink, shutdown })
}

impl Agent {
    /// Ships until `shutdown` is cancelled, then waits for the tailers.
    pub async fn run(self) {
        let Self { tailers, receiver, sink, shutdown } = self;
        sink.run(receiver, shutdown).await;
        for tailer in tailers {
            let _ = tokio::task::spawn_blocking(move || tailer.join()).await;
        }
        tracing::info!("vigil-agent stopped");
    }
}

/// Starts the agent and runs it until `shutdown` is cancelled.
pub async fn run(config: AgentConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    start(config, shutdown)?.run().await;
    Ok(())
}
