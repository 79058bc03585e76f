//! Agents over HTTP: `POST /api/v1/agents/heartbeat` registers an agent on its first
//! heartbeat and records the later ones; `GET /api/v1/agents` lists them with their state
//! (healthy, degraded, stale). The rules are in [`crate::agents`]. An agent's deploy orders
//! (`GET /api/v1/agents/deploys?host=`) and its reports on them
//! (`POST /api/v1/agents/deploys/{id}`) are the agent rollout provider's, in
//! [`crate::rollouts::agent`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use vigil_proto::agents::{AgentHeartbeat, AgentStatus, DeployOrders, DeployOrdersQuery, DeployReport};

use super::admin::parse_id;
use super::{bounded_body, json_body};
use crate::agents;
use crate::auth::{Caller, ClientInfo};
use crate::error::HttpError;
use crate::state::AppState;

const MAX_BODY_BYTES: usize = 256 << 10;
const MAX_REPORT_BYTES: usize = 64 << 10;

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

/// `GET /api/v1/agents/deploys?host=`: the host's open deploy order, for the caller the host is
/// bound to.
pub async fn deploy_orders(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<DeployOrdersQuery>, QueryRejection>,
) -> Result<Json<DeployOrders>, HttpError> {
    let Query(query) = query?;
    Ok(Json(crate::rollouts::agent::orders_for(&state.database, &caller.key(), &query.host).await?))
}

/// `POST /api/v1/agents/deploys/{id}`: an agent's report on an order.
pub async fn deploy_report(
    State(state): State<Arc<AppState>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    body: Body,
) -> Result<StatusCode, HttpError> {
    let report: DeployReport = json_body(&bounded_body(body, MAX_REPORT_BYTES).await?, "deploy report")?;
    crate::rollouts::agent::report(&state.database, &caller.key(), parse_id(&id)?, &report).await?;
    Ok(StatusCode::NO_CONTENT)
}
