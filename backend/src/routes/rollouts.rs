//! Rollouts over HTTP (`/api/v1/services...`, `/api/v1/rollouts...`), over
//! [`crate::rollouts`]: services with their environments and gates, starting, approving,
//! aborting and rolling back, and the signed callback of an asynchronous CI.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::{Extension, Json};
use vigil_proto::rollouts::{
    DeployAnnotation, DeployAnnotationQuery, Rollout, RolloutDetail, RolloutPage, RolloutQuery, RolloutRequest,
    Service, ServiceWrite,
};

use super::admin::parse_id;
use super::{bounded_body, json_body};
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::rollouts::{self, Requester};
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 256 << 10;
const MAX_CALLBACK_BYTES: usize = 16 << 10;

fn requester(caller: &Caller, client: &ClientInfo) -> Requester {
    Requester { actor: client.actor(Some(caller)), key: caller.key() }
}

/// `GET /api/v1/services`.
pub async fn services(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Service>>, HttpError> {
    Ok(Json(rollouts::list_services(&state.database).await?))
}

/// `GET /api/v1/services/{name}`.
pub async fn service(State(state): State<Arc<AppState>>, Path(name): Path<String>) -> Result<Json<Service>, HttpError> {
    Ok(Json(rollouts::get_service(&state.database, &name).await?))
}

/// `POST /api/v1/services`.
pub async fn create_service(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Service>), HttpError> {
    let write: ServiceWrite = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "service")?;
    let actor = client.actor(Some(&caller));
    let created =
        rollouts::save_service(&state.database, state.log_store.as_ref(), &state.provider_http, &actor, None, &write)
            .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PUT /api/v1/services/{name}`: the service, its environments and gates, replaced.
pub async fn update_service(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(name): Path<String>,
    body: Body,
) -> Result<Json<Service>, HttpError> {
    let write: ServiceWrite = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "service")?;
    let actor = client.actor(Some(&caller));
    Ok(Json(
        rollouts::save_service(
            &state.database,
            state.log_store.as_ref(),
            &state.provider_http,
            &actor,
            Some(&name),
            &write,
        )
        .await?,
    ))
}

/// `POST /api/v1/rollouts` with `{service, environment, version}`.
pub async fn start(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Rollout>), HttpError> {
    let request: RolloutRequest = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "rollout")?;
    let started = rollouts::start(&state.database, &requester(&caller, &client), &request).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// `GET /api/v1/rollouts?service=&environment=&state=&limit=&offset=`, newest first.
pub async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<RolloutQuery>, QueryRejection>,
) -> Result<Json<RolloutPage>, HttpError> {
    let Query(query) = query?;
    Ok(Json(rollouts::list(&state.database, &query).await?))
}

/// `GET /api/v1/rollouts/annotations?start=&end=&filter=`: when deploys ran, for charts.
pub async fn annotations(
    State(state): State<Arc<AppState>>,
    query: Result<Query<DeployAnnotationQuery>, QueryRejection>,
) -> Result<Json<Vec<DeployAnnotation>>, HttpError> {
    let Query(query) = query?;
    Ok(Json(rollouts::annotations(&state.database, &query).await?))
}

/// `GET /api/v1/rollouts/{id}`, with its timeline, its gates' analysis and the alerts of its
/// service that fired meanwhile.
pub async fn detail(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<RolloutDetail>, HttpError> {
    Ok(Json(rollouts::detail(&state.database, parse_id(&id)?).await?))
}

/// `POST /api/v1/rollouts/{id}/approve`.
pub async fn approve(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<Json<Rollout>, HttpError> {
    Ok(Json(rollouts::approve(&state.database, &requester(&caller, &client), parse_id(&id)?).await?))
}

/// `POST /api/v1/rollouts/{id}/abort`.
pub async fn abort(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<Json<Rollout>, HttpError> {
    let requester = requester(&caller, &client);
    let id = parse_id(&id)?;
    Ok(Json(rollouts::abort(&state.database, &state.secrets, &state.provider_http, &requester, id).await?))
}

/// `POST /api/v1/services/{name}/environments/{environment}/rollback`.
pub async fn roll_back(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path((name, environment)): Path<(String, String)>,
) -> Result<(StatusCode, Json<Rollout>), HttpError> {
    let requester = requester(&caller, &client);
    let started = rollouts::roll_back(&state.database, &requester, &name, &environment).await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// `POST /api/v1/rollouts/{id}/callback`: public, and believed only when signed with the
/// environment's `signing_key` (`X-Vigil-Signature`).
pub async fn callback(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Rollout>, HttpError> {
    let id = parse_id(&id)?;
    let bytes = bounded_body(body, MAX_CALLBACK_BYTES).await?;
    let signature = headers.get(rollouts::webhook::SIGNATURE_HEADER).and_then(|value| value.to_str().ok());
    Ok(Json(rollouts::callback(&state.database, &state.secrets, id, &bytes, signature).await?))
}
