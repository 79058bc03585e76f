//! Server functions of the Logs page.

use leptos::prelude::*;
use vigil_proto::LogPage;

/// Searches the log store: `q` in tantivy query syntax, `range` relative to now (`15m`, `1h`,
/// `24h`, `7d`).
#[server(prefix = "/ui/fn", endpoint = "search_logs")]
pub async fn search_logs(q: String, range: String, limit: u32) -> Result<LogPage, ServerFnError> {
    use vigil_proto::{LogQuery, RelativeRange, Timestamp};

    let range: RelativeRange =
        range.parse().map_err(|error: vigil_proto::ParseRangeError| ServerFnError::new(error))?;
    let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).map_err(ServerFnError::new)?;
    let query = LogQuery {
        q,
        start: Some(now.saturating_add_nanos(-range.as_nanos())),
        end: None,
        limit: Some(limit.min(LogQuery::MAX_LIMIT)),
        cursor: None,
    };
    crate::services::services()?.search_logs(query).await.map_err(|error| ServerFnError::new(error.message))
}
