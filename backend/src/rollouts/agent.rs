//! The Vigil agent provider (`kind: agent`): the agents of the environment's hosts deploy,
//! one batch of hosts at a time, with the gates judged between batches.
//!
//! The backend sends a host's agent an order naming the service and the version, never a
//! command: the agent runs the command fixed in its own `[deploy]` section, for a version its
//! `version_pattern` accepts, so that whoever controls the backend cannot run anything else on
//! the hosts. Agents fetch their orders (`GET /api/v1/agents/deploys?host=`) and report on them
//! (`POST /api/v1/agents/deploys/{id}`) with the token their host is bound to by its
//! heartbeats (see [`crate::agents`]): no other caller reads or reports a host's orders.
//!
//! Parameters: `hosts` (the hosts, in the order they deploy), `batch_size` (hosts deployed
//! together, 1 by default), `order_timeout_seconds` (how long a host's agent may take to
//! report on an order, 600 by default). The trigger writes every order, the first batch
//! released; a run "succeeds" each time a batch has; the runner then judges the gates over
//! their window and, when they pass, releases the next batch ([`Provider::next_batch`]), so a
//! failing gate stops the rollout before the hosts still waiting. An automatic rollback goes
//! to the hosts of the rollout it undoes that started its order; a manual one to every host.
//! Cancelling cancels the orders no agent took; an order already running finishes.

use std::collections::BTreeSet;

use serde_json::{Map, Value};
use vigil_proto::agents::{DeployOrder, DeployOrders, DeployReport, DeployStatus};
use vigil_proto::rollouts::RolloutKind;

use super::provider::{Provider, ProviderError, RunHandle, RunOutcome, RunStatus, TriggerRequest, excerpt};
use crate::store::{Database, DeployOrderEnd, DeployOrderRow, NewDeployOrder, StoreError, now_millis};

pub const KIND: &str = "agent";
const MAX_HOSTS: usize = 1000;
const MAX_HOST_BYTES: usize = 253;
const DEFAULT_ORDER_TIMEOUT_SECONDS: u64 = 600;
/// Characters of a command's output kept with its order.
const MAX_OUTPUT_CHARS: usize = 4000;
const MAX_REASON_CHARS: usize = 1000;
const RUN_PREFIX: &str = "agent-";

pub struct AgentProvider {
    hosts: Vec<String>,
    batch_size: usize,
    order_timeout_millis: i64,
    database: Database,
}

impl AgentProvider {
    pub fn new(params: &Map<String, Value>, database: Database) -> Result<Self, ProviderError> {
        let params_error = |message: &str| ProviderError::Params(format!("params.{message}"));
        let hosts: Vec<String> = match params.get("hosts") {
            Some(Value::Array(hosts)) if !hosts.is_empty() && hosts.len() <= MAX_HOSTS => hosts
                .iter()
                .map(|host| match host.as_str() {
                    Some(host) if is_host(host) => Ok(host.to_owned()),
                    _ => Err(params_error(&format!(
                        "hosts: {host} must be a host name of 1 to {MAX_HOST_BYTES} bytes without spaces or control \
                         characters"
                    ))),
                })
                .collect::<Result<_, _>>()?,
            _ => return Err(params_error(&format!("hosts must list 1 to {MAX_HOSTS} host names"))),
        };
        let mut seen = BTreeSet::new();
        if let Some(twice) = hosts.iter().find(|host| !seen.insert(host.as_str())) {
            return Err(params_error(&format!("hosts: {twice:?} is listed twice")));
        }
        let batch_size = match params.get("batch_size") {
            None | Some(Value::Null) => 1,
            Some(value) => value
                .as_u64()
                .filter(|size| (1..=MAX_HOSTS as u64).contains(size))
                .ok_or_else(|| params_error(&format!("batch_size must be a whole number from 1 to {MAX_HOSTS}")))?
                as usize,
        };
        let timeout = match params.get("order_timeout_seconds") {
            None | Some(Value::Null) => DEFAULT_ORDER_TIMEOUT_SECONDS,
            Some(value) => value
                .as_u64()
                .filter(|seconds| (1..=86_400).contains(seconds))
                .ok_or_else(|| params_error("order_timeout_seconds must be a whole number from 1 to 86400"))?,
        };
        if let Some(unknown) =
            params.keys().find(|key| !["hosts", "batch_size", "order_timeout_seconds"].contains(&key.as_str()))
        {
            return Err(params_error(&format!("{unknown} is not a parameter of the agent provider")));
        }
        Ok(Self { hosts, batch_size, order_timeout_millis: timeout as i64 * 1000, database })
    }

    /// The hosts a rollout deploys to: for an automatic rollback, those of the rollout it
    /// undoes whose agent started its order (in their order); otherwise every host.
    async fn hosts_for(&self, request: &TriggerRequest<'_>) -> Result<Vec<String>, ProviderError> {
        if request.kind == RolloutKind::Rollback
            && let Some(parent) = self.database.rollout(request.rollout_id).await?.and_then(|row| row.parent_id)
        {
            let started: BTreeSet<String> = self
                .database
                .deploy_orders(parent)
                .await?
                .into_iter()
                .filter(|order| order.started_at_millis.is_some())
                .map(|order| order.host)
                .collect();
            let hosts: Vec<String> = self.hosts.iter().filter(|host| started.contains(*host)).cloned().collect();
            if !hosts.is_empty() {
                return Ok(hosts);
            }
        }
        Ok(self.hosts.clone())
    }
}

fn is_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= MAX_HOST_BYTES
        && !host.chars().any(|character| character.is_control() || character.is_whitespace())
}

fn rollout_of(run_id: &str) -> Result<i64, ProviderError> {
    run_id.strip_prefix(RUN_PREFIX).and_then(|id| id.parse().ok()).ok_or_else(|| ProviderError::Answer {
        what: "the agent provider".to_owned(),
        detail: format!("{run_id:?} is not one of its runs"),
    })
}

/// A line saying what became of a finished order.
fn describe(order: &DeployOrderRow) -> String {
    let mut text = format!("{} {} {}", order.host, order.state, order.version);
    if let Some(code) = order.exit_code {
        text.push_str(&format!(" (exit code {code})"));
    }
    if !order.reason.is_empty() {
        text.push_str(&format!(": {}", order.reason));
    }
    if order.state == "failed" && !order.output.trim().is_empty() {
        let lines: Vec<&str> = order.output.trim_end().lines().collect();
        let last = lines[lines.len().saturating_sub(3)..].join(" | ");
        text.push_str(&format!("; output: {}", excerpt(&last)));
    }
    text
}

#[async_trait::async_trait]
impl Provider for AgentProvider {
    async fn trigger(&self, request: &TriggerRequest<'_>) -> Result<RunHandle, ProviderError> {
        let hosts = self.hosts_for(request).await?;
        let orders: Vec<NewDeployOrder> = hosts
            .iter()
            .enumerate()
            .map(|(index, host)| NewDeployOrder { host: host.clone(), batch: (index / self.batch_size) as i64 })
            .collect();
        self.database
            .insert_deploy_orders(request.rollout_id, request.service, request.environment, request.version, &orders)
            .await?;
        Ok(RunHandle { id: format!("{RUN_PREFIX}{}", request.rollout_id), url: None, finished: None })
    }

    /// Running while the released batch is; succeeded once all of it has (the runner judges
    /// the gates, then asks for the next batch); failed at the first order that failed, was
    /// refused, or had no report in time.
    async fn poll(&self, run_id: &str) -> Result<RunOutcome, ProviderError> {
        let rollout_id = rollout_of(run_id)?;
        let orders = self.database.deploy_orders(rollout_id).await?;
        let outcome = |status, detail| RunOutcome { status, detail, url: None };
        let failed = async |detail: String| {
            // The hosts still waiting will not deploy.
            self.database.cancel_deploy_orders(rollout_id, &format!("the rollout failed: {detail}")).await?;
            Ok::<_, ProviderError>(outcome(RunStatus::Failed, detail))
        };
        if orders.is_empty() {
            return Ok(outcome(RunStatus::Failed, "the rollout has no deploy orders".to_owned()));
        }
        let batches = orders.iter().map(|order| order.batch).max().unwrap_or(0) + 1;
        let released: Vec<&DeployOrderRow> = orders.iter().filter(|order| order.state != "waiting").collect();
        if let Some(order) = released.iter().find(|order| matches!(order.state.as_str(), "failed" | "refused")) {
            return failed(describe(order)).await;
        }
        let now = now_millis();
        for order in released.iter().filter(|order| matches!(order.state.as_str(), "pending" | "running")) {
            let since = order.released_at_millis.unwrap_or(order.created_at_millis);
            if now - since > self.order_timeout_millis {
                let reason = format!(
                    "no report from the agent of {} within {} s (is it running, with a [deploy] section?)",
                    order.host,
                    self.order_timeout_millis / 1000
                );
                let end =
                    DeployOrderEnd { state: "failed", exit_code: None, reason: reason.clone(), output: String::new() };
                self.database.finish_deploy_order(order.id, &end).await?;
                return failed(reason).await;
            }
        }
        if let Some(order) = released.iter().find(|order| order.state == "cancelled") {
            return Ok(outcome(RunStatus::Cancelled, describe(order)));
        }
        let batch = released.iter().map(|order| order.batch).max().unwrap_or(0);
        let open: Vec<String> = released
            .iter()
            .filter(|order| matches!(order.state.as_str(), "pending" | "running"))
            .map(|order| format!("{} {}", order.host, order.state))
            .collect();
        if !open.is_empty() {
            return Ok(outcome(RunStatus::Running, format!("batch {} of {batches}: {}", batch + 1, open.join(", "))));
        }
        let done: Vec<&str> =
            released.iter().filter(|order| order.batch == batch).map(|order| order.host.as_str()).collect();
        let next = if batch + 1 < batches { "; the next batch follows once the gates pass" } else { "" };
        Ok(outcome(
            RunStatus::Succeeded,
            format!("batch {} of {batches}: {} deployed {}{next}", batch + 1, done.join(", "), orders[0].version),
        ))
    }

    async fn next_batch(&self, run_id: &str) -> Result<Option<String>, ProviderError> {
        let rollout_id = rollout_of(run_id)?;
        if self.database.release_next_batch(rollout_id).await? == 0 {
            return Ok(None);
        }
        let orders = self.database.deploy_orders(rollout_id).await?;
        let batches = orders.iter().map(|order| order.batch).max().unwrap_or(0) + 1;
        let batch = orders.iter().filter(|order| order.state == "pending").map(|order| order.batch).min().unwrap_or(0);
        let hosts: Vec<&str> =
            orders.iter().filter(|order| order.batch == batch).map(|order| order.host.as_str()).collect();
        Ok(Some(format!("batch {} of {batches} released: {}", batch + 1, hosts.join(", "))))
    }

    async fn cancel(&self, run_id: &str, reason: &str) -> Result<(), ProviderError> {
        self.database.cancel_deploy_orders(rollout_of(run_id)?, reason).await?;
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentDeployError {
    #[error("{0}")]
    Invalid(String),
    #[error("host {0:?} is not bound to this caller: its orders go to the token its agent sends heartbeats with")]
    NotBound(String),
    #[error("no deploy order has id {0}")]
    NoOrder(i64),
    #[error("deploy order {id} is {state}: it cannot be {status}")]
    Over { id: i64, state: String, status: &'static str },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Refused unless `caller` (its stable key) is the one `host` is bound to.
async fn check_bound(database: &Database, caller: &str, host: &str) -> Result<(), AgentDeployError> {
    match database.agent(host).await? {
        Some(agent) if agent.registered_by == caller => Ok(()),
        _ => Err(AgentDeployError::NotBound(crate::audit::bounded(host, 100).into_owned())),
    }
}

/// The orders `host`'s agent has to run or finish (at most one), for the caller it is bound to.
pub async fn orders_for(database: &Database, caller: &str, host: &str) -> Result<DeployOrders, AgentDeployError> {
    check_bound(database, caller, host).await?;
    let orders = database
        .open_deploy_orders(host, 1)
        .await?
        .into_iter()
        .map(|order| DeployOrder {
            id: order.id,
            rollout_id: order.rollout_id,
            service: order.service,
            environment: order.environment,
            version: order.version,
        })
        .collect();
    Ok(DeployOrders { orders })
}

/// An agent's report on order `id`: taken (`running`), or its end. The same end reported
/// again (a report whose answer was lost) is accepted and changes nothing.
pub async fn report(database: &Database, caller: &str, id: i64, report: &DeployReport) -> Result<(), AgentDeployError> {
    let order = database.deploy_order(id).await?.ok_or(AgentDeployError::NoOrder(id))?;
    check_bound(database, caller, &order.host).await?;
    if report.host != order.host {
        return Err(AgentDeployError::Invalid(format!("deploy order {id} is not for host {:?}", report.host)));
    }
    let status = report.status.as_str();
    let reason = crate::audit::bounded(report.reason.trim(), MAX_REASON_CHARS).into_owned();
    let output = tail_chars(&report.output, MAX_OUTPUT_CHARS);
    let changed = match report.status {
        DeployStatus::Running => database.start_deploy_order(id).await?,
        DeployStatus::Succeeded | DeployStatus::Failed | DeployStatus::Refused => {
            let end = DeployOrderEnd { state: status, exit_code: report.exit_code.map(i64::from), reason, output };
            database.finish_deploy_order(id, &end).await?
        }
    };
    if !changed {
        if order.state == status {
            return Ok(());
        }
        return Err(AgentDeployError::Over { id, state: order.state, status });
    }
    let detail = match database.deploy_order(id).await? {
        Some(order) if report.status != DeployStatus::Running => describe(&order),
        _ => format!("{} running {}", order.host, order.version),
    };
    database.append_rollout_event(order.rollout_id, &super::entry("agent", &order.host, detail)).await?;
    Ok(())
}

/// The last `max` characters of `text`.
fn tail_chars(text: &str, max: usize) -> String {
    let count = text.chars().count();
    text.chars().skip(count.saturating_sub(max)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_ids_name_their_rollout() {
        assert_eq!(rollout_of("agent-42").unwrap(), 42);
        assert!(rollout_of("webhook-42").is_err());
        assert!(rollout_of("agent-x").is_err());
    }

    #[test]
    fn host_names_are_plain() {
        assert!(is_host("web-1.example.com"));
        for bad in ["", "web 1", "web\n1", &"a".repeat(254)] {
            assert!(!is_host(bad), "{bad:?}");
        }
    }

    #[test]
    fn outputs_keep_their_end() {
        assert_eq!(tail_chars("abcdef", 3), "def");
        assert_eq!(tail_chars("ab", 3), "ab");
    }
}
