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
    /// The columns of a segment; opened for this search alone when they are not kept (a
    /// searcher taken before the last reload), so that no segment the reader let go is kept.
    pub fn of(&self, reader: &SegmentReader) -> tantivy::Result<Arc<SegmentColumns>> {
        if let Some(columns) = self.segments.lock().expect("segment times lock").get(&reader.segment_id()) {
            return Ok(columns.clone());
        }
        Ok(Arc::new(SegmentColumns::open(reader)?))
    }

    /// Keeps the segments of `searcher` alone, opening the columns of those new to it.
    pub fn refresh(&self, searcher: &Searcher) -> tantivy::Result<()> {
        let live = searcher.generation().segments();
        let new: Vec<&SegmentReader> = {
            let mut segments = self.segments.lock().expect("segment times lock");
            segments.retain(|id, _| live.contains_key(id));
            searcher.segment_readers().iter().filter(|reader| !segments.contains_key(&reader.segment_id())).collect()
        };
        // Opened outside the lock, which searches take.
        let opened = new
            .into_iter()
            .map(|reader| Ok((reader.segment_id(), Arc::new(SegmentColumns::open(reader)?))))
            .collect::<tantivy::Result<Vec<_>>>()?;
        self.segments.lock().expect("segment times lock").extend(opened);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tantivy::{Index, IndexWriter, ReloadPolicy};
    use vigil_proto::{LogRecord, Timestamp};

    use super::*;
    use crate::schema::LogFields;

    #[test]
    fn a_searcher_older_than_the_last_reload_keeps_nothing_of_what_the_reader_let_go() {
        let (schema, fields) = LogFields::schema();
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        let record = |nanos: i64| LogRecord {
            timestamp: Timestamp::from_unix_nanos(nanos).unwrap(),
            service: "api".to_owned(),
            host: "web-1".to_owned(),
            level: "info".to_owned(),
            message: "served".to_owned(),
            attributes: serde_json::Map::new(),
        };
        for segment in 0..2 {
            writer.add_document(fields.document(record(1_000 + segment), segment as u64)).unwrap();
            writer.commit().unwrap();
        }
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into().unwrap();
        let old = reader.searcher();
        let times = SegmentTimes::default();
        times.refresh(&old).unwrap();
        assert_eq!(times.segments.lock().unwrap().len(), 2);

        let ids = index.searchable_segment_ids().unwrap();
        writer.merge(&ids).wait().unwrap();
        writer.commit().unwrap();
        reader.reload().unwrap();
        let new = reader.searcher();
        times.refresh(&new).unwrap();
        assert_eq!(new.segment_readers().len(), 1);
        assert_eq!(times.segments.lock().unwrap().len(), 1);

        // A search still on the old searcher gets its columns, which are not kept.
        for segment in old.segment_readers() {
            let columns = times.of(segment).unwrap();
            assert_eq!(columns.timestamps.num_vals(), 1);
        }
        let kept: Vec<SegmentId> = times.segments.lock().unwrap().keys().copied().collect();
        assert_eq!(kept, vec![new.segment_readers()[0].segment_id()]);
    }
}
