//! Services, their environments and gates, rollouts and their timelines. A state change of a
//! rollout is one conditional `UPDATE` (`WHERE state IN (...)`) written with its timeline
//! entry in one transaction, so that the runner, an abort and a callback racing on one rollout
//! cannot both win.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Database, StoreError, is_unique_violation, now_millis};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceRow {
    pub name: String,
    pub owner: String,
    pub updated_at_millis: i64,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvironmentRow {
    pub service: String,
    pub name: String,
    pub current_version: Option<String>,
    pub previous_good_version: Option<String>,
    pub provider: String,
    /// A JSON object.
    pub provider_params: String,
    pub integration_id: Option<i64>,
    pub approval_required: bool,
    /// A JSON array of freeze windows.
    pub freeze_windows: String,
}

const ENVIRONMENT_COLUMNS: &str = "service, name, current_version, previous_good_version, provider, provider_params, \
     integration_id, approval_required, freeze_windows";

#[derive(Debug, Clone, PartialEq)]
pub struct GateRow {
    pub id: i64,
    pub name: String,
    pub kind: String,
    pub query: String,
    pub comparator: String,
    pub threshold: f64,
    pub interval_seconds: i64,
    pub window_seconds: i64,
    pub failures_allowed: i64,
    pub dry_run: bool,
}

const GATE_COLUMNS: &str =
    "id, name, kind, query, comparator, threshold, interval_seconds, window_seconds, failures_allowed, dry_run";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutRow {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub kind: String,
    pub version: String,
    pub from_version: Option<String>,
    pub state: String,
    pub requested_by: String,
    pub requester_key: String,
    pub approved_by: Option<String>,
    pub trigger_started_at_millis: Option<i64>,
    pub run_id: Option<String>,
    pub run_url: Option<String>,
    pub analysis_started_at_millis: Option<i64>,
    /// The gates' evaluation state as JSON.
    pub analysis: String,
    pub error: Option<String>,
    pub parent_id: Option<i64>,
    pub created_at_millis: i64,
    pub updated_at_millis: i64,
}

const ROLLOUT_COLUMNS: &str = "id, service, environment, kind, version, from_version, state, requested_by, \
     requester_key, approved_by, trigger_started_at, run_id, run_url, analysis_started_at, analysis, error, parent_id, \
     created_at, updated_at";

/// The states a rollout is over in (the guard index of the migration lists them too).
pub const TERMINAL_STATES: [&str; 4] = ["succeeded", "failed", "rolled_back", "aborted"];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutEventRow {
    pub at_millis: i64,
    pub kind: String,
    pub actor: String,
    pub detail: String,
}

/// A new rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRollout {
    pub service: String,
    pub environment: String,
    pub kind: &'static str,
    pub version: String,
    pub from_version: Option<String>,
    pub state: &'static str,
    pub requested_by: String,
    pub requester_key: String,
    pub parent_id: Option<i64>,
}

/// What a state change sets besides the state; `None` keeps the stored value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutChange {
    pub approved_by: Option<String>,
    pub trigger_started_at_millis: Option<i64>,
    pub run_id: Option<String>,
    pub run_url: Option<String>,
    pub analysis_started_at_millis: Option<i64>,
    pub analysis: Option<String>,
    pub error: Option<String>,
}

/// Which rollouts a page lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutFilter<'a> {
    pub service: Option<&'a str>,
    pub environment: Option<&'a str>,
    pub state: Option<&'a str>,
    /// Only the rollouts that are not over.
    pub active: bool,
}

/// The versions an environment moves to when a rollout of it succeeds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versions {
    pub current: Option<String>,
    pub previous_good: Option<String>,
}

impl Database {
    /// Inserts the services that are missing (the configuration's `[[services]]`).
    pub async fn seed_services(&self, names: &[String], by: &str) -> Result<(), StoreError> {
        let now = now_millis();
        for name in names {
            sqlx::query(
                "INSERT INTO services (name, owner, created_at, updated_at, updated_by) VALUES ($1, '', $2, $2, $3) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(now)
            .bind(by)
            .execute(self.pool())
            .await?;
        }
        Ok(())
    }

    /// Creates (`create`) or replaces a service with its environments and their gates, in one
    /// transaction. An environment kept by name keeps its versions. `false` when an update
    /// finds no service of that name.
    pub async fn save_service(
        &self,
        service: &ServiceRow,
        environments: &[(EnvironmentRow, Vec<GateRow>)],
        create: bool,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let now = now_millis();
        if create {
            sqlx::query(
                "INSERT INTO services (name, owner, created_at, updated_at, updated_by) VALUES ($1, $2, $3, $3, $4)",
            )
            .bind(&service.name)
            .bind(&service.owner)
            .bind(now)
            .bind(&service.updated_by)
            .execute(&mut *transaction)
            .await
            .map_err(|error| conflict(error, &format!("a service named {:?}", service.name)))?;
        } else {
            let updated =
                sqlx::query("UPDATE services SET owner = $1, updated_at = $2, updated_by = $3 WHERE name = $4")
                    .bind(&service.owner)
                    .bind(now)
                    .bind(&service.updated_by)
                    .bind(&service.name)
                    .execute(&mut *transaction)
                    .await?;
            if updated.rows_affected() == 0 {
                return Ok(false);
            }
        }
        sqlx::query("DELETE FROM rollout_gates WHERE service = $1")
            .bind(&service.name)
            .execute(&mut *transaction)
            .await?;
        let stored: Vec<String> = sqlx::query("SELECT name FROM service_environments WHERE service = $1")
            .bind(&service.name)
            .fetch_all(&mut *transaction)
            .await?
            .iter()
            .map(|row| row.try_get("name"))
            .collect::<Result<_, _>>()?;
        for name in stored.iter().filter(|name| !environments.iter().any(|(environment, _)| &environment.name == *name))
        {
            sqlx::query("DELETE FROM service_environments WHERE service = $1 AND name = $2")
                .bind(&service.name)
                .bind(name)
                .execute(&mut *transaction)
                .await?;
        }
        for (environment, gates) in environments {
            write_environment(&mut transaction, environment).await?;
            for gate in gates {
                write_gate(&mut transaction, &service.name, &environment.name, gate).await?;
            }
        }
        transaction.commit().await?;
        Ok(true)
    }

    pub async fn services(&self) -> Result<Vec<ServiceRow>, StoreError> {
        let rows = sqlx::query("SELECT name, owner, updated_at, updated_by FROM services ORDER BY name")
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(service_row).collect()
    }

    pub async fn service(&self, name: &str) -> Result<Option<ServiceRow>, StoreError> {
        let row = sqlx::query("SELECT name, owner, updated_at, updated_by FROM services WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(service_row).transpose()
    }

    pub async fn environments(&self, service: &str) -> Result<Vec<EnvironmentRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM service_environments WHERE service = $1 ORDER BY name"
        ))
        .bind(service)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(environment_row).collect()
    }

    pub async fn environment(&self, service: &str, name: &str) -> Result<Option<EnvironmentRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ENVIRONMENT_COLUMNS} FROM service_environments WHERE service = $1 AND name = $2"
        ))
        .bind(service)
        .bind(name)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(environment_row).transpose()
    }

    pub async fn gates(&self, service: &str, environment: &str) -> Result<Vec<GateRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {GATE_COLUMNS} FROM rollout_gates WHERE service = $1 AND environment = $2 ORDER BY id"
        ))
        .bind(service)
        .bind(environment)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(gate_row).collect()
    }

    /// Inserts a rollout with its first timeline entries. A second rollout of a service and
    /// environment while one is not over is a `Conflict`.
    pub async fn insert_rollout(
        &self,
        rollout: &NewRollout,
        events: &[RolloutEventRow],
    ) -> Result<RolloutRow, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let row = insert_rollout(&mut transaction, rollout).await?;
        for event in events {
            insert_event(&mut transaction, row.id, event).await?;
        }
        transaction.commit().await?;
        Ok(row)
    }

    pub async fn rollout(&self, id: i64) -> Result<Option<RolloutRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rollout_row).transpose()
    }

    /// The rollout of a service and environment that is not over, if any.
    pub async fn active_rollout(&self, service: &str, environment: &str) -> Result<Option<RolloutRow>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE service = $1 AND environment = $2 \
             AND state NOT IN ('succeeded', 'failed', 'rolled_back', 'aborted')"
        ))
        .bind(service)
        .bind(environment)
        .fetch_optional(self.pool())
        .await?;
        row.as_ref().map(rollout_row).transpose()
    }

    /// Every rollout in one of `states`, oldest first.
    pub async fn rollouts_in(&self, states: &[&str]) -> Result<Vec<RolloutRow>, StoreError> {
        let placeholders: Vec<String> = (1..=states.len()).map(|at| format!("${at}")).collect();
        let sql =
            format!("SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE state IN ({}) ORDER BY id", placeholders.join(", "));
        let mut query = sqlx::query(&sql);
        for state in states {
            query = query.bind(*state);
        }
        query.fetch_all(self.pool()).await?.iter().map(rollout_row).collect()
    }

    /// The newest `limit` rollouts that overlap `[start, end]` (Unix milliseconds): begun by
    /// `end`, and not over before `start` (an ended rollout's end is its last change).
    pub async fn rollouts_overlapping(&self, start: i64, end: i64, limit: i64) -> Result<Vec<RolloutRow>, StoreError> {
        let sql = format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts WHERE created_at <= $1 \
             AND (updated_at >= $2 OR state NOT IN ('succeeded', 'failed', 'rolled_back', 'aborted')) \
             ORDER BY id DESC LIMIT $3"
        );
        let rows = sqlx::query(&sql).bind(end).bind(start).bind(limit).fetch_all(self.pool()).await?;
        rows.iter().map(rollout_row).collect()
    }

    /// A page of rollouts, newest first, and how many match in all.
    pub async fn rollouts_page(
        &self,
        filter: &RolloutFilter<'_>,
        limit: i64,
        offset: i64,
    ) -> Result<(Vec<RolloutRow>, i64), StoreError> {
        let mut conditions = Vec::new();
        let values: Vec<&str> = [filter.service, filter.environment, filter.state].into_iter().flatten().collect();
        for (column, value) in
            [("service", filter.service), ("environment", filter.environment), ("state", filter.state)]
        {
            if value.is_some() {
                conditions.push(format!("{column} = ${}", conditions.len() + 1));
            }
        }
        if filter.active {
            conditions.push("state NOT IN ('succeeded', 'failed', 'rolled_back', 'aborted')".to_owned());
        }
        let condition =
            if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
        let next = values.len();
        let sql = format!(
            "SELECT {ROLLOUT_COLUMNS} FROM rollouts{condition} ORDER BY id DESC LIMIT ${} OFFSET ${}",
            next + 1,
            next + 2
        );
        let mut query = sqlx::query(&sql);
        for value in &values {
            query = query.bind(*value);
        }
        let rows = query.bind(limit).bind(offset).fetch_all(self.pool()).await?;
        let count_sql = format!("SELECT COUNT(*) AS n FROM rollouts{condition}");
        let mut count = sqlx::query(&count_sql);
        for value in &values {
            count = count.bind(*value);
        }
        let total: i64 = count.fetch_one(self.pool()).await?.try_get("n")?;
        Ok((rows.iter().map(rollout_row).collect::<Result<_, _>>()?, total))
    }

    /// A rollout's timeline, oldest first.
    pub async fn rollout_events(&self, id: i64, limit: i64) -> Result<Vec<RolloutEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, actor, detail FROM rollout_events WHERE rollout_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut events: Vec<RolloutEventRow> = rows.iter().map(event_row).collect::<Result<_, _>>()?;
        events.reverse();
        Ok(events)
    }

    pub async fn append_rollout_event(&self, id: i64, event: &RolloutEventRow) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        insert_event(&mut transaction, id, event).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// Moves a rollout that is in one of `from` to `to`, with `change` and a timeline entry.
    /// `false` when it was in another state (someone else moved it first).
    pub async fn change_rollout(
        &self,
        id: i64,
        from: &[&str],
        to: &str,
        change: &RolloutChange,
        event: Option<&RolloutEventRow>,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let changed = update_rollout(&mut transaction, id, from, to, change).await?;
        if changed && let Some(event) = event {
            insert_event(&mut transaction, id, event).await?;
        }
        transaction.commit().await?;
        Ok(changed)
    }

    /// A rollout that succeeded, and its environment's new versions, in one transaction.
    pub async fn succeed_rollout(
        &self,
        rollout: &RolloutRow,
        from: &str,
        versions: &Versions,
        event: &RolloutEventRow,
    ) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await?;
        let changed =
            update_rollout(&mut transaction, rollout.id, &[from], "succeeded", &RolloutChange::default()).await?;
        if changed {
            sqlx::query(
                "UPDATE service_environments SET current_version = $1, previous_good_version = $2 \
                 WHERE service = $3 AND name = $4",
            )
            .bind(&versions.current)
            .bind(&versions.previous_good)
            .bind(&rollout.service)
            .bind(&rollout.environment)
            .execute(&mut *transaction)
            .await?;
            insert_event(&mut transaction, rollout.id, event).await?;
        }
        transaction.commit().await?;
        Ok(changed)
    }

    /// A rollout whose gate failed marked `rolled_back`, and the rollback that undoes it
    /// created, in one transaction (the guard index sees the first over before the second).
    pub async fn roll_back(
        &self,
        rollout: &RolloutRow,
        change: &RolloutChange,
        event: &RolloutEventRow,
        rollback: &NewRollout,
        rollback_events: &[RolloutEventRow],
    ) -> Result<Option<RolloutRow>, StoreError> {
        let mut transaction = self.pool().begin().await?;
        if !update_rollout(&mut transaction, rollout.id, &[&rollout.state], "rolled_back", change).await? {
            return Ok(None);
        }
        insert_event(&mut transaction, rollout.id, event).await?;
        let created = insert_rollout(&mut transaction, rollback).await?;
        for event in rollback_events {
            insert_event(&mut transaction, created.id, event).await?;
        }
        transaction.commit().await?;
        Ok(Some(created))
    }
}

async fn write_environment(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    environment: &EnvironmentRow,
) -> Result<(), StoreError> {
    sqlx::query(&format!(
        "INSERT INTO service_environments ({ENVIRONMENT_COLUMNS}) VALUES ($1, $2, $3, NULL, $4, $5, $6, $7, $8) \
         ON CONFLICT (service, name) DO UPDATE SET provider = excluded.provider, \
         provider_params = excluded.provider_params, integration_id = excluded.integration_id, \
         approval_required = excluded.approval_required, freeze_windows = excluded.freeze_windows"
    ))
    .bind(&environment.service)
    .bind(&environment.name)
    .bind(&environment.current_version)
    .bind(&environment.provider)
    .bind(&environment.provider_params)
    .bind(environment.integration_id)
    .bind(i64::from(environment.approval_required))
    .bind(&environment.freeze_windows)
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn write_gate(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    service: &str,
    environment: &str,
    gate: &GateRow,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO rollout_gates (service, environment, name, kind, query, comparator, threshold, interval_seconds, \
         window_seconds, failures_allowed, dry_run) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(service)
    .bind(environment)
    .bind(&gate.name)
    .bind(&gate.kind)
    .bind(&gate.query)
    .bind(&gate.comparator)
    .bind(gate.threshold)
    .bind(gate.interval_seconds)
    .bind(gate.window_seconds)
    .bind(gate.failures_allowed)
    .bind(i64::from(gate.dry_run))
    .execute(&mut **transaction)
    .await?;
    Ok(())
}

async fn insert_rollout(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    rollout: &NewRollout,
) -> Result<RolloutRow, StoreError> {
    let row = sqlx::query(&format!(
        "INSERT INTO rollouts (service, environment, kind, version, from_version, state, requested_by, requester_key, \
         parent_id, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         RETURNING {ROLLOUT_COLUMNS}"
    ))
    .bind(&rollout.service)
    .bind(&rollout.environment)
    .bind(rollout.kind)
    .bind(&rollout.version)
    .bind(&rollout.from_version)
    .bind(rollout.state)
    .bind(&rollout.requested_by)
    .bind(&rollout.requester_key)
    .bind(rollout.parent_id)
    .bind(now_millis())
    .fetch_one(&mut **transaction)
    .await
    .map_err(|error| {
        conflict(error, &format!("a rollout of {}/{} in progress", rollout.service, rollout.environment))
    })?;
    rollout_row(&row)
}

async fn update_rollout(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    from: &[&str],
    to: &str,
    change: &RolloutChange,
) -> Result<bool, StoreError> {
    let placeholders: Vec<String> = (0..from.len()).map(|at| format!("${}", at + 11)).collect();
    let sql = format!(
        "UPDATE rollouts SET state = $1, approved_by = COALESCE($2, approved_by), \
         trigger_started_at = COALESCE($3, trigger_started_at), run_id = COALESCE($4, run_id), \
         run_url = COALESCE($5, run_url), analysis_started_at = COALESCE($6, analysis_started_at), \
         analysis = COALESCE($7, analysis), error = COALESCE($8, error), updated_at = $9 \
         WHERE id = $10 AND state IN ({})",
        placeholders.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(to)
        .bind(&change.approved_by)
        .bind(change.trigger_started_at_millis)
        .bind(&change.run_id)
        .bind(&change.run_url)
        .bind(change.analysis_started_at_millis)
        .bind(&change.analysis)
        .bind(&change.error)
        .bind(now_millis())
        .bind(id);
    for state in from {
        query = query.bind(*state);
    }
    Ok(query.execute(&mut **transaction).await?.rows_affected() == 1)
}

async fn insert_event(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    id: i64,
    event: &RolloutEventRow,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO rollout_events (rollout_id, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(event.at_millis)
        .bind(&event.kind)
        .bind(&event.actor)
        .bind(&event.detail)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

fn conflict(error: sqlx::Error, what: &str) -> StoreError {
    if is_unique_violation(&error) { StoreError::Conflict(what.to_owned()) } else { StoreError::Query(error) }
}

fn service_row(row: &AnyRow) -> Result<ServiceRow, StoreError> {
    Ok(ServiceRow {
        name: row.try_get("name")?,
        owner: row.try_get("owner")?,
        updated_at_millis: row.try_get("updated_at")?,
        updated_by: row.try_get("updated_by")?,
    })
}

fn environment_row(row: &AnyRow) -> Result<EnvironmentRow, StoreError> {
    Ok(EnvironmentRow {
        service: row.try_get("service")?,
        name: row.try_get("name")?,
        current_version: row.try_get("current_version")?,
        previous_good_version: row.try_get("previous_good_version")?,
        provider: row.try_get("provider")?,
        provider_params: row.try_get("provider_params")?,
        integration_id: row.try_get("integration_id")?,
        approval_required: row.try_get::<i64, _>("approval_required")? != 0,
        freeze_windows: row.try_get("freeze_windows")?,
    })
}

fn gate_row(row: &AnyRow) -> Result<GateRow, StoreError> {
    Ok(GateRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        kind: row.try_get("kind")?,
        query: row.try_get("query")?,
        comparator: row.try_get("comparator")?,
        threshold: row.try_get("threshold")?,
        interval_seconds: row.try_get("interval_seconds")?,
        window_seconds: row.try_get("window_seconds")?,
        failures_allowed: row.try_get("failures_allowed")?,
        dry_run: row.try_get::<i64, _>("dry_run")? != 0,
    })
}

fn rollout_row(row: &AnyRow) -> Result<RolloutRow, StoreError> {
    Ok(RolloutRow {
        id: row.try_get("id")?,
        service: row.try_get("service")?,
        environment: row.try_get("environment")?,
        kind: row.try_get("kind")?,
        version: row.try_get("version")?,
        from_version: row.try_get("from_version")?,
        state: row.try_get("state")?,
        requested_by: row.try_get("requested_by")?,
        requester_key: row.try_get("requester_key")?,
        approved_by: row.try_get("approved_by")?,
        trigger_started_at_millis: row.try_get("trigger_started_at")?,
        run_id: row.try_get("run_id")?,
        run_url: row.try_get("run_url")?,
        analysis_started_at_millis: row.try_get("analysis_started_at")?,
        analysis: row.try_get("analysis")?,
        error: row.try_get("error")?,
        parent_id: row.try_get("parent_id")?,
        created_at_millis: row.try_get("created_at")?,
        updated_at_millis: row.try_get("updated_at")?,
    })
}

fn event_row(row: &AnyRow) -> Result<RolloutEventRow, StoreError> {
    Ok(RolloutEventRow {
        at_millis: row.try_get("at")?,
        kind: row.try_get("kind")?,
        actor: row.try_get("actor")?,
        detail: row.try_get("detail")?,
    })
}
