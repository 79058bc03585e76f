//! The GitHub Actions, Argo CD and Kubernetes rollout providers end to end through the API:
//! an integration with the credential, a service whose environment points the provider at a
//! loopback stand-in of the system (`ci_standins_b`), a rollout requested and followed by the
//! runner to its end. Each provider deploys to success, fails, is aborted (its run cancelled,
//! terminated or paused at the system) and meets a refused credential; GitHub's run that
//! appears late, Kubernetes' exceeded progress deadline and a 5xx on one poll are followed
//! through.

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::paths;
use vigil_proto::rollouts::{Rollout, RolloutDetail, RolloutKind, RolloutState, Service};

use crate::ci_standins_b::{
    self, APPLICATION, ARGOCD_TOKEN, BRANCH, CONTAINER, DEPLOYMENT, GITHUB_TOKEN, IMAGE_REPOSITORY, KUBERNETES_TOKEN,
    NAMESPACE, OWNER, RATE_LIMITED_TOKEN, READ_ONLY_TOKEN, REPO, WORKFLOW,
};
use crate::helpers::{Db, TestApp, TestSession, assert_error, spawn_app_with};

/// Seconds a run of a stand-in takes at most (a few ticks of 100 ms).
const RUN_SECONDS: u64 = 20;

async fn start() -> (TestApp, TestSession) {
    let app = spawn_app_with(Db::Sqlite, |config| config.rollouts.tick_millis = 100).await;
    let admin = app.admin_session().await;
    (app, admin)
}

/// An integration `deploy` of `kind` with the secret `token`, and a service `shop` whose
/// `production` (at version `current`) deploys with `provider` and `params`.
/// Returns the integration's id.
async fn service(app: &TestApp, admin: &TestSession, kind: &str, token: &str, params: Value, current: &str) -> i64 {
    let integration = json!({"name": "deploy", "kind": kind, "secrets": {"token": token}});
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, admin).json(&integration).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let created: Value = response.json().await.unwrap();
    let body = json!({"name": "shop", "environments": [{"name": "production", "current_version": current,
                      "provider": {"kind": kind, "integration": "deploy", "params": params}}]});
    let response = app.with_session(Method::POST, paths::SERVICES, admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    created["id"].as_i64().unwrap()
}

async fn deploy(app: &TestApp, session: &TestSession, version: &str) -> Rollout {
    let body = json!({"service": "shop", "environment": "production", "version": version});
    let response = app.with_session(Method::POST, paths::ROLLOUTS, session).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn detail(app: &TestApp, id: i64) -> RolloutDetail {
    let response = app.read(&paths::ROLLOUT.replace("{id}", &id.to_string()), &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits for rollout `id` to be in `state`; panics with the last seen rollout otherwise (or
/// at once when it ended in another state).
async fn reaches(app: &TestApp, id: i64, state: RolloutState) -> RolloutDetail {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(RUN_SECONDS);
    loop {
        let seen = detail(app, id).await;
        if seen.rollout.state == state {
            return seen;
        }
        let ended = matches!(
            seen.rollout.state,
            RolloutState::Succeeded | RolloutState::Failed | RolloutState::Aborted | RolloutState::RolledBack
        );
        assert!(!ended && tokio::time::Instant::now() < deadline, "rollout {id} is not {}: {seen:#?}", state.as_str());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

async fn current_version(app: &TestApp) -> Option<String> {
    let service: Service = app.read(&paths::SERVICE.replace("{name}", "shop"), &[]).await.json().await.unwrap();
    service.environments[0].current_version.clone()
}

async fn abort(app: &TestApp, session: &TestSession, id: i64) -> RolloutDetail {
    let response = app
        .with_session(Method::POST, &paths::ROLLOUT_ABORT.replace("{id}", &id.to_string()), session)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    detail(app, id).await
}

fn kinds(detail: &RolloutDetail) -> Vec<&str> {
    detail.events.iter().map(|event| event.kind.as_str()).collect()
}

fn error_of(detail: &RolloutDetail) -> &str {
    detail.rollout.error.as_deref().unwrap_or_default()
}

// ---- GitHub Actions ----

fn github_params(api: &str, extra: Value) -> Value {
    // Polled at every tick of the tests' runner, not every 5 s.
    let mut params = json!({"api": api, "owner": OWNER, "repo": REPO, "workflow": WORKFLOW, "ref": BRANCH,
                            "inputs": {"target": "prod"}, "poll_seconds": 0});
    for (key, value) in extra.as_object().unwrap() {
        params[key] = value.clone();
    }
    params
}

#[tokio::test]
async fn github_actions_dispatches_the_version_once_and_follows_the_run_named_by_the_rollout() {
    let github = ci_standins_b::github_standin(true).await;
    let (app, admin) = start().await;
    let params = github_params(&github.url, json!({"rollout_input": "vigil_rollout"}));
    service(&app, &admin, "github", GITHUB_TOKEN, params, "1.0.0").await;
    // Someone else's run of the same workflow a second ago: not the rollout's, by its title.
    github.with_state(|state| state.add_foreign_run("0.9.0", 1, "failure"));
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(kinds(&done), ["requested", "triggered", "running", "analysing", "succeeded"]);
    let run = github.with_state(|state| state.runs_of("1.1.0")).pop().expect("a run");
    assert_eq!(done.rollout.run_url, Some(format!("https://github.com/{OWNER}/{REPO}/actions/runs/{}", run.id)));
    assert!(done.events[3].detail.contains(&format!("run {} succeeded", run.id)), "{done:#?}");

    let dispatches =
        github.requests_to("POST", &format!("/repos/{OWNER}/{REPO}/actions/workflows/{WORKFLOW}/dispatches"));
    assert_eq!(dispatches.len(), 1, "one dispatch");
    let dispatch = &dispatches[0];
    let marker = format!("vigil-rollout-{}", rollout.id);
    assert_eq!(
        dispatch.body,
        json!({"ref": BRANCH, "inputs": {"version": "1.1.0", "vigil_rollout": marker, "target": "prod"}})
    );
    let documented: Value = serde_json::from_str(ci_standins_b::GITHUB_DISPATCH_DOCUMENTED).unwrap();
    let documented = &documented["request"];
    let keys = |body: &Value| body.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&dispatch.body), keys(&documented["body"]), "the documented body");
    for (name, value) in documented["headers"].as_object().unwrap() {
        let value = value.as_str().unwrap().replace("<YOUR-TOKEN>", GITHUB_TOKEN);
        assert_eq!(dispatch.headers[name.as_str()], value.as_str(), "{name}");
    }
    let listings = github.requests_to("GET", &format!("/repos/{OWNER}/{REPO}/actions/workflows/{WORKFLOW}/runs?"));
    assert!(
        listings.iter().all(|listing| listing.target.contains("event=workflow_dispatch")
            && listing.target.contains("branch=main")
            && listing.target.contains("created=%3E%3D")),
        "{listings:?}"
    );
    assert_eq!(current_version(&app).await.as_deref(), Some("1.1.0"));

    // The Rollback button dispatches the previous good version the same way.
    let path = paths::SERVICE_ROLLBACK.replace("{name}", "shop").replace("{environment}", "production");
    let response = app.with_session(Method::POST, &path, &admin).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let rollback: Rollout = response.json().await.unwrap();
    assert_eq!((rollback.kind, rollback.version.as_str()), (RolloutKind::Rollback, "1.0.0"));
    reaches(&app, rollback.id, RolloutState::Succeeded).await;
    assert_eq!(github.with_state(|state| state.runs_of("1.0.0")).len(), 1);
    assert_eq!(current_version(&app).await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn github_actions_waits_for_a_run_that_appears_late_and_stays_queued() {
    let github = ci_standins_b::github_standin(false).await;
    let (app, admin) = start().await;
    service(&app, &admin, "github", GITHUB_TOKEN, github_params(&github.url, json!({})), "1.0.0").await;
    // A failed run from an hour ago: before the trigger, so never the rollout's.
    github.with_state(|state| state.add_foreign_run("0.9.0", 3600, "failure"));
    let rollout = deploy(&app, &admin, "slow-1.1.0").await;
    let running = reaches(&app, rollout.id, RolloutState::Running).await;
    assert!(running.events[2].detail.starts_with("run dispatch:"), "{running:#?}");
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    let run = github.with_state(|state| state.runs_of("slow-1.1.0")).pop().expect("a run");
    assert_eq!(done.rollout.run_url, Some(format!("https://github.com/{OWNER}/{REPO}/actions/runs/{}", run.id)));
    let listings = github.requests_to("GET", &format!("/repos/{OWNER}/{REPO}/actions/workflows/{WORKFLOW}/runs?"));
    assert!(listings.len() >= 7, "hidden for three listings, queued for three reads: {}", listings.len());
    assert_eq!(github.requests_to("POST", "/repos").len(), 1, "one dispatch");
}

#[tokio::test]
async fn github_actions_with_run_details_survives_a_5xx_on_one_poll() {
    let github = ci_standins_b::github_standin(false).await;
    let (app, admin) = start().await;
    let params = github_params(&github.url, json!({"return_run_details": true}));
    service(&app, &admin, "github", GITHUB_TOKEN, params, "1.0.0").await;
    let rollout = deploy(&app, &admin, "flaky-1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    let run = github.with_state(|state| state.runs_of("flaky-1.1.0")).pop().expect("a run");
    assert!(done.events[2].detail.starts_with(&format!("run {} at https://github.com/", run.id)), "{done:#?}");
    let reads = github.requests_to("GET", &format!("/repos/{OWNER}/{REPO}/actions/runs/{}", run.id));
    assert_eq!(reads.len(), 4, "the 503, then queued, in progress and completed");
    assert_eq!(github.requests_to("POST", "/repos")[0].body["return_run_details"], true);
    assert!(github.requests_to("GET", &format!("/repos/{OWNER}/{REPO}/actions/workflows/")).is_empty(), "no listing");
}

#[tokio::test]
async fn github_actions_failed_and_cancelled_runs_fail_the_rollout() {
    // Marked runs: the second dispatch may come in the same second as the first run's creation,
    // which only the marker (or the run details) tells apart.
    let github = ci_standins_b::github_standin(true).await;
    let (app, admin) = start().await;
    let params = github_params(&github.url, json!({"rollout_input": "vigil_rollout"}));
    service(&app, &admin, "github", GITHUB_TOKEN, params, "1.0.0").await;
    let failing = deploy(&app, &admin, "fail-1.1.0").await;
    let failed = reaches(&app, failing.id, RolloutState::Failed).await;
    assert!(
        error_of(&failed).starts_with("the run failed: run ") && error_of(&failed).contains("concluded failure"),
        "{failed:#?}"
    );
    let cancelling = deploy(&app, &admin, "cancel-1.1.1").await;
    let cancelled = reaches(&app, cancelling.id, RolloutState::Failed).await;
    assert!(error_of(&cancelled).starts_with("the run was cancelled at the provider"), "{cancelled:#?}");
    assert_eq!(current_version(&app).await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn aborting_a_github_actions_rollout_cancels_its_run() {
    let github = ci_standins_b::github_standin(false).await;
    let (app, admin) = start().await;
    service(&app, &admin, "github", GITHUB_TOKEN, github_params(&github.url, json!({})), "1.0.0").await;
    let rollout = deploy(&app, &admin, "hold-1.1.0").await;
    reaches(&app, rollout.id, RolloutState::Running).await;
    crate::helpers::eventually(RUN_SECONDS, "the run in progress", || async {
        let runs = github.with_state(|state| state.runs_of("hold-1.1.0"));
        runs.first().filter(|run| run.status == "in_progress").map(|run| run.id)
    })
    .await;
    let aborted = abort(&app, &admin, rollout.id).await;
    assert_eq!(aborted.rollout.state, RolloutState::Aborted);
    let run = github.with_state(|state| state.runs_of("hold-1.1.0")).pop().unwrap();
    assert_eq!((run.status.as_str(), run.conclusion.as_deref()), ("completed", Some("cancelled")));
    let cancel = aborted.events.iter().find(|event| event.kind == "cancel").expect("a cancel entry");
    assert!(cancel.detail.ends_with("cancelled at the provider"), "{aborted:#?}");
    assert_eq!(github.requests_to("POST", &format!("/repos/{OWNER}/{REPO}/actions/runs/{}/cancel", run.id)).len(), 1);
}

#[tokio::test]
async fn a_refused_github_token_fails_the_rollout_naming_github_and_the_status() {
    let github = ci_standins_b::github_standin(false).await;
    let (app, admin) = start().await;
    let id = service(&app, &admin, "github", "a wrong token", github_params(&github.url, json!({})), "1.0.0").await;
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        "the provider refused the trigger: github's dispatch of deploy.yml answered 401: the token was refused (Bad credentials)"
    );
    // A token that may read but not dispatch.
    let update = json!({"name": "deploy", "kind": "github", "secrets": {"token": READ_ONLY_TOKEN}});
    let path = paths::INTEGRATION.replace("{id}", &id.to_string());
    let response = app.with_session(Method::PUT, &path, &admin).json(&update).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let rollout = deploy(&app, &admin, "1.1.1").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(error_of(&failed).contains("answered 403: the token was refused (Resource not accessible"), "{failed:#?}");
    // A token whose rate limit is spent is told apart.
    let update = json!({"name": "deploy", "kind": "github", "secrets": {"token": RATE_LIMITED_TOKEN}});
    let response = app.with_session(Method::PUT, &path, &admin).json(&update).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let rollout = deploy(&app, &admin, "1.1.2").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(
        error_of(&failed).ends_with(
            "answered 403: the token's rate limit is spent until 2026-12-02T02:00:00Z (API rate limit exceeded for \
             user ID 1.)"
        ),
        "{failed:#?}"
    );
    assert!(github.with_state(|state| state.runs.is_empty()), "nothing dispatched");
}

#[tokio::test]
async fn provider_parameters_are_checked_when_the_service_is_saved() {
    let (app, admin) = start().await;
    let cases = [
        ("github", json!({"owner": "../x", "repo": REPO, "workflow": WORKFLOW, "ref": BRANCH}), "params.owner"),
        ("github", json!({"owner": OWNER, "repo": REPO, "ref": BRANCH}), "params.workflow is required"),
        ("argocd", json!({"url": "https://argocd.example"}), "params.application is required"),
        ("argocd", json!({"url": "argocd.example", "application": APPLICATION}), "params.url"),
        (
            "kubernetes",
            json!({"api_server": "https://k8s.example:6443", "namespace": "Shop", "deployment": DEPLOYMENT,
                   "container": CONTAINER, "image_repository": IMAGE_REPOSITORY}),
            "params.namespace",
        ),
        (
            "kubernetes",
            json!({"api_server": "https://k8s.example:6443", "namespace": NAMESPACE, "deployment": DEPLOYMENT,
                   "container": CONTAINER, "image_repository": IMAGE_REPOSITORY, "ca_cert": "not a PEM"}),
            "params.ca_cert",
        ),
    ];
    for (kind, params, needle) in cases {
        let body = json!({"name": "shop", "environments": [{"name": "production", "provider": {"kind": kind, "params": params}}]});
        let response = app.with_session(Method::POST, paths::SERVICES, &admin).json(&body).send().await.unwrap();
        assert_error(response, 400, "invalid_parameter", needle).await;
    }
    let body =
        json!({"name": "shop", "environments": [{"name": "production", "provider": {"kind": "nomad", "params": {}}}]});
    let response = app.with_session(Method::POST, paths::SERVICES, &admin).json(&body).send().await.unwrap();
    assert_error(response, 400, "invalid_parameter", "github, argocd, kubernetes").await;
}

// ---- Kubernetes ----

fn kubernetes_params(api_server: &str) -> Value {
    json!({"api_server": api_server, "namespace": NAMESPACE, "deployment": DEPLOYMENT, "container": CONTAINER,
           "image_repository": IMAGE_REPOSITORY})
}

#[tokio::test]
async fn kubernetes_patches_the_image_once_and_waits_for_the_rollout_as_kubectl_does() {
    let kubernetes = ci_standins_b::kubernetes_standin("1.0.0").await;
    let (app, admin) = start().await;
    service(&app, &admin, "kubernetes", KUBERNETES_TOKEN, kubernetes_params(&kubernetes.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(kinds(&done), ["requested", "triggered", "running", "analysing", "succeeded"]);
    assert!(done.events[3].detail.starts_with("rolled out: 3 replicas"), "{done:#?}");
    let path = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}");
    let patches = kubernetes.requests_to("PATCH", &path);
    assert_eq!(patches.len(), 1, "one patch");
    let patch = &patches[0];
    assert_eq!(patch.headers["content-type"], "application/strategic-merge-patch+json");
    assert_eq!(patch.headers["authorization"], format!("Bearer {KUBERNETES_TOKEN}").as_str());
    assert_eq!(
        patch.body["spec"]["template"]["spec"]["containers"],
        json!([{"name": CONTAINER, "image": format!("{IMAGE_REPOSITORY}:1.1.0")}])
    );
    assert_eq!(patch.body["metadata"]["annotations"]["vigil.dev/rollout"], rollout.id.to_string());
    let cause = patch.body["metadata"]["annotations"]["kubernetes.io/change-cause"].as_str().unwrap();
    assert!(cause.starts_with(&format!("vigil rollout {} (deploy)", rollout.id)), "{cause}");
    let (image, proxy) = kubernetes.with_state(|state| {
        (state.image(), state.deployment["spec"]["template"]["spec"]["containers"][1]["image"].clone())
    });
    assert_eq!(image, format!("{IMAGE_REPOSITORY}:1.1.0"));
    assert_eq!(proxy, "envoyproxy/envoy:v1.31", "the other container is left alone");
    // The waiting states of `kubectl rollout status` were gone through (reads 1 to 5).
    assert!(kubernetes.requests_to("GET", &path).len() >= 6);
    assert_eq!(current_version(&app).await.as_deref(), Some("1.1.0"));

    let back = app
        .with_session(
            Method::POST,
            &paths::SERVICE_ROLLBACK.replace("{name}", "shop").replace("{environment}", "production"),
            &admin,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(back.status(), 201);
    let rollback: Rollout = back.json().await.unwrap();
    reaches(&app, rollback.id, RolloutState::Succeeded).await;
    assert_eq!(kubernetes.with_state(|state| state.image()), format!("{IMAGE_REPOSITORY}:1.0.0"));
    // Through the template of 1.0.0's ReplicaSet (see the rollback test).
    let undo = kubernetes.requests_to("PATCH", &path)[1].body.clone();
    let cause = undo[3]["value"]["kubernetes.io/change-cause"].as_str().unwrap();
    assert!(cause.contains(&format!("vigil rollout {} (rollback)", rollback.id)), "{cause}");
}

#[tokio::test]
async fn a_kubernetes_rollback_restores_the_template_the_version_ran_with() {
    let kubernetes = ci_standins_b::kubernetes_standin("1.0.0").await;
    let (app, admin) = start().await;
    service(&app, &admin, "kubernetes", KUBERNETES_TOKEN, kubernetes_params(&kubernetes.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "1.1.0").await;
    reaches(&app, rollout.id, RolloutState::Succeeded).await;
    // The version's configuration changed with it (revision 6: 1.1.0 with MODE=v2).
    kubernetes.with_state(|state| {
        state.edit_template(|template| template["spec"]["containers"][0]["env"][0]["value"] = json!("v2"))
    });
    let rollback_path = paths::SERVICE_ROLLBACK.replace("{name}", "shop").replace("{environment}", "production");
    let response = app.with_session(Method::POST, &rollback_path, &admin).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let rollback: Rollout = response.json().await.unwrap();
    reaches(&app, rollback.id, RolloutState::Succeeded).await;

    let deployment = format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{DEPLOYMENT}");
    let patch = kubernetes.requests_to("PATCH", &deployment).pop().unwrap();
    assert_eq!(patch.headers["content-type"], "application/json-patch+json");
    let operations = patch.body.as_array().unwrap();
    assert_eq!(operations[0], json!({"op": "test", "path": "/metadata/generation", "value": 6}));
    assert_eq!(
        (operations[1]["op"].as_str(), operations[1]["path"].as_str()),
        (Some("replace"), Some("/spec/template"))
    );
    assert!(operations[1]["value"]["metadata"]["labels"].get("pod-template-hash").is_none());
    let cause = operations[3]["value"]["kubernetes.io/change-cause"].as_str().unwrap();
    assert!(cause.ends_with("(the template of revision 4)"), "{cause}");
    let listed = kubernetes.requests_to("GET", &format!("/apis/apps/v1/namespaces/{NAMESPACE}/replicasets"));
    assert_eq!(listed.len(), 1);
    assert!(listed[0].target.ends_with("?labelSelector=app%3Dweb"), "{}", listed[0].target);
    let (image, mode, revision) = kubernetes.with_state(|state| {
        let app_container = &state.deployment["spec"]["template"]["spec"]["containers"][0];
        (
            state.image(),
            app_container["env"][0]["value"].clone(),
            state.deployment["metadata"]["annotations"]["deployment.kubernetes.io/revision"].clone(),
        )
    });
    assert_eq!((image, mode), (format!("{IMAGE_REPOSITORY}:1.0.0"), json!("v1")), "the old template, not the canary's");
    assert_eq!(revision, "7", "revision 4's ReplicaSet is the newest again");
    assert_eq!(current_version(&app).await.as_deref(), Some("1.0.0"));

    // No ReplicaSet left for the version: the image is set, as for a deploy.
    let rollout = deploy(&app, &admin, "1.2.0").await;
    reaches(&app, rollout.id, RolloutState::Succeeded).await;
    kubernetes.with_state(|state| state.replica_sets.retain(|set| !set.to_string().contains("web:1.0.0")));
    let response = app.with_session(Method::POST, &rollback_path, &admin).send().await.unwrap();
    let rollback: Rollout = response.json().await.unwrap();
    reaches(&app, rollback.id, RolloutState::Succeeded).await;
    let patch = kubernetes.requests_to("PATCH", &deployment).pop().unwrap();
    assert_eq!(patch.headers["content-type"], "application/strategic-merge-patch+json");
    assert_eq!(kubernetes.with_state(|state| state.image()), format!("{IMAGE_REPOSITORY}:1.0.0"));
}

#[tokio::test]
async fn a_kubernetes_rollout_past_its_progress_deadline_fails() {
    let kubernetes = ci_standins_b::kubernetes_standin("1.0.0").await;
    let (app, admin) = start().await;
    service(&app, &admin, "kubernetes", KUBERNETES_TOKEN, kubernetes_params(&kubernetes.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "stuck-1.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(
        error_of(&failed).starts_with("the run failed: the deployment exceeded its progress deadline"),
        "{failed:#?}"
    );
    assert_eq!(current_version(&app).await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn aborting_a_kubernetes_rollout_pauses_the_deployment_and_the_next_deploy_resumes_it() {
    let kubernetes = ci_standins_b::kubernetes_standin("1.0.0").await;
    let (app, admin) = start().await;
    service(&app, &admin, "kubernetes", KUBERNETES_TOKEN, kubernetes_params(&kubernetes.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "hold-1.1.0").await;
    reaches(&app, rollout.id, RolloutState::Running).await;
    let aborted = abort(&app, &admin, rollout.id).await;
    assert_eq!(aborted.rollout.state, RolloutState::Aborted);
    assert!(
        aborted
            .events
            .iter()
            .any(|event| event.kind == "cancel" && event.detail.ends_with("cancelled at the provider"))
    );
    assert_eq!(kubernetes.with_state(|state| state.deployment["spec"]["paused"].clone()), true);

    let next = deploy(&app, &admin, "1.2.0").await;
    reaches(&app, next.id, RolloutState::Succeeded).await;
    assert_eq!(kubernetes.with_state(|state| state.deployment["spec"]["paused"].clone()), false);
}

#[tokio::test]
async fn kubernetes_refusals_fail_the_rollout_with_the_api_servers_reason() {
    let kubernetes = ci_standins_b::kubernetes_standin("1.0.0").await;
    let (app, admin) = start().await;
    service(&app, &admin, "kubernetes", "a wrong token", kubernetes_params(&kubernetes.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        format!(
            "the provider refused the trigger: kubernetes's read of deployment {NAMESPACE}/{DEPLOYMENT} answered 401: \
             the token was refused (Unauthorized)"
        )
    );
    // A version that is no image tag is refused before anything is sent.
    let before = kubernetes.requests().len();
    let rollout = deploy(&app, &admin, "release/2026-12").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(error_of(&failed).contains("is not an image tag"), "{failed:#?}");
    assert_eq!(kubernetes.requests().len(), before);
    assert!(kubernetes.requests_to("PATCH", "/").is_empty());
}

#[tokio::test]
async fn a_kubernetes_token_that_may_only_read_is_refused_the_patch_and_a_wrong_container_is_named() {
    let kubernetes = ci_standins_b::kubernetes_standin("1.0.0").await;
    let (app, admin) = start().await;
    service(&app, &admin, "kubernetes", READ_ONLY_TOKEN, kubernetes_params(&kubernetes.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(
        error_of(&failed).contains("patch of deployment shop/web answered 403: the token was refused"),
        "{failed:#?}"
    );
    assert!(error_of(&failed).contains("cannot patch resource"), "{failed:#?}");

    let mut params = kubernetes_params(&kubernetes.url);
    params["container"] = json!("sidecar");
    let body = json!({"name": "other", "environments": [{"name": "production",
                      "provider": {"kind": "kubernetes", "integration": "deploy", "params": params}}]});
    let response = app.with_session(Method::POST, paths::SERVICES, &admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body = json!({"service": "other", "environment": "production", "version": "1.1.0"});
    let response = app.with_session(Method::POST, paths::ROLLOUTS, &admin).json(&body).send().await.unwrap();
    let rollout: Rollout = response.json().await.unwrap();
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(error_of(&failed).contains("has no container \"sidecar\" (it has app, proxy)"), "{failed:#?}");
    assert_eq!(
        kubernetes
            .with_state(|state| state.deployment["spec"]["template"]["spec"]["containers"].as_array().unwrap().len()),
        2
    );
}

#[tokio::test]
async fn kubernetes_over_https_trusts_the_clusters_ca_and_nothing_else_unless_told() {
    let (kubernetes, ca_pem) = ci_standins_b::kubernetes_standin_tls("1.0.0").await;
    let (app, admin) = start().await;
    let integration = json!({"name": "cluster", "kind": "kubernetes", "settings": {"ca_cert": ca_pem}, "secrets": {"token": KUBERNETES_TOKEN}});
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, &admin).json(&integration).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let plain = json!({"name": "plain", "kind": "kubernetes", "secrets": {"token": KUBERNETES_TOKEN}});
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, &admin).json(&plain).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let mut insecure = kubernetes_params(&kubernetes.url);
    insecure["insecure_skip_tls_verify"] = json!(true);
    let environment = |name: &str, integration: &str, params: Value| json!({"name": name, "provider": {"kind": "kubernetes", "integration": integration, "params": params}});
    let body = json!({"name": "shop", "environments": [
        environment("trusted", "cluster", kubernetes_params(&kubernetes.url)),
        environment("untrusted", "plain", kubernetes_params(&kubernetes.url)),
        environment("insecure", "plain", insecure),
    ]});
    let response = app.with_session(Method::POST, paths::SERVICES, &admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    let request = |environment: &'static str, version: &'static str| {
        let body = json!({"service": "shop", "environment": environment, "version": version});
        app.with_session(Method::POST, paths::ROLLOUTS, &admin).json(&body).send()
    };
    let untrusted: Rollout = request("untrusted", "1.1.0").await.unwrap().json().await.unwrap();
    let failed = reaches(&app, untrusted.id, RolloutState::Failed).await;
    assert!(
        error_of(&failed).starts_with("the provider refused the trigger: cannot reach kubernetes's read"),
        "{failed:#?}"
    );
    let trusted: Rollout = request("trusted", "1.1.0").await.unwrap().json().await.unwrap();
    reaches(&app, trusted.id, RolloutState::Succeeded).await;
    let insecure: Rollout = request("insecure", "1.2.0").await.unwrap().json().await.unwrap();
    reaches(&app, insecure.id, RolloutState::Succeeded).await;
    assert_eq!(kubernetes.with_state(|state| state.image()), format!("{IMAGE_REPOSITORY}:1.2.0"));
    assert_eq!(kubernetes.requests_to("PATCH", "/").len(), 2, "nothing patched through the untrusted connection");
}

// ---- Argo CD ----

fn argocd_params(url: &str) -> Value {
    json!({"url": url, "application": APPLICATION, "prune": true, "sync_options": ["ApplyOutOfSyncOnly=true"]})
}

#[tokio::test]
async fn argocd_syncs_to_the_version_and_waits_until_synced_and_healthy() {
    let argocd = ci_standins_b::argocd_standin().await;
    let (app, admin) = start().await;
    service(&app, &admin, "argocd", ARGOCD_TOKEN, argocd_params(&argocd.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "v1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(done.rollout.run_url, Some(format!("{}/applications/{APPLICATION}", argocd.url)));
    assert!(done.events[3].detail.starts_with("synced to v1.1.0 (") && done.events[3].detail.ends_with("and Healthy"));
    let syncs = argocd.requests_to("POST", &format!("/api/v1/applications/{APPLICATION}/sync"));
    assert_eq!(syncs.len(), 1, "one sync");
    assert_eq!(
        syncs[0].body,
        json!({"name": APPLICATION, "revision": "v1.1.0", "prune": true, "syncOptions": {"items": ["ApplyOutOfSyncOnly=true"]}})
    );
    assert_eq!(syncs[0].headers["authorization"], format!("Bearer {ARGOCD_TOKEN}").as_str());
    // Succeeded but Progressing at the second read, Healthy at the third.
    assert!(argocd.requests_to("GET", &format!("/api/v1/applications/{APPLICATION}")).len() >= 3);
    assert_eq!(current_version(&app).await.as_deref(), Some("v1.1.0"));
}

#[tokio::test]
async fn argocd_failed_and_degraded_syncs_fail_the_rollout() {
    let argocd = ci_standins_b::argocd_standin().await;
    let (app, admin) = start().await;
    service(&app, &admin, "argocd", ARGOCD_TOKEN, argocd_params(&argocd.url), "1.0.0").await;
    let failing = deploy(&app, &admin, "fail-1.1.0").await;
    let failed = reaches(&app, failing.id, RolloutState::Failed).await;
    assert!(error_of(&failed).contains("ended Failed: one or more objects failed to apply"), "{failed:#?}");
    let degrading = deploy(&app, &admin, "degraded-1.1.1").await;
    let degraded = reaches(&app, degrading.id, RolloutState::Failed).await;
    assert!(error_of(&degraded).contains("the application is Degraded: Deployment"), "{degraded:#?}");
    assert_eq!(current_version(&app).await.as_deref(), Some("1.0.0"));
}

#[tokio::test]
async fn aborting_an_argocd_rollout_terminates_the_sync() {
    let argocd = ci_standins_b::argocd_standin().await;
    let (app, admin) = start().await;
    service(&app, &admin, "argocd", ARGOCD_TOKEN, argocd_params(&argocd.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "hold-1.1.0").await;
    reaches(&app, rollout.id, RolloutState::Running).await;
    let aborted = abort(&app, &admin, rollout.id).await;
    assert_eq!(aborted.rollout.state, RolloutState::Aborted);
    assert!(
        aborted
            .events
            .iter()
            .any(|event| event.kind == "cancel" && event.detail.ends_with("cancelled at the provider"))
    );
    assert_eq!(argocd.requests_to("DELETE", &format!("/api/v1/applications/{APPLICATION}/operation")).len(), 1);
    assert_eq!(argocd.with_state(|state| state.phase.clone()), "Terminating");
}

#[tokio::test]
async fn a_refused_argocd_token_and_a_5xx_on_one_poll() {
    let argocd = ci_standins_b::argocd_standin().await;
    let (app, admin) = start().await;
    service(&app, &admin, "argocd", "a wrong token", argocd_params(&argocd.url), "1.0.0").await;
    let rollout = deploy(&app, &admin, "1.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        "the provider refused the trigger: argocd's sync of shop answered 401: the token was refused (invalid session: \
         token signature is invalid)"
    );

    let mut params = argocd_params(&argocd.url);
    params["application"] = json!(APPLICATION);
    let integration = json!({"name": "argocd-good", "kind": "argocd", "secrets": {"token": ARGOCD_TOKEN}});
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, &admin).json(&integration).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body = json!({"name": "flaky", "environments": [{"name": "production",
                      "provider": {"kind": "argocd", "integration": "argocd-good", "params": params}}]});
    let response = app.with_session(Method::POST, paths::SERVICES, &admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201);
    let body = json!({"service": "flaky", "environment": "production", "version": "flaky-1.1.0"});
    let response = app.with_session(Method::POST, paths::ROLLOUTS, &admin).json(&body).send().await.unwrap();
    let rollout: Rollout = response.json().await.unwrap();
    reaches(&app, rollout.id, RolloutState::Succeeded).await;
    let syncs = argocd.requests_to("POST", "/api/v1/applications/shop/sync");
    let good = syncs.iter().filter(|sync| sync.headers["authorization"] == format!("Bearer {ARGOCD_TOKEN}").as_str());
    assert_eq!(good.count(), 1, "one sync with the good token");
    // The 503, the running read, the Progressing one and the Healthy one.
    assert!(argocd.requests_to("GET", "/api/v1/applications/shop").len() >= 4);
}
