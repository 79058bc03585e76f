//! Agents: the last heartbeat of each host.

use sqlx::Row;

use super::{Database, StoreError, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub host: String,
    pub first_seen_millis: i64,
    pub last_seen_millis: i64,
    /// JSON of the last heartbeat.
    pub report: String,
}

impl Database {
    /// Registers the agent of `host` on its first heartbeat and records every later one.
    pub async fn record_heartbeat(&self, host: &str, report: &str) -> Result<AgentRow, StoreError> {
        let now = now_millis();
        let row = sqlx::query(
            "INSERT INTO agents (host, first_seen, last_seen, report) VALUES ($1, $2, $2, $3) \
             ON CONFLICT (host) DO UPDATE SET last_seen = excluded.last_seen, report = excluded.report \
             RETURNING host, first_seen, last_seen, report",
        )
        .bind(host)
        .bind(now)
        .bind(report)
        .fetch_one(self.pool())
        .await?;
        agent_row(&row)
    }

    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query("SELECT host, first_seen, last_seen, report FROM agents ORDER BY host")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(agent_row).collect()
    }
}

fn agent_row(row: &sqlx::any::AnyRow) -> Result<AgentRow, StoreError> {
    Ok(AgentRow {
        host: row.try_get("host")?,
        first_seen_millis: row.try_get("first_seen")?,
        last_seen_millis: row.try_get("last_seen")?,
        report: row.try_get("report")?,
    })
}
