//! The tantivy schema of a log record, and conversion between records and documents.

use tantivy::TantivyDocument;
use tantivy::schema::document::{
    ArrayAccess, DeserializeError, DocumentDeserialize, DocumentDeserializer, ObjectAccess, ValueDeserialize,
    ValueDeserializer, ValueVisitor,
};
use tantivy::schema::{FAST, Field, JsonObjectOptions, OwnedValue, STORED, STRING, Schema, TEXT};
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
        let ids = |fields: &Self| {
            [
                fields.timestamp,
                fields.sequence,
                fields.service,
                fields.host,
                fields.level,
                fields.message,
                fields.attributes,
            ]
        };
        assert_eq!(ids(&fields), ids(&Self::IDS), "the log schema's fields have the ids StoredHit reads");
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

    /// The fields in the order [`LogFields::schema`] adds them, which gives them their ids: what
    /// [`StoredHit`] reads a stored document by.
    const IDS: Self = Self {
        timestamp: Field::from_field_id(0),
        sequence: Field::from_field_id(1),
        service: Field::from_field_id(2),
        host: Field::from_field_id(3),
        level: Field::from_field_id(4),
        message: Field::from_field_id(5),
        attributes: Field::from_field_id(6),
    };
}

/// A record read straight from its stored document, without tantivy's document in between:
/// the strings are moved, not copied, and the attributes become JSON as they are read.
pub struct StoredHit(pub LogHit);

impl DocumentDeserialize for StoredHit {
    fn deserialize<'de, D>(mut deserializer: D) -> Result<Self, DeserializeError>
    where
        D: DocumentDeserializer<'de>,
    {
        let fields = LogFields::IDS;
        let (mut nanos, mut sequence) = (None, None);
        let (mut service, mut host, mut level, mut message, mut attributes) = (None, None, None, None, None);
        while let Some((field, StoredJson(value))) = deserializer.next_field::<StoredJson>()? {
            // The first value of a field, as `get_first` takes it.
            fn first_text(slot: &mut Option<String>, value: serde_json::Value) {
                if let (None, serde_json::Value::String(text)) = (&slot, value) {
                    *slot = Some(text);
                }
            }
            match field {
                _ if field == fields.timestamp => nanos = nanos.or(value.as_i64()),
                _ if field == fields.sequence => sequence = sequence.or(value.as_u64()),
                _ if field == fields.service => first_text(&mut service, value),
                _ if field == fields.host => first_text(&mut host, value),
                _ if field == fields.level => first_text(&mut level, value),
                _ if field == fields.message => first_text(&mut message, value),
                _ if field == fields.attributes => {
                    if let (None, serde_json::Value::Object(map)) = (&attributes, value) {
                        attributes = Some(map);
                    }
                }
                _ => {}
            }
        }
        let timestamp = Timestamp::from_unix_nanos(nanos.unwrap_or_default()).unwrap_or(Timestamp::MIN);
        Ok(Self(LogHit {
            id: RecordId { timestamp, sequence: sequence.unwrap_or_default() },
            timestamp,
            service: service.unwrap_or_default(),
            host: host.unwrap_or_default(),
            level: level.unwrap_or_default(),
            message: message.unwrap_or_default(),
            attributes: attributes.unwrap_or_default(),
        }))
    }
}

/// A stored value read as JSON.
struct StoredJson(serde_json::Value);

impl ValueDeserialize for StoredJson {
    fn deserialize<'de, D>(deserializer: D) -> Result<Self, DeserializeError>
    where
        D: ValueDeserializer<'de>,
    {
        deserializer.deserialize_any(JsonVisitor).map(StoredJson)
    }
}

/// Builds the JSON of a stored value as `OwnedValue`'s serialization would: dates (strings
/// that looked like RFC 3339 when indexed) as RFC 3339 in UTC.
struct JsonVisitor;

impl ValueVisitor for JsonVisitor {
    type Value = serde_json::Value;

    fn visit_null(&self) -> Result<Self::Value, DeserializeError> {
        Ok(serde_json::Value::Null)
    }

    fn visit_string(&self, value: String) -> Result<Self::Value, DeserializeError> {
        Ok(serde_json::Value::String(value))
    }

    fn visit_u64(&self, value: u64) -> Result<Self::Value, DeserializeError> {
        Ok(value.into())
    }

    fn visit_i64(&self, value: i64) -> Result<Self::Value, DeserializeError> {
        Ok(value.into())
    }

    fn visit_f64(&self, value: f64) -> Result<Self::Value, DeserializeError> {
        Ok(serde_json::Number::from_f64(value).map_or(serde_json::Value::Null, serde_json::Value::Number))
    }

    fn visit_bool(&self, value: bool) -> Result<Self::Value, DeserializeError> {
        Ok(serde_json::Value::Bool(value))
    }

    fn visit_datetime(&self, value: tantivy::DateTime) -> Result<Self::Value, DeserializeError> {
        let text = value
            .into_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .map_err(DeserializeError::custom)?;
        Ok(serde_json::Value::String(text))
    }

    fn visit_array<'de, A>(&self, mut access: A) -> Result<Self::Value, DeserializeError>
    where
        A: ArrayAccess<'de>,
    {
        let mut values = Vec::with_capacity(access.size_hint());
        while let Some(StoredJson(value)) = access.next_element()? {
            values.push(value);
        }
        Ok(serde_json::Value::Array(values))
    }

    fn visit_object<'de, A>(&self, mut access: A) -> Result<Self::Value, DeserializeError>
    where
        A: ObjectAccess<'de>,
    {
        let mut map = serde_json::Map::new();
        while let Some((key, StoredJson(value))) = access.next_entry()? {
            map.insert(key, value);
        }
        Ok(serde_json::Value::Object(map))
    }
}

#[cfg(test)]
mod tests {
    use tantivy::{Index, IndexWriter};

    use super::*;

    #[test]
    fn a_record_survives_the_round_trip_through_a_stored_document() {
        let (schema, fields) = LogFields::schema();
        let record = LogRecord {
            timestamp: Timestamp::from_unix_nanos(1_795_939_200_123_456_789).unwrap(),
            service: "checkout".to_owned(),
            host: "web-1".to_owned(),
            level: "error".to_owned(),
            message: "payment provider timed out".to_owned(),
            attributes: serde_json::json!({
                "order": 42, "region": "eu", "nested": {"ok": false, "none": null},
                "ratio": 0.25, "big": u64::MAX, "below": -7, "tags": ["a", 1, {"b": true}],
                "at": "2026-03-01T10:00:00.5+02:00",
            })
            .as_object()
            .unwrap()
            .clone(),
        };
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        writer.add_document(fields.document(record.clone(), 7)).unwrap();
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        let address = tantivy::DocAddress::new(0, 0);
        let StoredHit(hit) = searcher.doc::<StoredHit>(address).unwrap();
        assert_eq!(hit.id, RecordId { timestamp: record.timestamp, sequence: 7 });
        // A string that looked like a date was indexed as one, and reads back in UTC.
        let mut expected = record.attributes.clone();
        expected.insert("at".to_owned(), "2026-03-01T08:00:00.5Z".into());
        assert_eq!(
            (hit.timestamp, &hit.service, &hit.host, &hit.level, &hit.message, &hit.attributes),
            (record.timestamp, &record.service, &record.host, &record.level, &record.message, &expected)
        );
        // The same as reading tantivy's document and serializing its attributes.
        let document = searcher.doc::<TantivyDocument>(address).unwrap();
        let attributes =
            serde_json::to_value(OwnedValue::from(document.get_first(fields.attributes).unwrap())).unwrap();
        assert_eq!(serde_json::Value::Object(hit.attributes), attributes);
    }
}
