//! The dashboard editor (`/dashboard/edit?uid=...`, or without a uid for a new dashboard): the
//! title, description, default range and refresh; the panels, row by row, with removal and
//! moves; a form that adds a panel (time series, stat, table or logs); and the whole JSON model,
//! editable as in Grafana's "JSON Model". Saving sends the version the edit started from: a
//! dashboard someone saved meanwhile is not overwritten (the server's 409 shows here).

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_query_map};
use vigil_proto::dashboards::{DashboardSpec, Panel, PanelKind, PanelQuery, Row};

use super::encode;
use crate::metrics::{SaveDashboard, stored_dashboard};

/// What a new dashboard starts as.
fn starter() -> DashboardSpec {
    DashboardSpec {
        title: "New dashboard".to_owned(),
        description: String::new(),
        tags: Vec::new(),
        variables: Vec::new(),
        range: "1h".to_owned(),
        refresh_seconds: None,
        rows: vec![Row { title: String::new(), collapsed: false, panels: Vec::new() }],
    }
}

fn kind_name(kind: &PanelKind) -> &'static str {
    match kind {
        PanelKind::TimeSeries { .. } => "time series",
        PanelKind::Stat { .. } => "stat",
        PanelKind::Table { .. } => "table",
        PanelKind::Logs { .. } => "logs",
    }
}

fn first_query(kind: &PanelKind) -> String {
    match kind {
        PanelKind::TimeSeries { queries, .. } => {
            queries.iter().map(|query| query.expr.as_str()).collect::<Vec<_>>().join(" · ")
        }
        PanelKind::Stat { query, .. } | PanelKind::Table { query } | PanelKind::Logs { query } => query.clone(),
    }
}

#[component]
pub fn DashboardEditPage() -> impl IntoView {
    let query = use_query_map();
    let uid = Memo::new(move |_| query.read().get("uid").unwrap_or_default());
    let loaded = Resource::new(
        move || uid.get(),
        |uid| async move {
            if uid.is_empty() {
                Ok((0, starter()))
            } else {
                stored_dashboard(uid).await.map(|dashboard| (dashboard.version, dashboard.spec))
            }
        },
    );
    view! {
        <Title text="Edit dashboard · Vigil"/>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                match loaded.await {
                    Ok((version, spec)) => view! { <Editor uid=uid.get_untracked() version spec/> }.into_any(),
                    Err(error) => view! { <h1>"Edit dashboard"</h1><p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Editor(uid: String, version: i64, spec: DashboardSpec) -> impl IntoView {
    let spec = RwSignal::new(spec);
    let save = ServerAction::<SaveDashboard>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(saved)) = save.value().get() {
            navigate(&format!("/dashboard?uid={}", encode(&saved.uid)), Default::default());
        }
    });
    let json_error = RwSignal::new(None::<String>);
    let json_text = RwSignal::new(String::new());
    Effect::new(move |_| json_text.set(serde_json::to_string_pretty(&spec.get()).unwrap_or_default()));
    let heading = if uid.is_empty() { "New dashboard" } else { "Edit dashboard" };
    // Interactive only once hydrated (effects run in the browser only).
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let cancel = if uid.is_empty() { "/dashboards".to_owned() } else { format!("/dashboard?uid={}", encode(&uid)) };
    let on_save = {
        let uid = uid.clone();
        move |_| {
            let json = serde_json::to_string(&spec.get_untracked()).unwrap_or_default();
            save.dispatch(SaveDashboard { uid: uid.clone(), version, spec: json });
        }
    };
    view! {
        <div class="dashboard-editor" data-hydrated=move || hydrated.get().to_string()>
        <div class="dashboard-head">
            <h1>{heading}</h1>
            <div class="dashboard-controls">
                <button class="save-dashboard" on:click=on_save disabled=move || save.pending().get()>"Save"</button>
                <a class="button" href=cancel>"Cancel"</a>
            </div>
        </div>
        {move || save.value().get().and_then(Result::err).map(|error| view! { <p class="error save-error">{error.to_string()}</p> })}
        <div class="form editor-settings">
            <label>"Title "
                <input class="dashboard-title" prop:value=move || spec.read().title.clone()
                    on:input=move |event| spec.update(|spec| spec.title = event_target_value(&event))/>
            </label>
            <label>"Description "
                <input class="dashboard-description" prop:value=move || spec.read().description.clone()
                    on:input=move |event| spec.update(|spec| spec.description = event_target_value(&event))/>
            </label>
            <label>"Tags "
                <input class="dashboard-tags" prop:value=move || spec.read().tags.join(", ")
                    on:change=move |event| spec.update(|spec| {
                        spec.tags = event_target_value(&event).split(',').map(str::trim).filter(|tag| !tag.is_empty()).map(str::to_owned).collect();
                    })/>
            </label>
            <label>"Default range "
                <input class="dashboard-range" prop:value=move || spec.read().range.clone()
                    on:input=move |event| spec.update(|spec| spec.range = event_target_value(&event))/>
            </label>
            <label>"Refresh (s) "
                <input class="dashboard-refresh" type="number" min="0"
                    prop:value=move || spec.read().refresh_seconds.map(|seconds| seconds.to_string()).unwrap_or_default()
                    on:input=move |event| spec.update(|spec| spec.refresh_seconds = event_target_value(&event).parse().ok().filter(|seconds| *seconds > 0))/>
            </label>
        </div>
        <h2>"Panels"</h2>
        <ol class="panel-items">
            {move || {
                spec.read()
                    .rows
                    .iter()
                    .enumerate()
                    .flat_map(|(row, content)| content.panels.iter().enumerate().map(move |(index, panel)| (row, index, panel.clone())))
                    .map(|(row, index, panel)| {
                        view! {
                            <li class="panel-item" data-title=panel.title.clone()>
                                <strong>{panel.title.clone()}</strong>
                                " "<span class="muted">{format!("{} · row {} · width {}", kind_name(&panel.kind), row + 1, panel.width)}</span>
                                " "<code>{first_query(&panel.kind)}</code>
                                <button class="move-up" on:click=move |_| spec.update(|spec| {
                                    if index > 0 { spec.rows[row].panels.swap(index, index - 1); }
                                })>"↑"</button>
                                <button class="move-down" on:click=move |_| spec.update(|spec| {
                                    if index + 1 < spec.rows[row].panels.len() { spec.rows[row].panels.swap(index, index + 1); }
                                })>"↓"</button>
                                <button class="remove-panel" on:click=move |_| spec.update(|spec| {
                                    spec.rows[row].panels.remove(index);
                                    if spec.rows[row].panels.is_empty() && spec.rows.len() > 1 { spec.rows.remove(row); }
                                })>"Remove"</button>
                            </li>
                        }
                    })
                    .collect_view()
            }}
        </ol>
        <AddPanel spec/>
        <h2>"JSON model"</h2>
        <textarea class="json-model" rows="16" prop:value=move || json_text.get()
            on:input=move |event| json_text.set(event_target_value(&event))></textarea>
        <button class="apply-json" on:click=move |_| {
            match serde_json::from_str::<DashboardSpec>(&json_text.get_untracked()) {
                Ok(parsed) => {
                    json_error.set(None);
                    spec.set(parsed);
                }
                Err(error) => json_error.set(Some(format!("not a dashboard: {error}"))),
            }
        }>"Apply JSON"</button>
        {move || json_error.get().map(|error| view! { <p class="error json-error">{error}</p> })}
        </div>
    }
}

/// A form adding one panel to the last row (or to a new row).
#[component]
fn AddPanel(spec: RwSignal<DashboardSpec>) -> impl IntoView {
    let title = RwSignal::new(String::new());
    let kind = RwSignal::new("time_series".to_owned());
    let query = RwSignal::new(String::new());
    let legend = RwSignal::new(String::new());
    let width = RwSignal::new("6".to_owned());
    let unit = RwSignal::new(String::new());
    let new_row = RwSignal::new(false);
    let problem = RwSignal::new(None::<&'static str>);
    let add = move |_| {
        let (panel_title, expr) = (title.get_untracked(), query.get_untracked());
        if panel_title.trim().is_empty() || expr.trim().is_empty() {
            problem.set(Some("a panel needs a title and a query"));
            return;
        }
        problem.set(None);
        let panel_kind = match kind.get_untracked().as_str() {
            "stat" => PanelKind::Stat { query: expr, thresholds: Vec::new() },
            "table" => PanelKind::Table { query: expr },
            "logs" => PanelKind::Logs { query: expr },
            _ => PanelKind::TimeSeries {
                queries: expr
                    .lines()
                    .filter(|line| !line.trim().is_empty())
                    .map(|line| PanelQuery { expr: line.trim().to_owned(), legend: legend.get_untracked() })
                    .collect(),
                stacked: false,
            },
        };
        let unit_value = unit.get_untracked();
        let panel = Panel {
            title: panel_title,
            kind: panel_kind,
            width: width.get_untracked().parse::<u8>().unwrap_or(6).clamp(1, 12),
            unit: (!unit_value.is_empty()).then_some(unit_value),
        };
        spec.update(|spec| {
            if new_row.get_untracked() || spec.rows.is_empty() {
                spec.rows.push(Row { title: String::new(), collapsed: false, panels: Vec::new() });
            }
            spec.rows.last_mut().expect("a row").panels.push(panel);
        });
        title.set(String::new());
        query.set(String::new());
        legend.set(String::new());
    };
    view! {
        <div class="form add-panel">
            <h3>"Add a panel"</h3>
            <label>"Title "<input class="panel-title" prop:value=title on:input=move |event| title.set(event_target_value(&event))/></label>
            <label>"Kind "
                <select class="panel-kind" on:change=move |event| kind.set(event_target_value(&event))>
                    <option value="time_series" selected=move || kind.get() == "time_series">"Time series"</option>
                    <option value="stat" selected=move || kind.get() == "stat">"Stat"</option>
                    <option value="table" selected=move || kind.get() == "table">"Table"</option>
                    <option value="logs" selected=move || kind.get() == "logs">"Logs"</option>
                </select>
            </label>
            <label>{move || if kind.get() == "logs" { "Log query " } else { "PromQL (one per line for time series) " }}
                <textarea class="panel-query" rows="3" prop:value=query on:input=move |event| query.set(event_target_value(&event))></textarea>
            </label>
            <label>"Legend "<input class="panel-legend" placeholder="{{instance}}" prop:value=legend on:input=move |event| legend.set(event_target_value(&event))/></label>
            <label>"Width (1–12) "<input class="panel-width" type="number" min="1" max="12" prop:value=width on:input=move |event| width.set(event_target_value(&event))/></label>
            <label>"Unit "
                <select class="panel-unit" on:change=move |event| unit.set(event_target_value(&event))>
                    {["", "s", "bytes", "percent", "percentunit", "reqps", "short"]
                        .into_iter()
                        .map(|value| view! { <option value=value>{if value.is_empty() { "none" } else { value }}</option> })
                        .collect_view()}
                </select>
            </label>
            <label><input type="checkbox" class="panel-new-row" prop:checked=new_row on:change=move |event| new_row.set(event_target_checked(&event))/>" On a new row"</label>
            <button class="add-panel-button" on:click=add>"Add panel"</button>
            {move || problem.get().map(|problem| view! { <p class="error">{problem}</p> })}
        </div>
    }
}
