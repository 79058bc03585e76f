//! API paths shared by the backend's router, the agent and the tests.

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const LOGS: &str = "/api/v1/logs";
pub const LOGS_SEARCH: &str = "/api/v1/logs/search";
pub const LOGS_HISTOGRAM: &str = "/api/v1/logs/histogram";
pub const LOGS_FIELDS: &str = "/api/v1/logs/fields";
pub const LOGS_CONTEXT: &str = "/api/v1/logs/context";
/// The live tail, a WebSocket.
pub const LOGS_TAIL: &str = "/api/v1/logs/tail";
/// Prefix of the UI's server functions.
pub const UI_FUNCTIONS: &str = "/ui/fn";
/// The UI's live tail (the WebSocket of `LOGS_TAIL`, for the browser).
pub const UI_TAIL: &str = "/ui/tail";
/// Elasticsearch `_bulk`, for shippers that speak it.
pub const ELASTICSEARCH_BULK: &str = "/_bulk";
pub const ELASTICSEARCH_INDEX_BULK: &str = "/{index}/_bulk";
/// OTLP/HTTP logs.
pub const OTLP_LOGS: &str = "/v1/logs";
/// Loki's push API.
pub const LOKI_PUSH: &str = "/loki/api/v1/push";
