//! How the metric sources (scrape targets, host metrics) hand their samples to the metrics
//! disk buffer: one zstd-compressed JSON `MetricBatch` per scrape or collection.

use std::sync::Arc;

use vigil_proto::metrics::{MetricBatch, SeriesSamples};

use crate::buffer::{Buffer, BufferError};
use crate::checkpoint::Positions;

/// Why samples did not reach the metrics buffer.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PushMetricsError {
    #[error("cannot encode a metric batch")]
    Encode(#[source] serde_json::Error),
    #[error("cannot compress a metric batch")]
    Compress(#[source] std::io::Error),
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("the push of a metric batch did not finish")]
    Task(#[from] tokio::task::JoinError),
}

/// Pushes metric series into the metrics buffer as one zstd-compressed `MetricBatch` (JSON).
/// Blocks (on the blocking pool) while the buffer is full and `when_full` is `block`.
pub(crate) async fn push(buffer: &Arc<Buffer>, series: Vec<SeriesSamples>) -> Result<(), PushMetricsError> {
    if series.is_empty() {
        return Ok(());
    }
    let samples: usize = series.iter().map(|series| series.samples.len()).sum();
    let batch = MetricBatch { series };
    let buffer = buffer.clone();
    tokio::task::spawn_blocking(move || {
        let json = serde_json::to_vec(&batch).map_err(PushMetricsError::Encode)?;
        let body = zstd::bulk::compress(&json, 1).map_err(PushMetricsError::Compress)?;
        let records = u32::try_from(samples).unwrap_or(u32::MAX);
        buffer.push_blocking(records, &body, Positions::new())?;
        Ok(())
    })
    .await?
}
