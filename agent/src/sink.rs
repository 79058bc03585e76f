//! Shipping: reads a disk buffer's batches in order (already zstd-compressed, level 1: about
//! ten times faster than gzip at a better ratio) and posts each to the backend until it is
//! acknowledged, then acknowledges it in the buffer. Up to `backend.batches_in_flight` batches
//! are in flight at once, so that the backend takes one while it makes the one before durable;
//! they are acknowledged in the buffer in order, so a crash repeats at most those in flight.
//!
//! Retries use exponential backoff with jitter and honour `Retry-After`. Network errors, 408,
//! 429 and 5xx are retried; any other 4xx means the batch itself is wrong and is dropped,
//! counted and logged at ERROR (it is data loss an operator must look at).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::task::JoinHandle;
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
    batches_in_flight: usize,
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

/// A batch in flight: its delivery, or whether it ended done with (acknowledged or rejected).
enum Slot {
    Running(JoinHandle<bool>),
    Done(bool),
}

/// Stops the deliveries still running: their batches stay in the buffer.
fn abort(in_flight: VecDeque<(u64, Slot)>) {
    for (_, slot) in in_flight {
        if let Slot::Running(task) = slot {
            task.abort();
        }
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
        Self {
            client,
            endpoint,
            content_type,
            token: backend.token.clone(),
            buffer,
            batches_in_flight: backend.batches_in_flight,
            stats: Arc::default(),
        }
    }

    /// Ships batches until `shutdown`, up to `backend.batches_in_flight` at once. A batch is
    /// acknowledged in the buffer (and the checkpoint advanced) only once the backend has
    /// answered 2xx for it and for every batch before it; batches in flight at shutdown stay
    /// in the buffer and are sent again by the next run.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let mut last = 0;
        // Deliveries in buffer order.
        let mut in_flight: VecDeque<(u64, Slot)> = VecDeque::new();
        loop {
            // The delivered batches at the front are acknowledged together, as one checkpoint.
            let mut through = None;
            while let Some((seq, Slot::Done(done))) = in_flight.front() {
                if !done {
                    return abort(in_flight);
                }
                through = Some(*seq);
                in_flight.pop_front();
            }
            if let Some(seq) = through {
                self.acknowledge(seq).await;
            }
            let room = in_flight.len() < self.batches_in_flight;
            let oldest = match in_flight.front_mut() {
                Some((_, Slot::Running(task))) => Some(task),
                _ => None,
            };
            let running = oldest.is_some();
            tokio::select! {
                pending = self.buffer.next(last), if room => {
                    let Some(pending) = pending else { return abort(in_flight) };
                    last = pending.seq;
                    // Positions moved without records: nothing to send.
                    let slot = if pending.records == 0 {
                        Slot::Done(true)
                    } else {
                        let shipper = self.clone();
                        let shutdown = shutdown.clone();
                        Slot::Running(tokio::spawn(async move { shipper.deliver(&pending, &shutdown).await }))
                    };
                    in_flight.push_back((last, slot));
                }
                done = async { oldest.expect("a running delivery").await }, if running => {
                    // A delivery that panicked counts as not done: the agent stops shipping
                    // this buffer rather than skip the batch.
                    if let Some((_, slot)) = in_flight.front_mut() {
                        *slot = Slot::Done(done.unwrap_or(false));
                    }
                }
                () = shutdown.cancelled() => return abort(in_flight),
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::WhenFull;
    use crate::checkpoint::Positions;
    use axum::body::Bytes;
    use std::sync::atomic::AtomicUsize;
    use std::time::Instant;
    use tokio::sync::Notify;

    /// A backend that holds its answer to batch 1 until released, answers every other batch at
    /// once, and counts the requests it is answering at the same time.
    struct Backend {
        address: std::net::SocketAddr,
        received: Arc<Mutex<Vec<Vec<u8>>>>,
        most_at_once: Arc<AtomicUsize>,
        release: Arc<Notify>,
    }

    async fn backend() -> Backend {
        let received = Arc::new(Mutex::new(Vec::new()));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let release = Arc::new(Notify::new());
        let now = Arc::new(AtomicUsize::new(0));
        let state = (received.clone(), most_at_once.clone(), release.clone(), now);
        let router = axum::Router::new().route(
            "/api/v1/logs",
            axum::routing::post(move |body: Bytes| {
                let (received, most_at_once, release, now) = state.clone();
                async move {
                    let at_once = now.fetch_add(1, Ordering::SeqCst) + 1;
                    most_at_once.fetch_max(at_once, Ordering::SeqCst);
                    received.lock().unwrap().push(body.to_vec());
                    if &body[..] == b"batch 1" {
                        release.notified().await;
                    }
                    now.fetch_sub(1, Ordering::SeqCst);
                    StatusCode::OK
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Backend { address, received, most_at_once, release }
    }

    /// A shipper of `batches` one-record batches (`batch 1`, …) in a buffer in `directory`,
    /// to `backend` with `in_flight` batches at once, running until the token is cancelled.
    fn shipping(
        backend: &Backend,
        directory: &std::path::Path,
        batches: usize,
        in_flight: usize,
    ) -> (Arc<Buffer>, Arc<Shipper>, CancellationToken, JoinHandle<()>) {
        let buffer = Arc::new(Buffer::open(directory, 1 << 20, WhenFull::Block).unwrap());
        for index in 1..=batches {
            buffer.push_blocking(1, format!("batch {index}").as_bytes(), Positions::new()).unwrap();
        }
        let config = BackendConfig {
            batches_in_flight: in_flight,
            ..BackendConfig::new(format!("http://{}", backend.address), "t")
        };
        let shipper = Arc::new(Shipper::new(
            http_client(&config).unwrap(),
            &config,
            "/api/v1/logs",
            "application/x-ndjson",
            buffer.clone(),
        ));
        let shutdown = CancellationToken::new();
        let shipping = tokio::spawn(shipper.clone().run(shutdown.clone()));
        (buffer, shipper, shutdown, shipping)
    }

    async fn until(what: &str, condition: impl Fn() -> bool) {
        let started = Instant::now();
        while !condition() {
            assert!(started.elapsed() < Duration::from_secs(10), "{what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_in_flight_together_are_acknowledged_in_order() {
        let backend = backend().await;
        let directory = tempfile::tempdir().unwrap();
        let (buffer, shipper, shutdown, shipping) = shipping(&backend, directory.path(), 6, 3);

        // Batches 2 and 3 are answered while batch 1 waits: three are sent, no fourth, and
        // nothing is acknowledged past the batch that has no answer.
        until("three batches are sent at once", || backend.received.lock().unwrap().len() == 3).await;
        until("batches 2 and 3 are answered", || shipper.stats.batches.load(Ordering::SeqCst) == 2).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(backend.received.lock().unwrap().len(), 3, "no more than three are in flight");
        assert_eq!(buffer.depth().1, 6, "nothing is acknowledged before batch 1 is");

        backend.release.notify_one();
        until("every batch is acknowledged", || buffer.depth().1 == 0).await;
        let received = backend.received.lock().unwrap().clone();
        let mut sorted = received.clone();
        sorted.sort();
        let expected: Vec<Vec<u8>> = (1..=6).map(|index| format!("batch {index}").into_bytes()).collect();
        assert_eq!(sorted, expected, "each batch is sent once");
        assert!(backend.most_at_once.load(Ordering::SeqCst) <= 3, "no more than three are answered at once");
        shutdown.cancel();
        shipping.await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stop_leaves_the_batches_in_flight_in_the_buffer() {
        let backend = backend().await;
        let directory = tempfile::tempdir().unwrap();
        let (buffer, shipper, shutdown, shipping) = shipping(&backend, directory.path(), 2, 4);
        until("batch 2 is answered", || shipper.stats.batches.load(Ordering::SeqCst) == 1).await;
        shutdown.cancel();
        shipping.await.unwrap();
        drop(shipper);
        drop(buffer);
        // Batch 2 was answered, but batch 1 before it was not: both are sent again.
        let buffer = Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap();
        assert_eq!(buffer.depth().1, 2);
        backend.release.notify_one();
    }
}
