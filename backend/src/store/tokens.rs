//! API tokens: only their SHA-256 hash is stored.

use sqlx::Row;

use super::{Database, StoreError, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub created_at_millis: i64,
    pub last_used_at_millis: Option<i64>,
}

pub struct NewToken<'a> {
    pub name: &'a str,
    pub scope: &'a str,
    pub token_hash: &'a str,
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(database_error) if database_error.is_unique_violation())
}

impl Database {
    pub async fn insert_token(&self, token: NewToken<'_>) -> Result<TokenRow, StoreError> {
        let created_at = now_millis();
        let row = sqlx::query(
            "INSERT INTO api_tokens (name, scope, token_hash, created_at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(token.name)
        .bind(token.scope)
        .bind(token.token_hash)
        .bind(created_at)
        .fetch_one(self.pool())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(format!("a token named {:?}", token.name))
            } else {
                StoreError::Query(error)
            }
        })?;
        Ok(TokenRow {
            id: row.try_get("id")?,
            name: token.name.to_owned(),
            scope: token.scope.to_owned(),
            created_at_millis: created_at,
            last_used_at_millis: None,
        })
    }

    pub async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query("SELECT id, name, scope, created_at, last_used_at FROM api_tokens WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| token_row(&row)).transpose()
    }

    pub async fn tokens(&self) -> Result<Vec<TokenRow>, StoreError> {
        let rows = sqlx::query("SELECT id, name, scope, created_at, last_used_at FROM api_tokens ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(token_row).collect()
    }

    /// Records a use of the token; `at_millis` only moves forward.
    pub async fn touch_token(&self, id: i64, at_millis: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE api_tokens SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(at_millis)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }
}

fn token_row(row: &sqlx::any::AnyRow) -> Result<TokenRow, StoreError> {
    Ok(TokenRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        scope: row.try_get("scope")?,
        created_at_millis: row.try_get("created_at")?,
        last_used_at_millis: row.try_get("last_used_at")?,
    })
}
