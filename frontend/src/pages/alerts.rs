//! The Alerts page: the alerts, firing first, then pending, then resolved, filtered by state
//! (each tab with its count) and paged (`offset` in the URL), grouped by alertname;
//! acknowledgement and a way to silence an alert for deployers and administrators; an alert's
//! timeline and notifications (`/alerts?fingerprint=...`, or `/alerts/<fingerprint>` as
//! notifications link it); and the rules with how their last evaluation went, each linking to
//! its editor. Kept up to date by the layout's live tick, without a reload.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use vigil_proto::Timestamp;
use vigil_proto::alerts::{Alert, AlertDetail, AlertPage, AlertQuery, AlertRule, AlertState, DeliveryStatus, Matcher};
use vigil_proto::auth::{Role, SessionInfo};

use super::alert_rules::TestChannelForm;
use super::explore::format_value;
use super::silences::silence_href;
use super::{ago, encode, grouped, now_nanos};
use crate::accounts::current_session;
use crate::alerts::{AcknowledgeAlert, fetch_alert, list_alert_rules, list_alerts};
use crate::app::live_tick;
use crate::error::UiError;

/// The state filter's choices: the query's `state` and its label.
const FILTERS: [(&str, &str); 4] =
    [("", "All"), ("firing", "Firing"), ("pending", "Pending"), ("resolved", "Resolved")];

/// Alerts on a page (the server's default page size).
const PAGE_SIZE: u32 = AlertQuery::DEFAULT_LIMIT;

pub(crate) type SessionResource = Resource<Result<SessionInfo, UiError>>;

/// Whether the signed-in user may change alerting (deployers and administrators); read it
/// under a `Suspense` or `Transition`.
pub(crate) fn may_deploy(session: SessionResource) -> bool {
    session.with(|session| matches!(session, Some(Ok(session)) if session.role >= Role::Deployer))
}

/// `3 min ago`, with the time itself as the tooltip.
pub(crate) fn relative(at: Timestamp) -> impl IntoView {
    let seconds = (now_nanos() - at.as_unix_nanos()) / 1_000_000_000;
    view! { <time datetime=at.to_string() title=at.to_string()>{ago(seconds)}</time> }
}

/// The same, kept current by the live tick.
pub(crate) fn live_relative(at: Timestamp, tick: RwSignal<u64>) -> impl IntoView {
    view! {
        <time datetime=at.to_string() title=at.to_string()>
            {move || {
                tick.track();
                ago((now_nanos() - at.as_unix_nanos()) / 1_000_000_000)
            }}
        </time>
    }
}

/// A rule's value: large ones scaled (`1.5k`), small ones with their significant digits
/// (`0.00123`, where the charts' format would say `0`).
pub(crate) fn value_text(value: f64) -> String {
    if value == 0.0 || !value.is_finite() || value.abs() >= 1.0 {
        return format_value(value, "");
    }
    let decimals = usize::try_from(3 - value.abs().log10().floor() as i64).unwrap_or(0).min(12);
    let text = format!("{value:.decimals$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// A label set as chips (`service=api`), leaving out the alertname (the row or group says it).
pub(crate) fn label_chips(labels: &std::collections::BTreeMap<String, String>) -> impl IntoView + use<> {
    labels
        .iter()
        .filter(|(label, _)| label.as_str() != "alertname")
        .map(|(label, value)| {
            let (label, value) = (label.clone(), value.clone());
            view! { <span class="label-chip"><span class="label-name">{label}</span>"="{value}</span> }
        })
        .collect_view()
}

/// A matcher as a chip: `service=~"pay.*"`.
pub(crate) fn matcher_chip(matcher: &Matcher) -> impl IntoView + use<> {
    let (name, operator, value) = (matcher.name.clone(), matcher.operator(), super::quoted(&matcher.value));
    view! {
        <span class="label-chip matcher-chip">
            <span class="label-name">{name}</span><span class="operator">{operator}</span>{value}
        </span>
    }
}

/// Where the list goes: a state filter and a page.
fn list_href(state: &str, offset: u32) -> String {
    let mut parameters = Vec::new();
    if !state.is_empty() {
        parameters.push(format!("state={}", encode(state)));
    }
    if offset > 0 {
        parameters.push(format!("offset={offset}"));
    }
    if parameters.is_empty() { "/alerts".to_owned() } else { format!("/alerts?{}", parameters.join("&")) }
}

/// Where a link to an alert's detail goes, keeping the state filter and the page.
fn detail_href(state: &str, offset: u32, fingerprint: &str) -> String {
    let mut href = format!("/alerts?fingerprint={}", encode(fingerprint));
    if !state.is_empty() {
        href.push_str(&format!("&state={}", encode(state)));
    }
    if offset > 0 {
        href.push_str(&format!("&offset={offset}"));
    }
    href
}

/// "1–100 of 10,000".
fn page_range(offset: u32, shown: usize, total: u64) -> String {
    if shown == 0 {
        return format!("0 of {}", grouped(total));
    }
    let first = u64::from(offset) + 1;
    let last = u64::from(offset) + shown as u64;
    format!("{}–{} of {}", grouped(first), grouped(last), grouped(total))
}

/// Since when an alert is in its state: firing since, pending since, resolved at.
fn since(alert: &Alert) -> Timestamp {
    match alert.state {
        AlertState::Firing => alert.firing_since.unwrap_or(alert.active_since),
        AlertState::Pending => alert.active_since,
        AlertState::Resolved | AlertState::Inactive => alert.resolved_at.unwrap_or(alert.active_since),
    }
}

fn alertname(alert: &Alert) -> &str {
    alert.labels.get("alertname").map_or("", String::as_str)
}

/// The alertnames of a page in the order they first appear: the list is firing first, so a
/// group with a firing alert comes before one that only has pending or resolved ones.
fn group_names(alerts: &[Alert]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for alert in alerts {
        if !names.iter().any(|name| name == alertname(alert)) {
            names.push(alertname(alert).to_owned());
        }
    }
    names
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let query = use_query_map();
    let params = use_params_map();
    let state_filter = Memo::new(move |_| query.read().get("state").unwrap_or_default());
    let offset =
        Memo::new(move |_| query.read().get("offset").and_then(|offset| offset.parse::<u32>().ok()).unwrap_or(0));
    // `/alerts?fingerprint=...` from this page, `/alerts/<fingerprint>` from a notification.
    let selected = Memo::new(move |_| {
        query.read().get("fingerprint").or_else(|| params.read().get("fingerprint")).filter(|value| !value.is_empty())
    });
    let tick = live_tick();
    let session = Resource::new(|| (), |_| current_session());
    let acknowledge = ServerAction::<AcknowledgeAlert>::new();
    // An acknowledgement refreshes the page and the navigation's count at once.
    Effect::new(move |_| {
        if acknowledge.version().get() > 0 {
            tick.update(|tick| *tick += 1);
        }
    });
    let alerts = Resource::new(
        move || (state_filter.get(), offset.get(), tick.get()),
        |(state, offset, _)| list_alerts(state, offset),
    );
    let rules = Resource::new(move || tick.get(), |_| list_alert_rules());
    let detail = Resource::new(
        move || (selected.get(), tick.get()),
        |(fingerprint, _)| async move {
            match fingerprint {
                Some(fingerprint) => fetch_alert(fingerprint).await.map(Some),
                None => Ok(None),
            }
        },
    );
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let failure = move || {
        acknowledge
            .value()
            .get()
            .and_then(Result::err)
            .map(|error| view! { <p class="error acknowledge-error">{error.to_string()}</p> })
    };
    let close = move || list_href(&state_filter.get_untracked(), offset.get_untracked());
    view! {
        <Title text="Alerts · Vigil"/>
        <div class="alerts-page" data-hydrated=move || hydrated.get().to_string()>
            <div class="dashboard-head">
                <h1>"Alerts"</h1>
                <div class="dashboard-controls">
                    <a class="button silences-link" href="/alerts/silences">"Silences"</a>
                </div>
            </div>
            <nav class="alert-filter">
                {FILTERS
                    .into_iter()
                    .map(|(state, label)| {
                        let href = list_href(state, 0);
                        let current = move || (state_filter.get() == state).then_some("true");
                        let count = move || {
                            alerts.get().and_then(Result::ok).and_then(|page| match state {
                                "firing" => Some(page.counts.firing),
                                "pending" => Some(page.counts.pending),
                                _ => None,
                            })
                            .map(|count| view! { " " <span class="tab-count">{format!("({})", grouped(count))}</span> })
                        };
                        view! {
                            <a href=href data-state=state aria-current=current>
                                {label}<Transition fallback=|| ()>{count}</Transition>
                            </a>
                        }
                    })
                    .collect_view()}
            </nav>
            {failure}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {
                    // Built once: a refresh changes the groups and rows in place (keyed by
                    // alertname, and by alert and state), so a note being typed stays where it
                    // is while the list moves around it.
                    let listing = Memo::new(move |_| {
                        alerts.with(|result| {
                            result.as_ref().map(|result| match result {
                                Ok(page) if page.alerts.is_empty() && page.total > 0 => Listing::PastTheEnd,
                                Ok(page) if page.alerts.is_empty() => Listing::Empty,
                                Ok(_) => Listing::Rows,
                                Err(error) => Listing::Failed(error.clone()),
                            })
                        })
                    });
                    let groups = Memo::new(move |_| {
                        alerts.with(|result| {
                            result
                                .as_ref()
                                .and_then(|result| result.as_ref().ok())
                                .map(|page| group_names(&page.alerts))
                                .unwrap_or_default()
                        })
                    });
                    let can_deploy = Memo::new(move |_| may_deploy(session));
                    let pager = move || {
                        alerts.get().and_then(Result::ok).filter(|page| page.total > 0).map(|page| {
                            let (state, offset) = (state_filter.get(), offset.get());
                            let shown = page.alerts.len();
                            let previous = (offset > 0).then(|| {
                                let href = list_href(&state, offset.saturating_sub(PAGE_SIZE));
                                view! { <a class="previous-page" href=href>"← Previous"</a> }
                            });
                            let next = (u64::from(offset) + (shown as u64) < page.total).then(|| {
                                let href = list_href(&state, offset + PAGE_SIZE);
                                view! { <a class="next-page" href=href>"Next →"</a> }
                            });
                            view! {
                                <div class="alert-pager">
                                    <span class="page-range">{page_range(offset, shown, page.total)}</span>
                                    {previous}
                                    {next}
                                </div>
                            }
                        })
                    };
                    move || {
                        listing.get().map(|listing| match listing {
                            Listing::Empty => view! {
                                <p class="placeholder no-alerts">
                                    {move || match state_filter.get().as_str() {
                                        "" => "No alerts: nothing fires, is pending or resolved.".to_owned(),
                                        state => format!("No {state} alerts."),
                                    }}
                                </p>
                            }
                            .into_any(),
                            Listing::PastTheEnd => view! {
                                {pager}
                                <p class="placeholder no-alerts">
                                    "No alerts on this page. "
                                    <a href=move || list_href(&state_filter.get(), 0)>"Back to the first page"</a>
                                </p>
                            }
                            .into_any(),
                            Listing::Rows => view! {
                                {pager}
                                <table class="table alerts">
                                    <thead>
                                        <tr>
                                            <th>"State"</th><th>"Alert"</th><th>"Labels"</th><th>"Summary"</th>
                                            <th>"Value"</th><th>"Since"</th><th>"Acknowledged"</th><th></th>
                                        </tr>
                                    </thead>
                                    <For each=move || groups.get() key=|name| name.clone() let(name)>
                                        <AlertGroup name alerts state_filter offset selected can_deploy acknowledge tick/>
                                    </For>
                                </table>
                                {pager}
                            }
                            .into_any(),
                            Listing::Failed(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                    }
                }
            </Transition>
            <Transition fallback=|| ()>
                {move || {
                    detail
                        .get()
                        .map(|result| match result {
                            Ok(Some(detail)) => view! { <AlertDetailPanel detail close=close()/> }.into_any(),
                            Ok(None) => ().into_any(),
                            Err(error) => view! {
                                <aside class="panel alert-detail">
                                    <p class="error">{error.to_string()}</p>
                                    <a class="close" href=close()>"Close"</a>
                                </aside>
                            }
                            .into_any(),
                        })
                }}
            </Transition>
            <section class="alert-rules">
                <div class="dashboard-head">
                    <h2>"Rules"</h2>
                    <Transition fallback=|| ()>
                        {move || may_deploy(session).then(|| view! { <a class="button new-rule" href="/alerts/rules/new">"New rule"</a> })}
                    </Transition>
                </div>
                <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || {
                        rules
                            .get()
                            .map(|result| match result {
                                Ok(rules) if rules.is_empty() => view! {
                                    <p class="placeholder">"No alert rules yet."</p>
                                }
                                .into_any(),
                                Ok(rules) => view! { <RulesTable rules/> }.into_any(),
                                Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                            })
                    }}
                </Transition>
                <Transition fallback=|| ()>
                    {move || may_deploy(session).then(|| view! { <TestChannelForm/> })}
                </Transition>
            </section>
        </div>
    }
}

/// What the list shows.
#[derive(Clone, PartialEq)]
enum Listing {
    Empty,
    /// Alerts match, but the page is past the last of them (they resolved meanwhile).
    PastTheEnd,
    Rows,
    Failed(UiError),
}

/// A row stays while its alert keeps its state, episode and acknowledgement; what else changes
/// (value, summary) updates in place.
fn row_key(alert: &Alert) -> (String, &'static str, i64, bool) {
    (alert.fingerprint.clone(), alert.state.as_str(), alert.episode, alert.acknowledged.is_some())
}

type AlertsResource = Resource<Result<AlertPage, UiError>>;

/// The alerts of one alertname on the page, under a heading with their count, as
/// Alertmanager's UI groups them.
#[component]
fn AlertGroup(
    name: String,
    alerts: AlertsResource,
    state_filter: Memo<String>,
    offset: Memo<u32>,
    selected: Memo<Option<String>>,
    can_deploy: Memo<bool>,
    acknowledge: ServerAction<AcknowledgeAlert>,
    tick: RwSignal<u64>,
) -> impl IntoView {
    let members = Memo::new({
        let name = name.clone();
        move |_| {
            alerts.with(|result| {
                result
                    .as_ref()
                    .and_then(|result| result.as_ref().ok())
                    .map(|page| {
                        page.alerts.iter().filter(|alert| alertname(alert) == name).cloned().collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
        }
    });
    let count = move || members.read().len();
    let heading = if name.is_empty() { "(no alertname)".to_owned() } else { name.clone() };
    view! {
        <tbody class="alert-group" data-alertname=name>
            <tr class="alert-group-head">
                <th colspan="8"><span class="group-name">{heading}</span>" "<span class="group-count">{count}</span></th>
            </tr>
            <For each=move || members.get() key=row_key let(alert)>
                <AlertRow alert alerts state_filter offset selected can_deploy acknowledge tick/>
            </For>
        </tbody>
    }
}

#[component]
fn AlertRow(
    alert: Alert,
    alerts: AlertsResource,
    state_filter: Memo<String>,
    offset: Memo<u32>,
    selected: Memo<Option<String>>,
    can_deploy: Memo<bool>,
    acknowledge: ServerAction<AcknowledgeAlert>,
    tick: RwSignal<u64>,
) -> impl IntoView {
    let state = alert.state.as_str();
    let fingerprint = alert.fingerprint.clone();
    // The alert as the last refresh has it.
    let live = Memo::new({
        let fingerprint = fingerprint.clone();
        let first = alert.clone();
        move |_| {
            alerts.with(|result| {
                result
                    .as_ref()
                    .and_then(|result| result.as_ref().ok())
                    .and_then(|page| page.alerts.iter().find(|alert| alert.fingerprint == fingerprint).cloned())
                    .unwrap_or_else(|| first.clone())
            })
        }
    });
    let name = alertname(&alert).to_owned();
    let chips = label_chips(&alert.labels);
    let summary = move || live.read().annotations.get("summary").cloned().unwrap_or_default();
    let value = move || live.read().value.map_or_else(|| "—".to_owned(), value_text);
    let row_name = name.clone();
    let offer = alert.state == AlertState::Firing && alert.acknowledged.is_none();
    let silenceable = matches!(alert.state, AlertState::Firing | AlertState::Pending);
    let silence = silence_href(&alert.labels);
    let since = since(&alert);
    let href = {
        let fingerprint = fingerprint.clone();
        move || detail_href(&state_filter.get(), offset.get(), &fingerprint)
    };
    let is_selected = {
        let fingerprint = fingerprint.clone();
        move || selected.read().as_deref() == Some(fingerprint.as_str())
    };
    let acknowledged = alert.acknowledged.map(|acknowledged| {
        let note = (!acknowledged.note.is_empty()).then(|| view! { <q class="note">{acknowledged.note.clone()}</q> });
        view! {
            <span class="acknowledged">"acknowledged by " {acknowledged.by.clone()} " " {live_relative(acknowledged.at, tick)}</span>
            {note}
        }
    });
    let form = move || {
        (offer && can_deploy.get()).then(|| {
            let fingerprint = fingerprint.clone();
            view! {
                <ActionForm action=acknowledge attr:class="acknowledge-form">
                    <input type="hidden" name="fingerprint" value=fingerprint/>
                    <input type="text" name="note" class="acknowledge-note" placeholder="Note (optional)" maxlength="1000"/>
                    <button type="submit" class="acknowledge" disabled=move || acknowledge.pending().get()>"Acknowledge"</button>
                </ActionForm>
            }
        })
    };
    let silence_link = move || {
        (silenceable && can_deploy.get()).then(|| {
            view! { <a class="button silence-alert" href=silence.clone() title="Silence alerts with these labels">"Silence"</a> }
        })
    };
    view! {
        <tr
            class=format!("alert-row state-{state}")
            class:selected=is_selected
            data-fingerprint=alert.fingerprint.clone()
            data-state=state
            data-alertname=row_name
        >
            <td><span class=format!("state-badge state-{state}")>{state}</span></td>
            <td class="alertname"><a class="alert-link" href=href>{name}</a></td>
            <td class="labels">{chips}</td>
            <td class="summary-annotation">{summary}</td>
            <td class="value">{value}</td>
            <td class="since">{live_relative(since, tick)}</td>
            <td class="acknowledgement">{acknowledged}{form}</td>
            <td class="actions">{silence_link}</td>
        </tr>
    }
}

/// An alert's labels and annotations, its timeline and its notifications.
#[component]
fn AlertDetailPanel(detail: AlertDetail, close: String) -> impl IntoView {
    let AlertDetail { alert, rule_name, events, deliveries, links } = detail;
    let state = alert.state.as_str();
    let pairs = |map: &std::collections::BTreeMap<String, String>| {
        map.iter().map(|(name, value)| view! { <dt>{name.clone()}</dt><dd>{value.clone()}</dd> }).collect_view()
    };
    let labels = pairs(&alert.labels);
    let annotations = pairs(&alert.annotations);
    view! {
        <aside class="panel alert-detail" data-fingerprint=alert.fingerprint.clone()>
            <div class="alert-detail-head">
                <h2>
                    <span class=format!("state-badge state-{state}")>{state}</span>" "
                    {alert.labels.get("alertname").cloned().unwrap_or_default()}
                </h2>
                <a class="close" href=close>"Close"</a>
            </div>
            <p class="alert-links">
                <a class="alert-logs-link" href=links.logs>"Matching logs"</a>
                {links.metrics.map(|href| view! { " · "<a class="alert-metrics-link" href=href>"Metric chart"</a> })}
            </p>
            <dl class="alert-facts">
                <dt>"Rule"</dt><dd>{rule_name}</dd>
                <dt>"Fingerprint"</dt><dd><code>{alert.fingerprint.clone()}</code></dd>
                <dt>"Episode"</dt><dd>{alert.episode}</dd>
                <dt>"Value"</dt><dd>{alert.value.map_or_else(|| "—".to_owned(), value_text)}</dd>
                <dt>"Active since"</dt><dd>{relative(alert.active_since)}</dd>
                {alert.firing_since.map(|at| view! { <dt>"Firing since"</dt><dd>{relative(at)}</dd> })}
                {alert.resolved_at.map(|at| view! { <dt>"Resolved"</dt><dd>{relative(at)}</dd> })}
            </dl>
            <h3>"Labels"</h3>
            <dl class="alert-facts">{labels}</dl>
            <h3>"Annotations"</h3>
            <dl class="alert-facts">{annotations}</dl>
            <h3>"Timeline"</h3>
            <ol class="alert-timeline">
                {events
                    .into_iter()
                    .map(|event| view! {
                        <li class=format!("event event-{}", event.kind)>
                            {relative(event.at)}" "
                            <span class="event-kind">{event.kind.clone()}</span>
                            {(!event.actor.is_empty()).then(|| view! { " by " <span class="actor">{event.actor.clone()}</span> })}
                            {(!event.detail.is_empty()).then(|| view! { ": " <span class="event-detail">{event.detail.clone()}</span> })}
                        </li>
                    })
                    .collect_view()}
            </ol>
            <h3>"Notifications"</h3>
            {if deliveries.is_empty() {
                view! { <p class="placeholder">"No notifications: the rule names no channel, or none is due yet."</p> }.into_any()
            } else {
                view! {
                    <table class="table deliveries">
                        <thead>
                            <tr><th>"Channel"</th><th>"Event"</th><th>"Status"</th><th>"Attempts"</th><th>"Last error"</th><th>"Created"</th><th>"Sent"</th></tr>
                        </thead>
                        <tbody>
                            {deliveries
                                .into_iter()
                                .map(|delivery| {
                                    let status = match delivery.status {
                                        DeliveryStatus::Pending => "pending",
                                        DeliveryStatus::Sent => "sent",
                                        DeliveryStatus::Failed => "failed",
                                    };
                                    view! {
                                        <tr class=format!("delivery delivery-{status}")>
                                            <td>{delivery.channel.clone()}</td>
                                            <td>{delivery.event.as_str()}</td>
                                            <td class="status">{status}</td>
                                            <td class="attempts">{delivery.attempts}</td>
                                            <td class="last-error">{delivery.last_error.clone().unwrap_or_default()}</td>
                                            <td>{relative(delivery.created_at)}</td>
                                            <td>{delivery.sent_at.map(relative)}</td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                .into_any()
            }}
        </aside>
    }
}

#[component]
fn RulesTable(rules: Vec<AlertRule>) -> impl IntoView {
    view! {
        <table class="table alert-rules-table">
            <thead>
                <tr>
                    <th>"Name"</th><th>"Kind"</th><th>"Expression"</th><th>"Severity"</th>
                    <th>"Channels"</th><th>"Last evaluation"</th><th>"Last error"</th>
                </tr>
            </thead>
            <tbody>
                {rules
                    .into_iter()
                    .map(|rule| {
                        let spec = rule.spec;
                        let kind = match spec.kind {
                            vigil_proto::alerts::RuleKind::Promql => "promql",
                            vigil_proto::alerts::RuleKind::Logs => "logs",
                        };
                        let condition = match (spec.comparator, spec.threshold) {
                            (Some(comparator), Some(threshold)) => format!(" {} {threshold}", comparator.as_str()),
                            _ => String::new(),
                        };
                        let class = format!(
                            "rule-row{}{}",
                            if rule.last_error.is_some() { " has-error" } else { "" },
                            if spec.enabled { "" } else { " disabled" },
                        );
                        view! {
                            <tr class=class data-rule=rule.id>
                                <td class="rule-name">
                                    <a class="rule-link" href=format!("/alerts/rules/{}", rule.id)>{spec.name.clone()}</a>
                                    {(!spec.group.is_empty()).then(|| view! { " " <span class="muted">{spec.group.clone()}</span> })}
                                    {(!spec.enabled).then(|| view! { " " <span class="muted">"(disabled)"</span> })}
                                </td>
                                <td class="kind">{kind}</td>
                                <td class="expr"><code>{spec.expr.clone()}{condition}</code></td>
                                <td class="severity">{spec.severity.as_str()}</td>
                                <td class="channels">{spec.channels.join(", ")}</td>
                                <td class="last-evaluation">
                                    {rule.last_evaluation.map_or_else(
                                        || view! { <span class="muted">"not yet"</span> }.into_any(),
                                        |at| view! {
                                            {relative(at)}
                                            {rule.last_duration_ms.map(|ms| format!(" ({ms} ms)"))}
                                        }
                                        .into_any(),
                                    )}
                                </td>
                                <td class="rule-error">{rule.last_error.clone().unwrap_or_default()}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_keep_their_significant_digits() {
        assert_eq!(value_text(0.0), "0");
        assert_eq!(value_text(1.0), "1");
        assert_eq!(value_text(7.25), "7.25");
        assert_eq!(value_text(1500.0), "1.5 k");
        assert_eq!(value_text(0.5), "0.5");
        assert_eq!(value_text(0.00123), "0.00123");
        assert_eq!(value_text(-0.042), "-0.042");
    }

    #[test]
    fn links_keep_the_state_filter_and_the_page() {
        assert_eq!(detail_href("", 0, "ab12"), "/alerts?fingerprint=ab12");
        assert_eq!(detail_href("firing", 200, "ab12"), "/alerts?fingerprint=ab12&state=firing&offset=200");
        assert_eq!(list_href("", 0), "/alerts");
        assert_eq!(list_href("resolved", 0), "/alerts?state=resolved");
        assert_eq!(list_href("", 100), "/alerts?offset=100");
        assert_eq!(list_href("firing", 100), "/alerts?state=firing&offset=100");
    }

    #[test]
    fn pages_say_which_alerts_they_show() {
        assert_eq!(page_range(0, 100, 10_000), "1–100 of 10,000");
        assert_eq!(page_range(9_900, 100, 10_000), "9,901–10,000 of 10,000");
        assert_eq!(page_range(0, 3, 3), "1–3 of 3");
        assert_eq!(page_range(100, 0, 50), "0 of 50");
    }

    #[test]
    fn groups_follow_the_order_of_the_list() {
        let alert = |name: &str, state: AlertState| Alert {
            fingerprint: format!("{name}-{}", state.as_str()),
            rule_id: 1,
            labels: [("alertname".to_owned(), name.to_owned())].into(),
            annotations: Default::default(),
            state,
            value: None,
            active_since: Timestamp::from_unix_nanos(0).unwrap(),
            firing_since: None,
            resolved_at: None,
            episode: 1,
            acknowledged: None,
            source: "rule".to_owned(),
            ends_at: None,
        };
        let alerts = [
            alert("Disk", AlertState::Firing),
            alert("Cpu", AlertState::Firing),
            alert("Disk", AlertState::Pending),
            alert("Queue", AlertState::Pending),
            alert("Cpu", AlertState::Resolved),
        ];
        assert_eq!(group_names(&alerts), ["Disk", "Cpu", "Queue"]);
    }
}
