//! Accounts: users, tokens, passwords and the audit log as administrators read it. Every
//! change is recorded in the audit log with its outcome. The API's routes, the UI's services
//! and the command line call the same functions here.

use vigil_proto::auth::{
    AuditEvent, AuditOutcome, AuditPage, AuditQuery, CreatedToken, NewToken, NewUser, PasswordChange, Role, TokenInfo,
    TokenKind, User, UserUpdate,
};
use vigil_proto::names::{NameError, UserName};

use crate::audit::{self, Action, Actor};
use crate::auth::{Auth, Caller, ClientInfo, LoginError, NewSessionCookie, PasswordChangeError, TokenError, password};
use crate::store::{AuditFilter, Database, NewUserRow, StoreError, TokenRow, UserRow, millis_to_timestamp};

const DEFAULT_AUDIT_EVENTS: u32 = 100;
pub const MAX_AUDIT_EVENTS: u32 = 1000;
const MAX_DISPLAY_NAME_CHARS: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("display_name must be at most 128 characters")]
    DisplayNameTooLong,
    /// A new password that breaks a rule.
    #[error(transparent)]
    Password(password::PasswordError),
    #[error(transparent)]
    Hash(password::PasswordError),
    #[error("no user has id {0}")]
    NoUser(i64),
    #[error("the user no longer exists")]
    UserGone,
    #[error("no token {}has id {id}", if *.own { "of yours " } else { "" })]
    NoToken { id: i64, own: bool },
    #[error("this is the last enabled administrator; make another user admin first")]
    LastAdmin,
    #[error("only users have personal tokens")]
    NotAUser,
    #[error("only users have passwords")]
    NoPassword,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("limit must be between 1 and {MAX_AUDIT_EVENTS}")]
    AuditLimit,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    PasswordChange(#[from] PasswordChangeError),
    #[error(transparent)]
    Login(#[from] LoginError),
    #[error(transparent)]
    Store(#[from] StoreError),
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

fn outcome<T, E>(result: &Result<T, E>) -> AuditOutcome {
    if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure }
}

/// The user a personal token or password belongs to: the caller, when a user.
pub fn personal_owner(caller: &Caller) -> Result<i64, AccountError> {
    caller.user().map(|user| user.id).ok_or(AccountError::NotAUser)
}

pub async fn users(database: &Database) -> Result<Vec<User>, AccountError> {
    Ok(database.users().await?.iter().filter_map(user_info).collect())
}

pub async fn user(database: &Database, id: i64) -> Result<User, AccountError> {
    let row = database.user_by_id(id).await?;
    row.as_ref().and_then(user_info).ok_or(AccountError::NoUser(id))
}

pub async fn create_user(
    auth: &Auth,
    database: &Database,
    actor: &Actor,
    request: &NewUser,
) -> Result<User, AccountError> {
    let result = create_user_row(auth, database, request).await;
    let detail = format!("role {}", request.role.as_str());
    audit::record(database, actor, Action::UserCreate, &request.username, outcome(&result), &detail).await;
    let row = result?;
    user_info(&row).ok_or(AccountError::NoUser(row.id))
}

async fn create_user_row(auth: &Auth, database: &Database, request: &NewUser) -> Result<UserRow, AccountError> {
    UserName::parse(&request.username)?;
    if request.display_name.chars().count() > MAX_DISPLAY_NAME_CHARS {
        return Err(AccountError::DisplayNameTooLong);
    }
    let hash = match &request.password {
        Some(new_password) => {
            password::validate(new_password, auth.config().min_password_length).map_err(AccountError::Password)?;
            Some(password::hash(new_password.clone()).await.map_err(AccountError::Hash)?)
        }
        None => None,
    };
    Ok(database
        .insert_user(NewUserRow {
            username: &request.username,
            display_name: &request.display_name,
            password_hash: hash.as_deref(),
            role: request.role.as_str(),
            sso: None,
        })
        .await?)
}

/// Role, display name, disabled, or a new password. Disabling a user or resetting their
/// password ends their sessions; the last enabled administrator can be neither demoted nor
/// disabled.
pub async fn update_user(
    auth: &Auth,
    database: &Database,
    actor: &Actor,
    id: i64,
    update: &UserUpdate,
) -> Result<User, AccountError> {
    let Some(existing) = database.user_by_id(id).await? else {
        return Err(AccountError::NoUser(id));
    };
    let result = apply_user_update(auth, database, &existing, update).await;
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
    audit::record(database, actor, Action::UserUpdate, &existing.username, outcome(&result), &changes.join(", ")).await;
    let row = result?;
    auth.users_changed();
    user_info(&row).ok_or(AccountError::NoUser(id))
}

async fn apply_user_update(
    auth: &Auth,
    database: &Database,
    existing: &UserRow,
    update: &UserUpdate,
) -> Result<UserRow, AccountError> {
    if let Some(display_name) = &update.display_name
        && display_name.chars().count() > MAX_DISPLAY_NAME_CHARS
    {
        return Err(AccountError::DisplayNameTooLong);
    }
    let loses_admin = existing.role == Role::Admin.as_str()
        && !existing.disabled
        && (update.role.is_some_and(|role| role != Role::Admin) || update.disabled == Some(true));
    if loses_admin {
        let enabled_admins =
            database.users().await?.iter().filter(|user| user.role == Role::Admin.as_str() && !user.disabled).count();
        if enabled_admins <= 1 {
            return Err(AccountError::LastAdmin);
        }
    }
    if let Some(new_password) = &update.password {
        auth.set_password(existing.id, new_password).await?;
    }
    let row = database
        .update_user(existing.id, update.display_name.as_deref(), update.role.map(Role::as_str), update.disabled)
        .await?
        .ok_or(AccountError::NoUser(existing.id))?;
    if update.disabled == Some(true) {
        database.delete_sessions_of_user(existing.id).await?;
    }
    Ok(row)
}

/// Checks the current password, sets the new one, ends every session of the user and opens a
/// new one for this client.
pub async fn change_password(
    auth: &Auth,
    database: &Database,
    caller: &Caller,
    client: &ClientInfo,
    change: &PasswordChange,
) -> Result<NewSessionCookie, AccountError> {
    let user = caller.user().ok_or(AccountError::NoPassword)?;
    let actor = client.actor(Some(caller));
    let stored = database.user_by_id(user.id).await?.and_then(|row| row.password_hash);
    let current_matches = match stored {
        Some(hash) => password::verify(change.current_password.clone(), hash).await,
        None => false,
    };
    let target = user.username.as_str();
    if !current_matches {
        let detail = "wrong current password";
        audit::record(database, &actor, Action::PasswordChange, target, AuditOutcome::Failure, detail).await;
        return Err(AccountError::WrongPassword);
    }
    if let Err(error) = auth.set_password(user.id, &change.new_password).await {
        let detail = match &error {
            PasswordChangeError::Rejected(rule) => rule.to_string(),
            _ => "internal error; the cause is in the server log".to_owned(),
        };
        audit::record(database, &actor, Action::PasswordChange, target, AuditOutcome::Failure, &detail).await;
        return Err(error.into());
    }
    let detail = "all sessions ended";
    audit::record(database, &actor, Action::PasswordChange, target, AuditOutcome::Success, detail).await;
    let row = database.user_by_id(user.id).await?.ok_or(AccountError::UserGone)?;
    Ok(auth.open_session(&row, client).await?)
}

/// Every token, or the personal tokens of one user.
pub async fn tokens(database: &Database, owner: Option<i64>) -> Result<Vec<TokenInfo>, AccountError> {
    Ok(database.tokens(owner).await?.iter().map(token_info).collect())
}

/// A service token, or with `owner` a personal token of that user; the token is in the answer
/// only, never stored.
pub async fn create_token(
    auth: &Auth,
    database: &Database,
    actor: &Actor,
    request: &NewToken,
    owner: Option<i64>,
) -> Result<CreatedToken, AccountError> {
    let created = auth.create_token(&request.name, request.scope, owner, request.expires_in_days).await;
    let detail = request.scope.map(|scope| format!("scope {}", scope.as_str())).unwrap_or_default();
    let target = format!("{}:{}", if owner.is_some() { "personal" } else { "service" }, request.name);
    audit::record(database, actor, Action::TokenCreate, &target, outcome(&created), &detail).await;
    let (token, row) = created?;
    Ok(CreatedToken { token, info: token_info(&row) })
}

/// Revokes any token, or, with `owner`, one of that user's personal tokens.
pub async fn revoke_token(
    auth: &Auth,
    database: &Database,
    actor: &Actor,
    id: i64,
    owner: Option<i64>,
) -> Result<(), AccountError> {
    let mut token = database.token_by_id(id).await?;
    if let Some(owner) = owner {
        token = token.filter(|token| token.user_id == Some(owner));
    }
    let Some(token) = token else {
        return Err(AccountError::NoToken { id, own: owner.is_some() });
    };
    auth.revoke_token(id).await?;
    let target = format!("{}:{}", if token.user_id.is_some() { "personal" } else { "service" }, token.name);
    audit::record(database, actor, Action::TokenRevoke, &target, AuditOutcome::Success, "").await;
    Ok(())
}

/// The audit log, newest first, filtered, with a cursor.
pub async fn audit_page(database: &Database, query: &AuditQuery) -> Result<AuditPage, AccountError> {
    let limit = query.limit.unwrap_or(DEFAULT_AUDIT_EVENTS);
    if limit == 0 || limit > MAX_AUDIT_EVENTS {
        return Err(AccountError::AuditLimit);
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
    let mut rows = database.audit_events(&filter).await?;
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
