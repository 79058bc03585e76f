//! Metric samples on their way to Prometheus, and PromQL answers on their way to the UI.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A sample value. JSON has no NaN or infinities, so those travel as the strings Prometheus
/// uses: `"NaN"`, `"+Inf"`, `"-Inf"` (finite values may be strings too).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SampleValue(pub f64);

impl Serialize for SampleValue {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            value if value.is_finite() => serializer.serialize_f64(value),
            value if value.is_nan() => serializer.serialize_str("NaN"),
            value if value > 0.0 => serializer.serialize_str("+Inf"),
            _ => serializer.serialize_str("-Inf"),
        }
    }
}

impl<'de> Deserialize<'de> for SampleValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(f64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(value) => Ok(Self(value)),
            Raw::Text(text) => parse_value(&text).map(Self).ok_or_else(|| {
                serde::de::Error::custom(format!("{text:?} is not a sample value (a number, NaN, +Inf or -Inf)"))
            }),
        }
    }
}

/// Prometheus' spelling of a float: a number, `NaN`, `+Inf`, `-Inf` (`Inf` too).
pub fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        other => other.parse().ok(),
    }
}

/// One series and its samples: `[timestamp in Unix milliseconds, value]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesSamples {
    /// Every label, `__name__` included.
    pub labels: BTreeMap<String, String>,
    pub samples: Vec<(i64, SampleValue)>,
}

/// `POST /api/v1/metrics`: samples for Prometheus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricBatch {
    pub series: Vec<SeriesSamples>,
}

/// The answer once Prometheus has accepted a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricBatchAccepted {
    pub series: u64,
    pub samples: u64,
}

/// A series of a PromQL answer: its labels and `[Unix seconds, value]` points (one for an
/// instant query; `null` stands for NaN and infinities).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuerySeries {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, Option<f64>)>,
}

/// The answer of `/api/v1/metrics/query` and `/query_range`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// `vector`, `matrix` or `scalar`, as Prometheus says.
    pub result_type: String,
    pub series: Vec<QuerySeries>,
    /// The step used by a range query, in seconds (chosen from the range when not given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_seconds: Option<f64>,
}

/// One group of Prometheus' HTTP service discovery (`GET /api/v1/sd/targets`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetGroup {
    pub targets: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

/// A name is a Prometheus metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub fn is_metric_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == ':')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_' || character == ':')
}

/// A label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_travel_as_numbers_or_prometheus_strings() {
        let batch: MetricBatch = serde_json::from_str(
            r#"{"series":[{"labels":{"__name__":"up"},"samples":[[1000,1],[2000,"NaN"],[3000,"+Inf"],[4000,"2.5"]]}]}"#,
        )
        .unwrap();
        let values: Vec<f64> = batch.series[0].samples.iter().map(|(_, value)| value.0).collect();
        assert_eq!(values[0], 1.0);
        assert!(values[1].is_nan());
        assert_eq!(values[2], f64::INFINITY);
        assert_eq!(values[3], 2.5);
        assert!(serde_json::from_str::<SampleValue>("\"many\"").is_err());
        assert_eq!(serde_json::to_string(&SampleValue(f64::NEG_INFINITY)).unwrap(), "\"-Inf\"");
    }

    #[test]
    fn names_follow_prometheus() {
        assert!(is_metric_name("http_requests_total") && is_metric_name("job:rate5m"));
        assert!(!is_metric_name("1up") && !is_metric_name("") && !is_metric_name("a-b"));
        assert!(is_label_name("__name__") && !is_label_name("a:b"));
    }
}
