//! The port through which server functions reach the backend (server side only).
//!
//! The backend implements [`UiServices`] and provides it as Leptos context with
//! `leptos_routes_with_context`; server functions fetch it with [`services`].

use std::sync::Arc;

use leptos::prelude::*;
use vigil_proto::{ApiError, ContextQuery, HistogramQuery, LogContext, LogHistogram, LogPage, LogQuery};

#[async_trait::async_trait]
pub trait UiServices: Send + Sync + 'static {
    async fn search_logs(&self, query: LogQuery) -> Result<LogPage, ApiError>;
    async fn log_histogram(&self, query: HistogramQuery) -> Result<LogHistogram, ApiError>;
    async fn log_context(&self, query: ContextQuery) -> Result<LogContext, ApiError>;
}

/// The context value: a cloneable handle on the backend's services.
#[derive(Clone)]
pub struct Services(pub Arc<dyn UiServices>);

pub fn services() -> Result<Arc<dyn UiServices>, ServerFnError> {
    use_context::<Services>()
        .map(|services| services.0)
        .ok_or_else(|| ServerFnError::new("the server did not provide the UI services"))
}
