//! The file source: follows every file matched by a source's globs, turns its lines into
//! records and pushes them, batched and compressed, into the logs disk buffer together with
//! how far into each file they reach.
//!
//! Files are known by a fingerprint of their first line ([`Fingerprint`]), not by their path
//! or inode alone:
//! - **rename rotation**: the open handle is read to its end; when the renamed file still
//!   matches a glob it keeps its identity and position; otherwise it is let go once it has not
//!   grown for `tail.rotate_wait_ms`;
//! - **copy-truncate**: the shrunk (or rewritten) file gets a new identity and is read from its
//!   start, and the copy, when a glob matches it, continues where the original was left;
//! - **deletion**: a deleted file is still read through its handle to its end;
//! - **restarts**: a file resumes where the buffered and acknowledged batches reach
//!   ([`Buffer::resume_positions`]), whatever its name is now.
//!
//! A position never counts a line that is not in a batch yet (an unfinished line, a multiline
//! event still gathering), so a restart reads those again rather than losing them.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use regex::Regex;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;
use vigil_proto::level::detect_level;

use crate::buffer::{Buffer, BufferError};
use crate::checkpoint::{FINGERPRINT_BYTES, FilePosition, Fingerprint, Positions};
use crate::clock::now_nanos;
use crate::config::{BatchConfig, BuildParserError, FileSourceConfig, LongLines, MultilineConfig, StartAt, TailConfig};
use crate::error_chain::ErrorChain;
use crate::parse::{Encoder, Line, Parser};
use crate::stats::SourceStats;

const READ_CHUNK: usize = 256 << 10;
const ZSTD_LEVEL: i32 = 1;
/// How long the position of a file whose content was replaced is remembered, for its copy.
const ORPHAN_MEMORY: Duration = Duration::from_secs(300);

/// Why a file source cannot start, or a pass over its files failed.
#[derive(Debug, thiserror::Error)]
pub enum FileSourceError {
    #[error("exclude: {pattern:?} is not a glob")]
    ExcludePattern { pattern: String, source: glob::PatternError },
    #[error(transparent)]
    Parser(#[from] BuildParserError),
    #[error("multiline.start is not a regex")]
    MultilineStart(#[source] regex::Error),
    #[error("cannot create a zstd compressor")]
    CreateCompressor(#[source] std::io::Error),
    #[error("cannot read {}", .path.display())]
    ReadFile { path: PathBuf, source: std::io::Error },
    #[error("cannot read the metadata of {}", .path.display())]
    ReadMetadata { path: PathBuf, source: std::io::Error },
    #[error("cannot compress a batch")]
    Compress(#[source] std::io::Error),
    #[error(transparent)]
    Buffer(#[from] BufferError),
    #[error("the buffer is closed")]
    BufferClosed,
}

/// When each file (by fingerprint) was last followed by any file source, so that the
/// checkpoint forgets files that are gone.
#[derive(Debug, Default)]
pub struct SeenFiles {
    seen: Mutex<HashMap<Fingerprint, Instant>>,
}

impl SeenFiles {
    /// Marks these files followed now.
    pub fn touch(&self, fingerprints: impl IntoIterator<Item = Fingerprint>) {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for fingerprint in fingerprints {
            seen.insert(fingerprint, now);
        }
    }

    /// Whether `fingerprint` was followed within `window` (or is unknown to this run, which
    /// started less than `window` ago: `started`).
    pub fn recent(&self, fingerprint: &Fingerprint, window: Duration, started: Instant) -> bool {
        let seen = self.seen.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match seen.get(fingerprint) {
            Some(at) => at.elapsed() < window,
            None => started.elapsed() < window,
        }
    }
}

pub struct FileSource {
    config: FileSourceConfig,
    tail: TailConfig,
    batch_config: BatchConfig,
    exclude: Vec<glob::Pattern>,
    parser: Parser,
    multiline: Option<(Regex, MultilineConfig)>,
    encoder: Encoder,
    labels: Map<String, Value>,
    buffer: Arc<Buffer>,
    stats: Arc<SourceStats>,
    seen: Arc<SeenFiles>,
    /// Where files resume after a restart.
    resume: Positions,
    /// Files found on the first pass of an agent that never ran here start at their end.
    first_pass_at_end: bool,
    compressor: zstd::bulk::Compressor<'static>,
}

/// One followed file (one open handle).
struct Tracked {
    file: File,
    path: PathBuf,
    attributes_head: Vec<u8>,
    fingerprint: Option<Fingerprint>,
    /// The next byte to read.
    offset: u64,
    /// The file's length when last looked at.
    length: u64,
    /// Bytes after the last newline, waiting for the rest of their line.
    partial: Vec<u8>,
    /// The rest of a truncated line is being skipped.
    discarding: bool,
    pending: Option<Event>,
    /// Matched by the globs in this pass.
    matched: bool,
    idle_since: Option<Instant>,
}

/// A multiline event being gathered.
struct Event {
    /// Where its first line starts in the file.
    start: u64,
    text: String,
    lines: usize,
    last: Instant,
}

impl Tracked {
    /// The first byte not in a batch yet.
    fn safe_offset(&self) -> u64 {
        match &self.pending {
            Some(event) => event.start,
            None => self.offset - self.partial.len() as u64,
        }
    }
}

/// The records gathered for the next push.
#[derive(Default)]
struct Batch {
    body: Vec<u8>,
    records: u32,
    started: Option<Instant>,
    /// Positions changed without records (a file found, one let go): worth a push anyway.
    moved: bool,
    /// Final positions of files let go or replaced since the last push.
    finished: Positions,
}

impl FileSource {
    pub fn new(
        config: FileSourceConfig,
        host: &str,
        tail: TailConfig,
        batch_config: BatchConfig,
        buffer: Arc<Buffer>,
        stats: Arc<SourceStats>,
        seen: Arc<SeenFiles>,
    ) -> Result<Self, FileSourceError> {
        let exclude = config
            .exclude
            .iter()
            .map(|pattern| {
                glob::Pattern::new(pattern)
                    .map_err(|source| FileSourceError::ExcludePattern { pattern: pattern.clone(), source })
            })
            .collect::<Result<_, _>>()?;
        let parser = config.parser()?;
        let multiline = match &config.multiline {
            Some(multiline) => {
                Some((Regex::new(&multiline.start).map_err(FileSourceError::MultilineStart)?, multiline.clone()))
            }
            None => None,
        };
        let labels = config.labels.iter().map(|(key, value)| (key.clone(), Value::String(value.clone()))).collect();
        let resume = buffer.resume_positions();
        let first_pass_at_end = tail.start_at == StartAt::End && !buffer.resumed();
        Ok(Self {
            encoder: Encoder::new(&config.service, host),
            config,
            tail,
            batch_config,
            exclude,
            parser,
            multiline,
            labels,
            buffer,
            stats,
            seen,
            resume,
            first_pass_at_end,
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL).map_err(FileSourceError::CreateCompressor)?,
        })
    }

    fn matching_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .config
            .include
            .iter()
            .filter_map(|pattern| glob::glob(pattern).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|path| !self.exclude.iter().any(|pattern| pattern.matches_path(path)))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// Makes the first pass over the files: those that exist are opened (from their end on a
    /// first start), so that lines appended from now on are read. [`StartedFileSource::run`]
    /// follows them.
    pub fn start(mut self) -> Result<StartedFileSource, FileSourceError> {
        let mut state = Follow::default();
        self.poll(&mut state)?;
        Ok(StartedFileSource { source: self, state })
    }
}

/// A file source after its first pass.
pub struct StartedFileSource {
    source: FileSource,
    state: Follow,
}

impl StartedFileSource {
    /// Follows the files until `shutdown`; blocks the calling thread. What is batched but not
    /// pushed is pushed before returning.
    pub fn run(self, shutdown: &CancellationToken) {
        let Self { source: mut this, mut state } = self;
        let interval = Duration::from_millis(this.tail.poll_interval_ms);
        while !shutdown.is_cancelled() {
            std::thread::sleep(interval);
            if let Err(error) = this.poll(&mut state) {
                tracing::error!(source = %this.config.name, error = %ErrorChain(&error), "file source failed a pass");
            }
        }
        if let Err(error) = this.push(&mut state.batch, &state.tracked) {
            tracing::debug!(source = %this.config.name, error = %ErrorChain(&error), "last batch not buffered, read again on the next start");
        }
    }
}

/// A source's files and its unpushed batch.
#[derive(Default)]
pub(crate) struct Follow {
    tracked: HashMap<(u64, u64), Tracked>,
    orphans: Vec<(Fingerprint, u64, Instant)>,
    batch: Batch,
    passes: u64,
}

impl FileSource {
    /// One pass: finds files, reads what is new, lets go of files that are done, pushes the
    /// batch when it is due.
    pub(crate) fn poll(&mut self, state: &mut Follow) -> Result<(), FileSourceError> {
        let now = Instant::now();
        let first_pass = state.passes == 0;
        state.passes += 1;
        state.orphans.retain(|(_, _, since)| since.elapsed() < ORPHAN_MEMORY);
        for tracked in state.tracked.values_mut() {
            tracked.matched = false;
        }
        let mut new_files = Vec::new();
        for path in self.matching_paths() {
            let Ok(metadata) = std::fs::metadata(&path) else { continue };
            if !metadata.is_file() {
                continue;
            }
            let id = (metadata.dev(), metadata.ino());
            match state.tracked.get_mut(&id) {
                Some(tracked) => {
                    tracked.matched = true;
                    if tracked.path != path {
                        tracked.attributes_head = Encoder::attributes_head(&path.display().to_string(), &self.labels);
                        tracked.path = path;
                    }
                }
                None => new_files.push((path, id)),
            }
        }
        // Files already followed first: a rotated file's last lines come before the new file's.
        let mut ids: Vec<(u64, u64)> = state.tracked.keys().copied().collect();
        ids.sort_by(|a, b| state.tracked[a].path.cmp(&state.tracked[b].path));
        for id in ids {
            let mut tracked = state.tracked.remove(&id).expect("a tracked file");
            self.check_replaced(&mut tracked, &mut state.batch, &mut state.orphans)?;
            if tracked.fingerprint.is_none() {
                self.identify(&mut tracked, &state.tracked, &state.orphans, false, &mut state.batch)?;
            }
            let grew = self.read(&mut tracked, &mut state.batch, &state.tracked)?;
            if tracked.matched || grew {
                tracked.idle_since = None;
            } else if tracked.idle_since.get_or_insert(now).elapsed() >= Duration::from_millis(self.tail.rotate_wait_ms)
            {
                self.let_go(tracked, &mut state.batch)?;
                continue;
            }
            state.tracked.insert(id, tracked);
        }
        for (path, id) in new_files {
            let Ok(file) = File::open(&path) else { continue };
            let mut tracked = Tracked {
                file,
                attributes_head: Encoder::attributes_head(&path.display().to_string(), &self.labels),
                path,
                fingerprint: None,
                offset: 0,
                length: 0,
                partial: Vec::new(),
                discarding: false,
                pending: None,
                matched: true,
                idle_since: None,
            };
            tracing::debug!(source = %self.config.name, file = %tracked.path.display(), "following file");
            self.identify(&mut tracked, &state.tracked, &state.orphans, first_pass, &mut state.batch)?;
            self.read(&mut tracked, &mut state.batch, &state.tracked)?;
            state.tracked.insert(id, tracked);
        }
        self.flush_stale_events(state)?;
        self.stats.files.store(state.tracked.len() as u64, Ordering::Relaxed);
        self.seen.touch(state.tracked.values().filter_map(|tracked| tracked.fingerprint));
        let due = state
            .batch
            .started
            .is_some_and(|started| started.elapsed() >= Duration::from_millis(self.batch_config.max_wait_ms))
            || (state.batch.moved && state.batch.records == 0);
        if due {
            self.push(&mut state.batch, &state.tracked)?;
        }
        Ok(())
    }

    /// Gives the file its identity and starting offset once its first line is complete.
    fn identify(
        &mut self,
        tracked: &mut Tracked,
        others: &HashMap<(u64, u64), Tracked>,
        orphans: &[(Fingerprint, u64, Instant)],
        first_pass: bool,
        batch: &mut Batch,
    ) -> Result<(), FileSourceError> {
        let mut head = vec![0; FINGERPRINT_BYTES];
        let read = read_head(tracked, &mut head)?;
        let Some(fingerprint) = Fingerprint::of_head(&head[..read]) else { return Ok(()) };
        let length = file_length(tracked)?;
        // A copy of a followed file, of a file whose content was replaced, or of one known
        // before a restart continues where that one was; anything else is new.
        let known = others
            .values()
            .filter(|other| other.fingerprint == Some(fingerprint))
            .map(Tracked::safe_offset)
            .chain(orphans.iter().filter(|orphan| orphan.0 == fingerprint).map(|orphan| orphan.1))
            .chain(self.resume.get(&fingerprint).map(|position| position.offset))
            .max();
        let offset = match known {
            Some(offset) => offset.min(length),
            None if first_pass && self.first_pass_at_end => length,
            None => 0,
        };
        tracked.fingerprint = Some(fingerprint);
        tracked.offset = offset;
        tracked.length = length;
        batch.moved = true;
        Ok(())
    }

    /// A file that shrank, or whose first line changed, holds new content: the old content's
    /// position is kept for a copy of it, and the file is read again from its start.
    fn check_replaced(
        &mut self,
        tracked: &mut Tracked,
        batch: &mut Batch,
        orphans: &mut Vec<(Fingerprint, u64, Instant)>,
    ) -> Result<(), FileSourceError> {
        let Some(fingerprint) = tracked.fingerprint else { return Ok(()) };
        let length = file_length(tracked)?;
        if length == tracked.length {
            return Ok(());
        }
        let replaced = length < tracked.offset || {
            let mut head = vec![0; FINGERPRINT_BYTES];
            let read = read_head(tracked, &mut head)?;
            Fingerprint::of_head(&head[..read]) != Some(fingerprint)
        };
        if !replaced {
            return Ok(());
        }
        tracing::info!(source = %self.config.name, file = %tracked.path.display(), "file truncated or replaced, reading it from its start");
        self.flush_event(tracked, batch)?;
        let offset = tracked.safe_offset();
        orphans.push((fingerprint, offset, Instant::now()));
        batch.finished.insert(fingerprint, FilePosition { path: tracked.path.clone(), offset });
        tracked.fingerprint = None;
        tracked.offset = 0;
        tracked.length = 0;
        tracked.partial.clear();
        tracked.discarding = false;
        Ok(())
    }

    /// Reads what is new; `true` when something was.
    fn read(
        &mut self,
        tracked: &mut Tracked,
        batch: &mut Batch,
        others: &HashMap<(u64, u64), Tracked>,
    ) -> Result<bool, FileSourceError> {
        if tracked.fingerprint.is_none() {
            return Ok(false);
        }
        let mut chunk = vec![0u8; READ_CHUNK];
        let mut grew = false;
        loop {
            let read = match tracked.file.read_at(&mut chunk, tracked.offset) {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(file = %tracked.path.display(), error = %error, "cannot read file");
                    break;
                }
            };
            if read == 0 {
                break;
            }
            grew = true;
            let timestamp = now_nanos();
            self.stats.bytes.fetch_add(read as u64, Ordering::Relaxed);
            let mut line_start = tracked.offset - tracked.partial.len() as u64;
            tracked.offset += read as u64;
            let mut rest = &chunk[..read];
            while let Some(newline) = memchr::memchr(b'\n', rest) {
                let line_end = line_start + tracked.partial.len() as u64 + newline as u64 + 1;
                if tracked.partial.is_empty() {
                    self.complete_line(tracked, &rest[..newline], line_start, timestamp, batch, others)?;
                } else {
                    let mut line = std::mem::take(&mut tracked.partial);
                    line.extend_from_slice(&rest[..newline]);
                    self.complete_line(tracked, &line, line_start, timestamp, batch, others)?;
                }
                rest = &rest[newline + 1..];
                line_start = line_end;
            }
            tracked.partial.extend_from_slice(rest);
            // A line without end is not held in memory without bound.
            if tracked.partial.len() > self.tail.max_line_bytes {
                let line = std::mem::take(&mut tracked.partial);
                match self.tail.long_lines {
                    LongLines::Truncate => {
                        self.complete_line(tracked, &line, line_start, timestamp, batch, others)?;
                        tracked.discarding = true;
                    }
                    LongLines::Split => {
                        let whole = line.len() - line.len() % self.tail.max_line_bytes;
                        self.complete_line(tracked, &line[..whole], line_start, timestamp, batch, others)?;
                        tracked.partial = line[whole..].to_vec();
                    }
                }
            }
            if read < READ_CHUNK {
                break;
            }
        }
        tracked.length = tracked.file.metadata().map_or(tracked.offset, |metadata| metadata.len());
        Ok(grew)
    }

    /// One complete line (without its newline) that starts at `start` in the file.
    fn complete_line(
        &mut self,
        tracked: &mut Tracked,
        line: &[u8],
        start: u64,
        timestamp: i64,
        batch: &mut Batch,
        others: &HashMap<(u64, u64), Tracked>,
    ) -> Result<(), FileSourceError> {
        if std::mem::take(&mut tracked.discarding) {
            return Ok(());
        }
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        self.stats.lines.fetch_add(1, Ordering::Relaxed);
        let max = self.tail.max_line_bytes;
        if line.len() > max {
            match self.tail.long_lines {
                LongLines::Truncate => {
                    self.stats.truncated.fetch_add(1, Ordering::Relaxed);
                    let mut text = String::from_utf8_lossy(&line[..max]).into_owned();
                    text.push('…');
                    return self.event_line(tracked, &text, start, timestamp, batch, others);
                }
                LongLines::Split => {
                    self.stats.split.fetch_add(1, Ordering::Relaxed);
                    for (index, piece) in line.chunks(max).enumerate() {
                        let text = String::from_utf8_lossy(piece);
                        self.event_line(tracked, &text, start + (index * max) as u64, timestamp, batch, others)?;
                    }
                    return Ok(());
                }
            }
        }
        if line.is_empty() && self.multiline.is_none() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(line);
        if matches!(text, Cow::Owned(_)) {
            self.stats.invalid_utf8.fetch_add(1, Ordering::Relaxed);
        }
        self.event_line(tracked, &text, start, timestamp, batch, others)
    }

    /// A line, through multiline grouping when configured.
    fn event_line(
        &mut self,
        tracked: &mut Tracked,
        text: &str,
        start: u64,
        timestamp: i64,
        batch: &mut Batch,
        others: &HashMap<(u64, u64), Tracked>,
    ) -> Result<(), FileSourceError> {
        let Some((start_pattern, multiline)) = &self.multiline else {
            return self.record(&tracked.attributes_head, text, timestamp, batch, others);
        };
        let begins = start_pattern.is_match(text);
        match &mut tracked.pending {
            Some(event) if !begins && event.lines < multiline.max_lines => {
                event.text.push('\n');
                event.text.push_str(text);
                event.lines += 1;
                event.last = Instant::now();
            }
            _ => {
                self.flush_event(tracked, batch)?;
                if text.is_empty() {
                    return Ok(());
                }
                tracked.pending = Some(Event { start, text: text.to_owned(), lines: 1, last: Instant::now() });
            }
        }
        Ok(())
    }

    /// Sends the multiline event being gathered, if any.
    fn flush_event(&mut self, tracked: &mut Tracked, batch: &mut Batch) -> Result<(), FileSourceError> {
        if let Some(event) = tracked.pending.take() {
            self.record(&tracked.attributes_head, &event.text, now_nanos(), batch, &HashMap::new())?;
        }
        Ok(())
    }

    fn flush_stale_events(&mut self, state: &mut Follow) -> Result<(), FileSourceError> {
        let Some((_, multiline)) = &self.multiline else { return Ok(()) };
        let timeout = Duration::from_millis(multiline.timeout_ms);
        let ids: Vec<(u64, u64)> = state
            .tracked
            .iter()
            .filter(|(_, tracked)| tracked.pending.as_ref().is_some_and(|event| event.last.elapsed() >= timeout))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let mut tracked = state.tracked.remove(&id).expect("a tracked file");
            self.flush_event(&mut tracked, &mut state.batch)?;
            state.tracked.insert(id, tracked);
        }
        Ok(())
    }

    /// Encodes one record into the batch, pushing the batch when it is full.
    fn record(
        &mut self,
        attributes_head: &[u8],
        text: &str,
        read_at: i64,
        batch: &mut Batch,
        others: &HashMap<(u64, u64), Tracked>,
    ) -> Result<(), FileSourceError> {
        if self.parser.is_plain() {
            let level = Some(detect_level(text)).filter(|level| *level != "unknown");
            let line = Line { level, message: text, attributes: None, failed: false };
            self.encoder.encode_line(&mut batch.body, read_at, &line, attributes_head);
        } else {
            let parsed = self.parser.parse(text);
            if parsed.failed {
                self.stats.parse_errors.fetch_add(1, Ordering::Relaxed);
            }
            self.encoder.encode(&mut batch.body, parsed.timestamp.unwrap_or(read_at), &parsed, attributes_head);
        }
        self.stats.records.fetch_add(1, Ordering::Relaxed);
        batch.records += 1;
        batch.started.get_or_insert_with(Instant::now);
        if batch.records as usize >= self.batch_config.max_records || batch.body.len() >= self.batch_config.max_bytes {
            // A full batch in the middle of reading a file: the file being read is not in
            // `others`, so its position stays where the previous push left it and a restart
            // reads its lines of this batch again — at most this one batch duplicated.
            self.push(batch, others)?;
        }
        Ok(())
    }

    /// Compresses the batch and pushes it into the buffer with the positions it reaches.
    fn push(&mut self, batch: &mut Batch, tracked: &HashMap<(u64, u64), Tracked>) -> Result<(), FileSourceError> {
        if batch.records == 0 && !batch.moved {
            return Ok(());
        }
        let mut positions = std::mem::take(&mut batch.finished);
        for file in tracked.values() {
            if let Some(fingerprint) = file.fingerprint {
                positions.insert(fingerprint, FilePosition { path: file.path.clone(), offset: file.safe_offset() });
            }
        }
        let body = if batch.records == 0 {
            Vec::new()
        } else {
            self.compressor.compress(&batch.body).map_err(FileSourceError::Compress)?
        };
        if !self.buffer.push_blocking(batch.records, &body, positions)? {
            return Err(FileSourceError::BufferClosed);
        }
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        batch.body.clear();
        batch.records = 0;
        batch.started = None;
        batch.moved = false;
        Ok(())
    }

    /// Done with a file that left the globs and stopped growing: its unfinished line and event
    /// are sent, and its final position recorded.
    fn let_go(&mut self, mut tracked: Tracked, batch: &mut Batch) -> Result<(), FileSourceError> {
        tracing::debug!(source = %self.config.name, file = %tracked.path.display(), "letting go of file");
        if !tracked.partial.is_empty() && !tracked.discarding {
            let line = std::mem::take(&mut tracked.partial);
            let start = tracked.offset - line.len() as u64;
            self.complete_line(&mut tracked, &line, start, now_nanos(), batch, &HashMap::new())?;
        }
        self.flush_event(&mut tracked, batch)?;
        if let Some(fingerprint) = tracked.fingerprint {
            batch.finished.insert(fingerprint, FilePosition { path: tracked.path.clone(), offset: tracked.offset });
            batch.moved = true;
        }
        Ok(())
    }
}

/// Reads the start of a followed file into `head`; returns how many bytes it holds.
fn read_head(tracked: &Tracked, head: &mut [u8]) -> Result<usize, FileSourceError> {
    read_at_most(&tracked.file, head, 0)
        .map_err(|source| FileSourceError::ReadFile { path: tracked.path.clone(), source })
}

fn file_length(tracked: &Tracked) -> Result<u64, FileSourceError> {
    let metadata = tracked
        .file
        .metadata()
        .map_err(|source| FileSourceError::ReadMetadata { path: tracked.path.clone(), source })?;
    Ok(metadata.len())
}

fn read_at_most(file: &File, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read_at(&mut buffer[filled..], offset + filled as u64)? {
            0 => break,
            read => filled += read,
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::WhenFull;
    use std::io::Write;
    use std::path::Path;

    struct Harness {
        _directory: tempfile::TempDir,
        logs: PathBuf,
        buffer_dir: PathBuf,
        buffer: Arc<Buffer>,
        source: FileSource,
        state: Follow,
        acked: u64,
    }

    impl Harness {
        fn new(configure: impl FnOnce(&mut FileSourceConfig, &mut TailConfig)) -> Self {
            let directory = tempfile::tempdir().unwrap();
            let logs = directory.path().join("logs");
            std::fs::create_dir(&logs).unwrap();
            let buffer_dir = directory.path().join("buffer");
            let mut config = FileSourceConfig::new("test", "svc", vec![format!("{}/*.log*", logs.display())]);
            config.exclude = vec![format!("{}/skip*", logs.display())];
            let mut tail = TailConfig { poll_interval_ms: 10, rotate_wait_ms: 0, ..TailConfig::default() };
            configure(&mut config, &mut tail);
            let buffer = Arc::new(Buffer::open(&buffer_dir, 1 << 20, WhenFull::Block).unwrap());
            let source = Self::source(&config, &tail, &buffer);
            Harness { _directory: directory, logs, buffer_dir, buffer, source, state: Follow::default(), acked: 0 }
        }

        fn source(config: &FileSourceConfig, tail: &TailConfig, buffer: &Arc<Buffer>) -> FileSource {
            let batch = BatchConfig { max_wait_ms: 0, ..BatchConfig::default() };
            let stats = Arc::new(SourceStats::default());
            FileSource::new(config.clone(), "host-a", tail.clone(), batch, buffer.clone(), stats, Arc::default())
                .unwrap()
        }

        /// Restarts the source on what the buffer holds, as a restarted agent would.
        fn restart(&mut self) {
            let config = self.source.config.clone();
            let tail = self.source.tail.clone();
            self.buffer = Arc::new(Buffer::open(&self.buffer_dir, 1 << 20, WhenFull::Block).unwrap());
            self.source = Self::source(&config, &tail, &self.buffer);
            self.state = Follow::default();
        }

        /// One pass, then every record pushed since the last call, acknowledged.
        async fn messages(&mut self) -> Vec<String> {
            self.source.poll(&mut self.state).unwrap();
            let mut messages = Vec::new();
            while self.buffer.depth().1 > 0 {
                let pending = self.buffer.next(self.acked).await.unwrap();
                self.acked = pending.seq;
                self.buffer.ack(pending.seq);
                if pending.records == 0 {
                    continue;
                }
                let body = zstd::bulk::decompress(&pending.body, 1 << 24).unwrap();
                for line in body.split(|&byte| byte == b'\n').filter(|line| !line.is_empty()) {
                    let record: vigil_proto::LogRecord = serde_json::from_slice(line).unwrap();
                    messages.push(record.message);
                }
            }
            messages
        }

        fn path(&self, name: &str) -> PathBuf {
            self.logs.join(name)
        }
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    #[tokio::test]
    async fn new_lines_rotation_by_rename_and_copy_truncate() {
        let mut harness = Harness::new(|_, _| {});
        let app = harness.path("app.log");
        append(&app, "old line\n");
        assert!(harness.messages().await.is_empty(), "a first start reads existing files from their end");

        append(&app, "first\nsecond\nhalf");
        assert_eq!(harness.messages().await, ["first", "second"]);
        append(&app, " done\r\n");
        append(&harness.path("skipped.log"), "excluded\n");
        append(&harness.path("new.log"), "from a brand new file\n");
        assert_eq!(harness.messages().await, ["half done", "from a brand new file"]);

        // Rename rotation: the old file's last lines first, then the new file's.
        append(&app, "last of old\n");
        std::fs::rename(&app, harness.path("app.log.1")).unwrap();
        append(&app, "new file\n");
        assert_eq!(harness.messages().await, ["last of old", "new file"]);

        // Copy-truncate: lines not read before the copy are read from the copy; the truncated
        // file is read from its start.
        append(&app, "copied but unread\n");
        std::fs::copy(&app, harness.path("app.log.2")).unwrap();
        std::fs::write(&app, "").unwrap();
        append(&app, "after truncation\n");
        let mut messages = harness.messages().await;
        messages.sort();
        assert_eq!(messages, ["after truncation", "copied but unread"]);
    }

    #[tokio::test]
    async fn restarts_resume_by_fingerprint_whatever_the_name() {
        let mut harness = Harness::new(|_, tail| tail.start_at = StartAt::Beginning);
        let app = harness.path("app.log");
        append(&app, "one\ntwo\n");
        assert_eq!(harness.messages().await, ["one", "two"]);
        append(&app, "three\nunfinished");
        harness.restart();
        assert_eq!(harness.messages().await, ["three"]);
        // Renamed while the agent was down, and a new file took its name.
        append(&app, " line\n");
        harness.restart();
        std::fs::rename(&app, harness.path("app.log.1")).unwrap();
        append(&app, "fresh\n");
        assert_eq!(harness.messages().await, ["fresh", "unfinished line"]);
        harness.restart();
        assert!(harness.messages().await.is_empty(), "nothing is read twice");
    }

    #[tokio::test]
    async fn deleted_files_are_read_to_their_end_then_let_go() {
        let mut harness = Harness::new(|_, _| {});
        let app = harness.path("app.log");
        append(&app, "header\n");
        harness.messages().await;
        let mut writer = std::fs::OpenOptions::new().append(true).open(&app).unwrap();
        writer.write_all(b"written before the delete\n").unwrap();
        std::fs::remove_file(&app).unwrap();
        writer.write_all(b"and after").unwrap();
        assert_eq!(harness.messages().await, ["written before the delete"]);
        assert_eq!(harness.messages().await, ["and after"], "the unfinished line is sent when the file is let go");
        assert!(harness.state.tracked.is_empty());
    }

    #[tokio::test]
    async fn long_lines_invalid_utf8_and_multiline_events() {
        let mut harness = Harness::new(|_, tail| {
            tail.max_line_bytes = 8;
            tail.start_at = StartAt::Beginning;
        });
        append(&harness.path("a.log"), "short\n0123456789abc\nok\n");
        let mut bytes = b"bad \xff byte\n".to_vec();
        bytes.extend_from_slice(&[b'z'; 20]);
        bytes.extend_from_slice(b"\nend\n");
        std::fs::write(harness.path("b.log"), bytes).unwrap();
        let messages = harness.messages().await;
        assert_eq!(messages, ["short", "01234567…", "ok", "bad \u{fffd} by…", "zzzzzzzz…", "end"]);
        assert_eq!(harness.source.stats.truncated.load(Ordering::Relaxed), 3);
        assert_eq!(harness.source.stats.invalid_utf8.load(Ordering::Relaxed), 0, "counted only when not truncated");

        let mut harness = Harness::new(|_, tail| {
            tail.max_line_bytes = 8;
            tail.start_at = StartAt::Beginning;
            tail.long_lines = LongLines::Split;
        });
        append(&harness.path("a.log"), &format!("0123456789abc\n{}", "z".repeat(20)));
        assert_eq!(harness.messages().await, ["01234567", "89abc", "zzzzzzzz", "zzzzzzzz"]);
        append(&harness.path("a.log"), "\n");
        assert_eq!(harness.messages().await, ["zzzz"]);

        let mut harness = Harness::new(|config, tail| {
            tail.start_at = StartAt::Beginning;
            config.multiline = Some(MultilineConfig { start: r"^\S".to_owned(), timeout_ms: 60_000, max_lines: 3 });
        });
        let log = harness.path("java.log");
        append(&log, "ERROR boom\n  at a()\n  at b()\n  at x()\nINFO next\n");
        assert_eq!(harness.messages().await, ["ERROR boom\n  at a()\n  at b()", "  at x()"]);
        // The event still gathering is read again after a restart, not lost.
        harness.restart();
        append(&log, "  at c()\nINFO last\n");
        assert_eq!(harness.messages().await, ["INFO next\n  at c()"]);
    }
}
