//! Agents reporting to the backend: the heartbeat an agent sends, and what the UI shows.

use serde::{Deserialize, Serialize};

use crate::Timestamp;

/// One source of an agent and its counters since the agent started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReport {
    pub name: String,
    /// `file`, `scrape` or `host`.
    pub kind: String,
    /// The service of a file source's records.
    #[serde(default)]
    pub service: Option<String>,
    /// Records read (file), samples scraped (scrape).
    pub records: u64,
    pub bytes: u64,
    pub errors: u64,
    /// Files followed (file); 1 when the last scrape succeeded (scrape).
    pub active: u64,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The agent's disk buffers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BufferReport {
    pub logs_bytes: u64,
    pub logs_batches: u64,
    pub metrics_bytes: u64,
    pub metrics_batches: u64,
    pub max_bytes: u64,
    pub dropped_records: u64,
}

/// `POST /api/v1/agents/heartbeat`: an agent registers (first heartbeat) and reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentHeartbeat {
    pub host: String,
    pub os: String,
    pub version: String,
    /// Seconds between heartbeats: an agent silent for three of them is stale.
    pub interval_seconds: u64,
    /// Where the agent serves its own `/metrics` (`host:port`), for service discovery.
    #[serde(default)]
    pub metrics_address: Option<String>,
    pub sources: Vec<SourceReport>,
    pub buffer: BufferReport,
    /// Records and samples the backend acknowledged since the agent started.
    pub shipped_records: u64,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// What the backend knows of an agent (`GET /api/v1/agents`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    pub host: String,
    pub first_seen: Timestamp,
    pub last_seen: Timestamp,
    /// `healthy`, `degraded` (reporting an error or a filling buffer) or `stale` (silent for
    /// three heartbeat intervals).
    pub state: AgentState,
    pub report: AgentHeartbeat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentState {
    Healthy,
    Degraded,
    Stale,
}

impl AgentState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Healthy => "healthy",
            Self::Degraded => "degraded",
            Self::Stale => "stale",
        }
    }

    /// An agent's state `silent_seconds` after its last heartbeat.
    pub fn of(report: &AgentHeartbeat, silent_seconds: i64) -> Self {
        if silent_seconds > 3 * report.interval_seconds.max(1) as i64 {
            Self::Stale
        } else if report.last_error.is_some()
            || (report.buffer.max_bytes > 0
                && report.buffer.logs_bytes.max(report.buffer.metrics_bytes) * 2 > report.buffer.max_bytes)
        {
            Self::Degraded
        } else {
            Self::Healthy
        }
    }
}

/// A deploy order for one host (`GET /api/v1/agents/deploys?host=`): the backend names the
/// service and the version, never a command. The agent runs the command of its own
/// `[deploy]` section, and only for a version its `version_pattern` accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOrder {
    pub id: i64,
    pub rollout_id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
}

/// `GET /api/v1/agents/deploys?host=`: the orders of a host to run or finish, oldest first
/// (at most one: a host runs one deploy at a time).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployOrders {
    pub orders: Vec<DeployOrder>,
}

/// The query of `GET /api/v1/agents/deploys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployOrdersQuery {
    pub host: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeployStatus {
    /// The agent takes the order and is about to run its command; refused (409) when the
    /// order was cancelled meanwhile, and then the command is not run.
    Running,
    Succeeded,
    Failed,
    /// The agent would not run it: another service, or a version its pattern does not accept.
    Refused,
}

impl DeployStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Refused => "refused",
        }
    }
}

/// `POST /api/v1/agents/deploys/{id}`: what became of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployReport {
    pub host: String,
    pub status: DeployStatus,
    /// The command's exit code, when it exited.
    #[serde(default)]
    pub exit_code: Option<i32>,
    /// Why, for a refusal or a failure that is not the command's (a timeout, a restart).
    #[serde(default)]
    pub reason: String,
    /// The last lines of the command's output.
    #[serde(default)]
    pub output: String,
}
