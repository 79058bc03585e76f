//! The backend's one HTTP error type. Every handler returns [`HttpError`]; it renders as
//! `{code, message}` JSON with the status decided by [`ErrorCode::http_status`]. Internal errors
//! are logged with their cause and answered with an opaque message.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigil_proto::{ApiError, ErrorCode};

#[derive(Debug)]
pub struct HttpError {
    error: ApiError,
    retry_after_seconds: Option<u64>,
}

impl HttpError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { error: ApiError::new(code, message), retry_after_seconds: None }
    }

    /// Logs `cause` and answers an opaque 500.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %error_chain(cause), "request failed");
        Self::new(ErrorCode::Internal, "internal error; the cause is in the server log")
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_seconds = Some(seconds);
        self
    }

    pub fn api_error(&self) -> &ApiError {
        &self.error
    }
}

impl From<ApiError> for HttpError {
    fn from(error: ApiError) -> Self {
        Self { error, retry_after_seconds: None }
    }
}

impl From<JsonRejection> for HttpError {
    fn from(rejection: JsonRejection) -> Self {
        Self::new(ErrorCode::InvalidJson, rejection.body_text())
    }
}

impl From<QueryRejection> for HttpError {
    fn from(rejection: QueryRejection) -> Self {
        Self::new(ErrorCode::InvalidParameter, rejection.body_text())
    }
}

impl IntoResponse for HttpError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.error.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, Json(self.error)).into_response();
        if let Some(seconds) = self.retry_after_seconds {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// `error: cause: cause of cause`, for logs.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

impl From<crate::store::StoreError> for HttpError {
    fn from(error: crate::store::StoreError) -> Self {
        match error {
            crate::store::StoreError::Conflict(what) => {
                Self::new(ErrorCode::Conflict, format!("{what} already exists"))
            }
            other => Self::internal(&other),
        }
    }
}
