//! Sends the notifications the outbox holds, on the node that holds the evaluator's lease:
//! each to its channel, retried with doubling delays (honouring `Retry-After`) while the
//! receiver is away, given up after `alerts.max_delivery_attempts` or at once when it refuses
//! (a 4xx, a missing setting). Every outcome is in the delivery log and the alert's timeline.
//!
//! A notification is marked sent once the receiver accepted it; if the process dies between
//! the two, it is sent again at the next start (at least once). PagerDuty deduplicates by the
//! dedup key, and the webhook body carries it for receivers that want to.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_proto::alerts::WebhookBody;

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
            futures::stream::iter(due)
                .for_each_concurrent(CONCURRENT_DELIVERIES, |row| {
                    let parts = &parts;
                    async move {
                        if let Err(error) = send(parts, &row).await {
                            tracing::warn!(delivery = row.id, error = %error_chain(&error), "cannot record a delivery");
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

/// One attempt at one notification, and its outcome recorded.
async fn send(parts: &Parts<'_>, row: &DeliveryRow) -> Result<(), AlertError> {
    let attempts = row.attempts + 1;
    let result = attempt(parts, row).await;
    let now = now_millis();
    let (kind, detail) = match &result {
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

async fn attempt(parts: &Parts<'_>, row: &DeliveryRow) -> Result<(), DeliveryError> {
    let body: WebhookBody = serde_json::from_str(&row.body)
        .map_err(|error| DeliveryError::Setting(format!("the stored notification cannot be read: {error}")))?;
    let channel = parts
        .database
        .integration_named(&row.channel)
        .await
        .map_err(|error| DeliveryError::Unavailable { reason: error_chain(&error), retry_after: None })?
        .ok_or_else(|| DeliveryError::Setting(format!("no channel is named {:?} any more", row.channel)))?;
    let kind: IntegrationKind = channel
        .kind
        .parse()
        .map_err(|_| DeliveryError::Setting(format!("channel {:?} has an unknown kind", row.channel)))?;
    if !is_channel(kind) {
        return Err(DeliveryError::NotAChannel(kind));
    }
    let settings: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&channel.settings)
        .map_err(|error| DeliveryError::Setting(format!("the channel's settings cannot be read: {error}")))?;
    let secrets = crate::integrations::open_secrets(parts.secrets, &channel)
        .map_err(|error| DeliveryError::Setting(format!("the channel's secrets cannot be opened: {error}")))?;
    let target = Target { name: &channel.name, kind, settings: &settings, secrets: &secrets };
    channels::deliver(parts.http, &target, &body).await
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
