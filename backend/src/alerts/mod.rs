//! Alerts: rules on metrics and logs, the instances they fire, acknowledgements, and the
//! notifications that reach people. Rules, instances, their timelines and the notifications
//! to send live in SQL: a state change and the notifications it causes are written in one
//! transaction (an outbox), and a notification is keyed by its alert, episode, channel and
//! event, so that a restart neither forgets nor repeats one. One node at a time evaluates and
//! sends, holding a lease (see [`evaluator`]).
//!
//! Called alike by the API's routes and the UI's services; the evaluator and the sender run
//! from start-up.

pub mod channels;
pub mod evaluator;
pub mod external;
pub mod import;
pub mod notifier;
pub mod preview;
pub mod rules;
pub mod silences;
mod smtp;
mod transition;

use std::collections::BTreeMap;

use vigil_logstore::LogStore;
use vigil_proto::alerts::{
    Acknowledgement, Alert, AlertAnnotation, AlertCounts, AlertDetail, AlertEvent, AlertLinks, AlertPage, AlertQuery,
    AlertRule, AlertRuleSpec, AlertState, AnnotationQuery, Delivery, DeliveryStatus, Matcher, Notification,
    NotificationEvent, RuleKind, WebhookBody,
};
use vigil_proto::auth::AuditOutcome;

use crate::audit::{self, Action, Actor};
use crate::config::{AlertRouteConfig, AlertsConfig};
use crate::integrations::{IntegrationError, IntegrationKind};
use crate::secrets::SecretBox;
use crate::store::{
    AlertEventRow, AlertInstanceRow, AlertRuleRow, Database, DeliveryGroup, DeliveryRow, NewDelivery, StoreError,
    millis_to_timestamp, now_millis,
};

/// Entries of a timeline, and notifications, shown with an alert.
const DETAIL_ROWS: i64 = 500;
const MAX_NOTE_CHARS: usize = 1000;

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    /// A rule or request that breaks a rule; the text names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("no alert rule has id {0}")]
    NoRule(i64),
    #[error("no alert has fingerprint {0:?}")]
    NoAlert(String),
    #[error("no silence has id {0:?}")]
    NoSilence(String),
    #[error("the alert is {0}: only a firing alert can be acknowledged")]
    NotFiring(&'static str),
    #[error("the alert was acknowledged by {by} already")]
    AlreadyAcknowledged { by: String },
    #[error(
        "no notification channel is named {0:?} (channels are integrations of kind webhook, slack, pagerduty, smtp or alertmanager)"
    )]
    UnknownChannel(String),
    #[error("{0}")]
    Query(String),
    #[error(transparent)]
    Prometheus(#[from] crate::prometheus::query::QueryError),
    #[error(transparent)]
    LogStore(#[from] vigil_logstore::LogStoreError),
    #[error("the test notification was not delivered: {0}")]
    Delivery(#[from] channels::DeliveryError),
    #[error(transparent)]
    Integration(#[from] IntegrationError),
    #[error("a stored rule or alert cannot be read or written: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether an integration kind carries notifications.
pub fn is_channel(kind: IntegrationKind) -> bool {
    matches!(
        kind,
        IntegrationKind::Webhook
            | IntegrationKind::Slack
            | IntegrationKind::PagerDuty
            | IntegrationKind::Smtp
            | IntegrationKind::Alertmanager
    )
}

/// Checks a notification channel's settings and secret names as it is saved, so that a typo is
/// refused then rather than found by a failed notification at 3 am. `stored_secrets` are the
/// secret names an updated integration has already; the write's `null`s remove theirs.
pub fn check_channel(
    kind: IntegrationKind,
    write: &vigil_proto::auth::IntegrationWrite,
    stored_secrets: &[String],
) -> Result<(), AlertError> {
    let mut names: Vec<&str> = stored_secrets.iter().map(String::as_str).collect();
    for (name, value) in &write.secrets {
        names.retain(|kept| kept != name);
        if value.is_some() {
            names.push(name);
        }
    }
    channels::check_settings(kind, &write.settings, &names).map_err(|error| AlertError::Invalid(error.to_string()))
}

fn rule(row: &AlertRuleRow) -> Result<AlertRule, AlertError> {
    Ok(AlertRule {
        id: row.id,
        spec: serde_json::from_str(&row.spec)?,
        last_evaluation: row.last_evaluation_millis.map(millis_to_timestamp),
        last_error: row.last_error.clone(),
        last_duration_ms: row.last_duration_ms.and_then(|ms| u64::try_from(ms).ok()),
        updated_at: millis_to_timestamp(row.updated_at_millis),
        updated_by: row.updated_by.clone(),
    })
}

pub(crate) fn state_of(text: &str) -> AlertState {
    match text {
        "firing" => AlertState::Firing,
        "pending" => AlertState::Pending,
        "resolved" => AlertState::Resolved,
        _ => AlertState::Inactive,
    }
}

/// An instance as the API shows it.
pub(crate) fn alert(row: &AlertInstanceRow) -> Result<Alert, AlertError> {
    let acknowledged = match (&row.acknowledged_by, row.acknowledged_at_millis) {
        (Some(by), Some(at)) => Some(Acknowledgement {
            by: by.clone(),
            at: millis_to_timestamp(at),
            note: row.acknowledgement_note.clone().unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Alert {
        fingerprint: row.fingerprint.clone(),
        rule_id: row.rule_id,
        labels: serde_json::from_str(&row.labels)?,
        annotations: serde_json::from_str(&row.annotations)?,
        state: state_of(&row.state),
        value: row.value,
        active_since: millis_to_timestamp(row.active_since_millis),
        firing_since: row.firing_since_millis.map(millis_to_timestamp),
        resolved_at: row.resolved_at_millis.map(millis_to_timestamp),
        episode: row.episode,
        acknowledged,
        source: row.source.clone(),
        ends_at: row.ends_at_millis.map(millis_to_timestamp),
    })
}

/// Where an alert's notifications go, and what they say of its rule.
pub(crate) struct Routing<'a> {
    pub rule_name: &'a str,
    pub runbook_url: Option<&'a str>,
    pub channels: Vec<Recipient>,
    pub escalate_to: &'a [String],
}

impl<'a> Routing<'a> {
    /// A rule's alerts go to its channels (each alert on its own), or by the routes when it
    /// names none.
    pub fn of_rule(spec: &'a AlertRuleSpec, routes: &[AlertRouteConfig], labels: &BTreeMap<String, String>) -> Self {
        let channels = if spec.channels.is_empty() {
            recipients(routes, labels)
        } else {
            spec.channels.iter().map(|channel| Recipient { channel: channel.clone(), group: None }).collect()
        };
        Self {
            rule_name: &spec.name,
            runbook_url: spec.runbook_url.as_deref(),
            channels,
            escalate_to: &spec.escalate_to,
        }
    }

    pub fn channel_names(&self) -> Vec<String> {
        self.channels.iter().map(|recipient| recipient.channel.clone()).collect()
    }
}

/// A channel an alert is told on, and the group its notifications go with there (none: on
/// their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recipient {
    pub channel: String,
    pub group: Option<DeliveryGroup>,
}

/// The channels of the routes an alert's labels match (see `AlertRouteConfig`), each with the
/// group of the first route that names it.
pub(crate) fn recipients(routes: &[AlertRouteConfig], labels: &BTreeMap<String, String>) -> Vec<Recipient> {
    let mut recipients: Vec<Recipient> = Vec::new();
    for (index, route) in routes.iter().enumerate() {
        let matchers: Vec<Matcher> = route.matchers.iter().filter_map(|text| text.parse().ok()).collect();
        let holds = silences::Compiled::new("route", &matchers).is_ok_and(|compiled| compiled.matches(labels));
        if !holds {
            continue;
        }
        let group = route.grouping().map(|group_by| group_of(index, route, group_by, labels));
        for channel in &route.channels {
            if !recipients.iter().any(|recipient| &recipient.channel == channel) {
                recipients.push(Recipient { channel: channel.clone(), group: group.clone() });
            }
        }
        if !route.continue_matching {
            break;
        }
    }
    recipients
}

/// The group of an alert on a route: the route and the values of its `group_by` labels (an
/// absent label counts as empty), written as Alertmanager writes group keys.
fn group_of(
    index: usize,
    route: &AlertRouteConfig,
    group_by: &[String],
    labels: &BTreeMap<String, String>,
) -> DeliveryGroup {
    let values: BTreeMap<String, String> =
        group_by.iter().map(|name| (name.clone(), labels.get(name).cloned().unwrap_or_default())).collect();
    let selector: Vec<String> =
        values.iter().map(|(name, value)| format!("{name}={}", serde_json::Value::from(value.as_str()))).collect();
    let seconds = |seconds: u64| i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 4);
    DeliveryGroup {
        key: format!("route{index}:{{{}}}", selector.join(",")),
        // A map of strings serializes.
        labels: serde_json::to_string(&values).unwrap_or_else(|_| "{}".to_owned()),
        wait_millis: seconds(route.group_wait_seconds),
        interval_millis: seconds(route.group_interval_seconds),
    }
}

/// The channels of the routes an alert's labels match.
pub fn route(routes: &[AlertRouteConfig], labels: &BTreeMap<String, String>) -> Vec<String> {
    recipients(routes, labels).into_iter().map(|recipient| recipient.channel).collect()
}

/// The notifications an event of an alert causes, one per channel, as the outbox holds them.
pub(crate) fn deliveries(
    alert: &Alert,
    routing: &Routing<'_>,
    external_url: &str,
    notify: &[(NotificationEvent, i64)],
) -> Result<Vec<NewDelivery>, AlertError> {
    let mut deliveries = Vec::new();
    for (event, sequence) in notify {
        let escalated: Vec<Recipient>;
        let recipients = if *event == NotificationEvent::Escalation {
            escalated =
                routing.escalate_to.iter().map(|channel| Recipient { channel: channel.clone(), group: None }).collect();
            &escalated
        } else {
            &routing.channels
        };
        let body = Notification {
            event: *event,
            dedup_key: format!("{}-{}", alert.fingerprint, alert.episode),
            alert: alert.clone(),
            rule_name: routing.rule_name.to_owned(),
            runbook_url: routing.runbook_url.map(str::to_owned),
            url: format!("{external_url}/alerts/{}", alert.fingerprint),
        };
        let body = serde_json::to_string(&body)?;
        for recipient in recipients {
            deliveries.push(NewDelivery {
                channel: recipient.channel.clone(),
                event: event.as_str(),
                sequence: *sequence,
                body: body.clone(),
                group: recipient.group.clone().unwrap_or_default(),
            });
        }
    }
    Ok(deliveries)
}

/// A change of an alert as it is written: the row, its timeline entry, its notifications.
pub(crate) type Prepared = (AlertInstanceRow, Option<AlertEventRow>, Vec<NewDelivery>);

/// What a change of an alert writes. A silenced alert tells nobody; once the silence ends
/// while it fires, it is told then. A resolution is told only to those who were told of the
/// firing.
pub(crate) fn prepare_change(
    config: &AlertsConfig,
    routing: &Routing<'_>,
    mut change: transition::Change,
    silences: &[silences::Compiled],
) -> Result<Prepared, AlertError> {
    let shown = alert(&change.instance)?;
    let silenced_by = silences.iter().find(|silence| silence.matches(&shown.labels)).map(|silence| silence.id.clone());
    let fired_now = change.notify.iter().any(|(event, _)| *event == NotificationEvent::Firing);
    let was_told = change.instance.notified;
    change.notify.retain(|(event, _)| match event {
        NotificationEvent::Resolved => was_told,
        NotificationEvent::Firing => silenced_by.is_none(),
        _ => silenced_by.is_none() && was_told,
    });
    if silenced_by.is_none() && change.instance.state == "firing" && !was_told && !fired_now {
        change.notify.insert(0, (NotificationEvent::Firing, 0));
    }
    if change.notify.iter().any(|(event, _)| *event == NotificationEvent::Firing) {
        change.instance.notified = true;
    }
    let shown = alert(&change.instance)?;
    let deliveries = deliveries(&shown, routing, &config.external_url, &change.notify)?;
    let event = match (change.event, &silenced_by) {
        (Some((AlertState::Firing, _)), Some(silence)) => Some(AlertEventRow {
            at_millis: now_millis(),
            kind: "firing".to_owned(),
            actor: change.actor.to_owned(),
            detail: format!("silenced by {silence}: nobody is notified"),
        }),
        (event, _) => event.map(|(state, detail)| AlertEventRow {
            at_millis: now_millis(),
            kind: state.as_str().to_owned(),
            actor: change.actor.to_owned(),
            detail: match (detail.is_empty(), shown.value) {
                (true, Some(value)) => format!("value {}", rules::format_value(value)),
                _ => detail,
            },
        }),
    };
    Ok((change.instance, event, deliveries))
}

/// Writes one change of an alert (see [`prepare_change`]).
pub(crate) async fn save_change(
    database: &Database,
    config: &AlertsConfig,
    routing: &Routing<'_>,
    change: transition::Change,
    silences: &[silences::Compiled],
) -> Result<(), AlertError> {
    let (instance, event, deliveries) = prepare_change(config, routing, change, silences)?;
    database.save_alert(&instance, event.as_ref(), &deliveries).await?;
    Ok(())
}

/// Checks that every channel a rule names exists and carries notifications.
async fn check_channels(database: &Database, spec: &AlertRuleSpec) -> Result<(), AlertError> {
    for name in spec.channels.iter().chain(&spec.escalate_to) {
        let row = database.integration_named(name).await?;
        let is_channel = row.and_then(|row| row.kind.parse::<IntegrationKind>().ok()).is_some_and(is_channel);
        if !is_channel {
            return Err(AlertError::UnknownChannel(name.clone()));
        }
    }
    Ok(())
}

async fn check_rule(database: &Database, log_store: &dyn LogStore, spec: &AlertRuleSpec) -> Result<(), AlertError> {
    rules::validate(spec)?;
    if spec.kind == RuleKind::Logs {
        log_store.parse_query(&spec.expr).await.map_err(|error| AlertError::Query(format!("expr: {error}")))?;
    }
    check_channels(database, spec).await
}

pub async fn list_rules(database: &Database) -> Result<Vec<AlertRule>, AlertError> {
    database.alert_rules().await?.iter().map(rule).collect()
}

pub async fn get_rule(database: &Database, id: i64) -> Result<AlertRule, AlertError> {
    rule(&database.alert_rule(id).await?.ok_or(AlertError::NoRule(id))?)
}

pub async fn create_rule(
    database: &Database,
    log_store: &dyn LogStore,
    actor: &Actor,
    spec: AlertRuleSpec,
) -> Result<AlertRule, AlertError> {
    let result: Result<AlertRuleRow, AlertError> = async {
        check_rule(database, log_store, &spec).await?;
        Ok(database.insert_alert_rule(&spec.name, &serde_json::to_string(&spec)?, &actor.name).await?)
    }
    .await;
    let (outcome, detail) = match &result {
        Ok(_) => (AuditOutcome::Success, kind_text(&spec).to_owned()),
        Err(error) => (AuditOutcome::Failure, error.to_string()),
    };
    audit::record(database, actor, Action::AlertRuleCreate, &spec.name, outcome, &detail).await;
    rule(&result?)
}

pub async fn update_rule(
    database: &Database,
    log_store: &dyn LogStore,
    actor: &Actor,
    id: i64,
    spec: AlertRuleSpec,
) -> Result<AlertRule, AlertError> {
    check_rule(database, log_store, &spec).await?;
    let row = database
        .update_alert_rule(id, &spec.name, &serde_json::to_string(&spec)?, &actor.name)
        .await?
        .ok_or(AlertError::NoRule(id))?;
    audit::record(database, actor, Action::AlertRuleUpdate, &spec.name, AuditOutcome::Success, kind_text(&spec)).await;
    rule(&row)
}

pub async fn delete_rule(database: &Database, actor: &Actor, id: i64) -> Result<(), AlertError> {
    let existing = database.alert_rule(id).await?.ok_or(AlertError::NoRule(id))?;
    if !database.delete_alert_rule(id).await? {
        return Err(AlertError::NoRule(id));
    }
    audit::record(database, actor, Action::AlertRuleDelete, &existing.name, AuditOutcome::Success, "").await;
    Ok(())
}

/// One page of the alerts, firing first (newest first), then pending, then resolved; inactive
/// ones (pending that never fired) only when asked for. Without a label filter the database
/// sorts, pages and counts; with one, the alerts in the asked states are read and matched here.
pub async fn list(database: &Database, query: &AlertQuery) -> Result<AlertPage, AlertError> {
    let states: &[&str] = match query.state.as_deref() {
        None | Some("") => &["firing", "pending", "resolved"],
        Some("firing") => &["firing"],
        Some("pending") => &["pending"],
        Some("resolved") => &["resolved"],
        Some("inactive") => &["inactive"],
        Some(other) => {
            return Err(AlertError::Invalid(format!(
                "state {other:?} is not one of firing, pending, resolved, inactive"
            )));
        }
    };
    let limit = query.limit.unwrap_or(AlertQuery::DEFAULT_LIMIT);
    if limit == 0 || limit > AlertQuery::MAX_LIMIT {
        return Err(AlertError::Invalid(format!("limit must be between 1 and {}", AlertQuery::MAX_LIMIT)));
    }
    let offset = query.offset.unwrap_or(0);
    let filter = label_filter(query.filter.as_deref())?;
    let (alerts, total) = match &filter {
        None => {
            let page = Some((i64::from(limit), i64::from(offset)));
            let (rows, matching) = database.alert_instances_counted(states, query.rule_id, page).await?;
            // A page past the end counts nothing: count apart.
            let total = match matching {
                Some(matching) => matching,
                None => database.count_alert_instances(states, query.rule_id).await?,
            };
            (rows.iter().map(alert).collect::<Result<Vec<_>, _>>()?, u64::try_from(total).unwrap_or(0))
        }
        Some(filter) => {
            let rows = database.alert_instances_ordered(states, query.rule_id, None).await?;
            let mut matching = Vec::new();
            for row in &rows {
                let shown = alert(row)?;
                if filter.matches(&shown.labels) {
                    matching.push(shown);
                }
            }
            let total = matching.len() as u64;
            let page = matching.into_iter().skip(offset as usize).take(limit as usize).collect();
            (page, total)
        }
    };
    let (firing, pending, unacknowledged) = database.alert_counts().await?;
    let count = |n: i64| u64::try_from(n).unwrap_or(0);
    let counts = AlertCounts { firing: count(firing), pending: count(pending), unacknowledged: count(unacknowledged) };
    Ok(AlertPage { alerts, total, counts })
}

/// Every firing alert, newest first (Alertmanager's API lists them all).
pub async fn firing(database: &Database) -> Result<Vec<Alert>, AlertError> {
    database.alert_instances_ordered(&["firing"], None, None).await?.iter().map(alert).collect()
}

/// The compiled matchers of a query's `filter`, if it has any.
fn label_filter(filter: Option<&str>) -> Result<Option<silences::Compiled>, AlertError> {
    let Some(text) = filter.filter(|text| !text.trim().is_empty()) else {
        return Ok(None);
    };
    let matchers =
        vigil_proto::alerts::parse_matchers(text).map_err(|error| AlertError::Invalid(format!("filter: {error}")))?;
    Ok(Some(silences::Compiled::new("filter", &matchers)?))
}

/// Annotations shown at most, per chart.
const MAX_ANNOTATIONS: usize = 1000;
/// Timeline entries read for one chart's annotations.
const MAX_ANNOTATION_EVENTS: i64 = 20_000;

/// When alerts fired between `start` and `end` (matching the filter): one span per firing,
/// from its firing to its resolution (open while it still fires), for annotations on charts.
pub async fn annotations(database: &Database, query: &AnnotationQuery) -> Result<Vec<AlertAnnotation>, AlertError> {
    if query.end < query.start {
        return Err(AlertError::Invalid("end must not be before start".to_owned()));
    }
    let filter = label_filter(query.filter.as_deref())?;
    let start = query.start.as_unix_nanos() / 1_000_000;
    let end = query.end.as_unix_nanos() / 1_000_000;
    // Spans that began before `start` are seen by their resolution, or, if still firing, by
    // the alert's state; the entries up to now are read so that a span ending after `end` is
    // known to have been open at `end`.
    let events = database.firing_events_since(start, MAX_ANNOTATION_EVENTS).await?;
    let mut spans: Vec<(String, i64, Option<i64>)> = Vec::new();
    let mut open: BTreeMap<String, usize> = BTreeMap::new();
    for (fingerprint, event) in events {
        match event.kind.as_str() {
            "firing" => {
                if !open.contains_key(&fingerprint) {
                    open.insert(fingerprint.clone(), spans.len());
                    spans.push((fingerprint, event.at_millis, None));
                }
            }
            _ => match open.remove(&fingerprint) {
                Some(at) => spans[at].2 = Some(event.at_millis),
                None => spans.push((fingerprint, start, Some(event.at_millis))),
            },
        }
    }
    let seen: std::collections::HashSet<String> = spans.iter().map(|span| span.0.clone()).collect();
    let firing = database.alert_instances_ordered(&["firing"], None, None).await?;
    for row in &firing {
        let since = row.firing_since_millis.unwrap_or(row.active_since_millis);
        if since < start && !seen.contains(&row.fingerprint) {
            spans.push((row.fingerprint.clone(), since, None));
        }
    }
    spans.retain(|(_, from, to)| *from <= end && to.is_none_or(|to| to >= start));
    let mut wanted: Vec<String> = spans.iter().map(|span| span.0.clone()).collect();
    wanted.sort();
    wanted.dedup();
    let labels: BTreeMap<String, BTreeMap<String, String>> = database
        .alert_instances_named(&wanted)
        .await?
        .iter()
        .map(|row| Ok((row.fingerprint.clone(), serde_json::from_str(&row.labels)?)))
        .collect::<Result<_, AlertError>>()?;
    let mut annotations = Vec::new();
    for (fingerprint, from, to) in spans {
        let Some(labels) = labels.get(&fingerprint) else { continue };
        if filter.as_ref().is_some_and(|filter| !filter.matches(labels)) {
            continue;
        }
        annotations.push(AlertAnnotation {
            fingerprint,
            labels: labels.clone(),
            start: millis_to_timestamp(from),
            end: to.map(millis_to_timestamp),
        });
        if annotations.len() == MAX_ANNOTATIONS {
            break;
        }
    }
    Ok(annotations)
}

fn delivery(row: &DeliveryRow) -> Result<Delivery, AlertError> {
    let event: NotificationEvent = serde_json::from_value(serde_json::Value::String(row.event.clone()))?;
    let status = match row.status.as_str() {
        "sent" => DeliveryStatus::Sent,
        "failed" => DeliveryStatus::Failed,
        _ => DeliveryStatus::Pending,
    };
    Ok(Delivery {
        id: row.id,
        fingerprint: row.fingerprint.clone(),
        episode: row.episode,
        channel: row.channel.clone(),
        event,
        status,
        attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
        last_error: row.last_error.clone(),
        created_at: millis_to_timestamp(row.created_at_millis),
        sent_at: row.sent_at_millis.map(millis_to_timestamp),
    })
}

/// An alert with its timeline and its notifications.
pub async fn detail(database: &Database, fingerprint: &str) -> Result<AlertDetail, AlertError> {
    let row = database.alert_instance(fingerprint).await?.ok_or_else(|| AlertError::NoAlert(fingerprint.to_owned()))?;
    let spec = match database.alert_rule(row.rule_id).await? {
        Some(rule_row) => Some(rule(&rule_row)?.spec),
        None => None,
    };
    let shown = alert(&row)?;
    let links = links(&shown, spec.as_ref());
    let rule_name = spec.map(|spec| spec.name).unwrap_or_default();
    let events = database
        .alert_events(fingerprint, DETAIL_ROWS)
        .await?
        .into_iter()
        .map(|event| AlertEvent {
            at: millis_to_timestamp(event.at_millis),
            kind: event.kind,
            actor: event.actor,
            detail: event.detail,
        })
        .collect();
    let deliveries =
        database.alert_deliveries(fingerprint, DETAIL_ROWS).await?.iter().map(delivery).collect::<Result<_, _>>()?;
    Ok(AlertDetail { alert: shown, rule_name, events, deliveries, links })
}

/// How long before an alert became active, and after it resolved, its links look.
const LINK_MARGIN_NANOS: i64 = 15 * 60 * 1_000_000_000;

/// The logs and metric chart of an alert, over its time.
fn links(alert: &Alert, spec: Option<&AlertRuleSpec>) -> AlertLinks {
    let start = alert.active_since.saturating_add_nanos(-LINK_MARGIN_NANOS);
    let end = match alert.resolved_at {
        Some(resolved) if alert.state != AlertState::Firing && alert.state != AlertState::Pending => {
            resolved.saturating_add_nanos(LINK_MARGIN_NANOS)
        }
        _ => millis_to_timestamp(now_millis()),
    };
    let range = format!("start={}&end={}", encode(&start.to_rfc3339()), encode(&end.to_rfc3339()));
    let narrowing: Vec<String> = ["service", "host"]
        .iter()
        .filter_map(|name| alert.labels.get(*name).filter(|value| !value.is_empty()).map(|value| (name, value)))
        .map(|(name, value)| format!("{name}:{}", serde_json::Value::from(value.as_str())))
        .collect();
    let logs_query = match spec {
        Some(spec) if spec.kind == RuleKind::Logs => {
            let expr = spec.expr.trim();
            match (expr.is_empty(), narrowing.is_empty()) {
                (true, _) => narrowing.join(" AND "),
                (false, true) => expr.to_owned(),
                (false, false) => format!("({expr}) AND {}", narrowing.join(" AND ")),
            }
        }
        _ => narrowing.join(" AND "),
    };
    let metrics = spec
        .filter(|spec| spec.kind == RuleKind::Promql)
        .map(|spec| format!("/explore?q={}&{range}", encode(&spec.expr)));
    AlertLinks { logs: format!("/logs?q={}&{range}", encode(&logs_query)), metrics }
}

fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC).to_string()
}

/// "I'm on it": repeats and escalation of this episode stop, and the rule's channels are told
/// (PagerDuty acknowledges the incident). A new instance, or a resolution and refire, starts
/// unacknowledged.
pub async fn acknowledge(
    database: &Database,
    config: &AlertsConfig,
    actor: &Actor,
    fingerprint: &str,
    note: &str,
) -> Result<Alert, AlertError> {
    if note.chars().count() > MAX_NOTE_CHARS {
        return Err(AlertError::Invalid(format!("note must be at most {MAX_NOTE_CHARS} characters")));
    }
    let row = database.alert_instance(fingerprint).await?.ok_or_else(|| AlertError::NoAlert(fingerprint.to_owned()))?;
    let state = state_of(&row.state);
    if state != AlertState::Firing {
        return Err(AlertError::NotFiring(state.as_str()));
    }
    if let Some(by) = &row.acknowledged_by {
        return Err(AlertError::AlreadyAcknowledged { by: by.clone() });
    }
    let spec = match database.alert_rule(row.rule_id).await? {
        Some(rule_row) => Some(rule(&rule_row)?.spec),
        None => None,
    };
    let now = now_millis();
    let acknowledged = AlertInstanceRow {
        acknowledged_by: Some(actor.name.clone()),
        acknowledged_at_millis: Some(now),
        acknowledgement_note: Some(note.to_owned()),
        ..row
    };
    let shown = alert(&acknowledged)?;
    let alertname = shown.labels.get("alertname").cloned().unwrap_or_default();
    let routing = match &spec {
        Some(spec) => Routing::of_rule(spec, &config.routes, &shown.labels),
        None => external::routing(&alertname, &config.routes, &shown.labels),
    };
    let deliveries = deliveries(&shown, &routing, &config.external_url, &[(NotificationEvent::Acknowledged, 0)])?;
    let event = AlertEventRow {
        at_millis: now,
        kind: "acknowledged".to_owned(),
        actor: actor.name.clone(),
        detail: note.to_owned(),
    };
    database.save_alert(&acknowledged, Some(&event), &deliveries).await?;
    let target = format!("{} {fingerprint}", routing.rule_name);
    audit::record(database, actor, Action::AlertAcknowledge, &target, AuditOutcome::Success, note).await;
    Ok(shown)
}

/// Sends a made-up alert to a channel now, and says whether it arrived.
pub async fn send_test(
    database: &Database,
    secrets: &SecretBox,
    http: &reqwest::Client,
    actor: &Actor,
    channel: &str,
    external_url: &str,
) -> Result<(), AlertError> {
    let row =
        database.integration_named(channel).await?.ok_or_else(|| AlertError::UnknownChannel(channel.to_owned()))?;
    let kind: IntegrationKind = row.kind.parse()?;
    if !is_channel(kind) {
        return Err(AlertError::UnknownChannel(channel.to_owned()));
    }
    let now = millis_to_timestamp(now_millis());
    let labels: BTreeMap<String, String> = [("alertname", "VigilTestNotification"), ("severity", "info")]
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .into();
    let alert = Alert {
        fingerprint: "test".to_owned(),
        rule_id: 0,
        labels,
        annotations: [("summary".to_owned(), format!("A test notification sent by {}", actor.name))].into(),
        state: AlertState::Firing,
        value: None,
        active_since: now,
        firing_since: Some(now),
        resolved_at: None,
        episode: 0,
        acknowledged: None,
        source: "rule".to_owned(),
        ends_at: None,
    };
    let body = Notification {
        event: NotificationEvent::Test,
        dedup_key: format!("test-{}", now.as_unix_nanos()),
        alert,
        rule_name: "VigilTestNotification".to_owned(),
        runbook_url: None,
        url: format!("{external_url}/alerts"),
    };
    let settings: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&row.settings)?;
    let opened = crate::integrations::open_secrets(secrets, &row)?;
    let target = channels::Target { name: &row.name, kind, settings: &settings, secrets: &opened };
    let result = channels::deliver(http, &target, &WebhookBody::single(body)).await;
    let (outcome, detail) = match &result {
        Ok(()) => (AuditOutcome::Success, String::new()),
        Err(error) => (AuditOutcome::Failure, error.to_string()),
    };
    audit::record(database, actor, Action::NotificationTest, channel, outcome, &detail).await;
    Ok(result?)
}

fn kind_text(spec: &AlertRuleSpec) -> &'static str {
    match spec.kind {
        RuleKind::Promql => "promql",
        RuleKind::Logs => "logs",
    }
}
