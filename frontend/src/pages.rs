//! One component per page of the navigation.

mod accounts;
mod agents;
mod alert_rules;
mod alerts;
mod dashboard_editor;
mod dashboards;
mod explore;
mod logs;
mod overview;
mod rollouts;
mod silences;

pub use accounts::{AccountPage, LoginPage, SettingsPage};
pub use agents::AgentsPage;
pub use alert_rules::AlertRulePage;
pub use alerts::AlertsPage;
pub use dashboard_editor::DashboardEditPage;
pub use dashboards::{DashboardPage, DashboardsPage};
pub use explore::MetricsPage;
pub use logs::LogsPage;
pub use overview::OverviewPage;
pub use rollouts::{RolloutPage, RolloutsPage, ServicePage};
pub use silences::SilencesPage;

use leptos::prelude::*;

/// `42 s ago`, `3 min ago`, `2 h ago`, from seconds.
pub(crate) fn ago(seconds: i64) -> String {
    match seconds.max(0) {
        seconds if seconds < 90 => format!("{seconds} s ago"),
        seconds if seconds < 90 * 60 => format!("{} min ago", seconds / 60),
        seconds if seconds < 48 * 3600 => format!("{} h ago", seconds / 3600),
        seconds => format!("{} days ago", seconds / 86400),
    }
}

/// `in 42 s`, `in 12 min`, `in 3 h`, `in 2 days`, from seconds ahead.
pub(crate) fn ahead(seconds: i64) -> String {
    match seconds.max(0) {
        seconds if seconds < 90 => format!("in {seconds} s"),
        seconds if seconds < 90 * 60 => format!("in {} min", (seconds + 59) / 60),
        seconds if seconds < 48 * 3600 => format!("in {} h", seconds / 3600),
        seconds => format!("in {} days", seconds / 86400),
    }
}

/// `10,000`: a count with its thousands apart.
pub(crate) fn grouped(count: u64) -> String {
    let digits = count.to_string();
    let mut text = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            text.push(',');
        }
        text.push(digit);
    }
    text
}

/// A label value quoted for a selector (`"say \"hi\""`), as `parse_matchers` reads it back.
pub(crate) fn quoted(value: &str) -> String {
    let mut text = String::with_capacity(value.len() + 2);
    text.push('"');
    for character in value.chars() {
        match character {
            '\\' => text.push_str("\\\\"),
            '"' => text.push_str("\\\""),
            '\n' => text.push_str("\\n"),
            other => text.push(other),
        }
    }
    text.push('"');
    text
}

/// Now, in Unix nanoseconds: the browser's clock once hydrated, the server's while rendering.
pub(crate) fn now_nanos() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        (js_sys::Date::now() * 1e6) as i64
    }
    #[cfg(all(feature = "ssr", not(feature = "hydrate")))]
    {
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() as i64
    }
    #[cfg(not(any(feature = "ssr", feature = "hydrate")))]
    {
        0
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

/// A query's error under its box: the message, and, for a syntax error, the query with the
/// place it went wrong marked (`position` is a byte offset).
#[component]
pub(crate) fn QueryError(error: crate::error::UiError, query: String) -> impl IntoView {
    let marked = error.position().and_then(|position| {
        let mut at = usize::try_from(position).ok()?.min(query.len());
        while !query.is_char_boundary(at) {
            at -= 1;
        }
        let (before, rest) = query.split_at(at);
        let mut rest = rest.chars();
        let at_character = rest.next().map_or_else(|| " ".to_owned(), String::from);
        Some(view! {
            <pre class="query-position" data-position=position>
                {before.to_owned()}<mark>{at_character}</mark>{rest.as_str().to_owned()}
            </pre>
        })
    });
    view! {
        <div class="query-error-box">
            <p class="error query-error">{error.to_string()}</p>
            {marked}
        </div>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_ahead_and_counts_read_naturally() {
        assert_eq!(ahead(42), "in 42 s");
        assert_eq!(ahead(11 * 60 + 1), "in 12 min");
        assert_eq!(ahead(3 * 3600 + 5), "in 3 h");
        assert_eq!(ahead(-5), "in 0 s");
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(10_000), "10,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn quoted_values_parse_back() {
        for value in ["plain", "with \"quotes\"", "back\\slash", "line\nbreak", "a,b"] {
            let selector = format!("{{name={}}}", quoted(value));
            let matchers = vigil_proto::alerts::parse_matchers(&selector).unwrap();
            assert_eq!(matchers[0].value, value, "{selector}");
        }
    }
}
