//! Vigil as an Alertmanager, against the real clients: a Prometheus whose rule file alerts
//! into Vigil through `alerting.alertmanagers`; `amtool` listing Vigil's alerts and adding and
//! expiring a silence; a real Alertmanager whose webhook posts into Vigil.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use vigil_proto::alerts::{AlertState, NotificationEvent};
use vigil_proto::auth::Scope;
use vigil_proto::paths;

use crate::alerts::{Receiver, alerts, received_exactly, start, webhook_channel};
use crate::helpers::{Db, TestApp, eventually, free_port, service_token};
use crate::prometheus::TestPrometheus;

const AMTOOL: &str = "/usr/bin/amtool";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A Prometheus that evaluates `rules` every second and sends what fires to `app`'s
/// Alertmanager API with its ingest token.
async fn prometheus_alerting_into(app: &TestApp, rules: &str) -> TestPrometheus {
    let configuration = format!(
        "alerting:\n  alertmanagers:\n    - api_version: v2\n      authorization:\n        type: Bearer\n        credentials: {token}\n      static_configs:\n        - targets: ['127.0.0.1:{port}']\nrule_files: ['rules.yml']\nscrape_configs: []\n",
        token = app.ingest_token,
        port = app.port,
    );
    // Prometheus drops what fires before it found its Alertmanager and resends after this delay.
    TestPrometheus::start_with(&configuration, Some(rules), &["--rules.alert.resend-delay=1s"]).await
}

async fn amtool(app: &TestApp, token: &str, dir: &Path, arguments: &[&str]) -> String {
    assert!(Path::new(AMTOOL).exists(), "amtool is missing: apt-get install prometheus-alertmanager");
    let http_config = dir.join("http.yml");
    std::fs::write(&http_config, format!("authorization:\n  type: Bearer\n  credentials: {token}\n")).unwrap();
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(AMTOOL)
            .arg(format!("--alertmanager.url={}", app.address))
            .arg(format!("--http.config.file={}", http_config.display()))
            .args(arguments)
            .output(),
    )
    .await
    .expect("amtool answers within 30 s")
    .expect("amtool runs");
    assert!(
        output.status.success(),
        "amtool {arguments:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn prometheus_alerts_into_vigil_and_amtool_lists_them_and_silences_against_vigil() {
    let receiver = Receiver::start(Vec::new()).await;
    // Alerts from Prometheus name no channel: the routes send them.
    let app = start_routed().await;
    let admin = app.admin_session().await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    let _prometheus = prometheus_alerting_into(
        &app,
        "groups:\n  - name: fast\n    interval: 1s\n    rules:\n      - alert: DiskFilling\n        expr: vector(1)\n        labels: {severity: critical, service: storage}\n        annotations: {summary: \"the disk fills\"}\n",
    )
    .await;
    let alert = eventually(30, "Prometheus' alert in Vigil", || async {
        alerts(&app)
            .await
            .into_iter()
            .find(|alert| alert.labels.get("alertname").is_some_and(|name| name == "DiskFilling"))
    })
    .await;
    assert_eq!((alert.state, alert.source.as_str(), alert.rule_id), (AlertState::Firing, "prometheus", 0));
    assert_eq!(alert.annotations["summary"], "the disk fills");
    let told = received_exactly(&receiver, 1, "one notification, though Prometheus resends every second").await;
    assert_eq!(told[0].event, NotificationEvent::Firing);
    assert_eq!(told[0].rule_name, "DiskFilling");

    // amtool reads Vigil's alerts, and adds and expires a silence.
    let dir = tempfile::tempdir().unwrap();
    let deploy_token = service_token(&app.state, "amtool", Scope::Deploy).await;
    let listed: Value =
        serde_json::from_str(&amtool(&app, &deploy_token, dir.path(), &["alert", "query", "-o", "json"]).await)
            .unwrap();
    let listed = listed.as_array().expect("an array of alerts");
    assert!(listed.iter().any(|alert| alert["labels"]["alertname"] == "DiskFilling"), "{listed:?}");
    let filtered =
        amtool(&app, &deploy_token, dir.path(), &["alert", "query", "-o", "json", "alertname=Nothing"]).await;
    assert_eq!(serde_json::from_str::<Value>(&filtered).unwrap(), json!([]));
    let id = amtool(
        &app,
        &deploy_token,
        dir.path(),
        &["silence", "add", "alertname=DiskFilling", "--comment=resizing the volume", "--author=ops", "--duration=1h"],
    )
    .await;
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 36, "a silence id: {id:?}");
    let silences: Value =
        serde_json::from_str(&amtool(&app, &deploy_token, dir.path(), &["silence", "query", "-o", "json"]).await)
            .unwrap();
    let silence =
        silences.as_array().unwrap().iter().find(|silence| silence["id"] == id.as_str()).expect("the silence").clone();
    assert_eq!((silence["createdBy"].as_str(), silence["status"]["state"].as_str()), (Some("ops"), Some("active")));
    let suppressed: Value = serde_json::from_str(
        &amtool(&app, &deploy_token, dir.path(), &["alert", "query", "-o", "json", "--silenced"]).await,
    )
    .unwrap();
    assert!(
        suppressed.as_array().unwrap().iter().any(|alert| alert["status"]["state"] == "suppressed"),
        "{suppressed}"
    );
    amtool(&app, &deploy_token, dir.path(), &["silence", "expire", &id]).await;
    let kept: Value = app.read(&paths::SILENCE.replace("{id}", &id), &[]).await.json().await.unwrap();
    assert_eq!(kept["state"], "expired");
    // A read token may not silence.
    let refused = app
        .client
        .post(app.url(paths::AM_SILENCES))
        .bearer_auth(&app.read_token)
        .json(&json!({"matchers": [{"name": "a", "value": "b", "isRegex": false}], "startsAt": "", "endsAt": "2099-01-01T00:00:00Z", "createdBy": "x", "comment": "y"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
}

/// A backend whose `[[alerts.routes]]` send critical alerts to `on-call`.
async fn start_routed() -> TestApp {
    crate::helpers::spawn_app_with(Db::Sqlite, |config| {
        config.alerts.tick_millis = 100;
        config.alerts.routes = vec![vigil_backend::config::AlertRouteConfig {
            matchers: vec!["severity=\"critical\"".to_owned()],
            channels: vec!["on-call".to_owned()],
            continue_matching: false,
            group_by: None,
            group_wait_seconds: 0,
            group_interval_seconds: 0,
        }];
    })
    .await
}

#[tokio::test]
async fn bad_alerts_from_outside_are_refused_whole_with_the_alert_named() {
    let app = start(Db::Sqlite, None).await;
    let post =
        |body: Value| app.client.post(app.url(paths::AM_ALERTS)).bearer_auth(&app.ingest_token).json(&body).send();
    let cases = [
        (json!([{"labels": {}}]), "alert 0: labels must not be empty"),
        (json!([{"labels": {"alertname": "A"}}, {"labels": {"bad-name": "x"}}]), "alert 1"),
        (json!([{"labels": {"alertname": "A"}, "endsAt": "yesterday"}]), "endsAt"),
    ];
    for (body, needle) in cases {
        let response = post(body).await.unwrap();
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert!(error["message"].as_str().unwrap().contains(needle), "{error}");
    }
    assert!(alerts(&app).await.is_empty(), "nothing of a refused batch is kept");
    let anonymous = app.client.post(app.url(paths::AM_ALERTS)).json(&json!([])).send().await.unwrap();
    assert_eq!(anonymous.status(), 401);
    // Resolving by the same labels with an `endsAt`.
    let alert = json!({"labels": {"alertname": "Manual", "severity": "info"}, "annotations": {"summary": "by hand"}});
    assert_eq!(post(json!([alert])).await.unwrap().status(), 200);
    assert_eq!(alerts(&app).await[0].state, AlertState::Firing);
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let resolved = json!([{"labels": {"alertname": "Manual", "severity": "info"}, "endsAt": now}]);
    assert_eq!(post(resolved).await.unwrap().status(), 200);
    assert_eq!(alerts(&app).await[0].state, AlertState::Resolved);
}

#[tokio::test]
async fn a_real_alertmanagers_webhook_posts_into_vigil() {
    assert!(Path::new(ALERTMANAGER).exists(), "Alertmanager is missing: apt-get install prometheus-alertmanager");
    let app = start(Db::Sqlite, None).await;
    // The conformance payload (an earlier webhook version) is taken as it is.
    let payload =
        std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/alertmanager/webhook-success.json")).unwrap();
    let response = app
        .client
        .post(app.url(paths::ALERTMANAGER_WEBHOOK))
        .bearer_auth(&app.ingest_token)
        .header("content-type", "application/json")
        .body(payload)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(alerts(&app).await.iter().any(|alert| alert.labels.get("Message").is_some_and(|value| value == "message")));

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: vigil\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: vigil\n    webhook_configs:\n      - url: {url}\n        send_resolved: true\n        http_config:\n          authorization:\n            type: Bearer\n            credentials: {token}\n",
            url = app.url(paths::ALERTMANAGER_WEBHOOK),
            token = app.ingest_token,
        ),
    )
    .unwrap();
    let port = free_port();
    let _alertmanager = tokio::process::Command::new(ALERTMANAGER)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("Alertmanager starts");
    let client = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{port}");
    eventually(30, "Alertmanager ready", || async {
        let ready = client.get(format!("{base}/-/ready")).send().await;
        ready.is_ok_and(|response| response.status().is_success()).then_some(())
    })
    .await;
    let labels = json!({"alertname": "QueueBacklog", "service": "billing"});
    let post = |alert: Value| client.post(format!("{base}/api/v2/alerts")).json(&json!([alert])).send();
    assert_eq!(post(json!({"labels": labels, "annotations": {"summary": "jobs wait"}})).await.unwrap().status(), 200);
    let alert = eventually(30, "the alert through Alertmanager's webhook", || async {
        alerts(&app)
            .await
            .into_iter()
            .find(|alert| alert.labels.get("alertname").is_some_and(|name| name == "QueueBacklog"))
    })
    .await;
    assert_eq!((alert.state, alert.source.as_str()), (AlertState::Firing, "alertmanager"));
    assert_eq!(alert.annotations["summary"], "jobs wait");
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    assert_eq!(post(json!({"labels": labels, "endsAt": now})).await.unwrap().status(), 200);
    eventually(30, "the resolution through the webhook", || async {
        alerts(&app).await.into_iter().find(|alert| {
            alert.labels.get("alertname").is_some_and(|name| name == "QueueBacklog")
                && alert.state == AlertState::Resolved
        })
    })
    .await;
    let status = app.client.get(app.url(paths::AM_STATUS)).bearer_auth(&app.read_token).send().await.unwrap();
    assert_eq!(status.status(), 200);
}

/// Alerts posted to Vigil's Alertmanager API, through a route that groups by `alertname`:
/// what fires together is told in one message after the group wait, what comes later waits
/// for the group interval, and other groups are told apart.
#[tokio::test]
async fn a_grouping_route_tells_a_group_in_one_message_and_waits_its_interval_between_messages() {
    let receiver = Receiver::start(Vec::new()).await;
    let app = crate::helpers::spawn_app_with(Db::Sqlite, |config| {
        config.alerts.tick_millis = 100;
        config.alerts.routes = vec![vigil_backend::config::AlertRouteConfig {
            matchers: Vec::new(),
            channels: vec!["on-call".to_owned()],
            continue_matching: false,
            group_by: Some(vec!["alertname".to_owned()]),
            group_wait_seconds: 2,
            group_interval_seconds: 6,
        }];
    })
    .await;
    let admin = app.admin_session().await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    let post = |body: Value| {
        let request = app.client.post(app.url(paths::AM_ALERTS)).bearer_auth(&app.ingest_token).json(&body);
        async move { assert_eq!(request.send().await.unwrap().status(), 200) }
    };
    let disk = |instance: &str| json!({"labels": {"alertname": "DiskFull", "instance": instance}});

    let posted = std::time::Instant::now();
    post(json!([disk("a"), disk("b")])).await;
    post(json!([disk("c"), {"labels": {"alertname": "CpuHot", "instance": "a"}}])).await;
    eventually(20, "the two groups' first messages", || async { (receiver.messages().len() >= 2).then_some(()) }).await;
    assert!(posted.elapsed() >= Duration::from_secs(2), "a group's first message waits for the group wait");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let messages = receiver.messages();
    assert_eq!(messages.len(), 2, "one message per group: {messages:?}");
    let of = |name: &str| {
        messages
            .iter()
            .find(|message| message.group_labels.get("alertname").is_some_and(|value| value == name))
            .unwrap_or_else(|| panic!("no message for {name}: {messages:?}"))
            .clone()
    };
    let disk_message = of("DiskFull");
    let mut instances: Vec<&str> =
        disk_message.notifications.iter().map(|told| told.alert.labels["instance"].as_str()).collect();
    instances.sort();
    assert_eq!(instances, ["a", "b", "c"]);
    assert!(disk_message.notifications.iter().all(|told| told.event == NotificationEvent::Firing));
    assert_eq!(disk_message.group_key, "route0:{alertname=\"DiskFull\"}");
    assert_eq!(of("CpuHot").notifications.len(), 1);

    // A fourth disk, and the first one resolved: told together, once the interval has passed
    // since the group's first message.
    let first_sent = std::time::Instant::now();
    post(json!([disk("d")])).await;
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    post(json!([{"labels": {"alertname": "DiskFull", "instance": "a"}, "endsAt": now}])).await;
    eventually(20, "the group's second message", || async { (receiver.messages().len() >= 3).then_some(()) }).await;
    assert!(
        first_sent.elapsed() >= Duration::from_millis(3500),
        "the second message waited for the group interval, not only the group wait"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let messages = receiver.messages();
    assert_eq!(messages.len(), 3, "{messages:?}");
    let second = &messages[2];
    assert_eq!(second.group_labels["alertname"], "DiskFull");
    let told: Vec<(NotificationEvent, &str)> =
        second.notifications.iter().map(|told| (told.event, told.alert.labels["instance"].as_str())).collect();
    assert_eq!(told, [(NotificationEvent::Firing, "d"), (NotificationEvent::Resolved, "a")]);
    assert_eq!(receiver.received().len(), 6, "every notification exactly once");
}
