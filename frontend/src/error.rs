//! The error of every server function: the backend's [`ApiError`] as it is (code, message,
//! and the position of a query's syntax error), so that the page shows the message itself and
//! the answer's HTTP status says whose mistake it was (the backend sets it from the code).

use std::fmt;

use leptos::server_fn::codec::JsonEncoding;
use leptos::server_fn::error::{FromServerFnError, ServerFnErrorErr};
use serde::{Deserialize, Serialize};
use vigil_proto::{ApiError, ErrorCode};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct UiError(pub ApiError);

impl UiError {
    /// Bad input from the page.
    pub fn invalid(message: impl fmt::Display) -> Self {
        Self(ApiError::new(ErrorCode::InvalidParameter, message.to_string()))
    }

    /// What the page cannot help.
    pub fn internal(message: impl fmt::Display) -> Self {
        Self(ApiError::new(ErrorCode::Internal, message.to_string()))
    }

    pub fn code(&self) -> ErrorCode {
        self.0.code
    }

    /// Where in the query a syntax error is (a byte offset), when it is one.
    pub fn position(&self) -> Option<u64> {
        self.0.position
    }
}

impl fmt::Display for UiError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0.message)
    }
}

impl std::error::Error for UiError {}

impl From<ApiError> for UiError {
    fn from(error: ApiError) -> Self {
        Self(error)
    }
}

impl FromServerFnError for UiError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            ServerFnErrorErr::Args(message) | ServerFnErrorErr::MissingArg(message) => {
                Self::invalid(format!("invalid arguments: {message}"))
            }
            ServerFnErrorErr::UnsupportedRequestMethod(message) => {
                Self(ApiError::new(ErrorCode::MethodNotAllowed, message))
            }
            ServerFnErrorErr::Request(message) => {
                Self(ApiError::new(ErrorCode::Unavailable, format!("the server cannot be reached: {message}")))
            }
            ServerFnErrorErr::Registration(message)
            | ServerFnErrorErr::ServerError(message)
            | ServerFnErrorErr::MiddlewareError(message)
            | ServerFnErrorErr::Deserialization(message)
            | ServerFnErrorErr::Serialization(message)
            | ServerFnErrorErr::Response(message) => Self::internal(message),
        }
    }
}
