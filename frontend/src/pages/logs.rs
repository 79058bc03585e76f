//! The Logs explorer. Its whole state is in the URL (`/logs?q=&range=` or `&start=&end=`): a
//! query box whose syntax errors show under it, a relative or absolute time range, a volume
//! histogram stacked by level (drag across it to zoom), and the newest matching records, each
//! expandable to its attributes and context, with more pages loaded through the cursor.

use leptos::prelude::*;

use super::{QueryError, encode};
use leptos::task::spawn_local;
use leptos_router::NavigateOptions;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_query_map};
use vigil_proto::{LogContext, LogHistogram, LogHit, LogPage, TailFrame};

use crate::logs::{fetch_context, fetch_histogram, search_logs};

const RANGES: [(&str, &str); 6] = [
    ("15m", "Last 15 minutes"),
    ("1h", "Last hour"),
    ("6h", "Last 6 hours"),
    ("24h", "Last 24 hours"),
    ("7d", "Last 7 days"),
    ("30d", "Last 30 days"),
];
const DEFAULT_RANGE: &str = "1h";
const PAGE_SIZE: u32 = 100;
/// Levels in the order they are stacked, bottom first.
const LEVELS: [&str; 7] = ["fatal", "error", "warn", "info", "debug", "trace", "unknown"];

/// The page's state, as read from the URL.
#[derive(Clone, PartialEq, Eq, Default)]
struct Search {
    q: String,
    range: String,
    start: String,
    end: String,
    /// The live tail is on (`live=1`).
    live: bool,
}

impl Search {
    fn url(&self) -> String {
        let mut url = format!("/logs?q={}", encode(&self.q));
        if self.start.is_empty() && self.end.is_empty() {
            url.push_str(&format!("&range={}", encode(&self.range)));
        } else {
            url.push_str(&format!("&start={}&end={}", encode(&self.start), encode(&self.end)));
        }
        if self.live {
            url.push_str("&live=1");
        }
        url
    }

    /// The same search narrowed by `field:"value"`.
    fn with_filter(&self, field: &str, value: &str) -> Self {
        let filter = format!("{field}:\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
        let q = if self.q.trim().is_empty() { filter } else { format!("{} AND {filter}", self.q.trim()) };
        Self { q, ..self.clone() }
    }
}

#[component]
pub fn LogsPage() -> impl IntoView {
    let query = use_query_map();
    let search = Memo::new(move |_| {
        let query = query.read();
        Search {
            q: query.get("q").unwrap_or_default(),
            range: query.get("range").filter(|range| !range.is_empty()).unwrap_or_else(|| DEFAULT_RANGE.to_owned()),
            start: query.get("start").unwrap_or_default(),
            end: query.get("end").unwrap_or_default(),
            live: query.get("live").as_deref() == Some("1"),
        }
    });
    // What the results depend on: turning the live tail on or off does not search again.
    let searched = Memo::new(move |_| Search { live: false, ..search.get() });
    let results = Resource::new(
        move || searched.get(),
        |search| search_logs(search.q, search.range, search.start, search.end, String::new(), PAGE_SIZE),
    );
    let histogram = Resource::new(
        move || searched.get(),
        |search| fetch_histogram(search.q, search.range, search.start, search.end),
    );

    // Effects run in the browser only: the attribute tells people and tests that the page is live.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));
    let absolute = move || !search.read().start.is_empty() || !search.read().end.is_empty();
    let live = Signal::derive(move || search.read().live);
    // What the page showed last, kept on screen when the next query fails.
    let shown = StoredValue::new(None::<(Option<LogHistogram>, LogPage, Search)>);

    view! {
        <h1>"Logs"</h1>
        <Form method="GET" action="/logs">
            <div class="search-bar" data-hydrated=move || hydrated.get().to_string()>
                <input
                    type="search"
                    name="q"
                    class="query"
                    placeholder="service:api AND level:error AND timeout"
                    prop:value=move || search.read().q.clone()
                />
                <select name="range" class="range">
                    {RANGES
                        .into_iter()
                        .map(|(value, label)| {
                            view! {
                                <option value=value selected=move || !absolute() && search.read().range == value>{label}</option>
                            }
                        })
                        .collect_view()}
                </select>
                <input type="text" name="start" class="time" placeholder="from (RFC 3339)" prop:value=move || search.read().start.clone()/>
                <input type="text" name="end" class="time" placeholder="to (RFC 3339)" prop:value=move || search.read().end.clone()/>
                <button type="submit">"Search"</button>
            </div>
        </Form>
        <Transition fallback=|| view! { <p class="loading">"Searching…"</p> }>
            {move || Suspend::new(async move {
                let search = search.get_untracked();
                match (histogram.await, results.await) {
                    // A query that fails leaves the last results on the page, under its error.
                    (_, Err(error)) => {
                        let previous = shown.get_value().map(|(histogram, page, search)| {
                            view! {
                                <div class="previous-results">
                                    {histogram.map(|histogram| view! { <Histogram histogram search=search.clone()/> })}
                                    <Results page search/>
                                </div>
                            }
                        });
                        view! { <QueryError error query=search.q.clone()/> {previous} }.into_any()
                    }
                    (Err(error), Ok(page)) => {
                        shown.set_value(Some((None, page.clone(), search.clone())));
                        view! {
                            <QueryError error query=search.q.clone()/>
                            <Results page search/>
                        }
                        .into_any()
                    }
                    (Ok(histogram), Ok(page)) => {
                        shown.set_value(Some((Some(histogram.clone()), page.clone(), search.clone())));
                        view! {
                            <Histogram histogram search=search.clone()/>
                            <LiveTail search=search.clone() live cursor=page.tail_cursor shown=page.records.iter().map(|hit| hit.id).collect()/>
                            <Results page search/>
                        }
                        .into_any()
                    }
                }
            })}
        </Transition>
    }
}

/// Volume per time bucket, stacked by level. Dragging from one bucket to another zooms the
/// page to the buckets between them.
#[component]
fn Histogram(histogram: LogHistogram, search: Search) -> impl IntoView {
    const WIDTH: f64 = 1000.0;
    const HEIGHT: f64 = 100.0;
    let buckets = histogram.buckets.len().max(1);
    let tallest = histogram.buckets.iter().map(vigil_proto::HistogramBucket::total).max().unwrap_or(0).max(1) as f64;
    let bar_width = WIDTH / buckets as f64;
    let interval_nanos = histogram.interval_ms as i64 * 1_000_000;
    let drag_from = RwSignal::new(None::<usize>);
    let navigate = use_navigate();
    let starts: Vec<_> = histogram.buckets.iter().map(|bucket| bucket.start).collect();
    let zoom = move |to: usize| {
        let Some(from) = drag_from.get_untracked() else { return };
        drag_from.set(None);
        let (first, last) = (from.min(to), from.max(to));
        let start = starts[first];
        let end = starts[last].saturating_add_nanos(interval_nanos);
        let zoomed = Search { start: start.to_rfc3339(), end: end.to_rfc3339(), ..search.clone() };
        navigate(&zoomed.url(), Default::default());
    };
    let bars = histogram
        .buckets
        .iter()
        .enumerate()
        .map(|(index, bucket)| {
            let x = index as f64 * bar_width;
            let mut top = HEIGHT;
            let segments = LEVELS
                .iter()
                .filter_map(|level| bucket.counts.get(*level).map(|count| (*level, *count)))
                .map(|(level, count)| {
                    let height = count as f64 / tallest * HEIGHT;
                    top -= height;
                    view! {
                        <rect class=format!("bar bar-{level}") x=x y=top width=(bar_width * 0.9).max(0.5) height=height>
                            <title>{format!("{} {level}: {count}", bucket.start.to_rfc3339())}</title>
                        </rect>
                    }
                })
                .collect_view();
            let zoom = zoom.clone();
            view! {
                <g>
                    {segments}
                    <rect
                        class="bucket"
                        x=x
                        y=0
                        width=bar_width
                        height=HEIGHT
                        on:mousedown=move |event| {
                            event.prevent_default();
                            drag_from.set(Some(index));
                        }
                        on:mouseup=move |_| zoom(index)
                    />
                </g>
            }
        })
        .collect_view();
    let total: u64 = histogram.buckets.iter().map(vigil_proto::HistogramBucket::total).sum();
    view! {
        <figure class="histogram">
            <svg viewBox=format!("0 0 {WIDTH} {HEIGHT}") preserveAspectRatio="none" role="img" aria-label="log volume by level">
                {bars}
            </svg>
            <figcaption>
                <span>{histogram.start.to_rfc3339()}</span>
                <span class="histogram-total">{format!("{total} records, {} s buckets; drag to zoom", histogram.interval_ms / 1000)}</span>
                <span>{histogram.end.to_rfc3339()}</span>
            </figcaption>
        </figure>
    }
}

#[component]
fn Results(page: LogPage, search: Search) -> impl IntoView {
    let shown = page.records.len();
    let navigate = use_navigate();
    let filter = Callback::new(move |(field, value): (String, String)| {
        navigate(&search.with_filter(&field, &value).url(), Default::default());
    });
    let more = RwSignal::new(Vec::<LogHit>::new());
    let cursor = RwSignal::new(page.next_cursor.map(|cursor| cursor.to_string()));
    let loading = RwSignal::new(false);
    let query_map = use_query_map();
    let load_more = move || {
        let Some(from) = cursor.get_untracked() else { return };
        if loading.get_untracked() {
            return;
        }
        let query = query_map.get_untracked();
        loading.set(true);
        spawn_local(async move {
            let page = search_logs(
                query.get("q").unwrap_or_default(),
                query.get("range").filter(|range| !range.is_empty()).unwrap_or_else(|| DEFAULT_RANGE.to_owned()),
                query.get("start").unwrap_or_default(),
                query.get("end").unwrap_or_default(),
                from,
                PAGE_SIZE,
            )
            .await;
            if let Ok(page) = page {
                cursor.set(page.next_cursor.map(|cursor| cursor.to_string()));
                more.update(|records| records.extend(page.records));
            }
            loading.set(false);
        });
    };
    // Infinite scroll: the next page loads when the end of the list comes into view.
    #[cfg(feature = "hydrate")]
    {
        let listener = window_event_listener(leptos::ev::scroll, move |_| {
            if near_bottom() {
                load_more();
            }
        });
        on_cleanup(move || listener.remove());
    }
    view! {
        <p class="summary">
            {move || {
                let at_least = if page.total_relation == vigil_proto::TotalRelation::Gte { "at least " } else { "" };
                format!("{at_least}{} matching records, newest {} shown", page.total, shown + more.read().len())
            }}
        </p>
        <ol class="records">
            {page.records.into_iter().map(|record| view! { <Record record filter/> }).collect_view()}
            <For each=move || more.get() key=|record| record.id let:record>
                <Record record filter/>
            </For>
        </ol>
        <Show when=move || cursor.read().is_some()>
            <button class="more" on:click=move |_| load_more() disabled=move || loading.get()>"Load older records"</button>
        </Show>
    }
}

/// Whether the window is scrolled to within a screen of the page's end.
#[cfg(feature = "hydrate")]
fn near_bottom() -> bool {
    let Some(window) = web_sys::window() else { return false };
    let visible = window.inner_height().ok().and_then(|height| height.as_f64()).unwrap_or_default();
    let scrolled = window.scroll_y().unwrap_or_default();
    let total = window
        .document()
        .and_then(|document| document.document_element())
        .map_or(0.0, |root| f64::from(root.scroll_height()));
    scrolled + 2.0 * visible >= total
}

#[component]
fn Record(record: LogHit, filter: Callback<(String, String)>) -> impl IntoView {
    let expanded = RwSignal::new(false);
    let context = RwSignal::new(None::<Result<LogContext, String>>);
    let id = record.id.to_string();
    let level_class = format!("level level-{}", record.level);
    let chip = move |field: &'static str, value: String| {
        let shown = value.clone();
        view! {
            <button class=format!("chip {field}") title=format!("filter on {field}") on:click=move |event| {
                event.stop_propagation();
                filter.run((field.to_owned(), value.clone()));
            }>{shown}</button>
        }
    };
    let attributes = serde_json::to_string_pretty(&record.attributes).unwrap_or_default();
    let show_context = move |_| {
        let id = id.clone();
        spawn_local(async move {
            context.set(Some(fetch_context(id).await.map_err(|error| error.to_string())));
        });
    };
    view! {
        <li class="record" class:expanded=move || expanded.get()>
            <div class="line" on:click=move |_| expanded.update(|open| *open = !*open)>
                <time datetime=record.timestamp.to_rfc3339()>{record.timestamp.to_rfc3339()}</time>
                <span class=level_class>{record.level.clone()}</span>
                {chip("service", record.service.clone())}
                {chip("host", record.host.clone())}
                <span class="message">{record.message.clone()}</span>
            </div>
            <Show when=move || expanded.get()>
                <div class="details">
                    <dl>
                        <dt>"id"</dt><dd>{record.id.to_string()}</dd>
                        <dt>"level"</dt><dd>{chip("level", record.level.clone())}</dd>
                    </dl>
                    <pre class="attributes">{attributes.clone()}</pre>
                    <button class="context-button" on:click=show_context.clone()>"Show context"</button>
                    {move || context.get().map(|context| match context {
                        Ok(context) => view! { <Context context/> }.into_any(),
                        Err(error) => view! { <p class="error">{error}</p> }.into_any(),
                    })}
                </div>
            </Show>
        </li>
    }
}

/// The lines around a record, the record itself marked.
#[component]
fn Context(context: LogContext) -> impl IntoView {
    let line = |hit: LogHit, current: bool| {
        view! {
            <li class:current=current>
                <time>{hit.timestamp.to_rfc3339()}</time>
                <span class="message">{hit.message}</span>
            </li>
        }
    };
    let before = context.before.into_iter().map(|hit| line(hit, false)).collect_view();
    let after = context.after.into_iter().map(|hit| line(hit, false)).collect_view();
    view! {
        <ol class="context">
            {before}
            {line(context.record, true)}
            {after}
        </ol>
    }
}

/// Most records the live view keeps.
const LIVE_RECORDS: usize = 500;

/// The live tail: a WebSocket to `/ui/tail` streaming records that match the query, newest on
/// top; pausing holds new records back; a notice says how many were skipped when it fell behind.
/// Whether it is on is part of the URL (`live=1`): the toggle navigates, and the socket follows
/// the URL, so a shared or reloaded link opens the tail too.
///
/// It starts from `cursor`, the store's position when the results were read, so that nothing
/// stored in between is missed; records the results already show are not repeated.
#[component]
fn LiveTail(
    search: Search,
    live: Signal<bool>,
    cursor: Option<u64>,
    shown: std::collections::HashSet<vigil_proto::RecordId>,
) -> impl IntoView {
    let open = RwSignal::new(false);
    let connected = RwSignal::new(false);
    let paused = RwSignal::new(false);
    let records = RwSignal::new(Vec::<LogHit>::new());
    let held = RwSignal::new(Vec::<LogHit>::new());
    let skipped = RwSignal::new(0_u64);
    let receive = move |frame: TailFrame| match frame {
        TailFrame::Records { records: new, .. } => {
            let new: Vec<LogHit> = new.into_iter().filter(|record| !shown.contains(&record.id)).collect();
            if paused.get_untracked() {
                held.update(|held| held.extend(new));
            } else {
                records.update(|listed| {
                    listed.splice(0..0, new.into_iter().rev());
                    listed.truncate(LIVE_RECORDS);
                });
            }
        }
        TailFrame::Lagged { skipped: count, .. } => skipped.update(|total| *total += count),
        TailFrame::Heartbeat { .. } => {}
    };
    let socket = socket::Socket::new();
    // Effects run in the browser only: the socket opens after hydration.
    Effect::new({
        let socket = socket.clone();
        let q = search.q.clone();
        move |_| {
            let wanted = live.get();
            if wanted && !open.get_untracked() {
                open.set(true);
                socket.open(&q, cursor, receive.clone(), move || connected.set(true));
            } else if !wanted && open.get_untracked() {
                socket.close();
                open.set(false);
                connected.set(false);
            }
        }
    });
    let navigate = use_navigate();
    let toggle = move |_| {
        let next = Search { live: !live.get_untracked(), ..search.clone() };
        navigate(&next.url(), NavigateOptions { replace: true, scroll: false, ..Default::default() });
    };
    let resume = move |_| {
        if paused.get_untracked() {
            let mut waiting = held.try_update(std::mem::take).unwrap_or_default();
            waiting.reverse();
            records.update(|shown| {
                shown.splice(0..0, waiting);
                shown.truncate(LIVE_RECORDS);
            });
        }
        paused.update(|paused| *paused = !*paused);
    };
    on_cleanup(move || socket.close());
    view! {
        <div class="live-tail" data-live=move || if connected.get() { "connected" } else { "off" }>
            <button class="live-toggle" on:click=toggle>{move || if open.get() { "Stop live tail" } else { "Live tail" }}</button>
            <Show when=move || open.get()>
                <button class="live-pause" on:click=resume>
                    {move || if paused.get() { format!("Resume ({} waiting)", held.read().len()) } else { "Pause".to_owned() }}
                </button>
                <Show when=move || { skipped.get() > 0 }>
                    <span class="lag-notice">{move || format!("{} records skipped: the live tail fell behind", skipped.get())}</span>
                </Show>
                <ol class="records live">
                    <For each=move || records.get() key=|record| record.id let:record>
                        <li class="record">
                            <div class="line">
                                <time>{record.timestamp.to_rfc3339()}</time>
                                <span class=format!("level level-{}", record.level)>{record.level.clone()}</span>
                                <span class="service">{record.service.clone()}</span>
                                <span class="host">{record.host.clone()}</span>
                                <span class="message">{record.message.clone()}</span>
                            </div>
                        </li>
                    </For>
                </ol>
            </Show>
        </div>
    }
}

/// The browser side of the live tail's WebSocket; nothing on the server.
mod socket {
    use vigil_proto::TailFrame;

    #[cfg(feature = "hydrate")]
    type Handlers = (
        web_sys::WebSocket,
        wasm_bindgen::closure::Closure<dyn FnMut(web_sys::MessageEvent)>,
        wasm_bindgen::closure::Closure<dyn FnMut()>,
    );

    #[derive(Clone)]
    pub struct Socket {
        #[cfg(feature = "hydrate")]
        open: leptos::prelude::StoredValue<Option<Handlers>, leptos::prelude::LocalStorage>,
    }

    impl Socket {
        pub fn new() -> Self {
            Self {
                #[cfg(feature = "hydrate")]
                open: leptos::prelude::StoredValue::new_local(None),
            }
        }

        #[cfg(feature = "hydrate")]
        pub fn open(
            &self,
            q: &str,
            cursor: Option<u64>,
            mut receive: impl FnMut(TailFrame) + 'static,
            on_open: impl FnMut() + 'static,
        ) {
            use leptos::prelude::*;
            use wasm_bindgen::JsCast;
            use wasm_bindgen::closure::Closure;

            self.close();
            let Some(window) = web_sys::window() else { return };
            let location = window.location();
            let scheme = if location.protocol().ok().as_deref() == Some("https:") { "wss" } else { "ws" };
            let host = location.host().unwrap_or_default();
            let after = cursor.map(|cursor| format!("&cursor={cursor}")).unwrap_or_default();
            let url = format!("{scheme}://{host}/ui/tail?q={}{after}", super::encode(q));
            let Ok(socket) = web_sys::WebSocket::new(&url) else {
                return;
            };
            let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
                if let Some(frame) = event.data().as_string().and_then(|text| serde_json::from_str(&text).ok()) {
                    receive(frame);
                }
            });
            let opened = Closure::<dyn FnMut()>::new(on_open);
            socket.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
            socket.set_onopen(Some(opened.as_ref().unchecked_ref()));
            self.open.set_value(Some((socket, on_message, opened)));
        }

        #[cfg(not(feature = "hydrate"))]
        pub fn open(
            &self,
            _q: &str,
            _cursor: Option<u64>,
            _receive: impl FnMut(TailFrame) + 'static,
            _on_open: impl FnMut() + 'static,
        ) {
        }

        pub fn close(&self) {
            #[cfg(feature = "hydrate")]
            {
                use leptos::prelude::*;
                if let Some(Some((socket, _, _))) = self.open.try_update_value(Option::take) {
                    socket.set_onmessage(None);
                    let _already_closed = socket.close();
                }
            }
        }
    }
}
