//! The rule editor (`/alerts/rules/new`, `/alerts/rules/<id>`): every field of a rule, a
//! preview ("when would it have fired?": the values now, and a chart of the last hours with
//! the threshold and the spans in which it would have fired), save and delete for deployers
//! and administrators (others read the rule), the backend's refusal (an unknown channel, a bad
//! query) next to the form, and a test notification through each channel the rule names.
//! Durations are written `30s`, `5m`, `1h`, `1d` (or plain seconds).

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_navigate, use_params_map};
use vigil_proto::alerts::{AlertRule, AlertRuleSpec, Comparator, LogGroupBy, RuleKind, RulePreview, Severity};
use vigil_proto::metrics::QueryResult;

use super::alerts::{relative, value_text};
use super::explore::{Band, Chart, Threshold, series_name};
use crate::accounts::current_session;
use crate::alerts::{DeleteAlertRule, PreviewAlertRule, SaveAlertRule, SendTestNotification, fetch_alert_rule};
use crate::error::UiError;

const COMPARATORS: [Comparator; 6] = [
    Comparator::Above,
    Comparator::AtLeast,
    Comparator::Below,
    Comparator::AtMost,
    Comparator::Equal,
    Comparator::NotEqual,
];
const SEVERITIES: [Severity; 3] = [Severity::Info, Severity::Warning, Severity::Critical];
/// How far back a preview may look, in hours.
const PREVIEW_HOURS: [u32; 6] = [1, 3, 6, 12, 24, 48];

/// `0`, `45s`, `5m`, `2h`, `1d`.
fn duration_text(seconds: u64) -> String {
    match seconds {
        0 => "0".to_owned(),
        seconds if seconds % 86_400 == 0 => format!("{}d", seconds / 86_400),
        seconds if seconds % 3600 == 0 => format!("{}h", seconds / 3600),
        seconds if seconds % 60 == 0 => format!("{}m", seconds / 60),
        seconds => format!("{seconds}s"),
    }
}

/// `90`, `90s`, `5m`, `2h`, `1d` in seconds; empty is 0.
fn parse_duration(field: &str, text: &str) -> Result<u64, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(0);
    }
    let error = || format!("{field}: {text:?} is not a duration (90, 90s, 5m, 2h, 1d)");
    let (number, unit) = match text.char_indices().last() {
        Some((at, unit)) if unit.is_ascii_alphabetic() => (&text[..at], unit),
        _ => (text, 's'),
    };
    let multiplier = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(error()),
    };
    number.trim().parse::<u64>().ok().and_then(|number| number.checked_mul(multiplier)).ok_or_else(error)
}

/// `name=value` lines; a value may hold `=` (a template's `==`), blank lines are skipped.
fn parse_pairs(field: &str, text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut pairs = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (name, value) =
            line.split_once('=').ok_or_else(|| format!("{field}: line {} is not name=value", index + 1))?;
        pairs.insert(name.trim().to_owned(), value.trim().to_owned());
    }
    Ok(pairs)
}

fn pairs_text(pairs: &BTreeMap<String, String>) -> String {
    pairs.iter().map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join("\n")
}

fn names(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned).collect()
}

/// A rule as the form holds it: text, as typed, until it is saved or previewed.
#[derive(Debug, Clone, PartialEq)]
struct RuleDraft {
    name: String,
    group: String,
    kind: RuleKind,
    expr: String,
    window: String,
    /// Empty (one count), `service` or `host`.
    group_by: String,
    /// Empty (PromQL: every series fires), or `>`, `>=`, ...
    comparator: String,
    threshold: String,
    for_duration: String,
    keep_firing_for: String,
    interval: String,
    severity: Severity,
    labels: String,
    annotations: String,
    runbook_url: String,
    channels: String,
    escalate_after: String,
    escalate_to: String,
    repeat_interval: String,
    enabled: bool,
}

impl RuleDraft {
    /// What a new rule starts as.
    fn new_rule() -> Self {
        Self {
            name: String::new(),
            group: String::new(),
            kind: RuleKind::Promql,
            expr: String::new(),
            window: "5m".to_owned(),
            group_by: String::new(),
            comparator: ">".to_owned(),
            threshold: String::new(),
            for_duration: "0".to_owned(),
            keep_firing_for: "0".to_owned(),
            interval: "1m".to_owned(),
            severity: Severity::Warning,
            labels: String::new(),
            annotations: "summary=".to_owned(),
            runbook_url: String::new(),
            channels: String::new(),
            escalate_after: "0".to_owned(),
            escalate_to: String::new(),
            repeat_interval: "0".to_owned(),
            enabled: true,
        }
    }

    fn from_spec(spec: &AlertRuleSpec) -> Self {
        Self {
            name: spec.name.clone(),
            group: spec.group.clone(),
            kind: spec.kind,
            expr: spec.expr.clone(),
            window: duration_text(spec.window_seconds),
            group_by: match spec.group_by {
                None => String::new(),
                Some(LogGroupBy::Service) => "service".to_owned(),
                Some(LogGroupBy::Host) => "host".to_owned(),
            },
            comparator: spec.comparator.map(|comparator| comparator.as_str().to_owned()).unwrap_or_default(),
            threshold: spec.threshold.map(|threshold| threshold.to_string()).unwrap_or_default(),
            for_duration: duration_text(spec.for_seconds),
            keep_firing_for: duration_text(spec.keep_firing_for_seconds),
            interval: duration_text(spec.interval_seconds),
            severity: spec.severity,
            labels: pairs_text(&spec.labels),
            annotations: pairs_text(&spec.annotations),
            runbook_url: spec.runbook_url.clone().unwrap_or_default(),
            channels: spec.channels.join(", "),
            escalate_after: duration_text(spec.escalate_after_seconds),
            escalate_to: spec.escalate_to.join(", "),
            repeat_interval: duration_text(spec.repeat_interval_seconds),
            enabled: spec.enabled,
        }
    }

    /// The rule, or what in the form is not one (the backend checks the rest).
    fn to_spec(&self) -> Result<AlertRuleSpec, String> {
        let comparator = match self.comparator.as_str() {
            "" => None,
            text => Some(
                COMPARATORS
                    .into_iter()
                    .find(|comparator| comparator.as_str() == text)
                    .ok_or_else(|| format!("comparator: {text:?} is not one of > >= < <= == !="))?,
            ),
        };
        let threshold = match self.threshold.trim() {
            "" => None,
            text => Some(text.parse::<f64>().map_err(|_| format!("threshold: {text:?} is not a number"))?),
        };
        let group_by = match self.group_by.as_str() {
            "service" => Some(LogGroupBy::Service),
            "host" => Some(LogGroupBy::Host),
            _ => None,
        };
        let kind = self.kind;
        Ok(AlertRuleSpec {
            name: self.name.trim().to_owned(),
            group: self.group.trim().to_owned(),
            kind,
            expr: self.expr.trim().to_owned(),
            window_seconds: parse_duration("window", &self.window)?,
            group_by: if kind == RuleKind::Logs { group_by } else { None },
            comparator,
            threshold,
            for_seconds: parse_duration("for", &self.for_duration)?,
            keep_firing_for_seconds: parse_duration("keep firing for", &self.keep_firing_for)?,
            interval_seconds: parse_duration("interval", &self.interval)?,
            severity: self.severity,
            labels: parse_pairs("labels", &self.labels)?,
            annotations: parse_pairs("annotations", &self.annotations)?
                .into_iter()
                .filter(|(_, value)| !value.is_empty())
                .collect(),
            runbook_url: Some(self.runbook_url.trim().to_owned()).filter(|url| !url.is_empty()),
            channels: names(&self.channels),
            escalate_after_seconds: parse_duration("escalate after", &self.escalate_after)?,
            escalate_to: names(&self.escalate_to),
            repeat_interval_seconds: parse_duration("repeat every", &self.repeat_interval)?,
            enabled: self.enabled,
        })
    }
}

#[component]
pub fn AlertRulePage() -> impl IntoView {
    let params = use_params_map();
    // `/alerts/rules/new` has no id.
    let id = Memo::new(move |_| params.read().get("id"));
    let loaded = Resource::new(
        move || id.get(),
        |id| async move {
            match id {
                None => Ok(None),
                Some(text) => match text.parse::<i64>() {
                    Ok(id) => fetch_alert_rule(id).await.map(Some),
                    Err(_) => Err(UiError::invalid(format!("{text:?} is not a rule id"))),
                },
            }
        },
    );
    let session = Resource::new(|| (), |_| current_session());
    view! {
        <Title text="Alert rule · Vigil"/>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || Suspend::new(async move {
                let rule = loaded.await;
                let can_edit = session.await.is_ok_and(|session| session.role >= vigil_proto::auth::Role::Deployer);
                match rule {
                    Ok(rule) => view! { <RuleEditor rule can_edit/> }.into_any(),
                    Err(error) => view! {
                        <h1>"Alert rule"</h1>
                        <p class="error">{error.to_string()}</p>
                        <a href="/alerts">"Back to the alerts"</a>
                    }
                    .into_any(),
                }
            })}
        </Transition>
    }
}

/// A text field of the draft.
fn text_field(
    draft: RwSignal<RuleDraft>,
    class: &'static str,
    can_edit: bool,
    read: fn(&RuleDraft) -> &String,
    write: fn(&mut RuleDraft) -> &mut String,
) -> impl IntoView {
    // The attribute for the page as the server renders it, the property as it is edited.
    let initial = read(&draft.read_untracked()).clone();
    view! {
        <input class=class disabled=!can_edit value=initial prop:value=move || read(&draft.read()).clone()
            on:input=move |event| draft.update(|draft| *write(draft) = event_target_value(&event))/>
    }
}

#[component]
fn RuleEditor(rule: Option<AlertRule>, can_edit: bool) -> impl IntoView {
    let id = rule.as_ref().map_or(0, |rule| rule.id);
    let draft = RwSignal::new(rule.as_ref().map_or_else(RuleDraft::new_rule, |rule| RuleDraft::from_spec(&rule.spec)));
    let save = ServerAction::<SaveAlertRule>::new();
    let delete = ServerAction::<DeleteAlertRule>::new();
    let preview = ServerAction::<PreviewAlertRule>::new();
    let form_error = RwSignal::new(None::<String>);
    let preview_hours = RwSignal::new(3_u32);
    let confirm_delete = RwSignal::new(false);
    let navigate = use_navigate();
    Effect::new({
        let navigate = navigate.clone();
        move |_| {
            if let Some(Ok(saved)) = save.value().get()
                && id == 0
            {
                navigate(&format!("/alerts/rules/{}", saved.id), Default::default());
            }
        }
    });
    Effect::new(move |_| {
        if let Some(Ok(())) = delete.value().get() {
            navigate("/alerts", Default::default());
        }
    });
    let hydrated = RwSignal::new(false);
    Effect::new(move |_| hydrated.set(true));
    let spec_json = move || -> Option<String> {
        form_error.set(None);
        match draft.get_untracked().to_spec() {
            Ok(spec) => serde_json::to_string(&spec).ok(),
            Err(error) => {
                form_error.set(Some(error));
                None
            }
        }
    };
    let on_save = move |_| {
        if let Some(spec) = spec_json() {
            save.dispatch(SaveAlertRule { id, spec });
        }
    };
    let on_preview = move |_| {
        if let Some(spec) = spec_json() {
            preview.dispatch(PreviewAlertRule { spec, hours: preview_hours.get_untracked() });
        }
    };
    let heading = match &rule {
        None => "New alert rule".to_owned(),
        Some(rule) => format!("Alert rule: {}", rule.spec.name),
    };
    let facts = rule.as_ref().map(|rule| {
        view! {
            <p class="muted rule-facts">
                "Changed by " {rule.updated_by.clone()} " " {relative(rule.updated_at)} " · last evaluated "
                {rule.last_evaluation.map_or_else(|| "not yet".to_owned().into_any(), |at| relative(at).into_any())}
                {rule.last_duration_ms.map(|ms| format!(" ({ms} ms)"))}
            </p>
            {rule.last_error.clone().map(|error| view! { <p class="error rule-last-error">"Last evaluation failed: " {error}</p> })}
        }
    });
    let outcome = move || {
        let saved = save.value().get();
        let failed = delete.value().get().and_then(Result::err).or_else(|| saved.clone().and_then(Result::err));
        match (failed, form_error.get(), saved) {
            (_, Some(error), _) => Some(view! { <p class="error save-error">{error}</p> }.into_any()),
            (Some(error), None, _) => Some(view! { <p class="error save-error">{error.to_string()}</p> }.into_any()),
            (None, None, Some(Ok(saved))) => Some(
                view! { <p class="notice rule-saved">"Saved " {saved.spec.name} " " {relative(saved.updated_at)} "."</p> }
                    .into_any(),
            ),
            _ => None,
        }
    };
    let is_logs = move || draft.read().kind == RuleKind::Logs;
    // The channels the rule names (and escalates to), each once: one test button each.
    let channels = Memo::new(move |_| {
        let draft = draft.read();
        let mut channels: Vec<String> = Vec::new();
        for channel in names(&draft.channels).into_iter().chain(names(&draft.escalate_to)) {
            if !channels.contains(&channel) {
                channels.push(channel);
            }
        }
        channels
    });
    let buttons = can_edit.then(|| {
        let delete_button = (id != 0).then(|| {
            view! {
                {move || {
                    if confirm_delete.get() {
                        view! {
                            <span class="confirm-delete">
                                "Delete this rule and its alerts? "
                                <button class="delete-rule-confirmed" on:click=move |_| { delete.dispatch(DeleteAlertRule { id }); }>"Delete"</button>
                                <button class="cancel-delete" on:click=move |_| confirm_delete.set(false)>"Keep"</button>
                            </span>
                        }
                        .into_any()
                    } else {
                        view! { <button class="delete-rule" on:click=move |_| confirm_delete.set(true)>"Delete"</button> }.into_any()
                    }
                }}
            }
        });
        view! {
            <button class="save-rule" on:click=on_save disabled=move || save.pending().get()>"Save"</button>
            {delete_button}
        }
    });
    view! {
        <div class="rule-editor" data-hydrated=move || hydrated.get().to_string() data-rule=id>
            <div class="dashboard-head">
                <h1>{heading}</h1>
                <div class="dashboard-controls">
                    {buttons}
                    <a class="button" href="/alerts">"Back to the alerts"</a>
                </div>
            </div>
            {facts}
            {(!can_edit).then(|| view! { <p class="notice read-only">"Read only: deployers and administrators edit rules."</p> })}
            {outcome}
            <div class="rule-form">
                <label>"Name (alertname)" {text_field(draft, "rule-name", can_edit, |d| &d.name, |d| &mut d.name)}</label>
                <label>"Group" {text_field(draft, "rule-group", can_edit, |d| &d.group, |d| &mut d.group)}</label>
                <label>"Kind"
                    <select class="rule-kind" disabled=!can_edit on:change=move |event| {
                        let kind = if event_target_value(&event) == "logs" { RuleKind::Logs } else { RuleKind::Promql };
                        draft.update(|draft| draft.kind = kind);
                    }>
                        <option value="promql" selected=move || !is_logs()>"PromQL"</option>
                        <option value="logs" selected=is_logs>"log query (count of matches)"</option>
                    </select>
                </label>
                <label class="wide">
                    {move || if is_logs() { "Log query" } else { "PromQL expression" }}
                    <textarea class="rule-expr" rows="3" disabled=!can_edit prop:value=move || draft.read().expr.clone()
                        on:input=move |event| draft.update(|draft| draft.expr = event_target_value(&event))>
                        {draft.read_untracked().expr.clone()}
                    </textarea>
                </label>
                {move || is_logs().then(|| view! {
                    <label>"Window" {text_field(draft, "rule-window", can_edit, |d| &d.window, |d| &mut d.window)}</label>
                    <label>"Count per"
                        <select class="rule-group-by" disabled=!can_edit on:change=move |event| draft.update(|draft| draft.group_by = event_target_value(&event))>
                            {[("", "nothing (one count)"), ("service", "service"), ("host", "host")]
                                .into_iter()
                                .map(|(value, label)| view! { <option value=value selected=move || draft.read().group_by == value>{label}</option> })
                                .collect_view()}
                        </select>
                    </label>
                })}
                <label>"Fires when the value is"
                    <select class="rule-comparator" disabled=!can_edit on:change=move |event| draft.update(|draft| draft.comparator = event_target_value(&event))>
                        <option value="" selected=move || draft.read().comparator.is_empty()>"— (every series fires)"</option>
                        {COMPARATORS
                            .into_iter()
                            .map(|comparator| {
                                let text = comparator.as_str();
                                view! { <option value=text selected=move || draft.read().comparator == text>{text}</option> }
                            })
                            .collect_view()}
                    </select>
                </label>
                <label>"Threshold" {text_field(draft, "rule-threshold", can_edit, |d| &d.threshold, |d| &mut d.threshold)}</label>
                <label>"For (pending until)" {text_field(draft, "rule-for", can_edit, |d| &d.for_duration, |d| &mut d.for_duration)}</label>
                <label>"Keep firing for" {text_field(draft, "rule-keep-firing-for", can_edit, |d| &d.keep_firing_for, |d| &mut d.keep_firing_for)}</label>
                <label>"Evaluate every" {text_field(draft, "rule-interval", can_edit, |d| &d.interval, |d| &mut d.interval)}</label>
                <label>"Severity"
                    <select class="rule-severity" disabled=!can_edit on:change=move |event| {
                        let chosen = event_target_value(&event);
                        if let Some(severity) = SEVERITIES.into_iter().find(|severity| severity.as_str() == chosen) {
                            draft.update(|draft| draft.severity = severity);
                        }
                    }>
                        {SEVERITIES
                            .into_iter()
                            .map(|severity| view! { <option value=severity.as_str() selected=move || draft.read().severity == severity>{severity.as_str()}</option> })
                            .collect_view()}
                    </select>
                </label>
                <label class="wide">"Labels (name=value, one a line)"
                    <textarea class="rule-labels" rows="2" disabled=!can_edit prop:value=move || draft.read().labels.clone()
                        on:input=move |event| draft.update(|draft| draft.labels = event_target_value(&event))>
                        {draft.read_untracked().labels.clone()}
                    </textarea>
                </label>
                <label class="wide">"Annotations (name=value, one a line; {{ $labels.service }}, {{ $value }})"
                    <textarea class="rule-annotations" rows="3" disabled=!can_edit prop:value=move || draft.read().annotations.clone()
                        on:input=move |event| draft.update(|draft| draft.annotations = event_target_value(&event))>
                        {draft.read_untracked().annotations.clone()}
                    </textarea>
                </label>
                <label class="wide">"Runbook URL" {text_field(draft, "rule-runbook", can_edit, |d| &d.runbook_url, |d| &mut d.runbook_url)}</label>
                <label>"Channels (comma-separated)" {text_field(draft, "rule-channels", can_edit, |d| &d.channels, |d| &mut d.channels)}</label>
                <label>"Repeat every (0: never)" {text_field(draft, "rule-repeat", can_edit, |d| &d.repeat_interval, |d| &mut d.repeat_interval)}</label>
                <label>"Escalate after (0: never)" {text_field(draft, "rule-escalate-after", can_edit, |d| &d.escalate_after, |d| &mut d.escalate_after)}</label>
                <label>"Escalate to (channels)" {text_field(draft, "rule-escalate-to", can_edit, |d| &d.escalate_to, |d| &mut d.escalate_to)}</label>
                <label class="checkbox">
                    <input type="checkbox" class="rule-enabled" disabled=!can_edit prop:checked=move || draft.read().enabled
                        on:change=move |event| draft.update(|draft| draft.enabled = event_target_checked(&event))/>
                    " Enabled"
                </label>
            </div>
            {can_edit.then(|| view! {
                <section class="panel channel-tests">
                    <h2>"Test notifications"</h2>
                    <Show when=move || !channels.read().is_empty()
                        fallback=|| view! { <p class="placeholder">"The rule names no channel: the alert routes decide where its alerts go."</p> }>
                        <For each=move || channels.get() key=|channel| channel.clone() let(channel)>
                            <TestChannel channel/>
                        </For>
                    </Show>
                </section>
            })}
            <section class="panel rule-preview">
                <h2>"Preview: when would it have fired?"</h2>
                <div class="inline-form form">
                    <label>"Over the last "
                        <select class="preview-hours" on:change=move |event| {
                            if let Ok(hours) = event_target_value(&event).parse() {
                                preview_hours.set(hours);
                            }
                        }>
                            {PREVIEW_HOURS
                                .into_iter()
                                .map(|hours| view! { <option value=hours.to_string() selected=move || preview_hours.get() == hours>{format!("{hours} h")}</option> })
                                .collect_view()}
                        </select>
                    </label>
                    <button class="preview-rule" on:click=on_preview disabled=move || preview.pending().get()>"Preview"</button>
                </div>
                {move || preview.value().get().map(|result| match result {
                    Ok(result) => view! { <PreviewResult preview=result hours=preview_hours.get_untracked()/> }.into_any(),
                    Err(error) => view! { <p class="error preview-error">{error.to_string()}</p> }.into_any(),
                })}
            </section>
        </div>
    }
}

/// What a preview found: the values now, and the chart of the hours with the threshold and
/// the would-be firing spans.
#[component]
fn PreviewResult(preview: RulePreview, hours: u32) -> impl IntoView {
    let RulePreview { now, series, step_seconds, comparator, threshold, spans } = preview;
    let firing_now = now.iter().filter(|sample| sample.holds).count();
    let condition = match (comparator, threshold) {
        (Some(comparator), Some(threshold)) => Some((comparator, threshold)),
        _ => None,
    };
    let now_table = if now.is_empty() {
        view! { <p class="placeholder preview-now-empty">"No value now: nothing would fire."</p> }.into_any()
    } else {
        view! {
            <p class="preview-summary">
                {format!("Now: {firing_now} of {} would fire.", now.len())}
            </p>
            <table class="table preview-now">
                <thead><tr><th>"Series"</th><th>"Value"</th><th>"Fires"</th></tr></thead>
                <tbody>
                    {now
                        .into_iter()
                        .map(|sample| view! {
                            <tr class="preview-sample" class:holds=sample.holds>
                                <td><code>{series_name(&sample.labels)}</code></td>
                                <td class="value">{value_text(sample.value)}</td>
                                <td class="holds">{if sample.holds { "yes" } else { "no" }}</td>
                            </tr>
                        })
                        .collect_view()}
                </tbody>
            </table>
        }
        .into_any()
    };
    let bands: Vec<Band> = spans
        .iter()
        .map(|span| {
            let name = series_name(&span.labels);
            Band {
                start: span.start.as_unix_nanos() as f64 / 1e9,
                end: span.end.map(|end| end.as_unix_nanos() as f64 / 1e9),
                label: "would fire".to_owned(),
                title: if span.end.is_some() {
                    format!("would have fired: {name}")
                } else {
                    format!("would fire: {name}")
                },
                class: "firing-span",
            }
        })
        .collect();
    let spans_text = match spans.len() {
        0 => format!("It would not have fired in the last {hours} h."),
        1 => format!("It would have fired once in the last {hours} h."),
        count => format!("It would have fired {count} times in the last {hours} h."),
    };
    let chart = if series.is_empty() {
        view! { <p class="placeholder no-data">"No data in this range."</p> }.into_any()
    } else {
        let names = series.iter().map(|series| series_name(&series.labels)).collect();
        let result = QueryResult { result_type: "matrix".to_owned(), series, step_seconds: Some(step_seconds) };
        let threshold = condition.map(|(comparator, value)| Threshold {
            value,
            label: format!("threshold {} {}", comparator.as_str(), value_text(value)),
        });
        let zoom = Callback::new(|_: (f64, f64)| ());
        let bands = Signal::stored(bands);
        match threshold {
            Some(threshold) => view! { <Chart result names unit="" stacked=false zoom bands threshold/> }.into_any(),
            None => view! { <Chart result names unit="" stacked=false zoom bands/> }.into_any(),
        }
    };
    view! {
        <div class="preview-result">
            {now_table}
            <p class="preview-spans" data-spans=spans.len()>{spans_text}</p>
            {chart}
        </div>
    }
}

/// "Send test notification" for one channel, with how it went.
#[component]
fn TestChannel(channel: String) -> impl IntoView {
    let test = ServerAction::<SendTestNotification>::new();
    let name = channel.clone();
    view! {
        <div class="channel-test" data-channel=channel.clone()>
            <code>{channel.clone()}</code>" "
            <button class="test-channel" disabled=move || test.pending().get()
                on:click=move |_| { test.dispatch(SendTestNotification { channel: name.clone() }); }>
                "Send test notification"
            </button>
            " "
            <TestOutcome test/>
        </div>
    }
}

#[component]
fn TestOutcome(test: ServerAction<SendTestNotification>) -> impl IntoView {
    move || {
        if test.pending().get() {
            return Some(view! { <span class="test-result muted">"sending…"</span> }.into_any());
        }
        test.value().get().map(|result| match result {
            Ok(channel) => {
                view! { <span class="test-result delivered">{format!("delivered to {channel}")}</span> }.into_any()
            }
            Err(error) => view! { <span class="test-result error">{error.to_string()}</span> }.into_any(),
        })
    }
}

/// A test notification through any channel, by name (the Alerts page's, for deployers).
#[component]
pub(crate) fn TestChannelForm() -> impl IntoView {
    let test = ServerAction::<SendTestNotification>::new();
    view! {
        <ActionForm action=test attr:class="form inline-form test-channel-form">
            <label>"Test a channel " <input name="channel" class="test-channel-name" placeholder="channel name" required/></label>
            <button type="submit" class="test-channel" disabled=move || test.pending().get()>"Send test notification"</button>
            <TestOutcome test/>
        </ActionForm>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_with_units() {
        assert_eq!(parse_duration("for", "").unwrap(), 0);
        assert_eq!(parse_duration("for", "90").unwrap(), 90);
        assert_eq!(parse_duration("for", "90s").unwrap(), 90);
        assert_eq!(parse_duration("for", " 5m ").unwrap(), 300);
        assert_eq!(parse_duration("for", "2h").unwrap(), 7200);
        assert_eq!(parse_duration("for", "1d").unwrap(), 86_400);
        assert!(parse_duration("for", "5x").unwrap_err().starts_with("for: "));
        assert!(parse_duration("for", "-5m").is_err());
        assert!(parse_duration("for", "m").is_err());
        for seconds in [0, 45, 300, 7200, 86_400, 90] {
            assert_eq!(parse_duration("for", &duration_text(seconds)).unwrap(), seconds);
        }
        assert_eq!(duration_text(90), "90s");
    }

    #[test]
    fn a_rule_survives_the_form() {
        let spec: AlertRuleSpec = serde_json::from_value(serde_json::json!({
            "name": "HighLatency", "group": "api", "kind": "promql", "expr": "histogram_quantile(0.99, x) > 0",
            "comparator": ">=", "threshold": 0.25, "for_seconds": 300, "keep_firing_for_seconds": 60,
            "interval_seconds": 30, "severity": "critical", "labels": {"team": "payments"},
            "annotations": {"summary": "p99 is {{ $value }} == high"}, "runbook_url": "https://runbooks/latency",
            "channels": ["pager", "slack"], "escalate_after_seconds": 1800, "escalate_to": ["boss"],
            "repeat_interval_seconds": 3600, "enabled": false,
        }))
        .unwrap();
        assert_eq!(RuleDraft::from_spec(&spec).to_spec().unwrap(), spec);
        let logs: AlertRuleSpec = serde_json::from_value(serde_json::json!({
            "name": "Errors", "kind": "logs", "expr": "level:error", "window_seconds": 600, "group_by": "service",
            "comparator": ">", "threshold": 10.0,
        }))
        .unwrap();
        assert_eq!(RuleDraft::from_spec(&logs).to_spec().unwrap(), logs);
    }

    #[test]
    fn what_is_not_a_rule_is_named() {
        let draft = |change: fn(&mut RuleDraft)| {
            let mut draft = RuleDraft::new_rule();
            change(&mut draft);
            draft.to_spec()
        };
        assert_eq!(draft(|d| d.threshold = "high".into()).unwrap_err(), "threshold: \"high\" is not a number");
        assert_eq!(draft(|d| d.labels = "team=a\nnope".into()).unwrap_err(), "labels: line 2 is not name=value");
        assert!(draft(|d| d.interval = "soon".into()).unwrap_err().starts_with("interval: "));
        // An empty annotation (the new rule's `summary=`) is left out; a PromQL rule has no group_by.
        let spec = draft(|d| d.group_by = "host".into()).unwrap();
        assert!(spec.annotations.is_empty() && spec.group_by.is_none());
        assert_eq!(spec.comparator, Some(Comparator::Above));
    }
}
