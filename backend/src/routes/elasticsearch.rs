//! The Elasticsearch-compatible ingest: `POST /_bulk`, `POST /{index}/_bulk`, and `GET /`
//! answering with a version document to clients that do not ask for HTML, so that Filebeat,
//! Fluent Bit, Vector and Logstash accept Vigil as their Elasticsearch output.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vigil_proto::elasticsearch::{BulkItem, BulkItemResult, BulkResponse, ElasticsearchInfo};
use vigil_proto::{ApiError, Commit, ErrorCode};

use crate::error::HttpError;
use crate::ingest::decode_content;
use crate::ingest::elasticsearch::{Action, parse_bulk};
use crate::startup::AppState;

const PRODUCT_HEADER: HeaderName = HeaderName::from_static("x-elastic-product");

fn with_product_header(mut response: Response) -> Response {
    response.headers_mut().insert(PRODUCT_HEADER, HeaderValue::from_static("Elasticsearch"));
    response
}

/// Middleware: `GET /` (or `HEAD /`) from a client that does not accept HTML gets the version
/// document; browsers get the UI.
pub async fn root_info(request: Request, next: Next) -> Response {
    let is_root = request.uri().path() == "/" && matches!(*request.method(), Method::GET | Method::HEAD);
    let wants_html = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|accept| accept.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if is_root && !wants_html {
        return with_product_header(Json(ElasticsearchInfo::vigil()).into_response());
    }
    next.run(request).await
}

/// The query parameters of `_bulk` that Vigil reads.
#[derive(Debug, Default, serde::Deserialize)]
pub struct BulkParams {
    refresh: Option<String>,
}

impl BulkParams {
    /// Elasticsearch's `refresh`: `false` (the default) answers once durable, `wait_for` once
    /// searchable, `true` (or no value) starts a commit and answers once searchable.
    fn commit(&self) -> Result<Commit, HttpError> {
        match self.refresh.as_deref() {
            None | Some("false") => Ok(Commit::Auto),
            Some("wait_for") => Ok(Commit::WaitFor),
            Some("" | "true") => Ok(Commit::Force),
            Some(other) => Err(HttpError::new(
                ErrorCode::InvalidParameter,
                format!("refresh must be true, false or wait_for, not {other:?}"),
            )),
        }
    }
}

pub async fn bulk(
    State(state): State<Arc<AppState>>,
    params: Result<Query<BulkParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    with_product_header(run_bulk(&state, params, &headers, body, None).await.into_response())
}

pub async fn index_bulk(
    State(state): State<Arc<AppState>>,
    Path(index): Path<String>,
    params: Result<Query<BulkParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    with_product_header(run_bulk(&state, params, &headers, body, Some(index)).await.into_response())
}

async fn run_bulk(
    state: &Arc<AppState>,
    params: Result<Query<BulkParams>, QueryRejection>,
    headers: &HeaderMap,
    body: Body,
    default_index: Option<String>,
) -> Result<Json<BulkResponse>, HttpError> {
    let started = Instant::now();
    let commit = params?.0.commit()?;
    let limits = state.config.logs.clone();
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("(none)");
    let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    if !matches!(
        essence.as_str(),
        "application/x-ndjson"
            | "application/json"
            | "application/vnd.elasticsearch+x-ndjson"
            | "application/vnd.elasticsearch+json"
    ) {
        return Err(HttpError::new(
            ErrorCode::UnsupportedMediaType,
            format!("content type {content_type} is not accepted: send application/x-ndjson"),
        ));
    }
    let encoding = super::header_text(headers, header::CONTENT_ENCODING).map(str::to_owned);
    let body = super::bounded_body(body, limits.max_body_bytes).await?;
    let now = super::now()?;
    let entries = tokio::task::spawn_blocking(move || {
        let decoded = decode_content(encoding.as_deref(), &body, limits.max_decompressed_bytes)?;
        let text = std::str::from_utf8(&decoded)
            .map_err(|error| ApiError::new(ErrorCode::InvalidJson, format!("body is not valid UTF-8: {error}")))?;
        parse_bulk(text, default_index.as_deref(), &limits, now)
    })
    .await
    .map_err(|error| HttpError::internal(&error))??;

    let records: Vec<_> = entries.iter().filter_map(|entry| entry.outcome.as_ref().ok().cloned()).collect();
    state.log_store.append(records, commit).await?;

    let id_prefix = id_prefix().map_err(|error| HttpError::internal(&error))?;
    let items: Vec<BulkItem> = entries
        .into_iter()
        .enumerate()
        .map(|(position, entry)| {
            let id = entry.id.unwrap_or_else(|| format!("{id_prefix}{position:06x}"));
            let result = match entry.outcome {
                Ok(_) => BulkItemResult {
                    index: entry.index,
                    id,
                    status: 201,
                    result: Some("created".to_owned()),
                    version: Some(1),
                    error: None,
                },
                Err(error) => BulkItemResult {
                    index: entry.index,
                    id,
                    status: 400,
                    result: None,
                    version: None,
                    error: Some(error),
                },
            };
            match entry.action {
                Action::Index => BulkItem::Index(result),
                Action::Create => BulkItem::Create(result),
                Action::Update => BulkItem::Update(result),
                Action::Delete => BulkItem::Delete(result),
            }
        })
        .collect();
    let errors = items.iter().any(|item| item.result().error.is_some());
    Ok(Json(BulkResponse { took: started.elapsed().as_millis() as u64, errors, items }))
}

/// A random prefix for the ids of documents sent without one.
fn id_prefix() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 7];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
