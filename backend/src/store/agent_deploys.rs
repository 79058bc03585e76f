//! Deploy orders of the `agent` rollout provider: one row per host of a rollout, with its
//! batch. An order moves `waiting` → `pending` (its batch released) → `running` (its agent
//! took it) → `succeeded` | `failed` | `refused`, or to `cancelled` before it runs; every move
//! is a conditional `UPDATE ... WHERE state IN (...)`, so an agent's report and an abort
//! cannot both win.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Database, StoreError, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOrderRow {
    pub id: i64,
    pub rollout_id: i64,
    pub host: String,
    pub batch: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    pub state: String,
    pub exit_code: Option<i64>,
    pub reason: String,
    pub output: String,
    pub created_at_millis: i64,
    pub released_at_millis: Option<i64>,
    pub started_at_millis: Option<i64>,
    pub finished_at_millis: Option<i64>,
}

/// A new order: its host and batch (batch 0 is released at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeployOrder {
    pub host: String,
    pub batch: i64,
}

/// What an agent's report writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployOrderEnd {
    pub state: &'static str,
    pub exit_code: Option<i64>,
    pub reason: String,
    pub output: String,
}

const COLUMNS: &str = "id, rollout_id, host, batch, service, environment, version, state, exit_code, reason, output, \
     created_at, released_at, started_at, finished_at";

impl Database {
    /// Inserts a rollout's orders in one transaction: batch 0 `pending`, the others `waiting`.
    pub async fn insert_deploy_orders(
        &self,
        rollout_id: i64,
        service: &str,
        environment: &str,
        version: &str,
        orders: &[NewDeployOrder],
    ) -> Result<(), StoreError> {
        let now = now_millis();
        let mut transaction = self.pool().begin().await?;
        for order in orders {
            let released = order.batch == 0;
            sqlx::query(
                "INSERT INTO agent_deploys (rollout_id, host, batch, service, environment, version, state, \
                 created_at, released_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(rollout_id)
            .bind(&order.host)
            .bind(order.batch)
            .bind(service)
            .bind(environment)
            .bind(version)
            .bind(if released { "pending" } else { "waiting" })
            .bind(now)
            .bind(released.then_some(now))
            .execute(&mut *transaction)
            .await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    /// A rollout's orders by batch and host.
    pub async fn deploy_orders(&self, rollout_id: i64) -> Result<Vec<DeployOrderRow>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {COLUMNS} FROM agent_deploys WHERE rollout_id = $1 ORDER BY batch, id"))
                .bind(rollout_id)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(order_row).collect()
    }

    pub async fn deploy_order(&self, id: i64) -> Result<Option<DeployOrderRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM agent_deploys WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// The orders of `host` that its agent has to run or finish, oldest first.
    pub async fn open_deploy_orders(&self, host: &str, limit: i64) -> Result<Vec<DeployOrderRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM agent_deploys WHERE host = $1 AND state IN ('pending', 'running') ORDER BY id LIMIT $2"
        ))
        .bind(host)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(order_row).collect()
    }

    /// Releases the lowest waiting batch of a rollout; how many orders it holds (0: none left).
    pub async fn release_next_batch(&self, rollout_id: i64) -> Result<u64, StoreError> {
        let released = sqlx::query(
            "UPDATE agent_deploys SET state = 'pending', released_at = $1 WHERE rollout_id = $2 AND state = 'waiting' \
             AND batch = (SELECT MIN(batch) FROM agent_deploys WHERE rollout_id = $2 AND state = 'waiting')",
        )
        .bind(now_millis())
        .bind(rollout_id)
        .execute(self.pool())
        .await?;
        Ok(released.rows_affected())
    }

    /// An agent took an order (`pending`, or `running` again after the agent restarted);
    /// `false` when it is in another state.
    pub async fn start_deploy_order(&self, id: i64) -> Result<bool, StoreError> {
        let started = sqlx::query(
            "UPDATE agent_deploys SET state = 'running', started_at = COALESCE(started_at, $1) \
             WHERE id = $2 AND state IN ('pending', 'running')",
        )
        .bind(now_millis())
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(started.rows_affected() == 1)
    }

    /// The end of an order that was `pending` or `running`; `false` when it was in another state.
    pub async fn finish_deploy_order(&self, id: i64, end: &DeployOrderEnd) -> Result<bool, StoreError> {
        let now = now_millis();
        let finished = sqlx::query(
            "UPDATE agent_deploys SET state = $1, exit_code = $2, reason = $3, output = $4, finished_at = $5 \
             WHERE id = $6 AND state IN ('pending', 'running')",
        )
        .bind(end.state)
        .bind(end.exit_code)
        .bind(&end.reason)
        .bind(&end.output)
        .bind(now)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(finished.rows_affected() == 1)
    }

    /// Cancels the orders of a rollout that no agent took (`waiting`, `pending`) with `reason`;
    /// those `running` finish. How many were cancelled.
    pub async fn cancel_deploy_orders(&self, rollout_id: i64, reason: &str) -> Result<u64, StoreError> {
        let cancelled = sqlx::query(
            "UPDATE agent_deploys SET state = 'cancelled', reason = $1, finished_at = $2 \
             WHERE rollout_id = $3 AND state IN ('waiting', 'pending')",
        )
        .bind(reason)
        .bind(now_millis())
        .bind(rollout_id)
        .execute(self.pool())
        .await?;
        Ok(cancelled.rows_affected())
    }
}

fn order_row(row: &AnyRow) -> Result<DeployOrderRow, StoreError> {
    Ok(DeployOrderRow {
        id: row.try_get("id")?,
        rollout_id: row.try_get("rollout_id")?,
        host: row.try_get("host")?,
        batch: row.try_get("batch")?,
        service: row.try_get("service")?,
        environment: row.try_get("environment")?,
        version: row.try_get("version")?,
        state: row.try_get("state")?,
        exit_code: row.try_get("exit_code")?,
        reason: row.try_get("reason")?,
        output: row.try_get("output")?,
        created_at_millis: row.try_get("created_at")?,
        released_at_millis: row.try_get("released_at")?,
        started_at_millis: row.try_get("started_at")?,
        finished_at_millis: row.try_get("finished_at")?,
    })
}
