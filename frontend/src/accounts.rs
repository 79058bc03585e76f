//! Server functions of the account and settings pages. The path prefix says who may call
//! them (`/ui/fn/account/...`: any signed-in user; `/ui/fn/admin/...`: administrators); the
//! backend's authorization reads it.

use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::auth::{AuditPage, CreatedToken, SessionInfo, SsoStatus, TokenInfo, User};

#[cfg(feature = "ssr")]
fn parse_role(role: &str) -> Result<vigil_proto::auth::Role, UiError> {
    role.parse().map_err(UiError::invalid)
}

#[cfg(feature = "ssr")]
fn expires_in(days: &str) -> Result<Option<u32>, UiError> {
    match days.trim() {
        "" => Ok(None),
        days => days.parse().map(Some).map_err(|_| UiError::invalid(format!("{days:?} is not a number of days"))),
    }
}

/// The signed-in user.
#[server(prefix = "/ui/fn/account", endpoint = "session")]
pub async fn current_session() -> Result<SessionInfo, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.session(&request).await.map_err(UiError::from)
}

/// Changes the signed-in user's password; every other session of theirs ends.
#[server(prefix = "/ui/fn/account", endpoint = "change_password")]
pub async fn change_password(current_password: String, new_password: String) -> Result<(), UiError> {
    let request = crate::services::request()?;
    let change = vigil_proto::auth::PasswordChange { current_password, new_password };
    let cookie = crate::services::services()?.change_password(&request, change).await.map_err(UiError::from)?;
    let response = expect_context::<leptos_axum::ResponseOptions>();
    let cookie = http::HeaderValue::from_str(&cookie).map_err(UiError::internal)?;
    response.append_header(http::header::SET_COOKIE, cookie);
    Ok(())
}

#[server(prefix = "/ui/fn/account", endpoint = "tokens")]
pub async fn my_tokens() -> Result<Vec<TokenInfo>, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.tokens(&request, true).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/account", endpoint = "create_token")]
pub async fn create_my_token(name: String, expires_in_days: String) -> Result<CreatedToken, UiError> {
    let request = crate::services::request()?;
    let token = vigil_proto::auth::NewToken { name, scope: None, expires_in_days: expires_in(&expires_in_days)? };
    crate::services::services()?.create_token(&request, token, true).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/account", endpoint = "revoke_token")]
pub async fn revoke_my_token(id: i64) -> Result<(), UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.revoke_token(&request, id, true).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/admin", endpoint = "users")]
pub async fn list_users() -> Result<Vec<User>, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.users(&request).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/admin", endpoint = "create_user")]
pub async fn create_user(
    username: String,
    display_name: String,
    role: String,
    password: String,
) -> Result<User, UiError> {
    let request = crate::services::request()?;
    let password = (!password.is_empty()).then_some(password);
    let user = vigil_proto::auth::NewUser { username, display_name, role: parse_role(&role)?, password };
    crate::services::services()?.create_user(&request, user).await.map_err(UiError::from)
}

/// Changes a user's role (`role` not empty) and whether they are disabled.
#[server(prefix = "/ui/fn/admin", endpoint = "update_user")]
pub async fn update_user(id: i64, role: String, disabled: Option<bool>) -> Result<User, UiError> {
    let request = crate::services::request()?;
    let role = if role.is_empty() { None } else { Some(parse_role(&role)?) };
    let update = vigil_proto::auth::UserUpdate { role, disabled, ..Default::default() };
    crate::services::services()?.update_user(&request, id, update).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/admin", endpoint = "tokens")]
pub async fn list_tokens() -> Result<Vec<TokenInfo>, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.tokens(&request, false).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/admin", endpoint = "create_token")]
pub async fn create_service_token(
    name: String,
    scope: String,
    expires_in_days: String,
) -> Result<CreatedToken, UiError> {
    let request = crate::services::request()?;
    let scope = scope.parse().map_err(UiError::invalid)?;
    let token =
        vigil_proto::auth::NewToken { name, scope: Some(scope), expires_in_days: expires_in(&expires_in_days)? };
    crate::services::services()?.create_token(&request, token, false).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/admin", endpoint = "revoke_token")]
pub async fn revoke_token(id: i64) -> Result<(), UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.revoke_token(&request, id, false).await.map_err(UiError::from)
}

/// The audit log, newest first, filtered by actor and action (a prefix when it ends in `.`).
#[server(prefix = "/ui/fn/admin", endpoint = "audit")]
pub async fn audit_log(actor: String, action: String, before: Option<i64>) -> Result<AuditPage, UiError> {
    let request = crate::services::request()?;
    let query = vigil_proto::auth::AuditQuery {
        actor: Some(actor).filter(|actor| !actor.is_empty()),
        action: Some(action).filter(|action| !action.is_empty()),
        before,
        limit: Some(50),
        ..Default::default()
    };
    crate::services::services()?.audit(&request, query).await.map_err(UiError::from)
}

/// Whether the login page offers single sign-on.
#[server(prefix = "/ui/fn/public", endpoint = "sso")]
pub async fn sso_button() -> Result<SsoStatus, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.sso_status(&request, false).await.map_err(UiError::from)
}

/// Single sign-on's configuration and whether the provider answers.
#[server(prefix = "/ui/fn/admin", endpoint = "sso")]
pub async fn sso_settings() -> Result<SsoStatus, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.sso_status(&request, true).await.map_err(UiError::from)
}
