//! API paths shared by the backend's router, the agent and the tests.

pub const HEALTHZ: &str = "/healthz";
pub const READYZ: &str = "/readyz";
pub const METRICS: &str = "/metrics";
pub const LOGS: &str = "/api/v1/logs";
pub const LOGS_SEARCH: &str = "/api/v1/logs/search";
pub const LOGS_HISTOGRAM: &str = "/api/v1/logs/histogram";
pub const LOGS_FIELDS: &str = "/api/v1/logs/fields";
pub const LOGS_CONTEXT: &str = "/api/v1/logs/context";
/// The live tail, a WebSocket.
pub const LOGS_TAIL: &str = "/api/v1/logs/tail";
/// Prefix of the UI's server functions.
pub const UI_FUNCTIONS: &str = "/ui/fn";
/// The UI's live tail (the WebSocket of `LOGS_TAIL`, for the browser).
pub const UI_TAIL: &str = "/ui/tail";
/// Elasticsearch `_bulk`, for shippers that speak it.
pub const ELASTICSEARCH_BULK: &str = "/_bulk";
pub const ELASTICSEARCH_INDEX_BULK: &str = "/{index}/_bulk";
/// The same with a trailing slash (Fluent Bit before 5.1 with a `Pipeline`).
pub const ELASTICSEARCH_BULK_SLASH: &str = "/_bulk/";
pub const ELASTICSEARCH_INDEX_BULK_SLASH: &str = "/{index}/_bulk/";
pub const ELASTICSEARCH_LICENSE: &str = "/_license";
pub const ELASTICSEARCH_CLUSTER_HEALTH: &str = "/_cluster/health";
/// OTLP/HTTP logs.
pub const OTLP_LOGS: &str = "/v1/logs";
/// Loki's push API.
pub const LOKI_PUSH: &str = "/loki/api/v1/push";
/// Sign-in (JSON, or the login form), sign-out, and the current session.
pub const AUTH_LOGIN: &str = "/api/v1/auth/login";
pub const AUTH_LOGOUT: &str = "/api/v1/auth/logout";
pub const AUTH_SESSION: &str = "/api/v1/auth/session";
/// Single sign-on: starts the flow (redirect to the provider), and the provider's callback.
pub const AUTH_OIDC_LOGIN: &str = "/api/v1/auth/oidc/login";
pub const AUTH_OIDC_CALLBACK: &str = "/api/v1/auth/oidc/callback";
/// The signed-in user's password.
pub const AUTH_PASSWORD: &str = "/api/v1/auth/password";
/// The signed-in user's personal tokens.
pub const AUTH_TOKENS: &str = "/api/v1/auth/tokens";
pub const AUTH_TOKEN: &str = "/api/v1/auth/tokens/{id}";
pub const USERS: &str = "/api/v1/users";
pub const USER: &str = "/api/v1/users/{id}";
/// Every token (administrators); service tokens are created here.
pub const TOKENS: &str = "/api/v1/tokens";
pub const TOKEN: &str = "/api/v1/tokens/{id}";
pub const AUDIT: &str = "/api/v1/audit";
pub const INTEGRATIONS: &str = "/api/v1/integrations";
pub const INTEGRATION: &str = "/api/v1/integrations/{id}";
/// The login page.
pub const LOGIN_PAGE: &str = "/login";
/// Metric samples for Prometheus (remote write).
pub const METRICS_WRITE: &str = "/api/v1/metrics";
/// PromQL through the backend.
pub const METRICS_QUERY: &str = "/api/v1/metrics/query";
pub const METRICS_QUERY_RANGE: &str = "/api/v1/metrics/query_range";
pub const METRICS_LABELS: &str = "/api/v1/metrics/labels";
pub const METRICS_LABEL_VALUES: &str = "/api/v1/metrics/label/{name}/values";
pub const METRICS_SERIES: &str = "/api/v1/metrics/series";
/// Prometheus HTTP service discovery: the scrape targets Vigil knows.
pub const SD_TARGETS: &str = "/api/v1/sd/targets";
/// Agents: heartbeats in, their states out.
pub const AGENT_HEARTBEAT: &str = "/api/v1/agents/heartbeat";
pub const AGENTS: &str = "/api/v1/agents";
/// Deploy orders of the `agent` rollout provider: a host's orders, and an agent's report on one.
pub const AGENT_DEPLOYS: &str = "/api/v1/agents/deploys";
pub const AGENT_DEPLOY: &str = "/api/v1/agents/deploys/{id}";
/// Dashboards (by uid), their duplication, export and import.
pub const DASHBOARDS: &str = "/api/v1/dashboards";
pub const DASHBOARD: &str = "/api/v1/dashboards/{uid}";
pub const DASHBOARD_DUPLICATE: &str = "/api/v1/dashboards/{uid}/duplicate";
pub const DASHBOARD_EXPORT: &str = "/api/v1/dashboards/{uid}/export";
pub const DASHBOARDS_IMPORT: &str = "/api/v1/dashboards/import";
/// The generated dashboards: the list, Hosts, and one per configured service.
pub const BUILTIN_DASHBOARDS: &str = "/api/v1/builtin-dashboards";
pub const BUILTIN_HOSTS: &str = "/api/v1/builtin-dashboards/hosts";
pub const BUILTIN_SERVICE: &str = "/api/v1/builtin-dashboards/services/{service}";
/// Alerts: the rules, the alerts they fire (by fingerprint), acknowledgement, and a test
/// notification through a channel (an integration, by name).
pub const ALERT_RULES: &str = "/api/v1/alerts/rules";
pub const ALERT_RULE: &str = "/api/v1/alerts/rules/{id}";
pub const ALERTS: &str = "/api/v1/alerts";
pub const ALERT: &str = "/api/v1/alerts/{fingerprint}";
/// When alerts fired within a time range, for annotations on charts.
pub const ALERT_ANNOTATIONS: &str = "/api/v1/alerts/annotations";
pub const ALERT_ACKNOWLEDGE: &str = "/api/v1/alerts/{fingerprint}/acknowledge";
pub const CHANNEL_TEST: &str = "/api/v1/alerts/channels/{name}/test";
pub const SILENCES: &str = "/api/v1/alerts/silences";
pub const SILENCE: &str = "/api/v1/alerts/silences/{id}";
pub const SILENCE_PREVIEW: &str = "/api/v1/alerts/silences/preview";
/// Alertmanager's webhook, from an Alertmanager a site keeps.
pub const ALERTMANAGER_WEBHOOK: &str = "/api/v1/alerts/alertmanager";
/// Alertmanager's v2 API, for Prometheus (`alerting.alertmanagers`) and `amtool`.
pub const AM_ALERTS: &str = "/api/v2/alerts";
pub const AM_ALERT_GROUPS: &str = "/api/v2/alerts/groups";
pub const AM_SILENCES: &str = "/api/v2/silences";
pub const AM_SILENCE: &str = "/api/v2/silence/{id}";
pub const AM_STATUS: &str = "/api/v2/status";
pub const AM_RECEIVERS: &str = "/api/v2/receivers";
pub const ALERT_RULES_PREVIEW: &str = "/api/v1/alerts/rules/preview";
pub const ALERT_RULES_IMPORT: &str = "/api/v1/alerts/rules/import";
/// Rollouts: services with their environments and gates, the rollouts, their approval, abort,
/// the callback of an asynchronous CI, and the Rollback button of an environment.
pub const SERVICES: &str = "/api/v1/services";
pub const SERVICE: &str = "/api/v1/services/{name}";
pub const SERVICE_ROLLBACK: &str = "/api/v1/services/{name}/environments/{environment}/rollback";
pub const ROLLOUTS: &str = "/api/v1/rollouts";
/// When rollouts ran, for charts (before `ROLLOUT`, which would take `annotations` for an id).
pub const DEPLOY_ANNOTATIONS: &str = "/api/v1/rollouts/annotations";
pub const ROLLOUT: &str = "/api/v1/rollouts/{id}";
pub const ROLLOUT_APPROVE: &str = "/api/v1/rollouts/{id}/approve";
pub const ROLLOUT_ABORT: &str = "/api/v1/rollouts/{id}/abort";
pub const ROLLOUT_CALLBACK: &str = "/api/v1/rollouts/{id}/callback";
