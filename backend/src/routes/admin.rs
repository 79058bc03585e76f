//! Administration over HTTP: users, every token, and the audit log, over [`crate::accounts`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::ErrorCode;
use vigil_proto::auth::{AuditPage, AuditQuery, CreatedToken, NewToken, NewUser, TokenInfo, User, UserUpdate};

use super::{bounded_body, json_body};
use crate::accounts;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 64 << 10;

pub fn parse_id(text: &str) -> Result<i64, HttpError> {
    text.parse().map_err(|_| HttpError::new(ErrorCode::InvalidParameter, format!("{text:?} is not an id")))
}

/// `GET /api/v1/users`.
pub async fn users(State(state): State<Arc<AppState>>) -> Result<Json<Vec<User>>, HttpError> {
    Ok(Json(accounts::users(&state.database).await?))
}

/// `GET /api/v1/users/{id}`.
pub async fn user(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<User>, HttpError> {
    Ok(Json(accounts::user(&state.database, parse_id(&id)?).await?))
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<User>), HttpError> {
    let request: NewUser = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "user")?;
    let actor = client.actor(Some(&caller));
    Ok((StatusCode::CREATED, Json(accounts::create_user(&state.auth, &state.database, &actor, &request).await?)))
}

/// `PATCH /api/v1/users/{id}`: role, display name, disabled, or a new password.
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<User>, HttpError> {
    let id = parse_id(&id)?;
    let update: UserUpdate = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "user update")?;
    let actor = client.actor(Some(&caller));
    Ok(Json(accounts::update_user(&state.auth, &state.database, &actor, id, &update).await?))
}

/// `GET /api/v1/tokens`: every token, personal and service.
pub async fn tokens(State(state): State<Arc<AppState>>) -> Result<Json<Vec<TokenInfo>>, HttpError> {
    Ok(Json(accounts::tokens(&state.database, None).await?))
}

/// `POST /api/v1/tokens`: a service token, shown once.
pub async fn create_service_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<CreatedToken>), HttpError> {
    let request: NewToken = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "token request")?;
    let actor = client.actor(Some(&caller));
    let created = accounts::create_token(&state.auth, &state.database, &actor, &request, None).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    let actor = client.actor(Some(&caller));
    accounts::revoke_token(&state.auth, &state.database, &actor, parse_id(&id)?, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/audit`: newest first, filtered, with a cursor.
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, HttpError> {
    let Query(query) = query?;
    Ok(Json(accounts::audit_page(&state.database, &query).await?))
}
