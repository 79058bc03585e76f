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

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;

#[path = "support/logfmt_file.rs"]
mod logfmt_file;

use logfmt_file::usage;

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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let megabytes: u64 = std::env::var("VIGIL_BENCH_MB").ok().and_then(|value| value.parse().ok()).unwrap_or(512);
    let directory = tempfile::tempdir().unwrap();
    let (logs, file, lines, bytes) = logfmt_file::create(directory.path(), megabytes);
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
