//! Alerting: rules on metrics (PromQL) and on logs (matches over a window), the alert
//! instances they produce, their history, notifications and acknowledgements.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// What a rule is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RuleKind {
    /// A PromQL expression: every series it returns is an alert instance, labelled by its
    /// labels (kept when the comparator holds, if there is one).
    Promql,
    /// A log query: the number of matching records over the window, optionally one count per
    /// service or host, compared with the threshold.
    Logs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Comparator {
    #[serde(rename = ">")]
    Above,
    #[serde(rename = ">=")]
    AtLeast,
    #[serde(rename = "<")]
    Below,
    #[serde(rename = "<=")]
    AtMost,
    #[serde(rename = "==")]
    Equal,
    #[serde(rename = "!=")]
    NotEqual,
}

impl Comparator {
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Self::Above => value > threshold,
            Self::AtLeast => value >= threshold,
            Self::Below => value < threshold,
            Self::AtMost => value <= threshold,
            Self::Equal => value == threshold,
            Self::NotEqual => value != threshold,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Above => ">",
            Self::AtLeast => ">=",
            Self::Below => "<",
            Self::AtMost => "<=",
            Self::Equal => "==",
            Self::NotEqual => "!=",
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    #[default]
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// What a log rule counts per: nothing (one count), each service, or each host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogGroupBy {
    Service,
    Host,
}

fn default_interval() -> u64 {
    60
}

fn default_window() -> u64 {
    300
}

fn enabled() -> bool {
    true
}

/// A rule as it is written (`POST`/`PUT /api/v1/alerts/rules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertRuleSpec {
    /// The `alertname` label of its alerts.
    pub name: String,
    /// The rule group it came with (a Prometheus rule file's group), for listing.
    #[serde(default)]
    pub group: String,
    pub kind: RuleKind,
    /// PromQL, or a log query in the search syntax.
    pub expr: String,
    /// Log rules: the window matches are counted over, in seconds.
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    #[serde(default)]
    pub group_by: Option<LogGroupBy>,
    /// Required for log rules; for PromQL, absent means every returned series fires.
    #[serde(default)]
    pub comparator: Option<Comparator>,
    #[serde(default)]
    pub threshold: Option<f64>,
    /// How long the condition must hold before the alert fires (pending until then).
    #[serde(default)]
    pub for_seconds: u64,
    /// How long a firing alert stays firing once the condition stops holding.
    #[serde(default)]
    pub keep_firing_for_seconds: u64,
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    #[serde(default)]
    pub severity: Severity,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Templates: `{{ $labels.service }}`, `{{ $value }}`.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// The notification channels (integrations, by name) its alerts go to.
    #[serde(default)]
    pub channels: Vec<String>,
    /// Seconds firing without acknowledgement after which `escalate_to` is notified too; 0 never.
    #[serde(default)]
    pub escalate_after_seconds: u64,
    #[serde(default)]
    pub escalate_to: Vec<String>,
    /// Seconds between repeated notifications of a firing, unacknowledged alert; 0 never.
    #[serde(default)]
    pub repeat_interval_seconds: u64,
    #[serde(default = "enabled")]
    pub enabled: bool,
}

/// A stored rule with how its evaluations go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRule {
    pub id: i64,
    #[serde(flatten)]
    pub spec: AlertRuleSpec,
    /// The last evaluation, if any, and what went wrong in it.
    #[serde(default)]
    pub last_evaluation: Option<Timestamp>,
    #[serde(default)]
    pub last_error: Option<String>,
    #[serde(default)]
    pub last_duration_ms: Option<u64>,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Pending,
    Resolved,
    /// Pending, then the condition stopped holding before it fired.
    Inactive,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Pending => "pending",
            Self::Resolved => "resolved",
            Self::Inactive => "inactive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Acknowledgement {
    pub by: String,
    pub at: Timestamp,
    #[serde(default)]
    pub note: String,
}

/// One alert instance: a rule and a label set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable for the rule and the labels.
    pub fingerprint: String,
    pub rule_id: i64,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub state: AlertState,
    /// The value of the last evaluation that held.
    #[serde(default)]
    pub value: Option<f64>,
    /// Since when the condition holds (the start of pending).
    pub active_since: Timestamp,
    #[serde(default)]
    pub firing_since: Option<Timestamp>,
    #[serde(default)]
    pub resolved_at: Option<Timestamp>,
    /// Counts the times it fired: a resolution and refire is a new episode.
    pub episode: i64,
    #[serde(default)]
    pub acknowledged: Option<Acknowledgement>,
    /// `rule` (Vigil's own), `prometheus` (sent through the Alertmanager API) or `alertmanager`
    /// (its webhook).
    #[serde(default)]
    pub source: String,
    /// When an alert sent from outside resolves unless sent again.
    #[serde(default)]
    pub ends_at: Option<Timestamp>,
}

/// `GET /api/v1/alerts`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertQuery {
    /// `firing`, `pending`, `resolved`; all but inactive when absent.
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default)]
    pub rule_id: Option<i64>,
    /// Only alerts whose labels match every matcher of this list, written as a selector:
    /// `{service="payments",severity=~"crit.*"}` (the braces may be left out).
    #[serde(default)]
    pub filter: Option<String>,
    /// At most this many alerts ([`AlertQuery::DEFAULT_LIMIT`] when absent, at most
    /// [`AlertQuery::MAX_LIMIT`]).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Skip this many of the matching alerts (for the next pages).
    #[serde(default)]
    pub offset: Option<u32>,
}

impl AlertQuery {
    pub const DEFAULT_LIMIT: u32 = 100;
    pub const MAX_LIMIT: u32 = 1000;
}

/// What `GET /api/v1/alerts` answers: one page of the matching alerts, how many match, and
/// the counts of every alert (whatever the query), for the navigation and the page's tabs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertPage {
    pub alerts: Vec<Alert>,
    /// Alerts matching the query, of which `alerts` is the page from `offset`.
    pub total: u64,
    pub counts: AlertCounts,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertCounts {
    pub firing: u64,
    pub pending: u64,
    /// Firing and acknowledged by nobody yet.
    pub unacknowledged: u64,
}

/// `GET /api/v1/alerts/annotations?start=&end=&filter=`: when alerts fired, to draw on charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationQuery {
    pub start: Timestamp,
    pub end: Timestamp,
    /// A selector of matchers, as [`AlertQuery::filter`].
    #[serde(default)]
    pub filter: Option<String>,
}

/// One firing span of one alert that overlaps the asked range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertAnnotation {
    pub fingerprint: String,
    pub labels: BTreeMap<String, String>,
    /// When it started firing.
    pub start: Timestamp,
    /// When it resolved; still firing when absent.
    #[serde(default)]
    pub end: Option<Timestamp>,
}

/// Matchers written as a selector, `{name="value", other=~"re.*"}`, braces optional, commas
/// between matchers (a comma inside quotes belongs to the value). Empty text is no matcher.
pub fn parse_matchers(text: &str) -> Result<Vec<Matcher>, ParseMatcherError> {
    let trimmed = text.trim();
    let inner = match trimmed.strip_prefix('{') {
        Some(rest) => rest.strip_suffix('}').ok_or_else(|| ParseMatcherError {
            text: text.to_owned(),
            problem: "a selector that opens with { must close with }",
        })?,
        None => trimmed,
    };
    let mut matchers = Vec::new();
    let mut start = 0;
    let mut quoted = false;
    let mut escaped = false;
    for (at, character) in inner.char_indices() {
        match character {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                push_matcher(&mut matchers, &inner[start..at])?;
                start = at + 1;
            }
            _ => {}
        }
    }
    push_matcher(&mut matchers, &inner[start..])?;
    Ok(matchers)
}

fn push_matcher(matchers: &mut Vec<Matcher>, text: &str) -> Result<(), ParseMatcherError> {
    if !text.trim().is_empty() {
        matchers.push(text.parse()?);
    }
    Ok(())
}

/// `POST /api/v1/alerts/{fingerprint}/acknowledge`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgeRequest {
    #[serde(default)]
    pub note: String,
}

/// A step in an alert's life, for its timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertEvent {
    pub at: Timestamp,
    /// `pending`, `firing`, `resolved`, `inactive`, `acknowledged`, `notified`, `failed`.
    pub kind: String,
    pub actor: String,
    pub detail: String,
}

/// Why a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NotificationEvent {
    Firing,
    Resolved,
    Acknowledged,
    /// A firing alert still unacknowledged after the repeat interval.
    Repeat,
    /// Unacknowledged past the escalation delay: sent to the escalation channels.
    Escalation,
    /// The "send test notification" button.
    Test,
}

impl NotificationEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
            Self::Acknowledged => "acknowledged",
            Self::Repeat => "repeat",
            Self::Escalation => "escalation",
            Self::Test => "test",
        }
    }
}

/// One notification about one alert (what the delivery log refers to).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Notification {
    pub event: NotificationEvent,
    /// The same for every notification of one episode of one alert.
    pub dedup_key: String,
    pub alert: Alert,
    pub rule_name: String,
    #[serde(default)]
    pub runbook_url: Option<String>,
    /// The alert in Vigil's UI.
    pub url: String,
}

/// What the generic webhook channel posts: the notifications of one group, sent together (one
/// when the route does not group).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookBody {
    /// `2`.
    pub version: String,
    /// The same for every message of one group of one route; for an ungrouped notification,
    /// its dedup key.
    pub group_key: String,
    /// The labels the route groups by, with this group's values; empty when it does not group.
    #[serde(default)]
    pub group_labels: BTreeMap<String, String>,
    /// Oldest first.
    pub notifications: Vec<Notification>,
}

impl WebhookBody {
    pub const VERSION: &'static str = "2";

    /// A message of one notification, on its own.
    pub fn single(notification: Notification) -> Self {
        Self {
            version: Self::VERSION.to_owned(),
            group_key: notification.dedup_key.clone(),
            group_labels: BTreeMap::new(),
            notifications: vec![notification],
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its first or next attempt.
    Pending,
    Sent,
    /// Given up after the last retry.
    Failed,
}

/// One notification to one channel, with how its delivery went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: i64,
    pub fingerprint: String,
    pub episode: i64,
    pub channel: String,
    pub event: NotificationEvent,
    pub status: DeliveryStatus,
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
    pub created_at: Timestamp,
    #[serde(default)]
    pub sent_at: Option<Timestamp>,
}

/// `GET /api/v1/alerts/{fingerprint}`: the alert, its timeline and its notifications.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertDetail {
    pub alert: Alert,
    pub rule_name: String,
    pub events: Vec<AlertEvent>,
    pub deliveries: Vec<Delivery>,
    /// Where to look next, in Vigil's UI.
    #[serde(default)]
    pub links: AlertLinks,
}

/// Links from an alert to what it is about, over its time (from a little before it became
/// active to a little after it resolved, or now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlertLinks {
    /// The matching logs: a log rule's query (narrowed to the alert's service or host), or the
    /// records of the alert's service or host.
    pub logs: String,
    /// The metric chart of a PromQL rule's expression; none for other alerts.
    #[serde(default)]
    pub metrics: Option<String>,
}

fn yes() -> bool {
    true
}

/// A label matcher, as Alertmanager writes it: `name`, `value`, and whether the value is a
/// regular expression (anchored at both ends) and whether it must match or must not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    pub name: String,
    pub value: String,
    #[serde(default)]
    pub is_regex: bool,
    #[serde(default = "yes")]
    pub is_equal: bool,
}

impl Matcher {
    /// `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`.
    pub fn operator(&self) -> &'static str {
        match (self.is_equal, self.is_regex) {
            (true, false) => "=",
            (false, false) => "!=",
            (true, true) => "=~",
            (false, true) => "!~",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SilenceState {
    /// Starts later.
    Pending,
    Active,
    Expired,
}

/// `POST /api/v1/alerts/silences`: who silences is the caller; why is required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilenceWrite {
    pub matchers: Vec<Matcher>,
    /// Now when absent.
    #[serde(default)]
    pub starts_at: Option<Timestamp>,
    pub ends_at: Timestamp,
    pub comment: String,
}

/// A silence: alerts whose labels match every matcher notify nobody between its start and end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Silence {
    pub id: String,
    pub matchers: Vec<Matcher>,
    pub starts_at: Timestamp,
    pub ends_at: Timestamp,
    pub created_by: String,
    pub comment: String,
    pub state: SilenceState,
    pub updated_at: Timestamp,
    /// The current alerts it silences (or would, for a preview).
    #[serde(default)]
    pub silenced_alerts: Vec<String>,
}

/// `POST /api/v1/alerts/silences/preview`: which current alerts the matchers would silence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SilencePreview {
    pub matchers: Vec<Matcher>,
}

/// A matcher that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("matcher {text:?}: {problem}")]
pub struct ParseMatcherError {
    pub text: String,
    pub problem: &'static str,
}

impl std::str::FromStr for Matcher {
    type Err = ParseMatcherError;

    /// `name="value"`, `name!="value"`, `name=~"regex"`, `name!~"regex"`, as Alertmanager and
    /// `amtool` write them (the value may also be unquoted).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let error = |problem| ParseMatcherError { text: text.to_owned(), problem };
        let trimmed = text.trim();
        let at = trimmed.find(['=', '!']).ok_or_else(|| error("expected =, !=, =~ or !~"))?;
        let name = trimmed[..at].trim();
        let rest = &trimmed[at..];
        let (is_equal, is_regex, value) = if let Some(value) = rest.strip_prefix("=~") {
            (true, true, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (false, true, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (false, false, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (true, false, value)
        } else {
            return Err(error("expected =, !=, =~ or !~"));
        };
        if name.is_empty() {
            return Err(error("no label name"));
        }
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => {
                let inner = quoted.strip_suffix('"').ok_or_else(|| error("unterminated quote"))?;
                let mut unescaped = String::with_capacity(inner.len());
                let mut characters = inner.chars();
                while let Some(character) = characters.next() {
                    match character {
                        '\\' => match characters.next() {
                            Some('n') => unescaped.push('\n'),
                            Some(other) => unescaped.push(other),
                            None => return Err(error("a lone backslash")),
                        },
                        other => unescaped.push(other),
                    }
                }
                unescaped
            }
            None => value.to_owned(),
        };
        Ok(Self { name: name.to_owned(), value, is_regex, is_equal })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_parse_as_alertmanager_writes_them() {
        let parse = |text: &str| text.parse::<Matcher>().unwrap();
        assert_eq!(
            parse("alertname=\"High\""),
            Matcher { name: "alertname".into(), value: "High".into(), is_regex: false, is_equal: true }
        );
        assert_eq!(parse("env != staging").operator(), "!=");
        let regex = parse("service=~\"pay.*\"");
        assert_eq!((regex.value.as_str(), regex.operator()), ("pay.*", "=~"));
        assert_eq!(parse("host!~\"web-\\\\d+\"").value, "web-\\d+");
        assert_eq!(parse("a=\"say \\\"hi\\\"\"").value, "say \"hi\"");
        assert!("nothing".parse::<Matcher>().is_err());
        assert!("=x".parse::<Matcher>().is_err());
        assert!("a=\"open".parse::<Matcher>().is_err());
    }

    #[test]
    fn selectors_split_at_commas_outside_quotes() {
        let matchers = parse_matchers(r#"{service="pay,ments", severity=~"crit.*",team!="a\"b"}"#).unwrap();
        let shown: Vec<String> = matchers.iter().map(|m| format!("{}{}{}", m.name, m.operator(), m.value)).collect();
        assert_eq!(shown, ["service=pay,ments", "severity=~crit.*", "team!=a\"b"]);
        assert_eq!(parse_matchers("").unwrap(), []);
        assert_eq!(parse_matchers("{}").unwrap(), []);
        assert_eq!(parse_matchers("a=b").unwrap().len(), 1);
        assert!(parse_matchers("{a=\"b\"").is_err());
        assert!(parse_matchers("a=\"b\",nothing").is_err());
    }
}

fn preview_hours() -> u32 {
    3
}

/// `POST /api/v1/alerts/rules/preview`: a rule evaluated now and over the last hours, before
/// it is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RulePreviewRequest {
    pub rule: AlertRuleSpec,
    /// How far back "when would it have fired?" looks; at most 48.
    #[serde(default = "preview_hours")]
    pub hours: u32,
}

/// One label set's value now, and whether the condition holds for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewSample {
    pub labels: BTreeMap<String, String>,
    pub value: f64,
    pub holds: bool,
}

/// When a label set would have fired: the condition held for `for` from `start` to `end`
/// (absent while it still fires).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FiringSpan {
    pub labels: BTreeMap<String, String>,
    pub start: Timestamp,
    #[serde(default)]
    pub end: Option<Timestamp>,
}

/// What a preview found: the values now, the series over the hours (for a chart with the
/// threshold line), and the spans in which the rule would have fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulePreview {
    pub now: Vec<PreviewSample>,
    pub series: Vec<crate::metrics::QuerySeries>,
    pub step_seconds: f64,
    #[serde(default)]
    pub comparator: Option<Comparator>,
    #[serde(default)]
    pub threshold: Option<f64>,
    pub spans: Vec<FiringSpan>,
}

/// One rule of an imported file that was not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRule {
    pub name: String,
    pub reason: String,
}

/// `POST /api/v1/alerts/rules/import` (a Prometheus rule file): what it created, what it
/// changed (a rule of the same name), what it skipped (recording rules, invalid ones).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleImport {
    pub created: Vec<String>,
    pub updated: Vec<String>,
    pub skipped: Vec<SkippedRule>,
}
