//! Server functions of the Alerts page and of the navigation's count of firing alerts. Reading
//! is under `/ui/fn/read/` (every signed-in user); acknowledging is under `/ui/fn/deploy/`
//! (deployers and administrators), and the backend checks the caller again.

use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::alerts::{Alert, AlertDetail, AlertPage, AlertRule};

#[server(prefix = "/ui/fn/read", endpoint = "alerts")]
pub async fn list_alerts(state: String, offset: u32) -> Result<AlertPage, UiError> {
    let query = vigil_proto::alerts::AlertQuery {
        state: Some(state).filter(|state| !state.is_empty()),
        offset: Some(offset),
        ..vigil_proto::alerts::AlertQuery::default()
    };
    crate::services::services()?.alerts(query).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/read", endpoint = "firing_alerts")]
pub async fn unacknowledged_firing_count() -> Result<u64, UiError> {
    let query = vigil_proto::alerts::AlertQuery {
        state: Some("firing".to_owned()),
        limit: Some(1),
        ..vigil_proto::alerts::AlertQuery::default()
    };
    let page = crate::services::services()?.alerts(query).await.map_err(UiError::from)?;
    Ok(page.counts.unacknowledged)
}

/// An alert with its timeline and notifications.
#[server(prefix = "/ui/fn/read", endpoint = "alert")]
pub async fn fetch_alert(fingerprint: String) -> Result<AlertDetail, UiError> {
    crate::services::services()?.alert_detail(fingerprint).await.map_err(UiError::from)
}

/// Every rule, with how its last evaluation went.
#[server(prefix = "/ui/fn/read", endpoint = "alert_rules")]
pub async fn list_alert_rules() -> Result<Vec<AlertRule>, UiError> {
    crate::services::services()?.alert_rules().await.map_err(UiError::from)
}

/// "I'm on it", with an optional note: repeats and escalation of the alert stop.
#[server(prefix = "/ui/fn/deploy", endpoint = "acknowledge_alert")]
pub async fn acknowledge_alert(fingerprint: String, note: String) -> Result<Alert, UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.acknowledge_alert(&request, fingerprint, note).await.map_err(UiError::from)
}
