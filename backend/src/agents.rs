//! Agents as the backend knows them: what a heartbeat may say, how fast one caller may
//! register new hosts, and an agent's state at a moment.
//!
//! A heartbeat reaches service discovery (its `metrics_address` becomes a Prometheus target),
//! the Agents page and the server's log, and any ingest token can send one: so every string is
//! bounded and free of control characters, the address is `host:port` and nothing else, a
//! host name belongs to the caller that registered it (see `store::agents`), and new hosts
//! are registered at a bounded rate per caller.
//!
//! Not here: HTTP (see `routes::agents`), storage (see `store::agents`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use vigil_proto::agents::{AgentHeartbeat, AgentState, AgentStatus};
use vigil_proto::auth::AuditOutcome;

use crate::audit::{self, Action, Actor};
use crate::store::{AgentRow, Database, Heartbeat, StoreError, millis_to_timestamp, now_millis};

const MAX_SOURCES: usize = 1000;
const MAX_HOST_BYTES: usize = 253;
const MAX_OS_BYTES: usize = 256;
const MAX_VERSION_BYTES: usize = 64;
const MAX_SOURCE_NAME_BYTES: usize = 512;
const MAX_KIND_BYTES: usize = 32;
const MAX_SERVICE_BYTES: usize = 128;
const MAX_ERROR_CHARS: usize = 1024;
/// New hosts one caller may register at once, and again every minute.
pub const REGISTRATIONS_PER_MINUTE: u32 = 100;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HeartbeatError {
    #[error("{0} must be 1 to {1} bytes without control characters")]
    BadText(&'static str, usize),
    #[error("metrics_address {0:?} must be host:port (a host name or address and a port, nothing else)")]
    BadAddress(String),
    #[error("at most {MAX_SOURCES} sources")]
    TooManySources,
    #[error("interval_seconds must be greater than 0")]
    ZeroInterval,
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Invalid(#[from] HeartbeatError),
    #[error("this caller registered {REGISTRATIONS_PER_MINUTE} new hosts in the last minute; try again later")]
    TooManyRegistrations { retry_after: Duration },
    #[error(
        "host {0:?} was registered with another token; send its heartbeats with that token, or revoke it so that \
         this one takes the host over"
    )]
    BoundElsewhere(String),
    #[error("a heartbeat cannot be encoded: {0}")]
    Encoding(#[from] serde_json::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn text(value: &str, what: &'static str, max: usize, optional: bool) -> Result<(), HeartbeatError> {
    let fits = (optional || !value.trim().is_empty()) && value.len() <= max && !value.chars().any(char::is_control);
    if fits { Ok(()) } else { Err(HeartbeatError::BadText(what, max)) }
}

/// Whether `address` is `host:port`: a DNS name or IPv4 address, or a bracketed IPv6
/// address, then a port from 1 to 65535.
pub fn is_host_port(address: &str) -> bool {
    let Some((host, port)) = address.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|byte| byte.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|port| port > 0);
    let host_ok = match host.strip_prefix('[').and_then(|inner| inner.strip_suffix(']')) {
        Some(ipv6) => ipv6.parse::<std::net::Ipv6Addr>().is_ok(),
        None => {
            !host.is_empty()
                && host.len() <= MAX_HOST_BYTES
                && host.split('.').all(|label| {
                    !label.is_empty()
                        && label.len() <= 63
                        && !label.starts_with('-')
                        && !label.ends_with('-')
                        && label.bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
                })
        }
    };
    port_ok && host_ok
}

/// Checks what a heartbeat says, and trims its host name. Error texts (`last_error`) are
/// what an agent saw and may hold line breaks: they are cut and their control characters
/// replaced rather than refused.
pub fn validate(report: &mut AgentHeartbeat) -> Result<(), HeartbeatError> {
    report.host = report.host.trim().to_owned();
    text(&report.host, "host", MAX_HOST_BYTES, false)?;
    text(&report.os, "os", MAX_OS_BYTES, true)?;
    text(&report.version, "version", MAX_VERSION_BYTES, true)?;
    if report.interval_seconds == 0 {
        return Err(HeartbeatError::ZeroInterval);
    }
    if let Some(address) = &report.metrics_address
        && !is_host_port(address)
    {
        return Err(HeartbeatError::BadAddress(crate::audit::bounded(address, 100).into_owned()));
    }
    if report.sources.len() > MAX_SOURCES {
        return Err(HeartbeatError::TooManySources);
    }
    for source in &mut report.sources {
        text(&source.name, "sources.name", MAX_SOURCE_NAME_BYTES, false)?;
        text(&source.kind, "sources.kind", MAX_KIND_BYTES, false)?;
        if let Some(service) = &source.service {
            text(service, "sources.service", MAX_SERVICE_BYTES, false)?;
        }
        sanitize(&mut source.last_error);
    }
    sanitize(&mut report.last_error);
    Ok(())
}

fn sanitize(error: &mut Option<String>) {
    if let Some(text) = error {
        *text = crate::audit::bounded(text, MAX_ERROR_CHARS).into_owned();
    }
}

/// New hosts per caller: at most [`REGISTRATIONS_PER_MINUTE`] in a minute that starts at the
/// caller's first registration.
#[derive(Default)]
pub struct Registrations {
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl Registrations {
    const WINDOW: Duration = Duration::from_secs(60);

    /// Takes one registration for `caller`; `Err` with how long to wait when none is left.
    pub fn take(&self, caller: &str) -> Result<(), Duration> {
        let now = Instant::now();
        let mut windows = self.windows.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if windows.len() > 10_000 {
            windows.retain(|_, (started, _)| now.duration_since(*started) < Self::WINDOW);
        }
        let (started, count) = windows.entry(caller.to_owned()).or_insert((now, 0));
        if now.duration_since(*started) >= Self::WINDOW {
            (*started, *count) = (now, 0);
        }
        if *count >= REGISTRATIONS_PER_MINUTE {
            return Err(Self::WINDOW.saturating_sub(now.duration_since(*started)));
        }
        *count += 1;
        Ok(())
    }
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

/// Records a heartbeat from `caller` (its stable key, `user:<id>` or `token:<id>`): the
/// first registers the host to that caller, within the registrations a caller may make; a
/// host bound to another caller is refused while that caller can still send.
pub async fn record_heartbeat(
    database: &Database,
    registrations: &Registrations,
    actor: &Actor,
    caller: &str,
    mut report: AgentHeartbeat,
) -> Result<(), AgentError> {
    validate(&mut report)?;
    let host = report.host.clone();
    if database.agent(&host).await?.is_none()
        && let Err(retry_after) = registrations.take(caller)
    {
        return Err(AgentError::TooManyRegistrations { retry_after });
    }
    let json = serde_json::to_string(&report)?;
    let take_over = async |owner: &str| binding_ended(database, owner).await;
    match database.record_heartbeat(&host, &json, caller, take_over).await? {
        Heartbeat::Registered(_) => {
            audit::record(database, actor, Action::AgentRegister, &host, AuditOutcome::Success, &report.version).await;
            tracing::info!(host = %host, version = %report.version, "agent registered");
        }
        Heartbeat::Recorded(_) => {}
        Heartbeat::BoundElsewhere(_) => return Err(AgentError::BoundElsewhere(host)),
    }
    Ok(())
}

/// Whether the caller a host is bound to can no longer send: its token revoked, expired or
/// gone, or its user disabled or gone.
async fn binding_ended(database: &Database, owner: &str) -> bool {
    let now = now_millis();
    if let Some(id) = owner.strip_prefix("token:").and_then(|id| id.parse().ok()) {
        return match database.token_by_id(id).await {
            Ok(Some(token)) => {
                token.revoked_at_millis.is_some() || token.expires_at_millis.is_some_and(|expires| expires <= now)
            }
            Ok(None) => true,
            Err(_) => false,
        };
    }
    if let Some(id) = owner.strip_prefix("user:").and_then(|id| id.parse().ok()) {
        return match database.user_by_id(id).await {
            Ok(Some(user)) => user.disabled,
            Ok(None) => true,
            Err(_) => false,
        };
    }
    false
}

/// Every agent with its state now.
pub async fn statuses(database: &Database) -> Result<Vec<AgentStatus>, AgentError> {
    let now = now_millis();
    Ok(database.agents().await?.iter().filter_map(|row| status(row, now)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_host_and_port_are_addresses() {
        for good in ["web-1:9100", "10.0.0.7:9100", "[::1]:9100", "host.example.com:65535", "a_b:1"] {
            assert!(is_host_port(good), "{good}");
        }
        for bad in [
            "http://169.254.169.254:80/latest?x=1",
            "169.254.169.254:80/latest",
            "web-1",
            "web-1:",
            "web-1:0",
            "web-1:65536",
            ":9100",
            "user@web-1:9100",
            "web 1:9100",
            "[::1:9100",
            "web-1:9100\n",
            "-web:1",
        ] {
            assert!(!is_host_port(bad), "{bad:?}");
        }
    }

    #[test]
    fn registrations_are_counted_per_caller_and_minute() {
        let registrations = Registrations::default();
        for _ in 0..REGISTRATIONS_PER_MINUTE {
            assert!(registrations.take("token:1").is_ok());
        }
        let wait = registrations.take("token:1").unwrap_err();
        assert!(wait > Duration::from_secs(50) && wait <= Duration::from_secs(60), "{wait:?}");
        assert!(registrations.take("token:2").is_ok());
    }
}
