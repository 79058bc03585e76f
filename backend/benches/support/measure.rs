//! What the log benchmarks measure alike: CPU seconds and peak RSS of this process, rates per
//! wall and CPU second, and the ceiling of raw tantivy indexing; included by `#[path]`.

use std::time::{Duration, Instant};

use tantivy::indexer::UserOperation;
use tantivy::{Index, IndexWriter, TantivyDocument};
use vigil_logstore::LogFields;
use vigil_proto::LogRecord;

pub fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("VmHWM:"))
        .and_then(|line| line.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

/// CPU seconds (user and system) of the process, or of the calling thread.
pub fn cpu_seconds(stat: &str) -> f64 {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
    let after_name = stat.rfind(')').map_or("", |end| &stat[end + 2..]);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

pub fn process_cpu() -> f64 {
    cpu_seconds("/proc/self/stat")
}

pub fn thread_cpu() -> f64 {
    cpu_seconds("/proc/thread-self/stat")
}

/// A measured phase: records and NDJSON bytes per second of wall time and per CPU second.
pub struct Rate {
    pub records_per_second: f64,
    pub bytes_per_second: f64,
    pub bytes_per_cpu_second: f64,
}

impl Rate {
    pub fn new(records: usize, bytes: usize, elapsed: Duration, cpu_seconds: f64) -> Self {
        Self {
            records_per_second: records as f64 / elapsed.as_secs_f64(),
            bytes_per_second: bytes as f64 / elapsed.as_secs_f64(),
            bytes_per_cpu_second: bytes as f64 / cpu_seconds.max(0.01),
        }
    }

    pub fn line(&self) -> String {
        format!(
            "{:>9.0} records/s  {:>6.1} MB/s  {:>6.1} MB/s per core",
            self.records_per_second,
            self.bytes_per_second / 1e6,
            self.bytes_per_cpu_second / 1e6
        )
    }
}

/// The ceiling: the same documents given straight to one tantivy writer (one indexing thread,
/// in groups of one request's size, one commit at the end), with no HTTP, decoding or
/// durability.
pub fn raw_tantivy(records: &[LogRecord], batch: usize, ndjson_bytes: usize) -> Rate {
    let directory = tempfile::tempdir().unwrap();
    let (schema, fields) = LogFields::schema();
    let index = Index::create_in_dir(directory.path(), schema).unwrap();
    let mut writer: IndexWriter<TantivyDocument> = index.writer_with_num_threads(1, 64 << 20).unwrap();
    let records = records.to_vec();
    let count = records.len();
    let cpu = process_cpu();
    let started = Instant::now();
    let mut sequence = 0;
    let mut records = records.into_iter();
    loop {
        let operations: Vec<UserOperation> = records
            .by_ref()
            .take(batch)
            .map(|record| {
                sequence += 1;
                UserOperation::Add(fields.document(record, sequence))
            })
            .collect();
        if operations.is_empty() {
            break;
        }
        writer.run(operations).unwrap();
    }
    writer.commit().unwrap();
    let elapsed = started.elapsed();
    let rate = Rate::new(count, ndjson_bytes, elapsed, process_cpu() - cpu);
    writer.wait_merging_threads().unwrap();
    rate
}
