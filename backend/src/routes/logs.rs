//! The log API: ingest (`POST /api/v1/logs`) and reads (`search`, `histogram`, `fields`,
//! `context` under `/api/v1/logs/`).

use std::sync::Arc;

use axum::Extension;
use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::{WebSocketUpgrade, rejection::WebSocketUpgradeRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use vigil_proto::{
    ApiError, Commit, ContextQuery, ErrorCode, FieldValues, FieldsQuery, HistogramQuery, IngestParams, IngestResponse,
    LogContext, LogHistogram, LogPage, LogQuery, RelativeRange, TailQuery, Timestamp,
};

use super::{admitted_body, decoded_body, now};
use crate::auth::Caller;
use crate::error::HttpError;
use crate::http::header_text;
use crate::ingest::{BatchDefaults, BodyFormat, decode_content, parse_batch_with};
use crate::logs::{LogStoreError, MAX_BUCKETS, bucket_count, choose_interval};
use crate::state::AppState;

const DEFAULT_FIELD_VALUES: u32 = 10;
const MAX_FIELD_VALUES: u32 = 100;
const DEFAULT_CONTEXT: u32 = 10;
const MAX_CONTEXT: u32 = 500;
const HOUR_NANOS: i64 = 3_600_000_000_000;

impl From<LogStoreError> for HttpError {
    fn from(error: LogStoreError) -> Self {
        match error {
            LogStoreError::InvalidQuery { message, position } => {
                let error = ApiError::new(ErrorCode::InvalidQuery, message);
                HttpError::from(match position {
                    Some(position) => error.at_position(position as u64),
                    None => error,
                })
            }
            LogStoreError::Busy => {
                HttpError::new(ErrorCode::TooManyRequests, "the log writer is saturated; retry later").retry_after(1)
            }
            LogStoreError::Closed => HttpError::new(ErrorCode::Unavailable, "the log store is shutting down"),
            LogStoreError::TooManyPartitions(_) => HttpError::new(ErrorCode::InvalidRecord, error.to_string()),
            other => HttpError::internal(&other),
        }
    }
}

fn invalid(message: impl Into<String>) -> HttpError {
    HttpError::new(ErrorCode::InvalidParameter, message)
}

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    params: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestResponse>), HttpError> {
    let Query(params) = params?;
    let defaults = BatchDefaults { service: params.service, host: params.host };
    let result = ingest_batch(&state, params.commit, defaults, &headers, body).await;
    if result.is_err() {
        state.metrics.log_batches_rejected.inc();
    }
    let accepted = result?;
    Ok((StatusCode::OK, Json(IngestResponse { accepted })))
}

async fn ingest_batch(
    state: &Arc<AppState>,
    commit: Commit,
    defaults: BatchDefaults,
    headers: &HeaderMap,
    body: Body,
) -> Result<u64, HttpError> {
    let limits = state.config.logs.clone();
    let format = BodyFormat::from_content_type(header_text(headers, header::CONTENT_TYPE))?;
    let encoding = header_text(headers, header::CONTENT_ENCODING).map(str::to_owned);
    let (body, mut admission) = admitted_body(&state.ingest_budget, headers, body, limits.max_body_bytes).await?;
    let now = now()?;
    // Decompression and parsing are CPU work: keep them off the async workers.
    let max_decompressed = limits.max_decompressed_bytes;
    let decoded =
        decoded_body(&mut admission, body, move |body| decode_content(encoding.as_deref(), body, max_decompressed))
            .await?;
    let records = tokio::task::spawn_blocking(move || parse_batch_with(format, &decoded, &limits, &defaults, now))
        .await
        .map_err(|error| HttpError::internal(&error))??;
    let accepted = records.len() as u64;
    state.log_store.append(records, commit).await?;
    drop(admission);
    Ok(accepted)
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<LogPage>, HttpError> {
    let Query(query) = query?;
    validate_query(&query)?;
    Ok(Json(state.log_store.search(query).await?))
}

pub fn validate_query(query: &LogQuery) -> Result<(), HttpError> {
    if let Some(limit) = query.limit
        && (limit == 0 || limit > LogQuery::MAX_LIMIT)
    {
        return Err(invalid(format!("limit must be between 1 and {}", LogQuery::MAX_LIMIT)));
    }
    validate_range(query.start, query.end)
}

fn validate_range(start: Option<Timestamp>, end: Option<Timestamp>) -> Result<(), HttpError> {
    match (start, end) {
        (Some(start), Some(end)) if start >= end => Err(invalid("start must be before end")),
        _ => Ok(()),
    }
}

/// The histogram's range and bucket width, from what the request gave.
pub fn histogram_plan(request: &HistogramQuery, now: Timestamp) -> Result<(LogQuery, i64), HttpError> {
    let end = request.end.unwrap_or(now);
    let start = request.start.unwrap_or_else(|| end.saturating_add_nanos(-HOUR_NANOS));
    validate_range(Some(start), Some(end))?;
    let range = end
        .as_unix_nanos()
        .checked_sub(start.as_unix_nanos())
        .ok_or_else(|| invalid("the time range cannot be divided into buckets"))?;
    let interval = match &request.interval {
        Some(interval) => interval.parse::<RelativeRange>().map_err(|error| invalid(error.to_string()))?.as_nanos(),
        None => choose_interval(range),
    };
    if interval <= 0 {
        return Err(invalid("interval must be positive"));
    }
    if bucket_count(start.as_unix_nanos(), end.as_unix_nanos(), interval).is_none() {
        return Err(invalid(format!("interval is too small: the range would need more than {MAX_BUCKETS} buckets")));
    }
    let query = LogQuery { q: request.q.clone(), start: Some(start), end: Some(end), limit: None, cursor: None };
    Ok((query, interval))
}

pub async fn histogram(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HistogramQuery>, QueryRejection>,
) -> Result<Json<LogHistogram>, HttpError> {
    let Query(request) = query?;
    let (query, interval) = histogram_plan(&request, now()?)?;
    Ok(Json(state.log_store.histogram(query, interval).await?))
}

pub async fn fields(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FieldsQuery>, QueryRejection>,
) -> Result<Json<FieldValues>, HttpError> {
    let Query(request) = query?;
    validate_range(request.start, request.end)?;
    let limit = request.limit.unwrap_or(DEFAULT_FIELD_VALUES);
    if limit == 0 || limit > MAX_FIELD_VALUES {
        return Err(invalid(format!("limit must be between 1 and {MAX_FIELD_VALUES}")));
    }
    let query = LogQuery { q: request.q, start: request.start, end: request.end, limit: None, cursor: None };
    Ok(Json(state.log_store.field_values(query, limit as usize).await?))
}

pub async fn context(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ContextQuery>, QueryRejection>,
) -> Result<Json<LogContext>, HttpError> {
    let Query(request) = query?;
    let before = request.before.unwrap_or(DEFAULT_CONTEXT);
    let after = request.after.unwrap_or(DEFAULT_CONTEXT);
    if before > MAX_CONTEXT || after > MAX_CONTEXT {
        return Err(invalid(format!("before and after must be at most {MAX_CONTEXT}")));
    }
    let context = state.log_store.context(request.id, before as usize, after as usize).await?;
    context.map(Json).ok_or_else(|| HttpError::new(ErrorCode::NotFound, format!("no record has id {}", request.id)))
}

/// `GET /api/v1/logs/tail`: upgrades to a WebSocket streaming matching records (see `tail`).
pub async fn tail(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<TailQuery>, QueryRejection>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HttpError> {
    let Query(query) = query?;
    state.log_store.parse_query(&query.q).await?;
    let upgrade = upgrade.map_err(|rejection| {
        HttpError::new(ErrorCode::InvalidParameter, format!("the live tail is a WebSocket: {}", rejection.body_text()))
    })?;
    let slot = state
        .tails
        .acquire(caller.key())
        .map_err(|error| HttpError::new(ErrorCode::TooManyRequests, error.to_string()).retry_after(5))?;
    let heartbeat = std::time::Duration::from_secs(state.config.logs.tail_heartbeat_seconds);
    let (store, shutdown) = (state.log_store.clone(), state.shutdown.clone());
    Ok(upgrade
        .max_message_size(crate::tail::MAX_CLIENT_MESSAGE_BYTES)
        .max_frame_size(crate::tail::MAX_CLIENT_MESSAGE_BYTES)
        .on_upgrade(move |socket| async move {
            crate::tail::run(socket, store, query, heartbeat, shutdown).await;
            drop(slot);
        }))
}
