//! The file source: follows every file matched by a source's globs and emits each complete new
//! line as a log record.
//!
//! Files present when the agent starts are read from their end (new lines only); files that
//! appear later are read from their beginning. A file is followed through its open handle, so a
//! rename-rotated file is read to its end before the new file at the same path is opened; a
//! file that shrinks (copy-truncate) is read again from its start.
//!
//! Not yet here: checkpoints across restarts, content fingerprints, multiline grouping.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use vigil_proto::{LogRecord, Timestamp};

use crate::config::{FileSourceConfig, TailConfig};
use vigil_proto::level::detect_level;

const READ_CHUNK: usize = 64 << 10;

pub struct FileSource {
    config: FileSourceConfig,
    host: String,
    tail: TailConfig,
    include: Vec<String>,
    exclude: Vec<glob::Pattern>,
}

/// One followed file.
struct Followed {
    file: File,
    /// (device, inode) of the open handle.
    identity: (u64, u64),
    offset: u64,
    /// Bytes after the last newline, waiting for the rest of their line.
    partial: Vec<u8>,
}

impl FileSource {
    pub fn new(config: FileSourceConfig, host: String, tail: TailConfig) -> anyhow::Result<Self> {
        let exclude = config.exclude.iter().map(|pattern| glob::Pattern::new(pattern)).collect::<Result<_, _>>()?;
        let include = config.include.clone();
        Ok(Self { config, host, tail, include, exclude })
    }

    fn matching_paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self
            .include
            .iter()
            .filter_map(|pattern| glob::glob(pattern).ok())
            .flatten()
            .filter_map(Result::ok)
            .filter(|path| path.is_file() && !self.exclude.iter().any(|pattern| pattern.matches_path(path)))
            .collect();
        paths.sort();
        paths.dedup();
        paths
    }

    /// Opens the files that exist now, at their end: what they already hold is not shipped.
    pub fn start(self) -> StartedFileSource {
        let mut followed = BTreeMap::new();
        for path in self.matching_paths() {
            if let Some(file) = open(&path, true) {
                followed.insert(path, file);
            }
        }
        StartedFileSource { source: self, followed }
    }
}

/// A file source whose existing files have been opened; [`StartedFileSource::run`] follows them.
pub struct StartedFileSource {
    source: FileSource,
    followed: BTreeMap<PathBuf, Followed>,
}

impl StartedFileSource {
    /// Polls the files until `shutdown`; blocks the calling thread.
    pub fn run(self, sender: &mpsc::Sender<LogRecord>, shutdown: &CancellationToken) {
        let Self { source, mut followed } = self;
        source.follow(&mut followed, sender, shutdown);
    }
}

impl FileSource {
    fn follow(
        &self,
        followed: &mut BTreeMap<PathBuf, Followed>,
        sender: &mpsc::Sender<LogRecord>,
        shutdown: &CancellationToken,
    ) {
        let interval = Duration::from_millis(self.tail.poll_interval_ms);
        while !shutdown.is_cancelled() {
            if !self.poll(followed, sender) {
                return;
            }
            std::thread::sleep(interval);
        }
    }

    /// One pass over the files; `false` when the receiver is gone.
    fn poll(&self, followed: &mut BTreeMap<PathBuf, Followed>, sender: &mpsc::Sender<LogRecord>) -> bool {
        let paths = self.matching_paths();
        for path in &paths {
            if !followed.contains_key(path)
                && let Some(file) = open(path, false)
            {
                followed.insert(path.clone(), file);
            }
        }
        let mut gone = Vec::new();
        for (path, state) in followed.iter_mut() {
            if !self.drain(path, state, sender) {
                return false;
            }
            match std::fs::metadata(path) {
                // Rotated: the old file has been read to its end above; follow the new one.
                Ok(metadata) if (metadata.dev(), metadata.ino()) != state.identity => match open(path, false) {
                    Some(new_file) => {
                        self.flush_partial(path, state, sender);
                        *state = new_file;
                        if !self.drain(path, state, sender) {
                            return false;
                        }
                    }
                    None => gone.push(path.clone()),
                },
                Ok(_) => {}
                Err(_) => gone.push(path.clone()),
            }
        }
        for path in gone {
            if let Some(mut state) = followed.remove(&path) {
                self.flush_partial(&path, &mut state, sender);
            }
        }
        true
    }

    /// Reads everything new in the file and sends its complete lines.
    fn drain(&self, path: &Path, state: &mut Followed, sender: &mpsc::Sender<LogRecord>) -> bool {
        if let Ok(metadata) = state.file.metadata()
            && metadata.len() < state.offset
        {
            tracing::info!(file = %path.display(), "file truncated, reading it from its start");
            state.offset = 0;
            state.partial.clear();
            if state.file.seek(SeekFrom::Start(0)).is_err() {
                return true;
            }
        }
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let read = match state.file.read(&mut buffer) {
                Ok(0) => return true,
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(file = %path.display(), error = %error, "cannot read file");
                    return true;
                }
            };
            state.offset += read as u64;
            let mut rest = &buffer[..read];
            while let Some(newline) = rest.iter().position(|&byte| byte == b'\n') {
                state.partial.extend_from_slice(&rest[..newline]);
                rest = &rest[newline + 1..];
                let line = std::mem::take(&mut state.partial);
                if !self.send_line(path, &line, sender) {
                    return false;
                }
            }
            state.partial.extend_from_slice(rest);
            // A line without end is cut at the limit rather than held in memory without bound.
            if state.partial.len() > self.tail.max_line_bytes {
                let line = std::mem::take(&mut state.partial);
                if !self.send_line(path, &line, sender) {
                    return false;
                }
            }
        }
    }

    fn flush_partial(&self, path: &Path, state: &mut Followed, sender: &mpsc::Sender<LogRecord>) {
        if !state.partial.is_empty() {
            let line = std::mem::take(&mut state.partial);
            self.send_line(path, &line, sender);
        }
    }

    fn send_line(&self, path: &Path, line: &[u8], sender: &mpsc::Sender<LogRecord>) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return true;
        }
        let mut text = String::from_utf8_lossy(&line[..line.len().min(self.tail.max_line_bytes)]).into_owned();
        if line.len() > self.tail.max_line_bytes {
            text.push('…');
        }
        let mut attributes = Map::new();
        attributes.insert("file".to_owned(), Value::String(path.display().to_string()));
        let record = LogRecord {
            timestamp: now(),
            service: self.config.service.clone(),
            host: self.host.clone(),
            level: detect_level(&text).to_owned(),
            message: text,
            attributes,
        };
        // Blocks while the sink is behind: backpressure instead of unbounded memory.
        sender.blocking_send(record).is_ok()
    }
}

fn now() -> Timestamp {
    Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).unwrap_or(Timestamp::MIN)
}

fn open(path: &Path, at_end: bool) -> Option<Followed> {
    let mut file = File::open(path).ok()?;
    let metadata = file.metadata().ok()?;
    let offset = if at_end { file.seek(SeekFrom::End(0)).ok()? } else { 0 };
    Some(Followed { file, identity: (metadata.dev(), metadata.ino()), offset, partial: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn source(directory: &Path) -> FileSource {
        let config = FileSourceConfig {
            name: "test".to_owned(),
            service: "svc".to_owned(),
            include: vec![format!("{}/*.log", directory.display())],
            exclude: vec![format!("{}/skip*.log", directory.display())],
        };
        FileSource::new(config, "host-a".to_owned(), TailConfig { poll_interval_ms: 10, max_line_bytes: 16 }).unwrap()
    }

    fn received(receiver: &mut mpsc::Receiver<LogRecord>) -> Vec<String> {
        std::iter::from_fn(|| receiver.try_recv().ok()).map(|record| record.message).collect()
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn follows_new_lines_rotation_and_truncation() {
        let directory = tempfile::tempdir().unwrap();
        let app = directory.path().join("app.log");
        append(&app, "old line\n");
        let source = source(directory.path());
        let (sender, mut receiver) = mpsc::channel(100);
        let StartedFileSource { source, mut followed } = source.start();

        append(&app, "first\nsecond\nhalf");
        assert!(source.poll(&mut followed, &sender));
        assert_eq!(received(&mut receiver), ["first", "second"]);

        append(&app, " done\r\n");
        append(&directory.path().join("skipped.log"), "excluded\n");
        append(&directory.path().join("new.log"), "from a brand new file\n");
        assert!(source.poll(&mut followed, &sender));
        assert_eq!(received(&mut receiver), ["half done", "from a brand new…"]);

        // Rename rotation: the tail of the old file comes before the new file's lines.
        append(&app, "last of old\n");
        std::fs::rename(&app, directory.path().join("app.log.1")).unwrap();
        append(&app, "new file\n");
        assert!(source.poll(&mut followed, &sender));
        assert_eq!(received(&mut receiver), ["last of old", "new file"]);

        // Copy-truncate: the file shrinks and is read again from its start.
        std::fs::write(&app, "").unwrap();
        assert!(source.poll(&mut followed, &sender));
        append(&app, "after\n");
        assert!(source.poll(&mut followed, &sender));
        assert_eq!(received(&mut receiver), ["after"]);
    }

    #[test]
    fn records_carry_service_host_level_and_file() {
        let directory = tempfile::tempdir().unwrap();
        let source = source(directory.path());
        let (sender, mut receiver) = mpsc::channel(10);
        let path = directory.path().join("a.log");
        assert!(source.send_line(&path, b"ERROR \xff bad", &sender));
        let record = receiver.try_recv().unwrap();
        assert_eq!((record.service.as_str(), record.host.as_str(), record.level.as_str()), ("svc", "host-a", "error"));
        assert_eq!(record.message, "ERROR \u{fffd} bad");
        assert_eq!(record.attributes["file"], path.display().to_string());
    }
}
