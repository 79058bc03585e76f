use crate::helpers::{assert_error, spawn_app};
use crate::prometheus::TestPrometheus;

#[tokio::test]
async fn healthz_and_readyz_answer_without_a_token() {
    let app = spawn_app().await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: serde_json::Value = app.client.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["checks"]["database"]["status"], "ok");
    assert_eq!(ready["checks"]["log_store"]["status"], "ok");
}

#[tokio::test]
async fn readyz_fails_when_the_log_store_is_closed() {
    let app = spawn_app().await;
    app.state.log_store.close().await;
    let response = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["checks"]["log_store"]["status"], "failing");
    assert_eq!(body["checks"]["database"]["status"], "ok");
}

#[tokio::test]
async fn unknown_api_routes_get_a_json_404() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/api/v1/nothing")).send().await.unwrap();
    assert_error(response, 404, "not_found", "/api/v1/nothing").await;
}

#[tokio::test]
async fn a_wrong_method_gets_a_json_405() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/api/v1/logs")).bearer_auth(&app.ingest_token).send().await.unwrap();
    assert_error(response, 405, "method_not_allowed", "does not accept GET").await;
}

#[tokio::test]
async fn metrics_count_requests_by_route() {
    let app = spawn_app().await;
    app.client.get(app.url("/healthz")).send().await.unwrap();
    let response = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let text = response.text().await.unwrap();
    assert!(text.contains(r#"vigil_http_requests_total{method="GET",route="/healthz",status="200"} 1"#), "{text}");
    assert!(text.trim_end().ends_with("# EOF"));
}

/// A real Prometheus scrapes the backend's `/metrics` and can query what it exposes.
#[tokio::test]
async fn prometheus_scrapes_the_backend() {
    let app = spawn_app().await;
    app.post_logs(&[crate::helpers::record("2026-11-29T08:00:00Z", "api", "info", "scraped")]).await;
    let prometheus = TestPrometheus::start(&format!(
        "  - job_name: vigil\n    static_configs:\n      - targets: ['127.0.0.1:{}']\n",
        app.port
    ))
    .await;
    let ingested = crate::helpers::eventually(60, "Prometheus to scrape vigil", || async {
        let result = prometheus.query(r#"vigil_log_records_ingested_total{job="vigil"}"#).await;
        result.first().map(|series| series["value"][1].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert_eq!(ingested, "1");
    let up = prometheus.query(r#"up{job="vigil"}"#).await;
    assert_eq!(up[0]["value"][1], "1");
}

/// The bundle is linked under a name that holds its hash and kept by browsers for a year;
/// the other files are revalidated by their hash; browsers that accept gzip get the gzip copy.
#[tokio::test]
async fn the_site_is_served_compressed_and_cached_by_content_hash() {
    let app = crate::helpers::spawn_app().await;
    let page = app.client.get(app.url(vigil_proto::paths::LOGIN_PAGE)).send().await.unwrap().text().await.unwrap();
    let script = page
        .split('"')
        .find(|part| part.starts_with("/pkg/vigil.") && part.ends_with(".js"))
        .unwrap_or_else(|| panic!("the page links a hashed script: {page}"))
        .to_owned();
    assert_ne!(script, "/pkg/vigil.js", "the name holds the bundle's hash");
    let wasm = script.replace(".js", "_bg.wasm");
    assert!(page.contains(&wasm), "the page links {wasm}");

    let get = |path: &str, accept_gzip: bool| {
        let mut request = app.client.get(app.url(path));
        if accept_gzip {
            request = request.header("accept-encoding", "gzip, deflate, br");
        }
        request.send()
    };
    let plain = get(&wasm, false).await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/wasm");
    assert_eq!(plain.headers()["cache-control"], "public, max-age=31536000, immutable");
    assert!(plain.headers().get("content-encoding").is_none());
    let plain_length = plain.bytes().await.unwrap().len();
    let compressed = get(&wasm, true).await.unwrap();
    assert_eq!(compressed.headers()["content-encoding"], "gzip");
    let etag = compressed.headers()["etag"].to_str().unwrap().to_owned();
    let compressed_length = compressed.bytes().await.unwrap().len();
    assert!(compressed_length * 2 < plain_length, "gzip: {compressed_length} of {plain_length} bytes");

    let stylesheet = get("/pkg/vigil.css", true).await.unwrap();
    assert_eq!(stylesheet.headers()["cache-control"], "no-cache");
    let css_etag = stylesheet.headers()["etag"].to_str().unwrap().to_owned();
    let revalidated =
        app.client.get(app.url("/pkg/vigil.css")).header("if-none-match", &css_etag).send().await.unwrap();
    assert_eq!(revalidated.status(), 304);
    let again = app.client.get(app.url(&wasm)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    for outside in ["/pkg/../Cargo.toml", "/pkg/%2e%2e/Cargo.toml", "/pkg/nothing.js"] {
        assert_eq!(app.client.get(app.url(outside)).send().await.unwrap().status(), 404, "{outside}");
    }
}
