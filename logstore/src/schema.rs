//! The tantivy schema of a log record, and conversion between records and documents.

use serde_json::Map;
use tantivy::TantivyDocument;
use tantivy::schema::document::{
    ArrayAccess, DeserializeError, DocumentDeserialize, DocumentDeserializer, ObjectAccess, ValueDeserialize,
    ValueDeserializer, ValueVisitor,
};
use tantivy::schema::{FAST, Field, JsonObjectOptions, OwnedValue, STORED, STRING, Schema, TEXT, TextOptions};
use vigil_proto::{LogHit, LogRecord, RecordId, Timestamp};

pub const TIMESTAMP: &str = "timestamp";
pub const SEQUENCE: &str = "seq";
pub const LEVEL: &str = "level";
pub const SERVICE: &str = "service";
pub const HOST: &str = "host";
pub const MESSAGE: &str = "message";
/// The stored field of format 3 that holds what a page shows besides the id (see [`pack`]).
pub const RECORD: &str = "_record";

/// How a partition stores the parts of a record a page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Format 2: service, host, level, message and attributes each a stored field of its own,
    /// the attributes as tantivy's JSON object.
    Fields,
    /// Format 3: them together in one stored text field, [`RECORD`], the attributes as the
    /// JSON they were sent as. Reading a record then decodes three stored values instead of
    /// seven, and its strings are cut from one.
    Packed,
}

/// The fields of the log schema. Timestamp (Unix nanoseconds) and sequence are fast fields
/// and stored; service, host and level match exactly and are fast; the message is full text
/// with positions; attributes are a JSON field searchable as `attributes.key:value`. The
/// sequence number, given by the writer, makes (timestamp, sequence) unique: the record's id.
/// What else a page shows is stored as [`Layout`] says.
#[derive(Clone, Copy)]
pub struct LogFields {
    pub timestamp: Field,
    pub sequence: Field,
    pub service: Field,
    pub host: Field,
    pub level: Field,
    pub message: Field,
    pub attributes: Field,
    /// Only in the schema of [`Layout::Packed`].
    pub record: Field,
}

impl LogFields {
    /// The schema new partitions are created with ([`Layout::Packed`]).
    pub fn schema() -> (Schema, Self) {
        Self::schema_of(Layout::Packed)
    }

    /// The schema of a layout: the indexed fields are the same in both.
    pub fn schema_of(layout: Layout) -> (Schema, Self) {
        let stored = |options: TextOptions| if layout == Layout::Fields { options | STORED } else { options };
        let mut builder = Schema::builder();
        let mut fields = Self {
            // Ranges over the timestamp and the sequence run on their fast fields: terms of
            // values unique to almost every record would cost a quarter of the indexing time.
            timestamp: builder.add_i64_field(TIMESTAMP, STORED | FAST),
            sequence: builder.add_u64_field(SEQUENCE, STORED | FAST),
            service: builder.add_text_field(SERVICE, stored(STRING | FAST)),
            host: builder.add_text_field(HOST, stored(STRING | FAST)),
            level: builder.add_text_field(LEVEL, stored(STRING | FAST)),
            message: builder.add_text_field(MESSAGE, stored(TEXT)),
            // Dotted keys (`http.method`, as OpenTelemetry writes them) are paths, so that
            // `attributes.http.method:GET` finds them as it finds nested objects.
            attributes: builder.add_json_field(
                "attributes",
                JsonObjectOptions::from(if layout == Layout::Fields { TEXT | STORED } else { TEXT })
                    .set_expand_dots_enabled(),
            ),
            record: Self::IDS.record,
        };
        if layout == Layout::Packed {
            fields.record = builder.add_text_field(RECORD, STORED);
        }
        let ids = |fields: &Self| {
            [
                fields.timestamp,
                fields.sequence,
                fields.service,
                fields.host,
                fields.level,
                fields.message,
                fields.attributes,
                fields.record,
            ]
        };
        assert_eq!(ids(&fields), ids(&Self::IDS), "the log schema's fields have the ids StoredHit reads");
        (builder.build(), fields)
    }

    /// The document of a record in the layout of [`LogFields::schema`].
    pub fn document(&self, record: LogRecord, sequence: u64) -> TantivyDocument {
        self.document_in(Layout::Packed, record, sequence)
    }

    /// The document of a record for a partition of `layout`; it takes the record so that its
    /// attributes are not copied.
    pub fn document_in(&self, layout: Layout, record: LogRecord, sequence: u64) -> TantivyDocument {
        let mut document = TantivyDocument::new();
        document.add_i64(self.timestamp, record.timestamp.as_unix_nanos());
        document.add_u64(self.sequence, sequence);
        if layout == Layout::Packed {
            document.add_text(self.record, pack(&record));
        }
        document.add_text(self.service, record.service);
        document.add_text(self.host, record.host);
        document.add_text(self.level, record.level);
        document.add_text(self.message, record.message);
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
        record: Field::from_field_id(7),
    };
}

/// The [`RECORD`] text of a record: the byte lengths of service, host, level and attributes
/// (the JSON object, or nothing when empty) as `<service>:<host>:<level>:<attributes>:`, then
/// those four and the message, in that order. Text, so that tantivy stores and reads it as one
/// string (its stored bytes are read a byte at a time).
fn pack(record: &LogRecord) -> String {
    use std::fmt::Write as _;
    let attributes = if record.attributes.is_empty() {
        String::new()
    } else {
        serde_json::to_string(&record.attributes).expect("a JSON map serializes")
    };
    let parts = [record.service.as_str(), &record.host, &record.level, &attributes];
    let mut text =
        String::with_capacity(24 + parts.iter().map(|part| part.len()).sum::<usize>() + record.message.len());
    for part in parts {
        write!(text, "{}:", part.len()).expect("writing to a String");
    }
    parts.into_iter().chain([record.message.as_str()]).for_each(|part| text.push_str(part));
    text
}

/// The parts of a [`pack`]ed record.
#[derive(Debug, PartialEq)]
struct Unpacked {
    service: String,
    host: String,
    level: String,
    attributes: Map<String, serde_json::Value>,
    /// In the packed text's allocation.
    message: String,
}

/// The parts of a [`pack`]ed record, or `None` when it is malformed.
fn unpack(mut text: String) -> Option<Unpacked> {
    let mut lengths = [0usize; 4];
    let mut at = 0;
    for length in &mut lengths {
        let end = at + text.get(at..)?.find(':')?;
        *length = text.get(at..end)?.parse().ok()?;
        at = end + 1;
    }
    let mut part = |length: usize| {
        let slice = text.get(at..at.checked_add(length)?)?;
        at += length;
        Some(slice.to_owned())
    };
    let (service, host, level) = (part(lengths[0])?, part(lengths[1])?, part(lengths[2])?);
    let attributes = match part(lengths[3])? {
        json if json.is_empty() => Map::new(),
        json => serde_json::from_str(&json).ok()?,
    };
    // `at` ends the last part read, so it is on a character boundary.
    text.drain(..at);
    Some(Unpacked { service, host, level, attributes, message: text })
}

/// A record read straight from its stored document, without tantivy's document in between:
/// the strings are moved, not copied, and the attributes become JSON as they are read. Both
/// layouts read alike.
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
                _ if field == fields.record => {
                    let serde_json::Value::String(text) = value else {
                        return Err(DeserializeError::custom("a packed record that is not text"));
                    };
                    let packed = unpack(text).ok_or_else(|| DeserializeError::custom("a malformed packed record"))?;
                    (service, host, level) = (Some(packed.service), Some(packed.host), Some(packed.level));
                    (attributes, message) = (Some(packed.attributes), Some(packed.message));
                }
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

    fn attributes() -> Map<String, serde_json::Value> {
        serde_json::json!({
            "order": 42, "region": "eu", "nested": {"ok": false, "none": null},
            "ratio": 0.25, "big": u64::MAX, "below": -7, "tags": ["a", 1, {"b": true}],
            "at": "2026-03-01T10:00:00.5+02:00",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    /// The records of `records`, written to an index of `layout` and read back.
    fn round_trip(layout: Layout, records: &[LogRecord]) -> (Vec<LogHit>, Vec<TantivyDocument>) {
        let (schema, fields) = LogFields::schema_of(layout);
        let index = Index::create_in_ram(schema);
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for (sequence, record) in records.iter().enumerate() {
            writer.add_document(fields.document_in(layout, record.clone(), sequence as u64 + 7)).unwrap();
        }
        writer.commit().unwrap();
        let searcher = index.reader().unwrap().searcher();
        (0..records.len() as u32)
            .map(|doc| {
                let address = tantivy::DocAddress::new(0, doc);
                (searcher.doc::<StoredHit>(address).unwrap().0, searcher.doc::<TantivyDocument>(address).unwrap())
            })
            .unzip()
    }

    fn parts(hit: &LogHit) -> (Timestamp, &str, &str, &str, &str, &Map<String, serde_json::Value>) {
        (hit.timestamp, &hit.service, &hit.host, &hit.level, &hit.message, &hit.attributes)
    }

    #[test]
    fn a_packed_record_reads_back_as_it_was_sent() {
        let record = |service: &str, host: &str, level: &str, message: &str, attributes| LogRecord {
            timestamp: Timestamp::from_unix_nanos(1_795_939_200_123_456_789).unwrap(),
            service: service.to_owned(),
            host: host.to_owned(),
            level: level.to_owned(),
            message: message.to_owned(),
            attributes,
        };
        let records = [
            record("checkout", "web-1", "error", "payment provider timed out", attributes()),
            // Separators and digits inside the parts, empty parts, text beyond ASCII.
            record("12:3", "", "4:", "a: 1\n\tat b:2 — «ünïcode» 🚀", Map::new()),
            record("", "h", "", "", serde_json::json!({"k:1": "v:2"}).as_object().unwrap().clone()),
        ];
        let (hits, documents) = round_trip(Layout::Packed, &records);
        for ((hit, record), sequence) in hits.iter().zip(&records).zip(7..) {
            assert_eq!(hit.id, RecordId { timestamp: record.timestamp, sequence });
            // The attributes come back as they were sent: a string that looks like a date too.
            let expected = (
                record.timestamp,
                &*record.service,
                &*record.host,
                &*record.level,
                &*record.message,
                &record.attributes,
            );
            assert_eq!(parts(hit), expected);
        }
        // Only the id and the packed record are stored.
        let stored: Vec<u32> = documents[0].field_values().map(|(field, _)| field.field_id()).collect();
        assert_eq!(stored, [0, 1, 7]);
    }

    #[test]
    fn a_record_of_a_format_2_partition_reads_back_from_its_fields() {
        let record = LogRecord {
            timestamp: Timestamp::from_unix_nanos(1_795_939_200_123_456_789).unwrap(),
            service: "checkout".to_owned(),
            host: "web-1".to_owned(),
            level: "error".to_owned(),
            message: "payment provider timed out".to_owned(),
            attributes: attributes(),
        };
        let (hits, documents) = round_trip(Layout::Fields, std::slice::from_ref(&record));
        assert_eq!(hits[0].id, RecordId { timestamp: record.timestamp, sequence: 7 });
        // A string that looked like a date was stored as one, and reads back in UTC.
        let mut expected = record.attributes.clone();
        expected.insert("at".to_owned(), "2026-03-01T08:00:00.5Z".into());
        assert_eq!(
            parts(&hits[0]),
            (record.timestamp, &*record.service, &*record.host, &*record.level, &*record.message, &expected)
        );
        // The same as reading tantivy's document and serializing its attributes.
        let fields = LogFields::IDS;
        let attributes =
            serde_json::to_value(OwnedValue::from(documents[0].get_first(fields.attributes).unwrap())).unwrap();
        assert_eq!(serde_json::Value::Object(hits[0].attributes.clone()), attributes);
    }

    #[test]
    fn a_malformed_packed_record_is_refused_not_misread() {
        let record = LogRecord {
            timestamp: Timestamp::from_unix_nanos(1).unwrap(),
            service: "api".to_owned(),
            host: "é".to_owned(),
            level: "info".to_owned(),
            message: "done".to_owned(),
            attributes: serde_json::json!({"a": 1}).as_object().unwrap().clone(),
        };
        let packed = pack(&record);
        assert_eq!(packed, "3:2:4:7:apiéinfo{\"a\":1}done");
        let unpacked = Unpacked {
            service: "api".to_owned(),
            host: "é".to_owned(),
            level: "info".to_owned(),
            attributes: record.attributes.clone(),
            message: "done".to_owned(),
        };
        assert_eq!(unpack(packed), Some(unpacked));
        for malformed in [
            "",
            "3:2:4:",
            "3:2:4:x:apiéinfo{}",
            "3:1:4:7:apiéinfo{\"a\":1}done",
            "3:2:4:99:apiéinfo{\"a\":1}done",
            "3:2:4:7:apiéinfo{\"a\":1",
            "3:2:4:3:apiéinfonot",
        ] {
            assert!(unpack(malformed.to_owned()).is_none(), "{malformed:?}");
        }
    }
}
