//! The backend's side of the UI port: [`BackendServices`] implements the frontend's
//! `UiServices` over the backend's stores.

use std::sync::Arc;

use vigil_frontend::services::UiServices;
use vigil_proto::{
    ApiError, ContextQuery, ErrorCode, HistogramQuery, LogContext, LogHistogram, LogPage, LogQuery, Timestamp,
};

use crate::error::HttpError;
use crate::routes::logs::{histogram_plan, validate_query};
use crate::startup::AppState;

pub struct BackendServices {
    state: Arc<AppState>,
}

impl BackendServices {
    pub fn new(state: Arc<AppState>) -> Self {
        Self { state }
    }
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
}
