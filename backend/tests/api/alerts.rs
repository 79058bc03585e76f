//! Alerts end to end: rules evaluated against a real Prometheus and the log store, webhooks
//! received by a loopback receiver that checks their signature, acknowledgement, restarts,
//! retries, escalation, and two backends on one PostgreSQL with one evaluating.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use vigil_proto::alerts::{Alert, AlertDetail, AlertPage, AlertRule, Notification, NotificationEvent, WebhookBody};
use vigil_proto::auth::Role;
use vigil_proto::paths;

use crate::helpers::{Db, TestApp, TestSession, assert_error, eventually, record, spawn_app_with};
use crate::prometheus::TestPrometheus;
use crate::smtp_sink::SmtpSink;

const SIGNING_KEY: &str = "the webhook's signing key";

/// A webhook receiver on loopback: it keeps what it got and answers with the statuses it is
/// given, one per request (200 once they run out).
#[derive(Clone, Default)]
pub struct Receiver {
    messages: Arc<Mutex<Vec<WebhookBody>>>,
    answers: Arc<Mutex<Vec<u16>>>,
    attempts: Arc<Mutex<usize>>,
    url: String,
}

fn hmac_sha256(key: &[u8], message: &[u8]) -> String {
    let mut block = [0u8; 64];
    if key.len() > 64 {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let inner: Vec<u8> = block.iter().map(|byte| byte ^ 0x36).collect();
    let outer: Vec<u8> = block.iter().map(|byte| byte ^ 0x5c).collect();
    let inner_hash = Sha256::new().chain_update(&inner).chain_update(message).finalize();
    let digest = Sha256::new().chain_update(&outer).chain_update(inner_hash).finalize();
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

impl Receiver {
    pub async fn start(answers: Vec<u16>) -> Self {
        let mut receiver = Receiver { answers: Arc::new(Mutex::new(answers)), ..Receiver::default() };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        receiver.url = format!("http://{}/hook", listener.local_addr().unwrap());
        let state = receiver.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = state.clone();
                async move {
                    *state.attempts.lock().unwrap() += 1;
                    let answer = {
                        let mut answers = state.answers.lock().unwrap();
                        if answers.is_empty() { 200 } else { answers.remove(0) }
                    };
                    if answer != 200 {
                        return StatusCode::from_u16(answer).unwrap();
                    }
                    let header = |name: &str| headers.get(name).and_then(|value| value.to_str().ok()).unwrap_or("");
                    let timestamp = header("x-vigil-timestamp");
                    let mut signed = format!("{timestamp}.").into_bytes();
                    signed.extend_from_slice(&body);
                    let expected = format!("sha256={}", hmac_sha256(SIGNING_KEY.as_bytes(), &signed));
                    if header("x-vigil-signature") != expected {
                        return StatusCode::UNAUTHORIZED;
                    }
                    let message: WebhookBody = serde_json::from_slice(&body).expect("a Vigil webhook body");
                    assert_eq!(message.version, "2");
                    assert!(!message.notifications.is_empty(), "a message without notifications");
                    let first = message.notifications[0].event;
                    let event = match message.notifications.iter().all(|told| told.event == first) {
                        true => first.as_str(),
                        false => "mixed",
                    };
                    assert_eq!(header("x-vigil-event"), event);
                    state.messages.lock().unwrap().push(message);
                    StatusCode::OK
                }
            }),
        );
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        receiver
    }

    /// The messages received, each holding one notification or a group's.
    pub fn messages(&self) -> Vec<WebhookBody> {
        self.messages.lock().unwrap().clone()
    }

    /// Every notification received, in order, whatever message held it.
    pub fn received(&self) -> Vec<Notification> {
        self.messages().into_iter().flat_map(|message| message.notifications).collect()
    }

    pub fn events(&self) -> Vec<NotificationEvent> {
        self.received().iter().map(|notification| notification.event).collect()
    }
}

/// Stand-ins for Slack's incoming webhook, PagerDuty's Events API v2 and an Alertmanager
/// webhook receiver (each keeps the JSON bodies it got, by path), a real SMTP server, and the
/// channels `chat`, `pager`, `relay` and `mail` pointing at them.
pub struct OtherChannels {
    bodies: Arc<Mutex<Vec<(String, Value)>>>,
    smtp: SmtpSink,
}

impl OtherChannels {
    pub async fn start(app: &TestApp, admin: &TestSession) -> Self {
        let bodies: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
        let kept = bodies.clone();
        let stand_in = axum::Router::new().route(
            "/{*path}",
            axum::routing::post(move |uri: axum::http::Uri, axum::Json(body): axum::Json<Value>| {
                let kept = kept.clone();
                async move {
                    kept.lock().unwrap().push((uri.path().to_owned(), body));
                    // PagerDuty answers 202 with its status; Slack 200 "ok".
                    match uri.path() {
                        "/v2/enqueue" => (StatusCode::ACCEPTED, r#"{"status":"success"}"#),
                        _ => (StatusCode::OK, "ok"),
                    }
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, stand_in).await.unwrap() });
        let smtp = SmtpSink::start(json!({})).await;
        let channels = [
            json!({"name": "chat", "kind": "slack", "settings": {"channel": "#ops"},
                   "secrets": {"url": format!("{base}/services/T0/B0/x")}}),
            json!({"name": "pager", "kind": "pagerduty", "settings": {"url": format!("{base}/v2/enqueue")},
                   "secrets": {"routing_key": "R0UT1NG-KEY"}}),
            json!({"name": "relay", "kind": "alertmanager", "settings": {"url": format!("{base}/am")}}),
            json!({"name": "mail", "kind": "smtp",
                   "settings": {"host": "127.0.0.1", "port": smtp.port, "tls": "none",
                                "from": "vigil@example.com", "to": "oncall@example.com"}}),
        ];
        for channel in channels {
            let response =
                app.with_session(Method::POST, paths::INTEGRATIONS, admin).json(&channel).send().await.unwrap();
            assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        }
        Self { bodies, smtp }
    }

    fn bodies(&self, path_start: &str) -> Vec<Value> {
        let bodies = self.bodies.lock().unwrap();
        bodies.iter().filter(|(path, _)| path.starts_with(path_start)).map(|(_, body)| body.clone()).collect()
    }

    /// Waits for the counts of Slack messages, PagerDuty events, Alertmanager messages and
    /// e-mails, then a little longer to see that no more come.
    pub async fn received(
        &self,
        slack: usize,
        pagerduty: usize,
        relayed: usize,
        mails: usize,
    ) -> (Vec<Value>, Vec<Value>, Vec<Value>, Vec<Value>) {
        let counts = || {
            (
                self.bodies("/services/").len(),
                self.bodies("/v2/enqueue").len(),
                self.bodies("/am").len(),
                self.smtp.messages().len(),
            )
        };
        let wanted = (slack, pagerduty, relayed, mails);
        eventually(20, "every channel's notifications", || async { (counts() >= wanted).then_some(()) }).await;
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(counts(), wanted, "Slack, PagerDuty, Alertmanager and e-mail");
        (self.bodies("/services/"), self.bodies("/v2/enqueue"), self.bodies("/am"), self.smtp.messages())
    }
}

pub async fn start(db: Db, prometheus: Option<&TestPrometheus>) -> TestApp {
    let url = prometheus.map(|prometheus| prometheus.address.clone());
    spawn_app_with(db, |config| {
        if let Some(url) = url {
            config.metrics.prometheus_url = url;
        }
        config.alerts.tick_millis = 100;
        config.alerts.retry_base_millis = 100;
    })
    .await
}

/// A webhook channel (an integration) pointing at `receiver`, signed.
pub async fn webhook_channel(app: &TestApp, admin: &TestSession, name: &str, receiver: &Receiver) {
    let integration = json!({
        "name": name, "kind": "webhook",
        "settings": {"url": receiver.url},
        "secrets": {"signing_key": SIGNING_KEY},
    });
    let response = app.with_session(Method::POST, paths::INTEGRATIONS, admin).json(&integration).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
}

pub async fn create_rule(app: &TestApp, session: &TestSession, rule: &Value) -> AlertRule {
    let response = app.with_session(Method::POST, paths::ALERT_RULES, session).json(rule).send().await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

pub async fn alerts(app: &TestApp) -> Vec<Alert> {
    let response = app.read(paths::ALERTS, &[("limit", "1000")]).await;
    assert_eq!(response.status(), 200);
    let page: AlertPage = response.json().await.unwrap();
    assert_eq!(page.total as usize, page.alerts.len(), "every alert on one page");
    page.alerts
}

async fn detail(app: &TestApp, fingerprint: &str) -> AlertDetail {
    let response = app.read(&paths::ALERT.replace("{fingerprint}", fingerprint), &[]).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// Waits until the receiver holds `count` notifications, then a little longer to see that no
/// more come.
pub async fn received_exactly(receiver: &Receiver, count: usize, what: &str) -> Vec<Notification> {
    eventually(20, what, || async { (receiver.received().len() >= count).then_some(()) }).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let received = receiver.received();
    assert_eq!(received.len(), count, "{what}: {:?}", receiver.events());
    received
}

fn now_millis() -> i64 {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

async fn gauge(app: &TestApp, value: f64) {
    let batch = json!({"series": [{
        "labels": {"__name__": "checkout_errors", "service": "checkout", "job": "shop"},
        "samples": [[now_millis(), value]],
    }]});
    assert_eq!(app.post_metrics(&batch).await.status(), 200);
}

#[tokio::test]
async fn a_promql_rule_goes_pending_firing_acknowledged_resolved_with_one_notification_each() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(Db::Sqlite, Some(&prometheus)).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    let others = OtherChannels::start(&app, &admin).await;
    let deployer = app.user_session("dana", Role::Deployer).await;
    gauge(&app, 7.0).await;
    let rule = create_rule(
        &app,
        &deployer,
        &json!({
            "name": "CheckoutErrors", "kind": "promql", "expr": "checkout_errors",
            "comparator": ">", "threshold": 3, "for_seconds": 2, "interval_seconds": 1,
            "severity": "critical", "labels": {"team": "payments"},
            "annotations": {"summary": "{{ $labels.service }} has {{ $value }} errors"},
            "runbook_url": "https://runbooks.example/checkout",
            "channels": ["on-call", "chat", "pager", "mail", "relay"],
        }),
    )
    .await;

    // Pending first (the condition holds, `for` has not passed), with nothing sent.
    let pending = eventually(10, "a pending alert", || async {
        alerts(&app).await.into_iter().find(|alert| alert.state == vigil_proto::alerts::AlertState::Pending)
    })
    .await;
    assert!(receiver.received().is_empty(), "nothing is sent while pending");
    assert_eq!(pending.labels["alertname"], "CheckoutErrors");
    assert_eq!(pending.labels["service"], "checkout");
    assert_eq!(pending.labels["team"], "payments");
    assert_eq!(pending.labels["severity"], "critical");
    assert_eq!(pending.annotations["summary"], "checkout has 7 errors");

    // Firing: one notification, signed, with a dedup key per episode.
    let fired = received_exactly(&receiver, 1, "the firing notification").await;
    assert_eq!(fired[0].event, NotificationEvent::Firing);
    assert_eq!(fired[0].alert.fingerprint, pending.fingerprint);
    assert_eq!(fired[0].dedup_key, format!("{}-1", pending.fingerprint));
    assert_eq!(fired[0].rule_name, "CheckoutErrors");
    assert_eq!(fired[0].runbook_url.as_deref(), Some("https://runbooks.example/checkout"));
    assert_eq!(fired[0].alert.value, Some(7.0));

    // A viewer may not acknowledge; a deployer may, once.
    let acknowledge = paths::ALERT_ACKNOWLEDGE.replace("{fingerprint}", &pending.fingerprint);
    let viewer = app.user_session("vic", Role::Viewer).await;
    let refused = app.with_session(Method::POST, &acknowledge, &viewer).json(&json!({})).send().await.unwrap();
    assert_eq!(refused.status(), 403);
    let response = app
        .with_session(Method::POST, &acknowledge, &deployer)
        .json(&json!({"note": "looking at the payment provider"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let again = app.with_session(Method::POST, &acknowledge, &deployer).json(&json!({})).send().await.unwrap();
    assert_error(again, 409, "conflict", "acknowledged by dana").await;
    let acknowledged = received_exactly(&receiver, 2, "the acknowledgement").await;
    assert_eq!(acknowledged[1].event, NotificationEvent::Acknowledged);
    assert_eq!(acknowledged[1].alert.acknowledged.as_ref().unwrap().by, "dana");

    // The condition stops holding: resolved, told once.
    gauge(&app, 0.0).await;
    let resolved = received_exactly(&receiver, 3, "the resolution").await;
    assert_eq!(resolved[2].event, NotificationEvent::Resolved);
    assert_eq!(resolved[2].dedup_key, fired[0].dedup_key);
    let detail = detail(&app, &pending.fingerprint).await;
    // The links lead to the rule's metric chart and to the service's logs over the alert's time.
    let metrics = detail.links.metrics.as_deref().expect("a PromQL rule links its chart");
    let metrics = reqwest::Url::parse(&format!("http://vigil{metrics}")).unwrap();
    assert_eq!(metrics.path(), "/explore");
    let chart_query: Vec<(String, String)> = metrics.query_pairs().into_owned().collect();
    assert_eq!(chart_query[0], ("q".to_owned(), "checkout_errors".to_owned()));
    assert_eq!(chart_query[1].0, "start");
    let logs = reqwest::Url::parse(&format!("http://vigil{}", detail.links.logs)).unwrap();
    assert_eq!(logs.path(), "/logs");
    let logs_query: Vec<(String, String)> = logs.query_pairs().into_owned().collect();
    assert_eq!(logs_query[0], ("q".to_owned(), "service:\"checkout\"".to_owned()));
    let search = app.read(paths::LOGS_SEARCH, &[("q", &logs_query[0].1), ("start", &logs_query[1].1)]).await;
    assert_eq!(search.status(), 200, "the logs link's query is one the log store takes");
    let kinds: Vec<&str> = detail.events.iter().map(|event| event.kind.as_str()).collect();
    let five = ["notified"; 5];
    let expected = [&["pending", "firing"][..], &five, &["acknowledged"], &five, &["resolved"], &five].concat();
    assert_eq!(kinds, expected, "one notification per channel at each step");
    // Every other channel got exactly its part: Slack and e-mail the three, PagerDuty a
    // trigger, an acknowledge and a resolve of one dedup key, Alertmanager receivers no
    // acknowledgement.
    let dedup_key = fired[0].dedup_key.as_str();
    let (slack, pagerduty, relayed, mails) = others.received(3, 3, 2, 3).await;
    let texts: Vec<&str> = slack.iter().map(|message| message["text"].as_str().unwrap()).collect();
    assert!(texts[0].starts_with("[FIRING] CheckoutErrors"), "{texts:?}");
    assert!(texts[1].starts_with("[ACKNOWLEDGED by dana] CheckoutErrors"), "{texts:?}");
    assert!(texts[2].starts_with("[RESOLVED] CheckoutErrors"), "{texts:?}");
    let actions: Vec<(&str, &str)> = pagerduty
        .iter()
        .map(|event| (event["event_action"].as_str().unwrap(), event["dedup_key"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("trigger", dedup_key), ("acknowledge", dedup_key), ("resolve", dedup_key)]);
    assert_eq!(pagerduty[0]["routing_key"], "R0UT1NG-KEY");
    let statuses: Vec<&str> = relayed.iter().map(|message| message["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["firing", "resolved"]);
    assert_eq!(relayed[0]["alerts"][0]["labels"]["service"], "checkout");
    let subjects: Vec<&str> = mails
        .iter()
        .map(|mail| {
            let content = mail["content"].as_str().unwrap();
            content.lines().find_map(|line| line.strip_prefix("Subject: ")).expect("a subject")
        })
        .collect();
    assert!(subjects[0].starts_with("[FIRING] CheckoutErrors"), "{subjects:?}");
    assert!(subjects[1].starts_with("[ACKNOWLEDGED by dana]"), "{subjects:?}");
    assert!(subjects[2].starts_with("[RESOLVED]"), "{subjects:?}");
    assert_eq!(detail.deliveries.len(), 15);
    assert!(detail.deliveries.iter().all(|delivery| delivery.attempts == 1 && delivery.sent_at.is_some()));
    let rule: AlertRule =
        app.read(&paths::ALERT_RULE.replace("{id}", &rule.id.to_string()), &[]).await.json().await.unwrap();
    assert!(rule.last_evaluation.is_some() && rule.last_error.is_none(), "{rule:?}");

    // Every change is in the audit log.
    let audit = app.audit(&admin, &[("action", "alert_rule.create")]).await;
    assert_eq!(audit.events.len(), 1);
    assert_eq!(audit.events[0].actor, "dana");
    let audit = app.audit(&admin, &[("action", "alert.acknowledge")]).await;
    assert_eq!(audit.events.len(), 1);
    assert_eq!(audit.events[0].detail, "looking at the payment provider");
}

#[tokio::test]
async fn a_restart_while_firing_sends_nothing_twice() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(Db::Sqlite, Some(&prometheus)).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    create_rule(
        &app,
        &admin,
        &json!({"name": "AlwaysOn", "kind": "promql", "expr": "vector(1)", "interval_seconds": 1, "channels": ["on-call"]}),
    )
    .await;
    let fired = received_exactly(&receiver, 1, "the firing notification").await;
    let data = app.stop_keeping_data().await;
    let app = crate::helpers::restart_app_with(data.path(), |config| {
        config.metrics.prometheus_url = prometheus.address.clone();
        config.alerts.tick_millis = 100;
    })
    .await;
    // Several evaluations after the restart: still one notification, the same episode.
    eventually(10, "evaluations after the restart", || async {
        let rules: Vec<AlertRule> = app.read(paths::ALERT_RULES, &[]).await.json().await.unwrap();
        let evaluated = rules[0].last_evaluation?;
        (evaluated.as_unix_nanos() > (now_millis() - 500) * 1_000_000).then_some(())
    })
    .await;
    received_exactly(&receiver, 1, "no second notification").await;
    let alert = &alerts(&app).await[0];
    assert_eq!((alert.state, alert.episode), (vigil_proto::alerts::AlertState::Firing, 1));
    assert_eq!(alert.fingerprint, fired[0].alert.fingerprint);
}

#[tokio::test]
async fn a_log_rule_fires_on_a_burst_of_error_lines_per_service() {
    let app = start(Db::Sqlite, None).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    create_rule(
        &app,
        &admin,
        &json!({
            "name": "ErrorBurst", "kind": "logs", "expr": "level:error", "window_seconds": 300,
            "group_by": "service", "comparator": ">", "threshold": 5, "interval_seconds": 1,
            "annotations": {"summary": "{{ $value }} errors in {{ $labels.service }}"}, "channels": ["on-call"],
        }),
    )
    .await;
    let now = time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap();
    let mut records: Vec<_> =
        (0..8).map(|i| record(&now, "payments", "error", &format!("card declined {i}"))).collect();
    records.extend((0..3).map(|i| record(&now, "search", "error", &format!("timeout {i}"))));
    records.extend((0..20).map(|i| record(&now, "search", "info", &format!("ok {i}"))));
    assert_eq!(app.post_logs(&records).await.status(), 200);
    let fired = received_exactly(&receiver, 1, "the burst's notification").await;
    assert_eq!(fired[0].alert.labels["service"], "payments", "search had 3 errors, below the threshold");
    assert_eq!(fired[0].alert.value, Some(8.0));
    assert_eq!(fired[0].alert.annotations["summary"], "8 errors in payments");
}

#[tokio::test]
async fn a_failing_channel_is_retried_with_each_attempt_logged_and_a_refusing_one_given_up() {
    let app = start(Db::Sqlite, None).await;
    let admin = app.admin_session().await;
    let flaky = Receiver::start(vec![503, 502]).await;
    let refusing = Receiver::start(vec![400; 20]).await;
    webhook_channel(&app, &admin, "flaky", &flaky).await;
    webhook_channel(&app, &admin, "refusing", &refusing).await;
    create_rule(
        &app,
        &admin,
        &json!({"name": "AlwaysOn", "kind": "promql", "expr": "vector(1)", "interval_seconds": 1,
                "channels": ["flaky", "refusing"]}),
    )
    .await;
    // The PromQL has no Prometheus to go to: the rule shows the error instead of firing.
    let rules: Vec<AlertRule> = eventually(10, "the evaluation error on the rule", || async {
        let rules: Vec<AlertRule> = app.read(paths::ALERT_RULES, &[]).await.json().await.unwrap();
        rules[0].last_error.is_some().then_some(rules)
    })
    .await;
    assert!(rules[0].last_error.as_ref().unwrap().contains("Prometheus"), "{:?}", rules[0].last_error);
    // After three failed intervals the failure fires as an alert of its own.
    let failing = received_exactly(&flaky, 1, "the evaluation failure's notification").await;
    assert_eq!(failing[0].alert.labels["alertname"], "VigilRuleEvaluationFailing");
    assert_eq!(failing[0].alert.labels["rule"], "AlwaysOn");
    assert_eq!(*flaky.attempts.lock().unwrap(), 3, "two failures, then delivered");
    let detail = detail(&app, &failing[0].alert.fingerprint).await;
    let flaky_delivery = detail.deliveries.iter().find(|delivery| delivery.channel == "flaky").unwrap();
    assert_eq!((flaky_delivery.attempts, flaky_delivery.status), (3, vigil_proto::alerts::DeliveryStatus::Sent));
    let refused = eventually(10, "the refused delivery given up", || async {
        let detail = crate::alerts::detail(&app, &failing[0].alert.fingerprint).await;
        detail.deliveries.into_iter().find(|delivery| {
            delivery.channel == "refusing" && delivery.status == vigil_proto::alerts::DeliveryStatus::Failed
        })
    })
    .await;
    assert_eq!(refused.attempts, 1, "a 400 is not retried");
    assert!(refused.last_error.as_ref().unwrap().contains("400"), "{:?}", refused.last_error);
    let detail = crate::alerts::detail(&app, &failing[0].alert.fingerprint).await;
    assert!(detail.events.iter().any(|event| event.kind == "failed" && event.detail.contains("refusing")));
}

#[tokio::test]
async fn an_unacknowledged_alert_escalates_and_repeats_until_acknowledged() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(Db::Sqlite, Some(&prometheus)).await;
    let admin = app.admin_session().await;
    let first = Receiver::start(Vec::new()).await;
    let second = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "primary", &first).await;
    webhook_channel(&app, &admin, "secondary", &second).await;
    create_rule(
        &app,
        &admin,
        &json!({"name": "AlwaysOn", "kind": "promql", "expr": "vector(1)", "interval_seconds": 1,
                "channels": ["primary"], "escalate_to": ["secondary"], "escalate_after_seconds": 2,
                "repeat_interval_seconds": 3}),
    )
    .await;
    let escalated = received_exactly(&second, 1, "the escalation").await;
    assert_eq!(escalated[0].event, NotificationEvent::Escalation);
    eventually(10, "a repeat", || async { first.events().contains(&NotificationEvent::Repeat).then_some(()) }).await;
    let fingerprint = escalated[0].alert.fingerprint.clone();
    let acknowledge = paths::ALERT_ACKNOWLEDGE.replace("{fingerprint}", &fingerprint);
    let response = app.with_session(Method::POST, &acknowledge, &admin).send().await.unwrap();
    assert_eq!(response.status(), 200);
    eventually(10, "the acknowledgement", || async {
        first.events().contains(&NotificationEvent::Acknowledged).then_some(())
    })
    .await;
    let count = first.received().len();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(first.received().len(), count, "no repeats once acknowledged: {:?}", first.events());
    assert_eq!(second.received().len(), 1, "escalated once");
}

#[tokio::test]
async fn rules_are_checked_and_only_deployers_and_admins_write_them() {
    let app = start(Db::Sqlite, None).await;
    let admin = app.admin_session().await;
    let viewer = app.user_session("vic", Role::Viewer).await;
    let post = |session: &TestSession, rule: Value| {
        app.with_session(Method::POST, paths::ALERT_RULES, session).json(&rule).send()
    };
    let rule = json!({"name": "X", "kind": "promql", "expr": "up == 0"});
    assert_eq!(post(&viewer, rule.clone()).await.unwrap().status(), 403);
    assert_eq!(app.read(paths::ALERT_RULES, &[]).await.status(), 200, "a read token reads rules");
    let cases = [
        (json!({"name": "", "kind": "promql", "expr": "up"}), "invalid_parameter", "name"),
        (json!({"name": "X", "kind": "logs", "expr": "level:error"}), "invalid_parameter", "comparator"),
        (
            json!({"name": "X", "kind": "logs", "expr": "level:(", "comparator": ">", "threshold": 1}),
            "invalid_query",
            "expr",
        ),
        (json!({"name": "X", "kind": "promql", "expr": "up", "channels": ["nowhere"]}), "invalid_parameter", "nowhere"),
        (
            json!({"name": "X", "kind": "promql", "expr": "up", "interval_seconds": 0}),
            "invalid_parameter",
            "interval_seconds",
        ),
        (
            json!({"name": "X", "kind": "promql", "expr": "up", "labels": {"alertname": "Y"}}),
            "invalid_parameter",
            "alertname",
        ),
        (json!({"name": "X", "kind": "sql", "expr": "up"}), "invalid_json", "sql"),
    ];
    for (rule, code, needle) in cases {
        assert_error(post(&admin, rule).await.unwrap(), 400, code, needle).await;
    }
    assert_eq!(post(&admin, rule.clone()).await.unwrap().status(), 201);
    assert_error(post(&admin, rule).await.unwrap(), 409, "conflict", "already exists").await;
    let missing = app.with_session(Method::DELETE, &paths::ALERT_RULE.replace("{id}", "999"), &admin).send().await;
    assert_error(missing.unwrap(), 404, "not_found", "999").await;
    let unknown = app.read(&paths::ALERT.replace("{fingerprint}", "0000"), &[]).await;
    assert_error(unknown, 404, "not_found", "0000").await;
    assert_error(app.read(paths::ALERTS, &[("state", "burning")]).await, 400, "invalid_parameter", "burning").await;
}

#[tokio::test]
async fn the_test_button_sends_through_the_channel_and_says_what_went_wrong() {
    let app = start(Db::Sqlite, None).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(vec![500]).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    let test = paths::CHANNEL_TEST.replace("{name}", "on-call");
    let failed = app.with_session(Method::POST, &test, &admin).send().await.unwrap();
    assert_error(failed, 503, "unavailable", "500").await;
    let sent = app.with_session(Method::POST, &test, &admin).send().await.unwrap();
    assert_eq!(sent.status(), 204);
    assert_eq!(receiver.events(), [NotificationEvent::Test]);
    let missing = app.with_session(Method::POST, &paths::CHANNEL_TEST.replace("{name}", "nope"), &admin).send().await;
    assert_error(missing.unwrap(), 400, "invalid_parameter", "nope").await;
    let audit = app.audit(&admin, &[("action", "notification.test")]).await;
    assert_eq!(audit.events.len(), 2);
}

/// Which node holds the evaluator's lease (its `host:port`), and the lease's token.
async fn lease(app: &TestApp) -> (String, i64) {
    let lease = app.state.database.lease(vigil_backend::alerts::evaluator::LEASE).await.unwrap().expect("a lease");
    (lease.holder, lease.token)
}

#[tokio::test]
async fn two_backends_on_one_postgresql_evaluate_on_exactly_one_node() {
    let prometheus = TestPrometheus::start("").await;
    let database = crate::postgres::TestPostgres::shared().create_database().await;
    let configure = |config: &mut vigil_backend::config::Config| {
        config.database_url = vigil_backend::config::Secret::new(database.clone());
        config.metrics.prometheus_url = prometheus.address.clone();
        config.alerts.tick_millis = 100;
        config.alerts.lease_seconds = 2;
    };
    let first = spawn_app_with(Db::Sqlite, configure).await;
    let admin = first.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&first, &admin, "on-call", &receiver).await;
    create_rule(
        &first,
        &admin,
        &json!({"name": "AlwaysOn", "kind": "promql", "expr": "vector(1)", "interval_seconds": 1, "channels": ["on-call"]}),
    )
    .await;
    received_exactly(&receiver, 1, "the firing notification").await;
    // A second node on the same database waits: the first keeps the lease.
    let second = spawn_app_with(Db::Sqlite, configure).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (holder, token) = lease(&second).await;
    assert!(holder.ends_with(&format!(":{}", first.port)), "{holder} holds the lease, not the first node");
    // The first node stops: the second takes over, and sends nothing twice.
    drop(first);
    let (holder, new_token) = eventually(10, "the second node taking over", || async {
        let (holder, token) = lease(&second).await;
        holder.ends_with(&format!(":{}", second.port)).then_some((holder, token))
    })
    .await;
    assert!(new_token > token, "a new holder has a new token ({holder})");
    let before = second.read(paths::ALERT_RULES, &[]).await.json::<Vec<AlertRule>>().await.unwrap()[0].last_evaluation;
    eventually(10, "evaluations by the second node", || async {
        let rules: Vec<AlertRule> = second.read(paths::ALERT_RULES, &[]).await.json().await.unwrap();
        (rules[0].last_evaluation > before).then_some(())
    })
    .await;
    received_exactly(&receiver, 1, "still one notification").await;
}

#[tokio::test]
async fn a_silence_shows_what_it_silences_keeps_it_quiet_and_once_expired_it_notifies() {
    let prometheus = TestPrometheus::start("").await;
    let app = start(Db::Sqlite, Some(&prometheus)).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    let deployer = app.user_session("dana", Role::Deployer).await;
    let viewer = app.user_session("vic", Role::Viewer).await;
    let matchers = json!([{"name": "alertname", "value": "Noisy.*", "isRegex": true}]);
    // Before the alert exists, the preview shows nothing; a silence needs a reason.
    let preview = |session: &TestSession| {
        app.with_session(Method::POST, paths::SILENCE_PREVIEW, session).json(&json!({"matchers": matchers})).send()
    };
    let previewed: Vec<Alert> = preview(&viewer).await.unwrap().json().await.unwrap();
    assert!(previewed.is_empty());
    let ends_at = time::OffsetDateTime::now_utc() + time::Duration::hours(1);
    let ends_at = ends_at.format(&time::format_description::well_known::Rfc3339).unwrap();
    let silence = |comment: &str| json!({"matchers": matchers, "ends_at": ends_at, "comment": comment});
    let post = |session: &TestSession, body: Value| {
        app.with_session(Method::POST, paths::SILENCES, session).json(&body).send()
    };
    assert_error(post(&deployer, silence(" ")).await.unwrap(), 400, "invalid_parameter", "comment").await;
    assert_eq!(post(&viewer, silence("maintenance")).await.unwrap().status(), 403);
    let everything = json!({"matchers": [{"name": "alertname", "value": ".*", "isRegex": true}], "ends_at": ends_at, "comment": "x"});
    assert_error(post(&deployer, everything).await.unwrap(), 400, "invalid_parameter", "every alert").await;
    let created = post(&deployer, silence("database maintenance until 3 pm")).await.unwrap();
    assert_eq!(created.status(), 201);
    let created: vigil_proto::alerts::Silence = created.json().await.unwrap();
    assert_eq!((created.created_by.as_str(), created.state), ("dana", vigil_proto::alerts::SilenceState::Active));

    create_rule(
        &app,
        &admin,
        &json!({"name": "NoisyNeighbour", "kind": "promql", "expr": "vector(1)", "interval_seconds": 1, "channels": ["on-call"]}),
    )
    .await;
    let firing = eventually(10, "the silenced alert firing", || async {
        alerts(&app).await.into_iter().find(|alert| alert.state == vigil_proto::alerts::AlertState::Firing)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(receiver.received().is_empty(), "a silenced alert tells nobody: {:?}", receiver.events());
    let previewed: Vec<Alert> = preview(&viewer).await.unwrap().json().await.unwrap();
    assert_eq!(previewed.len(), 1);
    let listed: Vec<vigil_proto::alerts::Silence> = app.read(paths::SILENCES, &[]).await.json().await.unwrap();
    assert_eq!(listed[0].silenced_alerts, std::slice::from_ref(&firing.fingerprint));
    let timeline = detail(&app, &firing.fingerprint).await;
    assert!(timeline.events.iter().any(|event| event.detail.contains(&created.id)), "{:?}", timeline.events);

    // Expired: it stays in the history, and the alert, still firing, is told now.
    let silence_path = paths::SILENCE.replace("{id}", &created.id);
    let expired = app.with_session(Method::DELETE, &silence_path, &deployer).send().await.unwrap();
    assert_eq!(expired.status(), 204);
    let again = app.with_session(Method::DELETE, &silence_path, &deployer).send().await.unwrap();
    assert_error(again, 400, "invalid_parameter", "ended already").await;
    let told = received_exactly(&receiver, 1, "the firing notification after the silence").await;
    assert_eq!(
        (told[0].event, told[0].alert.fingerprint.as_str()),
        (NotificationEvent::Firing, firing.fingerprint.as_str())
    );
    let kept: vigil_proto::alerts::Silence = app.read(&silence_path, &[]).await.json().await.unwrap();
    assert_eq!(kept.state, vigil_proto::alerts::SilenceState::Expired);
    let audit = app.audit(&admin, &[("action", "silence.save")]).await;
    assert_eq!(audit.events.len(), 1);
    assert!(audit.events[0].detail.contains("database maintenance"), "{}", audit.events[0].detail);
}

#[tokio::test]
async fn a_prometheus_rule_file_imports_as_rules_and_again_as_updates() {
    let app = start(Db::Sqlite, None).await;
    let admin = app.admin_session().await;
    let receiver = Receiver::start(Vec::new()).await;
    webhook_channel(&app, &admin, "on-call", &receiver).await;
    let file = r#"
groups:
  - name: api
    interval: 30s
    rules:
      - record: job:http_requests:rate5m
        expr: sum by (job) (rate(http_requests_total[5m]))
      - alert: HighErrorRate
        expr: sum(rate(http_requests_total{code=~"5.."}[5m])) > 1
        for: 10m
        labels: {severity: critical}
        annotations: {summary: "{{ $labels.job }} fails"}
      - alert: InstanceDown
        expr: up == 0
        for: 5 minutes
"#;
    let import = |session: &TestSession, body: &str| {
        app.with_session(Method::POST, &format!("{}?channels=on-call", paths::ALERT_RULES_IMPORT), session)
            .header("content-type", "application/yaml")
            .body(body.to_owned())
            .send()
    };
    let viewer = app.user_session("vic", Role::Viewer).await;
    assert_eq!(import(&viewer, file).await.unwrap().status(), 403);
    let first: vigil_proto::alerts::RuleImport = import(&admin, file).await.unwrap().json().await.unwrap();
    assert_eq!(first.created, ["HighErrorRate"]);
    assert_eq!(first.skipped.len(), 2, "{:?}", first.skipped);
    assert!(first.skipped.iter().any(|skipped| skipped.name == "InstanceDown" && skipped.reason.starts_with("for:")));
    let rules: Vec<AlertRule> = app.read(paths::ALERT_RULES, &[]).await.json().await.unwrap();
    assert_eq!(rules.len(), 1);
    assert_eq!((rules[0].spec.for_seconds, rules[0].spec.interval_seconds), (600, 30));
    assert_eq!(rules[0].spec.channels, ["on-call"]);
    let again: vigil_proto::alerts::RuleImport = import(&admin, file).await.unwrap().json().await.unwrap();
    assert_eq!((again.created.len(), again.updated.clone()), (0, vec!["HighErrorRate".to_owned()]));
    assert_error(import(&admin, "groups: 7").await.unwrap(), 400, "invalid_parameter", "not a Prometheus rule file")
        .await;
}

#[tokio::test]
async fn the_preview_says_when_a_log_rule_would_have_fired_over_the_last_hours() {
    let app = start(Db::Sqlite, None).await;
    // Bursts of errors 50 and 20 minutes ago, each inside one 5-minute window (the windows the
    // rule counts over start at multiples of 5 minutes).
    let at = |minutes_ago: i64, second: i64| {
        let then = time::OffsetDateTime::now_utc().unix_timestamp() - minutes_ago * 60;
        let window_start = then - then.rem_euclid(300);
        let time = time::OffsetDateTime::from_unix_timestamp(window_start + 10 + second).unwrap();
        time.format(&time::format_description::well_known::Rfc3339).unwrap()
    };
    let mut records = Vec::new();
    for second in 0..12 {
        records.push(record(&at(50, second), "payments", "error", "card declined"));
    }
    for second in 0..3 {
        records.push(record(&at(20, second), "payments", "error", "card declined"));
    }
    assert_eq!(app.post_logs(&records).await.status(), 200);
    let rule = json!({"name": "Burst", "kind": "logs", "expr": "level:error", "window_seconds": 300,
                      "comparator": ">", "threshold": 10});
    let response = app
        .client
        .post(app.url(paths::ALERT_RULES_PREVIEW))
        .bearer_auth(&app.read_token)
        .json(&json!({"rule": rule, "hours": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let preview: vigil_proto::alerts::RulePreview = response.json().await.unwrap();
    assert_eq!(preview.now.len(), 1);
    assert!(!preview.now[0].holds, "nothing now: {:?}", preview.now);
    assert_eq!(preview.threshold, Some(10.0));
    let total: f64 = preview.series[0].points.iter().filter_map(|(_, value)| *value).sum();
    assert_eq!(total, 15.0, "every record in one window or another");
    assert_eq!(preview.spans.len(), 1, "only the burst of 12 passes 10: {:?}", preview.spans);
    let span = &preview.spans[0];
    let minutes_ago = (now_millis() - span.start.as_unix_nanos() / 1_000_000) / 60_000;
    assert!((44..=56).contains(&minutes_ago), "the span starts about 50 minutes ago: {minutes_ago}");
    assert!(span.end.is_some());
    let bad = app
        .client
        .post(app.url(paths::ALERT_RULES_PREVIEW))
        .bearer_auth(&app.read_token)
        .json(&json!({"rule": rule, "hours": 100}))
        .send()
        .await
        .unwrap();
    assert_error(bad, 400, "invalid_parameter", "hours").await;
}

/// A channel with a missing or misspelt setting is refused as it is saved, naming what is
/// wrong, and nothing is stored; updates are checked with the secrets already stored.
#[tokio::test]
async fn channel_settings_are_checked_when_saved() {
    let app = start(Db::Sqlite, None).await;
    let admin = app.admin_session().await;
    let save = |method: Method, path: String, body: Value| {
        let request = app.with_session(method, &path, &admin).json(&body);
        async move { request.send().await.unwrap() }
    };
    let refused = [
        (json!({"name": "hook", "kind": "webhook", "settings": {}}), "url"),
        (json!({"name": "hook", "kind": "webhook", "settings": {"url": "ftp://x"}}), "url"),
        (
            json!({"name": "chat", "kind": "slack", "settings": {"chanel": "#ops"}, "secrets": {"url": "https://hooks.example/x"}}),
            "chanel",
        ),
        (json!({"name": "pager", "kind": "pagerduty", "settings": {}}), "routing_key"),
        (
            json!({"name": "mail", "kind": "smtp", "settings": {"host": "127.0.0.1", "from": "vigil@example.com", "to": "ops@example.com", "tls": "none"},
                   "secrets": {"username": "u", "password": "p"}}),
            "allow_plaintext_auth",
        ),
    ];
    for (body, needle) in refused {
        let response = save(Method::POST, paths::INTEGRATIONS.to_owned(), body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_parameter", "{error}");
        assert!(error["message"].as_str().unwrap().contains(needle), "{needle}: {error}");
    }
    let listed: Vec<Value> =
        app.with_session(Method::GET, paths::INTEGRATIONS, &admin).send().await.unwrap().json().await.unwrap();
    assert!(listed.is_empty(), "nothing refused was stored: {listed:?}");

    let pager = json!({"name": "pager", "kind": "pagerduty", "settings": {}, "secrets": {"routing_key": "R0UT1NG"}});
    let response = save(Method::POST, paths::INTEGRATIONS.to_owned(), pager).await;
    assert_eq!(response.status(), 201);
    let id = response.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let path = paths::INTEGRATION.replace("{id}", &id.to_string());
    // The stored routing key stays: an update that leaves it out is fine, one that removes it is not.
    let keep = json!({"name": "pager", "kind": "pagerduty", "settings": {"url": "http://127.0.0.1:9/v2/enqueue"}});
    assert_eq!(save(Method::PUT, path.clone(), keep).await.status(), 200);
    let remove = json!({"name": "pager", "kind": "pagerduty", "settings": {}, "secrets": {"routing_key": null}});
    let response = save(Method::PUT, path, remove).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("routing_key"));
}
