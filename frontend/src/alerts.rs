//! Server functions of the alerting pages (the alerts, the rule editor, the silences) and of the
//! navigation's count of firing alerts and the charts' alert annotations. Reading is under
//! `/ui/fn/read/` (every signed-in user); what writes (acknowledging, rules, silences, test
//! notifications) is under `/ui/fn/deploy/` (deployers and administrators), and the backend
//! checks the caller again. Structured arguments (a rule, matchers) travel as JSON text, as the
//! dashboard editor's spec does.

use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::alerts::{Alert, AlertAnnotation, AlertDetail, AlertPage, AlertRule, RulePreview, Silence};

/// A page of the alerts in `state` (`firing`, `pending`, `resolved`; every one but the
/// inactive when empty), firing first, then pending, then resolved, from `offset`.
#[server(prefix = "/ui/fn/read", endpoint = "alerts")]
pub async fn list_alerts(state: String, offset: u32) -> Result<AlertPage, UiError> {
    let query = vigil_proto::alerts::AlertQuery {
        state: Some(state).filter(|state| !state.is_empty()),
        offset: Some(offset),
        ..vigil_proto::alerts::AlertQuery::default()
    };
    crate::services::services()?.alerts(query).await.map_err(UiError::from)
}

/// How many alerts fire that nobody has acknowledged yet: the navigation's count.
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

/// One rule, for its editor.
#[server(prefix = "/ui/fn/read", endpoint = "alert_rule")]
pub async fn fetch_alert_rule(id: i64) -> Result<AlertRule, UiError> {
    crate::services::services()?.alert_rule(id).await.map_err(UiError::from)
}

/// Saves the editor's rule (an `AlertRuleSpec` as JSON): a new rule when `id` is 0, else the
/// rule `id` changed.
#[server(prefix = "/ui/fn/deploy", endpoint = "save_alert_rule")]
pub async fn save_alert_rule(id: i64, spec: String) -> Result<AlertRule, UiError> {
    let request = crate::services::request()?;
    let spec: vigil_proto::alerts::AlertRuleSpec =
        serde_json::from_str(&spec).map_err(|error| UiError::invalid(format!("invalid rule: {error}")))?;
    let id = (id != 0).then_some(id);
    crate::services::services()?.save_alert_rule(&request, id, spec).await.map_err(UiError::from)
}

#[server(prefix = "/ui/fn/deploy", endpoint = "delete_alert_rule")]
pub async fn delete_alert_rule(id: i64) -> Result<(), UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.delete_alert_rule(&request, id).await.map_err(UiError::from)
}

/// The editor's rule (JSON) evaluated now and over the last `hours`, before it is saved.
#[server(prefix = "/ui/fn/read", endpoint = "preview_alert_rule")]
pub async fn preview_alert_rule(spec: String, hours: u32) -> Result<RulePreview, UiError> {
    let rule: vigil_proto::alerts::AlertRuleSpec =
        serde_json::from_str(&spec).map_err(|error| UiError::invalid(format!("invalid rule: {error}")))?;
    let request = vigil_proto::alerts::RulePreviewRequest { rule, hours };
    crate::services::services()?.preview_alert_rule(request).await.map_err(UiError::from)
}

/// Sends a made-up alert through the channel (an integration, by name) now; answers the
/// channel's name once it was delivered.
#[server(prefix = "/ui/fn/deploy", endpoint = "send_test_notification")]
pub async fn send_test_notification(channel: String) -> Result<String, UiError> {
    let request = crate::services::request()?;
    let channel = channel.trim().to_owned();
    if channel.is_empty() {
        return Err(UiError::invalid("name the channel to test"));
    }
    crate::services::services()?.send_test_notification(&request, channel.clone()).await.map_err(UiError::from)?;
    Ok(channel)
}

/// The silences not ended, and those ended in the last 30 days, each with the current alerts
/// it silences.
#[server(prefix = "/ui/fn/read", endpoint = "silences")]
pub async fn list_silences() -> Result<Vec<Silence>, UiError> {
    crate::services::services()?.silences().await.map_err(UiError::from)
}

#[cfg(feature = "ssr")]
fn parse_matchers_json(matchers: &str) -> Result<Vec<vigil_proto::alerts::Matcher>, UiError> {
    serde_json::from_str(matchers).map_err(|error| UiError::invalid(format!("invalid matchers: {error}")))
}

/// Which current alerts the matchers (JSON) would silence.
#[server(prefix = "/ui/fn/read", endpoint = "preview_silence")]
pub async fn preview_silence(matchers: String) -> Result<Vec<Alert>, UiError> {
    let matchers = parse_matchers_json(&matchers)?;
    crate::services::services()?.preview_silence(matchers).await.map_err(UiError::from)
}

/// Silences alerts matching `matchers` (JSON) from `starts_at` (RFC 3339; now when empty) for
/// `duration` (`2h`, `1d`) or, when that is empty, until `ends_at` (RFC 3339). The caller is
/// its creator.
#[server(prefix = "/ui/fn/deploy", endpoint = "create_silence")]
pub async fn create_silence(
    matchers: String,
    starts_at: String,
    ends_at: String,
    duration: String,
    comment: String,
) -> Result<Silence, UiError> {
    use vigil_proto::{RelativeRange, Timestamp};
    let request = crate::services::request()?;
    let matchers = parse_matchers_json(&matchers)?;
    let moment = |what: &str, text: &str| -> Result<Option<Timestamp>, UiError> {
        let text = text.trim();
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|error| UiError::invalid(format!("{what}: {error}")))
    };
    let starts_at = moment("start", &starts_at)?;
    let ends_at = match duration.trim() {
        "" => moment("end", &ends_at)?.ok_or_else(|| UiError::invalid("choose how long, or when it ends"))?,
        duration => {
            let duration: RelativeRange =
                duration.parse().map_err(|error| UiError::invalid(format!("duration: {error}")))?;
            let from = match starts_at {
                Some(start) => start,
                None => Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc()).map_err(UiError::internal)?,
            };
            from.saturating_add_nanos(duration.as_nanos())
        }
    };
    let write = vigil_proto::alerts::SilenceWrite { matchers, starts_at, ends_at, comment };
    crate::services::services()?.create_silence(&request, write).await.map_err(UiError::from)
}

/// Ends a silence now; it stays in the history.
#[server(prefix = "/ui/fn/deploy", endpoint = "expire_silence")]
pub async fn expire_silence(id: String) -> Result<(), UiError> {
    let request = crate::services::request()?;
    crate::services::services()?.expire_silence(&request, id).await.map_err(UiError::from)
}

/// When alerts fired between `start` and `end` (RFC 3339), those whose labels match `filter`
/// (a selector, `{service="payments"}`; every alert when empty): a chart's annotations.
#[server(prefix = "/ui/fn/read", endpoint = "alert_annotations")]
pub async fn alert_annotations(start: String, end: String, filter: String) -> Result<Vec<AlertAnnotation>, UiError> {
    let parse = |what: &str, text: &str| -> Result<vigil_proto::Timestamp, UiError> {
        text.trim().parse().map_err(|error| UiError::invalid(format!("{what}: {error}")))
    };
    let query = vigil_proto::alerts::AnnotationQuery {
        start: parse("start", &start)?,
        end: parse("end", &end)?,
        filter: Some(filter).filter(|filter| !filter.trim().is_empty()),
    };
    crate::services::services()?.alert_annotations(query).await.map_err(UiError::from)
}
