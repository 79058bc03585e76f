//! Log ingest through client libraries nobody here wrote, from PyPI (backend/tests/clients,
//! installed by `scripts/setup.sh test`): the OpenTelemetry Python SDK's OTLP/HTTP exporters
//! (protobuf and JSON, plain and gzip), the official Elasticsearch client's `helpers.bulk`,
//! and python-logging-loki. Every record must be found by search with its fields mapped.

use std::path::PathBuf;

use crate::helpers::{TestApp, spawn_app};

/// The Python of the virtualenv `scripts/setup.sh test` made (`VIGIL_TEST_VENV`, else
/// `~/.cache/vigil/venv`).
fn python() -> PathBuf {
    let venv = std::env::var_os("VIGIL_TEST_VENV").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").expect("HOME is set");
        PathBuf::from(home).join(".cache/vigil/venv")
    });
    let python = venv.join("bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup.sh test, which installs the test clients",
        python.display()
    );
    python
}

/// Runs a client script against the app; panics with its output when it fails.
async fn run(app: &TestApp, script: &str, marker: &str, env: &[(&str, &str)]) -> String {
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run through cargo");
    let script = PathBuf::from(manifest_dir).join("tests/clients").join(script);
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(python())
            .arg(&script)
            .env("VIGIL_URL", &app.address)
            .env("VIGIL_TOKEN", &app.ingest_token)
            .env("MARKER", marker)
            .envs(env.iter().copied())
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the client finishes")
    .expect("the client starts");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{} failed: {stdout}\n{stderr}", script.display());
    stdout
}

/// The records holding `marker`, once there are `count` of them.
async fn found(app: &TestApp, marker: &str, count: u64) -> Vec<vigil_proto::LogHit> {
    crate::helpers::eventually(10, &format!("{count} records with {marker}"), || async {
        let page = app.search(&[("q", marker)]).await;
        (page.total >= count).then_some(page.records)
    })
    .await
}

fn by_message<'a>(records: &'a [vigil_proto::LogHit], part: &str) -> &'a vigil_proto::LogHit {
    records.iter().find(|record| record.message.contains(part)).unwrap_or_else(|| panic!("no record with {part:?}"))
}

#[tokio::test]
async fn the_opentelemetry_sdk_exports_over_otlp_http() {
    let app = spawn_app().await;
    for (protocol, compression) in [("protobuf", "none"), ("protobuf", "gzip"), ("json", "none"), ("json", "gzip")] {
        let marker = format!("otel{protocol}{compression}");
        run(&app, "otel_logs.py", &marker, &[("OTLP_PROTOCOL", protocol), ("OTLP_COMPRESSION", compression)]).await;
        let records = found(&app, &marker, 4).await;
        assert_eq!(records.len(), 4, "{protocol} {compression}: {records:?}");
        for record in &records {
            assert_eq!((record.service.as_str(), record.host.as_str()), ("checkout-otel", "ci-host-1"));
        }
        let placed = by_message(&records, "order placed");
        assert_eq!(placed.level, "info");
        assert_eq!(placed.attributes["order.id"], "A-1");
        assert_eq!(by_message(&records, "stock low").level, "warn");
        let failed = by_message(&records, "payment failed");
        assert_eq!(failed.level, "error");
        assert_eq!(failed.attributes["trace_id"], "0102030405060708090a0b0c0d0e0f10");
        assert_eq!(failed.attributes["span_id"], "1112131415161718");
        assert_eq!(by_message(&records, "no severity").level, "warn", "detected from the body");
    }
}

#[tokio::test]
async fn the_elasticsearch_client_bulk_helper_indexes_and_reports_per_item() {
    let app = spawn_app().await;
    let output = run(&app, "es_bulk.py", "esclient", &[]).await;
    let result: serde_json::Value = serde_json::from_str(output.trim()).expect("the script prints its result");
    assert_eq!(result["success"], 3, "{result}");
    assert_eq!(result["failed"], serde_json::json!([{"status": 400, "type": "document_parsing_exception"}]));
    let records = found(&app, "esclient", 3).await;
    let shipped = by_message(&records, "order shipped");
    assert_eq!(
        (shipped.service.as_str(), shipped.host.as_str(), shipped.level.as_str()),
        ("shipping", "ship-1", "info")
    );
    let label = by_message(&records, "label printed");
    assert_eq!((label.service.as_str(), label.level.as_str()), ("orders", "warn"));
    assert_eq!(label.attributes["carrier"], "dhl");
    let missed = by_message(&records, "pickup missed");
    assert_eq!((missed.service.as_str(), missed.level.as_str()), ("orders", "error"));
}

#[tokio::test]
async fn a_loki_client_pushes_json() {
    let app = spawn_app().await;
    run(&app, "loki_push.py", "lokiclient", &[]).await;
    let records = found(&app, "lokiclient", 3).await;
    for record in &records {
        assert_eq!((record.service.as_str(), record.host.as_str()), ("billing", "bill-1"));
    }
    // The library labels each line with its `severity`, Vigil's level.
    assert_eq!(by_message(&records, "invoice sent").level, "info");
    let expiring = by_message(&records, "expires soon");
    assert_eq!(expiring.level, "warn", "WARNING is warn");
    assert_eq!(expiring.attributes["region"], "eu-1");
    let declined = by_message(&records, "declined");
    assert!(declined.message.contains("\"insufficient funds\" for żółw"), "{}", declined.message);
    assert_eq!(declined.level, "error");
}
