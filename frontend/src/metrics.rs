//! Server functions of the metrics explorer. Times arrive as the URL holds them: a relative
//! `range` (`15m`, `1h`, `7d`), or an absolute `start` and `end` (RFC 3339) that take
//! precedence.

use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::metrics::QueryResult;

/// A range query over the page's time range.
#[server(prefix = "/ui/fn/read", endpoint = "metrics_range")]
pub async fn metrics_range(q: String, range: String, start: String, end: String) -> Result<QueryResult, UiError> {
    use vigil_proto::{RelativeRange, Timestamp};
    if q.trim().is_empty() {
        return Ok(QueryResult { result_type: "matrix".to_owned(), series: Vec::new(), step_seconds: None });
    }
    let parse = |text: &str| -> Result<Option<f64>, UiError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        let at: Timestamp = text.parse().map_err(|error: vigil_proto::ParseTimestampError| UiError::invalid(error))?;
        Ok(Some(at.as_unix_nanos() as f64 / 1e9))
    };
    let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos() as f64 / 1e9;
    let (start, end) = match (parse(&start)?, parse(&end)?) {
        (None, None) => {
            let range: RelativeRange =
                range.parse().map_err(|error: vigil_proto::ParseRangeError| UiError::invalid(error))?;
            (now - range.as_nanos() as f64 / 1e9, now)
        }
        (start, end) => {
            let end = end.unwrap_or(now);
            (start.unwrap_or(end - 3600.0), end)
        }
    };
    crate::services::services()?.query_range(q, start, end, None).await.map_err(UiError::from)
}

/// An instant query (stat and table panels).
#[server(prefix = "/ui/fn/read", endpoint = "metrics_instant")]
pub async fn metrics_instant(q: String) -> Result<QueryResult, UiError> {
    crate::services::services()?.query_instant(q).await.map_err(UiError::from)
}

/// The values a dashboard variable offers.
#[server(prefix = "/ui/fn/read", endpoint = "variable_values")]
pub async fn variable_values(label: String, selector: String) -> Result<Vec<String>, UiError> {
    crate::services::services()?.label_values_matching(label, selector).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/read", endpoint = "dashboards")]
pub async fn list_dashboards() -> Result<Vec<vigil_proto::dashboards::DashboardSummary>, UiError> {
    crate::services::services()?.dashboards().await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/read", endpoint = "dashboard")]
pub async fn fetch_dashboard(uid: String) -> Result<vigil_proto::dashboards::DashboardSpec, UiError> {
    crate::services::services()?.dashboard(uid).await.map_err(UiError::from)
}

/// The Overview page: every service's rate, errors, latency and log errors.
#[server(prefix = "/ui/fn/read", endpoint = "overview")]
pub async fn overview() -> Result<Vec<vigil_proto::dashboards::ServiceHealth>, UiError> {
    crate::services::services()?.overview().await.map_err(UiError::from)
}

/// The Agents page: every agent that reported, with its state.
#[server(prefix = "/ui/fn/read", endpoint = "agents")]
pub async fn list_agents() -> Result<Vec<vigil_proto::agents::AgentStatus>, UiError> {
    crate::services::services()?.agents().await.map_err(UiError::from)
}

/// A stored dashboard with its version, for the editor.
#[server(prefix = "/ui/fn/read", endpoint = "stored_dashboard")]
pub async fn stored_dashboard(uid: String) -> Result<vigil_proto::dashboards::Dashboard, UiError> {
    crate::services::services()?.stored_dashboard(uid).await.map_err(UiError::from)
}

/// Saves the editor's spec (JSON): a new dashboard when `uid` is empty, else a new version of
/// the one edited from `version`.
#[server(prefix = "/ui/fn/deploy", endpoint = "save_dashboard")]
pub async fn save_dashboard(
    uid: String,
    version: i64,
    spec: String,
) -> Result<vigil_proto::dashboards::Dashboard, UiError> {
    let request = crate::services::request()?;
    let spec: vigil_proto::dashboards::DashboardSpec =
        serde_json::from_str(&spec).map_err(|error| UiError::invalid(format!("invalid dashboard: {error}")))?;
    let uid = (!uid.is_empty()).then_some(uid);
    crate::services::services()?.save_dashboard(&request, uid, version, spec).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/deploy", endpoint = "delete_dashboard")]
pub async fn delete_dashboard(uid: String) -> Result<(), UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.delete_dashboard(&request, uid).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/deploy", endpoint = "duplicate_dashboard")]
pub async fn duplicate_dashboard(uid: String) -> Result<vigil_proto::dashboards::Dashboard, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.duplicate_dashboard(&request, uid).await.map_err(UiError::from)
}

/// Imports an exported dashboard (its JSON as pasted); `overwrite` replaces one with its uid.
#[server(prefix = "/ui/fn/deploy", endpoint = "import_dashboard")]
pub async fn import_dashboard(
    document: String,
    overwrite: Option<String>,
) -> Result<vigil_proto::dashboards::Dashboard, UiError> {
    let request = crate::services::request()?;
    let document: vigil_proto::dashboards::DashboardExport = serde_json::from_str(&document)
        .map_err(|error| UiError::invalid(format!("not an exported dashboard: {error}")))?;
    let overwrite = overwrite.is_some_and(|value| !value.is_empty() && value != "false");
    crate::services::services()?.import_dashboard(&request, document, overwrite).await.map_err(UiError::from)
}

/// What may complete the PromQL box: metric names and functions (`kind` "metric"), the label
/// names of `metric`'s series ("label"), or the values of `label` among them ("value").
#[server(prefix = "/ui/fn/read", endpoint = "promql_candidates")]
pub async fn promql_candidates(kind: String, metric: String, label: String) -> Result<Vec<String>, UiError> {
    let services = crate::services::services()?;
    let mut candidates = match kind.as_str() {
        "label" => services
            .label_names(metric)
            .await
            .map_err(UiError::from)?
            .into_iter()
            .filter(|name| name != "__name__")
            .collect(),
        "value" => services.label_values_matching(label, metric).await.map_err(UiError::from)?,
        _ => {
            let mut names = services.label_values("__name__".to_owned()).await.map_err(UiError::from)?;
            names.extend(crate::promql::FUNCTIONS.iter().map(|function| (*function).to_owned()));
            names
        }
    };
    candidates.sort();
    candidates.dedup();
    Ok(candidates)
}
