//! The writer thread: the only place that writes to the write-ahead log and the partitions.
//!
//! It takes every command waiting in its queue as one group, appends the group's batches to the
//! write-ahead log (see `wal`) with one sync, acknowledges them, and hands their documents to
//! the partitions' tantivy writers. The index commits when the oldest uncommitted record is
//! `commit_interval` old, when the queue has been quiet for `commit_idle` while less than
//! [`IDLE_COMMIT_BYTES`] wait, when the
//! uncommitted records reach [`COMMIT_BYTES`], or when a batch asks for it; each commit
//! reloads the readers, answers the batches waiting to be searchable, and deletes the
//! write-ahead log, whose records are all in the index then.
//!
//! It keeps a few partition writers open (most appends go to today's partition) and closes the
//! least recently used beyond that.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tantivy::indexer::{LogMergePolicy, UserOperation};
use tantivy::{IndexWriter, TantivyDocument, TantivyError};
use tokio::sync::{oneshot, watch};
use vigil_proto::{Commit, LogRecord};

use super::LogStoreError;
use super::partition::{Partition, PartitionKey, Partitions, Retention};

/// How the writer works.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    pub memory_bytes: usize,
    /// Batches waiting for the writer.
    pub queue_batches: usize,
    /// How long an append waits for room in a full queue before it is refused as busy.
    pub queue_wait: Duration,
    /// The longest an acknowledged record waits to be searchable.
    pub commit_interval: Duration,
    /// How long a quiet queue waits before it commits.
    pub commit_idle: Duration,
    /// Segments merged at once.
    pub merge_factor: usize,
    /// tantivy's indexing threads of a partition writer, at most one per 16 MiB of
    /// `memory_bytes`.
    pub indexing_threads: usize,
    pub retention: Retention,
}
use super::schema::{Layout, LogFields};
use super::wal::{Encoded, Replayed, Wal};
use crate::StoreMetrics;

/// Commands taken into one group at most.
const MAX_COMMANDS_PER_GROUP: usize = 256;
/// Uncommitted records (in their write-ahead log encoding) that start a commit. Acknowledging
/// costs far less than indexing, so under load the writer accepts records faster than tantivy
/// indexes them, and a commit waits until tantivy has caught up: this bounds that wait (about
/// half a second of indexing here), hence how late records become searchable under load, and
/// holds clients back to the indexing rate.
const COMMIT_BYTES: usize = 12 << 20;
/// Uncommitted records (in their log encoding) up to which a quiet queue commits at once, so
/// that sporadic records are searchable right away. Beyond it they wait for the commit
/// interval: a stream of batches sent one at a time, with a pause after each, commits by its
/// volume and the interval, not at every pause.
const IDLE_COMMIT_BYTES: usize = 1 << 20;
/// Memory of one partition writer; tantivy needs at least 15 MB.
const WRITER_MEMORY_FLOOR: usize = 16 << 20;
const MAX_OPEN_WRITERS: usize = 4;

/// The documents of a group bound for one partition, and one more than their last sequence.
struct Staged {
    key: PartitionKey,
    /// The layout of the partition's stored records.
    layout: Layout,
    sequence_end: u64,
    operations: Vec<UserOperation>,
}

/// Where the writer answers a command.
pub type Reply = oneshot::Sender<Result<(), LogStoreError>>;

pub enum Command {
    Append { records: Vec<LogRecord>, encoded: Encoded, commit: Commit, reply: Reply },
    Drop { keys: Vec<PartitionKey>, reply: Reply },
}

impl Command {
    /// What the command adds to the uncommitted records (their log encoding).
    fn bytes(&self) -> usize {
        match self {
            Self::Append { encoded, .. } => encoded.len(),
            Self::Drop { .. } => 0,
        }
    }
}

pub struct Writer {
    partitions: Partitions,
    fields: LogFields,
    options: WriterOptions,
    next_sequence: u64,
    committed: watch::Sender<Option<u64>>,
    metrics: StoreMetrics,
    /// Set when the index failed: acknowledged records stay in the write-ahead log for the
    /// next start, and nothing more is accepted.
    pub failed: Arc<OnceLock<TantivyError>>,
    wal: Wal,
    open: HashMap<PartitionKey, (IndexWriter<TantivyDocument>, u64)>,
    uses: u64,
    /// Partitions given records since the last commit, with one more than their last sequence.
    uncommitted: HashMap<PartitionKey, (Partition, u64)>,
    uncommitted_since: Option<Instant>,
    uncommitted_bytes: usize,
    /// Batches that asked to be answered once searchable.
    waiting: Vec<Reply>,
}

impl Writer {
    pub fn new(
        partitions: Partitions,
        fields: LogFields,
        wal: Wal,
        options: WriterOptions,
        metrics: StoreMetrics,
    ) -> (Self, watch::Receiver<Option<u64>>) {
        let last = partitions.all().iter().filter_map(|(_, partition)| partition.last_sequence()).max();
        let (committed, committed_receiver) = watch::channel(last);
        let writer = Self {
            partitions,
            fields,
            options,
            next_sequence: last.map_or(0, |last| last + 1),
            committed,
            metrics,
            failed: Arc::new(OnceLock::new()),
            wal,
            open: HashMap::new(),
            uses: 0,
            uncommitted: HashMap::new(),
            uncommitted_since: None,
            uncommitted_bytes: 0,
            waiting: Vec::new(),
        };
        (writer, committed_receiver)
    }

    fn max_open(&self) -> usize {
        (self.options.memory_bytes / (WRITER_MEMORY_FLOOR * self.threads())).clamp(1, MAX_OPEN_WRITERS)
    }

    fn threads(&self) -> usize {
        self.options.indexing_threads.clamp(1, (self.options.memory_bytes / WRITER_MEMORY_FLOOR).max(1))
    }

    /// Indexes the records a previous process acknowledged but did not commit: those of each
    /// batch whose partition does not hold their sequence numbers yet (a partition holds its
    /// records in sequence order, and commits them all or none). Returns how many there were.
    pub fn replay(&mut self, batches: Vec<Replayed>) -> Result<usize, LogStoreError> {
        let mut staged = Vec::new();
        let mut replayed = 0;
        for batch in batches {
            for (sequence, record) in (batch.first_sequence..).zip(batch.records) {
                self.next_sequence = self.next_sequence.max(sequence + 1);
                let key = PartitionKey::of(record.timestamp, self.options.retention.class_of(&record.service));
                if sequence < self.partitions.get_or_create(&key)?.sequence_end.load(Ordering::Acquire) {
                    continue;
                }
                self.stage(&mut staged, record, sequence)?;
                replayed += 1;
            }
        }
        self.uncommitted_since = Some(Instant::now());
        self.index(staged);
        self.commit();
        match self.failed.get() {
            Some(error) => Err(LogStoreError::Index(error.clone())),
            None => Ok(replayed),
        }
    }

    /// Runs until every sender is gone, then commits what is left.
    pub fn run(mut self, receiver: Receiver<Command>) {
        loop {
            let first = match self.uncommitted_since {
                None => match receiver.recv() {
                    Ok(command) => command,
                    Err(_) => break,
                },
                Some(since) => match receiver.recv_timeout({
                    let due = self.options.commit_interval.saturating_sub(since.elapsed());
                    if self.uncommitted_bytes < IDLE_COMMIT_BYTES { due.min(self.options.commit_idle) } else { due }
                }) {
                    Ok(command) => command,
                    Err(RecvTimeoutError::Timeout) => {
                        self.commit();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                },
            };
            // A group ends at what the next commit takes: records handed to the index wait in
            // tantivy's queue, answered and out of the ingest memory bound, until it commits;
            // those still in this queue are held by their requests, within the bound.
            let mut group_bytes = first.bytes();
            let mut group = vec![first];
            while group.len() < MAX_COMMANDS_PER_GROUP
                && self.uncommitted_bytes + group_bytes < COMMIT_BYTES.min(self.options.memory_bytes)
                && let Ok(command) = receiver.try_recv()
            {
                group_bytes += command.bytes();
                group.push(command);
            }
            let mut appends = Vec::new();
            let mut force = false;
            for command in group {
                match command {
                    Command::Append { records, encoded, commit, reply } => {
                        force |= commit == Commit::Force;
                        appends.push((records, encoded, commit, reply));
                    }
                    Command::Drop { keys, reply } => {
                        // Appends queued before the drop are committed first, in order, so
                        // that the write-ahead log holds nothing of the dropped partitions.
                        self.append(std::mem::take(&mut appends));
                        self.commit();
                        let _receiver_gone = reply.send(self.drop_partitions(&keys));
                    }
                }
            }
            self.append(appends);
            let due = self.uncommitted_since.is_some_and(|since| since.elapsed() >= self.options.commit_interval);
            if force || due || self.uncommitted_bytes >= COMMIT_BYTES.min(self.options.memory_bytes) {
                self.commit();
            }
        }
        self.commit();
        for (_, (writer, _)) in self.open.drain() {
            if let Err(error) = writer.wait_merging_threads() {
                tracing::warn!(error = %error, "log index merge did not finish cleanly");
            }
        }
    }

    /// Makes a group of batches durable in the write-ahead log, answers those that wait for no
    /// more, and hands their records to the index.
    fn append(&mut self, mut appends: Vec<(Vec<LogRecord>, Encoded, Commit, Reply)>) {
        if appends.is_empty() {
            return;
        }
        if let Some(error) = self.failed.get() {
            for (_, _, _, reply) in appends {
                let _receiver_gone = reply.send(Err(LogStoreError::Index(error.clone())));
            }
            return;
        }
        let first_sequence = self.next_sequence;
        let mut sequence = first_sequence;
        for (records, encoded, _, _) in appends.iter_mut() {
            encoded.seal(sequence);
            sequence += records.len() as u64;
        }
        let started = Instant::now();
        if let Err(error) = self.wal.write(first_sequence, appends.iter().map(|(_, encoded, _, _)| encoded)) {
            tracing::error!(error = %error, batches = appends.len(), "write-ahead log write failed, batches refused");
            for (_, _, _, reply) in appends {
                let _receiver_gone =
                    reply.send(Err(LogStoreError::Io(std::io::Error::new(error.kind(), error.to_string()))));
            }
            return;
        }
        self.metrics.wal_sync_duration.observe(started.elapsed().as_secs_f64());
        self.next_sequence = sequence;
        self.metrics.records_ingested.inc_by(sequence - first_sequence);
        self.uncommitted_since.get_or_insert_with(Instant::now);
        let mut staged = Vec::new();
        let mut sequence = first_sequence;
        for (records, encoded, commit, reply) in appends {
            match commit {
                Commit::Auto => {
                    let _receiver_gone = reply.send(Ok(()));
                }
                Commit::WaitFor | Commit::Force => self.waiting.push(reply),
            }
            self.uncommitted_bytes += encoded.len();
            for record in records {
                if let Err(error) = self.stage(&mut staged, record, sequence) {
                    return self.fail(error);
                }
                sequence += 1;
            }
        }
        self.index(staged);
    }

    /// Adds a record's document to the operations of its partition (found among those of the
    /// group without allocating: a group seldom spans more than one or two).
    fn stage(&mut self, staged: &mut Vec<Staged>, record: LogRecord, sequence: u64) -> tantivy::Result<()> {
        let class = self.options.retention.class_of(&record.service);
        let day = PartitionKey::day_of(record.timestamp);
        let position = match staged.iter().rposition(|staged| staged.key.day == day && staged.key.class == class) {
            Some(position) => position,
            None => {
                let key = PartitionKey { class: class.to_owned(), day };
                let layout = match self.uncommitted.get(&key) {
                    Some((partition, _)) => partition.layout,
                    None => {
                        let partition = self.partitions.get_or_create(&key)?;
                        let layout = partition.layout;
                        self.uncommitted.insert(key.clone(), (partition, 0));
                        layout
                    }
                };
                staged.push(Staged { key, layout, sequence_end: 0, operations: Vec::new() });
                staged.len() - 1
            }
        };
        let staged = &mut staged[position];
        staged.sequence_end = sequence + 1;
        staged.operations.push(UserOperation::Add(self.fields.document_in(staged.layout, record, sequence)));
        Ok(())
    }

    /// Sends each partition's documents to its writer, in one operation group.
    fn index(&mut self, staged: Vec<Staged>) {
        for Staged { key, sequence_end, operations, .. } in staged {
            if let Some((_, end)) = self.uncommitted.get_mut(&key) {
                *end = sequence_end;
            }
            if let Err(error) = self.writer_for(&key).and_then(|writer| writer.run(operations).map(drop)) {
                return self.fail(error);
            }
        }
    }

    /// Commits every partition given records since the last commit, makes them searchable, and
    /// empties the write-ahead log.
    fn commit(&mut self) {
        self.uncommitted_since = None;
        self.uncommitted_bytes = 0;
        let uncommitted = std::mem::take(&mut self.uncommitted);
        if self.failed.get().is_none() && !uncommitted.is_empty() {
            let started = Instant::now();
            let result = uncommitted.iter().try_for_each(|(key, (partition, _))| {
                if let Some((writer, _)) = self.open.get_mut(key) {
                    writer.commit()?;
                }
                partition.reload()
            });
            match result {
                Err(error) => self.fail(error),
                Ok(()) => {
                    for (partition, sequence_end) in uncommitted.values() {
                        partition.sequence_end.fetch_max(*sequence_end, Ordering::AcqRel);
                    }
                    self.committed.send_replace(self.next_sequence.checked_sub(1));
                    self.metrics.commit_duration.observe(started.elapsed().as_secs_f64());
                    self.metrics.commits.inc();
                }
            }
        }
        // Everything the log holds is in the index now (or was before this commit).
        if self.failed.get().is_none()
            && let Err(error) = self.wal.clear()
        {
            // Harmless: a replay skips what the partitions hold.
            tracing::warn!(error = %error, "write-ahead log files could not be deleted");
        }
        let answer = match self.failed.get() {
            Some(error) => Err(error.clone()),
            None => Ok(()),
        };
        for reply in self.waiting.drain(..) {
            let _receiver_gone = reply.send(answer.clone().map_err(LogStoreError::Index));
        }
    }

    /// Stops indexing for good: what was acknowledged stays in the write-ahead log.
    fn fail(&mut self, error: TantivyError) {
        tracing::error!(error = %error, "log index failure: ingest stops until a restart replays the write-ahead log");
        let _already_failed = self.failed.set(error);
    }

    /// The open writer of `key`, opening it (and closing the least recently used writer, after
    /// committing what it was given, when needed).
    fn writer_for(&mut self, key: &PartitionKey) -> tantivy::Result<&mut IndexWriter<TantivyDocument>> {
        self.uses += 1;
        if !self.open.contains_key(key) {
            if self.open.len() >= self.max_open() {
                let oldest = self.open.iter().min_by_key(|(_, (_, used))| *used).map(|(key, _)| key.clone());
                if let Some(oldest) = oldest
                    && let Some((mut writer, _)) = self.open.remove(&oldest)
                {
                    if self.uncommitted.contains_key(&oldest) {
                        writer.commit()?;
                    }
                    writer.wait_merging_threads()?;
                }
            }
            let threads = self.threads();
            let memory = (self.options.memory_bytes / self.max_open()).max(WRITER_MEMORY_FLOOR * threads);
            let writer = self.partitions.get_or_create(key)?.index.writer_with_num_threads(threads, memory)?;
            let mut merge_policy = LogMergePolicy::default();
            merge_policy.set_min_num_segments(self.options.merge_factor);
            writer.set_merge_policy(Box::new(merge_policy));
            self.open.insert(key.clone(), (writer, self.uses));
        }
        let (writer, used) = self.open.get_mut(key).expect("opened above");
        *used = self.uses;
        Ok(writer)
    }

    fn drop_partitions(&mut self, keys: &[PartitionKey]) -> Result<(), LogStoreError> {
        for key in keys {
            if let Some((writer, _)) = self.open.remove(key) {
                writer.wait_merging_threads()?;
            }
            self.partitions.drop_partition(key)?;
            tracing::info!(class = %key.class, day = key.day, "log partition dropped by retention");
        }
        Ok(())
    }
}
