//! A JSON document from a shipper turned into a record, by the keys shippers put things
//! under: the message under `message`, `log` (Fluent Bit's tail, Docker), `msg`, `MESSAGE`
//! (journald), `short_message` (GELF) or `event.original` (Logstash); the time under
//! `@timestamp`, `timestamp`, `time`, `date` or `ts`, as RFC 3339 or as epoch seconds,
//! milliseconds, microseconds or nanoseconds (told apart by their size); the host under
//! `host.name`, `host.hostname`, `host` (a string), `hostname` or `kubernetes.host`; the
//! level under `log.level` (an object, as ECS writes it, or a dotted key), `level`,
//! `severity` or `PRIORITY`, else detected from the message as the agent does; the service
//! under `service.name`, `service`, `app`, `application` or `kubernetes.container_name`,
//! else a default the endpoint gives. What is taken leaves the document; the rest becomes
//! the record's attributes.
//!
//! Nested (`{"host": {"name": "web-1"}}`) and dotted (`{"host.name": "web-1"}`) keys are
//! read alike.

use serde_json::{Map, Value};
use vigil_proto::level::detect_level;
use vigil_proto::{LogRecord, Timestamp};

use super::Invalid;

const MESSAGE_KEYS: &[&str] = &["message", "log", "msg", "MESSAGE", "short_message", "full_message", "event.original"];
const TIME_KEYS: &[&str] = &["@timestamp", "timestamp", "time", "date", "ts"];
const HOST_KEYS: &[&str] =
    &["host.name", "host.hostname", "host", "hostname", "HOSTNAME", "_HOSTNAME", "kubernetes.host"];
const LEVEL_KEYS: &[&str] = &["log.level", "level", "severity", "PRIORITY"];
const SERVICE_KEYS: &[&str] =
    &["service.name", "service", "app", "application", "kubernetes.container_name", "container.name"];

/// What the endpoint knows when the document does not say.
pub struct Defaults<'a> {
    pub service: Option<&'a str>,
    pub host: Option<&'a str>,
    /// The time of records without one.
    pub now: Timestamp,
}

/// The record a document describes, or why it cannot be one.
pub fn record(mut document: Map<String, Value>, defaults: &Defaults<'_>) -> Result<LogRecord, Invalid> {
    let timestamp = match take_first(&mut document, TIME_KEYS) {
        None => defaults.now,
        Some((key, value)) => timestamp(&value).map_err(|problem| format!("{key} {value}: {problem}"))?,
    };
    let service = take_text(&mut document, SERVICE_KEYS)
        .or_else(|| defaults.service.map(str::to_owned))
        .ok_or_else(|| "missing field `service`: send it in each record, or as ?service= for the batch".to_owned())?;
    let host = take_text(&mut document, HOST_KEYS).or_else(|| defaults.host.map(str::to_owned)).unwrap_or_default();
    let level = take_first(&mut document, LEVEL_KEYS).and_then(|(key, value)| level(key, &value));
    let message = match take_first(&mut document, MESSAGE_KEYS) {
        Some((_, Value::String(text))) => text,
        Some((_, other)) => other.to_string(),
        // What is left is the message.
        None => Value::Object(document.clone()).to_string(),
    };
    let level = level.unwrap_or_else(|| detect_level(&message).to_owned());
    Ok(LogRecord { timestamp, service, host, level, message, attributes: document })
}

/// Whether the document holds a message under one of the usual keys.
pub fn has_message(document: &Map<String, Value>) -> bool {
    MESSAGE_KEYS.iter().any(|key| get(document, key).is_some())
}

/// A time as shippers write it: RFC 3339, or a number (or a string of digits) of epoch
/// seconds (also with a fraction: Fluent Bit's `date`), milliseconds, microseconds (journald)
/// or nanoseconds, the integer's unit told apart by its magnitude.
pub fn timestamp(value: &Value) -> Result<Timestamp, Invalid> {
    let out_of_range = || Invalid::from("out of range");
    // Integers keep their precision (nanoseconds do not fit an f64); fractions are seconds.
    let from_integer = |integer: i64| -> Result<Timestamp, Invalid> {
        let nanos = match integer.unsigned_abs() {
            magnitude if magnitude < 100_000_000_000 => integer.checked_mul(1_000_000_000),
            magnitude if magnitude < 100_000_000_000_000 => integer.checked_mul(1_000_000),
            magnitude if magnitude < 100_000_000_000_000_000 => integer.checked_mul(1_000),
            _ => Some(integer),
        }
        .ok_or_else(out_of_range)?;
        Timestamp::from_unix_nanos(nanos).map_err(|error| Invalid::from(error.to_string()))
    };
    // An f64 of epoch seconds holds about 16 digits: microseconds, which is what shippers
    // write (Fluent Bit's `%.16g`); rounding to them keeps the nanoseconds clean.
    let from_seconds = |seconds: f64| -> Result<Timestamp, Invalid> {
        let micros = (seconds * 1e6).round();
        if !(micros.is_finite() && micros >= 0.0 && micros < (i64::MAX / 1000) as f64) {
            return Err(out_of_range());
        }
        Timestamp::from_unix_nanos(micros as i64 * 1000).map_err(|error| Invalid::from(error.to_string()))
    };
    match value {
        Value::String(text) => match text.parse::<i64>() {
            Ok(integer) => from_integer(integer),
            Err(_) => text
                .parse::<Timestamp>()
                .map_err(|error| Invalid::from(error.to_string()))
                .or_else(|error| text.parse::<f64>().map_err(|_| error).and_then(from_seconds)),
        },
        Value::Number(number) => match number.as_i64() {
            Some(integer) => from_integer(integer),
            None => number.as_f64().ok_or_else(out_of_range).and_then(from_seconds),
        },
        _ => Err("not a time: send RFC 3339 or epoch seconds, milliseconds or nanoseconds".into()),
    }
}

/// A level's name: text as it is (normalised later), pino's numbers (10 trace … 60 fatal),
/// syslog priorities (`PRIORITY`, 0 emergency … 7 debug).
fn level(key: &str, value: &Value) -> Option<String> {
    let number = match value {
        Value::String(text) if key == "PRIORITY" => text.parse::<i64>().ok(),
        Value::String(text) => return (!text.trim().is_empty()).then(|| text.clone()),
        Value::Number(number) => number.as_i64(),
        _ => None,
    }?;
    let name = if key == "PRIORITY" || (0..=7).contains(&number) {
        match number {
            0..=2 => "fatal",
            3 => "error",
            4 => "warn",
            5 | 6 => "info",
            _ => "debug",
        }
    } else {
        match number {
            ..=10 => "trace",
            11..=20 => "debug",
            21..=30 => "info",
            31..=40 => "warn",
            41..=50 => "error",
            _ => "fatal",
        }
    };
    Some(name.to_owned())
}

/// The first of `keys` the document holds (a dotted key also as nested objects), taken out.
fn take_first(document: &mut Map<String, Value>, keys: &[&'static str]) -> Option<(&'static str, Value)> {
    keys.iter().find_map(|key| take(document, key).map(|value| (*key, value)))
}

/// The first of `keys` that holds text, taken out; keys with other values stay.
fn take_text(document: &mut Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|key| match get(document, key) {
        Some(Value::String(text)) if !text.is_empty() => {
            let text = text.clone();
            take(document, key);
            Some(text)
        }
        _ => None,
    })
}

fn get<'a>(document: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    if let Some(value) = document.get(key) {
        return Some(value);
    }
    let (outer, inner) = key.split_once('.')?;
    match document.get(outer)? {
        Value::Object(object) => get(object, inner),
        _ => None,
    }
}

/// Removes `key`, or the nested `outer.inner`, dropping an object left empty.
fn take(document: &mut Map<String, Value>, key: &str) -> Option<Value> {
    if let Some(value) = document.remove(key) {
        return Some(value);
    }
    let (outer, inner) = key.split_once('.')?;
    let Some(Value::Object(object)) = document.get_mut(outer) else {
        return None;
    };
    let value = take(object, inner)?;
    if object.is_empty() {
        document.remove(outer);
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-01T09:00:00Z".parse().unwrap()
    }

    fn read(json: &str, service: Option<&str>) -> Result<LogRecord, super::Invalid> {
        let Value::Object(document) = serde_json::from_str(json).unwrap() else { panic!("an object") };
        record(document, &Defaults { service, host: None, now: now() })
    }

    #[test]
    fn fluent_bit_tail_lines_keep_their_line_as_the_message() {
        let record = read(
            r#"{"@timestamp":"2026-12-01T09:11:14.209Z","log":"2026-12-01 ERROR payment failed"}"#,
            Some("fluent-bit"),
        )
        .unwrap();
        assert_eq!(record.message, "2026-12-01 ERROR payment failed");
        assert_eq!(record.level, "error", "detected from the line");
        assert_eq!(record.service, "fluent-bit");
        assert_eq!(record.timestamp, "2026-12-01T09:11:14.209Z".parse().unwrap());
        assert!(record.attributes.is_empty());
    }

    #[test]
    fn ecs_documents_map_nested_and_dotted_keys() {
        let record = read(
            r#"{"@timestamp":"2026-12-01T09:00:00.000Z","message":"GET /","log":{"level":"WARN","file":{"path":"/var/log/a"}},
                "host":{"name":"web-1","ip":["10.0.0.1"]},"service.name":"web","agent":{"type":"filebeat"}}"#,
            None,
        )
        .unwrap();
        assert_eq!((record.service.as_str(), record.host.as_str(), record.level.as_str()), ("web", "web-1", "WARN"));
        assert_eq!(record.message, "GET /");
        assert_eq!(record.attributes["log"]["file"]["path"], "/var/log/a", "the rest of log stays");
        assert_eq!(record.attributes["host"]["ip"][0], "10.0.0.1");
        assert_eq!(record.attributes["agent"]["type"], "filebeat");
    }

    #[test]
    fn hosts_and_levels_come_from_the_usual_keys() {
        let host = |json: &str| read(json, Some("s")).unwrap().host;
        assert_eq!(host(r#"{"message":"m","host":"vector-host"}"#), "vector-host");
        assert_eq!(host(r#"{"message":"m","hostname":"pino-host"}"#), "pino-host");
        assert_eq!(host(r#"{"message":"m","host":{"hostname":"beat-host"}}"#), "beat-host");
        assert_eq!(host(r#"{"message":"m","kubernetes":{"host":"node-3"}}"#), "node-3");
        let level = |json: &str| read(json, Some("s")).unwrap().level;
        assert_eq!(level(r#"{"msg":"m","level":50}"#), "error", "pino's numbers");
        assert_eq!(level(r#"{"MESSAGE":"m","PRIORITY":"4"}"#), "warn", "syslog priorities");
        assert_eq!(level(r#"{"message":"m","severity":"notice"}"#), "notice");
        assert_eq!(level(r#"{"message":"warning: disk"}"#), "warn");
    }

    #[test]
    fn times_are_rfc3339_or_epoch_numbers_of_any_unit() {
        let at: Timestamp = "2026-12-01T09:12:12.717247Z".parse().unwrap();
        let close = |value: Value| {
            let parsed = timestamp(&value).unwrap().as_unix_nanos();
            (parsed - at.as_unix_nanos()).abs() < 1_000
        };
        assert!(close(serde_json::json!(1796116332.717247_f64)), "Fluent Bit's date, seconds");
        assert_eq!(
            timestamp(&serde_json::json!(1796116332717_i64)).ok(),
            Timestamp::from_unix_nanos(1_796_116_332_717_000_000).ok()
        );
        assert_eq!(
            timestamp(&serde_json::json!("1796116332717247")).ok(),
            Timestamp::from_unix_nanos(1_796_116_332_717_247_000).ok()
        );
        assert_eq!(
            timestamp(&serde_json::json!(1796116332717247123_i64)).ok(),
            Timestamp::from_unix_nanos(1_796_116_332_717_247_123).ok()
        );
        assert_eq!(timestamp(&serde_json::json!("2026-12-01T09:12:12.717247Z")), Ok(at));
        assert!(timestamp(&serde_json::json!("yesterday")).is_err());
        assert!(timestamp(&serde_json::json!(true)).is_err());
    }

    #[test]
    fn without_a_message_the_document_is_the_message_and_a_service_is_needed() {
        let record = read(r#"{"beverage":"Latte","service":"coffee"}"#, None).unwrap();
        assert_eq!(record.message, r#"{"beverage":"Latte"}"#);
        assert!(read(r#"{"message":"m"}"#, None).unwrap_err().to_string().contains("missing field `service`"));
        assert!(
            read(r#"{"message":"m","@timestamp":"noon"}"#, Some("s"))
                .unwrap_err()
                .to_string()
                .starts_with("@timestamp \"noon\": ")
        );
    }
}
