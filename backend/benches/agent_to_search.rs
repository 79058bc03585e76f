//! Agent to searchable, end to end: the release `vigil-agent` tails a generated logfmt file
//! (`VIGIL_BENCH_MB`, 512 by default; the agent's throughput benchmark writes the same lines)
//! into a backend started in this process, from the agent's start until every line is
//! committed, then checks that search counts every line exactly once.
//!
//! Prints lines/s and MiB/s of file, the backend's CPU seconds per GiB and MB per CPU second
//! (this process: the backend, and a poll every 20 ms), the index commits and write-ahead log
//! syncs the run made, the peak RSS of both processes, and the backend-only ceiling beside it:
//! the same records given straight to one tantivy writer (one indexing thread, no HTTP, no
//! decoding, no durability).
//!
//! The agent is the release binary next to this one, so build it first:
//! `cargo build --release -p vigil-agent && cargo bench -p vigil-backend --bench agent_to_search`.
//! `VIGIL_BENCH_IN_FLIGHT` sets the agent's `backend.batches_in_flight`.

use std::process::Command;
use std::time::{Duration, Instant};

use vigil_backend::config::Config;
use vigil_proto::auth::Scope;
use vigil_proto::level::detect_level;
use vigil_proto::{LogQuery, LogRecord, Timestamp};

#[path = "../../agent/benches/support/logfmt_file.rs"]
mod logfmt_file;
#[allow(dead_code)]
#[path = "support/measure.rs"]
mod measure;
#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

use measure::{peak_rss_mib, process_cpu, raw_tantivy};

/// The value of a counter, or a histogram's count or sum, in a Prometheus text page; a missing
/// sample stops the benchmark rather than printing a zero.
fn sample(page: &str, name: &str) -> f64 {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("/metrics has no sample {name}"))
}

/// The store's commits, log syncs and seconds spent committing, so far.
async fn store_counters(client: &reqwest::Client, base: &str, token: &str) -> (f64, f64, f64) {
    let page = client.get(format!("{base}/metrics")).bearer_auth(token).send().await.unwrap().text().await.unwrap();
    (
        sample(&page, "vigil_log_commits_total"),
        sample(&page, "vigil_log_wal_sync_duration_seconds_count"),
        sample(&page, "vigil_log_commit_duration_seconds_sum"),
    )
}

#[tokio::main]
async fn main() {
    let megabytes: u64 = std::env::var("VIGIL_BENCH_MB").ok().and_then(|value| value.parse().ok()).unwrap_or(512);
    let agent_binary = std::env::current_exe()
        .ok()
        .and_then(|bench| Some(bench.parent()?.parent()?.join("vigil-agent")))
        .filter(|path| path.is_file())
        .expect("the release vigil-agent is built: cargo build --release -p vigil-agent");
    let directory = tempfile::tempdir().unwrap();
    let (logs, file, lines, bytes) = logfmt_file::create(directory.path(), megabytes);
    let mib = bytes as f64 / f64::from(1 << 20);

    let mut config = Config::for_tests(&directory.path().join("backend"));
    // Knobs for comparing writer settings; the defaults otherwise.
    let knob = |name: &str| std::env::var(name).ok().and_then(|value| value.parse::<usize>().ok());
    if let Some(threads) = knob("VIGIL_BENCH_INDEXING_THREADS") {
        config.logs.indexing_threads = threads;
    }
    if let Some(megabytes) = knob("VIGIL_BENCH_WRITER_MEMORY_MB") {
        config.logs.writer_memory_bytes = megabytes << 20;
    }
    if let Some(factor) = knob("VIGIL_BENCH_MERGE_FACTOR") {
        config.logs.merge_factor = factor;
    }
    if let Some(interval) = knob("VIGIL_BENCH_COMMIT_INTERVAL_MS") {
        config.logs.commit_interval_ms = interval as u64;
    }
    let server::Server { base, state, .. } = server::start(config).await;
    let ingest = state.auth.create_token("agent", Some(Scope::Ingest), None, None).await.unwrap().0;
    let admin = state.auth.create_token("bench", Some(Scope::Admin), None, None).await.unwrap().0;
    let client = reqwest::Client::new();
    let (commits_before, syncs_before, committing_before) = store_counters(&client, &base, &admin).await;

    let in_flight = std::env::var("VIGIL_BENCH_IN_FLIGHT")
        .ok()
        .map(|value| format!("batches_in_flight = {value}\n"))
        .unwrap_or_default();
    let config = directory.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"bench\"\ndata_dir = {:?}\n[backend]\nurl = \"{base}\"\ntoken = \"{ingest}\"\n{in_flight}\
             [[sources]]\nname = \"bench\"\nservice = \"bench\"\ninclude = [{:?}]\n\
             [host_metrics]\nenabled = false\n[tail]\nstart_at = \"beginning\"\n[control]\nlisten = \"\"\n",
            directory.path().join("agent"),
            logs.join("*.log"),
        ),
    )
    .unwrap();

    let mut committed = state.log_store.committed();
    let cpu = process_cpu();
    let started = Instant::now();
    let mut agent = Command::new(&agent_binary)
        .arg("--config")
        .arg(&config)
        .env("VIGIL_AGENT_LOG", "warn")
        .spawn()
        .expect("vigil-agent starts");
    let pid = agent.id();
    let (mut agent_peak, mut agent_cpu) = (0, 0.0);
    loop {
        let done = committed.borrow_and_update().is_some_and(|last| last + 1 >= lines);
        if done {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(900), "the lines were not searchable in 15 minutes");
        (agent_peak, agent_cpu) = logfmt_file::usage(pid);
        let _ = tokio::time::timeout(Duration::from_millis(20), committed.changed()).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let backend_cpu = process_cpu() - cpu;
    let backend_peak = peak_rss_mib();
    let (last_peak, last_cpu) = logfmt_file::usage(pid);
    (agent_peak, agent_cpu) = (agent_peak.max(last_peak), f64::max(agent_cpu, last_cpu));
    let _ = agent.kill();
    let _ = agent.wait();
    let (commits, syncs, committing) = store_counters(&client, &base, &admin).await;

    let page = state.log_store.search(LogQuery { limit: Some(1), ..LogQuery::default() }.counting_all()).await.unwrap();
    assert_eq!(page.total, lines, "search counts every line of the file exactly once");

    println!(
        "vigil-agent → vigil, searchable: {:>9.0} lines/s  {:>6.1} MiB/s  ({seconds:.2} s)",
        lines as f64 / seconds,
        mib / seconds,
    );
    println!(
        "  backend: {backend_cpu:.1} CPU s, {:.1} CPU s per GiB, {:.1} MB per CPU s, peak RSS {backend_peak} MiB; \
         {} index commits ({:.1} s committing), {} log syncs",
        backend_cpu / (mib / 1024.0),
        bytes as f64 / 1e6 / backend_cpu,
        commits - commits_before,
        committing - committing_before,
        syncs - syncs_before,
    );
    println!(
        "  agent:   {agent_cpu:.1} CPU s, {:.1} CPU s per GiB, peak RSS {:.1} MiB",
        agent_cpu / (mib / 1024.0),
        agent_peak as f64 / 1024.0
    );

    // The ceiling: the records the agent sends (plain lines, the detected level, the read time).
    let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let records: Vec<LogRecord> = text
        .lines()
        .map(|line| LogRecord {
            timestamp: now,
            service: "bench".to_owned(),
            host: "bench".to_owned(),
            level: detect_level(line).to_owned(),
            message: line.to_owned(),
            attributes: serde_json::Map::new(),
        })
        .collect();
    drop(text);
    let raw = raw_tantivy(&records, 10_000, bytes as usize);
    println!(
        "raw tantivy (1 indexing thread): {:>9.0} lines/s  {:>6.1} MiB/s  {:.1} MB per CPU s",
        raw.records_per_second,
        raw.bytes_per_second / f64::from(1 << 20),
        raw.bytes_per_cpu_second / 1e6,
    );
}
