//! The log store: where ingested records become durable and searchable.
//!
//! [`LogStore`] is the boundary the rest of the backend sees, so that another engine can stand
//! in later; [`TantivyLogStore`] is the engine today.
//!
//! A crate of its own: it carries tantivy's build time, and knows nothing of the backend
//! (HTTP, SQL, configuration files); the backend hands it [`WriterOptions`] and the
//! [`StoreMetrics`] it registers.

mod collectors;
mod histogram;
mod newest;
mod partition;
mod query;
mod schema;
mod tantivy_store;
mod times;
mod wal;
mod writer;

pub use histogram::{MAX_BUCKETS, bucket_count, choose_interval};
pub use partition::Retention;
pub use schema::LogFields;
pub use tantivy_store::{MAX_PARTITIONS_PER_BATCH, TantivyLogStore};
pub use writer::WriterOptions;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use vigil_proto::{Commit, FieldValues, LogContext, LogHistogram, LogHit, LogPage, LogQuery, LogRecord, RecordId};

/// What the store reports of itself; the handles share their values with the clones the
/// caller registered.
#[derive(Debug, Clone)]
pub struct StoreMetrics {
    /// Records made durable.
    pub records_ingested: Counter,
    pub commits: Counter,
    pub commit_duration: Histogram,
    pub wal_sync_duration: Histogram,
}

impl StoreMetrics {
    /// Handles that no registry reads (tests, benchmarks).
    pub fn unregistered() -> Self {
        Self {
            records_ingested: Counter::default(),
            commits: Counter::default(),
            commit_duration: Histogram::new(exponential_buckets(0.001, 2.0, 14)),
            wal_sync_duration: Histogram::new(exponential_buckets(0.0001, 2.0, 14)),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("invalid query: {message}")]
    InvalidQuery { message: String, position: Option<usize> },
    #[error("the log writer is saturated")]
    Busy,
    #[error("the batch holds records of more than {0} days (each day is an index of its own); send fewer days at once")]
    TooManyPartitions(usize),
    #[error("the log store is shut down")]
    Closed,
    #[error("cannot open the log store")]
    Io(#[from] std::io::Error),
    #[error("log index failure")]
    Index(#[from] tantivy::TantivyError),
    #[error("log store task failed")]
    Task(#[from] tokio::task::JoinError),
}

#[async_trait::async_trait]
pub trait LogStore: Send + Sync + 'static {
    /// Appends a batch; returns once every record of it is durable (it survives `kill -9`), and
    /// with [`Commit::WaitFor`] or [`Commit::Force`] searchable too; otherwise it is searchable
    /// within the store's commit interval.
    async fn append(&self, records: Vec<LogRecord>, commit: Commit) -> Result<(), LogStoreError>;

    /// The newest records matching the query in its time range, older than its cursor.
    async fn search(&self, query: LogQuery) -> Result<LogPage, LogStoreError>;

    /// Counts of matching records per bucket of `interval_nanos` over the query's range (which
    /// must have a start and an end), per level.
    async fn histogram(&self, query: LogQuery, interval_nanos: i64) -> Result<LogHistogram, LogStoreError>;

    /// The `limit` most frequent services, hosts and levels among matching records.
    async fn field_values(&self, query: LogQuery, limit: usize) -> Result<FieldValues, LogStoreError>;

    /// Up to `before` and `after` records of the same service and host around `id`; `None`
    /// when no record has that id.
    async fn context(&self, id: RecordId, before: usize, after: usize) -> Result<Option<LogContext>, LogStoreError>;

    /// The highest sequence number committed so far (`None` while the store is empty); it
    /// changes after every commit.
    fn committed(&self) -> tokio::sync::watch::Receiver<Option<u64>>;

    /// Records matching `q` whose sequence number is above `after`, at most `limit`, in the
    /// order they were stored (or the newest first), with how many match in all.
    async fn since(
        &self,
        q: String,
        after: Option<u64>,
        limit: usize,
        newest_first: bool,
    ) -> Result<(Vec<LogHit>, u64), LogStoreError>;

    /// Checks that `q` parses.
    async fn parse_query(&self, q: &str) -> Result<(), LogStoreError>;

    /// Drops what is past its retention at `now`; returns how many partitions went.
    async fn apply_retention(&self, now: vigil_proto::Timestamp) -> Result<usize, LogStoreError>;

    /// Fails when the store cannot serve reads or writes.
    async fn check(&self) -> Result<(), LogStoreError>;

    /// Finishes pending writes and stops; later appends fail with [`LogStoreError::Closed`].
    async fn close(&self);
}
