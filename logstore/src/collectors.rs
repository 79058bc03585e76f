//! Tantivy collectors of the log store: counts per time bucket and level, and the most
//! frequent values of the exact fields. They read fast fields only.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::{ColumnValues, StrColumn};
use tantivy::{DocId, Score, SegmentOrdinal, SegmentReader};

use super::schema::{LEVEL, TIMESTAMP};

/// Counts matching records per bucket of `interval` nanoseconds from `start`, per level.
pub struct HistogramCollector {
    pub start: i64,
    pub interval: i64,
    pub buckets: usize,
}

pub struct HistogramSegment {
    start: i64,
    interval: i64,
    buckets: usize,
    timestamps: Arc<dyn ColumnValues<i64>>,
    levels: Option<StrColumn>,
    /// `buckets` rows of one count per level ordinal of this segment, plus one for "no level".
    counts: Vec<u64>,
    width: usize,
}

type BucketCounts = Vec<BTreeMap<String, u64>>;

impl Collector for HistogramCollector {
    type Fruit = BucketCounts;
    type Child = HistogramSegment;

    fn for_segment(&self, _segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<HistogramSegment> {
        let levels = reader.fast_fields().str(LEVEL)?;
        let width = levels.as_ref().map_or(0, |column| column.num_terms()) + 1;
        Ok(HistogramSegment {
            start: self.start,
            interval: self.interval,
            buckets: self.buckets,
            timestamps: reader.fast_fields().i64(TIMESTAMP)?.first_or_default_col(0),
            levels,
            counts: vec![0; self.buckets * width],
            width,
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<BucketCounts>) -> tantivy::Result<BucketCounts> {
        let mut merged = vec![BTreeMap::new(); self.buckets];
        for segment in segments {
            for (bucket, counts) in merged.iter_mut().zip(segment) {
                for (level, count) in counts {
                    *bucket.entry(level).or_insert(0) += count;
                }
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for HistogramSegment {
    type Fruit = BucketCounts;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let offset = self.timestamps.get_val(doc) - self.start;
        if offset < 0 {
            return;
        }
        let bucket = (offset / self.interval) as usize;
        if bucket >= self.buckets {
            return;
        }
        let level = self
            .levels
            .as_ref()
            .and_then(|levels| levels.term_ords(doc).next())
            .map_or(self.width - 1, |ord| ord as usize);
        self.counts[bucket * self.width + level] += 1;
    }

    fn harvest(self) -> BucketCounts {
        let names = ordinal_names(self.levels.as_ref(), self.width - 1);
        self.counts
            .chunks(self.width)
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, count)| **count > 0)
                    .map(|(ord, count)| (names.get(ord).cloned().unwrap_or_else(|| "unknown".to_owned()), *count))
                    .fold(BTreeMap::new(), |mut counts, (level, count)| {
                        *counts.entry(level).or_insert(0) += count;
                        counts
                    })
            })
            .collect()
    }
}

fn ordinal_names(column: Option<&StrColumn>, count: usize) -> Vec<String> {
    (0..count as u64)
        .map(|ord| {
            let mut name = String::new();
            if let Some(column) = column {
                let _found = column.ord_to_str(ord, &mut name);
            }
            name
        })
        .collect()
}

/// Counts matching records per value of one exact field (`service`, `host`, `level`).
pub struct TermCounts {
    pub field: &'static str,
}

pub struct TermCountsSegment {
    column: Option<StrColumn>,
    counts: Vec<u64>,
}

impl Collector for TermCounts {
    type Fruit = HashMap<String, u64>;
    type Child = TermCountsSegment;

    fn for_segment(&self, _segment: SegmentOrdinal, reader: &SegmentReader) -> tantivy::Result<TermCountsSegment> {
        let column = reader.fast_fields().str(self.field)?;
        let terms = column.as_ref().map_or(0, |column| column.num_terms());
        Ok(TermCountsSegment { column, counts: vec![0; terms] })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, segments: Vec<HashMap<String, u64>>) -> tantivy::Result<HashMap<String, u64>> {
        let mut merged = HashMap::new();
        for segment in segments {
            for (value, count) in segment {
                *merged.entry(value).or_insert(0) += count;
            }
        }
        Ok(merged)
    }
}

impl SegmentCollector for TermCountsSegment {
    type Fruit = HashMap<String, u64>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        if let Some(ord) = self.column.as_ref().and_then(|column| column.term_ords(doc).next()) {
            self.counts[ord as usize] += 1;
        }
    }

    fn harvest(self) -> HashMap<String, u64> {
        let names = ordinal_names(self.column.as_ref(), self.counts.len());
        names.into_iter().zip(self.counts).filter(|(_, count)| *count > 0).collect()
    }
}
