//! `POST /loki/api/v1/push`: Loki's push API. JSON when the content type says so,
//! snappy-compressed protobuf otherwise, either gzip- or deflate-encoded, as in Loki. Success is 204 No Content; when
//! entries were refused the others are still stored and the answer is 400 naming why, which
//! Loki clients do not retry.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use vigil_proto::{ErrorCode, IngestParams};

use crate::error::HttpError;
use crate::ingest::loki;
use crate::state::AppState;

pub async fn push(
    State(state): State<Arc<AppState>>,
    params: Result<Query<IngestParams>, QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let Query(params) = params?;
    // As Loki reads them: the media type first, so that a malformed one is refused before the
    // body is read.
    let is_json = loki::is_json(crate::http::header_text(&headers, header::CONTENT_TYPE))?;
    let push =
        super::ingest_logs(&state, &headers, body, params.commit, loki::decode_content, move |body, limits, now| {
            let streams = if is_json {
                loki::decode_json(body)?
            } else {
                loki::decode_protobuf(body, limits.max_decompressed_bytes)?
            };
            let mut push = loki::records(streams, limits, now)?;
            Ok((std::mem::take(&mut push.records), push))
        })
        .await?;
    if push.rejected > 0 {
        return Err(HttpError::new(
            ErrorCode::InvalidRecord,
            format!("{} entries refused, the others stored: {}", push.rejected, push.errors.join("; ")),
        ));
    }
    Ok(StatusCode::NO_CONTENT)
}
