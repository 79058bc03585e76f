//! Authentication and what callers may do.
//!
//! Callers are users with a browser session (a cookie), users with a personal token, or
//! service tokens with a scope (agents, CI). [`Auth`] holds the sign-in logic: passwords,
//! sessions, tokens, the rate limiter; [`Policy`] says which [`Access`] each route needs.
//! The HTTP layer's `authorize` middleware (`crate::http::authorize`) applies both to every
//! route, page, server function and WebSocket.

mod limiter;
pub mod oidc;
pub mod password;
mod policy;
mod tokens;

pub use limiter::{LockedOut, LoginLimiter};
pub use policy::{Access, ApiRouter, Policy, RouteAccess, server_function_access};
pub use tokens::TOKEN_PREFIX;

use std::net::IpAddr;
use std::time::Duration;

use vigil_proto::auth::{Role, Scope, SessionInfo};
use vigil_proto::names::{MAX_NAME_BYTES, TokenName, UserName};

use crate::audit::{Action, Actor};
use crate::config::AuthConfig;
use crate::store::{
    Database, NewSession, NewTokenRow, NewUserRow, StoreError, TokenRow, UserRow, millis_to_timestamp, now_millis,
};

/// A user as the authorization sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRef {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
}

/// Who a request was authenticated as; handlers find it in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Session { user: UserRef, session_id: i64, csrf_token: String, expires_at_millis: i64 },
    PersonalToken { user: UserRef, token_id: i64 },
    ServiceToken { token_id: i64, name: String, scope: Scope },
}

impl Caller {
    pub fn user(&self) -> Option<&UserRef> {
        match self {
            Self::Session { user, .. } | Self::PersonalToken { user, .. } => Some(user),
            Self::ServiceToken { .. } => None,
        }
    }

    /// Who the caller is, stably: a user (by session or personal token alike) or a token.
    pub fn key(&self) -> String {
        match self {
            Self::Session { user, .. } | Self::PersonalToken { user, .. } => format!("user:{}", user.id),
            Self::ServiceToken { token_id, .. } => format!("token:{token_id}"),
        }
    }

    /// The name the audit log gives this caller.
    pub fn actor_name(&self) -> String {
        match self {
            Self::Session { user, .. } => user.username.clone(),
            Self::PersonalToken { user, .. } => format!("{} (token)", user.username),
            Self::ServiceToken { name, .. } => format!("token:{name}"),
        }
    }

    pub fn allows(&self, access: Access) -> bool {
        match self {
            Self::Session { user, .. } => access.allows_user(user.role, true),
            Self::PersonalToken { user, .. } => access.allows_user(user.role, false),
            Self::ServiceToken { scope, .. } => access.allows_scope(*scope),
        }
    }

    pub fn session_info(&self) -> Option<SessionInfo> {
        match self {
            Self::Session { user, csrf_token, expires_at_millis, .. } => Some(SessionInfo {
                username: user.username.clone(),
                display_name: user.display_name.clone(),
                role: user.role,
                csrf_token: csrf_token.clone(),
                expires_at: millis_to_timestamp(*expires_at_millis),
            }),
            _ => None,
        }
    }
}

/// Where a request came from; in the request's extensions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientInfo {
    pub ip: Option<IpAddr>,
    pub user_agent: String,
}

impl ClientInfo {
    pub fn actor(&self, caller: Option<&Caller>) -> Actor {
        Actor::new(caller.map_or_else(|| "anonymous".to_owned(), Caller::actor_name), self.ip)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("invalid user name or password")]
    InvalidCredentials,
    #[error("this account is disabled")]
    Disabled,
    #[error("too many failed sign-ins; try again in {} seconds", .0.retry_after.as_secs().max(1))]
    LockedOut(LockedOut),
    #[error("the {0} is longer than {1} bytes")]
    TooLong(&'static str, usize),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the operating system's random source failed")]
    Random,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(transparent)]
    Name(#[from] vigil_proto::names::NameError),
    #[error("a service token needs a scope")]
    NoScope,
    #[error("a personal token acts with its user's role and takes no scope")]
    PersonalWithScope,
    #[error("expires_in_days must be at least 1")]
    NoDays,
    #[error("the operating system's random source failed")]
    Random(#[from] getrandom::Error),
    #[error(transparent)]
    Hash(password::PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum PasswordChangeError {
    /// The new password breaks a rule.
    #[error(transparent)]
    Rejected(password::PasswordError),
    #[error(transparent)]
    Hash(password::PasswordError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum SsoUserError {
    #[error("single sign-on is not configured")]
    NotConfigured,
    #[error("none of your groups gives a role in Vigil")]
    NoRole,
    #[error("this account is disabled")]
    Disabled,
    #[error("there is no Vigil user for this account; ask an administrator")]
    NotProvisioned,
    #[error("the user name {0:?} from the identity provider is not a valid Vigil user name")]
    BadUsername(String),
    #[error("a local user named {0:?} exists already; an administrator must rename one of them")]
    NameTaken(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, thiserror::Error)]
pub enum InitialAdminError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Password(#[from] password::PasswordError),
    #[error("the operating system's random source failed")]
    Random,
}

/// A session just created: the cookie value (shown to the browser only) and its caller.
pub struct NewSessionCookie {
    pub value: String,
    pub caller: Caller,
}

/// Sign-in, sessions and tokens.
pub struct Auth {
    database: Database,
    config: AuthConfig,
    secure_cookies: bool,
    limiter: LoginLimiter,
    verified: tokens::VerifiedTokens<Caller>,
    oidc: Option<oidc::Oidc>,
    failures: crate::audit::RepeatedFailures,
}

impl Auth {
    pub fn new(database: Database, config: AuthConfig, serves_tls: bool) -> Result<Self, oidc::OidcError> {
        let window = Duration::from_secs(config.login_lockout_seconds);
        let limiter = LoginLimiter::new(config.login_max_failures, window);
        let oidc = config.oidc.clone().map(oidc::Oidc::new).transpose()?;
        Ok(Self {
            failures: crate::audit::RepeatedFailures::new(window),
            database,
            secure_cookies: config.secure_cookies || serves_tls,
            config,
            limiter,
            verified: tokens::VerifiedTokens::new(),
            oidc,
        })
    }

    /// Failed sign-ins of anonymous callers, collapsed for the audit log.
    pub fn failures(&self) -> &crate::audit::RepeatedFailures {
        &self.failures
    }

    /// Single sign-on, when configured.
    pub fn oidc(&self) -> Option<&oidc::Oidc> {
        self.oidc.as_ref()
    }

    /// The user an identity from the provider signs in as: found by issuer and subject, or
    /// created (when allowed); their role follows their groups at every sign-in.
    pub async fn sso_user(&self, identity: &oidc::Identity) -> Result<UserRow, SsoUserError> {
        let config = self.oidc.as_ref().map(oidc::Oidc::config).ok_or(SsoUserError::NotConfigured)?;
        let role = config.role_for(&identity.groups).ok_or(SsoUserError::NoRole)?;
        let existing = self.database.user_by_sso(&identity.issuer, &identity.subject).await?;
        let user = match existing {
            Some(user) if user.disabled => return Err(SsoUserError::Disabled),
            Some(user) if user.role == role.as_str() => user,
            Some(user) => {
                let updated = self.database.update_user(user.id, None, Some(role.as_str()), None).await?;
                self.users_changed();
                updated.ok_or(SsoUserError::NotConfigured)?
            }
            None if !config.auto_create_users => return Err(SsoUserError::NotProvisioned),
            None => {
                if UserName::parse(&identity.username).is_err() {
                    return Err(SsoUserError::BadUsername(identity.username.clone()));
                }
                if self.database.user_by_username(&identity.username).await?.is_some() {
                    return Err(SsoUserError::NameTaken(identity.username.clone()));
                }
                self.database
                    .insert_user(NewUserRow {
                        username: &identity.username,
                        display_name: &identity.display_name,
                        password_hash: None,
                        role: role.as_str(),
                        sso: Some((&identity.issuer, &identity.subject)),
                    })
                    .await?
            }
        };
        Ok(user)
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    /// Creates the first administrator when there are no users. Returns the password when it
    /// was generated (the caller prints it once).
    pub async fn ensure_initial_admin(&self) -> Result<Option<String>, InitialAdminError> {
        if self.database.user_count().await? > 0 {
            return Ok(None);
        }
        let (password, generated) = match &self.config.initial_admin_password {
            Some(password) => (password.expose().to_owned(), false),
            None => (generate_password().map_err(|_| InitialAdminError::Random)?, true),
        };
        let hash = password::hash(password.clone()).await?;
        let username = &self.config.initial_admin_username;
        self.database
            .insert_user(NewUserRow {
                username,
                display_name: "Administrator",
                password_hash: Some(&hash),
                role: Role::Admin.as_str(),
                sso: None,
            })
            .await?;
        crate::audit::record(
            &self.database,
            &Actor::new("vigil", None),
            Action::UserCreate,
            username,
            vigil_proto::auth::AuditOutcome::Success,
            "first administrator",
        )
        .await;
        Ok(generated.then_some(password))
    }

    /// Checks a user name and password and opens a new session. The rate limiter counts
    /// failures per account and per address.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<NewSessionCookie, LoginError> {
        if username.len() > MAX_NAME_BYTES {
            return Err(LoginError::TooLong("user name", MAX_NAME_BYTES));
        }
        if password.len() > password::MAX_BYTES {
            return Err(LoginError::TooLong("password", password::MAX_BYTES));
        }
        let address = client.ip.map(|ip| ip.to_string()).unwrap_or_default();
        // The attempt counts as a failure from here until it succeeds.
        self.limiter.reserve(username, &address).map_err(LoginError::LockedOut)?;
        let user = self.database.user_by_username(username).await?;
        let hash = user.as_ref().and_then(|user| user.password_hash.clone());
        let matches =
            password::verify(password.to_owned(), hash.clone().unwrap_or_else(|| password::decoy_hash().to_owned()))
                .await;
        let Some(user) = user.filter(|_| matches && hash.is_some()) else {
            return Err(LoginError::InvalidCredentials);
        };
        if user.disabled {
            return Err(LoginError::Disabled);
        }
        self.limiter.succeeded(username, &address);
        self.open_session(&user, client).await
    }

    /// A new session for a user who proved who they are (by password or single sign-on).
    pub async fn open_session(&self, user: &UserRow, client: &ClientInfo) -> Result<NewSessionCookie, LoginError> {
        let value = random_hex(32).map_err(|_| LoginError::Random)?;
        let csrf_token = random_hex(32).map_err(|_| LoginError::Random)?;
        let now = now_millis();
        let lifetime = i64::try_from(self.config.session_lifetime_hours.saturating_mul(3_600_000)).unwrap_or(i64::MAX);
        let address = client.ip.map(|ip| ip.to_string()).unwrap_or_default();
        let user_agent: String = client.user_agent.chars().take(256).collect();
        let session = self
            .database
            .insert_session(NewSession {
                token_hash: &tokens::sha256_hex(&value),
                user_id: user.id,
                csrf_token: &csrf_token,
                now_millis: now,
                expires_at_millis: now.saturating_add(lifetime),
                source_ip: &address,
                user_agent: &user_agent,
            })
            .await?;
        let caller = Caller::Session {
            user: user_ref(user).ok_or(LoginError::InvalidCredentials)?,
            session_id: session.id,
            csrf_token,
            expires_at_millis: session.expires_at_millis,
        };
        Ok(NewSessionCookie { value, caller })
    }

    /// The caller of a session cookie; `None` when it is unknown, expired, idle too long, or its
    /// user is disabled.
    pub async fn session(&self, cookie_value: &str) -> Result<Option<Caller>, StoreError> {
        let Some(session) = self.database.session_by_hash(&tokens::sha256_hex(cookie_value)).await? else {
            return Ok(None);
        };
        let now = now_millis();
        let idle = i64::try_from(self.config.session_idle_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX);
        if now >= session.expires_at_millis || now.saturating_sub(session.last_seen_at_millis) >= idle {
            self.database.delete_session(session.id).await?;
            return Ok(None);
        }
        let Some(user) = self.database.user_by_id(session.user_id).await?.filter(|user| !user.disabled) else {
            return Ok(None);
        };
        // Recorded at most once a minute per session, so that reads do not write each time.
        if now - session.last_seen_at_millis > 60_000 {
            self.database.touch_session(session.id, now).await?;
        }
        Ok(user_ref(&user).map(|user| Caller::Session {
            user,
            session_id: session.id,
            csrf_token: session.csrf_token,
            expires_at_millis: session.expires_at_millis,
        }))
    }

    /// Deletes the sessions past their absolute expiry or idle too long; returns how many.
    pub async fn purge_expired_sessions(&self) -> Result<u64, StoreError> {
        let idle = i64::try_from(self.config.session_idle_minutes.saturating_mul(60_000)).unwrap_or(i64::MAX);
        self.database.delete_expired_sessions(now_millis(), idle).await
    }

    pub async fn logout(&self, session_id: i64) -> Result<(), StoreError> {
        self.database.delete_session(session_id).await
    }

    /// The caller of a token; `None` when it is malformed, unknown, revoked or expired.
    pub async fn token(&self, token: &str) -> Result<Option<Caller>, StoreError> {
        let Some((public_id, secret)) = tokens::split(token) else {
            return Ok(None);
        };
        if let Some(caller) = self.verified.get(token) {
            return Ok(Some(caller));
        }
        let Some(row) = self.database.token_by_public_id(public_id).await? else {
            return Ok(None);
        };
        let now = now_millis();
        if row.revoked_at_millis.is_some() || row.expires_at_millis.is_some_and(|expires| expires <= now) {
            return Ok(None);
        }
        if !password::verify(secret.to_owned(), row.secret_hash.clone()).await {
            return Ok(None);
        }
        let caller = match (row.scope.as_deref(), row.user_id) {
            (Some(scope), None) => {
                let Ok(scope) = scope.parse() else { return Ok(None) };
                Caller::ServiceToken { token_id: row.id, name: row.name.clone(), scope }
            }
            (None, Some(user_id)) => {
                let user = self.database.user_by_id(user_id).await?.filter(|user| !user.disabled);
                let Some(user) = user.as_ref().and_then(user_ref) else { return Ok(None) };
                Caller::PersonalToken { user, token_id: row.id }
            }
            _ => return Ok(None),
        };
        // Recorded at most once a minute per token, so that ingest does not write on every request.
        if row.last_used_at_millis.is_none_or(|last| now - last > 60_000) {
            self.database.touch_token(row.id, now).await?;
        }
        self.verified.insert(token, row.id, caller.clone());
        Ok(Some(caller))
    }

    /// Creates a service token (`owner` = `None`, `scope` given) or a personal token, and
    /// returns it in clear, the only time it is available.
    pub async fn create_token(
        &self,
        name: &str,
        scope: Option<Scope>,
        owner: Option<i64>,
        expires_in_days: Option<u32>,
    ) -> Result<(String, TokenRow), TokenError> {
        TokenName::parse(name)?;
        if owner.is_none() && scope.is_none() {
            return Err(TokenError::NoScope);
        }
        if owner.is_some() && scope.is_some() {
            return Err(TokenError::PersonalWithScope);
        }
        if expires_in_days == Some(0) {
            return Err(TokenError::NoDays);
        }
        let generated = tokens::generate()?;
        let (_, secret) = tokens::split(&generated.token).expect("a generated token is well formed");
        let secret_hash = password::hash(secret.to_owned()).await.map_err(TokenError::Hash)?;
        let expires_at_millis =
            expires_in_days.map(|days| now_millis().saturating_add(i64::from(days).saturating_mul(86_400_000)));
        let row = self
            .database
            .insert_token(NewTokenRow {
                public_id: &generated.public_id,
                name,
                scope: scope.map(Scope::as_str),
                user_id: owner,
                secret_hash: &secret_hash,
                expires_at_millis,
            })
            .await?;
        Ok((generated.token, row))
    }

    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let revoked = self.database.revoke_token(id).await?;
        self.verified.forget_token(id);
        Ok(revoked)
    }

    /// Personal tokens act with their user's current role: forget verified tokens whenever a
    /// user changes.
    pub fn users_changed(&self) {
        self.verified.forget_all();
    }

    /// Sets a user's password (after checking the rules) and ends all of their sessions.
    pub async fn set_password(&self, user_id: i64, new_password: &str) -> Result<bool, PasswordChangeError> {
        password::validate(new_password, self.config.min_password_length).map_err(PasswordChangeError::Rejected)?;
        let hash = password::hash(new_password.to_owned()).await.map_err(PasswordChangeError::Hash)?;
        let changed = self.database.set_password(user_id, &hash).await?;
        Ok(changed)
    }

    pub fn secure_cookies(&self) -> bool {
        self.secure_cookies
    }
}

fn user_ref(user: &UserRow) -> Option<UserRef> {
    Some(UserRef {
        id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        role: user.role.parse().ok()?,
    })
}

fn random_hex(bytes: usize) -> Result<String, getrandom::Error> {
    let mut buffer = vec![0u8; bytes];
    getrandom::fill(&mut buffer)?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// 20 characters from an alphabet without look-alikes (about 116 bits).
fn generate_password() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut buffer = [0u8; 20];
    getrandom::fill(&mut buffer)?;
    Ok(buffer.iter().map(|byte| ALPHABET[usize::from(*byte) % ALPHABET.len()] as char).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_long_and_differ() {
        let first = generate_password().unwrap();
        assert_eq!(first.len(), 20);
        assert_ne!(first, generate_password().unwrap());
    }
}
