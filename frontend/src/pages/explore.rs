//! The metrics explorer: a PromQL box with suggestions, a time range, lines or stacked areas,
//! a unit; the chart is uPlot (served from npm's package next to the bundle) driven through
//! wasm-bindgen: hover values in its legend, click a legend entry to hide a series, drag across
//! the chart to zoom (the zoomed range goes into the URL). The whole state is in the URL.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_query_map};
use vigil_proto::metrics::QueryResult;

use super::encode;
use crate::metrics::{metrics_range, promql_candidates};
use crate::promql;

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
                    view! { <Chart result names unit=explore.unit.clone() stacked=explore.stacked zoom/> }
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
    }
}

/// A time-series chart: `names[i]` labels `result.series[i]`; dragging across it calls `zoom`
/// with the selected span (Unix seconds).
#[component]
pub fn Chart(
    result: QueryResult,
    names: Vec<String>,
    #[prop(into)] unit: String,
    stacked: bool,
    zoom: Callback<(f64, f64)>,
) -> impl IntoView {
    let (xs, columns) = chart_data(&result, stacked);
    let points = columns.iter().map(|column| column.iter().filter(|value| value.is_some()).count()).sum::<usize>();
    let node = NodeRef::<leptos::html::Div>::new();
    let step = result.step_seconds.unwrap_or_default();
    #[cfg(feature = "hydrate")]
    {
        let names = names.clone();
        let unit = unit.clone();
        Effect::new(move |_| {
            if let Some(element) = node.get() {
                uplot::draw(&element, &xs, &columns, &names, &unit, stacked, move |from: f64, to: f64| {
                    zoom.run((from, to))
                });
            }
        });
    }
    #[cfg(not(feature = "hydrate"))]
    let _ = (&xs, &columns, &unit, &zoom);
    view! {
        <div class="chart-panel">
            <div class="chart" node_ref=node data-series=names.len() data-points=points data-step=step></div>
            <ul class="chart-series">
                {names.into_iter().map(|name| view! { <li>{name}</li> }).collect_view()}
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

    const COLORS: [&str; 10] =
        ["#4e9cf5", "#f5a623", "#4caf50", "#e0555a", "#9c6ade", "#26c6da", "#ffca28", "#ec407a", "#8d6e63", "#78909c"];

    fn set(target: &JsValue, key: &str, value: &JsValue) {
        let _ = js_sys::Reflect::set(target, &JsValue::from_str(key), value);
    }

    pub fn draw(
        element: &web_sys::HtmlDivElement,
        xs: &[f64],
        columns: &[Vec<Option<f64>>],
        names: &[String],
        unit: &str,
        stacked: bool,
        zoom: impl Fn(f64, f64) + 'static,
    ) {
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
        let series = js_sys::Reflect::get(&options, &JsValue::from_str("series")).unwrap_or(JsValue::UNDEFINED);
        let series: js_sys::Array = series.unchecked_into();
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
        if let Ok(axes) = js_sys::Reflect::get(&options, &JsValue::from_str("axes")) {
            let axes: js_sys::Array = axes.unchecked_into();
            set(&axes.get(1), "values", ticks.as_ref());
        }
        ticks.forget();
        // Dragging selects a span of the x axis: it becomes the page's range.
        let select = Closure::<dyn Fn(JsValue)>::new(move |plot: JsValue| {
            let get = |target: &JsValue, key: &str| {
                js_sys::Reflect::get(target, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
            };
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
        set(&options, "hooks", &hooks);
        select.forget();
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

    #[test]
    fn values_carry_their_unit() {
        assert_eq!(format_value(0.25, "s"), "250 ms");
        assert_eq!(format_value(3.0 * 1048576.0, "bytes"), "3 MiB");
        assert_eq!(format_value(0.123, "percentunit"), "12.3 %");
        assert_eq!(format_value(1500.0, ""), "1.5 k");
        assert_eq!(format_value(10.000000001, ""), "10");
    }
}
