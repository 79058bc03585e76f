//! Appending to the audit log. Every state change calls [`record`] after it happened (or
//! failed); a failure to write the audit entry is logged loudly and does not undo the change.

use std::net::IpAddr;

use vigil_proto::auth::AuditOutcome;

use crate::store::{Database, NewAuditEvent};

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

    /// The command line, for changes made with `vigil` subcommands.
    pub fn command_line() -> Self {
        Self::new("cli", None)
    }
}

pub async fn record(
    database: &Database,
    actor: &Actor,
    action: &str,
    target: &str,
    outcome: AuditOutcome,
    detail: &str,
) {
    let source_ip = actor.source_ip.map(|ip| ip.to_string()).unwrap_or_default();
    let event =
        NewAuditEvent { actor: &actor.name, source_ip: &source_ip, action, target, outcome: outcome.as_str(), detail };
    if let Err(error) = database.append_audit(event).await {
        tracing::error!(action, target, error = %crate::error::error_chain(&error), "cannot write the audit log");
    }
}
