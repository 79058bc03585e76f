//! The backend's one HTTP error type. Every handler returns [`HttpError`]; it renders as
//! `{code, message}` JSON with the status decided by [`ErrorCode::http_status`]. Internal errors
//! are logged with their cause and answered with an opaque message.

use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use vigil_proto::{ApiError, ErrorCode};

use crate::telemetry::error_chain;

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

impl From<vigil_proto::names::NameError> for HttpError {
    fn from(error: vigil_proto::names::NameError) -> Self {
        Self::new(ErrorCode::InvalidParameter, error.to_string())
    }
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

impl From<crate::dashboards::DashboardError> for HttpError {
    fn from(error: crate::dashboards::DashboardError) -> Self {
        use crate::dashboards::DashboardError;
        match error {
            DashboardError::Invalid(_) => Self::new(ErrorCode::InvalidParameter, error.to_string()),
            DashboardError::NotFound(_) | DashboardError::NoService(_) => {
                Self::new(ErrorCode::NotFound, error.to_string())
            }
            DashboardError::NamesTaken(_) | DashboardError::Stale { .. } => {
                Self::new(ErrorCode::Conflict, error.to_string())
            }
            DashboardError::Store(error) => error.into(),
            DashboardError::Encoding(error) => Self::internal(&error),
        }
    }
}

impl From<crate::auth::LoginError> for HttpError {
    fn from(error: crate::auth::LoginError) -> Self {
        use crate::auth::LoginError;
        match error {
            LoginError::InvalidCredentials | LoginError::Disabled => {
                HttpError::new(ErrorCode::Unauthorized, error.to_string())
            }
            LoginError::TooLong(..) => HttpError::new(ErrorCode::InvalidParameter, error.to_string()),
            LoginError::LockedOut(locked) => HttpError::new(ErrorCode::TooManyRequests, error.to_string())
                .retry_after(locked.retry_after.as_secs().max(1)),
            LoginError::Store(error) => HttpError::internal(&error),
            LoginError::Random => HttpError::internal(&error),
        }
    }
}

impl From<crate::auth::TokenError> for HttpError {
    fn from(error: crate::auth::TokenError) -> Self {
        use crate::auth::TokenError;
        match error {
            TokenError::Name(error) => error.into(),
            TokenError::NoScope | TokenError::PersonalWithScope | TokenError::NoDays => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            TokenError::Store(error) => error.into(),
            TokenError::Random(_) | TokenError::Hash(_) => Self::internal(&error),
        }
    }
}

impl From<crate::auth::PasswordChangeError> for HttpError {
    fn from(error: crate::auth::PasswordChangeError) -> Self {
        use crate::auth::PasswordChangeError;
        match error {
            PasswordChangeError::Rejected(_) => Self::new(ErrorCode::InvalidParameter, error.to_string()),
            PasswordChangeError::Hash(_) => Self::internal(&error),
            PasswordChangeError::Store(error) => error.into(),
        }
    }
}

impl From<crate::accounts::AccountError> for HttpError {
    fn from(error: crate::accounts::AccountError) -> Self {
        use crate::accounts::AccountError;
        match error {
            AccountError::Name(error) => error.into(),
            AccountError::DisplayNameTooLong | AccountError::Password(_) | AccountError::AuditLimit => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            AccountError::NoUser(_) | AccountError::UserGone | AccountError::NoToken { .. } => {
                Self::new(ErrorCode::NotFound, error.to_string())
            }
            AccountError::LastAdmin => Self::new(ErrorCode::Conflict, error.to_string()),
            AccountError::NotAUser | AccountError::NoPassword | AccountError::WrongPassword => {
                Self::new(ErrorCode::Forbidden, error.to_string())
            }
            AccountError::Hash(_) => Self::internal(&error),
            AccountError::Token(error) => error.into(),
            AccountError::PasswordChange(error) => error.into(),
            AccountError::Login(error) => error.into(),
            AccountError::Store(error) => error.into(),
        }
    }
}

impl From<crate::integrations::IntegrationError> for HttpError {
    fn from(error: crate::integrations::IntegrationError) -> Self {
        use crate::integrations::IntegrationError;
        match error {
            IntegrationError::Invalid(_) | IntegrationError::UnknownKind(_) => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            IntegrationError::NotFound(_) => Self::new(ErrorCode::NotFound, error.to_string()),
            IntegrationError::Store(error) => error.into(),
            IntegrationError::Secret(_) | IntegrationError::Encoding(_) => Self::internal(&error),
        }
    }
}

impl From<vigil_logstore::LogStoreError> for HttpError {
    fn from(error: vigil_logstore::LogStoreError) -> Self {
        use vigil_logstore::LogStoreError;
        match error {
            LogStoreError::InvalidQuery { message, position } => {
                let error = ApiError::new(ErrorCode::InvalidQuery, message);
                HttpError::from(match position {
                    Some(position) => error.at_position(position as u64),
                    None => error,
                })
            }
            LogStoreError::Busy => {
                HttpError::new(ErrorCode::TooManyRequests, "the log writer is saturated; retry later").retry_after(1)
            }
            LogStoreError::Closed => HttpError::new(ErrorCode::Unavailable, "the log store is shutting down"),
            LogStoreError::TooManyPartitions(_) => HttpError::new(ErrorCode::InvalidRecord, error.to_string()),
            other => HttpError::internal(&other),
        }
    }
}

impl From<crate::search::SearchError> for HttpError {
    fn from(error: crate::search::SearchError) -> Self {
        use crate::search::SearchError;
        match error {
            SearchError::Invalid(_) => Self::new(ErrorCode::InvalidParameter, error.to_string()),
            SearchError::NoRecord(_) => Self::new(ErrorCode::NotFound, error.to_string()),
            SearchError::Store(error) => error.into(),
        }
    }
}

impl From<crate::agents::AgentError> for HttpError {
    fn from(error: crate::agents::AgentError) -> Self {
        use crate::agents::AgentError;
        match error {
            AgentError::Invalid(_) => Self::new(ErrorCode::InvalidParameter, error.to_string()),
            AgentError::TooManyRegistrations { retry_after } => {
                Self::new(ErrorCode::TooManyRequests, error.to_string()).retry_after(retry_after.as_secs().max(1))
            }
            AgentError::BoundElsewhere(_) => Self::new(ErrorCode::Forbidden, error.to_string()),
            AgentError::Encoding(_) => Self::internal(&error),
            AgentError::Store(error) => error.into(),
        }
    }
}
