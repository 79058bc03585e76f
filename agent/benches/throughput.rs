//! File → backend throughput of the real `vigil-agent` binary (release build), with zstd on.
//!
//! Writes a log file of realistic lines (`VIGIL_BENCH_MB`, 512 by default), prints what
//! `cat FILE > /dev/null` and `zstd -1 -c FILE > /dev/null` do with it (the ceilings), then starts
//! the agent on it (read from the beginning) against a loopback HTTP sink in this process that
//! decompresses every batch, counts its lines and acknowledges it. Prints MiB/s and lines/s
//! from the agent's start to the last line acknowledged, the agent's peak RSS (`VmHWM`) and its
//! CPU seconds per GiB shipped.
//!
//! Run: `cargo bench -p vigil-agent --bench throughput`

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;

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

/// A logfmt line like a web service writes, about 200 bytes.
fn line(index: u64, out: &mut Vec<u8>) {
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

fn timed(what: &str, command: &mut Command, bytes: u64) {
    let started = Instant::now();
    match command.stdout(Stdio::null()).status() {
        Ok(status) if status.success() => {
            let seconds = started.elapsed().as_secs_f64();
            println!("{what:<28} {:>8.1} MiB/s", bytes as f64 / (1 << 20) as f64 / seconds);
        }
        _ => println!("{what:<28} (not available on this machine)"),
    }
}

/// `VmHWM` (peak RSS) and utime + stime of a process, in KiB and seconds.
fn usage(pid: u32) -> (u64, f64) {
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let megabytes: u64 = std::env::var("VIGIL_BENCH_MB").ok().and_then(|value| value.parse().ok()).unwrap_or(512);
    let directory = tempfile::tempdir().unwrap();
    let logs = directory.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let file = logs.join("bench.log");
    let mut lines = 0u64;
    {
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&file).unwrap());
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut written = 0u64;
        while written < megabytes << 20 {
            chunk.clear();
            while chunk.len() < 1 << 20 {
                line(lines, &mut chunk);
                lines += 1;
            }
            writer.write_all(&chunk).unwrap();
            written += chunk.len() as u64;
        }
    }
    let bytes = std::fs::metadata(&file).unwrap().len();
    println!("file: {} MiB, {lines} lines, {:.0} bytes per line", bytes >> 20, bytes as f64 / lines as f64);
    timed("cat FILE > /dev/null", Command::new("cat").arg(&file), bytes);
    timed("zstd -1 -c FILE > /dev/null", Command::new("zstd").args(["-1", "-c", "-q"]).arg(&file), bytes);

    // The sink: decompresses, counts lines, acknowledges.
    let received = Arc::new(AtomicU64::new(0));
    let counter = received.clone();
    let router = axum::Router::new()
        .route(
            "/api/v1/logs",
            axum::routing::post(move |body: Bytes| {
                let counter = counter.clone();
                async move {
                    let lines = tokio::task::spawn_blocking(move || {
                        let plain = zstd::stream::decode_all(&body[..]).unwrap_or_default();
                        memchr::memchr_iter(b'\n', &plain).count() as u64
                    })
                    .await
                    .unwrap_or(0);
                    counter.fetch_add(lines, Ordering::Relaxed);
                    (StatusCode::OK, format!("{{\"accepted\":{lines}}}"))
                }
            }),
        )
        .fallback(|| async { StatusCode::NO_CONTENT });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let config = directory.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"bench\"\ndata_dir = {:?}\n[backend]\nurl = \"http://{address}\"\ntoken = \"bench\"\n\
             [[sources]]\nname = \"bench\"\nservice = \"bench\"\ninclude = [{:?}]\n\
             [host_metrics]\nenabled = false\n[tail]\nstart_at = \"beginning\"\n[control]\nlisten = \"\"\n",
            directory.path().join("data"),
            logs.join("*.log"),
        ),
    )
    .unwrap();
    let started = Instant::now();
    let mut agent = Command::new(env!("CARGO_BIN_EXE_vigil-agent"))
        .arg("--config")
        .arg(&config)
        .env("VIGIL_AGENT_LOG", "warn")
        .spawn()
        .expect("vigil-agent starts");
    let pid = agent.id();
    let mut peak = 0;
    let mut cpu = 0.0;
    while received.load(Ordering::Relaxed) < lines {
        assert!(started.elapsed() < Duration::from_secs(600), "the agent did not ship everything in 10 minutes");
        (peak, cpu) = usage(pid);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    let (last_peak, last_cpu) = usage(pid);
    peak = peak.max(last_peak);
    cpu = cpu.max(last_cpu);
    let _ = agent.kill();
    let _ = agent.wait();
    let mib = bytes as f64 / (1 << 20) as f64;
    println!(
        "vigil-agent file → HTTP      {:>8.1} MiB/s, {:.0} lines/s ({:.2} s), peak RSS {:.1} MiB, {:.2} CPU s per GiB",
        mib / seconds,
        lines as f64 / seconds,
        seconds,
        peak as f64 / 1024.0,
        cpu / (mib / 1024.0),
    );
    assert_eq!(received.load(Ordering::Relaxed), lines, "lines were lost or duplicated");
}
