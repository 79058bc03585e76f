//! PromQL through Prometheus' HTTP API with `prometheus-http-query`, bounded: a timeout, a cap
//! on series per answer and on points per series, the step chosen from the range when not
//! given; Prometheus' own error messages are passed on (a parse error with its position).

use std::collections::BTreeMap;
use std::time::Duration;

use prometheus_http_query::response::Data;
use prometheus_http_query::{Client, Selector};
use vigil_proto::metrics::{QueryResult, QuerySeries};

/// Why a PromQL request got no answer. Prometheus' own messages are kept as it wrote them.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// Prometheus refused the query (`bad_data`); a syntax error has its column.
    #[error("{message}")]
    Invalid { message: String, position: Option<u64> },
    /// A parameter of the request (not the PromQL) is wrong.
    #[error("{0}")]
    Parameter(String),
    #[error("match[] {text:?} is not a series selector: {source}")]
    Selector { text: String, source: SelectorError },
    #[error(
        "the query returned {count} series; the limit is {limit}: narrow it with label matchers or aggregate (sum by ...)"
    )]
    TooManySeries { count: usize, limit: usize },
    #[error("the query timed out in Prometheus: {0}")]
    TimedOut(String),
    #[error("Prometheus failed the query: {0}")]
    Failed(String),
    #[error("Prometheus at {url} did not answer within {seconds} s")]
    NoAnswer { url: String, seconds: u64 },
    #[error("Prometheus at {url} cannot be reached: {}", crate::telemetry::error_chain(.source))]
    Unreachable { url: String, source: prometheus_http_query::error::ClientError },
    /// What the client library refused before sending (an empty selector list, ...).
    #[error("{0}")]
    Request(prometheus_http_query::Error),
}

/// `metrics.prometheus_url` is not a URL the client can use.
#[derive(Debug, thiserror::Error)]
#[error("metrics.prometheus_url {url:?}: {source}")]
pub struct ClientError {
    url: String,
    source: prometheus_http_query::Error,
}

/// What is wrong in a series selector.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

impl From<&str> for SelectorError {
    fn from(problem: &str) -> Self {
        Self(problem.to_owned())
    }
}

impl From<String> for SelectorError {
    fn from(problem: String) -> Self {
        Self(problem)
    }
}

#[derive(Debug, Clone)]
pub struct QueryLimits {
    pub timeout: Duration,
    pub max_series: usize,
    pub max_points_per_series: usize,
}

pub struct Prometheus {
    client: Client,
    url: String,
    limits: QueryLimits,
}

/// Steps a chosen step is rounded up to, in seconds.
const NICE_STEPS: [f64; 17] = [
    1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0, 7200.0, 21600.0, 43200.0,
    86400.0,
];
/// Points per series a chosen step aims at (a chart a few hundred pixels wide).
const TARGET_POINTS: f64 = 250.0;

/// The step for a range: about `TARGET_POINTS` points, rounded up to a readable step.
pub fn choose_step(start: f64, end: f64) -> f64 {
    let raw = ((end - start) / TARGET_POINTS).max(1.0);
    NICE_STEPS.into_iter().find(|step| *step >= raw).unwrap_or_else(|| (raw / 86400.0).ceil() * 86400.0)
}

/// `1:5: parse error: ...` (Prometheus 2.x) gives the column of a PromQL syntax error.
fn parse_position(message: &str) -> Option<u64> {
    let (line_column, _) = message.split_once(": parse error")?;
    let column: u64 = line_column.rsplit(':').next()?.trim().parse().ok()?;
    column.checked_sub(1)
}

impl Prometheus {
    pub fn new(http: reqwest::Client, url: &str, limits: QueryLimits) -> Result<Self, ClientError> {
        let client = Client::from(http, url).map_err(|source| ClientError { url: url.to_owned(), source })?;
        Ok(Self { client, url: url.to_owned(), limits })
    }

    fn error(&self, error: prometheus_http_query::Error) -> QueryError {
        match error {
            prometheus_http_query::Error::Prometheus(error) if error.is_bad_data() => {
                let message = error.message().to_owned();
                QueryError::Invalid { position: parse_position(&message), message }
            }
            prometheus_http_query::Error::Prometheus(error) if error.is_timeout() || error.is_canceled() => {
                QueryError::TimedOut(error.message().to_owned())
            }
            prometheus_http_query::Error::Prometheus(error) => QueryError::Failed(error.message().to_owned()),
            prometheus_http_query::Error::Client(client) => {
                if client.inner().is_some_and(reqwest::Error::is_timeout) {
                    QueryError::NoAnswer { url: self.url.clone(), seconds: self.limits.timeout.as_secs() }
                } else {
                    QueryError::Unreachable { url: self.url.clone(), source: client }
                }
            }
            other => QueryError::Request(other),
        }
    }

    fn too_many_series(&self, count: usize) -> QueryError {
        QueryError::TooManySeries { count, limit: self.limits.max_series }
    }

    fn convert(&self, data: Data, step: Option<f64>) -> Result<QueryResult, QueryError> {
        let finite = |value: f64| value.is_finite().then_some(value);
        let labels = |metric: std::collections::HashMap<String, String>| metric.into_iter().collect::<BTreeMap<_, _>>();
        let (result_type, series) = match data {
            Data::Vector(vectors) => {
                if vectors.len() > self.limits.max_series {
                    return Err(self.too_many_series(vectors.len()));
                }
                let series = vectors
                    .into_iter()
                    .map(|vector| {
                        let (metric, sample) = vector.into_inner();
                        QuerySeries {
                            labels: labels(metric),
                            points: vec![(sample.timestamp(), finite(sample.value()))],
                        }
                    })
                    .collect();
                ("vector", series)
            }
            Data::Matrix(matrix) => {
                if matrix.len() > self.limits.max_series {
                    return Err(self.too_many_series(matrix.len()));
                }
                let series = matrix
                    .into_iter()
                    .map(|range| {
                        let (metric, samples) = range.into_inner();
                        let points =
                            samples.iter().map(|sample| (sample.timestamp(), finite(sample.value()))).collect();
                        QuerySeries { labels: labels(metric), points }
                    })
                    .collect();
                ("matrix", series)
            }
            Data::Scalar(sample) => (
                "scalar",
                vec![QuerySeries {
                    labels: BTreeMap::new(),
                    points: vec![(sample.timestamp(), finite(sample.value()))],
                }],
            ),
        };
        Ok(QueryResult { result_type: result_type.to_owned(), series, step_seconds: step })
    }

    fn timeout_param(&self) -> i64 {
        i64::try_from(self.limits.timeout.as_millis()).unwrap_or(i64::MAX)
    }

    /// An instant query at `time` (Unix seconds; now when absent).
    pub async fn instant(&self, promql: &str, time: Option<f64>) -> Result<QueryResult, QueryError> {
        let mut request = self.client.query(promql).timeout(self.timeout_param());
        if let Some(time) = time {
            request = request.query("time", time);
        }
        let result = request.get().await.map_err(|error| self.error(error))?;
        let (data, _) = result.into_inner();
        self.convert(data, None)
    }

    /// A range query; the step is chosen from the range when absent. Refused when it would
    /// give more points per series than the cap.
    pub async fn range(
        &self,
        promql: &str,
        start: f64,
        end: f64,
        step: Option<f64>,
    ) -> Result<QueryResult, QueryError> {
        if end <= start {
            return Err(QueryError::Parameter("end must be after start".to_owned()));
        }
        let step = step.unwrap_or_else(|| choose_step(start, end));
        if step <= 0.0 || !step.is_finite() {
            return Err(QueryError::Parameter("step must be a positive number of seconds".to_owned()));
        }
        let points = ((end - start) / step).floor() as usize + 1;
        if points > self.limits.max_points_per_series {
            return Err(QueryError::Parameter(format!(
                "{points} points per series; the limit is {}: use a step of at least {} s",
                self.limits.max_points_per_series,
                ((end - start) / (self.limits.max_points_per_series as f64 - 1.0)).ceil()
            )));
        }
        let request = self.client.query_range(promql, start.floor() as i64, end.ceil() as i64, step);
        let result = request.timeout(self.timeout_param()).get().await.map_err(|error| self.error(error))?;
        let (data, _) = result.into_inner();
        self.convert(data, Some(step))
    }

    /// Label names, optionally of the series matching `matchers`.
    pub async fn labels(
        &self,
        matchers: &[String],
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Vec<String>, QueryError> {
        let parsed = parse_selectors(matchers)?;
        let selectors: Vec<Selector<'_>> = parsed.iter().map(ParsedSelector::selector).collect();
        let mut request = self.client.label_names();
        if !selectors.is_empty() {
            request = request.selectors(&selectors);
        }
        if let Some(start) = start {
            request = request.start(start as i64);
        }
        if let Some(end) = end {
            request = request.end(end as i64);
        }
        request.get().await.map_err(|error| self.error(error))
    }

    /// The values of label `name`.
    pub async fn label_values(
        &self,
        name: &str,
        matchers: &[String],
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Vec<String>, QueryError> {
        if !vigil_proto::metrics::is_label_name(name) {
            return Err(QueryError::Parameter(format!("{name:?} is not a label name")));
        }
        let parsed = parse_selectors(matchers)?;
        let selectors: Vec<Selector<'_>> = parsed.iter().map(ParsedSelector::selector).collect();
        let mut request = self.client.label_values(name);
        if !selectors.is_empty() {
            request = request.selectors(&selectors);
        }
        if let Some(start) = start {
            request = request.start(start as i64);
        }
        if let Some(end) = end {
            request = request.end(end as i64);
        }
        request.get().await.map_err(|error| self.error(error))
    }

    /// The label sets of the series matching `matchers` (at least one).
    pub async fn series(
        &self,
        matchers: &[String],
        start: Option<f64>,
        end: Option<f64>,
    ) -> Result<Vec<BTreeMap<String, String>>, QueryError> {
        if matchers.is_empty() {
            return Err(QueryError::Parameter("give at least one match[] selector".to_owned()));
        }
        let parsed = parse_selectors(matchers)?;
        let selectors: Vec<Selector<'_>> = parsed.iter().map(ParsedSelector::selector).collect();
        let mut request = self.client.series(&selectors).map_err(|error| self.error(error))?;
        if let Some(start) = start {
            request = request.start(start as i64);
        }
        if let Some(end) = end {
            request = request.end(end as i64);
        }
        let series = request.get().await.map_err(|error| self.error(error))?;
        if series.len() > self.limits.max_series {
            return Err(self.too_many_series(series.len()));
        }
        Ok(series.into_iter().map(|labels| labels.into_iter().collect()).collect())
    }
}

/// A series selector as written in PromQL: `name`, `name{label="value",...}` or
/// `{label=~"regex",...}`, with `=`, `!=`, `=~`, `!~`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedSelector {
    metric: Option<String>,
    matchers: Vec<(String, &'static str, String)>,
}

impl ParsedSelector {
    fn selector(&self) -> Selector<'_> {
        let mut selector = Selector::new();
        if let Some(metric) = &self.metric {
            selector = selector.metric(metric);
        }
        for (label, operator, value) in &self.matchers {
            selector = match *operator {
                "=" => selector.eq(label, value),
                "!=" => selector.ne(label, value),
                "=~" => selector.regex_eq(label, value),
                _ => selector.regex_ne(label, value),
            };
        }
        selector
    }
}

fn parse_selectors(texts: &[String]) -> Result<Vec<ParsedSelector>, QueryError> {
    texts
        .iter()
        .map(|text| parse_selector(text).map_err(|source| QueryError::Selector { text: text.clone(), source }))
        .collect()
}

pub fn parse_selector(text: &str) -> Result<ParsedSelector, SelectorError> {
    let text = text.trim();
    let (metric, rest) = match text.find('{') {
        Some(brace) => (text[..brace].trim(), &text[brace..]),
        None => (text, ""),
    };
    let metric = if metric.is_empty() {
        None
    } else if vigil_proto::metrics::is_metric_name(metric) {
        Some(metric.to_owned())
    } else {
        return Err(format!("{metric:?} is not a metric name").into());
    };
    let mut matchers = Vec::new();
    if !rest.is_empty() {
        let inner = rest.strip_prefix('{').and_then(|rest| rest.strip_suffix('}')).ok_or("unbalanced braces")?;
        let mut chars = inner.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
                chars.next();
            }
            if chars.peek().is_none() {
                break;
            }
            let label: String =
                std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_')).collect();
            if !vigil_proto::metrics::is_label_name(&label) {
                return Err(format!("expected a label name, found {:?}", chars.peek()).into());
            }
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let operator = match (chars.next(), chars.peek().copied()) {
                (Some('='), Some('~')) => {
                    chars.next();
                    "=~"
                }
                (Some('='), _) => "=",
                (Some('!'), Some('=')) => {
                    chars.next();
                    "!="
                }
                (Some('!'), Some('~')) => {
                    chars.next();
                    "!~"
                }
                _ => return Err(format!("expected =, !=, =~ or !~ after {label}").into()),
            };
            while chars.next_if(|c| c.is_whitespace()).is_some() {}
            let quote = chars.next().filter(|c| *c == '"' || *c == '\'').ok_or("expected a quoted value")?;
            let mut value = String::new();
            loop {
                match chars.next() {
                    Some('\\') => value.push(chars.next().ok_or("unterminated escape")?),
                    Some(c) if c == quote => break,
                    Some(c) => value.push(c),
                    None => return Err("unterminated string".to_owned().into()),
                }
            }
            matchers.push((label, operator, value));
        }
    }
    if metric.is_none() && matchers.is_empty() {
        return Err("empty selector".to_owned().into());
    }
    Ok(ParsedSelector { metric, matchers })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_aim_at_a_few_hundred_readable_points() {
        assert_eq!(choose_step(0.0, 3600.0), 15.0);
        assert_eq!(choose_step(0.0, 86400.0), 600.0);
        assert_eq!(choose_step(0.0, 60.0), 1.0);
        assert_eq!(choose_step(0.0, 7.0 * 86400.0), 3600.0);
    }

    #[test]
    fn parse_errors_carry_their_column() {
        assert_eq!(parse_position("1:5: parse error: unexpected character: '('"), Some(4));
        assert_eq!(parse_position("invalid parameter \"query\": 1:12: parse error: x"), Some(11));
        assert_eq!(parse_position("something else"), None);
    }

    #[test]
    fn selectors_parse_as_promql_writes_them() {
        let parsed = parse_selector(r#"http_requests_total{job="api", code!~"2..",path="/a\"b"}"#).unwrap();
        assert_eq!(parsed.metric.as_deref(), Some("http_requests_total"));
        assert_eq!(
            parsed.matchers,
            [
                ("job".to_owned(), "=", "api".to_owned()),
                ("code".to_owned(), "!~", "2..".to_owned()),
                ("path".to_owned(), "=", "/a\"b".to_owned())
            ]
        );
        assert!(parse_selector("up").is_ok());
        assert!(parse_selector("{}").is_err());
        assert!(parse_selector("{job=api}").is_err());
        assert!(parse_selector("up{job=\"x\"").is_err());
    }
}
