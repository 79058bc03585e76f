//! The newest (or oldest) matches of a query over several partitions, in time order, and how
//! many match (exactly, or up to a bound).
//!
//! Every segment of every partition is one list of candidates. They are visited newest first
//! (oldest first for the other order) by the time range of their timestamp column; once
//! `limit` matches are held, a segment whose newest record is older than the oldest one held
//! cannot change the page and is only counted. Within a segment the same holds for blocks of
//! [`BLOCK_DOCS`] documents, whose time ranges are computed once per segment (segments never
//! change) and kept in [`TimeBlocks`]: records are stored roughly in the order they happened,
//! so the newest matches usually lie in a segment's last block or two, and the rest of the
//! segment is skipped, or counted only as far as [`Counting`] asks. Matches' timestamps are
//! read 64 at a time from the fast field, and only a match newer than the held page's oldest
//! costs more. Stored documents are read for the final page alone, after the merge across
//! partitions.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tantivy::columnar::ColumnValues;
use tantivy::fastfield::AliveBitSet;
use tantivy::index::SegmentId;
use tantivy::query::{EnableScoring, Query, Scorer, Weight};
use tantivy::{DocAddress, DocId, Searcher, SegmentReader, TERMINATED, TantivyDocument};
use vigil_proto::LogHit;

use super::schema::{LogFields, SEQUENCE, TIMESTAMP};

/// Documents per block of a segment's time ranges.
const BLOCK_DOCS: u32 = 2048;
/// Blocks of a segment visited best first, each with a scorer of its own, before the rest of
/// the segment is walked in document order by one scorer (that skips what cannot matter).
const BEST_FIRST_BLOCKS: usize = 4;
/// Segments whose block ranges are kept; past it the least recently used half is forgotten.
const KEPT_SEGMENTS: usize = 4096;

/// How far to count the matches beside the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every match: what a count is asked for (alert rules, gates, panels).
    Exact,
    /// Until this many are counted; the count is then a lower bound (`exact` is false).
    UpTo(usize),
}

/// A page in time order and the number of matches.
#[derive(Debug)]
pub struct TopByTime {
    pub hits: Vec<LogHit>,
    /// Every match when `exact`; otherwise at least this many (and at least the asked bound).
    pub total: usize,
    pub exact: bool,
}

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

/// The oldest and newest timestamp of one block of a segment.
#[derive(Debug, Clone, Copy)]
struct BlockRange {
    min: i64,
    max: i64,
}

impl BlockRange {
    fn best_possible(self, newest_first: bool) -> Key {
        best_at(if newest_first { self.max } else { self.min }, newest_first)
    }
}

/// The time range of every block of the segments searched, computed at a segment's first
/// search. Deletions do not widen a block's range, so a kept range stays a valid bound.
#[derive(Default)]
pub struct TimeBlocks {
    segments: Mutex<HashMap<SegmentId, (u64, Arc<[BlockRange]>)>>,
    uses: AtomicU64,
}

impl TimeBlocks {
    fn of(&self, reader: &SegmentReader, timestamps: &dyn ColumnValues<i64>) -> Arc<[BlockRange]> {
        let id = reader.segment_id();
        let use_number = self.uses.fetch_add(1, Ordering::Relaxed);
        if let Some((last_use, ranges)) = self.segments.lock().expect("time blocks lock").get_mut(&id) {
            *last_use = use_number;
            return ranges.clone();
        }
        let ranges = block_ranges(timestamps, reader.max_doc());
        let mut segments = self.segments.lock().expect("time blocks lock");
        if segments.len() >= KEPT_SEGMENTS {
            let mut last_uses: Vec<u64> = segments.values().map(|(last_use, _)| *last_use).collect();
            let middle = last_uses.len() / 2;
            let median = *last_uses.select_nth_unstable(middle).1;
            segments.retain(|_, (last_use, _)| *last_use >= median);
        }
        segments.insert(id, (use_number, ranges.clone()));
        ranges
    }
}

fn block_ranges(timestamps: &dyn ColumnValues<i64>, max_doc: DocId) -> Arc<[BlockRange]> {
    let mut values = vec![0i64; BLOCK_DOCS as usize];
    (0..max_doc.div_ceil(BLOCK_DOCS))
        .map(|block| {
            let start = block * BLOCK_DOCS;
            let values = &mut values[..(max_doc - start).min(BLOCK_DOCS) as usize];
            timestamps.get_range(u64::from(start), values);
            let (min, max) =
                values.iter().fold((i64::MAX, i64::MIN), |(min, max), &value| (min.min(value), max.max(value)));
            BlockRange { min, max }
        })
        .collect()
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

/// The count so far and how much more of it is wanted.
struct Tally {
    total: usize,
    counting: Counting,
    exact: bool,
}

impl Tally {
    /// How many more matches to count (`usize::MAX`: all).
    fn wanted(&self) -> usize {
        match self.counting {
            Counting::Exact => usize::MAX,
            Counting::UpTo(bound) => bound.saturating_sub(self.total),
        }
    }

    /// Counts a segment none of whose matches can enter the page.
    fn count_segment(&mut self, weight: &dyn Weight, reader: &SegmentReader) -> tantivy::Result<()> {
        match self.wanted() {
            // For a single term without deletions this is its document frequency.
            usize::MAX => self.total += weight.count(reader)? as usize,
            0 => self.exact = false,
            wanted => {
                let mut scorer = weight.scorer(reader, 1.0)?;
                let counted = count_until(scorer.as_mut(), reader.alive_bitset(), TERMINATED, wanted);
                self.total += counted;
                if counted >= wanted {
                    self.exact = false;
                }
            }
        }
        Ok(())
    }
}

/// One segment to visit, and the best key any of its records could have.
struct Segment<'a> {
    searcher: usize,
    ordinal: u32,
    reader: &'a SegmentReader,
    timestamps: Arc<dyn ColumnValues<i64>>,
    best_possible: Key,
}

/// Up to `limit` records matching `query` across `searchers`, in time order (newest first or
/// oldest first), and the number of matches, counted as `counting` asks.
pub fn top_by_time(
    searchers: &[Searcher],
    fields: &LogFields,
    blocks: &TimeBlocks,
    query: &dyn Query,
    limit: usize,
    newest_first: bool,
    counting: Counting,
) -> tantivy::Result<TopByTime> {
    let limit = limit.max(1);
    let weights = searchers
        .iter()
        .map(|searcher| query.weight(EnableScoring::disabled_from_searcher(searcher)))
        .collect::<tantivy::Result<Vec<Box<dyn Weight>>>>()?;
    let mut segments = Vec::new();
    for (index, searcher) in searchers.iter().enumerate() {
        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
            if reader.max_doc() == 0 {
                continue;
            }
            let timestamps = reader.fast_fields().i64(TIMESTAMP)?.first_or_default_col(0);
            let best_possible =
                best_at(if newest_first { timestamps.max_value() } else { timestamps.min_value() }, newest_first);
            segments.push(Segment { searcher: index, ordinal: ordinal as u32, reader, timestamps, best_possible });
        }
    }
    segments.sort_unstable_by_key(|segment| std::cmp::Reverse(segment.best_possible));

    let mut best = Best::new(limit);
    let mut tally = Tally { total: 0, counting, exact: true };
    for segment in &segments {
        let weight = weights[segment.searcher].as_ref();
        if best.admits(segment.best_possible) {
            visit_segment(weight, segment, blocks, &mut best, &mut tally, newest_first)?;
        } else {
            tally.count_segment(weight, segment.reader)?;
        }
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
    Ok(TopByTime { hits, total: tally.total, exact: tally.exact })
}

/// Offers the matches of a segment that can enter the page to `best`, block by block, and
/// counts the segment's matches as far as `tally` wants.
fn visit_segment(
    weight: &dyn Weight,
    segment: &Segment<'_>,
    blocks: &TimeBlocks,
    best: &mut Best,
    tally: &mut Tally,
    newest_first: bool,
) -> tantivy::Result<()> {
    let reader = segment.reader;
    let max_doc = reader.max_doc();
    let ranges = blocks.of(reader, segment.timestamps.as_ref());
    let bounds = |block: usize| {
        let start = block as DocId * BLOCK_DOCS;
        (start, (start + BLOCK_DOCS).min(max_doc))
    };
    let mut page = PageFiller {
        segment,
        sequences: reader.fast_fields().u64(SEQUENCE)?.first_or_default_col(0),
        alive: reader.alive_bitset(),
        newest_first,
    };
    let mut matched = 0usize;
    let mut visited = vec![false; ranges.len()];
    let mut order: Vec<usize> = (0..ranges.len()).collect();
    order.sort_unstable_by_key(|&block| std::cmp::Reverse(ranges[block].best_possible(newest_first)));
    for &block in order.iter().take(BEST_FIRST_BLOCKS) {
        if !best.admits(ranges[block].best_possible(newest_first)) {
            break;
        }
        let (start, end) = bounds(block);
        let mut scorer = weight.scorer(reader, 1.0)?;
        seek(scorer.as_mut(), start);
        matched += page.offer_until(scorer.as_mut(), end, best);
        best.cut();
        visited[block] = true;
    }

    // The rest in document order, with one scorer: a block that can still hold a better match
    // is offered, one that cannot is counted while a count is wanted beyond what the segment's
    // own count gives, and skipped otherwise.
    let exact = tally.counting == Counting::Exact;
    let mut skipped = false;
    let mut scorer: Option<Box<dyn Scorer>> = None;
    for block in 0..ranges.len() {
        if visited[block] {
            continue;
        }
        let admitted = best.admits(ranges[block].best_possible(newest_first));
        let wanted = tally.wanted().saturating_sub(matched);
        if !admitted && (exact || wanted == 0) {
            skipped = true;
            continue;
        }
        let (start, end) = bounds(block);
        let scorer = match &mut scorer {
            Some(scorer) => scorer,
            None => scorer.insert(weight.scorer(reader, 1.0)?),
        };
        seek(scorer.as_mut(), start);
        if admitted {
            matched += page.offer_until(scorer.as_mut(), end, best);
            best.cut();
        } else {
            let counted = count_until(scorer.as_mut(), page.alive, end, wanted);
            matched += counted;
            if counted >= wanted {
                skipped = true;
            }
        }
    }
    best.cut();
    if !skipped {
        tally.total += matched;
    } else if exact {
        // For a single term without deletions this is its document frequency.
        tally.total += weight.count(reader)? as usize;
    } else {
        tally.total += matched;
        tally.exact = false;
    }
    Ok(())
}

/// Moves `scorer` to its first match at or after `target`, if it is not there already.
fn seek(scorer: &mut dyn Scorer, target: DocId) {
    if scorer.doc() < target {
        scorer.seek(target);
    }
}

/// Counts the live matches from `scorer`'s current one up to `end` (exclusive), stopping at
/// `wanted`.
fn count_until(scorer: &mut dyn Scorer, alive: Option<&AliveBitSet>, end: DocId, wanted: usize) -> usize {
    let mut counted = 0;
    let mut doc = scorer.doc();
    while doc < end && counted < wanted {
        if alive.is_none_or(|alive| alive.is_alive(doc)) {
            counted += 1;
        }
        doc = scorer.advance();
    }
    counted
}

/// Offers matches of one segment to the page.
struct PageFiller<'a> {
    segment: &'a Segment<'a>,
    sequences: Arc<dyn ColumnValues<u64>>,
    alive: Option<&'a AliveBitSet>,
    newest_first: bool,
}

impl PageFiller<'_> {
    /// Offers the live matches from `scorer`'s current one up to `end` (exclusive) to `best`;
    /// answers how many there were.
    fn offer_until(&mut self, scorer: &mut dyn Scorer, end: DocId, best: &mut Best) -> usize {
        let mut docs = [0 as DocId; 64];
        let mut timestamps = [0i64; 64];
        let mut matched = 0;
        let mut doc = scorer.doc();
        loop {
            let mut held = 0;
            while doc < end && held < docs.len() {
                if self.alive.is_none_or(|alive| alive.is_alive(doc)) {
                    docs[held] = doc;
                    held += 1;
                }
                doc = scorer.advance();
            }
            if held == 0 {
                return matched;
            }
            matched += held;
            self.segment.timestamps.get_vals(&docs[..held], &mut timestamps[..held]);
            for (&doc, &timestamp) in docs[..held].iter().zip(&timestamps[..held]) {
                // A record of an older timestamp than the threshold's cannot enter, whatever
                // its sequence: only then is the sequence read.
                if !best.admits(best_at(timestamp, self.newest_first)) {
                    continue;
                }
                let key = key(timestamp, self.sequences.get_val(doc), self.newest_first);
                if best.admits(key) {
                    best.push(Candidate {
                        key,
                        searcher: self.segment.searcher,
                        address: DocAddress::new(self.segment.ordinal, doc),
                    });
                }
            }
        }
    }
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

    /// One index of one segment of 20,000 records stored roughly in time order (a tenth of
    /// them late, by up to a minute), a hundred deleted: many blocks, whose ranges overlap.
    fn one_long_segment() -> (Vec<Searcher>, LogFields, Vec<(RecordId, String)>) {
        let (schema, fields) = LogFields::schema();
        let mut random = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |bound: u64| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random % bound
        };
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 50_000_000).unwrap();
        let mut alive = Vec::new();
        for sequence in 0..20_000u64 {
            let late = if next(10) == 0 { next(60_000) as i64 } else { 0 };
            let nanos = 1_795_939_200_000_000_000 + (sequence as i64 * 10 - late) * 1_000_000;
            let word = match next(100) {
                0 => "beta",
                1 => "gamma",
                2 => "delta",
                _ => "alpha",
            };
            let record: LogRecord = serde_json::from_value(serde_json::json!({
                "timestamp": Timestamp::from_unix_nanos(nanos).unwrap(),
                "service": "api", "message": format!("{word} {sequence}"),
            }))
            .unwrap();
            writer.add_document(fields.document(record, sequence)).unwrap();
            alive.push((RecordId { timestamp: Timestamp::from_unix_nanos(nanos).unwrap(), sequence }, word.to_owned()));
        }
        writer.commit().unwrap();
        for _ in 0..100 {
            let (id, _) = alive.remove(next(alive.len() as u64) as usize);
            writer.delete_term(Term::from_field_text(fields.message, &id.sequence.to_string()));
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        assert_eq!(searcher.segment_readers().len(), 1);
        (vec![searcher], fields, alive)
    }

    /// Every page and count asked of `searchers` is that of sorting every match.
    fn check_against_sorting(searchers: &[Searcher], fields: &LogFields, alive: &[(RecordId, String)], words: &[&str]) {
        let blocks = TimeBlocks::default();
        for word in words.iter().map(|word| Some(*word)).chain([None]) {
            let term;
            let query: &dyn Query = match word {
                Some(word) => {
                    term = TermQuery::new(Term::from_field_text(fields.message, word), IndexRecordOption::Basic);
                    &term
                }
                None => &AllQuery,
            };
            let mut expected: Vec<RecordId> =
                alive.iter().filter(|(_, other)| word.is_none_or(|word| word == other)).map(|(id, _)| *id).collect();
            expected.sort_by_key(|id| (id.timestamp, id.sequence));
            for newest_first in [true, false] {
                let ordered: Vec<RecordId> =
                    if newest_first { expected.iter().rev().copied().collect() } else { expected.clone() };
                for limit in [1, 7, 100, 5000] {
                    for counting in [Counting::Exact, Counting::UpTo(0), Counting::UpTo(150), Counting::UpTo(10_000)] {
                        let context = format!("{word:?} newest_first={newest_first} limit={limit} {counting:?}");
                        let page =
                            top_by_time(searchers, fields, &blocks, query, limit, newest_first, counting).unwrap();
                        let ids: Vec<RecordId> = page.hits.iter().map(|hit| hit.id).collect();
                        let wanted: Vec<RecordId> = ordered.iter().take(limit).copied().collect();
                        assert_eq!(ids, wanted, "{context}");
                        match counting {
                            Counting::Exact => assert!(page.exact && page.total == expected.len(), "{context}"),
                            Counting::UpTo(bound) => {
                                if page.exact {
                                    assert_eq!(page.total, expected.len(), "{context}");
                                } else {
                                    assert!(page.total >= bound && page.total <= expected.len(), "{context}");
                                }
                                if expected.len() < bound {
                                    assert!(page.exact, "{context}: fewer matches than the bound are all counted");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn pages_and_counts_are_those_of_sorting_every_match() {
        let (searchers, fields, alive) = partitions();
        assert!(searchers.iter().all(|searcher| searcher.segment_readers().len() >= 6));
        check_against_sorting(&searchers, &fields, &alive, &["beta"]);
    }

    #[test]
    fn blocks_of_a_long_segment_with_late_records_give_the_same_pages_and_counts() {
        let (searchers, fields, alive) = one_long_segment();
        // "alpha" in 97 % of the records, the others in 1 % each.
        check_against_sorting(&searchers, &fields, &alive, &["alpha", "beta", "delta"]);
    }
}
