//! Decoding of an Elasticsearch `_bulk` body into log records, item by item.
//!
//! The body is NDJSON: an action line (`index`, `create`, `update` or `delete`), followed by a
//! source line for `index` and `create`. Each source document becomes a record by the keys
//! shippers use (see `document`), its service the index's name when it names none; the other
//! fields are kept as attributes. A source that does not parse fails its item only; an action
//! line that does not parse fails the whole request, as in Elasticsearch.

use serde_json::{Map, Value};
use vigil_proto::elasticsearch::BulkError;
use vigil_proto::{LogRecord, Timestamp};

use super::document::{self, Defaults};
use super::{IngestError, latest_timestamp, validate};
use crate::config::LogsConfig;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Index,
    Create,
    Update,
    Delete,
}

/// One action of the request and what became of its document.
#[derive(Debug)]
pub struct BulkEntry {
    pub action: Action,
    pub index: String,
    pub id: Option<String>,
    pub outcome: Result<LogRecord, BulkError>,
}

fn item_error(kind: &str, reason: impl Into<String>) -> BulkError {
    BulkError { kind: kind.to_owned(), reason: reason.into() }
}

/// Refuses a `Content-Type` that is not one of those Elasticsearch's clients send.
pub fn check_content_type(content_type: Option<&str>) -> Result<(), IngestError> {
    let found = content_type.unwrap_or("(none)");
    let essence = found.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson"
        | "application/json"
        | "application/vnd.elasticsearch+x-ndjson"
        | "application/vnd.elasticsearch+json" => Ok(()),
        _ => Err(IngestError::MediaType { found: found.to_owned(), accepted: "application/x-ndjson" }),
    }
}

/// Parses the whole body; `Err` only for what Elasticsearch refuses whole (a bad action line).
pub fn parse_bulk(
    body: &str,
    default_index: Option<&str>,
    limits: &LogsConfig,
    now: Timestamp,
) -> Result<Vec<BulkEntry>, IngestError> {
    let latest = latest_timestamp(limits, now);
    let mut entries = Vec::new();
    let mut lines = body.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    while let Some((index, line)) = lines.next() {
        let line_number = index as u64 + 1;
        let malformed = |reason: String| IngestError::BulkAction { line: line_number, reason };
        if entries.len() == limits.max_batch_records {
            return Err(IngestError::TooMany {
                what: "bulk request",
                limit: limits.max_batch_records,
                items: "actions",
            });
        }
        let action_line: Map<String, Value> =
            serde_json::from_str(line).map_err(|error| malformed(error.to_string()))?;
        let (name, metadata) = match action_line.iter().next() {
            Some((name, metadata)) if action_line.len() == 1 => (name.as_str(), metadata),
            _ => return Err(malformed("expected one action such as {\"index\": {}}".to_owned())),
        };
        let action = match name {
            "index" => Action::Index,
            "create" => Action::Create,
            "update" => Action::Update,
            "delete" => Action::Delete,
            other => return Err(malformed(format!("unknown action {other:?}"))),
        };
        let index = metadata
            .get("_index")
            .and_then(Value::as_str)
            .or(default_index)
            .ok_or_else(|| malformed("no _index in the action and none in the path".to_owned()))?
            .to_owned();
        let id = metadata.get("_id").and_then(|id| match id {
            Value::String(id) => Some(id.clone()),
            Value::Number(id) => Some(id.to_string()),
            _ => None,
        });
        let outcome = match action {
            Action::Index | Action::Create | Action::Update => {
                let Some((_, source)) = lines.next() else {
                    return Err(malformed(format!("the {name} action has no source line")));
                };
                if action == Action::Update {
                    Err(item_error(
                        "action_request_validation_exception",
                        "update is not supported: logs are append-only",
                    ))
                } else {
                    record_from_source(source, &index, limits, now, latest)
                }
            }
            Action::Delete => {
                Err(item_error("action_request_validation_exception", "delete is not supported: logs are append-only"))
            }
        };
        entries.push(BulkEntry { action, index, id, outcome });
    }
    Ok(entries)
}

fn record_from_source(
    source: &str,
    index: &str,
    limits: &LogsConfig,
    now: Timestamp,
    latest: Timestamp,
) -> Result<LogRecord, BulkError> {
    let document: Map<String, Value> = serde_json::from_str(source)
        .map_err(|error| item_error("document_parsing_exception", format!("failed to parse the source: {error}")))?;
    let defaults = Defaults { service: Some(service_of_index(index)), host: None, now };
    let mut record = document::record(document, &defaults)
        .map_err(|reason| item_error("document_parsing_exception", reason.to_string()))?;
    record.attributes.insert("index".to_owned(), Value::String(index.to_owned()));
    validate(&mut record, limits, latest, now)
        .map_err(|reason| item_error("document_parsing_exception", reason.to_string()))?;
    Ok(record)
}

/// The service of documents that name none: their index, without the date that Logstash's
/// and Fluent Bit's `Logstash_Format` add (`logstash-2026.12.01` → `logstash`).
fn service_of_index(index: &str) -> &str {
    let is_date = |text: &str| {
        let parts: Vec<&str> = text.split(['.', '-']).collect();
        parts.len() == 3
            && [4, 2, 2]
                .iter()
                .zip(&parts)
                .all(|(length, part)| part.len() == *length && part.bytes().all(|byte| byte.is_ascii_digit()))
    };
    index
        .match_indices(['-', '_'])
        .map(|(position, _)| position)
        .find(|&position| position > 0 && is_date(&index[position + 1..]))
        .map_or(index, |position| &index[..position])
}

/// Elasticsearch's response filtering, `filter_path`: comma-separated paths of dotted names
/// (`\\.` for a dot in a name), `*` within a name, `**` for any number of levels, a leading
/// `-` to exclude. Arrays are transparent (`items.*.status` reads each element); exclusions
/// apply first, then inclusions keep only what they match and drop what is left empty.
pub fn filter_path(value: serde_json::Value, filters: &str) -> serde_json::Value {
    let parse = |path: &str| -> Vec<String> {
        let mut segments = vec![String::new()];
        let mut characters = path.chars();
        while let Some(character) = characters.next() {
            match character {
                '\\' => segments.last_mut().expect("one segment").extend(characters.next()),
                '.' => segments.push(String::new()),
                other => segments.last_mut().expect("one segment").push(other),
            }
        }
        segments
    };
    let (mut includes, mut excludes) = (Vec::new(), Vec::new());
    for filter in filters.split(',').map(str::trim).filter(|filter| !filter.is_empty()) {
        match filter.strip_prefix('-') {
            Some(excluded) => excludes.push(parse(excluded)),
            None => includes.push(parse(filter)),
        }
    }
    let mut value = value;
    if !excludes.is_empty() {
        let states: Vec<(&[String], usize)> = excludes.iter().map(|path| (path.as_slice(), 0)).collect();
        exclude(&mut value, &states);
    }
    if includes.is_empty() {
        return value;
    }
    let states: Vec<(&[String], usize)> = includes.iter().map(|path| (path.as_slice(), 0)).collect();
    include(&value, &states).unwrap_or_else(|| Value::Object(Map::new()))
}

/// Where each path stands after matching `key`: the positions reached (`**` may stay).
fn advance<'a>(states: &[(&'a [String], usize)], key: &str) -> (Vec<(&'a [String], usize)>, bool) {
    let mut next = Vec::new();
    let mut complete = false;
    for &(path, position) in states {
        let mut position = position;
        // `**` stands for zero or more levels: it stays, and what follows it may match now.
        while path.get(position).is_some_and(|segment| segment == "**") {
            next.push((path, position));
            position += 1;
        }
        match path.get(position) {
            Some(segment) if glob(segment, key) => {
                if position + 1 == path.len() {
                    complete = true;
                } else {
                    next.push((path, position + 1));
                }
            }
            // A path ending in `**` matches whatever is below.
            None => complete = true,
            _ => {}
        }
    }
    (next, complete)
}

fn include(value: &Value, states: &[(&[String], usize)]) -> Option<Value> {
    match value {
        Value::Object(object) => {
            let mut kept = Map::new();
            for (key, child) in object {
                let (next, complete) = advance(states, key);
                if complete {
                    kept.insert(key.clone(), child.clone());
                } else if !next.is_empty()
                    && let Some(child) = include(child, &next)
                {
                    kept.insert(key.clone(), child);
                }
            }
            (!kept.is_empty()).then_some(Value::Object(kept))
        }
        Value::Array(elements) => {
            let kept: Vec<Value> = elements.iter().filter_map(|element| include(element, states)).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        _ => None,
    }
}

fn exclude(value: &mut Value, states: &[(&[String], usize)]) {
    match value {
        Value::Object(object) => {
            object.retain(|key, child| {
                let (next, complete) = advance(states, key);
                if !complete && !next.is_empty() {
                    exclude(child, &next);
                }
                !complete
            });
        }
        Value::Array(elements) => elements.iter_mut().for_each(|element| exclude(element, states)),
        _ => {}
    }
}

/// `*` matches any run of characters, anything else itself.
fn glob(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((prefix, rest)) => {
            let Some(text) = text.strip_prefix(prefix) else { return false };
            (0..=text.len()).filter(|at| text.is_char_boundary(*at)).any(|at| glob(rest, &text[at..]))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_path_keeps_what_elasticsearch_keeps() {
        let response = serde_json::json!({"took": 3, "errors": true, "items": [
            {"create": {"_index": "a", "_id": "1", "status": 201}},
            {"create": {"_index": "a", "status": 400, "error": {"type": "document_parsing_exception", "reason": "bad"}}},
        ]});
        let filtered = |filters: &str| filter_path(response.clone(), filters);
        assert_eq!(
            filtered("errors,items.*.error,items.*.status"),
            serde_json::json!({"errors": true, "items": [
                {"create": {"status": 201}},
                {"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "bad"}}},
            ]})
        );
        // Only the failed items: the others end up empty and go.
        assert_eq!(
            filtered("items.*.error"),
            serde_json::json!({"items": [{"create": {"error": {"type": "document_parsing_exception", "reason": "bad"}}}]})
        );
        assert_eq!(filtered("-took,-items"), serde_json::json!({"errors": true}));
        assert_eq!(
            filtered("**.status"),
            serde_json::json!({"items": [{"create": {"status": 201}}, {"create": {"status": 400}}]})
        );
        assert_eq!(filtered("took,-took"), serde_json::json!({}));
        assert_eq!(filtered("nothing"), serde_json::json!({}));
        assert_eq!(filtered(""), response);
        let dotted = serde_json::json!({"a": 0, "b.c": "value", "b": {"c": "c_value"}});
        assert_eq!(filter_path(dotted, "b\\.c"), serde_json::json!({"b.c": "value"}));
        assert!(glob("stat*", "status") && glob("*", "") && glob("a*c*e", "abcde") && !glob("a*z", "abc"));
    }

    #[test]
    fn indexes_name_services_without_their_date() {
        assert_eq!(service_of_index("logstash-2026.12.01"), "logstash");
        assert_eq!(service_of_index("app-2026-12-01"), "app");
        assert_eq!(service_of_index("fluent-bit"), "fluent-bit");
        assert_eq!(service_of_index("filebeat-8.15.0"), "filebeat-8.15.0");
        assert_eq!(service_of_index("2026.12.01"), "2026.12.01");
    }

    fn limits() -> LogsConfig {
        LogsConfig::default()
    }

    fn now() -> Timestamp {
        "2026-11-29T09:00:00Z".parse().unwrap()
    }

    #[test]
    fn ecs_fields_map_to_the_record() {
        let body = concat!(
            "{\"create\":{\"_index\":\"logs-web\",\"_id\":\"a1\"}}\n",
            "{\"@timestamp\":\"2026-11-29T08:00:00Z\",\"message\":\"GET /\",\"service\":{\"name\":\"web\"},",
            "\"host\":{\"name\":\"web-1\",\"ip\":\"10.0.0.1\"},\"log\":{\"level\":\"WARN\"},\"http\":{\"status\":200}}\n",
        );
        let entries = parse_bulk(body, None, &limits(), now()).unwrap();
        let record = entries[0].outcome.as_ref().unwrap();
        assert_eq!((entries[0].action, entries[0].id.as_deref()), (Action::Create, Some("a1")));
        assert_eq!((record.service.as_str(), record.host.as_str(), record.level.as_str()), ("web", "web-1", "warn"));
        assert_eq!(record.message, "GET /");
        assert_eq!(record.attributes["http"]["status"], 200);
        assert_eq!(record.attributes["host"]["ip"], "10.0.0.1");
        assert_eq!(record.attributes["index"], "logs-web");
    }

    #[test]
    fn a_document_without_message_is_kept_whole_and_epoch_millis_are_dates() {
        let body = "{\"index\":{}}\n{\"@timestamp\":1795939200000,\"beverage\":\"Latte\"}\n";
        let entries = parse_bulk(body, Some("coffee"), &limits(), now()).unwrap();
        let record = entries[0].outcome.as_ref().unwrap();
        assert_eq!(record.timestamp, "2026-11-29T08:00:00Z".parse().unwrap());
        assert_eq!(record.service, "coffee");
        assert_eq!(record.message, "{\"beverage\":\"Latte\"}");
    }

    #[test]
    fn bad_items_fail_alone_and_bad_actions_fail_the_request() {
        let body = concat!(
            "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"ok\"}{\"message\":\"run together\"}\n",
            "{\"delete\":{\"_index\":\"a\",\"_id\":\"1\"}}\n",
            "{\"update\":{\"_index\":\"a\",\"_id\":\"1\"}}\n{\"doc\":{}}\n",
            "{\"index\":{\"_index\":\"a\"}}\n{\"message\":\"fine\"}\n",
        );
        let entries = parse_bulk(body, None, &limits(), now()).unwrap();
        let kinds: Vec<_> =
            entries.iter().map(|entry| entry.outcome.as_ref().err().map(|error| error.kind.as_str())).collect();
        assert_eq!(
            kinds,
            [
                Some("document_parsing_exception"),
                Some("action_request_validation_exception"),
                Some("action_request_validation_exception"),
                None
            ]
        );
        let error = parse_bulk("{\"index\":{}}\n{}\n{\"upsert\":{}}\n", Some("a"), &limits(), now()).unwrap_err();
        assert_eq!(error.line(), Some(3));
        let error = parse_bulk("{\"index\":{}}\n{}\n", None, &limits(), now()).unwrap_err();
        assert!(error.to_string().contains("no _index"), "{error}");
    }
}
