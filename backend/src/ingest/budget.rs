//! The memory of ingest requests in flight, bounded in bytes.
//!
//! A shipper that reads ahead (Fluent Bit on a large file) sends hundreds of requests at once;
//! each holds its body, then its decoded body, its records and their write-ahead-log encoding
//! until the writer has taken them. [`IngestBudget`] counts those bytes: a request waits for
//! room before its body is read (and again for what decoding adds), up to a deadline, and only
//! then is refused with 429. So a shipper's default retries lose nothing, and the memory of
//! ingest stays under the budget however many requests arrive.
//!
//! Not here: the writer's own memory (tantivy's indexing buffer, `logs.writer_memory_bytes`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Bytes are counted in units of this many, so that the largest budget fits the semaphore.
const UNIT: usize = 1024;

/// Two pools, so that no request waits for room while holding room another waits for: bodies
/// as they arrive (a quarter of the budget), and what they become (the rest). A request holds
/// its body's room while it waits for the second; those that hold the second wait for nothing
/// but the writer, which always makes progress.
pub struct IngestBudget {
    bodies: Pool,
    decoded: Pool,
    wait: Duration,
    in_use: Arc<AtomicU64>,
    peak: Arc<AtomicU64>,
    /// Requests that had to wait for room.
    waited: AtomicU64,
    /// What it holds, for the backend's own metrics.
    gauge: Option<Gauge>,
    waits: Option<Counter>,
}

struct Pool {
    permits: Arc<Semaphore>,
    units: u32,
}

impl Pool {
    fn new(bytes: usize) -> Self {
        let units = u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).max(1);
        Self { permits: Arc::new(Semaphore::new(units as usize)), units }
    }

    /// `bytes` in units; a request larger than the pool takes all of it (and runs alone).
    fn units_of(&self, bytes: usize) -> u32 {
        u32::try_from(bytes.div_ceil(UNIT)).unwrap_or(u32::MAX).clamp(1, self.units)
    }

    /// Room for `units`, waiting until `deadline`; `None` past it. The budget counts the wait.
    async fn take(&self, units: u32, deadline: Instant, budget: &IngestBudget) -> Option<OwnedSemaphorePermit> {
        if let Ok(permit) = self.permits.clone().try_acquire_many_owned(units) {
            return Some(permit);
        }
        budget.waited.fetch_add(1, Ordering::Relaxed);
        if let Some(waits) = &budget.waits {
            waits.inc();
        }
        tokio::time::timeout_at(deadline, self.permits.clone().acquire_many_owned(units)).await.ok()?.ok()
    }
}

/// The room one request holds; given back when dropped.
pub struct Admission<'budget> {
    budget: &'budget IngestBudget,
    deadline: Instant,
    _body: OwnedSemaphorePermit,
    decoded: Option<OwnedSemaphorePermit>,
    held: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("ingest is at its memory bound ({budget_mib} MiB for requests being received); retry shortly")]
pub struct BudgetFull {
    pub budget_mib: usize,
}

impl IngestBudget {
    /// A budget of `bytes`, whose requests wait at most `wait` for room.
    pub fn new(bytes: usize, wait: Duration) -> Self {
        Self {
            bodies: Pool::new(bytes / 4),
            decoded: Pool::new(bytes - bytes / 4),
            wait,
            in_use: Arc::default(),
            peak: Arc::default(),
            waited: AtomicU64::new(0),
            gauge: None,
            waits: None,
        }
    }

    /// The same, reporting what it holds and how often requests waited.
    pub fn with_metrics(self, gauge: Gauge, waits: Counter) -> Self {
        Self { gauge: Some(gauge), waits: Some(waits), ..self }
    }

    fn full(&self) -> BudgetFull {
        BudgetFull { budget_mib: ((self.bodies.units + self.decoded.units) as usize * UNIT) >> 20 }
    }

    fn count(&self, units: u32) {
        let now = self.in_use.fetch_add(u64::from(units), Ordering::Relaxed) + u64::from(units);
        self.peak.fetch_max(now, Ordering::Relaxed);
        self.report(now);
    }

    fn report(&self, units: u64) {
        if let Some(gauge) = &self.gauge {
            gauge.set(i64::try_from(units * UNIT as u64).unwrap_or(i64::MAX));
        }
    }

    /// Room for a body of `bytes`, waiting for it until the budget's wait has passed.
    pub async fn admit(&self, bytes: usize) -> Result<Admission<'_>, BudgetFull> {
        let units = self.bodies.units_of(bytes);
        let deadline = Instant::now() + self.wait;
        let body = self.bodies.take(units, deadline, self).await.ok_or_else(|| self.full())?;
        self.count(units);
        Ok(Admission { budget: self, deadline, _body: body, decoded: None, held: u64::from(units) })
    }

    /// Bytes held by requests now.
    pub fn in_use_bytes(&self) -> u64 {
        self.in_use.load(Ordering::Relaxed) * UNIT as u64
    }

    /// The most bytes held at once since the start.
    pub fn peak_bytes(&self) -> u64 {
        self.peak.load(Ordering::Relaxed) * UNIT as u64
    }

    /// How many times a request had to wait for room.
    pub fn waited(&self) -> u64 {
        self.waited.load(Ordering::Relaxed)
    }
}

impl Admission<'_> {
    /// Room for what the body became (`bytes`: decoded body, records, their encoding),
    /// waiting until the deadline the admission began with. Once only.
    pub async fn hold_decoded(&mut self, bytes: usize) -> Result<(), BudgetFull> {
        let budget = self.budget;
        let units = budget.decoded.units_of(bytes);
        let permit = budget.decoded.take(units, self.deadline, budget).await.ok_or_else(|| budget.full())?;
        budget.count(units);
        self.held += u64::from(units);
        self.decoded = Some(permit);
        Ok(())
    }
}

impl Drop for Admission<'_> {
    fn drop(&mut self) {
        let left = self.budget.in_use.fetch_sub(self.held, Ordering::Relaxed) - self.held;
        self.budget.report(left);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn requests_wait_for_room_and_are_refused_past_the_wait() {
        // 4 units for bodies, 12 for what they become.
        let budget = Arc::new(IngestBudget::new(16 * UNIT, Duration::from_millis(300)));
        let mut first = budget.admit(3 * UNIT).await.unwrap();
        first.hold_decoded(10 * UNIT).await.unwrap();
        assert_eq!(budget.in_use_bytes(), 13 * UNIT as u64);
        // The next body fits no more: it waits, and gets its room when the first is done.
        let waiting = tokio::spawn({
            let budget = budget.clone();
            let started = Instant::now();
            async move { (budget.admit(2 * UNIT).await.map(drop).is_ok(), started.elapsed()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        let (admitted, waited) = waiting.await.unwrap();
        assert!(admitted);
        assert!(waited >= Duration::from_millis(50));
        assert_eq!(budget.waited(), 1);
        // What a body becomes waits for room too, and past the wait the request is refused.
        let mut one = budget.admit(UNIT).await.unwrap();
        one.hold_decoded(12 * UNIT).await.unwrap();
        let mut other = budget.admit(UNIT).await.unwrap();
        assert!(other.hold_decoded(UNIT).await.is_err());
        drop((one, other));
        assert_eq!(budget.in_use_bytes(), 0);
        assert_eq!(budget.peak_bytes(), 14 * UNIT as u64);
        // A request larger than the budget runs alone.
        let mut huge = budget.admit(100 * UNIT).await.unwrap();
        assert!(huge.hold_decoded(1000 * UNIT).await.is_ok());
    }
}
