//! The alerting pages as people meet them, in Chromium: firing alerts listed, grouped, paged
//! and counted in the navigation, a deployer acknowledging one, new alerts appearing without a
//! reload; a silence made from an alert's row with the form's preview of what it silences,
//! its expiry announced, expired into the history; a rule written, previewed (its chart with
//! the threshold and the spans it would have fired in), tested through its channel, saved and
//! deleted in the editor; alerts drawn as bands on the explorer's and a dashboard's charts; and
//! viewers, who see everything but are offered no change, on the pages or through the server
//! functions.

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::alerts::{Alert, AlertPage, AlertRule, AlertState, Comparator, Silence, SilenceState};
use vigil_proto::auth::Role;
use vigil_proto::paths;

use crate::alerts::{Receiver, webhook_channel};
use crate::browser::Browser;
use crate::helpers::{ADMIN, ADMIN_PASSWORD, Db, TestApp, TestSession, eventually, spawn_app_with};
use crate::pages::server_function;
use crate::prometheus::TestPrometheus;

const ACKNOWLEDGE_FUNCTION: &str = "/ui/fn/deploy/acknowledge_alert";
/// What writes, and must refuse viewers.
const DEPLOY_FUNCTIONS: [&str; 5] = [
    "/ui/fn/deploy/create_silence",
    "/ui/fn/deploy/expire_silence",
    "/ui/fn/deploy/save_alert_rule",
    "/ui/fn/deploy/delete_alert_rule",
    "/ui/fn/deploy/send_test_notification",
];

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
    create_rule_labelled(app, session, name, expr, json!({})).await
}

async fn create_rule_labelled(
    app: &TestApp,
    session: &TestSession,
    name: &str,
    expr: &str,
    labels: Value,
) -> AlertRule {
    let rule = json!({
        "name": name, "kind": "promql", "expr": expr, "interval_seconds": 1, "channels": [], "labels": labels,
        "annotations": {"summary": format!("{name} says {{{{ $value }}}}")},
    });
    crate::alerts::create_rule(app, session, &rule).await
}

/// Every alert, on one page. The page and its total are read apart, so an alert that the
/// evaluator writes in between makes them differ for a moment: read again until they agree.
async fn alerts(app: &TestApp) -> Vec<Alert> {
    eventually(10, "a page holding every alert", || async {
        let response = app.read(paths::ALERTS, &[("limit", "1000")]).await;
        assert_eq!(response.status(), 200);
        let page: AlertPage = response.json().await.unwrap();
        (page.total as usize == page.alerts.len()).then_some(page.alerts)
    })
    .await
}

/// Waits until the API lists the rule's alert firing.
async fn firing(app: &TestApp, name: &str) -> Alert {
    in_state(app, name, AlertState::Firing).await
}

async fn in_state(app: &TestApp, name: &str, state: AlertState) -> Alert {
    eventually(30, &format!("{name} to be {}", state.as_str()), || async {
        alerts(app).await.into_iter().find(|alert| alert.labels["alertname"] == name && alert.state == state)
    })
    .await
}

async fn silences(app: &TestApp) -> Vec<Silence> {
    let response = app.read(paths::SILENCES, &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Sets a field's value as typing does (an `input` event), replacing what it held.
pub(crate) async fn fill(browser: &Browser, selector: &str, value: &str) {
    browser.wait_for(selector).await;
    let script = "const field = document.querySelector(arguments[0]); field.value = arguments[1]; \
        field.dispatchEvent(new Event('input', {bubbles: true}));";
    browser.execute(script, vec![json!(selector), json!(value)]).await;
}

/// Chooses an option of a `select` (a `change` event).
pub(crate) async fn choose(browser: &Browser, selector: &str, value: &str) {
    browser.wait_for(selector).await;
    let script = "const field = document.querySelector(arguments[0]); field.value = arguments[1]; \
        field.dispatchEvent(new Event('change', {bubbles: true}));";
    browser.execute(script, vec![json!(selector), json!(value)]).await;
}

/// The texts of every element matching `selector`, read in one script.
pub(crate) async fn texts(browser: &Browser, selector: &str) -> Vec<String> {
    let found = browser
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(found => found.innerText);",
            vec![json!(selector)],
        )
        .await;
    serde_json::from_value(found).unwrap()
}

/// The `data-<name>` of every element matching `selector`.
pub(crate) async fn data_of(browser: &Browser, selector: &str, name: &str) -> Vec<String> {
    let found = browser
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(found => found.dataset[arguments[1]] ?? '');",
            vec![json!(selector), json!(name)],
        )
        .await;
    serde_json::from_value(found).unwrap()
}

/// Waits until the texts of the elements matching `selector` are `expected`.
async fn texts_become(browser: &Browser, selector: &str, expected: &[&str]) {
    eventually(30, &format!("{selector} to read {expected:?}"), || async {
        (texts(browser, selector).await == expected).then_some(())
    })
    .await;
}

fn row(name: &str) -> String {
    format!("tr.alert-row[data-alertname='{name}']")
}

/// The text of the first element matching `selector`, or None when there is none: read in one
/// script, so an element replaced meanwhile cannot go stale between finding and reading it.
pub(crate) async fn text_now(browser: &Browser, selector: &str) -> Option<String> {
    let text = browser
        .execute(
            "const found = document.querySelector(arguments[0]); return found ? found.innerText : null;",
            vec![json!(selector)],
        )
        .await;
    text.as_str().map(str::to_owned)
}

/// Waits for an element matching `selector` and reads its text.
pub(crate) async fn text_of(browser: &Browser, selector: &str) -> String {
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

pub(crate) async fn page_html(app: &TestApp, session: &TestSession, path: &str) -> String {
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

/// A deployer silences an alert from its row: the form holds the alert's labels, its preview
/// follows the matchers as they change, a silence without a reason is refused; saved, it is
/// listed with its expiry announced (it ends within 15 minutes), and expired, it moves to the
/// history.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_silences_an_alert_from_its_row_seeing_first_what_it_silences_and_expires_it() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(&prometheus).await;
    let deployer = app.user_session("dora", Role::Deployer).await;
    create_rule(&app, &deployer, "DiskFull", "vector(1)").await;
    create_rule(&app, &deployer, "QueueStuck", "vector(2)").await;
    let disk_full = firing(&app, "DiskFull").await;
    firing(&app, "QueueStuck").await;

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/alerts"), "dora", "dora has a long password").await;
    browser.wait_for(".alerts-page[data-hydrated='true']").await;
    browser.click(&browser.wait_for(&format!("{} a.silence-alert", row("DiskFull"))).await).await;
    browser.wait_for(".silences-page[data-hydrated='true']").await;
    // The alert's labels, as equality matchers.
    let rows = browser
        .execute(
            "return [...document.querySelectorAll('.matcher-row')].map(row => [row.querySelector('.matcher-name').value, \
             row.querySelector('.matcher-operator').value, row.querySelector('.matcher-value').value]);",
            Vec::new(),
        )
        .await;
    let expected: Vec<[&str; 3]> =
        disk_full.labels.iter().map(|(name, value)| [name.as_str(), "=", value.as_str()]).collect();
    assert_eq!(rows, json!(expected));
    assert!(disk_full.labels.contains_key("severity"), "{:?}", disk_full.labels);

    // Before saving, the preview lists what the matchers silence, and follows them.
    let previewed = |names: &'static [&'static str]| {
        let browser = &browser;
        async move {
            eventually(20, &format!("the preview to list {names:?}"), || async {
                let mut listed = data_of(browser, ".silence-preview .preview-alert", "alertname").await;
                listed.sort();
                (listed == names).then_some(())
            })
            .await
        }
    };
    previewed(&["DiskFull"]).await;
    let first = ".matcher-row:first-of-type";
    choose(&browser, &format!("{first} .matcher-operator"), "=~").await;
    fill(&browser, &format!("{first} .matcher-value"), "DiskFull|QueueStuck").await;
    browser.click(&browser.wait_for(".matcher-row:last-of-type .remove-matcher").await).await;
    previewed(&["DiskFull", "QueueStuck"]).await;
    assert_eq!(texts(&browser, ".silence-preview .preview-count").await, ["2 current alerts"]);
    choose(&browser, &format!("{first} .matcher-operator"), "=").await;
    fill(&browser, &format!("{first} .matcher-value"), "DiskFull").await;
    previewed(&["DiskFull"]).await;
    browser.click(&browser.wait_for(".add-matcher").await).await;
    fill(&browser, ".matcher-row:last-of-type .matcher-name", "severity").await;
    fill(&browser, ".matcher-row:last-of-type .matcher-value", "critical").await;
    eventually(20, "the preview to find nothing", || async {
        (!texts(&browser, ".silence-preview .preview-none").await.is_empty()).then_some(())
    })
    .await;
    choose(&browser, ".matcher-row:last-of-type .matcher-operator", "!=").await;
    previewed(&["DiskFull"]).await;

    // Why is required.
    browser.click(&browser.wait_for(".save-silence").await).await;
    let refused = text_of(&browser, ".silence-form .save-error").await;
    assert!(refused.contains("comment"), "{refused}");
    assert!(silences(&app).await.is_empty());

    choose(&browser, ".silence-duration", "15m").await;
    fill(&browser, ".silence-comment", "swapping the disk").await;
    browser.click(&browser.wait_for(".save-silence").await).await;
    browser.wait_for(".silence-saved").await;
    let stored = silences(&app).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let silence = &stored[0];
    assert_eq!((silence.created_by.as_str(), silence.comment.as_str()), ("dora", "swapping the disk"));
    assert_eq!(silence.state, SilenceState::Active);
    let matchers: Vec<String> =
        silence.matchers.iter().map(|m| format!("{}{}{}", m.name, m.operator(), m.value)).collect();
    assert_eq!(matchers, ["alertname=DiskFull", "severity!=critical"]);
    assert_eq!(silence.silenced_alerts, std::slice::from_ref(&disk_full.fingerprint));
    // 15 minutes from when the server took it (the start is a moment later: now, as saved).
    let seconds = (silence.ends_at.as_unix_nanos() - silence.starts_at.as_unix_nanos()) / 1_000_000_000;
    assert!((15 * 60 - 10..=15 * 60).contains(&seconds), "{seconds} s");

    // Listed with its expiry announced, and highlighted: it ends within 15 minutes.
    let listed = format!(".current-silences tr.silence-row[data-silence='{}']", silence.id);
    assert_eq!(text_of(&browser, &format!("{listed} .created-by")).await, "dora");
    assert_eq!(text_of(&browser, &format!("{listed} .comment")).await, "swapping the disk");
    assert_eq!(text_of(&browser, &format!("{listed} .silenced-count")).await, "1 alert");
    let expiry = text_of(&browser, &format!("{listed} .expiry")).await;
    assert!(expiry == "expires in 15 min" || expiry == "expires in 14 min", "{expiry}");
    browser.wait_for(&format!("{listed}.expiring-soon")).await;
    // One that ends in hours is not announced.
    let later = (time::OffsetDateTime::now_utc() + time::Duration::hours(3))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let body =
        json!({"matchers": [{"name": "alertname", "value": "QueueStuck"}], "ends_at": later, "comment": "known"});
    let created = app.with_session(Method::POST, paths::SILENCES, &deployer).json(&body).send().await.unwrap();
    assert_eq!(created.status(), 201);
    let queue_silence: Silence = created.json().await.unwrap();
    let queue_row = format!(".current-silences tr.silence-row[data-silence='{}']", queue_silence.id);
    let expiry = text_of(&browser, &format!("{queue_row} .expiry")).await;
    assert!(expiry == "expires in 2 h" || expiry == "expires in 3 h", "{expiry}");
    assert!(browser.find_all(&format!("{queue_row}.expiring-soon")).await.is_empty());
    // The soonest to end first.
    let order = data_of(&browser, ".current-silences tr.silence-row", "silence").await;
    assert_eq!(order, [silence.id.clone(), queue_silence.id.clone()]);

    // Expired: into the history, out of the current ones.
    browser.click(&browser.wait_for(&format!("{listed} button.expire-silence")).await).await;
    let ended = format!(".silence-history tr.silence-row.state-expired[data-silence='{}']", silence.id);
    browser.wait_for(&ended).await;
    assert!(text_of(&browser, &format!("{ended} .ends")).await.starts_with("ended "));
    assert!(browser.find_all(&format!("{ended} button.expire-silence")).await.is_empty());
    assert!(browser.find_all(&listed).await.is_empty());
    let stored = silences(&app).await;
    let expired = stored.iter().find(|stored| stored.id == silence.id).unwrap();
    assert_eq!(expired.state, SilenceState::Expired);
    browser.quit().await;
}

/// A deployer writes a rule in the editor: the preview shows its value now and a chart of the
/// last hours with the threshold and the spans it would have fired in; the backend's refusal
/// of an unknown channel shows by the form; a test notification reaches the rule's channel;
/// saved, changed and deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_writes_previews_tests_saves_and_deletes_a_rule_in_the_editor() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(&prometheus).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    app.user_session("dora", Role::Deployer).await;

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/alerts/rules/new"), "dora", "dora has a long password").await;
    browser.wait_for(".rule-editor[data-hydrated='true']").await;
    fill(&browser, ".rule-name", "SawTooth").await;
    // Above 300 for the second half of every 10 minutes: about 18 spans in 3 hours.
    fill(&browser, ".rule-expr", "vector(time() % 600)").await;
    choose(&browser, ".rule-comparator", ">").await;
    fill(&browser, ".rule-threshold", "300").await;
    fill(&browser, ".rule-annotations", "summary=at {{ $value }}").await;
    browser.click(&browser.wait_for(".preview-rule").await).await;

    let spans = eventually(30, "the preview's spans", || async {
        data_of(&browser, ".preview-spans", "spans").await.first().and_then(|spans| spans.parse::<usize>().ok())
    })
    .await;
    assert!((16..=19).contains(&spans), "{spans} spans in 3 h");
    assert_eq!(
        texts(&browser, ".preview-spans").await,
        [format!("It would have fired {spans} times in the last 3 h.")]
    );
    assert_eq!(browser.find_all(".preview-now tr.preview-sample").await.len(), 1);
    // The chart: the series, the threshold in its legend, a band per span, in time order.
    let chart = ".rule-preview .chart[data-threshold='300']";
    browser.wait_for(&format!("{chart} .u-over")).await;
    let legend = text_of(&browser, ".rule-preview .u-legend").await;
    assert!(legend.contains("threshold > 300"), "{legend}");
    let bands = eventually(20, "a band per span", || async {
        let lefts = browser
            .execute(
                "return [...document.querySelectorAll(arguments[0])].map(band => [band.offsetLeft, band.offsetWidth, \
                 band.parentElement.clientWidth]);",
                vec![json!(format!("{chart} .chart-band.firing-span"))],
            )
            .await;
        let lefts: Vec<(f64, f64, f64)> = serde_json::from_value(lefts).unwrap();
        (lefts.len() == spans).then_some(lefts)
    })
    .await;
    for pair in bands.windows(2) {
        assert!(pair[0].0 + pair[0].1 <= pair[1].0 + 1.0, "bands in order, apart: {bands:?}");
    }
    assert!(bands.iter().all(|(left, width, plot)| *width > 0.0 && left + width <= plot + 1.0), "{bands:?}");

    // The backend's refusal, next to the form; the test button says the same.
    fill(&browser, ".rule-channels", "nowhere").await;
    browser.click(&browser.wait_for(".save-rule").await).await;
    let refused = text_of(&browser, ".rule-editor .save-error").await;
    assert!(refused.contains("no notification channel is named \"nowhere\""), "{refused}");
    browser.click(&browser.wait_for(".channel-test[data-channel='nowhere'] button.test-channel").await).await;
    let failed = text_of(&browser, ".channel-test[data-channel='nowhere'] .test-result.error").await;
    assert!(failed.contains("no notification channel is named"), "{failed}");
    // Through a real channel: delivered.
    fill(&browser, ".rule-channels", "on-call").await;
    browser.click(&browser.wait_for(".channel-test[data-channel='on-call'] button.test-channel").await).await;
    let delivered = text_of(&browser, ".channel-test[data-channel='on-call'] .test-result.delivered").await;
    assert_eq!(delivered, "delivered to on-call");
    assert_eq!(receiver.received().len(), 1, "one test notification");

    browser.click(&browser.wait_for(".save-rule").await).await;
    let id = eventually(30, "the saved rule's page", || async {
        let url = browser.current_url().await;
        url.rsplit_once("/alerts/rules/").and_then(|(_, id)| id.parse::<i64>().ok())
    })
    .await;
    let rule_path = paths::ALERT_RULE.replace("{id}", &id.to_string());
    let saved: AlertRule = app.read(&rule_path, &[]).await.json().await.unwrap();
    assert_eq!((saved.spec.name.as_str(), saved.spec.expr.as_str()), ("SawTooth", "vector(time() % 600)"));
    assert_eq!((saved.spec.comparator, saved.spec.threshold), (Some(Comparator::Above), Some(300.0)));
    assert_eq!(saved.spec.channels, ["on-call"]);
    assert_eq!(saved.spec.annotations["summary"], "at {{ $value }}");
    assert_eq!(saved.updated_by, "dora");

    // Its page edits it.
    browser.wait_for(&format!(".rule-editor[data-rule='{id}'][data-hydrated='true']")).await;
    assert_eq!(value_of(&browser, ".rule-threshold").await, "300");
    fill(&browser, ".rule-threshold", "450").await;
    browser.click(&browser.wait_for(".save-rule").await).await;
    browser.wait_for(".rule-saved").await;
    let changed: AlertRule = app.read(&rule_path, &[]).await.json().await.unwrap();
    assert_eq!(changed.spec.threshold, Some(450.0));

    // Deleted, after a second thought.
    browser.click(&browser.wait_for(".delete-rule").await).await;
    browser.click(&browser.wait_for(".delete-rule-confirmed").await).await;
    browser.wait_for(".alerts-page").await;
    assert_eq!(app.read(&rule_path, &[]).await.status(), 404);
    browser.quit().await;
}

/// 150 firing alerts: pages of 100 saying where they are, the counts in the tabs and the
/// navigation, grouped by alertname, the next page without a reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alerts_page_pages_through_many_alerts_grouped_by_name_with_the_counts_in_its_tabs() {
    let app = spawn_app_with(Db::Sqlite, |config| config.alerts.tick_millis = 100).await;
    let now = time::OffsetDateTime::now_utc();
    let posted: Vec<Value> = (0..150)
        .map(|index| {
            // Newest first: the first 100 are Flood, the next 50 Flood and Trickle.
            let name = if index < 120 { "Flood" } else { "Trickle" };
            let starts = (now - time::Duration::seconds(index)).format(&time::format_description::well_known::Rfc3339);
            json!({"labels": {"alertname": name, "instance": format!("host-{index}")}, "startsAt": starts.unwrap()})
        })
        .collect();
    let response =
        app.client.post(app.url(paths::AM_ALERTS)).bearer_auth(&app.ingest_token).json(&posted).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    eventually(30, "150 firing alerts", || async {
        let page: AlertPage =
            app.read(paths::ALERTS, &[("state", "firing"), ("limit", "1")]).await.json().await.ok()?;
        (page.total == 150).then_some(())
    })
    .await;

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/alerts?state=firing"), ADMIN, ADMIN_PASSWORD).await;
    browser.wait_for(".alerts-page[data-hydrated='true']").await;
    browser.execute("window.vigilSamePage = true;", Vec::new()).await;
    texts_become(&browser, ".alert-pager .page-range", &["1–100 of 150", "1–100 of 150"]).await;
    assert_eq!(text_of(&browser, ".alert-filter a[data-state='firing'] .tab-count").await, "(150)");
    assert_eq!(text_of(&browser, ".alert-filter a[data-state='pending'] .tab-count").await, "(0)");
    nav_count_becomes(&browser, Some("150")).await;
    assert_eq!(browser.find_all("tr.alert-row").await.len(), 100);
    assert!(browser.find_all(".alert-pager a.previous-page").await.is_empty());
    // Grouped: the group's count is its rows'.
    let counted = browser
        .execute(
            "return [...document.querySelectorAll('tbody.alert-group')].map(group => [group.dataset.alertname, \
             group.querySelector('.group-count').innerText, group.querySelectorAll('tr.alert-row').length]);",
            Vec::new(),
        )
        .await;
    assert_eq!(counted, json!([["Flood", "100", 100]]));

    browser.click(&browser.wait_for(".alert-pager a.next-page").await).await;
    texts_become(&browser, ".alert-pager .page-range", &["101–150 of 150", "101–150 of 150"]).await;
    let counted = browser
        .execute(
            "return [...document.querySelectorAll('tbody.alert-group')].map(group => [group.dataset.alertname, \
             group.querySelector('.group-count').innerText, group.querySelectorAll('tr.alert-row').length]);",
            Vec::new(),
        )
        .await;
    assert_eq!(counted, json!([["Flood", "20", 20], ["Trickle", "30", 30]]));
    assert!(browser.current_url().await.contains("offset=100"));
    assert!(browser.find_all(".alert-pager a.next-page").await.is_empty());
    browser.wait_for(".alert-pager a.previous-page").await;
    assert_eq!(browser.execute("return window.vigilSamePage === true;", Vec::new()).await, json!(true), "no reload");

    // The server renders the page it is asked for.
    let admin = app.admin_session().await;
    let html = page_html(&app, &admin, "/alerts?state=firing&offset=100").await;
    assert!(html.contains("101–150 of 150"), "{html}");
    assert_eq!(html.matches("class=\"alert-row state-firing\"").count(), 50);
    browser.quit().await;
}

/// Viewers read the silences and the rules but are offered neither silencing, expiring nor
/// saving, and the server functions that write refuse them (deployers get them all).
#[tokio::test]
async fn a_viewer_is_offered_no_silence_expire_or_save_and_the_deploy_server_functions_refuse_them() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(&prometheus).await;
    let deployer = app.user_session("dora", Role::Deployer).await;
    let viewer = app.user_session("vic", Role::Viewer).await;
    let rule = create_rule(&app, &deployer, "DiskFull", "vector(1)").await;
    let disk_full = firing(&app, "DiskFull").await;
    let matchers = json!([{"name": "alertname", "value": "DiskFull"}]).to_string();
    let silence_form = [
        ("matchers", matchers.as_str()),
        ("starts_at", ""),
        ("ends_at", ""),
        ("duration", "1h"),
        ("comment", "planned work"),
    ];
    let created = server_function(&app, &deployer, "/ui/fn/deploy/create_silence", &silence_form).await;
    assert_eq!(created.status(), 200);
    let silence: Silence = created.json().await.unwrap();
    assert_eq!((silence.created_by.as_str(), silence.silenced_alerts.len()), ("dora", 1));

    let alerts_page = page_html(&app, &viewer, "/alerts").await;
    assert!(alerts_page.contains("data-alertname=\"DiskFull\""), "{alerts_page}");
    assert!(alerts_page.contains(&format!("href=\"/alerts/rules/{}\"", rule.id)), "{alerts_page}");
    assert!(alerts_page.contains("class=\"button silences-link\""), "{alerts_page}");
    for offered in ["silence-alert", "new-rule", "test-channel-form"] {
        assert!(!alerts_page.contains(offered), "{offered}: {alerts_page}");
    }
    let for_deployer = page_html(&app, &deployer, "/alerts").await;
    assert!(for_deployer.contains("class=\"button silence-alert\"") && for_deployer.contains("new-rule"));
    assert!(for_deployer.contains("test-channel-form"), "{for_deployer}");

    let silences_page = page_html(&app, &viewer, "/alerts/silences").await;
    assert!(silences_page.contains(&format!("data-silence=\"{}\"", silence.id)), "{silences_page}");
    assert!(silences_page.contains("planned work"), "{silences_page}");
    assert!(!silences_page.contains("expire-silence") && !silences_page.contains("silence-form"), "{silences_page}");
    let for_deployer = page_html(&app, &deployer, "/alerts/silences").await;
    assert!(for_deployer.contains("class=\"expire-silence\"") && for_deployer.contains("silence-form"));

    let rule_page = page_html(&app, &viewer, &format!("/alerts/rules/{}", rule.id)).await;
    assert!(rule_page.contains("<input disabled value=\"DiskFull\" class=\"rule-name\">"), "{rule_page}");
    assert!(rule_page.contains("Read only"), "{rule_page}");
    assert!(!rule_page.contains("save-rule") && !rule_page.contains("delete-rule"), "{rule_page}");
    assert!(rule_page.contains("class=\"preview-rule\""), "everyone may preview: {rule_page}");
    let for_deployer = page_html(&app, &deployer, &format!("/alerts/rules/{}", rule.id)).await;
    assert!(for_deployer.contains("class=\"save-rule\"") && !for_deployer.contains("Read only"));

    let spec = serde_json::to_string(&rule.spec).unwrap();
    let id = rule.id.to_string();
    let forms: [Vec<(&str, &str)>; 5] = [
        silence_form.to_vec(),
        vec![("id", silence.id.as_str())],
        vec![("id", id.as_str()), ("spec", spec.as_str())],
        vec![("id", id.as_str())],
        vec![("channel", "on-call")],
    ];
    for (function, form) in DEPLOY_FUNCTIONS.iter().zip(&forms) {
        let refused = server_function(&app, &viewer, function, form).await;
        assert_eq!(refused.status(), 403, "{function}");
        let body: Value = refused.json().await.unwrap();
        assert_eq!(body["code"], "forbidden", "{function}: {body}");
    }
    // Nothing changed; reading is theirs.
    let still = silences(&app).await;
    assert_eq!((still.len(), still[0].state), (1, SilenceState::Active));
    assert_eq!(app.read(&paths::ALERT_RULE.replace("{id}", &id), &[]).await.status(), 200);
    let previewed = server_function(&app, &viewer, "/ui/fn/read/preview_silence", &[("matchers", &matchers)]).await;
    assert_eq!(previewed.status(), 200);
    let previewed: Vec<Alert> = previewed.json().await.unwrap();
    assert_eq!(previewed.iter().map(|alert| alert.fingerprint.as_str()).collect::<Vec<_>>(), [disk_full.fingerprint]);
    // The deployer may expire it.
    let expired = server_function(&app, &deployer, "/ui/fn/deploy/expire_silence", &[("id", &silence.id)]).await;
    assert_eq!(expired.status(), 200);
    assert_eq!(silences(&app).await[0].state, SilenceState::Expired);
}

/// What a chart band says about itself: its label, whether it is open, and where it is in its
/// plot (left, width, the plot's width).
async fn bands(browser: &Browser, selector: &str) -> Vec<(String, String, f64, f64, f64)> {
    let found = browser
        .execute(
            "return [...document.querySelectorAll(arguments[0])].map(band => [band.dataset.label, band.dataset.open, \
             band.offsetLeft, band.offsetWidth, band.parentElement.clientWidth]);",
            vec![json!(selector)],
        )
        .await;
    serde_json::from_value(found).unwrap()
}

/// Alerts as bands on the charts: one still firing reaches the right edge, a resolved one
/// ends before it; a dashboard with a `service` variable shows only the chosen service's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_draw_bands_where_alerts_fired_on_the_explorer_and_on_a_dashboard_of_their_service() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(&prometheus).await;
    let deployer = app.user_session("dora", Role::Deployer).await;
    let blip = create_rule_labelled(&app, &deployer, "Blip", "vector(1)", json!({"service": "search"})).await;
    firing(&app, "Blip").await;
    // The expression stops returning anything: Blip resolves.
    let mut quiet = blip.spec.clone();
    quiet.expr = "vector(1) < 0".to_owned();
    let path = paths::ALERT_RULE.replace("{id}", &blip.id.to_string());
    let updated = app.with_session(Method::PUT, &path, &deployer).json(&quiet).send().await.unwrap();
    assert_eq!(updated.status(), 200, "{}", updated.text().await.unwrap());
    in_state(&app, "Blip", AlertState::Resolved).await;
    create_rule_labelled(&app, &deployer, "PaymentsSlow", "vector(1)", json!({"service": "payments"})).await;
    firing(&app, "PaymentsSlow").await;
    // On a chart of 15 minutes a second is about a pixel: Blip's end must be a few seconds
    // old to stop visibly short of the right edge.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;

    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/explore?q=vector(1)&range=15m"), "dora", "dora has a long password").await;
    let open = ".chart .chart-band.alert-band[data-label='PaymentsSlow']";
    let closed = ".chart .chart-band.alert-band[data-label='Blip']";
    browser.wait_for(open).await;
    browser.wait_for(closed).await;
    let (_, state, left, width, plot) = bands(&browser, open).await.remove(0);
    assert_eq!(state, "true");
    // It fired seconds ago, in a range of 15 minutes: near the right edge, and up to it.
    assert!(left > plot * 0.8 && (left + width - plot).abs() <= 1.0, "{left} {width} {plot}");
    let (_, state, left, width, plot) = bands(&browser, closed).await.remove(0);
    assert_eq!(state, "false");
    assert!(left > plot * 0.8 && width >= 2.0 && left + width < plot, "{left} {width} {plot}");
    // Hovering over a band names it.
    let hover = "const band = document.querySelector(arguments[0]).getBoundingClientRect(); \
        const over = document.querySelector('.chart .u-over'); \
        over.dispatchEvent(new MouseEvent('mousemove', \
            {clientX: band.left + band.width / 2, clientY: band.top + band.height / 2, bubbles: true})); \
        return over.getAttribute('title');";
    let title = eventually(20, "the band's name on hover", || async {
        browser.execute(hover, vec![json!(open)]).await.as_str().map(str::to_owned)
    })
    .await;
    assert_eq!(title, "PaymentsSlow firing");

    // A dashboard of the payments service: only its alert.
    let dashboard = json!({
        "title": "Payments", "variables": [{"name": "service", "label": "service"}], "range": "15m",
        "rows": [{"panels": [{"title": "Up", "type": "time_series", "queries": [{"expr": "vector(1)"}], "width": 12}]}],
    });
    let created = app.with_session(Method::POST, paths::DASHBOARDS, &deployer).json(&dashboard).send().await.unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let uid = created.json::<Value>().await.unwrap()["uid"].as_str().unwrap().to_owned();
    browser.goto(&app.url(&format!("/dashboard?uid={uid}&var-service=payments"))).await;
    let panel = ".dashboard-panel .chart .chart-band.alert-band";
    browser.wait_for(&format!("{panel}[data-label='PaymentsSlow']")).await;
    assert_eq!(data_of(&browser, panel, "label").await, ["PaymentsSlow"]);
    // Every service: both.
    browser.goto(&app.url(&format!("/dashboard?uid={uid}"))).await;
    eventually(20, "both alerts on the dashboard", || async {
        let mut labels = data_of(&browser, panel, "label").await;
        labels.sort();
        (labels == ["Blip", "PaymentsSlow"]).then_some(())
    })
    .await;
    browser.quit().await;
}
