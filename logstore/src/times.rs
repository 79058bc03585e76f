//! What a search in time order reads of every segment before its documents: the timestamp and
//! sequence columns, opened once, and the time range of each block of [`BLOCK_DOCS`]
//! documents. Kept per partition reader and brought up to date when it reloads (on the
//! writer's thread, after a commit), so a search opens no column; the entries of segments
//! the reader no longer holds go then, and with them their mapped files.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tantivy::columnar::ColumnValues;
use tantivy::index::SegmentId;
use tantivy::{DocId, Searcher, SegmentReader};

use super::schema::{SEQUENCE, TIMESTAMP};

/// Documents per block.
pub const BLOCK_DOCS: u32 = 2048;

/// The oldest and newest timestamp of one block of a segment (deleted documents included:
/// deletions only narrow what a block holds, so the range stays a bound).
#[derive(Debug, Clone, Copy)]
pub struct BlockRange {
    pub min: i64,
    pub max: i64,
}

/// One segment's columns and block ranges.
pub struct SegmentColumns {
    pub timestamps: Arc<dyn ColumnValues<i64>>,
    pub sequences: Arc<dyn ColumnValues<u64>>,
    pub blocks: Box<[BlockRange]>,
}

impl SegmentColumns {
    fn open(reader: &SegmentReader) -> tantivy::Result<Self> {
        let timestamps = reader.fast_fields().i64(TIMESTAMP)?.first_or_default_col(0);
        let sequences = reader.fast_fields().u64(SEQUENCE)?.first_or_default_col(0);
        let max_doc = reader.max_doc();
        let mut values = vec![0i64; BLOCK_DOCS as usize];
        let blocks = (0..max_doc.div_ceil(BLOCK_DOCS))
            .map(|block| {
                let start = block * BLOCK_DOCS;
                let values = &mut values[..(max_doc - start).min(BLOCK_DOCS) as usize];
                timestamps.get_range(u64::from(start), values);
                let (min, max) =
                    values.iter().fold((i64::MAX, i64::MIN), |(min, max), &value| (min.min(value), max.max(value)));
                BlockRange { min, max }
            })
            .collect();
        Ok(Self { timestamps, sequences, blocks })
    }

    /// The documents of block `block`.
    pub fn bounds(&self, block: usize, max_doc: DocId) -> (DocId, DocId) {
        let start = block as DocId * BLOCK_DOCS;
        (start, (start + BLOCK_DOCS).min(max_doc))
    }
}

/// The columns of the segments of one partition's reader.
#[derive(Default)]
pub struct SegmentTimes {
    segments: Mutex<HashMap<SegmentId, Arc<SegmentColumns>>>,
}

impl SegmentTimes {
    /// The columns of a segment, opened now if they were not yet (a search on a searcher
    /// older or newer than the last reload).
    pub fn of(&self, reader: &SegmentReader) -> tantivy::Result<Arc<SegmentColumns>> {
        let id = reader.segment_id();
        if let Some(columns) = self.segments.lock().expect("segment times lock").get(&id) {
            return Ok(columns.clone());
        }
        let columns = Arc::new(SegmentColumns::open(reader)?);
        self.segments.lock().expect("segment times lock").insert(id, columns.clone());
        Ok(columns)
    }

    /// Keeps the segments of `searcher` alone, opening the columns of those new to it.
    pub fn refresh(&self, searcher: &Searcher) -> tantivy::Result<()> {
        let live = searcher.generation().segments();
        self.segments.lock().expect("segment times lock").retain(|id, _| live.contains_key(id));
        for reader in searcher.segment_readers() {
            self.of(reader)?;
        }
        Ok(())
    }
}
