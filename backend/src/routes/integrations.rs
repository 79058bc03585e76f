//! Integrations over HTTP (`/api/v1/integrations`), over [`crate::integrations`]: settings
//! are shown, secrets are write-only.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::ErrorCode;
use vigil_proto::auth::{Integration, IntegrationWrite};

use super::admin::parse_id;
use super::bounded_body;
use crate::alerts;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::integrations;
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 64 << 10;

fn parse_write(bytes: &[u8]) -> Result<IntegrationWrite, HttpError> {
    serde_json::from_slice(bytes)
        .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid integration: {error}")))
}

/// `GET /api/v1/integrations`.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Integration>>, HttpError> {
    Ok(Json(integrations::list(&state.database).await?))
}

/// A notification channel's settings are checked as it is saved (the other kinds by the code
/// that uses them).
fn check_channel(write: &IntegrationWrite, stored_secrets: &[String]) -> Result<(), HttpError> {
    let kind = integrations::validate(write)?;
    if alerts::is_channel(kind) {
        alerts::check_channel(kind, write, stored_secrets)?;
    }
    Ok(())
}

/// `GET /api/v1/integrations/{id}`.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Integration>, HttpError> {
    Ok(Json(integrations::get(&state.database, parse_id(&id)?).await?))
}

/// `POST /api/v1/integrations`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Integration>), HttpError> {
    let write = parse_write(&bounded_body(body, MAX_BODY_BYTES).await?)?;
    check_channel(&write, &[])?;
    let actor = client.actor(Some(&caller));
    let created = integrations::create(&state.database, &state.secrets, &actor, &write).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PUT /api/v1/integrations/{id}`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<Integration>, HttpError> {
    let id = parse_id(&id)?;
    let write = parse_write(&bounded_body(body, MAX_BODY_BYTES).await?)?;
    let stored: Vec<String> = integrations::get(&state.database, id).await?.secrets.into_keys().collect();
    check_channel(&write, &stored)?;
    let actor = client.actor(Some(&caller));
    Ok(Json(integrations::update(&state.database, &state.secrets, &actor, id, &write).await?))
}

/// `DELETE /api/v1/integrations/{id}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let id = parse_id(&id)?;
    integrations::delete(&state.database, &client.actor(Some(&caller)), id).await?;
    Ok(StatusCode::NO_CONTENT)
}
