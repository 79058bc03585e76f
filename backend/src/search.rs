//! Reading the logs: the bounds of a search, a histogram, field values and a record's
//! context, checked here once for the API's routes and the UI's services alike, then asked
//! of the log store.

use vigil_proto::{
    ContextQuery, FieldValues, FieldsQuery, HistogramQuery, LogContext, LogHistogram, LogPage, LogQuery, RecordId,
    RelativeRange, Timestamp,
};

use vigil_logstore::{LogStore, LogStoreError, MAX_BUCKETS, bucket_count, choose_interval};

const DEFAULT_FIELD_VALUES: u32 = 10;
const MAX_FIELD_VALUES: u32 = 100;
const DEFAULT_CONTEXT: u32 = 10;
const MAX_CONTEXT: u32 = 500;
const HOUR_NANOS: i64 = 3_600_000_000_000;

#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// A parameter out of its bounds; the text names it.
    #[error("{0}")]
    Invalid(String),
    #[error("no record has id {0}")]
    NoRecord(RecordId),
    #[error(transparent)]
    Store(#[from] LogStoreError),
}

fn invalid(message: impl Into<String>) -> SearchError {
    SearchError::Invalid(message.into())
}

pub fn validate_query(query: &LogQuery) -> Result<(), SearchError> {
    if let Some(limit) = query.limit
        && (limit == 0 || limit > LogQuery::MAX_LIMIT)
    {
        return Err(invalid(format!("limit must be between 1 and {}", LogQuery::MAX_LIMIT)));
    }
    validate_range(query.start, query.end)
}

fn validate_range(start: Option<Timestamp>, end: Option<Timestamp>) -> Result<(), SearchError> {
    match (start, end) {
        (Some(start), Some(end)) if start >= end => Err(invalid("start must be before end")),
        _ => Ok(()),
    }
}

/// The histogram's range and bucket width, from what the request gave.
pub fn histogram_plan(request: &HistogramQuery, now: Timestamp) -> Result<(LogQuery, i64), SearchError> {
    let end = request.end.unwrap_or(now);
    let start = request.start.unwrap_or_else(|| end.saturating_add_nanos(-HOUR_NANOS));
    validate_range(Some(start), Some(end))?;
    let range = end
        .as_unix_nanos()
        .checked_sub(start.as_unix_nanos())
        .ok_or_else(|| invalid("the time range cannot be divided into buckets"))?;
    let interval = match &request.interval {
        Some(interval) => interval.parse::<RelativeRange>().map_err(|error| invalid(error.to_string()))?.as_nanos(),
        None => choose_interval(range),
    };
    if interval <= 0 {
        return Err(invalid("interval must be positive"));
    }
    if bucket_count(start.as_unix_nanos(), end.as_unix_nanos(), interval).is_none() {
        return Err(invalid(format!("interval is too small: the range would need more than {MAX_BUCKETS} buckets")));
    }
    let query = LogQuery { q: request.q.clone(), start: Some(start), end: Some(end), ..LogQuery::default() };
    Ok((query, interval))
}

/// The newest matching records, a page at a time.
pub async fn search(store: &dyn LogStore, query: LogQuery) -> Result<LogPage, SearchError> {
    validate_query(&query)?;
    Ok(store.search(query).await?)
}

/// Matching records counted per level and bucket of time.
pub async fn histogram(
    store: &dyn LogStore,
    request: &HistogramQuery,
    now: Timestamp,
) -> Result<LogHistogram, SearchError> {
    let (query, interval) = histogram_plan(request, now)?;
    Ok(store.histogram(query, interval).await?)
}

/// The most frequent values of each field among the matching records.
pub async fn fields(store: &dyn LogStore, request: FieldsQuery) -> Result<FieldValues, SearchError> {
    validate_range(request.start, request.end)?;
    let limit = request.limit.unwrap_or(DEFAULT_FIELD_VALUES);
    if limit == 0 || limit > MAX_FIELD_VALUES {
        return Err(invalid(format!("limit must be between 1 and {MAX_FIELD_VALUES}")));
    }
    let query = LogQuery { q: request.q, start: request.start, end: request.end, ..LogQuery::default() };
    Ok(store.field_values(query, limit as usize).await?)
}

/// The records stored around one: 10 before and after unless asked, at most 500 each way.
pub async fn context(store: &dyn LogStore, request: &ContextQuery) -> Result<LogContext, SearchError> {
    let before = request.before.unwrap_or(DEFAULT_CONTEXT);
    let after = request.after.unwrap_or(DEFAULT_CONTEXT);
    if before > MAX_CONTEXT || after > MAX_CONTEXT {
        return Err(invalid(format!("before and after must be at most {MAX_CONTEXT}")));
    }
    store.context(request.id, before as usize, after as usize).await?.ok_or(SearchError::NoRecord(request.id))
}
