//! CircleCI through its API v2: a pipeline triggered on a branch with the version among its
//! pipeline parameters, then followed through its workflows until all of them ended; the
//! workflows still going are cancelled on abort.
//!
//! Parameters: `url` (`https://circleci.com`, or a CircleCI server's address), `project_slug`
//! (`gh/<org>/<repo>`, `bb/<org>/<repo>` or `circleci/<org id>/<project id>`), `branch` (the
//! project's default branch when absent), `version_parameter` (`version`; a pipeline parameter
//! the configuration declares), `parameters` (an object of strings, numbers and booleans sent
//! along), `setup_seconds` (120: how long a pipeline may go without a workflow before it is
//! taken as failed, as a pipeline whose configuration lets no workflow run). Credential: secret
//! `token` (a personal API token), sent as `Circle-Token`.
//!
//! A run is over when every workflow ended: it failed when one `failed`, had an `error` or was
//! `unauthorized`; it was cancelled when one was `canceled` (and none failed); it succeeded when
//! one succeeded and the others succeeded or were `not_run`. `running`, `failing` (a job failed,
//! others go on) and `on_hold` (waiting for an approval job) are still going. A pipeline in state
//! `errored` (its configuration could not be compiled) failed.

use serde_json::{Map, Value, json};

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, string_param,
    url_param,
};

const TOKEN_HEADER: &str = "Circle-Token";
const DEFAULT_URL: &str = "https://circleci.com";
const DEFAULT_SETUP_SECONDS: i64 = 120;
/// Pages of workflows read (a pipeline rarely has more than the first page's 20).
const MAX_PAGES: usize = 5;

pub struct CircleCi {
    url: String,
    project_slug: String,
    branch: Option<String>,
    version_parameter: String,
    parameters: Map<String, Value>,
    setup_seconds: i64,
    token: Option<String>,
    http: reqwest::Client,
}

impl CircleCi {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let url = match params.get("url") {
            None | Some(Value::Null) => DEFAULT_URL.to_owned(),
            Some(_) => url_param(params, "url")?,
        };
        let project_slug = string_param(params, "project_slug")?
            .ok_or_else(|| ProviderError::Params("params.project_slug is required".to_owned()))?;
        let segments: Vec<&str> = project_slug.split('/').collect();
        let plain = |segment: &&str| {
            !segment.is_empty() && segment.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte))
        };
        if segments.len() != 3 || !segments.iter().all(plain) {
            return Err(ProviderError::Params(format!(
                "params.project_slug {project_slug:?} must be <vcs>/<org>/<project>, such as gh/acme/shop"
            )));
        }
        let parameters = match params.get("parameters") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(parameters)) => {
                if let Some((name, _)) =
                    parameters.iter().find(|(_, value)| !(value.is_string() || value.is_number() || value.is_boolean()))
                {
                    return Err(ProviderError::Params(format!(
                        "params.parameters.{name} must be a string, a number or a boolean"
                    )));
                }
                parameters.clone()
            }
            Some(_) => return Err(ProviderError::Params("params.parameters must be an object".to_owned())),
        };
        let version_parameter = string_param(params, "version_parameter")?.unwrap_or_else(|| "version".to_owned());
        if parameters.contains_key(&version_parameter) {
            return Err(ProviderError::Params(format!(
                "params.parameters.{version_parameter} is the version's parameter (params.version_parameter): \
                 Vigil sets it"
            )));
        }
        let setup_seconds = match params.get("setup_seconds") {
            None | Some(Value::Null) => DEFAULT_SETUP_SECONDS,
            Some(value) => value.as_i64().filter(|seconds| (1..=86_400).contains(seconds)).ok_or_else(|| {
                ProviderError::Params(
                    "params.setup_seconds must be a whole number of seconds from 1 to 86400".to_owned(),
                )
            })?,
        };
        Ok(Self {
            url,
            project_slug,
            branch: string_param(params, "branch")?,
            version_parameter,
            parameters,
            setup_seconds,
            token: credential.and_then(|credential| credential.secrets.get("token").cloned()),
            http,
        })
    }

    fn token(&self) -> Result<&str, ProviderError> {
        self.token.as_deref().ok_or_else(|| {
            ProviderError::Params("a circleci credential needs the secret token (a personal API token)".to_owned())
        })
    }

    /// A call of the API: the answer's JSON when it is a 2xx.
    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, ProviderError> {
        let response = request
            .header(TOKEN_HEADER, self.token()?)
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if !(200..300).contains(&status) {
            let message = answer["message"].as_str().map(excerpt).unwrap_or_else(|| excerpt(&body));
            return Err(ProviderError::Refused { what: what.to_owned(), status, body: message });
        }
        if answer.is_null() {
            return Err(ProviderError::Answer { what: what.to_owned(), detail: excerpt(&body) });
        }
        Ok(answer)
    }

    /// Where a pipeline is shown: the app of CircleCI's cloud, or the server itself.
    fn pipeline_link(&self, number: i64) -> String {
        let app = if self.url == DEFAULT_URL { "https://app.circleci.com" } else { self.url.as_str() };
        format!("{app}/pipelines/{}/{number}", self.project_slug)
    }

    /// Every workflow of a pipeline (a few pages at most).
    async fn workflows(&self, pipeline: &str) -> Result<Vec<Value>, ProviderError> {
        let what = format!("circleci's workflows of pipeline {pipeline}");
        let mut workflows = Vec::new();
        let mut page_token: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let mut url = format!("{}/api/v2/pipeline/{pipeline}/workflow", self.url);
            if let Some(token) = &page_token {
                url.push_str("?page-token=");
                url.push_str(&url::form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>());
            }
            let page = self.call(self.http.get(url), &what).await?;
            workflows.extend(page["items"].as_array().cloned().unwrap_or_default());
            match page["next_page_token"].as_str().filter(|token| !token.is_empty()) {
                Some(token) => page_token = Some(token.to_owned()),
                None => break,
            }
        }
        Ok(workflows)
    }
}

/// Whether a workflow in `status` still goes on.
fn going(status: &str) -> bool {
    matches!(status, "running" | "failing" | "on_hold")
}

/// The run's outcome from its workflows' statuses, once none goes on.
fn outcome_of(statuses: &[&str]) -> Option<RunStatus> {
    if statuses.is_empty() || statuses.iter().any(|status| going(status)) {
        return None;
    }
    Some(if statuses.iter().any(|status| matches!(*status, "failed" | "error" | "unauthorized")) {
        RunStatus::Failed
    } else if statuses.contains(&"canceled") {
        RunStatus::Cancelled
    } else if statuses.contains(&"success") {
        RunStatus::Succeeded
    } else {
        // Only not_run (or statuses this code does not know): nothing was deployed.
        RunStatus::Failed
    })
}

#[async_trait::async_trait]
impl Provider for CircleCi {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let mut parameters = self.parameters.clone();
        parameters.insert(self.version_parameter.clone(), Value::from(request.version));
        let mut body = json!({"parameters": parameters});
        if let Some(branch) = &self.branch {
            body["branch"] = Value::from(branch.as_str());
        }
        let what = "circleci's pipeline trigger";
        let url = format!("{}/api/v2/project/{}/pipeline", self.url, self.project_slug);
        let pipeline = self.call(self.http.post(url).json(&body), what).await?;
        let id = pipeline["id"]
            .as_str()
            .filter(|id| !id.is_empty())
            .ok_or_else(|| ProviderError::Answer { what: what.to_owned(), detail: excerpt(&pipeline.to_string()) })?;
        let url = pipeline["number"].as_i64().map(|number| self.pipeline_link(number));
        Ok(RunHandle { id: id.to_owned(), url, finished: None })
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let workflows = self.workflows(run_id).await?;
        if workflows.is_empty() {
            let what = format!("circleci's pipeline {run_id}");
            let pipeline = self.call(self.http.get(format!("{}/api/v2/pipeline/{run_id}", self.url)), &what).await?;
            let url = pipeline["number"].as_i64().map(|number| self.pipeline_link(number));
            if pipeline["state"] == "errored" {
                let errors: Vec<&str> = pipeline["errors"]
                    .as_array()
                    .map(|errors| errors.iter().filter_map(|error| error["message"].as_str()).collect())
                    .unwrap_or_default();
                let detail = format!("the pipeline errored: {}", excerpt(&errors.join("; ")));
                return Ok(RunOutcome { status: RunStatus::Failed, detail, url });
            }
            let created = pipeline["created_at"]
                .as_str()
                .and_then(|at| time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339).ok());
            let waited = created.map(|at| (time::OffsetDateTime::now_utc() - at).whole_seconds()).unwrap_or(0);
            if waited > self.setup_seconds {
                let detail =
                    format!("no workflow started in {waited} s: the configuration runs none for this pipeline");
                return Ok(RunOutcome { status: RunStatus::Failed, detail, url });
            }
            let state = pipeline["state"].as_str().unwrap_or("unknown");
            return Ok(RunOutcome { status: RunStatus::Running, detail: format!("pipeline {state}"), url });
        }
        let statuses: Vec<&str> =
            workflows.iter().map(|workflow| workflow["status"].as_str().unwrap_or("unknown")).collect();
        let detail = workflows
            .iter()
            .zip(&statuses)
            .map(|(workflow, status)| format!("{} {status}", workflow["name"].as_str().unwrap_or("workflow")))
            .collect::<Vec<_>>()
            .join(", ");
        let url = workflows[0]["pipeline_number"].as_i64().map(|number| self.pipeline_link(number));
        let status = outcome_of(&statuses).unwrap_or(RunStatus::Running);
        Ok(RunOutcome { status, detail: excerpt(&detail), url })
    }

    async fn cancel(&self, run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        let workflows = self.workflows(run_id).await?;
        if workflows.is_empty() {
            return Err(ProviderError::Answer {
                what: format!("circleci's pipeline {run_id}"),
                detail: "no workflow has started yet: nothing to cancel".to_owned(),
            });
        }
        for workflow in workflows.iter().filter(|workflow| workflow["status"].as_str().is_some_and(going)) {
            let id = workflow["id"].as_str().unwrap_or_default();
            let what = format!("circleci's cancel of workflow {id}");
            self.call(self.http.post(format!("{}/api/v2/workflow/{id}/cancel", self.url)), &what).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn circleci(params: Value) -> Result<CircleCi, ProviderError> {
        CircleCi::new(params.as_object().unwrap(), None, reqwest::Client::new())
    }

    #[test]
    fn parameters_are_checked_and_the_cloud_links_to_its_app() {
        let cloud = circleci(json!({"project_slug": "gh/acme/shop"})).unwrap();
        assert_eq!(cloud.url, "https://circleci.com");
        assert_eq!(cloud.pipeline_link(7), "https://app.circleci.com/pipelines/gh/acme/shop/7");
        let server = circleci(json!({"url": "https://ci.example.com/", "project_slug": "gh/acme/shop"})).unwrap();
        assert_eq!(server.pipeline_link(7), "https://ci.example.com/pipelines/gh/acme/shop/7");
        for (params, named) in [
            (json!({}), "params.project_slug"),
            (json!({"project_slug": "acme/shop"}), "params.project_slug"),
            (json!({"project_slug": "gh/acme/shop?x"}), "params.project_slug"),
            (json!({"project_slug": "gh/a/b", "url": "ftp://x"}), "params.url"),
            (json!({"project_slug": "gh/a/b", "parameters": {"x": [1]}}), "params.parameters.x"),
            (json!({"project_slug": "gh/a/b", "parameters": {"version": "1"}}), "params.parameters.version"),
            (json!({"project_slug": "gh/a/b", "setup_seconds": 0}), "params.setup_seconds"),
        ] {
            let error = circleci(params.clone()).err().unwrap().to_string();
            assert!(error.starts_with(named), "{params}: {error}");
        }
    }

    #[test]
    fn a_run_ends_when_every_workflow_ended() {
        assert_eq!(outcome_of(&[]), None);
        assert_eq!(outcome_of(&["success", "running"]), None);
        assert_eq!(outcome_of(&["failing"]), None);
        assert_eq!(outcome_of(&["on_hold"]), None);
        assert_eq!(outcome_of(&["success", "not_run"]), Some(RunStatus::Succeeded));
        assert_eq!(outcome_of(&["success", "failed"]), Some(RunStatus::Failed));
        assert_eq!(outcome_of(&["error"]), Some(RunStatus::Failed));
        assert_eq!(outcome_of(&["unauthorized"]), Some(RunStatus::Failed));
        assert_eq!(outcome_of(&["success", "canceled"]), Some(RunStatus::Cancelled));
        assert_eq!(outcome_of(&["not_run"]), Some(RunStatus::Failed));
    }
}
