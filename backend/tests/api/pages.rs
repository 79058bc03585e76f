//! Pages and server functions as people meet them: errors with their status, their message and
//! where a query went wrong, unknown URLs, and the live tail taking over from the results.

use reqwest::Method;
use vigil_proto::paths;

use crate::browser::Browser;
use crate::helpers::{ADMIN, ADMIN_PASSWORD, TestApp, eventually, record, spawn_app};

/// Calls a server function the way the browser does (a form post with the session).
pub async fn server_function(
    app: &TestApp,
    session: &crate::helpers::TestSession,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let body: String = form
        .iter()
        .map(|(name, value)| {
            format!("{name}={}", url::form_urlencoded::byte_serialize(value.as_bytes()).collect::<String>())
        })
        .collect::<Vec<_>>()
        .join("&");
    app.with_session(Method::POST, path, session)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

/// Bad input to a server function is a 4xx with the `ApiError` code (a 500 only for what
/// fails on the server), and the message is the backend's own.
#[tokio::test]
async fn server_functions_answer_bad_input_with_a_4xx_and_its_code() {
    let app = spawn_app().await;
    let session = app.admin_session().await;
    let (app, session) = (&app, &session);
    let search = |q: &'static str| async move {
        let form = [("q", q), ("range", "1h"), ("start", ""), ("end", ""), ("cursor", ""), ("limit", "100")];
        server_function(app, session, "/ui/fn/read/search_logs", &form).await
    };
    let bad = search("level:error AND (timeout").await;
    assert_eq!(bad.status(), 400);
    let error: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(error["code"], "invalid_query", "{error}");
    assert!(error["message"].as_str().unwrap().starts_with("syntax error at position"), "{error}");
    assert!(error["position"].as_u64().is_some(), "{error}");
    assert_eq!(search("level:error").await.status(), 200);

    let missing = server_function(app, session, "/ui/fn/read/search_logs", &[("q", "x")]).await;
    assert_eq!(missing.status(), 400);
    let error: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(error["code"], "invalid_parameter", "{error}");

    let promql = server_function(
        app,
        session,
        "/ui/fn/read/metrics_range",
        &[("q", "rate(x[5m]"), ("range", "1h"), ("start", ""), ("end", "")],
    )
    .await;
    assert!(promql.status().is_client_error() || promql.status() == 503, "{}", promql.status());

    let short = server_function(
        app,
        session,
        "/ui/fn/account/change_password",
        &[("current_password", ADMIN_PASSWORD), ("new_password", "short")],
    )
    .await;
    assert_eq!(short.status(), 400);
    let error: serde_json::Value = short.json().await.unwrap();
    assert_eq!(error["code"], "invalid_parameter");
    assert!(error["message"].as_str().unwrap().contains("at least"), "{error}");

    // A range on a JSON attribute is the caller's mistake too, on the API as in the UI.
    app.post_logs(&[record("2026-11-29T08:00:00Z", "api", "info", "slow")]).await;
    let range = app.search_raw(&[("q", "attributes.duration:[100 TO 200]")]).await;
    crate::helpers::assert_error(range, 400, "invalid_query", "cannot be answered").await;
}

/// A browser that opens an unknown URL gets a page in the layout with a way back; API clients
/// keep their JSON.
#[tokio::test]
async fn unknown_urls_get_a_page_for_browsers_and_json_for_clients() {
    let app = spawn_app().await;
    let session = app.admin_session().await;
    for path in ["/log", "/no/such/page"] {
        let page = app.with_session(Method::GET, path, &session).header("accept", "text/html").send().await.unwrap();
        assert_eq!(page.status(), 404, "{path}");
        assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let html = page.text().await.unwrap();
        assert!(html.contains("Page not found") && html.contains(path), "{html}");
        assert!(html.contains("<nav class=\"sidebar\">") && html.contains("Back to the overview"), "{html}");
        let api = app.client.get(app.url(path)).header("accept", "application/json").send().await.unwrap();
        assert_eq!(api.status(), 404);
        let error: serde_json::Value = api.json().await.unwrap();
        assert_eq!(error["code"], "not_found");
    }
    let api = app.client.get(app.url("/api/v1/nothing")).header("accept", "text/html").send().await.unwrap();
    assert_eq!(api.status(), 404);
    assert!(api.headers()["content-type"].to_str().unwrap().starts_with("application/json"), "the API stays JSON");
}

/// A query that fails shows its message as the backend wrote it, marks where it went wrong,
/// and leaves the last results on the page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_query_keeps_the_results_and_marks_the_mistake() {
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    app.post_logs(&[record(&now, "api", "error", "payment timed out")]).await;
    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/logs?q=timed&range=1h"), ADMIN, ADMIN_PASSWORD).await;
    browser.wait_for(".search-bar[data-hydrated='true']").await;
    browser.wait_for(".records:not(.live) > .record").await;
    let query = browser.wait_for("input.query").await;
    browser.execute("arguments[0].value = '';", vec![serde_json::json!({crate::browser::ELEMENT: query.id()})]).await;
    browser.type_text(&query, "timed AND (payment").await;
    browser.click(&browser.wait_for(".search-bar button[type='submit']").await).await;
    let message = browser.text(&browser.wait_for(".query-error").await).await;
    assert!(message.starts_with("syntax error at position"), "{message}");
    assert!(!message.contains("server function"), "{message}");
    let marked = browser.text(&browser.wait_for(".query-position mark").await).await;
    assert!(!marked.is_empty() || marked == " ", "the place is marked");
    let kept = browser.text(&browser.wait_for(".previous-results .record .message").await).await;
    assert_eq!(kept, "payment timed out");
}

/// Under steady ingest, the live tail takes over from the results exactly: every record after
/// the oldest shown is in the results or in the tail, none in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_tail_takes_over_from_the_results_without_gap_or_duplicate() {
    let app = spawn_app().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let ingest = tokio::spawn({
        let (client, url, token, stop) =
            (app.client.clone(), app.url(paths::LOGS), app.ingest_token.clone(), stop.clone());
        async move {
            let mut sent = 0_u64;
            while !stop.is_cancelled() {
                let now =
                    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
                let line =
                    format!("{{\"timestamp\":\"{now}\",\"service\":\"steady\",\"message\":\"steady {sent}\"}}\n");
                let response = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(line)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                sent += 1;
                tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            }
            sent
        }
    });
    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/logs?q=service:steady&range=1h"), ADMIN, ADMIN_PASSWORD).await;
    browser.wait_for(".search-bar[data-hydrated='true']").await;
    browser.wait_for(".records:not(.live) > .record").await;
    // Records keep arriving between the search and the tail's start.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    browser.click(&browser.wait_for(".live-toggle").await).await;
    browser.wait_for(".live-tail[data-live='connected']").await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    stop.cancel();
    let sent = ingest.await.unwrap();
    let last = format!("steady {}", sent - 1);
    let numbers = |texts: Vec<String>| -> Vec<u64> {
        texts.iter().filter_map(|text| text.strip_prefix("steady ")?.parse().ok()).collect()
    };
    let live = eventually(20, "the last record in the live tail", || async {
        let mut texts = Vec::new();
        for element in browser.find_all(".records.live .message").await {
            texts.push(browser.text(&element).await);
        }
        texts.contains(&last).then_some(texts)
    })
    .await;
    let mut results = Vec::new();
    for element in browser.find_all(".records:not(.live) > .record .message").await {
        results.push(browser.text(&element).await);
    }
    let (live, results) = (numbers(live), numbers(results));
    assert!(!results.is_empty() && !live.is_empty());
    let mut all: Vec<u64> = live.iter().chain(&results).copied().collect();
    all.sort_unstable();
    let before = all.len();
    all.dedup();
    assert_eq!(all.len(), before, "a record in both the results and the tail: {results:?} {live:?}");
    let oldest = *all.first().unwrap();
    let expected: Vec<u64> = (oldest..sent).collect();
    assert_eq!(all, expected, "a gap between the results and the tail");
}
