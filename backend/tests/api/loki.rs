//! Loki's push API, as Promtail and Alloy send it (snappy protobuf) and as JSON.

use vigil_backend::ingest::loki::messages::{
    EntryAdapter, LabelPairAdapter, ProtoTimestamp, PushRequest, StreamAdapter,
};
use vigil_proto::paths;

use crate::helpers::{TestApp, assert_error, spawn_app};

async fn push(app: &TestApp, content_type: Option<&str>, body: Vec<u8>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(paths::LOKI_PUSH))
        .query(&[("commit", "wait_for")])
        .bearer_auth(&app.ingest_token)
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    request.send().await.unwrap()
}

fn snappy_protobuf(request: &PushRequest) -> Vec<u8> {
    snap::raw::Encoder::new().compress_vec(&prost::Message::encode_to_vec(request)).unwrap()
}

#[tokio::test]
async fn snappy_protobuf_pushes_are_stored_with_labels_mapped() {
    let app = spawn_app().await;
    let request = PushRequest {
        streams: vec![StreamAdapter {
            labels: r#"{job="checkout", instance="web-3:8080", env="prod"}"#.to_owned(),
            entries: vec![
                EntryAdapter {
                    timestamp: Some(ProtoTimestamp { seconds: 1_795_939_200, nanos: 5 }),
                    line: "level=error msg=\"payment provider timed out\"".to_owned(),
                    structured_metadata: vec![LabelPairAdapter {
                        name: "trace_id".to_owned(),
                        value: "abc123".to_owned(),
                    }],
                },
                EntryAdapter {
                    timestamp: Some(ProtoTimestamp { seconds: 1_795_939_201, nanos: 0 }),
                    line: "order placed".to_owned(),
                    structured_metadata: vec![],
                },
            ],
            hash: 0,
        }],
    };
    let response = push(&app, Some("application/x-protobuf"), snappy_protobuf(&request)).await;
    assert_eq!(response.status(), 204);
    let page = app.search(&[("q", "service:checkout")]).await;
    assert_eq!(page.total, 2);
    let oldest = &page.records[1];
    assert_eq!((oldest.host.as_str(), oldest.level.as_str()), ("web-3:8080", "error"));
    assert_eq!(oldest.timestamp.to_rfc3339(), "2026-11-29T08:00:00.000000005Z");
    assert_eq!(oldest.attributes["env"], "prod");
    assert_eq!(oldest.attributes["trace_id"], "abc123");
    // Loki's default: no content type means protobuf.
    assert_eq!(push(&app, None, snappy_protobuf(&request)).await.status(), 204);
}

#[tokio::test]
async fn json_pushes_follow_lokis_rules() {
    let app = spawn_app().await;
    let body = r#"{"streams":[{"stream":{"service_name":"api","level":"warn"},"values":[["1795939200000000000","slow response"]]}]}"#;
    assert_eq!(push(&app, Some("application/json"), body.as_bytes().to_vec()).await.status(), 204);
    assert_eq!(app.search(&[("q", "service:api AND level:warn")]).await.total, 1);

    let numeric = r#"{"streams":[{"stream":{"job":"api"},"values":[[1795939200000000000,"x"]]}]}"#;
    assert_error(
        push(&app, Some("application/json"), numeric.as_bytes().to_vec()).await,
        400,
        "invalid_record",
        "must be a string",
    )
    .await;

    // A bad entry is refused alone: the good one of the same push is stored.
    let mixed = r#"{"streams":[{"stream":{"job":"mixed"},"values":[["1795939200000000000","kept"],["9000000000000000000","too far ahead"]]}]}"#;
    assert_error(
        push(&app, Some("application/json"), mixed.as_bytes().to_vec()).await,
        400,
        "invalid_record",
        "1 entries refused",
    )
    .await;
    assert_eq!(app.search(&[("q", "service:mixed")]).await.total, 1);
}

#[tokio::test]
async fn malformed_pushes_get_clear_errors() {
    let app = spawn_app().await;
    assert_error(
        push(&app, Some("application/x-protobuf"), b"not snappy at all".to_vec()).await,
        400,
        "invalid_encoding",
        "snappy",
    )
    .await;
    let garbage = snap::raw::Encoder::new().compress_vec(b"\xff\xff\xff\xff").unwrap();
    assert_error(push(&app, Some("application/x-protobuf"), garbage).await, 400, "invalid_protobuf", "PushRequest")
        .await;
    let bad_labels =
        PushRequest { streams: vec![StreamAdapter { labels: "job=api".to_owned(), entries: vec![], hash: 0 }] };
    assert_error(
        push(&app, Some("application/x-protobuf"), snappy_protobuf(&bad_labels)).await,
        400,
        "invalid_record",
        "enclosed",
    )
    .await;
    assert_error(
        push(&app, Some("application/json"), b"{\"streams\": 3}".to_vec()).await,
        400,
        "invalid_record",
        "streams",
    )
    .await;
}
