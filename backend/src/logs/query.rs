//! Translation of a [`LogQuery`] into a tantivy query: the text in tantivy syntax, the time
//! range, and the pagination cursor.

use std::ops::Bound;

use tantivy::Index;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::schema::{Field, IndexRecordOption, Term};
use vigil_proto::{LogQuery, RecordId};

use super::LogStoreError;
use super::schema::LogFields;

/// Parses `text`; an error names the character offset where the grammar failed, when it did.
pub fn parse_text(index: &Index, fields: &LogFields, text: &str) -> Result<Box<dyn Query>, LogStoreError> {
    if text.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    let mut parser = QueryParser::for_index(index, vec![fields.message]);
    parser.set_conjunction_by_default();
    parser.parse_query(text).map_err(|error| {
        let (_, grammar_errors) = tantivy::query_grammar::parse_query_lenient(text);
        match grammar_errors.first() {
            Some(grammar_error) => LogStoreError::InvalidQuery {
                message: format!("syntax error at position {}: {}", grammar_error.pos, grammar_error.message),
                position: Some(grammar_error.pos),
            },
            None => LogStoreError::InvalidQuery { message: error.to_string(), position: None },
        }
    })
}

fn i64_range(field: Field, lower: Bound<i64>, upper: Bound<i64>) -> Box<dyn Query> {
    let term = |value| Term::from_field_i64(field, value);
    Box::new(RangeQuery::new(lower.map(term), upper.map(term)))
}

fn u64_range(field: Field, lower: Bound<u64>, upper: Bound<u64>) -> Box<dyn Query> {
    let term = |value| Term::from_field_u64(field, value);
    Box::new(RangeQuery::new(lower.map(term), upper.map(term)))
}

/// Records strictly before (`older`) or after `id` in (timestamp, sequence) order.
pub fn beyond(fields: &LogFields, id: RecordId, older: bool) -> Box<dyn Query> {
    let nanos = id.timestamp.as_unix_nanos();
    let (other_timestamps, same_timestamp_sequences) = if older {
        (
            i64_range(fields.timestamp, Bound::Unbounded, Bound::Excluded(nanos)),
            u64_range(fields.sequence, Bound::Unbounded, Bound::Excluded(id.sequence)),
        )
    } else {
        (
            i64_range(fields.timestamp, Bound::Excluded(nanos), Bound::Unbounded),
            u64_range(fields.sequence, Bound::Excluded(id.sequence), Bound::Unbounded),
        )
    };
    let same_timestamp = BooleanQuery::new(vec![
        (Occur::Must, i64_range(fields.timestamp, Bound::Included(nanos), Bound::Included(nanos))),
        (Occur::Must, same_timestamp_sequences),
    ]);
    Box::new(BooleanQuery::new(vec![(Occur::Should, other_timestamps), (Occur::Should, Box::new(same_timestamp))]))
}

/// Exactly the record `id`.
pub fn exactly(fields: &LogFields, id: RecordId) -> Box<dyn Query> {
    let nanos = id.timestamp.as_unix_nanos();
    Box::new(BooleanQuery::new(vec![
        (Occur::Must, i64_range(fields.timestamp, Bound::Included(nanos), Bound::Included(nanos))),
        (Occur::Must, u64_range(fields.sequence, Bound::Included(id.sequence), Bound::Included(id.sequence))),
    ]))
}

/// Records stored after the one with sequence number `after`.
pub fn sequences_after(fields: &LogFields, after: u64) -> Box<dyn Query> {
    u64_range(fields.sequence, Bound::Excluded(after), Bound::Unbounded)
}

/// An exact match on a `STRING` field.
pub fn term(field: Field, value: &str) -> Box<dyn Query> {
    Box::new(TermQuery::new(Term::from_field_text(field, value), IndexRecordOption::Basic))
}

/// The whole query: text, time range, and cursor.
pub fn build(index: &Index, fields: &LogFields, query: &LogQuery) -> Result<Box<dyn Query>, LogStoreError> {
    let mut clauses = vec![(Occur::Must, parse_text(index, fields, &query.q)?)];
    if query.start.is_some() || query.end.is_some() {
        let lower = query.start.map_or(Bound::Unbounded, |start| Bound::Included(start.as_unix_nanos()));
        let upper = query.end.map_or(Bound::Unbounded, |end| Bound::Excluded(end.as_unix_nanos()));
        clauses.push((Occur::Must, i64_range(fields.timestamp, lower, upper)));
    }
    if let Some(cursor) = query.cursor {
        clauses.push((Occur::Must, beyond(fields, cursor, true)));
    }
    if clauses.len() == 1 {
        return Ok(clauses.pop().expect("one clause").1);
    }
    Ok(Box::new(BooleanQuery::new(clauses)))
}
