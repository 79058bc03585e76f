//! The document shell, the layout with its navigation, and the routes.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::components::{A, Outlet, ParentRoute, Route, Router, Routes};
use leptos_router::path;
use vigil_proto::paths;

use crate::accounts::current_session;
use crate::alerts::unacknowledged_firing_count;
use crate::pages::{
    AccountPage, AgentsPage, AlertRulePage, AlertsPage, DashboardEditPage, DashboardPage, DashboardsPage, LoginPage,
    LogsPage, MetricsPage, OverviewPage, RolloutPage, RolloutsPage, ServicePage, SettingsPage, SilencesPage,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                // The chart library, before the bundle that draws with it.
                <link rel="stylesheet" href="/pkg/uplot.css"/>
                <script src="/pkg/uplot.js"></script>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

const NAVIGATION: [(&str, &str); 8] = [
    ("/", "Overview"),
    ("/logs", "Logs"),
    // `/metrics` is the backend's own Prometheus exposition, so the explorer lives at `/explore`.
    ("/explore", "Metrics"),
    ("/dashboards", "Dashboards"),
    ("/alerts", "Alerts"),
    ("/rollouts", "Rollouts"),
    ("/agents", "Agents"),
    ("/settings", "Settings"),
];

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="vigil" href="/pkg/vigil.css"/>
        <Title text="Vigil"/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/login") view=LoginPage/>
                <ParentRoute path=path!("") view=Layout>
                    <Route path=path!("") view=OverviewPage/>
                    <Route path=path!("logs") view=LogsPage/>
                    <Route path=path!("explore") view=MetricsPage/>
                    <Route path=path!("dashboards") view=DashboardsPage/>
                    <Route path=path!("dashboard") view=DashboardPage/>
                    <Route path=path!("dashboard/edit") view=DashboardEditPage/>
                    <Route path=path!("alerts") view=AlertsPage/>
                    // Before `alerts/:fingerprint`: the first route that matches wins.
                    <Route path=path!("alerts/silences") view=SilencesPage/>
                    <Route path=path!("alerts/rules/new") view=AlertRulePage/>
                    <Route path=path!("alerts/rules/:id") view=AlertRulePage/>
                    // Where notifications link an alert.
                    <Route path=path!("alerts/:fingerprint") view=AlertsPage/>
                    <Route path=path!("rollouts") view=RolloutsPage/>
                    <Route path=path!("rollouts/:id") view=RolloutPage/>
                    <Route path=path!("services/:name") view=ServicePage/>
                    <Route path=path!("agents") view=AgentsPage/>
                    <Route path=path!("settings") view=SettingsPage/>
                    <Route path=path!("account") view=AccountPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

/// The layout around every page but the login page.
#[component]
fn Layout() -> impl IntoView {
    view! {
        <Frame>
            <Outlet/>
        </Frame>
    }
}

/// What an unknown URL shows: the layout, and a way back.
#[component]
fn NotFound() -> impl IntoView {
    let location = leptos_router::hooks::use_location();
    view! {
        <Title text="Page not found · Vigil"/>
        <Frame>
            <h1>"Page not found"</h1>
            <p class="not-found">
                "There is no page at " <code>{move || location.pathname.get()}</code> ". "
                <A href="/">"Back to the overview"</A>
            </p>
        </Frame>
    }
}

/// How often the live parts of the UI (the alerts, their count in the navigation) refresh.
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
const LIVE_REFRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// The live tick: a counter that moves on every [`LIVE_REFRESH`] in the browser (never while
/// rendering on the server), provided as context by the layout so that one timer serves the
/// navigation and the page. What refreshes with it reads it in its resource's source; a page
/// moves it on to refresh everything at once (after an acknowledgement, say).
#[derive(Clone, Copy)]
struct LiveTick(RwSignal<u64>);

/// The layout's live tick, or a new one (with its timer) where there is none yet.
pub(crate) fn live_tick() -> RwSignal<u64> {
    if let Some(LiveTick(tick)) = use_context::<LiveTick>() {
        return tick;
    }
    let tick = RwSignal::new(0_u64);
    #[cfg(feature = "hydrate")]
    if let Ok(handle) = set_interval_with_handle(move || tick.update(|tick| *tick += 1), LIVE_REFRESH) {
        on_cleanup(move || handle.clear());
    }
    provide_context(LiveTick(tick));
    tick
}

/// The number of firing alerts nobody has acknowledged, next to "Alerts"; nothing at 0.
#[component]
fn FiringCount() -> impl IntoView {
    let tick = live_tick();
    let count = Resource::new(move || tick.get(), |_| unacknowledged_firing_count());
    view! {
        <Transition fallback=|| ()>
            {move || {
                count.get().and_then(Result::ok).filter(|count| *count > 0).map(|count| {
                    view! { <span class="nav-count" title="firing, not acknowledged">{count}</span> }
                })
            }}
        </Transition>
    }
}

/// The navigation, the signed-in user and the page.
#[component]
fn Frame(children: Children) -> impl IntoView {
    live_tick();
    let session = Resource::new(|| (), |_| current_session());
    view! {
        <div class="layout">
            <nav class="sidebar">
                <span class="brand">"Vigil"</span>
                <ul>
                    {NAVIGATION
                        .into_iter()
                        .map(|(href, label)| {
                            let alerts = href == "/alerts";
                            let count = alerts.then(|| view! { <FiringCount/> });
                            // The silences and the rule editor are the Alerts section too.
                            view! { <li><A href=href exact=!alerts>{label}{count}</A></li> }
                        })
                        .collect_view()}
                </ul>
                <div class="user-box">
                    <Suspense fallback=|| ()>
                        {move || {
                            session
                                .get()
                                .and_then(Result::ok)
                                .map(|session| {
                                    view! {
                                        <A href="/account" attr:class="current-user">{session.username}</A>
                                        <span class="role">{session.role.as_str()}</span>
                                    }
                                })
                        }}
                    </Suspense>
                    <form method="post" action=paths::AUTH_LOGOUT class="logout">
                        <button type="submit" class="sign-out">"Sign out"</button>
                    </form>
                </div>
            </nav>
            <main class="content">{children()}</main>
        </div>
    }
}
