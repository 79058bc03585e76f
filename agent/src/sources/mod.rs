//! What the agent collects: log files, Prometheus endpoints, and the host's own metrics.

pub mod file;
pub mod host;
pub mod scrape;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use crate::checkpoint::Fingerprint;

/// A file source's counters, for the agent's `/metrics` and heartbeats.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub lines: AtomicU64,
    pub records: AtomicU64,
    pub batches: AtomicU64,
    pub truncated: AtomicU64,
    pub split: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub parse_errors: AtomicU64,
}

/// When each file (by fingerprint) was last followed by any source, so that the checkpoint
/// forgets files that are gone.
#[derive(Debug, Default)]
pub struct SeenFiles {
    seen: Mutex<HashMap<Fingerprint, Instant>>,
}

impl SeenFiles {
    pub fn touch(&self, fingerprints: impl IntoIterator<Item = Fingerprint>) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for fingerprint in fingerprints {
            seen.insert(fingerprint, now);
        }
    }

    /// Whether `fingerprint` was followed within `window` (or is unknown to this run, which
    /// started less than `window` ago: `started`).
    pub fn recent(&self, fingerprint: &Fingerprint, window: Duration, started: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match seen.get(fingerprint) {
            Some(at) => at.elapsed() < window,
            None => started.elapsed() < window,
        }
    }
}

/// A scrape target's counters.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub scrapes: AtomicU64,
    pub failures: AtomicU64,
    pub samples: AtomicU64,
    /// 1 when the last scrape succeeded.
    pub up: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

/// Pushes metric series into the metrics buffer as one zstd-compressed `MetricBatch` (JSON).
/// Blocks (on the blocking pool) while the buffer is full and `when_full` is `block`.
pub async fn push_metrics(
    buffer: &std::sync::Arc<crate::buffer::Buffer>,
    series: Vec<vigil_proto::metrics::SeriesSamples>,
) -> anyhow::Result<()> {
    if series.is_empty() {
        return Ok(());
    }
    let samples: usize = series.iter().map(|series| series.samples.len()).sum();
    let batch = vigil_proto::metrics::MetricBatch { series };
    let buffer = buffer.clone();
    tokio::task::spawn_blocking(move || {
        let body = zstd::bulk::compress(&serde_json::to_vec(&batch)?, 1)?;
        let records = u32::try_from(samples).unwrap_or(u32::MAX);
        buffer.push_blocking(records, &body, crate::checkpoint::Positions::new())?;
        Ok(())
    })
    .await?
}

/// The wall clock in Unix milliseconds.
pub fn now_millis() -> i64 {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// Runs `work` every `seconds` (the first time at once) until `shutdown`; a late run delays the
/// next rather than bunching them.
pub async fn every<F, Fut>(seconds: u64, shutdown: &tokio_util::sync::CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut tick = tokio::time::interval(Duration::from_secs(seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        work().await;
    }
}
