//! Server functions of the rollout pages (the rollouts, a rollout, a service with its Deploy
//! and Rollback buttons) and of the charts' deploy annotations. Reading is under
//! `/ui/fn/read/` (every signed-in user); deploying, approving, aborting and rolling back are
//! under `/ui/fn/deploy/` (deployers and administrators), editing a service under
//! `/ui/fn/admin/`; the backend checks the caller again, as it does the rules of the rollout
//! itself (nobody approves their own).

use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::rollouts::{DeployAnnotation, Rollout, RolloutDetail, RolloutPage, Service};

/// Every service with its environments, versions and gates.
#[server(prefix = "/ui/fn/read", endpoint = "services")]
pub async fn list_services() -> Result<Vec<Service>, UiError> {
    crate::services::services()?.services().await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/read", endpoint = "service")]
pub async fn fetch_service(name: String) -> Result<Service, UiError> {
    crate::services::services()?.service(name).await.map_err(UiError::from)
}

/// A page of rollouts, newest first; empty filters match every rollout.
#[server(prefix = "/ui/fn/read", endpoint = "rollouts")]
pub async fn list_rollouts(
    service: String,
    environment: String,
    state: String,
    limit: u32,
    offset: u32,
) -> Result<RolloutPage, UiError> {
    let some = |text: String| Some(text).filter(|text| !text.trim().is_empty());
    let query = vigil_proto::rollouts::RolloutQuery {
        service: some(service),
        environment: some(environment),
        state: some(state),
        limit: Some(limit),
        offset: Some(offset),
    };
    crate::services::services()?.rollouts(query).await.map_err(UiError::from)
}

/// A rollout with its timeline, its gates' analysis and the alerts that fired meanwhile.
#[server(prefix = "/ui/fn/read", endpoint = "rollout")]
pub async fn fetch_rollout(id: i64) -> Result<RolloutDetail, UiError> {
    crate::services::services()?.rollout(id).await.map_err(UiError::from)
}

/// The Deploy button, once confirmed.
#[server(prefix = "/ui/fn/deploy", endpoint = "start_rollout")]
pub async fn start_rollout(service: String, environment: String, version: String) -> Result<Rollout, UiError> {
    let request = crate::services::request()?;
    let version = version.trim().to_owned();
    if version.is_empty() {
        return Err(UiError::invalid("name the version to deploy"));
    }
    let rollout = vigil_proto::rollouts::RolloutRequest { service, environment, version };
    crate::services::services()?.start_rollout(&request, rollout).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/deploy", endpoint = "approve_rollout")]
pub async fn approve_rollout(id: i64) -> Result<Rollout, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.approve_rollout(&request, id).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/deploy", endpoint = "abort_rollout")]
pub async fn abort_rollout(id: i64) -> Result<Rollout, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.abort_rollout(&request, id).await.map_err(UiError::from)
}

/// The Rollback button, once confirmed: the previous good version, with the same provider.
#[server(prefix = "/ui/fn/deploy", endpoint = "roll_back")]
pub async fn roll_back(service: String, environment: String) -> Result<Rollout, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.roll_back(&request, service, environment).await.map_err(UiError::from)
}

/// Saves the editor's service (a `ServiceWrite` as JSON) over the service `name`
/// (administrators: an environment names a credential, and holds the approval rule and the
/// freezes a deployer must not lift for their own deploy).
#[server(prefix = "/ui/fn/admin", endpoint = "save_service")]
pub async fn save_service(name: String, spec: String) -> Result<Service, UiError> {
    let request = crate::services::request()?;
    let write: vigil_proto::rollouts::ServiceWrite =
        serde_json::from_str(&spec).map_err(|error| UiError::invalid(format!("invalid service: {error}")))?;
    crate::services::services()?.save_service(&request, Some(name), write).await.map_err(UiError::from)
}

/// When rollouts ran between `start` and `end` (RFC 3339) whose `service` and `environment`
/// match `filter` (a selector; every rollout when empty): a chart's deploy annotations.
#[server(prefix = "/ui/fn/read", endpoint = "deploy_annotations")]
pub async fn deploy_annotations(start: String, end: String, filter: String) -> Result<Vec<DeployAnnotation>, UiError> {
    let parse = |what: &str, text: &str| -> Result<vigil_proto::Timestamp, UiError> {
        text.trim().parse().map_err(|error| UiError::invalid(format!("{what}: {error}")))
    };
    let query = vigil_proto::rollouts::DeployAnnotationQuery {
        start: parse("start", &start)?,
        end: parse("end", &end)?,
        filter: Some(filter).filter(|filter| !filter.trim().is_empty()),
    };
    crate::services::services()?.deploy_annotations(query).await.map_err(UiError::from)
}
