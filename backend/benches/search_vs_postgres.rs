//! Search, Vigil against PostgreSQL full-text search, on the same corpus:
//! `cargo bench -p vigil-backend --bench search_vs_postgres` (1,000,000 records;
//! `VIGIL_BENCH_RECORDS=10000000` for the larger run).
//!
//! The corpus is generated deterministically: log lines of several kinds (HTTP access lines,
//! database timings, user events, warnings, errors with Java, Rust and Python stack traces,
//! background jobs), 8 services, 20 hosts, one record per slot of `24 h / records` over the
//! last 24 hours (so that no two records share a timestamp and "the newest 100" is one answer).
//! Four rare words each appear in 0.05 % of the lines, four common words in about 20 % each.
//!
//! - Vigil: a backend in this process, loaded through its ingest path (native NDJSON, batches
//!   of 5,000 over 4 concurrent clients) until every record is searchable; searches are timed
//!   in-process (`LogStore::search` on the store the server itself serves from: same index,
//!   same readers, no HTTP) and over HTTP (`GET /api/v1/logs/search` on one kept-alive client,
//!   the JSON answer read and decoded).
//! - PostgreSQL: a throwaway cluster of the Debian binaries (`initdb`, `postgres`) in a
//!   temporary directory on a free loopback port, with default durability (`fsync` on). A
//!   `logs` table whose `tsv` is a generated `tsvector` column (`simple` configuration),
//!   loaded with `COPY` over one connection; then a GIN index on `tsv`, B-trees on `ts` and
//!   `(service, ts)`, and `VACUUM ANALYZE` (so that autovacuum does not start during the
//!   timings), each timed. `ts` is a `bigint` of Unix nanoseconds, as Vigil stores it (the
//!   same 8-byte comparisons as `timestamptz`, without its microsecond rounding). Searches run
//!   as prepared statements on one kept connection, planned for their parameters
//!   (`plan_cache_mode = force_custom_plan`: the rare and the common word share a statement).
//!
//! Query classes, each asking for the newest 100 matches: a rare word, a common word,
//! `service:payments AND` the common word, and the common word in the last hour. Each class
//! rotates over 4 words of the same selectivity. Before timing, every query of every class is
//! checked to return the same records (timestamp, service, host, level, line) and, with
//! `track_total_hits=true`, the same number of matches on all three paths; and with Vigil's
//! default count (up to 1,000, then "at least", as Elasticsearch's `track_total_hits`) the
//! same records and a count that is either the same or at least 1,000. The timed searches
//! ask as a search page does: the default count for Vigil, none for PostgreSQL (whose
//! `LIMIT 100` counts nothing). Then each class is warmed up and timed
//! [`TIMED_QUERIES`] times, the three paths taking turns query by query so that a change of
//! the shared machine's speed touches them alike.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::{Connection as ClientConnection, SendRequest};
use hyper_util::rt::TokioIo;
use sqlx::{Connection, Executor, PgConnection, Row};
use vigil_backend::config::Config;
use vigil_proto::auth::Scope;
use vigil_proto::{LogHit, LogPage, LogQuery, LogRecord, Timestamp, TotalRelation, TrackTotalHits, paths};

#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

const SERVICES: [&str; 8] = ["api", "checkout", "payments", "search", "auth", "cart", "catalog", "gateway"];
const HOSTS: usize = 20;
/// Each in 0.05 % of the lines.
const RARE_WORDS: [&str; 4] = ["segfault", "quarantined", "brownout", "kerberos"];
/// Each in about 20 % of the lines: `GET` access lines, database timings, user events, and
/// warnings and errors.
const COMMON_WORDS: [&str; 4] = ["get", "query", "user", "failed"];
const FILTER_SERVICE: &str = "payments";
const BATCH_RECORDS: usize = 5000;
const INGEST_CLIENTS: usize = 4;
const LIMIT: u32 = 100;
const WARM_UP_ROUNDS: usize = 5;
const TIMED_QUERIES: usize = 200;
const DAY_NANOS: i64 = 86_400_000_000_000;
const HOUR_NANOS: i64 = 3_600_000_000_000;

/// The PostgreSQL settings besides the defaults: what an operator of a dedicated log database
/// on this machine (24 GB, SSD) would set. Durability stays on.
const POSTGRES_SETTINGS: [(&str, &str); 6] = [
    ("shared_buffers", "2GB"),
    ("effective_cache_size", "8GB"),
    ("maintenance_work_mem", "1GB"),
    ("max_wal_size", "8GB"),
    ("random_page_cost", "1.1"),
    // Short queries: compiling them would cost more than it saves.
    ("jit", "off"),
];

/// A small deterministic generator (splitmix64).
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut mixed = self.0;
        mixed = (mixed ^ (mixed >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        mixed = (mixed ^ (mixed >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        mixed ^ (mixed >> 31)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// The corpus: `records` records, one in each slot of `24 h / records` from `start`.
#[derive(Clone, Copy)]
struct Corpus {
    start: i64,
    records: usize,
}

impl Corpus {
    fn slot_nanos(&self) -> i64 {
        DAY_NANOS / self.records as i64
    }

    fn chunks(&self) -> usize {
        self.records.div_ceil(BATCH_RECORDS)
    }

    /// The records of chunk `index`, the same at every call.
    fn chunk(&self, index: usize) -> Vec<LogRecord> {
        let mut random = Random(0x5eed_0000_0000_0000 ^ index as u64);
        let slot = self.slot_nanos();
        let first = index * BATCH_RECORDS;
        (first..self.records.min(first + BATCH_RECORDS))
            .map(|position| {
                let nanos = self.start + position as i64 * slot + random.below(slot as u64) as i64;
                record(&mut random, Timestamp::from_unix_nanos(nanos).expect("timestamps after 1970"))
            })
            .collect()
    }
}

fn record(random: &mut Random, timestamp: Timestamp) -> LogRecord {
    let service = SERVICES[random.below(SERVICES.len() as u64) as usize];
    let host = format!("node-{:02}", random.below(HOSTS as u64) + 1);
    let (level, message) = message(random, service);
    LogRecord {
        timestamp,
        service: service.to_owned(),
        host,
        level: level.to_owned(),
        message,
        attributes: serde_json::Map::new(),
    }
}

/// A line and its level. The common and rare words appear only where the templates say.
fn message(random: &mut Random, service: &str) -> (&'static str, String) {
    if random.below(10_000) < 20 {
        return rare_message(random, service);
    }
    match random.below(100) {
        0..35 => access_line(random),
        35..55 => database_line(random),
        55..75 => user_line(random),
        75..85 => warning_line(random),
        85..95 => error_line(random, service),
        _ => background_line(random),
    }
}

fn access_line(random: &mut Random) -> (&'static str, String) {
    let method = match random.below(35) {
        0..20 => "GET",
        20..29 => "POST",
        29..33 => "PUT",
        _ => "DELETE",
    };
    let id = random.below(100_000);
    let path = match random.below(8) {
        0 => format!("/api/v2/orders/{id}"),
        1 => "/api/v2/cart/items".to_owned(),
        2 => "/checkout/confirm".to_owned(),
        3 => "/login".to_owned(),
        4 => format!("/search?q=running+shoes&page={}", random.below(10) + 1),
        5 => format!("/static/js/app.{:08x}.js", random.below(1 << 32)),
        6 => "/healthz".to_owned(),
        _ => format!("/api/v2/products/{id}/reviews"),
    };
    let status = match random.below(100) {
        0..80 => 200,
        80..85 => 201,
        85..88 => 204,
        88..91 => 304,
        91..94 => 400,
        94..97 => 404,
        97 => 429,
        98 => 500,
        _ => 503,
    };
    let level = match status {
        500.. => "error",
        400.. => "warn",
        _ => "info",
    };
    let referer = random.pick(&["-", "https://shop.example.com/cart", "https://shop.example.com/", "-"]);
    let agent = random.pick(&[
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
        "curl/8.5.0",
        "okhttp/4.12.0",
        "kube-probe/1.29",
        "python-requests/2.31.0",
    ]);
    let line = format!(
        "10.{}.{}.{} - - \"{method} {path} HTTP/1.1\" {status} {} {}ms \"{referer}\" \"{agent}\" trace_id={:016x}",
        random.below(4),
        random.below(256),
        random.below(256),
        random.below(200_000),
        random.below(900) + 1,
        random.next()
    );
    (level, line)
}

fn database_line(random: &mut Random) -> (&'static str, String) {
    let table = random.pick(&["orders", "order_items", "customers", "inventory", "sessions", "ledger_entries"]);
    let milliseconds = random.below(300);
    let pool = random.pick(&["primary", "replica"]);
    let rows = random.below(500);
    let line = if random.below(4) == 0 {
        format!("db query on {table} finished in {milliseconds} ms ({rows} rows, {pool})")
    } else {
        let operation = random.pick(&["SELECT", "INSERT INTO", "UPDATE", "DELETE FROM"]);
        format!(
            "query {operation} {table} took {milliseconds}.{:03} ms rows={rows} pool={pool} conn={}",
            random.below(1000),
            random.below(32)
        )
    };
    (if milliseconds > 250 { "warn" } else { "debug" }, line)
}

fn user_line(random: &mut Random) -> (&'static str, String) {
    let count = random.below(9) + 1;
    let action = match random.below(6) {
        0 => "logged in".to_owned(),
        1 => format!("added {count} items to the cart"),
        2 => format!("started checkout with {count} items"),
        3 => format!("viewed product {}", random.below(100_000)),
        4 => "changed the delivery address".to_owned(),
        _ => format!("applied coupon SPRING{}", count * 5),
    };
    let region = random.pick(&["eu-west-1", "us-east-1", "ap-south-1"]);
    ("info", format!("user {} {action} (session {:012x}, {region})", random.below(1_000_000), random.below(1 << 48)))
}

fn warning_line(random: &mut Random) -> (&'static str, String) {
    let upstream = SERVICES[random.below(SERVICES.len() as u64) as usize];
    let line = match random.below(3) {
        0 => format!(
            "upstream {upstream}:{} failed health check ({}/3), taking it out of rotation",
            8000 + random.below(1000),
            random.below(3) + 1
        ),
        1 => format!(
            "call to {upstream}.internal:8443 failed after {} ms: deadline exceeded, retrying (attempt {} of 3)",
            random.below(5000),
            random.below(3) + 1
        ),
        _ => format!(
            "failed to refresh feature flags from the config service: HTTP 503, keeping cached values (age {} s)",
            random.below(600)
        ),
    };
    ("warn", line)
}

fn error_line(random: &mut Random, service: &str) -> (&'static str, String) {
    let (line, line_2) = (random.below(400) + 20, random.below(400) + 20);
    let text = match random.below(3) {
        0 => format!(
            "request {:016x} failed: java.net.SocketTimeoutException: Read timed out\n\
             \tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)\n\
             \tat com.shop.{service}.client.GatewayClient.authorize(GatewayClient.java:{line})\n\
             \tat com.shop.{service}.ChargeService.charge(ChargeService.java:{line_2})\n\
             \t... {} more",
            random.next(),
            random.below(60) + 10
        ),
        1 => format!(
            "handler failed: error sending request for url (http://inventory:8080/v1/reserve/{}): \
             connection refused (os error 111)\n   0: inventory_client::reserve\n             at src/client.rs:{line}\n   \
             1: {service}::handlers::checkout\n             at src/handlers.rs:{line_2}",
            random.below(100_000)
        ),
        _ => {
            let state = random.pick(&["cancelled", "refunded", "unknown"]);
            format!(
                "task {} failed\nTraceback (most recent call last):\n  File \"/app/worker/tasks.py\", line {line}, in run\n    \
                 result = handler(payload)\n  File \"/app/worker/handlers.py\", line {line_2}, in handler\n    \
                 raise ValueError(f\"invalid order state: {{state}}\")\nValueError: invalid order state: {state}",
                random.below(1_000_000)
            )
        }
    };
    ("error", text)
}

fn background_line(random: &mut Random) -> (&'static str, String) {
    match random.below(3) {
        0 => ("debug", format!("cache miss for product:{}, loaded in {} ms", random.below(100_000), random.below(80))),
        1 => (
            "info",
            format!(
                "job reindex-catalog finished in {}.{} s, {} documents",
                random.below(90),
                random.below(10),
                random.below(50_000)
            ),
        ),
        _ => ("debug", format!("gc pause {} ms, heap {} MB of 4096 MB", random.below(50), random.below(4096))),
    }
}

fn rare_message(random: &mut Random, service: &str) -> (&'static str, String) {
    match random.below(4) {
        0 => (
            "fatal",
            format!(
                "worker process {} segfault at {:x} ip {:016x} sp {:016x} error 4 in libssl.so.3",
                random.below(60_000),
                random.below(1 << 40),
                random.next(),
                random.next()
            ),
        ),
        1 => (
            "error",
            format!("message {} quarantined after 5 delivery attempts (queue {service}-events)", random.below(1 << 30)),
        ),
        2 => ("warn", format!("entering brownout: shedding {} percent of optional traffic", random.below(50) + 5)),
        _ => ("warn", format!("kerberos ticket for principal svc_{service} expired, renewing")),
    }
}

/// A chunk as the body of `POST /api/v1/logs`.
fn ndjson(records: &[LogRecord]) -> Vec<u8> {
    let mut body = Vec::with_capacity(records.len() * 320);
    for record in records {
        serde_json::to_writer(&mut body, record).expect("records serialize");
        body.push(b'\n');
    }
    body
}

/// A chunk in `COPY`'s text format: `ts, service, host, level, line`.
fn copy_rows(records: &[LogRecord]) -> Vec<u8> {
    let mut rows = String::with_capacity(records.len() * 300);
    for record in records {
        let _ = write!(
            rows,
            "{}\t{}\t{}\t{}\t",
            record.timestamp.as_unix_nanos(),
            record.service,
            record.host,
            record.level
        );
        for character in record.message.chars() {
            match character {
                '\\' => rows.push_str("\\\\"),
                '\n' => rows.push_str("\\n"),
                '\r' => rows.push_str("\\r"),
                '\t' => rows.push_str("\\t"),
                other => rows.push(other),
            }
        }
        rows.push('\n');
    }
    rows.into_bytes()
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * fraction).round() as usize]
}

fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, fields 14 and 15 of stat(5), in clock ticks of 1/100 s.
    (ticks(11) + ticks(12)) / 100.0
}

fn directory_bytes(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| match entry.file_type() {
            Ok(kind) if kind.is_dir() => directory_bytes(&entry.path()),
            _ => entry.metadata().map_or(0, |metadata| metadata.len()),
        })
        .sum()
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1 << 20) as f64)
}

/// The segments of each partition's last `meta.json`, partition by partition.
fn segments_on_disk(logs: &Path) -> Vec<usize> {
    let mut counts = Vec::new();
    for class in std::fs::read_dir(logs).into_iter().flatten().filter_map(Result::ok) {
        for day in std::fs::read_dir(class.path()).into_iter().flatten().filter_map(Result::ok) {
            if let Ok(index) = tantivy::Index::open_in_dir(day.path()) {
                counts.push(index.searchable_segment_ids().map_or(0, |ids| ids.len()));
            }
        }
    }
    counts
}

/// A throwaway PostgreSQL cluster, as `tests/api/postgres.rs` starts one (that file needs the
/// test binary's helpers): `initdb` and `postgres` of the newest installed version, in a
/// directory of its own, on a free loopback port. A watchdog stops the server and removes the
/// directory once this process is gone, however it ends. As root, the server runs as the
/// `postgres` user (PostgreSQL refuses root).
struct Postgres {
    port: u16,
    root: PathBuf,
    _watchdog: std::process::Child,
}

impl Postgres {
    fn start(settings: &[(&str, &str)]) -> Self {
        let bin = Self::bin_dir();
        let user = Self::run_as();
        let as_user = |program: PathBuf| {
            let mut command = Command::new(program);
            if let Some((uid, gid)) = user {
                command.uid(uid).gid(gid);
            }
            command
        };
        let root = std::env::temp_dir().join(format!("vigil-bench-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&root, Some(uid), Some(gid)).unwrap();
        }
        let data = root.join("data");
        let output = as_user(bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-instructions"])
            .output()
            .expect("initdb runs");
        assert!(output.status.success(), "initdb failed: {}", String::from_utf8_lossy(&output.stderr));
        let mut configuration = std::fs::OpenOptions::new().append(true).open(data.join("postgresql.conf")).unwrap();
        writeln!(configuration, "\n# vigil search_vs_postgres benchmark").unwrap();
        for (name, value) in settings {
            writeln!(configuration, "{name} = '{value}'").unwrap();
        }
        drop(configuration);

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let script = r#"
            "$1/postgres" -D "$2/data" -p "$3" -k "$2" -c listen_addresses=127.0.0.1 >"$2/server.log" 2>&1 &
            server=$!
            while [ -d "/proc/$4" ] && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
            kill -INT "$server" 2>/dev/null; wait "$server"; rm -rf "$2"
        "#;
        let watchdog = as_user(PathBuf::from("sh"))
            .arg("-c")
            .arg(script)
            .arg("watchdog")
            .arg(&bin)
            .arg(&root)
            .arg(port.to_string())
            .arg(std::process::id().to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("the PostgreSQL watchdog starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = Command::new(bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                break;
            }
            let log = std::fs::read_to_string(root.join("server.log")).unwrap_or_default();
            assert!(Instant::now() < deadline, "PostgreSQL did not start within 60 s:\n{log}");
            std::thread::sleep(Duration::from_millis(100));
        }
        Self { port, root, _watchdog: watchdog }
    }

    fn bin_dir() -> PathBuf {
        let mut candidates: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL is not installed: apt-get install postgresql (scripts/setup.sh does)")
            .filter_map(Result::ok)
            .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
            .filter(|(_, bin)| bin.join("initdb").exists())
            .collect();
        candidates.sort();
        candidates.pop().expect("no /usr/lib/postgresql/*/bin/initdb").1
    }

    /// The uid and gid to run PostgreSQL as: ours, or `postgres` when we are root.
    fn run_as() -> Option<(u32, u32)> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let euid: u32 =
            status.lines().find(|line| line.starts_with("Uid:"))?.split_whitespace().nth(2)?.parse().ok()?;
        if euid != 0 {
            return None;
        }
        let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
        let entry = passwd
            .lines()
            .find(|line| line.starts_with("postgres:"))
            .expect("running as root needs the postgres user (apt-get install postgresql)");
        let fields: Vec<&str> = entry.split(':').collect();
        Some((fields[2].parse().unwrap(), fields[3].parse().unwrap()))
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

/// What a query class adds to the word.
#[derive(Clone, Copy)]
enum Filter {
    None,
    Service(&'static str),
    Since(Timestamp),
}

struct Class {
    name: &'static str,
    words: [&'static str; 4],
    filter: Filter,
}

impl Class {
    fn vigil_query(&self, word: &str) -> LogQuery {
        let (q, start) = match self.filter {
            Filter::None => (word.to_owned(), None),
            Filter::Service(service) => (format!("service:{service} AND {word}"), None),
            Filter::Since(since) => (word.to_owned(), Some(since)),
        };
        LogQuery { q, start, limit: Some(LIMIT), ..LogQuery::default() }
    }

    /// The `WHERE` clause beyond the text match, `$2` being the filter's parameter.
    fn postgres_condition(&self) -> &'static str {
        match self.filter {
            Filter::None => "",
            Filter::Service(_) => " AND service = $2",
            Filter::Since(_) => " AND ts >= $2",
        }
    }

    fn postgres_search(&self) -> String {
        format!(
            "SELECT ts, service, host, level, line FROM logs WHERE tsv @@ to_tsquery('simple', $1){} \
             ORDER BY ts DESC LIMIT {LIMIT}",
            self.postgres_condition()
        )
    }

    fn postgres_count(&self) -> String {
        format!("SELECT count(*) FROM logs WHERE tsv @@ to_tsquery('simple', $1){}", self.postgres_condition())
    }
}

/// A record as both sides answer it: timestamp (Unix nanoseconds), service, host, level, line.
type Answer = (i64, String, String, String, String);

fn answers(hits: &[LogHit]) -> Vec<Answer> {
    hits.iter()
        .map(|hit| {
            (
                hit.timestamp.as_unix_nanos(),
                hit.service.clone(),
                hit.host.clone(),
                hit.level.clone(),
                hit.message.clone(),
            )
        })
        .collect()
}

async fn postgres_rows(connection: &mut PgConnection, sql: &str, class: &Class, word: &str) -> Vec<Answer> {
    let query = sqlx::query_as::<_, Answer>(sql).bind(word);
    let query = match class.filter {
        Filter::None => query,
        Filter::Service(service) => query.bind(service),
        Filter::Since(since) => query.bind(since.as_unix_nanos()),
    };
    query.fetch_all(connection).await.expect("the PostgreSQL search runs")
}

async fn postgres_count(connection: &mut PgConnection, class: &Class, word: &str) -> i64 {
    let sql = class.postgres_count();
    let query = sqlx::query_scalar::<_, i64>(&sql).bind(word);
    let query = match class.filter {
        Filter::None => query,
        Filter::Service(service) => query.bind(service),
        Filter::Since(since) => query.bind(since.as_unix_nanos()),
    };
    query.fetch_one(connection).await.expect("the PostgreSQL count runs")
}

async fn postgres_plan(connection: &mut PgConnection, class: &Class, word: &str) -> Vec<String> {
    let sql = format!("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) {}", class.postgres_search());
    let query = sqlx::query(&sql).bind(word);
    let query = match class.filter {
        Filter::None => query,
        Filter::Service(service) => query.bind(service),
        Filter::Since(since) => query.bind(since.as_unix_nanos()),
    };
    let rows = query.fetch_all(connection).await.expect("EXPLAIN runs");
    rows.iter().map(|row| row.get::<String, _>(0)).collect()
}

/// Vigil over HTTP: `GET /api/v1/logs/search` on one kept HTTP/1.1 connection driven by the
/// calling task, as the PostgreSQL connection is, the answer read and decoded. (A pooled client
/// such as reqwest hands each request to a connection task of its own on another thread: two
/// more thread wake-ups a request, which the server does not cause.)
struct HttpSearch {
    sender: SendRequest<Empty<Bytes>>,
    connection: Pin<Box<ClientConnection<TokioIo<tokio::net::TcpStream>, Empty<Bytes>>>>,
    authority: String,
    authorization: String,
}

impl HttpSearch {
    async fn connect(base: &str, token: &str) -> Self {
        let authority = base.trim_start_matches("http://").trim_end_matches('/').to_owned();
        let stream = tokio::net::TcpStream::connect(&authority).await.expect("the server listens");
        stream.set_nodelay(true).unwrap();
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
        Self { sender, connection: Box::pin(connection), authority, authorization: format!("Bearer {token}") }
    }

    async fn search(&mut self, query: &LogQuery) -> LogPage {
        let mut target = url::Url::parse("http://vigil").unwrap();
        target.set_path(paths::LOGS_SEARCH);
        {
            let mut parameters = target.query_pairs_mut();
            parameters.append_pair("q", &query.q).append_pair("limit", &LIMIT.to_string());
            if let Some(start) = query.start {
                parameters.append_pair("start", &start.to_rfc3339());
            }
            match query.track_total_hits {
                Some(TrackTotalHits::All) => {
                    parameters.append_pair("track_total_hits", "true");
                }
                Some(TrackTotalHits::UpTo(bound)) => {
                    parameters.append_pair("track_total_hits", &bound.to_string());
                }
                None => {}
            }
        }
        let request = http::Request::get(&target[url::Position::BeforePath..])
            .header(http::header::HOST, &self.authority)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .body(Empty::<Bytes>::new())
            .unwrap();
        let Self { sender, connection, .. } = self;
        let exchange = async {
            let response = sender.send_request(request).await.expect("the search is answered");
            assert!(response.status().is_success(), "search answered {}", response.status());
            response.into_body().collect().await.expect("the answer is read").to_bytes()
        };
        let body = tokio::select! {
            body = exchange => body,
            closed = connection.as_mut() => panic!("the connection to Vigil closed: {closed:?}"),
        };
        serde_json::from_slice(&body).expect("a LogPage")
    }
}

/// Posts every body over `clients` concurrent connections, each answered once durable.
async fn post_all(bodies: Vec<Vec<u8>>, url: String, token: String, clients: usize) {
    let bodies = Arc::new(Mutex::new(VecDeque::from(bodies)));
    let client = reqwest::Client::new();
    let tasks: Vec<_> = (0..clients)
        .map(|_| {
            let (bodies, client, url, token) = (bodies.clone(), client.clone(), url.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    let Some(body) = bodies.lock().unwrap().pop_front() else { return };
                    let response = client
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert!(response.status().is_success(), "ingest answered {}", response.status());
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

struct Timings {
    in_process: Vec<Duration>,
    http: Vec<Duration>,
    postgres: Vec<Duration>,
}

fn format_duration(duration: Duration) -> String {
    let milliseconds = duration.as_secs_f64() * 1e3;
    if milliseconds < 10.0 { format!("{milliseconds:.2} ms") } else { format!("{milliseconds:.1} ms") }
}

#[tokio::main]
async fn main() {
    let began = Instant::now();
    let records: usize =
        std::env::var("VIGIL_BENCH_RECORDS").ok().and_then(|count| count.parse().ok()).unwrap_or(1_000_000);
    let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unwrap();
    let corpus = Corpus { start: now.as_unix_nanos() - DAY_NANOS, records };

    let postgres = Postgres::start(&POSTGRES_SETTINGS);
    let data = tempfile::tempdir().unwrap();
    let server::Server { base, state, .. } = server::start(Config::for_tests(data.path())).await;
    let token = state.auth.create_token("bench", Some(Scope::Admin), None, None).await.unwrap().0;

    // Vigil: through the ingest path until searchable, then its background merges.
    let generating = Instant::now();
    let bodies: Vec<Vec<u8>> = (0..corpus.chunks()).map(|chunk| ndjson(&corpus.chunk(chunk))).collect();
    let ndjson_bytes: usize = bodies.iter().map(Vec::len).sum();
    println!(
        "corpus: {records} records over the last 24 h, {} services, {HOSTS} hosts; {} of NDJSON \
         ({} bytes a record), generated in {:.1} s (not counted below)",
        SERVICES.len(),
        mib(ndjson_bytes as u64),
        ndjson_bytes / records,
        generating.elapsed().as_secs_f64()
    );
    let mut committed = state.log_store.committed();
    let loading = Instant::now();
    post_all(bodies, format!("{base}{}", paths::LOGS), token.clone(), INGEST_CLIENTS).await;
    let acknowledged = loading.elapsed();
    committed.wait_for(|last| last.is_some_and(|last| last + 1 >= records as u64)).await.unwrap();
    let vigil_load = loading.elapsed();
    let settling = Instant::now();
    loop {
        let cpu = process_cpu_seconds();
        tokio::time::sleep(Duration::from_secs(1)).await;
        if process_cpu_seconds() - cpu < 0.05 || settling.elapsed() > Duration::from_secs(600) {
            break;
        }
    }
    let settled = settling.elapsed();
    let logs_directory = data.path().join("logs");
    println!(
        "Vigil load: HTTP NDJSON ({INGEST_CLIENTS} clients, batches of {BATCH_RECORDS}) until searchable \
         {:.1} s ({:.0} records/s; all acknowledged at {:.1} s); background merges settled {:.0} s later",
        vigil_load.as_secs_f64(),
        records as f64 / vigil_load.as_secs_f64(),
        acknowledged.as_secs_f64(),
        settled.as_secs_f64()
    );
    println!(
        "  on disk: {} ({:?} segments per partition in meta.json)",
        mib(directory_bytes(&logs_directory)),
        segments_on_disk(&logs_directory)
    );
    std::io::stdout().flush().ok();

    // PostgreSQL: COPY, then the indexes and the statistics.
    let mut connection = PgConnection::connect(&postgres.url()).await.expect("connect to PostgreSQL");
    let version: String = sqlx::query_scalar("SHOW server_version").fetch_one(&mut connection).await.unwrap();
    connection
        .execute(
            "CREATE TABLE logs (
                ts bigint NOT NULL,
                service text NOT NULL,
                host text NOT NULL,
                level text NOT NULL,
                line text NOT NULL,
                tsv tsvector GENERATED ALWAYS AS (to_tsvector('simple', line)) STORED
            )",
        )
        .await
        .unwrap();
    let generating = Instant::now();
    let copy_chunks: Vec<Vec<u8>> = (0..corpus.chunks()).map(|chunk| copy_rows(&corpus.chunk(chunk))).collect();
    let generated = generating.elapsed();
    let loading = Instant::now();
    let mut copy = connection.copy_in_raw("COPY logs (ts, service, host, level, line) FROM STDIN").await.unwrap();
    for chunk in copy_chunks {
        copy.send(chunk).await.unwrap();
    }
    let copied = copy.finish().await.unwrap();
    assert_eq!(copied, records as u64);
    let copy_time = loading.elapsed();
    let mut index_times = Vec::new();
    for (name, statement) in [
        ("GIN (tsv)", "CREATE INDEX logs_tsv ON logs USING gin (tsv)"),
        ("B-tree (ts)", "CREATE INDEX logs_ts ON logs (ts)"),
        ("B-tree (service, ts)", "CREATE INDEX logs_service_ts ON logs (service, ts)"),
        ("VACUUM ANALYZE", "VACUUM ANALYZE logs"),
    ] {
        let started = Instant::now();
        connection.execute(statement).await.unwrap();
        index_times.push((name, started.elapsed()));
    }
    let postgres_load = loading.elapsed();
    println!(
        "PostgreSQL {version} load: COPY over one connection {:.1} s (rows generated in {:.1} s before, not counted); {}; \
         total {:.1} s ({:.0} records/s)",
        copy_time.as_secs_f64(),
        generated.as_secs_f64(),
        index_times
            .iter()
            .map(|(name, time)| format!("{name} {:.1} s", time.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", "),
        postgres_load.as_secs_f64(),
        records as f64 / postgres_load.as_secs_f64()
    );
    let sizes: (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT pg_table_size('logs'), pg_relation_size('logs_tsv'), pg_relation_size('logs_ts'), \
         pg_relation_size('logs_service_ts')",
    )
    .fetch_one(&mut connection)
    .await
    .unwrap();
    println!(
        "  on disk: {} (table with TOAST {}, GIN {}, B-trees {} and {}); settings: {}",
        mib((sizes.0 + sizes.1 + sizes.2 + sizes.3) as u64),
        mib(sizes.0 as u64),
        mib(sizes.1 as u64),
        mib(sizes.2 as u64),
        mib(sizes.3 as u64),
        POSTGRES_SETTINGS.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(" ")
    );
    connection.execute("SET plan_cache_mode = force_custom_plan").await.unwrap();
    std::io::stdout().flush().ok();

    let since =
        Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unwrap().saturating_add_nanos(-HOUR_NANOS);
    let classes = [
        Class { name: "rare word", words: RARE_WORDS, filter: Filter::None },
        Class { name: "common word", words: COMMON_WORDS, filter: Filter::None },
        Class { name: "service:payments AND common", words: COMMON_WORDS, filter: Filter::Service(FILTER_SERVICE) },
        Class { name: "common word, last hour", words: COMMON_WORDS, filter: Filter::Since(since) },
    ];
    let mut http = HttpSearch::connect(&base, &token).await;

    // The same answers on every path, or the timings compare nothing.
    println!("matches (the same count and newest {LIMIT} records from Vigil in-process, Vigil HTTP and PostgreSQL):");
    for class in &classes {
        let sql = class.postgres_search();
        let mut counts = Vec::new();
        for word in class.words {
            let query = class.vigil_query(word).counting_all();
            let in_process = state.log_store.search(query.clone()).await.expect("the Vigil search runs");
            let over_http = http.search(&query).await;
            let postgres_answer = postgres_rows(&mut connection, &sql, class, word).await;
            let matches = postgres_count(&mut connection, class, word).await;
            let vigil_answer = answers(&in_process.records);
            assert_eq!(
                vigil_answer,
                answers(&over_http.records),
                "{}: {word}: Vigil in-process and HTTP differ",
                class.name
            );
            if let Some(position) = (0..vigil_answer.len().max(postgres_answer.len()))
                .find(|&position| vigil_answer.get(position) != postgres_answer.get(position))
            {
                panic!(
                    "{}: {word}: Vigil and PostgreSQL differ at record {position} of {} and {}:\n  Vigil:      {:?}\n  PostgreSQL: {:?}",
                    class.name,
                    vigil_answer.len(),
                    postgres_answer.len(),
                    vigil_answer.get(position),
                    postgres_answer.get(position)
                );
            }
            assert_eq!(
                (in_process.total, over_http.total),
                (matches as u64, matches as u64),
                "{}: {word}: the number of matches differs (Vigil in-process, HTTP; PostgreSQL {matches})",
                class.name
            );
            // As timed: counted up to the default bound, the same page.
            let bounded = state.log_store.search(class.vigil_query(word)).await.unwrap();
            assert_eq!(
                answers(&bounded.records),
                vigil_answer,
                "{}: {word}: the page depends on the count",
                class.name
            );
            let bound = LogQuery::DEFAULT_TRACK_TOTAL_HITS;
            match bounded.total_relation {
                TotalRelation::Eq => assert_eq!(bounded.total, matches as u64, "{}: {word}", class.name),
                TotalRelation::Gte => assert!(
                    bounded.total >= bound && bounded.total <= matches as u64,
                    "{}: {word}: at least {} of {matches}",
                    class.name,
                    bounded.total
                ),
            }
            counts.push(format!("{word} {matches} ({:.3} %)", matches as f64 * 100.0 / records as f64));
        }
        println!("  {:<28} {}", class.name, counts.join(", "));
    }
    std::io::stdout().flush().ok();

    // For a profiler: one class's search over and over (`2`: in-process, `2h`: over HTTP), then
    // the end.
    if let Ok(repeat) = std::env::var("VIGIL_BENCH_REPEAT_CLASS") {
        let over_http = repeat.ends_with('h');
        let class = &classes[repeat.trim_end_matches('h').parse::<usize>().expect("a class number")];
        println!("repeating {} (HTTP: {over_http}) for 20 s (process {})", class.name, std::process::id());
        std::io::stdout().flush().ok();
        let (started, mut searches) = (Instant::now(), 0usize);
        while started.elapsed() < Duration::from_secs(20) {
            let query = class.vigil_query(class.words[searches % class.words.len()]);
            if over_http {
                std::hint::black_box(http.search(&query).await);
            } else {
                std::hint::black_box(state.log_store.search(query).await.unwrap());
            }
            searches += 1;
        }
        println!("{searches} searches, {:.3} ms each", 20_000.0 / searches as f64);
        return;
    }

    let mut results = Vec::new();
    for class in &classes {
        let sql = class.postgres_search();
        let mut timings = Timings { in_process: Vec::new(), http: Vec::new(), postgres: Vec::new() };
        let rounds = class.words.len() * WARM_UP_ROUNDS + TIMED_QUERIES;
        for round in 0..rounds {
            let word = class.words[round % class.words.len()];
            let query = class.vigil_query(word);
            let started = Instant::now();
            let page = state.log_store.search(query.clone()).await.unwrap();
            let in_process = started.elapsed();
            std::hint::black_box(page);
            let started = Instant::now();
            let page = http.search(&query).await;
            let over_http = started.elapsed();
            std::hint::black_box(page);
            let started = Instant::now();
            let rows = postgres_rows(&mut connection, &sql, class, word).await;
            let postgres_time = started.elapsed();
            std::hint::black_box(rows);
            if round >= class.words.len() * WARM_UP_ROUNDS {
                timings.in_process.push(in_process);
                timings.http.push(over_http);
                timings.postgres.push(postgres_time);
            }
        }
        results.push((class.name, timings));
    }

    println!(
        "\n{records} records, newest {LIMIT} matches, {TIMED_QUERIES} queries per class after {} warm-up queries \
         (4 words a class, in turn):",
        COMMON_WORDS.len() * WARM_UP_ROUNDS
    );
    println!(
        "{:<28} | {:>21} | {:>21} | {:>21} | {:>17}",
        "query class", "Vigil in-process", "Vigil HTTP", "PostgreSQL", "Vigil/PG p50"
    );
    println!(
        "{:<28} | {:>21} | {:>21} | {:>21} | {:>17}",
        "", "p50 / p99", "p50 / p99", "p50 / p99", "in-process, HTTP"
    );
    println!("{}", "-".repeat(28 + 3 * 24 + 20));
    for (name, mut timings) in results {
        let (in_process_p50, in_process_p99) =
            (percentile(&mut timings.in_process, 0.5), percentile(&mut timings.in_process, 0.99));
        let (http_p50, http_p99) = (percentile(&mut timings.http, 0.5), percentile(&mut timings.http, 0.99));
        let (postgres_p50, postgres_p99) =
            (percentile(&mut timings.postgres, 0.5), percentile(&mut timings.postgres, 0.99));
        let pair = |p50, p99| format!("{} / {}", format_duration(p50), format_duration(p99));
        let ratios = format!(
            "{:.2} , {:.2}",
            in_process_p50.as_secs_f64() / postgres_p50.as_secs_f64(),
            http_p50.as_secs_f64() / postgres_p50.as_secs_f64()
        );
        println!(
            "{name:<28} | {:>21} | {:>21} | {:>21} | {ratios:>17}",
            pair(in_process_p50, in_process_p99),
            pair(http_p50, http_p99),
            pair(postgres_p50, postgres_p99),
        );
    }
    println!(
        "load until searchable: Vigil {:.1} s; PostgreSQL {:.1} s (COPY {:.1} s, indexes and VACUUM ANALYZE {:.1} s)",
        vigil_load.as_secs_f64(),
        postgres_load.as_secs_f64(),
        copy_time.as_secs_f64(),
        (postgres_load - copy_time).as_secs_f64()
    );

    println!("\nPostgreSQL plans (EXPLAIN ANALYZE of each class's first word):");
    for class in &classes {
        println!("  {}:", class.name);
        for line in postgres_plan(&mut connection, class, class.words[0]).await {
            println!("    {line}");
        }
    }
    println!(
        "(whole benchmark: {:.0} s; PostgreSQL's directory {} is removed on exit)",
        began.elapsed().as_secs_f64(),
        postgres.root.display()
    );
    connection.close().await.ok();
    state.shutdown.cancel();
}
