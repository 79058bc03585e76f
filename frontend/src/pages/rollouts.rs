//! The rollout pages. `/rollouts`: the rollouts in progress with their steps, Approve and
//! Abort; the services with their versions; the history with who, what, when and how it
//! ended, filtered (service, environment, state) and paged. `/rollouts/<id>`: one rollout's
//! steps, run link, gates charted with their thresholds, the service's alerts that fired
//! meanwhile and the timeline. `/services/<name>`: a service's environments with Deploy (pick
//! the environment and version, then a confirmation with the current version, the gates and
//! the approval needed) and Rollback. The pages follow a running rollout twice a second.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map, use_query_map};
use vigil_proto::metrics::{QueryResult, QuerySeries};
use vigil_proto::rollouts::{
    Environment, EnvironmentWrite, FreezeWindow, GateResult, GateSpec, Rollout, RolloutDetail, RolloutKind,
    RolloutQuery, RolloutState, Service, ServiceWrite,
};

use super::alerts::{may_deploy, relative, value_text};
use super::explore::{Chart, Threshold};
use super::{encode, grouped, now_nanos};
use crate::accounts::current_session;
use crate::error::UiError;
use crate::rollouts::{
    AbortRollout, ApproveRollout, RollBack, SaveService, StartRollout, fetch_rollout, fetch_service, list_rollouts,
    list_services,
};

/// Rollouts in a page of the history.
const PAGE_SIZE: u32 = 25;
/// How often the rollout pages refresh while they are open.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const ROLLOUT_REFRESH: std::time::Duration = std::time::Duration::from_millis(500);

/// A counter that moves every [`ROLLOUT_REFRESH`] in the browser (never on the server): the
/// rollout pages read it in their resources' sources, so a transition shows within a second.
fn rollout_tick() -> RwSignal<u64> {
    let tick = RwSignal::new(0_u64);
    #[cfg(feature = "hydrate")]
    if let Ok(handle) = set_interval_with_handle(move || tick.update(|tick| *tick += 1), ROLLOUT_REFRESH) {
        on_cleanup(move || handle.clear());
    }
    tick
}

/// A state as people read it: `rolled back`, `awaiting approval`.
fn state_text(state: RolloutState) -> String {
    state.as_str().replace('_', " ")
}

fn state_badge(state: RolloutState) -> impl IntoView {
    view! { <span class=format!("state-badge rollout-state state-{}", state.as_str())>{state_text(state)}</span> }
}

fn kind_text(kind: RolloutKind) -> &'static str {
    match kind {
        RolloutKind::Deploy => "deploy",
        RolloutKind::Rollback => "rollback",
    }
}

/// `1.2.3 → 1.2.4`, or the version alone when nothing ran before.
fn versions_text(rollout: &Rollout) -> String {
    match &rollout.from_version {
        Some(from) => format!("{from} → {}", rollout.version),
        None => rollout.version.clone(),
    }
}

/// The steps a rollout goes through, as its progress shows them.
const STEPS: [(RolloutState, &str); 5] = [
    (RolloutState::Requested, "requested"),
    (RolloutState::AwaitingApproval, "approval"),
    (RolloutState::Triggered, "triggered"),
    (RolloutState::Running, "running"),
    (RolloutState::Analysing, "analysing"),
];

/// How far a rollout got: each step `done`, `current` or `todo` (`skipped` for an approval
/// that was not needed), then the end.
fn step_marks(state: RolloutState, entered: &[RolloutState]) -> Vec<(&'static str, &'static str)> {
    let position = |wanted: RolloutState| STEPS.iter().position(|(step, _)| *step == wanted);
    let reached = entered.iter().filter_map(|state| position(*state)).max();
    let current = position(state);
    STEPS
        .iter()
        .enumerate()
        .map(|(index, (step, label))| {
            let mark = if Some(index) == current {
                "current"
            } else if entered.contains(step) {
                "done"
            } else if *step == RolloutState::AwaitingApproval && reached.is_some_and(|reached| reached > index) {
                "skipped"
            } else if state.is_terminal() {
                "not-reached"
            } else if current.is_some_and(|current| current > index) {
                "done"
            } else {
                "todo"
            };
            (*label, mark)
        })
        .collect()
}

/// The progress of a rollout: its steps and how it ended.
#[component]
fn Steps(state: RolloutState, #[prop(optional)] entered: Vec<RolloutState>) -> impl IntoView {
    let marks = step_marks(state, &entered);
    let end = state.is_terminal().then(|| {
        view! { <li class=format!("step end state-{}", state.as_str())>{state_text(state)}</li> }
    });
    view! {
        <ol class="rollout-steps" data-state=state.as_str()>
            {marks
                .into_iter()
                .map(|(label, mark)| view! { <li class=format!("step {mark}") data-step=label>{label}</li> })
                .collect_view()}
            {end}
        </ol>
    }
}

/// Approve (for a rollout that awaits it) and Abort, with what went wrong.
#[component]
fn RolloutActions(
    rollout: Rollout,
    approve: ServerAction<ApproveRollout>,
    abort: ServerAction<AbortRollout>,
) -> impl IntoView {
    let id = rollout.id;
    let approval = (rollout.state == RolloutState::AwaitingApproval).then(|| {
        view! {
            <button class="approve" on:click=move |_| {
                approve.dispatch(ApproveRollout { id });
            }>"Approve"</button>
        }
    });
    let abortable = !rollout.state.is_terminal();
    view! {
        <span class="rollout-actions">
            {approval}
            {abortable.then(|| view! {
                <button class="abort danger" on:click=move |_| {
                    abort.dispatch(AbortRollout { id });
                }>"Abort"</button>
            })}
        </span>
    }
}

/// The failure of the last Approve or Abort, if it failed.
fn action_failure(
    approve: ServerAction<ApproveRollout>,
    abort: ServerAction<AbortRollout>,
) -> impl Fn() -> Option<AnyView> + Copy {
    move || {
        let approve_error = approve.value().get().and_then(Result::err);
        let abort_error = abort.value().get().and_then(Result::err);
        approve_error
            .or(abort_error)
            .map(|error| view! { <p class="error rollout-action-error">{error.to_string()}</p> }.into_any())
    }
}

fn rollout_href(id: i64) -> String {
    format!("/rollouts/{id}")
}

fn service_href(name: &str) -> String {
    format!("/services/{}", encode(name))
}

/// Where the history goes: its filters and a page.
fn history_href(service: &str, environment: &str, state: &str, offset: u32) -> String {
    let mut parameters = Vec::new();
    for (name, value) in [("service", service), ("environment", environment), ("state", state)] {
        if !value.is_empty() {
            parameters.push(format!("{name}={}", encode(value)));
        }
    }
    if offset > 0 {
        parameters.push(format!("offset={offset}"));
    }
    if parameters.is_empty() { "/rollouts".to_owned() } else { format!("/rollouts?{}", parameters.join("&")) }
}

/// A link to the CI/CD system's run, once there is one.
fn run_link(rollout: &Rollout) -> Option<AnyView> {
    match (&rollout.run_url, &rollout.run_id) {
        (Some(url), _) => {
            let text = rollout.run_id.clone().map_or_else(|| "run".to_owned(), |id| format!("run {id}"));
            Some(view! { <a class="run-link" href=url.clone() target="_blank" rel="noopener">{text}</a> }.into_any())
        }
        (None, Some(id)) => Some(view! { <span class="run-id">{format!("run {id}")}</span> }.into_any()),
        (None, None) => None,
    }
}

#[component]
pub fn RolloutsPage() -> impl IntoView {
    let query = use_query_map();
    let filter = move |name: &'static str| Memo::new(move |_| query.read().get(name).unwrap_or_default());
    let (service, environment, state) = (filter("service"), filter("environment"), filter("state"));
    let offset =
        Memo::new(move |_| query.read().get("offset").and_then(|offset| offset.parse::<u32>().ok()).unwrap_or(0));
    let tick = rollout_tick();
    let session = Resource::new(|| (), |_| current_session());
    let approve = ServerAction::<ApproveRollout>::new();
    let abort = ServerAction::<AbortRollout>::new();
    let acted = move || (approve.version().get(), abort.version().get());
    let active = Resource::new(
        move || (tick.get(), acted()),
        |_| list_rollouts(String::new(), String::new(), RolloutQuery::ACTIVE.to_owned(), RolloutQuery::MAX_LIMIT, 0),
    );
    let history = Resource::new(
        move || (service.get(), environment.get(), state.get(), offset.get(), tick.get(), acted()),
        |(service, environment, state, offset, _, _)| list_rollouts(service, environment, state, PAGE_SIZE, offset),
    );
    let services = Resource::new(acted, |_| list_services());
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <Title text="Rollouts · Vigil"/>
        <div class="rollouts-page" data-hydrated=move || hydrated.get().to_string()>
            <h1>"Rollouts"</h1>
            {action_failure(approve, abort)}
            <section class="rollouts-active">
                <h2>"In progress"</h2>
                <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || {
                        active.get().map(|result| match result {
                            Ok(page) if page.rollouts.is_empty() => {
                                view! { <p class="placeholder no-active">"Nothing is rolling out."</p> }.into_any()
                            }
                            Ok(page) => {
                                let can_deploy = may_deploy(session);
                                page.rollouts
                                    .into_iter()
                                    .map(|rollout| view! { <ActiveRollout rollout can_deploy approve abort/> })
                                    .collect_view()
                                    .into_any()
                            }
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                    }}
                </Transition>
            </section>
            <section class="rollout-services">
                <h2>"Services"</h2>
                <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || services.get().map(|result| match result {
                        Ok(services) if services.is_empty() => view! {
                            <p class="placeholder">"No services yet: add [[services]] to the configuration, or POST /api/v1/services."</p>
                        }.into_any(),
                        Ok(services) => view! { <ServicesTable services/> }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })}
                </Transition>
            </section>
            <section class="rollout-history">
                <h2>"History"</h2>
                <HistoryFilter service environment state/>
                <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || history.get().map(|result| match result {
                        Ok(page) if page.rollouts.is_empty() => {
                            view! { <p class="placeholder no-rollouts">"No rollouts match."</p> }.into_any()
                        }
                        Ok(page) => {
                            let (shown, total, offset) = (page.rollouts.len(), page.total, offset.get());
                            let previous = (offset > 0).then(|| {
                                let href = history_href(&service.get(), &environment.get(), &state.get(), offset.saturating_sub(PAGE_SIZE));
                                view! { <a class="previous-page" href=href>"← Newer"</a> }
                            });
                            let next = (u64::from(offset) + (shown as u64) < total).then(|| {
                                let href = history_href(&service.get(), &environment.get(), &state.get(), offset + PAGE_SIZE);
                                view! { <a class="next-page" href=href>"Older →"</a> }
                            });
                            let range = format!(
                                "{}–{} of {}",
                                grouped(u64::from(offset) + 1),
                                grouped(u64::from(offset) + shown as u64),
                                grouped(total)
                            );
                            view! {
                                <div class="alert-pager"><span class="page-range">{range}</span>{previous}{next}</div>
                                <RolloutTable rollouts=page.rollouts/>
                            }
                            .into_any()
                        }
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })}
                </Transition>
            </section>
        </div>
    }
}

/// A rollout in progress: what, its steps, and its buttons.
#[component]
fn ActiveRollout(
    rollout: Rollout,
    can_deploy: bool,
    approve: ServerAction<ApproveRollout>,
    abort: ServerAction<AbortRollout>,
) -> impl IntoView {
    let title =
        format!("{} {}/{} {}", kind_text(rollout.kind), rollout.service, rollout.environment, versions_text(&rollout));
    let by = format!("by {}", rollout.requested_by);
    let actions = can_deploy.then(|| view! { <RolloutActions rollout=rollout.clone() approve abort/> });
    view! {
        <article class="panel active-rollout" data-rollout=rollout.id data-state=rollout.state.as_str()>
            <div class="dashboard-head">
                <h3><a href=rollout_href(rollout.id)>{title}</a></h3>
                {actions}
            </div>
            <Steps state=rollout.state/>
            <p class="rollout-facts">
                {by}" · started "{relative(rollout.created_at)}" · "{state_badge(rollout.state)}" "{run_link(&rollout)}
            </p>
        </article>
    }
}

/// The service filter, environment and state of the history, in the URL.
#[component]
fn HistoryFilter(service: Memo<String>, environment: Memo<String>, state: Memo<String>) -> impl IntoView {
    let states = RolloutState::ALL.into_iter().map(|option| {
        let value = option.as_str();
        view! { <option value=value selected=move || state.get() == value>{state_text(option)}</option> }
    });
    view! {
        <form class="rollout-filter" method="get" action="/rollouts">
            <label>"Service " <input name="service" value=move || service.get() placeholder="any"/></label>
            <label>"Environment " <input name="environment" value=move || environment.get() placeholder="any"/></label>
            <label>
                "State "
                <select name="state">
                    <option value="" selected=move || state.get().is_empty()>"any"</option>
                    <option value=RolloutQuery::ACTIVE selected=move || state.get() == RolloutQuery::ACTIVE>"in progress"</option>
                    {states.collect_view()}
                </select>
            </label>
            <button type="submit">"Filter"</button>
        </form>
    }
}

/// Rollouts with who, what, when and result.
#[component]
fn RolloutTable(rollouts: Vec<Rollout>) -> impl IntoView {
    view! {
        <table class="table rollouts">
            <thead>
                <tr>
                    <th>"Rollout"</th><th>"Service"</th><th>"Environment"</th><th>"Kind"</th><th>"Version"</th>
                    <th>"State"</th><th>"Requested by"</th><th>"Approved by"</th><th>"Started"</th><th>"Run"</th>
                </tr>
            </thead>
            <tbody>
                {rollouts
                    .into_iter()
                    .map(|rollout| {
                        let approved = rollout.approved_by.clone().unwrap_or_default();
                        let link = run_link(&rollout);
                        view! {
                            <tr class="rollout-row" data-rollout=rollout.id data-state=rollout.state.as_str()>
                                <td><a href=rollout_href(rollout.id)>{format!("#{}", rollout.id)}</a></td>
                                <td><a href=service_href(&rollout.service)>{rollout.service.clone()}</a></td>
                                <td>{rollout.environment.clone()}</td>
                                <td>{kind_text(rollout.kind)}</td>
                                <td class="version">{versions_text(&rollout)}</td>
                                <td>{state_badge(rollout.state)}</td>
                                <td>{rollout.requested_by.clone()}</td>
                                <td>{approved}</td>
                                <td>{relative(rollout.created_at)}</td>
                                <td>{link}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

/// The services, each environment with its current version.
#[component]
fn ServicesTable(services: Vec<Service>) -> impl IntoView {
    view! {
        <table class="table services">
            <thead><tr><th>"Service"</th><th>"Owner"</th><th>"Environments"</th></tr></thead>
            <tbody>
                {services
                    .into_iter()
                    .map(|service| {
                        let environments = service
                            .environments
                            .iter()
                            .map(|environment| {
                                let version = environment.current_version.clone().unwrap_or_else(|| "none".to_owned());
                                view! {
                                    <span class="label-chip environment-chip">
                                        <span class="label-name">{environment.name.clone()}</span>" "{version}
                                    </span>
                                }
                            })
                            .collect_view();
                        view! {
                            <tr class="service-row" data-service=service.name.clone()>
                                <td><a href=service_href(&service.name)>{service.name.clone()}</a></td>
                                <td>{service.owner.clone()}</td>
                                <td>{environments}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[component]
pub fn RolloutPage() -> impl IntoView {
    let params = use_params_map();
    let id = Memo::new(move |_| params.read().get("id").and_then(|id| id.parse::<i64>().ok()));
    let tick = rollout_tick();
    let session = Resource::new(|| (), |_| current_session());
    let approve = ServerAction::<ApproveRollout>::new();
    let abort = ServerAction::<AbortRollout>::new();
    let detail = Resource::new(
        move || (id.get(), tick.get(), approve.version().get(), abort.version().get()),
        |(id, _, _, _)| async move {
            match id {
                Some(id) => fetch_rollout(id).await,
                None => Err(UiError::invalid("a rollout's id is a number")),
            }
        },
    );
    // The rollback that undid this rollout, or the rollout this one undoes: its service's
    // recent rollouts.
    let related = Resource::new(
        move || detail.with(|detail| detail.as_ref().and_then(|detail| detail.as_ref().ok()).map(related_key)),
        |key| async move {
            match key {
                Some((service, environment, _, _)) => {
                    list_rollouts(service, environment, String::new(), RolloutQuery::MAX_LIMIT, 0).await.ok()
                }
                None => None,
            }
        },
    );
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    // The gates change at each evaluation, not at each refresh: their charts are redrawn then.
    let gates = Memo::new(move |_| {
        detail.with(|detail| detail.as_ref().and_then(|detail| detail.as_ref().ok()).map(|detail| detail.gates.clone()))
    });
    view! {
        <Title text=move || id.get().map_or_else(|| "Rollout · Vigil".to_owned(), |id| format!("Rollout {id} · Vigil"))/>
        <div class="rollout-page" data-hydrated=move || hydrated.get().to_string()>
            {action_failure(approve, abort)}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || detail.get().map(|result| match result {
                    Ok(detail) => {
                        let can_deploy = may_deploy(session);
                        let undone_by = related.get().flatten().and_then(|page| {
                            page.rollouts.into_iter().find(|other| other.parent_id == Some(detail.rollout.id))
                        });
                        view! { <RolloutHead detail can_deploy approve abort undone_by/> }.into_any()
                    }
                    Err(error) => view! {
                        <h1>"Rollout"</h1>
                        <p class="error">{error.to_string()}</p>
                        <a href="/rollouts">"All rollouts"</a>
                    }.into_any(),
                })}
            </Transition>
            <Transition fallback=|| ()>
                {move || gates.get().map(|gates| view! { <GateCharts gates/> })}
            </Transition>
            <Transition fallback=|| ()>
                {move || detail.get().and_then(Result::ok).map(|detail| view! { <RolloutTimeline detail/> })}
            </Transition>
        </div>
    }
}

/// What the related rollouts are asked for again when it changes (a state change may have
/// started a rollback).
fn related_key(detail: &RolloutDetail) -> (String, String, i64, &'static str) {
    let rollout = &detail.rollout;
    (rollout.service.clone(), rollout.environment.clone(), rollout.id, rollout.state.as_str())
}

/// A rollout's title, steps, facts, buttons and the alerts that fired while it ran.
#[component]
fn RolloutHead(
    detail: RolloutDetail,
    can_deploy: bool,
    approve: ServerAction<ApproveRollout>,
    abort: ServerAction<AbortRollout>,
    undone_by: Option<Rollout>,
) -> impl IntoView {
    let RolloutDetail { rollout, events, alerts, .. } = detail;
    let entered: Vec<RolloutState> = events.iter().filter_map(|event| RolloutState::parse(&event.kind)).collect();
    let title = format!(
        "Rollout {}: {} {}/{} {}",
        rollout.id,
        kind_text(rollout.kind),
        rollout.service,
        rollout.environment,
        versions_text(&rollout)
    );
    let actions = can_deploy.then(|| view! { <RolloutActions rollout=rollout.clone() approve abort/> });
    let approved =
        rollout.approved_by.clone().map(|by| view! { <dt>"Approved by"</dt><dd class="approved-by">{by}</dd> });
    let error = rollout.error.clone().map(|error| view! { <p class="error rollout-error">{error}</p> });
    let parent = rollout.parent_id.map(|parent| {
        view! { <p class="rollout-parent">"Rolls back "<a href=rollout_href(parent)>{format!("rollout {parent}")}</a></p> }
    });
    let undone = undone_by.map(|child| {
        view! {
            <p class="rollout-undone">
                "Rolled back by "<a class="rollback-link" href=rollout_href(child.id)>{format!("rollout {}", child.id)}</a>
                " to "{child.version.clone()}" · "{state_badge(child.state)}
            </p>
        }
    });
    let alerts_view = if alerts.is_empty() {
        view! { <p class="placeholder no-rollout-alerts">"No alert of the service fired during the rollout."</p> }
            .into_any()
    } else {
        view! {
            <ul class="rollout-alerts">
                {alerts
                    .into_iter()
                    .map(|alert| {
                        let state = if alert.end.is_none() { "firing" } else { "resolved" };
                        view! {
                            <li class="rollout-alert" data-state=state>
                                <span class=format!("state-badge state-{state}")>{state}</span>" "
                                <a href=format!("/alerts/{}", encode(&alert.fingerprint))>{alert.name.clone()}</a>
                                " since "{relative(alert.start)}
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        }
        .into_any()
    };
    view! {
        <div class="dashboard-head">
            <h1>{title}</h1>
            {actions}
        </div>
        <Steps state=rollout.state entered/>
        {error}
        {parent}
        {undone}
        <dl class="rollout-facts">
            <dt>"Service"</dt><dd><a href=service_href(&rollout.service)>{rollout.service.clone()}</a></dd>
            <dt>"State"</dt><dd>{state_badge(rollout.state)}</dd>
            <dt>"Requested by"</dt><dd class="requested-by">{rollout.requested_by.clone()}</dd>
            {approved}
            <dt>"Started"</dt><dd>{relative(rollout.created_at)}</dd>
            <dt>"Last change"</dt><dd>{relative(rollout.updated_at)}</dd>
            <dt>"CI/CD run"</dt><dd>{run_link(&rollout).unwrap_or_else(|| view! { <span class="placeholder">"not triggered yet"</span> }.into_any())}</dd>
        </dl>
        <section class="rollout-alerts-section">
            <h2>"Alerts of "{rollout.service.clone()}" during the rollout"</h2>
            {alerts_view}
        </section>
    }
}

/// A gate's evaluations as a chart, its threshold drawn.
#[component]
fn GateCharts(gates: Vec<GateResult>) -> impl IntoView {
    if gates.is_empty() {
        return view! {
            <section class="rollout-gates"><h2>"Gates"</h2><p class="placeholder">"This environment has no health gates."</p></section>
        }
        .into_any();
    }
    view! {
        <section class="rollout-gates">
            <h2>"Gates"</h2>
            {gates.into_iter().map(|gate| view! { <GateChart gate/> }).collect_view()}
        </section>
    }
    .into_any()
}

/// `errors < 5 (log: level:error, per minute)`.
fn gate_condition(gate: &GateSpec) -> String {
    format!("{} {}", gate.comparator.as_str(), value_text(gate.threshold))
}

#[component]
fn GateChart(gate: GateResult) -> impl IntoView {
    let GateResult { gate: spec, samples, consecutive_failures, failed } = gate;
    let verdict = match (failed, samples.last()) {
        (true, _) => "failed",
        (false, None) => "not evaluated",
        (false, Some(last)) if last.healthy => "healthy",
        (false, Some(_)) => "failing",
    };
    let unit = match spec.kind {
        vigil_proto::rollouts::GateKind::Log => "lines/min",
        vigil_proto::rollouts::GateKind::Promql => "",
        vigil_proto::rollouts::GateKind::Comparison => "p-value",
    };
    let last = samples.last().and_then(|sample| sample.value).map(value_text).unwrap_or_else(|| "no value".to_owned());
    let summary = format!(
        "{} evaluations, last {last}{}, {consecutive_failures} failing in a row (allowed {})",
        samples.len(),
        if unit.is_empty() { String::new() } else { format!(" {unit}") },
        spec.failures_allowed
    );
    let chart = (!samples.is_empty()).then(|| {
        let series = QuerySeries {
            labels: [("__name__".to_owned(), spec.name.clone())].into(),
            points: samples.iter().map(|sample| (sample.at.as_unix_nanos() as f64 / 1e9, sample.value)).collect(),
        };
        let step = f64::from(u32::try_from(spec.interval_seconds).unwrap_or(u32::MAX));
        let result = QueryResult { result_type: "matrix".to_owned(), series: vec![series], step_seconds: Some(step) };
        let threshold = Threshold { value: spec.threshold, label: format!("healthy while {}", gate_condition(&spec)) };
        let zoom = Callback::new(|_: (f64, f64)| ());
        view! { <Chart result names=vec![spec.name.clone()] unit=unit stacked=false zoom threshold/> }
    });
    let kind = spec.kind.as_str();
    view! {
        <article class="panel gate" data-gate=spec.name.clone() data-verdict=verdict>
            <h3>
                {spec.name.clone()}" "
                <span class=format!("state-badge gate-verdict verdict-{}", verdict.replace(' ', "-"))>{verdict}</span>
                {spec.dry_run.then(|| view! { " " <span class="state-badge dry-run">"dry run"</span> })}
            </h3>
            <p class="gate-query"><span class="gate-kind">{kind}</span>" "<code>{spec.query.clone()}</code>" "{gate_condition(&spec)}</p>
            <p class="gate-summary">{summary}</p>
            {chart}
        </article>
    }
}

#[component]
fn RolloutTimeline(detail: RolloutDetail) -> impl IntoView {
    view! {
        <section class="rollout-timeline">
            <h2>"Timeline"</h2>
            <table class="table timeline">
                <thead><tr><th>"When"</th><th>"What"</th><th>"Who"</th><th>"Detail"</th></tr></thead>
                <tbody>
                    {detail
                        .events
                        .into_iter()
                        .map(|event| {
                            let kind = event.kind.replace('_', " ");
                            view! {
                                <tr class="timeline-entry" data-kind=event.kind.clone()>
                                    <td><time datetime=event.at.to_string()>{event.at.to_rfc3339()}</time></td>
                                    <td>{kind}</td>
                                    <td>{event.actor}</td>
                                    <td class="detail">{event.detail}</td>
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </section>
    }
}

#[component]
pub fn ServicePage() -> impl IntoView {
    let params = use_params_map();
    let name = Memo::new(move |_| params.read().get("name").unwrap_or_default());
    let tick = rollout_tick();
    let session = Resource::new(|| (), |_| current_session());
    let deploy = ServerAction::<StartRollout>::new();
    let rollback = ServerAction::<RollBack>::new();
    let save = ServerAction::<SaveService>::new();
    let service = Resource::new(
        move || (name.get(), deploy.version().get(), rollback.version().get(), save.version().get()),
        |(name, _, _, _)| fetch_service(name),
    );
    let recent = Resource::new(
        move || (name.get(), tick.get()),
        |(name, _)| list_rollouts(name, String::new(), String::new(), 10, 0),
    );
    // A rollout started here opens its page.
    let navigate = use_navigate();
    Effect::new(move |_| {
        let started = deploy.value().get().or_else(|| rollback.value().get());
        if let Some(Ok(rollout)) = started {
            navigate(&rollout_href(rollout.id), Default::default());
        }
    });
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let failure = move || {
        deploy
            .value()
            .get()
            .and_then(Result::err)
            .or_else(|| rollback.value().get().and_then(Result::err))
            .map(|error| view! { <p class="error deploy-error">{error.to_string()}</p> })
    };
    view! {
        <Title text=move || format!("{} · Vigil", name.get())/>
        <div class="service-page" data-hydrated=move || hydrated.get().to_string()>
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || service.get().map(|result| match result {
                    Ok(service) => {
                        let can_deploy = may_deploy(session);
                        let is_admin = session.with(|session| {
                            matches!(session, Some(Ok(session)) if session.role == vigil_proto::auth::Role::Admin)
                        });
                        let editor = is_admin.then(|| view! { <ServiceEditor service=service.clone() save/> });
                        view! { <ServiceView service can_deploy deploy rollback/> {editor} }.into_any()
                    }
                    Err(error) => view! {
                        <h1>{name.get()}</h1>
                        <p class="error">{error.to_string()}</p>
                        <a href="/rollouts">"All rollouts"</a>
                    }.into_any(),
                })}
            </Transition>
            {failure}
            <section class="service-rollouts">
                <h2>"Recent rollouts"</h2>
                <Transition fallback=|| ()>
                    {move || recent.get().map(|result| match result {
                        Ok(page) if page.rollouts.is_empty() => {
                            view! { <p class="placeholder">"Never rolled out."</p> }.into_any()
                        }
                        Ok(page) => view! {
                            <RolloutTable rollouts=page.rollouts/>
                            <a href=history_href(&name.get(), "", "", 0)>"All of its rollouts"</a>
                        }.into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })}
                </Transition>
            </section>
        </div>
    }
}

/// A service as its editor writes it: everything but the versions, which rollouts move.
fn service_write(service: &Service) -> ServiceWrite {
    ServiceWrite {
        name: service.name.clone(),
        owner: service.owner.clone(),
        environments: service
            .environments
            .iter()
            .map(|environment| EnvironmentWrite {
                name: environment.name.clone(),
                provider: environment.provider.clone(),
                approval_required: environment.approval_required,
                freeze_windows: environment.freeze_windows.clone(),
                recurring_freezes: environment.recurring_freezes.clone(),
                gates: environment.gates.clone(),
                current_version: None,
            })
            .collect(),
    }
}

/// The administrators' editor of a service: its environments, providers, approval rules,
/// freezes and gates as JSON (the body `PUT /api/v1/services/{name}` takes), checked and saved
/// by the server, which names the field it refuses.
#[component]
fn ServiceEditor(service: Service, save: ServerAction<SaveService>) -> impl IntoView {
    let text = serde_json::to_string_pretty(&service_write(&service)).unwrap_or_default();
    let spec = RwSignal::new(text);
    let name = service.name.clone();
    let failure = move || {
        save.value()
            .get()
            .and_then(Result::err)
            .map(|error| view! { <p class="error save-error">{error.to_string()}</p> })
    };
    let saved = move || {
        save.value()
            .get()
            .and_then(Result::ok)
            .map(|service| view! { <p class="saved">{format!("Saved {}.", service.name)}</p> })
    };
    view! {
        <details class="panel service-editor">
            <summary>"Edit the service (administrators)"</summary>
            <textarea class="service-spec" rows="24" spellcheck="false" prop:value=move || spec.get()
                on:input=move |event| spec.set(event_target_value(&event))></textarea>
            <button class="save-service" on:click=move |_| {
                save.dispatch(SaveService { name: name.clone(), spec: spec.get_untracked() });
            }>"Save"</button>
            {failure}
            {saved}
        </details>
    }
}

/// What a Deploy or Rollback asks to be confirmed.
#[derive(Clone, PartialEq)]
enum Pending {
    Deploy { environment: String, version: String },
    Rollback { environment: String },
}

#[component]
fn ServiceView(
    service: Service,
    can_deploy: bool,
    deploy: ServerAction<StartRollout>,
    rollback: ServerAction<RollBack>,
) -> impl IntoView {
    let pending = RwSignal::new(None::<Pending>);
    let environments = StoredValue::new(service.environments.clone());
    let first = service.environments.first().map(|environment| environment.name.clone()).unwrap_or_default();
    let chosen = RwSignal::new(first);
    let version = RwSignal::new(String::new());
    let service_name = service.name.clone();
    let deploy_form = (can_deploy && !service.environments.is_empty()).then(|| {
        let options = service
            .environments
            .iter()
            .map(|environment| {
                let name = environment.name.clone();
                view! { <option value=name.clone()>{name.clone()}</option> }
            })
            .collect_view();
        view! {
            <form class="deploy-form panel" on:submit=move |event| {
                event.prevent_default();
                let version = version.get_untracked().trim().to_owned();
                pending.set(Some(Pending::Deploy { environment: chosen.get_untracked(), version }));
            }>
                <h2>"Deploy"</h2>
                <label>"Environment "
                    <select name="environment" prop:value=move || chosen.get()
                        on:change=move |event| chosen.set(event_target_value(&event))>
                        {options}
                    </select>
                </label>
                <label>" Version "
                    <input name="version" required placeholder="1.4.2" prop:value=move || version.get()
                        on:input=move |event| version.set(event_target_value(&event))/>
                </label>
                " "<button type="submit" class="deploy">"Deploy…"</button>
            </form>
        }
    });
    let confirmation = {
        let service_name = service_name.clone();
        move || {
            let asked = pending.get()?;
            let name = service_name.clone();
            let environment_name = match &asked {
                Pending::Deploy { environment, .. } | Pending::Rollback { environment } => environment.clone(),
            };
            let environment = environments.with_value(|environments| {
                environments.iter().find(|environment| environment.name == environment_name).cloned()
            })?;
            Some(view! { <Confirmation service=name asked environment pending deploy rollback/> })
        }
    };
    view! {
        <div class="dashboard-head">
            <h1>{service.name.clone()}</h1>
            <span class="service-owner">{(!service.owner.is_empty()).then(|| format!("owned by {}", service.owner))}</span>
        </div>
        {deploy_form}
        {confirmation}
        <section class="environments">
            {service
                .environments
                .into_iter()
                .map(|environment| view! { <EnvironmentCard environment can_deploy pending/> })
                .collect_view()}
        </section>
        {environments.with_value(Vec::is_empty).then(|| view! {
            <p class="placeholder">"No environments: an administrator describes them (PUT /api/v1/services/"{service_name.clone()}")."</p>
        })}
    }
}

/// An environment: its versions, provider, approval rule, freeze windows and gates, and its
/// Rollback button.
#[component]
fn EnvironmentCard(environment: Environment, can_deploy: bool, pending: RwSignal<Option<Pending>>) -> impl IntoView {
    let name = environment.name.clone();
    let frozen = environment.frozen.clone();
    let rollback = (can_deploy && environment.previous_good_version.is_some()).then(|| {
        let name = name.clone();
        view! {
            <button class="rollback" on:click=move |_| pending.set(Some(Pending::Rollback { environment: name.clone() }))>
                "Rollback…"
            </button>
        }
    });
    let gates = if environment.gates.is_empty() {
        view! { <p class="placeholder">"No health gates."</p> }.into_any()
    } else {
        view! {
            <ul class="gates">
                {environment.gates.iter().map(|gate| view! {
                    <li class="gate-spec">
                        <strong>{gate.name.clone()}</strong>" "<span class="gate-kind">{gate.kind.as_str()}</span>" "
                        <code>{gate.query.clone()}</code>" "{gate_condition(gate)}
                        {gate.dry_run.then_some(" (dry run)")}
                    </li>
                }).collect_view()}
            </ul>
        }
        .into_any()
    };
    let freeze = frozen.map(|window: FreezeWindow| {
        view! {
            <p class="frozen">"Frozen until "{window.end.to_rfc3339()}{(!window.reason.is_empty()).then(|| format!(": {}", window.reason))}</p>
        }
    });
    let upcoming: Vec<String> = environment
        .freeze_windows
        .iter()
        .filter(|window| window.end.as_unix_nanos() > now_nanos())
        .map(|window| format!("{} to {} {}", window.start.to_rfc3339(), window.end.to_rfc3339(), window.reason))
        .chain(environment.recurring_freezes.iter().map(|freeze| {
            let offset = if freeze.utc_offset.is_empty() { "UTC" } else { freeze.utc_offset.as_str() };
            format!("every {} ({offset}) for {} {}", freeze.schedule, freeze.duration, freeze.reason)
        }))
        .collect();
    let freezes = (!upcoming.is_empty()).then(|| {
        view! {
            <h3>"Freeze windows"</h3>
            <ul class="freeze-windows">
                {upcoming.into_iter().map(|text| view! { <li>{text.trim_end().to_owned()}</li> }).collect_view()}
            </ul>
        }
    });
    view! {
        <article class="panel environment" data-environment=name.clone()>
            <div class="dashboard-head">
                <h2>{name.clone()}</h2>
                {rollback}
            </div>
            <dl class="environment-facts">
                <dt>"Current version"</dt><dd class="current-version">{environment.current_version.clone().unwrap_or_else(|| "none".to_owned())}</dd>
                <dt>"Previous good"</dt><dd class="previous-version">{environment.previous_good_version.clone().unwrap_or_else(|| "none".to_owned())}</dd>
                <dt>"Deploys with"</dt><dd>{environment.provider.kind.clone()}</dd>
                <dt>"Approval"</dt><dd>{if environment.approval_required { "a second person approves" } else { "none" }}</dd>
            </dl>
            {freeze}
            {freezes}
            <h3>"Gates"</h3>
            {gates}
        </article>
    }
}

/// The confirmation of a Deploy or Rollback: what runs now, what it becomes, which gates judge
/// it and whether someone else must approve it.
#[component]
fn Confirmation(
    service: String,
    asked: Pending,
    environment: Environment,
    pending: RwSignal<Option<Pending>>,
    deploy: ServerAction<StartRollout>,
    rollback: ServerAction<RollBack>,
) -> impl IntoView {
    let current = environment.current_version.clone().unwrap_or_else(|| "none".to_owned());
    let (heading, target) = match &asked {
        Pending::Deploy { version, .. } => (format!("Deploy {service} to {}?", environment.name), version.clone()),
        Pending::Rollback { .. } => (
            format!("Roll {service} {} back?", environment.name),
            environment.previous_good_version.clone().unwrap_or_default(),
        ),
    };
    let frozen = environment.frozen.is_some() && matches!(asked, Pending::Deploy { .. });
    let approval = if environment.approval_required && matches!(asked, Pending::Deploy { .. }) {
        "Needs approval: another deployer or administrator approves it before it is triggered."
    } else {
        "Needs no approval: it is triggered at once."
    };
    let gates = if environment.gates.is_empty() {
        "No health gates judge it.".to_owned()
    } else {
        let names: Vec<String> =
            environment.gates.iter().map(|gate| format!("{} ({})", gate.name, gate_condition(gate))).collect();
        format!("Judged by: {}. A failing gate rolls it back to {current}.", names.join(", "))
    };
    let confirm = {
        let (service, environment) = (service.clone(), environment.name.clone());
        move |_| {
            match pending.get_untracked() {
                Some(Pending::Deploy { version, .. }) => {
                    deploy.dispatch(StartRollout {
                        service: service.clone(),
                        environment: environment.clone(),
                        version,
                    });
                }
                Some(Pending::Rollback { .. }) => {
                    rollback.dispatch(RollBack { service: service.clone(), environment: environment.clone() });
                }
                None => {}
            }
            pending.set(None);
        }
    };
    view! {
        <aside class="panel confirmation" role="dialog" aria-label="Confirm">
            <h2>{heading}</h2>
            <p class="confirm-versions">
                "Now: "<strong class="confirm-current">{current}</strong>" → "<strong class="confirm-target">{target}</strong>
            </p>
            <p class="confirm-approval">{approval}</p>
            <p class="confirm-gates">{gates}</p>
            {frozen.then(|| view! { <p class="error confirm-frozen">"The environment is frozen now: the deploy will be refused."</p> })}
            <button class="confirm" on:click=confirm>"Confirm"</button>
            " "
            <button class="cancel" on:click=move |_| pending.set(None)>"Cancel"</button>
        </aside>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_show_how_far_a_rollout_got() {
        use RolloutState::*;
        let marks = |state, entered: &[RolloutState]| -> Vec<&str> {
            step_marks(state, entered).into_iter().map(|(_, mark)| mark).collect()
        };
        assert_eq!(marks(Running, &[Requested, Triggered, Running]), ["done", "skipped", "done", "current", "todo"]);
        assert_eq!(
            marks(AwaitingApproval, &[Requested, AwaitingApproval]),
            ["done", "current", "todo", "todo", "todo"]
        );
        assert_eq!(
            marks(RolledBack, &[Requested, Triggered, Running, Analysing, RolledBack]),
            ["done", "skipped", "done", "done", "done"]
        );
        assert_eq!(
            marks(Aborted, &[Requested, AwaitingApproval, Aborted]),
            ["done", "done", "not-reached", "not-reached", "not-reached"]
        );
        // In a list, without the timeline: what lies before the current step is done.
        assert_eq!(marks(Analysing, &[]), ["done", "done", "done", "done", "current"]);
    }

    #[test]
    fn the_history_link_keeps_its_filters() {
        assert_eq!(history_href("", "", "", 0), "/rollouts");
        assert_eq!(history_href("shop", "", "rolled_back", 25), "/rollouts?service=shop&state=rolled_back&offset=25");
        assert_eq!(service_href("a b"), "/services/a%20b");
    }
}
