//! Shipping: reads a disk buffer's batches in order (already zstd-compressed, level 1: about
//! ten times faster than gzip at a better ratio) and posts each to the backend until it is
//! acknowledged, then acknowledges it in the buffer. One batch is in flight at a time, so a
//! crash repeats at most that one.
//!
//! Retries use exponential backoff with jitter and honour `Retry-After`. Network errors, 408,
//! 429 and 5xx are retried; any other 4xx means the batch itself is wrong and is dropped,
//! counted and logged at ERROR (it is data loss an operator must look at).

use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;

use crate::buffer::{Buffer, Pending};
use crate::config::{BackendConfig, Token};

const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Ships one disk buffer's batches, in order, to one backend endpoint.
pub struct Shipper {
    client: reqwest::Client,
    endpoint: String,
    content_type: &'static str,
    token: Token,
    buffer: Arc<Buffer>,
    pub stats: Arc<ShipperStats>,
}

/// A shipper's counters, for the agent's `/metrics` and heartbeats.
#[derive(Debug, Default)]
pub struct ShipperStats {
    pub batches: AtomicU64,
    pub records: AtomicU64,
    pub retries: AtomicU64,
    pub rejected_batches: AtomicU64,
    pub rejected_records: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}

impl ShipperStats {
    fn error(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }
}

enum Delivery {
    Acknowledged,
    Retry(Option<Duration>, String),
    Rejected(String),
}

/// Why the client to the backend cannot be built: mostly a wrong `backend.ca_file`.
#[derive(Debug, thiserror::Error)]
pub enum BuildClientError {
    #[error("cannot read backend.ca_file {}", .path.display())]
    ReadCaFile { path: PathBuf, source: std::io::Error },
    #[error("backend.ca_file {} is not PEM certificates", .path.display())]
    ParseCaFile { path: PathBuf, source: reqwest::Error },
    #[error("backend.ca_file {} holds no certificate", .path.display())]
    EmptyCaFile { path: PathBuf },
    #[error("cannot build the HTTP client")]
    Build(#[source] reqwest::Error),
}

/// The client the agent talks to the backend with: it verifies the backend's certificate
/// against the system's roots and, when configured, `backend.ca_file`.
pub fn http_client(backend: &BackendConfig) -> Result<reqwest::Client, BuildClientError> {
    let mut builder = reqwest::Client::builder()
        .timeout(Duration::from_secs(backend.timeout_seconds))
        .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")));
    if let Some(ca_file) = &backend.ca_file {
        let pem =
            std::fs::read(ca_file).map_err(|source| BuildClientError::ReadCaFile { path: ca_file.clone(), source })?;
        let certificates = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|source| BuildClientError::ParseCaFile { path: ca_file.clone(), source })?;
        if certificates.is_empty() {
            return Err(BuildClientError::EmptyCaFile { path: ca_file.clone() });
        }
        builder = builder.tls_certs_merge(certificates);
    }
    builder.build().map_err(BuildClientError::Build)
}

impl Shipper {
    /// A shipper of `buffer` to `path` (`/api/v1/logs` with NDJSON, `/api/v1/metrics` with JSON).
    pub fn new(
        client: reqwest::Client,
        backend: &BackendConfig,
        path: &str,
        content_type: &'static str,
        buffer: Arc<Buffer>,
    ) -> Self {
        let endpoint = format!("{}{}", backend.url.trim_end_matches('/'), path);
        Self { client, endpoint, content_type, token: backend.token.clone(), buffer, stats: Arc::default() }
    }

    /// Ships batches until `shutdown`. A batch is acknowledged in the buffer (and the checkpoint
    /// advanced) only once the backend has answered 2xx; a batch in flight at shutdown stays in
    /// the buffer and is sent again by the next run.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut last = 0;
        loop {
            let pending = tokio::select! {
                pending = self.buffer.next(last) => pending,
                () = shutdown.cancelled() => None,
            };
            let Some(pending) = pending else { return };
            last = pending.seq;
            // Positions moved without records: nothing to send.
            if pending.records == 0 {
                self.acknowledge(pending.seq).await;
                continue;
            }
            if !self.deliver(&pending, &shutdown).await {
                return;
            }
            self.acknowledge(pending.seq).await;
        }
    }

    /// Acknowledges `seq` in the buffer, whose checkpoint is flushed to disk and renamed into
    /// place: on the blocking pool. Acknowledgements stay in order, as each is awaited.
    async fn acknowledge(&self, seq: u64) {
        let buffer = self.buffer.clone();
        if let Err(error) = tokio::task::spawn_blocking(move || buffer.ack(seq)).await {
            tracing::error!(seq, error = %error, "cannot acknowledge a batch in the buffer");
        }
    }

    /// Sends one batch until it is acknowledged or rejected (`true`), or the agent shuts down.
    async fn deliver(&self, pending: &Pending, shutdown: &CancellationToken) -> bool {
        let mut backoff = INITIAL_BACKOFF;
        let mut attempt = 1u32;
        loop {
            match self.send(pending.body.clone()).await {
                Delivery::Acknowledged => {
                    tracing::debug!(records = pending.records, attempt, "batch acknowledged");
                    self.stats.batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.records.fetch_add(u64::from(pending.records), Ordering::Relaxed);
                    self.stats.error(None);
                    return true;
                }
                Delivery::Rejected(reason) => {
                    // The batch itself is wrong: retrying cannot help. Data loss an operator must see.
                    tracing::error!(records = pending.records, reason = %reason, "backend rejected batch, dropped");
                    self.stats.rejected_batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.rejected_records.fetch_add(u64::from(pending.records), Ordering::Relaxed);
                    self.stats.error(Some(format!("batch rejected: {reason}")));
                    return true;
                }
                Delivery::Retry(retry_after, reason) => {
                    let delay = retry_after.unwrap_or_else(|| jitter(backoff)).min(MAX_BACKOFF);
                    tracing::warn!(
                        records = pending.records,
                        attempt,
                        delay_ms = delay.as_millis() as u64,
                        reason = %reason,
                        "backend unavailable, retrying"
                    );
                    self.stats.retries.fetch_add(1, Ordering::Relaxed);
                    self.stats.error(Some(reason));
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        () = shutdown.cancelled() => return false,
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
            .header(CONTENT_TYPE, self.content_type)
            .header(CONTENT_ENCODING, "zstd")
            .body(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(error) => return Delivery::Retry(None, format!("cannot reach the backend: {error}")),
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
        let body = response.text().await.unwrap_or_default();
        let reason = format!("{status}: {}", body.chars().take(300).collect::<String>());
        if status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT
        {
            return Delivery::Retry(retry_after, reason);
        }
        Delivery::Rejected(reason)
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
