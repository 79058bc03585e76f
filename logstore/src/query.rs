//! Translation of a [`LogQuery`] into a tantivy query: the text in tantivy syntax, the time
//! range, and the pagination cursor.

use std::ops::Bound;

use tantivy::Index;
use tantivy::query::{AllQuery, BooleanQuery, EnableScoring, Occur, Query, QueryParser, RangeQuery, TermQuery};
use tantivy::query_grammar::{UserInputAst, UserInputLeaf};
use tantivy::schema::{Field, IndexRecordOption, Term};
use vigil_proto::{LogQuery, RecordId};

use super::LogStoreError;
use super::schema::LogFields;

/// The longest query text, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;
/// The deepest nesting of parentheses in a query, and the most negations.
pub const MAX_QUERY_DEPTH: usize = 32;

/// Parses `text`; an error names the character offset where the grammar failed, when it did.
/// Queries past [`MAX_QUERY_BYTES`] or [`MAX_QUERY_DEPTH`] are refused before parsing. CPU
/// work: call it on the blocking pool.
pub fn parse_text(index: &Index, fields: &LogFields, text: &str) -> Result<Box<dyn Query>, LogStoreError> {
    if text.len() > MAX_QUERY_BYTES {
        return Err(LogStoreError::InvalidQuery {
            message: format!("the query is longer than {MAX_QUERY_BYTES} bytes"),
            position: Some(MAX_QUERY_BYTES),
        });
    }
    if let Some(position) = too_deep(text) {
        return Err(LogStoreError::InvalidQuery {
            message: format!(
                "the query nests deeper than {MAX_QUERY_DEPTH} levels (parentheses, or negations with NOT and -)"
            ),
            position: Some(position),
        });
    }
    if text.trim().is_empty() {
        return Ok(Box::new(AllQuery));
    }
    let mut parser = QueryParser::for_index(index, vec![fields.message]);
    parser.set_conjunction_by_default();
    parser.allow_regexes();
    let syntax_error = || {
        let (_, grammar_errors) = tantivy::query_grammar::parse_query_lenient(text);
        match grammar_errors.first() {
            Some(grammar_error) => LogStoreError::InvalidQuery {
                message: format!("syntax error at position {}: {}", grammar_error.pos, grammar_error.message),
                position: Some(grammar_error.pos),
            },
            None => LogStoreError::InvalidQuery { message: "syntax error".to_owned(), position: None },
        }
    };
    let mut ast = tantivy::query_grammar::parse_query(text).map_err(|_| syntax_error())?;
    // `/api/` is a regular expression in tantivy's grammar, which needs a field: without one
    // it searches the message, as Lucene's query string does with its default field.
    regexes_search_the_message(&mut ast);
    let query = parser
        .build_query_from_user_input_ast(ast)
        .map_err(|error| LogStoreError::InvalidQuery { message: error.to_string(), position: None })?;
    // Some queries parse but cannot run on this schema (`message:*` needs fast values).
    query.weight(EnableScoring::disabled_from_schema(&index.schema())).map_err(|error| {
        LogStoreError::InvalidQuery { message: format!("this query cannot be answered: {error}"), position: None }
    })?;
    Ok(query)
}

fn regexes_search_the_message(ast: &mut UserInputAst) {
    match ast {
        UserInputAst::Clause(clauses) => clauses.iter_mut().for_each(|(_, clause)| regexes_search_the_message(clause)),
        UserInputAst::Boost(inner, _) => regexes_search_the_message(inner),
        UserInputAst::Leaf(leaf) => {
            if let UserInputLeaf::Regex { field: field @ None, .. } = leaf.as_mut() {
                *field = Some(super::schema::MESSAGE.to_owned());
            }
        }
    }
}

/// The byte offset where the query nests too deep, outside quoted phrases: a parenthesis
/// deeper than [`MAX_QUERY_DEPTH`], or more than [`MAX_QUERY_DEPTH`] negations (`NOT`, `-`,
/// which the grammar nests too: a chain of them needs no parentheses).
fn too_deep(text: &str) -> Option<usize> {
    let (mut depth, mut negations, mut quoted, mut escaped) = (0usize, 0usize, false, false);
    let mut term_start = true;
    for (position, character) in text.char_indices() {
        let at_term_start = std::mem::replace(&mut term_start, false);
        match character {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => quoted = !quoted,
            _ if quoted => {}
            '(' => {
                depth += 1;
                term_start = true;
                if depth > MAX_QUERY_DEPTH {
                    return Some(position);
                }
            }
            ')' => depth = depth.saturating_sub(1),
            '-' | '!' if at_term_start => {
                negations += 1;
                term_start = true;
            }
            'N' if at_term_start
                && text[position..].starts_with("NOT")
                && !text[position + 3..].starts_with(|next: char| next.is_alphanumeric()) =>
            {
                negations += 1;
            }
            character if character.is_whitespace() || character == '+' => term_start = true,
            _ => {}
        }
        if negations > MAX_QUERY_DEPTH {
            return Some(position);
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Box<dyn Query>, LogStoreError> {
        let (schema, fields) = LogFields::schema();
        parse_text(&Index::create_in_ram(schema), &fields, text)
    }

    #[test]
    fn deep_and_long_queries_are_refused_before_parsing() {
        let nested = |depth: usize| format!("{}a{}", "(".repeat(depth), ")".repeat(depth));
        assert!(parse(&nested(MAX_QUERY_DEPTH)).is_ok());
        let Err(LogStoreError::InvalidQuery { message, position }) = parse(&nested(MAX_QUERY_DEPTH + 1)) else {
            panic!("a query nested too deep parses")
        };
        assert!(message.contains("deeper than 32 levels"), "{message}");
        assert_eq!(position, Some(MAX_QUERY_DEPTH));
        // Negations nest without parentheses.
        let negated = |count: usize| format!("{}a", "NOT ".repeat(count));
        assert!(parse(&format!("b AND {}", negated(MAX_QUERY_DEPTH))).is_ok());
        assert!(parse(&format!("b AND {}", negated(MAX_QUERY_DEPTH + 1))).is_err());
        assert!(parse(&format!("b {}", "-".repeat(MAX_QUERY_DEPTH + 1))).is_err());
        assert!(parse(&"b NOTICE x-request-id ".repeat(40)).is_ok(), "words and hyphens are not negations");
        assert!(parse(&format!("\"a {} b\"", "(".repeat(100))).is_ok(), "parentheses in a phrase do not nest");
        let Err(LogStoreError::InvalidQuery { message, .. }) = parse(&"a ".repeat(MAX_QUERY_BYTES)) else {
            panic!("a long query parses")
        };
        assert!(message.contains("longer than 4096 bytes"), "{message}");
    }

    #[test]
    fn paths_with_slashes_are_queries() {
        for text in ["/api/", "/health", "path /api/ x", "/api/v2/items"] {
            assert!(parse(text).is_ok(), "{text}: {:?}", parse(text).err());
        }
    }
}
