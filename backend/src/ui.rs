//! The backend's side of the UI port: [`BackendServices`] implements the frontend's
//! `UiServices` over the backend's stores.

use std::sync::Arc;

use http::request::Parts;
use vigil_frontend::services::UiServices;
use vigil_proto::auth::{
    AuditPage, AuditQuery, CreatedToken, NewToken, NewUser, PasswordChange, SessionInfo, SsoStatus, TokenInfo, User,
    UserUpdate,
};
use vigil_proto::dashboards::{
    Dashboard, DashboardExport, DashboardSpec, DashboardSummary, DashboardUpdate, NewDashboard, ServiceHealth,
};
use vigil_proto::metrics::QueryResult;
use vigil_proto::{
    ApiError, ContextQuery, ErrorCode, HistogramQuery, LogContext, LogHistogram, LogPage, LogQuery, Timestamp,
};

use crate::auth::{Access, Caller, ClientInfo};
use crate::error::HttpError;
use crate::routes::logs::{histogram_plan, validate_query};
use crate::routes::{account, admin, dashboards};
use crate::startup::AppState;

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

fn api(error: HttpError) -> ApiError {
    error.api_error().clone()
}

#[async_trait::async_trait]
impl UiServices for BackendServices {
    async fn search_logs(&self, query: LogQuery) -> Result<LogPage, ApiError> {
        validate_query(&query).map_err(|error| error.api_error().clone())?;
        self.state.log_store.search(query).await.map_err(|error| HttpError::from(error).api_error().clone())
    }

    async fn log_histogram(&self, query: HistogramQuery) -> Result<LogHistogram, ApiError> {
        let now = Timestamp::from_offset_date_time(time::OffsetDateTime::now_utc())
            .map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))?;
        let (query, interval) = histogram_plan(&query, now).map_err(|error| error.api_error().clone())?;
        self.state
            .log_store
            .histogram(query, interval)
            .await
            .map_err(|error| HttpError::from(error).api_error().clone())
    }

    async fn log_context(&self, query: ContextQuery) -> Result<LogContext, ApiError> {
        let before = query.before.unwrap_or(5).min(100) as usize;
        let after = query.after.unwrap_or(5).min(100) as usize;
        match self.state.log_store.context(query.id, before, after).await {
            Ok(Some(context)) => Ok(context),
            Ok(None) => Err(ApiError::new(ErrorCode::NotFound, format!("no record has id {}", query.id))),
            Err(error) => Err(HttpError::from(error).api_error().clone()),
        }
    }

    async fn session(&self, request: &Parts) -> Result<SessionInfo, ApiError> {
        let (caller, _) = caller(request)?;
        caller.session_info().ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "not a browser session"))
    }

    async fn change_password(&self, request: &Parts, change: PasswordChange) -> Result<String, ApiError> {
        let (caller, client) = caller(request)?;
        let session = account::change_password_as(&self.state, caller, &client, &change).await.map_err(api)?;
        let cookie = self.state.auth.session_cookie(&session.value);
        Ok(cookie.to_str().unwrap_or_default().to_owned())
    }

    async fn users(&self, request: &Parts) -> Result<Vec<User>, ApiError> {
        caller_with(request, Access::Admin)?;
        admin::list_users(&self.state).await.map_err(api)
    }

    async fn create_user(&self, request: &Parts, user: NewUser) -> Result<User, ApiError> {
        let (caller, client) = caller_with(request, Access::Admin)?;
        admin::create_user_as(&self.state, caller, &client, &user).await.map_err(api)
    }

    async fn update_user(&self, request: &Parts, id: i64, update: UserUpdate) -> Result<User, ApiError> {
        let (caller, client) = caller_with(request, Access::Admin)?;
        admin::update_user_as(&self.state, caller, &client, id, &update).await.map_err(api)
    }

    async fn tokens(&self, request: &Parts, personal: bool) -> Result<Vec<TokenInfo>, ApiError> {
        let (caller, _) = caller_with(request, if personal { Access::Account } else { Access::Admin })?;
        let owner = if personal {
            Some(caller.user().ok_or_else(|| ApiError::new(ErrorCode::Forbidden, "only users have tokens"))?.id)
        } else {
            None
        };
        admin::list_tokens(&self.state, owner).await.map_err(api)
    }

    async fn create_token(&self, request: &Parts, token: NewToken, personal: bool) -> Result<CreatedToken, ApiError> {
        let (caller, client) = caller_with(request, if personal { Access::Account } else { Access::Admin })?;
        admin::create_token_as(&self.state, caller, &client, &token, personal).await.map_err(api)
    }

    async fn revoke_token(&self, request: &Parts, id: i64, personal: bool) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, if personal { Access::Account } else { Access::Admin })?;
        admin::revoke_token_as(&self.state, caller, &client, id, personal).await.map_err(api)
    }

    async fn audit(&self, request: &Parts, query: AuditQuery) -> Result<AuditPage, ApiError> {
        caller_with(request, Access::Admin)?;
        admin::audit_page(&self.state, &query).await.map_err(api)
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
        self.state.prometheus.range(&query, start, end, step).await
    }

    async fn label_values(&self, label: String) -> Result<Vec<String>, ApiError> {
        self.state.prometheus.label_values(&label, &[], None, None).await
    }

    async fn label_names(&self, selector: String) -> Result<Vec<String>, ApiError> {
        let matchers: Vec<String> = if selector.trim().is_empty() { Vec::new() } else { vec![selector] };
        self.state.prometheus.labels(&matchers, None, None).await
    }

    async fn query_instant(&self, query: String) -> Result<QueryResult, ApiError> {
        self.state.prometheus.instant(&query, None).await
    }

    async fn label_values_matching(&self, label: String, selector: String) -> Result<Vec<String>, ApiError> {
        let matchers: Vec<String> = if selector.trim().is_empty() { Vec::new() } else { vec![selector] };
        self.state.prometheus.label_values(&label, &matchers, None, None).await
    }

    async fn dashboards(&self) -> Result<Vec<DashboardSummary>, ApiError> {
        let rows = self.state.database.dashboards().await.map_err(|error| api(error.into()))?;
        let mut list: Vec<DashboardSummary> = rows
            .iter()
            .map(|row| DashboardSummary {
                uid: row.uid.clone(),
                title: row.title.clone(),
                tags: serde_json::from_str(&row.tags).unwrap_or_default(),
                version: row.version,
                updated_at: crate::auth::millis_to_timestamp(row.updated_at_millis),
            })
            .collect();
        let now = crate::auth::millis_to_timestamp(crate::store::now_millis());
        let builtin = |uid: String, spec: DashboardSpec| DashboardSummary {
            uid,
            title: spec.title,
            tags: spec.tags,
            version: 0,
            updated_at: now,
        };
        list.push(builtin("builtin/hosts".to_owned(), crate::metrics::builtin::hosts()));
        for service in &self.state.config.services {
            list.push(builtin(format!("builtin/services/{}", service.name), crate::metrics::builtin::service(service)));
        }
        Ok(list)
    }

    async fn dashboard(&self, uid: String) -> Result<DashboardSpec, ApiError> {
        if uid == "builtin/hosts" {
            return Ok(crate::metrics::builtin::hosts());
        }
        if let Some(name) = uid.strip_prefix("builtin/services/") {
            let service = self.state.config.services.iter().find(|service| service.name == name);
            return service
                .map(crate::metrics::builtin::service)
                .ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no service named {name:?} is configured")));
        }
        let row = self.state.database.dashboard(&uid).await.map_err(|error| api(error.into()))?;
        let row = row.ok_or_else(|| ApiError::new(ErrorCode::NotFound, format!("no dashboard has uid {uid:?}")))?;
        serde_json::from_str(&row.spec).map_err(|error| ApiError::new(ErrorCode::Internal, error.to_string()))
    }

    async fn stored_dashboard(&self, uid: String) -> Result<Dashboard, ApiError> {
        dashboards::stored(&self.state, &uid).await.map_err(api)
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
                dashboards::create_as(&self.state, caller, &client, &new).await.map_err(api)
            }
            Some(uid) => {
                let update = DashboardUpdate { version, spec };
                dashboards::update_as(&self.state, caller, &client, &uid, &update).await.map_err(api)
            }
        }
    }

    async fn delete_dashboard(&self, request: &Parts, uid: String) -> Result<(), ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        dashboards::delete_as(&self.state, caller, &client, &uid).await.map_err(api)
    }

    async fn duplicate_dashboard(&self, request: &Parts, uid: String) -> Result<Dashboard, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        dashboards::duplicate_as(&self.state, caller, &client, &uid, None).await.map_err(api)
    }

    async fn import_dashboard(
        &self,
        request: &Parts,
        document: DashboardExport,
        overwrite: bool,
    ) -> Result<Dashboard, ApiError> {
        let (caller, client) = caller_with(request, Access::Deploy)?;
        let (_, dashboard) =
            dashboards::import_as(&self.state, caller, &client, &document, overwrite).await.map_err(api)?;
        Ok(dashboard)
    }

    async fn agents(&self) -> Result<Vec<vigil_proto::agents::AgentStatus>, ApiError> {
        let rows = self.state.database.agents().await.map_err(|error| api(HttpError::from(error)))?;
        let now = crate::store::now_millis();
        Ok(rows.iter().filter_map(|row| crate::agents::status(row, now)).collect())
    }

    async fn overview(&self) -> Result<Vec<ServiceHealth>, ApiError> {
        let mut services = Vec::new();
        for service in &self.state.config.services {
            services.push(crate::metrics::builtin::health(&self.state, service).await);
        }
        Ok(services)
    }
}
