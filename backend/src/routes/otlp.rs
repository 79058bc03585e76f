//! OTLP/HTTP logs: `POST /v1/logs`, protobuf (`application/x-protobuf`) or JSON
//! (`application/json`), gzip allowed. The answer is an `ExportLogsServiceResponse` in the
//! request's encoding, with `partialSuccess` when some records were refused. A saturated writer
//! answers 429 with `Retry-After` and a shutting-down server 503, which OTLP clients retry.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use vigil_proto::{ErrorCode, IngestParams};

use crate::error::HttpError;
use crate::ingest::decode_content;
use crate::ingest::otlp::{self, messages::ExportLogsPartialSuccess, messages::ExportLogsServiceResponse};
use crate::state::AppState;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

pub async fn export(
    State(state): State<Arc<AppState>>,
    params: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let Query(params) = params?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("(none)");
    let encoding = match content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase().as_str() {
        "application/x-protobuf" | "application/protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        _ => {
            return Err(HttpError::new(
                ErrorCode::UnsupportedMediaType,
                format!("content type {content_type} is not accepted: send application/x-protobuf or application/json"),
            ));
        }
    };
    let limits = state.config.logs.clone();
    let content_encoding = crate::http::header_text(&headers, header::CONTENT_ENCODING).map(str::to_owned);
    let (body, mut admission) =
        super::admitted_body(&state.ingest_budget, &headers, body, limits.max_body_bytes).await?;
    let now = super::now()?;
    let max_decompressed = limits.max_decompressed_bytes;
    let decoded = super::decoded_body(&mut admission, body, move |body| {
        decode_content(content_encoding.as_deref(), body, max_decompressed)
    })
    .await?;
    let export = tokio::task::spawn_blocking(move || {
        let request = match encoding {
            Encoding::Protobuf => otlp::decode_protobuf(&decoded)?,
            Encoding::Json => otlp::decode_json(&decoded)?,
        };
        otlp::records(request, &limits, now)
    })
    .await
    .map_err(|error| HttpError::internal(&error))??;
    let rejected = export.rejected;
    state.log_store.append(export.records, params.commit).await?;
    drop(admission);

    let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected as i64,
        error_message: export.first_rejection.unwrap_or_default(),
    });
    Ok(match encoding {
        Encoding::Protobuf => {
            let body = prost::Message::encode_to_vec(&ExportLogsServiceResponse { partial_success });
            ([(header::CONTENT_TYPE, HeaderValue::from_static("application/x-protobuf"))], body).into_response()
        }
        Encoding::Json => {
            let body = match partial_success {
                Some(partial) => serde_json::json!({"partialSuccess": {
                    "rejectedLogRecords": partial.rejected_log_records.to_string(),
                    "errorMessage": partial.error_message,
                }}),
                None => serde_json::json!({}),
            };
            axum::Json(body).into_response()
        }
    })
}
