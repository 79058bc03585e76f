//! GitHub Actions through the REST API (version 2022-11-28): a `workflow_dispatch` of a
//! workflow on a ref with the version as an input, the run it started followed to its
//! conclusion, cancelled on abort.
//!
//! Parameters: `owner`, `repo`, `workflow` (the workflow's id or file name, `deploy.yml`),
//! `ref` (a branch or tag), `api` (`https://api.github.com`; `https://HOST/api/v3` for GitHub
//! Enterprise Server), `version_input` (`version`), `inputs` (an object of strings sent along),
//! `rollout_input` (an input that receives `vigil-rollout-<id>`, see below) and
//! `return_run_details` (`true` for `api.github.com`, `false` for other servers, which may not
//! know it yet and refuse it with 422). Credential: an integration of kind `github` with the secret
//! `token` (a fine-grained token with "Actions: write", or a classic one with `repo`), sent as
//! `Authorization: Bearer`.
//!
//! Finding the run: a dispatch answers 204 without the run. With `return_run_details` GitHub
//! (since February 2026) answers 200 with `workflow_run_id` and `html_url`, and that run is
//! followed. Otherwise the run id is `dispatch:<unix seconds of the trigger>:<rollout id>` and
//! every poll lists the workflow's `workflow_dispatch` runs on the branch created since then:
//! with `rollout_input`, the run whose `display_title` (the workflow's `run-name`) holds the
//! marker, looked for from two minutes before the trigger (GitHub's clock may lag ours);
//! without it, the earliest run created at or after the trigger second (the earliest, not the
//! newest, so that a later dispatch by someone else does not take its place between polls).
//! Until the run appears, the rollout is running with "waiting for the run to appear".
//! Without the marker or the run details, two dispatches of the workflow on the branch within
//! the same second cannot be told apart: set one of them where that can happen.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, string_param,
    url_param,
};

const WHAT: &str = "github";
const DEFAULT_API: &str = "https://api.github.com";
const API_VERSION: &str = "2022-11-28";
const ACCEPT: &str = "application/vnd.github+json";
/// Prefix of the run id of a dispatch whose run is found by listing.
const DISPATCH: &str = "dispatch:";
/// How far before the trigger a run with the rollout's marker is looked for.
const MARKED_SKEW_SECONDS: i64 = 120;
/// GitHub refuses a dispatch with more inputs than this.
const MAX_INPUTS: usize = 25;

/// How often a run is polled unless `params.poll_seconds` says otherwise.
const DEFAULT_POLL_SECONDS: u64 = 5;

pub struct GitHubActions {
    api: String,
    owner: String,
    repo: String,
    workflow: String,
    git_ref: String,
    version_input: String,
    inputs: Map<String, Value>,
    rollout_input: Option<String>,
    return_run_details: bool,
    token: Option<String>,
    poll_interval: std::time::Duration,
    http: reqwest::Client,
}

/// Whether `name` is a repository owner, repository or workflow file name GitHub allows: so
/// that a parameter cannot change the API path.
fn is_path_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The marker a run of rollout `id` carries in its inputs (and `run-name`).
pub fn marker(rollout_id: i64) -> String {
    format!("vigil-rollout-{rollout_id}")
}

impl GitHubActions {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let required = |name: &str| {
            string_param(params, name)?.ok_or_else(|| ProviderError::Params(format!("params.{name} is required")))
        };
        let path_name = |name: &str| {
            let value = required(name)?;
            if is_path_name(&value) {
                Ok(value)
            } else {
                Err(ProviderError::Params(format!(
                    "params.{name} {value:?} must be 1 to 100 letters, digits, '-', '_' and '.'"
                )))
            }
        };
        let api = if params.get("api").is_some_and(|api| !api.is_null()) {
            url_param(params, "api")?
        } else {
            DEFAULT_API.to_owned()
        };
        let inputs = match params.get("inputs") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(inputs)) if inputs.values().all(Value::is_string) => inputs.clone(),
            Some(_) => return Err(ProviderError::Params("params.inputs must be an object of strings".to_owned())),
        };
        let version_input = string_param(params, "version_input")?.unwrap_or_else(|| "version".to_owned());
        let rollout_input = string_param(params, "rollout_input")?;
        for name in std::iter::once(&version_input).chain(&rollout_input) {
            if inputs.contains_key(name) {
                return Err(ProviderError::Params(format!("params.inputs must not hold {name:?}: Vigil sets it")));
            }
        }
        if rollout_input.as_ref() == Some(&version_input) {
            return Err(ProviderError::Params("params.rollout_input must differ from params.version_input".to_owned()));
        }
        let count = inputs.len() + 1 + usize::from(rollout_input.is_some());
        if count > MAX_INPUTS {
            return Err(ProviderError::Params(format!(
                "params.inputs: a dispatch takes at most {MAX_INPUTS} inputs, these make {count}"
            )));
        }
        let return_run_details = match params.get("return_run_details") {
            None | Some(Value::Null) => api == DEFAULT_API,
            Some(Value::Bool(flag)) => *flag,
            Some(_) => return Err(ProviderError::Params("params.return_run_details must be true or false".to_owned())),
        };
        // GitHub allows 5,000 requests an hour to a token: a run polled every 5 s takes 720.
        let poll_seconds = match params.get("poll_seconds") {
            None | Some(Value::Null) => DEFAULT_POLL_SECONDS,
            Some(Value::Number(number)) if number.as_u64().is_some_and(|seconds| seconds <= 3600) => {
                number.as_u64().unwrap_or(DEFAULT_POLL_SECONDS)
            }
            Some(_) => return Err(ProviderError::Params("params.poll_seconds must be 0 to 3600".to_owned())),
        };
        let token =
            match credential {
                None => None,
                Some(credential) => {
                    Some(credential.secrets.get("token").cloned().ok_or_else(|| {
                        ProviderError::Params("a github credential needs the secret token".to_owned())
                    })?)
                }
            };
        Ok(Self {
            api,
            owner: path_name("owner")?,
            repo: path_name("repo")?,
            workflow: path_name("workflow")?,
            git_ref: required("ref")?,
            version_input,
            inputs,
            rollout_input,
            return_run_details,
            token,
            poll_interval: std::time::Duration::from_secs(poll_seconds),
            http,
        })
    }

    /// The repository's web address, for the link shown until the run is known: github.com
    /// for the public API, the host of a GitHub Enterprise Server's `/api/v3` otherwise.
    fn web_url(&self) -> String {
        let web = if self.api == DEFAULT_API {
            "https://github.com".to_owned()
        } else {
            self.api.trim_end_matches("/api/v3").to_owned()
        };
        format!("{web}/{}/{}", self.owner, self.repo)
    }

    fn repository_url(&self) -> String {
        format!("{}/repos/{}/{}", self.api, self.owner, self.repo)
    }

    /// The branch runs are listed by: the ref without `refs/heads/` or `refs/tags/`.
    fn branch(&self) -> &str {
        self.git_ref
            .strip_prefix("refs/heads/")
            .or_else(|| self.git_ref.strip_prefix("refs/tags/"))
            .unwrap_or(&self.git_ref)
    }

    /// A call with GitHub's headers and the token; the status and body of a 2xx answer, else
    /// the refusal (a spent rate limit told apart from a refused token).
    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<(u16, String), ProviderError> {
        let token = self.token.as_ref().ok_or_else(|| {
            ProviderError::Params(
                "the github provider needs an integration of kind github with the secret token".to_owned(),
            )
        })?;
        let what = format!("{WHAT}'s {what}");
        let response = request
            .bearer_auth(token)
            .header(reqwest::header::ACCEPT, ACCEPT)
            .header("X-GitHub-Api-Version", API_VERSION)
            .send()
            .await
            .map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        let status = response.status().as_u16();
        let header = |name: &str| response.headers().get(name).and_then(|value| value.to_str().ok()).map(str::to_owned);
        let rate_limited = header("x-ratelimit-remaining").as_deref() == Some("0");
        let reset = header("x-ratelimit-reset").and_then(|reset| reset.parse::<i64>().ok());
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        if (200..300).contains(&status) {
            return Ok((status, body));
        }
        let message = serde_json::from_str::<Value>(&body)
            .ok()
            .and_then(|answer| answer.get("message").and_then(Value::as_str).map(str::to_owned))
            .unwrap_or_else(|| excerpt(&body));
        let body = match status {
            403 | 429 if rate_limited => {
                let until = reset
                    .and_then(|reset| OffsetDateTime::from_unix_timestamp(reset).ok())
                    .and_then(|reset| reset.format(&Rfc3339).ok())
                    .map(|reset| format!(" until {reset}"))
                    .unwrap_or_default();
                format!("the token's rate limit is spent{until} ({})", excerpt(&message))
            }
            401 | 403 => format!("the token was refused ({})", excerpt(&message)),
            _ => excerpt(&message),
        };
        Err(ProviderError::Refused { what, status, body })
    }

    async fn read(&self, url: &str, what: &str) -> Result<Value, ProviderError> {
        let (_, body) = self.call(self.http.get(url), what).await?;
        serde_json::from_str(&body)
            .map_err(|error| ProviderError::Answer { what: format!("{WHAT}'s {what}"), detail: error.to_string() })
    }

    /// The run of a dispatch made at `since` (Unix seconds) for rollout `rollout_id`, once it
    /// appeared.
    async fn find_run(&self, since: i64, rollout_id: i64) -> Result<Option<Value>, ProviderError> {
        let marker = self.rollout_input.as_ref().map(|_| marker(rollout_id));
        let from = if marker.is_some() { since - MARKED_SKEW_SECONDS } else { since };
        let from = OffsetDateTime::from_unix_timestamp(from)
            .map_err(|error| ProviderError::Answer { what: "the run id".to_owned(), detail: error.to_string() })?;
        let from_text = from
            .format(&Rfc3339)
            .map_err(|error| ProviderError::Answer { what: "the run id".to_owned(), detail: error.to_string() })?;
        let base = format!("{}/actions/workflows/{}/runs", self.repository_url(), self.workflow);
        let mut url = url::Url::parse(&base).map_err(|error| ProviderError::Params(format!("params.api: {error}")))?;
        url.query_pairs_mut()
            .append_pair("event", "workflow_dispatch")
            .append_pair("branch", self.branch())
            .append_pair("created", &format!(">={from_text}"))
            .append_pair("per_page", "100");
        let page = self.read(url.as_str(), &format!("runs of {}", self.workflow)).await?;
        let runs = page.get("workflow_runs").and_then(Value::as_array).cloned().unwrap_or_default();
        let created = |run: &Value| {
            run.get("created_at").and_then(Value::as_str).and_then(|text| OffsetDateTime::parse(text, &Rfc3339).ok())
        };
        let found = runs
            .into_iter()
            .filter_map(|run| created(&run).map(|at| (at, run)))
            .filter(|(at, run)| match &marker {
                Some(marker) => ["display_title", "name"].iter().any(|field| {
                    run.get(field).and_then(Value::as_str).is_some_and(|title| title.contains(marker.as_str()))
                }),
                None => *at >= from,
            })
            .min_by_key(|(at, run)| (*at, run.get("id").and_then(Value::as_i64).unwrap_or(i64::MAX)))
            .map(|(_, run)| run);
        Ok(found)
    }

    /// The run a run id names: a run id, or a dispatch whose run is looked for.
    async fn run_of(&self, run_id: &str) -> Result<Option<Value>, ProviderError> {
        match parse_run_id(run_id)? {
            RunId::Run(id) => {
                let url = format!("{}/actions/runs/{id}", self.repository_url());
                Ok(Some(self.read(&url, &format!("run {id}")).await?))
            }
            RunId::Dispatch { since, rollout_id } => self.find_run(since, rollout_id).await,
        }
    }
}

enum RunId {
    Run(i64),
    Dispatch { since: i64, rollout_id: i64 },
}

fn parse_run_id(run_id: &str) -> Result<RunId, ProviderError> {
    let bad =
        || ProviderError::Answer { what: "the run id".to_owned(), detail: format!("{run_id:?} is not a github run") };
    if let Some(rest) = run_id.strip_prefix(DISPATCH) {
        let (since, rollout_id) = rest.split_once(':').ok_or_else(bad)?;
        return Ok(RunId::Dispatch {
            since: since.parse().map_err(|_| bad())?,
            rollout_id: rollout_id.parse().map_err(|_| bad())?,
        });
    }
    run_id.parse().map(RunId::Run).map_err(|_| bad())
}

/// A workflow run's `status` and `conclusion` as a run's status.
fn outcome_of(run: &Value) -> RunOutcome {
    let text = |field: &str| run.get(field).and_then(Value::as_str).unwrap_or_default();
    let id = run.get("id").and_then(Value::as_i64).unwrap_or_default();
    let url = run.get("html_url").and_then(Value::as_str).map(str::to_owned);
    let title = text("display_title");
    let (status, detail) = match (text("status"), text("conclusion")) {
        ("completed", "success") => (RunStatus::Succeeded, format!("run {id} succeeded")),
        ("completed", "cancelled") => (RunStatus::Cancelled, format!("run {id} was cancelled")),
        ("completed", conclusion) => (RunStatus::Failed, format!("run {id} concluded {conclusion}")),
        (status, _) => (RunStatus::Running, format!("run {id} is {status}")),
    };
    let detail = if title.is_empty() { detail } else { format!("{detail} ({})", excerpt(title)) };
    RunOutcome { status, detail, url }
}

#[async_trait::async_trait]
impl Provider for GitHubActions {
    fn poll_interval(&self) -> std::time::Duration {
        self.poll_interval
    }

    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let mut inputs = self.inputs.clone();
        inputs.insert(self.version_input.clone(), Value::from(request.version));
        if let Some(name) = &self.rollout_input {
            inputs.insert(name.clone(), Value::from(marker(request.rollout_id)));
        }
        let mut body = json!({"ref": self.git_ref, "inputs": inputs});
        if self.return_run_details {
            body["return_run_details"] = Value::Bool(true);
        }
        let since = OffsetDateTime::now_utc().unix_timestamp();
        let url = format!("{}/actions/workflows/{}/dispatches", self.repository_url(), self.workflow);
        let what = format!("dispatch of {}", self.workflow);
        let (status, text) = self.call(self.http.post(url).json(&body), &what).await?;
        let answer: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match answer.get("workflow_run_id").and_then(Value::as_i64) {
            Some(run) if status == 200 => Ok(RunHandle {
                id: run.to_string(),
                url: answer.get("html_url").and_then(Value::as_str).map(str::to_owned),
                finished: None,
            }),
            _ => Ok(RunHandle {
                id: format!("{DISPATCH}{since}:{}", request.rollout_id),
                url: Some(format!("{}/actions/workflows/{}", self.web_url(), self.workflow)),
                finished: None,
            }),
        }
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        Ok(match self.run_of(run_id).await? {
            Some(run) => outcome_of(&run),
            None => RunOutcome {
                status: RunStatus::Running,
                detail: "dispatched; waiting for the run to appear".to_owned(),
                url: None,
            },
        })
    }

    async fn cancel(&self, run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        let Some(run) = self.run_of(run_id).await? else {
            return Err(ProviderError::Answer {
                what: WHAT.to_owned(),
                detail: "the dispatched run has not appeared yet: cancel it in GitHub once it does".to_owned(),
            });
        };
        let id = run
            .get("id")
            .and_then(Value::as_i64)
            .ok_or_else(|| ProviderError::Answer { what: WHAT.to_owned(), detail: "a run without an id".to_owned() })?;
        let url = format!("{}/actions/runs/{id}/cancel", self.repository_url());
        self.call(self.http.post(url), &format!("cancel of run {id}")).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(extra: Value) -> Map<String, Value> {
        let mut params = json!({"owner": "octo-org", "repo": "octo-repo", "workflow": "deploy.yml", "ref": "main"});
        for (key, value) in extra.as_object().unwrap() {
            params[key] = value.clone();
        }
        params.as_object().unwrap().clone()
    }

    fn error(extra: Value) -> String {
        match GitHubActions::new(&params(extra), None, reqwest::Client::new()) {
            Ok(_) => panic!("accepted"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn parameters_are_checked_and_named() {
        assert!(GitHubActions::new(&params(json!({})), None, reqwest::Client::new()).is_ok());
        assert!(error(json!({"owner": "../evil"})).starts_with("params.owner"));
        assert!(error(json!({"workflow": "a/b.yml"})).starts_with("params.workflow"));
        assert!(error(json!({"ref": ""})).starts_with("params.ref"));
        assert!(error(json!({"api": "ftp://example.com"})).starts_with("params.api"));
        assert!(error(json!({"inputs": {"version": "1"}})).contains("Vigil sets it"));
        assert!(error(json!({"inputs": {"a": 1}})).starts_with("params.inputs"));
        assert!(error(json!({"return_run_details": "yes"})).starts_with("params.return_run_details"));
        let credential = Credential::default();
        let refused = GitHubActions::new(&params(json!({})), Some(credential), reqwest::Client::new());
        assert!(refused.is_err_and(|error| error.to_string().contains("secret token")));
    }

    #[test]
    fn run_ids_are_runs_or_dispatches() {
        assert!(matches!(parse_run_id("42"), Ok(RunId::Run(42))));
        assert!(matches!(
            parse_run_id("dispatch:1700000000:7"),
            Ok(RunId::Dispatch { since: 1_700_000_000, rollout_id: 7 })
        ));
        assert!(parse_run_id("dispatch:x:7").is_err());
        assert!(parse_run_id("webhook-1").is_err());
    }

    #[test]
    fn a_run_is_done_only_when_completed() {
        let run = |status: &str, conclusion: Value| json!({"id": 5, "status": status, "conclusion": conclusion});
        assert_eq!(outcome_of(&run("queued", Value::Null)).status, RunStatus::Running);
        assert_eq!(outcome_of(&run("in_progress", Value::Null)).status, RunStatus::Running);
        assert_eq!(outcome_of(&run("completed", json!("success"))).status, RunStatus::Succeeded);
        assert_eq!(outcome_of(&run("completed", json!("cancelled"))).status, RunStatus::Cancelled);
        for conclusion in ["failure", "timed_out", "startup_failure", "action_required", "skipped", "neutral"] {
            assert_eq!(outcome_of(&run("completed", json!(conclusion))).status, RunStatus::Failed, "{conclusion}");
        }
    }
}
