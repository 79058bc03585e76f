//! Users: local (argon2id password hash) or created by single sign-on.

use sqlx::Row;

use super::{Database, StoreError, is_unique_violation, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub password_hash: Option<String>,
    pub role: String,
    pub disabled: bool,
    pub sso_issuer: Option<String>,
    pub sso_subject: Option<String>,
    pub created_at_millis: i64,
    pub password_changed_at_millis: Option<i64>,
}

pub struct NewUserRow<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub password_hash: Option<&'a str>,
    pub role: &'a str,
    pub sso: Option<(&'a str, &'a str)>,
}

const COLUMNS: &str = "id, username, display_name, password_hash, role, disabled, sso_issuer, sso_subject, created_at, \
                       password_changed_at";

impl Database {
    pub async fn insert_user(&self, user: NewUserRow<'_>) -> Result<UserRow, StoreError> {
        let created_at = now_millis();
        let (issuer, subject) = user.sso.unzip();
        let row = sqlx::query(&format!(
            "INSERT INTO users (username, display_name, password_hash, role, sso_issuer, sso_subject, created_at, \
             password_changed_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {COLUMNS}"
        ))
        .bind(user.username)
        .bind(user.display_name)
        .bind(user.password_hash)
        .bind(user.role)
        .bind(issuer)
        .bind(subject)
        .bind(created_at)
        .bind(user.password_hash.map(|_| created_at))
        .fetch_one(self.pool())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(format!("a user named {:?}", user.username))
            } else {
                StoreError::Query(error)
            }
        })?;
        user_row(&row)
    }

    pub async fn user_count(&self) -> Result<i64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS count FROM users").fetch_one(self.pool()).await?;
        Ok(row.try_get("count")?)
    }

    pub async fn user_by_id(&self, id: i64) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE username = $1"))
            .bind(username)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn user_by_sso(&self, issuer: &str, subject: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM users WHERE sso_issuer = $1 AND sso_subject = $2"))
            .bind(issuer)
            .bind(subject)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(user_row).transpose()
    }

    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM users ORDER BY username")).fetch_all(self.pool()).await?;
        rows.iter().map(user_row).collect()
    }

    /// Changes the given fields; `None` leaves a field alone. Returns the user as changed.
    pub async fn update_user(
        &self,
        id: i64,
        display_name: Option<&str>,
        role: Option<&str>,
        disabled: Option<bool>,
    ) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE users SET display_name = COALESCE($1, display_name), role = COALESCE($2, role), \
             disabled = COALESCE($3, disabled) WHERE id = $4 RETURNING {COLUMNS}"
        ))
        .bind(display_name)
        .bind(role)
        .bind(disabled.map(i64::from))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(user_row).transpose()
    }

    /// Sets a new password hash and ends every session of the user in the same transaction.
    pub async fn set_password(&self, id: i64, password_hash: &str) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let updated = sqlx::query("UPDATE users SET password_hash = $1, password_changed_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now_millis())
            .bind(id)
            .execute(&mut *transaction)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE user_id = $1").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(updated == 1)
    }
}

fn user_row(row: &sqlx::any::AnyRow) -> Result<UserRow, StoreError> {
    Ok(UserRow {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        password_hash: row.try_get("password_hash")?,
        role: row.try_get("role")?,
        disabled: row.try_get::<i64, _>("disabled")? != 0,
        sso_issuer: row.try_get("sso_issuer")?,
        sso_subject: row.try_get("sso_subject")?,
        created_at_millis: row.try_get("created_at")?,
        password_changed_at_millis: row.try_get("password_changed_at")?,
    })
}
