//! Dashboards: rows of panels over PromQL and log queries, with variables and a time range.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// The version of the exported document's shape.
pub const DASHBOARD_SCHEMA_VERSION: u32 = 1;

/// A variable such as `$service`, filled from the values of a label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variable {
    /// Used as `$name` in queries.
    pub name: String,
    /// The label whose values fill it.
    pub label: String,
    /// A series selector narrowing the values (`up{job=~"shop.*"}`); all series when absent.
    #[serde(default)]
    pub selector: Option<String>,
    #[serde(default)]
    pub multi: bool,
    #[serde(default)]
    pub include_all: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelQuery {
    pub expr: String,
    /// Legend template, `{{instance}}`.
    #[serde(default)]
    pub legend: String,
}

/// Flattened into [`Panel`] (serde cannot refuse unknown fields through a flatten, so unknown
/// fields of panels and specs are ignored, as Grafana does).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PanelKind {
    /// Lines (or stacked areas) of PromQL range queries.
    TimeSeries {
        queries: Vec<PanelQuery>,
        #[serde(default)]
        stacked: bool,
    },
    /// One number: the last value of an instant query, coloured by thresholds.
    Stat {
        query: String,
        /// Ascending: the colour of the highest threshold the value reaches.
        #[serde(default)]
        thresholds: Vec<Threshold>,
    },
    /// The series of an instant query as rows.
    Table { query: String },
    /// A log query with its volume histogram.
    Logs { query: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub value: f64,
    /// `green`, `yellow`, `red`, or a CSS colour.
    pub color: String,
}

impl Eq for Threshold {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Panel {
    pub title: String,
    #[serde(flatten)]
    pub kind: PanelKind,
    /// Columns of a 12-column row.
    #[serde(default = "default_width")]
    pub width: u8,
    /// `s`, `bytes`, `percent`, `reqps`, ...
    #[serde(default)]
    pub unit: Option<String>,
}

fn default_width() -> u8 {
    6
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Row {
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub collapsed: bool,
    pub panels: Vec<Panel>,
}

/// What a dashboard holds: the document created, updated, exported and imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardSpec {
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub variables: Vec<Variable>,
    /// The default time range, relative (`1h`, `24h`, `7d`).
    #[serde(default = "default_range")]
    pub range: String,
    /// Auto-refresh, in seconds; off when absent.
    #[serde(default)]
    pub refresh_seconds: Option<u32>,
    pub rows: Vec<Row>,
}

fn default_range() -> String {
    "1h".to_owned()
}

/// A stored dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dashboard {
    /// The dashboard's URL name, stable across renames and exports.
    pub uid: String,
    /// Incremented by every update; an update naming an older version is refused (409).
    pub version: i64,
    #[serde(flatten)]
    pub spec: DashboardSpec,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

/// The list's entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardSummary {
    pub uid: String,
    pub title: String,
    pub tags: Vec<String>,
    pub version: i64,
    pub updated_at: Timestamp,
}

/// `POST /api/v1/dashboards`: the spec, and the uid wanted (made from the title when absent).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NewDashboard {
    #[serde(default)]
    pub uid: Option<String>,
    #[serde(flatten)]
    pub spec: DashboardSpec,
}

/// `PUT /api/v1/dashboards/{uid}`: the new spec and the version it was edited from.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DashboardUpdate {
    pub version: i64,
    #[serde(flatten)]
    pub spec: DashboardSpec,
}

/// An exported dashboard (`GET .../export`), and what `POST /api/v1/dashboards/import` takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardExport {
    pub schema_version: u32,
    pub uid: String,
    pub dashboard: DashboardSpec,
}

/// A query with its variables filled in: `$name` (or `${name}`) becomes the chosen values, as
/// a regular-expression alternation (`a|b`) when several are chosen, `.*` for all or none.
/// Values are escaped for PromQL regular expressions in double-quoted strings.
pub fn expand(expr: &str, chosen: &std::collections::BTreeMap<String, Vec<String>>) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        let (name, tail) = match after.strip_prefix('{').and_then(|inner| inner.split_once('}')) {
            Some((name, tail)) => (name, tail),
            None => {
                let end = after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        match chosen.get(name) {
            Some(values) if !name.is_empty() => {
                let escaped: Vec<String> = values.iter().map(|value| escape_regex(value)).collect();
                if escaped.is_empty() {
                    out.push_str(".*");
                } else {
                    out.push_str(&escaped.join("|"));
                }
                rest = tail;
            }
            _ => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn escape_regex(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if "\\.+*?()|[]{}^$".contains(character) {
            // One backslash for the regular expression, doubled for the PromQL string.
            escaped.push_str("\\\\");
        } else if character == '"' {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_to_regular_expressions() {
        let chosen: std::collections::BTreeMap<String, Vec<String>> = [
            ("host".to_owned(), vec!["web-1".to_owned(), "db.2".to_owned()]),
            ("service".to_owned(), vec!["shop".to_owned()]),
            ("all".to_owned(), vec![]),
        ]
        .into();
        assert_eq!(
            expand(r#"up{instance=~"$host", job=~"${service}", x=~"$all", y="$unknown"}"#, &chosen),
            r#"up{instance=~"web-1|db\\.2", job=~"shop", x=~".*", y="$unknown"}"#
        );
        assert_eq!(expand("rate(x[5m]) * $", &chosen), "rate(x[5m]) * $");
    }
}

/// A service's health on the Overview page, over the last minutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceHealth {
    pub name: String,
    /// Requests per second; `None` when Prometheus has no data (or is away).
    pub request_rate: Option<f64>,
    /// Failed requests (5xx) over all, 0 to 1.
    pub error_ratio: Option<f64>,
    /// 99th percentile latency, seconds.
    pub latency_p99: Option<f64>,
    /// Log records at error level or worse in the last 15 minutes.
    pub log_errors: u64,
    /// `ok`, `warning`, `critical`, or `unknown` (no metrics).
    pub state: String,
    /// Why metrics are missing, when they are.
    #[serde(default)]
    pub problem: Option<String>,
    /// Agents shipping the service's logs, and how many of them are healthy.
    #[serde(default)]
    pub agents_total: u64,
    #[serde(default)]
    pub agents_healthy: u64,
}
