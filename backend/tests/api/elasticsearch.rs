//! The Elasticsearch `_bulk` endpoint, fed with real bulk bodies (tests/data/elasticsearch-bulk).

use std::io::Write;

use base64::Engine;
use vigil_proto::elasticsearch::{BulkItem, BulkResponse};

use crate::helpers::{TestApp, assert_error, spawn_app};

const ELASTICOFFEE: &str = include_str!("../data/elasticsearch-bulk/elasticoffee.bulk-body.ndjson");
const AMA_RESPONSES: &str = include_str!("../data/elasticsearch-bulk/ama-responses.bulk-body.ndjson");

async fn post_bulk(app: &TestApp, path: &str, body: Vec<u8>, authorization: &str, gzip: bool) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .query(&[("refresh", "wait_for")])
        .header("authorization", authorization)
        .header("content-type", "application/x-ndjson");
    if gzip {
        request = request.header("content-encoding", "gzip");
    }
    request.body(body).send().await.unwrap()
}

fn bearer(app: &TestApp) -> String {
    format!("Bearer {}", app.ingest_token)
}

#[tokio::test]
async fn a_valid_bulk_body_is_indexed_whole() {
    let app = spawn_app().await;
    let response = post_bulk(&app, "/_bulk", ELASTICOFFEE.as_bytes().to_vec(), &bearer(&app), false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    let answer: BulkResponse = response.json().await.unwrap();
    assert!(!answer.errors);
    assert_eq!(answer.items.len(), 1368);
    assert!(answer.items.iter().all(|item| matches!(item, BulkItem::Index(result) if result.status == 201)));
    assert_eq!(answer.items[0].result().id, "1");
    assert_eq!(app.search(&[("q", "service:elasticoffee")]).await.total, 1368);
    assert!(app.search(&[("q", "attributes.beverage:latte")]).await.total > 0);
}

#[tokio::test]
async fn malformed_sources_fail_per_item_and_the_rest_is_indexed() {
    let app = spawn_app().await;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(AMA_RESPONSES.as_bytes()).unwrap();
    let response = post_bulk(&app, "/amaresponses/_bulk", encoder.finish().unwrap(), &bearer(&app), true).await;
    assert_eq!(response.status(), 200);
    let answer: BulkResponse = response.json().await.unwrap();
    assert!(answer.errors);
    assert_eq!(answer.items.len(), 804);
    let failed: Vec<_> = answer.items.iter().map(BulkItem::result).filter(|result| result.error.is_some()).collect();
    assert_eq!(failed.len(), 6);
    assert!(
        failed
            .iter()
            .all(|result| result.status == 400 && result.error.as_ref().unwrap().kind == "document_parsing_exception")
    );
    assert_eq!(app.search(&[("q", "service:amaresponses"), ("limit", "1")]).await.total, 798);
}

#[tokio::test]
async fn shippers_authenticate_with_api_keys_and_basic_credentials() {
    let app = spawn_app().await;
    let body = b"{\"index\":{\"_index\":\"app\"}}\n{\"message\":\"via filebeat\"}\n".to_vec();
    let encode = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    let api_key = format!("ApiKey {}", encode(format!("filebeat:{}", app.ingest_token)));
    assert_eq!(post_bulk(&app, "/_bulk", body.clone(), &api_key, false).await.status(), 200);
    let basic = format!("Basic {}", encode(format!("fluentbit:{}", app.ingest_token)));
    assert_eq!(post_bulk(&app, "/_bulk", body.clone(), &basic, false).await.status(), 200);
    let wrong = format!("Basic {}", encode("fluentbit:vgl_wrong".to_owned()));
    assert_error(post_bulk(&app, "/_bulk", body.clone(), &wrong, false).await, 401, "unauthorized", "unknown").await;
    let read = format!("Bearer {}", app.read_token);
    assert_error(post_bulk(&app, "/_bulk", body, &read, false).await, 403, "forbidden", "ingest").await;
    assert_eq!(app.search(&[("q", "filebeat")]).await.total, 2);
}

#[tokio::test]
async fn a_malformed_action_line_refuses_the_request() {
    let app = spawn_app().await;
    let body = b"{\"index\":{\"_index\":\"app\"}}\n{\"message\":\"fine\"}\n{\"upsert\":{}}\n".to_vec();
    let error =
        assert_error(post_bulk(&app, "/_bulk", body, &bearer(&app), false).await, 400, "invalid_json", "line 3").await;
    assert_eq!(error["line"], 3);
    assert_eq!(app.search(&[]).await.total, 0);
}

#[tokio::test]
async fn the_root_answers_shippers_with_a_version_and_browsers_with_the_ui() {
    let app = spawn_app().await;
    let response = app.client.get(app.url("/")).header("accept", "application/json").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    let info: serde_json::Value = response.json().await.unwrap();
    assert_eq!(info["version"]["number"], "8.11.0");
    assert_eq!(info["tagline"], "You Know, for Search");
    // Browsers get the UI: its login page first, then the layout once signed in.
    let page = app.client.get(app.url("/")).header("accept", "text/html,application/xhtml+xml").send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login?next=/");
    let session = app.admin_session().await;
    let page =
        app.with_session(reqwest::Method::GET, "/", &session).header("accept", "text/html").send().await.unwrap();
    assert!(page.text().await.unwrap().contains("<nav class=\"sidebar\">"));
}
