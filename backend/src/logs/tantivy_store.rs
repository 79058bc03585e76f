//! The tantivy engine behind [`LogStore`].
//!
//! Durability is commit-before-acknowledge with group commit: one writer thread owns the
//! `IndexWriter`; it takes every batch waiting in its queue, adds them, commits once (tantivy
//! fsyncs the segment files and the meta file), reloads the reader, and only then answers each
//! waiting request. A full queue answers [`LogStoreError::Busy`] at once instead of buffering.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Instant;

use tantivy::collector::{Count, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, Order, ReloadPolicy, Searcher, TantivyDocument};
use tokio::sync::{mpsc, oneshot, watch};
use vigil_proto::{
    FieldValue, FieldValues, HistogramBucket, LogContext, LogHistogram, LogHit, LogPage, LogQuery, LogRecord, RecordId,
};

use super::collectors::{ByTime, HistogramCollector, TermCounts};
use super::schema::{self, LogFields};
use super::{LogStore, LogStoreError, query};
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
    committed: watch::Receiver<Option<u64>>,
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
        let last = last_sequence(&reader.searcher())?;
        let next_sequence = last.map_or(0, |last| last + 1);
        let (committed_sender, committed) = watch::channel(last);
        let (sender, receiver) = mpsc::channel(queue_batches);
        // Clones of a reader share its state: the writer's reload is seen by searches.
        let writer_reader = reader.clone();
        let writer_thread = std::thread::Builder::new().name("log-writer".to_owned()).spawn(move || {
            write_loop(writer, writer_reader, fields, next_sequence, receiver, &committed_sender, &metrics)
        })?;
        Ok(Self {
            index,
            reader,
            fields,
            sender: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            committed,
        })
    }

    fn sender(&self) -> Option<mpsc::Sender<WriteRequest>> {
        self.sender.lock().expect("log store sender lock").clone()
    }
}

/// The highest sequence number in the index.
fn last_sequence(searcher: &Searcher) -> tantivy::Result<Option<u64>> {
    let top = searcher
        .search(&AllQuery, &TopDocs::with_limit(1).order_by_fast_field::<u64>(schema::SEQUENCE, Order::Desc))?;
    Ok(top.first().map(|(sequence, _)| *sequence))
}

fn write_loop(
    mut writer: IndexWriter<TantivyDocument>,
    reader: IndexReader,
    fields: LogFields,
    mut next_sequence: u64,
    mut receiver: mpsc::Receiver<WriteRequest>,
    committed: &watch::Sender<Option<u64>>,
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
        let first_sequence = next_sequence;
        let result = commit(&mut writer, &reader, &fields, &mut next_sequence, &pending);
        metrics.log_commit_duration.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(records) => {
                if records > 0 {
                    committed.send_replace(Some(next_sequence - 1));
                }
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
                next_sequence = first_sequence;
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
    next_sequence: &mut u64,
    pending: &[WriteRequest],
) -> tantivy::Result<u64> {
    let mut records = 0;
    for request in pending {
        for record in &request.records {
            writer.add_document(fields.document(record, *next_sequence))?;
            *next_sequence += 1;
            records += 1;
        }
    }
    writer.commit()?;
    reader.reload()?;
    Ok(records)
}

/// Up to `limit` records matching `query`, in time order, with the number of matches.
fn top_by_time(
    searcher: &Searcher,
    fields: &LogFields,
    query: &dyn Query,
    limit: usize,
    newest_first: bool,
) -> tantivy::Result<(Vec<LogHit>, usize)> {
    let collector = (TopDocs::with_limit(limit.max(1)).custom_score(ByTime { newest_first }), Count);
    let (top, total) = searcher.search(query, &collector)?;
    let hits = top
        .into_iter()
        .map(|(_, address): ((i64, u64), DocAddress)| {
            searcher.doc::<TantivyDocument>(address).map(|document| fields.hit(&document))
        })
        .collect::<tantivy::Result<Vec<_>>>()?;
    Ok((hits, total))
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
            let tantivy_query = query::build(&index, &fields, &query)?;
            let limit = query.limit.unwrap_or(LogQuery::DEFAULT_LIMIT).clamp(1, LogQuery::MAX_LIMIT) as usize;
            let (records, total) = top_by_time(&reader.searcher(), &fields, &*tantivy_query, limit, true)?;
            let next_cursor = (records.len() == limit && total > limit).then(|| records[limit - 1].id);
            Ok(LogPage { records, total: total as u64, next_cursor })
        })
        .await?
    }

    async fn histogram(&self, query: LogQuery, interval_nanos: i64) -> Result<LogHistogram, LogStoreError> {
        let (index, reader, fields) = (self.index.clone(), self.reader.clone(), self.fields);
        let (Some(start), Some(end)) = (query.start, query.end) else {
            return Err(LogStoreError::InvalidQuery {
                message: "a histogram needs a start and an end".to_owned(),
                position: None,
            });
        };
        let interval = interval_nanos.max(1);
        let range = (end.as_unix_nanos() - start.as_unix_nanos()).max(0);
        let buckets = usize::try_from((range + interval - 1) / interval).unwrap_or(0);
        tokio::task::spawn_blocking(move || {
            let tantivy_query = query::build(&index, &fields, &query)?;
            let collector = HistogramCollector { start: start.as_unix_nanos(), interval, buckets };
            let counts = reader.searcher().search(&*tantivy_query, &collector)?;
            let buckets = counts
                .into_iter()
                .enumerate()
                .map(|(index, counts)| HistogramBucket {
                    start: start.saturating_add_nanos(interval.saturating_mul(index as i64)),
                    counts,
                })
                .collect();
            Ok(LogHistogram { start, end, interval_ms: (interval / 1_000_000).max(1) as u64, buckets })
        })
        .await?
    }

    async fn field_values(&self, query: LogQuery, limit: usize) -> Result<FieldValues, LogStoreError> {
        let (index, reader, fields) = (self.index.clone(), self.reader.clone(), self.fields);
        tokio::task::spawn_blocking(move || {
            let tantivy_query = query::build(&index, &fields, &query)?;
            let searcher = reader.searcher();
            let collector = (
                TermCounts { field: schema::SERVICE },
                TermCounts { field: schema::HOST },
                TermCounts { field: schema::LEVEL },
            );
            let (services, hosts, levels) = searcher.search(&*tantivy_query, &collector)?;
            let top = |counts: std::collections::HashMap<String, u64>| {
                let mut values: Vec<FieldValue> =
                    counts.into_iter().map(|(value, count)| FieldValue { value, count }).collect();
                values.sort_by(|left, right| right.count.cmp(&left.count).then_with(|| left.value.cmp(&right.value)));
                values.truncate(limit);
                values
            };
            Ok(FieldValues { service: top(services), host: top(hosts), level: top(levels) })
        })
        .await?
    }

    async fn context(&self, id: RecordId, before: usize, after: usize) -> Result<Option<LogContext>, LogStoreError> {
        let (reader, fields) = (self.reader.clone(), self.fields);
        tokio::task::spawn_blocking(move || {
            let searcher = reader.searcher();
            let (mut found, _) = top_by_time(&searcher, &fields, &*query::exactly(&fields, id), 1, true)?;
            let Some(record) = found.pop() else {
                return Ok(None);
            };
            let around = |older: bool, limit: usize| -> tantivy::Result<Vec<LogHit>> {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let same_source = BooleanQuery::new(vec![
                    (Occur::Must, query::term(fields.service, &record.service)),
                    (Occur::Must, query::term(fields.host, &record.host)),
                    (Occur::Must, query::beyond(&fields, id, older)),
                ]);
                Ok(top_by_time(&searcher, &fields, &same_source, limit, older)?.0)
            };
            let mut before = around(true, before)?;
            before.reverse();
            let after = around(false, after)?;
            Ok(Some(LogContext { before, record, after }))
        })
        .await?
    }

    fn committed(&self) -> watch::Receiver<Option<u64>> {
        self.committed.clone()
    }

    async fn since(
        &self,
        q: String,
        after: Option<u64>,
        limit: usize,
        newest_first: bool,
    ) -> Result<(Vec<LogHit>, u64), LogStoreError> {
        let (index, reader, fields) = (self.index.clone(), self.reader.clone(), self.fields);
        tokio::task::spawn_blocking(move || {
            let mut clauses = vec![(Occur::Must, query::parse_text(&index, &fields, &q)?)];
            if let Some(after) = after {
                clauses.push((Occur::Must, query::sequences_after(&fields, after)));
            }
            let order = if newest_first { Order::Desc } else { Order::Asc };
            let by_sequence = TopDocs::with_limit(limit.max(1)).order_by_fast_field::<u64>(schema::SEQUENCE, order);
            let searcher = reader.searcher();
            let (top, total) = searcher.search(&BooleanQuery::new(clauses), &(by_sequence, Count))?;
            let hits = top
                .into_iter()
                .map(|(_, address)| searcher.doc::<TantivyDocument>(address).map(|document| fields.hit(&document)))
                .collect::<tantivy::Result<Vec<_>>>()?;
            Ok((hits, total as u64))
        })
        .await?
    }

    fn parse_query(&self, q: &str) -> Result<(), LogStoreError> {
        query::parse_text(&self.index, &self.fields, q).map(drop)
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
