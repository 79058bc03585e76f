//! What authentication costs: `cargo bench -p vigil-backend --bench auth`.
//!
//! 1. Sign-in (`POST /api/v1/auth/login`): one argon2id verification per request.
//! 2. A request with a token's first use (argon2id verification) against its next uses (the
//!    minute-long memory of verified tokens), on `GET /api/v1/integrations`, which reads one
//!    small table.
//! 3. The same request with a session cookie, and `GET /healthz` (public, no lookup) as the
//!    floor of the HTTP round trip.

use std::time::{Duration, Instant};

use vigil_backend::config::Config;
use vigil_proto::auth::Scope;
use vigil_proto::paths;

#[allow(dead_code)]
#[path = "../tests/support/server.rs"]
mod server;

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * fraction).round() as usize;
    samples[index]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    let p50 = percentile(&mut samples, 0.5);
    let p99 = percentile(&mut samples, 0.99);
    println!("{name:<40} p50 {:>8.2?}  p99 {:>8.2?}  ({} requests)", p50, p99, samples.len());
}

async fn time<F, Fut>(count: usize, mut request: F) -> Vec<Duration>
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
{
    let mut samples = Vec::with_capacity(count);
    for index in 0..count {
        let started = Instant::now();
        let response = request(index).await.expect("request sent");
        assert!(response.status().is_success(), "{}", response.status());
        let _ = response.bytes().await;
        samples.push(started.elapsed());
    }
    samples
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let data = tempfile::tempdir().unwrap();
    let server::Server { base, state, .. } = server::start(Config::for_tests(data.path())).await;
    let client = reqwest::Client::new();
    let login = serde_json::json!({"username": "admin", "password": Config::TEST_ADMIN_PASSWORD});

    // 1. Sign-in.
    let mut cookie = String::new();
    let samples = time(50, |_| client.post(format!("{base}{}", paths::AUTH_LOGIN)).json(&login).send()).await;
    report("sign-in (argon2id verify)", samples);
    let response = client.post(format!("{base}{}", paths::AUTH_LOGIN)).json(&login).send().await.unwrap();
    if let Some(value) = response.headers().get("set-cookie").and_then(|value| value.to_str().ok()) {
        cookie = value.split(';').next().unwrap_or_default().to_owned();
    }

    // 2. Tokens: first use of each of 50 tokens, then 2,000 uses of one.
    let mut tokens = Vec::new();
    for index in 0..50 {
        tokens.push(state.auth.create_token(&format!("bench-{index}"), Some(Scope::Read), None, None).await.unwrap().0);
    }
    let url = format!("{base}{}", paths::INTEGRATIONS);
    let samples = time(tokens.len(), |index| client.get(&url).bearer_auth(&tokens[index]).send()).await;
    report("token, first use (argon2id verify)", samples);
    let samples = time(2000, |_| client.get(&url).bearer_auth(&tokens[0]).send()).await;
    report("token, verified within the minute", samples);

    // 3. Session cookie, and the public floor.
    let samples = time(2000, |_| client.get(&url).header("cookie", &cookie).send()).await;
    report("session cookie", samples);
    let health = format!("{base}{}", paths::HEALTHZ);
    let samples = time(2000, |_| client.get(&health).send()).await;
    report("public /healthz (no authentication)", samples);
}
