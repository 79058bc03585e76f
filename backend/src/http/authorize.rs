//! The middleware in front of every route: who is calling, and may they.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use vigil_proto::ErrorCode;

use super::cookies::{self, session_cookie_value};
use super::{header_text, percent_encode};
use crate::auth::{Access, Caller, ClientInfo, Policy, TOKEN_PREFIX};
use crate::error::HttpError;
use crate::state::AppState;

/// The header a browser session sends its CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The token in an `Authorization` header: `Bearer <token>`, or, for shippers that speak the
/// Elasticsearch API, `ApiKey <token>`, `ApiKey base64(<id>:<token>)` (Filebeat's `api_key`) and
/// `Basic base64(<user>:<token>)` (a password field), and a bare `vgl_` token.
pub fn presented_token(authorization: &str) -> Option<String> {
    use base64::Engine;
    let authorization = authorization.trim();
    // A bare token: what Prometheus 2.42 sends for `authorization: {credentials: ...}`
    // without a type.
    if authorization.starts_with(TOKEN_PREFIX) && !authorization.contains(' ') {
        return Some(authorization.to_owned());
    }
    let (scheme, credentials) = authorization.split_once(' ')?;
    let credentials = credentials.trim();
    let decoded_secret = || {
        let decoded = base64::engine::general_purpose::STANDARD.decode(credentials).ok()?;
        let text = String::from_utf8(decoded).ok()?;
        text.split_once(':').map(|(_, secret)| secret.to_owned())
    };
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Some(credentials.to_owned()),
        "apikey" if credentials.starts_with(TOKEN_PREFIX) => Some(credentials.to_owned()),
        "apikey" | "basic" => decoded_secret(),
        _ => None,
    }
}

/// Whether the request's `Origin` (or, without it, `Referer`) names this site: `None` when the
/// request carries neither.
pub fn same_origin(headers: &HeaderMap) -> Option<bool> {
    let origin = headers.get(header::ORIGIN).or_else(|| headers.get(header::REFERER))?.to_str().ok()?;
    let host = headers.get(header::HOST).and_then(|host| host.to_str().ok())?;
    let authority = origin.split_once("://").map(|(_, rest)| rest.split('/').next().unwrap_or_default());
    Some(authority.is_some_and(|authority| authority.eq_ignore_ascii_case(host)))
}

fn constant_time_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |difference, (x, y)| difference | (x ^ y)) == 0
}

fn is_unsafe(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn refuse(code: ErrorCode, message: impl Into<String>) -> Response {
    HttpError::new(code, message).into_response()
}

fn redirect_to_login(request: &Request, clear_cookie: Option<HeaderValue>) -> Response {
    let next = request.uri().path_and_query().map_or("/", |path| path.as_str());
    let location = format!("{}?next={}", vigil_proto::paths::LOGIN_PAGE, percent_encode(next));
    let mut response = (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response();
    if let Some(cookie) = clear_cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The middleware in front of every route: finds the route's [`Access`], authenticates the
/// caller (token first, then session cookie), checks cross-site requests, and puts [`Caller`]
/// and [`ClientInfo`] in the request's extensions.
pub async fn authorize(
    State((state, policy)): State<(Arc<AppState>, Arc<Policy>)>,
    mut request: Request,
    next: Next,
) -> Response {
    let client = ClientInfo {
        ip: request.extensions().get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()),
        user_agent: header_text(request.headers(), header::USER_AGENT).unwrap_or_default().to_owned(),
    };
    request.extensions_mut().insert(client);
    let Some(matched) = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned()) else {
        // No route matched: the fallback answers 404.
        return next.run(request).await;
    };
    let access = match policy.access(request.method(), &matched) {
        Some(access) => access,
        None if policy.knows_path(&matched) => return next.run(request).await,
        None => {
            tracing::error!(route = %matched, "route has no access policy, refused");
            return refuse(ErrorCode::Forbidden, "this route has no access policy");
        }
    };
    let headers = request.headers();
    if access == Access::Public {
        if is_unsafe(request.method()) && same_origin(headers) == Some(false) {
            return refuse(ErrorCode::Forbidden, "cross-site request refused");
        }
        return next.run(request).await;
    }

    let presented = header_text(headers, header::AUTHORIZATION).map(presented_token);
    let caller = match presented {
        Some(Some(token)) => match state.auth.token(&token).await {
            Ok(Some(caller)) => caller,
            Ok(None) => return refuse(ErrorCode::Unauthorized, "unknown, expired or revoked token"),
            Err(error) => return HttpError::internal(&error).into_response(),
        },
        Some(None) => {
            return refuse(ErrorCode::Unauthorized, "unsupported Authorization header: send Bearer <token>");
        }
        None => {
            let Some(cookie) = session_cookie_value(headers) else {
                return if access == Access::Page {
                    redirect_to_login(&request, None)
                } else {
                    refuse(ErrorCode::Unauthorized, "sign in, or send a token: Authorization: Bearer <token>")
                };
            };
            match state.auth.session(cookie).await {
                Ok(Some(caller)) => caller,
                Ok(None) if access == Access::Page => {
                    return redirect_to_login(&request, Some(cookies::cleared(&state.auth)));
                }
                Ok(None) => {
                    let mut response = refuse(ErrorCode::Unauthorized, "the session has ended; sign in again");
                    response.headers_mut().insert(header::SET_COOKIE, cookies::cleared(&state.auth));
                    return response;
                }
                Err(error) => return HttpError::internal(&error).into_response(),
            }
        }
    };

    if let Caller::Session { csrf_token, .. } = &caller {
        let headers = request.headers();
        let is_websocket =
            headers.get(header::UPGRADE).is_some_and(|upgrade| upgrade.as_bytes().eq_ignore_ascii_case(b"websocket"));
        let origin = same_origin(headers);
        let token_matches = header_text(headers, axum::http::HeaderName::from_static(CSRF_HEADER))
            .is_some_and(|presented| constant_time_equal(presented, csrf_token));
        let refused = if is_unsafe(request.method()) {
            !token_matches && origin != Some(true)
        } else {
            is_websocket && origin == Some(false)
        };
        if refused {
            return refuse(
                ErrorCode::Forbidden,
                "cross-site request refused: send the session's X-CSRF-Token header or an Origin of this site",
            );
        }
    }

    if !caller.allows(access) {
        let message = match &caller {
            Caller::ServiceToken { name, scope, .. } => {
                format!("token {name:?} has scope {} but this route needs {}", scope.as_str(), access.as_str())
            }
            Caller::PersonalToken { .. } if matches!(access, Access::Account | Access::Page) => {
                "this route needs a signed-in browser session, not a token".to_owned()
            }
            Caller::Session { user, .. } | Caller::PersonalToken { user, .. } => format!(
                "user {:?} has role {} but this route needs {}",
                user.username,
                user.role.as_str(),
                access.as_str()
            ),
        };
        return refuse(ErrorCode::Forbidden, message);
    }
    if let Some(info) = caller.session_info() {
        request.extensions_mut().insert(info);
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_bearer_api_key_and_basic_credentials() {
        use base64::Engine;
        let encode = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
        assert_eq!(presented_token("Bearer vgl_abc").as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token("ApiKey vgl_abc").as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token(&format!("ApiKey {}", encode("filebeat:vgl_abc"))).as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token(&format!("Basic {}", encode("fluentbit:vgl_abc"))).as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token("Basic not-base64"), None);
        assert_eq!(presented_token("Digest x"), None);
        assert_eq!(presented_token("vgl_abc").as_deref(), Some("vgl_abc"));
        assert_eq!(presented_token("abc"), None);
    }

    #[test]
    fn origins_are_compared_with_the_host() {
        let headers = |origin: Option<&'static str>, referer: Option<&'static str>| {
            let mut headers = HeaderMap::new();
            headers.insert(header::HOST, HeaderValue::from_static("vigil.example:8080"));
            if let Some(origin) = origin {
                headers.insert(header::ORIGIN, HeaderValue::from_static(origin));
            }
            if let Some(referer) = referer {
                headers.insert(header::REFERER, HeaderValue::from_static(referer));
            }
            headers
        };
        assert_eq!(same_origin(&headers(Some("http://vigil.example:8080"), None)), Some(true));
        assert_eq!(same_origin(&headers(Some("https://evil.example"), None)), Some(false));
        assert_eq!(same_origin(&headers(Some("null"), None)), Some(false));
        assert_eq!(same_origin(&headers(None, Some("http://vigil.example:8080/logs?q=x"))), Some(true));
        assert_eq!(same_origin(&headers(None, None)), None);
    }

    #[test]
    fn secrets_are_compared_in_constant_time() {
        assert!(constant_time_equal("abc", "abc"));
        assert!(!constant_time_equal("abc", "abd"));
        assert!(!constant_time_equal("abc", "ab"));
    }
}
