//! Agent heartbeats as an untrusted input: any ingest token can send one, and what it says
//! reaches service discovery, the Agents page, the audit log and the server's log.

use serde_json::{Value, json};
use vigil_proto::auth::Scope;
use vigil_proto::paths;

use crate::helpers::{TestApp, assert_error, service_token, spawn_app};

fn report(host: &str) -> Value {
    json!({
        "host": host, "os": "Linux 6.1", "version": "0.1.0", "interval_seconds": 10,
        "metrics_address": format!("{host}:9100"),
        "sources": [{"name": "app-logs", "kind": "file", "service": "api", "records": 1, "bytes": 10, "errors": 0,
                     "active": 1, "last_error": "read failed:\nline two"}],
        "buffer": {"logs_bytes": 0, "logs_batches": 0, "metrics_bytes": 0, "metrics_batches": 0, "max_bytes": 1000,
                   "dropped_records": 0},
        "shipped_records": 1,
    })
}

async fn send(app: &TestApp, token: &str, report: &Value) -> reqwest::Response {
    app.client.post(app.url(paths::AGENT_HEARTBEAT)).bearer_auth(token).json(report).send().await.unwrap()
}

async fn agents(app: &TestApp) -> Vec<vigil_proto::agents::AgentStatus> {
    app.read(paths::AGENTS, &[]).await.json().await.unwrap()
}

#[tokio::test]
async fn heartbeats_say_only_what_they_may() {
    let app = spawn_app().await;
    assert_eq!(send(&app, &app.ingest_token, &report("web-1")).await.status(), 204);
    let stored = &agents(&app).await[0];
    assert_eq!(stored.report.sources[0].last_error.as_deref(), Some("read failed: line two"), "control characters go");

    for (field, value, needle) in [
        ("metrics_address", json!("http://169.254.169.254:80/latest?x=1"), "must be host:port"),
        ("metrics_address", json!("10.0.0.1:80/metrics"), "must be host:port"),
        ("version", json!("1.0\n2026-12-01T00:00:00Z ERROR forged"), "version must be"),
        ("version", json!("v".repeat(65)), "version must be"),
        ("os", json!("Linux\u{1b}[31m"), "os must be"),
        ("host", json!("web-1\nweb-2"), "host must be"),
        ("host", json!(" "), "host must be"),
    ] {
        let mut bad = report("web-1");
        bad[field] = value;
        assert_error(send(&app, &app.ingest_token, &bad).await, 400, "invalid_parameter", needle).await;
    }
    let groups: Value = app.read(paths::SD_TARGETS, &[]).await.json().await.unwrap();
    let targets: Vec<&str> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|group| group["targets"].as_array().unwrap().iter().filter_map(Value::as_str))
        .collect();
    assert_eq!(targets, ["web-1:9100"], "only the valid address is a target");
}

#[tokio::test]
async fn a_host_belongs_to_the_token_that_registered_it() {
    let app = spawn_app().await;
    let first = service_token(&app.state, "fleet-a", Scope::Ingest).await;
    let second = service_token(&app.state, "fleet-b", Scope::Ingest).await;
    assert_eq!(send(&app, &first, &report("db-1")).await.status(), 204);
    let mut overwrite = report("db-1");
    overwrite["version"] = json!("6.6.6");
    overwrite["metrics_address"] = json!("attacker.example:9100");
    assert_error(send(&app, &second, &overwrite).await, 403, "forbidden", "registered with another token").await;
    assert_eq!(agents(&app).await[0].report.version, "0.1.0", "the host's report is untouched");

    // Once the first token is revoked (rotation), the next one takes the host over.
    let first_id = app.state.database.tokens(None).await.unwrap().into_iter().find(|row| row.name == "fleet-a");
    app.state.auth.revoke_token(first_id.unwrap().id).await.unwrap();
    overwrite["metrics_address"] = json!("db-1:9100");
    assert_eq!(send(&app, &second, &overwrite).await.status(), 204);
    assert_eq!(agents(&app).await[0].report.version, "6.6.6");
}

#[tokio::test]
async fn one_token_registers_new_hosts_at_a_bounded_rate() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for index in 0..300 {
        statuses.push(send(&app, &app.ingest_token, &report(&format!("invented-{index}"))).await.status().as_u16());
    }
    let limit = vigil_backend::agents::REGISTRATIONS_PER_MINUTE as usize;
    assert_eq!(statuses.iter().filter(|status| **status == 204).count(), limit, "{statuses:?}");
    assert!(statuses[limit..].iter().all(|status| *status == 429));
    assert_eq!(agents(&app).await.len(), limit);
    // Known hosts keep reporting; another token has its own allowance.
    assert_eq!(send(&app, &app.ingest_token, &report("invented-0")).await.status(), 204);
    let other = service_token(&app.state, "other-fleet", Scope::Ingest).await;
    assert_eq!(send(&app, &other, &report("real-1")).await.status(), 204);
    let admin = app.admin_session().await;
    let audit = app.audit(&admin, &[("action", "agent.register"), ("limit", "1000")]).await;
    assert_eq!(audit.events.len(), limit + 1);
}
