//! The tantivy schema of a log record, and conversion between records and documents.

use tantivy::TantivyDocument;
use tantivy::schema::{FAST, Field, JsonObjectOptions, OwnedValue, STORED, STRING, Schema, TEXT, Value};
use vigil_proto::{LogHit, LogRecord, RecordId, Timestamp};

pub const TIMESTAMP: &str = "timestamp";
pub const SEQUENCE: &str = "seq";
pub const LEVEL: &str = "level";
pub const SERVICE: &str = "service";
pub const HOST: &str = "host";
pub const MESSAGE: &str = "message";

/// The fields of the log schema. Timestamp (Unix nanoseconds) and sequence are fast fields
/// only; service, host and level match exactly and are fast; the message is full text with
/// positions; attributes are a JSON field searchable as `attributes.key:value`. The sequence number,
/// given by the writer, makes (timestamp, sequence) unique: the record's id.
#[derive(Clone, Copy)]
pub struct LogFields {
    pub timestamp: Field,
    pub sequence: Field,
    pub service: Field,
    pub host: Field,
    pub level: Field,
    pub message: Field,
    pub attributes: Field,
}

impl LogFields {
    pub fn schema() -> (Schema, Self) {
        let mut builder = Schema::builder();
        let fields = Self {
            // Ranges over the timestamp and the sequence run on their fast fields: terms of
            // values unique to almost every record would cost a quarter of the indexing time.
            timestamp: builder.add_i64_field(TIMESTAMP, STORED | FAST),
            sequence: builder.add_u64_field(SEQUENCE, STORED | FAST),
            service: builder.add_text_field(SERVICE, STRING | STORED | FAST),
            host: builder.add_text_field(HOST, STRING | STORED | FAST),
            level: builder.add_text_field(LEVEL, STRING | STORED | FAST),
            message: builder.add_text_field(MESSAGE, TEXT | STORED),
            // Dotted keys (`http.method`, as OpenTelemetry writes them) are paths, so that
            // `attributes.http.method:GET` finds them as it finds nested objects.
            attributes: builder
                .add_json_field("attributes", JsonObjectOptions::from(TEXT | STORED).set_expand_dots_enabled()),
        };
        (builder.build(), fields)
    }

    /// The document of a record; it takes the record so that its attributes are not copied.
    pub fn document(&self, record: LogRecord, sequence: u64) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_i64(self.timestamp, record.timestamp.as_unix_nanos());
        document.add_u64(self.sequence, sequence);
        document.add_text(self.service, &record.service);
        document.add_text(self.host, &record.host);
        document.add_text(self.level, &record.level);
        document.add_text(self.message, &record.message);
        if !record.attributes.is_empty() {
            document.add_field_value(self.attributes, &OwnedValue::from(record.attributes));
        }
        document
    }

    pub fn hit(&self, document: &TantivyDocument) -> LogHit {
        let text =
            |field: Field| document.get_first(field).and_then(|value| value.as_str()).unwrap_or_default().to_owned();
        let nanos = document.get_first(self.timestamp).and_then(|value| value.as_i64()).unwrap_or_default();
        let attributes =
            match document.get_first(self.attributes).map(|value| serde_json::to_value(OwnedValue::from(value))) {
                Some(Ok(serde_json::Value::Object(map))) => map,
                _ => serde_json::Map::new(),
            };
        let timestamp = Timestamp::from_unix_nanos(nanos).unwrap_or(Timestamp::MIN);
        let sequence = document.get_first(self.sequence).and_then(|value| value.as_u64()).unwrap_or_default();
        LogHit {
            id: RecordId { timestamp, sequence },
            timestamp,
            service: text(self.service),
            host: text(self.host),
            level: text(self.level),
            message: text(self.message),
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_survives_the_round_trip_through_a_document() {
        let (_, fields) = LogFields::schema();
        let record = LogRecord {
            timestamp: Timestamp::from_unix_nanos(1_795_939_200_123_456_789).unwrap(),
            service: "checkout".to_owned(),
            host: "web-1".to_owned(),
            level: "error".to_owned(),
            message: "payment provider timed out".to_owned(),
            attributes: serde_json::json!({"order": 42, "region": "eu", "nested": {"ok": false}})
                .as_object()
                .unwrap()
                .clone(),
        };
        let hit = fields.hit(&fields.document(record.clone(), 7));
        assert_eq!(hit.id, RecordId { timestamp: record.timestamp, sequence: 7 });
        assert_eq!(
            (hit.timestamp, hit.service, hit.host, hit.level, hit.message, hit.attributes),
            (record.timestamp, record.service, record.host, record.level, record.message, record.attributes)
        );
    }
}
