//! The Overview: every configured service with its request rate, error ratio, p99 latency and
//! error logs of the last 15 minutes and the health of the agents shipping its logs, coloured by
//! state; a row opens the service's dashboard.

use leptos::prelude::*;
use leptos_meta::Title;

use super::encode;
use super::explore::format_value;
use crate::metrics::overview;

#[component]
pub fn OverviewPage() -> impl IntoView {
    let services = Resource::new(|| (), |_| overview());
    let number =
        |value: Option<f64>, unit: &str| value.map_or_else(|| "—".to_owned(), |value| format_value(value, unit));
    view! {
        <Title text="Overview · Vigil"/>
        <h1>"Overview"</h1>
        <Transition fallback=|| view! { <p class="loading">"Loading…"</p> }>
            {move || {
                services
                    .get()
                    .map(|result| match result {
                        Ok(services) if services.is_empty() => view! {
                            <p class="placeholder">"No services are configured yet: add [[services]] to the configuration."</p>
                        }
                        .into_any(),
                        Ok(services) => view! {
                            <table class="table overview">
                                <thead>
                                    <tr>
                                        <th>"Service"</th><th>"Requests"</th><th>"Errors"</th><th>"p99"</th>
                                        <th>"Error logs (15 min)"</th><th>"Agents"</th><th>"State"</th>
                                    </tr>
                                </thead>
                                <tbody>
                                    {services
                                        .into_iter()
                                        .map(|service| {
                                            let href = format!("/dashboard?uid={}", encode(&format!("builtin/services/{}", service.name)));
                                            view! {
                                                <tr class=format!("service-row state-{}", service.state) data-service=service.name.clone()>
                                                    <td><a href=href>{service.name.clone()}</a></td>
                                                    <td class="rate">{number(service.request_rate, "reqps")}" /s"</td>
                                                    <td class="errors">{number(service.error_ratio, "percentunit")}</td>
                                                    <td class="p99">{number(service.latency_p99, "s")}</td>
                                                    <td class="log-errors">{service.log_errors}</td>
                                                    <td class="agents">
                                                        {if service.agents_total == 0 {
                                                            "—".to_owned()
                                                        } else {
                                                            format!("{}/{} healthy", service.agents_healthy, service.agents_total)
                                                        }}
                                                    </td>
                                                    <td class="state" title=service.problem.clone().unwrap_or_default()>{service.state.clone()}</td>
                                                </tr>
                                            }
                                        })
                                        .collect_view()}
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
