//! Dashboards: the spec as JSON, a version for optimistic concurrency.

use sqlx::Row;

use super::{Database, StoreError, is_unique_violation, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DashboardRow {
    pub uid: String,
    pub title: String,
    /// JSON array.
    pub tags: String,
    /// JSON of the spec.
    pub spec: String,
    pub version: i64,
    pub created_at_millis: i64,
    pub updated_at_millis: i64,
    pub updated_by: String,
}

/// What an update found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateOutcome {
    Updated(DashboardRow),
    NotFound,
    /// Someone saved a newer version; it is this one.
    Stale(i64),
}

const COLUMNS: &str = "uid, title, tags, spec, version, created_at, updated_at, updated_by";

impl Database {
    pub async fn insert_dashboard(
        &self,
        uid: &str,
        title: &str,
        tags: &str,
        spec: &str,
        by: &str,
    ) -> Result<DashboardRow, StoreError> {
        let now = now_millis();
        let row = sqlx::query(&format!(
            "INSERT INTO dashboards (uid, title, tags, spec, version, created_at, updated_at, updated_by) \
             VALUES ($1, $2, $3, $4, 1, $5, $5, $6) RETURNING {COLUMNS}"
        ))
        .bind(uid)
        .bind(title)
        .bind(tags)
        .bind(spec)
        .bind(now)
        .bind(by)
        .fetch_one(self.pool())
        .await
        .map_err(|error| {
            if is_unique_violation(&error) {
                StoreError::Conflict(format!("a dashboard with uid {uid:?}"))
            } else {
                StoreError::Query(error)
            }
        })?;
        dashboard_row(&row)
    }

    /// Replaces the spec when `version` is the stored one (or always, with `None`), and moves
    /// the version on.
    pub async fn update_dashboard(
        &self,
        uid: &str,
        version: Option<i64>,
        title: &str,
        tags: &str,
        spec: &str,
        by: &str,
    ) -> Result<UpdateOutcome, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE dashboards SET title = $1, tags = $2, spec = $3, version = version + 1, updated_at = $4, \
             updated_by = $5 WHERE uid = $6 AND ($7 IS NULL OR version = $7) RETURNING {COLUMNS}"
        ))
        .bind(title)
        .bind(tags)
        .bind(spec)
        .bind(now_millis())
        .bind(by)
        .bind(uid)
        .bind(version)
        .fetch_optional(self.pool())
        .await?;
        match row {
            Some(row) => Ok(UpdateOutcome::Updated(dashboard_row(&row)?)),
            None => Ok(match self.dashboard(uid).await? {
                Some(current) => UpdateOutcome::Stale(current.version),
                None => UpdateOutcome::NotFound,
            }),
        }
    }

    pub async fn dashboard(&self, uid: &str) -> Result<Option<DashboardRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM dashboards WHERE uid = $1"))
            .bind(uid)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(dashboard_row).transpose()
    }

    pub async fn dashboards(&self) -> Result<Vec<DashboardRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM dashboards ORDER BY title, uid"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(dashboard_row).collect()
    }

    pub async fn delete_dashboard(&self, uid: &str) -> Result<bool, StoreError> {
        let result = sqlx::query("DELETE FROM dashboards WHERE uid = $1").bind(uid).execute(self.pool()).await?;
        Ok(result.rows_affected() == 1)
    }
}

fn dashboard_row(row: &sqlx::any::AnyRow) -> Result<DashboardRow, StoreError> {
    Ok(DashboardRow {
        uid: row.try_get("uid")?,
        title: row.try_get("title")?,
        tags: row.try_get("tags")?,
        spec: row.try_get("spec")?,
        version: row.try_get("version")?,
        created_at_millis: row.try_get("created_at")?,
        updated_at_millis: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}
