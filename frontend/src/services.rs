//! The port through which server functions reach the backend (server side only).
//!
//! The backend implements [`UiServices`] and provides it as Leptos context with
//! `leptos_routes_with_context`; server functions fetch it with [`services`]. Methods that act
//! for the signed-in user receive the request's head, where the backend's authorization left
//! who the caller is.

use std::sync::Arc;

use http::request::Parts;
use leptos::prelude::*;

use crate::error::UiError;
use vigil_proto::alerts::{
    Alert, AlertAnnotation, AlertDetail, AlertPage, AlertQuery, AlertRule, AlertRuleSpec, AnnotationQuery, Matcher,
    RulePreview, RulePreviewRequest, Silence, SilenceWrite,
};
use vigil_proto::auth::{
    AuditPage, AuditQuery, CreatedToken, NewToken, NewUser, PasswordChange, SessionInfo, SsoStatus, TokenInfo, User,
    UserUpdate,
};
use vigil_proto::dashboards::{DashboardSpec, DashboardSummary, ServiceHealth};
use vigil_proto::metrics::QueryResult;
use vigil_proto::rollouts::{
    DeployAnnotation, DeployAnnotationQuery, Rollout, RolloutDetail, RolloutPage, RolloutQuery, RolloutRequest, Service,
};
use vigil_proto::{ApiError, ContextQuery, HistogramQuery, LogContext, LogHistogram, LogPage, LogQuery};

#[async_trait::async_trait]
pub trait UiServices: Send + Sync + 'static {
    async fn search_logs(&self, query: LogQuery) -> Result<LogPage, ApiError>;
    async fn log_histogram(&self, query: HistogramQuery) -> Result<LogHistogram, ApiError>;
    async fn log_context(&self, query: ContextQuery) -> Result<LogContext, ApiError>;

    /// The signed-in user of this request.
    async fn session(&self, request: &Parts) -> Result<SessionInfo, ApiError>;
    /// Sets a new password; answers the `Set-Cookie` value of the new session.
    async fn change_password(&self, request: &Parts, change: PasswordChange) -> Result<String, ApiError>;
    async fn users(&self, request: &Parts) -> Result<Vec<User>, ApiError>;
    async fn create_user(&self, request: &Parts, user: NewUser) -> Result<User, ApiError>;
    async fn update_user(&self, request: &Parts, id: i64, update: UserUpdate) -> Result<User, ApiError>;
    /// Every token, or with `personal` the caller's own.
    async fn tokens(&self, request: &Parts, personal: bool) -> Result<Vec<TokenInfo>, ApiError>;
    async fn create_token(&self, request: &Parts, token: NewToken, personal: bool) -> Result<CreatedToken, ApiError>;
    async fn revoke_token(&self, request: &Parts, id: i64, personal: bool) -> Result<(), ApiError>;
    async fn audit(&self, request: &Parts, query: AuditQuery) -> Result<AuditPage, ApiError>;
    /// A PromQL range query (times in Unix seconds; the step chosen when absent).
    async fn query_range(
        &self,
        query: String,
        start: f64,
        end: f64,
        step: Option<f64>,
    ) -> Result<QueryResult, ApiError>;
    /// Values of a label (`__name__` gives the metric names), for autocompletion.
    async fn label_values(&self, label: String) -> Result<Vec<String>, ApiError>;
    /// An instant PromQL query (now).
    async fn query_instant(&self, query: String) -> Result<QueryResult, ApiError>;
    /// Values of `label` among the series matching `selector` (all series when empty).
    async fn label_values_matching(&self, label: String, selector: String) -> Result<Vec<String>, ApiError>;
    /// Stored dashboards, then the generated ones (whose uid is `builtin/hosts`, ...).
    async fn dashboards(&self) -> Result<Vec<DashboardSummary>, ApiError>;
    /// A stored dashboard's spec by uid, or a generated one by `builtin/...`.
    async fn dashboard(&self, uid: String) -> Result<DashboardSpec, ApiError>;
    /// Every configured service's health now.
    async fn overview(&self) -> Result<Vec<ServiceHealth>, ApiError>;
    /// A stored dashboard with its version, for editing.
    async fn stored_dashboard(&self, uid: String) -> Result<vigil_proto::dashboards::Dashboard, ApiError>;
    /// Saves a new dashboard (`uid` None) or a new version of one.
    async fn save_dashboard(
        &self,
        request: &Parts,
        uid: Option<String>,
        version: i64,
        spec: DashboardSpec,
    ) -> Result<vigil_proto::dashboards::Dashboard, ApiError>;
    async fn delete_dashboard(&self, request: &Parts, uid: String) -> Result<(), ApiError>;
    async fn duplicate_dashboard(
        &self,
        request: &Parts,
        uid: String,
    ) -> Result<vigil_proto::dashboards::Dashboard, ApiError>;
    async fn import_dashboard(
        &self,
        request: &Parts,
        document: vigil_proto::dashboards::DashboardExport,
        overwrite: bool,
    ) -> Result<vigil_proto::dashboards::Dashboard, ApiError>;
    /// Every agent that reported, with its state.
    async fn agents(&self) -> Result<Vec<vigil_proto::agents::AgentStatus>, ApiError>;
    /// Label names of the series matching `selector` (all series when empty), for
    /// autocompletion.
    async fn label_names(&self, selector: String) -> Result<Vec<String>, ApiError>;
    /// Whether single sign-on is on; `detailed` (administrators) adds the issuer and checks it.
    async fn sso_status(&self, request: &Parts, detailed: bool) -> Result<SsoStatus, ApiError>;
    /// The alerts, firing first, then pending, then resolved.
    async fn alerts(&self, query: AlertQuery) -> Result<AlertPage, ApiError>;
    /// An alert with its timeline and its notifications.
    async fn alert_detail(&self, fingerprint: String) -> Result<AlertDetail, ApiError>;
    async fn alert_rules(&self) -> Result<Vec<AlertRule>, ApiError>;
    /// Acknowledges a firing alert as the caller (deployers and administrators).
    async fn acknowledge_alert(&self, request: &Parts, fingerprint: String, note: String) -> Result<Alert, ApiError>;
    async fn alert_rule(&self, id: i64) -> Result<AlertRule, ApiError>;
    /// Creates a rule (`id` None) or changes one, as the caller (deployers and administrators).
    async fn save_alert_rule(
        &self,
        request: &Parts,
        id: Option<i64>,
        spec: AlertRuleSpec,
    ) -> Result<AlertRule, ApiError>;
    async fn delete_alert_rule(&self, request: &Parts, id: i64) -> Result<(), ApiError>;
    /// A rule evaluated now and over the last hours, unsaved.
    async fn preview_alert_rule(&self, request: RulePreviewRequest) -> Result<RulePreview, ApiError>;
    /// A made-up alert through the channel now, as the caller (deployers and administrators).
    async fn send_test_notification(&self, request: &Parts, channel: String) -> Result<(), ApiError>;
    /// The silences not ended, and those ended lately, each with the alerts it silences.
    async fn silences(&self) -> Result<Vec<Silence>, ApiError>;
    /// The current alerts the matchers would silence.
    async fn preview_silence(&self, matchers: Vec<Matcher>) -> Result<Vec<Alert>, ApiError>;
    /// A new silence whose creator is the caller (deployers and administrators).
    async fn create_silence(&self, request: &Parts, write: SilenceWrite) -> Result<Silence, ApiError>;
    /// Ends a silence now, as the caller (deployers and administrators).
    async fn expire_silence(&self, request: &Parts, id: String) -> Result<(), ApiError>;
    /// When alerts fired within a time range, for annotations on charts.
    async fn alert_annotations(&self, query: AnnotationQuery) -> Result<Vec<AlertAnnotation>, ApiError>;
    /// Every service with its environments, versions and gates.
    async fn services(&self) -> Result<Vec<Service>, ApiError>;
    async fn service(&self, name: String) -> Result<Service, ApiError>;
    /// A page of rollouts, newest first.
    async fn rollouts(&self, query: RolloutQuery) -> Result<RolloutPage, ApiError>;
    /// A rollout with its timeline, its gates' analysis and the alerts that fired meanwhile.
    async fn rollout(&self, id: i64) -> Result<RolloutDetail, ApiError>;
    /// Deploys a version as the caller (deployers and administrators).
    async fn start_rollout(&self, request: &Parts, rollout: RolloutRequest) -> Result<Rollout, ApiError>;
    /// Approves another person's rollout as the caller (deployers and administrators).
    async fn approve_rollout(&self, request: &Parts, id: i64) -> Result<Rollout, ApiError>;
    /// Aborts a rollout as the caller (deployers and administrators).
    async fn abort_rollout(&self, request: &Parts, id: i64) -> Result<Rollout, ApiError>;
    /// Rolls an environment back to its previous good version as the caller.
    async fn roll_back(&self, request: &Parts, service: String, environment: String) -> Result<Rollout, ApiError>;
    /// Saves a service as the caller (administrators): a new one when `existing` is None, else
    /// the service `existing` replaced.
    async fn save_service(
        &self,
        request: &Parts,
        existing: Option<String>,
        write: vigil_proto::rollouts::ServiceWrite,
    ) -> Result<Service, ApiError>;
    /// When rollouts ran within a time range, for annotations on charts.
    async fn deploy_annotations(&self, query: DeployAnnotationQuery) -> Result<Vec<DeployAnnotation>, ApiError>;
}

/// The context value: a cloneable handle on the backend's services.
#[derive(Clone)]
pub struct Services(pub Arc<dyn UiServices>);

pub fn services() -> Result<Arc<dyn UiServices>, UiError> {
    use_context::<Services>()
        .map(|services| services.0)
        .ok_or_else(|| UiError::internal("the server did not provide the UI services"))
}

/// The head of the request being served.
pub fn request() -> Result<Parts, UiError> {
    use_context::<Parts>().ok_or_else(|| UiError::internal("no request in context"))
}
