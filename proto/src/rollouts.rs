//! Rollouts: services with their environments (a rollout target each: a CI/CD provider with
//! parameters, an approval rule, freeze windows) and health gates, the rollouts that deploy a
//! version or roll one back, and the timeline of each.

use serde::{Deserialize, Serialize};

use crate::Timestamp;
use crate::alerts::Comparator;

/// A service as written by its editors: everything but the versions, which only rollouts move
/// (an environment's `current_version` is taken when the environment is created).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceWrite {
    pub name: String,
    #[serde(default)]
    pub owner: String,
    #[serde(default)]
    pub environments: Vec<EnvironmentWrite>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvironmentWrite {
    pub name: String,
    pub provider: ProviderSpec,
    /// A second person must approve each rollout.
    #[serde(default)]
    pub approval_required: bool,
    #[serde(default)]
    pub freeze_windows: Vec<FreezeWindow>,
    #[serde(default)]
    pub recurring_freezes: Vec<RecurringFreeze>,
    #[serde(default)]
    pub gates: Vec<GateSpec>,
    /// The version running when the environment is first described (ignored afterwards).
    #[serde(default)]
    pub current_version: Option<String>,
}

/// Which CI/CD system deploys, how, and with which credential.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderSpec {
    /// `buildbot` or `webhook`.
    pub kind: String,
    /// The provider's parameters (see each provider).
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The integration (by name) whose sealed secrets the provider uses.
    #[serde(default)]
    pub integration: Option<String>,
}

/// A span of time in which deploys are refused (rollbacks are not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FreezeWindow {
    pub start: Timestamp,
    pub end: Timestamp,
    #[serde(default)]
    pub reason: String,
}

/// A freeze that comes back, as Argo CD's sync windows: it opens each time the cron
/// `schedule` fires (minute, hour, day of month, month, day of week, read at `utc_offset`)
/// and lasts `duration` (`30m`, `2h`, `3d`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecurringFreeze {
    pub schedule: String,
    pub duration: String,
    /// `+01:00`, `-05:00`; UTC when empty.
    #[serde(default)]
    pub utc_offset: String,
    #[serde(default)]
    pub reason: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GateKind {
    /// A PromQL query whose value is compared with the threshold.
    Promql,
    /// A log query: matching lines per minute over the window.
    Log,
    /// For the agent provider: a PromQL query giving one series per host (label `host`),
    /// whose samples over the window on the hosts already on the new version are compared
    /// with those of the hosts still on the old one by a Mann–Whitney U test, as Kayenta
    /// judges a canary. `threshold` is the significance (alpha, e.g. 0.05) and `comparator`
    /// the healthy direction (`<`, `<=`: lower is healthy, so higher is worse; `>`, `>=`:
    /// higher is healthy); the value recorded is the test's p-value.
    Comparison,
}

impl GateKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Promql => "promql",
            Self::Log => "log",
            Self::Comparison => "comparison",
        }
    }

    pub const ALL: [Self; 3] = [Self::Promql, Self::Log, Self::Comparison];

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == text)
    }
}

/// A health gate: healthy while `value <comparator> threshold` holds, evaluated every
/// `interval_seconds` for `window_seconds` after the provider's run succeeded; it fails after
/// `failures_allowed + 1` consecutive failing evaluations. A dry-run gate is evaluated and
/// recorded, never acted on. A comparison gate reads `threshold` and `comparator` otherwise
/// (see [`GateKind::Comparison`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GateSpec {
    pub name: String,
    pub kind: GateKind,
    pub query: String,
    pub comparator: Comparator,
    pub threshold: f64,
    #[serde(default = "default_interval")]
    pub interval_seconds: u64,
    #[serde(default = "default_window")]
    pub window_seconds: u64,
    #[serde(default)]
    pub failures_allowed: u32,
    #[serde(default)]
    pub dry_run: bool,
}

fn default_interval() -> u64 {
    30
}

fn default_window() -> u64 {
    300
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Service {
    pub name: String,
    pub owner: String,
    pub environments: Vec<Environment>,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub current_version: Option<String>,
    pub previous_good_version: Option<String>,
    pub provider: ProviderSpec,
    pub approval_required: bool,
    pub freeze_windows: Vec<FreezeWindow>,
    #[serde(default)]
    pub recurring_freezes: Vec<RecurringFreeze>,
    /// The freeze in force as the environment was read (an absolute window, or the current
    /// occurrence of a recurring one), if any.
    #[serde(default)]
    pub frozen: Option<FreezeWindow>,
    pub gates: Vec<GateSpec>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    Requested,
    AwaitingApproval,
    Triggered,
    Running,
    Analysing,
    Succeeded,
    Failed,
    RolledBack,
    Aborted,
}

impl RolloutState {
    pub const ALL: [Self; 9] = [
        Self::Requested,
        Self::AwaitingApproval,
        Self::Triggered,
        Self::Running,
        Self::Analysing,
        Self::Succeeded,
        Self::Failed,
        Self::RolledBack,
        Self::Aborted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "requested",
            Self::AwaitingApproval => "awaiting_approval",
            Self::Triggered => "triggered",
            Self::Running => "running",
            Self::Analysing => "analysing",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::RolledBack => "rolled_back",
            Self::Aborted => "aborted",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == text)
    }

    /// Whether the rollout is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::RolledBack | Self::Aborted)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RolloutKind {
    Deploy,
    Rollback,
}

impl RolloutKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deploy => "deploy",
            Self::Rollback => "rollback",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: i64,
    pub service: String,
    pub environment: String,
    pub kind: RolloutKind,
    pub version: String,
    pub from_version: Option<String>,
    pub state: RolloutState,
    pub requested_by: String,
    pub approved_by: Option<String>,
    /// The provider's run, once triggered.
    pub run_id: Option<String>,
    pub run_url: Option<String>,
    pub error: Option<String>,
    /// For an automatic rollback: the rollout it undoes.
    pub parent_id: Option<i64>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// A line of a rollout's timeline: a state it entered, or an event (`gate`, `callback`,
/// `approved`, `cancel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutEvent {
    pub at: Timestamp,
    pub kind: String,
    pub actor: String,
    pub detail: String,
}

/// One evaluation of a gate during the analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateSample {
    pub at: Timestamp,
    /// Absent when it could not be evaluated (no data, Prometheus away): a failing evaluation.
    pub value: Option<f64>,
    pub healthy: bool,
}

/// A gate of a rollout's environment and what its analysis found so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateResult {
    pub gate: GateSpec,
    /// The evaluations, oldest first (the newest [`GateResult::MAX_SAMPLES`]).
    pub samples: Vec<GateSample>,
    pub consecutive_failures: u32,
    pub failed: bool,
}

impl GateResult {
    pub const MAX_SAMPLES: usize = 500;
}

/// A firing of an alert of the rollout's service while the rollout ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutAlert {
    pub fingerprint: String,
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
    pub start: Timestamp,
    /// Still firing when absent.
    pub end: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutDetail {
    pub rollout: Rollout,
    pub events: Vec<RolloutEvent>,
    /// The environment's gates with their analysis (empty before the analysis begins when the
    /// environment has none).
    #[serde(default)]
    pub gates: Vec<GateResult>,
    /// Alerts of the service (label `service`) that fired between the rollout's start and end.
    #[serde(default)]
    pub alerts: Vec<RolloutAlert>,
}

/// `GET /api/v1/rollouts/annotations?start=&end=&filter=`: when deploys ran, for charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployAnnotationQuery {
    pub start: Timestamp,
    pub end: Timestamp,
    /// A selector of matchers on the labels `service` and `environment` (every rollout when
    /// empty), as an alert filter is written.
    #[serde(default)]
    pub filter: Option<String>,
}

/// One rollout that overlaps the asked range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployAnnotation {
    pub rollout_id: i64,
    pub service: String,
    pub environment: String,
    pub kind: RolloutKind,
    pub version: String,
    pub state: RolloutState,
    pub start: Timestamp,
    /// When it ended; still running when absent.
    pub end: Option<Timestamp>,
}

impl DeployAnnotationQuery {
    /// The most rollouts one answer holds (the newest).
    pub const MAX_ANNOTATIONS: usize = 1000;
}

/// `POST /api/v1/rollouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    pub service: String,
    pub environment: String,
    pub version: String,
}

/// `GET /api/v1/rollouts?service=&environment=&state=&limit=&offset=`, newest first; `state`
/// is one state, or `active` for every rollout not over yet.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutQuery {
    pub service: Option<String>,
    pub environment: Option<String>,
    pub state: Option<String>,
    pub limit: Option<u32>,
    pub offset: Option<u32>,
}

impl RolloutQuery {
    /// The `state` that lists every rollout not over yet.
    pub const ACTIVE: &'static str = "active";
    pub const DEFAULT_LIMIT: u32 = 50;
    pub const MAX_LIMIT: u32 = 500;
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutPage {
    pub rollouts: Vec<Rollout>,
    pub total: u64,
}

/// What a generic-webhook provider posts to its receiver (signed, see the backend's
/// `rollouts::webhook`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeployWebhookBody {
    pub rollout_id: i64,
    pub service: String,
    pub environment: String,
    pub version: String,
    /// `deploy` or `rollback`.
    pub kind: RolloutKind,
    /// Where an asynchronous receiver posts the run's outcome.
    pub callback_url: String,
    /// When it was sent, Unix seconds (so that a receiver can refuse replays).
    pub sent_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackStatus {
    Running,
    Succeeded,
    Failed,
}

/// What an asynchronous CI posts to `POST /api/v1/rollouts/{id}/callback`, signed like the
/// webhook it answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RolloutCallback {
    pub rollout_id: i64,
    pub status: CallbackStatus,
    #[serde(default)]
    pub detail: String,
    /// A link to the CI's run, if it has one.
    #[serde(default)]
    pub url: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_and_know_when_they_are_over() {
        for state in RolloutState::ALL {
            assert_eq!(RolloutState::parse(state.as_str()), Some(state));
            let wire = serde_json::to_value(state).unwrap();
            assert_eq!(wire, state.as_str());
        }
        assert!(RolloutState::RolledBack.is_terminal() && !RolloutState::Analysing.is_terminal());
    }

    #[test]
    fn a_gate_takes_its_defaults() {
        let gate: GateSpec = serde_json::from_value(serde_json::json!({
            "name": "errors", "kind": "log", "query": "level:error", "comparator": "<", "threshold": 5
        }))
        .unwrap();
        assert_eq!(
            (gate.interval_seconds, gate.window_seconds, gate.failures_allowed, gate.dry_run),
            (30, 300, 0, false)
        );
    }

    #[test]
    fn gate_kinds_read_back() {
        for kind in GateKind::ALL {
            assert_eq!(GateKind::parse(kind.as_str()), Some(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert_eq!(GateKind::parse("canary"), None);
    }
}
