//! A real Prometheus (the Debian package's binary) for the tests and benchmarks that need
//! one: its own configuration and data directory, on a free loopback port, killed when
//! dropped. Included by `tests/api/` and `benches/metrics.rs` alike (`#[path]`), so it uses
//! nothing of either.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use tempfile::TempDir;

const BINARY: &str = "/usr/bin/prometheus";

pub struct TestPrometheus {
    pub address: String,
    _child: tokio::process::Child,
    _dir: TempDir,
}

impl TestPrometheus {
    /// Starts Prometheus with `scrape_configs` (YAML, indented as under the top level) and the
    /// remote-write receiver on; returns once it is ready.
    pub async fn start(scrape_configs: &str) -> Self {
        Self::start_with(&format!("scrape_configs:\n{scrape_configs}"), None, &[]).await
    }

    /// Starts Prometheus with `configuration` (YAML after the `global` section), a rule file
    /// when `rules` is given (YAML, as `rules.yml` beside the configuration), and `arguments`.
    pub async fn start_with(configuration: &str, rules: Option<&str>, arguments: &[&str]) -> Self {
        assert!(
            Path::new(BINARY).exists(),
            "Prometheus is not installed: apt-get install prometheus (scripts/setup.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(&config, format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n{configuration}"))
            .unwrap();
        if let Some(rules) = rules {
            std::fs::write(dir.path().join("rules.yml"), rules).unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = tokio::process::Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .args(arguments)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self { address: format!("http://127.0.0.1:{port}"), _child: child, _dir: dir };
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", prometheus.address);
        let started = Instant::now();
        loop {
            let answer = client.get(&ready).timeout(Duration::from_secs(2)).send().await;
            if answer.is_ok_and(|response| response.status().is_success()) {
                return prometheus;
            }
            assert!(started.elapsed() < Duration::from_secs(60), "Prometheus was not ready within 60 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Runs an instant PromQL query; returns Prometheus' `data.result` array.
    pub async fn query(&self, promql: &str) -> Vec<Value> {
        let response: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.address))
            .query(&[("query", promql)])
            .send()
            .await
            .expect("query sent")
            .json()
            .await
            .expect("JSON answer");
        assert_eq!(response["status"], "success", "{response}");
        response["data"]["result"].as_array().cloned().unwrap_or_default()
    }
}
