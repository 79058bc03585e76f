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
    assert_error(app.search_raw(&[("q", "service:(")]).await, 400, "invalid_query", "Syntax Error").await;
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
