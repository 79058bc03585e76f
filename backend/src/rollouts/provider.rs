//! The CI/CD systems a rollout triggers, behind one trait: trigger a run for a version, follow
//! it to its end, cancel it. Each provider reads its own parameters (checked when a service is
//! saved) and the opened secrets of the environment's integration.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use vigil_proto::rollouts::RolloutKind;

use super::{
    agent::AgentProvider, buildbot::Buildbot, circleci::CircleCi, gitlab::GitLab, jenkins::Jenkins, webhook::Webhook,
};
use super::{argocd::ArgoCd, github::GitHubActions, kubernetes::Kubernetes};
use crate::store::{Database, StoreError};

/// Characters of an answer kept in a detail or an error.
const MAX_DETAIL_CHARS: usize = 500;

/// The opened credential of an environment: its integration's settings and secrets.
#[derive(Clone, Default)]
pub struct Credential {
    pub settings: Map<String, Value>,
    pub secrets: BTreeMap<String, String>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Credential").field("settings", &self.settings).field("secrets", &"[redacted]").finish()
    }
}

/// What a trigger asks for.
#[derive(Debug, Clone)]
pub struct TriggerRequest<'a> {
    pub rollout_id: i64,
    pub service: &'a str,
    pub environment: &'a str,
    pub version: &'a str,
    pub kind: RolloutKind,
    /// Where an asynchronous provider reports the run's end.
    pub callback_url: &'a str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

/// Where a run is, in the provider's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunOutcome {
    pub status: RunStatus,
    pub detail: String,
    /// A better link to the run, once the provider knows one.
    pub url: Option<String>,
}

/// A run the provider started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHandle {
    pub id: String,
    pub url: Option<String>,
    /// For providers that answer with the run's end (a synchronous webhook).
    pub finished: Option<RunOutcome>,
}

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The environment's provider parameters or credential break a rule; the text names it.
    #[error("{0}")]
    Params(String),
    #[error(
        "provider kind {0:?} is not one of buildbot, webhook, jenkins, gitlab, circleci, github, argocd, kubernetes, agent"
    )]
    UnknownKind(String),
    #[error("{what} answered {status}: {body}")]
    Refused { what: String, status: u16, body: String },
    #[error("{what} answered unexpectedly: {detail}")]
    Answer { what: String, detail: String },
    #[error("cannot reach {what}")]
    Request {
        what: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{0}")]
    Unsupported(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[async_trait::async_trait]
pub trait Provider: Send + Sync {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError>;
    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError>;
    /// The least time between two polls of a run (an API's rate limit); every runner tick
    /// when zero.
    fn poll_interval(&self) -> std::time::Duration {
        std::time::Duration::ZERO
    }
    async fn cancel(&self, run_id: &str, reason: &str) -> Result<(), ProviderError>;

    /// For a provider that deploys in batches: starts the run's next batch once the gates
    /// passed after the last one, and says which; `None` when no batch is left (the run is
    /// over). Other providers deploy at once.
    async fn next_batch(&self, _run_id: &str) -> Result<Option<String>, ProviderError> {
        Ok(None)
    }
}

/// The provider `kind` with its parameters and credential.
pub fn build(
    kind: &str,
    params: &Map<String, Value>,
    credential: Option<Credential>,
    http: &reqwest::Client,
    database: &Database,
) -> Result<Box<dyn Provider>, ProviderError> {
    Ok(match kind {
        super::agent::KIND => Box::new(AgentProvider::new(params, database.clone())?),
        "buildbot" => Box::new(Buildbot::new(params, credential, http.clone())?),
        "webhook" => Box::new(Webhook::new(params, credential, http.clone())?),
        "jenkins" => Box::new(Jenkins::new(params, credential, http.clone())?),
        "gitlab" => Box::new(GitLab::new(params, credential, http.clone())?),
        "circleci" => Box::new(CircleCi::new(params, credential, http.clone())?),
        "github" => Box::new(GitHubActions::new(params, credential, http.clone())?),
        "argocd" => Box::new(ArgoCd::new(params, credential, http.clone())?),
        "kubernetes" => Box::new(Kubernetes::new(params, credential, http)?),
        other => return Err(ProviderError::UnknownKind(other.to_owned())),
    })
}

/// A required `http://` or `https://` URL parameter, without a trailing slash.
pub(crate) fn url_param(params: &Map<String, Value>, name: &str) -> Result<String, ProviderError> {
    let url = string_param(params, name)?.ok_or_else(|| ProviderError::Params(format!("params.{name} is required")))?;
    if !(url.starts_with("http://") || url.starts_with("https://")) || url::Url::parse(&url).is_err() {
        return Err(ProviderError::Params(format!("params.{name} {url:?} must be an http:// or https:// URL")));
    }
    Ok(url.trim_end_matches('/').to_owned())
}

/// An optional string parameter.
pub(crate) fn string_param(params: &Map<String, Value>, name: &str) -> Result<Option<String>, ProviderError> {
    match params.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if !text.is_empty() => Ok(Some(text.clone())),
        Some(_) => Err(ProviderError::Params(format!("params.{name} must be a non-empty string"))),
    }
}

/// Sends `request` and reads its JSON answer (`Null` when the body is not JSON) with the body
/// as text. A status other than 2xx is refused with the answer's `message` (as Argo CD and the
/// Kubernetes API server put it), saying so when the token was refused.
pub(crate) async fn json_answer(
    request: reqwest::RequestBuilder,
    what: String,
) -> Result<(Value, String), ProviderError> {
    let response = request.send().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|source| ProviderError::Request { what: what.clone(), source })?;
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    if !(200..300).contains(&status) {
        let message =
            answer.get("message").and_then(Value::as_str).map(str::to_owned).unwrap_or_else(|| excerpt(&body));
        let body = match status {
            401 | 403 => format!("the token was refused ({})", excerpt(&message)),
            _ => excerpt(&message),
        };
        return Err(ProviderError::Refused { what, status, body });
    }
    Ok((answer, body))
}

/// The start of an answer's body, for details and errors.
pub(crate) fn excerpt(text: &str) -> String {
    let mut kept: String = text.chars().take(MAX_DETAIL_CHARS).collect();
    if text.chars().count() > MAX_DETAIL_CHARS {
        kept.push('…');
    }
    kept.trim().to_owned()
}
