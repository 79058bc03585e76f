//! Integrations: the outside systems Vigil talks to (notification channels, CI/CD
//! providers), each with settings that are shown and secrets that are write-only: sealed with
//! the secrets key on the way in, opened only by [`open_secret`] for the code that calls the
//! outside system, never returned or logged.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use vigil_proto::auth::{AuditOutcome, Integration, IntegrationWrite, SecretState};

use crate::audit::{self, Action, Actor};
use crate::secrets::{SecretBox, SecretsError};
use crate::store::{Database, IntegrationRow, StoreError, millis_to_timestamp};

const MAX_SECRET_BYTES: usize = 8 << 10;

/// What an integration talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegrationKind {
    /// A generic webhook (an HMAC-signed JSON body).
    Webhook,
    Slack,
    PagerDuty,
    Smtp,
    Alertmanager,
    Buildbot,
    Jenkins,
    GitLab,
    CircleCi,
    GitHub,
    ArgoCd,
    Kubernetes,
}

impl IntegrationKind {
    pub const ALL: [Self; 12] = [
        Self::Webhook,
        Self::Slack,
        Self::PagerDuty,
        Self::Smtp,
        Self::Alertmanager,
        Self::Buildbot,
        Self::Jenkins,
        Self::GitLab,
        Self::CircleCi,
        Self::GitHub,
        Self::ArgoCd,
        Self::Kubernetes,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Slack => "slack",
            Self::PagerDuty => "pagerduty",
            Self::Smtp => "smtp",
            Self::Alertmanager => "alertmanager",
            Self::Buildbot => "buildbot",
            Self::Jenkins => "jenkins",
            Self::GitLab => "gitlab",
            Self::CircleCi => "circleci",
            Self::GitHub => "github",
            Self::ArgoCd => "argocd",
            Self::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for IntegrationKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for IntegrationKind {
    type Err = IntegrationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| IntegrationError::UnknownKind(text.to_owned()))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum IntegrationError {
    /// A name, secret name or secret that breaks a rule; the text names it.
    #[error("{0}")]
    Invalid(String),
    #[error("kind {0:?} is not one of {kinds}", kinds = IntegrationKind::ALL.map(IntegrationKind::as_str).join(", "))]
    UnknownKind(String),
    #[error("no integration has id {0}")]
    NotFound(i64),
    #[error("a secret cannot be sealed or opened: {0}")]
    Secret(#[from] SecretsError),
    #[error("stored settings or secrets cannot be read or written: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn sealing_context(name: &str, secret: &str) -> String {
    format!("integration/{name}/{secret}")
}

fn sealed_secrets(row: &IntegrationRow) -> Result<BTreeMap<String, String>, IntegrationError> {
    Ok(serde_json::from_str(&row.secrets)?)
}

fn integration(row: &IntegrationRow) -> Result<Integration, IntegrationError> {
    Ok(Integration {
        id: row.id,
        name: row.name.clone(),
        kind: row.kind.clone(),
        settings: serde_json::from_str(&row.settings)?,
        secrets: sealed_secrets(row)?.into_keys().map(|name| (name, SecretState { set: true })).collect(),
        created_at: millis_to_timestamp(row.created_at_millis),
        updated_at: millis_to_timestamp(row.updated_at_millis),
    })
}

/// Checks a write: names and secret names of letters, digits, `-`, `_` and `.`, a known kind,
/// secrets of at most 8 KiB.
pub fn validate(write: &IntegrationWrite) -> Result<IntegrationKind, IntegrationError> {
    let identifier = vigil_proto::names::is_plain_name;
    let invalid = |message: String| Err(IntegrationError::Invalid(message));
    if !identifier(&write.name) {
        return invalid("name must be 1 to 64 letters, digits, '-', '_' and '.'".to_owned());
    }
    let kind = write.kind.parse()?;
    for (name, value) in &write.secrets {
        if !identifier(name) {
            return invalid(format!("secret name {name:?} must be 1 to 64 letters, digits, '-', '_' and '.'"));
        }
        if value.as_ref().is_some_and(|value| value.len() > MAX_SECRET_BYTES) {
            return invalid(format!("secret {name:?} is longer than {MAX_SECRET_BYTES} bytes"));
        }
    }
    Ok(kind)
}

/// Seals the written secrets over the stored ones: absent keeps, `null` removes. A rename
/// re-seals the kept secrets under the new name.
fn seal_secrets(
    secrets: &SecretBox,
    write: &IntegrationWrite,
    stored: Option<&IntegrationRow>,
) -> Result<String, IntegrationError> {
    let mut sealed: BTreeMap<String, String> = BTreeMap::new();
    if let Some(stored) = stored {
        for (name, value) in sealed_secrets(stored)? {
            if stored.name == write.name {
                sealed.insert(name, value);
            } else {
                let clear = secrets.open(&sealing_context(&stored.name, &name), &value)?;
                sealed.insert(name.clone(), secrets.seal(&sealing_context(&write.name, &name), &clear)?);
            }
        }
    }
    for (name, value) in &write.secrets {
        match value {
            Some(value) => {
                sealed.insert(name.clone(), secrets.seal(&sealing_context(&write.name, name), value)?);
            }
            None => {
                sealed.remove(name);
            }
        }
    }
    Ok(serde_json::to_string(&sealed)?)
}

/// The clear text of one secret of a stored integration, for the code that calls the outside
/// system; `None` when it has no secret of that name.
pub fn open_secret(secrets: &SecretBox, row: &IntegrationRow, name: &str) -> Result<Option<String>, IntegrationError> {
    let Some(sealed) = sealed_secrets(row)?.remove(name) else {
        return Ok(None);
    };
    Ok(Some(secrets.open(&sealing_context(&row.name, name), &sealed)?))
}

/// Every secret of an integration, opened: for the code that calls the outside system, just
/// before it does.
pub fn open_secrets(secrets: &SecretBox, row: &IntegrationRow) -> Result<BTreeMap<String, String>, IntegrationError> {
    sealed_secrets(row)?
        .into_iter()
        .map(|(name, sealed)| Ok((name.clone(), secrets.open(&sealing_context(&row.name, &name), &sealed)?)))
        .collect()
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

pub async fn list(database: &Database) -> Result<Vec<Integration>, IntegrationError> {
    database.integrations().await?.iter().map(integration).collect()
}

pub async fn get(database: &Database, id: i64) -> Result<Integration, IntegrationError> {
    let row = database.integration(id).await?.ok_or(IntegrationError::NotFound(id))?;
    integration(&row)
}

pub async fn create(
    database: &Database,
    secrets: &SecretBox,
    actor: &Actor,
    write: &IntegrationWrite,
) -> Result<Integration, IntegrationError> {
    let kind = validate(write)?;
    let settings = serde_json::to_string(&write.settings)?;
    let sealed = seal_secrets(secrets, write, None)?;
    let result = database.insert_integration(&write.name, kind.as_str(), &settings, &sealed).await;
    let outcome = if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit::record(database, actor, Action::IntegrationCreate, &write.name, outcome, &secret_names(write)).await;
    integration(&result?)
}

pub async fn update(
    database: &Database,
    secrets: &SecretBox,
    actor: &Actor,
    id: i64,
    write: &IntegrationWrite,
) -> Result<Integration, IntegrationError> {
    let kind = validate(write)?;
    let stored = database.integration(id).await?.ok_or(IntegrationError::NotFound(id))?;
    let settings = serde_json::to_string(&write.settings)?;
    let sealed = seal_secrets(secrets, write, Some(&stored))?;
    let result = database.update_integration(id, &write.name, kind.as_str(), &settings, &sealed).await;
    let outcome = if matches!(result, Ok(Some(_))) { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit::record(database, actor, Action::IntegrationUpdate, &stored.name, outcome, &secret_names(write)).await;
    integration(&result?.ok_or(IntegrationError::NotFound(id))?)
}

pub async fn delete(database: &Database, actor: &Actor, id: i64) -> Result<(), IntegrationError> {
    let stored = database.integration(id).await?.ok_or(IntegrationError::NotFound(id))?;
    database.delete_integration(id).await?;
    audit::record(database, actor, Action::IntegrationDelete, &stored.name, AuditOutcome::Success, "").await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_known_ones() {
        for kind in IntegrationKind::ALL {
            assert_eq!(kind.as_str().parse::<IntegrationKind>().unwrap(), kind);
        }
        let error = "github-actions".parse::<IntegrationKind>().unwrap_err();
        assert!(error.to_string().starts_with("kind \"github-actions\" is not one of webhook, slack,"), "{error}");
    }
}
