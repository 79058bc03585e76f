//! Scraping over HTTP: the OpenMetrics suite served by a real HTTP server as a target would
//! serve it, the text format, failures, and the labels Prometheus gives every target.

use std::path::Path;
use std::sync::{Arc, Mutex};

use axum::http::header::CONTENT_TYPE;
use vigil_agent::buffer::{Buffer, WhenFull};
use vigil_agent::config::ScrapeConfig;
use vigil_agent::sources::scrape::Target;
use vigil_agent::stats::ScrapeStats;
use vigil_proto::metrics::SeriesSamples;

/// A target serving whatever page and content type the test sets.
struct Server {
    address: String,
    page: Arc<Mutex<(String, Vec<u8>)>>,
}

async fn serve() -> Server {
    let page = Arc::new(Mutex::new((String::new(), Vec::new())));
    let shared = page.clone();
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (content_type, body) = shared.lock().unwrap().clone();
            async move { ([(CONTENT_TYPE, content_type)], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Server { address, page }
}

fn target(server: &Server, directory: &Path) -> Target {
    let buffer = Arc::new(Buffer::open(directory, 1 << 20, WhenFull::Block).unwrap());
    let mut config = ScrapeConfig::new("app", &format!("http://{}/metrics", server.address));
    config.labels.insert("team".to_owned(), "payments".to_owned());
    Target::new(config, buffer, Arc::new(ScrapeStats::default())).unwrap()
}

fn value_of(series: &[SeriesSamples], name: &str) -> Option<f64> {
    series.iter().find(|series| series.labels["__name__"] == name).map(|series| series.samples[0].1.0)
}

#[tokio::test]
async fn the_openmetrics_suite_over_http_is_scraped_exactly_when_valid() {
    let server = serve().await;
    let directory = tempfile::tempdir().unwrap();
    let target = target(&server, directory.path());
    let manifest_dir = std::env::var_os("CARGO_MANIFEST_DIR").expect("tests run through cargo");
    let cases = Path::new(&manifest_dir).join("tests/data/openmetrics");
    let mut checked = 0;
    for case in std::fs::read_dir(cases).unwrap() {
        let case = case.unwrap().path();
        if !case.is_dir() {
            continue;
        }
        let verdict: serde_json::Value =
            serde_json::from_slice(&std::fs::read(case.join("test.json")).unwrap()).unwrap();
        *server.page.lock().unwrap() = (
            "application/openmetrics-text; version=1.0.0; charset=utf-8".to_owned(),
            std::fs::read(case.join("metrics")).unwrap(),
        );
        let series = target.scrape_once().await;
        let up = value_of(&series, "up").unwrap();
        assert_eq!(up == 1.0, verdict["shouldParse"].as_bool().unwrap(), "{}", case.display());
        checked += 1;
    }
    assert_eq!(checked, 211);
}

#[tokio::test]
async fn a_text_page_gets_the_target_labels_and_prometheus_extra_series() {
    let server = serve().await;
    let directory = tempfile::tempdir().unwrap();
    let target = target(&server, directory.path());
    let page = "# TYPE http_requests_total counter\nhttp_requests_total{code=\"200\",job=\"inner\"} 42\nqueue_depth 3 1795939200000\n";
    *server.page.lock().unwrap() = ("text/plain; version=0.0.4".to_owned(), page.as_bytes().to_vec());
    let series = target.scrape_once().await;
    let requests = series.iter().find(|series| series.labels["__name__"] == "http_requests_total").unwrap();
    assert_eq!(requests.labels["job"], "app");
    assert_eq!(requests.labels["exported_job"], "inner", "a clashing label is kept as exported_<name>");
    assert_eq!(requests.labels["instance"], server.address);
    assert_eq!(requests.labels["team"], "payments");
    assert_eq!(requests.samples[0].1.0, 42.0);
    let queue = series.iter().find(|series| series.labels["__name__"] == "queue_depth").unwrap();
    assert_eq!(queue.samples[0].0, 1_795_939_200_000, "the page's own timestamp is kept");
    assert_eq!(value_of(&series, "up"), Some(1.0));
    assert_eq!(value_of(&series, "scrape_samples_scraped"), Some(2.0));
    assert!(value_of(&series, "scrape_duration_seconds").unwrap() > 0.0);

    // A broken page, an error status and an unreachable target are `up 0`, nothing else.
    *server.page.lock().unwrap() = ("text/plain".to_owned(), b"http_requests_total{code=200} 1\n".to_vec());
    let series = target.scrape_once().await;
    assert_eq!((value_of(&series, "up"), series.len()), (Some(0.0), 3));
    let directory = tempfile::tempdir().unwrap();
    let config = ScrapeConfig::new("gone", "http://127.0.0.1:1/metrics");
    let buffer = Arc::new(Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap());
    let stats = Arc::new(ScrapeStats::default());
    let gone = Target::new(config, buffer, stats.clone()).unwrap();
    assert_eq!(value_of(&gone.scrape_once().await, "up"), Some(0.0));
    assert!(stats.last_error.lock().unwrap().is_some());
}
