//! The tantivy engine behind [`LogStore`].
//!
//! Durability is commit-before-acknowledge with group commit: one writer thread owns the
//! `IndexWriter`; it takes every batch waiting in its queue, adds them, commits once (tantivy
//! fsyncs the segment files and the meta file), reloads the reader, and only then answers each
//! waiting request. A full queue answers [`LogStoreError::Busy`] at once instead of buffering.

use std::ops::Bound;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery};
use tantivy::schema::Term;
use tantivy::{Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument};
use tokio::sync::{mpsc, oneshot};
use vigil_proto::{LogPage, LogQuery, LogRecord};

use super::schema::{self, LogFields};
use super::{LogStore, LogStoreError};
use crate::telemetry::Metrics;

/// Batches taken into one commit at most.
const MAX_BATCHES_PER_COMMIT: usize = 256;

struct WriteRequest {
    records: Vec<LogRecord>,
    reply: oneshot::Sender<Result<(), LogStoreError>>,
}

pub struct TantivyLogStore {
    index: Index,
    reader: IndexReader,
    fields: LogFields,
    sender: Mutex<Option<mpsc::Sender<WriteRequest>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
}

impl TantivyLogStore {
    /// Opens the index in `directory`, creating it when empty, and starts the writer thread.
    pub fn open(
        directory: &Path,
        writer_memory_bytes: usize,
        queue_batches: usize,
        metrics: Arc<Metrics>,
    ) -> Result<Self, LogStoreError> {
        std::fs::create_dir_all(directory)?;
        let (schema, fields) = LogFields::schema();
        let index =
            Index::open_or_create(MmapDirectory::open(directory).map_err(tantivy::TantivyError::from)?, schema)?;
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let writer: IndexWriter<TantivyDocument> = index.writer_with_num_threads(1, writer_memory_bytes)?;
        let (sender, receiver) = mpsc::channel(queue_batches);
        // Clones of a reader share its state: the writer's reload is seen by searches.
        let writer_reader = reader.clone();
        let writer_thread = std::thread::Builder::new()
            .name("log-writer".to_owned())
            .spawn(move || write_loop(writer, writer_reader, fields, receiver, &metrics))?;
        Ok(Self {
            index,
            reader,
            fields,
            sender: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<WriteRequest>> {
        self.sender.lock().expect("log store sender lock").clone()
    }
}

fn write_loop(
    mut writer: IndexWriter<TantivyDocument>,
    reader: IndexReader,
    fields: LogFields,
    mut receiver: mpsc::Receiver<WriteRequest>,
    metrics: &Metrics,
) {
    while let Some(first) = receiver.blocking_recv() {
        let mut pending = vec![first];
        while pending.len() < MAX_BATCHES_PER_COMMIT {
            match receiver.try_recv() {
                Ok(request) => pending.push(request),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let result = commit(&mut writer, &reader, &fields, &pending);
        metrics.log_commit_duration.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(records) => {
                metrics.log_commits.inc();
                metrics.log_records_ingested.inc_by(records);
                for request in pending {
                    let _receiver_gone = request.reply.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, batches = pending.len(), "log commit failed, batches refused");
                if let Err(rollback_error) = writer.rollback() {
                    tracing::error!(error = %rollback_error, "log writer rollback failed");
                }
                for request in pending {
                    let _receiver_gone = request.reply.send(Err(LogStoreError::Index(error.clone())));
                }
            }
        }
    }
    if let Err(error) = writer.wait_merging_threads() {
        tracing::warn!(error = %error, "log index merge did not finish cleanly");
    }
}

fn commit(
    writer: &mut IndexWriter<TantivyDocument>,
    reader: &IndexReader,
    fields: &LogFields,
    pending: &[WriteRequest],
) -> tantivy::Result<u64> {
    let mut records = 0;
    for request in pending {
        for record in &request.records {
            writer.add_document(fields.document(record))?;
            records += 1;
        }
    }
    writer.commit()?;
    reader.reload()?;
    Ok(records)
}

fn build_query(index: &Index, fields: &LogFields, query: &LogQuery) -> Result<Box<dyn Query>, LogStoreError> {
    let text_query: Box<dyn Query> = if query.q.trim().is_empty() {
        Box::new(AllQuery)
    } else {
        let mut parser = QueryParser::for_index(index, vec![fields.message]);
        parser.set_conjunction_by_default();
        parser.parse_query(&query.q).map_err(|error| LogStoreError::InvalidQuery(error.to_string()))?
    };
    let lower = query.start.map_or(Bound::Unbounded, |start| {
        Bound::Included(Term::from_field_i64(fields.timestamp, start.as_unix_nanos()))
    });
    let upper = query
        .end
        .map_or(Bound::Unbounded, |end| Bound::Excluded(Term::from_field_i64(fields.timestamp, end.as_unix_nanos())));
    if matches!((&lower, &upper), (Bound::Unbounded, Bound::Unbounded)) {
        return Ok(text_query);
    }
    let range: Box<dyn Query> = Box::new(RangeQuery::new(lower, upper));
    Ok(Box::new(BooleanQuery::new(vec![(Occur::Must, text_query), (Occur::Must, range)])))
}

#[async_trait::async_trait]
impl LogStore for TantivyLogStore {
    async fn append(&self, records: Vec<LogRecord>) -> Result<(), LogStoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let sender = self.sender().ok_or(LogStoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        sender.try_send(WriteRequest { records, reply }).map_err(|error| match error {
            mpsc::error::TrySendError::Full(_) => LogStoreError::Busy,
            mpsc::error::TrySendError::Closed(_) => LogStoreError::Closed,
        })?;
        answer.await.map_err(|_| LogStoreError::Closed)?
    }

    async fn search(&self, query: LogQuery) -> Result<LogPage, LogStoreError> {
        let index = self.index.clone();
        let reader = self.reader.clone();
        let fields = self.fields;
        tokio::task::spawn_blocking(move || {
            let tantivy_query = build_query(&index, &fields, &query)?;
            let limit = query.limit.unwrap_or(LogQuery::DEFAULT_LIMIT).clamp(1, LogQuery::MAX_LIMIT) as usize;
            let searcher = reader.searcher();
            let newest_first = TopDocs::with_limit(limit).order_by_fast_field::<i64>(schema::TIMESTAMP, Order::Desc);
            let (top, total) = searcher.search(&tantivy_query, &(newest_first, Count))?;
            let records = top
                .into_iter()
                .map(|(_, address)| searcher.doc::<TantivyDocument>(address).map(|document| fields.record(&document)))
                .collect::<tantivy::Result<Vec<_>>>()?;
            Ok(LogPage { records, total: total as u64 })
        })
        .await?
    }

    async fn check(&self) -> Result<(), LogStoreError> {
        let sender = self.sender().ok_or(LogStoreError::Closed)?;
        if sender.is_closed() {
            return Err(LogStoreError::Closed);
        }
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || reader.searcher().num_docs()).await?;
        Ok(())
    }

    async fn close(&self) {
        drop(self.sender.lock().expect("log store sender lock").take());
        let thread = self.writer_thread.lock().expect("log store thread lock").take();
        if let Some(thread) = thread {
            let joined = tokio::task::spawn_blocking(move || thread.join()).await;
            if !matches!(joined, Ok(Ok(()))) {
                tracing::error!("log writer thread ended abnormally");
            }
        }
    }
}
