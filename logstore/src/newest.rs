//! The newest (or oldest) matches of a query over several partitions, in time order, and how
//! many match in all.
//!
//! Every segment of every partition is one list of candidates. They are visited newest first
//! (oldest first for the other order) by the time range of their timestamp column; once
//! `limit` matches are held, a segment whose newest record is older than the oldest one held
//! cannot change the page and is only counted, which for a single term is its document
//! frequency. Within a segment the matches' timestamps are read block by block from the fast
//! field, and only a match newer than the held page's oldest costs more. Stored documents are
//! read for the final page alone, after the merge across partitions.

use tantivy::columnar::ColumnValues;
use tantivy::query::{EnableScoring, Query, Weight};
use tantivy::{DocAddress, DocId, Searcher, SegmentReader, TantivyDocument};
use vigil_proto::LogHit;

use super::schema::{LogFields, SEQUENCE, TIMESTAMP};

/// A record's place in the order asked for: higher comes first. For oldest first both parts
/// are complemented, which reverses their order without overflowing.
type Key = (i64, u64);

fn key(timestamp: i64, sequence: u64, newest_first: bool) -> Key {
    if newest_first { (timestamp, sequence) } else { (!timestamp, !sequence) }
}

/// The highest key a record of `timestamp` can have, whatever its sequence.
fn best_at(timestamp: i64, newest_first: bool) -> Key {
    (if newest_first { timestamp } else { !timestamp }, u64::MAX)
}

/// A match held for the page: its key and where its document is.
#[derive(Clone, Copy)]
struct Candidate {
    key: Key,
    searcher: usize,
    address: DocAddress,
}

/// The best `limit` candidates seen, kept in a buffer of twice that, cut back to `limit` when
/// full (amortised constant time per candidate, however the matches arrive).
struct Best {
    limit: usize,
    buffer: Vec<Candidate>,
    /// The lowest key of a full page once one was cut: nothing at or below it can enter.
    threshold: Option<Key>,
}

impl Best {
    fn new(limit: usize) -> Self {
        Self { limit, buffer: Vec::with_capacity(2 * limit), threshold: None }
    }

    fn admits(&self, key: Key) -> bool {
        self.threshold.is_none_or(|threshold| key > threshold)
    }

    fn push(&mut self, candidate: Candidate) {
        self.buffer.push(candidate);
        if self.buffer.len() >= 2 * self.limit {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.buffer.len() < self.limit {
            return;
        }
        let last = self.limit - 1;
        self.buffer.select_nth_unstable_by(last, |left, right| right.key.cmp(&left.key));
        self.buffer.truncate(self.limit);
        self.threshold = Some(self.buffer[last].key);
    }

    fn into_sorted(mut self) -> Vec<Candidate> {
        self.buffer.sort_unstable_by_key(|candidate| std::cmp::Reverse(candidate.key));
        self.buffer.truncate(self.limit);
        self.buffer
    }
}

/// One segment to visit, and the best key any of its records could have.
struct Segment<'a> {
    searcher: usize,
    ordinal: u32,
    reader: &'a SegmentReader,
    timestamps: std::sync::Arc<dyn ColumnValues<i64>>,
    best_possible: Key,
}

/// Up to `limit` records matching `query` across `searchers`, in time order (newest first or
/// oldest first), and the number of matches in all.
pub fn top_by_time(
    searchers: &[Searcher],
    fields: &LogFields,
    query: &dyn Query,
    limit: usize,
    newest_first: bool,
) -> tantivy::Result<(Vec<LogHit>, usize)> {
    let limit = limit.max(1);
    let weights = searchers
        .iter()
        .map(|searcher| query.weight(EnableScoring::disabled_from_searcher(searcher)))
        .collect::<tantivy::Result<Vec<Box<dyn Weight>>>>()?;
    let mut segments = Vec::new();
    for (index, searcher) in searchers.iter().enumerate() {
        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
            let timestamps = reader.fast_fields().i64(TIMESTAMP)?.first_or_default_col(0);
            let best_possible =
                best_at(if newest_first { timestamps.max_value() } else { timestamps.min_value() }, newest_first);
            segments.push(Segment { searcher: index, ordinal: ordinal as u32, reader, timestamps, best_possible });
        }
    }
    segments.sort_unstable_by_key(|segment| std::cmp::Reverse(segment.best_possible));

    let mut best = Best::new(limit);
    let mut total = 0usize;
    for segment in &segments {
        let weight = &weights[segment.searcher];
        if !best.admits(segment.best_possible) {
            total += weight.count(segment.reader)? as usize;
            continue;
        }
        total += collect_segment(weight.as_ref(), segment, &mut best, newest_first)?;
        best.cut();
    }

    let hits = best
        .into_sorted()
        .into_iter()
        .map(|candidate| {
            searchers[candidate.searcher]
                .doc::<TantivyDocument>(candidate.address)
                .map(|document| fields.hit(&document))
        })
        .collect::<tantivy::Result<Vec<_>>>()?;
    Ok((hits, total))
}

/// Offers every match of one segment to `best`; answers how many matched.
fn collect_segment(
    weight: &dyn Weight,
    segment: &Segment<'_>,
    best: &mut Best,
    newest_first: bool,
) -> tantivy::Result<usize> {
    let sequences = segment.reader.fast_fields().u64(SEQUENCE)?.first_or_default_col(0);
    let alive = segment.reader.alive_bitset();
    let mut timestamps = [0i64; 64];
    let mut matched = 0usize;
    weight.for_each_no_score(segment.reader, &mut |docs: &[DocId]| {
        for block in docs.chunks(timestamps.len()) {
            let values = &mut timestamps[..block.len()];
            segment.timestamps.get_vals(block, values);
            for (&doc, &timestamp) in block.iter().zip(values.iter()) {
                if alive.is_some_and(|alive| !alive.is_alive(doc)) {
                    continue;
                }
                matched += 1;
                // A record of an older timestamp than the threshold's cannot enter, whatever
                // its sequence: only then is the sequence read.
                if !best.admits(best_at(timestamp, newest_first)) {
                    continue;
                }
                let key = key(timestamp, sequences.get_val(doc), newest_first);
                if best.admits(key) {
                    best.push(Candidate {
                        key,
                        searcher: segment.searcher,
                        address: DocAddress::new(segment.ordinal, doc),
                    });
                }
            }
        }
    })?;
    Ok(matched)
}

#[cfg(test)]
mod tests {
    use tantivy::query::{AllQuery, TermQuery};
    use tantivy::schema::IndexRecordOption;
    use tantivy::{Index, IndexWriter, Term};
    use vigil_proto::{LogRecord, RecordId, Timestamp};

    use super::*;

    /// Three indexes (partitions) of several segments each, whose time ranges overlap, with
    /// timestamps shared by several records (the sequence decides) and some records deleted.
    fn partitions() -> (Vec<Searcher>, LogFields, Vec<(RecordId, String)>) {
        let (schema, fields) = LogFields::schema();
        let mut alive = Vec::new();
        let mut searchers = Vec::new();
        let mut random = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move |bound: u64| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random % bound
        };
        let mut sequence = 0u64;
        for partition in 0..3u64 {
            let index = Index::create_in_ram(schema.clone());
            let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
            writer.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
            for segment in 0..6u64 {
                // Each segment spans 400 µs, its neighbours' overlapping, far ones apart.
                let start = (partition + segment * 3) * 150;
                for _ in 0..200 {
                    // Few distinct timestamps, so that ties are common.
                    let nanos = 1_795_939_200_000_000_000 + (start + next(400)) as i64 * 1_000;
                    let word = ["alpha", "beta", "gamma"][next(3) as usize];
                    let record: LogRecord = serde_json::from_value(serde_json::json!({
                        "timestamp": Timestamp::from_unix_nanos(nanos).unwrap(),
                        "service": "api", "message": format!("{word} {sequence}"),
                    }))
                    .unwrap();
                    writer.add_document(fields.document(record, sequence)).unwrap();
                    alive.push((
                        RecordId { timestamp: Timestamp::from_unix_nanos(nanos).unwrap(), sequence },
                        word.to_owned(),
                    ));
                    sequence += 1;
                }
                writer.commit().unwrap();
            }
            // Some deletions, so that counts and pages skip the dead.
            for _ in 0..20 {
                let victim = alive.len() - 1 - next(1200) as usize;
                let (id, _) = alive.remove(victim);
                writer.delete_term(Term::from_field_text(fields.message, &id.sequence.to_string()));
            }
            writer.commit().unwrap();
            searchers.push(index.reader().unwrap().searcher());
        }
        (searchers, fields, alive)
    }

    #[test]
    fn pages_and_counts_are_those_of_sorting_every_match() {
        let (searchers, fields, alive) = partitions();
        assert!(searchers.iter().all(|searcher| searcher.segment_readers().len() >= 6));
        let beta = TermQuery::new(Term::from_field_text(fields.message, "beta"), IndexRecordOption::Basic);
        let queries: [(&dyn Query, Option<&str>); 2] = [(&AllQuery, None), (&beta, Some("beta"))];
        for (query, word) in queries {
            let mut expected: Vec<RecordId> =
                alive.iter().filter(|(_, other)| word.is_none_or(|word| word == other)).map(|(id, _)| *id).collect();
            expected.sort_by_key(|id| (id.timestamp, id.sequence));
            for newest_first in [true, false] {
                let ordered: Vec<RecordId> =
                    if newest_first { expected.iter().rev().copied().collect() } else { expected.clone() };
                for limit in [1, 7, 100, 5000] {
                    let (hits, total) = top_by_time(&searchers, &fields, query, limit, newest_first).unwrap();
                    let ids: Vec<RecordId> = hits.iter().map(|hit| hit.id).collect();
                    let wanted: Vec<RecordId> = ordered.iter().take(limit).copied().collect();
                    assert_eq!(ids, wanted, "{word:?} newest_first={newest_first} limit={limit}");
                    assert_eq!(total, expected.len(), "{word:?} newest_first={newest_first} limit={limit}");
                }
            }
        }
    }
}
