//! Alert rules, instances, their timelines, the notification outbox and leases.

use sqlx::Row;
use sqlx::any::AnyRow;

use super::{Database, StoreError, is_unique_violation, now_millis};

#[derive(Debug, Clone, PartialEq)]
pub struct AlertRuleRow {
    pub id: i64,
    pub name: String,
    /// The `AlertRuleSpec` as JSON.
    pub spec: String,
    pub updated_by: String,
    pub updated_at_millis: i64,
    pub last_evaluation_millis: Option<i64>,
    pub last_error: Option<String>,
    pub last_duration_ms: Option<i64>,
}

const RULE_COLUMNS: &str = "id, name, spec, updated_by, updated_at, last_evaluation, last_error, last_duration_ms";

/// One alert instance as stored; labels and annotations are JSON objects.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertInstanceRow {
    pub fingerprint: String,
    /// 0 for alerts sent from outside.
    pub rule_id: i64,
    /// `rule`, `prometheus` or `alertmanager`.
    pub source: String,
    pub ends_at_millis: Option<i64>,
    pub labels: String,
    pub annotations: String,
    pub state: String,
    pub value: Option<f64>,
    pub active_since_millis: i64,
    pub last_active_millis: i64,
    pub firing_since_millis: Option<i64>,
    pub resolved_at_millis: Option<i64>,
    pub episode: i64,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at_millis: Option<i64>,
    pub acknowledgement_note: Option<String>,
    pub repeats: i64,
    pub escalated: bool,
    pub notified: bool,
}

const INSTANCE_COLUMNS: &str = "fingerprint, rule_id, source, ends_at, labels, annotations, state, value, active_since, \
     last_active, firing_since, resolved_at, episode, acknowledged_by, acknowledged_at, acknowledgement_note, repeats, \
     escalated, notified";

/// A line of an alert's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertEventRow {
    pub at_millis: i64,
    pub kind: String,
    pub actor: String,
    pub detail: String,
}

/// A notification to write with the change that causes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    pub channel: String,
    pub event: &'static str,
    pub sequence: i64,
    /// The `Notification` as JSON.
    pub body: String,
    /// Empty when it is sent alone.
    pub group: DeliveryGroup,
}

/// The group a notification is sent with: empty key for none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryGroup {
    pub key: String,
    /// The group's labels as a JSON object.
    pub labels: String,
    /// How long the first notification of a group waits for others.
    pub wait_millis: i64,
    /// How long after one message of the group the next may go.
    pub interval_millis: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub id: i64,
    pub fingerprint: String,
    pub episode: i64,
    pub channel: String,
    pub event: String,
    pub body: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub created_at_millis: i64,
    pub sent_at_millis: Option<i64>,
    pub group_key: String,
    pub group_labels: String,
    pub group_interval_millis: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SilenceRow {
    pub id: String,
    /// JSON array of matchers.
    pub matchers: String,
    pub starts_at_millis: i64,
    pub ends_at_millis: i64,
    pub created_by: String,
    pub comment: String,
    pub updated_at_millis: i64,
}

const SILENCE_COLUMNS: &str = "id, matchers, starts_at, ends_at, created_by, comment, updated_at";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseRow {
    pub holder: String,
    pub token: i64,
    pub expires_at_millis: i64,
}

const DELIVERY_COLUMNS: &str = "id, fingerprint, episode, channel, event, body, status, attempts, last_error, \
     created_at, sent_at, group_key, group_labels, group_interval";

impl Database {
    pub async fn insert_alert_rule(&self, name: &str, spec: &str, by: &str) -> Result<AlertRuleRow, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO alert_rules (name, spec, updated_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $4) \
             RETURNING {RULE_COLUMNS}"
        ))
        .bind(name)
        .bind(spec)
        .bind(by)
        .bind(now_millis())
        .fetch_one(self.pool())
        .await
        .map_err(|error| rule_conflict(error, name))?;
        rule_row(&row)
    }

    pub async fn update_alert_rule(
        &self,
        id: i64,
        name: &str,
        spec: &str,
        by: &str,
    ) -> Result<Option<AlertRuleRow>, StoreError> {
        let row = sqlx::query(&format!(
            "UPDATE alert_rules SET name = $1, spec = $2, updated_by = $3, updated_at = $4 WHERE id = $5 \
             RETURNING {RULE_COLUMNS}"
        ))
        .bind(name)
        .bind(spec)
        .bind(by)
        .bind(now_millis())
        .bind(id)
        .fetch_optional(self.pool())
        .await
        .map_err(|error| rule_conflict(error, name))?;
        row.as_ref().map(rule_row).transpose()
    }

    /// Deletes a rule with its instances (their timelines and notifications stay, for history).
    pub async fn delete_alert_rule(&self, id: i64) -> Result<bool, StoreError> {
        let mut transaction = self.pool().begin().await?;
        sqlx::query("DELETE FROM alert_instances WHERE rule_id = $1").bind(id).execute(&mut *transaction).await?;
        let deleted = sqlx::query("DELETE FROM alert_rules WHERE id = $1").bind(id).execute(&mut *transaction).await?;
        transaction.commit().await?;
        Ok(deleted.rows_affected() == 1)
    }

    pub async fn alert_rule(&self, id: i64) -> Result<Option<AlertRuleRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(rule_row).transpose()
    }

    pub async fn alert_rules(&self) -> Result<Vec<AlertRuleRow>, StoreError> {
        let rows = sqlx::query(&format!("SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY name"))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(rule_row).collect()
    }

    pub async fn record_evaluation(
        &self,
        id: i64,
        at_millis: i64,
        error: Option<&str>,
        duration_ms: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_rules SET last_evaluation = $1, last_error = $2, last_duration_ms = $3 WHERE id = $4",
        )
        .bind(at_millis)
        .bind(error)
        .bind(duration_ms)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The instances of one rule, or of every rule.
    pub async fn alert_instances(&self, rule_id: Option<i64>) -> Result<Vec<AlertInstanceRow>, StoreError> {
        let rows = match rule_id {
            Some(rule_id) => {
                sqlx::query(&format!("SELECT {INSTANCE_COLUMNS} FROM alert_instances WHERE rule_id = $1"))
                    .bind(rule_id)
                    .fetch_all(self.pool())
                    .await?
            }
            None => {
                sqlx::query(&format!("SELECT {INSTANCE_COLUMNS} FROM alert_instances")).fetch_all(self.pool()).await?
            }
        };
        rows.iter().map(instance_row).collect()
    }

    /// The instances in `states` (of one rule when asked), firing first, then pending, resolved
    /// and inactive, the newest first in each; `limit` from `offset` when both are given.
    pub async fn alert_instances_ordered(
        &self,
        states: &[&str],
        rule_id: Option<i64>,
        page: Option<(i64, i64)>,
    ) -> Result<Vec<AlertInstanceRow>, StoreError> {
        Ok(self.alert_instances_counted(states, rule_id, page).await?.0)
    }

    /// The same, with how many instances match in all, counted by the same statement (so that
    /// the page and the count agree while alerts change).
    pub async fn alert_instances_counted(
        &self,
        states: &[&str],
        rule_id: Option<i64>,
        page: Option<(i64, i64)>,
    ) -> Result<(Vec<AlertInstanceRow>, Option<i64>), StoreError> {
        let mut sql =
            format!("SELECT {INSTANCE_COLUMNS}, COUNT(*) OVER () AS matching FROM alert_instances WHERE state IN (");
        for at in 0..states.len() {
            sql.push_str(&format!("{}${}", if at == 0 { "" } else { ", " }, at + 1));
        }
        sql.push(')');
        let mut next = states.len() + 1;
        if rule_id.is_some() {
            sql.push_str(&format!(" AND rule_id = ${next}"));
            next += 1;
        }
        sql.push_str(
            " ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 WHEN 'resolved' THEN 2 ELSE 3 END, \
             COALESCE(firing_since, active_since) DESC, fingerprint",
        );
        if page.is_some() {
            sql.push_str(&format!(" LIMIT ${next} OFFSET ${}", next + 1));
        }
        let mut query = sqlx::query(&sql);
        for state in states {
            query = query.bind(*state);
        }
        if let Some(rule_id) = rule_id {
            query = query.bind(rule_id);
        }
        if let Some((limit, offset)) = page {
            query = query.bind(limit).bind(offset);
        }
        let rows = query.fetch_all(self.pool()).await?;
        let matching = rows.first().map(|row| row.try_get::<i64, _>("matching")).transpose()?;
        Ok((rows.iter().map(instance_row).collect::<Result<_, _>>()?, matching))
    }

    /// How many instances are in `states` (of one rule when asked).
    pub async fn count_alert_instances(&self, states: &[&str], rule_id: Option<i64>) -> Result<i64, StoreError> {
        let mut sql = "SELECT COUNT(*) AS n FROM alert_instances WHERE state IN (".to_owned();
        for at in 0..states.len() {
            sql.push_str(&format!("{}${}", if at == 0 { "" } else { ", " }, at + 1));
        }
        sql.push(')');
        if rule_id.is_some() {
            sql.push_str(&format!(" AND rule_id = ${}", states.len() + 1));
        }
        let mut query = sqlx::query(&sql);
        for state in states {
            query = query.bind(*state);
        }
        if let Some(rule_id) = rule_id {
            query = query.bind(rule_id);
        }
        Ok(query.fetch_one(self.pool()).await?.try_get("n")?)
    }

    /// Firing, pending, and firing unacknowledged instances.
    pub async fn alert_counts(&self) -> Result<(i64, i64, i64), StoreError> {
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(CASE WHEN state = 'firing' THEN 1 ELSE 0 END), 0) AS firing, \
               COALESCE(SUM(CASE WHEN state = 'pending' THEN 1 ELSE 0 END), 0) AS pending, \
               COALESCE(SUM(CASE WHEN state = 'firing' AND acknowledged_by IS NULL THEN 1 ELSE 0 END), 0) AS unacked \
             FROM alert_instances WHERE state IN ('firing', 'pending')",
        )
        .fetch_one(self.pool())
        .await?;
        Ok((row.try_get("firing")?, row.try_get("pending")?, row.try_get("unacked")?))
    }

    /// The firing and resolved entries of every alert's timeline from `since`, oldest first, at
    /// most `limit`: the firing spans to draw on charts.
    pub async fn firing_events_since(
        &self,
        since_millis: i64,
        limit: i64,
    ) -> Result<Vec<(String, AlertEventRow)>, StoreError> {
        let rows = sqlx::query(
            "SELECT fingerprint, at, kind, actor, detail FROM alert_events \
             WHERE at >= $1 AND kind IN ('firing', 'resolved') ORDER BY at, id LIMIT $2",
        )
        .bind(since_millis)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|row| Ok((row.try_get("fingerprint")?, event_row(row)?))).collect()
    }

    pub async fn alert_instances_named(&self, fingerprints: &[String]) -> Result<Vec<AlertInstanceRow>, StoreError> {
        let mut found = Vec::with_capacity(fingerprints.len());
        for chunk in fingerprints.chunks(500) {
            let mut sql = format!("SELECT {INSTANCE_COLUMNS} FROM alert_instances WHERE fingerprint IN (");
            for at in 0..chunk.len() {
                sql.push_str(&format!("{}${}", if at == 0 { "" } else { ", " }, at + 1));
            }
            sql.push(')');
            let mut query = sqlx::query(&sql);
            for fingerprint in chunk {
                query = query.bind(fingerprint);
            }
            for row in query.fetch_all(self.pool()).await? {
                found.push(instance_row(&row)?);
            }
        }
        Ok(found)
    }

    pub async fn alert_instance(&self, fingerprint: &str) -> Result<Option<AlertInstanceRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {INSTANCE_COLUMNS} FROM alert_instances WHERE fingerprint = $1"))
            .bind(fingerprint)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(instance_row).transpose()
    }

    /// Writes an instance's state with the timeline entry and the notifications the change
    /// causes, in one transaction. A notification already written (the same alert, episode,
    /// channel, event and sequence) is not written again.
    pub async fn save_alert(
        &self,
        instance: &AlertInstanceRow,
        event: Option<&AlertEventRow>,
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        write_alert(&mut transaction, instance, event, deliveries).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// The same for many changes, in one transaction.
    pub async fn save_alerts(
        &self,
        changes: &[(AlertInstanceRow, Option<AlertEventRow>, Vec<NewDelivery>)],
    ) -> Result<(), StoreError> {
        if changes.is_empty() {
            return Ok(());
        }
        let mut transaction = self.pool().begin().await?;
        for (instance, event, deliveries) in changes {
            write_alert(&mut transaction, instance, event.as_ref(), deliveries).await?;
        }
        transaction.commit().await?;
        Ok(())
    }

    pub async fn append_alert_event(&self, fingerprint: &str, event: &AlertEventRow) -> Result<(), StoreError> {
        let mut transaction = self.pool().begin().await?;
        insert_event(&mut transaction, fingerprint, event).await?;
        transaction.commit().await?;
        Ok(())
    }

    /// An alert's timeline, oldest first, at most `limit` of the newest entries.
    pub async fn alert_events(&self, fingerprint: &str, limit: i64) -> Result<Vec<AlertEventRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, kind, actor, detail FROM alert_events WHERE fingerprint = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(fingerprint)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut events: Vec<AlertEventRow> = rows.iter().map(event_row).collect::<Result<_, _>>()?;
        events.reverse();
        Ok(events)
    }

    pub async fn alert_deliveries(&self, fingerprint: &str, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE fingerprint = $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(fingerprint)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        let mut deliveries: Vec<DeliveryRow> = rows.iter().map(delivery_row).collect::<Result<_, _>>()?;
        deliveries.reverse();
        Ok(deliveries)
    }

    /// Notifications waiting whose time has come, oldest first.
    pub async fn due_deliveries(&self, now_millis: i64, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries WHERE status = 'pending' AND next_attempt_at <= $1 \
             ORDER BY id LIMIT $2"
        ))
        .bind(now_millis)
        .bind(limit)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// Every waiting notification of one group of one channel, oldest first.
    pub async fn pending_group(&self, channel: &str, group_key: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM alert_deliveries \
             WHERE channel = $1 AND group_key = $2 AND status = 'pending' ORDER BY id"
        ))
        .bind(channel)
        .bind(group_key)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(delivery_row).collect()
    }

    /// When a message of this group last went to this channel.
    pub async fn group_last_sent(&self, channel: &str, group_key: &str) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "SELECT MAX(sent_at) AS last FROM alert_deliveries \
             WHERE channel = $1 AND group_key = $2 AND status = 'sent'",
        )
        .bind(channel)
        .bind(group_key)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<Option<i64>, _>("last")?)
    }

    /// Moves the waiting notifications of a group to `at` (the end of the group's interval).
    pub async fn postpone_group(&self, channel: &str, group_key: &str, at_millis: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET next_attempt_at = $3 \
             WHERE channel = $1 AND group_key = $2 AND status = 'pending' AND next_attempt_at < $3",
        )
        .bind(channel)
        .bind(group_key)
        .bind(at_millis)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// When the next waiting notification is due, if any waits.
    pub async fn next_delivery_due(&self) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query("SELECT MIN(next_attempt_at) AS due FROM alert_deliveries WHERE status = 'pending'")
            .fetch_one(self.pool())
            .await?;
        Ok(row.try_get::<Option<i64>, _>("due")?)
    }

    pub async fn delivery_sent(&self, id: i64, attempts: i64, at_millis: i64) -> Result<(), StoreError> {
        sqlx::query(
            "UPDATE alert_deliveries SET status = 'sent', attempts = $1, sent_at = $2, last_error = NULL WHERE id = $3",
        )
        .bind(attempts)
        .bind(at_millis)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// A failed attempt: tried again at `next_attempt_millis`, or given up when that is `None`.
    pub async fn delivery_failed(
        &self,
        id: i64,
        attempts: i64,
        error: &str,
        next_attempt_millis: Option<i64>,
    ) -> Result<(), StoreError> {
        let status = if next_attempt_millis.is_some() { "pending" } else { "failed" };
        sqlx::query(
            "UPDATE alert_deliveries SET status = $1, attempts = $2, last_error = $3, \
             next_attempt_at = COALESCE($4, next_attempt_at) WHERE id = $5",
        )
        .bind(status)
        .bind(attempts)
        .bind(error)
        .bind(next_attempt_millis)
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// Takes or renews the lease `name` for `holder` until `expires_millis`, when it is free,
    /// expired or already the holder's. Returns its token (which grows at every change of
    /// holder), or `None` while another holder has it.
    pub async fn try_lease(
        &self,
        name: &str,
        holder: &str,
        now_millis: i64,
        expires_millis: i64,
    ) -> Result<Option<i64>, StoreError> {
        let row = sqlx::query(
            "INSERT INTO leases (name, holder, token, expires_at) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (name) DO UPDATE SET \
             token = CASE WHEN leases.holder = excluded.holder THEN leases.token ELSE leases.token + 1 END, \
             holder = excluded.holder, expires_at = excluded.expires_at \
             WHERE leases.holder = excluded.holder OR leases.expires_at < $4 \
             RETURNING token",
        )
        .bind(name)
        .bind(holder)
        .bind(expires_millis)
        .bind(now_millis)
        .fetch_optional(self.pool())
        .await?;
        row.map(|row| row.try_get::<i64, _>("token")).transpose().map_err(StoreError::from)
    }

    /// Creates a silence, or replaces the one with its id (Alertmanager's update).
    pub async fn save_silence(&self, silence: &SilenceRow) -> Result<(), StoreError> {
        let now = now_millis();
        sqlx::query(&format!(
            "INSERT INTO silences ({SILENCE_COLUMNS}, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
             ON CONFLICT (id) DO UPDATE SET matchers = excluded.matchers, starts_at = excluded.starts_at, \
             ends_at = excluded.ends_at, created_by = excluded.created_by, comment = excluded.comment, \
             updated_at = excluded.updated_at"
        ))
        .bind(&silence.id)
        .bind(&silence.matchers)
        .bind(silence.starts_at_millis)
        .bind(silence.ends_at_millis)
        .bind(&silence.created_by)
        .bind(&silence.comment)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub async fn silence(&self, id: &str) -> Result<Option<SilenceRow>, StoreError> {
        let row = sqlx::query(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE id = $1"))
            .bind(id)
            .fetch_optional(self.pool())
            .await?;
        row.as_ref().map(silence_row).transpose()
    }

    /// Silences ending after `since_millis` (all of them when 0), newest first.
    pub async fn silences(&self, since_millis: i64) -> Result<Vec<SilenceRow>, StoreError> {
        let rows =
            sqlx::query(&format!("SELECT {SILENCE_COLUMNS} FROM silences WHERE ends_at > $1 ORDER BY starts_at DESC"))
                .bind(since_millis)
                .fetch_all(self.pool())
                .await?;
        rows.iter().map(silence_row).collect()
    }

    /// Ends a silence now; it stays in the history. `false` when it had ended already.
    pub async fn expire_silence(&self, id: &str, now: i64) -> Result<bool, StoreError> {
        let result = sqlx::query("UPDATE silences SET ends_at = $1, updated_at = $1 WHERE id = $2 AND ends_at > $1")
            .bind(now)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(result.rows_affected() == 1)
    }

    /// Who holds the lease `name`, if anyone took it.
    pub async fn lease(&self, name: &str) -> Result<Option<LeaseRow>, StoreError> {
        let row = sqlx::query("SELECT holder, token, expires_at FROM leases WHERE name = $1")
            .bind(name)
            .fetch_optional(self.pool())
            .await?;
        row.map(|row| {
            Ok(LeaseRow {
                holder: row.try_get("holder")?,
                token: row.try_get("token")?,
                expires_at_millis: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    /// Gives a lease back, so that another node need not wait for it to expire.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2")
            .bind(name)
            .bind(holder)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

async fn write_alert(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    instance: &AlertInstanceRow,
    event: Option<&AlertEventRow>,
    deliveries: &[NewDelivery],
) -> Result<(), StoreError> {
    let now = now_millis();
    sqlx::query(&format!(
        "INSERT INTO alert_instances ({INSTANCE_COLUMNS}, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) \
             ON CONFLICT (fingerprint) DO UPDATE SET rule_id = excluded.rule_id, source = excluded.source, \
             ends_at = excluded.ends_at, labels = excluded.labels, \
             annotations = excluded.annotations, state = excluded.state, value = excluded.value, \
             active_since = excluded.active_since, last_active = excluded.last_active, \
             firing_since = excluded.firing_since, resolved_at = excluded.resolved_at, episode = excluded.episode, \
             acknowledged_by = excluded.acknowledged_by, acknowledged_at = excluded.acknowledged_at, \
             acknowledgement_note = excluded.acknowledgement_note, repeats = excluded.repeats, \
             escalated = excluded.escalated, notified = excluded.notified, updated_at = excluded.updated_at"
    ))
    .bind(&instance.fingerprint)
    .bind(instance.rule_id)
    .bind(&instance.source)
    .bind(instance.ends_at_millis)
    .bind(&instance.labels)
    .bind(&instance.annotations)
    .bind(&instance.state)
    .bind(instance.value)
    .bind(instance.active_since_millis)
    .bind(instance.last_active_millis)
    .bind(instance.firing_since_millis)
    .bind(instance.resolved_at_millis)
    .bind(instance.episode)
    .bind(&instance.acknowledged_by)
    .bind(instance.acknowledged_at_millis)
    .bind(&instance.acknowledgement_note)
    .bind(instance.repeats)
    .bind(i64::from(instance.escalated))
    .bind(i64::from(instance.notified))
    .bind(now)
    .execute(&mut **transaction)
    .await?;
    if let Some(event) = event {
        insert_event(transaction, &instance.fingerprint, event).await?;
    }
    for delivery in deliveries {
        sqlx::query(
            "INSERT INTO alert_deliveries (fingerprint, episode, channel, event, sequence, body, status, attempts, \
                 next_attempt_at, created_at, group_key, group_labels, group_interval) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'pending', 0, $7, $8, $9, $10, $11) \
                 ON CONFLICT (fingerprint, episode, channel, event, sequence) DO NOTHING",
        )
        .bind(&instance.fingerprint)
        .bind(instance.episode)
        .bind(&delivery.channel)
        .bind(delivery.event)
        .bind(delivery.sequence)
        .bind(&delivery.body)
        .bind(now + delivery.group.wait_millis)
        .bind(now)
        .bind(&delivery.group.key)
        .bind(if delivery.group.key.is_empty() { "{}" } else { delivery.group.labels.as_str() })
        .bind(delivery.group.interval_millis)
        .execute(&mut **transaction)
        .await?;
    }
    Ok(())
}

async fn insert_event(
    transaction: &mut sqlx::Transaction<'_, sqlx::Any>,
    fingerprint: &str,
    event: &AlertEventRow,
) -> Result<(), StoreError> {
    sqlx::query("INSERT INTO alert_events (fingerprint, at, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(fingerprint)
        .bind(event.at_millis)
        .bind(&event.kind)
        .bind(&event.actor)
        .bind(&event.detail)
        .execute(&mut **transaction)
        .await?;
    Ok(())
}

fn rule_conflict(error: sqlx::Error, name: &str) -> StoreError {
    if is_unique_violation(&error) {
        StoreError::Conflict(format!("an alert rule named {name:?}"))
    } else {
        StoreError::Query(error)
    }
}

fn rule_row(row: &AnyRow) -> Result<AlertRuleRow, StoreError> {
    Ok(AlertRuleRow {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        spec: row.try_get("spec")?,
        updated_by: row.try_get("updated_by")?,
        updated_at_millis: row.try_get("updated_at")?,
        last_evaluation_millis: row.try_get("last_evaluation")?,
        last_error: row.try_get("last_error")?,
        last_duration_ms: row.try_get("last_duration_ms")?,
    })
}

fn instance_row(row: &AnyRow) -> Result<AlertInstanceRow, StoreError> {
    Ok(AlertInstanceRow {
        fingerprint: row.try_get("fingerprint")?,
        rule_id: row.try_get("rule_id")?,
        source: row.try_get("source")?,
        ends_at_millis: row.try_get("ends_at")?,
        labels: row.try_get("labels")?,
        annotations: row.try_get("annotations")?,
        state: row.try_get("state")?,
        value: row.try_get("value")?,
        active_since_millis: row.try_get("active_since")?,
        last_active_millis: row.try_get("last_active")?,
        firing_since_millis: row.try_get("firing_since")?,
        resolved_at_millis: row.try_get("resolved_at")?,
        episode: row.try_get("episode")?,
        acknowledged_by: row.try_get("acknowledged_by")?,
        acknowledged_at_millis: row.try_get("acknowledged_at")?,
        acknowledgement_note: row.try_get("acknowledgement_note")?,
        repeats: row.try_get("repeats")?,
        escalated: row.try_get::<i64, _>("escalated")? != 0,
        notified: row.try_get::<i64, _>("notified")? != 0,
    })
}

fn silence_row(row: &AnyRow) -> Result<SilenceRow, StoreError> {
    Ok(SilenceRow {
        id: row.try_get("id")?,
        matchers: row.try_get("matchers")?,
        starts_at_millis: row.try_get("starts_at")?,
        ends_at_millis: row.try_get("ends_at")?,
        created_by: row.try_get("created_by")?,
        comment: row.try_get("comment")?,
        updated_at_millis: row.try_get("updated_at")?,
    })
}

fn event_row(row: &AnyRow) -> Result<AlertEventRow, StoreError> {
    Ok(AlertEventRow {
        at_millis: row.try_get("at")?,
        kind: row.try_get("kind")?,
        actor: row.try_get("actor")?,
        detail: row.try_get("detail")?,
    })
}

fn delivery_row(row: &AnyRow) -> Result<DeliveryRow, StoreError> {
    Ok(DeliveryRow {
        id: row.try_get("id")?,
        fingerprint: row.try_get("fingerprint")?,
        episode: row.try_get("episode")?,
        channel: row.try_get("channel")?,
        event: row.try_get("event")?,
        body: row.try_get("body")?,
        status: row.try_get("status")?,
        attempts: row.try_get("attempts")?,
        last_error: row.try_get("last_error")?,
        created_at_millis: row.try_get("created_at")?,
        sent_at_millis: row.try_get("sent_at")?,
        group_key: row.try_get("group_key")?,
        group_labels: row.try_get("group_labels")?,
        group_interval_millis: row.try_get("group_interval")?,
    })
}
