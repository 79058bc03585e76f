//! The Agents page: every agent that reported, its state (healthy, degraded, stale), when it was
//! last seen, its version and system, its disk buffer, and the counters of each source.

use leptos::prelude::*;
use leptos_meta::Title;
use vigil_proto::agents::AgentStatus;

use super::explore::format_value;
use super::{ago, now_nanos};
use crate::metrics::list_agents;

#[component]
fn AgentRow(agent: AgentStatus) -> impl IntoView {
    let silent = (now_nanos() - agent.last_seen.as_unix_nanos()) / 1_000_000_000;
    let report = agent.report;
    let buffer = format!(
        "{} ({} batches) of {}",
        format_value(report.buffer.logs_bytes as f64 + report.buffer.metrics_bytes as f64, "bytes"),
        report.buffer.logs_batches + report.buffer.metrics_batches,
        format_value(report.buffer.max_bytes as f64, "bytes"),
    );
    let state = agent.state.as_str();
    view! {
        <tr class=format!("agent-row state-{state}") data-host=agent.host.clone()>
            <td class="host">{agent.host.clone()}</td>
            <td class="state">{state}</td>
            <td class="last-seen" title=agent.last_seen.to_string()>{ago(silent)}</td>
            <td class="version">{report.version.clone()}</td>
            <td class="os">{report.os.clone()}</td>
            <td class="buffer">
                {buffer}
                {(report.buffer.dropped_records > 0).then(|| view! { <span class="dropped">{format!(", {} dropped", report.buffer.dropped_records)}</span> })}
            </td>
            <td class="shipped">{report.shipped_records}</td>
            <td class="sources">
                <ul>
                    {report
                        .sources
                        .into_iter()
                        .map(|source| {
                            let detail = match source.kind.as_str() {
                                "file" => format!("{} records, {} files, {} parse errors", source.records, source.active, source.errors),
                                _ => format!("{} samples, {}, {} failures", source.records, if source.active == 1 { "up" } else { "down" }, source.errors),
                            };
                            let class = format!("source source-{}", source.kind);
                            view! {
                                <li class=class title=source.last_error.clone().unwrap_or_default()>
                                    <strong>{source.name}</strong>" "<span class="kind">{source.kind}</span>": "{detail}
                                </li>
                            }
                        })
                        .collect_view()}
                </ul>
            </td>
            <td class="last-error">{report.last_error.unwrap_or_default()}</td>
        </tr>
    }
}

#[component]
pub fn AgentsPage() -> impl IntoView {
    let agents = Resource::new(|| (), |_| list_agents());
    view! {
        <Title text="Agents · Vigil"/>
        <h1>"Agents"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                agents
                    .get()
                    .map(|result| match result {
                        Ok(agents) if agents.is_empty() => view! {
                            <p class="placeholder">
                                "No agent has reported yet. Install vigil-agent on a host with a token of scope ingest; it appears here with its first heartbeat."
                            </p>
                        }
                        .into_any(),
                        Ok(agents) => view! {
                            <table class="table agents">
                                <thead>
                                    <tr>
                                        <th>"Host"</th><th>"State"</th><th>"Last seen"</th><th>"Version"</th><th>"System"</th>
                                        <th>"Buffer"</th><th>"Shipped"</th><th>"Sources"</th><th>"Last error"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {agents.into_iter().map(|agent| view! { <AgentRow agent/> }).collect_view()}
                                </tbody>
                            </table>
                        }
                        .into_any(),
                        Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                    })
            }}
        </Transition>
    }
}
