//! The wall clock, and work repeated on a timer. Timestamps of records and samples come from
//! here; durations are measured with [`std::time::Instant`] where they are taken.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio_util::sync::CancellationToken;

/// The wall clock in Unix milliseconds (metric samples).
pub(crate) fn now_millis() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
}

/// The wall clock in Unix nanoseconds (log records).
pub(crate) fn now_nanos() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    i64::try_from(now.as_nanos()).unwrap_or(i64::MAX)
}

/// Runs `work` every `seconds` (the first time at once) until `shutdown`; a late run delays the
/// next rather than bunching them.
pub(crate) async fn every<F, Fut>(seconds: u64, shutdown: &CancellationToken, mut work: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut tick = tokio::time::interval(Duration::from_secs(seconds));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = shutdown.cancelled() => return,
        }
        work().await;
    }
}
