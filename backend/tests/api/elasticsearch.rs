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
    assert_eq!(answer.items[0].result().id.as_deref(), Some("1"));
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

const FLUENT_BIT_DEFAULT: &str = include_str!("../data/shippers/fluent-bit-es-default.ndjson");
const FLUENT_BIT_LOGSTASH_FORMAT: &str = include_str!("../data/shippers/fluent-bit-es-logstash-format.ndjson");
const FLUENT_BIT_KUBERNETES: &str = include_str!("../data/shippers/fluent-bit-es-kubernetes.ndjson");
const FILEBEAT: &str = include_str!("../data/shippers/filebeat-8.ndjson");
const LOGSTASH_CLASSIC: &str = include_str!("../data/shippers/logstash-classic.ndjson");
const LOGSTASH_ECS: &str = include_str!("../data/shippers/logstash-8-ecs.ndjson");
const VECTOR: &str = include_str!("../data/shippers/vector.ndjson");

/// One stored record, found by a query.
async fn one(app: &TestApp, q: &str) -> vigil_proto::LogHit {
    let page = app.search(&[("q", q)]).await;
    assert_eq!(page.records.len(), 1, "{q}: {:?}", page.records);
    page.records.into_iter().next().unwrap()
}

/// What Fluent Bit, Filebeat, Logstash and Vector send, as they send it (method, path, content
/// type, encoding, action lines, documents): every line is stored with its message, host,
/// level and time where the shipper put them.
#[tokio::test]
async fn the_documents_real_shippers_send_are_stored_with_their_fields() {
    let app = spawn_app().await;
    let gzip = |text: &str| {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    };
    let basic =
        format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("elastic:{}", app.ingest_token)));
    let send = |path: &'static str, content_type: &'static str, body: Vec<u8>, gzipped: bool| {
        let mut request = app
            .client
            .post(app.url(path))
            .header("authorization", &basic)
            .header("content-type", content_type)
            .header("user-agent", "Fluent-Bit")
            .query(&[("refresh", "wait_for")])
            .body(body);
        if gzipped {
            request = request.header("content-encoding", "gzip");
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let answer: serde_json::Value = response.json().await.unwrap();
            assert_eq!(answer["errors"], false, "{path}: {answer}");
        }
    };
    send("/_bulk", "application/x-ndjson", FLUENT_BIT_DEFAULT.into(), false).await;
    // Logstash_Format with gzip and a pipeline, as 5.1 sends it and as 4.x did (`/_bulk/?`).
    let (first, second) =
        FLUENT_BIT_LOGSTASH_FORMAT.split_at(FLUENT_BIT_LOGSTASH_FORMAT.find("\n{\"create\"").unwrap() + 1);
    send("/_bulk?pipeline=mypipe", "application/x-ndjson", gzip(first), true).await;
    send("/_bulk/?pipeline=mypipe", "application/x-ndjson", gzip(second), true).await;
    send("/_bulk", "application/x-ndjson", FLUENT_BIT_KUBERNETES.into(), false).await;
    send(
        "/_bulk?filter_path=errors%2Citems.%2A.error%2Citems.%2A.status",
        "application/json; charset=UTF-8",
        gzip(FILEBEAT),
        true,
    )
    .await;
    send("/_bulk?filter_path=errors,items.*.error,items.*.status", "application/json", gzip(LOGSTASH_CLASSIC), true)
        .await;
    send("/_bulk?filter_path=errors,items.*.error,items.*.status", "application/json", gzip(LOGSTASH_ECS), true).await;
    send("/_bulk?timeout=60s", "application/x-ndjson", VECTOR.into(), false).await;

    let line = one(&app, "\"GET /api/v2/items\"").await;
    assert_eq!((line.service.as_str(), line.level.as_str()), ("fluent-bit", "unknown"));
    assert!(line.message.starts_with("10.0.0.7 - - [01/Dec/2026:09:11:14 +0000]"), "the whole line: {}", line.message);
    assert_eq!(line.timestamp, "2026-12-01T09:11:14.209Z".parse().unwrap());
    let error = one(&app, "payment").await;
    assert_eq!(error.level, "error", "detected from the line, as the agent does");
    let unicode = one(&app, "quotes AND service:fluent-bit").await;
    assert_eq!(unicode.message, "second line with \"quotes\" and ünïcode");
    let slow = one(&app, "slow").await;
    assert_eq!((slow.service.as_str(), slow.level.as_str()), ("logstash", "warn"));
    assert_eq!(slow.attributes["flb-key"], "app.log");
    assert_eq!(app.search(&[("q", "service:logstash AND thirty")]).await.total, 1);
    let pod = one(&app, "checkout AND started").await;
    assert_eq!((pod.service.as_str(), pod.host.as_str(), pod.level.as_str()), ("checkout", "node-3", "info"));
    assert_eq!(pod.attributes["kubernetes"]["pod_name"], "checkout-7d9f8b6c5-x2x4z");
    let beat = one(&app, "install.php").await;
    assert_eq!((beat.service.as_str(), beat.host.as_str()), ("filebeat-8.11.0", "nginx-01.example.com"));
    assert_eq!(beat.attributes["log"]["file"]["path"], "/var/log/nginx/access.log");
    let disk = one(&app, "disk").await;
    assert_eq!((disk.host.as_str(), disk.level.as_str(), disk.service.as_str()), ("myhost", "warn", "logstash"));
    let signed_in = one(&app, "alice").await;
    assert_eq!((signed_in.host.as_str(), signed_in.service.as_str()), ("auth-1", "logs-generic-default"));
    let vector = one(&app, "disintermediate").await;
    assert_eq!((vector.host.as_str(), vector.service.as_str()), ("my-host", "vector"));
    assert_eq!(vector.timestamp, "2026-12-01T09:15:58.123456789Z".parse().unwrap());
    assert_eq!(app.search(&[]).await.total, 10, "every line stored, none twice");
}

/// The Elasticsearch clients send `PUT /_bulk`; Logstash asks for the license and Vector for
/// the cluster's health before they send; `filter_path` trims the answer as Elasticsearch
/// does; items are small enough that a Fluent Bit chunk of thousands of records is answered
/// within its default 512 KiB response buffer.
#[tokio::test]
async fn clients_get_the_methods_discovery_and_answers_they_expect() {
    let app = spawn_app().await;
    let body = "{\"index\":{}}\n{\"message\":\"via put\"}\n";
    for path in ["/_bulk", "/put-index/_bulk"] {
        let response = app
            .client
            .put(app.url(path))
            .bearer_auth(&app.ingest_token)
            .header("content-type", "application/vnd.elasticsearch+x-ndjson; compatible-with=8")
            .header("accept", "application/vnd.elasticsearch+json; compatible-with=8")
            .body(if path == "/_bulk" { body.replace("{}", "{\"_index\":\"put-index\"}") } else { body.to_owned() })
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "PUT {path}");
        assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
    }
    for path in ["/_license", "/_cluster/health"] {
        let response = app.client.get(app.url(path)).bearer_auth(&app.ingest_token).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(response.headers()["x-elastic-product"], "Elasticsearch");
        let answer: serde_json::Value = response.json().await.unwrap();
        assert!(answer["license"]["status"] == "active" || answer["status"] == "green", "{answer}");
    }

    // A chunk of 4,700 records, with one bad one: compact, in Elasticsearch's key order.
    let mut chunk = String::new();
    for index in 0..4700 {
        chunk.push_str("{\"create\":{\"_index\":\"fluent-bit\",\"_type\":\"_doc\"}}\n");
        if index == 10 {
            chunk.push_str("{\"@timestamp\":\"noon\",\"log\":\"x\"}\n");
        } else {
            chunk.push_str(&format!(
                "{{\"@timestamp\":\"2026-12-01T09:11:14.209Z\",\"log\":\"line {index} of the chunk\"}}\n"
            ));
        }
    }
    let send = |query: &'static str| {
        app.client
            .post(app.url(&format!("/_bulk{query}")))
            .bearer_auth(&app.ingest_token)
            .header("content-type", "application/x-ndjson")
            .body(chunk.clone())
            .send()
    };
    let raw = send("").await.unwrap().bytes().await.unwrap();
    assert!(raw.len() < 512_000, "the answer to 4,700 items is {} bytes", raw.len());
    let text = std::str::from_utf8(&raw).unwrap();
    assert!(
        text.starts_with("{\"took\":")
            && text.contains("\"errors\":true,\"items\":[{\"create\":{\"_index\":\"fluent-bit\",\"status\":201}}"),
        "{}",
        &text[..200]
    );
    let filtered: serde_json::Value = send("?filter_path=items.*.error").await.unwrap().json().await.unwrap();
    let failed = filtered["items"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "only the failed item: {filtered}");
    assert!(failed.iter().all(|item| item["create"]["error"]["type"] == "document_parsing_exception"));
    assert_eq!(filtered.as_object().unwrap().len(), 1, "{filtered}");
}
