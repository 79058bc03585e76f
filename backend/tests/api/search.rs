use crate::helpers::{TestApp, assert_error, record, spawn_app};

async fn seeded() -> TestApp {
    let app = spawn_app().await;
    let mut checkout = record("2026-11-29T08:00:02Z", "checkout", "error", "payment provider timed out");
    checkout.attributes.insert("region".to_owned(), serde_json::json!("eu-west"));
    checkout.attributes.insert("order".to_owned(), serde_json::json!(42));
    let records = [
        record("2026-11-29T08:00:00Z", "api", "info", "GET /products 200"),
        record("2026-11-29T08:00:01Z", "api", "warn", "GET /cart slow response"),
        checkout,
        record("2026-11-29T08:00:03Z", "api", "error", "GET /cart 500 upstream timed out"),
    ];
    assert_eq!(app.post_logs(&records).await.status(), 200);
    app
}

fn messages(page: &vigil_proto::LogPage) -> Vec<&str> {
    page.records.iter().map(|record| record.message.as_str()).collect()
}

#[tokio::test]
async fn results_come_newest_first_with_a_total() {
    let app = seeded().await;
    let page = app.search(&[("limit", "2")]).await;
    assert_eq!(page.total, 4);
    assert_eq!(messages(&page), ["GET /cart 500 upstream timed out", "payment provider timed out"]);
}

#[tokio::test]
async fn full_text_and_field_filters_combine() {
    let app = seeded().await;
    assert_eq!(app.search(&[("q", "timed out")]).await.total, 2);
    assert_eq!(messages(&app.search(&[("q", "timed AND service:api")]).await), ["GET /cart 500 upstream timed out"]);
    assert_eq!(app.search(&[("q", "level:error")]).await.total, 2);
    assert_eq!(app.search(&[("q", "host:host-a AND level:warn")]).await.total, 1);
    assert_eq!(messages(&app.search(&[("q", "attributes.region:eu-west")]).await), ["payment provider timed out"]);
    assert_eq!(app.search(&[("q", "attributes.order:42")]).await.total, 1);
    assert_eq!(app.search(&[("q", "\"cart slow\"")]).await.total, 1);
    assert_eq!(app.search(&[("q", "nothing-matches-this")]).await.total, 0);
}

#[tokio::test]
async fn the_time_range_is_start_inclusive_and_end_exclusive() {
    let app = seeded().await;
    let page = app.search(&[("start", "2026-11-29T08:00:01Z"), ("end", "2026-11-29T08:00:03Z")]).await;
    assert_eq!(messages(&page), ["payment provider timed out", "GET /cart slow response"]);
    // Unix nanoseconds work as well as RFC 3339.
    let page = app.search(&[("start", "1795939203000000000")]).await;
    assert_eq!(messages(&page), ["GET /cart 500 upstream timed out"]);
}

#[tokio::test]
async fn bad_queries_and_parameters_get_400() {
    let app = seeded().await;
    assert_error(app.search_raw(&[("q", "service:(")]).await, 400, "invalid_query", "syntax error at position").await;
    assert_error(app.search_raw(&[("q", "nosuchfield:x")]).await, 400, "invalid_query", "nosuchfield").await;
    assert_error(app.search_raw(&[("start", "yesterday")]).await, 400, "invalid_parameter", "yesterday").await;
    assert_error(app.search_raw(&[("limit", "0")]).await, 400, "invalid_parameter", "limit").await;
    assert_error(app.search_raw(&[("limit", "100000")]).await, 400, "invalid_parameter", "limit").await;
    assert_error(
        app.search_raw(&[("start", "2026-11-29T09:00:00Z"), ("end", "2026-11-29T08:00:00Z")]).await,
        400,
        "invalid_parameter",
        "start must be before end",
    )
    .await;
}

#[tokio::test]
async fn invalid_queries_name_the_position() {
    let app = seeded().await;
    let body =
        assert_error(app.search_raw(&[("q", "level:error AND (timeout")]).await, 400, "invalid_query", "position")
            .await;
    assert!(body["position"].as_u64().is_some(), "{body}");
}

#[tokio::test]
async fn cursor_pages_neither_skip_nor_repeat_under_concurrent_ingest() {
    let app = spawn_app().await;
    // 60 records share one timestamp, so that pages split inside a run of equal timestamps.
    let mut records: Vec<_> =
        (0..60).map(|index| record("2026-11-29T08:00:00Z", "api", "info", &format!("same {index}"))).collect();
    records.extend((0..90).map(|index| {
        let timestamp = format!("2026-11-29T07:{:02}:{:02}Z", index / 60, index % 60);
        record(&timestamp, "api", "info", &format!("older {index}"))
    }));
    assert_eq!(app.post_logs(&records).await.status(), 200);

    let writer = {
        let app_client = app.client.clone();
        let url = app.url(vigil_proto::paths::LOGS);
        let token = app.ingest_token.clone();
        tokio::spawn(async move {
            for round in 0..20 {
                let batch = [
                    record("2026-11-29T09:00:00Z", "api", "info", &format!("newer {round}")),
                    record("2026-11-29T08:00:00Z", "api", "info", &format!("late same {round}")),
                ];
                let response = app_client.post(&url).bearer_auth(&token).json(&batch).send().await.unwrap();
                assert_eq!(response.status(), 200);
            }
        })
    };

    let mut seen = std::collections::HashSet::new();
    let mut messages = Vec::new();
    let mut cursor: Option<String> = None;
    let end = "2026-11-29T08:30:00Z";
    loop {
        let mut params = vec![("limit", "25"), ("end", end)];
        if let Some(cursor) = &cursor {
            params.push(("cursor", cursor.as_str()));
        }
        let page = app.search(&params).await;
        for hit in &page.records {
            assert!(seen.insert(hit.id), "record {} repeated", hit.id);
            messages.push(hit.message.clone());
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    writer.await.unwrap();
    for original in &records {
        assert!(messages.contains(&original.message), "{} was skipped", original.message);
    }
    // Newest first, and by sequence within one timestamp.
    let ids: Vec<_> = seen.iter().copied().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    assert!(ids.len() >= records.len());
    assert!(
        messages.iter().position(|message| message == "same 59")
            < messages.iter().position(|message| message == "same 0")
    );
}

#[tokio::test]
async fn the_histogram_counts_per_bucket_and_level() {
    let app = seeded().await;
    let response = app
        .read(
            vigil_proto::paths::LOGS_HISTOGRAM,
            &[("start", "2026-11-29T08:00:00Z"), ("end", "2026-11-29T08:00:04Z"), ("interval", "2s")],
        )
        .await;
    assert_eq!(response.status(), 200);
    let histogram: vigil_proto::LogHistogram = response.json().await.unwrap();
    assert_eq!(histogram.interval_ms, 2000);
    assert_eq!(histogram.buckets.len(), 2);
    let counts = |index: usize| histogram.buckets[index].counts.clone().into_iter().collect::<Vec<_>>();
    assert_eq!(counts(0), [("info".to_owned(), 1), ("warn".to_owned(), 1)]);
    assert_eq!(counts(1), [("error".to_owned(), 2)]);
    assert_eq!(histogram.buckets[1].start.to_rfc3339(), "2026-11-29T08:00:02Z");

    // Without an interval, one is chosen from the range; a query narrows the counts.
    let chosen: vigil_proto::LogHistogram = app
        .read(
            vigil_proto::paths::LOGS_HISTOGRAM,
            &[("q", "level:error"), ("start", "2026-11-29T07:00:00Z"), ("end", "2026-11-29T09:00:00Z")],
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(chosen.interval_ms, 120_000);
    assert_eq!(chosen.buckets.iter().map(vigil_proto::HistogramBucket::total).sum::<u64>(), 2);

    let too_fine = app
        .read(
            vigil_proto::paths::LOGS_HISTOGRAM,
            &[("start", "2026-11-29T07:00:00Z"), ("end", "2026-11-29T09:00:00Z"), ("interval", "1s")],
        )
        .await;
    assert_error(too_fine, 400, "invalid_parameter", "buckets").await;

    // The widest range there is: bucketed without overflowing, every record counted once.
    let widest = [("start", "1970-01-01T00:00:00Z"), ("end", "2262-04-11T00:00:00Z")];
    let response = app.read(vigil_proto::paths::LOGS_HISTOGRAM, &widest).await;
    assert_eq!(response.status(), 200);
    let histogram: vigil_proto::LogHistogram = response.json().await.unwrap();
    assert!((1..=60).contains(&histogram.buckets.len()), "{} buckets", histogram.buckets.len());
    assert_eq!(histogram.buckets.iter().map(vigil_proto::HistogramBucket::total).sum::<u64>(), 4);
    let too_fine = app.read(vigil_proto::paths::LOGS_HISTOGRAM, &[widest[0], widest[1], ("interval", "1d")]).await;
    assert_error(too_fine, 400, "invalid_parameter", "buckets").await;
}

#[tokio::test]
async fn fields_list_the_most_frequent_values() {
    let app = seeded().await;
    let values: vigil_proto::FieldValues = app.read(vigil_proto::paths::LOGS_FIELDS, &[]).await.json().await.unwrap();
    let pairs = |values: &[vigil_proto::FieldValue]| {
        values.iter().map(|value| (value.value.clone(), value.count)).collect::<Vec<_>>()
    };
    assert_eq!(pairs(&values.service), [("api".to_owned(), 3), ("checkout".to_owned(), 1)]);
    assert_eq!(pairs(&values.level), [("error".to_owned(), 2), ("info".to_owned(), 1), ("warn".to_owned(), 1)]);
    assert_eq!(pairs(&values.host), [("host-a".to_owned(), 4)]);
}

#[tokio::test]
async fn context_shows_the_lines_around_a_record_from_its_source() {
    let app = spawn_app().await;
    let mut records: Vec<_> = (0..9)
        .map(|index| record(&format!("2026-11-29T08:00:0{index}Z"), "api", "info", &format!("line {index}")))
        .collect();
    // Another service in between is not part of the context.
    records.push(record("2026-11-29T08:00:04Z", "worker", "info", "elsewhere"));
    assert_eq!(app.post_logs(&records).await.status(), 200);
    let anchor = app.search(&[("q", "\"line 4\"")]).await.records[0].id.to_string();
    let get = |params: Vec<(&'static str, String)>| {
        app.client.get(app.url(vigil_proto::paths::LOGS_CONTEXT)).bearer_auth(&app.read_token).query(&params).send()
    };
    let context: vigil_proto::LogContext =
        get(vec![("id", anchor.clone()), ("before", "2".into()), ("after", "3".into())])
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let messages = |hits: &[vigil_proto::LogHit]| hits.iter().map(|hit| hit.message.clone()).collect::<Vec<_>>();
    assert_eq!(messages(&context.before), ["line 2", "line 3"]);
    assert_eq!(context.record.message, "line 4");
    assert_eq!(messages(&context.after), ["line 5", "line 6", "line 7"]);

    assert_error(get(vec![("id", "1-1".into())]).await.unwrap(), 404, "not_found", "1-1").await;
    assert_error(get(vec![("id", "nonsense".into())]).await.unwrap(), 400, "invalid_parameter", "nonsense").await;
}

/// Nested parentheses once took time that doubled per level, on the async workers. Queries are
/// bounded (length, nesting) and parsed on the blocking pool; the deepest allowed query
/// answers at once on every path that parses one, and the server stays responsive meanwhile.
#[tokio::test]
async fn deeply_nested_and_long_queries_are_bounded_on_every_path() {
    use vigil_proto::paths;
    let app = seeded().await;
    let nested = |depth: usize| format!("{}timed{}", "(".repeat(depth), ")".repeat(depth));
    let deepest = nested(32);
    let range = [("start", "2026-11-29T07:00:00Z"), ("end", "2026-11-29T09:00:00Z")];
    let params = [("q", deepest.as_str())];
    let searches = (0..4).map(|_| app.search_raw(&params));
    let all = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        let (answers, health) =
            tokio::join!(futures::future::join_all(searches), app.client.get(app.url(paths::HEALTHZ)).send());
        assert_eq!(health.unwrap().status(), 200);
        answers
    })
    .await
    .expect("the deepest allowed query answers quickly");
    for answer in all {
        assert_eq!(answer.status(), 200);
    }
    let too_deep = nested(33);
    let too_long = "timed ".repeat(700);
    for (path, extra) in
        [(paths::LOGS_SEARCH, &[][..]), (paths::LOGS_HISTOGRAM, &range[..]), (paths::LOGS_FIELDS, &[][..])]
    {
        for (q, needle) in [(too_deep.as_str(), "deeper than 32 levels"), (too_long.as_str(), "longer than 4096 bytes")]
        {
            let mut params = vec![("q", q)];
            params.extend_from_slice(extra);
            assert_error(app.read(path, &params).await, 400, "invalid_query", needle).await;
        }
    }
    // A page load with it renders the refusal.
    let admin = app.admin_session().await;
    let page = app
        .with_session(
            reqwest::Method::GET,
            &format!("/logs?q={}", too_deep.replace('(', "%28").replace(')', "%29")),
            &admin,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("deeper than 32 levels"), "the page shows why");
    // The live tail refuses it before the upgrade.
    let tail = app.read(paths::LOGS_TAIL, &[("q", too_deep.as_str())]).await;
    assert_error(tail, 400, "invalid_query", "deeper than 32 levels").await;
    // Paths with slashes are queries, and a query the schema cannot answer is the caller's
    // mistake, not a server error.
    assert_eq!(app.search_raw(&[("q", "/api/")]).await.status(), 200);
    assert_error(app.search_raw(&[("q", "message:*")]).await, 400, "invalid_query", "cannot be answered").await;
}

/// As Elasticsearch's `track_total_hits`: matches are counted up to 1,000 unless asked, and
/// a count that stopped says so (`total_relation: gte`); the page is the same either way.
#[tokio::test]
async fn counts_stop_at_the_asked_bound_and_say_at_least() {
    let app = spawn_app().await;
    let start = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    let records: Vec<_> = (0..2_400)
        .map(|index| {
            let at = (start + time::Duration::milliseconds(index * 100))
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            let word = if index % 200 == 7 { "rare" } else { "common" };
            record(&at, "api", "info", &format!("{word} line {index}"))
        })
        .collect();
    for batch in records.chunks(1200) {
        assert_eq!(app.post_logs(batch).await.status(), 200);
    }
    let relation = |page: &vigil_proto::LogPage| page.total_relation;
    use vigil_proto::TotalRelation::{Eq, Gte};

    let default = app.search_raw(&[("q", "common"), ("limit", "5")]).await;
    assert_eq!(default.status(), 200);
    let bounded: vigil_proto::LogPage = default.json().await.unwrap();
    assert_eq!(relation(&bounded), Gte);
    assert!((1_000..=2_388).contains(&bounded.total), "{}", bounded.total);
    assert!(bounded.next_cursor.is_some());
    assert_eq!(messages(&bounded)[0], "common line 2399");
    let all = app.search(&[("q", "common"), ("limit", "5"), ("track_total_hits", "true")]).await;
    assert_eq!((all.total, relation(&all)), (2_388, Eq));
    assert_eq!(messages(&all), messages(&bounded));
    let fifty = app.search(&[("q", "common"), ("limit", "5"), ("track_total_hits", "50")]).await;
    assert_eq!(relation(&fifty), Gte);
    assert!((50..=2_388).contains(&fifty.total), "{}", fifty.total);
    // Not counting still says whether there is a next page.
    let none = app.search(&[("q", "common"), ("limit", "5"), ("track_total_hits", "false")]).await;
    assert_eq!(relation(&none), Gte);
    assert!(none.total > 5 && none.next_cursor.is_some(), "{}", none.total);
    // Fewer matches than the bound are all counted.
    let rare = app.search(&[("q", "rare"), ("limit", "5"), ("track_total_hits", "50")]).await;
    assert_eq!((rare.total, relation(&rare)), (12, Eq));
    assert_eq!(messages(&rare)[0], "rare line 2207");

    assert_error(app.search_raw(&[("track_total_hits", "maybe")]).await, 400, "invalid_parameter", "track_total_hits")
        .await;
    assert_error(app.search_raw(&[("track_total_hits", "-3")]).await, 400, "invalid_parameter", "track_total_hits")
        .await;
}
