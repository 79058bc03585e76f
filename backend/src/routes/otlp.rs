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
use vigil_proto::IngestParams;

use crate::error::HttpError;
use crate::ingest::decode_content;
use crate::ingest::otlp::{self, Encoding, messages::ExportLogsPartialSuccess, messages::ExportLogsServiceResponse};
use crate::state::AppState;

pub async fn export(
    State(state): State<Arc<AppState>>,
    params: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, HttpError> {
    let Query(params) = params?;
    let encoding = Encoding::from_content_type(crate::http::header_text(&headers, header::CONTENT_TYPE))?;
    let rejection =
        super::ingest_logs(&state, &headers, body, params.commit, decode_content, move |decoded, limits, now| {
            let request = match encoding {
                Encoding::Protobuf => otlp::decode_protobuf(decoded)?,
                Encoding::Json => otlp::decode_json(decoded)?,
            };
            let export = otlp::records(request, limits, now)?;
            Ok((export.records, (export.rejected, export.first_rejection)))
        })
        .await?;
    let (rejected, first_rejection) = rejection;

    let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected as i64,
        error_message: first_rejection.unwrap_or_default(),
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
