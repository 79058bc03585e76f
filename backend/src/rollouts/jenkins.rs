//! Jenkins through its remote access API: `buildWithParameters` on a job with the version and
//! the environment's parameters, the queue item its `201 Created` names followed to the build it
//! becomes, and the build to its `result`; on abort the build is stopped, or the queue item
//! cancelled while it waits.
//!
//! Parameters: `url` (Jenkins' address, with its context path if any), `job` (a job name, or a
//! path `folder/job` for a job in folders), `version_parameter` (`VERSION`), `parameters` (an
//! object of strings sent along). Credential (optional, anonymous without): setting `username`,
//! secret `token` (an API token), sent as Basic. When CSRF protection is on, every POST carries
//! a crumb from `/crumbIssuer/api/json` with the session cookie it was issued in (Jenkins ties
//! the crumb to the session); a Jenkins without a crumb issuer (404) takes POSTs without.
//!
//! The run id is the queue item's number: a queue item is forgotten minutes after its build
//! started, so a build is then found among the job's builds by its `queueId`.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use serde_json::{Map, Value};

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, string_param,
    url_param,
};

/// Builds of a job searched for a forgotten queue item's build.
const BUILDS_SEARCHED: usize = 100;
/// What a path segment keeps as it is: RFC 3986's unreserved characters.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub struct Jenkins {
    url: String,
    /// `/job/<folder>/job/<name>`, encoded.
    job_path: String,
    version_parameter: String,
    parameters: Vec<(String, String)>,
    login: Option<(String, String)>,
    http: reqwest::Client,
}

/// A crumb and the session it belongs to, for a POST.
struct Crumb {
    field: String,
    value: String,
    cookie: Option<String>,
}

/// Where a queue item is.
enum Queued {
    Waiting {
        why: String,
    },
    Cancelled,
    Started {
        number: i64,
    },
    /// The queue forgot it (its build started minutes ago).
    Forgotten,
}

impl Jenkins {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let job =
            string_param(params, "job")?.ok_or_else(|| ProviderError::Params("params.job is required".to_owned()))?;
        let segments: Vec<&str> = job.trim_matches('/').split('/').collect();
        if segments.iter().any(|segment| segment.is_empty() || *segment == "." || *segment == "..") {
            return Err(ProviderError::Params(format!(
                "params.job {job:?} must be a job name or a path of folders and a job (folder/job)"
            )));
        }
        let job_path = segments
            .iter()
            .map(|segment| format!("/job/{}", utf8_percent_encode(segment, SEGMENT)))
            .collect::<String>();
        let parameters = match params.get("parameters") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Object(parameters)) => parameters
                .iter()
                .map(|(name, value)| match value.as_str() {
                    Some(value) if !name.is_empty() => Ok((name.clone(), value.to_owned())),
                    _ => Err(ProviderError::Params(format!("params.parameters.{name} must be a string"))),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ProviderError::Params("params.parameters must be an object of strings".to_owned())),
        };
        let version_parameter = string_param(params, "version_parameter")?.unwrap_or_else(|| "VERSION".to_owned());
        if parameters.iter().any(|(name, _)| *name == version_parameter) {
            return Err(ProviderError::Params(format!(
                "params.parameters.{version_parameter} is the version's parameter (params.version_parameter): \
                 Vigil sets it"
            )));
        }
        let login = match credential {
            None => None,
            Some(credential) => {
                let username = credential.settings.get("username").and_then(Value::as_str).map(str::to_owned);
                match (username, credential.secrets.get("token").cloned()) {
                    (Some(username), Some(token)) => Some((username, token)),
                    _ => {
                        return Err(ProviderError::Params(
                            "a jenkins credential needs the setting username and the secret token (an API token)"
                                .to_owned(),
                        ));
                    }
                }
            }
        };
        Ok(Self { url: url_param(params, "url")?, job_path, version_parameter, parameters, login, http })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.login {
            Some((username, token)) => request.basic_auth(username, Some(token)),
            None => request,
        }
    }

    /// Sends a request: the answer's status, headers and body.
    async fn exchange(
        &self,
        request: reqwest::RequestBuilder,
        what: &str,
    ) -> Result<(u16, HeaderMap, String), ProviderError> {
        let response = self
            .authorized(request)
            .send()
            .await
            .map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.text().await.map_err(|source| ProviderError::Request { what: what.to_owned(), source })?;
        Ok((status, headers, body))
    }

    /// A crumb for a POST, or none when CSRF protection is off.
    async fn crumb(&self) -> Result<Option<Crumb>, ProviderError> {
        let what = "jenkins's crumb issuer";
        let (status, headers, body) =
            self.exchange(self.http.get(format!("{}/crumbIssuer/api/json", self.url)), what).await?;
        match status {
            200 => {}
            404 => return Ok(None),
            _ => return Err(self.refused(what, status, &body)),
        }
        let answer: Value = serde_json::from_str(&body)
            .map_err(|error| ProviderError::Answer { what: what.to_owned(), detail: error.to_string() })?;
        let (Some(field), Some(value)) = (answer["crumbRequestField"].as_str(), answer["crumb"].as_str()) else {
            return Err(ProviderError::Answer { what: what.to_owned(), detail: excerpt(&body) });
        };
        let cookies: Vec<&str> = headers
            .get_all(SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .filter_map(|value| value.split(';').next())
            .map(str::trim)
            .filter(|pair| pair.contains('='))
            .collect();
        let cookie = (!cookies.is_empty()).then(|| cookies.join("; "));
        Ok(Some(Crumb { field: field.to_owned(), value: value.to_owned(), cookie }))
    }

    /// A POST with a crumb when Jenkins issues them.
    async fn post(
        &self,
        url: String,
        body: Option<String>,
        what: &str,
    ) -> Result<(u16, HeaderMap, String), ProviderError> {
        let crumb = self.crumb().await?;
        let mut request = self.http.post(url);
        if let Some(crumb) = crumb {
            request = request.header(crumb.field.as_str(), crumb.value.as_str());
            if let Some(cookie) = crumb.cookie {
                request = request.header(COOKIE, cookie);
            }
        }
        if let Some(body) = body {
            request = request.header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded").body(body);
        }
        self.exchange(request, what).await
    }

    /// A JSON document of the API.
    async fn read(&self, url: String, what: &str) -> Result<Option<Value>, ProviderError> {
        let (status, _, body) = self.exchange(self.http.get(url), what).await?;
        match status {
            200..=299 => serde_json::from_str(&body)
                .map(Some)
                .map_err(|error| ProviderError::Answer { what: what.to_owned(), detail: error.to_string() }),
            404 => Ok(None),
            _ => Err(self.refused(what, status, &body)),
        }
    }

    /// The error for a refused call: a hint rather than Jenkins' HTML page for a refused
    /// credential.
    fn refused(&self, what: &str, status: u16, body: &str) -> ProviderError {
        let body = match (status, &self.login) {
            (401, Some(_)) => "the username or API token is wrong".to_owned(),
            (401 | 403, None) => {
                "Jenkins refuses anonymous calls: give the environment a jenkins credential".to_owned()
            }
            (403, Some(_)) => {
                "the user lacks a permission (Overall/Read, Job/Build, Job/Cancel) or the crumb was refused".to_owned()
            }
            _ => excerpt(body),
        };
        ProviderError::Refused { what: what.to_owned(), status, body }
    }

    fn job_url(&self) -> String {
        format!("{}{}", self.url, self.job_path)
    }

    fn build_url(&self, number: i64) -> String {
        format!("{}/{number}", self.job_url())
    }

    async fn queued(&self, item: &str) -> Result<Queued, ProviderError> {
        let what = format!("jenkins's queue item {item}");
        let Some(answer) = self.read(format!("{}/queue/item/{item}/api/json", self.url), &what).await? else {
            return Ok(Queued::Forgotten);
        };
        if answer["cancelled"] == true {
            return Ok(Queued::Cancelled);
        }
        if let Some(number) = answer["executable"]["number"].as_i64() {
            return Ok(Queued::Started { number });
        }
        let why = answer["why"].as_str().unwrap_or("waiting").to_owned();
        Ok(Queued::Waiting { why })
    }

    /// The number of the build of a queue item the queue forgot, from the job's builds.
    async fn build_of_forgotten(&self, item: &str) -> Result<Option<i64>, ProviderError> {
        let url = format!("{}/api/json?tree=builds[number,queueId]{{0,{BUILDS_SEARCHED}}}", self.job_url());
        let Some(job) = self.read(url, "jenkins's job").await? else {
            return Err(ProviderError::Answer {
                what: "jenkins's job".to_owned(),
                detail: format!("no job at {}", self.job_url()),
            });
        };
        let id = item.parse::<i64>().ok();
        Ok(job["builds"]
            .as_array()
            .and_then(|builds| builds.iter().find(|build| build["queueId"].as_i64() == id))
            .and_then(|build| build["number"].as_i64()))
    }

    /// The build a queue item became, if it started.
    async fn build_number(&self, item: &str) -> Result<Result<i64, RunOutcome>, ProviderError> {
        Ok(match self.queued(item).await? {
            Queued::Started { number } => Ok(number),
            Queued::Waiting { why } => {
                Err(RunOutcome { status: RunStatus::Running, detail: format!("queued: {why}"), url: None })
            }
            Queued::Cancelled => Err(RunOutcome {
                status: RunStatus::Cancelled,
                detail: format!("queue item {item} was cancelled before its build started"),
                url: None,
            }),
            Queued::Forgotten => match self.build_of_forgotten(item).await? {
                Some(number) => Ok(number),
                None => Err(RunOutcome {
                    status: RunStatus::Failed,
                    detail: format!("queue item {item} is gone and no build of the job came from it"),
                    url: None,
                }),
            },
        })
    }
}

/// A finished build's `result`, as a run's status.
fn status_of(result: &str) -> RunStatus {
    match result {
        "SUCCESS" => RunStatus::Succeeded,
        "ABORTED" => RunStatus::Cancelled,
        // FAILURE, UNSTABLE (tests failed: not a good deploy), NOT_BUILT.
        _ => RunStatus::Failed,
    }
}

#[async_trait::async_trait]
impl Provider for Jenkins {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let form = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair(&self.version_parameter, request.version);
            for (name, value) in &self.parameters {
                form.append_pair(name, value);
            }
            form.finish()
        };
        let what = "jenkins's buildWithParameters";
        let (status, headers, body) =
            self.post(format!("{}/buildWithParameters", self.job_url()), Some(form), what).await?;
        if status != 201 {
            return Err(self.refused(what, status, &body));
        }
        // `Location: <jenkins>/queue/item/<n>/`.
        let location = headers.get(LOCATION).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let item = location
            .trim_end_matches('/')
            .rsplit_once("/queue/item/")
            .map(|(_, item)| item)
            .filter(|item| !item.is_empty() && item.bytes().all(|byte| byte.is_ascii_digit()))
            .ok_or_else(|| ProviderError::Answer {
                what: what.to_owned(),
                detail: format!("201 without a queue item's Location (got {location:?})"),
            })?;
        Ok(RunHandle { id: item.to_owned(), url: Some(format!("{}/", self.job_url())), finished: None })
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let number = match self.build_number(run_id).await? {
            Ok(number) => number,
            Err(outcome) => return Ok(outcome),
        };
        let what = format!("jenkins's build {number}");
        let build = self
            .read(format!("{}/api/json", self.build_url(number)), &what)
            .await?
            .ok_or_else(|| ProviderError::Answer { what: what.clone(), detail: "the build is gone".to_owned() })?;
        let url = build["url"].as_str().map(str::to_owned).or_else(|| Some(format!("{}/", self.build_url(number))));
        let name = build["fullDisplayName"].as_str().unwrap_or(&what).to_owned();
        let outcome = match (build["building"].as_bool(), build["result"].as_str()) {
            (Some(false), Some(result)) => {
                RunOutcome { status: status_of(result), detail: format!("{name}: {result}"), url }
            }
            _ => RunOutcome { status: RunStatus::Running, detail: format!("{name}: building"), url },
        };
        Ok(outcome)
    }

    async fn cancel(&self, run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        let (url, what) = match self.build_number(run_id).await? {
            Ok(number) => (format!("{}/stop", self.build_url(number)), format!("jenkins's stop of build {number}")),
            Err(outcome) if outcome.status == RunStatus::Running => {
                (format!("{}/queue/cancelItem?id={run_id}", self.url), format!("jenkins's cancelItem {run_id}"))
            }
            Err(_) => return Ok(()),
        };
        let (status, _, body) = self.post(url, None, &what).await?;
        // Both answer with a redirect to a page (302), newer versions with 204 for cancelItem.
        if (200..400).contains(&status) { Ok(()) } else { Err(self.refused(&what, status, &body)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jenkins(params: Value) -> Result<Jenkins, ProviderError> {
        Jenkins::new(params.as_object().unwrap(), None, reqwest::Client::new())
    }

    #[test]
    fn a_job_in_folders_is_a_path_of_jobs() {
        let nested = jenkins(serde_json::json!({"url": "http://ci/", "job": "team a/deploy"})).unwrap();
        assert_eq!(nested.job_url(), "http://ci/job/team%20a/job/deploy");
        assert_eq!(nested.version_parameter, "VERSION");
        for (params, named) in [
            (serde_json::json!({"url": "http://ci"}), "params.job"),
            (serde_json::json!({"url": "http://ci", "job": "a//b"}), "params.job"),
            (serde_json::json!({"url": "http://ci", "job": "../x"}), "params.job"),
            (serde_json::json!({"job": "x"}), "params.url"),
            (serde_json::json!({"url": "http://ci", "job": "x", "parameters": {"A": 1}}), "params.parameters.A"),
            (
                serde_json::json!({"url": "http://ci", "job": "x", "parameters": {"VERSION": "1"}}),
                "params.parameters.VERSION",
            ),
        ] {
            let error = jenkins(params.clone()).err().unwrap().to_string();
            assert!(error.starts_with(named), "{params}: {error}");
        }
    }

    #[test]
    fn results_map_to_run_statuses() {
        assert_eq!(status_of("SUCCESS"), RunStatus::Succeeded);
        assert_eq!(status_of("UNSTABLE"), RunStatus::Failed);
        assert_eq!(status_of("FAILURE"), RunStatus::Failed);
        assert_eq!(status_of("ABORTED"), RunStatus::Cancelled);
    }
}
