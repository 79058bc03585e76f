//! Alerts that Prometheus (through the Alertmanager API) or an Alertmanager (through its
//! webhook) sends: each is an instance without a rule (`rule_id` 0), firing from the moment
//! it arrives until its `endsAt`, or until `alerts.resolve_timeout_seconds` pass without it
//! being sent again (Prometheus resends firing alerts every minute or so). They are routed by
//! `[[alerts.routes]]`, silenced and acknowledged like Vigil's own.

use std::collections::BTreeMap;

use vigil_proto::Timestamp;
use vigil_proto::alerts::AlertState;
use vigil_proto::metrics::is_label_name;

use super::transition::{self, Change};
use super::{AlertError, Routing, recipients, rules, save_change, silences, state_of};
use crate::config::{AlertRouteConfig, AlertsConfig};
use crate::store::{AlertInstanceRow, Database, now_millis};

const MAX_ALERTS: usize = 10_000;
const MAX_LABELS: usize = 64;
const MAX_TEXT_BYTES: usize = 16 << 10;

/// One alert as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incoming {
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub starts_at: Option<Timestamp>,
    pub ends_at: Option<Timestamp>,
}

/// Where an alert without a rule goes.
pub(crate) fn routing<'a>(
    alertname: &'a str,
    routes: &[AlertRouteConfig],
    labels: &BTreeMap<String, String>,
) -> Routing<'a> {
    Routing { rule_name: alertname, runbook_url: None, channels: recipients(routes, labels), escalate_to: &[] }
}

fn check(alerts: &[Incoming]) -> Result<(), AlertError> {
    if alerts.len() > MAX_ALERTS {
        return Err(AlertError::Invalid(format!("at most {MAX_ALERTS} alerts at once")));
    }
    for (index, alert) in alerts.iter().enumerate() {
        if alert.labels.is_empty() {
            return Err(AlertError::Invalid(format!("alert {index}: labels must not be empty")));
        }
        if alert.labels.len() > MAX_LABELS || alert.annotations.len() > MAX_LABELS {
            return Err(AlertError::Invalid(format!("alert {index}: at most {MAX_LABELS} labels and annotations")));
        }
        for (name, value) in alert.labels.iter().chain(&alert.annotations) {
            if !is_label_name(name) {
                return Err(AlertError::Invalid(format!("alert {index}: {name:?} is not a label name")));
            }
            if value.len() > MAX_TEXT_BYTES {
                return Err(AlertError::Invalid(format!(
                    "alert {index}: {name} is longer than {MAX_TEXT_BYTES} bytes"
                )));
            }
        }
        if alert.labels.values().all(String::is_empty) {
            return Err(AlertError::Invalid(format!("alert {index}: every label value is empty")));
        }
    }
    Ok(())
}

fn millis(at: Timestamp) -> i64 {
    at.as_unix_nanos() / 1_000_000
}

/// Takes a batch of alerts from `source` (`prometheus` or `alertmanager`). A bad alert
/// refuses the batch, naming it, before anything is written.
pub async fn receive(
    database: &Database,
    config: &AlertsConfig,
    source: &'static str,
    alerts: Vec<Incoming>,
) -> Result<(), AlertError> {
    check(&alerts)?;
    let now = now_millis();
    let active = silences::active(database, now).await?;
    let resolve_timeout = i64::try_from(config.resolve_timeout_seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    for incoming in alerts {
        let labels: BTreeMap<String, String> =
            incoming.labels.into_iter().filter(|(_, value)| !value.is_empty()).collect();
        let fingerprint = rules::fingerprint(0, &labels);
        // Prometheus resends what fires; an Alertmanager's webhook says when it resolved.
        let lasting = if source == "alertmanager" { i64::MAX / 2 } else { now + resolve_timeout };
        let ends = incoming.ends_at.map_or(lasting, millis);
        let starts = incoming.starts_at.map_or(now, millis).min(now);
        let previous = database.alert_instance(&fingerprint).await?;
        let firing = previous.as_ref().is_some_and(|row| state_of(&row.state) == AlertState::Firing);
        let annotations = serde_json::to_string(&incoming.annotations)?;
        let change = match (previous, ends > now) {
            (Some(previous), true) if firing => Some(Change {
                actor: source,
                instance: AlertInstanceRow {
                    ends_at_millis: Some(ends),
                    annotations,
                    last_active_millis: now,
                    ..previous
                },
                event: None,
                notify: Vec::new(),
            }),
            (Some(previous), false) if firing => Some(resolve(previous, source, now)),
            (previous, true) => {
                let instance = AlertInstanceRow {
                    fingerprint: fingerprint.clone(),
                    rule_id: 0,
                    source: source.to_owned(),
                    ends_at_millis: Some(ends),
                    labels: serde_json::to_string(&labels)?,
                    annotations,
                    state: AlertState::Pending.as_str().to_owned(),
                    value: None,
                    active_since_millis: starts,
                    last_active_millis: now,
                    firing_since_millis: None,
                    resolved_at_millis: None,
                    episode: previous.as_ref().map_or(0, |previous| previous.episode),
                    acknowledged_by: None,
                    acknowledged_at_millis: None,
                    acknowledgement_note: None,
                    repeats: 0,
                    escalated: false,
                    notified: false,
                };
                let mut change = transition::fire(instance, now);
                change.actor = source;
                change.instance.firing_since_millis = Some(starts);
                Some(change)
            }
            (_, false) => None,
        };
        if let Some(change) = change {
            let alertname = labels.get("alertname").cloned().unwrap_or_default();
            let routing = routing(&alertname, &config.routes, &labels);
            save_change(database, config, &routing, change, &active).await?;
        }
    }
    Ok(())
}

fn resolve(previous: AlertInstanceRow, actor: &'static str, now: i64) -> Change {
    Change {
        actor,
        instance: AlertInstanceRow {
            state: AlertState::Resolved.as_str().to_owned(),
            resolved_at_millis: Some(now),
            ..previous
        },
        event: Some((AlertState::Resolved, String::new())),
        notify: vec![(vigil_proto::alerts::NotificationEvent::Resolved, 0)],
    }
}

/// Resolves the alerts from outside whose end has come (called on the evaluating node).
pub async fn resolve_ended(database: &Database, config: &AlertsConfig, now: i64) -> Result<(), AlertError> {
    let active = silences::active(database, now).await?;
    for row in database.alert_instances(Some(0)).await? {
        if row.state == "firing" && row.ends_at_millis.is_some_and(|ends| ends <= now) {
            let labels: BTreeMap<String, String> = serde_json::from_str(&row.labels)?;
            let alertname = labels.get("alertname").cloned().unwrap_or_default();
            let routing = routing(&alertname, &config.routes, &labels);
            let actor = if row.source == "alertmanager" { "alertmanager" } else { "prometheus" };
            save_change(database, config, &routing, resolve(row, actor, now), &active).await?;
        }
    }
    Ok(())
}
