//! Remote write 1.0 to Prometheus (or any receiver: Mimir, Thanos Receive, VictoriaMetrics):
//! a `WriteRequest` protobuf, snappy block-compressed, with the protocol's headers.
//!
//! Batches wait in a bounded queue; one sender task takes what is waiting (up to
//! `max_samples_per_request`), sends it as one request, and retries on network errors, 5xx
//! and 429 only (honouring `Retry-After`) with exponential backoff, until the oldest batch's
//! deadline. Each batch is answered when the receiver accepted it: the ingest request that
//! carried it is acknowledged only then, so an acknowledged sample is in Prometheus. A 4xx
//! refuses the request; when it held several batches, each is sent alone so that one bad
//! batch does not sink the others.

use std::time::{Duration, Instant};

use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::telemetry::Metrics;

/// The protobuf messages of `prompb/types.proto` and `prompb/remote.proto` that remote write
/// 1.0 uses (samples only: no exemplars, histograms or metadata).
pub mod messages {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct WriteRequest {
        #[prost(message, repeated, tag = "1")]
        pub timeseries: Vec<TimeSeries>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TimeSeries {
        /// Sorted by name, `__name__` among them.
        #[prost(message, repeated, tag = "1")]
        pub labels: Vec<Label>,
        /// Oldest first.
        #[prost(message, repeated, tag = "2")]
        pub samples: Vec<Sample>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(string, tag = "2")]
        pub value: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(double, tag = "1")]
        pub value: f64,
        /// Unix milliseconds.
        #[prost(int64, tag = "2")]
        pub timestamp: i64,
    }
}

use messages::{TimeSeries, WriteRequest};

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum WriteError {
    /// The receiver refused the samples (4xx other than 429): they will never be accepted.
    #[error("Prometheus refused the samples: {0}")]
    Refused(String),
    /// The receiver did not accept them before the deadline (down, 5xx, 429).
    #[error("Prometheus did not accept the samples within {seconds} s: {reason}")]
    Unavailable { seconds: u64, reason: String },
    #[error("too many batches are waiting for Prometheus")]
    QueueFull,
    #[error("the server is shutting down")]
    Closed,
}

struct Job {
    series: Vec<TimeSeries>,
    samples: usize,
    enqueued: Instant,
    done: oneshot::Sender<Result<(), WriteError>>,
}

#[derive(Debug, Clone)]
pub struct RemoteWriteConfig {
    pub url: String,
    pub timeout: Duration,
    /// How long a batch may wait for the receiver (retries included).
    pub deadline: Duration,
    pub queue_batches: usize,
    pub max_samples_per_request: usize,
}

/// The handle ingest uses; the sender task runs until shutdown.
#[derive(Clone)]
pub struct RemoteWriter {
    queue: mpsc::Sender<Job>,
}

impl RemoteWriter {
    pub fn start(
        config: RemoteWriteConfig,
        client: reqwest::Client,
        metrics: std::sync::Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let (queue, jobs) = mpsc::channel(config.queue_batches);
        tokio::spawn(run(config, client, metrics, jobs, shutdown));
        Self { queue }
    }

    /// Queues the series and waits until the receiver accepted them.
    pub async fn write(&self, series: Vec<TimeSeries>) -> Result<(), WriteError> {
        let samples = series.iter().map(|series| series.samples.len()).sum();
        let (done, answer) = oneshot::channel();
        let job = Job { series, samples, enqueued: Instant::now(), done };
        self.queue.try_send(job).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => WriteError::QueueFull,
            mpsc::error::TrySendError::Closed(_) => WriteError::Closed,
        })?;
        answer.await.unwrap_or(Err(WriteError::Closed))
    }
}

/// The body of a remote-write request: the protobuf, snappy block format.
pub fn encode(series: Vec<TimeSeries>) -> Vec<u8> {
    let request = WriteRequest { timeseries: series };
    snap::raw::Encoder::new().compress_vec(&request.encode_to_vec()).expect("snappy compresses any input")
}

async fn run(
    config: RemoteWriteConfig,
    client: reqwest::Client,
    metrics: std::sync::Arc<Metrics>,
    mut jobs: mpsc::Receiver<Job>,
    shutdown: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            job = jobs.recv() => match job { Some(job) => job, None => return },
            () = shutdown.cancelled() => return,
        };
        let mut group = vec![first];
        let mut samples = group[0].samples;
        while samples < config.max_samples_per_request {
            match jobs.try_recv() {
                Ok(job) => {
                    samples += job.samples;
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let outcome = send_with_retries(&config, &client, &group, &shutdown).await;
        match outcome {
            Err(WriteError::Refused(_)) if group.len() > 1 => {
                // Find the batch the receiver refuses: send each alone.
                for job in group {
                    let outcome = send_with_retries(&config, &client, std::slice::from_ref(&job), &shutdown).await;
                    finish(&metrics, job, outcome);
                }
            }
            outcome => {
                for job in group {
                    finish(&metrics, job, outcome.clone());
                }
            }
        }
    }
}

fn finish(metrics: &Metrics, job: Job, outcome: Result<(), WriteError>) {
    let samples = job.samples as u64;
    match &outcome {
        Ok(()) => metrics.remote_write_samples_sent.inc_by(samples),
        Err(_) => metrics.remote_write_samples_failed.inc_by(samples),
    };
    let _ = job.done.send(outcome);
}

async fn send_with_retries(
    config: &RemoteWriteConfig,
    client: &reqwest::Client,
    jobs: &[Job],
    shutdown: &CancellationToken,
) -> Result<(), WriteError> {
    let series: Vec<TimeSeries> = jobs.iter().flat_map(|job| job.series.iter().cloned()).collect();
    // Protobuf and snappy are CPU work: off the async workers.
    let body = tokio::task::spawn_blocking(move || encode(series)).await.map_err(|_| WriteError::Closed)?;
    let oldest = jobs.iter().map(|job| job.enqueued).min().unwrap_or_else(Instant::now);
    let deadline = oldest + config.deadline;
    let mut backoff = Duration::from_millis(100);
    loop {
        let (reason, retry_after) = match send_once(config, client, body.clone()).await {
            Attempt::Accepted => return Ok(()),
            Attempt::Refused(message) => return Err(WriteError::Refused(message)),
            Attempt::Retry { reason, retry_after } => (reason, retry_after),
        };
        let wait = retry_after.unwrap_or(backoff).max(backoff);
        if Instant::now() + wait >= deadline {
            return Err(WriteError::Unavailable { seconds: config.deadline.as_secs(), reason });
        }
        tracing::debug!(reason = %reason, wait_ms = wait.as_millis() as u64, "remote write will be retried");
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return Err(WriteError::Closed),
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

enum Attempt {
    Accepted,
    Refused(String),
    Retry { reason: String, retry_after: Option<Duration> },
}

async fn send_once(config: &RemoteWriteConfig, client: &reqwest::Client, body: Vec<u8>) -> Attempt {
    let response = client
        .post(&config.url)
        .timeout(config.timeout)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .header("x-prometheus-remote-write-version", "0.1.0")
        .header("user-agent", concat!("vigil/", env!("CARGO_PKG_VERSION")))
        .body(body)
        .send()
        .await;
    let response = match response {
        Ok(response) => response,
        Err(error) => return Attempt::Retry { reason: crate::telemetry::error_chain(&error), retry_after: None },
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Accepted;
    }
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let text: String = response.text().await.unwrap_or_default().trim().chars().take(500).collect();
    let reason = format!("{status}: {text}");
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Attempt::Retry { reason, retry_after }
    } else {
        Attempt::Refused(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::messages::{Label, Sample};
    use super::*;

    #[test]
    fn requests_are_snappy_protobuf_that_decode_back() {
        let series = vec![TimeSeries {
            labels: vec![
                Label { name: "__name__".to_owned(), value: "up".to_owned() },
                Label { name: "job".to_owned(), value: "api".to_owned() },
            ],
            samples: vec![Sample { value: 1.0, timestamp: 1_700_000_000_000 }],
        }];
        let body = encode(series.clone());
        let decoded = snap::raw::Decoder::new().decompress_vec(&body).unwrap();
        assert_eq!(WriteRequest::decode(decoded.as_slice()).unwrap().timeseries, series);
    }
}
