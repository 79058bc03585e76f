//! What the agent counts, by source: shared between the sources that count and the agent's own
//! `/metrics` page (`self_metrics`) and heartbeats (`heartbeat`) that report it.
//! The buffers and shippers keep their own counters ([`crate::buffer::BufferStats`],
//! [`crate::sink::ShipperStats`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use vigil_proto::agents::SourceReport;

use crate::config::AgentConfig;

/// Every counter of the agent, by source.
pub struct AgentStats {
    pub file_names: Vec<String>,
    pub file_services: Vec<String>,
    pub files: Vec<Arc<SourceStats>>,
    pub scrape_names: Vec<String>,
    pub scrapes: Vec<Arc<ScrapeStats>>,
    /// Host metric samples collected.
    pub host_samples: AtomicU64,
}

impl AgentStats {
    pub fn new(config: &AgentConfig) -> Self {
        Self {
            file_names: config.sources.iter().map(|source| source.name.clone()).collect(),
            file_services: config.sources.iter().map(|source| source.service.clone()).collect(),
            files: config.sources.iter().map(|_| Arc::default()).collect(),
            scrape_names: config.scrape.iter().map(|scrape| scrape.name.clone()).collect(),
            scrapes: config.scrape.iter().map(|_| Arc::default()).collect(),
            host_samples: AtomicU64::new(0),
        }
    }

    /// One report per file source and scrape target, as heartbeats carry them.
    pub fn reports(&self) -> Vec<SourceReport> {
        let load = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        let files = self.file_names.iter().zip(&self.file_services).zip(&self.files).map(|((name, service), stats)| {
            SourceReport {
                name: name.clone(),
                kind: "file".to_owned(),
                service: Some(service.clone()),
                records: load(&stats.records),
                bytes: load(&stats.bytes),
                errors: load(&stats.parse_errors),
                active: load(&stats.files),
                last_error: None,
            }
        });
        let scrapes = self.scrape_names.iter().zip(&self.scrapes).map(|(name, stats)| SourceReport {
            name: name.clone(),
            kind: "scrape".to_owned(),
            service: None,
            records: load(&stats.samples),
            bytes: 0,
            errors: load(&stats.failures),
            active: load(&stats.up),
            last_error: stats.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
        });
        files.chain(scrapes).collect()
    }
}

/// A file source's counters, for the agent's `/metrics` and heartbeats.
#[derive(Debug, Default)]
pub struct SourceStats {
    pub files: AtomicU64,
    pub bytes: AtomicU64,
    pub lines: AtomicU64,
    pub records: AtomicU64,
    pub batches: AtomicU64,
    pub truncated: AtomicU64,
    pub split: AtomicU64,
    pub invalid_utf8: AtomicU64,
    pub parse_errors: AtomicU64,
}

/// A scrape target's counters.
#[derive(Debug, Default)]
pub struct ScrapeStats {
    pub scrapes: AtomicU64,
    pub failures: AtomicU64,
    pub samples: AtomicU64,
    /// 1 when the last scrape succeeded.
    pub up: AtomicU64,
    pub last_error: Mutex<Option<String>>,
}
