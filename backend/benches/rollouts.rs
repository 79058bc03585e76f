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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tokio::sync::{Mutex, Notify};
use vigil_backend::config::Config;
use vigil_backend::state::AppState;
use vigil_proto::auth::Scope;
use vigil_proto::paths;
use vigil_proto::rollouts::{DeployWebhookBody, Rollout, RolloutDetail, RolloutKind, RolloutState};

#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

const GATE_ROLLBACKS: usize = 20;
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let started = Instant::now();
    gate_failure_to_rollback().await;
    println!("(whole benchmark: {:.0} s)", started.elapsed().as_secs_f64());
}
