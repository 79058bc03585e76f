//! Integrations (`/api/v1/integrations`): settings are shown, secrets are write-only — sealed
//! with the secrets key on the way in and never returned or logged.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::ErrorCode;
use vigil_proto::auth::{AuditOutcome, Integration, IntegrationWrite, SecretState};

use super::admin::parse_id;
use super::bounded_body;
use crate::audit;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;
use crate::store::IntegrationRow;
use crate::store::millis_to_timestamp;

const MAX_BODY_BYTES: usize = 64 << 10;
const MAX_SECRET_BYTES: usize = 8 << 10;

fn sealing_context(name: &str, secret: &str) -> String {
    format!("integration/{name}/{secret}")
}

fn integration(row: &IntegrationRow) -> Result<Integration, HttpError> {
    let settings = serde_json::from_str(&row.settings).map_err(|error| HttpError::internal(&error))?;
    let sealed: BTreeMap<String, String> =
        serde_json::from_str(&row.secrets).map_err(|error| HttpError::internal(&error))?;
    Ok(Integration {
        id: row.id,
        name: row.name.clone(),
        kind: row.kind.clone(),
        settings,
        secrets: sealed.into_keys().map(|name| (name, SecretState { set: true })).collect(),
        created_at: millis_to_timestamp(row.created_at_millis),
        updated_at: millis_to_timestamp(row.updated_at_millis),
    })
}

fn validate(write: &IntegrationWrite) -> Result<(), HttpError> {
    let identifier = |text: &str| {
        !text.is_empty()
            && text.len() <= 64
            && text.chars().all(|character| character.is_ascii_alphanumeric() || "-_.".contains(character))
    };
    if !identifier(&write.name) {
        return Err(HttpError::new(
            ErrorCode::InvalidParameter,
            "name must be 1 to 64 letters, digits, '-', '_' and '.'",
        ));
    }
    if !identifier(&write.kind) {
        return Err(HttpError::new(
            ErrorCode::InvalidParameter,
            "kind must be 1 to 64 letters, digits, '-', '_' and '.'",
        ));
    }
    for (name, value) in &write.secrets {
        if !identifier(name) {
            return Err(HttpError::new(
                ErrorCode::InvalidParameter,
                format!("secret name {name:?} must be 1 to 64 letters, digits, '-', '_' and '.'"),
            ));
        }
        if value.as_ref().is_some_and(|value| value.len() > MAX_SECRET_BYTES) {
            return Err(HttpError::new(
                ErrorCode::InvalidParameter,
                format!("secret {name:?} is longer than {MAX_SECRET_BYTES} bytes"),
            ));
        }
    }
    Ok(())
}

/// Seals the written secrets over the stored ones: absent keeps, `null` removes. A rename
/// re-seals the kept secrets under the new name.
fn seal_secrets(
    state: &AppState,
    write: &IntegrationWrite,
    stored: Option<&IntegrationRow>,
) -> Result<String, HttpError> {
    let mut sealed: BTreeMap<String, String> = BTreeMap::new();
    if let Some(stored) = stored {
        let previous: BTreeMap<String, String> =
            serde_json::from_str(&stored.secrets).map_err(|error| HttpError::internal(&error))?;
        for (name, value) in previous {
            if stored.name == write.name {
                sealed.insert(name, value);
            } else {
                let clear = state
                    .secrets
                    .open(&sealing_context(&stored.name, &name), &value)
                    .map_err(|error| HttpError::internal(&error))?;
                let resealed = state
                    .secrets
                    .seal(&sealing_context(&write.name, &name), &clear)
                    .map_err(|error| HttpError::internal(&error))?;
                sealed.insert(name, resealed);
            }
        }
    }
    for (name, value) in &write.secrets {
        match value {
            Some(value) => {
                let value = state
                    .secrets
                    .seal(&sealing_context(&write.name, name), value)
                    .map_err(|error| HttpError::internal(&error))?;
                sealed.insert(name.clone(), value);
            }
            None => {
                sealed.remove(name);
            }
        }
    }
    serde_json::to_string(&sealed).map_err(|error| HttpError::internal(&error))
}

/// `GET /api/v1/integrations`.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Integration>>, HttpError> {
    let rows = state.database.integrations().await?;
    rows.iter().map(integration).collect::<Result<_, _>>().map(Json)
}

/// `GET /api/v1/integrations/{id}`.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Integration>, HttpError> {
    let id = parse_id(&id)?;
    let row = state.database.integration(id).await?.ok_or_else(|| not_found(id))?;
    integration(&row).map(Json)
}

fn not_found(id: i64) -> HttpError {
    HttpError::new(ErrorCode::NotFound, format!("no integration has id {id}"))
}

fn parse_write(bytes: &[u8]) -> Result<IntegrationWrite, HttpError> {
    let write: IntegrationWrite = serde_json::from_slice(bytes)
        .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid integration: {error}")))?;
    validate(&write)?;
    Ok(write)
}

/// `POST /api/v1/integrations`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Integration>), HttpError> {
    let write = parse_write(&bounded_body(body, MAX_BODY_BYTES).await?)?;
    let settings = serde_json::to_string(&write.settings).map_err(|error| HttpError::internal(&error))?;
    let secrets = seal_secrets(&state, &write, None)?;
    let result = state.database.insert_integration(&write.name, &write.kind, &settings, &secrets).await;
    let outcome = if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    let detail = secret_names(&write);
    audit::record(&state.database, &client.actor(Some(&caller)), "integration.create", &write.name, outcome, &detail)
        .await;
    Ok((StatusCode::CREATED, Json(integration(&result?)?)))
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
    let stored = state.database.integration(id).await?.ok_or_else(|| not_found(id))?;
    let settings = serde_json::to_string(&write.settings).map_err(|error| HttpError::internal(&error))?;
    let secrets = seal_secrets(&state, &write, Some(&stored))?;
    let result = state.database.update_integration(id, &write.name, &write.kind, &settings, &secrets).await;
    let outcome = if matches!(result, Ok(Some(_))) { AuditOutcome::Success } else { AuditOutcome::Failure };
    let detail = secret_names(&write);
    audit::record(&state.database, &client.actor(Some(&caller)), "integration.update", &stored.name, outcome, &detail)
        .await;
    let row = result?.ok_or_else(|| not_found(id))?;
    Ok(Json(integration(&row)?))
}

/// `DELETE /api/v1/integrations/{id}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let id = parse_id(&id)?;
    let stored = state.database.integration(id).await?.ok_or_else(|| not_found(id))?;
    state.database.delete_integration(id).await?;
    audit::record(
        &state.database,
        &client.actor(Some(&caller)),
        "integration.delete",
        &stored.name,
        AuditOutcome::Success,
        "",
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Which secrets a write touched (names only), for the audit log.
fn secret_names(write: &IntegrationWrite) -> String {
    if write.secrets.is_empty() {
        return String::new();
    }
    let names: Vec<String> = write
        .secrets
        .iter()
        .map(|(name, value)| if value.is_some() { format!("{name} set") } else { format!("{name} removed") })
        .collect();
    format!("secrets: {}", names.join(", "))
}
