//! The Alerts page as people meet it: firing alerts listed and counted in the navigation, a
//! deployer acknowledging one in Chromium, new alerts appearing without a reload, and viewers
//! who see everything but may not acknowledge, on the page or through the server function.

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::alerts::{Alert, AlertPage, AlertRule, AlertState};
use vigil_proto::auth::Role;
use vigil_proto::paths;

use crate::browser::Browser;
use crate::helpers::{Db, TestApp, TestSession, eventually, spawn_app_with};
use crate::pages::server_function;
use crate::prometheus::TestPrometheus;

const ACKNOWLEDGE_FUNCTION: &str = "/ui/fn/deploy/acknowledge_alert";

async fn start(prometheus: &TestPrometheus) -> TestApp {
    let url = prometheus.address.clone();
    spawn_app_with(Db::Sqlite, |config| {
        config.metrics.prometheus_url = url;
        config.alerts.tick_millis = 100;
    })
    .await
}

/// A PromQL rule evaluated every second that notifies nobody.
async fn create_rule(app: &TestApp, session: &TestSession, name: &str, expr: &str) -> AlertRule {
    let rule = json!({
        "name": name, "kind": "promql", "expr": expr, "interval_seconds": 1, "channels": [],
        "annotations": {"summary": format!("{name} says {{{{ $value }}}}")},
    });
    let response = app.with_session(Method::POST, paths::ALERT_RULES, session).json(&rule).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn alerts(app: &TestApp) -> Vec<Alert> {
    let response = app.read(paths::ALERTS, &[("limit", "1000")]).await;
    assert_eq!(response.status(), 200);
    let page: AlertPage = response.json().await.unwrap();
    assert_eq!(page.total as usize, page.alerts.len(), "every alert on one page");
    page.alerts
}

/// Waits until the API lists the rule's alert firing.
async fn firing(app: &TestApp, name: &str) -> Alert {
    eventually(30, &format!("{name} to fire"), || async {
        alerts(app)
            .await
            .into_iter()
            .find(|alert| alert.labels["alertname"] == name && alert.state == AlertState::Firing)
    })
    .await
}

fn row(name: &str) -> String {
    format!("tr.alert-row[data-alertname='{name}']")
}

/// The text of the first element matching `selector`, or None when there is none: read in one
/// script, so an element replaced meanwhile cannot go stale between finding and reading it.
async fn text_now(browser: &Browser, selector: &str) -> Option<String> {
    let text = browser
        .execute(
            "const found = document.querySelector(arguments[0]); return found ? found.innerText : null;",
            vec![json!(selector)],
        )
        .await;
    text.as_str().map(str::to_owned)
}

/// Waits for an element matching `selector` and reads its text.
async fn text_of(browser: &Browser, selector: &str) -> String {
    eventually(20, &format!("an element matching {selector}"), || text_now(browser, selector)).await
}

/// The navigation's count, or None while it is hidden.
async fn nav_count(browser: &Browser) -> Option<String> {
    text_now(browser, ".sidebar .nav-count").await
}

async fn nav_count_becomes(browser: &Browser, expected: Option<&str>) {
    eventually(30, &format!("the navigation's count to be {expected:?}"), || async {
        (nav_count(browser).await.as_deref() == expected).then_some(())
    })
    .await;
}

/// The value of the first input matching `selector`.
async fn value_of(browser: &Browser, selector: &str) -> Value {
    browser.wait_for(selector).await;
    browser.execute("return document.querySelector(arguments[0]).value;", vec![json!(selector)]).await
}

async fn page_html(app: &TestApp, session: &TestSession, path: &str) -> String {
    let page = app.with_session(Method::GET, path, session).header("accept", "text/html").send().await.unwrap();
    assert_eq!(page.status(), 200, "{path}");
    page.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_lists_firing_alerts_and_a_deployer_acknowledges_one_in_the_browser() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(&prometheus).await;
    let deployer = app.user_session("dora", Role::Deployer).await;
    create_rule(&app, &deployer, "DiskFull", "vector(1)").await;
    let disk_full = firing(&app, "DiskFull").await;

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/alerts"), "dora", "dora has a long password").await;
    browser.wait_for(".alerts-page[data-hydrated='true']").await;
    // Gone if the page reloads.
    browser.execute("window.vigilSamePage = true;", Vec::new()).await;
    let disk_full_row = format!("{}[data-state='firing']", row("DiskFull"));
    browser.wait_for(&disk_full_row).await;
    let summary = text_of(&browser, &format!("{disk_full_row} .summary-annotation")).await;
    assert_eq!(summary, "DiskFull says 1");
    assert_eq!(text_of(&browser, &format!("{disk_full_row} .value")).await, "1");
    let since = text_of(&browser, &format!("{disk_full_row} .since")).await;
    assert!(since.ends_with(" ago"), "{since}");
    let chips = text_of(&browser, &format!("{disk_full_row} .labels")).await;
    assert!(chips.contains("severity=warning") && !chips.contains("alertname"), "{chips}");
    nav_count_becomes(&browser, Some("1")).await;

    // Acknowledged with a note: the row says by whom, and the count of unacknowledged firing
    // alerts drops to nothing.
    let note = browser.wait_for(&format!("{disk_full_row} .acknowledge-note")).await;
    browser.type_text(&note, "freeing space").await;
    browser.click(&browser.wait_for(&format!("{disk_full_row} button.acknowledge")).await).await;
    let acknowledged_cell = format!("{} .acknowledged", row("DiskFull"));
    let acknowledged =
        eventually(30, "the row to show the acknowledgement", || text_now(&browser, &acknowledged_cell)).await;
    assert!(acknowledged.starts_with("acknowledged by dora"), "{acknowledged}");
    assert_eq!(text_of(&browser, &format!("{} .note", row("DiskFull"))).await, "freeing space");
    assert!(browser.find_all(&format!("{} button.acknowledge", row("DiskFull"))).await.is_empty());
    let stored = alerts(&app).await.into_iter().find(|alert| alert.fingerprint == disk_full.fingerprint).unwrap();
    let acknowledgement = stored.acknowledged.expect("acknowledged through the API's eyes");
    assert_eq!((acknowledgement.by.as_str(), acknowledgement.note.as_str()), ("dora", "freeing space"));
    assert_eq!(stored.state, AlertState::Firing, "an acknowledged alert still fires");
    nav_count_becomes(&browser, None).await;

    // A second rule fires: the page and the count follow without a reload.
    create_rule(&app, &deployer, "QueueStuck", "vector(2)").await;
    browser.wait_for(&format!("{}[data-state='firing']", row("QueueStuck"))).await;
    nav_count_becomes(&browser, Some("1")).await;

    // A note being typed survives a refresh that puts a new alert above it.
    let note = browser.wait_for(&format!("{} .acknowledge-note", row("QueueStuck"))).await;
    browser.type_text(&note, "draining").await;
    create_rule(&app, &deployer, "CacheCold", "vector(3)").await;
    browser.wait_for(&format!("{}[data-state='firing']", row("CacheCold"))).await;
    nav_count_becomes(&browser, Some("2")).await;
    assert_eq!(value_of(&browser, &format!("{} .acknowledge-note", row("QueueStuck"))).await, "draining");
    let order = browser
        .execute("return [...document.querySelectorAll('tr.alert-row')].map(row => row.dataset.alertname);", Vec::new())
        .await;
    assert_eq!(order, json!(["CacheCold", "QueueStuck", "DiskFull"]), "firing, newest first");
    assert_eq!(browser.execute("return window.vigilSamePage === true;", Vec::new()).await, json!(true), "no reload");

    // The alert's detail: its timeline with the acknowledgement; the rules below.
    browser.click(&browser.wait_for(&format!("{} a.alert-link", row("DiskFull"))).await).await;
    let detail = format!(".alert-detail[data-fingerprint='{}']", disk_full.fingerprint);
    let event = text_of(&browser, &format!("{detail} .alert-timeline .event-acknowledged")).await;
    assert!(event.contains("acknowledged by dora: freeing space"), "{event}");
    browser.wait_for(&format!("{detail} .alert-timeline .event-firing")).await;
    assert_eq!(browser.find_all(".alert-rules-table tr.rule-row").await.len(), 3);
    browser.quit().await;
}

#[tokio::test]
async fn a_viewer_sees_alerts_but_no_acknowledge_button_and_the_server_function_refuses_them() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(&prometheus).await;
    let deployer = app.user_session("dora", Role::Deployer).await;
    let viewer = app.user_session("vic", Role::Viewer).await;
    create_rule(&app, &deployer, "DiskFull", "vector(1)").await;
    let broken = create_rule(&app, &deployer, "Broken", "rate(up[5m]").await;
    let disk_full = firing(&app, "DiskFull").await;
    let rule_path = paths::ALERT_RULE.replace("{id}", &broken.id.to_string());
    let error = eventually(30, "the broken rule's evaluation error", || async {
        app.read(&rule_path, &[]).await.json::<AlertRule>().await.ok().and_then(|rule| rule.last_error)
    })
    .await;

    let html = page_html(&app, &viewer, "/alerts").await;
    assert!(html.contains("data-alertname=\"DiskFull\""), "{html}");
    assert!(html.contains("DiskFull says 1"), "{html}");
    assert!(!html.contains("class=\"acknowledge\""), "a viewer is offered no acknowledgement: {html}");
    assert!(html.contains("class=\"nav-count\""), "viewers see the count too: {html}");
    // The rules, with the broken one's error.
    assert!(html.contains("class=\"rule-error\""), "{html}");
    let unescaped = html
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&");
    assert!(unescaped.contains(&error), "{error:?} is on the page");
    // The same page for a deployer offers it.
    assert!(page_html(&app, &deployer, "/alerts").await.contains("class=\"acknowledge\""));
    // An alert's page, as a notification links it.
    let linked = page_html(&app, &viewer, &format!("/alerts/{}", disk_full.fingerprint)).await;
    assert!(linked.contains("class=\"panel alert-detail\""), "{linked}");
    assert!(
        linked.contains(&format!("<dt>Fingerprint</dt><dd><code>{}</code></dd>", disk_full.fingerprint)),
        "{linked}"
    );

    let form = [("fingerprint", disk_full.fingerprint.as_str()), ("note", "mine")];
    let refused = server_function(&app, &viewer, ACKNOWLEDGE_FUNCTION, &form).await;
    assert_eq!(refused.status(), 403);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["code"], "forbidden", "{body}");
    let still = alerts(&app).await.into_iter().find(|alert| alert.fingerprint == disk_full.fingerprint).unwrap();
    assert!(still.acknowledged.is_none(), "{still:?}");

    let accepted = server_function(&app, &deployer, ACKNOWLEDGE_FUNCTION, &form).await;
    assert_eq!(accepted.status(), 200);
    let acknowledged: Alert = accepted.json().await.unwrap();
    assert_eq!(acknowledged.acknowledged.map(|acknowledgement| acknowledgement.by).as_deref(), Some("dora"));
    let again = server_function(&app, &deployer, ACKNOWLEDGE_FUNCTION, &form).await;
    crate::helpers::assert_error(again, 409, "conflict", "acknowledged by dora").await;
}
