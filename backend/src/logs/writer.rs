//! The writer thread: the only place that writes to the partitions.
//!
//! Durability is commit-before-acknowledge with group commit: the thread takes every command
//! waiting in its queue, adds the records of the appends to their partitions' writers, commits
//! each touched partition (tantivy fsyncs the segment files and the meta file), reloads their
//! readers, and only then answers each waiting request. It keeps a few partition writers open
//! (most appends go to today's partition) and closes the least recently used beyond that.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tantivy::{IndexWriter, TantivyDocument};
use tokio::sync::{mpsc, oneshot, watch};
use vigil_proto::LogRecord;

use super::LogStoreError;
use super::partition::{Partition, PartitionKey, Partitions, Retention};
use super::schema::LogFields;
use crate::telemetry::Metrics;

/// Commands taken into one group at most.
const MAX_COMMANDS_PER_GROUP: usize = 256;
/// A group that starts this soon after the last commit ended waits up to [`LINGER`] for more.
const LINGER_AFTER_COMMIT: Duration = Duration::from_millis(5);
const LINGER: Duration = Duration::from_millis(8);
/// Memory of one partition writer; tantivy needs at least 15 MB.
const WRITER_MEMORY_FLOOR: usize = 16 << 20;
const MAX_OPEN_WRITERS: usize = 4;

/// Where the writer answers a command.
pub type Reply = oneshot::Sender<Result<(), LogStoreError>>;

pub enum Command {
    Append { records: Vec<LogRecord>, reply: Reply },
    Drop { keys: Vec<PartitionKey>, reply: Reply },
}

pub struct Writer {
    pub partitions: Partitions,
    pub fields: LogFields,
    pub retention: Retention,
    pub next_sequence: u64,
    pub committed: watch::Sender<Option<u64>>,
    pub writer_memory_bytes: usize,
    pub metrics: std::sync::Arc<Metrics>,
    open: HashMap<PartitionKey, (IndexWriter<TantivyDocument>, u64)>,
    uses: u64,
}

impl Writer {
    pub fn new(
        partitions: Partitions,
        fields: LogFields,
        retention: Retention,
        next_sequence: u64,
        committed: watch::Sender<Option<u64>>,
        writer_memory_bytes: usize,
        metrics: std::sync::Arc<Metrics>,
    ) -> Self {
        Self {
            partitions,
            fields,
            retention,
            next_sequence,
            committed,
            writer_memory_bytes,
            metrics,
            open: HashMap::new(),
            uses: 0,
        }
    }

    fn max_open(&self) -> usize {
        (self.writer_memory_bytes / WRITER_MEMORY_FLOOR).clamp(1, MAX_OPEN_WRITERS)
    }

    /// Runs until every sender is gone.
    pub fn run(mut self, mut receiver: mpsc::Receiver<Command>) {
        let mut last_commit = Instant::now() - LINGER_AFTER_COMMIT;
        while let Some(first) = receiver.blocking_recv() {
            let mut commands = vec![first];
            // Under sustained load (the last commit just ended), wait a moment for the batches
            // other clients are sending, so that one commit (one segment) takes them all; a
            // lone client never waits.
            let linger_until = (last_commit.elapsed() < LINGER_AFTER_COMMIT).then(|| Instant::now() + LINGER);
            while commands.len() < MAX_COMMANDS_PER_GROUP {
                match receiver.try_recv() {
                    Ok(command) => commands.push(command),
                    Err(_) if linger_until.is_some_and(|until| Instant::now() < until) => {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(_) => break,
                }
            }
            let mut appends = Vec::new();
            for command in commands {
                match command {
                    Command::Append { records, reply } => appends.push((records, reply)),
                    Command::Drop { keys, reply } => {
                        // Appends queued before the drop are committed first, in order.
                        self.commit_group(std::mem::take(&mut appends));
                        let _receiver_gone = reply.send(self.drop_partitions(&keys));
                    }
                }
            }
            self.commit_group(appends);
            last_commit = Instant::now();
        }
        for (_, (writer, _)) in self.open.drain() {
            if let Err(error) = writer.wait_merging_threads() {
                tracing::warn!(error = %error, "log index merge did not finish cleanly");
            }
        }
    }

    fn commit_group(&mut self, mut appends: Vec<(Vec<LogRecord>, Reply)>) {
        if appends.is_empty() {
            return;
        }
        let started = Instant::now();
        let first_sequence = self.next_sequence;
        let result = self.add_and_commit(&mut appends);
        self.metrics.log_commit_duration.observe(started.elapsed().as_secs_f64());
        match result {
            Ok(records) => {
                if records > 0 {
                    self.committed.send_replace(Some(self.next_sequence - 1));
                }
                self.metrics.log_commits.inc();
                self.metrics.log_records_ingested.inc_by(records);
                for (_, reply) in appends {
                    let _receiver_gone = reply.send(Ok(()));
                }
            }
            Err(error) => {
                tracing::error!(error = %error, batches = appends.len(), "log commit failed, batches refused");
                for (_, (writer, _)) in self.open.iter_mut() {
                    if let Err(rollback_error) = writer.rollback() {
                        tracing::error!(error = %rollback_error, "log writer rollback failed");
                    }
                }
                self.next_sequence = first_sequence;
                for (_, reply) in appends {
                    let _receiver_gone = reply.send(Err(LogStoreError::Index(error.clone())));
                }
            }
        }
    }

    fn add_and_commit(&mut self, appends: &mut [(Vec<LogRecord>, Reply)]) -> tantivy::Result<u64> {
        let mut touched: HashMap<PartitionKey, (Partition, u64)> = HashMap::new();
        let mut records = 0;
        for (batch, _) in appends.iter_mut() {
            for record in std::mem::take(batch) {
                let key = PartitionKey::of(record.timestamp, self.retention.class_of(&record.service));
                if !touched.contains_key(&key) {
                    let partition = self.partitions.get_or_create(&key)?;
                    touched.insert(key.clone(), (partition, 0));
                }
                let sequence = self.next_sequence;
                let document = self.fields.document(record, sequence);
                self.writer_for(&key, &mut touched)?.add_document(document)?;
                self.next_sequence += 1;
                if let Some((_, end)) = touched.get_mut(&key) {
                    *end = sequence + 1;
                }
                records += 1;
            }
        }
        for (key, (partition, sequence_end)) in &touched {
            if let Some((writer, _)) = self.open.get_mut(key) {
                writer.commit()?;
            }
            partition.reader.reload()?;
            partition.sequence_end.fetch_max(*sequence_end, Ordering::AcqRel);
        }
        Ok(records)
    }

    /// The open writer of `key`, opening it (and closing the least recently used writer, after
    /// committing what the group gave it so far) when needed.
    fn writer_for(
        &mut self,
        key: &PartitionKey,
        touched: &mut HashMap<PartitionKey, (Partition, u64)>,
    ) -> tantivy::Result<&mut IndexWriter<TantivyDocument>> {
        self.uses += 1;
        if !self.open.contains_key(key) {
            if self.open.len() >= self.max_open() {
                let oldest = self.open.iter().min_by_key(|(_, (_, used))| *used).map(|(key, _)| key.clone());
                if let Some(oldest) = oldest
                    && let Some((mut writer, _)) = self.open.remove(&oldest)
                {
                    if touched.contains_key(&oldest) {
                        writer.commit()?;
                    }
                    writer.wait_merging_threads()?;
                }
            }
            let memory = (self.writer_memory_bytes / self.max_open()).max(WRITER_MEMORY_FLOOR);
            let partition = touched.get(key).map(|(partition, _)| partition.clone()).ok_or_else(|| {
                tantivy::TantivyError::InternalError("a partition is written before it is opened".to_owned())
            })?;
            let writer = partition.index.writer_with_num_threads(1, memory)?;
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
