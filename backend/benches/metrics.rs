//! Metrics benchmarks against a real Prometheus (`/usr/bin/prometheus`, started here with the
//! remote-write receiver): `cargo bench -p vigil-backend --bench metrics`.
//!
//! 1. Remote-write throughput: 4 clients post JSON batches of 1,000 series × 5 samples to
//!    `POST /api/v1/metrics`; each answer waits for Prometheus to accept the samples. Prints
//!    samples/s and this process's CPU seconds per million samples (server and the clients'
//!    JSON encoding; Prometheus is another process and not counted).
//! 2. The latency the metrics API adds: the same range queries sent to Prometheus directly and
//!    through `GET /api/v1/metrics/query_range`: a typical chart (1 h at a 15 s step, 10
//!    series of 241 points) and a heavy one (400 series).

use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_backend::config::Config;
use vigil_proto::auth::Scope;
use vigil_proto::paths;

const CLIENTS: usize = 4;
const SERIES_PER_BATCH: usize = 1000;
const SAMPLES_PER_SERIES: usize = 5;
const BATCHES_PER_CLIENT: usize = 100;

// The tests' Prometheus launcher; the benchmark does not use its `query`.
#[allow(dead_code)]
#[path = "../tests/support/prometheus.rs"]
mod prometheus;

use prometheus::TestPrometheus;

#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

/// User plus system CPU time of this process.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of /proc/self/stat (utime, stime), counted after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * fraction).round() as usize]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let prometheus = TestPrometheus::start("").await;
    let prometheus_url = prometheus.address.clone();
    let client = reqwest::Client::new();

    let mut config = Config::for_tests(&dir.path().join("vigil"));
    config.metrics.prometheus_url = prometheus_url.clone();
    let server::Server { base, state, .. } = server::start(config).await;
    let token = Arc::new(state.auth.create_token("bench", Some(Scope::Admin), None, None).await.unwrap().0);

    // 1. Remote write.
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    // The samples of a series span the last hour.
    let spacing_ms = 3_600_000 / (BATCHES_PER_CLIENT * SAMPLES_PER_SERIES) as i64;
    let first_ms = now_ms - 3_600_000;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let (client, token, base) = (client.clone(), token.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            for batch in 0..BATCHES_PER_CLIENT {
                let series: Vec<serde_json::Value> = (0..SERIES_PER_BATCH)
                    .map(|series| {
                        let samples: Vec<(i64, f64)> = (0..SAMPLES_PER_SERIES)
                            .map(|sample| {
                                let step = (batch * SAMPLES_PER_SERIES + sample) as i64;
                                (first_ms + step * spacing_ms, (step * 3 + series as i64) as f64)
                            })
                            .collect();
                        serde_json::json!({
                            "labels": {
                                "__name__": "bench_requests_total",
                                "instance": format!("host-{client_index}-{}:9100", series % 100),
                                "handler": format!("/route/{}", series / 100),
                            },
                            "samples": samples,
                        })
                    })
                    .collect();
                let response = client
                    .post(format!("{base}{}", paths::METRICS_WRITE))
                    .bearer_auth(token.as_str())
                    .json(&serde_json::json!({ "series": series }))
                    .send()
                    .await
                    .unwrap();
                assert!(response.status().is_success(), "{}", response.text().await.unwrap_or_default());
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    let samples = (CLIENTS * BATCHES_PER_CLIENT * SERIES_PER_BATCH * SAMPLES_PER_SERIES) as f64;
    println!(
        "remote write: {:.0} samples in {elapsed:.1} s = {:.0} samples/s; {:.2} CPU s per million samples (this process)",
        samples,
        samples / elapsed,
        cpu / (samples / 1e6)
    );

    // 2. The latency the API adds to range queries.
    let end = (now_ms / 1000) as f64;
    let start = end - 3600.0;
    for (name, promql) in [
        ("typical", "sum by (handler) (rate(bench_requests_total{instance=~\"host-0-.*\"}[1m]))"),
        ("heavy", "sum by (instance) (rate(bench_requests_total[1m]))"),
    ] {
        let params = [
            ("query", promql.to_owned()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("step", "15".to_owned()),
        ];
        let direct_url = format!("{prometheus_url}/api/v1/query_range");
        let vigil_url = format!("{base}{}", paths::METRICS_QUERY_RANGE);
        let check: vigil_proto::metrics::QueryResult = client
            .get(&vigil_url)
            .bearer_auth(token.as_str())
            .query(&params)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!check.series.is_empty());
        let (mut direct, mut through) = (Vec::new(), Vec::new());
        for _ in 0..100 {
            let timer = Instant::now();
            let response = client.get(&direct_url).query(&params).send().await.unwrap();
            let _ = response.bytes().await.unwrap();
            direct.push(timer.elapsed());
            let timer = Instant::now();
            let response = client.get(&vigil_url).bearer_auth(token.as_str()).query(&params).send().await.unwrap();
            let _ = response.bytes().await.unwrap();
            through.push(timer.elapsed());
        }
        let (direct_p50, through_p50) = (percentile(&mut direct, 0.5), percentile(&mut through, 0.5));
        println!(
            "{name} range query, {} series x {} points: Prometheus p50 {direct_p50:.2?}, through Vigil p50 {through_p50:.2?} (adds {:.2?})",
            check.series.len(),
            check.series.iter().map(|series| series.points.len()).max().unwrap_or(0),
            through_p50.saturating_sub(direct_p50),
        );
    }
}
