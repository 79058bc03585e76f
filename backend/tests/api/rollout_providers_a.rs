//! The Jenkins, GitLab CI and CircleCI rollout providers end to end, through the API: an
//! integration holding the credential, a service whose environment deploys through the
//! provider pointed at a loopback stand-in of the system (`support/ci_standins_a.rs`), a
//! rollout followed to its end. For each: success (the version sent once, the run's link, the
//! versions moved), failure, abort (the cancel reaches the system) and a refused credential;
//! for Jenkins also a slow queue, the crumb and a Jenkins without a crumb issuer; a 503 on one
//! poll is tolerated (the runner tries again at its next tick).

use reqwest::Method;
use serde_json::{Value, json};
use vigil_proto::paths;
use vigil_proto::rollouts::{Rollout, RolloutDetail, RolloutState, Service};

use crate::ci_standins_a::{
    self as standins, CircleCiPlan, GitLabPlan, JenkinsPlan, TestCircleCi, TestGitLab, TestJenkins,
};
use crate::helpers::{Db, TestApp, TestSession, eventually, spawn_app_with};

async fn start() -> TestApp {
    spawn_app_with(Db::Sqlite, |config| config.rollouts.tick_millis = 100).await
}

async fn integration(app: &TestApp, admin: &TestSession, body: Value) {
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

/// A service `shop` with one environment per `(name, provider)`, all at version 1.0.0.
async fn service(app: &TestApp, admin: &TestSession, environments: &[(&str, Value)]) {
    let environments: Vec<Value> = environments
        .iter()
        .map(|(name, provider)| json!({"name": name, "current_version": "1.0.0", "provider": provider}))
        .collect();
    let body = json!({"name": "shop", "environments": environments});
    let response = app.with_session(Method::POST, paths::SERVICES, admin).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

async fn deploy(app: &TestApp, session: &TestSession, environment: &str, version: &str) -> Rollout {
    let body = json!({"service": "shop", "environment": environment, "version": version});
    let response = app.with_session(Method::POST, paths::ROLLOUTS, session).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn detail(app: &TestApp, id: i64) -> RolloutDetail {
    let response = app.read(&paths::ROLLOUT.replace("{id}", &id.to_string()), &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits for a rollout to reach `state`; another end fails at once, with the rollout.
async fn reaches(app: &TestApp, id: i64, state: RolloutState) -> RolloutDetail {
    eventually(20, &format!("rollout {id} {}", state.as_str()), || async {
        let seen = detail(app, id).await;
        let ended_elsewhere = seen.rollout.state.is_terminal() && seen.rollout.state != state;
        assert!(
            !ended_elsewhere,
            "rollout {id} ended {} instead of {}: {seen:#?}",
            seen.rollout.state.as_str(),
            state.as_str()
        );
        (seen.rollout.state == state).then_some(seen)
    })
    .await
}

async fn abort(app: &TestApp, session: &TestSession, id: i64) -> RolloutDetail {
    let path = paths::ROLLOUT_ABORT.replace("{id}", &id.to_string());
    let response = app.with_session(Method::POST, &path, session).send().await.unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let aborted = detail(app, id).await;
    assert_eq!(aborted.rollout.state, RolloutState::Aborted);
    assert!(
        aborted
            .events
            .iter()
            .any(|event| event.kind == "cancel" && event.detail.ends_with("cancelled at the provider")),
        "{aborted:#?}"
    );
    aborted
}

async fn current_version(app: &TestApp, environment: &str) -> Option<String> {
    let service: Service = app.read(&paths::SERVICE.replace("{name}", "shop"), &[]).await.json().await.unwrap();
    service.environments.into_iter().find(|candidate| candidate.name == environment).unwrap().current_version
}

fn kinds(detail: &RolloutDetail) -> Vec<&str> {
    detail.events.iter().map(|event| event.kind.as_str()).collect()
}

fn error_of(detail: &RolloutDetail) -> &str {
    detail.rollout.error.as_deref().unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Jenkins

async fn jenkins_integration(app: &TestApp, admin: &TestSession, token: &str) {
    integration(
        app,
        admin,
        json!({"name": "jenkins", "kind": "jenkins", "settings": {"username": standins::JENKINS_USER},
               "secrets": {"token": token}}),
    )
    .await;
}

fn jenkins_provider(jenkins: &TestJenkins) -> Value {
    json!({"kind": "jenkins", "integration": "jenkins",
           "params": {"url": jenkins.url(), "job": "shop/deploy", "parameters": {"TARGET": "prod"}}})
}

#[tokio::test]
async fn jenkins_builds_a_job_in_a_folder_with_a_crumb_through_a_slow_queue_to_success() {
    let jenkins = TestJenkins::start(JenkinsPlan {
        queued_polls: 3,
        build: vec!["building", "building", "SUCCESS"],
        ..JenkinsPlan::default()
    })
    .await;
    let app = start().await;
    let admin = app.admin_session().await;
    jenkins_integration(&app, &admin, standins::JENKINS_TOKEN).await;
    service(&app, &admin, &[("production", jenkins_provider(&jenkins))]).await;
    let rollout = deploy(&app, &admin, "production", "1.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(kinds(&done), ["requested", "triggered", "running", "analysing", "succeeded"]);
    let build_url = format!("{}/job/shop/job/deploy/1/", jenkins.url());
    assert_eq!(done.rollout.run_url.as_deref(), Some(build_url.as_str()), "{done:#?}");
    assert_eq!(current_version(&app, "production").await.as_deref(), Some("1.1.0"));

    let triggers = jenkins.triggers();
    assert_eq!(triggers.len(), 1, "triggered once: {triggers:?}");
    assert_eq!(triggers[0].path, "/job/shop/job/deploy/buildWithParameters");
    assert_eq!(
        triggers[0].form(),
        [("VERSION".to_owned(), "1.1.0".to_owned()), ("TARGET".to_owned(), "prod".to_owned())]
    );
    // The stand-in answers 403 to a POST without the crumb of its session: the trigger had both.
    let requests = jenkins.requests();
    let crumb_at = requests.iter().position(|request| request.path == "/crumbIssuer/api/json");
    let trigger_at = requests.iter().position(|request| request.path.ends_with("/buildWithParameters"));
    assert!(crumb_at < trigger_at, "the crumb is fetched first: {requests:?}");
    let queue_polls = requests.iter().filter(|request| request.path == "/queue/item/101/api/json").count();
    assert!(queue_polls >= 4, "three polls waiting for an executor, then the build: {requests:?}");
    assert_eq!(jenkins.builds_started(), 1);
}

#[tokio::test]
async fn a_failing_jenkins_build_fails_the_rollout_and_one_without_crumbs_survives_a_503_and_a_forgotten_queue_item() {
    let failing =
        TestJenkins::start(JenkinsPlan { build: vec!["building", "FAILURE"], ..JenkinsPlan::default() }).await;
    let flaky = TestJenkins::start(JenkinsPlan {
        crumbs: false,
        build: vec!["building", "building", "building", "SUCCESS"],
        unavailable_poll: Some(1),
        forget_started: true,
        ..JenkinsPlan::default()
    })
    .await;
    let app = start().await;
    let admin = app.admin_session().await;
    jenkins_integration(&app, &admin, standins::JENKINS_TOKEN).await;
    service(&app, &admin, &[("failing", jenkins_provider(&failing)), ("flaky", jenkins_provider(&flaky))]).await;

    let rollout = deploy(&app, &admin, "failing", "2.0.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert!(error_of(&failed).starts_with("the run failed: shop » deploy #1: FAILURE"), "{failed:#?}");
    assert_eq!(current_version(&app, "failing").await.as_deref(), Some("1.0.0"));

    let rollout = deploy(&app, &admin, "flaky", "2.0.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(
        kinds(&done),
        ["requested", "triggered", "running", "analysing", "succeeded"],
        "the 503 changed nothing"
    );
    let requests = flaky.requests();
    assert!(requests.iter().any(|request| request.path == "/crumbIssuer/api/json"), "asked for a crumb");
    let build_polls = requests.iter().filter(|request| request.path == "/job/shop/job/deploy/1/api/json").count();
    assert!(build_polls >= 4, "polled again after the 503: {requests:?}");
    // The queue item was forgotten once the build started: the build was found by its queueId.
    assert!(
        requests
            .iter()
            .any(|request| request.path == "/job/shop/job/deploy/api/json" && request.query.starts_with("tree=builds")),
        "{requests:?}"
    );
    assert_eq!(flaky.triggers().len(), 1);
}

#[tokio::test]
async fn aborting_jenkins_rollouts_stops_the_build_or_cancels_the_queued_item() {
    let building = TestJenkins::start(JenkinsPlan { build: vec!["building"], ..JenkinsPlan::default() }).await;
    let queued = TestJenkins::start(JenkinsPlan { queued_polls: usize::MAX, ..JenkinsPlan::default() }).await;
    let app = start().await;
    let admin = app.admin_session().await;
    jenkins_integration(&app, &admin, standins::JENKINS_TOKEN).await;
    service(&app, &admin, &[("building", jenkins_provider(&building)), ("queued", jenkins_provider(&queued))]).await;

    let rollout = deploy(&app, &admin, "building", "3.0.0").await;
    eventually(20, "the build to start", || async { (building.builds_started() == 1).then_some(()) }).await;
    reaches(&app, rollout.id, RolloutState::Running).await;
    abort(&app, &admin, rollout.id).await;
    assert!(
        building
            .requests()
            .iter()
            .any(|request| request.method == "POST" && request.path == "/job/shop/job/deploy/1/stop")
    );
    assert!(building.stopped());

    let rollout = deploy(&app, &admin, "queued", "3.0.0").await;
    reaches(&app, rollout.id, RolloutState::Running).await;
    abort(&app, &admin, rollout.id).await;
    let cancel = queued.requests().into_iter().find(|request| request.path == "/queue/cancelItem");
    assert_eq!(cancel.map(|request| (request.method, request.query)), Some(("POST".to_owned(), "id=101".to_owned())));
    assert!(queued.stopped());
    assert_eq!(queued.builds_started(), 0);
}

#[tokio::test]
async fn a_refused_jenkins_credential_fails_the_rollout_naming_the_status() {
    let jenkins = TestJenkins::start(JenkinsPlan::default()).await;
    let app = start().await;
    let admin = app.admin_session().await;
    jenkins_integration(&app, &admin, "not the token").await;
    service(&app, &admin, &[("production", jenkins_provider(&jenkins))]).await;
    let rollout = deploy(&app, &admin, "production", "1.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        "the provider refused the trigger: jenkins's crumb issuer answered 401: the username or API token is wrong"
    );
    assert!(jenkins.triggers().is_empty());
}

// ---------------------------------------------------------------------------------------------
// GitLab

const GITLAB_REQUESTS: &str = include_str!("../data/ci-triggers/gitlab_pipeline_trigger_requests.json");

async fn gitlab_integration(app: &TestApp, admin: &TestSession, trigger_token: &str) {
    integration(
        app,
        admin,
        json!({"name": "gitlab", "kind": "gitlab",
               "secrets": {"trigger_token": trigger_token, "api_token": standins::GITLAB_API_TOKEN}}),
    )
    .await;
}

fn gitlab_provider(gitlab: &TestGitLab, project: &str) -> Value {
    json!({"kind": "gitlab", "integration": "gitlab",
           "params": {"url": gitlab.url(), "project": project, "ref": standins::GITLAB_REF,
                      "version_variable": "DEPLOY_VERSION", "variables": {"TARGET": "prod"}}})
}

#[tokio::test]
async fn gitlab_triggers_a_pipeline_with_the_version_as_a_variable_and_follows_it_to_success() {
    let gitlab = TestGitLab::start(GitLabPlan {
        statuses: vec!["created", "pending", "running", "running", "success"],
        unavailable_poll: Some(2),
    })
    .await;
    let app = start().await;
    let admin = app.admin_session().await;
    gitlab_integration(&app, &admin, standins::GITLAB_TRIGGER_TOKEN).await;
    service(&app, &admin, &[("production", gitlab_provider(&gitlab, standins::GITLAB_PROJECT_PATH))]).await;
    let rollout = deploy(&app, &admin, "production", "4.2.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(kinds(&done), ["requested", "triggered", "running", "analysing", "succeeded"]);
    let pipeline_url = format!("{}/acme/shop/-/pipelines/9001", gitlab.url());
    assert_eq!(done.rollout.run_url.as_deref(), Some(pipeline_url.as_str()));
    assert!(done.events[2].detail.contains(&pipeline_url), "{:#?}", done.events);
    assert_eq!(current_version(&app, "production").await.as_deref(), Some("4.2.0"));

    let triggers = gitlab.triggers();
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    let trigger = &triggers[0];
    assert_eq!(trigger.path, "/api/v4/projects/acme%2Fshop/trigger/pipeline");
    // GitLab's documented shape "form fields with CI/CD variables": token, ref, variables[NAME].
    let documented: Value = serde_json::from_str(GITLAB_REQUESTS).unwrap();
    let shape = documented["requests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|request| request["name"] == "form fields with CI/CD variables")
        .unwrap();
    assert!(shape["url"].as_str().unwrap().ends_with("/api/v4/projects/123456/trigger/pipeline"));
    let documented_fields: Vec<&str> = shape["form"].as_object().unwrap().keys().map(String::as_str).collect();
    let sent = trigger.form();
    for field in &documented_fields {
        let is_variable = field.starts_with("variables[");
        assert!(is_variable || sent.iter().any(|(name, _)| name == field), "{field} missing from {sent:?}");
    }
    assert_eq!(
        sent,
        [
            ("token".to_owned(), standins::GITLAB_TRIGGER_TOKEN.to_owned()),
            ("ref".to_owned(), "main".to_owned()),
            ("variables[DEPLOY_VERSION]".to_owned(), "4.2.0".to_owned()),
            ("variables[TARGET]".to_owned(), "prod".to_owned()),
        ]
    );
    let polls = gitlab.requests().into_iter().filter(|request| request.path.ends_with("/pipelines/9001")).count();
    assert!(polls >= 5, "the 503 of the third poll was followed by more polls");
}

#[tokio::test]
async fn a_failed_gitlab_pipeline_fails_the_rollout_and_abort_cancels_a_running_one() {
    let failing =
        TestGitLab::start(GitLabPlan { statuses: vec!["pending", "running", "failed"], unavailable_poll: None }).await;
    let running = TestGitLab::start(GitLabPlan { statuses: vec!["running"], unavailable_poll: None }).await;
    let app = start().await;
    let admin = app.admin_session().await;
    gitlab_integration(&app, &admin, standins::GITLAB_TRIGGER_TOKEN).await;
    let project = standins::GITLAB_PROJECT_ID.to_string();
    service(
        &app,
        &admin,
        &[("failing", gitlab_provider(&failing, &project)), ("running", gitlab_provider(&running, &project))],
    )
    .await;

    let rollout = deploy(&app, &admin, "failing", "5.0.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(error_of(&failed), "the run failed: pipeline failed");
    assert_eq!(failing.triggers()[0].path, "/api/v4/projects/4711/trigger/pipeline");

    let rollout = deploy(&app, &admin, "running", "5.0.0").await;
    eventually(20, "a poll of the pipeline", || async {
        running.requests().iter().any(|request| request.method == "GET").then_some(())
    })
    .await;
    abort(&app, &admin, rollout.id).await;
    assert!(running.canceled());
    let cancel = running.requests().into_iter().find(|request| request.path.ends_with("/cancel")).unwrap();
    assert_eq!((cancel.method.as_str(), cancel.path.as_str()), ("POST", "/api/v4/projects/4711/pipelines/9001/cancel"));
}

#[tokio::test]
async fn a_refused_gitlab_trigger_token_fails_the_rollout_naming_the_status() {
    let gitlab = TestGitLab::start(GitLabPlan::default()).await;
    let app = start().await;
    let admin = app.admin_session().await;
    gitlab_integration(&app, &admin, "glptt-revoked").await;
    service(&app, &admin, &[("production", gitlab_provider(&gitlab, standins::GITLAB_PROJECT_PATH))]).await;
    let rollout = deploy(&app, &admin, "production", "4.2.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        "the provider refused the trigger: gitlab's pipeline trigger answered 404: 404 Not Found (no such project, \
         or the trigger token is not one of its trigger tokens)"
    );
    assert_eq!(gitlab.triggers().len(), 1, "tried once, not again");
}

// ---------------------------------------------------------------------------------------------
// CircleCI

async fn circleci_integration(app: &TestApp, admin: &TestSession, token: &str) {
    integration(app, admin, json!({"name": "circleci", "kind": "circleci", "secrets": {"token": token}})).await;
}

fn circleci_provider(circleci: &TestCircleCi) -> Value {
    json!({"kind": "circleci", "integration": "circleci",
           "params": {"url": circleci.url(), "project_slug": standins::CIRCLECI_SLUG, "branch": "release",
                      "parameters": {"target": "prod", "dry_run": false}, "setup_seconds": 1}})
}

#[tokio::test]
async fn circleci_triggers_a_pipeline_with_the_version_parameter_and_waits_for_every_workflow() {
    let circleci = TestCircleCi::start(CircleCiPlan {
        workflows: Some(vec![
            ("build", vec!["running", "success"]),
            ("deploy", vec!["running", "on_hold", "running", "success"]),
        ]),
        unavailable_poll: None,
    })
    .await;
    let app = start().await;
    let admin = app.admin_session().await;
    circleci_integration(&app, &admin, standins::CIRCLECI_TOKEN).await;
    service(&app, &admin, &[("production", circleci_provider(&circleci))]).await;
    let rollout = deploy(&app, &admin, "production", "6.1.0").await;
    let done = reaches(&app, rollout.id, RolloutState::Succeeded).await;
    assert_eq!(kinds(&done), ["requested", "triggered", "running", "analysing", "succeeded"]);
    let link = format!("{}/pipelines/gh/acme/shop/1", circleci.url());
    assert_eq!(done.rollout.run_url.as_deref(), Some(link.as_str()));
    assert_eq!(done.events[3].detail, "build success, deploy success");
    assert_eq!(current_version(&app, "production").await.as_deref(), Some("6.1.0"));

    let triggers = circleci.triggers();
    assert_eq!(triggers.len(), 1, "{triggers:?}");
    assert_eq!(triggers[0].path, "/api/v2/project/gh/acme/shop/pipeline");
    let body: Value = serde_json::from_str(&triggers[0].body).unwrap();
    assert_eq!(
        body,
        json!({"branch": "release", "parameters": {"version": "6.1.0", "target": "prod", "dry_run": false}})
    );
    let polls = circleci.requests().into_iter().filter(|request| request.path.ends_with("/workflow")).count();
    assert!(polls >= 4, "followed until the last workflow ended");
}

#[tokio::test]
async fn a_failed_or_errored_circleci_pipeline_fails_the_rollout() {
    let failing = TestCircleCi::start(CircleCiPlan {
        workflows: Some(vec![("build", vec!["success"]), ("deploy", vec!["running", "failing", "failed"])]),
        unavailable_poll: Some(1),
    })
    .await;
    let errored = TestCircleCi::start(CircleCiPlan { workflows: None, unavailable_poll: None }).await;
    let app = start().await;
    let admin = app.admin_session().await;
    circleci_integration(&app, &admin, standins::CIRCLECI_TOKEN).await;
    service(&app, &admin, &[("failing", circleci_provider(&failing)), ("errored", circleci_provider(&errored))]).await;

    let rollout = deploy(&app, &admin, "failing", "7.0.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(error_of(&failed), "the run failed: build success, deploy failed");

    let rollout = deploy(&app, &admin, "errored", "7.0.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        "the run failed: the pipeline errored: Unable to parse YAML: mapping values are not allowed here"
    );
}

#[tokio::test]
async fn aborting_a_circleci_rollout_cancels_its_running_workflows() {
    let circleci = TestCircleCi::start(CircleCiPlan {
        workflows: Some(vec![("lint", vec!["success"]), ("deploy", vec!["running"])]),
        unavailable_poll: None,
    })
    .await;
    let app = start().await;
    let admin = app.admin_session().await;
    circleci_integration(&app, &admin, standins::CIRCLECI_TOKEN).await;
    service(&app, &admin, &[("production", circleci_provider(&circleci))]).await;
    let rollout = deploy(&app, &admin, "production", "8.0.0").await;
    eventually(20, "a poll of the workflows", || async {
        circleci.requests().iter().any(|request| request.path.ends_with("/workflow")).then_some(())
    })
    .await;
    abort(&app, &admin, rollout.id).await;
    assert_eq!(circleci.canceled(), ["deploy"], "only the running workflow");
}

#[tokio::test]
async fn a_refused_circleci_token_fails_the_rollout_naming_the_status() {
    let circleci = TestCircleCi::start(CircleCiPlan::default()).await;
    let app = start().await;
    let admin = app.admin_session().await;
    circleci_integration(&app, &admin, "CCIPAT_revoked").await;
    service(&app, &admin, &[("production", circleci_provider(&circleci))]).await;
    let rollout = deploy(&app, &admin, "production", "6.1.0").await;
    let failed = reaches(&app, rollout.id, RolloutState::Failed).await;
    assert_eq!(
        error_of(&failed),
        "the provider refused the trigger: circleci's pipeline trigger answered 401: You must log in first."
    );
    assert_eq!(circleci.triggers().len(), 1);
}

#[tokio::test]
async fn provider_parameters_are_checked_when_a_service_is_saved() {
    let app = start().await;
    let admin = app.admin_session().await;
    for (provider, named) in [
        (
            json!({"kind": "jenkins", "params": {"url": "http://127.0.0.1:1"}}),
            "environments.production: params.job is required",
        ),
        (
            json!({"kind": "gitlab", "params": {"url": "http://127.0.0.1:1", "project": "acme/shop"}}),
            "environments.production: params.ref is required",
        ),
        (
            json!({"kind": "circleci", "params": {"project_slug": "acme"}}),
            "environments.production: params.project_slug \"acme\" must be <vcs>/<org>/<project>",
        ),
        (json!({"kind": "argo", "params": {}}), "is not one of buildbot, webhook, jenkins, gitlab, circleci"),
    ] {
        let body = json!({"name": "shop", "environments": [{"name": "production", "provider": provider}]});
        let response = app.with_session(Method::POST, paths::SERVICES, &admin).json(&body).send().await.unwrap();
        crate::helpers::assert_error(response, 400, "invalid_parameter", named).await;
    }
}
