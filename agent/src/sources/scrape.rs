//! Scraping Prometheus endpoints: the text format 0.0.4 or OpenMetrics (by the answer's
//! `Content-Type`), every sample with the target's labels, plus the series Prometheus adds per
//! target: `up`, `scrape_duration_seconds`, `scrape_samples_scraped`.
//!
//! As in Prometheus, a label the target sets that clashes with a target label is kept as
//! `exported_<name>`, and samples without a timestamp get the scrape's time. OpenMetrics pages
//! are checked against the format's family rules ([`crate::exposition::validate_openmetrics`])
//! unless `strict = false`.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use tokio_util::sync::CancellationToken;
use vigil_proto::metrics::{SampleValue, SeriesSamples};

use crate::buffer::Buffer;
use crate::clock::{every, now_millis};
use crate::config::ScrapeConfig;
use crate::error_chain::ErrorChain;
use crate::exposition::{self, Format};
use crate::sources::metric_batch;
use crate::stats::ScrapeStats;

/// A page larger than this fails the scrape.
const MAX_PAGE_BYTES: usize = 32 << 20;

/// What [`reqwest::Url::parse`] fails with (the `url` crate's error, through reqwest).
type ParseUrlError = <reqwest::Url as FromStr>::Err;

/// Why a target cannot be scraped at all.
#[derive(Debug, thiserror::Error)]
pub enum BuildTargetError {
    #[error("invalid scrape url {url:?}")]
    Url { url: String, source: ParseUrlError },
    #[error("cannot build the scrape client")]
    Client(#[source] reqwest::Error),
}

/// Why one scrape failed (the target is `up 0` until the next).
#[derive(Debug, thiserror::Error)]
enum ScrapeError {
    /// Connecting, sending, or reading the page.
    #[error(transparent)]
    Request(#[from] reqwest::Error),
    #[error("the target answered {status}")]
    Status { status: StatusCode },
    #[error("the page is larger than {limit} bytes")]
    PageTooLarge { limit: usize },
    #[error(transparent)]
    Parse(#[from] exposition::ParseError),
    #[error("the parse of the page did not finish")]
    ParseTask(#[from] tokio::task::JoinError),
}

pub struct Target {
    config: ScrapeConfig,
    client: reqwest::Client,
    /// `job`, `instance` and the configured labels.
    labels: BTreeMap<String, String>,
    buffer: Arc<Buffer>,
    stats: Arc<ScrapeStats>,
}

impl Target {
    pub fn new(config: ScrapeConfig, buffer: Arc<Buffer>, stats: Arc<ScrapeStats>) -> Result<Self, BuildTargetError> {
        let url = reqwest::Url::parse(&config.url)
            .map_err(|source| BuildTargetError::Url { url: config.url.clone(), source })?;
        let instance = match (url.host_str(), url.port_or_known_default()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            _ => config.url.clone(),
        };
        let mut labels = BTreeMap::from([("job".to_owned(), config.name.clone()), ("instance".to_owned(), instance)]);
        labels.extend(config.labels.clone());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.timeout_seconds))
            .user_agent(concat!("vigil-agent/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(BuildTargetError::Client)?;
        Ok(Self { config, client, labels, buffer, stats })
    }

    pub async fn run(self, shutdown: CancellationToken) {
        every(self.config.interval_seconds, &shutdown, || async {
            let series = self.scrape_once().await;
            if let Err(error) = metric_batch::push(&self.buffer, series).await {
                tracing::error!(target = %self.config.name, error = %ErrorChain(&error), "cannot buffer scraped samples");
            }
        })
        .await;
    }

    /// One scrape: the target's series and `up`/`scrape_*`, or just those when it failed.
    pub async fn scrape_once(&self) -> Vec<SeriesSamples> {
        let started = Instant::now();
        let timestamp = now_millis();
        let result = self.fetch().await;
        let duration = started.elapsed().as_secs_f64();
        self.stats.scrapes.fetch_add(1, Ordering::Relaxed);
        let (mut series, up) = match result {
            Ok(series) => {
                *self.stats.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = None;
                (series, 1.0)
            }
            Err(error) => {
                let message = ErrorChain(&error).to_string();
                tracing::warn!(target = %self.config.name, url = %self.config.url, error = %message, "scrape failed");
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                *self.stats.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message);
                (Vec::new(), 0.0)
            }
        };
        self.stats.up.store(up as u64, Ordering::Relaxed);
        let scraped = series.len() as f64;
        self.stats.samples.fetch_add(series.len() as u64, Ordering::Relaxed);
        for (name, value) in [("up", up), ("scrape_duration_seconds", duration), ("scrape_samples_scraped", scraped)] {
            let mut labels = self.labels.clone();
            labels.insert("__name__".to_owned(), name.to_owned());
            series.push(SeriesSamples { labels, samples: vec![(timestamp, SampleValue(value))] });
        }
        series
    }

    async fn fetch(&self) -> Result<Vec<SeriesSamples>, ScrapeError> {
        let mut response = self.client.get(&self.config.url).header(ACCEPT, exposition::ACCEPT).send().await?;
        let status = response.status();
        if !status.is_success() {
            return Err(ScrapeError::Status { status });
        }
        let format = Format::of_content_type(
            response.headers().get(CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or_default(),
        );
        let mut page = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if page.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(ScrapeError::PageTooLarge { limit: MAX_PAGE_BYTES });
            }
            page.extend_from_slice(&chunk);
        }
        // Parsing a page of up to 32 MiB is CPU work: off the async workers.
        let strict = self.config.strict;
        let samples = tokio::task::spawn_blocking(move || -> Result<_, exposition::ParseError> {
            let entries = exposition::parse(&page, format)?;
            if format == Format::OpenMetrics && strict {
                exposition::validate_openmetrics(&entries)?;
            }
            Ok(exposition::series(&entries))
        })
        .await??;
        let timestamp = now_millis();
        Ok(samples
            .into_iter()
            .map(|sample| {
                let at = sample.timestamp_ms().unwrap_or(timestamp);
                let mut labels = BTreeMap::new();
                for (name, value) in sample.labels {
                    let name = if self.labels.contains_key(&name) { format!("exported_{name}") } else { name };
                    labels.insert(name, value);
                }
                labels.extend(self.labels.clone());
                labels.insert("__name__".to_owned(), sample.name);
                SeriesSamples { labels, samples: vec![(at, SampleValue(sample.value))] }
            })
            .collect())
    }
}
