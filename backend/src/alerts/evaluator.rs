//! Evaluates every enabled rule on its interval, on the one node that holds the evaluator's
//! lease, and writes what changed (see `transition`). A rule that cannot be evaluated
//! (Prometheus away, a query that fails) keeps its alerts as they are, shows the error on the
//! rule, and after three failed intervals fires `VigilRuleEvaluationFailing` to the rule's
//! channels: an alert that cannot be checked never goes quiet by accident.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use vigil_logstore::LogStore;
use vigil_proto::LogQuery;
use vigil_proto::alerts::{AlertRuleSpec, LogGroupBy, RuleKind};

use super::silences::{self, Compiled};
use super::transition::{self, Seen, Timing};
use super::{AlertError, Routing, prepare_change, rules};
use crate::config::AlertsConfig;
use crate::prometheus::query::Prometheus;
use crate::store::{AlertInstanceRow, AlertRuleRow, Database, now_millis};
use crate::telemetry::{Metrics, error_chain};

/// The lease the evaluating node holds.
pub const LEASE: &str = "alert-evaluator";
/// The alert a rule that cannot be evaluated fires.
pub const EVALUATION_FAILING: &str = "VigilRuleEvaluationFailing";
/// How often alerts received from outside are checked for their end.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Groups of a log rule counted at most (the most frequent values).
const MAX_LOG_GROUPS: usize = 100;

/// What evaluation reads and writes.
pub struct Parts<'a> {
    pub database: &'a Database,
    pub prometheus: &'a Prometheus,
    pub log_store: &'a dyn LogStore,
    pub config: &'a AlertsConfig,
    pub metrics: &'a Metrics,
}

/// Whether this node holds the lease, shared with the notification sender; and a wake-up for
/// the sender when notifications were written.
#[derive(Debug, Default)]
pub struct Coordination {
    pub holding: AtomicBool,
    pub written: Notify,
}

/// Runs until `shutdown`; `holder` names this node in the lease.
pub async fn run(parts: Parts<'_>, holder: &str, coordination: Arc<Coordination>, shutdown: CancellationToken) {
    let tick = Duration::from_millis(parts.config.tick_millis);
    let lease = millis(parts.config.lease_seconds);
    let mut next_due: HashMap<i64, i64> = HashMap::new();
    let mut last_sweep = Instant::now() - SWEEP_EVERY;
    let mut ticker = tokio::time::interval(tick);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = now_millis();
        match parts.database.try_lease(LEASE, holder, now, now + lease).await {
            Ok(Some(_)) => {
                if !coordination.holding.swap(true, Ordering::SeqCst) {
                    tracing::info!(holder, "this node evaluates alert rules");
                }
            }
            Ok(None) => {
                if coordination.holding.swap(false, Ordering::SeqCst) {
                    tracing::warn!(holder, "another node took over alert evaluation");
                }
                next_due.clear();
                continue;
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot take the alert evaluator's lease");
                continue;
            }
        }
        if last_sweep.elapsed() >= SWEEP_EVERY {
            last_sweep = Instant::now();
            if let Err(error) = super::external::resolve_ended(parts.database, parts.config, now).await {
                tracing::warn!(error = %error_chain(&error), "cannot resolve the alerts received that ended");
            }
        }
        let rules = match parts.database.alert_rules().await {
            Ok(rules) => rules,
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot read the alert rules");
                continue;
            }
        };
        let mut due = Vec::new();
        for row in rules {
            let Ok(spec) = serde_json::from_str::<AlertRuleSpec>(&row.spec) else {
                continue;
            };
            if !spec.enabled {
                continue;
            }
            let interval = millis(spec.interval_seconds);
            let scheduled = *next_due.get(&row.id).unwrap_or(&now);
            if scheduled > now {
                continue;
            }
            // On time: the next one an interval after this one's slot; late by more than an
            // interval: an interval from now (no burst of catch-up evaluations).
            let next = if now - scheduled < interval { scheduled + interval } else { now + interval };
            next_due.insert(row.id, next);
            parts.metrics.alert_evaluation_lag.observe((now - scheduled) as f64 / 1000.0);
            due.push((row, spec));
        }
        if due.is_empty() {
            continue;
        }
        // When the silences cannot be read, alerts notify: better twice than never.
        let active = silences::active(parts.database, now).await.unwrap_or_else(|error| {
            tracing::warn!(error = %error_chain(&error), "cannot read the silences");
            Vec::new()
        });
        futures::stream::iter(due)
            .for_each_concurrent(parts.config.max_concurrent_evaluations, |(row, spec)| {
                let (parts, active) = (&parts, &active);
                async move {
                    if let Err(error) = evaluate(parts, &row, &spec, active).await {
                        tracing::warn!(rule = %spec.name, error = %error_chain(&error), "cannot save an evaluation");
                    }
                }
            })
            .await;
        coordination.written.notify_one();
    }
    coordination.holding.store(false, Ordering::SeqCst);
    if let Err(error) = parts.database.release_lease(LEASE, holder).await {
        tracing::warn!(error = %error_chain(&error), "cannot release the alert evaluator's lease");
    }
}

fn millis(seconds: u64) -> i64 {
    i64::try_from(seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2)
}

/// What a rule's query returned: a label set and its value, for every series or group.
pub(crate) type Samples = Vec<(BTreeMap<String, String>, f64)>;

/// Evaluates one rule now and writes the changes.
pub async fn evaluate(
    parts: &Parts<'_>,
    row: &AlertRuleRow,
    spec: &AlertRuleSpec,
    silences: &[Compiled],
) -> Result<(), AlertError> {
    let started = Instant::now();
    let now = now_millis();
    let samples = match spec.kind {
        RuleKind::Promql => promql_samples(parts.prometheus, spec).await,
        RuleKind::Logs => log_samples(parts.log_store, spec, now).await,
    };
    let interval = millis(spec.interval_seconds);
    let timing = Timing {
        pending_for: millis(spec.for_seconds),
        keep_firing_for: millis(spec.keep_firing_for_seconds),
        repeat_every: (spec.repeat_interval_seconds > 0).then(|| millis(spec.repeat_interval_seconds)),
        escalate_after: (spec.escalate_after_seconds > 0).then(|| millis(spec.escalate_after_seconds)),
    };
    let failing_labels: BTreeMap<String, String> =
        [("alertname", EVALUATION_FAILING), ("rule", spec.name.as_str()), ("severity", "warning")]
            .map(|(name, value)| (name.to_owned(), value.to_owned()))
            .into();
    let failing_timing = Timing { pending_for: 2 * interval, keep_firing_for: 0, ..timing };
    let mut holding: HashMap<String, (Seen, Timing)> = HashMap::new();
    let error = match samples {
        Ok(samples) => {
            for (series_labels, value) in samples {
                let holds = match (spec.comparator, spec.threshold) {
                    (Some(comparator), Some(threshold)) => comparator.holds(value, threshold),
                    _ => true,
                };
                if !holds {
                    continue;
                }
                let mut labels = series_labels;
                labels.remove("__name__");
                labels.extend(spec.labels.iter().map(|(name, value)| (name.clone(), value.clone())));
                labels.insert("alertname".to_owned(), spec.name.clone());
                labels.entry("severity".to_owned()).or_insert_with(|| spec.severity.as_str().to_owned());
                let annotations = annotations(spec, &labels, Some(value));
                let fingerprint = rules::fingerprint(row.id, &labels);
                let seen = Seen {
                    value: Some(value),
                    labels: serde_json::to_string(&labels)?,
                    annotations: serde_json::to_string(&annotations)?,
                };
                holding.insert(fingerprint, (seen, timing));
            }
            None
        }
        Err(error) => {
            let annotations: BTreeMap<String, String> =
                [("summary".to_owned(), format!("alert rule {:?} cannot be evaluated: {error}", spec.name))].into();
            let seen = Seen {
                value: None,
                labels: serde_json::to_string(&failing_labels)?,
                annotations: serde_json::to_string(&annotations)?,
            };
            holding.insert(rules::fingerprint(row.id, &failing_labels), (seen, failing_timing));
            Some(error.to_string())
        }
    };
    let failing_fingerprint = rules::fingerprint(row.id, &failing_labels);
    let previous = parts.database.alert_instances(Some(row.id)).await?;
    let mut changes = Vec::new();
    for instance in &previous {
        // While the rule cannot be evaluated, its alerts stay as they are.
        if error.is_some() && instance.fingerprint != failing_fingerprint {
            continue;
        }
        let (seen, timing) = match holding.remove(&instance.fingerprint) {
            Some((seen, timing)) => (Some(seen), timing),
            None if instance.fingerprint == failing_fingerprint => (None, failing_timing),
            None => (None, timing),
        };
        let change = transition::step(&instance.fingerprint, row.id, Some(instance), seen, now, timing);
        let change = change.or_else(|| untold(instance, silences));
        changes.extend(change);
    }
    for (fingerprint, (seen, timing)) in holding {
        changes.extend(transition::step(&fingerprint, row.id, None, Some(seen), now, timing));
    }
    let mut prepared = Vec::with_capacity(changes.len());
    for change in changes {
        let labels: BTreeMap<String, String> = serde_json::from_str(&change.instance.labels)?;
        let routing = Routing::of_rule(spec, &parts.config.routes, &labels);
        prepared.push(prepare_change(parts.config, &routing, change, silences)?);
    }
    // One transaction for the whole evaluation: a rule with thousands of alerts is one write.
    parts.database.save_alerts(&prepared).await?;
    let duration = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    parts.metrics.alert_evaluations.inc();
    parts.metrics.alert_evaluation_duration.observe(started.elapsed().as_secs_f64());
    if error.is_some() {
        parts.metrics.alert_evaluation_failures.inc();
    }
    let message = error.as_deref();
    parts.database.record_evaluation(row.id, now, message, duration).await?;
    Ok(())
}

/// A firing alert that was silenced when it fired and is not any more: it is told now.
fn untold(instance: &AlertInstanceRow, silences: &[Compiled]) -> Option<transition::Change> {
    if instance.state != "firing" || instance.notified {
        return None;
    }
    let labels: BTreeMap<String, String> = serde_json::from_str(&instance.labels).ok()?;
    if silences.iter().any(|silence| silence.matches(&labels)) {
        return None;
    }
    Some(transition::Change { actor: "evaluator", instance: instance.clone(), event: None, notify: Vec::new() })
}

fn annotations(
    spec: &AlertRuleSpec,
    labels: &BTreeMap<String, String>,
    value: Option<f64>,
) -> BTreeMap<String, String> {
    let mut annotations: BTreeMap<String, String> = spec
        .annotations
        .iter()
        .map(|(name, template)| (name.clone(), rules::expand(template, labels, value)))
        .collect();
    if let Some(url) = &spec.runbook_url {
        annotations.entry("runbook_url".to_owned()).or_insert_with(|| url.clone());
    }
    annotations
}

/// Every series the PromQL returns, with its value (series without a number are left out).
pub(crate) async fn promql_samples(prometheus: &Prometheus, spec: &AlertRuleSpec) -> Result<Samples, AlertError> {
    let result = prometheus.instant(&spec.expr, None).await?;
    Ok(result
        .series
        .into_iter()
        .filter_map(|series| {
            let value = series.points.last().and_then(|(_, value)| *value)?;
            Some((series.labels, value))
        })
        .collect())
}

/// The matches of the log query over the window: one count, or one per service or host.
pub(crate) async fn log_samples(
    log_store: &dyn LogStore,
    spec: &AlertRuleSpec,
    now: i64,
) -> Result<Samples, AlertError> {
    let end = crate::store::millis_to_timestamp(now);
    let window = i64::try_from(spec.window_seconds).unwrap_or(i64::MAX / 2).saturating_mul(1_000_000_000);
    let query = LogQuery {
        q: spec.expr.clone(),
        start: Some(end.saturating_add_nanos(-window)),
        end: Some(end),
        limit: Some(1),
        ..LogQuery::default()
    };
    match spec.group_by {
        None => {
            let page = log_store.search(query.counting_all()).await?;
            Ok(vec![(BTreeMap::new(), page.total as f64)])
        }
        Some(group_by) => {
            let values = log_store.field_values(query, MAX_LOG_GROUPS).await?;
            let (label, groups) = match group_by {
                LogGroupBy::Service => ("service", values.service),
                LogGroupBy::Host => ("host", values.host),
            };
            Ok(groups.into_iter().map(|group| ([(label.to_owned(), group.value)].into(), group.count as f64)).collect())
        }
    }
}
