//! Notification channels: delivers one alert notification to one channel (a stored
//! integration of a notification kind: webhook, Slack, PagerDuty, Alertmanager, e-mail), and
//! checks a channel's settings when it is saved.
//!
//! It does not decide when to notify, retry or record a delivery: the caller does, with
//! [`DeliveryError::is_retryable`] and the `Retry-After` it carries. It does not open secrets
//! either: it is handed them in clear, and never puts them in an error.
//!
//! # The generic webhook
//!
//! `POST` to the setting `url` (http or https) with the [`WebhookBody`] as JSON (`version`
//! `"1"`) and these headers:
//!
//! - `Content-Type: application/json`, `User-Agent: Vigil`;
//! - `X-Vigil-Event`: `firing`, `resolved`, `acknowledged`, `repeat`, `escalation` or `test`;
//! - `X-Vigil-Timestamp`: when it was sent, in Unix seconds;
//! - `X-Vigil-Signature: sha256=<hex>` when the secret `signing_key` is set: the lowercase hex
//!   of HMAC-SHA256 keyed with `signing_key` over `<X-Vigil-Timestamp>.<the raw body>`. A
//!   receiver recomputes it over the bytes it received, compares in constant time, and refuses
//!   timestamps more than a few minutes old, so that a captured request cannot be replayed;
//! - `Authorization: Bearer <bearer_token>` when the secret `bearer_token` is set.
//!
//! Any 2xx is success. 408, 429 and 5xx are retried (honouring `Retry-After` in seconds);
//! other answers are permanent. The same `dedup_key` comes with every notification of one
//! firing episode of one alert, so that a receiver can drop the repeats a retry may cause.
//!
//! # The other kinds
//!
//! - Slack: an incoming-webhook message (`text` and Block Kit `blocks`) to the secret `url`
//!   (the setting `url` as a fallback); settings `channel`, `username`.
//! - PagerDuty: Events API v2 `trigger`, `acknowledge` and `resolve` events keyed by the
//!   dedup key, with the secret `routing_key`, to the setting `url` or PagerDuty's.
//! - Alertmanager: Alertmanager's own webhook payload (version 4) to the setting `url`, for
//!   receivers written for it; acknowledgements are not sent.
//! - SMTP: a plain-text e-mail through one relay (see `smtp`): settings `host`, `port`,
//!   `from`, `to`, `tls` (`"starttls"`, the default; `"implicit"`; `"none"`), `ca_file` and
//!   `allow_plaintext_auth` (a password in clear only with it); secrets `username`, `password`.

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER, USER_AGENT};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use vigil_proto::alerts::{Notification, NotificationEvent, WebhookBody};

use super::smtp::{self, SendMailError};
use crate::integrations::IntegrationKind;

/// A receiver that stalls must not hold a delivery worker; the caller retries later.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// What an error keeps of a refusing receiver's answer.
const MAX_ERROR_BODY_CHARS: usize = 300;
/// What is read of that answer at most, whatever its length.
const MAX_ERROR_BODY_BYTES: usize = 4096;
const PAGERDUTY_EVENTS_URL: &str = "https://events.pagerduty.com/v2/enqueue";
const PAGERDUTY_MAX_SUMMARY_CHARS: usize = 1024;
/// Go's zero time, which Alertmanager writes as `endsAt` of an alert still firing.
const ALERTMANAGER_ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// Message submission (RFC 6409).
const DEFAULT_SMTP_PORT: u16 = 587;
// Slack's limits on Block Kit texts.
const SLACK_HEADER_CHARS: usize = 150;
const SLACK_SECTION_CHARS: usize = 3000;
const SLACK_FIELD_CHARS: usize = 2000;

// The settings and secrets each kind knows; anything else is a typo, refused when saved.
const WEBHOOK_SETTINGS: &[&str] = &["url"];
const WEBHOOK_SECRETS: &[&str] = &["signing_key", "bearer_token"];
const SLACK_SETTINGS: &[&str] = &["url", "channel", "username"];
const SLACK_SECRETS: &[&str] = &["url"];
const PAGERDUTY_SETTINGS: &[&str] = &["url"];
const PAGERDUTY_SECRETS: &[&str] = &["routing_key"];
const ALERTMANAGER_SETTINGS: &[&str] = &["url"];
const ALERTMANAGER_SECRETS: &[&str] = &["bearer_token"];
const SMTP_SETTINGS: &[&str] = &["host", "port", "from", "to", "tls", "ca_file", "allow_plaintext_auth"];
const SMTP_SECRETS: &[&str] = &["username", "password"];

/// Where a notification goes: a channel's kind, settings (JSON object) and opened secrets.
pub struct Target<'a> {
    pub name: &'a str,
    pub kind: IntegrationKind,
    pub settings: &'a Map<String, Value>,
    pub secrets: &'a BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// A setting or secret is missing or malformed: retrying will not help.
    #[error("{0}")]
    Setting(String),
    /// The kind is not a notification channel (a CI provider).
    #[error("{0} is not a notification channel")]
    NotAChannel(IntegrationKind),
    /// The receiver refused the notification (4xx other than 408/429): permanent. For e-mail,
    /// `status` is the SMTP reply code (5xx).
    #[error("the receiver answered {status}: {body}")]
    Refused { status: u16, body: String },
    /// The receiver failed or was unreachable, or answered 408/429/5xx: worth retrying.
    #[error("{reason}")]
    Unavailable { reason: String, retry_after: Option<Duration> },
}

impl DeliveryError {
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Unavailable { .. })
    }
}

fn setting_error(name: &str, problem: impl fmt::Display) -> DeliveryError {
    DeliveryError::Setting(format!("channel setting {name}: {problem}"))
}

fn secret_error(name: &str, problem: impl fmt::Display) -> DeliveryError {
    DeliveryError::Setting(format!("channel secret {name}: {problem}"))
}

/// Sends one message (the notifications of one group, or one alone) to one channel. A kind
/// that has nothing to say for an event (Alertmanager and acknowledgements) skips it, and
/// succeeds without a request when nothing is left.
pub async fn deliver(http: &reqwest::Client, target: &Target<'_>, message: &WebhookBody) -> Result<(), DeliveryError> {
    match target.kind {
        IntegrationKind::Webhook => deliver_webhook(http, target, message).await,
        IntegrationKind::Slack => deliver_slack(http, target, message).await,
        IntegrationKind::PagerDuty => deliver_pagerduty(http, target, message).await,
        IntegrationKind::Alertmanager => deliver_alertmanager(http, target, message).await,
        IntegrationKind::Smtp => deliver_email(target, message).await,
        IntegrationKind::Buildbot
        | IntegrationKind::Jenkins
        | IntegrationKind::GitLab
        | IntegrationKind::CircleCi
        | IntegrationKind::GitHub
        | IntegrationKind::ArgoCd
        | IntegrationKind::Kubernetes => Err(DeliveryError::NotAChannel(target.kind)),
    }
}

/// Checks a channel's settings and secret names when it is saved (so that a typo is a 400, not a failed delivery at 3 am).
///
/// Unknown setting and secret names are refused too. A CI kind is [`DeliveryError::NotAChannel`].
pub fn check_settings(
    kind: IntegrationKind,
    settings: &Map<String, Value>,
    secret_names: &[&str],
) -> Result<(), DeliveryError> {
    let has_secret = |name: &str| secret_names.contains(&name);
    match kind {
        IntegrationKind::Webhook => {
            check_names(kind, settings, secret_names, WEBHOOK_SETTINGS, WEBHOOK_SECRETS)?;
            required_url(settings)?;
        }
        IntegrationKind::Slack => {
            check_names(kind, settings, secret_names, SLACK_SETTINGS, SLACK_SECRETS)?;
            let options = SlackOptions::parse(settings)?;
            if options.url.is_none() && !has_secret("url") {
                return Err(secret_error(
                    "url",
                    "missing: the incoming-webhook URL (or, less safely, the setting url)",
                ));
            }
        }
        IntegrationKind::PagerDuty => {
            check_names(kind, settings, secret_names, PAGERDUTY_SETTINGS, PAGERDUTY_SECRETS)?;
            pagerduty_url(settings)?;
            if !has_secret("routing_key") {
                return Err(secret_error(
                    "routing_key",
                    "missing: the integration key of an Events API v2 integration",
                ));
            }
        }
        IntegrationKind::Alertmanager => {
            check_names(kind, settings, secret_names, ALERTMANAGER_SETTINGS, ALERTMANAGER_SECRETS)?;
            required_url(settings)?;
        }
        IntegrationKind::Smtp => {
            check_names(kind, settings, secret_names, SMTP_SETTINGS, SMTP_SECRETS)?;
            let email = EmailSettings::parse(settings)?;
            // The values are not known here, only whether they are set.
            email.credentials(has_secret("username").then_some("set"), has_secret("password").then_some("set"))?;
        }
        IntegrationKind::Buildbot
        | IntegrationKind::Jenkins
        | IntegrationKind::GitLab
        | IntegrationKind::CircleCi
        | IntegrationKind::GitHub
        | IntegrationKind::ArgoCd
        | IntegrationKind::Kubernetes => return Err(DeliveryError::NotAChannel(kind)),
    }
    Ok(())
}

fn check_names(
    kind: IntegrationKind,
    settings: &Map<String, Value>,
    secret_names: &[&str],
    known_settings: &[&str],
    known_secrets: &[&str],
) -> Result<(), DeliveryError> {
    if let Some(name) = settings.keys().find(|name| !known_settings.contains(&name.as_str())) {
        let problem = format!("unknown for a {kind} channel (known: {})", known_settings.join(", "));
        return Err(setting_error(name, problem));
    }
    if let Some(name) = secret_names.iter().find(|name| !known_secrets.contains(name)) {
        let problem = format!("unknown for a {kind} channel (known: {})", known_secrets.join(", "));
        return Err(secret_error(name, problem));
    }
    Ok(())
}

/// A string setting; absent, `null` and `""` (an empty form field) are all absent.
fn string_setting<'a>(settings: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, DeliveryError> {
    match settings.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
        Some(Value::String(text)) => Ok(Some(text.trim())),
        Some(_) => Err(setting_error(name, "must be a string")),
    }
}

fn required_setting<'a>(settings: &'a Map<String, Value>, name: &str) -> Result<&'a str, DeliveryError> {
    string_setting(settings, name)?.ok_or_else(|| setting_error(name, "missing"))
}

fn secret<'a>(secrets: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    secrets.get(name).map(String::as_str).filter(|value| !value.is_empty())
}

/// Why a text is not an http or https URL with a host.
#[derive(Debug, thiserror::Error)]
enum UrlProblem {
    #[error("not a URL ({0})")]
    Parse(#[from] url::ParseError),
    #[error("must be an http or https URL, not {0}")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
}

/// An http or https URL with a host.
fn http_url(text: &str) -> Result<Url, UrlProblem> {
    let url = Url::parse(text)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(UrlProblem::Scheme(url.scheme().to_owned()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(UrlProblem::NoHost);
    }
    Ok(url)
}

fn url_setting(settings: &Map<String, Value>, name: &str) -> Result<Option<Url>, DeliveryError> {
    string_setting(settings, name)?
        .map(|text| http_url(text).map_err(|problem| setting_error(name, format!("{text:?}: {problem}"))))
        .transpose()
}

fn required_url(settings: &Map<String, Value>) -> Result<Url, DeliveryError> {
    url_setting(settings, "url")?.ok_or_else(|| setting_error("url", "missing"))
}

/// A secret as a header value, marked sensitive so that it is never logged.
fn secret_header(name: &str, value: String) -> Result<HeaderValue, DeliveryError> {
    let mut header =
        HeaderValue::try_from(value).map_err(|_| secret_error(name, "must be printable ASCII without line breaks"))?;
    header.set_sensitive(true);
    Ok(header)
}

fn bearer(secrets: &BTreeMap<String, String>) -> Result<Option<HeaderValue>, DeliveryError> {
    secret(secrets, "bearer_token").map(|token| secret_header("bearer_token", format!("Bearer {token}"))).transpose()
}

/// Sends a request and sorts the answer: 2xx is done, 408, 429 and 5xx are worth retrying,
/// anything else is a refusal. Errors never hold the URL (a Slack URL is a credential).
async fn send(request: reqwest::RequestBuilder) -> Result<(), DeliveryError> {
    let response = request.header(USER_AGENT, "Vigil").timeout(REQUEST_TIMEOUT).send().await.map_err(|error| {
        let error = error.without_url();
        if error.is_builder() {
            DeliveryError::Setting(format!("the request cannot be built: {}", crate::telemetry::error_chain(&error)))
        } else {
            let reason = format!("cannot reach the receiver: {}", crate::telemetry::error_chain(&error));
            DeliveryError::Unavailable { reason, retry_after: None }
        }
    })?;
    let status = response.status();
    if status.is_success() {
        return Ok(());
    }
    let retry_after = retry_after(response.headers());
    let body = answer_text(response).await;
    let status = status.as_u16();
    if matches!(status, 408 | 429 | 500..) {
        Err(DeliveryError::Unavailable { reason: format!("the receiver answered {status}: {body}"), retry_after })
    } else {
        Err(DeliveryError::Refused { status, body })
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by the receivers here).
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let seconds = headers.get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(seconds))
}

/// The start of an answer's body, read up to a bound and cut for an error message.
async fn answer_text(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < MAX_ERROR_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    text.trim().chars().take(MAX_ERROR_BODY_CHARS).collect()
}

fn unix_seconds_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs())
}

fn rfc3339_now() -> String {
    OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default()
}

/// HMAC-SHA256 (RFC 2104) over the concatenated parts. The `hmac` crate is not a dependency
/// of the backend; the construction is a few lines over `sha2`.
pub(crate) fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    const BLOCK_BYTES: usize = 64;
    let mut block_key = [0u8; BLOCK_BYTES];
    if key.len() > BLOCK_BYTES {
        block_key[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block_key[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block_key.map(|byte| byte ^ 0x36));
    for part in parts {
        inner.update(part);
    }
    let mut outer = Sha256::new();
    outer.update(block_key.map(|byte| byte ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

pub(crate) fn lowercase_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `sha256=<hex>` of `<timestamp>.<body>`, as the module documentation describes.
fn webhook_signature(signing_key: &str, timestamp: u64, body: &[u8]) -> String {
    let mac = hmac_sha256(signing_key.as_bytes(), &[timestamp.to_string().as_bytes(), b".", body]);
    format!("sha256={}", lowercase_hex(&mac))
}

/// The event every notification of a message is about, or `mixed`.
fn common_event(message: &WebhookBody) -> &'static str {
    let mut events = message.notifications.iter().map(|notification| notification.event);
    match events.next() {
        Some(first) if events.all(|event| event == first) => first.as_str(),
        _ => "mixed",
    }
}

/// `FIRING:2 RESOLVED:1`: what a group's message holds.
fn event_counts(message: &WebhookBody) -> String {
    let mut counts: Vec<(&'static str, usize)> = Vec::new();
    for notification in &message.notifications {
        let tag = tag_of(notification.event);
        match counts.iter_mut().find(|(seen, _)| *seen == tag) {
            Some((_, count)) => *count += 1,
            None => counts.push((tag, 1)),
        }
    }
    counts.iter().map(|(tag, count)| format!("{tag}:{count}")).collect::<Vec<_>>().join(" ")
}

/// `[FIRING:2 RESOLVED:1] alertname=HighErrorRate`: how a group's message starts.
fn group_headline(message: &WebhookBody) -> String {
    let labels: Vec<String> = message.group_labels.iter().map(|(name, value)| format!("{name}={value}")).collect();
    match labels.is_empty() {
        true => format!("[{}] {} alerts", event_counts(message), message.notifications.len()),
        false => format!("[{}] {}", event_counts(message), labels.join(", ")),
    }
}

async fn deliver_webhook(
    http: &reqwest::Client,
    target: &Target<'_>,
    message: &WebhookBody,
) -> Result<(), DeliveryError> {
    let url = required_url(target.settings)?;
    // Strings, string maps, numbers and timestamps: serializing cannot fail.
    let body = serde_json::to_vec(message).expect("a webhook body serializes to JSON");
    let timestamp = unix_seconds_now();
    let mut request = http
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("X-Vigil-Event", common_event(message))
        .header("X-Vigil-Timestamp", timestamp.to_string());
    if let Some(signing_key) = secret(target.secrets, "signing_key") {
        request = request.header("X-Vigil-Signature", webhook_signature(signing_key, timestamp, &body));
    }
    if let Some(authorization) = bearer(target.secrets)? {
        request = request.header(AUTHORIZATION, authorization);
    }
    send(request.body(body)).await
}

/// `[FIRING] <rule name>`: how every notification meant for people starts.
fn headline(notification: &Notification) -> String {
    let tag = match (&notification.event, &notification.alert.acknowledged) {
        (NotificationEvent::Acknowledged, Some(acknowledgement)) => format!("ACKNOWLEDGED by {}", acknowledgement.by),
        (event, _) => tag_of(*event).to_owned(),
    };
    format!("[{tag}] {}", notification.rule_name)
}

fn tag_of(event: NotificationEvent) -> &'static str {
    match event {
        NotificationEvent::Firing => "FIRING",
        NotificationEvent::Resolved => "RESOLVED",
        NotificationEvent::Acknowledged => "ACKNOWLEDGED",
        NotificationEvent::Repeat => "REPEAT",
        NotificationEvent::Escalation => "ESCALATED",
        NotificationEvent::Test => "TEST",
    }
}

/// `service=api, severity=critical`: the labels but `alertname`, which the rule name says.
fn label_list(notification: &Notification) -> String {
    let labels = notification.alert.labels.iter().filter(|(name, _)| name.as_str() != "alertname");
    labels.map(|(name, value)| format!("{name}={value}")).collect::<Vec<_>>().join(", ")
}

fn annotation<'a>(notification: &'a Notification, name: &str) -> Option<&'a str> {
    notification.alert.annotations.get(name).map(|text| text.trim()).filter(|text| !text.is_empty())
}

fn truncated(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max_chars.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// The optional settings of a Slack channel.
struct SlackOptions<'a> {
    url: Option<Url>,
    channel: Option<&'a str>,
    username: Option<&'a str>,
}

impl<'a> SlackOptions<'a> {
    fn parse(settings: &'a Map<String, Value>) -> Result<Self, DeliveryError> {
        Ok(Self {
            url: url_setting(settings, "url")?,
            channel: string_setting(settings, "channel")?,
            username: string_setting(settings, "username")?,
        })
    }
}

/// Slack's `mrkdwn` needs `&`, `<` and `>` escaped, and nothing else.
fn slack_escaped(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// `<url|label>` when the URL is an http(s) one, else the label and the URL as text (so that a
/// bad runbook URL in a rule does not make Slack refuse the whole message).
fn slack_link(url: &str, label: &str) -> String {
    match http_url(url) {
        Ok(url) => format!("<{}|{label}>", url.as_str().replace('|', "%7C")),
        Err(_) => slack_escaped(&format!("{label}: {url}")),
    }
}

/// An incoming-webhook message: `text` for the notification itself, `blocks` for the channel.
fn slack_message(notification: &Notification, options: &SlackOptions<'_>) -> Value {
    let alert = &notification.alert;
    let headline = headline(notification);
    let labels = label_list(notification);
    let summary = annotation(notification, "summary");
    let mut text = headline.clone();
    if !labels.is_empty() {
        text.push_str(&format!(" ({labels})"));
    }
    if let Some(summary) = summary {
        text.push_str(&format!(": {summary}"));
    }
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncated(&headline, SLACK_HEADER_CHARS)}}),
    ];
    let description = annotation(notification, "description");
    if summary.is_some() || description.is_some() {
        let mut about = String::new();
        if let Some(summary) = summary {
            about.push_str(&format!("*{}*", slack_escaped(summary)));
        }
        if let Some(description) = description {
            if !about.is_empty() {
                about.push('\n');
            }
            about.push_str(&slack_escaped(description));
        }
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncated(&about, SLACK_SECTION_CHARS)}}),
        );
    }
    if !alert.labels.is_empty() {
        let lines: Vec<String> = alert
            .labels
            .iter()
            .map(|(name, value)| format!("• {}: `{}`", slack_escaped(name), slack_escaped(value)))
            .collect();
        let labels = format!("*Labels*\n{}", lines.join("\n"));
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncated(&labels, SLACK_SECTION_CHARS)}}),
        );
    }
    let mut fields = Vec::new();
    if let Some(value) = alert.value {
        fields.push(format!("*Value*\n{value}"));
    }
    fields.push(format!("*State*\n{}", alert.state.as_str()));
    fields.push(format!("*Since*\n{}", alert.firing_since.unwrap_or(alert.active_since)));
    if let Some(acknowledgement) = &alert.acknowledged {
        let mut text = format!("*Acknowledged*\nby {} at {}", acknowledgement.by, acknowledgement.at);
        if !acknowledgement.note.is_empty() {
            text.push_str(&format!(": {}", acknowledgement.note));
        }
        fields.push(slack_escaped(&text));
    }
    let fields: Vec<Value> =
        fields.iter().map(|text| json!({"type": "mrkdwn", "text": truncated(text, SLACK_FIELD_CHARS)})).collect();
    blocks.push(json!({"type": "section", "fields": fields}));
    let mut links = vec![slack_link(&notification.url, "Open in Vigil")];
    if let Some(runbook) = &notification.runbook_url {
        links.push(slack_link(runbook, "Runbook"));
    }
    blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": links.join("  ·  ")}]}));
    let mut message = json!({"text": slack_escaped(&text), "blocks": blocks});
    if let Some(channel) = options.channel {
        message["channel"] = json!(channel);
    }
    if let Some(username) = options.username {
        message["username"] = json!(username);
    }
    message
}

/// Alerts listed in one Slack message of a group, each in a section (Slack takes 50 blocks).
const SLACK_GROUP_ALERTS: usize = 20;

/// A group's message: a header with what it holds, then one section per alert.
fn slack_group_message(message: &WebhookBody, options: &SlackOptions<'_>) -> Value {
    let headline = group_headline(message);
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncated(&headline, SLACK_HEADER_CHARS)}}),
    ];
    for notification in message.notifications.iter().take(SLACK_GROUP_ALERTS) {
        let mut text = format!("*{}*", slack_escaped(&headline_of(notification)));
        if let Some(summary) = annotation(notification, "summary") {
            text.push_str(&format!("\n{}", slack_escaped(summary)));
        }
        text.push_str(&format!("\n{}", slack_link(&notification.url, "Open in Vigil")));
        if let Some(runbook) = &notification.runbook_url {
            text.push_str(&format!("  ·  {}", slack_link(runbook, "Runbook")));
        }
        blocks.push(
            json!({"type": "section", "text": {"type": "mrkdwn", "text": truncated(&text, SLACK_SECTION_CHARS)}}),
        );
    }
    let left = message.notifications.len().saturating_sub(SLACK_GROUP_ALERTS);
    if left > 0 {
        blocks.push(json!({"type": "context", "elements": [{"type": "mrkdwn", "text": format!("and {left} more")}]}));
    }
    let mut out = json!({"text": slack_escaped(&headline), "blocks": blocks});
    if let Some(channel) = options.channel {
        out["channel"] = json!(channel);
    }
    if let Some(username) = options.username {
        out["username"] = json!(username);
    }
    out
}

/// `[FIRING] rule (labels)`: one alert's line in a group's message or e-mail.
fn headline_of(notification: &Notification) -> String {
    email_subject(notification)
}

async fn deliver_slack(
    http: &reqwest::Client,
    target: &Target<'_>,
    message: &WebhookBody,
) -> Result<(), DeliveryError> {
    let options = SlackOptions::parse(target.settings)?;
    // The incoming-webhook URL is a credential: a secret, the setting only as a fallback.
    let url = match secret(target.secrets, "url") {
        Some(url) => http_url(url).map_err(|problem| secret_error("url", problem))?,
        None => options.url.clone().ok_or_else(|| secret_error("url", "missing"))?,
    };
    let payload = match message.notifications.as_slice() {
        [notification] => slack_message(notification, &options),
        _ => slack_group_message(message, &options),
    };
    send(http.post(url).json(&payload)).await
}

fn pagerduty_url(settings: &Map<String, Value>) -> Result<Url, DeliveryError> {
    match url_setting(settings, "url")? {
        Some(url) => Ok(url),
        None => Ok(Url::parse(PAGERDUTY_EVENTS_URL).expect("the PagerDuty events URL parses")),
    }
}

/// An Events API v2 event. Acknowledge and resolve events carry only the routing key, the
/// dedup key and the action, as the API documents.
fn pagerduty_event(routing_key: &str, notification: &Notification) -> Value {
    let action = match notification.event {
        NotificationEvent::Firing
        | NotificationEvent::Repeat
        | NotificationEvent::Escalation
        | NotificationEvent::Test => "trigger",
        NotificationEvent::Resolved => "resolve",
        NotificationEvent::Acknowledged => "acknowledge",
    };
    if action != "trigger" {
        return json!({"routing_key": routing_key, "dedup_key": notification.dedup_key, "event_action": action});
    }
    let alert = &notification.alert;
    let label = |name: &str| alert.labels.get(name).map(String::as_str).filter(|value| !value.is_empty());
    let summary = match annotation(notification, "summary") {
        Some(summary) => summary.to_owned(),
        None => match label_list(notification) {
            labels if labels.is_empty() => notification.rule_name.clone(),
            labels => format!("{}: {labels}", notification.rule_name),
        },
    };
    let summary = match notification.event {
        NotificationEvent::Test => format!("[TEST] {summary}"),
        _ => summary,
    };
    let severity = match label("severity").map(str::to_ascii_lowercase).as_deref() {
        Some(severity @ ("critical" | "error" | "warning" | "info")) => severity.to_owned(),
        // Vigil's default severity.
        _ => "warning".to_owned(),
    };
    let source = label("host").or_else(|| label("instance")).or_else(|| label("service")).unwrap_or("vigil");
    let mut payload = json!({
        "summary": truncated(&summary, PAGERDUTY_MAX_SUMMARY_CHARS),
        "source": source,
        "severity": severity,
        "timestamp": alert.firing_since.unwrap_or(alert.active_since).to_string(),
        "custom_details": {"labels": alert.labels, "annotations": alert.annotations, "value": alert.value},
    });
    for (field, name) in [("component", "service"), ("group", "job"), ("class", "alertname")] {
        if let Some(value) = label(name) {
            payload[field] = json!(value);
        }
    }
    let mut links = vec![json!({"href": notification.url, "text": "Vigil"})];
    if let Some(runbook) = &notification.runbook_url {
        links.push(json!({"href": runbook, "text": "Runbook"}));
    }
    json!({
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": notification.dedup_key,
        "payload": payload,
        "links": links,
        "client": "Vigil",
        "client_url": notification.url,
    })
}

/// One event per alert, even in a group: PagerDuty's incidents are per dedup key, so that an
/// acknowledgement in Vigil acknowledges the incident of that alert. A retry sends the group's
/// events again; PagerDuty drops the repeats by their dedup key.
async fn deliver_pagerduty(
    http: &reqwest::Client,
    target: &Target<'_>,
    message: &WebhookBody,
) -> Result<(), DeliveryError> {
    let url = pagerduty_url(target.settings)?;
    let routing_key = secret(target.secrets, "routing_key").ok_or_else(|| secret_error("routing_key", "missing"))?;
    for notification in &message.notifications {
        send(http.post(url.clone()).json(&pagerduty_event(routing_key, notification))).await?;
    }
    Ok(())
}

/// The site root of an alert's URL, for `externalURL`: everything before its `/alerts` path.
fn site_root(alert_url: &str) -> &str {
    let path_start = alert_url.find("://").map_or(0, |scheme_end| {
        let after_scheme = scheme_end + 3;
        alert_url[after_scheme..].find('/').map_or(alert_url.len(), |slash| after_scheme + slash)
    });
    let path = &alert_url[path_start..];
    let cut = path.match_indices("/alerts").find(|(index, _)| {
        let after = &path[index + "/alerts".len()..];
        after.is_empty() || after.starts_with(['/', '?', '#'])
    });
    match cut {
        Some((index, _)) => &alert_url[..path_start + index],
        None => alert_url,
    }
}

/// Alertmanager's webhook payload, version 4, for a message: its alerts but the
/// acknowledgements, which Alertmanager has no word for; `None` when nothing is left. The
/// group labels are the route's (`alertname` for an alert on its own), the common labels and
/// annotations those all alerts share, and the status `firing` while any alert fires.
fn alertmanager_message(receiver: &str, message: &WebhookBody) -> Option<Value> {
    let mut alerts = Vec::new();
    let mut all_labels = Vec::new();
    let mut all_annotations = Vec::new();
    for notification in &message.notifications {
        let status = match notification.event {
            NotificationEvent::Acknowledged => continue,
            NotificationEvent::Resolved => "resolved",
            NotificationEvent::Firing
            | NotificationEvent::Repeat
            | NotificationEvent::Escalation
            | NotificationEvent::Test => "firing",
        };
        let alert = &notification.alert;
        let mut labels = alert.labels.clone();
        labels.entry("alertname".to_owned()).or_insert_with(|| notification.rule_name.clone());
        let ends_at = match status {
            "resolved" => alert.resolved_at.map_or_else(rfc3339_now, |at| at.to_string()),
            _ => ALERTMANAGER_ZERO_TIME.to_owned(),
        };
        alerts.push(json!({
            "status": status,
            "labels": labels,
            "annotations": alert.annotations,
            "startsAt": alert.firing_since.unwrap_or(alert.active_since).to_string(),
            "endsAt": ends_at,
            "generatorURL": notification.url,
            "fingerprint": alert.fingerprint,
        }));
        all_labels.push(labels);
        all_annotations.push(alert.annotations.clone());
    }
    let first = message.notifications.first()?;
    if alerts.is_empty() {
        return None;
    }
    let status = if alerts.iter().any(|alert| alert["status"] == "firing") { "firing" } else { "resolved" };
    let group_labels = match message.group_labels.is_empty() {
        true if message.notifications.len() == 1 => all_labels[0]
            .iter()
            .filter(|(name, _)| name.as_str() == "alertname")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        _ => message.group_labels.clone(),
    };
    // Alertmanager's group key: the route's matchers (none) and the group labels, quoted as Go does.
    let quoted: Vec<String> =
        group_labels.iter().map(|(name, value)| format!("{name}={}", Value::from(value.as_str()))).collect();
    let group_key = format!("{{}}:{{{}}}", quoted.join(","));
    Some(json!({
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common(&all_labels),
        "commonAnnotations": common(&all_annotations),
        "externalURL": site_root(&first.url),
        "alerts": alerts,
    }))
}

/// The pairs every map has.
fn common(maps: &[BTreeMap<String, String>]) -> BTreeMap<String, String> {
    let Some((first, rest)) = maps.split_first() else {
        return BTreeMap::new();
    };
    first
        .iter()
        .filter(|(name, value)| rest.iter().all(|other| other.get(*name) == Some(*value)))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

async fn deliver_alertmanager(
    http: &reqwest::Client,
    target: &Target<'_>,
    message: &WebhookBody,
) -> Result<(), DeliveryError> {
    let url = required_url(target.settings)?;
    let Some(payload) = alertmanager_message(target.name, message) else {
        return Ok(());
    };
    let mut request = http.post(url).json(&payload);
    if let Some(authorization) = bearer(target.secrets)? {
        request = request.header(AUTHORIZATION, authorization);
    }
    send(request).await
}

/// The settings of an e-mail channel: `tls` is `"starttls"` (the default, port 587),
/// `"implicit"` (port 465) or `"none"`; `ca_file` (PEM) adds trusted certificates.
struct EmailSettings<'a> {
    host: &'a str,
    port: u16,
    from: &'a str,
    to: Vec<String>,
    security: smtp::Security,
    ca_file: Option<&'a str>,
    allow_plaintext_auth: bool,
}

impl<'a> EmailSettings<'a> {
    fn parse(settings: &'a Map<String, Value>) -> Result<Self, DeliveryError> {
        let host = required_setting(settings, "host")?;
        if host.chars().any(|character| character.is_whitespace() || character.is_control()) {
            return Err(setting_error("host", format!("{host:?} is not a host name or address")));
        }
        let port = match settings.get("port") {
            None | Some(Value::Null) => DEFAULT_SMTP_PORT,
            Some(value) => value
                .as_u64()
                .or_else(|| value.as_str().and_then(|text| text.trim().parse().ok()))
                .and_then(|port| u16::try_from(port).ok())
                .filter(|port| *port != 0)
                .ok_or_else(|| setting_error("port", "must be a port number (1 to 65535)"))?,
        };
        let from = required_setting(settings, "from")?;
        smtp::check_address(from).map_err(|problem| setting_error("from", format!("{from:?} {problem}")))?;
        let to: Vec<String> = match settings.get("to") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(list)) => {
                list.split(',').map(str::trim).filter(|address| !address.is_empty()).map(str::to_owned).collect()
            }
            Some(Value::Array(addresses)) => addresses
                .iter()
                .map(|address| address.as_str().map(|text| text.trim().to_owned()))
                .collect::<Option<_>>()
                .ok_or_else(|| setting_error("to", "must be an address or a list of addresses"))?,
            Some(_) => return Err(setting_error("to", "must be an address or a list of addresses")),
        };
        if to.is_empty() {
            return Err(setting_error("to", "missing"));
        }
        for address in &to {
            smtp::check_address(address).map_err(|problem| setting_error("to", format!("{address:?} {problem}")))?;
        }
        let security = match string_setting(settings, "tls")?.unwrap_or("starttls") {
            "none" => smtp::Security::None,
            "starttls" => smtp::Security::StartTls,
            "implicit" => smtp::Security::Implicit,
            other => return Err(setting_error("tls", format!("{other:?} is not one of starttls, implicit, none"))),
        };
        let ca_file = string_setting(settings, "ca_file")?;
        let allow_plaintext_auth = match settings.get("allow_plaintext_auth") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(allowed)) => *allowed,
            Some(_) => return Err(setting_error("allow_plaintext_auth", "must be true or false")),
        };
        Ok(Self { host, port, from, to, security, ca_file, allow_plaintext_auth })
    }

    /// The login, if any. Without TLS a password would cross the network in clear: only with
    /// `allow_plaintext_auth`.
    fn credentials<'s>(
        &self,
        username: Option<&'s str>,
        password: Option<&'s str>,
    ) -> Result<Option<smtp::Credentials<'s>>, DeliveryError> {
        match (username, password) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(secret_error("password", "missing: username and password go together")),
            (None, Some(_)) => Err(secret_error("username", "missing: username and password go together")),
            (Some(_), Some(_)) if self.security == smtp::Security::None && !self.allow_plaintext_auth => {
                Err(setting_error(
                    "allow_plaintext_auth",
                    "must be true to send the username and password in clear (tls is \"none\")",
                ))
            }
            (Some(username), Some(password)) => Ok(Some(smtp::Credentials { username, password })),
        }
    }
}

/// `[FIRING] <rule name> (<labels>)`.
fn email_subject(notification: &Notification) -> String {
    match label_list(notification) {
        labels if labels.is_empty() => headline(notification),
        labels => format!("{} ({labels})", headline(notification)),
    }
}

/// The text of an alert e-mail: what it is about, its labels and annotations, its value and
/// times, and the links.
fn email_body(notification: &Notification) -> String {
    let alert = &notification.alert;
    let mut body = format!("{}\n", headline(notification));
    for name in ["summary", "description"] {
        if let Some(text) = annotation(notification, name) {
            body.push_str(&format!("\n{text}\n"));
        }
    }
    if !alert.labels.is_empty() {
        body.push_str("\nLabels:\n");
        for (name, value) in &alert.labels {
            body.push_str(&format!("  {name} = {value}\n"));
        }
    }
    let others: Vec<_> =
        alert.annotations.iter().filter(|(name, _)| !matches!(name.as_str(), "summary" | "description")).collect();
    if !others.is_empty() {
        body.push_str("\nAnnotations:\n");
        for (name, value) in others {
            body.push_str(&format!("  {name}: {value}\n"));
        }
    }
    body.push('\n');
    if let Some(value) = alert.value {
        body.push_str(&format!("Value: {value}\n"));
    }
    body.push_str(&format!("State: {}\n", alert.state.as_str()));
    body.push_str(&format!("Active since: {}\n", alert.active_since));
    if let Some(firing_since) = alert.firing_since {
        body.push_str(&format!("Firing since: {firing_since}\n"));
    }
    if let Some(resolved_at) = alert.resolved_at {
        body.push_str(&format!("Resolved at: {resolved_at}\n"));
    }
    if let Some(acknowledgement) = &alert.acknowledged {
        body.push_str(&format!("Acknowledged by {} at {}", acknowledgement.by, acknowledgement.at));
        if !acknowledgement.note.is_empty() {
            body.push_str(&format!(": {}", acknowledgement.note));
        }
        body.push('\n');
    }
    body.push_str(&format!("\nAlert: {}\n", notification.url));
    if let Some(runbook) = &notification.runbook_url {
        body.push_str(&format!("Runbook: {runbook}\n"));
    }
    body.push_str(&format!(
        "\n-- \nSent by Vigil: {} notification, dedup key {}\n",
        notification.event.as_str(),
        notification.dedup_key
    ));
    body
}

/// 5xx replies are permanent and 4xx transient (RFC 5321 section 4.2.1); a relay that cannot
/// be reached or talks nonsense may be back later.
fn email_error(error: SendMailError) -> DeliveryError {
    match error {
        SendMailError::Reply { command, code: code @ 500.., text } => DeliveryError::Refused {
            status: code,
            body: truncated(&format!("{text} (to {command})"), MAX_ERROR_BODY_CHARS),
        },
        SendMailError::NoLoginMechanism => secret_error("username", &error),
        other => DeliveryError::Unavailable { reason: crate::telemetry::error_chain(&other), retry_after: None },
    }
}

/// The subject and text of a message's e-mail: one alert's, or a group's with each alert's
/// text in turn.
fn email_of(message: &WebhookBody) -> (String, String) {
    match message.notifications.as_slice() {
        [notification] => (email_subject(notification), email_body(notification)),
        notifications => {
            let subject = group_headline(message);
            let mut body = format!("{subject}\n");
            for notification in notifications {
                body.push_str(&format!("\n{}\n\n", "=".repeat(72)));
                body.push_str(&email_body(notification));
            }
            (subject, body)
        }
    }
}

async fn deliver_email(target: &Target<'_>, message: &WebhookBody) -> Result<(), DeliveryError> {
    let settings = EmailSettings::parse(target.settings)?;
    let credentials = settings.credentials(secret(target.secrets, "username"), secret(target.secrets, "password"))?;
    let extra_roots = match settings.ca_file {
        Some(path) => Some(
            tokio::fs::read_to_string(path)
                .await
                .map_err(|error| setting_error("ca_file", format!("{path:?} cannot be read: {error}")))?,
        ),
        None => None,
    };
    let relay = smtp::Relay {
        host: settings.host,
        port: settings.port,
        credentials,
        security: settings.security,
        extra_roots_pem: extra_roots.as_deref(),
    };
    let (subject, body) = email_of(message);
    let email = smtp::Email { from: settings.from, to: &settings.to, subject: &subject, body: &body };
    smtp::send(&relay, &email).await.map_err(email_error)
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::body::Bytes;
    use axum::extract::State;
    use axum::http::StatusCode;
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use vigil_proto::Timestamp;
    use vigil_proto::alerts::{Acknowledgement, Alert, AlertState};

    use super::super::smtp::tests::{SmtpSink, within_a_minute};
    use super::*;

    /// What a stand-in receiver got: the headers and the raw body of each request.
    type Received = Arc<Mutex<Vec<(HeaderMap, Bytes)>>>;

    /// Serves a stand-in on a free loopback port for the rest of the test; returns its address.
    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        format!("http://{address}")
    }

    fn received(log: &Received) -> Vec<(HeaderMap, Bytes)> {
        log.lock().unwrap().clone()
    }

    fn json_of(body: &[u8]) -> Value {
        serde_json::from_slice(body).unwrap()
    }

    fn timestamp(unix_seconds: i64) -> Timestamp {
        Timestamp::from_unix_nanos(unix_seconds * 1_000_000_000).unwrap()
    }

    fn text_map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(name, value)| ((*name).to_owned(), (*value).to_owned())).collect()
    }

    fn settings(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn message(event: NotificationEvent) -> WebhookBody {
        WebhookBody::single(notification(event))
    }

    fn notification(event: NotificationEvent) -> Notification {
        let alert = Alert {
            fingerprint: "3f2a9c1d".to_owned(),
            rule_id: 7,
            labels: text_map(&[
                ("alertname", "HighErrorRate"),
                ("instance", "api-1:9100"),
                ("job", "api"),
                ("service", "api"),
                ("severity", "critical"),
            ]),
            annotations: text_map(&[
                ("summary", "Error rate above 5 % on api"),
                ("description", "5xx answers are 12 % of all.\n.\n.a line that starts with a dot\nthe end"),
                ("dashboard", "https://vigil.example.com/dashboards/api"),
            ]),
            state: match event {
                NotificationEvent::Resolved => AlertState::Resolved,
                _ => AlertState::Firing,
            },
            value: Some(0.12),
            active_since: timestamp(1_700_000_000),
            firing_since: Some(timestamp(1_700_000_060)),
            resolved_at: (event == NotificationEvent::Resolved).then(|| timestamp(1_700_000_600)),
            episode: 2,
            acknowledged: (event == NotificationEvent::Acknowledged).then(|| Acknowledgement {
                by: "alice".to_owned(),
                at: timestamp(1_700_000_300),
                note: "looking".to_owned(),
            }),
            source: "rule".to_owned(),
            ends_at: None,
        };
        Notification {
            event,
            dedup_key: "3f2a9c1d-2".to_owned(),
            alert,
            rule_name: "HighErrorRate".to_owned(),
            runbook_url: Some("https://runbooks.example.com/high-error-rate".to_owned()),
            url: "https://vigil.example.com/alerts/3f2a9c1d".to_owned(),
        }
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // Test case 2.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(lowercase_hex(&mac), "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        // Test case 1.
        let mac = hmac_sha256(&[0x0b; 20], &[b"Hi There"]);
        assert_eq!(lowercase_hex(&mac), "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(&[0xaa; 131], &[b"Test Using Larger Than Block-Size Key - Hash Key First"]);
        assert_eq!(lowercase_hex(&mac), "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    }

    /// A webhook receiver as its documentation asks one to be written: the signature recomputed
    /// over the raw body and the timestamp, old timestamps refused.
    async fn verifying_receiver(
        State((signing_key, log)): State<(String, Received)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        log.lock().unwrap().push((headers.clone(), body.clone()));
        let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or_default();
        let Ok(sent_at) = header("x-vigil-timestamp").parse::<u64>() else {
            return StatusCode::BAD_REQUEST;
        };
        if unix_seconds_now().abs_diff(sent_at) > 300 {
            return StatusCode::UNAUTHORIZED;
        }
        let expected = hmac_sha256(signing_key.as_bytes(), &[sent_at.to_string().as_bytes(), b".", &body]);
        if header("x-vigil-signature") != format!("sha256={}", lowercase_hex(&expected)) {
            return StatusCode::UNAUTHORIZED;
        }
        StatusCode::NO_CONTENT
    }

    #[tokio::test]
    async fn webhook_bodies_are_signed_so_that_the_receiver_can_verify_them() {
        within_a_minute(async {
            let log = Received::default();
            let router = Router::new()
                .route("/hooks/vigil", post(verifying_receiver))
                .with_state(("whsec-0123456789".to_owned(), log.clone()));
            let address = serve(router).await;
            let settings = settings(json!({"url": format!("{address}/hooks/vigil")}));
            let secrets = text_map(&[("signing_key", "whsec-0123456789"), ("bearer_token", "t0ken")]);
            let target =
                Target { name: "ops-hook", kind: IntegrationKind::Webhook, settings: &settings, secrets: &secrets };
            let http = reqwest::Client::new();
            let sent = message(NotificationEvent::Firing);
            deliver(&http, &target, &sent).await.unwrap();

            let requests = received(&log);
            assert_eq!(requests.len(), 1);
            let (headers, body) = &requests[0];
            assert_eq!(headers["content-type"], "application/json");
            assert_eq!(headers["user-agent"], "Vigil");
            assert_eq!(headers["x-vigil-event"], "firing");
            assert_eq!(headers["authorization"], "Bearer t0ken");
            let round_trip: WebhookBody = serde_json::from_slice(body).unwrap();
            assert_eq!(round_trip, sent);

            // Signed with another key, the receiver refuses it: permanent, not retried.
            let wrong = text_map(&[("signing_key", "not-the-key")]);
            let target = Target { secrets: &wrong, ..target };
            match deliver(&http, &target, &sent).await {
                Err(error @ DeliveryError::Refused { status: 401, .. }) => assert!(!error.is_retryable()),
                other => panic!("expected a 401 refusal, got {other:?}"),
            }
            let unsigned = BTreeMap::new();
            let target = Target { secrets: &unsigned, ..target };
            assert!(matches!(deliver(&http, &target, &sent).await, Err(DeliveryError::Refused { status: 401, .. })));
            assert!(!received(&log)[2].0.contains_key("x-vigil-signature"));
        })
        .await;
    }

    #[tokio::test]
    async fn answers_are_sorted_into_retryable_and_permanent() {
        within_a_minute(async {
            async fn unavailable() -> impl IntoResponse {
                (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "30")], "x".repeat(1000))
            }
            async fn teapot() -> impl IntoResponse {
                (StatusCode::IM_A_TEAPOT, "é".repeat(1000))
            }
            async fn timeout() -> StatusCode {
                StatusCode::REQUEST_TIMEOUT
            }
            let router = Router::new()
                .route("/unavailable", post(unavailable))
                .route("/teapot", post(teapot))
                .route("/timeout", post(timeout));
            let address = serve(router).await;
            let http = reqwest::Client::new();
            let secrets = BTreeMap::new();
            let sent = message(NotificationEvent::Firing);
            let attempt = |path: String| {
                let settings = settings(json!({"url": path}));
                let http = http.clone();
                let secrets = secrets.clone();
                let sent = sent.clone();
                async move {
                    let target =
                        Target { name: "hook", kind: IntegrationKind::Webhook, settings: &settings, secrets: &secrets };
                    deliver(&http, &target, &sent).await.unwrap_err()
                }
            };
            match attempt(format!("{address}/unavailable")).await {
                error @ DeliveryError::Unavailable { .. } => {
                    assert!(error.is_retryable());
                    let DeliveryError::Unavailable { reason, retry_after } = &error else { unreachable!() };
                    assert_eq!(*retry_after, Some(Duration::from_secs(30)));
                    assert_eq!(reason, &format!("the receiver answered 503: {}", "x".repeat(300)));
                }
                other => panic!("expected unavailable, got {other:?}"),
            }
            match attempt(format!("{address}/teapot")).await {
                DeliveryError::Refused { status, body } => {
                    assert_eq!(status, 418);
                    assert_eq!(body, "é".repeat(300));
                }
                other => panic!("expected a refusal, got {other:?}"),
            }
            assert!(attempt(format!("{address}/timeout")).await.is_retryable());

            let closed_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let error = attempt(format!("http://127.0.0.1:{closed_port}/hook")).await;
            assert!(error.is_retryable());
            assert!(error.to_string().starts_with("cannot reach the receiver: "), "{error}");
            assert!(!error.to_string().contains("127.0.0.1"), "no URL in the error: {error}");
        })
        .await;
    }

    /// Slack's incoming webhook, as documented: JSON with `text` (and optional `blocks`), `ok`
    /// in plain text on success, `invalid_payload` and the like with 400 otherwise.
    async fn slack_stand_in(
        State(log): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, &'static str) {
        log.lock().unwrap().push((headers.clone(), body.clone()));
        let Ok(message) = serde_json::from_slice::<Value>(&body) else {
            return (StatusCode::BAD_REQUEST, "invalid_payload");
        };
        let text_ok = message["text"].as_str().is_some_and(|text| !text.is_empty());
        let blocks_ok = message["blocks"]
            .as_array()
            .is_some_and(|blocks| blocks.len() <= 50 && blocks.iter().all(|block| block["type"].is_string()));
        let header_ok = message["blocks"][0]["text"]["text"].as_str().is_some_and(|text| text.chars().count() <= 150);
        if headers["content-type"] != "application/json" || !text_ok || !blocks_ok || !header_ok {
            return (StatusCode::BAD_REQUEST, "invalid_blocks");
        }
        (StatusCode::OK, "ok")
    }

    #[tokio::test]
    async fn slack_gets_text_and_blocks_at_the_secret_url() {
        within_a_minute(async {
            let log = Received::default();
            let router = Router::new().route("/services/T000/B000/XXXX", post(slack_stand_in)).with_state(log.clone());
            let address = serve(router).await;
            let settings = settings(json!({"channel": "#ops", "username": "Vigil"}));
            let secrets = text_map(&[("url", &format!("{address}/services/T000/B000/XXXX"))]);
            let target =
                Target { name: "ops-slack", kind: IntegrationKind::Slack, settings: &settings, secrets: &secrets };
            let http = reqwest::Client::new();
            deliver(&http, &target, &message(NotificationEvent::Firing)).await.unwrap();
            deliver(&http, &target, &message(NotificationEvent::Acknowledged)).await.unwrap();

            let requests = received(&log);
            let firing = json_of(&requests[0].1);
            assert_eq!(
                firing["text"],
                "[FIRING] HighErrorRate (instance=api-1:9100, job=api, service=api, severity=critical): \
                 Error rate above 5 % on api"
            );
            assert_eq!(firing["channel"], "#ops");
            assert_eq!(firing["username"], "Vigil");
            let blocks = firing["blocks"].as_array().unwrap();
            assert_eq!(
                blocks[0],
                json!({"type": "header", "text": {"type": "plain_text", "text": "[FIRING] HighErrorRate"}})
            );
            let everything = firing["blocks"].to_string();
            for expected in [
                "*Error rate above 5 % on api*",
                "• service: `api`",
                "*Value*\\n0.12",
                "<https://vigil.example.com/alerts/3f2a9c1d|Open in Vigil>",
                "<https://runbooks.example.com/high-error-rate|Runbook>",
            ] {
                assert!(everything.contains(expected), "{expected} is not in {everything}");
            }
            let acknowledged = json_of(&requests[1].1);
            assert_eq!(acknowledged["blocks"][0]["text"]["text"], "[ACKNOWLEDGED by alice] HighErrorRate");

            // A removed webhook: Slack answers 404 no_service, which no retry mends.
            let gone = text_map(&[("url", &format!("{address}/services/T000/B000/GONE"))]);
            let target = Target { secrets: &gone, ..target };
            let error = deliver(&http, &target, &message(NotificationEvent::Firing)).await.unwrap_err();
            assert!(matches!(error, DeliveryError::Refused { status: 404, .. }) && !error.is_retryable(), "{error}");
        })
        .await;
    }

    /// A group of three: two disks firing (one of them acknowledged meanwhile) and one resolved.
    fn group() -> WebhookBody {
        let mut notifications = Vec::new();
        for (instance, event) in [
            ("a", NotificationEvent::Firing),
            ("b", NotificationEvent::Acknowledged),
            ("c", NotificationEvent::Resolved),
        ] {
            let mut told = notification(event);
            told.alert.fingerprint = format!("disk-{instance}");
            told.alert.labels.insert("instance".to_owned(), instance.to_owned());
            told.alert.annotations.insert("summary".to_owned(), format!("disk {instance} fills"));
            notifications.push(told);
        }
        WebhookBody {
            version: WebhookBody::VERSION.to_owned(),
            group_key: "route0:{alertname=\"HighErrorRate\"}".to_owned(),
            group_labels: text_map(&[("alertname", "HighErrorRate")]),
            notifications,
        }
    }

    #[test]
    fn a_group_is_one_message_on_slack_alertmanager_and_email_with_each_alert_in_it() {
        let group = group();
        let options = SlackOptions { url: None, channel: None, username: None };
        let slack = slack_group_message(&group, &options);
        assert_eq!(slack["text"], "[FIRING:1 ACKNOWLEDGED:1 RESOLVED:1] alertname=HighErrorRate");
        let sections: Vec<&str> = slack["blocks"].as_array().unwrap()[1..]
            .iter()
            .map(|block| block["text"]["text"].as_str().unwrap())
            .collect();
        assert_eq!(sections.len(), 3);
        assert!(
            sections[0].starts_with("*[FIRING] HighErrorRate (") && sections[0].contains("instance=a"),
            "{sections:?}"
        );
        assert!(sections[1].starts_with("*[ACKNOWLEDGED by alice]"), "{sections:?}");
        assert!(sections[2].contains("disk c fills"), "{sections:?}");

        // Alertmanager's receivers: no acknowledgement; firing while any fires; the labels all share.
        let message = alertmanager_message("relay", &group).unwrap();
        assert_eq!(message["status"], "firing");
        assert_eq!(message["groupKey"], "{}:{alertname=\"HighErrorRate\"}");
        assert_eq!(message["groupLabels"], json!({"alertname": "HighErrorRate"}));
        let statuses: Vec<&str> =
            message["alerts"].as_array().unwrap().iter().map(|alert| alert["status"].as_str().unwrap()).collect();
        assert_eq!(statuses, ["firing", "resolved"]);
        assert_eq!(message["commonLabels"]["service"], "api");
        assert!(message["commonLabels"].get("instance").is_none(), "instances differ: {message}");
        assert!(message["commonAnnotations"].get("summary").is_none(), "summaries differ: {message}");
        let only_acknowledged = WebhookBody { notifications: vec![group.notifications[1].clone()], ..group.clone() };
        assert_eq!(alertmanager_message("relay", &only_acknowledged), None);

        let (subject, body) = email_of(&group);
        assert_eq!(subject, "[FIRING:1 ACKNOWLEDGED:1 RESOLVED:1] alertname=HighErrorRate");
        for needle in ["disk a fills", "disk b fills", "disk c fills", "Acknowledged by alice", "Resolved at:"] {
            assert!(body.contains(needle), "{needle} in {body}");
        }
        assert_eq!(common_event(&group), "mixed");
        assert_eq!(common_event(&message_of_one()), "firing");
    }

    fn message_of_one() -> WebhookBody {
        message(NotificationEvent::Firing)
    }

    #[tokio::test]
    async fn pagerduty_gets_one_event_per_alert_of_a_group() {
        within_a_minute(async {
            let log: Received = Arc::default();
            let kept = log.clone();
            let router = Router::new().route(
                "/v2/enqueue",
                post(move |headers: HeaderMap, body: Bytes| {
                    let kept = kept.clone();
                    async move {
                        kept.lock().unwrap().push((headers, body));
                        StatusCode::ACCEPTED
                    }
                }),
            );
            let address = serve(router).await;
            let settings = settings(json!({"url": format!("{address}/v2/enqueue")}));
            let secrets = text_map(&[("routing_key", "key")]);
            let target =
                Target { name: "pager", kind: IntegrationKind::PagerDuty, settings: &settings, secrets: &secrets };
            deliver(&reqwest::Client::new(), &target, &group()).await.unwrap();
            let actions: Vec<String> = received(&log)
                .iter()
                .map(|(_, body)| json_of(body)["event_action"].as_str().unwrap().to_owned())
                .collect();
            assert_eq!(actions, ["trigger", "acknowledge", "resolve"]);
        })
        .await;
    }

    #[test]
    fn slack_texts_are_escaped_and_links_never_break_the_message() {
        assert_eq!(slack_escaped("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(slack_link("https://example.com/a|b", "Runbook"), "<https://example.com/a%7Cb|Runbook>");
        assert_eq!(slack_link("see <wiki>", "Runbook"), "Runbook: see &lt;wiki&gt;");
    }

    /// PagerDuty's Events API v2 as documented: 202 with `status`, `message`, `dedup_key`; 400
    /// "invalid event" for a missing or malformed routing key, an unknown action, or a trigger
    /// without summary, source or a known severity; 429 when a routing key sends too fast.
    async fn pagerduty_stand_in(State(log): State<Received>, headers: HeaderMap, body: Bytes) -> Response {
        log.lock().unwrap().push((headers, body.clone()));
        let invalid = |problem: &str| {
            let body = json!({"status": "invalid event", "message": "Event object is invalid", "errors": [problem]});
            (StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
        };
        let Ok(event) = serde_json::from_slice::<Value>(&body) else {
            return invalid("Malformed JSON");
        };
        let routing_key = event["routing_key"].as_str().unwrap_or_default();
        if routing_key == "throttledthrottledthrottled00000" {
            let body =
                json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly"});
            return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "7")], axum::Json(body)).into_response();
        }
        if routing_key.len() != 32 {
            return invalid("'routing_key' is missing or invalid");
        }
        let action = event["event_action"].as_str().unwrap_or_default();
        match action {
            "trigger" => {
                let payload = &event["payload"];
                let summary_ok = payload["summary"].as_str().is_some_and(|summary| summary.chars().count() <= 1024);
                let severity_ok =
                    matches!(payload["severity"].as_str(), Some("critical" | "error" | "warning" | "info"));
                if !summary_ok || !payload["source"].is_string() || !severity_ok {
                    return invalid("'payload' is missing summary, source or severity");
                }
            }
            "acknowledge" | "resolve" if event["dedup_key"].is_string() => {}
            "acknowledge" | "resolve" => return invalid("'dedup_key' is required"),
            _ => return invalid("'event_action' must be one of trigger, acknowledge, resolve"),
        }
        let dedup_key = event["dedup_key"].as_str().unwrap_or("generated");
        let body = json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key});
        (StatusCode::ACCEPTED, axum::Json(body)).into_response()
    }

    #[tokio::test]
    async fn pagerduty_gets_trigger_acknowledge_and_resolve_events() {
        within_a_minute(async {
            let log = Received::default();
            let router = Router::new().route("/v2/enqueue", post(pagerduty_stand_in)).with_state(log.clone());
            let address = serve(router).await;
            let settings = settings(json!({"url": format!("{address}/v2/enqueue")}));
            let routing_key = "R0UT1NGKEY0123456789abcdefABCDEF";
            let secrets = text_map(&[("routing_key", routing_key)]);
            let target =
                Target { name: "pager", kind: IntegrationKind::PagerDuty, settings: &settings, secrets: &secrets };
            let http = reqwest::Client::new();
            for event in [NotificationEvent::Firing, NotificationEvent::Acknowledged, NotificationEvent::Resolved] {
                deliver(&http, &target, &message(event)).await.unwrap();
            }
            let events: Vec<Value> = received(&log).iter().map(|(_, body)| json_of(body)).collect();
            assert_eq!(
                events[0],
                json!({
                    "routing_key": routing_key,
                    "event_action": "trigger",
                    "dedup_key": "3f2a9c1d-2",
                    "payload": {
                        "summary": "Error rate above 5 % on api",
                        "source": "api-1:9100",
                        "severity": "critical",
                        "timestamp": "2023-11-14T22:14:20Z",
                        "component": "api",
                        "group": "api",
                        "class": "HighErrorRate",
                        "custom_details": {
                            "labels": notification(NotificationEvent::Firing).alert.labels,
                            "annotations": notification(NotificationEvent::Firing).alert.annotations,
                            "value": 0.12,
                        },
                    },
                    "links": [
                        {"href": "https://vigil.example.com/alerts/3f2a9c1d", "text": "Vigil"},
                        {"href": "https://runbooks.example.com/high-error-rate", "text": "Runbook"},
                    ],
                    "client": "Vigil",
                    "client_url": "https://vigil.example.com/alerts/3f2a9c1d",
                })
            );
            assert_eq!(
                events[1],
                json!({"routing_key": routing_key, "dedup_key": "3f2a9c1d-2", "event_action": "acknowledge"})
            );
            assert_eq!(
                events[2],
                json!({"routing_key": routing_key, "dedup_key": "3f2a9c1d-2", "event_action": "resolve"})
            );

            let throttled = text_map(&[("routing_key", "throttledthrottledthrottled00000")]);
            let target_throttled = Target { secrets: &throttled, ..target };
            match deliver(&http, &target_throttled, &message(NotificationEvent::Firing)).await {
                Err(error @ DeliveryError::Unavailable { retry_after: Some(wait), .. }) => {
                    assert!(error.is_retryable());
                    assert_eq!(wait, Duration::from_secs(7));
                }
                other => panic!("expected a retryable 429, got {other:?}"),
            }
            let malformed = text_map(&[("routing_key", "not-32-characters")]);
            let target_malformed = Target { secrets: &malformed, ..target };
            match deliver(&http, &target_malformed, &message(NotificationEvent::Firing)).await {
                Err(error @ DeliveryError::Refused { status: 400, .. }) => {
                    assert!(!error.is_retryable());
                    assert!(error.to_string().starts_with("the receiver answered 400: {\"errors\":"), "{error}");
                }
                other => panic!("expected a permanent 400, got {other:?}"),
            }
        })
        .await;
    }

    #[test]
    fn pagerduty_summaries_fall_back_to_labels_and_stay_within_1024_characters() {
        let mut sent = notification(NotificationEvent::Test);
        sent.alert.annotations.clear();
        sent.alert.labels.remove("severity");
        sent.alert.labels.insert("host".to_owned(), "db-1".to_owned());
        let event = pagerduty_event("key", &sent);
        assert_eq!(
            event["payload"]["summary"],
            "[TEST] HighErrorRate: host=db-1, instance=api-1:9100, job=api, service=api"
        );
        assert_eq!(event["payload"]["source"], "db-1");
        assert_eq!(event["payload"]["severity"], "warning");
        assert_eq!(event["event_action"], "trigger");
        sent.alert.annotations.insert("summary".to_owned(), "x".repeat(5000));
        let summary = pagerduty_event("key", &sent)["payload"]["summary"].as_str().unwrap().to_owned();
        assert_eq!(summary.chars().count(), 1024);
        let escalation = pagerduty_event("key", &notification(NotificationEvent::Escalation));
        assert_eq!(escalation["event_action"], "trigger");
    }

    #[tokio::test]
    async fn alertmanager_receivers_get_webhook_version_4_and_no_acknowledgements() {
        within_a_minute(async {
            async fn receiver(State(log): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
                log.lock().unwrap().push((headers, body));
                StatusCode::OK
            }
            let log = Received::default();
            let address = serve(Router::new().route("/webhook", post(receiver)).with_state(log.clone())).await;
            let settings = settings(json!({"url": format!("{address}/webhook")}));
            let secrets = text_map(&[("bearer_token", "am-token")]);
            let target = Target {
                name: "am-relay",
                kind: IntegrationKind::Alertmanager,
                settings: &settings,
                secrets: &secrets,
            };
            let http = reqwest::Client::new();
            deliver(&http, &target, &message(NotificationEvent::Acknowledged)).await.unwrap();
            assert!(received(&log).is_empty(), "an acknowledgement sends nothing");
            deliver(&http, &target, &message(NotificationEvent::Firing)).await.unwrap();
            deliver(&http, &target, &message(NotificationEvent::Resolved)).await.unwrap();

            let requests = received(&log);
            assert_eq!(requests.len(), 2);
            assert_eq!(requests[0].0["authorization"], "Bearer am-token");
            let firing = json_of(&requests[0].1);
            let sent = notification(NotificationEvent::Firing);
            assert_eq!(
                firing,
                json!({
                    "version": "4",
                    "groupKey": "{}:{alertname=\"HighErrorRate\"}",
                    "truncatedAlerts": 0,
                    "status": "firing",
                    "receiver": "am-relay",
                    "groupLabels": {"alertname": "HighErrorRate"},
                    "commonLabels": sent.alert.labels,
                    "commonAnnotations": sent.alert.annotations,
                    "externalURL": "https://vigil.example.com",
                    "alerts": [{
                        "status": "firing",
                        "labels": sent.alert.labels,
                        "annotations": sent.alert.annotations,
                        "startsAt": "2023-11-14T22:14:20Z",
                        "endsAt": "0001-01-01T00:00:00Z",
                        "generatorURL": "https://vigil.example.com/alerts/3f2a9c1d",
                        "fingerprint": "3f2a9c1d",
                    }],
                })
            );
            let resolved = json_of(&requests[1].1);
            assert_eq!(resolved["status"], "resolved");
            assert_eq!(resolved["alerts"][0]["status"], "resolved");
            assert_eq!(resolved["alerts"][0]["endsAt"], "2023-11-14T22:23:20Z");
        })
        .await;
    }

    #[test]
    fn the_site_root_is_the_alert_url_before_its_alerts_path() {
        assert_eq!(site_root("https://vigil.example.com/alerts/3f2a"), "https://vigil.example.com");
        assert_eq!(site_root("https://alerts.example.com/alerts/3f2a"), "https://alerts.example.com");
        assert_eq!(site_root("https://example.com/vigil/alerts?fingerprint=3f2a"), "https://example.com/vigil");
        assert_eq!(site_root("https://example.com/alertsmith/x"), "https://example.com/alertsmith/x");
        assert_eq!(site_root("https://example.com"), "https://example.com");
    }

    #[test]
    fn settings_are_checked_when_saved() {
        let check = |kind, value: Value, secrets: &[&str]| check_settings(kind, &settings(value), secrets);
        let message = |result: Result<(), DeliveryError>| result.unwrap_err().to_string();

        assert!(
            check(IntegrationKind::Webhook, json!({"url": "https://hooks.example.com/x"}), &["signing_key"]).is_ok()
        );
        assert_eq!(message(check(IntegrationKind::Webhook, json!({}), &[])), "channel setting url: missing");
        assert_eq!(
            message(check(IntegrationKind::Webhook, json!({"url": "ftp://example.com"}), &[])),
            "channel setting url: \"ftp://example.com\": must be an http or https URL, not ftp"
        );
        assert_eq!(
            message(check(IntegrationKind::Webhook, json!({"url": "https://x.example", "ulr": "typo"}), &[])),
            "channel setting ulr: unknown for a webhook channel (known: url)"
        );
        assert_eq!(
            message(check(IntegrationKind::Webhook, json!({"url": "https://x.example"}), &["signing_kye"])),
            "channel secret signing_kye: unknown for a webhook channel (known: signing_key, bearer_token)"
        );
        assert!(check(IntegrationKind::Slack, json!({"channel": "#ops"}), &["url"]).is_ok());
        assert!(check(IntegrationKind::Slack, json!({"url": "https://hooks.slack.com/services/T/B/X"}), &[]).is_ok());
        assert!(message(check(IntegrationKind::Slack, json!({}), &[])).starts_with("channel secret url: missing"));
        assert!(check(IntegrationKind::PagerDuty, json!({}), &["routing_key"]).is_ok());
        assert!(
            message(check(IntegrationKind::PagerDuty, json!({}), &[]))
                .starts_with("channel secret routing_key: missing")
        );
        assert!(
            check(IntegrationKind::Alertmanager, json!({"url": "http://am.example:9093/hook"}), &["bearer_token"])
                .is_ok()
        );

        let smtp = json!({"host": "mail.example.com", "port": 25, "from": "vigil@example.com", "to": ["a@example.com", "b@example.com"], "tls": "none"});
        assert!(check(IntegrationKind::Smtp, smtp.clone(), &[]).is_ok());
        let mut single = smtp.clone();
        single["to"] = json!("a@example.com, b@example.com");
        assert!(check(IntegrationKind::Smtp, single, &[]).is_ok());
        assert_eq!(
            message(check(IntegrationKind::Smtp, smtp.clone(), &["username", "password"])),
            "channel setting allow_plaintext_auth: must be true to send the username and password in clear (tls is \"none\")"
        );
        let mut allowed = smtp.clone();
        allowed["allow_plaintext_auth"] = json!(true);
        assert!(check(IntegrationKind::Smtp, allowed.clone(), &["username", "password"]).is_ok());
        assert!(
            message(check(IntegrationKind::Smtp, allowed, &["username"]))
                .starts_with("channel secret password: missing")
        );
        // STARTTLS is the default, and credentials travel inside it.
        let mut default_tls = smtp.clone();
        default_tls.as_object_mut().unwrap().remove("tls");
        assert!(check(IntegrationKind::Smtp, default_tls, &["username", "password"]).is_ok());
        let mut bogus_tls = smtp.clone();
        bogus_tls["tls"] = json!("ssl3");
        assert!(message(check(IntegrationKind::Smtp, bogus_tls, &[])).starts_with("channel setting tls: \"ssl3\""));
        let mut bad_to = smtp.clone();
        bad_to["to"] = json!(["a@example.com", "Boss <boss@example.com>"]);
        assert!(
            message(check(IntegrationKind::Smtp, bad_to, &[]))
                .starts_with("channel setting to: \"Boss <boss@example.com>\"")
        );
        let mut bad_port = smtp;
        bad_port["port"] = json!(70000);
        assert_eq!(
            message(check(IntegrationKind::Smtp, bad_port, &[])),
            "channel setting port: must be a port number (1 to 65535)"
        );

        assert!(matches!(
            check(IntegrationKind::Jenkins, json!({}), &[]),
            Err(DeliveryError::NotAChannel(IntegrationKind::Jenkins))
        ));
    }

    #[tokio::test]
    async fn a_ci_provider_is_not_a_channel() {
        let settings = Map::new();
        let secrets = BTreeMap::new();
        let target = Target { name: "ci", kind: IntegrationKind::GitLab, settings: &settings, secrets: &secrets };
        let error = deliver(&reqwest::Client::new(), &target, &message(NotificationEvent::Firing)).await.unwrap_err();
        assert_eq!(error.to_string(), "gitlab is not a notification channel");
        assert!(!error.is_retryable());
    }

    fn email_settings(port: u16) -> Map<String, Value> {
        settings(json!({
            "host": "127.0.0.1",
            "port": port,
            "from": "vigil@example.com",
            "to": ["oncall@example.com", "team@example.com"],
            "tls": "none",
        }))
    }

    #[tokio::test]
    async fn email_goes_through_a_real_smtp_server_with_subject_labels_and_links() {
        within_a_minute(async {
            let sink = SmtpSink::start(json!({})).await;
            let settings = email_settings(sink.port);
            let secrets = BTreeMap::new();
            let target =
                Target { name: "oncall-mail", kind: IntegrationKind::Smtp, settings: &settings, secrets: &secrets };
            deliver(&reqwest::Client::new(), &target, &message(NotificationEvent::Firing)).await.unwrap();

            let messages = sink.messages();
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0]["mail_from"], "vigil@example.com");
            assert_eq!(messages[0]["rcpt_tos"], json!(["oncall@example.com", "team@example.com"]));
            let content = messages[0]["content"].as_str().unwrap();
            let (headers, body) = content.split_once("\r\n\r\n").unwrap();
            for expected in [
                "From: vigil@example.com",
                "To: oncall@example.com, team@example.com",
                "Subject: [FIRING] HighErrorRate (instance=api-1:9100, job=api, service=api, severity=critical)",
                "MIME-Version: 1.0",
                "Content-Type: text/plain; charset=utf-8",
            ] {
                assert!(headers.split("\r\n").any(|line| line == expected), "{expected} is not in\n{headers}");
            }
            assert!(headers.contains("\r\nDate: ") && headers.contains("\r\nMessage-ID: <"), "{headers}");
            for expected in [
                "[FIRING] HighErrorRate\r\n",
                "\r\nError rate above 5 % on api\r\n",
                // Dot-stuffed on the wire, intact at the other end.
                "\r\n5xx answers are 12 % of all.\r\n.\r\n.a line that starts with a dot\r\nthe end\r\n",
                "\r\n  service = api\r\n",
                "\r\n  dashboard: https://vigil.example.com/dashboards/api\r\n",
                "\r\nValue: 0.12\r\n",
                "\r\nFiring since: 2023-11-14T22:14:20Z\r\n",
                "\r\nAlert: https://vigil.example.com/alerts/3f2a9c1d\r\n",
                "\r\nRunbook: https://runbooks.example.com/high-error-rate\r\n",
            ] {
                assert!(body.contains(expected), "{expected:?} is not in\n{body}");
            }
        })
        .await;
    }

    #[tokio::test]
    async fn email_to_a_refused_address_is_refused_and_to_a_deferred_one_retried() {
        within_a_minute(async {
            let sink = SmtpSink::start(json!({"refuse": ["team@example.com"], "defer": ["later@example.com"]})).await;
            let settings = email_settings(sink.port);
            let secrets = BTreeMap::new();
            let target =
                Target { name: "oncall-mail", kind: IntegrationKind::Smtp, settings: &settings, secrets: &secrets };
            let http = reqwest::Client::new();
            match deliver(&http, &target, &message(NotificationEvent::Firing)).await {
                Err(error @ DeliveryError::Refused { status: 550, .. }) => {
                    assert!(!error.is_retryable());
                    assert_eq!(
                        error.to_string(),
                        "the receiver answered 550: 5.1.1 mailbox unavailable (to RCPT TO:<team@example.com>)"
                    );
                }
                other => panic!("expected a 550 refusal, got {other:?}"),
            }
            let mut deferred = email_settings(sink.port);
            deferred["to"] = json!("later@example.com");
            let target = Target { settings: &deferred, ..target };
            let error = deliver(&http, &target, &message(NotificationEvent::Firing)).await.unwrap_err();
            assert!(error.is_retryable(), "{error}");
            assert!(sink.messages().is_empty());
        })
        .await;
    }

    #[tokio::test]
    async fn email_logs_in_in_clear_only_when_allowed() {
        within_a_minute(async {
            let sink = SmtpSink::start(json!({"login": ["vigil", "s3cret"]})).await;
            let secrets = text_map(&[("username", "vigil"), ("password", "s3cret")]);
            let refused = email_settings(sink.port);
            let target = Target { name: "oncall-mail", kind: IntegrationKind::Smtp, settings: &refused, secrets: &secrets };
            let http = reqwest::Client::new();
            let error = deliver(&http, &target, &message(NotificationEvent::Resolved)).await.unwrap_err();
            assert!(matches!(&error, DeliveryError::Setting(message) if message.starts_with("channel setting allow_plaintext_auth")));

            let mut allowed = email_settings(sink.port);
            allowed.insert("allow_plaintext_auth".to_owned(), json!(true));
            let target = Target { settings: &allowed, ..target };
            deliver(&http, &target, &message(NotificationEvent::Resolved)).await.unwrap();
            let messages = sink.messages();
            assert_eq!(messages.len(), 1);
            assert_eq!(messages[0]["login"], json!({"user": "vigil", "mechanism": "PLAIN"}));
            assert!(messages[0]["content"].as_str().unwrap().contains("\r\nSubject: [RESOLVED] HighErrorRate ("));
        })
        .await;
    }
}
