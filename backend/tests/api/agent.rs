//! The agent as a real process against a real backend: a model-based test of the tailer
//! (random writes, rotations, copy-truncates, deletions and creations, with graceful and
//! `kill -9` restarts in between), and a backend outage.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::helpers::{TestApp, restart_app_with, spawn_app};

/// Records per batch: duplicates after a crash are bounded by it.
const BATCH_RECORDS: usize = 40;
/// Batches the agent sends at once: a crash or a stop sends them again.
const IN_FLIGHT: usize = 4;

/// The `vigil-agent` binary of this build (`cargo xtask test` builds it).
pub(crate) fn agent_binary() -> PathBuf {
    let binary = Path::new(env!("CARGO_BIN_EXE_vigil")).with_file_name("vigil-agent");
    assert!(binary.exists(), "{} is missing: build it first (cargo build -p vigil-agent)", binary.display());
    binary
}

struct AgentProcess {
    config: PathBuf,
    child: Option<Child>,
    started: std::time::Instant,
}

impl AgentProcess {
    fn new(directory: &Path, backend: &str, token: &str, service: &str, logs: &Path, extra: &str) -> Self {
        let config = directory.join("agent.toml");
        std::fs::write(
            &config,
            format!(
                "host = \"model-host\"\ndata_dir = {data:?}\n\n[backend]\nurl = {backend:?}\ntoken = {token:?}\ntimeout_seconds = 5\nbatches_in_flight = {IN_FLIGHT}\n\n\
                 [[sources]]\nname = \"model\"\nservice = {service:?}\ninclude = [{include:?}]\n\n\
                 [host_metrics]\nenabled = false\n\n[batch]\nmax_records = {BATCH_RECORDS}\nmax_wait_ms = 20\n\n\
                 [tail]\npoll_interval_ms = 20\nrotate_wait_ms = 300\nstart_at = \"beginning\"\n\n\
                 [control]\nlisten = \"\"\nheartbeat_seconds = 1\n{extra}",
                data = directory.join("data"),
                include = format!("{}/*.log*", logs.display()),
            ),
        )
        .unwrap();
        let mut agent = Self { config, child: None, started: std::time::Instant::now() };
        agent.start();
        agent
    }

    fn start(&mut self) {
        assert!(self.child.is_none());
        let child = Command::new(agent_binary())
            .arg("--config")
            .arg(&self.config)
            .env("VIGIL_AGENT_LOG", "error")
            .stdout(Stdio::null())
            .spawn()
            .expect("vigil-agent starts");
        self.child = Some(child);
        self.started = std::time::Instant::now();
    }

    /// `kill -9`: no shutdown code runs.
    fn kill(&mut self) {
        let mut child = self.child.take().expect("a running agent");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// SIGTERM: the agent stops as a service manager would stop it.
    fn stop(&mut self) {
        // A signal that comes before the process has set up its handler kills it, as it would
        // any daemon: give it the moment it needs to start.
        std::thread::sleep(std::time::Duration::from_millis(300).saturating_sub(self.started.elapsed()));
        let mut child = self.child.take().expect("a running agent");
        let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let exit = child.wait().unwrap();
        assert!(exit.success(), "the agent exited with {exit} on SIGTERM");
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Every message the backend holds for `service`, with repetitions.
async fn delivered(app: &TestApp, service: &str) -> Vec<String> {
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("q", format!("service:{service}")), ("limit", "1000".to_owned())];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor.clone()));
        }
        let params: Vec<(&str, &str)> = params.iter().map(|(key, value)| (*key, value.as_str())).collect();
        let page = app.search(&params).await;
        messages.extend(page.records.into_iter().map(|hit| hit.message));
        match page.next_cursor {
            Some(next) => cursor = Some(next.to_string()),
            None => return messages,
        }
    }
}

/// Waits until every written line is delivered; returns how often each line came.
async fn wait_for_every_line(app: &TestApp, service: &str, written: &[String], seconds: u64) -> HashMap<String, usize> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(seconds);
    loop {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for message in delivered(app, service).await {
            *counts.entry(message).or_default() += 1;
        }
        let missing: Vec<&String> = written.iter().filter(|line| !counts.contains_key(*line)).collect();
        if missing.is_empty() {
            let unknown: Vec<&String> = counts.keys().filter(|line| !written.contains(line)).collect();
            assert!(unknown.is_empty(), "lines never written were delivered: {unknown:?}");
            return counts;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} lines never arrived, such as {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A small deterministic generator (xorshift), so that a failing sequence can be replayed
/// with `VIGIL_MODEL_SEED`.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// The files the test writes, as the test knows them.
struct Files {
    directory: PathBuf,
    /// Files written to (the live ones).
    live: Vec<PathBuf>,
    /// Files rotated away (read-only now), oldest first.
    rotated: Vec<PathBuf>,
    written: Vec<String>,
    next_name: usize,
}

impl Files {
    fn write(&mut self, random: &mut Random) {
        let path = self.live[random.below(self.live.len() as u64) as usize].clone();
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
        for _ in 0..1 + random.below(60) {
            let line = format!(
                "line {:06} of {} {}",
                self.written.len(),
                path.file_name().unwrap().to_string_lossy(),
                "x".repeat(random.below(80) as usize)
            );
            writeln!(file, "{line}").unwrap();
            self.written.push(line);
        }
    }

    fn fresh_name(&mut self, base: &Path) -> PathBuf {
        self.next_name += 1;
        PathBuf::from(format!("{}.{}", base.display(), self.next_name))
    }

    fn rotate_by_rename(&mut self, random: &mut Random) {
        let path = self.live[random.below(self.live.len() as u64) as usize].clone();
        if !path.exists() {
            return;
        }
        let rotated = self.fresh_name(&path);
        std::fs::rename(&path, &rotated).unwrap();
        self.rotated.push(rotated);
    }

    fn copy_truncate(&mut self, random: &mut Random) {
        let path = self.live[random.below(self.live.len() as u64) as usize].clone();
        if !path.exists() {
            return;
        }
        let copy = self.fresh_name(&path);
        std::fs::copy(&path, &copy).unwrap();
        std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(0).unwrap();
        self.rotated.push(copy);
    }

    fn create(&mut self) {
        self.next_name += 1;
        let path = self.directory.join(format!("service{}.log", self.next_name));
        self.live.push(path);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tailer_delivers_every_line_through_rotations_and_crashes() {
    let app = spawn_app().await;
    let seed = std::env::var("VIGIL_MODEL_SEED").ok().and_then(|seed| seed.parse().ok()).unwrap_or(0x5eed_1234_u64);
    eprintln!("model seed {seed} (replay with VIGIL_MODEL_SEED={seed})");
    let mut random = Random(seed | 1);
    let directory = tempfile::tempdir().unwrap();
    let logs = directory.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let service = format!("model{}", std::process::id());
    let mut files = Files {
        directory: logs.clone(),
        live: vec![logs.join("app.log")],
        rotated: Vec::new(),
        written: Vec::new(),
        next_name: 0,
    };
    files.write(&mut random);
    let mut agent = AgentProcess::new(directory.path(), &app.address, &app.ingest_token, &service, &logs, "");
    let mut restarts = 0;
    let mut kills = 0;
    for _ in 0..60 {
        match random.below(100) {
            0..=44 => files.write(&mut random),
            45..=56 => files.rotate_by_rename(&mut random),
            57..=66 => files.copy_truncate(&mut random),
            67..=71 => files.create(),
            72..=77 => {
                // Old rotations are deleted once shipped, as logrotate deletes them long after.
                if let Some(oldest) = files.rotated.first().cloned() {
                    wait_for_every_line(&app, &service, &files.written, 30).await;
                    std::fs::remove_file(&oldest).unwrap();
                    files.rotated.remove(0);
                }
            }
            78..=88 => {
                // A crash at a random moment, work done while the agent is down, a restart.
                tokio::time::sleep(std::time::Duration::from_millis(random.below(150))).await;
                agent.kill();
                kills += 1;
                for _ in 0..random.below(3) {
                    match random.below(3) {
                        0 => files.write(&mut random),
                        1 => files.rotate_by_rename(&mut random),
                        _ => files.copy_truncate(&mut random),
                    }
                }
                agent.start();
            }
            89..=94 => {
                agent.stop();
                restarts += 1;
                files.write(&mut random);
                agent.start();
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(random.below(300))).await,
        }
        tokio::time::sleep(std::time::Duration::from_millis(random.below(40))).await;
    }
    let counts = wait_for_every_line(&app, &service, &files.written, 60).await;
    let duplicated: usize = counts.values().map(|count| count - 1).sum();
    eprintln!(
        "model: {} lines, {kills} kills, {restarts} graceful restarts, {duplicated} duplicates",
        files.written.len()
    );
    // At most the batches in flight are sent again after a crash or a stop.
    assert!(
        duplicated <= (kills + restarts) * IN_FLIGHT * BATCH_RECORDS,
        "{duplicated} duplicates after {kills} kills and {restarts} restarts"
    );
    assert!(counts.values().all(|&count| count <= 1 + kills + restarts));
    assert!(
        files.written.len() > 500 && kills > 0,
        "the sequence did too little: {} lines, {kills} kills",
        files.written.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_outage_loses_nothing() {
    let app = spawn_app().await;
    let port = app.port;
    let directory = tempfile::tempdir().unwrap();
    let logs = directory.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let service = format!("outage{}", std::process::id());
    let token = app.ingest_token.clone();
    let mut agent = AgentProcess::new(directory.path(), &app.address, &token, &service, &logs, "");
    let mut written = Vec::new();
    let write = |name: &str, count: usize, written: &mut Vec<String>| {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(logs.join(name)).unwrap();
        for _ in 0..count {
            let line = format!("outage line {:05}", written.len());
            writeln!(file, "{line}").unwrap();
            written.push(line);
        }
    };
    write("app.log", 100, &mut written);
    wait_for_every_line(&app, &service, &written, 30).await;

    let data_dir = app.stop_keeping_data().await;
    // The backend is down: lines keep coming, a file is rotated, the agent is even restarted.
    write("app.log", 300, &mut written);
    std::fs::rename(logs.join("app.log"), logs.join("app.log.1")).unwrap();
    write("app.log", 200, &mut written);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    agent.stop();
    agent.start();
    write("app.log", 100, &mut written);
    tokio::time::sleep(std::time::Duration::from_millis(1000)).await;

    let app = restart_app_with(data_dir.path(), |config| {
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
    })
    .await;
    let counts = wait_for_every_line(&app, &service, &written, 60).await;
    let duplicated: usize = counts.values().map(|count| count - 1).sum();
    assert!(duplicated <= IN_FLIGHT * BATCH_RECORDS, "{duplicated} duplicates");
    drop(data_dir);
}

/// The whole agent in this process: host metrics and a scrape of the backend's own `/metrics`
/// reach a real Prometheus through the backend; heartbeats register it (the API, service
/// discovery, the Overview's agent column and the Agents page show it); its own `/metrics`
/// is valid OpenMetrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_feeds_prometheus_and_reports_itself() {
    use vigil_agent::config::{AgentConfig, BackendConfig, FileSourceConfig, ScrapeConfig};
    use vigil_proto::agents::{AgentState, AgentStatus};
    use vigil_proto::paths;

    let prometheus = crate::prometheus::TestPrometheus::start("").await;
    let prometheus_url = prometheus.address.clone();
    let app = crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |config| {
        config.metrics.prometheus_url = prometheus_url;
        config.services = vec![vigil_backend::config::ServiceConfig::named("checkout")];
    })
    .await;
    let directory = tempfile::tempdir().unwrap();
    let host = format!("agent-e2e-{}", std::process::id());
    let mut config = AgentConfig::new(
        BackendConfig::new(app.address.clone(), app.ingest_token.clone()),
        directory.path().join("data"),
    );
    config.host = Some(host.clone());
    config.sources =
        vec![FileSourceConfig::new("checkout-logs", "checkout", vec![format!("{}/*.log", directory.path().display())])];
    config.host_metrics.enabled = true;
    config.host_metrics.interval_seconds = 1;
    config.scrape = vec![ScrapeConfig {
        interval_seconds: 1,
        ..ScrapeConfig::new("vigil-self", &format!("{}/metrics", app.address))
    }];
    config.control.listen = "127.0.0.1:0".to_owned();
    config.control.heartbeat_seconds = 1;
    config.batch.max_wait_ms = 50;
    config.validate().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let agent = tokio::spawn(vigil_agent::start(config, shutdown.clone()).unwrap().run());

    let selector = format!("node_load1{{instance=\"{host}\",job=\"node\"}}");
    crate::helpers::eventually(60, "host metrics in Prometheus", || async {
        (!prometheus.query(&selector).await.is_empty()).then_some(())
    })
    .await;
    let cpu = prometheus.query(&format!("count(node_cpu_seconds_total{{instance=\"{host}\",mode=\"idle\"}})")).await;
    assert!(!cpu.is_empty(), "no CPU series");
    let up = crate::helpers::eventually(60, "the scraped target's up", || async {
        prometheus.query(r#"up{job="vigil-self"}"#).await.into_iter().next()
    })
    .await;
    assert_eq!(up["value"][1], "1", "{up}");
    let scraped = prometheus.query(r#"count({job="vigil-self",__name__!~"up|scrape_.*"})"#).await;
    assert!(scraped[0]["value"][1].as_str().unwrap().parse::<u64>().unwrap() > 3, "{scraped:?}");

    let agent_status = crate::helpers::eventually(30, "the agent to register", || async {
        let agents: Vec<AgentStatus> = app.read(paths::AGENTS, &[]).await.json().await.ok()?;
        agents.into_iter().find(|agent| agent.host == host && agent.report.shipped_records > 0)
    })
    .await;
    assert_eq!(agent_status.state, AgentState::Healthy, "{agent_status:?}");
    assert_eq!(agent_status.report.version, env!("CARGO_PKG_VERSION"));
    assert!(agent_status.report.sources.iter().any(|source| source.kind == "scrape" && source.active == 1));
    let metrics_address = agent_status.report.metrics_address.clone().expect("the agent serves /metrics");

    // Its own /metrics: OpenMetrics by the strictest reading.
    let page = reqwest::get(format!("http://{metrics_address}/metrics")).await.unwrap();
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let entries =
        vigil_agent::exposition::parse(&page.bytes().await.unwrap(), vigil_agent::exposition::Format::OpenMetrics)
            .unwrap();
    vigil_agent::exposition::validate_openmetrics(&entries).unwrap();
    assert!(entries.iter().any(|entry| matches!(entry, vigil_agent::exposition::Entry::Sample(sample) if sample.name == "vigil_agent_shipped_records_total")));

    // Service discovery lists it for Prometheus.
    let groups: serde_json::Value = app.read(paths::SD_TARGETS, &[]).await.json().await.unwrap();
    assert!(
        groups.as_array().unwrap().iter().any(|group| group["targets"][0] == metrics_address.as_str()
            && group["labels"]["job"] == "vigil-agent"
            && group["labels"]["host"] == host.as_str()),
        "{groups}"
    );

    // A heartbeat is validated, and only ingest tokens may send one.
    let bad = app
        .client
        .post(app.url(paths::AGENT_HEARTBEAT))
        .bearer_auth(&app.ingest_token)
        .header("content-type", "application/json")
        .body(r#"{"host":""}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let report = serde_json::to_value(&agent_status.report).unwrap();
    let forbidden = app
        .client
        .post(app.url(paths::AGENT_HEARTBEAT))
        .bearer_auth(&app.read_token)
        .json(&report)
        .send()
        .await
        .unwrap();
    assert_eq!(forbidden.status(), 403);

    // The Overview counts the agents of each service; the Agents page shows this one.
    let browser = crate::browser::Browser::start().await;
    browser.goto_signed_in(&app.url("/"), crate::helpers::ADMIN, crate::helpers::ADMIN_PASSWORD).await;
    let agents_cell = browser.wait_for("tr[data-service='checkout'] .agents").await;
    assert_eq!(browser.text(&agents_cell).await, "1/1 healthy");
    browser.goto(&app.url("/agents")).await;
    let state = browser.wait_for(&format!("tr.agent-row[data-host='{host}'] .state")).await;
    assert_eq!(browser.text(&state).await, "healthy");
    let sources = browser.text(&browser.wait_for(&format!("tr.agent-row[data-host='{host}'] .sources")).await).await;
    assert!(sources.contains("checkout-logs") && sources.contains("vigil-self"), "{sources}");

    shutdown.cancel();
    agent.await.unwrap();
}
