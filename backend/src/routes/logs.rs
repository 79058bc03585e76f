//! `POST /api/v1/logs` and `GET /api/v1/logs/search`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use vigil_proto::{ErrorCode, IngestResponse, LogPage, LogQuery, Timestamp};

use crate::error::HttpError;
use crate::ingest::{BodyFormat, decode_content, parse_batch};
use crate::logs::LogStoreError;
use crate::startup::AppState;

impl From<LogStoreError> for HttpError {
    fn from(error: LogStoreError) -> Self {
        match error {
            LogStoreError::InvalidQuery(message) => HttpError::new(ErrorCode::InvalidQuery, message),
            LogStoreError::Busy => {
                HttpError::new(ErrorCode::TooManyRequests, "the log writer is saturated; retry later").retry_after(1)
            }
            LogStoreError::Closed => HttpError::new(ErrorCode::Unavailable, "the log store is shutting down"),
            other => HttpError::internal(&other),
        }
    }
}

fn header_text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers.get(name).and_then(|value| value.to_str().ok())
}

pub async fn ingest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestResponse>), HttpError> {
    let result = ingest_batch(&state, &headers, body).await;
    if result.is_err() {
        state.metrics.log_batches_rejected.inc();
    }
    let accepted = result?;
    Ok((StatusCode::OK, Json(IngestResponse { accepted })))
}

async fn ingest_batch(state: &Arc<AppState>, headers: &HeaderMap, body: Body) -> Result<u64, HttpError> {
    let limits = state.config.logs.clone();
    let format = BodyFormat::from_content_type(header_text(headers, header::CONTENT_TYPE))?;
    let encoding = header_text(headers, header::CONTENT_ENCODING).map(str::to_owned);
    let body = axum::body::to_bytes(body, limits.max_body_bytes).await.map_err(|_| {
        HttpError::new(ErrorCode::PayloadTooLarge, format!("body exceeds the limit of {} bytes", limits.max_body_bytes))
    })?;
    let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
        .map_err(|error| HttpError::internal(&error))?;
    // Decompression and parsing are CPU work: keep them off the async workers.
    let records = tokio::task::spawn_blocking(move || {
        let decoded = decode_content(encoding.as_deref(), &body, limits.max_decompressed_bytes)?;
        parse_batch(format, &decoded, &limits, now)
    })
    .await
    .map_err(|error| HttpError::internal(&error))??;
    let accepted = records.len() as u64;
    state.log_store.append(records).await?;
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
        return Err(HttpError::new(
            ErrorCode::InvalidParameter,
            format!("limit must be between 1 and {}", LogQuery::MAX_LIMIT),
        ));
    }
    if let (Some(start), Some(end)) = (query.start, query.end)
        && start >= end
    {
        return Err(HttpError::new(ErrorCode::InvalidParameter, "start must be before end"));
    }
    Ok(())
}
