//! The Logs page: a query box and a time range, whose state lives in the URL
//! (`/logs?q=...&range=1h`), and the newest matching records.

use leptos::prelude::*;
use leptos_router::components::Form;
use leptos_router::hooks::use_query_map;
use vigil_proto::{LogHit, LogPage};

use crate::logs::search_logs;

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

#[component]
pub fn LogsPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let range = move || query.read().get("range").unwrap_or_else(|| DEFAULT_RANGE.to_owned());
    let results = Resource::new(move || (q(), range()), |(q, range)| search_logs(q, range, PAGE_SIZE));

    // Effects run in the browser only: the attribute tells people and tests that the page is live.
    let (hydrated, set_hydrated) = signal(false);
    Effect::new(move |_| set_hydrated.set(true));

    view! {
        <h1>"Logs"</h1>
        <Form method="GET" action="/logs">
            <div class="search-bar" data-hydrated=move || hydrated.get().to_string()>
                <input
                    type="search"
                    name="q"
                    class="query"
                    placeholder="service:api AND level:error AND timeout"
                    prop:value=q
                />
                <select name="range" class="range">
                    {RANGES
                        .into_iter()
                        .map(|(value, label)| {
                            view! { <option value=value selected=move || range() == value>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <button type="submit">"Search"</button>
            </div>
        </Form>
        <Transition fallback=|| view! { <p class="loading">"Searching…"</p> }>
            {move || Suspend::new(async move {
                match results.await {
                    Ok(page) => view! { <Results page/> }.into_any(),
                    Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                }
            })}
        </Transition>
    }
}

#[component]
fn Results(page: LogPage) -> impl IntoView {
    let shown = page.records.len();
    view! {
        <p class="summary">{format!("{} matching records, newest {shown} shown", page.total)}</p>
        <ol class="records">
            {page.records.into_iter().map(|record| view! { <Record record/> }).collect_view()}
        </ol>
    }
}

#[component]
fn Record(record: LogHit) -> impl IntoView {
    let level_class = format!("level level-{}", record.level);
    view! {
        <li class="record">
            <time datetime=record.timestamp.to_rfc3339()>{record.timestamp.to_rfc3339()}</time>
            <span class=level_class>{record.level}</span>
            <span class="service">{record.service}</span>
            <span class="host">{record.host}</span>
            <span class="message">{record.message}</span>
        </li>
    }
}
