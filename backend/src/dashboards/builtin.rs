//! Dashboards generated, not drawn: **Hosts** from the node_exporter names the agent produces
//! (CPU, memory, load, disks, filesystems, network per host), and one **Service** dashboard
//! per configured service: RED (rate, errors, duration) from its request counter and
//! duration histogram, whose names are configurable per service, and its logs by level.

use vigil_proto::dashboards::{
    DashboardSpec, DashboardSummary, Panel, PanelKind, PanelQuery, Row, Threshold, Variable,
};

use super::DashboardError;
use crate::config::ServiceConfig;
use crate::prometheus::query::Prometheus;
use crate::store::{Database, millis_to_timestamp, now_millis};
use vigil_logstore::LogStore;

fn series(title: &str, width: u8, unit: &str, queries: &[(&str, &str)], stacked: bool) -> Panel {
    Panel {
        title: title.to_owned(),
        kind: PanelKind::TimeSeries {
            queries: queries
                .iter()
                .map(|(expr, legend)| PanelQuery { expr: (*expr).to_owned(), legend: (*legend).to_owned() })
                .collect(),
            stacked,
        },
        width,
        unit: Some(unit.to_owned()),
    }
}

fn stat(title: &str, unit: &str, query: String, thresholds: &[(f64, &str)]) -> Panel {
    Panel {
        title: title.to_owned(),
        kind: PanelKind::Stat {
            query,
            thresholds: thresholds
                .iter()
                .map(|(value, color)| Threshold { value: *value, color: (*color).to_owned() })
                .collect(),
        },
        width: 3,
        unit: Some(unit.to_owned()),
    }
}

/// The Hosts dashboard; `$host` is the `instance` label.
pub fn hosts() -> DashboardSpec {
    const HOST: &str = r#"instance=~"$host""#;
    let with_host = |template: &str| template.replace("HOST", HOST);
    let cpu = with_host(r#"100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle",HOST}[5m])))"#);
    let memory = with_host("100 * (1 - node_memory_MemAvailable_bytes{HOST} / node_memory_MemTotal_bytes{HOST})");
    let filesystem = with_host(
        r#"100 * (1 - node_filesystem_avail_bytes{fstype!~"tmpfs|overlay",HOST} / node_filesystem_size_bytes{fstype!~"tmpfs|overlay",HOST})"#,
    );
    let load = [with_host("node_load1{HOST}"), with_host("node_load5{HOST}"), with_host("node_load15{HOST}")];
    let disk_read = with_host("rate(node_disk_read_bytes_total{HOST}[5m])");
    let disk_written = with_host("rate(node_disk_written_bytes_total{HOST}[5m])");
    let received = with_host(r#"rate(node_network_receive_bytes_total{device!="lo",HOST}[5m])"#);
    let transmitted = with_host(r#"rate(node_network_transmit_bytes_total{device!="lo",HOST}[5m])"#);
    let modes = with_host(r#"sum by (mode) (rate(node_cpu_seconds_total{mode!="idle",HOST}[5m]))"#);
    DashboardSpec {
        title: "Hosts".to_owned(),
        description: "CPU, memory, load, disks, filesystems and network of every host (node_exporter names)."
            .to_owned(),
        tags: vec!["builtin".to_owned(), "hosts".to_owned()],
        variables: vec![Variable {
            name: "host".to_owned(),
            label: "instance".to_owned(),
            selector: Some("node_uname_info".to_owned()),
            multi: true,
            include_all: true,
        }],
        range: "1h".to_owned(),
        refresh_seconds: Some(30),
        rows: vec![
            Row {
                title: "CPU and memory".to_owned(),
                collapsed: false,
                panels: vec![
                    series("CPU busy", 6, "percent", &[(&cpu, "{{instance}}")], false),
                    series("CPU by mode", 6, "cores", &[(&modes, "{{mode}}")], true),
                    series("Memory used", 6, "percent", &[(&memory, "{{instance}}")], false),
                    series(
                        "Load",
                        6,
                        "none",
                        &[(&load[0], "1m {{instance}}"), (&load[1], "5m {{instance}}"), (&load[2], "15m {{instance}}")],
                        false,
                    ),
                ],
            },
            Row {
                title: "Disks and network".to_owned(),
                collapsed: false,
                panels: vec![
                    series("Filesystem used", 4, "percent", &[(&filesystem, "{{instance}} {{mountpoint}}")], false),
                    series(
                        "Disk throughput",
                        4,
                        "Bps",
                        &[
                            (&disk_read, "read {{instance}} {{device}}"),
                            (&disk_written, "written {{instance}} {{device}}"),
                        ],
                        false,
                    ),
                    series(
                        "Network",
                        4,
                        "Bps",
                        &[(&received, "in {{instance}} {{device}}"), (&transmitted, "out {{instance}} {{device}}")],
                        false,
                    ),
                ],
            },
        ],
    }
}

/// The Service dashboard of one service.
pub fn service(config: &ServiceConfig) -> DashboardSpec {
    let selector = format!(r#"{}="{}""#, config.match_label, config.name);
    let requests = &config.requests_metric;
    let duration = &config.duration_metric;
    let status = &config.status_label;
    let rate = format!("sum(rate({requests}{{{selector}}}[5m]))");
    let errors =
        format!(r#"sum(rate({requests}{{{selector},{status}=~"5.."}}[5m])) / sum(rate({requests}{{{selector}}}[5m]))"#);
    let quantile =
        |q: &str| format!("histogram_quantile({q}, sum by (le) (rate({duration}_bucket{{{selector}}}[5m])))");
    let by_status = format!("sum by ({status}) (rate({requests}{{{selector}}}[5m]))");
    DashboardSpec {
        title: format!("Service: {}", config.name),
        description: format!("Requests, errors and duration of {}, and its logs.", config.name),
        tags: vec!["builtin".to_owned(), "service".to_owned(), config.name.clone()],
        variables: Vec::new(),
        range: "1h".to_owned(),
        refresh_seconds: Some(30),
        rows: vec![
            Row {
                title: "Now".to_owned(),
                collapsed: false,
                panels: vec![
                    stat("Request rate", "reqps", rate.clone(), &[]),
                    stat(
                        "Error ratio",
                        "percentunit",
                        errors.clone(),
                        &[(0.0, "green"), (0.01, "yellow"), (0.05, "red")],
                    ),
                    stat("Latency p50", "s", quantile("0.5"), &[]),
                    stat("Latency p99", "s", quantile("0.99"), &[(0.0, "green"), (0.5, "yellow"), (1.0, "red")]),
                ],
            },
            Row {
                title: "Requests, errors, duration".to_owned(),
                collapsed: false,
                panels: vec![
                    series("Requests by status", 4, "reqps", &[(&by_status, &format!("{{{{{status}}}}}"))], true),
                    series("Error ratio", 4, "percentunit", &[(&errors, "errors")], false),
                    series("Latency", 4, "s", &[(&quantile("0.5"), "p50"), (&quantile("0.99"), "p99")], false),
                ],
            },
            Row {
                title: "Logs".to_owned(),
                collapsed: false,
                panels: vec![Panel {
                    title: "Log volume by level".to_owned(),
                    kind: PanelKind::Logs { query: format!("service:\"{}\"", config.name) },
                    width: 12,
                    unit: None,
                }],
            },
        ],
    }
}

/// The queries of a service's Overview row: request rate, error ratio, p99 latency.
pub fn health_queries(config: &ServiceConfig) -> [String; 3] {
    let selector = format!(r#"{}="{}""#, config.match_label, config.name);
    let (requests, duration, status) = (&config.requests_metric, &config.duration_metric, &config.status_label);
    [
        format!("sum(rate({requests}{{{selector}}}[5m]))"),
        format!(r#"sum(rate({requests}{{{selector},{status}=~"5.."}}[5m])) / sum(rate({requests}{{{selector}}}[5m]))"#),
        format!("histogram_quantile(0.99, sum by (le) (rate({duration}_bucket{{{selector}}}[5m])))"),
    ]
}

/// The generated dashboards, as summaries whose uid is their path: `hosts`, `services/<name>`.
pub fn summaries(services: &[ServiceConfig]) -> Vec<DashboardSummary> {
    let now = millis_to_timestamp(now_millis());
    let summary = |uid: String, spec: DashboardSpec| DashboardSummary {
        uid,
        title: spec.title,
        tags: spec.tags,
        version: 0,
        updated_at: now,
    };
    let mut list = vec![summary("hosts".to_owned(), hosts())];
    for config in services {
        list.push(summary(format!("services/{}", config.name), service(config)));
    }
    list
}

/// The Service dashboard of the configured service `name`.
pub fn service_named(services: &[ServiceConfig], name: &str) -> Result<DashboardSpec, DashboardError> {
    let config = services.iter().find(|config| config.name == name);
    config.map(service).ok_or_else(|| DashboardError::NoService(name.to_owned()))
}

/// A generated dashboard by its path (`hosts`, `services/<name>`); `None` for other paths.
pub fn find(services: &[ServiceConfig], path: &str) -> Option<Result<DashboardSpec, DashboardError>> {
    if path == "hosts" {
        return Some(Ok(hosts()));
    }
    path.strip_prefix("services/").map(|name| service_named(services, name))
}

/// A service's health now: its RED values from Prometheus (absent when it has none or is
/// away), its error logs of the last 15 minutes, and a state: critical past 5 % errors or a
/// 1 s p99, warning past 1 % or 0.5 s, with error logs or with an agent of the service not
/// healthy, unknown without metrics.
pub async fn health(
    prometheus: &Prometheus,
    log_store: &dyn LogStore,
    database: &Database,
    config: &ServiceConfig,
) -> vigil_proto::dashboards::ServiceHealth {
    let [rate, errors, p99] = health_queries(config);
    let mut problem = None;
    let mut value = async |query: String| match prometheus.instant(&query, None).await {
        Ok(result) => result.series.first().and_then(|series| series.points.first()).and_then(|(_, value)| *value),
        Err(error) => {
            problem.get_or_insert(error.to_string());
            None
        }
    };
    let request_rate = value(rate).await;
    let error_ratio = value(errors).await;
    let latency_p99 = value(p99).await;
    let now = vigil_proto::Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).ok();
    let log_errors = match now {
        Some(now) => {
            let query = vigil_proto::LogQuery {
                q: format!(r#"service:"{}" AND level:(error OR fatal)"#, config.name),
                start: Some(now.saturating_add_nanos(-15 * 60 * 1_000_000_000)),
                end: None,
                limit: Some(1),
                cursor: None,
                track_total_hits: Some(vigil_proto::TrackTotalHits::All),
            };
            log_store.search(query).await.map(|page| page.total).unwrap_or(0)
        }
        None => 0,
    };
    // The agents shipping this service's logs, and how many of them are healthy.
    let agents: Vec<_> = crate::agents::statuses(database)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|agent| {
            agent.report.sources.iter().any(|source| source.service.as_deref() == Some(config.name.as_str()))
        })
        .collect();
    let agents_total = agents.len() as u64;
    let agents_healthy =
        agents.iter().filter(|agent| agent.state == vigil_proto::agents::AgentState::Healthy).count() as u64;
    let state = match (request_rate, error_ratio.unwrap_or(0.0), latency_p99.unwrap_or(0.0)) {
        (None, _, _) if log_errors > 0 || agents_healthy < agents_total => "warning",
        (None, _, _) => "unknown",
        (_, errors, p99) if errors > 0.05 || p99 > 1.0 => "critical",
        (_, errors, p99) if errors > 0.01 || p99 > 0.5 || log_errors > 0 || agents_healthy < agents_total => "warning",
        _ => "ok",
    };
    vigil_proto::dashboards::ServiceHealth {
        name: config.name.clone(),
        request_rate,
        error_ratio,
        latency_p99,
        log_errors,
        state: state.to_owned(),
        problem,
        agents_total,
        agents_healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_dashboards_pass_the_dashboard_rules() {
        crate::dashboards::validate(&hosts()).unwrap();
        let shop: ServiceConfig = toml_service("name = \"shop\"\nrequests_metric = \"shop_requests_total\"");
        let spec = service(&shop);
        crate::dashboards::validate(&spec).unwrap();
        let PanelKind::Stat { query, .. } = &spec.rows[0].panels[0].kind else { panic!("a stat") };
        assert_eq!(query, r#"sum(rate(shop_requests_total{service="shop"}[5m]))"#);
    }

    fn toml_service(text: &str) -> ServiceConfig {
        use figment::providers::Format;
        figment::Figment::new().merge(figment::providers::Toml::string(text)).extract().unwrap()
    }
}
