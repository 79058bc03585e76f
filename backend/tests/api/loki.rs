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

/// Every case of Loki's own tests of push parsing (`pkg/loghttp/push/push_test.go`, in
/// tests/data/loki-push): what Loki stores is stored, what Loki refuses gets 400 and stores
/// nothing.
#[tokio::test]
async fn lokis_own_push_cases_are_answered_as_loki_answers_them() {
    use std::io::Write;
    let app = spawn_app().await;
    let cases: Vec<serde_json::Value> =
        serde_json::from_str(include_str!("../data/loki-push/cases.json")).expect("the cases parse");
    assert_eq!(cases.len(), 29);
    let mut stored = 0;
    for case in &cases {
        let name = case["name"].as_str().unwrap();
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos().to_string();
        let body = match case["body"].as_str().unwrap() {
            "PROTOBUF" => prost::Message::encode_to_vec(&PushRequest {
                streams: vec![StreamAdapter {
                    labels: r#"{ "foo"="bar2",      "environment"="prod"   }"#.to_owned(),
                    entries: vec![EntryAdapter {
                        timestamp: Some(ProtoTimestamp { seconds: 1_570_818_238, nanos: 0 }),
                        line: "fizzbuzz".to_owned(),
                        structured_metadata: vec![LabelPairAdapter {
                            name: "name1".to_owned(),
                            value: "value1".to_owned(),
                        }],
                    }],
                    hash: 0,
                }],
            }),
            "PROTOBUF_SIMPLE" => prost::Message::encode_to_vec(&PushRequest {
                streams: vec![StreamAdapter {
                    labels: r#"{foo="bar"}"#.to_owned(),
                    entries: vec![EntryAdapter {
                        timestamp: Some(ProtoTimestamp {
                            seconds: time::OffsetDateTime::now_utc().unix_timestamp(),
                            nanos: 0,
                        }),
                        line: "test message".to_owned(),
                        structured_metadata: vec![],
                    }],
                    hash: 0,
                }],
            }),
            json => json.replace("NOW", &now).into_bytes(),
        };
        let body = if case["body"].as_str().unwrap().starts_with("PROTOBUF") {
            snap::raw::Encoder::new().compress_vec(&body).unwrap()
        } else {
            body
        };
        let body = match case["encode"].as_str().unwrap() {
            "gzip" => {
                let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
                encoder.write_all(&body).unwrap();
                encoder.finish().unwrap()
            }
            "deflate" => {
                let mut encoder = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(6));
                encoder.write_all(&body).unwrap();
                encoder.finish().unwrap()
            }
            _ => body,
        };
        let mut request = app
            .client
            .post(app.url(paths::LOKI_PUSH))
            .query(&[("commit", "wait_for")])
            .bearer_auth(&app.ingest_token)
            .body(body);
        if let Some(content_type) = case["content_type"].as_str() {
            request = request.header("content-type", content_type);
        }
        if let Some(encoding) = case["content_encoding"].as_str().filter(|encoding| !encoding.is_empty()) {
            request = request.header("content-encoding", encoding);
        }
        if name.contains("user agent") {
            let agent = b"\xe5\xe5\xe5\xe5\xe5\xe5; Intel Mac OS X 10.15; rv:148.0) Gecko/20100101 Firefox/148.0";
            request = request.header("user-agent", reqwest::header::HeaderValue::from_bytes(agent).unwrap());
        }
        let response = request.send().await.unwrap();
        let lines = case["lines"].as_u64().unwrap();
        if lines == 0 {
            assert_eq!(response.status(), 400, "{name}: {}", response.text().await.unwrap_or_default());
        } else {
            assert_eq!(response.status(), 204, "{name}: {}", response.text().await.unwrap_or_default());
        }
        stored += lines;
        assert_eq!(app.search(&[("limit", "1")]).await.total, stored, "{name}: what is stored");
    }
    let labelled = app.search(&[("q", "attributes.environment:prod AND fizzbuzz")]).await;
    assert_eq!(labelled.total, 2, "labels are attributes, quoted names too");
    let metadata = app.search(&[("q", "attributes.key:multi")]).await;
    assert_eq!(metadata.records[0].attributes["key"], "multi\nline\nvalue");
    assert_eq!(app.search(&[("q", "service:stuff")]).await.total, 2, "job is the service");
}
