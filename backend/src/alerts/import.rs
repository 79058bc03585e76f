//! A Prometheus rule file imported as alert rules, so that existing rules carry over: each
//! alerting rule (`alert`, `expr`, `for`, `keep_firing_for`, `labels`, `annotations`) becomes
//! a PromQL rule evaluated at its group's interval; recording rules are skipped (Prometheus
//! keeps evaluating them). A rule of the same name is updated, so importing again is safe.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;
use vigil_logstore::LogStore;
use vigil_proto::alerts::{AlertRuleSpec, RuleImport, RuleKind, Severity, SkippedRule};

use super::{AlertError, create_rule, update_rule};
use crate::audit::Actor;
use crate::store::Database;

/// Prometheus' default `evaluation_interval`.
const DEFAULT_INTERVAL_SECONDS: u64 = 60;

#[derive(Debug, Deserialize)]
struct RuleFile {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize)]
struct RuleGroup {
    name: String,
    #[serde(default)]
    interval: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    rules: Vec<PrometheusRule>,
}

#[derive(Debug, Deserialize)]
struct PrometheusRule {
    #[serde(default)]
    alert: Option<String>,
    #[serde(default)]
    record: Option<String>,
    expr: serde_norway::Value,
    #[serde(default, rename = "for")]
    pending_for: Option<String>,
    #[serde(default)]
    keep_firing_for: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

/// A text that is not a Prometheus duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a duration such as 30s, 5m or 1h30m")]
pub struct DurationError(String);

/// A Prometheus duration (`30s`, `5m`, `1h30m`, `1d`) in whole seconds.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let text = text.trim();
    let error = || DurationError(text.to_owned());
    if text.is_empty() {
        return Err(error());
    }
    let mut total_millis: u64 = 0;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|character: char| !character.is_ascii_digit()).unwrap_or(rest.len());
        if digits == 0 {
            return Err(error());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| error())?;
        rest = &rest[digits..];
        let unit = ["ms", "s", "m", "h", "d", "w", "y"]
            .into_iter()
            .find(|unit| rest.starts_with(unit) && !(*unit == "m" && rest.starts_with("ms")))
            .ok_or_else(error)?;
        rest = &rest[unit.len()..];
        let millis: u64 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            _ => 31_536_000_000,
        };
        total_millis = total_millis.saturating_add(number.saturating_mul(millis));
    }
    Ok(total_millis / 1000)
}

fn severity(labels: &BTreeMap<String, String>) -> Severity {
    match labels.get("severity").map(|value| value.to_ascii_lowercase()).as_deref() {
        Some("critical" | "page" | "error") => Severity::Critical,
        Some("info" | "informational" | "none") => Severity::Info,
        _ => Severity::Warning,
    }
}

/// The alert rules a rule file holds, or why each cannot be one.
fn specs(yaml: &str, channels: &[String]) -> Result<Vec<Result<AlertRuleSpec, SkippedRule>>, AlertError> {
    let file: RuleFile = serde_norway::from_str(yaml)
        .map_err(|error| AlertError::Invalid(format!("not a Prometheus rule file: {error}")))?;
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for group in file.groups {
        let interval = match group.interval.as_deref().map(parse_duration).transpose() {
            Ok(interval) => interval.unwrap_or(DEFAULT_INTERVAL_SECONDS).max(1),
            Err(problem) => {
                out.push(Err(SkippedRule { name: group.name.clone(), reason: format!("group interval: {problem}") }));
                continue;
            }
        };
        for rule in group.rules {
            let Some(name) = rule.alert else {
                let name = rule.record.unwrap_or_default();
                out.push(Err(SkippedRule {
                    name,
                    reason: "a recording rule: Prometheus keeps evaluating it".to_owned(),
                }));
                continue;
            };
            let skip = |reason: String| SkippedRule { name: name.clone(), reason };
            if !seen.insert(name.clone()) {
                out.push(Err(skip("a rule of this name came earlier in the file".to_owned())));
                continue;
            }
            let expr = match &rule.expr {
                serde_norway::Value::String(text) => text.trim().to_owned(),
                serde_norway::Value::Number(number) => number.to_string(),
                _ => {
                    out.push(Err(skip("expr must be a PromQL string".to_owned())));
                    continue;
                }
            };
            let durations = (
                rule.pending_for.as_deref().map(parse_duration).transpose(),
                rule.keep_firing_for.as_deref().map(parse_duration).transpose(),
            );
            let (for_seconds, keep_firing_for_seconds) = match durations {
                (Ok(pending), Ok(keep)) => (pending.unwrap_or(0), keep.unwrap_or(0)),
                (Err(problem), _) => {
                    out.push(Err(skip(format!("for: {problem}"))));
                    continue;
                }
                (_, Err(problem)) => {
                    out.push(Err(skip(format!("keep_firing_for: {problem}"))));
                    continue;
                }
            };
            let mut labels = group.labels.clone();
            labels.extend(rule.labels);
            let runbook_url = rule.annotations.get("runbook_url").filter(|url| url.starts_with("http")).cloned();
            out.push(Ok(AlertRuleSpec {
                name,
                group: group.name.clone(),
                kind: RuleKind::Promql,
                expr,
                window_seconds: 300,
                group_by: None,
                comparator: None,
                threshold: None,
                for_seconds,
                keep_firing_for_seconds,
                interval_seconds: interval,
                severity: severity(&labels),
                labels,
                annotations: rule.annotations,
                runbook_url,
                channels: channels.to_vec(),
                escalate_after_seconds: 0,
                escalate_to: Vec::new(),
                repeat_interval_seconds: 0,
                enabled: true,
            }));
        }
    }
    Ok(out)
}

/// Imports a rule file: every alerting rule created, or updated when one of its name exists.
pub async fn import(
    database: &Database,
    log_store: &dyn LogStore,
    actor: &Actor,
    yaml: &str,
    channels: &[String],
) -> Result<RuleImport, AlertError> {
    let specs = specs(yaml, channels)?;
    let existing: BTreeMap<String, i64> =
        database.alert_rules().await?.into_iter().map(|row| (row.name, row.id)).collect();
    let mut result = RuleImport::default();
    for spec in specs {
        let spec = match spec {
            Ok(spec) => spec,
            Err(skipped) => {
                result.skipped.push(skipped);
                continue;
            }
        };
        let name = spec.name.clone();
        let outcome = match existing.get(&name) {
            Some(id) => update_rule(database, log_store, actor, *id, spec).await.map(|_| &mut result.updated),
            None => create_rule(database, log_store, actor, spec).await.map(|_| &mut result.created),
        };
        match outcome {
            Ok(list) => list.push(name),
            Err(AlertError::Invalid(reason) | AlertError::UnknownChannel(reason) | AlertError::Query(reason)) => {
                result.skipped.push(SkippedRule { name, reason });
            }
            Err(error) => return Err(error),
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_prometheus_writes_them() {
        assert_eq!(parse_duration("30s"), Ok(30));
        assert_eq!(parse_duration("5m"), Ok(300));
        assert_eq!(parse_duration("1h30m"), Ok(5400));
        assert_eq!(parse_duration("1d"), Ok(86_400));
        assert_eq!(parse_duration("1500ms"), Ok(1));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("m5").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn alerting_rules_become_rules_and_recording_rules_are_skipped() {
        let yaml = r#"
groups:
  - name: api
    interval: 30s
    labels: {team: web}
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: HighErrorRate
        expr: |
          sum(rate(http_requests_total{code=~"5.."}[5m])) / sum(rate(http_requests_total[5m])) > 0.05
        for: 10m
        keep_firing_for: 2m
        labels: {severity: page}
        annotations:
          summary: "{{ $labels.job }} fails"
          runbook_url: https://runbooks.example/errors
      - alert: HighErrorRate
        expr: up == 0
      - alert: BadFor
        expr: up == 0
        for: soon
  - name: defaults
    rules:
      - alert: InstanceDown
        expr: up == 0
"#;
        let specs = specs(yaml, &["on-call".to_owned()]).unwrap();
        assert_eq!(specs.len(), 5);
        assert!(specs[0].as_ref().unwrap_err().reason.contains("recording rule"));
        let rule = specs[1].as_ref().unwrap();
        assert_eq!((rule.name.as_str(), rule.group.as_str(), rule.interval_seconds), ("HighErrorRate", "api", 30));
        assert_eq!((rule.for_seconds, rule.keep_firing_for_seconds), (600, 120));
        assert!(rule.expr.starts_with("sum(rate(") && !rule.expr.ends_with('\n'));
        assert_eq!(rule.severity, Severity::Critical);
        assert_eq!(rule.labels["team"], "web", "group labels carry over");
        assert_eq!(rule.runbook_url.as_deref(), Some("https://runbooks.example/errors"));
        assert_eq!(rule.channels, ["on-call"]);
        assert!(specs[2].as_ref().unwrap_err().reason.contains("earlier in the file"));
        assert!(specs[3].as_ref().unwrap_err().reason.starts_with("for:"));
        assert_eq!(specs[4].as_ref().unwrap().interval_seconds, 60, "Prometheus' default interval");
        assert!(super::specs("groups: {not: a list}", &[]).is_err());
    }
}
