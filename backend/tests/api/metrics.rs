//! Metrics through a real Prometheus (the Debian package, remote-write receiver on): samples
//! posted to Vigil come back through Vigil's PromQL API; Prometheus' refusals and absence are
//! named; the bounds hold.

use serde_json::{Value, json};
use vigil_proto::metrics::QueryResult;
use vigil_proto::paths;

use crate::helpers::{Db, TestApp, assert_error, free_port, spawn_app_with};
use crate::prometheus::TestPrometheus;

async fn start(configure: impl FnOnce(&mut vigil_backend::config::Config)) -> (TestApp, TestPrometheus) {
    let prometheus = TestPrometheus::start("").await;
    let url = prometheus.address.clone();
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.metrics.prometheus_url = url;
        configure(config);
    })
    .await;
    (app, prometheus)
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn post(app: &TestApp, batch: &Value) -> reqwest::Response {
    app.post_metrics(batch).await
}

async fn get(app: &TestApp, path: &str, params: &[(&str, &str)]) -> reqwest::Response {
    app.read(path, params).await
}

#[tokio::test]
async fn samples_posted_to_vigil_come_back_through_promql() {
    let (app, prometheus) = start(|_| {}).await;
    // Whole seconds, so that the range query's evaluation times fall on the samples.
    let now = (now_millis() / 1000 - 1) * 1000;
    let batch = json!({"series": [
        {"labels": {"__name__": "vigil_test_requests_total", "job": "shop", "instance": "web-1:8080", "code": "200"},
         "samples": [[now - 60_000, 10], [now - 30_000, 25], [now, 40]]},
        {"labels": {"__name__": "vigil_test_requests_total", "job": "shop", "instance": "web-2:8080", "code": "500"},
         "samples": [[now - 60_000, 1], [now, "NaN"]]},
    ]});
    let response = post(&app, &batch).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted, json!({"series": 2, "samples": 5}));

    // Prometheus holds them, with their labels, as Vigil sent them.
    let direct = prometheus.query("vigil_test_requests_total{code=\"200\"}").await;
    assert_eq!(direct.len(), 1);
    assert_eq!(direct[0]["metric"]["instance"], "web-1:8080");
    assert_eq!(direct[0]["value"][1], "40");

    // And Vigil's API answers PromQL over them.
    let instant: QueryResult =
        get(&app, paths::METRICS_QUERY, &[("query", "sum by (code) (vigil_test_requests_total)")])
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(instant.result_type, "vector");
    let by_code = |code: &str| {
        instant.series.iter().find(|series| series.labels["code"] == code).map(|series| series.points[0].1)
    };
    assert_eq!(by_code("200"), Some(Some(40.0)));
    assert_eq!(by_code("500"), Some(None), "NaN travels as null");

    let start = ((now - 120_000) / 1000).to_string();
    let end = (now / 1000).to_string();
    let range: QueryResult = get(
        &app,
        paths::METRICS_QUERY_RANGE,
        &[("query", "vigil_test_requests_total{code=\"200\"}"), ("start", &start), ("end", &end), ("step", "15s")],
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!((range.result_type.as_str(), range.step_seconds), ("matrix", Some(15.0)));
    let values: Vec<f64> = range.series[0].points.iter().filter_map(|(_, value)| *value).collect();
    assert!(values.contains(&10.0) && values.contains(&40.0), "{values:?}");
    // Without a step, one is chosen from the range.
    let chosen: QueryResult =
        get(&app, paths::METRICS_QUERY_RANGE, &[("query", "up"), ("start", &start), ("end", &end)])
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(chosen.step_seconds, Some(1.0));

    let labels: Vec<String> =
        get(&app, paths::METRICS_LABELS, &[("match[]", "vigil_test_requests_total")]).await.json().await.unwrap();
    for name in ["__name__", "code", "instance", "job"] {
        assert!(labels.contains(&name.to_owned()), "{labels:?}");
    }
    let values: Vec<String> =
        get(&app, &paths::METRICS_LABEL_VALUES.replace("{name}", "instance"), &[]).await.json().await.unwrap();
    assert_eq!(values, ["web-1:8080", "web-2:8080"]);
    let names: Vec<String> =
        get(&app, &paths::METRICS_LABEL_VALUES.replace("{name}", "__name__"), &[]).await.json().await.unwrap();
    assert!(names.contains(&"vigil_test_requests_total".to_owned()));
    let series: Vec<Value> =
        get(&app, paths::METRICS_SERIES, &[("match[]", "vigil_test_requests_total{code=~\"5..\"}")])
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(series.len(), 1);
    assert_eq!(series[0]["instance"], "web-2:8080");

    // Vigil counts what it sent.
    let own = app.client.get(app.url(paths::METRICS)).send().await.unwrap().text().await.unwrap();
    assert!(own.contains("vigil_remote_write_samples_sent_total 5"), "{own}");
}

#[tokio::test]
async fn bad_queries_and_batches_are_named_and_bounds_hold() {
    let (app, _prometheus) = start(|config| config.metrics.max_series = 2).await;
    // Prometheus' parser's message, with the position.
    let body = assert_error(
        get(&app, paths::METRICS_QUERY, &[("query", "sum(rate(x[5m])")]).await,
        400,
        "invalid_query",
        "parse error",
    )
    .await;
    assert!(body["position"].is_u64(), "{body}");
    assert_error(
        get(&app, paths::METRICS_SERIES, &[("match[]", "{job=shop}")]).await,
        400,
        "invalid_query",
        "not a series selector",
    )
    .await;
    assert_error(
        get(&app, paths::METRICS_QUERY_RANGE, &[("query", "up"), ("start", "0"), ("end", "604800"), ("step", "1")])
            .await,
        400,
        "invalid_parameter",
        "the limit is 11000",
    )
    .await;

    let now = now_millis();
    let series: Vec<Value> = (0..3)
        .map(|index| json!({"labels": {"__name__": "vigil_many", "index": index.to_string()}, "samples": [[now, index]]}))
        .collect();
    assert_eq!(post(&app, &json!({"series": series})).await.status(), 200);
    assert_error(
        get(&app, paths::METRICS_QUERY, &[("query", "vigil_many")]).await,
        400,
        "invalid_query",
        "returned 3 series; the limit is 2",
    )
    .await;

    // A batch Vigil can see is wrong never reaches Prometheus.
    let bad = json!({"series": [{"labels": {"__name__": "ok"}, "samples": [[now, 1]]}, {"labels": {"job": "x"}, "samples": [[now, 1]]}]});
    assert_error(post(&app, &bad).await, 400, "invalid_record", "series 1: no __name__").await;
    let not_json = app
        .client
        .post(app.url(paths::METRICS_WRITE))
        .bearer_auth(&app.ingest_token)
        .body("{")
        .header("content-type", "application/json");
    assert_error(not_json.send().await.unwrap(), 400, "invalid_json", "invalid metric batch").await;
    // A batch Prometheus refuses (samples far too old for its head block): its message.
    let ancient =
        json!({"series": [{"labels": {"__name__": "vigil_ancient"}, "samples": [[now - 400 * 86_400_000, 1]]}]});
    assert_error(post(&app, &ancient).await, 400, "invalid_record", "Prometheus refused the samples").await;
    // Reads need a read token, writes an ingest token.
    let denied = app
        .client
        .get(app.url(paths::METRICS_QUERY))
        .bearer_auth(&app.ingest_token)
        .query(&[("query", "up")])
        .send()
        .await;
    assert_eq!(denied.unwrap().status(), 403);
}

#[tokio::test]
async fn without_prometheus_metrics_say_so_and_the_rest_of_vigil_works() {
    let port = free_port();
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.metrics.prometheus_url = format!("http://127.0.0.1:{port}");
        config.metrics.write_deadline_seconds = 1;
    })
    .await;
    assert_error(get(&app, paths::METRICS_QUERY, &[("query", "up")]).await, 503, "unavailable", "cannot be reached")
        .await;
    assert_error(get(&app, paths::METRICS_LABELS, &[]).await, 503, "unavailable", &format!("127.0.0.1:{port}")).await;
    let batch = json!({"series": [{"labels": {"__name__": "up"}, "samples": [[now_millis(), 1]]}]});
    let response = post(&app, &batch).await;
    assert!(response.headers().contains_key("retry-after"));
    assert_error(response, 503, "unavailable", "did not accept the samples within 1 s").await;
    let own = app.client.get(app.url(paths::METRICS)).send().await.unwrap().text().await.unwrap();
    assert!(own.contains("vigil_remote_write_samples_failed_total 1"), "{own}");
    // Logs, health and the UI are unaffected.
    assert_eq!(app.client.get(app.url(paths::HEALTHZ)).send().await.unwrap().status(), 200);
    app.search(&[]).await;
}

#[tokio::test]
async fn prometheus_discovers_the_configured_services_over_http_sd() {
    let port = free_port();
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.listen = format!("127.0.0.1:{port}").parse().unwrap();
        // The service "shop" is, for the test, Vigil's own /metrics.
        config.services = vec![vigil_backend::config::ServiceConfig {
            targets: vec![format!("127.0.0.1:{port}")],
            labels: [("env".to_owned(), "test".to_owned())].into(),
            ..vigil_backend::config::ServiceConfig::named("shop")
        }];
    })
    .await;
    let groups: Value = get(&app, paths::SD_TARGETS, &[]).await.json().await.unwrap();
    assert_eq!(
        groups,
        json!([{"targets": [format!("127.0.0.1:{port}")], "labels": {
            "__metrics_path__": "/metrics", "__scheme__": "http", "env": "test", "job": "shop", "service": "shop"
        }}])
    );
    assert_eq!(app.client.get(app.url(paths::SD_TARGETS)).send().await.unwrap().status(), 401, "behind a token");

    let prometheus = TestPrometheus::start(&format!(
        "  - job_name: vigil-sd\n    http_sd_configs:\n      - url: {}\n        refresh_interval: 1s\n        authorization:\n          credentials: {}\n",
        app.url(paths::SD_TARGETS),
        app.read_token
    ))
    .await;
    let target = crate::helpers::eventually(60, "Prometheus to discover and scrape the target", || async {
        let targets: Value =
            reqwest::get(format!("{}/api/v1/targets", prometheus.address)).await.ok()?.json().await.ok()?;
        targets["data"]["activeTargets"]
            .as_array()?
            .iter()
            .find(|target| target["labels"]["service"] == "shop" && target["health"] == "up")
            .cloned()
    })
    .await;
    assert_eq!(target["labels"]["env"], "test");
    assert_eq!(target["labels"]["job"], "shop");
    assert_eq!(target["scrapeUrl"], format!("http://127.0.0.1:{port}/metrics"));
}

/// A counter's or gauge's series: three samples over the last minute.
fn series(now: i64, labels: Value, values: [f64; 3]) -> Value {
    json!({"labels": labels, "samples": [[now - 60_000, values[0]], [now - 30_000, values[1]], [now, values[2]]]})
}

#[tokio::test]
async fn generated_dashboards_query_what_agents_and_services_expose() {
    let (app, _prometheus) = start(|config| {
        config.services = vec![vigil_backend::config::ServiceConfig::named("shop")];
    })
    .await;
    let now = (now_millis() / 1000 - 1) * 1000;
    let mut all = Vec::new();
    for host in ["web-1", "web-2"] {
        let with = |name: &str, extra: Value| {
            let mut labels = json!({"__name__": name, "instance": host});
            for (key, value) in extra.as_object().unwrap() {
                labels[key] = value.clone();
            }
            labels
        };
        all.push(series(now, with("node_uname_info", json!({"nodename": host})), [1.0, 1.0, 1.0]));
        for (mode, step) in [("idle", 25.0), ("user", 4.0), ("system", 1.0)] {
            all.push(series(
                now,
                with("node_cpu_seconds_total", json!({"cpu": "0", "mode": mode})),
                [100.0, 100.0 + step, 100.0 + 2.0 * step],
            ));
        }
        all.push(series(now, with("node_memory_MemTotal_bytes", json!({})), [8e9, 8e9, 8e9]));
        all.push(series(now, with("node_memory_MemAvailable_bytes", json!({})), [3e9, 2.9e9, 2.8e9]));
        for name in ["node_load1", "node_load5", "node_load15"] {
            all.push(series(now, with(name, json!({})), [0.5, 0.6, 0.7]));
        }
        let fs = json!({"mountpoint": "/", "fstype": "ext4", "device": "/dev/sda1"});
        all.push(series(now, with("node_filesystem_size_bytes", fs.clone()), [1e11, 1e11, 1e11]));
        all.push(series(now, with("node_filesystem_avail_bytes", fs), [4e10, 4e10, 3.9e10]));
        for name in ["node_disk_read_bytes_total", "node_disk_written_bytes_total"] {
            all.push(series(now, with(name, json!({"device": "sda"})), [1e6, 2e6, 3e6]));
        }
        for name in ["node_network_receive_bytes_total", "node_network_transmit_bytes_total"] {
            all.push(series(now, with(name, json!({"device": "eth0"})), [5e6, 6e6, 7e6]));
        }
    }
    for (code, values) in [("200", [1000.0, 1600.0, 2200.0]), ("500", [10.0, 16.0, 22.0])] {
        all.push(series(now, json!({"__name__": "http_requests_total", "service": "shop", "code": code}), values));
    }
    for (le, values) in
        [("0.1", [800.0, 1200.0, 1600.0]), ("0.5", [990.0, 1590.0, 2190.0]), ("+Inf", [1010.0, 1616.0, 2222.0])]
    {
        all.push(series(
            now,
            json!({"__name__": "http_request_duration_seconds_bucket", "service": "shop", "le": le}),
            values,
        ));
    }
    let response = post(&app, &json!({"series": all})).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());
    app.post_logs(&[crate::helpers::record(
        &vigil_proto::Timestamp::from_unix_nanos(now * 1_000_000).unwrap().to_rfc3339(),
        "shop",
        "error",
        "payment failed",
    )])
    .await;

    let list: Vec<Value> = get(&app, paths::BUILTIN_DASHBOARDS, &[]).await.json().await.unwrap();
    let uids: Vec<&str> = list.iter().filter_map(|entry| entry["uid"].as_str()).collect();
    assert_eq!(uids, ["hosts", "services/shop"]);
    assert_eq!(get(&app, &paths::BUILTIN_SERVICE.replace("{service}", "nope"), &[]).await.status(), 404);

    // The $host variable is filled from label values, as the UI fills it.
    let hosts: Vec<String> =
        get(&app, &paths::METRICS_LABEL_VALUES.replace("{name}", "instance"), &[("match[]", "node_uname_info")])
            .await
            .json()
            .await
            .unwrap();
    assert_eq!(hosts, ["web-1", "web-2"]);
    let chosen: std::collections::BTreeMap<String, Vec<String>> = [("host".to_owned(), hosts)].into();

    for path in [paths::BUILTIN_HOSTS.to_owned(), paths::BUILTIN_SERVICE.replace("{service}", "shop")] {
        let spec: vigil_proto::dashboards::DashboardSpec = get(&app, &path, &[]).await.json().await.unwrap();
        let mut checked = 0;
        for panel in spec.rows.iter().flat_map(|row| row.panels.iter()) {
            use vigil_proto::dashboards::PanelKind;
            let queries: Vec<String> = match &panel.kind {
                PanelKind::TimeSeries { queries, .. } => queries.iter().map(|query| query.expr.clone()).collect(),
                PanelKind::Stat { query, .. } | PanelKind::Table { query } => vec![query.clone()],
                PanelKind::Logs { query } => {
                    let page = app.search(&[("q", query.as_str())]).await;
                    assert_eq!(page.total, 1, "{}: {query}", panel.title);
                    checked += 1;
                    continue;
                }
            };
            for expr in queries {
                let expr = vigil_proto::dashboards::expand(&expr, &chosen);
                let response = get(&app, paths::METRICS_QUERY, &[("query", expr.as_str())]).await;
                assert_eq!(response.status(), 200, "{}: {expr}", panel.title);
                let result: QueryResult = response.json().await.unwrap();
                assert!(
                    result.series.iter().any(|series| series.points.iter().any(|(_, value)| value.is_some())),
                    "{} ({}): {expr} returned no value",
                    spec.title,
                    panel.title
                );
                checked += 1;
            }
        }
        assert!(checked >= 7, "{}: {checked} queries", spec.title);
    }
}
