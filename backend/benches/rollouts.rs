//! Rollout benchmarks: `cargo bench -p vigil-backend --bench rollouts`. A backend in this
//! process with the default `[rollouts]` settings (the runner ticks every 500 ms), on
//! loopback.
//!
//! 1. From a gate's failing evaluation to the rollback's trigger at the provider: services
//!    deploying through the generic webhook to a receiver in this process, each with a log
//!    gate (`level:error AND service:<name>` below 5 lines a minute, every second, no failure
//!    allowed). Once a deploy is being analysed, a burst of error lines is ingested (answered
//!    once searchable); the time is taken from the failing evaluation (its timeline entry) to
//!    the arrival of the rollback's webhook at the receiver, and from the burst's answer too.
//! 2. 50 services rolling out at once through the agent provider: 2 hosts each, one at a time,
//!    a log gate judging each host for 2 s. The 100 hosts are stand-ins in this process that
//!    speak the agent's protocol (a heartbeat, then every second `GET /api/v1/agents/deploys`,
//!    a `running` report, 200 ms of "deploy", a `succeeded` report). The Rollouts page is
//!    stood in for by what it does: the server function its history calls
//!    (`/ui/fn/read/rollouts`, with a session cookie), every 500 ms as the page refreshes.
//!    Five viewers refresh at phases spread over the interval. A transition is visible to a
//!    viewer once a refresh returns the rollout changed at or after it: the time from each
//!    timeline entry to the first refresh of each viewer that shows it. CPU seconds of this
//!    process over the run (the backend, and the small share of the stand-ins and the poller).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};
use vigil_backend::config::Config;
use vigil_backend::state::AppState;
use vigil_proto::agents::{DeployOrders, DeployReport, DeployStatus};
use vigil_proto::auth::Scope;
use vigil_proto::paths;
use vigil_proto::rollouts::{DeployWebhookBody, Rollout, RolloutDetail, RolloutKind, RolloutPage, RolloutState};

#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

const GATE_ROLLBACKS: usize = 20;
const SERVICES: usize = 50;
const HOSTS_PER_SERVICE: usize = 2;
/// As the Rollouts page refreshes.
const UI_REFRESH: Duration = Duration::from_millis(500);
const HOST_POLL: Duration = Duration::from_secs(1);
/// Viewers of the Rollouts page at once.
const VIEWERS: usize = 5;
const SIGNING_KEY: &str = "the bench's signing key";

fn wall_millis() -> f64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0.0, |since| since.as_secs_f64() * 1000.0)
}

fn percentile(samples: &mut [f64], fraction: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[((samples.len() as f64 - 1.0) * fraction).round() as usize]
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

    async fn detail(&self, id: i64) -> RolloutDetail {
        self.get(&paths::ROLLOUT.replace("{id}", &id.to_string())).await
    }
}

/// What the receiver got: by rollout id, when (Unix milliseconds) and what.
#[derive(Default)]
struct Received {
    arrivals: Mutex<HashMap<i64, (f64, DeployWebhookBody)>>,
    changed: Notify,
}

impl Received {
    /// Waits for the webhook of the first rollout `matching`.
    async fn wait(&self, matching: impl Fn(&DeployWebhookBody) -> bool) -> (f64, DeployWebhookBody) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let notified = self.changed.notified();
            if let Some(found) = self.arrivals.lock().await.values().find(|(_, body)| matching(body)).cloned() {
                return found;
            }
            assert!(Instant::now() < deadline, "no webhook arrived in 30 s");
            let _ = tokio::time::timeout(Duration::from_millis(100), notified).await;
        }
    }
}

async fn receiver() -> (String, Arc<Received>) {
    async fn receive(
        axum::extract::State(received): axum::extract::State<Arc<Received>>,
        axum::Json(body): axum::Json<DeployWebhookBody>,
    ) -> axum::http::StatusCode {
        let at = wall_millis();
        received.arrivals.lock().await.insert(body.rollout_id, (at, body));
        received.changed.notify_waiters();
        axum::http::StatusCode::OK
    }
    let received = Arc::new(Received::default());
    let app = axum::Router::new().route("/deploy", axum::routing::post(receive)).with_state(received.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{address}/deploy"), received)
}

/// Waits until the rollout is in `state`, polling every 20 ms.
async fn reaches(api: &Api, id: i64, state: RolloutState) -> RolloutDetail {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let detail = api.detail(id).await;
        if detail.rollout.state == state {
            return detail;
        }
        assert!(Instant::now() < deadline, "rollout {id} never became {state:?}: {:#?}", detail.rollout);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn gate_failure_to_rollback() {
    let dir = tempfile::tempdir().unwrap();
    let server = server::start(Config::for_tests(dir.path())).await;
    let api = Api::new(&server.base, &server.state).await;
    let (url, received) = receiver().await;
    api.post(
        paths::INTEGRATIONS,
        &json!({"name": "hook", "kind": "webhook", "settings": {"url": url}, "secrets": {"signing_key": SIGNING_KEY}}),
    )
    .await;
    let (mut from_evaluation, mut from_burst) = (Vec::new(), Vec::new());
    for index in 0..GATE_ROLLBACKS {
        let service = format!("svc{index}");
        let gate = json!({"name": "errors", "kind": "log", "query": format!("level:error AND service:{service}"),
                          "comparator": "<", "threshold": 5, "interval_seconds": 1, "window_seconds": 600});
        api.post(
            paths::SERVICES,
            &json!({"name": service, "environments": [{"name": "production", "current_version": "1.0.0",
                    "provider": {"kind": "webhook", "integration": "hook", "params": {"url": url}},
                    "gates": [gate]}]}),
        )
        .await;
        let rollout: Rollout = serde_json::from_value(
            api.post(paths::ROLLOUTS, &json!({"service": service, "environment": "production", "version": "2.0.0"}))
                .await,
        )
        .unwrap();
        reaches(&api, rollout.id, RolloutState::Analysing).await;
        // A healthy evaluation first, then the burst at a varied moment of the gate's second.
        let deadline = Instant::now() + Duration::from_secs(30);
        while !api.detail(rollout.id).await.events.iter().any(|event| event.kind == "gate") {
            assert!(Instant::now() < deadline, "the gate was never evaluated");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis((index as u64 * 137) % 1000)).await;
        let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
        let burst: Vec<Value> = (0..20)
            .map(|line| {
                json!({"timestamp": now, "service": service, "host": "bench", "level": "error",
                               "message": format!("payment failed {line}")})
            })
            .collect();
        let response = api
            .http
            .post(format!("{}{}", server.base, paths::LOGS))
            .query(&[("commit", "wait_for")])
            .bearer_auth(api.token.as_str())
            .json(&burst)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        let searchable = wall_millis();
        let (arrived, body) = received
            .wait(|body| body.kind == RolloutKind::Rollback && body.service == service && body.version == "1.0.0")
            .await;
        let detail = reaches(&api, rollout.id, RolloutState::RolledBack).await;
        let failed_at = detail
            .events
            .iter()
            .find(|event| event.kind == "gate" && event.detail.contains("the gate failed"))
            .map(|event| event.at.as_unix_nanos() as f64 / 1e6)
            .expect("the failing evaluation on the timeline");
        assert!(body.rollout_id > rollout.id);
        from_evaluation.push(arrived - failed_at);
        from_burst.push(arrived - searchable);
    }
    println!("gate failure to the rollback's trigger at the provider ({GATE_ROLLBACKS} rollouts, log gate every 1 s):");
    for (what, samples) in [
        ("failing evaluation to the rollback's webhook", &mut from_evaluation),
        ("burst searchable to the rollback's webhook", &mut from_burst),
    ] {
        let (p50, p95, max) = (percentile(samples, 0.5), percentile(samples, 0.95), percentile(samples, 1.0));
        println!("  {what:<45} p50 {p50:7.1} ms  p95 {p95:7.1} ms  max {max:7.1} ms");
    }
    server.shutdown.cancel();
}

/// User plus system CPU time of this process, from `/proc/self/stat` (USER_HZ: 100 a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> =
        stat.rsplit_once(')').map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|field| field.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

/// A host as the agent is to the backend: it reports a heartbeat, then runs its orders.
async fn stand_in_host(api: Api, token: Arc<String>, host: String, stop: tokio_util::sync::CancellationToken) {
    let heartbeat = json!({"host": host, "os": "linux", "version": "bench", "interval_seconds": 30,
                           "sources": [], "shipped_records": 0, "buffer": vigil_proto::agents::BufferReport::default()});
    let response = api
        .http
        .post(format!("{}{}", api.base, paths::AGENT_HEARTBEAT))
        .bearer_auth(token.as_str())
        .json(&heartbeat)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "heartbeat: {}", response.status());
    let report = |id: i64, status: DeployStatus| {
        let body = DeployReport {
            host: host.clone(),
            status,
            exit_code: Some(0),
            reason: String::new(),
            output: String::new(),
        };
        let request = api
            .http
            .post(format!("{}{}", api.base, paths::AGENT_DEPLOY.replace("{id}", &id.to_string())))
            .bearer_auth(token.as_str())
            .json(&body);
        async move {
            let response = request.send().await.unwrap();
            assert!(response.status().is_success(), "report: {}", response.status());
        }
    };
    while !stop.is_cancelled() {
        let orders: DeployOrders = api
            .http
            .get(format!("{}{}", api.base, paths::AGENT_DEPLOYS))
            .query(&[("host", host.as_str())])
            .bearer_auth(token.as_str())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for order in orders.orders {
            report(order.id, DeployStatus::Running).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            report(order.id, DeployStatus::Succeeded).await;
        }
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(HOST_POLL) => {}
        }
    }
}

/// A session cookie of the administrator, as the browser holds it.
async fn session_cookie(api: &Api) -> String {
    let login = json!({ "username": "admin", "password": Config::TEST_ADMIN_PASSWORD });
    let response = api.http.post(format!("{}{}", api.base, paths::AUTH_LOGIN)).json(&login).send().await.unwrap();
    assert!(response.status().is_success(), "sign-in: {}", response.status());
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .map(|value| value.split(';').next().unwrap_or_default().to_owned())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What a viewer's refreshes saw (when, and each rollout's last change), and how long each
/// refresh took (ms).
type Viewed = (Vec<(f64, HashMap<i64, i64>)>, Vec<f64>);

/// Refreshes the page as the browser does until every rollout of `ids` ended.
async fn view_the_page(api: &Api, cookie: &str, ids: &[i64], started: Instant) -> Viewed {
    let (mut refreshes, mut refresh_times) = (Vec::new(), Vec::new());
    let mut refresh = tokio::time::interval(UI_REFRESH);
    let form = [("service", ""), ("environment", ""), ("state", ""), ("limit", "100"), ("offset", "0")];
    loop {
        refresh.tick().await;
        let asked = Instant::now();
        let response = api
            .http
            .post(format!("{}/ui/fn/read/rollouts", api.base))
            .header("cookie", cookie)
            // As the browser's request: same origin.
            .header("origin", &api.base)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "the page's server function: {}", response.status());
        let page: RolloutPage = response.json().await.unwrap();
        let seen_at = wall_millis();
        refresh_times.push(asked.elapsed().as_secs_f64() * 1000.0);
        let seen = page.rollouts.iter().map(|rollout| (rollout.id, rollout.updated_at.as_unix_nanos() / 1_000_000));
        refreshes.push((seen_at, seen.collect()));
        let done = page.rollouts.iter().filter(|rollout| ids.contains(&rollout.id) && rollout.state.is_terminal());
        if done.count() == ids.len() {
            return (refreshes, refresh_times);
        }
        assert!(started.elapsed() < Duration::from_secs(300), "the rollouts did not end in 300 s");
    }
}

async fn many_agent_rollouts() {
    let dir = tempfile::tempdir().unwrap();
    let server = server::start(Config::for_tests(dir.path())).await;
    let api = Api::new(&server.base, &server.state).await;
    let ingest = Arc::new(server.state.auth.create_token("hosts", Some(Scope::Ingest), None, None).await.unwrap().0);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut hosts = Vec::new();
    for service in 0..SERVICES {
        let names: Vec<String> = (1..=HOSTS_PER_SERVICE).map(|host| format!("svc{service}-web{host}")).collect();
        let gate = json!({"name": "errors", "kind": "log", "query": format!("level:error AND service:svc{service}"),
                          "comparator": "<", "threshold": 5, "interval_seconds": 1, "window_seconds": 2});
        let environment = json!({"name": "production", "current_version": "1.0.0", "gates": [gate],
                                 "provider": {"kind": "agent", "params": {"hosts": names, "batch_size": 1}}});
        api.post(paths::SERVICES, &json!({"name": format!("svc{service}"), "environments": [environment]})).await;
        for name in names {
            hosts.push(tokio::spawn(stand_in_host(api.clone(), ingest.clone(), name, stop.clone())));
        }
    }
    // The hosts are known (their heartbeats bound them) before the rollouts start.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let cookie = session_cookie(&api).await;
    let cpu_before = cpu_seconds();
    let started = Instant::now();
    let requests = (0..SERVICES).map(|service| {
        let api = api.clone();
        async move {
            let body = json!({"service": format!("svc{service}"), "environment": "production", "version": "2.0.0"});
            serde_json::from_value::<Rollout>(api.post(paths::ROLLOUTS, &body).await).unwrap().id
        }
    });
    let ids: Vec<i64> = futures::future::join_all(requests).await;
    // Viewers of the page, their refreshes at phases spread over the refresh interval (the
    // runner ticks at an interval too: one viewer would see every transition at one phase).
    let viewers = (0..VIEWERS).map(|viewer| {
        let (api, cookie, ids) = (api.clone(), cookie.clone(), ids.clone());
        let phase = UI_REFRESH.mul_f64(viewer as f64 / VIEWERS as f64);
        async move {
            tokio::time::sleep(phase).await;
            view_the_page(&api, &cookie, &ids, started).await
        }
    });
    let viewed: Vec<Viewed> = futures::future::join_all(viewers).await;
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu_before;
    stop.cancel();
    for host in hosts {
        let _ = host.await;
    }
    let (mut delays, mut succeeded, mut transitions) = (Vec::new(), 0, 0);
    for id in &ids {
        let detail = api.detail(*id).await;
        succeeded += usize::from(detail.rollout.state == RolloutState::Succeeded);
        for event in detail.events.iter().filter(|event| RolloutState::parse(&event.kind).is_some()) {
            transitions += 1;
            let at = event.at.as_unix_nanos() / 1_000_000;
            for (refreshes, _) in &viewed {
                let shown = refreshes.iter().find(|(_, seen)| seen.get(id).is_some_and(|changed| *changed >= at));
                let (seen_at, _) = shown.expect("every transition is seen by a later refresh");
                delays.push(seen_at - at as f64);
            }
        }
    }
    let mut refresh_times: Vec<f64> = viewed.iter().flat_map(|(_, times)| times.iter().copied()).collect();
    println!(
        "{SERVICES} services rolling out at once (agent provider, {HOSTS_PER_SERVICE} stand-in hosts each, one at a \
         time, a 2 s log gate per host):"
    );
    println!("  all ended in {elapsed:.1} s; {succeeded} of {SERVICES} succeeded; {transitions} transitions");
    let (p50, p99, max) = (percentile(&mut delays, 0.5), percentile(&mut delays, 0.99), percentile(&mut delays, 1.0));
    println!(
        "  transition to the Rollouts page (refreshed every {} ms, {VIEWERS} viewers)  p50 {p50:6.0} ms  p99 {p99:6.0} ms  \
         max {max:6.0} ms",
        UI_REFRESH.as_millis()
    );
    let (p50, p99) = (percentile(&mut refresh_times, 0.5), percentile(&mut refresh_times, 0.99));
    println!("  the page's refresh (server function, 100 rollouts)     p50 {p50:6.1} ms  p99 {p99:6.1} ms");
    println!(
        "  CPU of this process over the run: {cpu:.2} s ({:.1} % of one core: the backend with its runner, the \
         stand-ins and the poller)",
        100.0 * cpu / elapsed
    );
    server.shutdown.cancel();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    gate_failure_to_rollback().await;
    many_agent_rollouts().await;
    println!("(whole benchmark: {:.0} s)", started.elapsed().as_secs_f64());
}
