//! One component per page of the navigation.

mod accounts;
mod dashboards;
mod explore;
mod logs;

pub use accounts::{AccountPage, LoginPage, SettingsPage};
pub use dashboards::{DashboardPage, DashboardsPage};
pub use explore::MetricsPage;
pub use logs::LogsPage;

use leptos::prelude::*;

/// A page whose capability has not been built yet.
#[component]
pub fn NotBuiltYet(title: &'static str) -> impl IntoView {
    view! {
        <h1>{title}</h1>
        <p class="placeholder">"Not built yet."</p>
    }
}
