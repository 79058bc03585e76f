//! The comparison gate end to end: three real `vigil-agent` processes deploy one host at a
//! time (as in `rollout_agent`), a real Prometheus holds a per-host error ratio fed through
//! `POST /api/v1/metrics`, and the gate compares the hosts already on the new version with
//! those still on the old by a Mann–Whitney U test. A first host clearly worse than the other
//! two rolls back; hosts alike pass batch by batch, the last batch with nothing to compare.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use vigil_proto::paths;
use vigil_proto::rollouts::{RolloutKind, RolloutPage, RolloutState};

use crate::helpers::{Db, TestApp, assert_error, spawn_app_with};
use crate::prometheus::TestPrometheus;
use crate::rollout_agent::{Fleet, HOSTS, deploy, environment, reaches, save_service};

async fn start_app(prometheus: &TestPrometheus) -> TestApp {
    let url = prometheus.address.clone();
    spawn_app_with(Db::Sqlite, |config| {
        config.rollouts.tick_millis = 100;
        config.metrics.prometheus_url = url;
    })
    .await
}

fn comparison_gate(window_seconds: u64) -> Value {
    json!({"name": "errors", "kind": "comparison", "query": "shop_error_ratio{service=\"shop\"}", "comparator": "<",
           "threshold": 0.05, "interval_seconds": 1, "window_seconds": window_seconds, "failures_allowed": 1})
}

/// Posts `shop_error_ratio{host}` for every host every 250 ms until dropped: the same value on
/// every host (cycling 0.010 to 0.012 every 750 ms, so that the gate's points a second apart
/// differ), plus `extra` (f64 bits) on web-1.
struct Feeder {
    extra: Arc<AtomicU64>,
    stop: CancellationToken,
}

impl Feeder {
    fn start(app: &TestApp) -> Self {
        let extra = Arc::new(AtomicU64::new(0f64.to_bits()));
        let stop = CancellationToken::new();
        let (client, url, token) = (app.client.clone(), app.url(paths::METRICS_WRITE), app.ingest_token.clone());
        let (added, stopped) = (extra.clone(), stop.clone());
        tokio::spawn(async move {
            let mut tick = 0u32;
            while !stopped.is_cancelled() {
                let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
                let base = 0.010 + f64::from(tick % 3) * 0.001;
                let series: Vec<Value> = HOSTS
                    .iter()
                    .map(|host| {
                        let value =
                            if *host == "web-1" { base + f64::from_bits(added.load(Ordering::SeqCst)) } else { base };
                        json!({"labels": {"__name__": "shop_error_ratio", "service": "shop", "host": host},
                               "samples": [[now, value]]})
                    })
                    .collect();
                let sent = client.post(&url).bearer_auth(&token).json(&json!({"series": series})).send().await;
                assert!(sent.is_ok_and(|response| response.status() == 200), "the metrics were taken");
                tick += 1;
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Self { extra, stop }
    }

    fn web_1_adds(&self, extra: f64) {
        self.extra.store(extra.to_bits(), Ordering::SeqCst);
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

async fn shop(app: &TestApp, admin: &crate::helpers::TestSession, gates: Value) {
    let response = save_service(app, admin, environment(json!({"hosts": HOSTS, "batch_size": 1}), gates)).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

#[tokio::test]
async fn a_first_host_with_a_clearly_higher_error_ratio_than_the_old_hosts_is_rolled_back() {
    let prometheus = TestPrometheus::start("").await;
    let app = start_app(&prometheus).await;
    let admin = app.admin_session().await;
    let gate = |changes: Value| {
        let mut gate = comparison_gate(30);
        gate.as_object_mut().unwrap().extend(changes.as_object().unwrap().clone());
        json!([gate])
    };
    for (environment, field) in [
        (
            json!({"name": "production", "gates": gate(json!({})),
                   "provider": {"kind": "webhook", "params": {"url": "http://127.0.0.1:9/deploy"}}}),
            "environments.production.gates.errors.kind",
        ),
        (
            environment(json!({"hosts": HOSTS}), gate(json!({"threshold": 5}))),
            "environments.production.gates.errors.threshold",
        ),
        (
            environment(json!({"hosts": HOSTS}), gate(json!({"comparator": "=="}))),
            "environments.production.gates.errors.comparator",
        ),
    ] {
        let response = save_service(&app, &admin, environment).await;
        assert_error(response, 400, "invalid_parameter", field).await;
    }
    shop(&app, &admin, gate(json!({}))).await;
    let feeder = Feeder::start(&app);
    let fleet = Fleet::start(&app);
    let rollout = deploy(&app, &admin, "1.1.0").await;
    reaches(&app, rollout.id, RolloutState::Analysing, 60).await;
    assert_eq!(fleet.hosts[0].version().as_deref(), Some("1.1.0"));
    feeder.web_1_adds(0.2);
    let rolled_back = reaches(&app, rollout.id, RolloutState::RolledBack, 30).await;
    let error = rolled_back.rollout.error.clone().unwrap_or_default();
    assert!(
        error.starts_with("gate errors failed")
            && error.contains("significantly worse")
            && error.contains("web-1 (new)"),
        "{error}"
    );
    let samples = &rolled_back.gates[0].samples;
    let last = samples.last().and_then(|sample| sample.value).unwrap_or(1.0);
    assert!(last < 0.05, "the p-value is charted: {samples:?}");
    assert!(samples.iter().any(|sample| sample.healthy), "alike before web-1 rose: {samples:?}");

    let page: RolloutPage = app.read(paths::ROLLOUTS, &[("service", "shop")]).await.json().await.unwrap();
    let rollback = &page.rollouts[0];
    assert_eq!((rollback.kind, rollback.parent_id), (RolloutKind::Rollback, Some(rollout.id)));
    reaches(&app, rollback.id, RolloutState::Succeeded, 30).await;
    assert_eq!(fleet.hosts[0].version().as_deref(), Some("1.0.0"));
    for host in &fleet.hosts[1..] {
        assert!(host.log().is_empty(), "{} never deployed: {:?}", host.name, host.log());
    }
}

#[tokio::test]
async fn hosts_alike_pass_the_comparison_batch_by_batch() {
    let prometheus = TestPrometheus::start("").await;
    let app = start_app(&prometheus).await;
    let admin = app.admin_session().await;
    shop(&app, &admin, json!([comparison_gate(3)])).await;
    let _feeder = Feeder::start(&app);
    let fleet = Fleet::start(&app);
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded, 90).await;
    for host in &fleet.hosts {
        assert_eq!(host.version().as_deref(), Some("1.1.0"), "{}", host.name);
    }
    let gates: Vec<&str> =
        done.events.iter().filter(|event| event.kind == "gate").map(|event| event.detail.as_str()).collect();
    let compared = |new: &str, old: &str| {
        gates.iter().any(|detail| {
            detail.contains(&format!("of {new} (new) against"))
                && detail.contains(&format!("of {old} (old)"))
                && detail.ends_with(": healthy")
        })
    };
    assert!(compared("web-1", "web-2, web-3"), "{gates:#?}");
    assert!(compared("web-1, web-2", "web-3"), "{gates:#?}");
    assert!(gates.last().is_some_and(|detail| detail.contains("nothing to compare")), "the last batch: {gates:#?}");
    assert!(gates.iter().all(|detail| !detail.contains("failing")), "{gates:#?}");
}
