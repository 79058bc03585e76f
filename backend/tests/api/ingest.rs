use std::io::Write;

use crate::helpers::{Db, assert_error, eventually, record, spawn_app, spawn_app_with};

const LINE: &str = r#"{"timestamp":"2026-11-29T08:00:00Z","service":"api","message":"ok"}"#;

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn a_json_batch_is_acknowledged_and_searchable() {
    let app = spawn_app().await;
    let records = [
        record("2026-11-29T08:00:00Z", "checkout", "ERROR", "payment provider timed out"),
        record("2026-11-29T08:00:01Z", "checkout", "info", "order placed"),
    ];
    let response = app.post_logs(&records).await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["accepted"], 2);
    // Posted with `commit=wait_for`: acknowledged means searchable, no waiting.
    let page = app.search(&[("q", "payment")]).await;
    assert_eq!(page.total, 1);
    assert_eq!(page.records[0].level, "error");
    assert_eq!(page.records[0].service, "checkout");
}

/// Without `commit`, a batch is answered once durable and is searchable soon after; `force`
/// and `wait_for` answer once searchable; anything else is refused and stores nothing.
#[tokio::test]
async fn the_commit_parameter_chooses_when_ingest_answers() {
    let app = spawn_app().await;
    let post = |query: &'static str, message: &'static str| {
        app.client
            .post(format!("{}{query}", app.url(vigil_proto::paths::LOGS)))
            .bearer_auth(&app.ingest_token)
            .json(&[record("2026-11-29T08:00:00Z", "api", "info", message)])
            .send()
    };
    assert_eq!(post("", "durable").await.unwrap().status(), 200);
    eventually(5, "the record acknowledged as durable to be searchable", || async {
        (app.search(&[("q", "durable")]).await.total == 1).then_some(())
    })
    .await;
    assert_eq!(post("?commit=force", "forced").await.unwrap().status(), 200);
    assert_eq!(app.search(&[("q", "forced")]).await.total, 1);
    assert_eq!(post("?commit=auto", "automatic").await.unwrap().status(), 200);
    assert_eq!(post("?commit=wait_for", "waited").await.unwrap().status(), 200);
    assert_eq!(app.search(&[("q", "automatic OR waited")]).await.total, 2, "committed in order");
    assert_error(post("?commit=soon", "refused").await.unwrap(), 400, "invalid_parameter", "unknown variant `soon`")
        .await;
    let loki = app
        .client
        .post(format!("{}?commit=later", app.url(vigil_proto::paths::LOKI_PUSH)))
        .bearer_auth(&app.ingest_token)
        .header("content-type", "application/json")
        .body(r#"{"streams":[{"stream":{"job":"api"},"values":[["1795939200000000000","refused too"]]}]}"#)
        .send()
        .await
        .unwrap();
    assert_error(loki, 400, "invalid_parameter", "commit").await;
    let bulk = app
        .client
        .post(format!("{}?refresh=maybe", app.url(vigil_proto::paths::ELASTICSEARCH_BULK)))
        .bearer_auth(&app.ingest_token)
        .header("content-type", "application/x-ndjson")
        .body("{\"index\":{}}\n{\"message\":\"refused as well\"}\n")
        .send()
        .await
        .unwrap();
    assert_error(bulk, 400, "invalid_parameter", "refresh must be true, false or wait_for").await;
    assert_eq!(app.search(&[("q", "refused")]).await.total, 0);
}

#[tokio::test]
async fn gzipped_ndjson_is_accepted() {
    let app = spawn_app().await;
    let body = format!("{LINE}\n{}\n", LINE.replace("\"ok\"", "\"second\""));
    let response = app.post_raw(gzip(body.as_bytes()), "application/x-ndjson", Some("gzip")).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.search(&[]).await.total, 2);
}

#[tokio::test]
async fn zstd_ndjson_is_accepted() {
    let app = spawn_app().await;
    let body = format!("{LINE}\n{LINE}\n");
    let compressed = zstd::stream::encode_all(body.as_bytes(), 1).unwrap();
    assert_eq!(app.post_raw(compressed, "application/x-ndjson", Some("zstd")).await.status(), 200);
    assert_eq!(app.search(&[]).await.total, 2);
}

#[tokio::test]
async fn malformed_bodies_get_clear_errors_and_store_nothing() {
    let app = spawn_app().await;
    assert_error(
        app.post_raw(b"[{".to_vec(), "application/json", None).await,
        400,
        "invalid_json",
        "EOF while parsing",
    )
    .await;
    assert_error(
        app.post_raw(LINE.as_bytes().to_vec(), "text/plain", None).await,
        415,
        "unsupported_media_type",
        "text/plain",
    )
    .await;
    assert_error(
        app.post_raw(LINE.as_bytes().to_vec(), "application/x-ndjson", Some("br")).await,
        415,
        "unsupported_encoding",
        "br",
    )
    .await;
    assert_error(
        app.post_raw(b"not gzip".to_vec(), "application/x-ndjson", Some("gzip")).await,
        400,
        "invalid_encoding",
        "gzip",
    )
    .await;
    let missing = r#"[{"timestamp":"2026-11-29T08:00:00Z","message":"no service"}]"#;
    assert_error(
        app.post_raw(missing.as_bytes().to_vec(), "application/json", None).await,
        400,
        "invalid_record",
        "missing field `service`",
    )
    .await;
    let future = LINE.replace("2026-11-29T08:00:00Z", "2262-01-01T00:00:00Z");
    assert_error(
        app.post_raw(future.into_bytes(), "application/x-ndjson", None).await,
        400,
        "invalid_record",
        "in the future",
    )
    .await;
    let ancient = LINE.replace("2026-11-29T08:00:00Z", "1969-07-20T20:17:00Z");
    assert_error(
        app.post_raw(ancient.into_bytes(), "application/x-ndjson", None).await,
        400,
        "invalid_record",
        "out of range",
    )
    .await;

    // One bad line refuses the batch, naming the line; the good lines are not half written.
    let body =
        format!("{LINE}\n{LINE}\n{{\"timestamp\":\"2026-11-29T08:00:00Z\",\"service\":\"api\",\"message\":7}}\n");
    let error = assert_error(
        app.post_raw(body.into_bytes(), "application/x-ndjson", None).await,
        400,
        "invalid_record",
        "line 3",
    )
    .await;
    assert_eq!(error["line"], 3);

    let mut invalid_utf8 = format!("{LINE}\n").into_bytes();
    invalid_utf8.extend_from_slice(b"{\"message\":\"\xc3\x28\"}\n");
    let error =
        assert_error(app.post_raw(invalid_utf8, "application/x-ndjson", None).await, 400, "invalid_json", "UTF-8")
            .await;
    assert_eq!(error["line"], 2);

    assert_eq!(app.search(&[]).await.total, 0, "nothing from a refused batch may be stored");
    // And the server keeps serving.
    assert_eq!(app.post_raw(LINE.as_bytes().to_vec(), "application/x-ndjson", None).await.status(), 200);
}

#[tokio::test]
async fn oversized_and_over_compressed_bodies_are_refused() {
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.logs.max_body_bytes = 4096;
        config.logs.max_decompressed_bytes = 64 * 1024;
    })
    .await;
    let big = format!("{LINE}\n").repeat(100);
    assert_error(
        app.post_raw(big.into_bytes(), "application/x-ndjson", None).await,
        413,
        "payload_too_large",
        "4096 bytes",
    )
    .await;
    // A small gzip body that inflates past the decompressed limit.
    let bomb = gzip(&vec![b' '; 1 << 20]);
    assert!(bomb.len() < 4096);
    assert_error(
        app.post_raw(bomb, "application/x-ndjson", Some("gzip")).await,
        413,
        "payload_too_large",
        "decompressed",
    )
    .await;
    assert_eq!(app.post_raw(LINE.as_bytes().to_vec(), "application/x-ndjson", None).await.status(), 200);
}

#[tokio::test]
async fn too_many_records_in_a_batch_are_refused() {
    let app = spawn_app_with(Db::Sqlite, |config| config.logs.max_batch_records = 2).await;
    let three = format!("{LINE}\n{LINE}\n{LINE}\n");
    assert_error(
        app.post_raw(three.into_bytes(), "application/x-ndjson", None).await,
        413,
        "payload_too_large",
        "more than 2 records",
    )
    .await;
}

#[tokio::test]
async fn ingest_and_search_work_on_postgresql() {
    let app = spawn_app_with(Db::Postgres, |_| {}).await;
    let response =
        app.post_logs(&[record("2026-11-29T08:00:00Z", "api", "warn", "stored with tokens in postgres")]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(app.search(&[("q", "postgres")]).await.total, 1);
}

/// A saturated writer holds appends while it makes room, for `logs.ingest_wait_seconds`, so
/// that a burst is taken rather than refused; past the wait it refuses (429 with `Retry-After`
/// over HTTP) instead of buffering without bound. What it accepted is stored, what it refused
/// is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_writer_queue_holds_appends_for_a_while_then_refuses() {
    use vigil_logstore::{LogStore, LogStoreError, Retention, TantivyLogStore, WriterOptions};
    use vigil_proto::Commit;

    let batch: Vec<_> =
        (0..2000).map(|index| record("2026-11-29T08:00:00Z", "api", "info", &format!("line {index}"))).collect();
    for (wait, all_taken) in [(std::time::Duration::ZERO, false), (std::time::Duration::from_secs(60), true)] {
        let directory = tempfile::tempdir().unwrap();
        let metrics = vigil_backend::telemetry::Metrics::new();
        let options = WriterOptions {
            memory_bytes: 16 << 20,
            queue_batches: 1,
            queue_wait: wait,
            commit_interval: std::time::Duration::from_millis(500),
            commit_idle: std::time::Duration::from_millis(20),
            merge_factor: 8,
            indexing_threads: 1,
            retention: Retention::default(),
        };
        let store = TantivyLogStore::open(directory.path(), options, metrics.log_store()).unwrap();
        let results = futures::future::join_all((0..40).map(|_| store.append(batch.clone(), Commit::WaitFor))).await;
        let accepted = results.iter().filter(|result| result.is_ok()).count();
        let busy = results.iter().filter(|result| matches!(result, Err(LogStoreError::Busy))).count();
        assert_eq!(accepted + busy, 40, "every append either succeeded or was refused as busy");
        if all_taken {
            assert_eq!(accepted, 40, "with time to wait, a queue of one takes 40 batches");
        } else {
            assert!(busy > 0, "without waiting, 40 batches at once overflow a queue of one");
        }
        let page = store.search(vigil_proto::LogQuery::default()).await.unwrap();
        assert_eq!(page.total, accepted as u64 * 2000);
        store.close().await;
    }

    let error: vigil_backend::error::HttpError = LogStoreError::Busy.into();
    let response = axum::response::IntoResponse::into_response(error);
    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "1");
}

/// Records older than `logs.max_age_days` are refused (on every ingest path), and one batch
/// cannot spread over more days than the store opens for it: 300 records on 300 days are
/// refused at once, without a partition made, and another client's batch goes through.
#[tokio::test]
async fn old_records_and_batches_over_many_days_are_refused() {
    let app = spawn_app_with(Db::Sqlite, |config| config.logs.max_age_days = 400).await;
    let now = time::OffsetDateTime::now_utc();
    let at = |days_ago: i64| {
        (now - time::Duration::days(days_ago)).format(&time::format_description::well_known::Rfc3339).unwrap()
    };
    let spread: Vec<_> = (0..300).map(|day| record(&at(day), "api", "info", &format!("day {day}"))).collect();
    let started = std::time::Instant::now();
    let refused = app.post_logs(&spread).await;
    assert_error(refused, 400, "invalid_record", "more than 16 days").await;
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "refused before any index work");
    let partitions = std::fs::read_dir(app.data_dir.join("logs/_all")).map(|entries| entries.count()).unwrap_or(0);
    assert_eq!(partitions, 0, "no partition was created");
    assert_eq!(app.post_logs(&[record(&at(0), "api", "info", "another client")]).await.status(), 200);
    let within: Vec<_> = (0..16).map(|day| record(&at(day), "api", "info", &format!("day {day}"))).collect();
    assert_eq!(app.post_logs(&within).await.status(), 200);

    let app = spawn_app_with(Db::Sqlite, |config| config.logs.max_age_days = 7).await;
    let old = record(&at(8), "api", "info", "eight days old");
    assert_error(app.post_logs(&[old]).await, 400, "invalid_record", "older than logs.max_age_days (7 days)").await;
    // Loki refuses the entry alone and stores the rest, as Loki does.
    let nanos = |days_ago: i64| ((now - time::Duration::days(days_ago)).unix_timestamp_nanos()).to_string();
    let push = serde_json::json!({"streams": [{"stream": {"service_name": "api"},
        "values": [[nanos(8), "too old"], [nanos(0), "fresh"]]}]});
    let response = app
        .client
        .post(app.url(vigil_proto::paths::LOKI_PUSH))
        .query(&[("commit", "wait_for")])
        .bearer_auth(&app.ingest_token)
        .json(&push)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("older than logs.max_age_days"));
    let page = app.search(&[("q", "fresh OR too")]).await;
    assert_eq!(page.records.iter().map(|hit| hit.message.as_str()).collect::<Vec<_>>(), ["fresh"]);
}

/// Fluent Bit's `http` output (`json_lines`, `json`, `json_stream`: the line under `log`, the
/// time as epoch seconds under `date`) goes to the native endpoint with the service as a
/// query parameter; fields beyond the six are kept as attributes instead of refusing the
/// batch, the level is detected from the line, and the agent's records go through as before.
#[tokio::test]
async fn shippers_json_lines_are_taken_by_the_native_endpoint() {
    let app = spawn_app().await;
    let post = |content_type: &'static str, body: &'static str| {
        app.client
            .post(app.url(vigil_proto::paths::LOGS))
            .query(&[("commit", "wait_for"), ("service", "shop"), ("host", "web-7")])
            .bearer_auth(&app.ingest_token)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let lines = "{\"date\":1796116337.496189,\"log\":\"first line of log\"}\n{\"date\":1796116337.496199,\"log\":\"2026-12-01 ERROR second line\",\"stream\":\"stderr\"}\n";
    assert_eq!(post("application/x-ndjson", lines).await.unwrap().status(), 200);
    let json = "[{\"date\":1796116338.1,\"log\":\"from json\"}]";
    assert_eq!(post("application/json", json).await.unwrap().status(), 200);
    let stream = "{\"date\":1796116339.2,\"log\":\"from json_stream one\"}{\"date\":1796116339.3,\"log\":\"from json_stream two\"}";
    assert_eq!(post("application/json", stream).await.unwrap().status(), 200);
    let page = app.search(&[("q", "service:shop AND host:web-7")]).await;
    assert_eq!(page.total, 5);
    let second = app.search(&[("q", "second")]).await.records.remove(0);
    assert_eq!((second.level.as_str(), second.message.as_str()), ("error", "2026-12-01 ERROR second line"));
    assert_eq!(second.attributes["stream"], "stderr");
    assert_eq!(second.timestamp, "2026-12-01T09:12:17.496199Z".parse().unwrap());
    // The agent's six fields, with a detected level when it sent none.
    let agent =
        "{\"timestamp\":\"2026-12-01T09:00:00Z\",\"service\":\"api\",\"message\":\"WARN cache miss ratio high\"}";
    assert_eq!(post("application/x-ndjson", agent).await.unwrap().status(), 200);
    assert_eq!(app.search(&[("q", "service:api AND level:warn")]).await.total, 1);
    // Without a service anywhere, the line is named.
    let response = app
        .client
        .post(app.url(vigil_proto::paths::LOGS))
        .bearer_auth(&app.ingest_token)
        .header("content-type", "application/x-ndjson")
        .body("{\"log\":\"no service\"}\n")
        .send()
        .await
        .unwrap();
    let body = assert_error(response, 400, "invalid_record", "missing field `service`").await;
    assert_eq!(body["line"], 1);
}

/// A flood of concurrent requests (a shipper reading a large file ahead) is held within the
/// ingest memory bound: each request waits for room before its body is read, so all of them
/// are taken and the bytes held never exceed the bound; without time to wait, the excess is
/// answered 429 with `Retry-After`, never dropped silently.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_requests_is_held_within_the_ingest_memory_bound() {
    let line = |index: usize| {
        format!(
            "{{\"timestamp\":\"2026-11-29T08:00:00Z\",\"service\":\"flood\",\"message\":\"line {index} {}\"}}\n",
            "x".repeat(200)
        )
    };
    let body: String = (0..2500).map(line).collect();
    assert!(body.len() > 500_000);
    for (wait, all_taken) in [(30, true), (0, false)] {
        let app = spawn_app_with(Db::Sqlite, |config| {
            config.logs.ingest_memory_bytes = 2 << 20;
            config.logs.ingest_wait_seconds = wait;
        })
        .await;
        let requests = (0..20).map(|_| {
            app.client
                .post(app.url(vigil_proto::paths::LOGS))
                .bearer_auth(&app.ingest_token)
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
        });
        let statuses: Vec<u16> = futures::future::join_all(requests)
            .await
            .into_iter()
            .map(|response| response.unwrap().status().as_u16())
            .collect();
        let budget = &app.state.ingest_budget;
        assert!(budget.peak_bytes() <= 2 << 20, "{} bytes held at once", budget.peak_bytes());
        assert!(budget.peak_bytes() > 1 << 20, "the requests were counted");
        assert!(budget.waited() > 0, "requests waited for room");
        let taken = statuses.iter().filter(|status| **status == 200).count();
        if all_taken {
            assert_eq!(taken, 20, "{statuses:?}");
            eventually(10, "every flooded line searchable", || async {
                (app.search(&[("q", "service:flood"), ("limit", "1")]).await.total == 50_000).then_some(())
            })
            .await;
        } else {
            assert!(taken < 20, "{statuses:?}");
            assert!(statuses.iter().all(|status| *status == 200 || *status == 429), "{statuses:?}");
        }
        assert_eq!(budget.in_use_bytes(), 0, "every request gave its room back");
        let metrics = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
        assert!(metrics.contains("\nvigil_ingest_memory_bytes 0\n"), "{metrics}");
        let waits = format!("\nvigil_ingest_waits_total {}\n", budget.waited());
        assert!(metrics.contains(&waits), "{waits} in {metrics}");
    }
}
