//! Signing in and out, by password or single sign-on, each in the audit log: a success under
//! the user's name, a failure as an anonymous caller's, collapsed per target and address (see
//! `audit::RepeatedFailures`), so that anonymous callers cannot grow the log.

use std::borrow::Cow;

use vigil_proto::auth::AuditOutcome;

use crate::audit::{self, Action, Actor};
use crate::auth::{Auth, Caller, ClientInfo, LoginError, NewSessionCookie};
use crate::store::{Database, StoreError, UserRow};

/// Characters of a refused single sign-on's reason kept for the audit log and the login page:
/// the provider's `error` and `error_description` are whatever the caller put in the URL.
const MAX_REFUSAL_CHARS: usize = 300;

/// A sign-in with a password. A session presented with it (`previous`, a cookie's value) is
/// ended first, so that the new one never reuses its value.
pub async fn sign_in(
    auth: &Auth,
    database: &Database,
    previous: Option<&str>,
    username: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<NewSessionCookie, LoginError> {
    if let Some(previous) = previous
        && let Ok(Some(Caller::Session { session_id, .. })) = auth.session(previous).await
    {
        auth.logout(session_id).await?;
    }
    match auth.login(username, password, client).await {
        Ok(session) => {
            let actor = Actor::new(username, client.ip);
            audit::record(database, &actor, Action::Login, username, AuditOutcome::Success, "password").await;
            Ok(session)
        }
        Err(error) => {
            let detail = match &error {
                LoginError::InvalidCredentials => "invalid user name or password",
                LoginError::Disabled => "account disabled",
                LoginError::LockedOut(_) => "locked out after repeated failures",
                _ => "error",
            };
            // Per user name and address; per address alone once the address is locked out,
            // whatever names it tries.
            let target = match &error {
                LoginError::LockedOut(locked) if locked.by_address => Some("*"),
                // No account has such a name: nothing to record.
                LoginError::TooLong(..) => None,
                _ => Some(username),
            };
            if let Some(target) = target {
                auth.failures().record(database, client.ip, Action::Login, target, detail).await;
            }
            Err(error)
        }
    }
}

/// Ends a browser session (other callers have none to end).
pub async fn sign_out(
    auth: &Auth,
    database: &Database,
    caller: &Caller,
    client: &ClientInfo,
) -> Result<(), StoreError> {
    if let Caller::Session { session_id, user, .. } = caller {
        auth.logout(*session_id).await?;
        let actor = client.actor(Some(caller));
        audit::record(database, &actor, Action::Logout, &user.username, AuditOutcome::Success, "").await;
    }
    Ok(())
}

/// A session for a user the identity provider vouched for.
pub async fn sso_sign_in(
    auth: &Auth,
    database: &Database,
    user: &UserRow,
    client: &ClientInfo,
) -> Result<NewSessionCookie, LoginError> {
    let session = auth.open_session(user, client).await?;
    let actor = Actor::new(user.username.clone(), client.ip);
    let detail = format!("single sign-on, role {}", user.role);
    audit::record(database, &actor, Action::Login, &user.username, AuditOutcome::Success, &detail).await;
    Ok(session)
}

/// A refused single sign-on: recorded, and its reason as far as it may be shown.
pub async fn sso_refused<'reason>(
    auth: &Auth,
    database: &Database,
    client: &ClientInfo,
    reason: &'reason str,
) -> Cow<'reason, str> {
    let reason = audit::bounded(reason, MAX_REFUSAL_CHARS);
    auth.failures().record(database, client.ip, Action::Login, "sso", &reason).await;
    reason
}
