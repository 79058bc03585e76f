//! Rollouts end to end: a real Buildbot master and worker triggered, followed to success and
//! failure, stopped on abort; Debian's `webhook` tool as the generic webhook's receiver, with
//! the signed callback; approval by a second person, freeze windows, one rollout at a time,
//! gates on the log store and on a real Prometheus rolling back by themselves, a dry-run gate,
//! and a restart in the middle of a rollout.

use std::sync::atomic::{AtomicU64, Ordering};

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::auth::Role;
use vigil_proto::paths;
use vigil_proto::rollouts::{
    DeployAnnotation, Rollout, RolloutDetail, RolloutKind, RolloutPage, RolloutState, Service,
};

use crate::alerts_page::{choose, data_of, fill, text_of};
use crate::browser::Browser;
use crate::buildbot::{self, TestBuildbot};
use crate::helpers::{Db, TestApp, TestSession, assert_error, eventually, record, spawn_app_with};
use crate::prometheus::TestPrometheus;
use crate::webhook_tool::TestWebhook;

const SIGNING_KEY: &str = "the deploy hook's key";

/// Versions no other test of the binary uses (they share one Buildbot).
fn version(prefix: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = std::process::id();
    format!("{prefix}-{process}.{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

async fn start(prometheus: Option<&TestPrometheus>) -> TestApp {
    let url = prometheus.map(|prometheus| prometheus.address.clone());
    spawn_app_with(Db::Sqlite, |config| {
        config.rollouts.tick_millis = 100;
        if let Some(url) = url {
            config.metrics.prometheus_url = url;
        }
    })
    .await
}

async fn integration(app: &TestApp, admin: &TestSession, body: Value) {
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn create_service(app: &TestApp, admin: &TestSession, body: Value) -> Service {
    let response = app.with_session(Method::POST, paths::SERVICES, admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// A service `shop` whose `production` deploys through the shared Buildbot, logged in.
async fn buildbot_service(app: &TestApp, admin: &TestSession, current: &str, gates: Value) -> &'static TestBuildbot {
    let buildbot = TestBuildbot::shared().await;
    integration(
        app,
        admin,
        json!({"name": "buildbot", "kind": "buildbot", "settings": {"username": buildbot::USERNAME},
               "secrets": {"password": buildbot::PASSWORD}}),
    )
    .await;
    create_service(
        app,
        admin,
        json!({"name": "shop", "owner": "team-shop", "environments": [{
            "name": "production", "current_version": current, "gates": gates,
            "provider": {"kind": "buildbot", "integration": "buildbot", "params": {
                "url": buildbot.url, "scheduler": "deploy", "builder": "rollout", "properties": {"target": "prod"}}},
        }]}),
    )
    .await;
    buildbot
}

/// A service with one environment per hook of the `webhook` tool: `sync` and `async`.
async fn webhook_service(app: &TestApp, admin: &TestSession, hook: &TestWebhook, extra: Value) {
    // A webhook integration is an alert channel too, which needs a URL.
    let settings = json!({"url": format!("{}/deploy", hook.hooks)});
    integration(
        app,
        admin,
        json!({"name": "deploy-hook", "kind": "webhook", "settings": settings,
                                   "secrets": {"signing_key": SIGNING_KEY}}),
    )
    .await;
    let environment = |name: &str, path: &str| {
        let mut environment = json!({
            "name": name, "current_version": "1.0.0",
            "provider": {"kind": "webhook", "integration": "deploy-hook", "params": {"url": format!("{}/{path}", hook.hooks)}},
        });
        for (key, value) in extra.as_object().unwrap() {
            environment[key] = value.clone();
        }
        environment
    };
    create_service(
        app,
        admin,
        json!({"name": "checkout", "environments": [environment("sync", "deploy"), environment("async", "deploy-async")]}),
    )
    .await;
}

async fn request(
    app: &TestApp,
    session: &TestSession,
    service: &str,
    environment: &str,
    version: &str,
) -> reqwest::Response {
    let body = json!({"service": service, "environment": environment, "version": version});
    app.with_session(Method::POST, paths::ROLLOUTS, session).json(&body).send().await.unwrap()
}

async fn deploy(app: &TestApp, session: &TestSession, service: &str, environment: &str, version: &str) -> Rollout {
    let response = request(app, session, service, environment, version).await;
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn detail(app: &TestApp, id: i64) -> RolloutDetail {
    let response = app.read(&paths::ROLLOUT.replace("{id}", &id.to_string()), &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn reaches(app: &TestApp, id: i64, state: RolloutState, seconds: u64) -> RolloutDetail {
    let what = format!("rollout {id} {}", state.as_str());
    let mut last = None;
    let found = tokio::time::timeout(std::time::Duration::from_secs(seconds), async {
        loop {
            let seen = detail(app, id).await;
            if seen.rollout.state == state {
                return seen;
            }
            last = Some(seen);
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("timed out waiting for {what}: {last:#?}"))
}

async fn service(app: &TestApp, name: &str) -> Service {
    app.read(&paths::SERVICE.replace("{name}", name), &[]).await.json().await.unwrap()
}

async fn post(app: &TestApp, session: &TestSession, path: &str) -> reqwest::Response {
    app.with_session(Method::POST, path, session).send().await.unwrap()
}

fn on(path: &str, id: i64) -> String {
    path.replace("{id}", &id.to_string())
}

#[tokio::test]
async fn buildbot_deploys_to_success_moves_the_versions_and_a_rollback_goes_back() {
    let app = start(None).await;
    let admin = app.admin_session().await;
    let previous = version("1.0.0");
    let buildbot = buildbot_service(&app, &admin, &previous, json!([])).await;
    let deployer = app.user_session("dana", Role::Deployer).await;
    let wanted = version("1.1.0");
    let rollout = deploy(&app, &deployer, "shop", "production", &wanted).await;
    assert_eq!((rollout.state, rollout.from_version.as_deref()), (RolloutState::Triggered, Some(previous.as_str())));
    let done = reaches(&app, rollout.id, RolloutState::Succeeded, 60).await;
    assert!(done.rollout.run_url.as_deref().is_some_and(|url| url.contains("/#/builders/")), "{done:#?}");
    let kinds: Vec<&str> = done.events.iter().map(|event| event.kind.as_str()).collect();
    assert_eq!(kinds, ["requested", "triggered", "running", "analysing", "succeeded"]);
    let builds = buildbot.builds_of(&wanted).await;
    assert_eq!(builds.len(), 1, "one build: {builds:?}");
    assert_eq!(builds[0]["results"], 0);
    let production = &service(&app, "shop").await.environments[0];
    assert_eq!(production.current_version.as_deref(), Some(wanted.as_str()));
    assert_eq!(production.previous_good_version.as_deref(), Some(previous.as_str()));

    // The Rollback button: a rollback rollout to the previous good version, through Buildbot.
    let response = post(
        &app,
        &deployer,
        &paths::SERVICE_ROLLBACK.replace("{name}", "shop").replace("{environment}", "production"),
    )
    .await;
    assert_eq!(response.status(), 201);
    let rollback: Rollout = response.json().await.unwrap();
    assert_eq!((rollback.kind, rollback.version.as_str()), (RolloutKind::Rollback, previous.as_str()));
    reaches(&app, rollback.id, RolloutState::Succeeded, 60).await;
    assert_eq!(buildbot.builds_of(&previous).await.len(), 1);
    let production = &service(&app, "shop").await.environments[0];
    assert_eq!(
        (production.current_version.as_deref(), production.previous_good_version.as_deref()),
        (Some(previous.as_str()), None)
    );
    let again = post(
        &app,
        &deployer,
        &paths::SERVICE_ROLLBACK.replace("{name}", "shop").replace("{environment}", "production"),
    )
    .await;
    assert_error(again, 409, "conflict", "no previous good version").await;

    let page: RolloutPage = app.read(paths::ROLLOUTS, &[("service", "shop")]).await.json().await.unwrap();
    assert_eq!(
        page.rollouts.iter().map(|rollout| rollout.id).collect::<Vec<_>>(),
        [rollback.id, rollout.id],
        "newest first"
    );
    let audit = app.audit(&admin, &[("action", "rollout.start")]).await;
    assert_eq!(audit.events.len(), 1);
    assert_eq!(audit.events[0].actor, "dana");
}

#[tokio::test]
async fn a_failing_buildbot_build_fails_the_rollout_and_moves_nothing() {
    let app = start(None).await;
    let admin = app.admin_session().await;
    buildbot_service(&app, &admin, "1.0.0", json!([])).await;
    let rollout = deploy(&app, &admin, "shop", "production", &version("fail")).await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed, 60).await;
    assert!(failed.rollout.error.as_deref().is_some_and(|error| error.starts_with("the run failed")), "{failed:#?}");
    assert_eq!(service(&app, "shop").await.environments[0].current_version.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn abort_stops_the_buildbot_build() {
    let app = start(None).await;
    let admin = app.admin_session().await;
    let buildbot = buildbot_service(&app, &admin, "1.0.0", json!([])).await;
    let slow = version("slow");
    let rollout = deploy(&app, &admin, "shop", "production", &slow).await;
    reaches(&app, rollout.id, RolloutState::Running, 30).await;
    eventually(30, "the build to start", || async { (!buildbot.builds_of(&slow).await.is_empty()).then_some(()) })
        .await;
    let response = post(&app, &admin, &on(paths::ROLLOUT_ABORT, rollout.id)).await;
    assert_eq!(response.status(), 200);
    let aborted = detail(&app, rollout.id).await;
    assert_eq!(aborted.rollout.state, RolloutState::Aborted);
    assert!(
        aborted.events.iter().any(|event| event.kind == "cancel" && event.detail.contains("cancelled")),
        "{aborted:#?}"
    );
    let build = eventually(30, "the build stopped", || async {
        buildbot.builds_of(&slow).await.into_iter().find(|build| build["complete"] == true)
    })
    .await;
    assert_eq!(build["results"], 6, "cancelled");
    let again = post(&app, &admin, &on(paths::ROLLOUT_ABORT, rollout.id)).await;
    assert_error(again, 409, "conflict", "a rollout that is aborted cannot be aborted").await;
}

#[tokio::test]
async fn the_generic_webhook_deploys_synchronously_and_asynchronously_with_a_signed_callback() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    webhook_service(&app, &admin, &hook, json!({})).await;
    let done = deploy(&app, &admin, "checkout", "sync", "2.0.0").await;
    reaches(&app, done.id, RolloutState::Succeeded, 20).await;
    let failing = deploy(&app, &admin, "checkout", "sync", "fail-2.0.1").await;
    let failed = reaches(&app, failing.id, RolloutState::Failed, 20).await;
    assert!(failed.rollout.error.as_deref().is_some_and(|error| error.contains("500")), "{failed:#?}");

    let waiting = deploy(&app, &admin, "checkout", "async", "3.0.0").await;
    reaches(&app, waiting.id, RolloutState::Running, 20).await;
    let calls = hook.calls();
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert_eq!(calls[0][..3], ["2.0.0", "deploy", &done.id.to_string()]);
    let callback_url = calls[2][3].clone();
    assert_eq!(callback_url, app.url(&on(paths::ROLLOUT_CALLBACK, waiting.id)));
    let send = |body: Value, key: &'static str| {
        let body = body.to_string();
        let signature = vigil_backend::rollouts::webhook::signature(key, body.as_bytes());
        app.client.post(&callback_url).header("X-Vigil-Signature", signature).body(body).send()
    };
    let succeeded = json!({"rollout_id": waiting.id, "status": "succeeded", "detail": "deployed by the CI"});
    assert_error(send(succeeded.clone(), "a wrong key").await.unwrap(), 401, "unauthorized", "does not match").await;
    let unsigned = app.client.post(&callback_url).body(succeeded.to_string()).send().await.unwrap();
    assert_error(unsigned, 401, "unauthorized", "no X-Vigil-Signature").await;
    let elsewhere = json!({"rollout_id": done.id, "status": "failed"});
    assert_error(send(elsewhere, SIGNING_KEY).await.unwrap(), 400, "invalid_parameter", "not").await;
    assert_eq!(send(succeeded, SIGNING_KEY).await.unwrap().status(), 200);
    reaches(&app, waiting.id, RolloutState::Succeeded, 20).await;
    assert_eq!(service(&app, "checkout").await.environments[0].current_version.as_deref(), Some("3.0.0"));
}

#[tokio::test]
async fn a_run_that_never_ends_is_cancelled_after_the_run_timeout_and_fails() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.rollouts.tick_millis = 100;
        config.rollouts.run_timeout_seconds = 2;
    })
    .await;
    let admin = app.admin_session().await;
    webhook_service(&app, &admin, &hook, json!({})).await;
    // The asynchronous hook answers 202; its callback never comes.
    let rollout = deploy(&app, &admin, "checkout", "async", "2.0.0").await;
    reaches(&app, rollout.id, RolloutState::Running, 20).await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed, 20).await;
    let error = failed.rollout.error.unwrap_or_default();
    assert!(error.contains("the run took longer than 2 s (rollouts.run_timeout_seconds)"), "{error}");
    assert!(error.contains("not cancelled at the provider"), "a webhook cannot be cancelled: {error}");
    assert_eq!(service(&app, "checkout").await.environments[1].current_version.as_deref(), Some("1.0.0"));
    assert_eq!(deploy(&app, &admin, "checkout", "async", "2.0.1").await.state, RolloutState::Triggered, "free again");
}

#[tokio::test]
async fn a_second_person_approves_and_the_requester_cannot() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    webhook_service(&app, &admin, &hook, json!({"approval_required": true})).await;
    let dana = app.user_session("dana", Role::Deployer).await;
    let erin = app.user_session("erin", Role::Deployer).await;
    let viewer = app.user_session("vera", Role::Viewer).await;
    let rollout = deploy(&app, &dana, "checkout", "sync", "2.0.0").await;
    assert_eq!(rollout.state, RolloutState::AwaitingApproval);
    let approve = on(paths::ROLLOUT_APPROVE, rollout.id);
    assert_error(post(&app, &dana, &approve).await, 403, "forbidden", "another deployer or administrator must approve")
        .await;
    assert_eq!(post(&app, &viewer, &approve).await.status(), 403);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(hook.calls().is_empty(), "nothing runs before the approval");
    let approved = post(&app, &erin, &approve).await;
    assert_eq!(approved.status(), 200);
    let done = reaches(&app, rollout.id, RolloutState::Succeeded, 20).await;
    assert_eq!(done.rollout.approved_by.as_deref(), Some("erin"));
    assert!(done.events.iter().any(|event| event.kind == "approved" && event.actor == "erin"));
    assert_error(post(&app, &erin, &approve).await, 409, "conflict", "succeeded cannot be approved").await;
}

#[tokio::test]
async fn a_freeze_window_refuses_deploys_and_one_rollout_runs_at_a_time() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    let now = time::OffsetDateTime::now_utc();
    let rfc3339 = |at: time::OffsetDateTime| at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let window = json!([{"start": rfc3339(now - time::Duration::hours(1)), "end": rfc3339(now + time::Duration::hours(1)), "reason": "black friday"}]);
    webhook_service(&app, &admin, &hook, json!({})).await;
    create_service(
        &app,
        &admin,
        json!({"name": "frozen", "environments": [{"name": "production", "freeze_windows": window,
               "provider": {"kind": "webhook", "params": {"url": format!("{}/deploy", hook.hooks)}}}]}),
    )
    .await;
    let refused = request(&app, &admin, "frozen", "production", "2.0.0").await;
    assert_error(refused, 409, "conflict", "frozen until").await;

    // A recurring freeze (as Argo CD's sync windows): the occurrence holding now refuses, and
    // the service says it is frozen, until when and why.
    let hour = now.hour();
    // Two hours long, so that the hour turning during the test changes nothing.
    let recurring = json!([{"schedule": format!("0 {hour} * * *"), "duration": "2h", "reason": "nightly batch"},
                           {"schedule": format!("0 {} * * *", (hour + 12) % 24), "duration": "1h", "utc_offset": "+00:00"}]);
    let provider = json!({"kind": "webhook", "params": {"url": format!("{}/deploy", hook.hooks)}});
    create_service(
        &app,
        &admin,
        json!({"name": "nightly", "environments": [{"name": "production", "recurring_freezes": recurring,
               "provider": provider.clone()}]}),
    )
    .await;
    let refused = request(&app, &admin, "nightly", "production", "2.0.0").await;
    let opened = now.replace_minute(0).unwrap().replace_second(0).unwrap().replace_nanosecond(0).unwrap();
    let until = rfc3339(opened + time::Duration::hours(2));
    assert_error(refused, 409, "conflict", &format!("frozen until {until} (nightly batch)")).await;
    let frozen = service(&app, "nightly").await.environments[0].frozen.clone().expect("frozen now");
    assert_eq!((frozen.start.to_rfc3339(), frozen.end.to_rfc3339()), (rfc3339(opened), until));
    assert_eq!(service(&app, "checkout").await.environments[0].frozen, None);
    for (freeze, needle) in [
        (
            json!({"schedule": "0 25 * * *", "duration": "1h"}),
            "recurring_freezes[0]: schedule: hour 25 is outside 0-23",
        ),
        (json!({"schedule": "0 1 * * *", "duration": "forever"}), "recurring_freezes[0]: duration \"forever\""),
        (json!({"schedule": "0 1 * * *", "duration": "40d"}), "from 1 minute to 31 days"),
        (json!({"schedule": "0 1 * * *", "duration": "1h", "utc_offset": "CET"}), "utc offset \"CET\""),
    ] {
        let body = json!({"name": "nightly", "environments": [{"name": "production", "recurring_freezes": [freeze],
                          "provider": provider.clone()}]});
        let path = paths::SERVICE.replace("{name}", "nightly");
        let refused = app.with_session(Method::PUT, &path, &admin).json(&body).send().await.unwrap();
        assert_error(refused, 400, "invalid_parameter", needle).await;
    }

    let first = deploy(&app, &admin, "checkout", "async", "2.0.0").await;
    reaches(&app, first.id, RolloutState::Running, 20).await;
    let second = request(&app, &admin, "checkout", "async", "2.0.1").await;
    assert_error(second, 409, "conflict", &format!("rollout {} of checkout/async is running", first.id)).await;
    assert_eq!(
        deploy(&app, &admin, "checkout", "sync", "2.0.1").await.state,
        RolloutState::Triggered,
        "another environment"
    );
    let aborted = post(&app, &admin, &on(paths::ROLLOUT_ABORT, first.id)).await;
    assert_eq!(aborted.status(), 200);
    let events = detail(&app, first.id).await.events;
    assert!(events.iter().any(|event| event.kind == "cancel" && event.detail.contains("not cancelled")), "{events:?}");
    assert_eq!(deploy(&app, &admin, "checkout", "async", "2.0.1").await.state, RolloutState::Triggered);
}

#[tokio::test]
async fn a_burst_of_error_lines_fails_the_log_gate_and_rolls_back_to_the_last_good_version() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    let gates = json!([
        {"name": "errors", "kind": "log", "query": "level:error AND service:checkout", "comparator": "<",
         "threshold": 5, "interval_seconds": 1, "window_seconds": 60, "failures_allowed": 1},
    ]);
    webhook_service(&app, &admin, &hook, json!({"gates": gates})).await;
    let rollout = deploy(&app, &admin, "checkout", "sync", "2.0.0").await;
    reaches(&app, rollout.id, RolloutState::Analysing, 20).await;
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let burst: Vec<_> = (0..50).map(|i| record(&now, "checkout", "error", &format!("payment failed {i}"))).collect();
    assert_eq!(app.post_logs(&burst).await.status(), 200);
    let rolled_back = reaches(&app, rollout.id, RolloutState::RolledBack, 30).await;
    assert!(
        rolled_back.rollout.error.as_deref().is_some_and(|error| error.starts_with("gate errors failed")),
        "{rolled_back:#?}"
    );
    let gate_events = rolled_back.events.iter().filter(|event| event.kind == "gate").count();
    assert!(gate_events >= 2, "one failure allowed, failed at the second: {:#?}", rolled_back.events);
    // The gate's chart: each evaluation with its value, the failing ones last.
    let [gate] = &rolled_back.gates[..] else { panic!("one gate: {:#?}", rolled_back.gates) };
    assert_eq!((gate.gate.name.as_str(), gate.gate.threshold, gate.failed), ("errors", 5.0, true));
    assert_eq!(gate.samples.len(), gate_events, "a sample per evaluation");
    let failing: Vec<_> = gate.samples.iter().rev().take(2).collect();
    assert!(
        failing.iter().all(|sample| !sample.healthy && sample.value.is_some_and(|value| value >= 5.0)),
        "{:#?}",
        gate.samples
    );
    assert!(gate.samples.windows(2).all(|pair| pair[0].at <= pair[1].at), "oldest first");
    let page: RolloutPage =
        app.read(paths::ROLLOUTS, &[("service", "checkout"), ("environment", "sync")]).await.json().await.unwrap();
    let rollback = &page.rollouts[0];
    assert_eq!(
        (rollback.kind, rollback.version.as_str(), rollback.parent_id),
        (RolloutKind::Rollback, "1.0.0", Some(rollout.id))
    );
    reaches(&app, rollback.id, RolloutState::Succeeded, 20).await;
    // Both, as annotations on the service's charts; none for another service.
    let start = rolled_back.rollout.created_at.to_rfc3339();
    let end = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let annotations = |filter: &'static str| {
        let (app, start, end) = (&app, start.clone(), end.clone());
        async move {
            let response = app
                .read(
                    paths::DEPLOY_ANNOTATIONS,
                    &[("start", start.as_str()), ("end", end.as_str()), ("filter", filter)],
                )
                .await;
            assert_eq!(response.status(), 200);
            response.json::<Vec<DeployAnnotation>>().await.unwrap()
        }
    };
    let shown = annotations(r#"{service="checkout"}"#).await;
    let ids: Vec<(i64, RolloutKind, RolloutState, bool)> =
        shown.iter().map(|shown| (shown.rollout_id, shown.kind, shown.state, shown.end.is_some())).collect();
    assert_eq!(
        ids,
        [
            (rollback.id, RolloutKind::Rollback, RolloutState::Succeeded, true),
            (rollout.id, RolloutKind::Deploy, RolloutState::RolledBack, true)
        ]
    );
    assert!(annotations(r#"{service="elsewhere"}"#).await.is_empty());
    let bad = app.read(paths::DEPLOY_ANNOTATIONS, &[("start", end.as_str()), ("end", start.as_str())]).await;
    assert_error(bad, 400, "invalid_parameter", "end must not be before start").await;
    let bad = app
        .read(paths::DEPLOY_ANNOTATIONS, &[("start", start.as_str()), ("end", end.as_str()), ("filter", "{service=")])
        .await;
    assert_eq!(bad.status(), 400);
    // Nothing of it is still in progress.
    let active: RolloutPage =
        app.read(paths::ROLLOUTS, &[("service", "checkout"), ("state", "active")]).await.json().await.unwrap();
    assert_eq!(active.total, 0, "{active:#?}");
    let calls = hook.calls();
    assert_eq!(calls.last().unwrap()[..2], ["1.0.0", "rollback"], "{calls:?}");
    assert_eq!(service(&app, "checkout").await.environments[1].current_version.as_deref(), Some("1.0.0"));
    let audit = app.audit(&admin, &[("action", "rollout.rollback")]).await;
    assert_eq!(audit.events[0].actor, "rollout-runner");
}

#[tokio::test]
async fn a_failing_dry_run_gate_is_recorded_and_not_acted_on() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    let gates = json!([{"name": "traffic", "kind": "log", "query": "service:checkout", "comparator": ">",
                        "threshold": 100, "interval_seconds": 1, "window_seconds": 3, "dry_run": true}]);
    webhook_service(&app, &admin, &hook, json!({"gates": gates})).await;
    let rollout = deploy(&app, &admin, "checkout", "sync", "2.0.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded, 30).await;
    let gate_events: Vec<_> = done.events.iter().filter(|event| event.kind == "gate").collect();
    assert!(gate_events.len() >= 2, "{:#?}", done.events);
    assert!(
        gate_events.iter().all(|event| event.detail.contains("failing") && event.detail.contains("dry run")),
        "{gate_events:#?}"
    );
    assert_eq!(hook.calls().len(), 1, "no rollback");
}

#[tokio::test]
async fn a_rising_error_ratio_in_prometheus_rolls_buildbot_back_to_the_previous_version() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(Some(&prometheus)).await;
    let admin = app.admin_session().await;
    let gates = json!([{"name": "error-ratio", "kind": "promql", "query": "max(shop_error_ratio)", "comparator": "<",
                        "threshold": 0.01, "interval_seconds": 1, "window_seconds": 60}]);
    let previous = version("4.0.0");
    let buildbot = buildbot_service(&app, &admin, &previous, gates).await;
    let ratio = |value: f64| {
        let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
        json!({"series": [{"labels": {"__name__": "shop_error_ratio", "service": "shop"}, "samples": [[now, value]]}]})
    };
    // Healthy before the deploy (no data would fail the gate at once).
    assert_eq!(app.post_metrics(&ratio(0.0)).await.status(), 200);
    let bad = version("4.1.0");
    let rollout = deploy(&app, &admin, "shop", "production", &bad).await;
    reaches(&app, rollout.id, RolloutState::Analysing, 60).await;
    eventually(30, "a healthy evaluation", || async {
        let events = detail(&app, rollout.id).await.events;
        events
            .iter()
            .any(|event| {
                event.kind == "gate" && event.detail.contains("healthy while") && event.detail.ends_with(": healthy")
            })
            .then_some(())
    })
    .await;
    assert_eq!(app.post_metrics(&ratio(0.25)).await.status(), 200);
    let rolled_back = reaches(&app, rollout.id, RolloutState::RolledBack, 30).await;
    assert!(rolled_back.rollout.error.as_deref().is_some_and(|error| error.contains("0.25")), "{rolled_back:#?}");
    eventually(60, "the rollback's build", || async {
        buildbot.builds_of(&previous).await.into_iter().find(|build| build["results"] == 0)
    })
    .await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_rollout_resumes_it_without_triggering_twice() {
    let app = start(None).await;
    let admin = app.admin_session().await;
    let buildbot = buildbot_service(&app, &admin, "1.0.0", json!([])).await;
    let paused = version("pause");
    let rollout = deploy(&app, &admin, "shop", "production", &paused).await;
    reaches(&app, rollout.id, RolloutState::Running, 30).await;
    let data = app.stop_keeping_data().await;
    let app = crate::helpers::restart_app_with(data.path(), |config| config.rollouts.tick_millis = 100).await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded, 60).await;
    assert_eq!(done.events.iter().filter(|event| event.kind == "running").count(), 1, "{:#?}", done.events);
    assert_eq!(buildbot.builds_of(&paused).await.len(), 1, "triggered once");
    assert_eq!(service(&app, "shop").await.environments[0].current_version.as_deref(), Some(paused.as_str()));
}

#[tokio::test]
async fn services_are_seeded_from_the_configuration_checked_and_edited_by_administrators() {
    let app = spawn_app_with(Db::Sqlite, |config| {
        config.services = vec![vigil_backend::config::ServiceConfig::named("frontend")];
    })
    .await;
    let admin = app.admin_session().await;
    let services: Vec<Service> = app.read(paths::SERVICES, &[]).await.json().await.unwrap();
    assert_eq!(services.iter().map(|service| service.name.as_str()).collect::<Vec<_>>(), ["frontend"]);
    let deployer = app.user_session("dana", Role::Deployer).await;
    let write = json!({"name": "frontend", "environments": [{"name": "production",
                       "provider": {"kind": "spinnaker", "params": {}}}]});
    let path = paths::SERVICE.replace("{name}", "frontend");
    let by_deployer = app.with_session(Method::PUT, &path, &deployer).json(&write).send().await.unwrap();
    assert_eq!(by_deployer.status(), 403);
    let unknown = app.with_session(Method::PUT, &path, &admin).json(&write).send().await.unwrap();
    assert_error(unknown, 400, "invalid_parameter", "provider kind \"spinnaker\" is not one of buildbot, webhook, jenkins, gitlab, circleci, github, argocd, kubernetes, agent")
        .await;
    let bad_url = json!({"name": "frontend", "environments": [{"name": "production",
                         "provider": {"kind": "webhook", "params": {"url": "ftp://x"}}}]});
    let refused = app.with_session(Method::PUT, &path, &admin).json(&bad_url).send().await.unwrap();
    assert_error(refused, 400, "invalid_parameter", "environments.production: params.url").await;
    let bad_gate = json!({"name": "frontend", "environments": [{"name": "production",
        "provider": {"kind": "webhook", "params": {"url": "http://127.0.0.1:1/hook"}},
        "gates": [{"name": "errors", "kind": "log", "query": "level:(", "comparator": "<", "threshold": 1}]}]});
    let refused = app.with_session(Method::PUT, &path, &admin).json(&bad_gate).send().await.unwrap();
    assert_error(refused, 400, "invalid_parameter", "environments.production.gates.errors: query").await;
    let missing = request(&app, &deployer, "frontend", "production", "1.0.0").await;
    assert_error(missing, 404, "not_found", "has no environment \"production\"").await;
    let bad_version = request(&app, &deployer, "frontend", "production", "1.0; rm -rf /").await;
    assert_error(bad_version, 400, "invalid_parameter", "version").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployer_presses_deploy_confirms_watches_the_progress_and_sees_the_automatic_rollback() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    let gates = json!([
        {"name": "errors", "kind": "log", "query": "level:error AND service:checkout", "comparator": "<",
         "threshold": 5, "interval_seconds": 1, "window_seconds": 120, "failures_allowed": 1},
    ]);
    webhook_service(&app, &admin, &hook, json!({"gates": gates})).await;
    app.user_session("dora", Role::Deployer).await;
    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/services/checkout"), "dora", "dora has a long password").await;
    browser.wait_for(".service-page[data-hydrated='true']").await;
    assert_eq!(text_of(&browser, ".environment[data-environment='sync'] .current-version").await, "1.0.0");

    // Deploy asks first, saying what runs now, what judges it and that nobody must approve.
    choose(&browser, ".deploy-form select[name='environment']", "sync").await;
    fill(&browser, ".deploy-form input[name='version']", "2.0.0").await;
    browser.click(&browser.wait_for(".deploy-form button.deploy").await).await;
    let confirmation = text_of(&browser, ".confirmation").await;
    assert!(confirmation.contains("Deploy checkout to sync?"), "{confirmation}");
    assert_eq!(text_of(&browser, ".confirmation .confirm-current").await, "1.0.0");
    assert_eq!(text_of(&browser, ".confirmation .confirm-target").await, "2.0.0");
    assert!(confirmation.contains("errors (< 5)") && confirmation.contains("Needs no approval"), "{confirmation}");
    assert!(hook.calls().is_empty(), "nothing is triggered before the confirmation");
    browser.click(&browser.wait_for(".confirmation button.confirm").await).await;

    // The rollout's page follows it: triggered, analysed (the gate charted), then the burst.
    browser.wait_for(".rollout-page[data-hydrated='true']").await;
    browser.wait_for(".rollout-steps[data-state='analysing']").await;
    browser.wait_for(".gate[data-gate='errors'][data-verdict='healthy'] .chart").await;
    assert_eq!(data_of(&browser, ".gate[data-gate='errors'] .chart", "threshold").await, ["5"]);
    assert_eq!(hook.calls().len(), 1);
    let url = browser.current_url().await;
    let id: i64 = url.rsplit('/').next().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("{url}"));
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let burst: Vec<_> = (0..50).map(|i| record(&now, "checkout", "error", &format!("payment failed {i}"))).collect();
    assert_eq!(app.post_logs(&burst).await.status(), 200);
    eventually(30, "the page to show the rollback", || async {
        let state = data_of(&browser, ".rollout-steps", "state").await;
        (state == ["rolled_back"]).then_some(())
    })
    .await;
    assert_eq!(data_of(&browser, ".gate[data-gate='errors']", "verdict").await, ["failed"]);
    let undone = text_of(&browser, ".rollout-undone").await;
    assert!(undone.contains("to 1.0.0"), "{undone}");
    let error = text_of(&browser, ".rollout-error").await;
    assert!(error.starts_with("gate errors failed"), "{error}");

    // The automatic rollback ran through the same hook; the history says so.
    let rollback = reaches(&app, id + 1, RolloutState::Succeeded, 20).await.rollout;
    assert_eq!((rollback.parent_id, rollback.version.as_str()), (Some(id), "1.0.0"));
    let calls = hook.calls();
    assert_eq!(
        calls.iter().map(|call| call[..2].to_vec()).collect::<Vec<_>>(),
        [["2.0.0", "deploy"], ["1.0.0", "rollback"]]
    );
    browser.goto(&app.url("/rollouts?service=checkout")).await;
    browser.wait_for(".rollouts-page[data-hydrated='true']").await;
    eventually(20, "the history to list both", || async {
        let states = data_of(&browser, ".rollout-history tr.rollout-row", "state").await;
        (states == ["succeeded", "rolled_back"]).then_some(())
    })
    .await;
    browser.quit().await;
}

/// Deploys as bands on the charts: a finished one closed, one still running open to the right
/// edge; a dashboard with a `service` variable shows only the chosen service's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn charts_draw_deploys_as_bands_on_the_explorer_and_on_the_dashboards_of_their_service() {
    let prometheus = TestPrometheus::start("").await;
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(Some(&prometheus)).await;
    let admin = app.admin_session().await;
    webhook_service(&app, &admin, &hook, json!({})).await;
    let done = deploy(&app, &admin, "checkout", "sync", "2.0.0").await;
    reaches(&app, done.id, RolloutState::Succeeded, 20).await;
    // The asynchronous hook runs until its callback, which never comes.
    let running = deploy(&app, &admin, "checkout", "async", "3.0.0").await;
    reaches(&app, running.id, RolloutState::Running, 20).await;
    // Seconds old, so that the finished one ends visibly short of the right edge.
    tokio::time::sleep(std::time::Duration::from_secs(5)).await;
    app.user_session("dora", Role::Deployer).await;
    let browser = Browser::start().await;
    browser.goto_signed_in(&app.url("/explore?q=vector(1)&range=15m"), "dora", "dora has a long password").await;
    let band = |version: &str| format!(".chart .chart-band.deploy-band[data-label='deploy checkout {version}']");
    browser.wait_for(&band("2.0.0")).await;
    browser.wait_for(&band("3.0.0")).await;
    assert_eq!(data_of(&browser, &band("2.0.0"), "open").await, ["false"]);
    assert_eq!(data_of(&browser, &band("3.0.0"), "open").await, ["true"]);

    let dashboard = json!({
        "title": "Checkout", "variables": [{"name": "service", "label": "service"}], "range": "15m",
        "rows": [{"panels": [{"title": "Up", "type": "time_series", "queries": [{"expr": "vector(1)"}], "width": 12}]}],
    });
    let created = app.with_session(Method::POST, paths::DASHBOARDS, &admin).json(&dashboard).send().await.unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let uid = created.json::<Value>().await.unwrap()["uid"].as_str().unwrap().to_owned();
    browser.goto(&app.url(&format!("/dashboard?uid={uid}&var-service=checkout"))).await;
    let panel = ".dashboard-panel .chart .chart-band.deploy-band";
    eventually(20, "both deploys on the checkout dashboard", || async {
        let labels = data_of(&browser, panel, "label").await;
        (labels == ["deploy checkout 2.0.0", "deploy checkout 3.0.0"]).then_some(())
    })
    .await;
    browser.goto(&app.url(&format!("/dashboard?uid={uid}&var-service=payments"))).await;
    browser.wait_for(".dashboard-panel .chart").await;
    // The alerts and deploys of a chart come in one go: once drawn, none is checkout's.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert!(data_of(&browser, panel, "label").await.is_empty());
    browser.quit().await;
}

/// The service page's editor is the administrators': its server function saves what the API's
/// `PUT` would, refuses a deployer (403) and names the field it refuses.
#[tokio::test]
async fn administrators_edit_a_service_from_its_page_and_deployers_cannot() {
    let hook = TestWebhook::start(SIGNING_KEY).await;
    let app = start(None).await;
    let admin = app.admin_session().await;
    webhook_service(&app, &admin, &hook, json!({})).await;
    let deployer = app.user_session("dana", Role::Deployer).await;
    let editor = |session| crate::alerts_page::page_html(&app, session, "/services/checkout");
    assert!(editor(&admin).await.contains("service-editor"), "administrators see the editor");
    assert!(!editor(&deployer).await.contains("service-editor"), "deployers do not");

    let mut write = json!({"name": "checkout", "owner": "payments team", "environments": [{
        "name": "sync", "approval_required": true,
        "provider": {"kind": "webhook", "integration": "deploy-hook", "params": {"url": format!("{}/deploy", hook.hooks)}},
    }]});
    let app = &app;
    let save = |session: &'static str, spec: Value| {
        let spec = spec.to_string();
        let session = if session == "admin" { &admin } else { &deployer };
        async move {
            let form = [("name", "checkout"), ("spec", spec.as_str())];
            crate::pages::server_function(app, session, "/ui/fn/admin/save_service", &form).await
        }
    };
    assert_eq!(save("deployer", write.clone()).await.status(), 403);
    let saved = save("admin", write.clone()).await;
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());
    let stored = service(app, "checkout").await;
    assert_eq!((stored.owner.as_str(), stored.environments.len()), ("payments team", 1));
    assert!(stored.environments[0].approval_required);
    assert_eq!(stored.environments[0].current_version.as_deref(), Some("1.0.0"), "versions are the rollouts'");
    write["environments"][0]["gates"] = json!([{"name": "errors", "kind": "log", "query": "level:(error",
                                                "comparator": "<", "threshold": 1}]);
    let refused = save("admin", write).await;
    assert_error(refused, 400, "invalid_parameter", "environments.sync.gates.errors: query").await;
    let audit = app.audit(&admin, &[("action", "service.update")]).await;
    assert_eq!(audit.events[0].actor, "admin");
}
