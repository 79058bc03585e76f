//! Prometheus, where Vigil's metrics live: Vigil keeps no samples. Batches from agents go to Prometheus by remote write
//! ([`remote_write`]); PromQL goes to Prometheus' HTTP API through `prometheus-http-query`
//! ([`query`]).

pub mod query;
pub mod remote_write;

use vigil_proto::metrics::{MetricBatch, is_label_name, is_metric_name};

use remote_write::messages::{Label, Sample, TimeSeries};

/// Bounds of one batch.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    pub max_series: usize,
    pub max_samples: usize,
}

/// Why a metric batch was refused whole.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    #[error("{count} series in one batch; the limit is {limit}")]
    TooManySeries { count: usize, limit: usize },
    #[error("{count} samples in one batch; the limit is {limit}")]
    TooManySamples { count: usize, limit: usize },
    #[error("series {index}: {problem}")]
    Series { index: usize, problem: String },
}

/// Checks a batch and turns it into remote-write series: `__name__` present and a metric
/// name, label names valid, empty label values dropped (Prometheus treats them as absent),
/// labels sorted, samples oldest first. A bad series refuses the batch, naming the series.
pub fn to_time_series(batch: MetricBatch, limits: BatchLimits) -> Result<Vec<TimeSeries>, BatchError> {
    let invalid = |index: usize, problem: String| BatchError::Series { index, problem };
    if batch.series.len() > limits.max_series {
        return Err(BatchError::TooManySeries { count: batch.series.len(), limit: limits.max_series });
    }
    let samples: usize = batch.series.iter().map(|series| series.samples.len()).sum();
    if samples > limits.max_samples {
        return Err(BatchError::TooManySamples { count: samples, limit: limits.max_samples });
    }
    let mut out = Vec::with_capacity(batch.series.len());
    for (index, series) in batch.series.into_iter().enumerate() {
        match series.labels.get("__name__") {
            Some(name) if is_metric_name(name) => {}
            Some(name) => return Err(invalid(index, format!("{name:?} is not a Prometheus metric name"))),
            None => return Err(invalid(index, "no __name__ label".to_owned())),
        }
        if let Some(name) = series.labels.keys().find(|name| !is_label_name(name)) {
            return Err(invalid(index, format!("label name {name:?} is not a Prometheus label name")));
        }
        if series.samples.is_empty() {
            return Err(invalid(index, "no samples".to_owned()));
        }
        // A BTreeMap iterates in name order: the labels are sorted, as the protocol requires.
        let labels = series
            .labels
            .into_iter()
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| Label { name, value })
            .collect();
        let mut samples: Vec<Sample> =
            series.samples.into_iter().map(|(timestamp, value)| Sample { value: value.0, timestamp }).collect();
        samples.sort_by_key(|sample| sample.timestamp);
        out.push(TimeSeries { labels, samples });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(json: &str) -> MetricBatch {
        serde_json::from_str(json).unwrap()
    }

    const LIMITS: BatchLimits = BatchLimits { max_series: 10, max_samples: 100 };

    #[test]
    fn series_become_sorted_remote_write_series() {
        let series = to_time_series(
            batch(r#"{"series":[{"labels":{"job":"api","__name__":"up","empty":""},"samples":[[2000,1],[1000,0]]}]}"#),
            LIMITS,
        )
        .unwrap();
        let names: Vec<&str> = series[0].labels.iter().map(|label| label.name.as_str()).collect();
        assert_eq!(names, ["__name__", "job"]);
        assert_eq!(series[0].samples.iter().map(|sample| sample.timestamp).collect::<Vec<_>>(), [1000, 2000]);
    }

    #[test]
    fn bad_series_are_named() {
        let error = to_time_series(batch(r#"{"series":[{"labels":{"job":"x"},"samples":[[1,1]]}]}"#), LIMITS);
        assert!(error.unwrap_err().to_string().contains("series 0: no __name__"));
        let error = to_time_series(
            batch(
                r#"{"series":[{"labels":{"__name__":"up"},"samples":[[1,1]]},{"labels":{"__name__":"up","a-b":"1"},"samples":[[1,1]]}]}"#,
            ),
            LIMITS,
        );
        assert!(error.unwrap_err().to_string().contains("series 1: label name \"a-b\""));
        let error = to_time_series(batch(r#"{"series":[{"labels":{"__name__":"9lives"},"samples":[[1,1]]}]}"#), LIMITS);
        assert!(error.unwrap_err().to_string().contains("not a Prometheus metric name"));
        let many =
            format!(r#"{{"series":[{{"labels":{{"__name__":"up"}},"samples":[{}]}}]}}"#, vec!["[1,1]"; 101].join(","));
        assert!(matches!(to_time_series(batch(&many), LIMITS), Err(BatchError::TooManySamples { count: 101, .. })));
    }
}
