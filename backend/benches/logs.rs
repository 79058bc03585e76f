//! Log store benchmarks: `cargo bench -p vigil-backend --bench logs`.
//!
//! 1. Ingest through HTTP until acknowledged and searchable: native NDJSON and Loki snappy
//!    protobuf, against the raw tantivy rate of the same documents (one indexing thread, no
//!    HTTP, no durability) as the ceiling; per wall second and per CPU second of the server
//!    (the client runs on a thread of its own, whose CPU time is left out).
//! 2. Freshness: from the 2xx of a small batch to the record being found by search.
//! 3. Search latency over `VIGIL_BENCH_RECORDS` records (10 million by default) spread over a
//!    week: term, phrase, field-filtered and time-bounded queries, 100 newest first, and a
//!    24-hour histogram.
//! 4. Peak RSS of the process (server and client share it).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use vigil_backend::config::Config;
use vigil_backend::ingest::loki::messages::{EntryAdapter, ProtoTimestamp, PushRequest, StreamAdapter};
use vigil_proto::auth::Scope;
use vigil_proto::{Commit, LogQuery, LogRecord, Timestamp};

#[allow(dead_code)]
#[path = "support/measure.rs"]
mod measure;
#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

use measure::{Rate, peak_rss_mib, process_cpu, raw_tantivy, thread_cpu};

const SERVICES: [&str; 10] =
    ["api", "checkout", "payments", "search", "auth", "cart", "catalog", "email", "worker", "gateway"];
const LEVELS: [(&str, u32); 5] = [("info", 80), ("debug", 8), ("warn", 7), ("error", 4), ("fatal", 1)];
const PATHS: [&str; 8] =
    ["/products", "/cart", "/checkout", "/login", "/search", "/orders/4711", "/api/v2/items", "/health"];
const ERRORS: [&str; 6] = [
    "connection refused while calling payments:8443",
    "upstream timed out after 30s",
    "deadlock detected; transaction rolled back",
    "certificate verify failed: unable to get local issuer certificate",
    "out of memory: killed process",
    "rate limit exceeded for client",
];

/// A small deterministic generator (xorshift), so that every run indexes the same lines.
struct Lines(u64);

impl Lines {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn record(&mut self, timestamp: Timestamp) -> LogRecord {
        let service = SERVICES[(self.next() % 10) as usize];
        let host = format!("{service}-{}", self.next() % 4);
        let roll = (self.next() % 100) as u32;
        let mut cumulative = 0;
        let level = LEVELS
            .iter()
            .find(|(_, weight)| {
                cumulative += weight;
                roll < cumulative
            })
            .map_or("info", |(level, _)| level);
        let path = PATHS[(self.next() % 8) as usize];
        let request = self.next() % 1_000_000;
        let message = match level {
            "error" | "fatal" => format!("request_id={request} {} on POST {path}", ERRORS[(self.next() % 6) as usize]),
            "warn" => format!(
                "request_id={request} slow response for GET {path}: {} ms above budget",
                500 + self.next() % 5000
            ),
            _ => format!(
                "request_id={request} method=GET path={path} status=200 duration_ms={} bytes={} user_agent=\"Mozilla/5.0 (X11; Linux x86_64)\"",
                self.next() % 400,
                self.next() % 100_000
            ),
        };
        let mut attributes = serde_json::Map::new();
        attributes.insert(
            "region".to_owned(),
            serde_json::Value::String(["eu-west", "us-east", "ap-south"][(self.next() % 3) as usize].to_owned()),
        );
        LogRecord { timestamp, service: service.to_owned(), host, level: level.to_owned(), message, attributes }
    }
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unwrap()
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * fraction).round() as usize]
}

/// Posts every body over `clients` concurrent connections, from a thread of its own so that
/// the client's CPU time can be told from the server's; returns the wall time and the
/// client's CPU seconds.
async fn post_all(bodies: Vec<(Vec<u8>, &'static str)>, url: String, token: String, clients: usize) -> (Duration, f64) {
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let cpu = thread_cpu();
        let elapsed = runtime.block_on(async move {
            let bodies = Arc::new(std::sync::Mutex::new(bodies));
            let client = reqwest::Client::new();
            let started = Instant::now();
            let tasks: Vec<_> = (0..clients)
                .map(|_| {
                    let (bodies, client, url, token) = (bodies.clone(), client.clone(), url.clone(), token.clone());
                    tokio::spawn(async move {
                        loop {
                            let Some((body, content_type)) = bodies.lock().unwrap().pop() else { return };
                            let response = client
                                .post(&url)
                                .bearer_auth(&token)
                                .header("content-type", content_type)
                                .body(body)
                                .send()
                                .await
                                .unwrap();
                            assert!(response.status().is_success(), "{}", response.status());
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            started.elapsed()
        });
        (elapsed, thread_cpu() - cpu)
    })
    .await
    .unwrap()
}

/// Ingests `bodies` through HTTP and waits until all `records` of them are searchable; the
/// rate counts the server's CPU time only. With `probe`, a one-record batch is posted every
/// 100 ms meanwhile and the time from its 2xx to its being found by search is returned.
async fn ingest_until_searchable(
    state: &vigil_backend::state::AppState,
    bodies: Vec<(Vec<u8>, &'static str)>,
    (base, path): (&str, &str),
    token: &str,
    (records, bytes): (usize, usize),
    probe: bool,
) -> (Rate, Vec<Duration>) {
    let mut committed = state.log_store.committed();
    let before = committed.borrow().map_or(0, |last| last + 1);
    let stop = tokio_util::sync::CancellationToken::new();
    let prober = probe.then(|| tokio::spawn(freshness_under_load(base.to_owned(), token.to_owned(), stop.clone())));
    let cpu = process_cpu();
    let started = Instant::now();
    let (_, client_cpu) = post_all(bodies, format!("{base}{path}"), token.to_owned(), 4).await;
    stop.cancel();
    let (probes, freshness) = match prober {
        Some(prober) => prober.await.unwrap(),
        None => (0, Vec::new()),
    };
    let last = before + records as u64 + probes - 1;
    committed.wait_for(|committed| committed.is_some_and(|committed| committed >= last)).await.unwrap();
    (Rate::new(records, bytes, started.elapsed(), process_cpu() - cpu - client_cpu), freshness)
}

/// Posts one record carrying `marker` (answered once durable) and returns the time from the
/// 2xx until search finds it.
async fn time_to_searchable(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    lines: &mut Lines,
    marker: &str,
) -> Duration {
    let record = lines.record(now());
    let record = LogRecord { message: format!("{} {marker}", record.message), ..record };
    let response = client.post(format!("{base}/api/v1/logs")).bearer_auth(token).json(&[record]).send().await;
    assert!(response.unwrap().status().is_success());
    let acknowledged = Instant::now();
    loop {
        let page: vigil_proto::LogPage = client
            .get(format!("{base}/api/v1/logs/search"))
            .bearer_auth(token)
            .query(&[("q", marker)])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if page.total == 1 {
            return acknowledged.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Posts a marked record every 100 ms until `stop`, each time measuring from the 2xx until
/// search finds it; returns how many it posted and the times.
async fn freshness_under_load(
    base: String,
    token: String,
    stop: tokio_util::sync::CancellationToken,
) -> (u64, Vec<Duration>) {
    let client = reqwest::Client::new();
    let mut lines = Lines(7);
    let mut times = Vec::new();
    let mut posted = 0;
    while !stop.is_cancelled() {
        times.push(time_to_searchable(&client, &base, &token, &mut lines, &format!("underload{posted}")).await);
        posted += 1;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (posted, times)
}

#[tokio::main]
async fn main() {
    let total: usize =
        std::env::var("VIGIL_BENCH_RECORDS").ok().and_then(|count| count.parse().ok()).unwrap_or(10_000_000);
    let ingest_records = 400_000;
    let data = tempfile::tempdir().unwrap();
    let mut config = Config::for_tests(data.path());
    // Knobs for comparing writer settings; the defaults otherwise.
    let knob = |name: &str| std::env::var(name).ok().and_then(|value| value.parse().ok());
    if let Some(interval) = knob("VIGIL_BENCH_COMMIT_INTERVAL_MS") {
        config.logs.commit_interval_ms = interval;
    }
    if let Some(factor) = knob("VIGIL_BENCH_MERGE_FACTOR") {
        config.logs.merge_factor = factor as usize;
    }
    let server::Server { base, state, .. } = server::start(config).await;
    let token = state.auth.create_token("bench", Some(Scope::Admin), None, None).await.unwrap().0;

    // 1. Ingest.
    let mut lines = Lines(0x9e3779b97f4a7c15);
    let start = now().saturating_add_nanos(-3_600_000_000_000);
    let records: Vec<LogRecord> =
        (0..ingest_records).map(|index| lines.record(start.saturating_add_nanos(index as i64 * 1_000_000))).collect();
    // Each round writes a day of its own, so that it starts from an empty partition as the
    // ceiling starts from an empty index.
    let day = 86_400_000_000_000_i64;
    let ndjson = |days_ago: i64| -> Vec<(Vec<u8>, &'static str)> {
        records
            .chunks(5000)
            .map(|chunk| {
                let mut body = Vec::new();
                for record in chunk {
                    let timestamp = record.timestamp.saturating_add_nanos(-days_ago * day);
                    serde_json::to_writer(&mut body, &LogRecord { timestamp, ..record.clone() }).unwrap();
                    body.push(b'\n');
                }
                (body, "application/x-ndjson")
            })
            .collect()
    };
    let ndjson_bytes: usize = ndjson(0).iter().map(|(body, _)| body.len()).sum();
    // Three rounds of the ceiling and the HTTP path, each after a pause that lets the previous
    // phase's background merges finish: the figures of one round on a shared machine vary.
    let mut raw_rates = Vec::new();
    let mut ratios = Vec::new();
    let mut per_core = Vec::new();
    for round in 1..=3 {
        tokio::time::sleep(Duration::from_secs(3)).await;
        let raw = raw_tantivy(&records, 5000, ndjson_bytes);
        println!("raw tantivy (1 indexing thread):     {}  (round {round})", raw.line());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (http, mut freshness) = ingest_until_searchable(
            &state,
            ndjson(round),
            (&base, "/api/v1/logs"),
            &token,
            (ingest_records, ndjson_bytes),
            round == 3,
        )
        .await;
        let ratio = http.records_per_second / raw.records_per_second;
        println!("HTTP NDJSON, durable and searchable: {}  ({ratio:.2} of raw tantivy)", http.line());
        raw_rates.push(raw.records_per_second);
        ratios.push(ratio);
        per_core.push(http.bytes_per_cpu_second);
        if !freshness.is_empty() {
            println!(
                "  freshness under this load, 2xx to searchable: p50 {:?}  p95 {:?}  ({} probes)",
                percentile(&mut freshness, 0.5),
                percentile(&mut freshness, 0.95),
                freshness.len()
            );
        }
    }
    ratios.sort_by(f64::total_cmp);
    raw_rates.sort_by(f64::total_cmp);
    per_core.sort_by(f64::total_cmp);
    let raw_records = raw_rates[1];
    println!(
        "HTTP NDJSON, median of 3 rounds: {:.2} of raw tantivy, {:.1} MB/s per core of the server",
        ratios[1],
        per_core[1] / 1e6
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let loki: Vec<(Vec<u8>, &'static str)> = records
        .chunks(5000)
        .map(|chunk| {
            let streams = chunk
                .iter()
                .map(|record| StreamAdapter {
                    labels: format!(
                        "{{service_name=\"{}\", host=\"{}\", level=\"{}\"}}",
                        record.service, record.host, record.level
                    ),
                    entries: vec![EntryAdapter {
                        timestamp: Some(ProtoTimestamp {
                            seconds: record.timestamp.as_unix_nanos() / 1_000_000_000 - 4 * 86_400,
                            nanos: (record.timestamp.as_unix_nanos() % 1_000_000_000) as i32,
                        }),
                        line: record.message.clone(),
                        structured_metadata: vec![],
                    }],
                    hash: 0,
                })
                .collect();
            let body = prost::Message::encode_to_vec(&PushRequest { streams });
            (snap::raw::Encoder::new().compress_vec(&body).unwrap(), "application/x-protobuf")
        })
        .collect();
    let loki = ingest_until_searchable(
        &state,
        loki,
        (&base, "/loki/api/v1/push"),
        &token,
        (ingest_records, ndjson_bytes),
        false,
    )
    .await
    .0;
    println!(
        "HTTP Loki protobuf, searchable:      {}  ({:.2} of the median raw rate; MB of NDJSON)",
        loki.line(),
        loki.records_per_second / raw_records
    );

    if std::env::var("VIGIL_BENCH_ONLY").is_ok_and(|only| only == "ingest") {
        println!("peak RSS: {} MiB", peak_rss_mib());
        return;
    }

    // 2. Freshness.
    let client = reqwest::Client::new();
    let mut freshness = Vec::new();
    for round in 0..50 {
        freshness.push(time_to_searchable(&client, &base, &token, &mut lines, &format!("freshness{round}")).await);
    }
    println!(
        "freshness, 2xx to searchable:   p50 {:?}  p95 {:?}",
        percentile(&mut freshness, 0.5),
        percentile(&mut freshness, 0.95)
    );

    // 3. Search latency over `total` records spread over the last 7 days.
    let week_ago = now().saturating_add_nanos(-7 * 86_400_000_000_000);
    let step = (7 * 86_400_000_000_000_i64) / total as i64;
    let loading = Instant::now();
    let mut sent = 0;
    while sent < total {
        let count = (total - sent).min(20_000);
        let batch: Vec<LogRecord> = (sent..sent + count)
            .map(|index| lines.record(week_ago.saturating_add_nanos(index as i64 * step)))
            .collect();
        loop {
            match state.log_store.append(batch.clone(), Commit::Auto).await {
                Ok(()) => break,
                Err(vigil_logstore::LogStoreError::Busy) => tokio::time::sleep(Duration::from_millis(10)).await,
                Err(error) => panic!("{error}"),
            }
        }
        sent += count;
    }
    let loaded = loading.elapsed();
    println!(
        "loaded {total} records in {:.0} s ({:.0} records/s)",
        loaded.as_secs_f64(),
        total as f64 / loaded.as_secs_f64()
    );
    // Ingest is acknowledged ahead of tantivy's background merges: let them finish, as they
    // would on a server between bursts, before measuring searches.
    let settling = Instant::now();
    loop {
        let cpu = process_cpu();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if process_cpu() - cpu < 0.05 || settling.elapsed() > Duration::from_secs(300) {
            break;
        }
    }
    println!("background merges settled in {:.0} s", settling.elapsed().as_secs_f64());
    std::io::stdout().flush().ok();

    let last_hour = now().saturating_add_nanos(-3_600_000_000_000);
    let queries: [(&str, LogQuery); 5] = [
        ("term", LogQuery { q: "deadlock".to_owned(), limit: Some(100), ..LogQuery::default() }),
        ("phrase", LogQuery { q: "\"connection refused\"".to_owned(), limit: Some(100), ..LogQuery::default() }),
        (
            "field-filtered",
            LogQuery { q: "service:checkout AND level:error".to_owned(), limit: Some(100), ..LogQuery::default() },
        ),
        (
            "time-bounded",
            LogQuery { q: "timed".to_owned(), start: Some(last_hour), limit: Some(100), ..LogQuery::default() },
        ),
        ("match all", LogQuery { limit: Some(100), ..LogQuery::default() }),
    ];
    for (name, query) in queries {
        let mut samples = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            let page = state.log_store.search(query.clone()).await.unwrap();
            samples.push(started.elapsed());
            assert!(!page.records.is_empty());
        }
        println!(
            "search {name:<15} p50 {:>8.1?}  p99 {:>8.1?}",
            percentile(&mut samples, 0.5),
            percentile(&mut samples, 0.99)
        );
    }
    let mut samples = Vec::new();
    for _ in 0..20 {
        let end = now();
        let query = LogQuery {
            start: Some(end.saturating_add_nanos(-86_400_000_000_000)),
            end: Some(end),
            ..LogQuery::default()
        };
        let started = Instant::now();
        state.log_store.histogram(query, vigil_logstore::choose_interval(86_400_000_000_000)).await.unwrap();
        samples.push(started.elapsed());
    }
    println!(
        "histogram 24 h                  p50 {:>8.1?}  p99 {:>8.1?}",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.99)
    );
    println!("peak RSS: {} MiB", peak_rss_mib());
    state.shutdown.cancel();
}
