//! The audit log: appended to, never changed (triggers in both dialects refuse `UPDATE` and
//! `DELETE`).

use sqlx::Row;

use super::{Database, StoreError, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRow {
    pub id: i64,
    pub at_millis: i64,
    pub actor: String,
    pub source_ip: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
}

pub struct NewAuditEvent<'a> {
    pub actor: &'a str,
    pub source_ip: &'a str,
    pub action: &'a str,
    pub target: &'a str,
    pub outcome: &'a str,
    pub detail: &'a str,
}

#[derive(Debug, Default)]
pub struct AuditFilter<'a> {
    pub actor: Option<&'a str>,
    /// An exact action, or a prefix when it ends with `.`.
    pub action: Option<&'a str>,
    pub outcome: Option<&'a str>,
    pub start_millis: Option<i64>,
    pub end_millis: Option<i64>,
    pub before_id: Option<i64>,
    pub limit: i64,
}

impl Database {
    pub async fn append_audit(&self, event: NewAuditEvent<'_>) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO audit_events (at, actor, source_ip, action, target, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(now_millis())
        .bind(event.actor)
        .bind(event.source_ip)
        .bind(event.action)
        .bind(event.target)
        .bind(event.outcome)
        .bind(event.detail)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Newest first.
    pub async fn audit_events(&self, filter: &AuditFilter<'_>) -> Result<Vec<AuditRow>, StoreError> {
        let action_prefix = filter.action.filter(|action| action.ends_with('.')).map(|action| format!("{action}%"));
        let action_exact = filter.action.filter(|action| !action.ends_with('.'));
        let rows = sqlx::query(
            "SELECT id, at, actor, source_ip, action, target, outcome, detail FROM audit_events \
             WHERE ($1 IS NULL OR actor = $1) AND ($2 IS NULL OR action = $2) AND ($3 IS NULL OR action LIKE $3) \
             AND ($4 IS NULL OR outcome = $4) AND ($5 IS NULL OR at >= $5) AND ($6 IS NULL OR at < $6) \
             AND ($7 IS NULL OR id < $7) ORDER BY id DESC LIMIT $8",
        )
        .bind(filter.actor)
        .bind(action_exact)
        .bind(action_prefix)
        .bind(filter.outcome)
        .bind(filter.start_millis)
        .bind(filter.end_millis)
        .bind(filter.before_id)
        .bind(filter.limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(AuditRow {
                    id: row.try_get("id")?,
                    at_millis: row.try_get("at")?,
                    actor: row.try_get("actor")?,
                    source_ip: row.try_get("source_ip")?,
                    action: row.try_get("action")?,
                    target: row.try_get("target")?,
                    outcome: row.try_get("outcome")?,
                    detail: row.try_get("detail")?,
                })
            })
            .collect()
    }
}
