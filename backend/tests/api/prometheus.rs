//! A real Prometheus (the Debian package's binary) for the tests that need one: its own
//! configuration and data directory, on a free loopback port, killed when dropped.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::helpers::{eventually, free_port};

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
        assert!(
            Path::new(BINARY).exists(),
            "Prometheus is not installed: apt-get install prometheus (scripts/setup.sh does)"
        );
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n{scrape_configs}"),
        )
        .unwrap();
        let port = free_port();
        let child = tokio::process::Command::new(BINARY)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--web.enable-remote-write-receiver")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self { address: format!("http://127.0.0.1:{port}"), _child: child, _dir: dir };
        let client = reqwest::Client::new();
        let ready = format!("{}/-/ready", prometheus.address);
        eventually(60, "Prometheus to be ready", || {
            let request = client.get(&ready).timeout(Duration::from_secs(2)).send();
            async move { request.await.ok().filter(|response| response.status().is_success()) }
        })
        .await;
        prometheus
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
