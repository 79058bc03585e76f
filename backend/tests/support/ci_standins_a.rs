//! Stand-ins for three CI systems that cannot run here, each a small axum server on a free
//! loopback port speaking the part of the documented API that Vigil's providers call, and no
//! more: Jenkins' remote access API (crumb issuer with its session cookie, `buildWithParameters`
//! answering `201` with the queue item's `Location`, queue items, builds, `stop`,
//! `queue/cancelItem`), GitLab's v4 pipeline trigger and Pipelines API, and CircleCI's API v2
//! (pipeline trigger, a pipeline's workflows, workflow cancel).
//!
//! Each checks the credential as the real system does (Basic, `PRIVATE-TOKEN`, the trigger
//! token, `Circle-Token`) and the request's shape, answers 400/401/403/404 as documented on bad
//! input, plays the status sequence its test gives (one status per poll, the last one kept;
//! optionally a 503 on one poll) and records every request it received.
//!
//! Shapes taken from: Jenkins' "Remote access API" page and the queue item and build JSON it
//! documents (`executable.number/url`, `cancelled`, `why`; `building`, `result`); GitLab's
//! "Trigger pipelines by using the API" and "Pipelines API" pages (the request shapes copied in
//! `tests/data/ci-triggers/`); CircleCI's API v2 reference (`Circle-Token`, `POST
//! /project/{slug}/pipeline`, `GET /pipeline/{id}/workflow`, `POST /workflow/{id}/cancel`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::{Value, json};

/// A request a stand-in received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
}

impl Recorded {
    /// The body's (or, without one, the query's) form fields.
    pub fn form(&self) -> Vec<(String, String)> {
        let text = if self.body.is_empty() { &self.query } else { &self.body };
        url::form_urlencoded::parse(text.as_bytes()).into_owned().collect()
    }
}

/// The status of poll `index` (0-based) of a sequence: the last one is kept.
fn nth(sequence: &[&'static str], index: usize) -> &'static str {
    sequence.get(index).or(sequence.last()).copied().unwrap_or("running")
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn text_of(headers: &HeaderMap, name: impl axum::http::header::AsHeaderName) -> &str {
    headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("")
}

fn record(requests: &Mutex<Vec<Recorded>>, method: &Method, uri: &Uri, body: &Bytes) {
    requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: uri.query().unwrap_or("").to_owned(),
        body: String::from_utf8_lossy(body).into_owned(),
    });
}

// ---------------------------------------------------------------------------------------------
// Jenkins

pub const JENKINS_USER: &str = "deployer";
pub const JENKINS_TOKEN: &str = "11aa22bb33cc44dd55ee66ff77889900aa";
const CRUMB_FIELD: &str = "Jenkins-Crumb";

/// What a stand-in Jenkins does.
#[derive(Debug, Clone)]
pub struct JenkinsPlan {
    /// The job's path, `folder/job`.
    pub job: &'static str,
    /// CSRF protection on: POSTs need a crumb from the session it was issued in.
    pub crumbs: bool,
    /// Polls of a queue item answered without an executable ("waiting for an executor").
    pub queued_polls: usize,
    /// A build's state at each poll: `building` or a result (`SUCCESS`, `FAILURE`, ...).
    pub build: Vec<&'static str>,
    /// The build poll (0-based) answered 503.
    pub unavailable_poll: Option<usize>,
    /// The queue forgets an item once its build started (as Jenkins does minutes later).
    pub forget_started: bool,
}

impl Default for JenkinsPlan {
    fn default() -> Self {
        Self {
            job: "shop/deploy",
            crumbs: true,
            queued_polls: 0,
            build: vec!["building", "SUCCESS"],
            unavailable_poll: None,
            forget_started: false,
        }
    }
}

#[derive(Default)]
struct QueueItem {
    polls: usize,
    cancelled: bool,
    build: Option<i64>,
}

#[derive(Default)]
struct Build {
    polls: usize,
    stopped: bool,
    queue_id: i64,
}

#[derive(Default)]
struct JenkinsState {
    queue: HashMap<i64, QueueItem>,
    builds: HashMap<i64, Build>,
    /// Crumbs issued, by the session they belong to.
    crumbs: HashMap<String, String>,
    issued: u64,
}

struct JenkinsInner {
    url: String,
    plan: JenkinsPlan,
    requests: Mutex<Vec<Recorded>>,
    state: Mutex<JenkinsState>,
}

#[derive(Clone)]
pub struct TestJenkins {
    inner: Arc<JenkinsInner>,
}

impl TestJenkins {
    pub async fn start(plan: JenkinsPlan) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(JenkinsInner { url, plan, requests: Mutex::default(), state: Mutex::default() });
        let app = axum::Router::new().fallback(jenkins).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner }
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    /// The `buildWithParameters` requests received.
    pub fn triggers(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|request| request.path.ends_with("/buildWithParameters")).collect()
    }

    /// Whether a build was stopped or a queue item cancelled.
    pub fn stopped(&self) -> bool {
        let state = self.inner.state.lock().unwrap();
        state.builds.values().any(|build| build.stopped) || state.queue.values().any(|item| item.cancelled)
    }

    pub fn builds_started(&self) -> usize {
        self.inner.state.lock().unwrap().builds.len()
    }
}

fn jenkins_job_path(job: &str) -> String {
    job.split('/').map(|segment| format!("/job/{segment}")).collect()
}

/// Jenkins answers a wrong Basic credential with 401 on every page.
fn jenkins_authorized(headers: &HeaderMap) -> bool {
    let expected = base64::engine::general_purpose::STANDARD.encode(format!("{JENKINS_USER}:{JENKINS_TOKEN}"));
    text_of(headers, header::AUTHORIZATION) == format!("Basic {expected}")
}

fn session_of(headers: &HeaderMap) -> Option<String> {
    text_of(headers, header::COOKIE)
        .split(';')
        .map(str::trim)
        .find_map(|pair| pair.strip_prefix("JSESSIONID.a1b2c3d4="))
        .map(str::to_owned)
}

fn html(status: StatusCode, text: &str) -> Response {
    (status, [(header::CONTENT_TYPE, "text/html;charset=utf-8")], format!("<html><body><h2>{text}</h2></body></html>"))
        .into_response()
}

async fn jenkins(
    State(inner): State<Arc<JenkinsInner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&inner.requests, &method, &uri, &body);
    if !jenkins_authorized(&headers) {
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"Jenkins\"")],
            "<html><body>Error 401 Unauthorized</body></html>",
        )
            .into_response();
    }
    let path = uri.path();
    let job = jenkins_job_path(inner.plan.job);
    if method == Method::GET && path == "/crumbIssuer/api/json" {
        if !inner.plan.crumbs {
            return html(StatusCode::NOT_FOUND, "Not Found");
        }
        let mut state = inner.state.lock().unwrap();
        state.issued += 1;
        let session = format!("node0session{}", state.issued);
        let crumb = format!("{:032x}", 0x5eed_u128 * u128::from(state.issued));
        state.crumbs.insert(session.clone(), crumb.clone());
        let body = json!({"_class": "hudson.security.csrf.DefaultCrumbIssuer", "crumb": crumb, "crumbRequestField": CRUMB_FIELD});
        return (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/json;charset=utf-8".to_owned()),
                (header::SET_COOKIE, format!("JSESSIONID.a1b2c3d4={session}; Path=/; HttpOnly")),
            ],
            body.to_string(),
        )
            .into_response();
    }
    if method == Method::POST && inner.plan.crumbs {
        let state = inner.state.lock().unwrap();
        let valid = session_of(&headers)
            .and_then(|session| state.crumbs.get(&session))
            .is_some_and(|crumb| text_of(&headers, CRUMB_FIELD) == crumb);
        if !valid {
            return html(StatusCode::FORBIDDEN, "HTTP ERROR 403 No valid crumb was included in the request");
        }
    }
    let Some(rest) = path.strip_prefix(job.as_str()) else {
        return jenkins_queue(&inner, &method, path, uri.query().unwrap_or(""));
    };
    match (method.as_str(), rest) {
        ("POST", "/buildWithParameters") => {
            if !text_of(&headers, header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded") {
                return html(StatusCode::BAD_REQUEST, "Nothing is submitted");
            }
            let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
            if !form.iter().any(|(name, value)| name == "VERSION" && !value.is_empty()) {
                return html(StatusCode::BAD_REQUEST, "VERSION is a required parameter");
            }
            let mut state = inner.state.lock().unwrap();
            let id = 100 + state.queue.len() as i64 + 1;
            state.queue.insert(id, QueueItem::default());
            (StatusCode::CREATED, [(header::LOCATION, format!("{}/queue/item/{id}/", inner.url))], "").into_response()
        }
        ("GET", "/api/json") => {
            let state = inner.state.lock().unwrap();
            let builds: Vec<Value> = state
                .builds
                .iter()
                .map(|(number, build)| json!({"number": number, "queueId": build.queue_id, "url": format!("{}{job}/{number}/", inner.url)}))
                .collect();
            json_answer(StatusCode::OK, json!({"_class": "hudson.model.FreeStyleProject", "builds": builds}))
        }
        (method, rest) => {
            let mut parts = rest.trim_start_matches('/').splitn(2, '/');
            let number = parts.next().and_then(|number| number.parse::<i64>().ok());
            let action = parts.next().unwrap_or("");
            let mut state = inner.state.lock().unwrap();
            let Some(build) = number.and_then(|number| state.builds.get_mut(&number)) else {
                return html(StatusCode::NOT_FOUND, "Not Found");
            };
            let number = number.unwrap_or_default();
            match (method, action) {
                ("GET", "api/json") => {
                    let poll = build.polls;
                    build.polls += 1;
                    if inner.plan.unavailable_poll == Some(poll) {
                        return html(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable");
                    }
                    let now = if build.stopped { "ABORTED" } else { nth(&inner.plan.build, poll) };
                    let (building, result) =
                        if now == "building" { (true, Value::Null) } else { (false, Value::from(now)) };
                    json_answer(
                        StatusCode::OK,
                        json!({"_class": "hudson.model.FreeStyleBuild", "number": number, "building": building,
                               "result": result, "queueId": build.queue_id,
                               "fullDisplayName": format!("{} #{number}", inner.plan.job.replace('/', " » ")),
                               "url": format!("{}{job}/{number}/", inner.url)}),
                    )
                }
                ("POST", "stop") => {
                    build.stopped = true;
                    (StatusCode::FOUND, [(header::LOCATION, format!("{}{job}/{number}/", inner.url))], "")
                        .into_response()
                }
                _ => html(StatusCode::NOT_FOUND, "Not Found"),
            }
        }
    }
}

fn jenkins_queue(inner: &JenkinsInner, method: &Method, path: &str, query: &str) -> Response {
    let mut state = inner.state.lock().unwrap();
    if *method == Method::POST && path == "/queue/cancelItem" {
        let id = url::form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "id")
            .and_then(|(_, id)| id.parse::<i64>().ok());
        return match id.and_then(|id| state.queue.get_mut(&id)) {
            Some(item) if item.build.is_none() => {
                item.cancelled = true;
                StatusCode::NO_CONTENT.into_response()
            }
            Some(_) => StatusCode::NO_CONTENT.into_response(),
            None => html(StatusCode::NOT_FOUND, "Not Found"),
        };
    }
    let id = path.strip_prefix("/queue/item/").and_then(|rest| rest.strip_suffix("/api/json"));
    let Some(id) = id.and_then(|id| id.parse::<i64>().ok()).filter(|_| *method == Method::GET) else {
        return html(StatusCode::NOT_FOUND, "Not Found");
    };
    let next_build = state.builds.len() as i64 + 1;
    let Some(item) = state.queue.get_mut(&id) else {
        return html(StatusCode::NOT_FOUND, "Not Found");
    };
    if item.build.is_some() && inner.plan.forget_started {
        return html(StatusCode::NOT_FOUND, "Not Found");
    }
    item.polls += 1;
    let job = jenkins_job_path(inner.plan.job);
    let task = json!({"name": inner.plan.job.rsplit('/').next(), "url": format!("{}{job}/", inner.url)});
    if item.cancelled {
        return json_answer(
            StatusCode::OK,
            json!({"_class": "hudson.model.Queue$CancelledItem", "id": id, "cancelled": true, "task": task}),
        );
    }
    if item.build.is_none() && item.polls <= inner.plan.queued_polls {
        return json_answer(
            StatusCode::OK,
            json!({"_class": "hudson.model.Queue$BuildableItem", "id": id, "blocked": false, "buildable": true,
                   "stuck": false, "why": "Waiting for next available executor", "task": task}),
        );
    }
    let number = *item.build.get_or_insert(next_build);
    if number == next_build {
        state.builds.insert(number, Build { queue_id: id, ..Build::default() });
    }
    json_answer(
        StatusCode::OK,
        json!({"_class": "hudson.model.Queue$LeftItem", "id": id, "cancelled": false, "why": null, "task": task,
               "executable": {"_class": "hudson.model.FreeStyleBuild", "number": number,
                              "url": format!("{}{job}/{number}/", inner.url)}}),
    )
}

// ---------------------------------------------------------------------------------------------
// GitLab

pub const GITLAB_PROJECT_ID: i64 = 4711;
pub const GITLAB_PROJECT_PATH: &str = "acme/shop";
pub const GITLAB_TRIGGER_TOKEN: &str = "glptt-0123456789abcdef0123";
pub const GITLAB_API_TOKEN: &str = "glpat-abcdefghij0123456789";
pub const GITLAB_REF: &str = "main";

/// What a stand-in GitLab does.
#[derive(Debug, Clone)]
pub struct GitLabPlan {
    /// A pipeline's status at each poll (`created`, `pending`, `running`, `success`, ...).
    pub statuses: Vec<&'static str>,
    /// The pipeline poll (0-based) answered 503.
    pub unavailable_poll: Option<usize>,
}

impl Default for GitLabPlan {
    fn default() -> Self {
        Self { statuses: vec!["pending", "running", "success"], unavailable_poll: None }
    }
}

#[derive(Default)]
struct Pipeline {
    polls: usize,
    canceled: bool,
}

struct GitLabInner {
    url: String,
    plan: GitLabPlan,
    requests: Mutex<Vec<Recorded>>,
    pipelines: Mutex<HashMap<i64, Pipeline>>,
}

#[derive(Clone)]
pub struct TestGitLab {
    inner: Arc<GitLabInner>,
}

impl TestGitLab {
    pub async fn start(plan: GitLabPlan) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(GitLabInner { url, plan, requests: Mutex::default(), pipelines: Mutex::default() });
        let app = axum::Router::new().fallback(gitlab).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner }
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn triggers(&self) -> Vec<Recorded> {
        self.requests().into_iter().filter(|request| request.path.ends_with("/trigger/pipeline")).collect()
    }

    pub fn canceled(&self) -> bool {
        self.inner.pipelines.lock().unwrap().values().any(|pipeline| pipeline.canceled)
    }
}

fn gitlab_pipeline(inner: &GitLabInner, id: i64, status: &str) -> Value {
    json!({"id": id, "iid": id - 1000, "project_id": GITLAB_PROJECT_ID, "status": status, "source": "trigger",
           "ref": GITLAB_REF, "sha": "a91957a858320c0e17f3a0eca7cfacbff50ea29a",
           "created_at": "2026-12-02T00:00:00.000Z", "updated_at": "2026-12-02T00:00:01.000Z",
           "web_url": format!("{}/{GITLAB_PROJECT_PATH}/-/pipelines/{id}", inner.url)})
}

fn gitlab_message(status: StatusCode, message: &str) -> Response {
    json_answer(status, json!({"message": message}))
}

async fn gitlab(
    State(inner): State<Arc<GitLabInner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&inner.requests, &method, &uri, &body);
    let path = uri.path();
    let encoded_path = GITLAB_PROJECT_PATH.replace('/', "%2F");
    let rest = [format!("/api/v4/projects/{GITLAB_PROJECT_ID}"), format!("/api/v4/projects/{encoded_path}")]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix.as_str()).map(str::to_owned));
    let Some(rest) = rest else {
        return gitlab_message(StatusCode::NOT_FOUND, "404 Project Not Found");
    };
    if method == Method::POST && rest == "/trigger/pipeline" {
        if !text_of(&headers, header::CONTENT_TYPE).starts_with("application/x-www-form-urlencoded") {
            return json_answer(StatusCode::BAD_REQUEST, json!({"error": "token is missing, ref is missing"}));
        }
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        let field = |name: &str| form.iter().find(|(key, _)| key == name).map(|(_, value)| value.as_str());
        let missing: Vec<&str> = ["ref", "token"].into_iter().filter(|name| field(name).is_none()).collect();
        if !missing.is_empty() {
            let error = missing.iter().map(|name| format!("{name} is missing")).collect::<Vec<_>>().join(", ");
            return json_answer(StatusCode::BAD_REQUEST, json!({"error": error}));
        }
        if field("token") != Some(GITLAB_TRIGGER_TOKEN) {
            return gitlab_message(StatusCode::NOT_FOUND, "404 Not Found");
        }
        if field("ref") != Some(GITLAB_REF) {
            return json_answer(StatusCode::BAD_REQUEST, json!({"message": {"base": ["Reference not found"]}}));
        }
        let bad_variable = form.iter().find(|(key, _)| {
            key.strip_prefix("variables[").and_then(|name| name.strip_suffix(']')).is_none_or(str::is_empty)
                && !matches!(key.as_str(), "token" | "ref")
        });
        if let Some((key, _)) = bad_variable {
            return json_answer(
                StatusCode::BAD_REQUEST,
                json!({"error": format!("{key} does not have a valid value")}),
            );
        }
        let mut pipelines = inner.pipelines.lock().unwrap();
        let id = 9000 + pipelines.len() as i64 + 1;
        pipelines.insert(id, Pipeline::default());
        return json_answer(StatusCode::CREATED, gitlab_pipeline(&inner, id, "created"));
    }
    // The Pipelines API: a public project is read without a token, a wrong one is refused.
    let token = headers.get("PRIVATE-TOKEN").and_then(|value| value.to_str().ok());
    if token.is_some_and(|token| token != GITLAB_API_TOKEN) {
        return gitlab_message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
    }
    let Some(rest) = rest.strip_prefix("/pipelines/") else {
        return gitlab_message(StatusCode::NOT_FOUND, "404 Not Found");
    };
    let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
    let mut pipelines = inner.pipelines.lock().unwrap();
    let Some((id, pipeline)) =
        id.parse::<i64>().ok().and_then(|id| pipelines.get_mut(&id).map(|pipeline| (id, pipeline)))
    else {
        return gitlab_message(StatusCode::NOT_FOUND, "404 Not found");
    };
    match (method.as_str(), action) {
        ("GET", "") => {
            let poll = pipeline.polls;
            pipeline.polls += 1;
            if inner.plan.unavailable_poll == Some(poll) {
                return (StatusCode::SERVICE_UNAVAILABLE, "<html><body><h1>503 Service Unavailable</h1></body></html>")
                    .into_response();
            }
            let status = if pipeline.canceled { "canceled" } else { nth(&inner.plan.statuses, poll) };
            json_answer(StatusCode::OK, gitlab_pipeline(&inner, id, status))
        }
        ("POST", "cancel") => {
            if token.is_none() {
                return gitlab_message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
            }
            pipeline.canceled = true;
            json_answer(StatusCode::OK, gitlab_pipeline(&inner, id, "canceled"))
        }
        _ => gitlab_message(StatusCode::NOT_FOUND, "404 Not Found"),
    }
}

// ---------------------------------------------------------------------------------------------
// CircleCI

pub const CIRCLECI_SLUG: &str = "gh/acme/shop";
pub const CIRCLECI_TOKEN: &str = "CCIPAT_0123456789abcdef_0123456789abcdef";

/// What a stand-in CircleCI does.
#[derive(Debug, Clone)]
pub struct CircleCiPlan {
    /// Workflows: a name and its status at each poll of the pipeline's workflows. None: the
    /// pipeline errors (its configuration does not compile) and runs no workflow.
    pub workflows: Option<Vec<(&'static str, Vec<&'static str>)>>,
    /// The workflows poll (0-based) answered 503.
    pub unavailable_poll: Option<usize>,
}

impl Default for CircleCiPlan {
    fn default() -> Self {
        Self { workflows: Some(vec![("deploy", vec!["running", "success"])]), unavailable_poll: None }
    }
}

#[derive(Default)]
struct CirclePipeline {
    number: i64,
    polls: usize,
    /// Workflows cancelled, by index.
    canceled: Vec<usize>,
}

struct CircleInner {
    url: String,
    plan: CircleCiPlan,
    requests: Mutex<Vec<Recorded>>,
    pipelines: Mutex<HashMap<String, CirclePipeline>>,
}

#[derive(Clone)]
pub struct TestCircleCi {
    inner: Arc<CircleInner>,
}

impl TestCircleCi {
    pub async fn start(plan: CircleCiPlan) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(CircleInner { url, plan, requests: Mutex::default(), pipelines: Mutex::default() });
        let app = axum::Router::new().fallback(circleci).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { inner }
    }

    pub fn url(&self) -> &str {
        &self.inner.url
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn triggers(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|request| request.path.ends_with("/pipeline") && request.method == "POST")
            .collect()
    }

    /// The workflows cancelled, by name.
    pub fn canceled(&self) -> Vec<&'static str> {
        let workflows = self.inner.plan.workflows.clone().unwrap_or_default();
        let pipelines = self.inner.pipelines.lock().unwrap();
        pipelines.values().flat_map(|pipeline| pipeline.canceled.iter().map(|index| workflows[*index].0)).collect()
    }
}

fn pipeline_id(number: i64) -> String {
    format!("5034460f-c7c4-4c43-9457-{number:012x}")
}

fn workflow_id(number: i64, index: usize) -> String {
    format!("fda08377-fe7e-46b1-8992-{:08x}{index:04x}", number)
}

async fn circleci(
    State(inner): State<Arc<CircleInner>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    record(&inner.requests, &method, &uri, &body);
    if text_of(&headers, "Circle-Token") != CIRCLECI_TOKEN {
        return json_answer(StatusCode::UNAUTHORIZED, json!({"message": "You must log in first."}));
    }
    let path = uri.path();
    if method == Method::POST && path.starts_with("/api/v2/project/") && path.ends_with("/pipeline") {
        if path != format!("/api/v2/project/{CIRCLECI_SLUG}/pipeline") {
            return json_answer(StatusCode::NOT_FOUND, json!({"message": "Project not found"}));
        }
        if !text_of(&headers, header::CONTENT_TYPE).starts_with("application/json") {
            return json_answer(StatusCode::BAD_REQUEST, json!({"message": "Content-Type must be application/json"}));
        }
        let Ok(request) = serde_json::from_slice::<Value>(&body) else {
            return json_answer(StatusCode::BAD_REQUEST, json!({"message": "Invalid JSON body"}));
        };
        let fields_valid = request.as_object().is_some_and(|fields| {
            fields.keys().all(|key| matches!(key.as_str(), "branch" | "tag" | "parameters"))
                && fields.get("branch").is_none_or(Value::is_string)
                && fields.get("parameters").is_none_or(Value::is_object)
        });
        if !fields_valid {
            return json_answer(StatusCode::BAD_REQUEST, json!({"message": "Invalid request body"}));
        }
        let mut pipelines = inner.pipelines.lock().unwrap();
        let number = pipelines.len() as i64 + 1;
        let id = pipeline_id(number);
        pipelines.insert(id.clone(), CirclePipeline { number, ..CirclePipeline::default() });
        return json_answer(
            StatusCode::CREATED,
            json!({"number": number, "state": "pending", "id": id, "created_at": now_rfc3339()}),
        );
    }
    let mut pipelines = inner.pipelines.lock().unwrap();
    if let Some(rest) = path.strip_prefix("/api/v2/pipeline/") {
        let (id, action) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(pipeline) = pipelines.get_mut(id) else {
            return json_answer(StatusCode::NOT_FOUND, json!({"message": "Pipeline not found"}));
        };
        return match (method.as_str(), action) {
            ("GET", "") => {
                let errored = inner.plan.workflows.is_none();
                let errors = if errored {
                    json!([{"type": "config", "message": "Unable to parse YAML: mapping values are not allowed here"}])
                } else {
                    json!([])
                };
                json_answer(
                    StatusCode::OK,
                    json!({"id": id, "number": pipeline.number, "project_slug": CIRCLECI_SLUG, "errors": errors,
                           "state": if errored { "errored" } else { "created" }, "created_at": now_rfc3339()}),
                )
            }
            ("GET", "workflow") => {
                let poll = pipeline.polls;
                pipeline.polls += 1;
                if inner.plan.unavailable_poll == Some(poll) {
                    return (StatusCode::SERVICE_UNAVAILABLE, "upstream unavailable").into_response();
                }
                let items: Vec<Value> = inner
                    .plan
                    .workflows
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(index, (name, statuses))| {
                        let status = if pipeline.canceled.contains(&index) { "canceled" } else { nth(statuses, poll) };
                        json!({"pipeline_id": id, "id": workflow_id(pipeline.number, index), "name": name,
                               "project_slug": CIRCLECI_SLUG, "status": status, "pipeline_number": pipeline.number,
                               "started_by": "e1b2c3d4-0000-4000-8000-000000000001", "created_at": now_rfc3339()})
                    })
                    .collect();
                json_answer(StatusCode::OK, json!({"items": items, "next_page_token": null}))
            }
            _ => json_answer(StatusCode::NOT_FOUND, json!({"message": "Not found"})),
        };
    }
    if let Some(rest) = path.strip_prefix("/api/v2/workflow/")
        && let Some(id) = rest.strip_suffix("/cancel")
        && method == Method::POST
    {
        let found = pipelines.values_mut().find_map(|pipeline| {
            let count = inner.plan.workflows.as_ref().map_or(0, Vec::len);
            (0..count).find(|index| workflow_id(pipeline.number, *index) == id).map(|index| (pipeline, index))
        });
        return match found {
            Some((pipeline, index)) => {
                pipeline.canceled.push(index);
                json_answer(StatusCode::ACCEPTED, json!({"message": "Accepted."}))
            }
            None => json_answer(StatusCode::NOT_FOUND, json!({"message": "Workflow not found"})),
        };
    }
    json_answer(StatusCode::NOT_FOUND, json!({"message": "Not found"}))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap()
}
