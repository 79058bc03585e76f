//! The HTTP sink: batches records by count, size and time, and posts each batch as
//! zstd-compressed NDJSON (level 1: about ten times faster than gzip at a better ratio) to the
//! backend's `/api/v1/logs`, retrying until it is acknowledged.
//!
//! Retries use exponential backoff with jitter and honour `Retry-After`. Network errors, 429
//! and 5xx are retried; any other 4xx means the batch itself is wrong and is dropped, logged at
//! ERROR (it is data loss an operator must look at).

use std::time::Duration;

use anyhow::Context;
use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_proto::{LogRecord, paths};

use crate::config::{BackendConfig, BatchConfig, Token};

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const ZSTD_LEVEL: i32 = 1;
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub struct HttpSink {
    client: reqwest::Client,
    endpoint: String,
    token: Token,
    batch: BatchConfig,
}

enum Delivery {
    Acknowledged,
    Retry(Option<Duration>),
    Rejected(String),
}

/// The client the agent talks to the backend with: it verifies the backend's certificate
/// against the system's roots and, when configured, `backend.ca_file`.
pub fn http_client(backend: &BackendConfig) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(backend.timeout_seconds))
        .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(ca_file) = &backend.ca_file {
        let pem =
            std::fs::read(ca_file).with_context(|| format!("cannot read backend.ca_file {}", ca_file.display()))?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("backend.ca_file {} is not PEM certificates", ca_file.display()))?;
        if certificates.is_empty() {
            anyhow::bail!("backend.ca_file {} holds no certificate", ca_file.display());
        }
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().context("cannot build the HTTP client")
}

impl HttpSink {
    pub fn new(backend: &BackendConfig, batch: BatchConfig) -> anyhow::Result<Self> {
        let client = http_client(backend)?;
        let endpoint = format!("{}{}", backend.url.trim_end_matches('/'), paths::LOGS);
        Ok(Self { client, endpoint, token: backend.token.clone(), batch })
    }

    /// Ships records until the channel closes (every source stopped) or `shutdown`.
    pub async fn run(&self, mut receiver: mpsc::Receiver<LogRecord>, shutdown: CancellationToken) {
        let max_wait = Duration::from_millis(self.batch.max_wait_ms);
        loop {
            let first = tokio::select! {
                record = receiver.recv() => record,
                () = shutdown.cancelled() => None,
            };
            let Some(first) = first else { return };
            let mut body = Vec::new();
            let mut count = 0;
            append_line(&mut body, &first);
            count += 1;
            let deadline = tokio::time::sleep(max_wait);
            tokio::pin!(deadline);
            while count < self.batch.max_records && body.len() < self.batch.max_bytes {
                tokio::select! {
                    record = receiver.recv() => match record {
                        Some(record) => {
                            append_line(&mut body, &record);
                            count += 1;
                        }
                        None => break,
                    },
                    () = &mut deadline => break,
                    () = shutdown.cancelled() => break,
                }
            }
            self.deliver(body, count, &shutdown).await;
        }
    }

    /// Sends one batch until it is acknowledged, rejected, or the agent shuts down.
    async fn deliver(&self, body: Vec<u8>, count: usize, shutdown: &CancellationToken) {
        let compressed = match zstd::bulk::compress(&body, ZSTD_LEVEL) {
            Ok(compressed) => compressed,
            Err(error) => {
                tracing::error!(records = count, error = %error, "cannot compress batch, dropped");
                return;
            }
        };
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 1u32;
        loop {
            match self.send(compressed.clone()).await {
                Delivery::Acknowledged => {
                    tracing::debug!(records = count, attempt, "batch acknowledged");
                    return;
                }
                Delivery::Rejected(reason) => {
                    tracing::error!(records = count, reason = %reason, "backend rejected batch, dropped");
                    return;
                }
                Delivery::Retry(retry_after) => {
                    let delay = retry_after.unwrap_or_else(|| jitter(backoff)).min(MAX_BACKOFF);
                    tracing::warn!(
                        records = count,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        "backend unavailable, retrying"
                    );
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => {
                            tracing::warn!(records = count, "shutting down with an unacknowledged batch");
                            return;
                        }
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    attempt += 1;
                }
            }
        }
    }

    async fn send(&self, body: Vec<u8>) -> Delivery {
        let response = self
            .client
            .post(&self.endpoint)
            .bearer_auth(self.token.expose())
            .header(CONTENT_TYPE, "application/x-ndjson")
            .header(CONTENT_ENCODING, "zstd")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(error = %error, "request failed");
                return Delivery::Retry(None);
            }
        };
        let status = response.status();
        if status.is_success() {
            return Delivery::Acknowledged;
        }
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
            return Delivery::Retry(retry_after);
        }
        let body = response.text().await.unwrap_or_default();
        Delivery::Rejected(format!("{status}: {body}"))
    }
}

fn append_line(body: &mut Vec<u8>, record: &LogRecord) {
    if serde_json::to_writer(&mut *body, record).is_ok() {
        body.push(b'\n');
    }
}

/// Between half and all of `delay`, so that agents restarted together do not retry together.
fn jitter(delay: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.subsec_nanos())
        .unwrap_or_default();
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    delay.mul_f64(fraction)
}
