use serde::{Deserialize, Serialize};

/// What went wrong, as a stable machine-readable code. The HTTP status of each code is decided
/// here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON / NDJSON, or not valid UTF-8.
    InvalidJson,
    /// The body does not decode with its `Content-Encoding`.
    InvalidEncoding,
    /// The body is not the protobuf message the endpoint takes.
    InvalidProtobuf,
    /// A record is well-formed JSON but misses a field or carries an invalid value.
    InvalidRecord,
    /// A query parameter is missing or malformed.
    InvalidParameter,
    /// The log query does not parse.
    InvalidQuery,
    UnsupportedMediaType,
    UnsupportedEncoding,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    /// The resource exists already, or the change conflicts with its state.
    Conflict,
    /// The server is saturated; retry after the `Retry-After` delay.
    TooManyRequests,
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson
            | Self::InvalidEncoding
            | Self::InvalidProtobuf
            | Self::InvalidRecord
            | Self::InvalidParameter
            | Self::InvalidQuery => 400,
            Self::Unauthorized => 401,
            Self::Forbidden => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType | Self::UnsupportedEncoding => 415,
            Self::TooManyRequests => 429,
            Self::Internal => 500,
            Self::Unavailable => 503,
        }
    }
}

/// The body of every error answer: `{"code": "...", "message": "..."}`, plus the line number
/// of the offending record when the body was NDJSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
    /// For a query that does not parse: the character offset where parsing failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into(), line: None, position: None }
    }

    pub fn at_line(mut self, line: u64) -> Self {
        self.line = Some(line);
        self
    }

    pub fn at_position(mut self, position: u64) -> Self {
        self.position = Some(position);
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_code_and_message() {
        let error = ApiError::new(ErrorCode::InvalidJson, "expected value at line 1 column 1");
        let json = serde_json::to_value(&error).unwrap();
        assert_eq!(json, serde_json::json!({"code": "invalid_json", "message": "expected value at line 1 column 1"}));
        let with_line = serde_json::to_value(error.at_line(3)).unwrap();
        assert_eq!(with_line["line"], 3);
    }

    #[test]
    fn client_errors_map_to_4xx() {
        for code in
            [ErrorCode::InvalidJson, ErrorCode::InvalidRecord, ErrorCode::PayloadTooLarge, ErrorCode::Unauthorized]
        {
            assert!((400..500).contains(&code.http_status()), "{code:?}");
        }
        assert_eq!(ErrorCode::Internal.http_status(), 500);
    }
}
