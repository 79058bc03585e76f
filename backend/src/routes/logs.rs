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
    Commit, ContextQuery, ErrorCode, FieldValues, FieldsQuery, HistogramQuery, IngestParams, IngestResponse,
    LogContext, LogHistogram, LogPage, LogQuery, TailQuery,
};

use super::now;
use crate::auth::Caller;
use crate::error::HttpError;
use crate::http::header_text;
use crate::ingest::{BatchDefaults, BodyFormat, decode_content, parse_batch_with};
use crate::search;
use crate::state::AppState;

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
    let format = BodyFormat::from_content_type(header_text(headers, header::CONTENT_TYPE))?;
    super::ingest_logs(state, headers, body, commit, decode_content, move |decoded, limits, now| {
        let records = parse_batch_with(format, decoded, limits, &defaults, now)?;
        let accepted = records.len() as u64;
        Ok((records, accepted))
    })
    .await
}

pub async fn search(
    State(state): State<Arc<AppState>>,
    query: Result<Query<LogQuery>, QueryRejection>,
) -> Result<Json<LogPage>, HttpError> {
    let Query(query) = query?;
    Ok(Json(search::search(state.log_store.as_ref(), query).await?))
}

pub async fn histogram(
    State(state): State<Arc<AppState>>,
    query: Result<Query<HistogramQuery>, QueryRejection>,
) -> Result<Json<LogHistogram>, HttpError> {
    let Query(request) = query?;
    Ok(Json(search::histogram(state.log_store.as_ref(), &request, now()?).await?))
}

pub async fn fields(
    State(state): State<Arc<AppState>>,
    query: Result<Query<FieldsQuery>, QueryRejection>,
) -> Result<Json<FieldValues>, HttpError> {
    let Query(request) = query?;
    Ok(Json(search::fields(state.log_store.as_ref(), request).await?))
}

pub async fn context(
    State(state): State<Arc<AppState>>,
    query: Result<Query<ContextQuery>, QueryRejection>,
) -> Result<Json<LogContext>, HttpError> {
    let Query(request) = query?;
    Ok(Json(search::context(state.log_store.as_ref(), &request).await?))
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
