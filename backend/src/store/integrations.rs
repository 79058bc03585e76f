//! Integrations: settings in clear, secrets as AEAD ciphertext (see `crate::secrets`).

use sqlx::Row;

use super::{Database, StoreError, is_unique_violation, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    /// JSON object.
    pub settings: String,
    /// JSON object of secret name to ciphertext.
    pub secrets: String,
    pub created_at_millis: i64,
    pub updated_at_millis: i64,
}

const COLUMNS: &str = "id, name, kind, settings, secrets, created_at, updated_at";

impl Database {
    pub async fn insert_integration(
        &self,
        name: &str,
        kind: &str,
        settings: &str,
        secrets: &str,
    ) -> Result<IntegrationRow, StoreError> {
        let now = now_millis();
        let row = sqlx::query(&format!(
            "INSERT INTO integrations (name, kind, settings, secrets, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(kind)
        .bind(settings)
        .bind(secrets)
        .bind(now)
        .fetch_one(self.pool())
        .await
        .map_err(|error| conflict_or_query(error, name))?;
        integration_row(&row)
    }

    pub async fn update_integration(
        &self,
        id: i64,
        name: &str,
        kind: &str,
        settings: &str,
        secrets: &str,
    ) -> Result<Option<IntegrationRow>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE integrations SET name = $1, kind = $2, settings = $3, secrets = $4, updated_at = $5 \
             WHERE id = $6 RETURNING {COLUMNS}"
        ))
        .bind(name)
        .bind(kind)
        .bind(settings)
        .bind(secrets)
        .bind(now_millis())
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(|error| conflict_or_query(error, name))?;
        row.as_ref().map(integration_row).transpose()
    }

    pub async fn integration(&self, id: i64) -> Result<Option<IntegrationRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM integrations WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(integration_row).transpose()
    }

    pub async fn integration_named(&self, name: &str) -> Result<Option<IntegrationRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM integrations WHERE name = $1"))
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(integration_row).transpose()
    }

    pub async fn integrations(&self) -> Result<Vec<IntegrationRow>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM integrations ORDER BY name")).fetch_all(self.pool()).await?;
        rows.iter().map(integration_row).collect()
    }

    pub async fn delete_integration(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM integrations WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(result.rows_affected() == 1)
    }
}

fn conflict_or_query(error: sqlx::Error, name: &str) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(format!("an integration named {name:?}"))
    } else {
        StoreError::Query(error)
    }
}

fn integration_row(row: &sqlx::any::AnyRow) -> Result<IntegrationRow, StoreError> {
    Ok(IntegrationRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        settings: row.try_get("settings")?,
        secrets: row.try_get("secrets")?,
        created_at_millis: row.try_get("created_at")?,
        updated_at_millis: row.try_get("updated_at")?,
    })
}
