//! Runs the rollouts, on the one node that holds the `rollout-runner` lease: every tick it
//! takes the rollouts that are triggered, running or analysing (so a restart resumes them),
//! and moves each one step: trigger the provider once, follow the run, judge the gates every
//! interval over the window, then succeed (the environment's versions move) or roll back. A
//! provider that deploys in batches (the agents) is followed and judged once per batch: its
//! next batch starts only once the gates passed after the last.
//!
//! A deploy command runs once: the trigger's start is written before the provider is called
//! and the run after; a rollout found with the first and not the second was cut off while
//! triggering and fails ("check the provider") rather than be triggered again.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use tokio_util::sync::CancellationToken;
use vigil_logstore::LogStore;
use vigil_proto::auth::AuditOutcome;
use vigil_proto::paths;
use vigil_proto::rollouts::{GateKind, RolloutKind, RolloutState};

use super::comparison;
use super::gates::{self, Analysis};
use super::machine::{self, Event};
use super::provider::{RunOutcome, RunStatus, TriggerRequest};
use super::{RolloutError, entry, kind_of, provider_for, state_of};
use crate::audit::{self, Action, Actor};
use crate::config::RolloutsConfig;
use crate::prometheus::query::Prometheus;
use crate::secrets::SecretBox;
use crate::store::{Database, GateRow, NewRollout, RolloutChange, RolloutRow, Versions, now_millis};
use crate::telemetry::error_chain;

/// The lease the running node holds.
pub const LEASE: &str = "rollout-runner";
/// The name the runner's changes carry on timelines and in the audit log.
pub const ACTOR: &str = "rollout-runner";

/// What the runner reads and calls.
pub struct Parts<'a> {
    pub database: &'a Database,
    pub secrets: &'a SecretBox,
    pub prometheus: &'a Prometheus,
    pub log_store: &'a dyn LogStore,
    pub http: &'a reqwest::Client,
    pub config: &'a RolloutsConfig,
    /// Vigil's address as CI systems reach it, for callback URLs.
    pub callback_base: &'a str,
    /// When each rollout's run was last polled, for providers with a poll interval.
    pub polled: PollTimes,
}

/// When each rollout's run was last polled (in this process: after a restart, at once).
#[derive(Default)]
pub struct PollTimes(std::sync::Mutex<std::collections::HashMap<i64, std::time::Instant>>);

impl PollTimes {
    /// Whether `rollout` may be polled now, at most once per `interval`; if so, noted.
    fn due(&self, rollout: i64, interval: Duration) -> bool {
        if interval.is_zero() {
            return true;
        }
        let now = std::time::Instant::now();
        let mut polled = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if polled.get(&rollout).is_some_and(|at| now.duration_since(*at) < interval) {
            return false;
        }
        if polled.len() > 10_000 {
            polled.retain(|_, at| now.duration_since(*at) < Duration::from_secs(3600));
        }
        polled.insert(rollout, now);
        true
    }
}

/// Runs until `shutdown`; `holder` names this node in the lease.
pub async fn run(parts: Parts<'_>, holder: &str, shutdown: CancellationToken) {
    let holding = Arc::new(AtomicBool::new(false));
    let lease_millis = i64::try_from(parts.config.lease_seconds.saturating_mul(1000)).unwrap_or(i64::MAX / 2);
    let mut ticker = tokio::time::interval(Duration::from_millis(parts.config.tick_millis));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        let now = now_millis();
        match parts.database.try_lease(LEASE, holder, now, now + lease_millis).await {
            Ok(Some(_)) => {
                if !holding.swap(true, Ordering::SeqCst) {
                    tracing::info!(holder, "this node runs the rollouts");
                }
            }
            Ok(None) => {
                if holding.swap(false, Ordering::SeqCst) {
                    tracing::warn!(holder, "another node took over the rollouts");
                }
                continue;
            }
            Err(error) => {
                tracing::warn!(error = %error_chain(&error), "cannot take the rollout runner's lease");
                continue;
            }
        }
        tick(&parts).await;
    }
    if let Err(error) = parts.database.release_lease(LEASE, holder).await {
        tracing::warn!(error = %error_chain(&error), "cannot release the rollout runner's lease");
    }
}

/// Moves every rollout in progress one step.
async fn tick(parts: &Parts<'_>) {
    let states = [RolloutState::Triggered, RolloutState::Running, RolloutState::Analysing].map(RolloutState::as_str);
    let rollouts = match parts.database.rollouts_in(&states).await {
        Ok(rollouts) => rollouts,
        Err(error) => {
            tracing::warn!(error = %error_chain(&error), "cannot read the rollouts in progress");
            return;
        }
    };
    futures::stream::iter(rollouts)
        .for_each_concurrent(parts.config.max_concurrent_rollouts, |row| async move {
            if let Err(error) = step(parts, &row).await {
                tracing::warn!(rollout = row.id, error = %error_chain(&error), "cannot move a rollout on");
            }
        })
        .await;
}

/// One step of one rollout.
pub async fn step(parts: &Parts<'_>, row: &RolloutRow) -> Result<(), RolloutError> {
    match state_of(row) {
        RolloutState::Triggered => trigger(parts, row).await,
        RolloutState::Running => follow(parts, row).await,
        RolloutState::Analysing => analyse(parts, row).await,
        _ => Ok(()),
    }
}

/// Moves a rollout to `to` from the state it was read in, with `error` and a timeline entry.
async fn fail(parts: &Parts<'_>, row: &RolloutRow, to: RolloutState, error: String) -> Result<(), RolloutError> {
    let change = RolloutChange { error: Some(error.clone()), ..RolloutChange::default() };
    let event = entry(to.as_str(), ACTOR, error);
    parts.database.change_rollout(row.id, &[&row.state], to.as_str(), &change, Some(&event)).await?;
    Ok(())
}

async fn trigger(parts: &Parts<'_>, row: &RolloutRow) -> Result<(), RolloutError> {
    let failed = machine::next(RolloutState::Triggered, Event::TriggerFailed)?;
    if row.trigger_started_at_millis.is_some() {
        let error = "Vigil stopped while triggering the provider, which may have started a run: check it before \
                     deploying again (a rollout is never triggered twice)";
        return fail(parts, row, failed, error.to_owned()).await;
    }
    let environment = match super::environment_row(parts.database, &row.service, &row.environment).await {
        Ok(environment) => environment,
        Err(error) => return fail(parts, row, failed, format!("cannot trigger: {error}")).await,
    };
    let provider = match provider_for(parts.database, parts.secrets, parts.http, &environment).await {
        Ok(provider) => provider,
        Err(error) => return fail(parts, row, failed, format!("cannot trigger: {error}")).await,
    };
    let started = RolloutChange { trigger_started_at_millis: Some(now_millis()), ..RolloutChange::default() };
    if !parts.database.change_rollout(row.id, &[&row.state], &row.state, &started, None).await? {
        return Ok(());
    }
    let callback_url =
        format!("{}{}", parts.callback_base, paths::ROLLOUT_CALLBACK.replace("{id}", &row.id.to_string()));
    let request = TriggerRequest {
        rollout_id: row.id,
        service: &row.service,
        environment: &row.environment,
        version: &row.version,
        kind: kind_of(row),
        callback_url: &callback_url,
    };
    let handle = match provider.trigger(&request).await {
        Ok(handle) => handle,
        Err(error) => return fail(parts, row, failed, format!("the provider refused the trigger: {error}")).await,
    };
    let running = machine::next(RolloutState::Triggered, Event::RunStarted)?;
    let change =
        RolloutChange { run_id: Some(handle.id.clone()), run_url: handle.url.clone(), ..RolloutChange::default() };
    let detail =
        format!("run {}{}", handle.id, handle.url.as_ref().map(|url| format!(" at {url}")).unwrap_or_default());
    let event = entry(running.as_str(), ACTOR, detail);
    if !parts.database.change_rollout(row.id, &[&row.state], running.as_str(), &change, Some(&event)).await? {
        // Aborted while the provider was called: the run it started is stopped too.
        return super::cancel_run(parts.database, parts.secrets, parts.http, row, &handle.id, ACTOR).await;
    }
    if let Some(outcome) = handle.finished {
        let running_row = RolloutRow { state: running.as_str().to_owned(), ..row.clone() };
        finish_run(parts, &running_row, outcome).await?;
    }
    Ok(())
}

async fn follow(parts: &Parts<'_>, row: &RolloutRow) -> Result<(), RolloutError> {
    let Some(run_id) = &row.run_id else {
        return fail(parts, row, RolloutState::Failed, "running without a run".to_owned()).await;
    };
    let environment = super::environment_row(parts.database, &row.service, &row.environment).await?;
    let provider = provider_for(parts.database, parts.secrets, parts.http, &environment).await?;
    let timeout_millis = i64::try_from(parts.config.run_timeout_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
    let started = row.trigger_started_at_millis.unwrap_or(row.created_at_millis);
    if now_millis().saturating_sub(started) > timeout_millis {
        let limit = parts.config.run_timeout_seconds;
        let cancelled = match provider.cancel(run_id, &format!("Vigil: the run took longer than {limit} s")).await {
            Ok(()) => "cancelled at the provider".to_owned(),
            Err(error) => format!("not cancelled at the provider: {error}"),
        };
        let detail = format!("the run took longer than {limit} s (rollouts.run_timeout_seconds); {cancelled}");
        let outcome = RunOutcome { status: RunStatus::Failed, detail, url: None };
        return finish_run(parts, row, outcome).await;
    }
    if !parts.polled.due(row.id, provider.poll_interval()) {
        return Ok(());
    }
    // A provider that does not answer now may answer at the next tick.
    let outcome = provider.poll(run_id).await?;
    if outcome.status == RunStatus::Running {
        if outcome.url.is_some() && outcome.url != row.run_url {
            let change = RolloutChange { run_url: outcome.url, ..RolloutChange::default() };
            parts.database.change_rollout(row.id, &[&row.state], &row.state, &change, None).await?;
        }
        return Ok(());
    }
    finish_run(parts, row, outcome).await
}

/// The end of a run: on to the analysis, or failed.
async fn finish_run(parts: &Parts<'_>, row: &RolloutRow, outcome: RunOutcome) -> Result<(), RolloutError> {
    let succeeded = outcome.status == RunStatus::Succeeded;
    let to = machine::next(state_of(row), Event::RunFinished { succeeded })?;
    let error = match outcome.status {
        RunStatus::Cancelled => Some(format!("the run was cancelled at the provider: {}", outcome.detail)),
        RunStatus::Failed => Some(format!("the run failed: {}", outcome.detail)),
        _ => None,
    };
    let change = RolloutChange {
        run_url: outcome.url,
        analysis_started_at_millis: succeeded.then(now_millis),
        error,
        ..RolloutChange::default()
    };
    let event = entry(to.as_str(), ACTOR, outcome.detail);
    parts.database.change_rollout(row.id, &[&row.state], to.as_str(), &change, Some(&event)).await?;
    Ok(())
}

/// The gates a rollout is judged by: none for a rollback, which goes back to a version known
/// good (judging it by the failure it undoes would fail it).
async fn gates_of(parts: &Parts<'_>, row: &RolloutRow) -> Result<Vec<GateRow>, RolloutError> {
    Ok(match kind_of(row) {
        RolloutKind::Rollback => Vec::new(),
        RolloutKind::Deploy => parts.database.gates(&row.service, &row.environment).await?,
    })
}

async fn analyse(parts: &Parts<'_>, row: &RolloutRow) -> Result<(), RolloutError> {
    let now = now_millis();
    let gates = gates_of(parts, row).await?;
    let started = row.analysis_started_at_millis.unwrap_or(now);
    let mut analysis: Analysis = serde_json::from_str(&row.analysis).unwrap_or_default();
    let mut failing = None;
    let mut evaluated = false;
    // A comparison gate's hosts by version, read once per step from the rollout's orders.
    let hosts = if gates.iter().any(|gate| gate.kind == GateKind::Comparison.as_str()) {
        Some(comparison::host_versions(&parts.database.deploy_orders(row.id).await?))
    } else {
        None
    };
    for gate in &gates {
        let progress = analysis.get(&gate.id).cloned().unwrap_or_default();
        if progress.next_at_millis > now || now > started + gate.window_seconds * 1000 {
            continue;
        }
        let evaluation = gates::evaluate(parts.prometheus, parts.log_store, gate, hosts.as_ref(), started, now).await;
        let mut judged = gates::judge(&progress, evaluation.healthy, gate, now);
        judged.record(now, &evaluation);
        let mut detail = evaluation.detail.clone();
        if judged.failed && !progress.failed {
            detail.push_str(&format!(
                "; the gate failed after {} failing evaluations in a row",
                judged.consecutive_failures
            ));
        }
        if gate.dry_run {
            detail.push_str(" (dry run: not acted on)");
        }
        parts.database.append_rollout_event(row.id, &entry("gate", ACTOR, detail)).await?;
        if judged.failed && !gate.dry_run && failing.is_none() {
            failing = Some(format!("gate {} failed: {}", gate.name, evaluation.detail));
        }
        analysis.insert(gate.id, judged);
        evaluated = true;
    }
    let analysis_json = serde_json::to_string(&analysis)?;
    if let Some(error) = failing {
        return gate_failed(parts, row, error, analysis_json).await;
    }
    let window = gates.iter().map(|gate| gate.window_seconds * 1000).max().unwrap_or(0);
    if now >= started + window {
        if next_batch(parts, row).await? {
            return Ok(());
        }
        return succeed(parts, row).await;
    }
    if evaluated {
        let change = RolloutChange { analysis: Some(analysis_json), ..RolloutChange::default() };
        parts.database.change_rollout(row.id, &[&row.state], &row.state, &change, None).await?;
    }
    Ok(())
}

/// After an analysis passed, the provider's next batch (for a provider that deploys in
/// batches): `true` when one started, and the rollout runs again with a fresh analysis.
async fn next_batch(parts: &Parts<'_>, row: &RolloutRow) -> Result<bool, RolloutError> {
    let Some(run_id) = &row.run_id else { return Ok(false) };
    let to = machine::next(state_of(row), Event::NextBatch)?;
    let environment = super::environment_row(parts.database, &row.service, &row.environment).await?;
    let provider = provider_for(parts.database, parts.secrets, parts.http, &environment).await?;
    let Some(detail) = provider.next_batch(run_id).await? else { return Ok(false) };
    let change = RolloutChange { analysis: Some("{}".to_owned()), ..RolloutChange::default() };
    let event = entry(to.as_str(), ACTOR, detail);
    parts.database.change_rollout(row.id, &[&row.state], to.as_str(), &change, Some(&event)).await?;
    Ok(true)
}

/// A failed gate: a deploy with a version to go back to is rolled back (with the same
/// provider), anything else fails.
async fn gate_failed(parts: &Parts<'_>, row: &RolloutRow, error: String, analysis: String) -> Result<(), RolloutError> {
    let back_to = row.from_version.clone().filter(|_| kind_of(row) == RolloutKind::Deploy);
    let to = machine::next(state_of(row), Event::GateFailed { rolls_back: back_to.is_some() })?;
    let change = RolloutChange { error: Some(error.clone()), analysis: Some(analysis), ..RolloutChange::default() };
    let Some(version) = back_to else {
        let event = entry(to.as_str(), ACTOR, error);
        parts.database.change_rollout(row.id, &[&row.state], to.as_str(), &change, Some(&event)).await?;
        return Ok(());
    };
    let submitted = machine::next(RolloutState::Requested, Event::Submit { approval_required: false })?;
    let rollback = NewRollout {
        service: row.service.clone(),
        environment: row.environment.clone(),
        kind: RolloutKind::Rollback.as_str(),
        version: version.clone(),
        from_version: Some(row.version.clone()),
        state: submitted.as_str(),
        requested_by: ACTOR.to_owned(),
        requester_key: ACTOR.to_owned(),
        parent_id: Some(row.id),
    };
    let why = format!("automatic rollback of rollout {} to {version}: {error}", row.id);
    let events = [entry(RolloutState::Requested.as_str(), ACTOR, why.clone()), entry(submitted.as_str(), ACTOR, "")];
    let event = entry(to.as_str(), ACTOR, why.clone());
    let created = parts.database.roll_back(row, &change, &event, &rollback, &events).await?;
    if let Some(created) = created {
        let target = format!("{}/{} {version}", row.service, row.environment);
        let detail = format!("rollout {} rolls back rollout {}: {error}", created.id, row.id);
        audit::record(
            parts.database,
            &Actor::new(ACTOR, None),
            Action::RolloutRollback,
            &target,
            AuditOutcome::Success,
            &detail,
        )
        .await;
        // At once rather than at the next tick: a bad version is undone as soon as it is known.
        trigger(parts, &created).await?;
    }
    Ok(())
}

/// The analysis passed: the environment's versions move.
async fn succeed(parts: &Parts<'_>, row: &RolloutRow) -> Result<(), RolloutError> {
    machine::next(state_of(row), Event::AnalysisPassed)?;
    let environment = super::environment_row(parts.database, &row.service, &row.environment).await?;
    let versions = versions_after(&environment.current_version, &environment.previous_good_version, row);
    let detail = format!(
        "{} is now at {}{}",
        row.environment,
        row.version,
        versions.previous_good.as_ref().map(|previous| format!(" (previous good {previous})")).unwrap_or_default()
    );
    let event = entry(RolloutState::Succeeded.as_str(), ACTOR, detail);
    parts.database.succeed_rollout(row, &row.state, &versions, &event).await?;
    Ok(())
}

/// An environment's versions once `row` succeeded: a deploy makes its version current and the
/// current one the previous good; a rollback makes its version current and forgets it as the
/// previous good (what came before it is not known).
fn versions_after(current: &Option<String>, previous_good: &Option<String>, row: &RolloutRow) -> Versions {
    let version = Some(row.version.clone());
    if *current == version {
        return Versions { current: current.clone(), previous_good: previous_good.clone() };
    }
    match kind_of(row) {
        RolloutKind::Deploy => Versions { current: version, previous_good: current.clone() },
        RolloutKind::Rollback => Versions {
            previous_good: previous_good.clone().filter(|previous| Some(previous) != version.as_ref()),
            current: version,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(kind: &str, version: &str) -> RolloutRow {
        RolloutRow {
            id: 1,
            service: "shop".to_owned(),
            environment: "production".to_owned(),
            kind: kind.to_owned(),
            version: version.to_owned(),
            from_version: None,
            state: "analysing".to_owned(),
            requested_by: "ana".to_owned(),
            requester_key: "user:1".to_owned(),
            approved_by: None,
            trigger_started_at_millis: None,
            run_id: None,
            run_url: None,
            analysis_started_at_millis: None,
            analysis: "{}".to_owned(),
            error: None,
            parent_id: None,
            created_at_millis: 0,
            updated_at_millis: 0,
        }
    }

    fn some(text: &str) -> Option<String> {
        Some(text.to_owned())
    }

    #[test]
    fn a_poll_interval_spaces_the_polls_of_each_rollout() {
        let polled = PollTimes::default();
        assert!(polled.due(1, Duration::ZERO) && polled.due(1, Duration::ZERO), "no interval: every tick");
        assert!(polled.due(2, Duration::from_secs(60)));
        assert!(!polled.due(2, Duration::from_secs(60)), "not again within the interval");
        assert!(polled.due(3, Duration::from_secs(60)), "each rollout has its own");
        std::thread::sleep(Duration::from_millis(20));
        assert!(polled.due(2, Duration::from_millis(10)), "again once the interval passed");
    }

    #[test]
    fn versions_move_with_deploys_and_rollbacks() {
        let deployed = versions_after(&some("1.0"), &None, &rollout("deploy", "1.1"));
        assert_eq!(deployed, Versions { current: some("1.1"), previous_good: some("1.0") });
        let first = versions_after(&None, &None, &rollout("deploy", "1.0"));
        assert_eq!(first, Versions { current: some("1.0"), previous_good: None });
        let manual = versions_after(&some("1.1"), &some("1.0"), &rollout("rollback", "1.0"));
        assert_eq!(manual, Versions { current: some("1.0"), previous_good: None });
        let automatic = versions_after(&some("1.0"), &some("0.9"), &rollout("rollback", "1.0"));
        assert_eq!(automatic, Versions { current: some("1.0"), previous_good: some("0.9") }, "nothing moved");
    }
}
