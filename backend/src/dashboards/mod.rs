//! Dashboards: the stored ones (checked, versioned, imported and exported, every change in the
//! audit log) and the generated ones ([`builtin`]). The API's routes and the UI's services
//! call the same functions here.

pub mod builtin;

use vigil_proto::auth::AuditOutcome;
use vigil_proto::dashboards::{
    DASHBOARD_SCHEMA_VERSION, Dashboard, DashboardExport, DashboardSpec, DashboardSummary, DashboardUpdate,
    NewDashboard, PanelKind,
};

use crate::audit::{self, Action, Actor};
use crate::store::{DashboardRow, Database, StoreError, UpdateOutcome, millis_to_timestamp};

const MAX_PANELS: usize = 200;
/// A uid the routes keep for themselves.
const RESERVED_UIDS: [&str; 1] = ["import"];

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// A spec, uid or document that breaks a rule; the text names it.
    #[error("{0}")]
    Invalid(String),
    #[error("no dashboard has uid {0:?}")]
    NotFound(String),
    #[error("no service named {0:?} is configured ([[services]])")]
    NoService(String),
    #[error("too many dashboards are named like {0:?}")]
    NamesTaken(String),
    #[error(
        "the dashboard changed since version {given} (it is at version {current}): reload it and apply the change again"
    )]
    Stale { given: i64, current: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a dashboard cannot be encoded or read back: {0}")]
    Encoding(#[from] serde_json::Error),
}

fn invalid(message: impl Into<String>) -> DashboardError {
    DashboardError::Invalid(message.into())
}

fn validate_uid(uid: &str) -> Result<(), DashboardError> {
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
pub fn validate(spec: &DashboardSpec) -> Result<(), DashboardError> {
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
        // A variable's name is written `$name` in queries: a label name's characters.
        if !vigil_proto::metrics::is_label_name(&variable.name) || !names.insert(variable.name.as_str()) {
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

fn to_dashboard(row: &DashboardRow) -> Result<Dashboard, DashboardError> {
    Ok(Dashboard {
        uid: row.uid.clone(),
        version: row.version,
        spec: serde_json::from_str(&row.spec)?,
        created_at: millis_to_timestamp(row.created_at_millis),
        updated_at: millis_to_timestamp(row.updated_at_millis),
        updated_by: row.updated_by.clone(),
    })
}

fn encode(spec: &DashboardSpec) -> Result<(String, String), DashboardError> {
    Ok((serde_json::to_string(&spec.tags)?, serde_json::to_string(spec)?))
}

/// Stores a new dashboard under `uid`, or, with `pick`, under the first free `uid`, `uid-2`, ...
async fn insert(
    database: &Database,
    uid: &str,
    pick: bool,
    spec: &DashboardSpec,
    by: &str,
) -> Result<DashboardRow, DashboardError> {
    let (tags, body) = encode(spec)?;
    for attempt in 1..=50 {
        let candidate = if attempt == 1 { uid.to_owned() } else { format!("{uid}-{attempt}") };
        match database.insert_dashboard(&candidate, &spec.title, &tags, &body, by).await {
            Err(StoreError::Conflict(_)) if pick => continue,
            result => return Ok(result?),
        }
    }
    Err(DashboardError::NamesTaken(uid.to_owned()))
}

async fn record(database: &Database, actor: &Actor, action: Action, uid: &str, ok: bool, detail: &str) {
    let outcome = if ok { AuditOutcome::Success } else { AuditOutcome::Failure };
    audit::record(database, actor, action, uid, outcome, detail).await;
}

/// The stored dashboards, newest change first as the store lists them.
pub async fn summaries(database: &Database) -> Result<Vec<DashboardSummary>, DashboardError> {
    let rows = database.dashboards().await?;
    Ok(rows
        .iter()
        .map(|row| DashboardSummary {
            uid: row.uid.clone(),
            title: row.title.clone(),
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            version: row.version,
            updated_at: millis_to_timestamp(row.updated_at_millis),
        })
        .collect())
}

/// A stored dashboard, with its version.
pub async fn get(database: &Database, uid: &str) -> Result<Dashboard, DashboardError> {
    let row = database.dashboard(uid).await?.ok_or_else(|| DashboardError::NotFound(uid.to_owned()))?;
    to_dashboard(&row)
}

/// Creates a dashboard: under the uid asked for, or under one made from its title.
pub async fn create(database: &Database, actor: &Actor, request: &NewDashboard) -> Result<Dashboard, DashboardError> {
    validate(&request.spec)?;
    let (uid, pick) = match &request.uid {
        Some(uid) => {
            validate_uid(uid)?;
            (uid.clone(), false)
        }
        None => (slug(&request.spec.title), true),
    };
    let result = insert(database, &uid, pick, &request.spec, &actor.name).await;
    let stored_uid = result.as_ref().map_or(uid.as_str(), |row| row.uid.as_str());
    record(database, actor, Action::DashboardCreate, stored_uid, result.is_ok(), &request.spec.title).await;
    to_dashboard(&result?)
}

/// Saves a new version of a dashboard; refused when it changed since `request.version`.
pub async fn update(
    database: &Database,
    actor: &Actor,
    uid: &str,
    request: &DashboardUpdate,
) -> Result<Dashboard, DashboardError> {
    validate(&request.spec)?;
    let (tags, spec) = encode(&request.spec)?;
    let outcome =
        database.update_dashboard(uid, Some(request.version), &request.spec.title, &tags, &spec, &actor.name).await?;
    let updated = matches!(outcome, UpdateOutcome::Updated(_));
    let detail = format!("from version {}", request.version);
    record(database, actor, Action::DashboardUpdate, uid, updated, &detail).await;
    match outcome {
        UpdateOutcome::Updated(row) => to_dashboard(&row),
        UpdateOutcome::NotFound => Err(DashboardError::NotFound(uid.to_owned())),
        UpdateOutcome::Stale(current) => Err(DashboardError::Stale { given: request.version, current }),
    }
}

pub async fn delete(database: &Database, actor: &Actor, uid: &str) -> Result<(), DashboardError> {
    let deleted = database.delete_dashboard(uid).await?;
    record(database, actor, Action::DashboardDelete, uid, deleted, "").await;
    if deleted { Ok(()) } else { Err(DashboardError::NotFound(uid.to_owned())) }
}

/// A copy, titled `<title> (copy)` unless `title` is given.
pub async fn duplicate(
    database: &Database,
    actor: &Actor,
    uid: &str,
    title: Option<String>,
) -> Result<Dashboard, DashboardError> {
    let mut spec = get(database, uid).await?.spec;
    spec.title = title.unwrap_or_else(|| format!("{} (copy)", spec.title));
    validate(&spec)?;
    let result = insert(database, &slug(&spec.title), true, &spec, &actor.name).await;
    let detail = format!("copy of {uid}");
    let new_uid = result.as_ref().map_or("", |row| row.uid.as_str());
    record(database, actor, Action::DashboardCreate, new_uid, result.is_ok(), &detail).await;
    to_dashboard(&result?)
}

/// A stored dashboard as a document `import` takes back.
pub async fn export(database: &Database, uid: &str) -> Result<DashboardExport, DashboardError> {
    let dashboard = get(database, uid).await?;
    Ok(DashboardExport { schema_version: DASHBOARD_SCHEMA_VERSION, uid: dashboard.uid, dashboard: dashboard.spec })
}

/// Imports an exported document; `true` when it created the dashboard (rather than
/// overwrote it). A uid taken is refused unless `overwrite`.
pub async fn import(
    database: &Database,
    actor: &Actor,
    document: &DashboardExport,
    overwrite: bool,
) -> Result<(bool, Dashboard), DashboardError> {
    if document.schema_version != DASHBOARD_SCHEMA_VERSION {
        return Err(invalid(format!(
            "schema_version {} is not one this Vigil reads ({DASHBOARD_SCHEMA_VERSION})",
            document.schema_version
        )));
    }
    validate_uid(&document.uid)?;
    validate(&document.dashboard)?;
    let by = actor.name.as_str();
    let result = if overwrite && database.dashboard(&document.uid).await?.is_some() {
        let (tags, spec) = encode(&document.dashboard)?;
        match database.update_dashboard(&document.uid, None, &document.dashboard.title, &tags, &spec, by).await? {
            UpdateOutcome::Updated(row) => Ok((false, row)),
            _ => Err(DashboardError::NotFound(document.uid.clone())),
        }
    } else {
        insert(database, &document.uid, false, &document.dashboard, by).await.map(|row| (true, row))
    };
    let detail = if overwrite { "overwrite" } else { "" };
    record(database, actor, Action::DashboardImport, &document.uid, result.is_ok(), detail).await;
    let (created, row) = result?;
    Ok((created, to_dashboard(&row)?))
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
