//! A generated log file of realistic logfmt lines, and what a process costs, for the benchmarks
//! that ship a file with the real agent (`agent/benches/throughput.rs` and the backend's
//! `agent_to_search`), included by `#[path]`.

use std::io::Write;
use std::path::Path;

const SERVICES: [&str; 6] = ["checkout", "payments", "search", "cart", "auth", "inventory"];
const PATHS: [&str; 8] = [
    "/api/v1/orders",
    "/api/v1/cart/items",
    "/api/v1/search?q=red+shoes",
    "/healthz",
    "/api/v1/users/me",
    "/static/app.js",
    "/api/v1/payments/authorize",
    "/api/v1/inventory/sku-88213",
];
const MESSAGES: [&str; 6] = [
    "request completed",
    "upstream responded slowly",
    "cache miss, fetching from database",
    "payment authorization declined by issuer",
    "retrying after connection reset by peer",
    "user session refreshed",
];

/// A logfmt line like a web service writes, about 180 bytes.
pub fn line(index: u64, out: &mut Vec<u8>) {
    let pick = |modulo: u64, salt: u64| ((index.wrapping_mul(2_654_435_761).wrapping_add(salt)) >> 7) % modulo;
    let level = match pick(100, 1) {
        0..=1 => "error",
        2..=9 => "warn",
        10..=19 => "debug",
        _ => "info",
    };
    let status = [200, 200, 200, 201, 204, 304, 404, 500][pick(8, 2) as usize];
    let _ = writeln!(
        out,
        "ts=2026-11-29T08:{:02}:{:02}.{:03}Z level={level} service={} method=GET path={} status={status} duration_ms={} request_id={:016x} msg=\"{}\"",
        (index / 60_000) % 60,
        (index / 1000) % 60,
        index % 1000,
        SERVICES[pick(6, 3) as usize],
        PATHS[pick(8, 4) as usize],
        pick(2500, 5),
        index.wrapping_mul(0x9e37_79b9_7f4a_7c15),
        MESSAGES[pick(6, 6) as usize],
    );
}

/// Writes at least `megabytes` MiB of lines to `path`; returns how many lines.
fn write(path: &Path, megabytes: u64) -> u64 {
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut chunk = Vec::with_capacity(1 << 20);
    let mut written = 0u64;
    let mut lines = 0u64;
    while written < megabytes << 20 {
        chunk.clear();
        while chunk.len() < 1 << 20 {
            line(lines, &mut chunk);
            lines += 1;
        }
        writer.write_all(&chunk).unwrap();
        written += chunk.len() as u64;
    }
    writer.flush().unwrap();
    lines
}

/// Writes `<directory>/logs/bench.log` of at least `megabytes` MiB and prints its size; returns
/// the logs directory, the file, its lines and its bytes.
pub fn create(directory: &Path, megabytes: u64) -> (std::path::PathBuf, std::path::PathBuf, u64, u64) {
    let logs = directory.join("logs");
    std::fs::create_dir(&logs).unwrap();
    let file = logs.join("bench.log");
    let lines = write(&file, megabytes);
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!("file: {} MiB, {lines} lines, {:.0} bytes per line", bytes >> 20, bytes as f64 / lines as f64);
    (logs, file, lines, bytes)
}

/// `VmHWM` (peak RSS) and utime + stime of a process, in KiB and seconds.
pub fn usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let peak = status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    (peak, (ticks(11) + ticks(12)) / 100.0)
}
