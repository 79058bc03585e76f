//! Alertmanager's v2 API (`/api/v2/...`) over [`crate::alerts`], so that Prometheus sends its
//! alerts to Vigil (`alerting.alertmanagers` with a token in `authorization`) and `amtool`
//! lists alerts and adds, lists and expires silences against Vigil; and Alertmanager's webhook
//! (version 4, and earlier) at `/api/v1/alerts/alertmanager`, for a site that keeps its Alertmanager.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::{Extension, Json};
use vigil_proto::alertmanager::{
    AlertGroup, AlertStatus, GettableAlert, GettableSilence, PostableAlert, PostableSilence, Receiver, SilenceCreated,
    SilenceStatus, WebhookMessage, ZERO_TIME,
};
use vigil_proto::alerts::{Alert, Matcher, Silence, SilenceState, SilenceWrite};
use vigil_proto::{ErrorCode, Timestamp};

use super::{bounded_body, json_body};
use crate::alerts::external::Incoming;
use crate::alerts::{self, silences};
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;
use crate::store::now_millis;

/// Prometheus sends up to its `max_alerts_per_request`-style batches of 64 by default; a large
/// rule group may send more.
const MAX_BODY_BYTES: usize = 8 << 20;

/// An Alertmanager time: RFC 3339, or absent (also the zero time or empty).
fn time(what: &str, text: Option<&str>) -> Result<Option<Timestamp>, HttpError> {
    match text.map(str::trim) {
        None | Some("") | Some(ZERO_TIME) => Ok(None),
        Some(text) if text.starts_with("0001-01-01") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|error| {
            HttpError::new(ErrorCode::InvalidRecord, format!("{what} {text:?} is not an RFC 3339 time: {error}"))
        }),
    }
}

/// `POST /api/v2/alerts`: Prometheus' alerts, firing until their `endsAt`.
pub async fn post_alerts(State(state): State<Arc<AppState>>, body: Body) -> Result<StatusCode, HttpError> {
    let posted: Vec<PostableAlert> = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "alerts")?;
    let mut incoming = Vec::with_capacity(posted.len());
    for (index, alert) in posted.into_iter().enumerate() {
        incoming.push(Incoming {
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at: time(&format!("alert {index}: startsAt"), alert.starts_at.as_deref())?,
            ends_at: time(&format!("alert {index}: endsAt"), alert.ends_at.as_deref())?,
        });
    }
    alerts::external::receive(&state.database, &state.config.alerts, "prometheus", incoming).await?;
    Ok(StatusCode::OK)
}

/// `POST /api/v1/alerts/alertmanager`: an Alertmanager's webhook (version 4).
pub async fn alertmanager_webhook(State(state): State<Arc<AppState>>, body: Body) -> Result<StatusCode, HttpError> {
    // Version 4 (Alertmanager 0.16 and later) and the earlier ones have the same fields.
    let message: WebhookMessage = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "Alertmanager webhook")?;
    let mut incoming = Vec::with_capacity(message.alerts.len());
    for (index, alert) in message.alerts.into_iter().enumerate() {
        let ends_at = match alert.status.as_str() {
            "resolved" => Some(
                time(&format!("alert {index}: endsAt"), alert.ends_at.as_deref())?
                    .unwrap_or_else(|| crate::store::millis_to_timestamp(now_millis())),
            ),
            "firing" => None,
            other => {
                return Err(HttpError::new(
                    ErrorCode::InvalidRecord,
                    format!("alert {index}: status {other:?} is not firing or resolved"),
                ));
            }
        };
        incoming.push(Incoming {
            labels: alert.labels,
            annotations: alert.annotations,
            starts_at: time(&format!("alert {index}: startsAt"), alert.starts_at.as_deref())?,
            ends_at,
        });
    }
    alerts::external::receive(&state.database, &state.config.alerts, "alertmanager", incoming).await?;
    Ok(StatusCode::OK)
}

/// The query of `GET /api/v2/alerts`: repeated `filter` matchers and Alertmanager's flags.
struct AlertFilter {
    matchers: Vec<Matcher>,
    active: bool,
    silenced: bool,
}

fn alert_filter(uri: &Uri) -> Result<AlertFilter, HttpError> {
    let mut filter = AlertFilter { matchers: Vec::new(), active: true, silenced: true };
    let flag = |name: &str, value: &str| match value {
        "true" | "" => Ok(true),
        "false" => Ok(false),
        other => {
            Err(HttpError::new(ErrorCode::InvalidParameter, format!("{name} must be true or false, not {other:?}")))
        }
    };
    for (name, value) in url::form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
        match name.as_ref() {
            "filter" => {
                filter.matchers.push(value.parse().map_err(|error: vigil_proto::alerts::ParseMatcherError| {
                    HttpError::new(ErrorCode::InvalidParameter, error.to_string())
                })?)
            }
            "active" => filter.active = flag("active", &value)?,
            "silenced" => filter.silenced = flag("silenced", &value)?,
            "inhibited" | "unprocessed" | "receiver" => {}
            _ => {}
        }
    }
    Ok(filter)
}

/// The firing alerts as Alertmanager shows them, with the silences that suppress them.
async fn gettable_alerts(state: &AppState, filter: &AlertFilter) -> Result<Vec<GettableAlert>, HttpError> {
    let now = now_millis();
    let active = silences::active(&state.database, now).await?;
    let matching = silences::Compiled::new("filter", &filter.matchers)?;
    let firing = alerts::firing(&state.database).await?;
    let rules = alerts::list_rules(&state.database).await?;
    let resolve_timeout = i64::try_from(state.config.alerts.resolve_timeout_seconds * 1000).unwrap_or(i64::MAX / 2);
    let mut out = Vec::new();
    for alert in firing {
        if !matching.matches(&alert.labels) {
            continue;
        }
        let silenced_by: Vec<String> =
            active.iter().filter(|silence| silence.matches(&alert.labels)).map(|silence| silence.id.clone()).collect();
        if (!silenced_by.is_empty() && !filter.silenced) || (silenced_by.is_empty() && !filter.active) {
            continue;
        }
        let channels = match rules.iter().find(|rule| rule.id == alert.rule_id) {
            Some(rule) => {
                alerts::Routing::of_rule(&rule.spec, &state.config.alerts.routes, &alert.labels).channel_names()
            }
            None => alerts::route(&state.config.alerts.routes, &alert.labels),
        };
        out.push(gettable(&alert, &silenced_by, channels, &state.config.alerts.external_url, now + resolve_timeout));
    }
    Ok(out)
}

fn gettable(
    alert: &Alert,
    silenced_by: &[String],
    channels: Vec<String>,
    external_url: &str,
    lasting: i64,
) -> GettableAlert {
    let starts = alert.firing_since.unwrap_or(alert.active_since);
    let ends = alert
        .ends_at
        .filter(|ends| ends.as_unix_nanos() < i64::MAX / 4)
        .unwrap_or_else(|| crate::store::millis_to_timestamp(lasting));
    GettableAlert {
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        starts_at: starts.to_string(),
        ends_at: ends.to_string(),
        updated_at: crate::store::millis_to_timestamp(now_millis()).to_string(),
        generator_url: format!("{external_url}/alerts/{}", alert.fingerprint),
        fingerprint: alert.fingerprint.clone(),
        receivers: channels.into_iter().map(|name| Receiver { name }).collect(),
        status: AlertStatus {
            state: if silenced_by.is_empty() { "active" } else { "suppressed" }.to_owned(),
            silenced_by: silenced_by.to_vec(),
            inhibited_by: Vec::new(),
        },
    }
}

/// `GET /api/v2/alerts?filter=...&active=&silenced=`.
pub async fn get_alerts(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Json<Vec<GettableAlert>>, HttpError> {
    Ok(Json(gettable_alerts(&state, &alert_filter(&uri)?).await?))
}

/// `GET /api/v2/alerts/groups`: the alerts grouped by `alertname`.
pub async fn get_groups(State(state): State<Arc<AppState>>, uri: Uri) -> Result<Json<Vec<AlertGroup>>, HttpError> {
    let mut groups: BTreeMap<String, Vec<GettableAlert>> = BTreeMap::new();
    for alert in gettable_alerts(&state, &alert_filter(&uri)?).await? {
        groups.entry(alert.labels.get("alertname").cloned().unwrap_or_default()).or_default().push(alert);
    }
    Ok(Json(
        groups
            .into_iter()
            .map(|(alertname, alerts)| AlertGroup {
                labels: [("alertname".to_owned(), alertname)].into(),
                receiver: Receiver {
                    name: alerts[0].receivers.first().map_or_else(|| "vigil".to_owned(), |r| r.name.clone()),
                },
                alerts,
            })
            .collect(),
    ))
}

fn gettable_silence(silence: Silence) -> GettableSilence {
    GettableSilence {
        id: silence.id,
        status: SilenceStatus {
            state: match silence.state {
                SilenceState::Pending => "pending",
                SilenceState::Active => "active",
                SilenceState::Expired => "expired",
            }
            .to_owned(),
        },
        updated_at: silence.updated_at.to_string(),
        matchers: silence.matchers,
        starts_at: silence.starts_at.to_string(),
        ends_at: silence.ends_at.to_string(),
        created_by: silence.created_by,
        comment: silence.comment,
    }
}

/// `GET /api/v2/silences`.
pub async fn get_silences(State(state): State<Arc<AppState>>) -> Result<Json<Vec<GettableSilence>>, HttpError> {
    Ok(Json(silences::list(&state.database).await?.into_iter().map(gettable_silence).collect()))
}

/// `GET /api/v2/silence/{id}`.
pub async fn get_silence(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<GettableSilence>, HttpError> {
    Ok(Json(gettable_silence(silences::get(&state.database, &id).await?)))
}

/// `POST /api/v2/silences`: creates, or with `id` changes, a silence.
pub async fn post_silence(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<Json<SilenceCreated>, HttpError> {
    let posted: PostableSilence = json_body(&bounded_body(body, 64 << 10).await?, "silence")?;
    let ends_at = time("endsAt", Some(&posted.ends_at))?
        .ok_or_else(|| HttpError::new(ErrorCode::InvalidParameter, "endsAt is required"))?;
    let write = SilenceWrite {
        matchers: posted.matchers,
        starts_at: time("startsAt", Some(&posted.starts_at))?,
        ends_at,
        comment: posted.comment,
    };
    let actor = client.actor(Some(&caller));
    let saved = silences::save(
        &state.database,
        &actor,
        posted.id.as_deref().filter(|id| !id.is_empty()),
        &posted.created_by,
        &write,
    )
    .await?;
    Ok(Json(SilenceCreated { silence_id: saved.id }))
}

/// `DELETE /api/v2/silence/{id}`: expires it.
pub async fn delete_silence(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    silences::expire(&state.database, &client.actor(Some(&caller)), &id).await?;
    Ok(StatusCode::OK)
}

/// `GET /api/v2/receivers`: the notification channels.
pub async fn receivers(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Receiver>>, HttpError> {
    let channels = crate::integrations::list(&state.database).await?;
    Ok(Json(
        channels
            .into_iter()
            .filter(|integration| integration.kind.parse().is_ok_and(alerts::is_channel))
            .map(|integration| Receiver { name: integration.name })
            .collect(),
    ))
}

/// `GET /api/v2/status`: what `amtool config` and Grafana's Alertmanager data source read.
pub async fn status(State(state): State<Arc<AppState>>) -> Result<Json<serde_json::Value>, HttpError> {
    let lease = state.database.lease(alerts::evaluator::LEASE).await?;
    let routes: Vec<serde_json::Value> = state
        .config
        .alerts
        .routes
        .iter()
        .map(|route| serde_json::json!({"matchers": route.matchers, "receivers": route.channels, "continue": route.continue_matching}))
        .collect();
    Ok(Json(serde_json::json!({
        "cluster": {
            "name": lease.as_ref().map(|lease| lease.holder.clone()).unwrap_or_default(),
            "status": "ready",
            "peers": [],
        },
        "config": {"original": serde_json::to_string_pretty(&serde_json::json!({"routes": routes})).unwrap_or_default()},
        "uptime": crate::store::millis_to_timestamp(state.started_at_millis).to_string(),
        "versionInfo": {
            "version": env!("CARGO_PKG_VERSION"),
            "revision": "",
            "branch": "",
            "buildUser": "vigil",
            "buildDate": "",
            "goVersion": "none (Vigil is written in Rust)",
        },
    })))
}
