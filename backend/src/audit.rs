//! Appending to the audit log. Every state change calls [`record`] after it happened (or
//! failed); a failure to write the audit entry is logged loudly and does not undo the change.
//!
//! Anonymous callers can make entries too (a failed sign-in, a refused single sign-on), so
//! every field is bounded, and [`RepeatedFailures`] collapses their repetitions: the first
//! failure of an action, target and address in a window is written at once, the others are
//! counted and written as one entry when the window ends.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_proto::auth::AuditOutcome;

use crate::store::{Database, NewAuditEvent};

/// Characters kept of each field; the rest is cut with an ellipsis.
const MAX_ACTOR_CHARS: usize = 128;
const MAX_TARGET_CHARS: usize = 256;
const MAX_DETAIL_CHARS: usize = 1024;
/// Distinct repeated failures tracked at once; past it, new ones are counted together.
const MAX_TRACKED_FAILURES: usize = 10_000;

/// What was done: the names the audit log keeps and filters by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Login,
    Logout,
    PasswordChange,
    UserCreate,
    UserUpdate,
    TokenCreate,
    TokenRevoke,
    DashboardCreate,
    DashboardUpdate,
    DashboardDelete,
    DashboardImport,
    IntegrationCreate,
    IntegrationUpdate,
    IntegrationDelete,
    AgentRegister,
    AlertRuleCreate,
    AlertRuleUpdate,
    AlertRuleDelete,
    AlertAcknowledge,
    NotificationTest,
    SilenceSave,
    SilenceExpire,
    ServiceCreate,
    ServiceUpdate,
    RolloutStart,
    RolloutApprove,
    RolloutAbort,
    RolloutRollback,
    RolloutCallback,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Login => "login",
            Self::Logout => "logout",
            Self::PasswordChange => "password.change",
            Self::UserCreate => "user.create",
            Self::UserUpdate => "user.update",
            Self::TokenCreate => "token.create",
            Self::TokenRevoke => "token.revoke",
            Self::DashboardCreate => "dashboard.create",
            Self::DashboardUpdate => "dashboard.update",
            Self::DashboardDelete => "dashboard.delete",
            Self::DashboardImport => "dashboard.import",
            Self::IntegrationCreate => "integration.create",
            Self::IntegrationUpdate => "integration.update",
            Self::IntegrationDelete => "integration.delete",
            Self::AgentRegister => "agent.register",
            Self::AlertRuleCreate => "alert_rule.create",
            Self::AlertRuleUpdate => "alert_rule.update",
            Self::AlertRuleDelete => "alert_rule.delete",
            Self::AlertAcknowledge => "alert.acknowledge",
            Self::NotificationTest => "notification.test",
            Self::SilenceSave => "silence.save",
            Self::SilenceExpire => "silence.expire",
            Self::ServiceCreate => "service.create",
            Self::ServiceUpdate => "service.update",
            Self::RolloutStart => "rollout.start",
            Self::RolloutApprove => "rollout.approve",
            Self::RolloutAbort => "rollout.abort",
            Self::RolloutRollback => "rollout.rollback",
            Self::RolloutCallback => "rollout.callback",
        }
    }
}

/// Who did it and from where.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `alice`, `token:ci`, `anonymous`.
    pub name: String,
    pub source_ip: Option<IpAddr>,
}

impl Actor {
    pub fn new(name: impl Into<String>, source_ip: Option<IpAddr>) -> Self {
        Self { name: name.into(), source_ip }
    }

    /// A caller who is not signed in.
    pub fn anonymous(source_ip: Option<IpAddr>) -> Self {
        Self::new("anonymous", source_ip)
    }

    /// The command line, for changes made with `vigil` subcommands.
    pub fn command_line() -> Self {
        Self::new("cli", None)
    }
}

/// At most `max` characters of `text`, control characters replaced by spaces, so that a
/// field can neither grow the log without limit nor forge lines where it is printed.
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    if text.chars().count() <= max && !text.chars().any(char::is_control) {
        return Cow::Borrowed(text);
    }
    let mut kept: String =
        text.chars().take(max).map(|character| if character.is_control() { ' ' } else { character }).collect();
    if text.chars().count() > max {
        kept.pop();
        kept.push('…');
    }
    Cow::Owned(kept)
}

pub async fn record(
    database: &Database,
    actor: &Actor,
    action: Action,
    target: &str,
    outcome: AuditOutcome,
    detail: &str,
) {
    let source_ip = actor.source_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let event = NewAuditEvent {
        actor: &bounded(&actor.name, MAX_ACTOR_CHARS),
        source_ip: &source_ip,
        action: action.as_str(),
        target: &bounded(target, MAX_TARGET_CHARS),
        outcome: outcome.as_str(),
        detail: &bounded(detail, MAX_DETAIL_CHARS),
    };
    if let Err(error) = database.append_audit(event).await {
        let target = bounded(target, MAX_TARGET_CHARS);
        tracing::error!(action = action.as_str(), target = %target, error = %crate::telemetry::error_chain(&error), "cannot write the audit log");
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct FailureKey {
    action: Action,
    target: String,
    source_ip: Option<IpAddr>,
}

struct Repeats {
    first: Instant,
    /// Failures after the first, not written yet.
    more: u64,
    last_detail: String,
}

/// Failures of anonymous callers, collapsed per action, target and address over a window.
pub struct RepeatedFailures {
    window: Duration,
    entries: Mutex<HashMap<FailureKey, Repeats>>,
}

/// An entry that stands for several failures.
struct Summary {
    key: FailureKey,
    more: u64,
    last_detail: String,
}

impl RepeatedFailures {
    pub fn new(window: Duration) -> Self {
        Self { window, entries: Mutex::new(HashMap::new()) }
    }

    /// Records a failure of an anonymous caller: written now when it is the first of its
    /// action, target and address in the window, otherwise counted for [`Self::flush`].
    pub async fn record(
        &self,
        database: &Database,
        source_ip: Option<IpAddr>,
        action: Action,
        target: &str,
        detail: &str,
    ) {
        let target = bounded(target, MAX_TARGET_CHARS);
        let first = {
            let now = Instant::now();
            let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let mut key = FailureKey { action, target: target.clone().into_owned(), source_ip };
            if entries.len() >= MAX_TRACKED_FAILURES && !entries.contains_key(&key) {
                // Too many distinct failures at once: count the rest together.
                key = FailureKey { action, target: "*".to_owned(), source_ip: None };
            }
            match entries.get_mut(&key) {
                Some(repeats) if now.duration_since(repeats.first) < self.window => {
                    repeats.more += 1;
                    repeats.last_detail = bounded(detail, MAX_DETAIL_CHARS).into_owned();
                    false
                }
                _ => {
                    entries.insert(key, Repeats { first: now, more: 0, last_detail: String::new() });
                    true
                }
            }
        };
        if first {
            record(database, &Actor::anonymous(source_ip), action, &target, AuditOutcome::Failure, detail).await;
        }
    }

    /// Writes one entry for each window that ended with repeated failures, or for every
    /// window with `everything` (at shutdown).
    pub async fn flush(&self, database: &Database, everything: bool) {
        let summaries: Vec<Summary> = {
            let now = Instant::now();
            let mut entries = self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let ended: Vec<FailureKey> = entries
                .iter()
                .filter(|(_, repeats)| everything || now.duration_since(repeats.first) >= self.window)
                .map(|(key, _)| key.clone())
                .collect();
            ended
                .into_iter()
                .filter_map(|key| entries.remove_entry(&key))
                .filter(|(_, repeats)| repeats.more > 0)
                .map(|(key, repeats)| Summary { key, more: repeats.more, last_detail: repeats.last_detail })
                .collect()
        };
        for Summary { key, more, last_detail } in summaries {
            let detail = format!(
                "{more} more failure{} within {} s (the last: {last_detail})",
                if more == 1 { "" } else { "s" },
                self.window.as_secs()
            );
            let actor = Actor::anonymous(key.source_ip);
            record(database, &actor, key.action, &key.target, AuditOutcome::Failure, &detail).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_bounded_and_lose_their_control_characters() {
        assert_eq!(bounded("alice", 10), "alice");
        assert!(matches!(bounded("alice", 10), Cow::Borrowed(_)));
        assert_eq!(bounded("a\nforged line", 100), "a forged line");
        let text = "x".repeat(15_000);
        let long = bounded(&text, 1024);
        assert_eq!(long.chars().count(), 1024);
        assert!(long.ends_with('…'));
        assert_eq!(bounded("ééé", 2), "é…");
    }
}
