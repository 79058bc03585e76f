//! Users, roles, sessions, tokens, the audit log and integrations, as the API and the UI see
//! them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// What a user may do: each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but secrets.
    Viewer,
    /// A viewer who may also start, abort and roll back rollouts and acknowledge or silence
    /// alerts.
    Deployer,
    /// Everything: users, tokens, integrations, rules, settings.
    Admin,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Deployer, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Deployer => "deployer",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "viewer" => Ok(Self::Viewer),
            "deployer" => Ok(Self::Deployer),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown role {other:?}: expected viewer, deployer or admin")),
        }
    }
}

/// What a service token may do. `admin` may do everything; `deploy` includes `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Read,
    Deploy,
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 4] = [Scope::Ingest, Scope::Read, Scope::Deploy, Scope::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Deploy => "deploy",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Scope {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "ingest" => Ok(Self::Ingest),
            "read" => Ok(Self::Read),
            "deploy" => Ok(Self::Deploy),
            "admin" => Ok(Self::Admin),
            other => Err(format!("unknown scope {other:?}: expected ingest, read, deploy or admin")),
        }
    }
}

/// `POST /api/v1/auth/login` as JSON (the login form posts the same fields, plus `next`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
}

/// The signed-in user (`GET /api/v1/auth/session`, and the answer to a JSON login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub username: String,
    pub display_name: String,
    pub role: Role,
    /// Sent back as `X-CSRF-Token` by scripts that use the session cookie outside a browser.
    pub csrf_token: String,
    pub expires_at: Timestamp,
}

/// `POST /api/v1/auth/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PasswordChange {
    pub current_password: String,
    pub new_password: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: Role,
    pub disabled: bool,
    /// Signs in through single sign-on (and has no password unless one was set).
    pub sso: bool,
    pub has_password: bool,
    pub created_at: Timestamp,
}

/// `POST /api/v1/users`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewUser {
    pub username: String,
    #[serde(default)]
    pub display_name: String,
    pub role: Role,
    /// Absent for users who will only sign in through single sign-on.
    #[serde(default)]
    pub password: Option<String>,
}

/// `PATCH /api/v1/users/{id}`: the fields to change.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserUpdate {
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub role: Option<Role>,
    #[serde(default)]
    pub disabled: Option<bool>,
    /// A new password set by an administrator; the user's sessions end.
    #[serde(default)]
    pub password: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    /// Acts as its user, with the user's role.
    Personal,
    /// Belongs to no user; carries a scope. Agents and CI use these.
    Service,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub id: i64,
    pub name: String,
    pub kind: TokenKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
    /// The user of a personal token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub expires_at: Option<Timestamp>,
    #[serde(default)]
    pub last_used_at: Option<Timestamp>,
    #[serde(default)]
    pub revoked_at: Option<Timestamp>,
}

/// `POST /api/v1/tokens` (a service token, `scope` required) and `POST /api/v1/auth/tokens`
/// (a personal token, no scope).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewToken {
    pub name: String,
    #[serde(default)]
    pub scope: Option<Scope>,
    /// Days until the token stops working; never when absent.
    #[serde(default)]
    pub expires_in_days: Option<u32>,
}

/// The answer to a token creation: the token in clear, shown this once.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CreatedToken {
    pub token: String,
    pub info: TokenInfo,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditOutcome {
    Success,
    Failure,
    Denied,
}

impl AuditOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::Denied => "denied",
        }
    }
}

impl std::str::FromStr for AuditOutcome {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "success" => Ok(Self::Success),
            "failure" => Ok(Self::Failure),
            "denied" => Ok(Self::Denied),
            other => Err(format!("unknown outcome {other:?}: expected success, failure or denied")),
        }
    }
}

/// One entry of the append-only audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEvent {
    pub id: i64,
    pub at: Timestamp,
    /// `alice`, `token:ci-deployer`, or `anonymous`.
    pub actor: String,
    pub source_ip: String,
    /// `login`, `logout`, `user.create`, `token.revoke`, ...
    pub action: String,
    pub target: String,
    pub outcome: AuditOutcome,
    pub detail: String,
}

/// `GET /api/v1/audit`: filters, newest first.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    #[serde(default)]
    pub actor: Option<String>,
    /// An action, or a prefix of actions ending in `.` (`user.`).
    #[serde(default)]
    pub action: Option<String>,
    #[serde(default)]
    pub outcome: Option<AuditOutcome>,
    #[serde(default)]
    pub start: Option<Timestamp>,
    #[serde(default)]
    pub end: Option<Timestamp>,
    #[serde(default)]
    pub limit: Option<u32>,
    /// The cursor: events older than this id.
    #[serde(default)]
    pub before: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditPage {
    pub events: Vec<AuditEvent>,
    /// The `before` of the next page, when there is one.
    #[serde(default)]
    pub next: Option<i64>,
}

/// A stored secret, as the API shows it: only whether it is set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretState {
    pub set: bool,
}

/// A connection to something outside (a CI system, a webhook, an SMTP server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Integration {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub settings: serde_json::Map<String, serde_json::Value>,
    /// Write-only: the names of the secrets, never their values.
    pub secrets: BTreeMap<String, SecretState>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// `POST /api/v1/integrations` and `PUT /api/v1/integrations/{id}`. On update, a secret left
/// out keeps its stored value and a secret set to `null` is removed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrationWrite {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub secrets: BTreeMap<String, Option<String>>,
}

/// Whether single sign-on is on, for the login and settings pages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SsoStatus {
    pub enabled: bool,
    /// The sign-in button's text.
    pub label: String,
    /// For administrators: the issuer, and whether its discovery document answers.
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub problem: Option<String>,
}
