//! OTLP/HTTP logs, fed with the official OTLP JSON examples (tests/data/otlp) and their
//! protobuf encoding.

use vigil_backend::ingest::otlp::{decode_json, messages::ExportLogsServiceResponse};
use vigil_proto::paths;

use crate::helpers::{TestApp, assert_error, spawn_app};

const LOGS: &str = include_str!("../data/otlp/logs.json");
const EVENTS: &str = include_str!("../data/otlp/events.json");

async fn export(app: &TestApp, content_type: &str, body: Vec<u8>) -> reqwest::Response {
    app.client
        .post(app.url(paths::OTLP_LOGS))
        .query(&[("commit", "wait_for")])
        .bearer_auth(&app.ingest_token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn the_json_example_is_stored_with_its_attributes() {
    let app = spawn_app().await;
    let response = export(&app, "application/json", LOGS.as_bytes().to_vec()).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<serde_json::Value>().await.unwrap(), serde_json::json!({}));
    let page = app.search(&[("q", "service:my.service")]).await;
    assert_eq!(page.total, 1);
    let hit = &page.records[0];
    assert_eq!((hit.message.as_str(), hit.level.as_str()), ("Example log record", "info"));
    assert_eq!(hit.timestamp.to_rfc3339(), "2018-12-13T14:51:00.3Z");
    assert_eq!(hit.attributes["trace_id"], "5b8efff798038103d269b633813fc60c");
    assert_eq!(hit.attributes["span_id"], "eee19b7ec3c1b174");
    assert_eq!(hit.attributes["scope.name"], "my.library");
    assert_eq!(hit.attributes["int.attribute"], 10);
    assert_eq!(hit.attributes["array.attribute"], serde_json::json!(["many", "values"]));
    // Dotted attribute names are paths in queries.
    assert_eq!(app.search(&[("q", "attributes.string.attribute:\"some string\"")]).await.total, 1);
    assert_eq!(app.search(&[("q", "attributes.boolean.attribute:true")]).await.total, 1);

    assert_eq!(export(&app, "application/json", EVENTS.as_bytes().to_vec()).await.status(), 200);
    assert_eq!(app.search(&[("q", "attributes.event_name:\"browser.page_view\"")]).await.total, 1);
}

#[tokio::test]
async fn protobuf_requests_get_protobuf_answers() {
    let app = spawn_app().await;
    let request = decode_json(LOGS.as_bytes()).unwrap();
    let response = export(&app, "application/x-protobuf", prost::Message::encode_to_vec(&request)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-protobuf");
    let answer: ExportLogsServiceResponse = prost::Message::decode(response.bytes().await.unwrap()).unwrap();
    assert_eq!(answer.partial_success, None);
    assert_eq!(app.search(&[("q", "service:my.service")]).await.total, 1);
}

#[tokio::test]
async fn refused_records_are_reported_as_partial_success() {
    let app = spawn_app().await;
    let body = LOGS.replace("\"timeUnixNano\": \"1544712660300000000\"", "\"timeUnixNano\": \"9000000000000000000\"");
    let body = format!(
        "{{\"resourceLogs\": [{}, {}]}}",
        serde_json::from_str::<serde_json::Value>(&body).unwrap()["resourceLogs"][0],
        serde_json::from_str::<serde_json::Value>(LOGS).unwrap()["resourceLogs"][0]
    );
    let response = export(&app, "application/json", body.into_bytes()).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["partialSuccess"]["rejectedLogRecords"], "1");
    assert!(answer["partialSuccess"]["errorMessage"].as_str().unwrap().contains("in the future"));
    assert_eq!(app.search(&[("q", "service:my.service")]).await.total, 1);
}

#[tokio::test]
async fn bad_requests_are_refused_with_clear_errors() {
    let app = spawn_app().await;
    assert_error(
        export(&app, "text/plain", b"x".to_vec()).await,
        415,
        "unsupported_media_type",
        "application/x-protobuf",
    )
    .await;
    assert_error(
        export(&app, "application/x-protobuf", b"\xff\xff\xff".to_vec()).await,
        400,
        "invalid_protobuf",
        "ExportLogsServiceRequest",
    )
    .await;
    assert_error(
        export(&app, "application/json", b"{\"resourceLogs\": 5}".to_vec()).await,
        400,
        "invalid_record",
        "resourceLogs",
    )
    .await;
    let response = app
        .client
        .post(app.url(paths::OTLP_LOGS))
        .header("content-type", "application/json")
        .body(LOGS)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
}
