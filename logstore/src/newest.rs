//! The newest (or oldest) matches of a query over several partitions, in time order, and how
//! many match (exactly, or up to a bound).
//!
//! Every segment of every partition is one list of candidates. They are visited newest first
//! (oldest first for the other order) by the time range of their timestamp column; once
//! `limit` matches are held, a segment whose newest record is older than the oldest one held
//! cannot change the page and is only counted. Within a segment the same holds for its blocks
//! (see `times`): records are stored roughly in the order they happened, so the newest
//! matches usually lie in a segment's last block or two, and the rest of the segment is
//! skipped, or counted only as far as [`Counting`] asks. The time range and the cursor
//! ([`Within`]) are applied here, on the timestamps read anyway, rather than as a range query
//! that would scan the whole column. Matches' timestamps are read 64 at a time, and only a
//! match newer than the held page's oldest costs more. Stored documents are read for the final
//! page alone, after the merge across partitions.

use std::sync::Arc;

use tantivy::fastfield::AliveBitSet;
use tantivy::query::{EnableScoring, Query, Scorer, Weight};
use tantivy::{DocAddress, DocId, Searcher, SegmentReader, TERMINATED};
use vigil_proto::{LogHit, LogQuery};

use super::schema::StoredHit;
use super::times::{BlockRange, SegmentColumns, SegmentTimes};

/// Blocks of a segment visited best first, each with a scorer of its own, before the rest of
/// the segment is walked in document order by one scorer (that skips what cannot matter).
const BEST_FIRST_BLOCKS: usize = 4;

/// Matches (as the scorer estimates them) up to which a segment is walked once in document
/// order rather than block by block; at least twice the page.
const SPARSE_MATCHES: usize = 512;

/// How far to count the matches beside the page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counting {
    /// Every match: what a count is asked for (alert rules, gates, panels).
    Exact,
    /// Until this many are counted; the count is then a lower bound (`exact` is false).
    UpTo(usize),
}

/// The records a page may hold: from `start` (inclusive) to before `before`, a (timestamp,
/// sequence) key (exclusive): the end of the range is `(end, 0)`, a cursor is its record's key.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Within {
    pub start: Option<i64>,
    pub before: Option<(i64, u64)>,
}

/// How the records of a time range lie against [`Within`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Overlap {
    None,
    Some,
    All,
}

impl Within {
    /// The range and cursor of a search.
    pub fn of(query: &LogQuery) -> Self {
        let end = query.end.map(|end| (end.as_unix_nanos(), 0));
        let cursor = query.cursor.map(|cursor| (cursor.timestamp.as_unix_nanos(), cursor.sequence));
        let before = match (end, cursor) {
            (Some(end), Some(cursor)) => Some(end.min(cursor)),
            (end, cursor) => end.or(cursor),
        };
        Self { start: query.start.map(|start| start.as_unix_nanos()), before }
    }

    fn holds(&self, timestamp: i64, sequence: impl FnOnce() -> u64) -> bool {
        if self.start.is_some_and(|start| timestamp < start) {
            return false;
        }
        self.before.is_none_or(|(before, sequence_before)| {
            timestamp < before || (timestamp == before && sequence() < sequence_before)
        })
    }

    fn overlap(&self, min: i64, max: i64) -> Overlap {
        let after_start = |timestamp: i64| self.start.is_none_or(|start| timestamp >= start);
        // A record at the cursor's timestamp may be before it (a lower sequence).
        let before_end = |timestamp: i64| self.before.is_none_or(|(before, _)| timestamp < before);
        let at_or_before_end = |timestamp: i64| self.before.is_none_or(|(before, _)| timestamp <= before);
        if !after_start(max) || !at_or_before_end(min) || min > max {
            Overlap::None
        } else if after_start(min) && before_end(max) {
            Overlap::All
        } else {
            Overlap::Some
        }
    }

    /// The newest (oldest) timestamp in `min..=max` a page can hold, as the best key there.
    fn best_possible(&self, min: i64, max: i64, newest_first: bool) -> Key {
        if newest_first {
            best_at(self.before.map_or(max, |(before, _)| max.min(before)), true)
        } else {
            best_at(self.start.map_or(min, |start| min.max(start)), false)
        }
    }
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
}

/// One segment to visit, and the best key any of its records could have.
struct Segment<'a> {
    searcher: usize,
    ordinal: u32,
    reader: &'a SegmentReader,
    columns: Arc<SegmentColumns>,
    overlap: Overlap,
    best_possible: Key,
}

/// Up to `limit` records matching `query` within `within` across `searchers` (each with its
/// segments' columns), in time order (newest first or oldest first), and the number of
/// matches, counted as `counting` asks.
pub fn top_by_time(
    searchers: &[(Searcher, Arc<SegmentTimes>)],
    query: &dyn Query,
    within: Within,
    limit: usize,
    newest_first: bool,
    counting: Counting,
) -> tantivy::Result<TopByTime> {
    let limit = limit.max(1);
    let weights = searchers
        .iter()
        .map(|(searcher, _)| query.weight(EnableScoring::disabled_from_searcher(searcher)))
        .collect::<tantivy::Result<Vec<Box<dyn Weight>>>>()?;
    let mut segments = Vec::new();
    for (index, (searcher, times)) in searchers.iter().enumerate() {
        for (ordinal, reader) in searcher.segment_readers().iter().enumerate() {
            if reader.max_doc() == 0 {
                continue;
            }
            let columns = times.of(reader)?;
            let (min, max) = (columns.timestamps.min_value(), columns.timestamps.max_value());
            let overlap = within.overlap(min, max);
            if overlap == Overlap::None {
                continue;
            }
            let best_possible = within.best_possible(min, max, newest_first);
            segments.push(Segment {
                searcher: index,
                ordinal: ordinal as u32,
                reader,
                columns,
                overlap,
                best_possible,
            });
        }
    }
    segments.sort_unstable_by_key(|segment| std::cmp::Reverse(segment.best_possible));

    let mut best = Best::new(limit);
    let mut tally = Tally { total: 0, counting, exact: true };
    for segment in &segments {
        let weight = weights[segment.searcher].as_ref();
        let visit = Visit { weight, segment, within, newest_first, alive: segment.reader.alive_bitset() };
        visit.run(&mut best, &mut tally)?;
    }

    let hits = best
        .into_sorted()
        .into_iter()
        .map(|candidate| searchers[candidate.searcher].0.doc::<StoredHit>(candidate.address).map(|StoredHit(hit)| hit))
        .collect::<tantivy::Result<Vec<_>>>()?;
    Ok(TopByTime { hits, total: tally.total, exact: tally.exact })
}

/// One segment's visit.
struct Visit<'a> {
    weight: &'a dyn Weight,
    segment: &'a Segment<'a>,
    within: Within,
    newest_first: bool,
    alive: Option<&'a AliveBitSet>,
}

impl Visit<'_> {
    /// Offers the matches of the segment that can enter the page to `best`, block by block,
    /// and counts the segment's matches as far as `tally` wants.
    fn run(&self, best: &mut Best, tally: &mut Tally) -> tantivy::Result<()> {
        let (reader, columns) = (self.segment.reader, &self.segment.columns);
        let max_doc = reader.max_doc();
        // Only a segment wholly within has the weight's own count (a term's document frequency).
        let counted_whole = tally.counting == Counting::Exact && self.segment.overlap == Overlap::All;
        if !best.admits(self.segment.best_possible) {
            return self.count_only(tally, counted_whole);
        }
        // A segment of few matches is walked once, in document order: a scorer for each block
        // would look the query's terms up in the dictionary again for each.
        let first = self.weight.scorer(reader, 1.0)?;
        if (first.size_hint() as usize) <= (2 * best.limit).max(SPARSE_MATCHES) {
            let mut scorer = first;
            tally.total += self.offer_until(scorer.as_mut(), TERMINATED, best);
            best.cut();
            return Ok(());
        }
        let mut spare = Some(first);
        let blocks = &columns.blocks;
        let best_of = |block: &BlockRange| self.within.best_possible(block.min, block.max, self.newest_first);
        let mut matched = 0usize;
        let mut visited = vec![false; blocks.len()];
        let mut order: Vec<usize> = (0..blocks.len())
            .filter(|&block| self.within.overlap(blocks[block].min, blocks[block].max) != Overlap::None)
            .collect();
        order.sort_unstable_by_key(|&block| std::cmp::Reverse(best_of(&blocks[block])));
        for &block in order.iter().take(BEST_FIRST_BLOCKS) {
            if !best.admits(best_of(&blocks[block])) {
                break;
            }
            let (start, end) = columns.bounds(block, max_doc);
            let mut scorer = match spare.take() {
                Some(scorer) => scorer,
                None => self.weight.scorer(reader, 1.0)?,
            };
            seek(scorer.as_mut(), start);
            matched += self.offer_until(scorer.as_mut(), end, best);
            best.cut();
            visited[block] = true;
        }

        // The rest in document order, with one scorer: a block that can still hold a better
        // match is offered, one that cannot is counted while a count is wanted beyond what the
        // weight's count of the whole segment gives, and skipped otherwise.
        let mut skipped = false;
        let mut scorer: Option<Box<dyn Scorer>> = None;
        for (block, range) in blocks.iter().enumerate() {
            let overlap = self.within.overlap(range.min, range.max);
            if visited[block] || overlap == Overlap::None {
                continue;
            }
            let admitted = best.admits(best_of(range));
            let wanted = tally.wanted().saturating_sub(matched);
            if !admitted && (counted_whole || wanted == 0) {
                skipped = true;
                continue;
            }
            let (start, end) = columns.bounds(block, max_doc);
            let scorer = match &mut scorer {
                Some(scorer) => scorer,
                None => scorer.insert(match spare.take() {
                    Some(scorer) => scorer,
                    None => self.weight.scorer(reader, 1.0)?,
                }),
            };
            seek(scorer.as_mut(), start);
            if admitted {
                matched += self.offer_until(scorer.as_mut(), end, best);
                best.cut();
            } else {
                let counted = self.count_until(scorer.as_mut(), end, wanted, overlap == Overlap::Some);
                matched += counted;
                skipped |= counted >= wanted;
            }
        }
        best.cut();
        if !skipped {
            tally.total += matched;
        } else if counted_whole {
            tally.total += self.weight.count(reader)? as usize;
        } else {
            tally.total += matched;
            tally.exact = false;
        }
        Ok(())
    }

    /// Counts a segment none of whose matches can enter the page.
    fn count_only(&self, tally: &mut Tally, counted_whole: bool) -> tantivy::Result<()> {
        if counted_whole {
            tally.total += self.weight.count(self.segment.reader)? as usize;
            return Ok(());
        }
        let wanted = tally.wanted();
        if wanted == 0 {
            tally.exact = false;
            return Ok(());
        }
        let mut scorer = self.weight.scorer(self.segment.reader, 1.0)?;
        let counted = self.count_until(scorer.as_mut(), TERMINATED, wanted, self.segment.overlap == Overlap::Some);
        tally.total += counted;
        if counted >= wanted {
            tally.exact = false;
        }
        Ok(())
    }

    /// Counts the live matches within from `scorer`'s current one up to `end` (exclusive),
    /// stopping at `wanted`; `check` reads each one's timestamp (a block only partly within).
    fn count_until(&self, scorer: &mut dyn Scorer, end: DocId, wanted: usize, check: bool) -> usize {
        let columns = &self.segment.columns;
        let mut counted = 0;
        let mut doc = scorer.doc();
        while doc < end && counted < wanted {
            if self.alive.is_none_or(|alive| alive.is_alive(doc))
                && (!check || self.within.holds(columns.timestamps.get_val(doc), || columns.sequences.get_val(doc)))
            {
                counted += 1;
            }
            doc = scorer.advance();
        }
        counted
    }

    /// Offers the live matches within from `scorer`'s current one up to `end` (exclusive) to
    /// `best`; answers how many there were.
    fn offer_until(&self, scorer: &mut dyn Scorer, end: DocId, best: &mut Best) -> usize {
        let columns = &self.segment.columns;
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
            columns.timestamps.get_vals(&docs[..held], &mut timestamps[..held]);
            for (&doc, &timestamp) in docs[..held].iter().zip(&timestamps[..held]) {
                if !self.within.holds(timestamp, || columns.sequences.get_val(doc)) {
                    continue;
                }
                matched += 1;
                // A record of an older timestamp than the threshold's cannot enter, whatever
                // its sequence: only then is the sequence read.
                if !best.admits(best_at(timestamp, self.newest_first)) {
                    continue;
                }
                let key = key(timestamp, columns.sequences.get_val(doc), self.newest_first);
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

/// Moves `scorer` to its first match at or after `target`, if it is not there already.
fn seek(scorer: &mut dyn Scorer, target: DocId) {
    if scorer.doc() < target {
        scorer.seek(target);
    }
}

#[cfg(test)]
mod tests {
    use tantivy::query::{AllQuery, TermQuery};
    use tantivy::schema::IndexRecordOption;
    use tantivy::{Index, IndexWriter, Term};
    use vigil_proto::{LogRecord, RecordId, Timestamp};

    use super::*;
    use crate::schema::LogFields;

    /// A deterministic generator of numbers below its argument (xorshift).
    fn xorshift(mut state: u64) -> impl FnMut(u64) -> u64 {
        move |bound| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        }
    }

    /// Three indexes (partitions) of several segments each, whose time ranges overlap, with
    /// timestamps shared by several records (the sequence decides) and some records deleted.
    fn partitions() -> (Vec<Searcher>, LogFields, Vec<(RecordId, String)>) {
        let (schema, fields) = LogFields::schema();
        let mut alive = Vec::new();
        let mut searchers = Vec::new();
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
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
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
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
        let searchers: Vec<_> = searchers.iter().map(|searcher| (searcher.clone(), Arc::default())).collect();
        let mut keys: Vec<(i64, u64)> =
            alive.iter().map(|(id, _)| (id.timestamp.as_unix_nanos(), id.sequence)).collect();
        keys.sort_unstable();
        let at = |fraction: usize| keys[keys.len() * fraction / 10];
        // A record sharing its cursor's timestamp, if any, so that the sequence decides.
        let middle = keys.len() / 2;
        let tied = keys[middle..].windows(2).find(|pair| pair[0].0 == pair[1].0).map_or(at(5), |pair| pair[1]);
        let withins = [
            Within::default(),
            Within { start: Some(at(3).0), before: None },
            Within { start: None, before: Some((at(8).0, 0)) },
            Within { start: Some(at(2).0), before: Some(tied) },
            Within { start: Some(at(6).0), before: Some((at(6).0 + 1, 0)) },
        ];
        for (word, within) in
            words.iter().map(|word| Some(*word)).chain([None]).flat_map(|word| withins.map(|within| (word, within)))
        {
            let term;
            let query: &dyn Query = match word {
                Some(word) => {
                    term = TermQuery::new(Term::from_field_text(fields.message, word), IndexRecordOption::Basic);
                    &term
                }
                None => &AllQuery,
            };
            let mut expected: Vec<RecordId> = alive
                .iter()
                .filter(|(id, other)| {
                    let key = (id.timestamp.as_unix_nanos(), id.sequence);
                    word.is_none_or(|word| word == other)
                        && within.start.is_none_or(|start| key.0 >= start)
                        && within.before.is_none_or(|before| key < before)
                })
                .map(|(id, _)| *id)
                .collect();
            expected.sort_by_key(|id| (id.timestamp, id.sequence));
            for newest_first in [true, false] {
                let ordered: Vec<RecordId> =
                    if newest_first { expected.iter().rev().copied().collect() } else { expected.clone() };
                for limit in [1, 7, 100, 5000] {
                    for counting in [Counting::Exact, Counting::UpTo(0), Counting::UpTo(150), Counting::UpTo(10_000)] {
                        let context =
                            format!("{word:?} {within:?} newest_first={newest_first} limit={limit} {counting:?}");
                        let page = top_by_time(&searchers, query, within, limit, newest_first, counting).unwrap();
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
