//! The disk buffer: batches wait here, in order, until the backend has acknowledged them.
//!
//! A buffer is a directory of segment files named after the sequence number of their first
//! entry (`00000000000000000001.seg`), each a run of frames `[length u32][crc32 u32][payload]`,
//! and a checkpoint (`checkpoint.json`) holding the last acknowledged sequence number and the file positions
//! the acknowledged batches reach. Sources push batches ([`Buffer::push_blocking`]); one
//! shipper reads them in order ([`Buffer::next`]) and acknowledges them ([`Buffer::ack`]),
//! which advances the checkpoint; segments whose entries are all acknowledged are deleted.
//!
//! A frame cut short or damaged by a crash ends its segment: what follows is discarded, and the
//! file sources read those lines again, because where they resume is taken from the frames
//! that survived ([`Buffer::resume_positions`]). Frames are written without `fsync` (the page
//! cache survives a killed agent); segments are flushed to disk when they are closed.
//!
//! The size is bounded: when it is full, `block` makes sources wait (backpressure: a file
//! source simply reads later) and `drop_oldest` gives up the oldest unsent batches; both are
//! counted.

use std::collections::{BTreeMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use serde::Deserialize;

use crate::checkpoint::{Checkpoint, CheckpointError, CheckpointV1, Positions, merge};
use crate::error_chain::ErrorChain;

const FRAME_HEADER: usize = 8;
const CHECKPOINT_FILE: &str = "checkpoint.json";
const SEGMENT_EXTENSION: &str = "seg";

/// Why the disk buffer cannot open, store a batch or read one back.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("cannot create buffer directory {}", .path.display())]
    CreateDirectory { path: PathBuf, source: std::io::Error },
    #[error("cannot read buffer directory {}", .path.display())]
    ReadDirectory { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("cannot open disk buffer segment {}", .path.display())]
    OpenSegment { path: PathBuf, source: std::io::Error },
    #[error("cannot create disk buffer segment {}", .path.display())]
    CreateSegment { path: PathBuf, source: std::io::Error },
    #[error("cannot read disk buffer segment {}", .path.display())]
    ReadSegment { path: PathBuf, source: std::io::Error },
    #[error("cannot write to the disk buffer (segment {})", .path.display())]
    WriteSegment { path: PathBuf, source: std::io::Error },
    #[error("cannot flush a disk buffer segment ({})", .path.display())]
    FlushSegment { path: PathBuf, source: std::io::Error },
    /// The damaged end of the last segment could not be cut off.
    #[error("cannot cut the damaged end off disk buffer segment {}", .path.display())]
    TruncateSegment { path: PathBuf, source: std::io::Error },
    #[error("checksum mismatch in disk buffer segment {} at offset {offset}", .path.display())]
    ChecksumMismatch { path: PathBuf, offset: u64 },
    #[error("undecodable frame in disk buffer segment {} at offset {offset}", .path.display())]
    UndecodableFrame { path: PathBuf, offset: u64 },
    #[error("cannot encode the file positions of a batch")]
    EncodePositions(#[source] serde_json::Error),
    #[error("batch too large for the buffer ({bytes} bytes)")]
    BatchTooLarge { bytes: usize },
    #[error("the read of a buffered batch did not finish")]
    ReadTask(#[from] tokio::task::JoinError),
}

/// What a full buffer does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// Sources wait until the shipper has made room.
    #[default]
    Block,
    /// The oldest batches are given up to make room.
    DropOldest,
}

/// One batch read back for shipping.
#[derive(Debug)]
pub struct Pending {
    pub seq: u64,
    pub records: u32,
    pub body: Vec<u8>,
}

/// Counters a buffer keeps for the agent's `/metrics` and heartbeats.
#[derive(Debug, Default)]
pub struct BufferStats {
    pub dropped_batches: AtomicU64,
    pub dropped_records: AtomicU64,
    pub blocked_pushes: AtomicU64,
    /// Frames found damaged on start (their lines are read again from the files).
    pub damaged_frames: AtomicU64,
}

pub struct Buffer {
    directory: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    when_full: WhenFull,
    state: Mutex<State>,
    /// Signalled when room is made.
    room: Condvar,
    /// Signalled when an entry arrives (one shipper waits on it).
    arrived: tokio::sync::Notify,
    /// Serialises checkpoint writes.
    checkpoint_lock: Mutex<()>,
    pub stats: BufferStats,
    /// Whether a checkpoint existed when the buffer was opened (the agent ran here before).
    resumed: bool,
}

struct State {
    acked_seq: u64,
    next_seq: u64,
    /// Unacknowledged entries, oldest first.
    entries: VecDeque<Entry>,
    bytes: u64,
    acked_positions: Positions,
    /// Segment files by the sequence number of their first entry.
    segments: BTreeMap<u64, PathBuf>,
    writer: Option<Writer>,
    closed: bool,
}

struct Writer {
    first_seq: u64,
    path: PathBuf,
    file: File,
    length: u64,
}

#[derive(Clone)]
struct Entry {
    seq: u64,
    segment: u64,
    /// Where the frame starts.
    offset: u64,
    /// The frame's whole length, header included.
    length: u64,
    records: u32,
    positions: Positions,
}

impl Buffer {
    /// Opens (or creates) the buffer in `directory`, recovering what a previous run left.
    pub fn open(directory: &Path, max_bytes: u64, when_full: WhenFull) -> Result<Self, BufferError> {
        std::fs::create_dir_all(directory)
            .map_err(|source| BufferError::CreateDirectory { path: directory.to_owned(), source })?;
        let checkpoint = Checkpoint::load(&directory.join(CHECKPOINT_FILE))?;
        let resumed = checkpoint.is_some();
        let CheckpointV1 { acked_seq, files } = checkpoint.unwrap_or_default();
        let stats = BufferStats::default();
        let mut segments = BTreeMap::new();
        let unreadable = |source| BufferError::ReadDirectory { path: directory.to_owned(), source };
        for item in std::fs::read_dir(directory).map_err(unreadable)? {
            let path = item.map_err(unreadable)?.path();
            if path.extension().is_some_and(|extension| extension == SEGMENT_EXTENSION)
                && let Some(first_seq) = path.file_stem().and_then(|stem| stem.to_str()?.parse::<u64>().ok())
            {
                segments.insert(first_seq, path);
            }
        }
        let mut entries = VecDeque::new();
        let mut next_seq = acked_seq + 1;
        let last_segment = segments.keys().next_back().copied();
        let mut kept = BTreeMap::new();
        for (first_seq, path) in segments {
            let (found, damaged) = scan_segment(&path, first_seq, Some(first_seq) == last_segment)?;
            if damaged {
                stats.damaged_frames.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(segment = %path.display(), "damaged frame in the disk buffer, its lines are read again");
            }
            let unacked: Vec<Entry> = found.into_iter().filter(|entry| entry.seq > acked_seq).collect();
            if unacked.is_empty() {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            next_seq = next_seq.max(unacked.last().map_or(0, |entry| entry.seq + 1));
            entries.extend(unacked);
            kept.insert(first_seq, path);
        }
        let bytes = entries.iter().map(|entry| entry.length).sum();
        let segment_bytes = (max_bytes / 8).clamp(64 << 10, 32 << 20);
        Ok(Self {
            directory: directory.to_owned(),
            max_bytes,
            segment_bytes,
            when_full,
            state: Mutex::new(State {
                acked_seq,
                next_seq,
                entries,
                bytes,
                acked_positions: files,
                segments: kept,
                writer: None,
                closed: false,
            }),
            room: Condvar::new(),
            arrived: tokio::sync::Notify::new(),
            checkpoint_lock: Mutex::new(()),
            stats,
            resumed,
        })
    }

    /// Whether the agent ran with this buffer before (a checkpoint existed).
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// Where file sources resume: the furthest position of each file among the acknowledged
    /// batches and the batches still waiting here.
    pub fn resume_positions(&self) -> Positions {
        let state = self.lock();
        let mut positions = state.acked_positions.clone();
        for entry in &state.entries {
            merge(&mut positions, &entry.positions);
        }
        positions
    }

    /// Unacknowledged bytes and batches.
    pub fn depth(&self) -> (u64, u64) {
        let state = self.lock();
        (state.bytes, state.entries.len() as u64)
    }

    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Appends a batch (already compressed) of `records` records that takes the file sources
    /// to `positions`. Blocks while the buffer is full and `when_full` is `block`; returns
    /// `false` when the buffer was closed meanwhile (the batch is not stored).
    pub fn push_blocking(&self, records: u32, body: &[u8], positions: Positions) -> Result<bool, BufferError> {
        // Encoded before taking the lock: sources wait on each other only for the write.
        let frame = encode_frame(records, body, &positions)?;
        let length = frame.len() as u64;
        let mut state = self.lock();
        let mut waited = false;
        while !state.closed && !state.entries.is_empty() && state.bytes + length > self.max_bytes {
            match self.when_full {
                WhenFull::Block => {
                    if !waited {
                        self.stats.blocked_pushes.fetch_add(1, Ordering::Relaxed);
                        waited = true;
                    }
                    state = self.room.wait(state).unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                WhenFull::DropOldest => {
                    let Some(oldest) = state.entries.front().map(|entry| entry.seq) else { break };
                    let dropped = self.acknowledge(&mut state, oldest);
                    self.stats.dropped_batches.fetch_add(1, Ordering::Relaxed);
                    self.stats.dropped_records.fetch_add(u64::from(dropped), Ordering::Relaxed);
                    tracing::warn!(records = dropped, "disk buffer full, oldest batch dropped");
                }
            }
        }
        if state.closed {
            return Ok(false);
        }
        let seq = state.next_seq;
        let writer = self.writer(&mut state, seq)?;
        let offset = writer.length;
        writer
            .file
            .write_all(&frame)
            .map_err(|source| BufferError::WriteSegment { path: writer.path.clone(), source })?;
        writer.length += frame.len() as u64;
        let segment = writer.first_seq;
        state.next_seq += 1;
        state.bytes += length;
        state.entries.push_back(Entry { seq, segment, offset, length, records, positions });
        drop(state);
        self.arrived.notify_one();
        Ok(true)
    }

    /// The writer for entry `seq`, rolling to a new segment when the current one is full.
    fn writer<'a>(&self, state: &'a mut State, seq: u64) -> Result<&'a mut Writer, BufferError> {
        if state.writer.as_ref().is_some_and(|writer| writer.length >= self.segment_bytes) {
            if let Some(full) = state.writer.take() {
                full.file.sync_data().map_err(|source| BufferError::FlushSegment { path: full.path, source })?;
            }
            self.delete_acknowledged_segments(state);
        }
        if state.writer.is_none() {
            let path = self.directory.join(format!("{seq:020}.{SEGMENT_EXTENSION}"));
            let file = File::options()
                .create(true)
                .truncate(true)
                .write(true)
                .open(&path)
                .map_err(|source| BufferError::CreateSegment { path: path.clone(), source })?;
            state.segments.insert(seq, path.clone());
            state.writer = Some(Writer { first_seq: seq, path, file, length: 0 });
        }
        Ok(state.writer.as_mut().expect("a writer was just made"))
    }

    /// The first entry after `after`, read from disk; waits for one. `None` once the buffer is
    /// closed.
    pub async fn next(&self, after: u64) -> Option<Pending> {
        loop {
            let entry = {
                let state = self.lock();
                if state.closed {
                    return None;
                }
                let floor = after.max(state.acked_seq);
                state.entries.iter().find(|entry| entry.seq > floor).cloned().map(|entry| {
                    let path = state.segments.get(&entry.segment).cloned();
                    (entry, path)
                })
            };
            match entry {
                Some((entry, Some(path))) => match read_off_runtime(path, entry.offset, entry.length).await {
                    Ok(body) => return Some(Pending { seq: entry.seq, records: entry.records, body }),
                    // Dropped (its segment deleted) while it was looked up: take the next one.
                    Err(error) if self.lock().acked_seq >= entry.seq => {
                        tracing::debug!(error = %ErrorChain(&error), "buffered batch dropped before it was sent");
                    }
                    Err(error) => {
                        tracing::error!(seq = entry.seq, error = %ErrorChain(&error), "cannot read a buffered batch, skipped");
                        self.ack(entry.seq);
                    }
                },
                Some((entry, None)) => {
                    self.ack(entry.seq);
                }
                None => self.arrived.notified().await,
            }
        }
    }

    /// Marks every entry up to `seq` acknowledged and stores the checkpoint.
    pub fn ack(&self, seq: u64) {
        let snapshot = {
            let mut state = self.lock();
            self.acknowledge(&mut state, seq);
            Checkpoint::V1(CheckpointV1 { acked_seq: state.acked_seq, files: state.acked_positions.clone() })
        };
        self.room.notify_all();
        let _guard = self.checkpoint_lock.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(error) = snapshot.store(&self.directory.join(CHECKPOINT_FILE)) {
            tracing::error!(error = %ErrorChain(&error), "cannot store the checkpoint");
        }
    }

    /// Forgets entries up to `seq`; returns how many records they held.
    fn acknowledge(&self, state: &mut State, seq: u64) -> u32 {
        let mut records = 0;
        while state.entries.front().is_some_and(|entry| entry.seq <= seq) {
            let entry = state.entries.pop_front().expect("a front entry");
            state.bytes -= entry.length;
            records += entry.records;
            merge(&mut state.acked_positions, &entry.positions);
        }
        state.acked_seq = state.acked_seq.max(seq);
        self.delete_acknowledged_segments(state);
        records
    }

    /// Deletes the segments all of whose entries are acknowledged (never the one written to).
    fn delete_acknowledged_segments(&self, state: &mut State) {
        let oldest_needed = state.entries.front().map_or(u64::MAX, |entry| entry.segment);
        let writing = state.writer.as_ref().map(|writer| writer.first_seq);
        let done: Vec<u64> =
            state.segments.keys().copied().filter(|&first| first < oldest_needed && Some(first) != writing).collect();
        for first in done {
            if let Some(path) = state.segments.remove(&first)
                && let Err(error) = std::fs::remove_file(&path)
            {
                tracing::warn!(segment = %path.display(), error = %error, "cannot delete a disk buffer segment");
            }
        }
    }

    /// Drops positions of files the sources no longer see, keeping the checkpoint small.
    pub fn forget_files(&self, keep: impl Fn(&crate::checkpoint::Fingerprint) -> bool) {
        self.lock().acked_positions.retain(|fingerprint, _| keep(fingerprint));
    }

    /// Wakes every waiter; pushes and `next` return from now on. Flushes the open segment.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        if let Some(writer) = &state.writer {
            let _ = writer.file.sync_data();
        }
        drop(state);
        self.room.notify_all();
        self.arrived.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// `[length][crc32][records u32][positions length u32][positions JSON][body]`.
fn encode_frame(records: u32, body: &[u8], positions: &Positions) -> Result<Vec<u8>, BufferError> {
    let positions = serde_json::to_vec(positions).map_err(BufferError::EncodePositions)?;
    let payload_length = 8 + positions.len() + body.len();
    let encoded_length =
        u32::try_from(payload_length).map_err(|_| BufferError::BatchTooLarge { bytes: payload_length })?;
    let mut frame = Vec::with_capacity(FRAME_HEADER + payload_length);
    frame.extend_from_slice(&encoded_length.to_le_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(&records.to_le_bytes());
    frame.extend_from_slice(&(positions.len() as u32).to_le_bytes());
    frame.extend_from_slice(&positions);
    frame.extend_from_slice(body);
    let crc = crc32fast::hash(&frame[FRAME_HEADER..]);
    frame[4..8].copy_from_slice(&crc.to_le_bytes());
    Ok(frame)
}

/// Splits a checked payload into (records, positions, body offset).
fn decode_payload(payload: &[u8]) -> Option<(u32, Positions, usize)> {
    let records = u32::from_le_bytes(payload.get(0..4)?.try_into().ok()?);
    let positions_length = u32::from_le_bytes(payload.get(4..8)?.try_into().ok()?) as usize;
    let positions = serde_json::from_slice(payload.get(8..8 + positions_length)?).ok()?;
    Some((records, positions, 8 + positions_length))
}

/// [`read_frame`] on the blocking pool: a batch can be megabytes of disk reads.
async fn read_off_runtime(path: PathBuf, offset: u64, length: u64) -> Result<Vec<u8>, BufferError> {
    tokio::task::spawn_blocking(move || read_frame(&path, offset, length)).await?
}

fn read_frame(path: &Path, offset: u64, length: u64) -> Result<Vec<u8>, BufferError> {
    let unreadable = |source| BufferError::ReadSegment { path: path.to_owned(), source };
    let file = File::open(path).map_err(unreadable)?;
    let mut frame = vec![0; length as usize];
    file.read_exact_at(&mut frame, offset).map_err(unreadable)?;
    let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
    if crc32fast::hash(&frame[FRAME_HEADER..]) != crc {
        return Err(BufferError::ChecksumMismatch { path: path.to_owned(), offset });
    }
    let (_, _, body_offset) = decode_payload(&frame[FRAME_HEADER..])
        .ok_or_else(|| BufferError::UndecodableFrame { path: path.to_owned(), offset })?;
    Ok(frame.split_off(FRAME_HEADER + body_offset))
}

/// The entries of one segment and whether it ended in a damaged frame. A damaged tail of the
/// last segment (a write cut by a crash) is cut off the file.
fn scan_segment(path: &Path, first_seq: u64, last: bool) -> Result<(Vec<Entry>, bool), BufferError> {
    let mut file = File::options()
        .read(true)
        .write(last)
        .open(path)
        .map_err(|source| BufferError::OpenSegment { path: path.to_owned(), source })?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(|source| BufferError::ReadSegment { path: path.to_owned(), source })?;
    let mut entries = Vec::new();
    let mut offset = 0usize;
    let mut damaged = false;
    while offset < bytes.len() {
        let frame = bytes.get(offset..offset + FRAME_HEADER).and_then(|header| {
            let length = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
            let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
            let payload = bytes.get(offset + FRAME_HEADER..offset + FRAME_HEADER + length)?;
            (crc32fast::hash(payload) == crc).then_some(())?;
            let (records, positions, _) = decode_payload(payload)?;
            Some((length, records, positions))
        });
        let Some((length, records, positions)) = frame else {
            damaged = true;
            break;
        };
        let seq = first_seq + entries.len() as u64;
        let frame_length = (FRAME_HEADER + length) as u64;
        entries.push(Entry {
            seq,
            segment: first_seq,
            offset: offset as u64,
            length: frame_length,
            records,
            positions,
        });
        offset += FRAME_HEADER + length;
    }
    if damaged && last {
        let cut = |source| BufferError::TruncateSegment { path: path.to_owned(), source };
        file.set_len(offset as u64).map_err(cut)?;
        file.seek(SeekFrom::End(0)).map_err(cut)?;
    }
    Ok((entries, damaged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::{FilePosition, Fingerprint};
    use std::sync::Arc;

    fn positions(offset: u64) -> Positions {
        Positions::from([(Fingerprint(9), FilePosition { path: "app.log".into(), offset })])
    }

    fn segment_count(directory: &Path) -> usize {
        std::fs::read_dir(directory)
            .unwrap()
            .filter(|item| item.as_ref().unwrap().path().extension().is_some_and(|e| e == "seg"))
            .count()
    }

    #[tokio::test]
    async fn entries_come_back_in_order_and_survive_a_restart_until_acknowledged() {
        let directory = tempfile::tempdir().unwrap();
        let buffer = Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap();
        assert!(!buffer.resumed());
        for index in 1..=3u64 {
            assert!(
                buffer.push_blocking(index as u32, format!("batch {index}").as_bytes(), positions(index * 10)).unwrap()
            );
        }
        let first = buffer.next(0).await.unwrap();
        assert_eq!((first.seq, first.records, first.body.as_slice()), (1, 1, &b"batch 1"[..]));
        buffer.ack(1);
        drop(buffer);

        let buffer = Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap();
        assert!(buffer.resumed());
        // Files resume after the last buffered batch; the acknowledged position is older.
        assert_eq!(buffer.resume_positions()[&Fingerprint(9)].offset, 30);
        let second = buffer.next(0).await.unwrap();
        assert_eq!((second.seq, second.body.as_slice()), (2, &b"batch 2"[..]));
        buffer.ack(3);
        assert_eq!(buffer.depth(), (0, 0));
        assert!(buffer.push_blocking(1, b"batch 4", positions(40)).unwrap());
        assert_eq!(buffer.next(3).await.unwrap().seq, 4);
    }

    #[tokio::test]
    async fn a_torn_frame_is_cut_off_and_its_lines_are_read_again() {
        let directory = tempfile::tempdir().unwrap();
        let buffer = Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap();
        buffer.push_blocking(1, b"whole", positions(10)).unwrap();
        buffer.push_blocking(1, b"torn by a crash", positions(20)).unwrap();
        drop(buffer);
        let segment = directory.path().join(format!("{:020}.seg", 1));
        let length = std::fs::metadata(&segment).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&segment).unwrap().set_len(length - 3).unwrap();

        let buffer = Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap();
        assert_eq!(buffer.stats.damaged_frames.load(Ordering::Relaxed), 1);
        assert_eq!(buffer.resume_positions()[&Fingerprint(9)].offset, 10);
        assert_eq!(buffer.next(0).await.unwrap().body, b"whole");
        buffer.push_blocking(1, b"again", positions(20)).unwrap();
        let again = buffer.next(1).await.unwrap();
        assert_eq!((again.seq, again.body.as_slice()), (2, &b"again"[..]));
    }

    #[tokio::test]
    async fn a_full_buffer_blocks_until_acknowledged_or_drops_the_oldest() {
        let directory = tempfile::tempdir().unwrap();
        let body = vec![b'x'; 400];
        let buffer = Arc::new(Buffer::open(directory.path(), 1000, WhenFull::Block).unwrap());
        buffer.push_blocking(1, &body, positions(1)).unwrap();
        buffer.push_blocking(1, &body, positions(2)).unwrap();
        let pusher = {
            let buffer = buffer.clone();
            let body = body.clone();
            std::thread::spawn(move || buffer.push_blocking(1, &body, positions(3)).unwrap())
        };
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert!(!pusher.is_finished(), "a full buffer took a batch");
        assert_eq!(buffer.stats.blocked_pushes.load(Ordering::Relaxed), 1);
        buffer.ack(1);
        assert!(pusher.join().unwrap());
        assert_eq!(buffer.depth().1, 2);

        let directory = tempfile::tempdir().unwrap();
        let buffer = Buffer::open(directory.path(), 1000, WhenFull::DropOldest).unwrap();
        for index in 1..=5 {
            buffer.push_blocking(10, &body, positions(index)).unwrap();
        }
        assert_eq!(buffer.depth().1, 2);
        assert_eq!(buffer.stats.dropped_batches.load(Ordering::Relaxed), 3);
        assert_eq!(buffer.stats.dropped_records.load(Ordering::Relaxed), 30);
        assert_eq!(buffer.next(0).await.unwrap().seq, 4);
    }

    #[tokio::test]
    async fn acknowledged_segments_are_deleted() {
        let directory = tempfile::tempdir().unwrap();
        let buffer = Buffer::open(directory.path(), 1 << 20, WhenFull::Block).unwrap();
        let body = vec![b'y'; 100 << 10];
        for index in 1..=4 {
            buffer.push_blocking(1, &body, positions(index)).unwrap();
        }
        assert!(segment_count(directory.path()) >= 2);
        buffer.ack(4);
        assert_eq!(segment_count(directory.path()), 1, "only the segment being written stays");
        buffer.close();
        assert!(buffer.next(4).await.is_none());
        assert!(!buffer.push_blocking(1, b"late", positions(5)).unwrap());
    }
}
