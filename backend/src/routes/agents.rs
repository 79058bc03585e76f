//! Agents over HTTP: `POST /api/v1/agents/heartbeat` registers an agent on its first
//! heartbeat and records the later ones; `GET /api/v1/agents` lists them with their state
//! (healthy, degraded, stale). The rules are in [`crate::agents`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::agents::{AgentHeartbeat, AgentStatus};

use super::{bounded_body, json_body};
use crate::agents;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 256 << 10;

pub async fn heartbeat(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Extension(client): Extension<ClientInfo>,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let report: AgentHeartbeat = json_body(&bounded_body(body, MAX_BODY_BYTES).await?, "heartbeat")?;
    let actor = client.actor(Some(&caller));
    agents::record_heartbeat(&state.database, &state.agent_registrations, &actor, &caller.key(), report).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Vec<AgentStatus>>, HttpError> {
    Ok(Json(agents::statuses(&state.database).await?))
}
