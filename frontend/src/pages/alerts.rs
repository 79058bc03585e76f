//! The Alerts page: the alerts, firing first, then pending, then resolved, filtered by state;
//! acknowledgement for deployers and administrators; an alert's timeline and notifications
//! (`/alerts?fingerprint=...`, or `/alerts/<fingerprint>` as notifications link it); and the
//! rules with how their last evaluation went. Kept up to date by the layout's live tick, without
//! a reload.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};
use vigil_proto::Timestamp;
use vigil_proto::alerts::{Alert, AlertDetail, AlertRule, AlertState, DeliveryStatus};
use vigil_proto::auth::Role;

use super::explore::format_value;
use super::{ago, encode, now_nanos};
use crate::accounts::current_session;
use crate::alerts::{AcknowledgeAlert, fetch_alert, list_alert_rules, list_alerts};
use crate::app::live_tick;
use crate::error::UiError;

/// The state filter's choices: the query's `state` and its label.
const FILTERS: [(&str, &str); 4] =
    [("", "All"), ("firing", "Firing"), ("pending", "Pending"), ("resolved", "Resolved")];

/// `3 min ago`, with the time itself as the tooltip.
fn relative(at: Timestamp) -> impl IntoView {
    let seconds = (now_nanos() - at.as_unix_nanos()) / 1_000_000_000;
    view! { <time datetime=at.to_string() title=at.to_string()>{ago(seconds)}</time> }
}

/// The same, kept current by the live tick.
fn live_relative(at: Timestamp, tick: RwSignal<u64>) -> impl IntoView {
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
fn value_text(value: f64) -> String {
    if value == 0.0 || !value.is_finite() || value.abs() >= 1.0 {
        return format_value(value, "");
    }
    let decimals = usize::try_from(3 - value.abs().log10().floor() as i64).unwrap_or(0).min(12);
    let text = format!("{value:.decimals$}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Where a link to an alert's detail goes, keeping the state filter.
fn detail_href(state: &str, fingerprint: &str) -> String {
    let mut href = format!("/alerts?fingerprint={}", encode(fingerprint));
    if !state.is_empty() {
        href.push_str(&format!("&state={}", encode(state)));
    }
    href
}

fn close_href(state: &str) -> String {
    if state.is_empty() { "/alerts".to_owned() } else { format!("/alerts?state={}", encode(state)) }
}

/// Since when an alert is in its state: firing since, pending since, resolved at.
fn since(alert: &Alert) -> Timestamp {
    match alert.state {
        AlertState::Firing => alert.firing_since.unwrap_or(alert.active_since),
        AlertState::Pending => alert.active_since,
        AlertState::Resolved | AlertState::Inactive => alert.resolved_at.unwrap_or(alert.active_since),
    }
}

#[component]
pub fn AlertsPage() -> impl IntoView {
    let query = use_query_map();
    let params = use_params_map();
    let state_filter = Memo::new(move |_| query.read().get("state").unwrap_or_default());
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
        move || (state_filter.get(), tick.get()),
        |(state, _)| async move { list_alerts(state, 0).await.map(|page| page.alerts) },
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
    view! {
        <Title text="Alerts · Vigil"/>
        <div class="alerts-page" data-hydrated=move || hydrated.get().to_string()>
            <h1>"Alerts"</h1>
            <nav class="alert-filter">
                {FILTERS
                    .into_iter()
                    .map(|(state, label)| {
                        let href = close_href(state);
                        let current = move || (state_filter.get() == state).then_some("true");
                        view! { <a href=href data-state=state aria-current=current>{label}</a> }
                    })
                    .collect_view()}
            </nav>
            {failure}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {
                    // Built once: a refresh changes the rows in place (keyed by alert and state),
                    // so a note being typed stays where it is while the list moves around it.
                    let listing = Memo::new(move |_| {
                        alerts.with(|result| {
                            result.as_ref().map(|result| match result {
                                Ok(alerts) if alerts.is_empty() => Listing::Empty,
                                Ok(_) => Listing::Rows,
                                Err(error) => Listing::Failed(error.clone()),
                            })
                        })
                    });
                    let can_acknowledge = Memo::new(move |_| {
                        session.with(|session| {
                            matches!(session, Some(Ok(session)) if session.role >= Role::Deployer)
                        })
                    });
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
                            Listing::Rows => view! {
                                <table class="table alerts">
                                    <thead>
                                        <tr>
                                            <th>"State"</th><th>"Alert"</th><th>"Labels"</th><th>"Summary"</th>
                                            <th>"Value"</th><th>"Since"</th><th>"Acknowledged"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        <For
                                            each=move || alerts.get().and_then(Result::ok).unwrap_or_default()
                                            key=row_key
                                            let(alert)
                                        >
                                            <AlertRow alert alerts state_filter selected can_acknowledge acknowledge tick/>
                                        </For>
                                    </tbody>
                                </table>
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
                            Ok(Some(detail)) => {
                                view! { <AlertDetailPanel detail close=close_href(&state_filter.get_untracked())/> }.into_any()
                            }
                            Ok(None) => ().into_any(),
                            Err(error) => view! {
                                <aside class="panel alert-detail">
                                    <p class="error">{error.to_string()}</p>
                                    <a class="close" href=close_href(&state_filter.get_untracked())>"Close"</a>
                                </aside>
                            }
                            .into_any(),
                        })
                }}
            </Transition>
            <section class="alert-rules">
                <h2>"Rules"</h2>
                <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                    {move || {
                        rules
                            .get()
                            .map(|result| match result {
                                Ok(rules) if rules.is_empty() => view! {
                                    <p class="placeholder">"No alert rules yet: create them with POST /api/v1/alerts/rules."</p>
                                }
                                .into_any(),
                                Ok(rules) => view! { <RulesTable rules/> }.into_any(),
                                Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                            })
                    }}
                </Transition>
            </section>
        </div>
    }
}

/// What the list shows.
#[derive(Clone, PartialEq)]
enum Listing {
    Empty,
    Rows,
    Failed(UiError),
}

/// A row stays while its alert keeps its state, episode and acknowledgement; what else changes
/// (value, summary) updates in place.
fn row_key(alert: &Alert) -> (String, &'static str, i64, bool) {
    (alert.fingerprint.clone(), alert.state.as_str(), alert.episode, alert.acknowledged.is_some())
}

type AlertsResource = Resource<Result<Vec<Alert>, UiError>>;

#[component]
fn AlertRow(
    alert: Alert,
    alerts: AlertsResource,
    state_filter: Memo<String>,
    selected: Memo<Option<String>>,
    can_acknowledge: Memo<bool>,
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
                    .and_then(|alerts| alerts.iter().find(|alert| alert.fingerprint == fingerprint).cloned())
                    .unwrap_or_else(|| first.clone())
            })
        }
    });
    let name = alert.labels.get("alertname").cloned().unwrap_or_default();
    let chips: Vec<(String, String)> = alert
        .labels
        .iter()
        .filter(|(label, _)| label.as_str() != "alertname")
        .map(|(label, value)| (label.clone(), value.clone()))
        .collect();
    let summary = move || live.read().annotations.get("summary").cloned().unwrap_or_default();
    let value = move || live.read().value.map_or_else(|| "—".to_owned(), value_text);
    let row_name = name.clone();
    let offer = alert.state == AlertState::Firing && alert.acknowledged.is_none();
    let since = since(&alert);
    let href = {
        let fingerprint = fingerprint.clone();
        move || detail_href(&state_filter.get(), &fingerprint)
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
        (offer && can_acknowledge.get()).then(|| {
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
            <td class="labels">
                {chips
                    .into_iter()
                    .map(|(label, value)| view! { <span class="label-chip"><span class="label-name">{label}</span>"="{value}</span> })
                    .collect_view()}
            </td>
            <td class="summary-annotation">{summary}</td>
            <td class="value">{value}</td>
            <td class="since">{live_relative(since, tick)}</td>
            <td class="acknowledgement">{acknowledged}{form}</td>
        </tr>
    }
}

/// An alert's labels and annotations, its timeline and its notifications.
#[component]
fn AlertDetailPanel(detail: AlertDetail, close: String) -> impl IntoView {
    let AlertDetail { alert, rule_name, events, deliveries } = detail;
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
                                    {spec.name.clone()}
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
    fn detail_links_keep_the_state_filter() {
        assert_eq!(detail_href("", "ab12"), "/alerts?fingerprint=ab12");
        assert_eq!(detail_href("firing", "ab12"), "/alerts?fingerprint=ab12&state=firing");
        assert_eq!(close_href("resolved"), "/alerts?state=resolved");
    }
}
