//! Alerts over HTTP (`/api/v1/alerts...`), over [`crate::alerts`]: rules, the alerts they
//! fire with their timelines, acknowledgement, and test notifications.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::alerts::{
    AcknowledgeRequest, Alert, AlertAnnotation, AlertDetail, AlertPage, AlertQuery, AlertRule, AlertRuleSpec,
    AnnotationQuery, RuleImport, RulePreview, RulePreviewRequest, Silence, SilencePreview, SilenceWrite,
};

use super::admin::parse_id;
use super::{bounded_body, json_body};
use crate::alerts;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 64 << 10;

/// `GET /api/v1/alerts/rules`.
pub async fn rules(State(state): State<Arc<AppState>>) -> Result<Json<Vec<AlertRule>>, HttpError> {
    Ok(Json(alerts::list_rules(&state.database).await?))
}

/// `GET /api/v1/alerts/rules/{id}`.
pub async fn rule(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<AlertRule>, HttpError> {
    Ok(Json(alerts::get_rule(&state.database, parse_id(&id)?).await?))
}

/// `POST /api/v1/alerts/rules`.
pub async fn create_rule(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<AlertRule>), HttpError> {
    let spec: AlertRuleSpec = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "alert rule")?;
    let actor = client.actor(Some(&caller));
    let created = alerts::create_rule(&state.database, state.log_store.as_ref(), &actor, spec).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `PUT /api/v1/alerts/rules/{id}`.
pub async fn update_rule(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
    body: Body,
) -> Result<Json<AlertRule>, HttpError> {
    let id = parse_id(&id)?;
    let spec: AlertRuleSpec = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "alert rule")?;
    let actor = client.actor(Some(&caller));
    Ok(Json(alerts::update_rule(&state.database, state.log_store.as_ref(), &actor, id, spec).await?))
}

/// `DELETE /api/v1/alerts/rules/{id}`.
pub async fn delete_rule(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    alerts::delete_rule(&state.database, &client.actor(Some(&caller)), parse_id(&id)?).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/alerts?state=&rule_id=&filter=&limit=&offset=`.
pub async fn list(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AlertQuery>, QueryRejection>,
) -> Result<Json<AlertPage>, HttpError> {
    let Query(query) = query?;
    Ok(Json(alerts::list(&state.database, &query).await?))
}

/// `GET /api/v1/alerts/annotations?start=&end=&filter=`.
pub async fn annotations(
    State(state): State<Arc<AppState>>,
    query: Result<Query<AnnotationQuery>, QueryRejection>,
) -> Result<Json<Vec<AlertAnnotation>>, HttpError> {
    let Query(query) = query?;
    Ok(Json(alerts::annotations(&state.database, &query).await?))
}

/// `GET /api/v1/alerts/{fingerprint}`.
pub async fn detail(
    State(state): State<Arc<AppState>>,
    Path(fingerprint): Path<String>,
) -> Result<Json<AlertDetail>, HttpError> {
    Ok(Json(alerts::detail(&state.database, &fingerprint).await?))
}

/// `POST /api/v1/alerts/{fingerprint}/acknowledge`, with an optional `{"note": ...}`.
pub async fn acknowledge(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(fingerprint): Path<String>,
    body: Body,
) -> Result<Json<Alert>, HttpError> {
    let bytes = bounded_body(body, MAX_BODY_BYTES).await?;
    let request: AcknowledgeRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        AcknowledgeRequest::default()
    } else {
        json_body(&bytes, "acknowledgement")?
    };
    let actor = client.actor(Some(&caller));
    let config = &state.config.alerts;
    Ok(Json(alerts::acknowledge(&state.database, config, &actor, &fingerprint, &request.note).await?))
}

/// `POST /api/v1/alerts/channels/{name}/test`: a made-up alert through the channel, now.
pub async fn test_channel(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(name): Path<String>,
) -> Result<StatusCode, HttpError> {
    let actor = client.actor(Some(&caller));
    let external_url = &state.config.alerts.external_url;
    alerts::send_test(&state.database, &state.secrets, &state.notify_http, &actor, &name, external_url).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/alerts/silences`: those not ended, and those that ended in the last 30 days.
pub async fn silences(State(state): State<Arc<AppState>>) -> Result<Json<Vec<Silence>>, HttpError> {
    Ok(Json(alerts::silences::list(&state.database).await?))
}

/// `GET /api/v1/alerts/silences/{id}`.
pub async fn silence(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Silence>, HttpError> {
    Ok(Json(alerts::silences::get(&state.database, &id).await?))
}

/// `POST /api/v1/alerts/silences`: the caller silences, and says why.
pub async fn create_silence(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Silence>), HttpError> {
    let write: SilenceWrite = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "silence")?;
    let actor = client.actor(Some(&caller));
    let created = alerts::silences::save(&state.database, &actor, None, &caller.actor_name(), &write).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

/// `POST /api/v1/alerts/silences/preview`: the current alerts the matchers would silence.
pub async fn preview_silence(State(state): State<Arc<AppState>>, body: Body) -> Result<Json<Vec<Alert>>, HttpError> {
    let preview: SilencePreview = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "silence preview")?;
    Ok(Json(alerts::silences::preview(&state.database, &preview.matchers).await?))
}

/// `DELETE /api/v1/alerts/silences/{id}`: ends it now; it stays in the history.
pub async fn expire_silence(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(id): Path<String>,
) -> Result<StatusCode, HttpError> {
    alerts::silences::expire(&state.database, &client.actor(Some(&caller)), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/v1/alerts/rules/preview`: `{"rule": {...}, "hours": 3}` evaluated now and over the
/// last hours, before it is saved.
pub async fn preview_rule(State(state): State<Arc<AppState>>, body: Body) -> Result<Json<RulePreview>, HttpError> {
    let request: RulePreviewRequest = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "rule preview")?;
    Ok(Json(alerts::preview::preview(&state.prometheus, state.log_store.as_ref(), &request).await?))
}

#[derive(serde::Deserialize)]
pub struct ImportParams {
    /// The channels the imported rules notify, comma-separated (none: the routes decide).
    #[serde(default)]
    channels: String,
}

/// `POST /api/v1/alerts/rules/import?channels=a,b`: a Prometheus rule file (YAML) as the body.
pub async fn import_rules(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    params: Result<Query<ImportParams>, QueryRejection>,
    body: Body,
) -> Result<Json<RuleImport>, HttpError> {
    let Query(params) = params?;
    let bytes = bounded_body(body, 1 << 20).await?;
    let yaml = std::str::from_utf8(&bytes)
        .map_err(|_| HttpError::new(vigil_proto::ErrorCode::InvalidParameter, "the rule file is not UTF-8"))?;
    let channels: Vec<String> =
        params.channels.split(',').map(str::trim).filter(|name| !name.is_empty()).map(str::to_owned).collect();
    let actor = client.actor(Some(&caller));
    Ok(Json(alerts::import::import(&state.database, state.log_store.as_ref(), &actor, yaml, &channels).await?))
}
