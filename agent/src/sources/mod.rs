//! What the agent collects: log files, Prometheus endpoints, and the host's own metrics.

pub(crate) mod file;
pub(crate) mod host;
mod metric_batch;
pub mod scrape;
