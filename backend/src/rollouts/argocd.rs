//! Argo CD through its REST API: a sync of an application to the version (a Git revision, a
//! tag or a Helm chart version), followed until the operation has succeeded, the application
//! is synced at the revision the operation resolved and healthy; terminated on abort.
//!
//! Parameters: `url` (the Argo CD server), `application`, `app_namespace` (for applications
//! outside Argo CD's namespace), `prune` (`false`), `sync_options` (strings such as
//! `ApplyOutOfSyncOnly=true`). Credential: an integration of kind `argocd` with the secret
//! `token` (an account or project token allowed to `sync` and `get` the application), sent as
//! `Authorization: Bearer`.
//!
//! The run id is the version: the operation followed is the one whose requested revision
//! (`status.operationState.operation.sync.revision`) is it. An operation that ends `Failed` or
//! `Error`, or a `Degraded` application after it, fails the run; one ended by a termination
//! ("terminated" in its message) is cancelled.

use serde_json::{Map, Value, json};

use super::provider::{
    Credential, Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt, json_answer,
    string_param, url_param,
};

const WHAT: &str = "argocd";

pub struct ArgoCd {
    url: String,
    application: String,
    app_namespace: Option<String>,
    prune: bool,
    sync_options: Vec<String>,
    token: Option<String>,
    http: reqwest::Client,
}

/// Whether `name` is a Kubernetes object name (a DNS subdomain), as applications and
/// namespaces are: so that a parameter cannot change the API path.
fn is_object_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl ArgoCd {
    pub fn new(
        params: &Map<String, Value>,
        credential: Option<Credential>,
        http: reqwest::Client,
    ) -> Result<Self, ProviderError> {
        let object_name = |name: &str, value: String| {
            if is_object_name(&value) {
                Ok(value)
            } else {
                Err(ProviderError::Params(format!(
                    "params.{name} {value:?} must be a Kubernetes name (lowercase letters, digits, '-' and '.')"
                )))
            }
        };
        let application = string_param(params, "application")?
            .ok_or_else(|| ProviderError::Params("params.application is required".to_owned()))?;
        let app_namespace = match string_param(params, "app_namespace")? {
            None => None,
            Some(namespace) => Some(object_name("app_namespace", namespace)?),
        };
        let prune = match params.get("prune") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(prune)) => *prune,
            Some(_) => return Err(ProviderError::Params("params.prune must be true or false".to_owned())),
        };
        let sync_options = match params.get("sync_options") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(options)) => options
                .iter()
                .map(|option| match option.as_str() {
                    Some(option) if option.contains('=') => Ok(option.to_owned()),
                    _ => Err(ProviderError::Params(
                        "params.sync_options must be strings of the form Name=value".to_owned(),
                    )),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => return Err(ProviderError::Params("params.sync_options must be an array of strings".to_owned())),
        };
        let token =
            match credential {
                None => None,
                Some(credential) => {
                    Some(credential.secrets.get("token").cloned().ok_or_else(|| {
                        ProviderError::Params("an argocd credential needs the secret token".to_owned())
                    })?)
                }
            };
        Ok(Self {
            url: url_param(params, "url")?,
            application: object_name("application", application)?,
            app_namespace,
            prune,
            sync_options,
            token,
            http,
        })
    }

    /// The API address of the application, or of one of its sub-resources.
    fn api_url(&self, tail: &str) -> String {
        let query =
            self.app_namespace.as_ref().map(|namespace| format!("?appNamespace={namespace}")).unwrap_or_default();
        format!("{}/api/v1/applications/{}{tail}{query}", self.url, self.application)
    }

    /// The application in Argo CD's web interface.
    fn web_url(&self) -> String {
        match &self.app_namespace {
            Some(namespace) => format!("{}/applications/{namespace}/{}", self.url, self.application),
            None => format!("{}/applications/{}", self.url, self.application),
        }
    }

    /// A call with the token; the parsed answer of a 2xx, else the refusal.
    async fn call(&self, request: reqwest::RequestBuilder, what: &str) -> Result<Value, ProviderError> {
        let token = self.token.as_ref().ok_or_else(|| {
            ProviderError::Params(
                "the argocd provider needs an integration of kind argocd with the secret token".to_owned(),
            )
        })?;
        let what = format!("{WHAT}'s {what} of {}", self.application);
        // gRPC-gateway errors: `{"error", "code", "message"}`.
        let (answer, _) = json_answer(request.bearer_auth(token), what).await?;
        Ok(answer)
    }
}

/// Where an application's operation for `revision` is.
fn outcome_of(application: &Value, revision: &str, url: &str) -> RunOutcome {
    let status = &application["status"];
    let text = |value: &Value| value.as_str().unwrap_or_default().to_owned();
    let operation = &status["operationState"];
    let requested = text(&operation["operation"]["sync"]["revision"]);
    let phase = text(&operation["phase"]);
    let message = excerpt(operation["message"].as_str().unwrap_or_default());
    let sync = text(&status["sync"]["status"]);
    let synced_at = text(&status["sync"]["revision"]);
    let resolved = text(&operation["syncResult"]["revision"]);
    let health = text(&status["health"]["status"]);
    let running = |detail: String| RunOutcome { status: RunStatus::Running, detail, url: Some(url.to_owned()) };
    let ended = |status: RunStatus, detail: String| RunOutcome { status, detail, url: Some(url.to_owned()) };
    if requested != revision {
        return running(format!("waiting for the sync of {revision} to start"));
    }
    match phase.as_str() {
        "Failed" | "Error" if message.to_lowercase().contains("terminated") => {
            ended(RunStatus::Cancelled, format!("the sync to {revision} was terminated: {message}"))
        }
        "Failed" | "Error" => ended(RunStatus::Failed, format!("the sync to {revision} ended {phase}: {message}")),
        "Succeeded" => {
            let at_revision = !resolved.is_empty() && synced_at == resolved;
            match (sync.as_str(), health.as_str()) {
                (_, "Degraded") => ended(
                    RunStatus::Failed,
                    format!("synced to {revision}, but the application is Degraded{}", health_message(status)),
                ),
                ("Synced", "Healthy") if at_revision => {
                    ended(RunStatus::Succeeded, format!("synced to {revision} ({resolved}) and Healthy"))
                }
                _ => running(format!("sync succeeded; the application is {sync} and {health}")),
            }
        }
        _ => running(format!(
            "the sync to {revision} is {phase}{}",
            if message.is_empty() { String::new() } else { format!(": {message}") }
        )),
    }
}

fn health_message(status: &Value) -> String {
    match status["health"]["message"].as_str() {
        Some(message) if !message.is_empty() => format!(": {}", excerpt(message)),
        _ => String::new(),
    }
}

#[async_trait::async_trait]
impl Provider for ArgoCd {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let mut body = json!({"name": self.application, "revision": request.version, "prune": self.prune});
        if let Some(namespace) = &self.app_namespace {
            body["appNamespace"] = Value::from(namespace.as_str());
        }
        if !self.sync_options.is_empty() {
            body["syncOptions"] = json!({"items": self.sync_options});
        }
        self.call(self.http.post(self.api_url("/sync")).json(&body), "sync").await?;
        Ok(RunHandle { id: request.version.to_owned(), url: Some(self.web_url()), finished: None })
    }

    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let application = self.call(self.http.get(self.api_url("")), "get").await?;
        Ok(outcome_of(&application, run_id, &self.web_url()))
    }

    async fn cancel(&self, _run_id: &str, _reason: &str) -> Result<(), ProviderError> {
        self.call(self.http.delete(self.api_url("/operation")), "termination of the operation").await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn application(revision: &str, phase: &str, sync: &str, health: &str) -> Value {
        json!({"status": {
            "operationState": {"phase": phase, "message": "", "operation": {"sync": {"revision": revision}},
                               "syncResult": {"revision": "abc123"}},
            "sync": {"status": sync, "revision": "abc123"},
            "health": {"status": health},
        }})
    }

    #[test]
    fn done_only_when_the_operation_succeeded_synced_and_healthy() {
        let status = |app: Value| outcome_of(&app, "v2", "u").status;
        assert_eq!(status(application("v2", "Succeeded", "Synced", "Healthy")), RunStatus::Succeeded);
        assert_eq!(status(application("v2", "Succeeded", "Synced", "Progressing")), RunStatus::Running);
        assert_eq!(status(application("v2", "Succeeded", "OutOfSync", "Healthy")), RunStatus::Running);
        assert_eq!(status(application("v2", "Running", "OutOfSync", "Healthy")), RunStatus::Running);
        assert_eq!(status(application("v1", "Succeeded", "Synced", "Healthy")), RunStatus::Running, "another sync");
        assert_eq!(status(application("v2", "Succeeded", "Synced", "Degraded")), RunStatus::Failed);
        assert_eq!(status(application("v2", "Failed", "OutOfSync", "Healthy")), RunStatus::Failed);
        assert_eq!(status(application("v2", "Error", "OutOfSync", "Healthy")), RunStatus::Failed);
        let mut terminated = application("v2", "Failed", "OutOfSync", "Healthy");
        terminated["status"]["operationState"]["message"] = json!("Operation terminated");
        assert_eq!(status(terminated), RunStatus::Cancelled);
    }

    #[test]
    fn parameters_are_checked_and_named() {
        let build = |params: Value| ArgoCd::new(params.as_object().unwrap(), None, reqwest::Client::new());
        assert!(build(json!({"url": "https://argocd.example", "application": "shop"})).is_ok());
        let error = |params: Value| build(params).err().map(|error| error.to_string()).unwrap_or_default();
        assert!(error(json!({"url": "https://argocd.example"})).starts_with("params.application"));
        assert!(error(json!({"url": "https://a.example", "application": "Shop/x"})).starts_with("params.application"));
        assert!(error(json!({"application": "shop"})).starts_with("params.url"));
        assert!(
            error(json!({"url": "https://a.example", "application": "shop", "prune": "yes"}))
                .starts_with("params.prune")
        );
        let options = json!({"url": "https://a.example", "application": "shop", "sync_options": ["x"]});
        assert!(error(options).starts_with("params.sync_options"));
    }
}
