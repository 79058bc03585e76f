//! The backend's side of the UI port: [`BackendServices`] implements the frontend's
//! `UiServices` over the backend's stores.

use std::sync::Arc;

use vigil_frontend::services::UiServices;
use vigil_proto::{ApiError, LogPage, LogQuery};

use crate::error::HttpError;
use crate::routes::logs::validate_query;
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
}
