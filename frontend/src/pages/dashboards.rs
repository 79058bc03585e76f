//! Dashboards: the list (stored and generated), and a dashboard's view: variables filled from
//! label values, a time range for every panel, auto-refresh, panels laid out on a 12-column
//! grid. The URL holds it all: `/dashboard?uid=...&range=...&var-host=a,b&refresh=30`.
//! The time-series panels show when alerts fired in the range (those of the chosen services
//! when the dashboard has a `service` variable), read once for the whole dashboard.

use std::collections::BTreeMap;

use leptos::prelude::*;

use super::encode;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use vigil_proto::dashboards::{DashboardSpec, Panel, PanelKind, Variable, expand};
use vigil_proto::metrics::QueryResult;

use super::explore::{Band, BandsError, BandsQuery, Chart, format_value, series_name, watch_alert_bands, zoomed_range};
use crate::metrics::{
    DeleteDashboard, DuplicateDashboard, ImportDashboard, fetch_dashboard, list_dashboards, metrics_instant,
    metrics_range, variable_values,
};

const RANGES: [&str; 6] = ["15m", "1h", "6h", "24h", "7d", "30d"];

#[component]
pub fn DashboardsPage() -> impl IntoView {
    let duplicate = ServerAction::<DuplicateDashboard>::new();
    let delete = ServerAction::<DeleteDashboard>::new();
    let import = ServerAction::<ImportDashboard>::new();
    let list = Resource::new(
        move || (duplicate.version().get(), delete.version().get(), import.version().get()),
        |_| list_dashboards(),
    );
    let failure = move || {
        [
            duplicate.value().get().and_then(Result::err),
            delete.value().get().and_then(Result::err),
            import.value().get().and_then(Result::err),
        ]
        .into_iter()
        .flatten()
        .next()
        .map(|error| view! { <p class="error action-error">{error.to_string()}</p> })
    };
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    view! {
        <Title text="Dashboards · Vigil"/>
        <div class="dashboard-head dashboards-page" data-hydrated=move || hydrated.get().to_string()>
            <h1>"Dashboards"</h1>
            <a class="button new-dashboard" href="/dashboard/edit">"New dashboard"</a>
        </div>
        {failure}
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                list.get()
                    .map(|result| match result {
                        Ok(list) => view! {
                            <ul class="dashboard-list">
                                {list
                                    .into_iter()
                                    .map(|dashboard| {
                                        let href = format!("/dashboard?uid={}", encode(&dashboard.uid));
                                        let stored = !dashboard.uid.starts_with("builtin/");
                                        let uid = dashboard.uid.clone();
                                        view! {
                                            <li data-uid=dashboard.uid.clone()>
                                                <a class="title" href=href>{dashboard.title}</a>
                                                " "
                                                <span class="muted">{dashboard.tags.join(", ")}</span>
                                                {stored.then(|| {
                                                    let edit = format!("/dashboard/edit?uid={}", encode(&uid));
                                                    let export = format!("/api/v1/dashboards/{}/export", encode(&uid));
                                                    let (for_duplicate, for_delete) = (uid.clone(), uid.clone());
                                                    view! {
                                                        <span class="dashboard-actions">
                                                            <a class="edit" href=edit>"Edit"</a>
                                                            <button class="duplicate" on:click=move |_| {
                                                                duplicate.dispatch(DuplicateDashboard { uid: for_duplicate.clone() });
                                                            }>"Duplicate"</button>
                                                            <a class="export" href=export download=format!("{uid}.json")>"Export"</a>
                                                            <button class="delete" on:click=move |_| {
                                                                delete.dispatch(DeleteDashboard { uid: for_delete.clone() });
                                                            }>"Delete"</button>
                                                        </span>
                                                    }
                                                })}
                                            </li>
                                        }
                                    })
                                    .collect_view()}
                            </ul>
                        }
                        .into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
        <h2>"Import"</h2>
        <ActionForm action=import attr:class="form import-form">
            <textarea name="document" rows="6" placeholder="Paste an exported dashboard (JSON)"></textarea>
            <label><input type="checkbox" name="overwrite" value="true"/>" Replace a dashboard with the same uid"</label>
            <button type="submit">"Import"</button>
        </ActionForm>
        {move || {
            import.value().get().and_then(Result::ok).map(|dashboard| {
                let href = format!("/dashboard?uid={}", encode(&dashboard.uid));
                view! { <p class="imported">"Imported "<a href=href>{dashboard.spec.title}</a></p> }
            })
        }}
    }
}

/// The view's state, from the URL.
#[derive(Clone, PartialEq, Default)]
struct View {
    uid: String,
    range: String,
    start: String,
    end: String,
    refresh: Option<u32>,
    /// `var-<name>` values; an absent or empty one means every value.
    chosen: BTreeMap<String, Vec<String>>,
}

impl View {
    fn url(&self) -> String {
        let mut url = format!("/dashboard?uid={}", encode(&self.uid));
        if self.start.is_empty() && self.end.is_empty() {
            if !self.range.is_empty() {
                url.push_str(&format!("&range={}", encode(&self.range)));
            }
        } else {
            url.push_str(&format!("&start={}&end={}", encode(&self.start), encode(&self.end)));
        }
        if let Some(refresh) = self.refresh {
            url.push_str(&format!("&refresh={refresh}"));
        }
        for (name, values) in &self.chosen {
            url.push_str(&format!("&var-{}={}", encode(name), encode(&values.join(","))));
        }
        url
    }
}

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = use_query_map();
    let view_state = Memo::new(move |_| {
        let query = query.read();
        let mut chosen = BTreeMap::new();
        for (key, value) in query.clone().into_iter() {
            if let Some(name) = key.strip_prefix("var-") {
                let values: Vec<String> = value.split(',').filter(|part| !part.is_empty()).map(str::to_owned).collect();
                chosen.insert(name.to_owned(), values);
            }
        }
        View {
            uid: query.get("uid").unwrap_or_default(),
            range: query.get("range").unwrap_or_default(),
            start: query.get("start").unwrap_or_default(),
            end: query.get("end").unwrap_or_default(),
            refresh: query.get("refresh").and_then(|refresh| refresh.parse().ok()),
            chosen,
        }
    });
    let uid = Memo::new(move |_| view_state.read().uid.clone());
    let spec = Resource::new(move || uid.get(), fetch_dashboard);
    view! {
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match spec.await {
                    Ok(spec) => view! { <Dashboard spec view_state/> }.into_any(),
                    Err(error) => view! { <h1>"Dashboard"</h1><p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Dashboard(spec: DashboardSpec, view_state: Memo<View>) -> impl IntoView {
    let navigate = use_navigate();
    let go = Callback::new(move |view: View| navigate(&view.url(), Default::default()));
    // Auto-refresh: a tick every `refresh` seconds (the URL's, else the dashboard's) reloads
    // every panel; in the browser only.
    let tick = RwSignal::new(0_u64);
    let refresh = Memo::new({
        let default = spec.refresh_seconds;
        move |_| view_state.read().refresh.or(default)
    });
    #[cfg(feature = "hydrate")]
    Effect::new(move |previous: Option<Option<leptos::prelude::IntervalHandle>>| {
        if let Some(Some(handle)) = previous {
            handle.clear();
        }
        refresh.get().filter(|seconds| *seconds > 0).and_then(|seconds| {
            set_interval_with_handle(
                move || tick.update(|tick| *tick += 1),
                std::time::Duration::from_secs(u64::from(seconds)),
            )
            .ok()
        })
    });
    let default_range = spec.range.clone();
    let range = Memo::new(move |_| {
        let view = view_state.read();
        if view.range.is_empty() { default_range.clone() } else { view.range.clone() }
    });
    let variables = spec.variables.clone();
    let rows = spec.rows.clone();
    // Every variable of the dashboard, the ones absent from the URL meaning all values.
    let names: Vec<String> = spec.variables.iter().map(|variable| variable.name.clone()).collect();
    let chosen = Memo::new(move |_| {
        let mut chosen = view_state.read().chosen.clone();
        for name in &names {
            chosen.entry(name.clone()).or_default();
        }
        chosen
    });
    // When alerts fired in the range: one request for every panel.
    let has_service = spec.variables.iter().any(|variable| variable.name == SERVICE_VARIABLE);
    let alerts = watch_alert_bands(move || {
        tick.track();
        let view = view_state.get();
        let filter = if has_service {
            chosen.read().get(SERVICE_VARIABLE).map(|values| service_filter(values)).unwrap_or_default()
        } else {
            String::new()
        };
        Some(BandsQuery { range: range.get(), start: view.start, end: view.end, filter })
    });
    let bands = Signal::from(alerts.bands);
    view! {
        <Title text=format!("{} · Vigil", spec.title)/>
        <div class="dashboard-head">
            <h1>{spec.title.clone()}</h1>
            {move || {
                let uid = view_state.read().uid.clone();
                (!uid.starts_with("builtin/"))
                    .then(|| view! { <a class="button edit-dashboard" href=format!("/dashboard/edit?uid={}", encode(&uid))>"Edit"</a> })
            }}
            <div class="dashboard-controls">
                {variables.into_iter().map(|variable| view! { <VariablePicker variable view_state go/> }).collect_view()}
                <select
                    class="range"
                    on:change=move |event| {
                        let range = event_target_value(&event);
                        go.run(View { range, start: String::new(), end: String::new(), ..view_state.get_untracked() });
                    }
                >
                    {RANGES
                        .into_iter()
                        .map(|value| view! { <option value=value selected=move || range.get() == value>{value}</option> })
                        .collect_view()}
                </select>
                <select
                    class="refresh"
                    on:change=move |event| {
                        let refresh = event_target_value(&event).parse().ok();
                        go.run(View { refresh, ..view_state.get_untracked() });
                    }
                >
                    {[0_u32, 10, 30, 60, 300]
                        .into_iter()
                        .map(|seconds| {
                            let label = if seconds == 0 { "no refresh".to_owned() } else { format!("every {seconds} s") };
                            view! { <option value=seconds.to_string() selected=move || refresh.get().unwrap_or(0) == seconds>{label}</option> }
                        })
                        .collect_view()}
                </select>
            </div>
        </div>
        <p class="muted">{spec.description.clone()}</p>
        <BandsError error=alerts.error/>
        {rows
            .into_iter()
            .map(|row| {
                view! {
                    <section class="dashboard-row">
                        <h2>{row.title}</h2>
                        <div class="panel-grid">
                            {row.panels.into_iter().map(|panel| view! { <PanelView panel view_state chosen range tick go bands/> }).collect_view()}
                        </div>
                    </section>
                }
            })
            .collect_view()}
    }
}

#[component]
fn VariablePicker(variable: Variable, view_state: Memo<View>, go: Callback<View>) -> impl IntoView {
    let values = Resource::new(
        {
            let variable = variable.clone();
            move || (variable.label.clone(), variable.selector.clone().unwrap_or_default())
        },
        |(label, selector)| variable_values(label, selector),
    );
    let name = variable.name.clone();
    let chosen = {
        let name = name.clone();
        move || view_state.read().chosen.get(&name).cloned().unwrap_or_default()
    };
    view! {
        <label class="variable">
            {format!("${}", variable.name)}
            <Suspense fallback=|| ()>
                {move || {
                    let name = name.clone();
                    let chosen = chosen.clone();
                    values.get().and_then(Result::ok).map(move |values| {
                        view! {
                            <select
                                class=format!("variable-{name}")
                                on:change={
                                    let name = name.clone();
                                    move |event| {
                                        let value = event_target_value(&event);
                                        let mut view = view_state.get_untracked();
                                        view.chosen.insert(name.clone(), if value.is_empty() { Vec::new() } else { vec![value] });
                                        go.run(view);
                                    }
                                }
                            >
                                <option value="" selected=chosen().is_empty()>"All"</option>
                                {values
                                    .into_iter()
                                    .map(|value| {
                                        let selected = chosen().contains(&value);
                                        view! { <option value=value.clone() selected=selected>{value.clone()}</option> }
                                    })
                                    .collect_view()}
                            </select>
                        }
                    })
                }}
            </Suspense>
        </label>
    }
}

/// The variable whose values narrow the alerts drawn on the panels to those services.
const SERVICE_VARIABLE: &str = "service";

/// The alerts of the chosen services, as a selector: `{service="a"}`, `{service=~"a|b"}`, or
/// nothing (every alert) when all are chosen.
fn service_filter(values: &[String]) -> String {
    match values {
        [] => String::new(),
        [value] => format!("{{{SERVICE_VARIABLE}={}}}", super::quoted(value)),
        values => {
            let alternatives: Vec<String> = values.iter().map(|value| regex_escape(value)).collect();
            format!("{{{SERVICE_VARIABLE}=~{}}}", super::quoted(&alternatives.join("|")))
        }
    }
}

/// A value matched literally inside a regular expression.
fn regex_escape(value: &str) -> String {
    let mut escaped = String::with_capacity(value.len());
    for character in value.chars() {
        if "\\.+*?()|[]{}^$".contains(character) {
            escaped.push('\\');
        }
        escaped.push(character);
    }
    escaped
}

/// `{{label}}` in a legend template becomes the series' label value.
fn legend(template: &str, labels: &BTreeMap<String, String>) -> String {
    if template.is_empty() {
        return series_name(labels);
    }
    let mut out = template.to_owned();
    for (name, value) in labels {
        out = out.replace(&format!("{{{{{name}}}}}"), value);
    }
    out
}

#[component]
fn PanelView(
    panel: Panel,
    view_state: Memo<View>,
    chosen: Memo<BTreeMap<String, Vec<String>>>,
    range: Memo<String>,
    tick: RwSignal<u64>,
    go: Callback<View>,
    bands: Signal<Vec<Band>>,
) -> impl IntoView {
    let unit = panel.unit.clone().unwrap_or_default();
    let style = format!("grid-column: span {}", panel.width.clamp(1, 12));
    let title = panel.title.clone();
    let body = match panel.kind {
        PanelKind::TimeSeries { queries, stacked } => {
            let data = Resource::new(
                move || {
                    let view = view_state.get();
                    (tick.get(), range.get(), view.start.clone(), view.end.clone(), chosen.get())
                },
                move |(_, range, start, end, chosen)| {
                    let queries = queries.clone();
                    async move {
                        let mut merged =
                            QueryResult { result_type: "matrix".to_owned(), series: Vec::new(), step_seconds: None };
                        let mut names = Vec::new();
                        for query in queries {
                            let result =
                                metrics_range(expand(&query.expr, &chosen), range.clone(), start.clone(), end.clone())
                                    .await?;
                            merged.step_seconds = result.step_seconds;
                            for series in result.series {
                                names.push(legend(&query.legend, &series.labels));
                                merged.series.push(series);
                            }
                        }
                        Ok::<_, crate::error::UiError>((merged, names))
                    }
                },
            );
            let zoom = Callback::new(move |(from, to): (f64, f64)| {
                let (start, end) = zoomed_range(from, to);
                go.run(View { start, end, ..view_state.get_untracked() });
            });
            view! {
                <Transition fallback=|| view! { <p class="loading">"…"</p> }>
                    {move || {
                        let unit = unit.clone();
                        data.get().map(move |result| match result {
                            Ok((result, _)) if result.series.is_empty() => view! { <p class="placeholder no-data">"No data"</p> }.into_any(),
                            Ok((result, names)) => view! { <Chart result names unit stacked zoom bands/> }.into_any(),
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                    }}
                </Transition>
            }
            .into_any()
        }
        PanelKind::Stat { query, thresholds } => {
            let data = Resource::new(
                move || (tick.get(), chosen.get()),
                move |(_, chosen)| metrics_instant(expand(&query, &chosen)),
            );
            view! {
                <Transition fallback=|| view! { <p class="loading">"…"</p> }>
                    {move || {
                        let unit = unit.clone();
                        let thresholds = thresholds.clone();
                        data.get().map(move |result| match result {
                            Ok(result) => {
                                let value = result.series.first().and_then(|series| series.points.first()).and_then(|(_, value)| *value);
                                let color = value
                                    .and_then(|value| thresholds.iter().rev().find(|threshold| value >= threshold.value))
                                    .map(|threshold| threshold.color.clone())
                                    .unwrap_or_else(|| "inherit".to_owned());
                                let text = value.map_or_else(|| "—".to_owned(), |value| format_value(value, &unit));
                                view! { <p class="stat" style=format!("color: {color}")>{text}</p> }.into_any()
                            }
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                    }}
                </Transition>
            }
            .into_any()
        }
        PanelKind::Table { query } => {
            let data = Resource::new(
                move || (tick.get(), chosen.get()),
                move |(_, chosen)| metrics_instant(expand(&query, &chosen)),
            );
            view! {
                <Transition fallback=|| view! { <p class="loading">"…"</p> }>
                    {move || {
                        let unit = unit.clone();
                        data.get().map(move |result| match result {
                            Ok(result) => view! {
                                <table class="table">
                                    {result
                                        .series
                                        .into_iter()
                                        .map(|series| {
                                            let value = series.points.first().and_then(|(_, value)| *value);
                                            view! {
                                                <tr>
                                                    <td>{series_name(&series.labels)}</td>
                                                    <td>{value.map_or_else(|| "—".to_owned(), |value| format_value(value, &unit))}</td>
                                                </tr>
                                            }
                                        })
                                        .collect_view()}
                                </table>
                            }
                            .into_any(),
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                    }}
                </Transition>
            }
            .into_any()
        }
        PanelKind::Logs { query } => {
            let data = Resource::new(
                move || {
                    let view = view_state.get();
                    (tick.get(), range.get(), view.start.clone(), view.end.clone())
                },
                {
                    let query = query.clone();
                    move |(_, range, start, end)| crate::logs::fetch_histogram(query.clone(), range, start, end)
                },
            );
            let href = format!("/logs?q={}", encode(&query));
            view! {
                <Transition fallback=|| view! { <p class="loading">"…"</p> }>
                    {move || {
                        data.get().map(|result| match result {
                            Ok(histogram) => {
                                let mut totals: BTreeMap<String, u64> = BTreeMap::new();
                                for bucket in &histogram.buckets {
                                    for (level, count) in &bucket.counts {
                                        *totals.entry(level.clone()).or_default() += count;
                                    }
                                }
                                view! {
                                    <ul class="log-levels">
                                        {totals
                                            .into_iter()
                                            .map(|(level, count)| view! { <li class=format!("level level-{level}")>{format!("{level}: {count}")}</li> })
                                            .collect_view()}
                                    </ul>
                                }
                                .into_any()
                            }
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        })
                    }}
                </Transition>
                <a href=href class="open-logs">"Open in Logs"</a>
            }
            .into_any()
        }
    };
    view! {
        <div class="dashboard-panel" style=style>
            <h3>{title}</h3>
            {body}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chosen_services_narrow_the_alerts() {
        assert_eq!(service_filter(&[]), "");
        assert_eq!(service_filter(&["payments".to_owned()]), r#"{service="payments"}"#);
        assert_eq!(service_filter(&["a.b".to_owned(), "c\"d".to_owned()]), r#"{service=~"a\\.b|c\"d"}"#);
        let parsed = vigil_proto::alerts::parse_matchers(&service_filter(&["a.b".to_owned(), "c".to_owned()])).unwrap();
        assert_eq!((parsed[0].value.as_str(), parsed[0].operator()), (r"a\.b|c", "=~"));
    }
}
