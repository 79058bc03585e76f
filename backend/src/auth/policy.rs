//! Who may call what: every route is registered with an [`Access`] through [`ApiRouter`], and
//! the one middleware [`super::authorize`] looks the matched route up in the resulting
//! [`Policy`]. A matched route without an entry is refused to everyone, so a route added past
//! the table fails closed.

use std::collections::HashMap;

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, on};
use vigil_proto::auth::{Role, Scope};

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Anyone: health, metrics, sign-in, static files.
    Public,
    /// Sending logs and metrics: `ingest` or `admin` tokens, administrators.
    Ingest,
    /// Reading anything but secrets: every user, `read`, `deploy` and `admin` tokens.
    Read,
    /// Rollouts and alert acknowledgements: deployers and administrators, `deploy` and `admin`
    /// tokens.
    Deploy,
    /// Users, tokens, integrations, rules, settings: administrators and `admin` tokens.
    Admin,
    /// The signed-in user's own account (password, personal tokens): a browser session only.
    Account,
    /// A UI page: a browser session; without one the browser is sent to the login page.
    Page,
}

impl Access {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Ingest => "ingest",
            Self::Read => "read",
            Self::Deploy => "deploy",
            Self::Admin => "admin",
            Self::Account => "a signed-in session",
            Self::Page => "a signed-in session",
        }
    }

    /// Whether a user of `role` may, given how they authenticated.
    pub fn allows_user(self, role: Role, by_session: bool) -> bool {
        match self {
            Self::Public | Self::Read => true,
            Self::Deploy => role >= Role::Deployer,
            Self::Ingest | Self::Admin => role == Role::Admin,
            Self::Account | Self::Page => by_session,
        }
    }

    pub fn allows_scope(self, scope: Scope) -> bool {
        match self {
            Self::Public => true,
            Self::Ingest => matches!(scope, Scope::Ingest | Scope::Admin),
            Self::Read => matches!(scope, Scope::Read | Scope::Deploy | Scope::Admin),
            Self::Deploy => matches!(scope, Scope::Deploy | Scope::Admin),
            Self::Admin => scope == Scope::Admin,
            Self::Account | Self::Page => false,
        }
    }
}

/// One route and what it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteAccess {
    pub method: Method,
    pub path: String,
    pub access: Access,
}

/// The access table of every route.
#[derive(Debug, Default, Clone)]
pub struct Policy {
    routes: HashMap<(Method, String), Access>,
}

impl Policy {
    pub fn insert(&mut self, method: Method, path: impl Into<String>, access: Access) {
        let previous = self.routes.insert((method.clone(), path.into()), access);
        assert!(previous.is_none(), "a route was given two access policies ({method})");
    }

    /// What `method` on the route pattern `path` needs; `HEAD` follows `GET`.
    pub fn access(&self, method: &Method, path: &str) -> Option<Access> {
        let method = if method == Method::HEAD { &Method::GET } else { method };
        self.routes.get(&(method.clone(), path.to_owned())).copied()
    }

    /// Whether some method of `path` has an entry (so another method is a 405, not a hole).
    pub fn knows_path(&self, path: &str) -> bool {
        self.routes.keys().any(|(_, known)| known == path)
    }

    /// Every route, sorted, for tests and documentation.
    pub fn routes(&self) -> Vec<RouteAccess> {
        let mut routes: Vec<_> = self
            .routes
            .iter()
            .map(|((method, path), access)| RouteAccess { method: method.clone(), path: path.clone(), access: *access })
            .collect();
        routes.sort_by(|a, b| (&a.path, a.method.as_str()).cmp(&(&b.path, b.method.as_str())));
        routes
    }
}

/// A router that cannot be given a route without its access.
pub struct ApiRouter<S> {
    router: Router<S>,
    policy: Policy,
}

impl<S: Clone + Send + Sync + 'static> Default for ApiRouter<S> {
    fn default() -> Self {
        Self { router: Router::new(), policy: Policy::default() }
    }
}

impl<S: Clone + Send + Sync + 'static> ApiRouter<S> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn route<H, T>(mut self, method: Method, path: &str, access: Access, handler: H) -> Self
    where
        H: Handler<T, S>,
        T: 'static,
    {
        let filter = MethodFilter::try_from(method.clone()).expect("a method axum routes");
        self.router = self.router.route(path, on(filter, handler));
        self.policy.insert(method, path, access);
        self
    }

    pub fn get<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::GET, path, access, handler)
    }

    pub fn post<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::POST, path, access, handler)
    }

    pub fn put<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::PUT, path, access, handler)
    }

    pub fn patch<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::PATCH, path, access, handler)
    }

    pub fn delete<H: Handler<T, S>, T: 'static>(self, path: &str, access: Access, handler: H) -> Self {
        self.route(Method::DELETE, path, access, handler)
    }

    pub fn into_parts(self) -> (Router<S>, Policy) {
        (self.router, self.policy)
    }
}

/// The access of a UI server function, from the segment after the prefix:
/// `/ui/fn/<public|read|deploy|admin|account>/<name>`. Any other shape is refused to everyone.
pub fn server_function_access(path: &str) -> Option<Access> {
    let rest = path.strip_prefix(vigil_proto::paths::UI_FUNCTIONS)?.strip_prefix('/')?;
    let (segment, _) = rest.split_once('/')?;
    match segment {
        "public" => Some(Access::Public),
        "read" => Some(Access::Read),
        "deploy" => Some(Access::Deploy),
        "admin" => Some(Access::Admin),
        "account" => Some(Access::Account),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_scopes_grow_in_order() {
        for access in [Access::Read, Access::Deploy, Access::Admin, Access::Ingest] {
            let allowed: Vec<_> = Role::ALL.into_iter().filter(|role| access.allows_user(*role, true)).collect();
            let expected: &[Role] = match access {
                Access::Read => &Role::ALL,
                Access::Deploy => &[Role::Deployer, Role::Admin],
                _ => &[Role::Admin],
            };
            assert_eq!(allowed, expected, "{access:?}");
        }
        assert!(!Access::Account.allows_user(Role::Admin, false), "tokens do not act on the account");
        assert!(Access::Read.allows_scope(Scope::Deploy));
        assert!(!Access::Read.allows_scope(Scope::Ingest));
        assert!(!Access::Ingest.allows_scope(Scope::Read));
        assert!(!Access::Page.allows_scope(Scope::Admin));
    }

    #[test]
    fn server_functions_take_their_access_from_the_path() {
        assert_eq!(server_function_access("/ui/fn/read/search_logs"), Some(Access::Read));
        assert_eq!(server_function_access("/ui/fn/admin/users"), Some(Access::Admin));
        assert_eq!(server_function_access("/ui/fn/search_logs"), None);
        assert_eq!(server_function_access("/ui/fn/other/x"), None);
    }
}
