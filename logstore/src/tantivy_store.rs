//! The tantivy engine behind [`LogStore`]: time partitions (see `partition`) written by one
//! writer thread (see `writer`), read by merging what each overlapping partition answers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{BooleanQuery, Occur, Query};
use tantivy::{Index, Order};
use tokio::sync::{oneshot, watch};
use vigil_proto::{
    Commit, FieldValue, FieldValues, HistogramBucket, LogContext, LogHistogram, LogHit, LogPage, LogQuery, LogRecord,
    RecordId, Timestamp, TotalRelation, TrackTotalHits,
};

use super::collectors::{HistogramCollector, TermCounts};
use super::newest::{Counting, TopByTime, Within};
use super::partition::{Partition, PartitionKey, Partitions, Retention};
use super::schema::{self, LogFields, StoredHit};
use super::wal::{Encoded, Wal};
use super::writer::{Command, Reply, Writer, WriterOptions};
use super::{LogStore, LogStoreError, query};
use crate::StoreMetrics;

/// Partitions (days, per retention class) one batch may touch.
pub const MAX_PARTITIONS_PER_BATCH: usize = 16;

pub struct TantivyLogStore {
    partitions: Partitions,
    /// An empty index with the schema: parses queries even before any partition exists.
    parsing_index: Index,
    fields: LogFields,
    retention: Retention,
    sender: Mutex<Option<SyncSender<Command>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    committed: watch::Receiver<Option<u64>>,
    failed: Arc<OnceLock<tantivy::TantivyError>>,
    queue_wait: std::time::Duration,
}

impl TantivyLogStore {
    /// Opens the partitions under `directory`, replays the write-ahead log in
    /// `directory/../logs-wal` into them, and starts the writer thread.
    pub fn open(directory: &Path, options: WriterOptions, metrics: StoreMetrics) -> Result<Self, LogStoreError> {
        let (schema, fields) = LogFields::schema();
        let partitions = Partitions::open(directory, schema.clone())?;
        let (wal, batches) = Wal::open(&wal_directory(directory))?;
        let retention = options.retention.clone();
        let queue_batches = options.queue_batches;
        let queue_wait = options.queue_wait;
        let (mut writer, committed) = Writer::new(partitions.clone(), fields, wal, options, metrics);
        if !batches.is_empty() {
            let replayed = writer.replay(batches)?;
            tracing::info!(records = replayed, "acknowledged log records replayed from the write-ahead log");
        }
        let failed = writer.failed.clone();
        let (sender, receiver) = std::sync::mpsc::sync_channel(queue_batches);
        let writer_thread =
            std::thread::Builder::new().name("log-writer".to_owned()).spawn(move || writer.run(receiver))?;
        Ok(Self {
            partitions,
            parsing_index: Index::create_in_ram(schema),
            fields,
            retention,
            sender: Mutex::new(Some(sender)),
            writer_thread: Mutex::new(Some(writer_thread)),
            committed,
            failed,
            queue_wait,
        })
    }

    fn sender(&self) -> Option<SyncSender<Command>> {
        self.sender.lock().expect("log store sender lock").clone()
    }

    /// Queues a command, waiting up to the queue's wait for room in a full queue (the request
    /// holds its records meanwhile, within the ingest memory bound), then refusing it as busy.
    async fn send(&self, command: impl FnOnce(Reply) -> Command) -> Result<(), LogStoreError> {
        let sender = self.sender().ok_or(LogStoreError::Closed)?;
        let (reply, answer) = oneshot::channel();
        let deadline = tokio::time::Instant::now() + self.queue_wait;
        let mut pause = std::time::Duration::from_millis(1);
        let mut command = command(reply);
        loop {
            match sender.try_send(command) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return Err(LogStoreError::Closed),
                Err(TrySendError::Full(refused)) => {
                    if tokio::time::Instant::now() + pause > deadline {
                        return Err(LogStoreError::Busy);
                    }
                    command = refused;
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(std::time::Duration::from_millis(20));
                }
            }
        }
        answer.await.map_err(|_| LogStoreError::Closed)?
    }

    /// Partitions past their retention at `now`, dropped with their directories.
    pub async fn apply_retention(&self, now: Timestamp) -> Result<Vec<PartitionKey>, LogStoreError> {
        let expired: Vec<PartitionKey> = self
            .partitions
            .all()
            .into_iter()
            .map(|(key, _)| key)
            .filter(|key| self.retention.expired(key, now))
            .collect();
        if !expired.is_empty() {
            let keys = expired.clone();
            self.send(move |reply| Command::Drop { keys, reply }).await?;
        }
        Ok(expired)
    }
}

/// The write-ahead log's directory: beside the partitions, so that no partition scan sees it.
fn wal_directory(directory: &Path) -> std::path::PathBuf {
    let name = directory.file_name().map_or_else(|| "logs".into(), |name| name.to_string_lossy().into_owned());
    directory.with_file_name(format!("{name}-wal"))
}

/// Records a page may hold for its search to run on the caller's task rather than on the
/// blocking pool.
const BOUNDED_PAGE: usize = 500;
/// Matches a bounded search may count.
const BOUNDED_COUNT: usize = 10_000;

/// Whether a search's work is bounded by its page and count alone, small enough to run on
/// the caller's task: a page of at most [`BOUNDED_PAGE`], counted up to [`BOUNDED_COUNT`],
/// and no regular expression, wildcard or range, whose terms are found by walking the
/// dictionary.
fn is_bounded_search(text: &str, limit: usize, counting: Counting) -> bool {
    let counted = match counting {
        Counting::Exact => false,
        Counting::UpTo(bound) => bound <= BOUNDED_COUNT,
    };
    counted && limit <= BOUNDED_PAGE && !text.contains(['/', '*', '[', '{', '<', '>'])
}

/// A search's failure: a query the schema cannot answer (`message:*` on a field without fast
/// values) is the caller's mistake, anything else the index's.
fn search_error(error: tantivy::TantivyError) -> LogStoreError {
    match error {
        tantivy::TantivyError::SchemaError(message) => {
            LogStoreError::InvalidQuery { message: format!("this query cannot be answered: {message}"), position: None }
        }
        other => LogStoreError::Index(other),
    }
}

/// Up to `limit` records of `partitions` matching `query` within `within`, in time order, and
/// the count as asked.
fn top_by_time_in(
    partitions: &[(PartitionKey, Partition)],
    query: &dyn Query,
    within: Within,
    (limit, newest_first): (usize, bool),
    counting: Counting,
) -> tantivy::Result<TopByTime> {
    let searchers =
        partitions.iter().map(|(_, partition)| partition.searcher_with_times()).collect::<tantivy::Result<Vec<_>>>()?;
    super::newest::top_by_time(&searchers, query, within, limit, newest_first, counting)
}

#[async_trait::async_trait]
impl LogStore for TantivyLogStore {
    async fn append(&self, records: Vec<LogRecord>, commit: Commit) -> Result<(), LogStoreError> {
        if records.is_empty() {
            return Ok(());
        }
        if let Some(error) = self.failed.get() {
            return Err(LogStoreError::Index(error.clone()));
        }
        // Every partition a batch touches is an index to open and commit on the one writer
        // thread, while other clients' batches wait: a batch spread over many days is refused.
        let mut touched: Vec<(i64, &str)> = Vec::new();
        for record in &records {
            let key = (PartitionKey::day_of(record.timestamp), self.retention.class_of(&record.service));
            if !touched.contains(&key) {
                touched.push(key);
                if touched.len() > MAX_PARTITIONS_PER_BATCH {
                    return Err(LogStoreError::TooManyPartitions(MAX_PARTITIONS_PER_BATCH));
                }
            }
        }
        // Encoding for the write-ahead log is CPU work: here, on the blocking pool, in parallel
        // with other requests, rather than on the writer thread.
        let (records, encoded) = tokio::task::spawn_blocking(move || {
            let encoded = Encoded::new(&records);
            (records, encoded)
        })
        .await?;
        self.send(move |reply| Command::Append { records, encoded, commit, reply }).await
    }

    async fn search(&self, query: LogQuery) -> Result<LogPage, LogStoreError> {
        // Read before the searchers are: every record up to it is in what they see (readers
        // reload before the watermark moves), so a tail from it misses nothing this page lacks.
        let tail_cursor = *self.committed.borrow();
        let parsing_index = self.parsing_index.clone();
        let end = match (query.end, query.cursor) {
            (Some(end), Some(cursor)) => Some(end.min(cursor.timestamp.saturating_add_nanos(1))),
            (end, cursor) => end.or(cursor.map(|cursor| cursor.timestamp.saturating_add_nanos(1))),
        };
        let partitions = self.partitions.overlapping(query.start, end);
        let fields = self.fields;
        let limit = query.limit.unwrap_or(LogQuery::DEFAULT_LIMIT).clamp(1, LogQuery::MAX_LIMIT) as usize;
        // One past the page at least, which says whether there is a next page.
        let counting = match query.track_total_hits.unwrap_or(TrackTotalHits::UpTo(LogQuery::DEFAULT_TRACK_TOTAL_HITS))
        {
            TrackTotalHits::All => Counting::Exact,
            TrackTotalHits::UpTo(bound) => Counting::UpTo(usize::try_from(bound).unwrap_or(usize::MAX).max(limit + 1)),
        };
        let bounded = is_bounded_search(&query.q, limit, counting);
        let run = move || {
            // The range and the cursor are applied on the timestamps the search reads anyway.
            let tantivy_query = query::parse_text(&parsing_index, &fields, &query.q)?;
            let TopByTime { hits: records, total, exact } =
                top_by_time_in(&partitions, &*tantivy_query, Within::of(&query), (limit, true), counting)
                    .map_err(search_error)?;
            let next_cursor = (records.len() == limit && total > limit).then(|| records[limit - 1].id);
            let total_relation = if exact { TotalRelation::Eq } else { TotalRelation::Gte };
            Ok(LogPage { records, total: total as u64, total_relation, next_cursor, tail_cursor })
        };
        // A bounded search takes well under a millisecond: handing it to the blocking pool and
        // back would cost about as much again in thread wake-ups.
        if bounded { run() } else { tokio::task::spawn_blocking(run).await? }
    }

    async fn histogram(&self, query: LogQuery, interval_nanos: i64) -> Result<LogHistogram, LogStoreError> {
        let (Some(start), Some(end)) = (query.start, query.end) else {
            return Err(LogStoreError::InvalidQuery {
                message: "a histogram needs a start and an end".to_owned(),
                position: None,
            });
        };
        let (parsing_index, fields) = (self.parsing_index.clone(), self.fields);
        let partitions = self.partitions.overlapping(Some(start), Some(end));
        let interval = interval_nanos.max(1);
        let buckets =
            super::histogram::bucket_count(start.as_unix_nanos(), end.as_unix_nanos(), interval).ok_or_else(|| {
                LogStoreError::InvalidQuery {
                    message: format!("the range cannot be divided into at most {} buckets", super::MAX_BUCKETS),
                    position: None,
                }
            })?;
        tokio::task::spawn_blocking(move || {
            let tantivy_query = query::build(&parsing_index, &fields, &query)?;
            let collector = HistogramCollector { start: start.as_unix_nanos(), interval, buckets };
            let mut counts = vec![std::collections::BTreeMap::new(); buckets];
            for (_, partition) in &partitions {
                let partition_counts =
                    partition.searcher()?.search(&*tantivy_query, &collector).map_err(search_error)?;
                for (bucket, partition_bucket) in counts.iter_mut().zip(partition_counts) {
                    for (level, count) in partition_bucket {
                        *bucket.entry(level).or_insert(0) += count;
                    }
                }
            }
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
        let (parsing_index, fields) = (self.parsing_index.clone(), self.fields);
        let partitions = self.partitions.overlapping(query.start, query.end);
        tokio::task::spawn_blocking(move || {
            let tantivy_query = query::build(&parsing_index, &fields, &query)?;
            let collector = (
                TermCounts { field: schema::SERVICE },
                TermCounts { field: schema::HOST },
                TermCounts { field: schema::LEVEL },
            );
            let mut merged: [HashMap<String, u64>; 3] = Default::default();
            for (_, partition) in &partitions {
                let (services, hosts, levels) =
                    partition.searcher()?.search(&*tantivy_query, &collector).map_err(search_error)?;
                for (total, counts) in merged.iter_mut().zip([services, hosts, levels]) {
                    for (value, count) in counts {
                        *total.entry(value).or_insert(0) += count;
                    }
                }
            }
            let top = |counts: HashMap<String, u64>| {
                let mut values: Vec<FieldValue> =
                    counts.into_iter().map(|(value, count)| FieldValue { value, count }).collect();
                values.sort_by(|left, right| right.count.cmp(&left.count).then_with(|| left.value.cmp(&right.value)));
                values.truncate(limit);
                values
            };
            let [services, hosts, levels] = merged;
            Ok(FieldValues { service: top(services), host: top(hosts), level: top(levels) })
        })
        .await?
    }

    async fn context(&self, id: RecordId, before: usize, after: usize) -> Result<Option<LogContext>, LogStoreError> {
        let day = PartitionKey::of(id.timestamp, "");
        let at = self.partitions.overlapping(
            Some(Timestamp::from_unix_nanos(day.start_nanos()).unwrap_or(Timestamp::MIN)),
            Some(id.timestamp.saturating_add_nanos(1)),
        );
        let retention = self.retention.clone();
        let all = self.partitions.all();
        let fields = self.fields;
        tokio::task::spawn_blocking(move || {
            let exactly = query::exactly(&fields, id);
            let mut found = top_by_time_in(&at, &*exactly, Within::default(), (1, true), Counting::UpTo(0))?.hits;
            let Some(record) = found.pop() else {
                return Ok(None);
            };
            let class = retention.class_of(&record.service).to_owned();
            let same_class: Vec<_> = all.into_iter().filter(|(key, _)| key.class == class).collect();
            let around = |older: bool, limit: usize| -> tantivy::Result<Vec<LogHit>> {
                if limit == 0 {
                    return Ok(Vec::new());
                }
                let same_source = BooleanQuery::new(vec![
                    (Occur::Must, query::term(fields.service, &record.service)),
                    (Occur::Must, query::term(fields.host, &record.host)),
                    (Occur::Must, query::beyond(&fields, id, older)),
                ]);
                let side: Vec<_> = same_class
                    .iter()
                    .filter(|(key, _)| {
                        if older {
                            key.start_nanos() <= id.timestamp.as_unix_nanos()
                        } else {
                            key.end_nanos() > id.timestamp.as_unix_nanos()
                        }
                    })
                    .cloned()
                    .collect();
                Ok(top_by_time_in(&side, &same_source, Within::default(), (limit, older), Counting::UpTo(0))?.hits)
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
        let partitions: Vec<_> =
            self.partitions.all().into_iter().filter(|(_, partition)| partition.holds_sequences_after(after)).collect();
        let (parsing_index, fields) = (self.parsing_index.clone(), self.fields);
        tokio::task::spawn_blocking(move || {
            let mut clauses = vec![(Occur::Must, query::parse_text(&parsing_index, &fields, &q)?)];
            if let Some(after) = after {
                clauses.push((Occur::Must, query::sequences_after(&fields, after)));
            }
            let tantivy_query = BooleanQuery::new(clauses);
            let order = if newest_first { Order::Desc } else { Order::Asc };
            let mut hits = Vec::new();
            let mut total = 0;
            for (_, partition) in &partitions {
                let searcher = partition.searcher()?;
                let by_sequence = TopDocs::with_limit(limit.max(1)).order_by_fast_field::<u64>(schema::SEQUENCE, order);
                let (top, count) = searcher.search(&tantivy_query, &(by_sequence, Count)).map_err(search_error)?;
                total += count as u64;
                for (_, address) in top {
                    hits.push(searcher.doc::<StoredHit>(address)?.0);
                }
            }
            hits.sort_by_key(|hit| hit.id.sequence);
            if newest_first {
                hits.reverse();
            }
            hits.truncate(limit);
            Ok((hits, total))
        })
        .await?
    }

    async fn parse_query(&self, q: &str) -> Result<(), LogStoreError> {
        let (parsing_index, fields, q) = (self.parsing_index.clone(), self.fields, q.to_owned());
        tokio::task::spawn_blocking(move || query::parse_text(&parsing_index, &fields, &q).map(drop)).await?
    }

    async fn check(&self) -> Result<(), LogStoreError> {
        if let Some(error) = self.failed.get() {
            return Err(LogStoreError::Index(error.clone()));
        }
        let running = self
            .writer_thread
            .lock()
            .expect("log store thread lock")
            .as_ref()
            .is_some_and(|thread| !thread.is_finished());
        if !running {
            return Err(LogStoreError::Closed);
        }
        let root = self.partitions.root().to_owned();
        tokio::task::spawn_blocking(move || std::fs::read_dir(root).map(drop)).await??;
        Ok(())
    }

    async fn apply_retention(&self, now: Timestamp) -> Result<usize, LogStoreError> {
        Ok(TantivyLogStore::apply_retention(self, now).await?.len())
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::LogStore;

    #[test]
    fn only_searches_bounded_by_their_page_and_count_run_on_the_callers_task() {
        let up_to = Counting::UpTo(LogQuery::DEFAULT_TRACK_TOTAL_HITS as usize);
        assert!(is_bounded_search("error AND service:api", 100, up_to));
        assert!(is_bounded_search("", BOUNDED_PAGE, Counting::UpTo(BOUNDED_COUNT)));
        assert!(!is_bounded_search("error", 100, Counting::Exact), "an exact count");
        assert!(!is_bounded_search("error", 100, Counting::UpTo(BOUNDED_COUNT + 1)), "a count past the bound");
        assert!(!is_bounded_search("error", BOUNDED_PAGE + 1, up_to), "a long page");
        for walks_the_dictionary in ["message:/err.*/", "\"time out\"*", "attributes.status:[500 TO 599]", "seq:>5"] {
            assert!(!is_bounded_search(walks_the_dictionary, 100, up_to), "{walks_the_dictionary}");
        }
    }

    fn options(retention: Retention) -> WriterOptions {
        WriterOptions {
            memory_bytes: 16 << 20,
            queue_batches: 4,
            queue_wait: Duration::from_millis(100),
            commit_interval: Duration::from_millis(500),
            commit_idle: Duration::from_millis(20),
            merge_factor: 8,
            indexing_threads: 1,
            retention,
        }
    }

    fn record(service: &str, message: &str) -> LogRecord {
        serde_json::from_value(serde_json::json!({
            "timestamp": "2026-11-29T08:00:00Z", "service": service, "message": message,
        }))
        .unwrap()
    }

    async fn messages(store: &TantivyLogStore) -> Vec<String> {
        let page = store.search(LogQuery { limit: Some(100), ..LogQuery::default() }).await.unwrap();
        let mut messages: Vec<String> = page.records.into_iter().map(|hit| hit.message).collect();
        messages.sort();
        messages
    }

    /// A batch whose records went to two partitions, of which only one committed them before
    /// the process died (or whose log was not deleted after both committed): the replay adds
    /// each record exactly once.
    #[tokio::test]
    async fn the_replay_adds_what_each_partition_lacks_and_nothing_twice() {
        let data = tempfile::tempdir().unwrap();
        let root = data.path().join("logs");
        // `audit` has a retention of its own, hence a partition of its own.
        let retention = Retention { days: 0, days_by_service: [("audit".to_owned(), 30)].into() };
        let batch = vec![record("api", "a0"), record("audit", "b1"), record("api", "a2")];
        let write_log = |records: &[LogRecord]| {
            let (mut wal, _) = Wal::open(&wal_directory(&root)).unwrap();
            let mut encoded = Encoded::new(records);
            encoded.seal(0);
            wal.write(0, [encoded].iter()).unwrap();
        };

        write_log(&batch);
        let store = TantivyLogStore::open(&root, options(retention.clone()), StoreMetrics::unregistered()).unwrap();
        assert_eq!(messages(&store).await, ["a0", "a2", "b1"]);
        assert_eq!(*store.committed().borrow(), Some(2));
        store.close().await;
        assert!(Wal::open(&wal_directory(&root)).unwrap().1.is_empty(), "the log is emptied by the commit");

        // The audit partition lost its commit; the log is still there.
        std::fs::remove_dir_all(root.join("audit")).unwrap();
        write_log(&batch);
        let store = TantivyLogStore::open(&root, options(retention.clone()), StoreMetrics::unregistered()).unwrap();
        assert_eq!(messages(&store).await, ["a0", "a2", "b1"]);
        // New records continue the sequence.
        store.append(vec![record("api", "a3")], Commit::WaitFor).await.unwrap();
        assert_eq!(*store.committed().borrow(), Some(3));
        store.close().await;
    }

    /// A partition an earlier version wrote (format 2, a stored field for each part of a record)
    /// keeps being read and written as it is, beside new partitions of format 3.
    #[tokio::test]
    async fn a_format_2_partition_is_read_and_appended_to_beside_format_3_ones() {
        use crate::schema::Layout;
        let data = tempfile::tempdir().unwrap();
        let root = data.path().join("logs");
        let with_attributes = |mut record: LogRecord, region: &str| {
            record.host = "web-1".to_owned();
            record.level = "warn".to_owned();
            record.attributes =
                serde_json::json!({"region": region, "at": "2026-03-01T10:00:00+02:00"}).as_object().unwrap().clone();
            record
        };
        let old = with_attributes(record("api", "written by format 2"), "eu");
        {
            let directory = root.join("_all").join("2026-11-29");
            std::fs::create_dir_all(&directory).unwrap();
            std::fs::write(directory.join("vigil-format"), "2").unwrap();
            let (schema, fields) = LogFields::schema_of(Layout::Fields);
            let mmap = tantivy::directory::MmapDirectory::open(&directory).unwrap();
            let index = Index::create(mmap, schema, tantivy::IndexSettings::default()).unwrap();
            let mut writer: tantivy::IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
            writer.add_document(fields.document_in(Layout::Fields, old.clone(), 0)).unwrap();
            writer.commit().unwrap();
        }
        let appended = with_attributes(record("api", "appended to format 2"), "eu");
        let mut next_day = with_attributes(record("api", "a new day in format 3"), "us");
        next_day.timestamp = "2026-11-30T08:00:00Z".parse().unwrap();

        let open =
            || TantivyLogStore::open(&root, options(Retention::default()), StoreMetrics::unregistered()).unwrap();
        let store = open();
        store.append(vec![appended, next_day], Commit::WaitFor).await.unwrap();
        let mut store = Some(store);
        for _reopened in [false, true] {
            let store = store.take().unwrap_or_else(open);
            let page = store.search(LogQuery { limit: Some(10), ..LogQuery::default() }).await.unwrap();
            let got: Vec<_> = page
                .records
                .iter()
                .map(|hit| (hit.id.sequence, &*hit.message, &*hit.host, &*hit.level, hit.attributes["at"].clone()))
                .collect();
            // Format 2 stored the date-like attribute as a date (read back in UTC); format 3
            // keeps it as it was sent.
            assert_eq!(
                got,
                [
                    (2, "a new day in format 3", "web-1", "warn", "2026-03-01T10:00:00+02:00".into()),
                    (1, "appended to format 2", "web-1", "warn", "2026-03-01T08:00:00Z".into()),
                    (0, "written by format 2", "web-1", "warn", "2026-03-01T08:00:00Z".into()),
                ]
            );
            let found = store.search(LogQuery { q: "attributes.region:eu".to_owned(), ..LogQuery::default() });
            assert_eq!(found.await.unwrap().total, 2, "attributes stay searchable in both formats");
            let found =
                store.search(LogQuery { q: "format AND host:web-1 AND level:warn".to_owned(), ..LogQuery::default() });
            assert_eq!(found.await.unwrap().total, 3);
            store.close().await;
        }
        let format = |day: &str| std::fs::read_to_string(root.join("_all").join(day).join("vigil-format")).unwrap();
        assert_eq!((format("2026-11-29").as_str(), format("2026-11-30").as_str()), ("2", "3"));
    }

    #[tokio::test]
    async fn auto_answers_when_durable_and_the_idle_queue_commits() {
        let data = tempfile::tempdir().unwrap();
        let root = data.path().join("logs");
        let store = TantivyLogStore::open(&root, options(Retention::default()), StoreMetrics::unregistered()).unwrap();
        let mut committed = store.committed();
        store.append(vec![record("api", "sporadic")], Commit::Auto).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), committed.wait_for(|last| *last == Some(0)))
            .await
            .expect("committed soon after the queue went quiet")
            .unwrap();
        assert_eq!(messages(&store).await, ["sporadic"]);
        store.append(vec![record("api", "forced")], Commit::Force).await.unwrap();
        assert_eq!(messages(&store).await, ["forced", "sporadic"]);
        store.close().await;
    }

    /// Batches of more than a mebibyte sent one at a time, each followed by a pause twice the
    /// idle wait: the index commits by the interval, not at every pause.
    #[tokio::test]
    async fn a_stream_of_large_batches_commits_on_the_interval_not_at_every_pause() {
        let data = tempfile::tempdir().unwrap();
        let metrics = StoreMetrics::unregistered();
        let store =
            TantivyLogStore::open(&data.path().join("logs"), options(Retention::default()), metrics.clone()).unwrap();
        let mut committed = store.committed();
        let line = "x".repeat(5000);
        let batches = 6;
        let started = std::time::Instant::now();
        for _ in 0..batches {
            store.append((0..300).map(|_| record("api", &line)).collect(), Commit::Auto).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
        }
        let elapsed = started.elapsed();
        let commits = metrics.commits.get();
        let bound = elapsed.as_millis() as u64 / 500 + 1;
        assert!(commits <= bound, "{commits} commits in {elapsed:?}: at most one per interval");
        // The interval still bounds how late they are searchable.
        tokio::time::timeout(Duration::from_secs(5), committed.wait_for(|last| *last == Some(batches * 300 - 1)))
            .await
            .expect("searchable within the interval")
            .unwrap();
        store.close().await;
    }
}
