//! The slice of the Elasticsearch HTTP API that log shippers (Filebeat, Fluent Bit, Vector,
//! Logstash) use to send logs: the `_bulk` response and the root info document.

use serde::{Deserialize, Serialize};

/// The answer to `POST /_bulk`: one item per action, in order; `errors` when any failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkResponse {
    pub took: u64,
    pub errors: bool,
    pub items: Vec<BulkItem>,
}

/// Keyed by the action, as Elasticsearch writes it: `{"index": {...}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulkItem {
    Index(BulkItemResult),
    Create(BulkItemResult),
    Update(BulkItemResult),
    Delete(BulkItemResult),
}

impl BulkItem {
    pub fn result(&self) -> &BulkItemResult {
        match self {
            Self::Index(result) | Self::Create(result) | Self::Update(result) | Self::Delete(result) => result,
        }
    }
}

/// One item, as small as Elasticsearch's shape allows: `_index` and `status` always, `_id`
/// when the action named one, `error` when it failed (shippers read thousands of these: Fluent
/// Bit gives up on an answer over 512 KiB by default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkItemResult {
    #[serde(rename = "_index")]
    pub index: String,
    #[serde(rename = "_id", default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub status: u16,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(rename = "_version", default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<BulkError>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BulkError {
    #[serde(rename = "type")]
    pub kind: String,
    pub reason: String,
}

/// `GET /`: what shippers read to decide which protocol version to speak.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticsearchInfo {
    pub name: String,
    pub cluster_name: String,
    pub cluster_uuid: String,
    pub version: ElasticsearchVersion,
    pub tagline: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElasticsearchVersion {
    pub number: String,
    pub build_flavor: String,
    pub build_type: String,
    pub lucene_version: String,
    pub minimum_wire_compatibility_version: String,
    pub minimum_index_compatibility_version: String,
}

impl ElasticsearchInfo {
    /// The version Vigil's `_bulk` endpoint speaks.
    pub fn vigil() -> Self {
        Self {
            name: "vigil".to_owned(),
            cluster_name: "vigil".to_owned(),
            cluster_uuid: "vigil".to_owned(),
            version: ElasticsearchVersion {
                number: "8.11.0".to_owned(),
                build_flavor: "default".to_owned(),
                build_type: "vigil".to_owned(),
                lucene_version: "9.8.0".to_owned(),
                minimum_wire_compatibility_version: "7.17.0".to_owned(),
                minimum_index_compatibility_version: "7.0.0".to_owned(),
            },
            tagline: "You Know, for Search".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_are_keyed_by_action() {
        let item = BulkItem::Create(BulkItemResult {
            index: "logs".to_owned(),
            id: Some("1".to_owned()),
            status: 201,
            result: Some("created".to_owned()),
            version: Some(1),
            error: None,
        });
        let json = serde_json::to_value(&item).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"create": {"_index": "logs", "_id": "1", "status": 201, "result": "created", "_version": 1}})
        );
    }
}
