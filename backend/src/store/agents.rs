//! Agents: the last heartbeat of each host, and the caller its host name is bound to.

use sqlx::Row;

use super::{Database, StoreError, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentRow {
    pub host: String,
    pub first_seen_millis: i64,
    pub last_seen_millis: i64,
    /// JSON of the last heartbeat.
    pub report: String,
    /// The caller that registered the host (`token:<id>`, `user:<id>`); empty for agents
    /// registered before hosts were bound.
    pub registered_by: String,
}

/// What a heartbeat did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heartbeat {
    /// The host was new and is now bound to the caller.
    Registered(AgentRow),
    Recorded(AgentRow),
    /// The host is bound to another caller; nothing was written.
    BoundElsewhere(AgentRow),
}

const COLUMNS: &str = "host, first_seen, last_seen, report, registered_by";

impl Database {
    /// Registers the agent of `host` on its first heartbeat (bound to `caller`) and records
    /// every later one from the same caller; `take_over` also lets `caller` take a host bound
    /// to another caller (whose token was revoked, say).
    pub async fn record_heartbeat(
        &self,
        host: &str,
        report: &str,
        caller: &str,
        take_over: impl AsyncFnOnce(&str) -> bool,
    ) -> Result<Heartbeat, StoreError> {
        let now = now_millis();
        let inserted = sqlx::query(&format!(
            "INSERT INTO agents ({COLUMNS}) VALUES ($1, $2, $2, $3, $4) ON CONFLICT (host) DO NOTHING RETURNING {COLUMNS}"
        ))
        .bind(host)
        .bind(now)
        .bind(report)
        .bind(caller)
        .fetch_optional(self.pool())
        .await?;
        if let Some(row) = inserted {
            return Ok(Heartbeat::Registered(agent_row(&row)?));
        }
        let existing = sqlx::query(&format!("SELECT {COLUMNS} FROM agents WHERE host = $1"))
            .bind(host)
            .fetch_one(self.pool())
            .await
            .map_err(StoreError::Query)
            .and_then(|row| agent_row(&row))?;
        let owner = existing.registered_by.clone();
        if !owner.is_empty() && owner != caller && !take_over(&owner).await {
            return Ok(Heartbeat::BoundElsewhere(existing));
        }
        // Only if the binding is still the one just read.
        let updated = sqlx::query(&format!(
            "UPDATE agents SET last_seen = $1, report = $2, registered_by = $3 \
             WHERE host = $4 AND registered_by = $5 RETURNING {COLUMNS}"
        ))
        .bind(now)
        .bind(report)
        .bind(caller)
        .bind(host)
        .bind(&owner)
        .fetch_optional(self.pool())
        .await?;
        match updated {
            Some(row) => Ok(Heartbeat::Recorded(agent_row(&row)?)),
            None => Ok(Heartbeat::BoundElsewhere(existing)),
        }
    }

    pub async fn agent(&self, host: &str) -> Result<Option<AgentRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM agents WHERE host = $1"))
            .bind(host)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(agent_row).transpose()
    }

    pub async fn agents(&self) -> Result<Vec<AgentRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM agents ORDER BY host")).fetch_all(self.pool()).await?;
        rows.iter().map(agent_row).collect()
    }
}

fn agent_row(row: &sqlx::any::AnyRow) -> Result<AgentRow, StoreError> {
    Ok(AgentRow {
        host: row.try_get("host")?,
        first_seen_millis: row.try_get("first_seen")?,
        last_seen_millis: row.try_get("last_seen")?,
        report: row.try_get("report")?,
        registered_by: row.try_get("registered_by")?,
    })
}
