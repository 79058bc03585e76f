//! Agents: `POST /api/v1/agents/heartbeat` registers an agent on its first heartbeat and records
//! the later ones; `GET /api/v1/agents` lists them with their state (healthy, degraded, stale).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::ErrorCode;
use vigil_proto::agents::{AgentHeartbeat, AgentState, AgentStatus};
use vigil_proto::auth::AuditOutcome;

use super::{bounded_body, json_body};
use crate::audit;
use crate::auth::{Caller, ClientInfo, millis_to_timestamp};
use crate::error::HttpError;
use crate::startup::AppState;
use crate::store::{AgentRow, now_millis};

const MAX_BODY_BYTES: usize = 256 << 10;
const MAX_SOURCES: usize = 1000;

fn invalid(message: impl Into<String>) -> HttpError {
    HttpError::new(ErrorCode::InvalidParameter, message)
}

pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let report: AgentHeartbeat = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "heartbeat")?;
    let host = report.host.trim();
    if host.is_empty() || host.len() > 253 || host.chars().any(char::is_control) {
        return Err(invalid("host must be 1 to 253 printable characters"));
    }
    if report.sources.len() > MAX_SOURCES {
        return Err(invalid(format!("at most {MAX_SOURCES} sources")));
    }
    if report.interval_seconds == 0 {
        return Err(invalid("interval_seconds must be greater than 0"));
    }
    let json = serde_json::to_string(&report).map_err(|error| HttpError::internal(&error))?;
    let row = state.database.record_heartbeat(host, &json).await?;
    if row.first_seen_millis == row.last_seen_millis {
        let actor = client.actor(Some(&caller));
        audit::record(&state.database, &actor, "agent.register", host, AuditOutcome::Success, &report.version).await;
        tracing::info!(host = %host, version = %report.version, "agent registered");
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<AgentStatus>>, HttpError> {
    let now = now_millis();
    let statuses = state.database.agents().await?.iter().filter_map(|row| status(row, now)).collect();
    Ok(Json(statuses))
}

/// An agent's status `now`; `None` for a stored report this version cannot read.
pub fn status(row: &AgentRow, now_millis: i64) -> Option<AgentStatus> {
    let report: AgentHeartbeat = serde_json::from_str(&row.report).ok()?;
    let silent_seconds = (now_millis - row.last_seen_millis) / 1000;
    Some(AgentStatus {
        host: row.host.clone(),
        first_seen: millis_to_timestamp(row.first_seen_millis),
        last_seen: millis_to_timestamp(row.last_seen_millis),
        state: AgentState::of(&report, silent_seconds),
        report,
    })
}
