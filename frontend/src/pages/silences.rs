//! The Silences page (`/alerts/silences`): the active and pending silences (matchers, start and
//! end, who and why, how many current alerts each silences), an expiry coming within 15
//! minutes announced and highlighted, expiring one now (deployers and administrators), and
//! the ended ones below as history. Deployers and administrators create silences with a form
//! (matchers `=`, `!=`, `=~`, `!~`, a start, a duration or an end, a comment; the creator is
//! who is signed in) that lists, before saving, the current alerts it would silence. The
//! Alerts page's "Silence" button opens the form with an alert's labels
//! (`?matchers={alertname="DiskFull",...}`). Kept current by the live tick.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::use_query_map;
use vigil_proto::Timestamp;
use vigil_proto::alerts::{Alert, Matcher, Silence, SilenceState, parse_matchers};

use super::alerts::{SessionResource, label_chips, live_relative, matcher_chip, may_deploy, relative};
use super::{ahead, encode, now_nanos, quoted};
use crate::accounts::current_session;
use crate::alerts::{CreateSilence, ExpireSilence, list_silences, preview_silence};
use crate::app::live_tick;
use crate::error::UiError;

/// An active silence ending sooner than this is announced as expiring.
const EXPIRY_NOTICE_SECONDS: i64 = 15 * 60;
/// How long a new silence lasts: the duration's choices, then an end of one's own.
const DURATIONS: [(&str, &str); 7] = [
    ("15m", "15 minutes"),
    ("1h", "1 hour"),
    ("2h", "2 hours"),
    ("4h", "4 hours"),
    ("1d", "1 day"),
    ("7d", "7 days"),
    ("", "until…"),
];
/// The operators of a matcher, as Alertmanager writes them.
const OPERATORS: [&str; 4] = ["=", "!=", "=~", "!~"];
/// Alerts a preview lists at most (it says how many more).
const PREVIEW_SHOWN: usize = 50;

/// Matchers as a selector: `{alertname="DiskFull",service=~"pay.*"}`.
pub(crate) fn selector(matchers: &[Matcher]) -> String {
    let parts: Vec<String> = matchers
        .iter()
        .map(|matcher| format!("{}{}{}", matcher.name, matcher.operator(), quoted(&matcher.value)))
        .collect();
    format!("{{{}}}", parts.join(","))
}

/// The Silences page with its form filled with `labels` as equality matchers.
pub(crate) fn silence_href(labels: &BTreeMap<String, String>) -> String {
    let matchers: Vec<Matcher> = labels
        .iter()
        .map(|(name, value)| Matcher { name: name.clone(), value: value.clone(), is_regex: false, is_equal: true })
        .collect();
    format!("/alerts/silences?matchers={}", encode(&selector(&matchers)))
}

/// A matcher from the form's operator; None for an operator it does not offer.
fn matcher(name: &str, operator: &str, value: &str) -> Option<Matcher> {
    let (is_equal, is_regex) = match operator {
        "=" => (true, false),
        "!=" => (false, false),
        "=~" => (true, true),
        "!~" => (false, true),
        _ => return None,
    };
    Some(Matcher { name: name.trim().to_owned(), value: value.to_owned(), is_regex, is_equal })
}

/// A `datetime-local` field's value (the browser's local time, `2025-03-01T14:30`) as RFC 3339;
/// empty stays empty.
fn local_to_rfc3339(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(String::new());
    }
    #[cfg(feature = "hydrate")]
    let millis = js_sys::Date::new(&wasm_bindgen::JsValue::from_str(text)).get_time();
    // Off the browser there is no local time zone: the time is read as UTC.
    #[cfg(not(feature = "hydrate"))]
    let millis = format!("{text}:00Z")
        .parse::<Timestamp>()
        .or_else(|_| format!("{text}Z").parse::<Timestamp>())
        .map_or(f64::NAN, |at| at.as_unix_nanos() as f64 / 1e6);
    if !millis.is_finite() {
        return Err(format!("{text:?} is not a date and time"));
    }
    Timestamp::from_unix_nanos((millis * 1e6) as i64).map(Timestamp::to_rfc3339).map_err(|error| error.to_string())
}

/// Seconds from now until `at` (negative once past).
fn seconds_until(at: Timestamp) -> i64 {
    (at.as_unix_nanos() - now_nanos()) / 1_000_000_000
}

/// One row of the form's matchers.
#[derive(Clone, Copy)]
struct MatcherRow {
    id: usize,
    name: RwSignal<String>,
    operator: RwSignal<String>,
    value: RwSignal<String>,
}

impl MatcherRow {
    fn new(id: usize, matcher: Option<&Matcher>) -> Self {
        Self {
            id,
            name: RwSignal::new(matcher.map(|matcher| matcher.name.clone()).unwrap_or_default()),
            operator: RwSignal::new(matcher.map_or("=", Matcher::operator).to_owned()),
            value: RwSignal::new(matcher.map(|matcher| matcher.value.clone()).unwrap_or_default()),
        }
    }
}

#[component]
pub fn SilencesPage() -> impl IntoView {
    let query = use_query_map();
    let tick = live_tick();
    let session = Resource::new(|| (), |_| current_session());
    let create = ServerAction::<CreateSilence>::new();
    let expire = ServerAction::<ExpireSilence>::new();
    let silences =
        Resource::new(move || (tick.get(), create.version().get(), expire.version().get()), |_| list_silences());
    // What the Alerts page's "Silence" button asks for.
    let prefill = query.read_untracked().get("matchers").unwrap_or_default();
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let expire_failure = move || {
        expire
            .value()
            .get()
            .and_then(Result::err)
            .map(|error| view! { <p class="error expire-error">{error.to_string()}</p> })
    };
    view! {
        <Title text="Silences · Vigil"/>
        <div class="silences-page" data-hydrated=move || hydrated.get().to_string()>
            <div class="dashboard-head">
                <h1>"Silences"</h1>
                <div class="dashboard-controls">
                    <a class="button" href="/alerts">"Alerts"</a>
                </div>
            </div>
            <Transition fallback=|| ()>
                {move || {
                    let prefill = prefill.clone();
                    may_deploy(session).then(|| view! { <SilenceForm create session prefill tick/> })
                }}
            </Transition>
            {expire_failure}
            <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
                {move || {
                    silences.get().map(|result| match result {
                        Ok(silences) => {
                            let can_expire = may_deploy(session);
                            let (mut current, mut ended): (Vec<Silence>, Vec<Silence>) =
                                silences.into_iter().partition(|silence| silence.state != SilenceState::Expired);
                            // The active first, the soonest to end first; then the pending, the
                            // soonest to start first. History: the latest ended first.
                            current.sort_by_key(|silence| match silence.state {
                                SilenceState::Pending => (true, silence.starts_at),
                                _ => (false, silence.ends_at),
                            });
                            ended.sort_by_key(|silence| std::cmp::Reverse(silence.ends_at));
                            view! {
                                <section class="current-silences">
                                    <h2>"Active and pending"</h2>
                                    <SilenceTable silences=current can_expire expire tick
                                        empty="No silence is active or pending: every alert notifies."/>
                                </section>
                                <section class="silence-history">
                                    <h2>"History"</h2>
                                    <SilenceTable silences=ended can_expire=false expire tick
                                        empty="No silence ended in the last 30 days."/>
                                </section>
                            }
                            .into_any()
                        }
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })
                }}
            </Transition>
        </div>
    }
}

#[component]
fn SilenceTable(
    silences: Vec<Silence>,
    can_expire: bool,
    expire: ServerAction<ExpireSilence>,
    tick: RwSignal<u64>,
    empty: &'static str,
) -> impl IntoView {
    if silences.is_empty() {
        return view! { <p class="placeholder no-silences">{empty}</p> }.into_any();
    }
    view! {
        <table class="table silences">
            <thead>
                <tr>
                    <th>"State"</th><th>"Matchers"</th><th>"Starts"</th><th>"Ends"</th><th>"Created by"</th>
                    <th>"Comment"</th><th>"Silences"</th><th></th>
                </tr>
            </thead>
            <tbody>
                {silences
                    .into_iter()
                    .map(|silence| view! { <SilenceRow silence can_expire expire tick/> })
                    .collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

#[component]
fn SilenceRow(
    silence: Silence,
    can_expire: bool,
    expire: ServerAction<ExpireSilence>,
    tick: RwSignal<u64>,
) -> impl IntoView {
    let state = match silence.state {
        SilenceState::Pending => "pending",
        SilenceState::Active => "active",
        SilenceState::Expired => "expired",
    };
    let ends_at = silence.ends_at;
    let active = silence.state == SilenceState::Active;
    let expiring = move || {
        tick.track();
        active && seconds_until(ends_at) <= EXPIRY_NOTICE_SECONDS
    };
    let verb = if active { "expires" } else { "ends" };
    let ends = match silence.state {
        SilenceState::Active | SilenceState::Pending => view! {
            <time class="expiry" datetime=ends_at.to_string() title=ends_at.to_string()>
                {move || {
                    tick.track();
                    format!("{verb} {}", ahead(seconds_until(ends_at)))
                }}
            </time>
        }
        .into_any(),
        SilenceState::Expired => view! { "ended " {relative(ends_at)} }.into_any(),
    };
    let starts = match silence.state {
        SilenceState::Pending => {
            let starts_at = silence.starts_at;
            view! {
                <time datetime=starts_at.to_string() title=starts_at.to_string()>
                    {move || {
                        tick.track();
                        format!("starts {}", ahead(seconds_until(starts_at)))
                    }}
                </time>
            }
            .into_any()
        }
        _ => live_relative(silence.starts_at, tick).into_any(),
    };
    let silenced = silence.silenced_alerts.len();
    let silenced_text = match (silence.state, silenced) {
        (SilenceState::Active, 1) => "1 alert".to_owned(),
        (SilenceState::Active, count) => format!("{count} alerts"),
        _ => "—".to_owned(),
    };
    let id = silence.id.clone();
    let button = (can_expire && silence.state != SilenceState::Expired).then(|| {
        let id = id.clone();
        view! {
            <button class="expire-silence" disabled=move || expire.pending().get()
                on:click=move |_| { expire.dispatch(ExpireSilence { id: id.clone() }); }>"Expire"</button>
        }
    });
    view! {
        <tr class=format!("silence-row state-{state}") class:expiring-soon=expiring data-silence=id>
            <td><span class=format!("state-badge silence-state state-{state}")>{state}</span></td>
            <td class="matchers">{silence.matchers.iter().map(matcher_chip).collect_view()}</td>
            <td class="starts">{starts}</td>
            <td class="ends">{ends}</td>
            <td class="created-by">{silence.created_by.clone()}</td>
            <td class="comment">{silence.comment.clone()}</td>
            <td class="silenced-count" data-count=silenced title=silence.silenced_alerts.join(", ")>{silenced_text}</td>
            <td>{button}</td>
        </tr>
    }
}

/// The form of a new silence, with the current alerts its matchers would silence.
#[component]
fn SilenceForm(
    create: ServerAction<CreateSilence>,
    session: SessionResource,
    prefill: String,
    tick: RwSignal<u64>,
) -> impl IntoView {
    let prefilled = parse_matchers(&prefill).unwrap_or_default();
    let next_id = StoredValue::new(prefilled.len().max(1));
    let first_rows = if prefilled.is_empty() {
        vec![MatcherRow::new(0, None)]
    } else {
        prefilled.iter().enumerate().map(|(id, matcher)| MatcherRow::new(id, Some(matcher))).collect()
    };
    let rows = RwSignal::new(first_rows);
    let start = RwSignal::new(String::new());
    let duration = RwSignal::new("2h".to_owned());
    let end = RwSignal::new(String::new());
    let comment = RwSignal::new(String::new());
    let form_error = RwSignal::new(None::<String>);
    // The matchers as written so far (rows with neither a name nor a value left out).
    let matchers = Memo::new(move |_| {
        rows.get()
            .iter()
            .filter(|row| !row.name.read().trim().is_empty() || !row.value.read().is_empty())
            .filter_map(|row| matcher(&row.name.read(), &row.operator.read(), &row.value.read()))
            .collect::<Vec<_>>()
    });
    let preview = Resource::new(
        move || (serde_json::to_string(&matchers.get()).unwrap_or_default(), tick.get()),
        |(matchers, _)| async move { if matchers == "[]" { Ok(None) } else { preview_silence(matchers).await.map(Some) } },
    );
    let add_row = move |_| {
        let id = next_id.get_value();
        next_id.set_value(id + 1);
        rows.update(|rows| rows.push(MatcherRow::new(id, None)));
    };
    let save = move |_| {
        form_error.set(None);
        let starts_at = match local_to_rfc3339(&start.get_untracked()) {
            Ok(starts_at) => starts_at,
            Err(error) => return form_error.set(Some(format!("start: {error}"))),
        };
        let chosen = duration.get_untracked();
        let ends_at = if chosen.is_empty() {
            match local_to_rfc3339(&end.get_untracked()) {
                Ok(ends_at) if !ends_at.is_empty() => ends_at,
                Ok(_) => return form_error.set(Some("choose when the silence ends".to_owned())),
                Err(error) => return form_error.set(Some(format!("end: {error}"))),
            }
        } else {
            String::new()
        };
        create.dispatch(CreateSilence {
            matchers: serde_json::to_string(&matchers.get_untracked()).unwrap_or_default(),
            starts_at,
            ends_at,
            duration: chosen,
            comment: comment.get_untracked(),
        });
    };
    // Saved: an empty form for the next one.
    Effect::new(move |_| {
        if let Some(Ok(_)) = create.value().get() {
            let id = next_id.get_value();
            next_id.set_value(id + 1);
            rows.set(vec![MatcherRow::new(id, None)]);
            comment.set(String::new());
            start.set(String::new());
        }
    });
    let outcome = move || match create.value().get() {
        Some(Ok(silence)) => Some(
            view! {
                <p class="notice silence-saved" data-silence=silence.id.clone()>
                    "Silenced " {selector(&silence.matchers)} " until " {silence.ends_at.to_string()} "."
                </p>
            }
            .into_any(),
        ),
        Some(Err(error)) => Some(view! { <p class="error save-error">{error.to_string()}</p> }.into_any()),
        None => None,
    };
    let creator = move || {
        session.with(|session| {
            session.as_ref().and_then(|session| session.as_ref().ok()).map(|session| session.username.clone())
        })
    };
    view! {
        <section class="panel silence-form">
            <h2>"New silence"</h2>
            <div class="matcher-rows">
                <For each=move || rows.get() key=|row| row.id let(row)>
                    <div class="matcher-row" data-row=row.id>
                        <input class="matcher-name" placeholder="label" value=row.name.get_untracked() prop:value=move || row.name.get()
                            on:input=move |event| row.name.set(event_target_value(&event))/>
                        <select class="matcher-operator" on:change=move |event| row.operator.set(event_target_value(&event))>
                            {OPERATORS
                                .into_iter()
                                .map(|operator| view! { <option value=operator selected=move || row.operator.get() == operator>{operator}</option> })
                                .collect_view()}
                        </select>
                        <input class="matcher-value" placeholder="value" value=row.value.get_untracked() prop:value=move || row.value.get()
                            on:input=move |event| row.value.set(event_target_value(&event))/>
                        <button type="button" class="remove-matcher" title="Remove this matcher"
                            on:click=move |_| rows.update(|rows| rows.retain(|kept| kept.id != row.id))>"×"</button>
                    </div>
                </For>
                <button type="button" class="add-matcher" on:click=add_row>"Add matcher"</button>
            </div>
            <div class="form silence-times">
                <label>"Start (empty: now)"
                    <input type="datetime-local" class="silence-start" prop:value=move || start.get()
                        on:input=move |event| start.set(event_target_value(&event))/>
                </label>
                <label>"Duration"
                    <select class="silence-duration" on:change=move |event| duration.set(event_target_value(&event))>
                        {DURATIONS
                            .into_iter()
                            .map(|(value, label)| view! { <option value=value selected=move || duration.get() == value>{label}</option> })
                            .collect_view()}
                    </select>
                </label>
                {move || duration.get().is_empty().then(|| view! {
                    <label>"End"
                        <input type="datetime-local" class="silence-end" prop:value=move || end.get()
                            on:input=move |event| end.set(event_target_value(&event))/>
                    </label>
                })}
                <label>"Comment (why)"
                    <textarea class="silence-comment" rows="2" required prop:value=move || comment.get()
                        on:input=move |event| comment.set(event_target_value(&event))></textarea>
                </label>
                <p class="muted creator">
                    "Created by " <Transition fallback=|| ()>{move || creator().map(|name| view! { <strong>{name}</strong> })}</Transition>
                </p>
                <button type="button" class="save-silence" on:click=save disabled=move || create.pending().get()>"Silence"</button>
            </div>
            {move || form_error.get().map(|error| view! { <p class="error save-error">{error}</p> })}
            {outcome}
            <div class="silence-preview">
                <h3>"Would silence"</h3>
                <Transition fallback=|| view! { <p class="loading">"…"</p> }>
                    {move || preview.get().map(|result| view! { <SilencePreviewList result/> })}
                </Transition>
            </div>
        </section>
    }
}

#[component]
fn SilencePreviewList(result: Result<Option<Vec<Alert>>, UiError>) -> impl IntoView {
    match result {
        Ok(None) => {
            view! { <p class="placeholder">"Write a matcher to see which current alerts it silences."</p> }.into_any()
        }
        Ok(Some(alerts)) if alerts.is_empty() => {
            view! { <p class="placeholder preview-none">"No current alert matches."</p> }.into_any()
        }
        Ok(Some(alerts)) => {
            let count = alerts.len();
            let more = count.saturating_sub(PREVIEW_SHOWN);
            view! {
                <p class="preview-count" data-count=count>
                    {if count == 1 { "1 current alert".to_owned() } else { format!("{count} current alerts") }}
                </p>
                <ul class="preview-alerts">
                    {alerts
                        .into_iter()
                        .take(PREVIEW_SHOWN)
                        .map(|alert| {
                            let state = alert.state.as_str();
                            let name = alert.labels.get("alertname").cloned().unwrap_or_default();
                            let row_name = name.clone();
                            view! {
                                <li class="preview-alert" data-fingerprint=alert.fingerprint.clone() data-alertname=row_name>
                                    <span class=format!("state-badge state-{state}")>{state}</span>" "
                                    <strong>{name}</strong>" "
                                    {label_chips(&alert.labels)}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
                {(more > 0).then(|| view! { <p class="muted">{format!("and {more} more")}</p> })}
            }
            .into_any()
        }
        Err(error) => view! { <p class="error preview-error">{error.to_string()}</p> }.into_any(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_alerts_labels_become_equality_matchers_that_parse_back() {
        let labels: BTreeMap<String, String> = [("alertname", "DiskFull"), ("path", "C:\\data \"main\"")]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into();
        let href = silence_href(&labels);
        assert!(href.starts_with("/alerts/silences?matchers=%7Balertname%3D%22DiskFull%22%2C"), "{href}");
        let matchers = parse_matchers(&selector(&[
            Matcher { name: "alertname".into(), value: "DiskFull".into(), is_regex: false, is_equal: true },
            Matcher { name: "path".into(), value: "C:\\data \"main\"".into(), is_regex: false, is_equal: true },
        ]))
        .unwrap();
        assert_eq!(matchers[1].value, "C:\\data \"main\"");
        assert!(matchers.iter().all(|matcher| matcher.is_equal && !matcher.is_regex));
    }

    #[test]
    fn the_forms_operators_are_alertmanagers() {
        for operator in OPERATORS {
            assert_eq!(matcher("service", operator, "api").unwrap().operator(), operator);
        }
        assert_eq!(matcher(" service ", "=", "api").unwrap().name, "service");
        assert!(matcher("service", "==", "api").is_none());
    }

    #[test]
    fn local_times_off_the_browser_are_read_as_utc() {
        assert_eq!(local_to_rfc3339("").unwrap(), "");
        assert_eq!(local_to_rfc3339("2025-03-01T14:30").unwrap(), "2025-03-01T14:30:00Z");
        assert!(local_to_rfc3339("tomorrow").is_err());
    }
}
