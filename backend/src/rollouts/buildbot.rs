//! Buildbot (3.x) through its JSON-RPC API: a force scheduler started with the version and
//! the environment's properties, then the build request followed to its build and the build
//! to its result; stopping the build (or cancelling the request still queued) on abort.
//!
//! Parameters: `url` (the master's web address), `scheduler` (a force scheduler), `builder`,
//! `version_property` (`version`), `properties` (an object of strings added to the force).
//! Credential (optional): setting `username`, secret `password`. Buildbot ignores Basic
//! credentials on `/api/v2`: they are sent to `/auth/login`, whose `TWISTED_SESSION` cookie
//! (set twice; the last one counts) goes with the control calls. Reads are anonymous.

use serde_json::{Map, Value, json};

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, string_param,
    url_param,
};

const WHAT: &str = "buildbot";
/// Buildbot's result codes.
const SUCCESS: i64 = 0;
const WARNINGS: i64 = 1;
const CANCELLED: i64 = 6;

pub struct Buildbot {
    url: String,
    scheduler: String,
    builder: String,
    version_property: String,
    properties: Map<String, Value>,
    login: Option<(String, String)>,
    http: reqwest::Client,
}

impl Buildbot {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let required = |name: &str| {
            string_param(params, name)?.ok_or_else(|| ProviderError::Params(format!("params.{name} is required")))
        };
        let properties = match params.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(properties)) if properties.values().all(Value::is_string) => properties.clone(),
            Some(_) => return Err(ProviderError::Params("params.properties must be an object of strings".to_owned())),
        };
        let login = match credential {
            None => None,
            Some(credential) => {
                let username = credential.settings.get("username").and_then(Value::as_str).map(str::to_owned);
                let password = credential.secrets.get("password").cloned();
                match (username, password) {
                    (Some(username), Some(password)) => Some((username, password)),
                    _ => {
                        return Err(ProviderError::Params(
                            "a buildbot credential needs the setting username and the secret password".to_owned(),
                        ));
                    }
                }
            }
        };
        Ok(Self {
            url: url_param(params, "url")?,
            scheduler: required("scheduler")?,
            builder: required("builder")?,
            version_property: string_param(params, "version_property")?.unwrap_or_else(|| "version".to_owned()),
            properties,
            login,
            http,
        })
    }

    /// The session cookie of a login, when the environment has a credential.
    async fn session(&self) -> Result<Option<String>, ProviderError> {
        let Some((username, password)) = &self.login else {
            return Ok(None);
        };
        let response = self
            .http
            .get(format!("{}/auth/login", self.url))
            .basic_auth(username, Some(password))
            .send()
            .await
            .map_err(|source| ProviderError::Request { what: WHAT.to_owned(), source })?;
        let cookie = response
            .headers()
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .rfind(|pair| pair.trim_start().starts_with("TWISTED_SESSION="))
            .map(|pair| pair.trim().to_owned());
        match cookie {
            Some(cookie) => Ok(Some(cookie)),
            None => Err(ProviderError::Refused {
                what: "buildbot's /auth/login".to_owned(),
                status: response.status().as_u16(),
                body: "no session cookie: the username or password is wrong".to_owned(),
            }),
        }
    }

    /// A JSON-RPC call of a control endpoint (`forceschedulers/...`, `builds/...`).
    async fn control(&self, path: &str, method: &str, params: Value) -> Result<Value, ProviderError> {
        let mut request = self
            .http
            .post(format!("{}/api/v2/{path}", self.url))
            .json(&json!({"jsonrpc": "2.0", "method": method, "id": 1, "params": params}));
        if let Some(cookie) = self.session().await? {
            request = request.header(reqwest::header::COOKIE, cookie);
        }
        let what = format!("buildbot's {method} of {path}");
        let response = request.send().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if let Some(error) = answer.get("error") {
            let message = error.get("message").and_then(Value::as_str).unwrap_or_default();
            return Err(ProviderError::Refused { what, status, body: excerpt(message) });
        }
        if !(200..300).contains(&status) {
            return Err(ProviderError::Refused { what, status, body: excerpt(&body) });
        }
        Ok(answer.get("result").cloned().unwrap_or(Value::Null))
    }

    async fn read(&self, path: &str) -> Result<Value, ProviderError> {
        let what = format!("buildbot's {path}");
        let response = self
            .http
            .get(format!("{}/api/v2/{path}", self.url))
            .send()
            .await
            .map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        let status = response.status().as_u16();
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
        if !(200..300).contains(&status) {
            return Err(ProviderError::Refused { what, status, body: excerpt(&body) });
        }
        serde_json::from_str(&body).map_err(|error| ProviderError::Answer { what, detail: error.to_string() })
    }

    /// The newest build of a build request, if one started.
    async fn build_of(&self, request_id: &str) -> Result<Option<Value>, ProviderError> {
        let builds = self.read(&format!("buildrequests/{request_id}/builds")).await?;
        Ok(builds.get("builds").and_then(Value::as_array).and_then(|builds| builds.last()).cloned())
    }
}

/// A finished build's or build request's `results`, as a run's status.
fn status_of(results: i64) -> RunStatus {
    match results {
        SUCCESS | WARNINGS => RunStatus::Succeeded,
        CANCELLED => RunStatus::Cancelled,
        _ => RunStatus::Failed,
    }
}

#[async_trait::async_trait]
impl Provider for Buildbot {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let mut params = self.properties.clone();
        params.insert(self.version_property.clone(), Value::from(request.version));
        params.insert("builderNames".to_owned(), json!([self.builder]));
        let reason = format!(
            "vigil rollout {} ({}) of {} to {}",
            request.rollout_id,
            request.kind.as_str(),
            request.service,
            request.environment
        );
        params.insert("reason".to_owned(), Value::from(reason));
        let result =
            self.control(&format!("forceschedulers/{}", self.scheduler), "force", Value::Object(params)).await?;
        // `[buildset id, {builder id: build request id}]`.
        let request_id = result
            .get(1)
            .and_then(Value::as_object)
            .and_then(|requests| requests.values().next())
            .and_then(Value::as_i64)
            .ok_or_else(|| ProviderError::Answer { what: "buildbot's force".to_owned(), detail: result.to_string() })?;
        Ok(RunHandle {
            id: request_id.to_string(),
            url: Some(format!("{}/#/buildrequests/{request_id}", self.url)),
            finished: None,
        })
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let Some(build) = self.build_of(run_id).await? else {
            let requests = self.read(&format!("buildrequests/{run_id}")).await?;
            let request = requests.get("buildrequests").and_then(|requests| requests.get(0)).cloned();
            let finished = request.as_ref().filter(|request| request["complete"] == true);
            return Ok(match finished {
                Some(request) => {
                    let results = request["results"].as_i64().unwrap_or(-1);
                    let detail = if results == CANCELLED {
                        "the build request was cancelled before a build started"
                    } else {
                        // What Buildbot does to requests it collapses into another build.
                        "the build request ended before a build started (was it collapsed into another build? a \
                         deploy builder wants collapseRequests=False)"
                    };
                    RunOutcome { status: status_of(results), detail: detail.to_owned(), url: None }
                }
                None => RunOutcome { status: RunStatus::Running, detail: "queued".to_owned(), url: None },
            });
        };
        let url = match (build["builderid"].as_i64(), build["number"].as_i64()) {
            (Some(builder), Some(number)) => Some(format!("{}/#/builders/{builder}/builds/{number}", self.url)),
            _ => None,
        };
        let detail = build["state_string"].as_str().unwrap_or_default().to_owned();
        let status = match (build["complete"].as_bool(), build["results"].as_i64()) {
            (Some(true), Some(results)) => status_of(results),
            (Some(true), None) => RunStatus::Failed,
            _ => RunStatus::Running,
        };
        Ok(RunOutcome { status, detail, url })
    }

    async fn cancel(&self, run_id: &str, reason: &str) -> Result<(), ProviderError> {
        match self.build_of(run_id).await? {
            Some(build) if build["complete"] != true => {
                let build_id = build["buildid"].as_i64().unwrap_or_default();
                self.control(&format!("builds/{build_id}"), "stop", json!({"reason": reason})).await?;
            }
            Some(_) => {}
            None => {
                self.control(&format!("buildrequests/{run_id}"), "cancel", json!({"reason": reason})).await?;
            }
        }
        Ok(())
    }
}
