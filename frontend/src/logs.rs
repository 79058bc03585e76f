//! Server functions of the Logs page. Times arrive as the URL holds them: a relative `range`
//! (`15m`, `1h`, `7d`), or an absolute `start` and `end` (RFC 3339) that take precedence.

use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::{LogContext, LogHistogram, LogPage};

#[cfg(feature = "ssr")]
mod time_range {
    use crate::error::UiError;
    use vigil_proto::{RelativeRange, Timestamp};

    fn parse(text: &str) -> Result<Option<Timestamp>, UiError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|error: vigil_proto::ParseTimestampError| UiError::invalid(error))
    }

    /// `(start, end)` of the page's time range.
    pub fn resolve(range: &str, start: &str, end: &str) -> Result<(Option<Timestamp>, Option<Timestamp>), UiError> {
        let (start, end) = (parse(start)?, parse(end)?);
        if start.is_some() || end.is_some() {
            return Ok((start, end));
        }
        let range: RelativeRange =
            range.parse().map_err(|error: vigil_proto::ParseRangeError| UiError::invalid(error))?;
        let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).map_err(UiError::internal)?;
        Ok((Some(now.saturating_add_nanos(-range.as_nanos())), None))
    }
}

/// One page of records, newest first; `cursor` (a record id) continues a previous page.
#[server(prefix = "/ui/fn/read", endpoint = "search_logs")]
pub async fn search_logs(
    q: String,
    range: String,
    start: String,
    end: String,
    cursor: String,
    limit: u32,
) -> Result<LogPage, UiError> {
    let (start, end) = time_range::resolve(&range, &start, &end)?;
    let cursor = if cursor.is_empty() {
        None
    } else {
        Some(cursor.parse().map_err(|error: vigil_proto::ParseRecordIdError| UiError::invalid(error))?)
    };
    let limit = Some(limit.clamp(1, vigil_proto::LogQuery::MAX_LIMIT));
    let query = vigil_proto::LogQuery { q, start, end, limit, cursor, track_total_hits: None };
    crate::services::services()?.search_logs(query).await.map_err(UiError::from)
}

/// Matching records per time bucket and level, over the page's range (ending now when open).
#[server(prefix = "/ui/fn/read", endpoint = "log_histogram")]
pub async fn fetch_histogram(q: String, range: String, start: String, end: String) -> Result<LogHistogram, UiError> {
    let (start, end) = time_range::resolve(&range, &start, &end)?;
    let query = vigil_proto::HistogramQuery { q, start, end, interval: None };
    crate::services::services()?.log_histogram(query).await.map_err(UiError::from)
}

/// The lines around record `id` from the same service and host.
#[server(prefix = "/ui/fn/read", endpoint = "log_context")]
pub async fn fetch_context(id: String) -> Result<LogContext, UiError> {
    let id = id.parse().map_err(|error: vigil_proto::ParseRecordIdError| UiError::invalid(error))?;
    let query = vigil_proto::ContextQuery { id, before: Some(5), after: Some(5) };
    crate::services::services()?.log_context(query).await.map_err(UiError::from)
}
