//! A line appended to a log file on a host travels through the agent and the backend to the
//! browser: the Logs page, hydrated, finds it by search.

use std::io::Write;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use vigil_agent::config::{AgentConfig, BackendConfig, BatchConfig, FileSourceConfig, TailConfig};

use crate::browser::{Browser, ELEMENT};
use crate::helpers::{ADMIN, ADMIN_PASSWORD, eventually, site_root, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_appended_to_a_file_is_found_in_the_browser() {
    assert!(
        site_root().join("pkg/vigil_bg.wasm").exists(),
        "the wasm bundle is missing: run `cargo xtask build` (or `cargo xtask test`) first"
    );
    let app = spawn_app().await;
    let logs = tempfile::tempdir().unwrap();
    let mut agent_config = AgentConfig::new(
        BackendConfig { timeout_seconds: 5, ..BackendConfig::new(app.address.clone(), app.ingest_token.clone()) },
        logs.path().join("agent-data"),
    );
    agent_config.host = Some("web-7".to_owned());
    agent_config.sources =
        vec![FileSourceConfig::new("shop", "shop", vec![format!("{}/*.log", logs.path().display())])];
    agent_config.batch = BatchConfig { max_wait_ms: 50, ..BatchConfig::default() };
    agent_config.tail = TailConfig { poll_interval_ms: 50, ..TailConfig::default() };
    agent_config.validate().unwrap();
    // What the file holds before the agent starts is not shipped: new lines only.
    let marker = format!("zebra{}", std::process::id());
    let path = logs.path().join("shop.log");
    std::fs::write(&path, format!("INFO old line {marker}old\n")).unwrap();
    let agent_shutdown = CancellationToken::new();
    let agent = tokio::spawn(vigil_agent::start(agent_config, agent_shutdown.clone()).unwrap().run());

    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(file, "INFO GET /products 200").unwrap();
    writeln!(file, "ERROR checkout failed for order {marker}").unwrap();
    file.sync_all().unwrap();

    let shipped = eventually(20, "the agent to ship the line", || async {
        let page = app.search(&[("q", marker.as_str())]).await;
        page.records.into_iter().next()
    })
    .await;
    assert_eq!((shipped.service.as_str(), shipped.host.as_str(), shipped.level.as_str()), ("shop", "web-7", "error"));
    assert_eq!(app.search(&[("q", &format!("{marker}old"))]).await.total, 0, "a line older than the agent was shipped");

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/logs"), ADMIN, ADMIN_PASSWORD).await;
    // Interactive only once the wasm bundle has hydrated the page.
    browser.wait_for(".search-bar[data-hydrated='true']").await;
    // A marker on the window survives client-side navigation but not a full page load.
    browser.execute("window.__vigilSamePage = true;", vec![]).await;

    let query = browser.wait_for("input.query").await;
    browser.type_text(&query, &marker).await;
    browser.click(&browser.wait_for(".search-bar button[type='submit']").await).await;

    let hit = eventually(20, "the hit in the result list", || async {
        for element in browser.find_all(".record .message").await {
            let text = browser.text(&element).await;
            if text.contains(&marker) {
                return Some(text);
            }
        }
        None
    })
    .await;
    assert_eq!(hit, format!("ERROR checkout failed for order {marker}"));
    let level = browser.text(&browser.wait_for(".record .level").await).await;
    assert_eq!(level.to_lowercase(), "error");
    assert!(browser.current_url().await.contains(&format!("q={marker}")), "the query is in the URL");
    let same_page = browser.execute("return window.__vigilSamePage === true;", vec![]).await;
    assert_eq!(same_page, json!(true), "the search ran without a full page reload");

    // The volume histogram is drawn, with the error in an error bar.
    browser.wait_for(".histogram svg rect.bar-error").await;

    // A record expands to its attributes and its context.
    browser.click(&browser.wait_for(".record .line time").await).await;
    let attributes = browser.text(&browser.wait_for(".record .details .attributes").await).await;
    assert!(attributes.contains("shop.log"), "{attributes}");
    browser.click(&browser.wait_for(".record .context-button").await).await;
    let context = browser.text(&browser.wait_for(".record .context li.current").await).await;
    assert!(context.contains(&marker), "{context}");
    let before = browser.text(&browser.wait_for(".record .context li:first-child").await).await;
    assert!(before.contains("GET /products"), "the line before is shown: {before}");

    if std::env::var_os("VIGIL_TEST_SCREENSHOTS").is_some() {
        browser.screenshot(&std::env::temp_dir().join("vigil-logs-page.png")).await;
    }

    // The live tail shows a line appended after it started.
    browser.click(&browser.wait_for(".live-toggle").await).await;
    browser.wait_for(".live-tail[data-live='connected']").await;
    writeln!(file, "WARN live line for {marker}").unwrap();
    file.sync_all().unwrap();
    let live = eventually(20, "the new line in the live tail", || async {
        let element = browser.find_all(".records.live .message").await.into_iter().next()?;
        Some(browser.text(&element).await)
    })
    .await;
    assert_eq!(live, format!("WARN live line for {marker}"));
    // The tail is part of the URL: a reload opens it again.
    let live_url = browser.current_url().await;
    assert!(live_url.contains("live=1"), "{live_url}");
    browser.goto(&live_url).await;
    browser.wait_for(".live-tail[data-live='connected']").await;
    browser.click(&browser.wait_for(".live-toggle").await).await;
    eventually(20, "the tail to stop and leave the URL", || async {
        let stopped = browser.find_all(".live-tail[data-live='off']").await.len() == 1;
        (stopped && !browser.current_url().await.contains("live=1")).then_some(())
    })
    .await;

    // A field value adds itself to the query.
    browser.click(&browser.wait_for(".record .chip.host").await).await;
    eventually(20, "the host filter in the URL", || async {
        let url = browser.current_url().await;
        url.contains("host%3A%22web-7%22").then_some(())
    })
    .await;

    // Dragging across the histogram zooms the range to the buckets between.
    let buckets = browser.find_all(".histogram rect.bucket").await;
    assert!(buckets.len() > 5, "{} buckets", buckets.len());
    browser.drag(&buckets[buckets.len() - 5], &buckets[buckets.len() - 1]).await;
    eventually(20, "an absolute range in the URL", || async {
        let url = browser.current_url().await;
        (url.contains("start=") && url.contains("end=")).then_some(())
    })
    .await;
    let message = browser.text(&browser.wait_for(".records:not(.live) .record .message").await).await;
    assert!(message.contains(&marker), "the zoomed range still holds the record: {message}");

    // A query that does not parse shows the parser's message instead of results.
    let query = browser.wait_for("input.query").await;
    browser.execute("arguments[0].value = '';", vec![json!({ELEMENT: query.id()})]).await;
    browser.type_text(&query, "service:(").await;
    browser.click(&browser.wait_for(".search-bar button[type='submit']").await).await;
    let error = browser.text(&browser.wait_for("p.error").await).await;
    assert!(error.contains("syntax error at position"), "{error}");
    browser.quit().await;

    agent_shutdown.cancel();
    agent.await.unwrap();
}

/// Scrolling to the end of the results loads the next page through the cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrolling_down_loads_older_records() {
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc();
    let records: Vec<_> = (0..250)
        .map(|index| {
            let at =
                (now - time::Duration::seconds(index)).format(&time::format_description::well_known::Rfc3339).unwrap();
            crate::helpers::record(&at, "shop", "info", &format!("pagination line {index}"))
        })
        .collect();
    assert_eq!(app.post_logs(&records).await.status(), 200);

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/logs?q=pagination&range=1h"), ADMIN, ADMIN_PASSWORD).await;
    browser.wait_for(".search-bar[data-hydrated='true']").await;
    assert_eq!(browser.find_all(".records:not(.live) > .record").await.len(), 100);
    for expected in [200, 250] {
        eventually(20, &format!("{expected} records after scrolling"), || async {
            browser.execute("window.scrollTo(0, document.documentElement.scrollHeight);", vec![]).await;
            (browser.find_all(".records:not(.live) > .record").await.len() >= expected).then_some(())
        })
        .await;
    }
    let last = browser.find_all(".records:not(.live) > .record .message").await.pop().unwrap();
    assert_eq!(browser.text(&last).await, "pagination line 249");
    assert!(browser.find_all("button.more").await.is_empty(), "no more pages after the last");
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_and_out_in_the_browser() {
    let app = spawn_app().await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/")).await;
    browser.wait_for(".login-form").await;
    assert!(browser.current_url().await.contains("/login?next=/"), "{}", browser.current_url().await);

    // A wrong password is named on the login page.
    browser.type_text(&browser.wait_for("input[name='username']").await, ADMIN).await;
    browser.type_text(&browser.wait_for("input[name='password']").await, "not the password").await;
    browser.click(&browser.wait_for("button[type='submit']").await).await;
    let error = browser.text(&browser.wait_for(".login-error").await).await;
    assert_eq!(error, "invalid user name or password");

    browser.goto_signed_in(&app.url("/"), ADMIN, ADMIN_PASSWORD).await;
    let user = eventually(20, "the signed-in user in the navigation", || async {
        let element = browser.find_all(".current-user").await.into_iter().next()?;
        Some(browser.text(&element).await)
    })
    .await;
    assert_eq!(user, ADMIN);
    assert_eq!(browser.text(&browser.wait_for("main h1").await).await, "Overview");

    // The settings page lists the users and the audit log holds the sign-ins.
    browser.goto(&app.url("/settings")).await;
    let listed = eventually(20, "the users table", || async {
        let element = browser.find_all(".users td.user-name").await.into_iter().next()?;
        Some(browser.text(&element).await)
    })
    .await;
    assert_eq!(listed, ADMIN);
    let actions = eventually(20, "the audit log", || async {
        let mut actions = Vec::new();
        for element in browser.find_all(".audit-event .audit-action").await {
            actions.push(browser.text(&element).await);
        }
        (actions.len() >= 2).then_some(actions)
    })
    .await;
    assert!(actions.iter().filter(|action| *action == "login").count() >= 2, "{actions:?}");

    browser.click(&browser.wait_for(".sign-out").await).await;
    browser.wait_for(".login-form").await;
    assert!(browser.current_url().await.ends_with("/login"));
    // Signed out: pages send the browser back to the login page.
    browser.goto(&app.url("/logs")).await;
    browser.wait_for(".login-form").await;
    assert!(browser.current_url().await.contains("/login?next=/logs"));
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_explorer_draws_a_chart_from_prometheus() {
    let prometheus = crate::prometheus::TestPrometheus::start("").await;
    let url = prometheus.address.clone();
    let app =
        crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |config| config.metrics.prometheus_url = url).await;
    let now = (time::OffsetDateTime::now_utc().unix_timestamp() - 1) * 1000;
    let series: Vec<serde_json::Value> = ["web-1", "web-2"]
        .iter()
        .map(|host| {
            let samples: Vec<(i64, f64)> =
                (0..40).map(|index| (now - (39 - index) * 15_000, (index * 10) as f64)).collect();
            json!({"labels": {"__name__": "vigil_e2e_bytes_total", "instance": host}, "samples": samples})
        })
        .collect();
    let posted = app.post_metrics(&json!({"series": series})).await;
    assert_eq!(posted.status(), 200);

    let browser = Browser::start().await;
    let query = "rate(vigil_e2e_bytes_total[1m])";
    let page = format!("/explore?q={}&range=15m&unit=bytes", url_encode(query));
    browser.goto_signed_in(&app.url(&page), ADMIN, ADMIN_PASSWORD).await;
    browser.wait_for(".explore-bar[data-hydrated='true']").await;
    // uPlot draws on a canvas, with a legend row per series.
    browser.wait_for(".chart canvas").await;
    let chart = browser.wait_for(".chart").await;
    let points = browser.execute("return arguments[0].dataset.points;", vec![json!({ELEMENT: chart.id()})]).await;
    assert!(points.as_str().unwrap().parse::<u32>().unwrap() > 20, "{points}");
    let legend = eventually(20, "the legend", || async {
        let mut labels = Vec::new();
        for element in browser.find_all(".u-legend .u-series .u-label").await {
            labels.push(browser.text(&element).await);
        }
        (labels.len() >= 3).then_some(labels)
    })
    .await;
    assert!(legend.iter().any(|label| label.contains("instance=\"web-1\"")), "{legend:?}");
    // Completion while typing: metric names, then the values of a label of that metric.
    let offered = |expected: &'static str| {
        let browser = &browser;
        async move {
            eventually(20, &format!("the completion {expected}"), || async {
                let options = browser
                    .execute(
                        "return Array.from(document.querySelectorAll('#metric-suggestions option')).map(o => o.value);",
                        vec![],
                    )
                    .await;
                let options: Vec<String> = serde_json::from_value(options).ok()?;
                options.iter().any(|option| option == expected).then_some(options)
            })
            .await
        }
    };
    let input = browser.wait_for("input.promql").await;
    browser.execute("arguments[0].value = '';", vec![json!({ELEMENT: input.id()})]).await;
    browser.type_text(&input, "sum(vigil_e2e_by").await;
    offered("sum(vigil_e2e_bytes_total").await;
    browser.type_text(&input, "tes_total{instance=\"").await;
    let values = offered("sum(vigil_e2e_bytes_total{instance=\"web-2\"").await;
    assert!(values.contains(&"sum(vigil_e2e_bytes_total{instance=\"web-1\"".to_owned()), "{values:?}");
    browser.goto(&app.url(&page)).await;
    browser.wait_for(".explore-bar[data-hydrated='true']").await;
    browser.wait_for(".chart canvas").await;

    // Dragging across the chart zooms: the range lands in the URL.
    browser.drag_by(".chart .u-over", -150, 150).await;
    eventually(20, "the zoomed range in the URL", || async {
        let url = browser.current_url().await;
        (url.contains("start=") && url.contains("end=") && url.contains("unit=bytes")).then_some(())
    })
    .await;
    browser.wait_for(".chart canvas").await;
    browser.quit().await;
}

fn url_encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hosts_dashboard_draws_its_charts_with_data() {
    let prometheus = crate::prometheus::TestPrometheus::start("").await;
    let url = prometheus.address.clone();
    let app =
        crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |config| config.metrics.prometheus_url = url).await;
    let now = (time::OffsetDateTime::now_utc().unix_timestamp() - 1) * 1000;
    let mut series = Vec::new();
    for host in ["web-1", "web-2"] {
        let counter = |name: &str, extra: serde_json::Value, per_step: f64| {
            let mut labels = json!({"__name__": name, "instance": host});
            for (key, value) in extra.as_object().unwrap() {
                labels[key] = value.clone();
            }
            let samples: Vec<(i64, f64)> =
                (0..40).map(|index| (now - (39 - index) * 15_000, index as f64 * per_step)).collect();
            json!({"labels": labels, "samples": samples})
        };
        series.push(counter("node_uname_info", json!({}), 0.0));
        series.push(counter("node_cpu_seconds_total", json!({"cpu": "0", "mode": "idle"}), 12.0));
        series.push(counter("node_cpu_seconds_total", json!({"cpu": "0", "mode": "user"}), 3.0));
        series.push(counter("node_load1", json!({}), 0.01));
    }
    let posted = app.post_metrics(&json!({"series": series})).await;
    assert_eq!(posted.status(), 200, "{}", posted.text().await.unwrap_or_default());

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/dashboards"), ADMIN, ADMIN_PASSWORD).await;
    browser.click(&browser.wait_for(".dashboard-list a[href$='hosts']").await).await;
    browser.wait_for(".dashboard-head h1").await;
    assert_eq!(browser.text(&browser.wait_for(".dashboard-head h1").await).await, "Hosts");
    // The CPU chart is drawn, with points, one line per host; the $host variable offers both.
    let drawn = eventually(30, "a drawn chart with data", || async {
        for chart in browser.find_all(".dashboard-panel .chart").await {
            let points = browser
                .execute(
                    "return arguments[0].querySelector('canvas') ? arguments[0].dataset.points : '0';",
                    vec![json!({ELEMENT: chart.id()})],
                )
                .await;
            if points.as_str().and_then(|points| points.parse::<u32>().ok()).unwrap_or(0) > 10 {
                return Some(points);
            }
        }
        None
    })
    .await;
    assert!(drawn.as_str().is_some());
    let hosts = eventually(20, "the host variable's values", || async {
        let options = browser
            .execute(
                "return Array.from(document.querySelectorAll('select.variable-host option')).map(o => o.value);",
                vec![],
            )
            .await;
        let options: Vec<String> = serde_json::from_value(options).ok()?;
        (options.len() == 3).then_some(options)
    })
    .await;
    assert_eq!(hosts, ["", "web-1", "web-2"]);
    browser.quit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_each_service_and_opens_its_dashboard() {
    let prometheus = crate::prometheus::TestPrometheus::start("").await;
    let url = prometheus.address.clone();
    let app = crate::helpers::spawn_app_with(crate::helpers::Db::Sqlite, |config| {
        config.metrics.prometheus_url = url;
        config.services = ["shop", "search"].into_iter().map(vigil_backend::config::ServiceConfig::named).collect();
    })
    .await;
    // shop: 10 requests/s of which 1 fails, fast; search: no metrics at all.
    let now = (time::OffsetDateTime::now_utc().unix_timestamp() - 1) * 1000;
    let counter = |labels: serde_json::Value, per_second: f64| {
        let samples: Vec<(i64, f64)> =
            (0..21).map(|index| (now - (20 - index) * 15_000, index as f64 * 15.0 * per_second)).collect();
        json!({"labels": labels, "samples": samples})
    };
    let series = vec![
        counter(json!({"__name__": "http_requests_total", "service": "shop", "code": "200"}), 9.0),
        counter(json!({"__name__": "http_requests_total", "service": "shop", "code": "500"}), 1.0),
        counter(json!({"__name__": "http_request_duration_seconds_bucket", "service": "shop", "le": "0.1"}), 9.5),
        counter(json!({"__name__": "http_request_duration_seconds_bucket", "service": "shop", "le": "+Inf"}), 10.0),
    ];
    let posted = app.post_metrics(&json!({"series": series})).await;
    assert_eq!(posted.status(), 200);
    let stamp = vigil_proto::Timestamp::from_unix_nanos(now * 1_000_000).unwrap().to_rfc3339();
    assert_eq!(app.post_logs(&[crate::helpers::record(&stamp, "shop", "error", "payment failed")]).await.status(), 200);

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/"), ADMIN, ADMIN_PASSWORD).await;
    let shop = browser.wait_for("tr.service-row[data-service='shop']").await;
    let class = browser.execute("return arguments[0].className;", vec![json!({ELEMENT: shop.id()})]).await;
    assert!(class.as_str().unwrap().contains("state-critical"), "{class}");
    let cell = |selector: &'static str| {
        let browser = &browser;
        async move { browser.text(&browser.wait_for(&format!("tr[data-service='shop'] {selector}")).await).await }
    };
    assert_eq!(cell("td.errors").await, "10.0 %");
    assert_eq!(cell("td.rate").await, "10 /s");
    assert_eq!(cell("td.log-errors").await, "1");
    let search = browser.wait_for("tr.service-row[data-service='search']").await;
    let class = browser.execute("return arguments[0].className;", vec![json!({ELEMENT: search.id()})]).await;
    assert!(class.as_str().unwrap().contains("state-unknown"), "{class}");

    browser.click(&browser.wait_for("tr[data-service='shop'] a").await).await;
    let title = eventually(20, "the service dashboard", || async {
        let element = browser.find_all(".dashboard-head h1").await.into_iter().next()?;
        Some(browser.text(&element).await)
    })
    .await;
    assert_eq!(title, "Service: shop");
    browser.quit().await;
}

/// Dashboards made in the browser: a new one with panels added, one removed, saved; an edit
/// refused because someone saved in between; duplicated, deleted, and one imported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboards_are_created_edited_duplicated_deleted_and_imported_in_the_browser() {
    let app = spawn_app().await;
    let session = app.admin_session().await;
    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/dashboards"), ADMIN, ADMIN_PASSWORD).await;
    browser.wait_for(".dashboards-page[data-hydrated='true']").await;
    browser.click(&browser.wait_for("a.new-dashboard").await).await;
    browser.wait_for(".dashboard-editor[data-hydrated='true']").await;

    let title = browser.wait_for("input.dashboard-title").await;
    browser.execute("arguments[0].value = '';", vec![json!({ELEMENT: title.id()})]).await;
    browser.type_text(&title, "Checkout latency").await;
    for (panel, query) in [("Requests", "rate(http_requests_total[5m])"), ("Errors", "up")] {
        browser.type_text(&browser.wait_for("input.panel-title").await, panel).await;
        browser.type_text(&browser.wait_for("textarea.panel-query").await, query).await;
        browser.click(&browser.wait_for("button.add-panel-button").await).await;
        browser.wait_for(&format!(".panel-item[data-title='{panel}']")).await;
    }
    browser.click(&browser.wait_for(".panel-item[data-title='Errors'] .remove-panel").await).await;
    eventually(10, "the panel to go", || async { (browser.find_all(".panel-item").await.len() == 1).then_some(()) })
        .await;
    browser.click(&browser.wait_for("button.save-dashboard").await).await;

    eventually(20, "the saved dashboard's view", || async {
        browser.current_url().await.contains("/dashboard?uid=checkout-latency").then_some(())
    })
    .await;
    assert_eq!(browser.text(&browser.wait_for(".dashboard-head h1").await).await, "Checkout latency");
    assert_eq!(browser.text(&browser.wait_for(".dashboard-panel h3").await).await, "Requests");
    let stored: serde_json::Value = app.read("/api/v1/dashboards/checkout-latency", &[]).await.json().await.unwrap();
    assert_eq!(stored["version"], 1);
    assert_eq!(stored["rows"][0]["panels"].as_array().unwrap().len(), 1);
    assert_eq!(stored["rows"][0]["panels"][0]["queries"][0]["expr"], "rate(http_requests_total[5m])");

    // Someone saves while the editor is open: the editor's save is refused, nothing lost.
    browser.click(&browser.wait_for("a.edit-dashboard").await).await;
    browser.wait_for(".dashboard-editor[data-hydrated='true']").await;
    let mut meanwhile = stored.clone();
    meanwhile["title"] = json!("Renamed meanwhile");
    let response = app
        .with_session(reqwest::Method::PUT, "/api/v1/dashboards/checkout-latency", &session)
        .json(&meanwhile)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    browser.click(&browser.wait_for("button.save-dashboard").await).await;
    let refused = browser.text(&browser.wait_for(".save-error").await).await;
    assert!(refused.contains("changed since version 1"), "{refused}");

    // Duplicate, then delete the copy, from the list.
    browser.goto(&app.url("/dashboards")).await;
    browser.wait_for(".dashboards-page[data-hydrated='true']").await;
    browser.click(&browser.wait_for("li[data-uid='checkout-latency'] button.duplicate").await).await;
    let copy = browser.wait_for("li[data-uid='renamed-meanwhile-copy'] a.title").await;
    assert_eq!(browser.text(&copy).await, "Renamed meanwhile (copy)");
    browser.click(&browser.wait_for("li[data-uid='renamed-meanwhile-copy'] button.delete").await).await;
    eventually(10, "the copy to be deleted", || async {
        browser.find_all("li[data-uid='renamed-meanwhile-copy']").await.is_empty().then_some(())
    })
    .await;

    // Import what an export gives, under another uid.
    let mut export: serde_json::Value =
        app.read("/api/v1/dashboards/checkout-latency/export", &[]).await.json().await.unwrap();
    export["uid"] = json!("imported-one");
    export["dashboard"]["title"] = json!("Imported one");
    let document = browser.wait_for(".import-form textarea").await;
    browser.type_text(&document, &export.to_string()).await;
    browser.click(&browser.wait_for(".import-form button[type='submit']").await).await;
    browser.wait_for(".imported a").await;
    let imported = browser.wait_for("li[data-uid='imported-one'] a.title").await;
    assert_eq!(browser.text(&imported).await, "Imported one");
    browser.quit().await;
}
