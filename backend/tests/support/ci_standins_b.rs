//! Loopback stand-ins for the rollout providers that cannot run here: GitHub Actions' REST
//! API, Argo CD's API server and a Kubernetes API server with one Deployment. Each is a small
//! axum server on `127.0.0.1:0` implementing exactly the endpoints the providers call, taken
//! from the systems' documentation: it checks the bearer token (401 for a wrong one, 403 for
//! the read-only one), the headers and the request's shape (400/404/415/422 as the real API
//! answers), records every request, and plays a run whose course the version chooses:
//!
//! - `fail-…`: the run fails; `cancel-…`: it is cancelled at the provider (GitHub), or
//!   terminated (Argo CD); `degraded-…` (Argo CD): synced, then Degraded;
//! - `hold-…`: the run stays in progress until Vigil aborts it;
//! - `slow-…` (GitHub): the run appears in the list only after three listings and stays
//!   queued for three more reads;
//! - `flaky-…`: the first read after the trigger answers 503;
//! - `stuck-…` (Kubernetes): the rollout stops and `Progressing` says
//!   `ProgressDeadlineExceeded`;
//! - anything else succeeds after a few reads.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub const GITHUB_TOKEN: &str = "github-token-for-tests";
pub const ARGOCD_TOKEN: &str = "argocd-token-for-tests";
pub const KUBERNETES_TOKEN: &str = "kubernetes-token-for-tests";
/// A token each stand-in knows and allows to read only: its writes answer 403.
pub const READ_ONLY_TOKEN: &str = "read-only-token";
/// A GitHub token whose primary rate limit is spent: 403 with `x-ratelimit-remaining: 0`.
pub const RATE_LIMITED_TOKEN: &str = "rate-limited-token";
/// When the rate limit of [`RATE_LIMITED_TOKEN`] resets (Unix seconds; 2026-12-02T02:00:00Z).
pub const RATE_LIMIT_RESET: i64 = 1_796_176_800;

pub const OWNER: &str = "octo-org";
pub const REPO: &str = "octo-repo";
pub const WORKFLOW: &str = "deploy.yml";
pub const BRANCH: &str = "main";
pub const APPLICATION: &str = "shop";
pub const NAMESPACE: &str = "shop";
pub const DEPLOYMENT: &str = "web";
pub const CONTAINER: &str = "app";
pub const IMAGE_REPOSITORY: &str = "registry.example.com/shop/web";

/// A request a stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A stand-in's shared parts: its state and what it received.
struct Shared<S> {
    state: Mutex<S>,
    requests: Mutex<Vec<Recorded>>,
}

pub struct StandIn<S> {
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    shared: Arc<Shared<S>>,
    task: tokio::task::JoinHandle<()>,
}

impl<S> Drop for StandIn<S> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<S> StandIn<S> {
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The requests of `method` whose path and query start with `prefix`.
    pub fn requests_to(&self, method: &str, prefix: &str) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.method == method && request.target.starts_with(prefix))
            .collect()
    }

    pub fn with_state<T>(&self, look: impl FnOnce(&mut S) -> T) -> T {
        look(&mut self.shared.state.lock().unwrap())
    }
}

type Handler<S> = fn(&mut S, &Method, &str, &HeaderMap, &Value) -> Response;

async fn serve<S: Send + 'static>(state: S, handler: Handler<S>) -> StandIn<S> {
    serve_with(state, handler, None).await
}

/// Serves `handler` over plain HTTP, or over HTTPS with `tls`.
async fn serve_with<S: Send + 'static>(
    state: S,
    handler: Handler<S>,
    tls: Option<axum_server::tls_rustls::RustlsConfig>,
) -> StandIn<S> {
    let shared = Arc::new(Shared { state: Mutex::new(state), requests: Mutex::new(Vec::new()) });
    let for_router = Arc::clone(&shared);
    let router = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
        let shared = Arc::clone(&for_router);
        async move {
            let target = uri.path_and_query().map(|target| target.as_str().to_owned()).unwrap_or_default();
            let parsed = if body.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&body).unwrap_or(Value::String("<not JSON>".to_owned()))
            };
            shared.requests.lock().unwrap().push(Recorded {
                method: method.to_string(),
                target: target.clone(),
                headers: headers.clone(),
                body: parsed.clone(),
            });
            let mut state = shared.state.lock().unwrap();
            handler(&mut state, &method, &target, &headers, &parsed)
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (url, task) = match tls {
        None => (
            format!("http://{address}"),
            tokio::spawn(async move {
                axum::serve(listener, router).await.unwrap();
            }),
        ),
        Some(tls) => {
            let server = axum_server::from_tcp_rustls(listener.into_std().unwrap(), tls).unwrap();
            (
                format!("https://{address}"),
                tokio::spawn(async move {
                    server.serve(router.into_make_service()).await.unwrap();
                }),
            )
        }
    };
    StandIn { url, shared, task }
}

fn answer(status: u16, body: Value) -> Response {
    (StatusCode::from_u16(status).unwrap(), axum::Json(body)).into_response()
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()?.strip_prefix("Bearer ")
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn now_rfc3339() -> String {
    let now = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    now.format(&Rfc3339).unwrap()
}

/// The path and its query, split.
fn split_target(target: &str) -> (&str, Vec<(String, String)>) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let pairs = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    (path, pairs)
}

// ---- GitHub Actions ----

/// A workflow run and the course it follows.
#[derive(Debug, Clone)]
pub struct GitHubRun {
    pub id: i64,
    pub inputs: Value,
    pub created_at: String,
    pub status: String,
    pub conclusion: Option<String>,
    pub display_title: String,
    /// Listings it is still hidden from (a slow queue).
    hidden_for: u32,
    reads: u32,
    flaky: bool,
}

#[derive(Debug, Default)]
pub struct GitHub {
    pub runs: Vec<GitHubRun>,
    /// Whether the workflow's `run-name` shows the `vigil_rollout` input.
    pub run_name_shows_rollout: bool,
}

impl GitHubRun {
    fn json(&self) -> Value {
        json!({
            "id": self.id, "name": "Deploy", "display_title": self.display_title, "event": "workflow_dispatch",
            "head_branch": BRANCH, "status": self.status, "conclusion": self.conclusion,
            "created_at": self.created_at, "updated_at": self.created_at, "run_number": self.id - 1000,
            "workflow_id": 77, "html_url": format!("https://github.com/{OWNER}/{REPO}/actions/runs/{}", self.id),
        })
    }

    fn version(&self) -> &str {
        self.inputs["version"].as_str().unwrap_or_default()
    }

    /// One read of the run moves it along its course.
    fn advance(&mut self) {
        if self.status == "completed" {
            return;
        }
        self.reads += 1;
        let version = self.version().to_owned();
        let queued_reads = if version.starts_with("slow") { 3 } else { 1 };
        if version.starts_with("hold") {
            self.status = "in_progress".to_owned();
        } else if self.reads <= queued_reads {
            self.status = "queued".to_owned();
        } else if self.reads == queued_reads + 1 {
            self.status = "in_progress".to_owned();
        } else {
            self.status = "completed".to_owned();
            let conclusion = if version.starts_with("fail") {
                "failure"
            } else if version.starts_with("cancel") {
                "cancelled"
            } else {
                "success"
            };
            self.conclusion = Some(conclusion.to_owned());
        }
    }
}

fn github_error(status: u16, message: &str) -> Response {
    answer(
        status,
        json!({"message": message, "documentation_url": "https://docs.github.com/rest", "status": status.to_string()}),
    )
}

/// GitHub's documented dispatch: request headers and body, and its answers.
pub const GITHUB_DISPATCH_DOCUMENTED: &str =
    include_str!("../data/github-actions/github_workflow_dispatch_request.json");

fn documented_dispatch() -> Value {
    serde_json::from_str(GITHUB_DISPATCH_DOCUMENTED).unwrap()
}

/// The documented 200 answer of a dispatch with `return_run_details`, for run `id`.
fn dispatch_details(id: i64) -> Value {
    let documented = documented_dispatch();
    let responses = documented["responses"].as_object().unwrap();
    let body = responses.values().find(|response| response["status"] == 200).unwrap()["body"].clone();
    let mut details = serde_json::Map::new();
    for key in body.as_object().unwrap().keys() {
        let value = match key.as_str() {
            "workflow_run_id" => json!(id),
            "run_url" => json!(format!("https://api.github.com/repos/{OWNER}/{REPO}/actions/runs/{id}")),
            "html_url" => json!(format!("https://github.com/{OWNER}/{REPO}/actions/runs/{id}")),
            other => panic!("an undocumented field {other}"),
        };
        details.insert(key.clone(), value);
    }
    Value::Object(details)
}

/// The inputs the test workflow declares (`on.workflow_dispatch.inputs`).
const GITHUB_INPUTS: [&str; 3] = ["version", "vigil_rollout", "target"];

fn github(state: &mut GitHub, method: &Method, target: &str, headers: &HeaderMap, body: &Value) -> Response {
    match bearer(headers) {
        None => return github_error(401, "Requires authentication"),
        Some(GITHUB_TOKEN | READ_ONLY_TOKEN) => {}
        Some(RATE_LIMITED_TOKEN) => {
            let mut response = github_error(403, "API rate limit exceeded for user ID 1.");
            let headers = response.headers_mut();
            headers.insert("x-ratelimit-limit", "5000".parse().unwrap());
            headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
            headers.insert("x-ratelimit-reset", RATE_LIMIT_RESET.to_string().parse().unwrap());
            return response;
        }
        Some(_) => return github_error(401, "Bad credentials"),
    }
    let documented = documented_dispatch();
    let documented_headers = &documented["request"]["headers"];
    if header(headers, "accept") != documented_headers["Accept"].as_str() {
        return github_error(415, "Unsupported 'Accept' header: expected application/vnd.github+json");
    }
    if header(headers, "x-github-api-version") != documented_headers["X-GitHub-Api-Version"].as_str() {
        return github_error(400, "API version is missing or not supported");
    }
    let (path, query) = split_target(target);
    let repository = format!("/repos/{OWNER}/{REPO}/actions/");
    let Some(rest) = path.strip_prefix(&repository) else {
        return github_error(404, "Not Found");
    };
    let read_only = bearer(headers) == Some(READ_ONLY_TOKEN);
    let segments: Vec<&str> = rest.split('/').collect();
    match (method.as_str(), segments.as_slice()) {
        ("POST", ["workflows", WORKFLOW, "dispatches"]) => {
            if read_only {
                return github_error(403, "Resource not accessible by personal access token");
            }
            let Some(git_ref) = body["ref"].as_str() else {
                return github_error(422, "Invalid request.\n\n\"ref\" wasn't supplied.");
            };
            if git_ref != BRANCH && git_ref != format!("refs/heads/{BRANCH}") {
                return github_error(422, &format!("No ref found for: {git_ref}"));
            }
            let inputs = body.get("inputs").cloned().unwrap_or(json!({}));
            let Some(given) = inputs.as_object() else {
                return github_error(422, "Invalid request.\n\nFor 'properties/inputs', it is not an object.");
            };
            let unexpected: Vec<&String> =
                given.keys().filter(|name| !GITHUB_INPUTS.contains(&name.as_str())).collect();
            if !unexpected.is_empty() {
                return github_error(422, &format!("Unexpected inputs provided: {unexpected:?}"));
            }
            if given.values().any(|value| !value.is_string()) || !given.contains_key("version") {
                return github_error(422, "Required input 'version' not provided");
            }
            let id = 1000 + i64::try_from(state.runs.len()).unwrap() + 1;
            let rollout = given.get("vigil_rollout").and_then(Value::as_str).unwrap_or_default();
            let display_title = if state.run_name_shows_rollout {
                format!("Deploy {} {rollout}", given["version"].as_str().unwrap())
            } else {
                "Deploy".to_owned()
            };
            let version = given["version"].as_str().unwrap();
            let run = GitHubRun {
                id,
                inputs: inputs.clone(),
                created_at: now_rfc3339(),
                status: "queued".to_owned(),
                conclusion: None,
                display_title,
                hidden_for: if version.starts_with("slow") { 3 } else { 0 },
                reads: 0,
                flaky: version.starts_with("flaky"),
            };
            state.runs.push(run);
            if body["return_run_details"] == true {
                return answer(200, dispatch_details(id));
            }
            StatusCode::NO_CONTENT.into_response()
        }
        ("GET", ["workflows", WORKFLOW, "runs"]) => {
            let wanted = |name: &str| query.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
            let since = wanted("created").and_then(|created| {
                let at = created.strip_prefix(">=")?.to_owned();
                OffsetDateTime::parse(&at, &Rfc3339).ok()
            });
            if wanted("created").is_some() && since.is_none() {
                return github_error(422, "Invalid created filter");
            }
            if let Some(run) = state.runs.iter().find(|run| run.flaky && run.reads == 0 && run.hidden_for == 0) {
                let id = run.id;
                state.runs.iter_mut().find(|run| run.id == id).unwrap().flaky = false;
                return github_error(503, "Service Unavailable");
            }
            let mut listed = Vec::new();
            for run in state.runs.iter_mut().rev() {
                if run.hidden_for > 0 {
                    run.hidden_for -= 1;
                    continue;
                }
                let created = OffsetDateTime::parse(&run.created_at, &Rfc3339).unwrap();
                let event_ok = wanted("event").is_none_or(|event| event == "workflow_dispatch");
                let branch_ok = wanted("branch").is_none_or(|branch| branch == BRANCH);
                if event_ok && branch_ok && since.is_none_or(|since| created >= since) {
                    run.advance();
                    listed.push(run.json());
                }
            }
            answer(200, json!({"total_count": listed.len(), "workflow_runs": listed}))
        }
        ("GET", ["runs", id]) => {
            let Some(run) = state.runs.iter_mut().find(|run| run.id.to_string() == *id) else {
                return github_error(404, "Not Found");
            };
            if run.flaky && run.reads == 0 {
                run.flaky = false;
                return github_error(503, "Service Unavailable");
            }
            run.advance();
            answer(200, run.json())
        }
        ("POST", ["runs", id, "cancel"]) => {
            if read_only {
                return github_error(403, "Resource not accessible by personal access token");
            }
            let Some(run) = state.runs.iter_mut().find(|run| run.id.to_string() == *id) else {
                return github_error(404, "Not Found");
            };
            if run.status == "completed" {
                return github_error(409, "Cannot cancel a workflow run that is completed.");
            }
            run.status = "completed".to_owned();
            run.conclusion = Some("cancelled".to_owned());
            answer(202, json!({}))
        }
        _ => github_error(404, "Not Found"),
    }
}

impl GitHub {
    /// A run someone else dispatched `seconds_ago`, already completed with `conclusion`.
    pub fn add_foreign_run(&mut self, version: &str, seconds_ago: i64, conclusion: &str) {
        let created = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap() - time::Duration::seconds(seconds_ago);
        self.runs.push(GitHubRun {
            id: 1000 + i64::try_from(self.runs.len()).unwrap() + 1,
            inputs: json!({"version": version}),
            created_at: created.format(&Rfc3339).unwrap(),
            status: "completed".to_owned(),
            conclusion: Some(conclusion.to_owned()),
            display_title: "Deploy".to_owned(),
            hidden_for: 0,
            reads: 0,
            flaky: false,
        });
    }

    /// The runs whose `version` input is `version`.
    pub fn runs_of(&self, version: &str) -> Vec<GitHubRun> {
        self.runs.iter().filter(|run| run.version() == version).cloned().collect()
    }
}

pub async fn github_standin(run_name_shows_rollout: bool) -> StandIn<GitHub> {
    serve(GitHub { runs: Vec::new(), run_name_shows_rollout }, github).await
}

// ---- Argo CD ----

#[derive(Debug, Default)]
pub struct ArgoCd {
    /// The revision of the operation in progress or last ended, and its reads since.
    pub operation: Option<(String, u32)>,
    pub phase: String,
    pub message: String,
    pub sync: String,
    pub health: String,
    pub health_message: String,
    terminating: bool,
    flaky: bool,
}

/// A made-up commit for a revision, as Argo CD resolves a tag to one.
fn commit_of(revision: &str) -> String {
    let sum: u32 = revision.bytes().map(u32::from).sum();
    format!("{sum:08x}0000000000000000000000000000000")
}

impl ArgoCd {
    fn json(&self) -> Value {
        let (revision, _) = self.operation.clone().unwrap_or_default();
        let synced_at = if self.sync == "Synced" { commit_of(&revision) } else { "0000000".to_owned() };
        json!({
            "metadata": {"name": APPLICATION, "namespace": "argocd"},
            "spec": {"source": {"repoURL": "https://git.example.com/shop.git", "path": "deploy", "targetRevision": "HEAD"},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": "shop"}},
            "status": {
                "sync": {"status": self.sync, "revision": synced_at},
                "health": {"status": self.health, "message": self.health_message},
                "operationState": {
                    "operation": {"sync": {"revision": revision}},
                    "phase": self.phase, "message": self.message,
                    "syncResult": {"revision": commit_of(&revision)},
                },
            },
        })
    }

    fn advance(&mut self) {
        let Some((revision, reads)) = &mut self.operation else {
            return;
        };
        if self.terminating {
            self.terminating = false;
            self.phase = "Failed".to_owned();
            self.message = "Operation terminated".to_owned();
            return;
        }
        if self.phase != "Running" && self.phase != "Succeeded" {
            return;
        }
        *reads += 1;
        let revision = revision.clone();
        match (*reads, revision.split('-').next().unwrap_or_default()) {
            (_, "hold") => {}
            (1, _) => {}
            (2, "fail") => {
                self.phase = "Failed".to_owned();
                self.message =
                    "one or more objects failed to apply, reason: admission webhook denied the request".to_owned();
            }
            (2, "cancel") => {
                self.phase = "Failed".to_owned();
                self.message = "Operation terminated".to_owned();
            }
            (2, "degraded") => {
                self.phase = "Succeeded".to_owned();
                self.sync = "Synced".to_owned();
                self.health = "Degraded".to_owned();
                self.health_message = "Deployment \"web\" exceeded its progress deadline".to_owned();
            }
            (2, _) => {
                self.phase = "Succeeded".to_owned();
                self.message = "successfully synced (all tasks run)".to_owned();
                self.sync = "Synced".to_owned();
                self.health = "Progressing".to_owned();
            }
            (_, "fail" | "cancel" | "degraded") => {}
            (_, _) => self.health = "Healthy".to_owned(),
        }
    }
}

fn argocd_error(status: u16, grpc_code: u16, message: &str) -> Response {
    answer(status, json!({"error": message, "code": grpc_code, "message": message}))
}

fn argocd(state: &mut ArgoCd, method: &Method, target: &str, headers: &HeaderMap, body: &Value) -> Response {
    match bearer(headers) {
        None => return argocd_error(401, 16, "no session information"),
        Some(ARGOCD_TOKEN | READ_ONLY_TOKEN) => {}
        Some(_) => return argocd_error(401, 16, "invalid session: token signature is invalid"),
    }
    let read_only = bearer(headers) == Some(READ_ONLY_TOKEN);
    let (path, _) = split_target(target);
    let Some(rest) = path.strip_prefix("/api/v1/applications/") else {
        return argocd_error(404, 5, "Not Found");
    };
    let (name, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if name != APPLICATION {
        return argocd_error(404, 5, &format!("applications.argoproj.io \"{name}\" not found"));
    }
    let denied =
        || argocd_error(403, 7, &format!("permission denied: applications, sync, default/{APPLICATION}, sub: vigil"));
    match (method.as_str(), tail) {
        ("POST", "sync") => {
            if read_only {
                return denied();
            }
            if body.get("name").is_some_and(|given| given != APPLICATION) {
                return argocd_error(400, 3, "the name in the body differs from the path's");
            }
            let Some(revision) = body["revision"].as_str() else {
                return argocd_error(400, 3, "revision is required by this stand-in");
            };
            if body.get("prune").is_some_and(|prune| !prune.is_boolean()) {
                return argocd_error(400, 3, "proto: syntax error: prune is not a boolean");
            }
            if state.phase == "Running" || state.phase == "Terminating" {
                return argocd_error(400, 9, "another operation is already in progress");
            }
            state.operation = Some((revision.to_owned(), 0));
            state.phase = "Running".to_owned();
            state.message = "one or more tasks are running".to_owned();
            state.sync = "OutOfSync".to_owned();
            state.health = "Healthy".to_owned();
            state.health_message = String::new();
            state.flaky = revision.starts_with("flaky");
            answer(200, state.json())
        }
        ("GET", "") => {
            if state.flaky {
                state.flaky = false;
                return argocd_error(503, 14, "upstream connect error");
            }
            state.advance();
            answer(200, state.json())
        }
        ("DELETE", "operation") => {
            if read_only {
                return denied();
            }
            if state.phase != "Running" {
                return argocd_error(400, 9, "Unable to terminate operation. No operation is in progress");
            }
            state.phase = "Terminating".to_owned();
            state.terminating = true;
            answer(200, json!({}))
        }
        _ => argocd_error(404, 5, "Not Found"),
    }
}

pub async fn argocd_standin() -> StandIn<ArgoCd> {
    serve(
        ArgoCd {
            phase: "Succeeded".to_owned(),
            sync: "Synced".to_owned(),
            health: "Healthy".to_owned(),
            ..ArgoCd::default()
        },
        argocd,
    )
    .await
}

// ---- Kubernetes ----

#[derive(Debug)]
pub struct Kubernetes {
    pub deployment: Value,
    /// The deployment's ReplicaSets, one per template it had, and one of another owner.
    pub replica_sets: Vec<Value>,
    /// Reads since the template last changed.
    reads: u32,
    flaky: bool,
}

pub const DEPLOYMENT_UID: &str = "4b1e5c2a-web";
const REVISION: &str = "deployment.kubernetes.io/revision";

/// A template without the `pod-template-hash` label the controller adds to a ReplicaSet's.
fn without_hash(template: &Value) -> Value {
    let mut template = template.clone();
    if let Some(labels) = template["metadata"]["labels"].as_object_mut() {
        labels.remove("pod-template-hash");
    }
    template
}

fn revision_of(set: &Value) -> i64 {
    set["metadata"]["annotations"][REVISION].as_str().and_then(|revision| revision.parse().ok()).unwrap_or(0)
}

/// A ReplicaSet of `owner` with `template`, at `revision`.
fn replica_set(owner: &str, template: &Value, revision: i64) -> Value {
    let hash = format!(
        "{:08x}",
        template.to_string().bytes().fold(0u32, |hash, byte| hash.wrapping_mul(31).wrapping_add(u32::from(byte)))
    );
    let mut template = template.clone();
    template["metadata"]["labels"]["pod-template-hash"] = json!(hash);
    json!({
        "metadata": {"name": format!("{DEPLOYMENT}-{hash}"), "namespace": NAMESPACE, "labels": template["metadata"]["labels"],
                     "annotations": {REVISION: revision.to_string()},
                     "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": DEPLOYMENT, "uid": owner, "controller": true}]},
        "spec": {"replicas": 0, "template": template},
    })
}

/// A JSON patch (RFC 6902) of `add`, `replace` and `test` on objects; the failing operation's
/// message otherwise.
fn json_patch(target: &mut Value, operations: &Value) -> Result<(), String> {
    for operation in operations.as_array().ok_or("a JSON patch is an array")? {
        let path = operation["path"].as_str().ok_or("an operation without a path")?;
        let tokens: Vec<String> =
            path.split('/').skip(1).map(|token| token.replace("~1", "/").replace("~0", "~")).collect();
        let (last, parents) = tokens.split_last().ok_or("an empty path")?;
        let mut parent = &mut *target;
        for token in parents {
            parent = parent.get_mut(token.as_str()).ok_or_else(|| format!("missing path {path}"))?;
        }
        let object = parent.as_object_mut().ok_or_else(|| format!("{path}: not an object"))?;
        let value = operation["value"].clone();
        match operation["op"].as_str() {
            Some("add") => {
                object.insert(last.clone(), value);
            }
            Some("replace") if object.contains_key(last) => {
                object.insert(last.clone(), value);
            }
            Some("replace") => return Err(format!("replace operation does not apply: doc is missing key: {path}")),
            Some("test") if object.get(last) == Some(&value) => {}
            Some("test") => return Err(format!("testing value {path} failed")),
            other => return Err(format!("unsupported operation {other:?}")),
        }
    }
    Ok(())
}

fn kubernetes_status(status: u16, reason: &str, message: &str) -> Response {
    answer(
        status,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
               "reason": reason, "code": status}),
    )
}

/// A strategic merge of `patch` into `target`: objects merge, `containers` merge by `name`
/// (a name not there is added, as the API server does), anything else is replaced.
fn strategic_merge(target: &mut Value, patch: &Value) {
    let (Some(target_object), Some(patch_object)) = (target.as_object_mut(), patch.as_object()) else {
        *target = patch.clone();
        return;
    };
    for (key, value) in patch_object {
        if key == "containers" {
            let containers = target_object.entry(key.clone()).or_insert_with(|| json!([]));
            for patched in value.as_array().into_iter().flatten() {
                let existing = containers
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|container| container["name"] == patched["name"]);
                match existing {
                    Some(container) => strategic_merge(container, patched),
                    None => containers.as_array_mut().unwrap().push(patched.clone()),
                }
            }
        } else if value.is_object() && target_object.get(key).is_some_and(Value::is_object) {
            strategic_merge(target_object.get_mut(key).unwrap(), value);
        } else {
            target_object.insert(key.clone(), value.clone());
        }
    }
}

impl Kubernetes {
    /// The image of the container the provider sets.
    pub fn image(&self) -> String {
        let containers =
            self.deployment["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
        let app = containers.iter().find(|container| container["name"] == CONTAINER);
        app.and_then(|container| container["image"].as_str()).unwrap_or_default().to_owned()
    }

    fn set_status(&mut self, observed: i64, [updated, replicas, available]: [i64; 3], reason: &str) {
        let status = json!({
            "observedGeneration": observed, "replicas": replicas, "updatedReplicas": updated,
            "availableReplicas": available, "readyReplicas": available,
            "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                           {"type": "Progressing", "status": if reason == "ProgressDeadlineExceeded" { "False" } else { "True" },
                            "reason": reason, "message": format!("ReplicaSet \"web\": {reason}")}],
        });
        self.deployment["status"] = status;
    }

    /// The controller's part in a new template: the ReplicaSet with that template (made if
    /// there is none) becomes the newest revision.
    fn record_template(&mut self) {
        let template = self.deployment["spec"]["template"].clone();
        let owned = |set: &Value| set["metadata"]["ownerReferences"][0]["uid"] == DEPLOYMENT_UID;
        let newest = self.replica_sets.iter().filter(|set| owned(set)).map(revision_of).max().unwrap_or(0) + 1;
        match self.replica_sets.iter_mut().find(|set| owned(set) && without_hash(&set["spec"]["template"]) == template)
        {
            Some(set) => set["metadata"]["annotations"][REVISION] = json!(newest.to_string()),
            None => self.replica_sets.push(replica_set(DEPLOYMENT_UID, &template, newest)),
        }
        self.deployment["metadata"]["annotations"][REVISION] = json!(newest.to_string());
        self.reads = 0;
        self.flaky = self.image().rsplit(':').next().unwrap_or_default().starts_with("flaky");
    }

    /// A change of the pod template made by someone else (`kubectl edit`), rolled out at once.
    pub fn edit_template(&mut self, edit: impl FnOnce(&mut Value)) {
        edit(&mut self.deployment["spec"]["template"]);
        let generation = self.deployment["metadata"]["generation"].as_i64().unwrap() + 1;
        self.deployment["metadata"]["generation"] = json!(generation);
        self.record_template();
        self.set_status(generation, [3, 3, 3], "NewReplicaSetAvailable");
    }

    /// One read: the deployment controller moves the rollout one step, unless paused.
    fn advance(&mut self) {
        let generation = self.deployment["metadata"]["generation"].as_i64().unwrap();
        if self.deployment["spec"]["paused"] == true {
            let status = self.deployment["status"].clone();
            self.set_status(generation, [0, 0, 0], "DeploymentPaused");
            let kept = ["replicas", "updatedReplicas", "availableReplicas", "readyReplicas"];
            for key in kept {
                self.deployment["status"][key] = status[key].clone();
            }
            return;
        }
        self.reads += 1;
        let tag = self.image().rsplit(':').next().unwrap_or_default().to_owned();
        let stuck = tag.starts_with("stuck");
        let hold = tag.starts_with("hold");
        match self.reads {
            1 => {}
            2 => self.set_status(generation, [1, 4, 3], "ReplicaSetUpdated"),
            _ if hold => {}
            _ if stuck => self.set_status(generation, [1, 4, 3], "ProgressDeadlineExceeded"),
            3 => self.set_status(generation, [3, 4, 3], "ReplicaSetUpdated"),
            4 => self.set_status(generation, [3, 3, 2], "ReplicaSetUpdated"),
            _ => self.set_status(generation, [3, 3, 3], "NewReplicaSetAvailable"),
        }
    }
}

fn kubernetes(state: &mut Kubernetes, method: &Method, target: &str, headers: &HeaderMap, body: &Value) -> Response {
    match bearer(headers) {
        Some(KUBERNETES_TOKEN | READ_ONLY_TOKEN) => {}
        _ => return kubernetes_status(401, "Unauthorized", "Unauthorized"),
    }
    let (path, query) = split_target(target);
    if method == Method::GET && path == format!("/apis/apps/v1/namespaces/{NAMESPACE}/replicasets") {
        let selector =
            query.iter().find(|(key, _)| key == "labelSelector").map(|(_, value)| value.clone()).unwrap_or_default();
        let mut wanted = Vec::new();
        for requirement in selector.split(',').filter(|requirement| !requirement.is_empty()) {
            let Some((key, value)) = requirement.split_once('=') else {
                return kubernetes_status(400, "BadRequest", &format!("unable to parse requirement: {requirement:?}"));
            };
            wanted.push((key.to_owned(), value.to_owned()));
        }
        let items: Vec<Value> = state
            .replica_sets
            .iter()
            .filter(|set| wanted.iter().all(|(key, value)| set["metadata"]["labels"][key.as_str()] == value.as_str()))
            .cloned()
            .collect();
        return answer(200, json!({"kind": "ReplicaSetList", "apiVersion": "apps/v1", "metadata": {}, "items": items}));
    }
    let Some(name) = path.strip_prefix(&format!("/apis/apps/v1/namespaces/{NAMESPACE}/deployments/")) else {
        return kubernetes_status(404, "NotFound", "the server could not find the requested resource");
    };
    if name != DEPLOYMENT {
        return kubernetes_status(404, "NotFound", &format!("deployments.apps \"{name}\" not found"));
    }
    match method.as_str() {
        "GET" => {
            if state.flaky {
                state.flaky = false;
                return kubernetes_status(
                    503,
                    "ServiceUnavailable",
                    "the server is currently unable to handle the request",
                );
            }
            state.advance();
            answer(200, state.deployment.clone())
        }
        "PATCH" => {
            if bearer(headers) == Some(READ_ONLY_TOKEN) {
                return kubernetes_status(
                    403,
                    "Forbidden",
                    &format!(
                        "deployments.apps \"{DEPLOYMENT}\" is forbidden: User \"system:serviceaccount:{NAMESPACE}:viewer\" \
                         cannot patch resource \"deployments\" in API group \"apps\" in the namespace \"{NAMESPACE}\""
                    ),
                );
            }
            let content_type = header(headers, "content-type").unwrap_or_default();
            if ![
                "application/strategic-merge-patch+json",
                "application/merge-patch+json",
                "application/json-patch+json",
                "application/apply-patch+yaml",
            ]
            .contains(&content_type)
            {
                return kubernetes_status(
                    415,
                    "UnsupportedMediaType",
                    &format!(
                        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type})"
                    ),
                );
            }
            let before = state.deployment["spec"].clone();
            let mut patched = state.deployment.clone();
            if content_type == "application/json-patch+json" {
                if let Err(message) = json_patch(&mut patched, body) {
                    return kubernetes_status(
                        422,
                        "Invalid",
                        &format!("the server rejected our request due to an error in our request: {message}"),
                    );
                }
            } else if body.is_object() {
                strategic_merge(&mut patched, body);
            } else {
                return kubernetes_status(400, "BadRequest", "the request body is not a JSON object");
            }
            let containers = patched["spec"]["template"]["spec"]["containers"].as_array().cloned().unwrap_or_default();
            if containers.iter().any(|container| container["image"].as_str().is_none_or(str::is_empty)) {
                return kubernetes_status(
                    422,
                    "Invalid",
                    &format!(
                        "Deployment.apps \"{DEPLOYMENT}\" is invalid: spec.template.spec.containers[0].image: Required value"
                    ),
                );
            }
            if patched["spec"] != before {
                let generation = patched["metadata"]["generation"].as_i64().unwrap() + 1;
                patched["metadata"]["generation"] = json!(generation);
            }
            let template_changed = patched["spec"]["template"] != before["template"];
            state.deployment = patched;
            if template_changed {
                state.record_template();
            }
            answer(200, state.deployment.clone())
        }
        _ => kubernetes_status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        ),
    }
}

/// A Deployment `shop/web` of three replicas of `registry.example.com/shop/web:<current>`,
/// rolled out.
pub async fn kubernetes_standin(current: &str) -> StandIn<Kubernetes> {
    serve(kubernetes_state(current), kubernetes).await
}

/// The same over HTTPS, with a certificate for 127.0.0.1 from a new authority whose PEM is
/// returned, as a cluster's CA signs its API server's.
pub async fn kubernetes_standin_tls(current: &str) -> (StandIn<Kubernetes>, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, "kubernetes-ca");
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
    let authority = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&server_key, &authority).unwrap();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        server.pem().into_bytes(),
        server_key.serialize_pem().into_bytes(),
    )
    .await
    .unwrap();
    (serve_with(kubernetes_state(current), kubernetes, Some(tls)).await, authority.pem())
}

fn kubernetes_state(current: &str) -> Kubernetes {
    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": DEPLOYMENT, "namespace": NAMESPACE, "uid": DEPLOYMENT_UID, "generation": 4,
                     "annotations": {REVISION: "4"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": CONTAINER, "image": format!("{IMAGE_REPOSITORY}:{current}"),
                                                       "env": [{"name": "MODE", "value": "v1"}]},
                                                      {"name": "proxy", "image": "envoyproxy/envoy:v1.31"}]}}},
        "status": {"observedGeneration": 4, "replicas": 3, "updatedReplicas": 3, "availableReplicas": 3, "readyReplicas": 3,
                   "conditions": [{"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]},
    });
    let template = deployment["spec"]["template"].clone();
    // A canary of another deployment with the same labels and image: never the rollback's.
    let mut canary = template.clone();
    canary["spec"]["containers"][0]["env"][0]["value"] = json!("canary");
    let replica_sets = vec![replica_set(DEPLOYMENT_UID, &template, 4), replica_set("9d0c-web-canary", &canary, 9)];
    Kubernetes { deployment, replica_sets, reads: 0, flaky: false }
}
