//! What a rule may say, how its labels and annotations are filled in, and how an alert
//! instance is named.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use vigil_proto::alerts::{AlertRuleSpec, RuleKind};
use vigil_proto::metrics::is_label_name;

use super::AlertError;

const MAX_NAME_CHARS: usize = 200;
const MAX_EXPR_BYTES: usize = 4096;
const MAX_LABELS: usize = 32;
const MAX_TEXT_CHARS: usize = 4096;
const MAX_CHANNELS: usize = 16;
/// A day: longer windows or delays are almost surely a unit mistake.
const MAX_SECONDS: u64 = 86_400;

/// Checks a rule as written; the message names the field.
pub fn validate(spec: &AlertRuleSpec) -> Result<(), AlertError> {
    if spec.name.trim().is_empty() || spec.name.chars().count() > MAX_NAME_CHARS {
        return Err(AlertError::Invalid(format!("name must be 1 to {MAX_NAME_CHARS} characters")));
    }
    if spec.name.chars().any(char::is_control) {
        return Err(AlertError::Invalid("name must not hold control characters".to_owned()));
    }
    if spec.expr.trim().is_empty() || spec.expr.len() > MAX_EXPR_BYTES {
        return Err(AlertError::Invalid(format!("expr must be 1 to {MAX_EXPR_BYTES} bytes")));
    }
    if spec.interval_seconds == 0 || spec.interval_seconds > MAX_SECONDS {
        return Err(AlertError::Invalid(format!("interval_seconds must be 1 to {MAX_SECONDS}")));
    }
    for (name, seconds) in [
        ("for_seconds", spec.for_seconds),
        ("keep_firing_for_seconds", spec.keep_firing_for_seconds),
        ("escalate_after_seconds", spec.escalate_after_seconds),
        ("repeat_interval_seconds", spec.repeat_interval_seconds),
    ] {
        if seconds > 7 * MAX_SECONDS {
            return Err(AlertError::Invalid(format!("{name} is longer than a week")));
        }
    }
    match spec.kind {
        RuleKind::Logs => {
            if spec.window_seconds == 0 || spec.window_seconds > MAX_SECONDS {
                return Err(AlertError::Invalid(format!("window_seconds must be 1 to {MAX_SECONDS}")));
            }
            if spec.comparator.is_none() || spec.threshold.is_none() {
                return Err(AlertError::Invalid(
                    "a log rule needs a comparator and a threshold (e.g. \">\" and 10)".to_owned(),
                ));
            }
        }
        RuleKind::Promql => {
            if spec.group_by.is_some() {
                return Err(AlertError::Invalid(
                    "group_by is for log rules; a PromQL rule groups with by (...)".to_owned(),
                ));
            }
            if spec.comparator.is_some() != spec.threshold.is_some() {
                return Err(AlertError::Invalid("comparator and threshold go together".to_owned()));
            }
        }
    }
    if spec.threshold.is_some_and(|threshold| !threshold.is_finite()) {
        return Err(AlertError::Invalid("threshold must be a finite number".to_owned()));
    }
    for (what, map) in [("labels", &spec.labels), ("annotations", &spec.annotations)] {
        if map.len() > MAX_LABELS {
            return Err(AlertError::Invalid(format!("at most {MAX_LABELS} {what}")));
        }
        for (name, value) in map {
            if !is_label_name(name) || name.starts_with("__") {
                return Err(AlertError::Invalid(format!("{what}: {name:?} is not a label name")));
            }
            if value.chars().count() > MAX_TEXT_CHARS {
                return Err(AlertError::Invalid(format!("{what}.{name} is longer than {MAX_TEXT_CHARS} characters")));
            }
        }
    }
    if spec.labels.contains_key("alertname") {
        return Err(AlertError::Invalid("labels: alertname is the rule's name".to_owned()));
    }
    if let Some(url) = &spec.runbook_url
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        return Err(AlertError::Invalid("runbook_url must be an http or https URL".to_owned()));
    }
    if spec.channels.len() > MAX_CHANNELS || spec.escalate_to.len() > MAX_CHANNELS {
        return Err(AlertError::Invalid(format!("at most {MAX_CHANNELS} channels")));
    }
    if spec.escalate_after_seconds > 0 && spec.escalate_to.is_empty() {
        return Err(AlertError::Invalid(
            "escalate_after_seconds needs escalate_to (the channels to escalate to)".to_owned(),
        ));
    }
    Ok(())
}

/// Fills in `{{ $labels.name }}` and `{{ $value }}`, what Prometheus rule files write most. Anything else between `{{` and `}}` is
/// left as written, so that a mistake shows in the notification instead of vanishing.
pub fn expand(template: &str, labels: &BTreeMap<String, String>, value: Option<f64>) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            out.push_str(&rest[open..]);
            return out;
        };
        let inner = after[..close].trim().trim_start_matches('-').trim_end_matches('-').trim();
        if let Some(name) = inner.strip_prefix("$labels.") {
            out.push_str(labels.get(name.trim()).map_or("", String::as_str));
        } else if inner == "$value" || inner == "$value | humanize" {
            out.push_str(&value.map_or_else(String::new, format_value));
        } else {
            out.push_str(&rest[open..open + 2 + close + 2]);
        }
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// A value as people read it: integers without a fraction, others to four significant digits.
pub fn format_value(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        let text = format!("{value:.4}");
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    }
}

/// The name of an alert instance: the same rule and labels give the same fingerprint.
pub fn fingerprint(rule_id: i64, labels: &BTreeMap<String, String>) -> String {
    let mut hash = Sha256::new();
    hash.update(rule_id.to_be_bytes());
    for (name, value) in labels {
        hash.update(name.as_bytes());
        hash.update([0]);
        hash.update(value.as_bytes());
        hash.update([0]);
    }
    hash.finalize()[..8].iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn templates_fill_labels_and_the_value() {
        let labels = labels(&[("service", "api"), ("instance", "web-1:9100")]);
        assert_eq!(
            expand("{{ $labels.service }} on {{$labels.instance}}: {{ $value }} errors", &labels, Some(12.0)),
            "api on web-1:9100: 12 errors"
        );
        assert_eq!(expand("ratio {{ $value }}", &labels, Some(0.123456)), "ratio 0.1235");
        assert_eq!(expand("{{ $labels.missing }}|", &labels, None), "|");
        assert_eq!(expand("{{ printf \"%.2f\" $value }}", &labels, Some(1.0)), "{{ printf \"%.2f\" $value }}");
        assert_eq!(expand("open {{ never closed", &labels, None), "open {{ never closed");
    }

    #[test]
    fn fingerprints_follow_the_rule_and_the_labels() {
        let a = labels(&[("service", "api")]);
        assert_eq!(fingerprint(1, &a), fingerprint(1, &a.clone()));
        assert_ne!(fingerprint(1, &a), fingerprint(2, &a));
        assert_ne!(fingerprint(1, &a), fingerprint(1, &labels(&[("service", "web")])));
        // Names and values are separated: `ab=c` is not `a=bc`.
        assert_ne!(fingerprint(1, &labels(&[("ab", "c")])), fingerprint(1, &labels(&[("a", "bc")])));
        assert_eq!(fingerprint(1, &a).len(), 16);
    }
}
