//! The backend's side of the UI port: [`BackendServices`] implements the frontend's
//! `UiServices` over the backend's stores.

use std::sync::Arc;

use http::request::Parts;
use vigil_frontend::services::UiServices;
use vigil_proto::alerts::{
    Alert, AlertAnnotation, AlertDetail, AlertPage, AlertQuery, AlertRule, AlertRuleSpec, AnnotationQuery, Matcher,
    RulePreview, RulePreviewRequest, Silence, SilenceWrite,
};
use vigil_proto::auth::{
    AuditPage, AuditQuery, CreatedToken, NewToken, NewUser, PasswordChange, SessionInfo, SsoStatus, TokenInfo, User,
    UserUpdate,
};
use vigil_proto::dashboards::{
    Dashboard, DashboardExport, DashboardSpec, DashboardSummary, DashboardUpdate, NewDashboard, ServiceHealth,
};
use vigil_proto::metrics::QueryResult;
use vigil_proto::rollouts::{
    DeployAnnotation, DeployAnnotationQuery, Rollout, RolloutDetail, RolloutPage, RolloutQuery, RolloutRequest, Service,
};
use vigil_proto::{
    ApiError, ContextQuery, ErrorCode, HistogramQuery, LogContext, LogHistogram, LogPage, LogQuery, Timestamp,
};

use crate::accounts;
use crate::alerts;
use crate::auth::{Access, Caller, ClientInfo};
use crate::dashboards::builtin;
use crate::error::HttpError;
use crate::rollouts::{self, Requester};
use crate::search;
use crate::state::AppState;

pub struct BackendServices {
    state: Arc<AppState>,
}

impl BackendServices {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
}

/// The caller and client the authorization middleware put on the request.
fn caller(request: &Parts) -> Result<(&Caller, ClientInfo), ApiError> {
    let caller =
        request.extensions.get::<Caller>().ok_or_else(|| ApiError::new(ErrorCode::Unauthorized, "sign in first"))?;
    let client =
        request.extensions.get::<ClientInfo>().cloned().unwrap_or(ClientInfo { ip: None, user_agent: String::new() });
    Ok((caller, client))
}

/// The same, refused unless the caller has `access`: the server functions' path prefixes
/// guard only HTTP calls, not the calls made while a page renders on the server.
fn caller_with(request: &Parts, access: Access) -> Result<(&Caller, ClientInfo), ApiError> {
    let (caller, client) = caller(request)?;
    if caller.allows(access) {
        Ok((caller, client))
    } else {
        Err(ApiError::new(ErrorCode::Forbidden, format!("this needs {} access", access.as_str())))
    }
}

/// Who acts in a rollout: the caller, if they may deploy.
fn deployer(request: &Parts) -> Result<Requester, ApiError> {
    let (caller, client) = caller_with(request, Access::Deploy)?;
    Ok(Requester { actor: client.actor(Some(caller)), key: caller.key() })
}

/// A domain's error as the wire's, through the one mapping to HTTP.
fn domain(error: impl Into<HttpError>) -> ApiError {
    error.into().api_error().clone()
}

#[async_trait::async_trait]
impl UiServices for BackendServices {
    async fn search_logs(&self, query: LogQuery) -> Result<LogPage, ApiError> {
        search::search(self.state.log_store.as_ref(), query).await.map_err(domain)
    }

    async fn log_histogram(&self, query: HistogramQuery) -> Result<LogHistogram, ApiError> {
        let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
        search::histogram(self.state.log_store.as_ref(), &query, now).await.map_err(domain)
    }

    async fn log_context(&self, query: ContextQuery) -> Result<LogContext, ApiError> {
        search::context(self.state.log_store.as_ref(), &query).await.map_err(domain)
    }

    async fn session(&self, request: &Parts) -> Result<SessionInfo, ApiError> {
        let (caller, _) = caller(request)?;
        caller.session_info().ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "not a browser session"))
    }

    async fn change_password(&self, request: &Parts, change: PasswordChange) -> Result<String, ApiError> {
        let (caller, client) = caller(request)?;
        let state = &self.state;
        let session =
            accounts::change_password(&state.auth, &state.database, caller, &client, &change).await.map_err(domain)?;
        let cookie = crate::http::cookies::session(&state.auth, &session.value);
        Ok(cookie.to_str().unwrap_or_default().to_owned())
    }

    async fn users(&self, request: &Parts) -> Result<Vec<User>, ApiError> {
        caller_with(request, Access::Admin)?;
        accounts::users(&self.state.database).await.map_err(domain)
    }

    async fn create_user(&self, request: &Parts, user: NewUser) -> Result<User, ApiError> {
        let (caller, client) = caller_with(request, Access::Admin)?;
        let actor = client.actor(Some(caller));
        accounts::create_user(&self.state.auth, &self.state.database, &actor, &user).await.map_err(domain)
    }

    async fn update_user(&self, request: &Parts, id: i64, update: UserUpdate) -> Result<User, ApiError> {
        let (caller, client) = caller_with(request, Access::Admin)?;
        let actor = client.actor(Some(caller));
        accounts::update_user(&self.state.auth, &self.state.database, &actor, id, &update).await.map_err(domain)
    }

    async fn tokens(&self, request: &Parts, personal: bool) -> Result<Vec<TokenInfo>, ApiError> {
        let (caller, _) = caller_with(request, if personal { Access::Account } else { Access::Admin })?;
        let owner = if personal { Some(accounts::personal_owner(caller).map_err(domain)?) } else { None };
        accounts::tokens(&self.state.database, owner).await.map_err(domain)
    }

    async fn create_token(&self, request: &Parts, token: NewToken, personal: bool) -> Result<CreatedToken, ApiError> {
        let (caller, client) = caller_with(request, if personal { Access::Account } else { Access::Admin })?;
        let owner = if personal { Some(accounts::personal_owner(caller).map_err(domain)?) } else { None };
        let actor = client.actor(Some(caller));
        accounts::create_token(&self.state.auth, &self.state.database, &actor, &token, owner).await.map_err(domain)
    }

    async fn revoke_token(&self, request: &Parts, id: i64, personal: bool) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, if personal { Access::Account } else { Access::Admin })?;
        let owner = if personal { Some(accounts::personal_owner(caller).map_err(domain)?) } else { None };
        let actor = client.actor(Some(caller));
        accounts::revoke_token(&self.state.auth, &self.state.database, &actor, id, owner).await.map_err(domain)
    }

    async fn audit(&self, request: &Parts, query: AuditQuery) -> Result<AuditPage, ApiError> {
        caller_with(request, Access::Admin)?;
        accounts::audit_page(&self.state.database, &query).await.map_err(domain)
    }

    async fn sso_status(&self, request: &Parts, detailed: bool) -> Result<SsoStatus, ApiError> {
        if detailed {
            caller_with(request, Access::Admin)?;
        }
        let Some(oidc) = self.state.auth.oidc() else {
            return Ok(SsoStatus { enabled: false, label: String::new(), issuer: None, problem: None });
        };
        let mut status = SsoStatus { enabled: true, label: oidc.config().label.clone(), issuer: None, problem: None };
        if detailed {
            status.issuer = Some(oidc.config().issuer_url.clone());
            status.problem = oidc.check().await.err().map(|error| error.to_string());
        }
        Ok(status)
    }

    async fn query_range(
        &self,
        query: String,
        start: f64,
        end: f64,
        step: Option<f64>,
    ) -> Result<QueryResult, ApiError> {
        self.state.prometheus.range(&query, start, end, step).await.map_err(domain)
    }

    async fn label_values(&self, label: String) -> Result<Vec<String>, ApiError> {
        self.state.prometheus.label_values(&label, &[], None, None).await.map_err(domain)
    }

    async fn label_names(&self, selector: String) -> Result<Vec<String>, ApiError> {
        let matchers: Vec<String> = if selector.trim().is_empty() { Vec::new() } else { vec![selector] };
        self.state.prometheus.labels(&matchers, None, None).await.map_err(domain)
    }

    async fn query_instant(&self, query: String) -> Result<QueryResult, ApiError> {
        self.state.prometheus.instant(&query, None).await.map_err(domain)
    }

    async fn label_values_matching(&self, label: String, selector: String) -> Result<Vec<String>, ApiError> {
        let matchers: Vec<String> = if selector.trim().is_empty() { Vec::new() } else { vec![selector] };
        self.state.prometheus.label_values(&label, &matchers, None, None).await.map_err(domain)
    }

    async fn dashboards(&self) -> Result<Vec<DashboardSummary>, ApiError> {
        let mut list = crate::dashboards::summaries(&self.state.database).await.map_err(domain)?;
        list.extend(
            builtin::summaries(&self.state.config.services)
                .into_iter()
                .map(|summary| DashboardSummary { uid: format!("builtin/{}", summary.uid), ..summary }),
        );
        Ok(list)
    }

    async fn dashboard(&self, uid: String) -> Result<DashboardSpec, ApiError> {
        if let Some(generated) =
            uid.strip_prefix("builtin/").and_then(|path| builtin::find(&self.state.config.services, path))
        {
            return generated.map_err(domain);
        }
        Ok(crate::dashboards::get(&self.state.database, &uid).await.map_err(domain)?.spec)
    }

    async fn stored_dashboard(&self, uid: String) -> Result<Dashboard, ApiError> {
        crate::dashboards::get(&self.state.database, &uid).await.map_err(domain)
    }

    async fn save_dashboard(
        &self,
        request: &Parts,
        uid: Option<String>,
        version: i64,
        spec: DashboardSpec,
    ) -> Result<Dashboard, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        match uid {
            None => {
                let new = NewDashboard { uid: None, spec };
                crate::dashboards::create(&self.state.database, &client.actor(Some(caller)), &new).await.map_err(domain)
            }
            Some(uid) => {
                let update = DashboardUpdate { version, spec };
                crate::dashboards::update(&self.state.database, &client.actor(Some(caller)), &uid, &update)
                    .await
                    .map_err(domain)
            }
        }
    }

    async fn delete_dashboard(&self, request: &Parts, uid: String) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        crate::dashboards::delete(&self.state.database, &client.actor(Some(caller)), &uid).await.map_err(domain)
    }

    async fn duplicate_dashboard(&self, request: &Parts, uid: String) -> Result<Dashboard, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        crate::dashboards::duplicate(&self.state.database, &client.actor(Some(caller)), &uid, None)
            .await
            .map_err(domain)
    }

    async fn import_dashboard(
        &self,
        request: &Parts,
        document: DashboardExport,
        overwrite: bool,
    ) -> Result<Dashboard, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        let actor = client.actor(Some(caller));
        let (_, dashboard) =
            crate::dashboards::import(&self.state.database, &actor, &document, overwrite).await.map_err(domain)?;
        Ok(dashboard)
    }

    async fn agents(&self) -> Result<Vec<vigil_proto::agents::AgentStatus>, ApiError> {
        crate::agents::statuses(&self.state.database).await.map_err(domain)
    }

    async fn overview(&self) -> Result<Vec<ServiceHealth>, ApiError> {
        let mut services = Vec::new();
        for service in &self.state.config.services {
            let state = &self.state;
            services.push(builtin::health(&state.prometheus, state.log_store.as_ref(), &state.database, service).await);
        }
        Ok(services)
    }

    async fn alerts(&self, query: AlertQuery) -> Result<AlertPage, ApiError> {
        alerts::list(&self.state.database, &query).await.map_err(domain)
    }

    async fn alert_detail(&self, fingerprint: String) -> Result<AlertDetail, ApiError> {
        alerts::detail(&self.state.database, &fingerprint).await.map_err(domain)
    }

    async fn alert_rules(&self) -> Result<Vec<AlertRule>, ApiError> {
        alerts::list_rules(&self.state.database).await.map_err(domain)
    }

    async fn acknowledge_alert(&self, request: &Parts, fingerprint: String, note: String) -> Result<Alert, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        let actor = client.actor(Some(caller));
        let config = &self.state.config.alerts;
        alerts::acknowledge(&self.state.database, config, &actor, &fingerprint, &note).await.map_err(domain)
    }

    async fn alert_rule(&self, id: i64) -> Result<AlertRule, ApiError> {
        alerts::get_rule(&self.state.database, id).await.map_err(domain)
    }

    async fn save_alert_rule(
        &self,
        request: &Parts,
        id: Option<i64>,
        spec: AlertRuleSpec,
    ) -> Result<AlertRule, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        let actor = client.actor(Some(caller));
        let (database, log_store) = (&self.state.database, self.state.log_store.as_ref());
        match id {
            None => alerts::create_rule(database, log_store, &actor, spec).await,
            Some(id) => alerts::update_rule(database, log_store, &actor, id, spec).await,
        }
        .map_err(domain)
    }

    async fn delete_alert_rule(&self, request: &Parts, id: i64) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        alerts::delete_rule(&self.state.database, &client.actor(Some(caller)), id).await.map_err(domain)
    }

    async fn preview_alert_rule(&self, request: RulePreviewRequest) -> Result<RulePreview, ApiError> {
        alerts::preview::preview(&self.state.prometheus, self.state.log_store.as_ref(), &request).await.map_err(domain)
    }

    async fn send_test_notification(&self, request: &Parts, channel: String) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        let actor = client.actor(Some(caller));
        let state = &self.state;
        let external_url = &state.config.alerts.external_url;
        alerts::send_test(&state.database, &state.secrets, &state.notify_http, &actor, &channel, external_url)
            .await
            .map_err(domain)
    }

    async fn silences(&self) -> Result<Vec<Silence>, ApiError> {
        alerts::silences::list(&self.state.database).await.map_err(domain)
    }

    async fn preview_silence(&self, matchers: Vec<Matcher>) -> Result<Vec<Alert>, ApiError> {
        alerts::silences::preview(&self.state.database, &matchers).await.map_err(domain)
    }

    async fn create_silence(&self, request: &Parts, write: SilenceWrite) -> Result<Silence, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        let actor = client.actor(Some(caller));
        alerts::silences::save(&self.state.database, &actor, None, &caller.actor_name(), &write).await.map_err(domain)
    }

    async fn expire_silence(&self, request: &Parts, id: String) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        alerts::silences::expire(&self.state.database, &client.actor(Some(caller)), &id).await.map_err(domain)
    }

    async fn alert_annotations(&self, query: AnnotationQuery) -> Result<Vec<AlertAnnotation>, ApiError> {
        alerts::annotations(&self.state.database, &query).await.map_err(domain)
    }

    async fn services(&self) -> Result<Vec<Service>, ApiError> {
        rollouts::list_services(&self.state.database).await.map_err(domain)
    }

    async fn service(&self, name: String) -> Result<Service, ApiError> {
        rollouts::get_service(&self.state.database, &name).await.map_err(domain)
    }

    async fn rollouts(&self, query: RolloutQuery) -> Result<RolloutPage, ApiError> {
        rollouts::list(&self.state.database, &query).await.map_err(domain)
    }

    async fn rollout(&self, id: i64) -> Result<RolloutDetail, ApiError> {
        rollouts::detail(&self.state.database, id).await.map_err(domain)
    }

    async fn start_rollout(&self, request: &Parts, rollout: RolloutRequest) -> Result<Rollout, ApiError> {
        rollouts::start(&self.state.database, &deployer(request)?, &rollout).await.map_err(domain)
    }

    async fn approve_rollout(&self, request: &Parts, id: i64) -> Result<Rollout, ApiError> {
        rollouts::approve(&self.state.database, &deployer(request)?, id).await.map_err(domain)
    }

    async fn abort_rollout(&self, request: &Parts, id: i64) -> Result<Rollout, ApiError> {
        let requester = deployer(request)?;
        let state = &self.state;
        rollouts::abort(&state.database, &state.secrets, &state.provider_http, &requester, id).await.map_err(domain)
    }

    async fn roll_back(&self, request: &Parts, service: String, environment: String) -> Result<Rollout, ApiError> {
        rollouts::roll_back(&self.state.database, &deployer(request)?, &service, &environment).await.map_err(domain)
    }

    async fn save_service(
        &self,
        request: &Parts,
        existing: Option<String>,
        write: vigil_proto::rollouts::ServiceWrite,
    ) -> Result<Service, ApiError> {
        let (caller, client) = caller_with(request, Access::Admin)?;
        let actor = client.actor(Some(caller));
        let state = &self.state;
        let (log_store, http) = (state.log_store.as_ref(), &state.provider_http);
        rollouts::save_service(&state.database, log_store, http, &actor, existing.as_deref(), &write)
            .await
            .map_err(domain)
    }

    async fn deploy_annotations(&self, query: DeployAnnotationQuery) -> Result<Vec<DeployAnnotation>, ApiError> {
        rollouts::annotations(&self.state.database, &query).await.map_err(domain)
    }
}
