//! Acknowledged records survive a `kill -9` of the server and a graceful restart.

use std::path::Path;
use std::process::{Child, Command};

use crate::helpers::{eventually, free_port, record, restart_app, spawn_app};

fn start_server(data_dir: &Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("serve")
        .env("VIGIL_STORAGE__DATA_DIR", data_dir)
        .env("VIGIL_SERVER__LISTEN", format!("127.0.0.1:{port}"))
        .env("VIGIL_TELEMETRY__FILTER", "warn")
        .spawn()
        .expect("vigil starts")
}

async fn wait_ready(client: &reqwest::Client, port: u16) {
    eventually(30, "vigil to be ready", || async {
        let response = client.get(format!("http://127.0.0.1:{port}/readyz")).send().await.ok()?;
        response.status().is_success().then_some(())
    })
    .await;
}

#[tokio::test]
async fn acknowledged_records_survive_kill_9() {
    let data_dir = tempfile::tempdir().unwrap();
    let token = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["token", "create", "--scope", "admin", "--name", "restart"])
        .env("VIGIL_STORAGE__DATA_DIR", data_dir.path())
        .output()
        .unwrap();
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let port = free_port();
    let mut server = start_server(data_dir.path(), port);
    wait_ready(&client, port).await;
    let records: Vec<_> = (0..50)
        .map(|index| record("2026-11-29T08:00:00Z", "api", "info", &format!("survivor number{index}")))
        .collect();
    for batch in records.chunks(10) {
        let response = client
            .post(format!("http://127.0.0.1:{port}/api/v1/logs"))
            .bearer_auth(&token)
            .json(batch)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    server.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.wait().unwrap();

    let port = free_port();
    let mut server = start_server(data_dir.path(), port);
    wait_ready(&client, port).await;
    let page: vigil_proto::LogPage = client
        .get(format!("http://127.0.0.1:{port}/api/v1/logs/search"))
        .bearer_auth(&token)
        .query(&[("q", "survivor"), ("limit", "1000")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(page.total, 50);
}

#[tokio::test]
async fn a_graceful_restart_keeps_records_and_tokens() {
    let app = spawn_app().await;
    assert_eq!(app.post_logs(&[record("2026-11-29T08:00:00Z", "api", "info", "before restart")]).await.status(), 200);
    let ingest_token = app.ingest_token.clone();
    let data = app.stop_keeping_data().await;

    let app = restart_app(data.path()).await;
    assert_eq!(app.search(&[("q", "restart")]).await.total, 1);
    let response = app
        .client
        .post(app.url(vigil_proto::paths::LOGS))
        .bearer_auth(&ingest_token)
        .json(&[record("2026-11-29T08:00:01Z", "api", "info", "after restart")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a token created before the restart still authenticates");
    assert_eq!(app.search(&[("q", "restart")]).await.total, 2);
}
