//! The write-ahead log of the log store: where an ingest batch is durable before it is indexed.
//!
//! The writer appends the batches of a group to the current file, syncs it once, and only then
//! acknowledges them; the index commits later (see `writer`), and once every partition has
//! committed, the files are deleted. On start, the batches still in the log are replayed into
//! the partitions that do not hold them yet.
//!
//! A file, `<dir>/<first sequence, 20 digits>.wal`, is a run of frames
//! `[length u32][crc32 u32][first sequence u64][records u32][records]`, little endian, where the
//! CRC covers everything after itself and each record is its timestamp (Unix nanoseconds, i64)
//! followed by its service, host, level, message and attributes (a JSON object, empty when
//! there are none), each as `[length u32][bytes]`. A frame cut short or failing its CRC ends
//! the file: it was being written when the process died, so it was never acknowledged.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use vigil_proto::{LogRecord, Timestamp};

const EXTENSION: &str = "wal";
const HEADER: usize = 4 + 4 + 8 + 4;

/// A batch as the log keeps it, encoded once, off the writer thread; the writer seals it with
/// its first sequence number.
pub struct Encoded {
    frame: Vec<u8>,
}

impl Encoded {
    pub fn new(records: &[LogRecord]) -> Self {
        let size: usize = records
            .iter()
            .map(|record| 28 + record.service.len() + record.host.len() + record.level.len() + record.message.len())
            .sum();
        let mut frame = Vec::with_capacity(HEADER + size + 64 * records.len());
        frame.resize(HEADER, 0);
        let count = u32::try_from(records.len()).expect("batches are bounded far below 2^32 records");
        frame[16..20].copy_from_slice(&count.to_le_bytes());
        for record in records {
            frame.extend_from_slice(&record.timestamp.as_unix_nanos().to_le_bytes());
            for text in [&record.service, &record.host, &record.level, &record.message] {
                put(&mut frame, text.as_bytes());
            }
            let at = frame.len();
            frame.extend_from_slice(&[0; 4]);
            if !record.attributes.is_empty() {
                serde_json::to_writer(&mut frame, &record.attributes).expect("JSON values serialize");
            }
            let length = u32::try_from(frame.len() - at - 4).expect("records are bounded far below 4 GiB");
            frame[at..at + 4].copy_from_slice(&length.to_le_bytes());
        }
        Self { frame }
    }

    /// Stamps the frame with its first sequence number, its length and its CRC.
    pub fn seal(&mut self, first_sequence: u64) {
        let length = u32::try_from(self.frame.len() - 8).expect("batches are bounded far below 4 GiB");
        self.frame[0..4].copy_from_slice(&length.to_le_bytes());
        self.frame[8..16].copy_from_slice(&first_sequence.to_le_bytes());
        let crc = crc32fast::hash(&self.frame[8..]);
        self.frame[4..8].copy_from_slice(&crc.to_le_bytes());
    }

    pub fn len(&self) -> usize {
        self.frame.len()
    }
}

fn put(frame: &mut Vec<u8>, bytes: &[u8]) {
    let length = u32::try_from(bytes.len()).expect("fields are bounded far below 4 GiB");
    frame.extend_from_slice(&length.to_le_bytes());
    frame.extend_from_slice(bytes);
}

/// A batch read back from the log.
pub struct Replayed {
    pub first_sequence: u64,
    pub records: Vec<LogRecord>,
}

pub struct Wal {
    directory: PathBuf,
    file: Option<File>,
    /// Bytes of the current file that are whole frames.
    length: u64,
}

impl Wal {
    /// Opens the log in `directory` and reads back every batch in it, oldest first.
    pub fn open(directory: &Path) -> io::Result<(Self, Vec<Replayed>)> {
        std::fs::create_dir_all(directory)?;
        let mut batches = Vec::new();
        for path in files(directory)? {
            let bytes = std::fs::read(&path)?;
            let mut rest = &bytes[..];
            while let Some((frame, after)) = frame(rest) {
                match decode(frame) {
                    Some(batch) => batches.push(batch),
                    None => break,
                }
                rest = after;
            }
            if !rest.is_empty() {
                tracing::warn!(file = %path.display(), bytes = rest.len(), "write-ahead log ends in an incomplete frame; it was never acknowledged");
            }
        }
        Ok((Self { directory: directory.to_owned(), file: None, length: 0 }, batches))
    }

    /// Writes a group of sealed batches, the first of which starts at `first_sequence`, and
    /// syncs them to disk. On failure the file is cut back to its last whole frame, so that
    /// nothing of the group is replayed later.
    pub fn write<'a>(&mut self, first_sequence: u64, group: impl Iterator<Item = &'a Encoded>) -> io::Result<()> {
        let result = self.write_group(first_sequence, group);
        if result.is_err()
            && let Some(file) = &self.file
            && file.set_len(self.length).is_err()
        {
            // The file cannot be repaired: start another one, and leave the cut frame to the
            // CRC check of the replay.
            self.file = None;
        }
        result
    }

    fn write_group<'a>(&mut self, first_sequence: u64, group: impl Iterator<Item = &'a Encoded>) -> io::Result<()> {
        if self.file.is_none() {
            let path = self.directory.join(format!("{first_sequence:020}.{EXTENSION}"));
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            // The new name must survive as well as its content.
            File::open(&self.directory)?.sync_all()?;
            self.length = file.metadata()?.len();
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let mut written = 0;
        for batch in group {
            file.write_all(&batch.frame)?;
            written += batch.frame.len() as u64;
        }
        file.sync_data()?;
        self.length += written;
        Ok(())
    }

    /// Deletes every file: all they held is committed to the index.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file = None;
        self.length = 0;
        for path in files(&self.directory)? {
            std::fs::remove_file(path)?;
        }
        Ok(())
    }
}

/// The log's files, oldest first (their names are their first sequence numbers, zero-padded).
fn files(directory: &Path) -> io::Result<Vec<PathBuf>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(directory)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|extension| extension == EXTENSION))
        .collect();
    paths.sort();
    Ok(paths)
}

/// The next whole frame (CRC checked) and what follows it.
fn frame(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let length = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let end = 8usize.checked_add(length)?;
    let frame = bytes.get(..end)?;
    let crc = u32::from_le_bytes(frame[4..8].try_into().ok()?);
    (length >= HEADER - 8 && crc32fast::hash(&frame[8..]) == crc).then(|| (frame, &bytes[end..]))
}

fn decode(frame: &[u8]) -> Option<Replayed> {
    let first_sequence = u64::from_le_bytes(frame[8..16].try_into().ok()?);
    let count = u32::from_le_bytes(frame[16..20].try_into().ok()?) as usize;
    let mut rest = &frame[HEADER..];
    let mut take = |length: usize| -> Option<&[u8]> {
        let (taken, after) = rest.split_at_checked(length)?;
        rest = after;
        Some(taken)
    };
    let mut records = Vec::with_capacity(count.min(frame.len() / 28));
    for _ in 0..count {
        let timestamp = Timestamp::from_unix_nanos(i64::from_le_bytes(take(8)?.try_into().ok()?)).ok()?;
        let mut text = || -> Option<String> {
            let length = u32::from_le_bytes(take(4)?.try_into().ok()?) as usize;
            String::from_utf8(take(length)?.to_vec()).ok()
        };
        let (service, host, level, message) = (text()?, text()?, text()?, text()?);
        let attributes = text()?;
        let attributes =
            if attributes.is_empty() { serde_json::Map::new() } else { serde_json::from_str(&attributes).ok()? };
        records.push(LogRecord { timestamp, service, host, level, message, attributes });
    }
    rest.is_empty().then_some(Replayed { first_sequence, records })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(messages: &[&str]) -> Vec<LogRecord> {
        messages
            .iter()
            .map(|message| {
                serde_json::from_value(serde_json::json!({
                    "timestamp": "2026-11-29T12:00:00.000000001Z", "service": "api", "host": "web-1",
                    "level": "warn", "message": message, "attributes": {"nested": {"n": 1}, "ünï": "cødé"},
                }))
                .unwrap()
            })
            .collect()
    }

    fn sealed(records: &[LogRecord], first_sequence: u64) -> Encoded {
        let mut encoded = Encoded::new(records);
        encoded.seal(first_sequence);
        encoded
    }

    fn messages(replayed: &[Replayed]) -> Vec<(u64, Vec<String>)> {
        replayed
            .iter()
            .map(|batch| (batch.first_sequence, batch.records.iter().map(|record| record.message.clone()).collect()))
            .collect()
    }

    #[test]
    fn synced_batches_are_read_back_in_order_until_cleared() {
        let directory = tempfile::tempdir().unwrap();
        let (mut wal, replayed) = Wal::open(directory.path()).unwrap();
        assert!(replayed.is_empty());
        let first = batch(&["a", "b"]);
        let second: Vec<LogRecord> = vec![
            serde_json::from_value(serde_json::json!({
                "timestamp": "1970-01-01T00:00:00Z", "service": "", "message": "c",
            }))
            .unwrap(),
        ];
        wal.write(0, [sealed(&first, 0), sealed(&second, 2)].iter()).unwrap();
        drop(wal);
        let (mut wal, replayed) = Wal::open(directory.path()).unwrap();
        assert_eq!(messages(&replayed), vec![(0, vec!["a".into(), "b".into()]), (2, vec!["c".into()])]);
        assert_eq!(replayed[0].records, first, "every field and the attributes come back");
        assert_eq!(replayed[1].records, second);
        wal.write(3, [sealed(&batch(&["d"]), 3)].iter()).unwrap();
        let (mut wal, replayed) = Wal::open(directory.path()).unwrap();
        assert_eq!(messages(&replayed).len(), 3, "a second file follows the first");
        wal.clear().unwrap();
        assert!(Wal::open(directory.path()).unwrap().1.is_empty());
    }

    #[test]
    fn a_torn_or_corrupt_frame_ends_its_file() {
        let directory = tempfile::tempdir().unwrap();
        let (mut wal, _) = Wal::open(directory.path()).unwrap();
        wal.write(0, [sealed(&batch(&["kept"]), 0)].iter()).unwrap();
        wal.write(1, [sealed(&batch(&["torn"]), 1)].iter()).unwrap();
        let path = files(directory.path()).unwrap().pop().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(messages(&Wal::open(directory.path()).unwrap().1), vec![(0, vec!["kept".into()])]);
        let mut flipped = bytes.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 0xff;
        std::fs::write(&path, &flipped).unwrap();
        assert_eq!(messages(&Wal::open(directory.path()).unwrap().1), vec![(0, vec!["kept".into()])]);
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(messages(&Wal::open(directory.path()).unwrap().1).len(), 2);
    }
}
