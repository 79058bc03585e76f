//! HTTP adapters: they decode requests, call the domain modules and encode answers. No
//! business logic lives here.

pub mod elasticsearch;
pub mod health;
pub mod logs;
pub mod loki;
pub mod otlp;

use axum::http::{Method, Uri};
use axum::response::{IntoResponse, Response};
use vigil_proto::ErrorCode;

use crate::error::HttpError;

/// A known path with a method it does not serve.
pub async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    HttpError::new(ErrorCode::MethodNotAllowed, format!("{} does not accept {method}", uri.path())).into_response()
}

/// Unknown paths.
pub async fn fallback(method: Method, uri: Uri) -> Response {
    HttpError::new(ErrorCode::NotFound, format!("no route for {method} {}", uri.path())).into_response()
}
