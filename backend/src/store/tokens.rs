//! API tokens: looked up by their public id; only an argon2id hash of the secret is stored.

use sqlx::Row;

use super::{Database, StoreError, is_unique_violation, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenRow {
    pub id: i64,
    pub public_id: String,
    pub name: String,
    /// `service` or `personal`.
    pub kind: String,
    pub scope: Option<String>,
    pub user_id: Option<i64>,
    /// The owner's username, for personal tokens.
    pub owner: Option<String>,
    pub secret_hash: String,
    pub created_at_millis: i64,
    pub expires_at_millis: Option<i64>,
    pub last_used_at_millis: Option<i64>,
    pub revoked_at_millis: Option<i64>,
}

#[derive(Clone, Copy)]
pub struct NewTokenRow<'a> {
    pub public_id: &'a str,
    pub name: &'a str,
    pub scope: Option<&'a str>,
    pub user_id: Option<i64>,
    pub secret_hash: &'a str,
    pub expires_at_millis: Option<i64>,
}

const SELECT: &str = "SELECT t.id, t.public_id, t.name, t.kind, t.scope, t.user_id, u.username AS owner, \
                      t.secret_hash, t.created_at, t.expires_at, t.last_used_at, t.revoked_at \
                      FROM api_tokens t LEFT JOIN users u ON u.id = t.user_id";

impl Database {
    pub async fn insert_token(&self, token: NewTokenRow<'_>) -> Result<TokenRow, StoreError> {
        let kind = if token.user_id.is_some() { "personal" } else { "service" };
        let row = sqlx::query(
            "INSERT INTO api_tokens (public_id, name, kind, scope, user_id, secret_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
        )
        .bind(token.public_id)
        .bind(token.name)
        .bind(kind)
        .bind(token.scope)
        .bind(token.user_id)
        .bind(token.secret_hash)
        .bind(now_millis())
        .bind(token.expires_at_millis)
        .fetch_one(self.pool())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(format!("a service token named {:?}", token.name))
            } else {
                StoreError::Query(error)
            }
        })?;
        let id: i64 = row.try_get("id")?;
        self.token_by_id(id).await?.ok_or(StoreError::Query(sqlx::Error::RowNotFound))
    }

    pub async fn token_by_id(&self, id: i64) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE t.id = $1")).bind(id).fetch_optional(self.pool()).await?;
        row.as_ref().map(token_row).transpose()
    }

    pub async fn token_by_public_id(&self, public_id: &str) -> Result<Option<TokenRow>, StoreError> {
        let row = sqlx::query(&format!("{SELECT} WHERE t.public_id = $1"))
            .bind(public_id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(token_row).transpose()
    }

    /// Every token, or the personal tokens of one user.
    pub async fn tokens(&self, user_id: Option<i64>) -> Result<Vec<TokenRow>, StoreError> {
        let rows = match user_id {
            Some(user_id) => {
                sqlx::query(&format!("{SELECT} WHERE t.user_id = $1 ORDER BY t.name, t.id"))
                    .bind(user_id)
                    .fetch_all(self.pool())
                    .await?
            }
            None => sqlx::query(&format!("{SELECT} ORDER BY t.kind, t.name, t.id")).fetch_all(self.pool()).await?,
        };
        rows.iter().map(token_row).collect()
    }

    /// Marks a token revoked; `false` when it was unknown or revoked already.
    pub async fn revoke_token(&self, id: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE api_tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
            .bind(now_millis())
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() == 1)
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
        public_id: row.try_get("public_id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        scope: row.try_get("scope")?,
        user_id: row.try_get("user_id")?,
        owner: row.try_get("owner")?,
        secret_hash: row.try_get("secret_hash")?,
        created_at_millis: row.try_get("created_at")?,
        expires_at_millis: row.try_get("expires_at")?,
        last_used_at_millis: row.try_get("last_used_at")?,
        revoked_at_millis: row.try_get("revoked_at")?,
    })
}
