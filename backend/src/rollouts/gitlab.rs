//! GitLab CI through its REST API (v4): a pipeline started with a pipeline trigger token on a
//! ref, the version passed as a CI/CD variable, then the pipeline followed to its end with the
//! Pipelines API, and cancelled there on abort.
//!
//! Parameters: `url` (GitLab's address, `https://gitlab.com`), `project` (its numeric id or its
//! path `group/project`), `ref` (the branch or tag the pipeline runs on), `version_variable`
//! (`VERSION`), `variables` (an object of strings passed as CI/CD variables too). Credential:
//! secret `trigger_token` (a pipeline trigger token, required), secret `api_token` (a token
//! with `read_api` to follow the pipeline and `api` to cancel it, sent as `PRIVATE-TOKEN`;
//! following a public project's pipeline needs none).
//!
//! Statuses: `success` succeeds; `failed` fails, and so does `skipped` (nothing was deployed);
//! `canceled` is a cancelled run; `created`, `waiting_for_resource`, `preparing`, `pending`,
//! `running`, `canceling` and `scheduled` (a delayed job) are running, and so is `manual` (the
//! pipeline waits for someone to play a manual job, such as a deploy to production: the rollout
//! waits with it, or is aborted).

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Map, Value};

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, string_param,
    url_param,
};

const PRIVATE_TOKEN: &str = "PRIVATE-TOKEN";

pub struct GitLab {
    /// `<url>/api/v4/projects/<id or encoded path>`.
    project_api: String,
    git_ref: String,
    version_variable: String,
    variables: Vec<(String, String)>,
    trigger_token: Option<String>,
    api_token: Option<String>,
    http: reqwest::Client,
}

/// Whether a CI/CD variable's name is one GitLab takes: letters, digits and `_`.
fn is_variable_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 255 && name.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

impl GitLab {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let required = |name: &str| {
            string_param(params, name)?.ok_or_else(|| ProviderError::Params(format!("params.{name} is required")))
        };
        let project = required("project")?;
        let path = project.trim_matches('/');
        if path.is_empty() || path.split('/').any(|segment| segment.is_empty() || segment == "..") {
            return Err(ProviderError::Params(format!(
                "params.project {project:?} must be a project's numeric id or its path (group/project)"
            )));
        }
        let version_variable = string_param(params, "version_variable")?.unwrap_or_else(|| "VERSION".to_owned());
        if !is_variable_name(&version_variable) {
            return Err(ProviderError::Params(format!(
                "params.version_variable {version_variable:?} must be letters, digits and '_'"
            )));
        }
        let variables: Vec<(String, String)> = match params.get("variables") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(variables)) => variables
                .iter()
                .map(|(name, value)| match value.as_str() {
                    Some(value) if is_variable_name(name) => Ok((name.clone(), value.to_owned())),
                    _ => Err(ProviderError::Params(format!(
                        "params.variables.{name} must be a string under a name of letters, digits and '_'"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ProviderError::Params("params.variables must be an object of strings".to_owned())),
        };
        if variables.iter().any(|(name, _)| *name == version_variable) {
            return Err(ProviderError::Params(format!(
                "params.variables.{version_variable} is the version's variable (params.version_variable): Vigil sets it"
            )));
        }
        let (trigger_token, api_token) = match credential {
            None => (None, None),
            Some(credential) => {
                (credential.secrets.get("trigger_token").cloned(), credential.secrets.get("api_token").cloned())
            }
        };
        let url = url_param(params, "url")?;
        Ok(Self {
            project_api: format!("{url}/api/v4/projects/{}", utf8_percent_encode(path, NON_ALPHANUMERIC)),
            git_ref: required("ref")?,
            version_variable,
            variables,
            trigger_token,
            api_token,
            http,
        })
    }

    /// Sends a request (with the API token when there is one): the answer's status and body.
    async fn exchange(&self, request: reqwest::RequestBuilder, what: &str) -> Result<(u16, String), ProviderError> {
        let request = match &self.api_token {
            Some(token) => request.header(PRIVATE_TOKEN, token),
            None => request,
        };
        let response =
            request.send().await.map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        Ok((status, body))
    }
}

/// GitLab's error body (`{"message": ...}` or `{"error": ...}`), or its start.
fn message_of(body: &str) -> String {
    let answer: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    match answer.get("message").or_else(|| answer.get("error")) {
        Some(Value::String(message)) => excerpt(message),
        Some(other) => excerpt(&other.to_string()),
        None => excerpt(body),
    }
}

fn parse(what: &str, body: &str) -> Result<Value, ProviderError> {
    serde_json::from_str(body)
        .map_err(|error| ProviderError::Answer { what: what.to_owned(), detail: error.to_string() })
}

/// A pipeline's `status`, as a run's.
fn status_of(status: &str) -> RunStatus {
    match status {
        "success" => RunStatus::Succeeded,
        "failed" | "skipped" => RunStatus::Failed,
        "canceled" => RunStatus::Cancelled,
        _ => RunStatus::Running,
    }
}

#[async_trait::async_trait]
impl Provider for GitLab {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let token = self.trigger_token.as_deref().ok_or_else(|| {
            ProviderError::Params(
                "a gitlab credential needs the secret trigger_token (a pipeline trigger token)".to_owned(),
            )
        })?;
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token).append_pair("ref", &self.git_ref);
            form.append_pair(&format!("variables[{}]", self.version_variable), request.version);
            for (name, value) in &self.variables {
                form.append_pair(&format!("variables[{name}]"), value);
            }
            form.finish()
        };
        let what = "gitlab's pipeline trigger";
        // The trigger token is the credential here: no PRIVATE-TOKEN.
        let response = self
            .http
            .post(format!("{}/trigger/pipeline", self.project_api))
            .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        if status != 201 {
            let mut message = message_of(&body);
            if status == 404 {
                // GitLab answers 404 for an unknown project and for a trigger token it does not know.
                message.push_str(" (no such project, or the trigger token is not one of its trigger tokens)");
            }
            return Err(ProviderError::Refused { what: what.to_owned(), status, body: message });
        }
        let pipeline = parse(what, &body)?;
        let id = pipeline["id"]
            .as_i64()
            .ok_or_else(|| ProviderError::Answer { what: what.to_owned(), detail: excerpt(&body) })?;
        Ok(RunHandle { id: id.to_string(), url: pipeline["web_url"].as_str().map(str::to_owned), finished: None })
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let what = format!("gitlab's pipeline {run_id}");
        let (status, body) =
            self.exchange(self.http.get(format!("{}/pipelines/{run_id}", self.project_api)), &what).await?;
        if status != 200 {
            return Err(ProviderError::Refused { what, status, body: message_of(&body) });
        }
        let pipeline = parse(&what, &body)?;
        let state = pipeline["status"].as_str().unwrap_or("unknown");
        let detail = match state {
            "manual" => "pipeline manual: waiting for a manual job to be played".to_owned(),
            "scheduled" => "pipeline scheduled: waiting for a delayed job".to_owned(),
            _ => format!("pipeline {state}"),
        };
        Ok(RunOutcome { status: status_of(state), detail, url: pipeline["web_url"].as_str().map(str::to_owned) })
    }

    async fn cancel(&self, run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        if self.api_token.is_none() {
            return Err(ProviderError::Params(
                "cancelling a gitlab pipeline needs the secret api_token (a token with the api scope)".to_owned(),
            ));
        }
        let what = format!("gitlab's cancel of pipeline {run_id}");
        let url = format!("{}/pipelines/{run_id}/cancel", self.project_api);
        let (status, body) = self.exchange(self.http.post(url), &what).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(ProviderError::Refused { what, status, body: message_of(&body) })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gitlab(params: Value) -> Result<GitLab, ProviderError> {
        GitLab::new(params.as_object().unwrap(), None, reqwest::Client::new())
    }

    #[test]
    fn a_project_path_is_encoded_and_parameters_are_checked() {
        let by_path = gitlab(
            serde_json::json!({"url": "https://gitlab.example.com/", "project": "group/sub/shop", "ref": "main"}),
        )
        .unwrap();
        assert_eq!(by_path.project_api, "https://gitlab.example.com/api/v4/projects/group%2Fsub%2Fshop");
        let by_id =
            gitlab(serde_json::json!({"url": "https://gitlab.example.com", "project": "123456", "ref": "main"}))
                .unwrap();
        assert_eq!(by_id.project_api, "https://gitlab.example.com/api/v4/projects/123456");
        for (params, named) in [
            (serde_json::json!({"url": "https://g", "ref": "main"}), "params.project"),
            (serde_json::json!({"url": "https://g", "project": "a//b", "ref": "main"}), "params.project"),
            (serde_json::json!({"url": "https://g", "project": "1"}), "params.ref"),
            (serde_json::json!({"project": "1", "ref": "main"}), "params.url"),
            (
                serde_json::json!({"url": "https://g", "project": "1", "ref": "m", "version_variable": "A-B"}),
                "params.version_variable",
            ),
            (
                serde_json::json!({"url": "https://g", "project": "1", "ref": "m", "variables": {"X": true}}),
                "params.variables.X",
            ),
            (
                serde_json::json!({"url": "https://g", "project": "1", "ref": "m", "variables": {"VERSION": "1"}}),
                "params.variables.VERSION",
            ),
        ] {
            let error = gitlab(params.clone()).err().unwrap().to_string();
            assert!(error.starts_with(named), "{params}: {error}");
        }
    }

    #[test]
    fn statuses_map_to_run_statuses() {
        assert_eq!(status_of("success"), RunStatus::Succeeded);
        for failed in ["failed", "skipped"] {
            assert_eq!(status_of(failed), RunStatus::Failed, "{failed}");
        }
        assert_eq!(status_of("canceled"), RunStatus::Cancelled);
        for running in
            ["created", "waiting_for_resource", "preparing", "pending", "running", "canceling", "manual", "scheduled"]
        {
            assert_eq!(status_of(running), RunStatus::Running, "{running}");
        }
    }
}
