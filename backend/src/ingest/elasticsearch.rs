//! Decoding of an Elasticsearch `_bulk` body into log records, item by item.
//!
//! The body is NDJSON: an action line (`index`, `create`, `update` or `delete`), followed by a
//! source line for `index` and `create`. Each source document becomes a record: `@timestamp`
//! (RFC 3339 or epoch milliseconds; the receive time when absent), `message` (the whole
//! document as JSON when it has none), `service.name`/`service` (else the index), `host.name`/
//! `host`, `log.level`/`level`; the other fields are kept as attributes. A source that does not
//! parse fails its item only; an action line that does not parse fails the whole request, as
//! in Elasticsearch.

use serde_json::{Map, Value};
use vigil_proto::elasticsearch::BulkError;
use vigil_proto::{ApiError, ErrorCode, LogRecord, Timestamp};

use super::{latest_timestamp, validate};
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

/// Parses the whole body; `Err` only for what Elasticsearch refuses whole (a bad action line).
pub fn parse_bulk(
    body: &str,
    default_index: Option<&str>,
    limits: &LogsConfig,
    now: Timestamp,
) -> Result<Vec<BulkEntry>, ApiError> {
    let latest = latest_timestamp(limits, now);
    let mut entries = Vec::new();
    let mut lines = body.lines().enumerate().filter(|(_, line)| !line.trim().is_empty());
    while let Some((index, line)) = lines.next() {
        let line_number = index as u64 + 1;
        let malformed = |reason: String| {
            ApiError::new(
                ErrorCode::InvalidJson,
                format!("line {line_number}: malformed action/metadata line: {reason}"),
            )
            .at_line(line_number)
        };
        if entries.len() == limits.max_batch_records {
            return Err(ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!("bulk request holds more than {} actions", limits.max_batch_records),
            ));
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
    let mut document: Map<String, Value> = serde_json::from_str(source)
        .map_err(|error| item_error("document_parsing_exception", format!("failed to parse the source: {error}")))?;
    let timestamp = match take_first(&mut document, &["@timestamp", "timestamp", "time"]) {
        None => now,
        Some(Value::String(text)) => text.parse::<Timestamp>().map_err(|error| {
            item_error("document_parsing_exception", format!("failed to parse @timestamp: {error}"))
        })?,
        Some(Value::Number(millis)) => millis
            .as_i64()
            .and_then(|millis| millis.checked_mul(1_000_000))
            .and_then(|nanos| Timestamp::from_unix_nanos(nanos).ok())
            .ok_or_else(|| item_error("document_parsing_exception", format!("@timestamp {millis} is out of range")))?,
        Some(other) => {
            return Err(item_error("document_parsing_exception", format!("@timestamp {other} is not a date")));
        }
    };
    let service = take_nested(&mut document, "service", "name").unwrap_or_else(|| index.to_owned());
    let host = take_nested(&mut document, "host", "name")
        .or_else(|| take_nested(&mut document, "host", "hostname"))
        .unwrap_or_default();
    let level = take_nested(&mut document, "log", "level")
        .or_else(|| take_string(&mut document, "level"))
        .or_else(|| take_string(&mut document, "severity"))
        .unwrap_or_else(|| "unknown".to_owned());
    let message = match take_string(&mut document, "message").or_else(|| take_string(&mut document, "msg")) {
        Some(message) => message,
        None => Value::Object(document.clone()).to_string(),
    };
    let mut record = LogRecord { timestamp, service, host, level, message, attributes: document };
    record.attributes.insert("index".to_owned(), Value::String(index.to_owned()));
    validate(&mut record, limits, latest, now).map_err(|reason| item_error("document_parsing_exception", reason))?;
    Ok(record)
}

fn take_first(document: &mut Map<String, Value>, keys: &[&str]) -> Option<Value> {
    keys.iter().find_map(|key| document.remove(*key))
}

fn take_string(document: &mut Map<String, Value>, key: &str) -> Option<String> {
    match document.get(key) {
        Some(Value::String(_)) => match document.remove(key) {
            Some(Value::String(text)) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// `outer.inner` as ECS writes it (`{"service": {"name": "x"}}`), or `outer` as a plain
/// string; the taken value leaves the document.
fn take_nested(document: &mut Map<String, Value>, outer: &str, inner: &str) -> Option<String> {
    if let Some(Value::Object(object)) = document.get_mut(outer) {
        let value = take_string(object, inner);
        if object.is_empty() {
            document.remove(outer);
        }
        return value;
    }
    take_string(document, outer)
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(error.line, Some(3));
        let error = parse_bulk("{\"index\":{}}\n{}\n", None, &limits(), now()).unwrap_err();
        assert!(error.message.contains("no _index"), "{}", error.message);
    }
}
