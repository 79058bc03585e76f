//! The log store: where ingested records become durable and searchable.
//!
//! [`LogStore`] is the boundary the rest of the backend sees, so that another engine can stand
//! in later; [`TantivyLogStore`] is the engine today.
//!
//! Not here: decoding of ingest bodies (see `ingest`), HTTP (see `routes`).

mod schema;
mod tantivy_store;

pub use tantivy_store::TantivyLogStore;

use vigil_proto::{LogPage, LogQuery, LogRecord};

#[derive(Debug, thiserror::Error)]
pub enum LogStoreError {
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    #[error("the log writer is saturated")]
    Busy,
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
    /// Appends a batch; returns once every record of it is durable (it survives `kill -9`) and
    /// searchable.
    async fn append(&self, records: Vec<LogRecord>) -> Result<(), LogStoreError>;

    /// The newest records matching the query in its time range.
    async fn search(&self, query: LogQuery) -> Result<LogPage, LogStoreError>;

    /// Fails when the store cannot serve reads or writes.
    async fn check(&self) -> Result<(), LogStoreError>;

    /// Finishes pending writes and stops; later appends fail with [`LogStoreError::Closed`].
    async fn close(&self);
}
