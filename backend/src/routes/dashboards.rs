//! Dashboards: create, read, update (with the version it was edited from), duplicate,
//! delete, export and import as JSON. Every change is audited.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use vigil_proto::ErrorCode;
use vigil_proto::auth::AuditOutcome;
use vigil_proto::dashboards::{
    DASHBOARD_SCHEMA_VERSION, Dashboard, DashboardExport, DashboardSpec, DashboardSummary, DashboardUpdate,
    NewDashboard, PanelKind,
};

use super::{bounded_body, json_body};
use crate::audit;
use crate::auth::{Caller, ClientInfo, millis_to_timestamp};
use crate::error::HttpError;
use crate::metrics::builtin;
use crate::startup::AppState;
use crate::store::{DashboardRow, UpdateOutcome};

const MAX_BODY_BYTES: usize = 1 << 20;
const MAX_PANELS: usize = 200;
/// A uid the routes keep for themselves.
const RESERVED_UIDS: [&str; 1] = ["import"];

fn invalid(message: impl Into<String>) -> HttpError {
    HttpError::new(ErrorCode::InvalidParameter, message)
}

fn is_identifier(text: &str) -> bool {
    let mut characters = text.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

fn validate_uid(uid: &str) -> Result<(), HttpError> {
    let valid = !uid.is_empty()
        && uid.len() <= 64
        && uid
            .chars()
            .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-')
        && !RESERVED_UIDS.contains(&uid);
    if valid {
        Ok(())
    } else {
        Err(invalid(format!("uid {uid:?} must be 1 to 64 of a-z, 0-9 and '-' (and not \"import\")")))
    }
}

/// Checks a spec: a title, sane sizes, named variables, queries that are not empty.
pub fn validate(spec: &DashboardSpec) -> Result<(), HttpError> {
    if spec.title.trim().is_empty() || spec.title.chars().count() > 200 {
        return Err(invalid("title must be 1 to 200 characters"));
    }
    if spec.tags.len() > 20 || spec.tags.iter().any(|tag| tag.is_empty() || tag.len() > 50) {
        return Err(invalid("at most 20 tags of 1 to 50 characters"));
    }
    if spec.range.parse::<vigil_proto::RelativeRange>().is_err() {
        return Err(invalid(format!("range {:?} is not a relative range such as 15m, 1h, 7d", spec.range)));
    }
    if spec.refresh_seconds == Some(0) {
        return Err(invalid("refresh_seconds must be at least 1, or absent"));
    }
    let mut names = std::collections::BTreeSet::new();
    for variable in &spec.variables {
        if !is_identifier(&variable.name) || !names.insert(variable.name.as_str()) {
            return Err(invalid(format!(
                "variable {:?} must be a unique name of letters, digits and '_'",
                variable.name
            )));
        }
        if !vigil_proto::metrics::is_label_name(&variable.label) {
            return Err(invalid(format!("variable {}: {:?} is not a label name", variable.name, variable.label)));
        }
    }
    let panels: usize = spec.rows.iter().map(|row| row.panels.len()).sum();
    if panels > MAX_PANELS {
        return Err(invalid(format!("{panels} panels; the limit is {MAX_PANELS}")));
    }
    for (row_index, row) in spec.rows.iter().enumerate() {
        for (panel_index, panel) in row.panels.iter().enumerate() {
            let at = format!("row {row_index}, panel {panel_index}");
            if panel.width == 0 || panel.width > 12 {
                return Err(invalid(format!("{at}: width must be 1 to 12 columns")));
            }
            let queries: Vec<&str> = match &panel.kind {
                PanelKind::TimeSeries { queries, .. } => queries.iter().map(|query| query.expr.as_str()).collect(),
                PanelKind::Stat { query, .. } | PanelKind::Table { query } => vec![query.as_str()],
                PanelKind::Logs { .. } => vec!["logs"],
            };
            if queries.is_empty() || queries.iter().any(|query| query.trim().is_empty()) {
                return Err(invalid(format!("{at}: every query must be given")));
            }
        }
    }
    Ok(())
}

/// A uid from a title: `Service: shop` → `service-shop`.
fn slug(title: &str) -> String {
    let mut slug = String::new();
    for character in title.chars().flat_map(char::to_lowercase) {
        if character.is_ascii_alphanumeric() {
            slug.push(character);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(48).collect();
    if slug.is_empty() || RESERVED_UIDS.contains(&slug.as_str()) { "dashboard".to_owned() } else { slug }
}

fn to_dashboard(row: &DashboardRow) -> Result<Dashboard, HttpError> {
    Ok(Dashboard {
        uid: row.uid.clone(),
        version: row.version,
        spec: serde_json::from_str(&row.spec).map_err(|error| HttpError::internal(&error))?,
        created_at: millis_to_timestamp(row.created_at_millis),
        updated_at: millis_to_timestamp(row.updated_at_millis),
        updated_by: row.updated_by.clone(),
    })
}

fn encode(spec: &DashboardSpec) -> Result<(String, String), HttpError> {
    let tags = serde_json::to_string(&spec.tags).map_err(|error| HttpError::internal(&error))?;
    let body = serde_json::to_string(spec).map_err(|error| HttpError::internal(&error))?;
    Ok((tags, body))
}

fn not_found(uid: &str) -> HttpError {
    HttpError::new(ErrorCode::NotFound, format!("no dashboard has uid {uid:?}"))
}

/// Stores a new dashboard under `uid`, or, with `pick`, under the first free `uid`, `uid-2`, ...
async fn insert(
    state: &AppState,
    uid: &str,
    pick: bool,
    spec: &DashboardSpec,
    by: &str,
) -> Result<DashboardRow, HttpError> {
    let (tags, body) = encode(spec)?;
    for attempt in 1..=50 {
        let candidate = if attempt == 1 { uid.to_owned() } else { format!("{uid}-{attempt}") };
        match state.database.insert_dashboard(&candidate, &spec.title, &tags, &body, by).await {
            Err(crate::store::StoreError::Conflict(_)) if pick => continue,
            result => return Ok(result?),
        }
    }
    Err(HttpError::new(ErrorCode::Conflict, format!("too many dashboards are named like {uid:?}")))
}

async fn record(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    action: &str,
    uid: &str,
    ok: bool,
    detail: &str,
) {
    let outcome = if ok { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit::record(&state.database, &client.actor(Some(caller)), action, uid, outcome, detail).await;
}

/// `GET /api/v1/dashboards`.
pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<DashboardSummary>>, HttpError> {
    let rows = state.database.dashboards().await?;
    let summaries = rows
        .iter()
        .map(|row| DashboardSummary {
            uid: row.uid.clone(),
            title: row.title.clone(),
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            version: row.version,
            updated_at: millis_to_timestamp(row.updated_at_millis),
        })
        .collect();
    Ok(Json(summaries))
}

/// `GET /api/v1/dashboards/{uid}`.
pub async fn get_one(
    State(state): State<Arc<AppState>>,
    Path(uid): Path<String>,
) -> Result<Json<Dashboard>, HttpError> {
    let row = state.database.dashboard(&uid).await?.ok_or_else(|| not_found(&uid))?;
    to_dashboard(&row).map(Json)
}

/// `POST /api/v1/dashboards`.
pub async fn create(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<(StatusCode, Json<Dashboard>), HttpError> {
    let request: NewDashboard = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "dashboard")?;
    Ok((StatusCode::CREATED, Json(create_as(&state, &caller, &client, &request).await?)))
}

/// Creates a dashboard for `caller` (the API and the UI).
pub async fn create_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    request: &NewDashboard,
) -> Result<Dashboard, HttpError> {
    validate(&request.spec)?;
    let (uid, pick) = match &request.uid {
        Some(uid) => {
            validate_uid(uid)?;
            (uid.clone(), false)
        }
        None => (slug(&request.spec.title), true),
    };
    let result = insert(state, &uid, pick, &request.spec, &caller.actor_name()).await;
    let stored_uid = result.as_ref().map_or(uid.as_str(), |row| row.uid.as_str());
    record(state, caller, client, "dashboard.create", stored_uid, result.is_ok(), &request.spec.title).await;
    to_dashboard(&result?)
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
    update_as(&state, &caller, &client, &uid, &request).await.map(Json)
}

/// Saves a new version of a dashboard for `caller` (the API and the UI).
pub async fn update_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    uid: &str,
    request: &DashboardUpdate,
) -> Result<Dashboard, HttpError> {
    validate(&request.spec)?;
    let (tags, spec) = encode(&request.spec)?;
    let outcome = state
        .database
        .update_dashboard(uid, Some(request.version), &request.spec.title, &tags, &spec, &caller.actor_name())
        .await?;
    let updated = matches!(outcome, UpdateOutcome::Updated(_));
    record(state, caller, client, "dashboard.update", uid, updated, &format!("from version {}", request.version)).await;
    match outcome {
        UpdateOutcome::Updated(row) => to_dashboard(&row),
        UpdateOutcome::NotFound => Err(not_found(uid)),
        UpdateOutcome::Stale(current) => Err(HttpError::new(
            ErrorCode::Conflict,
            format!(
                "the dashboard changed since version {} (it is at version {current}): reload it and apply the change again",
                request.version
            ),
        )),
    }
}

/// `DELETE /api/v1/dashboards/{uid}`.
pub async fn delete(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    Path(uid): Path<String>,
) -> Result<StatusCode, HttpError> {
    delete_as(&state, &caller, &client, &uid).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn delete_as(state: &AppState, caller: &Caller, client: &ClientInfo, uid: &str) -> Result<(), HttpError> {
    let deleted = state.database.delete_dashboard(uid).await?;
    record(state, caller, client, "dashboard.delete", uid, deleted, "").await;
    if deleted { Ok(()) } else { Err(not_found(uid)) }
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
    let copy = duplicate_as(&state, &caller, &client, &uid, request.title).await?;
    Ok((StatusCode::CREATED, Json(copy)))
}

pub async fn duplicate_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    uid: &str,
    title: Option<String>,
) -> Result<Dashboard, HttpError> {
    let row = state.database.dashboard(uid).await?.ok_or_else(|| not_found(uid))?;
    let mut spec = to_dashboard(&row)?.spec;
    spec.title = title.unwrap_or_else(|| format!("{} (copy)", spec.title));
    validate(&spec)?;
    let result = insert(state, &slug(&spec.title), true, &spec, &caller.actor_name()).await;
    let detail = format!("copy of {uid}");
    let new_uid = result.as_ref().map_or("", |row| row.uid.as_str());
    record(state, caller, client, "dashboard.create", new_uid, result.is_ok(), &detail).await;
    to_dashboard(&result?)
}

/// A stored dashboard, with its version.
pub async fn stored(state: &AppState, uid: &str) -> Result<Dashboard, HttpError> {
    let row = state.database.dashboard(uid).await?.ok_or_else(|| not_found(uid))?;
    to_dashboard(&row)
}

/// `GET /api/v1/dashboards/{uid}/export`.
pub async fn export(
    State(state): State<Arc<AppState>>,
    Path(uid): Path<String>,
) -> Result<Json<DashboardExport>, HttpError> {
    let row = state.database.dashboard(&uid).await?.ok_or_else(|| not_found(&uid))?;
    let dashboard = to_dashboard(&row)?;
    Ok(Json(DashboardExport {
        schema_version: DASHBOARD_SCHEMA_VERSION,
        uid: dashboard.uid,
        dashboard: dashboard.spec,
    }))
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
    let (created, dashboard) = import_as(&state, &caller, &client, &document, params.overwrite).await?;
    Ok((if created { StatusCode::CREATED } else { StatusCode::OK }, Json(dashboard)))
}

/// Imports an exported document; `true` when it created the dashboard (rather than
/// overwrote it).
pub async fn import_as(
    state: &AppState,
    caller: &Caller,
    client: &ClientInfo,
    document: &DashboardExport,
    overwrite: bool,
) -> Result<(bool, Dashboard), HttpError> {
    if document.schema_version != DASHBOARD_SCHEMA_VERSION {
        return Err(invalid(format!(
            "schema_version {} is not one this Vigil reads ({DASHBOARD_SCHEMA_VERSION})",
            document.schema_version
        )));
    }
    validate_uid(&document.uid)?;
    validate(&document.dashboard)?;
    let by = caller.actor_name();
    let result = if overwrite && state.database.dashboard(&document.uid).await?.is_some() {
        let (tags, spec) = encode(&document.dashboard)?;
        match state.database.update_dashboard(&document.uid, None, &document.dashboard.title, &tags, &spec, &by).await?
        {
            UpdateOutcome::Updated(row) => Ok((false, row)),
            _ => Err(not_found(&document.uid)),
        }
    } else {
        insert(state, &document.uid, false, &document.dashboard, &by).await.map(|row| (true, row))
    };
    let detail = if overwrite { "overwrite" } else { "" };
    record(state, caller, client, "dashboard.import", &document.uid, result.is_ok(), detail).await;
    let (created, row) = result?;
    Ok((created, to_dashboard(&row)?))
}

/// `GET /api/v1/builtin-dashboards`: the generated dashboards, as summaries whose uid is the
/// path under the list (`hosts`, `services/<name>`).
pub async fn builtin_list(State(state): State<Arc<AppState>>) -> Json<Vec<DashboardSummary>> {
    let now = millis_to_timestamp(crate::store::now_millis());
    let summary = |uid: String, spec: DashboardSpec| DashboardSummary {
        uid,
        title: spec.title,
        tags: spec.tags,
        version: 0,
        updated_at: now,
    };
    let mut list = vec![summary("hosts".to_owned(), builtin::hosts())];
    for service in &state.config.services {
        list.push(summary(format!("services/{}", service.name), builtin::service(service)));
    }
    Json(list)
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
    let service = state.config.services.iter().find(|service| service.name == name).ok_or_else(|| {
        HttpError::new(ErrorCode::NotFound, format!("no service named {name:?} is configured ([[services]])"))
    })?;
    Ok(Json(builtin::service(service)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_come_from_titles() {
        assert_eq!(slug("Service: shop"), "service-shop");
        assert_eq!(slug("  Hosts  "), "hosts");
        assert_eq!(slug("!!!"), "dashboard");
        assert_eq!(slug("Import"), "dashboard");
        assert!(validate_uid("import").is_err());
        assert!(validate_uid("Hosts").is_err());
        assert!(validate_uid("hosts-2").is_ok());
    }
}
