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

impl From<crate::prometheus::query::QueryError> for HttpError {
    fn from(error: crate::prometheus::query::QueryError) -> Self {
        use crate::prometheus::query::QueryError;
        match error {
            QueryError::Invalid { message, position } => {
                let error = ApiError::new(ErrorCode::InvalidQuery, message);
                HttpError::from(match position {
                    Some(position) => error.at_position(position),
                    None => error,
                })
            }
            QueryError::Parameter(_) => Self::new(ErrorCode::InvalidParameter, error.to_string()),
            QueryError::Selector { .. } | QueryError::TooManySeries { .. } | QueryError::Request(_) => {
                Self::new(ErrorCode::InvalidQuery, error.to_string())
            }
            QueryError::TimedOut(_)
            | QueryError::Failed(_)
            | QueryError::NoAnswer { .. }
            | QueryError::Unreachable { .. } => Self::new(ErrorCode::Unavailable, error.to_string()),
        }
    }
}

impl From<crate::prometheus::BatchError> for HttpError {
    fn from(error: crate::prometheus::BatchError) -> Self {
        use crate::prometheus::BatchError;
        let code = match error {
            BatchError::TooManySeries { .. } | BatchError::TooManySamples { .. } => ErrorCode::PayloadTooLarge,
            BatchError::Series { .. } => ErrorCode::InvalidRecord,
        };
        Self::new(code, error.to_string())
    }
}

impl From<crate::ingest::IngestError> for HttpError {
    fn from(error: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError;
        let code = match &error {
            IngestError::MediaType { .. } => ErrorCode::UnsupportedMediaType,
            IngestError::Header { .. } => ErrorCode::InvalidParameter,
            IngestError::UnsupportedEncoding { .. } => ErrorCode::UnsupportedEncoding,
            IngestError::LokiEncoding(_) | IngestError::Corrupt { .. } | IngestError::Snappy(_) => {
                ErrorCode::InvalidEncoding
            }
            IngestError::TooLarge(_) | IngestError::TooMany { .. } => ErrorCode::PayloadTooLarge,
            IngestError::NotUtf8 { .. } | IngestError::Utf8(_) | IngestError::BulkAction { .. } => {
                ErrorCode::InvalidJson
            }
            IngestError::Json { source, .. } if source.is_data() => ErrorCode::InvalidRecord,
            IngestError::Json { .. } => ErrorCode::InvalidJson,
            IngestError::Record { .. } => ErrorCode::InvalidRecord,
            IngestError::Protobuf { .. } => ErrorCode::InvalidProtobuf,
        };
        let api = ApiError::new(code, error.to_string());
        HttpError::from(match error.line() {
            Some(line) => api.at_line(line),
            None => api,
        })
    }
}

impl From<crate::alerts::AlertError> for HttpError {
    fn from(error: crate::alerts::AlertError) -> Self {
        use crate::alerts::AlertError;
        use crate::alerts::channels::DeliveryError;
        match error {
            AlertError::Invalid(_) | AlertError::UnknownChannel(_) => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            AlertError::Query(_) => Self::new(ErrorCode::InvalidQuery, error.to_string()),
            AlertError::NoRule(_) | AlertError::NoAlert(_) | AlertError::NoSilence(_) => {
                Self::new(ErrorCode::NotFound, error.to_string())
            }
            AlertError::NotFiring(_) | AlertError::AlreadyAcknowledged { .. } => {
                Self::new(ErrorCode::Conflict, error.to_string())
            }
            AlertError::Delivery(DeliveryError::Setting(_) | DeliveryError::NotAChannel(_)) => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            AlertError::Delivery(_) => Self::new(ErrorCode::Unavailable, error.to_string()),
            AlertError::Integration(error) => error.into(),
            AlertError::Prometheus(error) => error.into(),
            AlertError::LogStore(error) => error.into(),
            AlertError::Store(error) => error.into(),
            AlertError::Encoding(_) => Self::internal(&error),
        }
    }
}

impl From<crate::rollouts::provider::ProviderError> for HttpError {
    fn from(error: crate::rollouts::provider::ProviderError) -> Self {
        use crate::rollouts::provider::ProviderError;
        match error {
            ProviderError::Params(_) | ProviderError::UnknownKind(_) => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            ProviderError::Unsupported(_) => Self::new(ErrorCode::Conflict, error.to_string()),
            ProviderError::Refused { .. } | ProviderError::Answer { .. } | ProviderError::Request { .. } => {
                Self::new(ErrorCode::Unavailable, error.to_string())
            }
            ProviderError::Store(error) => error.into(),
        }
    }
}

impl From<crate::rollouts::RolloutError> for HttpError {
    fn from(error: crate::rollouts::RolloutError) -> Self {
        use crate::rollouts::RolloutError;
        match error {
            RolloutError::Invalid(_) | RolloutError::UnknownIntegration(_) | RolloutError::BadCallback(_) => {
                Self::new(ErrorCode::InvalidParameter, error.to_string())
            }
            RolloutError::NoService(_) | RolloutError::NoEnvironment { .. } | RolloutError::NoRollout(_) => {
                Self::new(ErrorCode::NotFound, error.to_string())
            }
            RolloutError::Busy { .. }
            | RolloutError::Frozen { .. }
            | RolloutError::Transition(_)
            | RolloutError::NoPreviousVersion { .. } => Self::new(ErrorCode::Conflict, error.to_string()),
            RolloutError::OwnApproval(_) => Self::new(ErrorCode::Forbidden, error.to_string()),
            RolloutError::BadSignature(_) => Self::new(ErrorCode::Unauthorized, error.to_string()),
            RolloutError::Provider(error) => error.into(),
            RolloutError::Integration(error) => error.into(),
            RolloutError::Alerts(error) => error.into(),
            RolloutError::Store(error) => error.into(),
            RolloutError::Encoding(_) => Self::internal(&error),
        }
    }
}

impl From<crate::rollouts::agent::AgentDeployError> for HttpError {
    fn from(error: crate::rollouts::agent::AgentDeployError) -> Self {
        use crate::rollouts::agent::AgentDeployError;
        match error {
            AgentDeployError::Invalid(_) => Self::new(ErrorCode::InvalidParameter, error.to_string()),
            AgentDeployError::NotBound(_) => Self::new(ErrorCode::Forbidden, error.to_string()),
            AgentDeployError::NoOrder(_) => Self::new(ErrorCode::NotFound, error.to_string()),
            AgentDeployError::Over { .. } => Self::new(ErrorCode::Conflict, error.to_string()),
            AgentDeployError::Store(error) => error.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use vigil_proto::{ApiError, ErrorCode};

    use super::HttpError;
    use crate::ingest::{BodyFormat, decode_content, parse_batch};

    fn api(error: impl Into<HttpError>) -> ApiError {
        error.into().api_error().clone()
    }

    const RECORD: &str = r#"{"timestamp":"2026-11-29T08:00:00Z","service":"api","level":"WARN","message":"slow"}"#;

    /// The codes and lines the ingest endpoints answer with, for the errors `ingest` reports.
    #[test]
    fn ingest_errors_answer_with_their_code_and_line() {
        let limits = crate::config::Config::for_tests(std::path::Path::new("unused")).logs;
        let now = "2026-11-29T09:00:00Z".parse().unwrap();
        let parse = |format, body: &[u8], limits| api(parse_batch(format, body, limits, now).unwrap_err());

        let body = format!("{RECORD}\n{RECORD}\n{{\"timestamp\":\"2026-11-29T08:00:00Z\",\"service\":\"api\"}}\n");
        let missing = parse(BodyFormat::Ndjson, body.as_bytes(), &limits);
        assert_eq!((missing.code, missing.line), (ErrorCode::InvalidRecord, Some(3)));
        assert!(missing.message.starts_with("line 3: missing field `message`"), "{}", missing.message);
        let garbage = parse(BodyFormat::Ndjson, format!("{RECORD}\nnot json\n").as_bytes(), &limits);
        assert_eq!((garbage.code, garbage.line), (ErrorCode::InvalidJson, Some(2)));
        let mut not_utf8 = format!("{RECORD}\n").into_bytes();
        not_utf8.extend_from_slice(b"{\"message\":\"\xff\"}\n");
        let not_utf8 = parse(BodyFormat::Ndjson, &not_utf8, &limits);
        assert_eq!((not_utf8.code, not_utf8.line), (ErrorCode::InvalidJson, Some(2)));
        let not_an_array = parse(BodyFormat::Json, br#"{"a": 1"#, &limits);
        assert_eq!(not_an_array.code, ErrorCode::InvalidJson);
        let wrong_shape = parse(BodyFormat::Json, br#"[{"timestamp":"noon","service":"a","message":"m"}]"#, &limits);
        assert_eq!((wrong_shape.code, wrong_shape.line), (ErrorCode::InvalidRecord, None));
        let one_record = crate::config::LogsConfig { max_batch_records: 1, ..limits.clone() };
        let too_many = parse(BodyFormat::Ndjson, format!("{RECORD}\n{RECORD}\n").as_bytes(), &one_record);
        assert_eq!(too_many.code, ErrorCode::PayloadTooLarge);

        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut encoder, &[b' '; 10_000]).unwrap();
        let compressed = encoder.finish().unwrap();
        assert_eq!(api(decode_content(Some("gzip"), &compressed, 9_999).unwrap_err()).code, ErrorCode::PayloadTooLarge);
        assert_eq!(api(decode_content(Some("gzip"), b"plain", 100).unwrap_err()).code, ErrorCode::InvalidEncoding);
        assert_eq!(api(decode_content(Some("zstd"), b"not zstd", 100).unwrap_err()).code, ErrorCode::InvalidEncoding);
        assert_eq!(api(decode_content(Some("br"), b"x", 100).unwrap_err()).code, ErrorCode::UnsupportedEncoding);
        let media = api(BodyFormat::from_content_type(Some("text/plain")).unwrap_err());
        assert_eq!(media.code, ErrorCode::UnsupportedMediaType);
        assert_eq!(api(BodyFormat::from_content_type(None).unwrap_err()).code, ErrorCode::UnsupportedMediaType);

        let loki = api(crate::ingest::loki::decode_json(
            br#"{"streams":[{"stream":{"job":"a"},"values":[[1795939200000000000,"line"]]}]}"#,
        )
        .unwrap_err());
        assert_eq!(loki.code, ErrorCode::InvalidRecord);
        assert_eq!(api(crate::ingest::loki::is_json(Some("a/b; c")).unwrap_err()).code, ErrorCode::InvalidParameter);
        let bulk =
            crate::ingest::elasticsearch::parse_bulk("{\"index\":{}}\n{}\n{\"upsert\":{}}\n", Some("a"), &limits, now);
        let bulk = api(bulk.unwrap_err());
        assert_eq!((bulk.code, bulk.line), (ErrorCode::InvalidJson, Some(3)));
    }
}
