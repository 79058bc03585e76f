//! The metrics API: `POST /api/v1/metrics` (samples, answered once Prometheus accepted them)
//! and PromQL reads under `/api/v1/metrics/` (query, query_range, labels, label values,
//! series), all through the backend's Prometheus.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, header};
use serde::Deserialize;
use vigil_proto::metrics::{MetricBatch, MetricBatchAccepted, QueryResult, TargetGroup};
use vigil_proto::{ErrorCode, Timestamp, paths};

use super::{bounded_body, now};
use crate::error::HttpError;
use crate::http::header_text;
use crate::ingest::decode_content;
use crate::prometheus::remote_write::WriteError;
use crate::prometheus::{BatchLimits, to_time_series};
use crate::state::AppState;

impl From<WriteError> for HttpError {
    fn from(error: WriteError) -> Self {
        match error {
            WriteError::Refused(_) => HttpError::new(ErrorCode::InvalidRecord, error.to_string()),
            WriteError::QueueFull => HttpError::new(ErrorCode::TooManyRequests, error.to_string()).retry_after(1),
            WriteError::Unavailable { .. } => HttpError::new(ErrorCode::Unavailable, error.to_string()).retry_after(5),
            WriteError::Closed => HttpError::new(ErrorCode::Unavailable, error.to_string()),
        }
    }
}

/// `POST /api/v1/metrics`: a `MetricBatch` as JSON (gzip or zstd allowed).
pub async fn write(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<MetricBatchAccepted>, HttpError> {
    let config = &state.config.metrics;
    let body = bounded_body(body, config.max_body_bytes).await?;
    let content_type = header_text(&headers, header::CONTENT_TYPE).unwrap_or("application/json");
    if !content_type.starts_with("application/json") {
        return Err(HttpError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content type {content_type:?} is not accepted: send application/json"),
        ));
    }
    // Decompression, JSON and validation are CPU work: off the async workers.
    let encoding = header_text(&headers, header::CONTENT_ENCODING).map(str::to_owned);
    let max_decoded = config.max_body_bytes.saturating_mul(8);
    let limits = BatchLimits { max_series: config.max_batch_series, max_samples: config.max_batch_samples };
    let series = tokio::task::spawn_blocking(move || -> Result<_, HttpError> {
        let decoded = decode_content(encoding.as_deref(), &body, max_decoded)?;
        let batch: MetricBatch = serde_json::from_slice(&decoded)
            .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid metric batch: {error}")))?;
        Ok(to_time_series(batch, limits)?)
    })
    .await
    .map_err(|error| HttpError::internal(&error))??;
    let accepted = MetricBatchAccepted {
        series: series.len() as u64,
        samples: series.iter().map(|series| series.samples.len() as u64).sum(),
    };
    match state.remote_writer.write(series).await {
        Ok(()) => Ok(Json(accepted)),
        Err(error) => {
            if error == WriteError::QueueFull {
                state.metrics.remote_write_samples_dropped.inc_by(accepted.samples);
            }
            Err(error.into())
        }
    }
}

/// A time as Unix seconds (fractions allowed) or RFC 3339.
fn seconds(name: &str, text: Option<&str>) -> Result<Option<f64>, HttpError> {
    let Some(text) = text.map(str::trim).filter(|text| !text.is_empty()) else {
        return Ok(None);
    };
    if let Ok(seconds) = text.parse::<f64>() {
        return Ok(Some(seconds));
    }
    let at: Timestamp = text.parse().map_err(|_| {
        HttpError::new(ErrorCode::InvalidParameter, format!("{name} {text:?} is neither Unix seconds nor RFC 3339"))
    })?;
    Ok(Some(at.as_unix_nanos() as f64 / 1e9))
}

#[derive(Deserialize)]
pub struct InstantParams {
    query: String,
    #[serde(default)]
    time: Option<String>,
}

pub async fn query(
    State(state): State<Arc<AppState>>,
    params: Result<Query<InstantParams>, QueryRejection>,
) -> Result<Json<QueryResult>, HttpError> {
    let Query(params) = params?;
    let time = seconds("time", params.time.as_deref())?;
    state.prometheus.instant(&params.query, time).await.map(Json).map_err(HttpError::from)
}

#[derive(Deserialize)]
pub struct RangeParams {
    query: String,
    #[serde(default)]
    start: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    step: Option<String>,
}

/// `GET /api/v1/metrics/query_range`: `end` defaults to now, `start` to an hour before `end`.
pub async fn query_range(
    State(state): State<Arc<AppState>>,
    params: Result<Query<RangeParams>, QueryRejection>,
) -> Result<Json<QueryResult>, HttpError> {
    let Query(params) = params?;
    let now_seconds = now()?.as_unix_nanos() as f64 / 1e9;
    let end = seconds("end", params.end.as_deref())?.unwrap_or(now_seconds);
    let start = seconds("start", params.start.as_deref())?.unwrap_or(end - 3600.0);
    let step = match params.step.as_deref().map(str::trim).filter(|step| !step.is_empty()) {
        None => None,
        Some(step) => Some(parse_duration(step).ok_or_else(|| {
            HttpError::new(
                ErrorCode::InvalidParameter,
                format!("step {step:?} is not seconds or a duration like 30s, 5m"),
            )
        })?),
    };
    state.prometheus.range(&params.query, start, end, step).await.map(Json).map_err(HttpError::from)
}

/// `15`, `2.5`, `30s`, `5m`, `1h`, `1d` as seconds.
fn parse_duration(text: &str) -> Option<f64> {
    if let Ok(seconds) = text.parse::<f64>() {
        return Some(seconds);
    }
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    let unit = match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86400.0,
        "w" => 604_800.0,
        _ => return None,
    };
    Some(number * unit)
}

/// `match[]` (repeatable), `start` and `end` of the metadata endpoints.
#[derive(Debug, Default, PartialEq)]
struct MetadataParams {
    matchers: Vec<String>,
    start: Option<f64>,
    end: Option<f64>,
}

fn metadata_params(raw: Option<&str>) -> Result<MetadataParams, HttpError> {
    let mut params = MetadataParams::default();
    for (name, value) in url_pairs(raw.unwrap_or_default()) {
        match name.as_str() {
            "match[]" => params.matchers.push(value),
            "start" => params.start = seconds("start", Some(&value))?,
            "end" => params.end = seconds("end", Some(&value))?,
            _ => {}
        }
    }
    Ok(params)
}

fn url_pairs(query: &str) -> Vec<(String, String)> {
    let decode = |text: &str| {
        let text = text.replace('+', " ");
        let bytes = text.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut index = 0;
        while index < bytes.len() {
            if bytes[index] == b'%'
                && let Some(byte) = text.get(index + 1..index + 3).and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                out.push(byte);
                index += 3;
                continue;
            }
            out.push(bytes[index]);
            index += 1;
        }
        String::from_utf8_lossy(&out).into_owned()
    };
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(name), decode(value))
        })
        .collect()
}

pub async fn labels(State(state): State<Arc<AppState>>, uri: axum::http::Uri) -> Result<Json<Vec<String>>, HttpError> {
    let params = metadata_params(uri.query())?;
    state.prometheus.labels(&params.matchers, params.start, params.end).await.map(Json).map_err(HttpError::from)
}

pub async fn label_values(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    uri: axum::http::Uri,
) -> Result<Json<Vec<String>>, HttpError> {
    let params = metadata_params(uri.query())?;
    state
        .prometheus
        .label_values(&name, &params.matchers, params.start, params.end)
        .await
        .map(Json)
        .map_err(HttpError::from)
}

pub async fn series(
    State(state): State<Arc<AppState>>,
    uri: axum::http::Uri,
) -> Result<Json<Vec<std::collections::BTreeMap<String, String>>>, HttpError> {
    let params = metadata_params(uri.query())?;
    state.prometheus.series(&params.matchers, params.start, params.end).await.map(Json).map_err(HttpError::from)
}

/// `GET /api/v1/sd/targets`: Prometheus' HTTP service discovery, one group per configured
/// service, labelled `service` and `job` with its name, its scheme and path as Prometheus'
/// `__scheme__` and `__metrics_path__`, and its extra labels.
pub async fn sd_targets(State(state): State<Arc<AppState>>) -> Result<Json<Vec<TargetGroup>>, HttpError> {
    let mut groups: Vec<TargetGroup> = state
        .config
        .services
        .iter()
        .filter(|service| !service.targets.is_empty())
        .map(|service| {
            let mut labels = service.labels.clone();
            labels.insert("service".to_owned(), service.name.clone());
            labels.entry("job".to_owned()).or_insert_with(|| service.name.clone());
            labels.insert("__metrics_path__".to_owned(), service.metrics_path.clone());
            labels.insert("__scheme__".to_owned(), service.scheme.clone());
            TargetGroup { targets: service.targets.clone(), labels }
        })
        .collect();
    // Every agent that serves its own /metrics, as job "vigil-agent".
    for row in state.database.agents().await? {
        let Ok(report) = serde_json::from_str::<vigil_proto::agents::AgentHeartbeat>(&row.report) else { continue };
        if let Some(address) = report.metrics_address {
            let labels = [("job", "vigil-agent"), ("host", row.host.as_str()), ("__metrics_path__", paths::METRICS)]
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect();
            groups.push(TargetGroup { targets: vec![address], labels });
        }
    }
    Ok(Json(groups))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_repeated_matchers_parse() {
        assert_eq!(parse_duration("30s"), Some(30.0));
        assert_eq!(parse_duration("5m"), Some(300.0));
        assert_eq!(parse_duration("15"), Some(15.0));
        assert_eq!(parse_duration("5x"), None);
        let params = metadata_params(Some("match[]=up%7Bjob%3D%22a%22%7D&match%5B%5D=x&start=10")).unwrap();
        assert_eq!(params.matchers, ["up{job=\"a\"}", "x"]);
        assert_eq!(params.start, Some(10.0));
    }
}
