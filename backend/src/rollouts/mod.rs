//! Rollouts: services with an environment per rollout target (a CI/CD provider with its
//! parameters and sealed credential, an approval rule, freeze windows, the current and
//! previous good versions) and health gates; the rollouts that deploy a version, or roll back
//! to the last good one, and their timelines. A rollout moves only as [`machine`] allows, each
//! move one conditional write with its timeline entry; the node holding the `rollout-runner`
//! lease triggers, follows and judges them ([`runner`]), so a restart resumes them.
//!
//! Called alike by the API's routes (and later the UI's services); the runner runs from
//! start-up. Who may call what is the router's business (deployers and administrators start,
//! approve, abort and roll back; administrators edit services); the rules that depend on the
//! rollout itself (nobody approves their own, freeze windows, one at a time) are here.

pub mod agent;
pub mod argocd;
pub mod buildbot;
pub mod circleci;
pub mod comparison;
pub mod gates;
pub mod github;
pub mod gitlab;
pub mod jenkins;
pub mod kubernetes;
pub mod machine;
pub mod provider;
pub mod runner;
pub mod schedule;
pub mod webhook;

use std::collections::BTreeSet;

use vigil_logstore::LogStore;
use vigil_proto::alerts::AnnotationQuery;
use vigil_proto::auth::AuditOutcome;
use vigil_proto::rollouts::{
    CallbackStatus, DeployAnnotation, DeployAnnotationQuery, Environment, EnvironmentWrite, FreezeWindow, GateKind,
    GateResult, GateSample, GateSpec, ProviderSpec, RecurringFreeze, Rollout, RolloutAlert, RolloutCallback,
    RolloutDetail, RolloutEvent, RolloutKind, RolloutPage, RolloutQuery, RolloutRequest, RolloutState, Service,
    ServiceWrite,
};

use self::machine::{Event, TransitionError};
use self::provider::{Credential, Provider, ProviderError};
use crate::audit::{self, Action, Actor};
use crate::integrations::{IntegrationError, IntegrationKind};
use crate::secrets::SecretBox;
use crate::store::{
    Database, EnvironmentRow, GateRow, NewRollout, RolloutChange, RolloutEventRow, RolloutFilter, RolloutRow,
    ServiceRow, StoreError, millis_to_timestamp, now_millis,
};

/// Timeline entries shown with a rollout.
const DETAIL_EVENTS: i64 = 1000;
const MAX_VERSION_CHARS: usize = 128;
const MAX_OWNER_CHARS: usize = 256;
const MAX_ENVIRONMENTS: usize = 32;
const MAX_GATES: usize = 32;
const MAX_QUERY_CHARS: usize = 4096;

#[derive(Debug, thiserror::Error)]
pub enum RolloutError {
    /// A service, environment, gate or request that breaks a rule; the text names the field.
    #[error("{0}")]
    Invalid(String),
    #[error("no service is named {0:?}")]
    NoService(String),
    #[error("service {service:?} has no environment {environment:?}")]
    NoEnvironment { service: String, environment: String },
    #[error("no rollout has id {0}")]
    NoRollout(i64),
    #[error(
        "rollout {id} of {service}/{environment} is {state}: one rollout at a time per service and environment; \
         wait for it or abort it"
    )]
    Busy { id: i64, service: String, environment: String, state: &'static str },
    #[error("{environment} is frozen until {until}{reason}: deploys are refused (rollbacks are not)")]
    Frozen { environment: String, until: String, reason: String },
    #[error("you requested rollout {0}: another deployer or administrator must approve it")]
    OwnApproval(i64),
    #[error("{0}")]
    Transition(#[from] TransitionError),
    #[error("{service}/{environment} has no previous good version to roll back to")]
    NoPreviousVersion { service: String, environment: String },
    #[error("no integration is named {0:?}")]
    UnknownIntegration(String),
    /// A callback whose signature is missing or wrong.
    #[error("{0}")]
    BadSignature(&'static str),
    /// A callback that is signed but says something wrong.
    #[error("{0}")]
    BadCallback(String),
    #[error(transparent)]
    Provider(#[from] ProviderError),
    #[error(transparent)]
    Integration(#[from] IntegrationError),
    #[error(transparent)]
    Alerts(#[from] crate::alerts::AlertError),
    #[error("a stored service or rollout cannot be read or written: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who asks: the name the audit log and the timeline give them, and the stable key by which
/// nobody approves their own rollout (a user is the same by session or personal token).
#[derive(Debug, Clone)]
pub struct Requester {
    pub actor: Actor,
    pub key: String,
}

fn entry(kind: &str, actor: &str, detail: impl Into<String>) -> RolloutEventRow {
    RolloutEventRow { at_millis: now_millis(), kind: kind.to_owned(), actor: actor.to_owned(), detail: detail.into() }
}

pub(crate) fn state_of(row: &RolloutRow) -> RolloutState {
    // Only this module writes states, from `RolloutState::as_str`.
    RolloutState::parse(&row.state).unwrap_or(RolloutState::Failed)
}

pub(crate) fn kind_of(row: &RolloutRow) -> RolloutKind {
    if row.kind == "rollback" { RolloutKind::Rollback } else { RolloutKind::Deploy }
}

fn rollout(row: &RolloutRow) -> Rollout {
    Rollout {
        id: row.id,
        service: row.service.clone(),
        environment: row.environment.clone(),
        kind: kind_of(row),
        version: row.version.clone(),
        from_version: row.from_version.clone(),
        state: state_of(row),
        requested_by: row.requested_by.clone(),
        approved_by: row.approved_by.clone(),
        run_id: row.run_id.clone(),
        run_url: row.run_url.clone(),
        error: row.error.clone(),
        parent_id: row.parent_id,
        created_at: millis_to_timestamp(row.created_at_millis),
        updated_at: millis_to_timestamp(row.updated_at_millis),
    }
}

fn gate_spec(row: &GateRow) -> GateSpec {
    GateSpec {
        name: row.name.clone(),
        kind: GateKind::parse(&row.kind).unwrap_or(GateKind::Promql),
        query: row.query.clone(),
        comparator: gates::comparator(&row.comparator).unwrap_or(vigil_proto::alerts::Comparator::Below),
        threshold: row.threshold,
        interval_seconds: u64::try_from(row.interval_seconds).unwrap_or(1),
        window_seconds: u64::try_from(row.window_seconds).unwrap_or(1),
        failures_allowed: u32::try_from(row.failures_allowed).unwrap_or(0),
        dry_run: row.dry_run,
    }
}

async fn environment(database: &Database, row: &EnvironmentRow) -> Result<Environment, RolloutError> {
    let integration = match row.integration_id {
        Some(id) => database.integration(id).await?.map(|integration| integration.name),
        None => None,
    };
    let (freeze_windows, recurring_freezes) = freezes_of(row)?;
    Ok(Environment {
        name: row.name.clone(),
        current_version: row.current_version.clone(),
        previous_good_version: row.previous_good_version.clone(),
        provider: ProviderSpec {
            kind: row.provider.clone(),
            params: serde_json::from_str(&row.provider_params)?,
            integration,
        },
        approval_required: row.approval_required,
        frozen: freeze_at(row, now_millis())?,
        freeze_windows,
        recurring_freezes,
        gates: database.gates(&row.service, &row.name).await?.iter().map(gate_spec).collect(),
    })
}

async fn service(database: &Database, row: &ServiceRow) -> Result<Service, RolloutError> {
    let mut environments = Vec::new();
    for environment_row in database.environments(&row.name).await? {
        environments.push(environment(database, &environment_row).await?);
    }
    Ok(Service {
        name: row.name.clone(),
        owner: row.owner.clone(),
        environments,
        updated_at: millis_to_timestamp(row.updated_at_millis),
        updated_by: row.updated_by.clone(),
    })
}

/// Adds the configuration's services that the table lacks; the others are left as edited.
pub async fn seed(database: &Database, names: &[String]) -> Result<(), RolloutError> {
    Ok(database.seed_services(names, "configuration").await?)
}

pub async fn list_services(database: &Database) -> Result<Vec<Service>, RolloutError> {
    let mut services = Vec::new();
    for row in database.services().await? {
        services.push(service(database, &row).await?);
    }
    Ok(services)
}

pub async fn get_service(database: &Database, name: &str) -> Result<Service, RolloutError> {
    let row = database.service(name).await?.ok_or_else(|| RolloutError::NoService(name.to_owned()))?;
    service(database, &row).await
}

/// Creates a service (`existing` is `None`) or replaces the one named `existing`.
pub async fn save_service(
    database: &Database,
    log_store: &dyn LogStore,
    http: &reqwest::Client,
    actor: &Actor,
    existing: Option<&str>,
    write: &ServiceWrite,
) -> Result<Service, RolloutError> {
    if let Some(name) = existing.filter(|name| *name != write.name) {
        return Err(RolloutError::Invalid(format!("name {:?} differs from the service's, {name:?}", write.name)));
    }
    let environments = check_service(database, log_store, http, write).await?;
    let row = ServiceRow {
        name: write.name.clone(),
        owner: write.owner.clone(),
        updated_at_millis: now_millis(),
        updated_by: actor.name.clone(),
    };
    let saved = database.save_service(&row, &environments, existing.is_none()).await;
    let action = if existing.is_none() { Action::ServiceCreate } else { Action::ServiceUpdate };
    let outcome = if matches!(saved, Ok(true)) { AuditOutcome::Success } else { AuditOutcome::Failure };
    let names: Vec<&str> = write.environments.iter().map(|environment| environment.name.as_str()).collect();
    let detail = format!("environments: {}", names.join(", "));
    audit::record(database, actor, action, &write.name, outcome, &detail).await;
    if !saved? {
        return Err(RolloutError::NoService(write.name.clone()));
    }
    get_service(database, &write.name).await
}

/// Checks a service as written, and turns it into rows.
async fn check_service(
    database: &Database,
    log_store: &dyn LogStore,
    http: &reqwest::Client,
    write: &ServiceWrite,
) -> Result<Vec<(EnvironmentRow, Vec<GateRow>)>, RolloutError> {
    let invalid = |message: String| Err(RolloutError::Invalid(message));
    if !vigil_proto::names::is_service_name(&write.name) {
        return invalid("name must be 1 to 64 letters, digits, '-', '_' and '.'".to_owned());
    }
    if write.owner.chars().count() > MAX_OWNER_CHARS {
        return invalid(format!("owner must be at most {MAX_OWNER_CHARS} characters"));
    }
    if write.environments.len() > MAX_ENVIRONMENTS {
        return invalid(format!("a service has at most {MAX_ENVIRONMENTS} environments"));
    }
    let mut names = BTreeSet::new();
    let mut rows = Vec::new();
    for environment in &write.environments {
        if !names.insert(environment.name.as_str()) {
            return invalid(format!("environment {:?} is listed twice", environment.name));
        }
        rows.push(check_environment(database, log_store, http, &write.name, environment).await?);
    }
    Ok(rows)
}

async fn check_environment(
    database: &Database,
    log_store: &dyn LogStore,
    http: &reqwest::Client,
    service: &str,
    write: &EnvironmentWrite,
) -> Result<(EnvironmentRow, Vec<GateRow>), RolloutError> {
    let name = &write.name;
    let invalid = |message: String| Err(RolloutError::Invalid(format!("environments.{name}: {message}")));
    if !vigil_proto::names::is_plain_name(name) {
        return invalid("the name must be 1 to 64 letters, digits, '-', '_' and '.'".to_owned());
    }
    if let Some(version) = &write.current_version {
        check_version(version).map_err(|error| RolloutError::Invalid(format!("environments.{name}: {error}")))?;
    }
    // The parameters are checked by building the provider (without its credential).
    if let Err(error) = provider::build(&write.provider.kind, &write.provider.params, None, http, database) {
        return invalid(error.to_string());
    }
    let integration_id = match &write.provider.integration {
        None => None,
        Some(integration) => Some(integration_for(database, &write.provider.kind, integration).await?),
    };
    if let Some(window) = write.freeze_windows.iter().find(|window| window.end <= window.start) {
        return invalid(format!("the freeze window from {} must end after it starts", window.start.to_rfc3339()));
    }
    for (index, freeze) in write.recurring_freezes.iter().enumerate() {
        recurring(freeze).map_err(|error| {
            RolloutError::Invalid(format!("environments.{name}.recurring_freezes[{index}]: {error}"))
        })?;
    }
    if write.gates.len() > MAX_GATES {
        return invalid(format!("at most {MAX_GATES} gates"));
    }
    let mut gates = Vec::new();
    let mut gate_names = BTreeSet::new();
    for gate in &write.gates {
        if !gate_names.insert(gate.name.as_str()) {
            return invalid(format!("gate {:?} is listed twice", gate.name));
        }
        gates.push(check_gate(log_store, &write.provider.kind, gate).await.map_err(|error| match error {
            RolloutError::Invalid(message) => RolloutError::Invalid(format!("environments.{name}.{message}")),
            other => other,
        })?);
    }
    let row = EnvironmentRow {
        service: service.to_owned(),
        name: name.clone(),
        current_version: write.current_version.clone(),
        previous_good_version: None,
        provider: write.provider.kind.clone(),
        provider_params: serde_json::to_string(&write.provider.params)?,
        integration_id,
        approval_required: write.approval_required,
        freeze_windows: serde_json::to_string(&stored_freezes(write))?,
    };
    Ok((row, gates))
}

/// The id of the integration an environment names, which must be of its provider's kind.
async fn integration_for(database: &Database, provider: &str, name: &str) -> Result<i64, RolloutError> {
    let row =
        database.integration_named(name).await?.ok_or_else(|| RolloutError::UnknownIntegration(name.to_owned()))?;
    let kind: IntegrationKind = row.kind.parse()?;
    if kind.as_str() != provider {
        return Err(RolloutError::Invalid(format!(
            "integration {name:?} is of kind {kind}, not {provider} as the provider is"
        )));
    }
    Ok(row.id)
}

/// A gate as stored, checked; `provider` is the environment's (a comparison gate needs the
/// agent provider, whose orders say which hosts run which version).
async fn check_gate(log_store: &dyn LogStore, provider: &str, gate: &GateSpec) -> Result<GateRow, RolloutError> {
    let invalid = |message: &str| Err(RolloutError::Invalid(format!("gates.{}: {message}", gate.name)));
    if !vigil_proto::names::is_plain_name(&gate.name) {
        return Err(RolloutError::Invalid(format!(
            "gates: {:?} must be 1 to 64 letters, digits, '-', '_' and '.'",
            gate.name
        )));
    }
    if gate.query.trim().is_empty() || gate.query.chars().count() > MAX_QUERY_CHARS {
        return invalid(&format!("query must be 1 to {MAX_QUERY_CHARS} characters"));
    }
    if gate.kind == GateKind::Log
        && let Err(error) = log_store.parse_query(&gate.query).await
    {
        return invalid(&format!("query: {error}"));
    }
    if !gate.threshold.is_finite() {
        return invalid("threshold must be a number");
    }
    if gate.kind == GateKind::Comparison {
        let field = |field: &str, message: String| {
            Err(RolloutError::Invalid(format!("gates.{}.{field}: {message}", gate.name)))
        };
        if provider != agent::KIND {
            return field(
                "kind",
                format!(
                    "a comparison gate compares the hosts of the {} provider; this environment's provider is {provider}",
                    agent::KIND
                ),
            );
        }
        if !(gate.threshold > 0.0 && gate.threshold < 1.0) {
            return field(
                "threshold",
                format!(
                    "the significance (alpha) of a comparison gate must be between 0 and 1, e.g. 0.05, not {}",
                    gate.threshold
                ),
            );
        }
        if gates::higher_is_worse(gate.comparator).is_none() {
            return field(
                "comparator",
                "a comparison gate's comparator says which values are healthy: <, <= (lower) or >, >= (higher)"
                    .to_owned(),
            );
        }
    }
    if gate.interval_seconds == 0 || gate.window_seconds < gate.interval_seconds || gate.window_seconds > 86_400 {
        return invalid("interval_seconds must be at least 1 and window_seconds between it and 86400");
    }
    if gate.failures_allowed > 1000 {
        return invalid("failures_allowed must be at most 1000");
    }
    let seconds = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
    Ok(GateRow {
        id: 0,
        name: gate.name.clone(),
        kind: gate.kind.as_str().to_owned(),
        query: gate.query.clone(),
        comparator: gate.comparator.as_str().to_owned(),
        threshold: gate.threshold,
        interval_seconds: seconds(gate.interval_seconds),
        window_seconds: seconds(gate.window_seconds),
        failures_allowed: i64::from(gate.failures_allowed),
        dry_run: gate.dry_run,
    })
}

/// A version as providers receive it: letters, digits and `._+/-`, not starting with `-` (so
/// that no deploy script reads it as an option).
fn check_version(version: &str) -> Result<(), RolloutError> {
    let valid = !version.is_empty()
        && version.chars().count() <= MAX_VERSION_CHARS
        && !version.starts_with('-')
        && version.chars().all(|character| character.is_ascii_alphanumeric() || "._+/-".contains(character));
    if valid {
        Ok(())
    } else {
        Err(RolloutError::Invalid(format!(
            "version {version:?} must be 1 to {MAX_VERSION_CHARS} letters, digits, '.', '_', '+', '/' and '-', \
             not starting with '-'"
        )))
    }
}

async fn environment_row(database: &Database, service: &str, name: &str) -> Result<EnvironmentRow, RolloutError> {
    if database.service(service).await?.is_none() {
        return Err(RolloutError::NoService(service.to_owned()));
    }
    database
        .environment(service, name)
        .await?
        .ok_or_else(|| RolloutError::NoEnvironment { service: service.to_owned(), environment: name.to_owned() })
}

/// A freeze as the `freeze_windows` column keeps it: the absolute windows and the recurring
/// ones in one JSON array, told apart by their fields.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
enum StoredFreeze {
    Absolute(FreezeWindow),
    Recurring(RecurringFreeze),
}

fn stored_freezes(write: &EnvironmentWrite) -> Vec<StoredFreeze> {
    let absolute = write.freeze_windows.iter().cloned().map(StoredFreeze::Absolute);
    absolute.chain(write.recurring_freezes.iter().cloned().map(StoredFreeze::Recurring)).collect()
}

fn freezes_of(environment: &EnvironmentRow) -> Result<(Vec<FreezeWindow>, Vec<RecurringFreeze>), RolloutError> {
    let stored: Vec<StoredFreeze> = serde_json::from_str(&environment.freeze_windows)?;
    let (mut absolute, mut recurring) = (Vec::new(), Vec::new());
    for freeze in stored {
        match freeze {
            StoredFreeze::Absolute(window) => absolute.push(window),
            StoredFreeze::Recurring(freeze) => recurring.push(freeze),
        }
    }
    Ok((absolute, recurring))
}

/// A recurring freeze's schedule, duration in minutes and offset, checked.
fn recurring(freeze: &RecurringFreeze) -> Result<(schedule::Cron, i64, time::UtcOffset), String> {
    let cron = schedule::Cron::parse(&freeze.schedule).map_err(|error| format!("schedule: {error}"))?;
    let duration: vigil_proto::RelativeRange =
        freeze.duration.parse().map_err(|_| format!("duration {:?} must read like 30m, 2h or 3d", freeze.duration))?;
    let minutes = duration.as_nanos() / 60_000_000_000;
    if !(1..=schedule::MAX_DURATION_MINUTES).contains(&minutes) {
        return Err(format!("duration {:?} must be from 1 minute to 31 days", freeze.duration));
    }
    let offset = schedule::parse_offset(&freeze.utc_offset)?;
    Ok((cron, minutes, offset))
}

/// The freeze `at` falls in, if any: an absolute window, or the occurrence of a recurring
/// one that holds it (as an absolute window).
fn freeze_at(environment: &EnvironmentRow, at_millis: i64) -> Result<Option<FreezeWindow>, RolloutError> {
    let (windows, recurring_freezes) = freezes_of(environment)?;
    let at = millis_to_timestamp(at_millis);
    if let Some(window) = windows.into_iter().find(|window| window.start <= at && at < window.end) {
        return Ok(Some(window));
    }
    for freeze in &recurring_freezes {
        // Checked when saved; a schedule that no longer reads freezes nothing.
        let Ok((cron, minutes, offset)) = recurring(freeze) else { continue };
        if let Some((start, end)) = schedule::window_at(&cron, minutes, offset, at_millis) {
            return Ok(Some(FreezeWindow {
                start: millis_to_timestamp(start),
                end: millis_to_timestamp(end),
                reason: freeze.reason.clone(),
            }));
        }
    }
    Ok(None)
}

/// Requests a deploy of `version`: refused in a freeze window and while another rollout of
/// the environment is not over; it waits for a second person when the environment says so.
pub async fn start(
    database: &Database,
    requester: &Requester,
    request: &RolloutRequest,
) -> Result<Rollout, RolloutError> {
    let target = format!("{}/{} {}", request.service, request.environment, request.version);
    let result = start_deploy(database, requester, request).await;
    record(database, &requester.actor, Action::RolloutStart, &target, &result).await;
    result
}

async fn start_deploy(
    database: &Database,
    requester: &Requester,
    request: &RolloutRequest,
) -> Result<Rollout, RolloutError> {
    check_version(&request.version)?;
    let environment = environment_row(database, &request.service, &request.environment).await?;
    if let Some(window) = freeze_at(&environment, now_millis())? {
        let reason = if window.reason.is_empty() { String::new() } else { format!(" ({})", window.reason) };
        return Err(RolloutError::Frozen {
            environment: format!("{}/{}", request.service, request.environment),
            until: window.end.to_rfc3339(),
            reason,
        });
    }
    let new = NewRollout {
        service: request.service.clone(),
        environment: request.environment.clone(),
        kind: RolloutKind::Deploy.as_str(),
        version: request.version.clone(),
        from_version: environment.current_version.clone(),
        state: RolloutState::Requested.as_str(),
        requested_by: requester.actor.name.clone(),
        requester_key: requester.key.clone(),
        parent_id: None,
    };
    submit(database, new, environment.approval_required, &requester.actor.name).await
}

/// Writes a new rollout, already moved past `requested` by [`machine::next`].
async fn submit(
    database: &Database,
    mut new: NewRollout,
    approval_required: bool,
    actor: &str,
) -> Result<Rollout, RolloutError> {
    let state = machine::next(RolloutState::Requested, Event::Submit { approval_required })?;
    new.state = state.as_str();
    let detail = match &new.from_version {
        Some(from) => format!("{} {} (from {from})", new.kind, new.version),
        None => format!("{} {}", new.kind, new.version),
    };
    let events = [entry(RolloutState::Requested.as_str(), actor, detail), entry(state.as_str(), actor, "")];
    match database.insert_rollout(&new, &events).await {
        Ok(row) => Ok(rollout(&row)),
        Err(StoreError::Conflict(_)) => Err(busy(database, &new.service, &new.environment).await),
        Err(error) => Err(error.into()),
    }
}

/// The refusal of a second rollout, naming the one in progress.
async fn busy(database: &Database, service: &str, environment: &str) -> RolloutError {
    match database.active_rollout(service, environment).await {
        Ok(Some(active)) => RolloutError::Busy {
            id: active.id,
            service: service.to_owned(),
            environment: environment.to_owned(),
            state: state_of(&active).as_str(),
        },
        Ok(None) => RolloutError::Invalid("another rollout just ended; try again".to_owned()),
        Err(error) => error.into(),
    }
}

/// Rolls an environment back to its previous good version, at once (a rollback needs no
/// approval and is allowed in a freeze window: it undoes).
pub async fn roll_back(
    database: &Database,
    requester: &Requester,
    service: &str,
    environment: &str,
) -> Result<Rollout, RolloutError> {
    let result = start_rollback(database, requester, service, environment).await;
    record(database, &requester.actor, Action::RolloutRollback, &format!("{service}/{environment}"), &result).await;
    result
}

async fn start_rollback(
    database: &Database,
    requester: &Requester,
    service: &str,
    environment: &str,
) -> Result<Rollout, RolloutError> {
    let row = environment_row(database, service, environment).await?;
    let Some(version) = row.previous_good_version.clone() else {
        return Err(RolloutError::NoPreviousVersion {
            service: service.to_owned(),
            environment: environment.to_owned(),
        });
    };
    let new = NewRollout {
        service: service.to_owned(),
        environment: environment.to_owned(),
        kind: RolloutKind::Rollback.as_str(),
        version,
        from_version: row.current_version.clone(),
        state: RolloutState::Requested.as_str(),
        requested_by: requester.actor.name.clone(),
        requester_key: requester.key.clone(),
        parent_id: None,
    };
    submit(database, new, false, &requester.actor.name).await
}

/// A second person approves a rollout awaiting approval; it is triggered next.
pub async fn approve(database: &Database, requester: &Requester, id: i64) -> Result<Rollout, RolloutError> {
    let result = approve_rollout(database, requester, id).await;
    record(database, &requester.actor, Action::RolloutApprove, &id.to_string(), &result).await;
    result
}

async fn approve_rollout(database: &Database, requester: &Requester, id: i64) -> Result<Rollout, RolloutError> {
    let row = database.rollout(id).await?.ok_or(RolloutError::NoRollout(id))?;
    let to = machine::next(state_of(&row), Event::Approve)?;
    if row.requester_key == requester.key {
        return Err(RolloutError::OwnApproval(id));
    }
    let name = &requester.actor.name;
    let change = RolloutChange { approved_by: Some(name.clone()), ..RolloutChange::default() };
    let event = entry("approved", name, "");
    if !database.change_rollout(id, &[&row.state], to.as_str(), &change, Some(&event)).await? {
        return Err(moved(database, id, Event::Approve).await);
    }
    database.append_rollout_event(id, &entry(to.as_str(), name, "")).await?;
    Ok(rollout(&database.rollout(id).await?.ok_or(RolloutError::NoRollout(id))?))
}

/// The error for a rollout that another change moved first.
async fn moved(database: &Database, id: i64, event: Event) -> RolloutError {
    match database.rollout(id).await {
        Ok(Some(row)) => TransitionError { from: state_of(&row), event }.into(),
        Ok(None) => RolloutError::NoRollout(id),
        Err(error) => error.into(),
    }
}

/// Stops a rollout at any point before its end; a run in progress is cancelled at the
/// provider (what the provider answers is on the timeline).
pub async fn abort(
    database: &Database,
    secrets: &SecretBox,
    http: &reqwest::Client,
    requester: &Requester,
    id: i64,
) -> Result<Rollout, RolloutError> {
    let result = abort_rollout(database, secrets, http, requester, id).await;
    record(database, &requester.actor, Action::RolloutAbort, &id.to_string(), &result).await;
    result
}

async fn abort_rollout(
    database: &Database,
    secrets: &SecretBox,
    http: &reqwest::Client,
    requester: &Requester,
    id: i64,
) -> Result<Rollout, RolloutError> {
    let name = &requester.actor.name;
    // The runner may move it meanwhile: try again from the state it reached.
    for _ in 0..5 {
        let row = database.rollout(id).await?.ok_or(RolloutError::NoRollout(id))?;
        let to = machine::next(state_of(&row), Event::Abort)?;
        let change = RolloutChange { error: Some(format!("aborted by {name}")), ..RolloutChange::default() };
        let event = entry(to.as_str(), name, "");
        if database.change_rollout(id, &[&row.state], to.as_str(), &change, Some(&event)).await? {
            if let Some(run_id) = &row.run_id {
                cancel_run(database, secrets, http, &row, run_id, name).await?;
            }
            return Ok(rollout(&database.rollout(id).await?.ok_or(RolloutError::NoRollout(id))?));
        }
    }
    Err(moved(database, id, Event::Abort).await)
}

/// Cancels a rollout's run at its provider and says so on the timeline.
pub(crate) async fn cancel_run(
    database: &Database,
    secrets: &SecretBox,
    http: &reqwest::Client,
    row: &RolloutRow,
    run_id: &str,
    actor: &str,
) -> Result<(), RolloutError> {
    let environment = environment_row(database, &row.service, &row.environment).await?;
    let provider = provider_for(database, secrets, http, &environment).await?;
    let detail = match provider.cancel(run_id, &format!("rollout {} aborted by {actor}", row.id)).await {
        Ok(()) => format!("run {run_id} cancelled at the provider"),
        Err(error) => format!("run {run_id} not cancelled: {error}"),
    };
    database.append_rollout_event(row.id, &entry("cancel", actor, detail)).await?;
    Ok(())
}

/// The provider of an environment, with its credential opened.
pub(crate) async fn provider_for(
    database: &Database,
    secrets: &SecretBox,
    http: &reqwest::Client,
    environment: &EnvironmentRow,
) -> Result<Box<dyn Provider>, RolloutError> {
    let params = serde_json::from_str(&environment.provider_params)?;
    let credential = match environment.integration_id {
        None => None,
        Some(id) => {
            let row = database.integration(id).await?.ok_or(IntegrationError::NotFound(id))?;
            Some(Credential {
                settings: serde_json::from_str(&row.settings)?,
                secrets: crate::integrations::open_secrets(secrets, &row)?,
            })
        }
    };
    Ok(provider::build(&environment.provider, &params, credential, http, database)?)
}

/// An asynchronous CI's report on a run it was given by the webhook provider: `body` must be
/// signed with the environment's `signing_key` (see [`webhook`]) and name this rollout.
pub async fn callback(
    database: &Database,
    secrets: &SecretBox,
    id: i64,
    body: &[u8],
    signature: Option<&str>,
) -> Result<Rollout, RolloutError> {
    let row = database.rollout(id).await?.ok_or(RolloutError::NoRollout(id))?;
    let environment = environment_row(database, &row.service, &row.environment).await?;
    let key = signing_key(database, secrets, &environment).await?;
    let signature = signature.ok_or(RolloutError::BadSignature("the callback has no X-Vigil-Signature header"))?;
    if !webhook::verify(&key, body, signature) {
        return Err(RolloutError::BadSignature("the callback's X-Vigil-Signature does not match its body"));
    }
    let report: RolloutCallback = serde_json::from_slice(body)
        .map_err(|error| RolloutError::BadCallback(format!("invalid callback: {error}")))?;
    if report.rollout_id != id {
        return Err(RolloutError::BadCallback(format!("the callback is for rollout {}, not {id}", report.rollout_id)));
    }
    let result = apply_callback(database, &row, &report).await;
    let actor = Actor::new("callback", None);
    let status = format!("{:?}", report.status).to_lowercase();
    let outcome = if result.is_ok() { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit::record(database, &actor, Action::RolloutCallback, &id.to_string(), outcome, &status).await;
    result
}

async fn apply_callback(
    database: &Database,
    row: &RolloutRow,
    report: &RolloutCallback,
) -> Result<Rollout, RolloutError> {
    let detail = provider::excerpt(&report.detail);
    let change = RolloutChange { run_url: report.url.clone(), ..RolloutChange::default() };
    let succeeded = match report.status {
        CallbackStatus::Running => {
            let event = entry("callback", "callback", format!("running {detail}").trim().to_owned());
            database.change_rollout(row.id, &[&row.state], &row.state, &change, Some(&event)).await?;
            return Ok(rollout(&database.rollout(row.id).await?.ok_or(RolloutError::NoRollout(row.id))?));
        }
        CallbackStatus::Succeeded => true,
        CallbackStatus::Failed => false,
    };
    let event = Event::RunFinished { succeeded };
    let to = machine::next(state_of(row), event)?;
    let change = RolloutChange {
        error: (!succeeded).then(|| format!("the run failed: {detail}")),
        analysis_started_at_millis: succeeded.then(now_millis),
        ..change
    };
    let timeline = entry(to.as_str(), "callback", detail);
    if !database.change_rollout(row.id, &[&row.state], to.as_str(), &change, Some(&timeline)).await? {
        return Err(moved(database, row.id, event).await);
    }
    Ok(rollout(&database.rollout(row.id).await?.ok_or(RolloutError::NoRollout(row.id))?))
}

/// The key callbacks of an environment are signed with.
async fn signing_key(
    database: &Database,
    secrets: &SecretBox,
    environment: &EnvironmentRow,
) -> Result<String, RolloutError> {
    let no_key = RolloutError::BadSignature("this rollout's environment takes no callbacks: it has no signing key");
    let Some(id) = environment.integration_id.filter(|_| environment.provider == "webhook") else {
        return Err(no_key);
    };
    let row = database.integration(id).await?.ok_or(IntegrationError::NotFound(id))?;
    crate::integrations::open_secret(secrets, &row, "signing_key")?.ok_or(no_key)
}

/// A page of rollouts, newest first.
pub async fn list(database: &Database, query: &RolloutQuery) -> Result<RolloutPage, RolloutError> {
    let limit = query.limit.unwrap_or(RolloutQuery::DEFAULT_LIMIT);
    if limit == 0 || limit > RolloutQuery::MAX_LIMIT {
        return Err(RolloutError::Invalid(format!("limit must be between 1 and {}", RolloutQuery::MAX_LIMIT)));
    }
    let wanted = query.state.as_deref().filter(|state| !state.is_empty());
    let active = wanted == Some(RolloutQuery::ACTIVE);
    let state = match wanted.filter(|_| !active) {
        None => None,
        Some(text) => Some(RolloutState::parse(text).ok_or_else(|| {
            let states: Vec<&str> = RolloutState::ALL.iter().map(|state| state.as_str()).collect();
            RolloutError::Invalid(format!(
                "state {text:?} is not one of {}, or {} (every state but the final ones)",
                states.join(", "),
                RolloutQuery::ACTIVE
            ))
        })?),
    };
    let filter = RolloutFilter {
        service: query.service.as_deref().filter(|service| !service.is_empty()),
        environment: query.environment.as_deref().filter(|environment| !environment.is_empty()),
        state: state.map(RolloutState::as_str),
        active,
    };
    let (rows, total) = database.rollouts_page(&filter, i64::from(limit), i64::from(query.offset.unwrap_or(0))).await?;
    Ok(RolloutPage { rollouts: rows.iter().map(rollout).collect(), total: u64::try_from(total).unwrap_or(0) })
}

/// A rollout with its timeline.
pub async fn detail(database: &Database, id: i64) -> Result<RolloutDetail, RolloutError> {
    let row = database.rollout(id).await?.ok_or(RolloutError::NoRollout(id))?;
    let events = database
        .rollout_events(id, DETAIL_EVENTS)
        .await?
        .into_iter()
        .map(|event| RolloutEvent {
            at: millis_to_timestamp(event.at_millis),
            kind: event.kind,
            actor: event.actor,
            detail: event.detail,
        })
        .collect();
    let analysis: gates::Analysis = serde_json::from_str(&row.analysis).unwrap_or_default();
    let gates = database
        .gates(&row.service, &row.environment)
        .await?
        .iter()
        .map(|gate| {
            let progress = analysis.get(&gate.id).cloned().unwrap_or_default();
            GateResult {
                gate: gate_spec(gate),
                samples: progress
                    .samples
                    .iter()
                    .map(|sample| GateSample {
                        at: millis_to_timestamp(sample.at_millis),
                        value: sample.value,
                        healthy: sample.healthy,
                    })
                    .collect(),
                consecutive_failures: progress.consecutive_failures,
                failed: progress.failed,
            }
        })
        .collect();
    let alerts = alerts_during(database, &row).await?;
    Ok(RolloutDetail { rollout: rollout(&row), events, gates, alerts })
}

/// When a rollout ended; `None` while it runs.
fn ended_at(row: &RolloutRow) -> Option<i64> {
    state_of(row).is_terminal().then_some(row.updated_at_millis)
}

/// The alerts of the rollout's service (label `service`) that fired while it ran.
async fn alerts_during(database: &Database, row: &RolloutRow) -> Result<Vec<RolloutAlert>, RolloutError> {
    let query = AnnotationQuery {
        start: millis_to_timestamp(row.created_at_millis),
        end: millis_to_timestamp(ended_at(row).unwrap_or_else(now_millis)),
        filter: Some(format!("service={}", quoted(&row.service))),
    };
    let annotations = crate::alerts::annotations(database, &query).await?;
    Ok(annotations
        .into_iter()
        .map(|annotation| RolloutAlert {
            name: annotation.labels.get("alertname").cloned().unwrap_or_default(),
            fingerprint: annotation.fingerprint,
            labels: annotation.labels,
            start: annotation.start,
            end: annotation.end,
        })
        .collect())
}

/// A label value as a matcher quotes it.
fn quoted(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

/// When rollouts ran between `start` and `end` whose `service` and `environment` match the
/// filter: one annotation per rollout, newest first, for charts.
pub async fn annotations(
    database: &Database,
    query: &DeployAnnotationQuery,
) -> Result<Vec<DeployAnnotation>, RolloutError> {
    if query.end < query.start {
        return Err(RolloutError::Invalid("end must not be before start".to_owned()));
    }
    let filter = match query.filter.as_deref().filter(|text| !text.trim().is_empty()) {
        None => None,
        Some(text) => {
            let matchers = vigil_proto::alerts::parse_matchers(text)
                .map_err(|error| RolloutError::Invalid(format!("filter: {error}")))?;
            Some(crate::alerts::silences::Compiled::new("filter", &matchers)?)
        }
    };
    let limit = i64::try_from(DeployAnnotationQuery::MAX_ANNOTATIONS).unwrap_or(i64::MAX);
    let start = query.start.as_unix_nanos() / 1_000_000;
    let end = query.end.as_unix_nanos() / 1_000_000;
    let rows = database.rollouts_overlapping(start, end, limit).await?;
    Ok(rows
        .iter()
        .filter(|row| {
            let labels = [("service", &row.service), ("environment", &row.environment)]
                .map(|(name, value)| (name.to_owned(), value.clone()))
                .into();
            filter.as_ref().is_none_or(|filter| filter.matches(&labels))
        })
        .map(|row| DeployAnnotation {
            rollout_id: row.id,
            service: row.service.clone(),
            environment: row.environment.clone(),
            kind: kind_of(row),
            version: row.version.clone(),
            state: state_of(row),
            start: millis_to_timestamp(row.created_at_millis),
            end: ended_at(row).map(millis_to_timestamp),
        })
        .collect())
}

/// Audits a use case's outcome: the rollout's id on success, the error on failure.
async fn record(
    database: &Database,
    actor: &Actor,
    action: Action,
    target: &str,
    result: &Result<Rollout, RolloutError>,
) {
    let (outcome, detail) = match result {
        Ok(rollout) => (AuditOutcome::Success, format!("rollout {} {}", rollout.id, rollout.state.as_str())),
        Err(error) => (AuditOutcome::Failure, error.to_string()),
    };
    audit::record(database, actor, action, target, outcome, &detail).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_plain_and_never_options() {
        for good in ["1.2.3", "v2.0.0-rc.1", "release/2026-12", "1.0+build.5", "abc123def"] {
            assert!(check_version(good).is_ok(), "{good}");
        }
        for bad in ["", "-rf", "1.0 && rm -rf /", "$(id)", "a;b", &"9".repeat(129)] {
            assert!(check_version(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_freeze_window_holds_from_its_start_to_before_its_end() {
        let windows = r#"[{"start":"2026-12-24T00:00:00Z","end":"2026-12-27T00:00:00Z","reason":"holidays"}]"#;
        let environment = EnvironmentRow {
            service: "shop".to_owned(),
            name: "production".to_owned(),
            current_version: None,
            previous_good_version: None,
            provider: "webhook".to_owned(),
            provider_params: "{}".to_owned(),
            integration_id: None,
            approval_required: false,
            freeze_windows: windows.to_owned(),
        };
        let at = |text: &str| text.parse::<vigil_proto::Timestamp>().unwrap().as_unix_nanos() / 1_000_000;
        assert!(freeze_at(&environment, at("2026-12-23T23:59:59Z")).unwrap().is_none());
        assert_eq!(freeze_at(&environment, at("2026-12-24T00:00:00Z")).unwrap().unwrap().reason, "holidays");
        assert!(freeze_at(&environment, at("2026-12-27T00:00:00Z")).unwrap().is_none());
        // Every Friday from 22:00 UTC for 58 hours, beside the absolute window.
        let both = r#"[{"start":"2026-12-24T00:00:00Z","end":"2026-12-27T00:00:00Z","reason":"holidays"},
                       {"schedule":"0 22 * * 5","duration":"58h","reason":"weekend"}]"#;
        let environment = EnvironmentRow { freeze_windows: both.to_owned(), ..environment };
        let weekend = freeze_at(&environment, at("2026-12-05T10:00:00Z")).unwrap().unwrap();
        assert_eq!(weekend.reason, "weekend");
        assert_eq!(
            (weekend.start.to_rfc3339(), weekend.end.to_rfc3339()),
            ("2026-12-04T22:00:00Z".to_owned(), "2026-12-07T08:00:00Z".to_owned())
        );
        assert!(freeze_at(&environment, at("2026-12-07T08:00:00Z")).unwrap().is_none());
        assert_eq!(freeze_at(&environment, at("2026-12-25T12:00:00Z")).unwrap().unwrap().reason, "holidays");
    }
}
