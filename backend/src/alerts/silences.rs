//! Silences, as Alertmanager has them: label matchers (equal, not equal, regular expression
//! or not), a start and an end, who and why. While one is active, the alerts it matches notify
//! nobody; they still show, marked silenced. Expiring a silence ends it now and keeps it in
//! the history.

use std::collections::BTreeMap;

use regex::Regex;
use vigil_proto::alerts::{Matcher, Silence, SilenceState, SilenceWrite};
use vigil_proto::auth::AuditOutcome;

use super::{AlertError, alert};
use crate::audit::{self, Action, Actor};
use crate::store::{Database, SilenceRow, millis_to_timestamp, now_millis};

const MAX_MATCHERS: usize = 32;
const MAX_COMMENT_CHARS: usize = 1000;
const MAX_VALUE_BYTES: usize = 1024;
/// Silences shown again once they ended, for their history.
const HISTORY_DAYS: i64 = 30;

/// A silence's matchers, compiled.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub id: String,
    matchers: Vec<(Matcher, Option<Regex>)>,
}

impl Compiled {
    pub fn new(id: &str, matchers: &[Matcher]) -> Result<Self, AlertError> {
        let matchers = matchers
            .iter()
            .map(|matcher| {
                let regex = matcher
                    .is_regex
                    .then(|| {
                        Regex::new(&format!("^(?:{})$", matcher.value)).map_err(|error| {
                            AlertError::Invalid(format!("matcher {}: not a regular expression: {error}", matcher.name))
                        })
                    })
                    .transpose()?;
                Ok((matcher.clone(), regex))
            })
            .collect::<Result<_, AlertError>>()?;
        Ok(Self { id: id.to_owned(), matchers })
    }

    /// Whether every matcher holds for `labels` (a missing label is the empty value).
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.matchers.iter().all(|(matcher, regex)| {
            let value = labels.get(&matcher.name).map_or("", String::as_str);
            let equal = match regex {
                Some(regex) => regex.is_match(value),
                None => value == matcher.value,
            };
            equal == matcher.is_equal
        })
    }
}

/// Checks matchers as written: a silence that matches every alert is refused, as in
/// Alertmanager (at least one matcher must not match the empty value).
pub fn validate_matchers(matchers: &[Matcher]) -> Result<Compiled, AlertError> {
    if matchers.is_empty() || matchers.len() > MAX_MATCHERS {
        return Err(AlertError::Invalid(format!("a silence needs 1 to {MAX_MATCHERS} matchers")));
    }
    for matcher in matchers {
        if !vigil_proto::metrics::is_label_name(&matcher.name) {
            return Err(AlertError::Invalid(format!("matcher: {:?} is not a label name", matcher.name)));
        }
        if matcher.value.len() > MAX_VALUE_BYTES {
            return Err(AlertError::Invalid(format!(
                "matcher {}: the value is longer than {MAX_VALUE_BYTES} bytes",
                matcher.name
            )));
        }
    }
    let compiled = Compiled::new("", matchers)?;
    if compiled.matches(&BTreeMap::new()) {
        return Err(AlertError::Invalid(
            "these matchers match every alert (even one without labels): add one that needs a label".to_owned(),
        ));
    }
    Ok(compiled)
}

fn state(row: &SilenceRow, now: i64) -> SilenceState {
    if row.ends_at_millis <= now {
        SilenceState::Expired
    } else if row.starts_at_millis > now {
        SilenceState::Pending
    } else {
        SilenceState::Active
    }
}

fn silence(row: &SilenceRow, now: i64) -> Result<Silence, AlertError> {
    Ok(Silence {
        id: row.id.clone(),
        matchers: serde_json::from_str(&row.matchers)?,
        starts_at: millis_to_timestamp(row.starts_at_millis),
        ends_at: millis_to_timestamp(row.ends_at_millis),
        created_by: row.created_by.clone(),
        comment: row.comment.clone(),
        state: state(row, now),
        updated_at: millis_to_timestamp(row.updated_at_millis),
        silenced_alerts: Vec::new(),
    })
}

/// The silences active at `now`, compiled, for the evaluator.
pub async fn active(database: &Database, now: i64) -> Result<Vec<Compiled>, AlertError> {
    let mut active = Vec::new();
    for row in database.silences(now).await? {
        if row.starts_at_millis <= now {
            let matchers: Vec<Matcher> = serde_json::from_str(&row.matchers)?;
            match Compiled::new(&row.id, &matchers) {
                Ok(compiled) => active.push(compiled),
                Err(error) => tracing::warn!(silence = %row.id, error = %error, "a stored silence does not compile"),
            }
        }
    }
    Ok(active)
}

/// The current (pending or firing) alerts, read once for all the silences matched against them.
async fn current_alerts(database: &Database) -> Result<Vec<vigil_proto::alerts::Alert>, AlertError> {
    database
        .alert_instances(None)
        .await?
        .iter()
        .filter(|row| matches!(row.state.as_str(), "firing" | "pending"))
        .map(alert)
        .collect()
}

/// The fingerprints of those of `alerts` that `compiled` silences.
fn silenced(alerts: &[vigil_proto::alerts::Alert], compiled: &Compiled) -> Vec<String> {
    alerts.iter().filter(|alert| compiled.matches(&alert.labels)).map(|alert| alert.fingerprint.clone()).collect()
}

/// Which current alerts the matchers would silence, before the silence is saved.
pub async fn preview(database: &Database, matchers: &[Matcher]) -> Result<Vec<vigil_proto::alerts::Alert>, AlertError> {
    let compiled = validate_matchers(matchers)?;
    let mut alerts = current_alerts(database).await?;
    alerts.retain(|alert| compiled.matches(&alert.labels));
    Ok(alerts)
}

/// Silences that have not ended, and those that ended in the last 30 days; each with the
/// current alerts it silences.
pub async fn list(database: &Database) -> Result<Vec<Silence>, AlertError> {
    let now = now_millis();
    let rows = database.silences(now - HISTORY_DAYS * 86_400_000).await?;
    let alerts = if rows.iter().any(|row| state(row, now) == SilenceState::Active) {
        current_alerts(database).await?
    } else {
        Vec::new()
    };
    let mut silences = Vec::new();
    for row in rows {
        let mut shown = silence(&row, now)?;
        if shown.state == SilenceState::Active {
            shown.silenced_alerts = silenced(&alerts, &Compiled::new(&row.id, &shown.matchers)?);
        }
        silences.push(shown);
    }
    Ok(silences)
}

pub async fn get(database: &Database, id: &str) -> Result<Silence, AlertError> {
    let row = database.silence(id).await?.ok_or_else(|| AlertError::NoSilence(id.to_owned()))?;
    let now = now_millis();
    let mut shown = silence(&row, now)?;
    if shown.state == SilenceState::Active {
        shown.silenced_alerts = silenced(&current_alerts(database).await?, &Compiled::new(&row.id, &shown.matchers)?);
    }
    Ok(shown)
}

/// Creates a silence (or, with the `id` of one that has not ended, replaces it, as
/// Alertmanager does). `created_by` is who it is for (the caller, or what `amtool` sends).
pub async fn save(
    database: &Database,
    actor: &Actor,
    id: Option<&str>,
    created_by: &str,
    write: &SilenceWrite,
) -> Result<Silence, AlertError> {
    validate_matchers(&write.matchers)?;
    let comment = write.comment.trim();
    if comment.is_empty() || comment.chars().count() > MAX_COMMENT_CHARS {
        return Err(AlertError::Invalid(format!("comment (why silence) must be 1 to {MAX_COMMENT_CHARS} characters")));
    }
    if created_by.trim().is_empty() || created_by.chars().count() > 200 {
        return Err(AlertError::Invalid("createdBy must be 1 to 200 characters".to_owned()));
    }
    let now = now_millis();
    let starts = write.starts_at.map_or(now, |at| at.as_unix_nanos() / 1_000_000).max(now);
    let ends = write.ends_at.as_unix_nanos() / 1_000_000;
    if ends <= starts {
        return Err(AlertError::Invalid("endsAt must be after startsAt (and after now)".to_owned()));
    }
    let id = match id {
        Some(id) => {
            let existing = database.silence(id).await?.ok_or_else(|| AlertError::NoSilence(id.to_owned()))?;
            if existing.ends_at_millis <= now {
                return Err(AlertError::Invalid(format!("silence {id} has ended; create a new one")));
            }
            id.to_owned()
        }
        None => new_id()?,
    };
    let row = SilenceRow {
        id: id.clone(),
        matchers: serde_json::to_string(&write.matchers)?,
        starts_at_millis: starts,
        ends_at_millis: ends,
        created_by: created_by.to_owned(),
        comment: comment.to_owned(),
        updated_at_millis: now,
    };
    database.save_silence(&row).await?;
    let described: Vec<String> = write
        .matchers
        .iter()
        .map(|matcher| format!("{}{}{:?}", matcher.name, matcher.operator(), matcher.value))
        .collect();
    let detail = format!("{{{}}} until {}: {comment}", described.join(", "), millis_to_timestamp(ends));
    audit::record(database, actor, Action::SilenceSave, &id, AuditOutcome::Success, &detail).await;
    get(database, &id).await
}

/// Ends a silence now.
pub async fn expire(database: &Database, actor: &Actor, id: &str) -> Result<(), AlertError> {
    let existing = database.silence(id).await?.ok_or_else(|| AlertError::NoSilence(id.to_owned()))?;
    if !database.expire_silence(id, now_millis()).await? {
        return Err(AlertError::Invalid(format!("silence {} has ended already", existing.id)));
    }
    audit::record(database, actor, Action::SilenceExpire, id, AuditOutcome::Success, &existing.comment).await;
    Ok(())
}

/// A UUID (version 4), as Alertmanager names silences.
fn new_id() -> Result<String, AlertError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|error| AlertError::Invalid(format!("no randomness: {error}")))?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matcher(name: &str, value: &str, is_regex: bool, is_equal: bool) -> Matcher {
        Matcher { name: name.to_owned(), value: value.to_owned(), is_regex, is_equal }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    #[test]
    fn matchers_hold_as_in_alertmanager() {
        let silence =
            Compiled::new("s", &[matcher("service", "pay.*", true, true), matcher("env", "staging", false, false)])
                .unwrap();
        assert!(silence.matches(&labels(&[("service", "payments"), ("env", "production")])));
        assert!(silence.matches(&labels(&[("service", "payments")])), "a missing label is empty, not staging");
        assert!(!silence.matches(&labels(&[("service", "payments"), ("env", "staging")])));
        assert!(!silence.matches(&labels(&[("service", "xpayments")])), "regular expressions are anchored");
        let not_regex = Compiled::new("s", &[matcher("host", "web-.*", true, false)]).unwrap();
        assert!(not_regex.matches(&labels(&[("host", "db-1")])));
        assert!(!not_regex.matches(&labels(&[("host", "web-1")])));
    }

    #[test]
    fn a_silence_of_everything_or_a_bad_regex_is_refused() {
        assert!(validate_matchers(&[]).is_err());
        assert!(validate_matchers(&[matcher("service", ".*", true, true)]).is_err(), "matches every alert");
        assert!(validate_matchers(&[matcher("service", "", false, true)]).is_err());
        assert!(validate_matchers(&[matcher("service", "(", true, true)]).is_err());
        assert!(validate_matchers(&[matcher("bad-name", "x", false, true)]).is_err());
        assert!(validate_matchers(&[matcher("service", "api", false, true)]).is_ok());
    }

    #[test]
    fn ids_are_uuids() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert_ne!(id, new_id().unwrap());
    }
}
