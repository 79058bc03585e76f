//! Dashboards over HTTP: create, read, update (with the version it was edited from),
//! duplicate, delete, export and import as JSON; the generated dashboards. The rules are in
//! [`crate::dashboards`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vigil_proto::dashboards::{
    Dashboard, DashboardExport, DashboardSpec, DashboardSummary, DashboardUpdate, NewDashboard,
};

use super::{bounded_body, json_body};
use crate::auth::{Caller, ClientInfo};
use crate::dashboards::{self, builtin};
use crate::error::HttpError;
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 1 << 20;

/// `GET /api/v1/dashboards`.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<DashboardSummary>>, HttpError> {
    Ok(Json(dashboards::summaries(&state.database).await?))
}

/// `GET /api/v1/dashboards/{uid}`.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(uid): Path<String>,
) -> Result<Json<Dashboard>, HttpError> {
    Ok(Json(dashboards::get(&state.database, &uid).await?))
}

/// `POST /api/v1/dashboards`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Dashboard>), HttpError> {
    let request: NewDashboard = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "dashboard")?;
    let dashboard = dashboards::create(&state.database, &client.actor(Some(&caller)), &request).await?;
    Ok((StatusCode::CREATED, Json(dashboard)))
}

/// `PUT /api/v1/dashboards/{uid}`: refused with 409 when the dashboard changed since `version`.
pub async fn update(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(uid): Path<String>,
    body: Body,
) -> Result<Json<Dashboard>, HttpError> {
    let request: DashboardUpdate = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "dashboard")?;
    Ok(Json(dashboards::update(&state.database, &client.actor(Some(&caller)), &uid, &request).await?))
}

/// `DELETE /api/v1/dashboards/{uid}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(uid): Path<String>,
) -> Result<StatusCode, HttpError> {
    dashboards::delete(&state.database, &client.actor(Some(&caller)), &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, Default)]
pub struct DuplicateRequest {
    #[serde(default)]
    title: Option<String>,
}

/// `POST /api/v1/dashboards/{uid}/duplicate`: a copy, titled `<title> (copy)` unless given.
pub async fn duplicate(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(uid): Path<String>,
    body: Body,
) -> Result<(StatusCode, Json<Dashboard>), HttpError> {
    let bytes = bounded_body(body, MAX_BODY_BYTES).await?;
    let request: DuplicateRequest =
        if bytes.is_empty() { DuplicateRequest::default() } else { json_body(&bytes, "duplicate request")? };
    let copy = dashboards::duplicate(&state.database, &client.actor(Some(&caller)), &uid, request.title).await?;
    Ok((StatusCode::CREATED, Json(copy)))
}

/// `GET /api/v1/dashboards/{uid}/export`.
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path(uid): Path<String>,
) -> Result<Json<DashboardExport>, HttpError> {
    Ok(Json(dashboards::export(&state.database, &uid).await?))
}

#[derive(Deserialize)]
pub struct ImportParams {
    #[serde(default)]
    overwrite: bool,
}

/// `POST /api/v1/dashboards/import[?overwrite=true]`: an exported document; its uid taken
/// answers 409 unless `overwrite`.
pub async fn import(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    params: Result<Query<ImportParams>, axum::extract::rejection::QueryRejection>,
    body: Body,
) -> Result<(StatusCode, Json<Dashboard>), HttpError> {
    let Query(params) = params?;
    let document: DashboardExport = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "dashboard export")?;
    let actor = client.actor(Some(&caller));
    let (created, dashboard) = dashboards::import(&state.database, &actor, &document, params.overwrite).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(dashboard)))
}

/// `GET /api/v1/builtin-dashboards`: the generated dashboards, as summaries whose uid is the
/// path under the list (`hosts`, `services/<name>`).
pub async fn builtin_list(State(state): State<Arc<AppState>>) -> Json<Vec<DashboardSummary>> {
    Json(builtin::summaries(&state.config.services))
}

/// `GET /api/v1/builtin-dashboards/hosts`.
pub async fn builtin_hosts() -> Json<DashboardSpec> {
    Json(builtin::hosts())
}

/// `GET /api/v1/builtin-dashboards/services/{service}`.
pub async fn builtin_service(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<DashboardSpec>, HttpError> {
    Ok(Json(builtin::service_named(&state.config.services, &name)?))
}
