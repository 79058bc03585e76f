//! HTTP adapters: they decode requests, call the domain modules and encode answers. No
//! business logic lives here.

pub mod account;
pub mod admin;
pub mod agents;
pub mod alertmanager;
pub mod alerts;
pub mod assets;
pub mod dashboards;
pub mod elasticsearch;
pub mod health;
pub mod integrations;
pub mod logs;
pub mod loki;
pub mod metrics;
pub mod otlp;
pub mod rollouts;
pub mod sso;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use std::borrow::Cow;

use vigil_proto::{Commit, ErrorCode, LogRecord, Timestamp};

use crate::config::LogsConfig;
use crate::error::HttpError;
use crate::http::header_text;
use crate::ingest::IngestError;
use crate::ingest::budget::{Admission, BudgetFull, IngestBudget};
use crate::state::AppState;

/// Headers on every answer: other sites may not frame Vigil's pages (clickjacking), browsers
/// may not guess content types, and no URL (with its query) is sent as referrer elsewhere.
pub async fn security_headers(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    use axum::http::{HeaderValue, header};
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    for (name, value) in [
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::CONTENT_SECURITY_POLICY, "frame-ancestors 'none'"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        headers.entry(name).or_insert(HeaderValue::from_static(value));
    }
    response
}

/// Server functions answer every error with 500 and the error in the body (a `UiError`, the
/// `ApiError` as JSON): the status is made to follow its code, so that bad input is a 4xx,
/// as everywhere else, and only what fails on the server counts as a server error.
pub async fn server_function_status(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let is_server_function = request.uri().path().starts_with("/ui/fn/");
    let response = next.run(request).await;
    if !is_server_function
        || response.status() != axum::http::StatusCode::INTERNAL_SERVER_ERROR
        || !response.headers().contains_key("serverfnerror")
    {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 1 << 20).await else {
        return (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "unreadable server function error").into_response();
    };
    if let Ok(error) = serde_json::from_slice::<vigil_proto::ApiError>(&bytes)
        && let Ok(status) = axum::http::StatusCode::from_u16(error.code.http_status())
    {
        parts.status = status;
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// A known path with a method it does not serve.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    HttpError::new(ErrorCode::MethodNotAllowed, format!("{} does not accept {method}", uri.path())).into_response()
}

/// Whether a request comes from a browser navigating (a `GET` that accepts HTML), not from an
/// API client.
pub fn wants_html(request: &axum::extract::Request) -> bool {
    matches!(*request.method(), Method::GET | Method::HEAD)
        && !request.uri().path().starts_with("/api/")
        && header_text(request.headers(), axum::http::header::ACCEPT).is_some_and(|accept| accept.contains("text/html"))
}

/// Unknown paths.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    HttpError::new(ErrorCode::NotFound, format!("no route for {method} {}", uri.path())).into_response()
}

/// The request body, refused with 413 past `limit` bytes.
pub async fn bounded_body(body: Body, limit: usize) -> Result<Bytes, HttpError> {
    axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| HttpError::new(ErrorCode::PayloadTooLarge, format!("body exceeds the limit of {limit} bytes")))
}

/// How an endpoint undoes a `Content-Encoding` (its name, the body, the most it may become).
pub type Decode = for<'body> fn(Option<&str>, &'body [u8], usize) -> Result<Cow<'body, [u8]>, IngestError>;

/// What every log ingest endpoint does once it has checked the request's media type: the body
/// admitted within the ingest memory bound, decoded and read on the blocking pool (`read`
/// gives the records and what the answer needs besides), the records appended with `commit`.
pub async fn ingest_logs<T, Read>(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
    commit: Commit,
    decode: Decode,
    read: Read,
) -> Result<T, HttpError>
where
    Read: FnOnce(&[u8], &LogsConfig, Timestamp) -> Result<(Vec<LogRecord>, T), IngestError> + Send + 'static,
    T: Send + 'static,
{
    let limits = state.config.logs.clone();
    let encoding = header_text(headers, axum::http::header::CONTENT_ENCODING).map(str::to_owned);
    let (body, mut admission) = admitted_body(&state.ingest_budget, headers, body, limits.max_body_bytes).await?;
    let now = now()?;
    let max_decompressed = limits.max_decompressed_bytes;
    let decoded =
        decoded_body(&mut admission, body, move |body| decode(encoding.as_deref(), body, max_decompressed)).await?;
    let (records, answer) = tokio::task::spawn_blocking(move || read(&decoded, &limits, now))
        .await
        .map_err(|error| HttpError::internal(&error))??;
    state.log_store.append(records, commit).await?;
    drop(admission);
    Ok(answer)
}

/// An ingest request's body, read once there is room for it in the ingest memory bound (its
/// declared length, else the limit: the body waits in the connection meanwhile), with the
/// room it holds.
async fn admitted_body<'budget>(
    budget: &'budget IngestBudget,
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<(Bytes, Admission<'budget>), HttpError> {
    let declared = header_text(headers, axum::http::header::CONTENT_LENGTH)
        .and_then(|length| length.trim().parse::<usize>().ok())
        .map_or(limit, |length| length.min(limit));
    let admission = budget.admit(declared).await.map_err(budget_full)?;
    let bytes = bounded_body(body, limit).await?;
    Ok((bytes, admission))
}

/// Decodes an admitted body on the blocking pool, then holds room for what it becomes (the
/// decoded bytes, the records parsed from them and their write-ahead-log encoding).
async fn decoded_body<F>(admission: &mut Admission<'_>, body: Bytes, decode: F) -> Result<Bytes, HttpError>
where
    F: FnOnce(&[u8]) -> Result<Cow<'_, [u8]>, IngestError> + Send + 'static,
{
    let (decoded, inflated) = tokio::task::spawn_blocking(move || {
        let inflated = match decode(&body)? {
            Cow::Borrowed(_) => None,
            Cow::Owned(decoded) => Some(Bytes::from(decoded)),
        };
        Ok::<_, IngestError>(match inflated {
            Some(decoded) => (decoded, true),
            None => (body, false),
        })
    })
    .await
    .map_err(|error| HttpError::internal(&error))??;
    // The records (up to three times the bytes they were read from: a string per field, a
    // map of attributes), their log encoding, and the decoded bytes when they are new.
    let copies = if inflated { 5 } else { 4 };
    admission.hold_decoded(decoded.len().saturating_mul(copies)).await.map_err(budget_full)?;
    Ok(decoded)
}

fn budget_full(error: BudgetFull) -> HttpError {
    HttpError::new(ErrorCode::TooManyRequests, error.to_string()).retry_after(1)
}

/// A JSON request body, or 400 naming what was expected.
pub fn json_body<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, HttpError> {
    serde_json::from_slice(bytes)
        .map_err(|error| HttpError::new(ErrorCode::InvalidJson, format!("invalid {what}: {error}")))
}

/// The server's clock.
pub fn now() -> Result<Timestamp, HttpError> {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).map_err(|error| HttpError::internal(&error))
}
