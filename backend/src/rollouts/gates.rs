//! Health gates: a PromQL query (through the Prometheus client) or a log query (matching lines
//! per minute, through the log store, as the alert evaluator counts them), compared with a
//! threshold every interval of the analysis window; or, for the agent provider, a comparison
//! of the hosts on the new version with those on the old ([`super::comparison`]). A gate fails once its failing evaluations
//! in a row exceed `failures_allowed`; an evaluation that cannot be made (Prometheus away, no
//! data) counts as failing, so that a gate never passes by being blind. What happened to each
//! gate is kept in the rollout as JSON ([`Analysis`]), so a restart resumes the analysis.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use vigil_logstore::LogStore;
use vigil_proto::LogQuery;
use vigil_proto::alerts::Comparator;
use vigil_proto::rollouts::{GateKind, GateResult};

use super::comparison::{self, HostVersions};
use crate::prometheus::query::{Prometheus, choose_step};
use crate::store::{GateRow, millis_to_timestamp};

/// The shortest span a log gate's rate is taken over, so that a burst at the start of the
/// analysis is not divided by a few seconds.
const MIN_RATE_SPAN_MILLIS: i64 = 60_000;

/// One evaluation of a gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    pub value: Option<f64>,
    pub healthy: bool,
    pub detail: String,
}

/// Where a gate is in the analysis.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    pub evaluations: u32,
    pub consecutive_failures: u32,
    /// When it is evaluated next (Unix milliseconds; 0: at once).
    pub next_at_millis: i64,
    pub failed: bool,
    /// The evaluations for the gate's chart, oldest first: the newest
    /// [`GateResult::MAX_SAMPLES`].
    #[serde(default)]
    pub samples: Vec<Sample>,
}

/// One evaluation as the gate's chart shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at_millis: i64,
    pub value: Option<f64>,
    pub healthy: bool,
}

/// Every gate's progress, by gate id.
pub type Analysis = BTreeMap<i64, Progress>;

/// A gate's progress after an evaluation at `now`.
pub fn judge(previous: &Progress, healthy: bool, gate: &GateRow, now: i64) -> Progress {
    let consecutive_failures = if healthy { 0 } else { previous.consecutive_failures + 1 };
    let allowed = u32::try_from(gate.failures_allowed).unwrap_or(u32::MAX);
    Progress {
        evaluations: previous.evaluations + 1,
        consecutive_failures,
        next_at_millis: now + gate.interval_seconds.max(1) * 1000,
        failed: previous.failed || consecutive_failures > allowed,
        samples: previous.samples.clone(),
    }
}

impl Progress {
    /// Keeps an evaluation for the chart, dropping the oldest beyond the cap.
    pub fn record(&mut self, at_millis: i64, evaluation: &Evaluation) {
        if self.samples.len() >= GateResult::MAX_SAMPLES {
            self.samples.remove(0);
        }
        self.samples.push(Sample { at_millis, value: evaluation.value, healthy: evaluation.healthy });
    }
}

/// The comparator of a stored gate.
pub fn comparator(text: &str) -> Option<Comparator> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).ok()
}

/// Evaluates a gate now; `since` is when the analysis began (a log gate counts nothing older,
/// nor does a comparison gate); `hosts` are the rollout's hosts by version, for a comparison
/// gate (none: no host is on either).
pub async fn evaluate(
    prometheus: &Prometheus,
    log_store: &dyn LogStore,
    gate: &GateRow,
    hosts: Option<&HostVersions>,
    since_millis: i64,
    now_millis: i64,
) -> Evaluation {
    let Some(comparator) = comparator(&gate.comparator) else {
        return unhealthy(None, format!("comparator {:?} is not known", gate.comparator));
    };
    if gate.kind == GateKind::Comparison.as_str() {
        let evaluation =
            compare(prometheus, gate, comparator, hosts.cloned().unwrap_or_default(), since_millis, now_millis).await;
        return Evaluation { detail: format!("{}: {}", gate.name, evaluation.detail), ..evaluation };
    }
    let value = match gate.kind.as_str() {
        "promql" => promql_value(prometheus, &gate.query).await,
        "log" => log_rate(log_store, gate, since_millis, now_millis).await,
        other => Err(format!("gate kind {other:?} is not known")),
    };
    match value {
        Ok(value) => {
            let healthy = comparator.holds(value, gate.threshold);
            let verdict = if healthy { "healthy" } else { "failing" };
            let detail =
                format!("{}: {value} (healthy while {} {}): {verdict}", gate.name, comparator.as_str(), gate.threshold);
            Evaluation { value: Some(value), healthy, detail }
        }
        Err(error) => unhealthy(None, format!("{}: {error}", gate.name)),
    }
}

fn unhealthy(value: Option<f64>, detail: String) -> Evaluation {
    Evaluation { value, healthy: false, detail: format!("{detail}: failing") }
}

/// The value of a PromQL query: its one series' value, or the worst of several (the largest;
/// a gate on many series is written with an aggregation to mean otherwise).
async fn promql_value(prometheus: &Prometheus, query: &str) -> Result<f64, String> {
    let result = prometheus.instant(query, None).await.map_err(|error| error.to_string())?;
    result
        .series
        .iter()
        .filter_map(|series| series.points.last().and_then(|(_, value)| *value))
        .filter(|value| !value.is_nan())
        .reduce(f64::max)
        .ok_or_else(|| "the query returned no data".to_owned())
}

/// Whether higher values are the worse for a comparator that says which are healthy (`<`, `<=`:
/// lower; `>`, `>=`: higher); none for `==` and `!=`, which name no direction.
pub fn higher_is_worse(comparator: Comparator) -> Option<bool> {
    match comparator {
        Comparator::Below | Comparator::AtMost => Some(true),
        Comparator::Above | Comparator::AtLeast => Some(false),
        Comparator::Equal | Comparator::NotEqual => None,
    }
}

/// A comparison gate: its query as a range over the window since the analysis began (at least
/// a second), split by host and judged by [`comparison::verdict`], the threshold as alpha.
async fn compare(
    prometheus: &Prometheus,
    gate: &GateRow,
    comparator: Comparator,
    hosts: HostVersions,
    since: i64,
    now: i64,
) -> Evaluation {
    let Some(higher_is_worse) = higher_is_worse(comparator) else {
        return unhealthy(None, format!("comparator {} names no direction", comparator.as_str()));
    };
    if hosts.new.is_empty() || hosts.old.is_empty() {
        return comparison::verdict(&comparison::Split::default(), &hosts, gate.threshold, higher_is_worse);
    }
    let end = now as f64 / 1000.0;
    let start = (since.max(now - gate.window_seconds * 1000) as f64 / 1000.0).min(end - 1.0);
    let step = choose_step(start, end);
    match prometheus.range(&gate.query, start, end, Some(step)).await {
        Ok(result) => {
            comparison::verdict(&comparison::split(&result.series, &hosts), &hosts, gate.threshold, higher_is_worse)
        }
        Err(error) => unhealthy(None, error.to_string()),
    }
}

/// Matching lines per minute since the later of the analysis start and the window's start.
async fn log_rate(log_store: &dyn LogStore, gate: &GateRow, since: i64, now: i64) -> Result<f64, String> {
    let start = since.max(now - gate.window_seconds * 1000);
    let query = LogQuery {
        q: gate.query.clone(),
        start: Some(millis_to_timestamp(start)),
        end: Some(millis_to_timestamp(now)),
        limit: Some(1),
        ..LogQuery::default()
    };
    let page = log_store.search(query.counting_all()).await.map_err(|error| error.to_string())?;
    let span = (now - start).max(MIN_RATE_SPAN_MILLIS) as f64;
    Ok(page.total as f64 * 60_000.0 / span)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(failures_allowed: i64) -> GateRow {
        GateRow {
            id: 1,
            name: "errors".to_owned(),
            kind: "log".to_owned(),
            query: "level:error".to_owned(),
            comparator: "<".to_owned(),
            threshold: 5.0,
            interval_seconds: 10,
            window_seconds: 60,
            failures_allowed,
            dry_run: false,
        }
    }

    #[test]
    fn a_gate_fails_after_more_consecutive_failures_than_allowed() {
        let gate = gate(2);
        let mut progress = Progress::default();
        for (at, healthy) in [(0, false), (1, false), (2, true), (3, false), (4, false)] {
            progress = judge(&progress, healthy, &gate, at);
            assert!(!progress.failed, "a healthy evaluation resets the count, at {at}");
        }
        progress = judge(&progress, false, &gate, 5);
        assert!(progress.failed && progress.consecutive_failures == 3);
        assert_eq!((progress.evaluations, progress.next_at_millis), (6, 10_005));
        let later = judge(&progress, true, &gate, 6);
        assert!(later.failed, "a failed gate stays failed");
    }

    #[test]
    fn a_chart_keeps_the_newest_evaluations() {
        let mut progress = Progress::default();
        for at in 0..(GateResult::MAX_SAMPLES as i64 + 3) {
            let evaluation = Evaluation { value: Some(at as f64), healthy: at % 2 == 0, detail: String::new() };
            progress.record(at, &evaluation);
        }
        assert_eq!(progress.samples.len(), GateResult::MAX_SAMPLES);
        assert_eq!(progress.samples[0].at_millis, 3);
        assert_eq!(
            progress.samples.last().map(|sample| sample.value),
            Some(Some(GateResult::MAX_SAMPLES as f64 + 2.0))
        );
    }

    #[test]
    fn no_failure_allowed_fails_at_the_first() {
        assert!(judge(&Progress::default(), false, &gate(0), 0).failed);
        assert!(!judge(&Progress::default(), true, &gate(0), 0).failed);
    }

    #[test]
    fn comparators_read_as_written() {
        assert_eq!(comparator("<"), Some(Comparator::Below));
        assert_eq!(comparator(">="), Some(Comparator::AtLeast));
        assert_eq!(comparator("lt"), None);
    }
}
