//! One component per page of the navigation.

mod accounts;
mod agents;
mod dashboard_editor;
mod dashboards;
mod explore;
mod logs;
mod overview;

pub use accounts::{AccountPage, LoginPage, SettingsPage};
pub use agents::AgentsPage;
pub use dashboard_editor::DashboardEditPage;
pub use dashboards::{DashboardPage, DashboardsPage};
pub use explore::MetricsPage;
pub use logs::LogsPage;
pub use overview::OverviewPage;

use leptos::prelude::*;

/// A page whose capability has not been built yet.
#[component]
pub fn NotBuiltYet(title: &'static str) -> impl IntoView {
    view! {
        <h1>{title}</h1>
        <p class="placeholder">"Not built yet."</p>
    }
}

/// Percent-encodes a query parameter's value (letters, digits and `-_.~` stay as they are).
pub(crate) fn encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (byte as char).to_string(),
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
