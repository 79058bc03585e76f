//! Agents: `POST /api/v1/agents/heartbeat` registers an agent on its first heartbeat and records
//! the later ones; `GET /api/v1/agents` lists them with their state (healthy, degraded, stale).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::ErrorCode;
use vigil_proto::agents::{AgentHeartbeat, AgentStatus};
use vigil_proto::auth::AuditOutcome;

use super::{bounded_body, json_body};
use crate::audit;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;
use crate::store::{Heartbeat, now_millis};

const MAX_BODY_BYTES: usize = 256 << 10;

pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let mut report: AgentHeartbeat = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "heartbeat")?;
    crate::agents::validate(&mut report)
        .map_err(|error| HttpError::new(ErrorCode::InvalidParameter, error.to_string()))?;
    let host = report.host.clone();
    let key = caller.key();
    if state.database.agent(&host).await?.is_none()
        && let Err(wait) = state.agent_registrations.take(&key)
    {
        return Err(HttpError::new(
            ErrorCode::TooManyRequests,
            format!(
                "this caller registered {} new hosts in the last minute; try again later",
                crate::agents::REGISTRATIONS_PER_MINUTE
            ),
        )
        .retry_after(wait.as_secs().max(1)));
    }
    let json = serde_json::to_string(&report).map_err(|error| HttpError::internal(&error))?;
    let take_over = async |owner: &str| binding_ended(&state, owner).await;
    match state.database.record_heartbeat(&host, &json, &key, take_over).await? {
        Heartbeat::Registered(_) => {
            let actor = client.actor(Some(&caller));
            audit::record(&state.database, &actor, "agent.register", &host, AuditOutcome::Success, &report.version)
                .await;
            tracing::info!(host = %host, version = %report.version, "agent registered");
        }
        Heartbeat::Recorded(_) => {}
        Heartbeat::BoundElsewhere(_) => {
            return Err(HttpError::new(
                ErrorCode::Forbidden,
                format!(
                    "host {host:?} was registered with another token; send its heartbeats with that token, \
                     or revoke it so that this one takes the host over"
                ),
            ));
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Whether the caller a host is bound to can no longer send: its token revoked, expired or
/// gone, or its user disabled or gone.
async fn binding_ended(state: &AppState, owner: &str) -> bool {
    let now = now_millis();
    if let Some(id) = owner.strip_prefix("token:").and_then(|id| id.parse().ok()) {
        return match state.database.token_by_id(id).await {
            Ok(Some(token)) => {
                token.revoked_at_millis.is_some() || token.expires_at_millis.is_some_and(|expires| expires <= now)
            }
            Ok(None) => true,
            Err(_) => false,
        };
    }
    if let Some(id) = owner.strip_prefix("user:").and_then(|id| id.parse().ok()) {
        return match state.database.user_by_id(id).await {
            Ok(Some(user)) => user.disabled,
            Ok(None) => true,
            Err(_) => false,
        };
    }
    false
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<AgentStatus>>, HttpError> {
    let now = now_millis();
    let statuses = state.database.agents().await?.iter().filter_map(|row| crate::agents::status(row, now)).collect();
    Ok(Json(statuses))
}
