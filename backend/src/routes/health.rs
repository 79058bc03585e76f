//! `/healthz` (the process answers), `/readyz` (its database and log store work) and
//! `/metrics` (its own Prometheus metrics).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde_json::json;

use crate::state::AppState;
use crate::telemetry::error_chain;

pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    let (database, log_store) = tokio::join!(state.database.ping(), state.log_store.check());
    let describe = |problem: Option<String>| match problem {
        None => json!({"status": "ok"}),
        Some(error) => json!({"status": "failing", "error": error}),
    };
    let ready = database.is_ok() && log_store.is_ok();
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "checks": {
            "database": describe(database.as_ref().err().map(|error| error_chain(error))),
            "log_store": describe(log_store.as_ref().err().map(|error| error_chain(error))),
        }
    });
    let status = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}

pub async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], state.metrics.encode())
}
