//! Vigil's wire types: what crosses a process boundary between the agent, the backend and the
//! browser.
//!
//! Useful for: ingest batches ([`LogRecord`]), log queries and result pages ([`LogQuery`],
//! [`LogPage`]), the one JSON error shape ([`ApiError`], [`ErrorCode`]) and the API paths
//! ([`paths`]). Every type here is a compatibility promise of `/api/v1`. Also the one piece of
//! shared text logic, [`level::detect_level`], which the agent and the backend both apply.
//!
//! Not useful for: I/O of any kind. This crate builds for `wasm32` and native and depends on
//! nothing heavier than serde and time.

pub mod agents;
pub mod alertmanager;
pub mod alerts;
pub mod auth;
pub mod dashboards;
pub mod elasticsearch;
mod error;
pub mod level;
mod logs;
pub mod metrics;
pub mod names;
pub mod paths;
pub mod rollouts;
mod timestamp;

pub use error::{ApiError, ErrorCode};
pub use logs::{
    Commit, ContextQuery, FieldValue, FieldValues, FieldsQuery, HistogramBucket, HistogramQuery, IngestParams,
    IngestResponse, LogContext, LogHistogram, LogHit, LogPage, LogQuery, LogRecord, ParseRangeError,
    ParseRecordIdError, RecordId, RelativeRange, TailFrame, TailQuery, TotalRelation, TrackTotalHits,
};
pub use timestamp::{ParseTimestampError, Timestamp};
