//! The Elasticsearch-compatible ingest: `POST` or `PUT` on `/_bulk` and `/{index}/_bulk`,
//! `GET /` answering with a version document to clients that do not ask for HTML, and the
//! `_license` and `_cluster/health` answers that Logstash and Vector ask for, so that
//! Filebeat, Fluent Bit, Vector, Logstash and the Elasticsearch clients accept Vigil as their
//! Elasticsearch. Every answer carries `X-Elastic-Product: Elasticsearch`.

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
use vigil_proto::{Commit, ErrorCode};

use crate::error::HttpError;
use crate::ingest::IngestError;
use crate::ingest::decode_content;
use crate::ingest::elasticsearch::{Action, check_content_type, filter_path, parse_bulk};
use crate::state::AppState;

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

/// The query parameters of `_bulk` that Vigil reads (the rest, such as `timeout` or
/// `pipeline`, are accepted and ignored).
#[derive(Debug, Default, serde::Deserialize)]
pub struct BulkParams {
    refresh: Option<String>,
    /// Elasticsearch's response filtering (Filebeat and Logstash send
    /// `errors,items.*.error,items.*.status`).
    filter_path: Option<String>,
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
) -> Result<Response, HttpError> {
    let started = Instant::now();
    let params = params?.0;
    let commit = params.commit()?;
    check_content_type(crate::http::header_text(headers, header::CONTENT_TYPE))?;
    // The records go to the store; each action keeps only what its item answers.
    let outcomes = super::ingest_logs(state, headers, body, commit, decode_content, move |decoded, limits, now| {
        let text = std::str::from_utf8(decoded).map_err(IngestError::Utf8)?;
        let entries = parse_bulk(text, default_index.as_deref(), limits, now)?;
        let mut records = Vec::with_capacity(entries.len());
        let outcomes: Vec<_> = entries
            .into_iter()
            .map(|entry| (entry.action, entry.index, entry.id, entry.outcome.map(|record| records.push(record))))
            .collect();
        Ok((records, outcomes))
    })
    .await?;

    let items: Vec<BulkItem> = outcomes
        .into_iter()
        .map(|(action, index, id, outcome)| {
            let (status, error) = match outcome {
                Ok(()) => (201, None),
                Err(error) => (400, Some(error)),
            };
            let result = BulkItemResult { index, id, status, result: None, version: None, error };
            match action {
                Action::Index => BulkItem::Index(result),
                Action::Create => BulkItem::Create(result),
                Action::Update => BulkItem::Update(result),
                Action::Delete => BulkItem::Delete(result),
            }
        })
        .collect();
    let errors = items.iter().any(|item| item.result().error.is_some());
    let response = BulkResponse { took: started.elapsed().as_millis() as u64, errors, items };
    // Compact and in Elasticsearch's order (`took`, `errors`, `items`): Fluent Bit before 3.0
    // looks for `"errors":false,"items":[` in an answer it could not read whole, Vector for
    // `"errors":true`.
    Ok(match params.filter_path {
        Some(filters) => {
            let value = serde_json::to_value(&response).map_err(|error| HttpError::internal(&error))?;
            Json(filter_path(value, &filters)).into_response()
        }
        None => Json(response).into_response(),
    })
}

/// `GET /_license`: Logstash takes a node without an active license for dead.
pub async fn license() -> Response {
    with_product_header(
        Json(serde_json::json!({"license": {"status": "active", "type": "basic", "uid": "vigil"}})).into_response(),
    )
}

/// `GET /_cluster/health`: Vector's health check.
pub async fn cluster_health() -> Response {
    with_product_header(
        Json(serde_json::json!({"cluster_name": "vigil", "status": "green", "timed_out": false})).into_response(),
    )
}
