//! Administration: users, every token, and the audit log.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::ErrorCode;
use vigil_proto::auth::{
    AuditEvent, AuditOutcome, AuditPage, AuditQuery, CreatedToken, NewToken, NewUser, Role, TokenInfo, TokenKind, User,
    UserUpdate,
};

use super::{bounded_body, json_body};
use crate::audit;
use crate::auth::{Caller, ClientInfo, millis_to_timestamp, password, validate_username};
use crate::error::HttpError;
use crate::startup::AppState;
use crate::store::{AuditFilter, NewUserRow, TokenRow, UserRow};

const MAX_BODY_BYTES: usize = 64 << 10;
const DEFAULT_AUDIT_EVENTS: u32 = 100;
const MAX_AUDIT_EVENTS: u32 = 1000;

pub fn parse_id(text: &str) -> Result<i64, HttpError> {
    text.parse().map_err(|_| HttpError::new(ErrorCode::InvalidParameter, format!("{text:?} is not an id")))
}

pub fn user_info(row: &UserRow) -> Option<User> {
    Some(User {
        id: row.id,
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        role: row.role.parse().ok()?,
        disabled: row.disabled,
        sso: row.sso_subject.is_some(),
        has_password: row.password_hash.is_some(),
        created_at: millis_to_timestamp(row.created_at_millis),
    })
}

pub fn token_info(row: &TokenRow) -> TokenInfo {
    TokenInfo {
        id: row.id,
        name: row.name.clone(),
        kind: if row.user_id.is_some() { TokenKind::Personal } else { TokenKind::Service },
        scope: row.scope.as_deref().and_then(|scope| scope.parse().ok()),
        owner: row.owner.clone(),
        created_at: millis_to_timestamp(row.created_at_millis),
        expires_at: row.expires_at_millis.map(millis_to_timestamp),
        last_used_at: row.last_used_at_millis.map(millis_to_timestamp),
        revoked_at: row.revoked_at_millis.map(millis_to_timestamp),
    }
}

/// `GET /api/v1/users`.
pub async fn users(State(state): State<Arc<AppState>>) -> Result<Json<Vec<User>>, HttpError> {
    list_users(&state).await.map(Json)
}

pub async fn list_users(state: &AppState) -> Result<Vec<User>, HttpError> {
    Ok(state.database.users().await?.iter().filter_map(user_info).collect())
}

/// `GET /api/v1/users/{id}`.
pub async fn user(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<User>, HttpError> {
    let id = parse_id(&id)?;
    let row = state.database.user_by_id(id).await?;
    row.as_ref().and_then(user_info).map(Json).ok_or_else(|| no_user(id))
}

fn no_user(id: i64) -> HttpError {
    HttpError::new(ErrorCode::NotFound, format!("no user has id {id}"))
}

/// `POST /api/v1/users`.
pub async fn create_user(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<User>), HttpError> {
    let request: NewUser = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "user")?;
    Ok((StatusCode::CREATED, Json(create_user_as(&state, &caller, &client, &request).await?)))
}

pub async fn create_user_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    request: &NewUser,
) -> Result<User, HttpError> {
    let actor = client.actor(Some(caller));
    let result = create_user_row(state, request).await;
    let outcome = if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    let detail = format!("role {}", request.role.as_str());
    audit::record(&state.database, &actor, "user.create", &request.username, outcome, &detail).await;
    let row = result?;
    user_info(&row).ok_or_else(|| no_user(row.id))
}

async fn create_user_row(state: &AppState, request: &NewUser) -> Result<UserRow, HttpError> {
    validate_username(&request.username)?;
    if request.display_name.chars().count() > 128 {
        return Err(HttpError::new(ErrorCode::InvalidParameter, "display_name must be at most 128 characters"));
    }
    let hash = match &request.password {
        Some(new_password) => {
            password::validate(new_password, state.auth.config().min_password_length)
                .map_err(|error| HttpError::new(ErrorCode::InvalidParameter, error.to_string()))?;
            Some(password::hash(new_password.clone()).await.map_err(|error| HttpError::internal(&error))?)
        }
        None => None,
    };
    Ok(state
        .database
        .insert_user(NewUserRow {
            username: &request.username,
            display_name: &request.display_name,
            password_hash: hash.as_deref(),
            role: request.role.as_str(),
            sso: None,
        })
        .await?)
}

/// `PATCH /api/v1/users/{id}`: role, display name, disabled, or a new password. Disabling a
/// user or resetting their password ends their sessions; the last enabled administrator can
/// be neither demoted nor disabled.
pub async fn update_user(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<User>, HttpError> {
    let id = parse_id(&id)?;
    let update: UserUpdate = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "user update")?;
    update_user_as(&state, &caller, &client, id, &update).await.map(Json)
}

pub async fn update_user_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    id: i64,
    update: &UserUpdate,
) -> Result<User, HttpError> {
    let actor = client.actor(Some(caller));
    let Some(existing) = state.database.user_by_id(id).await? else {
        return Err(no_user(id));
    };
    let result = apply_user_update(state, &existing, update).await;
    let mut changes = Vec::new();
    if let Some(role) = update.role {
        changes.push(format!("role {}", role.as_str()));
    }
    if let Some(disabled) = update.disabled {
        changes.push(if disabled { "disabled".to_owned() } else { "enabled".to_owned() });
    }
    if update.display_name.is_some() {
        changes.push("display name".to_owned());
    }
    if update.password.is_some() {
        changes.push("password reset".to_owned());
    }
    let outcome = if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit::record(&state.database, &actor, "user.update", &existing.username, outcome, &changes.join(", ")).await;
    let row = result?;
    state.auth.users_changed();
    user_info(&row).ok_or_else(|| no_user(id))
}

async fn apply_user_update(state: &AppState, existing: &UserRow, update: &UserUpdate) -> Result<UserRow, HttpError> {
    if let Some(display_name) = &update.display_name
        && display_name.chars().count() > 128
    {
        return Err(HttpError::new(ErrorCode::InvalidParameter, "display_name must be at most 128 characters"));
    }
    let loses_admin = existing.role == Role::Admin.as_str()
        && !existing.disabled
        && (update.role.is_some_and(|role| role != Role::Admin) || update.disabled == Some(true));
    if loses_admin {
        let enabled_admins = state
            .database
            .users()
            .await?
            .iter()
            .filter(|user| user.role == Role::Admin.as_str() && !user.disabled)
            .count();
        if enabled_admins <= 1 {
            return Err(HttpError::new(
                ErrorCode::Conflict,
                "this is the last enabled administrator; make another user admin first",
            ));
        }
    }
    if let Some(new_password) = &update.password {
        state.auth.set_password(existing.id, new_password).await?;
    }
    let row = state
        .database
        .update_user(existing.id, update.display_name.as_deref(), update.role.map(Role::as_str), update.disabled)
        .await?
        .ok_or_else(|| no_user(existing.id))?;
    if update.disabled == Some(true) {
        state.database.delete_sessions_of_user(existing.id).await?;
    }
    Ok(row)
}

/// `GET /api/v1/tokens`: every token, personal and service.
pub async fn tokens(State(state): State<Arc<AppState>>) -> Result<Json<Vec<TokenInfo>>, HttpError> {
    list_tokens(&state, None).await.map(Json)
}

/// Every token, or the personal tokens of one user.
pub async fn list_tokens(state: &AppState, owner: Option<i64>) -> Result<Vec<TokenInfo>, HttpError> {
    Ok(state.database.tokens(owner).await?.iter().map(token_info).collect())
}

/// `POST /api/v1/tokens`: a service token, shown once.
pub async fn create_service_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<CreatedToken>), HttpError> {
    let request: NewToken = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "token request")?;
    Ok((StatusCode::CREATED, Json(create_token_as(&state, &caller, &client, &request, false).await?)))
}

/// Creates a service token (administrators), or a personal token of the caller.
pub async fn create_token_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    request: &NewToken,
    personal: bool,
) -> Result<CreatedToken, HttpError> {
    let owner = if personal {
        Some(caller.user().ok_or_else(|| HttpError::new(ErrorCode::Forbidden, "only users have personal tokens"))?.id)
    } else {
        None
    };
    let actor = client.actor(Some(caller));
    let created = state.auth.create_token(&request.name, request.scope, owner, request.expires_in_days).await;
    let outcome = if created.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    let detail = request.scope.map(|scope| format!("scope {}", scope.as_str())).unwrap_or_default();
    let target = format!("{}:{}", if personal { "personal" } else { "service" }, request.name);
    audit::record(&state.database, &actor, "token.create", &target, outcome, &detail).await;
    let (token, row) = created?;
    Ok(CreatedToken { token, info: token_info(&row) })
}

/// `DELETE /api/v1/tokens/{id}`.
pub async fn revoke_token(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    revoke_token_as(&state, &caller, &client, parse_id(&id)?, false).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes any token (administrators), or, with `own_only`, one of the caller's personal
/// tokens.
pub async fn revoke_token_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    id: i64,
    own_only: bool,
) -> Result<(), HttpError> {
    let mut token = state.database.token_by_id(id).await?;
    if own_only {
        let user =
            caller.user().ok_or_else(|| HttpError::new(ErrorCode::Forbidden, "only users have personal tokens"))?;
        token = token.filter(|token| token.user_id == Some(user.id));
    }
    let Some(token) = token else {
        let whose = if own_only { "of yours " } else { "" };
        return Err(HttpError::new(ErrorCode::NotFound, format!("no token {whose}has id {id}")));
    };
    state.auth.revoke_token(id).await?;
    let target = format!("{}:{}", if token.user_id.is_some() { "personal" } else { "service" }, token.name);
    audit::record(&state.database, &client.actor(Some(caller)), "token.revoke", &target, AuditOutcome::Success, "")
        .await;
    Ok(())
}

/// `GET /api/v1/audit`: newest first, filtered, with a cursor.
pub async fn audit_log(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<AuditPage>, HttpError> {
    let Query(query) = query?;
    audit_page(&state, &query).await.map(Json)
}

pub async fn audit_page(state: &AppState, query: &AuditQuery) -> Result<AuditPage, HttpError> {
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_EVENTS);
    if limit == 0 || limit > MAX_AUDIT_EVENTS {
        return Err(HttpError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {MAX_AUDIT_EVENTS}"),
        ));
    }
    let millis = |at: vigil_proto::Timestamp| at.as_unix_nanos() / 1_000_000;
    let filter = AuditFilter {
        actor: query.actor.as_deref().filter(|actor| !actor.is_empty()),
        action: query.action.as_deref().filter(|action| !action.is_empty()),
        outcome: query.outcome.map(AuditOutcome::as_str),
        start_millis: query.start.map(millis),
        end_millis: query.end.map(millis),
        before_id: query.before,
        limit: i64::from(limit) + 1,
    };
    let mut rows = state.database.audit_events(&filter).await?;
    let more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let events: Vec<AuditEvent> = rows
        .iter()
        .map(|row| AuditEvent {
            id: row.id,
            at: millis_to_timestamp(row.at_millis),
            actor: row.actor.clone(),
            source_ip: row.source_ip.clone(),
            action: row.action.clone(),
            target: row.target.clone(),
            outcome: row.outcome.parse().unwrap_or(AuditOutcome::Failure),
            detail: row.detail.clone(),
        })
        .collect();
    let next = if more { events.last().map(|event| event.id) } else { None };
    Ok(AuditPage { events, next })
}
