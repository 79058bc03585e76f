//! The metrics explorer: a PromQL box with suggestions, a time range, lines or stacked areas,
//! a unit; the chart is uPlot (served from npm's package next to the bundle) driven through
//! wasm-bindgen: hover values in its legend, click a legend entry to hide a series, drag across
//! the chart to zoom (the zoomed range goes into the URL). The whole state is in the URL.
//!
//! The chart (also the dashboards' and the rule editor's) marks spans of time as bands over its
//! plot: when alerts fired (one request for the chart's range, merged per alertname), or when a
//! rule being edited would have fired; and a threshold as a dashed line.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_query_map};
use vigil_proto::alerts::AlertAnnotation;
use vigil_proto::metrics::QueryResult;
use vigil_proto::rollouts::{DeployAnnotation, RolloutKind};
use vigil_proto::{RelativeRange, Timestamp};

use super::encode;
use crate::alerts::alert_annotations;
use crate::metrics::{metrics_range, promql_candidates};
use crate::promql;
use crate::rollouts::deploy_annotations;

const RANGES: [(&str, &str); 6] = [
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
    ("6h", "6 hours"),
    ("24h", "24 hours"),
    ("7d", "7 days"),
    ("30d", "30 days"),
];
const UNITS: [(&str, &str); 5] = [
    ("", "no unit"),
    ("s", "seconds"),
    ("bytes", "bytes"),
    ("percent", "percent (0–100)"),
    ("percentunit", "ratio (0–1)"),
];

#[derive(Clone, PartialEq, Eq, Default)]
struct Explore {
    q: String,
    range: String,
    start: String,
    end: String,
    stacked: bool,
    unit: String,
}

// The URL is built in the browser (after a drag zoom); the server renders from it only.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
impl Explore {
    fn url(&self) -> String {
        let mut url = format!("/explore?q={}", encode(&self.q));
        if self.start.is_empty() && self.end.is_empty() {
            url.push_str(&format!("&range={}", encode(&self.range)));
        } else {
            url.push_str(&format!("&start={}&end={}", encode(&self.start), encode(&self.end)));
        }
        if self.stacked {
            url.push_str("&mode=stacked");
        }
        if !self.unit.is_empty() {
            url.push_str(&format!("&unit={}", encode(&self.unit)));
        }
        url
    }
}

/// A value with its unit, for the axis and the legend.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub fn format_value(value: f64, unit: &str) -> String {
    let scaled = |value: f64, steps: &[(f64, &str)]| {
        let (divisor, suffix) =
            steps.iter().rev().find(|(divisor, _)| value.abs() >= *divisor).copied().unwrap_or(steps[0]);
        let shown = value / divisor;
        let digits = if shown.abs() >= 100.0 {
            0
        } else if shown.abs() >= 10.0 {
            1
        } else {
            2
        };
        let mut number = format!("{shown:.digits$}");
        if number.contains('.') {
            number = number.trim_end_matches('0').trim_end_matches('.').to_owned();
        }
        format!("{number} {suffix}").trim_end().to_owned()
    };
    match unit {
        "s" => scaled(value, &[(1e-6, "µs"), (1e-3, "ms"), (1.0, "s"), (60.0, "min"), (3600.0, "h")]),
        "bytes" => scaled(
            value,
            &[(1.0, "B"), (1024.0, "KiB"), (1048576.0, "MiB"), (1073741824.0, "GiB"), (1099511627776.0, "TiB")],
        ),
        "percent" => format!("{value:.1} %"),
        "percentunit" => format!("{:.1} %", value * 100.0),
        _ => scaled(value, &[(1.0, ""), (1e3, "k"), (1e6, "M"), (1e9, "G")]),
    }
}

/// The chart's data in uPlot's shape: one shared x axis (Unix seconds) and one array per
/// series, `null` where a series has no point; stacked, each series adds the ones before.
pub fn chart_data(result: &QueryResult, stacked: bool) -> (Vec<f64>, Vec<Vec<Option<f64>>>) {
    let mut xs: Vec<f64> = result.series.iter().flat_map(|series| series.points.iter().map(|(t, _)| *t)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    let mut columns: Vec<Vec<Option<f64>>> = result
        .series
        .iter()
        .map(|series| {
            let mut column = vec![None; xs.len()];
            for (t, value) in &series.points {
                if let Ok(index) = xs.binary_search_by(|x| x.total_cmp(t)) {
                    column[index] = *value;
                }
            }
            column
        })
        .collect();
    if stacked {
        for index in 1..columns.len() {
            let (before, rest) = columns.split_at_mut(index);
            for (slot, below) in rest[0].iter_mut().zip(&before[index - 1]) {
                if let (Some(value), Some(below)) = (slot.as_mut(), below) {
                    *value += below;
                }
            }
        }
    }
    (xs, columns)
}

/// `name{a="b", c="d"}`, or `{}` for a series without labels.
pub fn series_name(labels: &std::collections::BTreeMap<String, String>) -> String {
    let name = labels.get("__name__").cloned().unwrap_or_default();
    let rest: Vec<String> =
        labels.iter().filter(|(key, _)| *key != "__name__").map(|(key, value)| format!("{key}=\"{value}\"")).collect();
    if rest.is_empty() && !name.is_empty() { name } else { format!("{name}{{{}}}", rest.join(", ")) }
}

/// A span of time marked on a chart, from `start` to `end` (Unix seconds; to the right edge
/// while `end` is absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Band {
    pub start: f64,
    pub end: Option<f64>,
    /// Written on the band.
    pub label: String,
    /// What hovering over it says.
    pub title: String,
    /// `alert-band` (alerts that fired), `firing-span` (where a rule would have fired) or
    /// `deploy-band` (a rollout).
    pub class: &'static str,
}

/// A horizontal line across a chart (a rule's threshold), with its legend.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    pub value: f64,
    pub label: String,
}

fn seconds(at: Timestamp) -> f64 {
    at.as_unix_nanos() as f64 / 1e9
}

/// The firings of alerts of one name that overlap, merged, while bands are made.
struct Stretch<'a> {
    start: f64,
    /// Open while one of them still fires.
    end: Option<f64>,
    fingerprints: Vec<&'a str>,
}

impl Stretch<'_> {
    fn into_band(mut self, name: &str) -> Band {
        self.fingerprints.sort_unstable();
        self.fingerprints.dedup();
        let state = if self.end.is_none() { "firing" } else { "fired" };
        let title = match self.fingerprints.len() {
            1 => format!("{name} {state}"),
            count => format!("{name} {state} ({count} alerts)"),
        };
        Band { start: self.start, end: self.end, label: name.to_owned(), title, class: "alert-band" }
    }
}

/// Alert annotations as bands: one per alertname and stretch of time in which some alert of
/// that name fired (overlapping firings merged), so that many alerts stay readable.
pub fn alert_bands(annotations: &[AlertAnnotation]) -> Vec<Band> {
    let mut by_name: BTreeMap<&str, Vec<&AlertAnnotation>> = BTreeMap::new();
    for annotation in annotations {
        by_name.entry(annotation.labels.get("alertname").map_or("", String::as_str)).or_default().push(annotation);
    }
    let mut bands = Vec::new();
    for (name, mut firings) in by_name {
        firings.sort_by_key(|annotation| annotation.start);
        let mut current: Option<Stretch<'_>> = None;
        for annotation in firings {
            let (start, end) = (seconds(annotation.start), annotation.end.map(seconds));
            match &mut current {
                Some(stretch) if stretch.end.is_none_or(|stretch_end| start <= stretch_end) => {
                    stretch.end = stretch.end.zip(end).map(|(stretch_end, end)| stretch_end.max(end));
                    stretch.fingerprints.push(&annotation.fingerprint);
                }
                _ => {
                    if let Some(done) = current.take() {
                        bands.push(done.into_band(name));
                    }
                    current = Some(Stretch { start, end, fingerprints: vec![&annotation.fingerprint] });
                }
            }
        }
        if let Some(done) = current {
            bands.push(done.into_band(name));
        }
    }
    bands
}

/// Rollouts as bands from their start to their end (open while they run), oldest first.
pub fn deploy_bands(annotations: &[DeployAnnotation]) -> Vec<Band> {
    let mut bands: Vec<Band> = annotations
        .iter()
        .map(|deploy| {
            let what = match deploy.kind {
                RolloutKind::Deploy => "deploy",
                RolloutKind::Rollback => "rollback",
            };
            let label = format!("{what} {} {}", deploy.service, deploy.version);
            let title = format!(
                "{what} of {} {} to {} (rollout {}): {}",
                deploy.service,
                deploy.environment,
                deploy.version,
                deploy.rollout_id,
                deploy.state.as_str().replace('_', " ")
            );
            Band { start: seconds(deploy.start), end: deploy.end.map(seconds), label, title, class: "deploy-band" }
        })
        .collect();
    bands.sort_by(|one, other| one.start.total_cmp(&other.start));
    bands
}

/// The absolute span (RFC 3339 start and end) of a chart's range as the URL holds it: a
/// relative `range` back from `now_nanos`, or `start` and `end` (which take precedence; an
/// absent end is now, an absent start an hour before the end), as the range queries read it.
pub fn absolute_range(range: &str, start: &str, end: &str, now_nanos: i64) -> Option<(String, String)> {
    let parse = |text: &str| -> Result<Option<Timestamp>, ()> {
        match text.trim() {
            "" => Ok(None),
            text => text.parse().map(Some).map_err(|_| ()),
        }
    };
    let now = Timestamp::from_unix_nanos(now_nanos).ok()?;
    let (start, end) = match (parse(start).ok()?, parse(end).ok()?) {
        (None, None) => {
            let range: RelativeRange = range.parse().ok()?;
            (now.saturating_add_nanos(-range.as_nanos()), now)
        }
        (start, end) => {
            let end = end.unwrap_or(now);
            (start.unwrap_or_else(|| end.saturating_add_nanos(-3_600_000_000_000)), end)
        }
    };
    Some((start.to_rfc3339(), end.to_rfc3339()))
}

/// What a chart's alerts are asked for: its range as the URL holds it, and a selector of the
/// alerts wanted (all when empty).
#[derive(Debug, Clone, PartialEq)]
pub struct BandsQuery {
    pub range: String,
    pub start: String,
    pub end: String,
    pub filter: String,
}

/// The alerts of a chart, as bands, and why they are missing when they are.
#[derive(Clone, Copy)]
pub struct AlertBands {
    pub bands: RwSignal<Vec<Band>>,
    pub error: RwSignal<Option<String>>,
}

/// Keeps the bands of the alerts that fired in a chart's range current: fetched in the browser
/// (the server renders no chart) whenever `query` changes, one request per range whatever the
/// number of series; the newest answer wins. No query, no bands.
pub fn watch_alert_bands(query: impl Fn() -> Option<BandsQuery> + 'static) -> AlertBands {
    let bands = RwSignal::new(Vec::new());
    let error = RwSignal::new(None);
    let asked = StoredValue::new(0_u64);
    Effect::new(move |_| {
        let Some(query) = query() else {
            bands.set(Vec::new());
            return;
        };
        let this = asked.get_value() + 1;
        asked.set_value(this);
        leptos::task::spawn_local(async move {
            let result = match absolute_range(&query.range, &query.start, &query.end, super::now_nanos()) {
                Some((start, end)) => {
                    let alerts = alert_annotations(start.clone(), end.clone(), query.filter.clone()).await;
                    let deploys = deploy_annotations(start, end, query.filter).await;
                    alerts.and_then(|alerts| Ok((alerts, deploys?)))
                }
                None => Ok((Vec::new(), Vec::new())),
            };
            if asked.get_value() != this {
                return;
            }
            match result {
                Ok((alerts, deploys)) => {
                    let mut shown = alert_bands(&alerts);
                    shown.extend(deploy_bands(&deploys));
                    bands.set(shown);
                    error.set(None);
                }
                Err(failure) => error.set(Some(failure.to_string())),
            }
        });
    });
    AlertBands { bands, error }
}

/// Why a chart shows no alerts, under it (alerts are an extra: the chart stands without them).
#[component]
pub fn BandsError(error: RwSignal<Option<String>>) -> impl IntoView {
    move || {
        error.get().map(|error| view! { <p class="error annotations-error">{format!("alerts not shown: {error}")}</p> })
    }
}

#[component]
pub fn MetricsPage() -> impl IntoView {
    let query = use_query_map();
    let explore = Memo::new(move |_| {
        let query = query.read();
        Explore {
            q: query.get("q").unwrap_or_default(),
            range: query.get("range").filter(|range| !range.is_empty()).unwrap_or_else(|| "1h".to_owned()),
            start: query.get("start").unwrap_or_default(),
            end: query.get("end").unwrap_or_default(),
            stacked: query.get("mode").as_deref() == Some("stacked"),
            unit: query.get("unit").unwrap_or_default(),
        }
    });
    let result = Resource::new(
        move || {
            let explore = explore.get();
            (explore.q, explore.range, explore.start, explore.end)
        },
        |(q, range, start, end)| metrics_range(q, range, start, end),
    );
    // Completion of what is being typed: names, label names inside braces, label values.
    let draft = RwSignal::new(String::new());
    Effect::new(move |_| draft.set(explore.read().q.clone()));
    let context = Memo::new(move |_| match promql::context(&draft.read()) {
        promql::Completion::Metric { .. } => ("metric".to_owned(), String::new(), String::new()),
        promql::Completion::LabelName { metric, .. } => ("label".to_owned(), metric, String::new()),
        promql::Completion::LabelValue { metric, label, .. } => ("value".to_owned(), metric, label),
    });
    let candidates =
        Resource::new(move || context.get(), |(kind, metric, label)| promql_candidates(kind, metric, label));
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let absolute = move || !explore.read().start.is_empty() || !explore.read().end.is_empty();
    // The last chart shown, kept on screen when the next query fails.
    let shown = StoredValue::new(None::<(QueryResult, Explore)>);
    // When alerts fired in the range, drawn over the chart.
    let alerts = watch_alert_bands(move || {
        let explore = explore.get();
        (!explore.q.trim().is_empty()).then(|| BandsQuery {
            range: explore.range,
            start: explore.start,
            end: explore.end,
            filter: String::new(),
        })
    });
    let bands = Signal::from(alerts.bands);

    view! {
        <Title text="Metrics · Vigil"/>
        <h1>"Metrics"</h1>
        <Form method="GET" action="/explore">
            <div class="search-bar explore-bar" data-hydrated=move || hydrated.get().to_string()>
                <input
                    type="search"
                    name="q"
                    class="query promql"
                    list="metric-suggestions"
                    autocomplete="off"
                    placeholder="sum by (code) (rate(http_requests_total[5m]))"
                    prop:value=move || explore.read().q.clone()
                    on:input=move |event| draft.set(event_target_value(&event))
                />
                <datalist id="metric-suggestions">
                    <Suspense fallback=|| ()>
                        {move || {
                            candidates.get().and_then(Result::ok).map(|candidates| {
                                promql::completions(&draft.read(), &candidates, 50)
                                    .into_iter()
                                    .map(|completion| view! { <option value=completion/> })
                                    .collect_view()
                            })
                        }}
                    </Suspense>
                </datalist>
                <select name="range" class="range">
                    {RANGES
                        .into_iter()
                        .map(|(value, label)| {
                            view! { <option value=value selected=move || !absolute() && explore.read().range == value>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <select name="mode" class="mode">
                    <option value="lines" selected=move || !explore.read().stacked>"lines"</option>
                    <option value="stacked" selected=move || explore.read().stacked>"stacked"</option>
                </select>
                <select name="unit" class="unit">
                    {UNITS
                        .into_iter()
                        .map(|(value, label)| view! { <option value=value selected=move || explore.read().unit == value>{label}</option> })
                        .collect_view()}
                </select>
                <button type="submit">"Run"</button>
            </div>
        </Form>
        <Transition fallback=|| view! { <p class="loading">"Querying…"</p> }>
            {move || Suspend::new(async move {
                let explore = explore.get_untracked();
                let chart = move |result: QueryResult, explore: Explore| {
                    let names = result.series.iter().map(|series| series_name(&series.labels)).collect();
                    let navigate = use_navigate();
                    let zoom = Callback::new({
                        let explore = explore.clone();
                        move |(from, to): (f64, f64)| {
                            let (start, end) = zoomed_range(from, to);
                            navigate(&Explore { start, end, ..explore.clone() }.url(), Default::default());
                        }
                    });
                    view! { <Chart result names unit=explore.unit.clone() stacked=explore.stacked zoom bands/> }
                };
                match result.await {
                    // A query that fails leaves the last chart on the page, under its error.
                    Err(error) => {
                        let previous = shown
                            .get_value()
                            .map(|(result, explore)| view! { <div class="previous-results">{chart(result, explore)}</div> });
                        view! { <super::QueryError error query=explore.q.clone()/> {previous} }.into_any()
                    }
                    Ok(result) if explore.q.trim().is_empty() => {
                        let _ = result;
                        view! { <p class="placeholder">"Type a PromQL expression and run it."</p> }.into_any()
                    }
                    Ok(result) if result.series.is_empty() => {
                        view! { <p class="placeholder no-data">"No data in this range."</p> }.into_any()
                    }
                    Ok(result) => {
                        shown.set_value(Some((result.clone(), explore.clone())));
                        chart(result, explore).into_any()
                    }
                }
            })}
        </Transition>
        <BandsError error=alerts.error/>
    }
}

/// A time-series chart: `names[i]` labels `result.series[i]`; dragging across it calls `zoom`
/// with the selected span (Unix seconds). `bands` are drawn over the plot (redrawn when they
/// change), `threshold` as a dashed line.
#[component]
pub fn Chart(
    result: QueryResult,
    names: Vec<String>,
    #[prop(into)] unit: String,
    stacked: bool,
    zoom: Callback<(f64, f64)>,
    #[prop(optional, into)] bands: Signal<Vec<Band>>,
    #[prop(optional)] threshold: Option<Threshold>,
) -> impl IntoView {
    let (xs, columns) = chart_data(&result, stacked);
    let points = columns.iter().map(|column| column.iter().filter(|value| value.is_some()).count()).sum::<usize>();
    let node = NodeRef::<leptos::html::Div>::new();
    let step = result.step_seconds.unwrap_or_default();
    let threshold_value = threshold.as_ref().map(|threshold| threshold.value);
    #[cfg(feature = "hydrate")]
    {
        let names = names.clone();
        let unit = unit.clone();
        let threshold = threshold.clone();
        Effect::new(move |_| {
            let bands = bands.get();
            if let Some(element) = node.get() {
                let series = uplot::Series { xs: &xs, columns: &columns, names: &names, threshold: threshold.as_ref() };
                uplot::draw(&element, &series, &unit, stacked, bands, move |from: f64, to: f64| zoom.run((from, to)));
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&xs, &columns, &unit, &zoom, &bands);
    view! {
        <div class="chart-panel">
            <div class="chart" node_ref=node data-series=names.len() data-points=points data-step=step
                data-threshold=threshold_value></div>
            <ul class="chart-series">
                {names.into_iter().map(|name| view! { <li>{name}</li> }).collect_view()}
                {threshold.map(|threshold| view! { <li class="threshold">{threshold.label}</li> })}
            </ul>
        </div>
    }
}

/// An absolute range from a drag: RFC 3339 start and end.
pub fn zoomed_range(from: f64, to: f64) -> (String, String) {
    let to_rfc3339 = |seconds: f64| {
        vigil_proto::Timestamp::from_unix_nanos((seconds * 1e9) as i64).map(|at| at.to_rfc3339()).unwrap_or_default()
    };
    (to_rfc3339(from), to_rfc3339(to))
}

/// uPlot, through wasm-bindgen; the browser only.
#[cfg(feature = "hydrate")]
mod uplot {
    use wasm_bindgen::JsCast;
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen]
    extern "C" {
        #[wasm_bindgen(js_name = uPlot)]
        type UPlot;

        #[wasm_bindgen(constructor, js_class = "uPlot")]
        fn new(options: &JsValue, data: &JsValue, target: &web_sys::Element) -> UPlot;
    }

    use std::rc::Rc;

    use super::{Band, Threshold};

    const COLORS: [&str; 10] =
        ["#4e9cf5", "#f5a623", "#4caf50", "#e0555a", "#9c6ade", "#26c6da", "#ffca28", "#ec407a", "#8d6e63", "#78909c"];
    const THRESHOLD_COLOR: &str = "#ff6b6b";

    fn set(target: &JsValue, key: &str, value: &JsValue) {
        let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
    }

    fn get(target: &JsValue, key: &str) -> JsValue {
        js_sys::Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }

    /// What the chart plots: the x axis, one column per named series, and a threshold.
    pub struct Series<'a> {
        pub xs: &'a [f64],
        pub columns: &'a [Vec<Option<f64>>],
        pub names: &'a [String],
        pub threshold: Option<&'a Threshold>,
    }

    /// A position on the x axis in CSS pixels of the plotting area, from a value.
    fn x_position(plot: &JsValue, value: f64) -> Option<f64> {
        let position: js_sys::Function = get(plot, "valToPos").dyn_into().ok()?;
        position.call2(plot, &JsValue::from_f64(value), &JsValue::from_str("x")).ok()?.as_f64()
    }

    /// (Re)places the bands, as elements under the plot's canvas (so the lines stay on top and
    /// the cursor and drag zoom keep working): after every draw (data, zoom, size).
    fn place_bands(plot: &JsValue, bands: &[Band]) {
        let Ok(under) = get(plot, "under").dyn_into::<web_sys::HtmlElement>() else { return };
        let Some(document) = under.owner_document() else { return };
        while let Ok(Some(old)) = under.query_selector(".chart-band") {
            old.remove();
        }
        let width = f64::from(under.client_width());
        for band in bands {
            let Some(left) = x_position(plot, band.start) else { continue };
            let right = band.end.and_then(|end| x_position(plot, end)).unwrap_or(width);
            if right < 0.0 || left > width {
                continue;
            }
            // An instant still shows, two pixels wide, inside the plot (one at its right edge
            // too).
            let right = right.clamp(0.0, width).max(left.clamp(0.0, width) + 2.0).min(width.max(2.0));
            let left = left.clamp(0.0, width).min(right - 2.0).max(0.0);
            let Ok(element) = document.create_element("div") else { continue };
            element.set_class_name(&format!("chart-band {}", band.class));
            let _ = element.set_attribute("data-label", &band.label);
            let _ = element.set_attribute("data-open", if band.end.is_none() { "true" } else { "false" });
            let _ = element.set_attribute("style", &format!("left: {left:.1}px; width: {:.1}px", right - left));
            if let Ok(label) = document.create_element("span") {
                label.set_class_name("chart-band-label");
                label.set_text_content(Some(&band.label));
                let _ = element.append_child(&label);
            }
            let _ = under.append_child(&element);
        }
    }

    /// The hover's tooltip: the bands under the cursor.
    fn describe_bands_at_cursor(plot: &JsValue, bands: &[Band]) {
        let Ok(over) = get(plot, "over").dyn_into::<web_sys::HtmlElement>() else { return };
        let left = get(&get(plot, "cursor"), "left").as_f64().unwrap_or(-1.0);
        let value = (left >= 0.0)
            .then(|| get(plot, "posToVal").dyn_into::<js_sys::Function>().ok())
            .flatten()
            .and_then(|position| position.call2(plot, &JsValue::from_f64(left), &JsValue::from_str("x")).ok())
            .and_then(|value| value.as_f64());
        let titles: Vec<&str> = value
            .map(|value| {
                bands
                    .iter()
                    .filter(|band| band.start <= value && band.end.is_none_or(|end| value <= end))
                    .map(|band| band.title.as_str())
                    .collect()
            })
            .unwrap_or_default();
        if titles.is_empty() {
            let _ = over.remove_attribute("title");
        } else {
            let _ = over.set_attribute("title", &titles.join("\n"));
        }
    }

    pub fn draw(
        element: &web_sys::HtmlDivElement,
        series: &Series<'_>,
        unit: &str,
        stacked: bool,
        bands: Vec<Band>,
        zoom: impl Fn(f64, f64) + 'static,
    ) {
        let Series { xs, columns, names, threshold } = *series;
        element.set_inner_html("");
        let data = js_sys::Array::new();
        data.push(&js_sys::Float64Array::from(xs).into());
        for column in columns {
            let values = js_sys::Array::new();
            for value in column {
                values.push(&value.map_or(JsValue::NULL, JsValue::from_f64));
            }
            data.push(&values);
        }
        if let Some(threshold) = threshold {
            data.push(&js_sys::Float64Array::from(&vec![threshold.value; xs.len()][..]).into());
        }
        let width = element.client_width().max(200);
        let options = serde_json::json!({
            "width": width,
            "height": 320,
            "cursor": {"drag": {"x": true, "y": false}},
            "legend": {"live": true},
            "axes": [{"stroke": "#9aa4b2"}, {"stroke": "#9aa4b2", "size": 70}],
            "series": [{}],
        });
        let Ok(options) = js_sys::JSON::parse(&options.to_string()) else { return };
        let series: js_sys::Array = get(&options, "series").unchecked_into();
        let unit_for_values = unit.to_owned();
        let format = Closure::<dyn Fn(JsValue, JsValue) -> JsValue>::new(move |_plot: JsValue, value: JsValue| {
            value.as_f64().map_or(JsValue::from_str("—"), |value| {
                JsValue::from_str(&super::format_value(value, &unit_for_values))
            })
        });
        for (index, name) in names.iter().enumerate() {
            let color = COLORS[index % COLORS.len()];
            let entry = js_sys::Object::new();
            set(&entry, "label", &JsValue::from_str(name));
            set(&entry, "stroke", &JsValue::from_str(color));
            set(&entry, "width", &JsValue::from_f64(1.5));
            set(&entry, "spanGaps", &JsValue::FALSE);
            set(&entry, "value", format.as_ref());
            if stacked {
                set(&entry, "fill", &JsValue::from_str(&format!("{color}33")));
            }
            series.push(&entry);
        }
        if let Some(threshold) = threshold {
            let entry = js_sys::Object::new();
            set(&entry, "label", &JsValue::from_str(&threshold.label));
            set(&entry, "class", &JsValue::from_str("threshold"));
            set(&entry, "stroke", &JsValue::from_str(THRESHOLD_COLOR));
            set(&entry, "width", &JsValue::from_f64(1.5));
            let dash = js_sys::Array::of2(&JsValue::from_f64(6.0), &JsValue::from_f64(4.0));
            set(&entry, "dash", &dash);
            set(&entry, "value", format.as_ref());
            series.push(&entry);
        }
        format.forget();
        let unit_for_axis = unit.to_owned();
        let ticks = Closure::<dyn Fn(JsValue, JsValue) -> JsValue>::new(move |_plot: JsValue, splits: JsValue| {
            let splits: js_sys::Array = splits.unchecked_into();
            splits
                .iter()
                .map(|split| {
                    JsValue::from_str(
                        &split.as_f64().map(|v| super::format_value(v, &unit_for_axis)).unwrap_or_default(),
                    )
                })
                .collect::<js_sys::Array>()
                .into()
        });
        let axes: js_sys::Array = get(&options, "axes").unchecked_into();
        set(&axes.get(1), "values", ticks.as_ref());
        ticks.forget();
        // Dragging selects a span of the x axis: it becomes the page's range.
        let select = Closure::<dyn Fn(JsValue)>::new(move |plot: JsValue| {
            let selection = get(&plot, "select");
            let (left, width) =
                (get(&selection, "left").as_f64().unwrap_or(0.0), get(&selection, "width").as_f64().unwrap_or(0.0));
            if width < 2.0 {
                return;
            }
            let position = get(&plot, "posToVal");
            let Ok(position) = position.dyn_into::<js_sys::Function>() else { return };
            let value = |pixels: f64| {
                position
                    .call2(&plot, &JsValue::from_f64(pixels), &JsValue::from_str("x"))
                    .ok()
                    .and_then(|value| value.as_f64())
            };
            if let (Some(from), Some(to)) = (value(left), value(left + width)) {
                zoom(from, to);
            }
        });
        let hooks = js_sys::Object::new();
        let handlers = js_sys::Array::new();
        handlers.push(select.as_ref());
        set(&hooks, "setSelect", &handlers);
        select.forget();
        if !bands.is_empty() {
            let bands = Rc::new(bands);
            let placed = Rc::clone(&bands);
            let place = Closure::<dyn Fn(JsValue)>::new(move |plot: JsValue| place_bands(&plot, &placed));
            set(&hooks, "draw", &js_sys::Array::of1(place.as_ref()));
            place.forget();
            let hover = Closure::<dyn Fn(JsValue)>::new(move |plot: JsValue| describe_bands_at_cursor(&plot, &bands));
            set(&hooks, "setCursor", &js_sys::Array::of1(hover.as_ref()));
            hover.forget();
        }
        set(&options, "hooks", &hooks);
        let _chart = UPlot::new(&options, &data, element);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_proto::metrics::QuerySeries;

    #[test]
    fn series_share_one_axis_and_stack_in_order() {
        let result = QueryResult {
            result_type: "matrix".to_owned(),
            series: vec![
                QuerySeries { labels: Default::default(), points: vec![(10.0, Some(1.0)), (20.0, Some(2.0))] },
                QuerySeries { labels: Default::default(), points: vec![(20.0, Some(5.0)), (30.0, None)] },
            ],
            step_seconds: Some(10.0),
        };
        let (xs, lines) = chart_data(&result, false);
        assert_eq!(xs, [10.0, 20.0, 30.0]);
        assert_eq!(lines, [vec![Some(1.0), Some(2.0), None], vec![None, Some(5.0), None]]);
        let (_, stacked) = chart_data(&result, true);
        assert_eq!(stacked[1], [None, Some(7.0), None]);
    }

    fn annotation(fingerprint: &str, name: &str, start: i64, end: Option<i64>) -> AlertAnnotation {
        let at = |seconds: i64| Timestamp::from_unix_nanos(seconds * 1_000_000_000).unwrap();
        AlertAnnotation {
            fingerprint: fingerprint.to_owned(),
            labels: [("alertname".to_owned(), name.to_owned())].into(),
            start: at(start),
            end: end.map(at),
        }
    }

    #[test]
    fn alerts_of_one_name_merge_into_one_band_where_they_overlap() {
        let bands = alert_bands(&[
            annotation("a", "DiskFull", 100, Some(200)),
            annotation("b", "DiskFull", 150, Some(300)),
            annotation("a", "DiskFull", 400, Some(500)),
            annotation("c", "Latency", 120, None),
            annotation("d", "Latency", 600, Some(700)),
        ]);
        let shown: Vec<(&str, f64, Option<f64>, &str)> =
            bands.iter().map(|band| (band.label.as_str(), band.start, band.end, band.title.as_str())).collect();
        assert_eq!(
            shown,
            [
                ("DiskFull", 100.0, Some(300.0), "DiskFull fired (2 alerts)"),
                ("DiskFull", 400.0, Some(500.0), "DiskFull fired"),
                // Still firing: open to the right, and it swallows what starts later.
                ("Latency", 120.0, None, "Latency firing (2 alerts)"),
            ]
        );
        assert!(bands.iter().all(|band| band.class == "alert-band"));
    }

    #[test]
    fn chart_ranges_resolve_as_the_range_queries_do() {
        let now = 1_700_000_000 * 1_000_000_000;
        let (start, end) = absolute_range("15m", "", "", now).unwrap();
        assert_eq!((start.as_str(), end.as_str()), ("2023-11-14T21:58:20Z", "2023-11-14T22:13:20Z"));
        let (start, end) = absolute_range("1h", "2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z", now).unwrap();
        assert_eq!((start.as_str(), end.as_str()), ("2024-01-01T10:00:00Z", "2024-01-01T11:00:00Z"));
        let (start, _) = absolute_range("1h", "", "2024-01-01T11:00:00Z", now).unwrap();
        assert_eq!(start, "2024-01-01T10:00:00Z");
        assert_eq!(absolute_range("soon", "", "", now), None);
        assert_eq!(absolute_range("1h", "yesterday", "", now), None);
    }

    #[test]
    fn values_carry_their_unit() {
        assert_eq!(format_value(0.25, "s"), "250 ms");
        assert_eq!(format_value(3.0 * 1048576.0, "bytes"), "3 MiB");
        assert_eq!(format_value(0.123, "percentunit"), "12.3 %");
        assert_eq!(format_value(1500.0, ""), "1.5 k");
        assert_eq!(format_value(10.000000001, ""), "10");
    }
}
