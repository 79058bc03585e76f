//! A rule evaluated before it is saved: its values now, and "when would it have fired?" over
//! the last hours, with `for` and `keep_firing_for` applied as the evaluator applies them.
//! A PromQL rule is replayed on a range query; a log rule on the match counts of consecutive
//! windows (one count per window, not per service or host).

use std::collections::BTreeMap;

use vigil_logstore::LogStore;
use vigil_proto::alerts::{AlertRuleSpec, FiringSpan, PreviewSample, RuleKind, RulePreview, RulePreviewRequest};
use vigil_proto::metrics::QuerySeries;
use vigil_proto::{LogQuery, Timestamp};

use super::{AlertError, evaluator, rules};
use crate::prometheus::query::Prometheus;
use crate::store::now_millis;

const MAX_HOURS: u32 = 48;

fn holds(spec: &AlertRuleSpec, value: f64) -> bool {
    match (spec.comparator, spec.threshold) {
        (Some(comparator), Some(threshold)) => comparator.holds(value, threshold),
        _ => true,
    }
}

pub async fn preview(
    prometheus: &Prometheus,
    log_store: &dyn LogStore,
    request: &RulePreviewRequest,
) -> Result<RulePreview, AlertError> {
    let spec = &request.rule;
    rules::validate(spec)?;
    if request.hours == 0 || request.hours > MAX_HOURS {
        return Err(AlertError::Invalid(format!("hours must be 1 to {MAX_HOURS}")));
    }
    let now = now_millis();
    let samples = match spec.kind {
        RuleKind::Promql => evaluator::promql_samples(prometheus, spec).await,
        RuleKind::Logs => evaluator::log_samples(log_store, spec, now).await,
    }?;
    let now_samples =
        samples.into_iter().map(|(labels, value)| PreviewSample { holds: holds(spec, value), labels, value }).collect();
    let end = now as f64 / 1000.0;
    let start = end - f64::from(request.hours) * 3600.0;
    let (series, step) = match spec.kind {
        RuleKind::Promql => {
            let result = prometheus.range(&spec.expr, start, end, None).await?;
            let step = result.step_seconds.unwrap_or(60.0);
            (result.series, step)
        }
        RuleKind::Logs => {
            // Windows at multiples of their width (as Prometheus aligns a range query's steps),
            // so that the same lines fall in the same window whenever the preview is asked for.
            let window = spec.window_seconds.max(1) as f64;
            let aligned = (start / window).floor() * window;
            (log_history(log_store, spec, aligned, end).await?, window)
        }
    };
    let spans = series.iter().flat_map(|series| spans(spec, series, step)).collect();
    Ok(RulePreview {
        now: now_samples,
        series,
        step_seconds: step,
        comparator: spec.comparator,
        threshold: spec.threshold,
        spans,
    })
}

/// The matches of the log query in consecutive windows over the hours.
async fn log_history(
    log_store: &dyn LogStore,
    spec: &AlertRuleSpec,
    start: f64,
    end: f64,
) -> Result<Vec<QuerySeries>, AlertError> {
    let timestamp = |seconds: f64| {
        Timestamp::from_unix_nanos((seconds * 1e9) as i64).map_err(|error| AlertError::Invalid(error.to_string()))
    };
    let query = LogQuery {
        q: spec.expr.clone(),
        start: Some(timestamp(start)?),
        end: Some(timestamp(end)?),
        ..LogQuery::default()
    };
    let window = i64::try_from(spec.window_seconds).unwrap_or(i64::MAX / 2_000_000_000).saturating_mul(1_000_000_000);
    let histogram = log_store.histogram(query, window).await?;
    let points = histogram
        .buckets
        .iter()
        .map(|bucket| {
            let at = bucket.start.as_unix_nanos() as f64 / 1e9 + spec.window_seconds as f64;
            (at, Some(bucket.counts.values().sum::<u64>() as f64))
        })
        .collect();
    Ok(vec![QuerySeries { labels: BTreeMap::new(), points }])
}

/// The spans in which a series would have fired: the condition held for `for`, and ended
/// once it stopped holding for longer than `keep_firing_for`.
fn spans(spec: &AlertRuleSpec, series: &QuerySeries, step: f64) -> Vec<FiringSpan> {
    let pending_for = spec.for_seconds as f64;
    let keep = spec.keep_firing_for_seconds as f64;
    let at = |seconds: f64| Timestamp::from_unix_nanos((seconds * 1e9) as i64).ok();
    let mut spans = Vec::new();
    let mut held_since: Option<f64> = None;
    let mut firing_since: Option<f64> = None;
    let mut last_held: Option<f64> = None;
    for (time, value) in &series.points {
        let holding = value.is_some_and(|value| holds(spec, value));
        if holding {
            let since = *held_since.get_or_insert(*time);
            last_held = Some(*time);
            if firing_since.is_none() && *time - since >= pending_for {
                firing_since = Some(*time);
            }
        } else {
            held_since = None;
            if let (Some(since), Some(last)) = (firing_since, last_held)
                && *time - last > keep
            {
                if let (Some(start), Some(end)) = (at(since), at(last + step)) {
                    spans.push(FiringSpan { labels: series.labels.clone(), start, end: Some(end) });
                }
                firing_since = None;
            }
        }
    }
    if let Some(since) = firing_since
        && let Some(start) = at(since)
    {
        spans.push(FiringSpan { labels: series.labels.clone(), start, end: None });
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(for_seconds: u64, keep_firing_for_seconds: u64) -> AlertRuleSpec {
        serde_json::from_value(serde_json::json!({
            "name": "X", "kind": "promql", "expr": "x", "comparator": ">", "threshold": 5,
            "for_seconds": for_seconds, "keep_firing_for_seconds": keep_firing_for_seconds,
        }))
        .unwrap()
    }

    fn series(values: &[f64]) -> QuerySeries {
        QuerySeries {
            labels: BTreeMap::new(),
            points: values.iter().enumerate().map(|(index, value)| (index as f64 * 60.0, Some(*value))).collect(),
        }
    }

    #[test]
    fn spans_need_for_and_bridge_short_gaps_with_keep_firing_for() {
        let values = [0.0, 9.0, 9.0, 9.0, 0.0, 0.0, 9.0, 0.0, 9.0, 9.0];
        // Without `for`: three spans, the last still firing.
        let spans = spans(&spec(0, 0), &series(&values), 60.0);
        assert_eq!(spans.len(), 3);
        assert_eq!(spans[0].start.as_unix_nanos(), 60_000_000_000);
        assert_eq!(spans[0].end.unwrap().as_unix_nanos(), 240_000_000_000);
        assert!(spans[2].end.is_none());
        // `for` two minutes: only the first run of three points lasts long enough.
        let long = super::spans(&spec(120, 0), &series(&values), 60.0);
        assert_eq!(long.len(), 1);
        assert_eq!(long[0].start.as_unix_nanos(), 180_000_000_000);
        // keep_firing_for two minutes bridges the gaps: one span from the first point on.
        let kept = super::spans(&spec(0, 120), &series(&values), 60.0);
        assert_eq!(kept.len(), 1, "{kept:?}");
        assert!(kept[0].end.is_none());
    }
}
