//! What the backend has acknowledged: the last acknowledged entry of a disk buffer and, for
//! the file sources, how far into each file (known by its content fingerprint) the
//! acknowledged lines reach.
//!
//! Stored versioned (`{"version": "1", ...}`) so that a newer agent reads an older file, and
//! written atomically: a temporary file, flushed to disk, renamed over the old one. A crash
//! leaves either the old checkpoint or the new one, never half of either.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Why a checkpoint cannot be read or stored.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("cannot read checkpoint {}", .path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("checkpoint {} is not a checkpoint this agent reads", .path.display())]
    Parse { path: PathBuf, source: serde_json::Error },
    #[error("cannot write checkpoint {}", .path.display())]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot encode checkpoint")]
    Encode(#[source] serde_json::Error),
    #[error("cannot flush checkpoint {}", .path.display())]
    Flush { path: PathBuf, source: std::io::Error },
    #[error("cannot replace checkpoint {}", .path.display())]
    Replace { path: PathBuf, source: std::io::Error },
}

/// A checkpoint's file key that is not a fingerprint (16 hexadecimal digits).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a file fingerprint")]
pub struct ParseFingerprintError(String);

/// A file's identity: a hash of its first line (at most [`FINGERPRINT_BYTES`] bytes), so that
/// a file keeps its identity when it is renamed and loses it when its content is replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Fingerprint(pub u64);

/// At most this many bytes of a file's start make its fingerprint.
pub const FINGERPRINT_BYTES: usize = 1024;

impl Fingerprint {
    /// The fingerprint of a file that starts with `head`, or `None` while the file is too short
    /// to have one (no complete first line and fewer than [`FINGERPRINT_BYTES`] bytes).
    pub fn of_head(head: &[u8]) -> Option<Self> {
        let head = &head[..head.len().min(FINGERPRINT_BYTES)];
        let first_line = match memchr::memchr(b'\n', head) {
            Some(newline) => &head[..=newline],
            None if head.len() == FINGERPRINT_BYTES => head,
            None => return None,
        };
        // FNV-1a, 64 bits: stable across versions and platforms, unlike `std`'s hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &byte in first_line {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        Some(Self(hash))
    }
}

impl From<Fingerprint> for String {
    fn from(fingerprint: Fingerprint) -> Self {
        format!("{:016x}", fingerprint.0)
    }
}

impl TryFrom<String> for Fingerprint {
    type Error = ParseFingerprintError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        u64::from_str_radix(&text, 16).map(Self).map_err(|_| ParseFingerprintError(text))
    }
}

/// How far into one file the lines reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FilePosition {
    /// Where the file was last seen; informative only (the fingerprint identifies the file).
    pub path: PathBuf,
    /// The first byte not yet shipped.
    pub offset: u64,
}

pub type Positions = BTreeMap<Fingerprint, FilePosition>;

/// Merges `newer` into `positions`, keeping the furthest offset of each file.
pub fn merge(positions: &mut Positions, newer: &Positions) {
    for (fingerprint, position) in newer {
        match positions.get_mut(fingerprint) {
            Some(known) if known.offset >= position.offset => known.path.clone_from(&position.path),
            _ => {
                positions.insert(*fingerprint, position.clone());
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum Checkpoint {
    #[serde(rename = "1")]
    V1(CheckpointV1),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CheckpointV1 {
    /// Every buffer entry up to this sequence number is acknowledged (or was dropped).
    pub acked_seq: u64,
    #[serde(default)]
    pub files: Positions,
}

impl Checkpoint {
    /// The checkpoint stored at `path`; `None` when there is none yet.
    pub fn load(path: &Path) -> Result<Option<CheckpointV1>, CheckpointError> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(CheckpointError::Read { path: path.to_owned(), source }),
        };
        let checkpoint: Self = serde_json::from_slice(&bytes)
            .map_err(|source| CheckpointError::Parse { path: path.to_owned(), source })?;
        match checkpoint {
            Self::V1(v1) => Ok(Some(v1)),
        }
    }

    /// Replaces the checkpoint at `path` atomically.
    pub fn store(&self, path: &Path) -> Result<(), CheckpointError> {
        let temporary = path.with_extension("json.tmp");
        let mut file = std::fs::File::create(&temporary)
            .map_err(|source| CheckpointError::Write { path: temporary.clone(), source })?;
        serde_json::to_writer(&mut file, self).map_err(CheckpointError::Encode)?;
        file.flush().map_err(|source| CheckpointError::Write { path: temporary.clone(), source })?;
        file.sync_data().map_err(|source| CheckpointError::Flush { path: temporary.clone(), source })?;
        std::fs::rename(&temporary, path).map_err(|source| CheckpointError::Replace { path: path.to_owned(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_need_a_first_line_and_ignore_what_follows() {
        assert_eq!(Fingerprint::of_head(b"no newline yet"), None);
        let first = Fingerprint::of_head(b"line one\n").unwrap();
        assert_eq!(Fingerprint::of_head(b"line one\nline two\n"), Some(first));
        assert_ne!(Fingerprint::of_head(b"line 1\n"), Some(first));
        assert!(Fingerprint::of_head(&[b'x'; FINGERPRINT_BYTES]).is_some());
        let long: Vec<u8> = std::iter::repeat_n(b'y', 5000).collect();
        assert_eq!(Fingerprint::of_head(&long), Fingerprint::of_head(&long[..FINGERPRINT_BYTES]));
    }

    #[test]
    fn stored_versioned_and_read_back() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("checkpoint.json");
        assert_eq!(Checkpoint::load(&path).unwrap(), None);
        let mut files = Positions::new();
        files.insert(Fingerprint(0xabc), FilePosition { path: "/var/log/app.log".into(), offset: 42 });
        let checkpoint = CheckpointV1 { acked_seq: 7, files };
        Checkpoint::V1(checkpoint.clone()).store(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with(r#"{"version":"1","acked_seq":7,"files":{"0000000000000abc""#), "{text}");
        assert_eq!(Checkpoint::load(&path).unwrap(), Some(checkpoint));
        assert!(!path.with_extension("json.tmp").exists());

        std::fs::write(&path, r#"{"version":"9","acked_seq":1}"#).unwrap();
        let error = format!("{:#}", Checkpoint::load(&path).unwrap_err());
        assert!(error.contains("not a checkpoint this agent reads"), "{error}");
    }

    #[test]
    fn merging_keeps_the_furthest_offset() {
        let position = |offset| FilePosition { path: "a".into(), offset };
        let mut positions = Positions::from([(Fingerprint(1), position(10)), (Fingerprint(2), position(5))]);
        merge(&mut positions, &Positions::from([(Fingerprint(1), position(3)), (Fingerprint(3), position(1))]));
        assert_eq!(positions[&Fingerprint(1)].offset, 10);
        assert_eq!(positions[&Fingerprint(3)].offset, 1);
    }
}
