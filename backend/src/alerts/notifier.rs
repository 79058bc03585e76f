//! Sends the notifications the outbox holds, on the node that holds the evaluator's lease:
//! each to its channel (those of one group of a route together, in one message, the first
//! after the group's wait and the next no sooner than its interval after the one before), retried with doubling delays (honouring `Retry-After`) while the
//! receiver is away, given up after `alerts.max_delivery_attempts` or at once when it refuses
//! (a 4xx, a missing setting). Every outcome is in the delivery log and the alert's timeline.
//!
//! A notification is marked sent once the receiver accepted it; if the process dies between
//! the two, it is sent again at the next start (at least once). PagerDuty deduplicates by the
//! dedup key, and the webhook body carries it for receivers that want to.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_proto::alerts::{Notification, WebhookBody};

use super::channels::{self, DeliveryError, Target};
use super::evaluator::Coordination;
use super::{AlertError, is_channel};
use crate::config::AlertsConfig;
use crate::integrations::IntegrationKind;
use crate::secrets::SecretBox;
use crate::store::{AlertEventRow, Database, DeliveryRow, now_millis};
use crate::telemetry::{Metrics, error_chain};

/// Notifications sent at once.
const CONCURRENT_DELIVERIES: usize = 8;
/// Notifications read from the outbox per round.
const BATCH: i64 = 64;
const MAX_RETRY_DELAY_MILLIS: u64 = 300_000;

pub struct Parts<'a> {
    pub database: &'a Database,
    pub secrets: &'a SecretBox,
    pub http: &'a reqwest::Client,
    pub config: &'a AlertsConfig,
    pub metrics: &'a Metrics,
}

pub async fn run(parts: Parts<'_>, coordination: Arc<Coordination>, shutdown: CancellationToken) {
    let idle = Duration::from_millis(parts.config.tick_millis.max(50));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = coordination.written.notified() => {}
            () = tokio::time::sleep(idle) => {}
        }
        if !coordination.holding.load(Ordering::SeqCst) {
            continue;
        }
        loop {
            let due = match parts.database.due_deliveries(now_millis(), BATCH).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(error = %error_chain(&error), "cannot read the notifications to send");
                    break;
                }
            };
            let full = due.len() as i64 == BATCH;
            futures::stream::iter(sends(due))
                .for_each_concurrent(CONCURRENT_DELIVERIES, |send| {
                    let parts = &parts;
                    async move {
                        let result = match send {
                            Send::Alone(row) => deliver_rows(parts, vec![row], None).await,
                            Send::Group(row) => deliver_group(parts, &row).await,
                        };
                        if let Err(error) = result {
                            tracing::warn!(error = %error_chain(&error), "cannot record a delivery");
                        }
                    }
                })
                .await;
            if !full || shutdown.is_cancelled() {
                break;
            }
        }
    }
}

/// What one round sends: an ungrouped notification alone, or a group (named by one of its
/// due notifications) with all its waiting notifications.
enum Send {
    Alone(DeliveryRow),
    Group(DeliveryRow),
}

fn sends(due: Vec<DeliveryRow>) -> Vec<Send> {
    let mut groups: HashSet<(String, String)> = HashSet::new();
    let mut sends = Vec::new();
    for row in due {
        if row.group_key.is_empty() {
            sends.push(Send::Alone(row));
        } else if groups.insert((row.channel.clone(), row.group_key.clone())) {
            sends.push(Send::Group(row));
        }
    }
    sends
}

/// A group's next message: everything of the group waiting now, unless its last message went
/// less than the group's interval ago, in which case all of it waits for the interval's end.
async fn deliver_group(parts: &Parts<'_>, due: &DeliveryRow) -> Result<(), AlertError> {
    let now = now_millis();
    if let Some(last) = parts.database.group_last_sent(&due.channel, &due.group_key).await? {
        let next = last.saturating_add(due.group_interval_millis);
        if next > now {
            parts.database.postpone_group(&due.channel, &due.group_key, next).await?;
            return Ok(());
        }
    }
    let rows = parts.database.pending_group(&due.channel, &due.group_key).await?;
    let labels: BTreeMap<String, String> = serde_json::from_str(&due.group_labels).unwrap_or_default();
    deliver_rows(parts, rows, Some((due.group_key.clone(), labels))).await
}

/// One attempt at one message holding these notifications (of one channel), and its outcome
/// recorded on each.
async fn deliver_rows(
    parts: &Parts<'_>,
    rows: Vec<DeliveryRow>,
    group: Option<(String, BTreeMap<String, String>)>,
) -> Result<(), AlertError> {
    let mut readable = Vec::with_capacity(rows.len());
    let mut notifications = Vec::with_capacity(rows.len());
    for row in rows {
        match serde_json::from_str::<Notification>(&row.body) {
            Ok(notification) => {
                notifications.push(notification);
                readable.push(row);
            }
            Err(error) => {
                let error = DeliveryError::Setting(format!("the stored notification cannot be read: {error}"));
                record(parts, &row, &Err(error)).await?;
            }
        }
    }
    let Some(first) = notifications.first() else {
        return Ok(());
    };
    let (group_key, group_labels) = group.unwrap_or_else(|| (first.dedup_key.clone(), BTreeMap::new()));
    let message = WebhookBody { version: WebhookBody::VERSION.to_owned(), group_key, group_labels, notifications };
    let channel = &readable[0].channel;
    let result = attempt(parts, channel, &message).await;
    for row in &readable {
        record(parts, row, &result).await?;
    }
    Ok(())
}

/// The outcome of one attempt at one notification.
async fn record(parts: &Parts<'_>, row: &DeliveryRow, result: &Result<(), DeliveryError>) -> Result<(), AlertError> {
    let attempts = row.attempts + 1;
    let now = now_millis();
    let (kind, detail) = match result {
        Ok(()) => {
            parts.metrics.alert_notifications_sent.inc();
            parts.database.delivery_sent(row.id, attempts, now).await?;
            ("notified", format!("{} to {}", row.event, row.channel))
        }
        Err(error) => {
            parts.metrics.alert_notification_failures.inc();
            let give_up = !error.is_retryable() || attempts >= i64::from(parts.config.max_delivery_attempts);
            let next = (!give_up).then(|| now + retry_delay(parts.config, attempts, error));
            parts.database.delivery_failed(row.id, attempts, &error.to_string(), next).await?;
            if !give_up {
                return Ok(());
            }
            ("failed", format!("{} to {} after {attempts} attempts: {error}", row.event, row.channel))
        }
    };
    let event = AlertEventRow { at_millis: now, kind: kind.to_owned(), actor: "notifier".to_owned(), detail };
    parts.database.append_alert_event(&row.fingerprint, &event).await?;
    Ok(())
}

async fn attempt(parts: &Parts<'_>, channel_name: &str, message: &WebhookBody) -> Result<(), DeliveryError> {
    let channel = parts
        .database
        .integration_named(channel_name)
        .await
        .map_err(|error| DeliveryError::Unavailable { reason: error_chain(&error), retry_after: None })?
        .ok_or_else(|| DeliveryError::Setting(format!("no channel is named {channel_name:?} any more")))?;
    let kind: IntegrationKind = channel
        .kind
        .parse()
        .map_err(|_| DeliveryError::Setting(format!("channel {channel_name:?} has an unknown kind")))?;
    if !is_channel(kind) {
        return Err(DeliveryError::NotAChannel(kind));
    }
    let settings: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&channel.settings)
        .map_err(|error| DeliveryError::Setting(format!("the channel's settings cannot be read: {error}")))?;
    let secrets = crate::integrations::open_secrets(parts.secrets, &channel)
        .map_err(|error| DeliveryError::Setting(format!("the channel's secrets cannot be opened: {error}")))?;
    let target = Target { name: &channel.name, kind, settings: &settings, secrets: &secrets };
    channels::deliver(parts.http, &target, message).await
}

/// The delay before attempt `attempts + 1`: the base doubled per attempt, at most 5 minutes,
/// or the receiver's `Retry-After` when it is longer.
fn retry_delay(config: &AlertsConfig, attempts: i64, error: &DeliveryError) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1)).unwrap_or(u32::MAX).min(20);
    let backoff = config.retry_base_millis.saturating_mul(1 << doublings).min(MAX_RETRY_DELAY_MILLIS);
    let asked = match error {
        DeliveryError::Unavailable { retry_after: Some(after), .. } => {
            u64::try_from(after.as_millis()).unwrap_or(MAX_RETRY_DELAY_MILLIS).min(MAX_RETRY_DELAY_MILLIS)
        }
        _ => 0,
    };
    i64::try_from(backoff.max(asked)).unwrap_or(i64::MAX / 2)
}
