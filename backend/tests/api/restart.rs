//! Acknowledged records survive a `kill -9` of the server and a graceful restart.
//!
//! Ingest is answered once records are in the write-ahead log; the index commits later. These
//! tests kill the server before, during and after commits.

use std::path::Path;
use std::process::{Child, Command};

use crate::helpers::{eventually, free_port, record, restart_app, spawn_app};

fn start_server(data_dir: &Path, port: u16) -> Child {
    start_server_with(data_dir, port, &[])
}

fn start_server_with(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_vigil"))
        .arg("serve")
        .envs(env.iter().copied())
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

/// Creates an admin token with the command line, then starts a server on the data directory.
async fn start_with_token(data_dir: &Path, env: &[(&str, &str)]) -> (reqwest::Client, String, u16, Child) {
    let output = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["token", "create", "--scope", "admin", "--name", "restart"])
        .env("VIGIL_STORAGE__DATA_DIR", data_dir)
        .output()
        .unwrap();
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let client = reqwest::Client::new();
    let port = free_port();
    let server = start_server_with(data_dir, port, env);
    wait_ready(&client, port).await;
    (client, token, port, server)
}

/// With commits held off, acknowledged records are only in the write-ahead log when the server
/// is killed: the next start replays them.
#[tokio::test]
async fn acknowledged_records_survive_kill_9_before_any_commit() {
    let data_dir = tempfile::tempdir().unwrap();
    let no_commits = [("VIGIL_LOGS__COMMIT_INTERVAL_MS", "600000"), ("VIGIL_LOGS__COMMIT_IDLE_MS", "600000")];
    let (client, token, port, mut server) = start_with_token(data_dir.path(), &no_commits).await;
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
    assert!(all_messages(&client, port, &token).await.is_empty(), "acknowledged, not committed yet");
    server.kill().unwrap(); // SIGKILL: no shutdown code runs
    server.wait().unwrap();

    let port = free_port();
    let mut server = start_server(data_dir.path(), port);
    wait_ready(&client, port).await;
    let stored = all_messages(&client, port, &token).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let expected: std::collections::HashSet<String> = records.into_iter().map(|record| record.message).collect();
    assert_eq!(stored, expected);
}

/// Every message the store holds, through the cursor.
async fn all_messages(client: &reqwest::Client, port: u16, token: &str) -> std::collections::HashSet<String> {
    let mut messages = std::collections::HashSet::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut params = vec![("limit", "1000".to_owned())];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor.clone()));
        }
        let page: vigil_proto::LogPage = client
            .get(format!("http://127.0.0.1:{port}/api/v1/logs/search"))
            .bearer_auth(token)
            .query(&params)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        messages.extend(page.records.into_iter().map(|hit| hit.message));
        match page.next_cursor {
            Some(next) => cursor = Some(next.to_string()),
            None => return messages,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_when_killed_mid_ingest() {
    let data_dir = tempfile::tempdir().unwrap();
    let (client, token, port, mut server) = start_with_token(data_dir.path(), &[]).await;

    let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..4)
        .map(|writer| {
            let (client, token, acknowledged) = (client.clone(), token.clone(), acknowledged.clone());
            tokio::spawn(async move {
                for batch in 0.. {
                    let messages: Vec<String> = (0..50).map(|index| format!("w{writer}b{batch}i{index}")).collect();
                    let records: Vec<_> =
                        messages.iter().map(|message| record("2026-11-29T08:00:00Z", "api", "info", message)).collect();
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/api/v1/logs"))
                        .bearer_auth(&token)
                        .json(&records)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => acknowledged.lock().unwrap().extend(messages),
                        Ok(response) => panic!("unexpected answer {}", response.status()),
                        Err(_) => return, // the server is gone
                    }
                }
            })
        })
        .collect();
    // Let the writers get going, then kill the server under them.
    eventually(30, "some acknowledged batches", || {
        let count = acknowledged.lock().unwrap().len();
        async move { (count >= 2_000).then_some(()) }
    })
    .await;
    server.kill().unwrap();
    server.wait().unwrap();
    for writer in writers {
        writer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    let port = free_port();
    let mut server = start_server(data_dir.path(), port);
    wait_ready(&client, port).await;
    let stored = all_messages(&client, port, &token).await;
    server.kill().unwrap();
    server.wait().unwrap();
    let missing: Vec<_> = acknowledged.iter().filter(|message| !stored.contains(*message)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost, such as {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
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
        .query(&[("commit", "force")])
        .bearer_auth(&ingest_token)
        .json(&[record("2026-11-29T08:00:01Z", "api", "info", "after restart")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a token created before the restart still authenticates");
    assert_eq!(app.search(&[("q", "restart")]).await.total, 2);
}

#[tokio::test]
async fn retention_drops_whole_partitions_per_service() {
    let now = time::OffsetDateTime::now_utc();
    let days_ago =
        |days: i64| (now - time::Duration::days(days)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let app = spawn_app().await;
    let records = [
        record(&days_ago(10), "api", "info", "ten days old"),
        record(&days_ago(1), "api", "info", "one day old"),
        record(&days_ago(10), "audit", "info", "audit ten days old"),
    ];
    assert_eq!(app.post_logs(&records).await.status(), 200);
    let data = app.stop_keeping_data().await;
    let partitions = |class: &str| {
        std::fs::read_dir(data.path().join("logs").join(class)).map(|entries| entries.count()).unwrap_or(0)
    };
    // Without a retention of its own, audit shares the `_all` partitions.
    assert_eq!((partitions("_all"), partitions("audit")), (2, 0));

    // Now api keeps 3 days and audit 30: the ten-day-old api partition goes, whole.
    let app = crate::helpers::restart_app_with(data.path(), |config| {
        config.logs.retention_days = 3;
        config.logs.retention_days_by_service.insert("audit".to_owned(), 30);
    })
    .await;
    // Retention runs at start; running it again is harmless and makes the test independent of
    // that task's timing.
    let now_timestamp = vigil_proto::Timestamp::from_offset_date_time(now).unwrap();
    assert!(app.state.log_store.apply_retention(now_timestamp).await.unwrap() <= 1);
    assert_eq!(partitions("_all"), 1);
    let messages: Vec<_> = app.search(&[]).await.records.into_iter().map(|hit| hit.message).collect();
    assert_eq!(messages, ["one day old"]);

    // Records older than their service's retention are refused at ingest; audit's are kept.
    let old = [record(&days_ago(10), "api", "info", "too old")];
    crate::helpers::assert_error(app.post_logs(&old).await, 400, "invalid_record", "older than the retention").await;
    assert_eq!(app.post_logs(&[record(&days_ago(10), "audit", "info", "audit kept")]).await.status(), 200);
    assert_eq!(partitions("audit"), 1);
    assert_eq!(app.search(&[("q", "service:audit")]).await.total, 1);
}

/// With memory for one partition writer only, a batch over six days makes the writer close
/// and reopen writers inside one group commit; nothing may be lost.
#[tokio::test]
async fn a_batch_over_many_days_with_one_open_writer_is_whole() {
    let app =
        crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |config| config.logs.writer_memory_bytes = 16 << 20)
            .await;
    let records: Vec<_> = (1..=6)
        .flat_map(|day| {
            [0, 1].map(|index| {
                record(&format!("2026-11-{day:02}T12:00:0{index}Z"), "api", "info", &format!("day {day} {index}"))
            })
        })
        .collect();
    assert_eq!(app.post_logs(&records).await.status(), 200);
    assert_eq!(app.search(&[]).await.total, 12);
    let data = app.stop_keeping_data().await;
    let app = restart_app(data.path()).await;
    let page = app.search(&[("limit", "5")]).await;
    assert_eq!(page.total, 12);
    assert_eq!(page.records[0].message, "day 6 1");
    // Sequence numbers continue after a restart: new records sort after the old ones.
    assert_eq!(app.post_logs(&[record("2026-11-06T12:00:01Z", "api", "info", "same time, later")]).await.status(), 200);
    assert_eq!(app.search(&[("limit", "1")]).await.records[0].message, "same time, later");
}
