//! Browser sessions: only the SHA-256 of the cookie value is stored.

use sqlx::Row;

use super::{Database, StoreError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id: i64,
    pub user_id: i64,
    pub csrf_token: String,
    pub created_at_millis: i64,
    pub last_seen_at_millis: i64,
    pub expires_at_millis: i64,
}

pub struct NewSession<'a> {
    pub token_hash: &'a str,
    pub user_id: i64,
    pub csrf_token: &'a str,
    pub now_millis: i64,
    pub expires_at_millis: i64,
    pub source_ip: &'a str,
    pub user_agent: &'a str,
}

impl Database {
    pub async fn insert_session(&self, session: NewSession<'_>) -> Result<SessionRow, StoreError> {
        let row = sqlx::query(
            "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at, expires_at, source_ip, \
             user_agent) VALUES ($1, $2, $3, $4, $4, $5, $6, $7) RETURNING id",
        )
        .bind(session.token_hash)
        .bind(session.user_id)
        .bind(session.csrf_token)
        .bind(session.now_millis)
        .bind(session.expires_at_millis)
        .bind(session.source_ip)
        .bind(session.user_agent)
        .fetch_one(self.pool())
        .await?;
        Ok(SessionRow {
            id: row.try_get("id")?,
            user_id: session.user_id,
            csrf_token: session.csrf_token.to_owned(),
            created_at_millis: session.now_millis,
            last_seen_at_millis: session.now_millis,
            expires_at_millis: session.expires_at_millis,
        })
    }

    pub async fn session_by_hash(&self, token_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT id, user_id, csrf_token, created_at, last_seen_at, expires_at FROM sessions WHERE token_hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| {
            Ok(SessionRow {
                id: row.try_get("id")?,
                user_id: row.try_get("user_id")?,
                csrf_token: row.try_get("csrf_token")?,
                created_at_millis: row.try_get("created_at")?,
                last_seen_at_millis: row.try_get("last_seen_at")?,
                expires_at_millis: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    pub async fn touch_session(&self, id: i64, at_millis: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE id = $2 AND last_seen_at < $1")
            .bind(at_millis)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub async fn delete_session(&self, id: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE id = $1").bind(id).execute(self.pool()).await?;
        Ok(())
    }

    pub async fn delete_sessions_of_user(&self, user_id: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(user_id).execute(self.pool()).await?;
        Ok(result.rows_affected())
    }

    /// Removes sessions past their absolute expiry or idle for longer than `idle_millis`.
    pub async fn delete_expired_sessions(&self, now_millis: i64, idle_millis: i64) -> Result<u64, StoreError> {
        let result = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2")
            .bind(now_millis)
            .bind(now_millis - idle_millis)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected())
    }
}
