//! Alerting benchmarks against a real Prometheus (`/usr/bin/prometheus`, started here with the
//! remote-write receiver): `cargo bench -p vigil-backend --bench alerts`. Each part runs on a
//! backend of its own (a fresh database), in this process, on loopback.
//!
//! 1. 1,000 PromQL rules every 15 s: 200 series (a counter and a gauge each) pushed through
//!    `POST /api/v1/metrics` and refreshed every 5 s; 1,000 rules of five query shapes, 50 of
//!    them firing (330 instances). Once every rule was evaluated, 5 rounds (75 s) are measured:
//!    the evaluation lag and duration from the evaluator's histograms (differences of their
//!    buckets over the window, quantiles interpolated linearly within a bucket), evaluations
//!    and failures per round, and CPU seconds per round of this process (the backend, plus the
//!    bench's small share: the refresh pushes) and of Prometheus (another process).
//! 2. Firing to webhook: 40 rules `bench_flip{n="k"} > 0` (interval 1 s, no `for`) notify a
//!    webhook integration pointing at a receiver in this process. One flip at a time, a sample
//!    of 1 is pushed at a varied moment of the evaluation second; timed from the push to the
//!    webhook's arrival (an upper bound: up to one interval, and Prometheus' ingestion), and
//!    from the alert's `firing_since` (`GET /api/v1/alerts`: the evaluation's start) to the
//!    arrival.
//! 3. 10,000 firing instances of one rule (`bench_many > 0` over 10,000 series; interval 300 s,
//!    so that no evaluation runs while requests are timed): `GET /api/v1/alerts` and the
//!    server-rendered Alerts page (`GET /alerts`, a session cookie, `accept: text/html`; the
//!    site's assets are not built here, the HTML is complete without them).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_backend::config::Config;
use vigil_backend::state::AppState;
use vigil_proto::alerts::{AlertPage, AlertRule, Notification, NotificationEvent, WebhookBody};
use vigil_proto::auth::Scope;
use vigil_proto::paths;

// The tests' Prometheus launcher; the benchmark does not use its `query`.
#[allow(dead_code)]
#[path = "../tests/support/prometheus.rs"]
mod prometheus;

use prometheus::TestPrometheus;

#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

const RULES: usize = 1000;
const RULE_INTERVAL_SECONDS: u64 = 15;
const MEASURED_ROUNDS: u64 = 5;
/// 20 instances × 10 shards.
const SERIES: usize = 200;
const REFRESH_EVERY: Duration = Duration::from_secs(5);
const FLIPS: usize = 40;
const MANY_INSTANCES: usize = 10_000;
const TIMED_REQUESTS: usize = 20;

const LAG: &str = "vigil_alert_rule_evaluation_lag_seconds";
const DURATION: &str = "vigil_alert_rule_evaluation_duration_seconds";
const EVALUATIONS: &str = "vigil_alert_rule_evaluations_total";
const FAILURES: &str = "vigil_alert_rule_evaluation_failures_total";

/// User plus system CPU time of a process, from `/proc/<pid>/stat` (in USER_HZ, 100 a second).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of the file (utime, stime), counted after the command name.
    (ticks(11) + ticks(12)) / 100.0
}

/// The Prometheus this process started: the child whose command is `prometheus`.
fn prometheus_pid() -> Option<String> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|children| children.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .find(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|comm| comm.trim() == "prometheus"))
}

fn wall_micros() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_micros() as i64)
}

fn micros_between(earlier: i64, later: i64) -> Duration {
    Duration::from_micros(u64::try_from(later - earlier).unwrap_or(0))
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * fraction).round() as usize]
}

/// A histogram's cumulative buckets as the Prometheus text format has them: `(le, count)`.
#[derive(Debug, Clone, Default)]
struct Buckets(Vec<(f64, f64)>);

impl Buckets {
    fn parse(text: &str, name: &str) -> Self {
        let prefix = format!("{name}_bucket{{le=\"");
        let buckets = text
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|rest| {
                let (bound, count) = rest.split_once("\"}")?;
                let bound = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
                Some((bound, count.trim().parse().ok()?))
            })
            .collect();
        Self(buckets)
    }

    /// The observations made since `earlier`.
    fn since(&self, earlier: &Self) -> Self {
        let counts = self
            .0
            .iter()
            .map(|(bound, count)| {
                let before = earlier.0.iter().find(|(other, _)| other == bound).map_or(0.0, |(_, count)| *count);
                (*bound, count - before)
            })
            .collect();
        Self(counts)
    }

    fn count(&self) -> f64 {
        self.0.last().map_or(0.0, |(_, count)| *count)
    }

    /// The quantile, interpolated linearly within its bucket (from 0 for the first); the
    /// largest finite bound when it falls in `+Inf`, as Prometheus' `histogram_quantile`.
    fn quantile(&self, fraction: f64) -> Duration {
        let rank = fraction * self.count();
        let (mut lower, mut below) = (0.0, 0.0);
        for (bound, count) in &self.0 {
            if *count >= rank && *count > below {
                if bound.is_infinite() {
                    return Duration::from_secs_f64(lower);
                }
                return Duration::from_secs_f64(lower + (bound - lower) * (rank - below) / (count - below));
            }
            (lower, below) = (*bound, *count);
        }
        Duration::from_secs_f64(lower)
    }
}

fn counter(text: &str, name: &str) -> f64 {
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The evaluator's metrics at one moment.
struct Snapshot {
    lag: Buckets,
    duration: Buckets,
    evaluations: f64,
    failures: f64,
    own_cpu: f64,
    prometheus_cpu: f64,
    at: Instant,
}

impl Snapshot {
    fn take(state: &AppState, prometheus: Option<&str>) -> Self {
        let text = state.metrics.encode();
        Self {
            lag: Buckets::parse(&text, LAG),
            duration: Buckets::parse(&text, DURATION),
            evaluations: counter(&text, EVALUATIONS),
            failures: counter(&text, FAILURES),
            own_cpu: cpu_seconds("self"),
            prometheus_cpu: prometheus.map_or(0.0, cpu_seconds),
            at: Instant::now(),
        }
    }
}

/// Requests to one backend with an administrator's token.
#[derive(Clone)]
struct Api {
    http: reqwest::Client,
    base: String,
    token: Arc<String>,
}

impl Api {
    async fn new(base: &str, state: &AppState) -> Self {
        let token = state.auth.create_token("bench", Some(Scope::Admin), None, None).await.unwrap().0;
        Self { http: reqwest::Client::new(), base: base.to_owned(), token: Arc::new(token) }
    }

    async fn post(&self, path: &str, body: &Value) -> Value {
        let response =
            self.http.post(format!("{}{path}", self.base)).bearer_auth(self.token.as_str()).json(body).send().await;
        let response = response.expect("request sent");
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "POST {path}: {status}: {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> T {
        let response = self.http.get(format!("{}{path}", self.base)).bearer_auth(self.token.as_str()).send().await;
        let response = response.expect("request sent");
        assert!(response.status().is_success(), "GET {path}: {}", response.status());
        response.json().await.expect("a JSON answer")
    }

    async fn push(&self, series: Vec<Value>) {
        self.post(paths::METRICS_WRITE, &json!({ "series": series })).await;
    }

    async fn create_rule(&self, rule: Value) -> AlertRule {
        serde_json::from_value(self.post(paths::ALERT_RULES, &rule).await).expect("a rule")
    }

    /// Waits until every rule was evaluated at least once.
    async fn all_evaluated(&self, within: Duration) -> Vec<AlertRule> {
        let started = Instant::now();
        loop {
            let rules: Vec<AlertRule> = self.get(paths::ALERT_RULES).await;
            if rules.iter().all(|rule| rule.last_evaluation.is_some()) {
                return rules;
            }
            assert!(started.elapsed() < within, "the rules were not all evaluated within {within:?}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

async fn stop(server: server::Server) {
    server.shutdown.cancel();
    let _ = server.task.await;
}

fn bench_config(dir: &std::path::Path, prometheus: &TestPrometheus) -> Config {
    let mut config = Config::for_tests(dir);
    config.metrics.prometheus_url = prometheus.address.clone();
    config
}

/// The 200 series of part 1 at `at_ms`: `bench_requests_total` grows by a per-series rate from
/// `origin_ms`, `bench_load` is fixed per series.
fn load_series(origin_ms: i64, sample_times: &[i64]) -> Vec<Value> {
    let mut series = Vec::with_capacity(2 * SERIES);
    for index in 0..SERIES {
        let labels = |name: &str| {
            json!({
                "__name__": name,
                "job": "bench",
                "instance": format!("i{}", index % 20),
                "shard": (index / 20).to_string(),
            })
        };
        let rate = (index % 13 + 1) as f64;
        let counter: Vec<(i64, f64)> =
            sample_times.iter().map(|at| (*at, rate * (at - origin_ms) as f64 / 1000.0)).collect();
        let gauge: Vec<(i64, f64)> = sample_times.iter().map(|at| (*at, (index * 37 % 100) as f64)).collect();
        series.push(json!({ "labels": labels("bench_requests_total"), "samples": counter }));
        series.push(json!({ "labels": labels("bench_load"), "samples": gauge }));
    }
    series
}

/// Rule `index` of part 1: five query shapes; 50 of the 1,000 (5 in every 100) fire.
fn load_rule(index: usize) -> Value {
    let fires = (index / 5).is_multiple_of(20);
    let threshold = if fires { -1.0 } else { 1e9 };
    let (shard, instance) = (index % 10, index % 20);
    let expr = match index % 5 {
        0 => format!("sum by (instance) (rate(bench_requests_total{{shard=\"{shard}\"}}[1m])) > {threshold}"),
        1 => format!("max by (shard) (bench_load{{instance=\"i{instance}\"}}) > {threshold}"),
        2 => format!("avg by (job) (bench_load{{shard=\"{shard}\"}}) > {threshold}"),
        3 => format!("count(bench_load{{instance=\"i{instance}\"}} > {threshold}) > 5"),
        _ => format!("sum(rate(bench_requests_total{{instance=\"i{instance}\"}}[1m])) > {threshold}"),
    };
    json!({
        "name": format!("BenchRule{index:04}"),
        "kind": "promql",
        "expr": expr,
        "interval_seconds": RULE_INTERVAL_SECONDS,
        "annotations": { "summary": "{{ $labels.instance }} at {{ $value }}" },
        "channels": [],
    })
}

/// Part 1: 1,000 rules every 15 s.
async fn evaluation_rounds(prometheus: &TestPrometheus) {
    let dir = tempfile::tempdir().unwrap();
    let server = server::start(bench_config(dir.path(), prometheus)).await;
    let api = Api::new(&server.base, &server.state).await;
    let prometheus_pid = prometheus_pid();

    let origin_ms = wall_micros() / 1000 - 60_000;
    let history: Vec<i64> = (0..5).map(|step| origin_ms + step * 15_000).collect();
    api.push(load_series(origin_ms, &history)).await;
    let refreshing = CancellationToken::new();
    let refresher = tokio::spawn({
        let (api, refreshing) = (api.clone(), refreshing.clone());
        async move {
            let mut ticker = tokio::time::interval(REFRESH_EVERY);
            loop {
                tokio::select! {
                    () = refreshing.cancelled() => return,
                    _ = ticker.tick() => api.push(load_series(origin_ms, &[wall_micros() / 1000])).await,
                }
            }
        }
    });

    let creating = Instant::now();
    futures::stream::iter(0..RULES)
        .map(|index| {
            let api = api.clone();
            async move { api.create_rule(load_rule(index)).await }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;
    let created_in = creating.elapsed();
    api.all_evaluated(Duration::from_secs(2 * RULE_INTERVAL_SECONDS)).await;

    let before = Snapshot::take(&server.state, prometheus_pid.as_deref());
    tokio::time::sleep(Duration::from_secs(MEASURED_ROUNDS * RULE_INTERVAL_SECONDS)).await;
    let after = Snapshot::take(&server.state, prometheus_pid.as_deref());
    refreshing.cancel();
    let _ = refresher.await;

    let rounds = after.at.duration_since(before.at).as_secs_f64() / RULE_INTERVAL_SECONDS as f64;
    let (lag, duration) = (after.lag.since(&before.lag), after.duration.since(&before.duration));
    let evaluations = after.evaluations - before.evaluations;
    let rules: Vec<AlertRule> = api.get(paths::ALERT_RULES).await;
    let erring = rules.iter().filter(|rule| rule.last_error.is_some()).count();
    let firing: AlertPage = api.get(&format!("{}?state=firing&limit=1", paths::ALERTS)).await;
    println!(
        "{RULES} PromQL rules every {RULE_INTERVAL_SECONDS} s ({SERIES} series x 2 refreshed every {} s; rules created in {:.1} s; {} alerts firing), {rounds:.1} rounds measured:",
        REFRESH_EVERY.as_secs(),
        created_in.as_secs_f64(),
        firing.total,
    );
    println!(
        "  evaluation lag       p50 {:>8.2?}  p99 {:>8.2?}  ({:.0} evaluations; histogram buckets, interpolated)",
        lag.quantile(0.5),
        lag.quantile(0.99),
        lag.count()
    );
    println!(
        "  evaluation duration  p50 {:>8.2?}  p99 {:>8.2?}  (histogram buckets, interpolated)",
        duration.quantile(0.5),
        duration.quantile(0.99)
    );
    println!(
        "  evaluations per round {:.0}; failures {:.0} in the window, {erring} rules with an error at the end",
        evaluations / rounds,
        after.failures - before.failures
    );
    let prometheus_cpu = match prometheus_pid {
        Some(_) => format!("{:.2} CPU s", (after.prometheus_cpu - before.prometheus_cpu) / rounds),
        None => "not found".to_owned(),
    };
    println!(
        "  CPU per round: this process {:.2} s (backend, and the bench's refresh pushes), Prometheus {prometheus_cpu}",
        (after.own_cpu - before.own_cpu) / rounds
    );
    stop(server).await;
}

/// What the loopback receiver got: when, and the notification (each alert is told on its own).
type Received = (i64, Notification);

/// Notes each notification's arrival, first thing.
async fn receive(
    axum::extract::State(sender): axum::extract::State<mpsc::Sender<Received>>,
    axum::Json(body): axum::Json<WebhookBody>,
) -> axum::http::StatusCode {
    let arrived = wall_micros();
    for notification in body.notifications {
        let _ = sender.try_send((arrived, notification));
    }
    axum::http::StatusCode::OK
}

/// A webhook receiver on a free loopback port: its URL, and what it receives.
async fn start_receiver() -> (String, mpsc::Receiver<Received>) {
    let (sender, receiver) = mpsc::channel::<Received>(1024);
    let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(sender);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/hook"), receiver)
}

fn flip_series(flip: usize, value: f64, at_ms: i64) -> Value {
    json!({
        "labels": { "__name__": "bench_flip", "n": flip.to_string() },
        "samples": [[at_ms, value]],
    })
}

/// Part 2: from the flip, and from `firing_since`, to the webhook.
async fn firing_to_webhook(prometheus: &TestPrometheus) {
    let dir = tempfile::tempdir().unwrap();
    let server = server::start(bench_config(dir.path(), prometheus)).await;
    let api = Api::new(&server.base, &server.state).await;
    let (hook_url, mut received) = start_receiver().await;
    api.post(
        paths::INTEGRATIONS,
        &json!({ "name": "bench-webhook", "kind": "webhook", "settings": { "url": hook_url } }),
    )
    .await;
    let now_ms = wall_micros() / 1000;
    api.push((0..FLIPS).map(|flip| flip_series(flip, 0.0, now_ms)).collect()).await;
    for flip in 0..FLIPS {
        api.create_rule(json!({
            "name": format!("BenchFlip{flip:02}"),
            "kind": "promql",
            "expr": format!("bench_flip{{n=\"{flip}\"}} > 0"),
            "interval_seconds": 1,
            "for_seconds": 0,
            "channels": ["bench-webhook"],
        }))
        .await;
    }
    api.all_evaluated(Duration::from_secs(10)).await;

    // Per flip: pushed, arrived (µs), the alert's fingerprint.
    let mut flips: Vec<(i64, i64, String)> = Vec::new();
    for flip in 0..FLIPS {
        // Spread the pushes over the evaluation second.
        tokio::time::sleep(Duration::from_millis((flip as u64 * 617) % 1000)).await;
        let pushed = wall_micros();
        api.push(vec![flip_series(flip, 1.0, pushed / 1000)]).await;
        let wanted = flip.to_string();
        let (arrived, body) = tokio::time::timeout(Duration::from_secs(15), async {
            loop {
                let (arrived, body) = received.recv().await.expect("the receiver runs");
                if body.event == NotificationEvent::Firing && body.alert.labels.get("n") == Some(&wanted) {
                    return (arrived, body);
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no webhook within 15 s of flip {flip}"));
        flips.push((pushed, arrived, body.alert.fingerprint));
    }

    let firing: AlertPage = api.get(&format!("{}?state=firing&limit=1000", paths::ALERTS)).await;
    let firing_since: HashMap<&str, i64> = firing
        .alerts
        .iter()
        .filter_map(|alert| Some((alert.fingerprint.as_str(), alert.firing_since?.as_unix_nanos() / 1000)))
        .collect();
    let mut from_push: Vec<Duration> =
        flips.iter().map(|(pushed, arrived, _)| micros_between(*pushed, *arrived)).collect();
    let mut from_firing: Vec<Duration> = flips
        .iter()
        .map(|(_, arrived, fingerprint)| {
            let since = firing_since.get(fingerprint.as_str()).expect("the flipped alert fires");
            micros_between(*since, *arrived)
        })
        .collect();
    println!("firing to webhook ({FLIPS} alerts, rules every 1 s, webhook on loopback):");
    println!(
        "  push of the flipping sample to webhook  p50 {:>8.2?}  p95 {:>8.2?}  (includes up to 1 s of interval)",
        percentile(&mut from_push, 0.5),
        percentile(&mut from_push, 0.95)
    );
    println!(
        "  firing_since to webhook                 p50 {:>8.2?}  p95 {:>8.2?}",
        percentile(&mut from_firing, 0.5),
        percentile(&mut from_firing, 0.95)
    );
    stop(server).await;
}

/// Sends `count` requests one at a time; their durations to the last byte, and the last body.
async fn timed(count: usize, request: impl Fn() -> reqwest::RequestBuilder) -> (Vec<Duration>, String) {
    let mut samples = Vec::with_capacity(count);
    let mut last = String::new();
    for _ in 0..count {
        let started = Instant::now();
        let response = request().send().await.expect("request sent");
        let status = response.status();
        last = response.text().await.expect("a body");
        samples.push(started.elapsed());
        assert!(status.is_success(), "{status}: {}", last.chars().take(300).collect::<String>());
    }
    (samples, last)
}

/// Part 3: the alerts list and page with 10,000 firing instances.
async fn many_firing(prometheus: &TestPrometheus) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = bench_config(dir.path(), prometheus);
    config.metrics.max_series = 2 * MANY_INSTANCES;
    let server = server::start(config).await;
    let api = Api::new(&server.base, &server.state).await;
    let now_ms = wall_micros() / 1000;
    let series: Vec<Value> = (0..MANY_INSTANCES)
        .map(|index| {
            json!({
                "labels": { "__name__": "bench_many", "job": "bench", "i": index.to_string() },
                "samples": [[now_ms, 1.0]],
            })
        })
        .collect();
    api.push(series).await;
    let created = Instant::now();
    let rule = api
        .create_rule(json!({
            "name": "BenchMany",
            "kind": "promql",
            "expr": "bench_many > 0",
            "interval_seconds": 300,
            "for_seconds": 0,
            "annotations": { "summary": "instance {{ $labels.i }} is up" },
            "channels": [],
        }))
        .await;
    let rule_path = paths::ALERT_RULE.replace("{id}", &rule.id.to_string());
    let evaluated = loop {
        let rule: AlertRule = api.get(&rule_path).await;
        if rule.last_evaluation.is_some() {
            break rule;
        }
        assert!(created.elapsed() < Duration::from_secs(150), "the rule was not evaluated within 150 s");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let waited = created.elapsed();
    assert_eq!(evaluated.last_error, None, "the rule's evaluation failed");
    let firing: AlertPage = api.get(&format!("{}?state=firing&limit=1", paths::ALERTS)).await;
    assert_eq!(firing.total as usize, MANY_INSTANCES, "firing instances");
    println!(
        "{MANY_INSTANCES} firing instances of one rule (its first evaluation took {:.1} s, listed {:.1} s after the rule was created; none runs while timed):",
        evaluated.last_duration_ms.unwrap_or(0) as f64 / 1000.0,
        waited.as_secs_f64()
    );

    let list_url = format!("{}{}", api.base, paths::ALERTS);
    let (mut samples, last) = timed(TIMED_REQUESTS, || api.http.get(&list_url).bearer_auth(api.token.as_str())).await;
    let listed: AlertPage = serde_json::from_str(&last).expect("alerts");
    assert_eq!((listed.total as usize, listed.alerts.len()), (MANY_INSTANCES, 100));
    println!(
        "  GET /api/v1/alerts (the first page of 100 of {MANY_INSTANCES}, with the counts)  p50 {:>8.2?}  p95 {:>8.2?}  ({TIMED_REQUESTS} requests, {:.3} MB of JSON)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.95),
        last.len() as f64 / 1e6
    );

    let login = json!({ "username": "admin", "password": Config::TEST_ADMIN_PASSWORD });
    let response = api.http.post(format!("{}{}", api.base, paths::AUTH_LOGIN)).json(&login).send().await.unwrap();
    assert!(response.status().is_success(), "sign-in: {}", response.status());
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ");
    let page_url = format!("{}/alerts", api.base);
    let (mut samples, last) =
        timed(TIMED_REQUESTS, || api.http.get(&page_url).header("cookie", &cookie).header("accept", "text/html")).await;
    // The rows rendered: the alerts table's and the rules table's, with their headers.
    let rows = last.matches("<tr").count();
    println!(
        "  GET /alerts (page, SSR)     p50 {:>8.2?}  p95 {:>8.2?}  ({TIMED_REQUESTS} requests, {:.1} MB of HTML, {rows} table rows)",
        percentile(&mut samples, 0.5),
        percentile(&mut samples, 0.95),
        last.len() as f64 / 1e6,
    );
    stop(server).await;
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    let prometheus = TestPrometheus::start("").await;
    evaluation_rounds(&prometheus).await;
    firing_to_webhook(&prometheus).await;
    many_firing(&prometheus).await;
    println!("(whole benchmark: {:.0} s)", started.elapsed().as_secs_f64());
}
